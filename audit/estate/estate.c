/*
 * estate.c - loads a kvaudit.estate v1 snapshot into the typed model of
 * estate.h, validating every field it uses.  Unknown fields are ignored;
 * a field of the wrong type is an error naming its JSON path, because a
 * half-understood snapshot must never produce a report that looks clean.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stddef.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/stat.h>

#include "audit/estate/ade.h"
#include "audit/estate/estate.h"
#include "audit/estate/evidence.h"
#include "audit/util/armid.h"
#include "audit/util/fastjson.h"
#include "audit/util/json.h"

/* A snapshot larger than this is refused (50k VMs is a few hundred MB). */
#define ESTATE_MAX_BYTES ((size_t)2 << 30)

struct loader {
	const char *name;
	struct kv_err *err;
	bool failed;
	struct estate *e;
	bool copy;           /* a lean load frees the element after loading it: copy its strings */
	struct lean_side *side;   /* where a lean load copies them: this thread's (struct estate_mem) */
};

static const char *pool_str(struct lean_side *side, const char *s);

/* A copy of snapshot text safe for a one-line message: controls become '?', long text is cut. */
static const char *printable(const char *s, char *out, size_t n)
{
	size_t j = 0;

	for (; s && *s && j + 4 < n; s++)
		out[j++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	if (s && *s && j + 3 < n) {
		memcpy(out + j, "...", 3);
		j += 3;
	}
	out[j] = '\0';
	return out;
}

static void fail(struct loader *L, const char *path, const char *what, const cJSON *got)
{
	if (L->failed)
		return;
	L->failed = true;
	if (got)
		kv_err_set(L->err, "%s: %s: expected %s, got %s", L->name, path, what, json_type_name(got));
	else
		kv_err_set(L->err, "%s: %s: %s", L->name, path, what);
}

/* "path.key" for a message; a path too long for out ends in "..." rather than silently cut. */
static const char *child_path(char *out, size_t n, const char *path, const char *key)
{
	int w = snprintf(out, n, "%s.%s", path, key);

	if ((w < 0 || (size_t)w >= n) && n >= 4)
		memcpy(out + n - 4, "...", 4);
	return out;
}

/*
 * snprintf(out, n, "%s%s", a, b) (n > 0), without snprintf's cost: a
 * loader writes the paths of its messages for every element it reads.
 */
static char *path_cat(char *out, size_t n, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > n - 1)
		la = n - 1;
	if (lb > n - 1 - la)
		lb = n - 1 - la;
	memmove(out, a, la);
	memcpy(out + la, b, lb);
	out[la + lb] = '\0';
	return out;
}

/* Child key of obj, checked to be a string (absent and null give NULL). */
static const char *str_at(struct loader *L, const cJSON *obj, const char *key, const char *path)
{
	const cJSON *j = fastjson_get(obj, key);

	if (!j || cJSON_IsNull(j))
		return NULL;
	if (!cJSON_IsString(j)) {
		char p[512];

		child_path(p, sizeof(p), path, key);
		fail(L, p, "a string", j);
		return NULL;
	}
	return L->copy ? pool_str(L->side, j->valuestring) : j->valuestring;
}

/*
 * str_at for a VM's ID as another resource names it (a disk's managedBy, a
 * protected item's virtualMachineId): the VM's own string when the two are
 * byte for byte the same, so a lean load keeps one copy of it, not three.
 */
static const char *vm_ref_at(struct loader *L, const cJSON *obj, const char *key, const char *path)
{
	const cJSON *j = fastjson_get(obj, key);
	size_t ix;

	if (L->copy && cJSON_IsString(j) && idmap_get(&L->e->vm_ix, j->valuestring, &ix) &&
	    strcmp(L->e->vms[ix].id, j->valuestring) == 0)
		return L->e->vms[ix].id;
	return str_at(L, obj, key, path);
}

static const char *req_str(struct loader *L, const cJSON *obj, const char *key, const char *path)
{
	const char *s = str_at(L, obj, key, path);

	if (!s && !L->failed) {
		char p[512];

		child_path(p, sizeof(p), path, key);
		fail(L, p, "required string is missing", NULL);
	}
	return s;
}

/* A boolean that may be absent or null (def); a string "true"/"false" is accepted (IMDS style). */
static bool bool_at(struct loader *L, const cJSON *obj, const char *key, const char *path, bool def)
{
	const cJSON *j = fastjson_get(obj, key);

	if (!j || cJSON_IsNull(j))
		return def;
	if (cJSON_IsBool(j))
		return cJSON_IsTrue(j);
	if (cJSON_IsString(j) && (kv_streq_ci(j->valuestring, "true") || kv_streq_ci(j->valuestring, "false")))
		return kv_streq_ci(j->valuestring, "true");
	{
		char p[512];

		child_path(p, sizeof(p), path, key);
		fail(L, p, "a boolean", j);
	}
	return def;
}

/* An object child that may be absent or null. */
static const cJSON *obj_at(struct loader *L, const cJSON *obj, const char *key, const char *path)
{
	const cJSON *j = fastjson_get(obj, key);

	if (!j || cJSON_IsNull(j))
		return NULL;
	if (!cJSON_IsObject(j)) {
		char p[512];

		child_path(p, sizeof(p), path, key);
		fail(L, p, "an object", j);
		return NULL;
	}
	return j;
}

static const cJSON *arr_at(struct loader *L, const cJSON *obj, const char *key, const char *path)
{
	const cJSON *j = fastjson_get(obj, key);

	if (!j || cJSON_IsNull(j))
		return NULL;
	if (!cJSON_IsArray(j)) {
		char p[512];

		child_path(p, sizeof(p), path, key);
		fail(L, p, "an array", j);
		return NULL;
	}
	return j;
}

/* An array of strings (permission lists, data actions); non-strings are errors. */
static cJSON *str_arr_at(struct loader *L, const cJSON *obj, const char *key, const char *path)
{
	const cJSON *a = arr_at(L, obj, key, path);
	const cJSON *it;
	int i = 0;

	if (!a)
		return NULL;
	cJSON_ArrayForEach(it, a) {
		if (!cJSON_IsString(it)) {
			char p[512];

			snprintf(p, sizeof(p), "%s.%s[%d]", path, key, i);
			fail(L, p, "a string", it);
			return NULL;
		}
		i++;
	}
	return (cJSON *)(uintptr_t)a;
}

/* snprintf(path, n, "$.%s[%d]", list, i), written by hand: once per element of every list. */
static char *elem_path(char *path, size_t n, const char *list, int i)
{
	char num[16];
	size_t k = sizeof(num);

	num[--k] = '\0';
	num[--k] = ']';
	for (unsigned v = (unsigned)i; k == sizeof(num) - 2 || v; v /= 10)
		num[--k] = (char)('0' + v % 10);
	num[--k] = '[';
	path_cat(path, n, "$.", list);
	path_cat(path + strlen(path), n - strlen(path), num + k, "");
	return path;
}

/* Validates that item i of a top-level list is an object; returns it or NULL. */
static cJSON *list_item(struct loader *L, cJSON *it, const char *list, int i, char *path, size_t n)
{
	elem_path(path, n, list, i);
	if (!cJSON_IsObject(it)) {
		fail(L, path, "an object", it);
		return NULL;
	}
	return it;
}

static void copy_segment(const char *id, const char *key, char *out, size_t n)
{
	if (!armid_segment(id, key, out, n))
		out[0] = '\0';
}

const char *vm_os_name(enum vm_os os)
{
	return os == OS_WINDOWS ? "Windows" : os == OS_LINUX ? "Linux" : "Unknown";
}

const char *user_type_name(enum user_type t)
{
	switch (t) {
	case USER_MEMBER: return "Member";
	case USER_GUEST: return "Guest";
	case USER_SERVICE_PRINCIPAL: return "ServicePrincipal";
	default: return "Unknown";
	}
}

const char *sp_status_name(enum sp_status s)
{
	return s == SP_FOUND ? "found" : s == SP_ABSENT ? "absent" : "unknown";
}

static enum vm_os parse_os(const char *s)
{
	if (kv_streq_ci(s, "Windows"))
		return OS_WINDOWS;
	if (kv_streq_ci(s, "Linux"))
		return OS_LINUX;
	return OS_UNKNOWN;
}

/* The instance view's osName is a product name ("Windows Server 2016 Datacenter", "ubuntu"). */
static enum vm_os os_from_name(const char *s)
{
	if (kv_empty(s))
		return OS_UNKNOWN;
	return kv_startswith_ci(s, "Windows") ? OS_WINDOWS : OS_LINUX;
}

static enum user_type parse_user_type(const char *s)
{
	if (kv_streq_ci(s, "Member"))
		return USER_MEMBER;
	if (kv_streq_ci(s, "Guest"))
		return USER_GUEST;
	if (kv_streq_ci(s, "ServicePrincipal") || kv_streq_ci(s, "managedIdentity"))
		return USER_SERVICE_PRINCIPAL;
	return USER_UNKNOWN;
}

/* Everything from the top-level list `key`, or NULL with present=false when absent. */
static const cJSON *top_list(struct loader *L, const cJSON *doc, const char *key, bool *present)
{
	const cJSON *a = arr_at(L, doc, key, "$");

	*present = a != NULL;
	return a;
}

/*
 * ---- A lean load: the big lists element by element ----
 *
 * A snapshot of 50k VMs is ~600 MB of JSON, and one cJSON tree of it ~3 GB
 * (a 64-byte node per value, a malloc per key and string).  A lean load
 * (estate_opts.lean) never builds that tree: a scanner finds the top-level
 * members and where each element of the big lists (STREAMED) starts and
 * ends; every other member is parsed on its own into e->doc, so loaders of
 * small lists (top_list on e->doc) work unchanged; each element of a big
 * list is parsed on its own (fastjson, into a scratch arena), loaded (its
 * strings copied into the estate's pool) and freed.  Each element is parsed
 * once: ADE detection of a VM runs while its element is parsed (lean_ade),
 * which is why a lean load reads vaults and disks before VMs.
 *
 * The scanner only finds boundaries; fastjson still reads every byte, since
 * each member and each element must parse and end exactly where the scanner
 * said.  Anything the scanner does not expect (a BOM, an escaped or repeated
 * top-level key, deep nesting) and any error at all, from fastjson or a loader,
 * make the load start again the old way, with one tree of the whole text: a
 * bad snapshot gets exactly the message it always got.
 */

struct estate_mem;
struct chains;
static void lean_ade(struct estate *e, struct vm *vm, const cJSON *it);
static void lean_disk_ade(struct loader *L, const cJSON *it, struct ade_disk *d);
static const char *lean_vm_id(struct loader *L, const cJSON *it, const char *path);
static void find_apart(struct estate_mem *m, const cJSON *doc);
static void chains_add(struct chains *c, const char *id, size_t item, bool borrow);

/* The lists a lean load reads element by element; nothing reads their raw JSON after loading. */
static const char *const STREAMED[] = {"virtualMachines", "disks", "backupProtectedItems", "backupJobs",
                                       "activityLog", NULL};

#define SCAN_MAX_DEPTH 200               /* deeper is never a snapshot; the tree path judges it */
#define SRC_READ ((size_t)1 << 20)       /* a file's scan reads it this much at a time, at least */

static size_t src_read = SRC_READ;       /* SRC_READ, or a test's (estate_test_io) */
static void (*after_scan)(const char *path);

struct span {
	size_t start, end;
};

struct member {
	char *key;                           /* a copy; never has escapes */
	size_t klen;
	struct span val;
	struct span *elems;                  /* STREAMED lists: each element */
	size_t nelems;
	bool streamed;
};

/* A buffer a file's bytes are read into, reused from one read to the next. */
struct src_buf {
	char *data;
	size_t cap;
};

#define AHEAD_BATCH_BYTES ((size_t)1 << 20)   /* text a batch of parsed elements covers, at most */
#define AHEAD_BATCH_MAX 256                   /* elements in a batch, at most (small ones: jobs) */
#define AHEAD_BATCHES 4                       /* batches parsed ahead of the loader, at most */

/*
 * The snapshot's text, from one of two sources: a text in memory
 * (estate_parse: text is all of it), or a regular file (estate_load), read
 * with pread into buffers that are reused and never mapped.  The scan sees
 * a window of it (text[k] is the source's byte base + k; scan_block and
 * value_end_with work on the window as on a whole text); spans are offsets
 * in the source; src_bytes gives any span's bytes.
 */
struct src {
	const char *text;
	size_t len;
	size_t base;                         /* the window's offset in the source */
	size_t size;                         /* the source's length */
	int fd;                              /* -1: text in memory */
	int ioerr;                           /* a read failed (errno) or was short (-1): the load fails */
	bool sure;                           /* value_end's last 0 would be 0 with more text too */
	struct member *m;
	size_t nm;
	struct readahead *ra;                /* while src_scan reads a file on two cores: its next bytes */
	struct src_buf win;                  /* the scan's window, then src_doc's members */
	struct src_buf one;                  /* the element items_next parses without a worker */
	struct src_buf ahead[AHEAD_BATCHES]; /* each batch's text (struct ahead): only the worker's */
	struct fastjson_arena scratch;       /* the elements being loaded (parse_span) */
};

/*
 * What a loader reads of one element of its list before it merges it into
 * the estate (an index, a join), in a record of size bytes: read needs only
 * the element and what is loaded already, so the worker may run it (struct
 * ahead) while the loader merges the elements before.  read says false when
 * the element is bad (L says why, as the loader would have); drop releases
 * a record read but never handed to the loader (NULL: nothing to release).
 */
struct prep {
	size_t size;
	bool (*read)(struct loader *L, cJSON *it, size_t i, void *rec);
	void (*drop)(void *rec);
};

/* Elements of a STREAMED list parsed by the worker (struct ahead), in their own arena, and their records. */
struct batch {
	struct fastjson_arena a;
	cJSON **v;                           /* elements [first, first + n); NULL where one is bad */
	char *rec;                           /* element first + k's record at k * prep->size */
	size_t first, n;
	bool read;                           /* the worker read the records too, else the loader reads them */
};

/*
 * The second core: a worker thread parses a STREAMED list's elements ahead
 * of the loader, a batch at a time, through a ring of AHEAD_BATCHES
 * batches.  The loader reads them in order, so it loads exactly what it
 * would have parsed itself.  During the list only the worker touches S.
 */
struct ahead {
	pthread_t t;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct src *S;
	const struct member *m;
	const struct prep *prep;             /* NULL: the worker only parses */
	struct loader L;                     /* the worker's, for prep->read (its messages are not told) */
	struct kv_err err;
	int ioerr;                           /* a read of the worker's failed (src_bytes): S->ioerr once joined */
	struct batch b[AHEAD_BATCHES];
	size_t made, used;                   /* batches the worker filled; the loader gave back */
	bool stop, end;                      /* the loader gives up; the worker is done */
};

