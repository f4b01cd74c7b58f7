/*
 * estate.h - the estate model: a kvaudit.estate v1 snapshot (DESIGN.md)
 * turned into typed structs once, at the boundary.  Every quirk of Azure's
 * JSON (AZURE-FACTS) is handled here or in ade.c; nothing downstream reads
 * raw ARM JSON except through the `raw` pointers kept for evidence.
 *
 * Ownership: struct estate owns the parsed cJSON document and every string
 * and array below it (after a lean load, the strings of the big lists are
 * copies in its pool, e->mem); estate_free releases all of it.
 */
#ifndef KVAUDIT_ESTATE_H
#define KVAUDIT_ESTATE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "audit/util/idmap.h"
#include "audit/util/util.h"

/* appIds of Backup Management Service (AZURE-FACTS c1). */
#define BACKUP_SP_APPID_PUBLIC "262044b1-e2ce-469f-a196-69ab7ada62d3"
#define BACKUP_SP_APPID_USGOV  "ff281ffe-705c-4f53-9f37-a40e6f2c68f3"

enum vm_os { OS_UNKNOWN = 0, OS_WINDOWS, OS_LINUX };
enum agent_state { AGENT_UNKNOWN = 0, AGENT_READY, AGENT_NOT_READY };
enum sp_status { SP_UNKNOWN = 0, SP_FOUND, SP_ABSENT };
enum user_type { USER_UNKNOWN = 0, USER_MEMBER, USER_GUEST, USER_SERVICE_PRINCIPAL };

const char *vm_os_name(enum vm_os os);            /* "Windows", "Linux", "Unknown" */
const char *user_type_name(enum user_type t);     /* "Member", "Guest", "ServicePrincipal", "Unknown" */
const char *sp_status_name(enum sp_status s);     /* "found", "absent", "unknown" */

/* Where an ADE key reference was seen; a bit set. */
enum ade_source {
	ADE_SRC_DISK = 1 << 0,          /* managed disk encryptionSettingsCollection */
	ADE_SRC_VM_MODEL = 1 << 1,      /* storageProfile.osDisk.encryptionSettings */
	ADE_SRC_INSTANCE_VIEW = 1 << 2, /* instanceView.disks[].encryptionSettings */
	ADE_SRC_EXTENSION = 1 << 3,     /* the ADE extension's public settings */
};

/* One disk volume's keys: the BEK (a secret) and, optionally, the KEK (a key). */
struct ade_volume {
	char *disk;          /* disk name or managed-disk ID; "extension" for extension-only */
	char *bek_vault;     /* ARM ID of the vault holding the BEK, or NULL */
	char *secret_url;    /* BEK secret URL, or NULL */
	char *kek_vault;     /* ARM ID of the vault holding the KEK, or NULL */
	char *key_url;       /* KEK key URL, or NULL */
	char *bek_vault_url; /* the extension's KeyVaultURL when no vault of the snapshot matches it */
	unsigned sources;    /* enum ade_source bits */
	unsigned borrowed;   /* which of disk, bek_vault, kek_vault are the estate's own strings (ade.c): not freed */
};

struct ade_info {
	bool encrypted;              /* ADE is in effect on the VM */
	bool legacy_aad;             /* the AAD-app flavour (extension 1.x Windows / 0.x Linux, AADClientID, settings version 1.0) */
	bool disabled;               /* the extension's last operation was DisableEncryption */
	unsigned sources;            /* union of the volumes' sources */
	char *ext_type;              /* "AzureDiskEncryption" / "AzureDiskEncryptionForLinux", or NULL */
	char *ext_version;           /* typeHandlerVersion */
	char *ext_operation;         /* EncryptionOperation */
	char *volume_type;           /* VolumeType as given */
	struct ade_volume *volumes;
	size_t nvolumes;
};

struct vm {
	const char *id, *name, *location;     /* borrowed from raw */
	char sub[64];                        /* subscription GUID from the ID */
	char rg[128];                        /* resource group from the ID */
	enum vm_os os;
	bool has_instance_view;
	enum agent_state agent;
	char *agent_version;
	struct ade_info ade;
	cJSON *raw;                          /* the VM object in the snapshot; NULL after a lean load */
	cJSON **extensions;                  /* extension objects, embedded or joined from vmExtensions
	                                        (after a lean load: only those from vmExtensions) */
	size_t nextensions;
	size_t *disks;                       /* indexes into estate.disks of disks managedBy this VM */
	size_t ndisks;
};

