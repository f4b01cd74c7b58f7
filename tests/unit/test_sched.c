/*
 * test_sched.c - the throttling-aware scheduler (audit/azure/sched.c) and
 * the batch scheduling key: pacing per key from x-ms-ratelimit-remaining-*
 * and 429 Retry-After, keys independent of each other, pacing lifted when
 * the budget recovers.  Timestamps are passed in: no clock, no sleeping.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/azure/batch.h"
#include "audit/azure/sched.h"
#include "audit/util/util.h"

#define REFILL_MS (1000L / SCHED_REFILL_PER_SEC)

static void unknown_keys_and_null_are_never_paced(void **state)
{
	struct sched *s = sched_new();

	(void)state;
	assert_int_equal(sched_ready_at(s, "sub:a", 1000), 1000);
	assert_int_equal(sched_ready_at(s, NULL, 1000), 1000);
	sched_on_start(s, NULL, 1000);
	sched_on_response(s, NULL, 1000, 429, 0, 5000);
	assert_int_equal(sched_ready_at(s, NULL, 1001), 1001);
	sched_free(s);
}

static void plenty_left_means_no_pacing(void **state)
{
	struct sched *s = sched_new();

	(void)state;
	sched_on_start(s, "sub:a", 1000);
	sched_on_response(s, "sub:a", 1030, 200, 249, -1);
	assert_int_equal(sched_interval(s, "sub:a"), 0);
	sched_on_start(s, "sub:a", 1030);
	assert_int_equal(sched_ready_at(s, "sub:a", 1031), 1031);
	sched_free(s);
}

static void a_shrinking_budget_paces_before_arm_says_429(void **state)
{
	struct sched *s = sched_new();

	(void)state;
	sched_on_start(s, "sub:a", 1000);
	sched_on_response(s, "sub:a", 1030, 200, SCHED_HIGH_WATER - 1, -1);
	assert_int_equal(sched_interval(s, "sub:a"), REFILL_MS / 2);
	assert_int_equal(sched_ready_at(s, "sub:a", 1005), 1000 + REFILL_MS / 2);
	/* nearly empty: at the refill rate, so the bucket stops draining */
	sched_on_response(s, "sub:a", 1040, 200, SCHED_LOW_WATER - 1, -1);
	assert_int_equal(sched_interval(s, "sub:a"), REFILL_MS);
	sched_on_start(s, "sub:a", 1040);
	assert_int_equal(sched_ready_at(s, "sub:a", 1041), 1040 + REFILL_MS);
	/* empty: also wait for one token */
	sched_on_response(s, "sub:a", 1050, 200, 0, -1);
	assert_true(sched_blocked_until(s, "sub:a") >= 1050 + REFILL_MS);
	/* recovered: the pacing is lifted */
	sched_on_response(s, "sub:a", 5000, 200, 240, -1);
	assert_int_equal(sched_interval(s, "sub:a"), 0);
	assert_int_equal(sched_ready_at(s, "sub:a", 5000), 5000);
	sched_free(s);
}

static void a_429_blocks_its_key_for_the_retry_wait_only(void **state)
{
	struct sched *s = sched_new();

	(void)state;
	sched_on_start(s, "sub:storm", 1000);
	sched_on_start(s, "sub:calm", 1000);
	sched_on_response(s, "sub:storm", 1020, 429, 0, 2000);
	assert_int_equal(sched_ready_at(s, "sub:storm", 1021), 3020);
	assert_int_equal(sched_blocked_until(s, "sub:storm"), 3020);
	/* the other subscription goes on at once */
	sched_on_response(s, "sub:calm", 1020, 200, 248, -1);
	assert_int_equal(sched_ready_at(s, "sub:calm", 1021), 1021);
	/* a shorter wait later does not shorten the block */
	sched_on_response(s, "sub:storm", 1500, 429, 0, 1000);
	assert_int_equal(sched_blocked_until(s, "sub:storm"), 3020);
	/* after it: paced at the refill rate until ARM says the budget is back */
	sched_on_start(s, "sub:storm", 3020);
	assert_int_equal(sched_ready_at(s, "sub:storm", 3021), 3020 + REFILL_MS);
	sched_free(s);
}

