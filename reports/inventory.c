/*
 * inventory.c - the inventory (the "inventory" member of a report,
 * docs/report.md) as a terminal table, CSV or JSON.
 *
 * The table has two sections: the ADE VMs (name, OS, ADE flavour, whether
 * a KEK wraps the BEK, the vaults it depends on) and the key vaults (name,
 * access model, tenant, the caller's user type there, how many ADE VMs
 * depend on it, whether Backup Management Service was found, its secret
 * and key permissions on access-policy vaults (the ones Backup needs, and a
 * count of the others), its roles on RBAC vaults).
 * Every cell passes through term_safe().
 *
 * The CSV is one table (docs/report.md, "Inventory"), with the same rules
 * as the findings CSV (RFC 4180, CRLF, formula leaders neutralised):
 *
 *   kind,vm_name,vm,vault_name,vault,subscription_id,location,os,ade_flavour,
 *   kek,disk,bek_vault,secret_url,kek_vault,key_url,tenant,access_model,
 *   holds_bek,holds_kek,ade_vms,caller_user_type,backup_sp,
 *   backup_sp_object_id,backup_secrets,backup_keys,backup_roles
 *
 * kind is "volume" (one row a volume of an ADE VM: the vm_* to key_url
 * columns), "vm" (an ADE VM without a known volume) or "vault" (one row a
 * vault: vault_name, vault, subscription_id, location and tenant to
 * backup_roles).  Lists are joined with ';'; null and absent values are
 * empty cells; booleans are true/false.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/util/util.h"
#include "reports/report.h"

static const char *string_of(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/*
 * A JSON list of strings joined with sep (owned by the caller): NULL for
 * null or absent, empty_text for an empty array.
 */
static char *join_list(const cJSON *list, const char *sep, const char *empty_text)
{
	struct kv_buf b;
	const cJSON *v;
	bool first = true;

	if (!cJSON_IsArray(list))
		return NULL;
	kv_buf_init(&b, 0);
	cJSON_ArrayForEach(v, list) {
		if (!cJSON_IsString(v))
			continue;
		if (!first)
			kv_buf_adds(&b, sep);
		kv_buf_adds(&b, v->valuestring);
		first = false;
	}
	if (first) {
		kv_buf_release(&b);
		return kv_strdup(empty_text);
	}
	return kv_buf_detach(&b);
}

/* The last segment of an ARM ID ("…/vaults/kv1" → "kv1"). */
static const char *id_last_segment(const char *id)
{
	const char *slash = strrchr(id, '/');

	return slash != NULL && slash[1] != '\0' ? slash + 1 : id;
}

/* The name of the inventory vault whose ID is id (case-insensitive), else the ID's last segment. */
static const char *vault_name(const cJSON *inventory, const char *id)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(inventory, "vaults")) {
		if (kv_streq_ci(string_of(v, "id"), id) && !kv_empty(string_of(v, "name")))
			return string_of(v, "name");
	}
	return id_last_segment(id);
}

/* ---- the terminal table ---- */

#define MAX_COLS 10

struct table {
	size_t ncols;
	const char *headers[MAX_COLS];
	char **cells;           /* nrows * ncols, terminal-safe, owned */
	size_t nrows, cap;
};

