/*
 * cli.c - commands, options and usage.  Each command keeps its options and
 * usage text beside its handler; `kvaudit --help` is generated from the
 * same table.  Handlers return an exit code; errors are printed once, as
 * one line "kvaudit: <message>", where they are detected.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/cli/cli.h"
#include "audit/cli/cli_internal.h"
#include "audit/util/log.h"
#include "audit/estate/estate.h"
#include "audit/estate/facts.h"
#include "reports/report.h"
#include "rules/engine.h"

void cli_error(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_line(stderr, "error", NULL, "%s", msg);
}

int cli_usage_error(const struct command *c, const char *what)
{
	cli_error("%s (see 'kvaudit %s --help')", what, c->name);
	return KV_EXIT_USAGE;
}

int cli_print_help(const struct command *c)
{
	fputs(c->usage, stdout);
	return fflush(stdout) == 0 ? KV_EXIT_OK : KV_EXIT_USAGE;
}

void strlist_add(struct strlist *l, const char *s)
{
	l->v = kv_realloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = s;
}

/* getopt_long error messages are replaced by ours: opterr = 0 and report here. */
int cli_bad_option(const struct command *c, char **argv, int opt)
{
	char msg[256];
	const char *arg = argv[optind - 1];
	/* Name the option only: in --client-secret=VALUE the value may be a secret, and stderr
	 * often ends up in a CI log. */
	int len = (int)strcspn(arg, "=");

	if (opt == ':')
		snprintf(msg, sizeof(msg), "option '%.*s' needs a value", len, arg);
	else
		snprintf(msg, sizeof(msg), "unknown option '%.*s'", len, arg);
	return cli_usage_error(c, msg);
}

bool cli_load_catalog(struct rule_catalog *cat, const struct strlist *dirs)
{
	struct kv_err err = {{0}};

	if (!rule_catalog_load_builtin(cat, &err)) {
		cli_error("built-in rule catalog is invalid: %s", err.msg);
		return false;
	}
	for (size_t i = 0; i < dirs->n; i++) {
		if (!rule_catalog_load_dir(cat, dirs->v[i], &err)) {
			cli_error("%s", err.msg);
			rule_catalog_release(cat);
			return false;
		}
	}
	return true;
}

