/*
 * test_util.c - the shared helpers: growable buffers with a cap, error
 * buffers, reading whole files, case-insensitive strings, ARM IDs and the
 * ARM-ID hash map.
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
#include <sys/stat.h>
#include <unistd.h>

#include "audit/util/armid.h"
#include "audit/util/idmap.h"
#include "audit/util/json.h"
#include "audit/util/util.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A fresh temporary directory per test that needs files; removed by rm_tree. */
static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/kvaudit-test-util-XXXXXX";
	char *d = mkdtemp(tmpl);

	if (!d)
		fail_msg("mkdtemp: %s", strerror(errno));
	return kv_strdup(d);
}

static char *write_file(const char *dir, const char *name, const void *data, size_t n)
{
	char *path = kv_asprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "wb");

	if (!f)
		fail_msg("cannot create %s: %s", path, strerror(errno));
	if (n && fwrite(data, 1, n, f) != n)
		fail_msg("cannot write %s", path);
	fclose(f);
	return path;
}

static void remove_dir(char *dir, char **files, size_t nfiles)
{
	for (size_t i = 0; i < nfiles; i++) {
		if (files[i]) {
			unlink(files[i]);
			free(files[i]);
		}
	}
	rmdir(dir);
	free(dir);
}

/* ---------- kv_buf ---------- */

static void buf_grows_past_its_first_allocation_and_stays_nul_terminated(void **state)
{
	struct kv_buf b;
	char expect[5001];

	(void)state;
	kv_buf_init(&b, 0);
	assert_int_equal(b.len, 0);
	assert_false(b.overflow);
	for (int i = 0; i < 5000; i++) {
		assert_true(kv_buf_addc(&b, (char)('a' + i % 26)));
		expect[i] = (char)('a' + i % 26);
	}
	expect[5000] = '\0';
	assert_int_equal(b.len, 5000);
	assert_true(b.cap > 5000);
	assert_string_equal(b.data, expect);
	assert_int_equal(strlen(b.data), b.len);
	kv_buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void buf_add_copies_bytes_including_embedded_nuls(void **state)
{
	struct kv_buf b;

	(void)state;
	kv_buf_init(&b, 0);
	assert_true(kv_buf_add(&b, "a\0b", 3));
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "a\0b", 4);
	assert_true(kv_buf_add(&b, NULL, 0));
	assert_int_equal(b.len, 3);
	kv_buf_release(&b);
}

static void buf_at_its_cap_accepts_exactly_max_bytes(void **state)
{
	struct kv_buf b;

	(void)state;
	kv_buf_init(&b, 8);
	assert_true(kv_buf_adds(&b, "1234"));
	assert_true(kv_buf_adds(&b, "5678"));
	assert_int_equal(b.len, 8);
	assert_false(b.overflow);
	assert_string_equal(b.data, "12345678");
	kv_buf_release(&b);
}

static void buf_over_its_cap_returns_false_sets_overflow_and_keeps_content(void **state)
{
	struct kv_buf b;

	(void)state;
	kv_buf_init(&b, 8);
	assert_true(kv_buf_adds(&b, "12345"));
	assert_false(kv_buf_adds(&b, "6789"));
	assert_true(b.overflow);
	assert_int_equal(b.len, 5);
	assert_string_equal(b.data, "12345");
	/* overflow is sticky: even an append that would fit is refused now */
	assert_false(kv_buf_addc(&b, 'x'));
	assert_int_equal(b.len, 5);
	kv_buf_release(&b);

	/* a single append larger than the cap, on an empty buffer */
	kv_buf_init(&b, 4);
	assert_false(kv_buf_add(&b, "hello", 5));
	assert_true(b.overflow);
	assert_int_equal(b.len, 0);
	kv_buf_release(&b);

	/* a length that would wrap size_t is refused, not wrapped */
	kv_buf_init(&b, 16);
	assert_true(kv_buf_adds(&b, "ab"));
	assert_false(kv_buf_add(&b, "x", SIZE_MAX));
	assert_true(b.overflow);
	assert_int_equal(b.len, 2);
	kv_buf_release(&b);
}

