/* http_hello.c - the smallest keep-alive HTTP/1.1 server on coreio, for
 * benchmarks: one runtime per core, each with its own SO_REUSEPORT
 * listener, connections served with cio_http_serve_turn(): a kept-alive
 * connection holds a task only while a request of its is in progress;
 * and a graceful drain.
 *
 *   http_hello [--cores N] [--seconds N] [--drain-ms MS] [--task]
 *              [--tls-cert FILE [--tls-key FILE]] [--stats ADDR] [ADDR]
 *
 *   ADDR          where to listen: HOST:PORT, [V6HOST]:PORT, unix:/path, or
 *                 a bare PORT on 127.0.0.1.  Default 127.0.0.1:8080; port 0
 *                 picks a free port, which the "listening on" line shows.
 *   --cores N     runtimes to run (default 0: one per usable CPU)
 *   --seconds N   drain after N seconds (default: until SIGINT/SIGTERM)
 *   --drain-ms MS how long a drain lets requests finish (default 1000)
 *   --task        a task per connection for its whole life, waiting for
 *                 its next request on it (cio_http_serve_conn())
 *   --tls-cert FILE  serve HTTPS with this certificate chain (PEM)
 *   --tls-key FILE   its private key (PEM); default: in the cert file
 *   --stats ADDR  serve the runtime's counters of every core on ADDR
 *                 (Prometheus text, plain HTTP/1.0, one answer per
 *                 connection), and print "http_hello: stats on ADDR"
 *   COREIO_BACKEND=uring|epoll|kqueue forces a backend
 *
 * Answers GET (and HEAD) of /bytes/N, N decimal and at most 16 MiB, with
 * N bytes of 'x' (Content-Length N: a body of any size for benchmarks),
 * and of any other path with 200 "Hello, world!\n"; POST /echo with the
 * request's body, streamed back as it arrives (with the request's
 * Content-Length, or chunked); anything else 405.
 *
 * Prints "http_hello: listening on ADDR, backend B, N cores, pid P" once
 * every core accepts, and on exit what it served.  SIGINT, SIGTERM or
 * --seconds drain: listeners close, idle keep-alive connections close at
 * once, requests in progress get --drain-ms; exit status 0.  Exit status
 * 1: could not listen or run; 2: bad arguments; 3: the runtime could not
 * start. */
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

/* The parser's state and the stream's buffers live on the heap; the
 * echo's copy buffer is the biggest thing on the stack. */
#define CONN_STACK (64 << 10)
#define HELLO "Hello, world!\n"
#define MAX_BYTES (16 << 20)

/* /bytes/N's body, 'x' throughout (filled by main), written as often as
 * N needs. */
static char fill[16 << 10];

static struct {
	struct ex_server srv; /* the address, --seconds (or CIO_NEVER) */
	const char *tls_cert, *tls_key;
	bool task;            /* --task */
} opt = {.srv = {.name = "http_hello", .conn.stack_size = CONN_STACK}};
static cio_tls_ctx *tls;

static atomic_uint_fast64_t total_conns, total_requests, total_errors;
static atomic_bool ran;

struct server {
	uint64_t conns_served, requests, errors;
};

/* POST /echo: the body back as it comes, framed as the request was. */
static int echo(cio_http_req *req, cio_http_resp *resp)
{
	char buf[16 << 10];
	int64_t len = cio_http_req_content_length(req);
	if (len >= 0)
		cio_http_resp_set_length(resp, (uint64_t)len);
	const char *type = cio_http_req_header(req, "content-type");
	cio_http_resp_header(resp, "Content-Type", type ? type : "application/octet-stream");
	ssize_t n;
	while ((n = cio_http_req_read(req, buf, sizeof buf)) > 0)
		if ((n = cio_http_resp_write(resp, buf, (size_t)n)) < 0)
			return (int)n;
	return n < 0 ? (int)n : cio_http_resp_end(resp);
}

/* GET /bytes/N: N bytes of 'x'; a body that fits fill goes in one call,
 * as the hello does. */
static int bytes(cio_http_resp *resp, size_t n)
{
	static const char type[] = "application/octet-stream";
	if (n <= sizeof fill)
		return cio_http_resp_send(resp, 200, type, fill, n);
	cio_http_resp_set_length(resp, n);
	cio_http_resp_header(resp, "Content-Type", type);
	for (size_t k; n > 0; n -= k) {
		k = n < sizeof fill ? n : sizeof fill;
		ssize_t w = cio_http_resp_write(resp, fill, k);
		if (w < 0)
			return (int)w;
	}
	return cio_http_resp_end(resp);
}

static int handle(cio_http_req *req, cio_http_resp *resp, void *arg)
{
	struct server *s = arg;
	const char *m = cio_http_req_method(req);
	s->requests++;
	const char *t = cio_http_req_target(req);
	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
		const char *num = strncmp(t, "/bytes/", 7) == 0 ? t + 7 : "";
		int64_t n = *num && strspn(num, "0123456789") == strlen(num) ? ex_number(num) : -1;
		if (n >= 0 && n <= MAX_BYTES)
			return bytes(resp, (size_t)n);
		return cio_http_resp_send(resp, 200, "text/plain", HELLO, sizeof HELLO - 1);
	}
	if (strcmp(m, "POST") == 0 && strcmp(t, "/echo") == 0)
		return echo(req, resp);
	static const char no[] = "405 Method Not Allowed\n";
	cio_http_resp_header(resp, "Allow", "GET, HEAD, POST");
	return cio_http_resp_send(resp, 405, "text/plain", no, sizeof no - 1);
}

