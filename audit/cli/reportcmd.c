/*
 * reportcmd.c - `kvaudit report REPORT.json [--format LIST] [--out DIR|FILE|-]`:
 * renders a saved kvaudit.report (docs/report.md) in any report format,
 * with the same --out rules as `kvaudit audit`.  Files written to a
 * directory are named after the report's own generatedAt time, so
 * rendering a report again gives the names the scan would have given.
 *
 * The report is loaded as the estate loader loads an estate: one line
 * naming the file and the JSON path or byte offset, exit 2.  Only the
 * envelope is checked (kind, version, the member types the writers walk);
 * the writers tolerate missing or mistyped members inside.
 *
 * The report is only read, so it is parsed by fastjson into an arena (the
 * tree cJSON would build, at a fraction of the time and memory: a 50k-VM
 * report is hundreds of MB) from the file mapped, not copied.  Its nodes
 * never reach cJSON_Delete: what is changed (kvaudit report folding the
 * skipped findings) is a cJSON copy of the summary, and findings are only
 * unlinked.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/audit.h"
#include "audit/cli/cli.h"
#include "audit/cli/cli_internal.h"
#include "audit/util/fastjson.h"
#include "audit/util/json.h"
#include "audit/util/util.h"
#include "reports/report.h"

/*
 * The bound is the estate loader's (2 GiB), since a report is about the
 * size of its estate: a 50k-VM estate's report with --include-pass and
 * --include-skipped is 1.1 GB.  Past it, cJSON can no longer print the
 * document (its buffer sizes are ints).
 */
#define REPORT_MAX_BYTES ((size_t)2 << 30)

const char REPORT_USAGE[] =
	"usage: kvaudit report REPORT.json [--format LIST] [--out DIR|FILE|-] [--include-skipped]\n"
	"\n"
	"Render a saved JSON report (kvaudit.report v1, from 'kvaudit audit' or 'kvaudit scan')\n"
	"in other formats.\n"
	"\n"
	"options:\n"
	"  --format LIST              report formats, comma-separated: html, sarif, junit, md,\n"
	"                             csv, json (default html)\n"
	"  --out DIR|FILE|-           a directory receives kvaudit-<report time>.<ext> per format\n"
	"                             (created if missing); FILE or - (stdout) take one format\n"
	"                             (default: the current directory)\n"
	"  --include-skipped          render the skipped findings a report lists one by one as\n"
	"                             they are (else they are counted per rule and reason, as\n"
	"                             'kvaudit audit' does without --include-skipped)\n"
	"  -v, --verbose              list where each report was written\n"
	"  -h, --help                 this help\n"
	"\n"
	"exit codes: 0 rendered, 2 bad usage, an unreadable or invalid report, or a failed write\n";

/* Copies s into out[n] with control characters as '?', cut at n - 4 with "...". */
static const char *printable(const char *s, char *out, size_t n)
{
	size_t j = 0;

	for (; s != NULL && *s != '\0' && j + 4 < n; s++)
		out[j++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	if (s != NULL && *s != '\0' && j + 3 < n) {
		memcpy(out + j, "...", 3);
		j += 3;
	}
	out[j] = '\0';
	return out;
}

/* 1-based line of a byte offset. */
static size_t line_of(const char *data, size_t off)
{
	size_t line = 1;

	for (size_t i = 0; i < off; i++)
		if (data[i] == '\n')
			line++;
	return line;
}

/* Checks that member key of doc, when present, has the type check accepts. */
static bool member_ok(const cJSON *doc, const char *key, cJSON_bool (*check)(const cJSON *),
                      const char *what, const char *name, struct kv_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);

	if (v == NULL || check(v))
		return true;
	kv_err_set(err, "%s: $.%s: expected %s, got %s", name, key, what, json_type_name(v));
	return false;
}

/*
 * The file's bytes, mapped read-only (*len; NULL with err set): no copy and
 * no zeroed pages for hundreds of MB.  An empty file maps nothing: "" then.
 */