struct access_policy {
	const char *tenant_id, *object_id, *application_id;  /* borrowed; may be NULL */
	/* Permission names exactly as the service returned them (casing kept for rollback). */
	cJSON *keys, *secrets, *certificates, *storage;      /* borrowed arrays, may be NULL */
};

struct vault {
	const char *id, *name, *location, *tenant_id, *uri;  /* borrowed */
	char sub[64];
	char rg[128];
	bool rbac;                     /* enableRbacAuthorization; absent = false (AZURE-FACTS b2) */
	bool enabled_for_disk_encryption; /* absent = false */
	bool soft_delete;              /* enableSoftDelete; absent = true (service default, b2) */
	bool purge_protection;         /* absent = false */
	int soft_delete_days;          /* 0 when absent */
	const char *default_action;    /* networkAcls.defaultAction; NULL = Allow */
	const char *bypass;            /* networkAcls.bypass; NULL = AzureServices (ARM default) */
	const char *public_network_access;
	struct access_policy *policies;
	size_t npolicies;
	cJSON *raw;
};

struct disk {
	const char *id, *name, *managed_by, *location;
	cJSON *raw;                          /* NULL after a lean load: see estate_disk_raw */
};

struct role_assignment {
	const char *id, *scope, *principal_id, *role_definition_id, *principal_type;
	cJSON *raw;
};

struct role_definition {
	const char *id, *name, *role_name;
	cJSON *data_actions, *not_data_actions;   /* merged over permissions[]; owned arrays */
	cJSON *raw;
};

struct protected_item {
	const char *id;              /* the protected item's ARM ID (its RSV is the prefix) */
	const char *vm_id;           /* virtualMachineId or sourceResourceId */
	const char *rsv_id;          /* ARM ID of the Recovery Services vault ("" when id names none) */
	const char *protection_state, *last_backup_status, *health_status;
	const char *last_backup_time, *policy_id;   /* lastBackupTime, policyId (evidence.c) */
	cJSON *raw;                  /* NULL after a lean load */
};

struct rs_vault {
	const char *id, *name, *location;
	cJSON *raw;
};

/* Key Vault attributes of a secret or key (data plane; times in Unix seconds, 0 when absent). */
struct kv_attributes {
	bool enabled;                /* absent = true (the service default) */
	long long exp, nbf;
	const char *recovery_level;  /* "Recoverable+Purgeable", …; NULL when absent */
};

struct key_bundle {
	const char *kid;
	bool managed;                /* true: backs a certificate (AZURE-FACTS b5) */
	const char *kty;             /* "RSA", "RSA-HSM", "EC", …; NULL when absent */
	cJSON *key_ops;              /* borrowed array of strings, or NULL */
	struct kv_attributes attr;
	cJSON *raw;
};

/* Value-free secret metadata: a SecretItem of Get Secret Versions (never a secret's value). */
struct secret_item {
	const char *id;              /* https://{vault}/secrets/{name}/{version} */
	bool managed;
	struct kv_attributes attr;
	cJSON *raw;
};

/* A soft-deleted secret (DeletedSecretItem) or key (DeletedKeyBundle): recoverable until its purge date. */
struct deleted_item {
	const char *id;              /* the secret ID or key kid (any version: all are deleted together) */
	const char *recovery_id;     /* https://{vault}/deletedsecrets/{name} or …/deletedkeys/{name} */
	long long deleted_date, scheduled_purge_date;  /* Unix seconds, 0 when absent */
	bool managed;
	const char *kty;
	cJSON *key_ops;
	struct kv_attributes attr;
	cJSON *raw;
};

struct tenant {
	char *tenant_id;
	enum user_type caller_type;
	enum sp_status backup_sp;
	char *backup_sp_object_id;   /* NULL unless found */
};

struct subscription {
	const char *id;              /* "/subscriptions/<guid>" */
	char sub[64];
	const char *tenant_id, *display_name, *state;
	cJSON *raw;
};

struct evidence;   /* evidence.h */

struct estate_error {
	const char *scope, *code, *message;
	const char *tenant_id;       /* the tenant a tenant-wide list ("/subscriptions") was read in, or NULL */
	int status;
};

struct caller {
	const char *object_id, *tenant_id, *type, *user_type, *home_tenant_id, *display_name;
	bool present;
};

