/*
 * collect_arm.c - the ARM engine: a tenant's subscriptions read with list
 * calls, all at once (batch.h: concurrent, paced per subscription), instead
 * of one GET per VM.  Per subscription (docs/azure-api.md, "ARM engine"):
 *
 *   phase 1: VMs (the model), VMs with statusOnly=true (every instance view),
 *            disks, key vaults, Recovery Services vaults, role assignments
 *            at, above and below the subscription;
 *   phase 2: per Recovery Services vault its protected items; the ADE
 *            extensions the VM list did not describe (below); role
 *            assignments per key vault ($filter=atScope()) only when the
 *            subscription-wide list was refused; VMs one by one
 *            ($expand=instanceView, as before) only when the statusOnly list
 *            failed.
 *
 * The VM list may give a VM's extensions (resources[]) as bare IDs.  The
 * instance view names each extension with its full type, so only the
 * extensions it says are ADE are then read (one GET each); a VM whose
 * instance view does not account for all its extensions (stopped, agent not
 * reporting) has its extensions listed instead (one list).  Everything lands
 * in per-subscription slots fixed when queued and is merged in subscription
 * order, so the snapshot does not depend on which response came first.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/azure/batch.h"
#include "audit/azure/collect_internal.h"
#include "audit/util/armid.h"
#include "audit/util/idmap.h"
#include "audit/util/log.h"

enum { SLOT_OTHER = 0, SLOT_ITEMS, SLOT_RAS, SLOT_QUEUED, SLOT_GET };

#define PROTECTED_ITEMS_FILTER \
	"$filter=backupManagementType%20eq%20%27AzureIaasVM%27%20and%20itemType%20eq%20%27VM%27"

/* One queued request: where its result goes and how it ended. */
struct slot {
	char *scope;                 /* for errors[]: the ARM path (list) or resource ID */
	cJSON *items;                /* a list's items (borrowed; owned for SLOT_ITEMS, SLOT_RAS, SLOT_QUEUED) */
	cJSON *body;                 /* a GET's response (owned until taken) */
	cJSON *vm;                   /* extension reads: the VM they complete (borrowed) */
	char *ext_id;                /* a single extension's ID */
	bool done, ok, settled;      /* settled: merged and its failure recorded (collect_arm_finish) */
	int kind;                    /* SLOT_ITEMS, SLOT_RAS, SLOT_QUEUED: whose per-request array to merge */
	cJSON *dest;                 /* SLOT_QUEUED: run_queue_list's items, filled in queue order */
	cJSON **out;                 /* SLOT_GET: run_queue_get's body */
	bool engine;                 /* the ARM engine's (collect_arm_finish frees it) */
	struct az_failure f;
	struct kv_err err;
	void (*after)(struct slot *s);   /* called when done (may queue more) */
	void (*then)(struct run *r, const char *path, const cJSON *items);   /* run_queue_list_then's */
	struct run *r;                   /* for then */
	void *owner;                     /* phase 1: its subscription */
	struct slot *next;
};

struct queued {
	struct slot *head, *tail;
};

static void slot_done(void *ud, enum http_outcome o, cJSON *body, const struct az_failure *f, const struct kv_err *err)
{
	struct slot *s = ud;

	s->done = true;
	s->ok = o == HTTP_OK;
	s->body = body;
	if (!s->ok) {
		s->f = *f;
		s->err = *err;
	}
	if (s->after)
		s->after(s);
	if (s->then)
		s->then(s->r, s->scope, s->items);
}

struct az_batch *run_batch(struct run *r)
{
	if (!r->batch) {
		struct kv_err err = {{0}};

		r->batch = az_batch_new(r->c, r->o->concurrency, &err);
		if (!r->batch)
			log_line(stderr, "error", NULL, "%s", err.msg);
	}
	return r->batch;
}

static struct slot *slot_new(struct run *r, const char *scope)
{
	struct queued *q = r->queued;
	struct slot *s = kv_calloc(1, sizeof(*s));

