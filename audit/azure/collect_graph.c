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
 * What Resource Graph returns is kept as it comes (its extra columns are
 * ignored by the estate loader): VMs without "resources" (their ADE
 * extensions come apart, into vmExtensions, as the estate allows) and
 * without instanceView (Resource Graph keeps only the power state).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/azure/collect_internal.h"
#include "audit/util/armid.h"
#include "audit/util/idmap.h"

#define API_RESOURCE_GRAPH "2024-04-01"
/* The REST API takes at most 1000 subscriptions a request (Resource Graph troubleshooting guide). */
#define GRAPH_MAX_SUBS 1000
/* Rows a page: the service's maximum; set explicitly, older defaults were 100. */
#define GRAPH_PAGE 1000
/* Waiting for the user quota to refill: never longer than this a time. */
#define GRAPH_MAX_QUOTA_WAIT_MS 60000L

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

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Every subscription of a failed batch gets the failure, so its resources' findings say why. */
static void record_batch(struct run *r, const cJSON *batch, const char *query, const struct az_failure *f,
                         const struct kv_err *err)
{
	const cJSON *s;

	cJSON_ArrayForEach(s, batch) {
		char scope[128];
		struct az_failure g = *f;
		char msg[sizeof(g.message)];

		snprintf(scope, sizeof(scope), "/subscriptions/%s", s->valuestring);
		snprintf(msg, sizeof(msg), "Resource Graph query '%s': %.400s", query,
		         f->message[0] ? f->message : err && err->msg[0] ? err->msg : http_outcome_name(f->outcome));
		kv_strlcpy(g.message, msg, sizeof(g.message));
		run_record(r, scope, &g, NULL);
	}
}

/* Waits when the last answer said the user quota is spent (x-ms-user-quota-remaining: 0). */
static void respect_quota(struct run *r)
{
	long wait = r->c->user_quota_resets_ms;

	if (r->c->user_quota_remaining != 0 || wait <= 0)
		return;
	if (wait > GRAPH_MAX_QUOTA_WAIT_MS)
		wait = GRAPH_MAX_QUOTA_WAIT_MS;
	run_progress(r, "Resource Graph quota spent: waiting %ld ms for it to refill", wait);
	sleep_ms(wait);
	r->c->user_quota_remaining = -1;
}

/*
 * Runs one query over one batch of subscriptions, every page ($skipToken),
 * appending the rows to rows.  A failure (HTTP_FORBIDDEN: the caller may not
 * use Resource Graph) is returned with f/err for the caller to act on.
 */
