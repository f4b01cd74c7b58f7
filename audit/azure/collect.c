/*
 * collect.c - reads the estate live (docs/azure-api.md) into a
 * kvaudit.estate snapshot.  Order: the caller, its tenants, then per tenant
 * Graph (the caller's user type, Backup Management Service) and the
 * subscriptions; per subscription the resources; last, optionally, the KEK
 * key bundles from the data plane.  Every failure is recorded in errors[]
 * with the resource or list it concerns, and collection goes on.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/azure/collect.h"
#include "audit/estate/estate.h"
#include "audit/estate/facts.h"
#include "audit/util/armid.h"
#include "audit/util/log.h"

#define API_TENANTS "2022-12-01"
#define API_SUBSCRIPTIONS "2022-12-01"
#define API_COMPUTE "2024-07-01"
#define API_DISKS "2024-03-02"
#define API_KEYVAULT "2024-11-01"
#define API_AUTHORIZATION "2022-04-01"
#define API_RECOVERY_VAULTS "2025-02-01"
#define API_PROTECTED_ITEMS "2024-10-01"
#define API_KEYVAULT_DATA "7.4"

struct run {
	struct az_client *c;
	const struct collect_opts *o;
	cJSON *doc, *errors;
	cJSON *subs, *vms, *disks, *vaults, *ras, *rds, *rsvs, *items, *keys, *tenants;
};

static void progress(const struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void progress(const struct run *r, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!r->o->progress)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_line(r->o->progress, "info", NULL, "%s", msg);
}

static const char *str(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* Records a failure whose scope is an ARM path (resource ID or list path, no host). */
static void record(struct run *r, const char *scope, const struct az_failure *f, const struct kv_err *err)
{
	az_failure_record(r->errors, scope, f, err ? err->msg : NULL);
}

/* An ID that is not safe for a URL is recorded and skipped, never requested. */
static bool safe_id(struct run *r, const char *id)
{
	struct az_failure f = {HTTP_FATAL, 0, "InvalidResourceId", ""};

	if (armid_valid_for_url(id))
		return true;
	snprintf(f.message, sizeof(f.message), "resource ID is not a plain ARM ID and was not requested");
	record(r, id ? id : "(missing id)", &f, NULL);
	return false;
}

/* GET a list at {arm}{path}?api-version=V[&extra] into items; failures recorded with scope path. */
static bool list_into(struct run *r, const char *path, const char *api, const char *extra, const char *tenant,
                      cJSON *items)
{
	char *url = kv_asprintf("%s%s?api-version=%s%s%s", r->c->cloud->arm, path, api, extra ? "&" : "",
	                        extra ? extra : "");
	struct az_failure f;
	struct kv_err err = {{0}};
	enum http_outcome o = az_list(r->c, url, tenant, items, &f, &err);

	if (o != HTTP_OK)
		record(r, path, &f, &err);
	free(url);
	return o == HTTP_OK;
}

/* The caller, from the ARM token's claims. */
static cJSON *caller_from_token(struct az_client *c, struct kv_err *err)
{
	char *scope = cloud_scope(c->cloud, TARGET_ARM);
	const char *token = credential_token(c->cred, scope, NULL, false, err);
	cJSON *claims, *caller;
	const char *idtyp, *name;

	free(scope);
	if (!token)
		return NULL;
	claims = jwt_claims(token);
	caller = cJSON_CreateObject();
	idtyp = str(claims, "idtyp");
	cJSON_AddStringToObject(caller, "objectId", str(claims, "oid") ? str(claims, "oid") : "");
	cJSON_AddStringToObject(caller, "tenantId",
	                        str(claims, "tid") ? str(claims, "tid") :
	                        credential_tenant(c->cred) ? credential_tenant(c->cred) : "");
	if (cJSON_GetObjectItemCaseSensitive(claims, "xms_mirid"))
		cJSON_AddStringToObject(caller, "type", "managedIdentity");
	else if (kv_streq_ci(idtyp, "app") || (!idtyp && !str(claims, "upn") && !str(claims, "scp")))
		cJSON_AddStringToObject(caller, "type", "servicePrincipal");
	else
		cJSON_AddStringToObject(caller, "type", "user");
	name = str(claims, "upn") ? str(claims, "upn") : str(claims, "unique_name") ? str(claims, "unique_name") :
	       str(claims, "appid");
	if (name)
		cJSON_AddStringToObject(caller, "displayName", name);
	cJSON_AddStringToObject(caller, "homeTenantId", str(caller, "tenantId"));
	cJSON_Delete(claims);
	return caller;
}

