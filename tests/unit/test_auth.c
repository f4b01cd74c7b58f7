/*
 * test_auth.c - credentials (audit/azure/auth.h): which source the
 * environment selects and the message for each missing piece; jwt_claims;
 * the certificate's client assertion, verified with OpenSSL against a
 * throwaway key and certificate made here; and every token flow against
 * fake endpoints: the HTTP layer is replaced (linker --wrap, see
 * tests/CMakeLists.txt) by a recorder that answers canned bodies, and the
 * Azure CLI by shell scripts that the tests write (KVAUDIT_AZ).  No error
 * may carry a secret, an assertion or a token.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "audit/azure/auth.h"
#include "audit/azure/http.h"
#include "audit/util/util.h"

#ifndef KV_SOURCE_DIR
#define KV_SOURCE_DIR "."
#endif
#ifndef KV_FIXTURES
#define KV_FIXTURES KV_SOURCE_DIR "/tests/fixtures/azure"
#endif
#define DATA_DIR KV_SOURCE_DIR "/tests/unit/data/auth"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define ARM_SCOPE "https://management.azure.com/.default"
#define TENANT "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define APP "00000000-0000-0000-0000-0000000000a1"
#define SECRET "p@ss w/rd&=+~s3cr3t"

/* ---- the environment: saved and cleared before each test, restored after ---- */

static const char *const env_vars[] = {
	"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
	"AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
	"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "KVAUDIT_IMDS_ENDPOINT", "KVAUDIT_AZ", "PATH",
};
static char *saved_env[ARRAY_LEN(env_vars)];
static char *tmpdir;

static char *path_in(const char *name)
{
	return kv_asprintf("%s/%s", tmpdir, name);
}

static void write_text(const char *name, const char *text, mode_t mode)
{
	char *p = path_in(name);
	FILE *f = fopen(p, "wb");

	if (f == NULL)
		fail_msg("cannot create %s: %s", p, strerror(errno));
	fputs(text, f);
	fclose(f);
	chmod(p, mode);
	free(p);
}

static char *read_text(const char *name)
{
	char *p = path_in(name);
	struct kv_err err;
	char *s = kv_read_file(p, 1 << 20, NULL, &err);

	free(p);
	return s;
}

/* ---- the fake HTTP layer ---- */

static struct {
	int calls;
	char *method, *url, *body;
	char *headers[4];
	/* the answer */
	long status;              /* 0: a transport failure */
	const char *resp_body;    /* "@N@" is replaced by the number of the call */
	const char *request_id;
} fake;

static void fake_reset(void)
{
	free(fake.method);
	free(fake.url);
	free(fake.body);
	for (size_t i = 0; i < ARRAY_LEN(fake.headers); i++)
		free(fake.headers[i]);
	memset(&fake, 0, sizeof(fake));
	fake.status = 200;
}

enum http_outcome __wrap_http_request(struct http_client *h, const char *method, const char *url,
                                      const char *bearer, const char *const *headers, const char *body,
                                      size_t body_len, struct http_response *resp, struct kv_err *err);
void __wrap_http_response_release(struct http_response *r);

enum http_outcome __wrap_http_request(struct http_client *h, const char *method, const char *url,
                                      const char *bearer, const char *const *headers, const char *body,
                                      size_t body_len, struct http_response *resp, struct kv_err *err)
{
	const char *p, *at;

	assert_non_null(h);
	assert_null(bearer); /* token endpoints are never sent a bearer token */
	fake.calls++;
	free(fake.method);
	free(fake.url);
	free(fake.body);
	fake.method = kv_strdup(method);
	fake.url = kv_strdup(url);
	fake.body = body != NULL ? kv_strndup(body, body_len) : NULL;
	for (size_t i = 0; i < ARRAY_LEN(fake.headers); i++) {
		free(fake.headers[i]);
		fake.headers[i] = NULL;
	}
	for (size_t i = 0; headers != NULL && headers[i] != NULL && i + 1 < ARRAY_LEN(fake.headers); i++)
		fake.headers[i] = kv_strdup(headers[i]);

	memset(resp, 0, sizeof(*resp));
	kv_buf_init(&resp->body, 0);
	resp->retry_after = -1;
	resp->attempts = 1;
	resp->status = fake.status;
	snprintf(resp->request_id, sizeof(resp->request_id), "%s", fake.request_id ? fake.request_id : "");
	if (fake.status == 0) {
		kv_err_set(err, "%s %.*s: connection refused", method, (int)strcspn(url, "?"), url);
		return HTTP_TRANSIENT;
	}
	for (p = fake.resp_body ? fake.resp_body : ""; (at = strstr(p, "@N@")) != NULL; p = at + 3) {
		kv_buf_add(&resp->body, p, (size_t)(at - p));
		kv_buf_addf(&resp->body, "%d", fake.calls);
	}
	kv_buf_adds(&resp->body, p);
	if (fake.status >= 200 && fake.status < 300)
		return HTTP_OK;
	kv_err_set(err, "%s %.*s: HTTP %ld", method, (int)strcspn(url, "?"), url, fake.status);
	return fake.status == 401 ? HTTP_UNAUTHORIZED : fake.status == 403 ? HTTP_FORBIDDEN : HTTP_FATAL;
}

void __wrap_http_response_release(struct http_response *r)
{
	kv_buf_release(&r->body);
}

static char fake_http_storage[1];
#define FAKE_HTTP ((struct http_client *)(void *)fake_http_storage)

static struct cloud test_cloud = {
	.name = "AzureCloud",
	.arm = "https://management.azure.com",
	.login = "https://login.example.test",
	.arm_audience = "https://management.core.windows.net/",
	.graph = "https://graph.microsoft.com",
	.keyvault_suffix = "vault.azure.net",
};

/* ---- fixtures ---- */

static int setup(void **state)
{
	char tmpl[] = "/tmp/kvaudit-test-auth-XXXXXX";

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(env_vars); i++) {
		const char *v = getenv(env_vars[i]);

		saved_env[i] = kv_strdup(v);
		unsetenv(env_vars[i]);
	}
	if (mkdtemp(tmpl) == NULL)
		return -1;
	tmpdir = kv_strdup(tmpl);
	/* An empty directory as PATH: no real `az` is found, and fake ones use shell builtins only. */
	setenv("PATH", tmpdir, 1);
	fake_reset();
	return 0;
}

static int teardown(void **state)
{
	DIR *d;
	struct dirent *de;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(env_vars); i++) {
		if (saved_env[i] != NULL)
			setenv(env_vars[i], saved_env[i], 1);
		else
			unsetenv(env_vars[i]);
		free(saved_env[i]);
		saved_env[i] = NULL;
	}
	d = opendir(tmpdir);
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			char *p = path_in(de->d_name);

			unlink(p);
			free(p);
		}
	}
	if (d != NULL)
		closedir(d);
	rmdir(tmpdir);
	free(tmpdir);
	tmpdir = NULL;
	fake_reset();
	return 0;
}

/* ---- base64url, done here with OpenSSL's plain base64 so as not to trust auth.c's ---- */

static char *b64url(const void *p, size_t n)
{
	char *out = kv_malloc(4 * ((n + 2) / 3) + 1);
	int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);

	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (char *c = out; *c; c++)
		*c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
	return out;
}

