/*
 * fastjson.c - see fastjson.h.  The shape of each function follows cJSON's
 * parser (parse_value, parse_string, parse_number; parse_array and
 * parse_object in parse_items) so that every accept and reject matches.
 * The speed comes from what cJSON does per byte or per node: the end of a
 * string without escapes is found sixteen bytes at a time (fastjson_stop)
 * and it is copied with memcpy, short integers skip strtod, and nodes and
 * strings are bumped from an arena instead of malloc'd one by one.
 */
/* madvise(MADV_HUGEPAGE) and MAP_ANONYMOUS for the arena's blocks. */
#define _DEFAULT_SOURCE
#include <limits.h>
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "audit/util/fastjson.h"
#include "audit/util/util.h"

struct parser {
	const unsigned char *s;
	size_t len, i;
	size_t depth;
	struct fastjson_arena *a;
	char decimal_point;   /* strtod's, as cJSON's get_decimal_point */
};

/* The bytes cJSON's parse_number copies for strtod. */
static const bool NUMCHAR[256] = {
	['0'] = true, ['1'] = true, ['2'] = true, ['3'] = true, ['4'] = true, ['5'] = true,
	['6'] = true, ['7'] = true, ['8'] = true, ['9'] = true,
	['+'] = true, ['-'] = true, ['e'] = true, ['E'] = true, ['.'] = true,
};

struct fastjson_block {
	struct fastjson_block *next;
	size_t cap;
	size_t mapped;   /* the length mmap gave it (munmap), or 0: malloc'd */
	char data[];
};

/*
 * An arena's first block is 1 MB from malloc: most arenas (a page of a
 * live list, a small report) never need more.  The next ones are 2 MB
 * mappings aligned to 2 MB and advised for transparent huge pages: an arena
 * that grows (the findings of a 50k audit, ~200 MB) would otherwise take a
 * page fault per 4 KB, and on a virtual machine each costs ~15 us.  Where
 * huge pages are off, or mmap fails, the blocks are as before.
 */
#define BLOCK_BYTES ((size_t)1 << 20)
#define HUGE_BYTES ((size_t)2 << 20)
#define HUGE_CAP (HUGE_BYTES - sizeof(struct fastjson_block))

/* A 2 MB-aligned mapping of len bytes (a multiple of HUGE_BYTES), or NULL. */
static void *map_huge(size_t len)
{
	size_t over = len + HUGE_BYTES;
	char *m, *p;

	/* An anonymous mapping takes fd -1 (mmap(2)), which cppcheck's library does not know. */
	/* cppcheck-suppress invalidFunctionArg */
	m = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	p = (char *)(((uintptr_t)m + HUGE_BYTES - 1) & ~(uintptr_t)(HUGE_BYTES - 1));
	if (p > m)
		(void)munmap(m, (size_t)(p - m));
	if (m + over > p + len)
		(void)munmap(p + len, (size_t)(m + over - (p + len)));
	/* Before the first touch, or the pages are 4 KB already; a kernel without THP says EINVAL. */
	(void)madvise(p, len, MADV_HUGEPAGE);
	return p;
}

/* A block with room for n bytes: the arena's first of 1 MB, later ones huge-page backed. */
static struct fastjson_block *new_block(const struct fastjson_arena *a, size_t n)
{
	struct fastjson_block *b;
	size_t len;

	if (!a->blocks && n <= BLOCK_BYTES) {
		b = kv_malloc(sizeof(*b) + BLOCK_BYTES);
		b->cap = BLOCK_BYTES;
		b->mapped = 0;
		return b;
	}
	len = (sizeof(*b) + n + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1);
	b = map_huge(len);
	if (b) {
		b->cap = len - sizeof(*b);
		b->mapped = len;
	} else {
		b = kv_malloc(sizeof(*b) + (n > BLOCK_BYTES ? n : BLOCK_BYTES));
		b->cap = n > BLOCK_BYTES ? n : BLOCK_BYTES;
		b->mapped = 0;
	}
	return b;
}

static void block_free(struct fastjson_block *b)
{
	if (b->mapped)
		(void)munmap(b, b->mapped);
	else
		free(b);
}