/* The caller's userType in tenant t from Graph /me (users only). */
static const char *graph_user_type(struct run *r, const char *tenant, char *buf, size_t n)
{
	char *url = kv_asprintf("%s/v1.0/me?$select=id,userType,userPrincipalName,displayName", r->c->cloud->graph);
	cJSON *me = NULL;
	struct az_failure f;
	struct kv_err err = {{0}};
	const char *ut = NULL;

	if (az_get_json(r->c, url, tenant, &me, &f, &err) == HTTP_OK && str(me, "userType")) {
		snprintf(buf, n, "%s", str(me, "userType"));
		ut = buf;
	} else if (f.outcome != HTTP_OK) {
		char scope[160];

		snprintf(scope, sizeof(scope), "graph:/v1.0/me (tenant %s)", tenant);
		record(r, scope, &f, &err);
	}
	cJSON_Delete(me);
	free(url);
	return ut;
}

/* Backup Management Service in tenant t: found (with its object ID), absent (404), or unknown. */
static void graph_backup_sp(struct run *r, const char *tenant, cJSON *entry)
{
	cJSON *bms = cJSON_AddObjectToObject(entry, "backupManagementService");
	char *url;
	cJSON *sp = NULL;
	struct az_failure f;
	struct kv_err err = {{0}};
	enum http_outcome o;

	if (!r->c->cloud->backup_app_id) {
		struct az_failure unknown = {HTTP_FATAL, 0, "BackupAppIdUnknown", ""};
		char scope[160];

		cJSON_AddStringToObject(bms, "status", "unknown");
		snprintf(unknown.message, sizeof(unknown.message),
		         "Backup Management Service's appId in cloud %s is unknown: add \"backupAppId\" to the cloud file, "
		         "or pass --backup-sp-object-id %s=OBJECT_ID", r->c->cloud->name, tenant);
		snprintf(scope, sizeof(scope), "graph:/v1.0/servicePrincipals (tenant %s)", tenant);
		record(r, scope, &unknown, NULL);
		return;
	}
	url = kv_asprintf("%s/v1.0/servicePrincipals(appId='%s')?$select=id,appId,displayName", r->c->cloud->graph,
	                  r->c->cloud->backup_app_id);
	o = az_get_json(r->c, url, tenant, &sp, &f, &err);
	if (o == HTTP_OK && str(sp, "id")) {
		cJSON_AddStringToObject(bms, "status", "found");
		cJSON_AddStringToObject(bms, "objectId", str(sp, "id"));
	} else if (o == HTTP_NOT_FOUND) {
		cJSON_AddStringToObject(bms, "status", "absent");
	} else {
		char scope[200];

		cJSON_AddStringToObject(bms, "status", "unknown");
		snprintf(scope, sizeof(scope), "graph:/v1.0/servicePrincipals(appId='%s') (tenant %s)",
		         r->c->cloud->backup_app_id, tenant);
		record(r, scope, &f, &err);
	}
	cJSON_Delete(sp);
	free(url);
}

static bool wanted_subscription(const struct collect_opts *o, const char *sub)
{
	if (o->nsubscriptions == 0)
		return true;
	for (size_t i = 0; i < o->nsubscriptions; i++)
		if (kv_streq_ci(o->subscriptions[i], sub))
			return true;
	return false;
}

static bool has_id(const cJSON *arr, const char *id)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, arr)
		if (armid_eq(str(it, "id"), id))
			return true;
	return false;
}

