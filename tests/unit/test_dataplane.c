/*
 * test_dataplane.c - the Key Vault data plane pass of a live collection
 * (audit/azure/collect_dataplane.c) against a fake request batch: the
 * az_batch_* calls it makes are wrapped (--wrap, tests/CMakeLists.txt), logged
 * in the order they are queued, and answered from the object URLs the estate
 * names.  It checks which objects count as one (a URL's case, a trailing '/',
 * a vault's origin), the requests and their order, and what the snapshot and
 * errors[] receive.
 *
 * `test_dataplane --bench found|missing ESTATE` runs the pass once on a
 * generated estate (bench/gen_estate.py), every BEK secret found or none,
 * and prints what it did: for callgrind or /usr/bin/time, not for ctest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "audit/azure/batch.h"
#include "audit/azure/cloud.h"
#include "audit/azure/collect_internal.h"
#include "audit/util/idmap.h"
#include "audit/util/util.h"

/* ---------- the fake batch ---------- */

struct job {
	char *url;
	bool list;
	cJSON *items;
	az_batch_fn fn;
	void *ud;
};

static struct {
	struct job *v;
	size_t n, cap;
	cJSON *log;             /* "GET url" / "LIST url", in the order queued */
	const char *missing;    /* a host (any case) whose secrets are not found; "*": every secret */
	cJSON *deleted;         /* what every deletedsecrets list answers */
	struct idmap versions;  /* "https://host/secrets/NAME" (any case) -> index in ids */
	cJSON **ids;            /* the versions each names: the estate's secret URLs */
	size_t nids;
} fake;

static int fake_batch;

struct az_batch *__wrap_az_batch_new(struct az_client *c, int concurrency, struct kv_err *err);
void __wrap_az_batch_get(struct az_batch *b, const char *url, const char *tenant, az_batch_fn fn, void *ud);
void __wrap_az_batch_list(struct az_batch *b, const char *url, const char *tenant, cJSON *items, az_batch_fn fn,
                          void *ud);
void __wrap_az_batch_run(struct az_batch *b);

struct az_batch *__wrap_az_batch_new(struct az_client *c, int concurrency, struct kv_err *err)
{
	(void)c;
	(void)concurrency;
	(void)err;
	return (struct az_batch *)&fake_batch;
}

static void queue(const char *url, bool list, cJSON *items, az_batch_fn fn, void *ud)
{
	char *line = kv_asprintf("%s %s", list ? "LIST" : "GET", url);

	if (fake.log)
		cJSON_AddItemToArray(fake.log, cJSON_CreateString(line));
	free(line);
	if (fake.n == fake.cap) {
		fake.cap = fake.cap ? 2 * fake.cap : 64;
		fake.v = kv_realloc(fake.v, fake.cap * sizeof(*fake.v));
	}
	fake.v[fake.n++] = (struct job){kv_strdup(url), list, items, fn, ud};
}

void __wrap_az_batch_get(struct az_batch *b, const char *url, const char *tenant, az_batch_fn fn, void *ud)
{
	assert_ptr_equal(b, &fake_batch);
	(void)tenant;
	queue(url, false, NULL, fn, ud);
}

void __wrap_az_batch_list(struct az_batch *b, const char *url, const char *tenant, cJSON *items, az_batch_fn fn,
                          void *ud)
{
	assert_ptr_equal(b, &fake_batch);
	(void)tenant;
	queue(url, true, items, fn, ud);
}

/* Keeps url as a version the fake's versions lists name. */
static void fake_add_version(const char *url, size_t n)
{
	char *id = kv_strndup(url, n), *slash = strrchr(id, '/');
	char *name;
	size_t i;

	if (!slash)
		goto out;
	name = kv_strndup(id, (size_t)(slash - id));
	if (!idmap_get(&fake.versions, name, &i)) {
		i = fake.nids++;
		fake.ids = kv_realloc(fake.ids, fake.nids * sizeof(*fake.ids));
		fake.ids[i] = cJSON_CreateArray();
		idmap_put(&fake.versions, name, i);
	}
	cJSON_AddItemToArray(fake.ids[i], cJSON_CreateString(id));
	free(name);
out:
	free(id);
}

