/*
 * auth.c - see auth.h.  The one module that touches key material (STYLE.md
 * practice 11): client secrets, certificates and their private keys,
 * federated tokens, the App Service identity header and the bearer tokens
 * they buy.  Everything secret is wiped before it is freed, and no error
 * message built here quotes any of it: errors carry the URL (without its
 * query), the HTTP status, the OAuth error code, the first line of its
 * description and the request ID (AZURE-FACTS g).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "audit/azure/auth.h"
#include "audit/azure/parse.h"

extern char **environ;

#define RENEW_BEFORE 300               /* seconds before expiry a cached token is renewed */
#define ASSERTION_LIFETIME 600         /* seconds a client assertion is valid (AZURE-FACTS g: 5-10 min) */
#define MAX_PEM_FILE (1024 * 1024)
#define MAX_FEDERATED_FILE (64 * 1024) /* a projected service-account token is 1-2 KiB */
#define CLI_MAX_STDOUT (1024 * 1024)
#define CLI_MAX_STDERR (16 * 1024)
#define CLI_TIMEOUT_MS (120 * 1000)
#define IMDS_DEFAULT "http://169.254.169.254"
#define IMDS_PATH "/metadata/identity/oauth2/token"
#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define FORM_CONTENT_TYPE "Content-Type: application/x-www-form-urlencoded"

/* ---- secrets in memory ---- */

/* Overwrites n bytes in a way the compiler may not elide (no explicit_bzero in strict POSIX). */
static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

/* Wipes a NUL-terminated heap string, then frees it; NULL is fine. */
static void wipe_free(char *s)
{
	if (s != NULL) {
		wipe(s, strlen(s));
		free(s);
	}
}

/* Wipes a buffer's whole allocation, then releases it. */
static void buf_wipe_release(struct kv_buf *b)
{
	if (b->data != NULL)
		wipe(b->data, b->cap);
	kv_buf_release(b);
}

/*
 * Defence in depth: replaces every occurrence of secret in err with
 * "[redacted]".  Messages are built not to contain secrets; this catches a
 * server or a library echoing one back.  Short strings are left alone (they
 * would match ordinary words).
 */
static void scrub(struct kv_err *err, const char *secret)
{
	char out[sizeof(err->msg)];
	size_t n, o = 0;
	const char *p, *hit;

	if (err == NULL || secret == NULL || (n = strlen(secret)) < 6 || strstr(err->msg, secret) == NULL)
		return;
	for (p = err->msg; (hit = strstr(p, secret)) != NULL; p = hit + n) {
		size_t pre = (size_t)(hit - p);

		if (o + pre + 10 >= sizeof(out))
			break;
		memcpy(out + o, p, pre);
		o += pre;
		memcpy(out + o, "[redacted]", 10);
		o += 10;
	}
	if (strstr(p, secret) == NULL) {
		size_t rest = strlen(p);

		if (rest > sizeof(out) - 1 - o)
			rest = sizeof(out) - 1 - o;
		memcpy(out + o, p, rest);
		o += rest;
	}
	out[o] = '\0';
	memcpy(err->msg, out, o + 1);
}

/* ---- small helpers ---- */

/* Appends s to err's message, truncating. */
static void err_append(struct kv_err *err, const char *s)
{
	size_t at = strnlen(err->msg, sizeof(err->msg) - 1);

	snprintf(err->msg + at, sizeof(err->msg) - at, "%s", s);
}

/* An environment variable, with "" treated as unset. */
static const char *env_get(const char *name)
{
	const char *v = getenv(name);

	return kv_empty(v) ? NULL : v;
}

/*
 * Copies the first non-blank line of src[0..n) into dst as printable ASCII
 * (other bytes become '?'), truncated to fit.  For server and tool text
 * that goes into an error message.
 */
static void first_line(char *dst, size_t dstsz, const char *src, size_t n)
{
	size_t i = 0, o = 0;

	while (i < n && (src[i] == '\r' || src[i] == '\n' || src[i] == ' ' || src[i] == '\t'))
		i++;
	for (; i < n && src[i] != '\r' && src[i] != '\n' && o + 1 < dstsz; i++) {
		unsigned char ch = (unsigned char)src[i];

		dst[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	while (o > 0 && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
}

/* A tenant ID or verified domain: it goes into a URL path and an argv. */
static bool tenant_ok(const char *t)
{
	size_t n = 0;

	if (kv_empty(t) || !((t[0] >= 'a' && t[0] <= 'z') || (t[0] >= 'A' && t[0] <= 'Z') ||
	                     (t[0] >= '0' && t[0] <= '9')))
		return false;
	for (; t[n] != '\0'; n++) {
		char ch = t[n];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '-' || ch == '.'))
			return false;
	}
	return n <= 253;
}

/* A scope: visible ASCII, not an option to az, not absurdly long. */
static bool scope_ok(const char *s)
{
	size_t n = 0;

	if (kv_empty(s) || s[0] == '-')
		return false;
	for (; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e)
			return false;
	return n <= 2048;
}

/* A header value must not be able to start another header. */
static bool header_value_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return false;
	return true;
}

/* Appends s percent-encoded: everything but RFC 3986 unreserved characters. */
static void pct_encode(struct kv_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			kv_buf_addc(b, (char)ch);
		} else {
			char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};

			kv_buf_add(b, e, 3);
		}
	}
}

/* Appends "&key=value" (no '&' when the buffer is empty), value percent-encoded. */
static void form_add(struct kv_buf *b, const char *key, const char *value)
{
	if (b->len > 0)
		kv_buf_addc(b, '&');
	kv_buf_adds(b, key);
	kv_buf_addc(b, '=');
	pct_encode(b, value);
}

/* A dotted-quad IPv4 address, strictly: four decimal octets 0-255. */
static bool parse_ipv4(const char *s, unsigned char out[4])
{
	for (int i = 0; i < 4; i++) {
		unsigned v = 0;
		int digits = 0;

		while (*s >= '0' && *s <= '9' && digits < 4) {
			v = v * 10 + (unsigned)(*s++ - '0');
			digits++;
		}
		if (digits == 0 || digits > 3 || v > 255)
			return false;
		out[i] = (unsigned char)v;
		if (i < 3 && *s++ != '.')
			return false;
	}
	return *s == '\0';
}