/* A top-level list as a loader walks it: a cJSON array, or a STREAMED member element by element. */
struct items {
	const cJSON *dom, *next;
	const struct member *m;
	size_t i;
	cJSON *cur;
	struct src *S;
	struct loader *L;
	struct ahead *ahead;                 /* NULL: the loader parses each element itself */
	struct batch *batch;                 /* the one the loader reads, at element i - batch->first */
	const struct prep *prep;             /* NULL: the loader reads each element itself */
	void *rec;                           /* cur's record, the loader's once handed */
	char *own;                           /* room for it when no worker reads it */
};

/* Items grouped by an ARM ID (idmap's equality), each group in the order added: lean_ade's joins. */
struct chains {
	struct idmap ix;                     /* ID -> its group */
	size_t (*grp)[2];                    /* first and last item of each group */
	size_t *next;                        /* by item: the next of its group, or SIZE_MAX */
	size_t ngrp, capgrp, cap;
};

/*
 * What one thread of a lean load allocates as it reads elements: the
 * loader's, or the parse-ahead worker's (struct ahead), so the two never
 * share an allocator.  Only one worker runs at a time.
 */
struct lean_side {
	struct fastjson_arena strs;          /* copied strings, as long as the estate (huge-page blocks) */
	struct ade_keys *kbuf;               /* one disk's keys while lean_disk_ade reads them */
	size_t nkbuf, capkbuf;
	struct fastjson_arena keep;          /* their strings and arrays, until the load is done */
};

/*
 * What a lean load owns beyond the typed model: copied strings; e->doc (the
 * members that are not STREAMED); while it loads, what ADE detection of a
 * VM needs of what is not in the VM's element (lean_ade).
 */
struct estate_mem {
	struct lean_side side[2];            /* [0] the loader's, [1] the parse-ahead worker's */
	struct fastjson_arena doc;           /* e->doc when it has blocks (estate_free) */
	struct ade_disk *disk_ade;           /* by index in e->disks (lean_disk_ade) */
	struct chains managed;               /* disks by managedBy */
	struct chains apart;                 /* vmExtensions by the VM they extend (apart_x) */
	const cJSON **apart_x;
	bool apart_known;
};

static struct estate_mem *estate_mem(struct estate *e)
{
	if (!e->mem)
		e->mem = kv_calloc(1, sizeof(*e->mem));
	return e->mem;
}

static const char *pool_str(struct lean_side *side, const char *s)
{
	size_t n = strlen(s) + 1;
	char *c = fastjson_alloc(&side->strs, n);

	memcpy(c, s, n);
	return c;
}

/* A loader's raw pointer to an element: NULL when a lean load frees the element after loading it. */
static cJSON *kept(const struct loader *L, cJSON *it)
{
	return L->copy ? NULL : it;
}

static void src_buf_free(struct src_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->cap = 0;
}

/*
 * The source's bytes [from, to): in place for a text in memory, else read
 * into b (grown as needed).  NULL with *ioerr (errno, or -1 for a short
 * read: the file shrank) when the read fails.
 */
static const char *src_bytes(const struct src *S, size_t from, size_t to, struct src_buf *b, int *ioerr)
{
	ssize_t r;

	if (S->fd < 0)
		return S->text + from;
	if (b->cap < to - from) {
		/* A quarter more: the next batch is rarely that much longer (fresh pages cost a fault each). */
		free(b->data);   /* nothing to keep: no realloc's copy */
		b->cap = to - from + (to - from) / 4;
		b->data = kv_malloc(b->cap);
	}
	r = kv_pread_full(S->fd, b->data, to - from, from);
	if (r < 0 || (size_t)r < to - from) {
		*ioerr = r < 0 ? errno : -1;
		return NULL;
	}
	return b->data;
}

/*
 * The scan reads the file in order, and on this kind of VM the kernel's
 * copy out of the page cache costs twice the scan itself (0.29 s against
 * 0.13 s of 843 MB), while the parse-ahead worker's core has nothing to do
 * yet.  So a reader thread preads the next RA_SLOTS chunks of SRC_READ
 * bytes into a ring while the scan works, and src_more copies them from
 * there (cache-warm) into the window.
 */
#define RA_SLOTS 8

struct ra_slot {
	char *data;
	size_t n;                            /* bytes read; < the chunk only at the end or on an error */
	int err;                             /* errno of a failed read, -1 for a short one, else 0 */
	bool full;
};

struct readahead {
	pthread_t t;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int fd;
	size_t size, chunk;
	struct ra_slot slot[RA_SLOTS];
	size_t made, used;                   /* chunks the reader filled; the scan took (the chunk at used) */
	size_t at;                           /* the scan's place in chunk used */
	bool stop;
};

static void *ra_run(void *arg)
{
	struct readahead *R = arg;

	for (size_t off = 0, k = 0; off < R->size; k++) {
		struct ra_slot *sl = &R->slot[k % RA_SLOTS];
		size_t want = R->size - off < R->chunk ? R->size - off : R->chunk;
		ssize_t r;
		bool stop;

		pthread_mutex_lock(&R->mu);
		while (!R->stop && R->made - R->used == RA_SLOTS)
			pthread_cond_wait(&R->cv, &R->mu);
		stop = R->stop;
		pthread_mutex_unlock(&R->mu);
		if (stop)
			break;
		r = kv_pread_full(R->fd, sl->data, want, off);
		sl->err = r < 0 ? errno : (size_t)r < want ? -1 : 0;
		sl->n = r < 0 ? 0 : (size_t)r;
		pthread_mutex_lock(&R->mu);
		sl->full = true;
		R->made++;
		pthread_cond_broadcast(&R->cv);
		pthread_mutex_unlock(&R->mu);
		if (sl->err)
			break;
		off += want;
	}
	return NULL;
}

/* The reader for a file's scan on two or more cores; else (or when it cannot start) the scan preads. */
static void ra_start(struct src *S)
{
	struct readahead *R;

	if (S->fd < 0 || sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	R = kv_calloc(1, sizeof(*R));
	R->fd = S->fd;
	R->size = S->size;
	/* Test read sizes (estate_test_io) of a few bytes still cross chunks, 64 times fewer of them. */
	R->chunk = src_read < SRC_READ / 64 ? src_read * 64 : SRC_READ;
	for (size_t k = 0; k < RA_SLOTS; k++)
		R->slot[k].data = kv_malloc(R->chunk);
	if (pthread_mutex_init(&R->mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&R->cv, NULL) != 0 || pthread_create(&R->t, NULL, ra_run, R) != 0) {
		pthread_cond_destroy(&R->cv);   /* harmless on a failed init: glibc's does not fail */
		pthread_mutex_destroy(&R->mu);
		goto fail;
	}
	S->ra = R;
	return;
fail:
	for (size_t k = 0; k < RA_SLOTS; k++)
		free(R->slot[k].data);
	free(R);
}

static void ra_stop(struct src *S)
{
	struct readahead *R = S->ra;

	if (!R)
		return;
	pthread_mutex_lock(&R->mu);
	R->stop = true;
	pthread_cond_broadcast(&R->cv);
	pthread_mutex_unlock(&R->mu);
	pthread_join(R->t, NULL);
	for (size_t k = 0; k < RA_SLOTS; k++)
		free(R->slot[k].data);
	pthread_cond_destroy(&R->cv);
	pthread_mutex_destroy(&R->mu);
	free(R);
	S->ra = NULL;
}

/*
 * The next n bytes of the file (the scan reads it in order) into out, from
 * the reader's chunks: as kv_pread_full, bytes copied or -1 with errno.
 */
static ssize_t ra_read(struct readahead *R, char *out, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct ra_slot *sl = &R->slot[R->used % RA_SLOTS];
		size_t k;

		pthread_mutex_lock(&R->mu);
		while (!sl->full)
			pthread_cond_wait(&R->cv, &R->mu);
		pthread_mutex_unlock(&R->mu);
		k = sl->n - R->at < n - got ? sl->n - R->at : n - got;
		memcpy(out + got, sl->data + R->at, k);
		got += k;
		R->at += k;
		if (R->at < sl->n)
			break;   /* n bytes copied */
		if (sl->err) {
			if (sl->err > 0) {
				errno = sl->err;
				return -1;
			}
			break;   /* short: the file shrank */
		}
		pthread_mutex_lock(&R->mu);
		sl->full = false;
		R->used++;
		R->at = 0;
		pthread_cond_broadcast(&R->cv);
		pthread_mutex_unlock(&R->mu);
	}
	return (ssize_t)got;
}

/*
 * Reads more of the file into the window, which keeps its bytes from
 * offset keep (the value being scanned) on: at least SRC_READ bytes, or as
 * many as it keeps, so that a long value is scanned a logarithmic number of
 * times.  False at the end of the source or when the read fails (S->ioerr).
 */
static bool src_more(struct src *S, size_t keep)
{
	size_t kept = S->base + S->len - keep, want = kept > src_read ? kept : src_read;
	ssize_t r;

	if (S->fd < 0 || S->ioerr || S->base + S->len == S->size)
		return false;
	if (kept)
		memmove(S->win.data, S->win.data + (keep - S->base), kept);
	S->base = keep;
	if (want > S->size - keep - kept)
		want = S->size - keep - kept;
	if (S->win.cap < kept + want) {
		S->win.cap = kept + want;
		S->win.data = kv_realloc(S->win.data, S->win.cap);
	}
	S->text = S->win.data;
	S->len = kept;
	r = S->ra ? ra_read(S->ra, S->win.data + kept, want) : kv_pread_full(S->fd, S->win.data + kept, want, keep + kept);
	if (r < 0 || (size_t)r < want) {
		S->ioerr = r < 0 ? errno : -1;
		return false;
	}
	S->len = kept + want;
	return true;
}

/* Just past the string whose opening quote is at i; 0 when it does not end. */
static size_t string_end(const struct src *S, size_t i)
{
	const char *p = S->text + i + 1, *end = S->text + S->len;

	for (;;) {
		p = fastjson_stop(p, end);
		if (p == end)
			return 0;
		if (*p == '"')
			return (size_t)(p - S->text) + 1;
		if (end - p < 2)   /* a backslash escapes the next byte, whatever it is */
			return 0;
		p += 2;
	}
}

enum { SCAN_ON, SCAN_END, SCAN_BAD };

/*
 * value_end's walk of a bracketed value, a byte at a time, from *i up to
 * stop (or one past, after an escape): strings skipped (a backslash escapes
 * the next byte, whatever it is), brackets counted.  SCAN_END with *i just
 * past the value; SCAN_BAD when too deep or an escape ends the text.
 */
static int scan_bytes(const struct src *S, size_t *i, size_t stop, size_t *depth, bool *in_str)
{
	const char *t = S->text;
	size_t j = *i;

	for (; j < stop; j++) {
		char c = t[j];

		if (*in_str) {
			if (c == '\\') {
				if (S->len - j < 2)
					return SCAN_BAD;
				j++;
			} else if (c == '"') {
				*in_str = false;
			}
		} else if (c == '"') {
			*in_str = true;
		} else if (c == '{' || c == '[') {
			if (++*depth > SCAN_MAX_DEPTH)
				return SCAN_BAD;
		} else if ((c == '}' || c == ']') && --*depth == 0) {
			*i = j + 1;
			return SCAN_END;
		}
	}
	*i = j;
	return SCAN_ON;
}

/*
 * 64 bytes of text as bit masks, bit k for byte k: what value_end's blocks
 * need.  open and close are computed as (c & 0xDF) == '[' and == ']', which
 * is exactly '[' '{' and ']' '}'.
 */
struct scan_block {
	uint64_t quote, bslash, open, close;
};

/*
 * value_end's walk of whole blocks from *i, one function per instruction
 * set: SCAN_ON with *i where fewer than 64 bytes are left, else as
 * scan_bytes.
 */
typedef int (*scan_blocks_fn)(const struct src *S, size_t *i, size_t *depth, bool *in_str);

#if defined(__SSE2__)
/* Bit k: the XOR of bits 0..k (inside a string, where q marks the quotes). */
static uint64_t prefix_xor(uint64_t q)
{
	q ^= q << 1;
	q ^= q << 2;
	q ^= q << 4;
	q ^= q << 8;
	q ^= q << 16;
	q ^= q << 32;
	return q;
}

/*
 * The bytes a backslash escapes, given a block's backslashes bs, as if
 * every backslash were in a string and none escaped from the block before
 * (simdjson's odd-backslash-sequence trick): a run of backslashes escapes
 * the byte after it when its length is odd.  Runs starting on even and odd
 * bits are added to the backslashes separately so that the carry stops
 * just past each run, on a bit whose parity is the run's length's.
 * *last: the block's last byte is a backslash that escapes the next
 * block's first byte.
 */
static uint64_t scan_escaped(uint64_t bs, bool *last)
{
	const uint64_t even = 0x5555555555555555u, odd = ~even;
	uint64_t starts = bs & ~(bs << 1), even_ends, odd_ends;

	even_ends = (bs + (starts & even)) & ~bs;
	*last = __builtin_add_overflow(bs, starts & odd, &odd_ends);
	odd_ends &= ~bs;
	return (even_ends & odd) | (odd_ends & even);
}

/*
 * One block (64 bytes) of a bracketed value, classified in b:
 * SCAN_END with *end just past the value, SCAN_BAD when too deep, else
 * SCAN_ON with *in_str, *depth and *escape_next (the next block's first
 * byte is escaped) updated.  -1 when a backslash is outside a string (no
 * escape there, which scan_escaped assumed): the caller walks the block
 * byte by byte.
 */
static inline __attribute__((always_inline)) int scan_block(const struct scan_block *b, bool *in_str, size_t *depth,
                                                            bool *escape_next, size_t *end, bool popcnt)
{
	uint64_t quote = b->quote, in, open, close;
	bool last = false;

	if (b->bslash)
		quote &= ~scan_escaped(b->bslash, &last);
	in = prefix_xor(quote) ^ (*in_str ? ~(uint64_t)0 : 0);
	if (b->bslash & ~in)
		return -1;
	open = b->open & ~in;
	close = b->close & ~in;
	/*
	 * The value ends or nests too deep here only when its closes or opens
	 * can take depth there: with a popcnt instruction, counting them first
	 * spares the walk of most blocks.
	 */
	if (!popcnt || (size_t)__builtin_popcountll(close) >= *depth ||
	    *depth + (size_t)__builtin_popcountll(open) > SCAN_MAX_DEPTH) {
		for (uint64_t m = open | close; m; m &= m - 1) {
			int k = __builtin_ctzll(m);

			if (open >> k & 1) {
				if (++*depth > SCAN_MAX_DEPTH)
					return SCAN_BAD;
			} else if (--*depth == 0) {
				*end = (size_t)k + 1;
				return SCAN_END;
			}
		}
	} else {
		*depth = *depth + (size_t)__builtin_popcountll(open) - (size_t)__builtin_popcountll(close);
	}
	*in_str = in >> 63;
	*escape_next = last;
	return SCAN_ON;
}

