/* catalog.h - the built-in rule files, embedded at build time by cmake/embed.cmake. */
#ifndef KVAUDIT_CATALOG_H
#define KVAUDIT_CATALOG_H

#include <stddef.h>

struct catalog_file {
	const char *name;   /* file name in rules/catalog/ */
	const char *data;   /* NUL-terminated JSON text */
	size_t len;
};

extern const struct catalog_file catalog_files[];
extern const size_t catalog_file_count;

#endif
