/*
 * test_parse.c - the parsers of Azure HTTP response bodies and headers
 * (audit/azure/parse.h), against the real responses in KV_FIXTURES and
 * against hand-written bodies for the shapes the fixtures do not show.
 *
 * Every parser is fed a heap copy of exactly len bytes with no NUL
 * terminator, so that the sanitizer build catches any read past the body.
 */
#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "audit/azure/parse.h"
#include "audit/util/util.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

/* A heap copy of s[0..n) without a terminating NUL (owned by the caller). */
static char *exact_copy(const char *s, size_t n)
{
	char *p = kv_malloc(n);

	memcpy(p, s, n);
	return p;
}

static bool arm_parse(const char *s, struct arm_page *page, struct kv_err *err)
{
	size_t n = strlen(s);
	char *b = exact_copy(s, n);
	bool ok = arm_page_parse(b, n, page, err);

	free(b);
	return ok;
}

static bool rg_parse(const char *s, struct rg_page *page, struct kv_err *err)
{
	size_t n = strlen(s);
	char *b = exact_copy(s, n);
	bool ok = rg_page_parse(b, n, page, err);

	free(b);
	return ok;
}

static bool token_parse(const char *s, long long now, struct token_response *tok, struct kv_err *err)
{
	size_t n = strlen(s);
	char *b = exact_copy(s, n);
	bool ok = token_response_parse(b, n, now, tok, err);

	free(b);
	return ok;
}

static void error_parse(const char *s, size_t n, int status, struct azure_error *out)
{
	char *b = exact_copy(s, n);

	azure_error_parse(b, n, status, out);
	free(b);
}

/* Reads a fixture file whole (owned, NUL-terminated). */
static char *read_fixture(const char *name, size_t *len)
{
	char *path = kv_asprintf("%s/%s", KV_FIXTURES, name);
	struct kv_err err = { "" };
	char *text = kv_read_file(path, 1 << 20, len, &err);

	free(path);
	if (text == NULL)
		fail_msg("cannot read fixture %s: %s", name, err.msg);
	return text;
}

/* Parses a whole fixture file as JSON (owned). */
static cJSON *fixture_doc(const char *name)
{
	size_t len = 0;
	char *text = read_fixture(name, &len);
	cJSON *doc = cJSON_ParseWithLength(text, len);

	free(text);
	if (doc == NULL)
		fail_msg("fixture %s is not JSON", name);
	return doc;
}

/*
 * The HTTP body of a spec example: responses[status].body serialized
 * compactly, as the service would send it (owned).
 */
static char *spec_body(const char *name, const char *status)
{
	cJSON *doc = fixture_doc(name);
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "responses"), status), "body");
	char *text;

	if (body == NULL) {
		cJSON_Delete(doc);
		fail_msg("fixture %s has no responses[\"%s\"].body", name, status);
	}
	text = cJSON_PrintUnformatted(body);
	cJSON_Delete(doc);
	assert_non_null(text);
	return text;
}

/* The node at a dotted path ("properties.virtualMachineId", "value.0.id"), or NULL. */
static const cJSON *json_at(const cJSON *j, const char *path)
{
	char *copy = kv_strdup(path), *save = NULL;

	for (char *seg = strtok_r(copy, ".", &save); seg != NULL && j != NULL; seg = strtok_r(NULL, ".", &save)) {
		if (cJSON_IsArray(j))
			j = cJSON_GetArrayItem(j, atoi(seg));
		else
			j = cJSON_GetObjectItemCaseSensitive(j, seg);
	}
	free(copy);
	return j;
}

static void assert_string_at(const cJSON *j, const char *path, const char *want)
{
	const cJSON *got = json_at(j, path);

	if (!cJSON_IsString(got))
		fail_msg("%s: expected a string", path);
	assert_string_equal(got->valuestring, want);
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", needle, haystack);
}

/* ---- ARM list pages from the fixtures ---- */

struct field_want {
	const char *path;  /* in value[0] */
	const char *want;
};

static const struct arm_fixture_case {
	const char *file;
	int value_len;
	const char *next_link;  /* exact, or NULL for the last page */
	struct field_want fields[3];
} arm_fixture_cases[] = {
	{ "keyvault-2023-07-01-listVaultByResourceGroup-nextLink.json", 1,
	  "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
	  "sample-group/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01&$skiptoken="
	  "dmF1bHQtcGVza3ktanVyeS03MzA3Ng==",
	  { { "id", "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/sample-group/"
	            "providers/Microsoft.KeyVault/vaults/sample-vault" },
	    { "properties.vaultUri", "https://sample-vault.vault.azure.net/" } } },
	{ "disk-2024-03-02-Disk_ListBySubscription-mixed-ade-nextLink.json", 3,
	  "http://disksvchost:99/subscriptions/{subscriptionId}/providers/Microsoft.Compute/disks?$skiptoken="
	  "{token}/Subscriptions/{subscriptionId}/ResourceGroups/myResourceGroup/Disks/myManagedDisk",
	  { { "name", "myManagedDisk1" },
	    { "properties.encryptionSettingsCollection.encryptionSettings.0.diskEncryptionKey.secretUrl",
	      "https://myvmvault.vault-int.azure-int.net/secrets/{secret}" } } },
	{ "recoveryservicesbackup-2024-10-01-BackupProtectedItems_List.json", 1, NULL,
	  { { "properties.virtualMachineId",
	      "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/providers/"
	      "Microsoft.ClassicCompute/virtualMachines/iaasvm-1" },
	    { "properties.protectedItemType", "Microsoft.ClassicCompute/virtualMachines" } } },
	{ "recoveryservices-2025-02-01-ListBySubscriptionIds.json", 3, NULL,
	  { { "location", "westus" },
	    { "etag", "W/\"datetime'2017-11-22T11%3A05%3A19.907Z'\"" },
	    { "name", "patchtest" } } },
};

