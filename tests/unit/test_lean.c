/*
 * test_lean.c - a lean load (estate_opts.lean: the big lists parsed one
 * element at a time, docs/performance.md) must be indistinguishable from
 * the whole-tree load in everything but memory: the same audit report on
 * every snapshot the tests and fuzzers carry, the same error message on
 * every bad input, through estate_parse and through estate_load's mapping.
 * So must a load of the parsed tree (estate_from_doc, a live scan's).
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "audit/audit.h"
#include "audit/estate/estate.h"
#include "rules/engine.h"

static struct rule_catalog catalog;

static char *slurp(const char *path, size_t *len)
{
	struct kv_err err = {{0}};
	char *t = kv_read_file(path, (size_t)1 << 30, len, &err);

	if (!t)
		fail_msg("%s", err.msg);
	return t;
}

/* The report without what differs between two runs (tool, scan time). */
static char *report_text(struct estate *e)
{
	struct audit_opts ao = {.fail_on = SEV_LOW, .include_pass = true, .source = "x.json"};
	cJSON *r = audit_run(e, &catalog, &ao);
	char *t;

	cJSON_DeleteItemFromObjectCaseSensitive(r, "tool");
	cJSON_DeleteItemFromObjectCaseSensitive(r, "scan");
	t = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	return t;
}

static void same_str(const char *a, const char *b)
{
	if (!a || !b)
		assert_true(a == b);
	else
		assert_string_equal(a, b);
}

static void same_vm(const struct vm *a, const struct vm *b)
{
	same_str(a->id, b->id);
	same_str(a->name, b->name);
	same_str(a->location, b->location);
	assert_string_equal(a->sub, b->sub);
	assert_string_equal(a->rg, b->rg);
	assert_int_equal(a->os, b->os);
	assert_int_equal(a->has_instance_view, b->has_instance_view);
	assert_int_equal(a->agent, b->agent);
	same_str(a->agent_version, b->agent_version);
	assert_int_equal(a->ade.encrypted, b->ade.encrypted);
	assert_int_equal(a->ade.legacy_aad, b->ade.legacy_aad);
	assert_int_equal(a->ade.disabled, b->ade.disabled);
	assert_int_equal(a->ade.sources, b->ade.sources);
	same_str(a->ade.ext_type, b->ade.ext_type);
	same_str(a->ade.ext_version, b->ade.ext_version);
	same_str(a->ade.ext_operation, b->ade.ext_operation);
	same_str(a->ade.volume_type, b->ade.volume_type);
	assert_int_equal(a->ade.nvolumes, b->ade.nvolumes);
	for (size_t k = 0; k < a->ade.nvolumes; k++) {
		const struct ade_volume *x = &a->ade.volumes[k], *y = &b->ade.volumes[k];

		same_str(x->disk, y->disk);
		same_str(x->bek_vault, y->bek_vault);
		same_str(x->secret_url, y->secret_url);
		same_str(x->kek_vault, y->kek_vault);
		same_str(x->key_url, y->key_url);
		same_str(x->bek_vault_url, y->bek_vault_url);
		assert_int_equal(x->sources, y->sources);
	}
}

static void expect_same(const char *what, struct estate *whole, const struct kv_err *ew, struct estate *lean,
                        const struct kv_err *el)
{
	if (!whole || !lean) {
		if (whole || lean)
			fail_msg("%s: whole-tree load %s, lean load %s (%s / %s)", what, whole ? "ok" : "failed",
			         lean ? "ok" : "failed", ew->msg, el->msg);
		if (strcmp(ew->msg, el->msg) != 0)
			fail_msg("%s: messages differ:\n  whole: %s\n  lean:  %s", what, ew->msg, el->msg);
		return;
	}
	{
		char *a = report_text(whole), *b = report_text(lean);

		if (strcmp(a, b) != 0)
			fail_msg("%s: the reports differ", what);
		free(a);
		free(b);
	}
	assert_int_equal(whole->nvms, lean->nvms);
	assert_int_equal(whole->ndisks, lean->ndisks);
	assert_int_equal(whole->nitems, lean->nitems);
	/* Every field read from a streamed element, even one no report shows. */
	for (size_t i = 0; i < lean->nvms; i++)
		same_vm(&whole->vms[i], &lean->vms[i]);
	for (size_t i = 0; i < lean->ndisks; i++) {
		same_str(whole->disks[i].id, lean->disks[i].id);
		same_str(whole->disks[i].name, lean->disks[i].name);
		same_str(whole->disks[i].managed_by, lean->disks[i].managed_by);
		same_str(whole->disks[i].location, lean->disks[i].location);
	}
	for (size_t i = 0; i < lean->nitems; i++) {
		const struct protected_item *a = &whole->items[i], *b = &lean->items[i];

		same_str(a->id, b->id);
		same_str(a->vm_id, b->vm_id);
		same_str(a->rsv_id, b->rsv_id);
		same_str(a->protection_state, b->protection_state);
		same_str(a->last_backup_status, b->last_backup_status);
		same_str(a->health_status, b->health_status);
		same_str(a->last_backup_time, b->last_backup_time);
		same_str(a->policy_id, b->policy_id);
	}
}

/*
 * A live scan loads the tree it collected (estate_from_doc) instead of its
 * text: the same estate and report as the text gives (whole), or the same
 * message; and e->doc is the tree unchanged (scan --save-estate writes it).
 */
static void compare_from_doc(const char *what, const char *text, size_t len, struct estate *whole,
                             const struct kv_err *ew)
{
	struct estate_opts lo = {.lean = true};   /* ignored: the tree is there already */
	struct kv_err err = {{0}};
	cJSON *doc = cJSON_ParseWithLength(text, len);
	char *before, *after, w[64];
	struct estate *e;

	/* Only what text and tree both say: a tree is never invalid JSON. */
	if (!doc || (!whole && (strstr(ew->msg, "invalid JSON") || strstr(ew->msg, "is empty"))))
		goto out;
	before = cJSON_PrintUnformatted(doc);
	e = estate_from_doc(doc, "x.json", &lo, &err);
	snprintf(w, sizeof(w), "%.40s (from the tree)", what);
	expect_same(w, whole, ew, e, &err);
	after = cJSON_PrintUnformatted(e ? e->doc : doc);
	assert_string_equal(before, after);
	free(before);
	free(after);
	if (e) {
		estate_free(e);   /* with doc */
		return;
	}
out:
	cJSON_Delete(doc);
}

