/*
 * evidence.c - see evidence.h.  Azure's own JSON stays in the snapshot as
 * collected; this file reads the few fields the evidence facts need,
 * checking their types, and builds those facts per VM.  Of the backup jobs
 * and Activity Log events, which a lean load frees one by one, it keeps
 * copies (the pool below), never their JSON.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "audit/estate/evidence.h"
#include "audit/estate/facts.h"
#include "audit/util/armid.h"
#include "audit/util/fastjson.h"
#include "audit/util/json.h"

/* ---- loading ---- */

struct ld {
	const char *name;
	struct kv_err *err;
	bool failed;
};

static const char *str_of(struct ld *L, const cJSON *o, const char *key, const char *path)
{
	const cJSON *j = fastjson_get(o, key);

	if (!j || cJSON_IsNull(j))
		return NULL;
	if (!cJSON_IsString(j)) {
		if (!L->failed)
			kv_err_set(L->err, "%s: %s.%s: expected a string, got %s", L->name, path, key, json_type_name(j));
		L->failed = true;
		return NULL;
	}
	return j->valuestring;
}

static const cJSON *obj_of(struct ld *L, const cJSON *o, const char *key, const char *path)
{
	const cJSON *j = fastjson_get(o, key);

	if (!j || cJSON_IsNull(j))
		return NULL;
	if (!cJSON_IsObject(j)) {
		if (!L->failed)
			kv_err_set(L->err, "%s: %s.%s: expected an object, got %s", L->name, path, key, json_type_name(j));
		L->failed = true;
		return NULL;
	}
	return j;
}

/* The top-level list key: NULL when absent (not collected); an error when not an array of objects. */
static const cJSON *list_of(struct ld *L, const cJSON *doc, const char *key, bool *present)
{
	const cJSON *a = fastjson_get(doc, key), *it;
	int i = 0;

	*present = false;
	if (!a || cJSON_IsNull(a))
		return NULL;
	if (!cJSON_IsArray(a)) {
		kv_err_set(L->err, "%s: $.%s: expected an array, got %s", L->name, key, json_type_name(a));
		L->failed = true;
		return NULL;
	}
	cJSON_ArrayForEach(it, a) {
		if (!cJSON_IsObject(it)) {
			kv_err_set(L->err, "%s: $.%s[%d]: expected an object, got %s", L->name, key, i, json_type_name(it));
			L->failed = true;
			return NULL;
		}
		i++;
	}
	*present = true;
	return a;
}

/*
 * ---- the jobs' strings ----
 *
 * A snapshot of 50k VMs lists ~300k jobs: their JSON is gone once each is
 * read (a lean load frees it), so what the facts need of a job or an event
 * is copied here, into one arena, and the strings that repeat (VM names,
 * vaults, error codes and texts, callers) once each: a table of the copies
 * finds an equal one.
 */
struct evidence_pool {
	struct fastjson_arena mem;
	struct pooled {
		const char *s;
		uint64_t hash;
	} *slots;                            /* open addressing; cap a power of two */
	size_t cap, len;
};

static char *pool_copy(struct evidence_pool *p, const char *s, size_t n)
{
	char *c = fastjson_alloc(&p->mem, n + 1);

	memcpy(c, s, n);
	c[n] = '\0';
	return c;
}

static struct pooled *pool_slot(struct evidence_pool *p, const char *s, size_t n, uint64_t h)
{
	size_t i = (size_t)h & (p->cap - 1);

	while (p->slots[i].s && !(p->slots[i].hash == h && strncmp(p->slots[i].s, s, n) == 0 && p->slots[i].s[n] == '\0'))
		i = (i + 1) & (p->cap - 1);
	return &p->slots[i];
}

/* The pool's copy of s[0, n) (NULL for NULL), one for all equal strings. */
static const char *pool_intern(struct evidence_pool *p, const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;   /* FNV-1a */
	struct pooled *sl;

	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
	if (2 * (p->len + 1) > p->cap) {
		struct pooled *old = p->slots;
		size_t ocap = p->cap;

		p->cap = ocap ? 2 * ocap : 1024;
		p->slots = kv_calloc(p->cap, sizeof(*p->slots));
		for (size_t i = 0; i < ocap; i++)
			if (old[i].s)
				*pool_slot(p, old[i].s, strlen(old[i].s), old[i].hash) = old[i];
		free(old);
	}
	sl = pool_slot(p, s, n, h);
	if (!sl->s) {
		sl->s = pool_copy(p, s, n);
		sl->hash = h;
		p->len++;
	}
	return sl->s;
}

static const char *pool_str(struct evidence_pool *p, const char *s)
{
	return s ? pool_intern(p, s, strlen(s)) : NULL;
}

static void pool_free(struct evidence_pool *p)
{
	if (!p)
		return;
	fastjson_arena_free(&p->mem);
	free(p->slots);
	free(p);
}

/*
 * The vault prefix of a job's id (estate_rsv_prefix), pooled.  A vault's
 * jobs are listed together: when id starts with the previous job's prefix,
 * followed by '/' or its end, that is its own.
 */
static const char *job_rsv(struct evidence_pool *p, const char *id, const struct backup_job *prev)
{
	char rsv[512];
	size_t n = prev ? prev->rsv_len : 0;

	if (n && id && strncmp(id, prev->rsv, n) == 0 && (id[n] == '/' || id[n] == '\0'))
		return prev->rsv;
	estate_rsv_prefix(id, rsv, sizeof(rsv));
	return pool_str(p, rsv);
}

/*
 * A job's error strings (of each errorDetails entry: errorCode, errorTitle,
 * errorString; and extendedInfo.dynamicErrorMessage), each with a copy in
 * lower case made once (in buf): every kind looks for several codes and
 * texts in each (Microsoft spells the codes several ways), which is then a
 * memchr for the needle's first byte and a memcmp, not a case-insensitive
 * comparison at every byte for every needle.
 */
