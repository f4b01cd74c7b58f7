/*
 * report.h - report writers.  Each renders the kvaudit.report JSON document
 * (docs/report.md), never raw ARM JSON, so that a saved report can be
 * rendered again later.  Text from Azure is untrusted: each writer escapes
 * it its own way (CSV neutralises formula triggers; the terminal summary
 * drops control characters).
 */
#ifndef KVAUDIT_REPORT_H
#define KVAUDIT_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "audit/util/util.h"

struct report_format {
	const char *name;   /* "json", "csv", "html", "sarif", "junit", "md" */
	const char *ext;    /* file extension without dot */
	/* Writes the report to f; returns false with err set on a write error. */
	bool (*write)(const cJSON *report, FILE *f, struct kv_err *err);
};

/* The table of formats; NULL-terminated by a zero entry. */
extern const struct report_format report_formats[];
const struct report_format *report_format_find(const char *name);

bool report_write_json(const cJSON *report, FILE *f, struct kv_err *err);
/* One row a listed finding, RFC 4180, header row, formula-injection safe. */
bool report_write_csv(const cJSON *report, FILE *f, struct kv_err *err);

/*
 * Self-contained HTML page (inline CSS, inline SVG chart, no script, no
 * external resource): summary cards, severity x status chart, per-vault
 * permission matrix, findings by vault and by VM with their remediation.
 */
bool report_write_html(const cJSON *report, FILE *f, struct kv_err *err);
/* SARIF 2.1.0: one run, rules[] and the fail, error and suppressed findings as results. */
bool report_write_sarif(const cJSON *report, FILE *f, struct kv_err *err);
/* JUnit XML: one testsuite a rule, one testcase a listed finding. */
bool report_write_junit(const cJSON *report, FILE *f, struct kv_err *err);
/* Markdown summary for pull-request comments and CI step summaries. */
bool report_write_markdown(const cJSON *report, FILE *f, struct kv_err *err);

/*
 * XML 1.0 and HTML escaping for text and quoted attribute values (exposed
 * for tests): & < > " ' become references, as do tab, LF and CR; other C0
 * controls, DEL, C1 controls, U+FFFE and U+FFFF are dropped; each invalid
 * UTF-8 byte and each bidi override becomes U+FFFD.  NULL appends nothing.
 */
void xml_escape(struct kv_buf *b, const char *s);
/*
 * Markdown (GFM) escaping for one table cell or line: < > & as entities,
 * \ ` * _ [ ] ( ) | ~ # ! { } backslash-escaped, control characters
 * (line breaks included) as spaces, bidi overrides as U+FFFD.  NULL
 * appends nothing.
 */
void md_escape(struct kv_buf *b, const char *s);
/*
 * summary.skippedByRule (docs/report.md): the number of distinct rules its
 * rows name (and into *findings, when not NULL, the sum of their counts),
 * and what collects the fact a row's reason says is missing
 * ("--data-plane on 'kvaudit scan' or 'kvaudit collect'" for key bundles
 * and secret metadata, a live collection for what a snapshot lacks, else
 * "- (see why)"), for the "Not evaluated" tables.
 */
int report_skipped_rules(const cJSON *rows, long *findings);
/* One row's cells, each through esc, sep between them: rule, severity, title, subjects, why, collected by. */
void report_skip_cells(struct kv_buf *b, const cJSON *row, void (*esc)(struct kv_buf *, const char *),
                       const char *sep);
const char *report_skip_collector(const char *reason);
/* What a kvaudit exit code means, for reports ("failing findings at or above ..."). */
const char *report_exit_meaning(int code);

/*
 * The short human summary for stderr: counts by severity and status, the
 * worst failing findings (at most max_worst), errors.  color: ANSI colours.
 */
void report_write_summary(const cJSON *report, FILE *f, bool color, int max_worst);