static void compare_text(const char *what, const char *text, size_t len)
{
	struct estate_opts wo = {0}, lo = {.lean = true};
	struct kv_err ew = {{0}}, el = {{0}};
	struct estate *whole = estate_parse(text, len, "x.json", &wo, &ew);
	struct estate *lean = estate_parse(text, len, "x.json", &lo, &el);

	expect_same(what, whole, &ew, lean, &el);
	compare_from_doc(what, text, len, whole, &ew);
	estate_free(whole);
	estate_free(lean);
}

static void compare_file(const char *path)
{
	struct estate_opts wo = {0}, lo = {.lean = true};
	struct kv_err ew = {{0}}, el = {{0}};
	struct estate *whole = estate_load(path, &wo, &ew);
	struct estate *lean = estate_load(path, &lo, &el);
	size_t len;
	char *text = slurp(path, &len);

	expect_same(path, whole, &ew, lean, &el);
	estate_free(whole);
	estate_free(lean);
	compare_text(path, text, len);
	free(text);
}

static void compare_dir(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		fail_msg("cannot open %s", dir);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name), ls = strlen(suffix);
		char path[1024];

		if (de->d_name[0] == '.' || l < ls || strcmp(de->d_name + l - ls, suffix) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		compare_file(path);
		n++;
	}
	closedir(d);
	assert_true(n > 0);
}

static void every_snapshot_of_the_tests_audits_the_same(void **state)
{
	(void)state;
	compare_file(KV_SOURCE_DIR "/examples/demo-estate.json");
	compare_dir(KV_SOURCE_DIR "/tests/unit/data/estate", ".json");
	compare_dir(KV_SOURCE_DIR "/tests/unit/data/ade", ".json");
	compare_dir(KV_SOURCE_DIR "/tests/unit/data/lean", ".json");   /* every path the element readers read */
	compare_dir(KV_SOURCE_DIR "/tests/fuzz/corpus/fuzz_estate", ".json");
	compare_dir(KV_SOURCE_DIR "/tests/fuzz/regressions/fuzz_estate", ".json");
}

static void the_lean_load_keeps_no_raw_json_of_the_big_lists(void **state)
{
	struct estate_opts lo = {.lean = true};
	struct kv_err err = {{0}};
	struct estate *e = estate_load(KV_SOURCE_DIR "/examples/demo-estate.json", &lo, &err);
	size_t ade = 0;

	(void)state;
	assert_non_null(e);
	assert_true(e->nvms > 0 && e->ndisks > 0 && e->nitems > 0);
	for (size_t i = 0; i < e->nvms; i++) {
		assert_null(e->vms[i].raw);
		ade += e->vms[i].ade.encrypted;
	}
	for (size_t i = 0; i < e->ndisks; i++)
		assert_null(e->disks[i].raw);
	for (size_t i = 0; i < e->nitems; i++)
		assert_null(e->items[i].raw);
	assert_true(ade > 0);
	/* The small lists are loaded from e->doc as before. */
	assert_true(e->nvaults > 0);
	assert_non_null(e->vaults[0].raw);
	estate_free(e);
}

/*
 * A backup job is read once, at load, by the same code whatever the load
 * (evidence.c keeps no JSON of it): a job of the demo's nwlog-tms01 that
 * failed with every error kind at once (a numeric code with Microsoft's
 * text, a code, a dynamic message), its VM and vault in other cases, must
 * be each kind's evidence alike in every load; so must a twin that starts
 * at the same time with a smaller ID lose to it, and a job of another vault
 * not count.
 */
#define RSV "/subscriptions/6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8/resourcegroups/rg-nwlog-backup-eus/providers/" \
	"Microsoft.RecoveryServices/vaults/RSV-NWLOG-EUS"
#define KV_TEXT "Backup doesn't have sufficient permissions to the key vault for backup of encrypted VMs."
#define DX_TEXT "Disk exclusion is not supported for encrypted virtual machines."
#define NN_TEXT "Snapshot failed: ExtensionSnapshotFailedNoNetwork"
#define JOB(id, rsv, details, ext) "{\"id\":\"" rsv "/backupJobs/" id "\",\"properties\":{\"entityFriendlyName\":" \
	"\"NWLOG-TMS01\",\"operation\":\"Backup\",\"status\":\"Failed\",\"startTime\":\"2026-11-28T05:00:00Z\"," \
	"\"errorDetails\":[" details "]" ext "}}"