struct job_texts {
	size_t n;
	struct job_text {
		const char *s[3];                /* NULL when absent or not a string */
		const char *low[3];
		size_t len[3];
		const cJSON *num;                /* errorCode, when Azure sent the integer the spec says */
	} *d;
	struct job_text dyn;                 /* s[0]: dynamicErrorMessage */
	char *buf;
};

static void job_texts_init(struct job_texts *t, const cJSON *details, const char *dyn);
static bool job_error_of(const struct job_texts *t, enum job_error kind, char *code, size_t ncode, const char **text);
static void job_texts_free(struct job_texts *t);

/* The pool's copy of the errors r found (evidence_read_job), of a job that has some. */
static const struct backup_job_detail *job_detail(struct evidence_pool *p, const struct evidence_job_read *r)
{
	struct backup_job_detail d = {0}, *out;

	for (size_t k = 0; k < JOB_ERR_COUNT; k++)
		if (r->hit[k]) {
			d.code[k] = pool_str(p, r->code[k]);
			d.text[k] = pool_str(p, r->text[k]);
		}
	d.id = r->id ? pool_copy(p, r->id, strlen(r->id)) : NULL;
	d.start_time = r->start_time ? pool_copy(p, r->start_time, strlen(r->start_time)) : NULL;
	d.start = r->start;
	out = fastjson_alloc(&p->mem, sizeof(*out));
	*out = d;
	return out;
}

/* Element i of the top-level list `list` (path gets "$.list[i]"): false with an error when not an object. */
static bool list_elem(struct ld *L, const cJSON *it, const char *list, size_t i, char *path, size_t n)
{
	snprintf(path, n, "$.%s[%zu]", list, i);
	if (cJSON_IsObject(it))
		return true;
	kv_err_set(L->err, "%s: %s: expected an object, got %s", L->name, path, json_type_name(it));
	L->failed = true;
	return false;
}

/* arr (n elements of sz bytes, room for *cap) with room for one more. */
static void *room_for(void *arr, size_t n, size_t *cap, size_t sz)
{
	if (n < *cap)
		return arr;
	*cap = *cap ? 2 * *cap : 64;
	return kv_realloc(arr, *cap * sz);
}

/* A field of a job: absent and null give NULL; false when it is there but of another type. */
static bool job_field(const cJSON *j, int type, const char **s)
{
	*s = NULL;
	if (!j || cJSON_IsNull(j))
		return true;
	if ((j->type & 0xFF) != type)
		return false;
	if (type == cJSON_String)
		*s = j->valuestring;
	return true;
}

/* str_of's and obj_of's message for job i's field key (props: of its properties), which is not what. */
static bool job_bad(struct ld *L, size_t i, bool props, const char *key, const char *what, const cJSON *got)
{
	kv_err_set(L->err, "%s: $.backupJobs[%zu]%s.%s: expected %s, got %s", L->name, i, props ? ".properties" : "", key,
	           what, json_type_name(got));
	return false;
}

/*
 * Called for each of ~300k jobs of a 50k-VM snapshot: each object's fields
 * are found in one walk (fastjson_fields) and a path is written only for a
 * message.  The checks and their order (the first error is the one told)
 * are str_of's and obj_of's.
 */
bool evidence_read_job(const char *name, const cJSON *it, size_t i, struct evidence_job_read *r, struct kv_err *err)
{
	static const char *const TOP[] = {"id", "properties"};
	static const char *const PROPS[] = {"entityFriendlyName", "operation", "status", "startTime", "errorDetails",
	                                    "extendedInfo"};
	struct ld L = {name, err, false};
	const char *id, *status = NULL, *start_time = NULL, *vm_name = NULL, *dyn = NULL, *s;
	const cJSON *t[2], *f[6] = {0};
	char path[64];

	if (!cJSON_IsObject(it))
		return list_elem(&L, it, "backupJobs", i, path, sizeof(path));
	fastjson_fields(it, TOP, t, 2);
	if (!job_field(t[0], cJSON_String, &id))
		return job_bad(&L, i, false, TOP[0], "a string", t[0]);
	if (!job_field(t[1], cJSON_Object, &s))
		return job_bad(&L, i, false, TOP[1], "an object", t[1]);
	if (t[1] && cJSON_IsObject(t[1])) {
		const char **to[4] = {&vm_name, &s, &status, &start_time};

		fastjson_fields(t[1], PROPS, f, 6);
		for (size_t k = 0; k < 4; k++)
			if (!job_field(f[k], cJSON_String, to[k]))
				return job_bad(&L, i, true, PROPS[k], "a string", f[k]);
		if (f[4] && !cJSON_IsNull(f[4]) && !cJSON_IsArray(f[4]))
			return job_bad(&L, i, true, PROPS[4], "an array", f[4]);
		dyn = cJSON_GetStringValue(fastjson_get(f[5], "dynamicErrorMessage"));
	}
	r->id = id;
	r->vm_name = vm_name;
	r->start_time = start_time;
	r->failed = kv_streq_ci(status, "Failed") || kv_streq_ci(status, "CompletedWithWarnings");
	r->any = false;
	/* Only errorDetails or a dynamicErrorMessage can hold an error evidence_job_error finds. */
	if ((cJSON_IsArray(f[4]) && f[4]->child) || dyn) {
		struct job_texts tx;

		job_texts_init(&tx, f[4], dyn);
		for (size_t k = 0; k < JOB_ERR_COUNT; k++) {
			r->text[k] = NULL;
			r->hit[k] = job_error_of(&tx, (enum job_error)k, r->code[k], sizeof(r->code[k]), &r->text[k]);
			r->any |= r->hit[k];
		}
		job_texts_free(&tx);
		r->start = evidence_time(start_time);
	}
	return true;
}