/* Loopback or link-local: the only hosts a token may be fetched from over plain http. */
static bool host_is_local(const char *host)
{
	unsigned char a[4];

	if (kv_streq_ci(host, "localhost") || strcmp(host, "[::1]") == 0)
		return true;
	return parse_ipv4(host, a) && (a[0] == 127 || (a[0] == 169 && a[1] == 254));
}

/*
 * Checks a token endpoint URL: https anywhere, or http to a loopback or
 * link-local host (IMDS, the App Service identity endpoint); no user info,
 * no fragment, and no query unless allow_query.  var names the variable for
 * the message.
 */
static bool endpoint_ok(const char *url, const char *var, bool allow_http, bool allow_query,
                        struct kv_err *err)
{
	char host[256];
	const char *p, *end;
	bool https = kv_startswith_ci(url, "https://");

	if (!https && !(allow_http && kv_startswith_ci(url, "http://"))) {
		kv_err_set(err, "%s must be an %s URL", var, allow_http ? "http or https" : "https");
		return false;
	}
	p = url + (https ? 8 : 7);
	end = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(end - p)) != NULL || strchr(url, '#') != NULL ||
	    (!allow_query && strchr(url, '?') != NULL)) {
		kv_err_set(err, "%s must be a URL without user info, %sfragment", var, allow_query ? "" : "query or ");
		return false;
	}
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (rb == NULL) {
			kv_err_set(err, "%s: unterminated IPv6 address", var);
			return false;
		}
		end = rb + 1;
	} else {
		end = p + strcspn(p, ":/?#");
	}
	if (end == p || (size_t)(end - p) >= sizeof(host)) {
		kv_err_set(err, "%s: the URL has no host", var);
		return false;
	}
	memcpy(host, p, (size_t)(end - p));
	host[end - p] = '\0';
	if (!https && !host_is_local(host)) {
		kv_err_set(err, "%s: plain http is allowed only to a loopback or link-local host "
		                "(such as 169.254.169.254); use https", var);
		return false;
	}
	return true;
}

/* A copy of url without a trailing '/'. */
static char *strip_slash(const char *url)
{
	size_t n = strlen(url);

	while (n > 0 && url[n - 1] == '/')
		n--;
	return kv_strndup(url, n);
}

/* ---- base64url ---- */

static void b64url_encode(struct kv_buf *b, const unsigned char *p, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};

		kv_buf_add(b, q, 4);
	}
	if (n - i == 1) {
		unsigned v = (unsigned)p[i] << 16;
		char q[2] = {tab[v >> 18], tab[(v >> 12) & 63]};

		kv_buf_add(b, q, 2);
	} else if (n - i == 2) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		char q[3] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63]};

		kv_buf_add(b, q, 3);
	}
}

static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Decodes base64url s[0..n), with or without '=' padding, into a new
 * NUL-terminated buffer (*out_len bytes before the NUL).  NULL on any
 * character outside the alphabet or an impossible length.
 */
