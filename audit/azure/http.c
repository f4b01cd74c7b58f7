/*
 * http.c - see http.h.  One libcurl easy handle per client, reset (which
 * keeps its live connections, DNS and TLS session caches) and configured
 * from scratch for every attempt, so that no option of one request leaks
 * into the next; the multi engine (http_multi_*) runs many such attempts at
 * once on a pool of handles that share the multi handle's connections, with
 * the same retry policy, waiting for a retry without blocking the others
 * and pacing each key (subscription) with sched.c.  Modelled on git's http.c handle_curl_result (one place
 * maps transport error and status to an outcome) and curl's tool_operate.c
 * retrycheck/retry_sleep (one bounded retry policy).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "audit/azure/http.h"
#include "audit/util/log.h"
#include "audit/azure/parse.h"
#include "audit/azure/sched.h"

#ifndef KVAUDIT_VERSION
#define KVAUDIT_VERSION "0"
#endif

#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_TIMEOUT_MS 60000L
#define DEFAULT_MAX_BODY ((size_t)256 * 1024 * 1024)
#define DEFAULT_MAX_RETRIES 4
#define DEFAULT_MAX_RETRY_AFTER 60
#define BACKOFF_FIRST_MS 500L
#define BACKOFF_MAX_MS 30000L
#define CA_FILE_MAX ((size_t)16 * 1024 * 1024)
/* Where Debian's libcurl looks when asked nothing else (curl-config --ca). */
#define SYSTEM_CA_FALLBACK "/etc/ssl/certs/ca-certificates.crt"

struct http_client {
	CURL *curl;
	struct http_opts o;          /* with the defaults applied; log is borrowed */
	char *ca_blob;               /* system bundle + the extra PEM, or NULL to use curl's default */
	size_t ca_blob_len;
	/*
	 * The same, parsed once (OpenSSL builds of libcurl): every new connection
	 * gets it through CURLOPT_SSL_CTX_FUNCTION instead of parsing the ~200 KB
	 * blob again, which costs ~100 ms of CPU per connection and serialises
	 * the connections a concurrent scan opens.
	 */
	X509_STORE *ca_store;
	struct curl_slist *resolve;
	struct curl_slist *connect_to;
	void (*sleep_ms)(long ms);
	uint64_t rng;
};

const char *http_outcome_name(enum http_outcome o)
{
	switch (o) {
	case HTTP_OK: return "ok";
	case HTTP_NOT_FOUND: return "not_found";
	case HTTP_UNAUTHORIZED: return "unauthorized";
	case HTTP_FORBIDDEN: return "forbidden";
	case HTTP_THROTTLED: return "throttled";
	case HTTP_TRANSIENT: return "transient";
	case HTTP_FATAL: return "fatal";
	}
	return "fatal";
}

/* ---- small helpers ---- */

/* memset that the compiler may not drop: for memory that held a bearer token. */
static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n--)
		*v++ = 0;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void real_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* xorshift64*: jitter only, no need for anything stronger. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Exponential backoff before retry n (1-based): 0.5 s, 1 s, 2 s, ... +-20%, at most 30 s. */
static long backoff_ms(struct http_client *h, int n)
{
	long base = BACKOFF_FIRST_MS;
	long span, ms;

	for (int i = 1; i < n && base < BACKOFF_MAX_MS; i++)
		base *= 2;
	if (base > BACKOFF_MAX_MS)
		base = BACKOFF_MAX_MS;
	span = base * 2 / 5; /* 40%: [-20%, +20%] */
	ms = base - base / 5 + (long)(rng_next(&h->rng) % (uint64_t)(span + 1));
	return ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms;
}

/* "2 s" or "0.5 s". */
static void fmt_secs(long ms, char *out, size_t n)
{
	if (ms % 1000 == 0)
		snprintf(out, n, "%ld s", ms / 1000);
	else
		snprintf(out, n, "%.1f s", (double)ms / 1000.0);
}

/* Parses "a,b , c" into a curl list; false with err for an entry with too few ':' or odd bytes. */
static bool parse_list(const char *spec, int min_colons, const char *what, const char *format,
                       struct curl_slist **out, struct kv_err *err)
{
	const char *p = spec;

	*out = NULL;
	if (kv_empty(spec))
		return true;
	while (*p) {
		size_t n = strcspn(p, ",");
		const char *s = p, *e = p + n;
		int colons = 0;
		char *entry;
		struct curl_slist *l;

		p = *e ? e + 1 : e;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (s == e)
			continue;
		for (const char *q = s; q < e; q++) {
			unsigned char c = (unsigned char)*q;

			if (c <= 0x20 || c >= 0x7f) {
				kv_err_set(err, "%s: bad entry: expected %s, without spaces or control characters", what,
				           format);
				goto fail;
			}
			colons += *q == ':';
		}
		entry = kv_strndup(s, (size_t)(e - s));
		if (colons < min_colons) {
			kv_err_set(err, "%s: bad entry '%s': expected %s", what, entry, format);
			free(entry);
			goto fail;
		}
		l = curl_slist_append(*out, entry);
		free(entry);
		if (!l) {
			kv_err_set(err, "%s: out of memory", what);
			goto fail;
		}
		*out = l;
	}
	return true;
fail:
	curl_slist_free_all(*out);
	*out = NULL;
	return false;
}

