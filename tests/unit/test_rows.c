/*
 * test_rows.c - a report whose inventory.vms rows are made while its JSON
 * is written (audit_opts.inventory_rows_later, struct report_rows: how
 * `kvaudit audit` and `kvaudit scan` keep a large estate's report small)
 * must write exactly the text of the report that holds them all, on every
 * snapshot the tests and fuzzers carry, through the JSON writer and
 * through report_output's files; the other formats never show the rows.
 * That report is made as `kvaudit audit` makes it: its findings in arenas
 * (audit_opts.findings_arenas), judged on two threads; the whole one is
 * cJSON's own, judged on one.
 */
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "audit/audit.h"
#include "audit/estate/estate.h"
#include "audit/estate/facts.h"
#include "reports/report.h"
#include "rules/engine.h"

static struct rule_catalog catalog;
static struct fastjson_arena arenas[AUDIT_ARENAS];

/* The report of e, with its scan time fixed so that two runs compare; later: as kvaudit audit makes it. */
static cJSON *report_of(struct estate *e, bool later)
{
	struct audit_opts ao = {.fail_on = SEV_LOW, .include_pass = true, .source = "x.json"};
	cJSON *r, *scan;

	ao.inventory_rows_later = later;
	ao.findings_arenas = later ? arenas : NULL;
	ao.threads = later ? 2 : 1;
	r = audit_run(e, &catalog, &ao);
	scan = cJSON_GetObjectItemCaseSensitive(r, "scan");
	cJSON_ReplaceItemInObjectCaseSensitive(scan, "generatedAt", cJSON_CreateString("2026-11-28T12:00:00Z"));
	return r;
}

/* What a writer gives for r (and rows, or NULL), as a string. */
static char *json_text(const cJSON *r, const struct report_rows *rows)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct kv_err err = {{0}};

	assert_non_null(f);
	if (!report_write_json_rows(r, rows, f, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(fclose(f), 0);
	return text;
}

static size_t count_rows(const cJSON *r)
{
	const cJSON *inv = cJSON_GetObjectItemCaseSensitive(r, "inventory");

	return (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(inv, "vms"));
}

static void compare_file(const char *path)
{
	struct estate_opts lo = {.lean = true};
	struct kv_err err = {{0}};
	struct estate *e = estate_load(path, &lo, &err);
	cJSON *whole, *later;
	struct report_rows rows = {NULL, facts_inventory_next_vm, NULL};
	char *a, *b, *c;

	if (!e)
		return;   /* a snapshot that does not load has no report (test_lean compares its message) */
	whole = report_of(e, false);
	later = report_of(e, true);
	assert_int_equal(count_rows(later), 0);
	rows.array = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(later, "inventory"), "vms");
	rows.arg = e;
	a = json_text(whole, NULL);
	b = json_text(later, &rows);
	c = json_text(later, &rows);   /* each write makes the rows again */
	if (strcmp(a, b) != 0 || strcmp(a, c) != 0)
		fail_msg("%s: the report with rows made while it is written differs", path);
	free(a);
	free(b);
	free(c);
	cJSON_Delete(whole);
	cJSON_Delete(later);
	for (size_t i = 0; i < AUDIT_ARENAS; i++)
		fastjson_arena_free(&arenas[i]);
	estate_free(e);
}

/* Every snapshot pattern names (there is at least one). */
static void compare_glob(const char *pattern)
{
	glob_t g;

	assert_int_equal(glob(pattern, 0, NULL, &g), 0);
	assert_true(g.gl_pathc > 0);
	for (size_t i = 0; i < g.gl_pathc; i++)
		compare_file(g.gl_pathv[i]);
	globfree(&g);
}

static void every_snapshot_writes_the_same_json(void **state)
{
	(void)state;
	compare_file(KV_SOURCE_DIR "/examples/demo-estate.json");
	compare_glob(KV_SOURCE_DIR "/tests/unit/data/estate/*.json");
	compare_glob(KV_SOURCE_DIR "/tests/unit/data/ade/*.json");
	compare_glob(KV_SOURCE_DIR "/tests/fuzz/corpus/fuzz_estate/*.json");
}