void evidence_keep_job(struct estate *e, const struct evidence_job_read *r)
{
	struct evidence *ev = e->evidence;
	struct backup_job *j;

	ev->jobs = room_for(ev->jobs, ev->njobs, &ev->capjobs, sizeof(*ev->jobs));
	j = &ev->jobs[ev->njobs];
	j->vm_name = pool_str(ev->pool, r->vm_name);
	j->rsv = job_rsv(ev->pool, r->id, ev->njobs ? j - 1 : NULL);
	j->rsv_len = (unsigned)strlen(j->rsv);
	j->failed = r->failed;
	j->detail = r->any ? job_detail(ev->pool, r) : NULL;
	ev->njobs++;
}

#define CLAIM_OID "http://schemas.microsoft.com/identity/claims/objectidentifier"
#define CLAIM_TID "http://schemas.microsoft.com/identity/claims/tenantid"
#define CLAIM_UPN "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"

bool evidence_add_event(struct estate *e, const cJSON *it, size_t i, struct kv_err *err)
{
	struct ld L = {e->path, err, false};
	struct evidence *ev = e->evidence;
	struct evidence_pool *p = ev->pool;
	struct activity_event x = {0};
	char path[64];
	const cJSON *op, *st, *claims;

	if (!list_elem(&L, it, "activityLog", i, path, sizeof(path)))
		return false;
	op = obj_of(&L, it, "operationName", path);
	st = obj_of(&L, it, "status", path);
	claims = obj_of(&L, it, "claims", path);
	x.operation = op ? str_of(&L, op, "value", path) : NULL;
	x.status = st ? str_of(&L, st, "value", path) : NULL;
	x.resource_id = str_of(&L, it, "resourceId", path);
	x.caller = str_of(&L, it, "caller", path);
	x.time = str_of(&L, it, "eventTimestamp", path);
	if (claims) {
		x.object_id = str_of(&L, claims, CLAIM_OID, path);
		x.tenant_id = str_of(&L, claims, CLAIM_TID, path);
		x.has_upn = str_of(&L, claims, CLAIM_UPN, path) != NULL || str_of(&L, claims, "upn", path) != NULL;
	}
	if (L.failed)
		return false;
	x.at = evidence_time(x.time);
	x.operation = pool_str(p, x.operation);
	x.status = pool_str(p, x.status);
	x.resource_id = pool_str(p, x.resource_id);
	x.caller = pool_str(p, x.caller);
	x.time = pool_str(p, x.time);
	x.object_id = pool_str(p, x.object_id);
	x.tenant_id = pool_str(p, x.tenant_id);
	ev->events = room_for(ev->events, ev->nevents, &ev->capevents, sizeof(*ev->events));
	ev->events[ev->nevents++] = x;
	return true;
}

/* A successful protection write: when, and where in the Activity Log. */
struct protect {
	long long at;
	size_t ix;
};

/* Earliest first; of equal times, the first listed. */
static int protect_cmp(const void *a, const void *b)
{
	const struct protect *x = a, *y = b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return (x->ix > y->ix) - (x->ix < y->ix);
}

/* enabled_ix: each protected item's earliest successful protection write (enabled_by_facts). */
static void index_protects(struct evidence *ev)
{
	struct protect *w = kv_calloc(ev->nevents + 1, sizeof(*w));
	size_t n = 0;

	for (size_t i = 0; i < ev->nevents; i++) {
		const struct activity_event *x = &ev->events[i];

		if (x->resource_id && kv_streq_ci(x->operation, EVIDENCE_PROTECT_OPERATION) &&
		    kv_streq_ci(x->status, "Succeeded"))
			w[n++] = (struct protect){x->at, i};
	}
	qsort(w, n, sizeof(*w), protect_cmp);
	for (size_t i = 0; i < n; i++)   /* the first put of an ID stays: the earliest */
		idmap_put(&ev->enabled_ix, ev->events[w[i].ix].resource_id, w[i].ix);
	free(w);
}

static void load_principals(struct ld *L, struct evidence *ev, const cJSON *a)
{
	const cJSON *it;
	int i = 0;

	ev->principals = kv_calloc((size_t)cJSON_GetArraySize(a) + 1, sizeof(*ev->principals));
	cJSON_ArrayForEach(it, a) {
		struct principal *p = &ev->principals[ev->nprincipals];
		char path[64];

		snprintf(path, sizeof(path), "$.principals[%d]", i++);
		p->tenant_id = str_of(L, it, "tenantId", path);
		p->id = str_of(L, it, "id", path);
		p->user_type = str_of(L, it, "userType", path);
		p->upn = str_of(L, it, "userPrincipalName", path);
		p->display_name = str_of(L, it, "displayName", path);
		if (L->failed)
			return;
		if (kv_empty(p->id) || kv_empty(p->tenant_id)) {
			kv_err_set(L->err, "%s: %s: a principal needs \"tenantId\" and \"id\"", L->name, path);
			L->failed = true;
			return;
		}
		ev->nprincipals++;
	}
}

/* Hours between scheduled backups of a policy's schedule (AzureIaasVM policies); 0 when not understood. */
static double policy_period(const cJSON *sched, const char *freq)
{
	if (kv_streq_ci(freq, "Daily"))
		return 24;
	if (kv_streq_ci(freq, "Weekly"))
		return 24 * 7;
	if (kv_streq_ci(freq, "Hourly")) {
		const cJSON *iv = fastjson_get(fastjson_get(sched, "hourlySchedule"),
		                                                  "interval");

		return cJSON_IsNumber(iv) && iv->valuedouble > 0 ? iv->valuedouble : 0;
	}
	return 0;
}