bool cli_formats_valid(const struct command *c, const char *formats)
{
	for (const char *p = formats; *p;) {
		size_t n = strcspn(p, ",");
		char name[32];

		if (n == 0 || n >= sizeof(name)) {
			cli_usage_error(c, "--format takes a comma-separated list of json, csv, html, sarif, junit, md");
			return false;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		if (!report_format_find(name)) {
			char msg[128];

			snprintf(msg, sizeof(msg), "unknown report format '%s' (known: json, csv, html, sarif, junit, md)", name);
			cli_usage_error(c, msg);
			return false;
		}
		p += n + (p[n] == ',');
	}
	return true;
}

/* ---- kvaudit audit ---- */

static const char AUDIT_USAGE[] =
	"usage: kvaudit audit ESTATE.json [options]\n"
	"\n"
	"Judge an estate snapshot (kvaudit.estate v1) offline and write reports.\n"
	"\n"
	"options:\n"
	"  --format LIST              report formats, comma-separated: json, csv, html, sarif,\n"
	"                             junit, md (default json)\n"
	"  --out DIR|FILE|-           a directory receives kvaudit-<UTC time>.<ext> per format\n"
	"                             (created if missing); FILE or - (stdout) take one format\n"
	"                             (default: the current directory)\n"
	"  --fail-on SEV              exit 1 for failing findings at or above SEV:\n"
	"                             info, low, medium, high, critical (default low)\n"
	"  --include-pass             list passing findings too (they are always counted)\n"
	"  --include-skipped          list skipped findings one by one (else they are counted\n"
	"                             per rule and reason: summary.skippedByRule)\n"
	"  --suppressions FILE        accepted risks (docs/suppressions.md): matching failures become\n"
	"                             \"suppressed\" until their expiry date\n"
	"  --baseline OLD.json        exit 1 only for failing findings that are new against a\n"
	"                             previous JSON report (see 'kvaudit diff')\n"
	"  --config FILE              settings from a file (docs/config.md; also $KVAUDIT_CONFIG);\n"
	"                             options given here win\n"
	"  --rules DIR                add the rules in DIR/*.json (repeatable)\n"
	"  --backup-sp-object-id TENANT=OID\n"
	"                             Backup Management Service's object ID in TENANT, when the\n"
	"                             snapshot does not record it (repeatable)\n"
	"  --expiry-warning DURATION  BEK secrets and KEKs expiring within DURATION fail the\n"
	"                             \"about to expire\" rules: 30d (default), 12h, 0 (off)\n"
	"  --as-of TIME               judge expiry as of TIME (YYYY-MM-DD or\n"
	"                             YYYY-MM-DDTHH:MM:SSZ, UTC) instead of now\n"
	"  -q, --quiet                no summary on stderr\n"
	"  -v, --verbose              also list where each report was written\n"
	"  -h, --help                 this help\n"
	"\n"
	"exit codes: 0 no failing finding at or above --fail-on, 1 failing findings,\n"
	"2 bad usage or bad input, 3 scan incomplete (some facts could not be read)\n";

bool cli_load_suppressions(const char *path, const struct rule_catalog *cat, struct suppressions *out,
                           struct audit_opts *ao)
{
	struct kv_err err = {{0}};

	if (!path)
		return true;
	if (!suppressions_load(path, cat, NULL, out, &err)) {
		cli_error("%s", err.msg);
		return false;
	}
	ao->suppressions = out;
	return true;
}

static void warn_line(const char *line, void *arg)
{
	(void)arg;
	log_line(stderr, "warning", NULL, "%s", line);
}

void cli_warn_expired(const struct suppressions *s)
{
	suppressions_each_expired_hit(s, warn_line, NULL);
}

bool cli_use_color(void)
{
	const char *nc = getenv("NO_COLOR");

	return isatty(fileno(stderr)) && (!nc || !*nc) && !kv_streq_ci(getenv("TERM"), "dumb");
}

void cli_scan_stamp(char *out, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, n, "%Y%m%dT%H%M%SZ", &tm);
}

static int cmd_audit(int argc, char **argv, const struct command *self)
{
	static const struct option opts[] = {
		AUDIT_OPTIONS,
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct audit_cli a;
	struct estate_opts eo;
	struct estate *e = NULL;
	struct kv_err err = {{0}};
	int opt, got, rc = KV_EXIT_USAGE;

	if (!audit_cli_init(&a, NULL, argc, argv, NULL))
		goto out;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":qvh", opts, NULL)) != -1) {
		if ((got = audit_cli_option(&a, self, opt)) < 0)
			goto out;
		if (got)
			continue;
		if (opt == 'h') {
			rc = cli_print_help(self);
			goto out;
		}
		rc = cli_bad_option(self, argv, opt);
		goto out;
	}
	if (argc - optind != 1) {
		rc = cli_usage_error(self, argc - optind == 0 ? "an estate file is required"
		                                          : "exactly one estate file is expected");
		goto out;
	}
	if (!audit_cli_prepare(&a, self))
		goto out;
	audit_cli_estate_opts(&a, &eo);
	a.ao.source = argv[optind];
	e = estate_load(argv[optind], &eo, &err);
	if (!e) {
		cli_error("%s", err.msg);
		goto out;
	}
	rc = audit_cli_report(&a, e);
out:
	estate_free(e);
	audit_cli_release(&a);
	return rc;
}

/* ---- kvaudit inventory ---- */

