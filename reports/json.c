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
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
struct text {
	char *p;
	size_t n, cap;
};

struct jw {
	FILE *f;                          /* NULL: the text goes to mem (a segment: see put_split) */
	struct text *mem;
	const struct layout *l;
	const struct report_rows *rows;   /* NULL, or elements of one array made while it is written */
	bool split;                       /* large arrays formatted on two threads (put_split) */
	int rc;
	size_t n;
	char buf[16384];
};

static void text_add(struct text *t, const void *p, size_t n)
{
	if (n > t->cap - t->n) {
		t->cap = t->n + n > 2 * t->cap ? t->n + n : 2 * t->cap;
		t->p = kv_realloc(t->p, t->cap);
	}
	memcpy(t->p + t->n, p, n);
	t->n += n;
}

/* n bytes at p to the stream (or the memory text): the buffer's, or a piece larger than it. */
static void jw_out(struct jw *w, const void *p, size_t n)
{
	if (w->rc != 0)
		return;
	if (w->f == NULL)
		text_add(w->mem, p, n);
	else if (fwrite(p, 1, n, w->f) != n)
		w->rc = EOF;
}

static void jw_flush(struct jw *w)
{
	if (w->n > 0)
		jw_out(w, w->buf, w->n);
	w->n = 0;
}

