/*
 * fuzz_parse.c - the parsers of Azure HTTP responses (audit/azure/parse.h).
 * The first byte selects the parser, the rest is the body or header value:
 *   0 arm_page_parse   1 rg_page_parse   2 azure_error_parse (status from
 *   byte 1)   3 token_response_parse   4 retry_after_parse
 *   5 ratelimit_remaining
 * Bodies are passed as (pointer, length) without a terminating NUL, in an
 * exact-size heap copy so ASan sees any read past the end; header values as
 * C strings.  Checks what parse.h promises of each result.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/azure/parse.h"
#include "tests/fuzz/fuzz_common.h"

/* A fixed "now" (2026-11-28T12:00:00Z) so that results do not depend on the clock. */
#define NOW 1795867200LL

static void check_printable(const char *what, const char *s, size_t cap)
{
	size_t len = strnlen(s, cap);

	if (len == cap)
		fuzz_fail("azure_error %s is not NUL-terminated", what);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			fuzz_fail("azure_error %s has control byte 0x%02x at %zu", what, c, i);
	}
	if (!fuzz_utf8_valid((const unsigned char *)s, len))
		fuzz_fail("azure_error %s is not valid UTF-8", what);
	/* C1 controls (U+0080..U+009F, encoded C2 80..C2 9F) must be gone too. */
	for (size_t i = 0; i + 1 < len; i++)
		if ((unsigned char)s[i] == 0xc2 && (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f)
			fuzz_fail("azure_error %s has a C1 control at %zu", what, i);
}

static void fuzz_arm(const char *body, size_t len)
{
	struct arm_page p;
	struct kv_err err = {{0}};

	if (arm_page_parse(body, len, &p, &err)) {
		if (!cJSON_IsArray(p.value))
			fuzz_fail("arm_page: value is not an array");
		if (p.next_link != NULL && p.next_link[0] == '\0')
			fuzz_fail("arm_page: empty next_link instead of NULL");
		arm_page_release(&p);
		arm_page_release(&p);
	} else {
		if (p.doc != NULL)
			fuzz_fail("arm_page: failed parse still owns a document");
		if (err.msg[0] == '\0')
			fuzz_fail("arm_page: failure without a message");
	}
}

static void fuzz_rg(const char *body, size_t len)
{
	struct rg_page p;
	struct kv_err err = {{0}};

	if (rg_page_parse(body, len, &p, &err)) {
		if (!cJSON_IsArray(p.data))
			fuzz_fail("rg_page: data is not an array");
		rg_page_release(&p);
	} else {
		if (p.doc != NULL)
			fuzz_fail("rg_page: failed parse still owns a document");
		if (err.msg[0] == '\0')
			fuzz_fail("rg_page: failure without a message");
	}
}

static void fuzz_error(const char *body, size_t len, int status)
{
	struct azure_error e;

	memset(&e, 0x41, sizeof(e));
	azure_error_parse(body, len, status, &e);
	if (e.status != status)
		fuzz_fail("azure_error: status %d, passed %d", e.status, status);
	check_printable("code", e.code, sizeof(e.code));
	check_printable("message", e.message, sizeof(e.message));
}

static void fuzz_token(const char *body, size_t len)
{
	struct token_response t;
	struct kv_err err = {{0}};

	if (token_response_parse(body, len, NOW, &t, &err)) {
		if (t.access_token == NULL || t.access_token[0] == '\0')
			fuzz_fail("token_response: success without a token");
		for (const char *p = t.access_token; *p != '\0'; p++)
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
				fuzz_fail("token_response: token has byte 0x%02x", (unsigned char)*p);
		/* err must never hold the token, even on success paths that set it. */
		if (err.msg[0] != '\0' && strlen(t.access_token) >= 8 && strstr(err.msg, t.access_token) != NULL)
			fuzz_fail("token_response: message contains the token");
		token_response_release(&t);
		token_response_release(&t);
	} else {
		if (t.access_token != NULL)
			fuzz_fail("token_response: failed parse still owns a token");
		if (err.msg[0] == '\0')
			fuzz_fail("token_response: failure without a message");
	}
}

static void fuzz_retry_after(const char *value)
{
	int seconds = -12345;

	if (retry_after_parse(value, NOW, &seconds)) {
		if (seconds < 0)
			fuzz_fail("retry_after: negative result %d", seconds);
	} else if (seconds != -12345) {
		fuzz_fail("retry_after: failure changed *seconds");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body, *str;
	size_t len;

	if (size < 1)
		return 0;
	len = size - 1;
	/* Exact-size copy (malloc(0) may return NULL: give one byte but pass len 0). */
	body = kv_malloc(len > 0 ? len : 1);
	if (len > 0)
		memcpy(body, data + 1, len);

	switch (data[0] % 6) {
	case 0:
		fuzz_arm(body, len);
		break;
	case 1:
		fuzz_rg(body, len);
		break;
	case 2: {
		int status = len > 0 ? 100 + (unsigned char)body[0] * 2 : 500;
		fuzz_error(len > 0 ? body + 1 : body, len > 0 ? len - 1 : 0, status);
		break;
	}
	case 3:
		fuzz_token(body, len);
		break;
	case 4:
		str = fuzz_cstr(data + 1, len);
		fuzz_retry_after(str);
		free(str);
		break;
	case 5:
		str = fuzz_cstr(data + 1, len);
		if (ratelimit_remaining(str) < -1)
			fuzz_fail("ratelimit_remaining below -1");
		free(str);
		break;
	}
	free(body);
	return 0;
}
