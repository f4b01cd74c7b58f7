/*
 * mergecmd.c - `kvaudit merge FILE...`: the output of N workers that each
 * read part of one estate (`collect|scan --shard K/N`) combined into one.
 *
 * Estates merge exactly: the union of every list (by resource ID), the
 * tenants, and every error; a shard that is missing from a complete set is
 * recorded as an error, so the audit of the merge is incomplete (exit 3),
 * never quietly smaller.  Auditing the merged estate gives the verdicts of
 * one unsharded scan, relations between shards included (a VM whose key
 * vault another worker read).
 *
 * Reports merge by adding up: findings are concatenated (a tenant's
 * findings, which every worker judges, once, the worst status kept), the
 * counts summed, errors concatenated, and the exit code recomputed with the
 * same rule as `audit` (any error: incomplete, 3).  Each worker judged only
 * what it read, so relations that cross shards are judged on each part
 * alone: docs/report.md says when to merge estates instead.
 *
 * Refused with exit 2: inputs of different kinds, tools, rule catalogs,
 * clouds or --fail-on, and inputs that overlap (the same subscription or
 * resource in two of them, or two copies of one shard).
 *
 * The inputs are parsed by fastjson into one arena (they are read, copied
 * from, or their findings moved): none of their nodes may reach
 * cJSON_Delete, so a dropped finding is only unlinked, and the merged
 * report's findings are unlinked again before it is deleted.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/cli/cli.h"
#include "audit/cli/cli_internal.h"
#include "audit/util/armid.h"
#include "audit/util/idmap.h"
#include "rules/engine.h"

#define MERGE_MAX_BYTES ((size_t)2 << 30)

const char MERGE_USAGE[] =
	"usage: kvaudit merge FILE... [--out FILE|-]\n"
	"\n"
	"Combine what N workers read with 'kvaudit collect' (estates) or wrote with 'kvaudit scan'\n"
	"(JSON reports), each given its part K/N of the subscriptions, into one estate or one report.\n"
	"Merged estates audit exactly as one unsharded scan; merged reports add up each worker's\n"
	"verdicts (docs/report.md).\n"
	"\n"
	"options:\n"
	"  --out FILE|-               where to write the merged JSON (default -, standard output);\n"
	"                             a file is written with mode 0600\n"
	"  -q, --quiet                no summary line on stderr\n"
	"  -h, --help                 this help\n"
	"\n"
	"Refused (exit 2): a mix of estates and reports, different tool versions, rule catalogs,\n"
	"clouds or fail-on severities, and overlapping inputs (a subscription or VM in two files,\n"
	"or one shard twice).\n"
	"exit codes: estates: 0 written; reports: the merged report's code (0 ok, 1 failing findings,\n"
	"3 incomplete: some input had errors or error findings); 2 bad usage or input\n";

static const char *s_of(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static cJSON *load(const char *path, struct fastjson_arena *arena, struct kv_err *err)
{
	size_t len = 0;
	char *data = kv_read_file(path, MERGE_MAX_BYTES, &len, err);
	cJSON *doc;

	if (!data)
		return NULL;
	fastjson_arena_share_strings(arena, true);
	doc = fastjson_parse(data, len, NULL, arena);
	fastjson_arena_share_strings(arena, false);
	if (!doc) {
		kv_err_set(err, "%s: invalid JSON at byte %zu", path, cli_json_error_offset(data, len));
	} else if (!cJSON_IsObject(doc) || (!kv_streq_ci(s_of(doc, "kind"), "kvaudit.estate") &&
	                                    !kv_streq_ci(s_of(doc, "kind"), "kvaudit.report"))) {
		kv_err_set(err, "%s: not a kvaudit estate or report (its \"kind\" is neither kvaudit.estate nor "
		           "kvaudit.report)", path);
		doc = NULL;
	} else if (cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "version")) != 1) {
		kv_err_set(err, "%s: version %g of %s is not supported (this kvaudit reads version 1)", path,
		           cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "version")), s_of(doc, "kind"));
		doc = NULL;
	}
	free(data);
	return doc;
}

/* Both NULL, or equal as JSON. */
static bool same(const cJSON *a, const cJSON *b)
{
	if (!a || !b)
		return !a && !b;
	return cJSON_Compare(a, b, true);
}