static void arm_list_fixtures_parse_into_their_value_and_next_link(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(arm_fixture_cases); i++) {
		const struct arm_fixture_case *c = &arm_fixture_cases[i];
		char *body = spec_body(c->file, "200");
		struct arm_page page;
		struct kv_err err = { "" };

		if (!arm_parse(body, &page, &err))
			fail_msg("%s: %s", c->file, err.msg);
		assert_true(cJSON_IsArray(page.value));
		assert_int_equal(cJSON_GetArraySize(page.value), c->value_len);
		if (c->next_link == NULL)
			assert_null(page.next_link);
		else
			assert_string_equal(page.next_link, c->next_link);
		for (size_t f = 0; f < ARRAY_LEN(c->fields) && c->fields[f].path != NULL; f++)
			assert_string_at(cJSON_GetArrayItem(page.value, 0), c->fields[f].path, c->fields[f].want);
		arm_page_release(&page);
		assert_null(page.doc);
		free(body);
	}
}

static void vault_list_next_link_carries_the_skiptoken_to_request_as_is(void **state)
{
	char *body = spec_body("keyvault-2023-07-01-listVaultByResourceGroup-nextLink.json", "200");
	struct arm_page page;
	struct kv_err err = { "" };

	(void)state;
	assert_true(arm_parse(body, &page, &err));
	assert_contains(page.next_link, "$skiptoken=");
	assert_contains(page.next_link, "api-version=2023-07-01");
	arm_page_release(&page);
	free(body);
}

static void disk_list_next_link_on_a_foreign_host_is_kept_verbatim(void **state)
{
	char *body = spec_body("disk-2024-03-02-Disk_ListBySubscription-mixed-ade-nextLink.json", "200");
	struct arm_page page;
	struct kv_err err = { "" };

	(void)state;
	assert_true(arm_parse(body, &page, &err));
	/* The parser does not judge hosts: the HTTP layer decides where a token may go. */
	assert_true(strncmp(page.next_link, "http://disksvchost:99/", 22) == 0);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(page.value, 1), "name")->valuestring,
	                    "myManagedDisk2");
	arm_page_release(&page);
	free(body);
}

/* ---- ARM list pages: edge cases ---- */

static void empty_value_page_with_a_next_link_is_valid(void **state)
{
	struct arm_page page;
	struct kv_err err = { "" };

	(void)state;
	assert_true(arm_parse("{\"value\":[],\"nextLink\":\"https://management.azure.com/x?$skiptoken=abc\"}",
	                      &page, &err));
	assert_int_equal(cJSON_GetArraySize(page.value), 0);
	assert_string_equal(page.next_link, "https://management.azure.com/x?$skiptoken=abc");
	arm_page_release(&page);
	arm_page_release(&page); /* idempotent */
}

static void absent_null_or_empty_next_link_ends_the_list(void **state)
{
	static const char *const bodies[] = {
		"{\"value\":[{\"id\":\"/a\"}]}",
		"{\"value\":[{\"id\":\"/a\"}],\"nextLink\":null}",
		"{\"value\":[{\"id\":\"/a\"}],\"nextLink\":\"\"}",
		" \r\n{\"value\":[{\"id\":\"/a\"}]}\r\n ",
		"\xEF\xBB\xBF{\"value\":[{\"id\":\"/a\"}]}",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bodies); i++) {
		struct arm_page page;
		struct kv_err err = { "" };

		if (!arm_parse(bodies[i], &page, &err))
			fail_msg("body %zu: %s", i, err.msg);
		assert_int_equal(cJSON_GetArraySize(page.value), 1);
		assert_null(page.next_link);
		arm_page_release(&page);
	}
}

static const struct bad_body {
	const char *body;
	const char *want;  /* a substring of the error message */
} bad_arm_pages[] = {
	{ "{\"nextLink\":\"https://x\"}", "$.value: missing" },
	{ "{\"Value\":[]}", "$.value: missing" },
	{ "{\"value\":{\"id\":\"/a\"}}", "$.value: expected an array, got an object" },
	{ "{\"value\":null}", "$.value: expected an array, got null" },
	{ "{\"value\":[],\"nextLink\":42}", "$.nextLink: expected a string or null, got a number" },
	{ "[{\"id\":\"/a\"}]", "$: expected an object" },
	{ "\"value\"", "$: expected an object" },
	{ "", "empty response body" },
	{ " \r\n\t", "empty response body" },
};

static void malformed_arm_pages_are_errors_naming_the_json_path(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad_arm_pages); i++) {
		struct arm_page page;
		struct kv_err err = { "" };

		if (arm_parse(bad_arm_pages[i].body, &page, &err))
			fail_msg("body %zu parsed", i);
		assert_null(page.doc);
		assert_null(page.value);
		assert_contains(err.msg, bad_arm_pages[i].want);
	}
	/* NULL with a length is an empty body, not a crash */
	{
		struct arm_page page;
		struct kv_err err = { "" };

		assert_false(arm_page_parse(NULL, 10, &page, &err));
		assert_contains(err.msg, "empty response body");
	}
}

static const struct bad_body invalid_json[] = {
	{ "{\"value\": [1, 2,]}", "invalid JSON at byte 16 of 18" },
	{ "{\"value\": [}", "invalid JSON at byte 11 of 12" },
	{ "nul", "invalid JSON at byte 0 of 3" },
	{ "{\"value\": [", "invalid JSON at byte 10 of 11" },  /* truncated: the offset is at the end */
	{ "<html><body>Bad Gateway</body></html>", "invalid JSON at byte 0 of 37" },
	{ "{\"value\":[]} x", "unexpected data after the document at byte 13" },
	{ "{\"value\":[]}{\"value\":[]}", "unexpected data after the document at byte 12" },
};

static void invalid_json_is_reported_with_its_byte_offset(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(invalid_json); i++) {
		struct arm_page arm;
		struct rg_page rg;
		struct kv_err err = { "" };

		assert_false(arm_parse(invalid_json[i].body, &arm, &err));
		assert_contains(err.msg, invalid_json[i].want);
		assert_false(rg_parse(invalid_json[i].body, &rg, &err));
		assert_contains(err.msg, invalid_json[i].want);
		assert_null(rg.doc);
	}
}

