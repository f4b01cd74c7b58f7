/*
 * config.c - `--config FILE` (or $KVAUDIT_CONFIG): the options of a
 * scheduled scan kept in a file, so a cron line, a systemd unit and a CI job
 * share one source of truth.  Command-line flags win over the file.
 *
 * { "kind": "kvaudit.config", "version": 1,
 *   "subscriptions": ["<guid>", …], "cloud": "AzureCloud|FILE", "auth": "auto|env|msi|cli",
 *   "dataPlane": false, "formats": "json,csv" | ["json","csv"], "out": "DIR/", "failOn": "low",
 *   "includePass": false, "includeSkipped": false, "suppressions": "FILE", "baseline": "FILE", "rules": ["DIR", …],
 *   "since": "7d", "engine": "graph|arm", "concurrency": 16, "expiryWarning": "30d" }
 * Relative paths are relative to the file's directory.  Unknown keys are
 * errors (a typo must not silently change a compliance scan).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/azure/auth.h"
#include "audit/azure/cloud.h"
#include "audit/azure/collect.h"
#include "audit/cli/cli.h"
#include "audit/cli/cli_internal.h"
#include "audit/util/json.h"

#define CONFIG_MAX_BYTES (1u << 20)

const char CONFIG_USAGE[] =
	"usage: kvaudit config check FILE\n"
	"\n"
	"Validate a kvaudit configuration file (docs/config.md). audit, scan, collect, fix and\n"
	"rollback read one with --config FILE or $KVAUDIT_CONFIG; options given on the command line win.\n"
	"\n"
	"exit codes: 0 valid, 2 unreadable or invalid (one line naming the file and the setting)\n";

static const char *const KEYS[] = {"kind", "version", "subscriptions", "cloud", "auth", "dataPlane", "formats",
                                   "out", "failOn", "includePass", "includeSkipped", "suppressions", "baseline",
                                   "rules", "since", "engine", "concurrency", "expiryWarning", NULL};

void cli_config_release(struct cli_config *c)
{
	for (size_t i = 0; i < c->nowned; i++)
		free(c->owned[i]);
	free(c->owned);
	free(c->subscriptions.v);
	free(c->rules.v);
	cJSON_Delete(c->doc);
	memset(c, 0, sizeof(*c));
}

/* Keeps s alive as long as the config (the option code borrows strings). */
static const char *keep(struct cli_config *c, char *s)
{
	c->owned = kv_realloc(c->owned, (c->nowned + 1) * sizeof(*c->owned));
	c->owned[c->nowned++] = s;
	return s;
}

static const char *path_in(struct cli_config *c, const char *dir, const char *p)
{
	return keep(c, p[0] == '/' || !dir[0] ? kv_strdup(p) : kv_asprintf("%s/%s", dir, p));
}

static bool get_str(const cJSON *doc, const char *k, const char *file, const char **out, struct kv_err *err)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(doc, k);

	if (!j)
		return true;
	if (!cJSON_IsString(j) || !j->valuestring[0]) {
		kv_err_set(err, "%s: $.%s: expected a non-empty string, got %s", file, k,
		           cJSON_IsString(j) ? "an empty one" : json_type_name(j));
		return false;
	}
	*out = j->valuestring;
	return true;
}

static bool get_bool(const cJSON *doc, const char *k, const char *file, int *out, struct kv_err *err)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(doc, k);

	if (!j)
		return true;
	if (!cJSON_IsBool(j)) {
		kv_err_set(err, "%s: $.%s: expected true or false, got %s", file, k, json_type_name(j));
		return false;
	}
	*out = cJSON_IsTrue(j) ? 1 : 0;
	return true;
}

