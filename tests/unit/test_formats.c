/*
 * test_formats.c - the HTML, SARIF, JUnit XML and Markdown writers: their
 * escapers on hostile text, and each writer on a small hand-built report
 * whose strings try to break out (markup, quotes, "]]>", control
 * characters, "|", a javascript: reference), read back: the XML and HTML
 * with a small well-formedness checker, SARIF with cJSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "audit/util/util.h"
#include "reports/report.h"

/* ---- helpers ---- */

typedef bool (*writer_fn)(const cJSON *, FILE *, struct kv_err *);
typedef void (*escape_fn)(struct kv_buf *, const char *);

static char *render(writer_fn w, const cJSON *doc)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct kv_err err = { "" };

	assert_non_null(f);
	if (!w(doc, f, &err))
		fail_msg("writer failed: %s", err.msg);
	assert_int_equal(fclose(f), 0);
	return text;
}

static char *escaped(escape_fn e, const char *s)
{
	struct kv_buf b;

	kv_buf_init(&b, 0);
	e(&b, s);
	return kv_buf_detach(&b);
}

static cJSON *parse_or_fail(const char *text)
{
	cJSON *j = cJSON_Parse(text);

	if (j == NULL)
		fail_msg("bad JSON near: %.40s", cJSON_GetErrorPtr());
	return j;
}

