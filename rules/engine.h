/*
 * engine.h - rules as data and the engine that judges a facts object.
 *
 * A rule file (docs/rules.md) is one JSON object:
 *   { "id": "KVA-BKP-001", "title": "...", "severity": "high",
 *     "subject": "vm|vault|binding|tenant",
 *     "when":    <condition>,          optional: the rule applies only where it holds
 *     "require": <condition>,          the rule passes where it holds, fails elsewhere
 *     "message": "... {{missing}} ... {{vault.name}} ...",
 *     "passMessage": "...",            optional
 *     "remediation": { "text": "...", "fix": "grant-backup-access" | ... },
 *     "references": [ "https://..." ] }
 * A condition is { "all": [c...] } | { "any": [c...] } | { "not": c } |
 *   { "fact": "<path>", "<op>": <value> } with op one of
 *   eq ne in not_in contains superset subset regex exists gt lt.
 * String comparisons are ASCII case-insensitive (Azure names, IDs and
 * permission names are), except regex, which follows its own pattern.
 * Conditions use three-valued logic: a fact under an "$unavailable" prefix
 * of the facts object (see facts.h) makes its leaf unknown, carrying that
 * entry's status (error or skipped) and reason; all() is false if any child
 * is false, any() is true if any child is true, otherwise unknown wins.
 */
#ifndef KVAUDIT_ENGINE_H
#define KVAUDIT_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "audit/estate/facts.h"
#include "audit/util/util.h"

enum severity { SEV_INFO = 0, SEV_LOW, SEV_MEDIUM, SEV_HIGH, SEV_CRITICAL };
enum finding_status {
	ST_PASS = 0,
	ST_FAIL,
	ST_ERROR,        /* a fact could not be read: never a pass */
	ST_SKIPPED,      /* a fact was not collected */
	ST_SUPPRESSED,
	ST_NOT_APPLICABLE, /* "when" is false: no finding at all */
};

const char *severity_name(enum severity s);            /* "info" ... "critical" */
bool severity_parse(const char *s, enum severity *out); /* case-insensitive */
const char *status_name(enum finding_status s);         /* "pass", "fail", ... */

struct cond;   /* a compiled condition (engine.c) */

struct rule {
	char *id, *title, *message, *pass_message, *source;  /* source: "builtin" or a file path */
	enum severity severity;
	enum subject_kind subject;
	struct cond *when;       /* NULL: always applies */
	struct cond *require;
	cJSON *json;             /* the whole rule file (remediation, references, ...) owned */
};

struct rule_catalog {
	struct rule *rules;
	size_t n;
};

/*
 * Parses and compiles one rule from JSON text.  name (a file path) is used
 * in messages.  On error returns false with err naming the file, the JSON
 * path and the problem: bad JSON, missing or mistyped field, unknown
 * subject, severity, operator or fact (a fact must be registered in facts.h
 * for the rule's subject), a PCRE2 pattern that does not compile (with its
 * offset), a value of the wrong type for the operator.
 */
bool rule_parse(const char *text, size_t len, const char *name, struct rule *out, struct kv_err *err);
void rule_release(struct rule *r);

/* Loads the built-in catalog.  False only if an embedded rule is invalid (a build bug). */
bool rule_catalog_load_builtin(struct rule_catalog *cat, struct kv_err *err);
/*
 * Adds every *.json file of dir (sorted by name).  A rule whose ID is already
 * in the catalog is an error.  On error the catalog is left as it was.
 */
bool rule_catalog_load_dir(struct rule_catalog *cat, const char *dir, struct kv_err *err);
/*
 * Validates every *.json in dir without keeping them; prints one line per
 * problem to out and returns the number of invalid files (0: all good).
 * A directory that cannot be read counts as one problem.
 */
int rule_catalog_check_dir(const char *dir, FILE *out);
const struct rule *rule_catalog_find(const struct rule_catalog *cat, const char *id);
void rule_catalog_release(struct rule_catalog *cat);

/* What one rule says about one subject. */
struct rule_outcome {
	enum finding_status status;
	char *message;           /* rendered message (fail: message; pass: passMessage or title; error/skipped: the reason) */
	char *reason;            /* error/skipped: the "$unavailable" reason; NULL otherwise */
	cJSON *evidence;         /* {"<path>": value, ...} every fact the rule read; owned */
	cJSON *missing;          /* superset failures: the required items absent from the fact; owned, may be NULL */
};

/* Evaluates rule r against facts.  Never fails; ST_NOT_APPLICABLE when "when" is false. */
void rule_evaluate(const struct rule *r, const cJSON *facts, struct rule_outcome *out);
/*
 * The same judgement without the details: status and, for error and
 * skipped, reason; message, evidence and missing stay NULL.  For a finding
 * that is only counted; rule_evaluate gives the same status with details.
 */
void rule_judge(const struct rule *r, const cJSON *facts, struct rule_outcome *out);
void rule_outcome_release(struct rule_outcome *o);

/*
 * Renders a message template: "{{path}}" becomes the fact's value (arrays
 * joined with ", "), "{{missing}}" the missing list; unknown paths render as
 * "?".  Returns a newly allocated string.
 */
char *rule_render(const char *tmpl, const cJSON *facts, const cJSON *missing);

#endif
