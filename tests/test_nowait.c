/* test_nowait.c - sends that return before they complete
 * (cio_send_buf_nowait(), cio_send_flush()): bytes in order through an
 * echo that never waits for its sends, one send on its way per fd, a
 * plain send after one, errors reported once by the next call, a close
 * that lets the send finish alone and wakes its waiters with -EBADF, a
 * waiter that a new send and a close overtake, a reused fd number,
 * MSG_DONTWAIT, and a runtime that ends with a send stuck on an fd left
 * open or closed.  Every read has a deadline: a failure injected by the
 * fault sweep must end the test, never hang it. */
#include "check.h"

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MS CIO_MS

static uint64_t lent(void)
{
	cio_stats st;
	cio_stats_get(&st);
	return st.bufs_lent;
}

static bool on_uring(void)
{
	return strcmp(cio_backend_name(), "io_uring") == 0;
}

static unsigned char pat(size_t i)
{
	return (unsigned char)(i * 7 + 3);
}

/* A lent buffer holding n bytes of the pattern from `from`.  io_uring's
 * incremental ring may hand the first try out in two slices (the end of
 * a buffer, then the next): then again, into a fresh buffer. */
static cio_buf *lend(size_t from, size_t n)
{
	int p[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, p), 0);
	unsigned char tmp[16 << 10];
	CHECK(n <= sizeof tmp);
	for (size_t i = 0; i < n; i++)
		tmp[i] = pat(from + i);
	cio_buf *b = NULL;
	for (int tries = 0; tries < 4 && !b; tries++) {
		CHECK_EQ(cio_send_all(p[1], tmp, n, 0, NULL), (ssize_t)n);
		size_t got = 0;
		while (got < n) {
			cio_buf *c;
			ssize_t k = cio_recv_buf(p[0], &c);
			CHECK(k > 0);
			if (got == 0 && (size_t)k == n)
				b = c;
			else
				cio_buf_release(c);
			got += (size_t)k;
		}
	}
	CHECK(b != NULL);
	CHECK_EQ(cio_close(p[0]), 0);
	CHECK_EQ(cio_close(p[1]), 0);
	return b;
}

/* A pair whose [0] sends through a small buffer: a send of a few KiB
 * waits for the peer. */
