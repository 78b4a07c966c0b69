/* test_bufs.c - lent buffers (cio_recv_buf(), cio_buf_release(),
 * cio_send_buf()): every byte once and in order, no buffer held while a
 * task waits, the budget's -ENOBUFS, cancels and closes with buffers out,
 * ends of stream, resets, mixing with cio_recv(), many connections at
 * once (10,000 TCP connections from another process), and io_uring's
 * buffer ring growing and shrinking with the load. */
#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS CIO_MS

static uint64_t lent(void)
{
	cio_stats st;
	cio_stats_get(&st);
	return st.bufs_lent;
}

static int pair[2];

/* Sends n bytes of a pattern that starts at `from`, in pieces. */
struct feed {
	int fd;
	size_t n, from, piece;
	bool close;
};

static void *feeder(void *arg)
{
	struct feed *f = arg;
	unsigned char chunk[7000];
	size_t done = 0;
	while (done < f->n) {
		size_t k = f->n - done;
		if (k > f->piece)
			k = f->piece;
		for (size_t i = 0; i < k; i++)
			chunk[i] = (unsigned char)((f->from + done + i) * 7 + 3);
		CHECK_EQ(cio_send_all(f->fd, chunk, k, 0, NULL), (ssize_t)k);
		done += k;
	}
	if (f->close)
		CHECK_EQ(cio_shutdown(f->fd, SHUT_WR), 0);
	return NULL;
}

static bool pattern_ok(const cio_buf *b, size_t from)
{
	for (size_t i = 0; i < b->len; i++)
		if ((unsigned char)b->data[i] != (unsigned char)((from + i) * 7 + 3))
			return false;
	return true;
}

/* 4 MB in pieces of every size: received whole and in order, then the
 * end of stream; every buffer given back. */
static void test_order(void)
{
	CHECK_EQ(cio_socketpair(SOCK_STREAM, pair), 0);
	struct feed f = {.fd = pair[1], .n = 4 << 20, .piece = 6999, .close = true};
	cio_task_t t = cio_spawn(feeder, &f);
	size_t got = 0;
	cio_buf *b;
	ssize_t n;
	while ((n = cio_recv_buf(pair[0], &b)) > 0) {
		CHECK(b != NULL);
		CHECK_EQ((size_t)n, b->len);
		CHECK(b->len <= b->cap);
		CHECK(pattern_ok(b, got));
		got += b->len;
		cio_buf_release(b);
	}
	CHECK_EQ(n, 0);
	CHECK(b == NULL);
	CHECK_EQ(got, (size_t)4 << 20);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(lent(), 0);
	CHECK_EQ(cio_close(pair[0]), 0);
	CHECK_EQ(cio_close(pair[1]), 0);
}

/* Echo through lent buffers: what comes in goes out without a copy of
 * the task's own. */
static void *echo_lent(void *arg)
{
	int fd = (int)(intptr_t)arg;
	cio_buf *b;
	ssize_t n;
	while ((n = cio_recv_buf(fd, &b)) > 0)
		if (cio_send_buf(fd, b, NULL) != n)
			break;
	return (void *)(intptr_t)n;
}

