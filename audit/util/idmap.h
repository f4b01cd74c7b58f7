/*
 * idmap.h - a hash map from ARM ID (case-insensitive) to a size_t index,
 * used to index an estate's resources so joins are O(1).
 */
#ifndef KVAUDIT_IDMAP_H
#define KVAUDIT_IDMAP_H

#include <stdbool.h>
#include <stddef.h>

struct idmap_slot;
struct idmap {
	struct idmap_slot *slots;
	size_t cap;
	size_t len;
};

void idmap_init(struct idmap *m);
void idmap_release(struct idmap *m);
/* Stores id -> value; returns false if id was already present (value kept). */
bool idmap_put(struct idmap *m, const char *id, size_t value);
/* Looks id up; returns false when absent. */
bool idmap_get(const struct idmap *m, const char *id, size_t *value);

#endif
