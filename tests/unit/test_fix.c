/*
 * test_fix.c - remediation without the network: the change computed from a
 * vault's current access policies (only what is missing; keys only with a
 * KEK; PascalCase and "all" entries; other principals untouched), what a
 * rollback removes (in the stored casing), the plan from the demo estate,
 * and the journal's round trip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/estate/facts.h"
#include "audit/fix/fix.h"
#include "rules/engine.h"

#define T "3f6b2c8e-5a41-4d7f-9c2e-8b1a7d4e6f20"
#define BMS "7e5c3a91-0d2f-4b6e-a8c4-19f2e6d0b3a5"
#define OTHER "f6d2b8a4-0e17-4c39-b5a3-7d9e1f4c2b60"

static cJSON *parse(const char *text)
{
	cJSON *j = cJSON_Parse(text);

	if (!j)
		fail_msg("bad test JSON: %s", text);
	return j;
}

/* The JSON text of j, compact, for comparisons (caller frees). */
static char *compact(const cJSON *j)
{
	return cJSON_PrintUnformatted(j);
}

static void assert_json(const cJSON *j, const char *expected)
{
	cJSON *e = parse(expected);
	char *a = compact(j), *b = compact(e);

	assert_string_equal(a, b);
	free(a);
	free(b);
	cJSON_Delete(e);
}

/* A vault document as Vaults_Get returns it, with the given access policies. */
static cJSON *vault_with(const char *policies)
{
	char *text = kv_asprintf("{\"id\":\"/subscriptions/x/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv\","
	                         "\"properties\":{\"tenantId\":\"" T "\",\"accessPolicies\":%s}}", policies);
	cJSON *v = parse(text);

	free(text);
	return v;
}

static void no_entry_needs_the_whole_template(void **state)
{
	cJSON *v = vault_with("[]");
	const cJSON *e = fix_find_entry(v, T, BMS);
	cJSON *m;

	(void)state;
	assert_null(e);
	m = fix_missing(e, true, false);
	assert_json(m, "{\"secrets\":[\"get\",\"list\",\"backup\"]}");
	cJSON_Delete(m);
	m = fix_missing(e, true, true);
	assert_json(m, "{\"secrets\":[\"get\",\"list\",\"backup\"],\"keys\":[\"get\",\"list\",\"backup\"]}");
	cJSON_Delete(m);
	cJSON_Delete(v);
}

static void only_missing_permissions_are_added(void **state)
{
	cJSON *v = vault_with("[{\"tenantId\":\"" T "\",\"objectId\":\"" BMS "\","
	                      "\"permissions\":{\"secrets\":[\"get\",\"list\"],\"keys\":[\"get\"]}}]");
	cJSON *m = fix_missing(fix_find_entry(v, T, BMS), true, true);

	(void)state;
	assert_json(m, "{\"secrets\":[\"backup\"],\"keys\":[\"list\",\"backup\"]}");
	cJSON_Delete(m);
	cJSON_Delete(v);
}

static void keys_only_where_a_kek_is_kept(void **state)
{
	cJSON *v = vault_with("[{\"tenantId\":\"" T "\",\"objectId\":\"" BMS "\",\"permissions\":{\"secrets\":[]}}]");
	cJSON *bek_only = fix_missing(fix_find_entry(v, T, BMS), true, false);
	cJSON *kek_only = fix_missing(fix_find_entry(v, T, BMS), false, true);

	(void)state;
	assert_null(cJSON_GetObjectItemCaseSensitive(bek_only, "keys"));
	assert_null(cJSON_GetObjectItemCaseSensitive(kek_only, "secrets"));
	assert_json(kek_only, "{\"keys\":[\"get\",\"list\",\"backup\"]}");
	cJSON_Delete(bek_only);
	cJSON_Delete(kek_only);
	cJSON_Delete(v);
}

static void portal_cased_entry_counts_case_insensitively(void **state)
{
	cJSON *v = vault_with("[{\"tenantId\":\"" T "\",\"objectId\":\"" BMS "\","
	                      "\"permissions\":{\"secrets\":[\"Get\",\"List\"],\"keys\":[\"Get\",\"List\",\"Backup\"]}}]");
	cJSON *m = fix_missing(fix_find_entry(v, T, BMS), true, true);

	(void)state;
	assert_json(m, "{\"secrets\":[\"backup\"]}");
	cJSON_Delete(m);
	cJSON_Delete(v);
}

