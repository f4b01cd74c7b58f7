/*
 * junit.c - the JUnit XML report writer (docs/report.md, "JUnit XML") and
 * the XML/HTML escaper that it shares with the HTML writer.
 *
 * One <testsuite> a rule, one <testcase> a listed finding (rule x subject):
 * fail is a <failure>, error an <error>, skipped and suppressed a
 * <skipped>.  CI test tabs (Jenkins, GitLab, Azure DevOps, GitHub test
 * reporters) read the Ant/Surefire dialect, so the required attributes of
 * the Ant schema (name, tests, failures, errors, time, timestamp,
 * hostname) are always present.
 *
 * Every string comes from Azure or from user rules: xml_escape() turns the
 * five markup characters into references and drops what XML 1.0 cannot
 * carry at all (most C0 controls, U+FFFE, U+FFFF), so the document stays
 * well-formed whatever a resource is called (STYLE.md 10).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/util/util.h"
#include "reports/report.h"

/* ---- escaping ---- */

void xml_escape(struct kv_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL)
		return;
	while (*p != '\0') {
		unsigned long cp;
		size_t n;

		if (*p < 0x80) {
			switch (*p) {
			case '&': kv_buf_adds(b, "&amp;"); break;
			case '<': kv_buf_adds(b, "&lt;"); break;
			case '>': kv_buf_adds(b, "&gt;"); break;
			case '"': kv_buf_adds(b, "&quot;"); break;
			case '\'': kv_buf_adds(b, "&#39;"); break;
			/* References survive attribute-value normalisation; raw ones would not. */
			case '\t': kv_buf_adds(b, "&#9;"); break;
			case '\n': kv_buf_adds(b, "&#10;"); break;
			case '\r': kv_buf_adds(b, "&#13;"); break;
			default:
				if (*p >= 0x20 && *p != 0x7f)
					kv_buf_addc(b, (char)*p);
				break;  /* other C0 controls and DEL: dropped */
			}
			p++;
			continue;
		}
		n = kv_utf8_decode(p, &cp);
		if (n == 0) {
			kv_buf_adds(b, "\xef\xbf\xbd");        /* U+FFFD for each invalid byte */
			p++;
			continue;
		}
		if (cp >= 0x80 && cp <= 0x9f)
			;       /* C1 controls: dropped */
		else if (cp == 0xfffe || cp == 0xffff)
			;       /* not XML 1.0 characters */
		else if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
			kv_buf_adds(b, "\xef\xbf\xbd"); /* bidi overrides could disguise text */
		else
			kv_buf_add(b, p, n);
		p += n;
	}
}

/* ---- the writer ---- */

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void add_raw(struct kv_buf *b, const char *s)
{
	if (s != NULL)
		kv_buf_adds(b, s);
}

struct counts {
	int tests, failures, errors, skipped;
};

static void count_finding(struct counts *c, const char *status)
{
	c->tests++;
	if (status == NULL)
		return;
	if (strcmp(status, "fail") == 0)
		c->failures++;
	else if (strcmp(status, "error") == 0)
		c->errors++;
	else if (strcmp(status, "skipped") == 0 || strcmp(status, "suppressed") == 0)
		c->skipped++;
}

static void add_counts(struct kv_buf *b, const struct counts *c)
{
	kv_buf_addf(b, " tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"%d\" time=\"0\"",
	            c->tests, c->failures, c->errors, c->skipped);
}

/* name="value" with the value escaped. */
static void attr(struct kv_buf *b, const char *name, const char *value)
{
	kv_buf_addf(b, " %s=\"", name);
	xml_escape(b, value != NULL ? value : "");
	kv_buf_addc(b, '"');
}

/*
 * The finding's azureBackup verdict (docs/report.md "azureBackup") as one
 * line, as the HTML report words it; false when it has none.
 */
static bool backup_line(struct kv_buf *t, const cJSON *f)
{
	const cJSON *ab = cJSON_GetObjectItemCaseSensitive(f, "azureBackup");
	const char *st = jstr(ab, "status"), *why = jstr(ab, "reason");

	if (report_azure_backup_note(t, f))
		return true;
	if (st == NULL)
		return false;
	kv_buf_addf(t, "Azure Backup: %s", st);   /* unprotected, unknown */
	if (why != NULL)
		kv_buf_addf(t, ": %s", why);
	else if (strcmp(st, "unprotected") == 0)
		kv_buf_adds(t, ": the VM has no protected item");
	return true;
}