static unsigned char *unb64url(const char *s, size_t n, size_t *out_len)
{
	size_t padded = (n + 3) / 4 * 4, pad = padded - n;
	char *in = kv_malloc(padded + 1);
	unsigned char *out = kv_malloc(padded / 4 * 3 + 1);
	int len;

	for (size_t i = 0; i < n; i++)
		in[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	memset(in + n, '=', pad);
	in[padded] = '\0';
	len = EVP_DecodeBlock(out, (unsigned char *)in, (int)padded);
	free(in);
	assert_true(len >= 0);
	*out_len = (size_t)len - pad;
	out[*out_len] = '\0';
	return out;
}

/* A JWT-shaped token with the given claims (unsigned: jwt_claims does not verify). */
static char *make_jwt(const char *claims_json)
{
	char *h = b64url("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", 27);
	char *p = b64url(claims_json, strlen(claims_json));
	char *t = kv_asprintf("%s.%s.c2lnbmF0dXJl", h, p);

	free(h);
	free(p);
	return t;
}

/* ---- auth_method_parse ---- */

static void auth_method_parse_accepts_the_documented_names(void **state)
{
	static const struct {
		const char *s;
		bool ok;
		enum auth_method m;
	} cases[] = {
		{"auto", true, AUTH_AUTO}, {"env", true, AUTH_ENV}, {"msi", true, AUTH_MSI},
		{"managed-identity", true, AUTH_MSI}, {"cli", true, AUTH_CLI}, {"CLI", true, AUTH_CLI},
		{"", false, AUTH_AUTO}, {"azcli", false, AUTH_AUTO}, {"envx", false, AUTH_AUTO},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		enum auth_method m = (enum auth_method)99;

		assert_int_equal(auth_method_parse(cases[i].s, &m), cases[i].ok);
		if (cases[i].ok)
			assert_int_equal(m, cases[i].m);
	}
}

/* ---- source selection ---- */

#define FAKE_AZ_OK_NAME "az-ok"

/*
 * One row: the variables to set ("@DIR@" becomes the temporary directory),
 * the method asked for, and either the description of the credential or
 * the exact error (or, with prefix set, its start).
 */
struct selection_case {
	const char *name;
	const char *vars[8][2];
	enum auth_method method;
	const char *describe;  /* NULL: an error is expected */
	const char *error;
	bool error_prefix;
};

static const struct selection_case selection_cases[] = {
	{"nothing at all", {{NULL}}, AUTH_AUTO, NULL,
	 "no credential found: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or "
	 "AZURE_CLIENT_CERTIFICATE_PATH, or AZURE_FEDERATED_TOKEN_FILE), run on an Azure resource with a managed "
	 "identity, or sign in with 'az login'", false},
	{"client id without tenant", {{"AZURE_CLIENT_ID", APP}, {"AZURE_CLIENT_SECRET", SECRET}}, AUTH_AUTO, NULL,
	 "AZURE_CLIENT_ID is set but AZURE_TENANT_ID is not: set the tenant (directory) ID of the app", false},
	{"client id alone", {{"AZURE_CLIENT_ID", APP}}, AUTH_AUTO, NULL,
	 "AZURE_CLIENT_ID is set but AZURE_TENANT_ID is not: set the tenant (directory) ID of the app", false},
	{"no secret", {{"AZURE_CLIENT_ID", APP}, {"AZURE_TENANT_ID", TENANT}}, AUTH_AUTO, NULL,
	 "AZURE_CLIENT_ID and AZURE_TENANT_ID are set but AZURE_CLIENT_SECRET is not: set it (or "
	 "AZURE_CLIENT_CERTIFICATE_PATH, or AZURE_FEDERATED_TOKEN_FILE)", false},
	{"secret without client id", {{"AZURE_TENANT_ID", TENANT}, {"AZURE_CLIENT_SECRET", SECRET}}, AUTH_AUTO, NULL,
	 "AZURE_CLIENT_SECRET is set but AZURE_CLIENT_ID is not: set the application (client) ID of the app", false},
	{"federated file without client id", {{"AZURE_FEDERATED_TOKEN_FILE", "@DIR@/fed"}}, AUTH_AUTO, NULL,
	 "AZURE_FEDERATED_TOKEN_FILE is set but AZURE_CLIENT_ID is not: set the application (client) ID of the app",
	 false},
	{"env asked, nothing set", {{NULL}}, AUTH_ENV, NULL,
	 "AZURE_CLIENT_ID is not set: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or "
	 "AZURE_CLIENT_CERTIFICATE_PATH, or AZURE_FEDERATED_TOKEN_FILE)", false},
	{"bad tenant", {{"AZURE_CLIENT_ID", APP}, {"AZURE_TENANT_ID", "a/../b"}, {"AZURE_CLIENT_SECRET", SECRET}},
	 AUTH_AUTO, NULL, "AZURE_TENANT_ID is not a tenant ID or domain name", true},
	{"client secret", {{"AZURE_CLIENT_ID", APP}, {"AZURE_TENANT_ID", TENANT}, {"AZURE_CLIENT_SECRET", SECRET}},
	 AUTH_AUTO, "client secret of app " APP " in tenant " TENANT, NULL, false},
	{"secret wins over certificate",
	 {{"AZURE_CLIENT_ID", APP}, {"AZURE_TENANT_ID", TENANT}, {"AZURE_CLIENT_SECRET", SECRET},
	  {"AZURE_CLIENT_CERTIFICATE_PATH", "@DIR@/missing.pem"}},
	 AUTH_ENV, "client secret of app " APP " in tenant " TENANT, NULL, false},
	{"authority host over http",
	 {{"AZURE_CLIENT_ID", APP}, {"AZURE_TENANT_ID", TENANT}, {"AZURE_CLIENT_SECRET", SECRET},
	  {"AZURE_AUTHORITY_HOST", "http://login.example.test"}},
	 AUTH_AUTO, NULL, "AZURE_AUTHORITY_HOST must be an https URL", false},
	{"authority host with user info",
	 {{"AZURE_CLIENT_ID", APP}, {"AZURE_TENANT_ID", TENANT}, {"AZURE_CLIENT_SECRET", SECRET},
	  {"AZURE_AUTHORITY_HOST", "https://me@login.example.test"}},
	 AUTH_AUTO, NULL, "AZURE_AUTHORITY_HOST must be a URL without user info", true},
	{"missing certificate file",
	 {{"AZURE_CLIENT_ID", APP}, {"AZURE_TENANT_ID", TENANT}, {"AZURE_CLIENT_CERTIFICATE_PATH", "@DIR@/none.pem"}},
	 AUTH_AUTO, NULL, "AZURE_CLIENT_CERTIFICATE_PATH: cannot open '@DIR@/none.pem'", true},
	{"certificate that is not PEM",
	 {{"AZURE_CLIENT_ID", APP}, {"AZURE_TENANT_ID", TENANT},
	  {"AZURE_CLIENT_CERTIFICATE_PATH", DATA_DIR "/not-a-pem.txt"}},
	 AUTH_AUTO, NULL, "AZURE_CLIENT_CERTIFICATE_PATH: '" DATA_DIR "/not-a-pem.txt' is not a PEM file", true},
	{"missing federated token file",
	 {{"AZURE_CLIENT_ID", APP}, {"AZURE_TENANT_ID", TENANT}, {"AZURE_FEDERATED_TOKEN_FILE", "@DIR@/none"}},
	 AUTH_AUTO, NULL, "AZURE_FEDERATED_TOKEN_FILE: cannot open '@DIR@/none'", true},
	{"empty federated token file",
	 {{"AZURE_CLIENT_ID", APP}, {"AZURE_TENANT_ID", TENANT}, {"AZURE_FEDERATED_TOKEN_FILE", "@DIR@/empty"}},
	 AUTH_AUTO, NULL, "AZURE_FEDERATED_TOKEN_FILE: '@DIR@/empty' is empty", false},
	{"federated token file",
	 {{"AZURE_CLIENT_ID", APP}, {"AZURE_TENANT_ID", TENANT}, {"AZURE_FEDERATED_TOKEN_FILE", "@DIR@/fed"}},
	 AUTH_AUTO, "federated token file '@DIR@/fed' of app " APP " in tenant " TENANT, NULL, false},
	{"identity endpoint without header", {{"IDENTITY_ENDPOINT", "http://127.0.0.1:41234/msi/token"}}, AUTH_AUTO,
	 NULL, "IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not", true},
	{"app service identity",
	 {{"IDENTITY_ENDPOINT", "http://127.0.0.1:41234/msi/token"}, {"IDENTITY_HEADER", "hdr-s3cr3t-value"}},
	 AUTH_AUTO, "managed identity via http://127.0.0.1:41234/msi/token", NULL, false},
	{"identity endpoint over http to another host",
	 {{"IDENTITY_ENDPOINT", "http://identity.example.test/msi/token"}, {"IDENTITY_HEADER", "h"}}, AUTH_AUTO, NULL,
	 "IDENTITY_ENDPOINT: plain http is allowed only to a loopback or link-local host", true},
	{"imds endpoint", {{"KVAUDIT_IMDS_ENDPOINT", "http://169.254.169.254/"}}, AUTH_AUTO,
	 "managed identity via http://169.254.169.254/metadata/identity/oauth2/token", NULL, false},
	{"imds endpoint over https elsewhere", {{"KVAUDIT_IMDS_ENDPOINT", "https://imds.example.test:8443"}},
	 AUTH_AUTO, "managed identity via https://imds.example.test:8443/metadata/identity/oauth2/token", NULL, false},
	{"imds endpoint over http elsewhere", {{"KVAUDIT_IMDS_ENDPOINT", "http://10.0.0.4"}}, AUTH_MSI, NULL,
	 "KVAUDIT_IMDS_ENDPOINT: plain http is allowed only", true},
	{"client id beside an msi endpoint is a user-assigned identity",
	 {{"AZURE_CLIENT_ID", APP}, {"KVAUDIT_IMDS_ENDPOINT", "http://127.0.0.1:8080"}}, AUTH_AUTO,
	 "user-assigned managed identity " APP " via http://127.0.0.1:8080/metadata/identity/oauth2/token", NULL,
	 false},
	{"msi asked, nothing set", {{NULL}}, AUTH_MSI,
	 "managed identity via http://169.254.169.254/metadata/identity/oauth2/token", NULL, false},
	{"env wins over msi",
	 {{"AZURE_CLIENT_ID", APP}, {"AZURE_TENANT_ID", TENANT}, {"AZURE_CLIENT_SECRET", SECRET},
	  {"KVAUDIT_IMDS_ENDPOINT", "http://169.254.169.254"}},
	 AUTH_AUTO, "client secret of app " APP " in tenant " TENANT, NULL, false},
	{"cli asked, az not on PATH", {{NULL}}, AUTH_CLI, NULL,
	 "the Azure CLI ('az') is not on PATH: install it and sign in with 'az login', or choose another "
	 "credential with --auth", false},
	{"KVAUDIT_AZ names nothing", {{"KVAUDIT_AZ", "@DIR@/no-such-az"}}, AUTH_CLI, NULL,
	 "KVAUDIT_AZ names '@DIR@/no-such-az', which is not an executable program", false},
	{"az found through KVAUDIT_AZ", {{"KVAUDIT_AZ", "@DIR@/" FAKE_AZ_OK_NAME}}, AUTH_AUTO,
	 "Azure CLI sign-in ('@DIR@/" FAKE_AZ_OK_NAME "')", NULL, false},
	{"az found on PATH", {{"KVAUDIT_AZ", FAKE_AZ_OK_NAME}}, AUTH_AUTO, "Azure CLI sign-in ('" FAKE_AZ_OK_NAME "')",
	 NULL, false},
	{"msi wins over cli", {{"KVAUDIT_AZ", "@DIR@/" FAKE_AZ_OK_NAME}, {"KVAUDIT_IMDS_ENDPOINT", "http://127.0.0.1"}},
	 AUTH_AUTO, "managed identity via http://127.0.0.1/metadata/identity/oauth2/token", NULL, false},
};

/* s with every "@DIR@" replaced by the temporary directory. */
static char *with_dir(const char *s)
{
	struct kv_buf b;
	const char *at;

	kv_buf_init(&b, 0);
	for (; (at = strstr(s, "@DIR@")) != NULL; s = at + 5) {
		kv_buf_add(&b, s, (size_t)(at - s));
		kv_buf_adds(&b, tmpdir);
	}
	kv_buf_adds(&b, s);
	return kv_buf_detach(&b);
}

static void credential_sources_are_selected_or_the_missing_variable_named(void **state)
{
	(void)state;
	write_text("fed", "eyJfederated.token.x\n", 0600);
	write_text("empty", " \n", 0600);
	write_text(FAKE_AZ_OK_NAME, "#!/bin/sh\nexit 0\n", 0755);
	for (size_t i = 0; i < ARRAY_LEN(selection_cases); i++) {
		const struct selection_case *tc = &selection_cases[i];
		struct credential *c;
		struct kv_err err = {{0}};

		for (size_t v = 0; v < ARRAY_LEN(env_vars); v++)
			if (strcmp(env_vars[v], "PATH") != 0)
				unsetenv(env_vars[v]);
		for (size_t v = 0; v < ARRAY_LEN(tc->vars) && tc->vars[v][0] != NULL; v++) {
			char *val = with_dir(tc->vars[v][1]);

			setenv(tc->vars[v][0], val, 1);
			free(val);
		}
		c = credential_new(tc->method, &test_cloud, FAKE_HTTP, &err);
		if (tc->describe != NULL) {
			char *want = with_dir(tc->describe);

			if (c == NULL)
				fail_msg("case '%s': unexpected error: %s", tc->name, err.msg);
			if (strcmp(credential_describe(c), want) != 0)
				fail_msg("case '%s': described as '%s', expected '%s'", tc->name, credential_describe(c),
				         want);
			assert_null(strstr(credential_describe(c), SECRET));
			free(want);
		} else {
			char *want = with_dir(tc->error);
			bool match = tc->error_prefix ? strncmp(err.msg, want, strlen(want)) == 0
			                              : strcmp(err.msg, want) == 0;

			if (c != NULL)
				fail_msg("case '%s': expected an error, got '%s'", tc->name, credential_describe(c));
			if (!match)
				fail_msg("case '%s': error '%s', expected %s'%s'", tc->name, err.msg,
				         tc->error_prefix ? "a start of " : "", want);
			assert_null(strstr(err.msg, SECRET));
			assert_null(strstr(err.msg, "hdr-s3cr3t-value"));
			free(want);
		}
		credential_free(c);
		assert_int_equal(fake.calls, 0); /* choosing a source never sends a request */
	}
}

/* ---- jwt_claims ---- */

static void jwt_claims_decodes_the_payload_with_or_without_padding(void **state)
{
	/* 40 bytes: base64 would end in "==", which base64url leaves out. */
	const char *claims = "{\"tid\":\"t-12\",\"oid\":\"o-1\",\"idtyp\":\"app\"}";
	char *tok = make_jwt(claims);
	char *h = b64url("{}", 2), *p = b64url(claims, strlen(claims));
	char *padded = kv_asprintf("%s.%s==.sig", h, p);
	cJSON *c;

	(void)state;
	assert_int_equal(strlen(claims), 40);
	assert_int_equal(strlen(p) % 4, 2);
	for (int i = 0; i < 2; i++) {
		c = jwt_claims(i == 0 ? tok : padded);
		assert_non_null(c);
		assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "tid")->valuestring, "t-12");
		assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "oid")->valuestring, "o-1");
		assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "idtyp")->valuestring, "app");
		cJSON_Delete(c);
	}
	free(tok);
	free(h);
	free(p);
	free(padded);
}

