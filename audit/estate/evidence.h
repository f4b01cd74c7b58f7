/*
 * evidence.h - what Azure Backup itself says about a VM (docs/estate.md,
 * docs/facts.md): its backup jobs since --since, who enabled protection
 * (the Activity Log of its Recovery Services vault) and whether that
 * identity is a Member or a Guest (Microsoft Graph), and the schedule of its
 * backup policy.  Loaded from the snapshot's backupJobs, activityLog,
 * principals and backupPolicies lists; turned into the vm.backup.jobs,
 * vm.backup.enabledBy, vm.backup.policy and vm.backup.keyVaultAccess facts.
 */
#ifndef KVAUDIT_EVIDENCE_H
#define KVAUDIT_EVIDENCE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "audit/estate/estate.h"

/* The Activity Log operation Azure records when VM protection is enabled (or changed). */
#define EVIDENCE_PROTECT_OPERATION "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/write"

/* The job errors kvaudit recognises (AZURE-FACTS c5). */
enum job_error { JOB_ERR_KV_PERMISSION = 0, JOB_ERR_DISK_EXCLUSION, JOB_ERR_NO_NETWORK, JOB_ERR_COUNT };

/*
 * What the facts say of a job that failed with one of the job errors: its
 * ID, start and, for each kind, evidence_job_error's code and text (both
 * NULL when it did not fail with that kind).  Most jobs have none: they keep
 * no detail, and so neither their ID nor their start time, which the facts
 * only give for such a job.
 */
struct backup_job_detail {
	const char *id, *start_time;
	long long start;                      /* startTime in Unix seconds, 0 when absent */
	const char *code[JOB_ERR_COUNT], *text[JOB_ERR_COUNT];
};

/*
 * One backup job (JobResource with AzureIaaSVMJob properties), read at load
 * (evidence_add_job): no JSON of it stays.  Strings are the evidence's own,
 * one copy of each (thousands of jobs repeat a VM name, a vault, an error).
 */
struct backup_job {
	const char *vm_name;                  /* properties.entityFriendlyName */
	const char *rsv;                      /* its Recovery Services vault: estate_rsv_prefix of its id ("": none) */
	const struct backup_job_detail *detail;   /* NULL: none of the job errors */
	unsigned rsv_len;                     /* strlen(rsv) */
	bool failed;                          /* status Failed or CompletedWithWarnings */
};

/*
 * What evidence_read_job reads of a job for evidence_keep_job: strings
 * borrowed from the job's JSON, and the job errors it failed with (code[k]
 * and text[k] where hit[k], when any; start is startTime's, then).
 */
struct evidence_job_read {
	const char *id, *vm_name, *start_time;
	bool failed, any;
	bool hit[JOB_ERR_COUNT];
	const char *text[JOB_ERR_COUNT];
	char code[JOB_ERR_COUNT][128];
	long long start;
};

/* One Activity Log event (EventData). */
struct activity_event {
	const char *operation, *status, *resource_id, *caller, *object_id, *tenant_id, *time;
	bool has_upn;                /* the caller's claims name a user principal (a user, not an app) */
	long long at;
};

/* A Microsoft Graph user of a tenant, as the collector read it ($.principals[]). */
struct principal {
	const char *tenant_id, *id, *user_type, *upn, *display_name;
};

/* A backup policy's schedule (ProtectionPolicyResource). */
struct backup_policy {
	const char *id, *name, *frequency;   /* schedulePolicy.scheduleRunFrequency */
	double period_hours;                  /* time between scheduled backups; 0 when not understood */
};

struct evidence {
	const char *jobs_since;      /* $.backupJobsSince: the start of the job window */
	struct backup_job *jobs;          size_t njobs, capjobs;
	struct activity_event *events;    size_t nevents, capevents;
	struct principal *principals;     size_t nprincipals;
	struct backup_policy *policies;   size_t npolicies;
	/* Built once so that 10,000 VMs do not each scan every event, policy and error (evidence.c). */
	struct idmap enabled_ix;     /* protected item ID -> its earliest successful protection write */
	struct idmap policy_ix;      /* policy ID -> the last policy of that ID */
	struct idmap error_ix;       /* list_error's answers: parent, list -> index in errors + 1, or 0 */
	struct evidence_pool *pool;  /* the jobs' strings and details (evidence.c) */
};

/*
 * A snapshot's evidence is loaded in steps (estate.c, load_tree):
 * evidence_begin reads $.backupJobsSince of e->doc into a new e->evidence;
 * evidence_read_job then evidence_keep_job, and evidence_add_event, read the
 * i-th element of $.backupJobs and $.activityLog, which estate.c hands over
 * one at a time (a lean load frees each after), keeping no JSON of it;
 * evidence_read_job reads only the job (err: its own), so another thread
 * may run it while the loader keeps the jobs before; evidence_load then
 * indexes them and reads the lists principals and backupPolicies of e->doc
 * into e->evidence and e->present.  Each is false with err naming the file
 * (e->path or name) and JSON path when a field kvaudit uses has the wrong
 * type.
 */
bool evidence_begin(struct estate *e, struct kv_err *err);
bool evidence_read_job(const char *name, const cJSON *job, size_t i, struct evidence_job_read *r, struct kv_err *err);
void evidence_keep_job(struct estate *e, const struct evidence_job_read *r);
bool evidence_add_event(struct estate *e, const cJSON *event, size_t i, struct kv_err *err);
bool evidence_load(struct estate *e, const char *name, struct kv_err *err);
void evidence_free(struct evidence *ev);

/* "2026-11-28T01:11:43.0276Z" (also "+00:00" offsets, no fraction) to Unix seconds; 0 when not a time. */
long long evidence_time(const char *iso);

/*
 * Whether a job failed with error kind: one of Microsoft's spellings of its
 * code (case-insensitive) in an errorDetails entry's errorCode, errorTitle or
 * errorString, or in extendedInfo.dynamicErrorMessage, or Microsoft's
 * documented message text in errorString.  *code gets the code as the job
 * wrote it (or the canonical name), *text Azure's error text; both point
 * into the job or static storage.
 */
bool evidence_job_error(const cJSON *job, enum job_error kind, char *code, size_t ncode, const char **text);

/* What facts.c found of Backup Management Service's grants on the key vaults of one VM. */
struct evidence_access {
	int state;                   /* 1 every grant the BKP rules check is there, 0 one is missing, -1 unknown */
	const char *status;          /* unknown: "error" or "skipped" */
	char reason[512];            /* unknown: why */
	cJSON *vaults;               /* names of the VM's key vaults (borrowed) */
	cJSON *missing;              /* names of those lacking a grant (borrowed) */
	cJSON *vault_ids;            /* their ARM IDs (borrowed) */
	const char *bms_object_id;   /* Backup Management Service's object ID in the vaults' tenant, or NULL */
};

/*
 * Adds the evidence facts of vm to its "backup" facts object bk (jobs,
 * lastBackupTime, lastBackupAgeHours, policy, overdue, enabledBy,
 * keyVaultAccess), and their "$unavailable" entries to un.  item is the VM's
 * protected item, NULL when the VM is not protected (every fact is then null).
 */
void evidence_vm_facts(const struct estate *e, const struct vm *vm, const struct protected_item *item, cJSON *bk,
                       cJSON *un, const struct evidence_access *acc);

#endif
