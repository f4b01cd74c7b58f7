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
 * sched.h).  The ARM lists a query's rows call for are queued as soon as
 * that query has all its pages (tenant_advance), so they overlap with the
 * other queries; the results go into the snapshot in the order the tenants
 * were given, and the failures of those lists into errors[] in the order
 * they were queued before (by tenant, then statusOnly lists, role
 * assignments, protected items), whatever order they finish in.
 *
 * What Resource Graph returns is kept as ARM shows it, but only the parts
 * kvaudit reads (QUERIES): VMs without "resources" (their ADE extensions come
 * apart, into vmExtensions, as the estate allows) and without instanceView
 * (Resource Graph keeps only the power state).  Pages and the lists above
 * are parsed into an arena (az_batch_kept_arena) that the snapshot references.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/azure/batch.h"
#include "audit/azure/collect_internal.h"
#include "audit/estate/estate.h"
#include "audit/util/armid.h"
#include "audit/util/fastjson.h"
#include "audit/util/idmap.h"

#define API_RESOURCE_GRAPH "2024-04-01"
/* The REST API takes at most 1000 subscriptions a request (Resource Graph troubleshooting guide). */
#define GRAPH_MAX_SUBS 1000
/* Rows a page: the service's maximum; set explicitly, older defaults were 100. */
#define GRAPH_PAGE 1000

enum { Q_VMS, Q_ADE, Q_VAULTS, Q_RSVS, Q_COUNT };
/* The estate lists the queries fill (Q_ADE two of them). */
enum { L_VMS, L_EXTENSIONS, L_DISKS, L_VAULTS, L_RSVS, L_COUNT };

/*
 * The queries.  Each keeps the ARM JSON the estate loader reads and orders
 * its rows by a unique column (Resource Graph pages in a stable order only
 * then); tostring() because Kusto compares dynamic values with strings only
 * through it.  The emulator (tests/emulator/kql.py) evaluates exactly this
 * subset of KQL and rejects the rest.
 *
 * Q_VMS projects only what is read of a VM (a row of bench/gen_estate.py's
 * shrinks from ~2.8 to ~1.4 KB of JSON, for the service and for kvaudit), and
 * vm_row puts the two nested columns back where ARM has them,
 * properties.storageProfile.{osDisk,dataDisks}:
 *   id, name, location        the estate's VM (estate.c load_vms; id also
 *                             joins instance views, extensions and disks);
 *   type                      what the resource is, as every snapshot row says;
 *   osDisk                    osType (fact vm.os, the inventory's OS), name,
 *                             managedDisk.id (its disk's ADE settings) and
 *                             encryptionSettings (ADE in the VM model): ade.c
 *                             from_vm_model and from_managed_disks;
 *   dataDisks                 each managedDisk.id (ade.c from_managed_disks).
 * The instance view (VM agent, disks' encryption settings, osName) comes from
 * the statusOnly lists (attach_instance_views), ADE extensions and disks from
 * Q_ADE.  Nothing else of a VM is read by the estate, facts, evidence,
 * restore or any rule (rules/catalog reads facts only): not tags, zones,
 * identity, osProfile, networkProfile or hardwareProfile.  Q_ADE's disks
 * likewise keep id, name, type, location, managedBy (the VM it belongs to)
 * and properties.encryptionSettingsCollection (its ADE settings: estate.c
 * load_disks, ade.c from_managed_disk), the only parts of a disk read.
 *
 * Q_ADE gives one row per VM (its ADE extensions and encrypted managed
 * disks; an unattached disk a row of its own) rather than one per resource:
 * at 10,000 VMs a tenant's queries then need 11 pages instead of 21, within
 * Resource Graph's quota of 15 queries per 5 s.  An extension keeps the
 * columns the per-resource query projected (ade.c reads its properties),
 * a disk those above; n counts the rows each
 * row's lists were made of: make_list() keeps at most maxSize values
 * (1048576 by default) and drops the rest without an error, so a row whose
 * lists hold fewer than n is a truncated result (unpack_ade).  At least one
 * column is not dynamic (vm, n): Resource Graph gives no $skipToken for a
 * result whose columns are all dynamic.
 */