/* A block of a standard size, which a reset may keep as a spare. */
static bool block_standard(const struct fastjson_block *b)
{
	return b->cap == BLOCK_BYTES || b->cap == HUGE_CAP;
}

/* take's slow path: a spare block, or a new one, for n bytes (8-aligned). */
__attribute__((noinline)) static void *take_block(struct fastjson_arena *a, size_t n)
{
	struct fastjson_block *b = a->spare;

	if (b && b->cap >= n)
		a->spare = b->next;
	else
		b = new_block(a, n);
	b->next = a->blocks;
	a->blocks = b;
	a->cur = b->data + n;
	a->end = b->data + b->cap;
	return b->data;
}

/* n bytes (rounded up to 8) from the arena: a node or a string for every value parsed. */
static inline void *take(struct parser *P, size_t n)
{
	struct fastjson_arena *a = P->a;
	char *p = a->cur;

	n = (n + 7) & ~(size_t)7;
	if ((size_t)(a->end - p) < n)
		return take_block(a, n);
	a->cur = p + n;
	return p;
}

static void shared_end(struct fastjson_arena *a);

void *fastjson_alloc(struct fastjson_arena *a, size_t n)
{
	struct parser P = {.a = a};

	return take(&P, n);
}

void fastjson_arena_reset(struct fastjson_arena *a)
{
	struct fastjson_block *b = a->blocks;
	size_t nspare = 0;

	shared_end(a);   /* its strings are gone */
	if (!b)
		return;
	for (struct fastjson_block *s = a->spare; s; s = s->next)
		nspare++;
	while (b->next) {
		struct fastjson_block *next = b->next->next;

		if (block_standard(b->next) && nspare < FASTJSON_SPARE_BLOCKS) {
			b->next->next = a->spare;
			a->spare = b->next;
			nspare++;
		} else {
			block_free(b->next);
		}
		b->next = next;
	}
	a->cur = b->data;
	a->end = b->data + b->cap;
}

static void free_blocks(struct fastjson_block *b)
{
	while (b) {
		struct fastjson_block *next = b->next;

		block_free(b);
		b = next;
	}
}

void fastjson_arena_free(struct fastjson_arena *a)
{
	shared_end(a);
	free_blocks(a->blocks);
	free_blocks(a->spare);
	a->blocks = a->spare = NULL;
	a->cur = a->end = NULL;
}

/*
 * A direct-mapped cache of recent short strings, by a hash of their bytes:
 * a hit returns the copy already in the arena.  A miss (or a collision)
 * only costs a copy, as without it; 8192 slots hold the keys and enum
 * values of any snapshot list many times over.
 */
#define SHARED_SLOTS 8192

struct fastjson_shared {
	struct {
		const char *s;
		size_t len;
	} slot[SHARED_SLOTS];
};

static void shared_end(struct fastjson_arena *a)
{
	free(a->shared);
	a->shared = NULL;
}

void fastjson_arena_share_strings(struct fastjson_arena *a, bool on)
{
	if (!on)
		shared_end(a);
	else if (!a->shared)
		a->shared = kv_calloc(1, sizeof(*a->shared));
}

/* from[0, n) as an arena string: the cached copy when one is there. */
static char *shared_copy(struct parser *P, const char *from, size_t n)
{
	struct fastjson_shared *sh = P->a->shared;
	uint32_t h = 2166136261u;
	char *out;
	size_t k;

	for (size_t j = 0; j < n; j++)
		h = (h ^ (unsigned char)from[j]) * 16777619u;
	k = (h ^ (h >> 13)) & (SHARED_SLOTS - 1);
	if (sh->slot[k].s && sh->slot[k].len == n && memcmp(sh->slot[k].s, from, n) == 0)
		return (char *)(uintptr_t)sh->slot[k].s;
	out = take(P, n + 1);
	memcpy(out, from, n);
	out[n] = '\0';
	sh->slot[k].s = out;
	sh->slot[k].len = n;
	return out;
}

static cJSON *new_node(struct parser *P)
{
	cJSON *n = take(P, sizeof(*n));

	memset(n, 0, sizeof(*n));
	return n;
}

