/*
 * audit.c - evaluates the rule catalog over the facts of an estate and
 * assembles the kvaudit.report document (docs/report.md).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/estate/facts.h"
#include "audit/util/fastjson.h"
#include "audit/util/util.h"

#define NSEV 5
#define NSTATUS 5   /* pass fail error skipped suppressed */

struct finding_slot {
	cJSON *json;
	int status_rank;
	enum severity sev;
	const char *rule, *vm, *vault, *tenant;
};

struct run {
	const struct rule_catalog *cat;
	const struct audit_opts *o;
	struct fastjson_arena *arena;  /* NULL, or where this run's findings live (audit_opts.findings_arenas) */
	struct finding_slot *found;
	size_t nfound, capfound;
	struct skip_table skips;     /* skipped findings that are not listed, per rule and reason */
	int counts[NSEV][NSTATUS];
	int subjects[4];
};

/*
 * The subjects are judged on two threads when the estate is large enough
 * (audit_run): each judges a contiguous range of them into its own run,
 * and the runs are joined in subject order, so the report is the one a
 * single thread makes.  Below this many units (a VM with its bindings, a
 * vault, a tenant; ~400 VMs, ~20 ms of judging) the worker's start, join
 * and fresh malloc arena (~0.1 ms) are no longer small beside what it
 * saves, and a small audit is quick anyway (docs/performance.md).
 */
#define PARALLEL_MIN_UNITS 500

static const cJSON *path_get(const cJSON *facts, const char *a, const char *b)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(facts, a), b);
}

static const char *path_str(const cJSON *facts, const char *a, const char *b)
{
	return cJSON_GetStringValue(path_get(facts, a, b));
}

/* k is a string literal: the report keeps it without a copy (a report holds millions of keys). */
static void add_str_or_null(cJSON *o, const char *k, const char *v)
{
	cJSON_AddItemToObjectCS(o, k, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/*
 * A string of the facts as the facts hold it: a reference where they hold
 * one (a string of the estate, which outlives the report: audit.h), else a
 * copy.  Most of a large report's bytes are IDs and names seen many times.
 */
static void add_fact_str(cJSON *o, const char *k, const cJSON *v)
{
	if (!cJSON_IsString(v))
		cJSON_AddItemToObjectCS(o, k, cJSON_CreateNull());
	else if (v->type & cJSON_IsReference)
		cJSON_AddItemToObjectCS(o, k, cJSON_CreateStringReference(v->valuestring));
	else
		cJSON_AddItemToObjectCS(o, k, cJSON_CreateString(v->valuestring));
}

/* v outlives the report (a constant, or the catalog's: audit.h): referenced, not copied. */
static void add_const_str(cJSON *o, const char *k, const char *v)
{
	cJSON_AddItemToObjectCS(o, k, v ? cJSON_CreateStringReference(v) : cJSON_CreateNull());
}

static bool evidence_has(const cJSON *ev, const char *path)
{
	return cJSON_GetObjectItemCaseSensitive(ev, path) != NULL;
}

/*
 * The exact change a fix would make for a failing finding, from the rule's
 * remediation.fix and what the rule found missing; NULL when the fix is
 * manual.  audit/fix (kvaudit fix) re-reads the vault before applying.
 */
static cJSON *change_for(const char *fix, const cJSON *facts, const struct rule_outcome *out)
{
	const char *vault = path_str(facts, "vault", "id");
	const char *tenant = path_str(facts, "vault", "tenantId");
	const char *oid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(path_get(facts, "vault", "backupPolicy"),
	                                                                         "objectId"));
	cJSON *c;

	if (!fix || !vault)
		return NULL;
	if (strcmp(fix, "grant-backup-access") == 0 && out->missing && cJSON_GetArraySize(out->missing) > 0) {
		const char *cat = evidence_has(out->evidence, "vault.backupPolicy.keys") ? "keys" : "secrets";
		cJSON *entry, *perms;

		c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "operation", "PUT accessPolicies/add");
		cJSON_AddStringToObject(c, "vault", vault);
		entry = cJSON_AddObjectToObject(c, "accessPolicy");
		add_str_or_null(entry, "tenantId", tenant);
		add_str_or_null(entry, "objectId", oid);
		perms = cJSON_AddObjectToObject(entry, "permissions");
		cJSON_AddItemToObject(perms, cat, cJSON_Duplicate(out->missing, true));
		return c;
	}
	if (strcmp(fix, "assign-backup-role") == 0) {
		c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "operation", "PUT roleAssignments");
		cJSON_AddStringToObject(c, "scope", vault);
		cJSON_AddStringToObject(c, "roleDefinitionId", ROLE_KEY_VAULT_ADMINISTRATOR);
		cJSON_AddStringToObject(c, "roleName", "Key Vault Administrator");
		add_str_or_null(c, "principalId", oid);
		return c;
	}
	if (strcmp(fix, "vault-settings") == 0) {
		cJSON *set = cJSON_CreateObject();
		const cJSON *v;

		if ((v = cJSON_GetObjectItemCaseSensitive(out->evidence, "vault.enabledForDiskEncryption")) && cJSON_IsFalse(v))
			cJSON_AddTrueToObject(set, "enabledForDiskEncryption");
		if ((v = cJSON_GetObjectItemCaseSensitive(out->evidence, "vault.softDelete")) && cJSON_IsFalse(v))
			cJSON_AddTrueToObject(set, "enableSoftDelete");
		if ((v = cJSON_GetObjectItemCaseSensitive(out->evidence, "vault.purgeProtection")) && cJSON_IsFalse(v))
			cJSON_AddTrueToObject(set, "enablePurgeProtection");
		if (!set->child) {
			cJSON_Delete(set);
			return NULL;
		}
		c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "operation", "PATCH vault properties");
		cJSON_AddStringToObject(c, "vault", vault);
		cJSON_AddItemToObject(c, "properties", set);
		cJSON_AddStringToObject(c, "note", "enablePurgeProtection cannot be turned off once on");
		return c;
	}
	return NULL;
}