static unsigned char *b64url_decode(const char *s, size_t n, size_t *out_len)
{
	unsigned char *out;
	unsigned acc = 0;
	int bits = 0;
	size_t o = 0;

	while (n > 0 && s[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return NULL;
	out = kv_malloc(n / 4 * 3 + 3);
	for (size_t i = 0; i < n; i++) {
		int v = b64url_value(s[i]);

		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6 | (unsigned)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

/* ---- JWT claims ---- */

cJSON *jwt_claims(const char *token)
{
	const char *d1, *d2;
	unsigned char *payload;
	size_t len;
	cJSON *claims;

	if (token == NULL || (d1 = strchr(token, '.')) == NULL || d1 == token ||
	    (d2 = strchr(d1 + 1, '.')) == NULL || d2 == d1 + 1 || strchr(d2 + 1, '.') != NULL)
		return NULL;
	payload = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &len);
	if (payload == NULL)
		return NULL;
	/* The whole payload must be one JSON object (cJSON would otherwise ignore trailing bytes). */
	claims = cJSON_ParseWithLengthOpts((const char *)payload, len + 1, NULL, true);
	free(payload);
	if (!cJSON_IsObject(claims)) {
		cJSON_Delete(claims);
		return NULL;
	}
	return claims;
}

/* ---- certificate: the client assertion ---- */

struct pw_ctx {
	const char *password;
	bool asked;
};

/* OpenSSL's password callback: never prompts on the terminal. */
static int pem_password(char *buf, int size, int rwflag, void *u)
{
	struct pw_ctx *pw = u;
	size_t n;

	(void)rwflag;
	pw->asked = true;
	if (pw->password == NULL || size <= 0)
		return -1;
	n = strlen(pw->password);
	if (n > (size_t)size)
		return -1;
	memcpy(buf, pw->password, n);
	return (int)n;
}

/*
 * Loads the private key and its certificate from the PEM file at path: the
 * key is the first private key in the file (decrypted with password when
 * encrypted), the certificate the first one whose public key matches it
 * (the file may hold a chain).  Returns false with err naming
 * AZURE_CLIENT_CERTIFICATE_PATH or AZURE_CLIENT_CERTIFICATE_PASSWORD.
 */
static bool load_cert_key(const char *path, const char *password, X509 **cert_out, EVP_PKEY **key_out,
                          struct kv_err *err)
{
	struct pw_ctx pw = {password, false};
	char *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	bool ok = false, any = false;

	*cert_out = NULL;
	*key_out = NULL;
	data = kv_read_file(path, MAX_PEM_FILE, &len, err);
	if (data == NULL) {
		kv_err_prefix(err, "AZURE_CLIENT_CERTIFICATE_PATH");
		goto out;
	}
	if (strstr(data, "-----BEGIN ") == NULL) {
		kv_err_set(err, "AZURE_CLIENT_CERTIFICATE_PATH: '%s' is not a PEM file: it must hold the "
		                "certificate and its private key in PEM (convert a .pfx with "
		                "'openssl pkcs12 -in app.pfx -out app.pem')", path);
		goto out;
	}
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio == NULL) {
		kv_err_set(err, "AZURE_CLIENT_CERTIFICATE_PATH: cannot read '%s': out of memory", path);
		goto out;
	}
	key = PEM_read_bio_PrivateKey(bio, NULL, pem_password, &pw);
	if (key == NULL) {
		if (pw.asked && password == NULL)
			kv_err_set(err, "AZURE_CLIENT_CERTIFICATE_PATH: the private key in '%s' is encrypted: "
			                "set AZURE_CLIENT_CERTIFICATE_PASSWORD", path);
		else if (pw.asked)
			kv_err_set(err, "AZURE_CLIENT_CERTIFICATE_PASSWORD: cannot decrypt the private key in '%s' "
			                "(wrong password?)", path);
		else
			kv_err_set(err, "AZURE_CLIENT_CERTIFICATE_PATH: no private key in '%s' (the file must "
			                "hold the certificate and its private key)", path);
		goto out;
	}
	if (!EVP_PKEY_is_a(key, "RSA")) {
		kv_err_set(err, "AZURE_CLIENT_CERTIFICATE_PATH: the private key in '%s' is not an RSA key", path);
		goto out;
	}
	BIO_free(bio);
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio == NULL) {
		kv_err_set(err, "AZURE_CLIENT_CERTIFICATE_PATH: cannot read '%s': out of memory", path);
		goto out;
	}
	while ((cert = PEM_read_bio_X509(bio, NULL, pem_password, &pw)) != NULL) {
		any = true;
		if (X509_check_private_key(cert, key) == 1)
			break;
		X509_free(cert);
	}
	if (cert == NULL) {
		if (any)
			kv_err_set(err, "AZURE_CLIENT_CERTIFICATE_PATH: no certificate in '%s' matches its "
			                "private key", path);
		else
			kv_err_set(err, "AZURE_CLIENT_CERTIFICATE_PATH: no certificate in '%s' (the file must "
			                "hold the certificate and its private key)", path);
		goto out;
	}
	*cert_out = cert;
	*key_out = key;
	cert = NULL;
	key = NULL;
	ok = true;
out:
	/* Nothing from the queue goes into messages; leave it clean for other OpenSSL users. */
	ERR_clear_error();
	X509_free(cert);
	EVP_PKEY_free(key);
	BIO_free(bio);
	if (data != NULL) {
		wipe(data, len);
		free(data);
	}
	return ok;
}

/* Appends base64url(JSON of obj) to b. */
static void b64url_json(struct kv_buf *b, const cJSON *obj)
{
	char *s = cJSON_PrintUnformatted(obj);

	if (s == NULL) {
		fputs("kvaudit: out of memory\n", stderr);
		abort();
	}
	b64url_encode(b, (const unsigned char *)s, strlen(s));
	free(s);
}

/* A random UUID version 4 into out (37 bytes). */
static bool uuid4(char out[37])
{
	unsigned char r[16];

	if (RAND_bytes(r, sizeof(r)) != 1)
		return false;
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
	         r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
	return true;
}

/*
 * The client assertion: a JWT signed RS256 whose header names the
 * certificate by x5t, the base64url SHA-1 thumbprint of its DER encoding.
 * The current Entra doc shows PS256 with x5t#S256 instead; RS256 + x5t is
 * the older variant that Entra and every Azure SDK still accept
 * (AZURE-FACTS g, "CONFLICT by doc revision"), so it is the one used here.
 */
char *auth_client_assertion(const char *cert_pem_path, const char *password, const char *client_id,
                            const char *audience, long long now, struct kv_err *err)
{
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	EVP_MD_CTX *md = NULL;
	cJSON *header = NULL, *claims = NULL;
	struct kv_buf b;
	unsigned char thumb[EVP_MAX_MD_SIZE], *sig = NULL;
	unsigned int thumb_len = 0;
	size_t sig_len = 0;
	char x5t[64], jti[37];
	char *ret = NULL;

	kv_buf_init(&b, 0);
	if (kv_empty(cert_pem_path) || kv_empty(client_id) || kv_empty(audience)) {
		kv_err_set(err, "client assertion: the certificate path, client ID and audience are required");
		goto out;
	}
	if (!load_cert_key(cert_pem_path, password, &cert, &key, err))
		goto out;
	if (X509_digest(cert, EVP_sha1(), thumb, &thumb_len) != 1) {
		kv_err_set(err, "AZURE_CLIENT_CERTIFICATE_PATH: cannot compute the thumbprint of '%s'", cert_pem_path);
		goto out;
	}
	if (!uuid4(jti)) {
		kv_err_set(err, "client assertion: the random number generator failed");
		goto out;
	}
	b64url_encode(&b, thumb, thumb_len);
	snprintf(x5t, sizeof(x5t), "%s", b.data);
	kv_buf_release(&b);

	header = cJSON_CreateObject();
	cJSON_AddStringToObject(header, "alg", "RS256");
	cJSON_AddStringToObject(header, "typ", "JWT");
	cJSON_AddStringToObject(header, "x5t", x5t);
	claims = cJSON_CreateObject();
	cJSON_AddStringToObject(claims, "aud", audience);
	cJSON_AddStringToObject(claims, "iss", client_id);
	cJSON_AddStringToObject(claims, "sub", client_id);
	cJSON_AddStringToObject(claims, "jti", jti);
	cJSON_AddNumberToObject(claims, "nbf", (double)now);
	cJSON_AddNumberToObject(claims, "iat", (double)now);
	cJSON_AddNumberToObject(claims, "exp", (double)(now + ASSERTION_LIFETIME));
	b64url_json(&b, header);
	kv_buf_addc(&b, '.');
	b64url_json(&b, claims);

	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, &sig_len, (const unsigned char *)b.data, b.len) != 1) {
		kv_err_set(err, "client assertion: cannot sign with the key in '%s'", cert_pem_path);
		goto out;
	}
	sig = kv_malloc(sig_len);
	if (EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)b.data, b.len) != 1) {
		kv_err_set(err, "client assertion: cannot sign with the key in '%s'", cert_pem_path);
		goto out;
	}
	kv_buf_addc(&b, '.');
	b64url_encode(&b, sig, sig_len);
	ret = kv_buf_detach(&b);
out:
	ERR_clear_error();
	free(sig);
	EVP_MD_CTX_free(md);
	cJSON_Delete(header);
	cJSON_Delete(claims);
	X509_free(cert);
	EVP_PKEY_free(key);
	buf_wipe_release(&b);
	return ret;
}

