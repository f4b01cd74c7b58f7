/*
 * html.c - the HTML report writer (docs/report.md, "HTML"): one
 * self-contained page, inline CSS, no script, no external resource, that
 * reads offline and prints:
 *
 *   header       source, times, cloud, caller, fail-on
 *   cards        counts by status, failing, ADE VMs, vaults, tenants, exit code
 *   chart        severity x status as an inline SVG stacked bar chart, and a table
 *   errors       resources that could not be read
 *   matrix       per vault: access model, tenant, caller's user type, Backup
 *                Management Service, its secret and key permissions against
 *                the "Azure Backup" template (get, list, backup), its roles
 *   findings     by key vault (full details), by VM (a table linking to the
 *                details; findings of a VM without a vault in full), then
 *                the rest (tenants); each with evidence, remediation, the
 *                change a fix would make and the equivalent az and
 *                PowerShell commands
 *
 * Every string from the report goes through xml_escape() (& < > " ' and
 * characters HTML cannot carry); report text is put in attributes only
 * escaped and quoted, and CSS classes come from fixed tables, never from
 * the report.  References become links only when they start with
 * "https://".  A Content-Security-Policy meta element forbids scripts and
 * remote loads, a second line of defence.  Commands are shown only when
 * every argument is printable ASCII; arguments outside a small safe set are
 * single-quoted for the shell or PowerShell.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/util/armid.h"
#include "audit/util/idmap.h"
#include "audit/util/util.h"
#include "reports/report.h"

static const char *const severities[] = { "critical", "high", "medium", "low", "info" };
static const char *const statuses[] = { "fail", "error", "skipped", "suppressed", "pass" };
#define NSEV (sizeof(severities) / sizeof(severities[0]))
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))
static const char *const status_colors[NSTATUS] = { "#c62828", "#6a1b9a", "#9e9e9e", "#546e7a", "#2e7d32" };
/* The permissions of the "Azure Backup" access-policy template, for secrets and for keys. */
static const char *const template_perms[] = { "get", "list", "backup" };
#define NTEMPLATE (sizeof(template_perms) / sizeof(template_perms[0]))

static const char CSS[] =
	"body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1c1c1c;background:#f6f7f9}"
	"main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}"
	"h1{font-size:24px;margin:8px 0}h2{font-size:19px;margin:28px 0 10px;border-bottom:1px solid #d0d4da;padding-bottom:4px}"
	"h3{font-size:16px;margin:18px 0 6px}h4{font-size:14px;margin:10px 0 4px}"
	".meta{color:#555;margin:0 0 12px}.meta span{margin-right:16px}"
	".cards{display:flex;flex-wrap:wrap;gap:10px}"
	".card{background:#fff;border:1px solid #d0d4da;border-top:4px solid #90a4ae;border-radius:6px;padding:8px 14px;min-width:110px}"
	".card .num{font-size:26px;font-weight:600}.card .label{color:#555}"
	".card.s-fail{border-top-color:#c62828}.card.s-error{border-top-color:#6a1b9a}.card.s-skipped{border-top-color:#9e9e9e}"
	".card.s-suppressed{border-top-color:#546e7a}.card.s-pass{border-top-color:#2e7d32}.card.exit{max-width:320px}"
	"table{border-collapse:collapse;background:#fff;margin:6px 0}th,td{border:1px solid #d0d4da;padding:3px 7px;text-align:left;vertical-align:top}"
	"th{background:#eceff1}td.n{text-align:right;font-variant-numeric:tabular-nums}"
	".matrix td{white-space:nowrap}.small{color:#666;font-size:12px;word-break:break-all;white-space:normal}"
	".p{display:inline-block;border-radius:3px;padding:0 5px;margin:1px;font-size:12px}"
	".p.has{background:#e8f5e9;color:#1b5e20}.p.miss{background:#ffebee;color:#b71c1c;font-weight:600}"
	".p.na{background:#f0f0f0;color:#999}.p.extra{background:#e3f2fd;color:#0d47a1}"
	".badge{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;font-weight:600;color:#fff;background:#78909c}"
	".sev-critical{background:#4a148c}.sev-high{background:#c62828}.sev-medium{background:#ef6c00}.sev-low{background:#0277bd}.sev-info{background:#78909c}"
	".st-fail{background:#c62828}.st-error{background:#6a1b9a}.st-skipped{background:#9e9e9e}.st-suppressed{background:#546e7a}.st-pass{background:#2e7d32}"
	"details.finding{background:#fff;border:1px solid #d0d4da;border-radius:5px;margin:6px 0;padding:4px 10px}"
	"details.finding>summary{cursor:pointer;padding:3px 0}details.finding .body{padding:4px 0 8px}"
	"pre{background:#263238;color:#eceff1;padding:8px 10px;border-radius:4px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}"
	"code{background:#eceff1;padding:0 3px;border-radius:3px}"
	"dl.ids{display:grid;grid-template-columns:max-content auto;gap:2px 10px;margin:6px 0}dl.ids dt{color:#555}dl.ids dd{margin:0;word-break:break-all}"
	"svg text{font:12px system-ui,sans-serif}"
	"@media print{details.finding{break-inside:avoid}body{background:#fff}}";

/* ---- small helpers ---- */

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jint(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valueint : 0;
}

/* Escaped text, or an em dash for NULL. */
static void text(struct kv_buf *b, const char *s)
{
	if (s == NULL)
		kv_buf_adds(b, "—");
	else
		xml_escape(b, s);
}

/* The index of s in a fixed table, or -1: CSS classes come only from the tables. */
static int lookup(const char *const *table, size_t n, const char *s)
{
	size_t i;

	for (i = 0; s != NULL && i < n; i++)
		if (strcmp(table[i], s) == 0)
			return (int)i;
	return -1;
}