static bool get_list(struct cli_config *c, const cJSON *doc, const char *k, const char *file, const char *dir,
                     struct strlist *out, struct kv_err *err)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(doc, k), *it;
	int i = 0;

	if (!j)
		return true;
	if (!cJSON_IsArray(j)) {
		kv_err_set(err, "%s: $.%s: expected an array of strings, got %s", file, k,
		           json_type_name(j));
		return false;
	}
	cJSON_ArrayForEach(it, j) {
		if (!cJSON_IsString(it) || !it->valuestring[0]) {
			kv_err_set(err, "%s: $.%s[%d]: expected a non-empty string, got %s", file, k, i,
			           json_type_name(it));
			return false;
		}
		strlist_add(out, dir ? path_in(c, dir, it->valuestring) : it->valuestring);
		i++;
	}
	return true;
}

/* A duration setting (NULL: absent) read by its flag's parser; false with err saying what it expects. */
static bool check_duration(const char *file, const char *key, const char *value,
                           bool (*parse)(const char *s, long long *seconds), const char *expected, struct kv_err *err)
{
	long long secs;

	if (!value || parse(value, &secs))
		return true;
	kv_err_set(err, "%s: $.%s: expected %s", file, key, expected);
	return false;
}

/* "concurrency": a whole number 1-256, kept as the text --concurrency would have given. */
static bool get_concurrency(struct cli_config *c, const cJSON *doc, const char *file, struct kv_err *err)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(doc, "concurrency");
	double n;

	if (!j)
		return true;
	n = cJSON_GetNumberValue(j);
	if (!cJSON_IsNumber(j) || !(n >= 1 && n <= HTTP_MAX_CONCURRENCY) || n != (double)(int)n) {
		kv_err_set(err, "%s: $.concurrency: expected a number from 1 to %d", file,
		           HTTP_MAX_CONCURRENCY);
		return false;
	}
	c->concurrency = keep(c, kv_asprintf("%d", (int)n));
	return true;
}

/*
 * The file's text, or NULL with err saying what is wrong in the words every
 * message here uses ("config file 'F': cannot open: <why>"), not the
 * generic "cannot open 'F'" that does not say which of a command's files
 * it was.
 */
static char *read_config(const char *path, const char *what, size_t *len, struct kv_err *err)
{
	struct stat st;
	char *text = NULL;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		kv_err_set(err, "%s: cannot open: %s", what, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		kv_err_set(err, "%s: cannot read: %s", what, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		kv_err_set(err, "%s: %s, not a file", what, S_ISDIR(st.st_mode) ? "a directory" :
		           "a device, pipe or socket");
	} else if ((unsigned long long)st.st_size > CONFIG_MAX_BYTES) {
		kv_err_set(err, "%s: too large (%lld bytes, at most %u)", what, (long long)st.st_size,
		           CONFIG_MAX_BYTES);
	} else {
		text = kv_malloc((size_t)st.st_size + 1);
		while (n < (size_t)st.st_size) {
			ssize_t got = read(fd, text + n, (size_t)st.st_size - n);

			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				kv_err_set(err, "%s: cannot read: %s", what, got < 0 ? strerror(errno) :
				           "it shrank while being read");
				free(text);
				text = NULL;
				break;
			}
			n += (size_t)got;
		}
	}
	close(fd);
	if (text) {
		text[n] = '\0';
		*len = n;
	}
	return text;
}

/*
 * The cloud is read here as --cloud's is before any work (cli_scope_check), so
 * that a bad name or file is named with the config file it came from.
 */
static bool check_cloud(const char *what, const char *name_or_file, struct kv_err *err)
{
	struct cloud cloud;
	struct kv_err why = {{0}};

	if (!cloud_load(name_or_file, &cloud, &why)) {
		kv_err_set(err, "%s: $.cloud: %s", what, why.msg);
		return false;
	}
	cloud_release(&cloud);
	return true;
}

