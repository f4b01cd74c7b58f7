/*
 * live.c - the commands that talk to Azure: collect, scan, whoami.  They
 * share one set-up (cloud, HTTP client, credential) and the scope options.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/azure/collect.h"
#include "audit/cli/cli.h"
#include "audit/cli/cli_internal.h"
#include "audit/estate/estate.h"
#include "audit/util/log.h"
#include "reports/report.h"

#define SCOPE_USAGE \
	"scope:\n" \
	"  --subscription ID          only this subscription (repeatable)\n" \
	"  --all-subscriptions        every subscription the identity can read (the default)\n" \
	"  --cloud NAME|FILE          AzureCloud (default), AzureUSGovernment, AzureChinaCloud, or a\n" \
	"                             JSON file as 'az cloud show' prints it (plus \"caBundle\")\n" \
	"  --auth auto|env|msi|cli    credential source (default auto: env, then managed identity,\n" \
	"                             then the Azure CLI); secrets come only from the environment\n" \
	"  --data-plane               also read the Key Vault data plane: KEK key bundles and BEK\n" \
	"                             secret metadata, never a secret's value (restore readiness)\n"

#define COLLECT_USAGE_OPTIONS \
	"  --engine graph|arm         read resources through Resource Graph (the default; ARM for a tenant\n" \
	"                             where Resource Graph refuses the caller) or ARM lists only\n" \
	"  --shard K/N                read only part K of N of the subscriptions (N workers, one\n" \
	"                             estate; combine their output with 'kvaudit merge')\n" \
	"  --concurrency N            requests in flight at once, 1-256 (default 32); each\n" \
	"                             subscription is slowed down when ARM's read budget runs low\n" \
	"  --since DURATION           Azure Backup jobs of this far back: Nd or Nh, at most 90d\n" \
	"                             (default 7d)\n"

const char COLLECT_USAGE[] =
	"usage: kvaudit collect [scope] [--out FILE] [--config FILE] [-v]\n"
	"\n"
	"Read the estate live from Azure and write a snapshot (kvaudit.estate) for 'kvaudit audit'.\n"
	"\n" SCOPE_USAGE COLLECT_USAGE_OPTIONS
	"  --out FILE                 the snapshot (default kvaudit-estate-<UTC time>.json), mode 0600\n"
	"  --config FILE              take subscriptions, cloud, auth, dataPlane, since, engine and\n"
	"                             concurrency from FILE (default $KVAUDIT_CONFIG; docs/config.md)\n"
	"  -v, --verbose              progress and one line per HTTP request on stderr\n"
	"  -q, --quiet                no progress\n"
	"\n"
	"exit codes: 0 written (unreadable resources are listed in its errors[]), 2 bad usage,\n"
	"5 authentication failed\n";

const char SCAN_USAGE[] =
	"usage: kvaudit scan [scope] [audit options] [--save-estate FILE]\n"
	"\n"
	"Collect live and audit in one go: 'kvaudit collect' followed by 'kvaudit audit'.\n"
	"\n" SCOPE_USAGE COLLECT_USAGE_OPTIONS
	"  --save-estate FILE         keep the snapshot too (mode 0600)\n"
	"  --format, --out, --fail-on, --include-pass, --include-skipped, --suppressions, --baseline,\n"
	"  --config, --rules,\n"
	"  --backup-sp-object-id, --expiry-warning, --as-of,\n"
	"  -q, -v\n"
	"                             as for 'kvaudit audit' (see 'kvaudit audit --help')\n"
	"\n"
	"exit codes: as 'kvaudit audit', and 5 when authentication failed\n";

const char WHOAMI_USAGE[] =
	"usage: kvaudit whoami [--cloud NAME|FILE] [--auth METHOD] [-v]\n"
	"\n"
	"Show who kvaudit signs in as (identity, tenant, user type) and what it can read.\n"
	"exit codes: 0 signed in, 2 bad usage, 5 authentication failed\n";

static bool is_guid(const char *s)
{
	static const char pattern[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (!s || strlen(s) != sizeof(pattern) - 1)
		return false;
	for (size_t i = 0; pattern[i]; i++)
		if (pattern[i] == '-' ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	return true;
}

struct live {
	struct cloud cloud;
	struct http_client *http;
	struct credential *cred;
	struct az_client client;
	bool loaded;
};

/* --concurrency N: N, or -1 when it is not a whole number from 1 to 256. */
static int scope_concurrency(const char *text)
{
	char *end = NULL;
	long n = strtol(text, &end, 10);

	return end == text || *end || n < 1 || n > HTTP_MAX_CONCURRENCY ? -1 : (int)n;
}