/* scan_blocks_fn's body with one classifier, inlined into each (so the classifier is, too). */
static inline __attribute__((always_inline)) int scan_blocks(const struct src *S, size_t *i, size_t *depth,
                                                             bool *in_str, bool popcnt,
                                                             void (*classify)(const char *, struct scan_block *))
{
	size_t j = *i;
	int r;

	while (S->len - j >= 64) {
		struct scan_block b;
		bool escape_next = false;
		size_t end = 0;

		classify(S->text + j, &b);
		r = scan_block(&b, in_str, depth, &escape_next, &end, popcnt);
		if (r < 0) {
			*i = j;
			if ((r = scan_bytes(S, i, j + 64, depth, in_str)) != SCAN_ON)
				return r;
			j = *i;
			continue;
		}
		if (r != SCAN_ON) {
			*i = j + end;
			return r;
		}
		j += 64;
		if (escape_next && j++ == S->len)   /* the escaped byte is in the string: skip it */
			return SCAN_BAD;
	}
	*i = j;
	return SCAN_ON;
}

/* Bit k set where byte k of w0..w3 (64 bytes) equals c's. */
static uint64_t scan_bits(__m128i w0, __m128i w1, __m128i w2, __m128i w3, __m128i c)
{
	return (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(w0, c)) |
	       (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(w1, c)) << 16 |
	       (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(w2, c)) << 32 |
	       (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(w3, c)) << 48;
}

/* The fallback classifier: four 16-byte loads (every x86-64 has SSE2). */
static inline void scan_classify(const char *p, struct scan_block *b)
{
	const __m128i fold = _mm_set1_epi8((char)0xDF);
	const __m128i w0 = _mm_loadu_si128((const __m128i *)(const void *)p);
	const __m128i w1 = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
	const __m128i w2 = _mm_loadu_si128((const __m128i *)(const void *)(p + 32));
	const __m128i w3 = _mm_loadu_si128((const __m128i *)(const void *)(p + 48));
	const __m128i f0 = _mm_and_si128(w0, fold), f1 = _mm_and_si128(w1, fold);
	const __m128i f2 = _mm_and_si128(w2, fold), f3 = _mm_and_si128(w3, fold);

	b->quote = scan_bits(w0, w1, w2, w3, _mm_set1_epi8('"'));
	b->bslash = scan_bits(w0, w1, w2, w3, _mm_set1_epi8('\\'));
	b->open = scan_bits(f0, f1, f2, f3, _mm_set1_epi8('['));
	b->close = scan_bits(f0, f1, f2, f3, _mm_set1_epi8(']'));
}

