/*
 * test_evidence.c - Azure Backup's evidence (audit/estate/evidence.c): the
 * time parser, the job error matcher (every spelling, numeric codes, the
 * documented texts) and the vm.backup.* facts built from the demo estate and
 * from copies of it with one list removed, failed or changed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/estate/evidence.h"
#include "audit/estate/facts.h"

#ifndef KV_SOURCE_DIR
#define KV_SOURCE_DIR "."
#endif

#define RSV_LOG "/Subscriptions/6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8/resourceGroups/rg-nwlog-backup-eus/providers/" \
	"Microsoft.RecoveryServices/vaults/rsv-nwlog-eus"

/* ---- helpers ---- */

static cJSON *demo(void)
{
	struct kv_err err = {{0}};
	size_t len = 0;
	char *text = kv_read_file(KV_SOURCE_DIR "/examples/demo-estate.json", (size_t)1 << 26, &len, &err);
	cJSON *d;

	if (!text)
		fail_msg("%s", err.msg);
	d = cJSON_ParseWithLength(text, len);
	free(text);
	assert_non_null(d);
	return d;
}

struct got {
	cJSON *vms;        /* {"<vm name>": vm facts with "$unavailable"} */
	bool binding_has_jobs;
};

static void keep(enum subject_kind kind, const cJSON *facts, void *arg)
{
	struct got *g = arg;
	const cJSON *vm = cJSON_GetObjectItemCaseSensitive(facts, "vm");
	const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(vm, "name"));
	cJSON *copy;

	if (kind == SUBJ_BINDING && cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(vm, "backup"), "jobs"), "count"))
		g->binding_has_jobs = true;
	if (kind != SUBJ_VM || !name)
		return;
	copy = cJSON_Duplicate(vm, true);
	cJSON_AddItemToObject(copy, "$unavailable",
	                      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(facts, "$unavailable"), true));
	cJSON_AddItemToObject(g->vms, name, copy);
}

/* The VM facts of every VM of doc (which is freed). */
static struct got facts_of(cJSON *doc)
{
	char *text = cJSON_PrintUnformatted(doc);
	struct kv_err err = {{0}};
	struct estate *e = estate_parse(text, strlen(text), "test.estate", NULL, &err);
	struct facts_ctx *c;
	struct got g = {cJSON_CreateObject(), false};

	free(text);
	cJSON_Delete(doc);
	if (!e)
		fail_msg("estate_parse: %s", err.msg);
	c = facts_prepare(e);
	facts_each(c, keep, &g);
	facts_ctx_free(c);
	estate_free(e);
	return g;
}

/* vm.<path> of VM name, walking dotted keys. */
static const cJSON *at(const struct got *g, const char *name, const char *path)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(g->vms, name);
	char buf[256];
	char *part = buf;

	snprintf(buf, sizeof(buf), "%s", path);
	while (part && o) {
		char *dot = strchr(part, '.');

		if (dot)
			*dot = '\0';
		o = cJSON_GetObjectItemCaseSensitive(o, part);
		part = dot ? dot + 1 : NULL;
	}
	return o;
}

static const char *unavail_status(const struct got *g, const char *name, const char *key)
{
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(g->vms, name), "$unavailable"), key);

	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(u, "status"));
}

static const char *unavail_reason(const struct got *g, const char *name, const char *key)
{
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(g->vms, name), "$unavailable"), key);

	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(u, "reason"));
}

static double num(const struct got *g, const char *name, const char *path)
{
	const cJSON *n = at(g, name, path);

	if (!cJSON_IsNumber(n))
		fail_msg("%s: %s is not a number", name, path);
	return n->valuedouble;
}

static const char *str(const struct got *g, const char *name, const char *path)
{
	return cJSON_GetStringValue(at(g, name, path));
}

/* ---- time ---- */

