/* sched.c - see sched.h.  A handful of keys (subscriptions): a linear table is enough. */
#include <stdlib.h>
#include <string.h>

#include "audit/azure/sched.h"
#include "audit/util/util.h"

struct key_state {
	char *key;
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
};

struct sched {
	struct key_state *v;
	size_t n, cap;
};

struct sched *sched_new(void)
{
	return kv_calloc(1, sizeof(struct sched));
}

void sched_free(struct sched *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].key);
	free(s->v);
	free(s);
}

static struct key_state *find(struct sched *s, const char *key, bool create)
{
	if (!s || !key)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].key, key) == 0)
			return &s->v[i];
	if (!create)
		return NULL;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = kv_realloc(s->v, s->cap * sizeof(*s->v));
	}
	memset(&s->v[s->n], 0, sizeof(s->v[s->n]));
	s->v[s->n].key = kv_strdup(key);
	s->v[s->n].last_start = -1;
	s->v[s->n].budget = -1;
	s->v[s->n].quota_reset_at = -1;
	s->v[s->n].low = -1;
	return &s->v[s->n++];
}

long sched_ready_at(struct sched *s, const char *key, long now)
{
	const struct key_state *k = find(s, key, false);
	long t = now;

	if (!k)
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

void sched_on_start(struct sched *s, const char *key, long now)
{
	struct key_state *k = find(s, key, true);

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
	struct key_state *k = find(s, key, true);

	if (!k)
		return;
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
	struct key_state *k = find(s, key, true);

	if (!k)
		return;
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
	struct key_state *k = find(s, key, true);

	if (k && k->quota == 0 && k->budget < 0)
		k->probing = true;
}

long sched_interval(struct sched *s, const char *key)
{
	const struct key_state *k = find(s, key, false);

	return k ? k->interval : 0;
}

long sched_blocked_until(struct sched *s, const char *key)
{
	const struct key_state *k = find(s, key, false);

	return k ? k->blocked_until : 0;
}