	if (!q)
		q = r->queued = kv_calloc(1, sizeof(*q));
	s->scope = kv_strdup(scope);
	if (q->tail)
		q->tail->next = s;
	else
		q->head = s;
	q->tail = s;
	return s;
}

/* Queues {arm}{path}?api-version=V[&extra] into items; the slot says how it went after run_flush. */
static struct slot *queue_list(struct run *r, const char *path, const char *api, const char *extra, const char *tenant,
                               cJSON *items)
{
	char *url = kv_asprintf("%s%s?api-version=%s%s%s", r->c->cloud->arm, path, api, extra ? "&" : "",
	                        extra ? extra : "");
	struct slot *s = slot_new(r, path);
	struct az_batch *b = run_batch(r);

	s->items = items;
	if (b) {
		az_batch_list(b, url, tenant, items, slot_done, s);
	} else {
		s->done = true;
		s->f.outcome = HTTP_FATAL;
		snprintf(s->f.code, sizeof(s->f.code), "InternalError");
		kv_err_set(&s->err, "cannot start concurrent requests");
	}
	free(url);
	return s;
}

static struct slot *queue_get(struct run *r, const char *scope, const char *url, const char *tenant)
{
	struct slot *s = slot_new(r, scope);
	struct az_batch *b = run_batch(r);

	if (b) {
		az_batch_get(b, url, tenant, slot_done, s);
	} else {
		s->done = true;
		s->f.outcome = HTTP_FATAL;
		snprintf(s->f.code, sizeof(s->f.code), "InternalError");
		kv_err_set(&s->err, "cannot start concurrent requests");
	}
	return s;
}

void run_queue_list_then(struct run *r, const char *path, const char *api, const char *extra, const char *tenant,
                         cJSON *items, void (*then)(struct run *r, const char *path, const cJSON *items))
{
	/* Its own array: lists finish in any order, items gets them in the order they were queued. */
	struct slot *s = queue_list(r, path, api, extra, tenant, cJSON_CreateArray());

	s->kind = SLOT_QUEUED;
	s->dest = items;
	s->r = r;
	/* A list refused at once (no batch) never calls back: collect_backup_evidence reads its vault later. */
	s->then = then;
}

void run_queue_list(struct run *r, const char *path, const char *api, const char *extra, const char *tenant,
                    cJSON *items)
{
	run_queue_list_then(r, path, api, extra, tenant, items, NULL);
}

void run_queue_get(struct run *r, const char *scope, const char *url, const char *tenant, cJSON **out)
{
	struct slot *s = queue_get(r, scope, url, tenant);

	s->kind = SLOT_GET;
	s->out = out;
	*out = NULL;
}

/* Runs what is queued; failures of slots nobody else looks at are recorded by run_flush. */
static void run_all(struct run *r)
{
	if (r->batch)
		az_batch_run(r->batch);
}

/*
 * Frees the slots (recording the failures of those not settled when record),
 * except, when keep_engine, the ARM engine's own: collect_arm_finish still
 * needs them.
 */
static void slots_free(struct run *r, bool record, bool keep_engine)
{
	struct queued *q = r->queued;
	struct slot *s, *next, *kept = NULL, *kept_tail = NULL;

	if (!q)
		return;
	for (s = q->head; s; s = next) {
		next = s->next;
		if (keep_engine && s->engine) {
			s->next = NULL;
			if (kept_tail)
				kept_tail->next = s;
			else
				kept = s;
			kept_tail = s;
			continue;
		}
		if (record && !s->ok && !s->settled)
			run_record(r, s->scope, &s->f, &s->err);
		if (s->kind == SLOT_QUEUED) {
			cJSON *it;

			/* What was read, even of a list that failed half-way (as run_list keeps it). */
			while ((it = s->items->child) != NULL)
				cJSON_AddItemToArray(s->dest, cJSON_DetachItemViaPointer(s->items, it));
		} else if (s->kind == SLOT_GET && s->ok) {
			*s->out = s->body;
			s->body = NULL;
		}
		if (s->kind != SLOT_OTHER)
			cJSON_Delete(s->items);
		cJSON_Delete(s->body);
		free(s->scope);
		free(s->ext_id);
		free(s);
	}
	q->head = kept;
	q->tail = kept_tail;
	if (!kept) {
		free(q);
		r->queued = NULL;
	}
}

