/*
 * collect_dataplane.c - the Key Vault data plane part of a live collection
 * (--data-plane): for every BEK secret URL and KEK key URL an ADE disk
 * names, the value-free metadata the restore-readiness and
 * certificate-backed checks read (docs/estate.md):
 *
 *   secrets         the SecretItem of the named version, from Get Secret
 *                   Versions (GET {vault}/secrets/{name}/versions): ID and
 *                   attributes only.  A secret's value is a disk encryption
 *                   key: no request that returns one (Get Secret, Get Deleted
 *                   Secret) is ever made.
 *   deletedSecrets  DeletedSecretItems from Get Deleted Secrets
 *                   (GET {vault}/deletedsecrets, value-free), read once per
 *                   vault, only when a BEK secret was not found.
 *   keys            KeyBundles (GET {vault}/keys/{name}/{version}; public
 *                   material only).
 *   deletedKeys     DeletedKeyBundles (GET {vault}/deletedkeys/{name}) of
 *                   KEKs that were not found.
 *
 * Every request goes only to a host under the cloud's Key Vault suffix, with
 * a token for the vault's own tenant; a name or version that is not plain
 * Key Vault syntax is recorded and never requested.  A not-found object is
 * not an error (the snapshot's lists say what exists); any other failure
 * (403 without data-plane rights, 403 ForbiddenByFirewall, …) is recorded in
 * errors[] with the object's URL as scope.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/azure/collect_internal.h"
#include "audit/estate/estate.h"

/* Key Vault object names (1-127) and versions (32 hex digits today): only [0-9A-Za-z-]. */
static bool kv_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 127)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      s[i] == '-'))
			return false;
	return true;
}

/*
 * Splits https://{host}/{kind}/{name}/{version} into its origin
 * ("https://host[:port]"), name and version.  False for anything else.
 */
static bool split_object_url(const char *url, const char *kind, char *origin, size_t no, char *name, size_t nn,
                             char *version, size_t nv)
{
	const char *h, *p, *v;
	size_t lh, lk = strlen(kind), ln, lv;

	if (!url || !kv_startswith_ci(url, "https://"))
		return false;
	h = url + strlen("https://");
	lh = strcspn(h, "/?#");
	p = h + lh;
	if (lh == 0 || *p != '/' || strncasecmp(p + 1, kind, lk) != 0 || p[1 + lk] != '/')
		return false;
	p += 2 + lk;
	ln = strcspn(p, "/?#");
	v = p + ln;
	if (*v != '/')
		return false;
	v++;
	lv = strcspn(v, "/?#");
	if (v[lv] != '\0' || !kv_name_ok(p, ln) || !kv_name_ok(v, lv) ||
	    strlen("https://") + lh >= no || ln >= nn || lv >= nv)
		return false;
	snprintf(origin, no, "https://%.*s", (int)lh, h);
	snprintf(name, nn, "%.*s", (int)ln, p);
	snprintf(version, nv, "%.*s", (int)lv, v);
	return true;
}

static void record(struct run *r, const char *scope, const char *code, const char *message)
{
	struct az_failure f = {HTTP_FATAL, 0, "", ""};

	kv_strlcpy(f.code, code, sizeof(f.code));
	kv_strlcpy(f.message, message, sizeof(f.message));
	run_record(r, scope, &f, NULL);
}

/* True when url may be requested: under the cloud's Key Vault suffix (else recorded). */
static bool kv_host_ok(struct run *r, const char *scope, const char *url)
{
	char msg[512];

	if (cloud_classify(r->c->cloud, url) == TARGET_KEYVAULT)
		return true;
	snprintf(msg, sizeof(msg), "URL is not under the cloud's Key Vault suffix '%s': not requested",
	         r->c->cloud->keyvault_suffix);
	record(r, scope, "ForeignHost", msg);
	return false;
}

struct dp {
	struct run *r;
	cJSON *secrets, *deleted_secrets, *deleted_keys;
	cJSON *done;          /* URLs already handled */
	cJSON *deleted_read;  /* origin -> true (read) / false (failed): deleted-secret lists */
	cJSON *deleted_list;  /* every DeletedSecretItem read */
};

