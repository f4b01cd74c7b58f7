/*
 * sarif.c - the SARIF 2.1.0 report writer (docs/report.md, "SARIF"), for
 * code-scanning dashboards (GitHub code scanning, Azure DevOps, DefectDojo).
 *
 * One run; tool.driver.rules[] holds each rule that has a listed finding;
 * results are the fail, error and suppressed findings:
 *   fail        kind "fail", level error (critical, high), warning (medium)
 *               or note (low, info);
 *   error       kind "open" ("insufficient information to decide"), level
 *               "none": SARIF 2.1.0 section 3.27.9 allows only "none" when
 *               kind is not "fail".  The reason is the message;
 *   suppressed  kind "fail" with a suppressions[] entry (kind "external",
 *               status "accepted", the suppression's reason as justification,
 *               owner and expiry as properties), shown as dismissed.
 * Passing and skipped findings are not results.  The resources that could
 * not be read (the report's errors[]) become toolExecutionNotifications,
 * and executionSuccessful is the report's scan.complete.
 *
 * Each result names its resources as logicalLocations (fullyQualifiedName
 * the ARM ID) and carries partialFingerprints["kvaudit/v1"], a SHA-256 of
 * the rule and the lower-cased subject IDs, stable across scans.  cJSON
 * escapes every string it prints.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "audit/util/util.h"
#include "reports/report.h"

#define SARIF_SCHEMA "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
#define INFORMATION_URI "https://learn.microsoft.com/azure/backup/backup-azure-vms-encryption"

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool is(const char *a, const char *b)
{
	return a != NULL && strcmp(a, b) == 0;
}

/* SARIF level of a failing finding of this severity. */
static const char *level_of(const char *severity)
{
	if (is(severity, "critical") || is(severity, "high"))
		return "error";
	if (is(severity, "medium"))
		return "warning";
	return "note";
}

/* GitHub's "security-severity" (a CVSS-like score) for the severity. */
static const char *security_severity(const char *severity)
{
	if (is(severity, "critical"))
		return "9.5";
	if (is(severity, "high"))
		return "8.0";
	if (is(severity, "medium"))
		return "5.5";
	if (is(severity, "low"))
		return "3.0";
	return "0.0";
}

static cJSON *text_obj(const char *text)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "text", text != NULL ? text : "");
	return o;
}

static cJSON *make_rule(const cJSON *f)
{
	cJSON *r = cJSON_CreateObject(), *cfg, *props, *tags;
	const cJSON *rem = cJSON_GetObjectItemCaseSensitive(f, "remediation");
	const cJSON *refs = cJSON_GetObjectItemCaseSensitive(f, "references");
	const char *title = jstr(f, "title"), *sev = jstr(f, "severity"), *help = NULL;

	if (cJSON_IsObject(rem))
		help = jstr(rem, "text");
	cJSON_AddStringToObject(r, "id", jstr(f, "rule") != NULL ? jstr(f, "rule") : "");
	cJSON_AddItemToObject(r, "shortDescription", text_obj(title));
	cJSON_AddItemToObject(r, "fullDescription", text_obj(title));
	cJSON_AddItemToObject(r, "help", text_obj(help != NULL ? help : title));
	if (cJSON_IsArray(refs) && cJSON_IsString(cJSON_GetArrayItem(refs, 0)) &&
	    strncmp(cJSON_GetArrayItem(refs, 0)->valuestring, "https://", 8) == 0)
		cJSON_AddStringToObject(r, "helpUri", cJSON_GetArrayItem(refs, 0)->valuestring);
	cfg = cJSON_AddObjectToObject(r, "defaultConfiguration");
	cJSON_AddStringToObject(cfg, "level", level_of(sev));
	props = cJSON_AddObjectToObject(r, "properties");
	cJSON_AddStringToObject(props, "severity", sev != NULL ? sev : "");
	cJSON_AddStringToObject(props, "security-severity", security_severity(sev));
	tags = cJSON_AddArrayToObject(props, "tags");
	cJSON_AddItemToArray(tags, cJSON_CreateString("security"));
	cJSON_AddItemToArray(tags, cJSON_CreateString("azure-key-vault"));
	cJSON_AddItemToArray(tags, cJSON_CreateString("azure-backup"));
	return r;
}