bool cli_scope_option(struct scope_opts *s, int opt)
{
	switch (opt) {
	case OPT_SUB: strlist_add(&s->subs, optarg); break;
	case OPT_ALL: break;
	case OPT_CLOUD: s->cloud = optarg; break;
	case OPT_AUTH: s->auth = optarg; break;
	case OPT_DATA_PLANE: s->data_plane = true; break;
	case OPT_ENGINE: s->engine = optarg; break;
	case OPT_SHARD: s->shard = optarg; break;
	case OPT_CONCURRENCY: s->concurrency = optarg; break;
	case OPT_SINCE: s->since = optarg; break;
	default: return false;
	}
	s->any = true;
	return true;
}

int cli_scope_check(const struct command *self, const struct scope_opts *s)
{
	enum auth_method m;
	long long since;
	unsigned k, n;
	struct cloud cloud;
	struct kv_err err = {{0}};

	if (s->auth && !auth_method_parse(s->auth, &m))
		return cli_usage_error(self, "--auth takes auto, env, msi or cli");
	for (size_t i = 0; i < s->subs.n; i++)
		if (!is_guid(s->subs.v[i])) {
			char msg[200];

			snprintf(msg, sizeof(msg), "--subscription '%.64s' is not a subscription ID (a GUID)", s->subs.v[i]);
			return cli_usage_error(self, msg);
		}
	if (s->since && !collect_parse_since(s->since, &since))
		return cli_usage_error(self, "--since takes a duration such as 7d or 36h, at most 90d");
	if (s->engine && strcmp(s->engine, "graph") != 0 && strcmp(s->engine, "arm") != 0)
		return cli_usage_error(self, "--engine takes graph or arm");
	if (s->shard && !collect_shard_parse(s->shard, &k, &n))
		return cli_usage_error(self, "--shard takes K/N, 1 <= K <= N <= 1000 (e.g. --shard 2/3)");
	if (s->concurrency && scope_concurrency(s->concurrency) < 0)
		return cli_usage_error(self, "--concurrency takes a number from 1 to 256");
	/* A cloud file is read here too, so that a bad one is named before any work. */
	if (s->cloud) {
		if (!cloud_load(s->cloud, &cloud, &err)) {
			cli_error("%s", err.msg);
			return KV_EXIT_USAGE;
		}
		cloud_release(&cloud);
	}
	return KV_EXIT_OK;
}

int cli_parse_options(const struct command *self, int argc, char **argv, const char *shortopts,
                      const struct option *opts, struct scope_opts *s, cli_option_fn own, void *ctx)
{
	int opt, got;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		if (s && cli_scope_option(s, opt))
			continue;
		if (own && (got = own(ctx, self, opt)) != 0) {
			if (got < 0)
				return KV_EXIT_USAGE;
			continue;
		}
		if (s && opt == 'q')
			s->quiet = true;
		else if (s && opt == 'v')
			s->verbose = true;
		else if (opt == 'h')
			return cli_print_help(self);
		else
			return cli_bad_option(self, argv, opt);
	}
	return -1;
}

char *cli_default_name(const char *what, const char *ext)
{
	char stamp[32];

	cli_scan_stamp(stamp, sizeof(stamp));
	return kv_asprintf("kvaudit-%s-%s%s", what, stamp, ext);
}

static void live_release(struct live *l)
{
	credential_free(l->cred);
	http_client_free(l->http);
	if (l->loaded)
		cloud_release(&l->cloud);
	memset(l, 0, sizeof(*l));
}