static int scan_blocks_sse2(const struct src *S, size_t *i, size_t *depth, bool *in_str)
{
	return scan_blocks(S, i, depth, in_str, false, scan_classify);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SCAN_X86_DISPATCH 1
#include <immintrin.h>

/* Two 32-byte loads, chosen at run time when the CPU has AVX2. */
__attribute__((target("avx2"))) static uint64_t scan_bits_avx2(__m256i w0, __m256i w1, __m256i c)
{
	return (uint64_t)(unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(w0, c)) |
	       (uint64_t)(unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(w1, c)) << 32;
}

__attribute__((target("avx2"))) static inline void scan_classify_avx2(const char *p, struct scan_block *b)
{
	const __m256i fold = _mm256_set1_epi8((char)0xDF);
	const __m256i w0 = _mm256_loadu_si256((const __m256i *)(const void *)p);
	const __m256i w1 = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
	const __m256i f0 = _mm256_and_si256(w0, fold), f1 = _mm256_and_si256(w1, fold);

	b->quote = scan_bits_avx2(w0, w1, _mm256_set1_epi8('"'));
	b->bslash = scan_bits_avx2(w0, w1, _mm256_set1_epi8('\\'));
	b->open = scan_bits_avx2(f0, f1, _mm256_set1_epi8('['));
	b->close = scan_bits_avx2(f0, f1, _mm256_set1_epi8(']'));
}

__attribute__((target("avx2,popcnt"))) static int scan_blocks_avx2(const struct src *S, size_t *i, size_t *depth,
                                                                  bool *in_str)
{
	return scan_blocks(S, i, depth, in_str, true, scan_classify_avx2);
}

/* One 64-byte load whose compares give the masks directly (AVX-512BW; valgrind's cpuid hides it). */
__attribute__((target("avx512f,avx512bw"))) static inline void scan_classify_avx512(const char *p, struct scan_block *b)
{
	const __m512i w = _mm512_loadu_si512((const void *)p);
	const __m512i f = _mm512_and_si512(w, _mm512_set1_epi8((char)0xDF));

	b->quote = _mm512_cmpeq_epi8_mask(w, _mm512_set1_epi8('"'));
	b->bslash = _mm512_cmpeq_epi8_mask(w, _mm512_set1_epi8('\\'));
	b->open = _mm512_cmpeq_epi8_mask(f, _mm512_set1_epi8('['));
	b->close = _mm512_cmpeq_epi8_mask(f, _mm512_set1_epi8(']'));
}
__attribute__((target("avx512f,avx512bw,popcnt"))) static int scan_blocks_avx512(const struct src *S, size_t *i,
                                                                                  size_t *depth, bool *in_str)
{
	return scan_blocks(S, i, depth, in_str, true, scan_classify_avx512);
}
#endif

/* The block walks by ESTATE_SCAN_*; NULL where this CPU (as cpuid says) lacks the instructions. */
static scan_blocks_fn scan_walker(int how)
{
#if defined(SCAN_X86_DISPATCH)
	__builtin_cpu_init();
	if (how == ESTATE_SCAN_AVX512)
		return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("popcnt") ? scan_blocks_avx512 : NULL;
	if (how == ESTATE_SCAN_AVX2)
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") ? scan_blocks_avx2 : NULL;
#endif
	return how == ESTATE_SCAN_SSE2 ? scan_blocks_sse2 : NULL;
}

/* The widest walk this CPU has, looked up once. */
static scan_blocks_fn scan_best(void)
{
	static scan_blocks_fn best;   /* atomic: the fuzzers and tests may load on several threads */
	scan_blocks_fn f = __atomic_load_n(&best, __ATOMIC_RELAXED);

	if (!f) {
		if (!(f = scan_walker(ESTATE_SCAN_AVX512)) && !(f = scan_walker(ESTATE_SCAN_AVX2)))
			f = scan_blocks_sse2;
		__atomic_store_n(&best, f, __ATOMIC_RELAXED);
	}
	return f;
}
#endif

/*
 * Just past the JSON value starting at i (not validated: cJSON does that);
 * 0 when none.  The scan of the whole snapshot is on the critical path, so
 * a bracketed value goes 64 bytes a block with blocks (the widest the
 * CPU has: scan_best): the quotes that no backslash escapes, prefix-XORed,
 * say which bytes are inside strings, and the brackets outside them are
 * only counted unless the value may end or nest too deep in the block.  A
 * block with a backslash outside a string (never in JSON) goes byte by
 * byte.  The same answer as scan_bytes alone (blocks NULL):
 * tests/unit/test_lean.c holds every classifier to that.
 */
static size_t value_end_with(struct src *S, size_t i, scan_blocks_fn blocks)
{
	const char *t = S->text;
	size_t depth = 0;
	bool in_str = false;
	int r;

	S->sure = false;   /* a 0 because the text ended: a window of a file reads more (src_value_end) */
	if (i >= S->len || !strchr("{[\"-0123456789tfn", t[i]) || t[i] == '\0') {
		S->sure = i < S->len;
		return 0;
	}
	if (t[i] == '"')
		return string_end(S, i);
	if (t[i] != '{' && t[i] != '[') {
		size_t s = i;

		while (i < S->len && !json_is_space(t[i]) && t[i] != ',' && t[i] != ']' && t[i] != '}')
			i++;
		return i > s ? i : 0;
	}
	if (!blocks || (r = blocks(S, &i, &depth, &in_str)) == SCAN_ON)
		r = scan_bytes(S, &i, S->len, &depth, &in_str);
	S->sure = depth > SCAN_MAX_DEPTH;
	return r == SCAN_END ? i : 0;
}

static size_t value_end(struct src *S, size_t i)
{
#if defined(__SSE2__)
	return value_end_with(S, i, scan_best());
#else
	return value_end_with(S, i, NULL);
#endif
}

size_t estate_value_end(const char *text, size_t len, size_t i, int how)
{
	struct src S = {.text = text, .len = len, .size = len, .fd = -1};
	scan_blocks_fn f = NULL;

#if defined(__SSE2__)
	if (how == ESTATE_SCAN_BEST)
		f = scan_best();
	else if (how != ESTATE_SCAN_BYTES && !(f = scan_walker(how)))
		return SIZE_MAX;
#else
	if (how != ESTATE_SCAN_BYTES && how != ESTATE_SCAN_BEST)
		return SIZE_MAX;
#endif
	return value_end_with(&S, i, f);
}

/*
 * The first byte at or after *i that is not white space (*i moves there),
 * reading more of a file as needed; -1 at the end (or a failed read).
 */
static int src_peek(struct src *S, size_t *i)
{
	for (;;) {
		size_t k = json_skip_space(S->text, *i - S->base, S->len);

		*i = S->base + k;
		if (k < S->len)
			return (unsigned char)S->text[k];
		if (!src_more(S, *i))
			return -1;
	}
}

/*
 * value_end of the value at offset i of the source, in the window: one
 * that runs past its end (or may: a number, or a value ending just there)
 * is scanned again from i once the window holds more.
 */
static size_t src_value_end(struct src *S, size_t i)
{
	for (;;) {
		size_t end = value_end(S, i - S->base);

		if ((end && end < S->len) || (!end && S->sure) || S->base + S->len == S->size)
			return end ? S->base + end : 0;
		if (!src_more(S, i))
			return 0;
	}
}

/* Splits the list at i into its elements; just past its ']', or 0. */
static size_t split_list(struct src *S, struct member *m, size_t i)
{
	size_t cap = 0;
	int c;

	i++;
	if (src_peek(S, &i) == ']')
		return i + 1;
	for (;;) {
		size_t end = src_value_end(S, i);

		if (!end)
			return 0;
		if (m->nelems == cap) {
			cap = cap ? cap * 2 : 1024;
			m->elems = kv_realloc(m->elems, cap * sizeof(*m->elems));
		}
		m->elems[m->nelems++] = (struct span){i, end};
		i = end;
		c = src_peek(S, &i);
		if (c == ']')
			return i + 1;
		if (c != ',')
			return 0;
		i++;
		(void)src_peek(S, &i);
	}
}

static bool is_streamed(const char *key, size_t klen)
{
	for (size_t k = 0; STREAMED[k]; k++)
		if (strlen(STREAMED[k]) == klen && memcmp(STREAMED[k], key, klen) == 0)
			return true;
	return false;
}

static void src_release(struct src *S)
{
	fastjson_arena_free(&S->scratch);
	for (size_t k = 0; k < S->nm; k++) {
		free(S->m[k].key);
		free(S->m[k].elems);
	}
	free(S->m);
	S->m = NULL;
	S->nm = 0;
	src_buf_free(&S->win);
	src_buf_free(&S->one);
	for (size_t k = 0; k < AHEAD_BATCHES; k++)
		src_buf_free(&S->ahead[k]);
}

/* A source of text in memory (fd -1), or of the regular file fd of size bytes. */
static void src_open(struct src *S, const char *text, size_t size, int fd)
{
	memset(S, 0, sizeof(*S));
	S->fd = fd;
	S->size = size;
	if (fd < 0) {
		S->text = text;
		S->len = size;
	}
}

/* The key whose opening quote is at offset i, just scanned up to kend (in the window), copied; NULL when bad. */
static char *src_key(struct src *S, size_t i, size_t kend)
{
	const char *key = S->text + (i + 1 - S->base);
	size_t klen = kend - i - 2;
	char *copy;

	if (memchr(key, '\\', klen))
		return NULL;
	for (size_t k = 0; k < klen; k++)   /* a NUL would end the key early in cJSON's copy */
		if ((unsigned char)key[k] < 0x20)
			return NULL;
	for (size_t k = 0; k < S->nm; k++)
		if (S->m[k].klen == klen && memcmp(S->m[k].key, key, klen) == 0)
			return NULL;
	copy = kv_malloc(klen + 1);
	memcpy(copy, key, klen);
	copy[klen] = '\0';
	return copy;
}

/*
 * Finds the top-level members of the source (src_open); false when it is
 * anything but a plain object, or a read failed (S->ioerr).  The caller
 * releases S either way.
 */
static bool src_scan(struct src *S)
{
	size_t i = 0;
	int c = src_peek(S, &i);

	if (c != '{')
		return false;
	i++;
	if ((c = src_peek(S, &i)) == '}')
		goto close;
	for (;;) {
		struct member m = {0};
		size_t kend;

		if (c != '"' || !(kend = src_value_end(S, i)) || !(m.key = src_key(S, i, kend)))
			return false;
		m.klen = kend - i - 2;
		i = kend;
		if (src_peek(S, &i) != ':') {
			free(m.key);
			return false;
		}
		i++;
		c = src_peek(S, &i);
		m.val.start = i;
		m.streamed = c == '[' && is_streamed(m.key, m.klen);
		m.val.end = m.streamed ? split_list(S, &m, i) : src_value_end(S, i);
		S->m = kv_realloc(S->m, (S->nm + 1) * sizeof(*S->m));
		S->m[S->nm++] = m;
		if (!m.val.end)
			return false;
		i = m.val.end;
		c = src_peek(S, &i);
		if (c == ',') {
			i++;
			c = src_peek(S, &i);
			continue;
		}
		if (c == '}')
			break;
		return false;
	}
close:
	i++;
	return src_peek(S, &i) < 0 && !S->ioerr;
}

/*
 * The text p[0, len) as one cJSON value that ends exactly there, in arena
 * a (fastjson accepts what cJSON accepts; its trees never reach
 * cJSON_Delete); NULL otherwise.
 */
static cJSON *parse_span(const char *p, size_t len, struct fastjson_arena *a)
{
	const char *end = NULL;
	cJSON *v = fastjson_parse(p, len, &end, a);

	return v && end == p + len ? v : NULL;
}

/* The source's span s parsed (parse_span), its text read into b; NULL on bad JSON or a failed read (*ioerr). */
static cJSON *src_parse(const struct src *S, struct span s, struct src_buf *b, struct fastjson_arena *a, int *ioerr)
{
	const char *p = src_bytes(S, s.start, s.end, b, ioerr);

	return p ? parse_span(p, s.end - s.start, a) : NULL;
}

/*
 * Every member but the STREAMED lists, as one object in a (the e->doc of a
 * lean load, linked as cJSON_AddItemToObject would); NULL on bad JSON or a
 * failed read.  A file's members are read again into the scan's window
 * (at 50k VMs ~40 MB from the page cache, a few ms; the window has the
 * room of the longest, and is freed after them).
 */
static cJSON *src_doc(struct src *S, struct fastjson_arena *a)
{
	cJSON *doc = fastjson_alloc(a, sizeof(*doc)), *last = NULL;

	memset(doc, 0, sizeof(*doc));
	doc->type = cJSON_Object;
	/* e->doc lives as long as the estate, and its lists (backup jobs above all) repeat keys and values. */
	fastjson_arena_share_strings(a, true);
	for (size_t k = 0; k < S->nm; k++) {
		cJSON *v;

		if (S->m[k].streamed)
			continue;
		if (!(v = src_parse(S, S->m[k].val, &S->win, a, &S->ioerr))) {
			fastjson_arena_share_strings(a, false);
			return NULL;
		}
		v->string = fastjson_alloc(a, S->m[k].klen + 1);
		memcpy(v->string, S->m[k].key, S->m[k].klen + 1);
		if (last) {
			last->next = v;
			v->prev = last;
		} else {
			doc->child = v;
		}
		doc->child->prev = last = v;
	}
	fastjson_arena_share_strings(a, false);
	if (S->fd >= 0)
		src_buf_free(&S->win);
	return doc;
}

static const struct member *src_member(const struct src *S, const char *key)
{
	for (size_t k = 0; S && k < S->nm; k++)
		if (S->m[k].streamed && strlen(key) == S->m[k].klen && memcmp(S->m[k].key, key, S->m[k].klen) == 0)
			return &S->m[k];
	return NULL;
}

static void items_done(struct items *it);

/*
 * The top-level list `key` as a loader walks it (top_list's counterpart for
 * STREAMED lists): element by element when the lean load scanned it, else
 * the array of doc.  NULL with present=false when absent.
 */
static struct items *top_items(struct loader *L, struct src *S, struct items *it, const cJSON *doc,
                               const char *key, bool *present)
{
	items_done(it);   /* a list the loader left early */
	memset(it, 0, sizeof(*it));
	it->S = S;
	it->L = L;
	if ((it->m = src_member(S, key))) {
		*present = true;
		return it;
	}
	it->dom = top_list(L, doc, key, present);
	return it->dom ? it : NULL;
}

static size_t items_count(const struct items *it)
{
	return it->m ? it->m->nelems : (size_t)cJSON_GetArraySize(it->dom);
}

/* The worker: fills the ring's free batches in order until the list ends, a bad element or stop. */
static void *ahead_run(void *arg)
{
	struct ahead *A = arg;
	size_t i = 0;
	bool bad = false;

	while (i < A->m->nelems && !bad) {
		struct batch *b;
		size_t bytes = 0, k, end, from;
		const char *text;
		bool stop, read;

		pthread_mutex_lock(&A->mu);
		while (!A->stop && A->made - A->used == AHEAD_BATCHES)
			pthread_cond_wait(&A->cv, &A->mu);
		stop = A->stop;
		/*
		 * The records too when the loader has a batch waiting beside the
		 * one it reads: else it would wait for this one, and reads them
		 * itself.  Whichever thread has time does the work.
		 */
		read = A->prep && A->made - A->used >= 2;
		pthread_mutex_unlock(&A->mu);
		if (stop)
			break;
		k = A->made % AHEAD_BATCHES;
		b = &A->b[k];   /* only the worker writes made */
		fastjson_arena_reset(&b->a);
		b->first = i;
		b->n = 0;
		b->read = read;
		if (!b->v) {
			b->v = kv_malloc(AHEAD_BATCH_MAX * sizeof(*b->v));
			b->rec = A->prep ? kv_malloc(AHEAD_BATCH_MAX * A->prep->size) : NULL;
		}
		/* The batch's elements, then their text in one read (from the file into the batch's buffer). */
		for (end = i; end < A->m->nelems && end - i < AHEAD_BATCH_MAX && (end == i || bytes < AHEAD_BATCH_BYTES);
		     end++)
			bytes += A->m->elems[end].end - A->m->elems[end].start;
		from = A->m->elems[i].start;
		if (!(text = src_bytes(A->S, from, A->m->elems[end - 1].end, &A->S->ahead[k], &A->ioerr)))
			end = i + 1;   /* the loader sees a bad element; the load fails with S->ioerr */
		while (i < end && !bad) {
			struct span sp = A->m->elems[i++];
			cJSON *v = text ? parse_span(text + (sp.start - from), sp.end - sp.start, &b->a) : NULL;

			if (v && read && !A->prep->read(&A->L, v, i - 1, b->rec + b->n * A->prep->size))
				v = NULL;
			b->v[b->n++] = v;
			bad = !v;   /* the loader stops there: nothing after it is needed */
		}
		pthread_mutex_lock(&A->mu);
		A->made++;
		pthread_cond_broadcast(&A->cv);
		pthread_mutex_unlock(&A->mu);
	}
	pthread_mutex_lock(&A->mu);
	A->end = true;
	pthread_cond_broadcast(&A->cv);
	pthread_mutex_unlock(&A->mu);
	return NULL;
}

/* Starts the worker for it's list; false (parse in the loader) when there is no thread. */
static bool ahead_start(struct items *it)
{
	struct ahead *A = kv_calloc(1, sizeof(*A));

	A->S = it->S;
	A->m = it->m;
	A->prep = it->prep;
	/* A bad element makes the lean load fail and the whole tree load tell why: this message is not told. */
	A->L = (struct loader){it->L->name, &A->err, false, it->L->e, true, &estate_mem(it->L->e)->side[1]};
	if (pthread_mutex_init(&A->mu, NULL) != 0) {
		free(A);
		return false;
	}
	if (pthread_cond_init(&A->cv, NULL) != 0 || pthread_create(&A->t, NULL, ahead_run, A) != 0) {
		pthread_cond_destroy(&A->cv);   /* harmless on a failed init: glibc's does not fail */
		pthread_mutex_destroy(&A->mu);
		free(A);
		return false;
	}
	it->ahead = A;
	return true;
}

/* Releases the records the worker read and the loader was never handed (it stopped early). */
static void ahead_drop(struct items *it)
{
	struct ahead *A = it->ahead;

	for (size_t u = A->used; A->prep && A->prep->drop && u < A->made; u++) {
		struct batch *b = &A->b[u % AHEAD_BATCHES];

		for (size_t k = b == it->batch ? it->i - b->first : 0; b->read && k < b->n; k++)
			if (b->v[k])
				A->prep->drop(b->rec + k * A->prep->size);
	}
}

/* Stops and joins the worker and frees its batches. */
static void ahead_stop(struct items *it)
{
	struct ahead *A = it->ahead;

	if (!A)
		return;
	pthread_mutex_lock(&A->mu);
	A->stop = true;
	pthread_cond_broadcast(&A->cv);
	pthread_mutex_unlock(&A->mu);
	pthread_join(A->t, NULL);
	if (A->ioerr && !it->S->ioerr)
		it->S->ioerr = A->ioerr;
	ahead_drop(it);
	for (size_t k = 0; k < AHEAD_BATCHES; k++) {
		fastjson_arena_free(&A->b[k].a);
		free(A->b[k].v);
		free(A->b[k].rec);
	}
	pthread_cond_destroy(&A->cv);
	pthread_mutex_destroy(&A->mu);
	free(A);
	it->ahead = NULL;
	it->batch = NULL;
}

/* Element it->i from the worker: NULL (as parse_span) when it is bad; the list must not be over. */
static cJSON *ahead_next(struct items *it)
{
	struct ahead *A = it->ahead;
	struct batch *b = it->batch;

	if (!b || it->i - b->first == b->n) {
		pthread_mutex_lock(&A->mu);
		if (b) {   /* the loader is done with it: the worker may fill it again */
			A->used++;
			pthread_cond_broadcast(&A->cv);
		}
		while (A->made == A->used && !A->end)
			pthread_cond_wait(&A->cv, &A->mu);
		b = A->made > A->used ? &A->b[A->used % AHEAD_BATCHES] : NULL;
		pthread_mutex_unlock(&A->mu);
		it->batch = b;
		if (!b)   /* the worker stopped after a bad element, which the loader saw */
			return NULL;
	}
	return b->v[it->i - b->first];
}

/* The next element, and with it->prep its record (it->rec); NULL at the end or on a bad element. */
static cJSON *items_next(struct items *it)
{
	if (!it->m) {
		cJSON *c = (cJSON *)(uintptr_t)it->next;

		it->next = c ? c->next : NULL;
		it->rec = it->own;
		return c && it->prep && !it->prep->read(it->L, c, it->i++, it->own) ? NULL : c;
	}
	if (!it->ahead)
		fastjson_arena_reset(&it->S->scratch);
	it->cur = NULL;
	it->L->copy = false;
	if (it->i == it->m->nelems || it->L->failed) {
		ahead_stop(it);
		return NULL;
	}
	if (it->ahead) {
		it->cur = ahead_next(it);
		it->rec = it->cur && it->prep ? it->batch->rec + (it->i - it->batch->first) * it->prep->size : NULL;
		it->L->copy = true;
		if (it->rec && !it->batch->read && !it->prep->read(it->L, it->cur, it->i, it->rec))
			it->cur = NULL;
	} else {
		it->cur = src_parse(it->S, it->m->elems[it->i], &it->S->one, &it->S->scratch, &it->S->ioerr);
		it->L->copy = true;
		it->rec = it->own;
		if (it->cur && it->prep && !it->prep->read(it->L, it->cur, it->i, it->own))
			it->cur = NULL;
	}
	if (!it->cur) {
		/* Bad JSON inside an element: the whole-tree load says where. */
		it->L->failed = true;
		ahead_stop(it);
		return NULL;
	}
	it->i++;
	it->L->copy = true;
	return it->cur;
}

static cJSON *items_first(struct items *it)
{
	if (it->prep && !it->own)
		it->own = kv_malloc(it->prep->size);
	if (!it->m)
		it->next = it->dom->child;
	else if (it->m->nelems > 1)
		(void)ahead_start(it);
	return items_next(it);
}

/* Frees the element a loader stopped at (it returns early on an error). */
static void items_done(struct items *it)
{
	if (!it)
		return;
	free(it->own);
	it->own = NULL;
	if (it->ahead)
		ahead_stop(it);
	if (it->cur) {
		fastjson_arena_reset(&it->S->scratch);
		it->cur = NULL;
		it->L->copy = false;
	}
}

#define ITEMS_FOR_EACH(it, a) for ((it) = items_first(a); (it); (it) = items_next(a))

static void check_extension_list(struct loader *L, const cJSON *arr, const char *path)
{
	cJSON *it;
	int i = 0;

	cJSON_ArrayForEach(it, arr) {
		char p[512];

		snprintf(p, sizeof(p), "%s[%d]", path, i++);
		if (!cJSON_IsObject(it)) {
			fail(L, p, "an object", it);
			return;
		}
		(void)obj_at(L, it, "properties", p);
	}
}

/* Whether vm has an extension with ID id: the same extension may be both embedded and listed apart. */
static bool has_extension(const struct vm *vm, const char *id)
{
	for (size_t k = 0; k < vm->nextensions; k++) {
		const cJSON *xid = fastjson_get(vm->extensions[k], "id");

		if (cJSON_IsString(xid) && armid_eq(xid->valuestring, id))
			return true;
	}
	return false;
}

static void add_extension(struct vm *vm, cJSON *ext)
{
	vm->extensions = kv_realloc(vm->extensions, (vm->nextensions + 1) * sizeof(*vm->extensions));
	vm->extensions[vm->nextensions++] = ext;
}

/*
 * The VM ID that an extension ID belongs to: the ID must end in
 * ".../virtualMachines/<vm>/extensions/<name>" with non-empty names.
 */
static char *extension_vm_id(const char *ext_id)
{
	const char *p = ext_id, *hit = NULL, *vms, *name;

	while ((p = strchr(p, '/')) != NULL) {
		if (kv_startswith_ci(p, "/extensions/"))
			hit = p;
		p++;
	}
	if (!hit)
		return NULL;
	name = hit + strlen("/extensions/");
	/* One trailing '/' is tolerated, as everywhere in ARM IDs. */
	if (*name == '\0' || *name == '/' || (strchr(name, '/') && strcmp(strchr(name, '/'), "/") != 0))
		return NULL;
	/* The segment pair before it must be virtualMachines/<vm>. */
	vms = hit;
	while (vms > ext_id && vms[-1] != '/')
		vms--;
	if (vms == hit || vms - ext_id < (ptrdiff_t)strlen("/virtualMachines/") ||
	    strncasecmp(vms - strlen("/virtualMachines/"), "/virtualMachines/", strlen("/virtualMachines/")) != 0)
		return NULL;
	return kv_strndup(ext_id, (size_t)(hit - ext_id));
}

static void vm_release(struct vm *vm)
{
	ade_info_release(&vm->ade);
	free(vm->extensions);
	free(vm->disks);
	free(vm->agent_version);
}

static void drop_vm(void *rec)
{
	vm_release(rec);
}

/*
 * VM element it (element i of virtualMachines) checked and read into rec, a
 * struct vm; in a lean load its ADE too (lean_ade), which reads only what
 * was loaded before the VMs.  The loader merges it (load_vms).
 */
static bool read_vm(struct loader *L, cJSON *it, size_t i, void *rec)
{
	struct vm *vm = rec;
	char path[128], p2[256];
	const cJSON *props, *iv, *res, *sp, *osd;

	memset(vm, 0, sizeof(*vm));
	if (!list_item(L, it, "virtualMachines", (int)i, path, sizeof(path)))
		return false;
	vm->raw = kept(L, it);
	vm->id = lean_vm_id(L, it, path);
	vm->name = str_at(L, it, "name", path);
	vm->location = str_at(L, it, "location", path);
	props = obj_at(L, it, "properties", path);
	path_cat(p2, sizeof(p2), path, ".properties");
	sp = props ? obj_at(L, props, "storageProfile", p2) : NULL;
	if (sp) {
		char p3[300];

		path_cat(p3, sizeof(p3), p2, ".storageProfile");
		osd = obj_at(L, sp, "osDisk", p3);
		(void)arr_at(L, sp, "dataDisks", p3);
		if (osd) {
			path_cat(p3, sizeof(p3), p2, ".storageProfile.osDisk");
			vm->os = parse_os(str_at(L, osd, "osType", p3));
			(void)obj_at(L, osd, "encryptionSettings", p3);
		}
	}
	iv = props ? obj_at(L, props, "instanceView", p2) : NULL;
	if (iv) {
		const cJSON *agent, *st, *s;
		char p3[300];

		vm->has_instance_view = true;
		path_cat(p3, sizeof(p3), p2, ".instanceView");
		agent = obj_at(L, iv, "vmAgent", p3);
		(void)arr_at(L, iv, "disks", p3);
		if (vm->os == OS_UNKNOWN)
			vm->os = os_from_name(str_at(L, iv, "osName", p3));
		vm->agent = agent ? AGENT_NOT_READY : AGENT_UNKNOWN;
		if (agent) {
			char p4[320];

			path_cat(p4, sizeof(p4), p3, ".vmAgent");
			vm->agent_version = kv_strdup(str_at(L, agent, "vmAgentVersion", p4));
			st = arr_at(L, agent, "statuses", p4);
			cJSON_ArrayForEach(s, st) {
				const cJSON *ds = fastjson_get(s, "displayStatus");

				if (cJSON_IsString(ds) && kv_streq_ci(ds->valuestring, "Ready"))
					vm->agent = AGENT_READY;
			}
		}
	}
	res = arr_at(L, it, "resources", path);
	if (res) {
		cJSON *x;

		path_cat(p2, sizeof(p2), path, ".resources");
		check_extension_list(L, res, p2);
		if (vm->raw)   /* else lean_ade reads them from it */
			cJSON_ArrayForEach(x, res)
				add_extension(vm, x);
	}
	if (L->failed) {
		vm_release(vm);
		return false;
	}
	copy_segment(vm->id, "subscriptions", vm->sub, sizeof(vm->sub));
	copy_segment(vm->id, "resourceGroups", vm->rg, sizeof(vm->rg));
	if (L->copy)
		lean_ade(L->e, vm, it);
	return true;
}

static const struct prep VM_PREP = {sizeof(struct vm), read_vm, drop_vm};

static void load_vms(struct loader *L, struct estate *e, struct items *arr)
{
	e->vms = kv_calloc(items_count(arr), sizeof(*e->vms));
	if (arr->m && !estate_mem(e)->apart_known)
		find_apart(e->mem, e->doc);   /* before a worker's lean_ade reads it */
	arr->prep = &VM_PREP;
	for (const cJSON *it = items_first(arr); it; it = items_next(arr)) {
		struct vm *vm = &e->vms[e->nvms++];   /* counted now: estate_free releases it on failure */

		*vm = *(const struct vm *)arr->rec;
		/* vm->id lives as long as the estate (its pool or e->doc): the index borrows it. */
		if (!idmap_put_borrowed(&e->vm_ix, vm->id, e->nvms - 1)) {
			char path[128], b[300];

			kv_err_set(L->err, "%s: %s.id: duplicate virtual machine '%s'", L->name,
			           elem_path(path, sizeof(path), "virtualMachines", (int)e->nvms - 1),
			           printable(vm->id, b, sizeof(b)));
			L->failed = true;
			return;
		}
	}
}

static void join_vm_extensions(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	cJSON_ArrayForEach(it, arr) {
		char path[128];
		const char *id;
		char *vmid;
		size_t ix;

		if (!list_item(L, it, "vmExtensions", i++, path, sizeof(path)))
			return;
		id = req_str(L, it, "id", path);
		(void)obj_at(L, it, "properties", path);
		if (L->failed)
			return;
		vmid = extension_vm_id(id);
		if (!vmid) {
			char b[300];

			kv_err_set(L->err, "%s: %s.id: '%s' is not a VM extension ID (.../virtualMachines/<vm>/extensions/<name>)",
			           L->name, path, printable(id, b, sizeof(b)));
			L->failed = true;
			return;
		}
		if (idmap_get(&e->vm_ix, vmid, &ix) && !has_extension(&e->vms[ix], id))
			add_extension(&e->vms[ix], it);
		free(vmid);
	}
}

/* A disk as read_disk reads it: with what ADE detection reads of it in a lean load (lean_disk_ade). */
struct disk_rec {
	struct disk d;
	struct ade_disk ade;
};

/* Disk element it (element i of disks) checked and read into rec, a struct disk_rec; load_disks merges it. */
static bool read_disk(struct loader *L, cJSON *it, size_t i, void *rec)
{
	struct disk_rec *r = rec;
	struct disk *d = &r->d;
	char path[128], p2[160];
	const cJSON *props, *esc;

	memset(r, 0, sizeof(*r));
	if (!list_item(L, it, "disks", (int)i, path, sizeof(path)))
		return false;
	d->raw = kept(L, it);
	d->id = req_str(L, it, "id", path);
	d->name = str_at(L, it, "name", path);
	d->managed_by = vm_ref_at(L, it, "managedBy", path);
	d->location = str_at(L, it, "location", path);
	props = obj_at(L, it, "properties", path);
	path_cat(p2, sizeof(p2), path, ".properties");
	esc = props ? obj_at(L, props, "encryptionSettingsCollection", p2) : NULL;
	if (esc) {
		char p3[200];

		path_cat(p3, sizeof(p3), p2, ".encryptionSettingsCollection");
		(void)bool_at(L, esc, "enabled", p3, false);
		(void)arr_at(L, esc, "encryptionSettings", p3);
		(void)str_at(L, esc, "encryptionSettingsVersion", p3);
	}
	if (L->failed)
		return false;
	if (L->copy)
		lean_disk_ade(L, it, &r->ade);
	return true;
}

static const struct prep DISK_PREP = {sizeof(struct disk_rec), read_disk, NULL};

static void load_disks(struct loader *L, struct estate *e, struct items *arr)
{
	e->disks = kv_calloc(items_count(arr), sizeof(*e->disks));
	if (arr->m)
		estate_mem(e)->disk_ade = kv_calloc(items_count(arr), sizeof(*e->mem->disk_ade));
	arr->prep = &DISK_PREP;
	for (const cJSON *it = items_first(arr); it; it = items_next(arr)) {
		const struct disk_rec *r = arr->rec;

		e->disks[e->ndisks] = r->d;
		idmap_put_borrowed(&e->disk_ix, r->d.id, e->ndisks);
		if (arr->m) {   /* a lean load: who manages the disk, for lean_ade */
			e->mem->disk_ade[e->ndisks] = r->ade;
			if (r->d.managed_by)
				chains_add(&e->mem->managed, r->d.managed_by, e->ndisks, true);   /* the pool's */
		}
		e->ndisks++;
	}
	if (L->failed)
		return;
	/*
	 * Attach disks to the VMs that manage them (Resource Graph gives no
	 * storage profile join).  A lean load has no VMs yet: lean_ade does it.
	 */
	for (size_t k = 0; k < e->ndisks; k++) {
		size_t ix;

		if (e->disks[k].managed_by && idmap_get(&e->vm_ix, e->disks[k].managed_by, &ix)) {
			struct vm *vm = &e->vms[ix];

			vm->disks = kv_realloc(vm->disks, (vm->ndisks + 1) * sizeof(*vm->disks));
			vm->disks[vm->ndisks++] = k;
		}
	}
}

static void load_policy(struct loader *L, struct access_policy *ap, const cJSON *it, const char *path)
{
	const cJSON *perms;
	char p2[300];

	ap->tenant_id = str_at(L, it, "tenantId", path);
	ap->object_id = req_str(L, it, "objectId", path);
	ap->application_id = str_at(L, it, "applicationId", path);
	perms = obj_at(L, it, "permissions", path);
	path_cat(p2, sizeof(p2), path, ".permissions");
	if (perms) {
		ap->keys = str_arr_at(L, perms, "keys", p2);
		ap->secrets = str_arr_at(L, perms, "secrets", p2);
		ap->certificates = str_arr_at(L, perms, "certificates", p2);
		ap->storage = str_arr_at(L, perms, "storage", p2);
	}
}

/* The host of an https URL, lower-cased, into out; false when it has none. */
static bool url_host(const char *url, char *out, size_t n)
{
	const char *p, *end;
	size_t len;

	if (!url || !kv_startswith_ci(url, "https://"))
		return false;
	p = url + strlen("https://");
	end = p + strcspn(p, "/:?#");
	len = (size_t)(end - p);
	if (len == 0 || len >= n)
		return false;
	memcpy(out, p, len);
	out[len] = '\0';
	kv_lower(out);
	return true;
}

static void load_vaults(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->vaults = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->vaults));
	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[160];
		struct vault *v;
		const cJSON *props, *aps, *acl, *ap;
		char host[256];

		if (!list_item(L, it, "vaults", i++, path, sizeof(path)))
			return;
		v = &e->vaults[e->nvaults++];   /* counted now: estate_free releases it on failure */
		v->raw = it;
		v->id = req_str(L, it, "id", path);
		v->name = str_at(L, it, "name", path);
		v->location = str_at(L, it, "location", path);
		props = obj_at(L, it, "properties", path);
		path_cat(p2, sizeof(p2), path, ".properties");
		v->soft_delete = true;
		if (props) {
			const cJSON *days;

			v->tenant_id = str_at(L, props, "tenantId", p2);
			v->uri = str_at(L, props, "vaultUri", p2);
			v->rbac = bool_at(L, props, "enableRbacAuthorization", p2, false);
			v->enabled_for_disk_encryption = bool_at(L, props, "enabledForDiskEncryption", p2, false);
			v->soft_delete = bool_at(L, props, "enableSoftDelete", p2, true);
			v->purge_protection = bool_at(L, props, "enablePurgeProtection", p2, false);
			v->public_network_access = str_at(L, props, "publicNetworkAccess", p2);
			days = fastjson_get(props, "softDeleteRetentionInDays");
			if (cJSON_IsNumber(days))
				v->soft_delete_days = days->valueint;
			acl = obj_at(L, props, "networkAcls", p2);
			if (acl) {
				char p3[200];

				path_cat(p3, sizeof(p3), p2, ".networkAcls");
				v->default_action = str_at(L, acl, "defaultAction", p3);
				v->bypass = str_at(L, acl, "bypass", p3);
			}
			aps = arr_at(L, props, "accessPolicies", p2);
			if (aps) {
				int k = 0;

				v->policies = kv_calloc((size_t)cJSON_GetArraySize(aps), sizeof(*v->policies));
				cJSON_ArrayForEach(ap, aps) {
					char p3[200];

					snprintf(p3, sizeof(p3), "%s.accessPolicies[%d]", p2, k++);
					if (!cJSON_IsObject(ap)) {
						fail(L, p3, "an object", ap);
						return;
					}
					load_policy(L, &v->policies[v->npolicies++], ap, p3);
				}
			}
		}
		if (L->failed)
			return;
		copy_segment(v->id, "subscriptions", v->sub, sizeof(v->sub));
		copy_segment(v->id, "resourceGroups", v->rg, sizeof(v->rg));
		idmap_put(&e->vault_ix, v->id, e->nvaults - 1);
		if (url_host(v->uri, host, sizeof(host)))
			idmap_put(&e->vault_host_ix, host, e->nvaults - 1);
	}
}