static void buf_addf_formats_and_respects_the_cap(void **state)
{
	struct kv_buf b;

	(void)state;
	kv_buf_init(&b, 0);
	assert_true(kv_buf_addf(&b, "%s=%d;", "a", 1));
	assert_true(kv_buf_addf(&b, "%05.1f|%c|%zu", 2.5, 'z', (size_t)42));
	assert_string_equal(b.data, "a=1;002.5|z|42");
	/* longer than any internal stack buffer would be */
	kv_buf_release(&b);
	kv_buf_init(&b, 0);
	assert_true(kv_buf_addf(&b, "%3000s", "x"));
	assert_int_equal(b.len, 3000);
	assert_int_equal(b.data[2999], 'x');
	kv_buf_release(&b);

	kv_buf_init(&b, 10);
	assert_true(kv_buf_addf(&b, "%d", 12345));
	assert_false(kv_buf_addf(&b, "%d", 123456));
	assert_true(b.overflow);
	assert_string_equal(b.data, "12345");
	kv_buf_release(&b);
}

static void buf_detach_hands_over_the_string_and_resets(void **state)
{
	struct kv_buf b;
	char *s;

	(void)state;
	kv_buf_init(&b, 4);
	assert_true(kv_buf_adds(&b, "abc"));
	assert_false(kv_buf_adds(&b, "de"));
	s = kv_buf_detach(&b);
	assert_string_equal(s, "abc");
	free(s);
	/* reset: empty, overflow cleared, cap kept */
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_false(b.overflow);
	assert_int_equal(b.max, 4);
	assert_true(kv_buf_adds(&b, "wxyz"));
	assert_false(kv_buf_addc(&b, '!'));
	kv_buf_release(&b);

	/* detaching a buffer that never allocated gives "" (never NULL) */
	kv_buf_init(&b, 0);
	s = kv_buf_detach(&b);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
}

/* ---------- kv_err ---------- */

static void err_set_and_prefix_compose_messages(void **state)
{
	struct kv_err err = {{0}};

	(void)state;
	kv_err_set(&err, "bad %s at %d", "thing", 3);
	assert_string_equal(err.msg, "bad thing at 3");
	kv_err_prefix(&err, "%s", "file.json");
	assert_string_equal(err.msg, "file.json: bad thing at 3");
	kv_err_prefix(&err, "outer");
	assert_string_equal(err.msg, "outer: file.json: bad thing at 3");
	/* NULL err is ignored */
	kv_err_set(NULL, "x");
	kv_err_prefix(NULL, "x");
}

static void err_prefix_truncates_safely_with_long_prefix_and_message(void **state)
{
	static const size_t prefix_lens[] = {0, 1, 510, 511, 512, 600, 2000};
	static const size_t msg_lens[] = {0, 1, 500, 1000, 1023};
	char *big = kv_malloc(4096);

	(void)state;
	memset(big, 'p', 4095);
	big[4095] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(prefix_lens); i++) {
		for (size_t k = 0; k < ARRAY_LEN(msg_lens); k++) {
			struct kv_err err;
			size_t lp = prefix_lens[i] > 511 ? 511 : prefix_lens[i];
			size_t len;

			memset(err.msg, 'm', msg_lens[k]);
			err.msg[msg_lens[k]] = '\0';
			kv_err_prefix(&err, "%.*s", (int)prefix_lens[i], big);
			len = strnlen(err.msg, sizeof(err.msg));
			assert_true(len < sizeof(err.msg));
			/* the (possibly truncated) prefix comes first, then ": ", then the old message */
			for (size_t x = 0; x < lp; x++)
				assert_int_equal(err.msg[x], 'p');
			assert_int_equal(err.msg[lp], ':');
			assert_int_equal(len, lp + 2 + msg_lens[k] > 1023 ? 1023 : lp + 2 + msg_lens[k]);
		}
	}
	free(big);
}

static void err_prefix_tolerates_an_unterminated_message(void **state)
{
	struct kv_err err;

	(void)state;
	memset(err.msg, 'z', sizeof(err.msg));   /* no NUL anywhere */
	kv_err_prefix(&err, "p");
	assert_true(strnlen(err.msg, sizeof(err.msg)) < sizeof(err.msg));
	assert_true(strncmp(err.msg, "p: zzz", 6) == 0);
}

/* ---------- kv_read_file ---------- */