static void small_pair(int p[2])
{
	CHECK_EQ(cio_socketpair(SOCK_STREAM, p), 0);
	int v = 2048;
	CHECK_EQ(setsockopt(p[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v), 0);
}

/* Reads exactly n bytes of the pattern from `from`, then expects the end,
 * within 10 s. */
static void expect_pattern(int fd, size_t from, size_t n, bool then_end)
{
	unsigned char buf[4096];
	size_t got = 0;
	int64_t tok = cio_timeout_push(10 * CIO_SEC);
	while (got < n) {
		ssize_t k = cio_recv(fd, buf, sizeof buf < n - got ? sizeof buf : n - got, 0);
		CHECK(k > 0);
		for (ssize_t i = 0; i < k; i++)
			CHECK_EQ(buf[i], pat(from + got + (size_t)i));
		got += (size_t)k;
	}
	if (then_end)
		CHECK_EQ(cio_recv(fd, buf, sizeof buf, 0), 0);
	cio_deadline_pop(tok);
}

/* An echo whose sends never wait: 2 MB through a small send buffer, in
 * order, every buffer given back. */
static void *echo_nowait(void *arg)
{
	int fd = (int)(intptr_t)arg;
	cio_buf *b;
	ssize_t n;
	/* Checked here, not joined: a failure must end the test, not leave
	 * its reader waiting. */
	while ((n = cio_recv_buf(fd, &b)) > 0)
		CHECK_EQ(cio_send_buf_nowait(fd, b), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(cio_send_flush(fd), 0);
	CHECK_EQ(cio_shutdown(fd, SHUT_WR), 0);
	return NULL;
}

struct feed {
	int fd;
	size_t n;
};

static void *feeder(void *arg)
{
	struct feed *f = arg;
	unsigned char chunk[5000];
	for (size_t done = 0; done < f->n;) {
		size_t k = f->n - done < sizeof chunk ? f->n - done : sizeof chunk;
		for (size_t i = 0; i < k; i++)
			chunk[i] = pat(done + i);
		CHECK_EQ(cio_send_all(f->fd, chunk, k, 0, NULL), (ssize_t)k);
		done += k;
	}
	CHECK_EQ(cio_shutdown(f->fd, SHUT_WR), 0);
	return NULL;
}

static void test_echo(void)
{
	int p[2];
	small_pair(p);
	cio_task_t e = cio_spawn(echo_nowait, (void *)(intptr_t)p[0]);
	struct feed f = {.fd = p[1], .n = 2 << 20};
	cio_task_t t = cio_spawn(feeder, &f);
	expect_pattern(p[1], 0, f.n, true);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(join_rc(e), 0);
	CHECK_EQ(lent(), 0);
	CHECK_EQ(cio_close(p[0]), 0);
	CHECK_EQ(cio_close(p[1]), 0);
}

struct reader {
	int fd;
	size_t n;
	int64_t delay;
};

static void *reader(void *arg)
{
	struct reader *r = arg;
	if (r->delay)
		CHECK_EQ(cio_sleep(r->delay), 0);
	expect_pattern(r->fd, 0, r->n, true);
	return NULL;
}

/* One send on its way per fd: a second, then a plain send, leave after
 * it; the close lets what is on its way go on. */
static void test_order(void)
{
	int p[2];
	small_pair(p);
	/* More than the send buffer takes: on io_uring the first is still on
	 * its way when the rest is asked for. */
	cio_buf *a = lend(0, 12000);
	size_t na = a->len;
	cio_buf *b = lend(na, 3000);
	size_t nb = b->len;
	unsigned char tail[1000];
	for (size_t i = 0; i < sizeof tail; i++)
		tail[i] = pat(na + nb + i);
	struct reader r = {.fd = p[1], .n = na + nb + sizeof tail, .delay = 5 * MS};
	cio_task_t t = cio_spawn(reader, &r);
	CHECK_EQ(cio_send_buf_nowait(p[0], a), 0);
	CHECK_EQ(cio_send_buf_nowait(p[0], b), 0);
	CHECK_EQ(cio_send_all(p[0], tail, sizeof tail, 0, NULL), (ssize_t)sizeof tail);
	CHECK_EQ(cio_close(p[0]), 0); /* the bytes on their way go on */
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(lent(), 0);
	CHECK_EQ(cio_close(p[1]), 0);
}

/* A send to a peer that is gone: its error comes back once, from the
 * next call (on epoll, from the send itself), and every buffer is given
 * back. */
static void test_error(void)
{
	int p[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, p), 0);
	CHECK_EQ(cio_close(p[1]), 0);
	int r1 = cio_send_buf_nowait(p[0], lend(0, 100));
	int r2 = cio_send_buf_nowait(p[0], lend(0, 100));
	int r3 = cio_send_flush(p[0]);
	if (on_uring()) {
		CHECK_EQ(r1, 0);
		CHECK_EQ(r2, -EPIPE); /* the first's; the second never left */
		CHECK_EQ(r3, 0);
		CHECK_EQ(cio_send_buf_nowait(p[0], lend(0, 100)), 0);
		CHECK_EQ(cio_send(p[0], "x", 1, 0), -EPIPE); /* the third's */
		CHECK_EQ(cio_send(p[0], "x", 1, 0), -EPIPE); /* its own */
	} else {
		CHECK_EQ(r1, -EPIPE);
		CHECK_EQ(r2, -EPIPE);
		CHECK_EQ(r3, 0);
	}
	CHECK_EQ(cio_send_flush(p[0]), 0);
	CHECK_EQ(lent(), 0);
	CHECK_EQ(cio_close(p[0]), 0);
	CHECK_EQ(cio_send_flush(-1), -EBADF);
	CHECK_EQ(cio_send_buf_nowait(-1, lend(0, 10)), -EBADF);
	CHECK_EQ(lent(), 0);
}

/* A peer that does not read: a flush under a deadline gives up and the
 * send goes on; a send with MSG_DONTWAIT says -EAGAIN at once; a close
 * returns at once and lets the send finish on its own, waking a task
 * that waited for it with -EBADF; and the fd's number, made anew at
 * once, is a clean slate. */
static void *flush_waiter(void *arg)
{
	return (void *)(intptr_t)cio_send_flush((int)(intptr_t)arg);
}

static void test_stuck(void)
{
	int p[2];
	small_pair(p);
	cio_buf *a = lend(0, 12000), *b = lend(0, 500);
	size_t na = a->len, nb = b->len;
	int rc1 = 1, rc2 = 1;
	CIO_WITH_TIMEOUT(20 * MS) {
		rc1 = cio_send_buf_nowait(p[0], a);
		rc2 = cio_send_flush(p[0]);
	}
	cio_task_t t = -1;
	if (on_uring()) {
		CHECK_EQ(rc1, 0);
		CHECK_EQ(rc2, -ETIMEDOUT);
		CHECK(lent() > 0); /* still on its way */
		CHECK_EQ(cio_send(p[0], "x", 1, MSG_DONTWAIT), -EAGAIN);
		t = cio_spawn(flush_waiter, (void *)(intptr_t)p[0]);
		CHECK_EQ(cio_sleep(MS), 0);
	} else {
		CHECK_EQ(rc1, -ETIMEDOUT); /* the send itself waited */
		CHECK_EQ(rc2, -ETIMEDOUT);
	}
	int old = p[0];
	int64_t t0 = cio_now();
	CHECK_EQ(cio_close(p[0]), 0);
	CHECK(cio_now() - t0 < 1000 * MS); /* no wait for the peer */
	if (t >= 0)
		CHECK_EQ(join_rc(t), -EBADF);
	/* The same number again, while the old send still goes on. */
	int q[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, q), 0);
	CHECK(q[0] == old || q[1] == old);
	int s = q[0] == old ? q[0] : q[1], peer = q[0] == old ? q[1] : q[0];
	CHECK_EQ(cio_send_buf_nowait(s, b), 0);
	CHECK_EQ(cio_send_flush(s), 0);
	expect_pattern(peer, 0, nb, false);
	CHECK_EQ(cio_close(q[0]), 0);
	CHECK_EQ(cio_close(q[1]), 0);
	/* The old peer reads at last: on io_uring every byte of the closed
	 * fd's send, then the end; on epoll the part that left. */
	if (on_uring()) {
		expect_pattern(p[1], 0, na, true);
	} else {
		unsigned char buf[4096];
		ssize_t k;
		while ((k = cio_recv(p[1], buf, sizeof buf, 0)) > 0)
			;
		CHECK_EQ(k, 0);
	}
	CHECK_EQ(cio_close(p[1]), 0);
	for (int i = 0; i < 1000 && lent(); i++)
		CHECK_EQ(cio_sleep(MS), 0); /* the send's completion */
	CHECK_EQ(lent(), 0);
}