static void badge(struct kv_buf *b, const char *prefix, const char *const *table, size_t n, const char *s)
{
	int i = lookup(table, n, s);

	if (i >= 0)
		kv_buf_addf(b, "<span class=\"badge %s%s\">%s</span>", prefix, table[i], table[i]);
	else {
		kv_buf_adds(b, "<span class=\"badge\">");
		text(b, s);
		kv_buf_adds(b, "</span>");
	}
}

/* JSON as text: a string as itself, anything else as compact JSON. */
static void json_value(struct kv_buf *b, const cJSON *v)
{
	char *s;

	if (cJSON_IsString(v)) {
		xml_escape(b, v->valuestring);
		return;
	}
	s = cJSON_PrintUnformatted(v);
	text(b, s);
	cJSON_free(s);
}

/* ---- commands ---- */

/* True when s is printable ASCII, so a shell or PowerShell reads it as shown. */
static bool printable_ascii(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/*
 * Appends " arg", single-quoted unless it holds only safe characters.
 * ps: PowerShell quoting (' doubled) instead of POSIX ('\'').
 */
static void cmd_arg(struct kv_buf *b, const char *s, bool ps)
{
	const char *p;
	bool safe = true;

	for (p = s; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("-_./:", *p) != NULL))
			safe = false;
	kv_buf_addc(b, ' ');
	if (safe) {
		kv_buf_adds(b, s);
		return;
	}
	kv_buf_addc(b, '\'');
	for (p = s; *p != '\0'; p++) {
		if (*p == '\'')
			kv_buf_adds(b, ps ? "''" : "'\\''");
		else
			kv_buf_addc(b, *p);
	}
	kv_buf_addc(b, '\'');
}

/* The inventory vault with this ID, or NULL. */
static const cJSON *find_vault(const cJSON *report, const char *id)
{
	const cJSON *inv = cJSON_GetObjectItemCaseSensitive(report, "inventory");
	const cJSON *v;

	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(inv, "vaults"))
		if (id != NULL && armid_eq(jstr(v, "id"), id))
			return v;
	return NULL;
}

/* Adds s to list (a JSON array of strings) unless it is there, case-insensitively. */
static void add_perm(cJSON *list, const char *s)
{
	const cJSON *x;

	cJSON_ArrayForEach(x, list)
		if (cJSON_IsString(x) && kv_streq_ci(x->valuestring, s))
			return;
	cJSON_AddItemToArray(list, cJSON_CreateString(s));
}

/*
 * The permissions a category should have after the change: what the vault
 * has (from the inventory; the template when unknown) plus what the change
 * adds.  az keyvault set-policy and Set-AzKeyVaultAccessPolicy replace a
 * category's list, so giving only the missing ones would revoke the rest.
 */
static cJSON *target_perms(const cJSON *vault, const char *cat, const cJSON *added)
{
	cJSON *list = cJSON_CreateArray();
	const cJSON *have = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(vault, "backupPermissions"), cat), *x;
	size_t i;

	if (cJSON_IsArray(have)) {
		cJSON_ArrayForEach(x, have)
			if (cJSON_IsString(x))
				add_perm(list, x->valuestring);
	} else {
		for (i = 0; i < NTEMPLATE; i++)
			add_perm(list, template_perms[i]);
	}
	cJSON_ArrayForEach(x, added)
		if (cJSON_IsString(x))
			add_perm(list, x->valuestring);
	return list;
}

/*
 * The az and PowerShell commands equivalent to a change, into az and ps.
 * Returns false (nothing written) for a change it does not know, or one
 * whose values are not printable ASCII.
 */