/*
 * A finding's subject for a label: "vm<sep>vault" for a binding, else the VM,
 * the vault or "tenant <id>" (names when known, else IDs), each piece through
 * esc; unknown (added as is) when the finding names nothing.
 */
void report_subject(struct kv_buf *b, const cJSON *f, void (*esc)(struct kv_buf *, const char *), const char *sep,
                    const char *unknown);

/*
 * What Azure Backup's own jobs say of a key vault permission finding (its
 * "azureBackup" member, docs/report.md), as one plain-text line into b:
 * "confirmed by Azure Backup: job … failed at … with …" and the like.
 * False, adding nothing, when the finding has no such member or it says
 * nothing ("unknown", "unprotected").
 */
bool report_azure_backup_note(struct kv_buf *b, const cJSON *f);

/* CSV cell escaping (exposed for tests): quotes when needed, neutralises = + - @ \t \r leaders. */
void csv_cell(struct kv_buf *b, const char *s);
/*
 * Terminal-safe copy: C0 controls (ESC included) and DEL become '?'; valid
 * UTF-8 is kept except C1 controls and bidi overrides, which become '?', as
 * does each byte of invalid UTF-8.  Returns a new string; NULL in, NULL out.
 */
char *term_safe(const char *s);

/*
 * The text of cJSON_Print(v) with tabs more tabs after each newline (v as
 * it prints tabs + 1 levels down a formatted document: an element of an
 * array that is a member tabs deep), written straight to f without
 * building it in memory, for writers that print a large document piece by
 * piece (sarif.c, inventory.c).  0, 1 for an item cJSON cannot print, EOF
 * on a write error (json.c).
 */
int report_put_json(FILE *f, const cJSON *v, int tabs);

/* Inventory ("inventory" member of a report) as a table, CSV or JSON. */
bool inventory_write_table(const cJSON *inventory, FILE *f, struct kv_err *err);
bool inventory_write_csv(const cJSON *inventory, FILE *f, struct kv_err *err);
bool inventory_write_json(const cJSON *inventory, FILE *f, struct kv_err *err);

/*
 * Writes the report in each of formats (comma-separated names) to out:
 * "-" is standard output (one format only), an existing directory or a path
 * ending in '/' receives kvaudit-<UTC timestamp>.<ext> per format (created
 * if missing), anything else is a file name (one format only).  stamp is
 * the scan time "20261128T120000Z" (NULL: now).  out NULL or "" means the
 * current directory.  Format names are case-insensitive; repeats are
 * ignored.  Writes via a temporary file renamed into place, checks fclose.
 * Prints each written path to info (may be NULL).
 */
bool report_output(const cJSON *report, const char *formats, const char *out,
                   const char *stamp, FILE *info, struct kv_err *err);

/*
 * Elements of one array of a report that its tree leaves out and its JSON
 * text has: a large estate's inventory.vms (audit_opts.inventory_rows_later),
 * made one at a time while the JSON is written and freed after each, so
 * they are never all in memory.  next returns the element at or after *pos
 * and moves *pos past it, NULL at the end (the caller deletes it); each
 * write starts again at 0.  Only the JSON writer reads them: the other
 * formats do not show inventory.vms.
 */
struct report_rows {
	const cJSON *array;         /* the report's empty array they belong in */
	cJSON *(*next)(void *arg, size_t *pos);
	void *arg;
};

/* report_write_json with rows (NULL: none) put in their array. */
bool report_write_json_rows(const cJSON *report, const struct report_rows *rows, FILE *f, struct kv_err *err);
/*
 * How many threads report_write_json_rows may use: 2 (the default, on a
 * machine with two cores or more) formats a large array's elements on a
 * second thread beside the first; 1 keeps it to the caller's.  The text is
 * the same (tests compare the two).
 */
void report_json_threads(int n);
/* report_output with rows (NULL: none) for the JSON format. */
bool report_output_rows(const cJSON *report, const struct report_rows *rows, const char *formats, const char *out,
                        const char *stamp, FILE *info, struct kv_err *err);

#endif
