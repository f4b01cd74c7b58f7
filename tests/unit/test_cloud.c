/*
 * test_cloud.c - cloud definitions (audit/azure/cloud.h): the built-in
 * clouds, cloud files as `az cloud show` prints them, which URLs may carry
 * which token, and the token scopes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit/azure/cloud.h"
#include "audit/util/util.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

static char tmpdir[256];

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kvaudit-test-cloud-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to tmpdir/name and returns the path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* A cloud file as `az cloud show -n AzureCloud` prints it (azure-cli 2.6x), with kvaudit's additions. */
static const char az_public_json[] =
	"{\n"
	"  \"endpoints\": {\n"
	"    \"activeDirectory\": \"https://login.microsoftonline.com\",\n"
	"    \"activeDirectoryDataLakeResourceId\": \"https://datalake.azure.net/\",\n"
	"    \"activeDirectoryGraphResourceId\": \"https://graph.windows.net/\",\n"
	"    \"activeDirectoryResourceId\": \"https://management.core.windows.net/\",\n"
	"    \"appInsightsResourceId\": \"https://api.applicationinsights.io\",\n"
	"    \"gallery\": null,\n"
	"    \"management\": \"https://management.core.windows.net/\",\n"
	"    \"mediaResourceId\": \"https://rest.media.azure.net\",\n"
	"    \"microsoftGraphResourceId\": \"https://graph.microsoft.com/\",\n"
	"    \"ossrdbmsResourceId\": \"https://ossrdbms-aad.database.windows.net\",\n"
	"    \"resourceManager\": \"https://management.azure.com/\",\n"
	"    \"sqlManagement\": \"https://management.core.windows.net:8443/\",\n"
	"    \"vmImageAliasDoc\": \"https://raw.githubusercontent.com/Azure/azure-rest-api-specs/main/arm-compute/quickstart-templates/aliases.json\"\n"
	"  },\n"
	"  \"isActive\": true,\n"
	"  \"name\": \"MyCloud\",\n"
	"  \"profile\": \"latest\",\n"
	"  \"suffixes\": {\n"
	"    \"acrLoginServerEndpoint\": \".azurecr.io\",\n"
	"    \"keyvaultDns\": \".vault.azure.net\",\n"
	"    \"sqlServerHostname\": \".database.windows.net\",\n"
	"    \"storageEndpoint\": \"core.windows.net\"\n"
	"  }\n"
	"}\n";

/* An emulator serving every endpoint on one port under a path prefix. */
static const char emu_json[] =
	"{\"name\": \"Emulator\",\n"
	" \"endpoints\": {\"resourceManager\": \"https://127.0.0.1:8443/arm/\",\n"
	"   \"activeDirectory\": \"https://127.0.0.1:8443/login\",\n"
	"   \"activeDirectoryResourceId\": \"https://management.core.windows.net/\",\n"
	"   \"microsoftGraphResourceId\": \"https://127.0.0.1:8443/graph/\"},\n"
	" \"suffixes\": {\"keyvaultDns\": \".Vault.Emu\"},\n"
	" \"caBundle\": \"ca.pem\",\n"
	" \"backupAppId\": \"262044b1-e2ce-469f-a196-69ab7ada62d3\"}\n";

static const char fake_pem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

/* Loads json (with "%s"-free text) from a file named name; returns ok and fills err. */
static bool load_text(const char *name, const char *json, struct cloud *c, struct kv_err *err)
{
	const char *path = write_file(name, json);

	memset(err, 0, sizeof(*err));
	return cloud_load(path, c, err);
}

/* Replaces the first occurrence of from with to in src (caller frees). */
static char *replace(const char *src, const char *from, const char *to)
{
	const char *at = strstr(src, from);

	assert_non_null(at);
	return kv_asprintf("%.*s%s%s", (int)(at - src), src, to, at + strlen(from));
}

/* Expects loading json (a variant of az_public_json) to fail with "<path>: <want>". */
static void expect_load_error(const char *json, const char *want)
{
	struct cloud c;
	struct kv_err err;
	char *full;
	const char *path = write_file("bad.json", json);

	memset(&err, 0, sizeof(err));
	assert_false(cloud_load(path, &c, &err));
	full = kv_asprintf("%s: %s", path, want);
	if (strcmp(err.msg, full) != 0)
		fail_msg("got  \"%s\"\nwant \"%s\"", err.msg, full);
	free(full);
	/* A failed load owns nothing. */
	assert_null(c.name);
	assert_null(c.arm);
	cloud_release(&c);
}