/* Cloud, HTTP and credential; returns an exit code (0 on success). */
static int live_setup(const struct command *self, const struct scope_opts *s, struct live *l)
{
	struct http_opts ho;
	enum auth_method m = AUTH_AUTO;
	struct kv_err err = {{0}};
	int rc = cli_scope_check(self, s);   /* every scope option, whatever uses it */

	memset(l, 0, sizeof(*l));
	if (rc != KV_EXIT_OK)
		return rc;
	if (s->auth)
		auth_method_parse(s->auth, &m);
	if (!cloud_load(s->cloud ? s->cloud : "AzureCloud", &l->cloud, &err)) {
		cli_error("%s", err.msg);
		return KV_EXIT_USAGE;
	}
	l->loaded = true;
	memset(&ho, 0, sizeof(ho));
	ho.ca_bundle = l->cloud.ca_bundle;
	ho.log = s->verbose ? stderr : NULL;
	/* Test and proxy set-ups only: map Azure host names to other addresses (curl's formats). */
	ho.resolve = getenv("KVAUDIT_RESOLVE");
	ho.connect_to = getenv("KVAUDIT_CONNECT_TO");
	/* Managed identity endpoints (IMDS, App Service) are plain http on local addresses by design. */
	ho.allow_http_loopback_imds = m == AUTH_AUTO || m == AUTH_MSI;
	l->http = http_client_new(&ho, &err);
	if (!l->http) {
		cli_error("%s", err.msg);
		live_release(l);
		return KV_EXIT_USAGE;
	}
	l->cred = credential_new(m, &l->cloud, l->http, &err);
	if (!l->cred) {
		cli_error("%s", err.msg);
		live_release(l);
		return KV_EXIT_AUTH;
	}
	l->client.cloud = &l->cloud;
	l->client.http = l->http;
	l->client.cred = l->cred;
	return KV_EXIT_OK;
}

struct cli_live {
	struct live l;
};

struct cli_live *cli_live_open(const struct command *self, const struct scope_opts *s, int *rc)
{
	struct cli_live *cl = kv_calloc(1, sizeof(*cl));

	*rc = live_setup(self, s, &cl->l);
	if (*rc != KV_EXIT_OK) {
		free(cl);
		return NULL;
	}
	return cl;
}

struct az_client *cli_live_client(struct cli_live *cl)
{
	return &cl->l.client;
}

void cli_live_close(struct cli_live *cl)
{
	if (!cl)
		return;
	live_release(&cl->l);
	free(cl);
}