static void load_subscriptions(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->subs = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->subs));
	cJSON_ArrayForEach(it, arr) {
		char path[128];
		struct subscription *s;
		const char *guid;

		if (!list_item(L, it, "subscriptions", i++, path, sizeof(path)))
			return;
		s = &e->subs[e->nsubs];
		s->raw = it;
		s->id = str_at(L, it, "id", path);
		guid = str_at(L, it, "subscriptionId", path);
		s->tenant_id = str_at(L, it, "tenantId", path);
		s->display_name = str_at(L, it, "displayName", path);
		if (!s->display_name)
			s->display_name = str_at(L, it, "name", path);   /* az account list */
		s->state = str_at(L, it, "state", path);
		if (L->failed)
			return;
		if (!guid && s->id)
			guid = strrchr(s->id, '/') ? strrchr(s->id, '/') + 1 : s->id;
		if (kv_empty(guid) || strlen(guid) >= sizeof(s->sub)) {
			fail(L, path, "a subscription needs \"subscriptionId\" or \"id\"", NULL);
			return;
		}
		strcpy(s->sub, guid);
		idmap_put(&e->sub_ix, s->sub, e->nsubs);
		e->nsubs++;
	}
}

/* Role definition IDs are compared by their GUID: the same role is named at many scopes. */
static const char *guid_of(const char *id)
{
	const char *slash = id ? strrchr(id, '/') : NULL;

	return slash ? slash + 1 : id;
}

static void load_role_assignments(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->ras = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->ras));
	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[160];
		struct role_assignment *r;
		const cJSON *props;

		if (!list_item(L, it, "roleAssignments", i++, path, sizeof(path)))
			return;
		r = &e->ras[e->nras];
		r->raw = it;
		r->id = str_at(L, it, "id", path);
		props = obj_at(L, it, "properties", path);
		path_cat(p2, sizeof(p2), path, ".properties");
		if (!props) {
			fail(L, p2, "required object is missing", NULL);
			return;
		}
		r->scope = req_str(L, props, "scope", p2);
		r->principal_id = req_str(L, props, "principalId", p2);
		r->role_definition_id = req_str(L, props, "roleDefinitionId", p2);
		r->principal_type = str_at(L, props, "principalType", p2);
		if (L->failed)
			return;
		e->nras++;
	}
}

static void merge_actions(cJSON **into, const cJSON *from)
{
	const cJSON *it;

	if (!from)
		return;
	if (!*into)
		*into = cJSON_CreateArray();
	cJSON_ArrayForEach(it, from)
		cJSON_AddItemToArray(*into, cJSON_CreateString(it->valuestring));
}

static void load_role_definitions(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->rds = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->rds));
	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[160];
		struct role_definition *r;
		const cJSON *props, *perms, *perm;

		if (!list_item(L, it, "roleDefinitions", i++, path, sizeof(path)))
			return;
		r = &e->rds[e->nrds];
		r->raw = it;
		r->id = req_str(L, it, "id", path);
		r->name = str_at(L, it, "name", path);
		props = obj_at(L, it, "properties", path);
		path_cat(p2, sizeof(p2), path, ".properties");
		if (props) {
			int k = 0;

			r->role_name = str_at(L, props, "roleName", p2);
			perms = arr_at(L, props, "permissions", p2);
			cJSON_ArrayForEach(perm, perms) {
				char p3[200];

				snprintf(p3, sizeof(p3), "%s.permissions[%d]", p2, k++);
				if (!cJSON_IsObject(perm)) {
					fail(L, p3, "an object", perm);
					break;
				}
				merge_actions(&r->data_actions, str_arr_at(L, perm, "dataActions", p3));
				merge_actions(&r->not_data_actions, str_arr_at(L, perm, "notDataActions", p3));
			}
		}
		e->nrds++;   /* counted before a failure so estate_free releases its arrays */
		if (L->failed)
			return;
		idmap_put(&e->rd_ix, guid_of(r->id), e->nrds - 1);
	}
}

