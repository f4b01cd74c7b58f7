/* fix.c - see fix.h and docs/fix.md. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/estate/facts.h"
#include "audit/fix/fix.h"
#include "audit/util/armid.h"

static const char *const TEMPLATE[] = {"get", "list", "backup"};
#define NTEMPLATE (sizeof(TEMPLATE) / sizeof(TEMPLATE[0]))

static const char *jstr(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static bool jtrue(const cJSON *o, const char *k)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* ---- pure computations ---- */

bool fix_list_grants(const cJSON *list, const char *perm)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, list)
		if (cJSON_IsString(it) && (kv_streq_ci(it->valuestring, perm) || kv_streq_ci(it->valuestring, "all")))
			return true;
	return false;
}

const cJSON *fix_find_entry(const cJSON *vault, const char *tenant, const char *object_id)
{
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(vault, "properties");
	const cJSON *list, *e;

	list = cJSON_GetObjectItemCaseSensitive(props ? props : vault, "accessPolicies");
	cJSON_ArrayForEach(e, list) {
		const char *app = jstr(e, "applicationId");

		if (kv_streq_ci(jstr(e, "objectId"), object_id) && (!tenant || kv_streq_ci(jstr(e, "tenantId"), tenant)) &&
		    kv_empty(app))
			return e;
	}
	return NULL;
}

static const cJSON *entry_perms(const cJSON *entry, const char *cat)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(entry, "permissions"), cat);
}

cJSON *fix_missing(const cJSON *entry, bool secrets, bool keys)
{
	cJSON *out = cJSON_CreateObject();
	const char *cats[2] = {secrets ? "secrets" : NULL, keys ? "keys" : NULL};

	for (size_t c = 0; c < 2; c++) {
		cJSON *list;

		if (!cats[c])
			continue;
		list = cJSON_CreateArray();
		for (size_t i = 0; i < NTEMPLATE; i++)
			if (!fix_list_grants(entry_perms(entry, cats[c]), TEMPLATE[i]))
				cJSON_AddItemToArray(list, cJSON_CreateString(TEMPLATE[i]));
		if (cJSON_GetArraySize(list) > 0)
			cJSON_AddItemToObject(out, cats[c], list);
		else
			cJSON_Delete(list);
	}
	return out;
}

bool fix_perms_empty(const cJSON *perms)
{
	const cJSON *cat;

	cJSON_ArrayForEach(cat, perms)
		if (cJSON_GetArraySize(cat) > 0)
			return false;
	return true;
}

cJSON *fix_policy_request(const char *tenant, const char *object_id, const cJSON *perms)
{
	cJSON *body = cJSON_CreateObject(), *props = cJSON_AddObjectToObject(body, "properties");
	cJSON *list = cJSON_AddArrayToObject(props, "accessPolicies"), *entry = cJSON_CreateObject();

	cJSON_AddStringToObject(entry, "tenantId", tenant ? tenant : "");
	cJSON_AddStringToObject(entry, "objectId", object_id ? object_id : "");
	cJSON_AddItemToObject(entry, "permissions", cJSON_Duplicate(perms, true));
	cJSON_AddItemToArray(list, entry);
	return body;
}

cJSON *fix_removal(const cJSON *prior, const cJSON *requested, const cJSON *current)
{
	cJSON *out = cJSON_CreateObject();
	const cJSON *cat;

	cJSON_ArrayForEach(cat, requested) {
		const cJSON *name, *have = entry_perms(current, cat->string);
		cJSON *list = cJSON_CreateArray();

		cJSON_ArrayForEach(name, cat) {
			const cJSON *h;

			if (!cJSON_IsString(name) || fix_list_grants(entry_perms(prior, cat->string), name->valuestring))
				continue;
			/* The name exactly as the service stores it now (remove is case-sensitive). */
			cJSON_ArrayForEach(h, have)
				if (cJSON_IsString(h) && kv_streq_ci(h->valuestring, name->valuestring)) {
					cJSON_AddItemToArray(list, cJSON_CreateString(h->valuestring));
					break;
				}
		}
		if (cJSON_GetArraySize(list) > 0)
			cJSON_AddItemToObject(out, cat->string, list);
		else
			cJSON_Delete(list);
	}
	return out;
}

/* ---- the journal ---- */

/*
 * *out: the journal's length up to and including its last newline.  A last
 * line without one was cut short (a crash, or a full disk under an older
 * kvaudit, which left torn appends); it never recorded a write that was
 * sent, since a write is sent only after its intent line is whole and synced.
 */
static bool complete_length(int fd, off_t size, off_t *out)
{
	char buf[4096];

	for (off_t end = size; end > 0;) {
		size_t n = end < (off_t)sizeof(buf) ? (size_t)end : sizeof(buf);

		if (pread(fd, buf, n, end - (off_t)n) != (ssize_t)n)
			return false;
		for (size_t i = n; i > 0; i--)
			if (buf[i - 1] == '\n') {
				*out = end - (off_t)n + (off_t)i;
				return true;
			}
		end -= (off_t)n;
	}
	*out = 0;
	return true;
}

/* 1 + the newlines in the first len bytes of fd: the line number of what follows them. */
static size_t line_at(int fd, off_t len)
{
	char buf[4096];
	size_t line = 1;

	for (off_t at = 0; at < len;) {
		size_t n = len - at < (off_t)sizeof(buf) ? (size_t)(len - at) : sizeof(buf);
		ssize_t got = pread(fd, buf, n, at);

		if (got <= 0)
			break;
		for (ssize_t i = 0; i < got; i++)
			line += buf[i] == '\n';
		at += got;
	}
	return line;
}

bool fix_journal_open(struct fix_journal *j, const char *path, bool create, struct kv_err *err)
{
	struct stat st;
	off_t keep;

	memset(j, 0, sizeof(*j));
	/* Read and write: an incomplete last line is found and cut before the first append. */
	j->fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	if (j->fd < 0) {
		kv_err_set(err, "cannot open the journal '%s': %s", path, strerror(errno));
		j->fd = -1;
		return false;
	}
	/*
	 * One run per journal, before anything is read or cut: two runs would
	 * interleave their lines, cut each other's line being written as
	 * "incomplete", or undo what the other is still doing.  Released when
	 * the descriptor is closed, also by a crash: nothing to clean up.
	 */
	if (flock(j->fd, LOCK_EX | LOCK_NB) != 0) {
		j->busy = errno == EWOULDBLOCK;
		if (j->busy)
			kv_err_set(err, "the journal '%s' is held by another kvaudit (a fix --apply or rollback of it is "
			           "still running): nothing was done; run again when that one has finished", path);
		else
			kv_err_set(err, "cannot lock the journal '%s': %s", path, strerror(errno));
		goto fail;
	}
	/* An existing file keeps its mode only if it is private already. */
	if (fchmod(j->fd, 0600) != 0) {
		kv_err_set(err, "cannot make the journal '%s' private: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(j->fd, &st) != 0 || !complete_length(j->fd, st.st_size, &keep)) {
		kv_err_set(err, "cannot read the journal '%s': %s", path, strerror(errno));
		goto fail;
	}
	/* Else the next entry would be glued to it, and the journal unreadable from that line on. */
	if (keep < st.st_size) {
		if (ftruncate(j->fd, keep) != 0 || fsync(j->fd) != 0) {
			kv_err_set(err, "cannot remove the incomplete last line of the journal '%s': %s", path,
			           strerror(errno));
			goto fail;
		}
		j->cut = (size_t)(st.st_size - keep);
		j->cut_line = line_at(j->fd, keep);
	}
	j->path = kv_strdup(path);
	return true;
fail:
	close(j->fd);
	j->fd = -1;
	return false;
}

/*
 * A failed append (errno e) is cut back to start, so that the journal never
 * holds a torn line; err says whether that worked.
 */
static void append_failed(const struct fix_journal *j, off_t start, const char *what, int e, struct kv_err *err)
{
	if (ftruncate(j->fd, start) == 0) {
		(void)fsync(j->fd);
		kv_err_set(err, "cannot %s the journal '%s': %s", what, j->path, strerror(e));
	} else {
		kv_err_set(err, "cannot %s the journal '%s': %s, and its incomplete last line could not be removed "
		           "(%s): the next kvaudit run to open it removes it", what, j->path, strerror(e), strerror(errno));
	}
}

bool fix_journal_append(struct fix_journal *j, const cJSON *entry, struct kv_err *err)
{
	char *text = cJSON_PrintUnformatted(entry);
	char *line = kv_asprintf("%s\n", text);
	size_t len = strlen(line), off = 0;
	struct stat st;
	bool ok = false;

	/* Where this line starts (O_APPEND writes at the end; one writer per journal). */
	if (fstat(j->fd, &st) != 0) {
		kv_err_set(err, "cannot write the journal '%s': %s", j->path, strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t n = write(j->fd, line + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* A full disk: a short write, then ENOSPC (or EFBIG past RLIMIT_FSIZE). */
			append_failed(j, st.st_size, "write", n < 0 ? errno : ENOSPC, err);
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(j->fd) != 0) {
		/* The entry is reported as not journaled: it must not stay behind either. */
		append_failed(j, st.st_size, "sync", errno, err);
		goto out;
	}
	ok = true;
out:
	free(line);
	free(text);
	return ok;
}

void fix_journal_close(struct fix_journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	free(j->path);
	j->fd = -1;
	j->path = NULL;
}

cJSON *fix_journal_read(const char *path, size_t *torn, struct kv_err *err)
{
	size_t len = 0;
	char *text = kv_read_file(path, 64u << 20, &len, err);
	cJSON *out;
	size_t lineno = 0;

	*torn = 0;
	if (!text)
		return NULL;
	out = cJSON_CreateArray();
	for (size_t off = 0; off < len;) {
		char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		cJSON *e;

		lineno++;
		if (!nl) {
			*torn = lineno; /* a line cut short by an interrupted run or a full disk */
			break;
		}
		if (n == 0) {
			off++;
			continue;
		}
		e = cJSON_ParseWithLength(text + off, n);
		if (!cJSON_IsObject(e)) {
			kv_err_set(err, "%s: line %zu is not a journal entry (a JSON object): the journal is damaged; "
			           "see docs/fix.md (\"A damaged journal\")", path, lineno);
			cJSON_Delete(e);
			cJSON_Delete(out);
			free(text);
			return NULL;
		}
		cJSON_AddItemToArray(out, e);
		off += n + 1;
	}
	free(text);
	return out;
}

/* ---- planning ---- */

static bool in_list(const char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (kv_streq_ci(v[i], s))
			return true;
	return false;
}

static const cJSON *inventory_vault(const cJSON *report, const char *id)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(report, "inventory"),
	                                                     "vaults"))
		if (kv_streq_ci(jstr(v, "id"), id))
			return v;
	return NULL;
}