static void read_file_reads_a_regular_file_whole(void **state)
{
	char *dir = make_tmpdir();
	static const char content[] = "line1\nline2\0after-nul\n";
	char *files[1];
	struct kv_err err = {{0}};
	size_t len = 12345;
	char *data;

	(void)state;
	files[0] = write_file(dir, "a.json", content, sizeof(content) - 1);
	data = kv_read_file(files[0], 1 << 20, &len, &err);
	assert_non_null(data);
	assert_int_equal(len, sizeof(content) - 1);
	assert_memory_equal(data, content, sizeof(content));   /* including the final NUL */
	free(data);
	/* len may be NULL */
	data = kv_read_file(files[0], 1 << 20, NULL, &err);
	assert_non_null(data);
	free(data);
	remove_dir(dir, files, 1);
}

static void read_file_of_zero_bytes_gives_an_empty_string(void **state)
{
	char *dir = make_tmpdir();
	char *files[1];
	struct kv_err err = {{0}};
	size_t len = 99;
	char *data;

	(void)state;
	files[0] = write_file(dir, "empty.json", "", 0);
	data = kv_read_file(files[0], 0, &len, &err);
	assert_non_null(data);
	assert_string_equal(data, "");
	assert_int_equal(len, 0);
	free(data);
	remove_dir(dir, files, 1);
}

static void read_file_refuses_a_directory_naming_it(void **state)
{
	char *dir = make_tmpdir();
	struct kv_err err = {{0}};
	size_t len = 7;

	(void)state;
	assert_null(kv_read_file(dir, 1 << 20, &len, &err));
	assert_non_null(strstr(err.msg, dir));
	assert_non_null(strstr(err.msg, "directory"));
	assert_int_equal(len, 7);   /* untouched on error */
	remove_dir(dir, NULL, 0);
}

static void read_file_reports_a_missing_file_naming_it(void **state)
{
	struct kv_err err = {{0}};
	const char *path = "/nonexistent-kvaudit-dir/missing.json";

	(void)state;
	assert_null(kv_read_file(path, 1 << 20, NULL, &err));
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, strerror(ENOENT)));
}

static void read_file_refuses_a_device(void **state)
{
	struct kv_err err = {{0}};

	(void)state;
	assert_null(kv_read_file("/dev/null", 1 << 20, NULL, &err));
	assert_non_null(strstr(err.msg, "/dev/null"));
	assert_non_null(strstr(err.msg, "not a regular file"));
}

static void read_file_enforces_its_size_cap(void **state)
{
	char *dir = make_tmpdir();
	char *files[1];
	struct kv_err err = {{0}};
	size_t len = 0;
	char *data;

	(void)state;
	files[0] = write_file(dir, "ten.json", "0123456789", 10);
	data = kv_read_file(files[0], 10, &len, &err);   /* exactly at the cap */
	assert_non_null(data);
	assert_int_equal(len, 10);
	free(data);
	assert_null(kv_read_file(files[0], 9, &len, &err));
	assert_non_null(strstr(err.msg, files[0]));
	assert_non_null(strstr(err.msg, "too large"));
	assert_non_null(strstr(err.msg, "10 bytes"));
	remove_dir(dir, files, 1);
}

/* ---------- kv_map_file ---------- */

static void map_file_maps_checks_and_reports_like_read_file(void **state)
{
	char *dir = make_tmpdir();
	char *files[2];
	struct kv_err err = {{0}};
	size_t len = 99;
	char *data;

	(void)state;
	files[0] = write_file(dir, "ten.json", "0123456789", 10);
	files[1] = write_file(dir, "empty.json", "", 0);
	data = kv_map_file(files[0], 10, &len, &err);   /* exactly at the cap */
	assert_non_null(data);
	assert_int_equal(len, 10);
	assert_memory_equal(data, "0123456789", 10);
	kv_unmap_file(data, len);
	/* Over the cap: NULL, and *len is the size for the caller's own message. */
	assert_null(kv_map_file(files[0], 9, &len, &err));
	assert_int_equal(len, 10);
	assert_non_null(strstr(err.msg, files[0]));
	assert_non_null(strstr(err.msg, "too large"));
	data = kv_map_file(files[1], 10, &len, &err);
	assert_non_null(data);
	assert_int_equal(len, 0);
	assert_string_equal(data, "");
	kv_unmap_file(data, len);
	assert_null(kv_map_file(dir, 10, &len, &err));
	assert_int_equal(len, 0);
	assert_non_null(strstr(err.msg, "is a directory, not a file"));
	assert_null(kv_map_file("/dev/null", 10, &len, &err));
	assert_non_null(strstr(err.msg, "'/dev/null' is not a regular file"));
	assert_null(kv_map_file("/nonexistent-kvaudit-dir/m.json", 10, &len, &err));
	assert_non_null(strstr(err.msg, strerror(ENOENT)));
	remove_dir(dir, files, 2);
}