static void load_policies(struct ld *L, struct evidence *ev, const cJSON *a)
{
	const cJSON *it;
	int i = 0;

	ev->policies = kv_calloc((size_t)cJSON_GetArraySize(a) + 1, sizeof(*ev->policies));
	cJSON_ArrayForEach(it, a) {
		struct backup_policy *p = &ev->policies[ev->npolicies];
		char path[64], ppath[96], spath[128];
		const cJSON *props, *sched;

		snprintf(path, sizeof(path), "$.backupPolicies[%d]", i++);
		snprintf(ppath, sizeof(ppath), "%s.properties", path);
		snprintf(spath, sizeof(spath), "%s.schedulePolicy", ppath);
		p->id = str_of(L, it, "id", path);
		p->name = str_of(L, it, "name", path);
		props = obj_of(L, it, "properties", path);
		sched = props ? obj_of(L, props, "schedulePolicy", ppath) : NULL;
		p->frequency = sched ? str_of(L, sched, "scheduleRunFrequency", spath) : NULL;
		if (L->failed)
			return;
		if (kv_empty(p->id)) {
			kv_err_set(L->err, "%s: $.backupPolicies[%d]: a policy needs \"id\"", L->name, i - 1);
			L->failed = true;
			return;
		}
		p->period_hours = policy_period(sched, p->frequency);
		ev->npolicies++;
	}
	for (size_t k = ev->npolicies; k-- > 0;)   /* the first put of an ID stays: the last listed */
		idmap_put(&ev->policy_ix, ev->policies[k].id, k);
}

/* Jobs by VM name (case-insensitive; unnamed first), so that a VM's jobs are found by bisection. */
static int job_cmp(const void *a, const void *b)
{
	const char *x = ((const struct backup_job *)a)->vm_name, *y = ((const struct backup_job *)b)->vm_name;

	return !x || !y ? (x != NULL) - (y != NULL) : strcasecmp(x, y);
}

bool evidence_begin(struct estate *e, struct kv_err *err)
{
	struct ld L = {e->path, err, false};
	struct evidence *ev = kv_calloc(1, sizeof(*ev));

	e->evidence = ev;
	ev->pool = kv_calloc(1, sizeof(*ev->pool));
	ev->jobs_since = str_of(&L, e->doc, "backupJobsSince", "$");
	return !L.failed;
}

bool evidence_load(struct estate *e, const char *name, struct kv_err *err)
{
	struct ld L = {name, err, false};
	struct evidence *ev = e->evidence;
	const cJSON *a;

	/* The jobs stay till the end: give back what doubling reserved (a mapping's tail, for 300k jobs). */
	if (ev->njobs && ev->njobs < ev->capjobs) {
		ev->jobs = kv_realloc(ev->jobs, ev->njobs * sizeof(*ev->jobs));
		ev->capjobs = ev->njobs;
	}
	if (ev->njobs > 1)
		qsort(ev->jobs, ev->njobs, sizeof(*ev->jobs), job_cmp);
	index_protects(ev);
	if ((a = list_of(&L, e->doc, "principals", &e->present.principals)))
		load_principals(&L, ev, a);
	if (!L.failed && (a = list_of(&L, e->doc, "backupPolicies", &e->present.backup_policies)))
		load_policies(&L, ev, a);
	return !L.failed;
}

void evidence_free(struct evidence *ev)
{
	if (!ev)
		return;
	free(ev->jobs);
	free(ev->events);
	free(ev->principals);
	free(ev->policies);
	idmap_release(&ev->enabled_ix);
	idmap_release(&ev->policy_ix);
	idmap_release(&ev->error_ix);
	pool_free(ev->pool);
	free(ev);
}

static int digits(const char *s, int n)
{
	int v = 0;

	while (n-- > 0)
		v = v * 10 + (*s++ - '0');
	return v;
}

/* "YYYY-MM-DDThh:mm:ss", digits where digits go. */
static bool plain_time(const char *s)
{
	static const char SHAPE[] = "0000-00-00T00:00:00";

	for (size_t i = 0; i < sizeof(SHAPE) - 1; i++)
		if (SHAPE[i] == '0' ? !isdigit((unsigned char)s[i]) : s[i] != SHAPE[i])
			return false;
	return true;
}

long long evidence_time(const char *s)
{
	int y, mo, d, h, mi, sec, n = 0;
	long long t;
	const char *p;

	if (!s)
		return 0;
	if (plain_time(s)) {   /* what sscanf below reads of it, without sscanf's cost (a time per job) */
		y = digits(s, 4);
		mo = digits(s + 5, 2);
		d = digits(s + 8, 2);
		h = digits(s + 11, 2);
		mi = digits(s + 14, 2);
		sec = digits(s + 17, 2);
	} else if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19) {
		return 0;
	}
	if (y < 1971 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return 0;
	t = kv_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
	p = s + 19;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			;
	if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1])) {
		int oh = 0, om = 0;

		if (sscanf(p + 1, "%2d:%2d", &oh, &om) == 2)
			t -= (*p == '+' ? 1 : -1) * (oh * 3600LL + om * 60);
	}
	return t;
}

/* ---- job errors ---- */

static const char *const KV_PERMISSION_CODES[] = {
	"UserErrorKeyVaultPermissionsNotConfigured", "UserErrorKeyvaultPermissionsNotConfigured",
	"UserErrorKeyvaultPermissionNotConfigured", NULL};
static const char *const DISK_EX_CODES[] = {"UserErrorEncryptedVmNotSupportedWithDiskEx", NULL};
static const char *const NO_NETWORK_CODES[] = {"ExtensionSnapshotFailedNoNetwork", NULL};

/* Microsoft's documented messages (backup-azure-encrypted-vm-troubleshoot.md), lower case. */
static const char *const KV_PERMISSION_TEXT[] = {"sufficient permissions to the key vault", NULL};
static const char *const DISK_EX_TEXT[] = {"disk exclusion is not supported for encrypted virtual machines", NULL};
static const char *const NO_NETWORK_TEXT[] = {"failed due to no network connectivity on the virtual machine", NULL};

