/*
 * output.c - the table of report formats and report_output(), which writes
 * a report in one or more formats to standard output, a directory or a
 * file (DESIGN.md, "CLI": "--out -" is one format on standard output;
 * files are named kvaudit-<UTC timestamp>.<ext> unless --out names one).
 *
 * A report file is written to "<path>.tmp.<pid>", flushed, fsync'ed and
 * closed with every step checked, then renamed into place: a reader never
 * sees half a report, and a full disk is an error, not a truncated file
 * (STYLE.md 15).  An existing file that is not a regular file or a
 * directory (/dev/stdout, a FIFO, bash's >(...)) is written in place: a
 * rename would replace the device or pipe with a regular file.
 */
#define _GNU_SOURCE   /* fopencookie and sync_file_range: the write-behind of a report file */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "audit/util/util.h"
#include "reports/report.h"

/* The CLI lists and checks names from this table (docs/report.md, "Output files"). */
const struct report_format report_formats[] = {
	{ "json", "json", report_write_json },
	{ "csv", "csv", report_write_csv },
	{ "html", "html", report_write_html },
	{ "sarif", "sarif", report_write_sarif },
	{ "junit", "junit.xml", report_write_junit },
	{ "md", "md", report_write_markdown },
	{ NULL, NULL, NULL },
};

#define MAX_FORMATS (sizeof(report_formats) / sizeof(report_formats[0]) - 1)

const struct report_format *report_format_find(const char *name)
{
	const struct report_format *fmt;

	for (fmt = report_formats; fmt->name != NULL; fmt++)
		if (kv_streq_ci(fmt->name, name))
			return fmt;
	return NULL;
}

/* "json, csv": the known format names, for messages (owned by the caller). */
static char *known_formats(void)
{
	struct kv_buf b;
	const struct report_format *k;

	kv_buf_init(&b, 0);
	for (k = report_formats; k->name != NULL; k++)
		kv_buf_addf(&b, "%s%s", k == report_formats ? "" : ", ", k->name);
	return kv_buf_detach(&b);
}

/*
 * Parses "json,csv" into the distinct formats, in the order given; names
 * are trimmed of blanks and compared case-insensitively, empty items are
 * ignored.  Returns the count, or -1 with err set.
 */
static int parse_formats(const char *formats, const struct report_format **out, struct kv_err *err)
{
	const char *p = formats != NULL ? formats : "";
	int n = 0;

	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		const struct report_format *fmt;
		char *name;
		int i;
		bool dup = false;

		while (len > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len > 0) {
			name = kv_strndup(p, len);
			fmt = report_format_find(name);
			if (fmt == NULL) {
				char *known = known_formats();

				kv_err_set(err, "unknown report format '%s' (known: %s)", name, known);
				free(known);
				free(name);
				return -1;
			}
			free(name);
			for (i = 0; i < n && !dup; i++)
				dup = out[i] == fmt;
			if (!dup)
				out[n++] = fmt;
		}
		p += len;
		while (*p != '\0' && *p != ',')
			p++;
		if (*p == ',')
			p++;
	}
	if (n == 0) {
		char *known = known_formats();

		kv_err_set(err, "no report format given (known: %s)", known);
		free(known);
		return -1;
	}
	return n;
}

/* mkdir -p path, mode 0755 (less the umask).  False with err naming the path. */
static bool make_dirs(const char *path, struct kv_err *err)
{
	char *copy = kv_strdup(path);
	char *p;
	struct stat st;
	bool ok = false;

	for (p = copy + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		{
			char saved = *p;

			*p = '\0';
			if (mkdir(copy, 0755) != 0 && errno != EEXIST) {
				kv_err_set(err, "cannot create directory '%s': %s", copy, strerror(errno));
				goto out;
			}
			*p = saved;
		}
		if (*p == '\0')
			break;
	}
	if (stat(path, &st) != 0) {
		kv_err_set(err, "cannot create directory '%s': %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		kv_err_set(err, "cannot create directory '%s': %s", path, strerror(ENOTDIR));
		goto out;
	}
	ok = true;
out:
	free(copy);
	return ok;
}

/*
 * A report file's stream buffer: stdio's default is one block (4 KiB), so
 * the hundreds of MB of a large estate's report would take one write(2)
 * per 4 KiB.  Set before the first write; freed after the fclose.
 */
#define OUT_BUFSIZE (256 * 1024)

static char *big_buffer(FILE *f)
{
	char *buf = malloc(OUT_BUFSIZE);

	if (buf != NULL && setvbuf(f, buf, _IOFBF, OUT_BUFSIZE) != 0) {
		free(buf);
		buf = NULL;
	}
	return buf;
}

/*
 * A report file's stream writes through write_behind: every WRITE_BEHIND
 * bytes it asks the kernel to start writing what came before
 * (sync_file_range), so the fsync before the rename waits only for the
 * last piece.  A 50k-VM report is ~175 MB; written at once by the fsync it
 * cost 0.1-0.2 s after the text was done.
 */
#define WRITE_BEHIND ((off_t)8 << 20)

struct behind {
	int fd;
	off_t written, started;   /* bytes written; the writeback asked for [0, started) */
};

static ssize_t behind_write(void *cookie, const char *buf, size_t n)
{
	struct behind *b = cookie;
	size_t done = 0;

	while (done < n) {
		ssize_t k = write(b->fd, buf + done, n - done);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k == 0)
				errno = EIO;
			return -1;   /* stdio marks the stream's error; errno says what */
		}
		done += (size_t)k;
	}
	b->written += (off_t)n;
	if (b->written - b->started >= WRITE_BEHIND) {
		/* Only a hint: where the file system cannot, the fsync does it all. */
		(void)sync_file_range(b->fd, b->started, b->written - b->started, SYNC_FILE_RANGE_WRITE);
		b->started = b->written;
	}
	return (ssize_t)n;
}