static void parsers_read_only_len_bytes_of_the_body(void **state)
{
	static const char text[] = "{\"value\":[],\"nextLink\":null}GARBAGE";
	size_t n = strlen("{\"value\":[],\"nextLink\":null}");
	char *b = exact_copy(text, n);
	struct arm_page page;
	struct kv_err err = { "" };

	(void)state;
	assert_true(arm_page_parse(b, n, &page, &err));
	assert_null(page.next_link);
	arm_page_release(&page);
	free(b);
}

/* ---- Resource Graph ---- */

static const struct rg_fixture_case {
	const char *file;
	const char *skip_token;
	const char *first_name;
} rg_fixture_cases[] = {
	{ "resourcegraph-2024-04-01-ResourcesFirstPageQuery.json",
	  "eyAibm8iOiAibHVjayIsICJidXQiOiAibmljZSIsICJ0cnkiOiAiISIgfQ==",
	  "yetanothertest_OsDisk_1_f396cbcb625a457bb69fe2abf5975820" },
	{ "resourcegraph-2024-04-01-ResourcesNextPageQuery.json",
	  "eyAibm8yIjogImx1Y2syIiwgImJ1dDIiOiAibmljZTIiLCAidHJ5MiI6ICIhIiB9",
	  "second_OsDisk_dddddbcb625a457bb69fe2abf5975820" },
};

static void resource_graph_fixture_pages_give_data_skip_token_and_counts(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(rg_fixture_cases); i++) {
		const struct rg_fixture_case *c = &rg_fixture_cases[i];
		char *body = spec_body(c->file, "200");
		struct rg_page page;
		struct kv_err err = { "" };

		if (!rg_parse(body, &page, &err))
			fail_msg("%s: %s", c->file, err.msg);
		assert_int_equal(page.count, 3);
		assert_int_equal(cJSON_GetArraySize(page.data), 3);
		assert_int_equal(page.total_records, 386);
		assert_false(page.truncated); /* from the string "false" */
		assert_string_equal(page.skip_token, c->skip_token);
		assert_string_at(page.data, "0.name", c->first_name);
		assert_string_at(page.data, "0.type", "microsoft.compute/disks");
		rg_page_release(&page);
		free(body);
	}
}

static void next_page_request_carries_the_first_pages_skip_token(void **state)
{
	char *body = spec_body("resourcegraph-2024-04-01-ResourcesFirstPageQuery.json", "200");
	cJSON *first_req = fixture_doc("resourcegraph-2024-04-01-ResourcesFirstPageQuery.json");
	cJSON *next_req = fixture_doc("resourcegraph-2024-04-01-ResourcesNextPageQuery.json");
	struct rg_page page;
	struct kv_err err = { "" };

	(void)state;
	assert_true(rg_parse(body, &page, &err));
	/* The first request pages with $top/$skip and no token ... */
	assert_null(json_at(first_req, "parameters.query.options.$skipToken"));
	assert_int_equal(json_at(first_req, "parameters.query.options.$top")->valueint, 3);
	/* ... the next one re-POSTs the same query with options.$skipToken from the first response. */
	assert_string_at(next_req, "parameters.query.options.$skipToken", page.skip_token);
	assert_string_equal(json_at(next_req, "parameters.query.query")->valuestring,
	                    json_at(first_req, "parameters.query.query")->valuestring);
	rg_page_release(&page);
	cJSON_Delete(first_req);
	cJSON_Delete(next_req);
	free(body);
}

static void resource_graph_result_truncated_accepts_strings_and_booleans(void **state)
{
	static const struct {
		const char *field;  /* the JSON text after "resultTruncated": , or NULL for absent */
		bool want;
	} cases[] = {
		{ "\"true\"", true }, { "\"false\"", false }, { "\"True\"", true },
		{ "true", true },     { "false", false },     { "null", false },  { NULL, false },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *body = cases[i].field != NULL
		                 ? kv_asprintf("{\"count\":0,\"data\":[],\"resultTruncated\":%s}", cases[i].field)
		                 : kv_strdup("{\"count\":0,\"data\":[]}");
		struct rg_page page;
		struct kv_err err = { "" };

		if (!rg_parse(body, &page, &err))
			fail_msg("case %zu: %s", i, err.msg);
		assert_int_equal(page.truncated, cases[i].want);
		assert_null(page.skip_token);
		rg_page_release(&page);
		free(body);
	}
}

static void resource_graph_defaults_when_counts_and_token_are_absent(void **state)
{
	struct rg_page page;
	struct kv_err err = { "" };

	(void)state;
	assert_true(rg_parse("{\"data\":[{\"id\":\"/a\"},{\"id\":\"/b\"}],\"$skipToken\":null}", &page, &err));
	assert_int_equal(page.count, 2);
	assert_int_equal(page.total_records, -1);
	assert_false(page.truncated);
	assert_null(page.skip_token);
	rg_page_release(&page);
}

static const struct bad_body bad_rg_pages[] = {
	{ "{\"totalRecords\":1,\"count\":1,\"resultTruncated\":\"false\","
	  "\"data\":{\"columns\":[{\"name\":\"id\",\"type\":\"string\"}],\"rows\":[[\"/a\"]]}}",
	  "objectArray" },
	{ "{\"count\":0}", "$.data: missing" },
	{ "{\"data\":\"rows\"}", "$.data: expected an array, got a string" },
	{ "{\"data\":{}}", "$.data: expected an array, got an object" },
	{ "{\"data\":[],\"count\":\"3\"}", "$.count: expected a non-negative integer, got a string" },
	{ "{\"data\":[],\"count\":-1}", "$.count" },
	{ "{\"data\":[],\"totalRecords\":1.5}", "$.totalRecords" },
	{ "{\"data\":[],\"resultTruncated\":\"maybe\"}", "$.resultTruncated: expected \"true\" or \"false\"" },
	{ "{\"data\":[],\"resultTruncated\":1}", "$.resultTruncated" },
	{ "{\"data\":[],\"$skipToken\":[\"a\"]}", "$.$skipToken: expected a string or null, got an array" },
	{ "[]", "$: expected a Resource Graph response object" },
};