static void jwt_claims_is_null_for_anything_but_a_jwt(void **state)
{
	static const char *const garbage[] = {
		"", "opaque-token", "a.b", "eyJ9.e30", "a.b.c.d", ".e30.sig", "hdr..sig",
		"hdr.!!!!.sig",        /* not base64url */
		"hdr.e30xy.sig",       /* a length no base64 has */
		"hdr.e30x.sig",        /* "{}1": an object with trailing bytes */
		"hdr.WzFd.sig",        /* "[1]": JSON, but not an object */
		"hdr.bm90IGpzb24.sig", /* "not json" */
		"hdr.e30.sig.extra.part",
	};

	(void)state;
	assert_null(jwt_claims(NULL));
	for (size_t i = 0; i < ARRAY_LEN(garbage); i++) {
		cJSON *c = jwt_claims(garbage[i]);

		if (c != NULL)
			fail_msg("'%s' gave claims", garbage[i]);
	}
	/* The smallest JWT has empty claims. */
	cJSON *c = jwt_claims("hdr.e30.sig");
	assert_non_null(c);
	assert_true(cJSON_IsObject(c));
	cJSON_Delete(c);
}

/* ---- certificates ---- */

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);

	assert_non_null(k);
	return k;
}

static X509 *new_cert(EVP_PKEY *key, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	return x;
}