/* Hex SHA-256 of the rule and the lower-cased subject IDs. */
static void fingerprint(const cJSON *f, char out[65])
{
	static const char *const keys[] = { "rule", "vm", "vault", "subscription", "tenant" };
	struct kv_buf b;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	kv_buf_init(&b, 0);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = jstr(f, keys[i]);

		kv_buf_addf(&b, "%s%s", i > 0 ? "|" : "", v != NULL ? v : "");
	}
	kv_lower(b.data);
	if (EVP_Digest(b.data, b.len, md, &n, EVP_sha256(), NULL) != 1)
		n = 0;
	for (i = 0; i < n && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[2 * i] = '\0';
	kv_buf_release(&b);
}

static void add_logical(cJSON *arr, const char *name, const char *fqn, const char *kind)
{
	cJSON *l;

	if (fqn == NULL)
		return;
	l = cJSON_CreateObject();
	if (name != NULL)
		cJSON_AddStringToObject(l, "name", name);
	cJSON_AddStringToObject(l, "fullyQualifiedName", fqn);
	cJSON_AddStringToObject(l, "kind", kind);
	cJSON_AddItemToArray(arr, l);
}

/*
 * The estate file as a relative URI reference (percent-encoding all but
 * unreserved characters and '/'), or NULL for a live scan or no source.
 */
static char *artifact_uri(const char *source)
{
	struct kv_buf b;
	const unsigned char *p;

	if (source == NULL || *source == '\0' || strcmp(source, "live") == 0)
		return NULL;
	kv_buf_init(&b, 0);
	for (p = (const unsigned char *)source; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~/", *p) != NULL)
			kv_buf_addc(&b, (char)*p);
		else
			kv_buf_addf(&b, "%%%02X", *p);
	}
	return kv_buf_detach(&b);
}

static cJSON *make_result(const cJSON *f, int rule_index, const char *uri)
{
	cJSON *res = cJSON_CreateObject(), *locs, *loc, *logical, *fp, *props;
	const char *status = jstr(f, "status"), *sev = jstr(f, "severity");
	const char *msg = jstr(f, "message");
	const char *tenant = jstr(f, "tenant");
	char hash[65], *tenant_id = NULL;

	cJSON_AddStringToObject(res, "ruleId", jstr(f, "rule") != NULL ? jstr(f, "rule") : "");
	cJSON_AddNumberToObject(res, "ruleIndex", rule_index);
	if (is(status, "error")) {
		cJSON_AddStringToObject(res, "kind", "open");
		cJSON_AddStringToObject(res, "level", "none");
		if (jstr(f, "reason") != NULL)
			msg = jstr(f, "reason");
	} else {
		cJSON_AddStringToObject(res, "kind", "fail");
		cJSON_AddStringToObject(res, "level", level_of(sev));
	}
	cJSON_AddItemToObject(res, "message", text_obj(msg));

	locs = cJSON_AddArrayToObject(res, "locations");
	loc = cJSON_CreateObject();
	cJSON_AddItemToArray(locs, loc);
	if (uri != NULL) {
		cJSON *phys = cJSON_AddObjectToObject(loc, "physicalLocation");
		cJSON *art = cJSON_AddObjectToObject(phys, "artifactLocation");

		cJSON_AddStringToObject(art, "uri", uri);
	}
	logical = cJSON_AddArrayToObject(loc, "logicalLocations");
	add_logical(logical, jstr(f, "vmName"), jstr(f, "vm"), "resource");
	add_logical(logical, jstr(f, "vaultName"), jstr(f, "vault"), "resource");
	if (cJSON_GetArraySize(logical) == 0)
		add_logical(logical, NULL, jstr(f, "subscription"), "namespace");
	if (cJSON_GetArraySize(logical) == 0 && tenant != NULL) {
		tenant_id = kv_asprintf("/tenants/%s", tenant);
		add_logical(logical, tenant, tenant_id, "namespace");
	}

	fingerprint(f, hash);
	fp = cJSON_AddObjectToObject(res, "partialFingerprints");
	cJSON_AddStringToObject(fp, "kvaudit/v1", hash);

	if (is(status, "suppressed")) {
		cJSON *sups = cJSON_AddArrayToObject(res, "suppressions"), *s = cJSON_CreateObject();
		const cJSON *sup = cJSON_GetObjectItemCaseSensitive(f, "suppression");
		const char *why = jstr(sup, "reason") != NULL ? jstr(sup, "reason") : jstr(f, "reason");

		cJSON_AddStringToObject(s, "kind", "external");
		cJSON_AddStringToObject(s, "status", "accepted");
		cJSON_AddStringToObject(s, "justification", why != NULL ? why : "");
		if (jstr(sup, "owner") != NULL || jstr(sup, "expires") != NULL) {
			cJSON *sp = cJSON_AddObjectToObject(s, "properties");

			if (jstr(sup, "owner") != NULL)
				cJSON_AddStringToObject(sp, "owner", jstr(sup, "owner"));
			if (jstr(sup, "expires") != NULL)
				cJSON_AddStringToObject(sp, "expires", jstr(sup, "expires"));
		}
		cJSON_AddItemToArray(sups, s);
	}
	props = cJSON_AddObjectToObject(res, "properties");
	cJSON_AddStringToObject(props, "severity", sev != NULL ? sev : "");
	cJSON_AddStringToObject(props, "status", status != NULL ? status : "");
	cJSON_AddStringToObject(props, "subject", jstr(f, "subject") != NULL ? jstr(f, "subject") : "");
	if (tenant != NULL)
		cJSON_AddStringToObject(props, "tenant", tenant);
	{
		const cJSON *rem = cJSON_GetObjectItemCaseSensitive(f, "remediation");

		if (cJSON_IsObject(rem) && jstr(rem, "fix") != NULL)
			cJSON_AddStringToObject(props, "fix", jstr(rem, "fix"));
	}
	{
		/* What Azure Backup's jobs say of it, as the JSON report has it (docs/report.md "azureBackup"). */
		const cJSON *ab = cJSON_GetObjectItemCaseSensitive(f, "azureBackup");

		if (cJSON_IsObject(ab))
			cJSON_AddItemToObject(props, "azureBackup", cJSON_Duplicate(ab, true));
	}
	free(tenant_id);
	return res;
}

