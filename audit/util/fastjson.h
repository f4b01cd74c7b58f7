/*
 * fastjson.h - a JSON parser that builds the very tree cJSON builds, from a
 * caller's bump arena, several times faster.  Loaders keep reading cJSON.
 *
 * fastjson_parse(text, len, &end, arena) accepts and rejects exactly what
 * cJSON_ParseWithLengthOpts(text, len, &end, false) of the installed cJSON
 * (1.7.15 with Debian's fixes) does, quirks included: bytes 0-32 are
 * whitespace, numbers are the longest run of [0-9+-eE.] read by strtod
 * (so "01" and "1." pass), raw control bytes pass inside strings, a \u
 * escape with a non-hex digit is U+0000, duplicate keys are kept in order,
 * nesting stops at CJSON_NESTING_LIMIT.  On success the tree prints
 * identically, with the same valuedouble/valueint (saturated), child->prev
 * pointing at the last child, and *end just past the value.
 * tests/fuzz/fuzz_fastjson.c holds it to that against cJSON itself.
 *
 * The nodes and strings come from the arena and must never reach
 * cJSON_Delete or any cJSON function that frees or reallocates: the arena's
 * owner frees them all at once.
 */
#ifndef KVAUDIT_FASTJSON_H
#define KVAUDIT_FASTJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cjson/cJSON.h>

/*
 * A bump arena: a first block of 1 MB, then 2 MB blocks backed by transparent
 * huge pages where the kernel allows (larger for a larger string).  A zeroed struct
 * is an empty arena; allocation exits when out of memory, as kv_malloc does.
 */
struct fastjson_block;
struct fastjson_shared;
struct fastjson_arena {
	char *cur, *end;                     /* the free part of the newest block */
	struct fastjson_block *blocks;       /* newest first */
	struct fastjson_block *spare;        /* blocks a reset kept for reuse (FASTJSON_SPARE_BLOCKS) */
	struct fastjson_shared *shared;      /* NULL, or what fastjson_arena_share_strings keeps */
};

/*
 * With on, trees parsed into a from now on share one copy of each short
 * string (keys, and values up to FASTJSON_SHARED_MAX bytes without escapes)
 * that a recently parsed string repeats: a snapshot's lists repeat the same
 * keys and enum values in every element.  Only for trees that no one writes
 * to (every arena tree: see above).  Off (or a reset or free of a) ends it
 * and frees its cache; the strings stay.
 */
#define FASTJSON_SHARED_MAX 64
void fastjson_arena_share_strings(struct fastjson_arena *a, bool on);

/*
 * Frees every tree parsed into a, keeping its newest block and up to
 * FASTJSON_SPARE_BLOCKS more of the standard size for the next: an arena
 * reset after every batch (estate.c's parse-ahead worker) would otherwise
 * free and malloc its blocks again, and fresh pages cost a page fault each.
 */
#define FASTJSON_SPARE_BLOCKS 8
void fastjson_arena_reset(struct fastjson_arena *a);

/* Frees every tree parsed into a and all its memory; a is empty again. */
void fastjson_arena_free(struct fastjson_arena *a);

/* n bytes (8-aligned) from a, living until it is reset or freed. */
void *fastjson_alloc(struct fastjson_arena *a, size_t n);

/*
 * The first '"' or '\\' in [p, end), else end: sixteen bytes at a time
 * with SSE2 (every x86-64 has it), else eight (one memchr call per string,
 * and a second one for backslashes, cost more on JSON's short strings).
 */
static inline const char *fastjson_stop(const char *p, const char *end)
{
#if defined(__SSE2__)
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');

	while (end - p >= 16) {
		__m128i w = _mm_loadu_si128((const __m128i *)(const void *)p);
		int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(w, quote), _mm_cmpeq_epi8(w, bslash)));

		if (m)
			return p + __builtin_ctz((unsigned)m);
		p += 16;
	}
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;

	while (end - p >= 8) {
		uint64_t w, q, b;

		memcpy(&w, p, 8);
		q = w ^ (ones * '"');
		b = w ^ (ones * '\\');
		/* A byte's high bit is set where it was zero; the lowest one is exact. */
		q = (q - ones) & ~q & highs;
		b = (b - ones) & ~b & highs;
		if (q | b)
			return p + (__builtin_ctzll(q | b) >> 3);
		p += 8;
	}
#endif
	while (p < end && *p != '"' && *p != '\\')
		p++;
	return p;
}

/*
 * cJSON_GetObjectItemCaseSensitive, inline: the first child named key (NULL
 * when none, or at the first child without a name, as there), comparing
 * first bytes before calling strcmp.  Loaders look up a dozen keys in every
 * element; the library call and a strcmp per child cost more than the rest.
 */
static inline cJSON *fastjson_get(const cJSON *o, const char *key)
{
	cJSON *c;

	if (!o || !key)
		return NULL;
	for (c = o->child; c && c->string; c = c->next)
		if (c->string[0] == key[0] && strcmp(c->string, key) == 0)
			return c;
	return NULL;
}

/*
 * out[k] = fastjson_get(o, keys[k]) for each of the n keys, in one walk of
 * o's children: a loader that reads several fields of an element.
 */
void fastjson_fields(const cJSON *o, const char *const *keys, const cJSON **out, size_t n);

/* text[0, len) parsed as one JSON value; NULL where cJSON fails. *end (optional) just past the value. */
cJSON *fastjson_parse(const char *text, size_t len, const char **end, struct fastjson_arena *a);

/* Same shape, types, keys, strings, numbers (bit for bit) and valueint: a check for tests. */
bool fastjson_same_tree(const cJSON *a, const cJSON *b);

#endif
