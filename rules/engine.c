/*
 * engine.c - parses rule files into compiled conditions and evaluates them
 * over a facts object with three-valued logic (see engine.h, docs/rules.md).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "audit/util/json.h"
#include "rules/engine.h"

/* Longest rendered message: a finding's message is one line, not a document. */
#define RENDER_MAX 4096
/* Longest JSON path kept for error messages. */
#define JPATH_MAX 512

enum cond_kind { C_ALL, C_ANY, C_NOT, C_LEAF };

enum op {
	OP_EQ, OP_NE, OP_IN, OP_NOT_IN, OP_CONTAINS, OP_SUPERSET, OP_SUBSET,
	OP_REGEX, OP_EXISTS, OP_GT, OP_LT,
};

static const char *const op_names[] = {
	[OP_EQ] = "eq", [OP_NE] = "ne", [OP_IN] = "in", [OP_NOT_IN] = "not_in",
	[OP_CONTAINS] = "contains", [OP_SUPERSET] = "superset", [OP_SUBSET] = "subset",
	[OP_REGEX] = "regex", [OP_EXISTS] = "exists", [OP_GT] = "gt", [OP_LT] = "lt",
};
#define OP_COUNT (sizeof(op_names) / sizeof(op_names[0]))

struct cond {
	enum cond_kind kind;
	struct cond **kids;        /* all/any: n children; not: one */
	size_t n;
	/* Leaves only. */
	char *path;                /* registered fact path */
	char *steps;               /* path with each '.' a NUL: its nseg names, split once at parse */
	size_t nseg;
	enum op op;
	const cJSON *value;        /* points into the owning rule's json */
	pcre2_code *re;            /* OP_REGEX */
};

/* ---------- names ---------- */

static const char *const severity_names[] = {
	[SEV_INFO] = "info", [SEV_LOW] = "low", [SEV_MEDIUM] = "medium",
	[SEV_HIGH] = "high", [SEV_CRITICAL] = "critical",
};

const char *severity_name(enum severity s)
{
	if ((size_t)s < sizeof(severity_names) / sizeof(severity_names[0]))
		return severity_names[s];
	return "?";
}

bool severity_parse(const char *s, enum severity *out)
{
	for (size_t i = 0; i < sizeof(severity_names) / sizeof(severity_names[0]); i++)
		if (kv_streq_ci(s, severity_names[i])) {
			*out = (enum severity)i;
			return true;
		}
	return false;
}

const char *status_name(enum finding_status s)
{
	switch (s) {
	case ST_PASS: return "pass";
	case ST_FAIL: return "fail";
	case ST_ERROR: return "error";
	case ST_SKIPPED: return "skipped";
	case ST_SUPPRESSED: return "suppressed";
	case ST_NOT_APPLICABLE: return "not_applicable";
	}
	return "?";
}

/* ---------- small JSON helpers ---------- */

static bool is_scalar(const cJSON *v)
{
	return cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v);
}

/* Field names that are comments, not fields: "$comment", "x-owner". */
static bool is_comment_key(const char *k)
{
	return k && (k[0] == '$' || strncmp(k, "x-", 2) == 0);
}

/* The member of obj named exactly name[0..n), or NULL. */
static const cJSON *obj_get_n(const cJSON *obj, const char *name, size_t n)
{
	if (!cJSON_IsObject(obj))
		return NULL;
	for (const cJSON *c = obj->child; c; c = c->next)
		if (c->string && strlen(c->string) == n && memcmp(c->string, name, n) == 0)
			return c;
	return NULL;
}

/* Walks "a.b.c" through nested objects; NULL when any step is missing. */
static const cJSON *fact_lookup(const cJSON *facts, const char *path)
{
	const cJSON *cur = facts;
	const char *p = path;

	if (!path || !*path)
		return NULL;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);

		cur = obj_get_n(cur, p, n);
		if (!cur || !dot)
			return cur;
		p = dot + 1;
	}
}

/*
 * fact_lookup for a leaf's path, split at parse: a rule is judged once per
 * subject, and its leaves look their facts up every time, so the steps are
 * compared with strcmp (which stops at the first differing byte) instead
 * of splitting the path and measuring every member's name again.
 */
static const cJSON *leaf_fact(const cJSON *facts, const struct cond *c)
{
	const cJSON *cur = facts;
	const char *name = c->steps;

	for (size_t i = 0; i < c->nseg; i++) {
		const cJSON *m = NULL;

		if (!cJSON_IsObject(cur))
			return NULL;
		/* The first byte tells most members apart without a call. */
		for (m = cur->child; m; m = m->next)
			if (m->string && m->string[0] == name[0] && strcmp(m->string, name) == 0)
				break;
		if (!m)
			return NULL;
		cur = m;
		name += strlen(name) + 1;
	}
	return cur;
}

