/*
 * collect_graph.c - the Resource Graph engine of a live collection
 * (--engine graph, the default): the resources every subscription of a
 * tenant holds come from a few KQL queries, declared in QUERIES below, sent
 * to POST {arm}/providers/Microsoft.ResourceGraph/resources for up to
 * GRAPH_MAX_SUBS subscriptions at once and paged with $skipToken, so the
 * cost of a scan grows with result pages, not with VMs.  ARM is asked only
 * for what Resource Graph does not hold: the VM agent's state (instance
 * views, one statusOnly list per subscription with VMs), role assignments
 * (one list per subscription with key vaults), custom role definitions and
 * protected items (collect.c).  docs/azure-api.md lists every request.
 *
 * Everything runs concurrently (batch.h): collect_graph queues a tenant's
 * queries, each paged in order, and collect_graph_finish runs every
 * tenant's at once, within each caller's quota (x-ms-user-quota-remaining,
 * sched.h), then every tenant's ARM lists at once, and puts the results
 * into the snapshot in the order the tenants were given.
 *
 * What Resource Graph returns is kept as it comes (its extra columns are
 * ignored by the estate loader): VMs without "resources" (their ADE
 * extensions come apart, into vmExtensions, as the estate allows) and
 * without instanceView (Resource Graph keeps only the power state).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/azure/batch.h"
#include "audit/azure/collect_internal.h"
#include "audit/estate/estate.h"
#include "audit/util/armid.h"
#include "audit/util/idmap.h"

#define API_RESOURCE_GRAPH "2024-04-01"
/* The REST API takes at most 1000 subscriptions a request (Resource Graph troubleshooting guide). */
#define GRAPH_MAX_SUBS 1000
/* Rows a page: the service's maximum; set explicitly, older defaults were 100. */
#define GRAPH_PAGE 1000

enum { Q_VMS, Q_EXTENSIONS, Q_DISKS, Q_VAULTS, Q_RSVS, Q_COUNT };

/*
 * The queries, one per estate list.  Each projects id (Resource Graph pages
 * in a stable order only then) and keeps the ARM JSON the estate loader
 * reads (properties whole); tostring() because Kusto compares dynamic
 * values with strings only through it.  The emulator (tests/emulator/kql.py)
 * evaluates exactly this subset of KQL and rejects the rest.
 */
static const struct graph_query QUERIES[Q_COUNT] = {
	[Q_VMS] = {"virtual machines",
	           "Resources"
	           " | where type =~ 'microsoft.compute/virtualmachines'"
	           " | project id, name, type, location, subscriptionId, resourceGroup, tenantId, tags, zones,"
	           " identity, properties"
	           " | order by id asc"},
	[Q_EXTENSIONS] = {"ADE extensions",
	                  "Resources"
	                  " | where type =~ 'microsoft.compute/virtualmachines/extensions'"
	                  " | where tostring(properties.publisher) =~ 'Microsoft.Azure.Security'"
	                  " and tostring(properties.type) in~ ('AzureDiskEncryption', 'AzureDiskEncryptionForLinux')"
	                  " | project id, name, type, location, subscriptionId, resourceGroup, tags, properties"
	                  " | order by id asc"},
	[Q_DISKS] = {"encrypted managed disks",
	             "Resources"
	             " | where type =~ 'microsoft.compute/disks'"
	             " | where isnotnull(properties.encryptionSettingsCollection)"
	             " | project id, name, type, location, subscriptionId, resourceGroup, managedBy, sku, zones, tags,"
	             " properties"
	             " | order by id asc"},
	[Q_VAULTS] = {"key vaults",
	              "Resources"
	              " | where type =~ 'microsoft.keyvault/vaults'"
	              " | project id, name, type, location, subscriptionId, resourceGroup, tags, properties"
	              " | order by id asc"},
	[Q_RSVS] = {"Recovery Services vaults",
	            "Resources"
	            " | where type =~ 'microsoft.recoveryservices/vaults'"
	            " | project id, name, type, location, subscriptionId, resourceGroup, sku, tags, identity, properties"
	            " | order by id asc"},
};

const struct graph_query *collect_graph_queries(size_t *n)
{
	*n = Q_COUNT;
	return QUERIES;
}