/* The "$unavailable" entry covering path (itself or a prefix), or NULL. */
static const cJSON *unavailable_for(const cJSON *facts, const char *path)
{
	const cJSON *k;

	cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(facts, "$unavailable")) {
		size_t kl = strlen(k->string);

		if (strncmp(path, k->string, kl) == 0 && (path[kl] == '\0' || path[kl] == '.'))
			return k;
	}
	return NULL;
}

/*
 * What Azure Backup's own jobs say of a Backup key vault permission finding
 * (docs/report.md "azureBackup"): a failure is "confirmed" when a job of the
 * VM failed with the permission error, "not-seen" when none did; a pass is
 * "contradicted" when one did (KVA-EVD-005 says which facts point where),
 * "agrees" otherwise; "unprotected" when the VM has no backup to say
 * anything; "unknown" when its jobs were not collected or could not be read.
 */
static cJSON *azure_backup_says(const cJSON *facts, enum finding_status st)
{
	const cJSON *kv = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(path_get(facts, "vm", "backup"), "jobs"), "keyVaultPermission");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(kv, "count");
	const cJSON *why = unavailable_for(facts, "vm.backup.jobs.keyVaultPermission");
	cJSON *o = cJSON_CreateObject();
	bool seen = cJSON_IsNumber(n) && n->valueint > 0;
	const char *status;

	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(path_get(facts, "vm", "backup"), "protected")))
		status = "unprotected";
	else if (why || !cJSON_IsNumber(n))
		status = "unknown";
	else if (st == ST_FAIL || st == ST_SUPPRESSED)
		status = seen ? "confirmed" : "not-seen";
	else if (st == ST_PASS)
		status = seen ? "contradicted" : "agrees";
	else
		status = "unknown";
	add_str_or_null(o, "status", status);
	if (cJSON_IsNumber(n) && !why)
		cJSON_AddItemToObjectCS(o, "permissionErrorJobs", cJSON_CreateNumber(n->valuedouble));
	else
		add_str_or_null(o, "permissionErrorJobs", NULL);
	add_str_or_null(o, "jobId", seen ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(kv, "jobId")) : NULL);
	add_str_or_null(o, "time", seen ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(kv, "time")) : NULL);
	add_str_or_null(o, "errorCode", seen ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(kv, "errorCode")) : NULL);
	add_str_or_null(o, "errorText", seen ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(kv, "errorText")) : NULL);
	add_str_or_null(o, "reason", why ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(why, "reason")) : NULL);
	return o;
}

static int status_rank(enum finding_status s)
{
	switch (s) {
	case ST_FAIL: return 0;
	case ST_ERROR: return 1;
	case ST_SKIPPED: return 2;
	case ST_SUPPRESSED: return 3;
	default: return 4;
	}
}

