/* tcp_proxy.c - a TCP proxy on coreio: accepts connections on every core,
 * connects each to one upstream address under a deadline, and relays the
 * bytes both ways with cio_relay() (splice through pooled pipes: the bytes
 * never enter user space, and a slow reader slows its writer instead of
 * filling memory).  With --tls-cert it terminates TLS: clients speak TLS
 * to it, the upstream gets plain text, and the relay copies between a TLS
 * stream and a plain one.
 *
 *   tcp_proxy --listen ADDR --upstream ADDR [--cores N]
 *             [--connect-timeout-ms MS] [--idle-ms MS] [--seconds S]
 *             [--drain-ms MS] [--tls-cert FILE [--tls-key FILE]]
 *
 *   --listen ADDR     where to listen: HOST:PORT, [V6HOST]:PORT or
 *                     unix:/path (numeric hosts); port 0 picks a free port,
 *                     which the "listening on" line shows
 *   --upstream ADDR   where to connect each client: the same notation, or a
 *                     host name (db.internal:5432), resolved for each
 *                     connection (through the resolver's cache) and
 *                     dialled with Happy Eyeballs
 *   --cores N         runtimes to run (default 0: one per usable CPU); each
 *                     has its own SO_REUSEPORT listener, as echo_server
 *   --connect-timeout-ms MS  give up on an upstream that does not answer
 *                     within MS (default 3000); the client is then closed
 *   --idle-ms MS      close a connection once no byte moved either way for
 *                     MS (default 0: never)
 *   --seconds S       drain after S seconds (default: until SIGINT/SIGTERM)
 *   --drain-ms MS     how long a drain lets relays finish before they are
 *                     cancelled (default 1000)
 *   --tls-cert FILE   terminate TLS with this certificate chain (PEM, leaf
 *                     first); TLS 1.2 and 1.3, a 10 s handshake limit
 *   --tls-key FILE    its private key (PEM); default: in the cert file
 *   COREIO_BACKEND=uring|epoll|kqueue forces a backend
 *
 * Example:  tcp_proxy --listen 127.0.0.1:8080 --upstream 127.0.0.1:7000
 *
 * Prints "tcp_proxy: listening on ADDR, upstream ADDR, backend B, N cores,
 * pid P" once every core accepts, and at exit one summary line:
 * connections, bytes each way, and errors by kind.  A client whose
 * upstream refuses or times out is closed at once.  A relay that ends with
 * a reset on one side resets the other (SO_LINGER 0); one that ends
 * cleanly passes half-closes on and closes both sides normally.
 * Exit status 0 after a drain; 1: could not listen or run; 2: bad
 * arguments; 3: the runtime could not start. */
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

/* The relay moves bytes in the kernel: a connection task needs little
 * stack of its own (the relay's two direction tasks have theirs). */
#define CONN_STACK (64 << 10)
#define LOG_EVERY CIO_SEC

static struct {
	struct ex_server srv; /* --listen, --seconds (or CIO_NEVER) */
	const char *upstream, *tls_cert, *tls_key;
	int64_t idle_ns, connect_ns;
} opt = {.srv = {.name = "tcp_proxy", .conn.stack_size = CONN_STACK}};

/* The TLS configuration, made once and shared by every core. */
static cio_tls_ctx *tls;

/* Errors by kind, counted per core and summed at exit. */
enum err_kind {
	E_REFUSED,      /* upstream refused the connection */
	E_CONN_TIMEOUT, /* upstream did not answer in time */
	E_CONN_OTHER,   /* any other connect failure */
	E_IDLE,         /* relay ended by the idle limit */
	E_RESET,        /* a peer reset, or went away mid-stream */
	E_DRAIN,        /* cancelled by the drain */
	E_RELAY_OTHER,  /* any other relay error */
	E_ACCEPT,       /* accept failures that passed */
	E_TLS,          /* a client's TLS handshake failed */
	E_COUNT
};
static const char *const err_names[E_COUNT] = {
	"refused", "connect-timeout", "connect-other", "idle", "reset",
	"drain", "relay-other", "accept", "tls",
};

static atomic_uint_fast64_t total_conns, total_up, total_down, total_err[E_COUNT];
static atomic_bool ran;

struct server {
	int64_t last_log;
	uint64_t conns_n, up, down, err[E_COUNT];
};

static void log_limited(struct server *s, const char *what, int err)
{
	int64_t now = cio_now();
	if (now - s->last_log < LOG_EVERY)
		return;
	s->last_log = now;
	fprintf(stderr, "tcp_proxy: core %d: %s: %s\n", cio_core_id(), what,
		cio_strerror(err));
}

/* Closes fd with a reset rather than a FIN: the peer learns the stream
 * broke instead of taking a truncated stream for a complete one. */
static void close_abort(int fd)
{
	struct linger l = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	cio_close(fd);
}

