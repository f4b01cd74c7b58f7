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
 * errors[] with the object's URL as scope.  The reads run at once
 * (--concurrency, through the run's batch), in two rounds: every object,
 * then what was not found.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/azure/batch.h"
#include "audit/azure/collect_internal.h"
#include "audit/estate/estate.h"
#include "audit/util/idmap.h"

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

/* Whether url may be requested: under the cloud's Key Vault suffix. */
static bool kv_host_ok(const struct run *r, const char *url)
{
	return cloud_classify(r->c->cloud, url) == TARGET_KEYVAULT;
}

/* What a URL outside the cloud's Key Vault suffix records (it is never requested). */
static void record_foreign(struct run *r, const char *scope)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "URL is not under the cloud's Key Vault suffix '%s': not requested",
	         r->c->cloud->keyvault_suffix);
	record(r, scope, "ForeignHost", msg);
}

/*
 * One request's answer, kept until the objects are judged in the order the
 * disks name them: the requests run at once (--concurrency, batch.h) and
 * finish in any order, but errors[] and the lists of the snapshot do not
 * depend on which came first.
 */
struct fetch {
	struct az_answer a;
	cJSON *items;   /* a list's */
};

/* Queues a GET (list false) or a list into x; without a batch, x is a failure at once. */
static void fetch_queue(struct run *r, struct fetch *x, const char *url, const char *tenant, bool list)
{
	struct az_batch *b = run_batch(r);

	if (list)
		x->items = cJSON_CreateArray();
	if (!az_answer_start(&x->a, b))
		return;
	if (list)
		az_batch_list(b, url, tenant, x->items, az_answer_done, &x->a);
	else
		az_batch_get(b, url, tenant, az_answer_done, &x->a);
}

static void fetch_release(struct fetch *x)
{
	cJSON_Delete(x->a.body);
	cJSON_Delete(x->items);
}

/* A BEK secret URL or a KEK key URL an ADE disk names, and what was read of it. */
struct obj {
	const char *url, *tenant;   /* the estate's */
	bool key;
	const char *bad;            /* "ForeignHost", "InvalidSecretUrl" or "InvalidKeyUrl": not requested */
	char *req;                  /* its first read: a secret's versions list, a key's bundle */
	char origin[300], name[128], version[64];
	size_t vault;               /* a secret's index in dp.vaults */
	size_t twin;                /* the next object obj_ix files under this URL (index + 1; 0: none) */
	struct fetch got;           /* a secret's versions list, a key's bundle */
	struct fetch deleted;       /* a key's deleted bundle, when the key was not found */
};

/* A vault's deleted-secrets list, read once, only when one of its BEK secrets was not found. */
struct deleted_list {
	char origin[300];
	const char *tenant;   /* of the first secret that needs it */
	bool foreign;         /* its URL is not under the Key Vault suffix: not requested */
	bool judged, ok;
	size_t twin;          /* the next vault vault_ix files under this origin (index + 1; 0: none) */
	struct fetch list;
};

struct dp {
	struct run *r;
	cJSON *secrets, *deleted_secrets, *deleted_keys;
	struct obj *objs;
	size_t nobjs, cap;
	struct deleted_list *vaults;
	size_t nvaults, vcap;
	/*
	 * The objects by URL and the vaults by origin, so that a 35k-secret estate
	 * is not 600 M comparisons.  idmap matches more loosely (ASCII case folded,
	 * one trailing '/' ignored) than what is one object here (its URL, case
	 * folded, '/' included: ".../v/" is an invalid URL of its own) or one vault
	 * (its origin, exactly): an index holds the first entry of each key, twin
	 * chains the others, and each is compared as before.
	 */
	struct idmap obj_ix, vault_ix;
	struct idmap deleted_ix;   /* the ids in deleted_secrets */
};

/* Whether url is an object already; *first: the object obj_ix files it under (SIZE_MAX: none). */
static bool seen(const struct dp *d, const char *url, size_t *first)
{
	*first = SIZE_MAX;
	if (!idmap_get(&d->obj_ix, url, first))
		return false;
	for (size_t i = *first + 1; i; i = d->objs[i - 1].twin)
		if (kv_streq_ci(d->objs[i - 1].url, url))
			return true;
	return false;
}

static size_t vault_of(struct dp *d, const char *origin)
{
	size_t first = SIZE_MAX, i;

	if (idmap_get(&d->vault_ix, origin, &first))
		for (i = first + 1; i; i = d->vaults[i - 1].twin)
			if (strcmp(d->vaults[i - 1].origin, origin) == 0)
				return i - 1;
	if (d->nvaults == d->vcap) {
		d->vcap = d->vcap ? 2 * d->vcap : 8;
		d->vaults = kv_realloc(d->vaults, d->vcap * sizeof(*d->vaults));
	}
	i = d->nvaults++;
	memset(&d->vaults[i], 0, sizeof(d->vaults[i]));
	kv_strlcpy(d->vaults[i].origin, origin, sizeof(d->vaults[i].origin));
	if (first == SIZE_MAX) {
		idmap_put(&d->vault_ix, origin, i);
	} else {
		d->vaults[i].twin = d->vaults[first].twin;
		d->vaults[first].twin = i + 1;
	}
	return i;
}

