/* cond.c - condition variables for tasks holding a cio_mutex.
 *
 * A wait unlocks the mutex, parks on the condition's queue and, however
 * the park ended, locks the mutex again before returning: callers unlock
 * on every path, so returning without the lock would break their unlock.
 * That re-lock waits with a hard park, which a pending cancel or a passed
 * deadline cannot cut short (they would otherwise end it at once, every
 * time); the mutex's FIFO hand-off then completes it. */
#include "sync.h"

void cio_cond_init(cio_cond *c)
{
	cio__waitq_init(&c->_waiters);
}

int cio_cond_wait(cio_cond *c, cio_mutex *m)
{
	struct cio__task *self = cio__self_or_die("cio_cond_wait");
	cio_task_t id = cio_self();
	if (m->_owner != id)
		return -EPERM;
	/* Interrupted before waiting: keep the mutex, give nothing up. */
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;
	/* Nothing runs between the release and the queueing inside
	 * cio__wait_on(), so no signal can slip between them. */
	cio__mutex_release(m);
	rc = cio__wait_on(&c->_waiters, self, NULL);
	cio__mutex_lock_hard(m, self, id);
	return rc;
}

void cio_cond_signal(cio_cond *c)
{
	/* The first waiter still parked: one woken by a cancel or deadline
	 * is leaving anyway, and waking it would lose the signal. */
	struct cio__waiter *w = cio__waitq_first_parked(&c->_waiters);
	if (w)
		cio__waiter_complete(w, 0);
}

void cio_cond_broadcast(cio_cond *c)
{
	cio__waitq_complete_all(&c->_waiters, 0);
}
