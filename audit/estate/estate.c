/*
 * estate.c - loads a kvaudit.estate v1 snapshot into the typed model of
 * estate.h, validating every field it uses.  Unknown fields are ignored;
 * a field of the wrong type is an error naming its JSON path, because a
 * half-understood snapshot must never produce a report that looks clean.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stddef.h>

#include "audit/estate/ade.h"
#include "audit/estate/estate.h"
#include "audit/util/armid.h"
#include "audit/util/json.h"

/* A snapshot larger than this is refused (50k VMs is a few hundred MB). */
#define ESTATE_MAX_BYTES ((size_t)2 << 30)

struct loader {
	const char *name;
	struct kv_err *err;
	bool failed;
};

/* A copy of snapshot text safe for a one-line message: controls become '?', long text is cut. */
static const char *printable(const char *s, char *out, size_t n)
{
	size_t j = 0;

	for (; s && *s && j + 4 < n; s++)
		out[j++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	if (s && *s && j + 3 < n) {
		memcpy(out + j, "...", 3);
		j += 3;
	}
	out[j] = '\0';
	return out;
}

static void fail(struct loader *L, const char *path, const char *what, const cJSON *got)
{
	if (L->failed)
		return;
	L->failed = true;
	if (got)
		kv_err_set(L->err, "%s: %s: expected %s, got %s", L->name, path, what, json_type_name(got));
	else
		kv_err_set(L->err, "%s: %s: %s", L->name, path, what);
}

/* Child key of obj, checked to be a string (absent and null give NULL). */
static const char *str_at(struct loader *L, const cJSON *obj, const char *key, const char *path)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!j || cJSON_IsNull(j))
		return NULL;
	if (!cJSON_IsString(j)) {
		char p[512];

		snprintf(p, sizeof(p), "%s.%s", path, key);
		fail(L, p, "a string", j);
		return NULL;
	}
	return j->valuestring;
}

static const char *req_str(struct loader *L, const cJSON *obj, const char *key, const char *path)
{
	const char *s = str_at(L, obj, key, path);

	if (!s && !L->failed) {
		char p[512];

		snprintf(p, sizeof(p), "%s.%s", path, key);
		fail(L, p, "required string is missing", NULL);
	}
	return s;
}

/* A boolean that may be absent or null (def); a string "true"/"false" is accepted (IMDS style). */
static bool bool_at(struct loader *L, const cJSON *obj, const char *key, const char *path, bool def)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!j || cJSON_IsNull(j))
		return def;
	if (cJSON_IsBool(j))
		return cJSON_IsTrue(j);
	if (cJSON_IsString(j) && (kv_streq_ci(j->valuestring, "true") || kv_streq_ci(j->valuestring, "false")))
		return kv_streq_ci(j->valuestring, "true");
	{
		char p[512];

		snprintf(p, sizeof(p), "%s.%s", path, key);
		fail(L, p, "a boolean", j);
	}
	return def;
}

/* An object child that may be absent or null. */
static const cJSON *obj_at(struct loader *L, const cJSON *obj, const char *key, const char *path)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!j || cJSON_IsNull(j))
		return NULL;
	if (!cJSON_IsObject(j)) {
		char p[512];

		snprintf(p, sizeof(p), "%s.%s", path, key);
		fail(L, p, "an object", j);
		return NULL;
	}
	return j;
}

static const cJSON *arr_at(struct loader *L, const cJSON *obj, const char *key, const char *path)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!j || cJSON_IsNull(j))
		return NULL;
	if (!cJSON_IsArray(j)) {
		char p[512];

		snprintf(p, sizeof(p), "%s.%s", path, key);
		fail(L, p, "an array", j);
		return NULL;
	}
	return j;
}

/* An array of strings (permission lists, data actions); non-strings are errors. */
static cJSON *str_arr_at(struct loader *L, const cJSON *obj, const char *key, const char *path)
{
	const cJSON *a = arr_at(L, obj, key, path);
	const cJSON *it;
	int i = 0;

	if (!a)
		return NULL;
	cJSON_ArrayForEach(it, a) {
		if (!cJSON_IsString(it)) {
			char p[512];

			snprintf(p, sizeof(p), "%s.%s[%d]", path, key, i);
			fail(L, p, "a string", it);
			return NULL;
		}
		i++;
	}
	return (cJSON *)(uintptr_t)a;
}

/* Validates that item i of a top-level list is an object; returns it or NULL. */
static cJSON *list_item(struct loader *L, cJSON *it, const char *list, int i, char *path, size_t n)
{
	snprintf(path, n, "$.%s[%d]", list, i);
	if (!cJSON_IsObject(it)) {
		fail(L, path, "an object", it);
		return NULL;
	}
	return it;
}

static void copy_segment(const char *id, const char *key, char *out, size_t n)
{
	if (!armid_segment(id, key, out, n))
		out[0] = '\0';
}

const char *vm_os_name(enum vm_os os)
{
	return os == OS_WINDOWS ? "Windows" : os == OS_LINUX ? "Linux" : "Unknown";
}