static void a_429_without_a_wait_still_backs_off_one_token(void **state)
{
	struct sched *s = sched_new();

	(void)state;
	sched_on_response(s, "k", 100, 429, -1, -1);
	assert_int_equal(sched_blocked_until(s, "k"), 100 + REFILL_MS);
	sched_free(s);
}

static void many_keys_are_kept_apart(void **state)
{
	struct sched *s = sched_new();
	char key[32];

	(void)state;
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "sub:%d", i);
		sched_on_response(s, key, 0, i % 2 ? 429 : 200, i % 2 ? 0 : 200, i % 2 ? 1000 + i : -1);
	}
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "sub:%d", i);
		assert_int_equal(sched_ready_at(s, key, 10), i % 2 ? 1000 + i : 10);
	}
	sched_free(s);
}

static void a_quota_holds_starts_to_what_is_left(void **state)
{
	struct sched *s = sched_new();

	(void)state;
	/* Metered, nothing said yet: one at a time. */
	sched_expect_quota(s, "query:t");
	assert_int_equal(sched_ready_at(s, "query:t", 100), 100);
	sched_on_start(s, "query:t", 100);
	assert_true(sched_ready_at(s, "query:t", 101) > 101);
	/* 3 left after it: three more at once, not a fourth */
	sched_on_response(s, "query:t", 130, 200, -1, -1);
	sched_on_quota(s, "query:t", 130, 3, 5000);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sched_ready_at(s, "query:t", 131), 131);
		sched_on_start(s, "query:t", 131);
	}
	assert_int_equal(sched_ready_at(s, "query:t", 132), 5130);
	/* answers cross: the later one (0 left) arrives first, the stale one (2 left) must not reopen it */
	sched_on_response(s, "query:t", 160, 200, -1, -1);
	sched_on_quota(s, "query:t", 160, 0, 4900);
	sched_on_response(s, "query:t", 161, 200, -1, -1);
	sched_on_quota(s, "query:t", 161, 2, 4900);
	assert_int_equal(sched_ready_at(s, "query:t", 170), 161 + 4900);
	/* refilled: as many as the quota held (the most ever left, plus one), then held again */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(sched_ready_at(s, "query:t", 6000), 6000);
		sched_on_start(s, "query:t", 6000);
	}
	assert_true(sched_ready_at(s, "query:t", 6000) > 6000);
	/* another key is not held by it */
	assert_int_equal(sched_ready_at(s, "query:u", 170), 170);
	sched_free(s);
}

static void a_quota_never_said_lifts_the_metering(void **state)
{
	struct sched *s = sched_new();

	(void)state;
	sched_expect_quota(s, "query:t");
	sched_on_start(s, "query:t", 100);
	sched_on_response(s, "query:t", 130, 200, -1, -1);
	sched_on_quota(s, "query:t", 130, -1, -1);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(sched_ready_at(s, "query:t", 131), 131);
		sched_on_start(s, "query:t", 131);
	}
	sched_free(s);
}

static void a_failed_probe_goes_again_before_the_others(void **state)
{
	struct sched *s = sched_new();

	(void)state;
	sched_expect_quota(s, "query:t");
	sched_on_start(s, "query:t", 100);
	/* a 503 that will be retried in 500 ms: nothing of the key starts before the retry */
	sched_on_response(s, "query:t", 130, 503, -1, 500);
	sched_on_quota(s, "query:t", 130, -1, -1);
	assert_int_equal(sched_ready_at(s, "query:t", 131), 630);
	sched_on_start(s, "query:t", 630);
	assert_true(sched_ready_at(s, "query:t", 631) > 631);
	/* its last attempt failed too: the next request is the probe, alone */
	sched_on_response(s, "query:t", 660, 503, -1, -1);
	sched_on_quota(s, "query:t", 660, -1, -1);
	assert_int_equal(sched_ready_at(s, "query:t", 661), 661);
	sched_on_start(s, "query:t", 661);
	assert_true(sched_ready_at(s, "query:t", 662) > 662);
	sched_free(s);
}