static void a_job_of_every_error_kind_audits_the_same(void **state)
{
	static const char *const jobs[] = {
		JOB("all-kinds", RSV, "{\"errorCode\":\"UserErrorEncryptedVmNotSupportedWithDiskEx\",\"errorString\":\"" DX_TEXT
		    "\"},{\"errorCode\":400233,\"errorTitle\":\"\",\"errorString\":\"" KV_TEXT "\"}",
		    ",\"extendedInfo\":{\"dynamicErrorMessage\":\"" NN_TEXT "\"}"),
		JOB("a", RSV, "{\"errorCode\":\"UserErrorKeyvaultPermissionNotConfigured\",\"errorString\":\"twin\"}", ""),
		JOB("elsewhere", "/subscriptions/6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8/resourceGroups/rg/providers/"
		    "Microsoft.RecoveryServices/vaults/rsv-other", "{\"errorCode\":\"ExtensionSnapshotFailedNoNetwork\"}", ""),
	};
	static const char *const want[] = {
		"Azure Backup job " RSV "/backupJobs/all-kinds of VM nwlog-tms01 failed at 2026-11-28T05:00:00Z with "
		"UserErrorKeyVaultPermissionsNotConfigured (400233): \\\"" KV_TEXT "\\\" (5 such job(s)",
		"Azure Backup job " RSV "/backupJobs/all-kinds of VM nwlog-tms01 failed at 2026-11-28T05:00:00Z with "
		"UserErrorEncryptedVmNotSupportedWithDiskEx: \\\"" DX_TEXT "\\\"",
		"Azure Backup job " RSV "/backupJobs/all-kinds of VM nwlog-tms01 failed at 2026-11-28T05:00:00Z with "
		"ExtensionSnapshotFailedNoNetwork: \\\"" NN_TEXT "\\\"",
	};
	size_t len;
	char *text = slurp(KV_SOURCE_DIR "/examples/demo-estate.json", &len), *out, *report;
	cJSON *doc = cJSON_ParseWithLength(text, len);
	struct estate_opts lo = {.lean = true};
	struct kv_err err = {{0}};
	struct estate *e;

	(void)state;
	free(text);
	assert_non_null(doc);
	for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++)
		cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(doc, "backupJobs"), cJSON_Parse(jobs[i]));
	out = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	compare_text("a job of every error kind", out, strlen(out));
	e = estate_parse(out, strlen(out), "x.json", &lo, &err);
	free(out);
	if (!e)
		fail_msg("%s", err.msg);
	/* Lean: the jobs and the Activity Log were read element by element, not into e->doc. */
	assert_null(cJSON_GetObjectItemCaseSensitive(e->doc, "backupJobs"));
	assert_null(cJSON_GetObjectItemCaseSensitive(e->doc, "activityLog"));
	assert_true(e->present.backup_jobs && e->present.activity_log);
	report = report_text(e);
	for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++)
		if (!strstr(report, want[k]))
			fail_msg("the report lacks %s", want[k]);
	free(report);
	estate_free(e);
}

#define HEAD "{\"kind\":\"kvaudit.estate\",\"version\":1,"
#define VM "{\"id\":\"/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1\"}"

static const char *const bad_cases[] = {
	HEAD "\"virtualMachines\":[" VM ",]}",                   /* trailing comma in a big list */
	HEAD "\"virtualMachines\":[" VM " " VM "]}",              /* missing comma */
	HEAD "\"virtualMachines\":[" VM "",                        /* truncated */
	HEAD "\"virtualMachines\":[{\"id\":\"/subscriptions/x\"",    /* truncated inside an element */
	HEAD "\"virtualMachines\":[1]}",                          /* not an object */
	HEAD "\"virtualMachines\":{}}",                           /* not an array */
	HEAD "\"virtualMachines\":null}",                         /* absent */
	HEAD "\"virtualMachines\":[" VM "]} x",                   /* data after the document */
	HEAD "\"virtualMachines\":[{\"id\":1}]}",                 /* wrong type inside */
	HEAD "\"virtualMachines\":[{\"id\":\"a\\u0000b\"}]}",     /* escaped NUL */
	HEAD "\"virtualMachines\":[{\"id\":\"a\",\"name\":tru}]}",/* bad literal */
	HEAD "\"virtualMachines\":[01]}",                         /* what cJSON reads as a number */
	HEAD "\"virtualMachines\":[\xef\xbb\xbf" VM "]}",         /* a BOM before an element */
	"\xef\xbb\xbf" HEAD "\"virtualMachines\":[" VM "]}",      /* a BOM before the document */
	HEAD "\"virtualMachines\":[" VM "],\"virtualMachines\":[]}", /* a repeated key: the first counts */
	HEAD "\"virtual\\u004dachines\":[" VM "]}",               /* an escaped key */
	HEAD "\"disks\":[{\"id\":\"d\",\"properties\":{\"encryptionSettingsCollection\":[]}}]}",
	HEAD "\"backupProtectedItems\":[{\"properties\":{}}]}",    /* id missing */
	HEAD "\"virtualMachines\":[" VM "],\"vaults\":[1]}",       /* a small list is wrong */
	HEAD "\"virtualMachines\":[],\"disks\":[],\"backupProtectedItems\":[]}",
	HEAD "\"virtualMachines\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
	"{\"kind\":\"kvaudit.estate\",\"version\":2}",
	"[]",
	"   ",
	"{\"kind\":\"kvaudit.estate\",\"version\":1}",
	"{\"kind\":\"kvaudit.estate\",\"version\":1,}",
	"{\"kind\":\"kvaudit.estate\" \"version\":1}",
};

static void bad_input_gets_the_whole_tree_message(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		char what[32];

		snprintf(what, sizeof(what), "case %zu", i);
		compare_text(what, bad_cases[i], strlen(bad_cases[i]));
	}
}

/*
 * A key a reader reads only for its type (or whose value no report shows)
 * must still be parsed: of a wrong type it fails the whole-tree load, and
 * the lean one must fail alike.
 */