/* The certificates of a PEM bundle as an X509_STORE, or NULL (libcurl is not built on OpenSSL, or none parsed). */
static X509_STORE *ca_store_from_pem(const char *pem, size_t len)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	X509_STORE *st;
	BIO *bio;
	X509 *x;
	int n = 0;

	if (!v || !v->ssl_version || strncmp(v->ssl_version, "OpenSSL/", 8) != 0 || len > INT_MAX)
		return NULL;
	st = X509_STORE_new();
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!st || !bio) {
		X509_STORE_free(st);
		BIO_free(bio);
		return NULL;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (X509_STORE_add_cert(st, x) == 1)
			n++;
		X509_free(x);
	}
	ERR_clear_error();
	BIO_free(bio);
	if (n == 0) {
		X509_STORE_free(st);
		return NULL;
	}
	return st;
}

/* CURLOPT_SSL_CTX_FUNCTION: the parsed trust store for a new connection (curl owns ctx; the store is shared). */
static CURLcode use_ca_store(CURL *curl, void *ctx, void *parm)
{
	X509_STORE *st = parm;

	(void)curl;
	if (X509_STORE_up_ref(st) != 1)
		return CURLE_SSL_CACERT_BADFILE;
	SSL_CTX_set_cert_store(ctx, st);   /* takes the reference */
	return CURLE_OK;
}

/*
 * The system bundle followed by the extra PEM file, for CURLOPT_CAINFO_BLOB:
 * libcurl takes one CA file, and kvaudit must trust both (a cloud file's
 * caBundle adds to the system's trust, it does not replace it).
 */
static bool build_ca_blob(struct http_client *h, const char *extra, struct kv_err *err)
{
	struct kv_buf b;
	char *sys = NULL, *pem = NULL, *curl_path = NULL;
	const char *sys_path;
	size_t sys_len = 0, pem_len = 0;
	struct kv_err ignored;
	bool ok = false;

	kv_buf_init(&b, 0);
	pem = kv_read_file(extra, CA_FILE_MAX, &pem_len, err);
	if (!pem) {
		kv_err_prefix(err, "CA bundle");
		goto out;
	}
	if (!strstr(pem, "-----BEGIN CERTIFICATE-----")) {
		kv_err_set(err, "CA bundle '%s' holds no PEM certificate", extra);
		goto out;
	}
	/* The bundle libcurl was built to use; CURLINFO_CAINFO is libcurl 7.84+. */
	if (curl_easy_getinfo(h->curl, CURLINFO_CAINFO, &curl_path) != CURLE_OK || kv_empty(curl_path))
		sys_path = SYSTEM_CA_FALLBACK;
	else
		sys_path = curl_path;
	sys = kv_read_file(sys_path, CA_FILE_MAX, &sys_len, &ignored);
	if (sys) {
		kv_buf_add(&b, sys, sys_len);
		kv_buf_addc(&b, '\n');
	}
	kv_buf_add(&b, pem, pem_len);
	kv_buf_addc(&b, '\n');
	h->ca_blob_len = b.len;
	h->ca_blob = kv_buf_detach(&b);
	h->ca_store = ca_store_from_pem(h->ca_blob, h->ca_blob_len);
	ok = true;
out:
	kv_buf_release(&b);
	free(sys);
	free(pem);
	return ok;
}

struct http_client *http_client_new(const struct http_opts *o, struct kv_err *err)
{
	static bool curl_ready;
	struct http_client *h = kv_calloc(1, sizeof(*h));

	if (o)
		h->o = *o;
	if (h->o.connect_timeout_ms <= 0)
		h->o.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
	if (h->o.timeout_ms <= 0)
		h->o.timeout_ms = DEFAULT_TIMEOUT_MS;
	if (h->o.max_body == 0)
		h->o.max_body = DEFAULT_MAX_BODY;
	if (h->o.max_retries == 0)
		h->o.max_retries = DEFAULT_MAX_RETRIES;
	else if (h->o.max_retries < 0)
		h->o.max_retries = 0;
	if (h->o.max_retry_after <= 0)
		h->o.max_retry_after = DEFAULT_MAX_RETRY_AFTER;
	/* Strings are consumed here; none is kept. */
	h->o.ca_bundle = NULL;
	h->o.resolve = NULL;
	h->o.connect_to = NULL;
	h->sleep_ms = real_sleep_ms;
	h->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)h;
	if (h->rng == 0)
		h->rng = 0x9E3779B97F4A7C15ULL;

	/* libcurl 7.84+ makes this thread-safe; calling it once is all kvaudit needs. */
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			kv_err_set(err, "cannot initialise libcurl");
			goto fail;
		}
		curl_ready = true;
	}
	h->curl = curl_easy_init();
	if (!h->curl) {
		kv_err_set(err, "cannot create a libcurl handle");
		goto fail;
	}
	if (o && !kv_empty(o->ca_bundle) && !build_ca_blob(h, o->ca_bundle, err))
		goto fail;
	if (o && !parse_list(o->resolve, 2, "resolve", "host:port:address", &h->resolve, err))
		goto fail;
	if (o && !parse_list(o->connect_to, 3, "connect-to", "host:port:connect-host:connect-port", &h->connect_to,
	                     err))
		goto fail;
	return h;
fail:
	http_client_free(h);
	return NULL;
}

void http_client_free(struct http_client *h)
{
	if (!h)
		return;
	if (h->curl)
		curl_easy_cleanup(h->curl);
	curl_slist_free_all(h->resolve);
	curl_slist_free_all(h->connect_to);
	free(h->ca_blob);
	X509_STORE_free(h->ca_store);
	free(h);
}

void http_set_sleep_hook(struct http_client *h, void (*sleep_ms)(long ms))
{
	if (h)
		h->sleep_ms = sleep_ms ? sleep_ms : real_sleep_ms;
}

