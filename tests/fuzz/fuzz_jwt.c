/*
 * fuzz_jwt.c - jwt_claims on any string (an access token from a credential
 * source, or from `az`): base64url decoding of the payload and JSON parsing.
 * The result must be NULL or a JSON object.
 */
#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "audit/azure/auth.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	cJSON *claims = jwt_claims(s);

	if (claims != NULL && !cJSON_IsObject(claims))
		fuzz_fail("jwt_claims returned a non-object");
	cJSON_Delete(claims);
	free(s);
	return 0;
}
