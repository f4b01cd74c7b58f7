/*
 * fixcmd.c - the remediation commands: fix (plan, and with --apply make,
 * the grants Azure Backup needs) and rollback (undo what a journal says was
 * added).  The work is in audit/fix/fix.c; this file parses options, asks
 * for confirmation, prints and picks the exit code.
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
#include "audit/cli/cli.h"
#include "audit/cli/cli_internal.h"
#include "audit/estate/estate.h"
#include "audit/fix/fix.h"
#include "audit/util/log.h"

#define FIX_SCOPE_USAGE \
	"scope (the live read, and the connection used to apply):\n" \
	"  --subscription ID          only this subscription (repeatable)\n" \
	"  --all-subscriptions        every subscription the identity can read (the default)\n" \
	"  --cloud NAME|FILE          AzureCloud (default), AzureUSGovernment, AzureChinaCloud or a file\n" \
	"  --auth auto|env|msi|cli    credential source (default auto)\n" \
	"  --engine graph|arm         how the live read lists resources, as for 'kvaudit scan'\n" \
	"  --concurrency N            requests in flight at once in the live read, 1-256 (default 32)\n"

const char FIX_USAGE[] =
	"usage: kvaudit fix [scope | --estate FILE] [--rule ID]... [--vault NAME|ID]...\n"
	"                   [--apply [--yes]] [--journal FILE] [--rbac-role ID]\n"
	"                   [--include-vault-settings] [--suppressions FILE] [--config FILE]\n"
	"                   [--out FILE.json]\n"
	"\n"
	"Plan the access Azure Backup needs on each key vault with a failing finding, and with\n"
	"--apply make it: access-policy vaults get Backup Management Service's missing template\n"
	"permissions through accessPolicies/add (secrets get, list, backup where a BEK is kept; keys\n"
	"get, list, backup where a KEK is kept); RBAC vaults get one role assignment at the vault.\n"
	"Before each write the caller's permissions on the vault are checked.  Nothing else is\n"
	"touched.  Without --apply nothing is written.\n"
	"\n" FIX_SCOPE_USAGE
	"options:\n"
	"  --estate FILE              plan from a snapshot (apply still re-reads each vault live)\n"
	"  --rule ID                  only findings of this rule (repeatable)\n"
	"  --vault NAME|ID            only this vault (repeatable)\n"
	"  --apply                    make the changes (asks on a terminal; see --yes)\n"
	"  --yes                      do not ask (required when standard input is not a terminal)\n"
	"  --journal FILE             where writes are journaled first (default\n"
	"                             kvaudit-fix-<UTC time>.journal), JSON lines, mode 0600;\n"
	"                             locked while in use (one fix --apply or rollback at a time)\n"
	"  --rbac-role ID             role definition for RBAC vaults (default Key Vault Administrator,\n"
	"                             00482a5a-887f-4fb3-b363-3b7fe8e74483)\n"
	"  --include-vault-settings   also fix vault settings through a vault PATCH: enabledForDiskEncryption,\n"
	"                             and soft delete and purge protection, which are IRREVERSIBLE\n"
	"  --suppressions FILE        accepted risks: their findings plan no change (docs/suppressions.md)\n"
	"  --config FILE              take suppressions, rules, cloud, auth, subscriptions, engine and\n"
	"                             concurrency from FILE (default $KVAUDIT_CONFIG; docs/config.md)\n"
	"  --backup-sp-object-id TENANT=OID\n"
	"                             Backup Management Service's object ID in TENANT (repeatable)\n"
	"  --out FILE.json            the run as JSON: the plan and every change with before/after\n"
	"  -q, --quiet, -v, --verbose progress on stderr\n"
	"  -h, --help                 this help\n"
	"\n"
	"exit codes: 0 planned, or every vault applied, already compliant, skipped or suppressed,\n"
	"2 bad usage, or the journal is held by another applying fix or rollback, 4 some vault\n"
	"failed, 5 authentication failed\n";

const char ROLLBACK_USAGE[] =
	"usage: kvaudit rollback JOURNAL [--cloud NAME|FILE] [--auth METHOD] [--config FILE] [--yes]\n"
	"                        [--out FILE.json]\n"
	"\n"
	"Undo what a fix journal says was added, the last write first: remove exactly the permissions\n"
	"the fix added (spelt as the vault stores them), delete the role assignments it created and\n"
	"turn enabledForDiskEncryption off again where it turned it on (soft delete and purge\n"
	"protection cannot be turned off: they are reported as not reversible).\n"
	"Each vault is re-read first, so an interrupted run is undone as far as it got.  The rollback\n"
	"is journaled into JOURNAL too.  Only one applying fix or rollback may use a journal at a\n"
	"time: a second one is refused (exit 2) before it reads or changes anything.\n"
	"\n"
	"options:\n"
	"  --cloud, --auth            as for 'kvaudit scan'\n"
	"  --config FILE              take cloud and auth from FILE (default $KVAUDIT_CONFIG;\n"
	"                             docs/config.md): the connection the fix was made with\n"
	"  --yes                      do not ask (required when standard input is not a terminal)\n"
	"  --out FILE.json            the rollback as JSON\n"
	"  -q, --quiet, -v, --verbose progress on stderr\n"
	"  -h, --help                 this help\n"
	"\n"
	"exit codes: 0 undone (or nothing left to undo), 2 bad usage, a bad or busy journal,\n"
	"4 something could not be undone, 5 authentication failed\n";

enum {
	OPT_ESTATE = 2000, OPT_RULE, OPT_VAULT, OPT_APPLY, OPT_YES, OPT_JOURNAL, OPT_RBAC_ROLE, OPT_SETTINGS,
	OPT_OUT, OPT_BMS, OPT_SUPPRESSIONS, OPT_CONFIG,
};

/* Asks on the terminal; false unless the answer is y or yes. */
static bool confirm(const char *question)
{
	char line[32];

	fprintf(stderr, "%s [y/N] ", question);
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	line[strcspn(line, "\r\n")] = '\0';
	return kv_streq_ci(line, "y") || kv_streq_ci(line, "yes");
}

