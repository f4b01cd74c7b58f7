#!/usr/bin/env python3
"""Generate a synthetic kvaudit.estate snapshot (and optionally an emulator scenario) for benchmarks.

Python 3 standard library only; deterministic for a given --seed. Shapes imitate
examples/demo-estate.json (Azure's own JSON, as ARM returns it with $expand=instanceView).

  bench/gen_estate.py --vms 10000 --subs 50 --tenants 2 --seed 1 --out estate-10k.json \
                      [--scenario scenario-10k.json] [--page-size 100]

Mix (per VM, drawn from the seeded RNG):
  ~70% ADE; Windows/Linux 50/50; ~5% unmanaged (VHD, osDisk.encryptionSettings), else managed with
  1-3 data disks (encryptionSettingsCollection on each disk of an ADE VM); ~30% of ADE VMs BEK+KEK;
  ~30% RBAC vaults, the rest access-policy vaults; about 5 ADE VMs per vault (in the VM's
  subscription, mostly in its region); Backup Management Service on access-policy vaults
  complete / missing / partial / PascalCase; on RBAC vaults a Key Vault role at vault or resource
  group scope, a custom role, or none; ~80% of VMs protected by Azure Backup (a few stopped);
  instance views with the VM agent Ready (~90%, naming every extension) or Not Ready (naming the
  ADE extension only); ~10% of ADE extensions listed in vmExtensions (as Resource Graph returns
  them) instead of the VM's resources.

Azure Backup's evidence, as kvaudit collects it (audit/azure/collect_backup.c), from a second RNG
so that the resources above do not change with it (--no-evidence leaves it out): per Recovery
Services vault four policies (DefaultPolicy, WeeklyPolicy, EnhancedPolicy-Daily,
EnhancedPolicy-Hourly4h; the demo's shapes), each protected item on one of them; the jobs of every
protected VM since backupJobsSince (--job-days, default 7), one per scheduled run and mostly
Completed, failing where the VM agent is Not Ready (GuestAgentSnapshotTaskStatusError), where the
ADE key vault lacks Backup Management Service's grant (UserErrorKeyVaultPermissionsNotConfigured
and its other spellings), on disk exclusion (a few ADE VMs), or by chance; the items' last backup
and health follow their jobs.  The Activity Log holds the protection write of the items protected
in the last 90 days (a Member, a Guest or an automation service principal), and principals the
people in it.

With --scenario, the same lists plus an "emulator" section: every tenant with its users (the
Activity Log's people, for Graph), Backup Management Service's service principal per tenant, and
one app (client secret) that sees everything; the scenario's Activity Log also has a few other
writes per vault's resource group, which kvaudit reads and drops.
"""
import argparse
import collections
import datetime
import json
import random
import sys
import uuid

BMS_APP_ID = "262044b1-e2ce-469f-a196-69ab7ada62d3"
SCANNER_APP_ID = "6b0c2d1e-4f3a-4b5c-8d7e-9f0a1b2c3d4e"
SCANNER_SECRET = "bench~Scanner.Secret-0000"
REGIONS = ["westeurope", "northeurope", "eastus", "eastus2", "uksouth", "germanywestcentral", "swedencentral"]
ROLE_KV_ADMIN = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
ROLE_KV_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
ROLE_KV_CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
ROLE_KV_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
ROLE_KV_READER = "21090545-7ca7-4776-b22c-e363652d74d2"

ADMIN_KEYS = ["Get", "List", "Update", "Create", "Import", "Delete", "Recover", "Backup", "Restore",
              "GetRotationPolicy", "SetRotationPolicy", "Rotate", "Decrypt", "Encrypt", "UnwrapKey", "WrapKey",
              "Verify", "Sign"]
ADMIN_SECRETS = ["Get", "List", "Set", "Delete", "Recover", "Backup", "Restore"]
ADMIN_CERTS = ["Get", "List", "Update", "Create", "Import", "Delete", "Recover", "Backup", "Restore",
               "ManageContacts", "ManageIssuers", "GetIssuers", "ListIssuers", "SetIssuers", "DeleteIssuers"]


CLAIM_OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
CLAIM_TID = "http://schemas.microsoft.com/identity/claims/tenantid"
CLAIM_UPN = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"

# Backup job errors, as Azure Backup writes them (the demo's texts; backup-azure-encrypted-vm-troubleshoot.md).
AGENT = {"errorCode": "GuestAgentSnapshotTaskStatusError", "errorTitle": "",
         "errorString": "Could not communicate with the VM agent for snapshot status.",
         "recommendations": ["Ensure the VM agent is installed, running and up to date, then retry the operation."]}
KV_PERMISSION = {"errorCode": "UserErrorKeyVaultPermissionsNotConfigured", "errorTitle": "",
                 "errorString": "Backup doesn't have sufficient permissions to the key vault for backup of encrypted VMs.",
                 "recommendations": ["Grant the Backup Management Service the permissions get, list and backup on the "
                                     "secrets (and, where a KEK is used, the keys) of the key vault. Learn more at "
                                     "https://aka.ms/AB-kvpermissions"]}
# Azure spells the code several ways; the numeric form comes with the documented text.
KV_PERMISSION_CODES = ["UserErrorKeyVaultPermissionsNotConfigured"] * 17 + ["UserErrorKeyvaultPermissionsNotConfigured",
                                                                          "UserErrorKeyvaultPermissionNotConfigured", 400233]
NO_NETWORK = {"errorCode": "ExtensionSnapshotFailedNoNetwork", "errorTitle": "",
              "errorString": "Snapshot operation failed due to no network connectivity on the virtual machine.",
              "recommendations": ["Ensure that the VM has network connectivity to Azure Storage and the Azure Backup "
                                  "service (service tags AzureBackup and Storage), then retry."]}
DISK_EX = {"errorCode": "UserErrorEncryptedVmNotSupportedWithDiskEx", "errorTitle": "",
           "errorString": "Disk exclusion is not supported for encrypted virtual machines.",
           "recommendations": ["Remove the disk exclusion settings of the VM and retry the operation."]}