void run_flush(struct run *r)
{
	run_all(r);
	slots_free(r, true, true);
}

/* ---- the subscription ---- */

struct sub_state {
	struct run *r;
	const char *sid, *tenant;
	int pending;                 /* phase 1 lists not yet finished */
	cJSON *vms, *status, *disks, *vaults, *rsvs, *ras, *items;
	struct slot *s_vms, *s_status, *s_disks, *s_vaults, *s_rsvs, *s_ras;
	struct slot *s_more;         /* the first of its phase 2 slots, in queue order */
	int nmore, nvm;
};

static bool is_ade_type(const char *t)
{
	return kv_streq_ci(t, "Microsoft.Azure.Security.AzureDiskEncryption") ||
	       kv_streq_ci(t, "Microsoft.Azure.Security.AzureDiskEncryptionForLinux");
}

/* The name of an extension from its ID (".../extensions/NAME"). */
static const char *ext_name(const char *id)
{
	const char *p = id ? strrchr(id, '/') : NULL;

	return p ? p + 1 : NULL;
}

/* The instance view's entry for the extension called name, or NULL. */
static const cJSON *iv_extension(const cJSON *iv, const char *name)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(iv, "extensions"))
		if (kv_streq_ci(jstr(e, "name"), name))
			return e;
	return NULL;
}

/*
 * Queues what a VM's list entry lacks: nothing when its resources[] carry
 * their properties; else a GET of each extension the instance view calls
 * ADE, or the VM's extension list when the instance view does not say.
 */
static void queue_vm_extensions(struct run *r, cJSON *vm, const char *tenant)
{
	const cJSON *iv = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(vm, "properties"),
	                                                   "instanceView");
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(vm, "resources"), *e;
	const char *vm_id = jstr(vm, "id");
	bool bare = false, known = cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(iv, "extensions"));

	cJSON_ArrayForEach(e, res) {
		if (cJSON_GetObjectItemCaseSensitive(e, "properties"))
			continue;
		bare = true;
		if (!iv_extension(iv, ext_name(jstr(e, "id"))))
			known = false;
	}
	if (!bare || !vm_id || !run_safe_id(r, vm_id))
		return;
	if (!known) {
		char *url = kv_asprintf("%s%s/extensions?api-version=%s", r->c->cloud->arm, vm_id, API_COMPUTE);
		struct slot *s = queue_get(r, vm_id, url, tenant);

		s->vm = vm;
		free(url);
		return;
	}
	cJSON_ArrayForEach(e, res) {
		const char *id = jstr(e, "id");
		const cJSON *ive;
		char *url;
		struct slot *s;

		if (cJSON_GetObjectItemCaseSensitive(e, "properties") || !id)
			continue;
		ive = iv_extension(iv, ext_name(id));
		if (!ive || !is_ade_type(jstr(ive, "type")) || !run_safe_id(r, id))
			continue;
		url = kv_asprintf("%s%s?api-version=%s", r->c->cloud->arm, id, API_COMPUTE);
		s = queue_get(r, vm_id, url, tenant);
		s->vm = vm;
		s->ext_id = kv_strdup(id);
		free(url);
	}
}

/* Puts an extension read (a single extension, or the VM's list) into the VM's resources[]. */
static void apply_extensions(struct slot *s)
{
	cJSON *res = cJSON_GetObjectItemCaseSensitive(s->vm, "resources"), *e, *list;

	if (!s->ok || !s->body)
		return;
	if (s->ext_id) {
		cJSON_ArrayForEach(e, res)
			if (armid_eq(jstr(e, "id"), s->ext_id)) {
				cJSON_ReplaceItemViaPointer(res, e, s->body);
				s->body = NULL;
				return;
			}
		return;
	}
	/* VirtualMachineExtensions_List: {"value": [...]}, the VM's extensions in full. */
	list = cJSON_GetObjectItemCaseSensitive(s->body, "value");
	if (!cJSON_IsArray(list))
		return;
	cJSON_DetachItemViaPointer(s->body, list);
	if (res)
		cJSON_ReplaceItemInObjectCaseSensitive(s->vm, "resources", list);
	else
		cJSON_AddItemToObject(s->vm, "resources", list);
}