static bool change_commands(const cJSON *report, const cJSON *change, struct kv_buf *az, struct kv_buf *ps)
{
	static const struct { const char *cat, *az, *ps; } cats[] = {
		{ "secrets", "--secret-permissions", "-PermissionsToSecrets" },
		{ "keys", "--key-permissions", "-PermissionsToKeys" },
		{ "certificates", "--certificate-permissions", "-PermissionsToCertificates" },
	};
	const char *op = jstr(change, "operation");
	char sub[128], rg[128], name[128], role[128];
	size_t i;

	if (op != NULL && strcmp(op, "PUT accessPolicies/add") == 0) {
		const char *vault = jstr(change, "vault");
		const cJSON *pol = cJSON_GetObjectItemCaseSensitive(change, "accessPolicy");
		const cJSON *perms = cJSON_GetObjectItemCaseSensitive(pol, "permissions");
		const char *oid = jstr(pol, "objectId");
		const cJSON *inv_vault = find_vault(report, vault);
		bool any = false;

		if (!printable_ascii(vault) || !printable_ascii(oid) || !cJSON_IsObject(perms) ||
		    !armid_segment(vault, "subscriptions", sub, sizeof(sub)) ||
		    !armid_segment(vault, "resourceGroups", rg, sizeof(rg)) || !armid_name(vault, name, sizeof(name)))
			return false;
		kv_buf_adds(az, "az keyvault set-policy --subscription");
		cmd_arg(az, sub, false);
		kv_buf_adds(az, " --resource-group");
		cmd_arg(az, rg, false);
		kv_buf_adds(az, " --name");
		cmd_arg(az, name, false);
		kv_buf_adds(az, " --object-id");
		cmd_arg(az, oid, false);
		kv_buf_adds(ps, "Set-AzContext -Subscription");
		cmd_arg(ps, sub, true);
		kv_buf_adds(ps, "\nSet-AzKeyVaultAccessPolicy -VaultName");
		cmd_arg(ps, name, true);
		kv_buf_adds(ps, " -ResourceGroupName");
		cmd_arg(ps, rg, true);
		kv_buf_adds(ps, " -ObjectId");
		cmd_arg(ps, oid, true);
		for (i = 0; i < sizeof(cats) / sizeof(cats[0]); i++) {
			const cJSON *added = cJSON_GetObjectItemCaseSensitive(perms, cats[i].cat), *x;
			cJSON *list;
			bool first = true;

			if (!cJSON_IsArray(added) || cJSON_GetArraySize(added) == 0)
				continue;
			list = target_perms(inv_vault, cats[i].cat, added);
			kv_buf_addf(az, " %s", cats[i].az);
			kv_buf_addf(ps, " %s ", cats[i].ps);
			cJSON_ArrayForEach(x, list) {
				char *lower;

				if (!printable_ascii(x->valuestring))
					continue;
				lower = kv_lower(kv_strdup(x->valuestring));
				cmd_arg(az, lower, false);
				if (!first)
					kv_buf_addc(ps, ',');
				/* cmd_arg adds a space; PowerShell lists are comma-joined without one. */
				{
					struct kv_buf one;

					kv_buf_init(&one, 0);
					cmd_arg(&one, lower, true);
					kv_buf_adds(ps, one.data + 1);
					kv_buf_release(&one);
				}
				first = false;
				free(lower);
			}
			cJSON_Delete(list);
			any = true;
		}
		if (!any) {
			kv_buf_release(az);
			kv_buf_release(ps);
			return false;
		}
		return true;
	}
	if (op != NULL && strcmp(op, "PUT roleAssignments") == 0) {
		const char *scope = jstr(change, "scope"), *pid = jstr(change, "principalId");
		const char *rdef = jstr(change, "roleDefinitionId");

		if (!printable_ascii(scope) || !printable_ascii(pid) || !printable_ascii(rdef))
			return false;
		if (strchr(rdef, '/') != NULL) {
			if (!armid_name(rdef, role, sizeof(role)))
				return false;
		} else {
			kv_strlcpy(role, rdef, sizeof(role));
		}
		kv_buf_adds(az, "az role assignment create --assignee-object-id");
		cmd_arg(az, pid, false);
		kv_buf_adds(az, " --assignee-principal-type ServicePrincipal --role");
		cmd_arg(az, role, false);
		kv_buf_adds(az, " --scope");
		cmd_arg(az, scope, false);
		kv_buf_adds(ps, "New-AzRoleAssignment -ObjectId");
		cmd_arg(ps, pid, true);
		kv_buf_adds(ps, " -RoleDefinitionId");
		cmd_arg(ps, role, true);
		kv_buf_adds(ps, " -Scope");
		cmd_arg(ps, scope, true);
		return true;
	}
	return false;
}

/*
 * The kvaudit fix command for a finding with a fix and a vault: it plans;
 * --apply makes the change.  Vault settings need --include-vault-settings.
 */
static void fix_command(struct kv_buf *b, const cJSON *f, const char *fix)
{
	const char *rule = jstr(f, "rule"), *vault = jstr(f, "vault");
	struct kv_buf cmd;

	kv_buf_adds(b, "<h4>kvaudit</h4>\n");
	if (!printable_ascii(rule) || !printable_ascii(vault)) {
		kv_buf_adds(b, "<p>Fix <code>");
		xml_escape(b, fix);
		kv_buf_adds(b, "</code> (kvaudit fix)</p>\n");
		return;
	}
	kv_buf_init(&cmd, 0);
	kv_buf_adds(&cmd, "kvaudit fix --rule");
	cmd_arg(&cmd, rule, false);
	kv_buf_adds(&cmd, " --vault");
	cmd_arg(&cmd, vault, false);
	if (strcmp(fix, "vault-settings") == 0)
		kv_buf_adds(&cmd, " --include-vault-settings");
	kv_buf_adds(b, "<pre>");
	xml_escape(b, cmd.data);
	kv_buf_adds(b, "</pre>\n<p>This plans the change (fix <code>");
	xml_escape(b, fix);
	kv_buf_adds(b, "</code>); add <code>--apply</code> to make it.</p>\n");
	kv_buf_release(&cmd);
}

/* ---- sections ---- */

static void header(struct kv_buf *b, const cJSON *report)
{
	const cJSON *scan = cJSON_GetObjectItemCaseSensitive(report, "scan");
	const cJSON *caller = cJSON_GetObjectItemCaseSensitive(scan, "caller");
	const cJSON *complete = cJSON_GetObjectItemCaseSensitive(scan, "complete");
	const cJSON *tool = cJSON_GetObjectItemCaseSensitive(report, "tool");

	kv_buf_adds(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	               "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">\n"
	               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	               "<meta name=\"referrer\" content=\"no-referrer\">\n<title>kvaudit report: ");
	text(b, jstr(scan, "source"));
	kv_buf_addf(b, "</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n", CSS);
	kv_buf_adds(b, "<h1>kvaudit report</h1>\n<p class=\"meta\"><span>Source: <b>");
	text(b, jstr(scan, "source"));
	kv_buf_adds(b, "</b></span><span>Collected: ");
	text(b, jstr(scan, "collectedAt"));
	kv_buf_adds(b, "</span><span>Generated: ");
	text(b, jstr(scan, "generatedAt"));
	kv_buf_adds(b, "</span><span>Cloud: ");
	text(b, jstr(scan, "cloud"));
	kv_buf_adds(b, "</span><span>Fail on: ");
	text(b, jstr(scan, "failOn"));
	kv_buf_addf(b, "</span><span>Scan %s</span><span>kvaudit ", cJSON_IsFalse(complete) ? "<b>incomplete</b>" : "complete");
	text(b, jstr(tool, "version"));
	kv_buf_adds(b, "</span></p>\n");
	if (cJSON_IsObject(caller)) {
		kv_buf_adds(b, "<p class=\"meta\"><span>Caller: ");
		text(b, jstr(caller, "displayName"));
		kv_buf_adds(b, " (");
		text(b, jstr(caller, "type"));
		kv_buf_adds(b, ", ");
		text(b, jstr(caller, "userType"));
		kv_buf_adds(b, ")</span><span>Object ID: ");
		text(b, jstr(caller, "objectId"));
		kv_buf_adds(b, "</span><span>Tenant: ");
		text(b, jstr(caller, "tenantId"));
		kv_buf_adds(b, "</span></p>\n");
	}
}

