/* test_net_faults.c - network faults: peer resets while reading and
 * writing (and no SIGPIPE), connection refused, connect timeouts against a
 * full backlog, accept out of fds (EMFILE), cancelled and timed-out
 * transfers that lose no data, cio_close() of an fd other tasks wait on,
 * signals (EINTR) during waits, bad fds, and the forced epoll fallback
 * when seccomp forbids io_uring. */
#include "net_util.h"

#include <fcntl.h>
#include <poll.h>
#ifdef COREIO_TEST_SECCOMP
#include <seccomp.h>
#endif
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS 1000000LL

/* --- helpers ---------------------------------------------------------- */

static void close_pair(int fds[2])
{
	CHECK_EQ(cio_close(fds[0]), 0);
	CHECK_EQ(cio_close(fds[1]), 0);
}

/* Makes close() send a RST: SO_LINGER on, zero seconds. */
static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* Yields until *flag is set, at most about 5 s. */
static void wait_flag(volatile bool *flag)
{
	for (int i = 0; i < 5000 && !*flag; i++)
		CHECK_EQ(cio_sleep(MS), 0);
	CHECK(*flag);
}

/* --- peer reset ---------------------------------------------------------- */

struct io_job {
	int fd;
	ssize_t rc, rc2;
	int64_t took;
	size_t bytes;
	volatile bool done;
	volatile bool started;
};

static void *blocked_recv(void *arg)
{
	struct io_job *j = arg;
	char buf[256];
	int64_t tok = cio_timeout_push(5000 * MS);
	int64_t t0 = cio_now();
	j->started = true;
	j->rc = cio_recv(j->fd, buf, sizeof buf, 0);
	j->took = cio_now() - t0;
	cio_deadline_pop(tok);
	j->done = true;
	return NULL;
}

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

/* Sends until an error, which it records; then tries every send call
 * once more, each of which must fail too. */
static void *send_until_error(void *arg)
{
	struct io_job *j = arg;
	static char buf[65536];
	int64_t tok = cio_timeout_push(5000 * MS);
	j->started = true;
	ssize_t n = 0;
	for (int i = 0; i < 100000; i++) {
		n = cio_send(j->fd, buf, sizeof buf, 0);
		if (n < 0)
			break;
		j->bytes += (size_t)n;
	}
	j->rc = n;
	/* The connection is gone: every send fails, and no signal. */
	CHECK(cio_send(j->fd, buf, 10, 0) < 0);
	size_t sent = 99;
	CHECK(cio_send_all(j->fd, buf, 10, 0, &sent) < 0);
	CHECK_EQ(sent, 0);
	struct iovec iov = {buf, 10};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	CHECK(cio_sendmsg(j->fd, &m, 0) < 0);
	CHECK(cio_sendto(j->fd, buf, 10, 0, NULL) < 0);
	cio_deadline_pop(tok);
	j->done = true;
	return NULL;
}

/* Reads `want` bytes, then closes with a RST. */
struct read_reset {
	int fd;
	size_t want, got;
};
static void *read_then_reset(void *arg)
{
	struct read_reset *r = arg;
	char buf[4096];
	while (r->got < r->want) {
		ssize_t n = cio_recv(r->fd, buf, sizeof buf, 0);
		CHECK(n > 0);
		r->got += (size_t)n;
	}
	linger0(r->fd);
	CHECK_EQ(cio_close(r->fd), 0);
	return NULL;
}