static cJSON *plan_item_for(cJSON *plan, const char *id)
{
	cJSON *it;

	cJSON_ArrayForEach(it, plan)
		if (kv_streq_ci(jstr(it, "vault"), id))
			return it;
	return NULL;
}

static bool vault_selected(const struct fix_plan_opts *o, const struct vault *v)
{
	if (o->nvaults && !in_list(o->vaults, o->nvaults, v->name) && !in_list(o->vaults, o->nvaults, v->id))
		return false;
	if (o->nsubscriptions && !in_list(o->subscriptions, o->nsubscriptions, v->sub))
		return false;
	return true;
}

static cJSON *new_item(const cJSON *report, const struct estate *e, const struct vault *v, const char *role)
{
	cJSON *it = cJSON_CreateObject();
	const cJSON *inv = inventory_vault(report, v->id);
	const struct subscription *s = estate_subscription(e, v->sub);
	const char *oid = jstr(cJSON_GetObjectItemCaseSensitive(inv, "backupSp"), "objectId");
	const char *bms = jstr(cJSON_GetObjectItemCaseSensitive(inv, "backupSp"), "status");
	size_t others = 0;

	cJSON_AddStringToObject(it, "vault", v->id);
	cJSON_AddStringToObject(it, "name", v->name);
	cJSON_AddStringToObject(it, "subscriptionId", v->sub);
	cJSON_AddStringToObject(it, "armTenant", s && s->tenant_id ? s->tenant_id : v->tenant_id ? v->tenant_id : "");
	cJSON_AddStringToObject(it, "tenantId", v->tenant_id ? v->tenant_id : "");
	cJSON_AddStringToObject(it, "accessModel", v->rbac ? "rbac" : "accessPolicy");
	cJSON_AddStringToObject(it, "kind", "none");
	if (oid)
		cJSON_AddStringToObject(it, "principal", oid);
	else
		cJSON_AddNullToObject(it, "principal");
	cJSON_AddBoolToObject(it, "secrets", false);
	cJSON_AddBoolToObject(it, "keys", false);
	cJSON_AddBoolToObject(it, "holdsBek", jtrue(inv, "holdsBek"));
	cJSON_AddBoolToObject(it, "holdsKek", jtrue(inv, "holdsKek"));
	cJSON_AddStringToObject(it, "roleDefinition", role);
	cJSON_AddNullToObject(it, "change");
	cJSON_AddArrayToObject(it, "resolves");
	if (jstr(inv, "callerUserType"))
		cJSON_AddStringToObject(it, "callerUserType", jstr(inv, "callerUserType"));
	else
		cJSON_AddNullToObject(it, "callerUserType");
	cJSON_AddNullToObject(it, "settings");
	if (!oid)
		cJSON_AddItemToObject(it, "skip", cJSON_CreateString(kv_streq_ci(bms, "absent") ?
			"backup management service does not exist in the vault's tenant (KVA-BKP-005): it has to be "
			"created there first" :
			"backup management service's object ID in the vault's tenant is unknown "
			"(pass --backup-sp-object-id TENANT=OID)"));
	else
		cJSON_AddNullToObject(it, "skip");
	for (size_t i = 0; i < v->npolicies; i++)
		if (!oid || !kv_streq_ci(v->policies[i].object_id, oid) || !kv_empty(v->policies[i].application_id))
			others++;
	cJSON_AddNumberToObject(it, "otherPrincipals", (double)others);
	return it;
}

static const char *fix_kind_of(const cJSON *f)
{
	return jstr(cJSON_GetObjectItemCaseSensitive(f, "remediation"), "fix");
}

static bool fixable_kind(const char *kind)
{
	return kind && (strcmp(kind, "grant-backup-access") == 0 || strcmp(kind, "assign-backup-role") == 0 ||
	                strcmp(kind, "vault-settings") == 0);
}

/* True when a finding of rule on this plan item is suppressed (an accepted risk: no change for it). */
static bool item_suppressed(const cJSON *it, const char *rule)
{
	const cJSON *x;

	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(it, "suppressed"))
		if (kv_streq_ci(jstr(x, "rule"), rule))
			return true;
	return false;
}

static cJSON *finding_ref(const cJSON *f)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddStringToObject(r, "rule", jstr(f, "rule"));
	cJSON_AddItemToObject(r, "vm", jstr(f, "vm") ? cJSON_CreateString(jstr(f, "vm")) : cJSON_CreateNull());
	cJSON_AddItemToObject(r, "vmName", jstr(f, "vmName") ? cJSON_CreateString(jstr(f, "vmName")) :
	                                                         cJSON_CreateNull());
	return r;
}

/*
 * Suppressed findings (status "suppressed", an accepted risk) plan no change:
 * they are listed on their vault's item, with the suppression's reason and
 * owner, before the failing findings are planned so that those can leave
 * the suppressed rule's permissions out.
 */
static void plan_suppressed(cJSON *plan, const cJSON *report, const struct estate *e, const struct fix_plan_opts *o,
                            const char *role)
{
	const cJSON *f;

	cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(report, "findings")) {
		const char *rule = jstr(f, "rule"), *vid = jstr(f, "vault");
		const cJSON *sup = cJSON_GetObjectItemCaseSensitive(f, "suppression");
		const struct vault *v;
		cJSON *it, *list, *r;

		if (!kv_streq_ci(jstr(f, "status"), "suppressed") || !fixable_kind(fix_kind_of(f)) || !vid)
			continue;
		if (o->nrules && !in_list(o->rules, o->nrules, rule))
			continue;
		if (!(v = estate_vault(e, vid)) || !vault_selected(o, v))
			continue;
		if (!(it = plan_item_for(plan, v->id))) {
			it = new_item(report, e, v, role);
			cJSON_AddItemToArray(plan, it);
		}
		if (!(list = cJSON_GetObjectItemCaseSensitive(it, "suppressed")))
			list = cJSON_AddArrayToObject(it, "suppressed");
		r = finding_ref(f);
		cJSON_AddItemToObject(r, "reason", jstr(sup, "reason") ? cJSON_CreateString(jstr(sup, "reason")) :
		                                                         cJSON_CreateNull());
		cJSON_AddItemToObject(r, "owner", jstr(sup, "owner") ? cJSON_CreateString(jstr(sup, "owner")) :
		                                                       cJSON_CreateNull());
		cJSON_AddItemToObject(r, "expires", jstr(sup, "expires") ? cJSON_CreateString(jstr(sup, "expires")) :
		                                                           cJSON_CreateNull());
		cJSON_AddItemToArray(list, r);
	}
}