/* The kind of a relay's error. */
static enum err_kind relay_error(int rc)
{
	return rc == -ETIMEDOUT						  ? E_IDLE
	       : rc == -ECANCELED					  ? E_DRAIN
	       : rc == -ECONNRESET || rc == -EPIPE || rc == -ENOTCONN ? E_RESET
								  : E_RELAY_OTHER;
}

/* Ends a stream after its relay: normally when the relay ended cleanly or
 * by the idle limit or the drain (both sides intact), with a reset when a
 * side broke. */
static void stream_end(cio_stream *st, enum err_kind k, bool ok)
{
	if (!ok && k != E_IDLE && k != E_DRAIN) {
		struct linger l = {.l_onoff = 1, .l_linger = 0};
		setsockopt(cio_stream_fd(st), SOL_SOCKET, SO_LINGER, &l, sizeof l);
	}
	cio_stream_close(st);
}

/* TLS termination, first: a client's stream after its handshake, or NULL
 * (counted, and the connection closed).  The read buffer only holds what
 * arrives before the relay; the relay reads into the other side's write
 * buffer, a TLS record's worth. */
static const cio_stream_opts relay_buffers = {.read_buf = 4 << 10, .write_buf = 16 << 10};

static cio_stream *tls_accept(struct server *s, int fd)
{
	cio_stream *a;
	if (cio_stream_new(&a, fd, &relay_buffers) < 0)
		return NULL;
	int rc = cio_stream_tls_accept(a, tls);
	if (rc == 0)
		return a;
	s->err[rc == -ECANCELED ? E_DRAIN : E_TLS]++;
	if (rc != -ECANCELED) {
		char what[256];
		snprintf(what, sizeof what, "TLS handshake (%s)", cio_stream_error(a));
		log_limited(s, what, rc);
	}
	cio_stream_close(a);
	return NULL;
}

/* The relay between the client's TLS stream and the upstream's plain
 * one, copying. */
static int relay_tls(cio_stream *a, int up, cio_relay_stats *st)
{
	cio_stream *b;
	int rc = cio_stream_new(&b, up, &relay_buffers);
	if (rc == 0) {
		rc = cio_stream_relay(a, b, &(cio_relay_opts){.idle_timeout = opt.idle_ns}, st);
		stream_end(b, relay_error(rc), rc == 0);
	}
	stream_end(a, relay_error(rc), rc == 0);
	return rc;
}

/* The upstream, connected, or -errno (counted). */
static int dial_upstream(struct server *s)
{
	int up;
	CIO_WITH_TIMEOUT(opt.connect_ns) {
		up = cio_dial(opt.upstream, NULL);
	}
	if (up < 0) {
		enum err_kind k = up == -ECONNREFUSED ? E_REFUSED
				  : up == -ETIMEDOUT  ? E_CONN_TIMEOUT
				  : up == -ECANCELED  ? E_DRAIN
						      : E_CONN_OTHER;
		s->err[k]++;
		if (k != E_DRAIN)
			log_limited(s, "upstream connect", up);
		return up;
	}
	cio_tcp_nodelay(up, true);
	return up;
}

/* One client, on its own task. */
static int serve_conn(void *arg, int fd)
{
	struct server *s = arg;
	s->conns_n++;
	cio_tcp_nodelay(fd, true); /* fails harmlessly on a Unix socket */

	/* A client that cannot finish its handshake costs no upstream
	 * connection. */
	cio_stream *a = NULL;
	if (tls && !(a = tls_accept(s, fd)))
		return CIO_SERVE_DONE;
	int up = dial_upstream(s);
	if (up < 0) {
		if (a)
			stream_end(a, E_RESET, false);
		else
			close_abort(fd);
		return CIO_SERVE_DONE;
	}

	cio_relay_stats st = {0};
	int rc;
	if (a) {
		rc = relay_tls(a, up, &st);
	} else {
		rc = cio_relay(fd, up, &(cio_relay_opts){.idle_timeout = opt.idle_ns}, &st);
		enum err_kind k = relay_error(rc);
		if (rc == 0 || k == E_IDLE || k == E_DRAIN) {
			/* Both streams are intact: end them normally. */
			cio_close(fd);
			cio_close(up);
		} else {
			close_abort(fd);
			close_abort(up);
		}
	}
	s->up += st.a_to_b;
	s->down += st.b_to_a;
	if (rc < 0) {
		enum err_kind k = relay_error(rc);
		s->err[k]++;
		if (k == E_RELAY_OTHER)
			log_limited(s, "relay", rc);
	}
	return CIO_SERVE_DONE;
}

/* -EMFILE (cio_accept() has paused), -ECONNABORTED, a connection that got
 * no task, ...: counted, and the frame lives through them. */
static void accept_failed(void *arg, int err)
{
	struct server *s = arg;
	s->err[E_ACCEPT]++;
	log_limited(s, "accept", err);
}