static void card(struct kv_buf *b, const char *id, const char *cls, int n, const char *label)
{
	kv_buf_addf(b, "<div class=\"card%s%s\" id=\"card-%s\"><div class=\"num\">%d</div><div class=\"label\">",
	            *cls != '\0' ? " " : "", cls, id, n);
	xml_escape(b, label);
	kv_buf_adds(b, "</div></div>\n");
}

static void cards(struct kv_buf *b, const cJSON *report)
{
	const cJSON *summary = cJSON_GetObjectItemCaseSensitive(report, "summary");
	const cJSON *by_status = cJSON_GetObjectItemCaseSensitive(summary, "byStatus");
	const cJSON *subjects = cJSON_GetObjectItemCaseSensitive(summary, "subjects");
	const cJSON *scan = cJSON_GetObjectItemCaseSensitive(report, "scan");
	char label[96], cls[32];
	size_t i;
	int code = jint(summary, "exitCode");

	kv_buf_adds(b, "<h2 id=\"summary\">Summary</h2>\n<div class=\"cards\">\n");
	for (i = 0; i < NSTATUS; i++) {
		snprintf(cls, sizeof(cls), "s-%s", statuses[i]);
		card(b, statuses[i], cls, jint(by_status, statuses[i]), statuses[i]);
	}
	snprintf(label, sizeof(label), "failing at or above %s",
	         lookup(severities, NSEV, jstr(scan, "failOn")) >= 0 ? jstr(scan, "failOn") : "fail-on");
	card(b, "failing", "s-fail", jint(summary, "failing"), label);
	card(b, "adeVms", "", jint(summary, "adeVms"), "ADE VMs");
	card(b, "vaults", "", jint(subjects, "vault"), "key vaults");
	card(b, "tenants", "", jint(subjects, "tenant"), "tenants");
	snprintf(label, sizeof(label), "exit code: %s", report_exit_meaning(code));
	card(b, "exitCode", code == 0 ? "s-pass exit" : code == 1 ? "s-fail exit" : "s-error exit", code, label);
	kv_buf_adds(b, "</div>\n");
}

/* Severity x status: a stacked horizontal bar a severity, then the same numbers as a table. */
static void chart(struct kv_buf *b, const cJSON *report)
{
	const cJSON *by_sev = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(report, "summary"), "bySeverity");
	int counts[NSEV][NSTATUS], totals[NSEV], max = 0;
	const int label_w = 80, bar_w = 600, row_h = 26, top = 8;
	size_t i, j;

	for (i = 0; i < NSEV; i++) {
		const cJSON *row = cJSON_GetObjectItemCaseSensitive(by_sev, severities[i]);

		totals[i] = 0;
		for (j = 0; j < NSTATUS; j++) {
			counts[i][j] = jint(row, statuses[j]);
			if (counts[i][j] < 0)
				counts[i][j] = 0;
			totals[i] += counts[i][j];
		}
		if (totals[i] > max)
			max = totals[i];
	}
	kv_buf_adds(b, "<h2 id=\"chart\">Findings by severity and status</h2>\n");
	kv_buf_addf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"%d\" height=\"%d\" "
	               "viewBox=\"0 0 %d %d\" aria-labelledby=\"chart-title\">"
	               "<title id=\"chart-title\">Findings by severity and status</title>\n",
	            label_w + bar_w + 60, top + (int)NSEV * row_h + 30, label_w + bar_w + 60,
	            top + (int)NSEV * row_h + 30);
	for (i = 0; i < NSEV; i++) {
		int y = top + (int)i * row_h;
		double x = label_w;

		kv_buf_addf(b, "<text x=\"0\" y=\"%d\">%s</text>", y + 16, severities[i]);
		for (j = 0; j < NSTATUS; j++) {
			double w = max > 0 ? (double)counts[i][j] * bar_w / max : 0;

			if (counts[i][j] == 0)
				continue;
			kv_buf_addf(b, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\">"
			               "<title>%s %s: %d</title></rect>",
			            x, y + 3, w, row_h - 6, status_colors[j], severities[i], statuses[j], counts[i][j]);
			x += w;
		}
		kv_buf_addf(b, "<text x=\"%.1f\" y=\"%d\">%d</text>\n", x + 6, y + 16, totals[i]);
	}
	for (j = 0; j < NSTATUS; j++) {
		int x = label_w + (int)j * 110, y = top + (int)NSEV * row_h + 10;

		kv_buf_addf(b, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>"
		               "<text x=\"%d\" y=\"%d\">%s</text>", x, y, status_colors[j], x + 16, y + 11, statuses[j]);
	}
	kv_buf_adds(b, "\n</svg>\n<table id=\"severity-status\"><thead><tr><th>severity</th>");
	for (j = 0; j < NSTATUS; j++)
		kv_buf_addf(b, "<th>%s</th>", statuses[j]);
	kv_buf_adds(b, "</tr></thead><tbody>\n");
	for (i = 0; i < NSEV; i++) {
		kv_buf_addf(b, "<tr><th>%s</th>", severities[i]);
		for (j = 0; j < NSTATUS; j++)
			kv_buf_addf(b, "<td class=\"n\">%d</td>", counts[i][j]);
		kv_buf_adds(b, "</tr>\n");
	}
	kv_buf_adds(b, "</tbody></table>\n");
}