static void all_already_grants_everything(void **state)
{
	cJSON *v = vault_with("[{\"tenantId\":\"" T "\",\"objectId\":\"" BMS "\","
	                      "\"permissions\":{\"secrets\":[\"All\"],\"keys\":[\"all\"]}}]");
	cJSON *m = fix_missing(fix_find_entry(v, T, BMS), true, true);

	(void)state;
	assert_true(fix_perms_empty(m));
	assert_json(m, "{}");
	cJSON_Delete(m);
	cJSON_Delete(v);
}

static void another_principal_is_neither_read_nor_sent(void **state)
{
	/* Another principal holds the whole template; BMS has nothing; a compound identity of BMS does not count. */
	cJSON *v = vault_with("[{\"tenantId\":\"" T "\",\"objectId\":\"" OTHER "\","
	                      "\"permissions\":{\"secrets\":[\"get\",\"list\",\"backup\"]}},"
	                      "{\"tenantId\":\"" T "\",\"objectId\":\"" BMS "\",\"applicationId\":\"app\","
	                      "\"permissions\":{\"secrets\":[\"get\",\"list\",\"backup\"]}}]");
	const cJSON *e = fix_find_entry(v, T, BMS);
	cJSON *m, *body;
	const cJSON *list;

	(void)state;
	assert_null(e);
	m = fix_missing(e, true, false);
	body = fix_policy_request(T, BMS, m);
	list = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(body, "properties"), "accessPolicies");
	assert_int_equal(cJSON_GetArraySize(list), 1);
	assert_json(body, "{\"properties\":{\"accessPolicies\":[{\"tenantId\":\"" T "\",\"objectId\":\"" BMS "\","
	                  "\"permissions\":{\"secrets\":[\"get\",\"list\",\"backup\"]}}]}}");
	cJSON_Delete(body);
	cJSON_Delete(m);
	cJSON_Delete(v);
}

static void an_entry_of_another_tenant_is_not_the_principals(void **state)
{
	cJSON *v = vault_with("[{\"tenantId\":\"9c1d4e7a-2b36-4f58-a1c9-5e0f3b7d2a84\",\"objectId\":\"" BMS "\","
	                      "\"permissions\":{\"secrets\":[\"get\",\"list\",\"backup\"]}}]");

	(void)state;
	assert_null(fix_find_entry(v, T, BMS));
	assert_non_null(fix_find_entry(v, "9C1D4E7A-2B36-4F58-A1C9-5E0F3B7D2A84", BMS));
	cJSON_Delete(v);
}

static void rollback_removes_only_what_was_added_in_the_stored_casing(void **state)
{
	cJSON *prior = parse("{\"permissions\":{\"secrets\":[\"Get\",\"List\"]}}");
	cJSON *requested = parse("{\"secrets\":[\"backup\"],\"keys\":[\"get\",\"list\",\"backup\"]}");
	/* After the add, the service kept the portal's casing and spelt new names its own way. */
	cJSON *current = parse("{\"permissions\":{\"secrets\":[\"Get\",\"List\",\"Backup\"],"
	                       "\"keys\":[\"Get\",\"list\",\"backup\"]}}");
	cJSON *r = fix_removal(prior, requested, current);

	(void)state;
	assert_json(r, "{\"secrets\":[\"Backup\"],\"keys\":[\"Get\",\"list\",\"backup\"]}");
	cJSON_Delete(r);
	/* Nothing there any more: nothing to remove. */
	cJSON_Delete(current);
	current = parse("{\"permissions\":{\"secrets\":[\"Get\",\"List\"]}}");
	r = fix_removal(prior, requested, current);
	assert_true(fix_perms_empty(r));
	cJSON_Delete(r);
	cJSON_Delete(current);
	/* No prior entry: everything requested that is there goes, and nothing else. */
	current = parse("{\"permissions\":{\"secrets\":[\"Get\",\"backup\",\"Set\"]}}");
	r = fix_removal(NULL, requested, current);
	assert_json(r, "{\"secrets\":[\"backup\"]}");
	cJSON_Delete(r);
	cJSON_Delete(current);
	cJSON_Delete(requested);
	cJSON_Delete(prior);
}

