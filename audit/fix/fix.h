/*
 * fix.h - remediation (docs/fix.md): plans the smallest change that gives
 * Backup Management Service what Azure Backup needs on each vault, applies
 * it through accessPolicies/add or a role assignment, verifies it, and
 * journals every write first so that rollback can undo exactly what was
 * added.  Never a full vault PUT, never accessPolicies/replace, never
 * another principal's entry.
 *
 * Permission names are compared case-insensitively ("all" grants every
 * permission of its category), but names are sent back to remove exactly
 * as the service returned them (AZURE-FACTS b3, b4).
 */
#ifndef KVAUDIT_FIX_H
#define KVAUDIT_FIX_H

#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "audit/azure/client.h"
#include "audit/estate/estate.h"
#include "audit/util/util.h"

#define FIX_API_KEYVAULT "2024-11-01"
#define FIX_API_AUTHORIZATION "2022-04-01"
#define FIX_ROLE_KV_ADMINISTRATOR "00482a5a-887f-4fb3-b363-3b7fe8e74483"

/* ---- pure computations (no I/O) ---- */

/* list (a JSON array of names) grants perm: case-insensitive, "all" grants everything. */
bool fix_list_grants(const cJSON *list, const char *perm);

/*
 * The access-policy entry of (tenant, object_id) without an applicationId in
 * a vault document (a Vaults_Get body, or its "properties"), borrowed; NULL
 * when there is none.
 */
const cJSON *fix_find_entry(const cJSON *vault, const char *tenant, const char *object_id);

/*
 * The template permissions the entry (may be NULL) lacks: secrets
 * get/list/backup when secrets, keys get/list/backup when keys.  Returns
 * {"secrets": [...], "keys": [...]} with only non-empty categories; {} when
 * nothing is missing.  Caller frees.
 */
cJSON *fix_missing(const cJSON *entry, bool secrets, bool keys);

/* True when perms ({"secrets": [...], ...}) names no permission. */
bool fix_perms_empty(const cJSON *perms);

/* {"properties": {"accessPolicies": [{tenantId, objectId, permissions: perms}]}}.  Caller frees. */
cJSON *fix_policy_request(const char *tenant, const char *object_id, const cJSON *perms);

/*
 * What a rollback removes: of requested (the permissions an add asked for),
 * those the prior entry (may be NULL) did not already grant, spelt as the
 * current entry spells them (names the current entry lacks are left out).
 * {} when nothing is to be removed.  Caller frees.
 */
cJSON *fix_removal(const cJSON *prior, const cJSON *requested, const cJSON *current);

/* ---- the journal: JSON lines, mode 0600, each line fsync'd ---- */

struct fix_journal {
	int fd;
	char *path;
	size_t cut;        /* bytes of an incomplete last line removed when it was opened */
	size_t cut_line;   /* and its line number (1-based) */
	bool busy;         /* the open failed: another process holds the journal's lock */
};

/*
 * Opens path for appending (creating it when create) and takes an
 * exclusive, non-blocking flock on it for as long as it is open: a second
 * fix --apply or rollback of the same journal fails (j->busy, err names the
 * journal) before reading or changing anything.  An incomplete last line is
 * then removed (j->cut, j->cut_line).
 */
bool fix_journal_open(struct fix_journal *j, const char *path, bool create, struct kv_err *err);
/*
 * Appends entry as one line and fsyncs it.  On failure (a full disk) the
 * file is cut back to its length before, so no torn line is left.
 */
bool fix_journal_append(struct fix_journal *j, const cJSON *entry, struct kv_err *err);
void fix_journal_close(struct fix_journal *j);
/*
 * Reads a journal into an array of entries.  A last line without its newline
 * (a run killed mid-write, or a full disk) is ignored and *torn is its line
 * number (else 0); any other bad line is an error naming it.
 */
cJSON *fix_journal_read(const char *path, size_t *torn, struct kv_err *err);

/* ---- planning ---- */

struct fix_plan_opts {
	const char **rules;          /* --rule: only these rule IDs (none: all fixable) */
	size_t nrules;
	const char **vaults;         /* --vault: names or ARM IDs (case-insensitive) */
	size_t nvaults;
	const char **subscriptions;  /* --subscription GUIDs (for --estate) */
	size_t nsubscriptions;
	const char *rbac_role;       /* role definition GUID or ID; NULL: Key Vault Administrator */
	bool include_vault_settings;
};

/*
 * One plan item per vault with a fixable failing finding, from an audit
 * report (audit_run) and its estate: {"vault", "name", "subscriptionId",
 * "armTenant", "tenantId", "accessModel", "kind" ("access-policy" |
 * "role-assignment" | "none"), "principal", "secrets", "keys", "change",
 * "resolves", "callerUserType", "settings", "skip", "untouched", and
 * "suppressed" (findings that are accepted risks: no change is planned for
 * them)}.
 */
cJSON *fix_plan(const cJSON *report, const struct estate *e, const struct fix_plan_opts *o);

/* Prints the plan, one block per vault. */
void fix_plan_print(const cJSON *plan, FILE *f);

/* True for the vault settings rollback can turn off again (only enabledForDiskEncryption). */
bool fix_setting_reversible(const char *name);
/* The item plans vault settings (--include-vault-settings and a failing KVA-VLT-001/002). */
bool fix_item_has_settings(const cJSON *item);
/* The item would write something (a grant, a role assignment or settings), skips and suppressions aside. */
bool fix_item_actionable(const cJSON *item);

/* ---- applying and rolling back (live) ---- */

struct fix_ctx {
	struct az_client *az;
	struct fix_journal *journal;
	const char *run;             /* run ID stamped on journal entries */
	FILE *log;                   /* progress lines, or NULL */
	bool auth_failed;            /* set when a token could not be had */
};

/*
 * Re-reads the vault live, recomputes the change, checks that the caller
 * may write it (Permissions_ListForResource), journals, writes, re-reads and
 * verifies.  Returns the result: {"vault", "name", "status" ("applied" |
 * "already-compliant" | "failed" | "skipped" | "suppressed"), "error",
 * "change", "before", "after", "verified", and with vault settings
 * "settings": {"status", "error", "request", "before", "after", "verified",
 * "irreversible"}}.
 */
cJSON *fix_apply_item(struct fix_ctx *c, const cJSON *item);

/*
 * Undoes the writes a journal records (entries from fix_journal_read), the
 * last first.  Appends a result per undone write to results; returns false
 * when any could not be undone.
 */
bool fix_rollback(struct fix_ctx *c, const cJSON *entries, cJSON *results);

#endif
