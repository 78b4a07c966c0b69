/* xchan.c - bounded channels between cores (any threads): a lock-free ring
 * for the elements, and wakes through the runtimes' inboxes for the tasks
 * that wait on either side.
 *
 * The ring is Dmitry Vyukov's bounded MPMC queue: each slot has a sequence
 * number saying whose turn it is, so a send or receive is one CAS on a
 * position and one release store on the slot.  Here the number counts in
 * steps of two (a sender's turn at position pos when it equals 2 pos, a
 * receiver's at 2 pos + 1): with steps of one, "full with the element of
 * pos" and "free for pos + 1" are the same number when the capacity is 1,
 * which is why the original wants two slots or more.  The send
 * position's top bit is the closed flag: a close and a send claiming a
 * slot cannot cross, so once the flag is seen, the position below it is
 * the final count of elements, and receivers know when they have drained.
 *
 * Waiting.  A task that finds the ring full (sending) or empty (receiving)
 * waits on its runtime's "station" for that side: one per channel, side
 * and runtime, holding the local wait queue, an embedded wake message and
 * two flags kept under the channel's mutex, `armed` (tasks here want a
 * wake) and `inflight` (the message is pushed and not yet handled).  The
 * data path never takes the mutex: after each send or receive, the task
 * (or thread) looks at one atomic per side, `want`, which is set while
 * some station of that side is armed.  Only then does it lock, push each
 * armed station's message (one per runtime per burst, not per element or
 * per task) and clear `want`.  The handler, on the waiting runtime, clears
 * the station's flags and wakes all its local waiters, which retry.
 *
 * No lost wake-up: a waiter arms and sets `want`, then (full fence) looks
 * at the ring again before it parks; the other side changes the ring, then
 * (full fence) looks at `want`.  Of two sequentially consistent fences
 * one comes first, so either the waiter's second look sees the change or
 * the other side sees `want` and wakes it: the store-buffering pattern
 * the scheduler also uses when it clears inbox.notified before sleeping.
 *
 * Lifetimes.  A runtime receives pushes only while its station is armed,
 * that is while some task of its is inside a blocking call here (`users`).
 * Pushes happen under the mutex, and the last user to leave disarms under
 * it (so any push in progress has returned) and, if the message is still
 * in flight, waits for its own runtime to handle it.  So when no task of a
 * runtime uses the channel, no other thread can touch that runtime on its
 * behalf, its inbox holds nothing of the channel's, and either may go. */
#include "xchan.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The top bit of the send position.  Positions never wrap round to it,
 * and their doubles (sequence numbers) fit, as long as a size_t has 64
 * bits: 2^62 elements outlast any process. */
#define CLOSED ((size_t)1 << (sizeof(size_t) * 8 - 1))
_Static_assert(sizeof(size_t) == 8, "xchan positions need a 64-bit size_t");
#define CACHELINE 64

enum { SEND, RECV };

struct station {
	struct station *next;     /* in ch->stations[side], under ch->lock */
	struct cio_xchan *ch;
	struct cio__rt *rt;
	struct cio__msg msg;      /* the wake */
	int side;
	bool armed, inflight;     /* under ch->lock */
	/* Touched by rt's thread only: */
	size_t users;             /* its tasks inside a blocking call */
	cio_waitq waiters;        /* those of them parked */
};

struct slot {
	atomic_size_t seq;
	unsigned char data[];
};

struct cio_xchan {
	/* Each position on a line of its own: senders and receivers run on
	 * different cores. */
	alignas(CACHELINE) atomic_size_t enq; /* next to fill; | CLOSED */
	alignas(CACHELINE) atomic_size_t deq; /* next to take */
	alignas(CACHELINE) atomic_int want[2]; /* a station of side is armed */
	pthread_mutex_t lock;                  /* the stations and their flags */
	struct station *stations[2];
	size_t cap, mask;          /* mask: cap - 1 when cap is a power of 2 */
	bool pow2;
	size_t elem_size, stride;
	unsigned char *slots;
};

static inline struct slot *slot_at(cio_xchan *ch, size_t pos)
{
	size_t i = ch->pow2 ? pos & ch->mask : pos % ch->cap;
	return (struct slot *)(ch->slots + i * ch->stride);
}

