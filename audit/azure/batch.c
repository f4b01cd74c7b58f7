/* batch.c - see batch.h. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/azure/batch.h"
#include "audit/azure/parse.h"
#include "audit/util/fastjson.h"

struct az_batch {
	struct az_client *c;
	struct http_multi *m;
};

struct job {
	struct az_batch *b;
	char *url;                 /* the current page */
	char *tenant;
	enum cloud_target first;   /* the first page's endpoint: nextLink may not leave it */
	bool list, renewed;
	bool ahead;   /* a single GET the end of the collection waits on: in the lane of list pages */
	int depth;    /* the requests expected from its next page on (chain_depth), 0: none foreseen */
	char *body;                /* a query's (POST) JSON body, else NULL */
	struct fastjson_arena *arena;   /* the pages are parsed into it (az_batch_list_in), else by cJSON */
	cJSON *items, *seen;
	int pages;
	struct http_response resp;
	struct kv_err err;
	struct az_failure fail;
	az_batch_fn fn;
	void *ud;
};

/*
 * The lists that start the longest chains of requests in a scan, and the
 * chain's length as expected from the first page on: Azure Backup's jobs
 * since --since (a job per protected VM and day: several pages a vault, the
 * longest lists of a scan, e.g. ~6 pages of 100 at 10k VMs in
 * bench/graph.sh), a vault's protected items (then its Activity Log, then
 * the Graph users it names) and a resource group's Activity Log (then those
 * users).  Their pages start ahead of other lists, the longest chain first
 * (sched_queue_prio), each page read lowering its list's by one: every other
 * list ends a chain, and a single GET started ahead (az_batch_get_ahead)
 * goes just before them.
 */
static const struct {
	const char *suffix;   /* of the URL's path */
	int depth;
} CHAINS[] = {
	{"/backupJobs", 6},
	{"/backupProtectedItems", 3},
	{"/eventtypes/management/values", 2},
};

static int chain_depth(const char *url)
{
	size_t n = strcspn(url, "?#");

	for (size_t i = 0; i < sizeof(CHAINS) / sizeof(CHAINS[0]); i++) {
		size_t m = strlen(CHAINS[i].suffix);

		if (n >= m && kv_startswith_ci(url + n - m, CHAINS[i].suffix))
			return CHAINS[i].depth;
	}
	return 0;
}

static const char *const get_headers[] = {"Accept: application/json", NULL};
static const char *const body_headers[] = {"Accept: application/json", "Content-Type: application/json", NULL};

struct az_batch *az_batch_new(struct az_client *c, int concurrency, struct kv_err *err)
{
	struct az_batch *b = kv_calloc(1, sizeof(*b));

	b->c = c;
	b->m = http_multi_new(c->http, concurrency, err);
	if (!b->m) {
		free(b);
		return NULL;
	}
	return b;
}

void az_batch_free(struct az_batch *b)
{
	if (!b)
		return;
	http_multi_free(b->m);
	free(b);
}

void az_batch_stats(const struct az_batch *b, int *started, int *max_active)
{
	http_multi_stats(b ? b->m : NULL, started, max_active);
}

void az_batch_key(const char *url, char *out, size_t n)
{
	const char *p = strstr(url, "://"), *host, *path, *q;
	size_t len;

	host = p ? p + 3 : url;
	path = host + strcspn(host, "/?#");
	/* Under the ARM endpoint's own path (a private cloud's, or the emulator's "/arm") too. */
	for (q = path; *q && *q != '?' && *q != '#'; q++)
		if (kv_startswith_ci(q, "/subscriptions/"))
			break;
	if (kv_startswith_ci(q, "/subscriptions/")) {
		q += strlen("/subscriptions/");
		len = strcspn(q, "/?#");
		snprintf(out, n, "sub:%.*s", (int)len, q);
		for (char *o = out; *o; o++)
			*o = (char)tolower((unsigned char)*o);
		return;
	}
	snprintf(out, n, "%.*s", (int)(path - host), host);
}

/* The URL without its query (which may hold a $skiptoken), for messages. */
static void url_for_message(const char *url, char *out, size_t n)
{
	size_t len = strcspn(url, "?#");

	snprintf(out, n, "%.*s", (int)(len < n ? len : n - 1), url);
}

