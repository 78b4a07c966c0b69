/* echo_server.c - a TCP echo server on coreio, written as a production
 * server would be: one runtime per core, each with its own SO_REUSEPORT
 * listener; connections that hold no task while they wait for bytes; an
 * accept loop that outlives its errors; an optional idle timeout; and a
 * graceful drain.
 *
 *   echo_server [--cores N] [--seconds N] [--idle-ms MS] [--drain-ms MS]
 *               [--task | --own-buf | --stream] [--send-wait] [--stats ADDR]
 *               [ADDR]
 *
 *   ADDR          where to listen: HOST:PORT, [V6HOST]:PORT, unix:/path, or
 *                 a bare PORT on 127.0.0.1.  Default 127.0.0.1:7000; port 0
 *                 picks a free port, which the "listening on" line shows.
 *   --cores N     runtimes to run (default 0: one per CPU this process may
 *                 use; `taskset -c 0 echo_server` runs one)
 *   --seconds N   drain after N seconds (default: run until SIGINT/SIGTERM)
 *   --idle-ms MS  drop a connection that neither sends nor takes its echo
 *                 for MS milliseconds (default 0: never)
 *   --drain-ms MS how long a drain lets connections finish before they
 *                 are cancelled (default 1000)
 *   --task        a task per connection for its whole life, waiting for
 *                 bytes on its stack, rather than a task per message: by
 *                 default a connection echoes what came, into a buffer
 *                 the runtime lends (cio_recv_buf()), and goes idle
 *                 (CIO_SERVE_AGAIN), holding no task and no stack until
 *                 its next bytes
 *   --own-buf     a task per connection (--task) that receives into a
 *                 buffer on its stack rather than into lent ones: a
 *                 waiting connection then holds its buffer's pages
 *   --stream      a task per connection (--task) through a cio_stream
 *                 (its read buffer in place of lent ones), to measure what
 *                 a stream costs over the raw fd
 *   --send-wait   wait for each echo to leave (cio_send_buf()) before the
 *                 next receive; by default the echo is on its way
 *                 (cio_send_buf_nowait()) while the connection goes on,
 *                 which on io_uring spares the task a park per message
 *   --stats ADDR  serve the runtime's counters of every core on ADDR
 *                 (Prometheus text; each connection gets one HTTP/1.0
 *                 answer), and print "echo_server: stats on ADDR"
 *   COREIO_BACKEND=uring|epoll|kqueue forces a backend (default: io_uring when
 *                 the kernel allows it, else epoll)
 *
 * Prints "echo_server: listening on ADDR, backend B, N cores, pid P" once
 * every core accepts, and on exit what it served.  SIGINT, SIGTERM or
 * --seconds start the runtime's drain: listeners close, idle connections
 * (waiting for their next message) close at once, and those still echoing
 * after --drain-ms are cancelled and close; exit status 0.
 * Exit status 1: could not listen or run; 2: bad arguments; 3: the runtime
 * could not start (most often: the backend COREIO_BACKEND forces cannot run
 * here). */
#define _GNU_SOURCE
#include <coreio.h>

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "example_server.h"

#define BUF_SIZE (16 << 10)
/* With lent buffers a connection's stack holds frames only: 32 KiB leaves
 * libc ample room.  With its own buffer (--own-buf) the receive buffer
 * lives on the stack too: 64 KiB.  Only the pages touched cost memory. */
#define CONN_STACK (32 << 10)
#define CONN_STACK_OWN (64 << 10)
#define LOG_EVERY CIO_SEC

/* Settings, shared read-only by every core. */
static struct {
	struct ex_server srv; /* the address, --seconds (or CIO_NEVER) */
	int64_t idle_ns; /* --idle-ms, or 0 */
	bool stream;     /* --stream */
	bool own_buf;    /* --own-buf */
	bool send_wait;  /* --send-wait */
	bool task;       /* --task (or either of the two above) */
} opt = {.srv = {.name = "echo_server", .conn.stack_size = CONN_STACK}};

/* What every core served, summed as cores end. */
static atomic_uint_fast64_t total_accepted, total_requests, total_bytes,
	total_accept_errors, total_conn_errors;
static atomic_bool ran;   /* a runtime started: the backend was there */

/* One core's server.  Its fields are only touched by that core's tasks. */
struct server {
	int64_t last_log;
	uint64_t accepted, accept_errors, conn_errors, requests, bytes;
};

