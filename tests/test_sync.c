/* test_sync.c - local synchronisation: channels (bounded, unbounded,
 * rendezvous), oneshot, mutex, condition, semaphore, wait group and
 * select; their ordering, closing, and what cancellation and deadlines
 * leave behind (nothing lost, nothing delivered twice). */
#include "check.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

/* A channel the test cannot do without. */
static cio_chan *chan_make(size_t elem_size, size_t capacity)
{
	cio_chan *ch;
	CHECK_EQ(cio_chan_new(&ch, elem_size, capacity), 0);
	return ch;
}

#define MS 1000000LL

/* Lets every runnable task run until it blocks (a few rounds suffice). */
static void settle(void)
{
	for (int i = 0; i < 4; i++)
		CHECK_EQ(cio_yield(), 0);
}

/* Checks that `took` fits a deadline of `want` ns: not early, not late. */
#define CHECK_TOOK(took, want)                                               \
	do {                                                                 \
		CHECK((took) >= (want));                                     \
		CHECK((took) < (want) + 1000 * MS);                          \
	} while (0)

/* ===================================================================== */
/* Channels                                                               */
/* ===================================================================== */

struct chan_job {
	cio_chan *ch;
	int from, count; /* values sent: from .. from+count-1 */
	int value;       /* a single value, sent or received */
	int progress;    /* sends completed */
	bool close;      /* close after the last send */
};

static void *sender(void *arg)
{
	struct chan_job *j = arg;
	for (int i = 0; i < j->count; i++) {
		int v = j->from + i;
		int rc = cio_chan_send(j->ch, &v);
		if (rc < 0)
			return (void *)(intptr_t)rc;
		j->progress++;
	}
	if (j->close)
		cio_chan_close(j->ch);
	return NULL;
}

static void *send_one(void *arg)
{
	struct chan_job *j = arg;
	int rc = cio_chan_send(j->ch, &j->value);
	if (rc == 0)
		j->progress++;
	return (void *)(intptr_t)rc;
}

static void *recv_one(void *arg)
{
	struct chan_job *j = arg;
	return (void *)(intptr_t)cio_chan_recv(j->ch, &j->value);
}

/* Elements come out in the order they went in, through every kind of
 * channel, with the producer running concurrently; close ends the stream
 * after the last element. */
static void test_chan_fifo(void)
{
	const size_t caps[] = {1, 4, 0, CIO_CHAN_UNBOUNDED};
	for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
		cio_chan *ch = chan_make(sizeof(int), caps[k]);
		CHECK(ch);
		struct chan_job j = {.ch = ch, .from = 100, .count = 200, .close = true};
		cio_task_t t = cio_spawn(sender, &j);
		int v, n = 0;
		while (cio_chan_recv(ch, &v) == 0) {
			CHECK_EQ(v, 100 + n);
			n++;
		}
		CHECK_EQ(n, 200);
		CHECK_EQ(cio_chan_recv(ch, &v), -EPIPE);
		CHECK_EQ(join_rc(t), 0);
		cio_chan_free(ch);
	}

	/* Unbounded: sends never block; the ring grows, also while wrapped. */
	cio_chan *ch = chan_make(sizeof(int), CIO_CHAN_UNBOUNDED);
	int v, next_in = 0, next_out = 0;
	for (int round = 0; round < 6; round++) {
		for (int i = 0; i < 10 + round * 40; i++) {
			CHECK_EQ(cio_chan_send(ch, &next_in), 0);
			next_in++;
		}
		for (int i = 0; i < 7 + round * 25; i++) {
			CHECK_EQ(cio_chan_try_recv(ch, &v), 0);
			CHECK_EQ(v, next_out++);
		}
		CHECK_EQ(cio_chan_len(ch), (size_t)(next_in - next_out));
	}
	while (cio_chan_try_recv(ch, &v) == 0)
		CHECK_EQ(v, next_out++);
	CHECK_EQ(next_out, next_in);
	CHECK_EQ(cio_chan_try_recv(ch, &v), -EAGAIN);
	cio_chan_free(ch);

	/* Elements of any size are copied whole. */
	struct big { char s[40]; int n; } b = {"hello", 7}, out;
	ch = chan_make(sizeof b, 2);
	CHECK_EQ(cio_chan_send(ch, &b), 0);
	b.n = 8;
	CHECK_EQ(cio_chan_send(ch, &b), 0);
	CHECK_EQ(cio_chan_recv(ch, &out), 0);
	CHECK(strcmp(out.s, "hello") == 0 && out.n == 7);
	CHECK_EQ(cio_chan_recv(ch, &out), 0);
	CHECK_EQ(out.n, 8);
	cio_chan_free(ch);

	cio_chan *bad = (cio_chan *)&out;
	CHECK_EQ(cio_chan_new(&bad, 0, 4), -EINVAL);
	CHECK(bad == NULL);
	CHECK_EQ(cio_chan_new(&bad, SIZE_MAX / 2, 4), -EINVAL); /* overflows */
	CHECK_EQ(cio_chan_new(&bad, 1, SIZE_MAX - 1), -EINVAL); /* > PTRDIFF_MAX */
	CHECK_EQ(cio_chan_new(&bad, 0, CIO_CHAN_UNBOUNDED), -EINVAL);
	CHECK(bad == NULL);
	cio_chan_free(NULL);
}

/* Waiting receivers are served in the order they came. */
static void test_chan_receivers_fifo(void)
{
	const size_t caps[] = {3, 0, CIO_CHAN_UNBOUNDED};
	for (size_t k = 0; k < 3; k++) {
		cio_chan *ch = chan_make(sizeof(int), caps[k]);
		struct chan_job r[4];
		cio_task_t t[4];
		for (int i = 0; i < 4; i++) {
			r[i] = (struct chan_job){.ch = ch, .value = -1};
			t[i] = cio_spawn(recv_one, &r[i]);
		}
		settle();
		for (int i = 0; i < 4; i++) {
			int v = 10 + i;
			CHECK_EQ(cio_chan_send(ch, &v), 0);
		}
		for (int i = 0; i < 4; i++) {
			CHECK_EQ(join_rc(t[i]), 0);
			CHECK_EQ(r[i].value, 10 + i);
		}
		CHECK_EQ(cio_chan_len(ch), 0);
		cio_chan_free(ch);
	}
}

/* A bounded channel makes its sender wait while full, and a receive lets
 * exactly one more element in. */
static void test_chan_backpressure(void)
{
	cio_chan *ch = chan_make(sizeof(int), 2);
	struct chan_job j = {.ch = ch, .from = 0, .count = 5};
	cio_task_t t = cio_spawn(sender, &j);
	settle();
	CHECK_EQ(j.progress, 2);
	CHECK_EQ(cio_chan_len(ch), 2);
	int v;
	CHECK_EQ(cio_chan_recv(ch, &v), 0);
	CHECK_EQ(v, 0);
	/* The waiting sender's element went straight into the freed slot. */
	CHECK_EQ(cio_chan_len(ch), 2);
	settle();
	CHECK_EQ(j.progress, 3);
	CHECK_EQ(cio_chan_len(ch), 2);
	for (int i = 1; i < 5; i++) {
		CHECK_EQ(cio_chan_recv(ch, &v), 0);
		CHECK_EQ(v, i);
	}
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(j.progress, 5);
	CHECK_EQ(cio_chan_try_send(ch, &v), 0);
	CHECK_EQ(cio_chan_try_send(ch, &v), 0);
	CHECK_EQ(cio_chan_try_send(ch, &v), -EAGAIN);
	cio_chan_free(ch);
}

