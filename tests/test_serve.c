/* test_serve.c - cio_serve_fd() and cio_serve(): connections served on
 * tasks of their own until the drain, the connection limit, errors lived
 * through (out of fds, a connection that gets no task), a listener that
 * is not one, a drain whose timeout cancels what still runs, and idle
 * connections that hold no task between messages. */
#include "check.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define MS CIO_MS

struct counts {
	int started, running, peak, errors, last_error;
	bool ignore_cancel; /* the handler serves on through a cancel */
	int ended_by;       /* what ended the last handler's receive */
};

/* Echoes until the peer closes. */
static int echo(void *arg, int fd)
{
	struct counts *c = arg;
	c->started++;
	if (++c->running > c->peak)
		c->peak = c->running;
	char buf[256];
	ssize_t n;
	while ((n = cio_recv(fd, buf, sizeof buf, 0)) > 0)
		if (cio_send_all(fd, buf, (size_t)n, 0, NULL) != n)
			break;
	c->ended_by = (int)n;
	c->running--;
	cio_close(fd);
	return CIO_SERVE_DONE;
}

static void count_error(void *arg, int err)
{
	struct counts *c = arg;
	c->errors++;
	c->last_error = err;
}

static int local_port(int fd)
{
	cio_addr a = {.len = sizeof a.u};
	CHECK_EQ(getsockname(fd, &a.u.sa, &a.len), 0);
	return ntohs(a.u.in.sin_port);
}

static int dial(int port)
{
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	int fd = cio_connect(addr, 0);
	CHECK(fd >= 0);
	return fd;
}

/* Sends a message and reads its echo; returns 0 or what went wrong. */
static int round_trip(int fd, const char *msg)
{
	size_t len = strlen(msg);
	char buf[64];
	if (cio_send_all(fd, msg, len, 0, NULL) != (ssize_t)len)
		return -EIO;
	size_t got = 0;
	while (got < len) {
		ssize_t n = cio_recv(fd, buf + got, len - got, 0);
		if (n <= 0)
			return n < 0 ? (int)n : -EPIPE;
		got += (size_t)n;
	}
	return memcmp(buf, msg, len) == 0 ? 0 : -EBADMSG;
}

struct serving {
	int lfd;
	cio_serve_opts opts;
	struct counts c;
	int rc;
};

static void *serve_task(void *arg)
{
	struct serving *s = arg;
	s->rc = cio_serve_fd(s->lfd, &s->opts, echo, &s->c);
	return NULL;
}

static void settle(void)
{
	CHECK_EQ(cio_sleep(20 * MS), 0);
}

