/* parse.c - see parse.h. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "audit/azure/parse.h"
#include "audit/util/json.h"
#include "audit/util/util.h"

/* How much of an unrecognised error body azure_error_parse keeps. */
#define RAW_ERROR_BYTES 200

/*
 * Parses exactly body[0..len) as one JSON document, without needing a NUL
 * terminator.  Returns the tree (owned by the caller) or NULL with err set;
 * the message gives a byte offset but never quotes the body.
 */
static cJSON *parse_body(const char *body, size_t len, struct kv_err *err)
{
	const char *end = NULL;
	cJSON *doc;

	if (body == NULL)
		len = 0;
	if (json_skip_space(body, 0, len) == len) {
		kv_err_set(err, "empty response body: expected a JSON document");
		return NULL;
	}
	doc = cJSON_ParseWithLengthOpts(body, len, &end, false);
	if (doc == NULL) {
		size_t off = end != NULL && end >= body ? (size_t)(end - body) : 0;

		if (off > len)
			off = len;
		kv_err_set(err, "invalid JSON at byte %zu of %zu", off, len);
		return NULL;
	}
	if (end != NULL && end >= body) {
		size_t at = json_skip_space(body, (size_t)(end - body), len);

		if (at < len) {
			kv_err_set(err, "invalid JSON: unexpected data after the document at byte %zu", at);
			cJSON_Delete(doc);
			return NULL;
		}
	}
	return doc;
}

/*
 * Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0 if
 * it is malformed, overlong, a surrogate, beyond U+10FFFF or cut short.
 */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	size_t need, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 4;
	else
		return 0;
	if (n < need)
		return 0;
	for (i = 1; i < need; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
		return 0;
	return need;
}

/*
 * Copies server text into dst (size dstsz, always NUL-terminated), keeping
 * only printable text: ASCII controls, DEL, C1 controls (U+0080..U+009F) and
 * malformed UTF-8 become '?', or a space for tab/CR/LF when ws_to_space.
 * Multi-byte characters are never cut in half by the truncation.
 */
static void copy_printable(char *dst, size_t dstsz, const char *src, size_t srclen, bool ws_to_space)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0;

	if (dstsz == 0)
		return;
	while (src != NULL && i < srclen && o + 1 < dstsz) {
		size_t n = utf8_seq_len(s + i, srclen - i);

		if (n == 1 && (s[i] < 0x20 || s[i] == 0x7f)) {
			dst[o++] = ws_to_space && json_is_space((char)s[i]) ? ' ' : '?';
			i++;
		} else if (n == 0 || (n == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0)) {
			dst[o++] = '?';
			i += n == 0 ? 1 : n;
		} else {
			if (o + n >= dstsz)
				break;
			memcpy(dst + o, s + i, n);
			o += n;
			i += n;
		}
	}
	dst[o] = '\0';
}

/* ---- ARM list pages ---- */

/*
 * Reads the optional string member key of obj (path names it in errors):
 * absent, null and "" give *out NULL.  Returns false on any other type.
 */
static bool optional_string(const cJSON *obj, const char *key, const char *path, const char **out,
                            struct kv_err *err)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);

	*out = NULL;
	if (j == NULL || cJSON_IsNull(j))
		return true;
	if (!cJSON_IsString(j)) {
		kv_err_set(err, "%s: expected a string or null, got %s", path, json_type_name(j));
		return false;
	}
	if (j->valuestring[0] != '\0')
		*out = j->valuestring;
	return true;
}

bool arm_page_parse(const char *body, size_t len, struct arm_page *out, struct kv_err *err)
{
	cJSON *doc;
	const cJSON *value;
	const char *next = NULL;

	memset(out, 0, sizeof(*out));
	doc = parse_body(body, len, err);
	if (doc == NULL)
		return false;
	if (!cJSON_IsObject(doc)) {
		kv_err_set(err, "$: expected an object with a \"value\" array, got %s", json_type_name(doc));
		goto fail;
	}
	value = cJSON_GetObjectItemCaseSensitive(doc, "value");
	if (value == NULL) {
		kv_err_set(err, "$.value: missing: not an ARM list page");
		goto fail;
	}
	if (!cJSON_IsArray(value)) {
		kv_err_set(err, "$.value: expected an array, got %s", json_type_name(value));
		goto fail;
	}
	if (!optional_string(doc, "nextLink", "$.nextLink", &next, err))
		goto fail;
	out->doc = doc;
	out->value = value;
	out->next_link = next;
	return true;
fail:
	cJSON_Delete(doc);
	return false;
}

