/*
 * fuzz_estate.c - a kvaudit.estate snapshot from anywhere: estate_parse
 * (the loader and the ADE detector), then the facts (facts_prepare,
 * facts_each, facts_inventory), the audit with the built-in catalog
 * (audit_run, audit_exit_code) and every report writer of report_formats[]
 * plus the summary and the inventory writers.  The JSON writer's output
 * must parse back as JSON; the others go to /dev/null.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/audit.h"
#include "audit/estate/estate.h"
#include "audit/estate/facts.h"
#include "reports/report.h"
#include "rules/engine.h"
#include "tests/fuzz/fuzz_common.h"

static struct rule_catalog catalog;
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct kv_err err = {{0}};

	(void)argc;
	(void)argv;
	if (!rule_catalog_load_builtin(&catalog, &err))
		fuzz_fail("builtin catalog: %s", err.msg);
	devnull = fopen("/dev/null", "w");
	if (devnull == NULL)
		fuzz_fail("cannot open /dev/null");
	return 0;
}

/* Counts subjects and checks each facts object is an object. */
static void each_subject(enum subject_kind kind, const cJSON *facts, void *arg)
{
	size_t *n = arg;

	if (!cJSON_IsObject(facts))
		fuzz_fail("facts of a %s subject is not an object", subject_name(kind));
	(*n)++;
}

static void write_json_checked(const cJSON *report)
{
	struct kv_err err = {{0}};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cJSON *back;

	if (f == NULL)
		fuzz_fail("open_memstream");
	if (!report_write_json(report, f, &err))
		fuzz_fail("report_write_json failed on a memory stream: %s", err.msg);
	if (fclose(f) != 0)
		fuzz_fail("fclose of the memory stream");
	back = cJSON_ParseWithLength(buf, len);
	if (back == NULL)
		fuzz_fail("report_write_json wrote invalid JSON (%zu bytes)", len);
	cJSON_Delete(back);
	free(buf);
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/*
 * A lean load (the big lists element by element, docs/performance.md) must
 * fail with the same message, or load the same VMs, disks, protected items
 * and ADE volumes, as the whole-tree load e.
 */
static void check_lean(const uint8_t *data, size_t size, const struct estate_opts *eo, const struct estate *e,
                       const struct kv_err *err)
{
	struct estate_opts lo = *eo;
	struct kv_err lerr = {{0}};
	struct estate *l;

	lo.lean = true;
	l = estate_parse((const char *)data, size, "fuzz.json", &lo, &lerr);
	if (!e || !l) {
		if (e || l)
			fuzz_fail("the whole-tree load %s but the lean load %s (%s%s)", e ? "succeeded" : "failed",
			          l ? "succeeded" : "failed", err->msg, lerr.msg);
		if (strcmp(err->msg, lerr.msg) != 0)
			fuzz_fail("lean load message differs: [%s] vs [%s]", err->msg, lerr.msg);
		return;
	}
	if (e->nvms != l->nvms || e->ndisks != l->ndisks || e->nitems != l->nitems)
		fuzz_fail("lean load counts differ");
	for (size_t i = 0; i < e->nvms; i++) {
		const struct ade_info *a = &e->vms[i].ade, *b = &l->vms[i].ade;

		if (!same_str(e->vms[i].id, l->vms[i].id) || a->encrypted != b->encrypted ||
		    a->legacy_aad != b->legacy_aad || a->disabled != b->disabled || a->sources != b->sources ||
		    a->nvolumes != b->nvolumes || e->vms[i].os != l->vms[i].os || !same_str(a->ext_type, b->ext_type))
			fuzz_fail("lean load: VM %zu differs", i);
		for (size_t k = 0; k < a->nvolumes; k++)
			if (!same_str(a->volumes[k].disk, b->volumes[k].disk) ||
			    !same_str(a->volumes[k].bek_vault, b->volumes[k].bek_vault) ||
			    !same_str(a->volumes[k].secret_url, b->volumes[k].secret_url) ||
			    !same_str(a->volumes[k].kek_vault, b->volumes[k].kek_vault) ||
			    !same_str(a->volumes[k].key_url, b->volumes[k].key_url) ||
			    a->volumes[k].sources != b->volumes[k].sources)
				fuzz_fail("lean load: volume %zu of VM %zu differs", k, i);
	}
	for (size_t i = 0; i < e->nitems; i++)
		if (!same_str(e->items[i].vm_id, l->items[i].vm_id) ||
		    !same_str(e->items[i].protection_state, l->items[i].protection_state))
			fuzz_fail("lean load: protected item %zu differs", i);
	estate_free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *overrides[] = { "72f988bf-86f1-41af-91ab-2d7cd011db47=00000000-0000-0000-0000-000000000001" };
	struct estate_opts eo = {.sp_overrides = overrides, .nsp_overrides = 1};
	struct audit_opts ao = { .fail_on = SEV_LOW, .include_pass = true, .source = "fuzz.json" };
	struct kv_err err = {{0}};
	struct estate *e;
	struct facts_ctx *fc;
	cJSON *inv, *report;
	size_t nsubjects = 0;

	e = estate_parse((const char *)data, size, "fuzz.json", &eo, &err);
	check_lean(data, size, &eo, e, &err);
	if (e == NULL) {
		if (err.msg[0] == '\0')
			fuzz_fail("estate_parse returned NULL without a message");
		return 0;
	}

	fc = facts_prepare(e);
	if (fc != NULL) {
		facts_each(fc, each_subject, &nsubjects);
		inv = facts_inventory(fc);
		if (inv != NULL) {
			inventory_write_table(inv, devnull, &err);
			inventory_write_csv(inv, devnull, &err);
			inventory_write_json(inv, devnull, &err);
			cJSON_Delete(inv);
		}
		facts_ctx_free(fc);
	}

	ao.include_pass = size % 2 == 0;
	report = audit_run(e, &catalog, &ao);
	if (report == NULL)
		fuzz_fail("audit_run returned NULL for a loaded estate");
	(void)audit_exit_code(report, SEV_LOW);
	write_json_checked(report);
	for (const struct report_format *rf = report_formats; rf->name != NULL; rf++)
		if (!rf->write(report, devnull, &err))
			fuzz_fail("%s writer failed on /dev/null: %s", rf->name, err.msg);
	report_write_summary(report, devnull, true, 5);
	report_write_summary(report, devnull, false, 0);
	cJSON_Delete(report);
	estate_free(e);
	return 0;
}
