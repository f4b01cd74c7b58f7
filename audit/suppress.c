/* suppress.c - see suppress.h. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <pcre2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/suppress.h"
#include "audit/util/json.h"

#define SUPPRESSIONS_MAX_BYTES (16u << 20)

struct suppression {
	char *rule, *resource, *reason, *owner, *expires;
	pcre2_code *re;
	bool expired;
	atomic_int hits;             /* the audit matches on two threads (audit.c) */
};

static void release_one(struct suppression *x)
{
	free(x->rule);
	free(x->resource);
	free(x->reason);
	free(x->owner);
	free(x->expires);
	pcre2_code_free(x->re);
}

void suppressions_release(struct suppressions *s)
{
	for (size_t i = 0; i < s->n; i++)
		release_one(&s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static bool date_ok(const char *d)
{
	int y, m, day;
	char tail;

	if (!d || strlen(d) != 10 || sscanf(d, "%4d-%2d-%2d%c", &y, &m, &day, &tail) != 3)
		return false;
	return d[4] == '-' && d[7] == '-' && y >= 2000 && m >= 1 && m <= 12 && day >= 1 && day <= 31;
}

static const char *field(const cJSON *o, const char *k, bool required, const char *name, int i,
                         struct kv_err *err, bool *bad)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);

	if (*bad)
		return NULL;
	if ((!j || cJSON_IsNull(j)) && !required)
		return NULL;
	if (!cJSON_IsString(j) || !j->valuestring[0]) {
		kv_err_set(err, "%s: $.suppressions[%d].%s: expected a non-empty string, got %s", name, i, k,
		           json_type_name(j));
		*bad = true;
		return NULL;
	}
	return j->valuestring;
}

bool suppressions_parse(const char *text, size_t len, const char *name, const struct rule_catalog *cat,
                        const char *today, struct suppressions *out, struct kv_err *err)
{
	cJSON *doc = NULL;
	const cJSON *list, *it;
	const char *end = NULL;
	bool ok = false;
	int i = 0;

	memset(out, 0, sizeof(*out));
	if (today) {
		snprintf(out->today, sizeof(out->today), "%s", today);
	} else {
		time_t t = time(NULL);
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(out->today, sizeof(out->today), "%Y-%m-%d", &tm);
	}
	doc = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!doc) {
		kv_err_set(err, "%s: invalid JSON at byte %zu", name, end ? (size_t)(end - text) : 0);
		goto out;
	}
	if (!kv_streq_ci(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "kind")), "kvaudit.suppressions")) {
		kv_err_set(err, "%s: $.kind: expected \"kvaudit.suppressions\": not a suppressions file", name);
		goto out;
	}
	list = cJSON_GetObjectItemCaseSensitive(doc, "suppressions");
	if (!cJSON_IsArray(list)) {
		kv_err_set(err, "%s: $.suppressions: expected an array, got %s", name, json_type_name(list));
		goto out;
	}
	out->v = kv_calloc((size_t)cJSON_GetArraySize(list), sizeof(*out->v));
	cJSON_ArrayForEach(it, list) {
		struct suppression *x = &out->v[out->n];
		bool bad = false;
		const char *rule = field(it, "rule", true, name, i, err, &bad);
		const char *res = field(it, "resource", true, name, i, err, &bad);
		const char *reason = field(it, "reason", true, name, i, err, &bad);
		const char *owner = field(it, "owner", true, name, i, err, &bad);
		const char *expires = field(it, "expires", true, name, i, err, &bad);
		int code;
		PCRE2_SIZE off;

		if (bad)
			goto out;
		if (!rule_catalog_find(cat, rule)) {
			kv_err_set(err, "%s: $.suppressions[%d].rule: no rule '%s' (see 'kvaudit rules list')", name, i, rule);
			goto out;
		}
		if (!date_ok(expires)) {
			kv_err_set(err, "%s: $.suppressions[%d].expires: expected a date YYYY-MM-DD, got \"%.40s\"", name, i,
			           expires);
			goto out;
		}
		x->re = pcre2_compile((PCRE2_SPTR)res, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS | PCRE2_UTF, &code, &off, NULL);
		if (!x->re) {
			PCRE2_UCHAR msg[160];

			pcre2_get_error_message(code, msg, sizeof(msg));
			kv_err_set(err, "%s: $.suppressions[%d].resource: bad pattern at offset %zu: %s", name, i, (size_t)off,
			           (const char *)msg);
			goto out;
		}
		x->rule = kv_strdup(rule);
		x->resource = kv_strdup(res);
		x->reason = kv_strdup(reason);
		x->owner = kv_strdup(owner);
		x->expires = kv_strdup(expires);
		/* A suppression is valid through its expiry date. */
		x->expired = strcmp(out->today, expires) > 0;
		out->n++;
		i++;
	}
	ok = true;
out:
	cJSON_Delete(doc);
	if (!ok)
		suppressions_release(out);
	return ok;
}

bool suppressions_load(const char *path, const struct rule_catalog *cat, const char *today,
                       struct suppressions *out, struct kv_err *err)
{
	size_t len = 0;
	char *text = kv_read_file(path, SUPPRESSIONS_MAX_BYTES, &len, err);
	bool ok;

	memset(out, 0, sizeof(*out));
	if (!text)
		return false;
	ok = suppressions_parse(text, len, path, cat, today, out, err);
	free(text);
	return ok;
}

static bool matches(const pcre2_code *re, const char *s)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	int rc = pcre2_match(re, (PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL);

	pcre2_match_data_free(md);
	return rc >= 0;
}

cJSON *suppressions_match(struct suppressions *s, const char *rule, const char *const *ids, size_t nids)
{
	for (size_t i = 0; s && i < s->n; i++) {
		struct suppression *x = &s->v[i];
		bool hit = false;
		cJSON *o;

		if (!kv_streq_ci(x->rule, rule))
			continue;
		for (size_t k = 0; k < nids && !hit; k++)
			hit = ids[k] && matches(x->re, ids[k]);
		if (!hit)
			continue;
		x->hits++;
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "resource", x->resource);
		cJSON_AddStringToObject(o, "reason", x->reason);
		cJSON_AddStringToObject(o, "owner", x->owner);
		cJSON_AddStringToObject(o, "expires", x->expires);
		cJSON_AddBoolToObject(o, "expired", x->expired);
		return o;
	}
	return NULL;
}

void suppressions_each_expired_hit(const struct suppressions *s, void (*warn)(const char *line, void *arg),
                                   void *arg)
{
	for (size_t i = 0; s && i < s->n; i++) {
		const struct suppression *x = &s->v[i];
		char line[600];

		if (!x->expired || x->hits == 0)
			continue;
		snprintf(line, sizeof(line),
		         "suppression of %s for '%.120s' (owner %.80s) expired on %s: its %d finding(s) count again",
		         x->rule, x->resource, x->owner, x->expires, x->hits);
		warn(line, arg);
	}
}