/* fmt's writer, given the rows when it is JSON's (the only one that shows them). */
static bool write_fmt(const cJSON *report, const struct report_rows *rows, const struct report_format *fmt, FILE *f,
                      struct kv_err *err)
{
	if (rows != NULL && fmt->write == report_write_json)
		return report_write_json_rows(report, rows, f, err);
	return fmt->write(report, f, err);
}

/*
 * Writes the report in fmt to path through "<path>.tmp.<pid>" and a
 * rename.  On failure removes the temporary file and sets err naming path.
 */
static bool write_file(const cJSON *report, const struct report_rows *rows, const struct report_format *fmt,
                       const char *path, struct kv_err *err)
{
	char *tmp = kv_asprintf("%s.tmp.%ld", path, (long)getpid());
	FILE *f = NULL;
	char *buf = NULL;
	int fd = -1;
	bool ok = false, created = false;
	struct behind behind = {-1, 0, 0};

	/* 0600: a report names the caller, its tenants and every vault (docs/security.md). */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		kv_err_set(err, "cannot write '%s': %s", path, strerror(errno));
		goto out;
	}
	created = true;
	behind.fd = fd;
	f = fopencookie(&behind, "w", (cookie_io_functions_t){.write = behind_write});
	if (f == NULL) {
		kv_err_set(err, "cannot write '%s': %s", path, strerror(errno));
		goto out;
	}
	buf = big_buffer(f);
	if (!write_fmt(report, rows, fmt, f, err)) {
		kv_err_prefix(err, "'%s'", path);
		goto out;
	}
	errno = 0;
	if (fflush(f) == EOF || ferror(f) || fsync(fd) != 0) {
		kv_err_set(err, "cannot write '%s': %s", path, errno != 0 ? strerror(errno) : "write error");
		goto out;
	}
	errno = 0;
	(void)fclose(f);   /* flushed above; the cookie stream does not close fd */
	f = NULL;
	if (close(fd) != 0) {
		fd = -1;
		kv_err_set(err, "cannot write '%s': %s", path, errno != 0 ? strerror(errno) : "write error");
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		kv_err_set(err, "cannot write '%s': %s", path, strerror(errno));
		goto out;
	}
	created = false;
	ok = true;
out:
	if (f != NULL)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	free(buf);
	free(tmp);
	return ok;
}

/*
 * Writes the report in fmt straight into path, an existing device or FIFO,
 * checking the flush and the close.
 */