/* The drain ends serving task t cleanly; its listener is then closed. */
static void end_serving(cio_task_t t, int lfd)
{
	CHECK_EQ(cio_drain(), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(cio_close(lfd), 0);
}

/* Many clients at once, each echoed; the drain ends serving once they
 * have closed, and leaves the listener to its owner. */
static void *basic(void *arg)
{
	(void)arg;
	struct serving s = {.lfd = cio_listen("127.0.0.1:0", NULL), .rc = 1};
	CHECK(s.lfd >= 0);
	cio_task_t t = cio_spawn(serve_task, &s);
	int port = local_port(s.lfd), fds[50];
	for (int i = 0; i < 50; i++)
		fds[i] = dial(port);
	for (int i = 0; i < 50; i++)
		CHECK_EQ(round_trip(fds[i], "hello"), 0);
	CHECK_EQ(s.c.started, 50);
	CHECK_EQ(s.c.running, 50);
	CHECK_EQ(cio_drain(), 0);
	settle();
	CHECK_EQ(s.rc, 1); /* still waiting for its connections */
	CHECK_EQ(round_trip(fds[7], "still served"), 0);
	for (int i = 0; i < 50; i++)
		CHECK_EQ(cio_close(fds[i]), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(s.rc, 0);
	CHECK_EQ(s.c.running, 0);
	CHECK_EQ(s.c.errors, 0);
	CHECK_EQ(cio_close(s.lfd), 0);
	return NULL;
}

/* At the limit the next client waits in the backlog: connected, not
 * served, until a connection ends. */
static void *limit(void *arg)
{
	(void)arg;
	struct serving s = {.lfd = cio_listen("127.0.0.1:0", NULL), .opts = {.max_conns = 2}};
	CHECK(s.lfd >= 0);
	cio_task_t t = cio_spawn(serve_task, &s);
	int port = local_port(s.lfd);
	int a = dial(port), b = dial(port), c = dial(port);
	CHECK_EQ(round_trip(a, "a"), 0);
	CHECK_EQ(round_trip(b, "b"), 0);
	CHECK_EQ(cio_send_all(c, "c", 1, 0, NULL), 1);
	settle();
	CHECK_EQ(s.c.started, 2);
	char ch;
	CHECK_EQ(cio_recv(c, &ch, 1, MSG_DONTWAIT), -EAGAIN); /* not served */
	CHECK_EQ(cio_close(a), 0);
	CHECK_EQ(cio_recv(c, &ch, 1, 0), 1); /* now it is */
	CHECK_EQ(ch, 'c');
	CHECK_EQ(s.c.started, 3);
	CHECK_EQ(s.c.peak, 2);
	CHECK_EQ(cio_close(b), 0);
	CHECK_EQ(cio_close(c), 0);
	CHECK_EQ(cio_drain(), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(s.rc, 0);
	CHECK_EQ(cio_close(s.lfd), 0);
	return NULL;
}

/* Out of fds: accepting fails with -EMFILE, told to the error hook, and
 * serving goes on once fds are back.  The limit is lowered before
 * serving starts (io_uring's accept keeps the limit of its start), with
 * room to spare; the room is then filled, all but the client's end. */
static void *out_of_fds(void *arg)
{
	(void)arg;
	struct serving s = {.lfd = cio_listen("127.0.0.1:0", NULL), .opts = {.error = count_error}};
	CHECK(s.lfd >= 0);
	int port = local_port(s.lfd);
	struct rlimit old, low;
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	int spare = dup(0);
	CHECK(spare >= 0);
	low = old;
	low.rlim_cur = (rlim_t)spare + 32;
	CHECK_EQ(close(spare), 0);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
	cio_task_t t = cio_spawn(serve_task, &s);
	int a = dial(port);
	CHECK_EQ(round_trip(a, "first"), 0);
	int fill[32], nfill = 0;
	while (nfill < 32 && (fill[nfill] = dup(0)) >= 0)
		nfill++;
	CHECK(nfill > 0 && nfill < 32);
	CHECK_EQ(close(fill[--nfill]), 0); /* room for b's client end only */
	int b = dial(port);
	CHECK_EQ(cio_sleep(50 * MS), 0);
	CHECK(s.c.errors >= 1);
	CHECK_EQ(s.c.last_error, -EMFILE);
	CHECK_EQ(s.c.started, 1);
	while (nfill > 0)
		CHECK_EQ(close(fill[--nfill]), 0);
	CHECK_EQ(round_trip(b, "second"), 0); /* kept in the backlog */
	CHECK_EQ(s.c.started, 2);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
	CHECK_EQ(cio_close(a), 0);
	CHECK_EQ(cio_close(b), 0);
	end_serving(t, s.lfd);
	return NULL;
}

/* Clients that wait while serving is at its limit, in the kernel's
 * backlog or already accepted by io_uring's multishot accept, are let go
 * when the drain shuts the listener: never served, no fd left behind. */
static void *waiting_at_drain(void *arg)
{
	(void)arg;
	int fds0 = test_count_fds();
	struct serving s = {.lfd = cio_listen("127.0.0.1:0", NULL), .opts = {.max_conns = 1},
			    .rc = 1};
	CHECK(s.lfd >= 0);
	cio_task_t t = cio_spawn(serve_task, &s);
	int port = local_port(s.lfd);
	int a = dial(port);
	CHECK_EQ(round_trip(a, "a"), 0);
	int b = dial(port), c = dial(port);
	CHECK_EQ(cio_send_all(b, "b", 1, 0, NULL), 1);
	CHECK_EQ(cio_send_all(c, "c", 1, 0, NULL), 1);
	settle();
	CHECK_EQ(cio_drain(), 0);
	settle();
	CHECK_EQ(cio_close(a), 0); /* serving ends with its connection */
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(s.rc, 0);
	CHECK_EQ(s.c.started, 1);
	char ch;
	ssize_t n = cio_recv(b, &ch, 1, 0);
	CHECK(n == 0 || n == -ECONNRESET);
	n = cio_recv(c, &ch, 1, 0);
	CHECK(n == 0 || n == -ECONNRESET);
	CHECK_EQ(cio_close(b), 0);
	CHECK_EQ(cio_close(c), 0);
	CHECK_EQ(cio_close(s.lfd), 0);
	CHECK_EQ(test_count_fds(), fds0);
	return NULL;
}

/* A connection that gets no task is closed and told; serving goes on. */
static void *no_task(void *arg)
{
	(void)arg;
	struct serving s = {.lfd = cio_listen("127.0.0.1:0", NULL),
			    .opts = {.stack_size = 1, .error = count_error}};
	CHECK(s.lfd >= 0);
	cio_task_t t = cio_spawn(serve_task, &s);
	int a = dial(local_port(s.lfd));
	char ch;
	CHECK_EQ(cio_recv(a, &ch, 1, 0), 0); /* closed unserved */
	CHECK_EQ(s.c.errors, 1);
	CHECK_EQ(s.c.last_error, -EINVAL); /* the stack size spawn refused */
	CHECK_EQ(s.c.started, 0);
	CHECK_EQ(cio_close(a), 0);
	end_serving(t, s.lfd);
	return NULL;
}

/* What is not a listener, at once. */
static void *bad_calls(void *arg)
{
	(void)arg;
	struct counts c = {0};
	CHECK_EQ(cio_serve_fd(-1, NULL, echo, &c), -EBADF);
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	CHECK_EQ(cio_serve_fd(lfd, NULL, NULL, &c), -EINVAL);
	CHECK_EQ(cio_close(lfd), 0);
	int sv[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, sv), 0);
	CHECK_EQ(cio_serve_fd(sv[0], NULL, echo, &c), -EINVAL); /* not listening */
	CHECK_EQ(cio_close(sv[0]), 0);
	CHECK_EQ(cio_close(sv[1]), 0);
	CHECK_EQ(cio_serve("256.0.0.1:0", NULL, echo, &c), -EINVAL);
	CHECK_EQ(c.started, 0);
	return NULL;
}

/* cio_serve() on every core of a group, one port: the drain's timeout
 * cancels the connection that does not end, and serving returns once it
 * has. */
static atomic_int serve_rc[2], port_of_core0;
static struct counts core_counts[2];

static void *core_main(void *arg)
{
	(void)arg;
	int core = cio_core_id();
	char addr[64] = "127.0.0.1:0";
	if (core == 1) {
		while (!atomic_load(&port_of_core0))
			CHECK_EQ(cio_sleep(MS), 0);
		snprintf(addr, sizeof addr, "127.0.0.1:%d", atomic_load(&port_of_core0));
	} else {
		/* Core 0 learns its port from a listener of its own first. */
		int lfd = cio_listen(addr, &(cio_listen_opts){.reuseport = true});
		CHECK(lfd >= 0);
		atomic_store(&port_of_core0, local_port(lfd));
		serve_rc[0] = cio_serve_fd(lfd, NULL, echo, &core_counts[0]);
		CHECK_EQ(cio_close(lfd), 0);
		return NULL;
	}
	serve_rc[1] = cio_serve(addr, NULL, echo, &core_counts[1]);
	return NULL;
}

static void *client_thread_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&port_of_core0))
		usleep(1000);
	usleep(20000); /* core 1 listens too */
	int fds[20];
	for (int i = 0; i < 20; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons((uint16_t)atomic_load(&port_of_core0)),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		CHECK_EQ(connect(fds[i], (struct sockaddr *)&sa, sizeof sa), 0);
		char buf[4];
		CHECK_EQ(write(fds[i], "ping", 4), 4);
		CHECK_EQ(read(fds[i], buf, 4), 4);
	}
	kill(getpid(), SIGTERM); /* the drain; the clients never close */
	usleep(500000);
	for (int i = 0; i < 20; i++)
		close(fds[i]);
	return NULL;
}

