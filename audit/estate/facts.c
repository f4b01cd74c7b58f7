/*
 * facts.c - turns the estate model into one facts object per subject (see
 * facts.h and docs/facts.md).  Everything that needs the whole estate (which
 * vaults hold which VMs' keys, per-tenant counts, Backup Management
 * Service's effective permissions per vault) is computed once in
 * facts_prepare; subjects are then built one at a time.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/estate/evidence.h"
#include "audit/estate/facts.h"
#include "audit/estate/restore.h"
#include "audit/util/armid.h"

/* Effective permission names per category ("all" expands to these; AZURE-FACTS b3). */
static const char *const ALL_KEYS[] = {
	"encrypt", "decrypt", "wrapkey", "unwrapkey", "sign", "verify", "get", "list", "create",
	"update", "import", "delete", "backup", "restore", "recover", "purge", "release", "rotate",
	"getrotationpolicy", "setrotationpolicy", NULL};
static const char *const ALL_SECRETS[] = {
	"get", "list", "set", "delete", "backup", "restore", "recover", "purge", NULL};
static const char *const ALL_CERTIFICATES[] = {
	"get", "list", "delete", "create", "import", "update", "managecontacts", "getissuers",
	"listissuers", "setissuers", "deleteissuers", "manageissuers", "recover", "purge",
	"backup", "restore", NULL};

/*
 * The data actions Backup needs on RBAC vaults (AZURE-FACTS c3), split by
 * what the vault holds: secrets for every BEK, keys where a KEK is used.
 */
static const char *const NEED_SECRETS[] = {
	"Microsoft.KeyVault/vaults/secrets/getSecret/action",
	"Microsoft.KeyVault/vaults/secrets/readMetadata/action",
	"Microsoft.KeyVault/vaults/secrets/backup/action", NULL};
static const char *const NEED_KEYS[] = {
	"Microsoft.KeyVault/vaults/keys/read",
	"Microsoft.KeyVault/vaults/keys/backup/action", NULL};

/*
 * Built-in roles that may be assigned on a vault, with their data actions
 * (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
 * Roles with no data actions are listed so they are known, not unknown.
 */
struct builtin_role {
	const char *guid, *name;
	const char *const data_actions[4];
};

static const struct builtin_role BUILTIN_ROLES[] = {
	{ROLE_KEY_VAULT_ADMINISTRATOR, "Key Vault Administrator", {"Microsoft.KeyVault/vaults/*"}},
	{"b86a8fe4-44ce-4948-aee5-eccb2c155cd7", "Key Vault Secrets Officer", {"Microsoft.KeyVault/vaults/secrets/*"}},
	{"4633458b-17de-408a-b874-0445c86b69e6", "Key Vault Secrets User",
	 {"Microsoft.KeyVault/vaults/secrets/getSecret/action", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"}},
	{"14b46e9e-c2b7-41b4-b07b-48a6ebf60603", "Key Vault Crypto Officer",
	 {"Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*"}},
	{"12338af0-0e69-4776-bea7-57ae8d297424", "Key Vault Crypto User",
	 {"Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/backup/action",
	  "Microsoft.KeyVault/vaults/keys/*/action"}},  /* update, encrypt, decrypt, wrap, unwrap, sign, verify */
	{"e147488a-f6f5-4113-8e2d-b22465e65bf6", "Key Vault Crypto Service Encryption User",
	 {"Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/wrap/action",
	  "Microsoft.KeyVault/vaults/keys/unwrap/action"}},
	{"21090545-7ca7-4776-b22c-e363652d74d2", "Key Vault Reader",
	 {"Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"}},
	{"a4417e6f-fecd-4de8-b567-7b0420556985", "Key Vault Certificates Officer",
	 {"Microsoft.KeyVault/vaults/certificatecas/*", "Microsoft.KeyVault/vaults/certificates/*",
	  "Microsoft.KeyVault/vaults/certificatecontacts/write"}},
	{"f25e0fa2-a7c8-4377-a976-54943a77a395", "Key Vault Contributor", {NULL}},
	{"8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner", {NULL}},
	{"b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor", {NULL}},
	{"acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", {NULL}},
};

/* What one vault (present or only referenced) is to the ADE VMs. */
struct vault_use {
	char *id;                    /* as referenced or as in the estate */
	const struct vault *vault;   /* NULL: referenced by an ADE VM but not in the snapshot */
	bool bek, kek;
	cJSON *vms;                  /* array of VM IDs */
	cJSON *facts;                /* the "vault" member */
	cJSON *unavail;              /* its "$unavailable" entries */
	char tenant[64];             /* tenant ID for tenant facts; "" unknown */
	const struct estate_error *holds_err;  /* a failed list that may have held more of its ADE VMs */
};

struct tenant_facts {
	char *tid;
	int ade_vaults;
	int guessed;                 /* of which key vaults not read, whose tenant is their subscription's */
	const struct vault_use *guess;   /* one of them */
	const struct vault_use *unknown; /* a vault of the tenant that may hold keys of VMs not read */
	cJSON *facts, *unavail;
};

struct facts_ctx {
	const struct estate *e;
	struct vault_use *uses;
	size_t nuses;
	struct idmap use_ix;         /* vault ID -> uses[] */
	struct tenant_facts *tenants;
	size_t ntenants;
	struct idmap tenant_ix;      /* tenant ID -> tenants[] */
	struct idmap item_ix;        /* VM ID -> estate.items[] */
	struct idmap subl_ix;        /* subscription GUID -> subl[] */
	struct sub_lists *subl;      /* what sub_lists_failed found, once per subscription */
	size_t nsubl;
	struct vault_use **order;    /* uses[] in ID order: the vault subjects' order */
	struct principal_ras *pras;  /* role assignments per principal rbac_facts asked about */
	size_t npras;
};

/* ---- small JSON helpers ---- */

/* k is always a string literal: kept without a copy (facts and the inventory hold millions of keys). */
static void add_str(cJSON *o, const char *k, const char *v)
{
	cJSON_AddItemToObjectCS(o, k, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/*
 * v is the estate's (or a constant): referenced, not copied.  The estate
 * outlives every facts object and the inventory (facts.h), and a report
 * keeps such a string as a reference too (audit.c), so a 50k-VM report
 * holds one copy of each VM ID, not three.
 */
static void add_estate_str(cJSON *o, const char *k, const char *v)
{
	cJSON_AddItemToObjectCS(o, k, v ? cJSON_CreateStringReference(v) : cJSON_CreateNull());
}

void facts_unavailable(cJSON *u, const char *path, const char *status, const char *fmt, ...)
{
	char reason[768];
	va_list ap;
	cJSON *entry;

	if (cJSON_GetObjectItemCaseSensitive(u, path))
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	entry = cJSON_AddObjectToObject(u, path);
	cJSON_AddStringToObject(entry, "status", status);
	cJSON_AddStringToObject(entry, "reason", reason);
}

/* ---- facts judged from whole lists (estate_list_failed; docs/estate.md, errors[]) ---- */

enum { L_VMS, L_EXTENSIONS, L_DISKS, L_RSVS, L_ITEMS, L_COUNT };

static const char *const LIST_KINDS[L_COUNT] = {
	[L_VMS] = ESTATE_LIST_VMS, [L_EXTENSIONS] = ESTATE_LIST_VM_EXTENSIONS, [L_DISKS] = ESTATE_LIST_DISKS,
	[L_RSVS] = ESTATE_LIST_RSVS, [L_ITEMS] = ESTATE_LIST_PROTECTED_ITEMS,
};

/* Where ADE VMs are found: VMs, their extensions (Resource Graph lists them apart) and managed disks. */
#define LISTS_ADE_VMS (1u << L_VMS | 1u << L_EXTENSIONS | 1u << L_DISKS)
/* What adds to a VM that was read: its extensions and disks. */
#define LISTS_VM_ADE (1u << L_EXTENSIONS | 1u << L_DISKS)
/* Where a VM's protection is found: its subscription's Recovery Services vaults and their items. */
#define LISTS_BACKUP (1u << L_RSVS | 1u << L_ITEMS)

/* A subscription's failed lists per kind, looked up once (10,000 VMs ask about a few subscriptions). */
struct sub_lists {
	const struct estate_error *err[L_COUNT];
};

/* The first failed list of the kinds (a bit set of L_*) of the subscription of id; NULL when none. */
static const struct estate_error *sub_lists_failed(struct facts_ctx *c, const char *id, unsigned kinds)
{
	const struct estate *e = c->e;
	char sub[64], scope[96];
	size_t ix;

	if (e->nerrors == 0 || !id || !armid_segment(id, "subscriptions", sub, sizeof(sub)))
		return NULL;
	if (!idmap_get(&c->subl_ix, sub, &ix)) {
		snprintf(scope, sizeof(scope), "/subscriptions/%s", sub);
		c->subl = kv_realloc(c->subl, (c->nsubl + 1) * sizeof(*c->subl));
		for (size_t k = 0; k < L_COUNT; k++)
			c->subl[c->nsubl].err[k] = estate_list_failed(e, scope, LIST_KINDS[k]);
		idmap_put(&c->subl_ix, sub, c->nsubl);
		ix = c->nsubl++;
	}
	for (size_t k = 0; k < L_COUNT; k++)
		if ((kinds & (1u << k)) && c->subl[ix].err[k])
			return c->subl[ix].err[k];
	return NULL;
}

/* Marks path as an error: what cannot be told, because of which list. */
static void list_unavailable(cJSON *un, const char *path, const char *what, const struct estate_error *err)
{
	facts_unavailable(un, path, "error", "%s: the list '%s' could not be read in full: %d %s: %s", what,
	                  err->scope, err->status, err->code ? err->code : "error",
	                  err->message ? err->message : "no message");
}

static bool arr_has_ci(const cJSON *a, const char *s)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, a)
		if (cJSON_IsString(it) && kv_streq_ci(it->valuestring, s))
			return true;
	return false;
}

/* Like arr_has_ci for ARM IDs (a trailing '/' does not make another resource). */
static bool arr_has_id(const cJSON *a, const char *id)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, a)
		if (cJSON_IsString(it) && armid_eq(it->valuestring, id))
			return true;
	return false;
}