static void test_reset(void)
{
	int fds = test_count_fds();
	int p[2];

	/* Mid-read: the reader wakes with -ECONNRESET. */
	tcp_pair(p);
	struct io_job r = {.fd = p[0]};
	cio_task_t t = cio_spawn(blocked_recv, &r);
	CHECK_EQ(cio_sleep(20 * MS), 0);
	CHECK(r.started && !r.done);
	linger0(p[1]);
	CHECK_EQ(cio_close(p[1]), 0);
	join_rc(t);
	if (r.rc != -ECONNRESET)
		fprintf(stderr, "recv after peer reset: %zd (%s)\n", r.rc, cio_strerror((int)r.rc));
	CHECK_EQ(r.rc, -ECONNRESET);
	CHECK(r.took < 4000 * MS);
	CHECK_EQ(cio_close(p[0]), 0);

	/* Mid-write, with a handler on SIGPIPE that counts: sends never
	 * raise it, so the count stays 0 (and with SIG_DFL the process
	 * would die). */
	struct sigaction sa = {0}, old;
	sa.sa_handler = on_sigpipe;
	sigemptyset(&sa.sa_mask);
	CHECK_EQ(sigaction(SIGPIPE, &sa, &old), 0);
	sigpipes = 0;
	tcp_pair(p);
	CHECK_EQ(cio_sock_buffers(p[1], 4096, 0), 0);
	struct io_job w = {.fd = p[0]};
	t = cio_spawn(send_until_error, &w);
	CHECK_EQ(cio_sleep(30 * MS), 0); /* the buffers fill; the writer waits */
	CHECK(w.started && !w.done);
	linger0(p[1]);
	CHECK_EQ(cio_close(p[1]), 0);
	join_rc(t);
	fprintf(stderr, "  writer after peer reset: %zd (%s) after %zu bytes\n",
		w.rc, cio_strerror((int)w.rc), w.bytes);
	CHECK(w.rc == -ECONNRESET || w.rc == -EPIPE);
	CHECK(w.bytes > 0);
	/* Unix sockets: every send call, peer gone. */
	int sp[2], one;
	CHECK_EQ(cio_socketpair(SOCK_STREAM, sp), 0);
	CHECK_EQ(cio_close(sp[1]), 0);
	one = sp[0];
	struct iovec iov = {"x", 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	CHECK_EQ(cio_send(sp[0], "x", 1, 0), -EPIPE);
	CHECK_EQ(cio_send_all(sp[0], "x", 1, 0, NULL), -EPIPE);
	CHECK_EQ(cio_sendmsg(sp[0], &m, 0), -EPIPE);
	CHECK_EQ(cio_sendto(sp[0], "x", 1, 0, NULL), -EPIPE);
	CHECK_EQ(cio_send_fds(sp[0], "x", 1, &one, 1), -EPIPE);
	CHECK_EQ(cio_close(sp[0]), 0);
	CHECK_EQ(sigpipes, 0);
	CHECK_EQ(sigaction(SIGPIPE, &old, NULL), 0);
	/* With SIGPIPE ignored (cio_run() sees to that), write() on the
	 * dead socket also returns -EPIPE. */
	CHECK_EQ(cio_write(p[0], "x", 1), -EPIPE);
	CHECK_EQ(cio_close(p[0]), 0);

	/* Reset while a writer is not blocked: the next send fails. */
	tcp_pair(p);
	linger0(p[1]);
	CHECK_EQ(cio_close(p[1]), 0);
	CHECK_EQ(cio_sleep(5 * MS), 0);
	ssize_t n = cio_send(p[0], "abc", 3, 0);
	CHECK(n == -ECONNRESET || n == -EPIPE);
	CHECK_EQ(cio_close(p[0]), 0);

	/* cio_send_all() to a peer that reads some, then resets: the error,
	 * and *moved at least what the peer read, less than asked. */
	tcp_pair(p);
	CHECK_EQ(cio_sock_buffers(p[1], 4096, 0), 0);
	struct read_reset rr = {p[1], 100 * 1024, 0};
	t = cio_spawn(read_then_reset, &rr);
	size_t big = 32 << 20, moved = 0;
	char *bulk = calloc(1, big);
	CHECK(bulk);
	n = cio_send_all(p[0], bulk, big, 0, &moved);
	join_rc(t);
	fprintf(stderr, "  send_all after peer reset: %zd (%s), %zu bytes went, %zu read\n",
		n, cio_strerror((int)n), moved, rr.got);
	CHECK(n == -ECONNRESET || n == -EPIPE);
	CHECK(moved >= rr.got && moved < big);
	free(bulk);
	CHECK_EQ(cio_close(p[0]), 0);
	CHECK_EQ(test_count_fds(), fds);
}

/* --- connect: refused, timeout, cancelled ----------------------------------- */

static void refused(const char *any)
{
	int fds = test_count_fds();
	char addr[80];
	/* A port that is bound but does not listen: nobody else can take
	 * it while we hold it, and a SYN to it gets a RST. */
	cio_addr a;
	CHECK_EQ(cio_addr_parse(&a, any), 0);
	int hold = cio_socket(a.u.sa.sa_family, SOCK_STREAM, 0);
	CHECK(hold >= 0);
	CHECK_EQ(bind(hold, &a.u.sa, a.len), 0);
	local_addr(hold, addr, sizeof addr);
	for (int i = 0; i < 3; i++) {
		int64_t t0 = cio_now();
		int rc = cio_connect(addr, 0);
		if (rc != -ECONNREFUSED)
			fprintf(stderr, "connect(%s) = %d (%s)\n", addr, rc, cio_strerror(rc));
		CHECK_EQ(rc, -ECONNREFUSED);
		CHECK(cio_now() - t0 < 1000 * MS);
	}
	CHECK_EQ(cio_close(hold), 0);
	CHECK_EQ(test_count_fds(), fds);
}

struct connect_job {
	const char *addr;
	int rc;
	int64_t took;
	int64_t timeout;
	volatile bool started, done;
};

static void *connect_task(void *arg)
{
	struct connect_job *j = arg;
	int64_t tok = j->timeout ? cio_timeout_push(j->timeout) : 0;
	int64_t t0 = cio_now();
	j->started = true;
	j->rc = cio_connect(j->addr, 0);
	j->took = cio_now() - t0;
	if (j->timeout)
		cio_deadline_pop(tok);
	j->done = true;
	return NULL;
}

/* Fills the listener's backlog with connections that are never accepted,
 * until a connect under a deadline of `timeout` times out.  Returns how
 * many connected; their fds go into held[]. */
static int fill_backlog(const char *addr, int64_t timeout, int *held, int max,
			int *last_rc, int64_t *last_took)
{
	int n = 0;
	for (int i = 0; i < max; i++) {
		int64_t tok = cio_timeout_push(timeout);
		int64_t t0 = cio_now();
		int fd = cio_connect(addr, 0);
		*last_took = cio_now() - t0;
		cio_deadline_pop(tok);
		*last_rc = fd;
		if (fd < 0)
			break;
		held[n++] = fd;
	}
	return n;
}

static void test_connect_timeout(void)
{
	int fds = test_count_fds();
	char addr[64];
	int lfd = cio_listen("127.0.0.1:0", &(cio_listen_opts){.backlog = 1});
	CHECK(lfd >= 0);
	local_addr(lfd, addr, sizeof addr);
	int held[64], rc;
	int64_t took;
	int n = fill_backlog(addr, 100 * MS, held, 64, &rc, &took);
	fprintf(stderr, "  TCP backlog 1: %d connections completed, then connect "
			"gave %d (%s) after %lld ms\n", n, rc, cio_strerror(rc),
		(long long)(took / MS));
	/* Linux drops SYNs once the accept queue holds backlog + 1. */
	CHECK(n < 64);
	CHECK_EQ(rc, -ETIMEDOUT);
	CHECK(took >= 100 * MS && took < 1100 * MS);
	/* Again, now that the queue is known to be full. */
	for (int i = 0; i < 2; i++) {
		int before = test_count_fds();
		int64_t tok = cio_timeout_push(100 * MS);
		int64_t t0 = cio_now();
		CHECK_EQ(cio_connect(addr, 0), -ETIMEDOUT);
		took = cio_now() - t0;
		cio_deadline_pop(tok);
		CHECK(took >= 100 * MS && took < 1100 * MS);
		CHECK_EQ(test_count_fds(), before);
	}
	/* A pending connect cancelled from another task. */
	struct connect_job j = {.addr = addr};
	cio_task_t t = cio_spawn(connect_task, &j);
	CHECK_EQ(cio_sleep(30 * MS), 0);
	CHECK(j.started && !j.done);
	CHECK_EQ(cio_cancel(t), 0);
	join_rc(t);
	CHECK_EQ(j.rc, -ECANCELED);
	CHECK(j.took < 1000 * MS);
	/* A deadline already passed: fails at once, opens nothing. */
	int64_t tok = cio_deadline_push(cio_now() - 1);
	CHECK_EQ(cio_connect(addr, 0), -ETIMEDOUT);
	cio_deadline_pop(tok);
	for (int i = 0; i < n; i++)
		CHECK_EQ(cio_close(held[i]), 0);
	CHECK_EQ(cio_close(lfd), 0);
	CHECK_EQ(test_count_fds(), fds);
}

/* A Unix listener with a full backlog: a connect waits for room, and gets
 * it once the server accepts.  Run in a child (see main()): a connect
 * that never honours its deadline must fail the test, not hang it. */
static void *unix_backlog(void *arg)
{
	(void)arg;
	int fds = test_count_fds();
	char addr[80];
	snprintf(addr, sizeof addr, "unix:@coreio-faults-%d-backlog", (int)getpid());
	int lfd = cio_listen(addr, &(cio_listen_opts){.backlog = 1});
	CHECK(lfd >= 0);
	int held[64], rc;
	int64_t took;
	int n = fill_backlog(addr, 50 * MS, held, 64, &rc, &took);
	fprintf(stderr, "  Unix backlog 1: %d connections completed, then connect "
			"gave %d (%s) after %lld ms\n", n, rc, cio_strerror(rc),
		(long long)(took / MS));
	CHECK(n < 64);
	CHECK_EQ(rc, -ETIMEDOUT);
	struct connect_job j = {.addr = addr, .timeout = 3000 * MS};
	cio_task_t t = cio_spawn(connect_task, &j);
	cio_stats st0, st1;
	cio_stats_get(&st0);
	CHECK_EQ(cio_sleep(50 * MS), 0);
	cio_stats_get(&st1);
	CHECK(j.started && !j.done);
	/* Waiting must not spin the scheduler. */
	fprintf(stderr, "  Unix connect waiting for room: %llu ticks in 50 ms\n",
		(unsigned long long)(st1.ticks - st0.ticks));
	int s = cio_accept(lfd, NULL); /* makes room */
	CHECK(s >= 0);
	join_rc(t);
	if (j.rc < 0)
		fprintf(stderr, "  connect once the backlog had room: %d (%s) after %lld ms\n",
			j.rc, cio_strerror(j.rc), (long long)(j.took / MS));
	CHECK(j.rc >= 0);
	CHECK(j.took < 2000 * MS);
	CHECK(st1.ticks - st0.ticks < 1000);
	CHECK_EQ(cio_close(j.rc), 0);
	CHECK_EQ(cio_close(s), 0);
	for (int i = 0; i < n; i++)
		CHECK_EQ(cio_close(held[i]), 0);
	CHECK_EQ(cio_close(lfd), 0);
	CHECK_EQ(test_count_fds(), fds);
	return NULL;
}

/* --- accept out of fds ---------------------------------------------------------- */

static int highest_fd(void)
{
	int hi = -1;
	DIR *d = opendir("/proc/self/fd");
	CHECK(d);
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) > hi)
			hi = atoi(e->d_name);
	closedir(d);
	return hi;
}