/* Writes certs (NULL-terminated) and then key (encrypted when password) as one PEM file. */
static char *write_pem(const char *name, X509 *const *certs, EVP_PKEY *key, const char *password)
{
	char *p = path_in(name);
	FILE *f = fopen(p, "wb");

	assert_non_null(f);
	for (; certs != NULL && *certs != NULL; certs++)
		assert_int_equal(PEM_write_X509(f, *certs), 1);
	if (key != NULL)
		assert_int_equal(PEM_write_PrivateKey(f, key, password ? EVP_aes_256_cbc() : NULL,
		                                      (const unsigned char *)password,
		                                      password ? (int)strlen(password) : 0, NULL, NULL),
		                 1);
	fclose(f);
	return p;
}

/* base64url of the SHA-1 of the DER certificate, computed independently of auth.c. */
static char *thumbprint(X509 *x)
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int n = i2d_X509(x, &der);
	char *t;

	assert_true(n > 0);
	assert_int_equal(EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha1(), NULL), 1);
	OPENSSL_free(der);
	assert_int_equal(mdlen, 20);
	t = b64url(md, mdlen);
	return t;
}

static const char *json_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsString(v))
		fail_msg("$.%s is not a string", k);
	return v->valuestring;
}

static double json_num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsNumber(v))
		fail_msg("$.%s is not a number", k);
	return v->valuedouble;
}

/*
 * Checks a client assertion completely: three base64url parts without
 * padding, the header, the claims and the RS256 signature with cert's key.
 * Returns the jti (owned).
 */
static char *check_assertion(const char *jwt, X509 *cert, const char *client_id, const char *aud, long long now)
{
	const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	unsigned char *hdr, *claims, *sig;
	size_t hlen, clen, slen;
	cJSON *h, *c;
	char *x5t = thumbprint(cert), *jti;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	assert_non_null(d1);
	assert_non_null(d2);
	assert_null(strchr(d2 + 1, '.'));
	assert_null(strchr(jwt, '='));
	assert_null(strchr(jwt, '+'));
	assert_null(strchr(jwt, '/'));
	hdr = unb64url(jwt, (size_t)(d1 - jwt), &hlen);
	claims = unb64url(d1 + 1, (size_t)(d2 - d1 - 1), &clen);
	sig = unb64url(d2 + 1, strlen(d2 + 1), &slen);

	h = cJSON_Parse((const char *)hdr);
	assert_non_null(h);
	assert_string_equal(json_str(h, "alg"), "RS256");
	assert_string_equal(json_str(h, "typ"), "JWT");
	assert_string_equal(json_str(h, "x5t"), x5t);
	c = cJSON_Parse((const char *)claims);
	assert_non_null(c);
	assert_string_equal(json_str(c, "aud"), aud);
	assert_string_equal(json_str(c, "iss"), client_id);
	assert_string_equal(json_str(c, "sub"), client_id);
	assert_true(json_num(c, "nbf") == (double)now);
	assert_true(json_num(c, "iat") == (double)now);
	assert_true(json_num(c, "exp") == (double)(now + 600));
	jti = kv_strdup(json_str(c, "jti"));
	/* A version 4 UUID: 8-4-4-4-12 lowercase hex, '4' and one of 8 9 a b where RFC 4122 puts them. */
	assert_int_equal(strlen(jti), 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(jti[i], '-');
		else
			assert_non_null(strchr("0123456789abcdef", jti[i]));
	}
	assert_int_equal(jti[14], '4');
	assert_non_null(strchr("89ab", jti[19]));

	/* RS256: RSASSA-PKCS1-v1_5 with SHA-256 over "header.claims". */
	assert_int_equal(slen, 256);
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(cert)), 1);
	assert_int_equal(EVP_DigestVerify(md, sig, slen, (const unsigned char *)jwt, (size_t)(d2 - jwt)), 1);
	/* and only that */
	EVP_MD_CTX_reset(md);
	sig[0] ^= 1;
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(cert)), 1);
	assert_int_not_equal(EVP_DigestVerify(md, sig, slen, (const unsigned char *)jwt, (size_t)(d2 - jwt)), 1);

	EVP_MD_CTX_free(md);
	cJSON_Delete(h);
	cJSON_Delete(c);
	free(hdr);
	free(claims);
	free(sig);
	free(x5t);
	return jti;
}

#define AUD "https://login.example.test/" TENANT "/oauth2/v2.0/token"