/* ---------- json_skip_space ---------- */

static void json_skip_space_stops_at_the_first_other_byte_or_len(void **state)
{
	static const char s[] = " \t\r\n{} \n\0x";

	(void)state;
	assert_int_equal(json_skip_space(s, 0, sizeof(s) - 1), 4);
	assert_int_equal(json_skip_space(s, 4, sizeof(s) - 1), 4);
	assert_int_equal(json_skip_space(s, 6, sizeof(s) - 1), 8);   /* NUL is not whitespace */
	assert_int_equal(json_skip_space(s, 6, 8), 8);               /* only whitespace left: len */
	assert_int_equal(json_skip_space(s, 0, 3), 3);
	assert_int_equal(json_skip_space(s, 5, 5), 5);
	assert_int_equal(json_skip_space(NULL, 0, 0), 0);
}

/* ---------- strings ---------- */

struct str_case {
	const char *a, *b;
	bool eq, starts, ends;   /* kv_streq_ci(a,b), kv_startswith_ci(a,b), kv_endswith_ci(a,b) */
};

static const struct str_case str_cases[] = {
	{"abc", "abc", true, true, true},
	{"ABC", "abc", true, true, true},
	{"Microsoft.Azure.Security", "microsoft.azure.SECURITY", true, true, true},
	{"abcdef", "ABC", false, true, false},
	{"abcdef", "DEF", false, false, true},
	{"abc", "abcd", false, false, false},
	{"abc", "", false, true, true},
	{"", "", true, true, true},
	{"", "a", false, false, false},
	{NULL, NULL, true, false, false},
	{NULL, "a", false, false, false},
	{"a", NULL, false, false, false},
	{"https://X.vault.azure.net/", "https://x.VAULT.azure.net/", true, true, true},
};

static void case_insensitive_comparisons_follow_the_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(str_cases); i++) {
		const struct str_case *c = &str_cases[i];

		if (kv_streq_ci(c->a, c->b) != c->eq)
			fail_msg("kv_streq_ci(%s, %s) != %d", c->a ? c->a : "NULL", c->b ? c->b : "NULL", c->eq);
		if (kv_startswith_ci(c->a, c->b) != c->starts)
			fail_msg("kv_startswith_ci(%s, %s) != %d", c->a ? c->a : "NULL", c->b ? c->b : "NULL", c->starts);
		if (kv_endswith_ci(c->a, c->b) != c->ends)
			fail_msg("kv_endswith_ci(%s, %s) != %d", c->a ? c->a : "NULL", c->b ? c->b : "NULL", c->ends);
	}
}

static void small_string_helpers_behave(void **state)
{
	char s[] = "MiXeD-Case/123";
	char *d;

	(void)state;
	assert_string_equal(kv_lower(s), "mixed-case/123");
	assert_null(kv_lower(NULL));
	assert_true(kv_empty(NULL));
	assert_true(kv_empty(""));
	assert_false(kv_empty(" "));
	assert_null(kv_strdup(NULL));
	d = kv_strndup("abcdef", 3);
	assert_string_equal(d, "abc");
	free(d);
	d = kv_strndup("ab", 10);
	assert_string_equal(d, "ab");
	free(d);
	d = kv_asprintf("%s-%03d", "x", 7);
	assert_string_equal(d, "x-007");
	free(d);
}

static void utc_now_has_the_iso_shape(void **state)
{
	char out[32];

	(void)state;
	kv_utc_now(out, sizeof(out));
	assert_int_equal(strlen(out), 20);
	assert_int_equal(out[4], '-');
	assert_int_equal(out[10], 'T');
	assert_int_equal(out[19], 'Z');
}

/* ---------- ARM IDs ---------- */

#define VAULT_ID "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"

struct eq_case {
	const char *a, *b;
	bool want;
};