/* ---- shards ---- */

/* Checks the inputs' "shard" members (estates) and records missing shards; false on a refusal. */
static bool check_shards(cJSON **docs, char **names, int n, cJSON *errors, struct kv_err *err)
{
	int count = 0;
	bool *seen = NULL;

	for (int i = 0; i < n; i++) {
		const cJSON *sh = cJSON_GetObjectItemCaseSensitive(docs[i], "shard");
		int k = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(sh, "index"));
		int c = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(sh, "count"));

		if (!sh)
			continue;
		if (c < 1 || c > 1000 || k < 1 || k > c) {
			kv_err_set(err, "%s: $.shard: expected {\"index\": K, \"count\": N} with 1 <= K <= N <= 1000", names[i]);
			free(seen);
			return false;
		}
		if (count && c != count) {
			kv_err_set(err, "%s is shard %d/%d but another input is of %d shards: merge the shards of one run",
			           names[i], k, c, count);
			free(seen);
			return false;
		}
		if (!seen)
			seen = kv_calloc((size_t)c + 1, sizeof(*seen));
		count = c;
		if (seen[k]) {
			kv_err_set(err, "%s: shard %d/%d is given twice: the inputs overlap", names[i], k, c);
			free(seen);
			return false;
		}
		seen[k] = true;
	}
	for (int k = 1; count && k <= count; k++) {
		cJSON *e;
		char msg[160];

		if (seen[k])
			continue;
		e = cJSON_CreateObject();
		snprintf(msg, sizeof(msg), "shard %d of %d was not merged: the resources of its subscriptions are missing",
		         k, count);
		cJSON_AddStringToObject(e, "scope", "kvaudit merge");
		cJSON_AddNullToObject(e, "status");
		cJSON_AddStringToObject(e, "code", "ShardMissing");
		cJSON_AddStringToObject(e, "message", msg);
		cJSON_AddItemToArray(errors, e);
	}
	free(seen);
	return true;
}

/* ---- estates ---- */

static const char *bms_status(const cJSON *t)
{
	return s_of(cJSON_GetObjectItemCaseSensitive(t, "backupManagementService"), "status");
}

/* Tenants: every worker reads them all; a definite answer (found, absent) beats "unknown". */
static void merge_tenants(cJSON *out, cJSON *src)
{
	cJSON *to = cJSON_GetObjectItemCaseSensitive(out, "tenants"), *t;

	if (!to)
		to = cJSON_AddArrayToObject(out, "tenants");
	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(src, "tenants")) {
		cJSON *have = NULL, *h;

		cJSON_ArrayForEach(h, to)
			if (kv_streq_ci(s_of(h, "tenantId"), s_of(t, "tenantId")))
				have = h;
		if (!have) {
			cJSON_AddItemToArray(to, cJSON_Duplicate(t, true));
		} else if (kv_streq_ci(bms_status(have), "unknown") && bms_status(t) &&
		           !kv_streq_ci(bms_status(t), "unknown")) {
			cJSON_ReplaceItemViaPointer(to, have, cJSON_Duplicate(t, true));
		}
	}
}

/* The key an estate list item is known by: its ARM ID, a key bundle's kid, or its whole JSON. */
static char *item_key(const cJSON *it)
{
	const char *id = s_of(it, "id");

	if (!id)
		id = s_of(cJSON_GetObjectItemCaseSensitive(it, "key"), "kid");
	return id ? kv_strdup(id) : cJSON_PrintUnformatted(it);
}

/*
 * Every list of every input (those kvaudit does not know too, so a newer
 * collector's lists survive), each item once.  A subscription in two inputs
 * means two workers read it: refused.  Items above a subscription (role
 * assignments at a management group, custom roles, KEKs shared by VMs of
 * several shards) are seen by several workers and kept once.
 */