static void every_key_read_keeps_its_type_check(void **state)
{
#define T_VM(x) HEAD "\"virtualMachines\":[{\"id\":\"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/" \
	"virtualMachines/v\",\"tags\":{\"x\":1},\"properties\":" x "}]}"
#define T_DISK(x) HEAD "\"disks\":[{\"id\":\"d\",\"sku\":{}," x "}]}"
#define T_ITEM(x) HEAD "\"backupProtectedItems\":[{\"id\":\"i\",\"name\":\"n\",\"properties\":{\"friendlyName\":1," x "}}]}"
#define T_JOB(x) HEAD "\"backupJobs\":[{\"id\":\"j\",\"name\":\"n\",\"properties\":{\"jobType\":1," x "}}]}"
#define T_EVENT(x) HEAD "\"activityLog\":[{\"level\":1," x "}]}"
#define T_CLAIM(k) T_EVENT("\"claims\":{\"aud\":1,\"" k "\":1}")
	static const char *const cases[] = {
		HEAD "\"virtualMachines\":[{\"id\":\"x\",\"name\":1}]}",
		HEAD "\"virtualMachines\":[{\"id\":\"x\",\"location\":1}]}",
		HEAD "\"virtualMachines\":[{\"id\":\"x\",\"properties\":1}]}",
		HEAD "\"virtualMachines\":[{\"id\":\"x\",\"resources\":{}}]}",
		HEAD "\"virtualMachines\":[{\"id\":\"x\",\"resources\":[1]}]}",
		HEAD "\"virtualMachines\":[{\"id\":\"x\",\"resources\":[{\"name\":\"e\",\"properties\":1}]}]}",
		T_VM("{\"storageProfile\":1}"),
		T_VM("{\"storageProfile\":{\"osDisk\":1}}"),
		T_VM("{\"storageProfile\":{\"dataDisks\":{}}}"),
		T_VM("{\"storageProfile\":{\"osDisk\":{\"osType\":1}}}"),
		T_VM("{\"storageProfile\":{\"osDisk\":{\"encryptionSettings\":[]}}}"),
		T_VM("{\"instanceView\":1}"),
		T_VM("{\"instanceView\":{\"vmAgent\":1}}"),
		T_VM("{\"instanceView\":{\"disks\":{}}}"),
		T_VM("{\"instanceView\":{\"osName\":1}}"),
		T_VM("{\"instanceView\":{\"vmAgent\":{\"vmAgentVersion\":1}}}"),
		T_VM("{\"instanceView\":{\"vmAgent\":{\"statuses\":{}}}}"),
		T_DISK("\"name\":1"),
		T_DISK("\"managedBy\":1"),
		T_DISK("\"location\":1"),
		T_DISK("\"properties\":1"),
		T_DISK("\"properties\":{\"encryptionSettingsCollection\":{\"enabled\":\"maybe\"}}"),
		T_DISK("\"properties\":{\"encryptionSettingsCollection\":{\"encryptionSettings\":{}}}"),
		T_DISK("\"properties\":{\"encryptionSettingsCollection\":{\"encryptionSettingsVersion\":1}}"),
		HEAD "\"disks\":[{\"id\":1}]}",
		HEAD "\"backupProtectedItems\":[{\"id\":1}]}",
		HEAD "\"backupProtectedItems\":[{\"id\":\"i\",\"properties\":1}]}",
		T_ITEM("\"virtualMachineId\":1"),
		T_ITEM("\"sourceResourceId\":1"),
		T_ITEM("\"protectionState\":1"),
		T_ITEM("\"lastBackupStatus\":1"),
		T_ITEM("\"healthStatus\":1"),
		T_ITEM("\"lastBackupTime\":1"),
		T_ITEM("\"policyId\":1"),
		HEAD "\"backupJobs\":[{\"id\":1}]}",
		HEAD "\"backupJobs\":[{\"id\":\"j\",\"properties\":1}]}",
		T_JOB("\"entityFriendlyName\":1"),
		T_JOB("\"operation\":1"),
		T_JOB("\"status\":1"),
		T_JOB("\"startTime\":1"),
		T_JOB("\"errorDetails\":{}"),
		T_EVENT("\"operationName\":1"),
		T_EVENT("\"operationName\":{\"value\":1}"),
		T_EVENT("\"status\":1"),
		T_EVENT("\"status\":{\"localizedValue\":\"x\",\"value\":1}"),
		T_EVENT("\"claims\":1"),
		T_EVENT("\"resourceId\":1"),
		T_EVENT("\"caller\":1"),
		T_EVENT("\"eventTimestamp\":1"),
		T_CLAIM("http://schemas.microsoft.com/identity/claims/objectidentifier"),
		T_CLAIM("http://schemas.microsoft.com/identity/claims/tenantid"),
		T_CLAIM("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"),
		T_CLAIM("upn"),
	};
#undef T_VM
#undef T_DISK
#undef T_ITEM
#undef T_JOB
#undef T_EVENT
#undef T_CLAIM

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct estate_opts wo = {0};
		struct kv_err err = {{0}};
		struct estate *e = estate_parse(cases[i], strlen(cases[i]), "x.json", &wo, &err);
		char what[32];

		if (e)
			fail_msg("type case %zu loads: it checks nothing: %s", i, cases[i]);
		snprintf(what, sizeof(what), "type case %zu", i);
		compare_text(what, cases[i], strlen(cases[i]));
	}
}

/* Deep nesting inside an element: cJSON's limit counts from the document, not the element. */
static void nesting_is_judged_from_the_document(void **state)
{
	for (int depth = 995; depth <= 1002; depth++) {
		char *t = kv_malloc((size_t)depth * 2 + 256), *p = t, what[32];

		(void)state;
		p += sprintf(p, HEAD "\"virtualMachines\":[{\"id\":\"x\",\"deep\":");
		for (int k = 0; k < depth; k++)
			*p++ = '[';
		for (int k = 0; k < depth; k++)
			*p++ = ']';
		p += sprintf(p, "}]}");
		snprintf(what, sizeof(what), "depth %d", depth);
		compare_text(what, t, (size_t)(p - t));
		free(t);
	}
}

/*
 * A lean load detects ADE while it parses each VM, from what it kept of the
 * disks and vmExtensions (estate.c, lean_ade): each way ADE detection can
 * find something, alone, must still be found, as by the whole-tree load.
 */
#define SUB "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg/providers/"
#define SETTINGS "{\"diskEncryptionKey\":{\"secretUrl\":\"https://kv1.vault.azure.net/secrets/s/1\"," \
	"\"sourceVault\":{\"id\":\"" SUB "Microsoft.KeyVault/vaults/kv1\"}}}"
#define ESC_DISK(id, by) "{\"id\":\"" id "\",\"name\":\"d\"" by ",\"properties\":{\"encryptionSettingsCollection\":" \
	"{\"enabled\":true,\"encryptionSettings\":[" SETTINGS "]}}}"
