/*
 * client.h - authenticated Azure requests: picks the token for a URL's host
 * (ARM, Graph or Key Vault of the selected cloud), refuses every other host,
 * renews a token once on 401, parses JSON and follows nextLink paging.
 */
#ifndef KVAUDIT_CLIENT_H
#define KVAUDIT_CLIENT_H

#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "audit/azure/auth.h"
#include "audit/azure/cloud.h"
#include "audit/azure/http.h"

struct az_client {
	const struct cloud *cloud;
	struct http_client *http;
	struct credential *cred;
	int requests;          /* HTTP requests made (attempts included) */
	int throttled;         /* of which answered 429 */
	int max_pages;         /* paging guard, default 10000 */
	int user_quota_remaining;  /* Resource Graph quota after the last response (-1: none said) */
	long user_quota_resets_ms; /* and when it refills (-1: not said) */
};

/* What went wrong with one call, for the estate's errors[] (scope, status, code, message). */
struct az_failure {
	enum http_outcome outcome;
	int status;
	char code[128];
	char message[512];
};

/*
 * GET url with the token its host calls for, issued by tenant (NULL: the
 * credential's own).  On HTTP_OK *out is the parsed body (caller frees).
 * A URL outside the cloud's endpoints is refused (HTTP_FATAL) before any
 * request is made.  err gets one line; fail (may be NULL) the parts.
 */
enum http_outcome az_get_json(struct az_client *c, const char *url, const char *tenant, cJSON **out,
                              struct az_failure *fail, struct kv_err *err);

/*
 * PUT url with body (a JSON document, sent as application/json) under the
 * same token and host policy as az_get_json.  On HTTP_OK *out is the parsed
 * response, or NULL when the response has no body; out may be NULL.  PUT is
 * retried on transport errors (it is idempotent: callers only PUT requests
 * whose repetition does no harm).
 */
enum http_outcome az_put_json(struct az_client *c, const char *url, const char *tenant, const cJSON *body,
                              cJSON **out, struct az_failure *fail, struct kv_err *err);

/*
 * PATCH url with body (same policy and response as az_put_json).  PATCH is
 * retried only on 429 with Retry-After and on failures before anything was
 * sent (http.h): callers PATCH only what may be sent twice.
 */
enum http_outcome az_patch_json(struct az_client *c, const char *url, const char *tenant, const cJSON *body,
                                cJSON **out, struct az_failure *fail, struct kv_err *err);

/*
 * POST url with body for an answer that changes nothing (a Resource Graph
 * query); same policy as az_put_json, *out the parsed response.  Only for
 * POSTs that read: it is retried as a GET is (http_query), 5xx included.
 */
enum http_outcome az_post_json(struct az_client *c, const char *url, const char *tenant, const cJSON *body,
                               cJSON **out, struct az_failure *fail, struct kv_err *err);

/* DELETE url (same policy); HTTP_OK for any 2xx, 204 (already absent) included. */
enum http_outcome az_delete(struct az_client *c, const char *url, const char *tenant, struct az_failure *fail,
                            struct kv_err *err);

/*
 * GET a list and every page after it (nextLink, until absent, null or "";
 * empty pages are followed; a nextLink already seen, or to another endpoint
 * than the first page's, stops with an error), appending each value[] item
 * to items.  On failure items keeps what was read.
 */
enum http_outcome az_list(struct az_client *c, const char *url, const char *tenant, cJSON *items,
                          struct az_failure *fail, struct kv_err *err);

/* Adds {"scope","status","code","message"} for a failure to errors. */
void az_failure_record(cJSON *errors, const char *scope, const struct az_failure *f, const char *fallback);

#endif
