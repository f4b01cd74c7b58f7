/*
 * test_estate.c - the snapshot loader (audit/estate/estate.c): every real
 * Azure response in shared/fixtures/azure wrapped into a snapshot and read
 * back as typed values, case-insensitive lookups, estate_error_for, the
 * --backup-sp-object-id overrides, the tenants list, present flags and the
 * messages for bad input (each names the file and the JSON path or offset).
 *
 * Tests whose name starts with "bug_" document bugs in the code under test
 * that were reported to the lead; they fail until the bug is fixed.
 *
 * JSON written inline uses single quotes (none of it needs an apostrophe);
 * j() turns them into double quotes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/estate/estate.h"
#include "audit/util/armid.h"

#ifndef KV_FIXTURES
#define KV_FIXTURES "../shared/fixtures/azure"
#endif
#ifndef KV_SOURCE_DIR
#define KV_SOURCE_DIR "."
#endif
#define DATA_DIR KV_SOURCE_DIR "/tests/unit/data/estate"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define FX_CLI_VAULT   "cli-2022-keyvault-get-accessPolicies-all-enabledForDiskEncryption.json"
#define FX_CLI_EXT     "cli-2022-vm-extension-AzureDiskEncryption-2.2-get-expand-instanceView.json"
#define FX_GET_VAULT   "keyvault-2024-11-01-getVault.json"
#define FX_CREATE      "keyvault-2026-02-01-createVault.json"
#define FX_AP_ADD      "keyvault-2024-11-01-updateAccessPoliciesAdd.json"
#define FX_LIST_VAULTS "keyvault-2023-07-01-listVaultByResourceGroup-nextLink.json"
#define FX_DISK_GET    "disk-2024-03-02-Disk_Get-ade-encryptionSettingsCollection.json"
#define FX_DISK_LIST   "disk-2024-03-02-Disk_ListBySubscription-mixed-ade-nextLink.json"
#define FX_VM_EAH      "compute-2024-07-01-VirtualMachine_Create_WithEncryptionAtHost-not-ADE.json"
#define FX_VM_IV       "compute-2024-07-01-VirtualMachine_Get_InstanceView-no-ade.json"
#define FX_ITEMS       "recoveryservicesbackup-2024-10-01-BackupProtectedItems_List.json"
#define FX_RSVS        "recoveryservices-2025-02-01-ListBySubscriptionIds.json"

#define ZERO_SUB "00000000-0000-0000-0000-000000000000"
#define CLI_RG   "cli_test_vm_encryption000001"
#define CLI_VAULT_ID "/subscriptions/" ZERO_SUB "/resourceGroups/" CLI_RG "/providers/Microsoft.KeyVault/vaults/vault000002"
#define CLI_VM_ID    "/subscriptions/" ZERO_SUB "/resourceGroups/" CLI_RG "/providers/Microsoft.Compute/virtualMachines/vm1"
#define CLI_EXT_ID   CLI_VM_ID "/extensions/AzureDiskEncryption"
#define SAMPLE_VAULT_ID "/subscriptions/" ZERO_SUB "/resourceGroups/sample-resource-group/providers/Microsoft.KeyVault/vaults/sample-vault"

#define HEAD "{'kind':'kvaudit.estate','version':1"

/* ---------- helpers ---------- */

/* A copy of s with ' turned into "; owned by the caller. */
static char *j(const char *s)
{
	char *p = kv_strdup(s);

	for (char *q = p; *q; q++)
		if (*q == '\'')
			*q = '"';
	return p;
}

/* A copy of s upper-cased (ASCII); owned by the caller. */
static char *upper(const char *s)
{
	char *p = kv_strdup(s);

	for (char *q = p; *q; q++)
		if (*q >= 'a' && *q <= 'z')
			*q = (char)(*q - 'a' + 'A');
	return p;
}

static char *fixture_text(const char *name, size_t *len)
{
	struct kv_err err = {{0}};
	char *path = kv_asprintf("%s/%s", KV_FIXTURES, name);
	char *data = kv_read_file(path, 1 << 24, len, &err);

	if (!data)
		fail_msg("cannot read fixture: %s", err.msg);
	free(path);
	return data;
}

static cJSON *fixture_json(const char *name)
{
	char *text = fixture_text(name, NULL);
	cJSON *doc = cJSON_Parse(text);

	if (!doc)
		fail_msg("fixture %s does not parse", name);
	free(text);
	return doc;
}

/* responses[status].body of a spec example, detached and owned by the caller. */
static cJSON *example_body(const char *name, const char *status)
{
	cJSON *doc = fixture_json(name);
	cJSON *resp = cJSON_GetObjectItemCaseSensitive(doc, "responses");
	cJSON *st = cJSON_GetObjectItemCaseSensitive(resp, status);
	cJSON *body;

	if (!cJSON_GetObjectItemCaseSensitive(st, "body"))
		fail_msg("fixture %s has no responses[\"%s\"].body", name, status);
	body = cJSON_DetachItemFromObjectCaseSensitive(st, "body");
	cJSON_Delete(doc);
	return body;
}

/* The value[] list of a list-response body; owned by the caller. */
static cJSON *example_value(const char *name)
{
	cJSON *body = example_body(name, "200");
	cJSON *value = cJSON_DetachItemFromObjectCaseSensitive(body, "value");

	if (!cJSON_IsArray(value))
		fail_msg("fixture %s has no value[]", name);
	cJSON_Delete(body);
	return value;
}

/* {"kind":"kvaudit.estate","version":1}: add lists to it. */
static cJSON *new_snapshot(void)
{
	cJSON *s = cJSON_CreateObject();

	cJSON_AddStringToObject(s, "kind", "kvaudit.estate");
	cJSON_AddNumberToObject(s, "version", 1);
	return s;
}

/* Adds item (ownership taken) to the list key of snap, creating it. */
static void add_to_list(cJSON *snap, const char *key, cJSON *item)
{
	cJSON *a = cJSON_GetObjectItemCaseSensitive(snap, key);

	if (!a)
		a = cJSON_AddArrayToObject(snap, key);
	cJSON_AddItemToArray(a, item);
}

static struct estate *parse_with(const char *text, size_t len, const struct estate_opts *opts)
{
	struct kv_err err = {{0}};
	struct estate *e = estate_parse(text, len, "mem.json", opts, &err);

	if (!e)
		fail_msg("estate_parse failed: %s", err.msg);
	return e;
}

/* Parses the snapshot (deleting it); fails the test on error. */
static struct estate *load_json(cJSON *snap, const struct estate_opts *opts)
{
	char *text = cJSON_PrintUnformatted(snap);
	struct estate *e = parse_with(text, strlen(text), opts);

	cJSON_free(text);
	cJSON_Delete(snap);
	return e;
}

/* Parses single-quoted JSON text; fails the test on error. */
static struct estate *load_text(const char *sq)
{
	char *text = j(sq);
	struct estate *e = parse_with(text, strlen(text), NULL);

	free(text);
	return e;
}

/* Wraps raw bytes (a whole recorded body) verbatim into list `key`, keeping CRLF and compact JSON as recorded. */
static struct estate *load_raw_in(const char *key, const char *raw, const char *extra)
{
	char *text = kv_asprintf("{\"kind\":\"kvaudit.estate\",\"version\":1,\"%s\":[%s]%s}", key, raw, extra ? extra : "");
	struct estate *e = parse_with(text, strlen(text), NULL);

	free(text);
	return e;
}

/* The message must be one line. */
static void assert_one_line(const char *msg)
{
	if (strchr(msg, '\n') || strchr(msg, '\r'))
		fail_msg("message is not one line: %s", msg);
}

static void assert_contains(const char *msg, const char *needle)
{
	if (!strstr(msg, needle))
		fail_msg("message \"%s\" lacks \"%s\"", msg, needle);
}

/*
 * Parses text (exact bytes) and checks that it fails with a one-line message
 * that starts with the file name and holds every needle.  Returns false and
 * appends what was wrong to problems (so a caller can release its memory
 * before it fails the test).
 */
static bool check_parse_error(const char *text, size_t len, const struct estate_opts *opts,
                              const char *const *needles, size_t nneedles, struct kv_buf *problems)
{
	struct kv_err err = {{0}};
	struct estate *e = estate_parse(text, len, "mem.json", opts, &err);
	bool ok = true;

	if (e) {
		estate_free(e);
		kv_buf_addf(problems, "[accepted: %.300s] ", text);
		return false;
	}
	if (strchr(err.msg, '\n') || strchr(err.msg, '\r') || strchr(err.msg, '\x1b'))
		ok = false;
	if (strncmp(err.msg, "mem.json: ", 10) != 0 && !(opts && opts->nsp_overrides))
		ok = false;
	for (size_t i = 0; i < nneedles && needles[i]; i++)
		if (!strstr(err.msg, needles[i]))
			ok = false;
	if (!ok) {
		/* control characters shown escaped, so a failure report is itself one clean line */
		kv_buf_adds(problems, "[message \"");
		for (const char *c = err.msg; *c; c++) {
			if ((unsigned char)*c < 0x20)
				kv_buf_addf(problems, "\\x%02x", (unsigned)(unsigned char)*c);
			else
				kv_buf_addc(problems, *c);
		}
		kv_buf_addf(problems, "\" for %.200s] ", text);
	}
	return ok;
}

/* check_parse_error that fails the test at once (nothing of the caller's to release). */
static void expect_parse_error_n(const char *text, size_t len, const struct estate_opts *opts,
                                 const char *const *needles, size_t nneedles)
{
	struct kv_buf problems;

	kv_buf_init(&problems, 0);
	if (!check_parse_error(text, len, opts, needles, nneedles, &problems)) {
		char *msg = kv_buf_detach(&problems);

		fail_msg("%s", msg);   /* leaks msg, but only on failure */
	}
}

/* Fails the test with what problems holds, after the caller released everything else. */
static void fail_on_problems(struct kv_buf *problems)
{
	if (problems->len) {
		static char msg[4096];

		snprintf(msg, sizeof(msg), "%s", problems->data);
		kv_buf_release(problems);
		fail_msg("%s", msg);
	}
	kv_buf_release(problems);
}

/*
 * The byte offset a JSON syntax message reports ("... at byte N ..."), or
 * SIZE_MAX.  cJSON may point one byte past the offending character (for a
 * missing member name it reports the byte after it), so callers accept N or N+1.
 */
static size_t reported_byte(const char *msg)
{
	const char *p = strstr(msg, "byte ");

	return p ? (size_t)strtoull(p + 5, NULL, 10) : SIZE_MAX;
}

static const char *str_item(const cJSON *arr, int i)
{
	const cJSON *it = cJSON_GetArrayItem(arr, i);

	return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* The strings of a cJSON array joined with ',' into out. */
static const char *joined(const cJSON *arr, char *out, size_t n)
{
	const cJSON *it;
	size_t at = 0;

	out[0] = '\0';
	if (!arr)
		return "(null)";
	cJSON_ArrayForEach(it, arr) {
		int w = snprintf(out + at, n - at, "%s%s", at ? "," : "", cJSON_IsString(it) ? it->valuestring : "?");

		if (w < 0 || (size_t)w >= n - at)
			break;
		at += (size_t)w;
	}
	return out;
}

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/kvaudit-test-estate-XXXXXX";
	char *d = mkdtemp(tmpl);

	if (!d)
		fail_msg("mkdtemp: %s", strerror(errno));
	return kv_strdup(d);
}

static char *write_file(const char *dir, const char *name, const void *data, size_t n)
{
	char *path = kv_asprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "wb");

	if (!f)
		fail_msg("cannot create %s: %s", path, strerror(errno));
	if (n && fwrite(data, 1, n, f) != n)
		fail_msg("cannot write %s", path);
	fclose(f);
	return path;
}