#define ADE_EXT "{\"id\":\"" SUB "Microsoft.Compute/virtualMachines/vm1/extensions/ADE\",\"properties\":" \
	"{\"publisher\":\"Microsoft.Azure.Security\",\"type\":\"AzureDiskEncryption\",\"typeHandlerVersion\":\"2.2\"," \
	"\"settings\":{\"KeyVaultResourceId\":\"" SUB "Microsoft.KeyVault/vaults/kv1\"," \
	"\"KeyVaultURL\":\"https://kv1.vault.azure.net/\",\"EncryptionOperation\":\"EnableEncryption\"}}}"
#define MON_EXT "{\"id\":\"" SUB "Microsoft.Compute/virtualMachines/vm1/extensions/Mon\",\"properties\":" \
	"{\"publisher\":\"Microsoft.Azure.Monitor\",\"type\":\"AzureMonitorLinuxAgent\"}}"
#define VM1(props, res) "{\"id\":\"" SUB "Microsoft.Compute/virtualMachines/vm1\",\"name\":\"vm1\"," \
	"\"properties\":" props res "}"

static void a_lean_load_finds_ade_wherever_it_is(void **state)
{
	static const char *const cases[] = {
		/* only a data disk reference, in another case and with a trailing '/', to a disk with ADE */
		HEAD "\"virtualMachines\":[" VM1("{\"storageProfile\":{\"dataDisks\":[{\"managedDisk\":{\"id\":\""
		     SUB "MICROSOFT.COMPUTE/DISKS/D1/\"}}]}}", "") "],"
		     "\"disks\":[" ESC_DISK(SUB "Microsoft.Compute/disks/d0", "") "," ESC_DISK(SUB "Microsoft.Compute/disks/d1", "") "]}",
		/* only a disk that names the VM as managedBy */
		HEAD "\"virtualMachines\":[" VM1("{}", "") "],\"disks\":[" ESC_DISK(SUB "Microsoft.Compute/disks/d1",
		     ",\"managedBy\":\"" SUB "Microsoft.Compute/virtualMachines/vm1\"") "]}",
		/* only the model's osDisk.encryptionSettings */
		HEAD "\"virtualMachines\":[" VM1("{\"storageProfile\":{\"osDisk\":{\"name\":\"os\",\"encryptionSettings\":"
		     SETTINGS "}}}", "") "]}",
		/* only the instance view's, on the second disk */
		HEAD "\"virtualMachines\":[" VM1("{\"instanceView\":{\"disks\":[{\"name\":\"a\"},{\"name\":\"b\","
		     "\"encryptionSettings\":[" SETTINGS "]}]}}", "") "]}",
		/* only an embedded ADE extension */
		HEAD "\"virtualMachines\":[" VM1("{}", ",\"resources\":[" MON_EXT "," ADE_EXT "]") "]}",
		/* an embedded extension that vmExtensions lists again, beside an ADE one listed apart */
		HEAD "\"virtualMachines\":[" VM1("{}", ",\"resources\":[" MON_EXT "]") "],"
		     "\"vmExtensions\":[" MON_EXT "," ADE_EXT "]}",
		/* nothing: a disk without ADE settings and a VM that names it */
		HEAD "\"virtualMachines\":[" VM1("{\"storageProfile\":{\"osDisk\":{\"managedDisk\":{\"id\":\""
		     SUB "Microsoft.Compute/disks/d1\"}}}}", "") "],\"disks\":[{\"id\":\"" SUB "Microsoft.Compute/disks/d1\"}]}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct estate_opts lo = {.lean = true};
		struct kv_err err = {{0}};
		struct estate *e = estate_parse(cases[i], strlen(cases[i]), "x.json", &lo, &err);
		char what[32];

		snprintf(what, sizeof(what), "ADE case %zu", i);
		compare_text(what, cases[i], strlen(cases[i]));
		if (!e)
			fail_msg("%s: %s", what, err.msg);
		assert_int_equal(e->nvms, 1);
		if (e->vms[0].ade.encrypted != (i + 1 < sizeof(cases) / sizeof(cases[0])))
			fail_msg("%s: encrypted is %d", what, e->vms[0].ade.encrypted);
		estate_free(e);
	}
}

/*
 * A list long enough that the loader's worker thread (estate.c, struct
 * ahead) goes round its ring of batches: the same report, and where an
 * element is bad (its JSON, or a field the loader rejects), at the start of
 * a batch, inside one or last, the same message as the whole-tree load.
 */
enum { LONG_N = 2500 };

/* A snapshot of LONG_N VMs and LONG_N disks (~1 MB), with elem instead of VM at (none when at is LONG_N). */
static char *long_list(size_t at, const char *elem, size_t *lenp)
{
	size_t cap = (size_t)LONG_N * 900 + 1024, len = 0;
	char *t = kv_malloc(cap);

	len += (size_t)snprintf(t + len, cap - len, HEAD "\"virtualMachines\":[");
	for (size_t i = 0; i < LONG_N; i++) {
		if (i == at)
			len += (size_t)snprintf(t + len, cap - len, "%s%s", i ? "," : "", elem);
		else
			len += (size_t)snprintf(t + len, cap - len, "%s{\"id\":\"" SUB "Microsoft.Compute/virtualMachines/vm%zu\","
			                        "\"properties\":{\"storageProfile\":{\"osDisk\":{\"managedDisk\":{\"id\":\""
			                        SUB "Microsoft.Compute/disks/d%zu\"}}}}}", i ? "," : "", i, i);
	}
	len += (size_t)snprintf(t + len, cap - len, "],\"disks\":[");
	for (size_t i = 0; i < LONG_N; i++)   /* every third disk has ADE settings */
		len += (size_t)snprintf(t + len, cap - len, "%s{\"id\":\"" SUB "Microsoft.Compute/disks/d%zu\"%s}",
		                        i ? "," : "", i, i % 3 ? "" : ",\"properties\":{\"encryptionSettingsCollection\":"
		                        "{\"enabled\":true,\"encryptionSettings\":[" SETTINGS "]}}");
	len += (size_t)snprintf(t + len, cap - len, "]}");
	assert_true(len < cap);
	*lenp = len;
	return t;
}