static void errors_section(struct kv_buf *b, const cJSON *report)
{
	const cJSON *errors = cJSON_GetObjectItemCaseSensitive(report, "errors"), *e;

	if (cJSON_GetArraySize(errors) == 0)
		return;
	kv_buf_adds(b, "<h2 id=\"errors\">Resources that could not be read</h2>\n"
	               "<table><thead><tr><th>scope</th><th>status</th><th>code</th><th>message</th></tr></thead><tbody>\n");
	cJSON_ArrayForEach(e, errors) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "status");

		kv_buf_adds(b, "<tr><td class=\"small\">");
		text(b, jstr(e, "scope"));
		if (cJSON_IsNumber(st))
			kv_buf_addf(b, "</td><td class=\"n\">%d</td><td>", st->valueint);
		else
			kv_buf_adds(b, "</td><td>—</td><td>");
		text(b, jstr(e, "code"));
		kv_buf_adds(b, "</td><td>");
		text(b, jstr(e, "message"));
		kv_buf_adds(b, "</td></tr>\n");
	}
	kv_buf_adds(b, "</tbody></table>\n");
}

/*
 * Skipped findings that are counted, not listed (summary.skippedByRule):
 * one row a rule and reason, with what collects the missing fact.
 */
static void not_evaluated(struct kv_buf *b, const cJSON *report)
{
	const cJSON *rows = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(report, "summary"),
	                                                     "skippedByRule"), *row;
	long total;
	int nrules = report_skipped_rules(rows, &total);

	if (nrules == 0)
		return;
	kv_buf_addf(b, "<h2 id=\"not-evaluated\">Not evaluated: %d rule%s — why, and the flag that collects it</h2>\n"
	               "<p class=\"small\">%ld skipped finding%s, counted here rather than listed one by one "
	               "(a report made with --include-skipped lists them).</p>\n"
	               "<table id=\"skipped-by-rule\"><thead><tr><th>rule</th><th>severity</th><th>title</th>"
	               "<th>subjects</th><th>why</th><th>collected by</th></tr></thead><tbody>\n",
	            nrules, nrules == 1 ? "" : "s", total, total == 1 ? "" : "s");
	cJSON_ArrayForEach(row, rows) {
		kv_buf_adds(b, "<tr><td>");
		report_skip_cells(b, row, text, "</td><td>");
		kv_buf_adds(b, "</td></tr>\n");
	}
	kv_buf_adds(b, "</tbody></table>\n");
}

/*
 * The template permissions as chips (has, missing when needed, not needed)
 * and "+N" for the others the vault grants; "all" grants everything.
 */
static void perm_cell(struct kv_buf *b, const cJSON *have, bool needed)
{
	const cJSON *x;
	bool all = false;
	int extra = 0;
	size_t i;

	if (!cJSON_IsArray(have)) {
		kv_buf_adds(b, "<td>unknown</td>");
		return;
	}
	cJSON_ArrayForEach(x, have)
		if (cJSON_IsString(x) && kv_streq_ci(x->valuestring, "all"))
			all = true;
	kv_buf_adds(b, "<td>");
	for (i = 0; i < NTEMPLATE; i++) {
		bool has = all;

		cJSON_ArrayForEach(x, have)
			if (cJSON_IsString(x) && kv_streq_ci(x->valuestring, template_perms[i]))
				has = true;
		kv_buf_addf(b, "<span class=\"p %s\">%s %s</span>", has ? "has" : needed ? "miss" : "na",
		            has ? "✓" : "✗", template_perms[i]);
	}
	cJSON_ArrayForEach(x, have) {
		bool tmpl = false;

		if (!cJSON_IsString(x) || kv_streq_ci(x->valuestring, "all"))
			continue;
		for (i = 0; i < NTEMPLATE; i++)
			tmpl = tmpl || kv_streq_ci(x->valuestring, template_perms[i]);
		if (!tmpl)
			extra++;
	}
	if (all)
		kv_buf_adds(b, "<span class=\"p extra\">all</span>");
	else if (extra > 0)
		kv_buf_addf(b, "<span class=\"p extra\">+%d</span>", extra);
	kv_buf_adds(b, "</td>");
}