static bool scalar_eq(const cJSON *a, const cJSON *b)
{
	if (cJSON_IsString(a) && cJSON_IsString(b))
		return kv_streq_ci(a->valuestring, b->valuestring);
	if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
		return a->valuedouble == b->valuedouble;
	if (cJSON_IsBool(a) && cJSON_IsBool(b))
		return cJSON_IsTrue(a) == cJSON_IsTrue(b);
	if (cJSON_IsNull(a) && cJSON_IsNull(b))
		return true;
	return false;
}

static bool array_has(const cJSON *arr, const cJSON *item)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, arr)
		if (scalar_eq(e, item))
			return true;
	return false;
}

/* ASCII case-insensitive substring test. */
static bool contains_ci(const char *hay, const char *needle)
{
	size_t hn = strlen(hay), nn = strlen(needle);

	for (size_t i = 0; i + nn <= hn; i++) {
		size_t j = 0;

		while (j < nn) {
			unsigned char a = (unsigned char)hay[i + j], b = (unsigned char)needle[j];

			if (a >= 'A' && a <= 'Z')
				a = (unsigned char)(a - 'A' + 'a');
			if (b >= 'A' && b <= 'Z')
				b = (unsigned char)(b - 'A' + 'a');
			if (a != b)
				break;
			j++;
		}
		if (j == nn)
			return true;
	}
	return false;
}

/* ---------- parsing ---------- */

struct parse_ctx {
	const char *name;          /* file name for messages */
	enum subject_kind subject;
	struct kv_err *err;
};

static void cond_free(struct cond *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		cond_free(c->kids[i]);
	free(c->kids);
	free(c->path);
	free(c->steps);
	pcre2_code_free(c->re);
	free(c);
}

static struct cond *cond_parse(struct parse_ctx *pc, const cJSON *j, const char *jpath);

/* Appends ".key" or "[i]" to a JSON path for a child's messages. */
static void jpath_key(char *out, const char *parent, const char *key)
{
	snprintf(out, JPATH_MAX, "%s.%s", parent, key);
}

static void jpath_index(char *out, const char *parent, const char *key, size_t i)
{
	snprintf(out, JPATH_MAX, "%s.%s[%zu]", parent, key, i);
}

static bool op_lookup(const char *k, enum op *out)
{
	for (size_t i = 0; i < OP_COUNT; i++)
		if (strcmp(op_names[i], k) == 0) {
			*out = (enum op)i;
			return true;
		}
	return false;
}

/* Does a scalar value fit a fact of registered type t? */
static bool value_fits_type(const cJSON *v, enum fact_type t)
{
	switch (t) {
	case FACT_STRING: return cJSON_IsString(v);
	case FACT_BOOL: return cJSON_IsBool(v);
	case FACT_NUMBER: return cJSON_IsNumber(v);
	case FACT_ARRAY: return false;
	}
	return false;
}

static const char *fact_type_article(enum fact_type t)
{
	switch (t) {
	case FACT_STRING: return "a string";
	case FACT_BOOL: return "a boolean";
	case FACT_NUMBER: return "a number";
	case FACT_ARRAY: return "an array";
	}
	return "?";
}

/*
 * Checks the value of a leaf against its operator and against the
 * registered type of its fact; compiles regexes.  jp is the JSON path of the
 * operator member.
 */
