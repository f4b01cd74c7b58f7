/* cli_internal.h - what the command files of audit/cli share (not a public API). */
#ifndef KVAUDIT_CLI_INTERNAL_H
#define KVAUDIT_CLI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "audit/audit.h"
#include "audit/estate/estate.h"
#include "audit/suppress.h"
#include "audit/util/fastjson.h"
#include "rules/engine.h"

struct command {
	const char *name, *summary, *usage;
	int (*run)(int argc, char **argv, const struct command *self);
};

/* A repeatable option's values (borrowed from argv). */
struct strlist {
	const char **v;
	size_t n;
};

void strlist_add(struct strlist *l, const char *s);

/* One line on stderr: "kvaudit: <message>". */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "kvaudit: <what> (see 'kvaudit <cmd> --help')"; returns the usage exit code. */
int cli_usage_error(const struct command *c, const char *what);
/* Reports getopt's unknown option or missing value; returns the usage exit code. */
int cli_bad_option(const struct command *c, char **argv, int opt);
int cli_print_help(const struct command *c);
/* Built-in catalog plus --rules directories; prints the error and returns false on failure. */
bool cli_load_catalog(struct rule_catalog *cat, const struct strlist *dirs);
/* Checks a comma-separated --format list against the report formats. */
bool cli_formats_valid(const struct command *c, const char *formats);
bool cli_use_color(void);
/* --suppressions: loads path (NULL: none) into out and points ao at it; prints the error. */
bool cli_load_suppressions(const char *path, const struct rule_catalog *cat, struct suppressions *out,
                           struct audit_opts *ao);
/* One warning line per expired suppression that matched a finding. */
void cli_warn_expired(const struct suppressions *s);
/* "20261128T120000Z" */
void cli_scan_stamp(char *out, size_t n);

/* The scope of a live read (--subscription, --cloud, --auth, --data-plane). */
struct scope_opts {
	const char *cloud, *auth;
	struct strlist subs;
	bool data_plane, verbose, quiet, any;   /* any: some scope option was given */
	const char *engine, *shard;             /* collect and scan: --engine, --shard K/N */
	const char *concurrency;                /* collect and scan: --concurrency N */
	const char *since;                      /* collect and scan: --since DURATION (backup jobs) */
};

enum { OPT_SUB = 1000, OPT_ALL, OPT_CLOUD, OPT_AUTH, OPT_DATA_PLANE, OPT_ENGINE, OPT_SHARD, OPT_CONCURRENCY,
       OPT_SINCE };

#define SCOPE_OPTIONS \
	{"subscription", required_argument, NULL, OPT_SUB}, \
	{"all-subscriptions", no_argument, NULL, OPT_ALL}, \
	{"cloud", required_argument, NULL, OPT_CLOUD}, \
	{"auth", required_argument, NULL, OPT_AUTH}, \
	{"data-plane", no_argument, NULL, OPT_DATA_PLANE}

/* -q, -v, -h and the end of an option table (cli_parse_options handles them). */
#define COMMON_OPTIONS \
	{"quiet", no_argument, NULL, 'q'}, \
	{"verbose", no_argument, NULL, 'v'}, \
	{"help", no_argument, NULL, 'h'}, \
	{NULL, 0, NULL, 0}

/* collect and scan only: how the estate is read and which part of it. */
#define COLLECT_OPTIONS \
	{"engine", required_argument, NULL, OPT_ENGINE}, \
	{"shard", required_argument, NULL, OPT_SHARD}, \
	{"concurrency", required_argument, NULL, OPT_CONCURRENCY}, \
	{"since", required_argument, NULL, OPT_SINCE}

/* Handles a scope option; false when opt is not one. */
bool cli_scope_option(struct scope_opts *s, int opt);
/*
 * Checks every scope option s holds (auth, subscriptions, since, engine,
 * shard, concurrency, the cloud name or file), whether or not the mode the
 * command runs in uses it: an option is either rejected or valid.  Returns
 * 0, or the usage code after printing one line.
 */
int cli_scope_check(const struct command *self, const struct scope_opts *s);

