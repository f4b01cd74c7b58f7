/*
 * collect_backup.c - what Azure Backup itself says, read-only through ARM
 * and Microsoft Graph (docs/azure-api.md): for every Recovery Services vault
 * that protects a VM, its backup jobs since --since (default 7 days) and its
 * backup policies; from the Activity Log of its resource group (90 days) the
 * writes that enabled protection, and from Graph whether each identity that
 * made one is a Member or a Guest of the vault's tenant.  Failures go to
 * errors[] with the list they concern, so the evidence rules of those VMs are
 * `error`, never `pass`.  A vault's jobs, the longest of its lists, start
 * as soon as the vault is known (collect_backup_vault_known), its other
 * reads as soon as its protected items are in (collect_backup_items_read;
 * both called by both engines), so they overlap the engines' own reads,
 * and the Graph reads of the users a
 * resource group's Activity Log names as soon as it is in (ev_log_done); the
 * snapshot and errors[] keep the vaults' order whichever finishes first.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/azure/batch.h"
#include "audit/azure/collect_internal.h"
#include "audit/estate/evidence.h"
#include "audit/util/armid.h"
#include "audit/util/fastjson.h"
#include "audit/util/idmap.h"

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

/*
 * A Graph user read of one identity in one tenant: started as soon as an
 * Activity Log page names the identity (principal_start), or by
 * queue_principals; its failure is recorded when collect_backup_evidence
 * takes it, so errors[] keeps the order of before.
 */
struct principal_read {
	char oid[40], tenant[40];
	struct az_answer a;   /* a.body: the user */
	bool taken;
};

/* The identity behind an event that enabled protection, when it is a user whose userType can be read. */
static const char *event_user(const cJSON *ev)
{
	const cJSON *claims = cJSON_GetObjectItemCaseSensitive(ev, "claims");
	const char *oid = jstr(claims, "http://schemas.microsoft.com/identity/claims/objectidentifier");

	/* Apps and managed identities have no user principal name and no userType to read. */
	if (!jstr(claims, "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn") && !jstr(claims, "upn"))
		return NULL;
	return is_guid(oid) ? oid : NULL;
}

/* The read of oid in tenant, started now unless it was (reads: every one started, in order). */
static struct principal_read *principal_start(struct run *r, const char *oid, const char *tenant,
                                              struct principal_read ***reads, size_t *n, size_t *cap)
{
	struct principal_read *p;
	struct az_batch *b;
	char *url;

	for (size_t i = 0; i < *n; i++)
		if (kv_streq_ci((*reads)[i]->oid, oid) && kv_streq_ci((*reads)[i]->tenant, tenant))
			return (*reads)[i];
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*reads = kv_realloc(*reads, *cap * sizeof(**reads));
	}
	/* Each its own allocation: the batch writes the answer through it. */
	p = (*reads)[(*n)++] = kv_calloc(1, sizeof(*p));
	snprintf(p->oid, sizeof(p->oid), "%s", oid);
	snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
	url = kv_asprintf("%s/v1.0/users/%s?$select=id,userType,userPrincipalName,displayName", r->c->cloud->graph, oid);
	b = run_batch(r);
	if (az_answer_start(&p->a, b))
		az_batch_get_ahead(b, url, tenant, az_answer_done, &p->a);
	free(url);
	return p;
}

/*
 * Graph: the read of the user behind each event's caller, in the vault's
 * tenant (Member or Guest), once per identity and tenant, into taken (in
 * order); reads started early (from the Activity Log's pages) are used.
 */
static void queue_principals(struct run *r, const cJSON *events, const char *tenant, struct principal_read ***reads,
                             size_t *n, size_t *cap, struct principal_read ***taken, size_t *nt, size_t *capt)
{
	const cJSON *ev;

	cJSON_ArrayForEach(ev, events) {
		const char *oid = event_user(ev);
		struct principal_read *p;

		if (!oid || !tenant || strlen(tenant) >= sizeof(p->tenant))
			continue;
		p = principal_start(r, oid, tenant, reads, n, cap);
		if (p->taken)
			continue;
		p->taken = true;
		if (*nt == *capt) {
			*capt = *capt ? *capt * 2 : 16;
			*taken = kv_realloc(*taken, *capt * sizeof(**taken));
		}
		(*taken)[(*nt)++] = p;
	}
}