static void client_assertion_is_an_rs256_jwt_with_the_certificate_thumbprint(void **state)
{
	EVP_PKEY *key = new_key();
	X509 *cert = new_cert(key, "kvaudit-test");
	X509 *certs[] = {cert, NULL};
	char *pem = write_pem("app.pem", certs, key, NULL);
	struct kv_err err = {{0}};
	long long now = 1764331200;
	char *a1, *a2, *jti1, *jti2;

	(void)state;
	a1 = auth_client_assertion(pem, NULL, APP, AUD, now, &err);
	if (a1 == NULL)
		fail_msg("%s", err.msg);
	a2 = auth_client_assertion(pem, NULL, APP, AUD, now, &err);
	assert_non_null(a2);
	jti1 = check_assertion(a1, cert, APP, AUD, now);
	jti2 = check_assertion(a2, cert, APP, AUD, now);
	assert_string_not_equal(jti1, jti2);

	free(a1);
	free(a2);
	free(jti1);
	free(jti2);
	free(pem);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void client_assertion_picks_the_certificate_of_the_key_in_a_chain(void **state)
{
	EVP_PKEY *key = new_key(), *other = new_key();
	X509 *ca = new_cert(other, "some CA"), *leaf = new_cert(key, "leaf");
	X509 *chain[] = {ca, leaf, NULL}, *only_ca[] = {ca, NULL};
	char *pem = write_pem("chain.pem", chain, key, NULL);
	char *bad = write_pem("mismatch.pem", only_ca, key, NULL);
	struct kv_err err = {{0}};
	char *a, *jti;

	(void)state;
	a = auth_client_assertion(pem, NULL, APP, AUD, 1000, &err);
	if (a == NULL)
		fail_msg("%s", err.msg);
	jti = check_assertion(a, leaf, APP, AUD, 1000);
	free(jti);
	free(a);

	assert_null(auth_client_assertion(bad, NULL, APP, AUD, 1000, &err));
	assert_non_null(strstr(err.msg, "no certificate in '"));
	assert_non_null(strstr(err.msg, "matches its private key"));

	free(pem);
	free(bad);
	X509_free(ca);
	X509_free(leaf);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

static void client_assertion_decrypts_an_encrypted_key_with_the_right_password_only(void **state)
{
	const char *pw = "correct horse battery";
	EVP_PKEY *key = new_key();
	X509 *cert = new_cert(key, "kvaudit-test");
	X509 *certs[] = {cert, NULL};
	char *pem = write_pem("enc.pem", certs, key, pw);
	char *text = read_text("enc.pem");
	struct kv_err err = {{0}};
	char *a, *jti;

	(void)state;
	assert_non_null(strstr(text, "ENCRYPTED PRIVATE KEY"));
	a = auth_client_assertion(pem, pw, APP, AUD, 5000, &err);
	if (a == NULL)
		fail_msg("%s", err.msg);
	jti = check_assertion(a, cert, APP, AUD, 5000);

	assert_null(auth_client_assertion(pem, "wrong horse battery", APP, AUD, 5000, &err));
	assert_true(strncmp(err.msg, "AZURE_CLIENT_CERTIFICATE_PASSWORD: cannot decrypt the private key in '",
	                    strlen("AZURE_CLIENT_CERTIFICATE_PASSWORD: cannot decrypt the private key in '")) == 0);
	assert_null(strstr(err.msg, "horse"));

	assert_null(auth_client_assertion(pem, NULL, APP, AUD, 5000, &err));
	assert_non_null(strstr(err.msg, "is encrypted: set AZURE_CLIENT_CERTIFICATE_PASSWORD"));

	free(jti);
	free(a);
	free(text);
	free(pem);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void client_assertion_refuses_files_without_a_pem_key_and_certificate(void **state)
{
	EVP_PKEY *key = new_key();
	X509 *cert = new_cert(key, "kvaudit-test");
	X509 *certs[] = {cert, NULL};
	char *cert_only = write_pem("cert-only.pem", certs, NULL, NULL);
	char *key_only = write_pem("key-only.pem", NULL, key, NULL);
	char *der_path = path_in("cert.der");
	unsigned char *der = NULL;
	int n = i2d_X509(cert, &der);
	FILE *f = fopen(der_path, "wb");
	struct kv_err err = {{0}};
	static const char *const not_pem_msg = "' is not a PEM file: it must hold the certificate and its private key";

	(void)state;
	assert_non_null(f);
	fwrite(der, 1, (size_t)n, f);
	fclose(f);
	OPENSSL_free(der);

	assert_null(auth_client_assertion(DATA_DIR "/not-a-pem.txt", NULL, APP, AUD, 1, &err));
	assert_non_null(strstr(err.msg, not_pem_msg));
	assert_null(auth_client_assertion(der_path, NULL, APP, AUD, 1, &err));
	assert_non_null(strstr(err.msg, not_pem_msg));
	assert_null(auth_client_assertion(cert_only, NULL, APP, AUD, 1, &err));
	assert_non_null(strstr(err.msg, "AZURE_CLIENT_CERTIFICATE_PATH: no private key in '"));
	assert_null(auth_client_assertion(key_only, NULL, APP, AUD, 1, &err));
	assert_non_null(strstr(err.msg, "AZURE_CLIENT_CERTIFICATE_PATH: no certificate in '"));
	assert_null(auth_client_assertion(tmpdir, NULL, APP, AUD, 1, &err));
	assert_non_null(strstr(err.msg, "is a directory"));
	assert_null(auth_client_assertion(cert_only, NULL, "", AUD, 1, &err));

	free(cert_only);
	free(key_only);
	free(der_path);
	X509_free(cert);
	EVP_PKEY_free(key);
}

/* ---- client credentials against the fake token endpoint ---- */

static struct credential *new_env_secret_credential(void)
{
	struct kv_err err = {{0}};
	struct credential *c;

	setenv("AZURE_CLIENT_ID", APP, 1);
	setenv("AZURE_TENANT_ID", TENANT, 1);
	setenv("AZURE_CLIENT_SECRET", SECRET, 1);
	c = credential_new(AUTH_AUTO, &test_cloud, FAKE_HTTP, &err);
	if (c == NULL)
		fail_msg("%s", err.msg);
	return c;
}

static void client_secret_is_posted_form_encoded_and_the_token_cached(void **state)
{
	struct credential *c = new_env_secret_credential();
	struct kv_err err = {{0}};
	const char *t;

	(void)state;
	assert_string_equal(credential_tenant(c), TENANT);
	fake.resp_body = "{\"token_type\":\"Bearer\",\"expires_in\":86399,\"ext_expires_in\":86399,"
	                 "\"access_token\":\"tok-@N@\"}";
	t = credential_token(c, ARM_SCOPE, NULL, false, &err);
	assert_non_null(t);
	assert_string_equal(t, "tok-1");
	assert_string_equal(fake.method, "POST");
	assert_string_equal(fake.url, "https://login.example.test/" TENANT "/oauth2/v2.0/token");
	assert_string_equal(fake.headers[0], "Content-Type: application/x-www-form-urlencoded");
	assert_null(fake.headers[1]);
	assert_string_equal(fake.body, "grant_type=client_credentials&client_id=" APP
	                               "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
	                               "&client_secret=p%40ss%20w%2Frd%26%3D%2B~s3cr3t");

	/* cached: no second request, for the own tenant named or not */
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, false, &err), "tok-1");
	assert_string_equal(credential_token(c, ARM_SCOPE, "72F988BF-86F1-41AF-91AB-2D7CD011DB47", false, &err),
	                    "tok-1");
	assert_int_equal(fake.calls, 1);
	/* another scope is another token */
	assert_string_equal(credential_token(c, "https://graph.microsoft.com/.default", NULL, false, &err), "tok-2");
	assert_non_null(strstr(fake.body, "&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&"));
	/* a forced refresh (after a 401) drops the cached one */
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, true, &err), "tok-3");
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, false, &err), "tok-3");
	assert_int_equal(fake.calls, 3);
	credential_free(c);
}

static void token_for_another_tenant_comes_from_that_tenants_endpoint(void **state)
{
	struct credential *c = new_env_secret_credential();
	struct kv_err err = {{0}};

	(void)state;
	fake.resp_body = "{\"expires_in\":3600,\"access_token\":\"tok-@N@\"}";
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, false, &err), "tok-1");
	assert_string_equal(credential_token(c, ARM_SCOPE, "contoso.onmicrosoft.com", false, &err), "tok-2");
	assert_string_equal(fake.url, "https://login.example.test/contoso.onmicrosoft.com/oauth2/v2.0/token");
	assert_string_equal(credential_token(c, ARM_SCOPE, "contoso.onmicrosoft.com", false, &err), "tok-2");
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, false, &err), "tok-1");
	assert_int_equal(fake.calls, 2);
	/* the credential's own tenant does not change */
	assert_string_equal(credential_tenant(c), TENANT);
	/* tenants and scopes that could escape the URL or the argv are refused before any request */
	assert_null(credential_token(c, ARM_SCOPE, "../evil", false, &err));
	assert_string_equal(err.msg, "'../evil' is not a tenant ID or domain name");
	assert_null(credential_token(c, "-o", NULL, false, &err));
	assert_null(credential_token(c, "https://x/ .default", NULL, false, &err));
	assert_int_equal(fake.calls, 2);
	credential_free(c);
}

static void token_is_renewed_five_minutes_before_it_expires(void **state)
{
	struct credential *c = new_env_secret_credential();
	struct kv_err err = {{0}};

	(void)state;
	fake.resp_body = "{\"expires_in\":299,\"access_token\":\"short-@N@\"}";
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, false, &err), "short-1");
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, false, &err), "short-2");
	fake.resp_body = "{\"expires_in\":310,\"access_token\":\"long-@N@\"}";
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, false, &err), "long-3");
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, false, &err), "long-3");
	assert_int_equal(fake.calls, 3);
	credential_free(c);
}