/* Loads path with estate_load and expects NULL with path and every needle in the message. */
static void expect_load_error(const char *path, const char *const *needles, size_t nneedles)
{
	struct kv_err err = {{0}};
	struct estate *e = estate_load(path, NULL, &err);

	if (e) {
		estate_free(e);
		fail_msg("expected an error loading %s", path);
	}
	assert_one_line(err.msg);
	assert_contains(err.msg, path);
	for (size_t i = 0; i < nneedles; i++)
		assert_contains(err.msg, needles[i]);
}

/* ---------- fixtures: vaults ---------- */

static void cli_2022_vault_loads_with_absent_flags_at_their_defaults(void **state)
{
	char *raw = fixture_text(FX_CLI_VAULT, NULL);
	struct estate *e = load_raw_in("vaults", raw, NULL);
	struct vault *v;
	struct access_policy *ap;
	char *up;

	(void)state;
	assert_true(e->present.vaults);
	assert_false(e->present.vms);
	assert_int_equal(e->nvaults, 1);
	v = &e->vaults[0];
	assert_string_equal(v->id, CLI_VAULT_ID);
	assert_string_equal(v->name, "vault000002");
	assert_string_equal(v->location, "westus");
	assert_string_equal(v->tenant_id, "54826b22-38d6-4fb2-bad9-b7b93a3e9c5a");
	assert_string_equal(v->uri, "https://vault000002.vault.azure.net/");
	assert_string_equal(v->sub, ZERO_SUB);
	assert_string_equal(v->rg, CLI_RG);
	assert_true(v->enabled_for_disk_encryption);
	assert_false(v->rbac);               /* enableRbacAuthorization absent */
	assert_false(v->purge_protection);   /* enablePurgeProtection absent */
	assert_true(v->soft_delete);
	assert_int_equal(v->soft_delete_days, 7);
	assert_string_equal(v->public_network_access, "Enabled");
	assert_null(v->default_action);
	assert_null(v->bypass);
	assert_non_null(v->raw);
	assert_int_equal(v->npolicies, 1);
	ap = &v->policies[0];
	assert_string_equal(ap->tenant_id, "54826b22-38d6-4fb2-bad9-b7b93a3e9c5a");
	assert_string_equal(ap->object_id, "2b7fa1bd-b817-45cb-9068-e416ce1125fa");
	assert_null(ap->application_id);
	{
		const cJSON *lists[] = {ap->keys, ap->secrets, ap->certificates, ap->storage};

		for (size_t i = 0; i < ARRAY_LEN(lists); i++) {
			assert_int_equal(cJSON_GetArraySize(lists[i]), 1);
			assert_string_equal(str_item(lists[i], 0), "all");
		}
	}
	up = upper(CLI_VAULT_ID);
	assert_ptr_equal(estate_vault(e, up), v);
	free(up);
	estate_free(e);
	free(raw);
}

static void get_vault_example_keeps_permission_arrays_as_returned(void **state)
{
	cJSON *snap = new_snapshot();
	struct estate *e;
	struct vault *v;
	struct access_policy *ap;
	char buf[1024];

	(void)state;
	add_to_list(snap, "vaults", example_body(FX_GET_VAULT, "200"));
	e = load_json(snap, NULL);
	assert_int_equal(e->nvaults, 1);
	v = &e->vaults[0];
	assert_string_equal(v->id, SAMPLE_VAULT_ID);
	assert_string_equal(v->name, "sample-vault");
	assert_string_equal(v->uri, "https://sample-vault.vault.azure.net");
	assert_string_equal(v->tenant_id, ZERO_SUB);
	assert_string_equal(v->rg, "sample-resource-group");
	assert_true(v->enabled_for_disk_encryption);
	assert_false(v->rbac);
	assert_true(v->soft_delete);          /* absent: service default true */
	assert_int_equal(v->soft_delete_days, 0);
	assert_false(v->purge_protection);
	assert_int_equal(v->npolicies, 1);
	ap = &v->policies[0];
	assert_string_equal(ap->object_id, ZERO_SUB);
	assert_string_equal(joined(ap->keys, buf, sizeof(buf)),
	                    "encrypt,decrypt,wrapKey,unwrapKey,sign,verify,get,list,create,update,import,delete,backup,restore,recover,purge");
	assert_string_equal(joined(ap->secrets, buf, sizeof(buf)), "get,list,set,delete,backup,restore,recover,purge");
	assert_string_equal(joined(ap->certificates, buf, sizeof(buf)),
	                    "get,list,delete,create,import,update,managecontacts,getissuers,listissuers,setissuers,deleteissuers,manageissuers,recover,purge");
	assert_null(ap->storage);
	estate_free(e);
}

static void create_vault_example_reads_network_acls_as_given(void **state)
{
	struct {
		const char *status, *default_action, *bypass;
	} cases[] = {
		{"200", "Deny", "AzureServices"},
		{"201", NULL, NULL},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		cJSON *snap = new_snapshot();
		struct estate *e;
		struct vault *v;

		add_to_list(snap, "vaults", example_body(FX_CREATE, cases[i].status));
		e = load_json(snap, NULL);
		v = &e->vaults[0];
		assert_string_equal(v->id, SAMPLE_VAULT_ID);
		if (cases[i].default_action) {
			assert_string_equal(v->default_action, cases[i].default_action);
			assert_string_equal(v->bypass, cases[i].bypass);
		} else {
			assert_null(v->default_action);
			assert_null(v->bypass);
		}
		assert_string_equal(v->public_network_access, "Enabled");
		assert_string_equal(v->uri, "https://sample-vault.vault.azure.net");
		assert_int_equal(v->npolicies, 1);
		assert_int_equal(cJSON_GetArraySize(v->policies[0].keys), 16);
		assert_int_equal(cJSON_GetArraySize(v->policies[0].secrets), 8);
		assert_int_equal(cJSON_GetArraySize(v->policies[0].certificates), 14);
		estate_free(e);
	}
}

static void create_vault_request_body_without_id_is_rejected_with_its_path(void **state)
{
	cJSON *doc = fixture_json(FX_CREATE);
	cJSON *params = cJSON_GetObjectItemCaseSensitive(doc, "parameters");
	cJSON *snap = new_snapshot();
	char *text;
	static const char *const needles[] = {"$.vaults[0].id", "missing"};

	(void)state;
	add_to_list(snap, "vaults", cJSON_DetachItemFromObjectCaseSensitive(params, "parameters"));
	text = cJSON_PrintUnformatted(snap);
	expect_parse_error_n(text, strlen(text), NULL, needles, ARRAY_LEN(needles));
	cJSON_free(text);
	cJSON_Delete(snap);
	cJSON_Delete(doc);
}

static void access_policies_add_response_parses_as_access_policy_entries(void **state)
{
	static const char *const statuses[] = {"200", "201"};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(statuses); i++) {
		cJSON *body = example_body(FX_AP_ADD, statuses[i]);
		cJSON *vault = cJSON_CreateObject();
		cJSON *snap = new_snapshot();
		struct estate *e;
		struct access_policy *ap;

		cJSON_AddStringToObject(vault, "id", "/subscriptions/" ZERO_SUB
		                        "/resourceGroups/sample-group/providers/Microsoft.KeyVault/vaults/sample-vault");
		cJSON_AddItemToObject(vault, "properties", cJSON_DetachItemFromObjectCaseSensitive(body, "properties"));
		cJSON_Delete(body);
		add_to_list(snap, "vaults", vault);
		e = load_json(snap, NULL);
		assert_int_equal(e->vaults[0].npolicies, 1);
		ap = &e->vaults[0].policies[0];
		assert_string_equal(ap->tenant_id, ZERO_SUB);
		assert_string_equal(ap->object_id, ZERO_SUB);
		assert_int_equal(cJSON_GetArraySize(ap->keys), 1);
		assert_string_equal(str_item(ap->keys, 0), "encrypt");
		assert_int_equal(cJSON_GetArraySize(ap->secrets), 1);
		assert_string_equal(str_item(ap->secrets, 0), "get");
		assert_string_equal(str_item(ap->certificates, 0), "get");
		assert_null(ap->storage);
		assert_null(e->vaults[0].uri);
		estate_free(e);
	}
}

static void access_policies_add_response_body_itself_loads_as_a_vault(void **state)
{
	cJSON *snap = new_snapshot();
	struct estate *e;

	(void)state;
	/* the response object (id ending in /accessPolicies/) read as-is must not confuse the loader */
	add_to_list(snap, "vaults", example_body(FX_AP_ADD, "200"));
	e = load_json(snap, NULL);
	assert_int_equal(e->nvaults, 1);
	assert_int_equal(e->vaults[0].npolicies, 1);
	assert_null(e->vaults[0].name);
	assert_string_equal(e->vaults[0].rg, "sample-group");
	estate_free(e);
}

static void list_vaults_example_value_loads_as_the_vaults_list(void **state)
{
	cJSON *snap = new_snapshot();
	struct estate *e;
	struct vault *v;

	(void)state;
	cJSON_AddItemToObject(snap, "vaults", example_value(FX_LIST_VAULTS));
	e = load_json(snap, NULL);
	assert_int_equal(e->nvaults, 1);
	v = &e->vaults[0];
	assert_string_equal(v->name, "sample-vault");
	assert_string_equal(v->rg, "sample-group");
	assert_string_equal(v->uri, "https://sample-vault.vault.azure.net/");
	assert_true(v->soft_delete);
	assert_int_equal(v->npolicies, 1);
	assert_null(v->policies[0].storage);
	assert_int_equal(cJSON_GetArraySize(v->policies[0].keys), 16);
	assert_ptr_equal(estate_vault_by_url(e, "https://SAMPLE-VAULT.vault.azure.net/secrets/s/1"), v);
	estate_free(e);
}

/* ---------- fixtures: disks ---------- */

static void disk_get_example_loads_id_and_managed_by(void **state)
{
	cJSON *snap = new_snapshot();
	cJSON *vm = cJSON_CreateObject();
	struct estate *e;
	struct disk *d;
	struct vm *v;
	const char *vm_id = "/subscriptions/123caaa-123v-v211-a49f-f88ccac5bf88/resourceGroups/ResourceGroupName"
	                    "/providers/Microsoft.Compute/virtualMachines/TestVM414689371c88843d65ec";
	char *vm_id_up = upper(vm_id);

	(void)state;
	add_to_list(snap, "disks", example_body(FX_DISK_GET, "200"));
	/* the VM that manages it, listed with its ID in another casing */
	cJSON_AddStringToObject(vm, "id", vm_id_up);
	add_to_list(snap, "virtualMachines", vm);
	e = load_json(snap, NULL);
	assert_true(e->present.disks);
	assert_int_equal(e->ndisks, 1);
	d = &e->disks[0];
	assert_string_equal(d->id, "/subscriptions/{subscriptionId}/resourceGroups/myResourceGroup/providers/Microsoft.Compute/disks/myManagedDisk");
	assert_string_equal(d->name, "myManagedDisk");
	assert_string_equal(d->managed_by, vm_id);
	assert_string_equal(d->location, "westus");
	assert_non_null(d->raw);
	v = estate_vm(e, vm_id);
	assert_non_null(v);
	assert_int_equal(v->ndisks, 1);
	assert_int_equal(v->disks[0], 0);
	free(vm_id_up);
	estate_free(e);
}