void arm_page_release(struct arm_page *page)
{
	if (page == NULL)
		return;
	cJSON_Delete(page->doc);
	memset(page, 0, sizeof(*page));
}

/* ---- Resource Graph ---- */

/* A JSON number that is a whole value within [lo, hi]. */
static bool whole_number(const cJSON *j, double lo, double hi, long long *out)
{
	double d;

	if (!cJSON_IsNumber(j))
		return false;
	d = j->valuedouble;
	if (!isfinite(d) || d < lo || d > hi || d != floor(d))
		return false;
	*out = (long long)d;
	return true;
}

bool rg_page_parse(const char *body, size_t len, struct rg_page *out, struct kv_err *err)
{
	cJSON *doc;
	const cJSON *data, *j;
	const char *token = NULL;
	long long n;

	memset(out, 0, sizeof(*out));
	doc = parse_body(body, len, err);
	if (doc == NULL)
		return false;
	if (!cJSON_IsObject(doc)) {
		kv_err_set(err, "$: expected a Resource Graph response object, got %s", json_type_name(doc));
		goto fail;
	}
	data = cJSON_GetObjectItemCaseSensitive(doc, "data");
	if (data == NULL) {
		kv_err_set(err, "$.data: missing: not a Resource Graph response");
		goto fail;
	}
	if (cJSON_IsObject(data) && (cJSON_HasObjectItem(data, "columns") || cJSON_HasObjectItem(data, "rows"))) {
		kv_err_set(err, "$.data: got the table result format (columns and rows): "
		                "request options.resultFormat \"objectArray\"");
		goto fail;
	}
	if (!cJSON_IsArray(data)) {
		kv_err_set(err, "$.data: expected an array, got %s", json_type_name(data));
		goto fail;
	}

	out->total_records = -1;
	j = cJSON_GetObjectItemCaseSensitive(doc, "totalRecords");
	if (j != NULL && !cJSON_IsNull(j)) {
		if (!whole_number(j, 0, 9007199254740992.0, &out->total_records)) {
			kv_err_set(err, "$.totalRecords: expected a non-negative integer, got %s", json_type_name(j));
			goto fail;
		}
	}
	out->count = cJSON_GetArraySize(data);
	j = cJSON_GetObjectItemCaseSensitive(doc, "count");
	if (j != NULL && !cJSON_IsNull(j)) {
		if (!whole_number(j, 0, INT_MAX, &n)) {
			kv_err_set(err, "$.count: expected a non-negative integer, got %s", json_type_name(j));
			goto fail;
		}
		out->count = (int)n;
	}

	/* A string enum in the spec ("true"/"false"); tolerate a real boolean. */
	j = cJSON_GetObjectItemCaseSensitive(doc, "resultTruncated");
	if (cJSON_IsBool(j)) {
		out->truncated = cJSON_IsTrue(j);
	} else if (cJSON_IsString(j) && kv_streq_ci(j->valuestring, "true")) {
		out->truncated = true;
	} else if (cJSON_IsString(j) && kv_streq_ci(j->valuestring, "false")) {
		out->truncated = false;
	} else if (j != NULL && !cJSON_IsNull(j)) {
		kv_err_set(err, "$.resultTruncated: expected \"true\" or \"false\", got %s",
		           cJSON_IsString(j) ? "another string" : json_type_name(j));
		goto fail;
	}

	if (!optional_string(doc, "$skipToken", "$.$skipToken", &token, err))
		goto fail;
	out->doc = doc;
	out->data = data;
	out->skip_token = token;
	return true;
fail:
	cJSON_Delete(doc);
	memset(out, 0, sizeof(*out));
	return false;
}

void rg_page_release(struct rg_page *page)
{
	if (page == NULL)
		return;
	cJSON_Delete(page->doc);
	memset(page, 0, sizeof(*page));
}

/* ---- error bodies ---- */

/* The string member key of obj, also tried capitalised ("Message"), or NULL. */
static const char *member_string(const cJSON *obj, const char *key, const char *alt)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsString(j) && alt != NULL)
		j = cJSON_GetObjectItemCaseSensitive(obj, alt);
	return cJSON_IsString(j) && j->valuestring[0] != '\0' ? j->valuestring : NULL;
}

/*
 * Fills code and message from an ARM-style error object ({"code",
 * "message", "details"}); missing ones fall back to details[0].  Returns
 * false if the object has neither.
 */
