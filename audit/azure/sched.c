/*
 * sched.c - see sched.h.  Keys (subscriptions, principals, hosts) live in a
 * hash table; each holds its own queued requests, one FIFO per lane.  Two
 * binary heaps of keys drive sched_next: "ready" (keys with requests queued,
 * by the order of their first request) and "waiting" (keys that may not
 * start yet, by the time to look again).  A key that is found not ready at
 * the top of the first moves to the second until its time comes or an
 * answer of that key changes its state, so a loop touches only keys that can
 * start now, however many requests a throttled key holds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/azure/sched.h"
#include "audit/util/util.h"

enum where { NOWHERE, READY, WAITING };

struct sched_key {
	char *key;            /* NULL: requests without a key (never paced) */
	long blocked_until;   /* no start before this (429 and its Retry-After) */
	long interval;        /* spacing between starts, 0 = none */
	long last_start;
	int inflight;         /* started, not yet answered */
	int budget;           /* a quota's starts left before the next answer says more; -1: no quota */
	bool probing;         /* metered by a quota nothing has said yet: one request at a time */
	long last_status;     /* of the last answer */
	int quota;            /* the quota's size as far as seen (largest remaining + 1) */
	int low;              /* the fewest left any answer said since the quota last refilled; -1: none */
	long quota_reset_at;  /* when the quota refills; -1: not said */
	/* Its queued requests, and where the key is among the heaps. */
	struct sched_item *head[SCHED_LANES], *tail[SCHED_LANES];
	size_t queued;
	enum where where;
	size_t pos;           /* index in that heap */
	long wake;            /* WAITING: when to look again */
};

struct heap {
	struct sched_key **v;
	size_t n, cap;
	bool by_wake;         /* the waiting heap; else by the first request's order */
};

struct sched {
	struct sched_key **slot;   /* open addressing, linear probing; nslot a power of two */
	size_t nslot, n;
	struct sched_key none;     /* the requests without a key */
	struct heap ready, waiting;
	struct sched_item *delayed;   /* retries before their time, soonest first */
	size_t queued;
	unsigned long long seq, retry_seq;
};

/* Lanes in the high bits: a lane's requests all go before the next lane's; then the priority, highest first. */
#define LANE_SHIFT 56
#define PRIO_SHIFT 48
#define SEQ_MASK ((1ULL << PRIO_SHIFT) - 1)

static void key_init(struct sched_key *k, const char *key)
{
	memset(k, 0, sizeof(*k));
	k->key = key ? kv_strdup(key) : NULL;
	k->last_start = -1;
	k->budget = -1;
	k->quota_reset_at = -1;
	k->low = -1;
}

struct sched *sched_new(void)
{
	struct sched *s = kv_calloc(1, sizeof(struct sched));

	key_init(&s->none, NULL);
	s->waiting.by_wake = true;
	return s;
}

void sched_free(struct sched *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nslot; i++) {
		if (s->slot[i]) {
			free(s->slot[i]->key);
			free(s->slot[i]);
		}
	}
	free(s->slot);
	free(s->ready.v);
	free(s->waiting.v);
	free(s);
}

/* FNV-1a */
static size_t hash(const char *key)
{
	uint64_t h = 1469598103934665603ULL;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)h;
}

static void grow(struct sched *s)
{
	struct sched_key **old = s->slot;
	size_t nold = s->nslot;

	s->nslot = nold ? nold * 2 : 64;
	s->slot = kv_calloc(s->nslot, sizeof(*s->slot));
	for (size_t i = 0; i < nold; i++) {
		if (old[i]) {
			size_t j = hash(old[i]->key) & (s->nslot - 1);

			while (s->slot[j])
				j = (j + 1) & (s->nslot - 1);
			s->slot[j] = old[i];
		}
	}
	free(old);
}

static struct sched_key *find(struct sched *s, const char *key, bool create)
{
	size_t j;