/* Rendezvous: a send completes only when a receiver takes the element. */
static void test_chan_rendezvous(void)
{
	cio_chan *ch = chan_make(sizeof(int), 0);
	int v = 5;
	CHECK_EQ(cio_chan_try_send(ch, &v), -EAGAIN); /* nobody receiving */
	CHECK_EQ(cio_chan_try_recv(ch, &v), -EAGAIN); /* nobody sending */

	struct chan_job j = {.ch = ch, .value = 42};
	cio_task_t t = cio_spawn(send_one, &j);
	settle();
	CHECK_EQ(j.progress, 0);   /* still waiting for a receiver */
	CHECK_EQ(cio_chan_len(ch), 0);
	CHECK_EQ(cio_chan_try_recv(ch, &v), 0);
	CHECK_EQ(v, 42);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(j.progress, 1);

	/* Receiver first: the send hands over at once. */
	struct chan_job r = {.ch = ch, .value = -1};
	t = cio_spawn(recv_one, &r);
	settle();
	v = 77;
	CHECK_EQ(cio_chan_try_send(ch, &v), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(r.value, 77);
	cio_chan_free(ch);
}

/* Close: waiting senders and receivers get -EPIPE, buffered elements still
 * drain, later calls fail at once. */
static void test_chan_close(void)
{
	/* Full bounded channel, two senders waiting. */
	cio_chan *ch = chan_make(sizeof(int), 2);
	int v = 1;
	CHECK_EQ(cio_chan_send(ch, &v), 0);
	v = 2;
	CHECK_EQ(cio_chan_send(ch, &v), 0);
	struct chan_job s1 = {.ch = ch, .value = 3}, s2 = {.ch = ch, .value = 4};
	cio_task_t t1 = cio_spawn(send_one, &s1), t2 = cio_spawn(send_one, &s2);
	settle();
	cio_chan_close(ch);
	cio_chan_close(ch); /* harmless */
	CHECK_EQ(join_rc(t1), -EPIPE);
	CHECK_EQ(join_rc(t2), -EPIPE);
	CHECK_EQ(cio_chan_len(ch), 2);
	CHECK_EQ(cio_chan_send(ch, &v), -EPIPE);
	CHECK_EQ(cio_chan_try_send(ch, &v), -EPIPE);
	CHECK_EQ(cio_chan_recv(ch, &v), 0);
	CHECK_EQ(v, 1);
	CHECK_EQ(cio_chan_try_recv(ch, &v), 0);
	CHECK_EQ(v, 2);
	int64_t t0 = cio_now();
	CHECK_EQ(cio_chan_recv(ch, &v), -EPIPE);   /* no hang */
	CHECK_EQ(cio_chan_try_recv(ch, &v), -EPIPE);
	CHECK(cio_now() - t0 < 500 * MS);
	cio_chan_free(ch);

	/* Empty channels of every kind, receivers waiting. */
	const size_t caps[] = {2, 0, CIO_CHAN_UNBOUNDED};
	for (size_t k = 0; k < 3; k++) {
		ch = chan_make(sizeof(int), caps[k]);
		struct chan_job r[3];
		cio_task_t t[3];
		for (int i = 0; i < 3; i++) {
			r[i] = (struct chan_job){.ch = ch, .value = -1};
			t[i] = cio_spawn(recv_one, &r[i]);
		}
		settle();
		cio_chan_close(ch);
		for (int i = 0; i < 3; i++) {
			CHECK_EQ(join_rc(t[i]), -EPIPE);
			CHECK_EQ(r[i].value, -1); /* untouched */
		}
		CHECK_EQ(cio_chan_send(ch, &v), -EPIPE);
		CHECK_EQ(cio_chan_recv(ch, &v), -EPIPE);
		cio_chan_free(ch);
	}

	/* Rendezvous with a sender waiting. */
	ch = chan_make(sizeof(int), 0);
	s1 = (struct chan_job){.ch = ch, .value = 9};
	t1 = cio_spawn(send_one, &s1);
	settle();
	cio_chan_close(ch);
	CHECK_EQ(join_rc(t1), -EPIPE);
	CHECK_EQ(cio_chan_try_recv(ch, &v), -EPIPE);
	cio_chan_free(ch);

	/* Unbounded, closed with elements in: they drain. */
	ch = chan_make(sizeof(int), CIO_CHAN_UNBOUNDED);
	for (int i = 0; i < 20; i++)
		CHECK_EQ(cio_chan_send(ch, &i), 0);
	cio_chan_close(ch);
	for (int i = 0; i < 20; i++) {
		CHECK_EQ(cio_chan_recv(ch, &v), 0);
		CHECK_EQ(v, i);
	}
	CHECK_EQ(cio_chan_recv(ch, &v), -EPIPE);
	cio_chan_free(ch);
}

static void test_chan_try(void)
{
	cio_chan *ch = chan_make(sizeof(int), 1);
	int v = 3;
	CHECK_EQ(cio_chan_try_recv(ch, &v), -EAGAIN);
	CHECK_EQ(v, 3);
	CHECK_EQ(cio_chan_try_send(ch, &v), 0);
	CHECK_EQ(cio_chan_try_send(ch, &v), -EAGAIN);
	CHECK_EQ(cio_chan_len(ch), 1);
	CHECK_EQ(cio_chan_try_recv(ch, &v), 0);
	CHECK_EQ(cio_chan_try_recv(ch, &v), -EAGAIN);
	cio_chan_free(ch);
}

/* Cancelled while waiting: nothing taken, nothing delivered. */
static void test_chan_cancel(void)
{
	/* A receiver cancelled while waiting takes nothing: the element sent
	 * afterwards stays for the next receiver. */
	const size_t caps[] = {2, 0, CIO_CHAN_UNBOUNDED};
	for (size_t k = 0; k < 3; k++) {
		cio_chan *ch = chan_make(sizeof(int), caps[k]);
		struct chan_job r = {.ch = ch, .value = -1};
		cio_task_t t = cio_spawn(recv_one, &r);
		settle();
		CHECK_EQ(cio_cancel(t), 0);
		CHECK_EQ(join_rc(t), -ECANCELED);
		CHECK_EQ(r.value, -1);
		if (caps[k] != 0) {
			int v = 8;
			CHECK_EQ(cio_chan_try_send(ch, &v), 0);
			CHECK_EQ(cio_chan_len(ch), 1);
			CHECK_EQ(cio_chan_recv(ch, &v), 0);
			CHECK_EQ(v, 8);
		} else {
			int v = 8;
			CHECK_EQ(cio_chan_try_send(ch, &v), -EAGAIN);
		}
		cio_chan_free(ch);
	}

	/* Cancelled and then, in the same tick, offered an element: the
	 * receiver is no longer parked, so the element must be buffered, not
	 * handed to a task that is about to return -ECANCELED. */
	cio_chan *ch = chan_make(sizeof(int), 4);
	struct chan_job r1 = {.ch = ch, .value = -1}, r2 = {.ch = ch, .value = -1};
	cio_task_t t1 = cio_spawn(recv_one, &r1), t2 = cio_spawn(recv_one, &r2);
	settle();
	CHECK_EQ(cio_cancel(t1), 0);
	int v = 11;
	CHECK_EQ(cio_chan_try_send(ch, &v), 0); /* skips t1, goes to t2 */
	v = 12;
	CHECK_EQ(cio_chan_try_send(ch, &v), 0); /* buffered */
	CHECK_EQ(join_rc(t1), -ECANCELED);
	CHECK_EQ(r1.value, -1);
	CHECK_EQ(join_rc(t2), 0);
	CHECK_EQ(r2.value, 11);
	CHECK_EQ(cio_chan_recv(ch, &v), 0);
	CHECK_EQ(v, 12);

	/* Cancelled, then the channel closes in the same tick: the call ends
	 * as cancelled; the close does not overwrite that. */
	r1 = (struct chan_job){.ch = ch, .value = -1};
	t1 = cio_spawn(recv_one, &r1);
	settle();
	CHECK_EQ(cio_cancel(t1), 0);
	cio_chan_close(ch);
	CHECK_EQ(join_rc(t1), -ECANCELED);
	cio_chan_free(ch);
	ch = chan_make(sizeof(int), 4);

	/* Handed an element, then cancelled in the same tick: the receive
	 * completed first and keeps its element. */
	r1 = (struct chan_job){.ch = ch, .value = -1};
	t1 = cio_spawn(recv_one, &r1);
	settle();
	v = 13;
	CHECK_EQ(cio_chan_try_send(ch, &v), 0);
	CHECK_EQ(cio_cancel(t1), 0);
	CHECK_EQ(join_rc(t1), 0);
	CHECK_EQ(r1.value, 13);
	CHECK_EQ(cio_chan_len(ch), 0);
	cio_chan_free(ch);

	/* A sender cancelled while the channel is full delivers nothing. */
	ch = chan_make(sizeof(int), 1);
	v = 1;
	CHECK_EQ(cio_chan_send(ch, &v), 0);
	struct chan_job s = {.ch = ch, .value = 2};
	cio_task_t t = cio_spawn(send_one, &s);
	settle();
	CHECK_EQ(cio_cancel(t), 0);
	CHECK_EQ(cio_chan_recv(ch, &v), 0); /* frees a slot in the same tick */
	CHECK_EQ(v, 1);
	CHECK_EQ(join_rc(t), -ECANCELED);
	CHECK_EQ(s.progress, 0);
	CHECK_EQ(cio_chan_len(ch), 0);
	CHECK_EQ(cio_chan_try_recv(ch, &v), -EAGAIN);
	cio_chan_free(ch);

	/* Rendezvous sender cancelled: no receiver gets its element. */
	ch = chan_make(sizeof(int), 0);
	s = (struct chan_job){.ch = ch, .value = 2};
	t = cio_spawn(send_one, &s);
	settle();
	CHECK_EQ(cio_cancel(t), 0);
	CHECK_EQ(cio_chan_try_recv(ch, &v), -EAGAIN);
	CHECK_EQ(join_rc(t), -ECANCELED);
	CHECK_EQ(cio_chan_try_recv(ch, &v), -EAGAIN);
	cio_chan_free(ch);

	/* A cancel already standing fails the call even when it could
	 * complete, and takes nothing. */
	ch = chan_make(sizeof(int), 2);
	v = 5;
	CHECK_EQ(cio_chan_send(ch, &v), 0);
	CHECK_EQ(cio_cancel(cio_self()), 0);
	CHECK_EQ(cio_chan_recv(ch, &v), -ECANCELED);
	CHECK_EQ(cio_chan_send(ch, &v), -ECANCELED);
	CHECK(cio_cancel_clear());
	CHECK_EQ(cio_chan_len(ch), 1);
	CHECK_EQ(cio_chan_recv(ch, &v), 0);
	CHECK_EQ(v, 5);
	cio_chan_free(ch);
}

/* Deadlines expire in each kind of wait, on time, losing nothing. */
static void test_chan_deadline(void)
{
	const int64_t want = 20 * MS;
	int v;
	/* recv on an empty channel, of each kind */
	const size_t caps[] = {2, 0, CIO_CHAN_UNBOUNDED};
	for (size_t k = 0; k < 3; k++) {
		cio_chan *ch = chan_make(sizeof(int), caps[k]);
		v = -1;
		int64_t t0 = cio_now();
		int64_t tok = cio_timeout_push(want);
		int rc = cio_chan_recv(ch, &v);
		int64_t took = cio_now() - t0;
		cio_deadline_pop(tok);
		CHECK_EQ(rc, -ETIMEDOUT);
		CHECK_EQ(v, -1);
		CHECK_TOOK(took, want);
		cio_chan_free(ch);
	}
	/* send on a full bounded channel and on a rendezvous channel */
	for (size_t k = 0; k < 2; k++) {
		cio_chan *ch = chan_make(sizeof(int), caps[k]);
		for (size_t i = 0; i < caps[k]; i++)
			CHECK_EQ(cio_chan_send(ch, &(int){(int)i}), 0);
		int64_t t0 = cio_now();
		int64_t tok = cio_timeout_push(want);
		int rc = cio_chan_send(ch, &(int){99});
		int64_t took = cio_now() - t0;
		cio_deadline_pop(tok);
		CHECK_EQ(rc, -ETIMEDOUT);
		CHECK_TOOK(took, want);
		CHECK_EQ(cio_chan_len(ch), caps[k]);
		for (size_t i = 0; i < caps[k]; i++) {
			CHECK_EQ(cio_chan_recv(ch, &v), 0);
			CHECK_EQ(v, (int)i);
		}
		CHECK_EQ(cio_chan_try_recv(ch, &v), -EAGAIN); /* 99 never went */
		cio_chan_free(ch);
	}
	/* A deadline already passed fails even a call that would not wait. */
	cio_chan *ch = chan_make(sizeof(int), 2);
	CHECK_EQ(cio_chan_send(ch, &(int){4}), 0);
	int64_t tok = cio_deadline_push(cio_now() - 1);
	CHECK_EQ(cio_chan_recv(ch, &v), -ETIMEDOUT);
	CHECK_EQ(cio_chan_send(ch, &v), -ETIMEDOUT);
	CHECK_EQ(cio_chan_try_recv(ch, &v), 0); /* try_* never wait */
	CHECK_EQ(v, 4);
	cio_deadline_pop(tok);
	cio_chan_free(ch);
}

/* ===================================================================== */
/* Oneshot                                                                */
/* ===================================================================== */

struct os_job {
	cio_oneshot *o;
	void *value;
};

static void *os_recv(void *arg)
{
	struct os_job *j = arg;
	return (void *)(intptr_t)cio_oneshot_recv(j->o, &j->value);
}

static void test_oneshot(void)
{
	int a, b;
	void *v = NULL;
	/* Send first, then receive; a second send or receive fails. */
	cio_oneshot o = CIO_ONESHOT_INIT(o);
	CHECK_EQ(cio_oneshot_send(&o, &a), 0);
	CHECK_EQ(cio_oneshot_send(&o, &b), -EPIPE);
	CHECK_EQ(cio_oneshot_recv(&o, &v), 0);
	CHECK(v == &a);
	CHECK_EQ(cio_oneshot_recv(&o, &v), -EPIPE);
	CHECK_EQ(cio_oneshot_send(&o, &b), -EPIPE);
	cio_oneshot_close(&o); /* after the value: harmless */

	/* Receiver waiting first; a second waiting receiver gets -EPIPE. */
	cio_oneshot_init(&o);
	struct os_job j1 = {&o, NULL}, j2 = {&o, NULL};
	cio_task_t t1 = cio_spawn(os_recv, &j1), t2 = cio_spawn(os_recv, &j2);
	settle();
	CHECK_EQ(cio_oneshot_send(&o, &b), 0);
	CHECK_EQ(join_rc(t1), 0);
	CHECK(j1.value == &b);
	CHECK_EQ(join_rc(t2), -EPIPE);
	CHECK(j2.value == NULL);

	/* Close with a receiver waiting, and before any receiver. */
	cio_oneshot_init(&o);
	t1 = cio_spawn(os_recv, &j1);
	settle();
	cio_oneshot_close(&o);
	cio_oneshot_close(&o);
	CHECK_EQ(join_rc(t1), -EPIPE);
	CHECK_EQ(cio_oneshot_send(&o, &a), -EPIPE);
	CHECK_EQ(cio_oneshot_recv(&o, &v), -EPIPE);

	/* Closed after the send: the value is still there. */
	cio_oneshot_init(&o);
	CHECK_EQ(cio_oneshot_send(&o, NULL), 0);
	cio_oneshot_close(&o);
	v = &a;
	CHECK_EQ(cio_oneshot_recv(&o, &v), 0);
	CHECK(v == NULL);

	/* Cancel and deadline: the value sent later is still receivable. */
	cio_oneshot_init(&o);
	j1.value = &a;
	t1 = cio_spawn(os_recv, &j1);
	settle();
	CHECK_EQ(cio_cancel(t1), 0);
	CHECK_EQ(cio_oneshot_send(&o, &b), 0); /* same tick: t1 not parked */
	CHECK_EQ(join_rc(t1), -ECANCELED);
	CHECK(j1.value == &a);
	CHECK_EQ(cio_oneshot_recv(&o, &v), 0);
	CHECK(v == &b);

	cio_oneshot_init(&o);
	int64_t t0 = cio_now();
	int64_t tok = cio_timeout_push(20 * MS);
	int rc = cio_oneshot_recv(&o, &v);
	int64_t took = cio_now() - t0;
	cio_deadline_pop(tok);
	CHECK_EQ(rc, -ETIMEDOUT);
	CHECK_TOOK(took, 20 * MS);
	CHECK_EQ(cio_oneshot_send(&o, &a), 0);
	CHECK_EQ(cio_oneshot_recv(&o, NULL), 0);
}

/* ===================================================================== */
/* Mutex                                                                  */
/* ===================================================================== */

struct mx_job {
	cio_mutex *m;
	int id;
	int *order, *norder;
	cio_sem *hold; /* the holder keeps the lock until this is released */
};

static void *mx_lock_record(void *arg)
{
	struct mx_job *j = arg;
	int rc = cio_mutex_lock(j->m);
	if (rc < 0)
		return (void *)(intptr_t)rc;
	j->order[(*j->norder)++] = j->id;
	cio_yield(); /* hold it across a tick: others must queue, not barge */
	CHECK_EQ(cio_mutex_unlock(j->m), 0);
	return NULL;
}

static void *mx_lock_only(void *arg)
{
	struct mx_job *j = arg;
	int rc = cio_mutex_lock(j->m);
	if (rc == 0)
		CHECK_EQ(cio_mutex_unlock(j->m), 0); /* even if cancelled since */
	return (void *)(intptr_t)rc;
}

static void *mx_hold(void *arg)
{
	struct mx_job *j = arg;
	CHECK_EQ(cio_mutex_lock(j->m), 0);
	CHECK_EQ(cio_sem_acquire(j->hold), 0);
	CHECK_EQ(cio_mutex_unlock(j->m), 0);
	return NULL;
}

static void *mx_unlock_foreign(void *arg)
{
	struct mx_job *j = arg;
	return (void *)(intptr_t)cio_mutex_unlock(j->m);
}

static void test_mutex(void)
{
	cio_mutex m = CIO_MUTEX_INIT(m);
	int order[8], norder = 0;

	CHECK_EQ(cio_mutex_unlock(&m), -EPERM);      /* not held */
	CHECK_EQ(cio_mutex_lock(&m), 0);
	CHECK_EQ(cio_mutex_lock(&m), -EDEADLK);
	CHECK_EQ(cio_mutex_trylock(&m), -EBUSY);
	struct mx_job f = {.m = &m};
	CHECK_EQ(join_rc(cio_spawn(mx_unlock_foreign, &f)), -EPERM);

	/* FIFO: waiters get the lock in the order they asked, and the
	 * unlocker cannot take it back before the first waiter runs. */
	struct mx_job j[5];
	cio_task_t t[5];
	for (int i = 0; i < 5; i++) {
		j[i] = (struct mx_job){.m = &m, .id = i, .order = order, .norder = &norder};
		t[i] = cio_spawn(mx_lock_record, &j[i]);
		CHECK_EQ(cio_yield(), 0); /* one at a time, in order */
	}
	CHECK_EQ(cio_mutex_unlock(&m), 0);
	CHECK_EQ(cio_mutex_trylock(&m), -EBUSY); /* handed to t[0] already */
	CHECK_EQ(cio_mutex_unlock(&m), -EPERM);
	for (int i = 0; i < 5; i++)
		CHECK_EQ(join_rc(t[i]), 0);
	CHECK_EQ(norder, 5);
	for (int i = 0; i < 5; i++)
		CHECK_EQ(order[i], i);
	CHECK_EQ(cio_mutex_trylock(&m), 0);
	CHECK_EQ(cio_mutex_unlock(&m), 0);

	/* Cancel a waiter: it never gets the lock; the next waiter does. */
	cio_mutex_init(&m);
	CHECK_EQ(cio_mutex_lock(&m), 0);
	struct mx_job a = {.m = &m}, b = {.m = &m};
	cio_task_t ta = cio_spawn(mx_lock_only, &a);
	settle();
	cio_task_t tb = cio_spawn(mx_lock_only, &b);
	settle();
	CHECK_EQ(cio_cancel(ta), 0);
	CHECK_EQ(cio_mutex_unlock(&m), 0); /* same tick: skips ta, gives tb */
	CHECK_EQ(cio_mutex_trylock(&m), -EBUSY);
	CHECK_EQ(join_rc(ta), -ECANCELED);
	CHECK_EQ(join_rc(tb), 0);
	CHECK_EQ(cio_mutex_trylock(&m), 0); /* tb unlocked; nobody owns it */

	/* Cancelled alone: the unlock leaves the mutex free. */
	ta = cio_spawn(mx_lock_only, &a);
	settle();
	CHECK_EQ(cio_cancel(ta), 0);
	CHECK_EQ(join_rc(ta), -ECANCELED);
	CHECK_EQ(cio_mutex_unlock(&m), 0);
	CHECK_EQ(cio_mutex_trylock(&m), 0);

	/* Handed the lock, then cancelled in the same tick: it owns it. */
	ta = cio_spawn(mx_lock_only, &a);
	settle();
	CHECK_EQ(cio_mutex_unlock(&m), 0);
	CHECK_EQ(cio_cancel(ta), 0);
	CHECK_EQ(join_rc(ta), 0);
	CHECK_EQ(cio_mutex_trylock(&m), 0);
	CHECK_EQ(cio_mutex_unlock(&m), 0);

	/* Deadline while another task holds it. */
	cio_sem hold = CIO_SEM_INIT(hold, 0);
	struct mx_job h = {.m = &m, .hold = &hold};
	cio_task_t th = cio_spawn(mx_hold, &h);
	settle();
	int64_t t0 = cio_now();
	int64_t tok = cio_timeout_push(20 * MS);
	int rc = cio_mutex_lock(&m);
	int64_t took = cio_now() - t0;
	cio_deadline_pop(tok);
	CHECK_EQ(rc, -ETIMEDOUT);
	CHECK_TOOK(took, 20 * MS);
	cio_sem_release(&hold);
	CHECK_EQ(join_rc(th), 0);
	CHECK_EQ(cio_mutex_trylock(&m), 0); /* free: the timed-out waiter left */
	CHECK_EQ(cio_mutex_unlock(&m), 0);
}

/* ===================================================================== */
/* Condition                                                              */
/* ===================================================================== */

struct cv_job {
	cio_cond *c;
	cio_mutex *m;
	int *ready;   /* the predicate */
	int *woken;   /* waiters that saw it */
	int rc;
	bool returned;
	bool held_after; /* it held m when cond_wait returned */
};

static void *cv_waiter(void *arg)
{
	struct cv_job *j = arg;
	CHECK_EQ(cio_mutex_lock(j->m), 0);
	while (!*j->ready) {
		int rc = cio_cond_wait(j->c, j->m);
		CHECK_EQ(rc, 0);
	}
	(*j->woken)++;
	CHECK_EQ(cio_mutex_unlock(j->m), 0);
	return NULL;
}

/* Waits once and reports how it ended and whether it held the mutex. */
static void *cv_wait_once(void *arg)
{
	struct cv_job *j = arg;
	CHECK_EQ(cio_mutex_lock(j->m), 0);
	j->rc = cio_cond_wait(j->c, j->m);
	j->returned = true;
	j->held_after = cio_mutex_trylock(j->m) == -EBUSY;
	j->held_after = j->held_after && cio_mutex_unlock(j->m) == 0;
	return NULL;
}

static void test_cond(void)
{
	cio_mutex m = CIO_MUTEX_INIT(m);
	cio_cond c = CIO_COND_INIT(c);
	int ready = 0, woken = 0;

	CHECK_EQ(cio_cond_wait(&c, &m), -EPERM); /* m not held */

	/* signal wakes one waiter, broadcast the rest. */
	struct cv_job j = {.c = &c, .m = &m, .ready = &ready, .woken = &woken};
	cio_task_t t[3];
	for (int i = 0; i < 3; i++)
		t[i] = cio_spawn(cv_waiter, &j);
	settle();
	CHECK_EQ(woken, 0);
	CHECK_EQ(cio_mutex_lock(&m), 0);
	ready = 1;
	cio_cond_signal(&c);
	CHECK_EQ(cio_mutex_unlock(&m), 0);
	settle();
	CHECK_EQ(woken, 1);
	cio_cond_broadcast(&c);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(join_rc(t[i]), 0);
	CHECK_EQ(woken, 3);

	/* A signal with nobody waiting is not remembered. */
	cio_cond_signal(&c);
	cio_cond_broadcast(&c);
	CHECK_EQ(cio_mutex_lock(&m), 0);
	int64_t t0 = cio_now();
	int64_t tok = cio_timeout_push(20 * MS);
	int rc = cio_cond_wait(&c, &m);
	int64_t took = cio_now() - t0;
	cio_deadline_pop(tok);
	CHECK_EQ(rc, -ETIMEDOUT);
	CHECK_TOOK(took, 20 * MS);
	CHECK_EQ(cio_mutex_unlock(&m), 0); /* re-locked despite the deadline */

	/* Cancelled while waiting: returns -ECANCELED holding the mutex, and
	 * the re-lock waits for the holder even though the cancel stands. */
	struct cv_job k = {.c = &c, .m = &m};
	cio_task_t tk = cio_spawn(cv_wait_once, &k);
	settle();
	CHECK_EQ(cio_mutex_lock(&m), 0);
	CHECK_EQ(cio_cancel(tk), 0);
	settle();
	CHECK(!k.returned); /* waiting for m, which we hold */
	CHECK_EQ(cio_mutex_unlock(&m), 0);
	CHECK_EQ(join_rc(tk), 0);
	CHECK(k.returned);
	CHECK_EQ(k.rc, -ECANCELED);
	CHECK(k.held_after);
	CHECK_EQ(cio_mutex_trylock(&m), 0);
	CHECK_EQ(cio_mutex_unlock(&m), 0);

	/* A cancelled waiter does not swallow a signal meant for the next. */
	struct cv_job k1 = {.c = &c, .m = &m}, k2 = {.c = &c, .m = &m};
	cio_task_t t1 = cio_spawn(cv_wait_once, &k1);
	cio_task_t t2 = cio_spawn(cv_wait_once, &k2);
	settle();
	CHECK_EQ(cio_cancel(t1), 0);
	cio_cond_signal(&c);
	CHECK_EQ(join_rc(t1), 0);
	CHECK_EQ(join_rc(t2), 0);
	CHECK_EQ(k1.rc, -ECANCELED);
	CHECK_EQ(k2.rc, 0);
	CHECK(k1.held_after && k2.held_after);

	/* Nor does a broadcast turn a cancelled wait into a success. */
	t1 = cio_spawn(cv_wait_once, &k1);
	t2 = cio_spawn(cv_wait_once, &k2);
	settle();
	CHECK_EQ(cio_cancel(t1), 0);
	cio_cond_broadcast(&c);
	CHECK_EQ(join_rc(t1), 0);
	CHECK_EQ(join_rc(t2), 0);
	CHECK_EQ(k1.rc, -ECANCELED);
	CHECK_EQ(k2.rc, 0);

	/* Cancel standing at the call: fails without releasing the mutex. */
	CHECK_EQ(cio_mutex_lock(&m), 0);
	CHECK_EQ(cio_cancel(cio_self()), 0);
	CHECK_EQ(cio_cond_wait(&c, &m), -ECANCELED);
	CHECK(cio_cancel_clear());
	CHECK_EQ(cio_mutex_unlock(&m), 0);
}

/* ===================================================================== */
/* Semaphore                                                              */
/* ===================================================================== */

struct sem_job {
	cio_sem *s;
	int id;
	int *order, *norder;
};

static void *sem_take(void *arg)
{
	struct sem_job *j = arg;
	int rc = cio_sem_acquire(j->s);
	if (rc == 0 && j->order)
		j->order[(*j->norder)++] = j->id;
	return (void *)(intptr_t)rc;
}

static void test_sem(void)
{
	cio_sem s = CIO_SEM_INIT(s, 3);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(cio_sem_try_acquire(&s), 0);
	CHECK_EQ(cio_sem_try_acquire(&s), -EAGAIN);
	cio_sem_release(&s);
	cio_sem_release(&s);
	CHECK_EQ(cio_sem_acquire(&s), 0);
	CHECK_EQ(cio_sem_acquire(&s), 0);
	CHECK_EQ(cio_sem_try_acquire(&s), -EAGAIN);

	/* Waiters are served FIFO, one per release. */
	int order[4], norder = 0;
	struct sem_job j[4];
	cio_task_t t[4];
	for (int i = 0; i < 4; i++) {
		j[i] = (struct sem_job){.s = &s, .id = i, .order = order, .norder = &norder};
		t[i] = cio_spawn(sem_take, &j[i]);
		CHECK_EQ(cio_yield(), 0);
	}
	settle();
	CHECK_EQ(norder, 0);
	cio_sem_release(&s);
	CHECK_EQ(cio_sem_try_acquire(&s), -EAGAIN); /* handed to t[0] */
	settle();
	CHECK_EQ(norder, 1);
	cio_sem_release(&s);
	cio_sem_release(&s);
	cio_sem_release(&s);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(join_rc(t[i]), 0);
		CHECK_EQ(order[i], i);
	}
	CHECK_EQ(cio_sem_try_acquire(&s), -EAGAIN);

	/* A cancelled waiter takes no unit; the release goes to the count. */
	cio_sem_init(&s, 0);
	struct sem_job c = {.s = &s};
	cio_task_t tc = cio_spawn(sem_take, &c);
	settle();
	CHECK_EQ(cio_cancel(tc), 0);
	cio_sem_release(&s); /* same tick: tc is leaving */
	CHECK_EQ(join_rc(tc), -ECANCELED);
	CHECK_EQ(cio_sem_try_acquire(&s), 0);
	CHECK_EQ(cio_sem_try_acquire(&s), -EAGAIN);

	/* Deadline. */
	int64_t t0 = cio_now();
	int64_t tok = cio_timeout_push(20 * MS);
	int rc = cio_sem_acquire(&s);
	int64_t took = cio_now() - t0;
	cio_deadline_pop(tok);
	CHECK_EQ(rc, -ETIMEDOUT);
	CHECK_TOOK(took, 20 * MS);
	cio_sem_release(&s);
	CHECK_EQ(cio_sem_try_acquire(&s), 0);
}

