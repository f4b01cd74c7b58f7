/*
 * ade.c - Azure Disk Encryption detection.  See ade.h and AZURE-FACTS a1-a6.
 *
 * Volumes are collected from every source and merged by disk name, so a
 * managed disk seen both as a resource and in the instance view is one
 * volume with two sources.  The extension adds a volume only when no other
 * source names one (extension-only evidence), since its settings are what
 * was asked for, while disks and instance views say what is in effect.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/estate/ade.h"
#include "audit/util/armid.h"
#include "audit/util/fastjson.h"

/* A string that is present and non-empty, else NULL: absent, null and "" are alike (a1). */
static const char *nonempty(const cJSON *obj, const char *key)
{
	const cJSON *j = fastjson_get(obj, key);

	return cJSON_IsString(j) && j->valuestring[0] ? j->valuestring : NULL;
}

static const cJSON *child(const cJSON *obj, const char *key)
{
	return fastjson_get(obj, key);
}

/* enabled: false, as a boolean or the string "false" (IMDS-style values). */
static bool is_false(const cJSON *j)
{
	return cJSON_IsFalse(j) || (cJSON_IsString(j) && kv_streq_ci(j->valuestring, "false"));
}

static bool is_true(const cJSON *obj, const char *key)
{
	const cJSON *j = child(obj, key);

	return cJSON_IsTrue(j) || (cJSON_IsString(j) && kv_streq_ci(j->valuestring, "true"));
}

bool ade_is_extension(const cJSON *ext)
{
	const cJSON *p = child(ext, "properties");
	const char *pub = nonempty(p, "publisher"), *type = nonempty(p, "type");

	return kv_streq_ci(pub, "Microsoft.Azure.Security") &&
	       (kv_streq_ci(type, "AzureDiskEncryption") || kv_streq_ci(type, "AzureDiskEncryptionForLinux"));
}

/*
 * A volume's strings that are the estate's own (a disk's name, a vault's
 * ID), borrowed rather than copied: a 50k-VM estate has ~100k volumes
 * naming a few thousand vaults.  The estate outlives its VMs' ade_info.
 */
enum { BORROWED_DISK = 1u << 0, BORROWED_BEK = 1u << 1, BORROWED_KEK = 1u << 2 };

/* disk: the estate's own string when borrow, else copied. */
static struct ade_volume *volume_for(struct ade_info *a, const char *disk, bool borrow)
{
	struct ade_volume *v;

	for (size_t i = 0; i < a->nvolumes; i++)
		if (kv_streq_ci(a->volumes[i].disk, disk))
			return &a->volumes[i];
	a->volumes = kv_realloc(a->volumes, (a->nvolumes + 1) * sizeof(*a->volumes));
	v = &a->volumes[a->nvolumes++];
	memset(v, 0, sizeof(*v));
	v->disk = borrow ? (char *)(uintptr_t)disk : kv_strdup(disk);
	v->borrowed = borrow ? BORROWED_DISK : 0;
	return v;
}

static void set_if_empty(char **dst, const char *src)
{
	if (!*dst && src)
		*dst = kv_strdup(src);
}

/* set_if_empty for a vault ID: the vault's own string when the estate holds it under the same bytes. */
static void set_vault_if_empty(const struct estate *e, struct ade_volume *v, char **dst, unsigned bit,
                               const char *src)
{
	const struct vault *vault;

	if (*dst || !src)
		return;
	vault = estate_vault(e, src);
	if (vault && vault->id && strcmp(vault->id, src) == 0) {
		*dst = (char *)(uintptr_t)vault->id;
		v->borrowed |= bit;
	} else {
		*dst = kv_strdup(src);
	}
}

/* The keys of one DiskEncryptionSettings-shaped object ({diskEncryptionKey: {secretUrl, sourceVault.id}, keyEncryptionKey: {keyUrl, sourceVault.id}}). */
static struct ade_keys keys_of(const cJSON *s)
{
	const cJSON *dek = child(s, "diskEncryptionKey"), *kek = child(s, "keyEncryptionKey");

	return (struct ade_keys){nonempty(dek, "secretUrl"), nonempty(child(dek, "sourceVault"), "id"),
	                         nonempty(kek, "keyUrl"), nonempty(child(kek, "sourceVault"), "id")};
}

/*
 * Records keys as a volume of disk.  The vault comes from sourceVault.id;
 * where that is missing, from the URL's host matched against the vaults'
 * vaultUri (a5).
 */
static void add_keys(const struct estate *e, struct ade_info *a, const char *disk, bool borrow_disk,
                     const struct ade_keys *k, unsigned source)
{
	const char *secret = k->secret_url, *bekv = k->bek_vault, *key = k->key_url, *kekv = k->kek_vault;
	struct ade_volume *v;

	if (!secret && !bekv)
		return;
	v = volume_for(a, disk, borrow_disk);
	v->sources |= source;
	if (!bekv && secret) {
		const struct vault *vault = estate_vault_by_url(e, secret);

		bekv = vault ? vault->id : NULL;
	}
	if (!kekv && key) {
		const struct vault *vault = estate_vault_by_url(e, key);

		kekv = vault ? vault->id : NULL;
	}
	set_vault_if_empty(e, v, &v->bek_vault, BORROWED_BEK, bekv);
	set_if_empty(&v->secret_url, secret);
	set_vault_if_empty(e, v, &v->kek_vault, BORROWED_KEK, kekv);
	set_if_empty(&v->key_url, key);
}