static void expect_variant_error(const char *from, const char *to, const char *want)
{
	char *json = replace(az_public_json, from, to);

	expect_load_error(json, want);
	free(json);
}

/* ---- built-in clouds ---- */

static void builtin_public_cloud_has_azure_endpoints(void **state)
{
	struct cloud c;
	struct kv_err err = {{0}};

	(void)state;
	assert_true(cloud_load("AzureCloud", &c, &err));
	assert_string_equal(c.name, "AzureCloud");
	assert_string_equal(c.arm, "https://management.azure.com");
	assert_string_equal(c.login, "https://login.microsoftonline.com");
	assert_string_equal(c.arm_audience, "https://management.core.windows.net/");
	assert_string_equal(c.graph, "https://graph.microsoft.com");
	assert_string_equal(c.keyvault_suffix, "vault.azure.net");
	assert_null(c.ca_bundle);
	assert_string_equal(c.backup_app_id, "262044b1-e2ce-469f-a196-69ab7ada62d3");
	cloud_release(&c);
	assert_null(c.name);
	cloud_release(&c); /* safe to repeat */
}

static void builtin_us_government_cloud(void **state)
{
	struct cloud c;
	struct kv_err err = {{0}};

	(void)state;
	assert_true(cloud_load("AzureUSGovernment", &c, &err));
	assert_string_equal(c.name, "AzureUSGovernment");
	assert_string_equal(c.arm, "https://management.usgovcloudapi.net");
	assert_string_equal(c.login, "https://login.microsoftonline.us");
	assert_string_equal(c.arm_audience, "https://management.core.usgovcloudapi.net/");
	assert_string_equal(c.graph, "https://graph.microsoft.us");
	assert_string_equal(c.keyvault_suffix, "vault.usgovcloudapi.net");
	assert_string_equal(c.backup_app_id, "ff281ffe-705c-4f53-9f37-a40e6f2c68f3");
	cloud_release(&c);
}

static void builtin_china_cloud_has_no_known_backup_app(void **state)
{
	struct cloud c;
	struct kv_err err = {{0}};

	(void)state;
	assert_true(cloud_load("AzureChinaCloud", &c, &err));
	assert_string_equal(c.arm, "https://management.chinacloudapi.cn");
	assert_string_equal(c.login, "https://login.chinacloudapi.cn");
	assert_string_equal(c.arm_audience, "https://management.core.chinacloudapi.cn/");
	assert_string_equal(c.graph, "https://microsoftgraph.chinacloudapi.cn");
	assert_string_equal(c.keyvault_suffix, "vault.azure.cn");
	assert_null(c.backup_app_id);
	cloud_release(&c);
}

static void builtin_names_are_case_insensitive(void **state)
{
	struct cloud c;
	struct kv_err err = {{0}};

	(void)state;
	assert_true(cloud_load("azurecloud", &c, &err));
	assert_string_equal(c.name, "AzureCloud");
	cloud_release(&c);
	assert_true(cloud_load("AZUREUSGOVERNMENT", &c, &err));
	assert_string_equal(c.name, "AzureUSGovernment");
	cloud_release(&c);
}

static void unknown_name_is_tried_as_a_file(void **state)
{
	struct cloud c;
	struct kv_err err = {{0}};

	(void)state;
	assert_false(cloud_load("AzureGermanCloud", &c, &err));
	/* Neither a name nor a file: the message says what is accepted. */
	assert_string_equal(err.msg, "unknown cloud \"AzureGermanCloud\": expected AzureCloud, AzureUSGovernment, "
	                    "AzureChinaCloud or the path of a cloud JSON file (as `az cloud show` prints it)");
	/* A path is a file that was meant: its own error. */
	assert_false(cloud_load("./AzureGermanCloud", &c, &err));
	assert_non_null(strstr(err.msg, "cannot open './AzureGermanCloud'"));
	assert_false(cloud_load("", &c, &err));
	assert_non_null(strstr(err.msg, "no cloud given"));
	assert_false(cloud_load(NULL, &c, &err));
}

/* ---- cloud files ---- */