static void malformed_resource_graph_pages_are_errors_naming_the_json_path(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad_rg_pages); i++) {
		struct rg_page page;
		struct kv_err err = { "" };

		if (rg_parse(bad_rg_pages[i].body, &page, &err))
			fail_msg("body %zu parsed", i);
		assert_null(page.doc);
		assert_null(page.data);
		assert_contains(err.msg, bad_rg_pages[i].want);
	}
}

/* ---- tokens ---- */

static void imds_token_fixture_gives_the_token_and_the_string_expiry(void **state)
{
	char *body = spec_body("imds-2018-02-01-getIdentityToken.json", "200");
	struct token_response tok;
	struct kv_err err = { "" };

	(void)state;
	/* now is far from expires_on - expires_in, to show expires_on wins */
	if (!token_parse(body, 1700000000, &tok, &err))
		fail_msg("%s", err.msg);
	assert_string_equal(tok.access_token, "dummytoken");
	assert_int_equal(tok.expires_on, 1541705014);
	token_response_release(&tok);
	free(body);
}

static const struct token_case {
	const char *what;
	const char *body;
	long long now;
	long long want;
} token_cases[] = {
	{ "entra v2 client credentials, expires_in a number",
	  "{\"token_type\":\"Bearer\",\"expires_in\":86399,\"ext_expires_in\":86399,\"access_token\":\"eyJ0.eyJ1.c2ln\"}",
	  1700000000, 1700086399 },
	{ "app service 2019-08-01, expires_on an epoch string",
	  "{\"access_token\":\"eyJ0.eyJ1.c2ln\",\"expires_on\":\"1586984735\",\"resource\":\"https://vault.azure.net\","
	  "\"token_type\":\"Bearer\",\"client_id\":\"5E29463D-71DA-4FE0-8E69-999B57DB23B0\"}",
	  1586980000, 1586984735 },
	{ "imds, expires_in as a string only",
	  "{\"access_token\":\"eyJ0.eyJ1.c2ln\",\"expires_in\":\"3599\",\"token_type\":\"Bearer\"}",
	  1700000000, 1700003599 },
	{ "legacy msi, date string in UTC",
	  "{\"access_token\":\"eyJ0.eyJ1.c2ln\",\"expires_on\":\"11/10/2022 12:07:05 +00:00\",\"token_type\":\"Bearer\"}",
	  0, 1668082025 },
	{ "legacy msi on windows, 12-hour clock PM",
	  "{\"access_token\":\"eyJ0.eyJ1.c2ln\",\"expires_on\":\"11/10/2022 1:07:05 PM +00:00\"}",
	  0, 1668085625 },
	{ "legacy msi on windows, 12 AM is midnight",
	  "{\"access_token\":\"eyJ0.eyJ1.c2ln\",\"expires_on\":\"11/10/2022 12:07:05 AM +00:00\"}",
	  0, 1668038825 },
	{ "legacy msi with a non-zero offset",
	  "{\"access_token\":\"eyJ0.eyJ1.c2ln\",\"expires_on\":\"11/10/2022 14:07:05 +02:00\"}",
	  0, 1668082025 },
	{ "az cli 2.54+, expires_on an integer preferred over expiresOn",
	  "{\"accessToken\":\"eyJ0.eyJ1.c2ln\",\"expiresOn\":\"2023-10-31 21:59:10.000000\",\"expires_on\":1698760750,"
	  "\"subscription\":\"00000000-0000-0000-0000-000000000000\",\"tenant\":\"00000000-0000-0000-0000-000000000000\","
	  "\"tokenType\":\"Bearer\"}",
	  0, 1698760750 },
	{ "an unrecognised expires_on falls back to expires_in",
	  "{\"access_token\":\"eyJ0.eyJ1.c2ln\",\"expires_on\":\"tomorrow\",\"expires_in\":60}",
	  1000, 1060 },
};

static void token_responses_of_every_credential_source_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(token_cases); i++) {
		struct token_response tok;
		struct kv_err err = { "" };

		if (!token_parse(token_cases[i].body, token_cases[i].now, &tok, &err))
			fail_msg("%s: %s", token_cases[i].what, err.msg);
		assert_string_equal(tok.access_token, "eyJ0.eyJ1.c2ln");
		if (tok.expires_on != token_cases[i].want)
			fail_msg("%s: expires_on %lld, want %lld", token_cases[i].what, tok.expires_on, token_cases[i].want);
		token_response_release(&tok);
	}
}

static void az_cli_expires_on_string_is_read_in_the_local_time_zone(void **state)
{
	const char *old = getenv("TZ");
	char *saved = old != NULL ? kv_strdup(old) : NULL;
	struct token_response tok;
	struct kv_err err = { "" };
	bool ok;

	(void)state;
	/* A fixed zone five hours behind UTC, without daylight saving time. */
	assert_int_equal(setenv("TZ", "EST5", 1), 0);
	tzset();
	ok = token_parse("{\"accessToken\":\"eyJ0.eyJ1.c2ln\",\"expiresOn\":\"2023-10-31 21:59:10.123456\","
	                 "\"tokenType\":\"Bearer\"}",
	                 0, &tok, &err);
	if (saved != NULL)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
	if (!ok)
		fail_msg("%s", err.msg);
	assert_int_equal(tok.expires_on, 1698789550LL + 5 * 3600); /* 21:59:10 UTC + 5 h */
	token_response_release(&tok);
}

#define SECRET "eyJ0eXAiOiJKV1QifQ.SECRETPAYLOAD.c2lnbmF0dXJl"