static void disk_list_example_loads_all_three_disks_and_finds_them_in_any_casing(void **state)
{
	cJSON *snap = new_snapshot();
	struct estate *e;
	static const char *const names[] = {"myManagedDisk1", "myManagedDisk2", "myManagedDisk3"};
	const cJSON *img;

	(void)state;
	cJSON_AddItemToObject(snap, "disks", example_value(FX_DISK_LIST));
	e = load_json(snap, NULL);
	assert_int_equal(e->ndisks, 3);
	for (size_t i = 0; i < 3; i++) {
		char id[256], *up;

		assert_string_equal(e->disks[i].name, names[i]);
		assert_null(e->disks[i].managed_by);
		snprintf(id, sizeof(id), "/subscriptions/{subscriptionId}/resourceGroups/myResourceGroup/providers/Microsoft.Compute/disks/%s", names[i]);
		assert_string_equal(e->disks[i].id, id);
		assert_ptr_equal(estate_disk(e, id), &e->disks[i]);
		up = upper(id);
		assert_ptr_equal(estate_disk(e, up), &e->disks[i]);
		free(up);
		snprintf(id, sizeof(id), "/Subscriptions/{subscriptionId}/ResourceGroups/myresourcegroup/Providers/Microsoft.Compute/Disks/%s/", names[i]);
		assert_ptr_equal(estate_disk(e, id), &e->disks[i]);
	}
	/* the third disk is the one that carries the /Subscriptions/.../Providers/ cased image ID */
	img = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e->disks[2].raw, "properties"), "creationData"),
			"imageReference"),
		"id");
	assert_true(cJSON_IsString(img));
	assert_true(kv_startswith_ci(img->valuestring, "/Subscriptions/"));
	assert_non_null(strstr(img->valuestring, "/Providers/"));
	assert_null(estate_disk(e, "/subscriptions/{subscriptionId}/resourceGroups/myResourceGroup/providers/Microsoft.Compute/disks/myManagedDisk"));
	assert_null(estate_disk(e, NULL));
	estate_free(e);
}

/* ---------- fixtures: the ADE extension and VMs ---------- */

static const char *const CLI_VM = "{'id':'" CLI_VM_ID "','name':'vm1','location':'westus'}";

static void cli_2022_extension_listed_apart_joins_its_vm(void **state)
{
	char *raw = fixture_text(FX_CLI_EXT, NULL);
	char *vm = j(CLI_VM);
	char *vm_up_id = upper(CLI_VM_ID);
	char *vm_up = kv_asprintf("{\"id\":\"%s\"}", vm_up_id);
	const char *vms[] = {vm, vm_up};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(vms); i++) {
		char *extra = kv_asprintf(",\"vmExtensions\":[%s]", raw);
		struct estate *e = load_raw_in("virtualMachines", vms[i], extra);
		struct vm *v = estate_vm(e, CLI_VM_ID);
		const cJSON *id;

		assert_non_null(v);
		assert_int_equal(v->nextensions, 1);
		id = cJSON_GetObjectItemCaseSensitive(v->extensions[0], "id");
		assert_string_equal(id->valuestring, CLI_EXT_ID);
		estate_free(e);
		free(extra);
	}
	free(vm_up);
	free(vm_up_id);
	free(vm);
	free(raw);
}

static void cli_2022_extension_embedded_in_resources_is_an_extension_of_its_vm(void **state)
{
	char *raw = fixture_text(FX_CLI_EXT, NULL);
	char *vm = kv_asprintf("{\"id\":\"%s\",\"name\":\"vm1\",\"resources\":[%s]}", CLI_VM_ID, raw);
	struct estate *e = load_raw_in("virtualMachines", vm, NULL);

	(void)state;
	assert_int_equal(e->nvms, 1);
	assert_int_equal(e->vms[0].nextensions, 1);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(e->vms[0].extensions[0], "name")->valuestring,
	                    "AzureDiskEncryption");
	estate_free(e);
	free(vm);
	free(raw);
}

static void cli_2022_extension_both_embedded_and_listed_is_not_duplicated(void **state)
{
	char *raw = fixture_text(FX_CLI_EXT, NULL);
	char *vm = kv_asprintf("{\"id\":\"%s\",\"resources\":[%s]}", CLI_VM_ID, raw);
	/* the listed copy with its ID in another casing and a trailing slash, as Resource Graph may return it */
	char *ext_up = upper(CLI_EXT_ID);
	char *listed = kv_asprintf(",\"vmExtensions\":[%s,{\"id\":\"%s/\",\"properties\":{}}]", raw, ext_up);
	struct estate *e = load_raw_in("virtualMachines", vm, listed);

	(void)state;
	assert_int_equal(e->vms[0].nextensions, 1);
	estate_free(e);
	free(listed);
	free(ext_up);
	free(vm);
	free(raw);
}

static void extension_of_a_vm_not_in_the_estate_is_ignored(void **state)
{
	char *raw = fixture_text(FX_CLI_EXT, NULL);
	struct estate *e;

	(void)state;
	e = load_raw_in("vmExtensions", raw, NULL);
	assert_int_equal(e->nvms, 0);
	assert_false(e->present.vms);
	estate_free(e);
	free(raw);
}

static void encryption_at_host_vm_example_loads(void **state)
{
	static const char *const statuses[] = {"200", "201"};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(statuses); i++) {
		cJSON *snap = new_snapshot();
		struct estate *e;
		struct vm *v;

		add_to_list(snap, "virtualMachines", example_body(FX_VM_EAH, statuses[i]));
		e = load_json(snap, NULL);
		assert_true(e->present.vms);
		assert_int_equal(e->nvms, 1);
		v = &e->vms[0];
		assert_string_equal(v->id, "/subscriptions/{subscription-id}/resourceGroups/myResourceGroup/providers/Microsoft.Compute/virtualMachines/myVM");
		assert_string_equal(v->name, "myVM");
		assert_string_equal(v->location, "westus");
		assert_string_equal(v->sub, "{subscription-id}");
		assert_string_equal(v->rg, "myResourceGroup");
		assert_int_equal(v->os, OS_WINDOWS);
		assert_false(v->has_instance_view);
		assert_int_equal(v->agent, AGENT_UNKNOWN);
		assert_null(v->agent_version);
		assert_int_equal(v->nextensions, 0);
		assert_int_equal(v->ndisks, 0);
		assert_ptr_equal(estate_vm(e, "/SUBSCRIPTIONS/{SUBSCRIPTION-ID}/RESOURCEGROUPS/MYRESOURCEGROUP/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/MYVM"), v);
		estate_free(e);
	}
}

/* A VM {"id": ..., "properties": {"instanceView": <the fixture body>}}. */
static struct estate *load_instance_view_vm(void)
{
	cJSON *snap = new_snapshot();
	cJSON *vm = cJSON_CreateObject();
	cJSON *props = cJSON_AddObjectToObject(vm, "properties");

	cJSON_AddStringToObject(vm, "id", "/subscriptions/s/resourceGroups/myResourceGroup/providers/Microsoft.Compute/virtualMachines/myVM");
	cJSON_AddItemToObject(props, "instanceView", example_body(FX_VM_IV, "200"));
	add_to_list(snap, "virtualMachines", vm);
	return load_json(snap, NULL);
}

static void instance_view_example_gives_a_ready_agent(void **state)
{
	struct estate *e = load_instance_view_vm();
	struct vm *v = &e->vms[0];

	(void)state;
	assert_true(v->has_instance_view);
	assert_int_equal(v->agent, AGENT_READY);
	assert_string_equal(v->agent_version, "2.7.41491.949");
	assert_int_equal(v->nextensions, 0);   /* instanceView.extensions are not ARM extension resources */
	estate_free(e);
}

struct agent_case {
	const char *instance_view;   /* single-quoted JSON */
	enum agent_state want;
	bool has_iv;
};

static const struct agent_case agent_cases[] = {
	{"{'vmAgent':{'statuses':[{'displayStatus':'Ready'}]}}", AGENT_READY, true},
	{"{'vmAgent':{'statuses':[{'displayStatus':'ready'}]}}", AGENT_READY, true},
	{"{'vmAgent':{'statuses':[{'displayStatus':'Not Ready'}]}}", AGENT_NOT_READY, true},
	{"{'vmAgent':{'statuses':[]}}", AGENT_NOT_READY, true},
	{"{'vmAgent':{}}", AGENT_NOT_READY, true},
	{"{'vmAgent':{'statuses':[{'code':'x'},'junk',{'displayStatus':5},{'displayStatus':'Ready'}]}}", AGENT_READY, true},
	{"{}", AGENT_UNKNOWN, true},
	{"null", AGENT_UNKNOWN, false},
};

static void agent_state_follows_the_vm_agent_statuses(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(agent_cases); i++) {
		char *sq = kv_asprintf(HEAD ",'virtualMachines':[{'id':'/subscriptions/s/resourceGroups/r/providers/"
		                       "Microsoft.Compute/virtualMachines/v','properties':{'instanceView':%s}}]}",
		                       agent_cases[i].instance_view);
		struct estate *e = load_text(sq);

		if (e->vms[0].agent != agent_cases[i].want || e->vms[0].has_instance_view != agent_cases[i].has_iv)
			fail_msg("instanceView %s: agent %d has_instance_view %d", agent_cases[i].instance_view,
			         e->vms[0].agent, e->vms[0].has_instance_view);
		estate_free(e);
		free(sq);
	}
}

/* ---------- fixtures: Recovery Services ---------- */

static void backup_protected_items_example_joins_on_virtual_machine_id(void **state)
{
	cJSON *snap = new_snapshot();
	struct estate *e;
	struct protected_item *it;

	(void)state;
	cJSON_AddItemToObject(snap, "backupProtectedItems", example_value(FX_ITEMS));
	e = load_json(snap, NULL);
	assert_true(e->present.protected_items);
	assert_int_equal(e->nitems, 1);
	it = &e->items[0];
	assert_string_equal(it->vm_id, "/subscriptions/" ZERO_SUB "/resourceGroups/providers/Microsoft.ClassicCompute/virtualMachines/iaasvm-1");
	assert_string_equal(it->rsv_id, "/Subscriptions/" ZERO_SUB "/resourceGroups/SwaggerTestRg/providers/Microsoft.RecoveryServices/vaults/NetSDKTestRsVault");
	assert_true(kv_startswith_ci(it->id, it->rsv_id));
	assert_string_equal(it->protection_state, "Protected");
	assert_string_equal(it->last_backup_status, "Completed");
	assert_string_equal(it->health_status, "Passed");
	estate_free(e);
}

static void protected_item_falls_back_to_source_resource_id(void **state)
{
	struct estate *e = load_text(HEAD ",'backupProtectedItems':[{'id':'/subscriptions/s/resourceGroups/r/providers/"
	                             "Microsoft.RecoveryServices/vaults/RSV/backupFabrics/Azure/protectionContainers/c/protectedItems/i',"
	                             "'properties':{'sourceResourceId':'/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v'}},"
	                             "{'id':'/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/notAnItem'}]}");

	(void)state;
	assert_int_equal(e->nitems, 2);
	assert_string_equal(e->items[0].vm_id, "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v");
	assert_string_equal(e->items[0].rsv_id, "/subscriptions/s/resourceGroups/r/providers/Microsoft.RecoveryServices/vaults/RSV");
	assert_null(e->items[1].vm_id);
	assert_string_equal(e->items[1].rsv_id, "");
	estate_free(e);
}

/* An item's vault ID is the vault's own string when the bytes are the same, else its own text (no 512-byte copy each). */
static void protected_item_shares_its_vaults_id(void **state)
{
#define RSV "/subscriptions/s/resourceGroups/r/providers/Microsoft.RecoveryServices/vaults/RSV"
#define ITEM "/backupFabrics/Azure/protectionContainers/c/protectedItems/"
	struct estate *e = load_text(HEAD ",'recoveryServicesVaults':[{'id':'" RSV "','location':'westeurope'}],"
	                             "'backupProtectedItems':[{'id':'" RSV ITEM "a'},{'id':'" RSV ITEM "b'},"
	                             "{'id':'/SUBSCRIPTIONS/s/resourceGroups/r/providers/Microsoft.RecoveryServices/vaults/RSV" ITEM "c'},"
	                             "{'id':'/subscriptions/s/resourceGroups/r/providers/Microsoft.RecoveryServices/vaults/other" ITEM "d'}]}");

	(void)state;
	assert_int_equal(e->nitems, 4);
	assert_ptr_equal(e->items[0].rsv_id, e->rsvs[0].id);
	assert_ptr_equal(e->items[1].rsv_id, e->rsvs[0].id);
	/* the same vault in other case: found, but named as the item names it */
	assert_string_equal(e->items[2].rsv_id, "/SUBSCRIPTIONS/s/resourceGroups/r/providers/Microsoft.RecoveryServices/vaults/RSV");
	assert_ptr_equal(estate_rs_vault(e, e->items[2].rsv_id), &e->rsvs[0]);
	assert_string_equal(e->items[3].rsv_id, "/subscriptions/s/resourceGroups/r/providers/Microsoft.RecoveryServices/vaults/other");
	assert_null(estate_rs_vault(e, e->items[3].rsv_id));
	estate_free(e);
#undef RSV
#undef ITEM
}