/*
 * One evidence list, read on its own: outside run_flush's queue, so that a
 * read started early (collect_backup_items_read, while the engines still
 * run) records its failure only when collect_backup_evidence reaches it in
 * the vaults' order, exactly where a read started there would.
 */
struct ev_list {
	char *scope;
	cJSON *items;   /* what was read, even of a list that failed half-way: references into an arena */
	struct az_answer a;
};

/* The Activity Log of one resource group (its vaults share it). */
struct ev_rg {
	struct ev_list log;
	bool recorded;   /* its failure is in errors[] (at its first vault in the vaults' order) */
	struct run *r;   /* for ev_log_done */
	char *tenant;    /* its subscription's */
};

/* What one vault's evidence comes from. */
struct ev_vault {
	struct ev_list jobs, policies;
	struct ev_rg *rg;   /* shared; owned by struct ev_reads; NULL until vault_rest */
	char *tenant;
	const char *id;     /* the vault's ID as the snapshot has it (set when taken) */
	bool used;          /* taken by collect_backup_evidence */
};

/* The run's evidence reads (r->backup): by vault ID and by resource group, in the order started. */
struct ev_reads {
	long long now;   /* the end of every time window, fixed at the first read */
	char *jf, *pf;   /* the jobs' and policies' $filter */
	char a_since[40], a_now[40];
	/*
	 * The pages, parsed into arenas (az_batch_list_in) rather than by cJSON,
	 * whose nodes cost a malloc and a free each: the jobs' and policies'
	 * (kept: the snapshot references their items, moved there untouched)
	 * and the Activity Log's (copied from, so freed with the reads).
	 */
	struct fastjson_arena *kept, log;
	struct ev_vault **v;
	struct ev_rg **g;
	size_t nv, ng, capv, capg;
	struct idmap vix, gix;
	struct principal_read **p;   /* the Graph user reads started, in order */
	size_t np, capp;
};

static void ev_list_done(void *ud, enum http_outcome o, cJSON *body, const struct az_failure *f,
                         const struct kv_err *err)
{
	az_answer_done(&((struct ev_list *)ud)->a, o, body, f, err);
}

/*
 * A resource group's Activity Log is in: the Graph reads of the users whose
 * writes enabled protection there start now, not after every other read
 * (collect_backup_evidence takes those of its vaults' events; one of an event
 * of a vault that protects nothing is read and left unused).
 */
static void ev_log_done(void *ud, enum http_outcome o, cJSON *body, const struct az_failure *f,
                        const struct kv_err *err)
{
	struct ev_rg *g = (struct ev_rg *)((char *)ud - offsetof(struct ev_rg, log));
	struct ev_reads *e = g->r->backup;
	const cJSON *ev;

	ev_list_done(ud, o, body, f, err);
	if (!g->tenant || strlen(g->tenant) >= sizeof(e->p[0]->tenant))
		return;
	cJSON_ArrayForEach(ev, g->log.items) {
		const char *op = jstr(cJSON_GetObjectItemCaseSensitive(ev, "operationName"), "value");
		const char *oid = event_user(ev);

		if (oid && kv_streq_ci(op, EVIDENCE_PROTECT_OPERATION) && jstr(ev, "resourceId"))
			principal_start(g->r, oid, g->tenant, &e->p, &e->np, &e->capp);
	}
}

static void ev_list_start(struct run *r, struct ev_list *l, const char *path, const char *api, const char *extra,
                          const char *tenant, struct fastjson_arena *a, az_batch_fn done)
{
	struct az_batch *b = run_batch(r);
	char *url = kv_asprintf("%s%s?api-version=%s&%s", r->c->cloud->arm, path, api, extra);

	l->scope = kv_strdup(path);
	l->items = cJSON_CreateArray();
	if (az_answer_start(&l->a, b))
		az_batch_list_in(b, url, tenant, l->items, a, done, l);
	free(url);
}