static char *tmp_path(const char *name)
{
	char tmpl[] = "/tmp/kvaudit-test-fix-XXXXXX";
	char *d = mkdtemp(tmpl);

	if (!d)
		fail_msg("mkdtemp: %s", strerror(errno));
	return kv_asprintf("%s/%s", d, name);
}

/* The journal at path reads back as n whole entries, the last equal to last. */
static void assert_whole_lines(const char *path, int n, const cJSON *last)
{
	struct kv_err err = {{0}};
	size_t torn = 99;
	cJSON *back = fix_journal_read(path, &torn, &err);

	assert_non_null(back);
	assert_int_equal(torn, 0);
	assert_int_equal(cJSON_GetArraySize(back), n);
	assert_true(cJSON_Compare(cJSON_GetArrayItem(back, n - 1), last, true));
	cJSON_Delete(back);
}

static void journal_round_trips_and_is_private(void **state)
{
	char *path = tmp_path("j.journal");
	struct fix_journal j;
	struct kv_err err = {{0}};
	cJSON *a = parse("{\"type\":\"grant\",\"phase\":\"intent\",\"prior\":null,\"request\":{\"x\":[\"Get\"]}}");
	cJSON *b = parse("{\"type\":\"grant\",\"phase\":\"result\",\"ok\":true,\"note\":\"line\\nbreak\"}");
	cJSON *back;
	struct stat st;
	size_t torn = 99;
	FILE *f;

	(void)state;
	assert_true(fix_journal_open(&j, path, true, &err));
	assert_true(fix_journal_append(&j, a, &err));
	assert_true(fix_journal_append(&j, b, &err));
	fix_journal_close(&j);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	back = fix_journal_read(path, &torn, &err);
	assert_non_null(back);
	assert_int_equal(torn, 0);
	assert_int_equal(cJSON_GetArraySize(back), 2);
	assert_true(cJSON_Compare(cJSON_GetArrayItem(back, 0), a, true));
	assert_true(cJSON_Compare(cJSON_GetArrayItem(back, 1), b, true));
	cJSON_Delete(back);
	/* A line cut short by a killed run is ignored and named; the complete ones are kept. */
	f = fopen(path, "a");
	assert_non_null(f);
	fputs("{\"type\":\"grant\",\"pha", f);
	fclose(f);
	back = fix_journal_read(path, &torn, &err);
	assert_non_null(back);
	assert_int_equal(torn, 3);
	assert_int_equal(cJSON_GetArraySize(back), 2);
	cJSON_Delete(back);
	/* Appending again removes it first, so the next entry is not glued to it. */
	assert_true(fix_journal_open(&j, path, true, &err));
	assert_int_equal(j.cut, strlen("{\"type\":\"grant\",\"pha"));
	assert_int_equal(j.cut_line, 3);
	assert_true(fix_journal_append(&j, a, &err));
	fix_journal_close(&j);
	assert_whole_lines(path, 3, a);
	/* A file that is one torn line only is emptied. */
	f = fopen(path, "w");
	fputs("{\"ty", f);
	fclose(f);
	assert_true(fix_journal_open(&j, path, true, &err));
	assert_int_equal(j.cut, 4);
	fix_journal_close(&j);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);
	/* A damaged complete line is an error naming the line. */
	f = fopen(path, "w");
	fputs("{\"ok\":1}\nnot json\n", f);
	fclose(f);
	assert_null(fix_journal_read(path, &torn, &err));
	assert_non_null(strstr(err.msg, "line 2"));
	unlink(path);
	*strrchr(path, '/') = '\0';
	rmdir(path);
	free(path);
	cJSON_Delete(a);
	cJSON_Delete(b);
}

/*
 * One run per journal: while one fix_journal holds it (an exclusive flock
 * per open file, so a second open in the same process conflicts as another
 * process would), a second open fails as busy, naming the journal, and
 * leaves it alone (its incomplete last line is not cut); closed, it opens.
 * rollback does not create a journal that is not there.
 */