unsigned collect_shard_of(const char *subscription_id, unsigned n)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a offset basis */

	if (n == 0)
		return 0;
	for (const char *p = subscription_id ? subscription_id : ""; *p; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		h ^= ch;
		h *= 1099511628211ULL;          /* FNV prime */
	}
	return (unsigned)(h % n);
}

bool collect_shard_parse(const char *s, unsigned *k, unsigned *n)
{
	char *end;
	unsigned long a, b;

	if (!s || *s < '0' || *s > '9')
		return false;
	a = strtoul(s, &end, 10);
	if (*end != '/' || end[1] < '0' || end[1] > '9')
		return false;
	b = strtoul(end + 1, &end, 10);
	if (*end || a < 1 || b < 1 || a > b || b > 1000)
		return false;
	*k = (unsigned)a;
	*n = (unsigned)b;
	return true;
}

/*
 * The ARM type each query lists: a failed query is recorded, per subscription,
 * as that type's list ("/subscriptions/{id}/providers/{type}"), which is what
 * the facts judged from it look up (estate_list_failed).
 */
static const char *const QUERY_TYPES[Q_COUNT] = {
	[Q_VMS] = ESTATE_LIST_VMS, [Q_EXTENSIONS] = ESTATE_LIST_VM_EXTENSIONS, [Q_DISKS] = ESTATE_LIST_DISKS,
	[Q_VAULTS] = ESTATE_LIST_VAULTS, [Q_RSVS] = ESTATE_LIST_RSVS,
};

/* Every subscription of a failed batch gets the failure, so its resources' findings say why. */
static void record_batch(struct run *r, const cJSON *batch, const struct graph_query *q, const struct az_failure *f,
                         const struct kv_err *err)
{
	const char *query = q->name;
	const cJSON *s;

	cJSON_ArrayForEach(s, batch) {
		char scope[192];
		struct az_failure g = *f;
		char msg[sizeof(g.message)];

		snprintf(scope, sizeof(scope), "/subscriptions/%s/providers/%s", s->valuestring, QUERY_TYPES[q - QUERIES]);
		snprintf(msg, sizeof(msg), "Resource Graph query '%s': %.400s", query,
		         f->message[0] ? f->message : err && err->msg[0] ? err->msg : http_outcome_name(f->outcome));
		kv_strlcpy(g.message, msg, sizeof(g.message));
		run_record(r, scope, &g, NULL);
	}
}

struct gtenant;

/* One query over one batch of subscriptions: its pages, in order, one after another. */
struct gquery {
	struct gtenant *t;
	const struct graph_query *q;
	cJSON *subs;                 /* the batch's subscription IDs */
	cJSON *body;                 /* the QueryRequest; its $skipToken changes page by page */
	cJSON *rows;
	int pages;
	enum http_outcome o;
	struct az_failure f;
	struct kv_err err;
};

/* One tenant's part: queued by collect_graph, completed by collect_graph_finish. */
struct gtenant {
	struct run *r;
	char *tenant, *bms_oid, *url;
	cJSON *subs;                 /* every subscription ID, for the ARM engine if Resource Graph refuses */
	bool fallback, refused;
	struct gquery *qs;           /* batch after batch, each in QUERIES order */
	size_t nq;
	int active;                  /* queries not finished */
	cJSON *rows[Q_COUNT];        /* every batch's rows, per query */
	cJSON *views, *ras, *items;  /* from ARM: statusOnly lists, role assignment lists, protected items */
	struct gtenant *next;
};

static void query_failed(struct gquery *g, enum http_outcome o, const char *code, const char *message)
{
	memset(&g->f, 0, sizeof(g->f));
	g->f.outcome = g->o = o;
	snprintf(g->f.code, sizeof(g->f.code), "%s", code);
	snprintf(g->f.message, sizeof(g->f.message), "%s", message);
}

static void page_done(void *ud, enum http_outcome o, cJSON *page, const struct az_failure *f, const struct kv_err *err);

static void query_end(struct gquery *g)
{
	g->t->active--;
}