/* Moves items of from into to, skipping IDs already there (role assignments seen from several vaults). */
static void merge_unique(cJSON *to, cJSON *from)
{
	cJSON *it;

	while ((it = from->child) != NULL) {
		cJSON_DetachItemViaPointer(from, it);
		if (str(it, "id") && has_id(to, str(it, "id")))
			cJSON_Delete(it);
		else
			cJSON_AddItemToArray(to, it);
	}
}

static void collect_subscription(struct run *r, const char *sub, const char *tenant, const char *bms_oid)
{
	char path[256];
	cJSON *vms = cJSON_CreateArray(), *vaults = cJSON_CreateArray(), *rsvs = cJSON_CreateArray(), *it;
	int nvm = 0;

	snprintf(path, sizeof(path), "/subscriptions/%s/providers/Microsoft.Compute/virtualMachines", sub);
	list_into(r, path, API_COMPUTE, NULL, tenant, vms);
	/* Each VM again with its instance view and extensions. */
	while ((it = vms->child) != NULL) {
		const char *id = str(it, "id");
		cJSON *full = NULL;

		cJSON_DetachItemViaPointer(vms, it);
		nvm++;
		if (id && safe_id(r, id)) {
			char *url = kv_asprintf("%s%s?$expand=instanceView&api-version=%s", r->c->cloud->arm, id, API_COMPUTE);
			struct az_failure f;
			struct kv_err err = {{0}};

			if (az_get_json(r->c, url, tenant, &full, &f, &err) == HTTP_OK && cJSON_IsObject(full)) {
				cJSON_Delete(it);
				it = full;
				full = NULL;
			} else {
				record(r, id, &f, &err);
			}
			cJSON_Delete(full);
			free(url);
		}
		cJSON_AddItemToArray(r->vms, it);
	}
	snprintf(path, sizeof(path), "/subscriptions/%s/providers/Microsoft.Compute/disks", sub);
	list_into(r, path, API_DISKS, NULL, tenant, r->disks);
	snprintf(path, sizeof(path), "/subscriptions/%s/providers/Microsoft.KeyVault/vaults", sub);
	list_into(r, path, API_KEYVAULT, NULL, tenant, vaults);
	snprintf(path, sizeof(path), "/subscriptions/%s/providers/Microsoft.RecoveryServices/vaults", sub);
	list_into(r, path, API_RECOVERY_VAULTS, NULL, tenant, rsvs);

	cJSON_ArrayForEach(it, rsvs) {
		const char *id = str(it, "id");
		char *p;

		if (!id || !safe_id(r, id))
			continue;
		p = kv_asprintf("%s/backupProtectedItems", id);
		list_into(r, p, API_PROTECTED_ITEMS,
		          "$filter=backupManagementType%20eq%20%27AzureIaasVM%27%20and%20itemType%20eq%20%27VM%27",
		          tenant, r->items);
		free(p);
	}
	cJSON_ArrayForEach(it, vaults) {
		const char *id = str(it, "id");
		cJSON *found = cJSON_CreateArray();
		char *p;

		if (!id || !safe_id(r, id)) {
			cJSON_Delete(found);
			continue;
		}
		p = kv_asprintf("%s/providers/Microsoft.Authorization/roleAssignments", id);
		list_into(r, p, API_AUTHORIZATION, "$filter=atScope()", tenant, found);
		free(p);
		merge_unique(r->ras, found);
		cJSON_Delete(found);
	}
	/* Custom roles given to Backup Management Service: their data actions decide coverage. */
	if (bms_oid) {
		cJSON_ArrayForEach(it, r->ras) {
			const cJSON *props = cJSON_GetObjectItemCaseSensitive(it, "properties");
			const char *rd = str(props, "roleDefinitionId");
			cJSON *def = NULL;
			struct az_failure f;
			struct kv_err err = {{0}};
			char *url;

			if (!kv_streq_ci(str(props, "principalId"), bms_oid) || !rd || facts_role_is_builtin(rd) ||
			    has_id(r->rds, rd) || !safe_id(r, rd))
				continue;
			url = kv_asprintf("%s%s?api-version=%s", r->c->cloud->arm, rd, API_AUTHORIZATION);
			if (az_get_json(r->c, url, tenant, &def, &f, &err) == HTTP_OK) {
				cJSON_AddItemToArray(r->rds, def);
			} else {
				record(r, rd, &f, &err);
				cJSON_Delete(def);
			}
			free(url);
		}
	}
	progress(r, "subscription %s: %d VMs, %d key vaults, %d Recovery Services vaults", sub, nvm,
	         cJSON_GetArraySize(vaults), cJSON_GetArraySize(rsvs));
	merge_unique(r->vaults, vaults);
	merge_unique(r->rsvs, rsvs);
	cJSON_Delete(vms);
	cJSON_Delete(vaults);
	cJSON_Delete(rsvs);
}