static void arr_add_id(cJSON *a, const char *id)
{
	if (id && !arr_has_id(a, id))
		cJSON_AddItemToArray(a, cJSON_CreateString(id));
}

static void arr_add_unique(cJSON *a, const char *s)
{
	if (s && !arr_has_ci(a, s))
		cJSON_AddItemToArray(a, cJSON_CreateString(s));
}

static char *lower_dup(const char *s)
{
	return kv_lower(kv_strdup(s));
}

/* Adds perms (as returned by the service) to eff: lower case, "all" expanded, no duplicates. */
static void add_effective(cJSON *eff, const cJSON *perms, const char *const *all)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, perms) {
		if (!cJSON_IsString(it))
			continue;
		if (kv_streq_ci(it->valuestring, "all")) {
			for (size_t i = 0; all[i]; i++)
				arr_add_unique(eff, all[i]);
		} else {
			char *l = lower_dup(it->valuestring);

			arr_add_unique(eff, l);
			free(l);
		}
	}
}

/* Case-insensitive glob where '*' matches any run of characters (ARM action wildcards). */
static bool glob_ci(const char *pat, const char *s)
{
	if (*pat == '\0')
		return *s == '\0';
	if (*pat == '*') {
		for (const char *p = s;; p++) {
			if (glob_ci(pat + 1, p))
				return true;
			if (*p == '\0')
				return false;
		}
	}
	if (*s == '\0')
		return false;
	if ((*pat | 0x20) != (*s | 0x20) && *pat != *s)
		return false;
	return glob_ci(pat + 1, s + 1);
}

static bool actions_cover(const cJSON *allow, const cJSON *deny, const char *action)
{
	const cJSON *it;
	bool ok = false;

	cJSON_ArrayForEach(it, allow)
		if (cJSON_IsString(it) && glob_ci(it->valuestring, action))
			ok = true;
	cJSON_ArrayForEach(it, deny)
		if (cJSON_IsString(it) && glob_ci(it->valuestring, action))
			ok = false;
	return ok;
}

/*
 * The vault a volume's BEK or KEK is in: its ARM ID, or, when no vault of
 * the snapshot matches the key's URL, the URL's origin ("https://host"), so
 * that the key is still audited (as a vault that could not be read).
 */
static const char *url_origin(const char *url, char *buf, size_t n)
{
	const char *host;
	size_t len;

	if (!url || !kv_startswith_ci(url, "https://"))
		return NULL;
	host = url + strlen("https://");
	len = strcspn(host, "/?#:");   /* ":443" names the same vault */
	if (len == 0 || strlen("https://") + len >= n)
		return NULL;
	snprintf(buf, n, "https://%.*s", (int)len, host);
	return kv_lower(buf);
}

static const char *bek_ref(const struct ade_volume *v, char *buf, size_t n)
{
	if (v->bek_vault)
		return v->bek_vault;
	return v->secret_url ? url_origin(v->secret_url, buf, n) : url_origin(v->bek_vault_url, buf, n);
}

static const char *kek_ref(const struct ade_volume *v, char *buf, size_t n)
{
	return v->kek_vault ? v->kek_vault : url_origin(v->key_url, buf, n);
}

/* ---- tenants ---- */

static struct tenant_facts *tenant_slot(struct facts_ctx *c, const char *tid)
{
	size_t ix;

	if (kv_empty(tid))
		return NULL;
	if (idmap_get(&c->tenant_ix, tid, &ix))
		return &c->tenants[ix];
	c->tenants = kv_realloc(c->tenants, (c->ntenants + 1) * sizeof(*c->tenants));
	memset(&c->tenants[c->ntenants], 0, sizeof(c->tenants[0]));
	c->tenants[c->ntenants].tid = kv_strdup(tid);
	idmap_put(&c->tenant_ix, tid, c->ntenants);
	return &c->tenants[c->ntenants++];
}

/* The caller's user type in tenant tid: the snapshot's tenants list, else the caller record. */
static enum user_type caller_type_in(const struct estate *e, const char *tid)
{
	const struct tenant *t = estate_tenant(e, tid);
	const struct caller *c = &e->caller;

	if (t && t->caller_type != USER_UNKNOWN)
		return t->caller_type;
	if (!c->present)
		return USER_UNKNOWN;
	if (kv_streq_ci(c->type, "servicePrincipal") || kv_streq_ci(c->type, "managedIdentity"))
		return USER_SERVICE_PRINCIPAL;
	if (kv_streq_ci(c->tenant_id, tid)) {
		if (kv_streq_ci(c->user_type, "Guest"))
			return USER_GUEST;
		if (kv_streq_ci(c->user_type, "Member"))
			return USER_MEMBER;
	}
	return USER_UNKNOWN;
}

/*
 * Whether a tenant holds ADE vaults, and how many, is judged from every VM,
 * extension and disk list of its subscriptions, its subscription list, and
 * its key vaults' own lists (holds_err).  A vault that could not be read is
 * counted in its subscription's tenant, which may not be its own.  Any of
 * these makes the count unknown, and "holds none" too (one found is found).
 */
static void tenant_lists_unavailable(struct facts_ctx *c, struct tenant_facts *tf)
{
	const struct estate *e = c->e;
	const struct estate_error *err = estate_subscriptions_failed(e, tf->tid);
	char what[256];

	for (size_t i = 0; !err && i < e->nsubs; i++)
		if (kv_streq_ci(e->subs[i].tenant_id, tf->tid))
			err = sub_lists_failed(c, e->subs[i].id, LISTS_ADE_VMS);
	if (!err && tf->unknown)
		err = tf->unknown->holds_err;
	snprintf(what, sizeof(what), "the key vaults of tenant %s holding ADE keys may be more than were read", tf->tid);
	if (err) {
		list_unavailable(tf->unavail, "tenant.adeVaultCount", what, err);
		if (tf->ade_vaults == 0)
			list_unavailable(tf->unavail, "tenant.holdsAdeVaults", what, err);
	}
	if (tf->guessed > 0) {
		const cJSON *why = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(tf->guess->unavail, "vault"), "reason");

		facts_unavailable(tf->unavail, "tenant.adeVaultCount", "error",
		                  "%s (counted in tenant %s, its subscription's tenant)", cJSON_GetStringValue(why), tf->tid);
		if (tf->ade_vaults == tf->guessed)
			facts_unavailable(tf->unavail, "tenant.holdsAdeVaults", "error",
			                  "%s (counted in tenant %s, its subscription's tenant)", cJSON_GetStringValue(why),
			                  tf->tid);
	}
}

static void build_tenant_facts(struct facts_ctx *c, struct tenant_facts *tf)
{
	const struct estate *e = c->e;
	const struct tenant *t = estate_tenant(e, tf->tid);
	enum user_type ut = caller_type_in(e, tf->tid);
	cJSON *sp;

	tf->facts = cJSON_CreateObject();
	tf->unavail = cJSON_CreateObject();
	add_str(tf->facts, "id", tf->tid);
	add_str(tf->facts, "callerUserType", ut == USER_UNKNOWN ? NULL : user_type_name(ut));
	cJSON_AddBoolToObject(tf->facts, "callerIsGuest", ut == USER_GUEST);
	if (ut == USER_UNKNOWN)
		facts_unavailable(tf->unavail, "tenant.callerUserType", "skipped",
		            "the caller's user type in tenant %s is not in the snapshot", tf->tid);
	if (ut == USER_UNKNOWN)
		facts_unavailable(tf->unavail, "tenant.callerIsGuest", "skipped",
		            "the caller's user type in tenant %s is not in the snapshot", tf->tid);
	sp = cJSON_AddObjectToObject(tf->facts, "backupSp");
	if (t && t->backup_sp != SP_UNKNOWN) {
		add_str(sp, "status", sp_status_name(t->backup_sp));
		add_str(sp, "objectId", t->backup_sp_object_id);
	} else {
		add_str(sp, "status", NULL);
		add_str(sp, "objectId", NULL);
		facts_unavailable(tf->unavail, "tenant.backupSp", "error",
		            "Backup Management Service's object ID in tenant %s is unknown: collect the tenant "
		            "or pass --backup-sp-object-id %s=OBJECT_ID", tf->tid, tf->tid);
	}
	cJSON_AddNumberToObject(tf->facts, "adeVaultCount", tf->ade_vaults);
	cJSON_AddBoolToObject(tf->facts, "holdsAdeVaults", tf->ade_vaults > 0);
	tenant_lists_unavailable(c, tf);
}