/* ===================================================================== */
/* Wait group                                                             */
/* ===================================================================== */

struct wg_job {
	cio_wg *wg;
	int delay_ms;
	int *done;
};

static void *wg_worker(void *arg)
{
	struct wg_job *j = arg;
	CHECK_EQ(cio_sleep(j->delay_ms * MS), 0);
	(*j->done)++;
	cio_wg_done(j->wg);
	return NULL;
}

static void *wg_waiter(void *arg)
{
	struct wg_job *j = arg;
	int rc = cio_wg_wait(j->wg);
	if (rc == 0)
		CHECK_EQ(*j->done, 100); /* woken only once all were done */
	return (void *)(intptr_t)rc;
}

static void test_wg(void)
{
	cio_wg wg = CIO_WG_INIT(wg);
	CHECK_EQ(cio_wg_wait(&wg), 0); /* zero: at once */

	int done = 0;
	struct wg_job jobs[100];
	cio_wg_add(&wg, 100);
	for (int i = 0; i < 100; i++) {
		jobs[i] = (struct wg_job){.wg = &wg, .delay_ms = i % 7, .done = &done};
		CHECK(cio_spawn_with(&(cio_spawn_opts){.detached = true}, wg_worker, &jobs[i]) > 0);
	}
	struct wg_job wj = {.wg = &wg, .done = &done};
	cio_task_t w[3];
	for (int i = 0; i < 3; i++)
		w[i] = cio_spawn(wg_waiter, &wj);
	CHECK_EQ(cio_wg_wait(&wg), 0);
	CHECK_EQ(done, 100);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(join_rc(w[i]), 0);

	/* Cancel and deadline; the group is unharmed. */
	cio_wg_add(&wg, 1);
	cio_task_t tc = cio_spawn(wg_waiter, &wj);
	settle();
	CHECK_EQ(cio_cancel(tc), 0);
	CHECK_EQ(join_rc(tc), -ECANCELED);
	int64_t t0 = cio_now();
	int64_t tok = cio_timeout_push(20 * MS);
	int rc = cio_wg_wait(&wg);
	int64_t took = cio_now() - t0;
	cio_deadline_pop(tok);
	CHECK_EQ(rc, -ETIMEDOUT);
	CHECK_TOOK(took, 20 * MS);
	cio_wg_done(&wg);
	CHECK_EQ(cio_wg_wait(&wg), 0);
}