static void az_cloud_show_output_loads(void **state)
{
	struct cloud c;
	struct kv_err err;

	(void)state;
	assert_true(load_text("az.json", az_public_json, &c, &err));
	assert_string_equal(c.name, "MyCloud");
	assert_string_equal(c.arm, "https://management.azure.com");
	assert_string_equal(c.login, "https://login.microsoftonline.com");
	assert_string_equal(c.arm_audience, "https://management.core.windows.net/");
	assert_string_equal(c.graph, "https://graph.microsoft.com");
	assert_string_equal(c.keyvault_suffix, "vault.azure.net"); /* the leading '.' is gone */
	assert_null(c.ca_bundle);
	assert_null(c.backup_app_id);
	cloud_release(&c);
}

static void cloud_file_with_every_field_and_relative_ca_bundle(void **state)
{
	struct cloud c;
	struct kv_err err;
	char *want_ca;

	(void)state;
	write_file("ca.pem", fake_pem);
	assert_true(load_text("emu.json", emu_json, &c, &err));
	assert_string_equal(c.name, "Emulator");
	assert_string_equal(c.arm, "https://127.0.0.1:8443/arm");
	assert_string_equal(c.login, "https://127.0.0.1:8443/login");
	assert_string_equal(c.graph, "https://127.0.0.1:8443/graph");
	assert_string_equal(c.keyvault_suffix, "vault.emu");
	assert_string_equal(c.backup_app_id, "262044b1-e2ce-469f-a196-69ab7ada62d3");
	want_ca = kv_asprintf("%s/ca.pem", tmpdir);
	assert_string_equal(c.ca_bundle, want_ca);
	free(want_ca);
	cloud_release(&c);
}

static void absolute_ca_bundle_is_kept(void **state)
{
	struct cloud c;
	struct kv_err err;
	char *abs = kv_asprintf("%s/ca.pem", tmpdir);
	char *quoted = kv_asprintf("\"%s\"", abs);
	char *json = replace(emu_json, "\"ca.pem\"", quoted);

	(void)state;
	write_file("ca.pem", fake_pem);
	assert_true(load_text("abs.json", json, &c, &err));
	assert_string_equal(c.ca_bundle, abs);
	cloud_release(&c);
	free(json);
	free(quoted);
	free(abs);
}

static void missing_or_empty_ca_bundle_is_reported(void **state)
{
	char *json = replace(emu_json, "\"ca.pem\"", "\"nope.pem\"");
	char *want = kv_asprintf("$.caBundle: cannot open '%s/nope.pem': No such file or directory", tmpdir);

	(void)state;
	expect_load_error(json, want);
	free(json);
	free(want);
	write_file("empty.pem", "not a certificate\n");
	json = replace(emu_json, "\"ca.pem\"", "\"empty.pem\"");
	want = kv_asprintf("$.caBundle: '%s/empty.pem' holds no PEM certificate", tmpdir);
	expect_load_error(json, want);
	free(json);
	free(want);
}

static void name_defaults_to_the_path(void **state)
{
	struct cloud c;
	struct kv_err err;
	char *json = replace(az_public_json, "\"name\": \"MyCloud\",", "");
	char *want;

	(void)state;
	assert_true(load_text("noname.json", json, &c, &err));
	want = kv_asprintf("%s/noname.json", tmpdir);
	assert_string_equal(c.name, want);
	free(want);
	free(json);
	cloud_release(&c);
}

static void non_https_endpoints_are_rejected_with_their_path(void **state)
{
	(void)state;
	expect_variant_error("\"https://management.azure.com/\"", "\"http://x\"",
	                     "$.endpoints.resourceManager: expected an https URL, got \"http://x\"");
	expect_variant_error("\"https://login.microsoftonline.com\"", "\"ftp://login\"",
	                     "$.endpoints.activeDirectory: expected an https URL, got \"ftp://login\"");
	expect_variant_error("\"https://graph.microsoft.com/\"", "\"graph.microsoft.com\"",
	                     "$.endpoints.microsoftGraphResourceId: expected an https URL, got \"graph.microsoft.com\"");
	expect_variant_error("\"activeDirectoryResourceId\": \"https://management.core.windows.net/\"",
	                     "\"activeDirectoryResourceId\": \"http://management.core.windows.net/\"",
	                     "$.endpoints.activeDirectoryResourceId: expected an https URL, got "
	                     "\"http://management.core.windows.net/\"");
}