static char *slurp(const char *path)
{
	struct kv_err err = {{0}};
	size_t len = 0;
	char *t = kv_read_file(path, (size_t)1 << 30, &len, &err);

	if (!t)
		fail_msg("%s", err.msg);
	return t;
}

/*
 * Through report_output's files: the JSON file has the rows, every other
 * format is what the whole report gives; the demo has ADE VMs to list.
 */
static void report_output_puts_the_rows_in_the_json_file_only(void **state)
{
	struct estate_opts lo = {.lean = true};
	struct kv_err err = {{0}};
	struct estate *e = estate_load(KV_SOURCE_DIR "/examples/demo-estate.json", &lo, &err);
	char dir[] = "/tmp/kvaudit-rows-XXXXXX", path[256];
	static const char *const exts[] = {"json", "csv", "html", "sarif", "junit.xml", "md"};
	cJSON *whole, *later;
	struct report_rows rows = {NULL, facts_inventory_next_vm, NULL};

	(void)state;
	assert_non_null(e);
	assert_non_null(mkdtemp(dir));
	whole = report_of(e, false);
	later = report_of(e, true);
	assert_true(count_rows(whole) > 0);
	rows.array = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(later, "inventory"), "vms");
	rows.arg = e;
	snprintf(path, sizeof(path), "%s/a/", dir);
	if (!report_output(whole, "json,csv,html,sarif,junit,md", path, "20261128T120000Z", NULL, &err))
		fail_msg("%s", err.msg);
	snprintf(path, sizeof(path), "%s/b/", dir);
	if (!report_output_rows(later, &rows, "json,csv,html,sarif,junit,md", path, "20261128T120000Z", NULL, &err))
		fail_msg("%s", err.msg);
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		char pa[300], pb[300];
		char *ta, *tb;

		snprintf(pa, sizeof(pa), "%s/a/kvaudit-20261128T120000Z.%s", dir, exts[i]);
		snprintf(pb, sizeof(pb), "%s/b/kvaudit-20261128T120000Z.%s", dir, exts[i]);
		ta = slurp(pa);
		tb = slurp(pb);
		if (strcmp(ta, tb) != 0)
			fail_msg("%s differs with the rows made while it is written", exts[i]);
		free(ta);
		free(tb);
		unlink(pa);
		unlink(pb);
	}
	snprintf(path, sizeof(path), "%s/a", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/b", dir);
	rmdir(path);
	rmdir(dir);
	cJSON_Delete(whole);
	cJSON_Delete(later);
	for (size_t i = 0; i < AUDIT_ARENAS; i++)
		fastjson_arena_free(&arenas[i]);
	estate_free(e);
}

/* Rows before an array's own elements are separated from them as elements are. */
static void rows_come_before_the_arrays_own_elements(void **state)
{
	cJSON *doc = cJSON_Parse("{\"a\": [3], \"b\": []}");
	struct estate_opts lo = {.lean = true};
	struct kv_err err = {{0}};
	struct estate *e = estate_load(KV_SOURCE_DIR "/examples/demo-estate.json", &lo, &err);
	struct report_rows rows = {NULL, facts_inventory_next_vm, NULL};
	cJSON *want = cJSON_Parse("{\"a\": [], \"b\": []}"), *a;
	char *got, *exp;
	size_t pos = 0;
	cJSON *row;

	(void)state;
	assert_non_null(e);
	rows.array = cJSON_GetObjectItemCaseSensitive(doc, "a");
	rows.arg = e;
	a = cJSON_GetObjectItemCaseSensitive(want, "a");
	while ((row = facts_inventory_next_vm(e, &pos)) != NULL)
		cJSON_AddItemToArray(a, row);
	cJSON_AddItemToArray(a, cJSON_CreateNumber(3));
	assert_true(cJSON_GetArraySize(a) > 1);
	got = json_text(doc, &rows);
	exp = json_text(want, NULL);
	assert_string_equal(got, exp);
	free(got);
	free(exp);
	cJSON_Delete(doc);
	cJSON_Delete(want);
	estate_free(e);
}