static void authority_host_replaces_the_clouds_login_endpoint(void **state)
{
	struct kv_err err = {{0}};
	struct credential *c;

	(void)state;
	setenv("AZURE_AUTHORITY_HOST", "https://login.override.test:8443/", 1);
	c = new_env_secret_credential();
	fake.resp_body = "{\"expires_in\":3600,\"access_token\":\"t\"}";
	assert_non_null(credential_token(c, ARM_SCOPE, NULL, false, &err));
	assert_string_equal(fake.url, "https://login.override.test:8443/" TENANT "/oauth2/v2.0/token");
	credential_free(c);
}

static char *data_file(const char *name, size_t *len)
{
	char *p = kv_asprintf("%s/%s", DATA_DIR, name);
	struct kv_err err;
	char *s = kv_read_file(p, 1 << 20, len, &err);

	if (s == NULL)
		fail_msg("%s", err.msg);
	free(p);
	return s;
}

static void token_endpoint_errors_name_the_aadsts_code_status_and_request_id(void **state)
{
	struct credential *c = new_env_secret_credential();
	struct kv_err err = {{0}};
	char *body = data_file("entra-invalid-client.json", NULL);
	char *echo;

	(void)state;
	fake.status = 401;
	fake.resp_body = body;
	fake.request_id = "5b0f6e3a-1f4b-4c3e-9a70-2a5c2a7e2b00";
	assert_null(credential_token(c, ARM_SCOPE, NULL, false, &err));
	assert_string_equal(err.msg,
	                    "cannot get a token for app " APP " in tenant " TENANT ": POST https://login.example.test/"
	                    TENANT "/oauth2/v2.0/token: HTTP 401 invalid_client: AADSTS7000215: Invalid client secret "
	                    "provided. Ensure the secret being sent in the request is the client secret value, not "
	                    "the client secret ID, for a secret added to app '00000000-0000-0000-0000-000000000001'., "
	                    "request id 5b0f6e3a-1f4b-4c3e-9a70-2a5c2a7e2b00");

	/* without x-ms-request-id, Entra's trace_id from the body */
	fake.request_id = NULL;
	assert_null(credential_token(c, ARM_SCOPE, NULL, false, &err));
	assert_non_null(strstr(err.msg, ", request id 0b9c1c4e-2f2a-4d52-9c1e-7f3c2d1a0b00"));
	assert_null(strstr(err.msg, "Trace ID"));

	/* a server that echoes the secret does not get it into the message */
	fake.status = 400;
	echo = kv_asprintf("{\"error\":\"invalid_request\",\"error_description\":\"bad secret %s here\"}", SECRET);
	fake.resp_body = echo;
	assert_null(credential_token(c, ARM_SCOPE, NULL, false, &err));
	assert_non_null(strstr(err.msg, "HTTP 400 invalid_request: bad secret [redacted] here"));
	assert_null(strstr(err.msg, SECRET));

	/* no response at all: the http layer's message */
	fake.status = 0;
	assert_null(credential_token(c, ARM_SCOPE, NULL, false, &err));
	assert_string_equal(err.msg, "cannot get a token for app " APP " in tenant " TENANT
	                             ": POST https://login.example.test/" TENANT
	                             "/oauth2/v2.0/token: connection refused");

	/* 200 without a token */
	fake.status = 200;
	fake.resp_body = "<html>captive portal</html>";
	assert_null(credential_token(c, ARM_SCOPE, NULL, false, &err));
	assert_true(strncmp(err.msg, "cannot get a token for app " APP " in tenant " TENANT ": POST ",
	                    strlen("cannot get a token for app " APP " in tenant " TENANT ": POST ")) == 0);
	assert_non_null(strstr(err.msg, "token response"));
	assert_null(strstr(err.msg, "captive"));

	/* and a success after failures is cached as usual */
	fake.resp_body = "{\"expires_in\":3600,\"access_token\":\"finally\"}";
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, false, &err), "finally");
	free(echo);
	free(body);
	credential_free(c);
}

/* The value of a form field in the last request (owned), or NULL. */
static char *form_value(const char *key)
{
	char *needle = kv_asprintf("%s=", key);
	const char *p = fake.body;
	char *v = NULL;

	while (p != NULL && (p = strstr(p, needle)) != NULL) {
		if (p == fake.body || p[-1] == '&') {
			p += strlen(needle);
			v = kv_strndup(p, strcspn(p, "&"));
			break;
		}
		p++;
	}
	free(needle);
	return v;
}

static void certificate_credential_sends_a_client_assertion_for_the_tenant_asked(void **state)
{
	EVP_PKEY *key = new_key();
	X509 *cert = new_cert(key, "kvaudit-test");
	X509 *certs[] = {cert, NULL};
	char *pem = write_pem("app.pem", certs, key, "pw");
	struct kv_err err = {{0}};
	struct credential *c;
	char *type, *assertion, *jti;
	long long before = (long long)time(NULL), now;
	cJSON *claims;

	(void)state;
	setenv("AZURE_CLIENT_ID", APP, 1);
	setenv("AZURE_TENANT_ID", TENANT, 1);
	setenv("AZURE_CLIENT_CERTIFICATE_PATH", pem, 1);
	/* an encrypted key without its password is refused up front */
	assert_null(credential_new(AUTH_ENV, &test_cloud, FAKE_HTTP, &err));
	assert_non_null(strstr(err.msg, "is encrypted: set AZURE_CLIENT_CERTIFICATE_PASSWORD"));
	setenv("AZURE_CLIENT_CERTIFICATE_PASSWORD", "pw", 1);
	c = credential_new(AUTH_ENV, &test_cloud, FAKE_HTTP, &err);
	if (c == NULL)
		fail_msg("%s", err.msg);
	fake.resp_body = "{\"expires_in\":3600,\"access_token\":\"cert-tok-@N@\"}";
	for (int i = 0; i < 2; i++) {
		const char *tenant = i == 0 ? NULL : "fabrikam.onmicrosoft.com";
		char *url = kv_asprintf("https://login.example.test/%s/oauth2/v2.0/token", tenant ? tenant : TENANT);

		assert_non_null(credential_token(c, ARM_SCOPE, tenant, false, &err));
		assert_string_equal(fake.url, url);
		assert_null(form_value("client_secret"));
		type = form_value("client_assertion_type");
		assert_string_equal(type, "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer");
		assertion = form_value("client_assertion");
		assert_non_null(assertion);
		claims = jwt_claims(assertion);
		now = (long long)json_num(claims, "iat");
		assert_true(now >= before && now <= (long long)time(NULL));
		jti = check_assertion(assertion, cert, APP, url, now);
		free(jti);
		cJSON_Delete(claims);
		free(type);
		free(assertion);
		free(url);
	}
	/* a failure reports the status, never the assertion */
	fake.status = 400;
	fake.resp_body = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS700027: Client assertion "
	                 "failed signature validation.\\r\\nTrace ID: x\"}";
	assert_null(credential_token(c, ARM_SCOPE, NULL, true, &err));
	assert_non_null(strstr(err.msg, "HTTP 400 invalid_client: AADSTS700027: Client assertion failed signature "
	                                "validation."));
	assert_null(strstr(err.msg, "eyJ"));
	credential_free(c);
	free(pem);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void federated_token_file_is_read_again_for_every_token(void **state)
{
	struct kv_err err = {{0}};
	struct credential *c;
	char *fed = path_in("token"), *v;

	(void)state;
	write_text("token", "federated-one\n", 0600);
	setenv("AZURE_CLIENT_ID", APP, 1);
	setenv("AZURE_TENANT_ID", TENANT, 1);
	setenv("AZURE_FEDERATED_TOKEN_FILE", fed, 1);
	c = credential_new(AUTH_AUTO, &test_cloud, FAKE_HTTP, &err);
	if (c == NULL)
		fail_msg("%s", err.msg);
	fake.resp_body = "{\"expires_in\":3600,\"access_token\":\"wi-@N@\"}";
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, false, &err), "wi-1");
	v = form_value("client_assertion");
	assert_string_equal(v, "federated-one");
	free(v);
	v = form_value("client_assertion_type");
	assert_string_equal(v, "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer");
	free(v);

	/* the platform rotates the file */
	write_text("token", "\n  federated-two\t\r\n", 0600);
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, true, &err), "wi-2");
	v = form_value("client_assertion");
	assert_string_equal(v, "federated-two");
	free(v);

	/* and it can vanish */
	unlink(fed);
	assert_null(credential_token(c, ARM_SCOPE, NULL, true, &err));
	assert_non_null(strstr(err.msg, "AZURE_FEDERATED_TOKEN_FILE: cannot open '"));
	assert_int_equal(fake.calls, 2);
	credential_free(c);
	free(fed);
}