static void user_info_query_and_fragment_are_rejected(void **state)
{
	static const char *const bad[] = {
		"https://user:pw@management.azure.com/",
		"https://management.azure.com/?x=1",
		"https://management.azure.com/#top",
		"https://management.azure.com:99999/",
		"https://management azure.com/",
		"https://management.azure.com\\@evil.com/",
		"https:///nohost",
		"https://management.azure.com/a/../b",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char *to = kv_asprintf("\"%s\"", bad[i]);
		char *want = kv_asprintf("$.endpoints.resourceManager: expected an https URL without user info, "
		                         "query or fragment, got \"%s\"",
		                         bad[i]);
		char *json = replace(az_public_json, "\"https://management.azure.com/\"", "\"X\"");
		char *json2;

		/* JSON-escape the backslash. */
		if (strchr(bad[i], '\\')) {
			free(to);
			to = kv_strdup("\"https://management.azure.com\\\\@evil.com/\"");
		}
		json2 = replace(json, "\"X\"", to);
		expect_load_error(json2, want);
		free(json2);
		free(json);
		free(want);
		free(to);
	}
}

static void missing_and_mistyped_fields_are_reported(void **state)
{
	(void)state;
	expect_variant_error("\"microsoftGraphResourceId\": \"https://graph.microsoft.com/\",", "",
	                     "$.endpoints.microsoftGraphResourceId: missing: expected a string");
	expect_variant_error("\"resourceManager\": \"https://management.azure.com/\",", "\"resourceManager\": 42,",
	                     "$.endpoints.resourceManager: expected a string, got a number");
	expect_variant_error("\"activeDirectory\": \"https://login.microsoftonline.com\",",
	                     "\"activeDirectory\": \"\",",
	                     "$.endpoints.activeDirectory: expected a non-empty string");
	expect_variant_error("\"keyvaultDns\": \".vault.azure.net\",", "",
	                     "$.suffixes.keyvaultDns: missing: expected a string");
	expect_variant_error("\"keyvaultDns\": \".vault.azure.net\",", "\"keyvaultDns\": \".vault..net\",",
	                     "$.suffixes.keyvaultDns: expected a DNS suffix such as \".vault.azure.net\", got "
	                     "\"vault..net\"");
	expect_variant_error("\"name\": \"MyCloud\",", "\"name\": [],", "$.name: expected a string, got an array");
	expect_variant_error("\"isActive\": true,", "\"backupAppId\": \"not-a-guid\",",
	                     "$.backupAppId: expected an application ID (a GUID), got \"not-a-guid\"");
	expect_variant_error("\"isActive\": true,", "\"caBundle\": true,", "$.caBundle: expected a string, got a boolean");
	expect_load_error("{\"name\": \"x\", \"suffixes\": {}}", "$.endpoints: expected an object, got nothing");
	expect_load_error("{\"endpoints\": {}, \"suffixes\": []}", "$.suffixes: expected an object, got an array");
	expect_load_error("[1, 2]", "$: expected an object as `az cloud show` prints it, got an array");
	expect_load_error("{\"name\": ", "invalid JSON at byte 8 of 9");
}

static void a_directory_is_not_a_cloud_file(void **state)
{
	struct cloud c;
	struct kv_err err = {{0}};

	(void)state;
	assert_false(cloud_load(tmpdir, &c, &err));
	assert_non_null(strstr(err.msg, "is a directory"));
}

/* ---- classification ---- */

struct classify_case {
	const char *url;
	enum cloud_target want;
};