static void recovery_services_vaults_example_keeps_locations(void **state)
{
	cJSON *snap = new_snapshot();
	struct estate *e;
	static const char *const names[] = {"patchtest", "swaggerExample", "today1"};

	(void)state;
	cJSON_AddItemToObject(snap, "recoveryServicesVaults", example_value(FX_RSVS));
	e = load_json(snap, NULL);
	assert_true(e->present.rs_vaults);
	assert_int_equal(e->nrsvs, 3);
	for (size_t i = 0; i < 3; i++) {
		char *up = upper(e->rsvs[i].id);

		assert_string_equal(e->rsvs[i].name, names[i]);
		assert_string_equal(e->rsvs[i].location, "westus");
		assert_ptr_equal(estate_rs_vault(e, up), &e->rsvs[i]);
		free(up);
	}
	estate_free(e);
}

/* ---------- the data files ---------- */

static void full_snapshot_file_loads_every_list_and_joins_them(void **state)
{
	struct kv_err err = {{0}};
	const char *path = DATA_DIR "/full.json";
	struct estate *e = estate_load(path, NULL, &err);
	const char *vm_id = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-app-1";
	struct vm *vm;
	struct vault *kv, *rbac;
	struct subscription *s;
	struct role_definition *rd;
	struct key_bundle *k;
	struct tenant *t;
	char buf[1024];

	(void)state;
	if (!e)
		fail_msg("%s", err.msg);
	assert_string_equal(e->path, path);
	assert_string_equal(e->collected_at, "2026-11-28T12:00:00Z");
	assert_string_equal(e->cloud, "AzureCloud");
	assert_true(e->caller.present);
	assert_string_equal(e->caller.user_type, "Guest");
	assert_string_equal(e->caller.home_tenant_id, "44444444-4444-4444-4444-444444444444");
	assert_string_equal(e->caller.display_name, "Auditor");
	{
		const struct estate_present *p = &e->present;

		assert_true(p->subscriptions && p->vms && p->disks && p->vaults && p->role_assignments &&
		            p->role_definitions && p->rs_vaults && p->protected_items && p->keys && p->tenants && p->caller);
	}

	/* subscriptions: ARM shape and `az account list` shape */
	assert_int_equal(e->nsubs, 2);
	s = estate_subscription(e, "11111111-1111-1111-1111-111111111111");
	assert_non_null(s);
	assert_string_equal(s->display_name, "Prod");
	assert_string_equal(s->tenant_id, "22222222-2222-2222-2222-222222222222");
	s = estate_subscription(e, "66666666-6666-6666-6666-666666666666");
	assert_non_null(s);
	assert_string_equal(s->display_name, "Dev (az account list)");
	assert_string_equal(s->sub, "66666666-6666-6666-6666-666666666666");

	/* the VM, its Resource Graph extension and the disk it manages (IDs in other casings) */
	vm = estate_vm(e, vm_id);
	assert_non_null(vm);
	assert_int_equal(vm->os, OS_LINUX);
	assert_int_equal(vm->agent, AGENT_READY);
	assert_string_equal(vm->agent_version, "2.10.0.8");
	assert_int_equal(vm->nextensions, 1);
	assert_int_equal(vm->ndisks, 1);
	assert_string_equal(e->disks[vm->disks[0]].name, "vm-app-1_OsDisk");
	assert_string_equal(vm->sub, "11111111-1111-1111-1111-111111111111");
	assert_string_equal(vm->rg, "rg-app");
	assert_int_equal(e->ndisks, 2);
	assert_null(e->disks[1].managed_by);

	/* vaults */
	assert_int_equal(e->nvaults, 2);
	kv = estate_vault_by_url(e, "https://kv-app.vault.azure.net/secrets/bek/1");
	assert_non_null(kv);
	assert_string_equal(kv->name, "kv-app");
	assert_true(kv->purge_protection);
	assert_true(kv->soft_delete);
	assert_int_equal(kv->soft_delete_days, 90);
	assert_false(kv->rbac);
	assert_string_equal(kv->default_action, "Deny");
	assert_string_equal(kv->bypass, "None");
	assert_string_equal(kv->public_network_access, "Disabled");
	assert_int_equal(kv->npolicies, 2);
	assert_string_equal(joined(kv->policies[0].keys, buf, sizeof(buf)), "Get,List,Backup");
	assert_string_equal(kv->policies[1].application_id, "88888888-8888-8888-8888-888888888888");
	assert_int_equal(cJSON_GetArraySize(kv->policies[1].keys), 0);
	assert_non_null(kv->policies[1].keys);
	rbac = estate_vault_by_url(e, "https://KV-RBAC.vault.azure.net:443/keys/k/2");
	assert_non_null(rbac);
	assert_true(rbac->rbac);
	assert_false(rbac->soft_delete);
	assert_int_equal(rbac->npolicies, 0);

	/* RBAC */
	assert_int_equal(e->nras, 1);
	assert_string_equal(e->ras[0].principal_id, "55555555-5555-5555-5555-555555555555");
	assert_string_equal(e->ras[0].principal_type, "ServicePrincipal");
	assert_true(armid_eq(e->ras[0].scope, rbac->id));
	rd = estate_role_definition(e, e->ras[0].role_definition_id);   /* same GUID at another scope, other case */
	assert_non_null(rd);
	assert_string_equal(rd->role_name, "Backup KV reader (custom)");
	assert_string_equal(joined(rd->data_actions, buf, sizeof(buf)),
	                    "Microsoft.KeyVault/vaults/keys/backup/action,Microsoft.KeyVault/vaults/keys/read,"
	                    "Microsoft.KeyVault/vaults/secrets/backup/action");
	assert_string_equal(joined(rd->not_data_actions, buf, sizeof(buf)), "Microsoft.KeyVault/vaults/secrets/setSecret/action");

	/* backup */
	assert_int_equal(e->nrsvs, 1);
	assert_int_equal(e->nitems, 1);
	assert_true(armid_eq(e->items[0].vm_id, vm_id));
	assert_ptr_equal(estate_rs_vault(e, e->items[0].rsv_id), &e->rsvs[0]);
	assert_string_equal(e->items[0].last_backup_status, "Failed");

	/* keys: key.kid and a top-level kid */
	assert_int_equal(e->nkeys, 2);
	k = estate_key(e, "https://KV-APP.vault.azure.net/keys/kek/0123456789abcdef");
	assert_non_null(k);
	assert_true(k->managed);
	k = estate_key(e, "https://kv-app.vault.azure.net/keys/plain/fedcba9876543210");
	assert_non_null(k);
	assert_false(k->managed);

	/* tenants */
	assert_int_equal(e->ntenants, 1);
	t = estate_tenant(e, "22222222-2222-2222-2222-222222222222");
	assert_non_null(t);
	assert_int_equal(t->caller_type, USER_GUEST);
	assert_int_equal(t->backup_sp, SP_FOUND);
	assert_string_equal(t->backup_sp_object_id, "55555555-5555-5555-5555-555555555555");

	/* errors */
	assert_int_equal(e->nerrors, 1);
	assert_int_equal(e->errors[0].status, 403);
	assert_string_equal(e->errors[0].code, "AuthorizationFailed");
	assert_non_null(estate_error_for(e, "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-locked/providers/Microsoft.KeyVault/vaults/kv-x"));
	assert_null(estate_error_for(e, kv->id));
	estate_free(e);
}

static void absent_lists_leave_every_present_flag_false(void **state)
{
	static const char *const texts[] = {
		HEAD "}",
		HEAD ",'caller':null,'tenants':null,'subscriptions':null,'virtualMachines':null,'vmExtensions':null,"
		"'disks':null,'vaults':null,'roleAssignments':null,'roleDefinitions':null,'recoveryServicesVaults':null,"
		"'backupProtectedItems':null,'keys':null,'errors':null}",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
		struct estate *e = load_text(texts[i]);
		const struct estate_present *p = &e->present;

		assert_false(p->subscriptions || p->vms || p->disks || p->vaults || p->role_assignments ||
		             p->role_definitions || p->rs_vaults || p->protected_items || p->keys || p->tenants ||
		             p->caller);
		assert_int_equal(e->nvms + e->nvaults + e->ndisks + e->nsubs + e->nras + e->nrds + e->nrsvs +
		                 e->nitems + e->nkeys + e->ntenants + e->nerrors, 0);
		assert_null(e->collected_at);
		assert_null(e->cloud);
		assert_null(estate_vm(e, "/subscriptions/s"));
		assert_null(estate_vault(e, "/subscriptions/s"));
		assert_null(estate_vault_by_url(e, "https://x.vault.azure.net/secrets/a"));
		assert_null(estate_error_for(e, "/subscriptions/s"));
		assert_null(estate_tenant(e, "t"));
		assert_null(estate_key(e, "https://x.vault.azure.net/keys/k/1"));
		assert_null(estate_role_definition(e, "/providers/Microsoft.Authorization/roleDefinitions/x"));
		estate_free(e);
	}
}

static void empty_lists_set_every_present_flag(void **state)
{
	struct kv_err err = {{0}};
	struct estate *e = estate_load(DATA_DIR "/empty-lists.json", NULL, &err);
	const struct estate_present *p;

	(void)state;
	if (!e)
		fail_msg("%s", err.msg);
	p = &e->present;
	assert_true(p->subscriptions && p->vms && p->disks && p->vaults && p->role_assignments &&
	            p->role_definitions && p->rs_vaults && p->protected_items && p->keys && p->tenants && p->caller);
	assert_int_equal(e->nvms + e->nvaults + e->ndisks + e->nsubs + e->nras + e->nrds + e->nrsvs +
	                 e->nitems + e->nkeys + e->ntenants + e->nerrors, 0);
	assert_null(e->caller.object_id);
	estate_free(e);
}

static void unknown_fields_are_ignored_everywhere(void **state)
{
	struct estate *e = load_text(
		HEAD ",'futureTopLevel':{'a':[1,2,{'b':null}]},'schemaHints':42,"
		"'caller':{'objectId':'o','newClaim':[1]},"
		"'virtualMachines':[{'id':'/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v',"
		"  'zones':['1'],'extendedLocation':{'name':'x'},'properties':{'newProfile':{'k':1},'storageProfile':{'diskControllerType':7}}}],"
		"'vaults':[{'id':'/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv','etag':5,"
		"  'properties':{'newSetting':true,'networkAcls':{'newRule':[1]},'vaultUri':'https://kv.vault.azure.net/',"
		"  'accessPolicies':[{'objectId':'o','permissions':{'secrets':['Get'],'newCategory':[1,2]},'futureField':{}}]}}],"
		"'tenants':[{'tenantId':'t','futureField':1,'backupManagementService':{'status':'absent','checkedAt':5}}],"
		"'errors':[{'scope':'/subscriptions/s2','details':[1],'status':null}]}");
	struct vault *v;

	(void)state;
	assert_int_equal(e->nvms, 1);
	assert_int_equal(e->nvaults, 1);
	v = &e->vaults[0];
	assert_int_equal(v->npolicies, 1);
	assert_string_equal(str_item(v->policies[0].secrets, 0), "Get");
	assert_int_equal(estate_tenant(e, "T")->backup_sp, SP_ABSENT);
	assert_int_equal(e->errors[0].status, 0);
	assert_string_equal(e->caller.object_id, "o");
	estate_free(e);
}