/* True when s starts an entity or character reference that XML knows. */
static bool valid_reference(const char *s)
{
	static const char *const named[] = { "&amp;", "&lt;", "&gt;", "&quot;", "&apos;" };
	size_t i;

	for (i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (strncmp(s, named[i], strlen(named[i])) == 0)
			return true;
	if (s[1] == '#') {
		const char *p = s + 2;

		if (*p == 'x')
			p++;
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
			return false;
		while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F'))
			p++;
		return *p == ';';
	}
	return false;
}

static bool void_element(const char *name, size_t n, bool html)
{
	static const char *const voids[] = { "meta", "br", "hr", "img", "input", "link" };
	size_t i;

	for (i = 0; html && i < sizeof(voids) / sizeof(voids[0]); i++)
		if (strlen(voids[i]) == n && strncmp(voids[i], name, n) == 0)
			return true;
	return false;
}

/*
 * A small well-formedness check of our own XML or HTML: tags balance,
 * attribute values are quoted and hold no '<', every '&' starts a known
 * reference, no C0 control other than tab, LF and CR.  html: allows a
 * DOCTYPE, void elements and the raw text of <style>.  Returns the number
 * of elements.
 */
static int check_markup(const char *s, bool html)
{
	const char *stack[256];
	size_t lens[256], depth = 0;
	int elements = 0;

	while (*s != '\0') {
		if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r')
			fail_msg("raw control character 0x%02x near [%.30s]", (unsigned char)*s, s);
		if (*s == '&') {
			if (!valid_reference(s))
				fail_msg("bare '&' near [%.30s]", s);
			s++;
			continue;
		}
		if (*s == '>' && !html)
			fail_msg("raw '>' in XML text near [%.30s]", s);    /* we always escape it */
		if (*s != '<') {
			s++;
			continue;
		}
		if (strncmp(s, "<?", 2) == 0 || strncmp(s, "<!", 2) == 0) {
			s = strchr(s, '>');
			assert_non_null(s);
			s++;
			continue;
		}
		if (s[1] == '/') {
			const char *name = s + 2;
			size_t n = strcspn(name, ">");

			if (depth == 0 || lens[depth - 1] != n || strncmp(stack[depth - 1], name, n) != 0)
				fail_msg("unbalanced </%.*s>", (int)n, name);
			depth--;
			s = name + n + 1;
			continue;
		}
		{
			const char *name = s + 1, *p;
			size_t n = strcspn(name, " \t\n/>");
			bool self_closing = false;

			assert_true(n > 0);
			p = name + n;
			for (;;) {
				while (*p == ' ' || *p == '\n' || *p == '\t')
					p++;
				if (*p == '>' || (p[0] == '/' && p[1] == '>'))
					break;
				p += strcspn(p, "=> ");
				if (*p != '=')
					continue;       /* an attribute without a value (HTML "open") */
				p++;
				if (*p != '"')
					fail_msg("unquoted attribute value near [%.30s]", p);
				p++;
				while (*p != '"') {
					if (*p == '\0' || *p == '<')
						fail_msg("'<' or end of text in an attribute value near [%.30s]", p);
					if (*p == '&' && !valid_reference(p))
						fail_msg("bare '&' in an attribute value near [%.30s]", p);
					p++;
				}
				p++;
			}
			self_closing = *p == '/';
			s = p + (self_closing ? 2 : 1);
			elements++;
			if (html && n == 5 && strncmp(name, "style", 5) == 0) {
				s = strstr(s, "</style>");
				assert_non_null(s);
				s += strlen("</style>");
				continue;
			}
			if (self_closing || void_element(name, n, html))
				continue;
			assert_true(depth < 256);
			stack[depth] = name;
			lens[depth++] = n;
		}
	}
	if (depth != 0)
		fail_msg("%zu unclosed elements, innermost <%.*s>", depth, (int)lens[depth - 1], stack[depth - 1]);
	return elements;
}

/* The integer value of attribute name in the first tag that starts with tag. */
static int attr_int(const char *text, const char *tag, const char *name)
{
	const char *p = strstr(text, tag), *end, *a;
	char key[64];

	assert_non_null(p);
	end = strchr(p, '>');
	snprintf(key, sizeof(key), " %s=\"", name);
	a = strstr(p, key);
	if (a == NULL || a > end)
		fail_msg("no %s in %s", name, tag);
	return atoi(a + strlen(key));
}

static int count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* ---- a hostile report ---- */

#define EVIL "<script>alert(1)</script> \\\"q\\\" 'a' ]]> & |p| `t` \\u0001\\u001b[31m\\n"

static const char *const report_text =
	"{\"kind\":\"kvaudit.report\",\"version\":1,"
	"\"tool\":{\"name\":\"kvaudit\",\"version\":\"0.1.0\",\"rules\":3},"
	"\"scan\":{\"source\":\"" EVIL "\",\"collectedAt\":null,\"generatedAt\":\"2026-11-28T12:05:00Z\","
	"  \"cloud\":\"AzureCloud\",\"caller\":null,\"failOn\":\"low\",\"complete\":false},"
	"\"summary\":{\"subjects\":{\"vm\":2,\"vault\":2,\"binding\":1,\"tenant\":1},\"adeVms\":2,"
	"  \"byStatus\":{\"fail\":2,\"pass\":1,\"error\":1,\"skipped\":1,\"suppressed\":1},"
	"  \"bySeverity\":{\"critical\":{\"fail\":0,\"pass\":0,\"error\":0,\"skipped\":0,\"suppressed\":0},"
	"    \"high\":{\"fail\":1,\"pass\":1,\"error\":0,\"skipped\":0,\"suppressed\":1},"
	"    \"medium\":{\"fail\":1,\"pass\":0,\"error\":1,\"skipped\":1,\"suppressed\":0},"
	"    \"low\":{\"fail\":0,\"pass\":0,\"error\":0,\"skipped\":0,\"suppressed\":0},"
	"    \"info\":{\"fail\":0,\"pass\":0,\"error\":0,\"skipped\":0,\"suppressed\":0}},"
	"  \"failing\":2,\"exitCode\":3},"
	"\"findings\":["
	" {\"rule\":\"KVA-BKP-001\",\"title\":\"Backup reads the BEK\",\"severity\":\"high\",\"status\":\"fail\","
	"  \"subject\":\"binding\",\"vm\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1\","
	"  \"vmName\":\"vm1\",\"vault\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv'x\","
	"  \"vaultName\":\"" EVIL "\",\"subscription\":\"/subscriptions/s1\",\"tenant\":\"t1\","
	"  \"message\":\"" EVIL "\",\"reason\":null,"
	"  \"evidence\":{\"" EVIL "\":[\"get\",\"" EVIL "\"],\"vault.rbac\":false},"
	"  \"remediation\":{\"text\":\"" EVIL "\",\"fix\":\"grant-backup-access\","
	"   \"change\":{\"operation\":\"PUT accessPolicies/add\","
	"    \"vault\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv'x\","
	"    \"accessPolicy\":{\"tenantId\":\"t1\",\"objectId\":\"oid-1\",\"permissions\":{\"secrets\":[\"backup\"]}}}},"
	"  \"references\":[\"javascript:alert(1)\",\"https://learn.microsoft.com/x?a=1&b=\\\"2\\\"\"]},"
	" {\"rule\":\"KVA-VM-001\",\"title\":\"" EVIL "\",\"severity\":\"medium\",\"status\":\"fail\",\"subject\":\"vm\","
	"  \"vm\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm2\",\"vmName\":\"vm2\","
	"  \"vault\":null,\"vaultName\":null,\"subscription\":\"/subscriptions/s1\",\"tenant\":\"t1\","
	"  \"message\":\"agent | not ready\",\"reason\":null,\"evidence\":{},"
	"  \"remediation\":{\"text\":\"restart it\",\"fix\":null,\"change\":null},\"references\":[]},"
	" {\"rule\":\"KVA-VM-001\",\"title\":\"agent\",\"severity\":\"medium\",\"status\":\"error\",\"subject\":\"vm\","
	"  \"vm\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1\",\"vmName\":\"vm1\","
	"  \"vault\":null,\"vaultName\":null,\"subscription\":\"/subscriptions/s1\",\"tenant\":\"t1\","
	"  \"message\":\"could not judge\",\"reason\":\"403 ]]> denied\",\"evidence\":{},"
	"  \"remediation\":null,\"references\":[]},"
	" {\"rule\":\"KVA-VM-001\",\"title\":\"agent\",\"severity\":\"medium\",\"status\":\"skipped\",\"subject\":\"vm\","
	"  \"vm\":\"/subscriptions/s1/x/vm3\",\"vmName\":\"vm3\",\"vault\":null,\"vaultName\":null,"
	"  \"subscription\":null,\"tenant\":null,\"message\":\"no view\",\"reason\":\"no view\",\"evidence\":{},"
	"  \"remediation\":null,\"references\":[]},"
	" {\"rule\":\"KVA-BKP-005\",\"title\":\"BMS exists\",\"severity\":\"high\",\"status\":\"suppressed\","
	"  \"subject\":\"tenant\",\"vm\":null,\"vmName\":null,\"vault\":null,\"vaultName\":null,\"subscription\":null,"
	"  \"tenant\":\"t2\",\"message\":\"no BMS\",\"reason\":null,\"evidence\":{},"
	"  \"remediation\":null,\"references\":[],"
	"  \"suppression\":{\"resource\":\"t2\",\"reason\":\"accepted by ops\",\"owner\":\"ops <team>\","
	"   \"expires\":\"2027-01-31\",\"expired\":false}},"
	" {\"rule\":\"KVA-BKP-005\",\"title\":\"BMS exists\",\"severity\":\"high\",\"status\":\"pass\","
	"  \"subject\":\"tenant\",\"vm\":null,\"vmName\":null,\"vault\":null,\"vaultName\":null,\"subscription\":null,"
	"  \"tenant\":\"t1\",\"message\":\"ok\",\"reason\":null,\"evidence\":{},"
	"  \"remediation\":null,\"references\":[]}"
	"],"
	"\"errors\":[{\"scope\":\"" EVIL "\",\"status\":403,\"code\":\"AuthorizationFailed\",\"message\":\"" EVIL "\"}],"
	"\"inventory\":{\"vms\":[],\"vaults\":["
	" {\"id\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv'x\",\"name\":\"" EVIL "\","
	"  \"subscriptionId\":\"s1\",\"location\":\"westeurope\",\"tenantId\":\"t1\",\"accessModel\":\"accessPolicy\","
	"  \"holdsBek\":true,\"holdsKek\":true,\"adeVms\":1,\"callerUserType\":\"Guest\","
	"  \"backupSp\":{\"status\":\"found\",\"objectId\":\"oid-1\"},"
	"  \"backupPermissions\":{\"secrets\":[\"Get\",\"List\",\"Set\"],\"keys\":[\"all\"]},\"backupRoles\":null},"
	" {\"id\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-rbac\",\"name\":\"kv-rbac\","
	"  \"subscriptionId\":\"s1\",\"location\":\"westeurope\",\"tenantId\":\"t1\",\"accessModel\":\"rbac\","
	"  \"holdsBek\":true,\"holdsKek\":false,\"adeVms\":1,\"callerUserType\":null,"
	"  \"backupSp\":{\"status\":\"unknown\",\"objectId\":null},"
	"  \"backupPermissions\":null,\"backupRoles\":[\"" EVIL "\"]}]}}";

static cJSON *sample_report(void)
{
	return parse_or_fail(report_text);
}

/* ---- escapers ---- */

static void xml_escape_neutralises_markup_and_illegal_characters(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "plain", "plain" },
		{ "<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;" },
		{ "a & b", "a &amp; b" },
		{ "\"q\" 'a'", "&quot;q&quot; &#39;a&#39;" },
		{ "]]>", "]]&gt;" },
		{ "tab\tlf\ncr\r", "tab&#9;lf&#10;cr&#13;" },
		{ "bell\a esc\x1b[31m nul-free\x01\x7f", "bell esc[31m nul-free" },
		{ "Überprüfung → ok", "Überprüfung → ok" },
		{ "c1\xc2\x85x", "c1x" },                           /* U+0085 */
		{ "nonchar\xef\xbf\xbey", "nonchary" },             /* U+FFFE */
		{ "bad\xff\xc3(", "bad\xef\xbf\xbd\xef\xbf\xbd(" }, /* invalid UTF-8 */
		{ "rlo\xe2\x80\xae" "abc", "rlo\xef\xbf\xbd" "abc" },  /* U+202E */
		{ "", "" },
		{ NULL, "" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = escaped(xml_escape, cases[i].in);

		if (strcmp(got, cases[i].want) != 0)
			fail_msg("xml_escape case %zu: got [%s], want [%s]", i, got, cases[i].want);
		free(got);
	}
}