static void a_journal_is_locked_while_open(void **state)
{
	char *path = tmp_path("lock.journal");
	struct fix_journal j, k;
	struct kv_err err = {{0}};
	struct stat st;
	FILE *f;

	(void)state;
	assert_false(fix_journal_open(&k, path, false, &err));
	assert_false(k.busy);
	assert_int_not_equal(stat(path, &st), 0);
	assert_true(fix_journal_open(&j, path, true, &err));
	f = fopen(path, "a");
	fputs("{\"torn", f);
	fclose(f);
	assert_false(fix_journal_open(&k, path, true, &err));
	assert_true(k.busy);
	assert_int_equal(k.fd, -1);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "held by another kvaudit"));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 6);
	fix_journal_close(&j);
	assert_true(fix_journal_open(&k, path, false, &err));
	assert_false(k.busy);
	assert_int_equal(k.cut, 6);
	assert_int_equal(k.cut_line, 1);
	fix_journal_close(&k);
	unlink(path);
	*strrchr(path, '/') = '\0';
	rmdir(path);
	free(path);
}

/*
 * A full disk in the middle of an append: RLIMIT_FSIZE (SIGXFSZ ignored)
 * lets part of the line through, then write() fails with EFBIG, as a full
 * disk gives a short write and then ENOSPC.  The append fails and the file
 * is cut back to what it was: no torn line, and the next append is whole.
 */
static void a_failed_append_leaves_no_torn_line(void **state)
{
	char *path = tmp_path("full.journal");
	struct fix_journal j;
	struct kv_err err = {{0}};
	cJSON *a = parse("{\"type\":\"grant\",\"phase\":\"intent\",\"request\":{\"x\":[\"Get\",\"List\"]}}");
	struct rlimit saved, lim;
	struct stat st;
	off_t before;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	signal(SIGXFSZ, SIG_IGN);
	assert_true(fix_journal_open(&j, path, true, &err));
	assert_true(fix_journal_append(&j, a, &err));
	assert_int_equal(fstat(j.fd, &st), 0);
	before = st.st_size;
	lim = saved;
	lim.rlim_cur = (rlim_t)before + 10; /* room for 10 bytes of the next line */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_false(fix_journal_append(&j, a, &err));
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	assert_non_null(strstr(err.msg, "cannot write the journal"));
	assert_non_null(strstr(err.msg, strerror(EFBIG)));
	assert_null(strstr(err.msg, "could not be removed"));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, before);
	/* Room again: the next entry is a line of its own. */
	assert_true(fix_journal_append(&j, a, &err));
	fix_journal_close(&j);
	assert_whole_lines(path, 2, a);
	signal(SIGXFSZ, SIG_DFL);
	unlink(path);
	*strrchr(path, '/') = '\0';
	rmdir(path);
	free(path);
	cJSON_Delete(a);
}

static const cJSON *plan_item(const cJSON *plan, const char *name)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, plan)
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name")), name) == 0)
			return it;
	return NULL;
}

static void plan_from_the_demo_estate(void **state)
{
	struct kv_err err = {{0}};
	struct estate_opts eo = {0};
	struct estate *e = estate_load(KV_SOURCE_DIR "/examples/demo-estate.json", &eo, &err);
	struct rule_catalog cat = {0};
	struct audit_opts ao = {.fail_on = SEV_LOW, .source = "demo"};
	struct fix_plan_opts po = {0};
	const char *only[] = {"KVA-BKP-002"};
	cJSON *report, *plan;
	const cJSON *it;

	(void)state;
	assert_non_null(e);
	assert_true(rule_catalog_load_builtin(&cat, &err));
	report = audit_run(e, &cat, &ao);
	plan = fix_plan(report, e, &po);
	/* BEK+KEK vault with no entry: the whole template for both. */
	it = plan_item(plan, "kv-nwlog-data-eus");
	assert_non_null(it);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "kind")), "access-policy");
	assert_json(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(it, "change"), "accessPolicy"), "permissions"),
		"{\"secrets\":[\"get\",\"list\",\"backup\"],\"keys\":[\"get\",\"list\",\"backup\"]}");
	/* KEK-only vault: keys only, and only what is missing. */
	it = plan_item(plan, "kv-nw-shared-weu");
	assert_non_null(it);
	assert_json(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(it, "change"), "accessPolicy"), "permissions"), "{\"keys\":[\"backup\"]}");
	/* RBAC vault: a role assignment of Key Vault Administrator. */
	it = plan_item(plan, "kv-nwlog-rbac-eus");
	assert_non_null(it);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "kind")), "role-assignment");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(it, "change"), "roleDefinitionId")), FIX_ROLE_KV_ADMINISTRATOR);
	/* No Backup Management Service in the tenant: skipped, with the reason. */
	it = plan_item(plan, "kv-nwold-archive-weu");
	assert_non_null(it);
	assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "skip")));
	/* Compliant vaults are not in the plan; vault settings only when asked. */
	assert_null(plan_item(plan, "kv-nw-prod-weu"));
	assert_null(plan_item(plan, "kv-nw-dev-neu"));
	cJSON_Delete(plan);
	/* --rule filters. */
	po.rules = only;
	po.nrules = 1;
	plan = fix_plan(report, e, &po);
	assert_null(plan_item(plan, "kv-nwlog-rbac-eus"));
	it = plan_item(plan, "kv-nwlog-data-eus");
	assert_non_null(it);
	assert_json(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(it, "change"), "accessPolicy"), "permissions"),
		"{\"keys\":[\"get\",\"list\",\"backup\"]}");
	cJSON_Delete(plan);
	/* --include-vault-settings plans the settings too. */
	memset(&po, 0, sizeof(po));
	po.include_vault_settings = true;
	plan = fix_plan(report, e, &po);
	it = plan_item(plan, "kv-nw-dev-neu");
	assert_non_null(it);
	assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(it, "settings")));
	cJSON_Delete(plan);
	cJSON_Delete(report);
	rule_catalog_release(&cat);
	estate_free(e);
}