static bool seen(struct dp *d, const char *url)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, d->done)
		if (kv_streq_ci(it->valuestring, url))
			return true;
	cJSON_AddItemToArray(d->done, cJSON_CreateString(url));
	return false;
}

/* A deleted secret's name: the last segment of its id ("https://kv/secrets/NAME"). */
static bool deleted_name_is(const cJSON *item, const char *name)
{
	const char *id = jstr(item, "id"), *slash;

	if (!id || !(slash = strstr(id, "/secrets/")))
		return false;
	slash += strlen("/secrets/");
	return strncasecmp(slash, name, strlen(name)) == 0 && (slash[strlen(name)] == '\0' || slash[strlen(name)] == '/');
}

/* Looks for a not-found BEK secret among the vault's deleted secrets (the list is read once per vault). */
static void find_deleted_secret(struct dp *d, const char *url, const char *origin, const char *name,
                                const char *tenant)
{
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(d->deleted_read, origin), *it;

	if (!state) {
		char *list = kv_asprintf("%s/deletedsecrets?api-version=%s", origin, API_KEYVAULT_DATA);
		struct az_failure f;
		struct kv_err err = {{0}};
		cJSON *items = cJSON_CreateArray();
		bool ok = kv_host_ok(d->r, url, list);

		if (ok && az_list(d->r->c, list, tenant, items, &f, &err) != HTTP_OK) {
			run_record(d->r, url, &f, &err);
			ok = false;
		}
		if (ok) {
			cJSON *x;

			while ((x = cJSON_DetachItemFromArray(items, 0)))
				cJSON_AddItemToArray(d->deleted_list, x);
		}
		cJSON_Delete(items);
		free(list);
		cJSON_AddBoolToObject(d->deleted_read, origin, ok);
		state = cJSON_GetObjectItemCaseSensitive(d->deleted_read, origin);
	} else if (cJSON_IsFalse(state)) {
		/* The list failed for an earlier secret of this vault: this one is not known either. */
		record(d->r, url, "DeletedSecretsUnreadable",
		       "the secret was not found and the vault's deleted secrets could not be read (see the vault's other errors)");
		return;
	}
	if (!cJSON_IsTrue(state))
		return;
	cJSON_ArrayForEach(it, d->deleted_list) {
		const char *id = jstr(it, "id");

		if (id && kv_startswith_ci(id, origin) && id[strlen(origin)] == '/' && deleted_name_is(it, name)) {
			if (!json_has_id(d->deleted_secrets, id))
				cJSON_AddItemToArray(d->deleted_secrets, cJSON_Duplicate(it, true));
			return;
		}
	}
}

/* The SecretItem of one BEK secret version, from its versions list (never its value). */
static void secret_metadata(struct dp *d, const char *url, const char *tenant)
{
	char origin[300], name[128], version[64];
	char *list;
	struct az_failure f;
	struct kv_err err = {{0}};
	cJSON *items, *it;
	enum http_outcome o;

	if (seen(d, url) || !kv_host_ok(d->r, url, url))
		return;
	if (!split_object_url(url, "secrets", origin, sizeof(origin), name, sizeof(name), version, sizeof(version))) {
		record(d->r, url, "InvalidSecretUrl",
		       "not a Key Vault secret URL (https://{vault}/secrets/{name}/{version}): not requested");
		return;
	}
	list = kv_asprintf("%s/secrets/%s/versions?api-version=%s", origin, name, API_KEYVAULT_DATA);
	if (!kv_host_ok(d->r, url, list)) {
		free(list);
		return;
	}
	items = cJSON_CreateArray();
	o = az_list(d->r->c, list, tenant, items, &f, &err);
	if (o == HTTP_OK) {
		cJSON_ArrayForEach(it, items) {
			const char *id = jstr(it, "id");

			/* Only the version the disk names, and never a value even if a server sent one. */
			if (id && kv_streq_ci(id, url) && !json_has_id(d->secrets, id)) {
				cJSON *copy = cJSON_Duplicate(it, true);

				cJSON_DeleteItemFromObjectCaseSensitive(copy, "value");
				cJSON_AddItemToArray(d->secrets, copy);
				break;
			}
		}
	} else if (o == HTTP_NOT_FOUND) {
		find_deleted_secret(d, url, origin, name, tenant);
	} else {
		run_record(d->r, url, &f, &err);
	}
	cJSON_Delete(items);
	free(list);
}