/* cJSON's buffer_skip_whitespace: every byte up to 32 (NUL and controls too) is skipped. */
static void skip_ws(struct parser *P)
{
	while (P->i < P->len && P->s[P->i] <= 32)
		P->i++;
}

static bool parse_value(struct parser *P, cJSON *item);

/* cJSON's parse_hex4: a non-hex digit makes the whole value 0. */
static unsigned hex4(const unsigned char *p)
{
	unsigned h = 0;

	for (int k = 0; k < 4; k++) {
		unsigned c = p[k];

		if (c >= '0' && c <= '9')
			h = (h << 4) | (c - '0');
		else if (c >= 'A' && c <= 'F')
			h = (h << 4) | (c - 'A' + 10);
		else if (c >= 'a' && c <= 'f')
			h = (h << 4) | (c - 'a' + 10);
		else
			return 0;
	}
	return h;
}

/* cJSON's utf16_literal_to_utf8: \uXXXX (or a surrogate pair) at in, before end; bytes read, 0 on error. */
static size_t utf16_to_utf8(const unsigned char *in, const unsigned char *end, unsigned char **out)
{
	unsigned long cp;
	unsigned first, n, mark = 0;
	size_t seq = 6;

	if (end - in < 6)
		return 0;
	first = hex4(in + 2);
	if (first >= 0xDC00 && first <= 0xDFFF)
		return 0;
	cp = first;
	if (first >= 0xD800 && first <= 0xDBFF) {
		const unsigned char *second = in + 6;
		unsigned low;

		if (end - second < 6 || second[0] != '\\' || second[1] != 'u')
			return 0;
		low = hex4(second + 2);
		if (low < 0xDC00 || low > 0xDFFF)
			return 0;
		cp = 0x10000 + (((first & 0x3FF) << 10) | (low & 0x3FF));
		seq = 12;
	}
	if (cp < 0x80)
		n = 1;
	else if (cp < 0x800)
		n = 2, mark = 0xC0;
	else if (cp < 0x10000)
		n = 3, mark = 0xE0;
	else
		n = 4, mark = 0xF0;   /* a pair is at most 0x10FFFF */
	for (unsigned k = n - 1; k > 0; k--) {
		(*out)[k] = (unsigned char)((cp | 0x80) & 0xBF);
		cp >>= 6;
	}
	(*out)[0] = (unsigned char)(n > 1 ? (cp | mark) & 0xFF : cp & 0x7F);
	*out += n;
	return seq;
}

/* A string with escapes: cJSON's two passes (find the end skipping \x pairs, then decode). */
static char *parse_escaped(struct parser *P)
{
	const unsigned char *s = P->s, *in, *end;
	unsigned char *out, *o;
	size_t i = P->i + 1, skipped = 0;

	while (i < P->len && s[i] != '"') {
		if (s[i] == '\\') {
			if (i + 1 >= P->len)
				return NULL;
			skipped++;
			i++;
		}
		i++;
	}
	if (i >= P->len)
		return NULL;
	end = s + i;
	in = s + P->i + 1;
	o = out = take(P, (size_t)(end - in) - skipped + 1);
	while (in < end) {
		size_t n = 2;

		if (*in != '\\') {
			*o++ = *in++;
			continue;
		}
		switch (in[1]) {
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case '"':
		case '\\':
		case '/': *o++ = in[1]; break;
		case 'u':
			if (!(n = utf16_to_utf8(in, end, &o)))
				return NULL;
			break;
		default:
			return NULL;
		}
		in += n;
	}
	*o = '\0';
	P->i = i + 1;
	return (char *)out;
}

/* Bytes of a string parse_string's fast path reads (and copies) at most. */
#define STRING_STEPS 32