const char *user_type_name(enum user_type t)
{
	switch (t) {
	case USER_MEMBER: return "Member";
	case USER_GUEST: return "Guest";
	case USER_SERVICE_PRINCIPAL: return "ServicePrincipal";
	default: return "Unknown";
	}
}

const char *sp_status_name(enum sp_status s)
{
	return s == SP_FOUND ? "found" : s == SP_ABSENT ? "absent" : "unknown";
}

static enum vm_os parse_os(const char *s)
{
	if (kv_streq_ci(s, "Windows"))
		return OS_WINDOWS;
	if (kv_streq_ci(s, "Linux"))
		return OS_LINUX;
	return OS_UNKNOWN;
}

/* The instance view's osName is a product name ("Windows Server 2016 Datacenter", "ubuntu"). */
static enum vm_os os_from_name(const char *s)
{
	if (kv_empty(s))
		return OS_UNKNOWN;
	return kv_startswith_ci(s, "Windows") ? OS_WINDOWS : OS_LINUX;
}

static enum user_type parse_user_type(const char *s)
{
	if (kv_streq_ci(s, "Member"))
		return USER_MEMBER;
	if (kv_streq_ci(s, "Guest"))
		return USER_GUEST;
	if (kv_streq_ci(s, "ServicePrincipal") || kv_streq_ci(s, "managedIdentity"))
		return USER_SERVICE_PRINCIPAL;
	return USER_UNKNOWN;
}

/* Everything from the top-level list `key`, or NULL with present=false when absent. */
static const cJSON *top_list(struct loader *L, const cJSON *doc, const char *key, bool *present)
{
	const cJSON *a = arr_at(L, doc, key, "$");

	*present = a != NULL;
	return a;
}

static void check_extension_list(struct loader *L, const cJSON *arr, const char *path)
{
	cJSON *it;
	int i = 0;

	cJSON_ArrayForEach(it, arr) {
		char p[512];

		snprintf(p, sizeof(p), "%s[%d]", path, i++);
		if (!cJSON_IsObject(it)) {
			fail(L, p, "an object", it);
			return;
		}
		(void)obj_at(L, it, "properties", p);
	}
}

static void add_extension(struct vm *vm, cJSON *ext)
{
	vm->extensions = kv_realloc(vm->extensions, (vm->nextensions + 1) * sizeof(*vm->extensions));
	vm->extensions[vm->nextensions++] = ext;
}

/*
 * The VM ID that an extension ID belongs to: the ID must end in
 * ".../virtualMachines/<vm>/extensions/<name>" with non-empty names.
 */
static char *extension_vm_id(const char *ext_id)
{
	const char *p = ext_id, *hit = NULL, *vms, *name;

	while ((p = strchr(p, '/')) != NULL) {
		if (kv_startswith_ci(p, "/extensions/"))
			hit = p;
		p++;
	}
	if (!hit)
		return NULL;
	name = hit + strlen("/extensions/");
	/* One trailing '/' is tolerated, as everywhere in ARM IDs. */
	if (*name == '\0' || *name == '/' || (strchr(name, '/') && strcmp(strchr(name, '/'), "/") != 0))
		return NULL;
	/* The segment pair before it must be virtualMachines/<vm>. */
	vms = hit;
	while (vms > ext_id && vms[-1] != '/')
		vms--;
	if (vms == hit || vms - ext_id < (ptrdiff_t)strlen("/virtualMachines/") ||
	    strncasecmp(vms - strlen("/virtualMachines/"), "/virtualMachines/", strlen("/virtualMachines/")) != 0)
		return NULL;
	return kv_strndup(ext_id, (size_t)(hit - ext_id));
}

