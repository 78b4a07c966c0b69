/* timer.c - the runtime's timers: a 4-ary min-heap of timer records that
 * their owners embed (in a task, or on a task's stack).
 *
 * Arming and disarming are O(log n) and never allocate, but for the heap
 * array growing to a new high-water mark.  A 4-ary heap is shallower than a
 * binary one and its four children share a cache line of pointers. */
#include "rt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static void place(struct cio__timer_heap *h, uint32_t i, struct cio__timer *t)
{
	h->v[i] = t;
	t->slot = i;
}

static void sift_up(struct cio__timer_heap *h, uint32_t i, struct cio__timer *t)
{
	while (i > 0) {
		uint32_t parent = (i - 1) / 4;
		if (h->v[parent]->when <= t->when)
			break;
		place(h, i, h->v[parent]);
		i = parent;
	}
	place(h, i, t);
}

static void sift_down(struct cio__timer_heap *h, uint32_t i, struct cio__timer *t)
{
	for (;;) {
		uint32_t first = 4 * i + 1, best = i;
		int64_t bw = t->when;
		if (first >= h->n)
			break;
		uint32_t end = first + 4 < h->n ? first + 4 : h->n;
		for (uint32_t c = first; c < end; c++)
			if (h->v[c]->when < bw) {
				bw = h->v[c]->when;
				best = c;
			}
		if (best == i)
			break;
		place(h, i, h->v[best]);
		i = best;
	}
	place(h, i, t);
}

int cio__timers_reserve(struct cio__rt *rt, size_t n)
{
	struct cio__timer_heap *h = &rt->timers;
	if (n <= h->cap)
		return 0;
	if (n > UINT32_MAX / 2)
		return -ENOMEM;
	uint32_t cap = h->cap ? h->cap : 64;
	while (cap < n)
		cap *= 2;
	struct cio__timer **v = cio__realloc(h->v, cap * sizeof *v);
	if (!v)
		return -ENOMEM;
	h->v = v;
	h->cap = cap;
	return 0;
}

int cio__timers_hold(struct cio__rt *rt)
{
	int rc = cio__timers_reserve(rt, cio__timers_bound(rt, 0, 1));
	if (rc == 0)
		rt->timers_held++;
	return rc;
}

void cio__timers_unhold(struct cio__rt *rt)
{
	rt->timers_held--;
}

void cio__timer_arm(struct cio__rt *rt, struct cio__timer *tm, int64_t when)
{
	struct cio__timer_heap *h = &rt->timers;
	if (tm->slot != CIO__TIMER_IDLE)
		cio__timer_disarm(rt, tm);
	if (h->n == h->cap && cio__timers_reserve(rt, (size_t)h->cap + 1) < 0) {
		/* Spawn reserves two timers a task, so only a caller that arms
		 * more than that can get here; a lost timer would leave a task
		 * asleep forever, and a park has no error path. */
		fputs("coreio: out of memory growing the timer heap\n", stderr);
		abort();
	}
	tm->when = when;
	sift_up(h, h->n++, tm);
	rt->stats.timers_armed++;
}

void cio__timer_disarm(struct cio__rt *rt, struct cio__timer *tm)
{
	struct cio__timer_heap *h = &rt->timers;
	uint32_t i = tm->slot;
	if (i == CIO__TIMER_IDLE)
		return;
	tm->slot = CIO__TIMER_IDLE;
	struct cio__timer *last = h->v[--h->n];
	if (i == h->n)
		return;
	if (i > 0 && last->when < h->v[(i - 1) / 4]->when)
		sift_up(h, i, last);
	else
		sift_down(h, i, last);
}

size_t cio__timers_run(struct cio__rt *rt, int64_t now)
{
	struct cio__timer_heap *h = &rt->timers;
	size_t fired = 0;
	while (h->n && h->v[0]->when <= now) {
		struct cio__timer *t = h->v[0];
		cio__timer_disarm(rt, t);
		t->fire(t);
		fired++;
	}
	return fired;
}

void cio__timers_fini(struct cio__rt *rt)
{
	free(rt->timers.v);
	rt->timers.v = NULL;
	rt->timers.n = rt->timers.cap = 0;
}
