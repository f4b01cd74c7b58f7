/*
 * idmap.c - open addressing hash map keyed by ARM ID, case-insensitively.
 *
 * A 50k-VM audit looks IDs up a few million times, so keys are folded to
 * lower case eight bytes at a time while they are hashed and compared,
 * never copied: the old lower-cased malloc'd key per lookup was a fifth of
 * the load's time.  Folding is ASCII only, like the C locale's tolower
 * that armid_eq's strncasecmp uses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/util/idmap.h"
#include "audit/util/util.h"

struct idmap_slot {
	const char *key;     /* NULL when empty; the ID as given (or its copy) */
	uint32_t hash;       /* of the folded key, its low half */
	uint32_t len;        /* without the ignored trailing '/' */
	size_t value;
};

struct idmap_chunk {
	struct idmap_chunk *next;
	size_t used, cap;
	char data[];
};

#define ONES 0x0101010101010101ULL

/* The eight bytes of w with ASCII 'A'-'Z' turned to 'a'-'z' (bytes of 0x80 and up unchanged). */
static inline uint64_t fold8(uint64_t w)
{
	uint64_t low7 = w & (ONES * 0x7f);
	/* The high bit of each byte: b >= 'A', and b > 'Z', for b < 0x80 (no carry between bytes). */
	uint64_t ge_a = low7 + ONES * (0x80 - 'A'), gt_z = low7 + ONES * (0x80 - 'Z' - 1);
	uint64_t upper = ge_a & ~gt_z & ~w & (ONES * 0x80);

	return w | (upper >> 2);
}

/* Bytes [i, i + 8) of k: a plain load when they are all there (the common case), else zero-padded past n. */
static inline uint64_t word_at(const char *k, size_t i, size_t n)
{
	uint64_t w = 0;

	if (n - i >= 8)
		memcpy(&w, k + i, 8);
	else
		for (size_t j = 0; i + j < n; j++)
			w |= (uint64_t)(unsigned char)k[i + j] << (8 * j);
	return w;
}

/* The length that counts: one trailing '/' is not part of an ARM ID ("/" stays "/"). */
static size_t key_len(const char *k)
{
	size_t n = strlen(k);

	return n > 1 && k[n - 1] == '/' ? n - 1 : n;
}

static uint64_t hash_key(const char *k, size_t n)
{
	uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;

	for (size_t i = 0; i < n; i += 8) {
		h = (h ^ fold8(word_at(k, i, n))) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 29);
}

static bool same_key(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i += 8)
		if (fold8(word_at(a, i, n)) != fold8(word_at(b, i, n)))
			return false;
	return true;
}

void idmap_init(struct idmap *m)
{
	m->slots = NULL;
	m->cap = 0;
	m->len = 0;
	m->chunks = NULL;
}

void idmap_release(struct idmap *m)
{
	while (m->chunks) {
		struct idmap_chunk *next = m->chunks->next;

		free(m->chunks);
		m->chunks = next;
	}
	free(m->slots);
	idmap_init(m);
}

static struct idmap_slot *find(const struct idmap *m, const char *key, size_t n, uint32_t h)
{
	size_t i = (size_t)h & (m->cap - 1);

	for (;;) {
		struct idmap_slot *s = &m->slots[i];

		if (!s->key || (s->hash == h && s->len == n && same_key(s->key, key, n)))
			return s;
		i = (i + 1) & (m->cap - 1);
	}
}

static void grow(struct idmap *m)
{
	struct idmap_slot *old = m->slots;
	size_t ocap = m->cap;

	m->cap = ocap ? ocap * 2 : 64;
	m->slots = kv_calloc(m->cap, sizeof(*m->slots));
	for (size_t i = 0; i < ocap; i++)
		if (old[i].key)
			*find(m, old[i].key, old[i].len, old[i].hash) = old[i];
	free(old);
}

/* A copy of k[0, n) in the map's chunks (keys are small; 64 KB a chunk). */
static const char *copy_key(struct idmap *m, const char *k, size_t n)
{
	struct idmap_chunk *c = m->chunks;
	char *p;

	if (!c || c->cap - c->used < n + 1) {
		size_t cap = n + 1 > ((size_t)64 << 10) ? n + 1 : ((size_t)64 << 10);

		c = kv_malloc(sizeof(*c) + cap);
		c->used = 0;
		c->cap = cap;
		c->next = m->chunks;
		m->chunks = c;
	}
	p = c->data + c->used;
	memcpy(p, k, n);
	p[n] = '\0';
	c->used += n + 1;
	return p;
}

/* Stores id -> value unless id is there; *at (optional): id's value, either way.  One hash for both. */
static bool put(struct idmap *m, const char *id, size_t value, bool copy, size_t *at)
{
	size_t n;
	uint32_t h;
	struct idmap_slot *s;

	if (!id)
		return false;
	n = key_len(id);
	if (n > UINT32_MAX)
		return false;
	if ((m->len + 1) * 4 > m->cap * 3)
		grow(m);
	h = (uint32_t)hash_key(id, n);
	s = find(m, id, n, h);
	if (at)
		*at = s->key ? s->value : value;
	if (s->key)
		return false;
	s->key = copy ? copy_key(m, id, n) : id;
	s->hash = h;
	s->len = (uint32_t)n;
	s->value = value;
	m->len++;
	return true;
}

bool idmap_put(struct idmap *m, const char *id, size_t value)
{
	return put(m, id, value, true, NULL);
}

bool idmap_put_borrowed(struct idmap *m, const char *id, size_t value)
{
	return put(m, id, value, false, NULL);
}

bool idmap_get_or_put(struct idmap *m, const char *id, size_t value, bool borrow, size_t *at)
{
	return put(m, id, value, !borrow, at);
}

bool idmap_get(const struct idmap *m, const char *id, size_t *value)
{
	size_t n;
	struct idmap_slot *s;

	if (!id || m->cap == 0)
		return false;
	n = key_len(id);
	if (n > UINT32_MAX)
		return false;
	s = find(m, id, n, (uint32_t)hash_key(id, n));
	if (!s->key)
		return false;
	*value = s->value;
	return true;
}
