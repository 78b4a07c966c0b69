/* echo_server.c - a TCP echo server on coreio, written as a production
 * server would be: one task per connection, an accept loop that outlives
 * its errors, an optional idle timeout, and a clean shutdown.
 *
 *   echo_server [--seconds N] [--idle-ms MS] [ADDR]
 *
 *   ADDR          where to listen: HOST:PORT, [V6HOST]:PORT, unix:/path, or
 *                 a bare PORT on 127.0.0.1.  Default 127.0.0.1:7000; port 0
 *                 picks a free port, which the "listening on" line shows.
 *   --seconds N   stop after N seconds (default: run until SIGINT/SIGTERM)
 *   --idle-ms MS  drop a connection that neither sends nor takes its echo
 *                 for MS milliseconds (default 0: never)
 *   COREIO_BACKEND=uring|epoll   forces a backend (default: io_uring when
 *                 the kernel allows it, else epoll)
 *
 * Prints "echo_server: listening on ADDR, backend B, pid P" once it
 * accepts, and on exit what it served, with the runtime's switches, ticks
 * and driver waits per request.  Stopping (signal or --seconds) cancels the
 * accept loop and every connection, waits for them to close, and exits 0.
 * Exit status 1: could not listen or run; 2: bad arguments; 3: the runtime
 * could not start (most often: the backend COREIO_BACKEND forces cannot run
 * here). */
#define _GNU_SOURCE
#include <coreio.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define BUF_SIZE (16 << 10)
/* The receive buffer lives on the task's stack; 64 KiB leaves it and libc
 * ample room while 10k connections cost little (stack pages are only
 * touched as used). */
#define CONN_STACK (64 << 10)
#define LOG_EVERY CIO_SEC

/* One client connection, owned by its task.  It sits in the server's list
 * so that shutdown can cancel every connection. */
struct conn {
	struct conn *prev, *next;
	struct server *srv;
	cio_task_t task;
	int fd;
};

struct server {
	const char *addr;
	int64_t run_ns;  /* --seconds, or CIO_NEVER */
	int64_t idle_ns; /* --idle-ms, or 0 */
	int sigfd;       /* SIGINT and SIGTERM, blocked and read from here */
	int lfd;
	cio_task_t main_task, acceptor;
	struct conn head; /* list of live connections (circular, sentinel) */
	cio_wg conns;     /* counts them, for shutdown to wait on */
	int64_t last_log;
	int status;       /* exit status */
	bool ran;         /* the runtime started: the backend was available */
	uint64_t accepted, accept_errors, conn_errors, requests, bytes;
};

/* Errors of a client's own making: the connection just ends. */
static bool routine_end(ssize_t rc)
{
	return rc == 0 || rc == -ECONNRESET || rc == -EPIPE || rc == -ETIMEDOUT ||
	       rc == -ECANCELED;
}

/* At most one line a second, so that a storm of failures (fds exhausted,
 * say) cannot flood the log or become its own load. */
static void log_limited(struct server *s, const char *what, int err)
{
	int64_t now = cio_now();
	if (now - s->last_log < LOG_EVERY)
		return;
	s->last_log = now;
	fprintf(stderr, "echo_server: %s: %s\n", what, cio_strerror(err));
}

static void *serve_conn(void *arg)
{
	struct conn *c = arg;
	struct server *s = c->srv;
	char buf[BUF_SIZE];
	ssize_t n;
	for (;;) {
		/* The idle timeout covers one exchange: a peer that stays
		 * silent, or stops taking its echo, for that long is gone. */
		int64_t tok = s->idle_ns ? cio_timeout_push(s->idle_ns) : 0;
		n = cio_recv(c->fd, buf, sizeof buf, 0);
		if (n > 0)
			n = cio_send_all(c->fd, buf, (size_t)n, 0, NULL);
		if (s->idle_ns)
			cio_deadline_pop(tok);
		if (n <= 0)
			break;
		s->requests++;
		s->bytes += (uint64_t)n;
	}
	if (!routine_end(n)) {
		s->conn_errors++;
		log_limited(s, "connection", (int)n);
	}
	cio_close(c->fd);
	c->prev->next = c->next;
	c->next->prev = c->prev;
	free(c);
	cio_wg_done(&s->conns);
	return NULL;
}