cJSON *fix_plan(const cJSON *report, const struct estate *e, const struct fix_plan_opts *o)
{
	cJSON *plan = cJSON_CreateArray();
	const cJSON *f;
	char *role;

	if (!o->rbac_role)
		role = kv_strdup(FIX_ROLE_KV_ADMINISTRATOR);
	else
		role = kv_strdup(o->rbac_role);
	plan_suppressed(plan, report, e, o, role);
	cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(report, "findings")) {
		const char *rule = jstr(f, "rule"), *kind = fix_kind_of(f), *vid = jstr(f, "vault");
		const struct vault *v;
		cJSON *it, *r;

		if (!kv_streq_ci(jstr(f, "status"), "fail") || !kind || !vid)
			continue;
		if (o->nrules && !in_list(o->rules, o->nrules, rule))
			continue;
		if (!(v = estate_vault(e, vid)) || !vault_selected(o, v))
			continue;
		if (strcmp(kind, "vault-settings") == 0 && !o->include_vault_settings) {
			it = plan_item_for(plan, v->id);
			if (it) {
				cJSON *u = cJSON_GetObjectItemCaseSensitive(it, "settingsNotTouched");
				if (!u)
					u = cJSON_AddArrayToObject(it, "settingsNotTouched");
				cJSON_AddItemToArray(u, cJSON_CreateString(rule));
			}
			continue;
		}
		if (!fixable_kind(kind))
			continue;
		if (!(it = plan_item_for(plan, v->id))) {
			it = new_item(report, e, v, role);
			cJSON_AddItemToArray(plan, it);
		}
		if (strcmp(kind, "grant-backup-access") == 0 && !v->rbac) {
			cJSON_ReplaceItemInObjectCaseSensitive(it, "kind", cJSON_CreateString("access-policy"));
			/*
			 * The template per what the vault holds, limited to the rules asked
			 * for; a category whose rule is suppressed on this vault only when
			 * another, unsuppressed finding of that rule fails here.
			 */
			if (kv_streq_ci(rule, "KVA-BKP-001") ||
			    (jtrue(it, "holdsBek") && !item_suppressed(it, "KVA-BKP-001")))
				if (!o->nrules || in_list(o->rules, o->nrules, "KVA-BKP-001"))
					cJSON_ReplaceItemInObjectCaseSensitive(it, "secrets", cJSON_CreateTrue());
			if (kv_streq_ci(rule, "KVA-BKP-002") ||
			    (jtrue(it, "holdsKek") && !item_suppressed(it, "KVA-BKP-002")))
				if (!o->nrules || in_list(o->rules, o->nrules, "KVA-BKP-002"))
					cJSON_ReplaceItemInObjectCaseSensitive(it, "keys", cJSON_CreateTrue());
		} else if (strcmp(kind, "assign-backup-role") == 0 && v->rbac) {
			cJSON_ReplaceItemInObjectCaseSensitive(it, "kind", cJSON_CreateString("role-assignment"));
		} else if (strcmp(kind, "vault-settings") == 0) {
			cJSON *set = cJSON_GetObjectItemCaseSensitive(it, "settings");

			if (!cJSON_IsObject(set)) {
				set = cJSON_CreateObject();
				cJSON_ReplaceItemInObjectCaseSensitive(it, "settings", set);
			}
			/* From the vault as the snapshot has it (KVA-VLT-001: disk encryption; 002: soft delete, purge). */
			if (kv_streq_ci(rule, "KVA-VLT-001") && !v->enabled_for_disk_encryption &&
			    !cJSON_GetObjectItemCaseSensitive(set, "enabledForDiskEncryption"))
				cJSON_AddTrueToObject(set, "enabledForDiskEncryption");
			if (kv_streq_ci(rule, "KVA-VLT-002") && !v->soft_delete &&
			    !cJSON_GetObjectItemCaseSensitive(set, "enableSoftDelete"))
				cJSON_AddTrueToObject(set, "enableSoftDelete");
			if (kv_streq_ci(rule, "KVA-VLT-002") && !v->purge_protection &&
			    !cJSON_GetObjectItemCaseSensitive(set, "enablePurgeProtection"))
				cJSON_AddTrueToObject(set, "enablePurgeProtection");
		}
		r = finding_ref(f);
		cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(it, "resolves"), r);
	}
	/* The change each item will make, as the snapshot sees it (apply recomputes it live). */
	{
		cJSON *it;

		cJSON_ArrayForEach(it, plan) {
			const char *kind = jstr(it, "kind"), *oid = jstr(it, "principal");
			cJSON *c = NULL;

			if (strcmp(kind, "access-policy") == 0 && oid) {
				const struct vault *v = estate_vault(e, jstr(it, "vault"));
				const cJSON *entry = NULL;
				cJSON *perms;

				for (size_t i = 0; v && i < v->npolicies; i++)
					if (kv_streq_ci(v->policies[i].object_id, oid) && kv_empty(v->policies[i].application_id) &&
					    kv_streq_ci(v->policies[i].tenant_id, jstr(it, "tenantId"))) {
						cJSON *tmp = cJSON_CreateObject(), *pp = cJSON_AddObjectToObject(tmp, "permissions");

						if (v->policies[i].secrets)
							cJSON_AddItemToObject(pp, "secrets", cJSON_Duplicate(v->policies[i].secrets, true));
						if (v->policies[i].keys)
							cJSON_AddItemToObject(pp, "keys", cJSON_Duplicate(v->policies[i].keys, true));
						entry = tmp;
						break;
					}
				perms = fix_missing(entry, jtrue(it, "secrets"), jtrue(it, "keys"));
				cJSON_Delete((cJSON *)(uintptr_t)entry);
				c = cJSON_CreateObject();
				cJSON_AddStringToObject(c, "operation", "PUT accessPolicies/add");
				cJSON_AddItemToObject(c, "accessPolicy", cJSON_CreateObject());
				cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(c, "accessPolicy"), "tenantId",
				                        jstr(it, "tenantId"));
				cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(c, "accessPolicy"), "objectId", oid);
				cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(c, "accessPolicy"), "permissions", perms);
			} else if (strcmp(kind, "role-assignment") == 0 && oid) {
				c = cJSON_CreateObject();
				cJSON_AddStringToObject(c, "operation", "PUT roleAssignments/{new GUID}");
				cJSON_AddStringToObject(c, "scope", jstr(it, "vault"));
				cJSON_AddStringToObject(c, "roleDefinitionId", jstr(it, "roleDefinition"));
				cJSON_AddStringToObject(c, "principalId", oid);
				cJSON_AddStringToObject(c, "principalType", "ServicePrincipal");
			}
			if (c)
				cJSON_ReplaceItemInObjectCaseSensitive(it, "change", c);
		}
	}
	free(role);
	return plan;
}

bool fix_setting_reversible(const char *name)
{
	return kv_streq_ci(name, "enabledForDiskEncryption");
}

bool fix_item_has_settings(const cJSON *item)
{
	const cJSON *set = cJSON_GetObjectItemCaseSensitive(item, "settings");

	return cJSON_IsObject(set) && cJSON_GetArraySize(set) > 0;
}

bool fix_item_actionable(const cJSON *item)
{
	const char *kind = jstr(item, "kind");

	if (fix_item_has_settings(item))
		return true;
	return !jstr(item, "skip") && kind && strcmp(kind, "none") != 0;
}

static void print_list(FILE *f, const cJSON *list)
{
	const cJSON *x;
	bool first = true;

	cJSON_ArrayForEach(x, list) {
		fprintf(f, "%s%s", first ? "" : ", ", cJSON_IsString(x) ? x->valuestring : "?");
		first = false;
	}
}