/* Joins the statusOnly list into the model list by VM ID: properties.instanceView. */
static void join_instance_views(struct sub_state *st)
{
	struct idmap m;
	cJSON *it;
	size_t i = 0, n = (size_t)cJSON_GetArraySize(st->status);
	cJSON **v = kv_calloc(n ? n : 1, sizeof(cJSON *));

	idmap_init(&m);
	cJSON_ArrayForEach(it, st->status) {
		if (jstr(it, "id"))
			idmap_put(&m, jstr(it, "id"), i);
		v[i++] = it;
	}
	cJSON_ArrayForEach(it, st->vms) {
		size_t k;
		cJSON *iv, *props;

		if (!jstr(it, "id") || !idmap_get(&m, jstr(it, "id"), &k))
			continue;
		iv = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(v[k], "properties"), "instanceView");
		if (!iv)
			continue;
		props = cJSON_GetObjectItemCaseSensitive(it, "properties");
		if (!props)
			props = cJSON_AddObjectToObject(it, "properties");
		cJSON_DeleteItemFromObjectCaseSensitive(props, "instanceView");
		cJSON_AddItemToObject(props, "instanceView",
		                      cJSON_DetachItemViaPointer(cJSON_GetObjectItemCaseSensitive(v[k], "properties"), iv));
	}
	idmap_release(&m);
	free(v);
}

/* Each VM again with its instance view and extensions: only when the statusOnly list failed. */
static void queue_vm_gets(struct run *r, struct sub_state *st, const char *tenant)
{
	cJSON *it;

	cJSON_ArrayForEach(it, st->vms) {
		const char *id = jstr(it, "id");
		char *url;
		struct slot *s;

		if (!id || !run_safe_id(r, id))
			continue;
		url = kv_asprintf("%s%s?$expand=instanceView&api-version=%s", r->c->cloud->arm, id, API_COMPUTE);
		s = queue_get(r, id, url, tenant);
		s->vm = it;
		free(url);
	}
}

/* Role assignments of the subscription-wide list that apply to one of its key vaults (at or above it). */
static void keep_vault_assignments(cJSON *ras, const cJSON *vaults)
{
	cJSON *it = ras->child;

	while (it) {
		cJSON *next = it->next;
		const char *scope = jstr(cJSON_GetObjectItemCaseSensitive(it, "properties"), "scope");
		const cJSON *v;
		bool keep = false;

		cJSON_ArrayForEach(v, vaults)
			if (scope && jstr(v, "id") && armid_scope_contains(scope, jstr(v, "id"))) {
				keep = true;
				break;
			}
		if (!keep)
			cJSON_Delete(cJSON_DetachItemViaPointer(ras, it));
		it = next;
	}
}

static void sub_free(struct sub_state *st)
{
	cJSON_Delete(st->vms);
	cJSON_Delete(st->status);
	cJSON_Delete(st->disks);
	cJSON_Delete(st->vaults);
	cJSON_Delete(st->rsvs);
	cJSON_Delete(st->ras);
	cJSON_Delete(st->items);
}