static const struct eq_case eq_cases[] = {
	{VAULT_ID, VAULT_ID, true},
	{VAULT_ID, "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV1", true},
	{VAULT_ID, VAULT_ID "/", true},
	{VAULT_ID "/", VAULT_ID, true},
	{VAULT_ID "/", "/Subscriptions/s/resourcegroups/RG/providers/microsoft.keyvault/vaults/KV1/", true},
	{VAULT_ID, VAULT_ID "2", false},
	{VAULT_ID, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv", false},
	{VAULT_ID, VAULT_ID "//", false},
	{"/", "/", true},
	{"/", "", false},
	{"", "", true},
	{NULL, NULL, true},
	{NULL, VAULT_ID, false},
	{VAULT_ID, NULL, false},
};

static void armid_eq_ignores_case_and_one_trailing_slash(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(eq_cases); i++)
		if (armid_eq(eq_cases[i].a, eq_cases[i].b) != eq_cases[i].want)
			fail_msg("armid_eq(%s, %s) != %d", eq_cases[i].a ? eq_cases[i].a : "NULL",
			         eq_cases[i].b ? eq_cases[i].b : "NULL", eq_cases[i].want);
}

static const struct eq_case contains_cases[] = {
	/* a is the scope, b the ID */
	{"/subscriptions/s", "/subscriptions/s/resourceGroups/rg", true},
	{"/subscriptions/s", VAULT_ID, true},
	{"/subscriptions/s/", VAULT_ID, true},
	{"/subscriptions/s/resourceGroups/rg", VAULT_ID, true},
	{"/subscriptions/s/resourceGroups/rg", "/subscriptions/s/resourceGroups/rg2/providers/x/y/z", false},
	{"/subscriptions/s", "/subscriptions/s2/resourceGroups/rg", false},
	{"/subscriptions/s", "/subscriptions/s2", false},
	{"/subscriptions/s", "/subscriptions/s", true},
	{"/subscriptions/s", "/subscriptions/s/", true},
	{VAULT_ID, VAULT_ID, true},
	{VAULT_ID, VAULT_ID "/secrets/x", true},
	{VAULT_ID "/secrets/x", VAULT_ID, false},
	{"/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG", VAULT_ID, true},
	{"/subscriptions/S", "/Subscriptions/s/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/KV1", true},
	{"/", VAULT_ID, true},
	{"/", "/subscriptions/anything", true},
	{"/subscriptions/s", "/subscriptions", false},
	{NULL, VAULT_ID, false},
	{"/subscriptions/s", NULL, false},
};

static void armid_scope_contains_at_segment_boundaries_only(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(contains_cases); i++)
		if (armid_scope_contains(contains_cases[i].a, contains_cases[i].b) != contains_cases[i].want)
			fail_msg("armid_scope_contains(%s, %s) != %d",
			         contains_cases[i].a ? contains_cases[i].a : "NULL",
			         contains_cases[i].b ? contains_cases[i].b : "NULL", contains_cases[i].want);
}

struct seg_case {
	const char *id, *key, *want;   /* want NULL: returns false */
};

static const struct seg_case seg_cases[] = {
	{VAULT_ID, "subscriptions", "s"},
	{VAULT_ID, "resourceGroups", "rg"},
	{VAULT_ID, "vaults", "kv1"},
	{VAULT_ID, "providers", "Microsoft.KeyVault"},
	{"/Subscriptions/ABC/RESOURCEGROUPS/My-RG/providers/Microsoft.Compute/virtualMachines/vm1", "subscriptions", "ABC"},
	{"/Subscriptions/ABC/RESOURCEGROUPS/My-RG/providers/Microsoft.Compute/virtualMachines/vm1", "resourceGroups", "My-RG"},
	{"/Subscriptions/ABC/RESOURCEGROUPS/My-RG/providers/Microsoft.Compute/virtualMachines/vm1", "VIRTUALMACHINES", "vm1"},
	{"/subscriptions/s", "resourceGroups", NULL},
	{"/subscriptions/", "subscriptions", NULL},
	{"/subscriptions//resourceGroups/rg", "subscriptions", NULL},
	{"/subscriptions/s/resourceGroupsX/rg", "resourceGroups", NULL},
	{"/subscriptions/s/resourceGroups/rg/", "resourceGroups", "rg"},
	{NULL, "subscriptions", NULL},
};

