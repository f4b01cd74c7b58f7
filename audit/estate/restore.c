/*
 * restore.c - restore-readiness facts (see restore.h).
 *
 * Each BEK secret or KEK key URL gets one state:
 *   active       exists, enabled, valid now, not expiring within the warning window
 *   expiring     as active, but exp falls within the warning window
 *   disabled     attributes.enabled is false: Key Vault refuses to return or use it
 *   expired      exp is at or before the audit time
 *   notYetValid  nbf is after the audit time
 *   deleted      soft-deleted, recoverable until scheduledPurgeDate
 *   missing      neither exists nor is deleted (or its purge date has passed)
 * An object whose read failed (errors[] names its URL or an ancestor of it)
 * has no state: its facts are `error`, with what to grant or why the vault
 * was unreachable, never a missing key.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/estate/facts.h"
#include "audit/estate/restore.h"

/* A Unix time as RFC 3339 UTC, or null when 0 (absent). */
static cJSON *time_json(long long t)
{
	char buf[32];
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || !gmtime_r(&tt, &tm))
		return cJSON_CreateNull();
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return cJSON_CreateString(buf);
}

static void add_str(cJSON *o, const char *k, const char *v)
{
	cJSON_AddItemToObject(o, k, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/* The state of an object that exists, from its attributes, as of e->as_of. */
static const char *live_state(const struct estate *e, const struct kv_attributes *a)
{
	if (!a->enabled)
		return "disabled";
	if (a->exp && a->exp <= e->as_of)
		return "expired";
	if (a->nbf && a->nbf > e->as_of)
		return "notYetValid";
	if (a->exp && a->exp - e->as_of <= e->expiry_warning)
		return "expiring";
	return "active";
}

static void add_attributes(cJSON *o, const struct kv_attributes *a)
{
	cJSON_AddBoolToObject(o, "enabled", a->enabled);
	cJSON_AddItemToObject(o, "exp", time_json(a->exp));
	cJSON_AddItemToObject(o, "nbf", time_json(a->nbf));
	add_str(o, "recoveryLevel", a->recovery_level);
}

/* A KEK that ADE can use: an RSA key (software or HSM) allowing wrapKey and unwrapKey. */
static bool key_suitable(const char *kty, const cJSON *ops)
{
	bool wrap = false, unwrap = false;
	const cJSON *it;

	if (!kv_streq_ci(kty, "RSA") && !kv_streq_ci(kty, "RSA-HSM"))
		return false;
	cJSON_ArrayForEach(it, ops) {
		if (kv_streq_ci(cJSON_GetStringValue(it), "wrapKey"))
			wrap = true;
		if (kv_streq_ci(cJSON_GetStringValue(it), "unwrapKey"))
			unwrap = true;
	}
	return wrap && unwrap;
}

/*
 * Why an object could not be read, and what to do about it: a firewall
 * (unreachable, not missing), a lack of data-plane rights (what to grant),
 * or the error as recorded.
 */
static void unreadable(cJSON *un, const char *prefix, bool secret, const char *url, const char *vault,
                       const struct estate_error *err)
{
	const char *code = err->code ? err->code : "error", *msg = err->message ? err->message : "no message";

	if (kv_streq_ci(code, "ForbiddenByFirewall"))
		facts_unavailable(un, prefix, "error",
		            "key vault %s is unreachable: its firewall refused kvaudit's data-plane request for '%s' "
		            "(403 ForbiddenByFirewall); run kvaudit from a network the vault allows, or add that "
		            "address to the vault's firewall", vault, url);
	else if (err->status == 403)
		facts_unavailable(un, prefix, "error",
		            "the caller lacks data-plane rights on key vault %s (403 %s reading '%s'): grant it the "
		            "access policy '%s' or, on an RBAC vault, the role Key Vault Reader (data action %s)",
		            vault, code, url, secret ? "secrets: get, list" : "keys: get, list",
		            secret ? "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
		                   : "Microsoft.KeyVault/vaults/keys/read");
	else
		facts_unavailable(un, prefix, "error", "the metadata of '%s' could not be read: %d %s: %s", url, err->status,
		            code, msg);
}

struct lists {
	cJSON *details, *missing, *deleted, *unusable, *expiring, *unsuitable;
};

/* Classifies one URL into the lists; false when it could not be read (un says why). */
static bool classify(const struct estate *e, bool secret, const char *url, const char *vault, const char *prefix,
                     struct lists *l, cJSON *un)
{
	cJSON *d = cJSON_CreateObject();
	const struct kv_attributes *attr = NULL;
	const struct deleted_item *del;
	const struct estate_error *err;
	const char *state = NULL, *kty = NULL;
	const cJSON *ops = NULL;
	bool managed = false, known_type = false;

	add_str(d, "url", url);
	if (secret) {
		const struct secret_item *s = estate_secret(e, url);

		if (s) {
			attr = &s->attr;
			managed = s->managed;
		}
		del = attr ? NULL : estate_deleted_secret(e, url);
	} else {
		const struct key_bundle *k = estate_key(e, url);

		if (k) {
			attr = &k->attr;
			managed = k->managed;
			kty = k->kty;
			ops = k->key_ops;
			known_type = true;
		}
		del = attr ? NULL : estate_deleted_key(e, url);
	}
	if (attr) {
		state = live_state(e, attr);
	} else if (del) {
		attr = &del->attr;
		managed = del->managed;
		if (!secret) {
			kty = del->kty;
			ops = del->key_ops;
			known_type = true;
		}
		/* Soft delete keeps it only until its purge date. */
		state = del->scheduled_purge_date && del->scheduled_purge_date <= e->as_of ? "missing" : "deleted";
	} else if ((err = estate_error_for_url(e, url))) {
		unreadable(un, prefix, secret, url, vault, err);
		cJSON_Delete(d);
		return false;
	} else {
		state = "missing";
	}
	add_str(d, "state", state);
	if (attr)
		add_attributes(d, attr);
	if (!secret) {
		add_str(d, "kty", kty);
		cJSON_AddItemToObject(d, "keyOps", ops ? cJSON_Duplicate(ops, true) : cJSON_CreateNull());
	}
	if (attr)
		cJSON_AddBoolToObject(d, "managed", managed);
	if (del) {
		cJSON_AddItemToObject(d, "deletedDate", time_json(del->deleted_date));
		cJSON_AddItemToObject(d, "scheduledPurgeDate", time_json(del->scheduled_purge_date));
		add_str(d, "recoveryId", del->recovery_id);
	}
	cJSON_AddItemToArray(l->details, d);
	if (strcmp(state, "missing") == 0)
		cJSON_AddItemToArray(l->missing, cJSON_CreateString(url));
	else if (strcmp(state, "deleted") == 0)
		cJSON_AddItemToArray(l->deleted, cJSON_CreateString(url));
	else if (strcmp(state, "expiring") == 0)
		cJSON_AddItemToArray(l->expiring, cJSON_CreateString(url));
	else if (strcmp(state, "active") != 0)
		cJSON_AddItemToArray(l->unusable, cJSON_CreateString(url));
	if (l->unsuitable && known_type && !key_suitable(kty, ops))
		cJSON_AddItemToArray(l->unsuitable, cJSON_CreateString(url));
	return true;
}

static void one_kind(const struct estate *e, bool secret, const char *vault, bool holds, const cJSON *urls,
                     cJSON *b, cJSON *un)
{
	const char *name = secret ? "bek" : "kek", *prefix = secret ? "binding.bek" : "binding.kek";
	cJSON *o = cJSON_AddObjectToObject(b, name);
	struct lists l = {cJSON_CreateArray(), cJSON_CreateArray(), cJSON_CreateArray(), cJSON_CreateArray(),
	                  cJSON_CreateArray(), secret ? NULL : cJSON_CreateArray()};
	bool collected = secret ? e->present.secrets : e->present.keys;
	const cJSON *it;

	cJSON_AddItemToObject(o, secret ? "secrets" : "keys", l.details);
	cJSON_AddItemToObject(o, "missing", l.missing);
	cJSON_AddItemToObject(o, "deleted", l.deleted);
	cJSON_AddItemToObject(o, "unusable", l.unusable);
	cJSON_AddItemToObject(o, "expiring", l.expiring);
	if (l.unsuitable)
		cJSON_AddItemToObject(o, "unsuitable", l.unsuitable);
	if (!holds)
		return;
	if (!collected) {
		facts_unavailable(un, prefix, "skipped", "%s were not collected (scan with --data-plane)",
		            secret ? "BEK secret metadata" : "KEK key bundles");
		return;
	}
	if (cJSON_GetArraySize(urls) == 0) {
		facts_unavailable(un, prefix, "skipped",
		            "the %s URL is not known (only the ADE extension names key vault %s), so it was not checked",
		            secret ? "BEK secret" : "KEK", vault);
		return;
	}
	cJSON_ArrayForEach(it, urls)
		if (cJSON_IsString(it))
			(void)classify(e, secret, it->valuestring, vault, prefix, &l, un);
	/* A KEK without key_ops in the snapshot cannot be judged suitable or not. */
	if (!secret)
		cJSON_ArrayForEach(it, l.details) {
			const cJSON *ops = cJSON_GetObjectItemCaseSensitive(it, "keyOps");
			const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "state"));

			if (!kv_streq_ci(st, "missing") && !cJSON_IsArray(ops))
				facts_unavailable(un, "binding.kek.unsuitable", "skipped",
				            "the key bundle of '%s' has no key_ops",
				            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "url")));
		}
}

void restore_facts(const struct estate *e, const char *vault_name, bool holds_bek, bool holds_kek,
                   const cJSON *secret_urls, const cJSON *key_urls, cJSON *b, cJSON *un)
{
	const char *v = vault_name ? vault_name : "(unknown)";

	one_kind(e, true, v, holds_bek, secret_urls, b, un);
	one_kind(e, false, v, holds_kek, key_urls, b, un);
}
