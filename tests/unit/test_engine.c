/*
 * test_engine.c - the rule engine and catalog: parsing and its messages,
 * every operator, three-valued logic, evidence, message templates, rule
 * directories and the built-in catalog.
 *
 * JSON in this file is written with single quotes (none of it needs an
 * apostrophe); j() turns them into double quotes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>

#include "rules/engine.h"

#ifndef KV_SOURCE_DIR
#define KV_SOURCE_DIR "."
#endif
#define DATA_DIR KV_SOURCE_DIR "/tests/unit/data/engine"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A copy of s with ' turned into "; owned by the caller. */
static char *j(const char *s)
{
	char *p = kv_strdup(s);

	for (char *q = p; *q; q++)
		if (*q == '\'')
			*q = '"';
	return p;
}

static cJSON *facts_of(const char *s)
{
	char *t = j(s);
	cJSON *f = cJSON_Parse(t);

	free(t);
	if (!f)
		fail_msg("bad test facts: %s", s);
	return f;
}

/* Parses a single-quoted rule; returns whether it parsed. */
static bool parse(const char *s, struct rule *r, struct kv_err *err)
{
	char *t = j(s);
	bool ok = rule_parse(t, strlen(t), "t.json", r, err);

	free(t);
	return ok;
}

/* A vault rule whose only condition is require (single-quoted JSON). */
static void require_rule(const char *require, const char *subject, struct rule *r)
{
	char text[2048];
	struct kv_err err = {{0}};

	snprintf(text, sizeof(text),
	         "{'id':'T-1','title':'the title','severity':'low','subject':'%s','require':%s,"
	         "'message':'failed','passMessage':'passed'}", subject, require);
	if (!parse(text, r, &err))
		fail_msg("rule did not parse: %s", err.msg);
}

static const char *const BASE_FACTS =
	"{'vault':{'name':'KV-Prod','rbac':false,'policyCount':3,'tenantId':'T1',"
	"'softDeleteRetentionDays':null,'resourceGroup':'rg-prod-1',"
	"'backupPolicy':{'secrets':['Get','List'],'keys':[],'present':true}}}";

/* ---------- names ---------- */

static void severity_and_status_names_round_trip(void **state)
{
	static const char *const names[] = {"info", "low", "medium", "high", "critical"};
	enum severity s;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		assert_string_equal(severity_name((enum severity)i), names[i]);
		assert_true(severity_parse(names[i], &s));
		assert_int_equal(s, i);
	}
	assert_true(severity_parse("CrItIcAl", &s));
	assert_int_equal(s, SEV_CRITICAL);
	assert_false(severity_parse("urgent", &s));
	assert_false(severity_parse(NULL, &s));
	assert_string_equal(status_name(ST_PASS), "pass");
	assert_string_equal(status_name(ST_FAIL), "fail");
	assert_string_equal(status_name(ST_ERROR), "error");
	assert_string_equal(status_name(ST_SKIPPED), "skipped");
	assert_string_equal(status_name(ST_SUPPRESSED), "suppressed");
	assert_string_equal(status_name(ST_NOT_APPLICABLE), "not_applicable");
}

/* ---------- operators ---------- */

struct op_case {
	const char *leaf;
	const char *facts;      /* NULL: BASE_FACTS */
	enum finding_status want;
};

static const struct op_case op_cases[] = {
	/* eq: strings case-insensitively, numbers, booleans, null, type mismatch */
	{"{'fact':'vault.name','eq':'kv-prod'}", NULL, ST_PASS},
	{"{'fact':'vault.name','eq':'KV-PROD'}", NULL, ST_PASS},
	{"{'fact':'vault.name','eq':'kv-dev'}", NULL, ST_FAIL},
	{"{'fact':'vault.rbac','eq':false}", NULL, ST_PASS},
	{"{'fact':'vault.rbac','eq':true}", NULL, ST_FAIL},
	{"{'fact':'vault.policyCount','eq':3}", NULL, ST_PASS},
	{"{'fact':'vault.policyCount','eq':3.5}", NULL, ST_FAIL},
	{"{'fact':'vault.uri','eq':null}", NULL, ST_PASS},
	{"{'fact':'vault.softDeleteRetentionDays','eq':null}", NULL, ST_PASS},
	{"{'fact':'vault.name','eq':null}", NULL, ST_FAIL},
	{"{'fact':'vault.uri','eq':'https://x'}", NULL, ST_FAIL},
	{"{'fact':'vault.rbac','eq':false}", "{'vault':{'rbac':'false'}}", ST_FAIL},
	{"{'fact':'vault.rbac','eq':false}", "{'vault':{'rbac':0}}", ST_FAIL},
	{"{'fact':'vault.policyCount','eq':1}", "{'vault':{'policyCount':true}}", ST_FAIL},
	/* ne is the negation of eq */
	{"{'fact':'vault.name','ne':'kv-dev'}", NULL, ST_PASS},
	{"{'fact':'vault.name','ne':'kv-PROD'}", NULL, ST_FAIL},
	{"{'fact':'vault.uri','ne':null}", NULL, ST_FAIL},
	{"{'fact':'vault.name','ne':null}", NULL, ST_PASS},
	{"{'fact':'vault.uri','ne':'x'}", NULL, ST_PASS},
	/* in / not_in */
	{"{'fact':'vault.name','in':['a','kv-prod']}", NULL, ST_PASS},
	{"{'fact':'vault.name','in':['a','b']}", NULL, ST_FAIL},
	{"{'fact':'vault.name','in':[]}", NULL, ST_FAIL},
	{"{'fact':'vault.policyCount','in':[1,3]}", NULL, ST_PASS},
	{"{'fact':'vault.uri','in':['x']}", NULL, ST_FAIL},
	{"{'fact':'vault.name','not_in':['a','b']}", NULL, ST_PASS},
	{"{'fact':'vault.name','not_in':['KV-prod']}", NULL, ST_FAIL},
	{"{'fact':'vault.uri','not_in':['x']}", NULL, ST_PASS},
	/* contains: array element, or case-insensitive substring */
	{"{'fact':'vault.backupPolicy.secrets','contains':'get'}", NULL, ST_PASS},
	{"{'fact':'vault.backupPolicy.secrets','contains':'backup'}", NULL, ST_FAIL},
	{"{'fact':'vault.backupPolicy.secrets','contains':'ge'}", NULL, ST_FAIL},
	{"{'fact':'vault.name','contains':'PROD'}", NULL, ST_PASS},
	{"{'fact':'vault.name','contains':'dev'}", NULL, ST_FAIL},
	{"{'fact':'vault.name','contains':''}", NULL, ST_PASS},
	{"{'fact':'vault.uri','contains':'x'}", NULL, ST_FAIL},
	/* superset / subset, case-insensitively */
	{"{'fact':'vault.backupPolicy.secrets','superset':['get','LIST']}", NULL, ST_PASS},
	{"{'fact':'vault.backupPolicy.secrets','superset':['get','list','backup']}", NULL, ST_FAIL},
	{"{'fact':'vault.backupPolicy.secrets','superset':[]}", NULL, ST_PASS},
	{"{'fact':'vault.backupPolicy.certificates','superset':[]}", NULL, ST_FAIL},
	{"{'fact':'vault.backupPolicy.secrets','superset':['get']}", "{'vault':{'backupPolicy':{'secrets':'get'}}}", ST_FAIL},
	{"{'fact':'vault.backupPolicy.secrets','subset':['GET','list','backup']}", NULL, ST_PASS},
	{"{'fact':'vault.backupPolicy.secrets','subset':['get']}", NULL, ST_FAIL},
	{"{'fact':'vault.backupPolicy.keys','subset':[]}", NULL, ST_PASS},
	{"{'fact':'vault.backupPolicy.secrets','subset':[]}", NULL, ST_FAIL},
	{"{'fact':'vault.backupPolicy.certificates','subset':['get']}", NULL, ST_FAIL},
	/* regex: PCRE2, case as the pattern says */
	{"{'fact':'vault.name','regex':'^KV-'}", NULL, ST_PASS},
	{"{'fact':'vault.name','regex':'^kv-'}", NULL, ST_FAIL},
	{"{'fact':'vault.name','regex':'(?i)^kv-p\\\\w+$'}", NULL, ST_PASS},
	{"{'fact':'vault.uri','regex':'.*'}", NULL, ST_FAIL},
	{"{'fact':'vault.name','regex':'.*'}", "{'vault':{'name':42}}", ST_FAIL},
	/* exists */
	{"{'fact':'vault.name','exists':true}", NULL, ST_PASS},
	{"{'fact':'vault.name','exists':false}", NULL, ST_FAIL},
	{"{'fact':'vault.uri','exists':true}", NULL, ST_FAIL},
	{"{'fact':'vault.uri','exists':false}", NULL, ST_PASS},
	{"{'fact':'vault.softDeleteRetentionDays','exists':true}", NULL, ST_FAIL},
	{"{'fact':'vault.softDeleteRetentionDays','exists':false}", NULL, ST_PASS},
	/* gt / lt */
	{"{'fact':'vault.policyCount','gt':2}", NULL, ST_PASS},
	{"{'fact':'vault.policyCount','gt':3}", NULL, ST_FAIL},
	{"{'fact':'vault.policyCount','lt':3.5}", NULL, ST_PASS},
	{"{'fact':'vault.policyCount','lt':3}", NULL, ST_FAIL},
	{"{'fact':'vault.softDeleteRetentionDays','gt':0}", NULL, ST_FAIL},
	{"{'fact':'vault.softDeleteRetentionDays','lt':100}", NULL, ST_FAIL},
	{"{'fact':'vault.policyCount','lt':100}", "{'vault':{'policyCount':'3'}}", ST_FAIL},
};