static void a_long_list_parsed_ahead_audits_the_same(void **state)
{
	enum { N = LONG_N };
	static const struct {
		size_t at;
		const char *elem;
	} bad[] = {{N, NULL}, {0, "{\"id\":tru}"}, {256, "{\"id\":1}"}, {1300, "{\"id\":\"x\",]"}, {N - 1, "[]"}};

	(void)state;
	for (size_t c = 0; c < sizeof(bad) / sizeof(bad[0]); c++) {
		size_t len;
		char *t = long_list(bad[c].at, bad[c].elem, &len), what[48];

		snprintf(what, sizeof(what), "long list, bad element at %zu", bad[c].at);
		compare_text(what, t, len);
		if (bad[c].at == N) {   /* loaded lean, not by the whole-tree load it falls back to */
			struct estate_opts lo = {.lean = true};
			struct kv_err err = {{0}};
			struct estate *e = estate_parse(t, len, "x.json", &lo, &err);

			assert_non_null(e);
			assert_int_equal(e->nvms, N);
			assert_null(e->vms[N - 1].raw);
			assert_null(e->disks[N - 1].raw);
			assert_true(e->vms[0].ade.encrypted && !e->vms[1].ade.encrypted);   /* disk d0 has ADE, d1 not */
			estate_free(e);
		}
		free(t);
	}
}

/*
 * The scanner (estate.c value_end) reads 64 bytes a block: brackets,
 * quotes and backslashes inside strings, at every offset from a block's
 * start, and a string that ends or an escape that falls on a block's last
 * byte, must give the boundaries the byte-by-byte walk gives.  A wrong one
 * makes fastjson reject the element, and the load fall back to the whole
 * tree (raw kept): the lean load must stay lean.
 */
static void strings_across_the_scanners_blocks_audit_the_same(void **state)
{
	static const char *const tricky[] = {"]}", "{[", "\\\"]}", "\\\\", "x\\\"", "Y_y]"};
	enum { PADS = 140 };
	size_t n = sizeof(tricky) / sizeof(tricky[0]) * PADS;
	size_t cap = n * 300 + 4096, len = 0;
	char *t = kv_malloc(cap);
	struct estate_opts lo = {.lean = true};
	struct kv_err err = {{0}};
	struct estate *e;

	(void)state;
	len += (size_t)snprintf(t + len, cap - len, HEAD "\"virtualMachines\":[");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(t + len, cap - len, "%s{\"id\":\"" SUB "Microsoft.Compute/virtualMachines/vm%zu\","
		                        "\"name\":\"%.*s%s\",\"tags\":{\"t\":[\"%s\",{\"%s\":[]}]}}", i ? "," : "", i,
		                        (int)(i % PADS), "....................................................................."
		                        "......................................................................",
		                        tricky[i / PADS], tricky[i / PADS], tricky[i / PADS]);
	len += (size_t)snprintf(t + len, cap - len, "]}");
	assert_true(len < cap);
	compare_text("strings across blocks", t, len);
	e = estate_parse(t, len, "x.json", &lo, &err);
	assert_non_null(e);
	assert_int_equal(e->nvms, n);
	for (size_t i = 0; i < n; i++)
		assert_null(e->vms[i].raw);   /* loaded lean: every boundary was right */
	estate_free(e);
	free(t);
}

/* value_end of t[0, len) at i with every classifier this CPU has: scan_bytes' answer. */
static void expect_scanners_agree(const char *t, size_t len, size_t i, const char *what)
{
	size_t ref = estate_value_end(t, len, i, ESTATE_SCAN_BYTES);

	for (int how = ESTATE_SCAN_SSE2; how <= ESTATE_SCAN_BEST; how++) {
		size_t got = estate_value_end(t, len, i, how);

		if (got != SIZE_MAX && got != ref)
			fail_msg("%s: classifier %d ends at %zu, scan_bytes at %zu: %.*s", what, how, got, ref, (int)len, t);
	}
}

/* A random value of brackets, strings with backslash runs, and noise; n bytes at most. */
static size_t random_value(char *b, size_t n, int depth, unsigned *seed)
{
	size_t k = 0;
	int kind = depth < 2 ? rand_r(seed) % 2 : rand_r(seed) % 4;

	if (depth > 6 || n < 48)
		kind = 3;
	if (kind <= 1) {
		int items = rand_r(seed) % 9;

		b[k++] = kind ? '{' : '[';
		for (int j = 0; j < items && k + 48 < n; j++) {
			if (j)
				b[k++] = ',';
			k += random_value(b + k, n - k - 2, depth + 1, seed);
		}
		b[k++] = kind ? '}' : ']';
		return k;
	}
	b[k++] = '"';
	for (int j = rand_r(seed) % 70; j > 0 && k + 10 < n; j--) {
		int r = rand_r(seed) % 10;

		if (r == 0) {
			for (int run = 1 + rand_r(seed) % 5; run > 0; run--)
				b[k++] = '\\';
			b[k++] = "\"x{]\\n"[rand_r(seed) % 6];
		} else {
			b[k++] = r == 1 ? "{}[]"[rand_r(seed) % 4] : (char)('a' + rand_r(seed) % 26);
		}
	}
	b[k++] = '"';
	return k;
}

/*
 * value_end's classifiers (SSE2, and AVX2 and AVX-512BW where the CPU has
 * them) against scan_bytes, the byte-by-byte reference: backslash runs of
 * every length 0-6 ending at every offset of two blocks, followed by a
 * quote, a bracket or a letter, with the text cut at every length around
 * them (an escape on the text's last byte); then random values, mutated
 * and cut, starting at every offset of a block.
 */
