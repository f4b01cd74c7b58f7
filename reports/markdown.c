/*
 * markdown.c - the Markdown summary (docs/report.md, "Markdown"), for
 * pull-request comments and CI step summaries ($GITHUB_STEP_SUMMARY):
 * a heading with the verdict, the counts by status and by severity, then
 * one table row a failing (fail or error) finding, at most MAX_ROWS.
 *
 * GitHub-flavoured Markdown renders inline HTML, links and emphasis, so
 * report text could otherwise inject a link or break a table: md_escape()
 * backslash-escapes Markdown's punctuation (GFM allows it before any ASCII
 * punctuation), writes < > & as entities, turns line breaks and other
 * control characters into spaces so a cell stays one row, and bidi
 * overrides into U+FFFD so text cannot disguise itself.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/util/util.h"
#include "reports/report.h"

/* GitHub truncates comments at 65536 characters; a summary need not list everything. */
#define MAX_ROWS 100

static const char *const severities[] = { "critical", "high", "medium", "low", "info" };
static const char *const statuses[] = { "fail", "error", "skipped", "suppressed", "pass" };
#define NSEV (sizeof(severities) / sizeof(severities[0]))
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))

void md_escape(struct kv_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL)
		return;
	for (; *p != '\0'; p++) {
		if (*p == '<')
			kv_buf_adds(b, "&lt;");
		else if (*p == '>')
			kv_buf_adds(b, "&gt;");
		else if (*p == '&')
			kv_buf_adds(b, "&amp;");
		else if (strchr("\\`*_[]()|~#!{}", *p) != NULL)
			kv_buf_addf(b, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			kv_buf_addc(b, ' ');
		else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			kv_buf_addc(b, ' ');                 /* a C1 control (U+0080..U+009F): a terminal may act on it */
			p += 1;
		}
		else if (p[0] == 0xe2 && ((p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) ||
		                          (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9))) {
			kv_buf_adds(b, "\xef\xbf\xbd");      /* a bidi override (U+202A..E, U+2066..9) */
			p += 2;
		}
		else
			kv_buf_addc(b, (char)*p);
	}
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jint(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valueint : 0;
}

/* What the exit code means (README, "Exit codes"). */
const char *report_exit_meaning(int code)
{
	switch (code) {
	case 0: return "no failing finding at or above the fail-on severity";
	case 1: return "failing findings at or above the fail-on severity";
	case 2: return "bad usage or bad input";
	case 3: return "scan incomplete: some facts could not be read";
	case 4: return "a fix or rollback did not fully apply";
	case 5: return "authentication failed";
	default: return "unknown exit code";
	}
}

/* Skipped findings counted per rule and reason (summary.skippedByRule), at most MAX_ROWS rows. */
static void not_evaluated(struct kv_buf *b, const cJSON *summary)
{
	const cJSON *rows = cJSON_GetObjectItemCaseSensitive(summary, "skippedByRule"), *row;
	long total;
	int nrules = report_skipped_rules(rows, &total), n = 0;

	if (nrules == 0)
		return;
	kv_buf_addf(b, "### Not evaluated: %d rule%s — why, and the flag that collects it\n\n"
	               "%ld skipped finding%s, counted here rather than listed (`--include-skipped` lists them).\n\n"
	               "| rule | severity | title | subjects | why | collected by |\n|---|---|---|---:|---|---|\n",
	            nrules, nrules == 1 ? "" : "s", total, total == 1 ? "" : "s");
	cJSON_ArrayForEach(row, rows) {
		if (n++ == MAX_ROWS) {
			kv_buf_addf(b, "\n… and %d more rows (see the JSON report's summary.skippedByRule)\n",
			            cJSON_GetArraySize(rows) - MAX_ROWS);
			break;
		}
		kv_buf_adds(b, "| ");
		report_skip_cells(b, row, md_escape, " | ");
		kv_buf_adds(b, " |\n");
	}
	kv_buf_adds(b, "\n");
}