/* Takes one new connection: TCP_NODELAY (an echo is a small reply that
 * must not wait for Nagle), then a task of its own. */
static void start_conn(struct server *s, int fd)
{
	cio_tcp_nodelay(fd, true); /* fails harmlessly on a Unix socket */
	struct conn *c = malloc(sizeof *c);
	if (!c) {
		log_limited(s, "connection dropped", -ENOMEM);
		cio_close(fd);
		return;
	}
	c->srv = s;
	c->fd = fd;
	cio_spawn_opts o = {.name = "echo-conn", .stack_size = CONN_STACK, .detached = true};
	c->task = cio_spawn_with(&o, serve_conn, c);
	if (c->task < 0) {
		log_limited(s, "connection dropped", (int)c->task);
		free(c);
		cio_close(fd);
		return;
	}
	/* Linked before it runs: it unlinks itself when it ends. */
	c->next = &s->head;
	c->prev = s->head.prev;
	s->head.prev->next = c;
	s->head.prev = c;
	cio_wg_add(&s->conns, 1);
	s->accepted++;
}

static void *accept_loop(void *arg)
{
	struct server *s = arg;
	for (;;) {
		int fd = cio_accept(s->lfd, NULL);
		if (fd >= 0) {
			start_conn(s, fd);
			continue;
		}
		if (fd == -ECANCELED)
			break; /* shutdown */
		if (fd == -EBADF || fd == -EINVAL || fd == -ENOTSOCK ||
		    fd == -EOPNOTSUPP) {
			/* The listener itself is broken: no retry can help. */
			fprintf(stderr, "echo_server: accept: %s; stopping\n",
				cio_strerror(fd));
			s->status = 1;
			cio_cancel(s->main_task);
			break;
		}
		/* Everything else passes: out of fds (-EMFILE, -ENFILE: the
		 * connection stays queued and cio_accept() has paused), a
		 * client that gave up in the backlog (-ECONNABORTED), memory
		 * short (-ENOBUFS, -ENOMEM), a firewall (-EPERM). */
		s->accept_errors++;
		log_limited(s, "accept", fd);
		if ((fd == -ENOBUFS || fd == -ENOMEM) && cio_sleep(10 * CIO_MS) == -ECANCELED)
			break;
	}
	return NULL;
}