static void test_echo(void)
{
	CHECK_EQ(cio_socketpair(SOCK_STREAM, pair), 0);
	cio_task_t t = cio_spawn(echo_lent, (void *)(intptr_t)pair[0]);
	char out[3000], in[3000];
	for (int round = 0; round < 200; round++) {
		size_t len = 1 + (size_t)round * 13 % sizeof out;
		for (size_t i = 0; i < len; i++)
			out[i] = (char)(round + i);
		CHECK_EQ(cio_send_all(pair[1], out, len, 0, NULL), (ssize_t)len);
		CHECK_EQ(cio_recv_exact(pair[1], in, len, 0, NULL), (ssize_t)len);
		CHECK(memcmp(in, out, len) == 0);
	}
	CHECK_EQ(cio_shutdown(pair[1], SHUT_WR), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(lent(), 0);
	CHECK_EQ(cio_close(pair[0]), 0);
	CHECK_EQ(cio_close(pair[1]), 0);
}

static void *recv_one(void *arg)
{
	cio_buf **out = arg;
	return (void *)(intptr_t)cio_recv_buf(pair[0], out);
}

/* Waiting holds no buffer; a cancel or a close while waiting loses
 * nothing and lends nothing; a buffer out survives the fd's close. */
static void test_wait_and_cancel(void)
{
	CHECK_EQ(cio_socketpair(SOCK_STREAM, pair), 0);
	cio_buf *b = (cio_buf *)1;
	cio_task_t t = cio_spawn(recv_one, &b);
	CHECK_EQ(cio_sleep(10 * MS), 0);
	CHECK_EQ(lent(), 0); /* parked, holding nothing */
	CHECK_EQ(cio_cancel(t), 0);
	CHECK_EQ(join_rc(t), -ECANCELED);
	CHECK(b == NULL);
	CHECK_EQ(lent(), 0);

	/* The bytes sent now are all there for the next receive. */
	CHECK_EQ(cio_send_all(pair[1], "abc", 3, 0, NULL), 3);
	CHECK_EQ(cio_recv_buf(pair[0], &b), 3);
	CHECK(memcmp(b->data, "abc", 3) == 0);
	CHECK(lent() > 0);

	/* A deadline: -ETIMEDOUT, nothing lent by it. */
	cio_buf *c = (cio_buf *)1;
	ssize_t rc;
	CIO_WITH_TIMEOUT(5 * MS) rc = cio_recv_buf(pair[0], &c);
	CHECK_EQ(rc, -ETIMEDOUT);
	CHECK(c == NULL);

	/* A close under a waiting receive: -EBADF; the buffer out stays
	 * good until given back. */
	t = cio_spawn(recv_one, &c);
	CHECK_EQ(cio_sleep(5 * MS), 0);
	CHECK_EQ(cio_close(pair[0]), 0);
	CHECK_EQ(join_rc(t), -EBADF);
	CHECK(memcmp(b->data, "abc", 3) == 0);
	cio_buf_release(b);
	CHECK_EQ(lent(), 0);
	CHECK_EQ(cio_close(pair[1]), 0);
}

/* A close while arrivals wait queued for a receive: nothing leaks, and
 * the number made anew starts clean. */
static void test_close_queued(void)
{
	for (int round = 0; round < 20; round++) {
		CHECK_EQ(cio_socketpair(SOCK_STREAM, pair), 0);
		CHECK_EQ(cio_send_all(pair[1], "first", 5, 0, NULL), 5);
		cio_buf *b;
		CHECK_EQ(cio_recv_buf(pair[0], &b), 5);
		cio_buf_release(b);
		for (int i = 0; i < 5; i++) { /* arrive while nobody asks */
			CHECK_EQ(cio_send_all(pair[1], "more", 4, 0, NULL), 4);
			CHECK_EQ(cio_yield(), 0);
		}
		CHECK_EQ(cio_sleep(MS), 0);
		int old = pair[0];
		CHECK_EQ(cio_close(pair[0]), 0);
		CHECK_EQ(cio_recv_buf(old, &b), -EBADF);
		CHECK_EQ(cio_close(pair[1]), 0);
		/* The same numbers again: only the new bytes come. */
		CHECK_EQ(cio_socketpair(SOCK_STREAM, pair), 0);
		CHECK_EQ(cio_send_all(pair[1], "new", 3, 0, NULL), 3);
		CHECK_EQ(cio_recv_buf(pair[0], &b), 3);
		CHECK(memcmp(b->data, "new", 3) == 0);
		cio_buf_release(b);
		CHECK_EQ(cio_close(pair[0]), 0);
		CHECK_EQ(cio_close(pair[1]), 0);
	}
	CHECK_EQ(lent(), 0);
}

/* Mixed with cio_recv() on one fd, the bytes stay in order. */
static void test_mixed(void)
{
	CHECK_EQ(cio_socketpair(SOCK_STREAM, pair), 0);
	struct feed f = {.fd = pair[1], .n = 1 << 20, .piece = 1000, .close = true};
	cio_task_t t = cio_spawn(feeder, &f);
	size_t got = 0;
	for (int i = 0;; i++) {
		cio_buf *b;
		ssize_t n;
		if (i % 2) {
			unsigned char own[777];
			n = cio_recv(pair[0], own, sizeof own, 0);
			for (ssize_t k = 0; k < n; k++)
				CHECK_EQ(own[k], (unsigned char)((got + (size_t)k) * 7 + 3));
		} else {
			n = cio_recv_buf(pair[0], &b);
			if (n > 0) {
				CHECK(pattern_ok(b, got));
				cio_buf_release(b);
			}
		}
		CHECK(n >= 0);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	CHECK_EQ(got, (size_t)1 << 20);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(cio_close(pair[0]), 0);
	CHECK_EQ(cio_close(pair[1]), 0);
}

/* A receive with MSG_DONTWAIT after lent ones takes, in order, what
 * arrived meanwhile (on io_uring: what the multishot queued), then says
 * -EAGAIN rather than wait. */
static void test_dontwait_after_lent(void)
{
	CHECK_EQ(cio_socketpair(SOCK_STREAM, pair), 0);
	CHECK_EQ(cio_send_all(pair[1], "one", 3, 0, NULL), 3);
	cio_buf *b;
	CHECK_EQ(cio_recv_buf(pair[0], &b), 3);
	cio_buf_release(b);
	CHECK_EQ(cio_send_all(pair[1], "two", 3, 0, NULL), 3);
	CHECK_EQ(cio_sleep(5 * MS), 0); /* arrived, nobody asking */
	char got[8];
	CHECK_EQ(cio_recv(pair[0], got, sizeof got, MSG_DONTWAIT), 3);
	CHECK(memcmp(got, "two", 3) == 0);
	CHECK_EQ(cio_recv(pair[0], got, sizeof got, MSG_DONTWAIT), -EAGAIN);
	CHECK_EQ(cio_send_all(pair[1], "six", 3, 0, NULL), 3);
	CHECK_EQ(cio_recv_buf(pair[0], &b), 3); /* lent again after it */
	CHECK(memcmp(b->data, "six", 3) == 0);
	cio_buf_release(b);
	CHECK_EQ(cio_close(pair[0]), 0);
	CHECK_EQ(cio_close(pair[1]), 0);
}

/* A holder that never gives back meets the budget: -ENOBUFS, memory
 * bounded; giving back makes room again. */
static void *budget_main(void *arg)
{
	(void)arg;
	CHECK_EQ(cio_socketpair(SOCK_STREAM, pair), 0);
	cio_buf *held[8];
	int n = 0;
	char junk[4096];
	memset(junk, 'j', sizeof junk);
	for (;;) {
		CHECK_EQ(cio_send_all(pair[1], junk, sizeof junk, 0, NULL), (ssize_t)sizeof junk);
		cio_buf *b;
		ssize_t rc = cio_recv_buf(pair[0], &b);
		if (rc == -ENOBUFS) {
			CHECK(b == NULL);
			break;
		}
		CHECK(rc > 0 && n < 8);
		held[n++] = b;
	}
	CHECK_EQ(n, 4); /* 4 x 4 KiB in a 16 KiB budget */
	CHECK_EQ(lent(), 16 << 10);
	cio_buf_release(held[--n]);
	cio_buf *b;
	CHECK(cio_recv_buf(pair[0], &b) > 0); /* room again */
	cio_buf_release(b);
	while (n)
		cio_buf_release(held[--n]);
	CHECK_EQ(lent(), 0);
	CHECK_EQ(cio_close(pair[0]), 0);
	CHECK_EQ(cio_close(pair[1]), 0);
	return NULL;
}

static void test_budget(void)
{
	cio_config cfg = test_backend_config();
	cfg.buf_size = 4 << 10;
	cfg.buf_budget = 16 << 10;
	CHECK_EQ(cio_run_with(&cfg, budget_main, NULL), 0);
}

/* A reset mid-stream: the bytes before it, then -ECONNRESET. */
static void test_reset(void)
{
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	cio_addr a = {.len = sizeof a.u};
	CHECK_EQ(getsockname(lfd, &a.u.sa, &a.len), 0);
	char addr[64];
	CHECK(cio_addr_format(&a, addr, sizeof addr) > 0);
	int c = cio_connect(addr, 0);
	CHECK(c >= 0);
	int s = cio_accept(lfd, NULL);
	CHECK(s >= 0);
	CHECK_EQ(cio_send_all(c, "xyz", 3, 0, NULL), 3);
	CHECK_EQ(setsockopt(c, SOL_SOCKET, SO_LINGER, &(struct linger){1, 0},
			    sizeof(struct linger)), 0);
	CHECK_EQ(cio_close(c), 0); /* RST */
	cio_buf *b;
	ssize_t n = cio_recv_buf(s, &b);
	if (n > 0) { /* the bytes, if the reset did not overtake them */
		CHECK(memcmp(b->data, "xyz", 3) == 0);
		cio_buf_release(b);
		n = cio_recv_buf(s, &b);
	}
	CHECK_EQ(n, -ECONNRESET);
	CHECK(b == NULL);
	CHECK_EQ(cio_close(s), 0);
	CHECK_EQ(cio_close(lfd), 0);
	CHECK_EQ(lent(), 0);
}

/* Not a socket, not an fd. */
static void test_bad_fds(void)
{
	cio_buf *b = (cio_buf *)1;
	CHECK_EQ(cio_recv_buf(-1, &b), -EBADF);
	CHECK(b == NULL);
	int p[2];
	CHECK_EQ(cio_pipe(p), 0);
	CHECK_EQ(cio_recv_buf(p[0], &b), -ENOTSOCK);
	CHECK_EQ(cio_close(p[0]), 0);
	CHECK_EQ(cio_close(p[1]), 0);
	CHECK_EQ(lent(), 0);
	cio_buf_release(NULL);
}

/* Many connections sending at once through a small budget: every byte
 * arrives, in order, per connection; the budget is never passed. */
#define CONNS 1000
#define PER_CONN 20000

static int conn_fds[CONNS][2];
static uint64_t peak_lent;

static void *many_reader(void *arg)
{
	int k = (int)(intptr_t)arg;
	size_t got = 0;
	for (;;) {
		cio_buf *b;
		ssize_t n = cio_recv_buf(conn_fds[k][0], &b);
		if (n == -ENOBUFS) {
			CHECK_EQ(cio_sleep(MS), 0); /* others give back */
			continue;
		}
		CHECK(n >= 0);
		if (n == 0)
			break;
		CHECK(pattern_ok(b, got));
		got += b->len;
		if (lent() > peak_lent)
			peak_lent = lent();
		CHECK_EQ(cio_yield(), 0); /* hold it a moment */
		cio_buf_release(b);
	}
	CHECK_EQ(got, (size_t)PER_CONN);
	return NULL;
}

static void *many_main(void *arg)
{
	(void)arg;
	static struct feed feeds[CONNS];
	cio_task_t readers[CONNS], writers[CONNS];
	for (int k = 0; k < CONNS; k++) {
		CHECK_EQ(cio_socketpair(SOCK_STREAM, conn_fds[k]), 0);
		feeds[k] = (struct feed){.fd = conn_fds[k][1], .n = PER_CONN, .piece = 1500,
					 .close = true};
		readers[k] = cio_spawn(many_reader, (void *)(intptr_t)k);
		writers[k] = cio_spawn(feeder, &feeds[k]);
	}
	for (int k = 0; k < CONNS; k++) {
		CHECK_EQ(join_rc(writers[k]), 0);
		CHECK_EQ(join_rc(readers[k]), 0);
		CHECK_EQ(cio_close(conn_fds[k][0]), 0);
		CHECK_EQ(cio_close(conn_fds[k][1]), 0);
	}
	CHECK(peak_lent <= 256 << 10);
	CHECK_EQ(lent(), 0);
	return NULL;
}

static void test_many(void)
{
	cio_config cfg = test_backend_config();
	cfg.buf_size = 2 << 10;
	cfg.buf_budget = 256 << 10; /* 128 buffers for 1000 connections */
	CHECK_EQ(cio_run_with(&cfg, many_main, NULL), 0);
}

/* io_uring's ring of provided buffers follows the load: many receives at
 * once run it dry and it grows (within half the budget); a long quiet
 * stretch of one receive at a time shrinks it back to its floor.  Every
 * byte arrives in order all along.  Other backends have no ring. */
#define RING_CONNS 300
#define RING_PER_CONN 30000

static uint64_t ring_bytes(void)
{
	cio_stats st;
	cio_stats_get(&st);
	return st.bufs_ring;
}

static uint64_t peak_ring;

static void *ring_reader(void *arg)
{
	int k = (int)(intptr_t)arg;
	size_t got = 0;
	for (;;) {
		cio_buf *b;
		ssize_t n = cio_recv_buf(conn_fds[k][0], &b);
		if (n == -ENOBUFS) {
			CHECK_EQ(cio_sleep(MS), 0);
			continue;
		}
		CHECK(n >= 0);
		if (n == 0)
			break;
		CHECK(pattern_ok(b, got));
		got += b->len;
		if (ring_bytes() > peak_ring)
			peak_ring = ring_bytes();
		CHECK_EQ(cio_yield(), 0);
		cio_buf_release(b);
	}
	CHECK_EQ(got, (size_t)RING_PER_CONN);
	return NULL;
}

static void *ring_main(void *arg)
{
	(void)arg;
	bool uring = strcmp(cio_backend_name(), "io_uring") == 0;
	static struct feed feeds[RING_CONNS];
	cio_task_t readers[RING_CONNS], writers[RING_CONNS];
	for (int k = 0; k < RING_CONNS; k++) {
		CHECK_EQ(cio_socketpair(SOCK_STREAM, conn_fds[k]), 0);
		feeds[k] = (struct feed){.fd = conn_fds[k][1], .n = RING_PER_CONN, .piece = 1500,
					 .close = true};
		readers[k] = cio_spawn(ring_reader, (void *)(intptr_t)k);
		writers[k] = cio_spawn(feeder, &feeds[k]);
	}
	for (int k = 0; k < RING_CONNS; k++) {
		CHECK_EQ(join_rc(writers[k]), 0);
		CHECK_EQ(join_rc(readers[k]), 0);
		CHECK_EQ(cio_close(conn_fds[k][0]), 0);
		CHECK_EQ(cio_close(conn_fds[k][1]), 0);
	}
	if (uring) {
		CHECK(peak_ring > 16 * 1024); /* grew past its first 16 buffers */
		CHECK(peak_ring <= 2 << 20);  /* within half the budget */
	} else {
		CHECK_EQ(peak_ring, 0);
	}
	/* One message of a buffer's size at a time, long enough for the
	 * ring to halve, window after window, down to its floor: buffers
	 * leave it as they are used up. */
	int sv[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, sv), 0);
	struct feed quiet = {.fd = sv[1], .n = 1024, .piece = 1024};
	for (int i = 0; i < 8000; i++) {
		quiet.from = (size_t)i * 1024;
		feeder(&quiet);
		for (size_t got = 0; got < 1024;) {
			cio_buf *b;
			ssize_t n = cio_recv_buf(sv[0], &b);
			CHECK(n > 0);
			CHECK(pattern_ok(b, quiet.from + got));
			got += (size_t)n;
			cio_buf_release(b);
		}
	}
	fprintf(stderr, "ring (%s): %llu KiB at most under load, %llu KiB after\n",
		cio_backend_name(), (unsigned long long)peak_ring >> 10,
		(unsigned long long)ring_bytes() >> 10);
	if (uring)
		CHECK_EQ(ring_bytes(), 16 * 1024);
	else
		CHECK_EQ(ring_bytes(), 0);
	CHECK_EQ(cio_close(sv[0]), 0);
	CHECK_EQ(cio_close(sv[1]), 0);
	CHECK_EQ(lent(), 0);
	return NULL;
}

static void test_ring_adapts(void)
{
	cio_config cfg = test_backend_config();
	cfg.buf_size = 1 << 10;
	cfg.buf_budget = 4 << 20;
	CHECK_EQ(cio_run_with(&cfg, ring_main, NULL), 0);
}

/* Small messages on many connections at once share buffers: on io_uring
 * (an incremental ring) 300 messages of 100 B held together take slices
 * of a few 16 KiB buffers, and the ring needs no more than its first 16;
 * given back in any order, each buffer returns to the pool after its
 * last slice.  Every backend: every byte right, nothing left out. */
#define SHARED_CONNS 300
static int shared_held;

static void *shared_reader(void *arg)
{
	int k = (int)(intptr_t)arg;
	cio_buf *b[100];
	size_t got = 0;
	int nb = 0;
	while (got < 100) { /* a message may lie across two buffers */
		ssize_t n = cio_recv_buf(conn_fds[k][0], &b[nb]);
		CHECK(n > 0);
		CHECK(pattern_ok(b[nb++], (size_t)k * 100 + got));
		got += (size_t)n;
	}
	CHECK_EQ(got, 100);
	shared_held++;
	while (shared_held < SHARED_CONNS) /* all held at once */
		CHECK_EQ(cio_yield(), 0);
	for (int i = 0; i < k % 7; i++) /* given back in a scrambled order */
		CHECK_EQ(cio_yield(), 0);
	got = 0;
	for (int i = 0; i < nb; i++) {
		CHECK(pattern_ok(b[i], (size_t)k * 100 + got)); /* untouched meanwhile */
		got += b[i]->len;
		cio_buf_release(b[i]);
	}
	return NULL;
}

static void *shared_main(void *arg)
{
	(void)arg;
	cio_task_t readers[SHARED_CONNS];
	for (int k = 0; k < SHARED_CONNS; k++) {
		CHECK_EQ(cio_socketpair(SOCK_STREAM, conn_fds[k]), 0);
		readers[k] = cio_spawn(shared_reader, (void *)(intptr_t)k);
	}
	CHECK_EQ(cio_yield(), 0); /* every reader waits */
	for (int k = 0; k < SHARED_CONNS; k++) {
		struct feed f = {.fd = conn_fds[k][1], .n = 100, .from = (size_t)k * 100,
				 .piece = 100};
		feeder(&f);
	}
	for (int k = 0; k < SHARED_CONNS; k++) {
		CHECK_EQ(join_rc(readers[k]), 0);
		CHECK_EQ(cio_close(conn_fds[k][0]), 0);
		CHECK_EQ(cio_close(conn_fds[k][1]), 0);
	}
	CHECK_EQ(shared_held, SHARED_CONNS);
	if (strcmp(cio_backend_name(), "io_uring") == 0)
		CHECK_EQ(ring_bytes(), 16 * (16 << 10)); /* never grew */
	CHECK_EQ(lent(), 0);
	return NULL;
}

static void test_shared_slices(void)
{
	cio_config cfg = test_backend_config();
	CHECK_EQ(cio_run_with(&cfg, shared_main, NULL), 0);
}

/* 10,000 TCP connections from another process, all sending at once
 * through a ring of at most 128 small buffers: every byte arrives, in
 * order, per connection, and no buffer is left out. */
#define TENK 10000
#define TENK_BYTES 6000

static int tenk_port;
static int tenk_fds[TENK];

static void *tenk_feed(void *arg)
{
	int k = (int)(intptr_t)arg;
	struct feed f = {.fd = tenk_fds[k], .n = TENK_BYTES, .piece = 1500, .close = true};
	feeder(&f);
	return NULL;
}

/* The client process: connects them all, then sends on all at once. */
static void *tenk_client(void *arg)
{
	(void)arg;
	static cio_task_t ids[TENK];
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", tenk_port);
	for (int k = 0; k < TENK; k++)
		CHECK((tenk_fds[k] = cio_connect(addr, 0)) >= 0);
	/* Every feeder starts in the same tick. */
	for (int k = 0; k < TENK; k++)
		CHECK((ids[k] = cio_spawn_with(&(cio_spawn_opts){.stack_size = 32 << 10},
					       tenk_feed, (void *)(intptr_t)k)) > 0);
	for (int k = 0; k < TENK; k++)
		CHECK_EQ(join_rc(ids[k]), 0);
	/* The server closes first: its FIN says it has read everything. */
	for (int k = 0; k < TENK; k++) {
		char c;
		CHECK_EQ(cio_recv(tenk_fds[k], &c, 1, 0), 0);
		CHECK_EQ(cio_close(tenk_fds[k]), 0);
	}
	return NULL;
}

static size_t tenk_bytes;

static void *tenk_reader(void *arg)
{
	int fd = (int)(intptr_t)arg;
	size_t got = 0;
	for (;;) {
		cio_buf *b;
		ssize_t n = cio_recv_buf(fd, &b);
		if (n == -ENOBUFS) {
			CHECK_EQ(cio_sleep(MS), 0);
			continue;
		}
		CHECK(n >= 0);
		if (n == 0)
			break;
		CHECK(pattern_ok(b, got));
		got += b->len;
		cio_buf_release(b);
	}
	CHECK_EQ(got, (size_t)TENK_BYTES);
	tenk_bytes += got;
	CHECK_EQ(cio_close(fd), 0);
	return NULL;
}

static void *tenk_server(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	static cio_task_t ids[TENK];
	for (int k = 0; k < TENK; k++) {
		int fd = cio_accept(lfd, NULL);
		CHECK(fd >= 0);
		CHECK((ids[k] = cio_spawn_with(&(cio_spawn_opts){.stack_size = 32 << 10},
					       tenk_reader, (void *)(intptr_t)fd)) > 0);
	}
	for (int k = 0; k < TENK; k++)
		CHECK_EQ(join_rc(ids[k]), 0);
	CHECK_EQ(tenk_bytes, (size_t)TENK * TENK_BYTES);
	CHECK_EQ(lent(), 0);
	CHECK_EQ(cio_close(lfd), 0);
	return NULL;
}

static void test_ten_thousand(void)
{
	struct rlimit rl;
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < TENK + 100) {
		fprintf(stderr, "ten_thousand: needs an fd limit of %d, the hard one is %llu\n",
			TENK + 100, (unsigned long long)rl.rlim_max);
		CHECK(!"fd limit");
	}
	rl.rlim_cur = rl.rlim_max;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
	/* The listener before the fork, so the child knows the port. */
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	CHECK(lfd >= 0);
	CHECK_EQ(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	CHECK_EQ(listen(lfd, 4096), 0);
	CHECK_EQ(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	tenk_port = ntohs(sa.sin_port);
	fflush(stderr);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(lfd);
		cio_config ccfg = test_backend_config();
		CHECK_EQ(cio_run_with(&ccfg, tenk_client, NULL), 0);
		_exit(0);
	}
	cio_config cfg = test_backend_config();
	cfg.buf_size = 2 << 10;
	cfg.buf_budget = 512 << 10; /* a ring of 128 buffers at most */
	CHECK_EQ(cio_run_with(&cfg, tenk_server, (void *)(intptr_t)lfd), 0);
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
}

static void *test_main(void *arg)
{
	(void)arg;
	TEST_CASE(order, test_order());
	TEST_CASE(echo, test_echo());
	TEST_CASE(wait_and_cancel, test_wait_and_cancel());
	TEST_CASE(close_queued, test_close_queued());
	TEST_CASE(mixed, test_mixed());
	TEST_CASE(dontwait_after_lent, test_dontwait_after_lent());
	TEST_CASE(reset, test_reset());
	TEST_CASE(bad_fds, test_bad_fds());
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_run(test_main, NULL);
	if (rc)
		return rc;
	TEST_CASE(budget, test_budget());
	TEST_CASE(many, test_many());
	TEST_CASE(ring_adapts, test_ring_adapts());
	TEST_CASE(shared_slices, test_shared_slices());
	TEST_CASE(ten_thousand, test_ten_thousand());
	return test_cases_end();
}