/* One toolExecutionNotification a resource that could not be read. */
static cJSON *make_notification(const cJSON *e)
{
	cJSON *n = cJSON_CreateObject(), *locs, *loc, *logical;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "status");
	char *text;

	if (cJSON_IsNumber(st))
		text = kv_asprintf("HTTP %d %s: %s", st->valueint, jstr(e, "code") != NULL ? jstr(e, "code") : "",
		                   jstr(e, "message") != NULL ? jstr(e, "message") : "could not be read");
	else
		text = kv_asprintf("%s: %s", jstr(e, "code") != NULL ? jstr(e, "code") : "error",
		                   jstr(e, "message") != NULL ? jstr(e, "message") : "could not be read");
	cJSON_AddStringToObject(n, "level", "error");
	cJSON_AddItemToObject(n, "message", text_obj(text));
	if (jstr(e, "scope") != NULL) {
		locs = cJSON_AddArrayToObject(n, "locations");
		loc = cJSON_CreateObject();
		cJSON_AddItemToArray(locs, loc);
		logical = cJSON_AddArrayToObject(loc, "logicalLocations");
		add_logical(logical, NULL, jstr(e, "scope"), "resource");
	}
	if (cJSON_IsNumber(st)) {
		cJSON *props = cJSON_AddObjectToObject(n, "properties");

		cJSON_AddNumberToObject(props, "httpStatus", st->valuedouble);
	}
	free(text);
	return n;
}

/* A SARIF log being written: all but its results, the rule -> index map, the estate's URI. */
struct sarif {
	cJSON *log, *index;
	char *uri;
};

/*
 * The SARIF log of a report without its results (an empty array, which
 * report_write_sarif fills while it writes): the rules and the
 * notifications are few, the results one per failing finding.
 */
static void sarif_build(const cJSON *report, struct sarif *s)
{
	cJSON *runs, *run, *tool, *driver, *rules, *inv, *notes;
	const cJSON *tool_in = cJSON_GetObjectItemCaseSensitive(report, "tool");
	const cJSON *scan = cJSON_GetObjectItemCaseSensitive(report, "scan");
	const cJSON *findings = cJSON_GetObjectItemCaseSensitive(report, "findings");
	const cJSON *errors = cJSON_GetObjectItemCaseSensitive(report, "errors");
	const cJSON *f, *complete = cJSON_GetObjectItemCaseSensitive(scan, "complete");

	s->log = cJSON_CreateObject();
	s->index = cJSON_CreateObject();    /* rule ID -> index in rules[] */
	s->uri = artifact_uri(jstr(scan, "source"));
	cJSON_AddStringToObject(s->log, "$schema", SARIF_SCHEMA);
	cJSON_AddStringToObject(s->log, "version", "2.1.0");
	runs = cJSON_AddArrayToObject(s->log, "runs");
	run = cJSON_CreateObject();
	cJSON_AddItemToArray(runs, run);
	tool = cJSON_AddObjectToObject(run, "tool");
	driver = cJSON_AddObjectToObject(tool, "driver");
	cJSON_AddStringToObject(driver, "name", "kvaudit");
	cJSON_AddStringToObject(driver, "version",
	                        jstr(tool_in, "version") != NULL ? jstr(tool_in, "version") : KVAUDIT_VERSION);
	cJSON_AddStringToObject(driver, "informationUri", INFORMATION_URI);
	rules = cJSON_AddArrayToObject(driver, "rules");

	cJSON_ArrayForEach(f, findings) {
		const char *rule = jstr(f, "rule");

		if (rule == NULL || cJSON_GetObjectItemCaseSensitive(s->index, rule) != NULL)
			continue;
		cJSON_AddNumberToObject(s->index, rule, cJSON_GetArraySize(rules));
		cJSON_AddItemToArray(rules, make_rule(f));
	}

	inv = cJSON_AddArrayToObject(run, "invocations");
	{
		cJSON *i = cJSON_CreateObject();

		cJSON_AddBoolToObject(i, "executionSuccessful", !cJSON_IsFalse(complete));
		if (jstr(scan, "generatedAt") != NULL)
			cJSON_AddStringToObject(i, "endTimeUtc", jstr(scan, "generatedAt"));
		notes = cJSON_AddArrayToObject(i, "toolExecutionNotifications");
		cJSON_ArrayForEach(f, errors)
			cJSON_AddItemToArray(notes, make_notification(f));
		cJSON_AddItemToArray(inv, i);
	}
	cJSON_AddArrayToObject(run, "results");
	cJSON_AddStringToObject(run, "columnKind", "unicodeCodePoints");
}