/* Records the list's failure (scope: its ARM path) and moves what it read into to. */
static void ev_list_take(struct run *r, struct ev_list *l, cJSON *to)
{
	cJSON *it;

	if (l->a.o != HTTP_OK)
		run_record(r, l->scope, &l->a.f, &l->a.err);
	l->a.o = HTTP_OK;   /* recorded once */
	while (to && (it = l->items->child) != NULL)
		cJSON_AddItemToArray(to, cJSON_DetachItemViaPointer(l->items, it));
}

static void ev_list_release(struct ev_list *l)
{
	free(l->scope);
	cJSON_Delete(l->items);
}

static struct ev_reads *ev_reads_of(struct run *r)
{
	struct ev_reads *e = r->backup;
	long long since;
	char t_since[40], t_now[40];

	if (e)
		return e;
	e = r->backup = kv_calloc(1, sizeof(*e));
	e->now = (long long)time(NULL);
	e->kept = az_batch_kept_arena();
	since = e->now - (r->o->since_seconds > 0 ? r->o->since_seconds : DEFAULT_SINCE);
	fmt_time(since, true, t_since, sizeof(t_since));
	fmt_time(e->now, true, t_now, sizeof(t_now));
	{
		char *filter = kv_asprintf("backupManagementType eq 'AzureIaasVM' and startTime eq '%s' and endTime eq '%s'",
		                           t_since, t_now);
		char *esc = query_escape(filter);

		e->jf = kv_asprintf("$filter=%s", esc);
		free(esc);
		free(filter);
		esc = query_escape("backupManagementType eq 'AzureIaasVM'");
		e->pf = kv_asprintf("$filter=%s", esc);
		free(esc);
	}
	fmt_time(e->now - ACTIVITY_LOG_DAYS * 86400LL, false, e->a_since, sizeof(e->a_since));
	fmt_time(e->now, false, e->a_now, sizeof(e->a_now));
	idmap_init(&e->vix);
	idmap_init(&e->gix);
	return e;
}

/*
 * Starts the jobs list of vault id (in subscription sub), the longest chain
 * of pages of the vault's reads (batch.c CHAINS): as soon as the vault is
 * known (collect_backup_vault_known), not when its protected items are in.
 */
static struct ev_vault *vault_new(struct run *r, const char *id, const char *sub)
{
	struct ev_reads *e = ev_reads_of(r);
	const char *tenant = sub_tenant(r, sub);
	struct ev_vault *v = kv_calloc(1, sizeof(*v));
	char *path = kv_asprintf("%s/backupJobs", id);

	ev_list_start(r, &v->jobs, path, API_PROTECTED_ITEMS, e->jf, tenant, e->kept, ev_list_done);
	free(path);
	v->tenant = tenant ? kv_strdup(tenant) : NULL;
	if (e->nv == e->capv) {
		e->capv = e->capv ? e->capv * 2 : 16;
		e->v = kv_realloc(e->v, e->capv * sizeof(*e->v));
	}
	e->v[e->nv] = v;
	idmap_put(&e->vix, id, e->nv++);
	return v;
}

/*
 * The rest of vault v's reads (id, in subscription sub, resource group rg),
 * once it is known to protect a VM: its policies and its resource group's
 * Activity Log, unless a vault there started it already.
 */
static void vault_rest(struct run *r, struct ev_vault *v, const char *id, const char *sub, const char *rg)
{
	struct ev_reads *e = ev_reads_of(r);
	char key[256], *path;
	size_t k;

	if (v->rg)
		return;
	path = kv_asprintf("%s/backupPolicies", id);
	ev_list_start(r, &v->policies, path, API_PROTECTED_ITEMS, e->pf, v->tenant, e->kept, ev_list_done);
	free(path);
	/*
	 * The Activity Log filters by resource group (one of its few accepted
	 * patterns, and the one that includes the vault's protected items);
	 * only the protection writes below this vault are kept.  Two vaults in
	 * one resource group share one read.
	 */
	snprintf(key, sizeof(key), "/subscriptions/%s/resourceGroups/%s", sub, rg);
	kv_lower(key);
	if (idmap_get(&e->gix, key, &k)) {
		v->rg = e->g[k];
	} else {
		char *filter = kv_asprintf("eventTimestamp ge '%s' and eventTimestamp le '%s' and resourceGroupName eq '%s'",
		                           e->a_since, e->a_now, rg);
		char *esc = query_escape(filter), *extra = kv_asprintf("$filter=%s", esc);

		if (e->ng == e->capg) {
			e->capg = e->capg ? e->capg * 2 : 16;
			e->g = kv_realloc(e->g, e->capg * sizeof(*e->g));
		}
		v->rg = e->g[e->ng] = kv_calloc(1, sizeof(*v->rg));
		v->rg->r = r;
		v->rg->tenant = v->tenant ? kv_strdup(v->tenant) : NULL;
		idmap_put(&e->gix, key, e->ng++);
		path = kv_asprintf("/subscriptions/%s/providers/Microsoft.Insights/eventtypes/management/values", sub);
		ev_list_start(r, &v->rg->log, path, API_ACTIVITY_LOG, extra, v->tenant, &e->log, ev_log_done);
		free(path);
		free(extra);
		free(esc);
		free(filter);
	}
}

