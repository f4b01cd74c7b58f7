/*
 * test_reports.c - the report writers: CSV escaping and the CSV report,
 * the JSON report, the terminal summary, the inventory and report_output().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "audit/audit.h"
#include "audit/util/util.h"
#include "reports/report.h"

/* ---- helpers ---- */

typedef bool (*writer_fn)(const cJSON *, FILE *, struct kv_err *);

/* Runs a writer into memory; returns the text (owned), asserting success. */
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

static char *render_summary(const cJSON *report, bool color, int max_worst)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	report_write_summary(report, f, color, max_worst);
	assert_int_equal(fclose(f), 0);
	return text;
}

static cJSON *parse_or_fail(const char *text)
{
	cJSON *j = cJSON_Parse(text);

	if (j == NULL)
		fail_msg("bad JSON near: %.40s", cJSON_GetErrorPtr());
	return j;
}

/*
 * A minimal RFC 4180 reader for checking our own output: rows end with
 * CRLF outside quotes; a bare LF or CR outside quotes is a test failure.
 * Returns an array of arrays of strings.
 */
static cJSON *csv_parse(const char *s)
{
	cJSON *rows = cJSON_CreateArray(), *row = cJSON_CreateArray();
	struct kv_buf cell;
	bool quoted = false, was_quoted = false;

	kv_buf_init(&cell, 0);
	while (*s != '\0') {
		if (quoted) {
			if (*s == '"' && s[1] == '"') {
				kv_buf_addc(&cell, '"');
				s += 2;
			} else if (*s == '"') {
				quoted = false;
				s++;
			} else {
				kv_buf_addc(&cell, *s++);
			}
			continue;
		}
		if (*s == '"') {
			assert_int_equal(cell.len, 0);      /* quotes only around a whole field */
			assert_false(was_quoted);
			quoted = was_quoted = true;
			s++;
		} else if (*s == ',' || (*s == '\r' && s[1] == '\n')) {
			char *text = kv_buf_detach(&cell);

			cJSON_AddItemToArray(row, cJSON_CreateString(text));
			free(text);
			was_quoted = false;
			if (*s == '\r') {
				cJSON_AddItemToArray(rows, row);
				row = cJSON_CreateArray();
				s++;
			}
			s++;
		} else {
			if (*s == '\n' || *s == '\r')
				fail_msg("bare line break outside quotes");
			kv_buf_addc(&cell, *s++);
		}
	}
	assert_false(quoted);
	assert_int_equal(cell.len, 0);              /* the last row ended with CRLF */
	assert_int_equal(cJSON_GetArraySize(row), 0);
	cJSON_Delete(row);
	kv_buf_release(&cell);
	return rows;
}