static const struct {
	const char *const *codes, *const *texts;
} KINDS[JOB_ERR_COUNT] = {
	{KV_PERMISSION_CODES, KV_PERMISSION_TEXT},
	{DISK_EX_CODES, DISK_EX_TEXT},
	{NO_NETWORK_CODES, NO_NETWORK_TEXT},
};

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* The needles in lower case, made once: kinds_low[kind][0] of KINDS[kind].codes, [1] of its texts. */
#define KIND_NEEDLES_MAX 8
static char *kinds_low[JOB_ERR_COUNT][2][KIND_NEEDLES_MAX];
static pthread_once_t kinds_once = PTHREAD_ONCE_INIT;

static char *lower_copy(char *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (char)lower((unsigned char)s[i]);
	out[n] = '\0';
	return out;
}

static void kinds_lower(void)
{
	for (size_t k = 0; k < JOB_ERR_COUNT; k++)
		for (size_t w = 0; w < 2; w++) {
			const char *const *list = w ? KINDS[k].texts : KINDS[k].codes;

			for (size_t c = 0; list[c]; c++) {
				if (c == KIND_NEEDLES_MAX)
					abort();   /* a table above grew: raise KIND_NEEDLES_MAX */
				kinds_low[k][w][c] = lower_copy(kv_malloc(strlen(list[c]) + 1), list[c], strlen(list[c]));
			}
		}
}

/* Sets t->s[j] and t->len[j] of string value v; the length it needs in buf. */
static size_t job_text_set(struct job_text *t, size_t j, const char *v)
{
	t->s[j] = v;
	t->len[j] = v ? strlen(v) : 0;
	return v ? t->len[j] + 1 : 0;
}

static void job_texts_init(struct job_texts *t, const cJSON *details, const char *dyn)
{
	static const char *const FIELDS[] = {"errorCode", "errorTitle", "errorString"};
	const cJSON *d;
	size_t k = 0, need, at = 0;

	pthread_once(&kinds_once, kinds_lower);
	t->n = (size_t)cJSON_GetArraySize(details);
	t->d = t->n ? kv_calloc(t->n, sizeof(*t->d)) : NULL;
	memset(&t->dyn, 0, sizeof(t->dyn));
	need = job_text_set(&t->dyn, 0, dyn);
	cJSON_ArrayForEach(d, details) {
		const cJSON *f[3];

		fastjson_fields(d, FIELDS, f, 3);
		for (size_t j = 0; j < 3; j++)
			need += job_text_set(&t->d[k], j, cJSON_GetStringValue(f[j]));
		t->d[k++].num = f[0];
	}
	t->buf = need ? kv_malloc(need) : NULL;
	for (k = 0; k <= t->n; k++) {
		struct job_text *x = k < t->n ? &t->d[k] : &t->dyn;

		for (size_t j = 0; j < 3; j++)
			if (x->s[j]) {
				x->low[j] = lower_copy(t->buf + at, x->s[j], x->len[j]);
				at += x->len[j] + 1;
			}
	}
}

static void job_texts_free(struct job_texts *t)
{
	free(t->d);
	free(t->buf);
}

/* Where needle (nl: in lower case) is in string j of x, case-insensitively; NULL when not there. */
static const char *find_low(const struct job_text *x, size_t j, const char *nl)
{
	size_t n = strlen(nl);
	const char *p = x->low[j], *end = p ? p + x->len[j] : NULL;

	if (!p)
		return NULL;
	for (; (size_t)(end - p) >= n && (p = memchr(p, nl[0], (size_t)(end - p) - n + 1)) != NULL; p++)
		if (memcmp(p, nl, n) == 0)
			return x->s[j] + (p - x->low[j]);
	return NULL;
}

/* snprintf(code, ncode, "%.*s", n, s) for n bytes that hold no NUL. */
static void put_code(char *code, size_t ncode, const char *s, size_t n)
{
	if (!ncode)
		return;
	if (n >= ncode)
		n = ncode - 1;
	memcpy(code, s, n);
	code[n] = '\0';
}

/* evidence_job_error of a job's error strings t. */
static bool job_error_of(const struct job_texts *t, enum job_error kind, char *code, size_t ncode, const char **text)
{
	for (size_t k = 0; k < t->n; k++) {
		const struct job_text *d = &t->d[k];
		const char *es = d->s[2];

		for (size_t c = 0; KINDS[kind].codes[c]; c++)
			for (size_t f = 0; f < 3; f++) {
				const char *at = find_low(d, f, kinds_low[kind][0][c]);

				if (at) {
					put_code(code, ncode, at, strlen(KINDS[kind].codes[c]));
					*text = es ? es : t->dyn.s[0] ? t->dyn.s[0] : d->s[f];
					return true;
				}
			}
		for (size_t x = 0; es && KINDS[kind].texts[x]; x++)
			if (find_low(d, 2, kinds_low[kind][1][x])) {
				/* The spec types errorCode as an integer: keep it when that is what Azure sent. */
				if (cJSON_IsNumber(d->num))
					snprintf(code, ncode, "%s (%d)", KINDS[kind].codes[0], d->num->valueint);
				else
					put_code(code, ncode, KINDS[kind].codes[0], strlen(KINDS[kind].codes[0]));
				*text = es;
				return true;
			}
	}
	for (size_t c = 0; t->dyn.s[0] && KINDS[kind].codes[c]; c++) {
		const char *at = find_low(&t->dyn, 0, kinds_low[kind][0][c]);

		if (at) {
			put_code(code, ncode, at, strlen(KINDS[kind].codes[c]));
			*text = t->dyn.s[0];
			return true;
		}
	}
	return false;
}

bool evidence_job_error(const cJSON *job, enum job_error kind, char *code, size_t ncode, const char **text)
{
	const cJSON *props = fastjson_get(job, "properties");
	struct job_texts t;
	bool r;

	job_texts_init(&t, fastjson_get(props, "errorDetails"),
	               cJSON_GetStringValue(fastjson_get(fastjson_get(props, "extendedInfo"), "dynamicErrorMessage")));
	r = job_error_of(&t, kind, code, ncode, text);
	job_texts_free(&t);
	return r;
}