static void armid_segment_finds_values_case_insensitively(void **state)
{
	char out[64];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(seg_cases); i++) {
		const struct seg_case *c = &seg_cases[i];
		bool ok = armid_segment(c->id, c->key, out, sizeof(out));

		if (ok != (c->want != NULL))
			fail_msg("armid_segment(%s, %s) returned %d", c->id ? c->id : "NULL", c->key, ok);
		if (ok && strcmp(out, c->want) != 0)
			fail_msg("armid_segment(%s, %s) = %s, want %s", c->id, c->key, out, c->want);
	}
	/* the value must fit, with its NUL */
	assert_true(armid_segment(VAULT_ID, "vaults", out, 4));
	assert_string_equal(out, "kv1");
	assert_false(armid_segment(VAULT_ID, "vaults", out, 3));
	assert_false(armid_segment(VAULT_ID, "vaults", out, 0));
}

static const struct seg_case name_cases[] = {
	{VAULT_ID, NULL, "kv1"},
	{VAULT_ID "/", NULL, "kv1"},
	{"/Subscriptions/S/Providers/Microsoft.Compute/Locations/westus", NULL, "westus"},
	{"/subscriptions/s", NULL, "s"},
	{"plain", NULL, "plain"},
	{"/", NULL, NULL},
	{"", NULL, NULL},
	{NULL, NULL, NULL},
};

static void armid_name_is_the_last_segment(void **state)
{
	char out[64];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(name_cases); i++) {
		const struct seg_case *c = &name_cases[i];
		bool ok = armid_name(c->id, out, sizeof(out));

		if (ok != (c->want != NULL))
			fail_msg("armid_name(%s) returned %d", c->id ? c->id : "NULL", ok);
		if (ok && strcmp(out, c->want) != 0)
			fail_msg("armid_name(%s) = %s, want %s", c->id, out, c->want);
	}
	assert_false(armid_name(VAULT_ID, out, 3));
	assert_true(armid_name(VAULT_ID, out, 4));
	assert_string_equal(out, "kv1");
}

static const struct seg_case subscope_cases[] = {
	{VAULT_ID, NULL, "/subscriptions/s"},
	{"/Subscriptions/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/rg/providers/x/y/z", NULL,
	 "/subscriptions/00000000-0000-0000-0000-000000000000"},
	{"/SUBSCRIPTIONS/AbC", NULL, "/subscriptions/AbC"},
	{"/subscriptions/s/", NULL, "/subscriptions/s"},
	{"/providers/Microsoft.Management/managementGroups/mg", NULL, NULL},
	{"/", NULL, NULL},
	{NULL, NULL, NULL},
};

static void armid_subscription_scope_normalises_the_prefix(void **state)
{
	char out[128];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(subscope_cases); i++) {
		const struct seg_case *c = &subscope_cases[i];
		bool ok = armid_subscription_scope(c->id, out, sizeof(out));

		if (ok != (c->want != NULL))
			fail_msg("armid_subscription_scope(%s) returned %d", c->id ? c->id : "NULL", ok);
		if (ok && strcmp(out, c->want) != 0)
			fail_msg("armid_subscription_scope(%s) = %s, want %s", c->id, out, c->want);
	}
	/* "/subscriptions/s" + NUL = 17 bytes */
	assert_true(armid_subscription_scope(VAULT_ID, out, 17));
	assert_false(armid_subscription_scope(VAULT_ID, out, 16));
}

struct region_case {
	const char *in, *want;
};

static const struct region_case region_cases[] = {
	{"West Europe", "westeurope"},
	{"westeurope", "westeurope"},
	{"WESTEUROPE", "westeurope"},
	{" East US 2 ", "eastus2"},
	{"South\tCentral US", "southcentralus"},
	{"", ""},
	{NULL, ""},
};

static void region_norm_lowercases_and_drops_spaces(void **state)
{
	char out[64];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(region_cases); i++) {
		region_norm(region_cases[i].in, out, sizeof(out));
		assert_string_equal(out, region_cases[i].want);
	}
	region_norm("West Europe", out, 5);   /* truncates, still terminated */
	assert_string_equal(out, "west");
	out[0] = 'x';
	region_norm("West", out, 0);          /* writes nothing */
	assert_int_equal(out[0], 'x');
}

/* ---------- idmap ---------- */