static const char *cell_at(const cJSON *rows, int r, int c)
{
	const cJSON *v = cJSON_GetArrayItem(cJSON_GetArrayItem(rows, r), c);

	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

/* A small report: findings in a deliberately unsorted order. */
static const char *const report_text =
	"{\"kind\":\"kvaudit.report\",\"version\":1,"
	"\"tool\":{\"name\":\"kvaudit\",\"version\":\"0.1.0\",\"rules\":3},"
	"\"scan\":{\"source\":\"estate.json\",\"collectedAt\":null,\"generatedAt\":\"2026-11-28T12:05:00Z\","
	"  \"cloud\":\"AzureCloud\",\"caller\":null,\"failOn\":\"low\",\"complete\":false},"
	"\"summary\":{\"subjects\":{\"vm\":3,\"vault\":2,\"binding\":3,\"tenant\":1},\"adeVms\":3,"
	"  \"byStatus\":{\"fail\":3,\"pass\":5,\"error\":1,\"skipped\":0,\"suppressed\":0},"
	"  \"bySeverity\":{"
	"    \"critical\":{\"fail\":1,\"pass\":0,\"error\":0,\"skipped\":0,\"suppressed\":0},"
	"    \"high\":{\"fail\":1,\"pass\":4,\"error\":1,\"skipped\":0,\"suppressed\":0},"
	"    \"medium\":{\"fail\":0,\"pass\":0,\"error\":0,\"skipped\":0,\"suppressed\":0},"
	"    \"low\":{\"fail\":1,\"pass\":1,\"error\":0,\"skipped\":0,\"suppressed\":0},"
	"    \"info\":{\"fail\":0,\"pass\":0,\"error\":0,\"skipped\":0,\"suppressed\":0}},"
	"  \"failing\":3,\"exitCode\":3},"
	"\"findings\":["
	" {\"rule\":\"KVA-LOW-001\",\"title\":\"t\",\"severity\":\"low\",\"status\":\"fail\",\"subject\":\"vault\","
	"  \"vm\":null,\"vmName\":null,\"vault\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-low\","
	"  \"vaultName\":\"kv-low\",\"subscription\":\"/subscriptions/s1\",\"tenant\":\"t1\","
	"  \"message\":\"=HYPERLINK(\\\"http://evil\\\",\\\"x\\\")\",\"reason\":null,\"evidence\":{},"
	"  \"remediation\":{\"text\":\"enable, then \\\"check\\\"\",\"fix\":null,\"change\":null},\"references\":[]},"
	" {\"rule\":\"KVA-BKP-001\",\"title\":\"t\",\"severity\":\"high\",\"status\":\"fail\",\"subject\":\"binding\","
	"  \"vm\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1\",\"vmName\":\"vm1\","
	"  \"vault\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-prod\",\"vaultName\":\"kv-prod\","
	"  \"subscription\":\"/subscriptions/s1\",\"tenant\":\"t1\","
	"  \"message\":\"lacks backup on kv-prod\\u001b[31m\\nforged line\",\"reason\":null,\"evidence\":{},"
	"  \"remediation\":{\"text\":\"grant it\",\"fix\":\"grant-backup-access\",\"change\":null},\"references\":[]},"
	" {\"rule\":\"KVA-CRT-001\",\"title\":\"t\",\"severity\":\"critical\",\"status\":\"fail\",\"subject\":\"tenant\","
	"  \"vm\":null,\"vmName\":null,\"vault\":null,\"vaultName\":null,\"subscription\":null,\"tenant\":\"t1\","
	"  \"message\":\"Überprüfung fehlgeschlagen\",\"reason\":null,\"evidence\":{},"
	"  \"remediation\":{\"text\":\"\",\"fix\":null,\"change\":null},\"references\":[]},"
	" {\"rule\":\"KVA-ERR-001\",\"title\":\"t\",\"severity\":\"high\",\"status\":\"error\",\"subject\":\"vm\","
	"  \"vm\":\"/subscriptions/s1/x/vm2\",\"vmName\":\"vm2\",\"vault\":null,\"vaultName\":null,"
	"  \"subscription\":\"/subscriptions/s1\",\"tenant\":\"t1\","
	"  \"message\":\"could not judge\",\"reason\":\"403 on vault\",\"evidence\":{},"
	"  \"remediation\":null,\"references\":[]}"
	"],"
	"\"errors\":[{\"scope\":\"/subscriptions/s1/vaults/kv-x\",\"status\":403,\"code\":\"AuthorizationFailed\","
	"  \"message\":\"denied\\u0007\"}],"
	"\"inventory\":{\"vms\":[],\"vaults\":[]}}";

static cJSON *sample_report(void)
{
	return parse_or_fail(report_text);
}

static const char *const inventory_text =
	"{\"vms\":["
	" {\"id\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1\","
	"  \"name\":\"vm1\",\"subscriptionId\":\"s1\",\"location\":\"westeurope\",\"os\":\"Windows\","
	"  \"adeFlavour\":\"current\",\"kek\":true,\"sources\":[\"disk\"],"
	"  \"volumes\":["
	"   {\"disk\":\"vm1_OsDisk\",\"bekVault\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/KV1\","
	"    \"secretUrl\":\"https://kv1.vault.azure.net/secrets/s/1\","
	"    \"kekVault\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-rbac\","
	"    \"keyUrl\":\"https://kv-rbac.vault.azure.net/keys/k/1\"},"
	"   {\"disk\":\"vm1_data\",\"bekVault\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1\","
	"    \"secretUrl\":\"https://kv1.vault.azure.net/secrets/s/2\",\"kekVault\":null,\"keyUrl\":null}]},"
	" {\"id\":\"/subscriptions/s1/x/vm\\u001b]0;pwned\\u0007\",\"name\":\"vm\\u001b]0;pwned\\u0007\",\"subscriptionId\":\"s1\","
	"  \"location\":\"westeurope\",\"os\":\"Linux\",\"adeFlavour\":\"legacy-aad\",\"kek\":false,"
	"  \"sources\":[\"extension\"],\"volumes\":[]}],"
	"\"vaults\":["
	" {\"id\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1\",\"name\":\"kv1\","
	"  \"subscriptionId\":\"s1\",\"location\":\"westeurope\",\"tenantId\":\"t1\",\"accessModel\":\"accessPolicy\","
	"  \"holdsBek\":true,\"holdsKek\":false,\"adeVms\":1,\"callerUserType\":\"Guest\","
	"  \"backupSp\":{\"status\":\"found\",\"objectId\":\"oid-bms\"},"
	"  \"backupPermissions\":{\"secrets\":[\"get\",\"list\"],\"keys\":[]},\"backupRoles\":null},"
	" {\"id\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-rbac\",\"name\":\"kv-rbac\","
	"  \"subscriptionId\":\"s1\",\"location\":\"westeurope\",\"tenantId\":\"t1\",\"accessModel\":\"rbac\","
	"  \"holdsBek\":false,\"holdsKek\":true,\"adeVms\":1,\"callerUserType\":null,"
	"  \"backupSp\":{\"status\":\"unknown\",\"objectId\":null},"
	"  \"backupPermissions\":null,\"backupRoles\":[\"Key Vault Administrator\",\"Reader\"]}]}";

/* ---- csv_cell ---- */

static void csv_cell_escapes_each_kind_of_text(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "plain", "plain" },
		{ "a,b", "\"a,b\"" },
		{ "say \"hi\"", "\"say \"\"hi\"\"\"" },
		{ "line1\r\nline2", "\"line1\r\nline2\"" },
		{ "line1\nline2", "\"line1\nline2\"" },
		{ "=1+2", "'=1+2" },
		{ "+1", "'+1" },
		{ "-1", "'-1" },
		{ "@SUM(A1)", "'@SUM(A1)" },
		{ "\tx", "'\tx" },
		{ "\rx", "\"'\rx\"" },
		{ "=a,\"b\"", "\"'=a,\"\"b\"\"\"" },
		{ " =1", " =1" },
		{ "a=b-c", "a=b-c" },
		{ "", "" },
		{ NULL, "" },
		{ "Überprüfung → ok", "Überprüfung → ok" },
		{ "x\x01y", "x\x01y" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kv_buf b;
		char *got;

		kv_buf_init(&b, 0);
		csv_cell(&b, cases[i].in);
		got = kv_buf_detach(&b);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("csv_cell case %zu: got [%s], want [%s]", i, got, cases[i].want);
		free(got);
	}
}

/* ---- the CSV report ---- */