struct bool_case {
	const char *value;   /* JSON text for enableRbacAuthorization */
	bool want;
};

static const struct bool_case bool_cases[] = {
	{"true", true}, {"false", false}, {"null", false},
	{"'true'", true}, {"'True'", true}, {"'FALSE'", false},
};

static void vault_booleans_accept_json_booleans_null_and_true_false_strings(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bool_cases); i++) {
		char *sq = kv_asprintf(HEAD ",'vaults':[{'id':'/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv',"
		                       "'properties':{'enableRbacAuthorization':%s,'enableSoftDelete':%s}}]}",
		                       bool_cases[i].value, bool_cases[i].value);
		struct estate *e = load_text(sq);

		if (e->vaults[0].rbac != bool_cases[i].want)
			fail_msg("enableRbacAuthorization %s gave %d", bool_cases[i].value, e->vaults[0].rbac);
		/* enableSoftDelete null means its default, true */
		assert_int_equal(e->vaults[0].soft_delete, strcmp(bool_cases[i].value, "null") == 0 ? true : bool_cases[i].want);
		estate_free(e);
		free(sq);
	}
}

/* ---------- lookups ---------- */

static void lookups_by_id_ignore_case_and_a_trailing_slash(void **state)
{
	char *vault_raw = fixture_text(FX_CLI_VAULT, NULL);
	char *vm = j(CLI_VM);
	char *extra = kv_asprintf(",\"virtualMachines\":[%s]", vm);
	struct estate *e = load_raw_in("vaults", vault_raw, extra);
	char *vm_up = upper(CLI_VM_ID), *vault_up = upper(CLI_VAULT_ID);
	char *vm_slash = kv_asprintf("%s/", vm_up), *vault_slash = kv_asprintf("%s/", vault_up);

	(void)state;
	assert_ptr_equal(estate_vm(e, vm_up), &e->vms[0]);
	assert_ptr_equal(estate_vm(e, vm_slash), &e->vms[0]);
	assert_ptr_equal(estate_vault(e, vault_up), &e->vaults[0]);
	assert_ptr_equal(estate_vault(e, vault_slash), &e->vaults[0]);
	assert_null(estate_vm(e, CLI_VAULT_ID));
	assert_null(estate_vault(e, CLI_VM_ID));
	assert_null(estate_vm(e, NULL));
	assert_null(estate_vault(e, NULL));
	estate_free(e);
	free(vm_slash);
	free(vault_slash);
	free(vm_up);
	free(vault_up);
	free(extra);
	free(vm);
	free(vault_raw);
}

struct url_case {
	const char *url;
	int vault;   /* index into the estate's vaults, -1 for none */
};

/* vaults[0] has vaultUri "https://vault000002.vault.azure.net/" (trailing slash), vaults[1] "https://sample-vault.vault.azure.net" (none) */
static const struct url_case url_cases[] = {
	{"https://vault000002.vault.azure.net/secrets/bek/0123456789abcdef0123456789abcdef", 0},
	{"https://VAULT000002.Vault.Azure.Net/secrets/bek/0123", 0},
	{"https://vault000002.vault.azure.net", 0},
	{"https://vault000002.vault.azure.net/", 0},
	{"https://vault000002.vault.azure.net:443/keys/kek/1", 0},
	{"HTTPS://vault000002.vault.azure.net/keys/kek/1", 0},
	{"https://sample-vault.vault.azure.net/keys/kek/1", 1},
	{"https://SAMPLE-VAULT.VAULT.AZURE.NET/", 1},
	{"https://sample-vault.vault.azure.net?api-version=7.4", 1},
	{"https://other.vault.azure.net/secrets/x/1", -1},
	{"https://vault000002.vault.azure.net.evil.example/secrets/x/1", -1},
	{"http://vault000002.vault.azure.net/secrets/x/1", -1},
	{"vault000002.vault.azure.net/secrets/x/1", -1},
	{"https:///secrets/x", -1},
	{"", -1},
	{NULL, -1},
};

static void vault_by_url_matches_the_vault_uri_host_in_any_case(void **state)
{
	char *raw = fixture_text(FX_CLI_VAULT, NULL);
	cJSON *snap = new_snapshot();
	struct estate *e;
	char *text;

	(void)state;
	add_to_list(snap, "vaults", cJSON_Parse(raw));
	add_to_list(snap, "vaults", example_body(FX_GET_VAULT, "200"));
	text = cJSON_PrintUnformatted(snap);
	cJSON_Delete(snap);
	e = parse_with(text, strlen(text), NULL);
	cJSON_free(text);
	assert_int_equal(e->nvaults, 2);
	for (size_t i = 0; i < ARRAY_LEN(url_cases); i++) {
		struct vault *got = estate_vault_by_url(e, url_cases[i].url);
		struct vault *want = url_cases[i].vault < 0 ? NULL : &e->vaults[url_cases[i].vault];

		if (got != want)
			fail_msg("estate_vault_by_url(%s) gave vault %ld", url_cases[i].url ? url_cases[i].url : "NULL",
			         got ? (long)(got - e->vaults) : -1L);
	}
	estate_free(e);
	free(raw);
}

/* ---------- estate_error_for ---------- */

#define ERR_SUB "aaaaaaaa-0000-0000-0000-000000000001"
#define ERR_VAULT_ID "/subscriptions/" ERR_SUB "/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv1"

struct scope_case {
	const char *scope;
	bool explains;
};

static const struct scope_case scope_cases[] = {
	{ERR_VAULT_ID, true},
	{"/SUBSCRIPTIONS/" ERR_SUB "/RESOURCEGROUPS/RG-KV/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV1", true},
	{ERR_VAULT_ID "/", true},
	{"/subscriptions/" ERR_SUB "/resourceGroups/rg-kv", true},
	{"/subscriptions/" ERR_SUB "/resourceGroups/RG-KV/", true},
	{"/subscriptions/" ERR_SUB, true},
	{"/Subscriptions/" ERR_SUB, true},
	{"https://management.azure.com/subscriptions/" ERR_SUB "/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults?api-version=2024-11-01", true},
	{"https://management.azure.com/subscriptions/" ERR_SUB "/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv1?api-version=2024-11-01", true},
	{"https://management.azure.com/subscriptions/" ERR_SUB "?api-version=2022-12-01", true},
	/* not this vault */
	{"/subscriptions/aaaaaaaa-0000-0000-0000-000000000002", false},
	{"/subscriptions/" ERR_SUB "0", false},
	{"/subscriptions/" ERR_SUB "/resourceGroups/rg-kv2", false},
	{"/subscriptions/" ERR_SUB "/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv10", false},
	{"https://management.azure.com/subscriptions/aaaaaaaa-0000-0000-0000-000000000002/providers/Microsoft.KeyVault/vaults?api-version=2024-11-01", false},
	{"https://management.azure.com/subscriptions/" ERR_SUB "/resourceGroups/rg-other/providers/Microsoft.KeyVault/vaults?api-version=2024-11-01", false},
	{"https://management.azure.com/subscriptions/" ERR_SUB "/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01", false},
	{"https://graph.microsoft.com/v1.0/servicePrincipals(appId='262044b1-e2ce-469f-a196-69ab7ada62d3')", false},
	{"https://management.azure.com", false},
};

static struct estate *estate_with_error(const char *scope)
{
	cJSON *snap = new_snapshot();
	cJSON *err = cJSON_CreateObject();

	cJSON_AddStringToObject(err, "scope", scope);
	cJSON_AddNumberToObject(err, "status", 403);
	cJSON_AddStringToObject(err, "code", "AuthorizationFailed");
	cJSON_AddStringToObject(err, "message", "no");
	add_to_list(snap, "errors", err);
	return load_json(snap, NULL);
}

static void error_for_explains_a_vault_by_its_id_group_subscription_or_list_url(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(scope_cases); i++) {
		struct estate *e = estate_with_error(scope_cases[i].scope);
		const struct estate_error *got = estate_error_for(e, ERR_VAULT_ID);

		if ((got != NULL) != scope_cases[i].explains)
			fail_msg("error scope %s: explains %d, want %d", scope_cases[i].scope, got != NULL,
			         scope_cases[i].explains);
		if (got) {
			assert_ptr_equal(got, &e->errors[0]);
			assert_int_equal(got->status, 403);
			assert_string_equal(got->code, "AuthorizationFailed");
			assert_string_equal(got->message, "no");
		}
		assert_null(estate_error_for(e, NULL));
		estate_free(e);
	}
}

static void error_for_returns_the_first_matching_error(void **state)
{
	struct estate *e = load_text(HEAD ",'errors':["
	                             "{'scope':'/subscriptions/other','status':500},"
	                             "{'scope':'/subscriptions/" ERR_SUB "/resourceGroups/rg-kv','status':403},"
	                             "{'scope':'/subscriptions/" ERR_SUB "','status':429}]}");

	(void)state;
	assert_int_equal(estate_error_for(e, ERR_VAULT_ID)->status, 403);
	assert_int_equal(estate_error_for(e, "/subscriptions/" ERR_SUB "/resourceGroups/rg-vm")->status, 429);
	assert_null(estate_error_for(e, "/subscriptions/third"));
	estate_free(e);
}

/*
 * BUG (reported): estate.c estate_error_for compares a list URL's path as a
 * scope prefix, so the subscription-wide vault list
 * /subscriptions/<s>/providers/Microsoft.KeyVault/vaults does not "contain"
 * /subscriptions/<s>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<v>:
 * a failed subscription list leaves its vaults unexplained.
 */
static void bug_error_for_a_subscription_vault_list_url_explains_its_vaults(void **state)
{
	static const char *const scopes[] = {
		"https://management.azure.com/subscriptions/" ERR_SUB "/providers/Microsoft.KeyVault/vaults?api-version=2024-11-01",
		"https://management.azure.com/subscriptions/" ERR_SUB "/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01&$skiptoken=abc",
		"https://management.azure.com:443/Subscriptions/" ERR_SUB "/providers/microsoft.keyvault/vaults?api-version=2024-11-01",
	};
	struct kv_buf problems;

	(void)state;
	kv_buf_init(&problems, 0);
	for (size_t i = 0; i < ARRAY_LEN(scopes); i++) {
		struct estate *e = estate_with_error(scopes[i]);

		if (!estate_error_for(e, ERR_VAULT_ID))
			kv_buf_addf(&problems, "[the failed list %s does not explain vault %s] ", scopes[i], ERR_VAULT_ID);
		/* and it must not explain a resource of another type or subscription */
		if (estate_error_for(e, "/subscriptions/" ERR_SUB "/resourceGroups/rg-kv/providers/Microsoft.Compute/virtualMachines/vm1") ||
		    estate_error_for(e, "/subscriptions/aaaaaaaa-0000-0000-0000-000000000002/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv1"))
			kv_buf_addf(&problems, "[the failed list %s explains a VM or another subscription] ", scopes[i]);
		estate_free(e);
	}
	fail_on_problems(&problems);
}

/* ---------- --backup-sp-object-id ---------- */

static void sp_override_adds_a_tenant_as_found(void **state)
{
	const char *ov[] = {"11111111-aaaa-0000-0000-000000000001=oid-1"};
	struct estate_opts opts = {.sp_overrides = ov, .nsp_overrides = 1};
	char *text = j(HEAD "}");
	struct estate *e = parse_with(text, strlen(text), &opts);
	struct tenant *t;

	(void)state;
	assert_int_equal(e->ntenants, 1);
	t = estate_tenant(e, "11111111-AAAA-0000-0000-000000000001");
	assert_non_null(t);
	assert_string_equal(t->tenant_id, "11111111-aaaa-0000-0000-000000000001");
	assert_int_equal(t->backup_sp, SP_FOUND);
	assert_string_equal(t->backup_sp_object_id, "oid-1");
	assert_int_equal(t->caller_type, USER_UNKNOWN);
	estate_free(e);
	free(text);
}

