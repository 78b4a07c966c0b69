/* test_proxy.c - runs examples/tcp_proxy as a child process in front of an
 * upstream served by this test, and checks it end to end: many concurrent
 * connections verified byte for byte, half-closes both ways, resets on
 * either side, a slow reader (the proxy's memory stays flat), an upstream
 * that refuses, the idle timeout, no fd or pipe left behind, and exit 0 on
 * SIGTERM with its summary line.  Then a second proxy that terminates TLS
 * (--tls-cert) with its upstream given by name ("localhost:PORT", from
 * /etc/hosts): TLS clients echo byte for byte through it with a
 * close_notify each way, and a client that talks plain text is refused.
 *
 * The upstream's behaviour for a connection is chosen by the first byte
 * the client sends through the proxy (see up_conn()). */
#include "example_util.h"
#include "net_util.h"

#include <netinet/tcp.h>

#ifndef TCP_PROXY_BIN
#error "TCP_PROXY_BIN: the path of examples/tcp_proxy"
#endif

#define PROXY_CORES 2
#define IDLE_MS 1000
#define CONNS 48
#define MAX_SIZE (256 << 10)
#define BIG (24u << 20)
#define HALF_BYTES 100000

static char up_addr[64];
static char proxy_addr[64], refused_addr[64];
static struct child proxy, refused;
static int up_lfd;

/* What the upstream saw, for the checks. */
static int half_ok;            /* 'H': bytes after its own half-close */
static int wait_done, wait_rc; /* 'W': how the client's reset showed */
static int64_t wait_at;

/* --- the upstream ------------------------------------------------------------ */

static void abort_close(int fd)
{
	struct linger l = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	cio_close(fd);
}

static void *up_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[64 << 10];
	char cmd;
	int64_t tok = cio_timeout_push(15 * CIO_SEC);
	ssize_t n = cio_recv_exact(fd, &cmd, 1, 0, NULL);
	if (n != 1) {
		cio_deadline_pop(tok);
		cio_close(fd);
		return NULL;
	}
	switch (cmd) {
	case 'E': /* echo until EOF, then a trailer: the reverse way still flows */
		while ((n = cio_recv(fd, buf, sizeof buf, 0)) > 0)
			if (cio_send_all(fd, buf, (size_t)n, 0, NULL) != n)
				break;
		if (n == 0)
			cio_send_all(fd, "DONE", 4, 0, NULL);
		break;
	case 'H': { /* half-close first, then take the client's bytes */
		CHECK_EQ(cio_send_all(fd, "HELLO", 5, 0, NULL), 5);
		CHECK_EQ(cio_shutdown(fd, SHUT_WR), 0);
		uint64_t got = 0;
		bool same = true;
		while ((n = cio_recv(fd, buf, sizeof buf, 0)) > 0) {
			for (ssize_t i = 0; i < n; i++)
				same &= (uint8_t)buf[i] == pat(got + (uint64_t)i, 7);
			got += (uint64_t)n;
		}
		if (n == 0 && same && got == HALF_BYTES)
			half_ok++;
		break;
	}
	case 'R': /* some bytes, then a reset */
		cio_send_all(fd, "XYZ", 3, 0, NULL);
		cio_sleep(50 * CIO_MS);
		abort_close(fd);
		cio_deadline_pop(tok);
		return NULL;
	case 'W': /* reads until the client's reset reaches it */
		while ((n = cio_recv(fd, buf, sizeof buf, 0)) > 0)
			;
		wait_rc = (int)n;
		wait_at = cio_now();
		wait_done = 1;
		break;
	case 'B': /* a lot, as fast as the proxy takes it */
		for (uint64_t sent = 0; sent < BIG;) {
			size_t len = sizeof buf;
			for (size_t i = 0; i < len; i++)
				buf[i] = (char)pat(sent + i, 9);
			if (cio_send_all(fd, buf, len, 0, NULL) != (ssize_t)len)
				break;
			sent += len;
		}
		break;
	case 'I': /* silent: the proxy's idle limit must end it */
		while ((n = cio_recv(fd, buf, sizeof buf, 0)) > 0)
			;
		break;
	}
	cio_deadline_pop(tok);
	cio_close(fd);
	return NULL;
}