static bool error_object(const cJSON *e, struct azure_error *out)
{
	const cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "details"), 0);
	const char *code = member_string(e, "code", "Code");
	const char *msg = member_string(e, "message", "Message");

	if (code == NULL && cJSON_IsObject(d0))
		code = member_string(d0, "code", "Code");
	if (msg == NULL && cJSON_IsObject(d0))
		msg = member_string(d0, "message", "Message");
	if (code == NULL && msg == NULL)
		return false;
	if (code != NULL)
		copy_printable(out->code, sizeof(out->code), code, strlen(code), true);
	if (msg != NULL)
		copy_printable(out->message, sizeof(out->message), msg, strlen(msg), true);
	/* Key Vault says why a 403 happened only here (firewall, access policy, RBAC). */
	code = member_string(cJSON_GetObjectItemCaseSensitive(e, "innererror"), "code", NULL);
	if (code != NULL)
		copy_printable(out->inner, sizeof(out->inner), code, strlen(code), true);
	return true;
}

void azure_error_parse(const char *body, size_t len, int status, struct azure_error *out)
{
	cJSON *doc = NULL;
	bool found = false;

	memset(out, 0, sizeof(*out));
	out->status = status;
	if (body == NULL || len == 0)
		return;
	/* Lenient on purpose: trailing data after an error document is ignored. */
	doc = cJSON_ParseWithLengthOpts(body, len, NULL, false);
	if (cJSON_IsObject(doc)) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");

		if (cJSON_IsObject(e)) {
			/* ARM, Key Vault, Resource Graph */
			found = error_object(e, out);
		} else if (cJSON_IsString(e)) {
			/* OAuth 2.0: IMDS, App Service, Entra ID */
			const char *desc = member_string(doc, "error_description", NULL);

			copy_printable(out->code, sizeof(out->code), e->valuestring, strlen(e->valuestring), true);
			if (desc != NULL)
				copy_printable(out->message, sizeof(out->message), desc, strlen(desc), true);
			found = true;
		} else {
			/* Compute: the error object without the wrapper */
			found = error_object(doc, out);
		}
	}
	cJSON_Delete(doc);
	if (!found) {
		out->code[0] = '\0';
		copy_printable(out->message, sizeof(out->message), body,
		               len < RAW_ERROR_BYTES ? len : RAW_ERROR_BYTES, false);
	}
}

/* ---- dates and numbers ---- */

static bool leap_year(long long y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* A calendar date and time of day, checked for range (leap second allowed). */
struct civil {
	long long year;
	int mon, day, hour, min, sec;
};

static bool civil_valid(const struct civil *c)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (c->year < 1970 || c->year > 9999 || c->mon < 1 || c->mon > 12 || c->day < 1)
		return false;
	if (c->day > mdays[c->mon - 1] + (c->mon == 2 && leap_year(c->year)))
		return false;
	return c->hour >= 0 && c->hour <= 23 && c->min >= 0 && c->min <= 59 && c->sec >= 0 && c->sec <= 60;
}

static long long civil_to_epoch(const struct civil *c)
{
	return kv_days_from_civil(c->year, (unsigned)c->mon, (unsigned)c->day) * 86400LL + c->hour * 3600LL + c->min * 60LL + c->sec;
}

/* Reads between min and max decimal digits at *p into *val and advances. */
static bool scan_digits(const char **p, int min, int max, long long *val)
{
	const char *s = *p;
	long long v = 0;
	int n = 0;

	while (n < max && *s >= '0' && *s <= '9') {
		v = v * 10 + (*s - '0');
		s++;
		n++;
	}
	if (n < min)
		return false;
	*val = v;
	*p = s;
	return true;
}

static bool scan_int(const char **p, int min, int max, int *val)
{
	long long v;

	if (!scan_digits(p, min, max, &v))
		return false;
	*val = (int)v;
	return true;
}