/* ---- vaults ---- */

static struct vault_use *use_slot(struct facts_ctx *c, const char *id)
{
	size_t ix;

	if (idmap_get(&c->use_ix, id, &ix))
		return &c->uses[ix];
	c->uses = kv_realloc(c->uses, (c->nuses + 1) * sizeof(*c->uses));
	memset(&c->uses[c->nuses], 0, sizeof(c->uses[0]));
	c->uses[c->nuses].id = kv_strdup(id);
	c->uses[c->nuses].vms = cJSON_CreateArray();
	c->uses[c->nuses].vault = estate_vault(c->e, id);
	idmap_put(&c->use_ix, id, c->nuses);
	return &c->uses[c->nuses++];
}

/* The tenant whose facts apply to a vault: its tenantId, else its subscription's. */
static void vault_tenant(const struct estate *e, const struct vault_use *u, char *out, size_t n)
{
	char sub[64];
	const struct subscription *s;

	out[0] = '\0';
	if (u->vault && !kv_empty(u->vault->tenant_id)) {
		snprintf(out, n, "%s", u->vault->tenant_id);
		return;
	}
	if (armid_segment(u->id, "subscriptions", sub, sizeof(sub)) && (s = estate_subscription(e, sub)) &&
	    !kv_empty(s->tenant_id))
		snprintf(out, n, "%s", s->tenant_id);
}

static const struct builtin_role *builtin_role(const char *role_definition_id)
{
	const char *slash = strrchr(role_definition_id, '/');
	const char *guid = slash ? slash + 1 : role_definition_id;

	for (size_t i = 0; i < sizeof(BUILTIN_ROLES) / sizeof(BUILTIN_ROLES[0]); i++)
		if (kv_streq_ci(BUILTIN_ROLES[i].guid, guid))
			return &BUILTIN_ROLES[i];
	return NULL;
}

bool facts_role_is_builtin(const char *role_definition_id)
{
	return role_definition_id && builtin_role(role_definition_id) != NULL;
}

/* Marks in got[] the needed actions that one role's data actions grant (its own not-actions subtract). */
static void role_grants(const cJSON *allow, const cJSON *deny, const char *const *need, bool *got)
{
	for (size_t i = 0; need[i]; i++)
		if (actions_cover(allow, deny, need[i]))
			got[i] = true;
}

bool facts_actions_cover(const cJSON *allow, const cJSON *deny, const char *action)
{
	return actions_cover(allow, deny, action);
}

bool facts_rbac_cover_add(struct facts_rbac_cover *cv, const char *role_definition_id, const cJSON *data_actions,
                          const cJSON *not_data_actions)
{
	const struct builtin_role *b = role_definition_id ? builtin_role(role_definition_id) : NULL;

	if (b) {
		cJSON *allow = cJSON_CreateArray();

		for (size_t k = 0; k < 4 && b->data_actions[k]; k++)
			cJSON_AddItemToArray(allow, cJSON_CreateString(b->data_actions[k]));
		role_grants(allow, NULL, NEED_SECRETS, cv->secrets);
		role_grants(allow, NULL, NEED_KEYS, cv->keys);
		cJSON_Delete(allow);
		return true;
	}
	if (!data_actions)
		return false;
	role_grants(data_actions, not_data_actions, NEED_SECRETS, cv->secrets);
	role_grants(data_actions, not_data_actions, NEED_KEYS, cv->keys);
	return true;
}

static bool all_true(const bool *got, const char *const *need)
{
	for (size_t i = 0; need[i]; i++)
		if (!got[i])
			return false;
	return true;
}

bool facts_rbac_covers_secrets(const struct facts_rbac_cover *cv)
{
	return all_true(cv->secrets, NEED_SECRETS);
}

bool facts_rbac_covers_keys(const struct facts_rbac_cover *cv)
{
	return all_true(cv->keys, NEED_KEYS);
}

/*
 * The role assignments of one principal (Backup Management Service of a
 * tenant), indexed by scope, so that each vault looks up the few scopes
 * that can contain it (its ID's prefixes) instead of reading every
 * assignment of the estate: 7,000 vaults by 4,500 assignments was 0.5 s of
 * a 50k-VM audit.  Management-group scopes, and scopes the index cannot
 * hold as a prefix ("/", a trailing "//"), are checked for every vault.
 */
struct ix_vec {
	size_t *v, n, cap;
};

struct principal_ras {
	const char *oid;             /* the tenant's string: the estate outlives the context */
	struct ix_vec always;        /* estate.ras[] indexes, ascending */
	struct idmap scope_ix;       /* scope -> buckets[] */
	struct ix_vec *buckets;
	size_t nbuckets;
};

static void ix_push(struct ix_vec *x, size_t i)
{
	if (x->n == x->cap) {
		x->cap = x->cap ? 2 * x->cap : 8;
		x->v = kv_realloc(x->v, x->cap * sizeof(*x->v));
	}
	x->v[x->n++] = i;
}

static const struct principal_ras *principal_ras(struct facts_ctx *c, const char *oid)
{
	const struct estate *e = c->e;
	struct principal_ras *p;

	for (size_t k = 0; k < c->npras; k++)
		if (kv_streq_ci(c->pras[k].oid, oid))
			return &c->pras[k];
	c->pras = kv_realloc(c->pras, (c->npras + 1) * sizeof(*c->pras));
	p = &c->pras[c->npras++];
	memset(p, 0, sizeof(*p));
	p->oid = oid;
	for (size_t i = 0; i < e->nras; i++) {
		const char *scope = e->ras[i].scope;
		size_t n = scope ? strlen(scope) : 0, b;

		if (!kv_streq_ci(e->ras[i].principal_id, oid))
			continue;
		if (n > 1 && scope[n - 1] == '/')
			n--;   /* as armid_scope_contains trims it */
		if (n < 2 || scope[n - 1] == '/' ||
		    kv_startswith_ci(scope, "/providers/Microsoft.Management/managementGroups/")) {
			ix_push(&p->always, i);
			continue;
		}
		if (!idmap_get(&p->scope_ix, scope, &b)) {
			p->buckets = kv_realloc(p->buckets, (p->nbuckets + 1) * sizeof(*p->buckets));
			memset(&p->buckets[p->nbuckets], 0, sizeof(*p->buckets));
			b = p->nbuckets++;
			idmap_put_borrowed(&p->scope_ix, scope, b);
		}
		ix_push(&p->buckets[b], i);
	}
	return p;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return (x > y) - (x < y);
}

/*
 * The assignments of p that may apply to id, ascending: the always-checked
 * ones and those whose scope is a prefix of id ending at a segment (every
 * scope armid_scope_contains can accept, and maybe more).
 */
static struct ix_vec ras_for(const struct principal_ras *p, const char *id)
{
	struct ix_vec x = {NULL, 0, 0};
	size_t len = strlen(id), b;
	char *probe = kv_strdup(id);

	for (size_t i = 0; i < p->always.n; i++)
		ix_push(&x, p->always.v[i]);
	for (size_t at = 1; p->nbuckets && at <= len; at++) {
		if (id[at] != '/' && id[at] != '\0')
			continue;
		if (id[at - 1] == '/')
			continue;   /* no indexed scope ends in '/' */
		probe[at] = '\0';
		if (idmap_get(&p->scope_ix, probe, &b))
			for (size_t i = 0; i < p->buckets[b].n; i++)
				ix_push(&x, p->buckets[b].v[i]);
		probe[at] = id[at];
	}
	free(probe);
	if (x.n > 1)
		qsort(x.v, x.n, sizeof(*x.v), cmp_size);
	return x;
}

static void principal_ras_free(struct facts_ctx *c)
{
	for (size_t k = 0; k < c->npras; k++) {
		struct principal_ras *p = &c->pras[k];

		free(p->always.v);
		for (size_t b = 0; b < p->nbuckets; b++)
			free(p->buckets[b].v);
		free(p->buckets);
		idmap_release(&p->scope_ix);
	}
	free(c->pras);
}

/*
 * Backup Management Service's RBAC on a vault: every role assigned to it at
 * the vault or an enclosing scope, and whether their data actions together
 * cover what Backup needs for secrets and for keys.  A role's notDataActions
 * subtract from that role only (Azure RBAC semantics).
 */