static void load_rs_vaults(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->rsvs = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->rsvs));
	cJSON_ArrayForEach(it, arr) {
		char path[128];
		struct rs_vault *r;

		if (!list_item(L, it, "recoveryServicesVaults", i++, path, sizeof(path)))
			return;
		r = &e->rsvs[e->nrsvs];
		r->raw = it;
		r->id = req_str(L, it, "id", path);
		r->name = str_at(L, it, "name", path);
		r->location = str_at(L, it, "location", path);
		if (L->failed)
			return;
		idmap_put(&e->rsv_ix, r->id, e->nrsvs);
		e->nrsvs++;
	}
}

void estate_rsv_prefix(const char *id, char *out, size_t n)
{
	const char *key = "/providers/Microsoft.RecoveryServices/vaults/";
	const char *p = id;

	out[0] = '\0';
	for (; p && (p = strchr(p, '/')) != NULL; p++) {   /* key starts with '/': try only there */
		if (kv_startswith_ci(p, key)) {
			const char *name = p + strlen(key);
			size_t len = (size_t)(name - id) + strcspn(name, "/");

			if (len < n) {
				memcpy(out, id, len);
				out[len] = '\0';
			}
			return;
		}
	}
}

/*
 * The Recovery Services vault prefix of a protected item's id: the vault's
 * own string when the snapshot holds it under the same bytes (the usual
 * case: no copy), else a pooled copy; "" when the id names no vault.  The
 * vaults are loaded before the items: a parse-ahead worker only reads rsv_ix.
 */
static const char *item_rsv(struct loader *L, const char *id)
{
	char rsv[512];
	const struct rs_vault *v;

	estate_rsv_prefix(id, rsv, sizeof(rsv));
	if (!rsv[0])
		return "";
	v = estate_rs_vault(L->e, rsv);
	if (v && v->id && strcmp(v->id, rsv) == 0)
		return v->id;
	return pool_str(L->side ? L->side : &estate_mem(L->e)->side[0], rsv);
}

/* Protected item element it (element i of backupProtectedItems) checked and read into rec. */
static bool read_item(struct loader *L, cJSON *it, size_t i, void *rec)
{
	struct protected_item *r = rec;
	char path[128], p2[160];
	const cJSON *props;

	memset(r, 0, sizeof(*r));
	if (!list_item(L, it, "backupProtectedItems", (int)i, path, sizeof(path)))
		return false;
	r->raw = kept(L, it);
	r->id = req_str(L, it, "id", path);
	props = obj_at(L, it, "properties", path);
	path_cat(p2, sizeof(p2), path, ".properties");
	if (props) {
		r->vm_id = vm_ref_at(L, props, "virtualMachineId", p2);
		if (!r->vm_id)
			r->vm_id = vm_ref_at(L, props, "sourceResourceId", p2);
		r->protection_state = str_at(L, props, "protectionState", p2);
		r->last_backup_status = str_at(L, props, "lastBackupStatus", p2);
		r->health_status = str_at(L, props, "healthStatus", p2);
		r->last_backup_time = str_at(L, props, "lastBackupTime", p2);
		r->policy_id = str_at(L, props, "policyId", p2);
	}
	if (L->failed)
		return false;
	r->rsv_id = item_rsv(L, r->id);
	return true;
}

static const struct prep ITEM_PREP = {sizeof(struct protected_item), read_item, NULL};

static void load_protected_items(struct loader *L, struct estate *e, struct items *arr)
{
	(void)L;
	e->items = kv_calloc(items_count(arr), sizeof(*e->items));
	arr->prep = &ITEM_PREP;
	for (const cJSON *it = items_first(arr); it; it = items_next(arr))
		e->items[e->nitems++] = *(const struct protected_item *)arr->rec;
}

static bool read_job(struct loader *L, cJSON *it, size_t i, void *rec)
{
	if (evidence_read_job(L->name, it, i, rec, L->err))
		return true;
	L->failed = true;
	return false;
}

static const struct prep JOB_PREP = {sizeof(struct evidence_job_read), read_job, NULL};

/* Each backup job goes to evidence.c, which keeps what its facts need and no JSON. */
static void load_jobs(struct loader *L, struct estate *e, struct items *arr)
{
	(void)L;
	arr->prep = &JOB_PREP;
	for (const cJSON *it = items_first(arr); it; it = items_next(arr))
		evidence_keep_job(e, arr->rec);
}

/* Each Activity Log event goes to evidence.c (add), which keeps what its facts need and no JSON. */
static void load_evidence_list(struct loader *L, struct estate *e, struct items *arr,
                               bool (*add)(struct estate *, const cJSON *, size_t, struct kv_err *))
{
	cJSON *it;
	size_t i = 0;

	ITEMS_FOR_EACH(it, arr)
		if (!add(e, it, i++, L->err)) {
			L->failed = true;
			return;
		}
}

/* A Unix time in seconds (Key Vault's attribute dates); 0 when absent or null. */
static long long time_at(struct loader *L, const cJSON *obj, const char *key, const char *path)
{
	const cJSON *j = fastjson_get(obj, key);
	char p[256];

	if (!j || cJSON_IsNull(j))
		return 0;
	if (!cJSON_IsNumber(j)) {
		child_path(p, sizeof(p), path, key);
		fail(L, p, "a number (Unix seconds)", j);
		return 0;
	}
	return (long long)j->valuedouble;
}

/* The "attributes" object of a secret or key (absent enabled means true). */
static void kv_attributes_at(struct loader *L, const cJSON *it, const char *path, struct kv_attributes *a)
{
	const cJSON *at = obj_at(L, it, "attributes", path);
	char p[200];

	a->enabled = true;
	if (!at)
		return;
	path_cat(p, sizeof(p), path, ".attributes");
	a->enabled = bool_at(L, at, "enabled", p, true);
	a->exp = time_at(L, at, "exp", p);
	a->nbf = time_at(L, at, "nbf", p);
	a->recovery_level = str_at(L, at, "recoveryLevel", p);
}

/* "secrets": SecretItems (id + attributes, never a value). */
static void load_secrets(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->secrets = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->secrets));
	cJSON_ArrayForEach(it, arr) {
		char path[128];
		struct secret_item *s;

		if (!list_item(L, it, "secrets", i++, path, sizeof(path)))
			return;
		s = &e->secrets[e->nsecrets];
		s->raw = it;
		s->id = req_str(L, it, "id", path);
		s->managed = bool_at(L, it, "managed", path, false);
		kv_attributes_at(L, it, path, &s->attr);
		if (L->failed)
			return;
		idmap_put(&e->secret_ix, s->id, e->nsecrets);
		e->nsecrets++;
	}
}

/* "deletedSecrets" (DeletedSecretItem: id) and "deletedKeys" (DeletedKeyBundle: key.kid). */
static void load_deleted(struct loader *L, const cJSON *arr, const char *list, struct deleted_item **out,
                         size_t *n)
{
	cJSON *it;
	int i = 0;

	*out = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(**out));
	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[160];
		struct deleted_item *d;
		const cJSON *key;

		if (!list_item(L, it, list, i++, path, sizeof(path)))
			return;
		d = &(*out)[*n];
		d->raw = it;
		key = obj_at(L, it, "key", path);
		path_cat(p2, sizeof(p2), path, ".key");
		d->id = key ? str_at(L, key, "kid", p2) : str_at(L, it, "id", path);
		d->kty = key ? str_at(L, key, "kty", p2) : NULL;
		d->key_ops = key ? str_arr_at(L, key, "key_ops", p2) : NULL;
		d->recovery_id = str_at(L, it, "recoveryId", path);
		d->deleted_date = time_at(L, it, "deletedDate", path);
		d->scheduled_purge_date = time_at(L, it, "scheduledPurgeDate", path);
		d->managed = bool_at(L, it, "managed", path, false);
		kv_attributes_at(L, it, path, &d->attr);
		if (!L->failed && !d->id)
			fail(L, path, key ? "a deleted key needs \"key.kid\"" : "a deleted secret needs \"id\"", NULL);
		if (L->failed)
			return;
		(*n)++;
	}
}

static void load_keys(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->keys = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->keys));
	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[160];
		struct key_bundle *k;
		const cJSON *key;

		if (!list_item(L, it, "keys", i++, path, sizeof(path)))
			return;
		k = &e->keys[e->nkeys];
		k->raw = it;
		key = obj_at(L, it, "key", path);
		path_cat(p2, sizeof(p2), path, ".key");
		k->kid = key ? str_at(L, key, "kid", p2) : str_at(L, it, "kid", path);
		k->managed = bool_at(L, it, "managed", path, false);
		k->kty = key ? str_at(L, key, "kty", p2) : NULL;
		k->key_ops = key ? str_arr_at(L, key, "key_ops", p2) : NULL;
		kv_attributes_at(L, it, path, &k->attr);
		if (!L->failed && !k->kid)
			fail(L, path, "a key bundle needs \"key.kid\"", NULL);
		if (L->failed)
			return;
		idmap_put(&e->key_ix, k->kid, e->nkeys);
		e->nkeys++;
	}
}

static struct tenant *tenant_get(struct estate *e, const char *tid)
{
	size_t ix;

	if (idmap_get(&e->tenant_ix, tid, &ix))
		return &e->tenants[ix];
	e->tenants = kv_realloc(e->tenants, (e->ntenants + 1) * sizeof(*e->tenants));
	memset(&e->tenants[e->ntenants], 0, sizeof(e->tenants[0]));
	e->tenants[e->ntenants].tenant_id = kv_strdup(tid);
	idmap_put(&e->tenant_ix, tid, e->ntenants);
	return &e->tenants[e->ntenants++];
}

static void load_tenants(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	cJSON_ArrayForEach(it, arr) {
		char path[128], p2[200];
		const char *tid, *ut, *st, *oid = NULL;
		const cJSON *bms;
		struct tenant *t;

		if (!list_item(L, it, "tenants", i++, path, sizeof(path)))
			return;
		tid = req_str(L, it, "tenantId", path);
		ut = str_at(L, it, "callerUserType", path);
		bms = obj_at(L, it, "backupManagementService", path);
		path_cat(p2, sizeof(p2), path, ".backupManagementService");
		st = bms ? str_at(L, bms, "status", p2) : NULL;
		if (bms)
			oid = str_at(L, bms, "objectId", p2);
		if (L->failed)
			return;
		if (st && !kv_streq_ci(st, "found") && !kv_streq_ci(st, "absent") && !kv_streq_ci(st, "unknown")) {
			char b[64];

			kv_err_set(L->err, "%s: %s.status: expected \"found\", \"absent\" or \"unknown\", got \"%s\"",
			           L->name, p2, printable(st, b, sizeof(b)));
			L->failed = true;
			return;
		}
		if (kv_streq_ci(st, "found") && kv_empty(oid)) {
			kv_err_set(L->err, "%s: %s.objectId: status \"found\" needs the object ID", L->name, p2);
			L->failed = true;
			return;
		}
		t = tenant_get(e, tid);
		t->caller_type = parse_user_type(ut);
		t->backup_sp = kv_streq_ci(st, "found") ? SP_FOUND : kv_streq_ci(st, "absent") ? SP_ABSENT : SP_UNKNOWN;
		if (t->backup_sp == SP_FOUND) {
			free(t->backup_sp_object_id);
			t->backup_sp_object_id = kv_strdup(oid);
		}
	}
}

static void load_errors(struct loader *L, struct estate *e, const cJSON *arr)
{
	cJSON *it;
	int i = 0;

	e->errors = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*e->errors));
	cJSON_ArrayForEach(it, arr) {
		char path[128];
		struct estate_error *r;
		const cJSON *st;

		if (!list_item(L, it, "errors", i++, path, sizeof(path)))
			return;
		r = &e->errors[e->nerrors];
		r->scope = req_str(L, it, "scope", path);
		r->code = str_at(L, it, "code", path);
		r->message = str_at(L, it, "message", path);
		r->tenant_id = str_at(L, it, "tenantId", path);
		st = fastjson_get(it, "status");
		if (st && !cJSON_IsNull(st) && !cJSON_IsNumber(st)) {
			char p2[160];

			path_cat(p2, sizeof(p2), path, ".status");
			fail(L, p2, "a number", st);
		}
		r->status = cJSON_IsNumber(st) ? st->valueint : 0;
		if (L->failed)
			return;
		e->nerrors++;
	}
}

static void load_caller(struct loader *L, struct estate *e, const cJSON *c)
{
	e->caller.present = true;
	e->caller.object_id = str_at(L, c, "objectId", "$.caller");
	e->caller.tenant_id = str_at(L, c, "tenantId", "$.caller");
	e->caller.type = str_at(L, c, "type", "$.caller");
	e->caller.user_type = str_at(L, c, "userType", "$.caller");
	e->caller.home_tenant_id = str_at(L, c, "homeTenantId", "$.caller");
	e->caller.display_name = str_at(L, c, "displayName", "$.caller");
}

/* --backup-sp-object-id TENANT=OID overrides what the snapshot says. */
static bool apply_overrides(struct estate *e, const struct estate_opts *o, struct kv_err *err)
{
	for (size_t i = 0; o && i < o->nsp_overrides; i++) {
		const char *s = o->sp_overrides[i], *eq = strchr(s, '=');
		char *tid;
		struct tenant *t;

		if (!eq || eq == s || eq[1] == '\0') {
			kv_err_set(err, "--backup-sp-object-id '%s': expected TENANT=OBJECT_ID", s);
			return false;
		}
		tid = kv_strndup(s, (size_t)(eq - s));
		t = tenant_get(e, tid);
		free(tid);
		t->backup_sp = SP_FOUND;
		free(t->backup_sp_object_id);
		t->backup_sp_object_id = kv_strdup(eq + 1);
	}
	return true;
}

/* True when the text ends inside a string or with brackets still open: a cut-off file. */
static bool looks_truncated(const char *data, size_t len)
{
	size_t depth = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		char c = data[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		}
	}
	return in_str || depth > 0;
}