static bool write_special(const cJSON *report, const struct report_rows *rows, const struct report_format *fmt,
                          const char *path, struct kv_err *err)
{
	FILE *f = NULL;
	char *buf = NULL;
	int fd;
	bool ok = false;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		kv_err_set(err, "cannot write '%s': %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	buf = big_buffer(f);
	if (!write_fmt(report, rows, fmt, f, err)) {
		kv_err_prefix(err, "'%s'", path);
		goto out;
	}
	errno = 0;
	if (fflush(f) == EOF || ferror(f)) {
		kv_err_set(err, "cannot write '%s': %s", path, errno != 0 ? strerror(errno) : "write error");
		goto out;
	}
	ok = true;
out:
	if (f != NULL && fclose(f) != 0 && ok) {
		kv_err_set(err, "cannot write '%s': %s", path, strerror(errno));
		ok = false;
	}
	free(buf);
	return ok;
}

/* Writes one format to standard output, checking the flush. */
static bool write_stdout(const cJSON *report, const struct report_rows *rows, const struct report_format *fmt,
                         struct kv_err *err)
{
	if (!write_fmt(report, rows, fmt, stdout, err)) {
		kv_err_prefix(err, "standard output");
		return false;
	}
	errno = 0;
	if (fflush(stdout) == EOF || ferror(stdout)) {
		kv_err_set(err, "cannot write to standard output: %s",
		           errno != 0 ? strerror(errno) : "write error");
		return false;
	}
	return true;
}

/* "20261128T120000Z" from the current time, for a NULL or empty stamp. */
static void stamp_now(char *out, size_t n)
{
	char iso[32];
	size_t i, j = 0;

	kv_utc_now(iso, sizeof(iso));
	for (i = 0; iso[i] != '\0' && j + 1 < n; i++)
		if (iso[i] != '-' && iso[i] != ':')
			out[j++] = iso[i];
	out[j] = '\0';
}

bool report_output(const cJSON *report, const char *formats, const char *out,
                   const char *stamp, FILE *info, struct kv_err *err)
{
	return report_output_rows(report, NULL, formats, out, stamp, info, err);
}

bool report_output_rows(const cJSON *report, const struct report_rows *rows, const char *formats, const char *out,
                        const char *stamp, FILE *info, struct kv_err *err)
{
	const struct report_format *fmts[MAX_FORMATS];
	char now[32];
	char *path = NULL;
	struct stat st;
	int n, i;
	bool ok = false, exists, is_dir;

	n = parse_formats(formats, fmts, err);
	if (n < 0)
		goto out;
	if (kv_empty(out))
		out = ".";
	if (strcmp(out, "-") == 0) {
		if (n > 1) {
			kv_err_set(err, "--out - takes one format, got %d", n);
			goto out;
		}
		ok = write_stdout(report, rows, fmts[0], err);
		goto out;
	}

	exists = stat(out, &st) == 0;
	is_dir = out[strlen(out) - 1] == '/' || (exists && S_ISDIR(st.st_mode));
	if (!is_dir) {
		if (n > 1) {
			kv_err_set(err, "--out '%s' takes one format, got %d (name a directory to write several)",
			           out, n);
			goto out;
		}
		if (exists && !S_ISREG(st.st_mode)) {
			if (!write_special(report, rows, fmts[0], out, err))
				goto out;
		} else if (!write_file(report, rows, fmts[0], out, err)) {
			goto out;
		}
		if (info != NULL)
			fprintf(info, "wrote %s\n", out);
		ok = true;
		goto out;
	}

	if (!make_dirs(out, err))
		goto out;
	if (kv_empty(stamp)) {
		stamp_now(now, sizeof(now));
		stamp = now;
	}
	for (i = 0; i < n; i++) {
		free(path);
		path = kv_asprintf("%s%skvaudit-%s.%s", out, out[strlen(out) - 1] == '/' ? "" : "/",
		                   stamp, fmts[i]->ext);
		if (!write_file(report, rows, fmts[i], path, err))
			goto out;
		if (info != NULL)
			fprintf(info, "wrote %s\n", path);
	}
	ok = true;
out:
	free(path);
	return ok;
}

bool report_azure_backup_note(struct kv_buf *b, const cJSON *f)
{
	const cJSON *ab = cJSON_GetObjectItemCaseSensitive(f, "azureBackup");
	const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ab, "status"));
	const char *job = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ab, "jobId"));
	const char *at = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ab, "time"));
	const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ab, "errorCode"));
	const char *name = job && strrchr(job, '/') ? strrchr(job, '/') + 1 : job;

	if (!st)
		return false;
	if (strcmp(st, "confirmed") == 0 || strcmp(st, "contradicted") == 0) {
		kv_buf_addf(b, "%s by Azure Backup: backup job %s failed at %s with %s", st, name ? name : "?",
		            at ? at : "?", code ? code : "?");
		return true;
	}
	if (strcmp(st, "not-seen") == 0) {
		kv_buf_adds(b, "not confirmed by Azure Backup: no backup job of the VM failed with the permission error");
		return true;
	}
	if (strcmp(st, "agrees") == 0) {
		kv_buf_adds(b, "Azure Backup agrees: no backup job of the VM failed with the permission error");
		return true;
	}
	return false;
}

void report_subject(struct kv_buf *b, const cJSON *f, void (*esc)(struct kv_buf *, const char *), const char *sep,
                    const char *unknown)
{
	const char *vm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "vmName"));
	const char *vault = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "vaultName"));
	const char *tenant = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "tenant"));
	const char *subject = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "subject"));

	if (vm == NULL)
		vm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "vm"));
	if (vault == NULL)
		vault = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "vault"));
	if (vm != NULL && vault != NULL) {
		esc(b, vm);
		kv_buf_adds(b, sep);
		esc(b, vault);
	} else if (vm != NULL || vault != NULL) {
		esc(b, vm != NULL ? vm : vault);
	} else if (tenant != NULL) {
		kv_buf_adds(b, "tenant ");
		esc(b, tenant);
	} else if (subject != NULL) {
		esc(b, subject);
	} else {
		kv_buf_adds(b, unknown);
	}
}