static void every_operator_is_true_and_false_as_documented(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(op_cases); i++) {
		const struct op_case *c = &op_cases[i];
		struct rule r;
		struct rule_outcome o;
		cJSON *facts = facts_of(c->facts ? c->facts : BASE_FACTS);

		require_rule(c->leaf, "vault", &r);
		rule_evaluate(&r, facts, &o);
		if (o.status != c->want)
			fail_msg("case %zu %s: got %s, want %s", i, c->leaf, status_name(o.status), status_name(c->want));
		assert_string_equal(o.message, c->want == ST_PASS ? "passed" : "failed");
		assert_null(o.reason);
		rule_outcome_release(&o);
		rule_release(&r);
		cJSON_Delete(facts);
	}
}

static void strings_compare_ascii_case_insensitively_everywhere(void **state)
{
	static const char *const leaves[] = {
		"{'fact':'vm.os','eq':'WINDOWS'}",
		"{'fact':'vm.os','ne':'linux'}",
		"{'fact':'vm.os','in':['linux','windows']}",
		"{'fact':'vm.os','not_in':['LINUX']}",
		"{'fact':'vm.os','contains':'DOW'}",
		"{'fact':'vm.ade.sources','contains':'DISK'}",
		"{'fact':'vm.ade.sources','superset':['DISK','extension']}",
		"{'fact':'vm.ade.sources','subset':['disk','EXTENSION','vmModel']}",
	};
	cJSON *facts = facts_of("{'vm':{'os':'Windows','ade':{'sources':['Disk','Extension']}}}");

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(leaves); i++) {
		struct rule r;
		struct rule_outcome o;

		require_rule(leaves[i], "vm", &r);
		rule_evaluate(&r, facts, &o);
		if (o.status != ST_PASS)
			fail_msg("%s: got %s", leaves[i], status_name(o.status));
		rule_outcome_release(&o);
		rule_release(&r);
	}
	cJSON_Delete(facts);
}

/* ---------- three-valued logic ---------- */

/* T true, F false, E error (vault.tenantId), S skipped (vault.backupPolicy), E2 error, S2 skipped. */
#define T "{'fact':'vault.name','eq':'kv-prod'}"
#define F "{'fact':'vault.name','eq':'other'}"
#define E "{'fact':'vault.tenantId','eq':'T1'}"
#define E2 "{'fact':'vault.location','eq':'westeurope'}"
#define S "{'fact':'vault.backupPolicy.secrets','contains':'get'}"
#define S2 "{'fact':'vault.backupRbac.coversKeys','eq':true}"

static const char *const LOGIC_FACTS =
	"{'vault':{'name':'KV-Prod','tenantId':'T1','location':'westeurope','backupPolicy':{'secrets':['get']}},"
	" '$unavailable':{"
	"  'vault.tenantId':{'status':'error','reason':'tenant: HTTP 403 AuthorizationFailed'},"
	"  'vault.backupPolicy':{'status':'skipped','reason':'no backup principal object id'},"
	"  'vault.location':{'status':'error','reason':'location: HTTP 500'},"
	"  'vault.backupRbac':{'status':'skipped','reason':'no role assignments in the estate'}}}";

struct logic_case {
	const char *cond;
	enum finding_status want;
	const char *reason;     /* ST_ERROR/ST_SKIPPED */
};