static const struct classify_case public_cases[] = {
	{"https://management.azure.com/subscriptions?api-version=2022-12-01", TARGET_ARM},
	{"https://management.azure.com", TARGET_ARM},
	{"https://management.azure.com/", TARGET_ARM},
	{"https://management.azure.com?api-version=1", TARGET_ARM},
	{"https://MANAGEMENT.Azure.COM/subscriptions", TARGET_ARM},
	{"HTTPS://management.azure.com/subscriptions", TARGET_ARM},
	{"https://management.azure.com:443/subscriptions", TARGET_ARM},
	{"https://management.azure.com:8443/subscriptions", TARGET_NONE},
	{"https://management.azure.com:/subscriptions", TARGET_NONE},
	{"https://management.azure.com:0/", TARGET_NONE},
	{"https://management.azure.com:65536/", TARGET_NONE},
	{"https://management.azure.com:44a/", TARGET_NONE},
	{"http://management.azure.com/subscriptions", TARGET_NONE},
	{"ftp://management.azure.com/", TARGET_NONE},
	{"//management.azure.com/", TARGET_NONE},
	{"management.azure.com/", TARGET_NONE},
	{"https://management.azure.com.evil.com/", TARGET_NONE},
	{"https://management.azure.com./", TARGET_NONE},
	{"https://evil.com/management.azure.com", TARGET_NONE},
	{"https://management.azure.com@evil.com/", TARGET_NONE},
	{"https://user@management.azure.com/", TARGET_NONE},
	{"https://user:pw@management.azure.com/", TARGET_NONE},
	{"https://management.azure.com\\@evil.com/", TARGET_NONE},
	{"https://management.azure.com\\.evil.com/", TARGET_NONE},
	{"https://management.azure.com /x", TARGET_NONE},
	{"https://management.azure.com/x\n", TARGET_NONE},
	{"https://management.azure.com/x\t", TARGET_NONE},
	{"https://management.azure.com/\x7f", TARGET_NONE},
	{"https://management.azure.com/caf\xc3\xa9", TARGET_NONE},
	{"https://management.azure.com/subscriptions/../x", TARGET_NONE},
	{"https://management.azure.com/subscriptions/%2e%2E/x", TARGET_NONE},
	{"https://management.azure.com/subscriptions%2fx", TARGET_NONE},
	/* A stray '%' must not hide what follows it (found by fuzz_url). */
	{"https://management.azure.com/%%2f", TARGET_NONE},
	{"https://management.azure.com/subscriptions/s/a%/../x", TARGET_NONE},
	{"https://management.azure.com/subscriptions/s/a%zz", TARGET_NONE},
	{"https://management.azure.com/subscriptions/s/a%41b", TARGET_ARM},
	{"https://management.azure.com/a/./b", TARGET_NONE},
	{"https://management.azure.com/a/...b/c", TARGET_ARM},
	{"https://management.azure.com/a.json", TARGET_ARM},
	{"https://%6danagement.azure.com/", TARGET_NONE},
	{"https://[::1]/", TARGET_NONE},
	{"https://", TARGET_NONE},
	{"", TARGET_NONE},
	{"https://graph.microsoft.com/v1.0/me?$select=id", TARGET_GRAPH},
	{"https://graph.microsoft.com:443/v1.0/servicePrincipals(appId='x')", TARGET_GRAPH},
	{"https://graph.microsoft.com.evil.com/v1.0/me", TARGET_NONE},
	{"https://login.microsoftonline.com/tid/oauth2/v2.0/token", TARGET_LOGIN},
	{"https://myvault.vault.azure.net/keys/kek/0123?api-version=7.4", TARGET_KEYVAULT},
	{"https://MyVault.VAULT.Azure.NET/keys/kek", TARGET_KEYVAULT},
	{"https://my-vault-01.vault.azure.net:443/", TARGET_KEYVAULT},
	{"https://myvault.vault.azure.net", TARGET_KEYVAULT},
	{"https://myvault.vault.azure.net:8443/keys/kek", TARGET_NONE},
	{"http://myvault.vault.azure.net/keys/kek", TARGET_NONE},
	{"https://vault.azure.net/keys/kek", TARGET_NONE},
	{"https://.vault.azure.net/", TARGET_NONE},
	{"https://a.b.vault.azure.net/", TARGET_NONE},
	{"https://-x.vault.azure.net/", TARGET_NONE},
	{"https://myvaultvault.azure.net/", TARGET_NONE},
	{"https://vault.azure.net.evil.com/", TARGET_NONE},
	{"https://myvault.vault.azure.net.evil.com/", TARGET_NONE},
	{"https://evil.com/vault.azure.net", TARGET_NONE},
	{"https://evil.com/x.vault.azure.net/", TARGET_NONE},
	{"https://myvault.vault.azure.net@evil.com/", TARGET_NONE},
	{"https://evil.com@myvault.vault.azure.net/", TARGET_NONE},
	{"https://myvault.vault.usgovcloudapi.net/", TARGET_NONE},
};

