/* cloud.c - see cloud.h. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "audit/azure/cloud.h"
#include "audit/util/json.h"

/* A cloud file is a few hundred bytes; anything near this is not one. */
#define CLOUD_FILE_MAX (1024 * 1024)
#define CA_BUNDLE_MAX (16 * 1024 * 1024)
/* What --cloud (and a config file's "cloud") accepts, for the messages: builtins[] and a file. */
#define CLOUD_ACCEPTS "expected AzureCloud, AzureUSGovernment, AzureChinaCloud or the path of a cloud JSON file " \
	"(as `az cloud show` prints it)"

struct builtin_cloud {
	const char *name, *arm, *login, *arm_audience, *graph, *keyvault_suffix, *backup_app_id;
};

/* AZURE-FACTS g (az cloud show, azure-powershell PSAzureEnvironment) and c1 for the Backup appIds. */
static const struct builtin_cloud builtins[] = {
	{"AzureCloud", "https://management.azure.com", "https://login.microsoftonline.com",
	 "https://management.core.windows.net/", "https://graph.microsoft.com", "vault.azure.net",
	 "262044b1-e2ce-469f-a196-69ab7ada62d3"},
	{"AzureUSGovernment", "https://management.usgovcloudapi.net", "https://login.microsoftonline.us",
	 "https://management.core.usgovcloudapi.net/", "https://graph.microsoft.us", "vault.usgovcloudapi.net",
	 "ff281ffe-705c-4f53-9f37-a40e6f2c68f3"},
	/* XXX the Backup Management Service appId in 21Vianet is not documented anywhere we trust. */
	{"AzureChinaCloud", "https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn",
	 "https://management.core.chinacloudapi.cn/", "https://microsoftgraph.chinacloudapi.cn", "vault.azure.cn",
	 NULL},
};

/* ---- URL splitting, shared by validation and classification ---- */