static const struct bad_body bad_tokens[] = {
	{ "{\"access_token\":\"" SECRET "\",\"expires_on\":\"soon\"}", "$.expires_on: unrecognised expiry" },
	{ "{\"access_token\":\"" SECRET "\"}", "$.expires_on: missing" },
	{ "{\"access_token\":\"" SECRET "\",\"expires_in\":-5}", "$.expires_in: unrecognised expiry" },
	{ "{\"access_token\":\"" SECRET "\",\"expires_in\":\"1e3\"}", "$.expires_in" },
	{ "{\"accessToken\":\"" SECRET "\",\"expiresOn\":\"2023-13-45 99:00:00\"}", "$.expiresOn" },
	{ "{\"access_token\":\"" SECRET "\",\"expires_on\":\"13/40/2022 12:07:05 +00:00\"}", "$.expires_on" },
	{ "{\"access_token\":\"" SECRET "\", \"expires_in\": 3600", "invalid JSON at byte" },
	{ "{\"access_token\":\"" SECRET "\",\"expires_in\":3600} " SECRET, "unexpected data after the document" },
	{ "[\"" SECRET "\"]", "$: expected an object, got an array" },
	{ "{\"access_token\":\"" SECRET "\\r\\nX-Injected: 1\",\"expires_in\":3600}", "$.access_token: contains" },
	{ "{\"access_token\":\"\",\"expires_in\":3600}", "$.access_token: empty" },
	{ "{\"access_token\":3600,\"expires_in\":3600}", "$.access_token: expected a string, got a number" },
	{ "{\"accessToken\":null}", "$.accessToken: expected a string, got null" },
	{ "{\"token\":\"" SECRET "\",\"expires_in\":3600}", "$.access_token: missing" },
	{ "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client secret provided.\"}",
	  "the response is the error \"invalid_client\"" },
	{ "", "token response: empty response body" },
};

static void malformed_token_responses_are_errors_that_never_show_the_token(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad_tokens); i++) {
		struct token_response tok;
		struct kv_err err = { "" };

		if (token_parse(bad_tokens[i].body, 1700000000, &tok, &err))
			fail_msg("token body %zu parsed", i);
		assert_null(tok.access_token);
		assert_int_equal(tok.expires_on, 0);
		assert_contains(err.msg, bad_tokens[i].want);
		assert_contains(err.msg, "token response");
		if (strstr(err.msg, SECRET) != NULL || strstr(err.msg, "SECRETPAYLOAD") != NULL)
			fail_msg("token body %zu: the error shows the token: %s", i, err.msg);
	}
}

static void token_response_release_clears_the_struct_and_can_be_repeated(void **state)
{
	struct token_response tok;
	struct kv_err err = { "" };

	(void)state;
	assert_true(token_parse("{\"access_token\":\"abc.def.ghi\",\"expires_in\":10}", 5, &tok, &err));
	assert_int_equal(tok.expires_on, 15);
	token_response_release(&tok);
	assert_null(tok.access_token);
	assert_int_equal(tok.expires_on, 0);
	token_response_release(&tok);
	token_response_release(NULL);
}

/* ---- error bodies ---- */

static void imds_error_fixtures_parse_as_oauth_errors(void **state)
{
	static const struct {
		const char *status;
		int code;
		const char *error, *description;
	} cases[] = {
		{ "400", 400, "invalid_request", "Bad request" },
		{ "404", 404, "not_found", "Not found" },
		{ "405", 405, "method_not_allowed", "Not allowed" },
		{ "429", 429, "too_many_requests", "Too many requests" },
		{ "500", 500, "server_error", "Server error" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *body = spec_body("imds-2018-02-01-getIdentityToken.json", cases[i].status);
		struct azure_error e;

		error_parse(body, strlen(body), cases[i].code, &e);
		assert_int_equal(e.status, cases[i].code);
		assert_string_equal(e.code, cases[i].error);
		assert_string_equal(e.message, cases[i].description);
		free(body);
	}
}

static const struct error_case {
	const char *what;
	const char *body;
	const char *code;
	const char *message;  /* exact */
} error_cases[] = {
	{ "arm AuthorizationFailed",
	  "{\"error\":{\"code\":\"AuthorizationFailed\",\"message\":\"The client 'a@b.c' with object id "
	  "'00000000-0000-0000-0000-000000000001' does not have authorization to perform action "
	  "'Microsoft.KeyVault/vaults/read' over scope '/subscriptions/00000000-0000-0000-0000-000000000000' or the "
	  "scope is invalid. If access was recently granted, please refresh your credentials.\"}}",
	  "AuthorizationFailed",
	  "The client 'a@b.c' with object id '00000000-0000-0000-0000-000000000001' does not have authorization to "
	  "perform action 'Microsoft.KeyVault/vaults/read' over scope '/subscriptions/00000000-0000-0000-0000-000000000000' "
	  "or the scope is invalid. If access was recently granted, please refresh your credentials." },
	{ "arm SubscriptionRequestsThrottled with details and additionalInfo",
	  "{\"error\":{\"code\":\"SubscriptionRequestsThrottled\",\"message\":\"Number of 'read' requests for "
	  "subscription actor 'x' exceeded. Please try again after '1' seconds.\",\"details\":[],"
	  "\"additionalInfo\":[{\"type\":\"t\",\"info\":{}}]}}",
	  "SubscriptionRequestsThrottled",
	  "Number of 'read' requests for subscription actor 'x' exceeded. Please try again after '1' seconds." },
	{ "key vault data plane",
	  "{\"error\":{\"code\":\"Forbidden\",\"message\":\"The user, group or application does not have keys get "
	  "permission on key vault 'kv1'.\",\"innererror\":{\"code\":\"AccessDenied\"}}}",
	  "Forbidden",
	  "The user, group or application does not have keys get permission on key vault 'kv1'." },
	{ "compute 429 without the error wrapper",
	  "{\"code\":\"OperationNotAllowed\",\"message\":\"The server rejected the request because too many requests "
	  "have been received for this subscription.\",\"details\":[{\"code\":\"TooManyRequests\",\"target\":"
	  "\"HighCostGet30Min\",\"message\":\"{\\\"operationGroup\\\":\\\"HighCostGet30Min\\\",\\\"startTime\\\":"
	  "\\\"2018-06-29T19:54:21.0914017+00:00\\\",\\\"allowedRequestCount\\\":800,\\\"measuredRequestCount\\\":1238}\"}]}",
	  "OperationNotAllowed",
	  "The server rejected the request because too many requests have been received for this subscription." },
	{ "compute shape with only details",
	  "{\"details\":[{\"code\":\"TooManyRequests\",\"message\":\"{\\\"operationGroup\\\":\\\"GetVM\\\"}\"}]}",
	  "TooManyRequests", "{\"operationGroup\":\"GetVM\"}" },
	{ "entra oauth error with CRLF in the description",
	  "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client secret provided.\\r\\n"
	  "Trace ID: 1\\r\\nCorrelation ID: 2\",\"error_codes\":[7000215]}",
	  "invalid_client", "AADSTS7000215: Invalid client secret provided.  Trace ID: 1  Correlation ID: 2" },
	{ "oauth error without a description", "{\"error\":\"invalid_grant\"}", "invalid_grant", "" },
	{ "escape sequences in a json message are neutralised",
	  "{\"error\":{\"code\":\"Bad\\u001b[31m\",\"message\":\"x\\u001b]0;pwn\\u0007y\\u0085z\"}}",
	  "Bad?[31m", "x?]0;pwn?y?z" },
	{ "empty body", "", "", "" },
	{ "html from a proxy",
	  "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n</html>\r\n",
	  "", "<html>?\?<head><title>502 Bad Gateway</title></head>?\?</html>??" },
	{ "json that is not an error", "{\"value\":[]}", "", "{\"value\":[]}" },
	{ "json array", "[1,2]", "", "[1,2]" },
	{ "an error member of the wrong type", "{\"error\":42}", "", "{\"error\":42}" },
	{ "invalid utf-8 and controls in a raw body", "bad\xff\xfe\x01\tutf8 \xc3\xa9", "", "bad????utf8 \xc3\xa9" },
};

static void error_bodies_of_every_shape_give_code_and_message(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(error_cases); i++) {
		struct azure_error e;

		error_parse(error_cases[i].body, strlen(error_cases[i].body), 403, &e);
		assert_int_equal(e.status, 403);
		if (strcmp(e.code, error_cases[i].code) != 0 || strcmp(e.message, error_cases[i].message) != 0)
			fail_msg("%s: got code \"%s\" message \"%s\"", error_cases[i].what, e.code, e.message);
	}
}

