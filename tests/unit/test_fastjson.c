/*
 * test_fastjson.c - fastjson (audit/util/fastjson.h) must accept and reject
 * exactly what cJSON does and build the same tree: edge cases with their
 * expected verdicts and values, then every file the project carries (the
 * Azure fixtures, the example estates, the fuzz corpora) whole and cut
 * short.  tests/fuzz/fuzz_fastjson.c checks the same on random input.
 */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "audit/util/fastjson.h"
#include "audit/util/util.h"

static struct fastjson_arena arena;

/*
 * Parses text[0, len) both ways from an exact-size copy (no NUL after it);
 * fails the test unless they agree.  Returns fastjson's tree (in arena).
 */
static cJSON *both(const char *text, size_t len, const char *what)
{
	char *copy = kv_malloc(len ? len : 1);
	const char *cend = NULL, *fend = NULL;
	cJSON *c, *f;

	memcpy(copy, text, len);
	c = cJSON_ParseWithLengthOpts(copy, len, &cend, false);
	f = fastjson_parse(copy, len, &fend, &arena);
	if (!c != !f)
		fail_msg("%s: cJSON %s, fastjson %s", what, c ? "accepts" : "rejects", f ? "accepts" : "rejects");
	if (c) {
		char *pc = cJSON_PrintUnformatted(c), *pf = cJSON_PrintUnformatted(f);

		if (cend != fend)
			fail_msg("%s: cJSON ends at %td, fastjson at %td", what, cend - copy, fend - copy);
		if (!fastjson_same_tree(c, f))
			fail_msg("%s: the trees differ", what);
		if (!pc != !pf || (pc && strcmp(pc, pf) != 0))
			fail_msg("%s: printed differently:\n%s\n%s", what, pc, pf);
		free(pc);
		free(pf);
	}
	cJSON_Delete(c);
	free(copy);
	return f;
}

static cJSON *both_str(const char *text)
{
	return both(text, strlen(text), text);
}

struct verdict {
	const char *text;
	bool ok;
};

/* cJSON's verdicts, quirks included (fastjson.h lists them); each also checked against cJSON. */
static const struct verdict CASES[] = {
	{"null", true}, {"true", true}, {"false", true}, {"nul", false}, {"nullx", true}, /* ends after null */
	{"[nullx]", false}, {"tru", false}, {"True", false}, {"", false}, {" ", false},
	{"0", true}, {"-0", true}, {"01", true}, {"1.", true}, {"-.5", true}, {".5", false},
	{"+1", false}, {"-", false}, {"--1", false}, {"1e", true}, {"[1e]", false}, {"1e5", true},
	{"1E+2", true}, {"[1e-2]", true}, {"[1.5e3x]", false}, {"[0x10]", false}, {"[1+2]", false},
	{"1e999", true}, {"-1e999", true}, {"123456789012345", true}, {"1234567890123456", true},
	{"12345678901234567890123456789012345678901234567890123456789012345678901234567890", true},
	{"[]", true}, {"{}", true}, {"[ ]", true}, {"{ }", true}, {"[", false}, {"{", false}, {"[1", false},
	{"[1,]", false}, {"[,1]", false}, {"[1 2]", false}, {"[1,,2]", false}, {"{\"a\"}", false},
	{"{\"a\":}", false}, {"{\"a\":1,}", false}, {"{a:1}", false}, {"{'a':1}", false}, {"{1:1}", false},
	{"{\"a\" : 1 , \"b\" : [ ] }", true}, {"[1]]", true}, {"{\"a\":1}}", true},
	{"\"abc\"", true}, {"\"abc", false}, {"\"a\\\"", false}, {"\"a\\\\\"", true}, {"\"\\x\"", false},
	{"\"\\'\"", false}, {"\"\\/\\b\\f\\n\\r\\t\"", true}, {"\"\\u00e9\"", true}, {"\"\\u00E9\"", true},
	{"\"\\ud83d\\ude00\"", true}, {"\"\\ud83d\"", false}, {"\"\\ude00\"", false}, {"\"\\ud83dx\"", false},
	{"\"\\ud83d\\u0041\"", false}, {"\"\\udfff\"", false}, {"\"\\udc00\"", false},
	{"\"\\ud7ff\\ue000\\uffff\"", true}, {"\"\\ud800\\udc00\\udbff\\udfff\"", true},
	{"\"\\udbff\\ue000\"", false}, {"\"\\u0080\\u07ff\\u0800\"", true}, {"\"\\u12\"", false}, {"\"\\uzzzz\"", true}, {"\"\\u\\\"00\"", true},
	{"\"\\u000\\\\\"", true}, {"\"tab\there\"", true}, {"\"\\", false}, {"\"\\\"", false},
	{"\xEF\xBB\xBF[1]", true}, {"\xEF\xBB\xBF" "1", false}, {"\x01[\x02" "1\x1f]", true},
	{"[\"\xff\xfe\"]", true}, {"{\"a\":1,\"a\":2}", true}, {"[[[[[[[[[[]]]]]]]]]]", true},
	{"{\"\":\"\"}", true}, {"[true,false,null,1,\"s\",{},[]]", true},
};

