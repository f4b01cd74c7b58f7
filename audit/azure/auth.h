/*
 * auth.h - credentials.  The only code that touches secrets, certificates
 * and tokens' sources; the rest of kvaudit sees bearer strings and never
 * prints them.  Sources, in this order unless a method is chosen:
 *   env      AZURE_TENANT_ID + AZURE_CLIENT_ID with AZURE_CLIENT_SECRET, or
 *            AZURE_CLIENT_CERTIFICATE_PATH (PEM certificate + private key;
 *            a client-assertion JWT signed RS256 with x5t), or
 *            AZURE_FEDERATED_TOKEN_FILE (re-read for every token request);
 *            AZURE_AUTHORITY_HOST overrides the cloud's login endpoint
 *   msi      IDENTITY_ENDPOINT + IDENTITY_HEADER (App Service, api 2019-08-01),
 *            else IMDS (http://169.254.169.254, or KVAUDIT_IMDS_ENDPOINT);
 *            AZURE_CLIENT_ID picks a user-assigned identity
 *   cli      `az account get-access-token --scope S [--tenant T] -o json`
 */
#ifndef KVAUDIT_AUTH_H
#define KVAUDIT_AUTH_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "audit/azure/cloud.h"
#include "audit/azure/http.h"
#include "audit/util/util.h"

enum auth_method { AUTH_AUTO = 0, AUTH_ENV, AUTH_MSI, AUTH_CLI };

/* "env", "msi" (or "managed-identity"), "cli", "auto"; false for anything else. */
bool auth_method_parse(const char *s, enum auth_method *out);

struct credential;

/*
 * Picks the credential source.  With AUTH_AUTO: env when AZURE_CLIENT_ID,
 * AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or
 * AZURE_FEDERATED_TOKEN_FILE is set, except that AZURE_CLIENT_ID alone (no
 * tenant, no secret) beside IDENTITY_ENDPOINT or KVAUDIT_IMDS_ENDPOINT picks
 * that user-assigned managed identity; else msi when IDENTITY_ENDPOINT or
 * KVAUDIT_IMDS_ENDPOINT is set, else cli when `az` (or $KVAUDIT_AZ) is on
 * PATH, else an error listing what to set.  A chosen source that is
 * incomplete (AZURE_CLIENT_ID without AZURE_TENANT_ID, no
 * secret/certificate/federated file, an unreadable certificate or token
 * file, IDENTITY_ENDPOINT without IDENTITY_HEADER, an AZURE_AUTHORITY_HOST
 * that is not https) is an error naming the variable.  Plain http is only
 * used for a managed-identity endpoint on a loopback or link-local host.
 * The credential borrows cloud and http.
 */
struct credential *credential_new(enum auth_method m, const struct cloud *cloud, struct http_client *http,
                                  struct kv_err *err);
void credential_free(struct credential *c);

/*
 * A bearer token for scope ("https://management.azure.com/.default") issued
 * by tenant (NULL: the credential's own tenant).  Tokens are cached per
 * (scope, tenant) and renewed 5 minutes before they expire; force_refresh
 * drops the cached one first (after a 401).  The string is owned by the
 * credential and valid until the next call for the same key.  On failure
 * returns NULL with err (never containing a secret or a token).
 */
const char *credential_token(struct credential *c, const char *scope, const char *tenant,
                             bool force_refresh, struct kv_err *err);

/* A description without secrets: "client secret of app <id> in tenant <tid>". */
const char *credential_describe(const struct credential *c);
/* The tenant the credential signs in to (AZURE_TENANT_ID, or learnt from the first token), or NULL. */
const char *credential_tenant(const struct credential *c);

/*
 * The claims of a JWT access token (its payload, base64url-decoded, NOT
 * verified: only for describing the caller: oid, tid, idtyp, upn, appid,
 * acct, idp, iss).  NULL when the token is not a JWT.  Caller frees.
 */
cJSON *jwt_claims(const char *token);

/*
 * The certificate credential's client assertion, exposed for tests: a JWT
 * for client_id signed RS256 by the private key in the PEM file at
 * cert_pem_path (decrypted with password when encrypted; NULL for none),
 * its header naming the certificate by x5t (base64url SHA-1 of the DER
 * certificate), with aud = audience (the token URL), iss = sub = client_id,
 * a random jti, nbf = iat = now and exp = now + 600.  The caller wipes and
 * frees the result; NULL with err (naming AZURE_CLIENT_CERTIFICATE_PATH or
 * _PASSWORD) when the file is not a PEM with a matching RSA key and
 * certificate.
 */
char *auth_client_assertion(const char *cert_pem_path, const char *password, const char *client_id,
                            const char *audience, long long now, struct kv_err *err);

#endif
