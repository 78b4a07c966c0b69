/* sem.c - counting semaphores with FIFO hand-off.
 *
 * A release gives its unit straight to the first parked waiter instead of
 * adding it to the count, so a task arriving meanwhile cannot take it and
 * waiters are served in order.  The count is therefore only ever non-zero
 * while no task is parked on the semaphore. */
#include "sync.h"

void cio_sem_init(cio_sem *s, size_t count)
{
	cio__waitq_init(&s->_waiters);
	s->_count = count;
}

int cio_sem_acquire(cio_sem *s)
{
	struct cio__task *self = cio__self_or_die("cio_sem_acquire");
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;
	if (s->_count) {
		s->_count--;
		return 0;
	}
	/* 0: a release handed us its unit.  Interrupted: none was taken. */
	return cio__wait_on(&s->_waiters, self, NULL);
}

int cio_sem_try_acquire(cio_sem *s)
{
	if (!s->_count)
		return -EAGAIN;
	s->_count--;
	return 0;
}

void cio_sem_release(cio_sem *s)
{
	struct cio__waiter *w = cio__waitq_first_parked(&s->_waiters);
	if (w)
		cio__waiter_complete(w, 0);
	else
		s->_count++;
}