static bool leaf_check(struct parse_ctx *pc, struct cond *c, const struct fact_def *fd, const char *jp)
{
	const cJSON *v = c->value, *e;
	const char *opn = op_names[c->op];

	switch (c->op) {
	case OP_EQ:
	case OP_NE:
		if (!is_scalar(v) && !cJSON_IsNull(v)) {
			kv_err_set(pc->err, "%s: %s: expected a string, number, boolean or null", pc->name, jp);
			return false;
		}
		if (!cJSON_IsNull(v) && !value_fits_type(v, fd->type)) {
			kv_err_set(pc->err, "%s: %s: fact '%s' is %s, '%s' cannot compare it with %s",
			           pc->name, jp, fd->path, fact_type_article(fd->type), opn, json_type_name(v));
			return false;
		}
		return true;
	case OP_IN:
	case OP_NOT_IN:
		if (!cJSON_IsArray(v)) {
			kv_err_set(pc->err, "%s: %s: expected an array of strings, numbers or booleans", pc->name, jp);
			return false;
		}
		if (fd->type == FACT_ARRAY) {
			kv_err_set(pc->err, "%s: %s: fact '%s' is an array, '%s' needs a string, boolean or number fact (use 'contains', 'superset' or 'subset')",
			           pc->name, jp, fd->path, opn);
			return false;
		}
		cJSON_ArrayForEach(e, v) {
			if (!is_scalar(e)) {
				kv_err_set(pc->err, "%s: %s: expected an array of strings, numbers or booleans", pc->name, jp);
				return false;
			}
			if (!value_fits_type(e, fd->type)) {
				kv_err_set(pc->err, "%s: %s: fact '%s' is %s, '%s' lists %s",
				           pc->name, jp, fd->path, fact_type_article(fd->type), opn, json_type_name(e));
				return false;
			}
		}
		return true;
	case OP_CONTAINS:
		if (!is_scalar(v)) {
			kv_err_set(pc->err, "%s: %s: expected a string, number or boolean", pc->name, jp);
			return false;
		}
		if (fd->type != FACT_ARRAY && fd->type != FACT_STRING) {
			kv_err_set(pc->err, "%s: %s: fact '%s' is %s, 'contains' needs an array or string fact",
			           pc->name, jp, fd->path, fact_type_article(fd->type));
			return false;
		}
		if (fd->type == FACT_STRING && !cJSON_IsString(v)) {
			kv_err_set(pc->err, "%s: %s: fact '%s' is a string, 'contains' needs a string value",
			           pc->name, jp, fd->path);
			return false;
		}
		return true;
	case OP_SUPERSET:
	case OP_SUBSET:
		if (!cJSON_IsArray(v)) {
			kv_err_set(pc->err, "%s: %s: expected an array of strings", pc->name, jp);
			return false;
		}
		cJSON_ArrayForEach(e, v)
			if (!cJSON_IsString(e)) {
				kv_err_set(pc->err, "%s: %s: expected an array of strings", pc->name, jp);
				return false;
			}
		if (fd->type != FACT_ARRAY) {
			kv_err_set(pc->err, "%s: %s: fact '%s' is %s, '%s' needs an array fact",
			           pc->name, jp, fd->path, fact_type_article(fd->type), opn);
			return false;
		}
		return true;
	case OP_REGEX: {
		int code = 0;
		PCRE2_SIZE off = 0;

		if (!cJSON_IsString(v)) {
			kv_err_set(pc->err, "%s: %s: expected a string", pc->name, jp);
			return false;
		}
		if (fd->type != FACT_STRING) {
			kv_err_set(pc->err, "%s: %s: fact '%s' is %s, 'regex' needs a string fact",
			           pc->name, jp, fd->path, fact_type_article(fd->type));
			return false;
		}
		c->re = pcre2_compile((PCRE2_SPTR)v->valuestring, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
		if (!c->re) {
			PCRE2_UCHAR msg[256];

			if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
				snprintf((char *)msg, sizeof(msg), "error %d", code);
			kv_err_set(pc->err, "%s: %s: bad regex at offset %zu: %s", pc->name, jp, (size_t)off, (const char *)msg);
			return false;
		}
		return true;
	}
	case OP_EXISTS:
		if (!cJSON_IsBool(v)) {
			kv_err_set(pc->err, "%s: %s: expected a boolean", pc->name, jp);
			return false;
		}
		return true;
	case OP_GT:
	case OP_LT:
		if (!cJSON_IsNumber(v)) {
			kv_err_set(pc->err, "%s: %s: expected a number", pc->name, jp);
			return false;
		}
		if (fd->type != FACT_NUMBER) {
			kv_err_set(pc->err, "%s: %s: fact '%s' is %s, '%s' needs a number fact",
			           pc->name, jp, fd->path, fact_type_article(fd->type), opn);
			return false;
		}
		return true;
	}
	return false;
}

static struct cond *leaf_parse(struct parse_ctx *pc, const cJSON *j, const char *jpath)
{
	struct cond *c = NULL, *ret = NULL;
	const cJSON *fact = NULL, *opv = NULL, *m;
	const struct fact_def *fd;
	const char *opkey = NULL;
	char jp[JPATH_MAX];

	for (m = j->child; m; m = m->next) {
		enum op op;

		if (is_comment_key(m->string))
			continue;
		if (strcmp(m->string, "fact") == 0) {
			if (fact) {
				kv_err_set(pc->err, "%s: %s: duplicate field 'fact'", pc->name, jpath);
				goto out;
			}
			fact = m;
		} else if (op_lookup(m->string, &op)) {
			if (opv) {
				kv_err_set(pc->err, "%s: %s: more than one operator ('%s' and '%s')",
				           pc->name, jpath, opkey, m->string);
				goto out;
			}
			opv = m;
			opkey = m->string;
		} else {
			kv_err_set(pc->err, "%s: %s: unknown operator '%s' (expected one of eq ne in not_in contains superset subset regex exists gt lt)",
			           pc->name, jpath, m->string);
			goto out;
		}
	}
	jpath_key(jp, jpath, "fact");
	if (!cJSON_IsString(fact) || !*fact->valuestring) {
		kv_err_set(pc->err, "%s: %s: expected a fact path string", pc->name, jp);
		goto out;
	}
	fd = facts_find(fact->valuestring);
	if (!fd) {
		kv_err_set(pc->err, "%s: %s: unknown fact '%s'", pc->name, jp, fact->valuestring);
		goto out;
	}
	if (!(fd->subjects & (unsigned)pc->subject)) {
		kv_err_set(pc->err, "%s: %s: fact '%s' is not available for subject '%s'",
		           pc->name, jp, fd->path, subject_name(pc->subject));
		goto out;
	}
	if (!opv) {
		kv_err_set(pc->err, "%s: %s: missing operator (expected one of eq ne in not_in contains superset subset regex exists gt lt)",
		           pc->name, jpath);
		goto out;
	}
	c = kv_calloc(1, sizeof(*c));
	c->kind = C_LEAF;
	c->path = kv_strdup(fd->path);
	c->steps = kv_strdup(fd->path);
	c->nseg = 1;
	for (char *d = c->steps; (d = strchr(d, '.')) != NULL; d++) {
		*d = '\0';
		c->nseg++;
	}
	op_lookup(opkey, &c->op);
	c->value = opv;
	jpath_key(jp, jpath, opkey);
	if (!leaf_check(pc, c, fd, jp))
		goto out;
	ret = c;
	c = NULL;
out:
	cond_free(c);
	return ret;
}

static struct cond *list_parse(struct parse_ctx *pc, const cJSON *arr, enum cond_kind kind,
                               const char *key, const char *jpath)
{
	struct cond *c = NULL, *ret = NULL;
	const cJSON *e;
	char jp[JPATH_MAX];
	size_t i = 0;

	if (!cJSON_IsArray(arr)) {
		jpath_key(jp, jpath, key);
		kv_err_set(pc->err, "%s: %s: expected an array of conditions", pc->name, jp);
		goto out;
	}
	c = kv_calloc(1, sizeof(*c));
	c->kind = kind;
	c->kids = kv_calloc((size_t)cJSON_GetArraySize(arr), sizeof(*c->kids));
	cJSON_ArrayForEach(e, arr) {
		jpath_index(jp, jpath, key, i++);
		c->kids[c->n] = cond_parse(pc, e, jp);
		if (!c->kids[c->n])
			goto out;
		c->n++;
	}
	ret = c;
	c = NULL;
out:
	cond_free(c);
	return ret;
}

/* Compiles one condition; jpath names it in messages ("$.require.all[1]"). */
static struct cond *cond_parse(struct parse_ctx *pc, const cJSON *j, const char *jpath)
{
	const cJSON *m, *which = NULL;
	bool leaf = false;
	char jp[JPATH_MAX];
	struct cond *c = NULL;

	if (!cJSON_IsObject(j)) {
		kv_err_set(pc->err, "%s: %s: expected a condition object, found %s", pc->name, jpath, json_type_name(j));
		return NULL;
	}
	for (m = j->child; m; m = m->next) {
		if (is_comment_key(m->string))
			continue;
		if (!strcmp(m->string, "all") || !strcmp(m->string, "any") || !strcmp(m->string, "not")) {
			if (which) {
				kv_err_set(pc->err, "%s: %s: '%s' and '%s' in one condition (use one of all, any, not or a fact)",
				           pc->name, jpath, which->string, m->string);
				return NULL;
			}
			which = m;
		} else {
			leaf = true;
		}
	}
	if (which && leaf) {
		for (m = j->child; m; m = m->next)
			if (!is_comment_key(m->string) && m != which)
				break;
		kv_err_set(pc->err, "%s: %s: '%s' cannot be combined with '%s'", pc->name, jpath,
		           which->string, m ? m->string : "?");
		return NULL;
	}
	if (leaf)
		return leaf_parse(pc, j, jpath);
	if (!which) {
		kv_err_set(pc->err, "%s: %s: empty condition (expected all, any, not or a fact)", pc->name, jpath);
		return NULL;
	}
	if (!strcmp(which->string, "all"))
		return list_parse(pc, which, C_ALL, "all", jpath);
	if (!strcmp(which->string, "any"))
		return list_parse(pc, which, C_ANY, "any", jpath);
	jpath_key(jp, jpath, "not");
	c = kv_calloc(1, sizeof(*c));
	c->kind = C_NOT;
	c->kids = kv_calloc(1, sizeof(*c->kids));
	c->kids[0] = cond_parse(pc, which, jp);
	if (!c->kids[0]) {
		cond_free(c);
		return NULL;
	}
	c->n = 1;
	return c;
}

/* ^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$ */
static bool id_valid(const char *s)
{
	size_t i = 0;
	int groups = 0;

	if (!(s[i] >= 'A' && s[i] <= 'Z'))
		return false;
	while ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9'))
		i++;
	while (s[i] == '-') {
		size_t start = ++i;

		while ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9'))
			i++;
		if (i == start)
			return false;
		groups++;
	}
	return s[i] == '\0' && groups > 0;
}

/* Reports the line and column of byte offset off in text. */
static void offset_to_linecol(const char *text, size_t off, size_t *line, size_t *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

static bool get_string(struct parse_ctx *pc, const cJSON *root, const char *key, bool required,
                       bool nonempty, const cJSON **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);

	*out = NULL;
	if (!v) {
		if (required)
			kv_err_set(pc->err, "%s: $: missing required field '%s'", pc->name, key);
		return !required;
	}
	if (!cJSON_IsString(v)) {
		kv_err_set(pc->err, "%s: $.%s: expected a string, found %s", pc->name, key, json_type_name(v));
		return false;
	}
	if (nonempty && !*v->valuestring) {
		kv_err_set(pc->err, "%s: $.%s: must not be empty", pc->name, key);
		return false;
	}
	*out = v;
	return true;
}

static const char *const top_fields[] = {
	"id", "title", "severity", "subject", "when", "require", "message", "passMessage",
	"remediation", "references",
};

/* Unknown and duplicate members of obj (comments aside); jpath names obj. */
static bool check_fields(struct parse_ctx *pc, const cJSON *obj, const char *jpath,
                         const char *const *known, size_t nknown)
{
	for (const cJSON *m = obj->child; m; m = m->next) {
		bool ok = false;

		if (is_comment_key(m->string))
			continue;
		for (size_t i = 0; i < nknown; i++)
			if (strcmp(m->string, known[i]) == 0)
				ok = true;
		if (!ok) {
			kv_err_set(pc->err, "%s: %s: unknown field '%s'", pc->name, jpath, m->string);
			return false;
		}
		for (const cJSON *o = obj->child; o != m; o = o->next)
			if (strcmp(o->string, m->string) == 0) {
				kv_err_set(pc->err, "%s: %s: duplicate field '%s'", pc->name, jpath, m->string);
				return false;
			}
	}
	return true;
}

static bool check_remediation(struct parse_ctx *pc, const cJSON *root)
{
	static const char *const fields[] = {"text", "fix"};
	const cJSON *rem = cJSON_GetObjectItemCaseSensitive(root, "remediation"), *v;

	if (!rem)
		return true;
	if (!cJSON_IsObject(rem)) {
		kv_err_set(pc->err, "%s: $.remediation: expected an object, found %s", pc->name, json_type_name(rem));
		return false;
	}
	if (!check_fields(pc, rem, "$.remediation", fields, 2))
		return false;
	v = cJSON_GetObjectItemCaseSensitive(rem, "text");
	if (v && !cJSON_IsString(v)) {
		kv_err_set(pc->err, "%s: $.remediation.text: expected a string, found %s", pc->name, json_type_name(v));
		return false;
	}
	v = cJSON_GetObjectItemCaseSensitive(rem, "fix");
	if (v && !cJSON_IsString(v) && !cJSON_IsNull(v)) {
		kv_err_set(pc->err, "%s: $.remediation.fix: expected a string or null, found %s", pc->name, json_type_name(v));
		return false;
	}
	return true;
}

static bool check_references(struct parse_ctx *pc, const cJSON *root)
{
	const cJSON *refs = cJSON_GetObjectItemCaseSensitive(root, "references"), *e;
	size_t i = 0;

	if (!refs)
		return true;
	if (!cJSON_IsArray(refs)) {
		kv_err_set(pc->err, "%s: $.references: expected an array of strings, found %s", pc->name, json_type_name(refs));
		return false;
	}
	cJSON_ArrayForEach(e, refs) {
		if (!cJSON_IsString(e)) {
			kv_err_set(pc->err, "%s: $.references[%zu]: expected a string, found %s", pc->name, i, json_type_name(e));
			return false;
		}
		i++;
	}
	return true;
}

bool rule_parse(const char *text, size_t len, const char *name, struct rule *out, struct kv_err *err)
{
	struct parse_ctx pc = {.name = name ? name : "<rule>", .err = err};
	struct rule r = {0};
	const cJSON *id, *title, *sev, *subj, *msg, *pass, *when, *req;
	const char *end = NULL;
	char *buf = NULL;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	/* A private NUL-terminated copy: cJSON_ParseWithLengthOpts with
	 * require_null_terminated insists on seeing the NUL inside the length. */
	buf = kv_malloc(len + 1);
	if (len)
		memcpy(buf, text, len);
	buf[len] = '\0';
	r.json = cJSON_ParseWithLengthOpts(buf, len + 1, &end, true);
	if (!r.json || (size_t)(end - buf) != len) {
		size_t off = end ? (size_t)(end - buf) : 0, line, col;

		if (off > len)
			off = len;
		offset_to_linecol(buf, off, &line, &col);
		kv_err_set(err, "%s: invalid json at byte %zu (line %zu, column %zu)%s", pc.name, off, line, col,
		           r.json ? ": unexpected NUL byte" : "");
		goto out;
	}
	if (!cJSON_IsObject(r.json)) {
		kv_err_set(err, "%s: $: expected a rule object, found %s", pc.name, json_type_name(r.json));
		goto out;
	}
	if (!check_fields(&pc, r.json, "$", top_fields, sizeof(top_fields) / sizeof(top_fields[0])))
		goto out;

	if (!get_string(&pc, r.json, "id", true, true, &id))
		goto out;
	if (!id_valid(id->valuestring)) {
		kv_err_set(err, "%s: $.id: '%s' is not a rule id (expected upper case words joined by '-', e.g. 'ACME-KV-001')",
		           pc.name, id->valuestring);
		goto out;
	}
	if (!get_string(&pc, r.json, "title", true, true, &title))
		goto out;
	if (!get_string(&pc, r.json, "severity", true, false, &sev))
		goto out;
	if (!severity_parse(sev->valuestring, &r.severity)) {
		kv_err_set(err, "%s: $.severity: unknown severity '%s' (expected info, low, medium, high or critical)",
		           pc.name, sev->valuestring);
		goto out;
	}
	if (!get_string(&pc, r.json, "subject", true, false, &subj))
		goto out;
	if (!subject_parse(subj->valuestring, &r.subject)) {
		kv_err_set(err, "%s: $.subject: unknown subject '%s' (expected vm, vault, binding or tenant)",
		           pc.name, subj->valuestring);
		goto out;
	}
	pc.subject = r.subject;
	if (!get_string(&pc, r.json, "message", true, true, &msg))
		goto out;
	if (!get_string(&pc, r.json, "passMessage", false, false, &pass))
		goto out;
	if (!check_remediation(&pc, r.json) || !check_references(&pc, r.json))
		goto out;

	when = cJSON_GetObjectItemCaseSensitive(r.json, "when");
	if (when) {
		r.when = cond_parse(&pc, when, "$.when");
		if (!r.when)
			goto out;
	}
	req = cJSON_GetObjectItemCaseSensitive(r.json, "require");
	if (!req) {
		kv_err_set(err, "%s: $: missing required field 'require'", pc.name);
		goto out;
	}
	r.require = cond_parse(&pc, req, "$.require");
	if (!r.require)
		goto out;

	r.id = kv_strdup(id->valuestring);
	r.title = kv_strdup(title->valuestring);
	r.message = kv_strdup(msg->valuestring);
	r.pass_message = pass ? kv_strdup(pass->valuestring) : NULL;
	r.source = kv_strdup(pc.name);
	*out = r;
	memset(&r, 0, sizeof(r));
	ok = true;
out:
	rule_release(&r);
	free(buf);
	return ok;
}

void rule_release(struct rule *r)
{
	if (!r)
		return;
	free(r->id);
	free(r->title);
	free(r->message);
	free(r->pass_message);
	free(r->source);
	cond_free(r->when);
	cond_free(r->require);
	cJSON_Delete(r->json);
	memset(r, 0, sizeof(*r));
}

/* ---------- evaluation ---------- */

enum tv { TV_FALSE, TV_TRUE, TV_UNKNOWN };

struct tval {
	enum tv v;
	enum finding_status st;    /* TV_UNKNOWN: ST_ERROR or ST_SKIPPED */
	const char *reason;        /* TV_UNKNOWN: the "$unavailable" reason (may be NULL) */
	const char *path;          /* TV_UNKNOWN: the fact that was unavailable */
};

struct eval_ctx {
	const cJSON *facts;
	const cJSON *unavail;      /* facts' "$unavailable", found once per evaluation */
	cJSON *evidence;           /* NULL: the status only (rule_judge) */
	cJSON *missing;            /* NULL: the status only */
};

static struct tval tv_bool(bool b)
{
	struct tval t = {.v = b ? TV_TRUE : TV_FALSE};

	return t;
}

/*
 * Is path under a key of un (the facts' "$unavailable" object, or NULL)?
 * A key K covers path P when K == P or P starts with K followed by '.'.
 * Of several matches, error beats skipped; among equals the first (in
 * document order) gives the reason.
 */
static bool unavailable(const cJSON *un, const char *path, struct tval *t)
{
	const cJSON *k;
	bool found = false;

	if (!cJSON_IsObject(un))
		return false;
	for (k = un->child; k; k = k->next) {
		size_t kl = k->string ? strlen(k->string) : 0;
		const cJSON *st, *rs;
		enum finding_status s;

		if (!kl || strncmp(path, k->string, kl) != 0 || (path[kl] != '\0' && path[kl] != '.'))
			continue;
		st = cJSON_GetObjectItemCaseSensitive(k, "status");
		rs = cJSON_GetObjectItemCaseSensitive(k, "reason");
		/* Anything but an explicit "skipped" is an error: never let it pass. */
		s = (cJSON_IsString(st) && strcmp(st->valuestring, "skipped") == 0) ? ST_SKIPPED : ST_ERROR;
		if (!found || (t->st == ST_SKIPPED && s == ST_ERROR)) {
			t->v = TV_UNKNOWN;
			t->st = s;
			t->reason = cJSON_IsString(rs) && *rs->valuestring ? rs->valuestring : NULL;
			t->path = path;
		}
		found = true;
	}
	return found;
}

static void add_missing(struct eval_ctx *ec, const cJSON *item)
{
	if (ec->missing && !array_has(ec->missing, item))
		cJSON_AddItemToArray(ec->missing, cJSON_CreateString(item->valuestring));
}

static bool regex_match(const pcre2_code *re, const char *s)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	int rc;

	if (!md)
		return false;
	rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
	pcre2_match_data_free(md);
	return rc >= 0;
}