struct option; /* <getopt.h> */
/* A command's own options (optarg holds the value): 1 handled, 0 not one of them, -1 a usage error, printed. */
typedef int (*cli_option_fn)(void *ctx, const struct command *self, int opt);

/*
 * The one getopt_long loop of the commands (opterr off: our messages).  The
 * scope options go into s (when not NULL), then own (may be NULL) sees each
 * option; -q and -v set s's quiet and verbose, -h prints the help.  Returns
 * -1 when argv was read to the end (optind: the first operand), else the
 * exit code to return now: 0 after -h, the usage code after an unknown
 * option, a missing value or own's -1.
 */
int cli_parse_options(const struct command *self, int argc, char **argv, const char *shortopts,
                      const struct option *opts, struct scope_opts *s, cli_option_fn own, void *ctx);

/* "kvaudit-<what>-<UTC time><ext>": a default output file name (caller frees). */
char *cli_default_name(const char *what, const char *ext);
/* Reads the estate live per s; returns an exit code and, on 0, *doc (a kvaudit.estate). */
int cli_live_collect(const struct command *self, const struct scope_opts *s, cJSON **doc);
/*
 * cli_live_collect, then the estate of what it read ("collected estate",
 * loaded with eo from the tree: estate_from_doc); returns an exit code
 * (errors printed) and, on 0, *e, which owns the kvaudit.estate (e->doc).
 * *doc is that kvaudit.estate only when the collection succeeded but could
 * not be loaded (the caller frees it), else NULL.
 */
int cli_live_estate(const struct command *self, const struct scope_opts *s, const struct estate_opts *eo,
                    cJSON **doc, struct estate **e);

/* A live connection (cloud, HTTP client, credential) for commands that write (fix, rollback). */
struct cli_live;
struct az_client;
/* NULL with *rc the exit code (usage or auth) when it cannot be set up. */
struct cli_live *cli_live_open(const struct command *self, const struct scope_opts *s, int *rc);
struct az_client *cli_live_client(struct cli_live *cl);
void cli_live_close(struct cli_live *cl);

/*
 * Loads a saved kvaudit.report (version 1) into arena (fastjson.h: a tree
 * to read, never to cJSON_Delete; fastjson_arena_free frees it, also after
 * a failure); NULL with one line in err naming the file and what is wrong
 * (reportcmd.c).
 */
cJSON *cli_report_load(const char *path, struct fastjson_arena *arena, struct kv_err *err);
/* Where cJSON stops in text that fastjson rejected (they reject alike): an error's byte offset. */
size_t cli_json_error_offset(const char *data, size_t len);
int cmd_diff(int argc, char **argv, const struct command *self);
/*
 * --baseline: the number of failing findings of report that are new against
 * baseline and at or above fail_on; one summary line to out (may be NULL).
 */
int cli_baseline_alerts(const cJSON *baseline, const cJSON *report, enum severity fail_on, FILE *out);
extern const char DIFF_USAGE[];
/* kvaudit merge (mergecmd.c): estates or reports of --shard workers into one. */
int cmd_merge(int argc, char **argv, const struct command *self);
extern const char MERGE_USAGE[];

/* --config FILE / $KVAUDIT_CONFIG (config.c): defaults that command-line flags override. */
struct cli_config {
	const char *cloud, *auth, *formats, *out, *fail_on, *suppressions, *baseline;
	const char *since;                   /* scan: --since (Azure Backup jobs), or NULL */
	const char *engine, *concurrency;    /* scan: --engine, --concurrency (validated), or NULL */
	const char *expiry_warning;          /* audit and scan: --expiry-warning (validated), or NULL */
	int data_plane, include_pass, include_skipped; /* -1 unset, else 0/1 */
	struct strlist subscriptions, rules;
	cJSON *doc;                          /* owns the strings above */
	char **owned;
	size_t nowned;
};

/* --expiry-warning: N, Nd (days) or Nh (hours), at most 3650 days, into seconds (auditcli.c). */
bool cli_parse_window(const char *s, long long *out);