int cio_xchan_new(cio_xchan **out, size_t elem_size, size_t capacity)
{
	*out = NULL;
	if (elem_size == 0 || elem_size > PTRDIFF_MAX || capacity == 0 ||
	    capacity >= CLOSED / 4)
		return -EINVAL;
	size_t stride = sizeof(struct slot) + elem_size;
	stride = (stride + alignof(struct slot) - 1) & ~(alignof(struct slot) - 1);
	size_t head = (sizeof(cio_xchan) + CACHELINE - 1) & ~(size_t)(CACHELINE - 1);
	/* No object may pass PTRDIFF_MAX bytes. */
	if (capacity > (PTRDIFF_MAX - head - CACHELINE) / stride)
		return -EINVAL;
	size_t bytes = (head + capacity * stride + CACHELINE - 1) & ~(size_t)(CACHELINE - 1);
	cio_xchan *ch = aligned_alloc(CACHELINE, bytes);
	if (!ch)
		return -ENOMEM;
	memset(ch, 0, sizeof *ch);
	atomic_init(&ch->enq, 0);
	atomic_init(&ch->deq, 0);
	atomic_init(&ch->want[SEND], 0);
	atomic_init(&ch->want[RECV], 0);
	pthread_mutex_init(&ch->lock, NULL);
	ch->cap = capacity;
	ch->pow2 = (capacity & (capacity - 1)) == 0;
	ch->mask = capacity - 1;
	ch->elem_size = elem_size;
	ch->stride = stride;
	ch->slots = (unsigned char *)ch + head;
	for (size_t i = 0; i < capacity; i++)
		atomic_init(&slot_at(ch, i)->seq, 2 * i);
	*out = ch;
	return 0;
}

void cio_xchan_free(cio_xchan *ch)
{
	if (!ch)
		return;
	for (int side = SEND; side <= RECV; side++) {
		struct station *st = ch->stations[side], *next;
		for (; st; st = next) {
			next = st->next;
			if (st->users || st->inflight) {
				fprintf(stderr, "coreio: cio_xchan_free(): a task "
						"still waits on the channel\n");
				abort();
			}
			free(st);
		}
	}
	pthread_mutex_destroy(&ch->lock);
	free(ch);
}

/* --- wakes ------------------------------------------------------------------- */

/* On the station's runtime: wake every local waiter; they retry. */
static void station_wake(struct cio__rt *rt, struct cio__msg *m)
{
	struct station *st = (struct station *)((char *)m - offsetof(struct station, msg));
	(void)rt;
	pthread_mutex_lock(&st->ch->lock);
	st->armed = false;
	st->inflight = false;
	pthread_mutex_unlock(&st->ch->lock);
	struct cio__waiter *w;
	while ((w = cio__waitq_first(&st->waiters))) {
		cio__waitq_remove(w);
		cio__wake(w->task, 0);
	}
}

static void station_reject(struct cio__msg *m)
{
	/* The last task to leave a station waits for its message, and a
	 * runtime stops only once its tasks have ended. */
	(void)m;
	fprintf(stderr, "coreio: a channel wake reached a stopped runtime\n");
	abort();
}

/* Pushes st's wake message to its runtime. */
static void push_wake(struct station *st)
{
	/* Armed means a task of st->rt is in a call here: its runtime runs
	 * and takes messages. */
	if (cio__inbox_push(st->rt, &st->msg) < 0)
		abort();
}

/* Pushes a wake to every armed station of `side`. */
static void wake_side(cio_xchan *ch, int side)
{
	pthread_mutex_lock(&ch->lock);
	atomic_store_explicit(&ch->want[side], 0, memory_order_relaxed);
	for (struct station *st = ch->stations[side]; st; st = st->next) {
		/* One in flight already: its handler wakes every waiter. */
		if (!st->armed || st->inflight)
			continue;
		st->armed = false;
		st->inflight = true;
		push_wake(st);
	}
	pthread_mutex_unlock(&ch->lock);
}

/* After changing the ring: wake the other side if it waits.  The fence
 * pairs with the one in wait() (see the top of the file). */