/* ---- managed identity ---- */

static void imds_is_asked_for_the_resource_with_the_metadata_header(void **state)
{
	struct kv_err err = {{0}};
	struct credential *c;
	char *jwt = make_jwt("{\"tid\":\"" TENANT "\",\"idtyp\":\"app\"}");
	char *body = kv_asprintf("{\"access_token\":\"%s\",\"client_id\":\"x\",\"expires_in\":\"3599\","
	                         "\"expires_on\":\"%lld\",\"resource\":\"https://management.azure.com/\","
	                         "\"token_type\":\"Bearer\"}", jwt, (long long)time(NULL) + 3599);

	(void)state;
	setenv("KVAUDIT_IMDS_ENDPOINT", "http://127.0.0.1:9999/", 1);
	c = credential_new(AUTH_AUTO, &test_cloud, FAKE_HTTP, &err);
	if (c == NULL)
		fail_msg("%s", err.msg);
	assert_null(credential_tenant(c));
	fake.resp_body = body;
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, false, &err), jwt);
	assert_string_equal(fake.method, "GET");
	assert_null(fake.body);
	assert_string_equal(fake.url, "http://127.0.0.1:9999/metadata/identity/oauth2/token?api-version=2018-02-01"
	                              "&resource=https%3A%2F%2Fmanagement.azure.com");
	assert_string_equal(fake.headers[0], "Metadata: true");
	assert_null(fake.headers[1]);
	/* the tenant is learnt from the token */
	assert_string_equal(credential_tenant(c), TENANT);
	/* the own tenant by name is the cached token */
	assert_string_equal(credential_token(c, ARM_SCOPE, TENANT, false, &err), jwt);
	assert_int_equal(fake.calls, 1);
	/* a managed identity has no tokens for other tenants */
	assert_null(credential_token(c, ARM_SCOPE, "contoso.onmicrosoft.com", false, &err));
	assert_string_equal(err.msg, "a managed identity cannot get tokens for other tenants: it belongs to tenant "
	                             TENANT ", and tenant contoso.onmicrosoft.com was asked for (use a service "
	                             "principal or 'az login' for multi-tenant scans)");
	assert_int_equal(fake.calls, 1);
	/* the resource is the scope without "/.default", even one ending in '/' */
	assert_non_null(credential_token(c, "https://management.core.windows.net//.default", NULL, false, &err));
	assert_non_null(strstr(fake.url, "&resource=https%3A%2F%2Fmanagement.core.windows.net%2F"));
	assert_null(strstr(fake.url, "default"));
	credential_free(c);
	free(body);
	free(jwt);
}

static void user_assigned_identity_is_asked_for_by_client_id(void **state)
{
	struct kv_err err = {{0}};
	struct credential *c;

	(void)state;
	setenv("AZURE_CLIENT_ID", APP, 1);
	setenv("KVAUDIT_IMDS_ENDPOINT", "http://169.254.169.254", 1);
	c = credential_new(AUTH_AUTO, &test_cloud, FAKE_HTTP, &err);
	if (c == NULL)
		fail_msg("%s", err.msg);
	fake.resp_body = "{\"access_token\":\"opaque\",\"expires_in\":\"3599\"}";
	assert_string_equal(credential_token(c, "https://vault.azure.net/.default", NULL, false, &err), "opaque");
	assert_string_equal(fake.url, "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
	                              "&resource=https%3A%2F%2Fvault.azure.net&client_id=" APP);
	/* an opaque token tells no tenant, so no other tenant can be served */
	assert_null(credential_tenant(c));
	assert_null(credential_token(c, "https://vault.azure.net/.default", "contoso.onmicrosoft.com", false, &err));
	assert_non_null(strstr(err.msg, "a managed identity cannot get tokens for other tenants"));
	credential_free(c);
}

static void app_service_identity_endpoint_gets_its_secret_header(void **state)
{
	struct kv_err err = {{0}};
	struct credential *c;
	char *fixture = kv_asprintf("%s/imds-2018-02-01-getIdentityToken.json", KV_FIXTURES);
	char *text = kv_read_file(fixture, 1 << 20, NULL, &err);
	cJSON *doc = cJSON_Parse(text);
	char *bad_request;

	(void)state;
	assert_non_null(doc);
	bad_request = cJSON_PrintUnformatted(
		cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(doc, "responses"), "400"), "body"));
	assert_non_null(bad_request);
	setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:41234/msi/token", 1);
	setenv("IDENTITY_HEADER", "hdr-s3cr3t-value", 1);
	c = credential_new(AUTH_MSI, &test_cloud, FAKE_HTTP, &err);
	if (c == NULL)
		fail_msg("%s", err.msg);
	fake.resp_body = "{\"access_token\":\"as-tok\",\"expires_on\":\"4070908800\",\"resource\":\"r\","
	                 "\"token_type\":\"Bearer\",\"client_id\":\"c\"}";
	assert_string_equal(credential_token(c, ARM_SCOPE, NULL, false, &err), "as-tok");
	assert_string_equal(fake.url, "http://127.0.0.1:41234/msi/token?api-version=2019-08-01"
	                              "&resource=https%3A%2F%2Fmanagement.azure.com");
	assert_string_equal(fake.headers[0], "X-IDENTITY-HEADER: hdr-s3cr3t-value");

	/* IMDS's error shape (recorded fixture): code and description, never the header */
	fake.status = 400;
	fake.resp_body = bad_request;
	fake.request_id = "r-1";
	assert_null(credential_token(c, ARM_SCOPE, NULL, true, &err));
	assert_string_equal(err.msg, "cannot get a managed identity token from the App Service identity endpoint: "
	                             "GET http://127.0.0.1:41234/msi/token: HTTP 400 invalid_request: Bad request, "
	                             "request id r-1");
	credential_free(c);
	cJSON_free(bad_request);
	cJSON_Delete(doc);
	free(text);
	free(fixture);
}

static void imds_unreachable_says_where_managed_identities_exist(void **state)
{
	struct kv_err err = {{0}};
	struct credential *c;
	char *body = data_file("imds-identity-not-found.json", NULL);

	(void)state;
	c = credential_new(AUTH_MSI, &test_cloud, FAKE_HTTP, &err);
	if (c == NULL)
		fail_msg("%s", err.msg);
	fake.status = 0;
	assert_null(credential_token(c, ARM_SCOPE, NULL, false, &err));
	assert_string_equal(err.msg, "cannot get a managed identity token from IMDS: GET "
	                             "http://169.254.169.254/metadata/identity/oauth2/token: connection refused "
	                             "(is this an Azure VM or other resource with a managed identity?)");
	fake.status = 400;
	fake.resp_body = body;
	assert_null(credential_token(c, ARM_SCOPE, NULL, false, &err));
	assert_string_equal(err.msg, "cannot get a managed identity token from IMDS: GET "
	                             "http://169.254.169.254/metadata/identity/oauth2/token: HTTP 400 "
	                             "invalid_request: Identity not found");
	credential_free(c);
	free(body);
}

/* ---- Azure CLI ---- */