/* ===================================================================== */
/* Select                                                                 */
/* ===================================================================== */

struct sel_job {
	cio_select_case *cases;
	size_t n;
	int rc;
};

static void *sel_run(void *arg)
{
	struct sel_job *j = arg;
	j->rc = cio_select(j->cases, j->n);
	return (void *)(intptr_t)j->rc;
}

static cio_select_case recv_case(cio_chan *ch, int *elem)
{
	return (cio_select_case){.op = CIO_SELECT_RECV, .chan = ch, .elem = elem, .result = 1};
}
static cio_select_case send_case(cio_chan *ch, int *elem)
{
	return (cio_select_case){.op = CIO_SELECT_SEND, .chan = ch, .elem = elem, .result = 1};
}
static cio_select_case timer_case(int64_t at)
{
	return (cio_select_case){.op = CIO_SELECT_TIMER, .deadline = at, .result = 1};
}

static void test_select_ready(void)
{
	cio_chan *a = chan_make(sizeof(int), 4), *b = chan_make(sizeof(int), 4);
	int x = -1, y = -1, v;

	/* Both ready: one case completes, alone; the other channel is
	 * untouched, and the next select takes it. */
	CHECK_EQ(cio_chan_send(a, &(int){1}), 0);
	CHECK_EQ(cio_chan_send(b, &(int){2}), 0);
	cio_select_case cs[] = {recv_case(a, &x), recv_case(b, &y)};
	int first = cio_select(cs, 2);
	CHECK(first == 0 || first == 1);
	CHECK_EQ(cs[first].result, 0);
	CHECK_EQ(first == 0 ? x : y, first == 0 ? 1 : 2);
	CHECK_EQ(first == 0 ? y : x, -1);
	CHECK_EQ(cio_chan_len(first == 0 ? b : a), 1);
	CHECK_EQ(cio_select(cs, 2), 1 - first); /* the other is the only one now */
	CHECK_EQ(x, 1);
	CHECK_EQ(y, 2);
	CHECK_EQ(cs[1 - first].result, 0);

	/* A send case ready while the recv case is not. */
	for (int i = 0; i < 4; i++)
		CHECK_EQ(cio_chan_send(a, &i), 0); /* a full */
	x = 50;
	cio_select_case cs2[] = {send_case(a, &x), recv_case(b, &y), send_case(b, &x)};
	CHECK_EQ(cio_select(cs2, 3), 2);
	CHECK_EQ(cio_chan_len(a), 4);
	CHECK_EQ(cio_chan_try_recv(b, &v), 0);
	CHECK_EQ(v, 50);

	/* Recv ready behind a blocked send. */
	CHECK_EQ(cio_chan_send(b, &(int){60}), 0);
	y = -1;
	cio_select_case cs3[] = {send_case(a, &x), recv_case(b, &y)};
	CHECK_EQ(cio_select(cs3, 2), 1);
	CHECK_EQ(y, 60);
	CHECK_EQ(cio_chan_len(a), 4);

	/* Timer already due; beside a ready channel, they take turns, and
	 * the channel's element waits for its turn. */
	cio_select_case cs4[] = {recv_case(b, &y), timer_case(cio_now() - 1)};
	CHECK_EQ(cio_select(cs4, 2), 1);
	CHECK_EQ(cs4[1].result, 0);
	CHECK_EQ(cio_chan_send(b, &(int){61}), 0);
	int got = 0;
	for (int i = 0; i < 2; i++) {
		int w = cio_select(cs4, 2);
		CHECK(w == 0 || w == 1);
		got |= 1 << w;
		CHECK_EQ(cio_chan_len(b), w == 0 ? 0 : 1); /* the timer took nothing */
		if (w == 0)
			CHECK_EQ(y, 61);
		if (w == 0)
			CHECK_EQ(cio_chan_send(b, &(int){61}), 0);
	}
	CHECK_EQ(got, 3); /* each won once in two turns */
	CHECK_EQ(cio_chan_try_recv(b, &y), 0);

	/* Ready cases take turns: over 1000 selects, each of three always
	 * ready wins a third. */
	cio_chan *r3[3];
	int v3[3], wins[3] = {0, 0, 0};
	for (int i = 0; i < 3; i++)
		r3[i] = chan_make(sizeof(int), 4);
	cio_select_case cs7[] = {recv_case(r3[0], &v3[0]), recv_case(r3[1], &v3[1]),
				 recv_case(r3[2], &v3[2])};
	for (int i = 0; i < 3; i++)
		CHECK_EQ(cio_chan_send(r3[i], &i), 0);
	for (int k = 0; k < 999; k++) {
		int w = cio_select(cs7, 3);
		CHECK(w >= 0 && w < 3);
		wins[w]++;
		CHECK_EQ(cio_chan_send(r3[w], &w), 0); /* ready again */
	}
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(wins[i], 333);
		cio_chan_free(r3[i]);
	}

	/* Closed channels complete at once with -EPIPE. */
	cio_chan *c = chan_make(sizeof(int), 1);
	cio_chan_close(c);
	cio_select_case cs5[] = {recv_case(b, &y), recv_case(c, &y)};
	CHECK_EQ(cio_select(cs5, 2), 1);
	CHECK_EQ(cs5[1].result, -EPIPE);
	cio_select_case cs6[] = {recv_case(b, &y), send_case(c, &x)};
	CHECK_EQ(cio_select(cs6, 2), 1);
	CHECK_EQ(cs6[1].result, -EPIPE);

	/* Bad calls. */
	CHECK_EQ(cio_select(cs, 0), -EINVAL);
	cio_select_case bad[] = {recv_case(NULL, &y)};
	CHECK_EQ(cio_select(bad, 1), -EINVAL);
	bad[0] = recv_case(b, NULL);
	CHECK_EQ(cio_select(bad, 1), -EINVAL);
	bad[0].op = (enum cio_select_op)42;
	CHECK_EQ(cio_select(bad, 1), -EINVAL);

	while (cio_chan_try_recv(a, &v) == 0)
		;
	cio_chan_free(a);
	cio_chan_free(b);
	cio_chan_free(c);
}