static const char INVENTORY_USAGE[] =
	"usage: kvaudit inventory ESTATE.json [options]\n"
	"       kvaudit inventory [--subscription ID]... [--cloud NAME|FILE] [--auth METHOD] [options]\n"
	"\n"
	"List the ADE VMs (OS, ADE flavour, each disk's BEK and KEK vault) and the key vaults\n"
	"(access model, tenant, Backup Management Service's permissions) of a snapshot.\n"
	"\n"
	"options:\n"
	"  --format table|csv|json    output format (default table)\n"
	"  --backup-sp-object-id TENANT=OID\n"
	"                             Backup Management Service's object ID in TENANT (repeatable)\n"
	"  without ESTATE.json, the estate is read live (scope options as for 'kvaudit scan')\n"
	"  -q, --quiet, -v, --verbose progress on stderr\n"
	"  -h, --help                 this help\n";

static int cmd_inventory(int argc, char **argv, const struct command *self)
{
	static const struct option opts[] = {
		SCOPE_OPTIONS,
		{"format", required_argument, NULL, 'f'},
		{"backup-sp-object-id", required_argument, NULL, 'b'},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *format = "table";
	struct strlist sps = {0};
	struct estate_opts eo = {0};
	struct estate *e = NULL;
	struct facts_ctx *ctx = NULL;
	struct kv_err err = {{0}};
	cJSON *inv = NULL, *doc = NULL;
	bool (*write)(const cJSON *, FILE *, struct kv_err *) = NULL;
	struct scope_opts s;
	int opt, rc = KV_EXIT_USAGE;

	memset(&s, 0, sizeof(s));
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":qvh", opts, NULL)) != -1) {
		if (cli_scope_option(&s, opt))
			continue;
		switch (opt) {
		case 'f': format = optarg; break;
		case 'b': strlist_add(&sps, optarg); break;
		case 'q': s.quiet = true; break;
		case 'v': s.verbose = true; break;
		case 'h': rc = cli_print_help(self); goto out;
		default: rc = cli_bad_option(self, argv, opt); goto out;
		}
	}
	if (strcmp(format, "table") == 0)
		write = inventory_write_table;
	else if (strcmp(format, "csv") == 0)
		write = inventory_write_csv;
	else if (strcmp(format, "json") == 0)
		write = inventory_write_json;
	else {
		rc = cli_usage_error(self, "--format takes table, csv or json");
		goto out;
	}
	if (argc - optind > 1 || (argc - optind == 1 && s.any)) {
		rc = cli_usage_error(self, "give an estate file or a live scope, not both");
		goto out;
	}
	eo.sp_overrides = sps.v;
	eo.nsp_overrides = sps.n;
	eo.lean = true;   /* the inventory reads the typed model only (docs/performance.md) */
	if (argc - optind == 1) {
		e = estate_load(argv[optind], &eo, &err);
	} else {
		if ((rc = cli_live_estate(self, &s, &eo, &doc, &e)) != KV_EXIT_OK)
			goto out;
		rc = KV_EXIT_USAGE;
	}
	if (!e) {
		cli_error("%s", err.msg);
		goto out;
	}
	ctx = facts_prepare(e);
	inv = facts_inventory(ctx);
	if (!write(inv, stdout, &err) || fflush(stdout) != 0 || ferror(stdout)) {
		cli_error("cannot write the inventory to standard output: %s", err.msg[0] ? err.msg : strerror(errno));
		goto out;
	}
	rc = KV_EXIT_OK;
out:
	cJSON_Delete(inv);
	cJSON_Delete(doc);
	facts_ctx_free(ctx);
	estate_free(e);
	free(sps.v);
	free(s.subs.v);
	return rc;
}

/* ---- kvaudit rules ---- */

static const char RULES_USAGE[] =
	"usage: kvaudit rules list [--rules DIR]...\n"
	"       kvaudit rules show ID [--rules DIR]...\n"
	"       kvaudit rules check DIR\n"
	"       kvaudit rules facts\n"
	"\n"
	"list   one line per rule: ID, subject, severity, title\n"
	"show   a rule in full (its JSON)\n"
	"check  validate every DIR/*.json rule file; exit 2 with one line per problem\n"
	"facts  the facts rules may read, with the subjects that have them\n";

