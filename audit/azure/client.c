/* client.c - see client.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/azure/client.h"
#include "audit/azure/parse.h"

static void fail_set(struct az_failure *f, enum http_outcome o, const struct http_response *r)
{
	struct azure_error ae;

	if (!f)
		return;
	memset(f, 0, sizeof(*f));
	f->outcome = o;
	if (!r)
		return;
	f->status = (int)r->status;
	if (r->body.len) {
		azure_error_parse(r->body.data, r->body.len, (int)r->status, &ae);
		/* Key Vault's innererror code says why (ForbiddenByFirewall, ForbiddenByRbac, …); keep that one. */
		kv_strlcpy(f->code, ae.inner[0] ? ae.inner : ae.code, sizeof(f->code));
		kv_strlcpy(f->message, ae.message, sizeof(f->message));
	}
}

/* The URL without its query (which may hold a $skiptoken), for messages. */
static void url_for_message(const char *url, char *out, size_t n)
{
	size_t len = strcspn(url, "?#");

	snprintf(out, n, "%.*s", (int)(len < n ? len : n - 1), url);
}

/*
 * One authenticated request: the token its host calls for (renewed once on
 * 401), an optional JSON body, and the response parsed when it has one.
 */
static enum http_outcome az_send(struct az_client *c, const char *method, const char *url, const char *tenant,
                                 const cJSON *body, bool want_body, cJSON **out, struct az_failure *fail,
                                 struct kv_err *err)
{
	enum cloud_target t = cloud_classify(c->cloud, url);
	char *scope = NULL, *text = NULL;
	const char *token;
	struct http_response r;
	enum http_outcome o = HTTP_FATAL;
	const char *end = NULL;
	char shown[512];
	const char *const get_headers[] = {"Accept: application/json", NULL};
	const char *const body_headers[] = {"Accept: application/json", "Content-Type: application/json", NULL};

	if (out)
		*out = NULL;
	memset(&r, 0, sizeof(r));
	url_for_message(url, shown, sizeof(shown));
	if (t == TARGET_NONE || t == TARGET_LOGIN || !(scope = cloud_scope(c->cloud, t))) {
		kv_err_set(err, "refusing to send a token to '%s': it is not an endpoint of cloud %s", shown,
		           c->cloud->name);
		fail_set(fail, HTTP_FATAL, NULL);
		if (fail)
			snprintf(fail->code, sizeof(fail->code), "ForeignHost");
		return HTTP_FATAL;
	}
	if (body)
		text = cJSON_PrintUnformatted(body);
	for (int attempt = 0; attempt < 2; attempt++) {
		token = credential_token(c->cred, scope, tenant, attempt > 0, err);
		if (!token) {
			fail_set(fail, HTTP_UNAUTHORIZED, NULL);
			if (fail) {
				snprintf(fail->code, sizeof(fail->code), "TokenUnavailable");
				kv_strlcpy(fail->message, err->msg, sizeof(fail->message));
			}
			o = HTTP_UNAUTHORIZED;
			goto out;
		}
		http_response_release(&r);
		/* The only POST kvaudit sends through here is a Resource Graph query: a read. */
		if (strcmp(method, "POST") == 0)
			o = http_query(c->http, url, token, body_headers, text, text ? strlen(text) : 0, &r, err);
		else
			o = http_request(c->http, method, url, token, text ? body_headers : get_headers,
			                 text, text ? strlen(text) : 0, &r, err);
		c->requests += r.attempts;
		c->throttled += r.throttled;
		c->user_quota_remaining = r.user_quota_remaining;
		c->user_quota_resets_ms = r.user_quota_resets_ms;
		/* An expired or revoked token: renew it once. */
		if (o != HTTP_UNAUTHORIZED)
			break;
	}
	if (o != HTTP_OK) {
		fail_set(fail, o, &r);
		goto out;
	}
	if (!out || (!want_body && r.body.len == 0))
		goto out;
	*out = cJSON_ParseWithLengthOpts(r.body.data ? r.body.data : "", r.body.len, &end, false);
	if (!*out) {
		size_t off = end && r.body.data ? (size_t)(end - r.body.data) : 0;

		kv_err_set(err, "%s %s: the response is not valid JSON (at byte %zu of %zu)", method, shown, off,
		           r.body.len);
		fail_set(fail, HTTP_FATAL, &r);
		if (fail) {
			snprintf(fail->code, sizeof(fail->code), "MalformedResponse");
			kv_strlcpy(fail->message, err->msg, sizeof(fail->message));
		}
		o = HTTP_FATAL;
	}
out:
	http_response_release(&r);
	free(text);
	free(scope);
	return o;
}

enum http_outcome az_get_json(struct az_client *c, const char *url, const char *tenant, cJSON **out,
                              struct az_failure *fail, struct kv_err *err)
{
	return az_send(c, "GET", url, tenant, NULL, true, out, fail, err);
}

