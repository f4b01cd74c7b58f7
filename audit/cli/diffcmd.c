/*
 * diffcmd.c - `kvaudit diff OLD.json NEW.json`: what changed between two
 * saved reports, so a nightly job alerts only on new failures.  A failing
 * finding is identified by its rule and subject IDs (compared as Azure
 * compares IDs: case-insensitively); its message may change between runs.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/cli/cli.h"
#include "audit/cli/cli_internal.h"
#include "audit/util/armid.h"
#include "reports/report.h"

const char DIFF_USAGE[] =
	"usage: kvaudit diff OLD.json NEW.json [--format text|json] [--fail-on SEV]\n"
	"\n"
	"Compare the failing findings of two JSON reports: new, resolved and unchanged.\n"
	"\n"
	"options:\n"
	"  --format text|json         output on stdout (default text)\n"
	"  --fail-on SEV              exit 1 when a NEW failing finding is at or above SEV\n"
	"                             (info, low, medium, high, critical; default low)\n"
	"  -h, --help                 this help\n"
	"\n"
	"exit codes: 0 nothing new at or above --fail-on, 1 new failing findings, 2 bad usage or input\n";

static const char *s_of(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* Same finding: same rule and subject, same resources (IDs case-insensitively). */
static bool same_finding(const cJSON *a, const cJSON *b)
{
	return kv_streq_ci(s_of(a, "rule"), s_of(b, "rule")) && kv_streq_ci(s_of(a, "subject"), s_of(b, "subject")) &&
	       armid_eq(s_of(a, "vm"), s_of(b, "vm")) && armid_eq(s_of(a, "vault"), s_of(b, "vault")) &&
	       kv_streq_ci(s_of(a, "tenant"), s_of(b, "tenant"));
}

static bool failing(const cJSON *f)
{
	return kv_streq_ci(s_of(f, "status"), "fail");
}

/*
 * The failing findings of one report, hashed on the identity same_finding
 * compares, so that diffing two reports of 100k findings each is linear
 * rather than 100k x 100k comparisons.  The hash folds case (as strcasecmp
 * does) and a trailing '/' of an ID (as armid_eq does); equal findings
 * always hash alike, and a bucket is confirmed with same_finding itself.
 */
struct finding_set {
	const cJSON **slot;   /* NULL: empty */
	uint64_t *hash;
	size_t mask;
};

static uint64_t hash_field(uint64_t h, const char *s, bool id)
{
	size_t n;

	if (!s)
		return (h ^ 0x100) * 1099511628211ULL; /* absent: not the same as "" */
	n = strlen(s);
	if (id && n > 1 && s[n - 1] == '/')
		n--;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)tolower((unsigned char)s[i])) * 1099511628211ULL;
	return (h ^ 0x101) * 1099511628211ULL; /* the end of a field */
}

static uint64_t hash_finding(const cJSON *f)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	h = hash_field(h, s_of(f, "rule"), false);
	h = hash_field(h, s_of(f, "subject"), false);
	h = hash_field(h, s_of(f, "vm"), true);
	h = hash_field(h, s_of(f, "vault"), true);
	return hash_field(h, s_of(f, "tenant"), false);
}

static void set_build(struct finding_set *set, const cJSON *findings)
{
	const cJSON *it;
	size_t n = 0, cap = 16;

	cJSON_ArrayForEach(it, findings)
		n += failing(it);
	while (cap < 2 * n)
		cap *= 2;
	set->slot = kv_calloc(cap, sizeof(*set->slot));
	set->hash = kv_calloc(cap, sizeof(*set->hash));
	set->mask = cap - 1;
	cJSON_ArrayForEach(it, findings) {
		uint64_t h;
		size_t i;

		if (!failing(it))
			continue;
		h = hash_finding(it);
		for (i = (size_t)h & set->mask; set->slot[i]; i = (i + 1) & set->mask)
			if (set->hash[i] == h && same_finding(set->slot[i], it))
				break;
		if (!set->slot[i]) {
			set->slot[i] = it;
			set->hash[i] = h;
		}
	}
}

static bool set_has(const struct finding_set *set, const cJSON *f)
{
	uint64_t h = hash_finding(f);

	for (size_t i = (size_t)h & set->mask; set->slot[i]; i = (i + 1) & set->mask)
		if (set->hash[i] == h && same_finding(set->slot[i], f))
			return true;
	return false;
}

static void set_release(struct finding_set *set)
{
	free(set->slot);
	free(set->hash);
	memset(set, 0, sizeof(*set));
}

/*
 * The failing findings of `from` that are (or are not) failing in `other`,
 * as references: the reports are arena trees (cli_report_load), which the
 * list only borrows, and copying every finding of a large report would
 * double its memory.  Deleting the list frees only the references.
 */
static cJSON *select_findings(const cJSON *from, const struct finding_set *other, bool in_other)
{
	cJSON *out = cJSON_CreateArray();
	const cJSON *it;

	cJSON_ArrayForEach(it, from)
		if (failing(it) && set_has(other, it) == in_other)
			cJSON_AddItemToArray(out, cJSON_CreateObjectReference(it->child));
	return out;
}