/* Appends a row of ncols values (NULL or empty shows as "-"); copies them. */
static void table_add(struct table *t, const char *const *values)
{
	size_t i;

	if (t->nrows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 8;
		t->cells = kv_realloc(t->cells, t->cap * t->ncols * sizeof(*t->cells));
	}
	for (i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = term_safe(kv_empty(values[i]) ? "-" : values[i]);
	t->nrows++;
}

static void table_release(struct table *t)
{
	size_t i;

	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

/* Display width: UTF-8 code points (term_safe left only printable text). */
static size_t text_width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static void put_cell(FILE *f, const char *s, size_t width, bool last)
{
	size_t w = text_width(s);

	fputs(s, f);
	if (!last)
		fprintf(f, "%*s", (int)(width - w + 2), "");
}

/* Prints the section title and the table, columns aligned, two spaces apart. */
static void table_print(const struct table *t, FILE *f, const char *title)
{
	size_t widths[MAX_COLS];
	size_t r, c;

	if (t->nrows == 0) {
		fprintf(f, "%s: none\n", title);
		return;
	}
	fprintf(f, "%s (%zu)\n", title, t->nrows);
	for (c = 0; c < t->ncols; c++) {
		widths[c] = strlen(t->headers[c]);
		for (r = 0; r < t->nrows; r++) {
			size_t w = text_width(t->cells[r * t->ncols + c]);

			if (w > widths[c])
				widths[c] = w;
		}
	}
	fputs("  ", f);
	for (c = 0; c < t->ncols; c++)
		put_cell(f, t->headers[c], widths[c], c + 1 == t->ncols);
	fputc('\n', f);
	for (r = 0; r < t->nrows; r++) {
		fputs("  ", f);
		for (c = 0; c < t->ncols; c++)
			put_cell(f, t->cells[r * t->ncols + c], widths[c], c + 1 == t->ncols);
		fputc('\n', f);
	}
}

/* "kv1, kv2": the distinct vaults (BEK and KEK) a VM's volumes use, in first-seen order. */
static char *vm_vaults(const cJSON *inventory, const cJSON *vm)
{
	static const char *const keys[] = { "bekVault", "kekVault" };
	const cJSON *vol;
	const char *seen[64];
	size_t nseen = 0, i, k;
	struct kv_buf b;

	kv_buf_init(&b, 0);
	cJSON_ArrayForEach(vol, cJSON_GetObjectItemCaseSensitive(vm, "volumes")) {
		for (k = 0; k < 2; k++) {
			const char *id = string_of(vol, keys[k]);
			bool dup = false;

			if (kv_empty(id))
				continue;
			for (i = 0; i < nseen && !dup; i++)
				dup = kv_streq_ci(seen[i], id);
			if (dup)
				continue;
			if (nseen < sizeof(seen) / sizeof(seen[0]))
				seen[nseen++] = id;
			if (b.len > 0)
				kv_buf_adds(&b, ", ");
			kv_buf_adds(&b, vault_name(inventory, id));
		}
	}
	return kv_buf_detach(&b);
}

/*
 * A permission list as the table shows it: only what Backup needs (get,
 * list, backup: AZURE-FACTS, "Backup Management Service"), in that order and
 * as spelt in the vault, then "(+N)" for the others, so a vault granting
 * everything does not make the column hundreds of characters wide.  "all"
 * grants every permission.  NULL for null or absent, "none" for empty.
 */
static char *perm_summary(const cJSON *list)
{
	static const char *const needed[] = { "get", "list", "backup" };
	const cJSON *v;
	struct kv_buf b;
	size_t i;
	int total = 0, shown = 0;

	if (!cJSON_IsArray(list))
		return NULL;
	kv_buf_init(&b, 0);
	cJSON_ArrayForEach(v, list) {
		if (cJSON_IsString(v) && kv_streq_ci(v->valuestring, "all")) {
			kv_buf_release(&b);
			return kv_strdup(v->valuestring);
		}
		total += cJSON_IsString(v);
	}
	for (i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
		cJSON_ArrayForEach(v, list) {
			if (cJSON_IsString(v) && kv_streq_ci(v->valuestring, needed[i])) {
				kv_buf_addf(&b, "%s%s", shown > 0 ? "," : "", v->valuestring);
				shown++;
				break;
			}
		}
	}
	if (total == 0)
		kv_buf_adds(&b, "none");
	else if (total > shown)
		kv_buf_addf(&b, "%s(+%d)", shown > 0 ? " " : "", total - shown);
	return kv_buf_detach(&b);
}

static const char *yes_no(const cJSON *v)
{
	return cJSON_IsTrue(v) ? "yes" : cJSON_IsFalse(v) ? "no" : NULL;
}

bool inventory_write_table(const cJSON *inventory, FILE *f, struct kv_err *err)
{
	struct table vms = { .ncols = 5, .headers = { "NAME", "OS", "FLAVOUR", "KEK", "VAULTS" } };
	struct table vaults = { .ncols = 9,
	                        .headers = { "NAME", "ACCESS", "TENANT", "CALLER", "ADE VMS", "BACKUP SP",
	                                     "SECRETS", "KEYS", "ROLES" } };
	const cJSON *vm, *vault;
	bool ok = false;

	errno = 0;
	if (!cJSON_IsObject(inventory)) {
		kv_err_set(err, "cannot write the inventory: the report has no inventory");
		goto out;
	}
	cJSON_ArrayForEach(vm, cJSON_GetObjectItemCaseSensitive(inventory, "vms")) {
		char *names = vm_vaults(inventory, vm);
		const char *row[] = { string_of(vm, "name"), string_of(vm, "os"),
		                      string_of(vm, "adeFlavour"),
		                      yes_no(cJSON_GetObjectItemCaseSensitive(vm, "kek")), names };

		table_add(&vms, row);
		free(names);
	}
	cJSON_ArrayForEach(vault, cJSON_GetObjectItemCaseSensitive(inventory, "vaults")) {
		const cJSON *perms = cJSON_GetObjectItemCaseSensitive(vault, "backupPermissions");
		const cJSON *sp = cJSON_GetObjectItemCaseSensitive(vault, "backupSp");
		const cJSON *nvms = cJSON_GetObjectItemCaseSensitive(vault, "adeVms");
		char count[32] = "";
		char *secrets = perm_summary(cJSON_GetObjectItemCaseSensitive(perms, "secrets"));
		char *keys = perm_summary(cJSON_GetObjectItemCaseSensitive(perms, "keys"));
		char *roles = join_list(cJSON_GetObjectItemCaseSensitive(vault, "backupRoles"), ", ", "none");
		const char *row[] = { string_of(vault, "name"), string_of(vault, "accessModel"),
		                      string_of(vault, "tenantId"), string_of(vault, "callerUserType"),
		                      count, string_of(sp, "status"), secrets, keys, roles };

		if (cJSON_IsNumber(nvms))
			snprintf(count, sizeof(count), "%d", nvms->valueint);
		table_add(&vaults, row);
		free(secrets);
		free(keys);
		free(roles);
	}
	table_print(&vms, f, "ADE VMs");
	table_print(&vaults, f, "Key vaults");
	if (fflush(f) == EOF || ferror(f)) {
		kv_err_set(err, "cannot write the inventory: %s", errno != 0 ? strerror(errno) : "write error");
		goto out;
	}
	ok = true;
out:
	table_release(&vms);
	table_release(&vaults);
	return ok;
}

/* ---- CSV ---- */

enum inv_col {
	C_KIND, C_VM_NAME, C_VM, C_VAULT_NAME, C_VAULT, C_SUBSCRIPTION_ID, C_LOCATION, C_OS,
	C_ADE_FLAVOUR, C_KEK, C_DISK, C_BEK_VAULT, C_SECRET_URL, C_KEK_VAULT, C_KEY_URL, C_TENANT,
	C_ACCESS_MODEL, C_HOLDS_BEK, C_HOLDS_KEK, C_ADE_VMS, C_CALLER_USER_TYPE, C_BACKUP_SP,
	C_BACKUP_SP_OBJECT_ID, C_BACKUP_SECRETS, C_BACKUP_KEYS, C_BACKUP_ROLES, C_COUNT
};

static const char *const inv_headers[C_COUNT] = {
	"kind", "vm_name", "vm", "vault_name", "vault", "subscription_id", "location", "os",
	"ade_flavour", "kek", "disk", "bek_vault", "secret_url", "kek_vault", "key_url", "tenant",
	"access_model", "holds_bek", "holds_kek", "ade_vms", "caller_user_type", "backup_sp",
	"backup_sp_object_id", "backup_secrets", "backup_keys", "backup_roles",
};

/* One CSV row under construction: every cell owned (NULL is an empty cell). */
struct inv_row {
	char *cell[C_COUNT];
};

static void row_set(struct inv_row *r, enum inv_col c, const char *s)
{
	free(r->cell[c]);
	r->cell[c] = kv_strdup(s);
}

static void row_set_json(struct inv_row *r, enum inv_col c, const cJSON *v)
{
	char num[32];

	if (cJSON_IsString(v)) {
		row_set(r, c, v->valuestring);
	} else if (cJSON_IsBool(v)) {
		row_set(r, c, cJSON_IsTrue(v) ? "true" : "false");
	} else if (cJSON_IsNumber(v)) {
		snprintf(num, sizeof(num), "%d", v->valueint);
		row_set(r, c, num);
	}
}

static void row_clear(struct inv_row *r)
{
	size_t i;

	for (i = 0; i < C_COUNT; i++) {
		free(r->cell[i]);
		r->cell[i] = NULL;
	}
}

/* Renders the row (CRLF-terminated), writes it and clears it; false on a short write. */
static bool row_write(struct inv_row *r, FILE *f)
{
	struct kv_buf b;
	size_t i;
	bool ok;

	kv_buf_init(&b, 0);
	for (i = 0; i < C_COUNT; i++) {
		if (i > 0)
			kv_buf_addc(&b, ',');
		csv_cell(&b, r->cell[i]);
	}
	kv_buf_adds(&b, "\r\n");
	ok = fwrite(b.data, 1, b.len, f) == b.len;
	kv_buf_release(&b);
	row_clear(r);
	return ok;
}

static void row_vm(struct inv_row *r, const cJSON *vm)
{
	row_set(r, C_VM_NAME, string_of(vm, "name"));
	row_set(r, C_VM, string_of(vm, "id"));
	row_set(r, C_SUBSCRIPTION_ID, string_of(vm, "subscriptionId"));
	row_set(r, C_LOCATION, string_of(vm, "location"));
	row_set(r, C_OS, string_of(vm, "os"));
	row_set(r, C_ADE_FLAVOUR, string_of(vm, "adeFlavour"));
	row_set_json(r, C_KEK, cJSON_GetObjectItemCaseSensitive(vm, "kek"));
}

static void row_vault(struct inv_row *r, const cJSON *vault)
{
	const cJSON *sp = cJSON_GetObjectItemCaseSensitive(vault, "backupSp");
	const cJSON *perms = cJSON_GetObjectItemCaseSensitive(vault, "backupPermissions");

	row_set(r, C_KIND, "vault");
	row_set(r, C_VAULT_NAME, string_of(vault, "name"));
	row_set(r, C_VAULT, string_of(vault, "id"));
	row_set(r, C_SUBSCRIPTION_ID, string_of(vault, "subscriptionId"));
	row_set(r, C_LOCATION, string_of(vault, "location"));
	row_set(r, C_TENANT, string_of(vault, "tenantId"));
	row_set(r, C_ACCESS_MODEL, string_of(vault, "accessModel"));
	row_set_json(r, C_HOLDS_BEK, cJSON_GetObjectItemCaseSensitive(vault, "holdsBek"));
	row_set_json(r, C_HOLDS_KEK, cJSON_GetObjectItemCaseSensitive(vault, "holdsKek"));
	row_set_json(r, C_ADE_VMS, cJSON_GetObjectItemCaseSensitive(vault, "adeVms"));
	row_set(r, C_CALLER_USER_TYPE, string_of(vault, "callerUserType"));
	row_set(r, C_BACKUP_SP, string_of(sp, "status"));
	row_set(r, C_BACKUP_SP_OBJECT_ID, string_of(sp, "objectId"));
	r->cell[C_BACKUP_SECRETS] = join_list(cJSON_GetObjectItemCaseSensitive(perms, "secrets"), ";", "");
	r->cell[C_BACKUP_KEYS] = join_list(cJSON_GetObjectItemCaseSensitive(perms, "keys"), ";", "");
	r->cell[C_BACKUP_ROLES] = join_list(cJSON_GetObjectItemCaseSensitive(vault, "backupRoles"), ";", "");
}

bool inventory_write_csv(const cJSON *inventory, FILE *f, struct kv_err *err)
{
	struct inv_row row = { { NULL } };
	const cJSON *vm, *vol, *vault;
	size_t i;
	bool ok = false;

	errno = 0;
	if (!cJSON_IsObject(inventory)) {
		kv_err_set(err, "cannot write the inventory: the report has no inventory");
		goto out;
	}
	for (i = 0; i < C_COUNT; i++)
		row_set(&row, (enum inv_col)i, inv_headers[i]);
	if (!row_write(&row, f))
		goto write_error;
	cJSON_ArrayForEach(vm, cJSON_GetObjectItemCaseSensitive(inventory, "vms")) {
		const cJSON *volumes = cJSON_GetObjectItemCaseSensitive(vm, "volumes");

		if (cJSON_GetArraySize(volumes) == 0) {
			row_set(&row, C_KIND, "vm");
			row_vm(&row, vm);
			if (!row_write(&row, f))
				goto write_error;
			continue;
		}
		cJSON_ArrayForEach(vol, volumes) {
			row_set(&row, C_KIND, "volume");
			row_vm(&row, vm);
			row_set(&row, C_DISK, string_of(vol, "disk"));
			row_set(&row, C_BEK_VAULT, string_of(vol, "bekVault"));
			row_set(&row, C_SECRET_URL, string_of(vol, "secretUrl"));
			row_set(&row, C_KEK_VAULT, string_of(vol, "kekVault"));
			row_set(&row, C_KEY_URL, string_of(vol, "keyUrl"));
			if (!row_write(&row, f))
				goto write_error;
		}
	}
	cJSON_ArrayForEach(vault, cJSON_GetObjectItemCaseSensitive(inventory, "vaults")) {
		row_vault(&row, vault);
		if (!row_write(&row, f))
			goto write_error;
	}
	if (fflush(f) == EOF || ferror(f))
		goto write_error;
	ok = true;
	goto out;
write_error:
	kv_err_set(err, "cannot write the inventory: %s", errno != 0 ? strerror(errno) : "write error");
out:
	row_clear(&row);
	return ok;
}

/* ---- JSON ---- */

/*
 * inventory as cJSON_Print lays it out, but each member, and each element
 * of a member that is an array (the VMs, the vaults), printed and written
 * in turn: the inventory of a large estate is hundreds of MB of text, which
 * need not be one string.  0, 1 out of memory, EOF on a write error.
 */
static int put_inventory(const cJSON *inventory, FILE *f)
{
	const cJSON *m, *it;
	int rc = 0;

	if (!cJSON_IsObject(inventory) || inventory->child == NULL)
		return report_put_json(f, inventory, 0);
	if (fputs("{\n", f) == EOF)
		return EOF;
	cJSON_ArrayForEach(m, inventory) {
		cJSON *key = cJSON_CreateStringReference(m->string);
		char *k = key ? cJSON_PrintUnformatted(key) : NULL;

		cJSON_Delete(key);
		if (k == NULL)
			return 1;
		rc = fputc('\t', f) == EOF || fputs(k, f) == EOF || fputs(":\t", f) == EOF ? EOF : 0;
		cJSON_free(k);
		if (rc == 0 && cJSON_IsArray(m) && m->child) {
			rc = fputc('[', f) == EOF ? EOF : 0;
			cJSON_ArrayForEach(it, m) {
				if (rc == 0)
					rc = report_put_json(f, it, 2);
				if (rc == 0 && it->next && fputs(", ", f) == EOF)
					rc = EOF;
			}
			if (rc == 0 && fputc(']', f) == EOF)
				rc = EOF;
		} else if (rc == 0) {
			rc = report_put_json(f, m, 1);
		}
		if (rc == 0 && ((m->next && fputc(',', f) == EOF) || fputc('\n', f) == EOF))
			rc = EOF;
		if (rc != 0)
			return rc;
	}
	return fputc('}', f) == EOF ? EOF : 0;
}

bool inventory_write_json(const cJSON *inventory, FILE *f, struct kv_err *err)
{
	int rc;

	if (inventory == NULL) {
		kv_err_set(err, "cannot write the inventory: the report has no inventory");
		return false;
	}
	errno = 0;
	rc = put_inventory(inventory, f);
	if (rc == 1) {
		kv_err_set(err, "cannot render the inventory: out of memory");
		return false;
	}
	if (rc != 0 || fputc('\n', f) == EOF || fflush(f) == EOF || ferror(f)) {
		kv_err_set(err, "cannot write the inventory: %s", errno != 0 ? strerror(errno) : "write error");
		return false;
	}
	return true;
}