static bool merge_lists(cJSON *out, cJSON **docs, char **names, int n, struct kv_err *err)
{
	for (int i = 0; i < n; i++) {
		const cJSON *m;

		cJSON_ArrayForEach(m, docs[i]) {
			struct idmap ix;
			cJSON *to, *it;
			bool subs = strcmp(m->string, "subscriptions") == 0;

			if (!cJSON_IsArray(m) || strcmp(m->string, "tenants") == 0 || strcmp(m->string, "errors") == 0 ||
			    cJSON_GetObjectItemCaseSensitive(out, m->string))
				continue;
			/* the first input that has it: merge this list from every input now */
			to = cJSON_AddArrayToObject(out, m->string);
			idmap_init(&ix);
			for (int j = i; j < n; j++) {
				const cJSON *from = cJSON_GetObjectItemCaseSensitive(docs[j], m->string);

				if (from && !cJSON_IsArray(from)) {
					kv_err_set(err, "%s: $.%s: expected an array", names[j], m->string);
					idmap_release(&ix);
					return false;
				}
				cJSON_ArrayForEach(it, from) {
					char *k = item_key(it);
					bool fresh = idmap_put(&ix, k, 0);

					if (!fresh && subs) {
						kv_err_set(err, "%s: $.subscriptions: '%.200s' is also in another input: the inputs "
						           "overlap (merge the outputs of one --shard K/N run)", names[j], k);
						free(k);
						idmap_release(&ix);
						return false;
					}
					free(k);
					if (fresh)
						cJSON_AddItemToArray(to, cJSON_Duplicate(it, true));
				}
			}
			idmap_release(&ix);
		}
	}
	return true;
}

static cJSON *merge_estates(cJSON **docs, char **names, int n, struct kv_err *err)
{
	cJSON *out = cJSON_CreateObject(), *errors;
	const char *earliest = NULL;
	const cJSON *m;

	cJSON_AddStringToObject(out, "kind", "kvaudit.estate");
	cJSON_AddNumberToObject(out, "version", 1);
	for (int i = 0; i < n; i++) {
		const char *at = s_of(docs[i], "collectedAt");

		if (at && (!earliest || strcmp(at, earliest) < 0))
			earliest = at;
		if (!same(cJSON_GetObjectItemCaseSensitive(docs[i], "cloud"), cJSON_GetObjectItemCaseSensitive(docs[0], "cloud"))) {
			kv_err_set(err, "%s was read from cloud '%s' but %s from '%s': refusing to merge", names[i],
			           s_of(docs[i], "cloud") ? s_of(docs[i], "cloud") : "?", names[0],
			           s_of(docs[0], "cloud") ? s_of(docs[0], "cloud") : "?");
			cJSON_Delete(out);
			return NULL;
		}
	}
	if (earliest)
		cJSON_AddStringToObject(out, "collectedAt", earliest);
	/* the first input's other members (cloud, caller, ...), the shard aside */
	cJSON_ArrayForEach(m, docs[0])
		if (!cJSON_IsArray(m) && !cJSON_GetObjectItemCaseSensitive(out, m->string) && strcmp(m->string, "shard") != 0)
			cJSON_AddItemToObject(out, m->string, cJSON_Duplicate(m, true));
	for (int i = 0; i < n; i++)
		merge_tenants(out, docs[i]);
	if (!merge_lists(out, docs, names, n, err)) {
		cJSON_Delete(out);
		return NULL;
	}
	errors = cJSON_AddArrayToObject(out, "errors");
	for (int i = 0; i < n; i++) {
		const cJSON *e;

		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(docs[i], "errors"))
			cJSON_AddItemToArray(errors, cJSON_Duplicate(e, true));
	}
	if (!check_shards(docs, names, n, errors, err)) {
		cJSON_Delete(out);
		return NULL;
	}
	return out;
}

/* ---- reports ---- */

static const char *const STATUSES[] = {"fail", "error", "skipped", "suppressed", "pass"};
enum { NSTATUS = 5 };

static int status_rank(const char *s)
{
	for (int i = 0; i < NSTATUS; i++)
		if (kv_streq_ci(s, STATUSES[i]))
			return i;
	return NSTATUS;
}

