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
	return t;
}

void sched_on_start(struct sched *s, const char *key, long now)
{
	struct key_state *k = find(s, key, true);

	if (k)
		k->last_start = now;
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