void fix_plan_print(const cJSON *plan, FILE *f)
{
	const cJSON *it;

	if (cJSON_GetArraySize(plan) == 0) {
		fprintf(f, "nothing to fix: no failing finding has an automatic fix in this scope\n");
		return;
	}
	cJSON_ArrayForEach(it, plan) {
		const char *kind = jstr(it, "kind");
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "change"), *r, *set;

		fprintf(f, "vault %s (%s access, tenant %s)\n  %s\n", jstr(it, "name"),
		        kv_streq_ci(jstr(it, "accessModel"), "rbac") ? "rbac" : "access-policy", jstr(it, "tenantId"),
		        jstr(it, "vault"));
		if (jstr(it, "skip")) {
			fprintf(f, "  skip: %s\n", jstr(it, "skip"));
		} else if (strcmp(kind, "access-policy") == 0) {
			const cJSON *perms = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "accessPolicy"),
			                                                      "permissions");
			fprintf(f, "  change: PUT accessPolicies/add for backup management service (object ID %s, tenant %s):",
			        jstr(it, "principal"), jstr(it, "tenantId"));
			if (fix_perms_empty(perms))
				fprintf(f, " nothing missing in the snapshot (re-checked live at apply)");
			for (const cJSON *cat = perms ? perms->child : NULL; cat; cat = cat->next) {
				fprintf(f, "%s %s ", cat == perms->child ? "" : ";", cat->string);
				print_list(f, cat);
			}
			fprintf(f, "\n");
		} else if (strcmp(kind, "role-assignment") == 0) {
			const char *rd = jstr(c, "roleDefinitionId");

			fprintf(f, "  change: PUT role assignment (new GUID name) of %s%s%s to backup management service "
			        "(object ID %s) at the vault's scope\n",
			        kv_endswith_ci(rd, FIX_ROLE_KV_ADMINISTRATOR) ? "key vault administrator (" : "", rd,
			        kv_endswith_ci(rd, FIX_ROLE_KV_ADMINISTRATOR) ? ")" : "", jstr(it, "principal"));
		}
		set = cJSON_GetObjectItemCaseSensitive(it, "settings");
		if (fix_item_has_settings(it)) {
			const cJSON *p;
			bool irreversible = false;

			fprintf(f, "  vault settings: PATCH the vault (Vaults_Update) with only:");
			cJSON_ArrayForEach(p, set) {
				fprintf(f, " %s=true%s", p->string, fix_setting_reversible(p->string) ? "" : " (IRREVERSIBLE)");
				irreversible |= !fix_setting_reversible(p->string);
			}
			fprintf(f, "\n");
			if (irreversible)
				fprintf(f, "  irreversible: once on, Azure never lets soft delete or purge protection be turned off "
				        "again; rollback cannot undo them (only enabledForDiskEncryption is reverted)\n");
		}
		if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(it, "resolves")) > 0) {
			fprintf(f, "  resolves:");
			cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(it, "resolves"))
				fprintf(f, " %s%s%s%s", jstr(r, "rule"), jstr(r, "vmName") ? " (vm " : "",
				        jstr(r, "vmName") ? jstr(r, "vmName") : "", jstr(r, "vmName") ? ")" : "");
			fprintf(f, "\n");
		}
		cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(it, "suppressed"))
			fprintf(f, "  suppressed: %s%s%s%s, no change planned for it (%s; owner %s; expires %s)\n",
			        jstr(r, "rule"), jstr(r, "vmName") ? " (vm " : "", jstr(r, "vmName") ? jstr(r, "vmName") : "",
			        jstr(r, "vmName") ? ")" : "", jstr(r, "reason") ? jstr(r, "reason") : "no reason",
			        jstr(r, "owner") ? jstr(r, "owner") : "?", jstr(r, "expires") ? jstr(r, "expires") : "never");
		if (kv_streq_ci(jstr(it, "callerUserType"), "Guest") && strcmp(kind, "none") != 0 && !jstr(it, "skip"))
			fprintf(f, "  note: you are a guest in this vault's tenant, so backup will not add this grant by "
			        "itself; writing it needs %s on the vault%s (checked before writing; a vault you may not "
			        "write is reported for that vault only)\n",
			        strcmp(kind, "role-assignment") == 0 ? "Microsoft.Authorization/roleAssignments/write" :
			        "Microsoft.KeyVault/vaults/accessPolicies/write",
			        fix_item_has_settings(it) ? ", and Microsoft.KeyVault/vaults/write for the settings" : "");
		if (strcmp(kind, "role-assignment") == 0)
			fprintf(f, "  will not touch: other role assignments, the vault's access policies and other settings%s\n",
			        cJSON_GetObjectItemCaseSensitive(it, "settingsNotTouched") ?
			        " (vault-settings findings need --include-vault-settings)" : "");
		else if (strcmp(kind, "none") == 0 && !fix_item_actionable(it) && !jstr(it, "skip"))
			fprintf(f, "  no change: every fixable finding on this vault is suppressed\n");
		else if (strcmp(kind, "none") == 0)
			fprintf(f, "  will not touch: any access policy or role assignment\n");
		else
			fprintf(f, "  will not touch: the %d other access-policy entr%s, the vault's other settings%s\n",
			        (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "otherPrincipals")),
			        (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "otherPrincipals")) == 1 ?
			        "y" : "ies",
			        cJSON_GetObjectItemCaseSensitive(it, "settingsNotTouched") ?
			        " (vault-settings findings need --include-vault-settings)" : "");
	}
}

/* ---- applying ---- */

static void logf_(struct fix_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct fix_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->log)
		return;
	va_start(ap, fmt);
	vfprintf(c->log, fmt, ap);
	va_end(ap);
	fputc('\n', c->log);
}

static void note_failure(struct fix_ctx *c, enum http_outcome o, const struct az_failure *f)
{
	if (o == HTTP_UNAUTHORIZED && f && strcmp(f->code, "TokenUnavailable") == 0)
		c->auth_failed = true;
}

static void set_error(cJSON *res, const char *status, const char *msg)
{
	cJSON_ReplaceItemInObjectCaseSensitive(res, "status", cJSON_CreateString(status));
	cJSON_ReplaceItemInObjectCaseSensitive(res, "error", msg ? cJSON_CreateString(msg) : cJSON_CreateNull());
}

static char *arm_url(const struct fix_ctx *c, const char *id, const char *api, const char *extra)
{
	return kv_asprintf("%s%s?api-version=%s%s%s", c->az->cloud->arm, id, api, extra ? "&" : "", extra ? extra : "");
}

static bool new_guid(char *out, size_t n)
{
	unsigned char b[16];
	FILE *f = fopen("/dev/urandom", "rb");
	bool ok = f && fread(b, 1, sizeof(b), f) == sizeof(b);

	if (f)
		fclose(f);
	if (!ok)
		return false;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, n, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
	         b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
	return true;
}

static cJSON *journal_entry(struct fix_ctx *c, const char *type, const char *phase, const cJSON *item)
{
	cJSON *e = cJSON_CreateObject();
	char stamp[32];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	cJSON_AddStringToObject(e, "run", c->run ? c->run : "");
	cJSON_AddStringToObject(e, "time", stamp);
	cJSON_AddStringToObject(e, "type", type);
	cJSON_AddStringToObject(e, "phase", phase);
	cJSON_AddStringToObject(e, "vault", jstr(item, "vault"));
	cJSON_AddStringToObject(e, "armTenant", jstr(item, "armTenant") ? jstr(item, "armTenant") : "");
	cJSON_AddStringToObject(e, "tenantId", jstr(item, "tenantId") ? jstr(item, "tenantId") : "");
	cJSON_AddStringToObject(e, "principal", jstr(item, "principal") ? jstr(item, "principal") : "");
	return e;
}

static const char *tenant_of(const cJSON *item)
{
	const char *t = jstr(item, "armTenant");

	return kv_empty(t) ? NULL : t;
}

/* GETs the vault; on failure sets the result's error and returns NULL. */
static cJSON *read_vault(struct fix_ctx *c, const cJSON *item, cJSON *res)
{
	char *url = arm_url(c, jstr(item, "vault"), FIX_API_KEYVAULT, NULL);
	struct az_failure f;
	struct kv_err err = {{0}};
	cJSON *v = NULL;
	enum http_outcome o = az_get_json(c->az, url, tenant_of(item), &v, &f, &err);

	free(url);
	if (o != HTTP_OK) {
		char *m = kv_asprintf("vault %s: cannot read it: %s", jstr(item, "name"), err.msg);

		note_failure(c, o, &f);
		set_error(res, "failed", m);
		free(m);
		return NULL;
	}
	return v;
}

static cJSON *dup_or_null(const cJSON *x)
{
	return x ? cJSON_Duplicate(x, true) : cJSON_CreateNull();
}

/*
 * One journaled write to a vault (docs/fix.md, "The journal"): a grant, a
 * settings PATCH, and their undos.  The intent is appended and fsync'd
 * first and nothing is sent when it cannot be; then the write, a fresh read
 * of the vault, the check that the write shows there, and the result entry.
 * What differs between the four is in the struct.
 */
struct step {
	struct fix_ctx *c;
	const cJSON *item;      /* vault, name, armTenant, tenantId, principal */
	cJSON *res;             /* gets status, error, after; and verified when fix */
	cJSON *intent;          /* the intent entry, consumed */
	const char *type;       /* the result entry's type */
	bool fix;               /* a fix's write: the result entry and res carry "verified" */
	enum http_outcome (*send)(struct az_client *az, const char *url, const char *tenant, const cJSON *body,
	                          cJSON **out, struct az_failure *fail, struct kv_err *err);
	const char *path;       /* after the vault ID in the URL ("/accessPolicies/add"), or NULL */
	const cJSON *body;
	const cJSON *want;      /* what check compares the re-read vault with */
	const char *refused;    /* "<refused>: <error>" when the intent cannot be journaled */
	const char *write;      /* "<write> failed: <error>" when the write is refused */
	const char *done;       /* status when the re-read shows the write (applied, rolled-back) */
	const char *done_line;  /* its progress line */
	const char *not_seen;   /* the error when it does not */
	/* The journaled response; NULL: none is journaled. */
	cJSON *(*response)(const struct step *s, const cJSON *resp);
	/* Whether the re-read vault shows the write; *after is what the result records. */
	bool (*check)(const struct step *s, const cJSON *vault, cJSON **after);
};

/* A write Azure refused: res failed with m, and the result entry je says so (not yet appended). */
static void write_refused(struct fix_ctx *c, enum http_outcome o, const struct az_failure *f, const char *m,
                          cJSON *res, cJSON *je)
{
	note_failure(c, o, f);
	set_error(res, "failed", m);
	cJSON_AddFalseToObject(je, "ok");
	cJSON_AddStringToObject(je, "error", m);
}