/* Whether id is a vault whose evidence can be read: a URL-safe ID with a subscription and a resource group. */
static bool vault_parts(const char *id, char *sub, size_t nsub, char *rg, size_t nrg)
{
	return id && armid_valid_for_url(id) && armid_segment(id, "subscriptions", sub, nsub) &&
	       armid_segment(id, "resourceGroups", rg, nrg);
}

/* The reads of vault id started early (jobs at least), or NULL. */
static struct ev_vault *vault_started(const struct run *r, const char *id)
{
	const struct ev_reads *e = r->backup;
	size_t k;

	return e && idmap_get(&e->vix, id, &k) ? e->v[k] : NULL;
}

void collect_backup_vault_known(struct run *r, const char *rsv_id)
{
	char sub[64], rg[128];

	/*
	 * Its jobs start now, whether or not it protects a VM (its protected
	 * items, which say so, are read meanwhile): a vault that protects none
	 * costs one read, of a list that is then empty or left unused.
	 */
	if (vault_parts(rsv_id, sub, sizeof(sub), rg, sizeof(rg)) && !vault_started(r, rsv_id))
		vault_new(r, rsv_id, sub);
}

void collect_backup_items_read(struct run *r, const char *path, const cJSON *items)
{
	static const char suffix[] = "/backupProtectedItems";
	size_t n = path ? strlen(path) : 0;
	char *id, sub[64], rg[128];
	const cJSON *it;
	bool protects = false;

	if (n <= sizeof(suffix) - 1 || !kv_streq_ci(path + n - (sizeof(suffix) - 1), suffix))
		return;
	id = kv_strndup(path, n - (sizeof(suffix) - 1));
	cJSON_ArrayForEach(it, items)
		if (jstr(it, "id") && armid_scope_contains(id, jstr(it, "id")))
			protects = true;
	/* Only what collect_backup_evidence would read; it decides again, and reads anything missed here. */
	if (protects && vault_parts(id, sub, sizeof(sub), rg, sizeof(rg))) {
		struct ev_vault *v = vault_started(r, id);

		vault_rest(r, v ? v : vault_new(r, id, sub), id, sub, rg);
	}
	free(id);
}

/* The reads of vault id, started early or now; an early read serves one vault entry only. */
static struct ev_vault *vault_take(struct run *r, const char *id, const char *sub, const char *rg)
{
	struct ev_vault *v = vault_started(r, id);

	if (!v || v->used)
		v = vault_new(r, id, sub);
	vault_rest(r, v, id, sub, rg);
	v->used = true;
	v->id = id;
	return v;
}

static void ev_reads_free(struct run *r)
{
	struct ev_reads *e = r->backup;

	if (!e)
		return;
	for (size_t i = 0; i < e->nv; i++) {
		ev_list_release(&e->v[i]->jobs);
		ev_list_release(&e->v[i]->policies);
		free(e->v[i]->tenant);
		free(e->v[i]);
	}
	for (size_t i = 0; i < e->ng; i++) {
		ev_list_release(&e->g[i]->log);
		free(e->g[i]->tenant);
		free(e->g[i]);
	}
	for (size_t i = 0; i < e->np; i++) {
		cJSON_Delete(e->p[i]->a.body);   /* NULL when taken into principals[] */
		free(e->p[i]);
	}
	free(e->p);
	free(e->v);
	free(e->g);
	idmap_release(&e->vix);
	idmap_release(&e->gix);
	fastjson_arena_free(&e->log);   /* after its references (ev_list_release) */
	free(e->jf);
	free(e->pf);
	free(e);
	r->backup = NULL;
}