void http_response_release(struct http_response *r)
{
	if (!r)
		return;
	kv_buf_release(&r->body);
	memset(r, 0, sizeof(*r));
	r->retry_after = -1;
	r->ratelimit_remaining = -1;
	r->user_quota_remaining = -1;
	r->user_quota_resets_ms = -1;
}

/* ---- libcurl callbacks ---- */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	struct http_response *r = ud;

	(void)size; /* always 1 */
	/* Returning less than given aborts the transfer with CURLE_WRITE_ERROR. */
	return kv_buf_add(&r->body, data, n) ? n : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
	struct http_response *r = ud;
	const char *colon, *v, *e;
	size_t name_len;
	char *value;

	(void)size; /* always 1 */

	/* A new response (after "100 Continue", say): only the last one counts. */
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		r->request_id[0] = '\0';
		r->retry_after = -1;
		r->ratelimit_remaining = -1;
		r->user_quota_remaining = -1;
		r->user_quota_resets_ms = -1;
		return n;
	}
	colon = memchr(data, ':', n);
	if (!colon)
		return n;
	name_len = (size_t)(colon - data);
	v = colon + 1;
	e = data + n;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
		e--;
	value = kv_strndup(v, (size_t)(e - v));
	if (name_len == 15 && kv_startswith_ci(data, "x-ms-request-id")) {
		size_t o = 0;

		/* Server text: keep visible ASCII only, it goes into messages. */
		for (const char *p = value; *p && o + 1 < sizeof(r->request_id); p++)
			if (*p > 0x20 && *p < 0x7f)
				r->request_id[o++] = *p;
		r->request_id[o] = '\0';
	} else if (name_len == 11 && kv_startswith_ci(data, "retry-after")) {
		int s;

		if (retry_after_parse(value, (long long)time(NULL), &s))
			r->retry_after = s;
	} else if (name_len > 25 && kv_startswith_ci(data, "x-ms-ratelimit-remaining-")) {
		int left = ratelimit_remaining(value);

		if (left >= 0 && (r->ratelimit_remaining < 0 || left < r->ratelimit_remaining))
			r->ratelimit_remaining = left;
	} else if (name_len == 25 && kv_startswith_ci(data, "x-ms-user-quota-remaining")) {
		char *end;
		long left = strtol(value, &end, 10);

		if (end != value && *end == '\0' && left >= 0 && left < 1000000)
			r->user_quota_remaining = (int)left;
	} else if (name_len == 14 && kv_startswith_ci(data, "content-length") && !r->body.data) {
		char *end;
		unsigned long long len = strtoull(value, &end, 10);

		/*
		 * The body's room at once, not by doubling from 64 bytes (a 200 KB page: 12 reallocs, twice
		 * its size copied, fresh pages faulted in each time); within max_body only, and a compressed
		 * length (decoded bodies are larger) just grows from there.
		 */
		if (end != value && *end == '\0' && len > 0 && (r->body.max == 0 || len <= r->body.max)) {
			r->body.data = kv_malloc((size_t)len + 1);
			r->body.data[0] = '\0';
			r->body.cap = (size_t)len + 1;
		}
	} else if (name_len == 28 && kv_startswith_ci(data, "x-ms-user-quota-resets-after")) {
		unsigned hh, mm, ss;
		char tail;

		/* hh:mm:ss (Resource Graph's throttling guidance). */
		if (sscanf(value, "%u:%u:%u%c", &hh, &mm, &ss, &tail) == 3 && hh < 24 && mm < 60 && ss < 60)
			r->user_quota_resets_ms = ((long)hh * 3600 + mm * 60 + ss) * 1000L;
	}
	free(value);
	return n;
}

/* ---- one request ---- */

/* The parts of the URL that messages may show: never the query (a $skiptoken) nor user info. */
struct target {
	char *shown;   /* scheme://host[:port]/path */
	char *host;    /* as curl parsed it, IPv6 with brackets */
	bool https;
};

static void target_release(struct target *t)
{
	free(t->shown);
	free(t->host);
	memset(t, 0, sizeof(*t));
}

static bool target_parse(const struct http_client *h, const char *url, struct target *t, struct kv_err *err)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *user = NULL, *pass = NULL;
	bool ok = false;
	char safe[160];
	size_t i;

	memset(t, 0, sizeof(*t));
	/* A placeholder for messages about URLs we will not even parse: printable, no query. */
	for (i = 0; url && url[i] && url[i] != '?' && url[i] != '#' && i + 4 < sizeof(safe); i++)
		safe[i] = (url[i] > 0x20 && url[i] < 0x7f) ? url[i] : '?';
	safe[i] = '\0';
	if (!url) {
		kv_err_set(err, "no URL given");
		return false;
	}
	for (const char *p = url; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c >= 0x7f) {
			kv_err_set(err, "bad URL '%s': it has a space, a control or a non-ASCII character", safe);
			return false;
		}
	}
	u = curl_url();
	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		kv_err_set(err, "bad URL '%s'", safe);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK) {
		kv_err_set(err, "refusing a URL with user info: '%s://%s%s'", scheme, host, path);
		goto out;
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0); /* NULL unless explicit */
	t->https = kv_streq_ci(scheme, "https");
	if (!t->https) {
		/* IMDS is 169.254.169.254; App Service's IDENTITY_ENDPOINT is localhost or 127.0.0.1. */
		bool imds = kv_streq_ci(scheme, "http") && h->o.allow_http_loopback_imds &&
		            (strcmp(host, "169.254.169.254") == 0 || strcmp(host, "127.0.0.1") == 0 ||
		             kv_streq_ci(host, "localhost"));

		if (!imds) {
			kv_err_set(err, "refusing '%s://%s%s': kvaudit speaks https only", scheme, host, path);
			goto out;
		}
	}
	t->host = kv_strdup(host);
	t->shown = port ? kv_asprintf("%s://%s:%s%s", scheme, host, port, path)
	                : kv_asprintf("%s://%s%s", scheme, host, path);
	ok = true;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(user);
	curl_free(pass);
	curl_url_cleanup(u);
	if (!ok)
		target_release(t);
	return ok;
}

