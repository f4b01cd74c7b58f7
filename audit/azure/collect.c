/*
 * collect.c - reads the estate live (docs/azure-api.md) into a
 * kvaudit.estate snapshot.  Order: the caller, its tenants, then per tenant
 * Graph (the caller's user type, Backup Management Service) and the
 * subscriptions; per subscription the resources; then Azure Backup's
 * evidence (whose reads start as soon as a vault's protected items are in,
 * while the engines still read); last, optionally, the KEK key bundles from
 * the data plane.  Every failure is recorded in errors[] with the resource
 * or list it concerns, and collection goes on.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/azure/batch.h"
#include "audit/azure/collect.h"
#include "audit/azure/collect_internal.h"
#include "audit/estate/estate.h"
#include "audit/estate/facts.h"
#include "audit/util/armid.h"
#include "audit/util/log.h"

void run_progress(const struct run *r, const char *fmt, ...)
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

const char *jstr(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* Records a failure whose scope is an ARM path (resource ID or list path, no host). */
void run_record(struct run *r, const char *scope, const struct az_failure *f, const struct kv_err *err)
{
	az_failure_record(r->errors, scope, f, err ? err->msg : NULL);
}

/* An ID that is not safe for a URL is recorded and skipped, never requested. */
bool run_safe_id(struct run *r, const char *id)
{
	struct az_failure f = {HTTP_FATAL, 0, "InvalidResourceId", ""};

	if (armid_valid_for_url(id))
		return true;
	snprintf(f.message, sizeof(f.message), "resource ID is not a plain ARM ID and was not requested");
	run_record(r, id ? id : "(missing id)", &f, NULL);
	return false;
}

/* GET a list at {arm}{path}?api-version=V[&extra] into items; failures recorded with scope path. */
bool run_list(struct run *r, const char *path, const char *api, const char *extra, const char *tenant,
                      cJSON *items)
{
	char *url = kv_asprintf("%s%s?api-version=%s%s%s", r->c->cloud->arm, path, api, extra ? "&" : "",
	                        extra ? extra : "");
	struct az_failure f;
	struct kv_err err = {{0}};
	enum http_outcome o = az_list(r->c, url, tenant, items, &f, &err);

	if (o != HTTP_OK)
		run_record(r, path, &f, &err);
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
	idtyp = jstr(claims, "idtyp");
	cJSON_AddStringToObject(caller, "objectId", jstr(claims, "oid") ? jstr(claims, "oid") : "");
	cJSON_AddStringToObject(caller, "tenantId",
	                        jstr(claims, "tid") ? jstr(claims, "tid") :
	                        credential_tenant(c->cred) ? credential_tenant(c->cred) : "");
	if (cJSON_GetObjectItemCaseSensitive(claims, "xms_mirid"))
		cJSON_AddStringToObject(caller, "type", "managedIdentity");
	else if (kv_streq_ci(idtyp, "app") || (!idtyp && !jstr(claims, "upn") && !jstr(claims, "scp")))
		cJSON_AddStringToObject(caller, "type", "servicePrincipal");
	else
		cJSON_AddStringToObject(caller, "type", "user");
	name = jstr(claims, "upn") ? jstr(claims, "upn") : jstr(claims, "unique_name") ? jstr(claims, "unique_name") :
	       jstr(claims, "appid");
	if (name)
		cJSON_AddStringToObject(caller, "displayName", name);
	cJSON_AddStringToObject(caller, "homeTenantId", jstr(caller, "tenantId"));
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

	if (az_get_json(r->c, url, tenant, &me, &f, &err) == HTTP_OK && jstr(me, "userType")) {
		snprintf(buf, n, "%s", jstr(me, "userType"));
		ut = buf;
	} else if (f.outcome != HTTP_OK) {
		char scope[160];

		snprintf(scope, sizeof(scope), "graph:/v1.0/me (tenant %s)", tenant);
		run_record(r, scope, &f, &err);
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
		run_record(r, scope, &unknown, NULL);
		return;
	}
	url = kv_asprintf("%s/v1.0/servicePrincipals(appId='%s')?$select=id,appId,displayName", r->c->cloud->graph,
	                  r->c->cloud->backup_app_id);
	o = az_get_json(r->c, url, tenant, &sp, &f, &err);
	if (o == HTTP_OK && jstr(sp, "id")) {
		cJSON_AddStringToObject(bms, "status", "found");
		cJSON_AddStringToObject(bms, "objectId", jstr(sp, "id"));
	} else if (o == HTTP_NOT_FOUND) {
		cJSON_AddStringToObject(bms, "status", "absent");
	} else {
		char scope[200];

		cJSON_AddStringToObject(bms, "status", "unknown");
		snprintf(scope, sizeof(scope), "graph:/v1.0/servicePrincipals(appId='%s') (tenant %s)",
		         r->c->cloud->backup_app_id, tenant);
		if (o == HTTP_OK) {
			/* An answer that is not the one object asked for (a collection page, say): f was not set. */
			memset(&f, 0, sizeof(f));
			f.outcome = HTTP_FATAL;
			snprintf(f.code, sizeof(f.code), "MalformedResponse");
			snprintf(f.message, sizeof(f.message), "the answer is not a servicePrincipal object (it has no \"id\"); "
			         "kvaudit reads one object here and follows no @odata.nextLink");
		}
		run_record(r, scope, &f, &err);
	}
	cJSON_Delete(sp);
	free(url);
}

