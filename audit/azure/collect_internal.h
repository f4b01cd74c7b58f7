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

/* Whether arr holds an object whose "id" equals id (ARM IDs compare case-insensitively). */
bool json_has_id(const cJSON *arr, const char *id);

/* Moves the items of from into to, skipping IDs already there. */
void json_merge_unique(cJSON *to, cJSON *from);

/* The data plane (collect_dataplane.c): KEK key bundles into r->keys. */
void collect_data_plane(struct run *r);

#endif