/* Errors of a client's own making: the connection just ends. */
static bool routine_end(ssize_t rc)
{
	return rc == 0 || rc == -ECONNRESET || rc == -EPIPE || rc == -ETIMEDOUT ||
	       rc == -ECANCELED;
}

/* At most one line a second per core, so that a storm of failures (fds
 * exhausted, say) cannot flood the log or become its own load. */
static void log_limited(struct server *s, const char *what, int err)
{
	int64_t now = cio_now();
	if (now - s->last_log < LOG_EVERY)
		return;
	s->last_log = now;
	fprintf(stderr, "echo_server: core %d: %s: %s\n", cio_core_id(), what,
		cio_strerror(err));
}

/* One exchange through a stream: what one read brings is echoed from the
 * stream's own buffer, then dropped.  Returns the bytes echoed, 0 at the
 * end, or -errno. */
static ssize_t echo_stream_once(cio_stream *st)
{
	size_t len;
	ssize_t n = cio_stream_fill(st, 0);
	if (n <= 0)
		return n;
	const void *p = cio_stream_peek(st, &len);
	cio_drain_idle(false);
	n = cio_stream_write_all(st, p, len, NULL);
	cio_stream_consume(st, len);
	return n;
}

/* One exchange in the connection's own buffer, on its stack. */
static ssize_t echo_own_once(int fd)
{
	char buf[BUF_SIZE];
	ssize_t n = cio_recv(fd, buf, sizeof buf, 0);
	cio_drain_idle(false);
	return n > 0 ? cio_send_all(fd, buf, (size_t)n, 0, NULL) : n;
}

/* One exchange in a buffer the runtime lends once bytes are there: while
 * the connection waits it holds no buffer, and its stack stays small. */
static ssize_t echo_lent_once(int fd)
{
	cio_buf *b;
	ssize_t n = cio_recv_buf(fd, &b);
	cio_drain_idle(false);
	if (n <= 0 || opt.send_wait)
		return n > 0 ? cio_send_buf(fd, b, NULL) : n;
	/* Its error, if it meets one, comes from the next call on fd. */
	int rc = cio_send_buf_nowait(fd, b);
	return rc < 0 ? rc : n;
}

/* After a connection's last exchange: counts how it ended, closes it. */
static int conn_end(struct server *s, ssize_t n, cio_stream *st, int fd)
{
	if (!routine_end(n)) {
		s->conn_errors++;
		log_limited(s, "connection", (int)n);
	}
	if (st)
		cio_stream_close(st);
	else if (fd >= 0)
		cio_close(fd);
	return CIO_SERVE_DONE;
}

/* One message of a connection that is idle between messages: called
 * once bytes (or the end) came, it echoes them and goes idle again. */
static int serve_message(void *arg, int fd)
{
	struct server *s = arg;
	int64_t tok = opt.idle_ns ? cio_timeout_push(opt.idle_ns) : 0;
	ssize_t n = echo_lent_once(fd);
	if (opt.idle_ns)
		cio_deadline_pop(tok);
	if (n <= 0)
		return conn_end(s, n, NULL, fd);
	s->requests++;
	s->bytes += (uint64_t)n;
	return CIO_SERVE_AGAIN;
}

/* One connection, on its own task (--task): echoes until the peer ends. */
static int serve_conn(void *arg, int fd)
{
	struct server *s = arg;
	cio_stream *st = NULL;
	ssize_t n = 0;
	/* The stream owns the fd from here on; it needs no write buffer. */
	if (opt.stream && (n = cio_stream_new(&st, fd,
			&(cio_stream_opts){.read_buf = BUF_SIZE, .write_buf = 64})) < 0)
		fd = -1;
	while (n >= 0) {
		/* The idle timeout covers one exchange: a peer that stays
		 * silent, or stops taking its echo, for that long is gone. */
		int64_t tok = opt.idle_ns ? cio_timeout_push(opt.idle_ns) : 0;
		/* Between messages a drain may end the connection at once;
		 * with bytes in hand, it lets their echo go out first. */
		cio_drain_idle(true);
		n = st ? echo_stream_once(st) : opt.own_buf ? echo_own_once(fd) : echo_lent_once(fd);
		cio_drain_idle(false);
		if (opt.idle_ns)
			cio_deadline_pop(tok);
		if (n <= 0)
			break;
		s->requests++;
		s->bytes += (uint64_t)n;
	}
	return conn_end(s, n, st, fd);
}

/* An accept that failed in passing, or a connection that got no task:
 * counted, logged (limited). */
static void accept_failed(void *arg, int err)
{
	struct server *s = arg;
	s->accept_errors++;
	log_limited(s, "accept", err);
}