static void a_spent_quota_without_a_refill_time_waits_for_answers(void **state)
{
	struct sched *s = sched_new();

	(void)state;
	sched_on_start(s, "q", 100);
	sched_on_start(s, "q", 100);
	sched_on_response(s, "q", 130, 200, -1, -1);
	sched_on_quota(s, "q", 130, 0, -1);
	/* one still in flight: look again soon, its answer may say more */
	assert_int_equal(sched_ready_at(s, "q", 131), 131 + SCHED_QUOTA_POLL_MS);
	sched_on_response(s, "q", 140, 200, -1, -1);
	/* nothing in flight and no refill time: never stuck */
	assert_int_equal(sched_ready_at(s, "q", 141), 141);
	sched_free(s);
}

/* ---- the queues ---- */

struct req {
	struct sched_item q;   /* first */
	int id, lane;
	const char *key;
};

static struct req *next_req(struct sched *s, long now)
{
	struct sched_item *it = sched_next(s, now);

	return (struct req *)(void *)it;
}

static const char *const KEYS[] = {"sub:a", "sub:b", "sub:c", "query:t", "graph.example", NULL, "sub:d"};

/*
 * Nothing paced: requests start lane by lane (queries, list pages, single
 * reads), in the order queued within a lane, whatever their keys: the order
 * of the one list http.c kept before, checked against that list as a model
 * while requests are queued between starts, as a collection does.
 */
/* The next start is model[0] (taken off the model); it is answered with plenty left: no pacing. */
static void start_expected(struct sched *s, int *model, int *nmodel)
{
	struct req *x = next_req(s, 1000);

	assert_non_null(x);
	assert_int_equal(x->id, model[0]);
	memmove(&model[0], &model[1], (size_t)(*nmodel - 1) * sizeof(int));
	(*nmodel)--;
	sched_on_start(s, x->key, 1000);
	sched_on_response(s, x->key, 1000, 200, 240, -1);
}

static void with_nothing_paced_requests_start_lane_by_lane_in_order(void **state)
{
	struct sched *s = sched_new();
	enum { N = 600 };
	struct req *r = kv_calloc(N, sizeof(*r));
	int model[N], nmodel = 0, queued = 0, started = 0;
	unsigned seed = 12345;

	(void)state;
	while (started < N) {
		seed = seed * 1103515245u + 12345u;
		/* two queued for each start, on average, until all are queued */
		if (queued < N && (seed >> 16) % 3 != 0) {
			struct req *x = &r[queued];

			x->id = queued;
			x->lane = SCHED_FRONT + (int)((seed >> 8) % 3);
			x->key = KEYS[(seed >> 4) % (sizeof(KEYS) / sizeof(KEYS[0]))];
			sched_queue(s, x->key, &x->q, (enum sched_lane)x->lane);
			/* the model: one list, kept sorted by lane, appended within a lane */
			{
				int at = nmodel;

				while (at > 0 && r[model[at - 1]].lane > x->lane)
					at--;
				memmove(&model[at + 1], &model[at], (size_t)(nmodel - at) * sizeof(int));
				model[at] = x->id;
				nmodel++;
			}
			queued++;
			assert_int_equal(sched_queued(s), (size_t)nmodel);
			continue;
		}
		if (nmodel == 0) {
			assert_null(sched_next(s, 1000));
			continue;
		}
		start_expected(s, model, &nmodel);
		started++;
	}
	assert_null(sched_next(s, 1000));
	assert_int_equal(sched_wake(s, 1000), -1);
	assert_int_equal(sched_queued(s), 0);
	free(r);
	sched_free(s);
}