static const struct logic_case logic_cases[] = {
	{T, ST_PASS, NULL},
	{F, ST_FAIL, NULL},
	{E, ST_ERROR, "tenant: HTTP 403 AuthorizationFailed"},
	{S, ST_SKIPPED, "no backup principal object id"},
	{"{'all':[]}", ST_PASS, NULL},
	{"{'any':[]}", ST_FAIL, NULL},
	{"{'all':[" T "," T "]}", ST_PASS, NULL},
	{"{'all':[" T "," F "]}", ST_FAIL, NULL},
	{"{'any':[" F "," T "]}", ST_PASS, NULL},
	{"{'any':[" F "," F "]}", ST_FAIL, NULL},
	{"{'not':" T "}", ST_FAIL, NULL},
	{"{'not':" F "}", ST_PASS, NULL},
	{"{'not':{'not':" T "}}", ST_PASS, NULL},
	/* a definite false decides all(), a true decides any(), whatever is unknown */
	{"{'all':[" E "," F "]}", ST_FAIL, NULL},
	{"{'all':[" S "," F "," E "]}", ST_FAIL, NULL},
	{"{'any':[" E "," T "]}", ST_PASS, NULL},
	{"{'any':[" S "," T "]}", ST_PASS, NULL},
	/* otherwise unknown wins, error beats skipped, the first reason of the winner is kept */
	{"{'all':[" E "," T "]}", ST_ERROR, "tenant: HTTP 403 AuthorizationFailed"},
	{"{'all':[" T "," S "]}", ST_SKIPPED, "no backup principal object id"},
	{"{'all':[" S "," E "]}", ST_ERROR, "tenant: HTTP 403 AuthorizationFailed"},
	{"{'all':[" S "," E2 "," E "]}", ST_ERROR, "location: HTTP 500"},
	{"{'all':[" S2 "," S "]}", ST_SKIPPED, "no role assignments in the estate"},
	{"{'all':[" S "," S2 "]}", ST_SKIPPED, "no backup principal object id"},
	{"{'any':[" E "," F "]}", ST_ERROR, "tenant: HTTP 403 AuthorizationFailed"},
	{"{'any':[" F "," S "]}", ST_SKIPPED, "no backup principal object id"},
	{"{'any':[" S "," F "," E2 "]}", ST_ERROR, "location: HTTP 500"},
	{"{'not':" E "}", ST_ERROR, "tenant: HTTP 403 AuthorizationFailed"},
	{"{'not':" S "}", ST_SKIPPED, "no backup principal object id"},
	{"{'not':{'all':[" E "," T "]}}", ST_ERROR, "tenant: HTTP 403 AuthorizationFailed"},
	{"{'any':[{'all':[" S "," T "]}," F "]}", ST_SKIPPED, "no backup principal object id"},
	{"{'all':[{'any':[" E "," T "]}," T "]}", ST_PASS, NULL},
};

static void conditions_follow_three_valued_logic(void **state)
{
	cJSON *facts = facts_of(LOGIC_FACTS);

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(logic_cases); i++) {
		const struct logic_case *c = &logic_cases[i];
		struct rule r;
		struct rule_outcome o;

		require_rule(c->cond, "vault", &r);
		rule_evaluate(&r, facts, &o);
		if (o.status != c->want)
			fail_msg("case %zu %s: got %s, want %s", i, c->cond, status_name(o.status), status_name(c->want));
		if (c->reason) {
			assert_non_null(o.reason);
			if (strcmp(o.reason, c->reason) != 0)
				fail_msg("case %zu: reason '%s', want '%s'", i, o.reason, c->reason);
			assert_string_equal(o.message, c->reason);
		} else {
			assert_null(o.reason);
		}
		rule_outcome_release(&o);
		rule_release(&r);
	}
	cJSON_Delete(facts);
}

struct prefix_case {
	const char *unavailable;    /* the "$unavailable" object */
	enum finding_status want;   /* for vault.backupPolicy.secrets contains get */
	const char *reason;
};

static const struct prefix_case prefix_cases[] = {
	{"{'vault.backupPolicy.secrets':{'status':'error','reason':'exact'}}", ST_ERROR, "exact"},
	{"{'vault.backupPolicy':{'status':'skipped','reason':'parent'}}", ST_SKIPPED, "parent"},
	{"{'vault':{'status':'error','reason':'root'}}", ST_ERROR, "root"},
	/* only dot boundaries count */
	{"{'vault.backup':{'status':'error','reason':'no'}}", ST_PASS, NULL},
	{"{'vault.backupPolicy.secretsX':{'status':'error','reason':'no'}}", ST_PASS, NULL},
	{"{'vault.backupPolicy.secrets.x':{'status':'error','reason':'no'}}", ST_PASS, NULL},
	{"{'vm':{'status':'error','reason':'no'}}", ST_PASS, NULL},
	{"{}", ST_PASS, NULL},
	/* several prefixes: error beats skipped in either order */
	{"{'vault':{'status':'skipped','reason':'s'},'vault.backupPolicy':{'status':'error','reason':'e'}}", ST_ERROR, "e"},
	{"{'vault.backupPolicy':{'status':'error','reason':'e'},'vault':{'status':'skipped','reason':'s'}}", ST_ERROR, "e"},
	{"{'vault':{'status':'skipped','reason':'s1'},'vault.backupPolicy':{'status':'skipped','reason':'s2'}}", ST_SKIPPED, "s1"},
	/* no reason: one is made up; an odd status is an error, never a pass */
	{"{'vault.backupPolicy':{'status':'skipped'}}", ST_SKIPPED, "fact 'vault.backupPolicy.secrets' was not collected"},
	{"{'vault.backupPolicy':{'status':'error'}}", ST_ERROR, "fact 'vault.backupPolicy.secrets' could not be read"},
	{"{'vault.backupPolicy':{'status':'weird','reason':'w'}}", ST_ERROR, "w"},
	{"{'vault.backupPolicy':true}", ST_ERROR, "fact 'vault.backupPolicy.secrets' could not be read"},
};

static void unavailable_prefixes_cover_paths_at_dot_boundaries(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(prefix_cases); i++) {
		const struct prefix_case *c = &prefix_cases[i];
		char text[1024];
		struct rule r;
		struct rule_outcome o;
		cJSON *facts;

		snprintf(text, sizeof(text),
		         "{'vault':{'backupPolicy':{'secrets':['get']}},'$unavailable':%s}", c->unavailable);
		facts = facts_of(text);
		require_rule("{'fact':'vault.backupPolicy.secrets','contains':'get'}", "vault", &r);
		rule_evaluate(&r, facts, &o);
		if (o.status != c->want)
			fail_msg("case %zu %s: got %s, want %s", i, c->unavailable, status_name(o.status), status_name(c->want));
		if (c->reason)
			assert_string_equal(o.reason, c->reason);
		else
			assert_null(o.reason);
		/* an unavailable fact is evidence too, as null */
		assert_non_null(cJSON_GetObjectItemCaseSensitive(o.evidence, "vault.backupPolicy.secrets"));
		if (c->reason)
			assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o.evidence, "vault.backupPolicy.secrets")));
		rule_outcome_release(&o);
		rule_release(&r);
		cJSON_Delete(facts);
	}
}

/* ---------- when, messages, missing, evidence ---------- */

static const char *const WHEN_RULE =
	"{'id':'T-WHEN','title':'The title','severity':'high','subject':'binding',"
	" 'when':{'all':[{'fact':'vault.rbac','eq':false},{'fact':'binding.holdsBek','eq':true}]},"
	" 'require':{'fact':'vault.backupPolicy.secrets','superset':['get','backup','list']},"
	" 'message':'lacks {{missing}} on {{vault.name}} for {{ vm.name }}',"
	" 'passMessage':'has {{vault.backupPolicy.secrets}} on {{vault.name}}'}";

static void when_false_makes_the_rule_not_applicable(void **state)
{
	struct rule r;
	struct rule_outcome o;
	struct kv_err err = {{0}};
	cJSON *facts = facts_of("{'vault':{'rbac':true,'name':'kv1'},'binding':{'holdsBek':true}}");

	(void)state;
	assert_true(parse(WHEN_RULE, &r, &err));
	rule_evaluate(&r, facts, &o);
	assert_int_equal(o.status, ST_NOT_APPLICABLE);
	assert_null(o.reason);
	assert_null(o.missing);
	/* require was not read */
	assert_null(cJSON_GetObjectItemCaseSensitive(o.evidence, "vault.backupPolicy.secrets"));
	assert_int_equal(cJSON_GetArraySize(o.evidence), 2);
	rule_outcome_release(&o);
	rule_release(&r);
	cJSON_Delete(facts);
}

