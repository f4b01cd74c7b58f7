/* armid.c - see armid.h. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "audit/util/armid.h"
#include "audit/util/util.h"

static size_t trimmed_len(const char *s)
{
	size_t n = strlen(s);

	if (n > 1 && s[n - 1] == '/')
		n--;
	return n;
}

bool armid_eq(const char *a, const char *b)
{
	size_t la, lb;

	if (!a || !b)
		return a == b;
	la = trimmed_len(a);
	lb = trimmed_len(b);
	return la == lb && strncasecmp(a, b, la) == 0;
}

bool armid_scope_contains(const char *scope, const char *id)
{
	size_t ls;

	if (!scope || !id || !*scope)
		return false;
	ls = trimmed_len(scope);
	if (ls == 1 && scope[0] == '/')
		return true;
	if (strncasecmp(scope, id, ls) != 0)
		return false;
	return id[ls] == '\0' || id[ls] == '/';
}

bool armid_segment(const char *id, const char *key, char *out, size_t n)
{
	size_t lk = strlen(key);
	const char *p = id;

	if (!id || n == 0)
		return false;
	while ((p = strchr(p, '/')) != NULL) {
		p++;
		if (strncasecmp(p, key, lk) == 0 && p[lk] == '/') {
			const char *v = p + lk + 1, *end = strchr(v, '/');
			size_t lv = end ? (size_t)(end - v) : strlen(v);

			if (lv == 0 || lv >= n)
				return false;
			memcpy(out, v, lv);
			out[lv] = '\0';
			return true;
		}
	}
	return false;
}

bool armid_name(const char *id, char *out, size_t n)
{
	size_t len;
	const char *start;

	if (!id || n == 0)
		return false;
	len = trimmed_len(id);
	start = id + len;
	while (start > id && start[-1] != '/')
		start--;
	len = (size_t)(id + len - start);
	if (len == 0 || len >= n)
		return false;
	memcpy(out, start, len);
	out[len] = '\0';
	return true;
}

bool armid_subscription_scope(const char *id, char *out, size_t n)
{
	char sub[128];
	size_t need;

	if (!armid_segment(id, "subscriptions", sub, sizeof(sub)))
		return false;
	need = strlen("/subscriptions/") + strlen(sub) + 1;
	if (need > n)
		return false;
	strcpy(out, "/subscriptions/");
	strcat(out, sub);
	return true;
}

void region_norm(const char *in, char *out, size_t n)
{
	size_t j = 0;

	if (n == 0)
		return;
	for (; in && *in && j + 1 < n; in++)
		if (!isspace((unsigned char)*in))
			out[j++] = (char)tolower((unsigned char)*in);
	out[j] = '\0';
}

bool armid_valid_for_url(const char *id)
{
	const char *seg;

	if (!id || !(kv_startswith_ci(id, "/subscriptions/") || kv_startswith_ci(id, "/providers/")))
		return false;
	if (strlen(id) > 2048)
		return false;
	for (const char *p = id; *p; p++)
		if (!(isalnum((unsigned char)*p) || strchr("-_.()/", *p)))
			return false;
	for (seg = id + 1;;) {
		size_t n = strcspn(seg, "/");

		if (n == 0 && seg[n] != '\0')
			return false;
		if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return false;
		if (seg[n] == '\0')
			break;
		seg += n + 1;
	}
	return true;
}
