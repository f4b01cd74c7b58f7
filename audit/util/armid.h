/*
 * armid.h - Azure Resource Manager IDs.  Azure compares them
 * case-insensitively and real responses mix "/subscriptions/" with
 * "/Subscriptions/", "resourceGroups" with "RESOURCEGROUPS" (AZURE-FACTS a2, h),
 * so every comparison and every index key goes through here.
 */
#ifndef KVAUDIT_ARMID_H
#define KVAUDIT_ARMID_H

#include <stdbool.h>
#include <stddef.h>

/* Case-insensitive equality, ignoring one trailing '/'.  NULL equals only NULL. */
bool armid_eq(const char *a, const char *b);

/*
 * True when scope is id itself or an ancestor of it at a segment boundary
 * ("/subscriptions/s" contains "/subscriptions/s/resourceGroups/rg/...",
 * but not "/subscriptions/s2/...").  "/" contains everything.
 */
bool armid_scope_contains(const char *scope, const char *id);

/*
 * Copies the value that follows the segment key (case-insensitively), e.g.
 * key "subscriptions" or "resourceGroups", into out.  Returns false when the
 * ID has no such segment or the value does not fit.
 */
bool armid_segment(const char *id, const char *key, char *out, size_t n);

/* Copies the last non-empty segment (the resource name). */
bool armid_name(const char *id, char *out, size_t n);

/* "/subscriptions/<guid>" for id, lower-cased "subscriptions"; false if none. */
bool armid_subscription_scope(const char *id, char *out, size_t n);

/*
 * True when id is safe to put into a URL path: it starts with
 * "/subscriptions/" or "/providers/", and holds only letters, digits and
 * - _ . ( ) / (ARM name characters), with no empty, "." or ".." segment.
 * Anything else (%, ?, #, @, \, spaces, control characters) is refused.
 */
bool armid_valid_for_url(const char *id);

/* Normalises an Azure region name: lower case without spaces ("West US" -> "westus"). */
void region_norm(const char *in, char *out, size_t n);

#endif