static void when_unknown_gives_its_status_and_reason(void **state)
{
	struct rule r;
	struct rule_outcome o;
	struct kv_err err = {{0}};
	cJSON *facts = facts_of("{'vault':{'name':'kv1','backupPolicy':{'secrets':[]}},'binding':{'holdsBek':true},"
	                        "'$unavailable':{'vault.rbac':{'status':'skipped','reason':'vault not collected'}}}");

	(void)state;
	assert_true(parse(WHEN_RULE, &r, &err));
	rule_evaluate(&r, facts, &o);
	assert_int_equal(o.status, ST_SKIPPED);
	assert_string_equal(o.reason, "vault not collected");
	assert_string_equal(o.message, "vault not collected");
	assert_null(o.missing);
	rule_outcome_release(&o);

	/* a false when beats an unknown one in all() */
	cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(facts, "binding"), "holdsBek",
	                                       cJSON_CreateFalse());
	rule_evaluate(&r, facts, &o);
	assert_int_equal(o.status, ST_NOT_APPLICABLE);
	rule_outcome_release(&o);
	rule_release(&r);
	cJSON_Delete(facts);
}

static void superset_failure_lists_missing_items_in_rule_order(void **state)
{
	struct rule r;
	struct rule_outcome o;
	struct kv_err err = {{0}};
	cJSON *facts = facts_of("{'vault':{'rbac':false,'name':'kv1','backupPolicy':{'secrets':['GET']}},"
	                        "'binding':{'holdsBek':true},'vm':{'name':'vm1'}}");
	char *s;

	(void)state;
	assert_true(parse(WHEN_RULE, &r, &err));
	rule_evaluate(&r, facts, &o);
	assert_int_equal(o.status, ST_FAIL);
	assert_non_null(o.missing);
	s = cJSON_PrintUnformatted(o.missing);
	assert_string_equal(s, "[\"backup\",\"list\"]");
	free(s);
	assert_string_equal(o.message, "lacks backup, list on kv1 for vm1");
	assert_null(o.reason);
	rule_outcome_release(&o);

	/* no policy at all: every item is missing */
	cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(facts, "vault"), "backupPolicy");
	rule_evaluate(&r, facts, &o);
	assert_int_equal(o.status, ST_FAIL);
	assert_string_equal(o.message, "lacks get, backup, list on kv1 for vm1");
	rule_outcome_release(&o);
	rule_release(&r);
	cJSON_Delete(facts);
}

static void pass_renders_pass_message_or_title(void **state)
{
	struct rule r;
	struct rule_outcome o;
	struct kv_err err = {{0}};
	cJSON *facts = facts_of("{'vault':{'rbac':false,'name':'kv1','backupPolicy':{'secrets':['get','list','backup']}},"
	                        "'binding':{'holdsBek':true}}");

	(void)state;
	assert_true(parse(WHEN_RULE, &r, &err));
	rule_evaluate(&r, facts, &o);
	assert_int_equal(o.status, ST_PASS);
	assert_string_equal(o.message, "has get, list, backup on kv1");
	assert_null(o.missing);
	assert_null(o.reason);
	rule_outcome_release(&o);
	rule_release(&r);

	assert_true(parse("{'id':'T-2','title':'Plain title','severity':'info','subject':'vault',"
	                  "'require':{'fact':'vault.rbac','eq':false},'message':'m'}", &r, &err));
	assert_null(r.pass_message);
	rule_evaluate(&r, facts, &o);
	assert_int_equal(o.status, ST_PASS);
	assert_string_equal(o.message, "Plain title");
	rule_outcome_release(&o);
	rule_release(&r);
	cJSON_Delete(facts);
}

static void evidence_holds_every_fact_read_once_in_order(void **state)
{
	static const char *const want_keys[] = {
		"vault.rbac", "vault.name", "vault.backupPolicy.secrets", "vault.tenantId", "vault.uri",
	};
	struct rule r;
	struct rule_outcome o;
	struct kv_err err = {{0}};
	cJSON *facts = facts_of(
		"{'vault':{'rbac':false,'name':'kv1','tenantId':'T1','backupPolicy':{'secrets':['get']}},"
		"'$unavailable':{'vault.tenantId':{'status':'error','reason':'r'}}}");
	const cJSON *e;
	size_t i = 0;
	char *s;

	(void)state;
	assert_true(parse("{'id':'T-EV','title':'t','severity':'low','subject':'vault',"
	                  " 'when':{'all':[{'fact':'vault.rbac','eq':false},{'fact':'vault.name','ne':'x'}]},"
	                  " 'require':{'any':[{'fact':'vault.backupPolicy.secrets','superset':['get']},"
	                  "   {'fact':'vault.rbac','eq':true},{'fact':'vault.tenantId','eq':'T1'},"
	                  "   {'not':{'fact':'vault.uri','exists':true}},{'fact':'vault.name','eq':'kv1'}]},"
	                  " 'message':'m'}", &r, &err));
	rule_evaluate(&r, facts, &o);
	assert_int_equal(o.status, ST_PASS);
	cJSON_ArrayForEach(e, o.evidence) {
		assert_true(i < ARRAY_LEN(want_keys));
		assert_string_equal(e->string, want_keys[i]);
		i++;
	}
	assert_int_equal(i, ARRAY_LEN(want_keys));
	s = cJSON_PrintUnformatted(o.evidence);
	assert_string_equal(s, "{\"vault.rbac\":false,\"vault.name\":\"kv1\",\"vault.backupPolicy.secrets\":[\"get\"],"
	                       "\"vault.tenantId\":null,\"vault.uri\":null}");
	free(s);
	rule_outcome_release(&o);
	rule_release(&r);
	cJSON_Delete(facts);
}

/* ---------- templates ---------- */

struct render_case {
	const char *tmpl;
	const char *want;
};

static const struct render_case render_cases[] = {
	{"{{vault.name}}", "KV-Prod"},
	{"a {{ vault.name }} b", "a KV-Prod b"},
	{"{{\tvault.name  }}!", "KV-Prod!"},
	{"{{vault.policyCount}} policies", "3 policies"},
	{"{{vault.ratio}}", "2.5"},
	{"{{vault.rbac}}/{{vault.enabledForDiskEncryption}}", "false/true"},
	{"{{vault.backupPolicy.secrets}}", "Get, List"},
	{"{{vault.backupPolicy.keys}}", "none"},
	{"{{vault.softDeleteRetentionDays}}", "?"},
	{"{{vault.nope}} and {{nope.deeper.path}}", "? and ?"},
	{"{{vault.backupPolicy}}", "?"},
	{"{{}}", "?"},
	{"{{missing}}", "backup, list"},
	{"{{ missing }}.", "backup, list."},
	{"no braces", "no braces"},
	{"", ""},
	{"x {{vault.name", "x {{vault.name"},
	{"{{vault.name}} {{", "KV-Prod {{"},
	{"}} {vault.name} {{vault.name}}", "}} {vault.name} KV-Prod"},
};