void collect_backup_evidence(struct run *r)
{
	struct ev_reads *e = ev_reads_of(r);
	long long since = e->now - (r->o->since_seconds > 0 ? r->o->since_seconds : DEFAULT_SINCE);
	char a_since[40];
	cJSON *jobs, *policies, *events, *principals;
	const cJSON *rsv;
	struct ev_vault **vaults = kv_calloc((size_t)cJSON_GetArraySize(r->rsvs) + 1, sizeof(*vaults));
	struct principal_read **reads = NULL;
	size_t nv = 0, nreads = 0, cap = 0;
	struct idmap seen;

	fmt_time(since, false, a_since, sizeof(a_since));
	cJSON_AddStringToObject(r->doc, "backupJobsSince", a_since);
	jobs = cJSON_AddArrayToObject(r->doc, "backupJobs");
	policies = cJSON_AddArrayToObject(r->doc, "backupPolicies");
	events = cJSON_AddArrayToObject(r->doc, "activityLog");
	principals = cJSON_AddArrayToObject(r->doc, "principals");

	/*
	 * The vaults that protect a VM, in the snapshot's order; most have their
	 * reads under way since their protected items came in (started early,
	 * collect_backup_items_read), the others start now.  Whatever order they
	 * finish in, jobs and policies go into the snapshot, and each failure
	 * into errors[], in the vaults' order.
	 */
	cJSON_ArrayForEach(rsv, r->rsvs) {
		const char *id = jstr(rsv, "id");
		char sub[64], rg[128];

		if (!id || !rsv_protects(r, id) || !run_safe_id(r, id) ||
		    !armid_segment(id, "subscriptions", sub, sizeof(sub)) ||
		    !armid_segment(id, "resourceGroups", rg, sizeof(rg)))
			continue;
		vaults[nv++] = vault_take(r, id, sub, rg);
	}
	run_flush(r);
	for (size_t i = 0; i < nv; i++) {
		ev_list_take(r, &vaults[i]->jobs, jobs);
		ev_list_take(r, &vaults[i]->policies, policies);
		if (!vaults[i]->rg->recorded) {
			ev_list_take(r, &vaults[i]->rg->log, NULL);
			vaults[i]->rg->recorded = true;
		}
	}
	/* The protection events per vault, in the vaults' order; the Graph reads of their callers at once. */
	idmap_init(&seen);
	for (size_t i = 0; i < nv; i++) {
		cJSON *found = cJSON_CreateArray(), *it;

		keep_protect_events(vaults[i]->id, vaults[i]->rg->log.items, found);
		queue_principals(r, found, vaults[i]->tenant, &e->p, &e->np, &e->capp, &reads, &nreads, &cap);
		/* Each event once (the vaults of a resource group share its events): a map, not a scan per event. */
		while ((it = found->child) != NULL) {
			cJSON_DetachItemViaPointer(found, it);
			if (jstr(it, "id") && !idmap_put(&seen, jstr(it, "id"), 0))
				cJSON_Delete(it);
			else
				cJSON_AddItemToArray(events, it);
		}
		cJSON_Delete(found);
	}
	idmap_release(&seen);
	run_flush(r);
	/* The failures first, in the order the reads are taken (as run_flush recorded them before). */
	for (size_t i = 0; i < nreads; i++)
		if (reads[i]->a.o != HTTP_OK) {
			char scope[200];

			snprintf(scope, sizeof(scope), "graph:/v1.0/users/%s (tenant %s)", reads[i]->oid, reads[i]->tenant);
			run_record(r, scope, &reads[i]->a.f, &reads[i]->a.err);
		}
	for (size_t i = 0; i < nreads; i++) {
		struct principal_read *p = reads[i];
		cJSON *user = p->a.body;

		p->a.body = NULL;   /* principals[]' now, or deleted below */
		if (p->a.o != HTTP_OK || !user) {
			cJSON_Delete(user);
			continue;   /* the failure is recorded */
		}
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
	free(reads);   /* the reads themselves are e->p's */
	free(vaults);
	ev_reads_free(r);
}
