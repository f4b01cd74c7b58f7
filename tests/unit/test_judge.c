/*
 * test_judge.c - the audit judges its subjects on two threads (audit.c,
 * facts_each_range): the report must be byte for byte the one a single
 * thread makes, whatever the options, with suppressions (and their expiry
 * warnings), with read errors (the caches the facts consult) and skipped
 * findings; and facts_each_range, cut anywhere, must give facts_each's
 * subjects in facts_each's order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "audit/audit.h"
#include "audit/estate/estate.h"
#include "audit/estate/facts.h"
#include "rules/engine.h"

static struct rule_catalog catalog;

#define SUB_A "/subscriptions/8b2e4f71-3c9a-4d6e-b1f0-7a5c2e9d4b13"
#define SUB_B "/subscriptions/1d7c5a93-e2b4-4f08-9c6d-3b8a1e7f5c24"
#define SUB_C "/subscriptions/6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8"

/* Lists of the demo that could not be read: a vault's backup jobs, a subscription's disks, an Activity Log. */
static const char *const ERRORS[] = {
	"{\"scope\":\"" SUB_A "/resourceGroups/rg-nw-backup-weu/providers/Microsoft.RecoveryServices/vaults/"
	"rsv-nw-prod-weu/backupJobs\",\"status\":403,\"code\":\"AuthorizationFailed\",\"message\":\"no jobs\"}",
	"{\"scope\":\"" SUB_B "/providers/Microsoft.Compute/disks\",\"status\":500,\"code\":\"InternalError\","
	"\"message\":\"no disks\"}",
	"{\"scope\":\"" SUB_C "/providers/Microsoft.Insights/eventtypes/management/values\",\"status\":429,"
	"\"code\":\"TooManyRequests\",\"message\":\"no log\"}",
};

/* One accepted risk on every vault, one that expired on every VM. */
static const char SUPPRESSIONS[] =
	"{\"kind\":\"kvaudit.suppressions\",\"version\":1,\"suppressions\":["
	"{\"rule\":\"KVA-BKP-001\",\"resource\":\"kv-\",\"reason\":\"r\",\"owner\":\"o\",\"expires\":\"2099-12-31\"},"
	"{\"rule\":\"KVA-VM-002\",\"resource\":\".\",\"reason\":\"r\",\"owner\":\"o\",\"expires\":\"2020-01-01\"},"
	"{\"rule\":\"KVA-VLT-002\",\"resource\":\"nomatch-anywhere\",\"reason\":\"r\",\"owner\":\"o\","
	"\"expires\":\"2020-01-01\"}]}";

static int setup(void **state)
{
	struct kv_err err = {{0}};

	(void)state;
	return rule_catalog_load_builtin(&catalog, &err) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	rule_catalog_release(&catalog);
	return 0;
}

static struct estate *load(const char *path, bool with_errors)
{
	struct estate_opts lo = {.lean = true};
	struct kv_err err = {{0}};
	size_t len;
	char *text = kv_read_file(path, (size_t)1 << 30, &len, &err), *out;
	cJSON *doc, *errs;
	struct estate *e;

	if (!text)
		fail_msg("%s", err.msg);
	doc = cJSON_ParseWithLength(text, len);
	free(text);
	assert_non_null(doc);
	if (with_errors) {
		errs = cJSON_GetObjectItemCaseSensitive(doc, "errors");
		if (!errs)
			errs = cJSON_AddArrayToObject(doc, "errors");
		for (size_t i = 0; i < sizeof(ERRORS) / sizeof(ERRORS[0]); i++)
			cJSON_AddItemToArray(errs, cJSON_Parse(ERRORS[i]));
	}
	out = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	e = estate_parse(out, strlen(out), path, &lo, &err);
	free(out);
	if (!e)
		fail_msg("%s: %s", path, err.msg);
	return e;
}

static void warn_line(const char *line, void *arg)
{
	struct kv_buf *b = arg;

	kv_buf_add(b, line, strlen(line));
	kv_buf_add(b, "\n", 1);
}

/* The report (without its time) and the suppressions' expiry warnings, judged on threads threads. */
static char *judged(struct estate *e, int threads, bool pass, bool skipped, bool supp)
{
	struct audit_opts ao = {.fail_on = SEV_LOW, .include_pass = pass, .include_skipped = skipped,
	                        .source = "x.json", .threads = threads};
	struct suppressions s;
	struct kv_err err = {{0}};
	struct kv_buf b;
	cJSON *r;
	char *t;

	if (supp) {
		if (!suppressions_parse(SUPPRESSIONS, strlen(SUPPRESSIONS), "supp.json", &catalog, "2026-11-28", &s, &err))
			fail_msg("%s", err.msg);
		ao.suppressions = &s;
	}
	r = audit_run(e, &catalog, &ao);
	cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "scan"), "generatedAt");
	t = cJSON_Print(r);
	cJSON_Delete(r);
	kv_buf_init(&b, 0);
	kv_buf_add(&b, t, strlen(t));
	free(t);
	if (supp) {
		kv_buf_add(&b, "\n--\n", 4);
		suppressions_each_expired_hit(&s, warn_line, &b);
		suppressions_release(&s);
	}
	kv_buf_add(&b, "", 1);
	return kv_buf_detach(&b);
}