static void write_verify_journal(struct step *s)
{
	const char *name = jstr(s->item, "name");
	cJSON *resp = NULL, *vault = NULL, *after = NULL, *je = NULL;
	struct az_failure f;
	struct kv_err err = {{0}};
	enum http_outcome o;
	char *url = NULL, *m = NULL;
	bool checked = false, ok = false;

	if (!fix_journal_append(s->c->journal, s->intent, &err)) {
		m = kv_asprintf("vault %s: %s: %s", name, s->refused, err.msg);
		set_error(s->res, "failed", m);
		goto out;
	}
	url = kv_asprintf("%s%s%s?api-version=%s", s->c->az->cloud->arm, jstr(s->item, "vault"), s->path ? s->path : "",
	                  FIX_API_KEYVAULT);
	o = s->send(s->c->az, url, tenant_of(s->item), s->body, &resp, &f, &err);
	je = journal_entry(s->c, s->type, "result", s->item);
	if (o != HTTP_OK) {
		m = kv_asprintf("vault %s: %s failed: %s", name, s->write, err.msg);
		write_refused(s->c, o, &f, m, s->res, je);
		goto journal;
	}
	if (s->response)
		cJSON_AddItemToObject(je, "response", s->response(s, resp));
	if (!(vault = read_vault(s->c, s->item, s->res))) {
		cJSON_AddFalseToObject(je, "ok");
		if (s->fix) {
			cJSON_AddNullToObject(je, "after");
			cJSON_AddFalseToObject(je, "verified");
		}
		goto journal;
	}
	checked = true;
	ok = s->check(s, vault, &after);
	cJSON_AddBoolToObject(je, "ok", ok);
	cJSON_AddItemToObject(je, "after", cJSON_Duplicate(after, true));
	if (s->fix)
		cJSON_AddBoolToObject(je, "verified", ok);
journal:
	if (!fix_journal_append(s->c->journal, je, &err))
		logf_(s->c, "kvaudit: vault %s: %s", name, err.msg);
	if (!checked)
		goto out;
	cJSON_ReplaceItemInObjectCaseSensitive(s->res, "after", after);
	after = NULL;
	if (s->fix)
		cJSON_ReplaceItemInObjectCaseSensitive(s->res, "verified", cJSON_CreateBool(ok));
	if (ok) {
		set_error(s->res, s->done, NULL);
		logf_(s->c, "kvaudit: vault %s: %s", name, s->done_line);
	} else {
		m = kv_asprintf("vault %s: %s", name, s->not_seen);
		set_error(s->res, "failed", m);
	}
out:
	free(m);
	free(url);
	cJSON_Delete(after);
	cJSON_Delete(je);
	cJSON_Delete(vault);
	cJSON_Delete(resp);
	cJSON_Delete(s->intent);
	s->intent = NULL;
}

/*
 * Whether the caller may perform action on the vault, from ARM's
 * Permissions_ListForResource (every entry's actions minus its notActions,
 * wildcards as in role definitions; facts_actions_cover).  Checked right
 * before a write, so that a vault the caller cannot change is reported with
 * the missing action instead of a bare 403, and nothing is journaled for it.
 * On false res is failed with one line naming the action.
 */
static bool may_write(struct fix_ctx *c, const cJSON *item, const char *action, cJSON *res)
{
	const char *name = jstr(item, "name");
	char *url = kv_asprintf("%s%s/providers/Microsoft.Authorization/permissions?api-version=%s", c->az->cloud->arm,
	                        jstr(item, "vault"), FIX_API_AUTHORIZATION);
	cJSON *perms = cJSON_CreateArray();
	const cJSON *p;
	struct az_failure f;
	struct kv_err err = {{0}};
	enum http_outcome o = az_list(c->az, url, tenant_of(item), perms, &f, &err);
	bool ok = false;
	char *m = NULL;

	if (o != HTTP_OK) {
		note_failure(c, o, &f);
		m = kv_asprintf("vault %s: not changed: cannot read the caller's permissions on it: %s", name, err.msg);
		goto out;
	}
	cJSON_ArrayForEach(p, perms)
		if (facts_actions_cover(cJSON_GetObjectItemCaseSensitive(p, "actions"),
		                        cJSON_GetObjectItemCaseSensitive(p, "notActions"), action))
			ok = true;
	if (!ok)
		m = kv_asprintf("vault %s: not changed: the caller may not perform %s on it (not in its permissions on "
		                "the vault)%s",
		                name, action, kv_streq_ci(jstr(item, "callerUserType"), "Guest") ?
		                "; the caller is a guest in the vault's tenant: an owner there must grant it, "
		                "or make the grant themselves (backup will not add it for a guest)" :
		                "; ask for a role that includes it at the vault's scope");
out:
	if (m) {
		set_error(res, "failed", m);
		logf_(c, "kvaudit: %s", m);
	}
	free(m);
	free(url);
	cJSON_Delete(perms);
	return ok;
}

static cJSON *grant_response(const struct step *s, const cJSON *resp)
{
	(void)s;
	return dup_or_null(resp);
}

/* Every template permission the item asks for is there. */
static bool grant_check(const struct step *s, const cJSON *vault, cJSON **after)
{
	const cJSON *entry = fix_find_entry(vault, jstr(s->item, "tenantId"), jstr(s->item, "principal"));
	cJSON *still = fix_missing(entry, jtrue(s->item, "secrets"), jtrue(s->item, "keys"));
	bool ok = fix_perms_empty(still);

	cJSON_Delete(still);
	*after = dup_or_null(entry);
	return ok;
}

static cJSON *apply_policy(struct fix_ctx *c, const cJSON *item, cJSON *res)
{
	const char *name = jstr(item, "name"), *tenant = jstr(item, "tenantId"), *oid = jstr(item, "principal");
	cJSON *vault = NULL, *perms = NULL, *body = NULL;
	const cJSON *entry;

	if (!(vault = read_vault(c, item, res)))
		goto out;
	if (jtrue(cJSON_GetObjectItemCaseSensitive(vault, "properties"), "enableRbacAuthorization")) {
		char *m = kv_asprintf("vault %s now uses rbac authorization: plan again", name);

		set_error(res, "skipped", m);
		free(m);
		goto out;
	}
	entry = fix_find_entry(vault, tenant, oid);
	cJSON_ReplaceItemInObjectCaseSensitive(res, "before", dup_or_null(entry));
	perms = fix_missing(entry, jtrue(item, "secrets"), jtrue(item, "keys"));
	if (fix_perms_empty(perms)) {
		cJSON_ReplaceItemInObjectCaseSensitive(res, "after", dup_or_null(entry));
		cJSON_ReplaceItemInObjectCaseSensitive(res, "verified", cJSON_CreateTrue());
		set_error(res, "already-compliant", NULL);
		logf_(c, "kvaudit: vault %s: already compliant", name);
		goto out;
	}
	body = fix_policy_request(tenant, oid, perms);
	cJSON_ReplaceItemInObjectCaseSensitive(res, "change", cJSON_Duplicate(body, true));
	if (!may_write(c, item, "Microsoft.KeyVault/vaults/accessPolicies/write", res))
		goto out;
	/* The journal first: what was there, and what is about to be sent. */
	{
		struct step s = {
			.c = c, .item = item, .res = res, .intent = journal_entry(c, "grant", "intent", item),
			.type = "grant", .fix = true, .send = az_put_json, .path = "/accessPolicies/add", .body = body,
			.refused = "not changed", .write = "the access-policy add", .done = "applied",
			.done_line = "applied and verified",
			.not_seen = "the add was accepted but the permissions are not there on re-reading",
			.response = grant_response, .check = grant_check,
		};

		cJSON_AddItemToObject(s.intent, "prior", dup_or_null(entry));
		cJSON_AddStringToObject(s.intent, "operation", "add");
		cJSON_AddItemToObject(s.intent, "request", cJSON_Duplicate(body, true));
		write_verify_journal(&s);
	}
out:
	cJSON_Delete(body);
	cJSON_Delete(perms);
	cJSON_Delete(vault);
	return res;
}

static char *role_definition_id(const cJSON *item)
{
	const char *role = jstr(item, "roleDefinition");

	if (role && role[0] == '/')
		return kv_strdup(role);
	return kv_asprintf("/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s",
	                   jstr(item, "subscriptionId"), role ? role : FIX_ROLE_KV_ADMINISTRATOR);
}

static bool role_matches(const cJSON *ra, const char *oid, const char *role_id)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(ra, "properties");
	const char *rd = jstr(p, "roleDefinitionId"), *slash = strrchr(role_id, '/');
	const char *guid = slash ? slash + 1 : role_id;
	size_t n = rd ? strlen(rd) : 0, g = strlen(guid);

	return kv_streq_ci(jstr(p, "principalId"), oid) && rd && n >= g && kv_streq_ci(rd + n - g, guid);
}

/* Merges a role definition's permissions[] data actions into allow / deny (AZURE-FACTS c3). */
static void role_data_actions(const cJSON *def, cJSON *allow, cJSON *deny)
{
	const cJSON *p, *a;

	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(def, "properties"),
	                                                       "permissions")) {
		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(p, "dataActions"))
			if (cJSON_IsString(a))
				cJSON_AddItemToArray(allow, cJSON_CreateString(a->valuestring));
		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(p, "notDataActions"))
			if (cJSON_IsString(a))
				cJSON_AddItemToArray(deny, cJSON_CreateString(a->valuestring));
	}
}

/*
 * Backup Management Service's role assignments at the vault or above
 * (found: the atScope() list) when they already give Backup what it needs:
 * the planned role, or any roles whose data actions together cover the
 * secrets (and, where the vault holds a KEK, the keys), judged by the same
 * coverage the audit uses (facts_rbac_cover_add).  A custom role's
 * definition is read live.  NULL when they do not cover it.
 */