static void fail_code(struct job *j, enum http_outcome o, const char *code)
{
	memset(&j->fail, 0, sizeof(j->fail));
	j->fail.outcome = o;
	snprintf(j->fail.code, sizeof(j->fail.code), "%s", code);
	kv_strlcpy(j->fail.message, j->err.msg, sizeof(j->fail.message));
}

static void fail_from_response(struct job *j, enum http_outcome o)
{
	struct azure_error ae;

	memset(&j->fail, 0, sizeof(j->fail));
	j->fail.outcome = o;
	j->fail.status = (int)j->resp.status;
	if (j->resp.body.len) {
		azure_error_parse(j->resp.body.data, j->resp.body.len, (int)j->resp.status, &ae);
		/* As client.c: Key Vault's innererror code says why (ForbiddenByFirewall, ForbiddenByRbac, …). */
		kv_strlcpy(j->fail.code, ae.inner[0] ? ae.inner : ae.code, sizeof(j->fail.code));
		kv_strlcpy(j->fail.message, ae.message, sizeof(j->fail.message));
	}
}

static void finish(struct job *j, enum http_outcome o, cJSON *body)
{
	j->fn(j->ud, o, body, &j->fail, &j->err);
	http_response_release(&j->resp);
	cJSON_Delete(j->seen);
	free(j->url);
	free(j->tenant);
	free(j->body);
	free(j);
}

/* Sends the job's current URL (again, after a 401, with a renewed token). */
static void submit(struct job *j)
{
	struct az_client *c = j->b->c;
	enum cloud_target t = cloud_classify(c->cloud, j->url);
	char *scope = NULL;
	const char *token;
	char key[96], shown[512];

	url_for_message(j->url, shown, sizeof(shown));
	if (t == TARGET_NONE || t == TARGET_LOGIN || !(scope = cloud_scope(c->cloud, t))) {
		kv_err_set(&j->err, "refusing to send a token to '%s': it is not an endpoint of cloud %s", shown,
		           c->cloud->name);
		fail_code(j, HTTP_FATAL, "ForeignHost");
		finish(j, HTTP_FATAL, NULL);
		return;
	}
	token = credential_token(c->cred, scope, j->tenant, j->renewed, &j->err);
	free(scope);
	if (!token) {
		fail_code(j, HTTP_UNAUTHORIZED, "TokenUnavailable");
		finish(j, HTTP_UNAUTHORIZED, NULL);
		return;
	}
	http_response_release(&j->resp);
	/* A request refused up front still comes back through http_multi_next. */
	if (j->body) {
		/* Resource Graph meters queries per user: one key per tenant's caller, apart from its ARM reads. */
		snprintf(key, sizeof(key), "query:%s", j->tenant ? j->tenant : "");
		http_multi_add_query(j->b->m, j->url, token, body_headers, j->body, strlen(j->body), key, &j->resp, &j->err,
		                     j);
		return;
	}
	az_batch_key(j->url, key, sizeof(key));
	/*
	 * A list's pages go ahead of single GETs: each page waits for the one
	 * before it (and evidence reads wait for protected items), while single
	 * GETs (ADE extensions) can fill any gap; az_batch_get_ahead's GETs,
	 * which the end of the collection waits on, go with the pages, and the
	 * long chains (CHAINS) before them, longest first.
	 */
	if (j->list || j->ahead)
		http_multi_add_prio(j->b->m, "GET", j->url, token, get_headers, NULL, 0, key, &j->resp, &j->err, j,
		                    j->depth > j->pages ? 1 + j->depth - j->pages : j->depth > 0 || j->ahead ? 1 : 0);
	else
		http_multi_add(j->b->m, "GET", j->url, token, get_headers, NULL, 0, key, &j->resp, &j->err, j);
}