static void md_escape_keeps_a_cell_one_cell_and_inert(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "plain text.", "plain text." },
		{ "a|b", "a\\|b" },
		{ "`code`", "\\`code\\`" },
		{ "line1\nline2\r\n", "line1 line2  " },
		{ "<script>", "&lt;script&gt;" },
		{ "[x](javascript:alert(1))", "\\[x\\]\\(javascript:alert\\(1\\)\\)" },
		{ "*b* _i_ ~s~ #h !img", "\\*b\\* \\_i\\_ \\~s\\~ \\#h \\!img" },
		{ "a\\|b", "a\\\\\\|b" },
		{ "&amp;", "&amp;amp;" },
		{ "esc\x1b[31m", "esc \\[31m" },
		{ "rlo\xe2\x80\xae" "abc", "rlo\xef\xbf\xbd" "abc" },
		{ "Überprüfung → ok", "Überprüfung → ok" },
		{ NULL, "" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = escaped(md_escape, cases[i].in);

		if (strcmp(got, cases[i].want) != 0)
			fail_msg("md_escape case %zu: got [%s], want [%s]", i, got, cases[i].want);
		free(got);
	}
}

/* ---- HTML ---- */

static void html_is_well_formed_and_has_no_script_from_data(void **state)
{
	cJSON *report = sample_report();
	char *text = render(report_write_html, report);

	(void)state;
	assert_true(strncmp(text, "<!DOCTYPE html>", 15) == 0);
	assert_true(check_markup(text, true) > 50);
	{
		char *lower = kv_lower(kv_strdup(text));

		assert_null(strstr(lower, "<script"));
		free(lower);
	}
	assert_null(strstr(text, "javascript:alert(1)\""));     /* never an href */
	assert_non_null(strstr(text, "<li>javascript:alert(1)</li>"));
	assert_non_null(strstr(text, "href=\"https://learn.microsoft.com/x?a=1&amp;b=&quot;2&quot;\""));
	assert_non_null(strstr(text, "&lt;script&gt;alert(1)&lt;/script&gt; &quot;q&quot; &#39;a&#39; ]]&gt;"));
	assert_null(strchr(text, '\x1b'));
	assert_non_null(strstr(text, "Content-Security-Policy"));
	assert_non_null(strstr(text, "<p><b>Suppressed:</b> accepted by ops (owner ops &lt;team&gt;, expires 2027-01-31"));
	assert_null(strstr(text, "src="));
	cJSON_Delete(report);
	free(text);
}