/* Which optional lists the snapshot carries: an absent list is "not collected". */
struct estate_present {
	bool subscriptions, vms, disks, vaults, role_assignments, role_definitions,
	     rs_vaults, protected_items, keys, tenants, caller, secrets;
	bool backup_jobs, activity_log, principals, backup_policies;   /* evidence.h */
};

struct estate {
	char *path;                  /* where it was loaded from */
	cJSON *doc;                  /* owns every borrowed string above */
	const char *collected_at, *cloud;
	struct caller caller;
	struct estate_present present;

	struct subscription *subs;      size_t nsubs;
	struct vm *vms;                 size_t nvms;
	struct disk *disks;             size_t ndisks;
	struct vault *vaults;           size_t nvaults;
	struct role_assignment *ras;    size_t nras;
	struct role_definition *rds;    size_t nrds;
	struct rs_vault *rsvs;          size_t nrsvs;
	struct protected_item *items;   size_t nitems;
	struct key_bundle *keys;        size_t nkeys;
	struct secret_item *secrets;    size_t nsecrets;
	struct deleted_item *deleted_secrets; size_t ndeleted_secrets;
	struct deleted_item *deleted_keys;    size_t ndeleted_keys;
	long long as_of;             /* the time expiry is judged at (Unix seconds) */
	long long expiry_warning;    /* seconds before exp that count as "about to expire" */
	struct tenant *tenants;         size_t ntenants;
	struct estate_error *errors;    size_t nerrors;
	struct evidence *evidence;   /* backup jobs, Activity Log, principals, policies (evidence.h) */
	struct estate_mem *mem;      /* a lean load's copies of strings (estate.c) */

	/* Case-insensitive indexes by ARM ID (kid for keys, tenant ID for tenants). */
	struct idmap vm_ix, disk_ix, vault_ix, sub_ix, rsv_ix, key_ix, tenant_ix, rd_ix, secret_ix;
	struct idmap vault_host_ix;  /* vaultUri host -> vault, for key URLs without a sourceVault */
};

/* Options that override or complete the snapshot. */
struct estate_opts {
	/* --backup-sp-object-id TENANT=OID pairs. */
	const char **sp_overrides;   /* "tenant=oid" strings */
	size_t nsp_overrides;
	/* Expiry of BEK secrets and KEKs: judged as of as_of (0 = now), warning expiry_warning
	 * seconds ahead (expiry_warning_set false = the default, 30 days). */
	long long as_of;
	long long expiry_warning;
	bool expiry_warning_set;
	/*
	 * Lean: the big lists (virtualMachines, disks, backupProtectedItems) are
	 * parsed one element at a time and their JSON freed once loaded, so
	 * memory is the typed model's, not a tree of the whole snapshot: their
	 * raw is NULL afterwards (docs/performance.md).  Same errors either way.
	 */
	bool lean;
};

#define ESTATE_EXPIRY_WARNING_DEFAULT (30LL * 86400)

/*
 * Loads and validates a snapshot.  Returns NULL with err set (naming the
 * file and the JSON path or byte offset) on any bad input: a missing file,
 * a directory, an empty or truncated file, invalid JSON, a wrong kind or
 * version, a field of the wrong type.  Unknown fields are ignored.  A lean
 * load reads a regular file more than once: a read that fails, or a file
 * that changes meanwhile, fails it ("cannot read '<path>': ...").
 */
struct estate *estate_load(const char *path, const struct estate_opts *opts, struct kv_err *err);
/*
 * Tests only: a lean load's scan of a file reads it read_size bytes at a
 * time at least (0: as it does), and hook(path) runs between the scan and
 * the parse (NULL: none).
 */
void estate_test_io(size_t read_size, void (*hook)(const char *path));
/* The same from memory (used by tests and fuzzers); name is used in messages. */
struct estate *estate_parse(const char *data, size_t len, const char *name,
                            const struct estate_opts *opts, struct kv_err *err);
/*
 * For tests and fuzzers: just past the JSON value at text[i] as a lean
 * load's scanner finds it (0 when none), with the classifier `how`
 * (ESTATE_SCAN_BYTES is the byte-by-byte reference); SIZE_MAX when this
 * CPU lacks that classifier's instructions.
 */