static int cmd_rules(int argc, char **argv, const struct command *self)
{
	static const struct option opts[] = {
		{"rules", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct strlist dirs = {0};
	struct rule_catalog cat = {0};
	const char *sub;
	int opt, rc = KV_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	/* Options may follow the subcommand: permute. */
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': strlist_add(&dirs, optarg); break;
		case 'h': rc = cli_print_help(self); goto out;
		default: rc = cli_bad_option(self, argv, opt); goto out;
		}
	}
	if (optind >= argc) {
		rc = cli_usage_error(self, "a subcommand is required: list, show ID, check DIR or facts");
		goto out;
	}
	sub = argv[optind++];
	/* check and facts read no catalog: a --rules there would be silently ignored. */
	if (dirs.n && (strcmp(sub, "check") == 0 || strcmp(sub, "facts") == 0)) {
		rc = cli_usage_error(self, strcmp(sub, "check") == 0
		                     ? "--rules applies to 'rules list' and 'rules show' ('rules check DIR' checks DIR)"
		                     : "--rules applies to 'rules list' and 'rules show' (custom rules read these facts)");
		goto out;
	}
	if (strcmp(sub, "list") == 0 && optind == argc) {
		if (!cli_load_catalog(&cat, &dirs))
			goto out;
		for (size_t i = 0; i < cat.n; i++)
			printf("%-12s %-8s %-9s %s\n", cat.rules[i].id, subject_name(cat.rules[i].subject),
			       severity_name(cat.rules[i].severity), cat.rules[i].title);
		rc = KV_EXIT_OK;
	} else if (strcmp(sub, "show") == 0 && optind + 1 == argc) {
		const struct rule *r;
		char *text;

		if (!cli_load_catalog(&cat, &dirs))
			goto out;
		if (!(r = rule_catalog_find(&cat, argv[optind]))) {
			cli_error("no rule '%s' (see 'kvaudit rules list')", argv[optind]);
			goto out;
		}
		text = cJSON_Print(r->json);
		printf("%s\n", text);
		free(text);
		rc = KV_EXIT_OK;
	} else if (strcmp(sub, "check") == 0 && optind + 1 == argc) {
		int bad = rule_catalog_check_dir(argv[optind], stderr);

		if (bad == 0)
			printf("%s: all rules are valid\n", argv[optind]);
		rc = bad == 0 ? KV_EXIT_OK : KV_EXIT_USAGE;
	} else if (strcmp(sub, "facts") == 0 && optind == argc) {
		size_t n;
		const struct fact_def *d = facts_registry(&n);

		printf("| fact | type | subjects | meaning |\n|---|---|---|---|\n");
		for (size_t i = 0; i < n; i++) {
			char subj[64] = "";
			const enum subject_kind kinds[] = {SUBJ_VM, SUBJ_VAULT, SUBJ_BINDING, SUBJ_TENANT};

			for (size_t k = 0; k < 4; k++)
				if (d[i].subjects & kinds[k]) {
					if (subj[0])
						strcat(subj, ", ");
					strcat(subj, subject_name(kinds[k]));
				}
			printf("| `%s` | %s | %s | %s |\n", d[i].path, fact_type_name(d[i].type), subj, d[i].doc);
		}
		rc = KV_EXIT_OK;
	} else {
		char msg[160];

		snprintf(msg, sizeof(msg), "unknown or incomplete subcommand 'rules %s'", sub);
		rc = cli_usage_error(self, msg);
	}
	if (rc == KV_EXIT_OK && (fflush(stdout) != 0 || ferror(stdout))) {
		cli_error("cannot write to standard output: %s", strerror(errno));
		rc = KV_EXIT_USAGE;
	}
out:
	rule_catalog_release(&cat);
	free(dirs.v);
	return rc;
}

/* ---- the table ---- */