static void drain_timeout(void)
{
	/* The client thread raises SIGTERM: it must not take it itself. */
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	CHECK_EQ(pthread_sigmask(SIG_BLOCK, &term, &old), 0);
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, client_thread_main, NULL), 0);
	cio_cores_config cfg = {.all = test_backend_config(), .drain_timeout = 100 * MS,
				.no_pin = true};
	CHECK_EQ(cio_run_cores_with(&cfg, 2, core_main, NULL), 0);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	CHECK_EQ(core_counts[0].started + core_counts[1].started, 20);
	for (int k = 0; k < 2; k++) {
		CHECK_EQ(serve_rc[k], -ECANCELED);
		CHECK_EQ(core_counts[k].running, 0);
		if (core_counts[k].started) /* cancelled, not closed by the client */
			CHECK_EQ(core_counts[k].ended_by, -ECANCELED);
	}
}

/* --- idle connections (CIO_SERVE_AGAIN) ------------------------------ */

struct idle_counts {
	int calls, running, peak, closed, errors, last_error;
	ssize_t ended_by; /* what the last read of a closed connection said */
	bool lent; /* cio_recv_buf() and cio_send_buf_nowait(), else cio_recv() */
	bool one;  /* take one byte a call: what is left is readable now */
};

/* One message a call, then idle; closes at the end of the stream. */
static int echo_idle(void *arg, int fd)
{
	struct idle_counts *c = arg;
	c->calls++;
	if (++c->running > c->peak)
		c->peak = c->running;
	ssize_t n;
	if (c->lent) {
		/* The echo still on its way while the connection idles: the
		 * next call, or the close, comes after it. */
		cio_buf *b;
		int rc;
		if ((n = cio_recv_buf(fd, &b)) > 0 && (rc = cio_send_buf_nowait(fd, b)) < 0)
			n = rc;
	} else {
		char buf[256];
		if ((n = cio_recv(fd, buf, c->one ? 1 : sizeof buf, 0)) > 0)
			n = cio_send_all(fd, buf, (size_t)n, 0, NULL);
	}
	c->running--;
	if (n > 0)
		return CIO_SERVE_AGAIN;
	c->closed++;
	c->ended_by = n;
	cio_close(fd);
	return CIO_SERVE_DONE;
}

