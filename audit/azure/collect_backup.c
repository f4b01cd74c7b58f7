/*
 * collect_backup.c - what Azure Backup itself says, read-only through ARM
 * and Microsoft Graph (docs/azure-api.md): for every Recovery Services vault
 * that protects a VM, its backup jobs since --since (default 7 days) and its
 * backup policies; from the Activity Log of its resource group (90 days) the
 * writes that enabled protection, and from Graph whether each identity that
 * made one is a Member or a Guest of the vault's tenant.  Failures go to
 * errors[] with the list they concern, so the evidence rules of those VMs are
 * `error`, never `pass`.  The reads run concurrently (run_queue_list), the
 * snapshot keeps the vaults' order whichever finishes first.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/azure/collect_internal.h"
#include "audit/estate/evidence.h"
#include "audit/util/armid.h"

#define API_ACTIVITY_LOG "2015-04-01"
#define ACTIVITY_LOG_DAYS 90
#define DEFAULT_SINCE (7LL * 86400)

bool collect_parse_since(const char *s, long long *seconds)
{
	char *end = NULL;
	long long n, unit;

	if (!s || !isdigit((unsigned char)s[0]))
		return false;
	n = strtoll(s, &end, 10);
	if (!end || end[0] == '\0' || end[1] != '\0')
		return false;
	unit = end[0] == 'd' ? 86400 : end[0] == 'h' ? 3600 : 0;
	/* The Activity Log and job history keep 90 days at most. */
	if (!unit || n <= 0 || n * unit > ACTIVITY_LOG_DAYS * 86400LL)
		return false;
	*seconds = n * unit;
	return true;
}

/* t as "2026-11-28T12:00:00Z" (ISO) or "2026-11-28 12:00:00 PM" (the jobs filter's format). */
static void fmt_time(long long t, bool jobs_style, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, n, jobs_style ? "%Y-%m-%d %I:%M:%S %p" : "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Percent-encodes a $filter value for a query string. */
static char *query_escape(const char *s)
{
	struct kv_buf b;

	kv_buf_init(&b, 8192);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (isalnum(ch) || strchr("-._~", ch))
			kv_buf_addc(&b, (char)ch);
		else
			kv_buf_addf(&b, "%%%02X", ch);
	}
	return kv_buf_detach(&b);
}

/* The tenant of subscription sub in the run, or NULL. */
static const char *sub_tenant(const struct run *r, const char *sub)
{
	const cJSON *s;

	cJSON_ArrayForEach(s, r->subs)
		if (kv_streq_ci(jstr(s, "subscriptionId"), sub))
			return jstr(s, "tenantId");
	return NULL;
}

/* Whether some protected item of the run lies in the Recovery Services vault rsv. */
static bool rsv_protects(const struct run *r, const char *rsv)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, r->items)
		if (jstr(it, "id") && armid_scope_contains(rsv, jstr(it, "id")))
			return true;
	return false;
}

static bool is_guid(const char *s)
{
	if (!s || strlen(s) != 36)
		return false;
	for (size_t i = 0; i < 36; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* Copies the events that enabled (or changed) protection of an item in vault rsv. */
static void keep_protect_events(const char *rsv, const cJSON *from, cJSON *to)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, from) {
		const char *op = jstr(cJSON_GetObjectItemCaseSensitive(it, "operationName"), "value");
		const char *rid = jstr(it, "resourceId");

		if (kv_streq_ci(op, EVIDENCE_PROTECT_OPERATION) && rid && armid_scope_contains(rsv, rid) &&
		    !json_has_id(to, jstr(it, "id")))
			cJSON_AddItemToArray(to, cJSON_Duplicate(it, true));
	}
}

/* A Graph user read queued for one identity in one tenant. */
struct principal_read {
	char oid[40], tenant[40];
	cJSON *user;
};

/*
 * Graph: queues a read of the user behind each event's caller, in the
 * vault's tenant (Member or Guest), once per identity and tenant.
 */