static void matrix(struct kv_buf *b, const cJSON *report)
{
	const cJSON *vaults = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(report, "inventory"), "vaults"), *v;

	kv_buf_addf(b, "<h2 id=\"matrix\">Key vault permissions (%d)</h2>\n", cJSON_GetArraySize(vaults));
	if (cJSON_GetArraySize(vaults) == 0) {
		kv_buf_adds(b, "<p>No key vaults in the inventory.</p>\n");
		return;
	}
	kv_buf_adds(b, "<p>What Backup Management Service has on each vault against what the "
	               "“Azure Backup” template grants (secrets and keys: get, list, backup). "
	               "<span class=\"p has\">✓</span> granted, <span class=\"p miss\">✗</span> missing and needed, "
	               "<span class=\"p na\">✗</span> not needed (the vault holds no BEK or no KEK).</p>\n"
	               "<table class=\"matrix\" id=\"vault-matrix\"><thead><tr><th>key vault</th><th>tenant</th>"
	               "<th>access model</th><th>caller</th><th>ADE VMs</th><th>holds</th><th>Backup SP</th>"
	               "<th>secrets</th><th>keys</th><th>roles</th></tr></thead><tbody>\n");
	cJSON_ArrayForEach(v, vaults) {
		const char *model = jstr(v, "accessModel");
		const cJSON *perms = cJSON_GetObjectItemCaseSensitive(v, "backupPermissions");
		const cJSON *roles = cJSON_GetObjectItemCaseSensitive(v, "backupRoles"), *r;
		const cJSON *sp = cJSON_GetObjectItemCaseSensitive(v, "backupSp");
		bool bek = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "holdsBek"));
		bool kek = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "holdsKek"));
		bool rbac = model != NULL && strcmp(model, "rbac") == 0;

		kv_buf_adds(b, "<tr><td><b>");
		text(b, jstr(v, "name"));
		kv_buf_adds(b, "</b><div class=\"small\">");
		text(b, jstr(v, "id"));
		kv_buf_adds(b, "</div></td><td class=\"small\">");
		text(b, jstr(v, "tenantId"));
		kv_buf_adds(b, "</td><td>");
		text(b, rbac ? "RBAC" : model != NULL && strcmp(model, "accessPolicy") == 0 ? "access policy" : model);
		kv_buf_adds(b, "</td><td>");
		text(b, jstr(v, "callerUserType"));
		kv_buf_addf(b, "</td><td class=\"n\">%d</td><td>%s</td><td>", jint(v, "adeVms"),
		            bek && kek ? "BEK, KEK" : bek ? "BEK" : kek ? "KEK" : "—");
		text(b, jstr(sp, "status"));
		if (jstr(sp, "objectId") != NULL) {
			kv_buf_adds(b, "<div class=\"small\">");
			xml_escape(b, jstr(sp, "objectId"));
			kv_buf_adds(b, "</div>");
		}
		kv_buf_adds(b, "</td>");
		if (rbac) {
			kv_buf_adds(b, "<td colspan=\"2\">RBAC: see roles</td>");
		} else if (!cJSON_IsObject(perms)) {
			kv_buf_adds(b, "<td>unknown</td><td>unknown</td>");
		} else {
			perm_cell(b, cJSON_GetObjectItemCaseSensitive(perms, "secrets"), bek);
			perm_cell(b, cJSON_GetObjectItemCaseSensitive(perms, "keys"), kek);
		}
		kv_buf_adds(b, "<td>");
		if (!cJSON_IsArray(roles))
			kv_buf_adds(b, "—");
		else if (cJSON_GetArraySize(roles) == 0)
			kv_buf_adds(b, "<span class=\"p miss\">none</span>");
		cJSON_ArrayForEach(r, roles) {
			if (!cJSON_IsString(r))
				continue;
			kv_buf_adds(b, "<div>");
			xml_escape(b, r->valuestring);
			kv_buf_adds(b, "</div>");
		}
		kv_buf_adds(b, "</td></tr>\n");
	}
	kv_buf_adds(b, "</tbody></table>\n");
}

