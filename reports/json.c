/*
 * json.c - the JSON report writer: the kvaudit.report document itself,
 * pretty-printed, with a trailing newline, and report_put_json(), the same
 * printer in cJSON's own tab layout for the SARIF and inventory writers.
 *
 * The text is exactly what cJSON_Print gives (with two-space indents and
 * "key": value for the report), but written straight to the stream: a large
 * estate's report is hundreds of MB, and cJSON_Print of each value costs a
 * doubling buffer, a copy and, for strings, a byte-at-a-time escaper.
 * Strings are escaped as cJSON escapes them (quotes, backslashes, control
 * characters), which is all that JSON needs to carry untrusted text safely.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/util/util.h"
#include "reports/report.h"

/* How a document is laid out: cJSON's tabs and "key":<tab>value, or two spaces and "key": value. */
struct layout {
	char indent;            /* one level is one tab or two spaces */
	size_t indent_len;
	const char *colon;      /* between a key and its value */
};

static const struct layout report_layout = { ' ', 2, ": " };
static const struct layout cjson_layout = { '\t', 1, ":\t" };

/*
 * The text goes through this buffer, not a stdio call per piece: a report
 * is millions of short pieces (keys, punctuation, indents), and each fwrite
 * or putc costs a lock and a copy loop of its own.  rc is sticky: the first
 * write error (EOF) or unprintable item (1); once set, nothing more is written.
 */
struct jw {
	FILE *f;
	const struct layout *l;
	const struct report_rows *rows;   /* NULL, or elements of one array made while it is written */
	int rc;
	size_t n;
	char buf[16384];
};

static void jw_flush(struct jw *w)
{
	if (w->n > 0 && w->rc == 0 && fwrite(w->buf, 1, w->n, w->f) != w->n)
		w->rc = EOF;
	w->n = 0;
}

static void jw_put(struct jw *w, const void *p, size_t n)
{
	if (n > sizeof(w->buf) - w->n) {
		jw_flush(w);
		if (n > sizeof(w->buf)) {
			if (w->rc == 0 && fwrite(p, 1, n, w->f) != n)
				w->rc = EOF;
			return;
		}
	}
	memcpy(w->buf + w->n, p, n);
	w->n += n;
}

static void jw_putc(struct jw *w, char c)
{
	if (w->n == sizeof(w->buf))
		jw_flush(w);
	w->buf[w->n++] = c;
}

static void jw_puts(struct jw *w, const char *s)
{
	jw_put(w, s, strlen(s));
}

/*
 * Bytes a JSON string carries as they are (cJSON's print_string_ptr):
 * everything but '"', '\\' and the C0 controls; UTF-8 and DEL pass.
 */
static bool plain(unsigned char c)
{
	return c >= 0x20 && c != '"' && c != '\\';
}

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/*
 * How many of the n bytes at p are plain: eight at a time while no byte of
 * the word is below 0x20 or equals '"' or '\\' (the "has a byte less than"
 * and "has a zero byte" word tests, exact for any such byte), then bytewise.
 */