static void rbac_facts(struct facts_ctx *c, struct vault_use *u, const char *oid, cJSON *out)
{
	const struct estate *e = c->e;
	cJSON *roles = cJSON_AddArrayToObject(out, "roles");
	const char *unknown_role = NULL, *unknown_scope = NULL, *mg_scope = NULL;
	struct facts_rbac_cover cv = {{false}, {false}};
	bool secrets, keys;
	struct ix_vec ix = ras_for(principal_ras(c, oid), u->id);

	for (size_t k = 0; k < ix.n; k++) {
		const struct role_assignment *ra = &e->ras[ix.v[k]];
		const struct builtin_role *b;
		const struct role_definition *rd;

		if (!kv_streq_ci(ra->principal_id, oid))
			continue;
		/*
		 * A management group's subscriptions are not in the snapshot, so an
		 * assignment there may or may not reach the vault: it can never make a
		 * pass, but it makes a fail unknown.
		 */
		if (kv_startswith_ci(ra->scope, "/providers/Microsoft.Management/managementGroups/")) {
			mg_scope = ra->scope;
			continue;
		}
		if (!armid_scope_contains(ra->scope, u->id))
			continue;
		if ((b = builtin_role(ra->role_definition_id))) {
			arr_add_unique(roles, b->name);
			facts_rbac_cover_add(&cv, ra->role_definition_id, NULL, NULL);
		} else if ((rd = estate_role_definition(e, ra->role_definition_id))) {
			arr_add_unique(roles, rd->role_name ? rd->role_name : rd->id);
			facts_rbac_cover_add(&cv, NULL, rd->data_actions, rd->not_data_actions);
		} else {
			arr_add_unique(roles, ra->role_definition_id);
			unknown_role = ra->role_definition_id;
			unknown_scope = ra->scope;
		}
	}
	free(ix.v);
	secrets = facts_rbac_covers_secrets(&cv);
	keys = facts_rbac_covers_keys(&cv);
	cJSON_AddBoolToObject(out, "coversSecrets", secrets);
	cJSON_AddBoolToObject(out, "coversKeys", keys);
	if (unknown_role && !secrets)
		facts_unavailable(u->unavail, "vault.backupRbac.coversSecrets", "error",
		            "role definition '%s' assigned to Backup Management Service at '%s' is not in the snapshot",
		            unknown_role, unknown_scope);
	if (unknown_role && !keys)
		facts_unavailable(u->unavail, "vault.backupRbac.coversKeys", "error",
		            "role definition '%s' assigned to Backup Management Service at '%s' is not in the snapshot",
		            unknown_role, unknown_scope);
	if (mg_scope && !secrets)
		facts_unavailable(u->unavail, "vault.backupRbac.coversSecrets", "error",
		            "Backup Management Service has a role at management group '%s', which may include the vault's "
		            "subscription; the snapshot does not say", mg_scope);
	if (mg_scope && !keys)
		facts_unavailable(u->unavail, "vault.backupRbac.coversKeys", "error",
		            "Backup Management Service has a role at management group '%s', which may include the vault's "
		            "subscription; the snapshot does not say", mg_scope);
	/* A role-assignment list of the vault's scope cut short: a role not seen may grant what is missing. */
	{
		const struct estate_error *err = estate_list_failed(e, u->id, ESTATE_LIST_ROLE_ASSIGNMENTS);
		char what[512];

		if (!err)
			return;
		snprintf(what, sizeof(what), "Backup Management Service may have roles on key vault '%s' that were not read",
		         u->vault && u->vault->name ? u->vault->name : u->id);
		list_unavailable(u->unavail, "vault.backupRbac.roles", what, err);
		if (!secrets)
			list_unavailable(u->unavail, "vault.backupRbac.coversSecrets", what, err);
		if (!keys)
			list_unavailable(u->unavail, "vault.backupRbac.coversKeys", what, err);
	}
}

/* Backup Management Service's access-policy entries on a vault, merged and normalised. */
static void policy_facts(const struct vault *v, const char *oid, cJSON *out)
{
	cJSON *secrets = cJSON_CreateArray(), *keys = cJSON_CreateArray(), *certs = cJSON_CreateArray();
	bool present = false;

	for (size_t i = 0; i < v->npolicies; i++) {
		const struct access_policy *ap = &v->policies[i];

		/* A compound identity (applicationId set) is not a grant to the service itself. */
		if (!kv_streq_ci(ap->object_id, oid) || !kv_empty(ap->application_id))
			continue;
		present = true;
		add_effective(secrets, ap->secrets, ALL_SECRETS);
		add_effective(keys, ap->keys, ALL_KEYS);
		add_effective(certs, ap->certificates, ALL_CERTIFICATES);
	}
	cJSON_AddBoolToObject(out, "present", present);
	add_str(out, "objectId", oid);
	cJSON_AddItemToObject(out, "secrets", secrets);
	cJSON_AddItemToObject(out, "keys", keys);
	cJSON_AddItemToObject(out, "certificates", certs);
}

static void missing_vault_facts(struct facts_ctx *c, struct vault_use *u)
{
	const struct estate_error *err = estate_error_for(c->e, u->id);
	char name[256], sub[64], rg[128];

	add_str(u->facts, "id", u->id);
	add_str(u->facts, "name", armid_name(u->id, name, sizeof(name)) ? name : u->id);
	add_str(u->facts, "subscriptionId", armid_segment(u->id, "subscriptions", sub, sizeof(sub)) ? sub : NULL);
	add_str(u->facts, "resourceGroup", armid_segment(u->id, "resourceGroups", rg, sizeof(rg)) ? rg : NULL);
	if (err)
		facts_unavailable(u->unavail, "vault", "error", "key vault '%s' could not be read ('%s'): %d %s: %s", u->id,
		            err->scope, err->status, err->code ? err->code : "error", err->message ? err->message : "no message");
	else
		facts_unavailable(u->unavail, "vault", "error",
		            "key vault '%s', which holds ADE keys, is not in the snapshot (deleted, or not readable by the collector)",
		            u->id);
}

/*
 * A failed list that may have held more ADE VMs using vault u: one of its
 * own subscription (ADE wants a vault in its VMs' subscription) or of a
 * subscription where a VM using it was read (moved since).
 */
static const struct estate_error *use_lists_failed(struct facts_ctx *c, const struct vault_use *u)
{
	const struct estate_error *err = sub_lists_failed(c, u->id, LISTS_ADE_VMS);
	const cJSON *it;

	cJSON_ArrayForEach(it, u->vms)
		if (!err)
			err = sub_lists_failed(c, it->valuestring, LISTS_ADE_VMS);
	return err;
}

/* What a vault holds, judged from lists cut short: "holds one" stands, "holds none" and adeVms do not. */
static void vault_lists_unavailable(struct facts_ctx *c, struct vault_use *u)
{
	const char *name = u->vault->name ? u->vault->name : u->id;
	char what[512];

	if (!(u->holds_err = use_lists_failed(c, u)))
		return;
	snprintf(what, sizeof(what), "key vault '%s' may hold the keys of ADE VMs that were not read", name);
	list_unavailable(u->unavail, "vault.adeVms", what, u->holds_err);
	if (!u->bek)
		list_unavailable(u->unavail, "vault.holdsBek", what, u->holds_err);
	if (!u->kek)
		list_unavailable(u->unavail, "vault.holdsKek", what, u->holds_err);
}