static void every_scanner_finds_the_same_end(void **state)
{
	char t[4096], what[64];
	unsigned seed = 5;

	(void)state;
	for (int run = 0; run <= 6; run++)
		for (size_t at = 0; at < 140; at++)
			for (const char *x = "\"]a"; *x; x++) {
				size_t len = 0;

				len += (size_t)snprintf(t + len, sizeof(t) - len, "{\"k\":[\"%.*s", (int)at,
				                        "{[\"]}yY_..................................................."
				                        "........................................................."
				                        "...........................");
				for (int r = 0; r < run; r++)
					t[len++] = '\\';
				len += (size_t)snprintf(t + len, sizeof(t) - len, "%c\"],\"z\":[{\"a\":\"]\\\\\"}],"
				                        "\"pad\":\"................................................"
				                        "..................\"}", *x);
				snprintf(what, sizeof(what), "run %d at %zu before '%c'", run, at, *x);
				expect_scanners_agree(t, len, 0, what);
				for (size_t cut = at; cut < at + 16 && cut < len; cut++)
					expect_scanners_agree(t, cut, 0, what);
			}
	for (int k = 0; k < 3000; k++) {
		size_t pre = (size_t)k % 64, len;

		memset(t, ' ', pre);
		len = pre + random_value(t + pre, sizeof(t) - pre - 1, 0, &seed);
		for (int m = rand_r(&seed) % 3; m > 0; m--)
			t[pre + (size_t)rand_r(&seed) % (len - pre)] = "{}[]\"\\ x"[rand_r(&seed) % 8];
		if (rand_r(&seed) % 4 == 0)
			len -= (size_t)rand_r(&seed) % (len - pre);
		snprintf(what, sizeof(what), "random value %d", k);
		expect_scanners_agree(t, len, pre, what);
	}
#if defined(__SSE2__)
	assert_int_not_equal(estate_value_end("[]", 2, 0, ESTATE_SCAN_SSE2), SIZE_MAX);
#endif
}

/*
 * ---- A lean load of a file (estate_load) ----
 * The file is read with pread into buffers that are reused: the scan
 * through a window that is refilled (a value running past its end is
 * scanned again from its start), the members and elements read again
 * later.  Windows as small as one byte put every boundary, key, number,
 * escape and nesting on a window's end.
 */
static char tmpdir[] = "/tmp/kvaudit-lean-XXXXXX";

static char *write_tmp(const char *name, const char *text, size_t len)
{
	char *path = kv_asprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* estate_load of path, lean and whole: the same estate, or the same message. */
static void compare_load(const char *path)
{
	struct estate_opts wo = {0}, lo = {.lean = true};
	struct kv_err ew = {{0}}, el = {{0}};
	struct estate *whole = estate_load(path, &wo, &ew);
	struct estate *lean = estate_load(path, &lo, &el);

	expect_same(path, whole, &ew, lean, &el);
	estate_free(whole);
	estate_free(lean);
}

static void load_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char *path;

		if (strlen(de->d_name) < 5 || strcmp(de->d_name + strlen(de->d_name) - 5, ".json") != 0)
			continue;
		path = kv_asprintf("%s/%s", dir, de->d_name);
		compare_load(path);
		free(path);
	}
	closedir(d);
}

/* path loads lean (element by element: no raw JSON kept), with nvms VMs (0: any). */
static void expect_lean(const char *path, size_t nvms)
{
	struct estate_opts lo = {.lean = true};
	struct kv_err err = {{0}};
	struct estate *e = estate_load(path, &lo, &err);

	if (!e)
		fail_msg("%s", err.msg);
	assert_true(e->nvms > 0);
	if (nvms)
		assert_int_equal(e->nvms, nvms);
	assert_null(e->vms[e->nvms - 1].raw);
	estate_free(e);
}

#define SCALARS "{\"kind\" : \"kvaudit.estate\", \"version\":1.000,\"x\":true,\"y\":-12.5e3,\"z\":null," \
	"\"w\":\"a\\\"b\\\\\",\"virtualMachines\":[" VM "] , \"v\" : false }"

static void a_file_read_through_small_windows_loads_the_same(void **state)
{
	static const size_t reads[] = {1, 2, 63, 64, 65, 1000, 0};
	size_t len, deep_len;
	char *text = long_list(LONG_N, NULL, &len), *deep = kv_malloc(1024), *p = deep;
	char *big = write_tmp("long.json", text, len), *nested, *scalars;

	(void)state;
	p += sprintf(p, HEAD "\"virtualMachines\":[");   /* deeper than the scanner goes (SCAN_MAX_DEPTH) */
	for (int k = 0; k < 300; k++)
		*p++ = '[';
	for (int k = 0; k < 300; k++)
		*p++ = ']';
	p += sprintf(p, "]}");
	deep_len = (size_t)(p - deep);
	nested = write_tmp("deep.json", deep, deep_len);
	/* Top-level values that do not end in a bracket: cut by a window, they must be read again whole. */
	scalars = write_tmp("scalars.json", SCALARS, strlen(SCALARS));
	for (size_t r = 0; r < sizeof(reads) / sizeof(reads[0]); r++) {
		estate_test_io(reads[r], NULL);
		compare_load(KV_SOURCE_DIR "/examples/demo-estate.json");
		expect_lean(KV_SOURCE_DIR "/examples/demo-estate.json", 0);
		load_dir(KV_SOURCE_DIR "/tests/unit/data/estate");
		load_dir(KV_SOURCE_DIR "/tests/fuzz/corpus/fuzz_estate");
		compare_load(nested);
		compare_load(scalars);
		expect_lean(scalars, 1);
		for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
			char *path = write_tmp("bad.json", bad_cases[i], strlen(bad_cases[i]));

			compare_load(path);
			free(path);
		}
		if (reads[r] >= 64) {   /* a byte at a time is too slow for a test here */
			compare_load(big);
			expect_lean(big, LONG_N);
		}
	}
	estate_test_io(0, NULL);
	unlink(big);
	unlink(nested);
	unlink(scalars);
	free(big);
	free(nested);
	free(scalars);
	free(text);
	free(deep);
}