static void sp_override_replaces_what_the_snapshot_says(void **state)
{
	const char *ov[] = {"T1=new-oid", "t2=oid-2", "T3=oid=with=equals"};
	struct estate_opts opts = {.sp_overrides = ov, .nsp_overrides = ARRAY_LEN(ov)};
	char *text = j(HEAD ",'tenants':[{'tenantId':'t1','callerUserType':'Guest','backupManagementService':{'status':'found','objectId':'old-oid'}},"
	               "{'tenantId':'T2','callerUserType':'Member','backupManagementService':{'status':'absent'}}]}");
	struct estate *e = parse_with(text, strlen(text), &opts);
	struct tenant *t;

	(void)state;
	assert_int_equal(e->ntenants, 3);
	t = estate_tenant(e, "t1");
	assert_int_equal(t->backup_sp, SP_FOUND);
	assert_string_equal(t->backup_sp_object_id, "new-oid");
	assert_int_equal(t->caller_type, USER_GUEST);
	t = estate_tenant(e, "t2");
	assert_int_equal(t->backup_sp, SP_FOUND);
	assert_string_equal(t->backup_sp_object_id, "oid-2");
	assert_int_equal(t->caller_type, USER_MEMBER);
	t = estate_tenant(e, "t3");
	assert_string_equal(t->backup_sp_object_id, "oid=with=equals");
	estate_free(e);
	free(text);
}

static void sp_override_malformed_is_rejected_naming_the_flag(void **state)
{
	static const char *const bad[] = {"x", "=y", "x=", "", "="};
	char *text = j(HEAD "}");

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		const char *ov[] = {"good=oid", bad[i]};
		struct estate_opts opts = {.sp_overrides = ov, .nsp_overrides = 2};
		char *quoted = kv_asprintf("'%s'", bad[i]);
		const char *needles[] = {"--backup-sp-object-id", quoted, "TENANT=OBJECT_ID"};

		expect_parse_error_n(text, strlen(text), &opts, needles, ARRAY_LEN(needles));
		free(quoted);
	}
	free(text);
}

/* ---------- tenants ---------- */

struct tenant_case {
	const char *entry;              /* single-quoted JSON of one tenants[] item */
	enum user_type caller;
	enum sp_status sp;
	const char *oid;
};

static const struct tenant_case tenant_cases[] = {
	{"{'tenantId':'t','callerUserType':'Member','backupManagementService':{'status':'found','objectId':'o1'}}", USER_MEMBER, SP_FOUND, "o1"},
	{"{'tenantId':'t','callerUserType':'Guest','backupManagementService':{'status':'absent'}}", USER_GUEST, SP_ABSENT, NULL},
	{"{'tenantId':'t','callerUserType':'guest','backupManagementService':{'status':'unknown'}}", USER_GUEST, SP_UNKNOWN, NULL},
	{"{'tenantId':'t','callerUserType':'ServicePrincipal','backupManagementService':{'status':'FOUND','objectId':'o2'}}", USER_SERVICE_PRINCIPAL, SP_FOUND, "o2"},
	{"{'tenantId':'t','callerUserType':'managedIdentity'}", USER_SERVICE_PRINCIPAL, SP_UNKNOWN, NULL},
	{"{'tenantId':'t','callerUserType':'Contractor','backupManagementService':{}}", USER_UNKNOWN, SP_UNKNOWN, NULL},
	{"{'tenantId':'t'}", USER_UNKNOWN, SP_UNKNOWN, NULL},
	/* an object ID with status absent is not used */
	{"{'tenantId':'t','backupManagementService':{'status':'absent','objectId':'stale'}}", USER_UNKNOWN, SP_ABSENT, NULL},
};

static void tenants_list_parses_caller_type_and_backup_sp(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(tenant_cases); i++) {
		char *sq = kv_asprintf(HEAD ",'tenants':[%s]}", tenant_cases[i].entry);
		struct estate *e = load_text(sq);
		struct tenant *t = estate_tenant(e, "T");

		assert_non_null(t);
		if (t->caller_type != tenant_cases[i].caller || t->backup_sp != tenant_cases[i].sp)
			fail_msg("%s: caller %d sp %d", tenant_cases[i].entry, t->caller_type, t->backup_sp);
		if (tenant_cases[i].oid)
			assert_string_equal(t->backup_sp_object_id, tenant_cases[i].oid);
		else
			assert_null(t->backup_sp_object_id);
		assert_string_equal(user_type_name(t->caller_type), user_type_name(tenant_cases[i].caller));
		estate_free(e);
		free(sq);
	}
	assert_string_equal(sp_status_name(SP_FOUND), "found");
	assert_string_equal(sp_status_name(SP_ABSENT), "absent");
	assert_string_equal(sp_status_name(SP_UNKNOWN), "unknown");
	assert_string_equal(vm_os_name(OS_LINUX), "Linux");
	assert_string_equal(vm_os_name(OS_WINDOWS), "Windows");
	assert_string_equal(vm_os_name(OS_UNKNOWN), "Unknown");
}

/* ---------- bad input ---------- */

struct bad_case {
	const char *text;           /* single-quoted JSON, or raw when raw is set */
	const char *needles[3];
};

static const struct bad_case bad_cases[] = {
	/* the document */
	{"[]", {"$: expected an object, got an array"}},
	{"[{'kind':'kvaudit.estate','version':1}]", {"$: expected an object, got an array"}},
	{"'kvaudit.estate'", {"$: expected an object, got a string"}},
	{"null", {"$: expected an object, got null"}},
	{"{'kind':'kvaudit.report','version':1}", {"$.kind", "kvaudit.report", "not a kvaudit estate"}},
	{"{'version':1}", {"$.kind", "got nothing"}},
	{"{'kind':7,'version':1}", {"$.kind", "got a number"}},
	{"{'kind':'KVAUDIT.ESTATE','version':1}", {"$.kind", "KVAUDIT.ESTATE"}},
	{"{'kind':'kvaudit.estate','version':2}", {"$.version", "unsupported estate version 2"}},
	{"{'kind':'kvaudit.estate','version':1.5}", {"$.version", "1.5"}},
	{"{'kind':'kvaudit.estate','version':'1'}", {"$.version", "expected 1, got a string"}},
	{"{'kind':'kvaudit.estate'}", {"$.version", "got nothing"}},
	{HEAD ",'collectedAt':20261128}", {"$.collectedAt: expected a string, got a number"}},
	{HEAD ",'caller':[]}", {"$.caller: expected an object, got an array"}},
	{HEAD ",'caller':{'objectId':1}}", {"$.caller.objectId: expected a string, got a number"}},
	/* lists */
	{HEAD ",'virtualMachines':{}}", {"$.virtualMachines: expected an array, got an object"}},
	{HEAD ",'vmExtensions':'x'}", {"$.vmExtensions: expected an array, got a string"}},
	{HEAD ",'vaults':true}", {"$.vaults: expected an array, got a boolean"}},
	{HEAD ",'errors':{}}", {"$.errors: expected an array, got an object"}},
	{HEAD ",'tenants':1}", {"$.tenants: expected an array, got a number"}},
	/* VMs */
	{HEAD ",'virtualMachines':['vm1']}", {"$.virtualMachines[0]: expected an object, got a string"}},
	{HEAD ",'virtualMachines':[{'id':42}]}", {"$.virtualMachines[0].id: expected a string, got a number"}},
	{HEAD ",'virtualMachines':[{'name':'vm'}]}", {"$.virtualMachines[0].id", "missing"}},
	{HEAD ",'virtualMachines':[{'id':'/a/vm1'},{'id':'/a/vm2','name':[]}]}", {"$.virtualMachines[1].name: expected a string, got an array"}},
	{HEAD ",'virtualMachines':[{'id':'/a/vm1','properties':[]}]}", {"$.virtualMachines[0].properties: expected an object, got an array"}},
	{HEAD ",'virtualMachines':[{'id':'/a/vm1','properties':{'storageProfile':{'osDisk':{'osType':1}}}}]}",
	 {"$.virtualMachines[0].properties.storageProfile.osDisk.osType: expected a string, got a number"}},
	{HEAD ",'virtualMachines':[{'id':'/a/vm1','properties':{'instanceView':{'vmAgent':{'statuses':{}}}}}]}",
	 {"$.virtualMachines[0].properties.instanceView.vmAgent.statuses: expected an array, got an object"}},
	{HEAD ",'virtualMachines':[{'id':'/a/vm1','resources':[7]}]}", {"$.virtualMachines[0].resources[0]: expected an object, got a number"}},
	{HEAD ",'virtualMachines':[{'id':'/a/vm1','resources':[{'properties':'x'}]}]}", {"$.virtualMachines[0].resources[0].properties: expected an object, got a string"}},
	{HEAD ",'virtualMachines':[{'id':'/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/VM1'},"
	 "{'id':'/SUBSCRIPTIONS/S/resourcegroups/R/providers/microsoft.compute/virtualmachines/vm1'}]}",
	 {"$.virtualMachines[1].id", "duplicate virtual machine"}},
	/* extensions listed apart */
	{HEAD ",'vmExtensions':[{'id':'/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/vm1'}]}",
	 {"$.vmExtensions[0].id", "not a VM extension ID"}},
	{HEAD ",'vmExtensions':[{'name':'AzureDiskEncryption'}]}", {"$.vmExtensions[0].id", "missing"}},
	{HEAD ",'vmExtensions':[{'id':'/a/virtualMachines/v/extensions/x','properties':5}]}", {"$.vmExtensions[0].properties: expected an object, got a number"}},
	{HEAD ",'vmExtensions':[null]}", {"$.vmExtensions[0]: expected an object, got null"}},
	/* disks */
	{HEAD ",'disks':[{'id':'/d','managedBy':{}}]}", {"$.disks[0].managedBy: expected a string, got an object"}},
	{HEAD ",'disks':[{'id':'/d','properties':{'encryptionSettingsCollection':{'enabled':'yes'}}}]}",
	 {"$.disks[0].properties.encryptionSettingsCollection.enabled: expected a boolean, got a string"}},
	{HEAD ",'disks':[{'id':'/d','properties':{'encryptionSettingsCollection':{'encryptionSettings':{}}}}]}",
	 {"$.disks[0].properties.encryptionSettingsCollection.encryptionSettings: expected an array, got an object"}},
	/* vaults */
	{HEAD ",'vaults':[{'id':'/v','properties':{'enableRbacAuthorization':1}}]}",
	 {"$.vaults[0].properties.enableRbacAuthorization: expected a boolean, got a number"}},
	{HEAD ",'vaults':[{'id':'/v','properties':{'enableSoftDelete':'yes'}}]}", {"$.vaults[0].properties.enableSoftDelete: expected a boolean, got a string"}},
	{HEAD ",'vaults':[{'id':'/v','properties':{'vaultUri':5}}]}", {"$.vaults[0].properties.vaultUri: expected a string, got a number"}},
	{HEAD ",'vaults':[{'id':'/v','properties':{'networkAcls':{'bypass':['AzureServices']}}}]}",
	 {"$.vaults[0].properties.networkAcls.bypass: expected a string, got an array"}},
	{HEAD ",'vaults':[{'id':'/v','properties':{'accessPolicies':{}}}]}", {"$.vaults[0].properties.accessPolicies: expected an array, got an object"}},
	{HEAD ",'vaults':[{'id':'/v','properties':{'accessPolicies':[{'objectId':'o','permissions':{'secrets':['get',7]}}]}}]}",
	 {"$.vaults[0].properties.accessPolicies[0].permissions.secrets[1]: expected a string, got a number"}},
	{HEAD ",'vaults':[{'id':'/v'},{'id':'/w','properties':{'accessPolicies':[{'objectId':'o'},{'objectId':'p','permissions':{'keys':[null]}}]}}]}",
	 {"$.vaults[1].properties.accessPolicies[1].permissions.keys[0]: expected a string, got null"}},
	{HEAD ",'vaults':[{'id':'/v','properties':{'accessPolicies':[{'objectId':'o'},'x']}}]}",
	 {"$.vaults[0].properties.accessPolicies[1]: expected an object, got a string"}},
	{HEAD ",'vaults':[{'id':'/v','properties':{'accessPolicies':[{'tenantId':'t'}]}}]}",
	 {"$.vaults[0].properties.accessPolicies[0].objectId", "missing"}},
	{HEAD ",'vaults':[{'id':'/v','properties':{'accessPolicies':[{'objectId':'o','permissions':{'storage':'all'}}]}}]}",
	 {"$.vaults[0].properties.accessPolicies[0].permissions.storage: expected an array, got a string"}},
	/* subscriptions, RBAC */
	{HEAD ",'subscriptions':[{'displayName':'x'}]}", {"$.subscriptions[0]", "subscriptionId"}},
	{HEAD ",'subscriptions':[{'subscriptionId':5}]}", {"$.subscriptions[0].subscriptionId: expected a string, got a number"}},
	{HEAD ",'roleAssignments':[{'id':'/ra'}]}", {"$.roleAssignments[0].properties", "missing"}},
	{HEAD ",'roleAssignments':[{'id':'/ra','properties':{'scope':'/','roleDefinitionId':'/rd'}}]}",
	 {"$.roleAssignments[0].properties.principalId", "missing"}},
	{HEAD ",'roleAssignments':[{'id':'/ra','properties':'x'}]}", {"$.roleAssignments[0].properties: expected an object, got a string"}},
	{HEAD ",'roleDefinitions':[{'id':'/rd','properties':{'permissions':[{'dataActions':[1]}]}}]}",
	 {"$.roleDefinitions[0].properties.permissions[0].dataActions[0]: expected a string, got a number"}},
	{HEAD ",'roleDefinitions':[{'id':'/rd','properties':{'permissions':['x']}}]}",
	 {"$.roleDefinitions[0].properties.permissions[0]: expected an object, got a string"}},
	{HEAD ",'roleDefinitions':[{'properties':{}}]}", {"$.roleDefinitions[0].id", "missing"}},
	/* backup, keys, tenants, errors */
	{HEAD ",'recoveryServicesVaults':[{'id':'/r','location':1}]}", {"$.recoveryServicesVaults[0].location: expected a string, got a number"}},
	{HEAD ",'backupProtectedItems':[{'properties':{}}]}", {"$.backupProtectedItems[0].id", "missing"}},
	{HEAD ",'backupProtectedItems':[{'id':'/i','properties':{'virtualMachineId':1}}]}",
	 {"$.backupProtectedItems[0].properties.virtualMachineId: expected a string, got a number"}},
	{HEAD ",'keys':[{'attributes':{}}]}", {"$.keys[0]", "key.kid"}},
	{HEAD ",'keys':[{'key':{'kid':'https://k'},'managed':1}]}", {"$.keys[0].managed: expected a boolean, got a number"}},
	{HEAD ",'keys':[{'key':'k'}]}", {"$.keys[0].key: expected an object, got a string"}},
	{HEAD ",'tenants':[{'tenantId':'t','backupManagementService':{'status':'found'}}]}",
	 {"$.tenants[0].backupManagementService.objectId", "found"}},
	{HEAD ",'tenants':[{'tenantId':'t','backupManagementService':{'status':'found','objectId':''}}]}",
	 {"$.tenants[0].backupManagementService.objectId", "found"}},
	{HEAD ",'tenants':[{'tenantId':'t'},{'tenantId':'u','backupManagementService':{'status':'maybe'}}]}",
	 {"$.tenants[1].backupManagementService.status", "maybe"}},
	{HEAD ",'tenants':[{'tenantId':'t','backupManagementService':{'status':true}}]}",
	 {"$.tenants[0].backupManagementService.status: expected a string, got a boolean"}},
	{HEAD ",'tenants':[{'callerUserType':'Member'}]}", {"$.tenants[0].tenantId", "missing"}},
	{HEAD ",'tenants':[{'tenantId':'t','callerUserType':1}]}", {"$.tenants[0].callerUserType: expected a string, got a number"}},
	{HEAD ",'errors':[{'status':403}]}", {"$.errors[0].scope", "missing"}},
	{HEAD ",'errors':[{'scope':'/s','status':'403'}]}", {"$.errors[0].status: expected a number, got a string"}},
};