/* A task cancelled while its send waits for an earlier one: it gets
 * -ECANCELED and its buffer is given back; the earlier one still leaves
 * whole on io_uring (on epoll the first send itself waited, and was cut). */
static size_t first_len;
static bool about_to_wait; /* the send that will wait comes next */

static void *send_two(void *arg)
{
	int fd = (int)(intptr_t)arg;
	cio_buf *a = lend(0, 12000), *b = lend(0, 100);
	first_len = a->len;
	/* On epoll the first send itself waits for the peer. */
	about_to_wait = !on_uring();
	int rc = cio_send_buf_nowait(fd, a);
	if (rc < 0) {
		about_to_wait = true; /* not to wait: the test sees rc */
		cio_buf_release(b);
		return (void *)(intptr_t)rc;
	}
	about_to_wait = true;
	return (void *)(intptr_t)cio_send_buf_nowait(fd, b);
}

static void test_cancel(void)
{
	int p[2];
	small_pair(p);
	about_to_wait = false;
	cio_task_t t = cio_spawn(send_two, (void *)(intptr_t)p[0]);
	for (int i = 0; !about_to_wait; i++) {
		CHECK(i < 10000); /* a send that waited where it should not */
		CHECK_EQ(cio_sleep(100 * CIO_US), 0);
	}
	/* Parked in the send by now, or cancelled before it parks: the
	 * same -ECANCELED. */
	CHECK_EQ(cio_sleep(MS), 0);
	cio_cancel(t);
	CHECK_EQ(join_rc(t), -ECANCELED);
	if (on_uring()) {
		expect_pattern(p[1], 0, first_len, false);
		CHECK_EQ(cio_shutdown(p[0], SHUT_WR), 0); /* after the send */
		unsigned char c;
		CHECK_EQ(cio_recv(p[1], &c, 1, 0), 0);
	}
	CHECK_EQ(lent(), 0);
	CHECK_EQ(cio_close(p[0]), 0);
	CHECK_EQ(cio_close(p[1]), 0);
}

/* A task waiting for the send on its way, woken when it is out, but
 * overtaken before it runs by a task that starts another send and closes
 * the fd: it gets -EBADF, and its byte goes nowhere (the number may be
 * another file's by then). */
static int overtaken_fd;

static void *plain_sender(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)cio_send(overtaken_fd, "x", 1, 0);
}

struct drain {
	int fd;
	size_t n;
};

static void *drainer(void *arg)
{
	struct drain *r = arg;
	expect_pattern(r->fd, 0, r->n, false);
	return NULL;
}

