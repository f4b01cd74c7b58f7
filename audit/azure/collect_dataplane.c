/*
 * collect_dataplane.c - the Key Vault data plane part of a live collection
 * (--data-plane): the KEK key bundles the certificate-backed check reads,
 * each requested only from a host under the cloud's Key Vault suffix, with a
 * token for the key vault's own tenant.
 */
#include <stdlib.h>
#include <string.h>

#include "audit/azure/collect_internal.h"
#include "audit/estate/estate.h"

/* KEK key bundles for the certificate-backed check, through each vault's own host. */
void collect_data_plane(struct run *r)
{
	char *text = cJSON_PrintUnformatted(r->doc);
	struct kv_err err = {{0}};
	struct estate *e = estate_parse(text, strlen(text), "collected estate", NULL, &err);
	cJSON *done = cJSON_CreateArray();

	free(text);
	if (!e) {
		struct az_failure f = {HTTP_FATAL, 0, "InternalError", ""};

		kv_strlcpy(f.message, err.msg, sizeof(f.message));
		run_record(r, "keys", &f, NULL);
		cJSON_Delete(done);
		return;
	}
	for (size_t i = 0; i < e->nvms; i++) {
		const struct ade_info *a = &e->vms[i].ade;

		for (size_t k = 0; a->encrypted && k < a->nvolumes; k++) {
			const char *kid = a->volumes[k].key_url;
			const struct vault *v = a->volumes[k].kek_vault ? estate_vault(e, a->volumes[k].kek_vault) : NULL;
			cJSON *bundle = NULL;
			struct az_failure f;
			char *url;

			if (!kid || json_has_id(done, kid))
				continue;
			cJSON_AddItemToArray(done, cJSON_CreateObject());
			cJSON_AddStringToObject(cJSON_GetArrayItem(done, cJSON_GetArraySize(done) - 1), "id", kid);
			url = kv_asprintf("%s?api-version=%s", kid, API_KEYVAULT_DATA);
			if (cloud_classify(r->c->cloud, url) != TARGET_KEYVAULT) {
				struct az_failure g = {HTTP_FATAL, 0, "ForeignHost", ""};

				snprintf(g.message, sizeof(g.message),
				         "key URL is not under the cloud's Key Vault suffix '%s': not requested",
				         r->c->cloud->keyvault_suffix);
				run_record(r, kid, &g, NULL);
			} else if (az_get_json(r->c, url, v ? v->tenant_id : NULL, &bundle, &f, &err) == HTTP_OK) {
				cJSON_AddItemToArray(r->keys, bundle);
				bundle = NULL;
			} else {
				run_record(r, kid, &f, &err);
			}
			cJSON_Delete(bundle);
			free(url);
		}
	}
	cJSON_Delete(done);
	estate_free(e);
}