struct url_parts {
	bool https;          /* the scheme, compared case-insensitively */
	char scheme[8];
	char host[256];      /* lower-cased; an IPv6 literal keeps its brackets */
	int port;            /* explicit, or the scheme's default */
	const char *path;    /* from the first '/' up to '?', '#' or the end; may be empty */
	size_t path_len;
	bool has_query, has_fragment;
};

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* One DNS label: letters, digits and '-', 1 to 63 of them, not starting or ending with '-'. */
static bool dns_label_ok(const char *s, size_t n)
{
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

/* A host name of dot-separated labels (IPv4 addresses pass too); no empty label, no trailing dot. */
static bool dns_name_ok(const char *s, size_t n)
{
	size_t start = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!dns_label_ok(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

/*
 * Splits an absolute http(s) URL.  Returns false for anything we would not
 * send a request to as written: whitespace, control characters, non-ASCII
 * bytes or a backslash anywhere (parsers disagree on what they mean), user
 * info ('@' in the authority), an empty or malformed host, a port that is
 * not 1-65535, a scheme other than http or https.
 */
static bool url_split(const char *url, struct url_parts *u)
{
	const char *p, *auth, *auth_end, *host_end;
	size_t hl;

	memset(u, 0, sizeof(*u));
	if (!url)
		return false;
	for (p = url; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c >= 0x7f || c == '\\')
			return false;
	}
	if (kv_startswith_ci(url, "https://")) {
		u->https = true;
		u->port = 443;
		auth = url + 8;
		memcpy(u->scheme, "https", 6);
	} else if (kv_startswith_ci(url, "http://")) {
		u->port = 80;
		auth = url + 7;
		memcpy(u->scheme, "http", 5);
	} else {
		return false;
	}
	auth_end = auth + strcspn(auth, "/?#");
	if (memchr(auth, '@', (size_t)(auth_end - auth)))
		return false;
	if (*auth == '[') {
		const char *close = memchr(auth, ']', (size_t)(auth_end - auth));

		if (!close || close == auth + 1)
			return false;
		for (p = auth + 1; p < close; p++)
			if (!is_hex(*p) && *p != ':' && *p != '.')
				return false;
		host_end = close + 1;
	} else {
		host_end = memchr(auth, ':', (size_t)(auth_end - auth));
		if (!host_end)
			host_end = auth_end;
		if (!dns_name_ok(auth, (size_t)(host_end - auth)))
			return false;
	}
	hl = (size_t)(host_end - auth);
	if (hl == 0 || hl >= sizeof(u->host))
		return false;
	memcpy(u->host, auth, hl);
	u->host[hl] = '\0';
	kv_lower(u->host);
	if (host_end < auth_end) {
		long port = 0;

		if (*host_end != ':' || host_end + 1 == auth_end || auth_end - host_end > 6)
			return false;
		for (p = host_end + 1; p < auth_end; p++) {
			if (*p < '0' || *p > '9')
				return false;
			port = port * 10 + (*p - '0');
		}
		if (port < 1 || port > 65535)
			return false;
		u->port = (int)port;
	}
	u->path = auth_end;
	u->path_len = strcspn(auth_end, "?#");
	u->has_query = strchr(auth_end, '?') != NULL;
	u->has_fragment = strchr(auth_end, '#') != NULL;
	return true;
}

/*
 * True when a path has a "." or ".." segment (also percent-encoded) or an
 * encoded '/' or '\': curl and servers would resolve those, so the path that
 * arrives is not the one that was compared with an endpoint's prefix.
 */
static bool path_is_tricky(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t dots = 0, other = 0;

		while (i < n && p[i] == '/')
			i++;
		while (i < n && p[i] != '/') {
			if (p[i] == '.') {
				dots++;
				i++;
			} else if (p[i] == '%') {
				char a = i + 1 < n ? p[i + 1] : '\0', b = i + 2 < n ? p[i + 2] : '\0';

				/* A '%' that is not an escape would make the skip below hide what follows. */
				if (!isxdigit((unsigned char)a) || !isxdigit((unsigned char)b))
					return true;
				if (a == '2' && (b == 'e' || b == 'E'))
					dots++;
				else if ((a == '2' && (b == 'f' || b == 'F')) || (a == '5' && (b == 'c' || b == 'C')))
					return true;
				else
					other++;
				i += 3;
			} else {
				other++;
				i++;
			}
		}
		if (other == 0 && (dots == 1 || dots == 2))
			return true;
	}
	return false;
}

/* ---- loading ---- */

/* s as a double-quoted string for a message, control and non-ASCII bytes as '?', cut at ~200. */
static void quote_for_message(const char *s, char *out, size_t n)
{
	size_t o = 0;

	if (n < 8)
		return;
	out[o++] = '"';
	for (size_t i = 0; s[i] && o + 5 < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i >= 200) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		out[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (c == '"' ? '\'' : (char)c);
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* Copies a URL without its trailing '/' characters. */
static char *strip_slash(const char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '/')
		n--;
	return kv_strndup(s, n);
}

/* The string at obj[key], NULL when absent; false with err when present but not a string. */
static bool get_string(const char *file, const cJSON *obj, const char *key, const char *path, bool required,
                       const char **out, struct kv_err *err)
{
	const cJSON *j = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;

	*out = NULL;
	if (!j || cJSON_IsNull(j)) {
		if (required) {
			kv_err_set(err, "%s: %s: missing: expected a string", file, path);
			return false;
		}
		return true;
	}
	if (!cJSON_IsString(j) || !j->valuestring) {
		kv_err_set(err, "%s: %s: expected a string, got %s", file, path, json_type_name(j));
		return false;
	}
	if (required && j->valuestring[0] == '\0') {
		kv_err_set(err, "%s: %s: expected a non-empty string", file, path);
		return false;
	}
	*out = j->valuestring;
	return true;
}

/* An endpoint must be https, without user info, query or fragment. */
static bool endpoint_ok(const char *file, const char *path, const char *url, struct kv_err *err)
{
	struct url_parts u;
	char q[256];

	quote_for_message(url, q, sizeof(q));
	if (!kv_startswith_ci(url, "https://")) {
		kv_err_set(err, "%s: %s: expected an https URL, got %s", file, path, q);
		return false;
	}
	if (!url_split(url, &u) || u.has_query || u.has_fragment || path_is_tricky(u.path, u.path_len)) {
		kv_err_set(err, "%s: %s: expected an https URL without user info, query or fragment, got %s", file,
		           path, q);
		return false;
	}
	return true;
}

/* A GUID as Graph and Entra ID print it: 8-4-4-4-12 hex digits. */
static bool guid_ok(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !is_hex(s[i]))
			return false;
	}
	return true;
}