static void count_end(struct server *s, int rc)
{
	if (rc < 0 && rc != -ECANCELED && rc != -ECONNRESET && rc != -EPIPE)
		s->errors++;
}

/* A connection's turn: its requests until it waits for another
 * (CIO_SERVE_AGAIN: on no task) or ends. */
static int serve(void *arg, int fd)
{
	struct server *s = arg;
	if (!*cio_serve_state())
		s->conns_served++; /* its first turn */
	int rc = cio_http_serve_turn(fd, tls, NULL, handle, s);
	if (rc == CIO_SERVE_AGAIN)
		return rc;
	count_end(s, rc);
	return CIO_SERVE_DONE;
}

/* --task: the whole connection on one task. */
static int serve_task(void *arg, int fd)
{
	struct server *s = arg;
	cio_stream *st;
	s->conns_served++;
	int rc = cio_stream_new(&st, fd, NULL);
	if (rc == 0 && tls)
		rc = cio_stream_tls_accept(st, tls);
	if (rc == 0)
		rc = cio_http_serve_conn(st, NULL, handle, s);
	count_end(s, rc);
	cio_stream_close(st);
	return CIO_SERVE_DONE;
}

static void *core_main(void *arg)
{
	struct server s = {0};
	(void)arg;
	atomic_store(&ran, true);
	if (ex_server_run(&opt.srv, opt.task ? serve_task : serve, NULL, &s) < 0)
		return NULL;
	atomic_fetch_add(&total_conns, s.conns_served);
	atomic_fetch_add(&total_requests, s.requests);
	atomic_fetch_add(&total_errors, s.errors);
	return NULL;
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--cores N] [--seconds N] [--drain-ms MS] "
			"[--task] [--tls-cert FILE [--tls-key FILE]] [--stats ADDR] [HOST:PORT | PORT]\n",
		prog);
	exit(2);
}

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
	int64_t seconds = 0, drain_ms = 1000, cores = 0;
	opt.srv.addr = "127.0.0.1:8080";
	memset(fill, 'x', sizeof fill);
	for (int i = 1; i < argc; i++) {
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--seconds") == 0)
			seconds = number(argv[0], val), i++;
		else if (strcmp(argv[i], "--drain-ms") == 0)
			drain_ms = number(argv[0], val), i++;
		else if (strcmp(argv[i], "--cores") == 0)
			cores = number(argv[0], val), i++;
		else if (strcmp(argv[i], "--task") == 0)
			opt.task = true;
		else if (strcmp(argv[i], "--stats") == 0 && val)
			opt.srv.stats_addr = val, i++;
		else if (strcmp(argv[i], "--tls-cert") == 0 && val)
			opt.tls_cert = val, i++;
		else if (strcmp(argv[i], "--tls-key") == 0 && val)
			opt.tls_key = val, i++;
		else if (argv[i][0] == '-')
			usage(argv[0]);
		else if (strspn(argv[i], "0123456789") == strlen(argv[i])) {
			snprintf(addr, sizeof addr, "127.0.0.1:%s", argv[i]);
			opt.srv.addr = addr;
		} else
			opt.srv.addr = argv[i];
	}
	if (cores > 1024 || (opt.tls_key && !opt.tls_cert))
		usage(argv[0]);
	opt.srv.run_ns = seconds > 0 ? seconds * CIO_SEC : CIO_NEVER;
	if (!opt.task)
		cio_http_turn_opts(&opt.srv.conn, NULL);
	if (opt.tls_cert) {
		char why[256];
		cio_tls_cert cert = {.cert_file = opt.tls_cert,
				     .key_file = opt.tls_key ? opt.tls_key : opt.tls_cert};
		cio_tls_server_opts to = {.certs = &cert, .ncerts = 1, .alpn = "http/1.1"};
		if (cio_tls_server_ctx(&tls, &to, why, sizeof why) < 0) {
			fprintf(stderr, "http_hello: TLS: %s\n", why);
			return 2;
		}
	}

	ex_server_init();
	cio_cores_config cfg = {.drain_timeout = drain_ms > 0 ? drain_ms * CIO_MS : 1};
	int64_t t0 = cio_now();
	int rc = cio_run_cores_with(&cfg, (int)cores, core_main, NULL);
	cio_tls_ctx_free(tls);
	if (rc < 0) {
		fprintf(stderr, "http_hello: cio_run_cores: %s\n", cio_strerror(rc));
		return atomic_load(&ran) ? 1 : 3;
	}
	printf("http_hello: stopped after %.1f s: %" PRIu64 " connections, %" PRIu64
	       " requests, %" PRIu64 " connection errors\n",
	       (double)(cio_now() - t0) / 1e9, (uint64_t)atomic_load(&total_conns),
	       (uint64_t)atomic_load(&total_requests), (uint64_t)atomic_load(&total_errors));
	return atomic_load(&ex_status);
}