static const struct graph_query QUERIES[Q_COUNT] = {
	[Q_VMS] = {"virtual machines",
	           "Resources"
	           " | where type =~ 'microsoft.compute/virtualmachines'"
	           " | project id, name, type, location, osDisk = properties.storageProfile.osDisk,"
	           " dataDisks = properties.storageProfile.dataDisks"
	           " | order by id asc"},
	[Q_ADE] = {"ADE extensions and encrypted managed disks",
	           "Resources"
	           " | where (type =~ 'microsoft.compute/virtualmachines/extensions'"
	           " and tostring(properties.publisher) =~ 'Microsoft.Azure.Security'"
	           " and tostring(properties.type) in~ ('AzureDiskEncryption', 'AzureDiskEncryptionForLinux'))"
	           " or (type =~ 'microsoft.compute/disks' and isnotnull(properties.encryptionSettingsCollection))"
	           " | extend vm = tolower(iff(type =~ 'microsoft.compute/disks', iff(isempty(managedBy), id, managedBy),"
	           " tostring(split(id, '/extensions/')[0])))"
	           " | summarize n = count(),"
	           " extensions = make_list_if(bag_pack('id', id, 'name', name, 'type', type, 'location', location,"
	           " 'subscriptionId', subscriptionId, 'resourceGroup', resourceGroup, 'tags', tags,"
	           " 'properties', properties), type =~ 'microsoft.compute/virtualmachines/extensions'),"
	           " disks = make_list_if(bag_pack('id', id, 'name', name, 'type', type, 'location', location,"
	           " 'managedBy', managedBy, 'properties',"
	           " bag_pack('encryptionSettingsCollection', properties.encryptionSettingsCollection)),"
	           " type =~ 'microsoft.compute/disks')"
	           " by vm"
	           " | order by vm asc"},
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

/* The estate lists each query fills (-1: none), in the order of its rows' arrays. */
static const int QUERY_LISTS[Q_COUNT][2] = {
	[Q_VMS] = {L_VMS, -1}, [Q_ADE] = {L_EXTENSIONS, L_DISKS}, [Q_VAULTS] = {L_VAULTS, -1}, [Q_RSVS] = {L_RSVS, -1},
};

/*
 * The ARM type of each estate list: a failed query is recorded, per
 * subscription, as the list of each type it reads
 * ("/subscriptions/{id}/providers/{type}"), which is what the facts judged
 * from it look up (estate_list_failed).
 */
static const char *const LIST_TYPES[L_COUNT] = {
	[L_VMS] = ESTATE_LIST_VMS, [L_EXTENSIONS] = ESTATE_LIST_VM_EXTENSIONS, [L_DISKS] = ESTATE_LIST_DISKS,
	[L_VAULTS] = ESTATE_LIST_VAULTS, [L_RSVS] = ESTATE_LIST_RSVS,
};

/* Every subscription of a failed batch gets the failure, so its resources' findings say why. */
static void record_batch(struct run *r, const cJSON *batch, const struct graph_query *q, const struct az_failure *f,
                         const struct kv_err *err)
{
	const int *lists = QUERY_LISTS[q - QUERIES];
	const cJSON *s;

	for (int k = 0; k < 2 && lists[k] >= 0; k++)
		cJSON_ArrayForEach(s, batch) {
			char scope[192];
			struct az_failure g = *f;
			char msg[sizeof(g.message)];

			snprintf(scope, sizeof(scope), "/subscriptions/%s/providers/%s", s->valuestring, LIST_TYPES[lists[k]]);
			snprintf(msg, sizeof(msg), "Resource Graph query '%s': %.400s", q->name,
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
	cJSON *rows[2];              /* per QUERY_LISTS */
	int pages;
	bool answered;               /* its first page came back (or could not be sent) */
	bool ended;                  /* every page is in, or it failed */
	bool advanced;               /* what its rows call for is queued (tenant_advance) */
	cJSON *deps;                 /* the ARM lists it called for: one items array each, in queue order */
	cJSON *scopes;               /* ... and their paths, for the order of their failures in errors[] */
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
	bool admitted;               /* every first page came back, none refused: dependents may be queued */
	struct gquery *qs;           /* batch after batch, each in QUERIES order */
	size_t nq;
	int active;                  /* queries not finished */
	size_t answered;             /* queries whose first page came back */
	cJSON *rows[L_COUNT];        /* every batch's rows, per estate list (tenant_commit) */
	cJSON *views, *ras, *items;  /* from ARM: statusOnly lists, role assignment lists, protected items */
	struct fastjson_arena *arena;   /* its pages and lists (az_batch_kept_arena) */
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
static void tenant_advance(struct gtenant *t);

/*
 * The first answer of each query decides the fallback: a refusal (403, with
 * fallback) hands the tenant to the ARM engine before anything was queued
 * for it, so nothing read for it through Resource Graph's rows is left to
 * duplicate or contradict what the ARM engine reads.  A 403 on a later page
 * is that query's failure (recorded), as the tenant's dependents may be
 * queued by then.
 */
static void first_answer(struct gquery *g, enum http_outcome o, const struct az_failure *f)
{
	struct gtenant *t = g->t;

	if (g->answered)
		return;
	g->answered = true;
	t->answered++;
	if (o == HTTP_FORBIDDEN && t->fallback && !t->refused) {
		t->refused = true;
		run_progress(t->r, "tenant %s: Resource Graph refused the caller (%d %s): reading through ARM instead",
		             t->tenant, f->status, f->code[0] ? f->code : "Forbidden");
	}
}

static void query_end(struct gquery *g)
{
	g->ended = true;
	g->t->active--;
}

/* Sends the query's next page (its first, or the one its $skipToken names). */
static void query_send(struct gquery *g)
{
	struct az_batch *b = run_batch(g->t->r);

	if (b) {
		az_batch_query_in(b, g->t->url, g->t->tenant, g->body, g->t->arena, page_done, g);
		return;
	}
	query_failed(g, HTTP_FATAL, "InternalError", "cannot start concurrent requests");
	first_answer(g, g->o, &g->f);
	query_end(g);
}

/*
 * Q_ADE's rows (one per VM) into its two lists; false (the query failed)
 * when a row is not of the query's shape or its lists hold fewer resources
 * than it counted: make_list() cut them, and a disk or extension that is
 * missing must make its findings error, not pass.
 */
static bool unpack_ade(struct gquery *g, cJSON *data)
{
	const cJSON *row;

	cJSON_ArrayForEach(row, data) {
		cJSON *lists[2] = {cJSON_GetObjectItemCaseSensitive(row, "extensions"),
		                   cJSON_GetObjectItemCaseSensitive(row, "disks")};
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(row, "n");
		char msg[256];

		if (!cJSON_IsArray(lists[0]) || !cJSON_IsArray(lists[1]) || !cJSON_IsNumber(n)) {
			query_failed(g, HTTP_FATAL, "MalformedResponse",
			             "$.data[]: expected rows of n, extensions and disks (the query's summarize)");
			return false;
		}
		if (cJSON_GetArraySize(lists[0]) + cJSON_GetArraySize(lists[1]) != n->valuedouble) {
			snprintf(msg, sizeof(msg), "make_list() returned %d of the %.0f resources of %.120s: some were not returned",
			         cJSON_GetArraySize(lists[0]) + cJSON_GetArraySize(lists[1]), n->valuedouble,
			         jstr(row, "vm") ? jstr(row, "vm") : "a VM");
			query_failed(g, HTTP_FATAL, "ResultTruncated", msg);
			return false;
		}
	}
	cJSON_ArrayForEach(row, data)
		for (int k = 0; k < 2; k++) {
			cJSON *list = cJSON_GetObjectItemCaseSensitive(row, k ? "disks" : "extensions"), *it;

			while ((it = list->child) != NULL)
				cJSON_AddItemToArray(g->rows[k], az_batch_ref(cJSON_DetachItemViaPointer(list, it)));
		}
	return true;
}

static int by_id(const void *a, const void *b)
{
	const char *x = jstr(*(cJSON *const *)a, "id"), *y = jstr(*(cJSON *const *)b, "id");

	return strcmp(x ? x : "", y ? y : "");
}

/* Orders arr by id, as the per-resource queries' `order by id asc` did (the snapshot does not change). */
static void sort_by_id(cJSON *arr)
{
	size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
	cJSON **v = kv_calloc(n + 1, sizeof(*v)), *it;

	while ((it = arr->child) != NULL)
		v[i++] = cJSON_DetachItemViaPointer(arr, it);
	qsort(v, n, sizeof(*v), by_id);
	for (i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, v[i]);
	free(v);
}

/* An empty object in arena a. */
static cJSON *arena_object(struct fastjson_arena *a)
{
	cJSON *o = fastjson_alloc(a, sizeof(*o));

	memset(o, 0, sizeof(*o));
	o->type = cJSON_Object;
	return o;
}

/*
 * Adds v (a detached node of an arena's tree, or arena_object's) to the
 * arena object obj as key, a string constant: the node's own key is the
 * arena's and must not reach free(), as cJSON_AddItemToObject would send it.
 */
static cJSON *link_child(cJSON *obj, const char *key, cJSON *v)
{
	v->string = NULL;
	v->type &= ~cJSON_StringIsConst;
	cJSON_AddItemToObjectCS(obj, key, v);
	return v;
}

/*
 * A Q_VMS row as ARM shows the VM: its osDisk and dataDisks columns back
 * under properties.storageProfile (a null column, as Resource Graph gives
 * for a VM without the path, left out), so the estate loader reads it as
 * the ARM engine's VM.
 */
static cJSON *vm_row(struct fastjson_arena *a, cJSON *row)
{
	static const char *const cols[] = {"osDisk", "dataDisks"};
	cJSON *props, *sp;

	if (!cJSON_IsObject(row))
		return row;   /* the loader says what is wrong with it */
	(void)cJSON_DetachItemFromObjectCaseSensitive(row, "properties");   /* the arena's: left there */
	props = link_child(row, "properties", arena_object(a));
	sp = link_child(props, "storageProfile", arena_object(a));
	for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++) {
		cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(row, cols[k]);

		if (v && !cJSON_IsNull(v))
			link_child(sp, cols[k], v);
	}
	return row;
}

/*
 * A page arrived: its rows are appended, then the next page is asked for, or
 * the query ends.  A failure (HTTP_FORBIDDEN: the caller may not use Resource
 * Graph) ends it too; first_answer and tenant_queries_done act on it.
 */
static void page_done(void *ud, enum http_outcome o, cJSON *page, const struct az_failure *f, const struct kv_err *err)
{
	struct gquery *g = ud;
	struct run *r = g->t->r;
	cJSON *data, *it, *options;
	const char *trunc, *next;
	int max = r->c->max_pages > 0 ? r->c->max_pages : 10000;

	first_answer(g, o, f);
	if (o != HTTP_OK) {
		g->o = o;
		g->f = *f;
		g->err = *err;
		goto end;
	}
	if (g->t->refused)
		goto end;   /* the ARM engine reads the tenant: no more pages */
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
	if (g->q == &QUERIES[Q_ADE]) {
		if (!unpack_ade(g, data))
			goto end;
	} else if (g->q == &QUERIES[Q_VMS]) {
		while ((it = data->child) != NULL)
			cJSON_AddItemToArray(g->rows[0], az_batch_ref(vm_row(g->t->arena, cJSON_DetachItemViaPointer(data, it))));
	} else {
		while ((it = data->child) != NULL)
			cJSON_AddItemToArray(g->rows[0], az_batch_ref(cJSON_DetachItemViaPointer(data, it)));
	}
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
	query_send(g);
	tenant_advance(g->t);
	return;
end:
	/* page is the arena's (az_batch_query_in): its rows are referenced, the rest stays there. */
	(void)page;
	if (g->q == &QUERIES[Q_ADE]) {
		sort_by_id(g->rows[0]);
		sort_by_id(g->rows[1]);
	}
	query_end(g);
	tenant_advance(g->t);
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

/* One ARM list a query's rows called for (queue_per_subscription). */
struct glist {
	struct run *r;
	char *path;
};

/* A list is in: its failure recorded with its path (detach_list_failures orders them), its items are in place. */
static void list_done(void *ud, enum http_outcome o, cJSON *body, const struct az_failure *f, const struct kv_err *err)
{
	struct glist *l = ud;

	(void)body;
	if (o != HTTP_OK)
		run_record(l->r, l->path, f, err);
	free(l->path);
	free(l);
}

/*
 * Queues one ARM list per subscription of the query's rows, parsed into the
 * tenant's arena (their items become the snapshot's: instance views, role
 * assignments); g->deps keeps each result array alive, g->scopes the paths.
 */
static void queue_per_subscription(struct gquery *g, const char *provider, const char *api, const char *extra)
{
	struct run *r = g->t->r;
	cJSON *subs = subscriptions_of(g->rows[0]);
	const cJSON *s;

	cJSON_ArrayForEach(s, subs) {
		char path[256];
		cJSON *items = cJSON_CreateArray();
		struct az_batch *b = run_batch(r);
		struct glist *l;
		char *url;

		cJSON_AddItemToArray(g->deps, items);
		snprintf(path, sizeof(path), "/subscriptions/%s/providers/%s", s->valuestring, provider);
		if (!armid_valid_for_url(path))
			continue;
		cJSON_AddItemToArray(g->scopes, cJSON_CreateString(path));
		if (!b) {
			struct az_failure f = {HTTP_FATAL, 0, "InternalError", "cannot start concurrent requests"};

			run_record(r, path, &f, NULL);
			continue;
		}
		l = kv_calloc(1, sizeof(*l));
		l->r = r;
		l->path = kv_strdup(path);
		url = kv_asprintf("%s%s?api-version=%s%s%s", r->c->cloud->arm, path, api, extra ? "&" : "", extra ? extra : "");
		az_batch_list_in(b, url, g->t->tenant, items, g->t->arena, list_done, l);
		free(url);
	}
	cJSON_Delete(subs);
}

/*
 * What Resource Graph does not hold, from ARM, for the rows of one finished
 * query: the VMs' subscriptions' statusOnly lists, the key vaults'
 * subscriptions' role assignments, each Recovery Services vault's protected
 * items.  Rows of a query that failed half-way are used as far as they go.
 */
static void queue_dependents(struct gquery *g)
{
	const cJSON *it;

	if (g->q == &QUERIES[Q_VMS]) {
		queue_per_subscription(g, "Microsoft.Compute/virtualMachines", API_COMPUTE, "statusOnly=true");
	} else if (g->q == &QUERIES[Q_VAULTS]) {
		queue_per_subscription(g, "Microsoft.Authorization/roleAssignments", API_AUTHORIZATION, NULL);
	} else if (g->q == &QUERIES[Q_RSVS]) {
		cJSON_ArrayForEach(it, g->rows[0]) {
			const char *id = jstr(it, "id");
			cJSON *items = cJSON_CreateArray();

			cJSON_AddItemToArray(g->deps, items);
			collect_protected_items(g->t->r, id, g->t->tenant, items);
			if (id) {
				/* collect_protected_items' scopes: the vault when its ID is refused, else its list */
				char *path = kv_asprintf("%s/backupProtectedItems", id);

				cJSON_AddItemToArray(g->scopes, cJSON_CreateString(id));
				cJSON_AddItemToArray(g->scopes, cJSON_CreateString(path));
				free(path);
			}
		}
	}
}

/* Queues the dependents of the tenant's finished queries, once it is known Resource Graph serves the caller. */
static void tenant_advance(struct gtenant *t)
{
	if (t->refused)
		return;
	if (!t->admitted) {
		if (!t->fallback || t->answered == t->nq)
			t->admitted = true;
		else
			return;
	}
	for (size_t i = 0; i < t->nq; i++) {
		struct gquery *g = &t->qs[i];

		if (g->ended && !g->advanced) {
			g->advanced = true;
			queue_dependents(g);
		}
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
			/* Both trees are arenas' (vm_row, list_in): what is replaced stays there. */
			(void)cJSON_DetachItemFromObjectCaseSensitive(into, "instanceView");
			link_child(into, "instanceView", cJSON_DetachItemViaPointer(props, iv));
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
	t->arena = az_batch_kept_arena();
	for (int l = 0; l < L_COUNT; l++)
		t->rows[l] = cJSON_CreateArray();
	t->views = cJSON_CreateArray();
	t->ras = cJSON_CreateArray();
	t->items = cJSON_CreateArray();
	t->nq = nbatch * Q_COUNT;
	t->qs = kv_calloc(t->nq ? t->nq : 1, sizeof(*t->qs));
	for (size_t i = 0; i < t->nq; i++) {
		struct gquery *g = &t->qs[i];
		int start = (int)(i / Q_COUNT) * GRAPH_MAX_SUBS;
		cJSON *options;

		g->t = t;
		g->q = &QUERIES[i % Q_COUNT];
		g->rows[0] = cJSON_CreateArray();
		g->rows[1] = cJSON_CreateArray();
		g->deps = cJSON_CreateArray();
		g->scopes = cJSON_CreateArray();
		g->subs = cJSON_CreateArray();
		for (int k = start; k < nsubs && k < start + GRAPH_MAX_SUBS; k++)
			cJSON_AddItemToArray(g->subs, cJSON_CreateString(cJSON_GetArrayItem(subs, k)->valuestring));
		g->body = cJSON_CreateObject();
		cJSON_AddItemToObject(g->body, "subscriptions", cJSON_Duplicate(g->subs, true));
		cJSON_AddStringToObject(g->body, "query", g->q->kql);
		options = cJSON_AddObjectToObject(g->body, "options");
		cJSON_AddNumberToObject(options, "$top", GRAPH_PAGE);
		cJSON_AddStringToObject(options, "resultFormat", "objectArray");
	}
	/* Every query of every batch at once: the batch keeps them within the caller's quota (sched.h). */
	for (size_t i = 0; i < t->nq; i++) {
		t->active++;
		query_send(&t->qs[i]);
	}
	tenant_advance(t);
}

/* Moves the items of from into to, in order. */
static void move_items(cJSON *to, cJSON *from)
{
	cJSON *it;

	while ((it = from->child) != NULL)
		cJSON_AddItemToArray(to, cJSON_DetachItemViaPointer(from, it));
}

/*
 * The tenant's queries and what they called for are in: a refusal (403,
 * with fallback) hands the tenant to the ARM engine; else the queries'
 * failures are recorded and their rows and lists gathered, batch by batch.
 */
static void tenant_queries_done(struct run *r, struct gtenant *t)
{
	if (t->refused) {
		collect_arm(r, t->tenant, t->bms_oid, t->subs);
		return;
	}
	for (size_t i = 0; i < t->nq; i++) {
		struct gquery *g = &t->qs[i];
		const int *lists = QUERY_LISTS[i % Q_COUNT];

		/*
		 * A 400 is not a reason to fall back: it says kvaudit sent a query the service could not
		 * run, which must show (recorded, scan incomplete), not hide behind another engine.
		 */
		if (g->o != HTTP_OK)
			record_batch(r, g->subs, g->q, &g->f, &g->err);
		for (int k = 0; k < 2 && lists[k] >= 0; k++)
			move_items(t->rows[lists[k]], g->rows[k]);
	}
	/* The ARM lists, batch by batch: the snapshot keeps the order whatever finished first. */
	for (size_t i = 0; i < t->nq; i++) {
		struct gquery *g = &t->qs[i];
		cJSON *held;

		if (g->q == &QUERIES[Q_VMS])
			move_items(t->views, g->deps);
		else if (g->q == &QUERIES[Q_VAULTS])
			move_items(t->ras, g->deps);
		else if (g->q == &QUERIES[Q_RSVS])
			cJSON_ArrayForEach(held, g->deps)
				move_items(t->items, held);
	}
	run_progress(r, "tenant %s: Resource Graph: %d VMs, %d ADE extensions, %d encrypted disks, %d key vaults, "
	             "%d Recovery Services vaults in %d subscriptions", t->tenant, cJSON_GetArraySize(t->rows[L_VMS]),
	             cJSON_GetArraySize(t->rows[L_EXTENSIONS]), cJSON_GetArraySize(t->rows[L_DISKS]),
	             cJSON_GetArraySize(t->rows[L_VAULTS]), cJSON_GetArraySize(t->rows[L_RSVS]),
	             cJSON_GetArraySize(t->subs));
}

/* The ARM reads are in: everything into the snapshot, in the tenant's turn. */
static void tenant_commit(struct run *r, struct gtenant *t)
{
	cJSON *it;

	attach_instance_views(t->rows[L_VMS], t->views);
	keep_vault_role_assignments(r, t->rows[L_VAULTS], t->ras);
	commit(r, r->vms, "virtualMachines", t->rows[L_VMS]);
	commit(r, NULL, "vmExtensions", t->rows[L_EXTENSIONS]);
	commit(r, r->disks, "disks", t->rows[L_DISKS]);
	commit(r, r->vaults, "vaults", t->rows[L_VAULTS]);
	commit(r, r->rsvs, "recoveryServicesVaults", t->rows[L_RSVS]);
	while ((it = t->items->child) != NULL)
		cJSON_AddItemToArray(r->items, cJSON_DetachItemViaPointer(t->items, it));
	collect_custom_roles(r, t->tenant, t->bms_oid);
}

static void gtenant_free(struct gtenant *t)
{
	for (size_t i = 0; i < t->nq; i++) {
		cJSON_Delete(t->qs[i].subs);
		cJSON_Delete(t->qs[i].body);
		cJSON_Delete(t->qs[i].rows[0]);
		cJSON_Delete(t->qs[i].rows[1]);
		cJSON_Delete(t->qs[i].deps);
		cJSON_Delete(t->qs[i].scopes);
	}
	for (int l = 0; l < L_COUNT; l++)
		cJSON_Delete(t->rows[l]);
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

struct ranked {
	cJSON *e;
	size_t rank, seq;   /* seq: the order recorded, between equal ranks */
};

static int by_rank(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * The failures recorded while the queries ran (errors[] from index from on)
 * are those of the lists they called for, recorded in the order the lists
 * were queued, which depends on which query finished first.  They are put
 * back in the order of before: by tenant, then statusOnly lists, role
 * assignments and protected items, each batch by batch; any other failure
 * after them, in its own order.
 */
static cJSON *detach_list_failures(struct run *r, int from)
{
	struct idmap order;
	size_t rank = 0, n = 0, size = (size_t)cJSON_GetArraySize(r->errors);
	struct ranked *v;
	cJSON *late = cJSON_CreateArray(), *e, *next;
	const int kinds[] = {Q_VMS, Q_VAULTS, Q_RSVS};

	if ((int)size <= from)
		return late;
	idmap_init(&order);
	for (struct gtenant *t = r->graph; t; t = t->next)
		for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
			for (size_t i = (size_t)kinds[k]; i < t->nq; i += Q_COUNT) {
				const cJSON *sc;

				cJSON_ArrayForEach(sc, t->qs[i].scopes)
					idmap_put(&order, sc->valuestring, rank++);
			}
	v = kv_calloc(size - (size_t)from, sizeof(*v));
	for (e = cJSON_GetArrayItem(r->errors, from); e; e = next) {
		const char *scope = jstr(e, "scope");
		size_t at;

		next = e->next;
		v[n].e = cJSON_DetachItemViaPointer(r->errors, e);
		v[n].rank = scope && idmap_get(&order, scope, &at) ? at : rank;
		v[n].seq = n;
		n++;
	}
	qsort(v, n, sizeof(*v), by_rank);
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(late, v[i].e);
	free(v);
	idmap_release(&order);
	return late;
}

void collect_graph_finish(struct run *r)
{
	struct gtenant *t, *next;
	int from = cJSON_GetArraySize(r->errors);
	cJSON *late;

	if (!r->graph)
		return;
	/* Every tenant's queries at once (with whatever else is queued), and the ARM lists they call for. */
	run_flush(r);
	late = detach_list_failures(r, from);
	for (t = r->graph; t; t = t->next)
		tenant_queries_done(r, t);
	move_items(r->errors, late);
	cJSON_Delete(late);
	for (t = r->graph; t; t = next) {
		next = t->next;
		if (!t->refused)
			tenant_commit(r, t);
		gtenant_free(t);
	}
	r->graph = NULL;
}
