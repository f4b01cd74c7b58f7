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

enum collect_engine {
	COLLECT_ENGINE_AUTO = 0,     /* Resource Graph, or ARM for a tenant where Resource Graph refuses the caller */
	COLLECT_ENGINE_GRAPH,        /* Resource Graph only (collect_graph.c); its failures are recorded */
	COLLECT_ENGINE_ARM,          /* ARM lists per subscription */
};

struct collect_opts {
	const char **subscriptions;  /* --subscription, or none for every subscription the caller sees */
	size_t nsubscriptions;
	enum collect_engine engine;  /* --engine */
	unsigned shard_index;        /* --shard K/N: 1..N, this worker's part of the subscriptions */
	unsigned shard_count;        /* N, 0 when not sharded */
	bool data_plane;             /* read KEK key bundles (the certificate-backed check) */
	long long since_seconds;     /* --since: backup jobs of this many seconds back; 0 = 7 days */
	int concurrency;             /* --concurrency: requests in flight at once (0: the default, 32) */
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
 * The shard (0..n-1) of a subscription for --shard K/N: FNV-1a (64 bit) of
 * the lower-cased subscription ID, modulo n.  Stable across runs, machines
 * and versions (docs/performance.md); worker K reads the subscriptions whose
 * shard is K-1.
 */
unsigned collect_shard_of(const char *subscription_id, unsigned n);

/* Parses "K/N" (1 <= K <= N <= 1000); false when it is not that. */
bool collect_shard_parse(const char *s, unsigned *k, unsigned *n);

/* Parses --since ("7d", "36h"; at most 90 days) into seconds; false when it is not that. */
bool collect_parse_since(const char *s, long long *seconds);

/*
 * The caller as the token says (objectId, tenantId, type, displayName) and,
 * for users, the userType in the home tenant from Graph.  Used by whoami.
 */
enum collect_result collect_caller(struct az_client *c, cJSON **out, struct kv_err *err);

#endif