static cJSON *build_finding(const struct rule *r, enum subject_kind kind, const cJSON *facts,
                            struct rule_outcome *out)
{
	cJSON *f = cJSON_CreateObject(), *rem, *refs, *change;
	const cJSON *ref, *rrem = cJSON_GetObjectItemCaseSensitive(r->json, "remediation");
	const cJSON *rrefs = cJSON_GetObjectItemCaseSensitive(r->json, "references");
	const char *vault = path_str(facts, "vault", "id");
	const char *sub = kind == SUBJ_VAULT ? path_str(facts, "vault", "subscriptionId") :
	                  kind == SUBJ_TENANT ? NULL : path_str(facts, "vm", "subscriptionId");
	const char *tenant = path_str(facts, "tenant", "id");
	const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rrem, "text"));
	const char *fix = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rrem, "fix"));

	if (!tenant && vault)
		tenant = path_str(facts, "vault", "tenantId");
	add_const_str(f, "rule", r->id);
	add_const_str(f, "title", r->title);
	add_const_str(f, "severity", severity_name(r->severity));
	add_const_str(f, "status", status_name(out->status));
	add_const_str(f, "subject", subject_name(kind));
	add_fact_str(f, "vm", path_get(facts, "vm", "id"));
	add_fact_str(f, "vmName", path_get(facts, "vm", "name"));
	add_fact_str(f, "vault", path_get(facts, "vault", "id"));
	add_fact_str(f, "vaultName", path_get(facts, "vault", "name"));
	if (sub) {
		char *s = kv_asprintf("/subscriptions/%s", sub);

		add_str_or_null(f, "subscription", s);
		free(s);
	} else {
		add_str_or_null(f, "subscription", NULL);
	}
	add_str_or_null(f, "tenant", tenant);
	add_str_or_null(f, "message", out->message);
	add_str_or_null(f, "reason", out->reason);
	/* The change reads the evidence (which permission category was missing): before it moves. */
	change = out->status == ST_FAIL ? change_for(fix, facts, out) : NULL;
	cJSON_AddItemToObjectCS(f, "evidence", out->evidence);
	out->evidence = NULL;
	rem = cJSON_CreateObject();
	cJSON_AddItemToObjectCS(f, "remediation", rem);
	if (text) {
		char *t = rule_render(text, facts, out->missing);

		/* Most texts have no placeholder: then the rule's own string serves every finding. */
		if (strcmp(t, text) == 0)
			add_const_str(rem, "text", text);
		else
			add_str_or_null(rem, "text", t);
		free(t);
	} else {
		add_str_or_null(rem, "text", NULL);
	}
	add_const_str(rem, "fix", fix);
	cJSON_AddItemToObjectCS(rem, "change", change ? change : cJSON_CreateNull());
	refs = cJSON_CreateArray();
	for (ref = cJSON_IsArray(rrefs) ? rrefs->child : NULL; ref; ref = ref->next)
		cJSON_AddItemToArray(refs, cJSON_IsString(ref) ? cJSON_CreateStringReference(ref->valuestring)
		                                               : cJSON_Duplicate(ref, true));
	cJSON_AddItemToObjectCS(f, "references", refs);
	if (kind == SUBJ_BINDING && fix && (strcmp(fix, "grant-backup-access") == 0 || strcmp(fix, "assign-backup-role") == 0))
		cJSON_AddItemToObjectCS(f, "azureBackup", azure_backup_says(facts, out->status));
	return f;
}

static int kind_index(enum subject_kind k)
{
	return k == SUBJ_VM ? 0 : k == SUBJ_VAULT ? 1 : k == SUBJ_BINDING ? 2 : 3;
}

static int status_index(enum finding_status s)
{
	return s == ST_PASS ? 0 : s == ST_FAIL ? 1 : s == ST_ERROR ? 2 : s == ST_SKIPPED ? 3 : 4;
}

/*
 * Whether a finding is listed one by one in the report (it is always
 * counted).  A pass only with --include-pass; a skipped finding only with
 * --include-skipped, except a tenant's: there is one a tenant, and `kvaudit
 * merge` needs it per tenant to count it once across shards.  A failure,
 * an error (partial data stays visible per subject) and a suppressed
 * finding always.
 */
static bool listed(const struct audit_opts *o, enum subject_kind kind, enum finding_status st)
{
	if (st == ST_PASS)
		return o->include_pass;
	if (st == ST_SKIPPED)
		return o->include_skipped || kind == SUBJ_TENANT;
	return true;
}