static void times_parse_with_fractions_and_offsets(void **state)
{
	(void)state;
	assert_int_equal(evidence_time("2026-11-28T12:00:00Z"), 1795867200LL);
	assert_int_equal(evidence_time("2026-11-28T01:02:48.780514Z"), 1795867200LL - 39432);
	assert_int_equal(evidence_time("2026-11-28T13:00:00+01:00"), 1795867200LL);
	assert_int_equal(evidence_time("2026-11-28T12:00:00.1234567-02:30"), 1795867200LL + 9000);
	assert_int_equal(evidence_time("2024-02-29T00:00:00Z"), 1709164800LL);
	assert_int_equal(evidence_time("2026-11-28"), 0);
	assert_int_equal(evidence_time("yesterday"), 0);
	assert_int_equal(evidence_time(NULL), 0);
	assert_int_equal(evidence_time("2026-13-01T00:00:00Z"), 0);
}

/* ---- job errors ---- */

static bool matches(const char *json, enum job_error kind, char *code, size_t n, const char **text)
{
	cJSON *job = cJSON_Parse(json);
	bool r;

	assert_non_null(job);
	r = evidence_job_error(job, kind, code, n, text);
	/* text points into the job: copy what the caller checks before freeing it. */
	if (r && text && *text) {
		static char keep_text[256];

		snprintf(keep_text, sizeof(keep_text), "%s", *text);
		*text = keep_text;
	}
	cJSON_Delete(job);
	return r;
}

static void every_spelling_of_the_permission_error_matches(void **state)
{
	static const char *const spellings[] = {
		"UserErrorKeyVaultPermissionsNotConfigured", "UserErrorKeyvaultPermissionsNotConfigured",
		"UserErrorKeyvaultPermissionNotConfigured", "usererrorkeyvaultpermissionsnotconfigured"};
	char code[128], json[512];
	const char *text = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
		snprintf(json, sizeof(json), "{\"properties\":{\"errorDetails\":[{\"errorCode\":\"%s\",\"errorString\":\"x\"}]}}",
		         spellings[i]);
		assert_true(matches(json, JOB_ERR_KV_PERMISSION, code, sizeof(code), &text));
		assert_string_equal(code, spellings[i]);
		assert_string_equal(text, "x");
		assert_false(matches(json, JOB_ERR_DISK_EXCLUSION, code, sizeof(code), &text));
	}
	/* In the title, and in the non-localised dynamic message. */
	assert_true(matches("{\"properties\":{\"errorDetails\":[{\"errorTitle\":\"UserErrorKeyvaultPermissionNotConfigured\"}]}}",
	                    JOB_ERR_KV_PERMISSION, code, sizeof(code), &text));
	assert_true(matches("{\"properties\":{\"extendedInfo\":{\"dynamicErrorMessage\":\"Failed: "
	                    "UserErrorKeyVaultPermissionsNotConfigured\"}}}", JOB_ERR_KV_PERMISSION, code, sizeof(code),
	                    &text));
	assert_string_equal(code, "UserErrorKeyVaultPermissionsNotConfigured");
}

static void a_numeric_code_with_the_documented_text_matches(void **state)
{
	char code[128];
	const char *text = NULL;

	(void)state;
	assert_true(matches("{\"properties\":{\"errorDetails\":[{\"errorCode\":400233,\"errorString\":\"Backup doesn't have "
	                    "sufficient permissions to the key vault for backup of encrypted VMs.\"}]}}",
	                    JOB_ERR_KV_PERMISSION, code, sizeof(code), &text));
	assert_string_equal(code, "UserErrorKeyVaultPermissionsNotConfigured (400233)");
	assert_string_equal(text, "Backup doesn't have sufficient permissions to the key vault for backup of encrypted VMs.");
	assert_true(matches("{\"properties\":{\"errorDetails\":[{\"errorString\":\"Snapshot operation failed due to no "
	                    "network connectivity on the virtual machine.\"}]}}", JOB_ERR_NO_NETWORK, code, sizeof(code),
	                    &text));
	assert_true(matches("{\"properties\":{\"errorDetails\":[{\"errorString\":\"Disk exclusion is not supported for "
	                    "encrypted virtual machines.\"}]}}", JOB_ERR_DISK_EXCLUSION, code, sizeof(code), &text));
}

