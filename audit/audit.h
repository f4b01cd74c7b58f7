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
#include "audit/suppress.h"
#include "rules/engine.h"

struct audit_opts {
	enum severity fail_on;      /* failing findings at or above it make exit code 1 */
	bool include_pass;          /* list passing findings too (they are always counted) */
	const char *source;         /* the estate file, for scan.source */
	struct suppressions *suppressions; /* accepted risks (--suppressions), or NULL */
};

/* Returns the report (owned by the caller). */
cJSON *audit_run(struct estate *e, const struct rule_catalog *cat, const struct audit_opts *o);

/*
 * The exit code a report means (DESIGN.md): 3 when the scan is incomplete
 * (any finding is error, or the estate recorded read errors), else 1 when a
 * failing finding is at or above fail_on, else 0.
 */
int audit_exit_code(const cJSON *report, enum severity fail_on);

#endif