/* what: "config file 'F'", and where its name came from; every message starts with it. */
static bool load(const char *path, const char *what, struct cli_config *c, struct kv_err *err)
{
	size_t len = 0;
	char *text = read_config(path, what, &len, err), *dir;
	cJSON *doc = NULL;
	const cJSON *it, *fmt, *ver;
	const char *end = NULL, *slash;
	bool ok = false;

	memset(c, 0, sizeof(*c));
	c->data_plane = c->include_pass = c->include_skipped = -1;
	if (!text)
		return false;
	slash = strrchr(path, '/');
	dir = slash ? kv_strndup(path, (size_t)(slash - path)) : kv_strdup("");
	doc = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!doc) {
		kv_err_set(err, "%s: invalid JSON at byte %zu", what, end ? (size_t)(end - text) : 0);
		goto out;
	}
	ver = cJSON_GetObjectItemCaseSensitive(doc, "version");
	if (ver && !(cJSON_IsNumber(ver) && ver->valuedouble == 1.0)) {
		kv_err_set(err, "%s: $.version: expected 1 (this kvaudit reads version 1)", what);
		goto out;
	}
	if (!kv_streq_ci(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "kind")), "kvaudit.config")) {
		kv_err_set(err, "%s: $.kind: expected \"kvaudit.config\": not a kvaudit configuration", what);
		goto out;
	}
	cJSON_ArrayForEach(it, doc) {
		bool known = false;

		for (size_t i = 0; KEYS[i]; i++)
			known = known || strcmp(KEYS[i], it->string) == 0;
		if (!known) {
			kv_err_set(err, "%s: $.%s: unknown setting (see docs/config.md)", what, it->string);
			goto out;
		}
	}
	fmt = cJSON_GetObjectItemCaseSensitive(doc, "formats");
	if (cJSON_IsArray(fmt)) {
		struct kv_buf b;

		kv_buf_init(&b, 0);
		cJSON_ArrayForEach(it, fmt) {
			if (!cJSON_IsString(it)) {
				kv_err_set(err, "%s: $.formats: expected format names", what);
				kv_buf_release(&b);
				goto out;
			}
			if (b.len)
				kv_buf_addc(&b, ',');
			kv_buf_adds(&b, it->valuestring);
		}
		c->formats = keep(c, kv_buf_detach(&b));
	} else if (!get_str(doc, "formats", what, &c->formats, err)) {
		goto out;
	}
	if (!get_str(doc, "cloud", what, &c->cloud, err) || !get_str(doc, "auth", what, &c->auth, err) ||
	    !get_str(doc, "out", what, &c->out, err) || !get_str(doc, "failOn", what, &c->fail_on, err) ||
	    !get_str(doc, "suppressions", what, &c->suppressions, err) ||
	    !get_str(doc, "baseline", what, &c->baseline, err) ||
	    !get_str(doc, "since", what, &c->since, err) ||
	    !get_str(doc, "engine", what, &c->engine, err) ||
	    !get_str(doc, "expiryWarning", what, &c->expiry_warning, err) ||
	    !get_concurrency(c, doc, what, err) ||
	    !get_bool(doc, "dataPlane", what, &c->data_plane, err) ||
	    !get_bool(doc, "includePass", what, &c->include_pass, err) ||
	    !get_bool(doc, "includeSkipped", what, &c->include_skipped, err) ||
	    !get_list(c, doc, "subscriptions", what, NULL, &c->subscriptions, err) ||
	    !get_list(c, doc, "rules", what, dir, &c->rules, err))
		goto out;
	if (c->fail_on) {
		enum severity s;

		if (!severity_parse(c->fail_on, &s)) {
			kv_err_set(err, "%s: $.failOn: expected info, low, medium, high or critical", what);
			goto out;
		}
	}
	/* What each is expected to be is what its flag says it takes. */
	if (!check_duration(what, "since", c->since, collect_parse_since, "a duration such as 7d or 36h, at most 90d",
	                    err) ||
	    !check_duration(what, "expiryWarning", c->expiry_warning, cli_parse_window,
	                    "a duration such as 30d or 12h (at most 3650d)", err))
		goto out;
	if (c->engine && strcmp(c->engine, "graph") != 0 && strcmp(c->engine, "arm") != 0) {
		kv_err_set(err, "%s: $.engine: expected graph or arm", what);
		goto out;
	}
	if (c->auth) {
		enum auth_method m;

		if (!auth_method_parse(c->auth, &m)) {
			kv_err_set(err, "%s: $.auth: expected auto, env, msi or cli", what);
			goto out;
		}
	}
	/* Paths are relative to the file; a cloud name is not a path. */
	if (c->out)
		c->out = path_in(c, dir, c->out);
	if (c->suppressions)
		c->suppressions = path_in(c, dir, c->suppressions);
	if (c->baseline)
		c->baseline = path_in(c, dir, c->baseline);
	if (c->cloud && (strchr(c->cloud, '/') || kv_endswith_ci(c->cloud, ".json")))
		c->cloud = path_in(c, dir, c->cloud);
	if (c->cloud && !check_cloud(what, c->cloud, err))
		goto out;
	/* Strings above point into doc: keep it. */
	c->doc = doc;
	doc = NULL;
	ok = true;