static struct tval leaf_eval(struct eval_ctx *ec, const struct cond *c)
{
	struct tval t = {0};
	const cJSON *f = NULL, *v = c->value, *e;
	bool un = unavailable(ec->unavail, c->path, &t);

	if (!un)
		f = leaf_fact(ec->facts, c);
	if (ec->evidence && !cJSON_GetObjectItemCaseSensitive(ec->evidence, c->path))
		cJSON_AddItemToObject(ec->evidence, c->path, f ? cJSON_Duplicate(f, true) : cJSON_CreateNull());
	if (un)
		return t;

	switch (c->op) {
	case OP_EQ:
	case OP_NE: {
		bool eq = cJSON_IsNull(v) ? (!f || cJSON_IsNull(f)) : (f && scalar_eq(f, v));

		return tv_bool(c->op == OP_EQ ? eq : !eq);
	}
	case OP_IN:
	case OP_NOT_IN: {
		bool in = f && is_scalar(f) && array_has(v, f);

		return tv_bool(c->op == OP_IN ? in : !in);
	}
	case OP_CONTAINS:
		if (cJSON_IsArray(f))
			return tv_bool(array_has(f, v));
		if (cJSON_IsString(f) && cJSON_IsString(v))
			return tv_bool(contains_ci(f->valuestring, v->valuestring));
		return tv_bool(false);
	case OP_SUPERSET: {
		/* A fact that is not an array (null: no entry at all) lacks every item. */
		bool ok = cJSON_IsArray(f);

		cJSON_ArrayForEach(e, v)
			if (!cJSON_IsArray(f) || !array_has(f, e)) {
				add_missing(ec, e);
				ok = false;
			}
		return tv_bool(ok);
	}
	case OP_SUBSET:
		if (!cJSON_IsArray(f))
			return tv_bool(false);
		cJSON_ArrayForEach(e, f)
			if (!array_has(v, e))
				return tv_bool(false);
		return tv_bool(true);
	case OP_REGEX:
		return tv_bool(cJSON_IsString(f) && regex_match(c->re, f->valuestring));
	case OP_EXISTS:
		return tv_bool((f && !cJSON_IsNull(f)) == (bool)cJSON_IsTrue(v));
	case OP_GT:
		return tv_bool(cJSON_IsNumber(f) && f->valuedouble > v->valuedouble);
	case OP_LT:
		return tv_bool(cJSON_IsNumber(f) && f->valuedouble < v->valuedouble);
	}
	return tv_bool(false);
}

