/*
 * fuzz_fastjson.c - fastjson against cJSON itself (audit/util/fastjson.h):
 * on every input both accept or both reject; where they accept, both end at
 * the same byte, give the same tree (types, keys, strings, numbers bit for
 * bit, valueint, child->prev) and print identically.  The input is parsed
 * from an exact-size heap copy with no NUL after it, so ASan sees any read
 * past the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/util/fastjson.h"
#include "tests/fuzz/fuzz_common.h"

static struct fastjson_arena arena;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = kv_malloc(size ? size : 1);
	const char *cend = NULL, *fend = NULL;
	cJSON *c, *f;

	if (size)
		memcpy(text, data, size);
	c = cJSON_ParseWithLengthOpts(text, size, &cend, false);
	f = fastjson_parse(text, size, &fend, &arena);
	if (!c != !f)
		fuzz_fail("cJSON %s, fastjson %s", c ? "accepts" : "rejects", f ? "accepts" : "rejects");
	if (c) {
		char *pc = cJSON_PrintUnformatted(c), *pf = cJSON_PrintUnformatted(f);

		if (cend != fend)
			fuzz_fail("cJSON ends at byte %td, fastjson at %td", cend - text, fend - text);
		if (!fastjson_same_tree(c, f))
			fuzz_fail("the trees differ");
		if (!pc != !pf || (pc && strcmp(pc, pf) != 0))
			fuzz_fail("they print differently: %s | %s", pc ? pc : "(null)", pf ? pf : "(null)");
		free(pc);
		free(pf);
	}
	cJSON_Delete(c);
	fastjson_arena_reset(&arena);
	free(text);
	return 0;
}