static void csv_report_has_a_header_and_one_row_a_finding(void **state)
{
	cJSON *report = sample_report(), *rows;
	char *text = render(report_write_csv, report);

	(void)state;
	assert_true(strncmp(text,
	                    "rule,severity,status,subject,vm_name,vault_name,vm,vault,subscription,tenant,"
	                    "message,reason,remediation,fix\r\n", 91) == 0);
	rows = csv_parse(text);
	assert_int_equal(cJSON_GetArraySize(rows), 1 + 4);
	for (int r = 0; r < 5; r++)
		assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(rows, r)), 14);
	/* first finding: formula neutralised, quotes round-trip, nulls are empty */
	assert_string_equal(cell_at(rows, 1, 0), "KVA-LOW-001");
	assert_string_equal(cell_at(rows, 1, 4), "");
	assert_string_equal(cell_at(rows, 1, 5), "kv-low");
	assert_string_equal(cell_at(rows, 1, 10), "'=HYPERLINK(\"http://evil\",\"x\")");
	assert_string_equal(cell_at(rows, 1, 12), "enable, then \"check\"");
	assert_string_equal(cell_at(rows, 1, 13), "");
	/* second: control characters and line breaks stay inside the quotes */
	assert_string_equal(cell_at(rows, 2, 10), "lacks backup on kv-prod\033[31m\nforged line");
	assert_string_equal(cell_at(rows, 2, 13), "grant-backup-access");
	assert_string_equal(cell_at(rows, 3, 10), "Überprüfung fehlgeschlagen");
	/* fourth: remediation null, reason set */
	assert_string_equal(cell_at(rows, 4, 11), "403 on vault");
	assert_string_equal(cell_at(rows, 4, 12), "");
	cJSON_Delete(rows);
	free(text);
	cJSON_Delete(report);
}

static void csv_report_of_no_findings_is_the_header_alone(void **state)
{
	cJSON *report = parse_or_fail("{\"findings\":[]}");
	char *text = render(report_write_csv, report);

	(void)state;
	assert_string_equal(text, "rule,severity,status,subject,vm_name,vault_name,vm,vault,subscription,"
	                          "tenant,message,reason,remediation,fix\r\n");
	free(text);
	cJSON_Delete(report);
}

/* ---- the JSON report ---- */

static void json_report_round_trips_and_ends_with_a_newline(void **state)
{
	cJSON *report = sample_report(), *back;
	char *text = render(report_write_json, report);

	(void)state;
	assert_true(strlen(text) > 2);
	assert_int_equal(text[strlen(text) - 1], '\n');
	assert_non_null(strstr(text, "\n  \""));      /* pretty-printed, two-space indents */
	assert_null(strchr(text, '\t'));             /* no raw tabs: strings keep theirs escaped */
	back = parse_or_fail(text);
	assert_true(cJSON_Compare(report, back, true));
	cJSON_Delete(back);
	free(text);
	cJSON_Delete(report);
}

/*
 * The JSON writers print straight to the stream; their text must stay
 * byte for byte cJSON_Print's (the report's two-space form of it, and
 * report_put_json's tabs): escapes of every control byte, quotes,
 * backslashes, UTF-8 and DEL as is, integers, fractions, huge and tiny
 * numbers, empty and nested containers, objects inside arrays, odd keys.
 */
static const char json_layout_doc[] =
	"{\"s\":\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0001\\u001f\\u007f caf\\u00e9 \\u202e x\",\"\":\"\","
	"\"k\\\"\\t:\":{\"n\":[0,-1,2147483647,-2147483648,3000000000,0.1,1e300,-2.5e-300,"
	"123456789012345678,0.30000000000000004]},\"e\":{},\"a\":[],\"nested\":[[{}],[{\"x\":null,"
	"\"y\":[true,false,{\"z\":{\"w\":[1,{\"v\":\"\"}]}}]}]],\"last\":{\"deep\":{\"er\":{\"est\":[{}]}}}}";

/* cJSON_Print's text as report_write_json lays it out: a tab after ':' is " ", any other "  ". */
static char *two_space(const char *text)
{
	struct kv_buf b;

	kv_buf_init(&b, 0);
	for (const char *p = text; *p; p++) {
		if (*p != '\t')
			kv_buf_addc(&b, *p);
		else
			kv_buf_adds(&b, p > text && p[-1] == ':' ? " " : "  ");
	}
	kv_buf_adds(&b, "\n");
	return kv_buf_detach(&b);
}

static void json_writers_print_exactly_what_cjson_prints(void **state)
{
	cJSON *doc = parse_or_fail(json_layout_doc);
	char *printed = cJSON_Print(doc), *want = two_space(printed), *got = render(report_write_json, doc);
	char *tabbed = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&tabbed, &len);
	struct kv_buf b;

	(void)state;
	assert_string_equal(got, want);
	/* report_put_json(v, 2): cJSON_Print(v) with two more tabs after each newline. */
	kv_buf_init(&b, 0);
	for (const char *p = printed; *p; p++) {
		if (*p == '\n')
			kv_buf_adds(&b, "\n\t\t");
		else
			kv_buf_addc(&b, *p);
	}
	assert_non_null(f);
	assert_int_equal(report_put_json(f, doc, 2), 0);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(tabbed, b.data);
	free(b.data);
	free(tabbed);
	free(got);
	free(want);
	cJSON_free(printed);
	cJSON_Delete(doc);
}

static void writers_report_a_full_disk(void **state)
{
	static const writer_fn writers[] = { report_write_json, report_write_csv, inventory_write_json,
	                                     inventory_write_csv, inventory_write_table };
	cJSON *report = sample_report(), *inv = parse_or_fail(inventory_text);
	size_t i;

	(void)state;
	if (access("/dev/full", W_OK) != 0)
		skip();
	for (i = 0; i < sizeof(writers) / sizeof(writers[0]); i++) {
		FILE *f = fopen("/dev/full", "w");
		struct kv_err err = { "" };

		assert_non_null(f);
		assert_false(writers[i](i < 2 ? report : inv, f, &err));
		if (strstr(err.msg, "No space left on device") == NULL)
			fail_msg("writer %zu: %s", i, err.msg);
		fclose(f);
	}
	cJSON_Delete(inv);
	cJSON_Delete(report);
}