/* Keeps the winning unknown: error beats skipped, else the first one. */
static void merge_unknown(struct tval *acc, const struct tval *t)
{
	if (acc->v != TV_UNKNOWN || (acc->st == ST_SKIPPED && t->st == ST_ERROR))
		*acc = *t;
}

/*
 * Evaluates every child (no short-circuit), so the evidence lists every
 * fact the rule names, in order, whatever the outcome.
 */
static struct tval cond_eval(struct eval_ctx *ec, const struct cond *c)
{
	struct tval acc = {0}, t;
	bool any_false = false, any_true = false;

	switch (c->kind) {
	case C_LEAF:
		return leaf_eval(ec, c);
	case C_NOT:
		t = cond_eval(ec, c->kids[0]);
		if (t.v != TV_UNKNOWN)
			t.v = t.v == TV_TRUE ? TV_FALSE : TV_TRUE;
		return t;
	case C_ALL:
	case C_ANY:
		for (size_t i = 0; i < c->n; i++) {
			t = cond_eval(ec, c->kids[i]);
			if (t.v == TV_FALSE)
				any_false = true;
			else if (t.v == TV_TRUE)
				any_true = true;
			else
				merge_unknown(&acc, &t);
		}
		if (c->kind == C_ALL && any_false)
			return tv_bool(false);
		if (c->kind == C_ANY && any_true)
			return tv_bool(true);
		if (acc.v == TV_UNKNOWN)
			return acc;
		return tv_bool(c->kind == C_ALL);
	}
	return tv_bool(false);
}