static size_t plain_run(const unsigned char *p, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t x, q, b;

		memcpy(&x, p + i, sizeof(x));
		q = x ^ (ONES * '"');
		b = x ^ (ONES * '\\');
		if ((((x - ONES * 0x20) & ~x) | ((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS)
			break;
	}
	while (i < n && plain(p[i]))
		i++;
	return i;
}

/*
 * s as a quoted JSON string, byte for byte as cJSON prints it: runs of
 * plain bytes copied whole, \" \\ \b \f \n \r \t, other controls as \u00xx
 * (lower-case hex).  NULL prints "" as cJSON does.
 */
static void put_string(struct jw *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	const unsigned char *end = p + strlen((const char *)p);

	jw_putc(w, '"');
	for (;;) {
		size_t run = plain_run(p, (size_t)(end - p));
		char esc[6] = { '\\', 'u', '0', '0' };

		jw_put(w, p, run);
		p += run;
		if (p == end)
			break;
		switch (*p) {
		case '"': jw_put(w, "\\\"", 2); break;
		case '\\': jw_put(w, "\\\\", 2); break;
		case '\b': jw_put(w, "\\b", 2); break;
		case '\f': jw_put(w, "\\f", 2); break;
		case '\n': jw_put(w, "\\n", 2); break;
		case '\r': jw_put(w, "\\r", 2); break;
		case '\t': jw_put(w, "\\t", 2); break;
		default:
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 0xF];
			jw_put(w, esc, sizeof(esc));
			break;
		}
		p++;
	}
	jw_putc(w, '"');
}

/* depth levels of indent. */
static void put_indent(struct jw *w, int depth)
{
	static const char tabs[] = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t";
	static const char spaces[] = "                                ";
	const char *run = w->l->indent == '\t' ? tabs : spaces;
	size_t left = (size_t)(depth > 0 ? depth : 0) * w->l->indent_len;

	while (left > 0) {
		size_t n = left < sizeof(tabs) - 1 ? left : sizeof(tabs) - 1;

		jw_put(w, run, n);
		left -= n;
	}
}

/*
 * A number as cJSON prints it (integers with %d, else the shortest of
 * %1.15g and %1.17g that reads back, NaN and infinities as null), printed
 * by cJSON itself into a stack buffer so that the text cannot drift from
 * cJSON_Print's.  It wants a non-const item but only reads it.
 */
static void put_number(struct jw *w, const cJSON *v)
{
	char buf[64];
	cJSON *item;

	memcpy(&item, &v, sizeof(item));
	if (!cJSON_PrintPreallocated(item, buf, (int)sizeof(buf), 0)) {
		w->rc = w->rc != 0 ? w->rc : 1;
		return;
	}
	jw_puts(w, buf);
}

static void put_value(struct jw *w, const cJSON *v, int depth);

/*
 * The elements of w->rows, made, printed and deleted one at a time, laid
 * out as put_value lays out an array's children.  False when there were none.
 */
static bool put_rows(struct jw *w, int depth)
{
	size_t pos = 0;
	cJSON *row = w->rows->next(w->rows->arg, &pos);
	bool any = row != NULL;

	while (row != NULL && w->rc == 0) {
		cJSON *next = w->rows->next(w->rows->arg, &pos);

		put_value(w, row, depth + 1);
		if (next)
			jw_put(w, ", ", 2);
		cJSON_Delete(row);
		row = next;
	}
	cJSON_Delete(row);
	return any;
}

/*
 * v as cJSON_Print lays it out depth levels down (cJSON's print_value):
 * an object opens a line per member ("{\n", members at depth + 1, the '}'
 * at depth, "{\n}" when empty); an array keeps its elements on one line
 * separated by ", ", one level deeper.  An item cJSON cannot print (an
 * invalid one, a raw one without text) sets w->rc to 1.
 */
static void put_value(struct jw *w, const cJSON *v, int depth)
{
	const cJSON *it;

	switch (v->type & 0xFF) {
	case cJSON_NULL:
		jw_put(w, "null", 4);
		break;
	case cJSON_False:
		jw_put(w, "false", 5);
		break;
	case cJSON_True:
		jw_put(w, "true", 4);
		break;
	case cJSON_Number:
		put_number(w, v);
		break;
	case cJSON_String:
		put_string(w, v->valuestring);
		break;
	case cJSON_Raw:
		if (v->valuestring != NULL)
			jw_puts(w, v->valuestring);
		else if (w->rc == 0)
			w->rc = 1;
		break;
	case cJSON_Array:
		jw_putc(w, '[');
		if (w->rows != NULL && v == w->rows->array && put_rows(w, depth) && v->child)
			jw_put(w, ", ", 2);
		for (it = v->child; it != NULL && w->rc == 0; it = it->next) {
			put_value(w, it, depth + 1);
			if (it->next)
				jw_put(w, ", ", 2);
		}
		jw_putc(w, ']');
		break;
	case cJSON_Object:
		jw_put(w, "{\n", 2);
		for (it = v->child; it != NULL && w->rc == 0; it = it->next) {
			put_indent(w, depth + 1);
			put_string(w, it->string);
			jw_puts(w, w->l->colon);
			put_value(w, it, depth + 1);
			if (it->next)
				jw_putc(w, ',');
			jw_putc(w, '\n');
		}
		put_indent(w, depth);
		jw_putc(w, '}');
		break;
	default:
		if (w->rc == 0)
			w->rc = 1;
		break;
	}
}

/* v (and rows, or NULL) written through a buffer in layout l, depth levels down: 0, 1 (unprintable) or EOF. */
static int put_json(FILE *f, const struct layout *l, const cJSON *v, const struct report_rows *rows, int depth)
{
	struct jw *w = kv_malloc(sizeof(*w));
	int rc;

	w->f = f;
	w->l = l;
	w->rows = rows;
	w->rc = 0;
	w->n = 0;
	put_value(w, v, depth);
	jw_flush(w);
	rc = w->rc;
	free(w);
	return rc;
}

int report_put_json(FILE *f, const cJSON *v, int tabs)
{
	return put_json(f, &cjson_layout, v, NULL, tabs);
}

/*
 * Prints the report (pretty, two-space indents) and a newline to f, then
 * flushes and checks the stream.
 */
bool report_write_json(const cJSON *report, FILE *f, struct kv_err *err)
{
	return report_write_json_rows(report, NULL, f, err);
}

bool report_write_json_rows(const cJSON *report, const struct report_rows *rows, FILE *f, struct kv_err *err)
{
	bool ok = false;
	int rc;

	if (report == NULL) {
		kv_err_set(err, "cannot write the JSON report: there is no report");
		goto out;
	}
	errno = 0;
	rc = put_json(f, &report_layout, report, rows, 0);
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