/* Sends the query's next page (its first, or the one its $skipToken names). */
static void query_send(struct gquery *g)
{
	struct az_batch *b = run_batch(g->t->r);

	if (b) {
		az_batch_query(b, g->t->url, g->t->tenant, g->body, page_done, g);
		return;
	}
	query_failed(g, HTTP_FATAL, "InternalError", "cannot start concurrent requests");
	query_end(g);
}

/*
 * A page arrived: its rows are appended, then the next page is asked for, or
 * the query ends.  A failure (HTTP_FORBIDDEN: the caller may not use Resource
 * Graph) ends it too; tenant_queries_done acts on it.
 */
static void page_done(void *ud, enum http_outcome o, cJSON *page, const struct az_failure *f, const struct kv_err *err)
{
	struct gquery *g = ud;
	struct run *r = g->t->r;
	cJSON *data, *it, *options;
	const char *trunc, *next;
	int max = r->c->max_pages > 0 ? r->c->max_pages : 10000;

	if (o != HTTP_OK) {
		g->o = o;
		g->f = *f;
		g->err = *err;
		goto end;
	}
	g->pages++;
	data = cJSON_GetObjectItemCaseSensitive(page, "data");
	trunc = jstr(page, "resultTruncated");
	next = jstr(page, "$skipToken");
	/* The batch holds the tenant's queries back until the quota refills (sched.h): say why it waits. */
	if (r->c->user_quota_remaining == 0 && r->c->user_quota_resets_ms > 0 && (!kv_empty(next) || g->t->active > 1))
		run_progress(r, "tenant %s: Resource Graph quota spent: waiting %ld ms for it to refill", g->t->tenant,
		             r->c->user_quota_resets_ms);
	if (!cJSON_IsArray(data)) {
		query_failed(g, HTTP_FATAL, "MalformedResponse", "$.data: expected an array of rows (resultFormat objectArray)");
		goto end;
	}
	while ((it = data->child) != NULL)
		cJSON_AddItemToArray(g->rows, cJSON_DetachItemViaPointer(data, it));
	/* A string enum ("true"/"false"), not a boolean; "true" without a $skipToken means rows are lost. */
	if (kv_streq_ci(trunc, "true") && kv_empty(next)) {
		query_failed(g, HTTP_FATAL, "ResultTruncated",
		             "Resource Graph truncated the result and gave no $skipToken: some rows were not returned");
		goto end;
	}
	if (kv_empty(next))
		goto end;
	if (g->pages >= max) {
		char msg[64];

		snprintf(msg, sizeof(msg), "more than %d pages: stopping", g->pages);
		query_failed(g, HTTP_FATAL, "TooManyPages", msg);
		goto end;
	}
	options = cJSON_GetObjectItemCaseSensitive(g->body, "options");
	cJSON_DeleteItemFromObjectCaseSensitive(options, "$skipToken");
	cJSON_AddStringToObject(options, "$skipToken", next);
	cJSON_Delete(page);
	query_send(g);
	return;
end:
	cJSON_Delete(page);
	query_end(g);
}

/* The objects of arr by ID (a VM list of 10,000 is joined in O(n), not O(n^2)). */
static cJSON **index_by_id(cJSON *arr, struct idmap *m)
{
	cJSON **v = kv_calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*v));
	cJSON *it;
	size_t n = 0;

	idmap_init(m);
	cJSON_ArrayForEach(it, arr)
		if (jstr(it, "id") && idmap_put(m, jstr(it, "id"), n))
			v[n++] = it;
	return v;
}

/* The subscription IDs the rows' IDs name, each once, in order. */
static cJSON *subscriptions_of(const cJSON *rows)
{
	cJSON *subs = cJSON_CreateArray();
	struct idmap seen;
	const cJSON *it;
	size_t n = 0;

	idmap_init(&seen);
	cJSON_ArrayForEach(it, rows) {
		char sub[64] = "";
		const char *id = jstr(it, "id");

		if (id && sscanf(id, "/subscriptions/%63[^/]", sub) == 1 && idmap_put(&seen, sub, n++))
			cJSON_AddItemToArray(subs, cJSON_CreateString(sub));
	}
	idmap_release(&seen);
	return subs;
}