/* ---- federated token file ---- */

/*
 * Reads the federated token file afresh (it is rotated by the platform,
 * e.g. every hour on AKS) and returns its contents without surrounding
 * whitespace; the caller wipes and frees it.
 */
static char *read_federated_token(const char *path, struct kv_err *err)
{
	size_t len = 0, start = 0;
	char *data = kv_read_file(path, MAX_FEDERATED_FILE, &len, err);
	char *tok;

	if (data == NULL) {
		kv_err_prefix(err, "AZURE_FEDERATED_TOKEN_FILE");
		return NULL;
	}
	while (start < len && (data[start] == ' ' || data[start] == '\t' || data[start] == '\r' ||
	                       data[start] == '\n'))
		start++;
	while (len > start && (data[len - 1] == ' ' || data[len - 1] == '\t' || data[len - 1] == '\r' ||
	                       data[len - 1] == '\n'))
		len--;
	tok = len > start ? kv_strndup(data + start, len - start) : NULL;
	wipe(data, strlen(data));
	free(data);
	if (tok == NULL)
		kv_err_set(err, "AZURE_FEDERATED_TOKEN_FILE: '%s' is empty", path);
	return tok;
}

/* ---- the credential ---- */

enum env_kind { ENV_SECRET, ENV_CERTIFICATE, ENV_FEDERATED };

struct token_entry {
	struct token_entry *next;
	char *scope;
	char *tenant;                /* NULL: the credential's own tenant */
	struct token_response tok;   /* access_token NULL while empty */
};

struct credential {
	enum auth_method method;     /* AUTH_ENV, AUTH_MSI or AUTH_CLI */
	const struct cloud *cloud;
	struct http_client *http;
	char *tenant;                /* env: AZURE_TENANT_ID; msi, cli: learnt from the first token */
	char *client_id;             /* env: the app; msi: a user-assigned identity, or NULL */
	/* env */
	enum env_kind kind;
	char *secret;                /* wiped */
	char *cert_path;
	char *cert_password;         /* wiped */
	char *token_file;
	char *authority;             /* login endpoint, no trailing '/' */
	/* msi */
	bool app_service;
	char *msi_url;               /* IDENTITY_ENDPOINT, or the IMDS token URL */
	char *msi_header;            /* "X-IDENTITY-HEADER: ..." (wiped) or "Metadata: true" */
	char *msi_header_value;      /* IDENTITY_HEADER, for scrubbing; wiped */
	/* cli */
	char *az;
	char describe[768];
	struct token_entry *cache;
};

bool auth_method_parse(const char *s, enum auth_method *out)
{
	if (kv_streq_ci(s, "auto"))
		*out = AUTH_AUTO;
	else if (kv_streq_ci(s, "env"))
		*out = AUTH_ENV;
	else if (kv_streq_ci(s, "msi") || kv_streq_ci(s, "managed-identity"))
		*out = AUTH_MSI;
	else if (kv_streq_ci(s, "cli"))
		*out = AUTH_CLI;
	else
		return false;
	return true;
}

/* An executable regular file. */
static bool is_executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Whether posix_spawnp would find name: a path with '/', or a program on PATH. */
static bool program_found(const char *name)
{
	const char *path = getenv("PATH"), *p;

	if (strchr(name, '/') != NULL)
		return is_executable(name);
	if (path == NULL)
		return false;
	for (p = path;; p++) {
		size_t n = strcspn(p, ":");
		char *full = n == 0 ? kv_asprintf("./%s", name) : kv_asprintf("%.*s/%s", (int)n, p, name);
		bool found = is_executable(full);

		free(full);
		if (found)
			return true;
		p += n;
		if (*p == '\0')
			return false;
	}
}

static const char *az_program(void)
{
	const char *az = env_get("KVAUDIT_AZ");

	return az != NULL ? az : "az";
}

/* Printable copy of an identifier for describe() (never a secret). */
static void printable(char *dst, size_t dstsz, const char *s)
{
	first_line(dst, dstsz, s, strlen(s));
}

static bool setup_env(struct credential *c, struct kv_err *err)
{
	const char *id = env_get("AZURE_CLIENT_ID"), *tenant = env_get("AZURE_TENANT_ID");
	const char *secret = env_get("AZURE_CLIENT_SECRET"), *cert = env_get("AZURE_CLIENT_CERTIFICATE_PATH");
	const char *file = env_get("AZURE_FEDERATED_TOKEN_FILE"), *host = env_get("AZURE_AUTHORITY_HOST");
	char pid[100], ptid[100], ppath[256];

	if (id == NULL) {
		const char *which = secret != NULL ? "AZURE_CLIENT_SECRET"
		                    : cert != NULL ? "AZURE_CLIENT_CERTIFICATE_PATH"
		                    : file != NULL ? "AZURE_FEDERATED_TOKEN_FILE" : NULL;

		if (which != NULL)
			kv_err_set(err, "%s is set but AZURE_CLIENT_ID is not: set the application (client) ID "
			                "of the app", which);
		else
			kv_err_set(err, "AZURE_CLIENT_ID is not set: set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
			                "AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH, or "
			                "AZURE_FEDERATED_TOKEN_FILE)");
		return false;
	}
	if (tenant == NULL) {
		kv_err_set(err, "AZURE_CLIENT_ID is set but AZURE_TENANT_ID is not: set the tenant (directory) "
		                "ID of the app");
		return false;
	}
	if (!tenant_ok(tenant)) {
		kv_err_set(err, "AZURE_TENANT_ID is not a tenant ID or domain name (expected a GUID such as "
		                "72f988bf-86f1-41af-91ab-2d7cd011db47, or contoso.onmicrosoft.com)");
		return false;
	}
	if (secret == NULL && cert == NULL && file == NULL) {
		kv_err_set(err, "AZURE_CLIENT_ID and AZURE_TENANT_ID are set but AZURE_CLIENT_SECRET is not: "
		                "set it (or AZURE_CLIENT_CERTIFICATE_PATH, or AZURE_FEDERATED_TOKEN_FILE)");
		return false;
	}
	if (host != NULL) {
		if (!endpoint_ok(host, "AZURE_AUTHORITY_HOST", false, false, err))
			return false;
		c->authority = strip_slash(host);
	} else if (c->cloud != NULL && !kv_empty(c->cloud->login)) {
		c->authority = strip_slash(c->cloud->login);
	} else {
		kv_err_set(err, "the cloud has no login endpoint (endpoints.activeDirectory): set "
		                "AZURE_AUTHORITY_HOST");
		return false;
	}
	c->client_id = kv_strdup(id);
	c->tenant = kv_strdup(tenant);
	printable(pid, sizeof(pid), id);
	printable(ptid, sizeof(ptid), tenant);
	/* The order of the Azure SDKs' EnvironmentCredential: secret, then certificate. */
	if (secret != NULL) {
		c->kind = ENV_SECRET;
		c->secret = kv_strdup(secret);
		snprintf(c->describe, sizeof(c->describe), "client secret of app %s in tenant %s", pid, ptid);
	} else if (cert != NULL) {
		const char *pw = env_get("AZURE_CLIENT_CERTIFICATE_PASSWORD");
		X509 *x = NULL;
		EVP_PKEY *k = NULL;

		if (!load_cert_key(cert, pw, &x, &k, err))
			return false;
		X509_free(x);
		EVP_PKEY_free(k);
		c->kind = ENV_CERTIFICATE;
		c->cert_path = kv_strdup(cert);
		c->cert_password = kv_strdup(pw);
		printable(ppath, sizeof(ppath), cert);
		snprintf(c->describe, sizeof(c->describe), "certificate '%s' of app %s in tenant %s", ppath, pid,
		         ptid);
	} else {
		char *t = read_federated_token(file, err);

		if (t == NULL)
			return false;
		wipe_free(t);
		c->kind = ENV_FEDERATED;
		c->token_file = kv_strdup(file);
		printable(ppath, sizeof(ppath), file);
		snprintf(c->describe, sizeof(c->describe), "federated token file '%s' of app %s in tenant %s", ppath,
		         pid, ptid);
	}
	return true;
}