/* 1-based line and column of a byte offset, for JSON syntax errors. */
static void line_col(const char *data, size_t off, size_t *line, size_t *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (data[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

/* The whole text as one tree; NULL with err set (byte, line and column) when it is not JSON. */
static cJSON *parse_whole(const char *data, size_t len, const char *name, struct kv_err *err)
{
	const char *end = NULL;
	cJSON *doc;

	if (json_skip_space(data, 0, len) == len) {
		kv_err_set(err, "%s: the file is empty: expected a kvaudit.estate JSON document", name);
		return NULL;
	}
	doc = cJSON_ParseWithLengthOpts(data, len, &end, false);
	if (!doc) {
		size_t off = end && end >= data ? (size_t)(end - data) : 0, line, col;

		if (off > len)
			off = len;
		line_col(data, off, &line, &col);
		if (looks_truncated(data, len))
			kv_err_set(err, "%s: invalid JSON: unexpected end of data at byte %zu (line %zu): the file looks truncated",
			           name, off, line);
		else
			kv_err_set(err, "%s: invalid JSON at byte %zu (line %zu, column %zu)", name, off, line, col);
		return NULL;
	}
	if (end) {
		size_t at = json_skip_space(data, (size_t)(end - data), len);

		if (at < len) {
			kv_err_set(err, "%s: invalid JSON: unexpected data after the document at byte %zu", name, at);
			cJSON_Delete(doc);
			return NULL;
		}
	}
	return doc;
}

/*
 * ---- ADE detection of a lean load ----
 *
 * ade.c reads a VM's raw JSON, its extensions (embedded and listed apart in
 * vmExtensions) and its managed disks' encryptionSettingsCollection, but a
 * lean load frees each element once loaded.  So it reads vaults and disks
 * before VMs: of each disk it keeps what ade.c reads (lean_disk_ade: a few
 * strings, vault IDs borrowed from the vaults) and who manages it, and runs
 * ADE detection of each VM while the VM's element is parsed (lean_ade), with
 * the joins load_disks and join_vm_extensions make for a load that is not
 * lean.  No element is parsed twice.
 */

/* Adds item to id's group; borrow: id stays valid and unchanged until chains_free. */
static void chains_add(struct chains *c, const char *id, size_t item, bool borrow)
{
	size_t g;

	if (item >= c->cap) {
		size_t n = item < 1024 ? 1024 : 2 * item;

		c->next = kv_realloc(c->next, n * sizeof(*c->next));
		c->cap = n;
	}
	c->next[item] = SIZE_MAX;
	if (!idmap_get_or_put(&c->ix, id, c->ngrp, borrow, &g)) {   /* id has a group: g */
		c->next[c->grp[g][1]] = item;
		c->grp[g][1] = item;
		return;
	}
	if (c->ngrp == c->capgrp) {
		c->capgrp = c->capgrp ? 2 * c->capgrp : 1024;
		c->grp = kv_realloc(c->grp, c->capgrp * sizeof(*c->grp));
	}
	c->grp[c->ngrp][0] = c->grp[c->ngrp][1] = item;
	c->ngrp++;
}

/* The first item of id's group, or SIZE_MAX; c->next[item] walks it. */
static size_t chains_first(const struct chains *c, const char *id)
{
	size_t g;

	return id && c->ngrp && idmap_get(&c->ix, id, &g) ? c->grp[g][0] : SIZE_MAX;
}

static void chains_free(struct chains *c)
{
	idmap_release(&c->ix);
	free(c->grp);
	free(c->next);
	memset(c, 0, sizeof(*c));
}

static const cJSON *child(const cJSON *o, const char *key)
{
	return fastjson_get(o, key);
}

/* The extensions vmExtensions (in e->doc) lists, by the VM join_vm_extensions joins them to. */
static void find_apart(struct estate_mem *m, const cJSON *doc)
{
	const cJSON *x;
	size_t n = 0;

	m->apart_known = true;
	cJSON_ArrayForEach(x, child(doc, "vmExtensions")) {
		const cJSON *id = child(x, "id");
		char *vmid = cJSON_IsString(id) ? extension_vm_id(id->valuestring) : NULL;

		if (vmid) {
			m->apart_x = kv_realloc(m->apart_x, (n + 1) * sizeof(*m->apart_x));
			m->apart_x[n] = x;
			chains_add(&m->apart, vmid, n++, false);
		}
		free(vmid);
	}
}

/* A copy of s that lives until the load is done (NULL stays NULL). */
static const char *keep_str(struct lean_side *m, const char *s)
{
	size_t n = s ? strlen(s) + 1 : 0;

	return s ? memcpy(fastjson_alloc(&m->keep, n), s, n) : NULL;
}

/* A vault ID: the vault's own string when the estate holds it under the same bytes (ade.c borrows it then). */
static const char *keep_vault(const struct loader *L, const char *id)
{
	const struct vault *v = id ? estate_vault(L->e, id) : NULL;

	return v && v->id && strcmp(v->id, id) == 0 ? v->id : keep_str(L->side, id);
}

static void keep_keys(void *ctx, const struct ade_keys *k)
{
	const struct loader *L = ctx;
	struct lean_side *m = L->side;

	if (m->nkbuf == m->capkbuf) {
		m->capkbuf = m->capkbuf ? 2 * m->capkbuf : 16;
		m->kbuf = kv_realloc(m->kbuf, m->capkbuf * sizeof(*m->kbuf));
	}
	m->kbuf[m->nkbuf++] = (struct ade_keys){keep_str(m, k->secret_url), keep_vault(L, k->bek_vault),
	                                        keep_str(m, k->key_url), keep_vault(L, k->kek_vault)};
}

/* Keeps in d what ADE detection reads of disk element it (in L's side: the thread's that reads it). */
static void lean_disk_ade(struct loader *L, const cJSON *it, struct ade_disk *d)
{
	struct lean_side *m = L->side;

	m->nkbuf = 0;
	d->enabled = ade_disk_read(it, &d->legacy_aad, keep_keys, L);
	if (m->nkbuf) {
		struct ade_keys *k = fastjson_alloc(&m->keep, m->nkbuf * sizeof(*k));

		memcpy(k, m->kbuf, m->nkbuf * sizeof(*k));
		d->keys = k;
		d->nkeys = m->nkbuf;
	}
}

/* A VM's ID; in a lean load, the string of a disk it manages when they are the same bytes (one copy, not two). */
static const char *lean_vm_id(struct loader *L, const cJSON *it, const char *path)
{
	const cJSON *j = child(it, "id");
	size_t k;

	if (L->copy && L->e->mem && cJSON_IsString(j) &&
	    (k = chains_first(&L->e->mem->managed, j->valuestring)) != SIZE_MAX &&
	    strcmp(L->e->disks[k].managed_by, j->valuestring) == 0)
		return L->e->disks[k].managed_by;
	return req_str(L, it, "id", path);
}

/*
 * ADE detection of VM vm, whose element it is being loaded: its disks
 * attached as load_disks attaches them, its extensions as ade_detect sees
 * them in a load that is not lean (embedded, then those join_vm_extensions
 * adds).  Afterwards vm->extensions is empty again: join_vm_extensions adds
 * the ones listed apart, as e->doc owns them.
 */
static void lean_ade(struct estate *e, struct vm *vm, const cJSON *it)
{
	const struct estate_mem *m = e->mem;   /* find_apart ran before the VMs were read (load_vms) */
	cJSON *x;
	size_t k;

	for (k = chains_first(&m->managed, vm->id); k != SIZE_MAX; k = m->managed.next[k]) {
		vm->disks = kv_realloc(vm->disks, (vm->ndisks + 1) * sizeof(*vm->disks));
		vm->disks[vm->ndisks++] = k;
	}
	cJSON_ArrayForEach(x, child(it, "resources"))
		add_extension(vm, x);
	for (k = chains_first(&m->apart, vm->id); k != SIZE_MAX; k = m->apart.next[k])
		if (!has_extension(vm, child(m->apart_x[k], "id")->valuestring))   /* find_apart: a string */
			add_extension(vm, (cJSON *)(uintptr_t)m->apart_x[k]);
	vm->raw = (cJSON *)(uintptr_t)it;
	ade_detect(e, vm);
	vm->raw = NULL;
	free(vm->extensions);
	vm->extensions = NULL;
	vm->nextensions = 0;
}

static void lean_kept_free(struct estate_mem *m)
{
	free(m->disk_ade);
	free(m->apart_x);
	for (size_t k = 0; k < 2; k++) {
		free(m->side[k].kbuf);
		fastjson_arena_free(&m->side[k].keep);
		m->side[k].kbuf = NULL;
		m->side[k].nkbuf = m->side[k].capkbuf = 0;
	}
	chains_free(&m->managed);
	chains_free(&m->apart);
	m->disk_ade = NULL;
	m->apart_x = NULL;
	m->apart_known = false;
}

const struct ade_disk *estate_disk_ade(const struct estate *e, const struct disk *d)
{
	return e->mem && e->mem->disk_ade && d >= e->disks && d < e->disks + e->ndisks ? &e->mem->disk_ade[d - e->disks]
	                                                                              : NULL;
}

const cJSON *estate_disk_raw(const struct estate *e, const struct disk *d)
{
	(void)e;
	return d->raw;
}

static void estate_mem_free(struct estate_mem *m)
{
	if (!m)
		return;
	for (size_t k = 0; k < 2; k++)
		fastjson_arena_free(&m->side[k].strs);
	fastjson_arena_free(&m->doc);
	lean_kept_free(m);
	free(m);
}

/*
 * Loads the snapshot e->doc into e (named e->path in messages).  With S (a
 * lean load of the text src_scan split), false on any failure whatever err
 * says: the caller loads again without S.  The caller frees e on failure.
 */
static bool load_tree(struct estate *e, const struct estate_opts *opts, struct kv_err *err, struct src *S)
{
	const char *name = e->path;
	struct loader L = {name, err, false, e, false, S ? &estate_mem(e)->side[0] : NULL};
	struct items items = {0}, *s;
	const cJSON *kind, *ver, *a, *c;
	char buf[128];

	if (!cJSON_IsObject(e->doc)) {
		fail(&L, "$", "an object", e->doc);
		goto fail;
	}
	kind = fastjson_get(e->doc, "kind");
	if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "kvaudit.estate") != 0) {
		if (cJSON_IsString(kind))
			kv_err_set(err, "%s: $.kind: expected \"kvaudit.estate\", got \"%s\": not a kvaudit estate snapshot",
			           name, printable(kind->valuestring, buf, sizeof(buf)));
		else
			kv_err_set(err, "%s: $.kind: expected \"kvaudit.estate\", got %s: not a kvaudit estate snapshot",
			           name, json_type_name(kind));
		goto fail;
	}
	ver = fastjson_get(e->doc, "version");
	if (!cJSON_IsNumber(ver) || ver->valuedouble != 1.0) {
		if (cJSON_IsNumber(ver))
			kv_err_set(err, "%s: $.version: unsupported estate version %g (this kvaudit reads version 1)",
			           name, ver->valuedouble);
		else
			kv_err_set(err, "%s: $.version: expected 1, got %s", name, json_type_name(ver));
		goto fail;
	}
	e->collected_at = str_at(&L, e->doc, "collectedAt", "$");
	e->cloud = str_at(&L, e->doc, "cloud", "$");
	if ((c = obj_at(&L, e->doc, "caller", "$")))
		load_caller(&L, e, c);

	/* VMs first: extensions and disks join to them (a lean load: vaults and disks first, see lean_ade). */
	if (S && (a = top_list(&L, e->doc, "vaults", &e->present.vaults)))
		load_vaults(&L, e, a);
	if (S && !L.failed && (s = top_items(&L, S, &items, e->doc, "disks", &e->present.disks)))
		load_disks(&L, e, s);
	if (!L.failed && (s = top_items(&L, S, &items, e->doc, "virtualMachines", &e->present.vms)))
		load_vms(&L, e, s);
	if (!L.failed && (a = top_list(&L, e->doc, "vmExtensions", &(bool){false})))
		join_vm_extensions(&L, e, a);
	if (!S && !L.failed && (s = top_items(&L, S, &items, e->doc, "disks", &e->present.disks)))
		load_disks(&L, e, s);
	if (!S && !L.failed && (a = top_list(&L, e->doc, "vaults", &e->present.vaults)))
		load_vaults(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "subscriptions", &e->present.subscriptions)))
		load_subscriptions(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "roleAssignments", &e->present.role_assignments)))
		load_role_assignments(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "roleDefinitions", &e->present.role_definitions)))
		load_role_definitions(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "recoveryServicesVaults", &e->present.rs_vaults)))
		load_rs_vaults(&L, e, a);
	if (!L.failed && (s = top_items(&L, S, &items, e->doc, "backupProtectedItems", &e->present.protected_items)))
		load_protected_items(&L, e, s);
	if (!L.failed && (a = top_list(&L, e->doc, "keys", &e->present.keys)))
		load_keys(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "secrets", &e->present.secrets)))
		load_secrets(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "deletedSecrets", &(bool){false})))
		load_deleted(&L, a, "deletedSecrets", &e->deleted_secrets, &e->ndeleted_secrets);
	if (!L.failed && (a = top_list(&L, e->doc, "deletedKeys", &(bool){false})))
		load_deleted(&L, a, "deletedKeys", &e->deleted_keys, &e->ndeleted_keys);
	if (!L.failed && (a = top_list(&L, e->doc, "tenants", &e->present.tenants)))
		load_tenants(&L, e, a);
	if (!L.failed && (a = top_list(&L, e->doc, "errors", &(bool){false})))
		load_errors(&L, e, a);
	e->present.caller = e->caller.present;
	/* Backup jobs and the Activity Log (evidence.c): each element read and, in a lean load, freed. */
	if (!L.failed && !evidence_begin(e, err))
		L.failed = true;
	if (!L.failed && (s = top_items(&L, S, &items, e->doc, "backupJobs", &e->present.backup_jobs)))
		load_jobs(&L, e, s);
	if (!L.failed && (s = top_items(&L, S, &items, e->doc, "activityLog", &e->present.activity_log)))
		load_evidence_list(&L, e, s, evidence_add_event);
	if (!L.failed && !evidence_load(e, name, err))
		L.failed = true;
	if (L.failed)
		goto fail;
	if (!apply_overrides(e, opts, err))
		goto fail;
	e->as_of = opts && opts->as_of ? opts->as_of : (long long)time(NULL);
	e->expiry_warning = opts && opts->expiry_warning_set ? opts->expiry_warning : ESTATE_EXPIRY_WARNING_DEFAULT;
	items_done(&items);
	if (S)
		lean_kept_free(estate_mem(e));
	else
		for (size_t i = 0; i < e->nvms; i++)
			ade_detect(e, &e->vms[i]);
	return true;