/* Suppressed findings plan no change and are listed; a suppressed category is left out. */
static void suppressed_findings_plan_no_change(void **state)
{
	static const char supp_text[] =
		"{\"kind\":\"kvaudit.suppressions\",\"version\":1,\"suppressions\":["
		"{\"rule\":\"KVA-BKP-002\",\"resource\":\"/vaults/kv-nwlog-data-eus$\",\"reason\":\"keys via HSM\","
		"\"owner\":\"sec@example\",\"expires\":\"2099-12-31\"},"
		"{\"rule\":\"KVA-BKP-004\",\"resource\":\"kv-nwlog-rbac-eus\",\"reason\":\"reporting vault\","
		"\"owner\":\"ops@example\",\"expires\":\"2099-12-31\"},"
		"{\"rule\":\"KVA-VLT-002\",\"resource\":\"kv-nw-dev-neu\",\"reason\":\"dev\","
		"\"owner\":\"dev@example\",\"expires\":\"2099-12-31\"}]}";
	struct kv_err err = {{0}};
	struct estate_opts eo = {0};
	struct estate *e = estate_load(KV_SOURCE_DIR "/examples/demo-estate.json", &eo, &err);
	struct rule_catalog cat = {0};
	struct suppressions supp = {0};
	struct audit_opts ao = {.fail_on = SEV_LOW, .source = "demo"};
	struct fix_plan_opts po = {0};
	cJSON *report, *plan;
	const cJSON *it, *sup;

	(void)state;
	assert_non_null(e);
	assert_true(rule_catalog_load_builtin(&cat, &err));
	assert_true(suppressions_parse(supp_text, strlen(supp_text), "supp.json", &cat, "2026-11-28", &supp, &err));
	ao.suppressions = &supp;
	report = audit_run(e, &cat, &ao);
	po.include_vault_settings = true;
	plan = fix_plan(report, e, &po);
	/* BEK+KEK vault whose KEK finding is accepted: secrets only. */
	it = plan_item(plan, "kv-nwlog-data-eus");
	assert_non_null(it);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "keys")));
	assert_json(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(it, "change"), "accessPolicy"), "permissions"),
		"{\"secrets\":[\"get\",\"list\",\"backup\"]}");
	sup = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(it, "suppressed"), 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sup, "rule")), "KVA-BKP-002");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sup, "owner")), "sec@example");
	/* RBAC vault with only a suppressed finding: listed, nothing to do. */
	it = plan_item(plan, "kv-nwlog-rbac-eus");
	assert_non_null(it);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "kind")), "none");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(it, "change")));
	assert_false(fix_item_actionable(it));
	/* Settings: purge protection suppressed, disk encryption still planned. */
	it = plan_item(plan, "kv-nw-dev-neu");
	assert_non_null(it);
	assert_json(cJSON_GetObjectItemCaseSensitive(it, "settings"), "{\"enabledForDiskEncryption\":true}");
	assert_true(fix_item_actionable(it));
	cJSON_Delete(plan);
	cJSON_Delete(report);
	suppressions_release(&supp);
	rule_catalog_release(&cat);
	estate_free(e);
}

