/*
 * fuzz_rule.c - a rule file from anywhere (kvaudit --rules DIR): rule_parse
 * (JSON, conditions, operators, facts, PCRE2 patterns), then rule_evaluate
 * and rule_render against
 *  - every subject of the rule's kind built from examples/partial-estate.json
 *    (read once at start-up), and
 *  - the input's own "$facts" member when it is an object (members starting
 *    with '$' are comments to rule_parse, so one input carries both the rule
 *    and hostile facts: "$unavailable" entries, wrong types, deep values).
 * Checks the outcome's shape: a status in range, a message, evidence an object.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/estate/estate.h"
#include "audit/estate/facts.h"
#include "rules/engine.h"
#include "tests/fuzz/fuzz_common.h"

#define MAX_SUBJECTS 256

static struct {
	enum subject_kind kind;
	cJSON *facts;
} subjects[MAX_SUBJECTS];
static size_t nsubjects;

static void keep_subject(enum subject_kind kind, const cJSON *facts, void *arg)
{
	(void)arg;
	if (nsubjects == MAX_SUBJECTS)
		return;
	subjects[nsubjects].kind = kind;
	subjects[nsubjects].facts = cJSON_Duplicate(facts, true);
	nsubjects++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct kv_err err = {{0}};
	struct estate *e;
	struct facts_ctx *fc;

	(void)argc;
	(void)argv;
	e = estate_load(KVAUDIT_FUZZ_ESTATE, NULL, &err);
	if (e == NULL)
		fuzz_fail("%s", err.msg);
	fc = facts_prepare(e);
	if (fc == NULL)
		fuzz_fail("facts_prepare failed on %s", KVAUDIT_FUZZ_ESTATE);
	facts_each(fc, keep_subject, NULL);
	facts_ctx_free(fc);
	estate_free(e);
	return 0;
}

static void evaluate(const struct rule *r, const cJSON *facts)
{
	struct rule_outcome o;
	char *text;

	memset(&o, 0, sizeof(o));
	rule_evaluate(r, facts, &o);
	if ((int)o.status < ST_PASS || o.status > ST_NOT_APPLICABLE)
		fuzz_fail("rule_evaluate: status %d out of range", (int)o.status);
	if (o.status != ST_NOT_APPLICABLE && o.message == NULL)
		fuzz_fail("rule_evaluate: %s outcome without a message", status_name(o.status));
	if (o.evidence != NULL && !cJSON_IsObject(o.evidence))
		fuzz_fail("rule_evaluate: evidence is not an object");
	if ((o.status == ST_ERROR || o.status == ST_SKIPPED) && o.reason == NULL)
		fuzz_fail("rule_evaluate: %s outcome without a reason", status_name(o.status));
	text = rule_render(r->message, facts, o.missing);
	free(text);
	if (r->pass_message != NULL) {
		text = rule_render(r->pass_message, facts, o.missing);
		free(text);
	}
	rule_outcome_release(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kv_err err = {{0}};
	struct rule r;
	cJSON *doc;
	const cJSON *own;

	memset(&r, 0, sizeof(r));
	if (!rule_parse((const char *)data, size, "fuzz-rule.json", &r, &err)) {
		if (err.msg[0] == '\0')
			fuzz_fail("rule_parse failed without a message");
		return 0;
	}
	for (size_t i = 0; i < nsubjects; i++)
		if (subjects[i].kind == r.subject)
			evaluate(&r, subjects[i].facts);

	doc = cJSON_ParseWithLength((const char *)data, size);
	own = cJSON_GetObjectItemCaseSensitive(doc, "$facts");
	if (cJSON_IsObject(own))
		evaluate(&r, own);
	cJSON_Delete(doc);
	rule_release(&r);
	return 0;
}