static void other_errors_and_clean_jobs_do_not_match(void **state)
{
	char code[128];
	const char *text = NULL;

	(void)state;
	assert_false(matches("{\"properties\":{\"status\":\"Completed\"}}", JOB_ERR_KV_PERMISSION, code, sizeof(code),
	                     &text));
	assert_false(matches("{\"properties\":{\"errorDetails\":[{\"errorCode\":\"GuestAgentSnapshotTaskStatusError\","
	                     "\"errorString\":\"Could not communicate with the VM agent for snapshot status.\"}]}}",
	                     JOB_ERR_KV_PERMISSION, code, sizeof(code), &text));
	assert_false(matches("{\"properties\":{\"errorDetails\":[{\"errorCode\":\"UserErrorKeyVault\"}]}}",
	                     JOB_ERR_KV_PERMISSION, code, sizeof(code), &text));
	assert_false(matches("{}", JOB_ERR_NO_NETWORK, code, sizeof(code), &text));
}

/* ---- facts from the demo ---- */

static void demo_jobs_facts(void **state)
{
	struct got g = facts_of(demo());

	(void)state;
	assert_true(g.binding_has_jobs);   /* binding subjects carry the VM's evidence too */
	assert_int_equal((int)num(&g, "nwlog-tms01", "backup.jobs.count"), 3);
	assert_int_equal((int)num(&g, "nwlog-tms01", "backup.jobs.failed"), 3);
	assert_int_equal((int)num(&g, "nwlog-tms01", "backup.jobs.keyVaultPermission.count"), 3);
	assert_string_equal(str(&g, "nwlog-tms01", "backup.jobs.keyVaultPermission.time"), "2026-11-28T01:32:06.284913Z");
	assert_string_equal(str(&g, "nwlog-tms01", "backup.jobs.since"), "2026-11-21T12:00:00Z");
	assert_int_equal((int)num(&g, "nw-erp-app01", "backup.jobs.count"), 3);
	assert_int_equal((int)num(&g, "nw-erp-app01", "backup.jobs.failed"), 0);
	assert_true(cJSON_IsNull(at(&g, "nw-erp-app01", "backup.jobs.keyVaultPermission.jobId")));
	assert_int_equal((int)num(&g, "nw-web02", "backup.jobs.diskExclusion.count"), 1);
	assert_int_equal((int)num(&g, "nw-ftp01", "backup.jobs.noNetwork.count"), 1);
	/* An unprotected VM: nothing to count, and nothing unavailable either. */
	assert_true(cJSON_IsNull(at(&g, "nw-bi01", "backup.jobs.count")));
	assert_null(unavail_status(&g, "nw-bi01", "vm.backup.jobs"));
	cJSON_Delete(g.vms);
}

/* A VM's jobs are found whatever their order in the snapshot and the case of their VM name. */
static void jobs_found_in_any_order_and_case(void **state)
{
	struct got want = facts_of(demo());
	cJSON *d = demo(), *jobs = cJSON_GetObjectItemCaseSensitive(d, "backupJobs"), *rev = cJSON_CreateArray();
	struct got g;
	int i = 0;

	(void)state;
	while (cJSON_GetArraySize(jobs) > 0) {
		cJSON *j = cJSON_DetachItemFromArray(jobs, cJSON_GetArraySize(jobs) - 1);
		cJSON *n = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "properties"),
		                                            "entityFriendlyName");

		if (i++ % 2)
			for (char *c = n->valuestring; *c; c++)
				*c = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
		cJSON_AddItemToArray(rev, j);
	}
	cJSON_ReplaceItemInObjectCaseSensitive(d, "backupJobs", rev);
	g = facts_of(d);
	assert_int_equal((int)num(&g, "nwlog-tms01", "backup.jobs.keyVaultPermission.count"), 3);
	assert_true(cJSON_Compare(g.vms, want.vms, true));
	cJSON_Delete(g.vms);
	cJSON_Delete(want.vms);
}