static bool wanted_subscription(const struct collect_opts *o, const char *sub)
{
	if (o->shard_count > 0 && collect_shard_of(sub, o->shard_count) != o->shard_index - 1)
		return false;
	if (o->nsubscriptions == 0)
		return true;
	for (size_t i = 0; i < o->nsubscriptions; i++)
		if (kv_streq_ci(o->subscriptions[i], sub))
			return true;
	return false;
}

bool json_has_id(const cJSON *arr, const char *id)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, arr)
		if (armid_eq(jstr(it, "id"), id))
			return true;
	return false;
}

/* Moves items of from into to, skipping IDs already there (role assignments seen from several vaults). */
void json_merge_unique(cJSON *to, cJSON *from)
{
	cJSON *it;

	while ((it = from->child) != NULL) {
		cJSON_DetachItemViaPointer(from, it);
		if (jstr(it, "id") && json_has_id(to, jstr(it, "id")))
			cJSON_Delete(it);
		else
			cJSON_AddItemToArray(to, it);
	}
}

/* The VMs an Azure Backup (Recovery Services) vault protects, into items (queued: read at run_flush). */
void collect_protected_items(struct run *r, const char *rsv_id, const char *tenant, cJSON *items)
{
	char *p;

	if (!rsv_id || !run_safe_id(r, rsv_id))
		return;
	collect_backup_vault_known(r, rsv_id);
	p = kv_asprintf("%s/backupProtectedItems", rsv_id);
	/* As soon as they are in, the vault's other evidence reads start (collect_backup.c). */
	run_queue_list_then(r, p, API_PROTECTED_ITEMS,
	                    "$filter=backupManagementType%20eq%20%27AzureIaasVM%27%20and%20itemType%20eq%20%27VM%27",
	                    tenant, items, collect_backup_items_read);
	free(p);
}