/* Checks one URL and says what its first read is (the versions list of a secret, a key's bundle). */
static void add_object(struct dp *d, const char *url, const char *tenant, bool key)
{
	struct obj *o;
	size_t first, i = d->nobjs;

	if (seen(d, url, &first))
		return;
	if (d->nobjs == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 16;
		d->objs = kv_realloc(d->objs, d->cap * sizeof(*d->objs));
	}
	o = &d->objs[d->nobjs++];
	memset(o, 0, sizeof(*o));
	/* url is the estate's, which outlives d. */
	if (first == SIZE_MAX) {
		idmap_put_borrowed(&d->obj_ix, url, i);
	} else {
		o->twin = d->objs[first].twin;
		d->objs[first].twin = i + 1;
	}
	o->url = url;
	o->tenant = tenant;
	o->key = key;
	if (!kv_host_ok(d->r, url)) {
		o->bad = "ForeignHost";
		return;
	}
	if (!split_object_url(url, key ? "keys" : "secrets", o->origin, sizeof(o->origin), o->name, sizeof(o->name),
	                      o->version, sizeof(o->version))) {
		o->bad = key ? "InvalidKeyUrl" : "InvalidSecretUrl";
		return;
	}
	if (key)
		o->req = kv_asprintf("%s/keys/%s/%s?api-version=%s", o->origin, o->name, o->version, API_KEYVAULT_DATA);
	else
		o->req = kv_asprintf("%s/secrets/%s/versions?api-version=%s", o->origin, o->name, API_KEYVAULT_DATA);
	if (!kv_host_ok(d->r, o->req))
		o->bad = "ForeignHost";
}

/* The first reads, queued once every object is in place (the batch keeps pointers into d->objs). */
static void queue_objects(struct dp *d)
{
	for (size_t i = 0; i < d->nobjs; i++)
		if (!d->objs[i].bad)
			fetch_queue(d->r, &d->objs[i].got, d->objs[i].req, d->objs[i].tenant, !d->objs[i].key);
}