static void test_accept_emfile(void)
{
	int fds = test_count_fds();
	char addr[64], buf[8];
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	local_addr(lfd, addr, sizeof addr);
	int c = cio_connect(addr, 0); /* queued, to be accepted */
	CHECK(c >= 0);

	/* Take every free number up to the highest open one, then lower the
	 * soft limit just above it: the next fd cannot be had. */
	static int filler[4096];
	int nfill = 0, hi = highest_fd();
	for (;;) {
		CHECK(nfill < 4096);
		int d = open("/dev/null", O_RDONLY | O_CLOEXEC);
		CHECK(d >= 0);
		filler[nfill++] = d;
		if (d >= hi)
			break;
	}
	struct rlimit old, low;
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)filler[nfill - 1] + 1;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
	CHECK_EQ(dup(0), -1);
	CHECK_EQ(errno, EMFILE);

	/* Out of fds: -EMFILE after a pause, so that a loop retrying at
	 * once does not spin. */
	int64_t t0 = cio_now();
	int rc = cio_accept(lfd, NULL);
	int64_t first = cio_now() - t0;
	int loops = 0, other = 0;
	t0 = cio_now();
	while (cio_now() - t0 < 200 * MS && loops < 100000) {
		int r = cio_accept(lfd, NULL);
		if (r != -EMFILE)
			other = r;
		loops++;
	}
	/* A deadline shorter than the pause ends it. */
	int64_t tok = cio_timeout_push(2 * MS);
	int64_t t1 = cio_now();
	int rc_dl = cio_accept(lfd, NULL);
	int64_t took_dl = cio_now() - t1;
	cio_deadline_pop(tok);

	/* Free one number and restore the limit before any CHECK can fail
	 * (and before anything here needs an fd). */
	close(filler[--nfill]);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
	fprintf(stderr, "  accept out of fds: %d (%s) after %.1f ms; %d retries "
			"in 200 ms; under a 2 ms deadline %d after %.1f ms\n",
		rc, cio_strerror(rc), (double)first / MS, loops, rc_dl,
		(double)took_dl / MS);
	CHECK_EQ(rc, -EMFILE);
	CHECK(first >= 5 * MS);
	CHECK_EQ(other, 0);
	CHECK(loops >= 1 && loops < 100);
	CHECK(rc_dl == -ETIMEDOUT || rc_dl == -EMFILE);
	CHECK(took_dl < 500 * MS);

	/* The connection stayed queued: accepted and served now. */
	int s = cio_accept(lfd, NULL);
	CHECK(s >= 0);
	CHECK_EQ(cio_send(s, "served", 6, 0), 6);
	size_t got;
	CHECK_EQ(cio_recv_exact(c, buf, 6, 0, &got), 6);
	CHECK(memcmp(buf, "served", 6) == 0);
	while (nfill > 0)
		close(filler[--nfill]);
	CHECK_EQ(cio_close(s), 0);
	CHECK_EQ(cio_close(c), 0);
	CHECK_EQ(cio_close(lfd), 0);
	CHECK_EQ(test_count_fds(), fds);
}