static void *upstream(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = cio_accept(up_lfd, NULL);
		if (fd == -EBADF || fd == -ECANCELED || fd == -EINVAL)
			return NULL;
		if (fd < 0)
			continue;
		cio_spawn_opts o = {.detached = true, .stack_size = 256 << 10};
		CHECK(cio_spawn_with(&o, up_conn, (void *)(intptr_t)fd) > 0);
	}
}

/* --- clients --------------------------------------------------------------------- */

static int dial(const char *addr)
{
	int fd = cio_connect(addr, SOCK_STREAM);
	if (fd < 0)
		fprintf(stderr, "connect to %s: %s\n", addr, cio_strerror(fd));
	CHECK(fd >= 0);
	return fd;
}

/* Reads until EOF or an error, up to cap bytes; returns the count, or the
 * error if nothing came. */
static ssize_t read_to_end(int fd, char *buf, size_t cap, ssize_t *end)
{
	size_t got = 0;
	ssize_t n;
	while ((n = cio_recv(fd, buf + got, cap - got, 0)) > 0) {
		got += (size_t)n;
		if (got == cap)
			break;
	}
	if (end)
		*end = n;
	return (ssize_t)got;
}

struct echo_job {
	uint32_t seed;
	size_t size;
	int fd;
	int ok;
};

static void *echo_writer(void *arg)
{
	struct echo_job *j = arg;
	uint8_t chunk[8192];
	CHECK_EQ(cio_send_all(j->fd, "E", 1, 0, NULL), 1);
	for (size_t off = 0; off < j->size;) {
		size_t len = 1 + rnd() % sizeof chunk;
		if (len > j->size - off)
			len = j->size - off;
		for (size_t i = 0; i < len; i++)
			chunk[i] = pat(off + i, j->seed);
		CHECK_EQ(cio_send_all(j->fd, chunk, len, 0, NULL), (ssize_t)len);
		off += len;
	}
	CHECK_EQ(cio_shutdown(j->fd, SHUT_WR), 0);
	return NULL;
}

static void *echo_client(void *arg)
{
	struct echo_job *j = arg;
	int64_t tok = cio_timeout_push(15 * CIO_SEC);
	j->fd = dial(proxy_addr);
	cio_task_t w = cio_spawn(echo_writer, j);
	CHECK(w > 0);
	uint8_t buf[16384];
	size_t got = 0;
	bool same = true;
	ssize_t n;
	while ((n = cio_recv(j->fd, buf, sizeof buf, 0)) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			size_t at = got + (size_t)i;
			uint8_t want = at < j->size ? pat(at, j->seed) : (uint8_t)"DONE"[at - j->size < 4 ? at - j->size : 0];
			same &= buf[i] == want;
		}
		got += (size_t)n;
	}
	CHECK_EQ(n, 0);
	CHECK_EQ(got, j->size + 4);
	CHECK(same);
	CHECK_EQ(cio_join(w, NULL), 0);
	cio_deadline_pop(tok);
	cio_close(j->fd);
	j->ok = 1;
	return NULL;
}

static void many_connections(void)
{
	static struct echo_job jobs[CONNS];
	cio_task_t t[CONNS];
	for (int i = 0; i < CONNS; i++) {
		jobs[i] = (struct echo_job){.seed = rnd(), .size = rnd() % MAX_SIZE};
		if (i == 0)
			jobs[i].size = 0;
		t[i] = cio_spawn(echo_client, &jobs[i]);
		CHECK(t[i] > 0);
	}
	for (int i = 0; i < CONNS; i++) {
		CHECK_EQ(cio_join(t[i], NULL), 0);
		CHECK(jobs[i].ok);
	}
}

/* One small echo: the proxy still serves. */
static void echo_once(void)
{
	struct echo_job j = {.seed = 3, .size = 1000};
	echo_client(&j);
	CHECK(j.ok);
}

/* The client half-closes first (echo_client does), and the upstream
 * half-closes first. */