static void load_vms(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->vms = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->vms));
	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[256];
		struct vm *vm;
		const cJSON *props, *iv, *res, *sp, *osd;

		if (!list_item(L, it, "virtualMachines", i++, path, sizeof(path)))
			return;
		vm = &e->vms[e->nvms++];   /* counted now: estate_free releases it on failure */
		vm->raw = it;
		vm->id = req_str(L, it, "id", path);
		vm->name = str_at(L, it, "name", path);
		vm->location = str_at(L, it, "location", path);
		props = obj_at(L, it, "properties", path);
		snprintf(p2, sizeof(p2), "%s.properties", path);
		sp = props ? obj_at(L, props, "storageProfile", p2) : NULL;
		if (sp) {
			char p3[300];

			snprintf(p3, sizeof(p3), "%s.storageProfile", p2);
			osd = obj_at(L, sp, "osDisk", p3);
			(void)arr_at(L, sp, "dataDisks", p3);
			if (osd) {
				snprintf(p3, sizeof(p3), "%s.storageProfile.osDisk", p2);
				vm->os = parse_os(str_at(L, osd, "osType", p3));
				(void)obj_at(L, osd, "encryptionSettings", p3);
			}
		}
		iv = props ? obj_at(L, props, "instanceView", p2) : NULL;
		if (iv) {
			const cJSON *agent, *st, *s;
			char p3[300];

			vm->has_instance_view = true;
			snprintf(p3, sizeof(p3), "%s.instanceView", p2);
			agent = obj_at(L, iv, "vmAgent", p3);
			(void)arr_at(L, iv, "disks", p3);
			if (vm->os == OS_UNKNOWN)
				vm->os = os_from_name(str_at(L, iv, "osName", p3));
			vm->agent = agent ? AGENT_NOT_READY : AGENT_UNKNOWN;
			if (agent) {
				char p4[320];

				snprintf(p4, sizeof(p4), "%s.vmAgent", p3);
				vm->agent_version = kv_strdup(str_at(L, agent, "vmAgentVersion", p4));
				st = arr_at(L, agent, "statuses", p4);
				cJSON_ArrayForEach(s, st) {
					const cJSON *ds = cJSON_GetObjectItemCaseSensitive(s, "displayStatus");

					if (cJSON_IsString(ds) && kv_streq_ci(ds->valuestring, "Ready"))
						vm->agent = AGENT_READY;
				}
			}
		}
		res = arr_at(L, it, "resources", path);
		if (res) {
			cJSON *x;

			snprintf(p2, sizeof(p2), "%s.resources", path);
			check_extension_list(L, res, p2);
			cJSON_ArrayForEach(x, res)
				add_extension(vm, x);
		}
		if (L->failed)
			return;
		copy_segment(vm->id, "subscriptions", vm->sub, sizeof(vm->sub));
		copy_segment(vm->id, "resourceGroups", vm->rg, sizeof(vm->rg));
		if (!idmap_put(&e->vm_ix, vm->id, e->nvms - 1)) {
			char b[300];

			kv_err_set(L->err, "%s: %s.id: duplicate virtual machine '%s'", L->name, path,
			           printable(vm->id, b, sizeof(b)));
			L->failed = true;
			return;
		}
	}
}

static void join_vm_extensions(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	cJSON_ArrayForEach(it, arr) {
		char path[128];
		const char *id;
		char *vmid;
		size_t ix;

		if (!list_item(L, it, "vmExtensions", i++, path, sizeof(path)))
			return;
		id = req_str(L, it, "id", path);
		(void)obj_at(L, it, "properties", path);
		if (L->failed)
			return;
		vmid = extension_vm_id(id);
		if (!vmid) {
			char b[300];

			kv_err_set(L->err, "%s: %s.id: '%s' is not a VM extension ID (.../virtualMachines/<vm>/extensions/<name>)",
			           L->name, path, printable(id, b, sizeof(b)));
			L->failed = true;
			return;
		}
		if (idmap_get(&e->vm_ix, vmid, &ix)) {
			struct vm *vm = &e->vms[ix];
			bool dup = false;

			/* The same extension may be both embedded and listed apart. */
			for (size_t k = 0; k < vm->nextensions; k++) {
				const cJSON *xid = cJSON_GetObjectItemCaseSensitive(vm->extensions[k], "id");

				if (cJSON_IsString(xid) && armid_eq(xid->valuestring, id))
					dup = true;
			}
			if (!dup)
				add_extension(vm, it);
		}
		free(vmid);
	}
}

static void load_disks(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->disks = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->disks));
	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[160];
		struct disk *d;
		const cJSON *props, *esc;

		if (!list_item(L, it, "disks", i++, path, sizeof(path)))
			return;
		d = &e->disks[e->ndisks];
		d->raw = it;
		d->id = req_str(L, it, "id", path);
		d->name = str_at(L, it, "name", path);
		d->managed_by = str_at(L, it, "managedBy", path);
		d->location = str_at(L, it, "location", path);
		props = obj_at(L, it, "properties", path);
		snprintf(p2, sizeof(p2), "%s.properties", path);
		esc = props ? obj_at(L, props, "encryptionSettingsCollection", p2) : NULL;
		if (esc) {
			char p3[200];

			snprintf(p3, sizeof(p3), "%s.encryptionSettingsCollection", p2);
			(void)bool_at(L, esc, "enabled", p3, false);
			(void)arr_at(L, esc, "encryptionSettings", p3);
			(void)str_at(L, esc, "encryptionSettingsVersion", p3);
		}
		if (L->failed)
			return;
		idmap_put(&e->disk_ix, d->id, e->ndisks);
		e->ndisks++;
	}
	/* Attach disks to the VMs that manage them (Resource Graph gives no storage profile join). */
	for (size_t k = 0; k < e->ndisks; k++) {
		size_t ix;

		if (e->disks[k].managed_by && idmap_get(&e->vm_ix, e->disks[k].managed_by, &ix)) {
			struct vm *vm = &e->vms[ix];

			vm->disks = kv_realloc(vm->disks, (vm->ndisks + 1) * sizeof(*vm->disks));
			vm->disks[vm->ndisks++] = k;
		}
	}
}

static void load_policy(struct loader *L, struct access_policy *ap, const cJSON *it, const char *path)
{
	const cJSON *perms;
	char p2[300];

	ap->tenant_id = str_at(L, it, "tenantId", path);
	ap->object_id = req_str(L, it, "objectId", path);
	ap->application_id = str_at(L, it, "applicationId", path);
	perms = obj_at(L, it, "permissions", path);
	snprintf(p2, sizeof(p2), "%s.permissions", path);
	if (perms) {
		ap->keys = str_arr_at(L, perms, "keys", p2);
		ap->secrets = str_arr_at(L, perms, "secrets", p2);
		ap->certificates = str_arr_at(L, perms, "certificates", p2);
		ap->storage = str_arr_at(L, perms, "storage", p2);
	}
}

