/*
 * http.h - the one HTTP entry point (libcurl).  Every request goes through
 * http_request, which applies the bounded retry policy and classifies the
 * outcome; callers never see curl.  TLS verification is always on (there is
 * no way to turn it off); redirects are never followed (a redirect could
 * carry the bearer token to another host); bodies are capped.
 */
#ifndef KVAUDIT_HTTP_H
#define KVAUDIT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "audit/util/util.h"

enum http_outcome {
	HTTP_OK = 0,        /* 2xx */
	HTTP_NOT_FOUND,     /* 404 */
	HTTP_UNAUTHORIZED,  /* 401 (expired or rejected token) */
	HTTP_FORBIDDEN,     /* 403 */
	HTTP_THROTTLED,     /* 429 still after the retries */
	HTTP_TRANSIENT,     /* 5xx or a transport error (reset, timeout) still after the retries */
	HTTP_FATAL,         /* other 4xx, TLS failure, body over the cap, bad URL */
};

const char *http_outcome_name(enum http_outcome o);

struct http_opts {
	const char *ca_bundle;   /* extra PEM trusted besides the system store, or NULL */
	long connect_timeout_ms; /* default 10000 */
	long timeout_ms;         /* whole request, default 60000 */
	size_t max_body;         /* default 256 MiB */
	int max_retries;         /* default 4 (5 attempts) */
	int max_retry_after;     /* seconds; a longer Retry-After is capped to it; default 60 */
	FILE *log;               /* -v: one line per request and retry, never headers or bodies; NULL = quiet */
	/*
	 * Zero values mean the defaults above; max_retries < 0 means no retries.
	 * http_client_new reads ca_bundle, resolve and connect_to and keeps no
	 * pointer to them; log is borrowed for the client's life.  allow_http_loopback_imds permits plain http, and
	 * only to 169.254.169.254 and 127.0.0.1 (IMDS is plain http by design);
	 * everything else is https-only regardless.  resolve: comma-separated
	 * "host:port:address" entries (curl's CURLOPT_RESOLVE, one address each;
	 * the CLI fills it from KVAUDIT_RESOLVE), e.g. to map Key Vault host
	 * names to 127.0.0.1 in tests.  connect_to: comma-separated
	 * "host:port:connect-host:connect-port" entries (CURLOPT_CONNECT_TO), which
	 * can also change the port (a test server cannot listen on 443); TLS still
	 * verifies the certificate against the URL's host name.
	 */
	bool allow_http_loopback_imds;
	const char *resolve;
	const char *connect_to;
};

struct http_response {
	long status;             /* 0 when no complete HTTP response arrived (a transport error) */
	struct kv_buf body;
	char request_id[96];     /* x-ms-request-id, or "" */
	int retry_after;         /* seconds from Retry-After of the last response, -1 when absent */
	int attempts;            /* how many requests were made */
	int throttled;           /* how many of them were answered 429 */
	int ratelimit_remaining; /* smallest x-ms-ratelimit-remaining-* of the last response, -1 when none */
	int user_quota_remaining; /* Resource Graph: x-ms-user-quota-remaining of the last response, -1 when none */
	long user_quota_resets_ms; /* Resource Graph: x-ms-user-quota-resets-after (hh:mm:ss) in ms, -1 when none */
};

struct http_client;

struct http_client *http_client_new(const struct http_opts *o, struct kv_err *err);
void http_client_free(struct http_client *h);

/*
 * Sends one request and retries it (429 and 503 after Retry-After, capped;
 * other 5xx, resets and timeouts with exponential backoff and jitter).
 * bearer: the token for an "Authorization: Bearer" header, or NULL; it is
 * never logged.  headers: NULL-terminated "Name: value" strings, or NULL.
 * body/body_len: for POST/PUT (content type in headers).  resp is always
 * initialised and must be released.  On any outcome but HTTP_OK, err holds
 * one line: the method, the URL without its query, the status and Azure's
 * error code and message (audit/azure/parse.h azure_error_parse), and the
 * request ID.
 *
 * Which requests are retried: GET, HEAD, PUT and DELETE (idempotent) on 429,
 * 500, 502, 503, 504 and transport errors (connection refused or reset,
 * timeout, empty or cut-short response).  Any other method (POST, PATCH)
 * only on 429 or 503 that carry Retry-After (the server says it did not act:
 * the token endpoint does this) and when the connection could not be made at
 * all; a POST that may have reached the server is never sent twice.
 * Retry-After is honoured exactly (capped at max_retry_after); without it
 * the wait is 0.5 s, 1 s, 2 s, ... (+-20% jitter, at most 30 s).  Other 4xx
 * are never retried.  An untrusted or mismatched TLS certificate is
 * HTTP_FATAL at once, and the request never left the machine.  A URL with
 * user info, a non-https scheme (see allow_http_loopback_imds) or a bearer
 * token over plain http is HTTP_FATAL without a request.
 */