static bool setup_msi(struct credential *c, struct kv_err *err)
{
	const char *ie = env_get("IDENTITY_ENDPOINT"), *ih = env_get("IDENTITY_HEADER");
	const char *id = env_get("AZURE_CLIENT_ID");
	char pid[100], purl[256];

	if (ie != NULL) {
		if (ih == NULL) {
			kv_err_set(err, "IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not: both come from the App "
			                "Service or Functions host; set both, or unset IDENTITY_ENDPOINT to use IMDS");
			return false;
		}
		if (!endpoint_ok(ie, "IDENTITY_ENDPOINT", true, false, err))
			return false;
		if (!header_value_ok(ih)) {
			kv_err_set(err, "IDENTITY_HEADER contains control characters");
			return false;
		}
		c->app_service = true;
		c->msi_url = kv_strdup(ie);
		c->msi_header = kv_asprintf("X-IDENTITY-HEADER: %s", ih);
		c->msi_header_value = kv_strdup(ih);
	} else {
		const char *base = env_get("KVAUDIT_IMDS_ENDPOINT");
		char *b;

		if (base != NULL && !endpoint_ok(base, "KVAUDIT_IMDS_ENDPOINT", true, false, err))
			return false;
		b = strip_slash(base != NULL ? base : IMDS_DEFAULT);
		c->msi_url = kv_asprintf("%s%s", b, IMDS_PATH);
		free(b);
		c->msi_header = kv_strdup("Metadata: true");
	}
	c->client_id = kv_strdup(id);
	printable(purl, sizeof(purl), ie != NULL ? ie : c->msi_url);
	if (id != NULL) {
		printable(pid, sizeof(pid), id);
		snprintf(c->describe, sizeof(c->describe), "user-assigned managed identity %s via %s", pid, purl);
	} else {
		snprintf(c->describe, sizeof(c->describe), "managed identity via %s", purl);
	}
	return true;
}

static bool setup_cli(struct credential *c, struct kv_err *err)
{
	const char *az = az_program();
	char paz[320];

	if (!program_found(az)) {
		if (env_get("KVAUDIT_AZ") != NULL && strchr(az, '/') != NULL)
			kv_err_set(err, "KVAUDIT_AZ names '%s', which is not an executable program", az);
		else if (env_get("KVAUDIT_AZ") != NULL)
			kv_err_set(err, "KVAUDIT_AZ names '%s', which is not on PATH", az);
		else
			kv_err_set(err, "the Azure CLI ('az') is not on PATH: install it and sign in with 'az login', "
			                "or choose another credential with --auth");
		return false;
	}
	c->az = kv_strdup(az);
	printable(paz, sizeof(paz), az);
	snprintf(c->describe, sizeof(c->describe), "Azure CLI sign-in ('%s')", paz);
	return true;
}

/* AUTH_AUTO: see auth.h. */
static enum auth_method choose_method(void)
{
	bool id = env_get("AZURE_CLIENT_ID") != NULL;
	bool env_secret = env_get("AZURE_CLIENT_SECRET") != NULL || env_get("AZURE_CLIENT_CERTIFICATE_PATH") != NULL ||
	                  env_get("AZURE_FEDERATED_TOKEN_FILE") != NULL;
	bool msi = env_get("IDENTITY_ENDPOINT") != NULL || env_get("KVAUDIT_IMDS_ENDPOINT") != NULL;

	/* AZURE_CLIENT_ID alone beside a managed-identity endpoint picks a user-assigned identity. */
	if (id && !env_secret && env_get("AZURE_TENANT_ID") == NULL && msi)
		return AUTH_MSI;
	if (id || env_secret)
		return AUTH_ENV;
	if (msi)
		return AUTH_MSI;
	if (program_found(az_program()))
		return AUTH_CLI;
	return AUTH_AUTO;
}

struct credential *credential_new(enum auth_method m, const struct cloud *cloud, struct http_client *http,
                                  struct kv_err *err)
{
	struct credential *c = kv_calloc(1, sizeof(*c));
	bool ok = false;