static void demo_schedule_and_root_cause_facts(void **state)
{
	struct got g = facts_of(demo());

	(void)state;
	assert_true(cJSON_IsTrue(at(&g, "nw-dev-build01", "backup.overdue")));
	assert_true(num(&g, "nw-dev-build01", "backup.lastBackupAgeHours") == 106.1);
	assert_int_equal((int)num(&g, "nw-dev-build01", "backup.policy.maxAgeHours"), 48);
	assert_string_equal(str(&g, "nw-dev-build01", "backup.policy.frequency"), "Daily");
	assert_true(cJSON_IsFalse(at(&g, "nw-erp-app01", "backup.overdue")));
	assert_string_equal(str(&g, "nwlog-tms01", "backup.enabledBy.userType"), "Guest");
	assert_string_equal(str(&g, "nwlog-tms01", "backup.enabledBy.time"), "2026-10-14T09:12:41.1187230Z");
	assert_string_equal(str(&g, "nwlog-rpt01", "backup.enabledBy.userType"), "Member");
	/* A deployment pipeline's service principal enabled (or changed) erp-app01's protection. */
	assert_string_equal(str(&g, "nw-erp-app01", "backup.enabledBy.userType"), "ServicePrincipal");
	/* Enabled longer than the Activity Log's 90 days ago: nobody known, and that is not an error. */
	assert_true(cJSON_IsNull(at(&g, "nw-ftp01", "backup.enabledBy.name")));
	assert_null(unavail_status(&g, "nw-ftp01", "vm.backup.enabledBy"));
	assert_true(cJSON_IsFalse(at(&g, "nwlog-tms01", "backup.keyVaultAccess.complete")));
	assert_string_equal(cJSON_GetArrayItem(at(&g, "nwlog-tms01", "backup.keyVaultAccess.missingVaults"), 0)->valuestring,
	                    "kv-nwlog-ops-eus");
	assert_true(cJSON_IsTrue(at(&g, "nw-web01", "backup.keyVaultAccess.complete")));
	/* Protected but not encrypted with ADE: key vault access does not apply. */
	assert_true(cJSON_IsNull(at(&g, "nw-sap-hana01", "backup.keyVaultAccess.complete")));
	assert_int_equal((int)num(&g, "nw-sap-hana01", "backup.jobs.count"), 3);
	assert_true(cJSON_IsTrue(at(&g, "nw-web01", "backup.keyVaultAccess.changedAfterFailure")));
	assert_true(cJSON_IsNull(at(&g, "nw-erp-app01", "backup.keyVaultAccess.changedAfterFailure")));
	/* BEK and KEK in two vaults, the KEK one lacking keys backup. */
	assert_int_equal(cJSON_GetArraySize(at(&g, "nw-erp-db01", "backup.keyVaultAccess.vaults")), 2);
	assert_true(cJSON_IsFalse(at(&g, "nw-erp-db01", "backup.keyVaultAccess.complete")));
	cJSON_Delete(g.vms);
}

static void lists_not_collected_are_skipped(void **state)
{
	cJSON *d = demo();
	struct got g;

	(void)state;
	cJSON_DeleteItemFromObjectCaseSensitive(d, "backupJobs");
	cJSON_DeleteItemFromObjectCaseSensitive(d, "activityLog");
	cJSON_DeleteItemFromObjectCaseSensitive(d, "backupPolicies");
	g = facts_of(d);
	assert_string_equal(unavail_status(&g, "nwlog-tms01", "vm.backup.jobs"), "skipped");
	assert_string_equal(unavail_status(&g, "nwlog-tms01", "vm.backup.enabledBy"), "skipped");
	assert_string_equal(unavail_status(&g, "nwlog-tms01", "vm.backup.policy"), "skipped");
	assert_string_equal(unavail_status(&g, "nwlog-tms01", "vm.backup.overdue"), "skipped");
	assert_null(unavail_status(&g, "nw-bi01", "vm.backup.jobs"));
	cJSON_Delete(g.vms);
}