static bool method_idempotent(const char *m)
{
	return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "PUT") == 0 ||
	       strcmp(m, "DELETE") == 0;
}

static bool method_known(const char *m)
{
	return method_idempotent(m) || strcmp(m, "POST") == 0 || strcmp(m, "PATCH") == 0;
}

/* Transport errors worth another attempt (the server or the path may recover). */
static bool transport_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_SSL_CONNECT_ERROR: /* also a reset during the TLS handshake */
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static bool tls_rejected(CURLcode rc)
{
	return rc == CURLE_PEER_FAILED_VERIFICATION;
}

static bool tls_problem(CURLcode rc)
{
	return rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_ISSUER_ERROR ||
	       rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH || rc == CURLE_SSL_INVALIDCERTSTATUS ||
	       rc == CURLE_SSL_CRL_BADFILE || rc == CURLE_SSL_ENGINE_INITFAILED || rc == CURLE_SSL_CIPHER;
}

static const char *status_phrase(long s)
{
	switch (s) {
	case 301: case 302: case 303: case 307: case 308: return "redirect, not followed";
	case 400: return "bad request";
	case 401: return "unauthorized";
	case 403: return "forbidden";
	case 404: return "not found";
	case 405: return "method not allowed";
	case 409: return "conflict";
	case 429: return "too many requests";
	case 500: return "internal server error";
	case 502: return "bad gateway";
	case 503: return "service unavailable";
	case 504: return "gateway timeout";
	default: return "unexpected status";
	}
}

static enum http_outcome outcome_of_status(long s)
{
	if (s >= 200 && s < 300)
		return HTTP_OK;
	if (s == 401)
		return HTTP_UNAUTHORIZED;
	if (s == 403)
		return HTTP_FORBIDDEN;
	if (s == 404)
		return HTTP_NOT_FOUND;
	if (s == 429)
		return HTTP_THROTTLED;
	if (s >= 500 && s < 600)
		return HTTP_TRANSIENT;
	return HTTP_FATAL; /* 1xx, 3xx (never followed), other 4xx */
}

/*
 * One request and its retry state, shared by http_request (one easy handle,
 * sleeping between attempts) and the multi engine (many handles, waiting
 * without sleeping), so the retry policy lives in one place.
 */
struct call {
	const char *method;          /* static strings or the caller's (http_request) / copied (multi) */
	char *method_copy, *url_copy, *body_copy, *key;
	const char *url, *body;
	size_t body_len;
	struct target t;
	struct curl_slist *hdrs;
	bool idempotent;
	struct http_response *resp;
	struct kv_err *err;
	enum http_outcome o;
	CURLcode rc;
	char detail[CURL_ERROR_SIZE + 64];
	char errbuf[CURL_ERROR_SIZE];
	long started;                /* ms, when the current attempt started */
};

#define SETOPT(opt, val)                                              \
	do {                                                          \
		if (rc == CURLE_OK)                                   \
			rc = curl_easy_setopt(easy, opt, val);        \
	} while (0)

/* Configures an easy handle from scratch for one attempt of c. */
static CURLcode configure(struct http_client *h, CURL *easy, struct call *c)
{
	CURLcode rc = CURLE_OK;
	struct curl_blob blob = {h->ca_blob, h->ca_blob_len, CURL_BLOB_NOCOPY};
	const char *method = c->method;

	curl_easy_reset(easy);
	c->errbuf[0] = '\0';
	SETOPT(CURLOPT_ERRORBUFFER, c->errbuf);
	SETOPT(CURLOPT_URL, c->url);
	/* https only; plain http only for the loopback/IMDS URLs target_parse let through. */
	SETOPT(CURLOPT_PROTOCOLS_STR, c->t.https ? "https" : "http");
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_MAXREDIRS, 0L);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	/* HTTP/2 when the server offers it in ALPN (ARM does): many requests share one connection. */
	if (c->t.https)
		SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	if (h->ca_store) {
		/* Nothing for curl to load itself: the store below holds the system's CAs and the extra ones. */
		SETOPT(CURLOPT_CAINFO, NULL);
		SETOPT(CURLOPT_CAPATH, NULL);
		SETOPT(CURLOPT_SSL_CTX_FUNCTION, use_ca_store);
		SETOPT(CURLOPT_SSL_CTX_DATA, h->ca_store);
	} else if (h->ca_blob) {
		SETOPT(CURLOPT_CAINFO_BLOB, &blob);
	}
	if (!c->t.https)
		SETOPT(CURLOPT_NOPROXY, "*"); /* IMDS is link-local: never through a proxy */
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, h->o.connect_timeout_ms);
	SETOPT(CURLOPT_TIMEOUT_MS, h->o.timeout_ms);
	SETOPT(CURLOPT_USERAGENT, "kvaudit/" KVAUDIT_VERSION);
	SETOPT(CURLOPT_ACCEPT_ENCODING, ""); /* decoded bytes count against max_body */
	SETOPT(CURLOPT_HTTPHEADER, c->hdrs);
	SETOPT(CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(CURLOPT_WRITEDATA, c->resp);
	SETOPT(CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(CURLOPT_HEADERDATA, c->resp);
	SETOPT(CURLOPT_PRIVATE, c);
	if (h->o.max_body < (size_t)INT64_MAX)
		SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->o.max_body);
	if (h->resolve)
		SETOPT(CURLOPT_RESOLVE, h->resolve);
	if (h->connect_to)
		SETOPT(CURLOPT_CONNECT_TO, h->connect_to);
	if (strcmp(method, "GET") == 0) {
		SETOPT(CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "HEAD") == 0) {
		SETOPT(CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "DELETE") == 0 && !c->body) {
		SETOPT(CURLOPT_CUSTOMREQUEST, method);
	} else {
		/* POST, PUT, PATCH (and DELETE with a body): always send a body, possibly empty. */
		SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(c->body ? c->body_len : 0));
		SETOPT(CURLOPT_POSTFIELDS, c->body ? c->body : "");
		if (strcmp(method, "POST") != 0)
			SETOPT(CURLOPT_CUSTOMREQUEST, method);
	}
	return rc;
}

