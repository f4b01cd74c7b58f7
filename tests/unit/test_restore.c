/*
 * test_restore.c - restore-readiness facts (audit/estate/restore.c) and the
 * data-plane lists of the estate loader: binding.bek.* and binding.kek.*
 * built through estate_parse + facts_prepare + facts_each as the audit runs
 * them, judged as of a fixed time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "audit/estate/estate.h"
#include "audit/estate/facts.h"
#include "audit/util/util.h"

#define T1 "a1a1a1a1-0000-4000-8000-000000000001"
#define S1 "51000000-0000-4000-8000-000000000001"
#define BMS "0bb50000-0000-4000-8000-0000000000b1"
#define RG1 "/subscriptions/" S1 "/resourceGroups/rg-app"
#define VM_A RG1 "/providers/Microsoft.Compute/virtualMachines/vm-a"
#define KV_A RG1 "/providers/Microsoft.KeyVault/vaults/kv-a"
#define SEC1 "https://kv-a.vault.azure.net/secrets/S-1/0123456789abcdef0123456789abcdef"
#define SEC2 "https://kv-a.vault.azure.net/secrets/S-2/0123456789abcdef0123456789abcdef"
#define KEY1 "https://kv-a.vault.azure.net/keys/K-1/0123456789abcdef0123456789abcdef"

/* 2026-11-28T12:00:00Z */
#define NOW 1795867200LL
#define DAY 86400LL

#define E(body) "{'kind':'kvaudit.estate','version':1," body "}"
#define BASE \
	"'subscriptions':[{'id':'/subscriptions/" S1 "','subscriptionId':'" S1 "','tenantId':'" T1 "'}]," \
	"'tenants':[{'tenantId':'" T1 "','callerUserType':'Member','backupManagementService':{'status':'found','objectId':'" BMS "'}}]," \
	"'vaults':[{'id':'" KV_A "','location':'westeurope','properties':{'tenantId':'" T1 "','vaultUri':'https://kv-a.vault.azure.net/','accessPolicies':[]}}]," \
	"'virtualMachines':[{'id':'" VM_A "','location':'westeurope','properties':{'instanceView':{'disks':[" \
	"{'name':'os','encryptionSettings':[{'enabled':true,'diskEncryptionKey':{'sourceVault':{'id':'" KV_A "'},'secretUrl':'" SEC1 "'}," \
	"'keyEncryptionKey':{'sourceVault':{'id':'" KV_A "'},'keyUrl':'" KEY1 "'}}]}," \
	"{'name':'data','encryptionSettings':[{'enabled':true,'diskEncryptionKey':{'sourceVault':{'id':'" KV_A "'},'secretUrl':'" SEC2 "'}}]}]}}}]"
#define RSA_OK "'kty':'RSA','key_ops':['wrapKey','unwrapKey']"

static char *j(const char *s)
{
	char *p = kv_strdup(s);

	for (char *q = p; *q; q++)
		if (*q == '\'')
			*q = '"';
	return p;
}

struct got {
	cJSON *binding;
};

static void keep_binding(enum subject_kind kind, const cJSON *facts, void *arg)
{
	struct got *g = arg;

	if (kind == SUBJ_BINDING && !g->binding)
		g->binding = cJSON_Duplicate(facts, true);
}

/* The one binding (VM_A x KV_A) of an estate, judged as of NOW with a warning window of warn days. */
static cJSON *binding(const char *sq, long long warn_days)
{
	struct estate_opts o = {.as_of = NOW, .expiry_warning = warn_days * DAY, .expiry_warning_set = true};
	struct kv_err err = {{0}};
	char *t = j(sq);
	struct estate *e = estate_parse(t, strlen(t), "t.estate", &o, &err);
	struct facts_ctx *c;
	struct got g = {NULL};

	free(t);
	if (!e)
		fail_msg("estate_parse: %s", err.msg);
	c = facts_prepare(e);
	facts_each(c, keep_binding, &g);
	facts_ctx_free(c);
	estate_free(e);
	assert_non_null(g.binding);
	return g.binding;
}

static const cJSON *at(const cJSON *f, const char *a, const char *b, const char *c)
{
	return cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(f, a), b), c);
}