static void build_vault_facts(struct facts_ctx *c, struct vault_use *u)
{
	const struct estate *e = c->e;
	const struct vault *v = u->vault;
	const struct subscription *s;
	const struct tenant *t;
	cJSON *f, *net, *bp, *rb, *foreign;
	char loc[64];
	const char *action, *bypass;
	bool trusted;

	u->facts = f = cJSON_CreateObject();
	u->unavail = cJSON_CreateObject();
	vault_tenant(e, u, u->tenant, sizeof(u->tenant));
	if (!v) {
		missing_vault_facts(c, u);
		return;
	}
	add_estate_str(f, "id", v->id);
	{
		char name[256];

		if (v->name || !armid_name(v->id, name, sizeof(name)))
			add_estate_str(f, "name", v->name ? v->name : v->id);
		else
			add_str(f, "name", name);
	}
	region_norm(v->location, loc, sizeof(loc));
	add_str(f, "location", v->location ? loc : NULL);
	add_str(f, "subscriptionId", v->sub[0] ? v->sub : NULL);
	add_str(f, "resourceGroup", v->rg[0] ? v->rg : NULL);
	add_estate_str(f, "tenantId", v->tenant_id);
	add_estate_str(f, "uri", v->uri);
	cJSON_AddBoolToObject(f, "rbac", v->rbac);
	cJSON_AddBoolToObject(f, "enabledForDiskEncryption", v->enabled_for_disk_encryption);
	cJSON_AddBoolToObject(f, "softDelete", v->soft_delete);
	cJSON_AddBoolToObject(f, "purgeProtection", v->purge_protection);
	if (v->soft_delete_days)
		cJSON_AddNumberToObject(f, "softDeleteRetentionDays", v->soft_delete_days);
	else
		cJSON_AddNullToObject(f, "softDeleteRetentionDays");

	/* ARM defaults: no networkAcls means Allow; bypass defaults to AzureServices (b2). */
	action = v->default_action ? v->default_action : "Allow";
	bypass = v->bypass ? v->bypass : "AzureServices";
	{
		char *lb = lower_dup(bypass);

		trusted = !kv_streq_ci(action, "Deny") || strstr(lb, "azureservices") != NULL;
		free(lb);
	}
	net = cJSON_AddObjectToObject(f, "network");
	add_str(net, "defaultAction", action);
	add_str(net, "bypass", bypass);
	cJSON_AddBoolToObject(net, "trustedServicesAllowed", trusted);
	add_str(f, "publicNetworkAccess", v->public_network_access);

	cJSON_AddBoolToObject(f, "holdsBek", u->bek);
	cJSON_AddBoolToObject(f, "holdsKek", u->kek);
	cJSON_AddItemToObject(f, "adeVms", cJSON_Duplicate(u->vms, true));
	vault_lists_unavailable(c, u);

	if (!e->present.subscriptions) {
		add_str(f, "subscriptionTenantId", NULL);
		cJSON_AddNullToObject(f, "tenantMatchesSubscription");
		facts_unavailable(u->unavail, "vault.subscriptionTenantId", "skipped", "subscriptions were not collected");
		facts_unavailable(u->unavail, "vault.tenantMatchesSubscription", "skipped", "subscriptions were not collected");
	} else if (!(s = estate_subscription(e, v->sub)) || kv_empty(s->tenant_id)) {
		const struct estate_error *err = estate_error_for(e, v->id);

		add_str(f, "subscriptionTenantId", NULL);
		cJSON_AddNullToObject(f, "tenantMatchesSubscription");
		facts_unavailable(u->unavail, "vault.subscriptionTenantId", err ? "error" : "skipped",
		            "subscription '%s' of vault '%s' (or its tenantId) is not in the snapshot", v->sub, v->id);
		facts_unavailable(u->unavail, "vault.tenantMatchesSubscription", err ? "error" : "skipped",
		            "subscription '%s' of vault '%s' (or its tenantId) is not in the snapshot", v->sub, v->id);
	} else {
		add_str(f, "subscriptionTenantId", s->tenant_id);
		cJSON_AddBoolToObject(f, "tenantMatchesSubscription", kv_streq_ci(s->tenant_id, v->tenant_id));
	}

	cJSON_AddNumberToObject(f, "policyCount", (double)v->npolicies);
	foreign = cJSON_AddArrayToObject(f, "foreignTenantPolicies");
	for (size_t i = 0; i < v->npolicies; i++)
		if (!kv_empty(v->policies[i].tenant_id) && !kv_streq_ci(v->policies[i].tenant_id, v->tenant_id))
			arr_add_unique(foreign, v->policies[i].object_id);

	t = u->tenant[0] ? estate_tenant(e, u->tenant) : NULL;
	bp = cJSON_AddObjectToObject(f, "backupPolicy");
	rb = cJSON_AddObjectToObject(f, "backupRbac");
	if (t && t->backup_sp == SP_FOUND) {
		policy_facts(v, t->backup_sp_object_id, bp);
		if (e->present.role_assignments) {
			rbac_facts(c, u, t->backup_sp_object_id, rb);
		} else {
			facts_unavailable(u->unavail, "vault.backupRbac", "skipped",
			            "role assignments were not collected");
		}
	} else if (t && t->backup_sp == SP_ABSENT) {
		/* No principal, so no grant of any kind. */
		cJSON_AddBoolToObject(bp, "present", false);
		cJSON_AddNullToObject(bp, "objectId");
		cJSON_AddArrayToObject(bp, "secrets");
		cJSON_AddArrayToObject(bp, "keys");
		cJSON_AddArrayToObject(bp, "certificates");
		cJSON_AddArrayToObject(rb, "roles");
		cJSON_AddBoolToObject(rb, "coversSecrets", false);
		cJSON_AddBoolToObject(rb, "coversKeys", false);
	} else {
		const char *tid = u->tenant[0] ? u->tenant : "(unknown)";

		facts_unavailable(u->unavail, "vault.backupPolicy", "error",
		            "Backup Management Service's object ID in tenant %s is unknown: collect the tenant "
		            "or pass --backup-sp-object-id %s=OBJECT_ID", tid, tid);
		facts_unavailable(u->unavail, "vault.backupRbac", "error",
		            "Backup Management Service's object ID in tenant %s is unknown: collect the tenant "
		            "or pass --backup-sp-object-id %s=OBJECT_ID", tid, tid);
	}
}

/* ---- preparation ---- */

static void note_use(struct facts_ctx *c, const char *vault_id, const struct vm *vm, bool bek)
{
	struct vault_use *u;

	if (!vault_id)
		return;
	u = use_slot(c, vault_id);
	if (bek)
		u->bek = true;
	else
		u->kek = true;
	arr_add_unique(u->vms, vm->id);
}

static int cmp_use_ptr(const void *a, const void *b)
{
	const struct vault_use *x = *(const struct vault_use *const *)a, *y = *(const struct vault_use *const *)b;

	return strcasecmp(x->id, y->id);
}

/*
 * estate.items by VM ID.  Only judging reads it, so a large estate's index
 * is built on a thread of its own beside the rest of facts_prepare, which
 * ran on one core while the other idled (an eighth of it at 50k VMs).
 */
#define ITEM_INDEX_THREAD_MIN 4096

static void *index_items(void *arg)
{
	struct facts_ctx *c = arg;
	const struct estate *e = c->e;

	for (size_t i = 0; i < e->nitems; i++)
		if (e->items[i].vm_id)
			idmap_put_borrowed(&c->item_ix, e->items[i].vm_id, i);   /* the estate outlives c */
	return NULL;
}

struct facts_ctx *facts_prepare(const struct estate *e)
{
	struct facts_ctx *c = kv_calloc(1, sizeof(*c));
	pthread_t items;
	bool two;

	c->e = e;
	/* The thread writes c->item_ix alone; the rest of c is this thread's until the join. */
	two = e->nitems >= ITEM_INDEX_THREAD_MIN && pthread_create(&items, NULL, index_items, c) == 0;
	if (!two)
		(void)index_items(c);
	/* Every vault of the estate, then those ADE VMs reference but the estate lacks. */
	for (size_t i = 0; i < e->nvaults; i++)
		use_slot(c, e->vaults[i].id);
	for (size_t i = 0; i < e->nvms; i++) {
		const struct vm *vm = &e->vms[i];

		if (!vm->ade.encrypted)
			continue;
		for (size_t k = 0; k < vm->ade.nvolumes; k++) {
			char b1[300], b2[300];

			note_use(c, bek_ref(&vm->ade.volumes[k], b1, sizeof(b1)), vm, true);
			note_use(c, kek_ref(&vm->ade.volumes[k], b2, sizeof(b2)), vm, false);
		}
	}
	for (size_t i = 0; i < c->nuses; i++) {
		struct tenant_facts *tf;

		build_vault_facts(c, &c->uses[i]);
		tf = tenant_slot(c, c->uses[i].tenant);
		if (!tf)
			continue;
		if (c->uses[i].bek || c->uses[i].kek) {
			tf->ade_vaults++;
			/* Not read because of an error: its tenant is its subscription's, a guess. */
			if (!c->uses[i].vault && estate_error_for(e, c->uses[i].id)) {
				tf->guessed++;
				tf->guess = &c->uses[i];
			}
		}
		if (c->uses[i].holds_err && !tf->unknown)
			tf->unknown = &c->uses[i];
	}
	/* Tenants of the snapshot and of the subscriptions count even without vaults. */
	for (size_t i = 0; i < e->ntenants; i++)
		tenant_slot(c, e->tenants[i].tenant_id);
	for (size_t i = 0; i < e->nsubs; i++)
		tenant_slot(c, e->subs[i].tenant_id);
	for (size_t i = 0; i < c->ntenants; i++)
		build_tenant_facts(c, &c->tenants[i]);
	if (two)
		pthread_join(items, NULL);
	/*
	 * From here the context is only read, so facts_each_range may run on
	 * several threads: the caches the subjects consult are filled now.
	 */
	for (size_t i = 0; e->nerrors && i < e->nvms; i++)
		sub_lists_failed(c, e->vms[i].id, 0);
	/* Vaults in ID order, so reports are stable whatever the snapshot's order. */
	c->order = kv_calloc(c->nuses ? c->nuses : 1, sizeof(*c->order));
	for (size_t i = 0; i < c->nuses; i++)
		c->order[i] = &c->uses[i];
	qsort(c->order, c->nuses, sizeof(*c->order), cmp_use_ptr);
	return c;
}

void facts_ctx_free(struct facts_ctx *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nuses; i++) {
		free(c->uses[i].id);
		cJSON_Delete(c->uses[i].vms);
		cJSON_Delete(c->uses[i].facts);
		cJSON_Delete(c->uses[i].unavail);
	}
	free(c->uses);
	for (size_t i = 0; i < c->ntenants; i++) {
		free(c->tenants[i].tid);
		cJSON_Delete(c->tenants[i].facts);
		cJSON_Delete(c->tenants[i].unavail);
	}
	free(c->tenants);
	idmap_release(&c->use_ix);
	idmap_release(&c->tenant_ix);
	idmap_release(&c->item_ix);
	idmap_release(&c->subl_ix);
	principal_ras_free(c);
	free(c->subl);
	free(c->order);
	free(c);
}

/* ---- subjects ---- */

static const char *const SOURCE_NAMES[] = {"disk", "vmModel", "instanceView", "extension"};

/* Does an "$unavailable" object cover path (a key equal to it or to one of its prefixes)? */
static const cJSON *unavail_for(const cJSON *un, const char *path)
{
	const cJSON *k;

	cJSON_ArrayForEach(k, un) {
		size_t kl = strlen(k->string);

		if (strncmp(path, k->string, kl) == 0 && (path[kl] == '\0' || path[kl] == '.'))
			return k;
	}
	return NULL;
}

/* Whether array a (lower-case permissions) holds get, list and backup. */
static bool has_template(const cJSON *a, const char *const *need)
{
	for (size_t i = 0; i < 3; i++)
		if (!arr_has_ci(a, need[i]))
			return false;
	return true;
}