static void sarif_release(struct sarif *s)
{
	cJSON_Delete(s->log);
	cJSON_Delete(s->index);
	free(s->uri);
}

/* The result of a finding, or NULL when it is not one (passing, skipped, no rule). */
static cJSON *sarif_result(const struct sarif *s, const cJSON *f)
{
	const char *status = jstr(f, "status"), *rule = jstr(f, "rule");

	if (rule == NULL || !(is(status, "fail") || is(status, "error") || is(status, "suppressed")))
		return NULL;
	return make_result(f, cJSON_GetObjectItemCaseSensitive(s->index, rule)->valueint, s->uri);
}

/*
 * Writes the log as cJSON_Print would, but each result printed and freed
 * in turn where the skeleton's empty "results" array is: the results of a
 * large estate's report are hundreds of MB of text, which neither their
 * trees nor one string of them need to hold at once.  A raw tab only
 * appears in cJSON's formatting (tabs in strings are escaped), so the
 * member "results":<tab>[] is found exactly.  0, 1 out of memory, EOF.
 */
static int sarif_put(const cJSON *report, const struct sarif *s, FILE *out)
{
	static const char mark[] = "\"results\":\t[";
	char *text = cJSON_Print(s->log);
	const char *at, *line;
	const cJSON *f;
	bool first = true;
	int rc = 0, tabs;

	if (text == NULL)
		return 1;
	at = strstr(text, "\"results\":\t[]");
	if (at == NULL) {
		cJSON_free(text);
		return 1;
	}
	for (line = at; line > text && line[-1] == '\t'; line--)
		;
	/* The member is tabs deep: an element of its array prints its own members two deeper. */
	tabs = (int)(at - line) + 1;
	at += sizeof(mark) - 1;   /* just past its '[' */
	if (fwrite(text, 1, (size_t)(at - text), out) != (size_t)(at - text))
		rc = EOF;
	cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(report, "findings")) {
		cJSON *res;

		if (rc != 0)
			break;
		if ((res = sarif_result(s, f)) == NULL)
			continue;
		if (!first && fputs(", ", out) == EOF)
			rc = EOF;
		else
			rc = report_put_json(out, res, tabs);
		first = false;
		cJSON_Delete(res);
	}
	if (rc == 0 && fputs(at, out) == EOF)
		rc = EOF;
	cJSON_free(text);
	return rc;
}

bool report_write_sarif(const cJSON *report, FILE *f, struct kv_err *err)
{
	struct sarif s = {0};
	bool ok = false;
	int rc;

	if (!cJSON_IsObject(report)) {
		kv_err_set(err, "cannot write the SARIF report: the report is not a JSON object");
		goto out;
	}
	sarif_build(report, &s);
	errno = 0;
	rc = sarif_put(report, &s, f);
	if (rc == 1) {
		kv_err_set(err, "cannot render the SARIF report: out of memory");
		goto out;
	}
	if (rc != 0 || fputc('\n', f) == EOF || fflush(f) == EOF || ferror(f)) {
		kv_err_set(err, "cannot write the SARIF report: %s", errno != 0 ? strerror(errno) : "write error");
		goto out;
	}
	ok = true;
out:
	sarif_release(&s);
	return ok;
}