static int count_alerts(const cJSON *added, enum severity fail_on)
{
	const cJSON *it;
	int alerts = 0;

	cJSON_ArrayForEach(it, added) {
		enum severity s;

		if (severity_parse(s_of(it, "severity"), &s) && s >= fail_on)
			alerts++;
	}
	return alerts;
}

int cli_baseline_alerts(const cJSON *baseline, const cJSON *report, enum severity fail_on, FILE *out)
{
	const cJSON *fo = cJSON_GetObjectItemCaseSensitive(baseline, "findings");
	const cJSON *fn = cJSON_GetObjectItemCaseSensitive(report, "findings");
	struct finding_set so, sn;
	cJSON *added, *resolved;
	int alerts;

	set_build(&so, fo);
	set_build(&sn, fn);
	added = select_findings(fn, &so, false);
	resolved = select_findings(fo, &sn, false);
	alerts = count_alerts(added, fail_on);
	set_release(&so);
	set_release(&sn);

	if (out)
		fprintf(out, "kvaudit: against the baseline: %d new failing finding(s) (%d at or above %s), %d resolved\n",
		        cJSON_GetArraySize(added), alerts, severity_name(fail_on), cJSON_GetArraySize(resolved));
	cJSON_Delete(added);
	cJSON_Delete(resolved);
	return alerts;
}

static void print_list(const char *title, const cJSON *list)
{
	const cJSON *it;

	printf("%s (%d)\n", title, cJSON_GetArraySize(list));
	cJSON_ArrayForEach(it, list) {
		char *sev = term_safe(s_of(it, "severity")), *rule = term_safe(s_of(it, "rule"));
		char *msg = term_safe(s_of(it, "message"));

		printf("  %-8s %-12s %s\n", sev ? sev : "?", rule ? rule : "?", msg ? msg : "");
		free(sev);
		free(rule);
		free(msg);
	}
}

int cmd_diff(int argc, char **argv, const struct command *self)
{
	static const struct option opts[] = {
		{"format", required_argument, NULL, 'f'},
		{"fail-on", required_argument, NULL, 'F'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *format = "text";
	enum severity fail_on = SEV_LOW;
	cJSON *old = NULL, *new = NULL, *added = NULL, *resolved = NULL, *kept = NULL;
	struct fastjson_arena old_arena = {0}, new_arena = {0};
	const cJSON *fo, *fn;
	struct finding_set so = {0}, sn = {0};
	struct kv_err err = {{0}};
	int opt, rc = KV_EXIT_USAGE, alerts = 0;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'f': format = optarg; break;
		case 'F':
			if (!severity_parse(optarg, &fail_on)) {
				rc = cli_usage_error(self, "--fail-on takes info, low, medium, high or critical");
				goto out;
			}
			break;
		case 'h': rc = cli_print_help(self); goto out;
		default: rc = cli_bad_option(self, argv, opt); goto out;
		}
	}
	if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0) {
		rc = cli_usage_error(self, "--format takes text or json");
		goto out;
	}
	if (argc - optind != 2) {
		rc = cli_usage_error(self, "two reports are expected: OLD.json NEW.json");
		goto out;
	}
	if (!(old = cli_report_load(argv[optind], &old_arena, &err)) ||
	    !(new = cli_report_load(argv[optind + 1], &new_arena, &err))) {
		cli_error("%s", err.msg);
		goto out;
	}
	fo = cJSON_GetObjectItemCaseSensitive(old, "findings");
	fn = cJSON_GetObjectItemCaseSensitive(new, "findings");
	set_build(&so, fo);
	set_build(&sn, fn);
	added = select_findings(fn, &so, false);
	resolved = select_findings(fo, &sn, false);
	kept = select_findings(fn, &so, true);
	alerts = count_alerts(added, fail_on);
	if (strcmp(format, "json") == 0) {
		cJSON *d = cJSON_CreateObject();
		char *text;

		cJSON_AddStringToObject(d, "kind", "kvaudit.diff");
		cJSON_AddNumberToObject(d, "version", 1);
		cJSON_AddItemToObject(d, "old", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(old, "scan"), true));
		cJSON_AddItemToObject(d, "newScan", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(new, "scan"), true));
		cJSON_AddStringToObject(d, "failOn", severity_name(fail_on));
		cJSON_AddNumberToObject(d, "alerts", alerts);
		cJSON_AddItemToObject(d, "new", added);
		cJSON_AddItemToObject(d, "resolved", resolved);
		cJSON_AddItemToObject(d, "unchanged", kept);
		added = resolved = kept = NULL;
		text = cJSON_Print(d);
		cJSON_Delete(d);
		if (!text) {
			/* cJSON prints at most 2 GiB (int sizes). */
			cli_error("cannot print the diff as JSON: out of memory, or over 2 GiB (use --format text)");
			goto out;
		}
		printf("%s\n", text);
		free(text);
	} else {
		print_list("new failing findings", added);
		print_list("resolved", resolved);
		printf("unchanged failing findings: %d\n", cJSON_GetArraySize(kept));
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error("cannot write to standard output");
		goto out;
	}
	rc = alerts ? KV_EXIT_FINDINGS : KV_EXIT_OK;
out:
	cJSON_Delete(added);
	cJSON_Delete(resolved);
	cJSON_Delete(kept);
	set_release(&so);
	set_release(&sn);
	fastjson_arena_free(&old_arena);
	fastjson_arena_free(&new_arena);
	return rc;
}