static void jw_put(struct jw *w, const void *p, size_t n)
{
	if (n > sizeof(w->buf) - w->n) {
		jw_flush(w);
		if (n > sizeof(w->buf)) {
			jw_out(w, p, n);
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
 * A large array on two threads (report_write_json_rows: a 50k-VM report's
 * findings and inventory rows are ~175 MB of text, which one thread took
 * 0.4 s to format while the other core idled).  The elements are cut into
 * segments: SEG_ITEMS children each, or rows by SEG_POS positions (a
 * segment holds the rows next() gives from its first position up to its
 * last).  This thread formats the even segments straight into the stream;
 * a second thread formats the odd ones into memory, up to SEG_SLOTS ahead,
 * and this thread writes each in its turn: the text is the one thread's.
 */
#define SEG_ITEMS 64
#define SEG_POS 256
#define SEG_SLOTS 4

static int json_threads = 2;

void report_json_threads(int n)
{
	json_threads = n;
}

/* Where the elements come from: rows by position, or an array's children. */
struct seg_src {
	const struct report_rows *rows;
	const cJSON *first;
};

/* A thread's place among the children: segment seg starts at it. */
struct seg_cursor {
	const cJSON *it;
	size_t seg;
};

/*
 * Segment k's elements, each after ", " but the first unless sep; *end when
 * the array ends in it.  How many there were.
 */
static size_t put_segment(struct jw *w, const struct seg_src *src, struct seg_cursor *c, size_t k, int depth,
                          bool sep, bool *end)
{
	size_t count = 0;

	*end = false;
	if (src->rows != NULL) {
		size_t pos = k * SEG_POS, hi = pos + SEG_POS;

		while (pos < hi && w->rc == 0) {
			cJSON *row = src->rows->next(src->rows->arg, &pos);

			if (row == NULL) {
				*end = true;
				break;
			}
			if (pos <= hi) {   /* else it is the next segment's first */
				if (sep)
					jw_put(w, ", ", 2);
				put_value(w, row, depth + 1);
				sep = true;
				count++;
			}
			cJSON_Delete(row);
		}
		return count;
	}
	for (; c->seg < k; c->seg++)
		for (size_t i = 0; i < SEG_ITEMS && c->it != NULL; i++)
			c->it = c->it->next;
	for (; count < SEG_ITEMS && c->it != NULL && w->rc == 0; c->it = c->it->next) {
		if (sep)
			jw_put(w, ", ", 2);
		put_value(w, c->it, depth + 1);
		sep = true;
		count++;
	}
	c->seg = k + 1;
	*end = c->it == NULL;
	return count;
}

struct seg_slot {
	struct text text;
	size_t count;
	bool end, full;
	int rc;
};

struct split {
	const struct seg_src *src;
	const struct layout *l;
	int depth;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;                          /* the array ended: no more segments */
	struct seg_slot slot[SEG_SLOTS];    /* odd segment 2j + 1 in slot j % SEG_SLOTS */
};

static void *split_worker(void *arg)
{
	struct split *S = arg;
	struct jw *w = kv_malloc(sizeof(*w));
	struct seg_cursor c = { S->src->first, 0 };
	bool end = false;

	w->f = NULL;
	w->l = S->l;
	w->rows = NULL;
	w->split = false;
	for (size_t j = 0; !end; j++) {
		struct seg_slot *sl = &S->slot[j % SEG_SLOTS];
		size_t count;
		bool stop;

		pthread_mutex_lock(&S->mu);
		while (sl->full && !S->stop)
			pthread_cond_wait(&S->cv, &S->mu);
		stop = S->stop;
		pthread_mutex_unlock(&S->mu);
		if (stop)
			break;
		sl->text.n = 0;
		w->mem = &sl->text;
		w->rc = 0;
		w->n = 0;
		count = put_segment(w, S->src, &c, 2 * j + 1, S->depth, false, &end);
		jw_flush(w);
		pthread_mutex_lock(&S->mu);
		sl->count = count;
		sl->end = end;
		sl->rc = w->rc;
		sl->full = true;
		pthread_cond_broadcast(&S->cv);
		pthread_mutex_unlock(&S->mu);
	}
	free(w);
	return NULL;
}

/* Odd segment k, which the second thread formats, written in its turn: its count and end. */
static size_t take_segment(struct jw *w, struct split *S, size_t k, bool sep, bool *end)
{
	struct seg_slot *sl = &S->slot[(k / 2) % SEG_SLOTS];
	size_t count;

	pthread_mutex_lock(&S->mu);
	while (!sl->full)
		pthread_cond_wait(&S->cv, &S->mu);
	pthread_mutex_unlock(&S->mu);
	count = sl->count;
	*end = sl->end;
	if (count > 0) {
		if (sep)
			jw_put(w, ", ", 2);
		jw_put(w, sl->text.p, sl->text.n);
	}
	if (sl->rc != 0 && w->rc == 0)
		w->rc = sl->rc;
	pthread_mutex_lock(&S->mu);
	sl->full = false;
	pthread_cond_broadcast(&S->cv);
	pthread_mutex_unlock(&S->mu);
	return count;
}

/* The rows (first NULL) or the children from first, as put_value lays them out. False when there were none. */
static bool put_split(struct jw *w, const cJSON *first, int depth)
{
	struct seg_src src = { first == NULL ? w->rows : NULL, first };
	struct seg_cursor c = { first, 0 };
	struct split *S = kv_calloc(1, sizeof(*S));
	pthread_t worker;
	bool two, any = false, end = false;

	S->src = &src;
	S->l = w->l;
	S->depth = depth;
	pthread_mutex_init(&S->mu, NULL);
	pthread_cond_init(&S->cv, NULL);
	two = pthread_create(&worker, NULL, split_worker, S) == 0;   /* else this thread formats them all */
	w->split = false;   /* an element's own arrays are small */
	for (size_t k = 0; !end && w->rc == 0; k++)
		any |= (two && k % 2 == 1 ? take_segment(w, S, k, any, &end)
		                          : put_segment(w, &src, &c, k, depth, any, &end)) > 0;
	w->split = true;
	if (two) {
		pthread_mutex_lock(&S->mu);
		S->stop = true;
		pthread_cond_broadcast(&S->cv);
		pthread_mutex_unlock(&S->mu);
		pthread_join(worker, NULL);
	}
	for (size_t i = 0; i < SEG_SLOTS; i++)
		free(S->slot[i].text.p);
	pthread_cond_destroy(&S->cv);
	pthread_mutex_destroy(&S->mu);
	free(S);
	return any;
}

/* Whether an array starting at first has enough children to split. */
static bool many(const cJSON *first)
{
	size_t n = 0;

	for (const cJSON *it = first; it != NULL && n < 2 * SEG_ITEMS; it = it->next)
		n++;
	return n == 2 * SEG_ITEMS;
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
		if (w->rows != NULL && v == w->rows->array && (w->split ? put_split(w, NULL, depth) : put_rows(w, depth)) &&
		    v->child)
			jw_put(w, ", ", 2);
		if (w->split && many(v->child)) {
			(void)put_split(w, v->child, depth);
			jw_putc(w, ']');
			break;
		}
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

/*
 * v (and rows, or NULL) written through a buffer in layout l, depth levels
 * down, its large arrays on two threads if split: 0, 1 (unprintable) or EOF.
 */
static int put_json(FILE *f, const struct layout *l, const cJSON *v, const struct report_rows *rows, int depth,
                    bool split)
{
	struct jw *w = kv_malloc(sizeof(*w));
	int rc;

	w->f = f;
	w->mem = NULL;
	w->l = l;
	w->rows = rows;
	w->split = split && json_threads > 1 && sysconf(_SC_NPROCESSORS_ONLN) >= 2;
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
	return put_json(f, &cjson_layout, v, NULL, tabs, false);
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
	rc = put_json(f, &report_layout, report, rows, 0, true);
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