static void idmap_puts_and_gets_case_insensitively(void **state)
{
	struct idmap m;
	size_t v = 0;

	(void)state;
	idmap_init(&m);
	assert_false(idmap_get(&m, VAULT_ID, &v));   /* empty map */
	assert_true(idmap_put(&m, VAULT_ID, 7));
	assert_true(idmap_get(&m, VAULT_ID, &v));
	assert_int_equal(v, 7);
	assert_true(idmap_get(&m, "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV1", &v));
	assert_int_equal(v, 7);
	assert_true(idmap_get(&m, VAULT_ID "/", &v));
	assert_false(idmap_get(&m, VAULT_ID "2", &v));
	assert_false(idmap_get(&m, NULL, &v));
	assert_false(idmap_put(&m, NULL, 1));
	assert_int_equal(m.len, 1);
	idmap_release(&m);
	assert_int_equal(m.len, 0);
	idmap_release(&m);   /* twice is harmless */
}

/* Only 'A'-'Z' fold: '@' / '`', '[' / '{' and bytes of 0x80 and up differ by the same 0x20 bit. */
static void idmap_folds_ascii_letters_only_at_every_length(void **state)
{
	static const char pairs[][2] = {{'@', '`'}, {'[', '{'}, {(char)0xC3, (char)0xE3}, {'Z', 'z'}, {'A', 'a'}};
	struct idmap m;
	char a[40], b[40];
	size_t v;

	(void)state;
	for (size_t len = 1; len < 34; len++) {
		for (size_t p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
			for (size_t at = 0; at < len; at++) {
				bool letter = pairs[p][0] == 'Z' || pairs[p][0] == 'A';

				memset(a, 'k', len);
				a[len] = '\0';
				memcpy(b, a, len + 1);
				a[at] = pairs[p][0];
				b[at] = pairs[p][1];
				idmap_init(&m);
				assert_true(idmap_put(&m, a, len));
				v = 0;
				assert_int_equal(idmap_get(&m, b, &v), letter);
				assert_int_equal(idmap_put(&m, b, 0), !letter);
				assert_true(idmap_get(&m, a, &v));
				assert_int_equal(v, len);
				b[len - 1 == at ? 0 : len - 1] ^= 1;   /* one more byte off: never equal */
				assert_false(idmap_get(&m, b, &v));
				idmap_release(&m);
			}
		}
	}
}