/* Runs on every core. */
static void *core_main(void *arg)
{
	struct server s = {0};
	(void)arg;
	atomic_store(&ran, true);
	if (ex_server_run(&opt.srv, opt.task ? serve_conn : serve_message, accept_failed, &s) < 0)
		return NULL;
	/* Connections are counted by the runtime: a handler called once
	 * per message cannot tell a connection's first. */
	cio_stats st;
	cio_stats_get(&st);
	s.accepted = st.accepted - (cio_core_id() == 0 ? ex_stats_accepted : 0);
	atomic_fetch_add(&total_accepted, s.accepted);
	atomic_fetch_add(&total_requests, s.requests);
	atomic_fetch_add(&total_bytes, s.bytes);
	atomic_fetch_add(&total_accept_errors, s.accept_errors);
	atomic_fetch_add(&total_conn_errors, s.conn_errors);
	return NULL;
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--cores N] [--seconds N] [--idle-ms MS] "
			"[--drain-ms MS] [--task | --own-buf | --stream] [--send-wait] [--stats ADDR] "
			"[HOST:PORT | PORT]\n",
		prog);
	exit(2);
}

/* A non-negative integer option value, or usage(). */
static int64_t number(const char *prog, const char *text)
{
	int64_t v = ex_number(text);
	if (v < 0)
		usage(prog);
	return v;
}

int main(int argc, char **argv)
{
	static char addr[256];
	int64_t seconds = 0, idle_ms = 0, drain_ms = 1000, cores = 0;
	opt.srv.addr = "127.0.0.1:7000";
	for (int i = 1; i < argc; i++) {
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--seconds") == 0)
			seconds = number(argv[0], val), i++;
		else if (strcmp(argv[i], "--idle-ms") == 0)
			idle_ms = number(argv[0], val), i++;
		else if (strcmp(argv[i], "--drain-ms") == 0)
			drain_ms = number(argv[0], val), i++;
		else if (strcmp(argv[i], "--stream") == 0)
			opt.stream = true;
		else if (strcmp(argv[i], "--own-buf") == 0)
			opt.own_buf = true;
		else if (strcmp(argv[i], "--send-wait") == 0)
			opt.send_wait = true;
		else if (strcmp(argv[i], "--task") == 0)
			opt.task = true;
		else if (strcmp(argv[i], "--cores") == 0)
			cores = number(argv[0], val), i++;
		else if (strcmp(argv[i], "--stats") == 0 && val)
			opt.srv.stats_addr = val, i++;
		else if (argv[i][0] == '-')
			usage(argv[0]);
		else if (strspn(argv[i], "0123456789") == strlen(argv[i])) {
			snprintf(addr, sizeof addr, "127.0.0.1:%s", argv[i]);
			opt.srv.addr = addr;
		} else
			opt.srv.addr = argv[i];
	}
	if (cores > 1024 || (opt.stream && opt.own_buf))
		usage(argv[0]);
	if (opt.own_buf)
		opt.srv.conn.stack_size = CONN_STACK_OWN;
	opt.srv.run_ns = seconds > 0 ? seconds * CIO_SEC : CIO_NEVER;
	opt.idle_ns = idle_ms * CIO_MS;
	opt.srv.conn.idle_timeout = opt.idle_ns;
	opt.task |= opt.stream || opt.own_buf;
	opt.srv.conn.idle_first = !opt.task;


	ex_server_init();
	cio_cores_config cfg = {.drain_timeout = drain_ms > 0 ? drain_ms * CIO_MS : 1};
	int64_t t0 = cio_now();
	int rc = cio_run_cores_with(&cfg, (int)cores, core_main, NULL);
	if (rc < 0) {
		fprintf(stderr, "echo_server: cio_run_cores: %s\n", cio_strerror(rc));
		return atomic_load(&ran) ? 1 : 3;
	}
	printf("echo_server: stopped after %.1f s: %" PRIu64 " connections, %" PRIu64
	       " requests (receives), %.1f MB echoed, %" PRIu64 " accept errors, %" PRIu64
	       " connection errors\n",
	       (double)(cio_now() - t0) / 1e9, (uint64_t)atomic_load(&total_accepted),
	       (uint64_t)atomic_load(&total_requests),
	       (double)atomic_load(&total_bytes) / 1e6,
	       (uint64_t)atomic_load(&total_accept_errors),
	       (uint64_t)atomic_load(&total_conn_errors));
	return atomic_load(&ex_status);
}