/* The request headers: the caller's, then Authorization (never logged), and no "Expect: 100-continue". */
static bool build_headers(const char *bearer, const char *const *headers, struct curl_slist **out,
                          struct kv_err *err)
{
	struct curl_slist *l = NULL, *n;

	*out = NULL;
	for (size_t i = 0; headers && headers[i]; i++) {
		if (strpbrk(headers[i], "\r\n") || !strchr(headers[i], ':') ||
		    kv_startswith_ci(headers[i], "authorization:")) {
			kv_err_set(err, "bad request header #%zu", i + 1);
			goto fail;
		}
		if (!(n = curl_slist_append(l, headers[i])))
			goto oom;
		l = n;
	}
	if (!(n = curl_slist_append(l, "Expect:")))
		goto oom;
	l = n;
	if (bearer) {
		char *a;

		for (const char *p = bearer; *p; p++) {
			if (*p <= 0x20 || *p >= 0x7f) {
				kv_err_set(err, "the bearer token has a character that cannot go into a header");
				goto fail;
			}
		}
		a = kv_asprintf("Authorization: Bearer %s", bearer);
		n = curl_slist_append(l, a);
		wipe(a, strlen(a));
		free(a);
		if (!n)
			goto oom;
		l = n;
	}
	*out = l;
	return true;
oom:
	kv_err_set(err, "out of memory building request headers");
fail:
	curl_slist_free_all(l);
	return false;
}