static const char *map_report(const char *path, size_t *len, struct kv_err *err)
{
	const char *p = kv_map_file(path, REPORT_MAX_BYTES, len, err);

	if (p == NULL && *len > REPORT_MAX_BYTES)
		kv_err_set(err, "%s: the report is %zu bytes, more than the %zu GiB kvaudit reads: "
		           "audit the estate again without --include-pass/--include-skipped, or with --format for "
		           "the formats you need", path, *len, REPORT_MAX_BYTES >> 30);
	return p;
}

size_t cli_json_error_offset(const char *data, size_t len)
{
	const char *end = NULL;
	cJSON *doc = cJSON_ParseWithLengthOpts(data, len, &end, false);
	size_t off = end != NULL && end >= data ? (size_t)(end - data) : 0;

	cJSON_Delete(doc);
	return off > len ? len : off;
}

/* Checks a parsed report's envelope; false with err set, naming the file. */
static bool report_envelope_ok(const cJSON *doc, const char *path, struct kv_err *err)
{
	const cJSON *kind, *ver;
	char buf[128];

	if (!cJSON_IsObject(doc)) {
		kv_err_set(err, "%s: $: expected an object, got %s: not a kvaudit report", path, json_type_name(doc));
		return false;
	}
	kind = cJSON_GetObjectItemCaseSensitive(doc, "kind");
	if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "kvaudit.report") != 0) {
		if (cJSON_IsString(kind))
			kv_err_set(err, "%s: $.kind: expected \"kvaudit.report\", got \"%s\": not a kvaudit report",
			           path, printable(kind->valuestring, buf, sizeof(buf)));
		else
			kv_err_set(err, "%s: $.kind: expected \"kvaudit.report\", got %s: not a kvaudit report",
			           path, json_type_name(kind));
		return false;
	}
	ver = cJSON_GetObjectItemCaseSensitive(doc, "version");
	if (!cJSON_IsNumber(ver) || ver->valuedouble != 1.0) {
		if (cJSON_IsNumber(ver))
			kv_err_set(err, "%s: $.version: unsupported report version %g (this kvaudit reads version 1)",
			           path, ver->valuedouble);
		else
			kv_err_set(err, "%s: $.version: expected 1, got %s", path, json_type_name(ver));
		return false;
	}
	if (!member_ok(doc, "findings", cJSON_IsArray, "an array", path, err) ||
	    !member_ok(doc, "errors", cJSON_IsArray, "an array", path, err) ||
	    !member_ok(doc, "summary", cJSON_IsObject, "an object", path, err) ||
	    !member_ok(doc, "scan", cJSON_IsObject, "an object", path, err) ||
	    !member_ok(doc, "inventory", cJSON_IsObject, "an object", path, err))
		return false;
	if (cJSON_GetObjectItemCaseSensitive(doc, "findings") == NULL) {
		kv_err_set(err, "%s: $.findings: missing: not a complete kvaudit report", path);
		return false;
	}
	return true;
}

cJSON *cli_report_load(const char *path, struct fastjson_arena *arena, struct kv_err *err)
{
	size_t len = 0;
	const char *data, *end = NULL;
	cJSON *doc = NULL;

	data = map_report(path, &len, err);
	if (data == NULL)
		return NULL;
	if (json_skip_space(data, 0, len) == len) {
		kv_err_set(err, "%s: the file is empty: expected a kvaudit.report JSON document", path);
		goto out;
	}
	/* A report repeats the same keys and enum values in every finding: kept once. */
	fastjson_arena_share_strings(arena, true);
	doc = fastjson_parse(data, len, &end, arena);
	fastjson_arena_share_strings(arena, false);
	if (doc == NULL) {
		size_t off = cli_json_error_offset(data, len);

		kv_err_set(err, "%s: invalid JSON at byte %zu (line %zu)", path, off, line_of(data, off));
		goto out;
	}
	if (end != NULL) {
		size_t at = json_skip_space(data, (size_t)(end - data), len);

		if (at < len) {
			kv_err_set(err, "%s: invalid JSON: unexpected data after the document at byte %zu", path, at);
			doc = NULL;
			goto out;
		}
	}
	if (!report_envelope_ok(doc, path, err))
		doc = NULL;   /* the arena's owner frees it */
out:
	kv_unmap_file(data, len);
	return doc;
}