static void queue_principals(struct run *r, const cJSON *events, const char *tenant, struct principal_read ***reads,
                             size_t *n, size_t *cap)
{
	const cJSON *ev;

	cJSON_ArrayForEach(ev, events) {
		const cJSON *claims = cJSON_GetObjectItemCaseSensitive(ev, "claims");
		const char *oid = jstr(claims, "http://schemas.microsoft.com/identity/claims/objectidentifier");
		struct principal_read *p;
		bool seen = false;
		char scope[200], *url;

		/* Apps and managed identities have no user principal name and no userType to read. */
		if (!jstr(claims, "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn") && !jstr(claims, "upn"))
			continue;
		if (!is_guid(oid) || !tenant || strlen(tenant) >= sizeof(p->tenant))
			continue;
		for (size_t i = 0; i < *n && !seen; i++)
			seen = kv_streq_ci((*reads)[i]->oid, oid) && kv_streq_ci((*reads)[i]->tenant, tenant);
		if (seen)
			continue;
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			*reads = kv_realloc(*reads, *cap * sizeof(**reads));
		}
		/* Each its own allocation: run_flush writes the body through &p->user. */
		p = (*reads)[(*n)++] = kv_calloc(1, sizeof(*p));
		snprintf(p->oid, sizeof(p->oid), "%s", oid);
		snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
		url = kv_asprintf("%s/v1.0/users/%s?$select=id,userType,userPrincipalName,displayName", r->c->cloud->graph,
		                  oid);
		snprintf(scope, sizeof(scope), "graph:/v1.0/users/%s (tenant %s)", oid, tenant);
		run_queue_get(r, scope, url, tenant, &p->user);
		free(url);
	}
}

/* What a vault's evidence comes from, queued: its Activity Log read (shared per resource group) and tenant. */
struct vault_read {
	const char *id, *tenant;
	cJSON *raw;   /* borrowed from the run's per-resource-group reads */
};