static cJSON *bms_covering_roles(struct fix_ctx *c, const cJSON *item, const cJSON *found, const char *planned)
{
	const char *oid = jstr(item, "principal");
	struct facts_rbac_cover cv = {{false}, {false}};
	cJSON *mine = cJSON_CreateArray();
	const cJSON *ra;
	bool planned_there = false;

	cJSON_ArrayForEach(ra, found) {
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(ra, "properties");
		const char *rd = jstr(p, "roleDefinitionId");

		if (!kv_streq_ci(jstr(p, "principalId"), oid) || !rd)
			continue;
		cJSON_AddItemToArray(mine, cJSON_Duplicate(ra, true));
		if (role_matches(ra, oid, planned))
			planned_there = true;
		if (facts_rbac_cover_add(&cv, rd, NULL, NULL))
			continue;
		if (armid_valid_for_url(rd)) {
			char *url = arm_url(c, rd, FIX_API_AUTHORIZATION, NULL);
			cJSON *def = NULL, *allow = cJSON_CreateArray(), *deny = cJSON_CreateArray();
			struct az_failure f;
			struct kv_err err = {{0}};

			/* A definition that cannot be read covers nothing: the grant is then made. */
			if (az_get_json(c->az, url, tenant_of(item), &def, &f, &err) == HTTP_OK) {
				role_data_actions(def, allow, deny);
				facts_rbac_cover_add(&cv, rd, allow, deny);
			} else {
				logf_(c, "kvaudit: vault %s: cannot read role definition %s: %s", jstr(item, "name"), rd,
				      err.msg);
			}
			cJSON_Delete(def);
			cJSON_Delete(allow);
			cJSON_Delete(deny);
			free(url);
		}
	}
	if (planned_there || (facts_rbac_covers_secrets(&cv) && (!jtrue(item, "holdsKek") || facts_rbac_covers_keys(&cv))))
		return mine;
	cJSON_Delete(mine);
	return NULL;
}

static cJSON *apply_role(struct fix_ctx *c, const cJSON *item, cJSON *res)
{
	const char *name = jstr(item, "name"), *oid = jstr(item, "principal"), *vid = jstr(item, "vault");
	char *url = NULL, *rd = role_definition_id(item), *ra_id = NULL, guid[40];
	cJSON *found = cJSON_CreateArray(), *body = NULL, *resp = NULL, *je = NULL, *check = NULL;
	struct az_failure f;
	struct kv_err err = {{0}};
	enum http_outcome o;

	url = kv_asprintf("%s%s/providers/Microsoft.Authorization/roleAssignments?api-version=%s&$filter=atScope()",
	                  c->az->cloud->arm, vid, FIX_API_AUTHORIZATION);
	o = az_list(c->az, url, tenant_of(item), found, &f, &err);
	if (o != HTTP_OK) {
		char *m = kv_asprintf("vault %s: cannot read its role assignments: %s", name, err.msg);

		note_failure(c, o, &f);
		set_error(res, "failed", m);
		free(m);
		goto out;
	}
	{
		cJSON *mine = bms_covering_roles(c, item, found, rd);

		if (mine) {
			cJSON_ReplaceItemInObjectCaseSensitive(res, "before", cJSON_Duplicate(mine, true));
			cJSON_ReplaceItemInObjectCaseSensitive(res, "after", mine);
			cJSON_ReplaceItemInObjectCaseSensitive(res, "verified", cJSON_CreateTrue());
			set_error(res, "already-compliant", NULL);
			logf_(c, "kvaudit: vault %s: already compliant", name);
			goto out;
		}
	}
	if (!may_write(c, item, "Microsoft.Authorization/roleAssignments/write", res))
		goto out;
	if (!new_guid(guid, sizeof(guid))) {
		char *m = kv_asprintf("vault %s: cannot make a role assignment name: /dev/urandom unreadable", name);

		set_error(res, "failed", m);
		free(m);
		goto out;
	}
	ra_id = kv_asprintf("%s/providers/Microsoft.Authorization/roleAssignments/%s", vid, guid);
	body = cJSON_CreateObject();
	{
		cJSON *p = cJSON_AddObjectToObject(body, "properties");

		cJSON_AddStringToObject(p, "roleDefinitionId", rd);
		cJSON_AddStringToObject(p, "principalId", oid);
		cJSON_AddStringToObject(p, "principalType", "ServicePrincipal");
	}
	cJSON_ReplaceItemInObjectCaseSensitive(res, "change", cJSON_Duplicate(body, true));
	cJSON_ReplaceItemInObjectCaseSensitive(res, "before", cJSON_CreateNull());
	je = journal_entry(c, "role", "intent", item);
	cJSON_AddStringToObject(je, "assignment", ra_id);
	cJSON_AddItemToObject(je, "request", cJSON_Duplicate(body, true));
	if (!fix_journal_append(c->journal, je, &err)) {
		char *m = kv_asprintf("vault %s: not changed: %s", name, err.msg);

		set_error(res, "failed", m);
		free(m);
		goto out;
	}
	cJSON_Delete(je);
	je = NULL;
	free(url);
	url = arm_url(c, ra_id, FIX_API_AUTHORIZATION, NULL);
	o = az_put_json(c->az, url, tenant_of(item), body, &resp, &f, &err);
	je = journal_entry(c, "role", "result", item);
	cJSON_AddStringToObject(je, "assignment", ra_id);
	if (o != HTTP_OK) {
		char *m = kv_asprintf("vault %s: the role assignment failed: %s", name, err.msg);

		write_refused(c, o, &f, m, res, je);
		free(m);
		fix_journal_append(c->journal, je, &err);
		goto out;
	}
	cJSON_AddItemToObject(je, "response", dup_or_null(resp));
	o = az_get_json(c->az, url, tenant_of(item), &check, &f, &err);
	cJSON_AddBoolToObject(je, "ok", o == HTTP_OK);
	cJSON_AddBoolToObject(je, "verified", o == HTTP_OK);
	cJSON_AddItemToObject(je, "after", dup_or_null(check));
	fix_journal_append(c->journal, je, &err);
	cJSON_ReplaceItemInObjectCaseSensitive(res, "after", dup_or_null(check));
	cJSON_ReplaceItemInObjectCaseSensitive(res, "verified", cJSON_CreateBool(o == HTTP_OK));
	if (o == HTTP_OK) {
		set_error(res, "applied", NULL);
		logf_(c, "kvaudit: vault %s: role assignment %s created and verified", name, guid);
	} else {
		char *m = kv_asprintf("vault %s: the role assignment is not there on re-reading: %s", name, err.msg);

		set_error(res, "failed", m);
		free(m);
	}
out:
	cJSON_Delete(check);
	cJSON_Delete(resp);
	cJSON_Delete(je);
	cJSON_Delete(body);
	cJSON_Delete(found);
	free(ra_id);
	free(rd);
	free(url);
	return res;
}

/* The vault settings of a Vaults_Get body, as Azure defaults them when absent (AZURE-FACTS a). */
static bool setting_now(const cJSON *vault, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(vault, "properties"), name);

	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v);
	return kv_streq_ci(name, "enableSoftDelete"); /* soft delete defaults to on; the others to off */
}

/* {name: value or null} of the planned settings as the vault has them. */
static cJSON *settings_of(const cJSON *vault, const cJSON *planned)
{
	cJSON *out = cJSON_CreateObject();
	const cJSON *p, *props = cJSON_GetObjectItemCaseSensitive(vault, "properties");

	cJSON_ArrayForEach(p, planned) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(props, p->string);

		cJSON_AddItemToObject(out, p->string, cJSON_IsBool(v) ? cJSON_Duplicate(v, false) : cJSON_CreateNull());
	}
	return out;
}

/* The planned settings as the PATCH's answer has them. */
static cJSON *settings_response(const struct step *s, const cJSON *resp)
{
	return resp ? settings_of(resp, s->want) : cJSON_CreateNull();
}

/* Every setting the PATCH turned on is on. */
static bool settings_check(const struct step *s, const cJSON *vault, cJSON **after)
{
	const cJSON *p;
	bool ok = true;

	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(s->body, "properties"))
		if (!setting_now(vault, p->string))
			ok = false;
	*after = settings_of(vault, s->want);
	return ok;
}

/*
 * Vault settings (--include-vault-settings): re-read the vault, PATCH only
 * the planned settings that are still off (Vaults_Update, never a vault
 * PUT), journaled like a grant, then re-read and verify.  Sets status,
 * error, before, after, request, verified and irreversible on sres.
 */
