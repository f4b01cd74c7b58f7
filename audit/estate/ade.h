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

#endif