static char *arena_strdup(struct fastjson_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = fastjson_alloc(a, n);

	memcpy(d, s, n);
	return d;
}

/*
 * A copy of src in arena a.  Strings src only references (the estate's,
 * the catalog's, constant keys: they outlive the report, audit.h) stay
 * references; the rest are copied.  The copy's strings are all marked as
 * references and constants, as the nodes of an arena tree must never be
 * freed one by one.
 */
static cJSON *arena_copy(struct fastjson_arena *a, const cJSON *src)
{
	cJSON *n = fastjson_alloc(a, sizeof(*n)), *last = NULL;
	const cJSON *c;

	memset(n, 0, sizeof(*n));
	n->type = src->type & ~(cJSON_IsReference | cJSON_StringIsConst);
	n->valueint = src->valueint;
	n->valuedouble = src->valuedouble;
	if (src->valuestring) {
		n->valuestring = src->type & cJSON_IsReference ? src->valuestring : arena_strdup(a, src->valuestring);
		n->type |= cJSON_IsReference;
	}
	if (src->string) {
		n->string = src->type & cJSON_StringIsConst ? src->string : arena_strdup(a, src->string);
		n->type |= cJSON_StringIsConst;
	}
	for (c = src->child; c; c = c->next) {
		cJSON *k = arena_copy(a, c);

		if (last) {
			last->next = k;
			k->prev = last;
		} else {
			n->child = k;
		}
		last = k;
	}
	if (n->child)
		n->child->prev = last;   /* cJSON's convention: the first child's prev is the last */
	return n;
}

static void on_subject(enum subject_kind kind, const cJSON *facts, void *arg)
{
	struct run *run = arg;

	run->subjects[kind_index(kind)]++;
	for (size_t i = 0; i < run->cat->n; i++) {
		const struct rule *r = &run->cat->rules[i];
		struct rule_outcome out;
		struct finding_slot *slot;
		enum finding_status status;
		cJSON *f, *supp = NULL;

		if (r->subject != kind)
			continue;
		/* The status first; the message and evidence only for a finding that is listed. */
		rule_judge(r, facts, &out);
		if (out.status == ST_NOT_APPLICABLE) {
			rule_outcome_release(&out);
			continue;
		}
		/* Only a failure can be an accepted risk: an unreadable fact is never suppressed. */
		if (out.status == ST_FAIL && run->o->suppressions) {
			char sub[128] = "";
			const char *subid = path_str(facts, kind == SUBJ_VAULT ? "vault" : "vm", "subscriptionId");
			const char *ids[4] = {path_str(facts, "vm", "id"), path_str(facts, "vault", "id"), NULL,
			                      path_str(facts, "tenant", "id")};

			if (subid) {
				snprintf(sub, sizeof(sub), "/subscriptions/%s", subid);
				ids[2] = sub;
			}
			supp = suppressions_match(run->o->suppressions, r->id, ids, 4);
			if (supp && cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(supp, "expired")))
				out.status = ST_SUPPRESSED;
		}
		status = out.status;
		run->counts[r->severity][status_index(out.status)]++;
		/* A finding that is not listed is only counted: no JSON is built for it. */
		if (!listed(run->o, kind, out.status)) {
			if (out.status == ST_SKIPPED)
				skip_table_add(&run->skips, r->id, r->title, severity_name(r->severity), out.reason, 1);
			rule_outcome_release(&out);
			continue;
		}
		rule_outcome_release(&out);
		rule_evaluate(r, facts, &out);
		out.status = status;
		f = build_finding(r, kind, facts, &out);
		rule_outcome_release(&out);
		if (supp)
			cJSON_AddItemToObject(f, "suppression", supp);
		/*
		 * Into the run's arena while the finding is warm: its malloc'd nodes
		 * are reused by the next subject's at once, rather than all freed
		 * (and coalesced) when the report goes, ~3 million of them at 50k VMs.
		 */
		if (run->arena) {
			cJSON *k = arena_copy(run->arena, f);

			cJSON_Delete(f);
			f = k;
		}
		if (run->nfound == run->capfound) {
			run->capfound = run->capfound ? run->capfound * 2 : 256;
			run->found = kv_realloc(run->found, run->capfound * sizeof(*run->found));
		}
		slot = &run->found[run->nfound++];
		slot->json = f;
		slot->sev = r->severity;
		slot->status_rank = status_rank(status);
		slot->rule = r->id;
		slot->vm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "vm"));
		slot->vault = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "vault"));
		slot->tenant = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "tenant"));
	}
}