static bool is_guid(const char *s)
{
	static const char pattern[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (strlen(s) != sizeof(pattern) - 1)
		return false;
	for (size_t i = 0; pattern[i]; i++)
		if (pattern[i] == '-' ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	return true;
}

static const char *jstr(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static void print_perms(FILE *f, const cJSON *body)
{
	const cJSON *perms = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(body, "properties"),
		                                                    "accessPolicies"), 0), "permissions");
	const cJSON *cat, *p;

	cJSON_ArrayForEach(cat, perms) {
		bool first = true;

		fprintf(f, " %s ", cat->string);
		cJSON_ArrayForEach(p, cat) {
			fprintf(f, "%s%s", first ? "" : ",", cJSON_IsString(p) ? p->valuestring : "?");
			first = false;
		}
	}
}

static void print_settings(FILE *f, const cJSON *set)
{
	const cJSON *p;

	fprintf(f, " settings");
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(set, "request"),
	                                                      "properties"))
		fprintf(f, " %s=true%s", p->string, fix_setting_reversible(p->string) ? "" : " (irreversible)");
}

static void run_id(char *out, size_t n)
{
	char stamp[32];

	cli_scan_stamp(stamp, sizeof(stamp));
	snprintf(out, n, "%s-%ld", stamp, (long)getpid());
}

static cJSON *summary_of(const cJSON *results, int *failed)
{
	cJSON *s = cJSON_CreateObject();
	const cJSON *r;

	*failed = 0;
	cJSON_ArrayForEach(r, results) {
		const char *st = jstr(r, "status");
		cJSON *n = cJSON_GetObjectItemCaseSensitive(s, st);

		if (n)
			cJSON_SetNumberValue(n, n->valuedouble + 1);
		else
			cJSON_AddNumberToObject(s, st, 1);
		if (strcmp(st, "failed") == 0)
			(*failed)++;
	}
	return s;
}

/* --out FILE.json (if given) and the printed lines: rc, or the usage code when either cannot be written. */
static int write_run(const char *out, const cJSON *run, int rc)
{
	struct kv_err err = {{0}};

	if (out && !cli_write_private_json(out, run, &err)) {
		cli_error("%s", err.msg);
		if (rc == KV_EXIT_OK)
			rc = KV_EXIT_USAGE;
	}
	if (fflush(stdout) != 0 && rc == KV_EXIT_OK)
		rc = KV_EXIT_USAGE;
	return rc;
}

/*
 * fix_journal_open (locked: a second run of the same journal is refused,
 * exit 2), saying so when an incomplete last line had to be removed; errors
 * printed.
 */