/* The KeyBundle of one KEK (public material only), or its DeletedKeyBundle when deleted. */
static void key_bundle(struct dp *d, const char *url, const char *tenant)
{
	char origin[300], name[128], version[64];
	char *get;
	struct az_failure f;
	struct kv_err err = {{0}};
	cJSON *bundle = NULL;
	enum http_outcome o;

	if (seen(d, url) || !kv_host_ok(d->r, url, url))
		return;
	if (!split_object_url(url, "keys", origin, sizeof(origin), name, sizeof(name), version, sizeof(version))) {
		record(d->r, url, "InvalidKeyUrl", "not a Key Vault key URL (https://{vault}/keys/{name}/{version}): not requested");
		return;
	}
	get = kv_asprintf("%s/keys/%s/%s?api-version=%s", origin, name, version, API_KEYVAULT_DATA);
	if (!kv_host_ok(d->r, url, get)) {
		free(get);
		return;
	}
	o = az_get_json(d->r->c, get, tenant, &bundle, &f, &err);
	free(get);
	if (o == HTTP_OK) {
		cJSON_AddItemToArray(d->r->keys, bundle);
		return;
	}
	cJSON_Delete(bundle);
	bundle = NULL;
	if (o != HTTP_NOT_FOUND) {
		run_record(d->r, url, &f, &err);
		return;
	}
	get = kv_asprintf("%s/deletedkeys/%s?api-version=%s", origin, name, API_KEYVAULT_DATA);
	o = az_get_json(d->r->c, get, tenant, &bundle, &f, &err);
	free(get);
	if (o == HTTP_OK)
		cJSON_AddItemToArray(d->deleted_keys, bundle);
	else
		cJSON_Delete(bundle);
	/* Not found among the deleted keys either: missing, which the snapshot says by its absence. */
	if (o != HTTP_OK && o != HTTP_NOT_FOUND)
		run_record(d->r, url, &f, &err);
}

void collect_data_plane(struct run *r)
{
	char *text = cJSON_PrintUnformatted(r->doc);
	struct kv_err err = {{0}};
	struct estate *e = estate_parse(text, strlen(text), "collected estate", NULL, &err);
	struct dp d = {r, NULL, NULL, NULL, cJSON_CreateArray(), cJSON_CreateObject(), cJSON_CreateArray()};

	free(text);
	d.secrets = cJSON_AddArrayToObject(r->doc, "secrets");
	d.deleted_secrets = cJSON_AddArrayToObject(r->doc, "deletedSecrets");
	d.deleted_keys = cJSON_AddArrayToObject(r->doc, "deletedKeys");
	if (!e) {
		record(r, "keys", "InternalError", err.msg);
		goto out;
	}
	for (size_t i = 0; i < e->nvms; i++) {
		const struct ade_info *a = &e->vms[i].ade;

		for (size_t k = 0; a->encrypted && k < a->nvolumes; k++) {
			const struct ade_volume *vol = &a->volumes[k];
			const struct vault *bv = vol->bek_vault ? estate_vault(e, vol->bek_vault) : NULL;
			const struct vault *kv = vol->kek_vault ? estate_vault(e, vol->kek_vault) : NULL;

			if (!bv && vol->secret_url)
				bv = estate_vault_by_url(e, vol->secret_url);
			if (!kv && vol->key_url)
				kv = estate_vault_by_url(e, vol->key_url);
			if (vol->secret_url)
				secret_metadata(&d, vol->secret_url, bv ? bv->tenant_id : NULL);
			if (vol->key_url)
				key_bundle(&d, vol->key_url, kv ? kv->tenant_id : NULL);
		}
	}
out:
	cJSON_Delete(d.done);
	cJSON_Delete(d.deleted_read);
	cJSON_Delete(d.deleted_list);
	estate_free(e);
}