/* Phase 2 of one subscription, as soon as its phase 1 lists are all in: no waiting for the others. */
static void sub_phase2(struct sub_state *x)
{
	struct run *r = x->r;
	struct queued *q = r->queued;
	struct slot *before = q ? q->tail : NULL;
	const char *tenant = x->tenant;
	cJSON *it;

	x->nvm = cJSON_GetArraySize(x->vms);
	if (x->s_status->ok) {
		join_instance_views(x);
		cJSON_ArrayForEach(it, x->vms)
			queue_vm_extensions(r, it, tenant);
	} else {
		queue_vm_gets(r, x, tenant);
	}
	cJSON_ArrayForEach(it, x->rsvs) {
		const char *id = jstr(it, "id");
		struct slot *s;
		char *p;

		if (!id || !run_safe_id(r, id))
			continue;
		collect_backup_vault_known(r, id);
		p = kv_asprintf("%s/backupProtectedItems", id);
		/* Its own array: lists finish in any order, the snapshot keeps the vaults' order. */
		s = queue_list(r, p, API_PROTECTED_ITEMS, PROTECTED_ITEMS_FILTER, tenant, cJSON_CreateArray());
		s->kind = SLOT_ITEMS;
		/* The vault's evidence reads start as soon as it is known to protect a VM. */
		s->r = r;
		s->then = collect_backup_items_read;
		free(p);
	}
	if (x->s_ras->ok) {
		keep_vault_assignments(x->ras, x->vaults);
	} else {
		/* The subscription-wide list was refused (a caller who reads only some vaults): per vault. */
		cJSON_ArrayForEach(it, x->vaults) {
			const char *id = jstr(it, "id");
			char *p;

			if (!id || !run_safe_id(r, id))
				continue;
			p = kv_asprintf("%s/providers/Microsoft.Authorization/roleAssignments", id);
			queue_list(r, p, API_AUTHORIZATION, "$filter=atScope()", tenant, cJSON_CreateArray())->kind = SLOT_RAS;
			free(p);
		}
	}
	q = r->queued;
	x->s_more = before ? before->next : q ? q->head : NULL;
	for (struct slot *p = x->s_more; p; p = p->next) {
		p->engine = true;
		x->nmore++;
	}
}

static void phase1_done(struct slot *s)
{
	struct sub_state *x = s->owner;

	if (--x->pending == 0)
		sub_phase2(x);
}

/* Queues a phase 1 list of subscription x. */
static struct slot *queue_phase1(struct sub_state *x, const char *provider, const char *api, const char *extra,
                                 cJSON *items)
{
	char path[256];
	struct slot *s;

	snprintf(path, sizeof(path), "/subscriptions/%s/providers/%s", x->sid, provider);
	x->pending++;
	s = queue_list(x->r, path, api, extra, x->tenant, items);
	s->owner = x;
	s->engine = true;
	if (s->done)
		phase1_done(s);   /* refused at once: it will not call back */
	else
		s->after = phase1_done;
	return s;
}

/* Moves the results of subscription x into the snapshot and records its failures, in queue order. */
static void sub_merge(struct sub_state *x)
{
	struct run *r = x->r;
	struct slot *p;
	cJSON *it;
	int k;

	/* Phase 1 failures; the statusOnly and role-assignment lists had a fallback stand in for them. */
	for (p = x->s_vms; p && p != x->s_ras->next; p = p->next) {
		if (!p->ok && p != x->s_ras && p != x->s_status)
			run_record(r, p->scope, &p->f, &p->err);
		p->settled = true;
	}
	for (p = x->s_more, k = 0; p && k < x->nmore; p = p->next, k++) {
		p->settled = true;
		if (p->vm && p->ok && p->body && !p->ext_id && jstr(p->body, "id")) {
			/* A VM read whole ($expand=instanceView) replaces its list entry. */
			cJSON_ReplaceItemViaPointer(x->vms, p->vm, p->body);
			p->body = NULL;
			p->vm = NULL;
		} else if (p->vm) {
			apply_extensions(p);
		} else if (p->kind == SLOT_RAS) {
			/* Per-vault role assignments of the fallback. */
			json_merge_unique(x->ras, p->items);
		} else if (p->kind == SLOT_ITEMS) {
			/* What was read, even of a list that failed half-way (as run_list keeps it). */
			while ((it = p->items->child) != NULL)
				cJSON_AddItemToArray(x->items, cJSON_DetachItemViaPointer(p->items, it));
		}
		if (p->kind != SLOT_OTHER) {
			cJSON_Delete(p->items);
			p->items = NULL;
		}
		if (!p->ok)
			run_record(r, p->scope, &p->f, &p->err);
	}
	while ((it = x->vms->child) != NULL)
		cJSON_AddItemToArray(r->vms, cJSON_DetachItemViaPointer(x->vms, it));
	while ((it = x->disks->child) != NULL)
		cJSON_AddItemToArray(r->disks, cJSON_DetachItemViaPointer(x->disks, it));
	while ((it = x->items->child) != NULL)
		cJSON_AddItemToArray(r->items, cJSON_DetachItemViaPointer(x->items, it));
	run_progress(r, "subscription %s: %d VMs, %d key vaults, %d Recovery Services vaults", x->sid, x->nvm,
	             cJSON_GetArraySize(x->vaults), cJSON_GetArraySize(x->rsvs));
	json_merge_unique(r->ras, x->ras);
	json_merge_unique(r->vaults, x->vaults);
	json_merge_unique(r->rsvs, x->rsvs);
}

