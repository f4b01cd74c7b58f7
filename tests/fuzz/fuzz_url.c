/*
 * fuzz_url.c - where a token may go.  The input is a URL for cloud_classify
 * against the built-in AzureCloud and against an emulator-like cloud whose
 * endpoints carry path prefixes on one loopback port, and an ARM ID for
 * armid_valid_for_url.  Checks cloud.h's promises: a URL that gets a target
 * is https, has no user info, whitespace, control, non-ASCII byte,
 * backslash, encoded '/' or '\' or dot segment; and an ID accepted for a URL
 * path holds only ARM name characters, no dot or empty segment, and
 * classifies as ARM once appended to the ARM endpoint.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/azure/cloud.h"
#include "audit/util/armid.h"
#include "tests/fuzz/fuzz_common.h"

static struct cloud azure;
static struct cloud emulator = {
	.name = (char *)"Emulator",
	.arm = (char *)"https://127.0.0.1:8443/arm",
	.login = (char *)"https://127.0.0.1:8443/login",
	.arm_audience = (char *)"https://management.core.windows.net/",
	.graph = (char *)"https://127.0.0.1:8443/arm/graph",
	.keyvault_suffix = (char *)"vault.azure.net",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct kv_err err = {{0}};

	(void)argc;
	(void)argv;
	if (!cloud_load("AzureCloud", &azure, &err))
		fuzz_fail("cloud_load: %s", err.msg);
	return 0;
}

/* The path part of an https URL: from the '/' that ends the authority, or "" (the caller stops at ? or #). */
static const char *url_path(const char *url)
{
	const char *p = url + 8 + strcspn(url + 8, "/?#");

	return *p == '/' ? p : "";
}

static void check_target(const struct cloud *c, const char *url)
{
	enum cloud_target t = cloud_classify(c, url);
	const char *path, *auth_end;

	if (t == TARGET_NONE)
		return;
	if ((int)t < TARGET_NONE || t > TARGET_LOGIN)
		fuzz_fail("cloud_classify: target %d out of range", (int)t);
	if (strncasecmp(url, "https://", 8) != 0)
		fuzz_fail("cloud_classify(%s): target %d for a non-https URL", c->name, (int)t);
	for (const unsigned char *p = (const unsigned char *)url; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '\\')
			fuzz_fail("cloud_classify(%s): target %d for a URL with byte 0x%02x", c->name, (int)t, *p);
	auth_end = url + 8 + strcspn(url + 8, "/?#");
	if (memchr(url + 8, '@', (size_t)(auth_end - (url + 8))) != NULL)
		fuzz_fail("cloud_classify(%s): target %d for a URL with user info", c->name, (int)t);
	path = url_path(url);
	/* Only the path (before ? or #) must be free of encoded separators and dot segments. */
	{
		size_t plen = strcspn(path, "?#");
		char *pp = kv_strndup(path, plen);
		char *seg, *save = NULL;

		for (char *q = pp; *q != '\0'; q++)
			*q = (char)tolower((unsigned char)*q);
		if (strstr(pp, "%2f") != NULL || strstr(pp, "%5c") != NULL)
			fuzz_fail("cloud_classify(%s): target %d for an encoded separator", c->name, (int)t);
		for (seg = strtok_r(pp, "/", &save); seg != NULL; seg = strtok_r(NULL, "/", &save))
			if (strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0 || strcmp(seg, "%2e") == 0 ||
			    strcmp(seg, "%2e%2e") == 0 || strcmp(seg, ".%2e") == 0 || strcmp(seg, "%2e.") == 0)
				fuzz_fail("cloud_classify(%s): target %d for a dot segment", c->name, (int)t);
		free(pp);
	}
	if (t == TARGET_ARM && c == &emulator) {
		/* The path must start with /arm at a segment boundary. */
		if (strncmp(path, "/arm", 4) != 0 || (path[4] != '\0' && path[4] != '/' && path[4] != '?' && path[4] != '#'))
			fuzz_fail("cloud_classify(emulator): ARM for a path outside /arm");
	}
}

static void check_armid(const char *id)
{
	char *url;

	if (!armid_valid_for_url(id))
		return;
	if (strncasecmp(id, "/subscriptions/", 15) != 0 && strncasecmp(id, "/providers/", 11) != 0)
		fuzz_fail("armid_valid_for_url: accepted an ID with another root");
	for (const char *p = id; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr("-_.()/", *p) == NULL)
			fuzz_fail("armid_valid_for_url: accepted byte 0x%02x", (unsigned char)*p);
	{
		char *copy = kv_strdup(id);
		char *seg, *save = NULL;
		size_t n = strlen(copy);

		if (strstr(copy, "//") != NULL)
			fuzz_fail("armid_valid_for_url: accepted an empty segment");
		(void)n;
		for (seg = strtok_r(copy, "/", &save); seg != NULL; seg = strtok_r(NULL, "/", &save))
			if (strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0)
				fuzz_fail("armid_valid_for_url: accepted a dot segment");
		free(copy);
	}
	url = kv_asprintf("%s%s?api-version=2024-11-01", azure.arm, id);
	if (cloud_classify(&azure, url) != TARGET_ARM)
		fuzz_fail("a valid ARM ID appended to the ARM endpoint is not TARGET_ARM");
	free(url);
}

/* True when s has a '%' not followed by two hex digits. */
static bool has_stray_percent(const char *s)
{
	for (const char *p = strchr(s, '%'); p != NULL; p = strchr(p + 1, '%'))
		if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);

	/*
	 * XXX triage knob, never set in CI: KVAUDIT_FUZZ_SKIP_STRAY_PERCENT=1 skips URLs with a
	 * malformed %-escape, the known path_is_tricky() bug (tests/fuzz/regressions/fuzz_url/),
	 * so that a local run can look for other bugs until it is fixed.
	 */
	if (getenv("KVAUDIT_FUZZ_SKIP_STRAY_PERCENT") != NULL && has_stray_percent(s)) {
		free(s);
		return 0;
	}
	check_target(&azure, s);
	check_target(&emulator, s);
	check_armid(s);
	free(s);
	return 0;
}