static void test_select_wait(void)
{
	cio_chan *a = chan_make(sizeof(int), 4), *b = chan_make(sizeof(int), 4);
	int x = -1, y = -1, v;

	/* Woken by the second channel; the first keeps what comes later. */
	cio_select_case cs[] = {recv_case(a, &x), recv_case(b, &y)};
	struct sel_job j = {cs, 2, 0};
	cio_task_t t = cio_spawn(sel_run, &j);
	settle();
	CHECK_EQ(cio_chan_send(b, &(int){7}), 0);
	CHECK_EQ(join_rc(t), 1);
	CHECK_EQ(y, 7);
	CHECK_EQ(x, -1);
	CHECK_EQ(cs[1].result, 0);
	CHECK_EQ(cio_chan_send(a, &(int){8}), 0);
	CHECK_EQ(cio_chan_len(a), 1); /* no stale waiter took it */
	CHECK_EQ(cio_chan_recv(a, &v), 0);

	/* Two sends in one tick: the first wins the select, the second must
	 * stay in its channel. */
	x = y = -1;
	t = cio_spawn(sel_run, &j);
	settle();
	CHECK_EQ(cio_chan_try_send(a, &(int){21}), 0);
	CHECK_EQ(cio_chan_try_send(b, &(int){22}), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(x, 21);
	CHECK_EQ(y, -1);
	CHECK_EQ(cio_chan_len(a), 0);
	CHECK_EQ(cio_chan_len(b), 1);
	CHECK_EQ(cio_chan_recv(b, &v), 0);
	CHECK_EQ(v, 22);

	/* Woken by a close: that case's index, .result = -EPIPE. */
	t = cio_spawn(sel_run, &j);
	settle();
	cio_chan_close(b);
	CHECK_EQ(join_rc(t), 1);
	CHECK_EQ(cs[1].result, -EPIPE);
	cio_chan_free(b);
	b = chan_make(sizeof(int), 1);

	/* A waiting send case completes when a receiver makes room; the
	 * other (send) case's channel does not get its element. */
	CHECK_EQ(cio_chan_send(b, &(int){30}), 0); /* b full */
	for (int i = 0; i < 4; i++)
		CHECK_EQ(cio_chan_send(a, &i), 0); /* a full */
	int sa = 40, sb = 41;
	cio_select_case cs2[] = {send_case(a, &sa), send_case(b, &sb)};
	struct sel_job j2 = {cs2, 2, 0};
	t = cio_spawn(sel_run, &j2);
	settle();
	CHECK_EQ(cio_chan_recv(b, &v), 0);
	CHECK_EQ(v, 30);
	CHECK_EQ(cio_chan_recv(a, &v), 0); /* same tick: a gets nothing */
	CHECK_EQ(v, 0);
	CHECK_EQ(join_rc(t), 1);
	CHECK_EQ(cio_chan_len(a), 3);
	CHECK_EQ(cio_chan_recv(b, &v), 0);
	CHECK_EQ(v, 41);
	for (int i = 1; i < 4; i++) {
		CHECK_EQ(cio_chan_recv(a, &v), 0);
		CHECK_EQ(v, i);
	}

	/* Rendezvous send case, taken by a receiver. */
	cio_chan *r = chan_make(sizeof(int), 0);
	int sr = 55;
	cio_select_case cs3[] = {recv_case(a, &x), send_case(r, &sr)};
	struct sel_job j3 = {cs3, 2, 0};
	t = cio_spawn(sel_run, &j3);
	settle();
	CHECK_EQ(cio_chan_recv(r, &v), 0);
	CHECK_EQ(v, 55);
	CHECK_EQ(join_rc(t), 1);

	/* And a rendezvous receive case fed by a plain send. */
	x = -1;
	cio_select_case cs4[] = {recv_case(r, &x), recv_case(a, &y)};
	struct sel_job j4 = {cs4, 2, 0};
	t = cio_spawn(sel_run, &j4);
	settle();
	CHECK_EQ(cio_chan_send(r, &(int){56}), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(x, 56);

	/* More cases than fit on the stack. */
	cio_chan *many[20];
	cio_select_case mc[20];
	int mv[20];
	for (int i = 0; i < 20; i++) {
		many[i] = chan_make(sizeof(int), 1);
		mv[i] = -1;
		mc[i] = recv_case(many[i], &mv[i]);
	}
	struct sel_job jm = {mc, 20, 0};
	t = cio_spawn(sel_run, &jm);
	settle();
	CHECK_EQ(cio_chan_send(many[17], &(int){17}), 0);
	CHECK_EQ(cio_chan_send(many[3], &(int){3}), 0);
	CHECK_EQ(join_rc(t), 17);
	CHECK_EQ(mv[17], 17);
	CHECK_EQ(mv[3], -1);
	CHECK_EQ(cio_chan_len(many[3]), 1);
	CHECK_EQ(cio_chan_recv(many[3], &v), 0);
	for (int i = 0; i < 20; i++)
		cio_chan_free(many[i]);

	cio_chan_free(a);
	cio_chan_free(b);
	cio_chan_free(r);
}

static void test_select_timers(void)
{
	cio_chan *a = chan_make(sizeof(int), 1);
	int x = -1;

	/* The timer fires; the channel is left as it was. */
	int64_t t0 = cio_now();
	cio_select_case cs[] = {recv_case(a, &x), timer_case(t0 + 20 * MS)};
	CHECK_EQ(cio_select(cs, 2), 1);
	CHECK_TOOK(cio_now() - t0, 20 * MS);
	CHECK_EQ(cs[1].result, 0);
	CHECK_EQ(x, -1);
	CHECK_EQ(cio_chan_send(a, &(int){1}), 0);
	CHECK_EQ(cio_chan_len(a), 1);
	CHECK_EQ(cio_chan_recv(a, &x), 0);

	/* The earliest of several timers wins, wherever it is. */
	t0 = cio_now();
	cio_select_case ts[] = {timer_case(t0 + 2000 * MS), timer_case(CIO_NEVER),
				 timer_case(t0 + 15 * MS), recv_case(a, &x)};
	CHECK_EQ(cio_select(ts, 4), 2);
	CHECK_TOOK(cio_now() - t0, 15 * MS);
	/* Timers due together: one of them, whichever the runtime's turn
	 * reaches first (position gives no priority, and the turn depends on
	 * the selects made before in this runtime). */
	t0 = cio_now();
	cio_select_case tt[] = {recv_case(a, &x), timer_case(t0 + 15 * MS),
				 timer_case(t0 + 15 * MS)};
	int due = cio_select(tt, 3);
	CHECK(due == 1 || due == 2);

	/* A channel that becomes ready first beats the timer. */
	struct sel_job j = {cs, 2, 0};
	cs[1] = timer_case(cio_now() + 5000 * MS);
	x = -1;
	cio_task_t t = cio_spawn(sel_run, &j);
	CHECK_EQ(cio_sleep(5 * MS), 0);
	CHECK_EQ(cio_chan_send(a, &(int){9}), 0);
	t0 = cio_now();
	CHECK_EQ(join_rc(t), 0);
	CHECK(cio_now() - t0 < 1000 * MS); /* the timer was disarmed, not waited */
	CHECK_EQ(x, 9);

	/* The task deadline before the TIMER case: -ETIMEDOUT; after: the
	 * TIMER case. */
	t0 = cio_now();
	int64_t tok = cio_deadline_push(t0 + 20 * MS);
	cs[1] = timer_case(t0 + 3000 * MS);
	CHECK_EQ(cio_select(cs, 2), -ETIMEDOUT);
	CHECK_TOOK(cio_now() - t0, 20 * MS);
	cio_deadline_pop(tok);
	t0 = cio_now();
	tok = cio_deadline_push(t0 + 3000 * MS);
	cs[1] = timer_case(t0 + 20 * MS);
	CHECK_EQ(cio_select(cs, 2), 1);
	CHECK_TOOK(cio_now() - t0, 20 * MS);
	cio_deadline_pop(tok);

	/* Only a never-firing timer and a deadline: -ETIMEDOUT. */
	t0 = cio_now();
	tok = cio_timeout_push(20 * MS);
	cio_select_case nv[] = {timer_case(CIO_NEVER)};
	CHECK_EQ(cio_select(nv, 1), -ETIMEDOUT);
	CHECK_TOOK(cio_now() - t0, 20 * MS);
	cio_deadline_pop(tok);

	cio_chan_free(a);
}

/* Cancelling a select (with a timer armed) takes nothing from any of its
 * channels, sends nothing, and leaves no waiter behind. */
static void test_select_cancel(void)
{
	cio_chan *a = chan_make(sizeof(int), 2), *b = chan_make(sizeof(int), 1);
	int x = -1, sb = 77, v;
	CHECK_EQ(cio_chan_send(b, &(int){1}), 0); /* b full */
	cio_select_case cs[] = {recv_case(a, &x), send_case(b, &sb),
				timer_case(cio_now() + 5000 * MS)};
	struct sel_job j = {cs, 3, 0};
	cio_task_t t = cio_spawn(sel_run, &j);
	settle();
	int64_t t0 = cio_now();
	CHECK_EQ(cio_cancel(t), 0);
	/* Same tick: both channels become ready for the cancelled select. */
	CHECK_EQ(cio_chan_try_send(a, &(int){5}), 0);
	CHECK_EQ(cio_chan_try_recv(b, &v), 0);
	CHECK_EQ(v, 1);
	CHECK_EQ(join_rc(t), -ECANCELED);
	CHECK(cio_now() - t0 < 1000 * MS);
	CHECK_EQ(x, -1);
	CHECK_EQ(cio_chan_len(a), 1);
	CHECK_EQ(cio_chan_len(b), 0); /* 77 was not sent */
	CHECK_EQ(cio_chan_recv(a, &v), 0);
	CHECK_EQ(v, 5);
	/* No waiter left behind: free would abort otherwise. */
	cio_chan_free(a);
	cio_chan_free(b);
}

/* --- select over fds, cross-core channels, tasks and groups ----------- */

static cio_select_case fd_case(enum cio_select_op op, int fd)
{
	return (cio_select_case){.op = op, .fd = fd, .result = 1};
}

static uint64_t tasks_live(void)
{
	cio_stats st;
	cio_stats_get(&st);
	return st.tasks_live;
}

static void *sleep_then(void *arg)
{
	CHECK_EQ(cio_sleep(20 * MS), 0);
	return arg;
}

static int group_member_sleep(void *arg)
{
	return cio_sleep((intptr_t)arg * MS);
}

static int group_member_fail(void *arg)
{
	int rc = cio_sleep((intptr_t)arg * MS);
	return rc < 0 ? rc : -EIO;
}

static void test_select_fds(void)
{
	int sv[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, sv), 0);
	cio_chan *a = chan_make(sizeof(int), 1);
	int x = -1;
	uint64_t live = tasks_live();

	/* Writable at once, at the first look. */
	cio_select_case w[] = {recv_case(a, &x), fd_case(CIO_SELECT_WRITABLE, sv[0])};
	CHECK_EQ(cio_select(w, 2), 1);
	CHECK(w[1].result & POLLOUT);

	/* Readable by waiting; the byte stays for the reader. */
	cio_select_case cs[] = {recv_case(a, &x), fd_case(CIO_SELECT_READABLE, sv[0])};
	struct sel_job j = {cs, 2, 0};
	cio_task_t t = cio_spawn(sel_run, &j);
	settle();
	CHECK_EQ(tasks_live(), live + 2); /* the select and its watcher */
	CHECK_EQ(cio_send(sv[1], "z", 1, 0), 1);
	CHECK_EQ(join_rc(t), 1);
	CHECK(cs[1].result & POLLIN);
	CHECK_EQ(tasks_live(), live); /* the watcher ended with the select */
	char c;
	CHECK_EQ(cio_recv(sv[0], &c, 1, 0), 1);
	CHECK_EQ(c, 'z');

	/* A channel wins: the watcher is cancelled and waited for. */
	t = cio_spawn(sel_run, &j);
	settle();
	CHECK_EQ(cio_chan_send(a, &(int){3}), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(x, 3);
	CHECK_EQ(tasks_live(), live);

	/* Ready fds take turns with ready channels: none starves. */
	CHECK_EQ(cio_send(sv[1], "y", 1, 0), 1);
	int wins[2] = {0, 0};
	for (int i = 0; i < 100; i++) {
		CHECK_EQ(cio_chan_send(a, &i), 0);
		int k = cio_select(cs, 2);
		CHECK(k == 0 || k == 1);
		wins[k]++;
		if (k == 1)
			CHECK_EQ(cio_chan_recv(a, &x), 0);
	}
	CHECK_EQ(wins[0], 50);
	CHECK_EQ(wins[1], 50);
	CHECK_EQ(cio_recv(sv[0], &c, 1, 0), 1);

	/* The peer's close: readable, with POLLHUP on a socket pair. */
	CHECK_EQ(cio_shutdown(sv[1], SHUT_WR), 0);
	t = cio_spawn(sel_run, &j);
	CHECK_EQ(join_rc(t), 1);
	CHECK(cs[1].result & POLLIN);

	/* A bad fd completes at once with -EBADF. */
	cio_select_case bad[] = {recv_case(a, &x), fd_case(CIO_SELECT_READABLE, -1)};
	CHECK_EQ(cio_select(bad, 2), 1);
	CHECK_EQ(bad[1].result, -EBADF);
	int spare = dup(sv[0]);
	CHECK(spare >= 0 && close(spare) == 0);
	bad[1].fd = spare;
	CHECK_EQ(cio_select(bad, 2), 1);
	CHECK_EQ(bad[1].result, -EBADF);

	/* Deadlines and cancels end a select waiting on an fd, many times
	 * over, and leave no watcher behind. */
	int quiet[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, quiet), 0);
	cio_select_case q[] = {fd_case(CIO_SELECT_READABLE, quiet[0]),
			       fd_case(CIO_SELECT_READABLE, quiet[1])};
	for (int i = 0; i < 200; i++) {
		int rc;
		CIO_WITH_TIMEOUT(i % 3 * 100000) rc = cio_select(q, 2);
		CHECK_EQ(rc, -ETIMEDOUT);
	}
	struct sel_job jq = {q, 2, 0};
	for (int i = 0; i < 50; i++) {
		t = cio_spawn(sel_run, &jq);
		if (i % 2)
			settle();
		CHECK_EQ(cio_cancel(t), 0);
		CHECK_EQ(join_rc(t), -ECANCELED);
	}
	CHECK_EQ(tasks_live(), live);
	/* A close under the wait ends it with the fd's error. */
	cio_select_case q1[] = {recv_case(a, &x), fd_case(CIO_SELECT_READABLE, quiet[0])};
	struct sel_job j1 = {q1, 2, 0};
	t = cio_spawn(sel_run, &j1);
	settle();
	CHECK_EQ(cio_close(quiet[0]), 0);
	CHECK_EQ(join_rc(t), 1);
	CHECK_EQ(q1[1].result, -EBADF);
	CHECK_EQ(cio_close(quiet[1]), 0);
	CHECK_EQ(cio_close(sv[0]), 0);
	CHECK_EQ(cio_close(sv[1]), 0);
	cio_chan_free(a);
}

static void test_select_tasks(void)
{
	cio_chan *a = chan_make(sizeof(int), 1);
	int x;
	void *res = NULL;

	/* A task's end: joined, with its result. */
	cio_task_t t = cio_spawn(sleep_then, (void *)42);
	cio_select_case cs[] = {recv_case(a, &x), {.op = CIO_SELECT_JOIN, .task = t, .elem = &res}};
	CHECK_EQ(cio_select(cs, 2), 1);
	CHECK_EQ(cs[1].result, 0);
	CHECK_EQ((intptr_t)res, 42);
	CHECK_EQ(cio_join(t, NULL), -ESRCH); /* spent */

	/* Ended already: at once.  No such task: -ESRCH at once. */
	t = cio_spawn(sleep_then, (void *)43);
	CHECK_EQ(cio_sleep(40 * MS), 0);
	cs[1].task = t;
	CHECK_EQ(cio_select(cs, 2), 1);
	CHECK_EQ((intptr_t)res, 43);
	CHECK_EQ(cio_select(cs, 2), 1);
	CHECK_EQ(cs[1].result, -ESRCH);
	cs[1].task = cio_self();
	CHECK_EQ(cio_select(cs, 2), 1);
	CHECK_EQ(cs[1].result, -EDEADLK);

	/* Another case wins: the task is not joined, and cio_join() can. */
	t = cio_spawn(sleep_then, (void *)44);
	cs[1].task = t;
	CHECK_EQ(cio_chan_send(a, &(int){9}), 0);
	CHECK_EQ(cio_select(cs, 2), 0);
	CHECK_EQ(cio_join(t, &res), 0);
	CHECK_EQ((intptr_t)res, 44);

	/* A group's end: closed, with the first error; a losing group case
	 * leaves the group as it was. */
	cio_group *g;
	CHECK_EQ(cio_group_new(&g, NULL), 0);
	CHECK_EQ(cio_group_spawn(g, group_member_sleep, (void *)(intptr_t)10), 0);
	CHECK_EQ(cio_group_spawn(g, group_member_fail, (void *)(intptr_t)20), 1);
	cio_select_case gs[] = {timer_case(cio_now() + 5 * MS),
				{.op = CIO_SELECT_GROUP, .group = g, .result = 1}};
	CHECK_EQ(cio_select(gs, 2), 0);
	CHECK_EQ(cio_group_status(g, 1), -EINPROGRESS);
	gs[0] = timer_case(cio_now() + 5000 * MS);
	CHECK_EQ(cio_select(gs, 2), 1);
	CHECK_EQ(gs[1].result, -EIO);
	CHECK_EQ(cio_group_spawn(g, group_member_sleep, NULL), -EPIPE);
	cio_group_free(g);

	/* A group case of a select interrupted cancels no member. */
	CHECK_EQ(cio_group_new(&g, NULL), 0);
	CHECK_EQ(cio_group_spawn(g, group_member_sleep, (void *)(intptr_t)30), 0);
	gs[0] = recv_case(a, &x);
	gs[1].group = g;
	int rc;
	CIO_WITH_TIMEOUT(5 * MS) rc = cio_select(gs, 2);
	CHECK_EQ(rc, -ETIMEDOUT);
	CHECK_EQ(cio_group_wait(g), 0);
	CHECK_EQ(cio_group_status(g, 0), 0);
	cio_group_free(g);
	cio_chan_free(a);
}

/* A plain thread on the other end of cross-core channels. */
struct xpeer {
	cio_xchan *in, *out;
	int sent, got;
};

static void *xpeer_main(void *arg)
{
	struct xpeer *p = arg;
	usleep(20000);
	CHECK_EQ(cio_xchan_try_send(p->in, &p->sent), 0);
	usleep(20000);
	while (cio_xchan_try_recv(p->out, &p->got) == -EAGAIN)
		usleep(1000);
	return NULL;
}

static void test_select_xchan(void)
{
	cio_chan *a = chan_make(sizeof(int), 1);
	struct xpeer p = {.sent = 1234};
	CHECK_EQ(cio_xchan_new(&p.in, sizeof(int), 1), 0);
	CHECK_EQ(cio_xchan_new(&p.out, sizeof(int), 1), 0);
	int x = -1, y = -1, z = 99, full = 0;
	CHECK_EQ(cio_xchan_try_send(p.out, &full), 0); /* out full */

	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, xpeer_main, &p), 0);
	cio_select_case cs[] = {recv_case(a, &x),
				{.op = CIO_SELECT_XRECV, .xchan = p.in, .elem = &y},
				{.op = CIO_SELECT_XSEND, .xchan = p.out, .elem = &z}};
	/* The other thread sends first, then takes the element that makes
	 * room. */
	CHECK_EQ(cio_select(cs, 3), 1);
	CHECK_EQ(y, 1234);
	CHECK_EQ(cio_select(cs, 3), 2);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(p.got, 0);
	int v;
	CHECK_EQ(cio_xchan_try_recv(p.out, &v), 0);
	CHECK_EQ(v, 99);

	/* Cancelled while armed: nothing taken, nothing sent. */
	struct sel_job j = {cs, 3, 0};
	CHECK_EQ(cio_xchan_try_send(p.out, &full), 0);
	cio_task_t t = cio_spawn(sel_run, &j);
	settle();
	CHECK_EQ(cio_cancel(t), 0);
	CHECK_EQ(cio_xchan_try_send(p.in, &(int){5}), 0);
	CHECK_EQ(join_rc(t), -ECANCELED);
	CHECK_EQ(cio_xchan_try_recv(p.in, &v), 0);
	CHECK_EQ(v, 5);
	CHECK_EQ(cio_xchan_try_recv(p.out, &v), 0);
	CHECK_EQ(v, 0);

	/* Closed: -EPIPE at once, for either side. */
	cio_xchan_close(p.in);
	CHECK_EQ(cio_select(cs, 2), 1);
	CHECK_EQ(cs[1].result, -EPIPE);
	cio_xchan_free(p.in);
	cio_xchan_free(p.out);
	cio_chan_free(a);
}