/* A passing or skipped finding's azureBackup line, as its <system-out>. */
static void backup_system_out(struct kv_buf *b, const cJSON *f)
{
	struct kv_buf t;

	kv_buf_init(&t, 0);
	if (backup_line(&t, f)) {
		kv_buf_adds(b, "      <system-out>");
		xml_escape(b, t.data);
		kv_buf_adds(b, "</system-out>\n");
	}
	kv_buf_release(&t);
}

/* The body of a <failure> or <error>: everything a CI reader needs, as plain text. */
static void finding_text(struct kv_buf *b, const cJSON *f)
{
	struct kv_buf t;
	const cJSON *rem = cJSON_GetObjectItemCaseSensitive(f, "remediation");
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(f, "evidence");
	const cJSON *refs = cJSON_GetObjectItemCaseSensitive(f, "references"), *r;
	static const char *const ids[] = { "vm", "vault", "subscription", "tenant" };
	size_t i;

	kv_buf_init(&t, 0);
	kv_buf_addf(&t, "%s: %s\n", jstr(f, "rule") ? jstr(f, "rule") : "?",
	            jstr(f, "title") ? jstr(f, "title") : "");
	kv_buf_addf(&t, "severity: %s, status: %s\n", jstr(f, "severity") ? jstr(f, "severity") : "?",
	            jstr(f, "status") ? jstr(f, "status") : "?");
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		if (jstr(f, ids[i]) != NULL)
			kv_buf_addf(&t, "%s: %s\n", ids[i], jstr(f, ids[i]));
	if (jstr(f, "message") != NULL)
		kv_buf_addf(&t, "message: %s\n", jstr(f, "message"));
	if (jstr(f, "reason") != NULL)
		kv_buf_addf(&t, "reason: %s\n", jstr(f, "reason"));
	if (backup_line(&t, f))
		kv_buf_addc(&t, '\n');
	if (cJSON_IsObject(ev)) {
		char *e = cJSON_PrintUnformatted(ev);

		kv_buf_addf(&t, "evidence: %s\n", e != NULL ? e : "");
		cJSON_free(e);
	}
	if (cJSON_IsObject(rem) && jstr(rem, "text") != NULL)
		kv_buf_addf(&t, "remediation: %s\n", jstr(rem, "text"));
	if (cJSON_IsObject(rem) && jstr(rem, "fix") != NULL)
		kv_buf_addf(&t, "fix: %s\n", jstr(rem, "fix"));
	cJSON_ArrayForEach(r, refs)
		if (cJSON_IsString(r))
			kv_buf_addf(&t, "reference: %s\n", r->valuestring);
	xml_escape(b, t.data);
	kv_buf_release(&t);
}

static void write_testcase(struct kv_buf *b, const cJSON *f)
{
	struct kv_buf name;
	const char *status = jstr(f, "status"), *msg = jstr(f, "message");

	kv_buf_init(&name, 0);
	/* Raw here: the whole name is XML-escaped where it is written. */
	report_subject(&name, f, add_raw, " -> ", "(unknown subject)");
	kv_buf_adds(b, "    <testcase");
	attr(b, "classname", jstr(f, "rule"));
	attr(b, "name", name.data);
	kv_buf_adds(b, " time=\"0\"");
	if (status != NULL && strcmp(status, "fail") == 0) {
		kv_buf_adds(b, ">\n      <failure");
		attr(b, "message", msg);
		attr(b, "type", jstr(f, "severity"));
		kv_buf_adds(b, ">");
		finding_text(b, f);
		kv_buf_adds(b, "</failure>\n    </testcase>\n");
	} else if (status != NULL && strcmp(status, "error") == 0) {
		kv_buf_adds(b, ">\n      <error");
		attr(b, "message", jstr(f, "reason") != NULL ? jstr(f, "reason") : msg);
		attr(b, "type", "error");
		kv_buf_adds(b, ">");
		finding_text(b, f);
		kv_buf_adds(b, "</error>\n    </testcase>\n");
	} else if (status != NULL && (strcmp(status, "skipped") == 0 || strcmp(status, "suppressed") == 0)) {
		struct kv_buf m;

		const cJSON *sup = cJSON_GetObjectItemCaseSensitive(f, "suppression");
		const char *why = jstr(sup, "reason") != NULL ? jstr(sup, "reason") : jstr(f, "reason");

		kv_buf_init(&m, 0);
		kv_buf_addf(&m, "%s: %s", status, why != NULL ? why : msg != NULL ? msg : "");
		if (jstr(sup, "owner") != NULL)
			kv_buf_addf(&m, " (owner %s)", jstr(sup, "owner"));
		if (jstr(sup, "expires") != NULL)
			kv_buf_addf(&m, " (expires %s)", jstr(sup, "expires"));
		kv_buf_adds(b, ">\n      <skipped");
		attr(b, "message", m.data);
		kv_buf_adds(b, "/>\n");
		backup_system_out(b, f);
		kv_buf_adds(b, "    </testcase>\n");
		kv_buf_release(&m);
	} else if (cJSON_GetObjectItemCaseSensitive(f, "azureBackup") != NULL) {
		kv_buf_adds(b, ">\n");
		backup_system_out(b, f);
		kv_buf_adds(b, "    </testcase>\n");
	} else {
		kv_buf_adds(b, "/>\n");
	}
	kv_buf_release(&name);
}