static void apply_settings(struct fix_ctx *c, const cJSON *item, cJSON *sres)
{
	const char *name = jstr(item, "name");
	const cJSON *planned = cJSON_GetObjectItemCaseSensitive(item, "settings"), *p;
	cJSON *vault = NULL, *body = NULL, *change, *irrev;

	if (!(vault = read_vault(c, item, sres)))
		goto out;
	cJSON_ReplaceItemInObjectCaseSensitive(sres, "before", settings_of(vault, planned));
	body = cJSON_CreateObject();
	change = cJSON_AddObjectToObject(body, "properties");
	irrev = cJSON_CreateArray();
	cJSON_ArrayForEach(p, planned)
		if (!setting_now(vault, p->string)) {
			cJSON_AddTrueToObject(change, p->string);
			if (!fix_setting_reversible(p->string))
				cJSON_AddItemToArray(irrev, cJSON_CreateString(p->string));
		}
	cJSON_ReplaceItemInObjectCaseSensitive(sres, "irreversible", irrev);
	if (cJSON_GetArraySize(change) == 0) {
		cJSON_ReplaceItemInObjectCaseSensitive(sres, "after", settings_of(vault, planned));
		cJSON_ReplaceItemInObjectCaseSensitive(sres, "verified", cJSON_CreateTrue());
		set_error(sres, "already-compliant", NULL);
		logf_(c, "kvaudit: vault %s: settings already compliant", name);
		goto out;
	}
	cJSON_ReplaceItemInObjectCaseSensitive(sres, "request", cJSON_Duplicate(body, true));
	if (!may_write(c, item, "Microsoft.KeyVault/vaults/write", sres))
		goto out;
	{
		struct step s = {
			.c = c, .item = item, .res = sres, .intent = journal_entry(c, "settings", "intent", item),
			.type = "settings", .fix = true, .send = az_patch_json, .body = body, .want = planned,
			.refused = "settings not changed", .write = "the settings update", .done = "applied",
			.done_line = "settings applied and verified",
			.not_seen = "the settings update was accepted but the vault does not show it on re-reading",
			.response = settings_response, .check = settings_check,
		};

		cJSON_AddItemToObject(s.intent, "prior", settings_of(vault, planned));
		cJSON_AddStringToObject(s.intent, "operation", "patch");
		cJSON_AddItemToObject(s.intent, "request", cJSON_Duplicate(body, true));
		cJSON_AddItemToObject(s.intent, "irreversible", cJSON_Duplicate(irrev, true));
		write_verify_journal(&s);
	}
out:
	cJSON_Delete(body);
	cJSON_Delete(vault);
}

/* Folds the settings outcome into the vault's: failed wins, then applied, then skipped. */
static void combine_status(cJSON *res, const cJSON *sres, bool grant_part)
{
	const char *a = jstr(res, "status"), *b = jstr(sres, "status");
	static const char *const order[] = {"failed", "applied", "skipped", "already-compliant"};

	if (!grant_part) {
		set_error(res, b, jstr(sres, "error"));
		return;
	}
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (kv_streq_ci(a, order[i]))
			return;
		if (kv_streq_ci(b, order[i])) {
			set_error(res, b, jstr(sres, "error"));
			return;
		}
	}
}

cJSON *fix_apply_item(struct fix_ctx *c, const cJSON *item)
{
	cJSON *res = cJSON_CreateObject();
	const char *kind = jstr(item, "kind");

	cJSON_AddStringToObject(res, "vault", jstr(item, "vault"));
	cJSON_AddStringToObject(res, "name", jstr(item, "name"));
	cJSON_AddStringToObject(res, "kind", kind);
	cJSON_AddStringToObject(res, "status", "skipped");
	cJSON_AddNullToObject(res, "error");
	cJSON_AddNullToObject(res, "change");
	cJSON_AddNullToObject(res, "before");
	cJSON_AddNullToObject(res, "after");
	cJSON_AddFalseToObject(res, "verified");
	cJSON_AddItemToObject(res, "resolves", dup_or_null(cJSON_GetObjectItemCaseSensitive(item, "resolves")));
	if (!armid_valid_for_url(jstr(item, "vault"))) {
		/* A snapshot is input: an ID that is not a plain ARM path never goes into a URL. */
		char *m = kv_asprintf("vault %s: not changed: its ID is not a valid ARM resource ID", jstr(item, "name"));

		set_error(res, "failed", m);
		free(m);
		return res;
	}
	if (jstr(item, "skip")) {
		char *m = kv_asprintf("vault %s: %s", jstr(item, "name"), jstr(item, "skip"));

		set_error(res, "skipped", m);
		free(m);
	} else if (strcmp(kind, "access-policy") == 0) {
		apply_policy(c, item, res);
	} else if (strcmp(kind, "role-assignment") == 0) {
		apply_role(c, item, res);
	} else if (!fix_item_has_settings(item)) {
		/* Only suppressed findings: an accepted risk is never changed. */
		set_error(res, "suppressed", NULL);
	}
	if (fix_item_has_settings(item)) {
		cJSON *sres = cJSON_CreateObject();

		cJSON_AddStringToObject(sres, "status", "failed");
		cJSON_AddNullToObject(sres, "error");
		cJSON_AddNullToObject(sres, "request");
		cJSON_AddNullToObject(sres, "before");
		cJSON_AddNullToObject(sres, "after");
		cJSON_AddFalseToObject(sres, "verified");
		cJSON_AddArrayToObject(sres, "irreversible");
		apply_settings(c, item, sres);
		combine_status(res, sres, strcmp(kind, "none") != 0 || jstr(item, "skip"));
		cJSON_AddItemToObject(res, "settings", sres);
	}
	return res;
}

/* ---- rollback ---- */

/* None of the removed permissions is left. */
static bool undo_grant_check(const struct step *s, const cJSON *vault, cJSON **after)
{
	const cJSON *entry = fix_find_entry(vault, jstr(s->item, "tenantId"), jstr(s->item, "principal"));
	cJSON *left = fix_removal(NULL, s->want, entry);
	bool gone = fix_perms_empty(left);

	cJSON_Delete(left);
	*after = dup_or_null(entry);
	return gone;
}

static cJSON *undo_grant(struct fix_ctx *c, const cJSON *intent)
{
	cJSON *res = cJSON_CreateObject(), *vault = NULL, *removal = NULL, *body = NULL;
	const char *vid = jstr(intent, "vault"), *tenant = jstr(intent, "tenantId"), *oid = jstr(intent, "principal");
	const cJSON *requested = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(intent, "request"), "properties"),
			"accessPolicies"), 0), "permissions");
	const cJSON *entry, *prior = cJSON_GetObjectItemCaseSensitive(intent, "prior");
	const char *slash = vid ? strrchr(vid, '/') : NULL;
	cJSON *item = cJSON_CreateObject();

	cJSON_AddStringToObject(item, "vault", vid ? vid : "");
	cJSON_AddStringToObject(item, "name", slash ? slash + 1 : "?");
	cJSON_AddStringToObject(item, "armTenant", jstr(intent, "armTenant") ? jstr(intent, "armTenant") : "");
	if (tenant) /* absent, it matches the principal's entry in any tenant (fix_find_entry) */
		cJSON_AddStringToObject(item, "tenantId", tenant);
	cJSON_AddStringToObject(item, "principal", oid ? oid : "");
	cJSON_AddStringToObject(res, "vault", vid ? vid : "");
	cJSON_AddStringToObject(res, "name", slash ? slash + 1 : "?");
	cJSON_AddStringToObject(res, "kind", "access-policy");
	cJSON_AddStringToObject(res, "status", "failed");
	cJSON_AddNullToObject(res, "error");
	cJSON_AddNullToObject(res, "removed");
	cJSON_AddNullToObject(res, "before");
	cJSON_AddNullToObject(res, "after");
	if (cJSON_IsNull(prior))
		prior = NULL;
	if (!vid || !oid || !requested) {
		set_error(res, "failed", "a journal entry lacks its vault, principal or request");
		goto out;
	}
	if (!(vault = read_vault(c, item, res)))
		goto out;
	entry = fix_find_entry(vault, tenant, oid);
	cJSON_ReplaceItemInObjectCaseSensitive(res, "before", dup_or_null(entry));
	removal = fix_removal(prior, requested, entry);
	if (fix_perms_empty(removal)) {
		cJSON_ReplaceItemInObjectCaseSensitive(res, "after", dup_or_null(entry));
		set_error(res, "nothing-to-undo", NULL);
		logf_(c, "kvaudit: vault %s: nothing to undo", jstr(item, "name"));
		goto out;
	}
	cJSON_ReplaceItemInObjectCaseSensitive(res, "removed", cJSON_Duplicate(removal, true));
	body = fix_policy_request(tenant, oid, removal);
	{
		struct step s = {
			.c = c, .item = item, .res = res, .intent = journal_entry(c, "undo-grant", "intent", item),
			.type = "undo-grant", .send = az_put_json, .path = "/accessPolicies/remove", .body = body,
			.want = removal, .refused = "not changed", .write = "the access-policy remove",
			.done = "rolled-back", .done_line = "rolled back",
			.not_seen = "the remove was accepted but the permissions are still there", .check = undo_grant_check,
		};

		cJSON_AddStringToObject(s.intent, "undoes", jstr(intent, "run") ? jstr(intent, "run") : "");
		cJSON_AddItemToObject(s.intent, "current", dup_or_null(entry));
		cJSON_AddStringToObject(s.intent, "operation", "remove");
		cJSON_AddItemToObject(s.intent, "request", cJSON_Duplicate(body, true));
		write_verify_journal(&s);
	}
out:
	cJSON_Delete(body);
	cJSON_Delete(removal);
	cJSON_Delete(vault);
	cJSON_Delete(item);
	return res;
}