static int severity_rank(const char *s)
{
	enum severity v;

	return severity_parse(s ? s : "", &v) ? (int)v : -1;
}

static int cmp_str_ci(const char *a, const char *b)
{
	return strcasecmp(a ? a : "", b ? b : "");
}

/* docs/report.md's order: status, severity (critical first), rule, then the subject IDs. */
static int finding_cmp(const void *pa, const void *pb)
{
	const cJSON *a = *(const cJSON *const *)pa, *b = *(const cJSON *const *)pb;
	int d;

	if ((d = status_rank(s_of(a, "status")) - status_rank(s_of(b, "status"))) != 0)
		return d;
	if ((d = severity_rank(s_of(b, "severity")) - severity_rank(s_of(a, "severity"))) != 0)
		return d;
	if ((d = strcmp(s_of(a, "rule") ? s_of(a, "rule") : "", s_of(b, "rule") ? s_of(b, "rule") : "")) != 0)
		return d;
	if ((d = cmp_str_ci(s_of(a, "vm"), s_of(b, "vm"))) != 0)
		return d;
	if ((d = cmp_str_ci(s_of(a, "vault"), s_of(b, "vault"))) != 0)
		return d;
	return cmp_str_ci(s_of(a, "tenant"), s_of(b, "tenant"));
}

static void count_add(cJSON *summary, const char *status, const char *severity, int by)
{
	cJSON *bs = cJSON_GetObjectItemCaseSensitive(summary, "byStatus");
	cJSON *row = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(summary, "bySeverity"), severity);
	cJSON *a = cJSON_GetObjectItemCaseSensitive(bs, status), *b = cJSON_GetObjectItemCaseSensitive(row, status);

	if (cJSON_IsNumber(a))
		cJSON_SetNumberValue(a, a->valuedouble + by);
	if (cJSON_IsNumber(b))
		cJSON_SetNumberValue(b, b->valuedouble + by);
}

/* Adds the numbers of from into to, member by member (objects recursively). */
static void add_numbers(cJSON *to, const cJSON *from)
{
	const cJSON *f;

	cJSON_ArrayForEach(f, from) {
		cJSON *t = cJSON_GetObjectItemCaseSensitive(to, f->string);

		if (cJSON_IsNumber(f) && cJSON_IsNumber(t))
			cJSON_SetNumberValue(t, t->valuedouble + f->valuedouble);
		else if (cJSON_IsObject(f) && cJSON_IsObject(t))
			add_numbers(t, f);
		else if (!t)
			cJSON_AddItemToObject(to, f->string, cJSON_Duplicate(f, true));
	}
}

/* Refuses reports of different tools, catalogs or --fail-on, and reports that judged the same resources. */
static bool reports_compatible(cJSON **docs, char **names, int n, struct kv_err *err)
{
	struct idmap seen;
	bool ok = true;

	for (int i = 1; i < n; i++) {
		const cJSON *s0 = cJSON_GetObjectItemCaseSensitive(docs[0], "scan"),
		            *si = cJSON_GetObjectItemCaseSensitive(docs[i], "scan");

		if (!same(cJSON_GetObjectItemCaseSensitive(docs[i], "tool"), cJSON_GetObjectItemCaseSensitive(docs[0], "tool"))) {
			char *a = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(docs[0], "tool"));
			char *b = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(docs[i], "tool"));

			kv_err_set(err, "%s was written by %.120s but %s by %.120s: reports of different tool versions or rule "
			           "catalogs cannot be merged", names[0], a ? a : "(no tool)", names[i], b ? b : "(no tool)");
			free(a);
			free(b);
			return false;
		}
		if (!same(cJSON_GetObjectItemCaseSensitive(si, "failOn"), cJSON_GetObjectItemCaseSensitive(s0, "failOn")) ||
		    !same(cJSON_GetObjectItemCaseSensitive(si, "cloud"), cJSON_GetObjectItemCaseSensitive(s0, "cloud"))) {
			kv_err_set(err, "%s and %s differ in scan.failOn or scan.cloud: merge reports of one run", names[0],
			           names[i]);
			return false;
		}
	}
	/* Overlap: one report twice, or an ADE VM of the inventory in two reports (two workers read it). */
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (cJSON_Compare(docs[i], docs[j], true)) {
				kv_err_set(err, "%s and %s are the same report: the inputs overlap", names[i], names[j]);
				return false;
			}
	idmap_init(&seen);
	for (int i = 0; i < n && ok; i++) {
		const cJSON *inv = cJSON_GetObjectItemCaseSensitive(docs[i], "inventory"), *it;

		/* key vaults are not checked: a worker lists the vaults its VMs use, wherever they are */
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(inv, "vms")) {
			const char *id = s_of(it, "id");

			if (ok && id && !idmap_put(&seen, id, (size_t)i)) {
				kv_err_set(err, "%s: VM '%.200s' is also in another report: the inputs overlap (merge the "
				           "reports of one --shard K/N run)", names[i], id);
				ok = false;
			}
		}
	}
	idmap_release(&seen);
	return ok;
}