out:
	cJSON_Delete(doc);
	free(text);
	free(dir);
	if (!ok)
		cli_config_release(c);
	return ok;
}

/* note: where the file's name came from ("" when it was given as an operand). */
static bool load_noted(const char *path, const char *note, struct cli_config *c, struct kv_err *err)
{
	char *what = kv_asprintf("config file '%s'%s", path, note);
	bool ok = load(path, what, c, err);

	free(what);
	return ok;
}

bool cli_config_load(const char *path, struct cli_config *c, struct kv_err *err)
{
	return load_noted(path, "", c, err);
}

/* --config's value, else $KVAUDIT_CONFIG's (*from_env), else NULL. */
static const char *config_path(int argc, char **argv, bool *from_env)
{
	*from_env = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			return argv[i + 1];
		if (strncmp(argv[i], "--config=", 9) == 0)
			return argv[i] + 9;
	}
	*from_env = getenv("KVAUDIT_CONFIG") != NULL;
	return getenv("KVAUDIT_CONFIG");
}

bool cli_config_command(int argc, char **argv, struct cli_config *c)
{
	bool from_env;
	const char *path = config_path(argc, argv, &from_env);
	struct kv_err err = {{0}};

	memset(c, 0, sizeof(*c));
	/* --help works whatever the file holds. */
	if (!path || cli_argv_has(argc, argv, "--help") || cli_argv_has(argc, argv, "-h"))
		return true;
	/* A variable set long ago is easy to forget: say where the name came from. */
	if (!load_noted(path, from_env ? " (named by $KVAUDIT_CONFIG)" : " (named by --config)", c, &err)) {
		cli_error("%s", err.msg);
		return false;
	}
	return true;
}

void cli_config_scope(const struct cli_config *c, int argc, char **argv, struct scope_opts *s)
{
	s->cloud = c->cloud;
	s->auth = c->auth;
	s->data_plane = c->data_plane == 1;
	s->since = c->since;
	s->engine = c->engine;
	s->concurrency = c->concurrency;
	for (size_t i = 0; i < c->subscriptions.n && !cli_argv_has(argc, argv, "--subscription"); i++)
		strlist_add(&s->subs, c->subscriptions.v[i]);
}

int cmd_config(int argc, char **argv, const struct command *self)
{
	struct cli_config c;
	struct kv_err err = {{0}};

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return cli_print_help(self);
	if (argc != 3 || strcmp(argv[1], "check") != 0)
		return cli_usage_error(self, "usage: kvaudit config check FILE");
	if (!cli_config_load(argv[2], &c, &err)) {
		cli_error("%s", err.msg);
		return KV_EXIT_USAGE;
	}
	printf("%s: valid\n", argv[2]);
	cli_config_release(&c);
	return fflush(stdout) == 0 ? KV_EXIT_OK : KV_EXIT_USAGE;
}

/* True when argv names option (as "--x" or "--x=…"): flags replace a config list. */
bool cli_argv_has(int argc, char **argv, const char *option)
{
	size_t n = strlen(option);

	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], option, n) == 0 && (argv[i][n] == '\0' || argv[i][n] == '='))
			return true;
	return false;
}