/* Key Vault says why a 403 happened only in error.innererror.code (firewall, RBAC, access policy). */
static void key_vault_innererror_is_kept_apart(void **state)
{
	static const char fw[] = "{\"error\":{\"code\":\"Forbidden\",\"message\":\"Client address is not "
	                         "authorized and caller is not a trusted service.\",\"innererror\":{\"code\":"
	                         "\"ForbiddenByFirewall\"}}}";
	static const char arm[] = "{\"error\":{\"code\":\"AuthorizationFailed\",\"message\":\"no\"}}";
	struct azure_error e;

	(void)state;
	error_parse(fw, strlen(fw), 403, &e);
	assert_string_equal(e.code, "Forbidden");
	assert_string_equal(e.inner, "ForbiddenByFirewall");
	error_parse(arm, strlen(arm), 403, &e);
	assert_string_equal(e.inner, "");
}

static void raw_error_bodies_keep_only_their_first_200_bytes(void **state)
{
	char body[1000];
	struct azure_error e;

	(void)state;
	memset(body, 'x', sizeof(body));
	body[0] = '<';
	error_parse(body, sizeof(body), 502, &e);
	assert_string_equal(e.code, "");
	assert_int_equal(strlen(e.message), 200);
	assert_int_equal(e.message[0], '<');
	/* a NULL body is an empty one */
	azure_error_parse(NULL, 5, 500, &e);
	assert_int_equal(e.status, 500);
	assert_string_equal(e.message, "");
}

static void long_error_messages_are_truncated_on_a_character_boundary(void **state)
{
	struct kv_buf b;
	struct azure_error e;
	char *body;

	(void)state;
	kv_buf_init(&b, 0);
	kv_buf_adds(&b, "{\"error\":{\"code\":\"C\",\"message\":\"");
	for (int i = 0; i < 400; i++)
		kv_buf_adds(&b, "\xc3\xa9"); /* é: 800 bytes of two-byte characters */
	kv_buf_adds(&b, "x\"}}");
	body = kv_buf_detach(&b);
	error_parse(body, strlen(body), 400, &e);
	assert_string_equal(e.code, "C");
	/* 511 bytes available: 255 whole characters, not 255.5 */
	assert_int_equal(strlen(e.message), 510);
	assert_int_equal((unsigned char)e.message[509], 0xa9);
	free(body);
}

/* ---- headers ---- */