/* Frees a header list, wiping each entry first: one of them holds the bearer token. */
static void free_headers(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p; p = p->next)
		if (p->data)
			wipe(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

/* Appends " after N attempts" to a message when there were retries. */
static void add_attempts(struct kv_buf *m, int attempts)
{
	if (attempts > 1)
		kv_buf_addf(m, " after %d attempts", attempts);
}

/*
 * Validates and prepares c (resp initialised); false when the request is
 * refused without being sent (c->o and err say why).
 */
static bool call_prepare(struct http_client *h, struct call *c, const char *method, const char *url,
                         const char *bearer, const char *const *headers, const char *body, size_t body_len,
                         struct http_response *resp, struct kv_err *err)
{
	memset(resp, 0, sizeof(*resp));
	resp->retry_after = -1;
	resp->ratelimit_remaining = -1;
	resp->user_quota_remaining = -1;
	resp->user_quota_resets_ms = -1;
	c->resp = resp;
	c->err = err;
	c->method = method;
	c->url = url;
	c->body = body;
	c->body_len = body_len;
	c->o = HTTP_FATAL;
	if (!h || !h->curl || kv_empty(method)) {
		kv_err_set(err, "http_request: no client or no method");
		return false;
	}
	kv_buf_init(&resp->body, h->o.max_body);
	if (!method_known(method)) {
		kv_err_set(err, "http_request: unsupported method '%.16s'", method);
		return false;
	}
	if (!target_parse(h, url, &c->t, err)) {
		kv_err_prefix(err, "%s", method);
		return false;
	}
	if (bearer && !c->t.https) {
		kv_err_set(err, "%s %s: refusing to send a bearer token over plain http", method, c->t.shown);
		return false;
	}
	if (!build_headers(bearer, headers, &c->hdrs, err)) {
		kv_err_prefix(err, "%s %s", method, c->t.shown);
		return false;
	}
	c->idempotent = method_idempotent(method);
	return true;
}

/* Resets the response for the next attempt. */
static void call_attempt_begin(struct http_client *h, struct call *c)
{
	struct http_response *r = c->resp;

	kv_buf_release(&r->body);
	kv_buf_init(&r->body, h->o.max_body);
	r->status = 0;
	r->request_id[0] = '\0';
	r->retry_after = -1;
	r->ratelimit_remaining = -1;
	r->user_quota_remaining = -1;
	r->user_quota_resets_ms = -1;
	r->attempts++;
	c->started = now_ms();
}

/*
 * Classifies an attempt that ended with rc on easy: sets c->o (and err for
 * failures that are final whatever happens), logs it, and returns whether
 * to retry, with the wait before the retry in *wait_ms.
 */
static bool call_attempt_end(struct http_client *h, struct call *c, CURL *easy, CURLcode rc, long *wait_ms)
{
	struct http_response *resp = c->resp;
	long took = now_ms() - c->started, status = 0, sent = 0;
	bool retry = false, has_ra;
	const char *method = c->method;

	*wait_ms = -1;
	c->rc = rc;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &sent);
	has_ra = resp->retry_after >= 0;

	if (rc == CURLE_OK) {
		resp->status = status;
		if (status == 429)
			resp->throttled++;
		c->o = outcome_of_status(status);
		if (status == 429 || status == 503)
			retry = c->idempotent || has_ra;
		else if (status == 500 || status == 502 || status == 504)
			retry = c->idempotent;
		if (retry && has_ra)
			*wait_ms = (long)(resp->retry_after < h->o.max_retry_after ? resp->retry_after : h->o.max_retry_after) *
			           1000L;
		snprintf(c->detail, sizeof(c->detail), "%ld", status);
	} else {
		const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);

		if (resp->body.overflow || rc == CURLE_FILESIZE_EXCEEDED) {
			resp->status = status;
			kv_err_set(c->err, "%s %s: response larger than %zu bytes", method, c->t.shown, h->o.max_body);
			c->o = HTTP_FATAL;
		} else if (tls_rejected(rc)) {
			kv_err_set(c->err,
			           "%s %s: TLS certificate of %s not trusted: %s; kvaudit never skips verification; "
			           "add the CA to the cloud file's caBundle",
			           method, c->t.shown, c->t.host, why);
			c->o = HTTP_FATAL;
		} else if (tls_problem(rc)) {
			kv_err_set(c->err, "%s %s: TLS connection to %s failed: %s", method, c->t.shown, c->t.host, why);
			c->o = HTTP_FATAL;
		} else if (transport_retryable(rc)) {
			c->o = HTTP_TRANSIENT;
			/* Nothing left the machine when the connection was never made. */
			retry = c->idempotent || rc == CURLE_COULDNT_CONNECT || sent == 0;
		} else {
			kv_err_set(c->err, "%s %s: %s", method, c->t.shown, why);
			c->o = HTTP_FATAL;
		}
		snprintf(c->detail, sizeof(c->detail), "%s", why);
		if (c->o == HTTP_TRANSIENT) {
			/* A cut-short body is not a response. */
			kv_buf_release(&resp->body);
			kv_buf_init(&resp->body, h->o.max_body);
			resp->request_id[0] = '\0';
		}
	}
	if (retry && resp->attempts > h->o.max_retries)
		retry = false;
	if (retry && *wait_ms < 0)
		*wait_ms = backoff_ms(h, resp->attempts);

	if (h->o.log) {
		char secs[32] = "", retry_text[96] = "";

		if (retry) {
			fmt_secs(*wait_ms, secs, sizeof(secs));
			snprintf(retry_text, sizeof(retry_text), ", retry %d/%d after %s", resp->attempts, h->o.max_retries,
			         secs);
		}
		log_line(h->o.log, "debug", resp->request_id[0] ? resp->request_id : NULL, "%s %s -> %s in %ld ms%s", method,
		         c->t.shown, c->detail, took, retry_text);
	}
	return retry;
}

/* The final message for a request that did not succeed (when the last attempt did not set one already). */
static void call_finish_error(struct call *c)
{
	struct http_response *resp = c->resp;
	struct kv_buf m;

	if (c->o == HTTP_OK)
		return;
	kv_buf_init(&m, 0);
	if (c->rc != CURLE_OK) {
		if (c->o == HTTP_TRANSIENT) {
			kv_buf_addf(&m, "%s %s: %s", c->method, c->t.shown, c->detail);
			add_attempts(&m, resp->attempts);
			kv_err_set(c->err, "%s", m.data ? m.data : "");
		}
	} else {
		struct azure_error ae;

		azure_error_parse(resp->body.data ? resp->body.data : "", resp->body.len, (int)resp->status, &ae);
		kv_buf_addf(&m, "%s %s: %ld", c->method, c->t.shown, resp->status);
		if (ae.code[0])
			kv_buf_addf(&m, " %s", ae.code);
		if (ae.message[0])
			kv_buf_addf(&m, ": %s", ae.message);
		else if (!ae.code[0])
			kv_buf_addf(&m, " %s", status_phrase(resp->status));
		if (resp->request_id[0])
			kv_buf_addf(&m, " (request %s)", resp->request_id);
		add_attempts(&m, resp->attempts);
		/* The buffer's cap truncates a long message; whatever fit is the message. */
		kv_err_set(c->err, "%s", m.data ? m.data : "");
	}
	kv_buf_release(&m);
}

static void call_release(struct call *c)
{
	free_headers(c->hdrs);
	c->hdrs = NULL;
	target_release(&c->t);
	free(c->method_copy);
	free(c->url_copy);
	free(c->body_copy);
	free(c->key);
	c->method_copy = c->url_copy = c->body_copy = c->key = NULL;
}

/* One request on the easy handle; read_only: a POST that only reads, retried as a GET is. */
static enum http_outcome request_once(struct http_client *h, const char *method, const char *url,
                                      const char *bearer, const char *const *headers, const char *body,
                                      size_t body_len, bool read_only, struct http_response *resp,
                                      struct kv_err *err)
{
	struct call c;
	CURLcode rc;
	enum http_outcome o;