static void set_unknown(struct rule_outcome *out, const struct tval *t, bool detail)
{
	out->status = t->st;
	if (t->reason)
		out->reason = kv_strdup(t->reason);
	else
		out->reason = kv_asprintf(t->st == ST_SKIPPED ? "fact '%s' was not collected"
		                                              : "fact '%s' could not be read", t->path);
	if (detail)
		out->message = kv_strdup(out->reason);
}

/* detail: also the evidence, the missing items and the message (else they stay NULL). */
static void evaluate(const struct rule *r, const cJSON *facts, struct rule_outcome *out, bool detail)
{
	struct eval_ctx ec = {.facts = facts, .unavail = cJSON_GetObjectItemCaseSensitive(facts, "$unavailable")};
	struct tval t;

	memset(out, 0, sizeof(*out));
	if (detail) {
		ec.evidence = cJSON_CreateObject();
		ec.missing = cJSON_CreateArray();
	}
	if (r->when) {
		t = cond_eval(&ec, r->when);
		if (t.v == TV_FALSE) {
			out->status = ST_NOT_APPLICABLE;
			if (detail)
				out->message = kv_strdup("not applicable");
			goto out;
		}
		if (t.v == TV_UNKNOWN) {
			set_unknown(out, &t, detail);
			goto out;
		}
	}
	t = cond_eval(&ec, r->require);
	if (t.v == TV_UNKNOWN) {
		set_unknown(out, &t, detail);
	} else if (t.v == TV_TRUE) {
		out->status = ST_PASS;
		if (detail)
			out->message = r->pass_message ? rule_render(r->pass_message, facts, NULL) : kv_strdup(r->title);
	} else {
		out->status = ST_FAIL;
		if (detail)
			out->message = rule_render(r->message, facts, ec.missing);
		if (cJSON_GetArraySize(ec.missing) > 0) {
			out->missing = ec.missing;
			ec.missing = NULL;
		}
	}
out:
	out->evidence = ec.evidence;
	cJSON_Delete(ec.missing);
}