static void lists_that_failed_are_errors(void **state)
{
	cJSON *d = demo(), *errors = cJSON_GetObjectItemCaseSensitive(d, "errors"), *e;
	struct got g;

	(void)state;
	e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "scope", RSV_LOG "/backupJobs");
	cJSON_AddNumberToObject(e, "status", 403);
	cJSON_AddStringToObject(e, "code", "AuthorizationFailed");
	cJSON_AddStringToObject(e, "message", "denied");
	cJSON_AddItemToArray(errors, e);
	e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "scope", "/subscriptions/6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8/providers/"
	                                    "Microsoft.Insights/eventtypes/management/values");
	cJSON_AddNumberToObject(e, "status", 403);
	cJSON_AddStringToObject(e, "code", "AuthorizationFailed");
	cJSON_AddStringToObject(e, "message", "denied");
	cJSON_AddItemToArray(errors, e);
	g = facts_of(d);
	assert_string_equal(unavail_status(&g, "nwlog-tms01", "vm.backup.jobs"), "error");
	assert_string_equal(unavail_status(&g, "nwlog-rpt01", "vm.backup.jobs"), "error");
	assert_string_equal(unavail_status(&g, "nwlog-tms01", "vm.backup.enabledBy"), "error");
	/* The other vaults' VMs are not touched. */
	assert_null(unavail_status(&g, "nw-web01", "vm.backup.jobs"));
	assert_int_equal((int)num(&g, "nw-web01", "backup.jobs.keyVaultPermission.count"), 2);
	cJSON_Delete(g.vms);
}

/* A copy of the first element of list (in doc) whose string at key contains needle; fail when none. */
static cJSON *copy_of(cJSON *doc, const char *list, const char *key, const char *needle)
{
	cJSON *it;

	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(doc, list)) {
		const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, key));

		if (v && strstr(v, needle))
			return cJSON_Duplicate(it, true);
	}
	fail_msg("no %s with %s %s", list, key, needle);
	return NULL;
}

static void set_str(cJSON *o, const char *key, const char *v)
{
	cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_CreateString(v));
}

/* ASCII s in lower case (to > 0) or upper case (to < 0), in place. */
static char *recase(char *s, int to)
{
	for (char *c = s; *c; c++)
		if (to > 0 ? *c >= 'A' && *c <= 'Z' : *c >= 'a' && *c <= 'z')
			*c = (char)(*c + (to > 0 ? 'a' - 'A' : 'A' - 'a'));
	return s;
}

/* Appends another protection write of nwlog-tms01's item: by caller, at time (NULL: the same time). */
static cJSON *add_tms01_write(cJSON *doc, const char *caller, const char *time)
{
	cJSON *x = copy_of(doc, "activityLog", "resourceId", "nwlog-tms01/protectedItems");

	set_str(x, "caller", caller);
	if (time)
		set_str(x, "eventTimestamp", time);
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(doc, "activityLog"), x);
	return x;
}

/*
 * enabledBy and the policy are looked up in indexes built at load: they must
 * choose what a scan of every event and policy chose.  The earliest write
 * (of equal times the first listed; IDs compared as ARM IDs), the last
 * policy listed of an ID.
 */
