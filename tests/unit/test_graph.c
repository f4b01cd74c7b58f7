/*
 * test_graph.c - the Resource Graph engine's pure parts: the --shard K/N
 * split (a stable hash of the lower-cased subscription ID) and the table of
 * KQL queries (each one reads one estate list and pages by id).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "audit/azure/collect_internal.h"

/* FNV-1a 64 of the lower-cased ID modulo N, as docs/performance.md documents it (values computed apart). */
static void shard_of_is_fnv1a_of_the_lower_cased_id(void **state)
{
	(void)state;
	assert_int_equal(collect_shard_of("8b2e4f71-3c9a-4d6e-b1f0-7a5c2e9d4b13", 3), 2);
	assert_int_equal(collect_shard_of("1d7c5a93-e2b4-4f08-9c6d-3b8a1e7f5c24", 3), 0);
	assert_int_equal(collect_shard_of("6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8", 3), 1);
	assert_int_equal(collect_shard_of("f3b8d6e2-9a1c-4c57-b4e0-2d7f6a9c1e35", 7), 6);
	assert_int_equal(collect_shard_of("6A0F9E2C-4B75-4E13-8D29-C5B1F7A3E6D8", 7), 2);
	assert_int_equal(collect_shard_of("6a0f9e2c-4b75-4e13-8d29-c5b1f7a3e6d8", 7), 2);
	assert_int_equal(collect_shard_of("anything", 1), 0);
	assert_int_equal(collect_shard_of(NULL, 5), collect_shard_of("", 5));
}

/* 3000 generated IDs over 7 shards: each shard gets its part, none is empty or twice its share. */
static void shard_of_spreads_subscriptions(void **state)
{
	unsigned count[7] = {0};

	(void)state;
	for (unsigned i = 0; i < 3000; i++) {
		char id[40];

		snprintf(id, sizeof(id), "%08x-0000-4000-8000-%012x", i * 2654435761u, i);
		count[collect_shard_of(id, 7)]++;
	}
	for (int k = 0; k < 7; k++) {
		assert_true(count[k] > 3000 / 7 / 2);
		assert_true(count[k] < 3000 / 7 * 2);
	}
}

static void shard_parse_takes_k_of_n(void **state)
{
	unsigned k = 0, n = 0;

	(void)state;
	assert_true(collect_shard_parse("2/3", &k, &n));
	assert_int_equal(k, 2);
	assert_int_equal(n, 3);
	assert_true(collect_shard_parse("1/1", &k, &n));
	assert_true(collect_shard_parse("1000/1000", &k, &n));
	assert_false(collect_shard_parse("0/3", &k, &n));
	assert_false(collect_shard_parse("4/3", &k, &n));
	assert_false(collect_shard_parse("1/1001", &k, &n));
	assert_false(collect_shard_parse("1/", &k, &n));
	assert_false(collect_shard_parse("/3", &k, &n));
	assert_false(collect_shard_parse("1/3x", &k, &n));
	assert_false(collect_shard_parse("-1/3", &k, &n));
	assert_false(collect_shard_parse("", &k, &n));
	assert_false(collect_shard_parse(NULL, &k, &n));
}

/*
 * Every query reads the Resources table, its resource types first, orders its rows by a unique column
 * (stable paging) and keeps properties whole.
 */
static void query_table_reads_its_types_and_pages_in_a_stable_order(void **state)
{
	size_t n = 0;
	const struct graph_query *q = collect_graph_queries(&n);
	const char *types[] = {"'microsoft.compute/virtualmachines'", "'microsoft.compute/virtualmachines/extensions'",
	                       "'microsoft.keyvault/vaults'", "'microsoft.recoveryservices/vaults'"};

	(void)state;
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++) {
		assert_non_null(q[i].name);
		assert_true(strncmp(q[i].kql, "Resources | where ", 18) == 0);
		assert_non_null(strstr(q[i].kql, types[i]));
		assert_non_null(strstr(q[i].kql, i == 1 ? "'properties', properties" : "| project id, "));
		assert_non_null(strstr(q[i].kql, i == 1 ? "| order by vm asc" : "| order by id asc"));
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(q[i].name, q[j].name);
	}
	/* ADE extensions only, found by publisher and type as the estate loader finds them, never by name */
	assert_non_null(strstr(q[1].kql, "tostring(properties.publisher) =~ 'Microsoft.Azure.Security'"));
	assert_non_null(strstr(q[1].kql, "in~ ('AzureDiskEncryption', 'AzureDiskEncryptionForLinux')"));
	assert_non_null(strstr(q[1].kql, "type =~ 'microsoft.compute/disks' and isnotnull(properties.encryptionSettingsCollection)"));
	/* one row per VM, with the count that tells a cut list (make_list's maxSize) from a whole one */
	assert_non_null(strstr(q[1].kql, "| summarize n = count(), extensions = make_list_if("));
	assert_non_null(strstr(q[1].kql, " by vm"));
	/* unattached disks keep a row each: no list grows with the estate */
	assert_non_null(strstr(q[1].kql, "iff(isempty(managedBy), id, managedBy)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(shard_of_is_fnv1a_of_the_lower_cased_id),
		cmocka_unit_test(shard_of_spreads_subscriptions),
		cmocka_unit_test(shard_parse_takes_k_of_n),
		cmocka_unit_test(query_table_reads_its_types_and_pages_in_a_stable_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