/*
 * The evidence facts of a VM (evidence.c), with what the BKP rules would say
 * of Backup Management Service's grants on each of its key vaults, joined:
 * complete, missing somewhere, or unknown (a vault or grant not readable).
 */
static void vm_evidence(struct facts_ctx *c, const struct vm *vm, const struct protected_item *item, cJSON *bk,
                        cJSON *un)
{
	struct evidence_access acc;
	bool unknown = false;

	memset(&acc, 0, sizeof(acc));
	acc.vaults = cJSON_CreateArray();
	acc.missing = cJSON_CreateArray();
	acc.vault_ids = cJSON_CreateArray();
	for (size_t i = 0; vm->ade.encrypted && i < vm->ade.nvolumes; i++) {
		char b1[300], b2[300];
		const char *ids[2] = {bek_ref(&vm->ade.volumes[i], b1, sizeof(b1)), kek_ref(&vm->ade.volumes[i], b2, sizeof(b2))};

		for (size_t j = 0; j < 2; j++) {
			const struct vault_use *u;
			const cJSON *f, *why;
			const char *name;
			size_t ux;
			bool need_k = false, need_s = false, ok;

			if (!ids[j] || arr_has_id(acc.vault_ids, ids[j]) || !idmap_get(&c->use_ix, ids[j], &ux))
				continue;
			u = &c->uses[ux];
			f = u->facts;
			cJSON_AddItemToArray(acc.vault_ids, cJSON_CreateString(ids[j]));
			name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
			arr_add_unique(acc.vaults, name ? name : ids[j]);
			for (size_t k = 0; k < vm->ade.nvolumes; k++) {
				char c1[300], c2[300];

				need_s = need_s || armid_eq(bek_ref(&vm->ade.volumes[k], c1, sizeof(c1)), ids[j]);
				need_k = need_k || armid_eq(kek_ref(&vm->ade.volumes[k], c2, sizeof(c2)), ids[j]);
			}
			if (u->vault && u->vault->rbac) {
				const cJSON *rb = cJSON_GetObjectItemCaseSensitive(f, "backupRbac");

				why = unavail_for(u->unavail, "vault.backupRbac.coversSecrets");
				if (!why && need_k)
					why = unavail_for(u->unavail, "vault.backupRbac.coversKeys");
				ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rb, "coversSecrets")) &&
				     (!need_k || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rb, "coversKeys")));
			} else {
				const cJSON *bp = cJSON_GetObjectItemCaseSensitive(f, "backupPolicy");

				why = unavail_for(u->unavail, "vault.backupPolicy");
				ok = (!need_s || has_template(cJSON_GetObjectItemCaseSensitive(bp, "secrets"), BACKUP_TEMPLATE_SECRETS)) &&
				     (!need_k || has_template(cJSON_GetObjectItemCaseSensitive(bp, "keys"), BACKUP_TEMPLATE_KEYS));
			}
			if (!why)
				why = unavail_for(u->unavail, "vault");
			if (why && !unknown) {
				unknown = true;
				acc.status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(why, "status"));
				snprintf(acc.reason, sizeof(acc.reason), "%s",
				         cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(why, "reason")));
			} else if (!why && !ok) {
				arr_add_unique(acc.missing, name ? name : ids[j]);
			}
			if (!acc.bms_object_id && u->tenant[0] && estate_tenant(c->e, u->tenant))
				acc.bms_object_id = estate_tenant(c->e, u->tenant)->backup_sp_object_id;
		}
	}
	/* A grant missing anywhere decides; otherwise an unreadable one leaves it unknown. */
	acc.state = cJSON_GetArraySize(acc.missing) > 0 ? 0 : unknown ? -1 : 1;
	evidence_vm_facts(c->e, vm, item, bk, un, &acc);
	cJSON_Delete(acc.vaults);
	cJSON_Delete(acc.missing);
	cJSON_Delete(acc.vault_ids);
}

static void build_vm_facts(struct facts_ctx *c, const struct vm *vm, cJSON *f, cJSON *un)
{
	const struct estate *e = c->e;
	const struct ade_info *a = &vm->ade;
	cJSON *ade, *src, *vaults, *agent, *bk;
	char loc[64], name[256];
	bool kek = false;
	size_t ix;

	add_estate_str(f, "id", vm->id);
	if (vm->name || !armid_name(vm->id, name, sizeof(name)))
		add_estate_str(f, "name", vm->name ? vm->name : vm->id);
	else
		add_str(f, "name", name);
	region_norm(vm->location, loc, sizeof(loc));
	add_str(f, "location", vm->location ? loc : NULL);
	add_estate_str(f, "subscriptionId", vm->sub[0] ? vm->sub : NULL);
	add_estate_str(f, "resourceGroup", vm->rg[0] ? vm->rg : NULL);
	add_estate_str(f, "os", vm_os_name(vm->os));

	ade = cJSON_AddObjectToObject(f, "ade");
	cJSON_AddBoolToObject(ade, "encrypted", a->encrypted);
	cJSON_AddBoolToObject(ade, "legacyAad", a->legacy_aad);
	src = cJSON_CreateArray();
	vaults = cJSON_CreateArray();
	for (size_t i = 0; i < 4; i++)
		if (a->sources & (1u << i))
			cJSON_AddItemToArray(src, cJSON_CreateString(SOURCE_NAMES[i]));
	for (size_t i = 0; i < a->nvolumes; i++) {
		char b1[300], b2[300];

		kek = kek || a->volumes[i].kek_vault || a->volumes[i].key_url;
		arr_add_id(vaults, bek_ref(&a->volumes[i], b1, sizeof(b1)));
		arr_add_id(vaults, kek_ref(&a->volumes[i], b2, sizeof(b2)));
	}
	cJSON_AddBoolToObject(ade, "kek", a->encrypted && kek);
	cJSON_AddItemToObject(ade, "sources", src);
	add_estate_str(ade, "extensionVersion", a->ext_version);
	add_estate_str(ade, "extensionOperation", a->ext_operation);
	cJSON_AddItemToObject(ade, "vaults", vaults);

	agent = cJSON_AddObjectToObject(f, "agent");
	if (vm->has_instance_view) {
		add_str(agent, "status", vm->agent == AGENT_READY ? "Ready" :
		                         vm->agent == AGENT_NOT_READY ? "NotReady" : "Unknown");
		add_estate_str(agent, "version", vm->agent_version);
	} else {
		add_str(agent, "status", NULL);
		add_str(agent, "version", NULL);
		const struct estate_error *err = estate_error_for(e, vm->id);

		if (err)
			facts_unavailable(un, "vm.agent", "error", "the instance view of VM '%s' could not be read: %d %s: %s",
			            vm->name ? vm->name : vm->id, err->status, err->code ? err->code : "error",
			            err->message ? err->message : "no message");
		else
			facts_unavailable(un, "vm.agent", "skipped", "the snapshot has no instance view for VM '%s'",
			            vm->name ? vm->name : vm->id);
	}

	/* A VM (or one of its extensions) that could not be read in full: its encryption may be
	 * more than the snapshot shows, so nothing that depends on it may pass. */
	{
		const struct estate_error *err = estate_error_within(e, vm->id);

		if (err)
			facts_unavailable(un, "vm.ade", "error",
			                  "VM '%s' could not be read in full (%s: %d %s: %s), so its encryption settings may be "
			                  "incomplete", vm->name ? vm->name : vm->id, err->scope, err->status,
			                  err->code ? err->code : "error", err->message ? err->message : "no message");
		/* Its disks or ADE extension may be on the part of a list that was not read. */
		if (!err && (err = sub_lists_failed(c, vm->id, LISTS_VM_ADE))) {
			char what[512];

			snprintf(what, sizeof(what), "the encryption settings of VM '%s' may be incomplete",
			         vm->name ? vm->name : vm->id);
			list_unavailable(un, "vm.ade", what, err);
		}
	}

	bk = cJSON_AddObjectToObject(f, "backup");
	if (!e->present.protected_items) {
		facts_unavailable(un, "vm.backup", "skipped", "Azure Backup protected items were not collected");
		cJSON_AddNullToObject(bk, "protected");
	} else if (!idmap_get(&c->item_ix, vm->id, &ix) ||
	           kv_streq_ci(e->items[ix].protection_state, "ProtectionStopped")) {
		cJSON_AddBoolToObject(bk, "protected", false);
		cJSON_AddNullToObject(bk, "vaultId");
		cJSON_AddNullToObject(bk, "vaultSubscriptionId");
		cJSON_AddNullToObject(bk, "vaultLocation");
		cJSON_AddNullToObject(bk, "sameSubscription");
		cJSON_AddNullToObject(bk, "sameRegion");
		if (idmap_get(&c->item_ix, vm->id, &ix))
			add_str(bk, "lastBackupStatus", e->items[ix].last_backup_status);
		else
			cJSON_AddNullToObject(bk, "lastBackupStatus");
		/* "Not protected" is never concluded from a cut list of vaults or protected items. */
		{
			const struct estate_error *err = sub_lists_failed(c, vm->id, LISTS_BACKUP);
			char what[512];

			if (err) {
				snprintf(what, sizeof(what), "whether Azure Backup protects VM '%s' is unknown",
				         vm->name ? vm->name : vm->id);
				list_unavailable(un, "vm.backup", what, err);
			}
		}
		vm_evidence(c, vm, NULL, bk, un);
	} else {
		const struct protected_item *it = &e->items[ix];
		const struct rs_vault *rsv = estate_rs_vault(e, it->rsv_id);
		char sub[64] = "", rloc[64];

		armid_segment(it->rsv_id, "subscriptions", sub, sizeof(sub));
		cJSON_AddBoolToObject(bk, "protected", true);
		add_str(bk, "vaultId", it->rsv_id[0] ? it->rsv_id : NULL);
		add_str(bk, "vaultSubscriptionId", sub[0] ? sub : NULL);
		cJSON_AddBoolToObject(bk, "sameSubscription", kv_streq_ci(sub, vm->sub));
		add_str(bk, "lastBackupStatus", it->last_backup_status);
		if (rsv && rsv->location) {
			region_norm(rsv->location, rloc, sizeof(rloc));
			add_str(bk, "vaultLocation", rloc);
			cJSON_AddBoolToObject(bk, "sameRegion", strcmp(rloc, loc) == 0);
		} else {
			cJSON_AddNullToObject(bk, "vaultLocation");
			cJSON_AddNullToObject(bk, "sameRegion");
			facts_unavailable(un, "vm.backup.vaultLocation", estate_error_for(e, it->rsv_id) ? "error" : "skipped",
			            "Recovery Services vault '%s' (or its location) is not in the snapshot", it->rsv_id);
			facts_unavailable(un, "vm.backup.sameRegion", estate_error_for(e, it->rsv_id) ? "error" : "skipped",
			            "Recovery Services vault '%s' (or its location) is not in the snapshot", it->rsv_id);
		}
		vm_evidence(c, vm, it, bk, un);
	}
}

