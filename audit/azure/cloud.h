/*
 * cloud.h - the Azure cloud kvaudit talks to: built-in definitions for
 * AzureCloud, AzureUSGovernment and AzureChinaCloud, or a JSON file as
 * `az cloud show` prints it (DESIGN.md "Clouds and credentials").  Tokens
 * are only ever sent to the hosts a cloud names: cloud_classify is the one
 * place that decides which token, if any, a URL may carry.
 */
#ifndef KVAUDIT_CLOUD_H
#define KVAUDIT_CLOUD_H

#include <stdbool.h>

#include "audit/util/util.h"

struct cloud {
	char *name;             /* "AzureCloud", or the file's "name" */
	char *arm;              /* endpoints.resourceManager, no trailing '/': "https://management.azure.com" */
	char *login;            /* endpoints.activeDirectory, no trailing '/': "https://login.microsoftonline.com" */
	char *arm_audience;     /* endpoints.activeDirectoryResourceId: "https://management.core.windows.net/" */
	char *graph;            /* endpoints.microsoftGraphResourceId, no trailing '/': "https://graph.microsoft.com" */
	char *keyvault_suffix;  /* suffixes.keyvaultDns without leading '.': "vault.azure.net" */
	char *ca_bundle;        /* kvaudit's own "caBundle": a PEM file trusted besides the system's, or NULL */
	char *backup_app_id;    /* Backup Management Service appId in this cloud, or NULL when unknown */
};

/* What a URL is, for the purpose of attaching a token. */
enum cloud_target {
	TARGET_NONE = 0,   /* not a host of this cloud: never send a token there */
	TARGET_ARM,
	TARGET_GRAPH,
	TARGET_KEYVAULT,   /* https://<name>.<keyvault_suffix>/ */
	TARGET_LOGIN,
};

/*
 * name_or_file: a built-in cloud name (case-insensitive) or the path of a
 * JSON cloud file.  Every endpoint must be an https URL without user
 * info, query or fragment.  Returns false with err naming the file and field.
 * In a file, "name" is optional (the path stands in for it), the leading '.'
 * of suffixes.keyvaultDns is dropped, "caBundle" is resolved against the
 * file's directory unless absolute and must hold a PEM certificate, and
 * kvaudit's own optional "backupAppId" must be a GUID.  An endpoint may
 * carry a path prefix ("https://127.0.0.1:8443/arm/", for an emulator
 * serving several endpoints on one port).  On failure *out owns nothing.
 */
bool cloud_load(const char *name_or_file, struct cloud *out, struct kv_err *err);
void cloud_release(struct cloud *c);

/*
 * Classifies url: TARGET_ARM when its scheme, host and port equal the ARM
 * endpoint's, likewise Graph and login, TARGET_KEYVAULT for
 * https://<label>.<keyvault_suffix>[:443]/..., else TARGET_NONE.  A URL
 * with user info, a non-https scheme or an unparsable host is TARGET_NONE.
 * Hosts compare case-insensitively; no port equals :443.  When an endpoint
 * has a path prefix, the URL's path must start with it at a segment
 * boundary (the longest matching prefix wins).  Whitespace, control or
 * non-ASCII bytes and backslashes anywhere, "." or ".." path segments (also
 * percent-encoded) and encoded '/' or '\' make a URL TARGET_NONE.
 */
enum cloud_target cloud_classify(const struct cloud *c, const char *url);

/* The token scope for a target: "<arm_audience without trailing '/'>/.default",
 * "<graph>/.default", "https://<keyvault_suffix>/.default" (https://vault.azure.net/.default,
 * https://vault.usgovcloudapi.net/.default, https://vault.azure.cn/.default).
 * Newly allocated; NULL for TARGET_NONE and TARGET_LOGIN. */
char *cloud_scope(const struct cloud *c, enum cloud_target t);

#endif