fail:
	items_done(&items);
	return false;
}

/* Parses and loads a snapshot (lean with S: see load_tree); NULL with err set. */
static struct estate *load_text(const char *data, size_t len, const char *name,
                                const struct estate_opts *opts, struct kv_err *err, struct src *S)
{
	struct estate *e = kv_calloc(1, sizeof(*e));

	e->path = kv_strdup(name);
	e->doc = S ? src_doc(S, &estate_mem(e)->doc) : parse_whole(data, len, name, err);
	if (e->doc && load_tree(e, opts, err, S))
		return e;
	estate_free(e);
	return NULL;
}

void estate_test_io(size_t read_size, void (*hook)(const char *path))
{
	src_read = read_size ? read_size : SRC_READ;
	after_scan = hook;
}

/* A lean load of S (src_open'd; released here); NULL when it needs the whole tree or a read failed (S->ioerr). */
static struct estate *load_lean(struct src *S, const char *name, const struct estate_opts *opts,
                                struct kv_err *err)
{
	struct estate *e = NULL;
	bool scanned;

	ra_start(S);
	scanned = src_scan(S);
	ra_stop(S);
	if (scanned) {
		if (after_scan && S->fd >= 0)
			after_scan(name);
		e = load_text(NULL, 0, name, opts, err, S);
	}
	src_release(S);
	return e;
}

struct estate *estate_parse(const char *data, size_t len, const char *name,
                            const struct estate_opts *opts, struct kv_err *err)
{
	struct estate *e = NULL;
	struct src S;

	if (opts && opts->lean) {
		src_open(&S, data, len, -1);
		e = load_lean(&S, name, opts, err);
	}
	return e ? e : load_text(data, len, name, opts, err, NULL);
}

struct estate *estate_from_doc(cJSON *doc, const char *name, const struct estate_opts *opts, struct kv_err *err)
{
	struct estate *e = kv_calloc(1, sizeof(*e));

	/* Not lean: the tree is whole already, its elements are the raw JSON the loaders keep. */
	e->path = kv_strdup(name);
	e->doc = doc;
	if (load_tree(e, opts, err, NULL))
		return e;
	e->doc = NULL;   /* still the caller's */
	estate_free(e);
	return NULL;
}

/* Whether the file a lean load read changed meanwhile (written or truncated in place). */
static bool file_changed(const struct stat *before, const struct stat *after)
{
	return before->st_size != after->st_size || before->st_mtim.tv_sec != after->st_mtim.tv_sec ||
	       before->st_mtim.tv_nsec != after->st_mtim.tv_nsec;
}

/*
 * A lean load of a regular file, read with pread into buffers that are
 * reused (never mapped: on a VM each first touch of a mapped page costs
 * more than reading it, and the elements' pages were touched twice).
 * *tried is false when the file could not be opened (kv_read_file then
 * says why).  *broke when a read failed or the file changed while it was
 * read: err says so and no whole-tree load may hide it.
 */
static struct estate *load_file(const char *path, const struct estate_opts *opts, struct kv_err *err,
                                bool *tried, bool *broke)
{
	struct kv_err quiet;   /* kv_read_file gives the message */
	struct stat before, after;
	struct estate *e;
	struct src S;
	size_t len;
	int fd = kv_open_file(path, ESTATE_MAX_BYTES, &len, &quiet);

	*tried = *broke = false;
	if (fd < 0)
		return NULL;
	if (len == 0 || fstat(fd, &before) != 0) {
		close(fd);
		return NULL;
	}
	*tried = true;
	src_open(&S, NULL, len, fd);
	e = load_lean(&S, path, opts, err);
	if (!S.ioerr && fstat(fd, &after) != 0)
		S.ioerr = errno;
	else if (!S.ioerr && file_changed(&before, &after))
		S.ioerr = -1;
	close(fd);
	if (!S.ioerr)
		return e;
	estate_free(e);
	*broke = true;
	kv_err_set(err, "cannot read '%s': %s", path,
	           S.ioerr > 0 ? strerror(S.ioerr) : "the file changed while it was read");
	return NULL;
}

struct estate *estate_load(const char *path, const struct estate_opts *opts, struct kv_err *err)
{
	size_t len = 0;
	char *data;
	struct estate *e;
	bool tried = false, broke = false;

	if (opts && opts->lean && ((e = load_file(path, opts, err, &tried, &broke)) || broke))
		return e;
	if (!(data = kv_read_file(path, ESTATE_MAX_BYTES, &len, err)))
		return NULL;
	/* A lean load that failed: the whole tree gives the message. */
	e = tried ? load_text(data, len, path, opts, err, NULL) : estate_parse(data, len, path, opts, err);
	free(data);
	return e;
}

void estate_free(struct estate *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->nvms; i++)
		vm_release(&e->vms[i]);
	free(e->vms);
	free(e->disks);
	for (size_t i = 0; i < e->nvaults; i++)
		free(e->vaults[i].policies);
	free(e->vaults);
	free(e->subs);
	free(e->ras);
	for (size_t i = 0; i < e->nrds; i++) {
		cJSON_Delete(e->rds[i].data_actions);
		cJSON_Delete(e->rds[i].not_data_actions);
	}
	free(e->rds);
	free(e->rsvs);
	free(e->items);
	free(e->keys);
	free(e->secrets);
	free(e->deleted_secrets);
	free(e->deleted_keys);
	for (size_t i = 0; i < e->ntenants; i++) {
		free(e->tenants[i].tenant_id);
		free(e->tenants[i].backup_sp_object_id);
	}
	free(e->tenants);
	free(e->errors);
	evidence_free(e->evidence);
	idmap_release(&e->vm_ix);
	idmap_release(&e->disk_ix);
	idmap_release(&e->vault_ix);
	idmap_release(&e->vault_host_ix);
	idmap_release(&e->sub_ix);
	idmap_release(&e->rsv_ix);
	idmap_release(&e->key_ix);
	idmap_release(&e->secret_ix);
	idmap_release(&e->tenant_ix);
	idmap_release(&e->rd_ix);
	if (!e->mem || !e->mem->doc.blocks)   /* a lean load's e->doc is in that arena */
		cJSON_Delete(e->doc);
	estate_mem_free(e->mem);
	free(e->path);
	free(e);
}

#define LOOKUP(fn, type, arr, ix)                                      \
	type *fn(const struct estate *e, const char *id)               \
	{                                                              \
		size_t i;                                              \
		return idmap_get(&e->ix, id, &i) ? &e->arr[i] : NULL;  \
	}

LOOKUP(estate_vm, struct vm, vms, vm_ix)
LOOKUP(estate_vault, struct vault, vaults, vault_ix)
LOOKUP(estate_disk, struct disk, disks, disk_ix)
LOOKUP(estate_subscription, struct subscription, subs, sub_ix)
LOOKUP(estate_rs_vault, struct rs_vault, rsvs, rsv_ix)
LOOKUP(estate_key, struct key_bundle, keys, key_ix)
LOOKUP(estate_secret, struct secret_item, secrets, secret_ix)
LOOKUP(estate_tenant, struct tenant, tenants, tenant_ix)

struct role_definition *estate_role_definition(const struct estate *e, const char *id)
{
	size_t i;

	return idmap_get(&e->rd_ix, guid_of(id), &i) ? &e->rds[i] : NULL;
}

struct vault *estate_vault_by_url(const struct estate *e, const char *url)
{
	char host[256];
	size_t i;

	if (!url_host(url, host, sizeof(host)))
		return NULL;
	return idmap_get(&e->vault_host_ix, host, &i) ? &e->vaults[i] : NULL;
}

/*
 * A failed list ("/subscriptions/s[/resourceGroups/rg]/providers/<ns>/<type>")
 * explains every resource of that type below its scope.
 */
static bool list_scope_contains(const char *scope, const char *id)
{
	const char *prov = NULL, *p = scope, *type, *slash;
	char parent[1024], needle[300];
	size_t n;

	while ((p = strchr(p, '/')) != NULL) {
		if (kv_startswith_ci(p, "/providers/"))
			prov = p;
		p++;
	}
	if (!prov)
		return false;
	type = prov + strlen("/providers/");
	slash = strchr(type, '/');
	/* Exactly <namespace>/<type>: a collection, not a resource. */
	if (!slash || slash == type || slash[1] == '\0' || strchr(slash + 1, '/'))
		return false;
	n = (size_t)(prov - scope);
	if (n == 0 || n >= sizeof(parent) || strlen(prov) + 2 > sizeof(needle))
		return false;
	memcpy(parent, scope, n);
	parent[n] = '\0';
	snprintf(needle, sizeof(needle), "%s/", prov);
	if (!armid_scope_contains(parent, id))
		return false;
	for (p = id + n; *p; p++)
		if (kv_startswith_ci(p, needle))
			return true;
	return false;
}

/*
 * An error's scope as an ARM path: a list URL without its host and query
 * (other scopes as they are), no trailing '/'.  False when it does not fit.
 */
static bool error_path(const char *scope, char *path, size_t size)
{
	size_t n;

	if (!scope)
		return false;
	if (kv_startswith_ci(scope, "https://")) {
		scope = strchr(scope + 8, '/');
		if (!scope)
			return false;
	}
	n = strcspn(scope, "?");
	while (n > 1 && scope[n - 1] == '/')
		n--;
	if (n >= size)
		return false;
	memcpy(path, scope, n);
	path[n] = '\0';
	return true;
}

const struct estate_error *estate_error_for(const struct estate *e, const char *id)
{
	for (size_t i = 0; i < e->nerrors; i++) {
		const char *scope = e->errors[i].scope;
		char path[1024];

		if (!scope)
			continue;
		/* A scope may be a list URL: compare its path without host and query. */
		if (kv_startswith_ci(scope, "https://")) {
			if (!error_path(scope, path, sizeof(path)))
				continue;
			scope = path;
		}
		if (armid_scope_contains(scope, id) || list_scope_contains(scope, id))
			return &e->errors[i];
	}
	return NULL;
}

const struct estate_error *estate_list_failed(const struct estate *e, const char *scope, const char *kind)
{
	char suffix[256], sub[128] = "", guid[64];
	size_t ls;

	if (!scope || !kind || e->nerrors == 0)
		return NULL;
	snprintf(suffix, sizeof(suffix), "%s%s", strchr(kind, '/') ? "/providers/" : "/", kind);
	ls = strlen(suffix);
	if (armid_segment(scope, "subscriptions", guid, sizeof(guid)))
		snprintf(sub, sizeof(sub), "/subscriptions/%s", guid);
	for (size_t i = 0; i < e->nerrors; i++) {
		char path[1024];
		size_t lp;

		if (!error_path(e->errors[i].scope, path, sizeof(path)))
			continue;
		/* The whole subscription could not be read (or its Resource Graph batch, before list scopes). */
		if (sub[0] && kv_streq_ci(path, sub))
			return &e->errors[i];
		lp = strlen(path);
		if (lp <= ls || strcasecmp(path + lp - ls, suffix) != 0)
			continue;
		path[lp - ls] = '\0';   /* the list's parent scope */
		if (armid_scope_contains(path, scope) || armid_scope_contains(scope, path))
			return &e->errors[i];
	}
	return NULL;
}

const struct estate_error *estate_subscriptions_failed(const struct estate *e, const char *tenant_id)
{
	for (size_t i = 0; i < e->nerrors; i++) {
		char path[64];

		if (error_path(e->errors[i].scope, path, sizeof(path)) && kv_streq_ci(path, "/subscriptions") &&
		    (!e->errors[i].tenant_id || kv_streq_ci(e->errors[i].tenant_id, tenant_id)))
			return &e->errors[i];
	}
	return NULL;
}

const struct estate_error *estate_error_within(const struct estate *e, const char *id)
{
	for (size_t i = 0; i < e->nerrors; i++)
		if (e->errors[i].scope && armid_scope_contains(id, e->errors[i].scope))
			return &e->errors[i];
	return NULL;
}

const struct estate_error *estate_error_for_url(const struct estate *e, const char *url)
{
	size_t lu;

	if (!url || !kv_startswith_ci(url, "https://"))
		return NULL;
	lu = strcspn(url, "?#");
	while (lu > 0 && url[lu - 1] == '/')
		lu--;
	for (size_t i = 0; i < e->nerrors; i++) {
		const char *scope = e->errors[i].scope;
		size_t ls;

		if (!scope || !kv_startswith_ci(scope, "https://"))
			continue;
		ls = strcspn(scope, "?#");
		while (ls > 0 && scope[ls - 1] == '/')
			ls--;
		if (ls <= lu && strncasecmp(scope, url, ls) == 0 && (ls == lu || url[ls] == '/'))
			return &e->errors[i];
	}
	return NULL;
}

/*
 * The vault host and object name of a Key Vault URL
 * (https://{host}[:443]/{kind}/{name}[/{version}]); false when it is not one.
 */
static bool kv_object_ref(const char *url, const char *kind, char *host, size_t nh, char *name, size_t nn)
{
	const char *h, *p;
	size_t lh, lk = strlen(kind), ln;

	if (!url || !kv_startswith_ci(url, "https://"))
		return false;
	h = url + strlen("https://");
	lh = strcspn(h, "/?#");
	p = h + lh;
	if (lh >= 4 && strncmp(h + lh - 4, ":443", 4) == 0)
		lh -= 4;
	if (lh == 0 || lh >= nh || *p != '/' || strncasecmp(p + 1, kind, lk) != 0 || p[1 + lk] != '/')
		return false;
	p += 2 + lk;
	ln = strcspn(p, "/?#");
	if (ln == 0 || ln >= nn)
		return false;
	snprintf(host, nh, "%.*s", (int)lh, h);
	snprintf(name, nn, "%.*s", (int)ln, p);
	return true;
}

static const struct deleted_item *deleted_lookup(const struct deleted_item *items, size_t n, const char *url,
                                                 const char *kind)
{
	char h1[256], n1[256], h2[256], n2[256];

	if (!kv_object_ref(url, kind, h1, sizeof(h1), n1, sizeof(n1)))
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (kv_object_ref(items[i].id, kind, h2, sizeof(h2), n2, sizeof(n2)) && kv_streq_ci(h1, h2) &&
		    kv_streq_ci(n1, n2))
			return &items[i];
	return NULL;
}

const struct deleted_item *estate_deleted_secret(const struct estate *e, const char *url)
{
	return deleted_lookup(e->deleted_secrets, e->ndeleted_secrets, url, "secrets");
}

const struct deleted_item *estate_deleted_key(const struct estate *e, const char *url)
{
	return deleted_lookup(e->deleted_keys, e->ndeleted_keys, url, "keys");
}