static void test_overtaken(void)
{
	int p[2];
	small_pair(p);
	overtaken_fd = p[0];
	if (!on_uring()) {
		/* epoll's send waits in the call itself: once it returns
		 * nothing is on its way, and no waiter can be overtaken. */
		cio_buf *a = lend(0, 12000);
		size_t na = a->len;
		struct drain r = {p[1], na};
		cio_task_t t = cio_spawn(drainer, &r);
		CHECK_EQ(cio_send_buf_nowait(p[0], a), 0);
		CHECK_EQ(cio_send(p[0], "", 0, MSG_DONTWAIT), 0);
		CHECK_EQ(join_rc(t), 0);
		cio_task_t w = cio_spawn(plain_sender, NULL);
		CHECK_EQ(join_rc(w), 1);
		unsigned char c;
		CHECK_EQ(cio_recv(p[1], &c, 1, 0), 1);
		CHECK_EQ(c, 'x');
		CHECK_EQ(cio_close(p[0]), 0);
		CHECK_EQ(cio_close(p[1]), 0);
		CHECK_EQ(lent(), 0);
		return;
	}
	cio_buf *a = lend(0, 12000), *b = lend(0, 5000);
	size_t na = a->len, nb = b->len;
	CHECK_EQ(cio_send_buf_nowait(p[0], a), 0);
	cio_task_t w = cio_spawn(plain_sender, NULL);
	CHECK_EQ(cio_sleep(MS), 0); /* w waits for a */
	struct drain r1 = {p[1], na};
	cio_task_t t1 = cio_spawn(drainer, &r1);
	/* Yielding, this task is ahead of w in the queue when a is out. */
	int rc, spins = 0;
	while ((rc = (int)cio_send(p[0], "", 0, MSG_DONTWAIT)) == -EAGAIN) {
		CHECK(++spins < 1000000);
		CHECK_EQ(cio_yield(), 0);
	}
	CHECK_EQ(rc, 0);
	CHECK_EQ(cio_send_buf_nowait(p[0], b), 0);
	CHECK_EQ(cio_close(p[0]), 0);
	CHECK_EQ(join_rc(w), -EBADF);
	CHECK_EQ(join_rc(t1), 0);
	struct drain r2 = {p[1], nb};
	cio_task_t t2 = cio_spawn(drainer, &r2);
	CHECK_EQ(join_rc(t2), 0);
	unsigned char c;
	CHECK_EQ(cio_recv(p[1], &c, 1, 0), 0); /* not w's byte: the end */
	CHECK_EQ(cio_close(p[1]), 0);
	for (int i = 0; i < 1000 && lent(); i++)
		CHECK_EQ(cio_sleep(MS), 0);
	CHECK_EQ(lent(), 0);
}

/* A runtime whose last task leaves a send stuck (a peer that never
 * reads) on an fd it never closed, or on one it closed, still ends, and
 * at once: the sends are cancelled, not waited for. */
static int leftover[2];

static void *leave_stuck(void *arg)
{
	bool close_it = arg != NULL;
	small_pair(leftover);
	cio_buf *b = lend(0, 12000);
	int rc = 1;
	CIO_WITH_TIMEOUT(20 * CIO_MS) rc = cio_send_buf_nowait(leftover[0], b);
	/* On epoll the send itself waits for the peer. */
	CHECK_EQ(rc, on_uring() ? 0 : -ETIMEDOUT);
	if (close_it) {
		CHECK_EQ(cio_close(leftover[0]), 0);
		leftover[0] = -1;
	}
	return NULL;
}

static void test_left_open(void)
{
	for (int close_it = 0; close_it < 2; close_it++) {
		cio_config cfg = test_backend_config();
		int64_t t0 = cio_now();
		CHECK_EQ(cio_run_with(&cfg, leave_stuck, close_it ? (void *)1 : NULL), 0);
		CHECK(cio_now() - t0 < 3 * CIO_SEC); /* not the 5 s linger */
		if (leftover[0] >= 0)
			CHECK_EQ(close(leftover[0]), 0);
		CHECK_EQ(close(leftover[1]), 0);
	}
}

static void *test_main(void *arg)
{
	(void)arg;
	TEST_CASE(echo, test_echo());
	TEST_CASE(order, test_order());
	TEST_CASE(error, test_error());
	TEST_CASE(stuck, test_stuck());
	TEST_CASE(cancel, test_cancel());
	TEST_CASE(overtaken, test_overtaken());
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_run(test_main, NULL);
	if (rc)
		return rc;
	TEST_CASE(left_open, test_left_open());
	return test_cases_end();
}