/* The host of an https URL, lower-cased, into out; false when it has none. */
static bool url_host(const char *url, char *out, size_t n)
{
	const char *p, *end;
	size_t len;

	if (!url || !kv_startswith_ci(url, "https://"))
		return false;
	p = url + strlen("https://");
	end = p + strcspn(p, "/:?#");
	len = (size_t)(end - p);
	if (len == 0 || len >= n)
		return false;
	memcpy(out, p, len);
	out[len] = '\0';
	kv_lower(out);
	return true;
}

static void load_vaults(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->vaults = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->vaults));
	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[160];
		struct vault *v;
		const cJSON *props, *aps, *acl, *ap;
		char host[256];

		if (!list_item(L, it, "vaults", i++, path, sizeof(path)))
			return;
		v = &e->vaults[e->nvaults++];   /* counted now: estate_free releases it on failure */
		v->raw = it;
		v->id = req_str(L, it, "id", path);
		v->name = str_at(L, it, "name", path);
		v->location = str_at(L, it, "location", path);
		props = obj_at(L, it, "properties", path);
		snprintf(p2, sizeof(p2), "%s.properties", path);
		v->soft_delete = true;
		if (props) {
			const cJSON *days;

			v->tenant_id = str_at(L, props, "tenantId", p2);
			v->uri = str_at(L, props, "vaultUri", p2);
			v->rbac = bool_at(L, props, "enableRbacAuthorization", p2, false);
			v->enabled_for_disk_encryption = bool_at(L, props, "enabledForDiskEncryption", p2, false);
			v->soft_delete = bool_at(L, props, "enableSoftDelete", p2, true);
			v->purge_protection = bool_at(L, props, "enablePurgeProtection", p2, false);
			v->public_network_access = str_at(L, props, "publicNetworkAccess", p2);
			days = cJSON_GetObjectItemCaseSensitive(props, "softDeleteRetentionInDays");
			if (cJSON_IsNumber(days))
				v->soft_delete_days = days->valueint;
			acl = obj_at(L, props, "networkAcls", p2);
			if (acl) {
				char p3[200];

				snprintf(p3, sizeof(p3), "%s.networkAcls", p2);
				v->default_action = str_at(L, acl, "defaultAction", p3);
				v->bypass = str_at(L, acl, "bypass", p3);
			}
			aps = arr_at(L, props, "accessPolicies", p2);
			if (aps) {
				int k = 0;

				v->policies = kv_calloc((size_t)cJSON_GetArraySize(aps), sizeof(*v->policies));
				cJSON_ArrayForEach(ap, aps) {
					char p3[200];

					snprintf(p3, sizeof(p3), "%s.accessPolicies[%d]", p2, k++);
					if (!cJSON_IsObject(ap)) {
						fail(L, p3, "an object", ap);
						return;
					}
					load_policy(L, &v->policies[v->npolicies++], ap, p3);
				}
			}
		}
		if (L->failed)
			return;
		copy_segment(v->id, "subscriptions", v->sub, sizeof(v->sub));
		copy_segment(v->id, "resourceGroups", v->rg, sizeof(v->rg));
		idmap_put(&e->vault_ix, v->id, e->nvaults - 1);
		if (url_host(v->uri, host, sizeof(host)))
			idmap_put(&e->vault_host_ix, host, e->nvaults - 1);
	}
}

static void load_subscriptions(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->subs = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->subs));
	cJSON_ArrayForEach(it, arr) {
		char path[128];
		struct subscription *s;
		const char *guid;

		if (!list_item(L, it, "subscriptions", i++, path, sizeof(path)))
			return;
		s = &e->subs[e->nsubs];
		s->raw = it;
		s->id = str_at(L, it, "id", path);
		guid = str_at(L, it, "subscriptionId", path);
		s->tenant_id = str_at(L, it, "tenantId", path);
		s->display_name = str_at(L, it, "displayName", path);
		if (!s->display_name)
			s->display_name = str_at(L, it, "name", path);   /* az account list */
		s->state = str_at(L, it, "state", path);
		if (L->failed)
			return;
		if (!guid && s->id)
			guid = strrchr(s->id, '/') ? strrchr(s->id, '/') + 1 : s->id;
		if (kv_empty(guid) || strlen(guid) >= sizeof(s->sub)) {
			fail(L, path, "a subscription needs \"subscriptionId\" or \"id\"", NULL);
			return;
		}
		strcpy(s->sub, guid);
		idmap_put(&e->sub_ix, s->sub, e->nsubs);
		e->nsubs++;
	}
}

/* Role definition IDs are compared by their GUID: the same role is named at many scopes. */
static const char *guid_of(const char *id)
{
	const char *slash = id ? strrchr(id, '/') : NULL;

	return slash ? slash + 1 : id;
}