/*
 * Priorities within a lane (sched_queue_prio: the longest chain first): the
 * same random mix, queued with priorities 0-7, starts as one list kept
 * sorted by lane, then priority (highest first), then the order queued.
 */
static void within_a_lane_the_highest_priority_starts_first(void **state)
{
	struct sched *s = sched_new();
	enum { N = 600 };
	struct req *r = kv_calloc(N, sizeof(*r));
	int prio[N], model[N], nmodel = 0, queued = 0, started = 0;
	unsigned seed = 4242;

	(void)state;
	while (started < N) {
		seed = seed * 1103515245u + 12345u;
		if (queued < N && (seed >> 16) % 3 != 0) {
			struct req *x = &r[queued];
			int at = nmodel;

			x->id = queued;
			x->lane = SCHED_FRONT + (int)((seed >> 8) % 3);
			x->key = KEYS[(seed >> 4) % (sizeof(KEYS) / sizeof(KEYS[0]))];
			prio[queued] = (int)((seed >> 20) % 8);
			sched_queue_prio(s, x->key, &x->q, (enum sched_lane)x->lane, prio[queued]);
			while (at > 0 && (r[model[at - 1]].lane > x->lane ||
			                  (r[model[at - 1]].lane == x->lane && prio[model[at - 1]] < prio[queued])))
				at--;
			memmove(&model[at + 1], &model[at], (size_t)(nmodel - at) * sizeof(int));
			model[at] = x->id;
			nmodel++;
			queued++;
			continue;
		}
		if (nmodel == 0)
			continue;
		start_expected(s, model, &nmodel);
		started++;
	}
	/* sched_queue is priority 0: behind a higher one queued before it, ahead of none. */
	sched_queue_prio(s, "sub:a", &r[0].q, SCHED_FIRST, 3);
	sched_queue(s, "sub:b", &r[1].q, SCHED_FIRST);
	sched_queue_prio(s, "sub:a", &r[2].q, SCHED_FIRST, SCHED_PRIO_MAX + 9);   /* clamped */
	sched_queue_prio(s, "sub:b", &r[3].q, SCHED_LAST, 9);
	assert_ptr_equal(sched_next(s, 1000), &r[2].q);
	assert_ptr_equal(sched_next(s, 1000), &r[0].q);
	assert_ptr_equal(sched_next(s, 1000), &r[1].q);
	assert_ptr_equal(sched_next(s, 1000), &r[3].q);
	assert_null(sched_next(s, 1000));
	free(r);
	sched_free(s);
}

/*
 * One subscription throttled with thousands of reads queued ahead of the
 * others: they wait in its queue, the others start in their order, and once
 * the 429's wait is over the throttled one's go in their order, paced.
 */