	memset(&c, 0, sizeof(c));
	if (!call_prepare(h, &c, method, url, bearer, headers, body, body_len, resp, err)) {
		call_release(&c);
		return HTTP_FATAL;
	}
	if (read_only)
		c.idempotent = true;
	for (;;) {
		long wait_ms;

		call_attempt_begin(h, &c);
		rc = configure(h, h->curl, &c);
		if (rc != CURLE_OK) {
			kv_err_set(err, "%s %s: libcurl refused an option: %s", method, c.t.shown, curl_easy_strerror(rc));
			c.o = HTTP_FATAL;
			goto out;
		}
		rc = curl_easy_perform(h->curl);
		if (!call_attempt_end(h, &c, h->curl, rc, &wait_ms))
			break;
		h->sleep_ms(wait_ms);
	}
	call_finish_error(&c);
out:
	/* Drop the handle's pointers to this call's header list and body before they go. */
	curl_easy_reset(h->curl);
	o = c.o;
	call_release(&c);
	return o;
}

enum http_outcome http_request(struct http_client *h, const char *method, const char *url,
                               const char *bearer, const char *const *headers,
                               const char *body, size_t body_len,
                               struct http_response *resp, struct kv_err *err)
{
	return request_once(h, method, url, bearer, headers, body, body_len, false, resp, err);
}

enum http_outcome http_query(struct http_client *h, const char *url, const char *bearer,
                             const char *const *headers, const char *body, size_t body_len,
                             struct http_response *resp, struct kv_err *err)
{
	return request_once(h, "POST", url, bearer, headers, body, body_len, true, resp, err);
}

/* ---- many requests at once (libcurl's multi interface) ---- */

struct mcall {
	struct call c;          /* first: CURLOPT_PRIVATE points to it */
	struct sched_item q;    /* while waiting to start, in the scheduler's queues */
	void *ud;
	CURL *easy;             /* while in flight */
	bool refused;           /* never sent: call_prepare said no */
	struct mcall *next;     /* in the done queue */
};

static struct mcall *mcall_of(struct sched_item *it)
{
	return (struct mcall *)(void *)((char *)it - offsetof(struct mcall, q));
}

struct http_multi {
	struct http_client *h;
	CURLM *multi;
	struct sched *sched;
	int concurrency, active;
	struct mcall *done, *done_tail;         /* the requests waiting to start are in sched's queues */
	CURL **idle;                            /* easy handles to reuse */
	int nidle;
	int started;                            /* attempts started, for tests */
	int max_active;                         /* most transfers in flight at once */
};

struct http_multi *http_multi_new(struct http_client *h, int concurrency, struct kv_err *err)
{
	struct http_multi *m = kv_calloc(1, sizeof(*m));

	m->h = h;
	m->concurrency = concurrency > 0 ? concurrency : HTTP_DEFAULT_CONCURRENCY;
	m->multi = curl_multi_init();
	if (!m->multi) {
		kv_err_set(err, "cannot create a libcurl multi handle");
		free(m);
		return NULL;
	}
	/* Multiplex on HTTP/2; on HTTP/1.1 at most `concurrency` connections to one host. */
	curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)m->concurrency);
	curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)m->concurrency + 4);
	m->sched = sched_new();
	m->idle = kv_calloc((size_t)m->concurrency, sizeof(CURL *));
	return m;
}

static void queue_push(struct mcall **head, struct mcall **tail, struct mcall *x)
{
	x->next = NULL;
	if (*tail)
		(*tail)->next = x;
	else
		*head = x;
	*tail = x;
}

static bool multi_add(struct http_multi *m, const char *method, const char *url, const char *bearer,
                      const char *const *headers, const char *body, size_t body_len, const char *key,
                      struct http_response *resp, struct kv_err *err, void *ud, enum sched_lane lane, int prio)
{
	struct mcall *x = kv_calloc(1, sizeof(*x));

	x->ud = ud;
	x->c.method_copy = kv_strdup(method ? method : "");
	x->c.url_copy = url ? kv_strdup(url) : NULL;
	if (body) {
		x->c.body_copy = kv_calloc(1, body_len + 1);
		memcpy(x->c.body_copy, body, body_len);
	}
	x->c.key = key ? kv_strdup(key) : NULL;
	if (!call_prepare(m->h, &x->c, x->c.method_copy, x->c.url_copy, bearer, headers, x->c.body_copy, body_len,
	                  resp, err)) {
		x->refused = true;
		queue_push(&m->done, &m->done_tail, x);
		return false;
	}
	/* Only reads: a query is retried as a GET is (http_query). */
	if (lane == SCHED_FRONT)
		x->c.idempotent = true;
	sched_queue_prio(m->sched, x->c.key, &x->q, lane, prio);
	return true;
}

bool http_multi_add(struct http_multi *m, const char *method, const char *url, const char *bearer,
                    const char *const *headers, const char *body, size_t body_len, const char *key,
                    struct http_response *resp, struct kv_err *err, void *ud)
{
	return multi_add(m, method, url, bearer, headers, body, body_len, key, resp, err, ud, SCHED_LAST, 0);
}

bool http_multi_add_first(struct http_multi *m, const char *method, const char *url, const char *bearer,
                          const char *const *headers, const char *body, size_t body_len, const char *key,
                          struct http_response *resp, struct kv_err *err, void *ud)
{
	return multi_add(m, method, url, bearer, headers, body, body_len, key, resp, err, ud, SCHED_FIRST, 0);
}

bool http_multi_add_prio(struct http_multi *m, const char *method, const char *url, const char *bearer,
                         const char *const *headers, const char *body, size_t body_len, const char *key,
                         struct http_response *resp, struct kv_err *err, void *ud, int prio)
{
	return multi_add(m, method, url, bearer, headers, body, body_len, key, resp, err, ud, SCHED_FIRST, prio);
}