static void retry_after_accepts_delta_seconds_and_http_dates(void **state)
{
	static const long long date = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
	static const struct {
		const char *value;
		long long now;
		bool ok;
		int want;
	} cases[] = {
		{ "120", 0, true, 120 },
		{ "0", 0, true, 0 },
		{ " 7\t", 0, true, 7 },
		{ "-5", 0, true, 0 },
		{ "99999999999999999999", 0, true, INT_MAX },
		{ "Sun, 06 Nov 1994 08:49:37 GMT", date - 120, true, 120 },
		{ "Sun, 06 Nov 1994 08:49:37 GMT", date + 10, true, 0 },
		{ "Sunday, 06-Nov-94 08:49:37 GMT", date - 120, true, 120 },
		{ "Sun Nov  6 08:49:37 1994", date - 120, true, 120 },
		{ "Fri, 31 Dec 9999 23:59:59 GMT", 0, true, INT_MAX },
		{ "Thu, 29 Feb 2024 00:00:00 GMT", 1709164800 - 1, true, 1 },
		{ "", 0, false, 0 },
		{ "   ", 0, false, 0 },
		{ "soon", 0, false, 0 },
		{ "1.5", 0, false, 0 },
		{ "12abc", 0, false, 0 },
		{ "-", 0, false, 0 },
		{ "- 5", 0, false, 0 },
		{ "+5", 0, false, 0 },
		{ "0x10", 0, false, 0 },
		{ "Sun, 06 Nov 1994 08:49:37 UTC", 0, false, 0 },
		{ "Sun, 06 Nov 1994 08:49:37 GMT trailing", 0, false, 0 },
		{ "Sun, 6 Nov 1994 08:49:37 GMT", 0, false, 0 },
		{ "Sun, 31 Feb 1994 08:49:37 GMT", 0, false, 0 },
		{ "Thu, 29 Feb 2023 00:00:00 GMT", 0, false, 0 },
		{ "Sun, 06 Nov 1994 24:00:00 GMT", 0, false, 0 },
		{ "Sun, 06 Foo 1994 08:49:37 GMT", 0, false, 0 },
		{ "Xyz, 06 Nov 1994 08:49:37 GMT", 0, false, 0 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int got = -42;
		bool ok = retry_after_parse(cases[i].value, cases[i].now, &got);

		if (ok != cases[i].ok)
			fail_msg("\"%s\": expected %s", cases[i].value, cases[i].ok ? "success" : "rejection");
		if (ok && got != cases[i].want)
			fail_msg("\"%s\": got %d, want %d", cases[i].value, got, cases[i].want);
		if (!ok)
			assert_int_equal(got, -42);
	}
	assert_false(retry_after_parse(NULL, 0, &(int){ 0 }));
}

static void ratelimit_headers_give_the_smallest_remaining_count(void **state)
{
	static const struct {
		const char *value;
		int want;
	} cases[] = {
		{ "3749", 3749 },
		{ " 199 ", 199 },
		{ "0", 0 },
		{ "Microsoft.Compute/LowCostGetSubscriptionMaximum;23999,Microsoft.Compute/LowCostGetResource;32", 32 },
		{ "Microsoft.Compute/HighCostGet3Min;46, Microsoft.Compute/HighCostGet30Min;0", 0 },
		{ "Microsoft.Compute/VmssQueuedVMOperations;4720,Microsoft.Compute/DeleteVMScaleSet3Min;107,", 107 },
		{ "Microsoft.Compute/PutVM3Min;99999999999", INT_MAX },
		{ NULL, -1 },
		{ "", -1 },
		{ " , ", -1 },
		{ "abc", -1 },
		{ "-1", -1 },
		{ "12x", -1 },
		{ "a;b", -1 },
		{ "name;", -1 },
		{ ";5", -1 },
		{ "a;b;5", -1 },
		{ "Microsoft.Compute/A;10,garbage", -1 },
		{ "Microsoft.Compute/A;1 0", -1 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int got = ratelimit_remaining(cases[i].value);

		if (got != cases[i].want)
			fail_msg("\"%s\": got %d, want %d", cases[i].value ? cases[i].value : "(null)", got, cases[i].want);
	}
}

/* ---- every fixture has a reader ---- */

enum fixture_reader {
	READ_BY_ARM_PAGE,
	READ_BY_RG_PAGE,
	READ_BY_TOKEN_AND_ERRORS,
	READ_BY_ESTATE_TESTS,  /* tests/unit/test_estate.c loads these through the estate loader */
};

/* The other unit tests that read fixtures through the estate model. */
static const char *const estate_test_sources[] = { "test_estate.c", "test_ade.c", "test_facts.c" };

static const struct {
	const char *file;
	enum fixture_reader reader;
} fixture_readers[] = {
	{ "keyvault-2023-07-01-listVaultByResourceGroup-nextLink.json", READ_BY_ARM_PAGE },
	{ "disk-2024-03-02-Disk_ListBySubscription-mixed-ade-nextLink.json", READ_BY_ARM_PAGE },
	{ "recoveryservicesbackup-2024-10-01-BackupProtectedItems_List.json", READ_BY_ARM_PAGE },
	{ "recoveryservices-2025-02-01-ListBySubscriptionIds.json", READ_BY_ARM_PAGE },
	{ "resourcegraph-2024-04-01-ResourcesFirstPageQuery.json", READ_BY_RG_PAGE },
	{ "resourcegraph-2024-04-01-ResourcesNextPageQuery.json", READ_BY_RG_PAGE },
	{ "imds-2018-02-01-getIdentityToken.json", READ_BY_TOKEN_AND_ERRORS },
	{ "keyvault-2024-11-01-getVault.json", READ_BY_ESTATE_TESTS },
	{ "keyvault-2024-11-01-updateAccessPoliciesAdd.json", READ_BY_ESTATE_TESTS },
	{ "keyvault-2026-02-01-createVault.json", READ_BY_ESTATE_TESTS },
	{ "disk-2024-03-02-Disk_Get-ade-encryptionSettingsCollection.json", READ_BY_ESTATE_TESTS },
	{ "compute-2024-07-01-VirtualMachine_Create_WithEncryptionAtHost-not-ADE.json", READ_BY_ESTATE_TESTS },
	{ "compute-2024-07-01-VirtualMachine_Get_InstanceView-no-ade.json", READ_BY_ESTATE_TESTS },
	{ "cli-2022-keyvault-get-accessPolicies-all-enabledForDiskEncryption.json", READ_BY_ESTATE_TESTS },
	{ "cli-2022-vm-extension-AzureDiskEncryption-2.2-get-expand-instanceView.json", READ_BY_ESTATE_TESTS },
};

/* Runs the parser the table names on a fixture; fails the test if it does not accept it. */
static void read_with(const char *file, enum fixture_reader reader)
{
	struct kv_err err = { "" };
	char *body;

	if (reader == READ_BY_ESTATE_TESTS)
		return;
	body = spec_body(file, "200");
	if (reader == READ_BY_ARM_PAGE) {
		struct arm_page page;

		if (!arm_parse(body, &page, &err))
			fail_msg("%s: %s", file, err.msg);
		arm_page_release(&page);
	} else if (reader == READ_BY_RG_PAGE) {
		struct rg_page page;

		if (!rg_parse(body, &page, &err))
			fail_msg("%s: %s", file, err.msg);
		rg_page_release(&page);
	} else {
		struct token_response tok;
		cJSON *doc = fixture_doc(file);
		const cJSON *resp;

		if (!token_parse(body, 0, &tok, &err))
			fail_msg("%s: %s", file, err.msg);
		token_response_release(&tok);
		cJSON_ArrayForEach(resp, cJSON_GetObjectItemCaseSensitive(doc, "responses")) {
			char *eb;
			struct azure_error e;

			if (strcmp(resp->string, "200") == 0)
				continue;
			eb = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(resp, "body"));
			assert_non_null(eb);
			error_parse(eb, strlen(eb), atoi(resp->string), &e);
			if (e.code[0] == '\0' || e.message[0] == '\0')
				fail_msg("%s: responses[\"%s\"] is not a recognised error", file, resp->string);
			free(eb);
		}
		cJSON_Delete(doc);
	}
	free(body);
}

/* The index of file in fixture_readers, or -1. */
static int reader_index(const char *file)
{
	for (size_t i = 0; i < ARRAY_LEN(fixture_readers); i++)
		if (strcmp(fixture_readers[i].file, file) == 0)
			return (int)i;
	return -1;
}

/*
 * The fixtures the estate tests should read must be named in their sources.
 * Checked once tests/unit/test_estate.c exists (it is written in parallel).
 */
static void check_estate_tests_name(const char *file)
{
	bool named = false;

	for (size_t i = 0; i < ARRAY_LEN(estate_test_sources) && !named; i++) {
		char *path = kv_asprintf("%s/tests/unit/%s", KV_SOURCE_DIR, estate_test_sources[i]);
		char *src = kv_read_file(path, 4 << 20, NULL, NULL);

		free(path);
		named = src != NULL && strstr(src, file) != NULL;
		free(src);
	}
	if (!named)
		fail_msg("fixture %s is listed as read by the estate tests, but no estate test names it", file);
}

static void every_fixture_is_read_by_a_parser_or_by_the_estate_tests(void **state)
{
	bool seen[ARRAY_LEN(fixture_readers)] = { false };
	DIR *d = opendir(KV_FIXTURES);
	struct dirent *ent;
	char missing[256] = "", *path;
	bool have_estate_tests;
	int files = 0;

	(void)state;
	if (d == NULL)
		fail_msg("cannot open %s", KV_FIXTURES);
	while ((ent = readdir(d)) != NULL) {
		int i;

		if (!kv_endswith_ci(ent->d_name, ".json"))
			continue;
		files++;
		i = reader_index(ent->d_name);
		if (i < 0) {
			snprintf(missing, sizeof(missing), "%s", ent->d_name);
			break;
		}
		seen[i] = true;
	}
	closedir(d);
	if (missing[0] != '\0')
		fail_msg("fixture %s has no reader: parse it in a test and list it in fixture_readers", missing);
	path = kv_asprintf("%s/tests/unit/test_estate.c", KV_SOURCE_DIR);
	have_estate_tests = access(path, F_OK) == 0;
	free(path);
	if (!have_estate_tests)
		print_message("note: tests/unit/test_estate.c does not exist yet: "
		              "not checking that the estate tests name their fixtures\n");
	for (size_t i = 0; i < ARRAY_LEN(fixture_readers); i++) {
		if (!seen[i])
			fail_msg("fixture_readers lists %s, which is not in %s", fixture_readers[i].file, KV_FIXTURES);
		if (fixture_readers[i].reader == READ_BY_ESTATE_TESTS) {
			if (have_estate_tests)
				check_estate_tests_name(fixture_readers[i].file);
		} else {
			read_with(fixture_readers[i].file, fixture_readers[i].reader);
		}
	}
	assert_int_equal(files, (int)ARRAY_LEN(fixture_readers));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(arm_list_fixtures_parse_into_their_value_and_next_link),
		cmocka_unit_test(vault_list_next_link_carries_the_skiptoken_to_request_as_is),
		cmocka_unit_test(disk_list_next_link_on_a_foreign_host_is_kept_verbatim),
		cmocka_unit_test(empty_value_page_with_a_next_link_is_valid),
		cmocka_unit_test(absent_null_or_empty_next_link_ends_the_list),
		cmocka_unit_test(malformed_arm_pages_are_errors_naming_the_json_path),
		cmocka_unit_test(invalid_json_is_reported_with_its_byte_offset),
		cmocka_unit_test(parsers_read_only_len_bytes_of_the_body),
		cmocka_unit_test(resource_graph_fixture_pages_give_data_skip_token_and_counts),
		cmocka_unit_test(next_page_request_carries_the_first_pages_skip_token),
		cmocka_unit_test(resource_graph_result_truncated_accepts_strings_and_booleans),
		cmocka_unit_test(resource_graph_defaults_when_counts_and_token_are_absent),
		cmocka_unit_test(malformed_resource_graph_pages_are_errors_naming_the_json_path),
		cmocka_unit_test(imds_token_fixture_gives_the_token_and_the_string_expiry),
		cmocka_unit_test(token_responses_of_every_credential_source_parse),
		cmocka_unit_test(az_cli_expires_on_string_is_read_in_the_local_time_zone),
		cmocka_unit_test(malformed_token_responses_are_errors_that_never_show_the_token),
		cmocka_unit_test(token_response_release_clears_the_struct_and_can_be_repeated),
		cmocka_unit_test(imds_error_fixtures_parse_as_oauth_errors),
		cmocka_unit_test(error_bodies_of_every_shape_give_code_and_message),
		cmocka_unit_test(key_vault_innererror_is_kept_apart),
		cmocka_unit_test(raw_error_bodies_keep_only_their_first_200_bytes),
		cmocka_unit_test(long_error_messages_are_truncated_on_a_character_boundary),
		cmocka_unit_test(retry_after_accepts_delta_seconds_and_http_dates),
		cmocka_unit_test(ratelimit_headers_give_the_smallest_remaining_count),
		cmocka_unit_test(every_fixture_is_read_by_a_parser_or_by_the_estate_tests),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