static int cmp_null_last(const char *a, const char *b)
{
	if (!a || !b)
		return (a == NULL) - (b == NULL);
	return strcmp(a, b);
}

static int cmp_findings(const void *pa, const void *pb)
{
	const struct finding_slot *a = pa, *b = pb;
	int c;

	if (a->status_rank != b->status_rank)
		return a->status_rank - b->status_rank;
	if (a->sev != b->sev)
		return (int)b->sev - (int)a->sev;
	if ((c = strcmp(a->rule, b->rule)))
		return c;
	if ((c = cmp_null_last(a->vm, b->vm)))
		return c;
	if ((c = cmp_null_last(a->vault, b->vault)))
		return c;
	return cmp_null_last(a->tenant, b->tenant);
}

/* ---- summary.skippedByRule ---- */

struct skip_slot {
	uint64_t h;
	const char *rule, *reason;   /* the row's own strings */
	cJSON *count;                /* NULL: an empty slot */
};

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return (h ^ (s ? 1u : 2u)) * 1099511628211u;
}

static uint64_t skip_hash(const char *rule, const char *reason)
{
	return fnv(fnv(14695981039346656037u, rule), reason);
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static struct skip_slot *skip_find(struct skip_table *t, uint64_t h, const char *rule, const char *reason)
{
	size_t i = (size_t)h & (t->cap - 1);

	while (t->slots[i].count && !(t->slots[i].h == h && same_str(t->slots[i].rule, rule) &&
	                               same_str(t->slots[i].reason, reason)))
		i = (i + 1) & (t->cap - 1);
	return &t->slots[i];
}

/* Indexes a row whose rule and reason are not in the table yet. */
static void skip_index(struct skip_table *t, cJSON *row)
{
	const char *rule = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(row, "rule"));
	const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(row, "reason"));
	uint64_t h = skip_hash(rule, reason);
	struct skip_slot *s;

	if ((t->len + 1) * 4 > t->cap * 3) {
		struct skip_slot *old = t->slots;
		size_t ocap = t->cap;

		t->cap = ocap ? ocap * 2 : 32;
		t->slots = kv_calloc(t->cap, sizeof(*t->slots));
		for (size_t i = 0; i < ocap; i++)
			if (old[i].count)
				*skip_find(t, old[i].h, old[i].rule, old[i].reason) = old[i];
		free(old);
	}
	s = skip_find(t, h, rule, reason);
	s->h = h;
	s->rule = rule;
	s->reason = reason;
	s->count = cJSON_GetObjectItemCaseSensitive(row, "count");
	t->len++;
}

void skip_table_init(struct skip_table *t, cJSON *rows)
{
	cJSON *row;

	memset(t, 0, sizeof(*t));
	t->rows = rows;
	cJSON_ArrayForEach(row, rows) {
		const char *rule = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(row, "rule"));
		const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(row, "reason"));

		/* A row that repeats another's rule and reason, or has no count, stays as it is. */
		if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(row, "count")) &&
		    (!t->cap || !skip_find(t, skip_hash(rule, reason), rule, reason)->count))
			skip_index(t, row);
	}
}

void skip_table_add(struct skip_table *t, const char *rule, const char *title, const char *severity,
                    const char *reason, double count)
{
	struct skip_slot *s = t->cap ? skip_find(t, skip_hash(rule, reason), rule, reason) : NULL;
	cJSON *row;

	if (s && s->count) {
		cJSON_SetNumberValue(s->count, s->count->valuedouble + count);
		return;
	}
	row = cJSON_CreateObject();
	add_str_or_null(row, "rule", rule);
	add_str_or_null(row, "title", title);
	add_str_or_null(row, "severity", severity);
	add_str_or_null(row, "reason", reason);
	cJSON_AddNumberToObject(row, "count", count);
	cJSON_AddItemToArray(t->rows, row);
	skip_index(t, row);
}

/* Rule, then reason (none first). */
static int cmp_skip_rows(const void *pa, const void *pb)
{
	const cJSON *a = *(const cJSON *const *)pa, *b = *(const cJSON *const *)pb;
	const char *ra = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "reason"));
	const char *rb = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "reason"));
	int c = cmp_null_last(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "rule")),
	                      cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "rule")));

	if (c)
		return c;
	if (!ra || !rb)
		return (ra != NULL) - (rb != NULL);
	return strcmp(ra, rb);
}