/* Waits until it is time to stop; returns why. */
static const char *wait_for_stop(struct server *s)
{
	static char why[64];
	int64_t tok = cio_timeout_push(s->run_ns);
	int rc = cio_wait_readable(s->sigfd);
	cio_deadline_pop(tok);
	if (rc == -ETIMEDOUT)
		return "--seconds elapsed";
	if (rc == -ECANCELED) {
		cio_cancel_clear(); /* the accept loop failed and woke us */
		return "accept loop failed";
	}
	if (rc < 0) {
		s->status = 1;
		snprintf(why, sizeof why, "signal wait failed: %s", cio_strerror(rc));
		return why;
	}
	struct signalfd_siginfo si;
	if (read(s->sigfd, &si, sizeof si) != (ssize_t)sizeof si)
		return "a signal";
	const char *sig = sigabbrev_np((int)si.ssi_signo);
	snprintf(why, sizeof why, "SIG%s", sig ? sig : "?");
	return why;
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	s->ran = true;
	s->main_task = cio_self();
	cio_fd_adopt(s->sigfd); /* made before the runtime existed */
	s->lfd = cio_listen(s->addr, NULL);
	if (s->lfd < 0) {
		fprintf(stderr, "echo_server: cannot listen on %s: %s\n", s->addr,
			cio_strerror(s->lfd));
		s->status = 1;
		return NULL;
	}
	cio_addr bound = {.len = sizeof bound.u};
	char name[128] = "?";
	if (getsockname(s->lfd, &bound.u.sa, &bound.len) == 0)
		cio_addr_format(&bound, name, sizeof name);
	const char *reason = cio_backend_reason();
	printf("echo_server: listening on %s, backend %s%s%s%s, pid %d\n", name,
	       cio_backend_name(), reason ? " (" : "", reason ? reason : "",
	       reason ? ")" : "", (int)getpid());
	fflush(stdout);

	cio_stats st0, st1;
	cio_stats_get(&st0);
	int64_t t0 = cio_now();
	s->acceptor = cio_spawn(accept_loop, s);
	if (s->acceptor < 0) {
		fprintf(stderr, "echo_server: %s\n", cio_strerror((int)s->acceptor));
		s->status = 1;
		cio_close(s->lfd);
		return NULL;
	}
	const char *why = wait_for_stop(s);

	/* Shutdown: no new connections, then every connection's blocked
	 * call returns -ECANCELED and its task closes the socket. */
	cio_cancel(s->acceptor);
	cio_join(s->acceptor, NULL);
	for (struct conn *c = s->head.next; c != &s->head; c = c->next)
		cio_cancel(c->task);
	cio_wg_wait(&s->conns);
	cio_close(s->lfd);
	cio_close(s->sigfd);
	cio_stats_get(&st1);

	double secs = (double)(cio_now() - t0) / 1e9;
	double req = s->requests ? (double)s->requests : 1;
	printf("echo_server: stopped (%s) after %.1f s: %" PRIu64 " connections, %" PRIu64
	       " requests (receives), %.1f MB echoed, %" PRIu64 " accept errors, %" PRIu64
	       " connection errors; per request %.2f switches, %.3f ticks, %.3f driver waits\n",
	       why, secs, s->accepted, s->requests, (double)s->bytes / 1e6,
	       s->accept_errors, s->conn_errors,
	       (double)(st1.switches - st0.switches) / req,
	       (double)(st1.ticks - st0.ticks) / req,
	       (double)(st1.driver_waits - st0.driver_waits) / req);
	fflush(stdout);
	return NULL;
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--seconds N] [--idle-ms MS] [HOST:PORT | PORT]\n", prog);
	exit(2);
}

/* A non-negative integer option value, or usage(). */
static int64_t number(const char *prog, const char *text)
{
	char *end;
	errno = 0;
	long long v = text ? strtoll(text, &end, 10) : -1;
	if (!text || errno || *end || v < 0)
		usage(prog);
	return v;
}

int main(int argc, char **argv)
{
	static struct server s;
	static char addr[256];
	int64_t seconds = 0, idle_ms = 0;
	s.addr = "127.0.0.1:7000";
	for (int i = 1; i < argc; i++) {
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--seconds") == 0)
			seconds = number(argv[0], val), i++;
		else if (strcmp(argv[i], "--idle-ms") == 0)
			idle_ms = number(argv[0], val), i++;
		else if (argv[i][0] == '-')
			usage(argv[0]);
		else if (strspn(argv[i], "0123456789") == strlen(argv[i])) {
			snprintf(addr, sizeof addr, "127.0.0.1:%s", argv[i]);
			s.addr = addr;
		} else
			s.addr = argv[i];
	}
	s.run_ns = seconds > 0 ? seconds * CIO_SEC : CIO_NEVER;
	s.idle_ns = idle_ms * CIO_MS;
	s.head.next = s.head.prev = &s.head;
	cio_wg_init(&s.conns);

	/* Every connection is an fd: take all the hard limit allows rather
	 * than the soft 1024 most systems start with. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	/* SIGINT and SIGTERM become readable events on a signalfd, which a
	 * task can wait on like any fd: blocked before the runtime starts,
	 * so that every thread it makes inherits the mask. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (s.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		perror("echo_server: signalfd");
		return 1;
	}
	int rc = cio_run(server_main, &s);
	if (rc < 0) {
		fprintf(stderr, "echo_server: cio_run: %s\n", cio_strerror(rc));
		return s.ran ? 1 : 3;
	}
	return s.status;
}