/* Queues one ARM list per subscription; hold keeps each subscription's result array alive. */
static void queue_per_subscription(struct run *r, const cJSON *subs, const char *provider, const char *api,
                                   const char *extra, const char *tenant, cJSON *hold)
{
	const cJSON *s;

	cJSON_ArrayForEach(s, subs) {
		char path[256];
		cJSON *items = cJSON_CreateArray();

		cJSON_AddItemToArray(hold, items);
		snprintf(path, sizeof(path), "/subscriptions/%s/providers/%s", s->valuestring, provider);
		if (armid_valid_for_url(path))
			run_queue_list(r, path, api, extra, tenant, items);
	}
}

/* Attaches the instance views of the statusOnly lists to the VMs Resource Graph returned. */
static void attach_instance_views(cJSON *vms, cJSON *lists)
{
	struct idmap ix;
	cJSON **byid = index_by_id(vms, &ix);
	cJSON *views, *v;

	cJSON_ArrayForEach(views, lists)
		cJSON_ArrayForEach(v, views) {
			cJSON *props = cJSON_GetObjectItemCaseSensitive(v, "properties"), *iv, *into;
			size_t k;

			iv = cJSON_GetObjectItemCaseSensitive(props, "instanceView");
			if (!cJSON_IsObject(iv) || !jstr(v, "id") || !idmap_get(&ix, jstr(v, "id"), &k))
				continue;
			into = cJSON_GetObjectItemCaseSensitive(byid[k], "properties");
			if (!cJSON_IsObject(into))
				continue;
			cJSON_DeleteItemFromObjectCaseSensitive(into, "instanceView");
			cJSON_AddItemToObject(into, "instanceView", cJSON_DetachItemViaPointer(props, iv));
		}
	idmap_release(&ix);
	free(byid);
}

/*
 * Role assignments at or above each key vault, from the subscriptions' lists:
 * the same set the ARM engine's per-vault atScope() lists give, those at a
 * vault, its resource group or subscription, or above the subscription (a
 * management group or the root, which a subscription's list shows only when
 * they are inherited).
 */
static void keep_vault_role_assignments(struct run *r, const cJSON *vaults, cJSON *lists)
{
	struct idmap holds;   /* every vault ID, its resource group and its subscription */
	const cJSON *v;
	cJSON *all, *ra, *keep = cJSON_CreateArray();
	size_t n = 0;

	idmap_init(&holds);
	cJSON_ArrayForEach(v, vaults) {
		char sub[64] = "", rg[128] = "", scope[256];
		const char *id = jstr(v, "id");

		if (!id || sscanf(id, "/subscriptions/%63[^/]/resourceGroups/%127[^/]", sub, rg) != 2)
			continue;
		idmap_put(&holds, id, n++);
		snprintf(scope, sizeof(scope), "/subscriptions/%s/resourceGroups/%s", sub, rg);
		idmap_put(&holds, scope, n++);
		snprintf(scope, sizeof(scope), "/subscriptions/%s", sub);
		idmap_put(&holds, scope, n++);
	}
	cJSON_ArrayForEach(all, lists)
		while ((ra = all->child) != NULL) {
			const char *scope = jstr(cJSON_GetObjectItemCaseSensitive(ra, "properties"), "scope");
			char key[512];
			size_t len, ignored;
			bool wanted = false;

			cJSON_DetachItemViaPointer(all, ra);
			if (scope) {
				len = strlen(scope);
				while (len > 1 && scope[len - 1] == '/')
					len--;
				snprintf(key, sizeof(key), "%.*s", (int)len, scope);
				wanted = !kv_startswith_ci(key, "/subscriptions/") || idmap_get(&holds, key, &ignored);
			}
			if (wanted)
				cJSON_AddItemToArray(keep, ra);
			else
				cJSON_Delete(ra);
		}
	json_merge_unique(r->ras, keep);
	cJSON_Delete(keep);
	idmap_release(&holds);
}

