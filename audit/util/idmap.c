/* idmap.c - open addressing hash map keyed by lower-cased ARM ID. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/util/armid.h"
#include "audit/util/idmap.h"
#include "audit/util/util.h"

struct idmap_slot {
	char *key;     /* lower-cased, NULL when empty */
	uint64_t hash;
	size_t value;
};

static uint64_t hash_key(const char *k)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *k; k++) {
		h ^= (unsigned char)*k;
		h *= 1099511628211ULL;
	}
	return h;
}

void idmap_init(struct idmap *m)
{
	m->slots = NULL;
	m->cap = 0;
	m->len = 0;
}

void idmap_release(struct idmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	idmap_init(m);
}

static struct idmap_slot *find(const struct idmap *m, const char *key, uint64_t h)
{
	size_t i = (size_t)h & (m->cap - 1);

	for (;;) {
		struct idmap_slot *s = &m->slots[i];

		if (!s->key || (s->hash == h && strcmp(s->key, key) == 0))
			return s;
		i = (i + 1) & (m->cap - 1);
	}
}

static void grow(struct idmap *m)
{
	struct idmap old = *m;

	m->cap = old.cap ? old.cap * 2 : 64;
	m->slots = kv_calloc(m->cap, sizeof(*m->slots));
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].key)
			*find(m, old.slots[i].key, old.slots[i].hash) = old.slots[i];
	free(old.slots);
}

bool idmap_put(struct idmap *m, const char *id, size_t value)
{
	char *key;
	uint64_t h;
	struct idmap_slot *s;

	if (!id)
		return false;
	if ((m->len + 1) * 4 > m->cap * 3)
		grow(m);
	key = armid_key(id);
	h = hash_key(key);
	s = find(m, key, h);
	if (s->key) {
		free(key);
		return false;
	}
	s->key = key;
	s->hash = h;
	s->value = value;
	m->len++;
	return true;
}

bool idmap_get(const struct idmap *m, const char *id, size_t *value)
{
	char *key;
	struct idmap_slot *s;

	if (!id || m->cap == 0)
		return false;
	key = armid_key(id);
	s = find(m, key, hash_key(key));
	free(key);
	if (!s->key)
		return false;
	*value = s->value;
	return true;
}