static void *core_main(void *arg)
{
	struct server s = {0};
	(void)arg;
	atomic_store(&ran, true);
	if (ex_server_run(&opt.srv, serve_conn, accept_failed, &s) < 0)
		return NULL;
	atomic_fetch_add(&total_conns, s.conns_n);
	atomic_fetch_add(&total_up, s.up);
	atomic_fetch_add(&total_down, s.down);
	for (int i = 0; i < E_COUNT; i++)
		atomic_fetch_add(&total_err[i], s.err[i]);
	return NULL;
}

static void usage(const char *prog, int code)
{
	fprintf(code ? stderr : stdout,
		"usage: %s --listen ADDR --upstream ADDR [--cores N]\n"
		"       [--connect-timeout-ms MS] [--idle-ms MS] [--seconds S] [--drain-ms MS]\n"
		"       [--tls-cert FILE [--tls-key FILE]]\n"
		"ADDR: HOST:PORT, [V6HOST]:PORT or unix:/path; the upstream's host may be a name\n",
		prog);
	exit(code);
}

static int64_t number(const char *prog, const char *text)
{
	char *end;
	errno = 0;
	long long v = text ? strtoll(text, &end, 10) : -1;
	if (!text || errno || *end || v < 0 || v > INT64_MAX / CIO_SEC)
		usage(prog, 2);
	return v;
}

int main(int argc, char **argv)
{
	int64_t seconds = 0, idle_ms = 0, drain_ms = 1000, cores = 0, conn_ms = 3000;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			usage(argv[0], 0);
		else if (strcmp(a, "--listen") == 0 && val)
			opt.srv.addr = val, i++;
		else if (strcmp(a, "--upstream") == 0 && val)
			opt.upstream = val, i++;
		else if (strcmp(a, "--cores") == 0)
			cores = number(argv[0], val), i++;
		else if (strcmp(a, "--connect-timeout-ms") == 0)
			conn_ms = number(argv[0], val), i++;
		else if (strcmp(a, "--idle-ms") == 0)
			idle_ms = number(argv[0], val), i++;
		else if (strcmp(a, "--seconds") == 0)
			seconds = number(argv[0], val), i++;
		else if (strcmp(a, "--drain-ms") == 0)
			drain_ms = number(argv[0], val), i++;
		else if (strcmp(a, "--tls-cert") == 0 && val)
			opt.tls_cert = val, i++;
		else if (strcmp(a, "--tls-key") == 0 && val)
			opt.tls_key = val, i++;
		else
			usage(argv[0], 2);
	}
	cio_addr probe;
	if (!opt.srv.addr || !opt.upstream || cores > 1024 || conn_ms == 0) {
		usage(argv[0], 2);
	}
	if (cio_addr_parse(&probe, opt.srv.addr) < 0) {
		fprintf(stderr, "tcp_proxy: bad --listen address (want HOST:PORT, [V6]:PORT or unix:/path)\n");
		return 2;
	}
	if (opt.tls_key && !opt.tls_cert)
		usage(argv[0], 2);
	if (opt.tls_cert) {
		char why[256];
		cio_tls_cert cert = {.cert_file = opt.tls_cert,
				     .key_file = opt.tls_key ? opt.tls_key : opt.tls_cert};
		cio_tls_server_opts to = {.certs = &cert, .ncerts = 1};
		int trc = cio_tls_server_ctx(&tls, &to, why, sizeof why);
		if (trc < 0) {
			fprintf(stderr, "tcp_proxy: TLS: %s\n", why);
			return 2;
		}
	}
	opt.srv.run_ns = seconds > 0 ? seconds * CIO_SEC : CIO_NEVER;
	opt.idle_ns = idle_ms * CIO_MS;
	opt.connect_ns = conn_ms * CIO_MS;

	static char about[300];
	snprintf(about, sizeof about, "upstream %s%s", opt.upstream, tls ? ", TLS" : "");
	opt.srv.about = about;
	/* Each connection costs two sockets (and, while relaying, four pipe
	 * ends): the frame takes all the fds the hard limit allows. */
	ex_server_init();
	cio_cores_config cfg = {.drain_timeout = drain_ms > 0 ? drain_ms * CIO_MS : 1};
	int64_t t0 = cio_now();
	int rc = cio_run_cores_with(&cfg, (int)cores, core_main, NULL);
	if (rc < 0) {
		fprintf(stderr, "tcp_proxy: cio_run_cores: %s\n", cio_strerror(rc));
		return atomic_load(&ran) ? 1 : 3;
	}
	printf("tcp_proxy: stopped after %.1f s: %" PRIu64 " connections, %" PRIu64
	       " bytes client->upstream, %" PRIu64 " bytes upstream->client; errors:",
	       (double)(cio_now() - t0) / 1e9, (uint64_t)atomic_load(&total_conns),
	       (uint64_t)atomic_load(&total_up), (uint64_t)atomic_load(&total_down));
	for (int i = 0; i < E_COUNT; i++)
		printf(" %s %" PRIu64, err_names[i], (uint64_t)atomic_load(&total_err[i]));
	printf("\n");
	cio_tls_ctx_free(tls);
	return atomic_load(&ex_status);
}