static void load_role_assignments(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->ras = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->ras));
	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[160];
		struct role_assignment *r;
		const cJSON *props;

		if (!list_item(L, it, "roleAssignments", i++, path, sizeof(path)))
			return;
		r = &e->ras[e->nras];
		r->raw = it;
		r->id = str_at(L, it, "id", path);
		props = obj_at(L, it, "properties", path);
		snprintf(p2, sizeof(p2), "%s.properties", path);
		if (!props) {
			fail(L, p2, "required object is missing", NULL);
			return;
		}
		r->scope = req_str(L, props, "scope", p2);
		r->principal_id = req_str(L, props, "principalId", p2);
		r->role_definition_id = req_str(L, props, "roleDefinitionId", p2);
		r->principal_type = str_at(L, props, "principalType", p2);
		if (L->failed)
			return;
		e->nras++;
	}
}

static void merge_actions(cJSON **into, const cJSON *from)
{
	const cJSON *it;

	if (!from)
		return;
	if (!*into)
		*into = cJSON_CreateArray();
	cJSON_ArrayForEach(it, from)
		cJSON_AddItemToArray(*into, cJSON_CreateString(it->valuestring));
}

static void load_role_definitions(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->rds = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->rds));
	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[160];
		struct role_definition *r;
		const cJSON *props, *perms, *perm;

		if (!list_item(L, it, "roleDefinitions", i++, path, sizeof(path)))
			return;
		r = &e->rds[e->nrds];
		r->raw = it;
		r->id = req_str(L, it, "id", path);
		r->name = str_at(L, it, "name", path);
		props = obj_at(L, it, "properties", path);
		snprintf(p2, sizeof(p2), "%s.properties", path);
		if (props) {
			int k = 0;

			r->role_name = str_at(L, props, "roleName", p2);
			perms = arr_at(L, props, "permissions", p2);
			cJSON_ArrayForEach(perm, perms) {
				char p3[200];

				snprintf(p3, sizeof(p3), "%s.permissions[%d]", p2, k++);
				if (!cJSON_IsObject(perm)) {
					fail(L, p3, "an object", perm);
					break;
				}
				merge_actions(&r->data_actions, str_arr_at(L, perm, "dataActions", p3));
				merge_actions(&r->not_data_actions, str_arr_at(L, perm, "notDataActions", p3));
			}
		}
		e->nrds++;   /* counted before a failure so estate_free releases its arrays */
		if (L->failed)
			return;
		idmap_put(&e->rd_ix, guid_of(r->id), e->nrds - 1);
	}
}

static void load_rs_vaults(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->rsvs = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->rsvs));
	cJSON_ArrayForEach(it, arr) {
		char path[128];
		struct rs_vault *r;

		if (!list_item(L, it, "recoveryServicesVaults", i++, path, sizeof(path)))
			return;
		r = &e->rsvs[e->nrsvs];
		r->raw = it;
		r->id = req_str(L, it, "id", path);
		r->name = str_at(L, it, "name", path);
		r->location = str_at(L, it, "location", path);
		if (L->failed)
			return;
		idmap_put(&e->rsv_ix, r->id, e->nrsvs);
		e->nrsvs++;
	}
}

/* The Recovery Services vault prefix of a protected item ID. */
static void rsv_of_item(const char *id, char *out, size_t n)
{
	const char *key = "/providers/Microsoft.RecoveryServices/vaults/";
	const char *p = id;

	out[0] = '\0';
	for (; p && *p; p++) {
		if (kv_startswith_ci(p, key)) {
			const char *name = p + strlen(key);
			size_t len = (size_t)(name - id) + strcspn(name, "/");

			if (len < n) {
				memcpy(out, id, len);
				out[len] = '\0';
			}
			return;
		}
	}
}

static void load_protected_items(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->items = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->items));
	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[160];
		struct protected_item *r;
		const cJSON *props;

		if (!list_item(L, it, "backupProtectedItems", i++, path, sizeof(path)))
			return;
		r = &e->items[e->nitems];
		r->raw = it;
		r->id = req_str(L, it, "id", path);
		props = obj_at(L, it, "properties", path);
		snprintf(p2, sizeof(p2), "%s.properties", path);
		if (props) {
			r->vm_id = str_at(L, props, "virtualMachineId", p2);
			if (!r->vm_id)
				r->vm_id = str_at(L, props, "sourceResourceId", p2);
			r->protection_state = str_at(L, props, "protectionState", p2);
			r->last_backup_status = str_at(L, props, "lastBackupStatus", p2);
			r->health_status = str_at(L, props, "healthStatus", p2);
		}
		if (L->failed)
			return;
		rsv_of_item(r->id, r->rsv_id, sizeof(r->rsv_id));
		e->nitems++;
	}
}

static void load_keys(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->keys = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->keys));
	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[160];
		struct key_bundle *k;
		const cJSON *key;

		if (!list_item(L, it, "keys", i++, path, sizeof(path)))
			return;
		k = &e->keys[e->nkeys];
		k->raw = it;
		key = obj_at(L, it, "key", path);
		snprintf(p2, sizeof(p2), "%s.key", path);
		k->kid = key ? str_at(L, key, "kid", p2) : str_at(L, it, "kid", path);
		k->managed = bool_at(L, it, "managed", path, false);
		if (!L->failed && !k->kid)
			fail(L, path, "a key bundle needs \"key.kid\"", NULL);
		if (L->failed)
			return;
		idmap_put(&e->key_ix, k->kid, e->nkeys);
		e->nkeys++;
	}
}