/* One tenant's part: its subscriptions, in the order given. */
struct arm_tenant {
	char *tenant, *bms_oid;
	struct sub_state *st;
	size_t n;
	struct arm_tenant *next;
};

void collect_arm(struct run *r, const char *tenant, const char *bms_oid, const cJSON *subs)
{
	struct arm_tenant *t = kv_calloc(1, sizeof(*t)), **tail = (struct arm_tenant **)&r->arm;
	size_t i = 0;
	const cJSON *s;

	while (*tail)
		tail = &(*tail)->next;
	*tail = t;
	t->tenant = kv_strdup(tenant);
	t->bms_oid = bms_oid ? kv_strdup(bms_oid) : NULL;
	t->n = (size_t)cJSON_GetArraySize(subs);
	t->st = kv_calloc(t->n ? t->n : 1, sizeof(*t->st));
	/*
	 * Every subscription's lists at once; each subscription goes on to its
	 * phase 2 when its own lists are in, so one that is throttled holds up
	 * only itself.
	 */
	cJSON_ArrayForEach(s, subs) {
		struct sub_state *x = &t->st[i++];

		x->r = r;
		x->sid = kv_strdup(s->valuestring);
		x->tenant = t->tenant;
		x->vms = cJSON_CreateArray();
		x->status = cJSON_CreateArray();
		x->disks = cJSON_CreateArray();
		x->vaults = cJSON_CreateArray();
		x->rsvs = cJSON_CreateArray();
		x->ras = cJSON_CreateArray();
		x->items = cJSON_CreateArray();
		x->pending = 1;   /* until all six are queued */
		x->s_vms = queue_phase1(x, "Microsoft.Compute/virtualMachines", API_COMPUTE, NULL, x->vms);
		x->s_status = queue_phase1(x, "Microsoft.Compute/virtualMachines", API_COMPUTE, "statusOnly=true", x->status);
		x->s_disks = queue_phase1(x, "Microsoft.Compute/disks", API_DISKS, NULL, x->disks);
		x->s_vaults = queue_phase1(x, "Microsoft.KeyVault/vaults", API_KEYVAULT, NULL, x->vaults);
		x->s_rsvs = queue_phase1(x, "Microsoft.RecoveryServices/vaults", API_RECOVERY_VAULTS, NULL, x->rsvs);
		x->s_ras = queue_phase1(x, "Microsoft.Authorization/roleAssignments", API_AUTHORIZATION, NULL, x->ras);
		if (--x->pending == 0)
			sub_phase2(x);
	}
}

void collect_arm_finish(struct run *r)
{
	struct arm_tenant *t = r->arm, *next;

	if (!t)
		return;
	run_all(r);
	for (; t; t = next) {
		next = t->next;
		for (size_t i = 0; i < t->n; i++) {
			sub_merge(&t->st[i]);
			sub_free(&t->st[i]);
			free((void *)(uintptr_t)t->st[i].sid);
		}
		collect_custom_roles(r, t->tenant, t->bms_oid);
		free(t->st);
		free(t->tenant);
		free(t->bms_oid);
		free(t);
	}
	r->arm = NULL;
	slots_free(r, true, false);
}