/* The tenant applying to a VM: its subscription's. */
static const char *vm_tenant(const struct estate *e, const struct vm *vm)
{
	const struct subscription *s = estate_subscription(e, vm->sub);

	return s && !kv_empty(s->tenant_id) ? s->tenant_id : NULL;
}

static void merge_unavail(cJSON *into, const cJSON *from)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, from)
		if (!cJSON_GetObjectItemCaseSensitive(into, it->string))
			cJSON_AddItemToObject(into, it->string, cJSON_Duplicate(it, true));
}

/* Adds the tenant part (borrowed) of tid to a subject, or marks it unavailable. */
static void attach_tenant(struct facts_ctx *c, cJSON *f, cJSON *un, const char *tid)
{
	size_t ix;

	if (tid && idmap_get(&c->tenant_ix, tid, &ix)) {
		cJSON_AddItemReferenceToObject(f, "tenant", c->tenants[ix].facts);
		merge_unavail(un, c->tenants[ix].unavail);
	} else {
		facts_unavailable(un, "tenant", "skipped", "the tenant is unknown (its subscription is not in the snapshot)");
	}
}

static void binding_facts(const struct vm *vm, const struct vault_use *u, cJSON *b, cJSON *un,
                          const struct estate *e)
{
	cJSON *roles = cJSON_CreateArray(), *secrets = cJSON_CreateArray(), *keys = cJSON_CreateArray();
	cJSON *disks = cJSON_CreateArray();
	bool bek = false, kek = false, managed = false, unknown_key = false;
	char vsub[64] = "", vloc[64], mloc[64];
	const char *missing_kid = NULL;

	for (size_t i = 0; i < vm->ade.nvolumes; i++) {
		const struct ade_volume *v = &vm->ade.volumes[i];
		char b1[300], b2[300];
		bool here = false;

		if (armid_eq(bek_ref(v, b1, sizeof(b1)), u->id)) {
			bek = here = true;
			arr_add_unique(secrets, v->secret_url);
		}
		if (armid_eq(kek_ref(v, b2, sizeof(b2)), u->id)) {
			kek = here = true;
			arr_add_unique(keys, v->key_url);
		}
		if (here)
			arr_add_unique(disks, v->disk);
	}
	if (bek)
		cJSON_AddItemToArray(roles, cJSON_CreateString("BEK"));
	if (kek)
		cJSON_AddItemToArray(roles, cJSON_CreateString("KEK"));
	cJSON_AddItemToObject(b, "roles", roles);
	cJSON_AddBoolToObject(b, "holdsBek", bek);
	cJSON_AddBoolToObject(b, "holdsKek", kek);
	cJSON_AddItemToObject(b, "secretUrls", secrets);
	cJSON_AddItemToObject(b, "keyUrls", keys);
	cJSON_AddItemToObject(b, "disks", disks);
	/* A vault that could not be read leaves the binding's own facts unknown too: never a pass. */
	if (!u->vault) {
		const cJSON *why = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(u->unavail, "vault"),
		                                                  "reason");

		cJSON_AddNullToObject(b, "sameSubscription");
		cJSON_AddNullToObject(b, "sameRegion");
		facts_unavailable(un, "binding.sameSubscription", "error", "%s", cJSON_GetStringValue(why));
		facts_unavailable(un, "binding.sameRegion", "error", "%s", cJSON_GetStringValue(why));
	} else {
		armid_segment(u->id, "subscriptions", vsub, sizeof(vsub));
		cJSON_AddBoolToObject(b, "sameSubscription", kv_streq_ci(vsub, vm->sub));
		if (u->vault->location && vm->location) {
			region_norm(u->vault->location, vloc, sizeof(vloc));
			region_norm(vm->location, mloc, sizeof(mloc));
			cJSON_AddBoolToObject(b, "sameRegion", strcmp(vloc, mloc) == 0);
		} else {
			cJSON_AddNullToObject(b, "sameRegion");
			facts_unavailable(un, "binding.sameRegion", "skipped", "%s '%s' has no location in the snapshot",
			            vm->location ? "key vault" : "VM", vm->location ? u->id : vm->id);
		}
	}

	/* Certificate-backed KEKs (managed: true) need the data-plane key bundles (b5). */
	if (!kek) {
		cJSON_AddBoolToObject(b, "kekManaged", false);
	} else if (!e->present.keys) {
		cJSON_AddNullToObject(b, "kekManaged");
		facts_unavailable(un, "binding.kekManaged", "skipped",
		            "key bundles were not collected (the certificate-backed key check needs data-plane read)");
	} else {
		const cJSON *it;

		cJSON_ArrayForEach(it, keys) {
			const struct key_bundle *kb = estate_key(e, it->valuestring);

			const struct deleted_item *dk = kb ? NULL : estate_deleted_key(e, it->valuestring);

			if (dk) {
				managed = managed || dk->managed;  /* a deleted key keeps its bundle */
			} else if (!kb) {
				unknown_key = true;
				missing_kid = it->valuestring;
			} else if (kb->managed) {
				managed = true;
			}
		}
		if (unknown_key && !managed) {
			const struct estate_error *err = estate_error_for_url(e, missing_kid);

			if (!err)
				err = estate_error_for(e, u->id);
			cJSON_AddNullToObject(b, "kekManaged");
			if (err)
				facts_unavailable(un, "binding.kekManaged", "error", "the key bundle of KEK '%s' could not be read: %d %s: %s",
				            missing_kid, err->status, err->code ? err->code : "error",
				            err->message ? err->message : "no message");
			else
				facts_unavailable(un, "binding.kekManaged", "skipped", "the key bundle of KEK '%s' is not in the snapshot",
				            missing_kid);
		} else {
			cJSON_AddBoolToObject(b, "kekManaged", managed);
		}
	}
	restore_facts(e, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(u->facts, "name")), bek, kek, secrets,
	              keys, b, un);
}

static void emit(subject_fn fn, void *arg, enum subject_kind kind, cJSON *f, cJSON *un)
{
	cJSON_AddItemToObject(f, "$unavailable", un);
	fn(kind, f, arg);
	cJSON_Delete(f);
}

/* Unit i < nvms: VM i, then one binding per vault its keys are in. */
static void each_vm(struct facts_ctx *c, const struct vm *vm, subject_fn fn, void *arg)
{
	const struct estate *e = c->e;
	cJSON *vmf = cJSON_CreateObject(), *vmun = cJSON_CreateObject(), *f, *un;

	build_vm_facts(c, vm, vmf, vmun);
	f = cJSON_CreateObject();
	un = cJSON_Duplicate(vmun, true);
	cJSON_AddItemReferenceToObject(f, "vm", vmf);
	attach_tenant(c, f, un, vm_tenant(e, vm));
	emit(fn, arg, SUBJ_VM, f, un);

	if (vm->ade.encrypted) {
		cJSON *seen = cJSON_CreateArray();

		for (size_t k = 0; k < vm->ade.nvolumes; k++) {
			char b1[300], b2[300];
			const char *ids[2] = {bek_ref(&vm->ade.volumes[k], b1, sizeof(b1)),
			                      kek_ref(&vm->ade.volumes[k], b2, sizeof(b2))};

			for (size_t j = 0; j < 2; j++) {
				size_t ux;
				struct vault_use *u;
				cJSON *b;

				if (!ids[j] || arr_has_id(seen, ids[j]) || !idmap_get(&c->use_ix, ids[j], &ux))
					continue;
				cJSON_AddItemToArray(seen, cJSON_CreateString(ids[j]));
				u = &c->uses[ux];
				f = cJSON_CreateObject();
				un = cJSON_Duplicate(vmun, true);
				/* The shared vault and tenant parts are referenced: a reference node writes nothing to them. */
				cJSON_AddItemReferenceToObject(f, "vm", vmf);
				cJSON_AddItemReferenceToObject(f, "vault", u->facts);
				merge_unavail(un, u->unavail);
				b = cJSON_AddObjectToObject(f, "binding");
				binding_facts(vm, u, b, un, e);
				attach_tenant(c, f, un, u->tenant[0] ? u->tenant : NULL);
				emit(fn, arg, SUBJ_BINDING, f, un);
			}
		}
		cJSON_Delete(seen);
	}
	cJSON_Delete(vmf);
	cJSON_Delete(vmun);
}

