/*
 * facts.h - the facts view of an estate: one JSON object per subject
 * (a VM, a vault, a binding of one ADE VM to one vault it depends on, a
 * tenant), which the rule engine reads by dotted path.
 *
 * Layout of a facts object (docs/facts.md lists every path):
 *   { "vm": {...}, "vault": {...}, "binding": {...}, "tenant": {...},
 *     "$unavailable": { "<path prefix>": { "status": "error"|"skipped",
 *                                          "reason": "<one line>" } } }
 * A path under an "$unavailable" prefix could not be read ("error": the
 * estate says reading it failed, or it is needed and missing) or was not
 * collected at all ("skipped").  Every other registered path for the
 * subject is present with a definite value (absent-means-false already
 * applied), or null where it does not apply.
 */
#ifndef KVAUDIT_FACTS_H
#define KVAUDIT_FACTS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "audit/estate/estate.h"
#include "audit/util/util.h"

enum subject_kind {
	SUBJ_VM = 1 << 0,
	SUBJ_VAULT = 1 << 1,
	SUBJ_BINDING = 1 << 2,
	SUBJ_TENANT = 1 << 3,
};

enum fact_type { FACT_STRING, FACT_BOOL, FACT_NUMBER, FACT_ARRAY };

/* One registered fact: rules may only name these (kvaudit rules check). */
struct fact_def {
	const char *path;       /* "vault.backupPolicy.secrets" */
	enum fact_type type;
	unsigned subjects;      /* enum subject_kind bits for which it is present */
	const char *doc;        /* one line for docs/facts.md and `rules show` */
};

const struct fact_def *facts_registry(size_t *n);
const struct fact_def *facts_find(const char *path);
const char *fact_type_name(enum fact_type t);

const char *subject_name(enum subject_kind k);            /* "vm", "vault", "binding", "tenant" */
bool subject_parse(const char *s, enum subject_kind *out);

/* The Backup Management Service template (AZURE-FACTS c2). */
extern const char *const BACKUP_TEMPLATE_SECRETS[3];   /* get, list, backup */
extern const char *const BACKUP_TEMPLATE_KEYS[3];      /* get, list, backup */
/* True when a role definition ID (or GUID) is a built-in role kvaudit knows the data actions of. */
bool facts_role_is_builtin(const char *role_definition_id);

/* ARM action matching: some allow pattern ('*' wildcards, case-insensitive) matches and no deny pattern does. */
bool facts_actions_cover(const cJSON *allow, const cJSON *deny, const char *action);

/*
 * What Backup needs on an RBAC vault (AZURE-FACTS c3), accumulated over the
 * roles assigned to Backup Management Service: the audit (vault.backupRbac)
 * and fix's live re-check share it.  Start zeroed.
 */
struct facts_rbac_cover {
	bool secrets[4], keys[4];
};

/*
 * Adds one role: a built-in role by its definition ID or GUID, else the
 * role definition's merged dataActions / notDataActions (its notDataActions
 * subtract from that role only).  False when the role is not built in and
 * data_actions is NULL (unknown role: nothing added).
 */
bool facts_rbac_cover_add(struct facts_rbac_cover *cv, const char *role_definition_id, const cJSON *data_actions,
                          const cJSON *not_data_actions);
bool facts_rbac_covers_secrets(const struct facts_rbac_cover *cv);
bool facts_rbac_covers_keys(const struct facts_rbac_cover *cv);

/* Key Vault Administrator role definition GUID (AZURE-FACTS c3). */
#define ROLE_KEY_VAULT_ADMINISTRATOR "00482a5a-887f-4fb3-b363-3b7fe8e74483"

/*
 * What is computed once per estate before subjects are built: which vaults
 * hold which VMs' keys, per-vault and per-tenant facts, indexes.
 */
struct facts_ctx;

/*
 * Prepares the facts of an estate (ADE detection has run in estate_load).
 * Facts and the inventory reference some of the estate's strings (cJSON
 * string references, marked cJSON_IsReference) instead of copying them:
 * delete them, and any report built from them, before estate_free.
 */
struct facts_ctx *facts_prepare(const struct estate *e);
void facts_ctx_free(struct facts_ctx *c);

/*
 * Calls fn once per subject: every VM, every vault (including vaults that
 * ADE VMs reference but the snapshot lacks), every (ADE VM, vault) binding
 * and every tenant.  Subjects are built one at a time and freed after fn
 * returns (memory stays flat on large estates): fn must not keep facts.
 */
typedef void (*subject_fn)(enum subject_kind kind, const cJSON *facts, void *arg);
void facts_each(struct facts_ctx *c, subject_fn fn, void *arg);

/*
 * facts_each in parts.  Its subjects come in units, in facts_each's order:
 * each VM with its bindings, then each vault, then each tenant.
 * facts_each_range calls fn for the units [from, to); ranges that do not
 * overlap may run on different threads at once (after facts_prepare the
 * context is only read; fn must be safe for it).  facts_split cuts the
 * units into nparts ranges of about equal work: bounds[0..nparts].
 */
size_t facts_units(const struct facts_ctx *c);
void facts_split(const struct facts_ctx *c, size_t nparts, size_t *bounds);
void facts_each_range(struct facts_ctx *c, size_t from, size_t to, subject_fn fn, void *arg);

/*
 * The report's inventory: every ADE VM (OS, flavour, each volume's BEK/KEK
 * vault and URL) and every vault (access model, tenant, Backup Management
 * Service's current permissions).  docs/report.md has the shape.
 */
cJSON *facts_inventory(struct facts_ctx *c);
/*
 * The same with "vms" left empty, for a caller that writes the VM rows one
 * at a time (facts_inventory_next_vm, struct report_rows in reports/report.h)
 * and so never holds them all: they are most of a large report's nodes.
 */
cJSON *facts_inventory_vaults(struct facts_ctx *c);
/*
 * The inventory's row of the next VM of estate (a const struct estate *)
 * with ADE in effect, from index *pos on, as facts_inventory lists it;
 * *pos moves past it; NULL after the last (struct report_rows' next).
 */
cJSON *facts_inventory_next_vm(void *estate, size_t *pos);

/*
 * Marks fact path as unavailable in a subject's "$unavailable" object u:
 * status "error" (could not be read) or "skipped" (not collected), with a
 * reason.  The first reason given for a path wins.
 */
void facts_unavailable(cJSON *u, const char *path, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
