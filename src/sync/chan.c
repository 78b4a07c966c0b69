/* chan.c - local channels of fixed-size elements: bounded (a ring
 * allocated once, with the channel), unbounded (a ring that doubles when
 * full) and rendezvous (no buffer: the sender's element goes straight
 * into the receiver's).
 *
 * Elements move by hand-off.  A sender that finds a parked receiver copies
 * its element into the receiver's destination and wakes it; a receiver
 * that frees a slot in a full ring moves the first parked sender's element
 * into the ring.  So a blocked task wakes with its operation done, never
 * to retry (and race a newcomer for) the slot it waited for, and FIFO
 * order holds among elements and among waiters.
 *
 * Two facts keep the cases few: receivers wait only while the ring is
 * empty, and senders only while it is full (or, rendezvous, always). */
#include "sync.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Element i (0: the oldest) of the ring. */
static inline unsigned char *ring_at(const cio_chan *ch, size_t i)
{
	size_t j = ch->head + i;
	if (j >= ch->slots)
		j -= ch->slots;
	return ch->buf + j * ch->elem_size;
}

static inline void ring_push(cio_chan *ch, const void *elem)
{
	memcpy(ring_at(ch, ch->len), elem, ch->elem_size);
	ch->len++;
}

static inline void ring_pop(cio_chan *ch, void *elem)
{
	memcpy(elem, ch->buf + ch->head * ch->elem_size, ch->elem_size);
	if (++ch->head == ch->slots)
		ch->head = 0;
	ch->len--;
}

/* Doubles an unbounded channel's ring.  The part that wrapped round to the
 * start moves up behind the rest, which keeps every index valid. */
static int ring_grow(cio_chan *ch)
{
	size_t slots = ch->slots ? ch->slots * 2 : 16;
	if (slots < ch->slots || slots > SIZE_MAX / ch->elem_size)
		return -ENOMEM;
	unsigned char *buf = cio__realloc(ch->buf, slots * ch->elem_size);
	if (!buf)
		return -ENOMEM;
	size_t wrapped = ch->head + ch->len > ch->slots ? ch->head + ch->len - ch->slots : 0;
	memcpy(buf + ch->slots * ch->elem_size, buf, wrapped * ch->elem_size);
	ch->buf = buf;
	ch->slots = slots;
	return 0;
}

int cio_chan_new(cio_chan **out, size_t elem_size, size_t capacity)
{
	*out = NULL;
	if (elem_size == 0 || elem_size > PTRDIFF_MAX)
		return -EINVAL;
	bool bounded = capacity != CIO_CHAN_UNBOUNDED;
	size_t bytes = 0;
	if (bounded) {
		/* No object may pass PTRDIFF_MAX bytes. */
		if (capacity > (PTRDIFF_MAX - sizeof(cio_chan)) / elem_size)
			return -EINVAL;
		bytes = capacity * elem_size;
	}
	/* A bounded ring shares the channel's allocation: no pointer chase
	 * and no second malloc. */
	cio_chan *ch = cio__malloc(sizeof *ch + bytes);
	if (!ch)
		return -ENOMEM;
	cio__waitq_init(&ch->sendq);
	cio__waitq_init(&ch->recvq);
	ch->elem_size = elem_size;
	ch->cap = capacity;
	ch->slots = bounded ? capacity : 0;
	ch->buf = bounded ? (unsigned char *)(ch + 1) : NULL;
	ch->head = ch->len = 0;
	ch->closed = false;
	*out = ch;
	return 0;
}

void cio_chan_free(cio_chan *ch)
{
	if (!ch)
		return;
	/* A waiter left queued would unlink itself from freed memory later. */
	if (!cio__waitq_empty(&ch->sendq) || !cio__waitq_empty(&ch->recvq)) {
		fputs("coreio: cio_chan_free() on a channel tasks still wait on; "
		      "close it and let them leave first\n", stderr);
		abort();
	}
	if (ch->cap == CIO_CHAN_UNBOUNDED)
		free(ch->buf);
	free(ch);
}

int cio__chan_poll_send(cio_chan *ch, const void *elem)
{
	if (ch->closed)
		return -EPIPE;
	/* A parked receiver means an empty ring: hand the element over. */
	struct cio__waiter *w = ch->len ? NULL : cio__waitq_first_parked(&ch->recvq);
	if (w) {
		memcpy(w->data, elem, ch->elem_size);
		cio__waiter_complete(w, 0);
		return 0;
	}
	if (ch->len == ch->slots) {
		if (ch->cap != CIO_CHAN_UNBOUNDED)
			return -EAGAIN; /* full, or rendezvous with nobody there */
		int rc = ring_grow(ch);
		if (rc < 0)
			return rc;
	}
	ring_push(ch, elem);
	return 0;
}

int cio__chan_poll_recv(cio_chan *ch, void *elem)
{
	struct cio__waiter *w;
	if (ch->len) {
		ring_pop(ch, elem);
		/* A slot came free: the first parked sender's element takes it,
		 * behind every element already buffered. */
		if ((w = cio__waitq_first_parked(&ch->sendq))) {
			ring_push(ch, w->data);
			cio__waiter_complete(w, 0);
		}
		return 0;
	}
	/* Empty: only a rendezvous channel can have a sender parked here. */
	if ((w = cio__waitq_first_parked(&ch->sendq))) {
		memcpy(elem, w->data, ch->elem_size);
		cio__waiter_complete(w, 0);
		return 0;
	}
	return ch->closed ? -EPIPE : -EAGAIN;
}

int cio_chan_send(cio_chan *ch, const void *elem)
{
	struct cio__task *self = cio__self_or_die("cio_chan_send");
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;
	rc = cio__chan_poll_send(ch, elem);
	if (rc != -EAGAIN)
		return rc;
	/* The waker reads the element from our caller's memory, which stays
	 * put while we wait. */
	return cio__wait_on(&ch->sendq, self, (void *)(uintptr_t)elem);
}

int cio_chan_recv(cio_chan *ch, void *elem)
{
	struct cio__task *self = cio__self_or_die("cio_chan_recv");
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;
	rc = cio__chan_poll_recv(ch, elem);
	if (rc != -EAGAIN)
		return rc;
	return cio__wait_on(&ch->recvq, self, elem);
}

int cio_chan_try_send(cio_chan *ch, const void *elem)
{
	return cio__chan_poll_send(ch, elem);
}

int cio_chan_try_recv(cio_chan *ch, void *elem)
{
	return cio__chan_poll_recv(ch, elem);
}

void cio_chan_close(cio_chan *ch)
{
	if (ch->closed)
		return;
	ch->closed = true;
	cio__waitq_complete_all(&ch->sendq, -EPIPE);
	/* Receivers wait only on an empty ring; what is buffered stays
	 * receivable. */
	if (!ch->len)
		cio__waitq_complete_all(&ch->recvq, -EPIPE);
}

size_t cio_chan_len(const cio_chan *ch)
{
	return ch->len;
}
