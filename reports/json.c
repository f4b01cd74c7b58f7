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
 * Prints the report (pretty, tabs as cJSON indents) and a newline to f,
 * then flushes and checks the stream.
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
	if (fputs(text, f) == EOF || fputc('\n', f) == EOF || fflush(f) == EOF || ferror(f)) {
		kv_err_set(err, "cannot write the JSON report: %s",
		           errno != 0 ? strerror(errno) : "write error");
		goto out;
	}
	ok = true;
out:
	free(text);
	return ok;
}