void skip_table_finish(struct skip_table *t)
{
	size_t n = (size_t)cJSON_GetArraySize(t->rows), i = 0;
	cJSON **v, *it;

	free(t->slots);
	t->slots = NULL;
	t->cap = t->len = 0;
	if (n < 2)
		return;
	v = kv_malloc(n * sizeof(*v));
	while ((it = t->rows->child) != NULL)
		v[i++] = cJSON_DetachItemViaPointer(t->rows, it);
	qsort(v, n, sizeof(*v), cmp_skip_rows);
	for (i = 0; i < n; i++)
		cJSON_AddItemToArray(t->rows, v[i]);
	free(v);
}

/* free_folded false: the folded findings are only unlinked (an arena owns them). */
static void fold_skipped(cJSON *report, bool free_folded)
{
	cJSON *findings = cJSON_GetObjectItemCaseSensitive(report, "findings");
	cJSON *sum = cJSON_GetObjectItemCaseSensitive(report, "summary");
	struct skip_table t;
	cJSON *rows, *f, *next;

	if (!cJSON_IsArray(findings) || !cJSON_IsObject(sum))
		return;
	rows = cJSON_GetObjectItemCaseSensitive(sum, "skippedByRule");
	if (!cJSON_IsArray(rows)) {
		cJSON_DeleteItemFromObjectCaseSensitive(sum, "skippedByRule");
		rows = cJSON_AddArrayToObject(sum, "skippedByRule");
	}
	skip_table_init(&t, rows);
	for (f = findings->child; f; f = next) {
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "status"));
		const char *subj = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "subject"));

		next = f->next;
		if (!st || !kv_streq_ci(st, "skipped") || (subj && kv_streq_ci(subj, "tenant")))
			continue;
		skip_table_add(&t, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "rule")),
		               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "title")),
		               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "severity")),
		               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "reason")), 1);
		cJSON_DetachItemViaPointer(findings, f);
		if (free_folded)
			cJSON_Delete(f);
	}
	skip_table_finish(&t);
}

void audit_fold_skipped(cJSON *report)
{
	fold_skipped(report, true);
}

void audit_fold_skipped_unlink(cJSON *report)
{
	fold_skipped(report, false);
}

/* A run judged on the first thread: judge_chunks gives a chunk's run the arena of the thread judging it. */
static void run_init(struct run *r, const struct rule_catalog *cat, const struct audit_opts *o)
{
	memset(r, 0, sizeof(*r));
	r->cat = cat;
	r->o = o;
	r->arena = o->findings_arenas ? &o->findings_arenas[0] : NULL;
	skip_table_init(&r->skips, cJSON_CreateArray());
}

/* Appends part (the subjects after into's) to into and releases it: the order a single run has. */
static void run_join(struct run *into, struct run *part)
{
	const cJSON *row;

	for (int s = 0; s < NSEV; s++)
		for (int st = 0; st < NSTATUS; st++)
			into->counts[s][st] += part->counts[s][st];
	for (int k = 0; k < 4; k++)
		into->subjects[k] += part->subjects[k];
	if (part->nfound) {
		into->found = kv_realloc(into->found, (into->nfound + part->nfound) * sizeof(*into->found));
		memcpy(into->found + into->nfound, part->found, part->nfound * sizeof(*part->found));
		into->nfound += part->nfound;
		into->capfound = into->nfound;
	}
	free(part->found);
	/* Rows new to into come after its own, in part's order: as one run would have added them. */
	cJSON_ArrayForEach(row, part->skips.rows)
		skip_table_add(&into->skips, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(row, "rule")),
		               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(row, "title")),
		               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(row, "severity")),
		               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(row, "reason")),
		               cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(row, "count")));
	free(part->skips.slots);
	cJSON_Delete(part->skips.rows);
}

/*
 * Judging on two threads: the subjects cut into JUDGE_CHUNKS contiguous
 * chunks of about equal estimated work (facts_split), which the threads
 * take in turn as each finishes one, so neither waits for the other however
 * wrong the estimate is for a part of the estate; each chunk has its own
 * run, joined in chunk order: the report one thread makes.
 */
#define JUDGE_CHUNKS 64