bool report_write_markdown(const cJSON *report, FILE *f, struct kv_err *err)
{
	struct kv_buf b;
	const cJSON *scan, *summary, *by_status, *by_sev, *findings, *finding, *errors;
	const char *source;
	int exit_code, failing, rows = 0, listed = 0;
	size_t i, j;
	bool ok = false;

	kv_buf_init(&b, 0);
	if (!cJSON_IsObject(report)) {
		kv_err_set(err, "cannot write the Markdown report: the report is not a JSON object");
		goto out;
	}
	scan = cJSON_GetObjectItemCaseSensitive(report, "scan");
	summary = cJSON_GetObjectItemCaseSensitive(report, "summary");
	by_status = cJSON_GetObjectItemCaseSensitive(summary, "byStatus");
	by_sev = cJSON_GetObjectItemCaseSensitive(summary, "bySeverity");
	findings = cJSON_GetObjectItemCaseSensitive(report, "findings");
	errors = cJSON_GetObjectItemCaseSensitive(report, "errors");
	exit_code = jint(summary, "exitCode");
	failing = jint(summary, "failing");
	source = jstr(scan, "source");

	kv_buf_addf(&b, "## kvaudit: %s\n\n",
	            exit_code == 0 ? "no failing findings" : exit_code == 3 ? "scan incomplete"
	            : "failing findings");
	kv_buf_adds(&b, "Source ");
	md_escape(&b, source != NULL ? source : "unknown");
	if (jstr(scan, "generatedAt") != NULL) {
		kv_buf_adds(&b, ", generated ");
		md_escape(&b, jstr(scan, "generatedAt"));
	}
	kv_buf_adds(&b, ", fail on ");
	md_escape(&b, jstr(scan, "failOn") != NULL ? jstr(scan, "failOn") : "?");
	kv_buf_addf(&b, ". **%d** failing finding%s; %d ADE VMs, %d vaults, %d tenants. "
	            "Exit code **%d**: %s.\n\n",
	            failing, failing == 1 ? "" : "s", jint(summary, "adeVms"),
	            jint(cJSON_GetObjectItemCaseSensitive(summary, "subjects"), "vault"),
	            jint(cJSON_GetObjectItemCaseSensitive(summary, "subjects"), "tenant"),
	            exit_code, report_exit_meaning(exit_code));

	kv_buf_adds(&b, "| severity |");
	for (j = 0; j < NSTATUS; j++)
		kv_buf_addf(&b, " %s |", statuses[j]);
	kv_buf_adds(&b, "\n|---|");
	for (j = 0; j < NSTATUS; j++)
		kv_buf_adds(&b, "---:|");
	kv_buf_adds(&b, "\n");
	for (i = 0; i < NSEV; i++) {
		const cJSON *row = cJSON_GetObjectItemCaseSensitive(by_sev, severities[i]);

		kv_buf_addf(&b, "| %s |", severities[i]);
		for (j = 0; j < NSTATUS; j++)
			kv_buf_addf(&b, " %d |", jint(row, statuses[j]));
		kv_buf_adds(&b, "\n");
	}
	kv_buf_adds(&b, "| **total** |");
	for (j = 0; j < NSTATUS; j++)
		kv_buf_addf(&b, " **%d** |", jint(by_status, statuses[j]));
	kv_buf_adds(&b, "\n\n");

	not_evaluated(&b, summary);
	cJSON_ArrayForEach(finding, findings) {
		const char *st = jstr(finding, "status");

		if (st == NULL || (strcmp(st, "fail") != 0 && strcmp(st, "error") != 0))
			continue;
		listed++;
		if (rows == MAX_ROWS)
			continue;
		if (rows++ == 0)
			kv_buf_adds(&b, "### Failing findings\n\n| severity | status | rule | subject | message |\n"
			                "|---|---|---|---|---|\n");
		kv_buf_adds(&b, "| ");
		md_escape(&b, jstr(finding, "severity"));
		kv_buf_adds(&b, " | ");
		md_escape(&b, st);
		kv_buf_adds(&b, " | ");
		md_escape(&b, jstr(finding, "rule"));
		kv_buf_adds(&b, " | ");
		report_subject(&b, finding, md_escape, " → ", "");
		kv_buf_adds(&b, " | ");
		md_escape(&b, strcmp(st, "error") == 0 && jstr(finding, "reason") != NULL
		              ? jstr(finding, "reason") : jstr(finding, "message"));
		{
			struct kv_buf note;

			kv_buf_init(&note, 4096);
			if (report_azure_backup_note(&note, finding) && note.data) {
				kv_buf_adds(&b, " (");
				md_escape(&b, note.data);
				kv_buf_adds(&b, ")");
			}
			kv_buf_release(&note);
		}
		kv_buf_adds(&b, " |\n");
	}
	if (listed > rows)
		kv_buf_addf(&b, "\n… and %d more failing findings (see the full report)\n", listed - rows);
	if (rows > 0)
		kv_buf_adds(&b, "\n");
	if (cJSON_GetArraySize(errors) > 0)
		kv_buf_addf(&b, "%d resource%s could not be read (see the full report).\n\n",
		            cJSON_GetArraySize(errors), cJSON_GetArraySize(errors) == 1 ? "" : "s");

	errno = 0;
	if (fwrite(b.data, 1, b.len, f) != b.len || fflush(f) == EOF || ferror(f)) {
		kv_err_set(err, "cannot write the Markdown report: %s", errno != 0 ? strerror(errno) : "write error");
		goto out;
	}
	ok = true;
out:
	kv_buf_release(&b);
	return ok;
}