/*
 * Links node into parent's children where old was; old is unlinked, not
 * freed (an arena's).  By hand: cJSON_ReplaceItemViaPointer frees old, and
 * Debian's cJSON_InsertItemInArray refuses nodes it did not link itself.
 * cJSON's head->prev is the last child.
 */
static void splice(cJSON *parent, cJSON *old, cJSON *node)
{
	node->prev = old->prev == old ? node : old->prev;
	node->next = old->next;
	if (old->next)
		old->next->prev = node;
	else
		parent->child->prev = node;
	if (parent->child == old)
		parent->child = node;
	else
		old->prev->next = node;
	old->next = old->prev = NULL;
}

/*
 * Folds the skipped findings of report, an arena tree, into its summary
 * (audit_fold_skipped_unlink) after putting a cJSON copy of the summary in
 * its place: returned, for the caller to unlink and delete before the arena
 * goes.  NULL when the report has no findings array or summary object:
 * nothing to fold.
 */
static cJSON *fold_skipped(cJSON *report)
{
	cJSON *findings = cJSON_GetObjectItemCaseSensitive(report, "findings");
	cJSON *sum = cJSON_GetObjectItemCaseSensitive(report, "summary"), *copy;

	if (!cJSON_IsArray(findings) || !cJSON_IsObject(sum))
		return NULL;
	copy = cJSON_Duplicate(sum, true);
	splice(report, sum, copy);
	audit_fold_skipped_unlink(report);
	return copy;
}

/* "20261128T120500Z" from the report's scan.generatedAt; false when it has none or another form. */
static bool report_stamp(const cJSON *report, char *out, size_t n)
{
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(report, "scan"),
	                                                  "generatedAt");
	const char *s;
	size_t i, j = 0;

	if (!cJSON_IsString(g))
		return false;
	s = g->valuestring;
	/* Exactly YYYY-MM-DDTHH:MM:SSZ: the stamp becomes part of a file name. */
	if (strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
	    s[19] != 'Z')
		return false;
	for (i = 0; s[i] != '\0' && j + 1 < n; i++) {
		if (s[i] == '-' || s[i] == ':')
			continue;
		if (!(s[i] >= '0' && s[i] <= '9') && s[i] != 'T' && s[i] != 'Z')
			return false;
		out[j++] = s[i];
	}
	out[j] = '\0';
	return j == 16;
}

int cmd_report(int argc, char **argv, const struct command *self)
{
	static const struct option opts[] = {
		{"format", required_argument, NULL, 'f'},
		{"out", required_argument, NULL, 'o'},
		{"verbose", no_argument, NULL, 'v'},
		{"include-skipped", no_argument, NULL, 'K'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *formats = "html", *out = ".";
	bool include_skipped = false;
	struct kv_err err = {{0}};
	struct fastjson_arena arena = {0};
	cJSON *report = NULL, *summary = NULL;
	char stamp[32];
	int opt, verbose = 0, rc = KV_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'f': formats = optarg; break;
		case 'o': out = optarg; break;
		case 'v': verbose = 1; break;
		case 'K': include_skipped = true; break;
		case 'h': rc = cli_print_help(self); goto out;
		default: rc = cli_bad_option(self, argv, opt); goto out;
		}
	}
	if (argc - optind != 1) {
		rc = cli_usage_error(self, argc - optind == 0 ? "a report file is required"
		                                          : "exactly one report file is expected");
		goto out;
	}
	if (!cli_formats_valid(self, formats))
		goto out;
	report = cli_report_load(argv[optind], &arena, &err);
	if (report == NULL) {
		cli_error("%s", err.msg);
		goto out;
	}
	if (!include_skipped)
		summary = fold_skipped(report);
	if (!report_stamp(report, stamp, sizeof(stamp)))
		cli_scan_stamp(stamp, sizeof(stamp));
	if (!report_output(report, formats, out, stamp, verbose ? stderr : NULL, &err)) {
		cli_error("%s", err.msg);
		goto out;
	}
	rc = KV_EXIT_OK;
out:
	if (summary)
		cJSON_Delete(cJSON_DetachItemViaPointer(report, summary));
	fastjson_arena_free(&arena);
	return rc;
}