/* Every kind of case ready at once: each wins in turn. */
static void test_select_all_ready(void)
{
	cio_chan *a = chan_make(sizeof(int), 1);
	cio_xchan *xa;
	CHECK_EQ(cio_xchan_new(&xa, sizeof(int), 1), 0);
	int sv[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, sv), 0);
	int x, y;
	void *res;
	bool won[7] = {false};
	for (int round = 0; round < 7; round++) {
		cio_chan_try_send(a, &round);
		cio_xchan_try_send(xa, &round);
		cio_group *g;
		CHECK_EQ(cio_group_new(&g, NULL), 0);
		cio_task_t t = cio_spawn(sleep_then, NULL);
		CHECK_EQ(cio_join(cio_spawn(sleep_then, NULL), NULL), 0); /* t has ended too */
		cio_select_case cs[] = {
			recv_case(a, &x),
			{.op = CIO_SELECT_XRECV, .xchan = xa, .elem = &y},
			timer_case(0),
			fd_case(CIO_SELECT_WRITABLE, sv[0]),
			{.op = CIO_SELECT_JOIN, .task = t, .elem = &res},
			{.op = CIO_SELECT_GROUP, .group = g},
			{.op = CIO_SELECT_TIMER, .deadline = cio_now() - 1},
		};
		int k = cio_select(cs, 7);
		CHECK(k >= 0 && k < 7);
		CHECK_EQ(cs[k].result, k == 3 ? cs[3].result : 0);
		won[k] = true;
		if (k != 4)
			CHECK_EQ(cio_join(t, NULL), 0);
		if (k != 5)
			CHECK_EQ(cio_group_wait(g), 0);
		cio_group_free(g);
	}
	for (int i = 0; i < 7; i++)
		CHECK(won[i]);
	cio_chan_try_recv(a, &x);
	cio_xchan_try_recv(xa, &y);
	CHECK_EQ(cio_close(sv[0]), 0);
	CHECK_EQ(cio_close(sv[1]), 0);
	cio_xchan_free(xa);
	cio_chan_free(a);
}

