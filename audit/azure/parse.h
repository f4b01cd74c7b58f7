/*
 * parse.h - pure parsers for the bodies and headers of Azure HTTP responses:
 * ARM list pages, Resource Graph pages, error bodies of every shape Azure
 * uses, access-token responses, Retry-After and the x-ms-ratelimit-remaining
 * headers.  No networking and no global state: the live-scan code hands in
 * bytes and gets typed results (AZURE-FACTS e, f, g).
 *
 * Bodies are (pointer, length) pairs and need not be NUL-terminated.  Except
 * for error bodies, data after the JSON document other than whitespace is an
 * error.  Error
 * messages are lowercase, without a final period, and name the JSON path;
 * callers prefix them with the URL.  They never quote values from the body,
 * so they cannot leak a token.
 */
#ifndef KVAUDIT_AZURE_PARSE_H
#define KVAUDIT_AZURE_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "audit/util/util.h"

/*
 * One page of an ARM list: {"value": [...], "nextLink": "..."}.
 * doc owns the parsed body; value and next_link point into it and live until
 * arm_page_release().
 */
struct arm_page {
	cJSON *doc;
	const cJSON *value;     /* the $.value array, possibly empty */
	const char *next_link;  /* NULL at the last page */
};

/*
 * Parses an ARM list page into *out (which it first clears).  nextLink that
 * is absent, null or "" gives next_link NULL; it is kept verbatim otherwise
 * (an absolute URL with api-version and $skiptoken, possibly on another host:
 * validating the host is the caller's job).  An empty $.value with a nextLink
 * is a valid page: keep following nextLink (AZURE-FACTS b5).  Returns false
 * with a message in err on invalid JSON (with the byte offset), a non-object
 * document, a missing or non-array $.value or a nextLink that is not a
 * string; *out then owns nothing.
 */
bool arm_page_parse(const char *body, size_t len, struct arm_page *out, struct kv_err *err);
/* Frees the document and clears *page; safe on a cleared or released page. */
void arm_page_release(struct arm_page *page);

/*
 * One Resource Graph response (POST .../Microsoft.ResourceGraph/resources):
 * {"totalRecords", "count", "resultTruncated", "$skipToken", "data": [...]}.
 * doc owns the body; data and skip_token point into it.
 */
struct rg_page {
	cJSON *doc;
	const cJSON *data;        /* $.data, an array of row objects */
	const char *skip_token;   /* $skipToken, NULL at the last page */
	long long total_records;  /* $.totalRecords, -1 when absent */
	int count;                /* $.count, or the size of data when absent */
	bool truncated;           /* $.resultTruncated */
};

/*
 * Parses a Resource Graph response into *out (first cleared).
 * resultTruncated is a string enum "true"/"false" in the spec; a JSON boolean
 * is accepted too, absent means false.  $.data must be an array (the
 * objectArray result format): the table format {"columns", "rows"} is an
 * error telling the caller to request objectArray.  The next page is
 * requested by re-POSTing the same body with options.$skipToken = skip_token.
 * Returns false with err set on any malformed field; *out then owns nothing.
 */
bool rg_page_parse(const char *body, size_t len, struct rg_page *out, struct kv_err *err);
void rg_page_release(struct rg_page *page);

/*
 * An Azure error, whatever shape its body had.  Both strings are server text
 * made printable: always NUL-terminated, control characters (C0, DEL, C1) and
 * malformed UTF-8 replaced by '?' (tab, CR and LF inside JSON strings by a
 * space), possibly truncated on a character boundary, possibly empty.
 */
struct azure_error {
	int status;          /* the HTTP status passed in */
	char code[128];      /* e.g. "AuthorizationFailed", "invalid_request", or "" */
	char message[512];
	char inner[64];      /* Key Vault's error.innererror.code ("ForbiddenByFirewall", …), or "" */
};

/*
 * Fills *out from an error response body; never fails.  Understands
 *  - ARM, Key Vault and Resource Graph: {"error": {"code", "message", "details"}};
 *  - Compute without the wrapper: top-level {"code", "message", "details"},
 *    where details[0].message may itself be serialized JSON;
 *  - OAuth (IMDS, App Service, Entra ID): {"error": "...", "error_description": "..."}.
 * A missing code or message falls back to details[0].code / .message.
 * For an empty, non-JSON or unrecognised body, code is "" and message holds
 * the first 200 bytes of the body with control characters replaced by '?'.
 */
void azure_error_parse(const char *body, size_t len, int status, struct azure_error *out);

/*
 * An access token and its expiry.  access_token is owned (heap); release the
 * struct with token_response_release(), which wipes the token before freeing.
 */
struct token_response {
	char *access_token;
	long long expires_on;  /* unix seconds */
};

/*
 * Parses a token response from any credential source into *out (first
 * cleared):
 *  - Entra ID v2 (client credentials): access_token, expires_in as a number;
 *  - IMDS and App Service: expires_in and expires_on as strings, expires_on
 *    an epoch;
 *  - legacy App Service MSI (2017-09-01): expires_on as
 *    "11/10/2022 12:07:05 +00:00", optionally with AM/PM, in that UTC offset;
 *  - az account get-access-token: accessToken, expires_on as an integer
 *    (CLI 2.54+) and/or expiresOn "YYYY-MM-DD HH:MM:SS.ffffff" in local time.
 * The expiry is taken from expires_on, else expiresOn, else now + expires_in;
 * a field with an unrecognised format is skipped in favour of the next one.
 * Returns false with err set when there is no non-empty token, when the
 * token has characters other than visible ASCII (it goes into an HTTP
 * header), or when there is no usable expiry; *out then owns nothing.  The parsed copy of the token inside the
 * JSON tree is wiped before the tree is freed; wiping the caller's body
 * buffer is the caller's job.  err never contains the token or any other
 * part of the body.
 */
bool token_response_parse(const char *body, size_t len, long long now, struct token_response *out,
                          struct kv_err *err);
/* Zeroes the token's memory, frees it and clears *tok; safe to repeat. */
void token_response_release(struct token_response *tok);

/*
 * Parses a Retry-After header value (RFC 7231 7.1.3): delta-seconds, or an
 * HTTP-date (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT"; the obsolete
 * RFC 850 and asctime forms are accepted too, as the RFC asks).  A date is
 * turned into seconds from now.  Negative results are clamped to 0 and huge
 * ones to INT_MAX.  Returns false, leaving *seconds alone, for NULL, empty or
 * malformed values.
 */
bool retry_after_parse(const char *value, long long now, int *seconds);

/*
 * The remaining count in an x-ms-ratelimit-remaining-* header: a plain
 * integer ("3749"), or for x-ms-ratelimit-remaining-resource a comma-separated
 * list of "name;count" pairs ("Microsoft.Compute/LowCostGetSubscriptionMaximum;23999,
 * Microsoft.Compute/LowCostGetResource;32"), of which it returns the smallest
 * count.  Repeated headers joined with commas work the same way.  Returns -1
 * when the value is NULL, empty or has any malformed element.
 */
int ratelimit_remaining(const char *header_value);

#endif