/* The string whose quote is at P->i, decoded into the arena; NULL as cJSON's parse_string fails. */
static char *parse_string(struct parser *P)
{
	const char *from = (const char *)P->s + P->i + 1, *q;
	size_t n;
	char *out;

	if (P->i >= P->len || P->s[P->i] != '"')
		return NULL;
#if defined(__SSE2__)
	/*
	 * Most strings are short (keys above all): find the end and copy in the
	 * same sixteen-byte steps, into the arena's free space past what the
	 * string takes, when the text and the block have room for whole steps.
	 */
	if (!P->a->shared && (const char *)P->s + P->len - from >= STRING_STEPS &&
	    P->a->end - P->a->cur >= STRING_STEPS) {
		const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');

		out = P->a->cur;
		for (n = 0; n < STRING_STEPS; n += 16) {
			__m128i w = _mm_loadu_si128((const __m128i *)(const void *)(from + n));
			int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(w, quote), _mm_cmpeq_epi8(w, bslash)));

			_mm_storeu_si128((__m128i *)(void *)(out + n), w);
			if (m) {
				n += (size_t)__builtin_ctz((unsigned)m);
				if (from[n] == '\\')
					return parse_escaped(P);
				out[n] = '\0';
				P->a->cur += (n + 8) & ~(size_t)7;   /* take(P, n + 1) */
				P->i += n + 2;
				return out;
			}
		}
		q = fastjson_stop(from + STRING_STEPS, (const char *)P->s + P->len);
	} else
#endif
		q = fastjson_stop(from, (const char *)P->s + P->len);
	if (q == (const char *)P->s + P->len)
		return NULL;
	if (*q == '\\')
		return parse_escaped(P);
	n = (size_t)(q - from);
	P->i += n + 2;
	if (P->a->shared && n <= FASTJSON_SHARED_MAX)
		return shared_copy(P, from, n);
	out = take(P, n + 1);
	memcpy(out, from, n);
	out[n] = '\0';
	return out;
}

static void set_number(cJSON *item, double d)
{
	item->type = cJSON_Number;
	item->valuedouble = d;
	/* cJSON saturates */
	if (d >= INT_MAX)
		item->valueint = INT_MAX;
	else if (d <= (double)INT_MIN)
		item->valueint = INT_MIN;
	else
		item->valueint = (int)d;
}

/* cJSON's parse_number: strtod on the longest run of number bytes; up to 15 plain digits need no strtod. */
static bool parse_number(struct parser *P, cJSON *item)
{
	const unsigned char *p = P->s + P->i;
	size_t run = 0, avail = P->len - P->i, k = 0, used;
	bool neg = p[0] == '-', plain = true;
	char small[64], *buf, *after;
	double d;

	while (run < avail && NUMCHAR[p[run]])
		run++;
	if (neg)
		k = 1;
	if (run > k && run - k <= 15) {
		uint64_t v = 0;

		for (size_t j = k; j < run && plain; j++) {
			plain = p[j] >= '0' && p[j] <= '9';
			v = v * 10 + (uint64_t)(p[j] - '0');
		}
		if (plain) {   /* exact in a double, as strtod's correctly rounded result */
			d = (double)v;
			set_number(item, neg ? -d : d);
			P->i += run;
			return true;
		}
	}
	buf = run < sizeof(small) ? small : take(P, run + 1);
	for (size_t j = 0; j < run; j++)
		buf[j] = p[j] == '.' ? P->decimal_point : (char)p[j];
	buf[run] = '\0';
	d = strtod(buf, &after);
	used = (size_t)(after - buf);
	if (used == 0)
		return false;
	set_number(item, d);
	P->i += used;
	return true;
}

/* Links kid after *last (or as head); cJSON's head->prev is the last child once done. */
static void append(cJSON **head, cJSON **last, cJSON *kid)
{
	if (!*head) {
		*head = kid;
	} else {
		(*last)->next = kid;
		kid->prev = *last;
	}
	*last = kid;
}