/* A lookup finds a key exactly when armid_eq says they are the same ID. */
static void idmap_agrees_with_armid_eq_on_random_keys(void **state)
{
	static const char alphabet[] = "aAzZ@[`{/-\xc3\xe3";
	unsigned seed = 12345;
	struct idmap m;
	char a[24], b[24];
	size_t v;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t la, lb;

		seed = seed * 1103515245u + 12345u;
		la = (seed >> 16) % 20;
		for (size_t i = 0; i < la; i++) {
			seed = seed * 1103515245u + 12345u;
			a[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		a[la] = '\0';
		/* b: a with some letters' case flipped, sometimes a '/' more or a byte changed */
		memcpy(b, a, la + 1);
		lb = la;
		for (size_t i = 0; i < la; i++) {
			seed = seed * 1103515245u + 12345u;
			if ((seed >> 16) % 3 == 0 && ((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= 'A' && b[i] <= 'Z')))
				b[i] ^= 0x20;
			else if ((seed >> 16) % 29 == 1)
				b[i] = alphabet[(seed >> 20) % (sizeof(alphabet) - 1)];
		}
		seed = seed * 1103515245u + 12345u;
		if ((seed >> 16) % 4 == 0 && lb + 1 < sizeof(b)) {
			b[lb++] = '/';
			b[lb] = '\0';
		}
		idmap_init(&m);
		assert_true(idmap_put(&m, a, 1));
		assert_int_equal(idmap_get(&m, b, &v), armid_eq(a, b));
		idmap_release(&m);
	}
}

static void idmap_borrowed_keys_are_not_copied(void **state)
{
	char id[] = "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/vm1/";
	struct idmap m;
	size_t v = 0;

	(void)state;
	idmap_init(&m);
	assert_true(idmap_put_borrowed(&m, id, 3));
	assert_null(m.chunks);
	assert_true(idmap_get(&m, "/SUBSCRIPTIONS/s/RESOURCEGROUPS/rg/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM1", &v));
	assert_int_equal(v, 3);
	assert_false(idmap_put(&m, "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1", 4));
	assert_null(m.chunks);
	assert_true(idmap_put(&m, "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm2", 5));
	assert_non_null(m.chunks);
	assert_false(idmap_put_borrowed(&m, NULL, 1));
	idmap_release(&m);
	assert_null(m.chunks);
}

static void idmap_duplicate_put_returns_false_and_keeps_the_first_value(void **state)
{
	struct idmap m;
	size_t v = 0;

	(void)state;
	idmap_init(&m);
	assert_true(idmap_put(&m, "/subscriptions/a", 1));
	assert_false(idmap_put(&m, "/subscriptions/a", 2));
	assert_false(idmap_put(&m, "/SUBSCRIPTIONS/A", 3));
	assert_false(idmap_put(&m, "/Subscriptions/A/", 4));
	assert_int_equal(m.len, 1);
	assert_true(idmap_get(&m, "/subscriptions/a", &v));
	assert_int_equal(v, 1);
	idmap_release(&m);
}

static void idmap_holds_ten_thousand_keys_through_growth(void **state)
{
	struct idmap m;
	char id[128];
	size_t v;

	(void)state;
	idmap_init(&m);
	for (size_t i = 0; i < 10000; i++) {
		snprintf(id, sizeof(id), "/subscriptions/s/resourceGroups/rg%zu/providers/Microsoft.Compute/virtualMachines/VM%zu",
		         i % 37, i);
		assert_true(idmap_put(&m, id, i));
	}
	assert_int_equal(m.len, 10000);
	assert_true(m.cap >= 10000);
	for (size_t i = 0; i < 10000; i++) {
		snprintf(id, sizeof(id), "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG%zu/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/vm%zu/",
		         i % 37, i);
		v = SIZE_MAX;
		assert_true(idmap_get(&m, id, &v));
		assert_int_equal(v, i);
		assert_false(idmap_put(&m, id, 0));
	}
	snprintf(id, sizeof(id), "/subscriptions/s/resourceGroups/rg0/providers/Microsoft.Compute/virtualMachines/VM10000");
	assert_false(idmap_get(&m, id, &v));
	assert_int_equal(m.len, 10000);
	idmap_release(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(buf_grows_past_its_first_allocation_and_stays_nul_terminated),
		cmocka_unit_test(buf_add_copies_bytes_including_embedded_nuls),
		cmocka_unit_test(buf_at_its_cap_accepts_exactly_max_bytes),
		cmocka_unit_test(buf_over_its_cap_returns_false_sets_overflow_and_keeps_content),
		cmocka_unit_test(buf_addf_formats_and_respects_the_cap),
		cmocka_unit_test(buf_detach_hands_over_the_string_and_resets),
		cmocka_unit_test(err_set_and_prefix_compose_messages),
		cmocka_unit_test(err_prefix_truncates_safely_with_long_prefix_and_message),
		cmocka_unit_test(err_prefix_tolerates_an_unterminated_message),
		cmocka_unit_test(read_file_reads_a_regular_file_whole),
		cmocka_unit_test(read_file_of_zero_bytes_gives_an_empty_string),
		cmocka_unit_test(read_file_refuses_a_directory_naming_it),
		cmocka_unit_test(read_file_reports_a_missing_file_naming_it),
		cmocka_unit_test(read_file_refuses_a_device),
		cmocka_unit_test(read_file_enforces_its_size_cap),
		cmocka_unit_test(map_file_maps_checks_and_reports_like_read_file),
		cmocka_unit_test(json_skip_space_stops_at_the_first_other_byte_or_len),
		cmocka_unit_test(case_insensitive_comparisons_follow_the_table),
		cmocka_unit_test(small_string_helpers_behave),
		cmocka_unit_test(utc_now_has_the_iso_shape),
		cmocka_unit_test(armid_eq_ignores_case_and_one_trailing_slash),
		cmocka_unit_test(armid_scope_contains_at_segment_boundaries_only),
		cmocka_unit_test(armid_segment_finds_values_case_insensitively),
		cmocka_unit_test(armid_name_is_the_last_segment),
		cmocka_unit_test(armid_subscription_scope_normalises_the_prefix),
		cmocka_unit_test(region_norm_lowercases_and_drops_spaces),
		cmocka_unit_test(idmap_puts_and_gets_case_insensitively),
		cmocka_unit_test(idmap_folds_ascii_letters_only_at_every_length),
		cmocka_unit_test(idmap_agrees_with_armid_eq_on_random_keys),
		cmocka_unit_test(idmap_borrowed_keys_are_not_copied),
		cmocka_unit_test(idmap_duplicate_put_returns_false_and_keeps_the_first_value),
		cmocka_unit_test(idmap_holds_ten_thousand_keys_through_growth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