struct judge_pool {
	struct facts_ctx *ctx;
	const struct audit_opts *o;
	size_t bounds[JUDGE_CHUNKS + 1];
	struct run runs[JUDGE_CHUNKS];
	atomic_size_t next;
};

struct judge_thread {
	struct judge_pool *pool;
	size_t part;   /* which of o->findings_arenas is this thread's */
};

static void *judge_chunks(void *arg)
{
	struct judge_thread *t = arg;
	struct judge_pool *P = t->pool;
	size_t k;

	while ((k = atomic_fetch_add(&P->next, 1)) < JUDGE_CHUNKS) {
		/* The arena of the thread that judges it: an arena is one thread's. */
		P->runs[k].arena = P->o->findings_arenas ? &P->o->findings_arenas[t->part] : NULL;
		facts_each_range(P->ctx, P->bounds[k], P->bounds[k + 1], on_subject, &P->runs[k]);
	}
	return NULL;
}

static int judge_threads(const struct facts_ctx *ctx, const struct audit_opts *o)
{
	if (o->threads == 1 || o->threads == 2)
		return o->threads;
	return facts_units(ctx) >= PARALLEL_MIN_UNITS && sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? 2 : 1;
}

static void judge(struct facts_ctx *ctx, const struct rule_catalog *cat, const struct audit_opts *o,
                  struct run *run)
{
	struct judge_pool *P;
	struct judge_thread main_thread, second;
	pthread_t worker;
	bool two;

	run_init(run, cat, o);
	if (judge_threads(ctx, o) < 2) {
		facts_each(ctx, on_subject, run);
		return;
	}
	P = kv_calloc(1, sizeof(*P));
	P->ctx = ctx;
	P->o = o;
	atomic_init(&P->next, 0);
	facts_split(ctx, JUDGE_CHUNKS, P->bounds);
	P->runs[0] = *run;
	for (size_t k = 1; k < JUDGE_CHUNKS; k++)
		run_init(&P->runs[k], cat, o);
	main_thread = (struct judge_thread){P, 0};
	second = (struct judge_thread){P, 1};
	two = pthread_create(&worker, NULL, judge_chunks, &second) == 0;   /* else this thread takes them all */
	(void)judge_chunks(&main_thread);
	if (two)
		pthread_join(worker, NULL);
	*run = P->runs[0];
	for (size_t k = 1; k < JUDGE_CHUNKS; k++)
		run_join(run, &P->runs[k]);
	free(P);
}

static const char *const STATUS_KEYS[NSTATUS] = {"pass", "fail", "error", "skipped", "suppressed"};

