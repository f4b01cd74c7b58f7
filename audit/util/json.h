/* json.h - small helpers for reporting on JSON input, shared by every parser. */
#ifndef KVAUDIT_JSON_H
#define KVAUDIT_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* "a string", "a number", "a boolean", "null", "an array", "an object" or "nothing" (NULL). */
const char *json_type_name(const cJSON *j);

/* JSON's four whitespace characters (NUL is not one). */
static inline bool json_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * The offset of the first non-whitespace byte of s[at..len), or len when
 * there is none: where a document starts, or what follows its end (a
 * parser's "data after the document" check).  Inline: the estate loader's
 * scanner calls it between every token.
 */
static inline size_t json_skip_space(const char *s, size_t at, size_t len)
{
	while (at < len && json_is_space(s[at]))
		at++;
	return at;
}

#endif