static void html_cards_show_the_summary(void **state)
{
	cJSON *report = sample_report();
	char *text = render(report_write_html, report);

	(void)state;
	assert_non_null(strstr(text, "id=\"card-fail\"><div class=\"num\">2</div>"));
	assert_non_null(strstr(text, "id=\"card-error\"><div class=\"num\">1</div>"));
	assert_non_null(strstr(text, "id=\"card-suppressed\"><div class=\"num\">1</div>"));
	assert_non_null(strstr(text, "id=\"card-adeVms\"><div class=\"num\">2</div>"));
	assert_non_null(strstr(text, "id=\"card-tenants\"><div class=\"num\">1</div>"));
	assert_non_null(strstr(text, "id=\"card-exitCode\"><div class=\"num\">3</div>"
	                             "<div class=\"label\">exit code: scan incomplete"));
	assert_non_null(strstr(text, "<svg"));
	cJSON_Delete(report);
	free(text);
}

static void html_matrix_compares_with_the_backup_template(void **state)
{
	cJSON *report = sample_report();
	char *text = render(report_write_html, report);
	const char *row = strstr(text, "id=\"vault-matrix\"");

	(void)state;
	assert_non_null(row);
	/* secrets Get, List (as spelt) granted, backup missing and needed, Set counted as extra */
	assert_non_null(strstr(row, "<span class=\"p has\">✓ get</span><span class=\"p has\">✓ list</span>"
	                            "<span class=\"p miss\">✗ backup</span><span class=\"p extra\">+1</span>"));
	/* keys "all" grants the template */
	assert_non_null(strstr(row, "<span class=\"p has\">✓ backup</span><span class=\"p extra\">all</span>"));
	assert_non_null(strstr(row, "RBAC: see roles"));
	cJSON_Delete(report);
	free(text);
}