static struct tenant *tenant_get(struct estate *e, const char *tid)
{
	size_t ix;

	if (idmap_get(&e->tenant_ix, tid, &ix))
		return &e->tenants[ix];
	e->tenants = kv_realloc(e->tenants, (e->ntenants + 1) * sizeof(*e->tenants));
	memset(&e->tenants[e->ntenants], 0, sizeof(e->tenants[0]));
	e->tenants[e->ntenants].tenant_id = kv_strdup(tid);
	idmap_put(&e->tenant_ix, tid, e->ntenants);
	return &e->tenants[e->ntenants++];
}

static void load_tenants(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[200];
		const char *tid, *ut, *st, *oid = NULL;
		const cJSON *bms;
		struct tenant *t;

		if (!list_item(L, it, "tenants", i++, path, sizeof(path)))
			return;
		tid = req_str(L, it, "tenantId", path);
		ut = str_at(L, it, "callerUserType", path);
		bms = obj_at(L, it, "backupManagementService", path);
		snprintf(p2, sizeof(p2), "%s.backupManagementService", path);
		st = bms ? str_at(L, bms, "status", p2) : NULL;
		if (bms)
			oid = str_at(L, bms, "objectId", p2);
		if (L->failed)
			return;
		if (st && !kv_streq_ci(st, "found") && !kv_streq_ci(st, "absent") && !kv_streq_ci(st, "unknown")) {
			char b[64];

			kv_err_set(L->err, "%s: %s.status: expected \"found\", \"absent\" or \"unknown\", got \"%s\"",
			           L->name, p2, printable(st, b, sizeof(b)));
			L->failed = true;
			return;
		}
		if (kv_streq_ci(st, "found") && kv_empty(oid)) {
			kv_err_set(L->err, "%s: %s.objectId: status \"found\" needs the object ID", L->name, p2);
			L->failed = true;
			return;
		}
		t = tenant_get(e, tid);
		t->caller_type = parse_user_type(ut);
		t->backup_sp = kv_streq_ci(st, "found") ? SP_FOUND : kv_streq_ci(st, "absent") ? SP_ABSENT : SP_UNKNOWN;
		if (t->backup_sp == SP_FOUND) {
			free(t->backup_sp_object_id);
			t->backup_sp_object_id = kv_strdup(oid);
		}
	}
}

static void load_errors(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->errors = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->errors));
	cJSON_ArrayForEach(it, arr) {
		char path[128];
		struct estate_error *r;
		const cJSON *st;

		if (!list_item(L, it, "errors", i++, path, sizeof(path)))
			return;
		r = &e->errors[e->nerrors];
		r->scope = req_str(L, it, "scope", path);
		r->code = str_at(L, it, "code", path);
		r->message = str_at(L, it, "message", path);
		st = cJSON_GetObjectItemCaseSensitive(it, "status");
		if (st && !cJSON_IsNull(st) && !cJSON_IsNumber(st)) {
			char p2[160];

			snprintf(p2, sizeof(p2), "%s.status", path);
			fail(L, p2, "a number", st);
		}
		r->status = cJSON_IsNumber(st) ? st->valueint : 0;
		if (L->failed)
			return;
		e->nerrors++;
	}
}

static void load_caller(struct loader *L, struct estate *e, const cJSON *c)
{
	e->caller.present = true;
	e->caller.object_id = str_at(L, c, "objectId", "$.caller");
	e->caller.tenant_id = str_at(L, c, "tenantId", "$.caller");
	e->caller.type = str_at(L, c, "type", "$.caller");
	e->caller.user_type = str_at(L, c, "userType", "$.caller");
	e->caller.home_tenant_id = str_at(L, c, "homeTenantId", "$.caller");
	e->caller.display_name = str_at(L, c, "displayName", "$.caller");
}

/* --backup-sp-object-id TENANT=OID overrides what the snapshot says. */
static bool apply_overrides(struct estate *e, const struct estate_opts *o, struct kv_err *err)
{
	for (size_t i = 0; o && i < o->nsp_overrides; i++) {
		const char *s = o->sp_overrides[i], *eq = strchr(s, '=');
		char *tid;
		struct tenant *t;

		if (!eq || eq == s || eq[1] == '\0') {
			kv_err_set(err, "--backup-sp-object-id '%s': expected TENANT=OBJECT_ID", s);
			return false;
		}
		tid = kv_strndup(s, (size_t)(eq - s));
		t = tenant_get(e, tid);
		free(tid);
		t->backup_sp = SP_FOUND;
		free(t->backup_sp_object_id);
		t->backup_sp_object_id = kv_strdup(eq + 1);
	}
	return true;
}

/* True when the text ends inside a string or with brackets still open: a cut-off file. */
static bool looks_truncated(const char *data, size_t len)
{
	size_t depth = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		char c = data[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		}
	}
	return in_str || depth > 0;
}