static void templates_render_fact_values(void **state)
{
	cJSON *facts = facts_of(
		"{'vault':{'name':'KV-Prod','rbac':false,'enabledForDiskEncryption':true,'policyCount':3,'ratio':2.5,"
		"'softDeleteRetentionDays':null,'backupPolicy':{'secrets':['Get','List'],'keys':[]}},"
		"'$unavailable':{'vault.name':{'status':'error','reason':'ignored when rendering'}}}");
	cJSON *missing = facts_of("['backup','list']");

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(render_cases); i++) {
		char *s = rule_render(render_cases[i].tmpl, facts, missing);

		if (strcmp(s, render_cases[i].want) != 0)
			fail_msg("'%s' rendered '%s', want '%s'", render_cases[i].tmpl, s, render_cases[i].want);
		free(s);
	}
	cJSON_Delete(missing);
	cJSON_Delete(facts);
}

static void missing_renders_none_when_there_is_none(void **state)
{
	cJSON *empty = cJSON_CreateArray();
	char *s;

	(void)state;
	s = rule_render("lacks {{missing}}", NULL, NULL);
	assert_string_equal(s, "lacks none");
	free(s);
	s = rule_render("lacks {{missing}}", NULL, empty);
	assert_string_equal(s, "lacks none");
	free(s);
	s = rule_render(NULL, NULL, NULL);
	assert_string_equal(s, "");
	free(s);
	cJSON_Delete(empty);
}

static void rendered_messages_are_capped_at_4096_bytes(void **state)
{
	char *tmpl = kv_malloc(20001), *s;
	cJSON *facts = facts_of("{'vm':{'name':'\\u00e9\\u00e9\\u00e9'}}");   /* 2-byte UTF-8 characters */

	(void)state;
	memset(tmpl, 'a', 20000);
	tmpl[20000] = '\0';
	s = rule_render(tmpl, NULL, NULL);
	assert_int_equal(strlen(s), 4096);
	free(s);

	/* 11 + 6 * n bytes: the cap falls inside a character, which is dropped whole */
	for (size_t i = 0; i + 11 < 20000; i += 11)
		memcpy(tmpl + i, "{{vm.name}}", 11);
	tmpl[0] = 'x';
	tmpl[1] = '}';
	s = rule_render(tmpl, facts, NULL);
	assert_true(strlen(s) <= 4096);
	assert_true(strlen(s) >= 4090);
	assert_int_equal((unsigned char)s[strlen(s) - 1], 0xA9);
	free(s);
	free(tmpl);
	cJSON_Delete(facts);
}

/* ---------- parse errors ---------- */

struct parse_error_case {
	const char *what;
	const char *text;
	const char *want;   /* the whole message */
};

#define HEAD "'id':'T-1','title':'t','severity':'low','subject':'vault','message':'m'"