/* Moves the rows into the estate list name (created when absent), skipping IDs already there. */
static void commit(struct run *r, cJSON *list, const char *name, cJSON *rows)
{
	struct idmap ix;
	cJSON **byid, *it;
	size_t n;

	if (!list) {
		list = cJSON_GetObjectItemCaseSensitive(r->doc, name);
		if (!list)
			list = cJSON_AddArrayToObject(r->doc, name);
	}
	byid = index_by_id(list, &ix);
	n = (size_t)cJSON_GetArraySize(list);
	while ((it = rows->child) != NULL) {
		cJSON_DetachItemViaPointer(rows, it);
		if (jstr(it, "id") && !idmap_put(&ix, jstr(it, "id"), n++))
			cJSON_Delete(it);
		else
			cJSON_AddItemToArray(list, it);
	}
	idmap_release(&ix);
	free(byid);
}

void collect_graph(struct run *r, const char *tenant, const char *bms_oid, const cJSON *subs, bool fallback)
{
	struct gtenant *t = kv_calloc(1, sizeof(*t)), **tail = (struct gtenant **)&r->graph;
	int nsubs = cJSON_GetArraySize(subs);
	size_t nbatch = (size_t)(nsubs + GRAPH_MAX_SUBS - 1) / GRAPH_MAX_SUBS;

	while (*tail)
		tail = &(*tail)->next;
	*tail = t;
	t->r = r;
	t->tenant = kv_strdup(tenant);
	t->bms_oid = bms_oid ? kv_strdup(bms_oid) : NULL;
	t->url = kv_asprintf("%s/providers/Microsoft.ResourceGraph/resources?api-version=%s", r->c->cloud->arm,
	                     API_RESOURCE_GRAPH);
	t->subs = cJSON_Duplicate(subs, true);
	t->fallback = fallback;
	for (int q = 0; q < Q_COUNT; q++)
		t->rows[q] = cJSON_CreateArray();
	t->views = cJSON_CreateArray();
	t->ras = cJSON_CreateArray();
	t->items = cJSON_CreateArray();
	t->nq = nbatch * Q_COUNT;
	t->qs = kv_calloc(t->nq ? t->nq : 1, sizeof(*t->qs));
	/* Every query of every batch at once: the batch keeps them within the caller's quota (sched.h). */
	for (size_t i = 0; i < t->nq; i++) {
		struct gquery *g = &t->qs[i];
		int start = (int)(i / Q_COUNT) * GRAPH_MAX_SUBS;
		cJSON *options;

		g->t = t;
		g->q = &QUERIES[i % Q_COUNT];
		g->rows = cJSON_CreateArray();
		g->subs = cJSON_CreateArray();
		for (int k = start; k < nsubs && k < start + GRAPH_MAX_SUBS; k++)
			cJSON_AddItemToArray(g->subs, cJSON_CreateString(cJSON_GetArrayItem(subs, k)->valuestring));
		g->body = cJSON_CreateObject();
		cJSON_AddItemToObject(g->body, "subscriptions", cJSON_Duplicate(g->subs, true));
		cJSON_AddStringToObject(g->body, "query", g->q->kql);
		options = cJSON_AddObjectToObject(g->body, "options");
		cJSON_AddNumberToObject(options, "$top", GRAPH_PAGE);
		cJSON_AddStringToObject(options, "resultFormat", "objectArray");
		t->active++;
		query_send(g);
	}
}

/*
 * The tenant's queries are in: a refusal (403, with fallback) hands the
 * tenant to the ARM engine; else their failures are recorded and what
 * Resource Graph does not hold is queued from ARM, one list per subscription.
 */
