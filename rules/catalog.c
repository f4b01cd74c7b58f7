/*
 * catalog.c - the rule catalog: the built-in rules embedded at build time
 * (every JSON file of rules/catalog, via cmake/embed.cmake) and users' rule directories.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rules/catalog.h"
#include "rules/engine.h"

/* A rule file is a few kilobytes; anything near this is not a rule. */
#define RULE_FILE_MAX (1024 * 1024)

/*
 * Appends rules[0..n) to cat, taking ownership, unless one of their IDs is
 * already in cat or repeats among them; then cat and rules are unchanged and
 * false is returned with err set.
 */
static bool catalog_append(struct rule_catalog *cat, struct rule *rules, size_t n, struct kv_err *err)
{
	for (size_t i = 0; i < n; i++) {
		const struct rule *prev = rule_catalog_find(cat, rules[i].id);

		for (size_t j = 0; !prev && j < i; j++)
			if (kv_streq_ci(rules[j].id, rules[i].id))
				prev = &rules[j];
		if (prev) {
			kv_err_set(err, "%s: $.id: duplicate rule id '%s' (already defined by %s)",
			           rules[i].source, rules[i].id, prev->source);
			return false;
		}
	}
	if (n == 0)
		return true;
	cat->rules = kv_realloc(cat->rules, (cat->n + n) * sizeof(*cat->rules));
	memcpy(cat->rules + cat->n, rules, n * sizeof(*rules));
	cat->n += n;
	return true;
}

bool rule_catalog_load_builtin(struct rule_catalog *cat, struct kv_err *err)
{
	struct rule *rules = NULL;
	size_t n = 0;
	bool ok = false;

	rules = kv_calloc(catalog_file_count, sizeof(*rules));
	for (; n < catalog_file_count; n++) {
		const struct catalog_file *f = &catalog_files[n];
		char *name = kv_asprintf("rules/catalog/%s", f->name);
		bool parsed = rule_parse(f->data, f->len, name, &rules[n], err);

		if (parsed) {
			/* The file name is the ID, so that a rule is easy to find. */
			size_t il = strlen(rules[n].id);

			if (strncmp(f->name, rules[n].id, il) != 0 || strcmp(f->name + il, ".json") != 0) {
				kv_err_set(err, "%s: $.id: rule '%s' must be in a file named '%s.json'", name,
				           rules[n].id, rules[n].id);
				rule_release(&rules[n]);
				parsed = false;
			} else {
				free(rules[n].source);
				rules[n].source = kv_strdup("builtin");
			}
		}
		free(name);
		if (!parsed)
			goto out;
	}
	if (!catalog_append(cat, rules, n, err))
		goto out;
	n = 0;
	ok = true;
out:
	for (size_t i = 0; i < n; i++)
		rule_release(&rules[i]);
	free(rules);
	return ok;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of dir's *.json files (dot files aside); NULL with err set. */
static char **list_json(const char *dir, size_t *count, struct kv_err *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;

	*count = 0;
	if (!d) {
		kv_err_set(err, "%s: cannot read directory: %s", dir, strerror(errno));
		return NULL;
	}
	names = kv_malloc(sizeof(*names));
	errno = 0;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (de->d_name[0] == '.' || l <= 5 || strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		names = kv_realloc(names, (n + 1) * sizeof(*names));
		names[n++] = kv_strdup(de->d_name);
	}
	if (errno) {
		kv_err_set(err, "%s: cannot read directory: %s", dir, strerror(errno));
		while (n)
			free(names[--n]);
		free(names);
		closedir(d);
		return NULL;
	}
	closedir(d);
	if (n > 1)   /* qsort(NULL, 0, …) is undefined */
		qsort(names, n, sizeof(*names), cmp_names);
	*count = n;
	return names;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Reads and parses dir/name into *r. */
static bool load_file(const char *dir, const char *name, struct rule *r, struct kv_err *err)
{
	size_t dl = strlen(dir);
	char *path = kv_asprintf("%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
	size_t len = 0;
	char *text = kv_read_file(path, RULE_FILE_MAX, &len, err);
	bool ok = text && rule_parse(text, len, path, r, err);

	free(text);
	free(path);
	return ok;
}

bool rule_catalog_load_dir(struct rule_catalog *cat, const char *dir, struct kv_err *err)
{
	struct rule *rules = NULL;
	char **names = NULL;
	size_t count = 0, n = 0;
	bool ok = false;

	names = list_json(dir, &count, err);
	if (!names)
		goto out;
	rules = kv_calloc(count, sizeof(*rules));
	for (; n < count; n++)
		if (!load_file(dir, names[n], &rules[n], err))
			goto out;
	if (!catalog_append(cat, rules, n, err))
		goto out;
	n = 0;
	ok = true;
out:
	for (size_t i = 0; i < n; i++)
		rule_release(&rules[i]);
	free(rules);
	free_names(names, count);
	return ok;
}

int rule_catalog_check_dir(const char *dir, FILE *out)
{
	struct rule_catalog seen = {0};
	struct kv_err err = {{0}};
	char **names = NULL;
	size_t count = 0;
	int bad = 0;

	names = list_json(dir, &count, &err);
	if (!names) {
		fprintf(out, "%s\n", err.msg);
		return 1;
	}
	for (size_t i = 0; i < count; i++) {
		struct rule r;

		if (!load_file(dir, names[i], &r, &err) || !catalog_append(&seen, &r, 1, &err)) {
			fprintf(out, "%s\n", err.msg);
			rule_release(&r);
			bad++;
		}
	}
	rule_catalog_release(&seen);
	free_names(names, count);
	return bad;
}

const struct rule *rule_catalog_find(const struct rule_catalog *cat, const char *id)
{
	for (size_t i = 0; cat && id && i < cat->n; i++)
		if (kv_streq_ci(cat->rules[i].id, id))
			return &cat->rules[i];
	return NULL;
}

void rule_catalog_release(struct rule_catalog *cat)
{
	if (!cat)
		return;
	for (size_t i = 0; i < cat->n; i++)
		rule_release(&cat->rules[i]);
	free(cat->rules);
	cat->rules = NULL;
	cat->n = 0;
}