static void add_settings(const struct estate *e, struct ade_info *a, const char *disk, bool borrow_disk,
                         const cJSON *s, unsigned source)
{
	struct ade_keys k = keys_of(s);

	add_keys(e, a, disk, borrow_disk, &k, source);
}

bool ade_disk_read(const cJSON *raw, bool *legacy_aad, void (*each)(void *ctx, const struct ade_keys *k), void *ctx)
{
	const cJSON *esc = child(child(raw, "properties"), "encryptionSettingsCollection"), *s;

	*legacy_aad = false;
	if (!esc || !is_true(esc, "enabled"))
		return false;
	*legacy_aad = kv_streq_ci(nonempty(esc, "encryptionSettingsVersion"), "1.0");
	cJSON_ArrayForEach(s, child(esc, "encryptionSettings")) {
		struct ade_keys k = keys_of(s);

		if (k.secret_url || k.bek_vault)   /* add_keys ignores the others */
			each(ctx, &k);
	}
	return true;
}

static const char *disk_label(const struct disk *d, char *buf, size_t n)
{
	if (d->name)
		return d->name;
	return armid_name(d->id, buf, n) ? buf : d->id;
}

struct disk_volumes {
	const struct estate *e;
	struct ade_info *a;
	const char *label;
	bool borrow;
};

static void add_disk_keys(void *ctx, const struct ade_keys *k)
{
	struct disk_volumes *c = ctx;

	add_keys(c->e, c->a, c->label, c->borrow, k, ADE_SRC_DISK);
}

static void from_managed_disk(const struct estate *e, struct ade_info *a, const struct disk *d)
{
	const struct ade_disk *kept = estate_disk_ade(e, d);
	char buf[256];
	struct disk_volumes c = {e, a, disk_label(d, buf, sizeof(buf)), false};
	bool legacy;

	c.borrow = c.label != buf;   /* the disk's name or ID (the estate's), or a copy in buf */
	if (!kept) {
		if (ade_disk_read(estate_disk_raw(e, d), &legacy, add_disk_keys, &c) && legacy)
			a->legacy_aad = true;
		return;
	}
	if (!kept->enabled)
		return;
	if (kept->legacy_aad)
		a->legacy_aad = true;
	for (size_t i = 0; i < kept->nkeys; i++)
		add_disk_keys(&c, &kept->keys[i]);
}

static void from_managed_disks(const struct estate *e, struct vm *vm)
{
	const cJSON *sp = child(child(vm->raw, "properties"), "storageProfile");
	const cJSON *dd, *it;
	const struct disk *d;

	/* Disks named by the storage profile, then those that name the VM as managedBy. */
	d = estate_disk(e, nonempty(child(child(sp, "osDisk"), "managedDisk"), "id"));
	if (d)
		from_managed_disk(e, &vm->ade, d);
	dd = child(sp, "dataDisks");
	cJSON_ArrayForEach(it, dd) {
		d = estate_disk(e, nonempty(child(it, "managedDisk"), "id"));
		if (d)
			from_managed_disk(e, &vm->ade, d);
	}
	for (size_t i = 0; i < vm->ndisks; i++)
		from_managed_disk(e, &vm->ade, &e->disks[vm->disks[i]]);
}

static void from_vm_model(const struct estate *e, struct vm *vm)
{
	const cJSON *osd = child(child(child(vm->raw, "properties"), "storageProfile"), "osDisk");
	const cJSON *es = child(osd, "encryptionSettings");
	const char *name = nonempty(osd, "name");

	if (!cJSON_IsObject(es))
		return;
	/* enabled is documented as a bool; settings without it but with keys are in effect. */
	if (is_false(child(es, "enabled")))
		return;
	add_settings(e, &vm->ade, name ? name : "osDisk", false, es, ADE_SRC_VM_MODEL);
}

static void from_instance_view(const struct estate *e, struct vm *vm)
{
	const cJSON *disks = child(child(child(vm->raw, "properties"), "instanceView"), "disks");
	const cJSON *d, *s;

	cJSON_ArrayForEach(d, disks) {
		const char *name = nonempty(d, "name");

		cJSON_ArrayForEach(s, child(d, "encryptionSettings")) {
			if (is_false(child(s, "enabled")))
				continue;
			add_settings(e, &vm->ade, name ? name : "disk", false, s, ADE_SRC_INSTANCE_VIEW);
		}
	}
}