bool http_multi_add_query(struct http_multi *m, const char *url, const char *bearer, const char *const *headers,
                          const char *body, size_t body_len, const char *key, struct http_response *resp,
                          struct kv_err *err, void *ud)
{
	/*
	 * Ahead of everything else: each page of a query waits for the one before, and what the
	 * engine reads next waits for the query (collect_graph.c), so they are few and in the way.
	 */
	bool ok = multi_add(m, "POST", url, bearer, headers, body, body_len, key, resp, err, ud, SCHED_FRONT, 0);

	/* Metered by the caller's query quota (sched.h). */
	if (ok)
		sched_expect_quota(m->sched, key);
	return ok;
}

/*
 * Starts what may start now, in sched_next's order; returns the earliest time
 * something queued could start, or -1 (nothing queued, or no room: a
 * finished transfer wakes the loop).
 */
static long start_ready(struct http_multi *m, long now)
{
	struct sched_item *it;

	while (m->active < m->concurrency && (it = sched_next(m->sched, now)) != NULL) {
		struct mcall *x = mcall_of(it);
		CURL *easy;
		CURLcode rc;

		easy = m->nidle > 0 ? m->idle[--m->nidle] : curl_easy_init();
		call_attempt_begin(m->h, &x->c);
		rc = easy ? configure(m->h, easy, &x->c) : CURLE_OUT_OF_MEMORY;
		/* Rather wait for a connection that may multiplex (HTTP/2) than open one more. */
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
		if (rc == CURLE_OK && curl_multi_add_handle(m->multi, easy) != CURLM_OK)
			rc = CURLE_FAILED_INIT;
		if (rc != CURLE_OK) {
			kv_err_set(x->c.err, "%s %s: libcurl refused an option: %s", x->c.method, x->c.t.shown,
			           curl_easy_strerror(rc));
			x->c.o = HTTP_FATAL;
			if (easy)
				curl_easy_cleanup(easy);
			queue_push(&m->done, &m->done_tail, x);
			continue;
		}
		x->easy = easy;
		m->active++;
		m->started++;
		if (m->active > m->max_active)
			m->max_active = m->active;
		sched_on_start(m->sched, x->c.key, now);
	}
	return m->active < m->concurrency ? sched_wake(m->sched, now) : -1;
}

/* Handles finished transfers: retries go back to the queues (after their wait), the rest to done. */
static void reap(struct http_multi *m)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
		struct mcall *x = NULL;
		CURL *easy = msg->easy_handle;
		long wait_ms, now;
		bool retry;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
		retry = call_attempt_end(m->h, &x->c, easy, msg->data.result, &wait_ms);
		now = now_ms();
		sched_on_response(m->sched, x->c.key, now, x->c.rc == CURLE_OK ? x->c.resp->status : 0,
		                  x->c.resp->ratelimit_remaining, retry ? wait_ms : -1);
		/* Resource Graph's user quota: its key holds back before the service says 429. */
		sched_on_quota(m->sched, x->c.key, now, x->c.resp->user_quota_remaining, x->c.resp->user_quota_resets_ms);
		curl_multi_remove_handle(m->multi, easy);
		curl_easy_reset(easy);   /* drops its pointers to this call's headers and body */
		if (m->nidle < m->concurrency)
			m->idle[m->nidle++] = easy;
		else
			curl_easy_cleanup(easy);
		x->easy = NULL;
		m->active--;
		if (retry) {
			/* Back in front of the queue: it was asked for first. */
			sched_retry(m->sched, &x->q, now + wait_ms);
		} else {
			call_finish_error(&x->c);
			queue_push(&m->done, &m->done_tail, x);
		}
	}
}

bool http_multi_next(struct http_multi *m, void **ud, enum http_outcome *o)
{
	for (;;) {
		long now, wake;
		int running = 0;

		if (m->done) {
			struct mcall *x = m->done;

			m->done = x->next;
			if (!m->done)
				m->done_tail = NULL;
			*ud = x->ud;
			*o = x->c.o;
			call_release(&x->c);
			free(x);
			return true;
		}
		if (sched_queued(m->sched) == 0 && m->active == 0)
			return false;
		now = now_ms();
		wake = start_ready(m, now);
		curl_multi_perform(m->multi, &running);
		reap(m);
		if (m->done)
			continue;
		{
			long timeout = 1000;

			if (wake >= 0) {
				timeout = wake - now_ms();
				if (timeout < 0)
					timeout = 0;
				if (timeout > 1000)
					timeout = 1000;
			}
			/* Waits for a transfer or, with none in flight, for the next retry's time. */
			curl_multi_poll(m->multi, NULL, 0, (int)timeout, NULL);
		}
	}
}

void http_multi_stats(const struct http_multi *m, int *started, int *max_active)
{
	if (started)
		*started = m ? m->started : 0;
	if (max_active)
		*max_active = m ? m->max_active : 0;
}

void http_multi_free(struct http_multi *m)
{
	struct mcall *x;
	struct sched_item *it;

	if (!m)
		return;
	/* Normally empty: every request was taken with http_multi_next. */
	while ((it = sched_drain(m->sched)) != NULL) {
		x = mcall_of(it);
		call_release(&x->c);
		free(x);
	}
	while ((x = m->done) != NULL) {
		m->done = x->next;
		call_release(&x->c);
		free(x);
	}
	for (int i = 0; i < m->nidle; i++)
		curl_easy_cleanup(m->idle[i]);
	free(m->idle);
	curl_multi_cleanup(m->multi);
	sched_free(m->sched);
	free(m);
}