/* KEK key bundles for the certificate-backed check, through each vault's own host. */
static void collect_keys(struct run *r)
{
	char *text = cJSON_PrintUnformatted(r->doc);
	struct kv_err err = {{0}};
	struct estate *e = estate_parse(text, strlen(text), "collected estate", NULL, &err);
	cJSON *done = cJSON_CreateArray();

	free(text);
	if (!e) {
		struct az_failure f = {HTTP_FATAL, 0, "InternalError", ""};

		kv_strlcpy(f.message, err.msg, sizeof(f.message));
		record(r, "keys", &f, NULL);
		cJSON_Delete(done);
		return;
	}
	for (size_t i = 0; i < e->nvms; i++) {
		const struct ade_info *a = &e->vms[i].ade;

		for (size_t k = 0; a->encrypted && k < a->nvolumes; k++) {
			const char *kid = a->volumes[k].key_url;
			const struct vault *v = a->volumes[k].kek_vault ? estate_vault(e, a->volumes[k].kek_vault) : NULL;
			cJSON *bundle = NULL;
			struct az_failure f;
			char *url;

			if (!kid || has_id(done, kid))
				continue;
			cJSON_AddItemToArray(done, cJSON_CreateObject());
			cJSON_AddStringToObject(cJSON_GetArrayItem(done, cJSON_GetArraySize(done) - 1), "id", kid);
			url = kv_asprintf("%s?api-version=%s", kid, API_KEYVAULT_DATA);
			if (cloud_classify(r->c->cloud, url) != TARGET_KEYVAULT) {
				struct az_failure g = {HTTP_FATAL, 0, "ForeignHost", ""};

				snprintf(g.message, sizeof(g.message),
				         "key URL is not under the cloud's Key Vault suffix '%s': not requested",
				         r->c->cloud->keyvault_suffix);
				record(r, kid, &g, NULL);
			} else if (az_get_json(r->c, url, v ? v->tenant_id : NULL, &bundle, &f, &err) == HTTP_OK) {
				cJSON_AddItemToArray(r->keys, bundle);
				bundle = NULL;
			} else {
				record(r, kid, &f, &err);
			}
			cJSON_Delete(bundle);
			free(url);
		}
	}
	cJSON_Delete(done);
	estate_free(e);
}

enum collect_result collect_caller(struct az_client *c, cJSON **out, struct kv_err *err)
{
	*out = caller_from_token(c, err);
	return *out ? COLLECT_OK : COLLECT_AUTH;
}

enum collect_result collect_estate(struct az_client *c, const struct collect_opts *o, cJSON **out,
                                   struct kv_err *err)
{
	struct run r;
	cJSON *caller, *tenant_list = cJSON_CreateArray(), *t;
	char now[32];
	bool is_user;