bool cli_config_load(const char *path, struct cli_config *c, struct kv_err *err);
void cli_config_release(struct cli_config *c);
/*
 * A config's scope keys (subscriptions, cloud, auth, dataPlane, since, engine,
 * concurrency) as the defaults of s, for scan, collect and fix: flags parsed
 * afterwards win, and --subscription on the command line replaces the list.
 */
void cli_config_scope(const struct cli_config *c, int argc, char **argv, struct scope_opts *s);
/*
 * The config of --config or $KVAUDIT_CONFIG into c (zeroed when none, or
 * with --help); false: one line printed, naming the file and where its name
 * came from.
 */
bool cli_config_command(int argc, char **argv, struct cli_config *c);
bool cli_argv_has(int argc, char **argv, const char *option);
int cmd_config(int argc, char **argv, const struct command *self);
extern const char CONFIG_USAGE[];

/* Writes doc as JSON to path through a temporary file renamed into place, mode 0600, fsync'd. */
bool cli_write_private_json(const char *path, const cJSON *doc, struct kv_err *err);

/* The audit options shared by `audit` and `scan` (auditcli.c). */
struct audit_cli {
	const char *formats, *out, *supp_path, *baseline_path;
	struct audit_opts ao;
	struct strlist rules, sps;
	struct cli_config cfg;
	struct suppressions supp;
	struct rule_catalog cat;
	cJSON *baseline;                     /* in baseline_arena (cli_report_load) */
	struct fastjson_arena baseline_arena;
	bool quiet, verbose;
	long long as_of, expiry_warning;     /* --as-of (0: now), --expiry-warning in seconds */
	bool expiry_warning_set;
};

#define AUDIT_OPTIONS \
	{"format", required_argument, NULL, 'f'}, \
	{"out", required_argument, NULL, 'o'}, \
	{"fail-on", required_argument, NULL, 'F'}, \
	{"include-pass", no_argument, NULL, 'P'}, \
	{"include-skipped", no_argument, NULL, 'K'}, \
	{"suppressions", required_argument, NULL, 'X'}, \
	{"baseline", required_argument, NULL, 'B'}, \
	{"config", required_argument, NULL, 'C'}, \
	{"rules", required_argument, NULL, 'r'}, \
	{"backup-sp-object-id", required_argument, NULL, 'b'}, \
	{"expiry-warning", required_argument, NULL, 'W'}, \
	{"as-of", required_argument, NULL, 'T'}, \
	{"quiet", no_argument, NULL, 'q'}, \
	{"verbose", no_argument, NULL, 'v'}

/* Defaults, then --config / $KVAUDIT_CONFIG (its scope into s when s is not NULL); prints errors. */
bool audit_cli_init(struct audit_cli *a, const char *source, int argc, char **argv, struct scope_opts *s);
/* 1: opt was an audit option; 0: not one; -1: a usage error, already printed. */
int audit_cli_option(struct audit_cli *a, const struct command *self, int opt);
/* Checks the formats and loads the catalog, suppressions and baseline, before any work. */
bool audit_cli_prepare(struct audit_cli *a, const struct command *self);
void audit_cli_estate_opts(const struct audit_cli *a, struct estate_opts *eo);
/* Audits e, writes the reports and the summary; returns the exit code. */
int audit_cli_report(struct audit_cli *a, struct estate *e);
void audit_cli_release(struct audit_cli *a);

/* The live commands (live.c). */
int cmd_collect(int argc, char **argv, const struct command *self);
int cmd_scan(int argc, char **argv, const struct command *self);
int cmd_whoami(int argc, char **argv, const struct command *self);
extern const char COLLECT_USAGE[], SCAN_USAGE[], WHOAMI_USAGE[];

/* kvaudit report (reportcmd.c): render a saved kvaudit.report in other formats. */
int cmd_report(int argc, char **argv, const struct command *self);
extern const char REPORT_USAGE[];

/* Remediation (fixcmd.c). */
int cmd_fix(int argc, char **argv, const struct command *self);
int cmd_rollback(int argc, char **argv, const struct command *self);
extern const char FIX_USAGE[], ROLLBACK_USAGE[];

#endif