/* Rows at every stride-th position below n: segments' edges fall on rows, gaps and ends. */
struct sparse {
	size_t n, stride;
};

static cJSON *sparse_next(void *arg, size_t *pos)
{
	const struct sparse *sp = arg;

	while (*pos < sp->n) {
		size_t p = (*pos)++;

		if (p % sp->stride == 0) {
			cJSON *o = cJSON_CreateObject();

			cJSON_AddNumberToObject(o, "pos", (double)p);
			cJSON_AddStringToObject(o, "text", "a \"quoted\"\nline");
			cJSON_AddItemToObject(o, "list", cJSON_CreateIntArray((const int[]){1, 2, 3}, 3));
			return o;
		}
	}
	return NULL;
}

/* A document whose "a" holds m children of its own (after the rows) and "b" m more. */
static cJSON *big_doc(size_t m)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *a = cJSON_AddArrayToObject(doc, "a"), *b;

	cJSON_AddStringToObject(doc, "before", "x");
	for (size_t i = 0; i < m; i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddNumberToObject(o, "i", (double)i);
		cJSON_AddItemToObject(o, "evidence", cJSON_CreateIntArray((const int[]){4, 5}, 2));
		cJSON_AddItemToArray(a, o);
	}
	b = cJSON_AddObjectToObject(doc, "inv");
	b = cJSON_AddArrayToObject(b, "b");
	for (size_t i = 0; i < m; i++)
		cJSON_AddItemToArray(b, cJSON_CreateNumber((double)i * 1.5));
	cJSON_AddStringToObject(doc, "after", "y");
	return doc;
}

/*
 * The writer's large arrays formatted on two threads (report_json_threads)
 * give the one thread's text: children counts and row positions around the
 * segments' sizes (64 children, 256 positions) and the second thread's
 * slots, rows before an array's own children, no rows at all.
 */
static void large_arrays_on_two_threads_write_the_same_text(void **state)
{
	static const size_t counts[] = {0, 1, 127, 128, 129, 640, 641, 3000};
	static const size_t positions[] = {0, 1, 255, 256, 257, 511, 512, 513, 2303, 2304, 9000};
	static const size_t strides[] = {1, 3, 4, 256, 700, 5000};

	(void)state;
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		for (size_t j = 0; j < sizeof(positions) / sizeof(positions[0]); j++) {
			for (size_t k = 0; k < sizeof(strides) / sizeof(strides[0]); k++) {
				struct sparse sp = {positions[j], strides[k]};
				cJSON *doc = big_doc(counts[i]);
				struct report_rows rows = {cJSON_GetObjectItemCaseSensitive(doc, "a"), sparse_next, &sp};
				char *one, *two;

				/* Without rows once per count: the children alone. */
				const struct report_rows *r = j + k == 0 ? NULL : &rows;

				report_json_threads(1);
				one = json_text(doc, r);
				report_json_threads(2);
				two = json_text(doc, r);
				if (strcmp(one, two) != 0)
					fail_msg("%zu children, %zu positions, stride %zu%s: two threads write other text",
					         counts[i], positions[j], strides[k], r ? "" : " (no rows)");
				free(one);
				free(two);
				cJSON_Delete(doc);
			}
		}
	}
}

/* The snapshots' reports, written on one thread, are the text written on two. */
static void every_snapshot_writes_the_same_json_on_one_thread(void **state)
{
	report_json_threads(1);
	every_snapshot_writes_the_same_json(state);
	report_json_threads(2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_snapshot_writes_the_same_json),
		cmocka_unit_test(report_output_puts_the_rows_in_the_json_file_only),
		cmocka_unit_test(rows_come_before_the_arrays_own_elements),
		cmocka_unit_test(large_arrays_on_two_threads_write_the_same_text),
		cmocka_unit_test(every_snapshot_writes_the_same_json_on_one_thread),
	};
	struct kv_err err = {{0}};
	int rc;

	if (!rule_catalog_load_builtin(&catalog, &err)) {
		fprintf(stderr, "builtin catalog: %s\n", err.msg);
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rule_catalog_release(&catalog);
	return rc;
}