/* The second reads, of what was not found: a vault's deleted secrets (once), a key's deleted bundle. */
static void queue_deleted(struct dp *d)
{
	char *req;

	for (size_t i = 0; i < d->nobjs; i++) {
		struct obj *o = &d->objs[i];
		size_t before = d->nvaults;

		if (o->bad || o->got.a.o != HTTP_NOT_FOUND)
			continue;
		if (o->key) {
			req = kv_asprintf("%s/deletedkeys/%s?api-version=%s", o->origin, o->name, API_KEYVAULT_DATA);
			fetch_queue(d->r, &o->deleted, req, o->tenant, false);
			free(req);
			continue;
		}
		o->vault = vault_of(d, o->origin);
		if (d->nvaults > before)
			d->vaults[o->vault].tenant = o->tenant;
	}
	/* Once d->vaults has stopped growing: the batch keeps pointers into it. */
	for (size_t i = 0; i < d->nvaults; i++) {
		struct deleted_list *v = &d->vaults[i];

		req = kv_asprintf("%s/deletedsecrets?api-version=%s", v->origin, API_KEYVAULT_DATA);
		v->foreign = !kv_host_ok(d->r, req);
		if (!v->foreign)
			fetch_queue(d->r, &v->list, req, v->tenant, true);
		free(req);
	}
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

/* Looks for a not-found BEK secret among its vault's deleted secrets. */
static void find_deleted_secret(struct dp *d, const struct obj *o)
{
	struct deleted_list *v = &d->vaults[o->vault];
	const cJSON *it;

	if (!v->judged) {
		/* The first secret of the vault to need the list: its failure is this secret's. */
		v->judged = true;
		v->ok = !v->foreign && v->list.a.o == HTTP_OK;
		if (v->foreign)
			record_foreign(d->r, o->url);
		else if (!v->ok)
			run_record(d->r, o->url, &v->list.a.f, &v->list.a.err);
		if (!v->ok)
			return;
	} else if (!v->ok) {
		/* The list failed for an earlier secret of this vault: this one is not known either. */
		record(d->r, o->url, "DeletedSecretsUnreadable",
		       "the secret was not found and the vault's deleted secrets could not be read (see the vault's other errors)");
		return;
	}
	cJSON_ArrayForEach(it, v->list.items) {
		const char *id = jstr(it, "id");

		if (id && kv_startswith_ci(id, o->origin) && id[strlen(o->origin)] == '/' && deleted_name_is(it, o->name)) {
			size_t known;

			/* Versions of one secret share its deleted item; the copy's id (the snapshot's) outlives d. */
			if (!idmap_get(&d->deleted_ix, id, &known)) {
				cJSON *copy = cJSON_Duplicate(it, true);

				cJSON_AddItemToArray(d->deleted_secrets, copy);
				idmap_put_borrowed(&d->deleted_ix, jstr(copy, "id"), 0);
			}
			return;
		}
	}
}

/* The SecretItem of one BEK secret version, from its versions list (never its value). */
static void secret_metadata(struct dp *d, const struct obj *o)
{
	const cJSON *it;

	if (o->got.a.o == HTTP_NOT_FOUND) {
		find_deleted_secret(d, o);
		return;
	}
	if (o->got.a.o != HTTP_OK) {
		run_record(d->r, o->url, &o->got.a.f, &o->got.a.err);
		return;
	}
	cJSON_ArrayForEach(it, o->got.items) {
		const char *id = jstr(it, "id");

		/*
		 * Only the version the disk names, and never a value even if a server
		 * sent one.  Once: no other object has this URL (seen), nor, as it ends
		 * in no '/', one that is the same ARM-style ID.
		 */
		if (id && kv_streq_ci(id, o->url)) {
			cJSON *copy = cJSON_Duplicate(it, true);

			cJSON_DeleteItemFromObjectCaseSensitive(copy, "value");
			cJSON_AddItemToArray(d->secrets, copy);
			break;
		}
	}
}

/* The KeyBundle of one KEK (public material only), or its DeletedKeyBundle when deleted. */
static void key_bundle(struct dp *d, struct obj *o)
{
	if (o->got.a.o == HTTP_OK) {
		cJSON_AddItemToArray(d->r->keys, o->got.a.body);
		o->got.a.body = NULL;
		return;
	}
	if (o->got.a.o != HTTP_NOT_FOUND) {
		run_record(d->r, o->url, &o->got.a.f, &o->got.a.err);
		return;
	}
	if (o->deleted.a.o == HTTP_OK) {
		cJSON_AddItemToArray(d->deleted_keys, o->deleted.a.body);
		o->deleted.a.body = NULL;
	} else if (o->deleted.a.o != HTTP_NOT_FOUND) {
		/* Not found among the deleted keys either: missing, which the snapshot says by its absence. */
		run_record(d->r, o->url, &o->deleted.a.f, &o->deleted.a.err);
	}
}

/* Records or keeps what was read of each object, in the order the disks name them. */
static void judge(struct dp *d)
{
	for (size_t i = 0; i < d->nobjs; i++) {
		struct obj *o = &d->objs[i];

		if (o->bad && strcmp(o->bad, "ForeignHost") == 0)
			record_foreign(d->r, o->url);
		else if (o->bad && o->key)
			record(d->r, o->url, o->bad,
			       "not a Key Vault key URL (https://{vault}/keys/{name}/{version}): not requested");
		else if (o->bad)
			record(d->r, o->url, o->bad,
			       "not a Key Vault secret URL (https://{vault}/secrets/{name}/{version}): not requested");
		else if (o->key)
			key_bundle(d, o);
		else
			secret_metadata(d, o);
	}
}

void collect_data_plane(struct run *r)
{
	char *text = cJSON_PrintUnformatted(r->doc);
	struct kv_err err = {{0}};
	struct estate *e = estate_parse(text, strlen(text), "collected estate", NULL, &err);
	struct dp d = {.r = r};

	idmap_init(&d.obj_ix);
	idmap_init(&d.vault_ix);
	idmap_init(&d.deleted_ix);
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
				add_object(&d, vol->secret_url, bv ? bv->tenant_id : NULL, false);
			if (vol->key_url)
				add_object(&d, vol->key_url, kv ? kv->tenant_id : NULL, true);
		}
	}
	/* Every object at once, then what was not found at once: two rounds, not one request at a time. */
	queue_objects(&d);
	if (r->batch)
		az_batch_run(r->batch);
	queue_deleted(&d);
	if (r->batch)
		az_batch_run(r->batch);
	judge(&d);
out:
	for (size_t i = 0; i < d.nobjs; i++) {
		free(d.objs[i].req);
		fetch_release(&d.objs[i].got);
		fetch_release(&d.objs[i].deleted);
	}
	for (size_t i = 0; i < d.nvaults; i++)
		fetch_release(&d.vaults[i].list);
	free(d.objs);
	free(d.vaults);
	idmap_release(&d.obj_ix);
	idmap_release(&d.vault_ix);
	idmap_release(&d.deleted_ix);
	estate_free(e);
}