/* The key of a tenant finding, which every worker makes: rule and tenant. */
static char *tenant_key(const cJSON *f)
{
	return kv_asprintf("%s|%s", s_of(f, "rule") ? s_of(f, "rule") : "", s_of(f, "tenant") ? s_of(f, "tenant") : "");
}

static cJSON *merge_reports(cJSON **docs, char **names, int n, struct kv_err *err)
{
	cJSON *out, *scan, *summary, *findings, *errors, *inv, *vms, *vaults, *sev_on;
	struct skip_table skipped;
	const cJSON *s0 = cJSON_GetObjectItemCaseSensitive(docs[0], "scan");
	cJSON **all = NULL;
	size_t nall = 0, cap = 0;
	struct idmap tix, vix;
	enum severity fail_on = SEV_LOW;
	bool complete = true;
	int tenants = 0;
	char now[32];
	const char *earliest = NULL;

	if (!reports_compatible(docs, names, n, err))
		return NULL;
	if (s_of(s0, "failOn"))
		severity_parse(s_of(s0, "failOn"), &fail_on);
	out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "kind", "kvaudit.report");
	cJSON_AddNumberToObject(out, "version", 1);
	cJSON_AddItemToObject(out, "tool", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(docs[0], "tool"), true));
	scan = cJSON_AddObjectToObject(out, "scan");
	cJSON_AddStringToObject(scan, "source", "merged");
	for (int i = 0; i < n; i++) {
		const cJSON *si = cJSON_GetObjectItemCaseSensitive(docs[i], "scan");
		const char *at = s_of(si, "collectedAt");

		if (at && (!earliest || strcmp(at, earliest) < 0))
			earliest = at;
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(si, "complete")))
			complete = false;
	}
	if (earliest)
		cJSON_AddStringToObject(scan, "collectedAt", earliest);
	else
		cJSON_AddNullToObject(scan, "collectedAt");
	kv_utc_now(now, sizeof(now));
	cJSON_AddStringToObject(scan, "generatedAt", now);
	cJSON_AddItemToObject(scan, "cloud", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(s0, "cloud"), true));
	cJSON_AddItemToObject(scan, "caller", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(s0, "caller"), true));
	cJSON_AddStringToObject(scan, "failOn", severity_name(fail_on));
	cJSON_AddNumberToObject(scan, "merged", n);

	summary = cJSON_AddObjectToObject(out, "summary");
	skip_table_init(&skipped, cJSON_CreateArray());
	for (int i = 0; i < n; i++) {
		const cJSON *si = cJSON_GetObjectItemCaseSensitive(docs[i], "summary");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(si, "subjects"), "tenant");
		cJSON *copy = cJSON_Duplicate(si, true);
		const cJSON *row;

		/* skipped findings counted, not listed: summed per rule and reason (no tenant's: those are listed) */
		cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(si, "skippedByRule")) {
			const cJSON *c = cJSON_GetObjectItemCaseSensitive(row, "count");

			if (cJSON_IsNumber(c))
				skip_table_add(&skipped, s_of(row, "rule"), s_of(row, "title"), s_of(row, "severity"),
				               s_of(row, "reason"), c->valuedouble);
		}
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "skippedByRule");

		/* every worker judges every tenant: they are counted once */
		if (cJSON_IsNumber(t) && t->valueint > tenants)
			tenants = t->valueint;
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "failing");
		cJSON_DeleteItemFromObjectCaseSensitive(copy, "exitCode");
		add_numbers(summary, copy);
		cJSON_Delete(copy);
	}
	{
		cJSON *subjects = cJSON_GetObjectItemCaseSensitive(summary, "subjects");
		cJSON *t = cJSON_GetObjectItemCaseSensitive(subjects, "tenant");

		if (cJSON_IsNumber(t))
			cJSON_SetNumberValue(t, tenants);
	}

	/* Findings: all of them, a tenant finding once (the worst status); the counts follow. */
	idmap_init(&tix);
	for (int i = 0; i < n; i++) {
		cJSON *fl = cJSON_GetObjectItemCaseSensitive(docs[i], "findings"), *f;

		while (fl && (f = fl->child) != NULL) {
			cJSON_DetachItemViaPointer(fl, f);
			if (kv_streq_ci(s_of(f, "subject"), "tenant")) {
				char *k = tenant_key(f);
				size_t at;

				if (idmap_get(&tix, k, &at)) {
					cJSON *keep = all[at], *drop = f;

					if (status_rank(s_of(f, "status")) < status_rank(s_of(keep, "status"))) {
						all[at] = f;
						drop = keep;
					}
					/* drop stays unlinked: the arena frees it */
					count_add(summary, s_of(drop, "status"), s_of(drop, "severity"), -1);
					free(k);
					continue;
				}
				idmap_put(&tix, k, nall);
				free(k);
			}
			if (nall == cap) {
				cap = cap ? cap * 2 : 256;
				all = kv_realloc(all, cap * sizeof(*all));
			}
			all[nall++] = f;
		}
	}
	idmap_release(&tix);
	if (nall)
		qsort(all, nall, sizeof(*all), finding_cmp);
	findings = cJSON_CreateArray();
	for (size_t i = 0; i < nall; i++)
		cJSON_AddItemToArray(findings, all[i]);
	free(all);

	errors = cJSON_CreateArray();
	for (int i = 0; i < n; i++) {
		const cJSON *e;

		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(docs[i], "errors"))
			cJSON_AddItemToArray(errors, cJSON_Duplicate(e, true));
	}
	{
		const cJSON *bs = cJSON_GetObjectItemCaseSensitive(summary, "byStatus");
		const cJSON *ne = cJSON_GetObjectItemCaseSensitive(bs, "error");

		if (cJSON_GetArraySize(errors) > 0 || (cJSON_IsNumber(ne) && ne->valueint > 0))
			complete = false;
	}
	cJSON_AddBoolToObject(scan, "complete", complete);
	{
		int failing = 0;

		sev_on = cJSON_GetObjectItemCaseSensitive(summary, "bySeverity");
		for (int s = (int)fail_on; s <= (int)SEV_CRITICAL; s++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(sev_on, severity_name((enum severity)s)), "fail");

			failing += cJSON_IsNumber(v) ? v->valueint : 0;
		}
		cJSON_AddNumberToObject(summary, "failing", failing);
		cJSON_AddNumberToObject(summary, "exitCode", !complete ? KV_EXIT_INCOMPLETE : failing ? 1 : 0);
	}
	skip_table_finish(&skipped);
	cJSON_AddItemToObject(summary, "skippedByRule", skipped.rows);
	cJSON_AddItemToObject(out, "findings", findings);
	cJSON_AddItemToObject(out, "errors", errors);

	/* Inventory: each VM once; a key vault once, as its own worker described it (adeVms counted there). */
	inv = cJSON_AddObjectToObject(out, "inventory");
	vms = cJSON_AddArrayToObject(inv, "vms");
	vaults = cJSON_AddArrayToObject(inv, "vaults");
	idmap_init(&vix);
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < n; i++) {
			const cJSON *di = cJSON_GetObjectItemCaseSensitive(docs[i], "inventory"), *it;

			if (pass == 0)
				cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(di, "vms"))
					cJSON_AddItemToArray(vms, cJSON_Duplicate(it, true));
			cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(di, "vaults")) {
				const char *id = s_of(it, "id");
				const cJSON *sub = cJSON_GetObjectItemCaseSensitive(it, "subscriptionId");
				bool own = cJSON_IsString(sub);

				/* pass 0: vaults with their own facts; pass 1: references no worker described */
				if (!id || own != (pass == 0) || !idmap_put(&vix, id, 0))
					continue;
				cJSON_AddItemToArray(vaults, cJSON_Duplicate(it, true));
			}
		}
	idmap_release(&vix);
	return out;
}