/* ---- the summary ---- */

static void summary_counts_and_lists_the_worst_failures_first(void **state)
{
	cJSON *report = sample_report();
	char *text = render_summary(report, false, 10);
	const char *crit, *high, *low;

	(void)state;
	assert_true(strncmp(text, "kvaudit: 9 findings on 3 ADE VMs, 2 vaults, 1 tenant: "
	                          "3 fail, 5 pass, 1 error, 0 skipped\n", 89) == 0);
	/* the table: a header and only non-zero rows, no suppressed column */
	assert_non_null(strstr(text, "  severity    fail  error  skipped  pass\n"));
	assert_non_null(strstr(text, "  critical       1      0        0     0\n"));
	assert_non_null(strstr(text, "  high           1      1        0     4\n"));
	assert_non_null(strstr(text, "  low            1      0        0     1\n"));
	assert_null(strstr(text, "  medium "));
	assert_null(strstr(text, "suppressed"));
	/* worst first, whatever the report's order */
	crit = strstr(text, "  CRITICAL  KVA-CRT-001  tenant t1: Überprüfung fehlgeschlagen\n");
	high = strstr(text, "  HIGH      KVA-BKP-001  vm1 -> kv-prod: lacks backup on kv-prod?[31m?forged line\n");
	low = strstr(text, "  LOW       KVA-LOW-001  kv-low: =HYPERLINK");
	assert_non_null(crit);
	assert_non_null(high);
	assert_non_null(low);
	assert_true(crit < high && high < low);
	assert_null(strstr(text, "KVA-ERR-001"));   /* errors are not failures */
	assert_non_null(strstr(text, "scan incomplete: 1 finding could not be judged, "
	                             "1 resource could not be read; exit code 3\n"));
	assert_non_null(strstr(text, "  ERROR     403 AuthorizationFailed  /subscriptions/s1/vaults/kv-x: denied?\n"));
	assert_non_null(strstr(text, "exit code 3: scan incomplete"));
	assert_null(strchr(text, '\033'));
	assert_null(strchr(text, '\a'));
	free(text);
	cJSON_Delete(report);
}

static void summary_shows_at_most_max_worst_findings(void **state)
{
	cJSON *report = sample_report();
	char *text = render_summary(report, false, 1);

	(void)state;
	assert_non_null(strstr(text, "KVA-CRT-001"));
	assert_null(strstr(text, "KVA-BKP-001"));
	assert_null(strstr(text, "KVA-LOW-001"));
	assert_non_null(strstr(text, "  ... and 2 more failing findings (see the report)\n"));
	free(text);
	text = render_summary(report, false, 0);
	assert_null(strstr(text, "KVA-CRT-001"));
	free(text);
	cJSON_Delete(report);
}

static void summary_uses_colour_only_when_asked(void **state)
{
	cJSON *report = sample_report();
	char *text = render_summary(report, true, 5);
	char *p;
	size_t escapes = 0;

	(void)state;
	/* every ESC is ours: an SGR sequence "ESC [ digits;digits m" */
	for (p = strchr(text, '\033'); p != NULL; p = strchr(p + 1, '\033')) {
		size_t n = strspn(p + 2, "0123456789;");

		assert_int_equal(p[1], '[');
		assert_int_equal(p[2 + n], 'm');
		escapes++;
	}
	assert_true(escapes > 0);
	assert_null(strstr(text, "\033[31m\n"));    /* the finding's own escape was neutralised */
	free(text);
	cJSON_Delete(report);
}

static void summary_of_a_clean_complete_scan_says_exit_code_zero(void **state)
{
	cJSON *report = parse_or_fail(
		"{\"scan\":{\"failOn\":\"medium\",\"complete\":true},"
		"\"summary\":{\"subjects\":{\"vm\":1,\"vault\":1,\"binding\":1,\"tenant\":1},\"adeVms\":1,"
		"\"byStatus\":{\"fail\":1,\"pass\":2,\"error\":0,\"skipped\":0,\"suppressed\":1},"
		"\"bySeverity\":{\"low\":{\"fail\":1,\"pass\":2,\"suppressed\":1}},"
		"\"failing\":0,\"exitCode\":0},"
		"\"findings\":[],\"errors\":[]}");
	char *text = render_summary(report, false, 5);

	(void)state;
	assert_true(strncmp(text, "kvaudit: 4 findings on 1 ADE VM, 1 vault, 1 tenant: "
	                          "1 fail, 2 pass, 0 error, 0 skipped, 1 suppressed\n", 97) == 0);
	assert_non_null(strstr(text, "  severity    fail  error  skipped  suppressed  pass\n"));
	assert_non_null(strstr(text, "  low            1      0        0           1     2\n"));
	assert_null(strstr(text, "scan incomplete"));
	assert_non_null(strstr(text, "exit code 0: no failing finding at or above medium\n"));
	free(text);
	cJSON_Delete(report);
}