	if (!s || !key)
		return NULL;
	if (s->nslot > 0) {
		for (j = hash(key) & (s->nslot - 1); s->slot[j]; j = (j + 1) & (s->nslot - 1))
			if (strcmp(s->slot[j]->key, key) == 0)
				return s->slot[j];
	}
	if (!create)
		return NULL;
	if ((s->n + 1) * 2 > s->nslot)
		grow(s);
	for (j = hash(key) & (s->nslot - 1); s->slot[j]; j = (j + 1) & (s->nslot - 1))
		;
	s->slot[j] = kv_calloc(1, sizeof(struct sched_key));
	key_init(s->slot[j], key);
	s->n++;
	return s->slot[j];
}

static long key_ready_at(const struct sched_key *k, long now)
{
	long t = now;

	if (!k->key)
		return now;
	if (k->blocked_until > t)
		t = k->blocked_until;
	if (k->interval > 0 && k->last_start >= 0 && k->last_start + k->interval > t)
		t = k->last_start + k->interval;
	/* A quota not said yet: the answer of the one in flight first. */
	if (k->probing && k->inflight > 0 && now + SCHED_QUOTA_POLL_MS > t)
		t = now + SCHED_QUOTA_POLL_MS;
	/* A spent quota: its refill, or (refill not said) the next answer, which says more. */
	if (k->budget == 0) {
		if (k->quota_reset_at > t)
			t = k->quota_reset_at;
		else if (k->quota_reset_at < 0 && k->inflight > 0)
			t = now + SCHED_QUOTA_POLL_MS;
	}
	return t;
}

long sched_ready_at(struct sched *s, const char *key, long now)
{
	const struct sched_key *k = find(s, key, false);

	return k ? key_ready_at(k, now) : now;
}

/* ---- the heaps ---- */

static struct sched_item *first_of(const struct sched_key *k)
{
	for (int l = 0; l < SCHED_LANES; l++)
		if (k->head[l])
			return k->head[l];
	return NULL;
}

static bool before(const struct heap *h, const struct sched_key *a, const struct sched_key *b)
{
	if (h->by_wake && a->wake != b->wake)
		return a->wake < b->wake;
	return first_of(a)->order < first_of(b)->order;
}

static void heap_set(struct heap *h, size_t i, struct sched_key *k)
{
	h->v[i] = k;
	k->pos = i;
}

static void sift_up(struct heap *h, size_t i)
{
	struct sched_key *k = h->v[i];

	while (i > 0 && before(h, k, h->v[(i - 1) / 2])) {
		heap_set(h, i, h->v[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(h, i, k);
}

static void sift_down(struct heap *h, size_t i)
{
	struct sched_key *k = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && before(h, h->v[c + 1], h->v[c]))
			c++;
		if (!before(h, h->v[c], k))
			break;
		heap_set(h, i, h->v[c]);
		i = c;
	}
	heap_set(h, i, k);
}

static void heap_push(struct heap *h, struct sched_key *k, enum where w)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 16;
		h->v = kv_realloc(h->v, h->cap * sizeof(*h->v));
	}
	k->where = w;
	heap_set(h, h->n++, k);
	sift_up(h, h->n - 1);
}

static void heap_remove(struct heap *h, struct sched_key *k)
{
	size_t i = k->pos;
	struct sched_key *last;

	k->where = NOWHERE;
	if (--h->n == i)
		return;
	/* The last one fills the hole, then finds its place, up or down. */
	last = h->v[h->n];
	heap_set(h, i, last);
	sift_down(h, i);
	sift_up(h, last->pos);
}

/* Something about k changed (a request queued, an answer came): it goes among the ready keys to be looked at. */
static void touch(struct sched *s, struct sched_key *k)
{
	if (k->where == WAITING)
		heap_remove(&s->waiting, k);
	if (k->where == READY)
		sift_up(&s->ready, k->pos);   /* its first request may be an earlier one now */
	else if (k->queued > 0)
		heap_push(&s->ready, k, READY);
}

/* ---- queues ---- */