static void html_commands_keep_what_the_vault_has_and_quote_odd_names(void **state)
{
	cJSON *report = sample_report();
	char *text = render(report_write_html, report);

	(void)state;
	/* az set-policy replaces a category's list: the vault's Get, List, Set plus backup */
	assert_non_null(strstr(text, "az keyvault set-policy --subscription s1 --resource-group rg --name "
	                             "&#39;kv&#39;\\&#39;&#39;x&#39; --object-id oid-1 "
	                             "--secret-permissions get list set backup</pre>"));
	assert_non_null(strstr(text, "Set-AzKeyVaultAccessPolicy -VaultName &#39;kv&#39;&#39;x&#39; "
	                             "-ResourceGroupName rg -ObjectId oid-1 -PermissionsToSecrets get,list,set,backup</pre>"));
	assert_non_null(strstr(text, "&quot;operation&quot;:"));
	assert_non_null(strstr(text, "<pre>kvaudit fix --rule KVA-BKP-001 --vault &#39;/subscriptions/s1/resourceGroups/rg/"
	                             "providers/Microsoft.KeyVault/vaults/kv&#39;\\&#39;&#39;x&#39;</pre>"));
	cJSON_Delete(report);
	free(text);
}

/* ---- SARIF ---- */

static void sarif_parses_with_the_required_keys(void **state)
{
	cJSON *report = sample_report(), *log, *run, *driver, *results, *r, *rules;
	char *text = render(report_write_sarif, report);
	int n = 0;

	(void)state;
	log = parse_or_fail(text);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(log, "version")->valuestring, "2.1.0");
	assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(log, "$schema")->valuestring, "sarif-schema-2.1.0"));
	run = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(log, "runs"), 0);
	driver = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(run, "tool"), "driver");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(driver, "name")->valuestring, "kvaudit");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(driver, "version")->valuestring, "0.1.0");
	rules = cJSON_GetObjectItemCaseSensitive(driver, "rules");
	assert_int_equal(cJSON_GetArraySize(rules), 3);
	results = cJSON_GetObjectItemCaseSensitive(run, "results");
	/* fail, fail, error, suppressed; not skipped, not pass */
	assert_int_equal(cJSON_GetArraySize(results), 4);
	cJSON_ArrayForEach(r, results) {
		const char *kind = cJSON_GetObjectItemCaseSensitive(r, "kind")->valuestring;
		const char *level = cJSON_GetObjectItemCaseSensitive(r, "level")->valuestring;
		cJSON *loc = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "locations"), 0);
		cJSON *fp = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "partialFingerprints"),
		                                             "kvaudit/v1");
		int idx = cJSON_GetObjectItemCaseSensitive(r, "ruleIndex")->valueint;

		assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rules, idx), "id")->valuestring,
		                    cJSON_GetObjectItemCaseSensitive(r, "ruleId")->valuestring);
		assert_non_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "message"), "text"));
		assert_true(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(loc, "logicalLocations")) >= 1);
		assert_int_equal(strlen(fp->valuestring), 64);
		switch (n++) {
		case 0:
			assert_string_equal(kind, "fail");
			assert_string_equal(level, "error");
			assert_string_equal(cJSON_GetObjectItemCaseSensitive(
				cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(loc, "logicalLocations"), 1),
				"fullyQualifiedName")->valuestring,
				"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv'x");
			break;
		case 1:
			assert_string_equal(level, "warning");
			break;
		case 2:
			assert_string_equal(kind, "open");
			assert_string_equal(level, "none");
			assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "message"),
			                                                     "text")->valuestring, "403 ]]> denied");
			break;
		case 3: {
			cJSON *l0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(loc, "logicalLocations"), 0);

			assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(
				cJSON_GetObjectItemCaseSensitive(r, "suppressions"), 0), "justification")->valuestring,
				"accepted by ops");
			assert_string_equal(cJSON_GetObjectItemCaseSensitive(l0, "fullyQualifiedName")->valuestring,
			                    "/tenants/t2");
			break;
		}
		}
	}
	assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(run, "invocations"), 0), "executionSuccessful")));
	cJSON_Delete(log);
	cJSON_Delete(report);
	free(text);
}