/* 1-based line and column of a byte offset, for JSON syntax errors. */
static void line_col(const char *data, size_t off, size_t *line, size_t *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (data[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

struct estate *estate_parse(const char *data, size_t len, const char *name,
                            const struct estate_opts *opts, struct kv_err *err)
{
	struct estate *e = kv_calloc(1, sizeof(*e));
	struct loader L = {name, err, false};
	const char *end = NULL;
	const cJSON *kind, *ver, *a, *c;
	size_t ws = 0;
	char buf[128];

	e->path = kv_strdup(name);
	while (ws < len && json_is_space(data[ws]))
		ws++;
	if (ws == len) {
		kv_err_set(err, "%s: the file is empty: expected a kvaudit.estate JSON document", name);
		goto fail;
	}
	e->doc = cJSON_ParseWithLengthOpts(data, len, &end, false);
	if (!e->doc) {
		size_t off = end && end >= data ? (size_t)(end - data) : 0, line, col;

		if (off > len)
			off = len;
		line_col(data, off, &line, &col);
		if (looks_truncated(data, len))
			kv_err_set(err, "%s: invalid JSON: unexpected end of data at byte %zu (line %zu): the file looks truncated",
			           name, off, line);
		else
			kv_err_set(err, "%s: invalid JSON at byte %zu (line %zu, column %zu)", name, off, line, col);
		goto fail;
	}
	if (end) {
		const char *p = end;

		while ((size_t)(p - data) < len && json_is_space(*p))
			p++;
		if ((size_t)(p - data) < len) {
			kv_err_set(err, "%s: invalid JSON: unexpected data after the document at byte %zu", name,
			           (size_t)(p - data));
			goto fail;
		}
	}
	if (!cJSON_IsObject(e->doc)) {
		fail(&L, "$", "an object", e->doc);
		goto fail;
	}
	kind = cJSON_GetObjectItemCaseSensitive(e->doc, "kind");
	if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "kvaudit.estate") != 0) {
		if (cJSON_IsString(kind))
			kv_err_set(err, "%s: $.kind: expected \"kvaudit.estate\", got \"%s\": not a kvaudit estate snapshot",
			           name, printable(kind->valuestring, buf, sizeof(buf)));
		else
			kv_err_set(err, "%s: $.kind: expected \"kvaudit.estate\", got %s: not a kvaudit estate snapshot",
			           name, json_type_name(kind));
		goto fail;
	}
	ver = cJSON_GetObjectItemCaseSensitive(e->doc, "version");
	if (!cJSON_IsNumber(ver) || ver->valuedouble != 1.0) {
		if (cJSON_IsNumber(ver))
			kv_err_set(err, "%s: $.version: unsupported estate version %g (this kvaudit reads version 1)",
			           name, ver->valuedouble);
		else
			kv_err_set(err, "%s: $.version: expected 1, got %s", name, json_type_name(ver));
		goto fail;
	}
	e->collected_at = str_at(&L, e->doc, "collectedAt", "$");
	e->cloud = str_at(&L, e->doc, "cloud", "$");
	if ((c = obj_at(&L, e->doc, "caller", "$")))
		load_caller(&L, e, c);

	/* VMs first: extensions and disks join to them. */
	if ((a = top_list(&L, e->doc, "virtualMachines", &e->present.vms)))
		load_vms(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "vmExtensions", &(bool){false})))
		join_vm_extensions(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "disks", &e->present.disks)))
		load_disks(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "vaults", &e->present.vaults)))
		load_vaults(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "subscriptions", &e->present.subscriptions)))
		load_subscriptions(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "roleAssignments", &e->present.role_assignments)))
		load_role_assignments(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "roleDefinitions", &e->present.role_definitions)))
		load_role_definitions(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "recoveryServicesVaults", &e->present.rs_vaults)))
		load_rs_vaults(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "backupProtectedItems", &e->present.protected_items)))
		load_protected_items(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "keys", &e->present.keys)))
		load_keys(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "tenants", &e->present.tenants)))
		load_tenants(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "errors", &(bool){false})))
		load_errors(&L, e, a);
	e->present.caller = e->caller.present;
	if (L.failed)
		goto fail;
	if (!apply_overrides(e, opts, err))
		goto fail;
	for (size_t i = 0; i < e->nvms; i++)
		ade_detect(e, &e->vms[i]);
	return e;
fail:
	estate_free(e);
	return NULL;
}

struct estate *estate_load(const char *path, const struct estate_opts *opts, struct kv_err *err)
{
	size_t len = 0;
	char *data = kv_read_file(path, ESTATE_MAX_BYTES, &len, err);
	struct estate *e;

	if (!data)
		return NULL;
	e = estate_parse(data, len, path, opts, err);
	free(data);
	return e;
}