/* ===================================================================== */
/* Programming errors abort with a message                                */
/* ===================================================================== */

/* Runs fn in a child process; checks that it aborts and that its stderr
 * contains `want`. */
static void expect_abort(void (*fn)(void), const char *want)
{
	int p[2];
	CHECK_EQ(pipe(p), 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		fn();
		_exit(0); /* did not abort */
	}
	close(p[1]);
	char buf[512];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof buf - 1 && (n = read(p[0], buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = 0;
	close(p[0]);
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
	if (!strstr(buf, want)) {
		fprintf(stderr, "expected \"%s\" in: %s\n", want, buf);
		CHECK(0);
	}
}

static void wg_underflow(void)
{
	cio_wg wg;
	cio_wg_init(&wg);
	cio_wg_add(&wg, 1);
	cio_wg_done(&wg);
	cio_wg_done(&wg);
}

static void recv_outside(void)
{
	cio_chan *ch = chan_make(sizeof(int), 1);
	int v;
	cio_chan_recv(ch, &v);
}

static void lock_outside(void)
{
	cio_mutex m = CIO_MUTEX_INIT(m);
	cio_mutex_lock(&m);
}

static void select_outside(void)
{
	cio_select_case c = timer_case(0);
	cio_select(&c, 1);
}

static void test_aborts(void)
{
	expect_abort(wg_underflow, "cio_wg_done");
	expect_abort(recv_outside, "cio_chan_recv");
	expect_abort(lock_outside, "cio_mutex_lock");
	expect_abort(select_outside, "cio_select");
	/* Non-blocking calls need no task. */
	cio_mutex m = CIO_MUTEX_INIT(m);
	CHECK_EQ(cio_mutex_unlock(&m), -EPERM);
	cio_sem s = CIO_SEM_INIT(s, 0);
	cio_sem_release(&s);
	CHECK_EQ(cio_sem_try_acquire(&s), 0);
}

static void *test_main(void *arg)
{
	(void)arg;
	TEST_CASE(chan_fifo, test_chan_fifo());
	TEST_CASE(chan_receivers_fifo, test_chan_receivers_fifo());
	TEST_CASE(chan_backpressure, test_chan_backpressure());
	TEST_CASE(chan_rendezvous, test_chan_rendezvous());
	TEST_CASE(chan_close, test_chan_close());
	TEST_CASE(chan_try, test_chan_try());
	TEST_CASE(chan_cancel, test_chan_cancel());
	TEST_CASE(chan_deadline, test_chan_deadline());
	TEST_CASE(oneshot, test_oneshot());
	TEST_CASE(mutex, test_mutex());
	TEST_CASE(cond, test_cond());
	TEST_CASE(sem, test_sem());
	TEST_CASE(wg, test_wg());
	TEST_CASE(select_ready, test_select_ready());
	TEST_CASE(select_wait, test_select_wait());
	TEST_CASE(select_timers, test_select_timers());
	TEST_CASE(select_cancel, test_select_cancel());
	TEST_CASE(select_fds, test_select_fds());
	TEST_CASE(select_tasks, test_select_tasks());
	TEST_CASE(select_xchan, test_select_xchan());
	TEST_CASE(select_all_ready, test_select_all_ready());
	return NULL;
}

/* A select that waits for a channel or the drain, whichever first. */
static int drain_sel_rc[3];
static void *waits_for_drain(void *arg)
{
	cio_chan *ch = arg;
	int v;
	cio_select_case cs[] = {
		{.op = CIO_SELECT_RECV, .chan = ch, .elem = &v},
		{.op = CIO_SELECT_DRAIN},
	};
	drain_sel_rc[0] = cio_select(cs, 2);
	drain_sel_rc[1] = cs[1].result;
	drain_sel_rc[2] = cio_select(cs, 2); /* it lasts: at once again */
	return NULL;
}

static void *drain_select_main(void *arg)
{
	(void)arg;
	cio_chan *ch = chan_make(sizeof(int), 1);
	/* Before a drain, the channel case wins. */
	int v = 7, got = 0;
	cio_select_case cs[] = {
		{.op = CIO_SELECT_RECV, .chan = ch, .elem = &got},
		{.op = CIO_SELECT_DRAIN},
	};
	CHECK_EQ(cio_chan_send(ch, &v), 0);
	CHECK_EQ(cio_select(cs, 2), 0);
	CHECK_EQ(got, 7);
	cio_task_t t = cio_spawn(waits_for_drain, ch);
	CHECK_EQ(cio_sleep(10 * MS), 0);
	CHECK_EQ(drain_sel_rc[0], 0); /* still waiting: nothing happened */
	CHECK_EQ(cio_drain(), 0);
	CHECK_EQ(cio_join(t, NULL), 0);
	CHECK_EQ(drain_sel_rc[0], 1);
	CHECK_EQ(drain_sel_rc[1], 0);
	CHECK_EQ(drain_sel_rc[2], 1);
	cio_chan_free(ch);
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_run(test_main, NULL);
	if (rc != 0)
		return rc;
	TEST_CASE(aborts, test_aborts());
	TEST_CASE(drain_select, {
		cio_config cfg = test_backend_config();
		CHECK_EQ(cio_run_with(&cfg, drain_select_main, NULL), 0);
	});
	return test_cases_end();
}
