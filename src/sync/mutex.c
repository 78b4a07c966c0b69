/* mutex.c - a task mutex with FIFO hand-off.
 *
 * Unlock gives the lock straight to the first parked waiter (it becomes
 * the owner before it even runs), so a task that comes along meanwhile
 * cannot barge in, and a waiter never wakes to find the lock gone.  The
 * owner is recorded by task id, which is what unlock checks. */
#include "sync.h"

void cio_mutex_init(cio_mutex *m)
{
	cio__waitq_init(&m->_waiters);
	m->_owner = 0;
}

void cio__mutex_release(cio_mutex *m)
{
	struct cio__waiter *w = cio__waitq_first_parked(&m->_waiters);
	if (!w) {
		m->_owner = 0;
		return;
	}
	/* Each waiter points `data` at its task id. */
	m->_owner = *(const cio_task_t *)w->data;
	cio__waiter_complete(w, 0);
}

int cio_mutex_lock(cio_mutex *m)
{
	struct cio__task *self = cio__self_or_die("cio_mutex_lock");
	cio_task_t id = cio_self();
	if (m->_owner == id)
		return -EDEADLK;
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;
	/* Free means nobody parked waits: unlock would have handed it on. */
	if (m->_owner == 0) {
		m->_owner = id;
		return 0;
	}
	/* 0: cio__mutex_release() made us the owner.  Interrupted, we were
	 * never made the owner and are off the queue. */
	return cio__wait_on(&m->_waiters, self, &id);
}

void cio__mutex_lock_hard(cio_mutex *m, struct cio__task *self, cio_task_t id)
{
	if (m->_owner == 0) {
		m->_owner = id;
		return;
	}
	/* A hard park ignores cancel and deadline; only the hand-off in
	 * cio__mutex_release() completes the waiter. */
	struct cio__waiter w = {.task = self, .data = &id, .result = CIO__PENDING};
	cio__waitq_push(&m->_waiters, &w);
	while (w.result == CIO__PENDING)
		cio__park_hard(self);
}

int cio_mutex_trylock(cio_mutex *m)
{
	cio__self_or_die("cio_mutex_trylock");
	if (m->_owner != 0)
		return -EBUSY;
	m->_owner = cio_self();
	return 0;
}

int cio_mutex_unlock(cio_mutex *m)
{
	cio_task_t id = cio_self();
	if (id == 0 || m->_owner != id)
		return -EPERM;
	cio__mutex_release(m);
	return 0;
}