static cJSON *undo_role(struct fix_ctx *c, const cJSON *intent)
{
	cJSON *res = cJSON_CreateObject(), *je = NULL, *check = NULL;
	const char *vid = jstr(intent, "vault"), *ra = jstr(intent, "assignment");
	const char *slash = vid ? strrchr(vid, '/') : NULL, *name = slash ? slash + 1 : "?";
	const char *tenant = kv_empty(jstr(intent, "armTenant")) ? NULL : jstr(intent, "armTenant");
	struct az_failure f;
	struct kv_err err = {{0}};
	char *url = NULL;
	enum http_outcome o;

	cJSON_AddStringToObject(res, "vault", vid ? vid : "");
	cJSON_AddStringToObject(res, "name", name);
	cJSON_AddStringToObject(res, "kind", "role-assignment");
	cJSON_AddStringToObject(res, "status", "failed");
	cJSON_AddNullToObject(res, "error");
	cJSON_AddItemToObject(res, "assignment", ra ? cJSON_CreateString(ra) : cJSON_CreateNull());
	if (!vid || !ra) {
		set_error(res, "failed", "a journal entry lacks its vault or role assignment");
		goto out;
	}
	url = kv_asprintf("%s%s?api-version=%s", c->az->cloud->arm, ra, FIX_API_AUTHORIZATION);
	o = az_get_json(c->az, url, tenant, &check, &f, &err);
	if (o == HTTP_NOT_FOUND) {
		set_error(res, "nothing-to-undo", NULL);
		logf_(c, "kvaudit: vault %s: role assignment already gone", name);
		goto out;
	}
	if (o != HTTP_OK) {
		char *m = kv_asprintf("vault %s: cannot read role assignment: %s", name, err.msg);

		note_failure(c, o, &f);
		set_error(res, "failed", m);
		free(m);
		goto out;
	}
	je = cJSON_CreateObject();
	cJSON_AddStringToObject(je, "run", c->run ? c->run : "");
	cJSON_AddStringToObject(je, "type", "undo-role");
	cJSON_AddStringToObject(je, "phase", "intent");
	cJSON_AddStringToObject(je, "vault", vid);
	cJSON_AddStringToObject(je, "assignment", ra);
	cJSON_AddItemToObject(je, "current", cJSON_Duplicate(check, true));
	if (!fix_journal_append(c->journal, je, &err)) {
		char *m = kv_asprintf("vault %s: not changed: %s", name, err.msg);

		set_error(res, "failed", m);
		free(m);
		goto out;
	}
	cJSON_ReplaceItemInObjectCaseSensitive(je, "phase", cJSON_CreateString("result"));
	cJSON_DeleteItemFromObjectCaseSensitive(je, "current");
	o = az_delete(c->az, url, tenant, &f, &err);
	if (o != HTTP_OK && o != HTTP_NOT_FOUND) {
		char *m = kv_asprintf("vault %s: deleting the role assignment failed: %s", name, err.msg);

		write_refused(c, o, &f, m, res, je);
		free(m);
		fix_journal_append(c->journal, je, &err);
		goto out;
	}
	cJSON_Delete(check);
	check = NULL;
	o = az_get_json(c->az, url, tenant, &check, &f, &err);
	cJSON_AddBoolToObject(je, "ok", o == HTTP_NOT_FOUND);
	fix_journal_append(c->journal, je, &err);
	if (o == HTTP_NOT_FOUND) {
		set_error(res, "rolled-back", NULL);
		logf_(c, "kvaudit: vault %s: role assignment deleted", name);
	} else {
		char *m = kv_asprintf("vault %s: the role assignment is still there after deleting it", name);

		set_error(res, "failed", m);
		free(m);
	}
out:
	cJSON_Delete(check);
	cJSON_Delete(je);
	free(url);
	return res;
}

/* enabledForDiskEncryption is off again. */
static bool undo_settings_check(const struct step *s, const cJSON *vault, cJSON **after)
{
	*after = settings_of(vault, s->want);
	return !setting_now(vault, "enabledForDiskEncryption");
}

/*
 * Undoes a settings intent: only enabledForDiskEncryption can be turned off
 * again (when the fix turned it on); soft delete and purge protection cannot
 * (Azure refuses), so they are reported in "notReversible", which is not a
 * failure.
 */
static cJSON *undo_settings(struct fix_ctx *c, const cJSON *intent)
{
	const char *vid = jstr(intent, "vault"), *slash = vid ? strrchr(vid, '/') : NULL, *name = slash ? slash + 1 : "?";
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(intent, "request"),
	                                                    "properties");
	const cJSON *prior = cJSON_GetObjectItemCaseSensitive(intent, "prior"), *p;
	cJSON *res = cJSON_CreateObject(), *item = cJSON_CreateObject(), *vault = NULL, *body = NULL;
	cJSON *nr = cJSON_CreateArray();
	bool revert = false;

	cJSON_AddStringToObject(item, "vault", vid ? vid : "");
	cJSON_AddStringToObject(item, "name", name);
	cJSON_AddStringToObject(item, "armTenant", jstr(intent, "armTenant") ? jstr(intent, "armTenant") : "");
	cJSON_AddStringToObject(item, "tenantId", jstr(intent, "tenantId") ? jstr(intent, "tenantId") : "");
	cJSON_AddStringToObject(item, "principal", jstr(intent, "principal") ? jstr(intent, "principal") : "");
	cJSON_AddStringToObject(res, "vault", vid ? vid : "");
	cJSON_AddStringToObject(res, "name", name);
	cJSON_AddStringToObject(res, "kind", "settings");
	cJSON_AddStringToObject(res, "status", "failed");
	cJSON_AddNullToObject(res, "error");
	cJSON_AddNullToObject(res, "before");
	cJSON_AddNullToObject(res, "after");
	cJSON_AddItemToObject(res, "notReversible", nr);
	if (!vid || !cJSON_IsObject(req)) {
		set_error(res, "failed", "a journal entry lacks its vault or request");
		goto out;
	}
	cJSON_ArrayForEach(p, req) {
		if (!cJSON_IsTrue(p))
			continue;
		if (!fix_setting_reversible(p->string))
			cJSON_AddItemToArray(nr, cJSON_CreateString(p->string));
		else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(prior, p->string)))
			revert = true;
	}
	if (!revert) {
		set_error(res, cJSON_GetArraySize(nr) ? "not-reversible" : "nothing-to-undo", NULL);
		goto out;
	}
	if (!(vault = read_vault(c, item, res)))
		goto out;
	cJSON_ReplaceItemInObjectCaseSensitive(res, "before", settings_of(vault, req));
	if (!setting_now(vault, "enabledForDiskEncryption")) {
		cJSON_ReplaceItemInObjectCaseSensitive(res, "after", settings_of(vault, req));
		set_error(res, cJSON_GetArraySize(nr) ? "not-reversible" : "nothing-to-undo", NULL);
		goto out;
	}
	body = cJSON_CreateObject();
	cJSON_AddFalseToObject(cJSON_AddObjectToObject(body, "properties"), "enabledForDiskEncryption");
	{
		struct step s = {
			.c = c, .item = item, .res = res, .intent = journal_entry(c, "undo-settings", "intent", item),
			.type = "undo-settings", .send = az_patch_json, .body = body, .want = req,
			.refused = "not changed", .write = "turning enabledForDiskEncryption off again",
			.done = "rolled-back", .done_line = "enabledForDiskEncryption turned off again",
			.not_seen = "enabledForDiskEncryption is still on after turning it off", .check = undo_settings_check,
		};

		cJSON_AddStringToObject(s.intent, "undoes", jstr(intent, "run") ? jstr(intent, "run") : "");
		cJSON_AddItemToObject(s.intent, "current", settings_of(vault, req));
		cJSON_AddStringToObject(s.intent, "operation", "patch");
		cJSON_AddItemToObject(s.intent, "request", cJSON_Duplicate(body, true));
		write_verify_journal(&s);
	}
out:
	cJSON_Delete(body);
	cJSON_Delete(vault);
	cJSON_Delete(item);
	return res;
}

bool fix_rollback(struct fix_ctx *c, const cJSON *entries, cJSON *results)
{
	bool ok = true;

	/* The last write first, so that later writes are undone before the ones they built on. */
	for (int i = cJSON_GetArraySize(entries) - 1; i >= 0; i--) {
		const cJSON *e = cJSON_GetArrayItem(entries, i);
		const char *type = jstr(e, "type");
		cJSON *r;

		if (!kv_streq_ci(jstr(e, "phase"), "intent") || !type)
			continue;
		if ((strcmp(type, "grant") == 0 || strcmp(type, "role") == 0 || strcmp(type, "settings") == 0) &&
		    (!armid_valid_for_url(jstr(e, "vault")) ||
		     (strcmp(type, "role") == 0 && !armid_valid_for_url(jstr(e, "assignment"))))) {
			/* A journal is input too: a bad ID is reported, never sent. */
			r = cJSON_CreateObject();
			cJSON_AddStringToObject(r, "vault", jstr(e, "vault") ? jstr(e, "vault") : "");
			cJSON_AddStringToObject(r, "name", "?");
			cJSON_AddStringToObject(r, "kind", type);
			cJSON_AddStringToObject(r, "status", "failed");
			cJSON_AddStringToObject(r, "error", "a journal entry names a vault or role assignment ID that is not a "
			                                    "valid ARM resource ID: not undone");
			ok = false;
			cJSON_AddItemToArray(results, r);
			continue;
		}
		if (strcmp(type, "grant") == 0)
			r = undo_grant(c, e);
		else if (strcmp(type, "role") == 0)
			r = undo_role(c, e);
		else if (strcmp(type, "settings") == 0)
			r = undo_settings(c, e);
		else
			continue;
		if (kv_streq_ci(jstr(r, "status"), "failed"))
			ok = false;
		cJSON_AddItemToArray(results, r);
	}
	return ok;
}
