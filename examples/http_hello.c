/* http_hello.c - the smallest keep-alive HTTP/1.1 server on coreio, for
 * benchmarks: one runtime per core, each with its own SO_REUSEPORT
 * listener, one task per connection serving it with cio_http_serve_conn(),
 * and a graceful drain.
 *
 *   http_hello [--cores N] [--seconds N] [--drain-ms MS]
 *              [--tls-cert FILE [--tls-key FILE]] [ADDR]
 *
 *   ADDR          where to listen: HOST:PORT, [V6HOST]:PORT, unix:/path, or
 *                 a bare PORT on 127.0.0.1.  Default 127.0.0.1:8080; port 0
 *                 picks a free port, which the "listening on" line shows.
 *   --cores N     runtimes to run (default 0: one per usable CPU)
 *   --seconds N   drain after N seconds (default: until SIGINT/SIGTERM)
 *   --drain-ms MS how long a drain lets requests finish (default 1000)
 *   --tls-cert FILE  serve HTTPS with this certificate chain (PEM)
 *   --tls-key FILE   its private key (PEM); default: in the cert file
 *   COREIO_BACKEND=uring|epoll|kqueue forces a backend
 *
 * Answers GET (and HEAD) of any path with 200 "Hello, world!\n", and
 * POST /echo with the request's body, streamed back as it arrives (with
 * the request's Content-Length, or chunked); anything else 405.
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
#include <sys/resource.h>
#include <unistd.h>

/* The parser's state and the stream's buffers live on the heap; the
 * echo's copy buffer is the biggest thing on the stack. */
#define CONN_STACK (64 << 10)
#define HELLO "Hello, world!\n"

static struct {
	const char *addr;
	int64_t run_ns;
	const char *tls_cert, *tls_key;
} opt;
static cio_tls_ctx *tls;

static char bound_addr[128];
static cio_wg bound = CIO_WG_INIT(bound);
static atomic_uint_fast64_t total_conns, total_requests, total_errors;
static atomic_int status;
static atomic_bool ran;

struct server {
	int lfd;
	cio_wg conns;
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

static int handle(cio_http_req *req, cio_http_resp *resp, void *arg)
{
	struct server *s = arg;
	const char *m = cio_http_req_method(req);
	s->requests++;
	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
		return cio_http_resp_send(resp, 200, "text/plain", HELLO, sizeof HELLO - 1);
	if (strcmp(m, "POST") == 0 && strcmp(cio_http_req_target(req), "/echo") == 0)
		return echo(req, resp);
	static const char no[] = "405 Method Not Allowed\n";
	cio_http_resp_header(resp, "Allow", "GET, HEAD, POST");
	return cio_http_resp_send(resp, 405, "text/plain", no, sizeof no - 1);
}

struct conn {
	struct server *srv;
	int fd;
};

static void *serve(void *arg)
{
	struct conn c = *(struct conn *)arg;
	free(arg);
	cio_stream *st;
	int rc = cio_stream_new(&st, c.fd, NULL);
	if (rc == 0 && tls)
		rc = cio_stream_tls_accept(st, tls);
	if (rc == 0)
		rc = cio_http_serve_conn(st, NULL, handle, c.srv);
	if (rc < 0 && rc != -ECANCELED && rc != -ECONNRESET && rc != -EPIPE)
		c.srv->errors++;
	cio_stream_close(st);
	cio_wg_done(&c.srv->conns);
	return NULL;
}

static void start_conn(struct server *s, int fd)
{
	cio_tcp_nodelay(fd, true);
	struct conn *c = malloc(sizeof *c);
	if (!c) {
		cio_close(fd);
		return;
	}
	*c = (struct conn){s, fd};
	cio_wg_add(&s->conns, 1);
	cio_spawn_opts o = {.name = "http-conn", .stack_size = CONN_STACK, .detached = true};
	if (cio_spawn_with(&o, serve, c) < 0) {
		cio_wg_done(&s->conns);
		free(c);
		cio_close(fd);
		return;
	}
	s->conns_served++;
}

static void accept_loop(struct server *s)
{
	for (;;) {
		int fd = cio_accept(s->lfd, NULL);
		if (fd >= 0) {
			start_conn(s, fd);
			continue;
		}
		if (fd == -ESHUTDOWN || fd == -ECANCELED)
			return;
		if (fd == -EBADF || fd == -EINVAL || fd == -ENOTSOCK || fd == -EOPNOTSUPP) {
			fprintf(stderr, "http_hello: accept: %s; stopping\n", cio_strerror(fd));
			atomic_store(&status, 1);
			cio_drain();
			return;
		}
		/* Passing trouble (fds or memory short, a client gone from the
		 * backlog): back off a little and go on. */
		if ((fd == -ENOBUFS || fd == -ENOMEM) && cio_sleep(10 * CIO_MS) == -ECANCELED)
			return;
	}
}

static void *wait_bound(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)cio_wg_wait(&bound);
}