static void bad_snapshots_are_refused_with_their_json_path(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
		char *text = j(bad_cases[i].text);
		size_t n = 0;

		while (n < ARRAY_LEN(bad_cases[i].needles) && bad_cases[i].needles[n])
			n++;
		expect_parse_error_n(text, strlen(text), NULL, bad_cases[i].needles, n);
		free(text);
	}
}

static void a_failure_late_in_the_document_releases_everything_loaded_before(void **state)
{
	/* every list loaded, then the last one fails: ASan/LSan check that nothing leaks */
	struct kv_err err = {{0}};
	char *full = kv_read_file(DATA_DIR "/full.json", 1 << 20, NULL, &err);
	cJSON *doc;
	char *text;
	static const char *const needles[] = {"$.errors[1].scope", "missing"};

	(void)state;
	assert_non_null(full);
	doc = cJSON_Parse(full);
	add_to_list(doc, "errors", cJSON_CreateObject());
	text = cJSON_PrintUnformatted(doc);
	expect_parse_error_n(text, strlen(text), NULL, needles, ARRAY_LEN(needles));
	cJSON_free(text);
	/* and a failure in a VM after its agent version and extensions were taken */
	cJSON_DeleteItemFromArray(cJSON_GetObjectItemCaseSensitive(doc, "errors"), 1);
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(doc, "virtualMachines"),
	                     cJSON_Parse("{\"id\":\"/x/vm2\",\"properties\":{\"instanceView\":{\"vmAgent\":"
	                                 "{\"vmAgentVersion\":\"1\"}}},\"resources\":[{\"id\":\"e\"},3]}"));
	text = cJSON_PrintUnformatted(doc);
	{
		static const char *const n2[] = {"$.virtualMachines[1].resources[1]"};

		expect_parse_error_n(text, strlen(text), NULL, n2, ARRAY_LEN(n2));
	}
	cJSON_free(text);
	cJSON_Delete(doc);
	free(full);
}

static void invalid_json_in_the_middle_gives_byte_offset_and_line(void **state)
{
	char *text = j("{'kind':'kvaudit.estate',\n'version':1,\n'vaults':[nope]}\n");
	size_t off = (size_t)(strstr(text, "nope") - text);
	char *byte = kv_asprintf("byte %zu", off);
	const char *needles[] = {"invalid JSON", byte, "line 3"};

	(void)state;
	expect_parse_error_n(text, strlen(text), NULL, needles, ARRAY_LEN(needles));
	free(byte);
	free(text);
}

static void trailing_data_after_the_document_is_refused(void **state)
{
	static const char *const texts[] = {
		HEAD "} x",
		HEAD "}\n" HEAD "}",
		HEAD "}]",
		HEAD "}\n\n,",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
		char *text = j(texts[i]);
		char *doc = j(HEAD "}");
		size_t off = strlen(doc);
		char *byte;
		const char *needles[2];

		while (strchr(" \n", text[off]))
			off++;
		byte = kv_asprintf("byte %zu", off);
		needles[0] = "after the document";
		needles[1] = byte;
		expect_parse_error_n(text, strlen(text), NULL, needles, 2);
		free(byte);
		free(doc);
		free(text);
	}
}

static void whitespace_around_the_document_and_a_utf8_bom_are_accepted(void **state)
{
	static const char *const texts[] = {
		" \r\n\t" HEAD "} \r\n\t\n",
		"\xEF\xBB\xBF" HEAD "}",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(texts); i++)
		estate_free(load_text(texts[i]));
}

static void parse_uses_only_len_bytes(void **state)
{
	/* the buffer continues past len with garbage that must not be read */
	char *text = j(HEAD "}GARBAGE");
	size_t len = strlen(text) - strlen("GARBAGE");
	struct estate *e = parse_with(text, len, NULL);

	(void)state;
	estate_free(e);
	free(text);
}

static void empty_and_whitespace_only_input_is_refused_in_memory(void **state)
{
	static const char *const texts[] = {"", " ", "\n\n\r\n\t  "};
	static const char *const needles[] = {"empty"};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(texts); i++)
		expect_parse_error_n(texts[i], strlen(texts[i]), NULL, needles, 1);
	expect_parse_error_n(NULL, 0, NULL, needles, 1);
}

static void deeply_nested_json_is_refused_without_crashing(void **state)
{
	size_t depth = 100000;
	char *text = kv_malloc(2 * depth + 64);
	size_t n = 0;
	static const char *const needles[] = {"invalid JSON"};

	(void)state;
	n += (size_t)sprintf(text, "{\"kind\":\"kvaudit.estate\",\"version\":1,\"x\":");
	for (size_t i = 0; i < depth; i++)
		text[n++] = '[';
	for (size_t i = 0; i < depth; i++)
		text[n++] = ']';
	text[n++] = '}';
	text[n] = '\0';
	expect_parse_error_n(text, n, NULL, needles, 1);
	free(text);
}

/* ---------- files ---------- */

static void bad_files_are_refused_with_a_message_naming_them(void **state)
{
	char *dir = make_tmpdir();
	char *missing = kv_asprintf("%s/missing.json", dir);
	char *files[4];
	char *mid = j("{'kind':'kvaudit.estate',\n'version':1,\n'disks':[{'id':'/d',}]}");
	size_t mid_off = (size_t)(strstr(mid, ",}") - mid) + 1;   /* the '}' where a member name should be */
	char *garbage = j(HEAD "}\nx");
	char *garbage_byte = kv_asprintf("byte %zu", strlen(garbage) - 1);

	(void)state;
	files[0] = write_file(dir, "zero.json", "", 0);
	files[1] = write_file(dir, "blank.json", " \n\t\r\n", 5);
	files[2] = write_file(dir, "middle.json", mid, strlen(mid));
	files[3] = write_file(dir, "garbage.json", garbage, strlen(garbage));
	{
		const char *n_missing[] = {"cannot open", strerror(ENOENT)};
		const char *n_dir[] = {"directory"};
		const char *n_empty[] = {"empty"};
		const char *n_mid[] = {"invalid JSON at byte ", "line 3"};
		const char *n_garbage[] = {"after the document", garbage_byte};

		expect_load_error(missing, n_missing, ARRAY_LEN(n_missing));
		expect_load_error(dir, n_dir, ARRAY_LEN(n_dir));
		expect_load_error(files[0], n_empty, ARRAY_LEN(n_empty));
		expect_load_error(files[1], n_empty, ARRAY_LEN(n_empty));
		expect_load_error(files[2], n_mid, ARRAY_LEN(n_mid));
		{
			struct kv_err err = {{0}};
			size_t at;

			assert_null(estate_load(files[2], NULL, &err));
			at = reported_byte(err.msg);
			if (at != mid_off && at != mid_off + 1)
				fail_msg("reported byte %zu, the error is at %zu: %s", at, mid_off, err.msg);
		}
		expect_load_error(files[3], n_garbage, ARRAY_LEN(n_garbage));
	}
	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		unlink(files[i]);
		free(files[i]);
	}
	rmdir(dir);
	free(dir);
	free(missing);
	free(mid);
	free(garbage);
	free(garbage_byte);
}