static void idle_error(void *arg, int err)
{
	struct idle_counts *c = arg;
	c->errors++;
	c->last_error = err;
}

struct idle_serving {
	int lfd;
	cio_serve_opts opts;
	cio_serve_fn *handler; /* NULL: echo_idle */
	struct idle_counts c;
	int rc;
};

static void *idle_serve_task(void *arg)
{
	struct idle_serving *s = arg;
	s->rc = cio_serve_fd(s->lfd, &s->opts, s->handler ? s->handler : echo_idle, &s->c);
	return NULL;
}

static uint64_t tasks_live(void)
{
	cio_stats st;
	cio_stats_get(&st);
	return st.tasks_live;
}

/* A byte read with a deadline: 1, 0 at the end, or -errno. */
static ssize_t recv_within(int fd, char *ch, int64_t ns)
{
	int64_t tok = cio_timeout_push(ns);
	ssize_t n = cio_recv(fd, ch, 1, 0);
	cio_deadline_pop(tok);
	return n;
}

/* Many connections, each echoed over several rounds, hold no task while
 * they wait, from the start (idle_first): between rounds only this task
 * and the server's live.  The
 * peer's end is a call that closes; the drain closes the idle ones. */
static void *idle_rounds(void *arg)
{
	enum { N = 300, ROUNDS = 4 };
	struct idle_serving s = {.lfd = cio_listen("127.0.0.1:0", NULL), .rc = 1,
				 .opts = {.error = idle_error, .idle_first = true}};
	s.c.lent = arg != NULL;
	CHECK(s.lfd >= 0);
	uint64_t live0 = tasks_live();
	cio_task_t t = cio_spawn(idle_serve_task, &s);
	int port = local_port(s.lfd);
	static int fds[N];
	for (int i = 0; i < N; i++)
		fds[i] = dial(port);
	settle();
	CHECK_EQ(tasks_live(), live0 + 1); /* idle first: no task yet */
	CHECK_EQ(s.c.calls, 0);
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < N; i++) {
			char msg[32];
			snprintf(msg, sizeof msg, "r%d-c%d-%s", r, i, r & 1 ? "odd" : "even");
			CHECK_EQ(round_trip(fds[i], msg), 0);
		}
		settle();
		CHECK_EQ(s.c.running, 0);
		CHECK_EQ(tasks_live(), live0 + 1); /* this one's and the server's */
	}
	CHECK_EQ(s.c.calls, N * ROUNDS);
	CHECK_EQ(s.c.peak, 1); /* a round trip at a time */
	/* A peer's end wakes its connection, which closes. */
	for (int i = 0; i < N / 2; i++)
		CHECK_EQ(cio_close(fds[i]), 0);
	settle();
	CHECK_EQ(s.c.closed, N / 2);
	CHECK_EQ(tasks_live(), live0 + 1);
	/* The drain closes the idle rest at once: the server returns
	 * without a client's help. */
	CHECK_EQ(cio_drain(), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(s.rc, 0);
	char ch;
	for (int i = N / 2; i < N; i++) {
		CHECK_EQ(recv_within(fds[i], &ch, CIO_SEC), 0); /* closed by the server */
		CHECK_EQ(cio_close(fds[i]), 0);
	}
	CHECK_EQ(s.c.closed, N / 2); /* the drain's were closed without a call */
	CHECK_EQ(s.c.errors, 0);
	CHECK_EQ(tasks_live(), live0);
	CHECK_EQ(cio_close(s.lfd), 0);
	return NULL;
}