/* What a hook does to the file between the scan and the parse. */
static const char *change_text;   /* written over the file (same length): in place, or renamed over it */
static size_t cut_to;

static void cut(const char *path)
{
	assert_int_equal(truncate(path, (off_t)cut_to), 0);
}

static void overwrite(const char *path)
{
	int fd = open(path, O_WRONLY);
	struct timespec t[2] = {{1577836800, 0}, {1577836800, 0}};   /* 2020: surely not its time now */

	assert_true(fd >= 0);
	assert_int_equal(write(fd, change_text, strlen(change_text)), (ssize_t)strlen(change_text));
	assert_int_equal(futimens(fd, t), 0);
	close(fd);
}

static void replace(const char *path)
{
	char *tmp = write_tmp("new.json", change_text, strlen(change_text));

	assert_int_equal(rename(tmp, path), 0);
	free(tmp);
}

static void expect_changed(const char *path, void (*hook)(const char *))
{
	struct estate_opts lo = {.lean = true};
	struct kv_err err = {{0}};
	struct estate *e;
	char *want = kv_asprintf("cannot read '%s': the file changed while it was read", path);

	estate_test_io(0, hook);
	e = estate_load(path, &lo, &err);
	estate_test_io(0, NULL);
	assert_null(e);
	assert_string_equal(err.msg, want);
	free(want);
}

static void a_file_that_changes_while_it_is_read_fails(void **state)
{
	static const char one[] = HEAD "\"virtualMachines\":[" VM "],\"disks\":[]}";
	size_t len;
	char *text = long_list(LONG_N, NULL, &len), *path, *other;
	struct estate_opts lo = {.lean = true};
	struct kv_err err = {{0}};
	struct estate *e, *want;

	(void)state;
	/* Cut in the members read first (src_doc), in the lists the worker reads, in a list of one element. */
	path = write_tmp("cut.json", text, len);
	cut_to = 10;
	expect_changed(path, cut);
	free(path);
	path = write_tmp("cut.json", text, len);
	cut_to = len / 2;
	expect_changed(path, cut);
	free(path);
	path = write_tmp("cut.json", one, strlen(one));
	cut_to = strlen(one) - 20;
	expect_changed(path, cut);
	/* Written in place with as many bytes: only the time says so. */
	change_text = "{\"kind\":\"kvaudit.estate\",\"version\":1,\"virtualMachines\":[]}";
	assert_true(strlen(change_text) < strlen(one));
	free(path);
	path = write_tmp("cut.json", one, strlen(one));
	expect_changed(path, overwrite);
	/* Replaced (renamed over): the file that was opened is read to its end, as it was. */
	free(path);
	path = write_tmp("cut.json", text, len);
	other = long_list(7, "{\"id\":\"" SUB "Microsoft.Compute/virtualMachines/other\"}", &(size_t){0});
	change_text = other;
	estate_test_io(0, replace);
	e = estate_load(path, &lo, &err);
	estate_test_io(0, NULL);
	if (!e)
		fail_msg("%s", err.msg);
	want = estate_parse(text, len, path, &lo, &err);
	assert_non_null(want);
	expect_same("replaced", want, &err, e, &err);
	estate_free(e);
	estate_free(want);
	/* Now the other one is there. */
	e = estate_load(path, &lo, &err);
	assert_non_null(e);
	assert_string_equal(e->vms[7].id, SUB "Microsoft.Compute/virtualMachines/other");
	estate_free(e);
	unlink(path);
	free(path);
	free(other);
	free(text);
}

/* A pipe is not a regular file, lean or not, as before (each load opens it, a writer after another). */
static void a_pipe_gets_the_message_it_always_got(void **state)
{
	char *fifo = kv_asprintf("%s/pipe", tmpdir), *want = kv_asprintf("'%s' is not a regular file", fifo);
	struct estate_opts opts[] = {{.lean = true}, {0}};
	pid_t pid;

	(void)state;
	assert_int_equal(mkfifo(fifo, 0600), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGPIPE, SIG_IGN);
		for (;;) {   /* until killed */
			int fd = open(fifo, O_WRONLY);

			if (fd >= 0) {
				(void)!write(fd, "{}", 2);
				close(fd);
			}
		}
	}
	for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
		struct kv_err err = {{0}};

		assert_null(estate_load(fifo, &opts[k], &err));
		assert_string_equal(err.msg, want);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(fifo);
	free(fifo);
	free(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_scanner_finds_the_same_end),
		cmocka_unit_test(strings_across_the_scanners_blocks_audit_the_same),
		cmocka_unit_test(a_long_list_parsed_ahead_audits_the_same),
		cmocka_unit_test(a_lean_load_finds_ade_wherever_it_is),
		cmocka_unit_test(every_snapshot_of_the_tests_audits_the_same),
		cmocka_unit_test(every_key_read_keeps_its_type_check),
		cmocka_unit_test(a_job_of_every_error_kind_audits_the_same),
		cmocka_unit_test(the_lean_load_keeps_no_raw_json_of_the_big_lists),
		cmocka_unit_test(bad_input_gets_the_whole_tree_message),
		cmocka_unit_test(nesting_is_judged_from_the_document),
		cmocka_unit_test(a_file_read_through_small_windows_loads_the_same),
		cmocka_unit_test(a_file_that_changes_while_it_is_read_fails),
		cmocka_unit_test(a_pipe_gets_the_message_it_always_got),
	};
	int rc;
	struct kv_err err = {{0}};

	if (!rule_catalog_load_builtin(&catalog, &err)) {
		fprintf(stderr, "builtin catalog: %s\n", err.msg);
		return 1;
	}
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(tmpdir);
	return rc;
}