void collect_backup_evidence(struct run *r)
{
	long long now = (long long)time(NULL);
	long long since = now - (r->o->since_seconds > 0 ? r->o->since_seconds : DEFAULT_SINCE);
	char t_since[40], t_now[40], a_since[40], a_now[40];
	cJSON *jobs, *policies, *events, *principals, *done = cJSON_CreateObject();   /* resource group -> events */
	const cJSON *rsv;
	char *jf, *pf;
	struct vault_read *vaults = kv_calloc((size_t)cJSON_GetArraySize(r->rsvs) + 1, sizeof(*vaults));
	struct principal_read **reads = NULL;
	size_t nv = 0, nreads = 0, cap = 0;

	fmt_time(since, false, a_since, sizeof(a_since));
	cJSON_AddStringToObject(r->doc, "backupJobsSince", a_since);
	jobs = cJSON_AddArrayToObject(r->doc, "backupJobs");
	policies = cJSON_AddArrayToObject(r->doc, "backupPolicies");
	events = cJSON_AddArrayToObject(r->doc, "activityLog");
	principals = cJSON_AddArrayToObject(r->doc, "principals");
	fmt_time(since, true, t_since, sizeof(t_since));
	fmt_time(now, true, t_now, sizeof(t_now));
	{
		char *filter = kv_asprintf("backupManagementType eq 'AzureIaasVM' and startTime eq '%s' and endTime eq '%s'",
		                           t_since, t_now);
		char *esc = query_escape(filter);

		jf = kv_asprintf("$filter=%s", esc);
		free(esc);
		free(filter);
		esc = query_escape("backupManagementType eq 'AzureIaasVM'");
		pf = kv_asprintf("$filter=%s", esc);
		free(esc);
	}
	fmt_time(now - ACTIVITY_LOG_DAYS * 86400LL, false, a_since, sizeof(a_since));
	fmt_time(now, false, a_now, sizeof(a_now));

	/*
	 * Every vault's lists queued at once; run_flush fills jobs and policies
	 * in the order they were queued (the vaults' order) and records each
	 * failure with the list it concerns, whatever order they finish in.
	 */
	cJSON_ArrayForEach(rsv, r->rsvs) {
		const char *id = jstr(rsv, "id");
		char sub[64], rg[128], *path;
		const char *tenant;

		if (!id || !rsv_protects(r, id) || !run_safe_id(r, id) ||
		    !armid_segment(id, "subscriptions", sub, sizeof(sub)) ||
		    !armid_segment(id, "resourceGroups", rg, sizeof(rg)))
			continue;
		tenant = sub_tenant(r, sub);
		path = kv_asprintf("%s/backupJobs", id);
		run_queue_list(r, path, API_PROTECTED_ITEMS, jf, tenant, jobs);
		free(path);
		path = kv_asprintf("%s/backupPolicies", id);
		run_queue_list(r, path, API_PROTECTED_ITEMS, pf, tenant, policies);
		free(path);
		/*
		 * The Activity Log filters by resource group (one of its few accepted
		 * patterns, and the one that includes the vault's protected items);
		 * only the protection writes below this vault are kept.
		 */
		{
			char key[256];
			cJSON *raw;

			/* Two vaults in one resource group share one read. */
			snprintf(key, sizeof(key), "/subscriptions/%s/resourceGroups/%s", sub, rg);
			kv_lower(key);
			raw = cJSON_GetObjectItemCaseSensitive(done, key);
			if (!raw) {
				char *filter = kv_asprintf("eventTimestamp ge '%s' and eventTimestamp le '%s' and "
				                           "resourceGroupName eq '%s'", a_since, a_now, rg);
				char *esc = query_escape(filter), *extra = kv_asprintf("$filter=%s", esc);

				raw = cJSON_AddArrayToObject(done, key);
				path = kv_asprintf("/subscriptions/%s/providers/Microsoft.Insights/eventtypes/management/values", sub);
				run_queue_list(r, path, API_ACTIVITY_LOG, extra, tenant, raw);
				free(path);
				free(extra);
				free(esc);
				free(filter);
			}
			vaults[nv].id = id;
			vaults[nv].tenant = tenant;
			vaults[nv++].raw = raw;
		}
	}
	run_flush(r);
	/* The protection events per vault, in the vaults' order; the Graph reads of their callers at once. */
	for (size_t i = 0; i < nv; i++) {
		cJSON *found = cJSON_CreateArray();

		keep_protect_events(vaults[i].id, vaults[i].raw, found);
		queue_principals(r, found, vaults[i].tenant, &reads, &nreads, &cap);
		json_merge_unique(events, found);
		cJSON_Delete(found);
	}
	run_flush(r);
	for (size_t i = 0; i < nreads; i++) {
		const struct principal_read *p = reads[i];
		cJSON *user = p->user;

		if (!user)
			continue;   /* the failure is recorded */
		if (!cJSON_IsObject(user)) {
			struct az_failure f = {HTTP_FATAL, 200, "MalformedResponse", "expected a user object"};
			char scope[200];

			snprintf(scope, sizeof(scope), "graph:/v1.0/users/%s (tenant %s)", p->oid, p->tenant);
			run_record(r, scope, &f, NULL);
			cJSON_Delete(user);
			continue;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(user, "@odata.context");
		cJSON_AddStringToObject(user, "tenantId", p->tenant);
		if (!jstr(user, "id"))
			cJSON_AddStringToObject(user, "id", p->oid);
		cJSON_AddItemToArray(principals, user);
	}
	run_progress(r, "Azure Backup: %d jobs, %d policies, %d protection events, %d principals",
	             cJSON_GetArraySize(jobs), cJSON_GetArraySize(policies), cJSON_GetArraySize(events),
	             cJSON_GetArraySize(principals));
	for (size_t i = 0; i < nreads; i++)
		free(reads[i]);
	free(reads);
	free(vaults);
	free(jf);
	free(pf);
	cJSON_Delete(done);
}