static bool scan_lit(const char **p, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

/* Matches one of names (a NULL-terminated list) at *p; returns its index or -1. */
static int scan_name(const char **p, const char *const *names)
{
	for (int i = 0; names[i] != NULL; i++)
		if (scan_lit(p, names[i]))
			return i;
	return -1;
}

/* "HH:MM:SS" with one- or two-digit hours. */
static bool scan_clock(const char **p, struct civil *c, int hour_min_digits)
{
	return scan_int(p, hour_min_digits, 2, &c->hour) && scan_lit(p, ":") && scan_int(p, 2, 2, &c->min) &&
	       scan_lit(p, ":") && scan_int(p, 2, 2, &c->sec);
}

static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", NULL};
static const char *const day_names[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", NULL};
static const char *const long_day_names[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                             "Friday", "Saturday", "Sunday", NULL};

/*
 * An HTTP-date (RFC 7231 7.1.1.1) as unix seconds: IMF-fixdate
 * "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT"
 * or asctime "Sun Nov  6 08:49:37 1994".  The weekday is checked for
 * spelling only.
 */
static bool parse_http_date(const char *s, long long *out)
{
	struct civil c = {0};
	const char *p = s;
	int mon = -1;

	if (scan_name(&p, day_names) >= 0 && scan_lit(&p, ", ")) {
		/* IMF-fixdate */
		if (!scan_int(&p, 2, 2, &c.day) || !scan_lit(&p, " ") || (mon = scan_name(&p, month_names)) < 0 ||
		    !scan_lit(&p, " ") || !scan_digits(&p, 4, 4, &c.year) || !scan_lit(&p, " ") ||
		    !scan_clock(&p, &c, 2) || !scan_lit(&p, " GMT"))
			return false;
	} else if (p = s, scan_name(&p, long_day_names) >= 0 && scan_lit(&p, ", ")) {
		/* RFC 850, two-digit year: RFC 7231 says take the most recent past
		 * century; 70..99 as 19xx is close enough for a retry delay. */
		if (!scan_int(&p, 2, 2, &c.day) || !scan_lit(&p, "-") || (mon = scan_name(&p, month_names)) < 0 ||
		    !scan_lit(&p, "-") || !scan_digits(&p, 2, 2, &c.year) || !scan_lit(&p, " ") ||
		    !scan_clock(&p, &c, 2) || !scan_lit(&p, " GMT"))
			return false;
		c.year += c.year < 70 ? 2000 : 1900;
	} else if (p = s, scan_name(&p, day_names) >= 0 && scan_lit(&p, " ")) {
		/* asctime: the day is space-padded to two characters */
		if ((mon = scan_name(&p, month_names)) < 0 || !scan_lit(&p, " "))
			return false;
		if (*p == ' ')
			p++;
		if (!scan_int(&p, 1, 2, &c.day) || !scan_lit(&p, " ") || !scan_clock(&p, &c, 2) ||
		    !scan_lit(&p, " ") || !scan_digits(&p, 4, 4, &c.year))
			return false;
	} else {
		return false;
	}
	if (*p != '\0')
		return false;
	c.mon = mon + 1;
	if (!civil_valid(&c))
		return false;
	*out = civil_to_epoch(&c);
	return true;
}

/* A string of 1..18 decimal digits and nothing else. */
static bool parse_epoch_string(const char *s, long long *out)
{
	const char *p = s;
	long long v;

	if (!scan_digits(&p, 1, 18, &v) || *p != '\0')
		return false;
	*out = v;
	return true;
}

/*
 * The legacy App Service MSI expires_on (api-version 2017-09-01):
 * "M/D/YYYY H:MM:SS +00:00", Windows hosts adding " AM"/" PM" before the
 * offset (azure-sdk-for-go azidentity, go-autorest adal).
 */
static bool parse_msi_date(const char *s, long long *out)
{
	struct civil c = {0};
	const char *p = s;
	int oh, om, sign;

	if (!scan_int(&p, 1, 2, &c.mon) || !scan_lit(&p, "/") || !scan_int(&p, 1, 2, &c.day) ||
	    !scan_lit(&p, "/") || !scan_digits(&p, 4, 4, &c.year) || !scan_lit(&p, " ") || !scan_clock(&p, &c, 1))
		return false;
	if (scan_lit(&p, " PM")) {
		if (c.hour < 1 || c.hour > 12)
			return false;
		if (c.hour < 12)
			c.hour += 12;
	} else if (scan_lit(&p, " AM")) {
		if (c.hour < 1 || c.hour > 12)
			return false;
		if (c.hour == 12)
			c.hour = 0;
	}
	if (!scan_lit(&p, " "))
		return false;
	if (*p != '+' && *p != '-')
		return false;
	sign = *p++ == '-' ? -1 : 1;
	if (!scan_int(&p, 2, 2, &oh) || !scan_lit(&p, ":") || !scan_int(&p, 2, 2, &om) || *p != '\0' ||
	    oh > 14 || om > 59)
		return false;
	if (!civil_valid(&c))
		return false;
	*out = civil_to_epoch(&c) - sign * (oh * 3600LL + om * 60LL);
	return true;
}

/* az CLI expiresOn: "YYYY-MM-DD HH:MM:SS[.ffffff]" in the local time zone. */
static bool parse_cli_local_time(const char *s, long long *out)
{
	struct civil c = {0};
	const char *p = s;
	long long frac;
	struct tm tm;
	time_t t;

	if (!scan_digits(&p, 4, 4, &c.year) || !scan_lit(&p, "-") || !scan_int(&p, 2, 2, &c.mon) ||
	    !scan_lit(&p, "-") || !scan_int(&p, 2, 2, &c.day) || !scan_lit(&p, " ") || !scan_clock(&p, &c, 2))
		return false;
	if (scan_lit(&p, ".") && !scan_digits(&p, 1, 9, &frac))
		return false;
	if (*p != '\0' || !civil_valid(&c))
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int)c.year - 1900;
	tm.tm_mon = c.mon - 1;
	tm.tm_mday = c.day;
	tm.tm_hour = c.hour;
	tm.tm_min = c.min;
	tm.tm_sec = c.sec;
	tm.tm_isdst = -1; /* let the zone rules decide */
	t = mktime(&tm);
	if (t == (time_t)-1)
		return false;
	*out = (long long)t;
	return true;
}

/* ---- tokens ---- */

/* Overwrites n bytes in a way the compiler may not elide (no explicit_bzero in strict POSIX). */
static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

/* Wipes every top-level string of a token response, then frees the tree. */
static void wipe_and_delete(cJSON *doc)
{
	cJSON *j;

	cJSON_ArrayForEach(j, doc)
		if (cJSON_IsString(j) && j->valuestring != NULL)
			wipe(j->valuestring, strlen(j->valuestring));
	cJSON_Delete(doc);
}

/* Upper bound for expiry values: year 9999, and ten years for a lifetime. */
#define MAX_EPOCH 253402300799.0
#define MAX_LIFETIME (10LL * 366 * 86400)

/* expires_on: a number, an epoch string or the legacy MSI date string. */
static bool expiry_from_expires_on(const cJSON *j, long long *out)
{
	if (cJSON_IsNumber(j))
		return whole_number(j, 1, MAX_EPOCH, out);
	if (cJSON_IsString(j))
		return parse_epoch_string(j->valuestring, out) || parse_msi_date(j->valuestring, out);
	return false;
}

/* expires_in: seconds from now, as a number (Entra) or a string (IMDS). */
static bool expiry_from_expires_in(const cJSON *j, long long now, long long *out)
{
	long long n;

	if (cJSON_IsNumber(j)) {
		if (!whole_number(j, 0, MAX_LIFETIME, &n))
			return false;
	} else if (cJSON_IsString(j)) {
		if (!parse_epoch_string(j->valuestring, &n) || n > MAX_LIFETIME)
			return false;
	} else {
		return false;
	}
	*out = now + n;
	return true;
}

/* A token goes into an Authorization header: only visible ASCII is safe there. */
static bool token_chars_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

bool token_response_parse(const char *body, size_t len, long long now, struct token_response *out,
                          struct kv_err *err)
{
	const cJSON *tok, *on, *cli_on, *in;
	const char *tok_path = "$.access_token";
	cJSON *doc;
	long long exp = 0;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	doc = parse_body(body, len, err);
	if (doc == NULL) {
		kv_err_prefix(err, "token response");
		return false;
	}
	if (!cJSON_IsObject(doc)) {
		kv_err_set(err, "token response: $: expected an object, got %s", json_type_name(doc));
		goto out;
	}
	tok = cJSON_GetObjectItemCaseSensitive(doc, "access_token");
	if (tok == NULL) {
		tok = cJSON_GetObjectItemCaseSensitive(doc, "accessToken");
		if (tok != NULL)
			tok_path = "$.accessToken";
	}
	if (tok == NULL) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");

		if (cJSON_IsString(e)) {
			/* Not a successful response, so its error code may be shown. */
			char code[65];

			copy_printable(code, sizeof(code), e->valuestring, strlen(e->valuestring), true);
			kv_err_set(err, "token response: $.access_token: missing; the response is the error \"%s\"",
			           code);
		} else {
			kv_err_set(err, "token response: $.access_token: missing");
		}
		goto out;
	}
	if (!cJSON_IsString(tok)) {
		kv_err_set(err, "token response: %s: expected a string, got %s", tok_path, json_type_name(tok));
		goto out;
	}
	if (tok->valuestring[0] == '\0') {
		kv_err_set(err, "token response: %s: empty", tok_path);
		goto out;
	}
	if (!token_chars_ok(tok->valuestring)) {
		kv_err_set(err, "token response: %s: contains spaces or control or non-ASCII characters", tok_path);
		goto out;
	}

	on = cJSON_GetObjectItemCaseSensitive(doc, "expires_on");
	cli_on = cJSON_GetObjectItemCaseSensitive(doc, "expiresOn");
	in = cJSON_GetObjectItemCaseSensitive(doc, "expires_in");
	if (!expiry_from_expires_on(on, &exp) &&
	    !(cJSON_IsString(cli_on) && parse_cli_local_time(cli_on->valuestring, &exp)) &&
	    !expiry_from_expires_in(in, now, &exp)) {
		if (on == NULL && cli_on == NULL && in == NULL)
			kv_err_set(err, "token response: $.expires_on: missing, and so are $.expiresOn and $.expires_in");
		else
			kv_err_set(err, "token response: %s: unrecognised expiry (expected unix seconds, "
			                "\"M/D/YYYY H:MM:SS +00:00\", \"YYYY-MM-DD HH:MM:SS.ffffff\" or seconds from now)",
			           on != NULL ? "$.expires_on" : cli_on != NULL ? "$.expiresOn" : "$.expires_in");
		goto out;
	}
	out->access_token = kv_strdup(tok->valuestring);
	out->expires_on = exp;
	ok = true;
out:
	wipe_and_delete(doc);
	return ok;
}

