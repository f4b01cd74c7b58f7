/*
 * collect_internal.h - what the parts of a live collection share (collect.c
 * drives it; collect_*.c read one area each): the run being built, the
 * api-versions, and the helpers that request a list or record a failure.
 * Not part of the public interface (collect.h).
 */
#ifndef KVAUDIT_COLLECT_INTERNAL_H
#define KVAUDIT_COLLECT_INTERNAL_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "audit/azure/client.h"
#include "audit/azure/collect.h"

#define API_TENANTS "2022-12-01"
#define API_SUBSCRIPTIONS "2022-12-01"
#define API_COMPUTE "2024-07-01"
#define API_DISKS "2024-03-02"
#define API_KEYVAULT "2024-11-01"
#define API_AUTHORIZATION "2022-04-01"
#define API_RECOVERY_VAULTS "2025-02-01"
#define API_PROTECTED_ITEMS "2024-10-01"
#define API_KEYVAULT_DATA "7.4"

struct run {
	struct az_client *c;
	const struct collect_opts *o;
	cJSON *doc, *errors;
	cJSON *subs, *vms, *disks, *vaults, *ras, *rds, *rsvs, *items, *keys, *tenants;
	struct az_batch *batch;   /* concurrent requests (collect_arm.c), created on first use */
	void *queued;             /* run_queue_list's slots until run_flush */
	void *arm;                /* the ARM engine's tenants until collect_arm_finish */
	void *graph;              /* the Resource Graph engine's tenants until collect_graph_finish */
	void *backup;             /* Azure Backup's evidence reads started early, until collect_backup_evidence */
};

/* One progress line (when the caller asked for progress). */
void run_progress(const struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* o[k] when it is a string, else NULL. */
const char *jstr(const cJSON *o, const char *k);

/* Records a failure whose scope is an ARM path (resource ID or list path, no host) in errors[]. */
void run_record(struct run *r, const char *scope, const struct az_failure *f, const struct kv_err *err);

/* An ID that is not safe for a URL is recorded and skipped, never requested. */
bool run_safe_id(struct run *r, const char *id);

/* GET every page of the list at {arm}{path}?api-version=V[&extra] into items (a tenant's token);
 * a failure is recorded with scope path and false returned. */
bool run_list(struct run *r, const char *path, const char *api, const char *extra, const char *tenant,
              cJSON *items);

/*
 * Like run_list, but queued: the list is read concurrently with everything
 * else queued, and items is filled (and a failure recorded) when run_flush
 * returns, in the order the lists were queued whatever order they finish
 * in; several lists may fill one items.  items must stay alive until then.
 */
void run_queue_list(struct run *r, const char *path, const char *api, const char *extra, const char *tenant,
                    cJSON *items);
/* Like run_queue_list; then(r, path, what the list read) runs as soon as the list is finished (may queue more). */
void run_queue_list_then(struct run *r, const char *path, const char *api, const char *extra, const char *tenant,
                         cJSON *items, void (*then)(struct run *r, const char *path, const cJSON *items));
/* Like run_queue_list for one GET of url: *out is the parsed body (NULL on failure, recorded with scope). */
void run_queue_get(struct run *r, const char *scope, const char *url, const char *tenant, cJSON **out);
void run_flush(struct run *r);

/* The run's concurrent requests (created on first use), or NULL when they cannot start. */
struct az_batch *run_batch(struct run *r);

/*
 * The ARM engine (collect_arm.c): queues the reads of the subscriptions subs
 * (subscription ID strings) of one tenant; collect_arm_finish runs every
 * tenant's at once and puts the results into the snapshot in the order the
 * tenants and subscriptions were given (a no-op when nothing was queued).
 */
void collect_arm(struct run *r, const char *tenant, const char *bms_oid, const cJSON *subs);
void collect_arm_finish(struct run *r);

/* Whether arr holds an object whose "id" equals id (ARM IDs compare case-insensitively). */
bool json_has_id(const cJSON *arr, const char *id);

/* Moves the items of from into to, skipping IDs already there. */
void json_merge_unique(cJSON *to, cJSON *from);

/* The data plane (collect_dataplane.c): KEK key bundles into r->keys. */
void collect_data_plane(struct run *r);

/* Azure Backup's evidence (collect_backup.c): backup jobs, policies, Activity Log, principals. */
void collect_backup_evidence(struct run *r);
/*
 * A vault's protected-items list (path "<vault ID>/backupProtectedItems")
 * is finished, items what it read: when the vault protects a VM, its
 * evidence reads start now, concurrently with what the engines still read
 * (collect_backup_evidence takes them in the vaults' order).
 */
void collect_backup_items_read(struct run *r, const char *path, const cJSON *items);
/*
 * A Recovery Services vault is known (both engines, as they queue its
 * protected items): its backup jobs, the longest list of its reads, start now.
 */
void collect_backup_vault_known(struct run *r, const char *rsv_id);

/* ARM reads both engines share (collect.c); protected items are queued into items (run_flush reads them). */
void collect_protected_items(struct run *r, const char *rsv_id, const char *tenant, cJSON *items);
void collect_custom_roles(struct run *r, const char *tenant, const char *bms_oid);

/*
 * The Resource Graph engine (collect_graph.c): queues the reads of the
 * subscriptions subs (a JSON array of subscription ID strings) of one
 * tenant; collect_graph_finish runs every tenant's at once and puts them
 * into the snapshot in the order the tenants were given.  A tenant whose
 * caller Resource Graph refuses (403) is handed to collect_arm when fallback
 * is set (so collect_arm_finish must come after), else the refusal is
 * recorded.  A 400 (a query the service cannot run) is recorded, never
 * hidden behind the other engine.
 */
void collect_graph(struct run *r, const char *tenant, const char *bms_oid, const cJSON *subs, bool fallback);
void collect_graph_finish(struct run *r);

/* One Resource Graph query of the engine's table (for tests and docs). */
struct graph_query {
	const char *name;   /* what it reads, for progress and errors */
	const char *kql;
};
const struct graph_query *collect_graph_queries(size_t *n);

#endif
