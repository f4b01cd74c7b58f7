/* util.c - see util.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/util/util.h"

void kv_err_set(struct kv_err *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

void kv_err_prefix(struct kv_err *err, const char *fmt, ...)
{
	char prefix[512], old[sizeof(err->msg)];
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	/* Deliberately truncating concatenation, without snprintf's truncation warning. */
	size_t lp = strlen(prefix), lo = strlen(old), cap = sizeof(err->msg) - 1;
	if (lp > cap)
		lp = cap;
	memcpy(err->msg, prefix, lp);
	size_t at = lp;
	if (at + 2 <= cap) {
		memcpy(err->msg + at, ": ", 2);
		at += 2;
	}
	if (lo > cap - at)
		lo = cap - at;
	memcpy(err->msg + at, old, lo);
	err->msg[at + lo] = '\0';
}

static void oom(void)
{
	fputs("kvaudit: out of memory\n", stderr);
	abort();
}

void *kv_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom();
	return p;
}

void *kv_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom();
	return p;
}

void *kv_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom();
	return q;
}

char *kv_strdup(const char *s)
{
	return s ? kv_strndup(s, strlen(s)) : NULL;
}

char *kv_strndup(const char *s, size_t n)
{
	char *p;
	size_t len;

	if (!s)
		return NULL;
	len = strnlen(s, n);
	p = kv_malloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *kv_asprintf(const char *fmt, ...)
{
	va_list ap, ap2;
	int n;
	char *p;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	p = kv_malloc((size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return p;
}

void kv_strlcpy(char *dst, const char *src, size_t n)
{
	size_t len;

	if (n == 0)
		return;
	len = src ? strnlen(src, n - 1) : 0;
	if (len)
		memcpy(dst, src, len);
	dst[len] = '\0';
}

bool kv_streq_ci(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcasecmp(a, b) == 0;
}

bool kv_startswith_ci(const char *s, const char *prefix)
{
	return s && prefix && strncasecmp(s, prefix, strlen(prefix)) == 0;
}

bool kv_endswith_ci(const char *s, const char *suffix)
{
	size_t ls, lx;

	if (!s || !suffix)
		return false;
	ls = strlen(s);
	lx = strlen(suffix);
	return ls >= lx && strcasecmp(s + ls - lx, suffix) == 0;
}

char *kv_lower(char *s)
{
	for (char *p = s; p && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}

void kv_buf_init(struct kv_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->overflow = false;
}

void kv_buf_release(struct kv_buf *b)
{
	free(b->data);
	kv_buf_init(b, b->max);
}

bool kv_buf_add(struct kv_buf *b, const void *p, size_t n)
{
	if (b->overflow || (b->max && (n > b->max || b->len > b->max - n))) {
		b->overflow = true;
		return false;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = kv_realloc(b->data, cap);
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

bool kv_buf_adds(struct kv_buf *b, const char *s)
{
	return kv_buf_add(b, s, strlen(s));
}

bool kv_buf_addc(struct kv_buf *b, char c)
{
	return kv_buf_add(b, &c, 1);
}

bool kv_buf_addf(struct kv_buf *b, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;
	bool ok;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return false;
	s = kv_malloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	ok = kv_buf_add(b, s, (size_t)n);
	free(s);
	return ok;
}

char *kv_buf_detach(struct kv_buf *b)
{
	char *p = b->data ? b->data : kv_strdup("");

	kv_buf_init(b, b->max);
	return p;
}

char *kv_read_file(const char *path, size_t max, size_t *len, struct kv_err *err)
{
	FILE *f = NULL;
	struct stat st;
	char *data = NULL, *ret = NULL;
	size_t n = 0;

	f = fopen(path, "rb");
	if (!f) {
		kv_err_set(err, "cannot open '%s': %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fileno(f), &st) != 0) {
		kv_err_set(err, "cannot read '%s': %s", path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		kv_err_set(err, "'%s' is a directory, not a file", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		kv_err_set(err, "'%s' is not a regular file", path);
		goto out;
	}
	if ((unsigned long long)st.st_size > max) {
		kv_err_set(err, "'%s' is too large (%lld bytes, the limit is %zu)", path,
		           (long long)st.st_size, max);
		goto out;
	}
	data = kv_malloc((size_t)st.st_size + 1);
	n = fread(data, 1, (size_t)st.st_size, f);
	if (ferror(f)) {
		kv_err_set(err, "cannot read '%s': %s", path, strerror(errno));
		goto out;
	}
	data[n] = '\0';
	if (len)
		*len = n;
	ret = data;
	data = NULL;
out:
	free(data);
	if (f)
		fclose(f);
	return ret;
}

/* What an empty file maps to: there is nothing to mmap (a length of 0 is EINVAL). */
static char kv_empty_map[1];

int kv_open_file(const char *path, size_t max, size_t *len, struct kv_err *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*len = 0;
	if (fd < 0) {
		kv_err_set(err, "cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		kv_err_set(err, "cannot read '%s': %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		kv_err_set(err, S_ISDIR(st.st_mode) ? "'%s' is a directory, not a file" : "'%s' is not a regular file",
		           path);
		close(fd);
		return -1;
	}
	*len = (size_t)st.st_size;
	if ((unsigned long long)st.st_size > max) {
		kv_err_set(err, "'%s' is too large (%lld bytes, the limit is %zu)", path, (long long)st.st_size, max);
		close(fd);
		return -1;
	}
	return fd;
}

ssize_t kv_pread_full(int fd, void *buf, size_t n, size_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

void *kv_map_file(const char *path, size_t max, size_t *len, struct kv_err *err)
{
	void *p;
	int fd = kv_open_file(path, max, len, err), e;

	if (fd < 0)
		return NULL;
	if (*len == 0) {
		close(fd);
		return kv_empty_map;
	}
	p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
	e = errno;
	close(fd);
	if (p == MAP_FAILED) {
		kv_err_set(err, "cannot read '%s': %s", path, strerror(e));
		*len = 0;
		return NULL;
	}
	(void)posix_madvise(p, *len, POSIX_MADV_SEQUENTIAL);
	return p;
}

void kv_unmap_file(const void *p, size_t len)
{
	if (p && len)
		munmap((void *)(uintptr_t)p, len);
}

void kv_utc_now(char *out, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

long long kv_days_from_civil(long long y, unsigned m, unsigned d)
{
	long long era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

size_t kv_utf8_decode(const unsigned char *s, unsigned long *cp)
{
	unsigned char c = s[0];
	size_t n, i;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		*cp = c & 0x1fu;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		*cp = c & 0x0fu;
		if (c == 0xe0)
			lo = 0xa0;      /* overlong */
		else if (c == 0xed)
			hi = 0x9f;      /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		*cp = c & 0x07u;
		if (c == 0xf0)
			lo = 0x90;      /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;      /* above U+10FFFF */
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		unsigned char d = s[i];

		if (d < (i == 1 ? lo : 0x80) || d > (i == 1 ? hi : 0xbf))
			return 0;
		*cp = (*cp << 6) | (d & 0x3fu);
	}
	return n;
}