/* The URLs in binding.<kind>.<list>, joined with ' '. */
static void list_is(const cJSON *f, const char *kind, const char *list, const char *want)
{
	const cJSON *arr = at(f, "binding", kind, list), *it;
	char buf[1024] = "";

	assert_true(cJSON_IsArray(arr));
	cJSON_ArrayForEach(it, arr) {
		if (buf[0])
			strncat(buf, " ", sizeof(buf) - strlen(buf) - 1);
		strncat(buf, it->valuestring, sizeof(buf) - strlen(buf) - 1);
	}
	if (strcmp(buf, want) != 0)
		fail_msg("binding.%s.%s: got '%s', want '%s'", kind, list, buf, want);
}

static const char *unavail(const cJSON *f, const char *path, const char *field)
{
	return cJSON_GetStringValue(at(f, "$unavailable", path, field));
}

static const char *state_of(const cJSON *f, const char *kind, const char *details, size_t i)
{
	return cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(at(f, "binding", kind, details), (int)i), "state"));
}

static void every_state_is_judged_as_of_the_audit_time(void **state)
{
	char doc[8192];
	cJSON *f;

	(void)state;
	snprintf(doc, sizeof(doc), E(BASE ","
	         "'secrets':[{'id':'" SEC1 "','attributes':{'enabled':true,'exp':%lld}},"
	         "{'id':'" SEC2 "','attributes':{'enabled':true,'exp':%lld}}],"
	         "'keys':[{'key':{'kid':'" KEY1 "'," RSA_OK "},'attributes':{'nbf':%lld}}]"),
	         NOW + 10 * DAY, NOW - 1, NOW + DAY);
	f = binding(doc, 30);
	list_is(f, "bek", "expiring", SEC1);
	list_is(f, "bek", "unusable", SEC2);
	list_is(f, "bek", "missing", "");
	list_is(f, "kek", "unusable", KEY1);
	assert_string_equal(state_of(f, "bek", "secrets", 1), "expired");
	assert_string_equal(state_of(f, "kek", "keys", 0), "notYetValid");
	assert_null(unavail(f, "binding.bek", "status"));
	assert_null(unavail(f, "binding.kek", "status"));
	assert_null(unavail(f, "binding.kek.unsuitable", "status"));
	cJSON_Delete(f);
	/* A narrower window: 10 days ahead is no longer "about to expire". */
	f = binding(doc, 5);
	list_is(f, "bek", "expiring", "");
	assert_string_equal(state_of(f, "bek", "secrets", 0), "active");
	cJSON_Delete(f);
}

static void deleted_is_recoverable_until_the_purge_date(void **state)
{
	char doc[8192];
	cJSON *f;

	(void)state;
	snprintf(doc, sizeof(doc), E(BASE ",'secrets':[],'keys':[],"
	         "'deletedSecrets':[{'id':'https://kv-a.vault.azure.net/secrets/s-1','recoveryId':"
	         "'https://kv-a.vault.azure.net/deletedsecrets/S-1','scheduledPurgeDate':%lld,'deletedDate':%lld,"
	         "'attributes':{'enabled':true}},"
	         "{'id':'https://kv-a.vault.azure.net/secrets/S-2','scheduledPurgeDate':%lld}],"
	         "'deletedKeys':[{'key':{'kid':'" KEY1 "'," RSA_OK "},'recoveryId':"
	         "'https://kv-a.vault.azure.net/deletedkeys/K-1','scheduledPurgeDate':%lld,'managed':true}]"),
	         NOW + 60 * DAY, NOW - DAY, NOW - 1, NOW + DAY);
	f = binding(doc, 30);
	/* Matched by host and name (any version, any case); the purged one counts as missing. */
	list_is(f, "bek", "deleted", SEC1);
	list_is(f, "bek", "missing", SEC2);
	list_is(f, "kek", "deleted", KEY1);
	list_is(f, "kek", "missing", "");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetArrayItem(at(f, "binding", "bek", "secrets"), 0), "scheduledPurgeDate")), "2027-01-27T12:00:00Z");
	/* A deleted certificate key is still certificate-backed. */
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(f, "binding"),
	                                                          "kekManaged")));
	cJSON_Delete(f);
}

