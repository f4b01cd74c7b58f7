/*
 * sched.h - throttling-aware pacing of concurrent requests, per key (an ARM
 * subscription, a tenant, a host).  ARM meters reads per subscription and
 * principal with a token bucket (250 reads, refilled at 25/s) and says how
 * many are left in x-ms-ratelimit-remaining-*-reads; a 429 carries
 * Retry-After.  The scheduler turns those into the earliest time the next
 * request of the same key may start, so a scan slows down before ARM says
 * 429, and a 429 storm on one subscription slows that subscription only.
 * Pure logic on millisecond timestamps the caller passes in (unit-tested).
 */
#ifndef KVAUDIT_SCHED_H
#define KVAUDIT_SCHED_H

#include <stdbool.h>
#include <stddef.h>

/* Below this many reads left, requests of a key are paced; below SCHED_LOW_WATER, at the refill rate. */
#define SCHED_HIGH_WATER 100
#define SCHED_LOW_WATER 25
/* ARM's refill rate for reads (per subscription and principal), tokens per second. */
#define SCHED_REFILL_PER_SEC 25
/* A spent quota whose refill time was not said: look again this often while answers are due. */
#define SCHED_QUOTA_POLL_MS 50

struct sched;

struct sched *sched_new(void);
void sched_free(struct sched *s);   /* requests still queued are the caller's (sched_drain) */

/*
 * The requests waiting to start, each key's in its own queues, one FIFO per
 * lane.  sched_next hands out, of the keys that may start now, the request
 * that comes first: lane by lane (retries, then Resource Graph queries, then
 * list pages, then single reads), within a lane by priority (sched_queue_prio),
 * then in the order queued (the latest retry first).  With nothing paced that is the order of one list
 * kept lane by lane; a paced key's requests wait in its queues without being
 * looked at, so the cost of a start does not grow with what a throttled
 * subscription holds (O(log keys)).  The caller embeds a struct sched_item in
 * each request; its fields are the scheduler's.
 */
enum sched_lane {
	SCHED_RETRY,   /* set by sched_retry */
	SCHED_FRONT,   /* Resource Graph queries: each page waits for the one before, the engine for the query */
	SCHED_FIRST,   /* list pages: a list's chain, and what waits on it */
	SCHED_LAST,    /* single reads */
	SCHED_LANES
};

struct sched_key;

struct sched_item {
	struct sched_item *next;
	struct sched_key *k;
	unsigned long long order;   /* lane, then priority, then when queued */
	long not_before;            /* a retry: not before this (ms) */
};

/* Queues it under key (NULL: never paced) in lane (not SCHED_RETRY). */
void sched_queue(struct sched *s, const char *key, struct sched_item *it, enum sched_lane lane);
/*
 * Like sched_queue, with a priority within the lane (0 .. SCHED_PRIO_MAX;
 * sched_queue's is 0): a higher one starts first, equal ones in the order
 * queued.  The caller gives the length of the chain of requests a request
 * leads to (its list's pages still to come and what waits on them), so the
 * longest chain goes first, the classic rule for a pool of workers: the
 * chains end together instead of the longest one starting last.
 */
#define SCHED_PRIO_MAX 255
void sched_queue_prio(struct sched *s, const char *key, struct sched_item *it, enum sched_lane lane, int prio);
/* Queues a request again after a failed attempt, under its key, ahead of all others, not before not_before. */
void sched_retry(struct sched *s, struct sched_item *it, long not_before);
/* The next request that may start at now, taken off its queue; NULL: none may yet. */
struct sched_item *sched_next(struct sched *s, long now);
/* When sched_next may next return one (now when it may at once); -1 when nothing is queued. */
long sched_wake(const struct sched *s, long now);
/* How many requests are queued (retries waiting for their time included). */
size_t sched_queued(const struct sched *s);
/* Any queued request, taken off its queue regardless of pacing (to free them); NULL when none is left. */
struct sched_item *sched_drain(struct sched *s);

/* The earliest time (ms) a request of key may start; <= now means at once.  NULL key: never paced. */
long sched_ready_at(struct sched *s, const char *key, long now);

/* A request of key starts at now. */
void sched_on_start(struct sched *s, const char *key, long now);

/*
 * A response of key arrived at now: status (0 for a transport error), the
 * smallest x-ms-ratelimit-remaining-* value (-1 when absent) and, when the
 * request will be retried, the wait before that retry (ms, else -1).  A 429
 * blocks the key until now + wait and paces it at the refill rate; few reads
 * left pace it; plenty left (or no header after a success) lift the pacing.
 */
void sched_on_response(struct sched *s, const char *key, long now, long status, int remaining, long wait_ms);

/*
 * A quota that counts requests (Resource Graph's x-ms-user-quota-remaining,
 * e.g. 15 queries per 5 s per user): a response of key at now said remaining
 * requests are left until the quota refills, resets_ms later (-1: not said).
 * Requests of the key still in flight may not have been counted yet, so at
 * most remaining minus those start before the next response says more; when
 * none may start, the key waits for the refill, then starts as many as the
 * quota held (the largest remaining seen, plus one).  A key never told of a
 * quota is never held back by one.
 */
void sched_on_quota(struct sched *s, const char *key, long now, int remaining, long resets_ms);

/*
 * Requests of key are metered by such a quota: until an answer says how much
 * of it is left, one at a time, a retry of that one before any other (a
 * success that says nothing lifts this).  The fewest left any answer said
 * since the quota refilled counts: answers that cross on the way are stale.
 */
void sched_expect_quota(struct sched *s, const char *key);

/* For tests and -v: the key's current spacing between starts (ms) and the time it is blocked until. */
long sched_interval(struct sched *s, const char *key);
long sched_blocked_until(struct sched *s, const char *key);

#endif