enum { ESTATE_SCAN_BYTES, ESTATE_SCAN_SSE2, ESTATE_SCAN_AVX2, ESTATE_SCAN_AVX512, ESTATE_SCAN_BEST };
size_t estate_value_end(const char *text, size_t len, size_t i, int how);
/*
 * The same from a tree already in memory (a live collection): no text to
 * print and parse again.  On success the estate owns doc (estate_free
 * deletes it) and leaves it unchanged, so e->doc can still be written out;
 * on failure (NULL, err set) doc stays the caller's.  opts->lean is ignored.
 */
struct estate *estate_from_doc(cJSON *doc, const char *name, const struct estate_opts *opts, struct kv_err *err);
void estate_free(struct estate *e);

/* Lookups by ARM ID (case-insensitive); NULL when absent. */
struct vm *estate_vm(const struct estate *e, const char *id);
struct vault *estate_vault(const struct estate *e, const char *id);
struct disk *estate_disk(const struct estate *e, const char *id);
struct subscription *estate_subscription(const struct estate *e, const char *sub_guid);
struct rs_vault *estate_rs_vault(const struct estate *e, const char *id);
struct key_bundle *estate_key(const struct estate *e, const char *kid);

/* The Recovery Services vault ID ("…/vaults/<name>") an ID below it starts with, or "" into out. */
void estate_rsv_prefix(const char *id, char *out, size_t n);
struct secret_item *estate_secret(const struct estate *e, const char *id);
/* The deleted secret or key with the vault host and name of url (any version); NULL when none. */
const struct deleted_item *estate_deleted_secret(const struct estate *e, const char *url);
const struct deleted_item *estate_deleted_key(const struct estate *e, const char *url);
struct tenant *estate_tenant(const struct estate *e, const char *tenant_id);
struct role_definition *estate_role_definition(const struct estate *e, const char *id);
/* A disk's raw JSON: d->raw (NULL after a lean load, which keeps what ade.c reads: estate_disk_ade). */
const cJSON *estate_disk_raw(const struct estate *e, const struct disk *d);
/* The vault whose vaultUri host is the host of url (a secret or key URL); NULL when none. */
struct vault *estate_vault_by_url(const struct estate *e, const char *url);
/*
 * The estate error that explains why resource id could not be read: one
 * whose scope is id or contains it (a failed list of its subscription or
 * resource group).  NULL when none does.
 */
const struct estate_error *estate_error_for(const struct estate *e, const char *id);
/* The first error whose scope is id itself or a resource below it (a VM's extension, say). */
const struct estate_error *estate_error_within(const struct estate *e, const char *id);
/*
 * The same for a data-plane URL (a key or secret URL): an error whose scope,
 * without its query, is url or an ancestor of it ("https://kv.vault.azure.net/keys").
 */
const struct estate_error *estate_error_for_url(const struct estate *e, const char *url);
/*
 * The failed list of kind that facts about scope are judged from, or NULL
 * when every such list was read in full (docs/estate.md, errors[]).  kind is
 * an ARM type ("Microsoft.Compute/virtualMachines": a scope ending in
 * "/providers/<kind>") or the last segment of a list below a resource
 * ("backupProtectedItems").  A list counts when its parent scope (the scope
 * without that suffix) is scope, encloses it or lies below it: for
 * "/subscriptions/S", every list of kind in S; for a vault ID, the lists of
 * its subscription, resource group and the vault itself.  An error of a
 * whole subscription ("/subscriptions/S") counts for every kind in it.
 */
const struct estate_error *estate_list_failed(const struct estate *e, const char *scope, const char *kind);
/* The kinds facts.c asks about; collect_*.c record failed lists with these as their scope's end. */
#define ESTATE_LIST_VMS "Microsoft.Compute/virtualMachines"
#define ESTATE_LIST_VM_EXTENSIONS "Microsoft.Compute/virtualMachines/extensions"
#define ESTATE_LIST_DISKS "Microsoft.Compute/disks"
#define ESTATE_LIST_VAULTS "Microsoft.KeyVault/vaults"
#define ESTATE_LIST_RSVS "Microsoft.RecoveryServices/vaults"
#define ESTATE_LIST_PROTECTED_ITEMS "backupProtectedItems"
#define ESTATE_LIST_ROLE_ASSIGNMENTS "Microsoft.Authorization/roleAssignments"
/* The failed subscription list ("/subscriptions") of tenant_id (or of a tenant the error does not name). */
const struct estate_error *estate_subscriptions_failed(const struct estate *e, const char *tenant_id);

#endif
