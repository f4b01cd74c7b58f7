/*
 * factdefs.c - the registry of facts that rules may read.  It is the
 * contract between facts.c (which must produce every path listed for a
 * subject) and the rule files (which may name only these paths).
 * docs/facts.md is generated from it (kvaudit rules facts).
 */
#include <string.h>

#include "audit/estate/facts.h"

#define V SUBJ_VM
#define K SUBJ_VAULT
#define B SUBJ_BINDING
#define T SUBJ_TENANT

static const struct fact_def registry[] = {
	/* The VM (subjects vm and binding). */
	{"vm.id", FACT_STRING, V | B, "ARM ID of the VM"},
	{"vm.name", FACT_STRING, V | B, "VM name"},
	{"vm.location", FACT_STRING, V | B, "VM region, normalised (\"westeurope\")"},
	{"vm.subscriptionId", FACT_STRING, V | B, "subscription GUID of the VM"},
	{"vm.resourceGroup", FACT_STRING, V | B, "resource group of the VM"},
	{"vm.os", FACT_STRING, V | B, "\"Windows\", \"Linux\" or \"Unknown\""},
	{"vm.ade.encrypted", FACT_BOOL, V | B, "Azure Disk Encryption is in effect on the VM"},
	{"vm.ade.legacyAad", FACT_BOOL, V | B, "ADE uses the legacy Azure AD app flavour"},
	{"vm.ade.kek", FACT_BOOL, V | B, "some volume's BEK is wrapped by a key-encryption key"},
	{"vm.ade.sources", FACT_ARRAY, V | B, "where ADE was seen: disk, vmModel, instanceView, extension"},
	{"vm.ade.extensionVersion", FACT_STRING, V | B, "ADE extension typeHandlerVersion, or null"},
	{"vm.ade.extensionOperation", FACT_STRING, V | B, "ADE extension EncryptionOperation, or null"},
	{"vm.ade.vaults", FACT_ARRAY, V | B, "ARM IDs of the vaults holding the VM's BEKs and KEKs"},
	{"vm.agent.status", FACT_STRING, V | B, "VM agent: \"Ready\", \"NotReady\" or \"Unknown\" (needs an instance view)"},
	{"vm.agent.version", FACT_STRING, V | B, "VM agent version, or null"},
	{"vm.backup.protected", FACT_BOOL, V | B, "an Azure Backup protected item exists for the VM (needs backup items)"},
	{"vm.backup.vaultId", FACT_STRING, V | B, "ARM ID of the Recovery Services vault protecting the VM, or null"},
	{"vm.backup.vaultSubscriptionId", FACT_STRING, V | B, "subscription GUID of that vault, or null"},
	{"vm.backup.vaultLocation", FACT_STRING, V | B, "region of that vault, or null"},
	{"vm.backup.sameSubscription", FACT_BOOL, V | B, "that vault is in the VM's subscription (null if unprotected)"},
	{"vm.backup.sameRegion", FACT_BOOL, V | B, "that vault is in the VM's region (null if unprotected)"},
	{"vm.backup.lastBackupStatus", FACT_STRING, V | B, "the protected item's lastBackupStatus, or null"},
	{"vm.backup.lastBackupTime", FACT_STRING, V | B, "the protected item's lastBackupTime, or null"},
	{"vm.backup.lastBackupAgeHours", FACT_NUMBER, V | B, "hours from lastBackupTime to the snapshot's collectedAt, or null"},
	{"vm.backup.policy.name", FACT_STRING, V | B, "the protected item's backup policy (needs backup policies)"},
	{"vm.backup.policy.frequency", FACT_STRING, V | B, "its scheduleRunFrequency: \"Hourly\", \"Daily\" or \"Weekly\""},
	{"vm.backup.policy.maxAgeHours", FACT_NUMBER, V | B, "the oldest a last backup may be: two schedule periods"},
	{"vm.backup.overdue", FACT_BOOL, V | B, "no backup yet, or the last one is older than maxAgeHours"},
	{"vm.backup.jobs.since", FACT_STRING, V | B, "start of the window of backup jobs read (--since), or null"},
	{"vm.backup.jobs.count", FACT_NUMBER, V | B, "the VM's backup jobs in that window (needs backup jobs)"},
	{"vm.backup.jobs.failed", FACT_NUMBER, V | B, "of which Failed or CompletedWithWarnings"},
	{"vm.backup.jobs.keyVaultPermission.count", FACT_NUMBER, V | B, "jobs that failed with the key vault permission error (UserErrorKeyVaultPermissionsNotConfigured and its other spellings)"},
	{"vm.backup.jobs.keyVaultPermission.jobId", FACT_STRING, V | B, "the newest such job's ARM ID, or null"},
	{"vm.backup.jobs.keyVaultPermission.time", FACT_STRING, V | B, "its startTime, or null"},
	{"vm.backup.jobs.keyVaultPermission.errorCode", FACT_STRING, V | B, "the error code as Azure wrote it, or null"},
	{"vm.backup.jobs.keyVaultPermission.errorText", FACT_STRING, V | B, "Azure's error text (errorString), or null"},
	{"vm.backup.jobs.diskExclusion.count", FACT_NUMBER, V | B, "jobs that failed with UserErrorEncryptedVmNotSupportedWithDiskEx (disk exclusion on an encrypted VM)"},
	{"vm.backup.jobs.diskExclusion.jobId", FACT_STRING, V | B, "the newest such job's ARM ID, or null"},
	{"vm.backup.jobs.diskExclusion.time", FACT_STRING, V | B, "its startTime, or null"},
	{"vm.backup.jobs.diskExclusion.errorCode", FACT_STRING, V | B, "the error code as Azure wrote it, or null"},
	{"vm.backup.jobs.diskExclusion.errorText", FACT_STRING, V | B, "Azure's error text (errorString), or null"},
	{"vm.backup.jobs.noNetwork.count", FACT_NUMBER, V | B, "jobs that failed with ExtensionSnapshotFailedNoNetwork (the snapshot had no network)"},
	{"vm.backup.jobs.noNetwork.jobId", FACT_STRING, V | B, "the newest such job's ARM ID, or null"},
	{"vm.backup.jobs.noNetwork.time", FACT_STRING, V | B, "its startTime, or null"},
	{"vm.backup.jobs.noNetwork.errorCode", FACT_STRING, V | B, "the error code as Azure wrote it, or null"},
	{"vm.backup.jobs.noNetwork.errorText", FACT_STRING, V | B, "Azure's error text (errorString), or null"},
	{"vm.backup.enabledBy.name", FACT_STRING, V | B, "who enabled protection: the Activity Log caller (last 90 days; needs the Activity Log)"},
	{"vm.backup.enabledBy.objectId", FACT_STRING, V | B, "that identity's object ID, or null"},
	{"vm.backup.enabledBy.userType", FACT_STRING, V | B, "\"Member\", \"Guest\" (Microsoft Graph, the vault's tenant) or \"ServicePrincipal\""},
	{"vm.backup.enabledBy.time", FACT_STRING, V | B, "when protection was enabled, or null"},
	{"vm.backup.keyVaultAccess.complete", FACT_BOOL, V | B, "Backup Management Service has every grant the BKP rules check on the VM's key vaults (null without ADE)"},
	{"vm.backup.keyVaultAccess.vaults", FACT_ARRAY, V | B, "names of the VM's key vaults (BEK and KEK)"},
	{"vm.backup.keyVaultAccess.missingVaults", FACT_ARRAY, V | B, "names of those where a grant is missing"},
	{"vm.backup.keyVaultAccess.changedAfterFailure", FACT_BOOL, V | B, "a vault (or Backup's role there) changed after the newest permission-error job; null if unknown"},

	/* The key vault (subjects vault and binding). */
	{"vault.id", FACT_STRING, K | B, "ARM ID of the key vault"},
	{"vault.name", FACT_STRING, K | B, "key vault name"},
	{"vault.location", FACT_STRING, K | B, "vault region, normalised"},
	{"vault.subscriptionId", FACT_STRING, K | B, "subscription GUID of the vault"},
	{"vault.resourceGroup", FACT_STRING, K | B, "resource group of the vault"},
	{"vault.tenantId", FACT_STRING, K | B, "the vault's tenantId (data-plane authentication)"},
	{"vault.uri", FACT_STRING, K | B, "vaultUri"},
	{"vault.rbac", FACT_BOOL, K | B, "enableRbacAuthorization (absent means false)"},
	{"vault.enabledForDiskEncryption", FACT_BOOL, K | B, "enabledForDiskEncryption (absent means false)"},
	{"vault.softDelete", FACT_BOOL, K | B, "enableSoftDelete (absent means the service default, true)"},
	{"vault.purgeProtection", FACT_BOOL, K | B, "enablePurgeProtection (absent means false)"},
	{"vault.softDeleteRetentionDays", FACT_NUMBER, K | B, "softDeleteRetentionInDays, or null"},
	{"vault.network.defaultAction", FACT_STRING, K | B, "networkAcls.defaultAction (absent means \"Allow\")"},
	{"vault.network.bypass", FACT_STRING, K | B, "networkAcls.bypass (absent means \"AzureServices\")"},
	{"vault.network.trustedServicesAllowed", FACT_BOOL, K | B, "trusted Azure services (Azure Backup) can reach the vault"},
	{"vault.publicNetworkAccess", FACT_STRING, K | B, "publicNetworkAccess, or null"},
	{"vault.holdsBek", FACT_BOOL, K | B, "the vault holds the BEK of some ADE VM"},
	{"vault.holdsKek", FACT_BOOL, K | B, "the vault holds the KEK of some ADE VM"},
	{"vault.adeVms", FACT_ARRAY, K | B, "ARM IDs of the ADE VMs whose BEK or KEK the vault holds"},
	{"vault.subscriptionTenantId", FACT_STRING, K | B, "tenantId of the vault's subscription (needs subscriptions)"},
	{"vault.tenantMatchesSubscription", FACT_BOOL, K | B, "the vault's tenant is its subscription's tenant (needs subscriptions)"},
	{"vault.policyCount", FACT_NUMBER, K | B, "number of access-policy entries"},
	{"vault.foreignTenantPolicies", FACT_ARRAY, K | B, "objectIds of access-policy entries whose tenantId is not the vault's"},
	{"vault.backupPolicy.present", FACT_BOOL, K | B, "Backup Management Service has an access-policy entry (needs its object ID)"},
	{"vault.backupPolicy.objectId", FACT_STRING, K | B, "Backup Management Service's object ID in the vault's tenant"},
	{"vault.backupPolicy.secrets", FACT_ARRAY, K | B, "its effective secret permissions, lower case, \"all\" expanded"},
	{"vault.backupPolicy.keys", FACT_ARRAY, K | B, "its effective key permissions, lower case, \"all\" expanded"},
	{"vault.backupPolicy.certificates", FACT_ARRAY, K | B, "its effective certificate permissions"},
	{"vault.backupRbac.roles", FACT_ARRAY, K | B, "roles assigned to Backup Management Service at the vault or above (needs role assignments)"},
	{"vault.backupRbac.coversSecrets", FACT_BOOL, K | B, "those roles' data actions cover reading and backing up secrets"},
	{"vault.backupRbac.coversKeys", FACT_BOOL, K | B, "those roles' data actions cover reading and backing up keys"},

	/* One ADE VM x one vault holding its BEK and/or KEK. */
	{"binding.roles", FACT_ARRAY, B, "what the vault holds for the VM: \"BEK\", \"KEK\""},
	{"binding.holdsBek", FACT_BOOL, B, "the vault holds a BEK of the VM"},
	{"binding.holdsKek", FACT_BOOL, B, "the vault holds a KEK of the VM"},
	{"binding.secretUrls", FACT_ARRAY, B, "the VM's BEK secret URLs in this vault"},
	{"binding.keyUrls", FACT_ARRAY, B, "the VM's KEK key URLs in this vault"},
	{"binding.disks", FACT_ARRAY, B, "the VM's disks whose keys are in this vault"},
	{"binding.sameSubscription", FACT_BOOL, B, "VM and vault are in the same subscription"},
	{"binding.sameRegion", FACT_BOOL, B, "VM and vault are in the same region"},
	{"binding.kekManaged", FACT_BOOL, B, "some KEK here is certificate-backed (managed: true; needs key bundles)"},

	/* Restore readiness (needs --data-plane): each BEK secret's and KEK's state, judged at audit time. */
	{"binding.bek.secrets", FACT_ARRAY, B, "each BEK secret here: url, state, enabled, exp, nbf, recoveryLevel (and deletedDate, scheduledPurgeDate, recoveryId when deleted)"},
	{"binding.bek.missing", FACT_ARRAY, B, "BEK secret URLs that neither exist nor can be recovered"},
	{"binding.bek.deleted", FACT_ARRAY, B, "BEK secret URLs deleted but recoverable until their scheduledPurgeDate"},
	{"binding.bek.unusable", FACT_ARRAY, B, "BEK secret URLs that are disabled, expired or not yet valid"},
	{"binding.bek.expiring", FACT_ARRAY, B, "BEK secret URLs expiring within --expiry-warning (default 30 days)"},
	{"binding.kek.keys", FACT_ARRAY, B, "each KEK here: url, state, enabled, exp, nbf, recoveryLevel, kty, keyOps, managed (and the deleted fields)"},
	{"binding.kek.missing", FACT_ARRAY, B, "KEK URLs that neither exist nor can be recovered"},
	{"binding.kek.deleted", FACT_ARRAY, B, "KEK URLs deleted but recoverable until their scheduledPurgeDate"},
	{"binding.kek.unusable", FACT_ARRAY, B, "KEK URLs that are disabled, expired or not yet valid"},
	{"binding.kek.expiring", FACT_ARRAY, B, "KEK URLs expiring within --expiry-warning (default 30 days)"},
	{"binding.kek.unsuitable", FACT_ARRAY, B, "KEK URLs that are not RSA keys allowing both wrapKey and unwrapKey"},

	/* The tenant: its own subject, and the vault's tenant for vault and binding,
	 * the VM subscription's tenant for vm. */
	{"tenant.id", FACT_STRING, T | K | B | V, "tenant ID"},
	{"tenant.callerUserType", FACT_STRING, T | K | B | V, "the caller there: \"Member\", \"Guest\" or \"ServicePrincipal\""},
	{"tenant.callerIsGuest", FACT_BOOL, T | K | B | V, "the caller is a Guest there"},
	{"tenant.backupSp.status", FACT_STRING, T | K | B | V, "Backup Management Service there: \"found\" or \"absent\""},
	{"tenant.backupSp.objectId", FACT_STRING, T | K | B | V, "its object ID there, or null"},
	{"tenant.adeVaultCount", FACT_NUMBER, T | K | B | V, "vaults in the tenant holding a BEK or KEK"},
	{"tenant.holdsAdeVaults", FACT_BOOL, T | K | B | V, "the tenant has vaults holding a BEK or KEK"},
};