/* cJSON's parse_array and parse_object: the same loop, an object's items led by a key and ':'. */
static bool parse_items(struct parser *P, cJSON *item, bool object)
{
	unsigned char close = object ? '}' : ']';
	cJSON *head = NULL, *last = NULL;

	if (P->depth >= CJSON_NESTING_LIMIT)
		return false;
	P->depth++;
	P->i++;
	skip_ws(P);
	if (P->i >= P->len)
		return false;
	if (P->s[P->i] != close) {
		for (;;) {
			cJSON *kid = new_node(P);

			append(&head, &last, kid);
			skip_ws(P);
			if (object) {
				if (!(kid->string = parse_string(P)))
					return false;
				skip_ws(P);
				if (P->i >= P->len || P->s[P->i] != ':')
					return false;
				P->i++;
				skip_ws(P);
			}
			if (!parse_value(P, kid))
				return false;
			skip_ws(P);
			if (P->i >= P->len)
				return false;
			if (P->s[P->i] == close)
				break;
			if (P->s[P->i] != ',')
				return false;
			P->i++;
		}
	}
	P->depth--;
	if (head)
		head->prev = last;
	item->type = object ? cJSON_Object : cJSON_Array;
	item->child = head;
	P->i++;
	return true;
}

/* Whether the literal word is at P->i (cJSON's can_read + strncmp). */
static bool word(struct parser *P, const char *w, size_t n)
{
	if (P->len - P->i < n || memcmp(P->s + P->i, w, n) != 0)
		return false;
	P->i += n;
	return true;
}

static bool parse_value(struct parser *P, cJSON *item)
{
	unsigned char c;

	if (P->i >= P->len)
		return false;
	c = P->s[P->i];
	switch (c) {
	case '"':
		item->type = cJSON_String;
		return (item->valuestring = parse_string(P)) != NULL;
	case '[':
		return parse_items(P, item, false);
	case '{':
		return parse_items(P, item, true);
	case 'n':
		item->type = cJSON_NULL;
		return word(P, "null", 4);
	case 'f':
		item->type = cJSON_False;
		return word(P, "false", 5);
	case 't':
		item->type = cJSON_True;
		item->valueint = 1;
		return word(P, "true", 4);
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			return parse_number(P, item);
		return false;
	}
}

cJSON *fastjson_parse(const char *text, size_t len, const char **end, struct fastjson_arena *a)
{
	struct parser P = {(const unsigned char *)text, len, 0, 0, a, '.'};
	const struct lconv *lc = localeconv();
	cJSON *root;

	if (!text || len == 0)
		return NULL;
	P.decimal_point = lc && lc->decimal_point && lc->decimal_point[0] ? lc->decimal_point[0] : '.';
	/* cJSON's skip_utf8_bom looks only when a fifth byte exists. */
	if (len > 4 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		P.i = 3;
	skip_ws(&P);
	root = new_node(&P);
	if (!parse_value(&P, root))
		return NULL;
	if (end)
		*end = text + P.i;
	return root;
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

bool fastjson_same_tree(const cJSON *a, const cJSON *b)
{
	const cJSON *x, *y, *lx = NULL, *ly = NULL;
	uint64_t da, db;   /* the doubles' bits: -0 and 0 differ, a NaN equals itself */

	if (!a || !b)
		return a == b;
	memcpy(&da, &a->valuedouble, sizeof(da));
	memcpy(&db, &b->valuedouble, sizeof(db));
	if ((a->type & 0xFF) != (b->type & 0xFF) || !same_str(a->string, b->string) ||
	    !same_str(a->valuestring, b->valuestring) || a->valueint != b->valueint || da != db)
		return false;
	for (x = a->child, y = b->child; x && y; x = x->next, y = y->next) {
		if (!fastjson_same_tree(x, y))
			return false;
		lx = x;
		ly = y;
	}
	if (x || y)
		return false;
	/* cJSON's head->prev is the last child: code that appends relies on it. */
	return !a->child || (a->child->prev == lx && b->child->prev == ly);
}

void fastjson_fields(const cJSON *o, const char *const *keys, const cJSON **out, size_t n)
{
	size_t left = n;

	for (size_t k = 0; k < n; k++)
		out[k] = NULL;
	for (const cJSON *c = o ? o->child : NULL; c && c->string && left; c = c->next)
		for (size_t k = 0; k < n; k++)
			if (!out[k] && c->string[0] == keys[k][0] && strcmp(c->string, keys[k]) == 0) {
				out[k] = c;
				left--;
				break;
			}
}