static void term_safe_neutralises_terminal_controls_and_keeps_utf8(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "plain", "plain" },
		{ "a\033[2Jb", "a?[2Jb" },
		{ "tab\tnl\ncr\rdel\x7f", "tab?nl?cr?del?" },
		{ "Überprüfung → ok 鍵", "Überprüfung → ok 鍵" },
		{ "c1 \xc2\x9b" "31m", "c1 ?31m" },            /* U+009B CSI */
		{ "rlo \xe2\x80\xae" "gpj.exe", "rlo ?gpj.exe" }, /* U+202E */
		{ "bad \xff\xfe end", "bad ?? end" },
		{ "cut \xe2\x82", "cut ??" },
		{ "overlong \xc0\xaf", "overlong ??" },
		{ "", "" },
	};
	size_t i;
	char *got;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		got = term_safe(cases[i].in);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("term_safe case %zu: got [%s], want [%s]", i, got, cases[i].want);
		free(got);
	}
	assert_null(term_safe(NULL));
}

/* ---- the inventory ---- */

static void inventory_table_aligns_both_sections(void **state)
{
	cJSON *inv = parse_or_fail(inventory_text);
	char *text = render(inventory_write_table, inv);

	(void)state;
	assert_non_null(strstr(text, "ADE VMs (2)\n"));
	assert_non_null(strstr(text, "  NAME          OS       FLAVOUR     KEK  VAULTS\n"));
	assert_non_null(strstr(text, "  vm1           Windows  current     yes  kv1, kv-rbac\n"));
	assert_non_null(strstr(text, "  vm?]0;pwned?  Linux    legacy-aad  no   -\n"));
	assert_non_null(strstr(text, "Key vaults (2)\n"));
	assert_non_null(strstr(text, "  kv1      accessPolicy  t1      Guest   1        found      get,list  none  -\n"));
	assert_non_null(strstr(text, "  kv-rbac  rbac          t1      -       1        unknown    -         -     "
	                             "Key Vault Administrator, Reader\n"));
	assert_null(strchr(text, '\033'));
	free(text);
	cJSON_Delete(inv);
}

static void inventory_table_shows_the_permissions_backup_needs_and_counts_the_others(void **state)
{
	cJSON *inv = parse_or_fail(
		"{\"vms\":[],\"vaults\":["
		" {\"name\":\"kv-a\",\"accessModel\":\"accessPolicy\",\"backupPermissions\":"
		"  {\"secrets\":[\"Set\",\"Backup\",\"delete\",\"Get\",\"purge\"],\"keys\":[\"wrapKey\",\"unwrapKey\"]}},"
		" {\"name\":\"kv-b\",\"accessModel\":\"accessPolicy\",\"backupPermissions\":"
		"  {\"secrets\":[\"get\",\"All\"],\"keys\":[\"list\",\"get\"]}}]}");
	char *text = render(inventory_write_table, inv);

	(void)state;
	assert_non_null(strstr(text, "  kv-a  accessPolicy  -       -       -        -          Get,Backup (+3)  (+2)      -\n"));
	assert_non_null(strstr(text, "  kv-b  accessPolicy  -       -       -        -          All              get,list  -\n"));
	free(text);
	cJSON_Delete(inv);
}

static void inventory_table_of_an_empty_estate_says_none(void **state)
{
	cJSON *inv = parse_or_fail("{\"vms\":[],\"vaults\":[]}");
	char *text = render(inventory_write_table, inv);
	struct kv_err err = { "" };

	(void)state;
	assert_string_equal(text, "ADE VMs: none\nKey vaults: none\n");
	assert_false(inventory_write_table(NULL, stdout, &err));
	assert_string_equal(err.msg, "cannot write the inventory: the report has no inventory");
	free(text);
	cJSON_Delete(inv);
}

static void inventory_csv_has_a_row_a_volume_and_a_row_a_vault(void **state)
{
	cJSON *inv = parse_or_fail(inventory_text), *rows;
	char *text = render(inventory_write_csv, inv);
	const cJSON *header;
	int ncols;

	(void)state;
	rows = csv_parse(text);
	header = cJSON_GetArrayItem(rows, 0);
	ncols = cJSON_GetArraySize(header);
	assert_int_equal(ncols, 26);
	assert_string_equal(cell_at(rows, 0, 0), "kind");
	assert_string_equal(cell_at(rows, 0, 25), "backup_roles");
	assert_int_equal(cJSON_GetArraySize(rows), 1 + 2 + 1 + 2);
	for (int r = 0; r < cJSON_GetArraySize(rows); r++)
		assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(rows, r)), ncols);
	/* volume rows */
	assert_string_equal(cell_at(rows, 1, 0), "volume");
	assert_string_equal(cell_at(rows, 1, 1), "vm1");
	assert_string_equal(cell_at(rows, 1, 9), "true");
	assert_string_equal(cell_at(rows, 1, 10), "vm1_OsDisk");
	assert_string_equal(cell_at(rows, 1, 14), "https://kv-rbac.vault.azure.net/keys/k/1");
	assert_string_equal(cell_at(rows, 2, 10), "vm1_data");
	assert_string_equal(cell_at(rows, 2, 13), "");
	/* a VM with no volume, its name kept as it is (CSV is not a terminal) */
	assert_string_equal(cell_at(rows, 3, 0), "vm");
	assert_string_equal(cell_at(rows, 3, 1), "vm\033]0;pwned\a");
	assert_string_equal(cell_at(rows, 3, 9), "false");
	/* vault rows */
	assert_string_equal(cell_at(rows, 4, 0), "vault");
	assert_string_equal(cell_at(rows, 4, 3), "kv1");
	assert_string_equal(cell_at(rows, 4, 1), "");
	assert_string_equal(cell_at(rows, 4, 16), "accessPolicy");
	assert_string_equal(cell_at(rows, 4, 19), "1");
	assert_string_equal(cell_at(rows, 4, 21), "found");
	assert_string_equal(cell_at(rows, 4, 23), "get;list");
	assert_string_equal(cell_at(rows, 4, 24), "");
	assert_string_equal(cell_at(rows, 5, 25), "Key Vault Administrator;Reader");
	assert_string_equal(cell_at(rows, 5, 20), "");
	cJSON_Delete(rows);
	free(text);
	cJSON_Delete(inv);
}