static const struct parse_error_case parse_error_cases[] = {
	{"bad json", "{'id': 'T-1',\n 'title' 't'}", "t.json: invalid json at byte 23 (line 2, column 10)"},
	{"trailing data", "{" HEAD ",'require':{'fact':'vault.rbac','eq':true}} x",
	 "t.json: invalid json at byte 116 (line 1, column 117)"},
	{"empty text", "", "t.json: invalid json at byte 0 (line 1, column 1)"},
	{"not an object", "['id']", "t.json: $: expected a rule object, found an array"},
	{"missing id", "{'title':'t','severity':'low','subject':'vault','message':'m','require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $: missing required field 'id'"},
	{"id not a string", "{'id':7,'title':'t','severity':'low','subject':'vault','message':'m','require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $.id: expected a string, found a number"},
	{"id in lower case", "{'id':'kva-1','title':'t','severity':'low','subject':'vault','message':'m','require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $.id: 'kva-1' is not a rule id (expected upper case words joined by '-', e.g. 'ACME-KV-001')"},
	{"id without a dash", "{'id':'KVA','title':'t','severity':'low','subject':'vault','message':'m','require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $.id: 'KVA' is not a rule id (expected upper case words joined by '-', e.g. 'ACME-KV-001')"},
	{"id with an empty part", "{'id':'KVA--1','title':'t','severity':'low','subject':'vault','message':'m','require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $.id: 'KVA--1' is not a rule id (expected upper case words joined by '-', e.g. 'ACME-KV-001')"},
	{"missing title", "{'id':'T-1','severity':'low','subject':'vault','message':'m','require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $: missing required field 'title'"},
	{"empty message", "{'id':'T-1','title':'t','severity':'low','subject':'vault','message':'','require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $.message: must not be empty"},
	{"bad severity", "{'id':'T-1','title':'t','severity':'urgent','subject':'vault','message':'m','require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $.severity: unknown severity 'urgent' (expected info, low, medium, high or critical)"},
	{"unknown subject", "{'id':'T-1','title':'t','severity':'low','subject':'disk','message':'m','require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $.subject: unknown subject 'disk' (expected vm, vault, binding or tenant)"},
	{"unknown field", "{" HEAD ",'requires':{'fact':'vault.rbac','eq':true}}", "t.json: $: unknown field 'requires'"},
	{"duplicate field", "{" HEAD ",'title':'u','require':{'fact':'vault.rbac','eq':true}}", "t.json: $: duplicate field 'title'"},
	{"missing require", "{" HEAD "}", "t.json: $: missing required field 'require'"},
	{"passMessage not a string", "{" HEAD ",'passMessage':1,'require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $.passMessage: expected a string, found a number"},
	{"remediation not an object", "{" HEAD ",'remediation':'do it','require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $.remediation: expected an object, found a string"},
	{"remediation fix a number", "{" HEAD ",'remediation':{'text':'x','fix':1},'require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $.remediation.fix: expected a string or null, found a number"},
	{"remediation unknown field", "{" HEAD ",'remediation':{'txt':'x'},'require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $.remediation: unknown field 'txt'"},
	{"references not strings", "{" HEAD ",'references':['https://a',2],'require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $.references[1]: expected a string, found a number"},
	{"condition not an object", "{" HEAD ",'require':[]}", "t.json: $.require: expected a condition object, found an array"},
	{"empty condition", "{" HEAD ",'require':{}}", "t.json: $.require: empty condition (expected all, any, not or a fact)"},
	{"all not an array", "{" HEAD ",'require':{'all':{'fact':'vault.rbac','eq':true}}}",
	 "t.json: $.require.all: expected an array of conditions"},
	{"all and any together", "{" HEAD ",'require':{'all':[],'any':[]}}",
	 "t.json: $.require: 'all' and 'any' in one condition (use one of all, any, not or a fact)"},
	{"all with a fact", "{" HEAD ",'require':{'all':[],'fact':'vault.rbac','eq':true}}",
	 "t.json: $.require: 'all' cannot be combined with 'fact'"},
	{"unknown operator", "{" HEAD ",'require':{'fact':'vault.rbac','equals':true}}",
	 "t.json: $.require: unknown operator 'equals' (expected one of eq ne in not_in contains superset subset regex exists gt lt)"},
	{"missing operator", "{" HEAD ",'require':{'fact':'vault.rbac'}}",
	 "t.json: $.require: missing operator (expected one of eq ne in not_in contains superset subset regex exists gt lt)"},
	{"two operators", "{" HEAD ",'require':{'fact':'vault.rbac','eq':true,'ne':false}}",
	 "t.json: $.require: more than one operator ('eq' and 'ne')"},
	{"missing fact", "{" HEAD ",'require':{'eq':true}}", "t.json: $.require.fact: expected a fact path string"},
	{"unknown fact", "{" HEAD ",'require':{'fact':'vault.nope','eq':true}}", "t.json: $.require.fact: unknown fact 'vault.nope'"},
	{"fact of another subject", "{" HEAD ",'require':{'fact':'binding.holdsBek','eq':true}}",
	 "t.json: $.require.fact: fact 'binding.holdsBek' is not available for subject 'vault'"},
	{"nested unknown fact", "{" HEAD ",'when':{'any':[{'fact':'vault.rbac','eq':true},{'not':{'fact':'vm.name','eq':'x'}}]},"
	 "'require':{'fact':'vault.rbac','eq':true}}",
	 "t.json: $.when.any[1].not.fact: fact 'vm.name' is not available for subject 'vault'"},
	{"bad regex", "{" HEAD ",'require':{'fact':'vault.name','regex':'^(ab'}}",
	 "t.json: $.require.regex: bad regex at offset 4: missing closing parenthesis"},
	{"regex not a string", "{" HEAD ",'require':{'fact':'vault.name','regex':1}}", "t.json: $.require.regex: expected a string"},
	{"regex on a boolean", "{" HEAD ",'require':{'fact':'vault.rbac','regex':'x'}}",
	 "t.json: $.require.regex: fact 'vault.rbac' is a boolean, 'regex' needs a string fact"},
	{"superset of a string", "{" HEAD ",'require':{'all':[{'fact':'vault.rbac','eq':false},{'fact':'vault.backupPolicy.secrets','superset':'get'}]}}",
	 "t.json: $.require.all[1].superset: expected an array of strings"},
	{"superset with a number", "{" HEAD ",'require':{'fact':'vault.backupPolicy.secrets','superset':['get',1]}}",
	 "t.json: $.require.superset: expected an array of strings"},
	{"superset of a boolean fact", "{" HEAD ",'require':{'fact':'vault.rbac','superset':['get']}}",
	 "t.json: $.require.superset: fact 'vault.rbac' is a boolean, 'superset' needs an array fact"},
	{"subset of a string fact", "{" HEAD ",'require':{'fact':'vault.name','subset':[]}}",
	 "t.json: $.require.subset: fact 'vault.name' is a string, 'subset' needs an array fact"},
	{"eq with an array", "{" HEAD ",'require':{'fact':'vault.name','eq':['a']}}",
	 "t.json: $.require.eq: expected a string, number, boolean or null"},
	{"eq string on a boolean fact", "{" HEAD ",'require':{'fact':'vault.rbac','eq':'false'}}",
	 "t.json: $.require.eq: fact 'vault.rbac' is a boolean, 'eq' cannot compare it with a string"},
	{"ne number on an array fact", "{" HEAD ",'require':{'fact':'vault.adeVms','ne':1}}",
	 "t.json: $.require.ne: fact 'vault.adeVms' is an array, 'ne' cannot compare it with a number"},
	{"in not an array", "{" HEAD ",'require':{'fact':'vault.name','in':'a'}}",
	 "t.json: $.require.in: expected an array of strings, numbers or booleans"},
	{"in with null", "{" HEAD ",'require':{'fact':'vault.name','in':[null]}}",
	 "t.json: $.require.in: expected an array of strings, numbers or booleans"},
	{"not_in numbers on a string fact", "{" HEAD ",'require':{'fact':'vault.name','not_in':['a',1]}}",
	 "t.json: $.require.not_in: fact 'vault.name' is a string, 'not_in' lists a number"},
	{"in on an array fact", "{" HEAD ",'require':{'fact':'vault.adeVms','in':['a']}}",
	 "t.json: $.require.in: fact 'vault.adeVms' is an array, 'in' needs a string, boolean or number fact (use 'contains', 'superset' or 'subset')"},
	{"contains an array", "{" HEAD ",'require':{'fact':'vault.adeVms','contains':['a']}}",
	 "t.json: $.require.contains: expected a string, number or boolean"},
	{"contains on a boolean fact", "{" HEAD ",'require':{'fact':'vault.rbac','contains':'a'}}",
	 "t.json: $.require.contains: fact 'vault.rbac' is a boolean, 'contains' needs an array or string fact"},
	{"contains a number in a string", "{" HEAD ",'require':{'fact':'vault.name','contains':1}}",
	 "t.json: $.require.contains: fact 'vault.name' is a string, 'contains' needs a string value"},
	{"exists with a string", "{" HEAD ",'require':{'fact':'vault.name','exists':'yes'}}", "t.json: $.require.exists: expected a boolean"},
	{"gt with a string", "{" HEAD ",'require':{'fact':'vault.policyCount','gt':'3'}}", "t.json: $.require.gt: expected a number"},
	{"lt on a string fact", "{" HEAD ",'require':{'fact':'vault.name','lt':3}}",
	 "t.json: $.require.lt: fact 'vault.name' is a string, 'lt' needs a number fact"},
};

static void rule_parse_reports_file_path_and_problem(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(parse_error_cases); i++) {
		const struct parse_error_case *c = &parse_error_cases[i];
		struct rule r;
		struct kv_err err = {{0}};
		size_t n;

		if (parse(c->text, &r, &err))
			fail_msg("%s: parsed, want '%s'", c->what, c->want);
		if (strcmp(err.msg, c->want) != 0)
			fail_msg("%s: got '%s', want '%s'", c->what, err.msg, c->want);
		n = strlen(err.msg);
		assert_true(n > 0 && err.msg[n - 1] != '.');
		/* a failed parse leaves a rule that is safe to release */
		assert_null(r.id);
		assert_null(r.json);
		rule_release(&r);
	}
}

static void rule_parse_accepts_comments_and_keeps_the_json(void **state)
{
	struct rule r;
	struct kv_err err = {{0}};
	const cJSON *rem;

	(void)state;
	assert_true(parse("{'$comment':'why','x-owner':'me','id':'ACME-KV-9','title':'A title','severity':'HIGH',"
	                  "'subject':'binding','message':'m',"
	                  "'require':{'$comment':'leaf comment','fact':'binding.holdsKek','eq':false},"
	                  "'remediation':{'text':'do it','fix':null,'x-note':'n'},'references':['https://x']}", &r, &err));
	assert_string_equal(r.id, "ACME-KV-9");
	assert_string_equal(r.title, "A title");
	assert_int_equal(r.severity, SEV_HIGH);
	assert_int_equal(r.subject, SUBJ_BINDING);
	assert_null(r.when);
	assert_non_null(r.require);
	assert_string_equal(r.source, "t.json");
	rem = cJSON_GetObjectItemCaseSensitive(r.json, "remediation");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(rem, "text")->valuestring, "do it");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rem, "fix")));
	rule_release(&r);
	assert_null(r.id);
	rule_release(&r);
}