/* Bytes left after a call are readable now: the handler is called again
 * at once, and the order holds. */
static void *idle_pipelined(void *arg)
{
	(void)arg;
	struct idle_serving s = {.lfd = cio_listen("127.0.0.1:0", NULL), .rc = 1,
				 .c = {.one = true}};
	CHECK(s.lfd >= 0);
	cio_task_t t = cio_spawn(idle_serve_task, &s);
	int fd = dial(local_port(s.lfd));
	static const char msg[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	CHECK_EQ(round_trip(fd, msg), 0); /* one send, one byte a call */
	CHECK_EQ(s.c.calls, (int)sizeof msg - 1);
	CHECK_EQ(round_trip(fd, "again"), 0);
	CHECK_EQ(cio_close(fd), 0);
	settle();
	CHECK_EQ(s.c.closed, 1);
	CHECK_EQ(cio_drain(), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(s.rc, 0);
	CHECK_EQ(cio_close(s.lfd), 0);
	return NULL;
}

/* An idle connection quiet for idle_timeout is closed without a call; a
 * busy one is not, and each message restarts its clock.  (The timeout is
 * 8 times the busy one's gaps: a stopped and continued process, or a
 * loaded machine, may stretch a gap.) */
static void *idle_timeout(void *arg)
{
	(void)arg;
	struct idle_serving s = {.lfd = cio_listen("127.0.0.1:0", NULL), .rc = 1,
				 .opts = {.idle_timeout = 400 * MS}};
	CHECK(s.lfd >= 0);
	cio_task_t t = cio_spawn(idle_serve_task, &s);
	int port = local_port(s.lfd);
	int quiet = dial(port), busy = dial(port);
	CHECK_EQ(round_trip(quiet, "q"), 0);
	for (int i = 0; i < 12; i++) { /* 600 ms, a message every 50 */
		CHECK_EQ(round_trip(busy, "b"), 0);
		CHECK_EQ(cio_sleep(50 * MS), 0);
	}
	char ch;
	CHECK_EQ(recv_within(quiet, &ch, CIO_SEC), 0); /* closed by then */
	CHECK_EQ(round_trip(busy, "still"), 0);
	CHECK_EQ(s.c.closed, 0); /* no call for the one that timed out */
	CHECK_EQ(cio_close(quiet), 0);
	CHECK_EQ(recv_within(busy, &ch, CIO_SEC), 0); /* its turn, once quiet */
	CHECK_EQ(cio_close(busy), 0);
	CHECK_EQ(cio_drain(), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(s.rc, 0);
	CHECK_EQ(cio_close(s.lfd), 0);
	return NULL;
}

/* Idle connections hold their slots of max_conns: the next client waits
 * in the backlog until one ends, and is then served. */
static void *idle_limit(void *arg)
{
	(void)arg;
	struct idle_serving s = {.lfd = cio_listen("127.0.0.1:0", NULL), .rc = 1,
				 .opts = {.max_conns = 2}};
	CHECK(s.lfd >= 0);
	cio_task_t t = cio_spawn(idle_serve_task, &s);
	int port = local_port(s.lfd);
	int a = dial(port), b = dial(port), c = dial(port);
	CHECK_EQ(round_trip(a, "a"), 0);
	CHECK_EQ(round_trip(b, "b"), 0);
	CHECK_EQ(cio_send_all(c, "c", 1, 0, NULL), 1);
	settle();
	char ch;
	CHECK_EQ(cio_recv(c, &ch, 1, MSG_DONTWAIT), -EAGAIN); /* not served */
	CHECK_EQ(cio_close(a), 0);
	CHECK_EQ(recv_within(c, &ch, CIO_SEC), 1); /* now it is */
	CHECK_EQ(ch, 'c');
	CHECK_EQ(round_trip(b, "b again"), 0);
	CHECK_EQ(cio_close(b), 0);
	CHECK_EQ(cio_close(c), 0);
	CHECK_EQ(cio_drain(), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(s.rc, 0);
	CHECK_EQ(s.c.closed, 3);
	CHECK_EQ(cio_close(s.lfd), 0);
	return NULL;
}

/* One round trip with s's server, then a reset while the connection
 * idles; the server has closed it once this returns. */
static void reset_while_idle(struct idle_serving *s)
{
	int a = dial(local_port(s->lfd));
	CHECK_EQ(round_trip(a, "x"), 0);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	CHECK_EQ(setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	CHECK_EQ(cio_close(a), 0); /* RST */
	settle();
	CHECK_EQ(s->c.closed, 1);
}

/* A peer that resets an idle connection: its call sees the error and
 * closes; serving goes on. */
static void *idle_reset(void *arg)
{
	(void)arg;
	struct idle_serving s = {.lfd = cio_listen("127.0.0.1:0", NULL), .rc = 1};
	CHECK(s.lfd >= 0);
	cio_task_t t = cio_spawn(idle_serve_task, &s);
	int port = local_port(s.lfd);
	reset_while_idle(&s);
	/* The reset, not an end of stream: the wake-up's read (io_uring)
	 * took the error, and the handler's read reports it. */
	CHECK_EQ(s.c.ended_by, -ECONNRESET);
	int b = dial(port);
	CHECK_EQ(round_trip(b, "y"), 0);
	CHECK_EQ(cio_close(b), 0);
	CHECK_EQ(cio_drain(), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(s.rc, 0);
	CHECK_EQ(cio_close(s.lfd), 0);
	return NULL;
}

/* A handler's state (cio_serve_state()) outlives its calls: each reply
 * carries the connection's own count of messages.  The handler frees it
 * at the peer's end; serving frees the idle ones it closes at the drain
 * through state_free. */
static int states_freed;

static int count_msgs(void *arg, int fd)
{
	(void)arg;
	void **st = cio_serve_state();
	CHECK(st != NULL);
	int *n = *st;
	if (!n) {
		CHECK((n = calloc(1, sizeof *n)) != NULL);
		*st = n;
	}
	char buf[64];
	ssize_t got = cio_recv(fd, buf, sizeof buf, 0);
	if (got <= 0) {
		free(n);
		*st = NULL;
		cio_close(fd);
		return CIO_SERVE_DONE;
	}
	char reply[16];
	int len = snprintf(reply, sizeof reply, "%d", ++*n);
	CHECK_EQ(cio_send_all(fd, reply, (size_t)len, 0, NULL), len);
	return CIO_SERVE_AGAIN;
}

static void free_state(void *arg, void *state)
{
	(void)arg;
	states_freed++;
	free(state);
}

static int serve_rc_state;

static void *state_serve_task(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	cio_serve_opts o = {.idle_first = true, .state_free = free_state};
	serve_rc_state = cio_serve_fd(lfd, &o, count_msgs, NULL);
	return NULL;
}

static void *conn_state(void *arg)
{
	(void)arg;
	CHECK(cio_serve_state() == NULL); /* not a handler */
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	cio_task_t t = cio_spawn(state_serve_task, (void *)(intptr_t)lfd);
	int port = local_port(lfd), fds[6];
	for (int i = 0; i < 6; i++)
		fds[i] = dial(port);
	for (int round = 1; round <= 3; round++) {
		for (int i = 0; i < 6; i++) {
			if (round == 3 && i >= 3)
				continue; /* these stay at 2 */
			char want[16], got[16] = {0};
			int len = snprintf(want, sizeof want, "%d", round);
			CHECK_EQ(cio_send_all(fds[i], "m", 1, 0, NULL), 1);
			CHECK_EQ(cio_recv_exact(fds[i], got, (size_t)len, 0, NULL), len);
			CHECK(memcmp(got, want, (size_t)len) == 0);
		}
	}
	CHECK_EQ(cio_close(fds[0]), 0); /* freed by its handler */
	settle();
	CHECK_EQ(states_freed, 0);
	CHECK_EQ(cio_drain(), 0); /* five idle: freed by serving */
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(serve_rc_state, 0);
	CHECK_EQ(states_freed, 5);
	for (int i = 1; i < 6; i++)
		CHECK_EQ(cio_close(fds[i]), 0);
	CHECK_EQ(cio_close(lfd), 0);
	return NULL;
}

/* --- waking an idle connection: what the wake-up leaves to the handler */

/* A handler that waits for readability before it reads (as code that
 * multiplexes or peeks does): the wake-up must leave the fd readable. */
static int poll_first(void *arg, int fd)
{
	struct idle_counts *c = arg;
	c->calls++;
	int64_t tok = cio_timeout_push(500 * MS);
	int w = cio_wait_readable(fd);
	cio_deadline_pop(tok);
	char buf[256];
	ssize_t n = w < 0 ? w : cio_recv(fd, buf, sizeof buf, 0);
	if (n > 0)
		n = cio_send_all(fd, buf, (size_t)n, 0, NULL);
	if (n > 0)
		return CIO_SERVE_AGAIN;
	c->closed++;
	c->ended_by = n;
	cio_close(fd);
	return CIO_SERVE_DONE;
}

static void *idle_poll_first(void *arg)
{
	(void)arg;
	struct idle_serving s = {.lfd = cio_listen("127.0.0.1:0", NULL), .rc = 1,
				 .handler = poll_first};
	CHECK(s.lfd >= 0);
	cio_task_t t = cio_spawn(idle_serve_task, &s);
	int fd = dial(local_port(s.lfd));
	CHECK_EQ(round_trip(fd, "one"), 0);  /* the first call: no watch yet */
	CHECK_EQ(round_trip(fd, "two"), 0);  /* woken by the watch */
	CHECK_EQ(s.c.ended_by, 0);
	CHECK_EQ(cio_close(fd), 0);
	settle();
	end_serving(t, s.lfd);
	return NULL;
}

/* idle_first with the ring of lent buffers empty (the budget spent by
 * buffers lent elsewhere): a client that says nothing gets no call, and
 * is closed at first_timeout. */
static void *idle_first_ring_empty(void *arg)
{
	(void)arg;
	int sv[2][2];
	cio_buf *held[2];
	static char bytes[4096];
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv[i]), 0);
		CHECK_EQ(write(sv[i][1], bytes, sizeof bytes), (ssize_t)sizeof bytes);
		CHECK_EQ(cio_recv_buf(sv[i][0], &held[i]), (ssize_t)sizeof bytes);
	}
	struct idle_serving s = {.lfd = cio_listen("127.0.0.1:0", NULL), .rc = 1,
				 .opts = {.idle_first = true, .first_timeout = 300 * MS}};
	CHECK(s.lfd >= 0);
	cio_task_t t = cio_spawn(idle_serve_task, &s);
	int fd = dial(local_port(s.lfd));
	settle();
	CHECK_EQ(s.c.calls, 0); /* no bytes: no call */
	char ch;
	CHECK_EQ(recv_within(fd, &ch, CIO_SEC), 0); /* closed at first_timeout */
	CHECK_EQ(cio_close(fd), 0);
	for (int i = 0; i < 2; i++) {
		cio_buf_release(held[i]);
		CHECK_EQ(cio_close(sv[i][0]), 0);
		CHECK_EQ(cio_close(sv[i][1]), 0);
	}
	end_serving(t, s.lfd);
	return NULL;
}

/* Runs fn with a lending budget of two 4 KiB buffers. */
static int run_small_ring(cio_fn *fn)
{
	cio_config cfg = test_backend_config();
	int rc = test_backend_missing();
	if (rc)
		return rc;
	cfg.buf_size = 4096;
	cfg.buf_budget = 8192;
	CHECK_EQ(cio_run_with(&cfg, fn, NULL), 0);
	return 0;
}

/* A handler that peeks first, on a reset idle connection: the peek
 * reports the reset, as it would on a connection never watched. */
static ssize_t peeked_by;
static int peek_first(void *arg, int fd)
{
	struct idle_counts *c = arg;
	char buf[256];
	ssize_t n = cio_recv(fd, buf, sizeof buf, MSG_PEEK);
	if (n > 0)
		n = cio_recv(fd, buf, (size_t)n, 0);
	if (n > 0)
		n = cio_send_all(fd, buf, (size_t)n, 0, NULL);
	if (n > 0)
		return CIO_SERVE_AGAIN;
	peeked_by = n;
	c->closed++;
	c->ended_by = cio_recv(fd, buf, sizeof buf, 0);
	cio_close(fd);
	return CIO_SERVE_DONE;
}

static void *idle_reset_peek(void *arg)
{
	(void)arg;
	struct idle_serving s = {.lfd = cio_listen("127.0.0.1:0", NULL), .rc = 1,
				 .handler = peek_first};
	CHECK(s.lfd >= 0);
	cio_task_t t = cio_spawn(idle_serve_task, &s);
	reset_while_idle(&s);
	CHECK_EQ(peeked_by, -ECONNRESET);
	end_serving(t, s.lfd);
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_backend_missing();
	if (rc)
		return rc;
	TEST_CASE(basic, CHECK_EQ(test_run(basic, NULL), 0));
	TEST_CASE(limit, CHECK_EQ(test_run(limit, NULL), 0));
	TEST_CASE(out_of_fds, CHECK_EQ(test_run(out_of_fds, NULL), 0));
	TEST_CASE(waiting_at_drain, CHECK_EQ(test_run(waiting_at_drain, NULL), 0));
	TEST_CASE(no_task, CHECK_EQ(test_run(no_task, NULL), 0));
	TEST_CASE(bad_calls, CHECK_EQ(test_run(bad_calls, NULL), 0));
	TEST_CASE(drain_timeout, drain_timeout());
	TEST_CASE(idle_rounds, CHECK_EQ(test_run(idle_rounds, NULL), 0));
	TEST_CASE(idle_rounds_lent, CHECK_EQ(test_run(idle_rounds, "lent"), 0));
	TEST_CASE(idle_pipelined, CHECK_EQ(test_run(idle_pipelined, NULL), 0));
	TEST_CASE(idle_timeout, CHECK_EQ(test_run(idle_timeout, NULL), 0));
	TEST_CASE(idle_limit, CHECK_EQ(test_run(idle_limit, NULL), 0));
	TEST_CASE(idle_reset, CHECK_EQ(test_run(idle_reset, NULL), 0));
	TEST_CASE(idle_poll_first, CHECK_EQ(test_run(idle_poll_first, NULL), 0));
	TEST_CASE(idle_first_ring_empty, CHECK_EQ(run_small_ring(idle_first_ring_empty), 0));
	TEST_CASE(idle_reset_peek, CHECK_EQ(test_run(idle_reset_peek, NULL), 0));
	TEST_CASE(conn_state, CHECK_EQ(test_run(conn_state, NULL), 0));
	return test_cases_end();
}
