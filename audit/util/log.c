/* log.c - see log.h. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/util/log.h"
#include "audit/util/util.h"

static enum log_format format = LOG_TEXT;

void log_set_format(enum log_format f)
{
	format = f;
}

enum log_format log_get_format(void)
{
	return format;
}

bool log_format_parse(const char *s, enum log_format *out)
{
	if (kv_streq_ci(s, "text"))
		*out = LOG_TEXT;
	else if (kv_streq_ci(s, "json"))
		*out = LOG_JSON;
	else
		return false;
	return true;
}

void log_line(FILE *f, const char *level, const char *request_id, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (!f)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (format == LOG_JSON) {
		cJSON *o = cJSON_CreateObject();
		char now[32], *text;

		kv_utc_now(now, sizeof(now));
		cJSON_AddStringToObject(o, "time", now);
		cJSON_AddStringToObject(o, "level", level);
		cJSON_AddStringToObject(o, "msg", msg);
		if (!kv_empty(request_id))
			cJSON_AddStringToObject(o, "requestId", request_id);
		text = cJSON_PrintUnformatted(o);
		fprintf(f, "%s\n", text);
		free(text);
		cJSON_Delete(o);
	} else if (strcmp(level, "warning") == 0) {
		fprintf(f, "kvaudit: warning: %s%s%s%s\n", msg, request_id ? " [" : "", request_id ? request_id : "",
		        request_id ? "]" : "");
	} else {
		fprintf(f, "kvaudit: %s%s%s%s\n", msg, request_id ? " [" : "", request_id ? request_id : "",
		        request_id ? "]" : "");
	}
	fflush(f);
}