static void *stop_later(void *arg)
{
	(void)arg;
	cio_drain_idle(true);
	if (cio_sleep(opt.run_ns) == 0)
		cio_drain();
	return NULL;
}

static void *core_main(void *arg)
{
	struct server s = {.lfd = -1};
	int core = cio_core_id();
	(void)arg;
	atomic_store(&ran, true);
	cio_wg_init(&s.conns);
	if (core == 0) {
		s.lfd = cio_listen(opt.addr, &(cio_listen_opts){.reuseport = true});
		if (s.lfd >= 0) {
			cio_addr a = {.len = sizeof a.u};
			if (getsockname(s.lfd, &a.u.sa, &a.len) < 0 ||
			    cio_addr_format(&a, bound_addr, sizeof bound_addr) < 0)
				snprintf(bound_addr, sizeof bound_addr, "%s", opt.addr);
		}
		cio_wg_done(&bound);
	} else {
		cio_core_call(0, wait_bound, NULL, NULL);
		if (bound_addr[0])
			s.lfd = cio_listen(bound_addr, &(cio_listen_opts){.reuseport = true});
	}
	if (s.lfd < 0) {
		fprintf(stderr, "http_hello: core %d cannot listen on %s: %s\n", core,
			bound_addr[0] ? bound_addr : opt.addr,
			cio_strerror(s.lfd < -1 ? s.lfd : -EADDRNOTAVAIL));
		bound_addr[0] = '\0';
		atomic_store(&status, 1);
		cio_drain();
		return NULL;
	}
	if (core == 0) {
		const char *reason = cio_backend_reason();
		int n = cio_core_count();
		printf("http_hello: listening on %s, backend %s%s%s%s, %d core%s, pid %d\n",
		       bound_addr, cio_backend_name(), reason ? " (" : "",
		       reason ? reason : "", reason ? ")" : "", n, n == 1 ? "" : "s",
		       (int)getpid());
		fflush(stdout);
		if (opt.run_ns != CIO_NEVER)
			cio_spawn_with(&(cio_spawn_opts){.detached = true}, stop_later, NULL);
	}
	accept_loop(&s);
	cio_close(s.lfd);
	cio_cancel_clear();
	cio_wg_wait(&s.conns);
	atomic_fetch_add(&total_conns, s.conns_served);
	atomic_fetch_add(&total_requests, s.requests);
	atomic_fetch_add(&total_errors, s.errors);
	return NULL;
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--cores N] [--seconds N] [--drain-ms MS] "
			"[--tls-cert FILE [--tls-key FILE]] [HOST:PORT | PORT]\n", prog);
	exit(2);
}

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
	static char addr[256];
	int64_t seconds = 0, drain_ms = 1000, cores = 0;
	opt.addr = "127.0.0.1:8080";
	for (int i = 1; i < argc; i++) {
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--seconds") == 0)
			seconds = number(argv[0], val), i++;
		else if (strcmp(argv[i], "--drain-ms") == 0)
			drain_ms = number(argv[0], val), i++;
		else if (strcmp(argv[i], "--cores") == 0)
			cores = number(argv[0], val), i++;
		else if (strcmp(argv[i], "--tls-cert") == 0 && val)
			opt.tls_cert = val, i++;
		else if (strcmp(argv[i], "--tls-key") == 0 && val)
			opt.tls_key = val, i++;
		else if (argv[i][0] == '-')
			usage(argv[0]);
		else if (strspn(argv[i], "0123456789") == strlen(argv[i])) {
			snprintf(addr, sizeof addr, "127.0.0.1:%s", argv[i]);
			opt.addr = addr;
		} else
			opt.addr = argv[i];
	}
	if (cores > 1024 || (opt.tls_key && !opt.tls_cert))
		usage(argv[0]);
	opt.run_ns = seconds > 0 ? seconds * CIO_SEC : CIO_NEVER;
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
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	cio_wg_add(&bound, 1);
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
	return atomic_load(&status);
}