static void rule_parse_reads_text_that_is_not_nul_terminated(void **state)
{
	char *text = j("{'id':'T-1','title':'t','severity':'low','subject':'vm','message':'m',"
	               "'require':{'fact':'vm.ade.encrypted','eq':true}}GARBAGE");
	struct rule r;
	struct kv_err err = {{0}};

	(void)state;
	assert_true(rule_parse(text, strlen(text) - strlen("GARBAGE"), "t.json", &r, &err));
	rule_release(&r);
	free(text);
}

/* ---------- catalogs ---------- */

static char *capture_check(const char *dir, int *bad)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	*bad = rule_catalog_check_dir(dir, f);
	assert_int_equal(fclose(f), 0);
	return buf;
}

/* The built-in catalog is every .json file of rules/catalog: counted, so a new rule needs no edit here. */
static size_t builtin_count(void)
{
	DIR *d = opendir(KV_SOURCE_DIR "/rules/catalog");
	const struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		n += l > 5 && strcmp(de->d_name + l - 5, ".json") == 0;
	}
	closedir(d);
	return n;
}

static void load_dir_adds_sorted_rules_after_the_builtin_ones(void **state)
{
	struct rule_catalog cat = {0};
	struct kv_err err = {{0}};
	const struct rule *r;
	const size_t nb = builtin_count();

	(void)state;
	assert_true(rule_catalog_load_builtin(&cat, &err));
	assert_int_equal(cat.n, nb);
	if (!rule_catalog_load_dir(&cat, DATA_DIR "/good", &err))
		fail_msg("%s", err.msg);
	assert_int_equal(cat.n, nb + 2);
	assert_string_equal(cat.rules[nb].id, "ACME-KV-001");
	assert_string_equal(cat.rules[nb + 1].id, "ACME-KV-002");
	assert_string_equal(cat.rules[nb].source, DATA_DIR "/good/a-first.json");
	r = rule_catalog_find(&cat, "acme-kv-002");
	assert_non_null(r);
	assert_int_equal(r->severity, SEV_LOW);
	assert_null(rule_catalog_find(&cat, "ACME-KV-003"));
	rule_catalog_release(&cat);
	assert_int_equal(cat.n, 0);
	assert_null(cat.rules);
}

static void load_dir_with_a_duplicate_id_leaves_the_catalog_unchanged(void **state)
{
	struct rule_catalog cat = {0};
	struct kv_err err = {{0}};
	const size_t nb = builtin_count();

	(void)state;
	assert_true(rule_catalog_load_builtin(&cat, &err));
	assert_false(rule_catalog_load_dir(&cat, DATA_DIR "/dup", &err));
	assert_string_equal(err.msg, DATA_DIR "/dup/b.json: $.id: duplicate rule id 'ACME-DUP-001' (already defined by "
	                             DATA_DIR "/dup/a.json)");
	assert_int_equal(cat.n, nb);

	assert_false(rule_catalog_load_dir(&cat, DATA_DIR "/collide", &err));
	assert_string_equal(err.msg, DATA_DIR "/collide/KVA-BKP-001.json: $.id: duplicate rule id 'KVA-BKP-001' "
	                             "(already defined by builtin)");
	assert_int_equal(cat.n, nb);

	assert_false(rule_catalog_load_dir(&cat, DATA_DIR "/bad", &err));
	assert_int_equal(cat.n, nb);

	assert_false(rule_catalog_load_dir(&cat, DATA_DIR "/absent", &err));
	assert_string_equal(err.msg, DATA_DIR "/absent: cannot read directory: No such file or directory");
	assert_int_equal(cat.n, nb);
	assert_non_null(rule_catalog_find(&cat, "KVA-BKP-001"));
	rule_catalog_release(&cat);
}

static void check_dir_prints_one_line_per_problem(void **state)
{
	int bad = 0;
	char *out;

	(void)state;
	out = capture_check(DATA_DIR "/bad", &bad);
	assert_int_equal(bad, 3);
	assert_string_equal(out,
		DATA_DIR "/bad/2-dup.json: $.id: duplicate rule id 'ACME-BAD-001' (already defined by " DATA_DIR "/bad/1-ok.json)\n"
		DATA_DIR "/bad/3-syntax.json: invalid json at byte 44 (line 2, column 21)\n"
		DATA_DIR "/bad/4-fact.json: $.require.all[1].fact: unknown fact 'vault.nope'\n");
	free(out);

	out = capture_check(DATA_DIR "/good", &bad);
	assert_int_equal(bad, 0);
	assert_string_equal(out, "");
	free(out);

	out = capture_check(KV_SOURCE_DIR "/rules/catalog", &bad);
	if (bad)
		fail_msg("%s", out);
	free(out);

	out = capture_check(DATA_DIR "/absent", &bad);
	assert_int_equal(bad, 1);
	assert_string_equal(out, DATA_DIR "/absent: cannot read directory: No such file or directory\n");
	free(out);
}

struct builtin_case {
	const char *id;
	enum subject_kind subject;
	enum severity severity;
	const char *fix;        /* NULL: remediation.fix is null */
};

static const struct builtin_case builtin_cases[] = {
	{"KVA-BKP-001", SUBJ_BINDING, SEV_HIGH, "grant-backup-access"},
	{"KVA-BKP-002", SUBJ_BINDING, SEV_HIGH, "grant-backup-access"},
	{"KVA-BKP-003", SUBJ_VAULT, SEV_LOW, NULL},
	{"KVA-BKP-004", SUBJ_BINDING, SEV_HIGH, "assign-backup-role"},
	{"KVA-BKP-005", SUBJ_TENANT, SEV_HIGH, NULL},
	{"KVA-TEN-001", SUBJ_TENANT, SEV_INFO, NULL},
	{"KVA-TEN-002", SUBJ_VAULT, SEV_HIGH, NULL},
	{"KVA-TEN-003", SUBJ_VAULT, SEV_MEDIUM, NULL},
	{"KVA-VLT-001", SUBJ_VAULT, SEV_HIGH, "vault-settings"},
	{"KVA-VLT-002", SUBJ_VAULT, SEV_MEDIUM, "vault-settings"},
	{"KVA-VLT-003", SUBJ_VAULT, SEV_MEDIUM, NULL},
	{"KVA-LIM-001", SUBJ_BINDING, SEV_HIGH, NULL},
	{"KVA-LIM-002", SUBJ_BINDING, SEV_HIGH, NULL},
	{"KVA-LIM-003", SUBJ_BINDING, SEV_HIGH, NULL},
	{"KVA-LIM-004", SUBJ_VM, SEV_MEDIUM, NULL},
	{"KVA-LIM-005", SUBJ_VM, SEV_INFO, NULL},
	{"KVA-VM-001", SUBJ_VM, SEV_MEDIUM, NULL},
	{"KVA-VM-002", SUBJ_VM, SEV_MEDIUM, NULL},
	{"KVA-EVD-001", SUBJ_VM, SEV_CRITICAL, NULL},
	{"KVA-EVD-002", SUBJ_VM, SEV_HIGH, NULL},
	{"KVA-EVD-003", SUBJ_VM, SEV_HIGH, NULL},
	{"KVA-EVD-004", SUBJ_VM, SEV_HIGH, NULL},
	{"KVA-EVD-005", SUBJ_VM, SEV_HIGH, NULL},
	{"KVA-EVD-006", SUBJ_VM, SEV_HIGH, NULL},
	{"KVA-RST-001", SUBJ_BINDING, SEV_CRITICAL, NULL},
	{"KVA-RST-002", SUBJ_BINDING, SEV_HIGH, NULL},
	{"KVA-RST-003", SUBJ_BINDING, SEV_HIGH, NULL},
	{"KVA-RST-004", SUBJ_BINDING, SEV_MEDIUM, NULL},
	{"KVA-RST-005", SUBJ_BINDING, SEV_CRITICAL, NULL},
	{"KVA-RST-006", SUBJ_BINDING, SEV_HIGH, NULL},
	{"KVA-RST-007", SUBJ_BINDING, SEV_HIGH, NULL},
	{"KVA-RST-008", SUBJ_BINDING, SEV_MEDIUM, NULL},
	{"KVA-RST-009", SUBJ_BINDING, SEV_HIGH, NULL},
};