/* --- cancel and deadline: no data lost -------------------------------------------- */

struct rx_job {
	int fd;
	int64_t timeout;   /* > 0: the first receive runs under it */
	ssize_t first;     /* the interrupted receive's result */
	int64_t took;
	char data[64];     /* what the next receive got */
	ssize_t second;
	volatile bool interrupted, done;
};

/* A receive that gets interrupted, then one that must get the data sent
 * after the interruption. */
static void *rx_twice(void *arg)
{
	struct rx_job *j = arg;
	int64_t t0 = cio_now();
	int64_t tok = j->timeout ? cio_timeout_push(j->timeout) : 0;
	j->first = cio_recv(j->fd, j->data, sizeof j->data, 0);
	if (j->timeout)
		cio_deadline_pop(tok);
	j->took = cio_now() - t0;
	cio_cancel_clear();
	j->interrupted = true;
	tok = cio_timeout_push(5000 * MS);
	j->second = cio_recv(j->fd, j->data, sizeof j->data, 0);
	cio_deadline_pop(tok);
	j->done = true;
	return NULL;
}

struct race_job {
	int fd;
	volatile bool parked, finished;
	ssize_t rc;
	uint8_t buf[64];
};

static void *rx_once(void *arg)
{
	struct race_job *j = arg;
	j->parked = true;
	j->rc = cio_recv(j->fd, j->buf, sizeof j->buf, 0);
	j->finished = true;
	return NULL;
}

struct tx_job {
	int fd;
	const uint8_t *data;
	size_t len;
	ssize_t rc;
	size_t sent;
};

static void *tx_all(void *arg)
{
	struct tx_job *j = arg;
	j->rc = cio_send_all(j->fd, j->data, j->len, 0, &j->sent);
	return NULL;
}