/* A finding in full, as <details id="f-INDEX">; open when it fails or errs. */
static void finding_details(struct kv_buf *b, const cJSON *report, const cJSON *f, int index)
{
	const char *status = jstr(f, "status");
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(f, "evidence"), *e;
	const cJSON *rem = cJSON_GetObjectItemCaseSensitive(f, "remediation");
	const cJSON *change = cJSON_GetObjectItemCaseSensitive(rem, "change");
	const cJSON *refs = cJSON_GetObjectItemCaseSensitive(f, "references"), *r;
	const cJSON *sup = cJSON_GetObjectItemCaseSensitive(f, "suppression");
	static const struct { const char *key, *label; } ids[] = {
		{ "vm", "VM" }, { "vault", "key vault" }, { "subscription", "subscription" }, { "tenant", "tenant" },
	};
	int st = lookup(statuses, NSTATUS, status);
	size_t i;

	kv_buf_addf(b, "<details class=\"finding\" id=\"f-%d\"%s><summary>", index,
	            st == 0 || st == 1 ? " open" : "");
	badge(b, "sev-", severities, NSEV, jstr(f, "severity"));
	kv_buf_adds(b, " ");
	badge(b, "st-", statuses, NSTATUS, status);
	kv_buf_adds(b, " <code>");
	text(b, jstr(f, "rule"));
	kv_buf_adds(b, "</code> ");
	report_subject(b, f, xml_escape, " → ", "—");
	kv_buf_adds(b, ": ");
	text(b, jstr(f, "title"));
	kv_buf_adds(b, "</summary>\n<div class=\"body\">\n<p>");
	text(b, jstr(f, "message"));
	kv_buf_adds(b, "</p>\n");
	{
		/* Azure Backup's own verdict next to a key vault permission finding. */
		struct kv_buf note;

		kv_buf_init(&note, 4096);
		if (report_azure_backup_note(&note, f) && note.data) {
			kv_buf_adds(b, "<p class=\"azure-backup\"><b>");
			text(b, note.data);
			kv_buf_adds(b, "</b></p>\n");
		}
		kv_buf_release(&note);
	}
	if (jstr(f, "reason") != NULL && (jstr(f, "message") == NULL ||
	                                  strcmp(jstr(f, "reason"), jstr(f, "message")) != 0)) {
		kv_buf_adds(b, "<p><b>Reason:</b> ");
		xml_escape(b, jstr(f, "reason"));
		kv_buf_adds(b, "</p>\n");
	}
	if (cJSON_IsObject(sup)) {
		bool expired = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sup, "expired"));

		kv_buf_addf(b, "<p><b>%s</b> ", expired ? "Suppression expired:" : "Suppressed:");
		text(b, jstr(sup, "reason"));
		kv_buf_adds(b, " (owner ");
		text(b, jstr(sup, "owner"));
		kv_buf_adds(b, ", expires ");
		text(b, jstr(sup, "expires"));
		kv_buf_adds(b, ", resource pattern <code>");
		text(b, jstr(sup, "resource"));
		kv_buf_adds(b, "</code>)</p>\n");
	}
	kv_buf_adds(b, "<dl class=\"ids\">");
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		if (jstr(f, ids[i].key) == NULL)
			continue;
		kv_buf_addf(b, "<dt>%s</dt><dd>", ids[i].label);
		xml_escape(b, jstr(f, ids[i].key));
		kv_buf_adds(b, "</dd>");
	}
	kv_buf_adds(b, "</dl>\n");
	if (cJSON_IsObject(ev) && ev->child != NULL) {
		kv_buf_adds(b, "<table class=\"evidence\"><thead><tr><th>evidence</th><th>value</th></tr></thead><tbody>");
		cJSON_ArrayForEach(e, ev) {
			kv_buf_adds(b, "<tr><td><code>");
			text(b, e->string);
			kv_buf_adds(b, "</code></td><td>");
			json_value(b, e);
			kv_buf_adds(b, "</td></tr>");
		}
		kv_buf_adds(b, "</tbody></table>\n");
	}
	if (cJSON_IsObject(rem) && (st == 0 || st == 1 || st == 3)) {
		struct kv_buf az, ps;

		kv_buf_adds(b, "<h4>Remediation</h4>\n<p>");
		text(b, jstr(rem, "text"));
		kv_buf_adds(b, "</p>\n");
		if (jstr(rem, "fix") != NULL)
			fix_command(b, f, jstr(rem, "fix"));
		kv_buf_init(&az, 0);
		kv_buf_init(&ps, 0);
		if (cJSON_IsObject(change) && change_commands(report, change, &az, &ps)) {
			kv_buf_adds(b, "<h4>Azure CLI</h4>\n<pre>");
			xml_escape(b, az.data);
			kv_buf_adds(b, "</pre>\n<h4>PowerShell</h4>\n<pre>");
			xml_escape(b, ps.data);
			kv_buf_adds(b, "</pre>\n");
		}
		kv_buf_release(&az);
		kv_buf_release(&ps);
		if (cJSON_IsObject(change)) {
			char *json = cJSON_Print(change);

			kv_buf_adds(b, "<h4>The change</h4>\n<pre>");
			text(b, json);
			kv_buf_adds(b, "</pre>\n");
			cJSON_free(json);
		}
	}
	if (cJSON_GetArraySize(refs) > 0) {
		kv_buf_adds(b, "<h4>References</h4>\n<ul>");
		cJSON_ArrayForEach(r, refs) {
			if (!cJSON_IsString(r))
				continue;
			kv_buf_adds(b, "<li>");
			if (kv_startswith_ci(r->valuestring, "https://")) {
				kv_buf_adds(b, "<a rel=\"noreferrer noopener\" href=\"");
				xml_escape(b, r->valuestring);
				kv_buf_adds(b, "\">");
				xml_escape(b, r->valuestring);
				kv_buf_adds(b, "</a>");
			} else {
				xml_escape(b, r->valuestring);
			}
			kv_buf_adds(b, "</li>");
		}
		kv_buf_adds(b, "</ul>\n");
	}
	kv_buf_adds(b, "</div>\n</details>\n");
}

/* "3 fail, 1 error, 12 pass": the statuses of the findings of a group. */
/*
 * The findings grouped by the ARM ID under key ("vault", "vm"; compared as
 * armid_eq does): groups in the order of their first finding, each with the
 * indexes of its findings in report order.  One pass through a hash map: a
 * report of 10k VMs has some 80k findings, and comparing each with every
 * earlier one (through cJSON_GetArrayItem, itself a walk) never finished.
 */
struct group {
	size_t *ix, n;
};

struct groups {
	const cJSON **all;           /* every finding, by index */
	size_t nall;
	struct group *g;
	size_t ng;
};

static void group_by(struct groups *G, const cJSON *findings, const char *key)
{
	struct idmap map;
	const cJSON *f;
	size_t i = 0, gi;

	memset(G, 0, sizeof(*G));
	idmap_init(&map);
	G->all = kv_calloc((size_t)cJSON_GetArraySize(findings) + 1, sizeof(*G->all));
	cJSON_ArrayForEach(f, findings)
		G->all[G->nall++] = f;
	for (i = 0; i < G->nall; i++) {
		const char *id = jstr(G->all[i], key);
		struct group *g;

		if (id == NULL)
			continue;
		if (!idmap_get(&map, id, &gi)) {
			gi = G->ng++;
			G->g = kv_realloc(G->g, G->ng * sizeof(*G->g));
			memset(&G->g[gi], 0, sizeof(G->g[gi]));
			idmap_put(&map, id, gi);
		}
		g = &G->g[gi];
		if ((g->n & (g->n - 1)) == 0)   /* 0, 1, 2, 4, ...: grow by doubling */
			g->ix = kv_realloc(g->ix, (g->n ? g->n * 2 : 1) * sizeof(*g->ix));
		g->ix[g->n++] = i;
	}
	idmap_release(&map);
}

static void groups_release(struct groups *G)
{
	for (size_t i = 0; i < G->ng; i++)
		free(G->g[i].ix);
	free(G->g);
	free(G->all);
}

static void group_counts(struct kv_buf *b, const struct groups *G, const struct group *g)
{
	int n[NSTATUS] = { 0 };
	size_t j;
	bool first = true;

	for (j = 0; j < g->n; j++) {
		int s = lookup(statuses, NSTATUS, jstr(G->all[g->ix[j]], "status"));

		if (s >= 0)
			n[s]++;
	}
	kv_buf_adds(b, " <span class=\"small\">(");
	for (j = 0; j < NSTATUS; j++) {
		if (n[j] == 0)
			continue;
		kv_buf_addf(b, "%s%d %s", first ? "" : ", ", n[j], statuses[j]);
		first = false;
	}
	kv_buf_adds(b, ")</span>");
}