/* Every "secretUrl":"…" of a (compact) estate's text. */
static void fake_add_versions_of(const char *text)
{
	static const char tag[] = "\"secretUrl\":\"";

	for (const char *p = strstr(text, tag); p; p = strstr(p, tag)) {
		p += strlen(tag);
		fake_add_version(p, strcspn(p, "\""));
	}
}

static void answer_not_found(struct job *j)
{
	struct az_failure f = {HTTP_NOT_FOUND, 404, "NotFound", "not found"};
	struct kv_err err = {{0}};

	j->fn(j->ud, HTTP_NOT_FOUND, NULL, &f, &err);
}

static bool contains_ci(const char *s, const char *needle)
{
	for (; *s; s++)
		if (strncasecmp(s, needle, strlen(needle)) == 0)
			return true;
	return false;
}

static void answer_versions(struct job *j)
{
	char *name = kv_strndup(j->url, strlen(j->url) - strlen(strstr(j->url, "/versions?")));
	const cJSON *id;
	size_t i;

	if (strcmp(fake.missing, "*") == 0 || contains_ci(j->url, fake.missing)) {
		answer_not_found(j);
	} else {
		if (idmap_get(&fake.versions, name, &i))
			cJSON_ArrayForEach(id, fake.ids[i]) {
				cJSON *it = cJSON_CreateObject();

				cJSON_AddStringToObject(it, "id", id->valuestring);
				cJSON_AddItemToObject(it, "attributes", cJSON_CreateObject());
				cJSON_AddBoolToObject(cJSON_GetObjectItem(it, "attributes"), "enabled", true);
				cJSON_AddItemToArray(j->items, it);
			}
		j->fn(j->ud, HTTP_OK, NULL, NULL, NULL);
	}
	free(name);
}

void __wrap_az_batch_run(struct az_batch *b)
{
	assert_ptr_equal(b, &fake_batch);
	for (size_t k = 0; k < fake.n; k++) {
		struct job *j = &fake.v[k];

		if (j->list && strstr(j->url, "/deletedsecrets?")) {
			const cJSON *it;

			cJSON_ArrayForEach(it, fake.deleted)
				cJSON_AddItemToArray(j->items, cJSON_Duplicate(it, true));
			j->fn(j->ud, HTTP_OK, NULL, NULL, NULL);
		} else if (j->list) {
			answer_versions(j);
		} else if (strstr(j->url, "/deletedkeys/")) {
			answer_not_found(j);
		} else {
			cJSON *body = cJSON_CreateObject(), *key = cJSON_AddObjectToObject(body, "key");

			cJSON_AddItemToObject(key, "kid", cJSON_CreateStringReference("(the key's URL)"));
			j->fn(j->ud, HTTP_OK, body, NULL, NULL);
		}
		free(j->url);
	}
	fake.n = 0;
}

static void fake_reset(void)
{
	for (size_t i = 0; i < fake.nids; i++)
		cJSON_Delete(fake.ids[i]);
	free(fake.ids);
	free(fake.v);
	cJSON_Delete(fake.log);
	cJSON_Delete(fake.deleted);
	idmap_release(&fake.versions);
	memset(&fake, 0, sizeof(fake));
	idmap_init(&fake.versions);
}

/* ---------- a run over one estate ---------- */

struct pass {
	struct cloud cloud;
	struct az_client client;
	struct collect_opts opts;
	struct run r;
};

/* The data plane pass over the estate doc (owned by p), as collect.c runs it after the engines. */
static void pass_run(struct pass *p, cJSON *doc)
{
	struct kv_err err = {{0}};

	memset(p, 0, sizeof(*p));
	assert_true(cloud_load("AzureCloud", &p->cloud, &err));
	p->client.cloud = &p->cloud;
	p->r.c = &p->client;
	p->r.o = &p->opts;
	p->r.doc = doc;
	/* What collect.c's snapshot holds by then: no data plane lists yet, errors and keys to fill. */
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "secrets");
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "deletedSecrets");
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "deletedKeys");
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "keys");
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "errors");
	p->r.keys = cJSON_AddArrayToObject(doc, "keys");
	p->r.errors = cJSON_AddArrayToObject(doc, "errors");
	collect_data_plane(&p->r);
}

