/*
 * audit.h - judges an estate: builds the facts, evaluates every rule of the
 * catalog on every subject of its kind, and assembles the kvaudit.report
 * JSON document (docs/report.md) that every report writer renders.
 */
#ifndef KVAUDIT_AUDIT_H
#define KVAUDIT_AUDIT_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "audit/estate/estate.h"
#include "audit/util/fastjson.h"
#include "audit/suppress.h"
#include "rules/engine.h"

struct audit_opts {
	enum severity fail_on;      /* failing findings at or above it make exit code 1 */
	bool include_pass;          /* list passing findings too (they are always counted) */
	const char *source;         /* the estate file, for scan.source */
	struct suppressions *suppressions; /* accepted risks (--suppressions), or NULL */
	bool include_skipped;       /* list skipped findings one by one (else summary.skippedByRule) */
	int threads;                /* judging threads: 0 by the estate's size and the cores, else 1 or 2 */
	bool inventory_rows_later;  /* inventory.vms left empty: the caller writes the rows (facts_inventory_vaults) */
	/*
	 * NULL: the findings are cJSON's own, freed with the report.  Else
	 * AUDIT_ARENAS zeroed arenas (fastjson.h) that hold them, one a judging
	 * thread: the report references them (a reference node, which
	 * cJSON_Delete does not descend into), and the caller frees the arenas
	 * after the report, in one step instead of millions of free() calls.
	 * Such a report's findings must not be changed (audit_fold_skipped).
	 */
	struct fastjson_arena *findings_arenas;
};

#define AUDIT_ARENAS 2

/*
 * Returns the report (owned by the caller).  It references strings of e
 * (IDs, names: facts.h) and of cat (titles, remediation texts) rather than
 * copying them: delete it before estate_free(e) and rule_catalog_release(cat).
 */
cJSON *audit_run(struct estate *e, const struct rule_catalog *cat, const struct audit_opts *o);

/*
 * summary.skippedByRule (docs/report.md): rows {rule, title, severity,
 * reason, count}, one per rule and reason, of the skipped findings that are
 * not listed one by one.  A skip_table indexes rows (a JSON array, not
 * owned): skip_table_add adds count to the row of (rule, reason), creating
 * it; skip_table_finish puts the rows in order (rule, then reason) and
 * frees the index.
 */
struct skip_slot;
struct skip_table {
	cJSON *rows;
	struct skip_slot *slots;
	size_t cap, len;
};
void skip_table_init(struct skip_table *t, cJSON *rows);
void skip_table_add(struct skip_table *t, const char *rule, const char *title, const char *severity,
                    const char *reason, double count);
void skip_table_finish(struct skip_table *t);
/*
 * Moves the skipped findings a report lists (but a tenant's) into its
 * summary.skippedByRule, as a report made without --include-skipped has
 * them (kvaudit report).
 */
void audit_fold_skipped(cJSON *report);
/*
 * The same, for a report whose findings an arena owns (fastjson.h): they
 * are unlinked, not freed.  The summary is changed as always, so it must be
 * cJSON's own (kvaudit report puts a cJSON copy in its place first).
 */
void audit_fold_skipped_unlink(cJSON *report);

/*
 * The exit code a report means (DESIGN.md): 3 when the scan is incomplete
 * (any finding is error, or the estate recorded read errors), else 1 when a
 * failing finding is at or above fail_on, else 0.
 */
int audit_exit_code(const cJSON *report, enum severity fail_on);

#endif