static void test_interrupted_transfers(void)
{
	int fds = test_count_fds();
	int p[2];
	tcp_pair(p);

	/* Cancelled from another task. */
	struct rx_job j = {.fd = p[1]};
	cio_task_t t = cio_spawn(rx_twice, &j);
	CHECK_EQ(cio_sleep(20 * MS), 0);
	CHECK(!j.interrupted);
	CHECK_EQ(cio_cancel(t), 0);
	wait_flag(&j.interrupted);
	CHECK_EQ(j.first, -ECANCELED);
	CHECK(j.took < 2000 * MS);
	CHECK_EQ(cio_send(p[0], "after-cancel", 12, 0), 12);
	join_rc(t);
	CHECK_EQ(j.second, 12);
	CHECK(memcmp(j.data, "after-cancel", 12) == 0);

	/* Under a deadline. */
	struct rx_job d = {.fd = p[1], .timeout = 50 * MS};
	t = cio_spawn(rx_twice, &d);
	wait_flag(&d.interrupted);
	CHECK_EQ(d.first, -ETIMEDOUT);
	CHECK(d.took >= 50 * MS && d.took < 1050 * MS);
	CHECK_EQ(cio_send(p[0], "after-deadline", 14, 0), 14);
	join_rc(t);
	CHECK_EQ(d.second, 14);
	CHECK(memcmp(d.data, "after-deadline", 14) == 0);

	/* cio_recv_exact() cut short by a deadline: -ETIMEDOUT, and *moved
	 * says what came; the rest follows. */
	CHECK_EQ(cio_send(p[0], "01234", 5, 0), 5);
	char ten[10];
	size_t part = 0;
	int64_t tok = cio_timeout_push(30 * MS);
	CHECK_EQ(cio_recv_exact(p[1], ten, sizeof ten, 0, &part), -ETIMEDOUT);
	cio_deadline_pop(tok);
	CHECK_EQ(part, 5);
	CHECK_EQ(cio_send(p[0], "56789", 5, 0), 5);
	CHECK_EQ(cio_recv_exact(p[1], ten + part, sizeof ten - part, 0, NULL), 5);
	CHECK(memcmp(ten, "0123456789", 10) == 0);

	/* Data and cancel in the same tick, many times: the receive returns
	 * the data or -ECANCELED, and in the latter case the data is still
	 * there for the next receive.  Nothing lost, nothing doubled. */
	int as_data = 0, as_cancel = 0;
	for (int i = 0; i < 300; i++) {
		struct race_job r = {.fd = p[1]};
		t = cio_spawn(rx_once, &r);
		for (int k = 0; k < 3; k++)
			CHECK_EQ(cio_yield(), 0);
		CHECK(r.parked);
		uint8_t msg[32];
		size_t len = 1 + (size_t)i % sizeof msg;
		for (size_t k = 0; k < len; k++)
			msg[k] = (uint8_t)(i * 7 + (int)k);
		/* A send through the runtime (the sender parks, so on io_uring
		 * the receive completes in the same batch), or straight to the
		 * kernel (the receive's completion and the cancel race inside
		 * the kernel). */
		if (i % 3 == 2)
			CHECK_EQ(send(p[0], msg, len, MSG_DONTWAIT), (ssize_t)len);
		else
			CHECK_EQ(cio_send(p[0], msg, len, 0), len);
		if (i % 2)
			CHECK_EQ(cio_yield(), 0); /* let the completion land */
		/* A task that already finished cannot be cancelled. */
		int c = cio_cancel(t);
		CHECK(c == 0 || (c == -ESRCH && r.finished));
		join_rc(t);
		size_t have = 0;
		if (r.rc == -ECANCELED) {
			as_cancel++;
		} else {
			CHECK(r.rc > 0);
			as_data++;
			have = (size_t)r.rc;
		}
		size_t got = 0;
		if (have < len)
			CHECK_EQ(cio_recv_exact(p[1], r.buf + have, len - have, 0, &got),
				 len - have);
		CHECK(memcmp(r.buf, msg, len) == 0);
	}
	fprintf(stderr, "  receive racing a cancel: %d returned data, %d -ECANCELED\n",
		as_data, as_cancel);
	CHECK(as_data + as_cancel == 300);
	CHECK(as_data > 0);
	/* On epoll the receive parks until the cancel, which then wins
	 * whenever no byte had arrived yet.  On io_uring the bytes reach the
	 * ring before the cancel does, so it is data every time. */
	if (strcmp(cio_backend_name(), "io_uring") != 0) /* readiness */
		CHECK(as_cancel > 0);
	char probe;
	CHECK_EQ(recv(p[1], &probe, 1, MSG_DONTWAIT), -1); /* nothing doubled */
	CHECK_EQ(errno, EAGAIN);

	/* A blocked send cancelled: *moved says exactly what went, and the
	 * rest can follow. */
	size_t len = 4 << 20;
	uint8_t *data = malloc(len), *back = malloc(len);
	CHECK(data && back);
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 131 + (i >> 9));
	struct tx_job x = {.fd = p[0], .data = data, .len = len};
	t = cio_spawn(tx_all, &x);
	CHECK_EQ(cio_sleep(20 * MS), 0);
	CHECK_EQ(cio_cancel(t), 0);
	join_rc(t);
	CHECK_EQ(x.rc, -ECANCELED);
	CHECK(x.sent < len);
	fprintf(stderr, "  send_all cancelled after %zu of %zu bytes\n", x.sent, len);
	struct tx_job rest = {.fd = p[0], .data = data + x.sent, .len = len - x.sent};
	t = cio_spawn(tx_all, &rest);
	size_t got = 0;
	tok = cio_timeout_push(10000 * MS);
	CHECK_EQ(cio_recv_exact(p[1], back, len, 0, &got), len);
	cio_deadline_pop(tok);
	join_rc(t);
	CHECK_EQ(rest.rc, len - x.sent);
	CHECK(memcmp(back, data, len) == 0);
	free(data);
	free(back);
	close_pair(p);
	CHECK_EQ(test_count_fds(), fds);
}

/* --- close while others wait ------------------------------------------------------ */

struct blocked {
	int fd;
	int kind; /* 0 recv, 1 accept, 2 wait_readable, 3 send_all */
	int rc;
	int64_t took;
	volatile bool started, done;
};

static void *block_on(void *arg)
{
	struct blocked *b = arg;
	static char buf[1 << 20];
	int64_t tok = cio_timeout_push(5000 * MS);
	int64_t t0 = cio_now();
	b->started = true;
	switch (b->kind) {
	case 0: b->rc = (int)cio_recv(b->fd, buf, sizeof buf, 0); break;
	case 1: b->rc = cio_accept(b->fd, NULL); break;
	case 2: b->rc = cio_wait_readable(b->fd); break;
	case 3:
		for (int i = 0; i < 1000; i++)
			if ((b->rc = (int)cio_send_all(b->fd, buf, sizeof buf, 0, NULL)) < 0)
				break;
		break;
	}
	b->took = cio_now() - t0;
	cio_deadline_pop(tok);
	b->done = true;
	return NULL;
}