	c->cloud = cloud;
	c->http = http;
	c->method = m == AUTH_AUTO ? choose_method() : m;
	switch (c->method) {
	case AUTH_ENV:
		ok = setup_env(c, err);
		break;
	case AUTH_MSI:
		ok = setup_msi(c, err);
		break;
	case AUTH_CLI:
		ok = setup_cli(c, err);
		break;
	case AUTH_AUTO:
	default:
		kv_err_set(err, "no credential found: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET "
		                "(or AZURE_CLIENT_CERTIFICATE_PATH, or AZURE_FEDERATED_TOKEN_FILE), run on an Azure "
		                "resource with a managed identity, or sign in with 'az login'");
		break;
	}
	if (!ok) {
		scrub(err, env_get("AZURE_CLIENT_SECRET"));
		scrub(err, env_get("AZURE_CLIENT_CERTIFICATE_PASSWORD"));
		scrub(err, env_get("IDENTITY_HEADER"));
		credential_free(c);
		return NULL;
	}
	return c;
}

void credential_free(struct credential *c)
{
	struct token_entry *e, *next;

	if (c == NULL)
		return;
	for (e = c->cache; e != NULL; e = next) {
		next = e->next;
		token_response_release(&e->tok);
		free(e->scope);
		free(e->tenant);
		free(e);
	}
	free(c->tenant);
	free(c->client_id);
	wipe_free(c->secret);
	free(c->cert_path);
	wipe_free(c->cert_password);
	free(c->token_file);
	free(c->authority);
	free(c->msi_url);
	wipe_free(c->msi_header);
	wipe_free(c->msi_header_value);
	free(c->az);
	wipe(c, sizeof(*c));
	free(c);
}

const char *credential_describe(const struct credential *c)
{
	return c != NULL ? c->describe : "no credential";
}

const char *credential_tenant(const struct credential *c)
{
	return c != NULL ? c->tenant : NULL;
}

/* ---- token requests ---- */

/* url up to its query, into dst. */
static void url_no_query(char *dst, size_t dstsz, const char *url)
{
	snprintf(dst, dstsz, "%.*s", (int)strcspn(url, "?#"), url);
}

/*
 * The error of a token endpoint that answered something other than 2xx:
 * the OAuth error code and the first line of error_description (Entra's
 * AADSTS code and sentence; later lines are trace and correlation IDs and a
 * timestamp), else the ARM-style code and message, plus the status and the
 * request ID.  With no HTTP response at all, the http layer's message.
 */
static void token_error(struct kv_err *err, const char *what, const char *method, const char *url,
                        const struct http_response *resp, const struct kv_err *herr)
{
	char u[512], code[128] = "", msg[400] = "", rid[160] = "";
	const char *body = resp->body.data != NULL ? resp->body.data : "";
	cJSON *doc;

	url_no_query(u, sizeof(u), url);
	if (resp->status == 0) {
		kv_err_set(err, "%s: %s", what, herr->msg[0] != '\0' ? herr->msg : "no response");
		return;
	}
	doc = cJSON_ParseWithLength(body, resp->body.len);
	if (cJSON_IsObject(doc) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(doc, "error"))) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(doc, "error_description");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "trace_id");

		first_line(code, sizeof(code), e->valuestring, strlen(e->valuestring));
		if (cJSON_IsString(d))
			first_line(msg, sizeof(msg), d->valuestring, strlen(d->valuestring));
		if (resp->request_id[0] == '\0' && cJSON_IsString(t))
			first_line(rid, sizeof(rid), t->valuestring, strlen(t->valuestring));
	} else {
		struct azure_error ae;

		azure_error_parse(body, resp->body.len, (int)resp->status, &ae);
		snprintf(code, sizeof(code), "%s", ae.code);
		first_line(msg, sizeof(msg), ae.message, strlen(ae.message));
	}
	cJSON_Delete(doc);
	if (resp->request_id[0] != '\0')
		first_line(rid, sizeof(rid), resp->request_id, strlen(resp->request_id));
	kv_err_set(err, "%s: %s %s: HTTP %ld%s%s%s%s%s%s", what, method, u, resp->status,
	           code[0] != '\0' ? " " : "", code, msg[0] != '\0' ? ": " : "", msg,
	           rid[0] != '\0' ? ", request id " : "", rid);
}

/*
 * One request to a token endpoint (Entra ID, IMDS, App Service); on success
 * *tok holds the token.  The response body, which holds the token, is wiped.
 */
static bool token_request(struct credential *c, const char *what, const char *method, const char *url,
                          const char *const *headers, const struct kv_buf *form, long long now,
                          struct token_response *tok, struct kv_err *err)
{
	struct http_response resp;
	struct kv_err herr;
	enum http_outcome o;
	bool ok = false;

	herr.msg[0] = '\0';
	o = http_request(c->http, method, url, NULL, headers, form != NULL ? form->data : NULL,
	                 form != NULL ? form->len : 0, &resp, &herr);
	if (o == HTTP_OK) {
		ok = token_response_parse(resp.body.data != NULL ? resp.body.data : "", resp.body.len, now, tok, err);
		if (!ok) {
			char u[512];

			url_no_query(u, sizeof(u), url);
			kv_err_prefix(err, "%s: %s %s", what, method, u);
		}
	} else {
		token_error(err, what, method, url, &resp, &herr);
	}
	buf_wipe_release(&resp.body);
	http_response_release(&resp);
	return ok;
}

/* Entra ID v2 client credentials: secret, certificate or federated token. */
static bool fetch_env(struct credential *c, const char *scope, const char *tenant, long long now,
                      struct token_response *tok, struct kv_err *err)
{
	static const char *const headers[] = {FORM_CONTENT_TYPE, NULL};
	const char *t = tenant != NULL ? tenant : c->tenant;
	char *url = kv_asprintf("%s/%s/oauth2/v2.0/token", c->authority, t);
	char *assertion = NULL, what[320], pid[160];
	struct kv_buf form;
	bool ok = false;