static enum http_outcome graph_run(struct run *r, const char *tenant, const cJSON *batch, const struct graph_query *q,
                                   cJSON *rows, struct az_failure *f, struct kv_err *err)
{
	char *url = kv_asprintf("%s/providers/Microsoft.ResourceGraph/resources?api-version=%s", r->c->cloud->arm,
	                        API_RESOURCE_GRAPH);
	cJSON *body = cJSON_CreateObject(), *options;
	char *token = NULL;
	enum http_outcome o = HTTP_OK;
	int pages = 0;

	cJSON_AddItemToObject(body, "subscriptions", cJSON_Duplicate(batch, true));
	cJSON_AddStringToObject(body, "query", q->kql);
	options = cJSON_AddObjectToObject(body, "options");
	cJSON_AddNumberToObject(options, "$top", GRAPH_PAGE);
	cJSON_AddStringToObject(options, "resultFormat", "objectArray");
	for (;;) {
		cJSON *page = NULL, *data, *it;
		const char *trunc, *next;

		/*
		 * Retried as http.h retries a POST: 429 and 503 with Retry-After, and a connection
		 * that was never made; a 5xx without Retry-After is recorded (docs/security.md).
		 */
		respect_quota(r);
		o = az_post_json(r->c, url, tenant, body, &page, f, err);
		if (o != HTTP_OK) {
			cJSON_Delete(page);
			break;
		}
		pages++;
		data = cJSON_GetObjectItemCaseSensitive(page, "data");
		trunc = jstr(page, "resultTruncated");
		next = jstr(page, "$skipToken");
		if (!cJSON_IsArray(data)) {
			memset(f, 0, sizeof(*f));
			f->outcome = o = HTTP_FATAL;
			snprintf(f->code, sizeof(f->code), "MalformedResponse");
			snprintf(f->message, sizeof(f->message), "$.data: expected an array of rows (resultFormat objectArray)");
			cJSON_Delete(page);
			break;
		}
		while ((it = data->child) != NULL)
			cJSON_AddItemToArray(rows, cJSON_DetachItemViaPointer(data, it));
		/* A string enum ("true"/"false"), not a boolean; "true" without a $skipToken means rows are lost. */
		if (kv_streq_ci(trunc, "true") && kv_empty(next)) {
			memset(f, 0, sizeof(*f));
			f->outcome = o = HTTP_FATAL;
			snprintf(f->code, sizeof(f->code), "ResultTruncated");
			snprintf(f->message, sizeof(f->message),
			         "Resource Graph truncated the result and gave no $skipToken: some rows were not returned");
			cJSON_Delete(page);
			break;
		}
		if (kv_empty(next) || pages >= (r->c->max_pages > 0 ? r->c->max_pages : 10000)) {
			if (!kv_empty(next)) {
				memset(f, 0, sizeof(*f));
				f->outcome = o = HTTP_FATAL;
				snprintf(f->code, sizeof(f->code), "TooManyPages");
				snprintf(f->message, sizeof(f->message), "more than %d pages: stopping", pages);
			}
			cJSON_Delete(page);
			break;
		}
		free(token);
		token = kv_strdup(next);
		cJSON_Delete(page);
		cJSON_DeleteItemFromObjectCaseSensitive(options, "$skipToken");
		cJSON_AddStringToObject(options, "$skipToken", token);
	}
	free(token);
	cJSON_Delete(body);
	free(url);
	return o;
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

bool collect_graph(struct run *r, const char *tenant, const char *bms_oid, const cJSON *subs, bool fallback)
{
	cJSON *rows[Q_COUNT];
	int nsubs = cJSON_GetArraySize(subs);
	bool refused = false;
	const cJSON *it;

	for (int q = 0; q < Q_COUNT; q++)
		rows[q] = cJSON_CreateArray();
	/* The quota is the caller's in this tenant: nothing known yet. */
	r->c->user_quota_remaining = -1;
	r->c->user_quota_resets_ms = -1;
	for (int start = 0; start < nsubs && !refused; start += GRAPH_MAX_SUBS) {
		cJSON *batch = cJSON_CreateArray();

		for (int i = start; i < nsubs && i < start + GRAPH_MAX_SUBS; i++)
			cJSON_AddItemToArray(batch, cJSON_CreateString(cJSON_GetArrayItem(subs, i)->valuestring));
		for (int q = 0; q < Q_COUNT && !refused; q++) {
			struct az_failure f;
			struct kv_err err = {{0}};
			enum http_outcome o = graph_run(r, tenant, batch, &QUERIES[q], rows[q], &f, &err);

			if (o == HTTP_OK)
				continue;
			/*
			 * 403: the caller may not use Resource Graph here; ARM will do.  A 400 is not a
			 * reason to fall back: it says kvaudit sent a query the service could not run,
			 * which must show (recorded, scan incomplete), not hide behind another engine.
			 */
			if (o == HTTP_FORBIDDEN && fallback) {
				refused = true;
				run_progress(r, "tenant %s: Resource Graph refused the caller (%d %s): reading through ARM instead",
				             tenant, f.status, f.code[0] ? f.code : "Forbidden");
			} else {
				record_batch(r, batch, QUERIES[q].name, &f, &err);
			}
		}
		cJSON_Delete(batch);
	}
	if (refused) {
		for (int q = 0; q < Q_COUNT; q++)
			cJSON_Delete(rows[q]);
		return false;
	}
	run_progress(r, "tenant %s: Resource Graph: %d VMs, %d ADE extensions, %d encrypted disks, %d key vaults, "
	             "%d Recovery Services vaults in %d subscriptions", tenant, cJSON_GetArraySize(rows[Q_VMS]),
	             cJSON_GetArraySize(rows[Q_EXTENSIONS]), cJSON_GetArraySize(rows[Q_DISKS]),
	             cJSON_GetArraySize(rows[Q_VAULTS]), cJSON_GetArraySize(rows[Q_RSVS]), nsubs);
	/* What Resource Graph does not hold, from ARM: one list per subscription, all read concurrently. */
	{
		cJSON *vm_subs = subscriptions_of(rows[Q_VMS]), *kv_subs = subscriptions_of(rows[Q_VAULTS]);
		cJSON *views = cJSON_CreateArray(), *ras = cJSON_CreateArray();

		queue_per_subscription(r, vm_subs, "Microsoft.Compute/virtualMachines", API_COMPUTE, "statusOnly=true",
		                       tenant, views);
		queue_per_subscription(r, kv_subs, "Microsoft.Authorization/roleAssignments", API_AUTHORIZATION, NULL,
		                       tenant, ras);
		cJSON_ArrayForEach(it, rows[Q_RSVS])
			collect_protected_items(r, jstr(it, "id"), tenant);
		run_flush(r);
		attach_instance_views(rows[Q_VMS], views);
		keep_vault_role_assignments(r, rows[Q_VAULTS], ras);
		cJSON_Delete(vm_subs);
		cJSON_Delete(kv_subs);
		cJSON_Delete(views);
		cJSON_Delete(ras);
	}
	commit(r, r->vms, "virtualMachines", rows[Q_VMS]);
	commit(r, NULL, "vmExtensions", rows[Q_EXTENSIONS]);
	commit(r, r->disks, "disks", rows[Q_DISKS]);
	commit(r, r->vaults, "vaults", rows[Q_VAULTS]);
	commit(r, r->rsvs, "recoveryServicesVaults", rows[Q_RSVS]);
	collect_custom_roles(r, tenant, bms_oid);
	for (int q = 0; q < Q_COUNT; q++)
		cJSON_Delete(rows[q]);
	return true;
}