/* Major version number of "2.2" / "1.1.0.4"; -1 when unparsable. */
static int major_version(const char *v)
{
	long n;

	if (!v || *v < '0' || *v > '9')
		return -1;
	/* strtol, not atoi: the version comes from the estate, and atoi's overflow is undefined. */
	n = strtol(v, NULL, 10);
	return n > 999999 ? 999999 : (int)n;
}

static void from_extension(const struct estate *e, struct vm *vm, const cJSON *ext)
{
	struct ade_info *a = &vm->ade;
	const cJSON *p = child(ext, "properties"), *set = child(p, "settings");
	const char *type = nonempty(p, "type"), *op, *bekv, *bekurl, *kekurl, *kekv;
	int major = major_version(nonempty(p, "typeHandlerVersion"));
	bool linux_ext = kv_streq_ci(type, "AzureDiskEncryptionForLinux");

	/* Some tools store settings as a JSON string. */
	cJSON *parsed = NULL;

	if (cJSON_IsString(set)) {
		parsed = cJSON_Parse(set->valuestring);
		set = parsed;
	}
	free(a->ext_type);
	free(a->ext_version);
	free(a->ext_operation);
	free(a->volume_type);
	a->ext_type = kv_strdup(type);
	a->ext_version = kv_strdup(nonempty(p, "typeHandlerVersion"));
	op = nonempty(set, "EncryptionOperation");
	a->ext_operation = kv_strdup(op);
	a->volume_type = kv_strdup(nonempty(set, "VolumeType"));
	if (vm->os == OS_UNKNOWN)
		vm->os = linux_ext ? OS_LINUX : OS_WINDOWS;

	if (kv_streq_ci(op, "DisableEncryption")) {
		a->disabled = true;
		goto out;
	}
	/* The AAD flavour: AADClientID, or major 1 on Windows / 0 on Linux (a1 trap: "1.1" differs by OS). */
	if (nonempty(set, "AADClientID") || (!linux_ext && major == 1) || (linux_ext && major == 0))
		a->legacy_aad = true;
	bekv = nonempty(set, "KeyVaultResourceId");
	bekurl = nonempty(set, "KeyVaultURL");
	kekurl = nonempty(set, "KeyEncryptionKeyURL");
	kekv = nonempty(set, "KekVaultResourceId");
	if (!bekv && bekurl) {
		const struct vault *v = estate_vault_by_url(e, bekurl);

		bekv = v ? v->id : NULL;
	}
	if (!kekv && kekurl) {
		const struct vault *v = estate_vault_by_url(e, kekurl);

		kekv = v ? v->id : NULL;
	}
	a->sources |= ADE_SRC_EXTENSION;
	if (a->nvolumes == 0 && (bekv || bekurl)) {
		char label[64];
		struct ade_volume *v;

		snprintf(label, sizeof(label), "extension (VolumeType %s)",
		         a->volume_type ? a->volume_type : "unset");
		v = volume_for(a, label, false);
		v->sources |= ADE_SRC_EXTENSION;
		set_vault_if_empty(e, v, &v->bek_vault, BORROWED_BEK, bekv);
		if (!bekv)
			set_if_empty(&v->bek_vault_url, bekurl);
		set_vault_if_empty(e, v, &v->kek_vault, BORROWED_KEK, kekv);
		set_if_empty(&v->key_url, kekurl);
	}
out:
	cJSON_Delete(parsed);
}

void ade_detect(const struct estate *e, struct vm *vm)
{
	struct ade_info *a = &vm->ade;
	const cJSON *ext = NULL;

	ade_info_release(a);
	from_managed_disks(e, vm);
	from_vm_model(e, vm);
	from_instance_view(e, vm);
	for (size_t i = 0; i < vm->nextensions; i++)
		if (ade_is_extension(vm->extensions[i]))
			ext = vm->extensions[i];
	if (ext)
		from_extension(e, vm, ext);
	for (size_t i = 0; i < a->nvolumes; i++)
		a->sources |= a->volumes[i].sources;
	/* In effect when some source names a BEK; a disabled extension alone says nothing. */
	a->encrypted = false;
	for (size_t i = 0; i < a->nvolumes; i++)
		if (a->volumes[i].bek_vault || a->volumes[i].secret_url || a->volumes[i].bek_vault_url)
			a->encrypted = true;
	if (!a->encrypted)
		a->legacy_aad = false;
}

void ade_info_release(struct ade_info *a)
{
	for (size_t i = 0; i < a->nvolumes; i++) {
		unsigned b = a->volumes[i].borrowed;

		if (!(b & BORROWED_DISK))
			free(a->volumes[i].disk);
		if (!(b & BORROWED_BEK))
			free(a->volumes[i].bek_vault);
		free(a->volumes[i].secret_url);
		if (!(b & BORROWED_KEK))
			free(a->volumes[i].kek_vault);
		free(a->volumes[i].key_url);
		free(a->volumes[i].bek_vault_url);
	}
	free(a->volumes);
	free(a->ext_type);
	free(a->ext_version);
	free(a->ext_operation);
	free(a->volume_type);
	memset(a, 0, sizeof(*a));
}