static const struct command commands[] = {
	{"audit", "judge an estate snapshot offline and write reports", AUDIT_USAGE, cmd_audit},
	{"inventory", "list ADE VMs and their key vaults from a snapshot", INVENTORY_USAGE, cmd_inventory},
	{"rules", "list, show and check rules", RULES_USAGE, cmd_rules},
	{"collect", "read the estate live from Azure into a snapshot", COLLECT_USAGE, cmd_collect},
	{"scan", "collect live and audit in one go", SCAN_USAGE, cmd_scan},
	{"whoami", "show the identity kvaudit signs in as and what it can read", WHOAMI_USAGE, cmd_whoami},
	{"report", "render a saved JSON report as html, sarif, junit, md, csv or json", REPORT_USAGE, cmd_report},
	{"diff", "new, resolved and unchanged failing findings between two reports", DIFF_USAGE, cmd_diff},
	{"merge", "combine the estates or JSON reports of sharded workers (--shard K/N) into one", MERGE_USAGE,
	 cmd_merge},
	{"config", "check a configuration file", CONFIG_USAGE, cmd_config},
	{"fix", "plan, and with --apply make, the grants Azure Backup needs", FIX_USAGE, cmd_fix},
	{"rollback", "undo what a fix journal says was added", ROLLBACK_USAGE, cmd_rollback},
};

static void main_usage(FILE *f)
{
	fputs("usage: kvaudit [--version] [--help] COMMAND [options]\n"
	      "\n"
	      "Audit the Azure Key Vault permissions Azure Backup needs for VMs encrypted with\n"
	      "Azure Disk Encryption.\n"
	      "\n"
	      "commands:\n", f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fputs("\n'kvaudit COMMAND --help' shows a command's options; --log-format text|json (any\n"
	      "command, or KVAUDIT_LOG_FORMAT) writes stderr lines as text or JSON lines.\n"
	      "exit codes: 0 ok, 1 failing findings, 2 bad usage or input, 3 scan incomplete,\n"
	      "4 a fix or rollback did not fully apply, 5 authentication failed\n", f);
}

/*
 * --log-format text|json (or KVAUDIT_LOG_FORMAT) applies to every command:
 * it is taken out of argv here, before the command parses its options.
 */
static bool take_log_format(int *argc, char **argv)
{
	const char *v = getenv("KVAUDIT_LOG_FORMAT");
	enum log_format f = LOG_TEXT;
	int j = 1;

	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--log-format") == 0 && i + 1 < *argc) {
			v = argv[++i];
			continue;
		}
		if (strncmp(argv[i], "--log-format=", 13) == 0) {
			v = argv[i] + 13;
			continue;
		}
		argv[j++] = argv[i];
	}
	*argc = j;
	argv[j] = NULL;
	if (v && !log_format_parse(v, &f)) {
		cli_error("--log-format takes text or json, got '%.40s'", v);
		return false;
	}
	log_set_format(f);
	return true;
}

int kv_main(int argc, char **argv)
{
	const char *cmd;

	if (!take_log_format(&argc, argv))
		return KV_EXIT_USAGE;

	if (argc < 2) {
		main_usage(stderr);
		return KV_EXIT_USAGE;
	}
	cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		if (argc > 2 && strcmp(cmd, "help") == 0) {
			for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
				if (strcmp(commands[i].name, argv[2]) == 0)
					return cli_print_help(&commands[i]);
			cli_error("no command '%s' (see 'kvaudit --help')", argv[2]);
			return KV_EXIT_USAGE;
		}
		main_usage(stdout);
		return fflush(stdout) == 0 ? KV_EXIT_OK : KV_EXIT_USAGE;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("kvaudit %s\n", KVAUDIT_VERSION);
		return fflush(stdout) == 0 ? KV_EXIT_OK : KV_EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, cmd) == 0)
			return commands[i].run(argc - 1, argv + 1, &commands[i]);
	cli_error("unknown command '%s' (see 'kvaudit --help')", cmd);
	return KV_EXIT_USAGE;
}