static void indexes_choose_as_a_scan_did(void **state)
{
	cJSON *d = demo(), *x, *p;
	struct got g;
	char *id;

	(void)state;
	add_tms01_write(d, "later@example.com", "2026-10-15T09:12:41.1187230Z");
	add_tms01_write(d, "same-time@example.com", NULL);
	p = copy_of(d, "backupPolicies", "id", "rsv-nwlog-eus/backupPolicies/DefaultPolicy");
	id = recase(kv_strdup(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "id"))), 1);
	set_str(p, "id", id);
	free(id);
	set_str(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "properties"), "schedulePolicy"),
	        "scheduleRunFrequency", "Weekly");
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(d, "backupPolicies"), p);
	g = facts_of(cJSON_Duplicate(d, true));
	assert_string_equal(str(&g, "nwlog-tms01", "backup.enabledBy.name"), "ava.lindqvist@northwindtraders.com");
	assert_string_equal(str(&g, "nwlog-tms01", "backup.enabledBy.time"), "2026-10-14T09:12:41.1187230Z");
	assert_string_equal(str(&g, "nwlog-rpt01", "backup.enabledBy.name"), "ops@nwlogistics.onmicrosoft.com");
	assert_int_equal((int)num(&g, "nwlog-tms01", "backup.policy.maxAgeHours"), 336);
	assert_string_equal(str(&g, "nwlog-rpt01", "backup.policy.frequency"), "Weekly");
	cJSON_Delete(g.vms);

	/* An earlier write, its resource ID in capitals with a trailing '/'. */
	x = add_tms01_write(d, "earlier@example.com", "2026-10-01T00:00:00Z");
	id = recase(kv_asprintf("%s/", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "resourceId"))), -1);
	set_str(x, "resourceId", id);
	free(id);
	g = facts_of(d);
	assert_string_equal(str(&g, "nwlog-tms01", "backup.enabledBy.name"), "earlier@example.com");
	assert_string_equal(str(&g, "nwlog-rpt01", "backup.enabledBy.name"), "ops@nwlogistics.onmicrosoft.com");
	cJSON_Delete(g.vms);
}

/*
 * list_error answers once per parent and list (a cache): a failed policy
 * list of one vault, its scope in lower case, makes that vault's VMs'
 * policy an error, each of them, and neither their jobs (another list of
 * the same vault, asked first) nor another vault's VMs.
 */
static void a_failed_list_is_found_for_each_vm_once_cached(void **state)
{
	cJSON *d = demo(), *pols = cJSON_GetObjectItemCaseSensitive(d, "backupPolicies"), *e, *p;
	char *scope = recase(kv_strdup(RSV_LOG "/backupPolicies?api-version=2024-10-01"), 1);
	struct got g;
	int i = 0, gone = -1;

	(void)state;
	cJSON_ArrayForEach(p, pols) {
		if (strstr(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "id")), "rsv-nwlog-eus"))
			gone = i;
		i++;
	}
	assert_true(gone >= 0);
	cJSON_DeleteItemFromArray(pols, gone);
	e = cJSON_Parse("{\"status\":403,\"code\":\"AuthorizationFailed\",\"message\":\"denied\"}");
	cJSON_AddStringToObject(e, "scope", scope);
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(d, "errors"), e);
	free(scope);
	g = facts_of(d);
	assert_string_equal(unavail_status(&g, "nwlog-tms01", "vm.backup.policy"), "error");
	assert_string_equal(unavail_status(&g, "nwlog-rpt01", "vm.backup.policy"), "error");
	assert_non_null(strstr(unavail_reason(&g, "nwlog-tms01", "vm.backup.policy"), "could not be read: 403"));
	assert_non_null(strstr(unavail_reason(&g, "nwlog-rpt01", "vm.backup.policy"), "could not be read: 403"));
	assert_null(unavail_status(&g, "nwlog-tms01", "vm.backup.jobs"));
	assert_null(unavail_status(&g, "nwlog-rpt01", "vm.backup.jobs"));
	assert_int_equal((int)num(&g, "nwlog-tms01", "backup.jobs.keyVaultPermission.count"), 3);
	assert_null(unavail_status(&g, "nw-web01", "vm.backup.policy"));
	assert_null(unavail_status(&g, "nw-dev-build01", "vm.backup.policy"));
	cJSON_Delete(g.vms);
}

