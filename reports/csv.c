/*
 * csv.c - the CSV report writer (docs/report.md, "CSV"): one row a listed
 * finding, RFC 4180 (CRLF line ends; a field holding '"', ',', CR or LF is
 * quoted and its quotes doubled), with a header row.
 *
 * Text in a finding comes from Azure (resource names, error messages) and
 * from user rules, so a cell may try to start a spreadsheet formula
 * (OWASP "CSV injection"): a cell whose first character is = + - @ TAB or
 * CR gets a leading apostrophe, which spreadsheets show as text.  Only the
 * first character matters: " =1+1" is text to Excel, LibreOffice and
 * Google Sheets.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/util/util.h"
#include "reports/report.h"

/* Column header and the report member it shows; "a.b" reads a nested member. */
static const struct csv_column {
	const char *header;
	const char *member;
} columns[] = {
	{ "rule", "rule" },
	{ "severity", "severity" },
	{ "status", "status" },
	{ "subject", "subject" },
	{ "vm_name", "vmName" },
	{ "vault_name", "vaultName" },
	{ "vm", "vm" },
	{ "vault", "vault" },
	{ "subscription", "subscription" },
	{ "tenant", "tenant" },
	{ "message", "message" },
	{ "reason", "reason" },
	{ "remediation", "remediation.text" },
	{ "fix", "remediation.fix" },
};

void csv_cell(struct kv_buf *b, const char *s)
{
	bool quote;

	if (s == NULL || *s == '\0')
		return;
	quote = strpbrk(s, "\",\r\n") != NULL;
	if (quote)
		kv_buf_addc(b, '"');
	if (strchr("=+-@\t\r", *s) != NULL)
		kv_buf_addc(b, '\'');
	for (; *s != '\0'; s++) {
		if (*s == '"')
			kv_buf_addc(b, '"');
		kv_buf_addc(b, *s);
	}
	if (quote)
		kv_buf_addc(b, '"');
}

/*
 * Appends the cell for a JSON value: a string as itself, null or absent as
 * an empty cell, a number or boolean as JSON prints it (so a report built
 * by a later version still renders).  Arrays and objects are printed as
 * compact JSON.
 */
static void json_cell(struct kv_buf *b, const cJSON *v)
{
	char *text;

	if (v == NULL || cJSON_IsNull(v))
		return;
	if (cJSON_IsString(v)) {
		csv_cell(b, v->valuestring);
		return;
	}
	text = cJSON_PrintUnformatted(v);
	csv_cell(b, text);
	cJSON_free(text);
}

/* The member of finding a column names, following one "a.b" step. */
static const cJSON *column_value(const cJSON *finding, const char *member)
{
	const char *dot = strchr(member, '.');
	char parent[32];
	const cJSON *p;

	if (dot == NULL)
		return cJSON_GetObjectItemCaseSensitive(finding, member);
	if ((size_t)(dot - member) >= sizeof(parent))
		return NULL;
	memcpy(parent, member, (size_t)(dot - member));
	parent[dot - member] = '\0';
	p = cJSON_GetObjectItemCaseSensitive(finding, parent);
	return cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, dot + 1) : NULL;
}

/* Writes b to f and empties it; false on a short write. */
static bool flush_row(struct kv_buf *b, FILE *f)
{
	bool ok = b->len == 0 || fwrite(b->data, 1, b->len, f) == b->len;

	kv_buf_release(b);
	kv_buf_init(b, 0);
	return ok;
}

bool report_write_csv(const cJSON *report, FILE *f, struct kv_err *err)
{
	struct kv_buf row;
	const cJSON *findings, *finding;
	size_t i;
	bool ok = false;

	kv_buf_init(&row, 0);
	errno = 0;
	if (!cJSON_IsObject(report)) {
		kv_err_set(err, "cannot write the CSV report: the report is not a JSON object");
		goto out;
	}
	for (i = 0; i < sizeof(columns) / sizeof(columns[0]); i++) {
		if (i > 0)
			kv_buf_addc(&row, ',');
		csv_cell(&row, columns[i].header);
	}
	kv_buf_adds(&row, "\r\n");
	if (!flush_row(&row, f))
		goto write_error;

	findings = cJSON_GetObjectItemCaseSensitive(report, "findings");
	cJSON_ArrayForEach(finding, findings) {
		for (i = 0; i < sizeof(columns) / sizeof(columns[0]); i++) {
			if (i > 0)
				kv_buf_addc(&row, ',');
			json_cell(&row, column_value(finding, columns[i].member));
		}
		kv_buf_adds(&row, "\r\n");
		if (!flush_row(&row, f))
			goto write_error;
	}
	if (fflush(f) == EOF || ferror(f))
		goto write_error;
	ok = true;
	goto out;
write_error:
	kv_err_set(err, "cannot write the CSV report: %s", errno != 0 ? strerror(errno) : "write error");
out:
	kv_buf_release(&row);
	return ok;
}