static void upstream_half_close(void)
{
	int64_t tok = cio_timeout_push(10 * CIO_SEC);
	int fd = dial(proxy_addr);
	char buf[16];
	CHECK_EQ(cio_send_all(fd, "H", 1, 0, NULL), 1);
	ssize_t end;
	CHECK_EQ(read_to_end(fd, buf, sizeof buf, &end), 5);
	CHECK_EQ(end, 0);
	CHECK(memcmp(buf, "HELLO", 5) == 0);
	/* Our way still flows after the upstream's half-close. */
	static uint8_t data[HALF_BYTES];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = pat(i, 7);
	CHECK_EQ(cio_send_all(fd, data, sizeof data, 0, NULL), (ssize_t)sizeof data);
	CHECK_EQ(cio_shutdown(fd, SHUT_WR), 0);
	CHECK_EQ(cio_recv(fd, buf, 1, 0), 0);
	cio_deadline_pop(tok);
	cio_close(fd);
	for (int i = 0; i < 200 && !half_ok; i++)
		cio_sleep(10 * CIO_MS);
	CHECK_EQ(half_ok, 1);
}

static void upstream_reset(void)
{
	int64_t tok = cio_timeout_push(5 * CIO_SEC);
	int fd = dial(proxy_addr);
	char buf[64];
	CHECK_EQ(cio_send_all(fd, "R", 1, 0, NULL), 1);
	int64_t t0 = cio_now();
	ssize_t end;
	ssize_t got = read_to_end(fd, buf, sizeof buf, &end);
	CHECK(got <= 3);
	CHECK(end == 0 || end == -ECONNRESET);
	CHECK(cio_now() - t0 < 2 * CIO_SEC);
	cio_deadline_pop(tok);
	cio_close(fd);
}

static void client_reset(void)
{
	int64_t tok = cio_timeout_push(5 * CIO_SEC);
	int fd = dial(proxy_addr);
	char data[1000] = {'W'};
	wait_done = 0;
	CHECK_EQ(cio_send_all(fd, data, sizeof data, 0, NULL), (ssize_t)sizeof data);
	cio_sleep(50 * CIO_MS);
	int64_t t0 = cio_now();
	abort_close(fd);
	for (int i = 0; i < 300 && !wait_done; i++)
		cio_sleep(10 * CIO_MS);
	CHECK(wait_done);
	CHECK(wait_rc == 0 || wait_rc == -ECONNRESET);
	CHECK(wait_at - t0 < 2 * CIO_SEC);
	cio_deadline_pop(tok);
}

struct sampler {
	pid_t pid;
	long max_kib;
	int max_fds;
	bool stop;
};

static void *sample(void *arg)
{
	struct sampler *s = arg;
	while (!s->stop) {
		long k = ex_rss_kib(s->pid);
		int f = ex_fds(s->pid, NULL);
		if (k > s->max_kib)
			s->max_kib = k;
		if (f > s->max_fds)
			s->max_fds = f;
		if (cio_sleep(20 * CIO_MS) < 0)
			break;
	}
	return NULL;
}

/* The client takes its bytes slowly while the upstream sends 24 MiB: the
 * relay must hold back the upstream, not buffer in the proxy. */