static void close_under(int fd, struct blocked *b, int nb)
{
	cio_task_t t[4];
	for (int i = 0; i < nb; i++)
		t[i] = cio_spawn(block_on, &b[i]);
	CHECK_EQ(cio_sleep(20 * MS), 0);
	for (int i = 0; i < nb; i++)
		CHECK(b[i].started && !b[i].done);
	CHECK_EQ(cio_close(fd), 0);
	CHECK(!fd_open(fd));
	for (int i = 0; i < nb; i++) {
		join_rc(t[i]);
		if (b[i].rc != -EBADF)
			fprintf(stderr, "blocked call %d on a closed fd: %d (%s) after %lld ms\n",
				b[i].kind, b[i].rc, cio_strerror(b[i].rc),
				(long long)(b[i].took / MS));
		CHECK_EQ(b[i].rc, -EBADF);
		CHECK(b[i].took < 4000 * MS);
	}
}

static void test_close_while_blocked(void)
{
	int fds = test_count_fds();
	int p[2];
	/* recv, and a readiness wait beside it. */
	tcp_pair(p);
	struct blocked b[2] = {{.fd = p[1], .kind = 0}, {.fd = p[1], .kind = 2}};
	close_under(p[1], b, 2);
	CHECK_EQ(cio_close(p[0]), 0);
	/* accept */
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	struct blocked a = {.fd = lfd, .kind = 1};
	close_under(lfd, &a, 1);
	/* a send waiting for room */
	tcp_pair(p);
	struct blocked s = {.fd = p[0], .kind = 3};
	close_under(p[0], &s, 1);
	CHECK_EQ(cio_close(p[1]), 0);
	/* a pipe read */
	CHECK_EQ(cio_pipe(p), 0);
	struct blocked r = {.fd = p[0], .kind = 2};
	close_under(p[0], &r, 1);
	CHECK_EQ(cio_close(p[1]), 0);
	CHECK_EQ(test_count_fds(), fds);
}

/* Closing one fd wakes only the tasks blocked on that number: not a task
 * on another connection, nor one on a duplicate of the same socket (which
 * stays open, as dup(2) promises). */
static void test_close_only_that_fd(void)
{
	int fds = test_count_fds();
	int p[2], q[2];
	tcp_pair(p);
	tcp_pair(q);
	int dup_fd = fcntl(q[1], F_DUPFD_CLOEXEC, 0);
	CHECK(dup_fd >= 0);
	CHECK_EQ(cio_fd_adopt(dup_fd), 0);
	struct io_job other = {.fd = p[1]}, same = {.fd = dup_fd};
	struct blocked victim = {.fd = q[1], .kind = 0};
	cio_task_t t1 = cio_spawn(blocked_recv, &other);
	cio_task_t t2 = cio_spawn(blocked_recv, &same);
	close_under(q[1], &victim, 1);
	CHECK_EQ(cio_sleep(10 * MS), 0);
	if (same.done)
		fprintf(stderr, "recv on a dup of the closed fd: %zd (%s)\n", same.rc,
			cio_strerror((int)same.rc));
	CHECK(!other.done);
	CHECK(!same.done);
	CHECK_EQ(cio_send(p[0], "p", 1, 0), 1);
	CHECK_EQ(cio_send(q[0], "q", 1, 0), 1);
	join_rc(t1);
	join_rc(t2);
	CHECK_EQ(other.rc, 1);
	CHECK_EQ(same.rc, 1);
	CHECK_EQ(cio_close(dup_fd), 0);
	CHECK_EQ(cio_close(q[0]), 0);
	close_pair(p);
	CHECK_EQ(test_count_fds(), fds);
}

/* --- signals -------------------------------------------------------------------- */

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void *late_send(void *arg)
{
	int fd = *(int *)arg;
	CHECK_EQ(cio_sleep(100 * MS), 0);
	CHECK_EQ(cio_send(fd, "signal-proof", 12, 0), 12);
	return NULL;
}

static void *late_connect(void *arg)
{
	const char *addr = arg;
	CHECK_EQ(cio_sleep(60 * MS), 0);
	int fd = cio_connect(addr, 0);
	CHECK(fd >= 0);
	CHECK_EQ(cio_close(fd), 0);
	return NULL;
}

static void test_eintr(void)
{
	int fds = test_count_fds();
	struct sigaction sa = {0}, old;
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: interrupted syscalls fail EINTR */
	CHECK_EQ(sigaction(SIGALRM, &sa, &old), 0);
	struct itimerval it = {{0, 2000}, {0, 2000}}, off = {{0, 0}, {0, 0}};
	alarms = 0;
	CHECK_EQ(setitimer(ITIMER_REAL, &it, NULL), 0);

	int p[2];
	tcp_pair(p);
	cio_task_t t = cio_spawn(late_send, &p[0]);
	char buf[64];
	int64_t tok = cio_timeout_push(5000 * MS);
	ssize_t n = cio_recv(p[1], buf, sizeof buf, 0);
	int during_recv = alarms;
	join_rc(t);
	/* A sleep is not cut short either. */
	int64_t t0 = cio_now();
	int slept = cio_sleep(30 * MS);
	int64_t took = cio_now() - t0;
	/* accept, and a readiness wait. */
	char addr[64];
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	local_addr(lfd, addr, sizeof addr);
	t = cio_spawn(late_connect, addr);
	int s = cio_accept(lfd, NULL);
	join_rc(t);
	t = cio_spawn(late_send, &p[0]);
	int w = cio_wait_readable(p[1]);
	join_rc(t);
	cio_deadline_pop(tok);

	CHECK_EQ(setitimer(ITIMER_REAL, &off, NULL), 0);
	CHECK_EQ(sigaction(SIGALRM, &old, NULL), 0);
	fprintf(stderr, "  %d signals in all, %d during the receive\n", (int)alarms,
		during_recv);
	CHECK(during_recv > 0);
	if (n != 12)
		fprintf(stderr, "recv under signals: %zd (%s)\n", n, cio_strerror((int)n));
	CHECK_EQ(n, 12);
	CHECK(memcmp(buf, "signal-proof", 12) == 0);
	CHECK_EQ(slept, 0);
	CHECK(took >= 30 * MS);
	CHECK(s >= 0);
	CHECK(w > 0 && (w & POLLIN));
	CHECK_EQ(cio_recv(p[1], buf, sizeof buf, 0), 12);
	CHECK_EQ(cio_close(s), 0);
	CHECK_EQ(cio_close(lfd), 0);
	close_pair(p);
	CHECK_EQ(test_count_fds(), fds);
}