static void enqueue(struct sched *s, struct sched_key *k, struct sched_item *it, int lane)
{
	struct sched_item **pp = &k->head[lane];

	/*
	 * In order within the lane: appended, unless it goes before the last (a
	 * retry, which comes back in any order, or a higher priority); the walk
	 * then passes only those of its priority or a higher one.
	 */
	if (k->tail[lane] && k->tail[lane]->order < it->order)
		pp = &k->tail[lane]->next;
	else
		while (*pp && (*pp)->order < it->order)
			pp = &(*pp)->next;
	it->next = *pp;
	*pp = it;
	if (!it->next)
		k->tail[lane] = it;
	k->queued++;
	touch(s, k);
}

void sched_queue_prio(struct sched *s, const char *key, struct sched_item *it, enum sched_lane lane, int prio)
{
	int clamped = prio < 0 ? 0 : prio > SCHED_PRIO_MAX ? SCHED_PRIO_MAX : prio;
	unsigned long long p = (unsigned long long)(SCHED_PRIO_MAX - clamped);   /* the highest first */

	it->k = key ? find(s, key, true) : &s->none;
	it->order = ((unsigned long long)lane << LANE_SHIFT) | (p << PRIO_SHIFT) | (++s->seq & SEQ_MASK);
	it->not_before = 0;
	s->queued++;
	enqueue(s, it->k, it, lane);
}

void sched_queue(struct sched *s, const char *key, struct sched_item *it, enum sched_lane lane)
{
	sched_queue_prio(s, key, it, lane, 0);
}

void sched_retry(struct sched *s, struct sched_item *it, long not_before)
{
	struct sched_item **pp = &s->delayed;

	/* Ahead of every other request, the latest retry first (it was asked for first). */
	it->order = (SEQ_MASK - ++s->retry_seq) & SEQ_MASK;
	it->not_before = not_before;
	while (*pp && (*pp)->not_before <= not_before)
		pp = &(*pp)->next;
	it->next = *pp;
	*pp = it;
	s->queued++;
}

/* Takes the first request of k's queues. */
static struct sched_item *dequeue(struct sched *s, struct sched_key *k)
{
	for (int l = 0; l < SCHED_LANES; l++) {
		struct sched_item *it = k->head[l];

		if (!it)
			continue;
		k->head[l] = it->next;
		if (!k->head[l])
			k->tail[l] = NULL;
		it->next = NULL;
		k->queued--;
		s->queued--;
		return it;
	}
	return NULL;
}

struct sched_item *sched_next(struct sched *s, long now)
{
	/* Retries whose time has come, and keys whose time to look again has. */
	while (s->delayed && s->delayed->not_before <= now) {
		struct sched_item *it = s->delayed;

		s->delayed = it->next;
		enqueue(s, it->k, it, SCHED_RETRY);   /* still queued: s->queued stays */
	}
	while (s->waiting.n > 0 && s->waiting.v[0]->wake <= now) {
		struct sched_key *k = s->waiting.v[0];

		heap_remove(&s->waiting, k);
		heap_push(&s->ready, k, READY);
	}
	while (s->ready.n > 0) {
		struct sched_key *k = s->ready.v[0];
		long t = key_ready_at(k, now);
		struct sched_item *it;

		if (t > now) {
			heap_remove(&s->ready, k);
			k->wake = t;
			heap_push(&s->waiting, k, WAITING);
			continue;
		}
		it = dequeue(s, k);
		if (k->queued > 0)
			sift_down(&s->ready, 0);
		else
			heap_remove(&s->ready, k);
		return it;
	}
	return NULL;
}

long sched_wake(const struct sched *s, long now)
{
	long t = -1;

	if (s->ready.n > 0)
		return now;
	if (s->waiting.n > 0)
		t = s->waiting.v[0]->wake;
	if (s->delayed && (t < 0 || s->delayed->not_before < t))
		t = s->delayed->not_before;
	return t >= 0 && t < now ? now : t;
}

size_t sched_queued(const struct sched *s)
{
	return s ? s->queued : 0;
}

struct sched_item *sched_drain(struct sched *s)
{
	struct sched_item *it = s->delayed;