static void every_builtin_rule_loads_with_its_subject_and_severity(void **state)
{
	struct rule_catalog cat = {0};
	struct kv_err err = {{0}};

	(void)state;
	if (!rule_catalog_load_builtin(&cat, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(cat.n, ARRAY_LEN(builtin_cases));
	for (size_t i = 0; i < ARRAY_LEN(builtin_cases); i++) {
		const struct builtin_case *c = &builtin_cases[i];
		const struct rule *r = rule_catalog_find(&cat, c->id);
		const cJSON *rem, *fix, *refs, *e;

		if (!r)
			fail_msg("%s is not in the catalog", c->id);
		assert_int_equal(r->subject, c->subject);
		assert_int_equal(r->severity, c->severity);
		assert_string_equal(r->source, "builtin");
		assert_non_null(r->pass_message);
		rem = cJSON_GetObjectItemCaseSensitive(r->json, "remediation");
		assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(rem, "text")));
		fix = cJSON_GetObjectItemCaseSensitive(rem, "fix");
		if (c->fix)
			assert_string_equal(cJSON_GetStringValue(fix), c->fix);
		else
			assert_true(cJSON_IsNull(fix));
		if (strncmp(c->id, "KVA-BKP-", 8) == 0 &&
		    !strstr(cJSON_GetObjectItemCaseSensitive(rem, "text")->valuestring,
		            "A Member of the vault's tenant gets this granted when enabling backup; a Guest must add it by hand"))
			fail_msg("%s: remediation does not explain Member versus Guest", c->id);
		refs = cJSON_GetObjectItemCaseSensitive(r->json, "references");
		assert_true(cJSON_GetArraySize(refs) > 0);
		cJSON_ArrayForEach(e, refs)
			assert_true(strncmp(e->valuestring, "https://learn.microsoft.com/", 28) == 0);
	}
	rule_catalog_release(&cat);
}

static void builtin_backup_rule_judges_a_binding(void **state)
{
	struct rule_catalog cat = {0};
	struct kv_err err = {{0}};
	struct rule_outcome o;
	const struct rule *bkp1, *bkp4;
	cJSON *facts = facts_of(
		"{'vm':{'name':'vm1'},'binding':{'holdsBek':true,'holdsKek':true,'roles':['BEK','KEK']},"
		"'vault':{'name':'kv1','rbac':false,'backupPolicy':{'secrets':['get','list'],'keys':['get','list','backup']},"
		"'backupRbac':{'roles':[],'coversSecrets':false,'coversKeys':false}}}");

	(void)state;
	assert_true(rule_catalog_load_builtin(&cat, &err));
	bkp1 = rule_catalog_find(&cat, "KVA-BKP-001");
	bkp4 = rule_catalog_find(&cat, "KVA-BKP-004");
	rule_evaluate(bkp1, facts, &o);
	assert_int_equal(o.status, ST_FAIL);
	assert_string_equal(o.message, "Backup Management Service lacks secret permissions backup on key vault kv1, which "
	                               "holds the BEK of VM vm1: backups of the VM fail with "
	                               "UserErrorKeyVaultPermissionsNotConfigured");
	rule_outcome_release(&o);
	rule_evaluate(bkp4, facts, &o);
	assert_int_equal(o.status, ST_NOT_APPLICABLE);
	rule_outcome_release(&o);

	/* the same binding on an RBAC vault */
	cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(facts, "vault"), "rbac", cJSON_CreateTrue());
	rule_evaluate(bkp1, facts, &o);
	assert_int_equal(o.status, ST_NOT_APPLICABLE);
	rule_outcome_release(&o);
	rule_evaluate(bkp4, facts, &o);
	assert_int_equal(o.status, ST_FAIL);
	assert_string_equal(o.message, "Key vault kv1 uses Azure RBAC and Backup Management Service has no role there that "
	                               "covers backing up the BEK, KEK of VM vm1 (its roles: none): backups of the VM fail "
	                               "with UserErrorKeyVaultPermissionsNotConfigured");
	rule_outcome_release(&o);
	rule_catalog_release(&cat);
	cJSON_Delete(facts);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(severity_and_status_names_round_trip),
		cmocka_unit_test(every_operator_is_true_and_false_as_documented),
		cmocka_unit_test(strings_compare_ascii_case_insensitively_everywhere),
		cmocka_unit_test(conditions_follow_three_valued_logic),
		cmocka_unit_test(unavailable_prefixes_cover_paths_at_dot_boundaries),
		cmocka_unit_test(when_false_makes_the_rule_not_applicable),
		cmocka_unit_test(when_unknown_gives_its_status_and_reason),
		cmocka_unit_test(superset_failure_lists_missing_items_in_rule_order),
		cmocka_unit_test(pass_renders_pass_message_or_title),
		cmocka_unit_test(evidence_holds_every_fact_read_once_in_order),
		cmocka_unit_test(templates_render_fact_values),
		cmocka_unit_test(missing_renders_none_when_there_is_none),
		cmocka_unit_test(rendered_messages_are_capped_at_4096_bytes),
		cmocka_unit_test(rule_parse_reports_file_path_and_problem),
		cmocka_unit_test(rule_parse_accepts_comments_and_keeps_the_json),
		cmocka_unit_test(rule_parse_reads_text_that_is_not_nul_terminated),
		cmocka_unit_test(load_dir_adds_sorted_rules_after_the_builtin_ones),
		cmocka_unit_test(load_dir_with_a_duplicate_id_leaves_the_catalog_unchanged),
		cmocka_unit_test(check_dir_prints_one_line_per_problem),
		cmocka_unit_test(every_builtin_rule_loads_with_its_subject_and_severity),
		cmocka_unit_test(builtin_backup_rule_judges_a_binding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