#undef V
#undef K
#undef B
#undef T

const struct fact_def *facts_registry(size_t *n)
{
	*n = sizeof(registry) / sizeof(registry[0]);
	return registry;
}

const struct fact_def *facts_find(const char *path)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (strcmp(registry[i].path, path) == 0)
			return &registry[i];
	return NULL;
}

const char *fact_type_name(enum fact_type t)
{
	switch (t) {
	case FACT_STRING: return "string";
	case FACT_BOOL: return "boolean";
	case FACT_NUMBER: return "number";
	case FACT_ARRAY: return "array";
	}
	return "?";
}

static const struct {
	enum subject_kind kind;
	const char *name;
} subjects[] = {
	{SUBJ_VM, "vm"}, {SUBJ_VAULT, "vault"}, {SUBJ_BINDING, "binding"}, {SUBJ_TENANT, "tenant"},
};

const char *subject_name(enum subject_kind k)
{
	for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++)
		if (subjects[i].kind == k)
			return subjects[i].name;
	return "?";
}

bool subject_parse(const char *s, enum subject_kind *out)
{
	for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++)
		if (s && strcmp(subjects[i].name, s) == 0) {
			*out = subjects[i].kind;
			return true;
		}
	return false;
}

const char *const BACKUP_TEMPLATE_SECRETS[3] = {"get", "list", "backup"};
const char *const BACKUP_TEMPLATE_KEYS[3] = {"get", "list", "backup"};
