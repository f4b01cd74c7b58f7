/*
 * restore.h - restore-readiness facts of a binding (one ADE VM x one key
 * vault): whether each BEK secret and KEK key the VM's disks reference
 * still exists, is enabled, within its validity and not about to expire,
 * whether a deleted one can still be recovered, and whether a KEK is an RSA
 * key that allows wrapKey and unwrapKey.  Read from the snapshot's
 * value-free data-plane metadata ("secrets", "keys", "deletedSecrets",
 * "deletedKeys"; docs/estate.md), judged as of estate.as_of.
 */
#ifndef KVAUDIT_RESTORE_H
#define KVAUDIT_RESTORE_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "audit/estate/estate.h"

/*
 * Adds "bek" and "kek" objects to the binding facts b (docs/facts.md:
 * binding.bek.*, binding.kek.*) for the binding's secret_urls and key_urls
 * (arrays of strings), and their "$unavailable" entries to un.
 */
void restore_facts(const struct estate *e, const char *vault_name, bool holds_bek, bool holds_kek,
                   const cJSON *secret_urls, const cJSON *key_urls, cJSON *b, cJSON *un);

#endif
