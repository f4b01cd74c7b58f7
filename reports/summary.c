/*
 * summary.c - the short human summary kvaudit prints on standard error:
 *
 *   kvaudit: 48 findings on 9 ADE VMs, 7 vaults, 2 tenants: 11 fail, 30 pass, 2 error, 5 skipped
 *     severity  fail  error  skipped  pass
 *     high         3      1        0     8
 *     ...
 *     not evaluated: 2 rules, 14 findings (listed with --include-skipped) - why, and what collects it:
 *       KVA-RST-001  7  BEK secret metadata were not collected (scan with --data-plane) [--data-plane ...]
 *     HIGH      KVA-BKP-001  vm1 -> kv-prod: <message>
 *     ... and 4 more failing findings (see the report)
 *   scan incomplete: 2 findings could not be judged, 1 resource could not be read; exit code 3
 *     ERROR     403 AuthorizationFailed  <scope>
 *   exit code 3: scan incomplete, some facts could not be read
 *
 * Every string taken from the report passes through term_safe(): names and
 * messages come from Azure and from user rules, and must not drive the
 * terminal.  ANSI colours only when asked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/util/util.h"
#include "reports/report.h"

static const char *const severities[] = { "critical", "high", "medium", "low", "info" };
#define NSEV (sizeof(severities) / sizeof(severities[0]))
/* Table order: the order of the report's findings (docs/report.md). */
enum { S_FAIL, S_ERROR, S_SKIPPED, S_SUPPRESSED, S_PASS, NSTATUS };
static const char *const statuses[NSTATUS] = { "fail", "error", "skipped", "suppressed", "pass" };

#define RESET "\033[0m"
static const char *const severity_colors[] = {
	"\033[1;35m", /* critical: bold magenta */
	"\033[1;31m", /* high: bold red */
	"\033[33m",   /* medium: yellow */
	"\033[36m",   /* low: cyan */
	"\033[2m",    /* info: dim */
};

/*
 * Code points a terminal may act on: C1 controls (U+0080..U+009F; some
 * terminals take U+009B as CSI) and the bidirectional formatting marks
 * that can make text display in another order than it reads
 * (CVE-2021-42574, "Trojan Source").
 */
static bool unsafe_code_point(unsigned long cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

char *term_safe(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out, *o;

	if (s == NULL)
		return NULL;
	out = kv_malloc(strlen(s) + 1);
	o = out;
	while (*p != '\0') {
		unsigned long cp;
		size_t n;

		if (*p < 0x80) {
			*o++ = (*p < 0x20 || *p == 0x7f) ? '?' : (char)*p;
			p++;
			continue;
		}
		n = kv_utf8_decode(p, &cp);
		if (n == 0 || unsafe_code_point(cp)) {
			/* an invalid byte, or a whole unsafe sequence, becomes one '?' */
			*o++ = '?';
			p += n == 0 ? 1 : n;
			continue;
		}
		memcpy(o, p, n);
		o += n;
		p += n;
	}
	*o = '\0';
	return out;
}

/* A count from obj[key]: a non-negative number, else 0. */
static long count_of(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 1e15)
		return 0;
	return (long)v->valuedouble;
}

/* The string obj[key], or NULL. */
static const char *string_of(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The index of a severity name in severities[]; NSEV when unknown. */
static size_t severity_rank(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < NSEV; i++)
		if (kv_streq_ci(name, severities[i]))
			return i;
	return NSEV;
}

