/* xwg.c - a wait group between cores (any threads): a count that any
 * thread moves, and tasks on any core that wait for it to reach zero.
 *
 * The count and the list of waiting tasks sit under one mutex; each
 * waiter is a record on its task's stack, holding the wake message for
 * its runtime.  The done() that brings the count to zero takes the whole
 * list under the mutex and pushes each waiter's message: from then on the
 * record is the waker's to touch until the message is handled on the
 * waiter's runtime.  A waiter interrupted before that finds its record
 * still listed and unlinks it (the call returns the interruption); one
 * whose record was taken waits, deaf to interruptions, for the message
 * already on its way, and returns 0: the count did reach zero.  So the
 * record never outlives its frame, and no message reaches a runtime that
 * has no task waiting for it.
 *
 * A push keeps touching the receiving runtime (its wake flag, its wake
 * fd) after the message is visible, and done() may run on any thread.
 * So done() pushes with the mutex held, and a woken waiter takes the
 * mutex once before it returns: by then every push has finished, and the
 * waiter's runtime may end. */
#include "../core/rt.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct xwaiter {
	struct cio__msg msg;    /* the wake, pushed to rt */
	struct xwaiter *next;   /* in wg->waiters, under wg->lock */
	struct cio__rt *rt;
	struct cio__task *task;
	bool listed;            /* under wg->lock */
	bool woken;             /* on rt: the message was handled */
};

struct cio_xwg {
	pthread_mutex_t lock;
	size_t count;
	struct xwaiter *waiters;
};

int cio_xwg_new(cio_xwg **out, size_t n)
{
	cio_xwg *wg = cio__calloc(1, sizeof *wg);
	*out = wg;
	if (!wg)
		return -ENOMEM;
	pthread_mutex_init(&wg->lock, NULL);
	wg->count = n;
	return 0;
}

void cio_xwg_free(cio_xwg *wg)
{
	if (!wg)
		return;
	if (wg->waiters) {
		fprintf(stderr, "coreio: cio_xwg_free() while a task waits on it\n");
		abort();
	}
	pthread_mutex_destroy(&wg->lock);
	free(wg);
}

void cio_xwg_add(cio_xwg *wg, size_t n)
{
	pthread_mutex_lock(&wg->lock);
	wg->count += n;
	pthread_mutex_unlock(&wg->lock);
}

/* On the waiter's runtime. */
static void xwg_wake(struct cio__rt *rt, struct cio__msg *m)
{
	struct xwaiter *w = (struct xwaiter *)m;
	(void)rt;
	w->woken = true;
	cio__wake(w->task, 0);
}

static void xwg_reject(struct cio__msg *m)
{
	(void)m;
	abort(); /* cannot be: the waiter's task is parked, so its runtime runs */
}

void cio_xwg_done(cio_xwg *wg)
{
	pthread_mutex_lock(&wg->lock);
	if (wg->count == 0) {
		pthread_mutex_unlock(&wg->lock);
		fprintf(stderr, "coreio: cio_xwg_done() more often than counted\n");
		abort();
	}
	if (--wg->count == 0) {
		struct xwaiter *w = wg->waiters;
		wg->waiters = NULL;
		while (w) {
			/* Read before the push: once handled, the record's
			 * frame may be left (not before our unlock, though). */
			struct xwaiter *next = w->next;
			w->listed = false;
			if (cio__inbox_push(w->rt, &w->msg) < 0)
				abort();
			w = next;
		}
	}
	pthread_mutex_unlock(&wg->lock);
}

int cio_xwg_wait(cio_xwg *wg)
{
	struct cio__task *self = cio__self_or_die("cio_xwg_wait");
	struct cio__rt *rt = cio__rt_cur;
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;
	struct xwaiter w = {
		.msg = {.handle = xwg_wake, .reject = xwg_reject},
		.rt = rt, .task = self, .listed = true,
	};
	pthread_mutex_lock(&wg->lock);
	if (wg->count == 0) {
		pthread_mutex_unlock(&wg->lock);
		return 0;
	}
	w.next = wg->waiters;
	wg->waiters = &w;
	pthread_mutex_unlock(&wg->lock);

	rt->peer_waits++; /* another core (or thread) will wake us */
	rc = cio__park(self);
	if (rc < 0 && !w.woken) {
		pthread_mutex_lock(&wg->lock);
		bool listed = w.listed;
		if (listed) {
			struct xwaiter **p = &wg->waiters;
			while (*p != &w)
				p = &(*p)->next;
			*p = w.next;
		}
		pthread_mutex_unlock(&wg->lock);
		if (listed) {
			rt->peer_waits--;
			return rc;
		}
	}
	/* Taken by the last done(): its message is on the way. */
	while (!w.woken)
		cio__park_hard(self);
	rt->peer_waits--;
	/* The done() that pushed it may still be inside the push. */
	pthread_mutex_lock(&wg->lock);
	pthread_mutex_unlock(&wg->lock);
	return 0;
}