static void a_snapshot_written_to_a_file_loads_like_in_memory(void **state)
{
	char *dir = make_tmpdir();
	char *raw = fixture_text(FX_CLI_VAULT, NULL);
	char *text = kv_asprintf("{\"kind\":\"kvaudit.estate\",\"version\":1,\"vaults\":[%s]}\r\n", raw);
	char *path = write_file(dir, "estate.json", text, strlen(text));
	struct kv_err err = {{0}};
	struct estate *e = estate_load(path, NULL, &err);

	(void)state;
	if (!e)
		fail_msg("%s", err.msg);
	assert_string_equal(e->path, path);
	assert_string_equal(e->vaults[0].name, "vault000002");
	estate_free(e);
	unlink(path);
	rmdir(dir);
	free(path);
	free(text);
	free(raw);
	free(dir);
}

/* ---------- known bugs (reported to the lead; these fail until fixed) ---------- */

/*
 * Each bug_ test releases everything it allocated before it fails, so the
 * ASan/LSan run stays free of leak reports even while these fail.
 */

/*
 * BUG (reported): estate.c estate_parse says "the file looks truncated" only
 * when cJSON's error offset is >= len, but cJSON 1.7.15 reports len - 1 (or
 * the start of an unterminated string), so a truncated snapshot is reported
 * as "invalid JSON at byte N (line, column)" and never as truncated.
 */
static void bug_truncated_json_says_truncated(void **state)
{
	char *raw = fixture_text(FX_CLI_VAULT, NULL);
	char *whole = kv_asprintf("{\"kind\":\"kvaudit.estate\",\"version\":1,\"vaults\":[%s]}", raw);
	size_t cuts[] = {strlen(whole) / 2, strlen(whole) - 1, strlen(whole) - 2, 40, 1};
	char *dir = make_tmpdir();
	struct kv_buf problems;

	(void)state;
	kv_buf_init(&problems, 0);
	for (size_t i = 0; i < ARRAY_LEN(cuts); i++) {
		char *path = write_file(dir, "cut.json", whole, cuts[i]);
		struct kv_err err = {{0}};
		struct estate *e = estate_load(path, NULL, &err);

		if (e) {
			estate_free(e);
			kv_buf_addf(&problems, "[cut at %zu accepted] ", cuts[i]);
		} else if (!strstr(err.msg, path) || (!strstr(err.msg, "truncated") && !strstr(err.msg, "end of data"))) {
			kv_buf_addf(&problems, "[cut at %zu of %zu: %s] ", cuts[i], strlen(whole), err.msg);
		}
		unlink(path);
		free(path);
	}
	rmdir(dir);
	free(dir);
	free(whole);
	free(raw);
	fail_on_problems(&problems);
}

/*
 * BUG (reported): estate.c load_vms checks storageProfile.dataDisks with the
 * path buffer p3 after it was overwritten with "...storageProfile.osDisk",
 * so the message names $.virtualMachines[0].properties.storageProfile.osDisk.dataDisks.
 */
static void bug_wrong_data_disks_type_names_its_own_path(void **state)
{
	char *text = j(HEAD ",'virtualMachines':[{'id':'/a/vm1','properties':{'storageProfile':{'osDisk':{'osType':'Linux'},'dataDisks':{}}}}]}");
	static const char *const needles[] = {"$.virtualMachines[0].properties.storageProfile.dataDisks: expected an array, got an object"};
	struct kv_buf problems;

	(void)state;
	kv_buf_init(&problems, 0);
	check_parse_error(text, strlen(text), NULL, needles, 1, &problems);
	free(text);
	fail_on_problems(&problems);
}

/*
 * BUG (reported): estate.c load_vms falls back to instanceView.osName for the
 * OS, but compares it for equality with "Windows"/"Linux"; real instance
 * views say "Windows Server 2016 Datacenter" (the spec example), so the
 * fallback never fires and the VM's OS stays Unknown.
 */
static void bug_os_comes_from_the_instance_view_os_name(void **state)
{
	struct estate *e = load_instance_view_vm();
	enum vm_os os = e->vms[0].os;

	(void)state;
	estate_free(e);
	assert_string_equal(vm_os_name(os), vm_os_name(OS_WINDOWS));
}

/*
 * BUG (reported): estate.c estate_parse treats NUL bytes as whitespace when it
 * checks for data after the document (strchr(" \t\r\n", '\0') matches the
 * terminator), so a snapshot followed by NUL padding is accepted.
 */
static void bug_nul_bytes_after_the_document_are_refused(void **state)
{
	char *doc = j(HEAD "}");
	size_t n = strlen(doc);
	char *text = kv_calloc(n + 8, 1);   /* n bytes of JSON, then 8 NULs */
	static const char *const needles[] = {"after the document"};
	struct kv_buf problems;

	(void)state;
	kv_buf_init(&problems, 0);
	memcpy(text, doc, n);
	check_parse_error(text, n + 8, NULL, needles, 1, &problems);
	free(text);
	free(doc);
	fail_on_problems(&problems);
}

/*
 * BUG (reported): estate.c extension_vm_id accepts any ID that contains
 * "/extensions/" anywhere, so an ID that is not a VM extension (a resource
 * group named "extensions", an empty extension name) is silently accepted and
 * dropped instead of refused as "not a VM extension ID".
 */
static void bug_vm_extension_ids_are_validated_beyond_the_word_extensions(void **state)
{
	static const char *const ids[] = {
		"/subscriptions/s/resourceGroups/extensions/providers/Microsoft.Compute/disks/d1",
		"/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/vm1/extensions/",
	};
	static const char *const needles[] = {"$.vmExtensions[0].id", "not a VM extension ID"};
	struct kv_buf problems;

	(void)state;
	kv_buf_init(&problems, 0);
	for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
		char *text = kv_asprintf("{\"kind\":\"kvaudit.estate\",\"version\":1,\"vmExtensions\":[{\"id\":\"%s\"}]}", ids[i]);

		check_parse_error(text, strlen(text), NULL, needles, ARRAY_LEN(needles), &problems);
		free(text);
	}
	fail_on_problems(&problems);
}

/*
 * BUG (reported): messages quote strings from the snapshot verbatim
 * ($.kind, tenant status, duplicate VM ID, extension ID), so a value with a
 * newline or terminal escape breaks the one-line message contract (and
 * reaches the terminal raw).
 */
static void bug_messages_stay_on_one_line_whatever_the_snapshot_says(void **state)
{
	static const char *const texts[] = {
		"{\"kind\":\"evil\\nkind\",\"version\":1}",
		"{\"kind\":\"kvaudit.estate\",\"version\":1,\"tenants\":[{\"tenantId\":\"t\",\"backupManagementService\":{\"status\":\"a\\r\\nb\"}}]}",
		"{\"kind\":\"kvaudit.estate\",\"version\":1,\"virtualMachines\":[{\"id\":\"/a\\nb\"},{\"id\":\"/A\\nB\"}]}",
		"{\"kind\":\"kvaudit.estate\",\"version\":1,\"vmExtensions\":[{\"id\":\"x\\n\\u001b[31my\"}]}",
	};
	struct kv_buf problems;

	(void)state;
	kv_buf_init(&problems, 0);
	for (size_t i = 0; i < ARRAY_LEN(texts); i++)
		check_parse_error(texts[i], strlen(texts[i]), NULL, NULL, 0, &problems);
	fail_on_problems(&problems);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* fixtures */
		cmocka_unit_test(cli_2022_vault_loads_with_absent_flags_at_their_defaults),
		cmocka_unit_test(get_vault_example_keeps_permission_arrays_as_returned),
		cmocka_unit_test(create_vault_example_reads_network_acls_as_given),
		cmocka_unit_test(create_vault_request_body_without_id_is_rejected_with_its_path),
		cmocka_unit_test(access_policies_add_response_parses_as_access_policy_entries),
		cmocka_unit_test(access_policies_add_response_body_itself_loads_as_a_vault),
		cmocka_unit_test(list_vaults_example_value_loads_as_the_vaults_list),
		cmocka_unit_test(disk_get_example_loads_id_and_managed_by),
		cmocka_unit_test(disk_list_example_loads_all_three_disks_and_finds_them_in_any_casing),
		cmocka_unit_test(cli_2022_extension_listed_apart_joins_its_vm),
		cmocka_unit_test(cli_2022_extension_embedded_in_resources_is_an_extension_of_its_vm),
		cmocka_unit_test(cli_2022_extension_both_embedded_and_listed_is_not_duplicated),
		cmocka_unit_test(extension_of_a_vm_not_in_the_estate_is_ignored),
		cmocka_unit_test(encryption_at_host_vm_example_loads),
		cmocka_unit_test(instance_view_example_gives_a_ready_agent),
		cmocka_unit_test(agent_state_follows_the_vm_agent_statuses),
		cmocka_unit_test(backup_protected_items_example_joins_on_virtual_machine_id),
		cmocka_unit_test(protected_item_falls_back_to_source_resource_id),
		cmocka_unit_test(protected_item_shares_its_vaults_id),
		cmocka_unit_test(recovery_services_vaults_example_keeps_locations),
		/* whole snapshots */
		cmocka_unit_test(full_snapshot_file_loads_every_list_and_joins_them),
		cmocka_unit_test(absent_lists_leave_every_present_flag_false),
		cmocka_unit_test(empty_lists_set_every_present_flag),
		cmocka_unit_test(unknown_fields_are_ignored_everywhere),
		cmocka_unit_test(vault_booleans_accept_json_booleans_null_and_true_false_strings),
		/* lookups */
		cmocka_unit_test(lookups_by_id_ignore_case_and_a_trailing_slash),
		cmocka_unit_test(vault_by_url_matches_the_vault_uri_host_in_any_case),
		cmocka_unit_test(error_for_explains_a_vault_by_its_id_group_subscription_or_list_url),
		cmocka_unit_test(error_for_returns_the_first_matching_error),
		/* options and tenants */
		cmocka_unit_test(sp_override_adds_a_tenant_as_found),
		cmocka_unit_test(sp_override_replaces_what_the_snapshot_says),
		cmocka_unit_test(sp_override_malformed_is_rejected_naming_the_flag),
		cmocka_unit_test(tenants_list_parses_caller_type_and_backup_sp),
		/* bad input */
		cmocka_unit_test(bad_snapshots_are_refused_with_their_json_path),
		cmocka_unit_test(a_failure_late_in_the_document_releases_everything_loaded_before),
		cmocka_unit_test(invalid_json_in_the_middle_gives_byte_offset_and_line),
		cmocka_unit_test(trailing_data_after_the_document_is_refused),
		cmocka_unit_test(whitespace_around_the_document_and_a_utf8_bom_are_accepted),
		cmocka_unit_test(parse_uses_only_len_bytes),
		cmocka_unit_test(empty_and_whitespace_only_input_is_refused_in_memory),
		cmocka_unit_test(deeply_nested_json_is_refused_without_crashing),
		cmocka_unit_test(bad_files_are_refused_with_a_message_naming_them),
		cmocka_unit_test(a_snapshot_written_to_a_file_loads_like_in_memory),
		/* known bugs: fail until fixed */
		cmocka_unit_test(bug_error_for_a_subscription_vault_list_url_explains_its_vaults),
		cmocka_unit_test(bug_truncated_json_says_truncated),
		cmocka_unit_test(bug_wrong_data_disks_type_names_its_own_path),
		cmocka_unit_test(bug_os_comes_from_the_instance_view_os_name),
		cmocka_unit_test(bug_nul_bytes_after_the_document_are_refused),
		cmocka_unit_test(bug_vm_extension_ids_are_validated_beyond_the_word_extensions),
		cmocka_unit_test(bug_messages_stay_on_one_line_whatever_the_snapshot_says),
	};

	/* KVAUDIT_SKIP_KNOWN_BUGS=1 skips the bug_ tests (a failing test leaks what it allocated, which hides real leaks under ASan). */
	if (getenv("KVAUDIT_SKIP_KNOWN_BUGS"))
		cmocka_set_skip_filter("bug_*");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