cJSON *audit_run(struct estate *e, const struct rule_catalog *cat, const struct audit_opts *o)
{
	struct run run;
	struct facts_ctx *ctx = facts_prepare(e);
	cJSON *rep = cJSON_CreateObject(), *tool, *scan, *sum, *subj, *bys, *bysev, *findings, *errors;
	char now[32];
	int failing = 0, errs = 0, ade = 0;
	bool complete;

	judge(ctx, cat, o, &run);
	if (run.nfound > 1)   /* qsort(NULL, 0, …) is undefined */
		qsort(run.found, run.nfound, sizeof(*run.found), cmp_findings);

	for (int s = 0; s < NSEV; s++) {
		errs += run.counts[s][2];
		if (s >= (int)o->fail_on)
			failing += run.counts[s][1];
	}
	for (size_t i = 0; i < e->nvms; i++)
		ade += e->vms[i].ade.encrypted;
	complete = errs == 0 && e->nerrors == 0;

	cJSON_AddStringToObject(rep, "kind", "kvaudit.report");
	cJSON_AddNumberToObject(rep, "version", 1);
	tool = cJSON_AddObjectToObject(rep, "tool");
	cJSON_AddStringToObject(tool, "name", "kvaudit");
	cJSON_AddStringToObject(tool, "version", KVAUDIT_VERSION);
	cJSON_AddNumberToObject(tool, "rules", (double)cat->n);

	scan = cJSON_AddObjectToObject(rep, "scan");
	add_str_or_null(scan, "source", o->source);
	add_str_or_null(scan, "collectedAt", e->collected_at);
	kv_utc_now(now, sizeof(now));
	cJSON_AddStringToObject(scan, "generatedAt", now);
	add_str_or_null(scan, "cloud", e->cloud);
	if (e->caller.present) {
		cJSON *c = cJSON_AddObjectToObject(scan, "caller");

		add_str_or_null(c, "objectId", e->caller.object_id);
		add_str_or_null(c, "tenantId", e->caller.tenant_id);
		add_str_or_null(c, "type", e->caller.type);
		add_str_or_null(c, "userType", e->caller.user_type);
		add_str_or_null(c, "displayName", e->caller.display_name);
	} else {
		cJSON_AddNullToObject(scan, "caller");
	}
	cJSON_AddStringToObject(scan, "failOn", severity_name(o->fail_on));
	cJSON_AddBoolToObject(scan, "complete", complete);

	sum = cJSON_AddObjectToObject(rep, "summary");
	subj = cJSON_AddObjectToObject(sum, "subjects");
	cJSON_AddNumberToObject(subj, "vm", run.subjects[0]);
	cJSON_AddNumberToObject(subj, "vault", run.subjects[1]);
	cJSON_AddNumberToObject(subj, "binding", run.subjects[2]);
	cJSON_AddNumberToObject(subj, "tenant", run.subjects[3]);
	cJSON_AddNumberToObject(sum, "adeVms", ade);
	bys = cJSON_AddObjectToObject(sum, "byStatus");
	for (int st = 0; st < NSTATUS; st++) {
		int n = 0;

		for (int s = 0; s < NSEV; s++)
			n += run.counts[s][st];
		cJSON_AddNumberToObject(bys, STATUS_KEYS[st], n);
	}
	bysev = cJSON_AddObjectToObject(sum, "bySeverity");
	for (int s = NSEV - 1; s >= 0; s--) {
		cJSON *row = cJSON_AddObjectToObject(bysev, severity_name((enum severity)s));

		for (int st = 0; st < NSTATUS; st++)
			cJSON_AddNumberToObject(row, STATUS_KEYS[st], run.counts[s][st]);
	}
	cJSON_AddNumberToObject(sum, "failing", failing);
	cJSON_AddNumberToObject(sum, "exitCode", !complete ? 3 : failing ? 1 : 0);
	skip_table_finish(&run.skips);
	cJSON_AddItemToObject(sum, "skippedByRule", run.skips.rows);

	if (o->findings_arenas) {
		/* The arenas' findings, linked in order, under a reference node: cJSON_Delete leaves them. */
		cJSON *last = NULL;

		for (size_t i = 0; i < run.nfound; i++) {
			cJSON *f = run.found[i].json;

			f->prev = last;
			f->next = NULL;
			if (last)
				last->next = f;
			last = f;
		}
		findings = cJSON_CreateArrayReference(run.nfound ? run.found[0].json : NULL);
		if (run.nfound)
			run.found[0].json->prev = last;
		cJSON_AddItemToObjectCS(rep, "findings", findings);
	} else {
		findings = cJSON_AddArrayToObject(rep, "findings");
		for (size_t i = 0; i < run.nfound; i++)
			cJSON_AddItemToArray(findings, run.found[i].json);
	}
	free(run.found);

	errors = cJSON_AddArrayToObject(rep, "errors");
	for (size_t i = 0; i < e->nerrors; i++) {
		cJSON *x = cJSON_CreateObject();

		add_str_or_null(x, "scope", e->errors[i].scope);
		if (e->errors[i].status)
			cJSON_AddNumberToObject(x, "status", e->errors[i].status);
		else
			cJSON_AddNullToObject(x, "status");
		add_str_or_null(x, "code", e->errors[i].code);
		add_str_or_null(x, "message", e->errors[i].message);
		cJSON_AddItemToArray(errors, x);
	}
	cJSON_AddItemToObject(rep, "inventory", o->inventory_rows_later ? facts_inventory_vaults(ctx) : facts_inventory(ctx));
	facts_ctx_free(ctx);
	return rep;
}

int audit_exit_code(const cJSON *report, enum severity fail_on)
{
	const cJSON *scan = cJSON_GetObjectItemCaseSensitive(report, "scan");
	const cJSON *sev = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(report, "summary"), "bySeverity");
	int failing = 0;

	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(scan, "complete")))
		return 3;
	for (int s = (int)fail_on; s < NSEV; s++) {
		const cJSON *row = cJSON_GetObjectItemCaseSensitive(sev, severity_name((enum severity)s));
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(row, "fail");

		failing += cJSON_IsNumber(n) ? n->valueint : 0;
	}
	return failing ? 1 : 0;
}