enum http_outcome http_request(struct http_client *h, const char *method, const char *url,
                               const char *bearer, const char *const *headers,
                               const char *body, size_t body_len,
                               struct http_response *resp, struct kv_err *err);

/*
 * A POST that only reads (a Resource Graph query): sent and retried exactly as
 * a GET is (5xx, resets and timeouts too), because sending it twice changes
 * nothing.
 */
enum http_outcome http_query(struct http_client *h, const char *url, const char *bearer,
                             const char *const *headers, const char *body, size_t body_len,
                             struct http_response *resp, struct kv_err *err);
void http_response_release(struct http_response *r);

/*
 * Many requests at once with libcurl's multi interface: up to concurrency
 * transfers in flight (default HTTP_DEFAULT_CONCURRENCY), sharing
 * connections (HTTP/2 multiplexing when the server offers it), each with
 * http_request's checks and retry policy.  A retry waits for its Retry-After
 * or backoff without holding up other requests.  key (e.g. a subscription ID,
 * or NULL) groups requests that share a throttling budget: after a 429, or
 * when x-ms-ratelimit-remaining-* runs low, requests of that key are paced
 * (sched.h) and other keys go on at full speed.
 *
 * http_multi_add copies method, url, body, key and the headers (the bearer
 * token goes into the header list only, wiped when freed); resp and err
 * belong to the caller and must stay valid until http_multi_next returns
 * the request's ud.  A request refused before sending (bad URL, token over
 * plain http) makes add return false; it is still returned by next with
 * HTTP_FATAL and err set.  http_multi_next runs until one request is
 * finished (after its retries) and returns true with its ud and outcome, or
 * false when nothing is left.  Requests may be added between calls.
 */
#define HTTP_DEFAULT_CONCURRENCY 32
#define HTTP_MAX_CONCURRENCY 256

struct http_multi;

struct http_multi *http_multi_new(struct http_client *h, int concurrency, struct kv_err *err);
bool http_multi_add(struct http_multi *m, const char *method, const char *url, const char *bearer,
                    const char *const *headers, const char *body, size_t body_len, const char *key,
                    struct http_response *resp, struct kv_err *err, void *ud);
/*
 * As http_multi_add, but the request starts ahead of every pending one not
 * added this way (behind those that were): a list's pages, whose chain, and
 * what waits on it, would otherwise come last, behind thousands of single
 * reads queued before its next page.
 */
bool http_multi_add_first(struct http_multi *m, const char *method, const char *url, const char *bearer,
                          const char *const *headers, const char *body, size_t body_len, const char *key,
                          struct http_response *resp, struct kv_err *err, void *ud);
/*
 * As http_multi_add_first, ahead of those of a lower prio (sched_queue_prio:
 * the length of the chain of requests this one leads to; 0 is
 * http_multi_add_first's).
 */
bool http_multi_add_prio(struct http_multi *m, const char *method, const char *url, const char *bearer,
                         const char *const *headers, const char *body, size_t body_len, const char *key,
                         struct http_response *resp, struct kv_err *err, void *ud, int prio);
/* A POST that only reads (a Resource Graph query): as http_multi_add, retried as http_query retries. */
bool http_multi_add_query(struct http_multi *m, const char *url, const char *bearer, const char *const *headers,
                          const char *body, size_t body_len, const char *key, struct http_response *resp,
                          struct kv_err *err, void *ud);
bool http_multi_next(struct http_multi *m, void **ud, enum http_outcome *o);
/* Call http_multi_free once http_multi_next has returned false (requests still queued are dropped). */
/* Attempts started so far and the most transfers that were in flight at once. */
void http_multi_stats(const struct http_multi *m, int *started, int *max_active);
void http_multi_free(struct http_multi *m);

/* For tests: sleeping is replaced by this function when set (it receives milliseconds). */
void http_set_sleep_hook(struct http_client *h, void (*sleep_ms)(long ms));

#endif
