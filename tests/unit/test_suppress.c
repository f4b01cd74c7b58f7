/* test_suppress.c - suppressions: loading, validation, matching and expiry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audit/suppress.h"

static struct rule_catalog cat;

static int setup(void **state)
{
	struct kv_err err = {{0}};

	(void)state;
	return rule_catalog_load_builtin(&cat, &err) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	rule_catalog_release(&cat);
	return 0;
}

static bool load(const char *text, struct suppressions *s, struct kv_err *err)
{
	return suppressions_parse(text, strlen(text), "supp.json", &cat, "2026-11-28", s, err);
}

#define ONE(rule, res, expires) \
	"{\"kind\":\"kvaudit.suppressions\",\"version\":1,\"suppressions\":[{\"rule\":\"" rule "\",\"resource\":\"" res \
	"\",\"reason\":\"accepted\",\"owner\":\"sec\",\"expires\":\"" expires "\"}]}"

static void bad_files_are_rejected_with_their_path(void **state)
{
	static const struct {
		const char *text, *want;
	} rows[] = {
		{"not json", "invalid JSON"},
		{"{\"kind\":\"other\"}", "$.kind"},
		{"{\"kind\":\"kvaudit.suppressions\",\"suppressions\":{}}", "$.suppressions: expected an array"},
		{ONE("KVA-NOPE-001", "x", "2030-01-01"), "no rule 'KVA-NOPE-001'"},
		{ONE("KVA-BKP-003", "(unclosed", "2030-01-01"), "$.suppressions[0].resource: bad pattern"},
		{ONE("KVA-BKP-003", "x", "31/12/2030"), "$.suppressions[0].expires"},
		{ONE("KVA-BKP-003", "x", "2030-13-01"), "$.suppressions[0].expires"},
		{"{\"kind\":\"kvaudit.suppressions\",\"suppressions\":[{\"rule\":\"KVA-BKP-003\",\"resource\":\"x\","
		 "\"owner\":\"o\",\"expires\":\"2030-01-01\"}]}", "$.suppressions[0].reason"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct suppressions s;
		struct kv_err err = {{0}};

		assert_false(load(rows[i].text, &s, &err));
		if (!strstr(err.msg, rows[i].want))
			fail_msg("row %zu: '%s' lacks '%s'", i, err.msg, rows[i].want);
		assert_non_null(strstr(err.msg, "supp.json"));
		assert_int_equal(s.n, 0);
	}
}

static void a_matching_suppression_describes_itself(void **state)
{
	struct suppressions s;
	struct kv_err err = {{0}};
	const char *ids[4] = {NULL, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/KV-Dev",
	                      "/subscriptions/s", "t"};
	cJSON *m;

	(void)state;
	assert_true(load(ONE("KVA-BKP-003", "/vaults/kv-dev$", "2030-01-01"), &s, &err));
	m = suppressions_match(&s, "KVA-BKP-003", ids, 4);   /* case-insensitive pattern */
	assert_non_null(m);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "expired")));
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "owner")), "sec");
	cJSON_Delete(m);
	assert_null(suppressions_match(&s, "KVA-BKP-001", ids, 4));            /* another rule */
	ids[1] = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-dev2";
	assert_null(suppressions_match(&s, "KVA-BKP-003", ids, 4));            /* another vault */
	suppressions_release(&s);
}

static void a_suppression_holds_through_its_expiry_date_then_expires(void **state)
{
	struct suppressions s;
	struct kv_err err = {{0}};
	const char *ids[1] = {"/subscriptions/s/x"};
	cJSON *m;

	(void)state;
	assert_true(load(ONE("KVA-VM-002", "/subscriptions/s/", "2026-11-28"), &s, &err));
	m = suppressions_match(&s, "KVA-VM-002", ids, 1);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "expired")));
	cJSON_Delete(m);
	suppressions_release(&s);

	assert_true(load(ONE("KVA-VM-002", "/subscriptions/s/", "2026-11-27"), &s, &err));
	m = suppressions_match(&s, "KVA-VM-002", ids, 1);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "expired")));
	cJSON_Delete(m);
	suppressions_release(&s);
}

static void count_warning(const char *line, void *arg)
{
	assert_non_null(strstr(line, "expired on 2026-11-27"));
	(*(int *)arg)++;
}

static void expired_suppressions_warn_once_each_and_only_when_hit(void **state)
{
	struct suppressions s;
	struct kv_err err = {{0}};
	const char *ids[1] = {"/subscriptions/s/x"};
	int warned = 0;

	(void)state;
	assert_true(load(ONE("KVA-VM-002", "/subscriptions/s/", "2026-11-27"), &s, &err));
	suppressions_each_expired_hit(&s, count_warning, &warned);
	assert_int_equal(warned, 0);                       /* not hit: nothing to say */
	cJSON_Delete(suppressions_match(&s, "KVA-VM-002", ids, 1));
	cJSON_Delete(suppressions_match(&s, "KVA-VM-002", ids, 1));
	suppressions_each_expired_hit(&s, count_warning, &warned);
	assert_int_equal(warned, 1);
	suppressions_release(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bad_files_are_rejected_with_their_path),
		cmocka_unit_test(a_matching_suppression_describes_itself),
		cmocka_unit_test(a_suppression_holds_through_its_expiry_date_then_expires),
		cmocka_unit_test(expired_suppressions_warn_once_each_and_only_when_hit),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