/* The directory part of path with a trailing '/', or "" when it has none. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? kv_strndup(path, (size_t)(slash - path) + 1) : kv_strdup("");
}

static bool load_file(const char *file, struct cloud *c, struct kv_err *err)
{
	char *data = NULL, *dir = NULL;
	cJSON *doc = NULL;
	const cJSON *ep, *sx;
	const char *end = NULL, *name, *arm, *login, *aud, *graph, *kvs, *ca, *app;
	size_t len = 0;
	bool ok = false;
	char q[256];

	data = kv_read_file(file, CLOUD_FILE_MAX, &len, err);
	if (!data)
		goto out;
	doc = cJSON_ParseWithLengthOpts(data, len, &end, false);
	if (!doc) {
		size_t off = end && end >= data ? (size_t)(end - data) : 0;

		kv_err_set(err, "%s: invalid JSON at byte %zu of %zu", file, off > len ? len : off, len);
		goto out;
	}
	if (!cJSON_IsObject(doc)) {
		kv_err_set(err, "%s: $: expected an object as `az cloud show` prints it, got %s", file,
		           json_type_name(doc));
		goto out;
	}
	ep = cJSON_GetObjectItemCaseSensitive(doc, "endpoints");
	sx = cJSON_GetObjectItemCaseSensitive(doc, "suffixes");
	if (!cJSON_IsObject(ep)) {
		kv_err_set(err, "%s: $.endpoints: expected an object, got %s", file, json_type_name(ep));
		goto out;
	}
	if (!cJSON_IsObject(sx)) {
		kv_err_set(err, "%s: $.suffixes: expected an object, got %s", file, json_type_name(sx));
		goto out;
	}
	if (!get_string(file, doc, "name", "$.name", false, &name, err) ||
	    !get_string(file, ep, "resourceManager", "$.endpoints.resourceManager", true, &arm, err) ||
	    !get_string(file, ep, "activeDirectory", "$.endpoints.activeDirectory", true, &login, err) ||
	    !get_string(file, ep, "activeDirectoryResourceId", "$.endpoints.activeDirectoryResourceId", true,
	                &aud, err) ||
	    !get_string(file, ep, "microsoftGraphResourceId", "$.endpoints.microsoftGraphResourceId", true,
	                &graph, err) ||
	    !get_string(file, sx, "keyvaultDns", "$.suffixes.keyvaultDns", true, &kvs, err) ||
	    !get_string(file, doc, "caBundle", "$.caBundle", false, &ca, err) ||
	    !get_string(file, doc, "backupAppId", "$.backupAppId", false, &app, err))
		goto out;
	if (!endpoint_ok(file, "$.endpoints.resourceManager", arm, err) ||
	    !endpoint_ok(file, "$.endpoints.activeDirectory", login, err) ||
	    !endpoint_ok(file, "$.endpoints.activeDirectoryResourceId", aud, err) ||
	    !endpoint_ok(file, "$.endpoints.microsoftGraphResourceId", graph, err))
		goto out;
	/* az writes ".vault.azure.net". */
	if (*kvs == '.')
		kvs++;
	if (!dns_name_ok(kvs, strlen(kvs))) {
		quote_for_message(kvs, q, sizeof(q));
		kv_err_set(err, "%s: $.suffixes.keyvaultDns: expected a DNS suffix such as \".vault.azure.net\", got %s",
		           file, q);
		goto out;
	}
	if (app && !guid_ok(app)) {
		quote_for_message(app, q, sizeof(q));
		kv_err_set(err, "%s: $.backupAppId: expected an application ID (a GUID), got %s", file, q);
		goto out;
	}
	c->name = kv_strdup(kv_empty(name) ? file : name);
	c->arm = strip_slash(arm);
	c->login = strip_slash(login);
	c->arm_audience = kv_strdup(aud);
	c->graph = strip_slash(graph);
	c->keyvault_suffix = kv_lower(kv_strdup(kvs));
	c->backup_app_id = kv_strdup(app);
	/* `az cloud show` of a built-in cloud has no appId of ours: its name says which. */
	for (size_t i = 0; !app && name && i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (kv_streq_ci(builtins[i].name, name))
			c->backup_app_id = kv_strdup(builtins[i].backup_app_id);
	if (!kv_empty(ca)) {
		char *pem;
		struct kv_err e2;

		dir = dir_of(file);
		c->ca_bundle = ca[0] == '/' ? kv_strdup(ca) : kv_asprintf("%s%s", dir, ca);
		pem = kv_read_file(c->ca_bundle, CA_BUNDLE_MAX, NULL, &e2);
		if (!pem) {
			kv_err_set(err, "%s: $.caBundle: %s", file, e2.msg);
			goto out;
		}
		if (!strstr(pem, "-----BEGIN CERTIFICATE-----")) {
			kv_err_set(err, "%s: $.caBundle: '%s' holds no PEM certificate", file, c->ca_bundle);
			free(pem);
			goto out;
		}
		free(pem);
	}
	ok = true;
out:
	free(data);
	free(dir);
	cJSON_Delete(doc);
	return ok;
}