static void test_verdicts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
		cJSON *f = both_str(CASES[i].text);

		if ((f != NULL) != CASES[i].ok)
			fail_msg("%s: expected %s", CASES[i].text, CASES[i].ok ? "accepted" : "rejected");
		fastjson_arena_reset(&arena);
	}
}

static void test_values(void **state)
{
	cJSON *j, *x;

	(void)state;
	j = both_str("[\"\\ud83d\\ude00\\u00e9\\/\", \"\\uzzzz\", \"a\\u0000b\"]");
	assert_string_equal(j->child->valuestring, "\xF0\x9F\x98\x80\xC3\xA9/");
	assert_string_equal(j->child->next->valuestring, "");   /* a bad hex digit is U+0000, as cJSON */
	assert_string_equal(j->child->next->next->valuestring, "a");
	assert_ptr_equal(j->child->prev, j->child->next->next);

	j = both_str("[3000000000, -3000000000, 2147483647, -2147483648, 1e999, -0, 2.9, -2.9, 0.1]");
	x = j->child;
	assert_int_equal(x->valueint, INT_MAX);
	assert_int_equal(x->next->valueint, INT_MIN);
	assert_int_equal(x->next->next->valueint, INT_MAX);
	assert_int_equal(x->next->next->next->valueint, INT_MIN);
	assert_true(isinf(x->next->next->next->next->valuedouble));
	x = x->next->next->next->next->next;
	assert_true(x->valuedouble == 0 && signbit(x->valuedouble));
	assert_int_equal(x->next->valueint, 2);
	assert_int_equal(x->next->next->valueint, -2);
	assert_true(x->next->next->next->valuedouble == 0.1);

	j = both_str("{\"k\":1,\"k\":\"two\",\"t\":true}");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "k")->valueint, 1);
	assert_string_equal(j->child->next->string, "k");
	assert_string_equal(j->child->next->valuestring, "two");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "t")->valueint, 1);
	fastjson_arena_reset(&arena);
}

/* n arrays deep: CJSON_NESTING_LIMIT (1000) parses, one more does not. */
static void test_nesting(void **state)
{
	size_t n = CJSON_NESTING_LIMIT + 1;
	char *t = kv_malloc(2 * n);

	(void)state;
	memset(t, '[', n);
	memset(t + n, ']', n);
	assert_null(both(t, 2 * n, "1001 deep"));
	assert_non_null(both(t + 1, 2 * n - 2, "1000 deep"));
	for (size_t i = 0; i < n; i++)
		t[i] = i % 2 ? '[' : '{';
	assert_null(both(t, n, "objects and arrays, unclosed"));
	free(t);
	fastjson_arena_reset(&arena);
}

/* A string longer than a block gets its own; reset keeps one block, free none. */
static void test_arena(void **state)
{
	size_t n = (size_t)3 << 20;
	char *t = kv_malloc(n + 2);
	cJSON *j;

	(void)state;
	memset(t + 1, 'x', n);
	t[0] = t[n + 1] = '"';
	j = both(t, n + 2, "3 MB string");
	assert_int_equal(strlen(j->valuestring), n);
	fastjson_arena_reset(&arena);
	assert_non_null(arena.blocks);
	assert_true((size_t)(arena.end - arena.cur) >= n);
	fastjson_arena_free(&arena);
	assert_null(arena.blocks);
	free(t);
}

/*
 * An arena that grows past its first block (1 MB) into huge-page blocks
 * (2 MB mappings): every piece keeps its own bytes, pieces never overlap,
 * a piece larger than a block gets one of its own, and after a reset the
 * spare blocks serve the same pieces again.
 */
static void test_arena_growth(void **state)
{
	struct fastjson_arena a = {0};
	enum { PIECES = 3000, BYTES = 3000 };
	unsigned char *p[PIECES + 1];

	(void)state;
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < PIECES; i++) {
			p[i] = fastjson_alloc(&a, BYTES - i % 8);
			assert_int_equal((uintptr_t)p[i] % 8, 0);
			memset(p[i], (int)(i * 7 + (size_t)round), BYTES - i % 8);
		}
		p[PIECES] = fastjson_alloc(&a, (size_t)5 << 20);
		memset(p[PIECES], 0xA5, (size_t)5 << 20);
		for (size_t i = 0; i < PIECES; i++)
			for (size_t k = 0; k < BYTES - i % 8; k += 512)
				if (p[i][k] != (unsigned char)(i * 7 + (size_t)round))
					fail_msg("round %d: piece %zu byte %zu was overwritten", round, i, k);
		assert_int_equal(p[PIECES][0], 0xA5);
		assert_int_equal(p[PIECES][((size_t)5 << 20) - 1], 0xA5);
		fastjson_arena_reset(&a);
		assert_non_null(a.blocks);
		assert_non_null(a.spare);
	}
	fastjson_arena_free(&a);
	assert_null(a.blocks);
	assert_null(a.spare);
}