static void tenant_queries_done(struct run *r, struct gtenant *t)
{
	cJSON *vm_subs, *kv_subs;
	const cJSON *it;

	for (size_t i = 0; i < t->nq && !t->refused; i++)
		if (t->qs[i].o == HTTP_FORBIDDEN && t->fallback) {
			t->refused = true;
			run_progress(r, "tenant %s: Resource Graph refused the caller (%d %s): reading through ARM instead",
			             t->tenant, t->qs[i].f.status, t->qs[i].f.code[0] ? t->qs[i].f.code : "Forbidden");
		}
	if (t->refused) {
		collect_arm(r, t->tenant, t->bms_oid, t->subs);
		return;
	}
	for (size_t i = 0; i < t->nq; i++) {
		struct gquery *g = &t->qs[i];
		cJSON *row;

		/*
		 * A 400 is not a reason to fall back: it says kvaudit sent a query the service could not
		 * run, which must show (recorded, scan incomplete), not hide behind another engine.
		 */
		if (g->o != HTTP_OK)
			record_batch(r, g->subs, g->q, &g->f, &g->err);
		while ((row = g->rows->child) != NULL)
			cJSON_AddItemToArray(t->rows[i % Q_COUNT], cJSON_DetachItemViaPointer(g->rows, row));
	}
	run_progress(r, "tenant %s: Resource Graph: %d VMs, %d ADE extensions, %d encrypted disks, %d key vaults, "
	             "%d Recovery Services vaults in %d subscriptions", t->tenant, cJSON_GetArraySize(t->rows[Q_VMS]),
	             cJSON_GetArraySize(t->rows[Q_EXTENSIONS]), cJSON_GetArraySize(t->rows[Q_DISKS]),
	             cJSON_GetArraySize(t->rows[Q_VAULTS]), cJSON_GetArraySize(t->rows[Q_RSVS]),
	             cJSON_GetArraySize(t->subs));
	vm_subs = subscriptions_of(t->rows[Q_VMS]);
	kv_subs = subscriptions_of(t->rows[Q_VAULTS]);
	queue_per_subscription(r, vm_subs, "Microsoft.Compute/virtualMachines", API_COMPUTE, "statusOnly=true", t->tenant,
	                       t->views);
	queue_per_subscription(r, kv_subs, "Microsoft.Authorization/roleAssignments", API_AUTHORIZATION, NULL, t->tenant,
	                       t->ras);
	/* Into the tenant's own array: the snapshot keeps the tenants' order whatever finishes first. */
	cJSON_ArrayForEach(it, t->rows[Q_RSVS])
		collect_protected_items(r, jstr(it, "id"), t->tenant, t->items);
	cJSON_Delete(vm_subs);
	cJSON_Delete(kv_subs);
}

/* The ARM reads are in: everything into the snapshot, in the tenant's turn. */
static void tenant_commit(struct run *r, struct gtenant *t)
{
	cJSON *it;

	attach_instance_views(t->rows[Q_VMS], t->views);
	keep_vault_role_assignments(r, t->rows[Q_VAULTS], t->ras);
	commit(r, r->vms, "virtualMachines", t->rows[Q_VMS]);
	commit(r, NULL, "vmExtensions", t->rows[Q_EXTENSIONS]);
	commit(r, r->disks, "disks", t->rows[Q_DISKS]);
	commit(r, r->vaults, "vaults", t->rows[Q_VAULTS]);
	commit(r, r->rsvs, "recoveryServicesVaults", t->rows[Q_RSVS]);
	while ((it = t->items->child) != NULL)
		cJSON_AddItemToArray(r->items, cJSON_DetachItemViaPointer(t->items, it));
	collect_custom_roles(r, t->tenant, t->bms_oid);
}

static void gtenant_free(struct gtenant *t)
{
	for (size_t i = 0; i < t->nq; i++) {
		cJSON_Delete(t->qs[i].subs);
		cJSON_Delete(t->qs[i].body);
		cJSON_Delete(t->qs[i].rows);
	}
	for (int q = 0; q < Q_COUNT; q++)
		cJSON_Delete(t->rows[q]);
	free(t->qs);
	cJSON_Delete(t->subs);
	cJSON_Delete(t->views);
	cJSON_Delete(t->ras);
	cJSON_Delete(t->items);
	free(t->tenant);
	free(t->bms_oid);
	free(t->url);
	free(t);
}

void collect_graph_finish(struct run *r)
{
	struct gtenant *t, *next;

	if (!r->graph)
		return;
	/* Every tenant's queries at once (with whatever else is queued), then every tenant's ARM lists at once. */
	run_flush(r);
	for (t = r->graph; t; t = t->next)
		tenant_queries_done(r, t);
	run_flush(r);
	for (t = r->graph; t; t = next) {
		next = t->next;
		if (!t->refused)
			tenant_commit(r, t);
		gtenant_free(t);
	}
	r->graph = NULL;
}