static void slow_reader(void)
{
	struct sampler s = {.pid = proxy.pid};
	long base = ex_rss_kib(proxy.pid);
	int base_fds = ex_fds(proxy.pid, NULL);
	int64_t tok = cio_timeout_push(15 * CIO_SEC);
	int fd = cio_socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	CHECK_EQ(cio_sock_buffers(fd, 16 << 10, 0), 0);
	cio_addr a;
	CHECK_EQ(cio_addr_parse(&a, proxy_addr), 0);
	CHECK_EQ(cio_connect_addr(fd, &a), 0);
	cio_task_t st = cio_spawn(sample, &s);
	CHECK(st > 0);
	CHECK_EQ(cio_send_all(fd, "B", 1, 0, NULL), 1);
	static uint8_t buf[32 << 10];
	uint64_t got = 0;
	bool same = true;
	ssize_t n;
	int reads = 0;
	while ((n = cio_recv(fd, buf, sizeof buf, 0)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			same &= buf[i] == pat(got + (uint64_t)i, 9);
		got += (uint64_t)n;
		if (++reads % 4 == 0)
			cio_sleep(2 * CIO_MS);
	}
	CHECK_EQ(n, 0);
	CHECK_EQ(got, BIG);
	CHECK(same);
	s.stop = true;
	CHECK_EQ(cio_join(st, NULL), 0);
	cio_deadline_pop(tok);
	cio_close(fd);
	fprintf(stderr, "  slow reader: proxy RSS %ld -> max %ld KiB, fds %d -> max %d\n", base,
		s.max_kib, base_fds, s.max_fds);
	CHECK(s.max_kib - base < 6 * 1024);
	CHECK(s.max_fds - base_fds <= 8);
}

static void upstream_refuses(void)
{
	int64_t tok = cio_timeout_push(5 * CIO_SEC);
	for (int i = 0; i < 3; i++) {
		/* The proxy resets the client at once: so fast, at times,
		 * that the reset is what connect reports. */
		int64_t t0 = cio_now();
		int fd = cio_connect(refused_addr, SOCK_STREAM);
		if (fd == -ECONNRESET)
			continue;
		CHECK(fd >= 0);
		char c;
		ssize_t n = cio_recv(fd, &c, 1, 0);
		CHECK(n == 0 || n == -ECONNRESET);
		CHECK(cio_now() - t0 < CIO_SEC);
		cio_close(fd);
	}
	cio_deadline_pop(tok);
}

static void idle_timeout(void)
{
	int64_t tok = cio_timeout_push(10 * CIO_SEC);
	int fd = dial(proxy_addr);
	CHECK_EQ(cio_send_all(fd, "Ihello", 6, 0, NULL), 6);
	int64_t t0 = cio_now();
	char c;
	ssize_t n = cio_recv(fd, &c, 1, 0);
	int64_t took = cio_now() - t0;
	CHECK(n == 0 || n == -ECONNRESET);
	CHECK(took >= IDLE_MS * CIO_MS * 8 / 10);
	CHECK(took < IDLE_MS * CIO_MS * 4);
	cio_deadline_pop(tok);
	cio_close(fd);
}

/* --- TLS termination ------------------------------------------------------------ */
#ifdef COREIO_TEST_TLS

static char tls_dir[64], tls_cert[96], tls_key[96], tls_proxy_addr[64];
static cio_tls_ctx *tls_client;

struct tls_echo {
	cio_stream *st;
	size_t size;
	uint32_t seed;
};

static void *tls_writer(void *arg)
{
	struct tls_echo *e = arg;
	uint8_t chunk[5000];
	CHECK_EQ(cio_stream_put(e->st, "E", 1), 1);
	for (size_t off = 0; off < e->size;) {
		size_t len = 1 + rnd() % sizeof chunk;
		if (len > e->size - off)
			len = e->size - off;
		for (size_t i = 0; i < len; i++)
			chunk[i] = pat(off + i, e->seed);
		CHECK_EQ(cio_stream_write_all(e->st, chunk, len, NULL), (ssize_t)len);
		off += len;
	}
	CHECK_EQ(cio_stream_shutdown(e->st), 0); /* close_notify */
	return NULL;
}

/* size bytes out through the TLS proxy and back, with the upstream's
 * trailer after the client's close_notify, then the proxy's own
 * close_notify: a clean end, not a truncation. */
static void *tls_echo_client(void *arg)
{
	struct tls_echo e = {.size = (size_t)(uintptr_t)arg, .seed = rnd()};
	CIO_WITH_TIMEOUT(15 * CIO_SEC) {
		CHECK_EQ(cio_stream_new(&e.st, dial(tls_proxy_addr), NULL), 0);
		int rc = cio_stream_tls_connect(e.st, tls_client, "localhost");
		if (rc < 0)
			fprintf(stderr, "TLS to the proxy: %s\n", cio_stream_error(e.st));
		CHECK_EQ(rc, 0);
		cio_task_t w = cio_spawn(tls_writer, &e);
		CHECK(w > 0);
		uint8_t buf[7000];
		size_t got = 0;
		bool same = true;
		ssize_t n;
		while ((n = cio_stream_read(e.st, buf, sizeof buf)) > 0) {
			for (ssize_t i = 0; i < n; i++) {
				size_t at = got + (size_t)i;
				same &= buf[i] == (at < e.size ? pat(at, e.seed)
						   : (uint8_t)"DONE"[(at - e.size) & 3]);
			}
			got += (size_t)n;
		}
		CHECK_EQ(n, 0);
		CHECK_EQ(got, e.size + 4);
		CHECK(same);
		CHECK_EQ(cio_join(w, NULL), 0);
		CHECK_EQ(cio_stream_close(e.st), 0);
	}
	return NULL;
}

static void tls_termination(void)
{
	snprintf(tls_dir, sizeof tls_dir, "/tmp/coreio-proxy-tls-XXXXXX");
	CHECK(mkdtemp(tls_dir) != NULL);
	snprintf(tls_cert, sizeof tls_cert, "%s/cert.pem", tls_dir);
	snprintf(tls_key, sizeof tls_key, "%s/key.pem", tls_dir);
	char cmd[512];
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout %s -out %s -days 2 -subj /CN=localhost "
		 "-addext subjectAltName=DNS:localhost 2>/dev/null",
		 tls_key, tls_cert);
	CHECK_EQ(system(cmd), 0);
	char err[256] = "";
	CHECK_EQ(cio_tls_client_ctx(&tls_client, &(cio_tls_client_opts){.ca_file = tls_cert},
				    err, sizeof err), 0);

	struct child tp;
	char up_name[64];
	snprintf(up_name, sizeof up_name, "localhost:%s", strrchr(up_addr, ':') + 1);
	char *argv[] = {TCP_PROXY_BIN, "--listen", "127.0.0.1:0", "--upstream", up_name,
			"--cores", "1", "--tls-cert", tls_cert, "--tls-key", tls_key,
			"--seconds", "100", NULL};
	CHECK_EQ(ex_start(&tp, argv, "listening on"), 0);
	snprintf(tls_proxy_addr, sizeof tls_proxy_addr, "127.0.0.1:%d", ex_port(&tp));

	enum { N = 8 };
	cio_task_t t[N];
	for (int i = 0; i < N; i++) {
		size_t size = i == 0 ? 0 : i == 1 ? (4u << 20) : rnd() % MAX_SIZE;
		t[i] = cio_spawn(tls_echo_client, (void *)(uintptr_t)size);
		CHECK(t[i] > 0);
	}
	for (int i = 0; i < N; i++)
		CHECK_EQ(cio_join(t[i], NULL), 0);

	/* Plain text to a TLS listener: the handshake fails, the proxy
	 * closes, and counts it. */
	int fd = dial(tls_proxy_addr);
	static const char req[] = "GET / HTTP/1.0\r\n\r\n";
	CHECK_EQ(cio_send_all(fd, req, sizeof req - 1, 0, NULL), (ssize_t)sizeof req - 1);
	char buf[256];
	ssize_t end;
	read_to_end(fd, buf, sizeof buf, &end);
	CHECK(end == 0 || end == -ECONNRESET);
	cio_close(fd);

	CHECK_EQ(ex_stop(&tp, SIGTERM, 10000), 0);
	fprintf(stderr, "  %s", tp.text);
	CHECK(strstr(tp.text, " tls 1\n") || strstr(tp.text, " tls 1 "));
	CHECK(strstr(tp.text, " reset 0"));
	cio_tls_ctx_free(tls_client);
	CHECK_EQ(unlink(tls_cert), 0);
	CHECK_EQ(unlink(tls_key), 0);
	CHECK_EQ(rmdir(tls_dir), 0);
}
#endif

