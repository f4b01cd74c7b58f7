/*
 * util.h - small helpers shared by every part of kvaudit: error buffers,
 * allocation that cannot return NULL, case-insensitive strings, growable
 * string buffers with a cap, and reading or mapping whole files safely.
 */
#ifndef KVAUDIT_UTIL_H
#define KVAUDIT_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * An error is reported once, where it happens, into a caller-owned buffer;
 * callers only propagate it.  Messages are lowercase, without a final
 * period, and name their subject (a file, a JSON path, a rule ID).
 */
struct kv_err {
	char msg[1024];
};

void kv_err_set(struct kv_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prepends "prefix: " to an existing message. */
void kv_err_prefix(struct kv_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Allocation that aborts the process on exhaustion (there is no sane recovery). */
void *kv_malloc(size_t n);
void *kv_calloc(size_t n, size_t size);
void *kv_realloc(void *p, size_t n);
char *kv_strdup(const char *s);             /* NULL in, NULL out */
char *kv_strndup(const char *s, size_t n);
char *kv_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ASCII case-insensitive comparisons; NULL equals only NULL. */
bool kv_streq_ci(const char *a, const char *b);
bool kv_startswith_ci(const char *s, const char *prefix);
bool kv_endswith_ci(const char *s, const char *suffix);
/* Copies src into dst[n], truncating (always NUL-terminated; NULL src gives ""). */
void kv_strlcpy(char *dst, const char *src, size_t n);
/* Empty means NULL or "". */
static inline bool kv_empty(const char *s) { return s == NULL || *s == '\0'; }
/* Lower-cases s in place and returns it. */
char *kv_lower(char *s);

/* A growable buffer with an owner and a hard cap (curl's dynbuf, git's strbuf). */
struct kv_buf {
	char *data;     /* always NUL-terminated when len > 0 or after kv_buf_init */
	size_t len;
	size_t cap;
	size_t max;     /* 0 means unlimited */
	bool overflow;  /* set once an append would have exceeded max */
};

void kv_buf_init(struct kv_buf *b, size_t max);
void kv_buf_release(struct kv_buf *b);
/* Returns false (and sets overflow) when the cap would be exceeded. */
bool kv_buf_add(struct kv_buf *b, const void *p, size_t n);
bool kv_buf_adds(struct kv_buf *b, const char *s);
bool kv_buf_addc(struct kv_buf *b, char c);
bool kv_buf_addf(struct kv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the string to the caller (never NULL) and resets the buffer. */
char *kv_buf_detach(struct kv_buf *b);

/*
 * Reads a whole regular file into memory (NUL-terminated).  Refuses
 * directories, devices and files over max bytes, with a message naming the
 * path.  Returns NULL on error.
 */
char *kv_read_file(const char *path, size_t max, size_t *len, struct kv_err *err);

/*
 * Maps a whole regular file read-only, for one sequential read, with
 * kv_read_file's checks and messages: no copy on the heap.  *len is its
 * size; an empty file maps to a static "" (nothing to unmap).  NULL on
 * error; when the file is over max bytes, *len is its size (above max) so
 * that a caller can say what to do in its own words.  The caller may
 * madvise() the pages; kv_unmap_file(p, *len) releases them.
 */
void *kv_map_file(const char *path, size_t max, size_t *len, struct kv_err *err);
void kv_unmap_file(const void *p, size_t len);

/*
 * Opens a regular file read-only (close-on-exec) with kv_map_file's checks
 * and messages: its descriptor, or -1.  *len is its size (also when it is
 * over max; 0 when it cannot be opened or is not a regular file).
 */
int kv_open_file(const char *path, size_t max, size_t *len, struct kv_err *err);

/*
 * pread until n bytes are read from offset off, the file ends (fewer: a
 * short read) or an error (-1, errno says which); EINTR is retried.
 */
ssize_t kv_pread_full(int fd, void *buf, size_t n, size_t off);

/* The current UTC time as "2026-11-28T12:00:00Z" into out (at least 21 bytes). */
void kv_utc_now(char *out, size_t n);

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
long long kv_days_from_civil(long long y, unsigned m, unsigned d);

/*
 * Decodes the multi-byte UTF-8 sequence at s (NUL-terminated) into *cp and
 * returns its length (2-4); 0 when s does not start one that is well-formed
 * (an ASCII byte, overlong, a surrogate, above U+10FFFF, cut short).
 */
size_t kv_utf8_decode(const unsigned char *s, unsigned long *cp);

#endif