	kv_buf_init(&form, 0);
	printable(pid, sizeof(pid), c->client_id);
	snprintf(what, sizeof(what), "cannot get a token for app %s in tenant %s", pid, t);
	form_add(&form, "grant_type", "client_credentials");
	form_add(&form, "client_id", c->client_id);
	form_add(&form, "scope", scope);
	if (c->kind == ENV_SECRET) {
		form_add(&form, "client_secret", c->secret);
	} else {
		/* The audience is the token URL of the tenant asked, so a token for another tenant works too. */
		assertion = c->kind == ENV_CERTIFICATE
		                ? auth_client_assertion(c->cert_path, c->cert_password, c->client_id, url, now, err)
		                : read_federated_token(c->token_file, err);
		if (assertion == NULL) {
			kv_err_prefix(err, "%s", what);
			goto out;
		}
		form_add(&form, "client_assertion_type", ASSERTION_TYPE);
		form_add(&form, "client_assertion", assertion);
	}
	ok = token_request(c, what, "POST", url, headers, &form, now, tok, err);
out:
	scrub(err, assertion);
	wipe_free(assertion);
	buf_wipe_release(&form);
	free(url);
	return ok;
}

/* Managed identity: App Service / Functions endpoint, or IMDS.  A resource, not a scope. */
static bool fetch_msi(struct credential *c, const char *scope, long long now, struct token_response *tok,
                      struct kv_err *err)
{
	const char *const headers[] = {c->msi_header, NULL};
	size_t n = strlen(scope);
	char *resource, what[128];
	struct kv_buf url;
	bool ok;

	if (n > 9 && strcmp(scope + n - 9, "/.default") == 0)
		resource = kv_strndup(scope, n - 9);
	else
		resource = kv_strdup(scope);
	kv_buf_init(&url, 0);
	kv_buf_adds(&url, c->msi_url);
	kv_buf_adds(&url, c->app_service ? "?api-version=2019-08-01" : "?api-version=2018-02-01");
	form_add(&url, "resource", resource);
	if (c->client_id != NULL)
		form_add(&url, "client_id", c->client_id);
	snprintf(what, sizeof(what), "cannot get a managed identity token%s",
	         c->app_service ? " from the App Service identity endpoint" : " from IMDS");
	ok = token_request(c, what, "GET", url.data, headers, NULL, now, tok, err);
	if (!ok && !c->app_service && strstr(err->msg, ": HTTP ") == NULL)
		err_append(err, " (is this an Azure VM or other resource with a managed identity?)");
	kv_buf_release(&url);
	free(resource);
	return ok;
}

/* Sets FD_CLOEXEC so that only the ends dup2'ed onto 1 and 2 reach the child. */
static bool cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	return fl >= 0 && fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == 0;
}

static long long monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Runs argv (argv[0] looked up on PATH) without a shell, stdin from
 * /dev/null, collecting stdout (capped; overflow is an error) and stderr
 * (only its start is kept).  Kills the program after CLI_TIMEOUT_MS.
 * Returns false only when the program could not be run or waited for;
 * *status is waitpid's status, *timed_out tells a kill.
 */
static bool run_program(char *const argv[], struct kv_buf *out, struct kv_buf *errout, int *status,
                        bool *timed_out, struct kv_err *err)
{
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, rc;
	posix_spawn_file_actions_t fa;
	bool fa_ok = false, ok = false;
	pid_t pid = -1;
	char chunk[4096];
	long long deadline;

	*timed_out = false;
	if (pipe(outp) != 0 || pipe(errp) != 0 || !cloexec(outp[0]) || !cloexec(outp[1]) || !cloexec(errp[0]) ||
	    !cloexec(errp[1])) {
		kv_err_set(err, "cannot run '%s': %s", argv[0], strerror(errno));
		goto out;
	}
	if (posix_spawn_file_actions_init(&fa) != 0) {
		kv_err_set(err, "cannot run '%s': out of memory", argv[0]);
		goto out;
	}
	fa_ok = true;
	if (posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, outp[1], 1) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, errp[1], 2) != 0) {
		kv_err_set(err, "cannot run '%s': out of memory", argv[0]);
		goto out;
	}
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	if (rc != 0) {
		pid = -1;
		kv_err_set(err, "cannot run '%s': %s", argv[0], strerror(rc));
		goto out;
	}
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;

	deadline = monotonic_ms() + CLI_TIMEOUT_MS;
	while (outp[0] >= 0 || errp[0] >= 0) {
		struct pollfd pfd[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
		long long left = deadline - monotonic_ms();
		int r;

		if (left <= 0) {
			kill(pid, SIGKILL);
			*timed_out = true;
			break;
		}
		r = poll(pfd, 2, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			kill(pid, SIGKILL);
			kv_err_set(err, "cannot read the output of '%s': %s", argv[0], strerror(errno));
			break;
		}
		for (int i = 0; i < 2; i++) {
			int *fd = i == 0 ? &outp[0] : &errp[0];
			ssize_t got;

			if (*fd < 0 || pfd[i].revents == 0)
				continue;
			got = read(*fd, chunk, sizeof(chunk));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				close(*fd);
				*fd = -1;
				continue;
			}
			if (i == 0)
				kv_buf_add(out, chunk, (size_t)got);  /* past the cap: overflow is set, keep draining */
			else if (errout->len < errout->max)
				kv_buf_add(errout, chunk,
				           (size_t)got < errout->max - errout->len ? (size_t)got : errout->max - errout->len);
		}
	}
	wipe(chunk, sizeof(chunk));
	while (waitpid(pid, status, 0) < 0) {
		if (errno != EINTR) {
			kv_err_set(err, "cannot wait for '%s': %s", argv[0], strerror(errno));
			pid = -1;
			goto out;
		}
	}
	pid = -1;
	ok = err->msg[0] == '\0';
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, status, 0) < 0 && errno == EINTR)
			;
	}
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	return ok;
}

/* Azure CLI: `az account get-access-token --scope S [--tenant T] --output json`. */
static bool fetch_cli(struct credential *c, const char *scope, const char *tenant, long long now,
                      struct token_response *tok, struct kv_err *err)
{
	char *argv[10] = {NULL};
	struct kv_buf out, errout;
	struct kv_err rerr;
	int status = 0, n = 0;
	bool timed_out = false, ok = false;
	char what[320], line[400];