static const struct classify_case emulator_cases[] = {
	{"https://127.0.0.1:8443/arm/subscriptions?api-version=2022-12-01", TARGET_ARM},
	{"https://127.0.0.1:8443/arm", TARGET_ARM},
	{"https://127.0.0.1:8443/arm/", TARGET_ARM},
	{"https://127.0.0.1:8443/arm?api-version=1", TARGET_ARM},
	{"https://127.0.0.1:8443/armx/subscriptions", TARGET_NONE},
	{"https://127.0.0.1:8443/ARM/subscriptions", TARGET_NONE},
	{"https://127.0.0.1:8443/subscriptions", TARGET_NONE},
	{"https://127.0.0.1:8443/", TARGET_NONE},
	{"https://127.0.0.1:8443", TARGET_NONE},
	{"https://127.0.0.1/arm/subscriptions", TARGET_NONE},
	{"https://127.0.0.1:443/arm/subscriptions", TARGET_NONE},
	{"https://127.0.0.1:9443/arm/subscriptions", TARGET_NONE},
	{"https://localhost:8443/arm/subscriptions", TARGET_NONE},
	{"http://127.0.0.1:8443/arm/subscriptions", TARGET_NONE},
	{"https://127.0.0.1:8443/arm/../graph/v1.0/me", TARGET_NONE},
	{"https://127.0.0.1:8443/arm/%2E%2E/graph/v1.0/me", TARGET_NONE},
	{"https://127.0.0.1:8443/arm/.%2e/graph", TARGET_NONE},
	{"https://127.0.0.1:8443/arm%2F..%2Fgraph", TARGET_NONE},
	{"https://127.0.0.1:8443/arm%5c", TARGET_NONE},
	{"https://127.0.0.1:8443/graph/v1.0/me", TARGET_GRAPH},
	{"https://127.0.0.1:8443/graph", TARGET_GRAPH},
	{"https://127.0.0.1:8443/graphs", TARGET_NONE},
	{"https://127.0.0.1:8443/login/tid/oauth2/v2.0/token", TARGET_LOGIN},
	{"https://kv1.vault.emu/keys/kek/1", TARGET_KEYVAULT},
	{"https://KV1.VAULT.EMU/keys/kek/1", TARGET_KEYVAULT},
	{"https://kv1.vault.emu:8443/keys/kek/1", TARGET_NONE},
	{"https://kv1.vault.azure.net/keys/kek/1", TARGET_NONE},
	{"https://management.azure.com/subscriptions", TARGET_NONE},
};

static const char *target_name(enum cloud_target t)
{
	switch (t) {
	case TARGET_NONE: return "NONE";
	case TARGET_ARM: return "ARM";
	case TARGET_GRAPH: return "GRAPH";
	case TARGET_KEYVAULT: return "KEYVAULT";
	case TARGET_LOGIN: return "LOGIN";
	}
	return "?";
}