static void a_throttled_key_waits_in_its_queue_and_the_others_go_on(void **state)
{
	struct sched *s = sched_new();
	enum { STORM = 5000, CALM = 50, EACH = 4 };
	struct req *r = kv_calloc(STORM + CALM * EACH, sizeof(*r));
	char (*calm)[16] = kv_calloc(CALM, sizeof(*calm));
	struct req *x;
	int n = 0;

	(void)state;
	for (int i = 0; i < STORM; i++) {
		r[n] = (struct req){.id = n, .lane = SCHED_LAST, .key = "sub:storm"};
		sched_queue(s, r[n].key, &r[n].q, SCHED_LAST);
		n++;
	}
	for (int i = 0; i < CALM * EACH; i++) {
		if (i < CALM)
			snprintf(calm[i], sizeof(calm[i]), "sub:calm%d", i);
		r[n] = (struct req){.id = n, .lane = SCHED_LAST, .key = calm[i % CALM]};
		sched_queue(s, r[n].key, &r[n].q, SCHED_LAST);
		n++;
	}
	/* the first of the storm starts and is answered 429, Retry-After 5 s */
	x = next_req(s, 100);
	assert_int_equal(x->id, 0);
	sched_on_start(s, "sub:storm", 100);
	sched_on_response(s, "sub:storm", 120, 429, 0, 5000);
	sched_retry(s, &x->q, 5120);
	/* every other subscription's reads, in the order queued, none of the storm's */
	for (int i = 0; i < CALM * EACH; i++) {
		x = next_req(s, 130);
		assert_non_null(x);
		assert_int_equal(x->id, STORM + i);
		sched_on_start(s, x->key, 130);
	}
	assert_null(next_req(s, 130));
	assert_int_equal(sched_wake(s, 130), 5120);
	assert_null(next_req(s, 5119));
	assert_int_equal(sched_queued(s), STORM);
	/* its time: the retry first, then the rest in order, at the refill rate */
	x = next_req(s, 5120);
	assert_int_equal(x->id, 0);
	sched_on_start(s, "sub:storm", 5120);
	assert_null(next_req(s, 5120));
	assert_int_equal(sched_wake(s, 5121), 5120 + REFILL_MS);
	for (int i = 1; i < 10; i++) {
		long now = 5120 + i * REFILL_MS;

		x = next_req(s, now);
		assert_non_null(x);
		assert_int_equal(x->id, i);
		sched_on_start(s, "sub:storm", now);
		assert_null(next_req(s, now));
	}
	/* ARM says the budget is back: the rest at once, in order */
	sched_on_response(s, "sub:storm", 5500, 200, 240, -1);
	for (int i = 10; i < STORM; i++) {
		x = next_req(s, 5500);
		assert_non_null(x);
		assert_int_equal(x->id, i);
		sched_on_start(s, "sub:storm", 5500);
	}
	assert_null(next_req(s, 5500));
	assert_int_equal(sched_queued(s), 0);
	free(calm);
	free(r);
	sched_free(s);
}

/* Retries come back ahead of everything once their time comes, the latest first; the rest go on meanwhile. */
static void retries_go_first_when_their_time_comes(void **state)
{
	struct sched *s = sched_new();
	struct req r[5] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}};

	(void)state;
	sched_queue(s, "sub:a", &r[0].q, SCHED_LAST);
	sched_queue(s, "sub:a", &r[1].q, SCHED_LAST);
	sched_queue(s, "sub:b", &r[2].q, SCHED_FIRST);
	assert_int_equal(next_req(s, 0)->id, 2);
	assert_int_equal(next_req(s, 0)->id, 0);
	/* both failed (a 500, not a 429: the key is not blocked); 0 after 1 */
	sched_retry(s, &r[2].q, 300);
	sched_retry(s, &r[0].q, 300);
	assert_int_equal(sched_queued(s), 3);
	sched_queue(s, "sub:a", &r[3].q, SCHED_FRONT);
	/* the key's other requests do not wait for its retry */
	assert_int_equal(next_req(s, 100)->id, 3);
	assert_int_equal(next_req(s, 100)->id, 1);
	assert_null(next_req(s, 100));
	assert_int_equal(sched_wake(s, 100), 300);
	sched_queue(s, "sub:b", &r[4].q, SCHED_FRONT);
	assert_int_equal(next_req(s, 300)->id, 0);
	assert_int_equal(next_req(s, 300)->id, 2);
	assert_int_equal(next_req(s, 300)->id, 4);
	assert_null(next_req(s, 300));
	sched_free(s);
}

/* A key waiting for an answer comes back at that answer, not at its next look. */
static void an_answer_brings_a_waiting_key_back_at_once(void **state)
{
	struct sched *s = sched_new();
	struct req r[3] = {{.id = 0}, {.id = 1}, {.id = 2}};

	(void)state;
	sched_expect_quota(s, "query:t");
	for (int i = 0; i < 3; i++)
		sched_queue(s, "query:t", &r[i].q, SCHED_FRONT);
	assert_int_equal(next_req(s, 100)->id, 0);
	sched_on_start(s, "query:t", 100);
	/* the probe is in flight: nothing more until its answer */
	assert_null(next_req(s, 100));
	assert_int_equal(sched_wake(s, 100), 100 + SCHED_QUOTA_POLL_MS);
	sched_on_response(s, "query:t", 120, 200, -1, -1);
	sched_on_quota(s, "query:t", 120, 10, 5000);
	assert_int_equal(next_req(s, 120)->id, 1);
	sched_on_start(s, "query:t", 120);
	assert_int_equal(next_req(s, 120)->id, 2);
	assert_int_equal(sched_queued(s), 0);
	sched_free(s);
}