/* "2026-11-28T12:05:00" (the Ant schema's timestamp has no zone; it is UTC). */
static void timestamp(char *out, size_t n, const char *generated)
{
	size_t len;

	if (generated == NULL || strlen(generated) < 19) {
		kv_utc_now(out, n);
		generated = out;
	}
	len = strlen(generated);
	if (len > 19)
		len = 19;
	if (len >= n)
		len = n - 1;
	memmove(out, generated, len);
	out[len] = '\0';
}

bool report_write_junit(const cJSON *report, FILE *f, struct kv_err *err)
{
	struct kv_buf b, suites;
	const cJSON *findings, *finding, *g;
	struct counts total = { 0, 0, 0, 0 };
	cJSON *done = NULL;     /* rule IDs already written */
	char ts[32];
	bool ok = false;

	kv_buf_init(&b, 0);
	kv_buf_init(&suites, 0);
	if (!cJSON_IsObject(report)) {
		kv_err_set(err, "cannot write the JUnit report: the report is not a JSON object");
		goto out;
	}
	g = cJSON_GetObjectItemCaseSensitive(report, "scan");
	timestamp(ts, sizeof(ts), jstr(g, "generatedAt"));
	findings = cJSON_GetObjectItemCaseSensitive(report, "findings");
	done = cJSON_CreateObject();
	/* Suites in the order their rules first appear, cases in report order. */
	cJSON_ArrayForEach(finding, findings) {
		const char *rule = jstr(finding, "rule");
		struct counts c = { 0, 0, 0, 0 };
		struct kv_buf cases;
		const cJSON *other;

		if (rule == NULL)
			rule = "(no rule)";
		if (cJSON_GetObjectItemCaseSensitive(done, rule) != NULL)
			continue;
		cJSON_AddTrueToObject(done, rule);
		kv_buf_init(&cases, 0);
		cJSON_ArrayForEach(other, findings) {
			const char *r = jstr(other, "rule");

			if (strcmp(r != NULL ? r : "(no rule)", rule) != 0)
				continue;
			count_finding(&c, jstr(other, "status"));
			write_testcase(&cases, other);
		}
		kv_buf_adds(&suites, "  <testsuite");
		attr(&suites, "name", rule);
		add_counts(&suites, &c);
		attr(&suites, "timestamp", ts);
		attr(&suites, "hostname", "localhost");
		kv_buf_adds(&suites, ">\n    <properties>\n      <property name=\"title\"");
		attr(&suites, "value", jstr(finding, "title"));
		kv_buf_adds(&suites, "/>\n      <property name=\"severity\"");
		attr(&suites, "value", jstr(finding, "severity"));
		kv_buf_adds(&suites, "/>\n    </properties>\n");
		kv_buf_add(&suites, cases.data != NULL ? cases.data : "", cases.len);
		kv_buf_adds(&suites, "    <system-out/>\n    <system-err/>\n  </testsuite>\n");
		kv_buf_release(&cases);
		total.tests += c.tests;
		total.failures += c.failures;
		total.errors += c.errors;
		total.skipped += c.skipped;
	}
	kv_buf_adds(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"kvaudit\"");
	add_counts(&b, &total);
	kv_buf_adds(&b, ">\n");
	kv_buf_add(&b, suites.data != NULL ? suites.data : "", suites.len);
	kv_buf_adds(&b, "</testsuites>\n");

	errno = 0;
	if (fwrite(b.data, 1, b.len, f) != b.len || fflush(f) == EOF || ferror(f)) {
		kv_err_set(err, "cannot write the JUnit report: %s", errno != 0 ? strerror(errno) : "write error");
		goto out;
	}
	ok = true;
out:
	cJSON_Delete(done);
	kv_buf_release(&b);
	kv_buf_release(&suites);
	return ok;
}