static bool open_journal(struct fix_journal *j, const char *path, bool create)
{
	struct kv_err err = {{0}};

	if (!fix_journal_open(j, path, create, &err)) {
		cli_error("%s", err.msg);
		return false;
	}
	if (j->cut)
		log_line(stderr, "warning", NULL, "%s: its incomplete last line (%zu bytes, from a run interrupted "
		         "mid-write or a full disk; no write was sent for it) was removed before appending", path, j->cut);
	return true;
}

/* The options of fix and rollback (rollback's table has only --yes and --out of them). */
struct fix_args {
	const char *estate, *supp, *journal, *out;
	struct strlist rules, vaults, sps;
	bool apply, yes;
	struct fix_plan_opts *po;
};

static int fix_option(void *ctx, const struct command *self, int opt)
{
	struct fix_args *a = ctx;

	(void)self;
	switch (opt) {
	case OPT_ESTATE: a->estate = optarg; break;
	case OPT_SUPPRESSIONS: a->supp = optarg; break;
	case OPT_CONFIG: break; /* read before the options: they override it */
	case OPT_RULE: strlist_add(&a->rules, optarg); break;
	case OPT_VAULT: strlist_add(&a->vaults, optarg); break;
	case OPT_APPLY: a->apply = true; break;
	case OPT_YES: a->yes = true; break;
	case OPT_JOURNAL: a->journal = optarg; break;
	case OPT_RBAC_ROLE: a->po->rbac_role = optarg; break;
	case OPT_SETTINGS: a->po->include_vault_settings = true; break;
	case OPT_BMS: strlist_add(&a->sps, optarg); break;
	case OPT_OUT: a->out = optarg; break;
	default: return 0;
	}
	return 1;
}

