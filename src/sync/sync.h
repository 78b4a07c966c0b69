/* sync.h - helpers shared by the local sync objects (channels, oneshot,
 * mutex, condition, semaphore, wait group, select).  Nothing here is
 * public.
 *
 * Every object keeps its blocked tasks on a cio_waitq of struct cio__waiter
 * records that live on the waiting tasks' stacks.  A waker hands over
 * directly: it copies what the waiter needs, sets waiter->result, dequeues
 * it and wakes its task with code 0.  A waiter whose task is no longer
 * parked (woken meanwhile by a cancel, its deadline, or another case of its
 * select) must be left alone: it dequeues itself when it runs, and whatever
 * was handed to it would be lost. */
#ifndef CIO_SYNC_SYNC_H
#define CIO_SYNC_SYNC_H

#include "../core/rt.h"

#include <errno.h>

/* waiter->result until a waker hands something over.  Positive, so that it
 * cannot be mistaken for 0 or a negated errno. */
#define CIO__PENDING 1

/* The first waiter of q whose task is still parked, or NULL. */
static inline struct cio__waiter *cio__waitq_first_parked(const cio_waitq *q)
{
	for (const struct cio__wait_node *n = q->_head.next; n != &q->_head; n = n->next) {
		struct cio__waiter *w = (struct cio__waiter *)n;
		if (cio__parked(w->task))
			return w;
	}
	return NULL;
}

/* Completes waiter w with `result`: dequeues it and makes its task
 * runnable.  The caller has checked that the task is parked. */
static inline void cio__waiter_complete(struct cio__waiter *w, int result)
{
	w->result = result;
	cio__waitq_remove(w);
	cio__wake(w->task, 0);
}

/* Completes every parked waiter of q with `result`. */
static inline void cio__waitq_complete_all(cio_waitq *q, int result)
{
	struct cio__wait_node *n = q->_head.next;
	while (n != &q->_head) {
		struct cio__waiter *w = (struct cio__waiter *)n;
		n = n->next; /* w leaves the queue */
		if (cio__parked(w->task))
			cio__waiter_complete(w, result);
	}
}

/* Queues `self` on q, with `data` for the waker, and parks until a waker
 * completes the waiter.  Returns the result handed over, or -ECANCELED /
 * -ETIMEDOUT with the waiter off the queue again and nothing handed over.
 * A waker only hands over to a parked task, whose park then returns 0 (a
 * later cancel or deadline finds it runnable and changes nothing), so
 * "handed over" and "interrupted" cannot both happen; the result is
 * checked first all the same, as losing a handed-over element would be
 * the worse failure. */
static inline int cio__wait_on(cio_waitq *q, struct cio__task *self, void *data)
{
	struct cio__waiter w = {.task = self, .data = data, .result = CIO__PENDING};
	cio__waitq_push(q, &w);
	for (;;) {
		int rc = cio__park(self);
		if (w.result != CIO__PENDING)
			return w.result; /* the waker dequeued it */
		if (rc < 0) {
			cio__waitq_remove(&w);
			return rc;
		}
		/* Woken with nothing handed over: still queued, wait on. */
	}
}

/* --- channels: the representation select.c shares with chan.c ------ */

struct cio_chan {
	cio_waitq sendq;     /* senders waiting for room or a receiver */
	cio_waitq recvq;     /* receivers waiting for an element */
	unsigned char *buf;  /* ring of `slots` elements */
	size_t elem_size;
	size_t cap;          /* as created: 0, n, or CIO_CHAN_UNBOUNDED */
	size_t slots;        /* ring size; == cap when bounded */
	size_t head, len;    /* oldest element, elements buffered */
	bool closed;
};

/* One attempt at a send / receive that never waits.  Returns 0 (done),
 * -EAGAIN (would wait), -EPIPE (closed; for a receive: closed and empty),
 * or -ENOMEM (an unbounded channel could not grow). */
int cio__chan_poll_send(cio_chan *ch, const void *elem);
int cio__chan_poll_recv(cio_chan *ch, void *elem);

/* --- groups: what select.c needs ----------------------------------- */

/* Ends g's scope if no member runs: closes it and returns 0 with
 * *status as cio_group_wait() would return it.  Else -EAGAIN; or -EPERM
 * (another runtime's group), -EBUSY (another task waits for it). */
int cio__group_try(cio_group *g, struct cio__task *self, int *status);

/* Makes t (NULL: nobody) the task woken, with code 0, when g's last
 * running member ends. */
void cio__group_watch(cio_group *g, struct cio__task *t);

/* --- mutex: what cio_cond_wait() needs ------------------------------- */

/* Gives the mutex to its first parked waiter, or leaves it free. */
void cio__mutex_release(cio_mutex *m);

/* Locks m for task `self` (whose id is `id`), waiting for it without
 * heeding cancel or deadline. */
void cio__mutex_lock_hard(cio_mutex *m, struct cio__task *self, cio_task_t id);

#endif
