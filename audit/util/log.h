/*
 * log.h - kvaudit's stderr lines (errors, warnings, progress, HTTP requests
 * with -v) as text ("kvaudit: …") or JSON lines for log collectors
 * (--log-format json or KVAUDIT_LOG_FORMAT=json):
 *   {"time":"2026-11-28T12:00:00Z","level":"error","msg":"…","requestId":"…"}
 * Messages never hold tokens or secrets (they are never put into one).
 */
#ifndef KVAUDIT_LOG_H
#define KVAUDIT_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum log_format { LOG_TEXT = 0, LOG_JSON };

void log_set_format(enum log_format f);
enum log_format log_get_format(void);
/* "text" or "json"; false for anything else. */
bool log_format_parse(const char *s, enum log_format *out);

/*
 * One line to f.  level: "error", "warning", "info", "debug"; request_id
 * may be NULL.  In text form: "kvaudit: [level: ]msg[ [request-id]]"
 * (the level is shown for warnings only, as before).
 */
void log_line(FILE *f, const char *level, const char *request_id, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