enum http_outcome az_put_json(struct az_client *c, const char *url, const char *tenant, const cJSON *body,
                              cJSON **out, struct az_failure *fail, struct kv_err *err)
{
	return az_send(c, "PUT", url, tenant, body, false, out, fail, err);
}

enum http_outcome az_patch_json(struct az_client *c, const char *url, const char *tenant, const cJSON *body,
                                cJSON **out, struct az_failure *fail, struct kv_err *err)
{
	return az_send(c, "PATCH", url, tenant, body, false, out, fail, err);
}

enum http_outcome az_post_json(struct az_client *c, const char *url, const char *tenant, const cJSON *body,
                               cJSON **out, struct az_failure *fail, struct kv_err *err)
{
	return az_send(c, "POST", url, tenant, body, true, out, fail, err);
}

enum http_outcome az_delete(struct az_client *c, const char *url, const char *tenant, struct az_failure *fail,
                            struct kv_err *err)
{
	return az_send(c, "DELETE", url, tenant, NULL, false, NULL, fail, err);
}

enum http_outcome az_list(struct az_client *c, const char *url, const char *tenant, cJSON *items,
                          struct az_failure *fail, struct kv_err *err)
{
	enum cloud_target first = cloud_classify(c->cloud, url);
	cJSON *seen = cJSON_CreateArray();
	char *next = kv_strdup(url);
	enum http_outcome o = HTTP_OK;
	int pages = 0, max = c->max_pages > 0 ? c->max_pages : 10000;

	while (next) {
		cJSON *page = NULL, *value, *link;
		const cJSON *it;
		char shown[512];

		url_for_message(next, shown, sizeof(shown));
		if (++pages > max) {
			kv_err_set(err, "GET %s: more than %d pages: stopping", shown, max);
			o = HTTP_FATAL;
			break;
		}
		o = az_get_json(c, next, tenant, &page, fail, err);
		if (o != HTTP_OK)
			break;
		cJSON_AddItemToArray(seen, cJSON_CreateString(next));
		free(next);
		next = NULL;
		value = cJSON_GetObjectItemCaseSensitive(page, "value");
		if (!cJSON_IsArray(value)) {
			kv_err_set(err, "GET %s: $.value: expected an array, got something else", shown);
			cJSON_Delete(page);
			o = HTTP_FATAL;
			if (fail) {
				memset(fail, 0, sizeof(*fail));
				fail->outcome = o;
				snprintf(fail->code, sizeof(fail->code), "MalformedResponse");
				kv_strlcpy(fail->message, err->msg, sizeof(fail->message));
			}
			break;
		}
		while ((it = value->child) != NULL)
			cJSON_AddItemToArray(items, cJSON_DetachItemViaPointer(value, (cJSON *)(uintptr_t)it));
		link = cJSON_GetObjectItemCaseSensitive(page, "nextLink");
		if (cJSON_IsString(link) && link->valuestring[0]) {
			const cJSON *s;
			bool loop = false;

			cJSON_ArrayForEach(s, seen)
				if (strcmp(s->valuestring, link->valuestring) == 0)
					loop = true;
			if (loop || cloud_classify(c->cloud, link->valuestring) != first) {
				url_for_message(link->valuestring, shown, sizeof(shown));
				kv_err_set(err, loop ? "nextLink '%s' repeats a page already read: stopping"
				                     : "nextLink '%s' leaves the endpoint of the first page: not followed", shown);
				o = HTTP_FATAL;
				if (fail) {
					memset(fail, 0, sizeof(*fail));
					fail->outcome = o;
					snprintf(fail->code, sizeof(fail->code), loop ? "PagingLoop" : "ForeignHost");
					kv_strlcpy(fail->message, err->msg, sizeof(fail->message));
				}
				cJSON_Delete(page);
				break;
			}
			next = kv_strdup(link->valuestring);
		}
		cJSON_Delete(page);
	}
	free(next);
	cJSON_Delete(seen);
	return o;
}

void az_failure_record(cJSON *errors, const char *scope, const struct az_failure *f, const char *fallback)
{
	cJSON *e = cJSON_CreateObject();
	char shown[1024];

	url_for_message(scope, shown, sizeof(shown));
	cJSON_AddStringToObject(e, "scope", shown);
	if (f && f->status)
		cJSON_AddNumberToObject(e, "status", f->status);
	else
		cJSON_AddNullToObject(e, "status");
	cJSON_AddStringToObject(e, "code", f && f->code[0] ? f->code : http_outcome_name(f ? f->outcome : HTTP_FATAL));
	cJSON_AddStringToObject(e, "message", f && f->message[0] ? f->message : fallback ? fallback : "");
	cJSON_AddItemToArray(errors, e);
}