/*
 * With shared strings the trees are still cJSON's, repeated short keys and
 * values (not escaped ones, not long ones) are one copy, and a reset ends it.
 */
static void test_shared_strings(void **state)
{
	char long_val[FASTJSON_SHARED_MAX + 2], text[1024];
	struct kv_err err = {{0}};
	size_t len = 0;
	char *demo;
	cJSON *j, *a, *b;

	(void)state;
	memset(long_val, 'v', sizeof(long_val) - 1);
	long_val[sizeof(long_val) - 1] = '\0';
	snprintf(text, sizeof(text),
	         "[{\"status\":\"Completed\",\"n\":\"%s\",\"e\":\"a\\u0041\"},"
	         "{\"status\":\"Completed\",\"n\":\"%s\",\"e\":\"a\\u0041\"}]",
	         long_val, long_val);
	fastjson_arena_share_strings(&arena, true);
	j = both(text, strlen(text), "shared strings");
	a = j->child->child;
	b = j->child->next->child;
	assert_ptr_equal(a->string, b->string);                      /* "status" */
	assert_ptr_equal(a->valuestring, b->valuestring);            /* "Completed" */
	assert_ptr_equal(a->next->string, b->next->string);          /* "n" */
	assert_ptr_not_equal(a->next->valuestring, b->next->valuestring);   /* longer than FASTJSON_SHARED_MAX */
	assert_string_equal(a->next->next->valuestring, "aA");
	assert_ptr_not_equal(a->next->next->valuestring, b->next->next->valuestring);   /* escaped */
	/* A whole snapshot: the same tree as cJSON's. */
	demo = kv_read_file(KV_SOURCE_DIR "/examples/demo-estate.json", (size_t)64 << 20, &len, &err);
	if (!demo)
		fail_msg("%s", err.msg);
	both(demo, len, "demo estate, shared strings");
	free(demo);
	fastjson_arena_reset(&arena);
	assert_null(arena.shared);
	j = both(text, strlen(text), "after reset");
	assert_ptr_not_equal(j->child->child->string, j->child->next->child->string);
	fastjson_arena_share_strings(&arena, true);
	fastjson_arena_share_strings(&arena, false);
	assert_null(arena.shared);
	fastjson_arena_free(&arena);
}

/* fastjson_stop finds the first quote or backslash at every offset and alignment. */
static void test_stop(void **state)
{
	char buf[40];

	(void)state;
	for (size_t at = 0; at <= sizeof(buf); at++)
		for (size_t from = 0; from <= at && from < sizeof(buf); from += 3) {
			memset(buf, 'a', sizeof(buf));
			if (at < sizeof(buf))
				buf[at] = at % 2 ? '"' : '\\';
			assert_ptr_equal(fastjson_stop(buf + from, buf + sizeof(buf)), buf + at);
		}
}

/* The file whole, and cut short at up to 64 places (each prefix either way). */
static void check_file(const char *path)
{
	struct kv_err err = {{0}};
	size_t len = 0;
	char *t = kv_read_file(path, (size_t)64 << 20, &len, &err);
	size_t step;

	if (!t)
		fail_msg("%s", err.msg);
	both(t, len, path);
	step = len / 64 + 1;
	for (size_t cut = 1; cut < len; cut += step) {
		char what[1100];

		snprintf(what, sizeof(what), "%s cut at %zu", path, cut);
		both(t, cut, what);
	}
	fastjson_arena_reset(&arena);
	free(t);
}

/* Every regular file in dir whose name ends in suffix (NULL: every one). */
static size_t check_dir(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		fail_msg("cannot open %s", dir);
	while ((de = readdir(d))) {
		char path[1024];

		size_t nl = strlen(de->d_name);
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (suffix && (nl < strlen(suffix) || strcmp(de->d_name + nl - strlen(suffix), suffix) != 0))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		check_file(path);
		n++;
	}
	closedir(d);
	return n;
}

static void test_files(void **state)
{
	const char *corpora[] = {"fuzz_estate", "fuzz_parse", "fuzz_rule", "fuzz_fastjson", NULL};
	char dir[1024];

	(void)state;
	assert_true(check_dir(KV_FIXTURES, ".json") >= 10);
	snprintf(dir, sizeof(dir), "%s/examples", KV_SOURCE_DIR);
	assert_true(check_dir(dir, ".json") >= 2);
	for (size_t i = 0; corpora[i]; i++) {
		snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", KV_SOURCE_DIR, corpora[i]);
		assert_true(check_dir(dir, NULL) >= 1);
	}
	fastjson_arena_free(&arena);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdicts), cmocka_unit_test(test_values), cmocka_unit_test(test_nesting),
		cmocka_unit_test(test_arena),    cmocka_unit_test(test_stop),   cmocka_unit_test(test_files),
		cmocka_unit_test(test_shared_strings), cmocka_unit_test(test_arena_growth),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	fastjson_arena_free(&arena);
	return rc;
}