int cmd_fix(int argc, char **argv, const struct command *self)
{
	static const struct option opts[] = {
		SCOPE_OPTIONS,
		{"estate", required_argument, NULL, OPT_ESTATE},
		{"rule", required_argument, NULL, OPT_RULE},
		{"vault", required_argument, NULL, OPT_VAULT},
		{"apply", no_argument, NULL, OPT_APPLY},
		{"yes", no_argument, NULL, OPT_YES},
		{"journal", required_argument, NULL, OPT_JOURNAL},
		{"rbac-role", required_argument, NULL, OPT_RBAC_ROLE},
		{"include-vault-settings", no_argument, NULL, OPT_SETTINGS},
		{"backup-sp-object-id", required_argument, NULL, OPT_BMS},
		{"out", required_argument, NULL, OPT_OUT},
		{"suppressions", required_argument, NULL, OPT_SUPPRESSIONS},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"engine", required_argument, NULL, OPT_ENGINE},
		{"concurrency", required_argument, NULL, OPT_CONCURRENCY},
		COMMON_OPTIONS,
	};
	struct scope_opts s;
	struct fix_plan_opts po;
	struct cli_config cfg;
	struct suppressions supp;
	struct fix_args a = {.po = &po};
	struct strlist rule_dirs = {0};
	struct estate_opts eo = {0};
	struct rule_catalog cat = {0};
	struct audit_opts ao = {.fail_on = SEV_LOW};
	struct estate *e = NULL;
	struct kv_err err = {{0}};
	struct fix_journal j = {.fd = -1};
	struct cli_live *live = NULL;
	cJSON *doc = NULL, *report = NULL, *plan = NULL, *results = NULL, *run = NULL;
	char *deflt_journal = NULL, rid[64];
	int rc = KV_EXIT_USAGE, actionable = 0, failed = 0;
	bool made_journal = false;
	struct stat jst;

	memset(&s, 0, sizeof(s));
	memset(&po, 0, sizeof(po));
	memset(&supp, 0, sizeof(supp));
	/*
	 * The config file a scheduled scan uses (--config or $KVAUDIT_CONFIG), so
	 * that fix honours the same accepted risks; flags override it.
	 */
	if (!cli_config_command(argc, argv, &cfg))
		goto out;
	if (cfg.doc) {
		a.supp = cfg.suppressions;
		for (size_t i = 0; i < cfg.rules.n; i++)
			strlist_add(&rule_dirs, cfg.rules.v[i]);
		/* The live read as the scan reads it (engine, concurrency, ...); fix plans no data-plane change. */
		cli_config_scope(&cfg, argc, argv, &s);
		s.data_plane = false;
	}
	if ((rc = cli_parse_options(self, argc, argv, ":qvh", opts, &s, fix_option, &a)) >= 0)
		goto out;
	rc = KV_EXIT_USAGE;
	if (optind != argc) {
		rc = cli_usage_error(self, "fix takes no positional arguments (a snapshot goes with --estate FILE)");
		goto out;
	}
	if (a.apply && !a.yes && !isatty(STDIN_FILENO)) {
		rc = cli_usage_error(self, "refusing to apply: standard input is not a terminal to confirm on; "
		                           "pass --yes to apply without asking");
		goto out;
	}
	if (s.data_plane) {
		rc = cli_usage_error(self, "fix does not take --data-plane");
		goto out;
	}
	/*
	 * Every option is checked whatever the mode: with --estate the scope
	 * options are not used for a read (--cloud and --auth still are, by
	 * --apply), but a bad one is still a mistake to report.
	 */
	if ((rc = cli_scope_check(self, &s)) != KV_EXIT_OK)
		goto out;
	rc = KV_EXIT_USAGE;
	if (po.rbac_role && !(po.rbac_role[0] == '/' && strstr(po.rbac_role, "/roleDefinitions/")) &&
	    !is_guid(po.rbac_role)) {
		rc = cli_usage_error(self, "--rbac-role takes a role definition GUID or its full ID");
		goto out;
	}
	if (!cli_load_catalog(&cat, &rule_dirs) || !cli_load_suppressions(a.supp, &cat, &supp, &ao))
		goto out;
	for (size_t i = 0; i < a.rules.n; i++)
		if (!rule_catalog_find(&cat, a.rules.v[i])) {
			char msg[160];

			snprintf(msg, sizeof(msg), "--rule: no rule '%.64s' (see 'kvaudit rules list')", a.rules.v[i]);
			rc = cli_usage_error(self, msg);
			goto out;
		}
	/*
	 * The journal's lock before the live read: a second fix --apply of the
	 * same journal exits 2 at once, not after a read and a confirmation.
	 */
	if (a.apply) {
		if (!a.journal)
			a.journal = deflt_journal = cli_default_name("fix", ".journal");
		made_journal = access(a.journal, F_OK) != 0 && errno == ENOENT;
		if (!open_journal(&j, a.journal, true))
			goto out;
	}
	eo.sp_overrides = a.sps.v;
	eo.nsp_overrides = a.sps.n;
	if (a.estate) {
		e = estate_load(a.estate, &eo, &err);
		ao.source = a.estate;
	} else {
		if ((rc = cli_live_estate(self, &s, &eo, &doc, &e)) != KV_EXIT_OK)
			goto out;
		rc = KV_EXIT_USAGE;
		ao.source = "live";
	}
	if (!e) {
		cli_error("%s", err.msg);
		goto out;
	}
	report = audit_run(e, &cat, &ao);
	cli_warn_expired(&supp);
	po.rules = a.rules.v;
	po.nrules = a.rules.n;
	po.vaults = a.vaults.v;
	po.nvaults = a.vaults.n;
	po.subscriptions = s.subs.v;
	po.nsubscriptions = s.subs.n;
	plan = fix_plan(report, e, &po);
	fix_plan_print(plan, stdout);
	fflush(stdout);
	run_id(rid, sizeof(rid));
	run = cJSON_CreateObject();
	cJSON_AddStringToObject(run, "kind", "kvaudit.fix");
	cJSON_AddNumberToObject(run, "version", 1);
	cJSON_AddStringToObject(run, "run", rid);
	cJSON_AddStringToObject(run, "mode", a.apply ? "apply" : "plan");
	cJSON_AddStringToObject(run, "source", ao.source);
	cJSON_AddItemToObject(run, "plan", cJSON_Duplicate(plan, true));
	{
		const cJSON *it;

		cJSON_ArrayForEach(it, plan)
			if (fix_item_actionable(it))
				actionable++;
	}
	if (!a.apply) {
		if (actionable)
			printf("plan only: nothing was changed (add --apply to make these changes)\n");
		cJSON_AddNullToObject(run, "journal");
		cJSON_AddNullToObject(run, "results");
		rc = KV_EXIT_OK;
		goto report;
	}
	if (actionable == 0) {
		printf("nothing to change: no vault needs a grant\n");
		cJSON_AddNullToObject(run, "journal");
		cJSON_AddItemToObject(run, "results", cJSON_CreateArray());
		rc = KV_EXIT_OK;
		goto report;
	}
	if (!a.yes) {
		char q[128];

		snprintf(q, sizeof(q), "kvaudit: apply these changes to %d vault(s)?", actionable);
		if (!confirm(q)) {
			printf("not applied: nothing was changed\n");
			rc = KV_EXIT_OK;
			cJSON_AddNullToObject(run, "journal");
			cJSON_AddNullToObject(run, "results");
			goto report;
		}
	}
	live = cli_live_open(self, &s, &rc);
	if (!live)
		goto out;
	cJSON_AddStringToObject(run, "journal", a.journal);
	results = cJSON_AddArrayToObject(run, "results");
	{
		struct fix_ctx ctx = {cli_live_client(live), &j, rid, s.quiet ? NULL : s.verbose ? stderr : NULL, false};
		const cJSON *it;
		int changed = 0;
		cJSON *sum;

		cJSON_ArrayForEach(it, plan) {
			cJSON *r = fix_apply_item(&ctx, it);
			const char *st = jstr(r, "status");

			if (strcmp(st, "applied") == 0) {
				const cJSON *set = cJSON_GetObjectItemCaseSensitive(r, "settings");

				changed++;
				printf("vault %s: applied", jstr(r, "name"));
				if (strcmp(jstr(r, "kind"), "access-policy") == 0)
					print_perms(stdout, cJSON_GetObjectItemCaseSensitive(r, "change"));
				else if (strcmp(jstr(r, "kind"), "role-assignment") == 0)
					printf(" role assignment");
				if (kv_streq_ci(jstr(set, "status"), "applied"))
					print_settings(stdout, set);
				printf(" (verified)\n");
			} else if (strcmp(st, "suppressed") == 0) {
				printf("vault %s: suppressed findings only, nothing changed\n", jstr(r, "name"));
			} else if (strcmp(st, "already-compliant") == 0) {
				printf("vault %s: already compliant, nothing changed\n", jstr(r, "name"));
			} else {
				printf("%s: %s\n", st, jstr(r, "error") ? jstr(r, "error") : jstr(r, "name"));
				if (strcmp(st, "failed") == 0)
					cli_error("%s", jstr(r, "error") ? jstr(r, "error") : "failed");
			}
			cJSON_AddItemToArray(results, r);
		}
		sum = summary_of(results, &failed);
		cJSON_AddItemToObject(run, "summary", sum);
		if (changed == 0 && failed == 0)
			printf("nothing changed: every vault was already compliant or skipped\n");
		printf("journal: %s\n", a.journal);
		rc = ctx.auth_failed ? KV_EXIT_AUTH : failed ? KV_EXIT_FIX : KV_EXIT_OK;
	}