/* --- bad fds -------------------------------------------------------------------- */

static void test_bad_fds(void)
{
	char buf[8];
	int sp[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, sp), 0);
	int dead = sp[1];
	CHECK_EQ(cio_close(sp[1]), 0);
	CHECK_EQ(cio_recv(dead, buf, sizeof buf, 0), -EBADF);
	CHECK_EQ(cio_send(dead, buf, 1, 0), -EBADF);
	CHECK_EQ(cio_read(dead, buf, 1), -EBADF);
	CHECK_EQ(cio_write(dead, buf, 1), -EBADF);
	CHECK_EQ(cio_accept(dead, NULL), -EBADF);
	CHECK_EQ(cio_wait_readable(dead), -EBADF);
	CHECK_EQ(cio_recv(-1, buf, sizeof buf, 0), -EBADF);
	CHECK_EQ(cio_send(-1, buf, 1, 0), -EBADF);
	/* Not a socket. */
	int p[2];
	CHECK_EQ(cio_pipe(p), 0);
	CHECK_EQ(cio_recv(p[0], buf, sizeof buf, 0), -ENOTSOCK);
	CHECK_EQ(cio_accept(p[0], NULL), -ENOTSOCK);
	CHECK_EQ(cio_close(p[0]), 0);
	CHECK_EQ(cio_close(p[1]), 0);
	CHECK_EQ(cio_close(sp[0]), 0);
}

/* --- in child processes, before any runtime runs here ----------------------------- */

/* Runs fn in a child under an alarm; returns the wait status. */
static int in_child(void (*fn)(void), unsigned timeout_s)
{
	fflush(stderr);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		alarm(timeout_s);
		fn();
		_exit(0);
	}
	int st;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	return st;
}

/* Whether the child passed; with may_skip, a child that found nothing to
 * test here (exit 77) passes too.  Only the seccomp child may: the others
 * exit 77 when the backend under test cannot start, and then main skips
 * the whole test. */
static bool child_ok(const char *what, int st, bool may_skip)
{
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return true;
	if (may_skip && WIFEXITED(st) && WEXITSTATUS(st) == 77) {
		fprintf(stderr, "  %s: skipped\n", what);
		return true;
	}
	if (WIFSIGNALED(st))
		fprintf(stderr, "  %s: child killed by signal %d%s\n", what, WTERMSIG(st),
			WTERMSIG(st) == SIGALRM ? " (it hung)" : "");
	else
		fprintf(stderr, "  %s: child exited %d\n", what, WEXITSTATUS(st));
	return false;
}

/* Runs fn as the main task of a runtime on the backend under test and
 * exits: 0 when it ran and the runtime ended well, 77 when the backend
 * cannot start here, 1 otherwise. */
static cio_fn *child_fn;
static bool child_ran;
static void *child_main(void *arg)
{
	child_ran = true;
	return child_fn(arg);
}

static _Noreturn void run_child(cio_fn *fn)
{
	cio_config cfg = test_backend_config();
	child_fn = fn;
	int rc = cio_run_with(&cfg, child_main, NULL);
	if (rc != 0)
		fprintf(stderr, "  child runtime: %s\n", cio_strerror(rc));
	/* Not started: a skip only for a documented reason. */
	_exit(!child_ran ? (test_skip_reason(rc) ? 77 : 1) : rc == 0 ? 0 : 1);
}

/* A blocking network call outside a task aborts, naming the call. */
static void recv_outside_task(void)
{
	int sp[2];
	char c;
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	cio_recv(sp[0], &c, 1, 0);
	_exit(0); /* not reached */
}