bool cloud_load(const char *name_or_file, struct cloud *out, struct kv_err *err)
{
	memset(out, 0, sizeof(*out));
	struct stat st;
	char q[256];

	if (kv_empty(name_or_file)) {
		kv_err_set(err, "no cloud given: " CLOUD_ACCEPTS);
		return false;
	}
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
		const struct builtin_cloud *b = &builtins[i];

		if (!kv_streq_ci(name_or_file, b->name))
			continue;
		out->name = kv_strdup(b->name);
		out->arm = kv_strdup(b->arm);
		out->login = kv_strdup(b->login);
		out->arm_audience = kv_strdup(b->arm_audience);
		out->graph = kv_strdup(b->graph);
		out->keyvault_suffix = kv_strdup(b->keyvault_suffix);
		out->backup_app_id = kv_strdup(b->backup_app_id);
		return true;
	}
	/* A mistyped name is no file either: "cannot open" alone would not say what was wanted. */
	if (!strchr(name_or_file, '/') && stat(name_or_file, &st) != 0 && errno == ENOENT) {
		quote_for_message(name_or_file, q, sizeof(q));
		kv_err_set(err, "unknown cloud %s: %s", q, CLOUD_ACCEPTS);
		return false;
	}
	if (!load_file(name_or_file, out, err)) {
		cloud_release(out);
		return false;
	}
	return true;
}

void cloud_release(struct cloud *c)
{
	if (!c)
		return;
	free(c->name);
	free(c->arm);
	free(c->login);
	free(c->arm_audience);
	free(c->graph);
	free(c->keyvault_suffix);
	free(c->ca_bundle);
	free(c->backup_app_id);
	memset(c, 0, sizeof(*c));
}

/* ---- classification ---- */

/*
 * How well url matches endpoint: -1 when it does not (scheme, host, port or
 * path prefix differ), else the length of the endpoint's path prefix, so
 * that the most specific of several endpoints on one host wins.
 */
static long endpoint_match(const char *endpoint, const struct url_parts *u)
{
	struct url_parts e;
	size_t pl;

	if (!endpoint || !url_split(endpoint, &e) || !e.https)
		return -1;
	if (strcmp(e.host, u->host) != 0 || e.port != u->port)
		return -1;
	pl = e.path_len;
	while (pl > 0 && e.path[pl - 1] == '/')
		pl--;
	if (pl == 0)
		return 0;
	/* Paths are case-sensitive; the prefix must end at a segment boundary. */
	if (u->path_len < pl || memcmp(u->path, e.path, pl) != 0)
		return -1;
	if (u->path_len > pl && u->path[pl] != '/')
		return -1;
	return (long)pl;
}

enum cloud_target cloud_classify(const struct cloud *c, const char *url)
{
	struct url_parts u;
	enum cloud_target best = TARGET_NONE;
	long best_len = -1;
	const struct {
		const char *endpoint;
		enum cloud_target t;
	} eps[] = {
		{c ? c->arm : NULL, TARGET_ARM},
		{c ? c->graph : NULL, TARGET_GRAPH},
		{c ? c->login : NULL, TARGET_LOGIN},
	};

	if (!c || !url_split(url, &u) || !u.https || path_is_tricky(u.path, u.path_len))
		return TARGET_NONE;
	for (size_t i = 0; i < sizeof(eps) / sizeof(eps[0]); i++) {
		long m = endpoint_match(eps[i].endpoint, &u);

		if (m > best_len) {
			best_len = m;
			best = eps[i].t;
		}
	}
	if (best != TARGET_NONE)
		return best;
	/* Key Vault: exactly one label in front of the suffix, on the default port. */
	if (!kv_empty(c->keyvault_suffix) && u.port == 443 && u.host[0] != '[') {
		size_t hl = strlen(u.host), sl = strlen(c->keyvault_suffix);

		if (hl > sl + 1 && u.host[hl - sl - 1] == '.' && kv_streq_ci(u.host + hl - sl, c->keyvault_suffix) &&
		    memchr(u.host, '.', hl - sl - 1) == NULL && dns_label_ok(u.host, hl - sl - 1))
			return TARGET_KEYVAULT;
	}
	return TARGET_NONE;
}

char *cloud_scope(const struct cloud *c, enum cloud_target t)
{
	char *base, *s;

	if (!c)
		return NULL;
	switch (t) {
	case TARGET_ARM:
		if (kv_empty(c->arm_audience))
			return NULL;
		base = strip_slash(c->arm_audience);
		break;
	case TARGET_GRAPH:
		if (kv_empty(c->graph))
			return NULL;
		base = strip_slash(c->graph);
		break;
	case TARGET_KEYVAULT:
		/* https://vault.azure.net/.default: the suffix itself is the audience's host (AZURE-FACTS g). */
		if (kv_empty(c->keyvault_suffix))
			return NULL;
		base = kv_asprintf("https://%s", c->keyvault_suffix);
		break;
	default:
		return NULL;
	}
	s = kv_asprintf("%s/.default", base);
	free(base);
	return s;
}