void estate_free(struct estate *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->nvms; i++) {
		ade_info_release(&e->vms[i].ade);
		free(e->vms[i].extensions);
		free(e->vms[i].disks);
		free(e->vms[i].agent_version);
	}
	free(e->vms);
	free(e->disks);
	for (size_t i = 0; i < e->nvaults; i++)
		free(e->vaults[i].policies);
	free(e->vaults);
	free(e->subs);
	free(e->ras);
	for (size_t i = 0; i < e->nrds; i++) {
		cJSON_Delete(e->rds[i].data_actions);
		cJSON_Delete(e->rds[i].not_data_actions);
	}
	free(e->rds);
	free(e->rsvs);
	free(e->items);
	free(e->keys);
	for (size_t i = 0; i < e->ntenants; i++) {
		free(e->tenants[i].tenant_id);
		free(e->tenants[i].backup_sp_object_id);
	}
	free(e->tenants);
	free(e->errors);
	idmap_release(&e->vm_ix);
	idmap_release(&e->disk_ix);
	idmap_release(&e->vault_ix);
	idmap_release(&e->vault_host_ix);
	idmap_release(&e->sub_ix);
	idmap_release(&e->rsv_ix);
	idmap_release(&e->key_ix);
	idmap_release(&e->tenant_ix);
	idmap_release(&e->rd_ix);
	cJSON_Delete(e->doc);
	free(e->path);
	free(e);
}

#define LOOKUP(fn, type, arr, ix)                                      \
	type *fn(const struct estate *e, const char *id)               \
	{                                                              \
		size_t i;                                              \
		return idmap_get(&e->ix, id, &i) ? &e->arr[i] : NULL;  \
	}

LOOKUP(estate_vm, struct vm, vms, vm_ix)
LOOKUP(estate_vault, struct vault, vaults, vault_ix)
LOOKUP(estate_disk, struct disk, disks, disk_ix)
LOOKUP(estate_subscription, struct subscription, subs, sub_ix)
LOOKUP(estate_rs_vault, struct rs_vault, rsvs, rsv_ix)
LOOKUP(estate_key, struct key_bundle, keys, key_ix)
LOOKUP(estate_tenant, struct tenant, tenants, tenant_ix)

struct role_definition *estate_role_definition(const struct estate *e, const char *id)
{
	size_t i;

	return idmap_get(&e->rd_ix, guid_of(id), &i) ? &e->rds[i] : NULL;
}

struct vault *estate_vault_by_url(const struct estate *e, const char *url)
{
	char host[256];
	size_t i;

	if (!url_host(url, host, sizeof(host)))
		return NULL;
	return idmap_get(&e->vault_host_ix, host, &i) ? &e->vaults[i] : NULL;
}

/*
 * A failed list ("/subscriptions/s[/resourceGroups/rg]/providers/<ns>/<type>")
 * explains every resource of that type below its scope.
 */
static bool list_scope_contains(const char *scope, const char *id)
{
	const char *prov = NULL, *p = scope, *type, *slash;
	char parent[1024], needle[300];
	size_t n;

	while ((p = strchr(p, '/')) != NULL) {
		if (kv_startswith_ci(p, "/providers/"))
			prov = p;
		p++;
	}
	if (!prov)
		return false;
	type = prov + strlen("/providers/");
	slash = strchr(type, '/');
	/* Exactly <namespace>/<type>: a collection, not a resource. */
	if (!slash || slash == type || slash[1] == '\0' || strchr(slash + 1, '/'))
		return false;
	n = (size_t)(prov - scope);
	if (n == 0 || n >= sizeof(parent) || strlen(prov) + 2 > sizeof(needle))
		return false;
	memcpy(parent, scope, n);
	parent[n] = '\0';
	snprintf(needle, sizeof(needle), "%s/", prov);
	if (!armid_scope_contains(parent, id))
		return false;
	for (p = id + n; *p; p++)
		if (kv_startswith_ci(p, needle))
			return true;
	return false;
}

const struct estate_error *estate_error_for(const struct estate *e, const char *id)
{
	for (size_t i = 0; i < e->nerrors; i++) {
		const char *scope = e->errors[i].scope;
		char path[1024];
		size_t n;

		if (!scope)
			continue;
		/* A scope may be a list URL: compare its path without host and query. */
		if (kv_startswith_ci(scope, "https://")) {
			const char *p = strchr(scope + 8, '/');

			if (!p)
				continue;
			n = strcspn(p, "?");
			if (n >= sizeof(path))
				continue;
			memcpy(path, p, n);
			path[n] = '\0';
			scope = path;
		}
		if (armid_scope_contains(scope, id) || list_scope_contains(scope, id))
			return &e->errors[i];
	}
	return NULL;
}

const struct estate_error *estate_error_for_url(const struct estate *e, const char *url)
{
	size_t lu;

	if (!url || !kv_startswith_ci(url, "https://"))
		return NULL;
	lu = strcspn(url, "?#");
	while (lu > 0 && url[lu - 1] == '/')
		lu--;
	for (size_t i = 0; i < e->nerrors; i++) {
		const char *scope = e->errors[i].scope;
		size_t ls;

		if (!scope || !kv_startswith_ci(scope, "https://"))
			continue;
		ls = strcspn(scope, "?#");
		while (ls > 0 && scope[ls - 1] == '/')
			ls--;
		if (ls <= lu && strncasecmp(scope, url, ls) == 0 && (ls == lu || url[ls] == '/'))
			return &e->errors[i];
	}
	return NULL;
}
