/*
 * auditcli.c - the audit options `kvaudit audit` and `kvaudit scan` share
 * (formats, output, fail-on, suppressions, baseline, config, rules) and the
 * one path from an estate to written reports and an exit code.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/cli/cli.h"
#include "audit/cli/cli_internal.h"
#include "audit/estate/facts.h"
#include "reports/report.h"

bool audit_cli_init(struct audit_cli *a, const char *source, int argc, char **argv, struct scope_opts *s)
{
	memset(a, 0, sizeof(*a));
	a->formats = "json";
	a->out = ".";
	a->ao.fail_on = SEV_LOW;
	a->ao.source = source;
	/* Errors name the file and where its name came from (config.c). */
	if (!cli_config_command(argc, argv, &a->cfg))
		return false;
	if (!a->cfg.doc)
		return true;
	a->formats = a->cfg.formats ? a->cfg.formats : a->formats;
	a->out = a->cfg.out ? a->cfg.out : a->out;
	if (a->cfg.fail_on)
		severity_parse(a->cfg.fail_on, &a->ao.fail_on);
	a->ao.include_pass = a->cfg.include_pass == 1;
	a->ao.include_skipped = a->cfg.include_skipped == 1;
	a->supp_path = a->cfg.suppressions;
	a->baseline_path = a->cfg.baseline;
	/* Checked when the file was read. */
	a->expiry_warning_set = a->cfg.expiry_warning && cli_parse_window(a->cfg.expiry_warning, &a->expiry_warning);
	for (size_t i = 0; i < a->cfg.rules.n; i++)
		strlist_add(&a->rules, a->cfg.rules.v[i]);
	if (s)
		cli_config_scope(&a->cfg, argc, argv, s);
	return true;
}

/* --expiry-warning, and the config file's expiryWarning (cli_internal.h). */
bool cli_parse_window(const char *s, long long *out)
{
	char *end;
	long long n;

	if (!s || *s < '0' || *s > '9')
		return false;
	n = strtoll(s, &end, 10);
	if (*end == 'h' && end[1] == '\0')
		n *= 3600;
	else if ((*end == 'd' && end[1] == '\0') || *end == '\0')
		n *= 86400;
	else
		return false;
	if (n < 0 || n > 3650LL * 86400)
		return false;
	*out = n;
	return true;
}

/* --as-of: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC). */
static bool parse_as_of(const char *s, long long *out)
{
	unsigned y, mo, d, h = 0, mi = 0, se = 0;
	int n = 0;

	if (!s || sscanf(s, "%4u-%2u-%2u%n", &y, &mo, &d, &n) != 3 || n != 10)
		return false;
	if (s[10] != '\0') {
		int m2 = 0;

		if (sscanf(s + 10, "T%2u:%2u:%2uZ%n", &h, &mi, &se, &m2) != 3 || m2 != 10 || s[20] != '\0')
			return false;
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return false;
	*out = kv_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	return true;
}

int audit_cli_option(struct audit_cli *a, const struct command *self, int opt)
{
	switch (opt) {
	case 'f': a->formats = optarg; break;
	case 'o': a->out = optarg; break;
	case 'F':
		if (!severity_parse(optarg, &a->ao.fail_on)) {
			cli_usage_error(self, "--fail-on takes info, low, medium, high or critical");
			return -1;
		}
		break;
	case 'P': a->ao.include_pass = true; break;
	case 'K': a->ao.include_skipped = true; break;
	case 'X': a->supp_path = optarg; break;
	case 'B': a->baseline_path = optarg; break;
	case 'C': break; /* read before the options: they override it */
	case 'r': strlist_add(&a->rules, optarg); break;
	case 'b': strlist_add(&a->sps, optarg); break;
	case 'W':
		if (!cli_parse_window(optarg, &a->expiry_warning)) {
			cli_usage_error(self, "--expiry-warning takes a duration such as 30d or 12h (at most 3650d)");
			return -1;
		}
		a->expiry_warning_set = true;
		break;
	case 'T':
		if (!parse_as_of(optarg, &a->as_of)) {
			cli_usage_error(self, "--as-of takes a UTC time: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
			return -1;
		}
		break;
	case 'q': a->quiet = true; break;
	case 'v': a->verbose = true; break;
	default: return 0;
	}
	return 1;
}

bool audit_cli_prepare(struct audit_cli *a, const struct command *self)
{
	struct kv_err err = {{0}};

	/* Validate the output request before any work, so a typo costs nothing. */
	if (!cli_formats_valid(self, a->formats) || !cli_load_catalog(&a->cat, &a->rules) ||
	    !cli_load_suppressions(a->supp_path, &a->cat, &a->supp, &a->ao))
		return false;
	if (a->baseline_path && !(a->baseline = cli_report_load(a->baseline_path, &a->baseline_arena, &err))) {
		cli_error("%s", err.msg);
		return false;
	}
	return true;
}

void audit_cli_estate_opts(const struct audit_cli *a, struct estate_opts *eo)
{
	memset(eo, 0, sizeof(*eo));
	eo->sp_overrides = a->sps.v;
	eo->nsp_overrides = a->sps.n;
	eo->as_of = a->as_of;
	eo->expiry_warning = a->expiry_warning;
	eo->expiry_warning_set = a->expiry_warning_set;
	eo->lean = true;   /* audit and scan read no raw JSON of the big lists (docs/performance.md) */
}

int audit_cli_report(struct audit_cli *a, struct estate *e)
{
	struct kv_err err = {{0}};
	struct report_rows rows = { NULL, facts_inventory_next_vm, e };
	struct fastjson_arena arenas[AUDIT_ARENAS];
	cJSON *report;
	char stamp[32];
	int rc = KV_EXIT_USAGE;

	/*
	 * The inventory's VM rows are most of a large report's nodes and only
	 * its JSON text shows them: made while it is written, one at a time.
	 */
	a->ao.inventory_rows_later = true;
	/* The findings too: one step frees them (audit.h), not a free() per node. */
	memset(arenas, 0, sizeof(arenas));
	a->ao.findings_arenas = arenas;
	report = audit_run(e, &a->cat, &a->ao);
	rows.array = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(report, "inventory"), "vms");
	cli_warn_expired(&a->supp);
	cli_scan_stamp(stamp, sizeof(stamp));
	if (!report_output_rows(report, &rows, a->formats, a->out, stamp, a->verbose ? stderr : NULL, &err)) {
		cli_error("%s", err.msg);
		goto out;
	}
	if (!a->quiet)
		report_write_summary(report, stderr, cli_use_color(), 5);
	rc = audit_exit_code(report, a->ao.fail_on);
	/* With a baseline, only new failures fail the run (an incomplete scan still says so). */
	if (a->baseline && rc != KV_EXIT_INCOMPLETE)
		rc = cli_baseline_alerts(a->baseline, report, a->ao.fail_on, a->quiet ? NULL : stderr) ? KV_EXIT_FINDINGS
		                                                                                      : KV_EXIT_OK;
out:
	cJSON_Delete(report);
	for (size_t i = 0; i < AUDIT_ARENAS; i++)
		fastjson_arena_free(&arenas[i]);
	a->ao.findings_arenas = NULL;
	return rc;
}

void audit_cli_release(struct audit_cli *a)
{
	fastjson_arena_free(&a->baseline_arena);
	cli_config_release(&a->cfg);
	suppressions_release(&a->supp);
	rule_catalog_release(&a->cat);
	free(a->rules.v);
	free(a->sps.v);
	memset(a, 0, sizeof(*a));
}