void rule_evaluate(const struct rule *r, const cJSON *facts, struct rule_outcome *out)
{
	evaluate(r, facts, out, true);
}

void rule_judge(const struct rule *r, const cJSON *facts, struct rule_outcome *out)
{
	evaluate(r, facts, out, false);
}

void rule_outcome_release(struct rule_outcome *o)
{
	if (!o)
		return;
	free(o->message);
	free(o->reason);
	cJSON_Delete(o->evidence);
	cJSON_Delete(o->missing);
	memset(o, 0, sizeof(*o));
}

/* ---------- rendering ---------- */

/* Appends s[0..n) without passing RENDER_MAX bytes or splitting a UTF-8 sequence. */
static void put(struct kv_buf *b, const char *s, size_t n)
{
	size_t room;

	if (b->overflow || b->len >= RENDER_MAX)
		return;
	room = RENDER_MAX - b->len;
	if (n > room) {
		n = room;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
		kv_buf_add(b, s, n);
		b->overflow = true;    /* full: nothing more, not even a shorter piece */
		return;
	}
	kv_buf_add(b, s, n);
}

static void puts_(struct kv_buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void put_scalar(struct kv_buf *b, const cJSON *v)
{
	char num[64];

	if (cJSON_IsString(v)) {
		puts_(b, v->valuestring);
	} else if (cJSON_IsNumber(v)) {
		snprintf(num, sizeof(num), "%g", v->valuedouble);
		puts_(b, num);
	} else if (cJSON_IsBool(v)) {
		puts_(b, cJSON_IsTrue(v) ? "true" : "false");
	} else {
		puts_(b, "?");
	}
}

/* A value as text: arrays joined with ", ", empty ones (or none at all, for a list) "none". */
static void put_value(struct kv_buf *b, const cJSON *v, bool list)
{
	const cJSON *e;
	bool first = true;

	if (!v && list) {
		puts_(b, "none");
		return;
	}
	if (!cJSON_IsArray(v)) {
		put_scalar(b, v);
		return;
	}
	if (cJSON_GetArraySize(v) == 0) {
		puts_(b, "none");
		return;
	}
	cJSON_ArrayForEach(e, v) {
		if (!first)
			puts_(b, ", ");
		put_scalar(b, e);
		first = false;
	}
}

char *rule_render(const char *tmpl, const cJSON *facts, const cJSON *missing)
{
	struct kv_buf b;
	const char *p = tmpl ? tmpl : "";

	kv_buf_init(&b, 0);
	kv_buf_add(&b, "", 0);
	while (*p) {
		const char *open = strstr(p, "{{"), *close, *s, *e;
		char *path;

		if (!open || !(close = strstr(open + 2, "}}"))) {
			puts_(&b, p);
			break;
		}
		put(&b, p, (size_t)(open - p));
		for (s = open + 2; s < close && (*s == ' ' || *s == '\t'); s++)
			;
		for (e = close; e > s && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		path = kv_strndup(s, (size_t)(e - s));
		if (strcmp(path, "missing") == 0)
			put_value(&b, cJSON_IsArray(missing) ? missing : NULL, true);
		else
			put_value(&b, fact_lookup(facts, path), false);
		free(path);
		p = close + 2;
	}
	return kv_buf_detach(&b);
}
