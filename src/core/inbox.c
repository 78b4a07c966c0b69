/* inbox.c - messages into a runtime from other threads: other cores, the
 * blocking pool.
 *
 * Senders push onto a lock-free stack with one compare-and-swap; the
 * runtime takes the whole stack at a tick boundary and handles it oldest
 * first.  Only the first message of a burst wakes the runtime (an eventfd
 * write, or an io_uring MSG_RING between rings): `notified` stays set until
 * the runtime is about to sleep (sched.c clears it, then looks at the
 * inbox once more, so a late sender's flag cannot silence the next one).
 * A runtime that is awake drains at every tick without being woken, so
 * its senders make no system call. */
#include "rt.h"

#include <errno.h>

int cio__inbox_push(struct cio__rt *to, struct cio__msg *m)
{
	struct cio__msg *head = atomic_load_explicit(&to->inbox.head, memory_order_relaxed);
	do {
		if (head == CIO__INBOX_CLOSED)
			return -ESHUTDOWN;
		m->next = head;
	/* seq_cst, as the exchange below: the message must be seen before
	 * the flag is read, as the runtime's clear of the flag is before its
	 * look at the inbox (see the sleep in sched.c). */
	} while (!atomic_compare_exchange_weak_explicit(&to->inbox.head, &head, m,
							memory_order_seq_cst,
							memory_order_relaxed));
	struct cio__rt *self = cio__rt_cur;
	if (self)
		self->stats.msgs_sent++;
	if (self != to && !atomic_exchange(&to->inbox.notified, 1)) {
		/* A sleeper, maybe counted stuck: no longer (deadlock.c).
		 * Only here, where a wake costs a system call anyway. */
		if (to->dl)
			cio__dl_unstuck(to);
		to->poller->wake(self, to);
	}
	return 0;
}

/* The stack holds the newest first: reverse it. */
static struct cio__msg *oldest_first(struct cio__msg *m)
{
	struct cio__msg *out = NULL;
	while (m) {
		struct cio__msg *next = m->next;
		m->next = out;
		out = m;
		m = next;
	}
	return out;
}

void cio__inbox_drain(struct cio__rt *rt)
{
	struct cio__msg *m = atomic_exchange_explicit(&rt->inbox.head, NULL,
						      memory_order_acquire);
	if (m == CIO__INBOX_CLOSED) {
		atomic_store(&rt->inbox.head, CIO__INBOX_CLOSED);
		return;
	}
	for (m = oldest_first(m); m;) {
		struct cio__msg *next = m->next;
		rt->stats.msgs_received++;
		m->handle(rt, m);
		m = next;
	}
}

void cio__inbox_close(struct cio__rt *rt)
{
	struct cio__msg *m = atomic_exchange_explicit(&rt->inbox.head, CIO__INBOX_CLOSED,
						      memory_order_acq_rel);
	if (m == CIO__INBOX_CLOSED)
		return;
	for (m = oldest_first(m); m;) {
		struct cio__msg *next = m->next;
		m->reject(m);
		m = next;
	}
}