	if (tenant != NULL)
		snprintf(what, sizeof(what), "azure cli: 'az account get-access-token --tenant %s'", tenant);
	else
		snprintf(what, sizeof(what), "azure cli: 'az account get-access-token'");
	argv[n++] = kv_strdup(c->az);
	argv[n++] = kv_strdup("account");
	argv[n++] = kv_strdup("get-access-token");
	argv[n++] = kv_strdup("--scope");
	argv[n++] = kv_strdup(scope);
	if (tenant != NULL) {
		argv[n++] = kv_strdup("--tenant");
		argv[n++] = kv_strdup(tenant);
	}
	argv[n++] = kv_strdup("--output");
	argv[n++] = kv_strdup("json");
	kv_buf_init(&out, CLI_MAX_STDOUT);
	kv_buf_init(&errout, CLI_MAX_STDERR);
	rerr.msg[0] = '\0';
	if (!run_program(argv, &out, &errout, &status, &timed_out, &rerr)) {
		kv_err_set(err, "%s: %s", what, rerr.msg);
		goto out;
	}
	first_line(line, sizeof(line), errout.data != NULL ? errout.data : "", errout.len);
	if (timed_out) {
		kv_err_set(err, "%s: no answer after %d seconds", what, CLI_TIMEOUT_MS / 1000);
		goto out;
	}
	if (WIFSIGNALED(status)) {
		kv_err_set(err, "%s: killed by signal %d%s%s", what, WTERMSIG(status), line[0] ? ": " : "", line);
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;

		if (code == 127 && line[0] == '\0')
			kv_err_set(err, "%s: '%s' could not be run (exit status 127)", what, c->az);
		else
			kv_err_set(err, "%s: failed (exit status %d)%s%s", what, code, line[0] ? ": " : "", line);
		goto out;
	}
	if (out.overflow) {
		kv_err_set(err, "%s: its output is larger than %d bytes", what, CLI_MAX_STDOUT);
		goto out;
	}
	if (!token_response_parse(out.data != NULL ? out.data : "", out.len, now, tok, err)) {
		kv_err_prefix(err, "%s: unusable output", what);
		goto out;
	}
	ok = true;
out:
	buf_wipe_release(&out);
	kv_buf_release(&errout);
	for (int i = 0; i < n; i++)
		free(argv[i]);
	return ok;
}

/* NULL when tenant is NULL or the credential's own, so that both share a cache entry. */
static const char *key_tenant(const struct credential *c, const char *tenant)
{
	if (tenant == NULL || (c->tenant != NULL && kv_streq_ci(tenant, c->tenant)))
		return NULL;
	return tenant;
}

static struct token_entry *cache_entry(struct credential *c, const char *scope, const char *tenant)
{
	struct token_entry *e;

	for (e = c->cache; e != NULL; e = e->next)
		if (strcmp(e->scope, scope) == 0 && kv_streq_ci(e->tenant, tenant))
			return e;
	e = kv_calloc(1, sizeof(*e));
	e->scope = kv_strdup(scope);
	e->tenant = kv_strdup(tenant);
	e->next = c->cache;
	c->cache = e;
	return e;
}

/* The tenant a managed identity or the CLI signed in to, from the token's tid claim. */
static void learn_tenant(struct credential *c, const char *token)
{
	cJSON *claims;
	const cJSON *tid;

	if (c->tenant != NULL)
		return;
	claims = jwt_claims(token);
	tid = cJSON_GetObjectItemCaseSensitive(claims, "tid");
	if (cJSON_IsString(tid) && tenant_ok(tid->valuestring))
		c->tenant = kv_strdup(tid->valuestring);
	cJSON_Delete(claims);
}

static const char *token_for(struct credential *c, const char *scope, const char *tenant, bool force_refresh,
                             struct kv_err *err)
{
	const char *kt = key_tenant(c, tenant);
	struct token_entry *e;
	long long now;
	bool ok = false;

	if (kt != NULL && c->method == AUTH_MSI) {
		/* IMDS and App Service only issue tokens of the identity's own tenant. */
		if (c->tenant == NULL) {
			const char *own = token_for(c, scope, NULL, force_refresh, err);

			if (own == NULL)
				return NULL;
			if (key_tenant(c, tenant) == NULL)
				return own;
		}
		if (c->tenant != NULL)
			kv_err_set(err, "a managed identity cannot get tokens for other tenants: it belongs to tenant %s, "
			                "and tenant %s was asked for (use a service principal or 'az login' for "
			                "multi-tenant scans)", c->tenant, tenant);
		else
			kv_err_set(err, "a managed identity cannot get tokens for other tenants, and its own tenant is "
			                "unknown (its token is not a JWT), so tenant %s cannot be served", tenant);
		return NULL;
	}
	e = cache_entry(c, scope, kt);
	now = (long long)time(NULL);
	if (e->tok.access_token != NULL && !force_refresh && e->tok.expires_on - RENEW_BEFORE > now)
		return e->tok.access_token;
	token_response_release(&e->tok);
	switch (c->method) {
	case AUTH_ENV:
		ok = fetch_env(c, scope, kt, now, &e->tok, err);
		break;
	case AUTH_MSI:
		ok = fetch_msi(c, scope, now, &e->tok, err);
		break;
	case AUTH_CLI:
		ok = fetch_cli(c, scope, kt, now, &e->tok, err);
		break;
	case AUTH_AUTO:
	default:
		kv_err_set(err, "no credential");
		break;
	}
	if (!ok)
		return NULL;
	if (kt == NULL)
		learn_tenant(c, e->tok.access_token);
	return e->tok.access_token;
}

const char *credential_token(struct credential *c, const char *scope, const char *tenant, bool force_refresh,
                             struct kv_err *err)
{
	struct kv_err local;
	const char *tok;

	if (err == NULL)
		err = &local;
	if (c == NULL) {
		kv_err_set(err, "no credential");
		return NULL;
	}
	if (!scope_ok(scope)) {
		kv_err_set(err, "invalid token scope (expected a URL such as https://management.azure.com/.default)");
		return NULL;
	}
	if (tenant != NULL && !tenant_ok(tenant)) {
		char pt[80];

		printable(pt, sizeof(pt), tenant);
		kv_err_set(err, "'%s' is not a tenant ID or domain name", pt);
		return NULL;
	}
	err->msg[0] = '\0';
	tok = token_for(c, scope, tenant, force_refresh, err);
	if (tok == NULL) {
		scrub(err, c->secret);
		scrub(err, c->cert_password);
		scrub(err, c->msi_header_value);
		for (const struct token_entry *e = c->cache; e != NULL; e = e->next)
			scrub(err, e->tok.access_token);
	}
	return tok;
}