static void unsuitable_keys_and_disabled_secrets(void **state)
{
	cJSON *f;

	(void)state;
	f = binding(E(BASE ",'secrets':[{'id':'" SEC1 "','attributes':{'enabled':false}},{'id':'" SEC2 "'}],"
	              "'keys':[{'key':{'kid':'" KEY1 "','kty':'EC','key_ops':['wrapKey','unwrapKey']}}]"), 30);
	list_is(f, "bek", "unusable", SEC1);
	list_is(f, "kek", "unsuitable", KEY1);
	list_is(f, "kek", "unusable", "");
	cJSON_Delete(f);
	f = binding(E(BASE ",'secrets':[],'keys':[{'key':{'kid':'" KEY1 "','kty':'RSA-HSM','key_ops':['wrapKey']}}]"), 30);
	list_is(f, "kek", "unsuitable", KEY1);
	list_is(f, "bek", "missing", SEC1 " " SEC2);
	cJSON_Delete(f);
	f = binding(E(BASE ",'secrets':[],'keys':[{'key':{'kid':'" KEY1 "'," RSA_OK "}}]"), 30);
	list_is(f, "kek", "unsuitable", "");
	cJSON_Delete(f);
}

static void not_collected_is_skipped_and_unreadable_is_an_error(void **state)
{
	cJSON *f;

	(void)state;
	f = binding(E(BASE), 30);
	assert_string_equal(unavail(f, "binding.bek", "status"), "skipped");
	assert_non_null(strstr(unavail(f, "binding.bek", "reason"), "--data-plane"));
	assert_string_equal(unavail(f, "binding.kek", "status"), "skipped");
	cJSON_Delete(f);

	f = binding(E(BASE ",'secrets':[],'keys':[],'errors':["
	              "{'scope':'" SEC1 "','status':403,'code':'ForbiddenByFirewall','message':'Client address is not authorized'},"
	              "{'scope':'" KEY1 "','status':403,'code':'AccessDenied','message':'no keys get permission'}]"), 30);
	assert_string_equal(unavail(f, "binding.bek", "status"), "error");
	assert_non_null(strstr(unavail(f, "binding.bek", "reason"), "unreachable"));
	assert_null(strstr(unavail(f, "binding.bek", "reason"), "lacks"));
	assert_string_equal(unavail(f, "binding.kek", "status"), "error");
	assert_non_null(strstr(unavail(f, "binding.kek", "reason"), "keys: get, list"));
	assert_non_null(strstr(unavail(f, "binding.kek", "reason"), "Key Vault Reader"));
	cJSON_Delete(f);

	/* An error on an ancestor of the URL (the vault's /secrets) covers it too. */
	f = binding(E(BASE ",'secrets':[],'keys':[],'errors':[{'scope':'https://kv-a.vault.azure.net/secrets',"
	              "'status':500,'code':'InternalServerError','message':'boom'}]"), 30);
	assert_string_equal(unavail(f, "binding.bek", "status"), "error");
	assert_non_null(strstr(unavail(f, "binding.bek", "reason"), "500 InternalServerError"));
	assert_null(unavail(f, "binding.kek", "status"));
	list_is(f, "kek", "missing", KEY1);
	cJSON_Delete(f);
}

static void bad_attribute_types_are_input_errors(void **state)
{
	struct kv_err err = {{0}};
	char *t = j(E(BASE ",'secrets':[{'id':'" SEC1 "','attributes':{'exp':'tomorrow'}}]"));
	struct estate *e = estate_parse(t, strlen(t), "t.estate", NULL, &err);

	(void)state;
	free(t);
	assert_null(e);
	assert_non_null(strstr(err.msg, "$.secrets[0].attributes.exp"));
	t = j(E(BASE ",'deletedSecrets':[{'recoveryId':'x'}]"));
	e = estate_parse(t, strlen(t), "t.estate", NULL, &err);
	free(t);
	assert_null(e);
	assert_non_null(strstr(err.msg, "$.deletedSecrets[0]"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_state_is_judged_as_of_the_audit_time),
		cmocka_unit_test(deleted_is_recoverable_until_the_purge_date),
		cmocka_unit_test(unsuitable_keys_and_disabled_secrets),
		cmocka_unit_test(not_collected_is_skipped_and_unreadable_is_an_error),
		cmocka_unit_test(bad_attribute_types_are_input_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