	if (it) {
		s->delayed = it->next;
		s->queued--;
		return it;
	}
	for (struct heap *h = &s->ready; h; h = h == &s->ready ? &s->waiting : NULL) {
		if (h->n > 0) {
			struct sched_key *k = h->v[0];

			it = dequeue(s, k);
			if (k->queued == 0)
				heap_remove(h, k);
			return it;
		}
	}
	return NULL;
}

/* ---- what happened ---- */

void sched_on_start(struct sched *s, const char *key, long now)
{
	struct sched_key *k = find(s, key, true);

	if (!k)
		return;
	k->last_start = now;
	k->inflight++;
	/* The quota refilled: as many as it held, until an answer says how many are left. */
	if (k->budget == 0 && k->quota_reset_at >= 0 && now >= k->quota_reset_at) {
		k->budget = k->quota > 0 ? k->quota : 1;
		k->quota_reset_at = -1;
		k->low = -1;
	}
	if (k->budget > 0)
		k->budget--;
}

void sched_on_quota(struct sched *s, const char *key, long now, int remaining, long resets_ms)
{
	struct sched_key *k = find(s, key, true);

	if (!k)
		return;
	touch(s, k);
	if (remaining < 0) {
		/* A success that says nothing: no quota to keep to after all. */
		if (k->probing && k->last_status >= 200 && k->last_status < 300)
			k->probing = false;
		return;
	}
	k->probing = false;
	if (remaining + 1 > k->quota)
		k->quota = remaining + 1;
	/* Answers cross on the way: one that says more is left than an earlier one is stale. */
	if (k->low >= 0 && k->low < remaining)
		remaining = k->low;
	k->low = remaining;
	/* Those in flight may not be counted in remaining yet: count them now. */
	k->budget = remaining > k->inflight ? remaining - k->inflight : 0;
	k->quota_reset_at = resets_ms >= 0 ? now + resets_ms : -1;
}

/* Spacing for a number of reads left: none with plenty, the refill rate when nearly empty, in between half of it. */
static long interval_for(int remaining)
{
	long refill = 1000L / SCHED_REFILL_PER_SEC;

	if (remaining >= SCHED_HIGH_WATER)
		return 0;
	if (remaining >= SCHED_LOW_WATER)
		return refill / 2;
	return refill;
}

void sched_on_response(struct sched *s, const char *key, long now, long status, int remaining, long wait_ms)
{
	struct sched_key *k = find(s, key, true);

	if (!k)
		return;
	touch(s, k);
	if (k->inflight > 0)
		k->inflight--;
	k->last_status = status;
	/* The probe failed and will be retried: it goes again first, the others after it. */
	if (k->probing && wait_ms >= 0 && now + wait_ms > k->blocked_until)
		k->blocked_until = now + wait_ms;
	if (status == 429) {
		long until = now + (wait_ms > 0 ? wait_ms : 1000L / SCHED_REFILL_PER_SEC);

		if (until > k->blocked_until)
			k->blocked_until = until;
		k->interval = 1000L / SCHED_REFILL_PER_SEC;
		return;
	}
	if (remaining >= 0) {
		k->interval = interval_for(remaining);
		/* Empty bucket: wait for one token before the next start. */
		if (remaining == 0 && now + 1000L / SCHED_REFILL_PER_SEC > k->blocked_until)
			k->blocked_until = now + 1000L / SCHED_REFILL_PER_SEC;
	} else if (status >= 200 && status < 300) {
		k->interval = 0;
	}
}

void sched_expect_quota(struct sched *s, const char *key)
{
	struct sched_key *k = find(s, key, true);

	if (k && k->quota == 0 && k->budget < 0)
		k->probing = true;
}

long sched_interval(struct sched *s, const char *key)
{
	const struct sched_key *k = find(s, key, false);

	return k ? k->interval : 0;
}

long sched_blocked_until(struct sched *s, const char *key)
{
	const struct sched_key *k = find(s, key, false);

	return k ? k->blocked_until : 0;
}