	*out = NULL;
	memset(&r, 0, sizeof(r));
	r.c = c;
	r.o = o;
	caller = caller_from_token(c, err);
	if (!caller) {
		cJSON_Delete(tenant_list);
		return COLLECT_AUTH;
	}
	is_user = kv_streq_ci(str(caller, "type"), "user");
	r.doc = cJSON_CreateObject();
	cJSON_AddStringToObject(r.doc, "kind", "kvaudit.estate");
	cJSON_AddNumberToObject(r.doc, "version", 1);
	kv_utc_now(now, sizeof(now));
	cJSON_AddStringToObject(r.doc, "collectedAt", now);
	cJSON_AddStringToObject(r.doc, "cloud", c->cloud->name);
	cJSON_AddItemToObject(r.doc, "caller", caller);
	r.tenants = cJSON_AddArrayToObject(r.doc, "tenants");
	r.subs = cJSON_AddArrayToObject(r.doc, "subscriptions");
	r.vms = cJSON_AddArrayToObject(r.doc, "virtualMachines");
	r.disks = cJSON_AddArrayToObject(r.doc, "disks");
	r.vaults = cJSON_AddArrayToObject(r.doc, "vaults");
	r.ras = cJSON_AddArrayToObject(r.doc, "roleAssignments");
	r.rds = cJSON_AddArrayToObject(r.doc, "roleDefinitions");
	r.rsvs = cJSON_AddArrayToObject(r.doc, "recoveryServicesVaults");
	r.items = cJSON_AddArrayToObject(r.doc, "backupProtectedItems");
	if (o->data_plane)
		r.keys = cJSON_AddArrayToObject(r.doc, "keys");
	r.errors = cJSON_AddArrayToObject(r.doc, "errors");

	/* The tenants the caller can reach; the home tenant at least. */
	if (!list_into(&r, "/tenants", API_TENANTS, NULL, NULL, tenant_list) || cJSON_GetArraySize(tenant_list) == 0) {
		cJSON *home = cJSON_CreateObject();

		cJSON_AddStringToObject(home, "tenantId", str(caller, "tenantId"));
		cJSON_AddItemToArray(tenant_list, home);
	}
	cJSON_ArrayForEach(t, tenant_list) {
		const char *tid = str(t, "tenantId");
		cJSON *entry, *subs = cJSON_CreateArray(), *s;
		char ut[32];
		const char *bms_oid;

		if (kv_empty(tid)) {
			cJSON_Delete(subs);
			continue;
		}
		entry = cJSON_CreateObject();
		cJSON_AddStringToObject(entry, "tenantId", tid);
		if (is_user) {
			const char *u = graph_user_type(&r, tid, ut, sizeof(ut));

			if (u)
				cJSON_AddStringToObject(entry, "callerUserType", u);
		} else {
			cJSON_AddStringToObject(entry, "callerUserType", "ServicePrincipal");
		}
		graph_backup_sp(&r, tid, entry);
		cJSON_AddItemToArray(r.tenants, entry);
		bms_oid = str(cJSON_GetObjectItemCaseSensitive(entry, "backupManagementService"), "objectId");

		list_into(&r, "/subscriptions", API_SUBSCRIPTIONS, NULL, tid, subs);
		progress(&r, "tenant %s: %d subscriptions", tid, cJSON_GetArraySize(subs));
		cJSON_ArrayForEach(s, subs) {
			const char *sid = str(s, "subscriptionId"), *stid = str(s, "tenantId");

			/* A subscription is listed by its own tenant only once. */
			if (!sid || (stid && !kv_streq_ci(stid, tid)) || !wanted_subscription(o, sid))
				continue;
			if (has_id(r.subs, str(s, "id")))
				continue;
			cJSON_AddItemToArray(r.subs, cJSON_Duplicate(s, true));
			collect_subscription(&r, sid, tid, bms_oid);
		}
		cJSON_Delete(subs);
	}
	for (size_t i = 0; i < o->nsubscriptions; i++) {
		bool found = false;
		const cJSON *s;

		cJSON_ArrayForEach(s, r.subs)
			if (kv_streq_ci(str(s, "subscriptionId"), o->subscriptions[i]))
				found = true;
		if (!found) {
			char scope[128];
			struct az_failure f = {HTTP_NOT_FOUND, 404, "SubscriptionNotFound", ""};

			snprintf(scope, sizeof(scope), "/subscriptions/%s", o->subscriptions[i]);
			snprintf(f.message, sizeof(f.message),
			         "subscription '%s' is not visible to the caller in any of its tenants", o->subscriptions[i]);
			record(&r, scope, &f, NULL);
		}
	}
	if (o->data_plane)
		collect_keys(&r);
	cJSON_Delete(tenant_list);
	*out = r.doc;
	return COLLECT_OK;
}