static void run_cases(const struct cloud *c, const struct classify_case *cases, size_t n)
{
	int failures = 0;

	for (size_t i = 0; i < n; i++) {
		enum cloud_target got = cloud_classify(c, cases[i].url);

		if (got != cases[i].want) {
			print_error("cloud_classify(\"%s\") = %s, want %s\n", cases[i].url, target_name(got),
			            target_name(cases[i].want));
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

static void public_cloud_urls_are_classified(void **state)
{
	struct cloud c;
	struct kv_err err = {{0}};

	(void)state;
	assert_true(cloud_load("AzureCloud", &c, &err));
	run_cases(&c, public_cases, ARRAY_LEN(public_cases));
	assert_int_equal(cloud_classify(&c, NULL), TARGET_NONE);
	assert_int_equal(cloud_classify(NULL, "https://management.azure.com/"), TARGET_NONE);
	cloud_release(&c);
}

static void path_prefixed_endpoints_need_their_prefix(void **state)
{
	struct cloud c;
	struct kv_err err;

	(void)state;
	write_file("ca.pem", fake_pem);
	assert_true(load_text("emu.json", emu_json, &c, &err));
	run_cases(&c, emulator_cases, ARRAY_LEN(emulator_cases));
	cloud_release(&c);
}

static void sovereign_clouds_classify_their_own_hosts(void **state)
{
	struct cloud c;
	struct kv_err err = {{0}};

	(void)state;
	assert_true(cloud_load("AzureUSGovernment", &c, &err));
	assert_int_equal(cloud_classify(&c, "https://management.usgovcloudapi.net/subscriptions"), TARGET_ARM);
	assert_int_equal(cloud_classify(&c, "https://graph.microsoft.us/v1.0/me"), TARGET_GRAPH);
	assert_int_equal(cloud_classify(&c, "https://kv.vault.usgovcloudapi.net/keys/k"), TARGET_KEYVAULT);
	assert_int_equal(cloud_classify(&c, "https://management.azure.com/subscriptions"), TARGET_NONE);
	assert_int_equal(cloud_classify(&c, "https://kv.vault.azure.net/keys/k"), TARGET_NONE);
	cloud_release(&c);
	assert_true(cloud_load("AzureChinaCloud", &c, &err));
	assert_int_equal(cloud_classify(&c, "https://kv.vault.azure.cn/keys/k"), TARGET_KEYVAULT);
	assert_int_equal(cloud_classify(&c, "https://login.chinacloudapi.cn/t/oauth2/v2.0/token"), TARGET_LOGIN);
	assert_int_equal(cloud_classify(&c, "https://microsoftgraph.chinacloudapi.cn/v1.0/me"), TARGET_GRAPH);
	cloud_release(&c);
}

/* ---- scopes ---- */

static void expect_scope(const struct cloud *c, enum cloud_target t, const char *want)
{
	char *s = cloud_scope(c, t);

	if (!want) {
		assert_null(s);
		return;
	}
	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
}

static void scopes_per_cloud(void **state)
{
	static const struct {
		const char *cloud, *arm, *graph, *kv;
	} want[] = {
		{"AzureCloud", "https://management.core.windows.net/.default", "https://graph.microsoft.com/.default",
		 "https://vault.azure.net/.default"},
		{"AzureUSGovernment", "https://management.core.usgovcloudapi.net/.default",
		 "https://graph.microsoft.us/.default", "https://vault.usgovcloudapi.net/.default"},
		{"AzureChinaCloud", "https://management.core.chinacloudapi.cn/.default",
		 "https://microsoftgraph.chinacloudapi.cn/.default", "https://vault.azure.cn/.default"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		struct cloud c;
		struct kv_err err = {{0}};

		assert_true(cloud_load(want[i].cloud, &c, &err));
		expect_scope(&c, TARGET_ARM, want[i].arm);
		expect_scope(&c, TARGET_GRAPH, want[i].graph);
		expect_scope(&c, TARGET_KEYVAULT, want[i].kv);
		expect_scope(&c, TARGET_LOGIN, NULL);
		expect_scope(&c, TARGET_NONE, NULL);
		cloud_release(&c);
	}
	expect_scope(NULL, TARGET_ARM, NULL);
}

static void scopes_of_a_cloud_file(void **state)
{
	struct cloud c;
	struct kv_err err;

	(void)state;
	write_file("ca.pem", fake_pem);
	assert_true(load_text("emu.json", emu_json, &c, &err));
	expect_scope(&c, TARGET_ARM, "https://management.core.windows.net/.default");
	expect_scope(&c, TARGET_GRAPH, "https://127.0.0.1:8443/graph/.default");
	expect_scope(&c, TARGET_KEYVAULT, "https://vault.emu/.default");
	cloud_release(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(builtin_public_cloud_has_azure_endpoints),
		cmocka_unit_test(builtin_us_government_cloud),
		cmocka_unit_test(builtin_china_cloud_has_no_known_backup_app),
		cmocka_unit_test(builtin_names_are_case_insensitive),
		cmocka_unit_test(unknown_name_is_tried_as_a_file),
		cmocka_unit_test(az_cloud_show_output_loads),
		cmocka_unit_test(cloud_file_with_every_field_and_relative_ca_bundle),
		cmocka_unit_test(absolute_ca_bundle_is_kept),
		cmocka_unit_test(missing_or_empty_ca_bundle_is_reported),
		cmocka_unit_test(name_defaults_to_the_path),
		cmocka_unit_test(non_https_endpoints_are_rejected_with_their_path),
		cmocka_unit_test(user_info_query_and_fragment_are_rejected),
		cmocka_unit_test(missing_and_mistyped_fields_are_reported),
		cmocka_unit_test(a_directory_is_not_a_cloud_file),
		cmocka_unit_test(public_cloud_urls_are_classified),
		cmocka_unit_test(path_prefixed_endpoints_need_their_prefix),
		cmocka_unit_test(sovereign_clouds_classify_their_own_hosts),
		cmocka_unit_test(scopes_per_cloud),
		cmocka_unit_test(scopes_of_a_cloud_file),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