report:
	rc = write_run(a.out, run, rc);
out:
	cli_live_close(live);
	/* A journal this run made before its read, then did not apply anything with, is not left behind. */
	if (made_journal && !results && j.fd >= 0 && fstat(j.fd, &jst) == 0 && jst.st_size == 0)
		(void)unlink(a.journal);
	fix_journal_close(&j);
	cJSON_Delete(run);
	cJSON_Delete(plan);
	cJSON_Delete(report);
	cJSON_Delete(doc);
	estate_free(e);
	rule_catalog_release(&cat);
	free(deflt_journal);
	free(a.rules.v);
	free(a.vaults.v);
	free(a.sps.v);
	free(rule_dirs.v);
	free(s.subs.v);
	suppressions_release(&supp);
	cli_config_release(&cfg);
	return rc;
}

int cmd_rollback(int argc, char **argv, const struct command *self)
{
	static const struct option opts[] = {
		{"cloud", required_argument, NULL, OPT_CLOUD},
		{"auth", required_argument, NULL, OPT_AUTH},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"yes", no_argument, NULL, OPT_YES},
		{"out", required_argument, NULL, OPT_OUT},
		COMMON_OPTIONS,
	};
	struct scope_opts s;
	struct cli_config cfg;
	struct fix_args a = {0};
	const char *path;
	struct kv_err err = {{0}};
	struct fix_journal j = {.fd = -1};
	struct cli_live *live = NULL;
	cJSON *entries = NULL, *run = NULL, *results;
	char rid[64];
	size_t torn = 0;
	int rc = KV_EXIT_USAGE, writes = 0, failed = 0;
	const cJSON *e;

	memset(&s, 0, sizeof(s));
	/*
	 * The connection the fix was made with: a scheduled fix takes its cloud
	 * and auth from the config file, and so does its rollback.  The rest of
	 * the file (what to read, what to report) does not apply: the journal
	 * names every vault.
	 */
	if (!cli_config_command(argc, argv, &cfg))
		goto out;
	s.cloud = cfg.cloud;
	s.auth = cfg.auth;
	if ((rc = cli_parse_options(self, argc, argv, ":qvh", opts, &s, fix_option, &a)) >= 0)
		goto out;
	rc = KV_EXIT_USAGE;
	if (argc - optind != 1) {
		rc = cli_usage_error(self, argc - optind == 0 ? "a journal file is required"
		                                          : "exactly one journal file is expected");
		goto out;
	}
	path = argv[optind];
	if (!a.yes && !isatty(STDIN_FILENO)) {
		rc = cli_usage_error(self, "refusing to roll back: standard input is not a terminal to confirm on; "
		                           "pass --yes to roll back without asking");
		goto out;
	}
	if ((rc = cli_scope_check(self, &s)) != KV_EXIT_OK)
		goto out;
	rc = KV_EXIT_USAGE;
	/* Locked before it is read: what is undone is what the journal holds, not what a running fix adds next. */
	if (!open_journal(&j, path, false))
		goto out;
	/* Safe to go on: nothing is sent before its intent line is whole, so no write is lost with it. */
	if (j.cut)
		log_line(stderr, "warning", NULL, "%s: line %zu is incomplete (a run interrupted mid-write, or a full disk) "
		         "and is ignored: no write was sent for it; the complete entries before it are undone", path,
		         j.cut_line);
	if (!(entries = fix_journal_read(path, &torn, &err))) {
		cli_error("%s", err.msg);
		goto out;
	}
	cJSON_ArrayForEach(e, entries)
		if (kv_streq_ci(jstr(e, "phase"), "intent") &&
		    (kv_streq_ci(jstr(e, "type"), "grant") || kv_streq_ci(jstr(e, "type"), "role") ||
		     kv_streq_ci(jstr(e, "type"), "settings")))
			writes++;
	if (writes == 0) {
		printf("%s: the journal records no write: nothing to roll back\n", path);
		rc = KV_EXIT_OK;
		goto out;
	}
	printf("%s: %d write(s) to undo, the last first\n", path, writes);
	if (!a.yes) {
		char q[128];

		snprintf(q, sizeof(q), "kvaudit: undo %d write(s)?", writes);
		if (!confirm(q)) {
			printf("not rolled back: nothing was changed\n");
			rc = KV_EXIT_OK;
			goto out;
		}
	}
	live = cli_live_open(self, &s, &rc);
	if (!live)
		goto out;
	run_id(rid, sizeof(rid));
	run = cJSON_CreateObject();
	cJSON_AddStringToObject(run, "kind", "kvaudit.rollback");
	cJSON_AddNumberToObject(run, "version", 1);
	cJSON_AddStringToObject(run, "run", rid);
	cJSON_AddStringToObject(run, "journal", path);
	results = cJSON_AddArrayToObject(run, "results");
	{
		struct fix_ctx ctx = {cli_live_client(live), &j, rid, s.quiet ? NULL : s.verbose ? stderr : NULL, false};
		const cJSON *r;

		fix_rollback(&ctx, entries, results);
		cJSON_ArrayForEach(r, results) {
			const char *st = jstr(r, "status");

			const cJSON *nr = cJSON_GetObjectItemCaseSensitive(r, "notReversible"), *x;

			if (strcmp(st, "rolled-back") == 0)
				printf("vault %s: rolled back %s\n", jstr(r, "name"),
				       strcmp(jstr(r, "kind"), "role-assignment") == 0 ? "(role assignment deleted)" :
				       strcmp(jstr(r, "kind"), "settings") == 0 ? "(enabledForDiskEncryption turned off)" :
				       "(added permissions removed)");
			else if (strcmp(st, "nothing-to-undo") == 0)
				printf("vault %s: nothing to undo\n", jstr(r, "name"));
			else if (strcmp(st, "failed") == 0)
				cli_error("%s", jstr(r, "error") ? jstr(r, "error") : "failed");
			cJSON_ArrayForEach(x, nr)
				printf("vault %s: %s=true not reversible: Azure never lets it be turned off again (left on)\n",
				       jstr(r, "name"), cJSON_IsString(x) ? x->valuestring : "?");
		}
		cJSON_AddItemToObject(run, "summary", summary_of(results, &failed));
		rc = ctx.auth_failed ? KV_EXIT_AUTH : failed ? KV_EXIT_FIX : KV_EXIT_OK;
	}
	rc = write_run(a.out, run, rc);
out:
	cli_live_close(live);
	fix_journal_close(&j);
	cJSON_Delete(run);
	cJSON_Delete(entries);
	free(s.subs.v);
	cli_config_release(&cfg);
	return rc;
}
