/* oneshot.c - a one-value channel: one send, one successful receive.
 *
 * The value is a pointer, handed over directly to a parked receiver or
 * kept until one comes.  Once a receiver has it, any other receiver gets
 * -EPIPE, as after a close without a value. */
#include "sync.h"

enum { EMPTY = 0, FULL, TAKEN, CLOSED }; /* EMPTY = 0: CIO_ONESHOT_INIT */

void cio_oneshot_init(cio_oneshot *o)
{
	cio__waitq_init(&o->_waiters);
	o->_value = NULL;
	o->_state = EMPTY;
}

int cio_oneshot_send(cio_oneshot *o, void *value)
{
	if (o->_state != EMPTY)
		return -EPIPE;
	struct cio__waiter *w = cio__waitq_first_parked(&o->_waiters);
	if (!w) {
		o->_value = value;
		o->_state = FULL;
		return 0;
	}
	if (w->data)
		*(void **)w->data = value;
	cio__waiter_complete(w, 0);
	o->_state = TAKEN;
	/* The value is gone: other receivers would wait forever. */
	cio__waitq_complete_all(&o->_waiters, -EPIPE);
	return 0;
}

int cio_oneshot_recv(cio_oneshot *o, void **value)
{
	struct cio__task *self = cio__self_or_die("cio_oneshot_recv");
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;
	switch (o->_state) {
	case FULL:
		if (value)
			*value = o->_value;
		o->_value = NULL;
		o->_state = TAKEN;
		return 0;
	case EMPTY:
		return cio__wait_on(&o->_waiters, self, value);
	default: /* TAKEN, CLOSED */
		return -EPIPE;
	}
}

void cio_oneshot_close(cio_oneshot *o)
{
	/* A value already sent stays receivable. */
	if (o->_state != EMPTY)
		return;
	o->_state = CLOSED;
	cio__waitq_complete_all(&o->_waiters, -EPIPE);
}