int cmd_merge(int argc, char **argv, const struct command *self)
{
	static const struct option opts[] = {
		{"out", required_argument, NULL, 'o'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *out = "-";
	cJSON **docs = NULL, *merged = NULL, *moved;
	struct fastjson_arena arena = {0};
	char **names;
	struct kv_err err = {{0}};
	int opt, n, rc = KV_EXIT_USAGE;
	bool quiet = false, estates = false;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":o:qh", opts, NULL)) != -1) {
		switch (opt) {
		case 'o': out = optarg; break;
		case 'q': quiet = true; break;
		case 'h': return cli_print_help(self);
		default: return cli_bad_option(self, argv, opt);
		}
	}
	n = argc - optind;
	names = argv + optind;
	if (n < 1)
		return cli_usage_error(self, "merge needs the estates or JSON reports to combine: kvaudit merge FILE...");
	docs = kv_calloc((size_t)n, sizeof(*docs));
	for (int i = 0; i < n; i++)
		if (!(docs[i] = load(names[i], &arena, &err))) {
			cli_error("%s", err.msg);
			goto out;
		}
	estates = kv_streq_ci(s_of(docs[0], "kind"), "kvaudit.estate");
	for (int i = 1; i < n; i++)
		if (kv_streq_ci(s_of(docs[i], "kind"), "kvaudit.estate") != estates) {
			cli_error("%s is a %s but %s a %s: merge estates with estates and reports with reports", names[0],
			          s_of(docs[0], "kind"), names[i], s_of(docs[i], "kind"));
			goto out;
		}
	merged = estates ? merge_estates(docs, names, n, &err) : merge_reports(docs, names, n, &err);
	if (!merged) {
		cli_error("%s", err.msg);
		goto out;
	}
	if (strcmp(out, "-") == 0) {
		char *text = cJSON_Print(merged);

		if (fputs(text, stdout) < 0 || fputc('\n', stdout) < 0 || fflush(stdout) != 0) {
			free(text);
			cli_error("cannot write the merged %s to standard output", estates ? "estate" : "report");
			goto out;
		}
		free(text);
	} else if (!cli_write_private_json(out, merged, &err)) {
		cli_error("%s", err.msg);
		goto out;
	}
	if (estates) {
		rc = KV_EXIT_OK;
		if (!quiet)
			fprintf(stderr, "merged %d estates: %d VMs, %d key vaults, %d errors%s%s\n", n,
			        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(merged, "virtualMachines")),
			        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(merged, "vaults")),
			        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(merged, "errors")),
			        strcmp(out, "-") ? " into " : "", strcmp(out, "-") ? out : "");
	} else {
		const cJSON *sum = cJSON_GetObjectItemCaseSensitive(merged, "summary");

		rc = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(sum, "exitCode"));
		if (!quiet)
			fprintf(stderr, "merged %d reports: %d failing findings, %d errors; exit code %d\n", n,
			        (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(sum, "failing")),
			        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(merged, "errors")), rc);
	}
out:
	/* A merged report's findings are the inputs' own nodes (the arena's): unlinked before the rest goes. */
	moved = merged && !estates ? cJSON_GetObjectItemCaseSensitive(merged, "findings") : NULL;
	if (moved)
		moved->child = NULL;
	free(docs);
	cJSON_Delete(merged);
	fastjson_arena_free(&arena);
	return rc;
}
