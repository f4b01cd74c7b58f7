/*
 * ade.h - Azure Disk Encryption detection (AZURE-FACTS a1-a6).
 *
 * For one VM, decides whether ADE is in effect, the OS, the ADE flavour
 * (legacy AAD app or not) and, per disk volume, the vault holding the BEK
 * (secret URL) and the vault holding the KEK (key URL), from every source:
 * managed disks' encryptionSettingsCollection, the VM model's
 * osDisk.encryptionSettings, the instance view's disks[].encryptionSettings
 * and the ADE extension's public settings.  SSE (platform or customer keys),
 * disk encryption sets, encryption at host and confidential-VM encryption
 * are not ADE.
 */
#ifndef KVAUDIT_ADE_H
#define KVAUDIT_ADE_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "audit/estate/estate.h"

/* True when ext (an ARM extension object) is the ADE extension: publisher + type, never name. */
bool ade_is_extension(const cJSON *ext);

/* Fills vm->ade (and vm->os when the sources tell) from the VM, its extensions and its disks. */
void ade_detect(const struct estate *e, struct vm *vm);

void ade_info_release(struct ade_info *a);

/* What ADE detection reads of one DiskEncryptionSettings object; NULL for absent or "". */
struct ade_keys {
	const char *secret_url, *bek_vault, *key_url, *kek_vault;
};

/*
 * A disk's encryptionSettingsCollection as ADE detection reads it, kept by a
 * lean load (which frees the disk's JSON): enabled, version 1.0 (the legacy
 * AAD flavour), the settings that name a BEK.
 */
struct ade_disk {
	const struct ade_keys *keys;
	size_t nkeys;
	bool enabled, legacy_aad;
};

/*
 * Reads a disk's raw JSON: false when its encryptionSettingsCollection is
 * absent or not enabled; else sets *legacy_aad and calls each for every
 * setting that names a BEK (strings borrowed from raw).
 */
bool ade_disk_read(const cJSON *raw, bool *legacy_aad, void (*each)(void *ctx, const struct ade_keys *k), void *ctx);
/* What a lean load kept of disk d (estate.c); NULL when d->raw is the disk's JSON. */
const struct ade_disk *estate_disk_ade(const struct estate *e, const struct disk *d);

#endif
