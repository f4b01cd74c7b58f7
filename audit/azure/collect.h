/*
 * collect.h - reads an estate live from Azure (docs/azure-api.md) into a
 * kvaudit.estate snapshot: the same document `kvaudit audit` reads, so one
 * parser serves live and offline audits.  A resource that cannot be read is
 * recorded in errors[] and collection goes on.
 */
#ifndef KVAUDIT_COLLECT_H
#define KVAUDIT_COLLECT_H

#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "audit/azure/client.h"

struct collect_opts {
	const char **subscriptions;  /* --subscription, or none for every subscription the caller sees */
	size_t nsubscriptions;
	bool data_plane;             /* read KEK key bundles (the certificate-backed check) */
	FILE *progress;              /* one line per step, or NULL */
};

enum collect_result {
	COLLECT_OK = 0,      /* the snapshot is complete or records what failed in errors[] */
	COLLECT_AUTH,        /* no token for the caller's own tenant: nothing could be read */
	COLLECT_FAILED,      /* nothing useful could be read (err says why) */
};

/* On COLLECT_OK *out is the snapshot (caller frees). */
enum collect_result collect_estate(struct az_client *c, const struct collect_opts *o, cJSON **out,
                                   struct kv_err *err);

/*
 * The caller as the token says (objectId, tenantId, type, displayName) and,
 * for users, the userType in the home tenant from Graph.  Used by whoami.
 */
enum collect_result collect_caller(struct az_client *c, cJSON **out, struct kv_err *err);

#endif
