/*
 * json.c - the JSON report writer: the kvaudit.report document itself,
 * pretty-printed, with a trailing newline.  cJSON escapes every string it
 * prints (quotes, backslashes, control characters), which is all that JSON
 * needs to carry untrusted text safely.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/util/util.h"
#include "reports/report.h"

/*
 * cJSON pretty-prints with tabs; reports read better with two-space
 * indents and "key": value.  A raw tab in cJSON's output is always
 * formatting (tabs inside strings are escaped as \t), so this is safe.
 */
static int put_indented(const char *text, FILE *f)
{
	const char *p = text;

	/* Copy runs without tabs in one write each; a tab becomes "  " or, after ':', " ". */
	while (*p) {
		size_t n = strcspn(p, "\t");

		if (n && fwrite(p, 1, n, f) != n)
			return EOF;
		p += n;
		if (*p == '\t') {
			if (fputs(p > text && p[-1] == ':' ? " " : "  ", f) == EOF)
				return EOF;
			p++;
		}
	}
	return 0;
}

/*
 * Prints the report (pretty, two-space indents) and a newline to f, then
 * flushes and checks the stream.
 */
bool report_write_json(const cJSON *report, FILE *f, struct kv_err *err)
{
	bool ok = false;
	char *text = NULL;

	if (report == NULL) {
		kv_err_set(err, "cannot write the JSON report: there is no report");
		goto out;
	}
	text = cJSON_Print(report);
	if (text == NULL) {
		kv_err_set(err, "cannot render the JSON report: out of memory");
		goto out;
	}
	errno = 0;
	if (put_indented(text, f) == EOF || fputc('\n', f) == EOF || fflush(f) == EOF || ferror(f)) {
		kv_err_set(err, "cannot write the JSON report: %s",
		           errno != 0 ? strerror(errno) : "write error");
		goto out;
	}
	ok = true;
out:
	free(text);
	return ok;
}

