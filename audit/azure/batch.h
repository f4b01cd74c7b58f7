/*
 * batch.h - many authenticated Azure GETs at once: the same token, host and
 * paging policy as az_get_json/az_list/az_post_json (client.h), run concurrently through
 * http_multi (http.h) with per-subscription throttling awareness.  Callers
 * queue requests, then az_batch_run runs them all; callbacks may queue more.
 * Callbacks run in completion order, so callers that need a deterministic
 * result write into slots fixed at queue time (collect_arm.c does).
 */
#ifndef KVAUDIT_BATCH_H
#define KVAUDIT_BATCH_H

#include <cjson/cJSON.h>

#include "audit/azure/client.h"

struct az_batch;

/*
 * Called once per queued request when it is finished.  For a GET or a query, body is
 * the parsed response on HTTP_OK (the callback owns it), else NULL; for a
 * list, body is always NULL and items holds what was read.  f and err
 * describe a failure (outcome != HTTP_OK); they are valid during the call.
 */
typedef void (*az_batch_fn)(void *ud, enum http_outcome o, cJSON *body, const struct az_failure *f,
                            const struct kv_err *err);

/*
 * A request's outcome kept for later, so that a caller records failures in
 * its own order whichever request finishes first.  az_answer_start marks it
 * unanswered (HTTP_FATAL) until az_answer_done (an az_batch_fn whose ud is
 * the answer) fills it; with no batch (b NULL) it says the request could
 * not be started, and returns false.
 */
struct az_answer {
	enum http_outcome o;
	struct az_failure f;   /* o != HTTP_OK */
	struct kv_err err;
	cJSON *body;           /* a GET's, on HTTP_OK: the answer's owner frees it; NULL for a list */
};
bool az_answer_start(struct az_answer *a, const struct az_batch *b);
void az_answer_done(void *ud, enum http_outcome o, cJSON *body, const struct az_failure *f, const struct kv_err *err);

/* concurrency <= 0: HTTP_DEFAULT_CONCURRENCY. */
struct az_batch *az_batch_new(struct az_client *c, int concurrency, struct kv_err *err);
void az_batch_free(struct az_batch *b);

/* GET url with the token its host calls for, issued by tenant (NULL: the credential's own). */
void az_batch_get(struct az_batch *b, const char *url, const char *tenant, az_batch_fn fn, void *ud);
/*
 * Like az_batch_get, started ahead of the single GETs and with list pages (in
 * the order queued): for a read the end of the collection waits on (the Graph
 * users an Activity Log names), not one that fills gaps.
 */
void az_batch_get_ahead(struct az_batch *b, const char *url, const char *tenant, az_batch_fn fn, void *ud);

/* GET a list and all its pages (nextLink, as az_list) into items. */
void az_batch_list(struct az_batch *b, const char *url, const char *tenant, cJSON *items, az_batch_fn fn,
                   void *ud);

/*
 * Like az_batch_list, with the pages parsed into arena a (fastjson.h): no
 * malloc per node, and no node to free one by one.  Each item appended to
 * items is az_batch_ref's reference to its tree in a; a must outlive them.
 */
struct fastjson_arena;
void az_batch_list_in(struct az_batch *b, const char *url, const char *tenant, cJSON *items,
                      struct fastjson_arena *a, az_batch_fn fn, void *ud);

/*
 * POST body to url, a query that only reads (Resource Graph), answered like a
 * GET (body parsed into arena a, as az_batch_list_in's pages: the callback's
 * body lives in a and must not reach cJSON_Delete; NULL a: parsed by cJSON,
 * the callback owns it); retried as a GET is.  Queries of one tenant share a
 * scheduling key ("query:<tenant>") that follows x-ms-user-quota-remaining.
 */
void az_batch_query_in(struct az_batch *b, const char *url, const char *tenant, const cJSON *body,
                       struct fastjson_arena *a, az_batch_fn fn, void *ud);

/*
 * A malloc'd reference (cJSON_IsReference) to item, a node of an arena's
 * tree: cJSON_Delete frees the reference and nothing below it, so it can be
 * moved between arrays and deleted as any item, while its tree stays the
 * arena's.  Below it, nothing may be deleted or replaced (detach instead),
 * and a node added must come from the arena too (it would never be freed).
 */
cJSON *az_batch_ref(cJSON *item);

/*
 * A new arena for pages whose items become part of a snapshot (through
 * az_batch_ref's references: Resource Graph's rows, Azure Backup's jobs):
 * it lives as long as the process, which frees it at exit in a few calls,
 * instead of millions of nodes freed one by one with the snapshot.
 */
struct fastjson_arena *az_batch_kept_arena(void);

/* Runs until every queued request (and every one queued meanwhile) is finished. */
void az_batch_run(struct az_batch *b);

/* The scheduling key of a URL: "sub:<lower-case subscription ID>" for paths under a subscription, else the host. */
void az_batch_key(const char *url, char *out, size_t n);

/* Attempts started and the most in flight at once, over the batch's life. */
void az_batch_stats(const struct az_batch *b, int *started, int *max_active);

#endif