static void pass_release(struct pass *p)
{
	cJSON_Delete(p->r.doc);
	cloud_release(&p->cloud);
}

/* ---------- which objects are one ---------- */

#define T1 "a1a1a1a1-0000-4000-8000-000000000001"
#define S1 "51000000-0000-4000-8000-000000000001"
#define RG1 "/subscriptions/" S1 "/resourceGroups/rg-app"
#define VM_A RG1 "/providers/Microsoft.Compute/virtualMachines/vm-a"
#define KV_A RG1 "/providers/Microsoft.KeyVault/vaults/kv-a"
#define KV_B RG1 "/providers/Microsoft.KeyVault/vaults/kv-b"
#define V32 "0123456789abcdef0123456789abcdef"
#define SEC1 "https://kv-a.vault.azure.net/secrets/S-1/" V32
#define SEC1_CASE "https://KV-A.vault.azure.net/secrets/s-1/0123456789ABCDEF0123456789ABCDEF"
#define GONE1 "https://kv-b.vault.azure.net/secrets/GONE-1/" V32
#define GONE2 "https://KV-B.vault.azure.net/secrets/GONE-2/" V32
#define GONE3 "https://kv-b.vault.azure.net/secrets/GONE-3/" V32
#define KEY1 "https://kv-a.vault.azure.net/keys/K-1/" V32
#define KEY1_CASE "https://KV-A.VAULT.AZURE.NET/KEYS/K-1/" V32
#define API "?api-version=" API_KEYVAULT_DATA

#define DISK(name, vault, sec, kek) \
	"{'name':'" name "','encryptionSettings':[{'enabled':true,'diskEncryptionKey':{'sourceVault':{'id':'" vault \
	"'},'secretUrl':'" sec "'}" kek "}]}"
#define KEK(url) ",'keyEncryptionKey':{'sourceVault':{'id':'" KV_A "'},'keyUrl':'" url "'}"
#define VAULT(id, host) \
	"{'id':'" id "','location':'westeurope','properties':{'tenantId':'" T1 "','vaultUri':'https://" host \
	".vault.azure.net/','accessPolicies':[]}}"

/*
 * One VM whose disks name: a secret and its key (found), the same two in
 * other case (one object each), the secret with a trailing '/' (not the same
 * object: an invalid URL), and three secrets not found in vault kv-b, one
 * of them through the origin https://KV-B… (a vault of its own: origins
 * compare exactly).
 */
static const char ESTATE[] =
	"{'kind':'kvaudit.estate','version':1,"
	"'subscriptions':[{'id':'/subscriptions/" S1 "','subscriptionId':'" S1 "','tenantId':'" T1 "'}],"
	"'tenants':[{'tenantId':'" T1 "','callerUserType':'Member'}],"
	"'vaults':[" VAULT(KV_A, "kv-a") "," VAULT(KV_B, "kv-b") "],"
	"'virtualMachines':[{'id':'" VM_A "','location':'westeurope','properties':{'instanceView':{'disks':["
	DISK("os", KV_A, SEC1, KEK(KEY1)) ","
	DISK("d1", KV_A, SEC1_CASE, KEK(KEY1_CASE)) ","
	DISK("d2", KV_A, SEC1 "/", "") ","
	DISK("d3", KV_B, GONE1, "") ","
	DISK("d4", KV_B, GONE2, "") ","
	DISK("d5", KV_B, GONE3, "")
	"]}}}]}";

static cJSON *parse_quoted(const char *s)
{
	char *text = kv_strdup(s);
	cJSON *doc;

	for (char *q = text; *q; q++)
		if (*q == '\'')
			*q = '"';
	fake_add_versions_of(text);
	doc = cJSON_Parse(text);
	free(text);
	assert_non_null(doc);
	return doc;
}

static void assert_strings(const cJSON *arr, const char *const *want, size_t n)
{
	size_t i = 0;
	const cJSON *it;

	cJSON_ArrayForEach(it, arr) {
		assert_true(i < n);
		assert_string_equal(cJSON_GetStringValue(it), want[i]);
		i++;
	}
	assert_int_equal(i, n);
}