/* What is still queued at the end can be taken back, paced or not, to be freed. */
static void drain_returns_everything_queued(void **state)
{
	struct sched *s = sched_new();
	struct req r[4];
	int seen = 0;
	struct sched_item *it;

	(void)state;
	for (int i = 0; i < 4; i++)
		sched_queue(s, i < 2 ? "sub:storm" : NULL, &r[i].q, SCHED_LAST);
	sched_on_response(s, "sub:storm", 0, 429, 0, 60000);
	assert_int_equal(next_req(s, 1) - r, 2);
	sched_retry(s, &r[2].q, 1000);
	while ((it = sched_drain(s)) != NULL)
		seen |= 1 << (int)((struct req *)(void *)it - r);
	assert_int_equal(seen, 0xf);
	assert_int_equal(sched_queued(s), 0);
	sched_free(s);
}

static void batch_keys_are_subscriptions_or_hosts(void **state)
{
	char k[96];

	(void)state;
	az_batch_key("https://management.azure.com/subscriptions/ABC-1/providers/Microsoft.Compute/disks?api-version=1", k,
	             sizeof(k));
	assert_string_equal(k, "sub:abc-1");
	az_batch_key("https://management.azure.com/subscriptions/abc-1?api-version=1", k, sizeof(k));
	assert_string_equal(k, "sub:abc-1");
	/* an ARM endpoint with a path of its own (the emulator's /arm) */
	az_batch_key("https://127.0.0.1:8443/arm/subscriptions/s2/resourceGroups/rg?x=1", k, sizeof(k));
	assert_string_equal(k, "sub:s2");
	az_batch_key("https://management.azure.com/tenants?api-version=1", k, sizeof(k));
	assert_string_equal(k, "management.azure.com");
	az_batch_key("https://graph.microsoft.com/v1.0/me", k, sizeof(k));
	assert_string_equal(k, "graph.microsoft.com");
	/* a query that mentions subscriptions is not a path */
	az_batch_key("https://graph.microsoft.com/v1.0/x?f=/subscriptions/s3/", k, sizeof(k));
	assert_string_equal(k, "graph.microsoft.com");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(unknown_keys_and_null_are_never_paced),
		cmocka_unit_test(plenty_left_means_no_pacing),
		cmocka_unit_test(a_shrinking_budget_paces_before_arm_says_429),
		cmocka_unit_test(a_429_blocks_its_key_for_the_retry_wait_only),
		cmocka_unit_test(a_429_without_a_wait_still_backs_off_one_token),
		cmocka_unit_test(many_keys_are_kept_apart),
		cmocka_unit_test(a_quota_holds_starts_to_what_is_left),
		cmocka_unit_test(a_quota_never_said_lifts_the_metering),
		cmocka_unit_test(a_failed_probe_goes_again_before_the_others),
		cmocka_unit_test(a_spent_quota_without_a_refill_time_waits_for_answers),
		cmocka_unit_test(with_nothing_paced_requests_start_lane_by_lane_in_order),
		cmocka_unit_test(within_a_lane_the_highest_priority_starts_first),
		cmocka_unit_test(a_throttled_key_waits_in_its_queue_and_the_others_go_on),
		cmocka_unit_test(retries_go_first_when_their_time_comes),
		cmocka_unit_test(an_answer_brings_a_waiting_key_back_at_once),
		cmocka_unit_test(drain_returns_everything_queued),
		cmocka_unit_test(batch_keys_are_subscriptions_or_hosts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