static void sarif_fingerprints_ignore_the_case_of_ids(void **state)
{
	cJSON *a = sample_report(), *b = sample_report(), *la, *lb;
	cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b, "findings"), 0);
	char *ta, *tb;

	(void)state;
	cJSON_ReplaceItemInObjectCaseSensitive(f, "vm", cJSON_CreateString(
		"/SUBSCRIPTIONS/s1/resourcegroups/RG/providers/Microsoft.Compute/virtualMachines/VM1"));
	ta = render(report_write_sarif, a);
	tb = render(report_write_sarif, b);
	la = parse_or_fail(ta);
	lb = parse_or_fail(tb);
#define FP(l) cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem( \
	cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(l, "runs"), 0), \
	"results"), 0), "partialFingerprints"), "kvaudit/v1")->valuestring
	assert_string_equal(FP(la), FP(lb));
#undef FP
	cJSON_Delete(la);
	cJSON_Delete(lb);
	cJSON_Delete(a);
	cJSON_Delete(b);
	free(ta);
	free(tb);
}

/* ---- JUnit ---- */

static void junit_is_well_formed_and_counts_match(void **state)
{
	cJSON *report = sample_report();
	char *text = render(report_write_junit, report);

	(void)state;
	assert_true(strncmp(text, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites", 50) == 0);
	check_markup(text, false);
	assert_int_equal(attr_int(text, "<testsuites", "tests"), 6);
	assert_int_equal(attr_int(text, "<testsuites", "failures"), 2);
	assert_int_equal(attr_int(text, "<testsuites", "errors"), 1);
	assert_int_equal(attr_int(text, "<testsuites", "skipped"), 2);
	assert_int_equal(count(text, "<testsuite "), 3);
	assert_int_equal(count(text, "<testcase "), 6);
	assert_int_equal(count(text, "<failure "), 2);
	assert_int_equal(count(text, "<error "), 1);
	assert_int_equal(count(text, "<skipped "), 2);
	assert_int_equal(attr_int(strstr(text, "name=\"KVA-VM-001\"") - 20, "<testsuite", "tests"), 3);
	assert_non_null(strstr(text, "<testcase classname=\"KVA-VM-001\" name=\"vm2\" time=\"0\">"));
	assert_non_null(strstr(text, "<testcase classname=\"KVA-BKP-005\" name=\"tenant t1\" time=\"0\"/>"));
	assert_non_null(strstr(text, "<skipped message=\"suppressed: accepted by ops (owner ops &lt;team&gt;) "
	                             "(expires 2027-01-31)\"/>"));
	assert_null(strstr(text, "]]>"));
	assert_null(strchr(text, '\x1b'));
	assert_null(strchr(text, '\x01'));
	cJSON_Delete(report);
	free(text);
}

/* ---- Markdown ---- */

static void markdown_has_the_summary_and_one_row_a_failing_finding(void **state)
{
	cJSON *report = sample_report();
	char *text = render(report_write_markdown, report);
	const char *table = strstr(text, "### Failing findings");
	const char *p;
	int rows = 0;

	(void)state;
	assert_non_null(strstr(text, "| **total** | **2** | **1** | **1** | **1** | **1** |"));
	assert_non_null(strstr(text, "Exit code **3**"));
	assert_non_null(table);
	assert_null(strstr(text, "<script"));
	for (p = strstr(table, "\n| "); p != NULL; p = strstr(p + 1, "\n| ")) {
		const char *end = strchr(p + 1, '\n');
		int pipes = 0;

		for (const char *c = p + 1; c < end; c++)
			if (*c == '|' && c[-1] != '\\')
				pipes++;
		assert_int_equal(pipes, 6);     /* five cells: a '|' in the data never splits a cell */
		rows++;
	}
	assert_int_equal(rows, 1 + 3);      /* header, then fail, fail, error */
	cJSON_Delete(report);
	free(text);
}

/* ---- every writer ---- */

static void writers_survive_an_empty_report_and_report_a_full_disk(void **state)
{
	static const writer_fn writers[] = { report_write_html, report_write_sarif, report_write_junit,
	                                     report_write_markdown };
	cJSON *empty = parse_or_fail("{}"), *report = sample_report();
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(writers) / sizeof(writers[0]); i++) {
		char *text = render(writers[i], empty);

		assert_true(strlen(text) > 0);
		free(text);
	}
	if (access("/dev/full", W_OK) == 0) {
		for (i = 0; i < sizeof(writers) / sizeof(writers[0]); i++) {
			FILE *f = fopen("/dev/full", "w");
			struct kv_err err = { "" };

			assert_non_null(f);
			assert_false(writers[i](report, f, &err));
			if (strstr(err.msg, "No space left on device") == NULL)
				fail_msg("writer %zu: %s", i, err.msg);
			fclose(f);
		}
	}
	for (i = 0; i < sizeof(writers) / sizeof(writers[0]); i++) {
		struct kv_err err = { "" };
		cJSON *arr = cJSON_CreateArray();

		assert_false(writers[i](arr, stdout, &err));
		assert_non_null(strstr(err.msg, "not a JSON object"));
		cJSON_Delete(arr);
	}
	cJSON_Delete(empty);
	cJSON_Delete(report);
}

static void format_table_knows_the_new_formats(void **state)
{
	(void)state;
	assert_string_equal(report_format_find("HTML")->ext, "html");
	assert_string_equal(report_format_find("sarif")->ext, "sarif");
	assert_string_equal(report_format_find("junit")->ext, "junit.xml");
	assert_string_equal(report_format_find("md")->ext, "md");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(xml_escape_neutralises_markup_and_illegal_characters),
		cmocka_unit_test(md_escape_keeps_a_cell_one_cell_and_inert),
		cmocka_unit_test(html_is_well_formed_and_has_no_script_from_data),
		cmocka_unit_test(html_cards_show_the_summary),
		cmocka_unit_test(html_matrix_compares_with_the_backup_template),
		cmocka_unit_test(html_commands_keep_what_the_vault_has_and_quote_odd_names),
		cmocka_unit_test(sarif_parses_with_the_required_keys),
		cmocka_unit_test(sarif_fingerprints_ignore_the_case_of_ids),
		cmocka_unit_test(junit_is_well_formed_and_counts_match),
		cmocka_unit_test(markdown_has_the_summary_and_one_row_a_failing_finding),
		cmocka_unit_test(writers_survive_an_empty_report_and_report_a_full_disk),
		cmocka_unit_test(format_table_knows_the_new_formats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