def iso(t, micro=None, digits=6):
    """A datetime (UTC) as Azure writes it: 2026-11-28T01:41:17.860655Z (digits of fraction)."""
    frac = t.microsecond if micro is None else micro
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (".%0*d" % (digits, frac) if digits else "") + "Z"


class Gen:
    def __init__(self, args):
        self.a = args
        self.r = random.Random(args.seed)

    # deterministic helpers ---------------------------------------------------------------------
    def uid(self):
        return str(uuid.UUID(int=self.r.getrandbits(128), version=4))

    def hex(self, n=32):
        return "%0*x" % (n, self.r.getrandbits(4 * n))

    def chance(self, p):
        return self.r.random() < p

    def ts(self, year=2025):
        return "%d-%02d-%02dT%02d:%02d:%02d.%07d+00:00" % (
            year, self.r.randint(1, 12), self.r.randint(1, 28), self.r.randint(0, 23), self.r.randint(0, 59),
            self.r.randint(0, 59), self.r.randint(0, 9999999))

    # ------------------------------------------------------------------------------------------
    def build(self):
        a = self.a
        self.tenants = []
        for t in range(a.tenants):
            tid = self.uid()
            self.tenants.append({
                "tenantId": tid, "displayName": "Contoso Bench %d" % t, "defaultDomain": "contosobench%d.onmicrosoft.com" % t,
                "bms": self.uid(), "scanner_sp": self.uid()})
        self.caller_oid = self.tenants[0]["scanner_sp"]
        self.admin_oids = [self.uid() for _ in range(8)]
        est = {"kind": "kvaudit.estate", "version": 1, "collectedAt": "2026-11-28T12:00:00Z", "cloud": "AzureCloud",
               "caller": {"objectId": self.caller_oid, "tenantId": self.tenants[0]["tenantId"],
                          "type": "servicePrincipal", "homeTenantId": self.tenants[0]["tenantId"],
                          "displayName": SCANNER_APP_ID},
               "tenants": [], "subscriptions": [], "virtualMachines": [], "vmExtensions": [], "disks": [],
               "vaults": [], "roleAssignments": [], "roleDefinitions": [], "recoveryServicesVaults": [],
               "backupProtectedItems": [], "errors": []}
        for t in self.tenants:
            est["tenants"].append({"tenantId": t["tenantId"], "displayName": t["displayName"],
                                   "defaultDomain": t["defaultDomain"], "callerUserType": "ServicePrincipal",
                                   "callerObjectId": t["scanner_sp"],
                                   "backupManagementService": {"status": "found", "appId": BMS_APP_ID,
                                                               "objectId": t["bms"]}})
        self.est = est
        self.grant = {}   # key vault ID -> what Backup Management Service holds: complete | partial | reader | missing
        self.meta = []    # per VM, what the evidence pass needs (drawn from the main RNG already)
        per_sub = [a.vms // a.subs + (1 if i < a.vms % a.subs else 0) for i in range(a.subs)]
        for s in range(a.subs):
            self.subscription(s, self.tenants[s % len(self.tenants)], per_sub[s])
        return est

    def subscription(self, s, tenant, nvm):
        sid = self.uid()
        tid = tenant["tenantId"]
        self.est["subscriptions"].append({
            "id": "/subscriptions/" + sid, "authorizationSource": "RoleBased", "managedByTenants": [],
            "subscriptionId": sid, "tenantId": tid, "displayName": "bench-sub-%03d" % s, "state": "Enabled",
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                     "quotaId": "EnterpriseAgreement_2014-09-01", "spendingLimit": "Off"}})
        sub = "/subscriptions/" + sid
        regions = self.r.sample(REGIONS, 2)
        # Decide the VMs first: which are ADE, where, which OS.
        vms = []
        for i in range(nvm):
            vms.append({"name": "vm-s%03d-%05d" % (s, i), "region": regions[0] if self.chance(0.7) else regions[1],
                        "ade": self.chance(0.70), "os": "Windows" if self.chance(0.5) else "Linux",
                        "unmanaged": self.chance(0.05), "rg": "rg-app%02d-s%03d" % (i % 20, s)})
        # Key vaults: about 5 ADE VMs per vault, per region.
        vaults_by_region = {}
        for reg in regions:
            n_ade = sum(1 for v in vms if v["ade"] and v["region"] == reg)
            nv = max(1, round(n_ade / 5.0))
            vaults_by_region[reg] = [self.vault(sub, tid, tenant, reg, s, k) for k in range(nv)]
        # Recovery Services vault per region.
        rsv = {}
        for reg in regions:
            rid = "%s/resourceGroups/rg-backup-%s-s%03d/providers/Microsoft.RecoveryServices/vaults/rsv-%s-s%03d" % (
                sub, reg, s, reg, s)
            self.est["recoveryServicesVaults"].append({
                "location": reg, "name": rid.rsplit("/", 1)[1],
                "etag": "W/\"datetime'2025-02-25T11%3A12%3A02.044Z'\"", "tags": {},
                "identity": {"type": "SystemAssigned", "principalId": self.uid(), "tenantId": tid},
                "properties": {"provisioningState": "Succeeded", "privateEndpointStateForBackup": "None",
                               "privateEndpointStateForSiteRecovery": "None", "publicNetworkAccess": "Enabled",
                               "redundancySettings": {"standardTierStorageRedundancy": "GeoRedundant",
                                                      "crossRegionRestore": "Enabled"},
                               "securitySettings": {"softDeleteSettings": {"softDeleteRetentionPeriodInDays": 14,
                                                                           "softDeleteState": "Enabled"}}},
                "id": rid, "type": "Microsoft.RecoveryServices/vaults", "sku": {"name": "RS0", "tier": "Standard"}})
            rsv[reg] = rid
        # Subscription-level role assignments (seen from every vault's atScope()).
        for _ in range(3):
            self.est["roleAssignments"].append(self.role_assignment(sub, self.r.choice(self.admin_oids),
                                                                    self.r.choice([ROLE_KV_READER, ROLE_KV_SECRETS_OFFICER]),
                                                                    "User", sub))
        for v in vms:
            if v["ade"]:
                # 90%: a vault of the VM's region, else one of the other region (KVA-LIM-002)
                reg = v["region"] if self.chance(0.9) else [x for x in regions if x != v["region"]][0]
                v["vault"] = self.r.choice(vaults_by_region[reg])
                v["kek"] = self.chance(0.30)
            self.vm(sub, tid, s, v, rsv)

    def vault(self, sub, tid, tenant, region, s, k):
        name = "kv-s%03d-%s-%03d" % (s, region[:6], k)
        rg = "rg-security-%s-s%03d" % (region, s)
        vid = "%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s" % (sub, rg, name)
        rbac = self.chance(0.30)
        props = {"sku": {"family": "A", "name": "standard" if self.chance(0.8) else "premium"}, "tenantId": tid,
                 "accessPolicies": [], "enabledForDeployment": False,
                 "enabledForDiskEncryption": self.chance(0.95), "enabledForTemplateDeployment": False,
                 "enableSoftDelete": True, "softDeleteRetentionInDays": 90,
                 "enableRbacAuthorization": rbac, "vaultUri": "https://%s.vault.azure.net/" % name,
                 "provisioningState": "Succeeded", "publicNetworkAccess": "Enabled"}
        if self.chance(0.7):
            props["enablePurgeProtection"] = True
        if self.chance(0.4):
            props["networkAcls"] = {"bypass": "AzureServices" if self.chance(0.85) else "None", "defaultAction": "Deny",
                                    "ipRules": [{"value": "198.51.100.0/24"}], "virtualNetworkRules": []}
        if not rbac:
            props["accessPolicies"].append({"tenantId": tid, "objectId": self.r.choice(self.admin_oids),
                                            "permissions": {"keys": ADMIN_KEYS, "secrets": ADMIN_SECRETS,
                                                            "certificates": ADMIN_CERTS}})
            x = self.r.random()
            if x < 0.55:      # complete, as enabling backup writes it
                perms = {"keys": ["get", "list", "backup"], "secrets": ["get", "list", "backup"], "certificates": []}
            elif x < 0.70:    # PascalCase, as the portal's "Azure Backup" template writes it
                perms = {"keys": ["Get", "List", "Backup"], "secrets": ["Get", "List", "Backup"], "certificates": []}
            elif x < 0.85:    # partial (no backup)
                perms = {"keys": ["get", "list"], "secrets": ["get", "list"], "certificates": []}
            else:
                perms = None  # missing (a Guest enabled backup)
            self.grant[vid] = ("complete" if x < 0.70 else "partial" if x < 0.85 else "missing")
            if perms:
                props["accessPolicies"].append({"tenantId": tid, "objectId": tenant["bms"], "permissions": perms})
            if self.chance(0.3):  # an app with a few permissions
                props["accessPolicies"].append({"tenantId": tid, "objectId": self.uid(),
                                                "permissions": {"keys": ["get", "wrapKey", "unwrapKey"],
                                                                "secrets": ["get"], "certificates": []}})
        else:
            x = self.r.random()
            self.grant[vid] = "complete" if x < 0.70 else "reader" if x < 0.80 else "missing"
            if x < 0.55:
                self.est["roleAssignments"].append(self.role_assignment(sub, tenant["bms"], ROLE_KV_ADMIN,
                                                                        "ServicePrincipal", vid))
            elif x < 0.70:
                self.est["roleAssignments"].append(self.role_assignment(
                    sub, tenant["bms"], ROLE_KV_ADMIN, "ServicePrincipal", "%s/resourcegroups/%s" % (sub, rg)))
            elif x < 0.80:  # only a reader role: not enough
                self.est["roleAssignments"].append(self.role_assignment(sub, tenant["bms"], ROLE_KV_READER,
                                                                        "ServicePrincipal", vid))
            self.est["roleAssignments"].append(self.role_assignment(sub, self.r.choice(self.admin_oids),
                                                                    ROLE_KV_SECRETS_OFFICER, "User", vid))
        v = {"id": vid, "name": name, "type": "Microsoft.KeyVault/vaults", "location": region,
             "tags": {"costCenter": "IT-%04d" % self.r.randint(1000, 9999), "owner": "cloud-platform"},
             "systemData": {"createdBy": "admin@contoso.com", "createdByType": "User",
                            "createdAt": "2022-11-07T10:41:03.117Z", "lastModifiedBy": "admin@contoso.com",
                            "lastModifiedByType": "User", "lastModifiedAt": "2026-09-02T14:03:17.208Z"},
             "properties": props}
        self.est["vaults"].append(v)
        return v

    def role_assignment(self, sub, principal, role, ptype, scope):
        name = self.uid()
        return {"id": "%s/providers/Microsoft.Authorization/roleAssignments/%s" % (scope, name), "name": name,
                "type": "Microsoft.Authorization/roleAssignments",
                "properties": {"roleDefinitionId": "%s/providers/Microsoft.Authorization/roleDefinitions/%s" % (sub, role),
                               "principalId": principal, "principalType": ptype, "scope": scope, "condition": None,
                               "conditionVersion": None, "createdOn": "2025-01-21T11:25:04.1197311Z",
                               "updatedOn": "2025-01-21T11:25:04.1197311Z", "createdBy": self.admin_oids[0],
                               "updatedBy": self.admin_oids[0], "delegatedManagedIdentityResourceId": None}}

    def settings(self, v, vault, kek_url):
        es = {"diskEncryptionKey": {"sourceVault": {"id": vault["id"]},
                                    "secretUrl": "%ssecrets/%s/%s" % (vault["properties"]["vaultUri"],
                                                                       self.uid().upper(), self.hex())}}
        if kek_url:
            es["keyEncryptionKey"] = {"sourceVault": {"id": vault["id"]}, "keyUrl": kek_url}
        return es

    def vm(self, sub, tid, s, v, rsv):
        name, rg, reg, win = v["name"], v["rg"], v["region"], v["os"] == "Windows"
        vmid = "%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (sub, rg, name)
        vault = v.get("vault")
        kek_url = None
        if v["ade"] and v["kek"]:
            kek_url = "%skeys/%s-kek/%s" % (vault["properties"]["vaultUri"], name, self.hex())
        ndata = self.r.randint(1, 3) if not v["unmanaged"] else 0
        disk_names = ["%s_OsDisk_1_%s" % (name, self.hex())] + ["%s_DataDisk_%d" % (name, i) for i in range(ndata)]
        iv_disks = []
        disk_settings = []
        for dn in disk_names:
            es = self.settings(v, vault, kek_url) if v["ade"] else None
            disk_settings.append(es)
            d = {"name": dn, "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
                                            "displayStatus": "Provisioning succeeded", "time": self.ts()}]}
            if es:
                d["encryptionSettings"] = [dict(es, enabled=True)]
                d["statuses"].append({"code": "EncryptionState/encrypted", "level": "Info",
                                      "displayStatus": "Encryption is enabled on disk"})
            iv_disks.append(d)
        disk_rg = rg.upper()
        if v["unmanaged"]:
            os_disk = {"osType": v["os"], "name": disk_names[0],
                       "vhd": {"uri": "https://legacyvhd%03d.blob.core.windows.net/vhds/%s.vhd" % (s, disk_names[0])},
                       "caching": "ReadWrite", "createOption": "Attach", "diskSizeGB": 127}
            if disk_settings[0]:
                os_disk["encryptionSettings"] = dict(disk_settings[0], enabled=True)
            data_disks = []
        else:
            def mdid(dn):
                return "%s/resourceGroups/%s/providers/Microsoft.Compute/disks/%s" % (sub, disk_rg, dn)
            os_disk = {"osType": v["os"], "name": disk_names[0], "createOption": "FromImage", "caching": "ReadWrite",
                       "managedDisk": {"storageAccountType": "Premium_LRS", "id": mdid(disk_names[0])},
                       "deleteOption": "Detach", "diskSizeGB": 127}
            data_disks = [{"lun": i, "name": dn, "createOption": "Attach", "caching": "ReadOnly",
                           "managedDisk": {"storageAccountType": "Premium_LRS", "id": mdid(dn)},
                           "deleteOption": "Detach", "diskSizeGB": 512, "toBeDetached": False}
                          for i, dn in enumerate(disk_names[1:])]
            for i, dn in enumerate(disk_names):
                props = {"osType": v["os"]} if i == 0 else {}
                props.update({"hyperVGeneration": "V2", "creationData": {"createOption": "FromImage" if i == 0 else "Empty"},
                              "diskSizeGB": 127 if i == 0 else 512, "diskIOPSReadWrite": 500, "diskMBpsReadWrite": 100,
                              "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
                              "networkAccessPolicy": "AllowAll", "publicNetworkAccess": "Enabled",
                              "timeCreated": self.ts(), "provisioningState": "Succeeded", "diskState": "Attached",
                              "diskSizeBytes": (127 if i == 0 else 512) << 30, "uniqueId": self.uid(),
                              "tier": "P10" if i == 0 else "P20"})
                if disk_settings[i]:
                    props["encryptionSettingsCollection"] = {"enabled": True,
                                                             "encryptionSettings": [disk_settings[i]],
                                                             "encryptionSettingsVersion": "1.1"}
                self.est["disks"].append({"name": dn, "id": mdid(dn), "type": "Microsoft.Compute/disks",
                                          "location": reg, "managedBy": vmid,
                                          "sku": {"name": "Premium_LRS", "tier": "Premium"}, "properties": props})
        ready = self.chance(0.9)
        agent = {"vmAgentVersion": "2.7.41491.1102" if ready else "Unknown",
                 "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready",
                               "message": "GuestAgent is running and processing the extensions.",
                               "time": "2026-11-28T11:52:13+00:00"} if ready else
                              {"code": "ProvisioningState/Unavailable", "level": "Warning",
                               "displayStatus": "Not Ready", "message": "VM Agent is unresponsive.",
                               "time": "2026-11-21T03:14:07+00:00"}],
                 "extensionHandlers": []}
        ext_type = "AzureDiskEncryption" if win else "AzureDiskEncryptionForLinux"
        iv_exts = []
        resources = []
        if v["ade"]:
            agent["extensionHandlers"].append({"type": "Microsoft.Azure.Security." + ext_type,
                                               "typeHandlerVersion": "2.2.0.42" if win else "1.2.0.96",
                                               "status": {"code": "ProvisioningState/succeeded", "level": "Info",
                                                          "displayStatus": "Ready"}})
            iv_exts.append({"name": ext_type, "type": "Microsoft.Azure.Security." + ext_type,
                            "typeHandlerVersion": "2.2.0.42" if win else "1.2.0.96",
                            "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
                                          "displayStatus": "Provisioning succeeded",
                                          "message": "Encryption succeeded for all volumes"}]})
            settings = {"KeyVaultURL": vault["properties"]["vaultUri"], "VolumeType": "All",
                        "EncryptionOperation": "EnableEncryption", "SequenceVersion": self.uid(),
                        "KeyVaultResourceId": vault["id"]}
            if kek_url:
                settings.update({"KeyEncryptionKeyURL": kek_url, "KeyEncryptionAlgorithm": "RSA-OAEP",
                                 "KekVaultResourceId": vault["id"]})
            ext = {"name": ext_type, "id": vmid + "/extensions/" + ext_type,
                   "type": "Microsoft.Compute/virtualMachines/extensions", "location": reg,
                   "properties": {"autoUpgradeMinorVersion": True, "provisioningState": "Succeeded",
                                  "publisher": "Microsoft.Azure.Security", "type": ext_type,
                                  "typeHandlerVersion": "2.2" if win else "1.1", "settings": settings}}
            if self.chance(0.1):  # listed apart, as Resource Graph returns it
                rg_ext = dict(ext, id=ext["id"].replace("/resourceGroups/", "/resourcegroups/"),
                              type="microsoft.compute/virtualmachines/extensions", tenantId=tid, kind="",
                              resourceGroup=rg, subscriptionId=sub.rsplit("/", 1)[1], managedBy="", sku=None,
                              plan=None, tags=None, identity=None, zones=None, extendedLocation=None)
                self.est["vmExtensions"].append(rg_ext)
            else:
                resources.append(ext)
        mon = "AzureMonitorWindowsAgent" if win else "AzureMonitorLinuxAgent"
        resources.append({"name": mon, "id": vmid + "/extensions/" + mon,
                          "type": "Microsoft.Compute/virtualMachines/extensions", "location": reg,
                          "properties": {"autoUpgradeMinorVersion": True, "provisioningState": "Succeeded",
                                         "publisher": "Microsoft.Azure.Monitor", "type": mon,
                                         "typeHandlerVersion": "1.31", "settings": {}}})
        if ready:  # a reporting agent names every extension it handles in the instance view
            iv_exts.append({"name": mon, "type": "Microsoft.Azure.Monitor." + mon, "typeHandlerVersion": "1.31.0.0",
                            "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
                                          "displayStatus": "Provisioning succeeded"}]})
        if win:
            os_profile = {"computerName": name[:15], "adminUsername": "azadmin", "secrets": [],
                          "allowExtensionOperations": True, "requireGuestProvisionSignal": True,
                          "windowsConfiguration": {"provisionVMAgent": True, "enableAutomaticUpdates": True,
                                                   "patchSettings": {"patchMode": "AutomaticByOS",
                                                                     "assessmentMode": "ImageDefault"},
                                                   "enableVMAgentPlatformUpdates": False}}
            image = {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                     "sku": "2022-datacenter-azure-edition", "version": "latest", "exactVersion": "20348.2849.241109"}
        else:
            os_profile = {"computerName": name, "adminUsername": "azops", "secrets": [],
                          "allowExtensionOperations": True, "requireGuestProvisionSignal": True,
                          "linuxConfiguration": {"disablePasswordAuthentication": True,
                                                 "ssh": {"publicKeys": [{"path": "/home/azops/.ssh/authorized_keys",
                                                                         "keyData": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA%s azops@bastion" % self.hex(40)}]},
                                                 "provisionVMAgent": True,
                                                 "patchSettings": {"patchMode": "ImageDefault",
                                                                   "assessmentMode": "ImageDefault"},
                                                 "enableVMAgentPlatformUpdates": False}}
            image = {"publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2",
                     "version": "latest", "exactVersion": "22.04.202411010"}
        storage = {"osDisk": os_disk, "dataDisks": data_disks}
        if not v["unmanaged"]:
            storage = {"imageReference": image, "osDisk": os_disk, "dataDisks": data_disks, "diskControllerType": "SCSI"}
        vm = {"name": name, "id": vmid, "type": "Microsoft.Compute/virtualMachines", "location": reg,
              "tags": {"app": "app%02d" % (int(name[-5:]) % 37), "env": self.r.choice(["prod", "test", "dev"])},
              "properties": {
                  "vmId": self.uid(), "hardwareProfile": {"vmSize": self.r.choice(["Standard_D4s_v5", "Standard_D2s_v5",
                                                                                     "Standard_E8s_v5", "Standard_B2ms"])},
                  "storageProfile": storage, "osProfile": os_profile,
                  "networkProfile": {"networkInterfaces": [{"id": "%s/resourceGroups/%s/providers/Microsoft.Network/networkInterfaces/%s-nic01" % (sub, rg, name),
                                                            "properties": {"deleteOption": "Detach"}}]},
                  "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}}, "provisioningState": "Succeeded",
                  "instanceView": {
                      "computerName": name[:15] if win else name,
                      "osName": "Windows Server 2022 Datacenter Azure Edition" if win else "ubuntu",
                      "osVersion": "Microsoft Windows NT 10.0.20348.0" if win else "22.04",
                      "vmAgent": agent, "disks": iv_disks, "hyperVGeneration": "V2", "extensions": iv_exts,
                      "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
                                    "displayStatus": "Provisioning succeeded", "time": self.ts(2026)},
                                   {"code": "PowerState/running", "level": "Info", "displayStatus": "VM running"}]},
                  "timeCreated": self.ts()},
              "etag": "\"4\"", "resources": resources}
        self.est["virtualMachines"].append(vm)
        meta = {"name": name, "id": vmid, "sub": sub, "tid": tid, "ready": ready, "rsv": rsv[reg], "item": None,
                "vault": vault["id"] if vault else None}
        self.meta.append(meta)
        if self.chance(0.8):
            rid = rsv[reg]
            cont = "iaasvmcontainerv2;%s;%s" % (rg, name)
            stopped = self.chance(0.03)
            self.est["backupProtectedItems"].append({
                "id": "%s/backupFabrics/Azure/protectionContainers/IaasVMContainer;%s/protectedItems/VM;%s" % (
                    rid.replace("/subscriptions/", "/Subscriptions/"), cont, cont),
                "name": "VM;" + cont,
                "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems",
                "properties": {"friendlyName": name, "virtualMachineId": vmid,
                               "protectionStatus": "Healthy", "protectionState": "ProtectionStopped" if stopped else "Protected",
                               "healthStatus": "Passed", "healthDetails": [], "lastBackupStatus": "Completed",
                               "lastBackupTime": "2026-11-28T01:50:44.277774Z",
                               "protectedItemDataId": str(self.r.getrandbits(53)),
                               "extendedProperties": {"diskExclusionProperties": None},
                               "protectedItemType": "Microsoft.Compute/virtualMachines",
                               "backupManagementType": "AzureIaasVM", "workloadType": "VM", "containerName": cont,
                               "sourceResourceId": vmid,
                               "policyId": rid + "/backupPolicies/DefaultPolicy", "policyName": "DefaultPolicy",
                               "lastRecoveryPoint": "2026-11-28T01:05:28.573168Z",
                               "isScheduledForDeferredDelete": False, "isRehydrate": False,
                               "isArchiveEnabled": False, "softDeleteRetentionPeriodInDays": 14, "vaultId": rid}})
            meta["item"] = self.est["backupProtectedItems"][-1]

    # ---- Azure Backup's evidence: policies, jobs, Activity Log, principals ------------------------
    # A second RNG (seeded from --seed) so that the lists above are the same with or without evidence.
    def evidence(self):
        a, r = self.a, random.Random("kvaudit-bench-evidence-%d" % self.a.seed)
        self.er = r
        est = self.est
        now = datetime.datetime(2026, 11, 28, 12, 0, 0, tzinfo=datetime.timezone.utc)   # est["collectedAt"]
        since = now - datetime.timedelta(days=a.job_days)
        est["backupJobsSince"] = iso(since, 0)[:19] + "Z"
        est["backupJobs"], est["backupPolicies"], est["activityLog"], est["principals"] = [], [], [], []
        self.noise = []       # Activity Log events kvaudit reads but does not keep (scenario only)
        self.people = {}      # tenant ID -> [(kind, objectId, upn-or-appId, display name, email)]
        for t in self.tenants:
            dom = t["defaultDomain"]
            ppl = [("Member", self.euid(), "%s@%s" % (n, dom), d, "%s@%s" % (n, dom))
                   for n, d in (("ops", "Cloud Operations"), ("platform.admin", "Platform Admin"),
                                ("backup.team", "Backup Team"))]
            for n, d in (("ava.lindqvist", "Ava Lindqvist (partner)"), ("lars.berg", "Lars Berg (partner)")):
                mail = "%s@fabrikam.com" % n
                ppl.append(("Guest", self.euid(), "%s_fabrikam.com#EXT#@%s" % (n, dom), d, mail))
            ppl.append(("ServicePrincipal", self.euid(), self.euid(), "backup-automation", None))
            self.people[t["tenantId"]] = ppl
        # An RBAC vault's grant may come from another vault's: Key Vault Administrator on their resource group.
        bms = {t["bms"] for t in self.tenants}
        admin_scopes = {ra["properties"]["scope"].lower() for ra in est["roleAssignments"]
                        if ra["properties"]["principalId"] in bms and
                        ra["properties"]["roleDefinitionId"].endswith(ROLE_KV_ADMIN)}
        for v in est["vaults"]:
            if v["properties"]["enableRbacAuthorization"] and (
                    v["id"].lower() in admin_scopes or v["id"].lower().split("/providers/")[0] in admin_scopes):
                self.grant[v["id"]] = "complete"
        policies = {}         # RSV ID (lower case) -> {name: policy}
        for rsv in est["recoveryServicesVaults"]:
            policies[rsv["id"].lower()] = self.policies(rsv["id"])
        counts = collections.Counter()
        principals = {}
        for m in self.meta:
            it = m["item"]
            if not it:
                continue
            pols = policies[m["rsv"].lower()]
            x = r.random()
            pol = pols["EnhancedPolicy-Daily" if x < 0.50 else "DefaultPolicy" if x < 0.92 else
                       "WeeklyPolicy" if x < 0.97 else "EnhancedPolicy-Hourly4h"]
            p = it["properties"]
            p["policyId"], p["policyName"] = pol["id"], pol["name"]
            counts[pol["id"]] += 1
            self.jobs(m, pol, now, since)
            ev = self.protect_event(m, now)
            if ev:
                est["activityLog"].append(ev)
                kind, oid, upn, disp, _ = ev["_who"]
                del ev["_who"]
                if kind != "ServicePrincipal":
                    principals[(m["tid"], oid)] = {"tenantId": m["tid"], "id": oid, "userType": kind,
                                                   "userPrincipalName": upn, "displayName": disp}
        for rsv_pols in policies.values():
            for pol in rsv_pols.values():
                pol["properties"]["protectedItemsCount"] = counts[pol["id"]]
                est["backupPolicies"].append(pol)
        for rsv in est["recoveryServicesVaults"]:   # other writes in the vault's resource group
            for _ in range(r.randint(0, 3)):
                self.noise.append(self.event(rsv["id"] + "/backupPolicies/DefaultPolicy",
                                             "Microsoft.RecoveryServices/vaults/backupPolicies/write",
                                             "Create or update backup policy", self.tenant_of(rsv["id"]),
                                             now - datetime.timedelta(days=r.uniform(1, 85)))[0])
        est["principals"] = sorted(principals.values(), key=lambda x: (x["tenantId"], x["id"]))

    def euid(self):
        return str(uuid.UUID(int=self.er.getrandbits(128), version=4))

    def tenant_of(self, rid):
        sid = rid.split("/")[2].lower()
        return next(s["tenantId"] for s in self.est["subscriptions"] if s["subscriptionId"] == sid)

    def policies(self, rsv_id):
        r = self.er
        pid = rsv_id.replace("/subscriptions/", "/Subscriptions/", 1) + "/backupPolicies/"
        hh, mm = r.randint(0, 3), r.choice([0, 30])
        at = "2025-06-02T%02d:%02d:00Z" % (hh, mm)

        def pol(name, props):
            base = {"backupManagementType": "AzureIaasVM", "instantRpRetentionRangeInDays": 2}
            base.update(props)
            base.update({"timeZone": "UTC", "protectedItemsCount": 0})
            return {"id": pid + name, "name": name, "type": "Microsoft.RecoveryServices/vaults/backupPolicies",
                    "properties": base}

        def daily(days):
            return {"retentionPolicyType": "LongTermRetentionPolicy",
                    "dailySchedule": {"retentionTimes": [at], "retentionDuration": {"count": days, "durationType": "Days"}}}
        out = {
            "DefaultPolicy": pol("DefaultPolicy", {
                "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily",
                                   "scheduleRunTimes": [at], "scheduleWeeklyFrequency": 0},
                "retentionPolicy": daily(30)}),
            "EnhancedPolicy-Daily": pol("EnhancedPolicy-Daily", {
                "instantRpRetentionRangeInDays": 7, "policyType": "V2",
                "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Daily",
                                   "dailySchedule": {"scheduleRunTimes": [at]}},
                "retentionPolicy": daily(30)}),
            "EnhancedPolicy-Hourly4h": pol("EnhancedPolicy-Hourly4h", {
                "policyType": "V2",
                "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Hourly",
                                   "hourlySchedule": {"interval": 4, "scheduleWindowStartTime": "2025-06-02T06:00:00Z",
                                                      "scheduleWindowDuration": 16}},
                "retentionPolicy": daily(14)}),
            "WeeklyPolicy": pol("WeeklyPolicy", {
                "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Weekly",
                                   "scheduleRunDays": ["Sunday"], "scheduleRunTimes": [at], "scheduleWeeklyFrequency": 0},
                "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy",
                                    "weeklySchedule": {"daysOfTheWeek": ["Sunday"], "retentionTimes": [at],
                                                       "retentionDuration": {"count": 12, "durationType": "Weeks"}}}}),
        }
        return out

    @staticmethod
    def runs(pol, start, end):
        """The scheduled backups of a policy from start to end (datetimes, UTC), oldest first."""
        sp = pol["properties"]["schedulePolicy"]
        freq = sp["scheduleRunFrequency"]
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        out = []
        while day <= end:
            if freq == "Hourly":
                h = sp["hourlySchedule"]
                first = int(h["scheduleWindowStartTime"][11:13])
                times = [day.replace(hour=first + k) for k in range(0, h["scheduleWindowDuration"], h["interval"])]
            else:
                at = (sp.get("scheduleRunTimes") or sp.get("dailySchedule", {}).get("scheduleRunTimes"))[0]
                t = day.replace(hour=int(at[11:13]), minute=int(at[14:16]))
                times = [t] if freq == "Daily" or day.strftime("%A") in sp.get("scheduleRunDays", []) else []
            out += [t for t in times if start <= t <= end]
            day += datetime.timedelta(days=1)
        return out

    def jobs(self, m, pol, now, since):
        """Backup jobs of one protected VM since `since`, and its item's last backup to match."""
        r = self.er
        p = m["item"]["properties"]
        if p["protectionState"] == "ProtectionStopped":
            last = now - datetime.timedelta(days=r.uniform(10, 60))
            p.update({"lastBackupStatus": "Completed", "lastBackupTime": iso(last, r.randrange(10 ** 6)),
                      "lastRecoveryPoint": iso(last - datetime.timedelta(minutes=9), r.randrange(10 ** 6))})
            return
        # Why this VM's backups fail, from when: its VM agent stopped answering (the instance view says since
        # 2026-11-21T03:14:07), or Backup Management Service lacks its key vault grant (a Guest enabled backup,
        # or someone removed the grant), or its disk exclusion on an ADE VM; else now and then, by chance.
        cause, onset = None, None
        if not m["ready"]:
            cause, onset = AGENT, datetime.datetime(2026, 11, 21, 3, 14, 7, tzinfo=datetime.timezone.utc)
        elif m["vault"] and self.grant.get(m["vault"]) != "complete":
            cause, onset = KV_PERMISSION, now - datetime.timedelta(days=r.uniform(0.5, self.a.job_days + 5))
        elif m["vault"] and r.random() < 0.004:
            cause, onset = DISK_EX, now - datetime.timedelta(days=r.uniform(0.5, self.a.job_days + 5))
        rsv = m["rsv"].replace("/subscriptions/", "/Subscriptions/", 1)
        lookback = self.runs(pol, now - datetime.timedelta(days=21), now)
        newest, last_ok = None, None
        for t in lookback:
            failed = onset is not None and t >= onset
            if t < since:
                if not failed:
                    last_ok = t + datetime.timedelta(minutes=r.randint(8, 40))
                continue
            start = t + datetime.timedelta(seconds=r.randint(5, 900), microseconds=r.randrange(10 ** 6))
            err = None
            if failed:
                err = cause
            elif r.random() < 0.02:
                err = r.choice([AGENT, NO_NETWORK] if m["vault"] else [AGENT])
            status = "Failed" if err else "CompletedWithWarnings" if r.random() < 0.005 else "Completed"
            mins = r.randint(8, 45) if err is None else 90 if err is AGENT else r.randint(1, 4)
            end = start + datetime.timedelta(minutes=mins, seconds=r.randint(0, 59))
            props = {"jobType": "AzureIaaSVMJob", "duration": "PT%dM%dS" % divmod(int((end - start).total_seconds()), 60),
                     "actionsInfo": [], "virtualMachineVersion": "Compute", "entityFriendlyName": m["name"],
                     "backupManagementType": "AzureIaasVM", "operation": "Backup", "status": status,
                     "startTime": iso(start), "endTime": iso(end), "activityId": self.euid()}
            if err:
                props["errorDetails"] = [dict(err, errorCode=err["errorCode"] if err is not KV_PERMISSION else
                                              r.choice(KV_PERMISSION_CODES))]
            name = self.euid()
            self.est["backupJobs"].append({"id": "%s/backupJobs/%s" % (rsv, name), "name": name,
                                           "type": "Microsoft.RecoveryServices/vaults/backupJobs", "properties": props})
            newest = (status, end)
            if not err:
                last_ok = end
        status = newest[0] if newest else "Completed"
        p["lastBackupStatus"] = "Failed" if status == "Failed" else "Completed"
        p["healthStatus"] = "ActionRequired" if status == "Failed" else "Passed"
        p["protectionStatus"] = "Unhealthy" if status == "Failed" else "Healthy"
        if last_ok:
            p["lastBackupTime"] = iso(last_ok)
            p["lastRecoveryPoint"] = iso(last_ok - datetime.timedelta(minutes=r.randint(3, 7)))
        else:
            for k in ("lastBackupTime", "lastRecoveryPoint"):
                p.pop(k, None)

    def event(self, rid, op, op_name, tid, at, who=None):
        r = self.er
        who = who or ("ServicePrincipal",) + self.people[tid][-1][1:]
        kind, oid, upn, disp, mail = who
        claims = {"aud": "https://management.core.windows.net/", "iss": "https://sts.windows.net/%s/" % tid,
                  CLAIM_TID: tid, CLAIM_OID: oid, "ver": "1.0"}
        if kind == "ServicePrincipal":
            claims.update({"appid": upn, "idtyp": "app"})
            caller = upn
        else:
            claims.update({CLAIM_UPN: mail, "name": disp, "appid": "c44b4083-3bb0-49c1-b47d-974e53cbdf3c"})
            caller = mail
        parts = rid.split("/")
        sub, rg = parts[2], parts[4]
        data_id, corr = self.euid(), self.euid()
        ticks = 621355968000000000 + int(at.timestamp() * 10 ** 7)
        ts = iso(at, r.randrange(10 ** 7), 7)
        ev = {"authorization": {"action": op, "scope": rid}, "caller": caller, "channels": "Operation",
              "claims": claims, "correlationId": corr, "description": "", "eventDataId": data_id,
              "eventName": {"value": "EndRequest", "localizedValue": "End request"},
              "category": {"value": "Administrative", "localizedValue": "Administrative"},
              "httpRequest": {"clientRequestId": self.euid(), "clientIpAddress": "203.0.113.%d" % r.randint(2, 250),
                              "method": "PUT"},
              "id": "%s/events/%s/ticks/%d" % (rid, data_id, ticks), "level": "Informational",
              "resourceGroupName": rg,
              "resourceProviderName": {"value": "Microsoft.RecoveryServices",
                                       "localizedValue": "Microsoft Recovery Services"},
              "resourceId": rid,
              "resourceType": {"value": "/".join(op.split("/")[:-1]), "localizedValue": "/".join(op.split("/")[:-1])},
              "operationId": corr, "operationName": {"value": op, "localizedValue": op_name},
              "properties": {"statusCode": "Created", "serviceRequestId": self.euid(), "eventCategory": "Administrative",
                             "entity": rid, "message": op, "hierarchy": ""},
              "status": {"value": "Succeeded", "localizedValue": "Succeeded"},
              "subStatus": {"value": "Accepted", "localizedValue": "Accepted (HTTP Status Code: 202)"},
              "eventTimestamp": ts, "submissionTimestamp": iso(at + datetime.timedelta(seconds=1), 0, 7),
              "subscriptionId": sub, "tenantId": tid}
        return ev, who

    def protect_event(self, m, now):
        """The Activity Log's write that enabled protection, for the ~12% of items protected in the last 90
        days (before the job window); a Guest more often where the key vault grant is missing."""
        r = self.er
        if r.random() >= 0.12:
            return None
        ppl = self.people[m["tid"]]
        bad = m["vault"] and self.grant.get(m["vault"]) != "complete"
        x = r.random()
        who = (r.choice(ppl[3:5]) if x < (0.5 if bad else 0.15) else
               ppl[5] if x < (0.7 if bad else 0.5) else r.choice(ppl[0:3]))
        at = now - datetime.timedelta(days=r.uniform(self.a.job_days + 1, 88))
        ev, who = self.event(m["item"]["id"],
                             "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/write",
                             "Create or update backup protected item", m["tid"], at, who)
        ev["_who"] = who
        return ev

    def emulator_section(self):
        tenants = []
        for t in self.tenants:
            users = [{"objectId": oid, "userPrincipalName": upn, "userType": kind, "displayName": disp, "mail": mail}
                     for kind, oid, upn, disp, mail in getattr(self, "people", {}).get(t["tenantId"], [])
                     if kind != "ServicePrincipal"]
            tenants.append({"tenantId": t["tenantId"], "displayName": t["displayName"],
                            "defaultDomain": t["defaultDomain"], "users": users,
                            "servicePrincipals": [
                                {"objectId": t["bms"], "appId": BMS_APP_ID, "displayName": "Backup Management Service"},
                                {"objectId": t["scanner_sp"], "appId": SCANNER_APP_ID, "displayName": "kvaudit-bench"}]})
        return {"pageSize": self.a.page_size, "tokenLifetime": 3599, "defaultApp": SCANNER_APP_ID,
                "tenants": tenants,
                "apps": [{"clientId": SCANNER_APP_ID, "tenantId": self.tenants[0]["tenantId"],
                          "displayName": "kvaudit-bench", "secret": SCANNER_SECRET}],
                "dataPlane": {"mode": "open"}, "faults": []}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vms", type=int, required=True)
    p.add_argument("--subs", type=int, required=True)
    p.add_argument("--tenants", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, help="the kvaudit.estate snapshot")
    p.add_argument("--scenario", help="also write an emulator scenario (the same lists + an emulator section)")
    p.add_argument("--page-size", type=int, default=100, help="the scenario's emulator pageSize (default 100)")
    p.add_argument("--job-days", type=int, default=7,
                   help="days of Azure Backup jobs (default 7, kvaudit's default --since)")
    p.add_argument("--no-evidence", action="store_true",
                   help="no backup policies, jobs, Activity Log or principals (the snapshot as before)")
    p.add_argument("--stats", action="store_true", help="print counts to stderr")
    a = p.parse_args()
    if a.vms < 1 or a.subs < 1 or a.tenants < 1 or a.tenants > a.subs:
        p.error("need vms >= 1, subs >= 1, 1 <= tenants <= subs")
    if not 1 <= a.job_days <= 90:
        p.error("--job-days takes 1 to 90")
    g = Gen(a)
    est = g.build()
    if not a.no_evidence:
        g.evidence()
    with open(a.out, "w") as f:
        json.dump(est, f, separators=(",", ":"))
    if a.scenario:
        sc = dict(est)
        sc["emulator"] = g.emulator_section()
        if not a.no_evidence:   # the Activity Log also holds writes kvaudit reads and drops
            sc["activityLog"] = est["activityLog"] + g.noise
        with open(a.scenario, "w") as f:
            json.dump(sc, f, separators=(",", ":"))
    if a.stats:
        ade = sum(1 for vm in est["virtualMachines"]
                  if any(d.get("encryptionSettings") for d in vm["properties"]["instanceView"]["disks"]))
        sys.stderr.write("vms=%d ade=%d subs=%d tenants=%d vaults=%d rbacVaults=%d disks=%d roleAssignments=%d "
                         "rsvs=%d protectedItems=%d vmExtensions=%d backupPolicies=%d backupJobs=%d "
                         "failedJobs=%d activityLog=%d principals=%d\n" % (
                             len(est["virtualMachines"]), ade, len(est["subscriptions"]), len(est["tenants"]),
                             len(est["vaults"]),
                             sum(1 for v in est["vaults"] if v["properties"]["enableRbacAuthorization"]),
                             len(est["disks"]), len(est["roleAssignments"]), len(est["recoveryServicesVaults"]),
                             len(est["backupProtectedItems"]), len(est["vmExtensions"]),
                             len(est.get("backupPolicies", [])), len(est.get("backupJobs", [])),
                             sum(1 for j in est.get("backupJobs", []) if j["properties"]["status"] == "Failed"),
                             len(est.get("activityLog", [])), len(est.get("principals", []))))


if __name__ == "__main__":
    main()
