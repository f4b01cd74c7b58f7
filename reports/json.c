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
static int put_indented(const char *text, int depth, FILE *f)
{
	const char *p = text;

	/*
	 * Copy runs without tabs in one write each; a tab becomes "  " or, after
	 * ':', " ".  A value printed on its own but placed depth levels down the
	 * document gets depth more indents after each newline (there is no raw
	 * newline in cJSON's strings either).
	 */
	while (*p) {
		size_t n = strcspn(p, "\t\n");

		if (n && fwrite(p, 1, n, f) != n)
			return EOF;
		p += n;
		if (*p == '\t') {
			if (fputs(p > text && p[-1] == ':' ? " " : "  ", f) == EOF)
				return EOF;
			p++;
		} else if (*p == '\n') {
			if (fputc('\n', f) == EOF)
				return EOF;
			for (int i = 0; i < depth; i++)
				if (fputs("  ", f) == EOF)
					return EOF;
			p++;
		}
	}
	return 0;
}

/* cJSON_Print of v written at depth; 1 when cJSON is out of memory, EOF on a write error. */
static int put_value(const cJSON *v, int depth, FILE *f)
{
	char *text = cJSON_Print(v);
	int rc;

	if (text == NULL)
		return 1;
	rc = put_indented(text, depth, f);
	free(text);
	return rc;
}

static int put_spaces(int depth, FILE *f)
{
	for (int i = 0; i < depth; i++)
		if (fputs("  ", f) == EOF)
			return EOF;
	return 0;
}

/*
 * v at depth as cJSON_Print lays it out (put_indented's two-space form),
 * but the report object, its members and the arrays in those (findings,
 * inventory.vms) are written one member or element at a time: the text of a large estate's
 * report is hundreds of MB (its inventory alone is one member), and
 * printing a container whole would hold all of its text (and cJSON's
 * doubling buffer) in memory next to the report itself.  Objects put each
 * member on its own line ("key": value), arrays keep their elements on
 * one line separated by ", ", as cJSON does.
 */
static int put_tree(const cJSON *v, int depth, FILE *f)
{
	const cJSON *it;
	int rc;

	if (!v->child || !(cJSON_IsObject(v) ? depth < 2 : cJSON_IsArray(v) && depth < 3))
		return put_value(v, depth, f);
	if (cJSON_IsArray(v)) {
		if (fputc('[', f) == EOF)
			return EOF;
		cJSON_ArrayForEach(it, v) {
			if ((rc = put_tree(it, depth + 1, f)) != 0)
				return rc;
			if (it->next && fputs(", ", f) == EOF)
				return EOF;
		}
		return fputc(']', f) == EOF ? EOF : 0;
	}
	if (fputs("{\n", f) == EOF)
		return EOF;
	cJSON_ArrayForEach(it, v) {
		cJSON *key = cJSON_CreateStringReference(it->string);
		char *k = key ? cJSON_PrintUnformatted(key) : NULL;

		cJSON_Delete(key);
		if (k == NULL)
			return 1;
		rc = put_spaces(depth + 1, f) || fputs(k, f) == EOF || fputs(": ", f) == EOF ? EOF : 0;
		free(k);
		if (rc)
			return rc;
		if ((rc = put_tree(it, depth + 1, f)) != 0)
			return rc;
		if ((it->next && fputc(',', f) == EOF) || fputc('\n', f) == EOF)
			return EOF;
	}
	return put_spaces(depth, f) || fputc('}', f) == EOF ? EOF : 0;
}

/*
 * Prints the report (pretty, two-space indents) and a newline to f, then
 * flushes and checks the stream.
 */
bool report_write_json(const cJSON *report, FILE *f, struct kv_err *err)
{
	bool ok = false;
	int rc;

	if (report == NULL) {
		kv_err_set(err, "cannot write the JSON report: there is no report");
		goto out;
	}
	errno = 0;
	rc = put_tree(report, 0, f);
	if (rc == 1) {
		kv_err_set(err, "cannot render the JSON report: out of memory");
		goto out;
	}
	if (rc == EOF || fputc('\n', f) == EOF || fflush(f) == EOF || ferror(f)) {
		kv_err_set(err, "cannot write the JSON report: %s",
		           errno != 0 ? strerror(errno) : "write error");
		goto out;
	}
	ok = true;
out:
	return ok;
}