static struct job *job_new(struct az_batch *b, const char *url, const char *tenant, bool list, cJSON *items,
                           az_batch_fn fn, void *ud)
{
	struct job *j = kv_calloc(1, sizeof(*j));

	j->b = b;
	j->url = kv_strdup(url);
	j->tenant = tenant ? kv_strdup(tenant) : NULL;
	j->list = list;
	j->items = items;
	j->fn = fn;
	j->ud = ud;
	j->resp.retry_after = -1;
	j->resp.ratelimit_remaining = -1;
	if (list) {
		j->seen = cJSON_CreateArray();
		j->first = cloud_classify(b->c->cloud, url);
		j->depth = chain_depth(url);
	}
	return j;
}

void az_batch_get(struct az_batch *b, const char *url, const char *tenant, az_batch_fn fn, void *ud)
{
	submit(job_new(b, url, tenant, false, NULL, fn, ud));
}

void az_batch_get_ahead(struct az_batch *b, const char *url, const char *tenant, az_batch_fn fn, void *ud)
{
	struct job *j = job_new(b, url, tenant, false, NULL, fn, ud);

	j->ahead = true;
	submit(j);
}

bool az_answer_start(struct az_answer *a, const struct az_batch *b)
{
	a->o = HTTP_FATAL;
	if (!b) {
		a->f = (struct az_failure){HTTP_FATAL, 0, "InternalError", ""};
		kv_err_set(&a->err, "cannot start concurrent requests");
	}
	return b != NULL;
}

void az_answer_done(void *ud, enum http_outcome o, cJSON *body, const struct az_failure *f, const struct kv_err *err)
{
	struct az_answer *a = ud;

	a->o = o;
	a->body = body;
	if (o != HTTP_OK) {
		a->f = *f;
		a->err = *err;
	}
}

void az_batch_list(struct az_batch *b, const char *url, const char *tenant, cJSON *items, az_batch_fn fn, void *ud)
{
	submit(job_new(b, url, tenant, true, items, fn, ud));
}

void az_batch_list_in(struct az_batch *b, const char *url, const char *tenant, cJSON *items,
                      struct fastjson_arena *a, az_batch_fn fn, void *ud)
{
	struct job *j = job_new(b, url, tenant, true, items, fn, ud);

	j->arena = a;
	submit(j);
}

cJSON *az_batch_ref(cJSON *item)
{
	cJSON *ref = kv_malloc(sizeof(*ref));

	*ref = *item;
	ref->next = ref->prev = NULL;
	ref->string = NULL;
	ref->type = (item->type & ~cJSON_StringIsConst) | cJSON_IsReference;
	return ref;
}

/* Every arena az_batch_kept_arena made, newest first. */
struct kept {
	struct fastjson_arena a;
	struct kept *next;
};
static struct kept *kept;

static void kept_free(void)
{
	while (kept) {
		struct kept *k = kept;

		kept = k->next;
		fastjson_arena_free(&k->a);
		free(k);
	}
}

struct fastjson_arena *az_batch_kept_arena(void)
{
	struct kept *k = kv_calloc(1, sizeof(*k));

	if (!kept)
		atexit(kept_free);
	k->next = kept;
	kept = k;
	return &k->a;
}

void az_batch_query_in(struct az_batch *b, const char *url, const char *tenant, const cJSON *body,
                       struct fastjson_arena *a, az_batch_fn fn, void *ud)
{
	struct job *j = job_new(b, url, tenant, false, NULL, fn, ud);

	j->arena = a;
	j->body = cJSON_PrintUnformatted(body);
	if (!j->body)
		j->body = kv_strdup("{}");
	submit(j);
}

/* A page parsed into an arena stays there: the arena's owner frees it. */
static void page_free(const struct job *j, cJSON *page)
{
	if (!j->arena)
		cJSON_Delete(page);
}

