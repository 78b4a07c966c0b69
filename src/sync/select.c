/* select.c - waiting on several channel operations and timers at once.
 *
 * First every case is tried without waiting, from a starting case that
 * moves on by one at each call (so that cases ready together take turns,
 * and none starves); the first that can complete does, alone.  Otherwise the task queues one waiter per
 * channel case, on that channel's send or receive queue, arms one timer
 * for the earliest TIMER case, and parks.  Channels hand over to a waiter
 * only while its task is parked, so the first case to fire wakes the task
 * and every other waiter is skipped by its channel until the task, awake,
 * takes them off their queues: no other channel gives up or takes an
 * element. */
#include "sync.h"

#include <stdint.h>
#include <stdlib.h>

/* Waiters kept on the stack; more cases than this take a malloc. */
#define SELECT_STACK_CASES 16

/* The park code of the select timer: positive, so no errno and not the 0
 * of a channel hand-off. */
#define SELECT_TIMER_FIRED (CIO__PENDING + 1)

static void select_timer_fire(struct cio__timer *tm)
{
	cio__wake(tm->task, SELECT_TIMER_FIRED);
}

static bool case_valid(const cio_select_case *c)
{
	switch (c->op) {
	case CIO_SELECT_RECV:
	case CIO_SELECT_SEND:
		return c->chan && c->elem;
	case CIO_SELECT_TIMER:
	case CIO_SELECT_DRAIN:
		return true;
	}
	return false;
}

/* Completes the first case, from `start` on round the array, that can
 * complete now; returns its index, or -1 with *earliest set to the
 * earliest TIMER deadline (CIO_NEVER if none). */
static int select_poll(cio_select_case *cases, size_t n, size_t start, int64_t *earliest)
{
	int64_t now = 0;
	*earliest = CIO_NEVER;
	for (size_t k = 0; k < n; k++) {
		size_t i = start + k < n ? start + k : start + k - n;
		cio_select_case *c = &cases[i];
		int rc;
		switch (c->op) {
		case CIO_SELECT_RECV:
			rc = cio__chan_poll_recv(c->chan, c->elem);
			break;
		case CIO_SELECT_SEND:
			rc = cio__chan_poll_send(c->chan, c->elem);
			break;
		case CIO_SELECT_DRAIN:
			rc = cio__rt_cur->draining ? 0 : -EAGAIN;
			break;
		default: /* TIMER */
			if (!now)
				now = cio_now();
			rc = c->deadline <= now ? 0 : -EAGAIN;
			if (c->deadline < *earliest)
				*earliest = c->deadline;
			break;
		}
		if (rc != -EAGAIN) {
			c->result = rc;
			return (int)i;
		}
	}
	return -1;
}

int cio_select(cio_select_case *cases, size_t n)
{
	struct cio__task *self = cio__self_or_die("cio_select");
	if (n == 0 || n > INT32_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!case_valid(&cases[i]))
			return -EINVAL;
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;

	struct cio__rt *rt = cio__rt_cur;
	int64_t earliest;
	int idx = select_poll(cases, n, rt->select_turn++ % n, &earliest);
	if (idx >= 0)
		return idx;

	size_t remote = 0;
	struct cio__waiter stack_ws[SELECT_STACK_CASES];
	struct cio__waiter *ws = stack_ws;
	if (n > SELECT_STACK_CASES && !(ws = cio__malloc(n * sizeof *ws)))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		cio_select_case *c = &cases[i];
		struct cio__waiter *w = &ws[i];
		w->task = self;
		w->data = c->elem;
		w->result = CIO__PENDING;
		w->node.prev = w->node.next = &w->node; /* not queued */
		if (c->op == CIO_SELECT_RECV)
			cio__waitq_push(&c->chan->recvq, w);
		else if (c->op == CIO_SELECT_SEND)
			cio__waitq_push(&c->chan->sendq, w);
		else if (c->op == CIO_SELECT_DRAIN) {
			cio__waitq_push(&rt->drain_waiters, w);
			/* In a group a signal or another core may start it. */
			remote += rt->group != NULL;
		}
	}
	/* One timer for all TIMER cases: the task's deadline timer and this
	 * one are the two that spawn reserved room for. */
	struct cio__timer tm = {.slot = CIO__TIMER_IDLE, .fire = select_timer_fire, .task = self};
	if (earliest != CIO_NEVER)
		cio__timer_arm(rt, &tm, earliest);

	rt->remote_waits += remote ? 1 : 0;
	idx = -1;
	for (;;) {
		rc = cio__park(self);
		/* A hand-off is checked first: it cannot be undone; the
		 * drain, a state that lasts, can wait for the next select. */
		for (size_t i = 0; i < n && idx < 0; i++)
			if (ws[i].result != CIO__PENDING && cases[i].op != CIO_SELECT_DRAIN)
				idx = (int)i;
		for (size_t i = 0; i < n && idx < 0; i++)
			if (ws[i].result != CIO__PENDING)
				idx = (int)i;
		if (idx >= 0 || rc < 0 || rc == SELECT_TIMER_FIRED)
			break;
		/* Woken for nothing: every waiter is still queued. */
	}
	rt->remote_waits -= remote ? 1 : 0;
	cio__timer_disarm(rt, &tm);
	for (size_t i = 0; i < n; i++)
		if (cio__waiter_queued(&ws[i]))
			cio__waitq_remove(&ws[i]);

	if (idx >= 0) {
		cases[idx].result = ws[idx].result;
	} else if (rc == SELECT_TIMER_FIRED) {
		/* The first TIMER case due; the earliest one at least is. */
		int64_t now = cio_now();
		if (now < earliest)
			now = earliest;
		for (size_t i = 0; i < n && idx < 0; i++)
			if (cases[i].op == CIO_SELECT_TIMER && cases[i].deadline <= now)
				idx = (int)i;
		cases[idx].result = 0;
	} else {
		idx = rc; /* -ECANCELED, -ETIMEDOUT */
	}
	if (ws != stack_ws)
		free(ws);
	return idx;
}