/* ---- facts ---- */

static void add_str(cJSON *o, const char *k, const char *v)
{
	cJSON_AddItemToObject(o, k, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/* The error that explains why a list below a resource ("{rsv}/backupJobs") could not be read. */
static const struct estate_error *find_list_error(const struct estate *e, const char *parent, const char *list)
{
	size_t lp = strlen(parent), ll = strlen(list);

	for (size_t i = 0; i < e->nerrors; i++) {
		const char *s = e->errors[i].scope;

		if (s && strlen(s) >= lp + 1 + ll && kv_startswith_ci(s, parent) && s[lp] == '/' &&
		    kv_startswith_ci(s + lp + 1, list) && strchr("/?", s[lp + 1 + ll]))
			return &e->errors[i];
	}
	return estate_error_for(e, parent);
}

/*
 * find_list_error, asked once per parent and list: every VM of a vault or
 * subscription asks the same (both compared without case, as there).
 * The audit judges subjects on two threads (audit.c): the cache is theirs
 * in turn.  Only an estate with read errors gets here.
 */
static pthread_mutex_t list_error_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct estate_error *list_error_cached(const struct estate *e, struct idmap *cache, const char *key,
                                                    const char *parent, const char *list)
{
	const struct estate_error *err;
	size_t v;

	if (idmap_get(cache, key, &v))
		return v ? &e->errors[v - 1] : NULL;
	err = find_list_error(e, parent, list);
	idmap_put(cache, key, err ? (size_t)(err - e->errors) + 1 : 0);
	return err;
}

static const struct estate_error *list_error(const struct estate *e, const char *parent, const char *list)
{
	struct idmap *cache = e->evidence ? &e->evidence->error_ix : NULL;
	const struct estate_error *err;
	char key[1024];

	if (e->nerrors == 0)
		return NULL;
	if (!cache)
		return find_list_error(e, parent, list);
	/* '\1' ends each part: idmap would take a '/' at the end of the key for none. */
	if ((size_t)snprintf(key, sizeof(key), "%s\1%s\1", parent, list) >= sizeof(key))
		return find_list_error(e, parent, list);
	pthread_mutex_lock(&list_error_lock);
	err = list_error_cached(e, cache, key, parent, list);
	pthread_mutex_unlock(&list_error_lock);
	return err;
}

static const char *const KIND_KEYS[JOB_ERR_COUNT] = {"keyVaultPermission", "diskExclusion", "noNetwork"};

struct job_hit {
	int count;
	const struct backup_job_detail *job;
};

static void null_kind(cJSON *jobs, size_t k)
{
	cJSON *o = cJSON_AddObjectToObject(jobs, KIND_KEYS[k]);

	cJSON_AddNullToObject(o, "count");
	cJSON_AddNullToObject(o, "jobId");
	cJSON_AddNullToObject(o, "time");
	cJSON_AddNullToObject(o, "errorCode");
	cJSON_AddNullToObject(o, "errorText");
}

/* Whether the job is one of the Recovery Services vault rsv_id (armid_eq of its vault prefix and rsv_id). */
static bool job_in_rsv(const struct backup_job *j, const char *rsv_id)
{
	size_t la = j->rsv_len, lb = rsv_id ? strlen(rsv_id) : 0;

	if (!rsv_id)
		return false;
	if (la > 1 && j->rsv[la - 1] == '/')
		la--;
	if (lb > 1 && rsv_id[lb - 1] == '/')
		lb--;
	return la == lb && (la == 0 || strncasecmp(j->rsv, rsv_id, la) == 0);
}

/* The first of the VM's jobs: they are adjacent (sorted by name at load), so bisect rather than scan. */
static size_t first_job_of(const struct evidence *ev, const char *vm_name)
{
	size_t lo = 0, hi = ev->njobs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ev->jobs[mid].vm_name && strcasecmp(ev->jobs[mid].vm_name, vm_name) >= 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* vm.backup.jobs; returns the start of the newest job that failed with the permission error (0: none). */
static long long jobs_facts(const struct estate *e, const char *vm_name, const struct protected_item *item,
                            cJSON *bk, cJSON *un)
{
	const struct evidence *ev = e->evidence;
	cJSON *jobs = cJSON_AddObjectToObject(bk, "jobs");
	struct job_hit hits[JOB_ERR_COUNT];
	const struct estate_error *err = NULL;
	int count = 0, failed = 0;

	add_str(jobs, "since", ev ? ev->jobs_since : NULL);
	if (!item || !e->present.backup_jobs || (err = list_error(e, item->rsv_id, "backupJobs"))) {
		cJSON_AddNullToObject(jobs, "count");
		cJSON_AddNullToObject(jobs, "failed");
		for (size_t k = 0; k < JOB_ERR_COUNT; k++)
			null_kind(jobs, k);
		if (item && !e->present.backup_jobs)
			facts_unavailable(un, "vm.backup.jobs", "skipped", "Azure Backup jobs were not collected");
		else if (item)
			facts_unavailable(un, "vm.backup.jobs", "error",
			     "the backup jobs of Recovery Services vault '%s' could not be read: %d %s: %s", item->rsv_id,
			     err->status, err->code ? err->code : "error", err->message ? err->message : "no message");
		return 0;
	}
	memset(hits, 0, sizeof(hits));
	for (size_t i = first_job_of(ev, vm_name); i < ev->njobs && kv_streq_ci(ev->jobs[i].vm_name, vm_name); i++) {
		const struct backup_job *j = &ev->jobs[i];

		if (!job_in_rsv(j, item->rsv_id))
			continue;
		count++;
		if (j->failed)
			failed++;
		for (size_t k = 0; k < JOB_ERR_COUNT && j->detail; k++) {
			const struct backup_job_detail *d = j->detail, *best = hits[k].job;

			if (!d->code[k])
				continue;
			hits[k].count++;
			/* The newest one is the evidence; the ID breaks ties so the choice is stable. */
			if (!best || d->start > best->start ||
			    (d->start == best->start && strcmp(d->id ? d->id : "", best->id ? best->id : "") > 0))
				hits[k].job = d;
		}
	}
	cJSON_AddNumberToObject(jobs, "count", count);
	cJSON_AddNumberToObject(jobs, "failed", failed);
	for (size_t k = 0; k < JOB_ERR_COUNT; k++) {
		cJSON *o = cJSON_AddObjectToObject(jobs, KIND_KEYS[k]);

		cJSON_AddNumberToObject(o, "count", hits[k].count);
		add_str(o, "jobId", hits[k].job ? hits[k].job->id : NULL);
		add_str(o, "time", hits[k].job ? hits[k].job->start_time : NULL);
		add_str(o, "errorCode", hits[k].job ? hits[k].job->code[k] : NULL);
		add_str(o, "errorText", hits[k].job ? hits[k].job->text[k] : NULL);
	}
	return hits[JOB_ERR_KV_PERMISSION].job ? hits[JOB_ERR_KV_PERMISSION].job->start : 0;
}

/* The tenant of the subscription an ARM ID is in, or NULL. */
static const char *tenant_of(const struct estate *e, const char *id)
{
	char sub[64];
	const struct subscription *s;

	if (!armid_segment(id, "subscriptions", sub, sizeof(sub)) || !(s = estate_subscription(e, sub)))
		return NULL;
	return kv_empty(s->tenant_id) ? NULL : s->tenant_id;
}

/* vm.backup.enabledBy: the earliest successful protection write of the item in the Activity Log. */
static void enabled_by_facts(const struct estate *e, const struct protected_item *item, cJSON *bk, cJSON *un)
{
	const struct evidence *ev = e->evidence;
	cJSON *eb = cJSON_AddObjectToObject(bk, "enabledBy");
	const struct activity_event *first = NULL;
	const struct estate_error *err = NULL;
	const char *tid, *ut = NULL;
	char sub[64] = "", scope[200];
	size_t ix;

	if (item)
		armid_segment(item->rsv_id, "subscriptions", sub, sizeof(sub));
	snprintf(scope, sizeof(scope), "/subscriptions/%s/providers", sub);
	if (item && e->present.activity_log && !(err = list_error(e, scope, "Microsoft.Insights/eventtypes")) && ev &&
	    item->id && idmap_get(&ev->enabled_ix, item->id, &ix))
		first = &ev->events[ix];
	add_str(eb, "name", first ? first->caller : NULL);
	add_str(eb, "objectId", first ? first->object_id : NULL);
	add_str(eb, "time", first ? first->time : NULL);
	if (item && !e->present.activity_log)
		facts_unavailable(un, "vm.backup.enabledBy", "skipped", "the Activity Log was not collected");
	else if (item && err)
		facts_unavailable(un, "vm.backup.enabledBy", "error", "the Activity Log of subscription %s could not be read: %d %s: %s",
		     sub, err->status, err->code ? err->code : "error", err->message ? err->message : "no message");
	if (!first) {
		cJSON_AddNullToObject(eb, "userType");
		return;
	}
	tid = tenant_of(e, item->rsv_id);
	if (!tid)
		tid = first->tenant_id;
	for (size_t i = 0; ev && i < ev->nprincipals; i++)
		if (kv_streq_ci(ev->principals[i].tenant_id, tid) && kv_streq_ci(ev->principals[i].id, first->object_id))
			ut = ev->principals[i].user_type;
	/* An app or managed identity signs in without a user principal name: no Graph user to look up. */
	if (!ut && !first->has_upn && first->object_id)
		ut = "ServicePrincipal";
	add_str(eb, "userType", ut);
	if (!ut) {
		char gscope[160];
		const struct estate_error *gerr = NULL;

		snprintf(gscope, sizeof(gscope), "graph:/v1.0/users/%s", first->object_id ? first->object_id : "");
		for (size_t i = 0; i < e->nerrors; i++)
			if (e->errors[i].scope && kv_startswith_ci(e->errors[i].scope, gscope))
				gerr = &e->errors[i];
		if (gerr)
			facts_unavailable(un, "vm.backup.enabledBy.userType", "error",
			     "whether %s is a Member or a Guest of tenant %s could not be read: %d %s: %s", first->caller,
			     tid ? tid : "?", gerr->status, gerr->code ? gerr->code : "error",
			     gerr->message ? gerr->message : "no message");
		else
			facts_unavailable(un, "vm.backup.enabledBy.userType", "skipped",
			     "%s (object %s) is not among the snapshot's principals of tenant %s", first->caller,
			     first->object_id ? first->object_id : "?", tid ? tid : "?");
	}
}

/* vm.backup.lastBackupTime, lastBackupAgeHours, policy, overdue. */
static void schedule_facts(const struct estate *e, const struct protected_item *item, cJSON *bk, cJSON *un)
{
	const struct evidence *ev = e->evidence;
	cJSON *pol;
	const struct backup_policy *p = NULL;
	long long now = evidence_time(e->collected_at), last;
	double age = -1;
	size_t ix;

	if (!now)
		now = (long long)time(NULL);
	last = item ? evidence_time(item->last_backup_time) : 0;
	add_str(bk, "lastBackupTime", item ? item->last_backup_time : NULL);
	if (last) {
		long long tenths = (now - last) / 360;   /* hours, one decimal, rounded down */

		age = (double)tenths / 10.0;
		cJSON_AddNumberToObject(bk, "lastBackupAgeHours", age);
	} else {
		cJSON_AddNullToObject(bk, "lastBackupAgeHours");
	}
	if (item && ev && item->policy_id && idmap_get(&ev->policy_ix, item->policy_id, &ix))
		p = &ev->policies[ix];
	pol = cJSON_AddObjectToObject(bk, "policy");
	add_str(pol, "name", p ? p->name : NULL);
	add_str(pol, "frequency", p ? p->frequency : NULL);
	/* Two periods: one scheduled backup may be missed or still running before the item is overdue. */
	if (p && p->period_hours > 0)
		cJSON_AddNumberToObject(pol, "maxAgeHours", 2 * p->period_hours);
	else
		cJSON_AddNullToObject(pol, "maxAgeHours");
	if (p && p->period_hours > 0)
		cJSON_AddBoolToObject(bk, "overdue", !last || age > 2 * p->period_hours);
	else
		cJSON_AddNullToObject(bk, "overdue");
	if (!item || (p && p->period_hours > 0))
		return;
	if (!e->present.backup_policies) {
		facts_unavailable(un, "vm.backup.policy", "skipped", "backup policies were not collected");
		facts_unavailable(un, "vm.backup.overdue", "skipped", "backup policies were not collected");
	} else if (p) {
		facts_unavailable(un, "vm.backup.policy.maxAgeHours", "error", "the schedule of backup policy '%s' is not understood "
		     "(scheduleRunFrequency %s)", p->id, p->frequency ? p->frequency : "absent");
		facts_unavailable(un, "vm.backup.overdue", "error", "the schedule of backup policy '%s' is not understood", p->id);
	} else {
		const struct estate_error *err = list_error(e, item->rsv_id, "backupPolicies");

		if (err) {
			facts_unavailable(un, "vm.backup.policy", "error", "the backup policies of Recovery Services vault '%s' could not "
			     "be read: %d %s: %s", item->rsv_id, err->status, err->code ? err->code : "error",
			     err->message ? err->message : "no message");
			facts_unavailable(un, "vm.backup.overdue", "error", "the backup policies of Recovery Services vault '%s' could not "
			     "be read", item->rsv_id);
		} else {
			facts_unavailable(un, "vm.backup.policy", item->policy_id ? "error" : "skipped",
			     "backup policy '%s' of the protected item is not in the snapshot",
			     item->policy_id ? item->policy_id : "(none)");
			facts_unavailable(un, "vm.backup.overdue", item->policy_id ? "error" : "skipped",
			     "backup policy '%s' of the protected item is not in the snapshot",
			     item->policy_id ? item->policy_id : "(none)");
		}
	}
}

/*
 * Whether a grant to Backup Management Service on one of the VM's vaults
 * changed after t: the vault's systemData.lastModifiedAt (access policies
 * carry no time of their own) or a role assignment's updatedOn/createdOn.
 * 1 yes, 0 no, -1 no time to tell.
 */
static int changed_after(const struct estate *e, const struct evidence_access *acc, long long t)
{
	int r = -1;
	const cJSON *id;

	cJSON_ArrayForEach(id, acc->vault_ids) {
		const struct vault *v = estate_vault(e, id->valuestring);
		long long m;

		if (!v)
			continue;
		if (!v->rbac) {
			m = evidence_time(cJSON_GetStringValue(fastjson_get(
				fastjson_get(v->raw, "systemData"), "lastModifiedAt")));
			if (m)
				r = m > t ? 1 : r < 0 ? 0 : r;
			continue;
		}
		for (size_t i = 0; acc->bms_object_id && i < e->nras; i++) {
			const cJSON *p;

			/* The raw assignment only for Backup's own: reading every one costs a cache miss each. */
			if (!kv_streq_ci(e->ras[i].principal_id, acc->bms_object_id) ||
			    !armid_scope_contains(e->ras[i].scope, v->id))
				continue;
			p = fastjson_get(e->ras[i].raw, "properties");
			m = evidence_time(cJSON_GetStringValue(fastjson_get(p, "updatedOn")));
			if (!m)
				m = evidence_time(cJSON_GetStringValue(fastjson_get(p, "createdOn")));
			if (m)
				r = m > t ? 1 : r < 0 ? 0 : r;
		}
	}
	return r;
}

void evidence_vm_facts(const struct estate *e, const struct vm *vm, const struct protected_item *item, cJSON *bk,
                       cJSON *un, const struct evidence_access *acc)
{
	char name[256];
	const char *vm_name = vm->name ? vm->name : armid_name(vm->id, name, sizeof(name)) ? name : vm->id;
	long long kv_fail = jobs_facts(e, vm_name, item, bk, un);
	cJSON *ka;
	int ch;

	schedule_facts(e, item, bk, un);
	enabled_by_facts(e, item, bk, un);
	ka = cJSON_AddObjectToObject(bk, "keyVaultAccess");
	/* Only an ADE VM needs key vault access: for the others it does not apply (null). */
	if (acc && acc->state >= 0 && vm->ade.encrypted)
		cJSON_AddBoolToObject(ka, "complete", acc->state == 1);
	else
		cJSON_AddNullToObject(ka, "complete");
	cJSON_AddItemToObject(ka, "vaults", acc && acc->vaults ? cJSON_Duplicate(acc->vaults, true) : cJSON_CreateArray());
	cJSON_AddItemToObject(ka, "missingVaults",
	                      acc && acc->missing ? cJSON_Duplicate(acc->missing, true) : cJSON_CreateArray());
	ch = acc && kv_fail ? changed_after(e, acc, kv_fail) : -1;
	if (ch >= 0)
		cJSON_AddBoolToObject(ka, "changedAfterFailure", ch == 1);
	else
		cJSON_AddNullToObject(ka, "changedAfterFailure");
	if (acc && acc->state < 0 && vm->ade.encrypted)
		facts_unavailable(un, "vm.backup.keyVaultAccess.complete", acc->status ? acc->status : "error", "%s", acc->reason);
}