void token_response_release(struct token_response *tok)
{
	if (tok == NULL)
		return;
	if (tok->access_token != NULL) {
		wipe(tok->access_token, strlen(tok->access_token));
		free(tok->access_token);
	}
	tok->access_token = NULL;
	tok->expires_on = 0;
}

/* ---- headers ---- */

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

bool retry_after_parse(const char *value, long long now, int *seconds)
{
	char buf[64];
	const char *p;
	size_t n;
	long long v = 0, when;
	bool neg = false;

	if (value == NULL)
		return false;
	while (is_ows(*value))
		value++;
	n = strlen(value);
	while (n > 0 && is_ows(value[n - 1]))
		n--;
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, value, n);
	buf[n] = '\0';
	p = buf;

	if (*p == '-' || (*p >= '0' && *p <= '9')) {
		/* delta-seconds; "-N" is not in the grammar but means "now" */
		if (*p == '-') {
			neg = true;
			p++;
		}
		if (*p < '0' || *p > '9')
			return false;
		for (; *p >= '0' && *p <= '9'; p++)
			if (v <= INT_MAX)
				v = v * 10 + (*p - '0');
		if (*p != '\0')
			return false;
		*seconds = neg ? 0 : v > INT_MAX ? INT_MAX : (int)v;
		return true;
	}
	if (!parse_http_date(buf, &when))
		return false;
	v = when - now;
	*seconds = v < 0 ? 0 : v > INT_MAX ? INT_MAX : (int)v;
	return true;
}