/* Custom roles given to Backup Management Service: their data actions decide coverage. */
void collect_custom_roles(struct run *r, const char *tenant, const char *bms_oid)
{
	cJSON *it;

	if (!bms_oid)
		return;
	cJSON_ArrayForEach(it, r->ras) {
		const cJSON *props = cJSON_GetObjectItemCaseSensitive(it, "properties");
		const char *rd = jstr(props, "roleDefinitionId");
		cJSON *def = NULL;
		struct az_failure f;
		struct kv_err err = {{0}};
		char *url;

		if (!kv_streq_ci(jstr(props, "principalId"), bms_oid) || !rd || facts_role_is_builtin(rd) ||
		    json_has_id(r->rds, rd) || !run_safe_id(r, rd))
			continue;
		url = kv_asprintf("%s%s?api-version=%s", r->c->cloud->arm, rd, API_AUTHORIZATION);
		if (az_get_json(r->c, url, tenant, &def, &f, &err) == HTTP_OK) {
			cJSON_AddItemToArray(r->rds, def);
		} else {
			run_record(r, rd, &f, &err);
			cJSON_Delete(def);
		}
		free(url);
	}
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
	is_user = kv_streq_ci(jstr(caller, "type"), "user");
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
	if (o->shard_count > 0) {
		cJSON *shard = cJSON_AddObjectToObject(r.doc, "shard");

		cJSON_AddNumberToObject(shard, "index", o->shard_index);
		cJSON_AddNumberToObject(shard, "count", o->shard_count);
	}

	/* The tenants the caller can reach; the home tenant at least. */
	if (!run_list(&r, "/tenants", API_TENANTS, NULL, NULL, tenant_list) || cJSON_GetArraySize(tenant_list) == 0) {
		cJSON *home = cJSON_CreateObject();

		cJSON_AddStringToObject(home, "tenantId", jstr(caller, "tenantId"));
		cJSON_AddItemToArray(tenant_list, home);
	}
	cJSON_ArrayForEach(t, tenant_list) {
		const char *tid = jstr(t, "tenantId");
		cJSON *entry, *subs = cJSON_CreateArray(), *s, *mine = cJSON_CreateArray();
		char ut[32];
		const char *bms_oid;

		if (kv_empty(tid)) {
			cJSON_Delete(subs);
			cJSON_Delete(mine);
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
		bms_oid = jstr(cJSON_GetObjectItemCaseSensitive(entry, "backupManagementService"), "objectId");

		if (!run_list(&r, "/subscriptions", API_SUBSCRIPTIONS, NULL, tid, subs))
			/* Whose list it was: facts.c makes that tenant's findings error, not every tenant's. */
			cJSON_AddStringToObject(cJSON_GetArrayItem(r.errors, cJSON_GetArraySize(r.errors) - 1), "tenantId",
			                        tid);
		run_progress(&r, "tenant %s: %d subscriptions", tid, cJSON_GetArraySize(subs));
		cJSON_ArrayForEach(s, subs) {
			const char *sid = jstr(s, "subscriptionId"), *stid = jstr(s, "tenantId");

			/* A subscription is listed by its own tenant only once. */
			if (!sid || (stid && !kv_streq_ci(stid, tid)) || !wanted_subscription(o, sid))
				continue;
			if (json_has_id(r.subs, jstr(s, "id")))
				continue;
			cJSON_AddItemToArray(r.subs, cJSON_Duplicate(s, true));
			cJSON_AddItemToArray(mine, cJSON_CreateString(sid));
		}
		/* The engine hook: Resource Graph reads all of the tenant's subscriptions at once. */
		if (o->engine == COLLECT_ENGINE_ARM || cJSON_GetArraySize(mine) == 0)
			collect_arm(&r, tid, bms_oid, mine);
		else
			collect_graph(&r, tid, bms_oid, mine, o->engine == COLLECT_ENGINE_AUTO);
		cJSON_Delete(mine);
		cJSON_Delete(subs);
	}
	/*
	 * Every tenant's requests run together, then merge in tenant and subscription order: Resource Graph's
	 * first (a tenant it refuses goes to the ARM engine), then the ARM engine's.
	 */
	collect_graph_finish(&r);
	collect_arm_finish(&r);
	for (size_t i = 0; i < o->nsubscriptions; i++) {
		bool found = false;
		const cJSON *s;

		if (o->shard_count > 0 && collect_shard_of(o->subscriptions[i], o->shard_count) != o->shard_index - 1)
			continue;   /* another worker's */
		cJSON_ArrayForEach(s, r.subs)
			if (kv_streq_ci(jstr(s, "subscriptionId"), o->subscriptions[i]))
				found = true;
		if (!found) {
			char scope[128];
			struct az_failure f = {HTTP_NOT_FOUND, 404, "SubscriptionNotFound", ""};

			snprintf(scope, sizeof(scope), "/subscriptions/%s", o->subscriptions[i]);
			snprintf(f.message, sizeof(f.message),
			         "subscription '%s' is not visible to the caller in any of its tenants", o->subscriptions[i]);
			run_record(&r, scope, &f, NULL);
		}
	}
	run_flush(&r);
	collect_backup_evidence(&r);
	if (o->data_plane)
		collect_data_plane(&r);
	run_flush(&r);
	az_batch_free(r.batch);
	cJSON_Delete(tenant_list);
	*out = r.doc;
	return COLLECT_OK;
}