static const char *plural(long n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* Prints s made safe for the terminal; "-" for NULL or empty. */
static void put_safe(FILE *f, const char *s)
{
	char *safe;

	if (kv_empty(s)) {
		fputs("-", f);
		return;
	}
	safe = term_safe(s);
	fputs(safe, f);
	free(safe);
}

static void put_colored(FILE *f, bool color, const char *code, const char *text)
{
	if (color)
		fprintf(f, "%s%s%s", code, text, RESET);
	else
		fputs(text, f);
}

/* "  HIGH      ": the severity in capitals, padded to a fixed width, coloured. */
static void put_severity_label(FILE *f, bool color, const char *severity)
{
	static const char *const labels[NSEV] = { "CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO" };
	size_t rank = severity_rank(severity);
	const char *label = rank < NSEV ? labels[rank] : "?";

	fputs("  ", f);
	put_colored(f, color && rank < NSEV, rank < NSEV ? severity_colors[rank] : "", label);
	fprintf(f, "%*s", (int)(10 - strlen(label)), "");
}

static const struct {
	int status;
	const char *color;
} headline_order[] = {
	{ S_FAIL, "\033[31m" }, { S_PASS, "\033[32m" }, { S_ERROR, "\033[1;33m" },
	{ S_SKIPPED, "\033[2m" }, { S_SUPPRESSED, "\033[2m" },
};

static void write_headline(FILE *f, bool color, const cJSON *summary, const long *by_status)
{
	const cJSON *subjects = cJSON_GetObjectItemCaseSensitive(summary, "subjects");
	long total = 0, ade = count_of(summary, "adeVms");
	long vaults = count_of(subjects, "vault"), tenants = count_of(subjects, "tenant");
	size_t i;

	for (i = 0; i < NSTATUS; i++)
		total += by_status[i];
	fprintf(f, "kvaudit: %ld %s on %ld ADE %s, %ld %s, %ld %s: ", total,
	        plural(total, "finding", "findings"), ade, plural(ade, "VM", "VMs"), vaults,
	        plural(vaults, "vault", "vaults"), tenants, plural(tenants, "tenant", "tenants"));
	/* fail, pass, error, skipped; suppressed only when there are some */
	for (i = 0; i < sizeof(headline_order) / sizeof(headline_order[0]); i++) {
		int s = headline_order[i].status;
		char text[64];

		if (s == S_SUPPRESSED && by_status[s] == 0)
			continue;
		snprintf(text, sizeof(text), "%ld %s", by_status[s], statuses[s]);
		if (i > 0)
			fputs(", ", f);
		put_colored(f, color && by_status[s] > 0, headline_order[i].color, text);
	}
	fputc('\n', f);
}

/* The severity x status table: only rows with a finding; no suppressed column if none. */
static void write_table(FILE *f, bool color, const cJSON *summary, const long *by_status)
{
	const cJSON *by_sev = cJSON_GetObjectItemCaseSensitive(summary, "bySeverity");
	long cells[NSEV][NSTATUS];
	bool any = false;
	size_t i, j;

	for (i = 0; i < NSEV; i++) {
		const cJSON *row = cJSON_GetObjectItemCaseSensitive(by_sev, severities[i]);

		for (j = 0; j < NSTATUS; j++) {
			cells[i][j] = count_of(row, statuses[j]);
			any = any || cells[i][j] > 0;
		}
	}
	if (!any)
		return;
	fprintf(f, "  %-10s", "severity");
	for (j = 0; j < NSTATUS; j++)
		if (j != S_SUPPRESSED || by_status[S_SUPPRESSED] > 0)
			fprintf(f, "  %s", statuses[j]);
	fputc('\n', f);
	for (i = 0; i < NSEV; i++) {
		long sum = 0;

		for (j = 0; j < NSTATUS; j++)
			sum += cells[i][j];
		if (sum == 0)
			continue;
		fputs("  ", f);
		put_colored(f, color, severity_colors[i], severities[i]);
		fprintf(f, "%*s", (int)(10 - strlen(severities[i])), "");
		for (j = 0; j < NSTATUS; j++)
			if (j != S_SUPPRESSED || by_status[S_SUPPRESSED] > 0)
				fprintf(f, "  %*ld", (int)strlen(statuses[j]), cells[i][j]);
		fputc('\n', f);
	}
}

int report_skipped_rules(const cJSON *rows, long *findings)
{
	const cJSON *row;
	const char *last = NULL;
	int n = 0;

	if (findings)
		*findings = 0;
	/* The rows are sorted by rule (docs/report.md), so a rule's rows are adjacent. */
	cJSON_ArrayForEach(row, rows) {
		const char *rule = string_of(row, "rule");

		if (!last || !rule || strcmp(rule, last) != 0)
			n++;
		last = rule;
		if (findings)
			*findings += count_of(row, "count");
	}
	return n;
}

const char *report_skip_collector(const char *reason)
{
	if (!reason)
		return "-";
	/* Key bundles and secret metadata are the data plane's; the rest a live collection reads. */
	if (strstr(reason, "data-plane") || strstr(reason, "key bundle") || strstr(reason, "secret metadata"))
		return "--data-plane on 'kvaudit scan' or 'kvaudit collect'";
	if (strstr(reason, "not collected") || strstr(reason, "not in the snapshot") || strstr(reason, "no instance view"))
		return "a live 'kvaudit scan' or 'kvaudit collect'";
	return "- (see why)";
}

void report_skip_cells(struct kv_buf *b, const cJSON *row, void (*esc)(struct kv_buf *, const char *),
                       const char *sep)
{
	const char *reason = string_of(row, "reason");

	esc(b, string_of(row, "rule"));
	kv_buf_adds(b, sep);
	esc(b, string_of(row, "severity"));
	kv_buf_adds(b, sep);
	esc(b, string_of(row, "title"));
	kv_buf_adds(b, sep);
	kv_buf_addf(b, "%ld", count_of(row, "count"));
	kv_buf_adds(b, sep);
	esc(b, reason);
	kv_buf_adds(b, sep);
	esc(b, report_skip_collector(reason));
}

/* Skipped findings counted per rule and reason, not listed: at most max rows. */
static void write_not_evaluated(FILE *f, const cJSON *summary, int max)
{
	const cJSON *rows = cJSON_GetObjectItemCaseSensitive(summary, "skippedByRule"), *row;
	long total;
	int n = 0, nrules = report_skipped_rules(rows, &total);

	if (nrules == 0)
		return;
	fprintf(f, "  not evaluated: %d %s, %ld %s (listed with --include-skipped) - why, and what collects it:\n",
	        nrules, plural(nrules, "rule", "rules"), total, plural(total, "finding", "findings"));
	cJSON_ArrayForEach(row, rows) {
		if (n++ == max) {
			fprintf(f, "    ... and %d more (see the report's summary.skippedByRule)\n",
			        cJSON_GetArraySize(rows) - max);
			break;
		}
		fputs("    ", f);
		put_safe(f, string_of(row, "rule"));
		fprintf(f, "  %ld  ", count_of(row, "count"));
		put_safe(f, string_of(row, "reason"));
		fprintf(f, " [%s]\n", report_skip_collector(string_of(row, "reason")));
	}
}

struct ranked {
	const cJSON *finding;
	size_t rank, index;
};

static int ranked_cmp(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* What a finding is about: "vm -> vault", a VM, a vault, a tenant. */
static void put_subject(FILE *f, const cJSON *finding)
{
	const char *vm = string_of(finding, "vmName"), *vault = string_of(finding, "vaultName");
	const char *tenant = string_of(finding, "tenant");

	if (!kv_empty(vm) && !kv_empty(vault)) {
		put_safe(f, vm);
		fputs(" -> ", f);
		put_safe(f, vault);
	} else if (!kv_empty(vm)) {
		put_safe(f, vm);
	} else if (!kv_empty(vault)) {
		put_safe(f, vault);
	} else if (!kv_empty(tenant)) {
		fputs("tenant ", f);
		put_safe(f, tenant);
	} else {
		put_safe(f, string_of(finding, "subscription"));
	}
}

/* The max_worst worst failing findings, worst severity first, report order within one. */
static void write_worst(FILE *f, bool color, const cJSON *report, int max_worst)
{
	const cJSON *findings = cJSON_GetObjectItemCaseSensitive(report, "findings");
	const cJSON *finding;
	struct ranked *list = NULL;
	size_t n = 0, i, shown;

	if (max_worst <= 0)
		return;
	list = kv_calloc((size_t)cJSON_GetArraySize(findings) + 1, sizeof(*list));
	i = 0;
	cJSON_ArrayForEach(finding, findings) {
		const char *status = string_of(finding, "status");

		if (status != NULL && strcmp(status, "fail") == 0) {
			list[n].finding = finding;
			list[n].rank = severity_rank(string_of(finding, "severity"));
			list[n].index = i;
			n++;
		}
		i++;
	}
	qsort(list, n, sizeof(*list), ranked_cmp);
	shown = n < (size_t)max_worst ? n : (size_t)max_worst;
	for (i = 0; i < shown; i++) {
		const char *rule = string_of(list[i].finding, "rule");
		char *safe = term_safe(kv_empty(rule) ? "-" : rule);

		put_severity_label(f, color, string_of(list[i].finding, "severity"));
		fprintf(f, "%-11s  ", safe);
		free(safe);
		put_subject(f, list[i].finding);
		fputs(": ", f);
		put_safe(f, string_of(list[i].finding, "message"));
		fputc('\n', f);
	}
	if (n > shown)
		fprintf(f, "  ... and %zu more failing %s (see the report)\n", n - shown,
		        n - shown == 1 ? "finding" : "findings");
	free(list);
}

/* The "scan incomplete" line and the first max_worst read errors. */
static void write_incomplete(FILE *f, bool color, const cJSON *report, long error_findings,
                             long exit_code, int max_worst)
{
	const cJSON *errors = cJSON_GetObjectItemCaseSensitive(report, "errors");
	const cJSON *e;
	long nerrors = cJSON_IsArray(errors) ? cJSON_GetArraySize(errors) : 0;
	int shown = 0;

	put_colored(f, color, "\033[1;33m", "scan incomplete");
	fputs(":", f);
	if (error_findings > 0)
		fprintf(f, " %ld %s could not be judged", error_findings,
		        plural(error_findings, "finding", "findings"));
	if (nerrors > 0)
		fprintf(f, "%s %ld %s could not be read", error_findings > 0 ? "," : "", nerrors,
		        plural(nerrors, "resource", "resources"));
	if (error_findings == 0 && nerrors == 0)
		fputs(" the estate is marked incomplete", f);
	fprintf(f, "; exit code %ld\n", exit_code);
	cJSON_ArrayForEach(e, errors) {
		const cJSON *status = cJSON_GetObjectItemCaseSensitive(e, "status");

		if (shown++ >= max_worst) {
			fprintf(f, "  ... and %ld more (see the report)\n", nerrors - max_worst);
			break;
		}
		fputs("  ", f);
		put_colored(f, color, "\033[1;33m", "ERROR");
		fputs("     ", f);
		if (cJSON_IsNumber(status))
			fprintf(f, "%d ", status->valueint);
		if (!kv_empty(string_of(e, "code"))) {
			put_safe(f, string_of(e, "code"));
			fputs(" ", f);
		}
		fputs(" ", f);
		put_safe(f, string_of(e, "scope"));
		if (!kv_empty(string_of(e, "message"))) {
			fputs(": ", f);
			put_safe(f, string_of(e, "message"));
		}
		fputc('\n', f);
	}
}

static void write_exit_line(FILE *f, bool color, long exit_code, long failing, const char *fail_on)
{
	char *sev = term_safe(kv_empty(fail_on) ? "low" : fail_on);
	char head[32];

	snprintf(head, sizeof(head), "exit code %ld", exit_code);
	put_colored(f, color, exit_code == 0 ? "\033[32m" : exit_code == 1 ? "\033[31m" : "\033[1;33m",
	            head);
	switch (exit_code) {
	case 0:
		fprintf(f, ": no failing finding at or above %s\n", sev);
		break;
	case 1:
		fprintf(f, ": %ld failing %s at or above %s\n", failing,
		        plural(failing, "finding", "findings"), sev);
		break;
	case 3:
		fputs(": scan incomplete, some facts could not be read", f);
		if (failing > 0)
			fprintf(f, " (and %ld failing %s at or above %s)", failing,
			        plural(failing, "finding", "findings"), sev);
		fputc('\n', f);
		break;
	default:
		fputc('\n', f);
		break;
	}
	free(sev);
}

void report_write_summary(const cJSON *report, FILE *f, bool color, int max_worst)
{
	const cJSON *summary = cJSON_GetObjectItemCaseSensitive(report, "summary");
	const cJSON *by_status_obj = cJSON_GetObjectItemCaseSensitive(summary, "byStatus");
	const cJSON *scan = cJSON_GetObjectItemCaseSensitive(report, "scan");
	const cJSON *complete = cJSON_GetObjectItemCaseSensitive(scan, "complete");
	const cJSON *errors = cJSON_GetObjectItemCaseSensitive(report, "errors");
	const cJSON *exit_item = cJSON_GetObjectItemCaseSensitive(summary, "exitCode");
	long by_status[NSTATUS];
	long failing = count_of(summary, "failing"), exit_code;
	bool incomplete;
	size_t i;

	for (i = 0; i < NSTATUS; i++)
		by_status[i] = count_of(by_status_obj, statuses[i]);
	incomplete = by_status[S_ERROR] > 0 || cJSON_GetArraySize(errors) > 0 || cJSON_IsFalse(complete);
	if (cJSON_IsNumber(exit_item))
		exit_code = exit_item->valueint;
	else
		exit_code = incomplete ? 3 : failing > 0 ? 1 : 0;

	write_headline(f, color, summary, by_status);
	write_table(f, color, summary, by_status);
	write_not_evaluated(f, summary, 2 * max_worst);
	write_worst(f, color, report, max_worst);
	if (incomplete)
		write_incomplete(f, color, report, by_status[S_ERROR], exit_code, max_worst);
	write_exit_line(f, color, exit_code, failing, string_of(scan, "failOn"));
}