static inline void poke(cio_xchan *ch, int side)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&ch->want[side], memory_order_relaxed))
		wake_side(ch, side);
}

/* --- the ring ------------------------------------------------------------------ */

/* 0, -EAGAIN (full) or -EPIPE (closed). */
static int ring_send(cio_xchan *ch, const void *elem)
{
	size_t pos = atomic_load_explicit(&ch->enq, memory_order_relaxed);
	struct slot *s;
	for (;;) {
		if (pos & CLOSED)
			return -EPIPE;
		s = slot_at(ch, pos);
		size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		intptr_t diff = (intptr_t)seq - (intptr_t)(2 * pos);
		if (diff == 0) {
			if (atomic_compare_exchange_weak_explicit(&ch->enq, &pos, pos + 1,
								  memory_order_relaxed,
								  memory_order_relaxed))
				break;
		} else if (diff < 0) {
			return -EAGAIN; /* the slot holds last lap's element */
		} else {
			pos = atomic_load_explicit(&ch->enq, memory_order_relaxed);
		}
	}
	memcpy(s->data, elem, ch->elem_size);
	atomic_store_explicit(&s->seq, 2 * pos + 1, memory_order_release);
	return 0;
}

/* 0, -EAGAIN (empty, or the next element not written yet) or -EPIPE
 * (closed and drained). */
static int ring_recv(cio_xchan *ch, void *elem)
{
	size_t pos = atomic_load_explicit(&ch->deq, memory_order_relaxed);
	struct slot *s;
	for (;;) {
		s = slot_at(ch, pos);
		size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		intptr_t diff = (intptr_t)seq - (intptr_t)(2 * pos + 1);
		if (diff == 0) {
			if (atomic_compare_exchange_weak_explicit(&ch->deq, &pos, pos + 1,
								  memory_order_relaxed,
								  memory_order_relaxed))
				break;
		} else if (diff < 0) {
			/* Nothing at pos yet.  Closed, with pos the final
			 * count, means nothing ever will be. */
			size_t e = atomic_load_explicit(&ch->enq, memory_order_acquire);
			return (e & CLOSED) && (e & ~CLOSED) == pos ? -EPIPE : -EAGAIN;
		} else {
			pos = atomic_load_explicit(&ch->deq, memory_order_relaxed);
		}
	}
	memcpy(elem, s->data, ch->elem_size);
	atomic_store_explicit(&s->seq, 2 * (pos + ch->cap), memory_order_release);
	return 0;
}

int cio_xchan_try_send(cio_xchan *ch, const void *elem)
{
	int rc = ring_send(ch, elem);
	if (rc == 0)
		poke(ch, RECV);
	return rc;
}

int cio_xchan_try_recv(cio_xchan *ch, void *elem)
{
	int rc = ring_recv(ch, elem);
	if (rc == 0)
		poke(ch, SEND);
	return rc;
}

void cio_xchan_close(cio_xchan *ch)
{
	atomic_fetch_or_explicit(&ch->enq, CLOSED, memory_order_seq_cst);
	/* Everyone retries and finds it closed: wake them all. */
	atomic_thread_fence(memory_order_seq_cst);
	wake_side(ch, SEND);
	wake_side(ch, RECV);
}

/* --- blocking calls ---------------------------------------------------------------- */

/* The calling runtime's station of `side`, made on first use. */
static struct station *station_get(cio_xchan *ch, int side, struct cio__rt *rt)
{
	pthread_mutex_lock(&ch->lock);
	struct station *st = ch->stations[side];
	while (st && st->rt != rt)
		st = st->next;
	if (!st && (st = cio__calloc(1, sizeof *st))) {
		st->ch = ch;
		st->rt = rt;
		st->side = side;
		st->msg.handle = station_wake;
		st->msg.reject = station_reject;
		cio__waitq_init(&st->waiters);
		st->next = ch->stations[side];
		ch->stations[side] = st;
	}
	pthread_mutex_unlock(&ch->lock);
	return st;
}

/* The calling task is done with the station.  The last one of its runtime
 * disarms it, and waits for a wake still in flight: after this no thread
 * pushes to this runtime for the channel, and its inbox holds nothing of
 * the channel's. */