/* A page of a list arrived: its items into j->items, then the next page or the end. */
static void page_done(struct job *j, cJSON *page)
{
	cJSON *value = cJSON_GetObjectItemCaseSensitive(page, "value"), *link;
	const cJSON *it;
	char shown[512];
	int max = j->b->c->max_pages > 0 ? j->b->c->max_pages : 10000;

	url_for_message(j->url, shown, sizeof(shown));
	if (!cJSON_IsArray(value)) {
		kv_err_set(&j->err, "GET %s: $.value: expected an array, got something else", shown);
		fail_code(j, HTTP_FATAL, "MalformedResponse");
		page_free(j, page);
		finish(j, HTTP_FATAL, NULL);
		return;
	}
	cJSON_AddItemToArray(j->seen, cJSON_CreateString(j->url));
	while ((it = value->child) != NULL) {
		cJSON *item = cJSON_DetachItemViaPointer(value, (cJSON *)(uintptr_t)it);

		cJSON_AddItemToArray(j->items, j->arena ? az_batch_ref(item) : item);
	}
	link = cJSON_GetObjectItemCaseSensitive(page, "nextLink");
	if (!cJSON_IsString(link) || !link->valuestring[0]) {
		page_free(j, page);
		finish(j, HTTP_OK, NULL);
		return;
	}
	{
		const cJSON *s;
		bool loop = false;

		cJSON_ArrayForEach(s, j->seen)
			if (strcmp(s->valuestring, link->valuestring) == 0)
				loop = true;
		if (loop || cloud_classify(j->b->c->cloud, link->valuestring) != j->first) {
			url_for_message(link->valuestring, shown, sizeof(shown));
			kv_err_set(&j->err, loop ? "nextLink '%s' repeats a page already read: stopping"
			                         : "nextLink '%s' leaves the endpoint of the first page: not followed", shown);
			fail_code(j, HTTP_FATAL, loop ? "PagingLoop" : "ForeignHost");
			page_free(j, page);
			finish(j, HTTP_FATAL, NULL);
			return;
		}
	}
	if (++j->pages >= max) {
		kv_err_set(&j->err, "GET %s: more than %d pages: stopping", shown, max);
		fail_code(j, HTTP_FATAL, "TooManyPages");
		page_free(j, page);
		finish(j, HTTP_FATAL, NULL);
		return;
	}
	free(j->url);
	j->url = kv_strdup(link->valuestring);
	j->renewed = false;
	page_free(j, page);
	submit(j);
}

void az_batch_run(struct az_batch *b)
{
	void *ud;
	enum http_outcome o;

	while (http_multi_next(b->m, &ud, &o)) {
		struct job *j = ud;
		cJSON *body;
		const char *end = NULL;

		b->c->requests += j->resp.attempts;
		b->c->throttled += j->resp.throttled;
		/* Resource Graph's quota as this answer says it, for the callback (as az_post_json leaves it). */
		if (j->body) {
			b->c->user_quota_remaining = j->resp.user_quota_remaining;
			b->c->user_quota_resets_ms = j->resp.user_quota_resets_ms;
		}
		/* An expired or revoked token: renew it once. */
		if (o == HTTP_UNAUTHORIZED && !j->renewed && j->resp.attempts > 0) {
			j->renewed = true;
			submit(j);
			continue;
		}
		if (o != HTTP_OK) {
			if (j->resp.attempts > 0)
				fail_from_response(j, o);
			else
				fail_code(j, o, http_outcome_name(o));
			finish(j, o, NULL);
			continue;
		}
		if (j->arena)
			body = fastjson_parse(j->resp.body.data ? j->resp.body.data : "", j->resp.body.len, &end, j->arena);
		else
			body = cJSON_ParseWithLengthOpts(j->resp.body.data ? j->resp.body.data : "", j->resp.body.len, &end,
			                                 false);
		if (!body && j->arena) {
			/* Where the text goes wrong, as cJSON says it (fastjson stops at the same byte but does not tell). */
			cJSON_Delete(cJSON_ParseWithLengthOpts(j->resp.body.data ? j->resp.body.data : "", j->resp.body.len, &end,
			                                       false));
		}
		if (!body) {
			char shown[512];
			size_t off = end && j->resp.body.data ? (size_t)(end - j->resp.body.data) : 0;

			url_for_message(j->url, shown, sizeof(shown));
			kv_err_set(&j->err, "%s %s: the response is not valid JSON (at byte %zu of %zu)", j->body ? "POST" : "GET",
			           shown, off, j->resp.body.len);
			fail_code(j, HTTP_FATAL, "MalformedResponse");
			j->fail.status = (int)j->resp.status;
			finish(j, HTTP_FATAL, NULL);
			continue;
		}
		if (j->list)
			page_done(j, body);
		else
			finish(j, HTTP_OK, body);
	}
}