/* A proxy whose upstream refuses: a port with no listener behind it. */
static void refusing_upstream(void)
{
	char dead_addr[64];
	int dead = cio_listen("127.0.0.1:0", NULL);
	CHECK(dead >= 0);
	local_addr(dead, dead_addr, sizeof dead_addr);
	cio_close(dead);
	char *argv2[] = {TCP_PROXY_BIN, "--listen", "127.0.0.1:0", "--upstream", dead_addr,
			 "--cores", "1", "--seconds", "100", NULL};
	CHECK_EQ(ex_start(&refused, argv2, "listening on"), 0);
	snprintf(refused_addr, sizeof refused_addr, "127.0.0.1:%d", ex_port(&refused));
	upstream_refuses();
	CHECK_EQ(ex_stop(&refused, SIGINT, 10000), 0);
	CHECK(strstr(refused.text, "refused 3"));
}

static void *test_main(void *arg)
{
	(void)arg;
	up_lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(up_lfd >= 0);
	local_addr(up_lfd, up_addr, sizeof up_addr);
	cio_task_t up = cio_spawn(upstream, NULL);
	CHECK(up > 0);

	char cores[16], idle[16];
	snprintf(cores, sizeof cores, "%d", PROXY_CORES);
	snprintf(idle, sizeof idle, "%d", IDLE_MS);
	char *argv[] = {TCP_PROXY_BIN, "--listen", "127.0.0.1:0", "--upstream", up_addr,
			"--cores", cores, "--idle-ms", idle, "--connect-timeout-ms", "2000",
			"--seconds", "100", NULL};
	CHECK_EQ(ex_start(&proxy, argv, "listening on"), 0);
	snprintf(proxy_addr, sizeof proxy_addr, "127.0.0.1:%d", ex_port(&proxy));

	echo_once(); /* warm up: whatever the proxy makes once is made */
	cio_sleep(100 * CIO_MS);
	int base_pipes, base = ex_fds(proxy.pid, &base_pipes);

	/* After a case that breaks connections, the proxy still serves. */
	TEST_CASE(many_connections, {
		int64_t t0 = cio_now();
		many_connections();
		fprintf(stderr, "  %d concurrent connections: %.2f s\n", CONNS,
			(double)(cio_now() - t0) / 1e9);
	});
	TEST_CASE(upstream_half_close, upstream_half_close());
	TEST_CASE(upstream_reset, {
		upstream_reset();
		echo_once();
	});
	TEST_CASE(client_reset, {
		client_reset();
		echo_once();
	});
	TEST_CASE(slow_reader, slow_reader());
	TEST_CASE(upstream_refuses, refusing_upstream());
	TEST_CASE(idle_timeout, {
		idle_timeout();
		echo_once();
	});

	/* Every connection closed: the fds are back to the baseline; only
	 * the pool's empty pipes (at most 32 a core) may have stayed. */
	int pipes = 0, fds = 0;
	for (int i = 0; i < 100; i++) {
		cio_sleep(20 * CIO_MS);
		fds = ex_fds(proxy.pid, &pipes);
		if (fds - pipes == base - base_pipes)
			break;
	}
	fprintf(stderr, "  proxy fds: %d (%d pipe ends) at rest, %d (%d) after\n", base,
		base_pipes, fds, pipes);
	CHECK_EQ(fds - pipes, base - base_pipes);
	CHECK(pipes - base_pipes <= 2 * 32 * PROXY_CORES);

	CHECK_EQ(ex_stop(&proxy, SIGTERM, 10000), 0);
	fprintf(stderr, "  %s", proxy.text);
	CHECK(strstr(proxy.text, "stopped after"));
	CHECK(strstr(proxy.text, "errors:"));

#ifdef COREIO_TEST_TLS
	TEST_CASE(tls_termination, tls_termination());
#else
	TEST_CASE_OFF(tls_termination, "no TLS in this build: tcp_proxy --tls-cert not tried");
#endif

	cio_close(up_lfd);
	CHECK_EQ(cio_join(up, NULL), 0);
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	net_seed_from_env();
	fprintf(stderr, "seed %#x\n", rng);
	int rc = test_run(test_main, NULL);
	return rc ? rc : test_cases_end();
}