size_t facts_units(const struct facts_ctx *c)
{
	return c->e->nvms + c->nuses + c->ntenants;
}

/*
 * What a unit costs to build and judge, roughly, in units of a vault
 * subject: a VM's own facts (its backup evidence most) and each binding
 * count several; tenants are a handful.  Only the split uses it (perf of
 * the 50k snapshot: a vault about as much as a VM with two volumes).
 */
static size_t unit_cost(const struct facts_ctx *c, size_t i)
{
	const struct vm *vm;

	if (i >= c->e->nvms + c->nuses)
		return 1;
	if (i >= c->e->nvms)   /* a vault subject: its bindings' facts (~7% of the judging at 50k VMs) */
		return 8;
	vm = &c->e->vms[i];
	return 3 + (vm->ade.encrypted ? 2 * vm->ade.nvolumes : 0);
}

void facts_split(const struct facts_ctx *c, size_t nparts, size_t *bounds)
{
	size_t n = facts_units(c), total = 0, acc = 0, part = 1;

	for (size_t i = 0; i < n; i++)
		total += unit_cost(c, i);
	bounds[0] = 0;
	for (size_t i = 0; i < n && part < nparts; i++) {
		acc += unit_cost(c, i);
		while (part < nparts && acc * nparts >= total * part)
			bounds[part++] = i + 1;
	}
	while (part <= nparts)
		bounds[part++] = n;
}

void facts_each_range(struct facts_ctx *c, size_t from, size_t to, subject_fn fn, void *arg)
{
	const struct estate *e = c->e;
	size_t nv = e->nvms, nu = c->nuses, n = facts_units(c);

	for (size_t i = from; i < to && i < n; i++) {
		if (i < nv) {
			each_vm(c, &e->vms[i], fn, arg);
		} else if (i < nv + nu) {
			struct vault_use *u = c->order[i - nv];
			cJSON *f = cJSON_CreateObject(), *un = cJSON_Duplicate(u->unavail, true);

			cJSON_AddItemReferenceToObject(f, "vault", u->facts);
			attach_tenant(c, f, un, u->tenant[0] ? u->tenant : NULL);
			emit(fn, arg, SUBJ_VAULT, f, un);
		} else {
			struct tenant_facts *tf = &c->tenants[i - nv - nu];
			cJSON *f = cJSON_CreateObject(), *un = cJSON_Duplicate(tf->unavail, true);

			cJSON_AddItemReferenceToObject(f, "tenant", tf->facts);
			emit(fn, arg, SUBJ_TENANT, f, un);
		}
	}
}

void facts_each(struct facts_ctx *c, subject_fn fn, void *arg)
{
	facts_each_range(c, 0, facts_units(c), fn, arg);
}

/* ---- inventory ---- */

static cJSON *inventory_vm(const struct vm *vm)
{
	cJSON *o, *vols, *src;
	char loc[64], name[256];
	bool kek = false;

	if (!vm->ade.encrypted)
		return NULL;
	o = cJSON_CreateObject();
	add_estate_str(o, "id", vm->id);
	if (vm->name || !armid_name(vm->id, name, sizeof(name)))
		add_estate_str(o, "name", vm->name ? vm->name : vm->id);
	else
		add_str(o, "name", name);
	add_estate_str(o, "subscriptionId", vm->sub[0] ? vm->sub : NULL);
	region_norm(vm->location, loc, sizeof(loc));
	add_str(o, "location", vm->location ? loc : NULL);
	add_estate_str(o, "os", vm_os_name(vm->os));
	add_estate_str(o, "adeFlavour", vm->ade.legacy_aad ? "legacy-aad" : "current");
	for (size_t k = 0; k < vm->ade.nvolumes; k++)
		kek = kek || vm->ade.volumes[k].kek_vault || vm->ade.volumes[k].key_url;
	cJSON_AddBoolToObject(o, "kek", kek);
	src = cJSON_AddArrayToObject(o, "sources");
	for (size_t k = 0; k < 4; k++)
		if (vm->ade.sources & (1u << k))
			cJSON_AddItemToArray(src, cJSON_CreateStringReference(SOURCE_NAMES[k]));
	vols = cJSON_AddArrayToObject(o, "volumes");
	for (size_t k = 0; k < vm->ade.nvolumes; k++) {
		const struct ade_volume *v = &vm->ade.volumes[k];
		cJSON *vo = cJSON_CreateObject();

		add_estate_str(vo, "disk", v->disk);
		add_estate_str(vo, "bekVault", v->bek_vault);
		add_estate_str(vo, "secretUrl", v->secret_url);
		add_estate_str(vo, "kekVault", v->kek_vault);
		add_estate_str(vo, "keyUrl", v->key_url);
		cJSON_AddItemToArray(vols, vo);
	}
	return o;
}

cJSON *facts_inventory_next_vm(void *estate, size_t *pos)
{
	const struct estate *e = estate;

	while (*pos < e->nvms) {
		cJSON *row = inventory_vm(&e->vms[(*pos)++]);

		if (row)
			return row;
	}
	return NULL;
}

/* vm_rows false: "vms" stays empty (facts_inventory_vaults). */
static cJSON *inventory(struct facts_ctx *c, bool vm_rows)
{
	const struct estate *e = c->e;
	cJSON *inv = cJSON_CreateObject();
	cJSON *vms = cJSON_AddArrayToObject(inv, "vms"), *vaults = cJSON_AddArrayToObject(inv, "vaults");

	for (size_t i = 0; vm_rows && i < e->nvms; i++) {
		cJSON *o = inventory_vm(&e->vms[i]);

		if (o)
			cJSON_AddItemToArray(vms, o);
	}
	for (size_t i = 0; i < c->nuses; i++) {
		const struct vault_use *u = &c->uses[i];
		const cJSON *f = u->facts, *bp = cJSON_GetObjectItemCaseSensitive(f, "backupPolicy");
		const cJSON *rb = cJSON_GetObjectItemCaseSensitive(f, "backupRbac");
		const struct tenant *t = u->tenant[0] ? estate_tenant(e, u->tenant) : NULL;
		enum user_type ut = u->tenant[0] ? caller_type_in(e, u->tenant) : USER_UNKNOWN;
		cJSON *o = cJSON_CreateObject(), *sp, *perms;
		char loc[64];

		add_str(o, "id", u->id);
		add_str(o, "name", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name")));
		add_str(o, "subscriptionId", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "subscriptionId")));
		region_norm(u->vault ? u->vault->location : NULL, loc, sizeof(loc));
		add_str(o, "location", u->vault && u->vault->location ? loc : NULL);
		add_str(o, "tenantId", u->tenant[0] ? u->tenant : NULL);
		add_str(o, "accessModel", !u->vault ? NULL : u->vault->rbac ? "rbac" : "accessPolicy");
		cJSON_AddBoolToObject(o, "holdsBek", u->bek);
		cJSON_AddBoolToObject(o, "holdsKek", u->kek);
		cJSON_AddNumberToObject(o, "adeVms", cJSON_GetArraySize(u->vms));
		add_str(o, "callerUserType", ut == USER_UNKNOWN ? NULL : user_type_name(ut));
		sp = cJSON_AddObjectToObject(o, "backupSp");
		add_str(sp, "status", sp_status_name(t ? t->backup_sp : SP_UNKNOWN));
		add_str(sp, "objectId", t ? t->backup_sp_object_id : NULL);
		if (u->vault && !u->vault->rbac && bp && cJSON_GetObjectItemCaseSensitive(bp, "secrets")) {
			perms = cJSON_AddObjectToObject(o, "backupPermissions");
			cJSON_AddItemToObject(perms, "secrets",
			                      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(bp, "secrets"), true));
			cJSON_AddItemToObject(perms, "keys",
			                      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(bp, "keys"), true));
		} else {
			cJSON_AddNullToObject(o, "backupPermissions");
		}
		if (u->vault && u->vault->rbac && rb && cJSON_GetObjectItemCaseSensitive(rb, "roles"))
			cJSON_AddItemToObject(o, "backupRoles",
			                      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(rb, "roles"), true));
		else
			cJSON_AddNullToObject(o, "backupRoles");
		cJSON_AddItemToArray(vaults, o);
	}
	return inv;
}

cJSON *facts_inventory(struct facts_ctx *c)
{
	return inventory(c, true);
}

cJSON *facts_inventory_vaults(struct facts_ctx *c)
{
	return inventory(c, false);
}
