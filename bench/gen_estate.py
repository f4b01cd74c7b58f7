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

With --scenario, the same lists plus an "emulator" section: every tenant, Backup Management
Service's service principal per tenant, and one app (client secret) that sees everything.
"""
import argparse
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
            if perms:
                props["accessPolicies"].append({"tenantId": tid, "objectId": tenant["bms"], "permissions": perms})
            if self.chance(0.3):  # an app with a few permissions
                props["accessPolicies"].append({"tenantId": tid, "objectId": self.uid(),
                                                "permissions": {"keys": ["get", "wrapKey", "unwrapKey"],
                                                                "secrets": ["get"], "certificates": []}})
        else:
            x = self.r.random()
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

    def emulator_section(self):
        tenants = []
        for t in self.tenants:
            tenants.append({"tenantId": t["tenantId"], "displayName": t["displayName"],
                            "defaultDomain": t["defaultDomain"], "users": [],
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
    p.add_argument("--stats", action="store_true", help="print counts to stderr")
    a = p.parse_args()
    if a.vms < 1 or a.subs < 1 or a.tenants < 1 or a.tenants > a.subs:
        p.error("need vms >= 1, subs >= 1, 1 <= tenants <= subs")
    g = Gen(a)
    est = g.build()
    with open(a.out, "w") as f:
        json.dump(est, f, separators=(",", ":"))
    if a.scenario:
        sc = dict(est)
        sc["emulator"] = g.emulator_section()
        with open(a.scenario, "w") as f:
            json.dump(sc, f, separators=(",", ":"))
    if a.stats:
        ade = sum(1 for vm in est["virtualMachines"]
                  if any(d.get("encryptionSettings") for d in vm["properties"]["instanceView"]["disks"]))
        sys.stderr.write("vms=%d ade=%d subs=%d tenants=%d vaults=%d rbacVaults=%d disks=%d roleAssignments=%d "
                         "rsvs=%d protectedItems=%d vmExtensions=%d\n" % (
                             len(est["virtualMachines"]), ade, len(est["subscriptions"]), len(est["tenants"]),
                             len(est["vaults"]),
                             sum(1 for v in est["vaults"] if v["properties"]["enableRbacAuthorization"]),
                             len(est["disks"]), len(est["roleAssignments"]), len(est["recoveryServicesVaults"]),
                             len(est["backupProtectedItems"]), len(est["vmExtensions"])))


if __name__ == "__main__":
    main()