static void one_request_per_object_in_the_order_the_disks_name_them(void **state)
{
	struct pass p;
	static const char *const want[] = {
		"LIST " "https://kv-a.vault.azure.net/secrets/S-1/versions" API,
		"GET " KEY1 API,
		"LIST " "https://kv-b.vault.azure.net/secrets/GONE-1/versions" API,
		"LIST " "https://KV-B.vault.azure.net/secrets/GONE-2/versions" API,
		"LIST " "https://kv-b.vault.azure.net/secrets/GONE-3/versions" API,
		/* the second round: each vault's deleted secrets once; an origin in other case is another vault */
		"LIST " "https://kv-b.vault.azure.net/deletedsecrets" API,
		"LIST " "https://KV-B.vault.azure.net/deletedsecrets" API,
	};
	const cJSON *errors, *e;

	(void)state;
	fake_reset();
	fake.log = cJSON_CreateArray();
	fake.missing = "kv-b.vault";
	fake.deleted = cJSON_Parse("[{\"id\":\"https://kv-b.vault.azure.net/secrets/GONE-1\","
	                           "\"recoveryId\":\"https://kv-b.vault.azure.net/deletedsecrets/GONE-1\"}]");
	pass_run(&p, parse_quoted(ESTATE));
	assert_strings(fake.log, want, sizeof(want) / sizeof(want[0]));

	/* The secret's one version (twice in the list: the estate names it in two cases), never twice. */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(p.r.doc, "secrets")), 1);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
	                            cJSON_GetArrayItem(cJSON_GetObjectItem(p.r.doc, "secrets"), 0), "id")), SEC1);
	assert_int_equal(cJSON_GetArraySize(p.r.keys), 1);
	/* GONE-1 is among kv-b's deleted secrets; GONE-2's vault (KV-B) and GONE-3 do not list it. */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(p.r.doc, "deletedSecrets")), 1);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(p.r.doc, "deletedKeys")), 0);

	/* The URL with a trailing '/' is an object of its own, recorded and never requested. */
	errors = cJSON_GetObjectItem(p.r.doc, "errors");
	assert_int_equal(cJSON_GetArraySize(errors), 1);
	e = cJSON_GetArrayItem(errors, 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "scope")), SEC1 "/");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "code")), "InvalidSecretUrl");
	pass_release(&p);
	fake_reset();
}

/* ---------- the benchmark ---------- */

static int bench(const char *mode, const char *path)
{
	struct kv_err err = {{0}};
	size_t len = 0;
	char *text = kv_read_file(path, (size_t)4 << 30, &len, &err);
	struct pass p;
	cJSON *doc;
	clock_t t0, t1;

	if (!text) {
		fprintf(stderr, "test_dataplane: %s\n", err.msg);
		return 2;
	}
	fake_reset();
	fake.missing = strcmp(mode, "missing") == 0 ? "*" : "(none)";
	fake.deleted = cJSON_CreateArray();
	fake_add_versions_of(text);
	doc = cJSON_ParseWithLength(text, len);
	free(text);
	if (!doc) {
		fprintf(stderr, "test_dataplane: %s: not JSON\n", path);
		return 2;
	}
	t0 = clock();
	pass_run(&p, doc);
	t1 = clock();
	printf("the pass: %.2f s CPU; %zu secret names; secrets %d, deletedSecrets %d, keys %d, errors %d\n",
	       (double)(t1 - t0) / CLOCKS_PER_SEC, fake.nids, cJSON_GetArraySize(cJSON_GetObjectItem(doc, "secrets")),
	       cJSON_GetArraySize(cJSON_GetObjectItem(doc, "deletedSecrets")), cJSON_GetArraySize(p.r.keys),
	       cJSON_GetArraySize(p.r.errors));
	pass_release(&p);
	fake_reset();
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_request_per_object_in_the_order_the_disks_name_them),
	};

	if (argc == 4 && strcmp(argv[1], "--bench") == 0)
		return bench(argv[2], argv[3]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