static void inventory_json_round_trips(void **state)
{
	cJSON *inv = parse_or_fail(inventory_text), *back;
	char *text = render(inventory_write_json, inv);

	(void)state;
	back = parse_or_fail(text);
	assert_true(cJSON_Compare(inv, back, true));
	assert_int_equal(text[strlen(text) - 1], '\n');
	cJSON_Delete(back);
	free(text);
	cJSON_Delete(inv);
}

/* ---- report_output ---- */

struct tmpdir {
	char path[64];
};

static int tmpdir_setup(void **state)
{
	struct tmpdir *t = kv_calloc(1, sizeof(*t));

	snprintf(t->path, sizeof(t->path), "/tmp/kvaudit-test-reports-XXXXXX");
	if (mkdtemp(t->path) == NULL) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

/* rm -r of what the tests create: files and directories two levels deep at most. */
static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (d == NULL) {
		unlink(path);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		char *child;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		child = kv_asprintf("%s/%s", path, e->d_name);
		remove_tree(child);
		free(child);
	}
	closedir(d);
	rmdir(path);
}

static int tmpdir_teardown(void **state)
{
	struct tmpdir *t = *state;

	remove_tree(t->path);
	free(t);
	return 0;
}

/* The sorted names in dir, joined with spaces (owned). */
static char *list_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char *names[32];
	size_t n = 0, i, j;
	struct kv_buf b;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL && n < 32)
		if (e->d_name[0] != '.')
			names[n++] = kv_strdup(e->d_name);
	closedir(d);
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char *x = names[j];

			names[j] = names[j - 1];
			names[j - 1] = x;
		}
	kv_buf_init(&b, 0);
	for (i = 0; i < n; i++) {
		kv_buf_addf(&b, "%s%s", i ? " " : "", names[i]);
		free(names[i]);
	}
	return kv_buf_detach(&b);
}

static char *slurp(const char *path)
{
	struct kv_err err = { "" };
	char *text = kv_read_file(path, 1 << 20, NULL, &err);

	if (text == NULL)
		fail_msg("%s", err.msg);
	return text;
}

static char *capture_info(void (*fn)(FILE *, void *), void *arg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	fn(f, arg);
	assert_int_equal(fclose(f), 0);
	return text;
}

struct output_call {
	const cJSON *report;
	const char *formats, *out;
	bool ok;
	struct kv_err err;
};

static void call_output(FILE *info, void *arg)
{
	struct output_call *c = arg;

	c->ok = report_output(c->report, c->formats, c->out, "20261128T120000Z", info, &c->err);
}

static void output_to_a_directory_writes_one_file_a_format(void **state)
{
	struct tmpdir *t = *state;
	cJSON *report = sample_report();
	struct output_call c = { report, "json, CSV,json", t->path, false, { "" } };
	char *info = capture_info(call_output, &c), *names, *want, *got, *path;

	if (!c.ok)
		fail_msg("%s", c.err.msg);
	names = list_dir(t->path);
	assert_string_equal(names, "kvaudit-20261128T120000Z.csv kvaudit-20261128T120000Z.json");
	want = kv_asprintf("wrote %s/kvaudit-20261128T120000Z.json\nwrote %s/kvaudit-20261128T120000Z.csv\n",
	                   t->path, t->path);
	assert_string_equal(info, want);

	path = kv_asprintf("%s/kvaudit-20261128T120000Z.json", t->path);
	got = slurp(path);
	free(want);
	want = render(report_write_json, report);
	assert_string_equal(got, want);
	free(got);
	free(want);
	free(path);
	path = kv_asprintf("%s/kvaudit-20261128T120000Z.csv", t->path);
	got = slurp(path);
	want = render(report_write_csv, report);
	assert_string_equal(got, want);
	free(got);
	free(want);
	free(path);
	free(names);
	free(info);
	cJSON_Delete(report);
}