static void same_on_two_threads(const char *path, bool with_errors)
{
	struct estate *e = load(path, with_errors);
	bool demo = strstr(path, "demo-estate") != NULL;

	for (unsigned m = 0; m < 8; m++) {
		bool pass = m & 1, skipped = m & 2, supp = m & 4;
		char *one = judged(e, 1, pass, skipped, supp), *two = judged(e, 2, pass, skipped, supp);

		if (strcmp(one, two) != 0)
			fail_msg("%s%s (pass %d, skipped %d, suppressions %d): the reports of one and two threads differ",
			         path, with_errors ? " with read errors" : "", pass, skipped, supp);
		/* On the demo, the suppressions and the errors had something to do. */
		if (supp && demo && !strstr(one, "expired on 2020-01-01"))
			fail_msg("no expired suppression hit on the demo");
		if (with_errors && demo && !strstr(one, "no jobs"))
			fail_msg("no unreadable job list on the demo");
		free(one);
		free(two);
	}
	estate_free(e);
}

static void two_threads_report_what_one_does(void **state)
{
	(void)state;
	same_on_two_threads(KV_SOURCE_DIR "/examples/demo-estate.json", false);
	same_on_two_threads(KV_SOURCE_DIR "/examples/demo-estate.json", true);
	same_on_two_threads(KV_SOURCE_DIR "/examples/partial-estate.json", true);
	same_on_two_threads(KV_SOURCE_DIR "/tests/unit/data/estate/full.json", true);
}

struct seq {
	struct kv_buf b;
	size_t n;
};

static void record(enum subject_kind kind, const cJSON *facts, void *arg)
{
	struct seq *s = arg;
	char *t = cJSON_PrintUnformatted(facts);

	kv_buf_add(&s->b, subject_name(kind), strlen(subject_name(kind)));
	kv_buf_add(&s->b, t, strlen(t));
	kv_buf_add(&s->b, "\n", 1);
	free(t);
	s->n++;
}

static char *subjects_of(struct facts_ctx *c, size_t cut, size_t *n)
{
	struct seq s = {.n = 0};

	kv_buf_init(&s.b, 0);
	facts_each_range(c, 0, cut, record, &s);
	facts_each_range(c, cut, facts_units(c), record, &s);
	kv_buf_add(&s.b, "", 1);
	*n = s.n;
	return kv_buf_detach(&s.b);
}

static void ranges_cut_anywhere_give_facts_each(void **state)
{
	struct estate *e = load(KV_SOURCE_DIR "/examples/demo-estate.json", true);
	struct facts_ctx *c = facts_prepare(e);
	struct seq all = {.n = 0};
	size_t units = facts_units(c), bounds[4];
	char *want;

	(void)state;
	kv_buf_init(&all.b, 0);
	facts_each(c, record, &all);
	kv_buf_add(&all.b, "", 1);
	want = kv_buf_detach(&all.b);
	/* Units: every VM (with its bindings), vault and tenant; more subjects than units (the bindings). */
	assert_true(units >= e->nvms + e->nvaults);
	assert_true(all.n > units);
	for (size_t cut = 0; cut <= units; cut++) {
		size_t n;
		char *got = subjects_of(c, cut, &n);

		assert_int_equal(n, all.n);
		if (strcmp(got, want) != 0)
			fail_msg("cut at unit %zu of %zu: the subjects differ from facts_each's", cut, units);
		free(got);
	}
	/* The split covers every unit once, in order, and gives both threads work. */
	facts_split(c, 2, bounds);
	assert_int_equal(bounds[0], 0);
	assert_int_equal(bounds[2], units);
	assert_true(bounds[1] > 0 && bounds[1] < units);
	facts_split(c, 3, bounds);
	assert_true(bounds[0] == 0 && bounds[0] <= bounds[1] && bounds[1] <= bounds[2] && bounds[2] <= bounds[3] &&
	            bounds[3] == units);
	free(want);
	facts_ctx_free(c);
	estate_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(two_threads_report_what_one_does),
		cmocka_unit_test(ranges_cut_anywhere_give_facts_each),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