static bool outside_task_aborts(void)
{
	int p[2];
	CHECK_EQ(pipe(p), 0);
	fflush(stderr);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		alarm(5);
		recv_outside_task();
	}
	close(p[1]);
	char out[1024];
	size_t n = 0;
	ssize_t r;
	while (n + 1 < sizeof out && (r = read(p[0], out + n, sizeof out - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = 0;
	close(p[0]);
	int st;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	bool ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(out, "cio_recv");
	if (!ok)
		fprintf(stderr, "  cio_recv outside a task: status %#x, said \"%s\"\n", st, out);
	return ok;
}

/* cio_wait_readable() on a negative fd: -EBADF, on every backend. */
static void *wait_negative(void *arg)
{
	(void)arg;
	CHECK_EQ(cio_wait_readable(-1), -EBADF);
	CHECK_EQ(cio_wait_writable(-5), -EBADF);
	return NULL;
}

static void negative_fd_child(void)
{
	run_child(wait_negative);
}

/* SIGPIPE at its default: cio_run() makes write() to a broken pipe
 * return -EPIPE instead of killing the process. */
static void *broken_pipe(void *arg)
{
	(void)arg;
	int p[2];
	CHECK_EQ(cio_pipe(p), 0);
	CHECK_EQ(cio_close(p[0]), 0);
	CHECK_EQ(cio_write(p[1], "x", 1), -EPIPE);
	CHECK_EQ(cio_close(p[1]), 0);
	int sp[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, sp), 0);
	CHECK_EQ(cio_close(sp[1]), 0);
	CHECK_EQ(cio_send(sp[0], "x", 1, 0), -EPIPE);
	CHECK_EQ(cio_write(sp[0], "x", 1), -EPIPE);
	CHECK_EQ(cio_close(sp[0]), 0);
	return NULL;
}

static void sigpipe_child(void)
{
	signal(SIGPIPE, SIG_DFL);
	run_child(broken_pipe);
}

#ifdef COREIO_TEST_SECCOMP
/* With io_uring_setup() forbidden by seccomp: AUTO falls back to epoll
 * and says why; a forced io_uring fails with -EPERM. */
static const char *seen_name, *seen_reason;
static char reason_copy[160];

static void *on_fallback(void *arg)
{
	(void)arg;
	seen_name = cio_backend_name();
	seen_reason = cio_backend_reason();
	if (seen_reason)
		snprintf(reason_copy, sizeof reason_copy, "%s", seen_reason);
	net_pair_roundtrip("epoll");
	return NULL;
}

static void *noop(void *arg)
{
	(void)arg;
	return NULL;
}

static void seccomp_child(void)
{
	unsetenv("COREIO_BACKEND"); /* AUTO must decide alone */
	/* io_uring must work here without the filter, or there is nothing
	 * to fall back from. */
	cio_config uring = {.backend = CIO_BACKEND_URING};
	if (cio_run_with(&uring, noop, NULL) != 0)
		_exit(test_backend_required("uring") ? 1 : 77);
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	CHECK(ctx);
	CHECK_EQ(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(io_uring_setup), 0), 0);
	if (seccomp_load(ctx) != 0) {
		fprintf(stderr, "  seccomp_load failed: cannot test the fallback\n");
		_exit(77);
	}
	seccomp_release(ctx);

	cio_config cfg = {.backend = CIO_BACKEND_AUTO};
	CHECK_EQ(cio_run_with(&cfg, on_fallback, NULL), 0);
	fprintf(stderr, "  seccomp: AUTO chose %s: \"%s\"\n", seen_name ? seen_name : "?",
		reason_copy);
	CHECK(seen_name && strcmp(seen_name, "epoll") == 0);
	CHECK(seen_reason != NULL);
	CHECK(strcmp(reason_copy, "EPERM (seccomp or container policy)") == 0);
	CHECK(cio_backend_reason() == NULL); /* outside a runtime */
	CHECK_EQ(cio_run_with(&uring, noop, NULL), -EPERM);
	CHECK_EQ(cio_run(on_fallback, NULL), 0); /* cio_run() is AUTO too */
	CHECK(strcmp(reason_copy, "EPERM (seccomp or container policy)") == 0);
	_exit(0);
}
#endif

static void unix_backlog_child(void)
{
	run_child(unix_backlog);
}

static void *test_main(void *arg)
{
	(void)arg;
	fprintf(stderr, "backend %s\n", cio_backend_name());
	TEST_CASE(bad_fds, test_bad_fds());
	TEST_CASE(reset, test_reset());
	TEST_CASE(refused, {
		refused("127.0.0.1:0");
		if (have_ipv6())
			refused("[::1]:0");
	});
	TEST_CASE(connect_timeout, test_connect_timeout());
	TEST_CASE(accept_emfile, test_accept_emfile());
	TEST_CASE(interrupted_transfers, test_interrupted_transfers());
	TEST_CASE(eintr, test_eintr());
	TEST_CASE(close_while_blocked, test_close_while_blocked());
	TEST_CASE(close_only_that_fd, test_close_only_that_fd());
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	/* Children first: a fork from inside a runtime would inherit it,
	 * and the SIGPIPE child wants a process where none has run yet. */
	bool ok = true;
	TEST_CASE(sigpipe_default,
		  ok &= child_ok("SIGPIPE at its default", in_child(sigpipe_child, 10), true));
#ifdef COREIO_TEST_SECCOMP
	TEST_CASE(seccomp_fallback,
		  ok &= child_ok("seccomp fallback", in_child(seccomp_child, 10), true));
#else
	TEST_CASE_OFF(seccomp_fallback, "no libseccomp for this target");
#endif
	TEST_CASE(negative_fd,
		  ok &= child_ok("wait on a negative fd", in_child(negative_fd_child, 5), true));
	TEST_CASE(unix_full_backlog,
		  ok &= child_ok("Unix connect to a full backlog",
				 in_child(unix_backlog_child, 10), true));
	TEST_CASE(outside_task_aborts, ok &= outside_task_aborts());
	/* A child's failure is never hidden by a skip: children skip (77)
	 * only for the documented reasons, and then so does the whole. */
	CHECK(ok);
	int rc = test_backend_missing();
	if (rc)
		return rc;
	rc = test_run(test_main, NULL);
	return rc ? rc : test_cases_end();
}
