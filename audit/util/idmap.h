/*
 * idmap.h - a hash map from ARM ID (case-insensitive) to a size_t index,
 * used to index an estate's resources so joins are O(1).
 *
 * Keys are hashed and compared in place (ASCII case folded, one trailing
 * '/' ignored, as armid_eq does): a lookup allocates nothing.  idmap_put
 * copies its key into the map's own chunks; idmap_put_borrowed keeps the
 * caller's pointer, for a key that outlives the map unchanged (an estate's
 * IDs indexing that estate).
 */
#ifndef KVAUDIT_IDMAP_H
#define KVAUDIT_IDMAP_H

#include <stdbool.h>
#include <stddef.h>

struct idmap_slot;
struct idmap_chunk;
struct idmap {
	struct idmap_slot *slots;
	size_t cap;
	size_t len;
	struct idmap_chunk *chunks;   /* copies of the keys idmap_put was given */
};

void idmap_init(struct idmap *m);
void idmap_release(struct idmap *m);
/* Stores id -> value; returns false if id was already present (value kept). */
bool idmap_put(struct idmap *m, const char *id, size_t value);
/* idmap_put without a copy: id must stay valid and unchanged until idmap_release. */
bool idmap_put_borrowed(struct idmap *m, const char *id, size_t value);
/*
 * idmap_put (idmap_put_borrowed with borrow) that also sets *at to id's
 * value: the one it already had (false), else value (true).  One lookup
 * where idmap_get then idmap_put would hash the ID twice.  An id put()
 * refuses (NULL, too long) is false with *at unset.
 */
bool idmap_get_or_put(struct idmap *m, const char *id, size_t value, bool borrow, size_t *at);
/* Looks id up; returns false when absent. */
bool idmap_get(const struct idmap *m, const char *id, size_t *value);

#endif