/* A key vault's findings in full. */
static void vault_group(struct kv_buf *b, const cJSON *report, const struct groups *G, const struct group *gr)
{
	for (size_t j = 0; j < gr->n; j++)
		finding_details(b, report, G->all[gr->ix[j]], (int)gr->ix[j]);
}

/* A VM's findings as a table linking to them; its own findings (no vault) appear in full here only. */
static void vm_group(struct kv_buf *b, const cJSON *report, const struct groups *G, const struct group *gr)
{
	kv_buf_adds(b, "<table><thead><tr><th>severity</th><th>status</th><th>rule</th>"
	               "<th>key vault</th><th>message</th></tr></thead><tbody>\n");
	for (size_t j = 0; j < gr->n; j++) {
		int k = (int)gr->ix[j];
		const cJSON *g = G->all[k];

		kv_buf_adds(b, "<tr><td>");
		badge(b, "sev-", severities, NSEV, jstr(g, "severity"));
		kv_buf_adds(b, "</td><td>");
		badge(b, "st-", statuses, NSTATUS, jstr(g, "status"));
		kv_buf_addf(b, "</td><td><a href=\"#f-%d\">", k);
		text(b, jstr(g, "rule"));
		kv_buf_adds(b, "</a></td><td>");
		text(b, jstr(g, "vaultName") != NULL ? jstr(g, "vaultName") : jstr(g, "vault"));
		kv_buf_adds(b, "</td><td>");
		text(b, jstr(g, "message"));
		kv_buf_adds(b, "</td></tr>\n");
	}
	kv_buf_adds(b, "</tbody></table>\n");
	for (size_t j = 0; j < gr->n; j++)
		if (jstr(G->all[gr->ix[j]], "vault") == NULL)
			finding_details(b, report, G->all[gr->ix[j]], (int)gr->ix[j]);
}

/*
 * One section per key (id_key: "vault" or "vm") under the heading h2: its
 * name (else its ID) with counts, the ID, then body; none when no finding
 * has the key.
 */
static void findings_grouped(struct kv_buf *b, const cJSON *report, const cJSON *findings, const char *id_key,
                             const char *name_key, const char *h2, const char *none,
                             void (*body)(struct kv_buf *b, const cJSON *report, const struct groups *G,
                                          const struct group *gr))
{
	struct groups G;

	group_by(&G, findings, id_key);
	kv_buf_adds(b, h2);
	for (size_t gi = 0; gi < G.ng; gi++) {
		const struct group *gr = &G.g[gi];
		const cJSON *f = G.all[gr->ix[0]];

		kv_buf_adds(b, "<section class=\"group\"><h3>");
		text(b, jstr(f, name_key) != NULL ? jstr(f, name_key) : jstr(f, id_key));
		group_counts(b, &G, gr);
		kv_buf_adds(b, "</h3>\n<div class=\"small\">");
		xml_escape(b, jstr(f, id_key));
		kv_buf_adds(b, "</div>\n");
		body(b, report, &G, gr);
		kv_buf_adds(b, "</section>\n");
	}
	if (G.ng == 0)
		kv_buf_adds(b, none);
	groups_release(&G);
}

static void findings_by_vault(struct kv_buf *b, const cJSON *report, const cJSON *findings)
{
	findings_grouped(b, report, findings, "vault", "vaultName", "<h2 id=\"by-vault\">Findings by key vault</h2>\n",
	                 "<p>No listed finding concerns a key vault.</p>\n", vault_group);
}

static void findings_by_vm(struct kv_buf *b, const cJSON *report, const cJSON *findings)
{
	findings_grouped(b, report, findings, "vm", "vmName", "<h2 id=\"by-vm\">Findings by VM</h2>\n",
	                 "<p>No listed finding concerns a VM.</p>\n", vm_group);
}

static void findings_other(struct kv_buf *b, const cJSON *report, const cJSON *findings)
{
	const cJSON *f;
	int i = -1;
	bool any = false;

	cJSON_ArrayForEach(f, findings) {
		i++;
		if (jstr(f, "vm") != NULL || jstr(f, "vault") != NULL)
			continue;
		if (!any)
			kv_buf_adds(b, "<h2 id=\"by-tenant\">Tenant and other findings</h2>\n");
		any = true;
		finding_details(b, report, f, i);
	}
}

bool report_write_html(const cJSON *report, FILE *f, struct kv_err *err)
{
	struct kv_buf b;
	const cJSON *findings;
	bool ok = false;

	kv_buf_init(&b, 0);
	if (!cJSON_IsObject(report)) {
		kv_err_set(err, "cannot write the HTML report: the report is not a JSON object");
		goto out;
	}
	findings = cJSON_GetObjectItemCaseSensitive(report, "findings");
	header(&b, report);
	cards(&b, report);
	chart(&b, report);
	errors_section(&b, report);
	not_evaluated(&b, report);
	matrix(&b, report);
	findings_by_vault(&b, report, findings);
	findings_by_vm(&b, report, findings);
	findings_other(&b, report, findings);
	kv_buf_adds(&b, "<p class=\"small\">Generated by kvaudit from a kvaudit.report document; "
	                "passing findings are listed only when the report was made with --include-pass, "
	                "skipped ones only with --include-skipped.</p>\n"
	                "</main>\n</body>\n</html>\n");
	errno = 0;
	if (fwrite(b.data, 1, b.len, f) != b.len || fflush(f) == EOF || ferror(f)) {
		kv_err_set(err, "cannot write the HTML report: %s", errno != 0 ? strerror(errno) : "write error");
		goto out;
	}
	ok = true;
out:
	kv_buf_release(&b);
	return ok;
}