static void output_to_a_new_directory_creates_it(void **state)
{
	struct tmpdir *t = *state;
	cJSON *report = sample_report();
	char *out = kv_asprintf("%s/a/b/", t->path), *sub, *names;
	struct kv_err err = { "" };
	struct stat st;

	if (!report_output(report, "csv", out, "20261128T120000Z", NULL, &err))
		fail_msg("%s", err.msg);
	sub = kv_asprintf("%s/a/b", t->path);
	assert_int_equal(stat(sub, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0755 & ~(unsigned)umask(022));
	names = list_dir(sub);
	assert_string_equal(names, "kvaudit-20261128T120000Z.csv");
	free(names);
	free(sub);
	free(out);
	cJSON_Delete(report);
}

static void output_to_a_file_path_takes_one_format(void **state)
{
	struct tmpdir *t = *state;
	cJSON *report = sample_report();
	char *out = kv_asprintf("%s/report.json", t->path), *names, *got, *want;
	struct kv_err err = { "" };

	assert_false(report_output(report, "json,csv", out, "x", NULL, &err));
	want = kv_asprintf("--out '%s' takes one format, got 2 (name a directory to write several)", out);
	assert_string_equal(err.msg, want);
	free(want);
	if (!report_output(report, "json", out, "x", NULL, &err))
		fail_msg("%s", err.msg);
	/* a second write replaces the file */
	if (!report_output(report, "json", out, "x", NULL, &err))
		fail_msg("%s", err.msg);
	names = list_dir(t->path);
	assert_string_equal(names, "report.json");
	got = slurp(out);
	want = render(report_write_json, report);
	assert_string_equal(got, want);
	free(got);
	free(want);
	free(names);
	free(out);
	cJSON_Delete(report);
}

static void output_to_stdout_takes_one_format(void **state)
{
	struct tmpdir *t = *state;
	cJSON *report = sample_report();
	char *file = kv_asprintf("%s/stdout.csv", t->path), *got, *want;
	struct kv_err err = { "" };
	int fd, saved;
	bool ok;

	assert_false(report_output(report, "json,csv", "-", "x", NULL, &err));
	assert_string_equal(err.msg, "--out - takes one format, got 2");

	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	ok = report_output(report, "csv,csv", "-", "x", NULL, &err);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	if (!ok)
		fail_msg("%s", err.msg);
	got = slurp(file);
	want = render(report_write_csv, report);
	assert_string_equal(got, want);
	free(got);
	free(want);
	free(file);
	cJSON_Delete(report);
}

static void output_to_a_fifo_writes_through_it_rather_than_replacing_it(void **state)
{
	struct tmpdir *t = *state;
	cJSON *report = sample_report();
	char *fifo = kv_asprintf("%s/pipe", t->path), *want, *names;
	char got[1 << 15];
	struct kv_err err = { "" };
	struct stat st;
	ssize_t n;
	int rd;

	assert_int_equal(mkfifo(fifo, 0600), 0);
	rd = open(fifo, O_RDONLY | O_NONBLOCK);
	assert_true(rd >= 0);
	if (!report_output(report, "csv", fifo, "x", NULL, &err))
		fail_msg("%s", err.msg);
	n = read(rd, got, sizeof(got) - 1);
	close(rd);
	assert_true(n > 0);
	got[n] = '\0';
	want = render(report_write_csv, report);
	assert_string_equal(got, want);
	assert_int_equal(lstat(fifo, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	names = list_dir(t->path);
	assert_string_equal(names, "pipe");
	free(names);
	free(want);
	free(fifo);
	cJSON_Delete(report);
}

static void output_rejects_unknown_and_missing_formats(void **state)
{
	struct tmpdir *t = *state;
	cJSON *report = sample_report();
	struct kv_err err = { "" };
	char *names;

	assert_false(report_output(report, "json,xml", t->path, "x", NULL, &err));
	assert_string_equal(err.msg, "unknown report format 'xml' (known: json, csv, html, sarif, junit, md)");
	assert_false(report_output(report, " , ", t->path, "x", NULL, &err));
	assert_string_equal(err.msg, "no report format given (known: json, csv, html, sarif, junit, md)");
	assert_false(report_output(report, NULL, t->path, "x", NULL, &err));
	names = list_dir(t->path);
	assert_string_equal(names, "");             /* nothing written before the check */
	assert_non_null(report_format_find("json"));
	assert_string_equal(report_format_find("CSV")->ext, "csv");
	assert_null(report_format_find("pdf"));
	assert_null(report_format_find(NULL));
	free(names);
	cJSON_Delete(report);
}

static void output_to_an_unwritable_path_names_it_and_leaves_no_temp_file(void **state)
{
	struct tmpdir *t = *state;
	cJSON *report = sample_report();
	char *file = kv_asprintf("%s/plain", t->path), *out, *want, *names;
	struct kv_err err = { "" };
	FILE *f = fopen(file, "w");

	assert_non_null(f);
	fclose(f);
	/* a regular file where a directory should be: fails even for root */
	out = kv_asprintf("%s/plain/report.csv", t->path);
	assert_false(report_output(report, "csv", out, "x", NULL, &err));
	want = kv_asprintf("cannot write '%s': Not a directory", out);
	assert_string_equal(err.msg, want);
	free(want);
	free(out);

	out = kv_asprintf("%s/plain/sub/", t->path);
	assert_false(report_output(report, "csv", out, "x", NULL, &err));
	want = kv_asprintf("cannot create directory '%s/plain/sub': Not a directory", t->path);
	assert_string_equal(err.msg, want);
	free(want);
	free(out);

	/* the report cannot be rendered: the temporary file is removed */
	out = kv_asprintf("%s/r.csv", t->path);
	assert_false(report_output(NULL, "csv", out, "x", NULL, &err));
	want = kv_asprintf("'%s': cannot write the CSV report: the report is not a JSON object", out);
	assert_string_equal(err.msg, want);
	free(want);
	free(out);

	names = list_dir(t->path);
	assert_string_equal(names, "plain");
	free(names);
	free(file);
	cJSON_Delete(report);
}

/* summary.skippedByRule (audit.h): one row a rule and reason, counts added, rows in order. */
static void skip_table_counts_per_rule_and_reason_in_order(void **state)
{
	struct skip_table t;
	cJSON *rows = cJSON_CreateArray();
	char reason[64];
	const cJSON *row;
	int n = 0;

	(void)state;
	skip_table_init(&t, rows);
	/* 300 reasons (the index grows several times), each added i % 3 + 1 times, in reverse */
	for (int i = 299; i >= 0; i--)
		for (int k = 0; k <= i % 3; k++) {
			snprintf(reason, sizeof(reason), "reason %03d", i);
			skip_table_add(&t, i % 2 ? "KVA-B" : "KVA-A", "title", "high", reason, 1);
		}
	skip_table_add(&t, "KVA-A", "title", "high", NULL, 2);    /* no reason: a row of its own, first */
	skip_table_add(&t, "KVA-A", "title", "high", NULL, 3);
	skip_table_finish(&t);
	assert_int_equal(cJSON_GetArraySize(rows), 301);
	{
		long total;

		assert_int_equal(report_skipped_rules(rows, &total), 2);
		assert_int_equal(total, 600 + 5);   /* i % 3 + 1 over 0..299 sums to 600, and the 5 */
	}
	row = rows->child;
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(row, "reason")));
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(row, "count")->valueint, 5);
	for (row = row->next; row; row = row->next, n++) {
		int i = atoi(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(row, "reason")) + 7);

		/* KVA-A's even reasons first, then KVA-B's odd ones, each in reason order */
		assert_int_equal(i, n < 150 ? 2 * n : 2 * (n - 150) + 1);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(row, "rule")),
		                    i % 2 ? "KVA-B" : "KVA-A");
		assert_int_equal(cJSON_GetObjectItemCaseSensitive(row, "count")->valueint, i % 3 + 1);
	}
	/* a table over existing rows adds to them (kvaudit merge) */
	skip_table_init(&t, rows);
	skip_table_add(&t, "KVA-B", "title", "high", "reason 001", 10);
	skip_table_finish(&t);
	assert_int_equal(cJSON_GetArraySize(rows), 301);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rows, 151), "count")->valueint, 12);
	cJSON_Delete(rows);
}

