/*
 * suppress.h - suppressions: accepted risks kept in a file, so a nightly
 * scan alerts only on what nobody has accepted yet.  A suppressed finding
 * stays in every report with status "suppressed" and the reason; an
 * expired suppression stops suppressing and is reported.
 *
 * File (JSON):
 *   { "kind": "kvaudit.suppressions", "version": 1,
 *     "suppressions": [ { "rule": "KVA-BKP-003",
 *                         "resource": "<PCRE2 pattern matched against the finding's VM, vault,
 *                                      subscription and tenant IDs; case-insensitive>",
 *                         "reason": "…", "owner": "…", "expires": "2027-01-31" } ] }
 */
#ifndef KVAUDIT_SUPPRESS_H
#define KVAUDIT_SUPPRESS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "rules/engine.h"

struct suppression;

struct suppressions {
	struct suppression *v;
	size_t n;
	char today[11];      /* YYYY-MM-DD (UTC) the expiry dates are compared with */
};

/*
 * Loads and validates path: unknown rule IDs (not in cat), patterns that do
 * not compile, dates that are not YYYY-MM-DD, and missing reason or owner
 * are errors naming the file and the JSON path.  today: "YYYY-MM-DD", or
 * NULL for the current UTC date.
 */
bool suppressions_load(const char *path, const struct rule_catalog *cat, const char *today,
                       struct suppressions *out, struct kv_err *err);
/* The same from memory (tests). */
bool suppressions_parse(const char *text, size_t len, const char *name, const struct rule_catalog *cat,
                        const char *today, struct suppressions *out, struct kv_err *err);
void suppressions_release(struct suppressions *s);

/*
 * For a failing finding of rule with these IDs (NULLs skipped): the
 * description of the first matching suppression as a JSON object
 * {"reason","owner","expires","resource","expired"} (caller owns it), or
 * NULL.  "expired": true means it matched but no longer suppresses.
 */
cJSON *suppressions_match(struct suppressions *s, const char *rule, const char *const *ids, size_t nids);

/* Calls warn(text) once per expired suppression that matched a finding. */
void suppressions_each_expired_hit(const struct suppressions *s, void (*warn)(const char *line, void *arg),
                                   void *arg);

#endif