/* A non-negative decimal in s[0..n) with nothing else; clamped to INT_MAX. */
static bool count_in(const char *s, size_t n, int *out)
{
	long long v = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v <= INT_MAX)
			v = v * 10 + (s[i] - '0');
	}
	*out = v > INT_MAX ? INT_MAX : (int)v;
	return true;
}

int ratelimit_remaining(const char *header_value)
{
	const char *p = header_value;
	int best = -1;

	if (p == NULL)
		return -1;
	while (*p != '\0') {
		const char *start, *end, *semi;
		int v;

		while (is_ows(*p))
			p++;
		start = p;
		while (*p != '\0' && *p != ',')
			p++;
		end = p;
		if (*p == ',')
			p++;
		while (end > start && is_ows(end[-1]))
			end--;
		if (end == start)
			continue; /* "a;1, ,b;2" or a trailing comma */
		/* "name;count" or a bare count; the name is not interpreted */
		semi = NULL;
		for (const char *q = start; q < end; q++)
			if (*q == ';')
				semi = q;
		if (semi != NULL) {
			if (semi == start)
				return -1;
			for (const char *q = start; q < semi; q++)
				if (*q == ';' || is_ows(*q))
					return -1;
			start = semi + 1;
		}
		if (!count_in(start, (size_t)(end - start), &v))
			return -1;
		if (best < 0 || v < best)
			best = v;
	}
	return best;
}