/* kvaudit report: listed skipped findings fold into the rows, but a tenant's; errors stay listed. */
static void fold_skipped_keeps_errors_and_tenant_findings(void **state)
{
	cJSON *rep = cJSON_Parse(
		"{\"summary\":{\"byStatus\":{\"skipped\":4},\"skippedByRule\":[{\"rule\":\"R2\",\"title\":\"t2\","
		"\"severity\":\"low\",\"reason\":\"why\",\"count\":5}]},\"findings\":["
		"{\"rule\":\"R1\",\"title\":\"t1\",\"severity\":\"high\",\"status\":\"fail\",\"subject\":\"vm\"},"
		"{\"rule\":\"R1\",\"title\":\"t1\",\"severity\":\"high\",\"status\":\"error\",\"subject\":\"vm\",\"reason\":\"403\"},"
		"{\"rule\":\"R2\",\"title\":\"t2\",\"severity\":\"low\",\"status\":\"skipped\",\"subject\":\"vm\",\"reason\":\"why\"},"
		"{\"rule\":\"R2\",\"title\":\"t2\",\"severity\":\"low\",\"status\":\"skipped\",\"subject\":\"binding\",\"reason\":\"why\"},"
		"{\"rule\":\"R1\",\"title\":\"t1\",\"severity\":\"high\",\"status\":\"skipped\",\"subject\":\"vault\",\"reason\":\"a\"},"
		"{\"rule\":\"T1\",\"title\":\"t\",\"severity\":\"info\",\"status\":\"skipped\",\"subject\":\"tenant\",\"reason\":\"b\"}]}");
	const cJSON *rows, *f;
	char *text;

	(void)state;
	assert_non_null(rep);
	audit_fold_skipped(rep);
	f = cJSON_GetObjectItemCaseSensitive(rep, "findings");
	assert_int_equal(cJSON_GetArraySize(f), 3);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(f, 1), "status")),
	                    "error");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(f, 2), "subject")),
	                    "tenant");
	rows = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rep, "summary"), "skippedByRule");
	text = cJSON_PrintUnformatted(rows);
	assert_string_equal(text, "[{\"rule\":\"R1\",\"title\":\"t1\",\"severity\":\"high\",\"reason\":\"a\",\"count\":1},"
	                          "{\"rule\":\"R2\",\"title\":\"t2\",\"severity\":\"low\",\"reason\":\"why\",\"count\":7}]");
	free(text);
	cJSON_Delete(rep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(skip_table_counts_per_rule_and_reason_in_order),
		cmocka_unit_test(fold_skipped_keeps_errors_and_tenant_findings),
		cmocka_unit_test(csv_cell_escapes_each_kind_of_text),
		cmocka_unit_test(csv_report_has_a_header_and_one_row_a_finding),
		cmocka_unit_test(csv_report_of_no_findings_is_the_header_alone),
		cmocka_unit_test(json_report_round_trips_and_ends_with_a_newline),
		cmocka_unit_test(json_writers_print_exactly_what_cjson_prints),
		cmocka_unit_test(writers_report_a_full_disk),
		cmocka_unit_test(summary_counts_and_lists_the_worst_failures_first),
		cmocka_unit_test(summary_shows_at_most_max_worst_findings),
		cmocka_unit_test(summary_uses_colour_only_when_asked),
		cmocka_unit_test(summary_of_a_clean_complete_scan_says_exit_code_zero),
		cmocka_unit_test(term_safe_neutralises_terminal_controls_and_keeps_utf8),
		cmocka_unit_test(inventory_table_aligns_both_sections),
		cmocka_unit_test(inventory_table_shows_the_permissions_backup_needs_and_counts_the_others),
		cmocka_unit_test(inventory_table_of_an_empty_estate_says_none),
		cmocka_unit_test(inventory_csv_has_a_row_a_volume_and_a_row_a_vault),
		cmocka_unit_test(inventory_json_round_trips),
		cmocka_unit_test_setup_teardown(output_to_a_directory_writes_one_file_a_format,
		                                tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(output_to_a_new_directory_creates_it, tmpdir_setup,
		                                tmpdir_teardown),
		cmocka_unit_test_setup_teardown(output_to_a_file_path_takes_one_format, tmpdir_setup,
		                                tmpdir_teardown),
		cmocka_unit_test_setup_teardown(output_to_stdout_takes_one_format, tmpdir_setup,
		                                tmpdir_teardown),
		cmocka_unit_test_setup_teardown(output_to_a_fifo_writes_through_it_rather_than_replacing_it,
		                                tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(output_rejects_unknown_and_missing_formats, tmpdir_setup,
		                                tmpdir_teardown),
		cmocka_unit_test_setup_teardown(output_to_an_unwritable_path_names_it_and_leaves_no_temp_file,
		                                tmpdir_setup, tmpdir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