/* Writes doc to path via a temporary file, mode 0600 (it names identities). */
bool cli_write_private_json(const char *path, const cJSON *doc, struct kv_err *err)
{
	char *tmp = kv_asprintf("%s.tmp.%ld", path, (long)getpid());
	char *text = cJSON_Print(doc);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	size_t len = strlen(text), off = 0;
	bool ok = false;

	if (fd < 0) {
		kv_err_set(err, "cannot write '%s': %s", path, strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			kv_err_set(err, "cannot write '%s': %s", path, strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
		kv_err_set(err, "cannot write '%s': %s", path, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		kv_err_set(err, "cannot write '%s': %s", path, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		kv_err_set(err, "cannot write '%s': %s", path, strerror(errno));
		goto out;
	}
	ok = true;
out:
	if (fd >= 0)
		close(fd);
	if (!ok)
		unlink(tmp);
	free(tmp);
	free(text);
	return ok;
}

int cli_live_collect(const struct command *self, const struct scope_opts *s, cJSON **doc)
{
	struct live l;
	struct collect_opts co;
	struct kv_err err = {{0}};
	enum collect_result r;
	int rc = live_setup(self, s, &l);

	*doc = NULL;
	if (rc != KV_EXIT_OK)
		return rc;
	memset(&co, 0, sizeof(co));
	co.subscriptions = s->subs.v;
	co.nsubscriptions = s->subs.n;
	co.data_plane = s->data_plane;
	/* live_setup checked them all (cli_scope_check). */
	if (s->since)
		collect_parse_since(s->since, &co.since_seconds);
	co.engine = !s->engine ? COLLECT_ENGINE_AUTO : strcmp(s->engine, "arm") == 0 ? COLLECT_ENGINE_ARM :
	            COLLECT_ENGINE_GRAPH;
	if (s->shard)
		collect_shard_parse(s->shard, &co.shard_index, &co.shard_count);
	if (s->concurrency)
		co.concurrency = scope_concurrency(s->concurrency);
	co.progress = s->quiet ? NULL : (s->verbose || isatty(fileno(stderr))) ? stderr : NULL;
	r = collect_estate(&l.client, &co, doc, &err);
	if (r != COLLECT_OK) {
		cli_error("%s", err.msg);
		rc = r == COLLECT_AUTH ? KV_EXIT_AUTH : KV_EXIT_INCOMPLETE;
	} else if (co.progress) {
		log_line(stderr, "info", NULL, "%d requests (%d throttled), %d errors", l.client.requests, l.client.throttled,
		        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(*doc, "errors")));
	}
	live_release(&l);
	return rc;
}

/* --out FILE (ctx: the const char * it sets), and --config FILE (read before the options). */
static int out_option(void *ctx, const struct command *self, int opt)
{
	(void)self;
	if (opt == 'C')
		return 1;
	if (opt != 'o')
		return 0;
	*(const char **)ctx = optarg;
	return 1;
}

int cli_live_estate(const struct command *self, const struct scope_opts *s, const struct estate_opts *eo,
                    cJSON **doc, struct estate **e)
{
	struct kv_err err = {{0}};
	int rc = cli_live_collect(self, s, doc);

	*e = NULL;
	if (rc != KV_EXIT_OK) {
		cJSON_Delete(*doc); /* a failed collection is not a snapshot to keep */
		*doc = NULL;
		return rc;
	}
	/* The tree itself, not its text parsed again: at 10k VMs printing and parsing took seconds. */
	*e = estate_from_doc(*doc, "collected estate", eo, &err);
	if (!*e) {
		cli_error("%s", err.msg);
		return KV_EXIT_USAGE;
	}
	*doc = NULL;   /* (*e)->doc now */
	return KV_EXIT_OK;
}

int cmd_collect(int argc, char **argv, const struct command *self)
{
	static const struct option opts[] = {
		SCOPE_OPTIONS,
		COLLECT_OPTIONS,
		{"out", required_argument, NULL, 'o'},
		{"config", required_argument, NULL, 'C'},
		COMMON_OPTIONS,
	};
	struct scope_opts s;
	struct cli_config cfg;
	const char *out = NULL;
	char *deflt = NULL;
	cJSON *doc = NULL;
	struct kv_err err = {{0}};
	int rc = KV_EXIT_USAGE;

	memset(&s, 0, sizeof(s));
	/* A scheduled scan's config file gives the scope; flags override it (its report keys do not apply). */
	if (!cli_config_command(argc, argv, &cfg))
		goto out;
	cli_config_scope(&cfg, argc, argv, &s);
	if ((rc = cli_parse_options(self, argc, argv, ":qvh", opts, &s, out_option, &out)) >= 0)
		goto out;
	if (optind != argc) {
		rc = cli_usage_error(self, "collect takes no positional arguments");
		goto out;
	}
	if (!out)
		out = deflt = cli_default_name("estate", ".json");
	rc = cli_live_collect(self, &s, &doc);
	if (rc != KV_EXIT_OK)
		goto out;
	if (!cli_write_private_json(out, doc, &err)) {
		cli_error("%s", err.msg);
		rc = KV_EXIT_USAGE;
		goto out;
	}
	if (!s.quiet)
		log_line(stderr, "info", NULL, "wrote %s", out);
out:
	cJSON_Delete(doc);
	free(deflt);
	free(s.subs.v);
	cli_config_release(&cfg);
	return rc;
}

struct scan_args {
	struct audit_cli *a;
	const char *save;   /* --save-estate */
};

static int scan_option(void *ctx, const struct command *self, int opt)
{
	struct scan_args *x = ctx;

	if (opt != 'S')
		return audit_cli_option(x->a, self, opt);
	x->save = optarg;
	return 1;
}

int cmd_scan(int argc, char **argv, const struct command *self)
{
	static const struct option opts[] = {
		SCOPE_OPTIONS,
		COLLECT_OPTIONS,
		AUDIT_OPTIONS,
		{"save-estate", required_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct scope_opts s;
	struct audit_cli a;
	struct scan_args x = {&a, NULL};
	struct estate_opts eo;
	struct estate *e = NULL;
	struct kv_err err = {{0}};
	cJSON *doc = NULL;
	int rc = KV_EXIT_USAGE;

	memset(&s, 0, sizeof(s));
	if (!audit_cli_init(&a, "live", argc, argv, &s))
		goto out;
	if ((rc = cli_parse_options(self, argc, argv, ":qvh", opts, &s, scan_option, &x)) >= 0)
		goto out;
	rc = KV_EXIT_USAGE;
	s.quiet = a.quiet;
	s.verbose = a.verbose;
	if (optind != argc) {
		rc = cli_usage_error(self, "scan takes no positional arguments (to audit a file: kvaudit audit FILE)");
		goto out;
	}
	if (!audit_cli_prepare(&a, self))
		goto out;
	audit_cli_estate_opts(&a, &eo);
	rc = cli_live_estate(self, &s, &eo, &doc, &e);
	/* Before the audit: the snapshot as collected (doc when it could not be loaded). */
	if ((doc || e) && x.save && !cli_write_private_json(x.save, e ? e->doc : doc, &err)) {
		cli_error("%s", err.msg);
		rc = KV_EXIT_USAGE;
	}
	if (rc != KV_EXIT_OK)
		goto out;
	rc = audit_cli_report(&a, e);
out:
	estate_free(e);
	cJSON_Delete(doc);
	audit_cli_release(&a);
	free(s.subs.v);
	return rc;
}

int cmd_whoami(int argc, char **argv, const struct command *self)
{
	static const struct option opts[] = {
		{"cloud", required_argument, NULL, OPT_CLOUD},
		{"auth", required_argument, NULL, OPT_AUTH},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct scope_opts s;
	struct live l;
	struct kv_err err = {{0}};
	cJSON *caller = NULL, *items = NULL;
	struct az_failure f;
	int rc;
	char *url = NULL;

	memset(&s, 0, sizeof(s));
	memset(&l, 0, sizeof(l));
	if ((rc = cli_parse_options(self, argc, argv, ":vh", opts, &s, NULL, NULL)) >= 0)
		goto out;
	if (optind != argc) {
		rc = cli_usage_error(self, "whoami takes no positional arguments");
		goto out;
	}
	rc = live_setup(self, &s, &l);
	if (rc != KV_EXIT_OK)
		goto out;
	if (collect_caller(&l.client, &caller, &err) != COLLECT_OK) {
		cli_error("%s", err.msg);
		rc = KV_EXIT_AUTH;
		goto out;
	}
	printf("identity:     %s (%s)\n", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(caller, "displayName")) ?
	       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(caller, "displayName")) : "-",
	       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(caller, "type")));
	printf("object ID:    %s\n", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(caller, "objectId")));
	printf("tenant:       %s\n", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(caller, "tenantId")));
	printf("credential:   %s\n", credential_describe(l.cred));
	printf("cloud:        %s\n", l.cloud.name);
	/* What it may read: tenants and subscriptions through ARM, Backup's principal through Graph. */
	items = cJSON_CreateArray();
	url = kv_asprintf("%s/subscriptions?api-version=2022-12-01", l.cloud.arm);
	if (az_list(&l.client, url, NULL, items, &f, &err) == HTTP_OK)
		printf("ARM:          can list %d subscription(s) in this tenant\n", cJSON_GetArraySize(items));
	else
		printf("ARM:          cannot list subscriptions: %s\n", err.msg);
	free(url);
	url = NULL;
	if (l.cloud.backup_app_id) {
		cJSON *sp = NULL;

		url = kv_asprintf("%s/v1.0/servicePrincipals(appId='%s')?$select=id", l.cloud.graph, l.cloud.backup_app_id);
		switch (az_get_json(&l.client, url, NULL, &sp, &f, &err)) {
		case HTTP_OK:
			printf("Graph:        can read service principals (Backup Management Service: %s)\n",
			       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sp, "id")));
			break;
		case HTTP_NOT_FOUND:
			printf("Graph:        can read service principals (Backup Management Service is absent here)\n");
			break;
		default:
			printf("Graph:        cannot read service principals (needs Application.Read.All): %s\n", err.msg);
		}
		cJSON_Delete(sp);
	} else {
		printf("Graph:        not checked: Backup Management Service's appId in cloud %s is unknown "
		       "(add \"backupAppId\" to the cloud file)\n", l.cloud.name);
	}
	rc = fflush(stdout) == 0 ? KV_EXIT_OK : KV_EXIT_USAGE;
out:
	free(url);
	cJSON_Delete(items);
	cJSON_Delete(caller);
	live_release(&l);
	free(s.subs.v);
	return rc;
}