/* Writes an executable fake az into the temporary directory and points KVAUDIT_AZ at it. */
static void fake_az(const char *script)
{
	char *p = path_in("az");
	char *text = with_dir(script);

	write_text("az", text, 0755);
	setenv("KVAUDIT_AZ", p, 1);
	free(text);
	free(p);
}

static struct credential *new_cli_credential(void)
{
	struct kv_err err = {{0}};
	struct credential *c = credential_new(AUTH_AUTO, &test_cloud, FAKE_HTTP, &err);

	if (c == NULL)
		fail_msg("%s", err.msg);
	return c;
}

static void cli_credential_runs_az_without_a_shell_and_parses_its_json(void **state)
{
	char *jwt = make_jwt("{\"tid\":\"" TENANT "\",\"upn\":\"ada@contoso.com\"}");
	char *script = kv_asprintf(
		"#!/bin/sh\n"
		"# only shell builtins: PATH is an empty directory\n"
		"printf '%%s\\n' \"$@\" > '@DIR@/args'\n"
		"if read -r line; then echo 'stdin is not /dev/null' >&2; exit 3; fi\n"
		"echo 'WARNING: a warning on stderr is ignored' >&2\n"
		"printf '%%s\\n' '{' '  \"accessToken\": \"%s\",' '  \"expiresOn\": \"2099-01-01 00:00:00.000000\",'"
		" '  \"expires_on\": 4070908800,' '  \"subscription\": \"s\",' '  \"tenant\": \"%s\",'"
		" '  \"tokenType\": \"Bearer\"' '}'\n",
		jwt, TENANT);
	struct credential *c;
	struct kv_err err = {{0}};
	char *args;

	(void)state;
	fake_az(script);
	c = new_cli_credential();
	assert_null(credential_tenant(c));
	assert_string_equal(credential_token(c, "https://management.core.windows.net//.default", NULL, false, &err),
	                    jwt);
	args = read_text("args");
	assert_string_equal(args, "account\nget-access-token\n--scope\nhttps://management.core.windows.net//.default\n"
	                          "--output\njson\n");
	free(args);
	assert_string_equal(credential_tenant(c), TENANT);
	assert_int_equal(fake.calls, 0); /* no HTTP */
	/* cached, for the own tenant named too: az is not run again */
	char *args_path = path_in("args");
	unlink(args_path);
	assert_string_equal(credential_token(c, "https://management.core.windows.net//.default", TENANT, false, &err),
	                    jwt);
	assert_int_equal(access(args_path, F_OK), -1);
	/* another tenant: --tenant */
	assert_non_null(credential_token(c, ARM_SCOPE, "fabrikam.onmicrosoft.com", false, &err));
	args = read_text("args");
	assert_string_equal(args, "account\nget-access-token\n--scope\n" ARM_SCOPE "\n--tenant\nfabrikam.onmicrosoft.com\n"
	                          "--output\njson\n");
	free(args);
	free(args_path);
	credential_free(c);
	free(script);
	free(jwt);
}

static void cli_failure_reports_the_first_line_of_stderr_and_never_the_token(void **state)
{
	struct credential *c;
	struct kv_err err = {{0}};

	(void)state;
	fake_az("#!/bin/sh\n"
	        "echo '{\"accessToken\":\"SECRET-TOKEN-ON-STDOUT\",\"expires_on\":4070908800}'\n"
	        "echo \"ERROR: Please run 'az login' to setup account.\" >&2\n"
	        "echo 'second line of detail' >&2\n"
	        "exit 1\n");
	c = new_cli_credential();
	assert_null(credential_token(c, ARM_SCOPE, NULL, false, &err));
	assert_string_equal(err.msg, "azure cli: 'az account get-access-token': failed (exit status 1): "
	                             "ERROR: Please run 'az login' to setup account.");
	credential_free(c);

	fake_az("#!/bin/sh\nexit 2\n");
	c = new_cli_credential();
	assert_null(credential_token(c, ARM_SCOPE, "contoso.onmicrosoft.com", false, &err));
	assert_string_equal(err.msg, "azure cli: 'az account get-access-token --tenant contoso.onmicrosoft.com': "
	                             "failed (exit status 2)");
	credential_free(c);
}

static void cli_garbage_output_is_an_error_without_the_output(void **state)
{
	static const char *const outputs[] = {
		"#!/bin/sh\necho 'not json SECRET-TOKEN-GARBAGE'\n",
		"#!/bin/sh\necho '{\"accessToken\":\"SECRET-TOKEN-NO-EXPIRY\"}'\n",
		"#!/bin/sh\necho '{\"accessToken\":\"SECRET TOKEN WITH SPACES\",\"expires_on\":4070908800}'\n",
		"#!/bin/sh\n",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(outputs); i++) {
		struct credential *c;
		struct kv_err err = {{0}};

		fake_az(outputs[i]);
		c = new_cli_credential();
		assert_null(credential_token(c, ARM_SCOPE, NULL, false, &err));
		if (strncmp(err.msg, "azure cli: 'az account get-access-token': unusable output: token response",
		            strlen("azure cli: 'az account get-access-token': unusable output: token response")) != 0)
			fail_msg("output %zu: %s", i, err.msg);
		assert_null(strstr(err.msg, "SECRET"));
		credential_free(c);
	}
}

static void cli_that_cannot_be_run_is_an_error(void **state)
{
	struct credential *c;
	struct kv_err err = {{0}};
	char *p = path_in("az");

	(void)state;
	fake_az("#!/bin/sh\nexit 0\n");
	c = new_cli_credential();
	/* the program disappears after the credential was made */
	unlink(p);
	assert_null(credential_token(c, ARM_SCOPE, NULL, false, &err));
	assert_true(strncmp(err.msg, "azure cli: 'az account get-access-token': ",
	                    strlen("azure cli: 'az account get-access-token': ")) == 0);
	credential_free(c);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(auth_method_parse_accepts_the_documented_names),
		cmocka_unit_test_setup_teardown(credential_sources_are_selected_or_the_missing_variable_named, setup,
		                                teardown),
		cmocka_unit_test(jwt_claims_decodes_the_payload_with_or_without_padding),
		cmocka_unit_test(jwt_claims_is_null_for_anything_but_a_jwt),
		cmocka_unit_test_setup_teardown(client_assertion_is_an_rs256_jwt_with_the_certificate_thumbprint, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(client_assertion_picks_the_certificate_of_the_key_in_a_chain, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(client_assertion_decrypts_an_encrypted_key_with_the_right_password_only,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(client_assertion_refuses_files_without_a_pem_key_and_certificate, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(client_secret_is_posted_form_encoded_and_the_token_cached, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(token_for_another_tenant_comes_from_that_tenants_endpoint, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(token_is_renewed_five_minutes_before_it_expires, setup, teardown),
		cmocka_unit_test_setup_teardown(authority_host_replaces_the_clouds_login_endpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(token_endpoint_errors_name_the_aadsts_code_status_and_request_id, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(certificate_credential_sends_a_client_assertion_for_the_tenant_asked,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(federated_token_file_is_read_again_for_every_token, setup, teardown),
		cmocka_unit_test_setup_teardown(imds_is_asked_for_the_resource_with_the_metadata_header, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(user_assigned_identity_is_asked_for_by_client_id, setup, teardown),
		cmocka_unit_test_setup_teardown(app_service_identity_endpoint_gets_its_secret_header, setup, teardown),
		cmocka_unit_test_setup_teardown(imds_unreachable_says_where_managed_identities_exist, setup, teardown),
		cmocka_unit_test_setup_teardown(cli_credential_runs_az_without_a_shell_and_parses_its_json, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(cli_failure_reports_the_first_line_of_stderr_and_never_the_token, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(cli_garbage_output_is_an_error_without_the_output, setup, teardown),
		cmocka_unit_test_setup_teardown(cli_that_cannot_be_run_is_an_error, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