static void settings_reversibility(void **state)
{
	cJSON *it = parse("{\"kind\":\"none\",\"skip\":null,\"settings\":{\"enablePurgeProtection\":true}}");

	(void)state;
	assert_true(fix_setting_reversible("enabledForDiskEncryption"));
	assert_false(fix_setting_reversible("enableSoftDelete"));
	assert_false(fix_setting_reversible("enablePurgeProtection"));
	assert_true(fix_item_has_settings(it));
	assert_true(fix_item_actionable(it));
	cJSON_ReplaceItemInObjectCaseSensitive(it, "settings", cJSON_CreateNull());
	assert_false(fix_item_actionable(it));
	cJSON_Delete(it);
}

/* The RBAC coverage fix's live re-check shares with the audit (facts_rbac_cover_add). */
static void rbac_coverage_of_other_roles(void **state)
{
	struct facts_rbac_cover cv = {{false}, {false}};
	cJSON *allow = parse("[\"Microsoft.KeyVault/vaults/secrets/*\",\"Microsoft.KeyVault/vaults/keys/*\"]");
	cJSON *deny = parse("[\"Microsoft.KeyVault/vaults/secrets/backup/action\"]");

	(void)state;
	/* Key Vault Secrets User lacks secrets/backup. */
	assert_true(facts_rbac_cover_add(&cv, "4633458b-17de-408a-b874-0445c86b69e6", NULL, NULL));
	assert_false(facts_rbac_covers_secrets(&cv));
	/* An unknown custom role without its definition adds nothing. */
	assert_false(facts_rbac_cover_add(&cv, "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"
	                                       "11111111-2222-3333-4444-555555555555", NULL, NULL));
	/* A custom role whose notDataActions take the backup away does not cover. */
	assert_true(facts_rbac_cover_add(&cv, "11111111-2222-3333-4444-555555555555", allow, deny));
	assert_false(facts_rbac_covers_secrets(&cv));
	assert_true(facts_rbac_covers_keys(&cv));
	/* Key Vault Secrets Officer adds it: secrets covered by the roles together. */
	assert_true(facts_rbac_cover_add(&cv, "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"
	                                      "b86a8fe4-44ce-4948-aee5-eccb2c155cd7", NULL, NULL));
	assert_true(facts_rbac_covers_secrets(&cv));
	/* ARM action wildcards and notActions, as Permissions_ListForResource returns them. */
	cJSON_Delete(allow);
	cJSON_Delete(deny);
	allow = parse("[\"*\"]");
	deny = parse("[\"Microsoft.KeyVault/vaults/accessPolicies/*\"]");
	assert_true(facts_actions_cover(allow, deny, "Microsoft.KeyVault/vaults/write"));
	assert_false(facts_actions_cover(allow, deny, "Microsoft.KeyVault/vaults/accessPolicies/write"));
	cJSON_Delete(allow);
	allow = parse("[\"*/read\"]");
	assert_false(facts_actions_cover(allow, NULL, "Microsoft.Authorization/roleAssignments/write"));
	assert_true(facts_actions_cover(allow, NULL, "Microsoft.KeyVault/vaults/read"));
	cJSON_Delete(allow);
	cJSON_Delete(deny);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(no_entry_needs_the_whole_template),
		cmocka_unit_test(only_missing_permissions_are_added),
		cmocka_unit_test(keys_only_where_a_kek_is_kept),
		cmocka_unit_test(portal_cased_entry_counts_case_insensitively),
		cmocka_unit_test(all_already_grants_everything),
		cmocka_unit_test(another_principal_is_neither_read_nor_sent),
		cmocka_unit_test(an_entry_of_another_tenant_is_not_the_principals),
		cmocka_unit_test(rollback_removes_only_what_was_added_in_the_stored_casing),
		cmocka_unit_test(journal_round_trips_and_is_private),
		cmocka_unit_test(a_failed_append_leaves_no_torn_line),
		cmocka_unit_test(a_journal_is_locked_while_open),
		cmocka_unit_test(plan_from_the_demo_estate),
		cmocka_unit_test(suppressed_findings_plan_no_change),
		cmocka_unit_test(settings_reversibility),
		cmocka_unit_test(rbac_coverage_of_other_roles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