static void weekly_and_hourly_schedules(void **state)
{
	cJSON *d = demo(), *p;
	struct got g;

	(void)state;
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(d, "backupPolicies")) {
		cJSON *sched = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "properties"),
		                                                "schedulePolicy");

		if (strstr(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "id")), "rsv-nw-dr-neu"))
			cJSON_ReplaceItemInObjectCaseSensitive(sched, "scheduleRunFrequency", cJSON_CreateString("Weekly"));
		if (strstr(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "id")), "rsv-nwlog-eus"))
			cJSON_ReplaceItemInObjectCaseSensitive(sched, "scheduleRunFrequency", cJSON_CreateString("Monthly"));
	}
	g = facts_of(d);
	/* Weekly: two weeks allowed, so 106 hours is fine. */
	assert_int_equal((int)num(&g, "nw-dev-build01", "backup.policy.maxAgeHours"), 336);
	assert_true(cJSON_IsFalse(at(&g, "nw-dev-build01", "backup.overdue")));
	/* A schedule kvaudit does not understand is an error, never a pass. */
	assert_string_equal(unavail_status(&g, "nwlog-tms01", "vm.backup.overdue"), "error");
	cJSON_Delete(g.vms);
}

static void wrong_types_are_bad_input_with_their_path(void **state)
{
	static const struct {
		const char *list, *json, *want;
	} cases[] = {
		{"backupJobs", "{\"id\":5}", "test.estate: $.backupJobs[0].id: expected a string, got a number"},
		{"backupJobs", "[]", "test.estate: $.backupJobs[0]: expected an object, got an array"},
		{"backupJobs", "{},{\"properties\":{\"status\":1}}",
		 "test.estate: $.backupJobs[1].properties.status: expected a string, got a number"},
		{"backupJobs", "{\"properties\":{\"errorDetails\":{\"errorCode\":\"x\"}}}",
		 "test.estate: $.backupJobs[0].properties.errorDetails: expected an array, got an object"},
		{"backupJobs", "{\"properties\":[]}", "test.estate: $.backupJobs[0].properties: expected an object, got an array"},
		{"activityLog", "{\"operationName\":\"x\"}", "test.estate: $.activityLog[0].operationName: expected an object, got a string"},
		{"principals", "{\"id\":\"x\"}", "test.estate: $.principals[0]: a principal needs \"tenantId\" and \"id\""},
		{"backupPolicies", "{\"name\":\"p\"}", "test.estate: $.backupPolicies[0]: a policy needs \"id\""},
	};

	(void)state;
	/* A lean load reads backupJobs element by element (estate.c): the same messages. */
	for (int lean = 0; lean <= 1; lean++) {
		struct estate_opts o = {.lean = lean};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			char *text = kv_asprintf("{\"kind\":\"kvaudit.estate\",\"version\":1,\"%s\":[%s]}", cases[i].list,
			                         cases[i].json);
			struct kv_err err = {{0}};
			struct estate *e = estate_parse(text, strlen(text), "test.estate", &o, &err);

			free(text);
			if (e) {
				estate_free(e);
				fail_msg("case %zu (lean %d) parsed", i, lean);
			}
			if (strstr(err.msg, cases[i].want) != err.msg)
				fail_msg("case %zu (lean %d): %s", i, lean, err.msg);
		}
		{
			const char *text = "{\"kind\":\"kvaudit.estate\",\"version\":1,\"backupJobs\":{}}";
			struct kv_err err = {{0}};

			assert_null(estate_parse(text, strlen(text), "test.estate", &o, &err));
			assert_string_equal(err.msg, "test.estate: $.backupJobs: expected an array, got an object");
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(times_parse_with_fractions_and_offsets),
		cmocka_unit_test(every_spelling_of_the_permission_error_matches),
		cmocka_unit_test(a_numeric_code_with_the_documented_text_matches),
		cmocka_unit_test(other_errors_and_clean_jobs_do_not_match),
		cmocka_unit_test(demo_jobs_facts),
		cmocka_unit_test(jobs_found_in_any_order_and_case),
		cmocka_unit_test(demo_schedule_and_root_cause_facts),
		cmocka_unit_test(lists_not_collected_are_skipped),
		cmocka_unit_test(lists_that_failed_are_errors),
		cmocka_unit_test(indexes_choose_as_a_scan_did),
		cmocka_unit_test(a_failed_list_is_found_for_each_vm_once_cached),
		cmocka_unit_test(weekly_and_hourly_schedules),
		cmocka_unit_test(wrong_types_are_bad_input_with_their_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