static void station_leave(struct station *st, struct cio__task *self)
{
	if (--st->users)
		return;
	/* A task of ours that arrives while we wait below is the last user
	 * then: the station is its to disarm, and armed for its wait. */
	while (!st->users) {
		pthread_mutex_lock(&st->ch->lock);
		st->armed = false;
		bool inflight = st->inflight;
		pthread_mutex_unlock(&st->ch->lock);
		if (!inflight)
			return;
		/* It is in our own inbox: the handler runs at the next tick
		 * boundary and wakes us. */
		struct cio__waiter w;
		cio__waiter_init(&w, self);
		cio__waitq_push(&st->waiters, &w);
		cio__park_hard(self);
		if (cio__waiter_queued(&w))
			cio__waitq_remove(&w);
	}
}

/* A blocking send or receive: try; while it would wait, arm the station,
 * look again, and park. */
static int wait_op(cio_xchan *ch, int side, void *elem, const char *call)
{
	struct cio__task *self = cio__self_or_die(call);
	struct cio__rt *rt = cio__rt_cur;
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;
	rc = side == SEND ? cio_xchan_try_send(ch, elem) : cio_xchan_try_recv(ch, elem);
	if (rc != -EAGAIN)
		return rc;
	struct station *st = station_get(ch, side, rt);
	if (!st)
		return -ENOMEM;
	st->users++;
	for (;;) {
		pthread_mutex_lock(&ch->lock);
		st->armed = true;
		atomic_store_explicit(&ch->want[side], 1, memory_order_relaxed);
		pthread_mutex_unlock(&ch->lock);
		/* Pairs with the fence in poke(): see the top of the file. */
		atomic_thread_fence(memory_order_seq_cst);
		rc = side == SEND ? cio_xchan_try_send(ch, elem) : cio_xchan_try_recv(ch, elem);
		if (rc != -EAGAIN)
			break;
		struct cio__waiter w;
		cio__waiter_init(&w, self);
		cio__waitq_push(&st->waiters, &w);
		rt->peer_waits++; /* another core (or thread) will wake us */
		rc = cio__park(self);
		rt->peer_waits--;
		if (cio__waiter_queued(&w))
			cio__waitq_remove(&w);
		/* Nothing was handed over: an interrupted call did nothing. */
		if (rc < 0)
			break;
	}
	station_leave(st, self);
	return rc;
}

/* --- cio_select()'s side ----------------------------------------------------------- */

int cio__xchan_watch(cio_xchan *ch, bool send, void *elem, struct cio__xwatch *xw,
		     struct cio__task *self)
{
	int side = send ? SEND : RECV;
	struct station *st = station_get(ch, side, cio__rt_cur);
	if (!st)
		return -ENOMEM;
	st->users++;
	pthread_mutex_lock(&ch->lock);
	st->armed = true;
	atomic_store_explicit(&ch->want[side], 1, memory_order_relaxed);
	pthread_mutex_unlock(&ch->lock);
	/* Pairs with the fence in poke(), as in wait_op(). */
	atomic_thread_fence(memory_order_seq_cst);
	int rc = send ? cio_xchan_try_send(ch, elem) : cio_xchan_try_recv(ch, elem);
	if (rc != -EAGAIN) {
		station_leave(st, self);
		return rc;
	}
	xw->station = st;
	cio__waiter_init(&xw->w, self);
	cio__waitq_push(&st->waiters, &xw->w);
	cio__rt_cur->peer_waits++;
	return -EAGAIN;
}

void cio__xchan_unwatch(struct cio__xwatch *xw, struct cio__task *self)
{
	cio__rt_cur->peer_waits--;
	if (cio__waiter_queued(&xw->w))
		cio__waitq_remove(&xw->w);
	station_leave(xw->station, self);
}

int cio_xchan_send(cio_xchan *ch, const void *elem)
{
	return wait_op(ch, SEND, (void *)elem, "cio_xchan_send");
}

int cio_xchan_recv(cio_xchan *ch, void *elem)
{
	return wait_op(ch, RECV, elem, "cio_xchan_recv");
}
