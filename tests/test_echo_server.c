/* test_echo_server.c - examples/echo_server, on the backend CTest names,
 * served to a client that shares nothing with coreio: plain blocking
 * sockets in plain threads.  Many connections exchange random-sized
 * messages byte for byte; one streams both ways at once; one half-closes
 * and still gets every byte back; rude peers reset mid-stream; then
 * SIGTERM stops the server cleanly, closing idle connections at once,
 * and its summary counts every connection.  All of it four times: each
 * connection idle without a task between messages (the default), on a
 * task of its own receiving into lent buffers (--task) or into its own
 * buffer (--own-buf), and through a cio_stream (--stream).  The first run
 * also scrapes --stats, whose counters must show the traffic. */
#include "check.h"
#include "example_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#define CONNS 16
#define ROUNDS 40
#define MAX_MSG (64 << 10)
#define STREAM_BYTES (4 << 20)
#define RESETS 8

static int port;

static uint8_t pat(size_t i, unsigned seed)
{
	return (uint8_t)((i * 131 + seed * 7 + (i >> 9)) & 0xff);
}

static int dial(void)
{
	return ex_dial(port);
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
	ex_send_all(fd, p, n);
}

/* Reads exactly n bytes (a timeout or an early end fails the test). */
static void recv_exact(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		CHECK(r > 0);
		p += r;
		n -= (size_t)r;
	}
}

static void expect_eof(int fd)
{
	ex_expect_eof(fd);
}

/* Ping-pong: a message of random size out, the same bytes back. */
static void *pingpong(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	static _Thread_local uint8_t out[MAX_MSG], in[MAX_MSG];
	int fd = dial();
	size_t off = 0;
	for (int r = 0; r < ROUNDS; r++) {
		size_t n = 1 + (size_t)rand_r(&seed) % MAX_MSG;
		for (size_t i = 0; i < n; i++)
			out[i] = pat(off + i, seed);
		send_all(fd, out, n);
		recv_exact(fd, in, n);
		CHECK(memcmp(in, out, n) == 0);
		off += n;
	}
	close(fd);
	return NULL;
}

struct stream {
	int fd;
	unsigned seed;
};

static void *stream_writer(void *arg)
{
	struct stream *s = arg;
	uint8_t buf[8192];
	for (size_t off = 0; off < STREAM_BYTES; off += sizeof buf) {
		for (size_t i = 0; i < sizeof buf; i++)
			buf[i] = pat(off + i, s->seed);
		send_all(s->fd, buf, sizeof buf);
	}
	/* Half-close: the server must still echo what is in flight, then
	 * close its side. */
	CHECK_EQ(shutdown(s->fd, SHUT_WR), 0);
	return NULL;
}

/* Both ways at once: 4 MiB written by one thread while this one reads
 * it back, then end of stream after the last byte. */
static void *stream_both_ways(void *arg)
{
	(void)arg;
	struct stream s = {dial(), 99};
	pthread_t w;
	CHECK_EQ(pthread_create(&w, NULL, stream_writer, &s), 0);
	static uint8_t buf[65536];
	size_t got = 0;
	while (got < STREAM_BYTES) {
		ssize_t r = recv(s.fd, buf, sizeof buf, 0);
		if (r < 0 && errno == EINTR)
			continue;
		CHECK(r > 0);
		for (ssize_t i = 0; i < r; i++)
			CHECK_EQ(buf[i], pat(got + (size_t)i, s.seed));
		got += (size_t)r;
	}
	expect_eof(s.fd);
	CHECK_EQ(pthread_join(w, NULL), 0);
	close(s.fd);
	return NULL;
}

/* A peer that sends, then resets without reading its echo. */
static void rude_peer(void)
{
	int fd = dial();
	uint8_t buf[100000];
	memset(buf, 'r', sizeof buf);
	send_all(fd, buf, sizeof buf);
	struct linger l = {.l_onoff = 1, .l_linger = 0};
	CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
	close(fd);
}

/* The --stats endpoint's answer, as a scraper sees it: an HTTP/1.0 200
 * with both cores' counters, the connections so far among them. */
static void check_stats(int stats_port, int conns)
{
	static char text[1 << 16];
	size_t got = 0;
	int fd = ex_dial(stats_port);
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	ex_send_all(fd, req, sizeof req - 1);
	for (ssize_t n; got < sizeof text - 1 &&
			(n = recv(fd, text + got, sizeof text - 1 - got, 0)) != 0;) {
		if (n < 0 && errno == EINTR)
			continue;
		CHECK(n > 0);
		got += (size_t)n;
	}
	close(fd);
	text[got] = '\0';
	CHECK(strncmp(text, "HTTP/1.0 200 OK\r\n", 17) == 0);
	CHECK(strstr(text, "# TYPE coreio_accepted_total counter\n"));
	long long accepted = 0, writes = 0;
	for (int core = 0; core < 2; core++) {
		char name[96];
		const char *p;
		snprintf(name, sizeof name, "coreio_accepted_total{core=\"%d\"} ", core);
		CHECK((p = strstr(text, name)) != NULL);
		accepted += atoll(p + strlen(name));
		snprintf(name, sizeof name, "coreio_ops_total{core=\"%d\",kind=\"write\"} ", core);
		CHECK((p = strstr(text, name)) != NULL);
		writes += atoll(p + strlen(name));
	}
	CHECK(accepted >= conns);
	CHECK(writes > 0);
}

/* mode: NULL (idle without a task, with --stats), "--task", "--own-buf"
 * or "--stream". */
static int run(const char *mode)
{
	struct child srv;
	/* The lent-buffer run serves --stats too. */
	char *argv[] = {ECHO_SERVER_BIN, "--cores", "2", "--seconds", "100", "--drain-ms", "20000",
			mode ? (char *)mode : "--stats", "127.0.0.1:0", "127.0.0.1:0", NULL};
	if (mode)
		argv[9] = NULL; /* MODE ADDR: no stats address */
	CHECK_EQ(ex_start(&srv, argv, "listening on"), 0);
	port = ex_port(&srv);
	const char *sl = strstr(srv.text, "stats on 127.0.0.1:");
	CHECK((mode != NULL) == (sl == NULL));
	int stats_port = sl ? atoi(sl + strlen("stats on 127.0.0.1:")) : 0;
	const char *want = getenv("COREIO_BACKEND");
	if (want) {
		char b[32];
		snprintf(b, sizeof b, "backend %s",
			 strcmp(want, "uring") == 0 ? "io_uring" : want);
		CHECK(strstr(srv.text, b));
	}

	pthread_t t[CONNS + 1];
	for (int i = 0; i < CONNS; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, pingpong, (void *)(uintptr_t)(i + 1)), 0);
	CHECK_EQ(pthread_create(&t[CONNS], NULL, stream_both_ways, NULL), 0);
	for (int i = 0; i < RESETS; i++)
		rude_peer();
	for (int i = 0; i <= CONNS; i++)
		CHECK_EQ(pthread_join(t[i], NULL), 0);
	/* Still serving after the resets. */
	pingpong((void *)(uintptr_t)1000);
	if (stats_port)
		check_stats(stats_port, CONNS + 2);

	/* Idle connections (waiting for their next message) close as soon
	 * as the drain starts, not after --drain-ms. */
	int idle[4];
	for (int i = 0; i < 4; i++) {
		/* Echoed once: accepted (a connection still in the listener's
		 * backlog would be reset when the drain closes it), then idle. */
		uint8_t one = (uint8_t)i, back;
		idle[i] = dial();
		send_all(idle[i], &one, 1);
		recv_exact(idle[i], &back, 1);
		CHECK_EQ(back, one);
	}
	int64_t t0 = ex_now_ms();
	CHECK_EQ(ex_stop(&srv, SIGTERM, 20000), 0);
	CHECK(ex_now_ms() - t0 < 10000);
	for (int i = 0; i < 4; i++) {
		expect_eof(idle[i]);
		close(idle[i]);
	}
	char line[64];
	snprintf(line, sizeof line, ": %d connections,", CONNS + 1 + RESETS + 1 + 4);
	if (!strstr(srv.text, line) || !strstr(srv.text, " 0 accept errors")) {
		fprintf(stderr, "unexpected summary:\n%s\n", srv.text);
		CHECK(!"summary");
	}
	fprintf(stderr, "ok (%s): %d connections byte-exact, %d resets survived\n",
		mode ? mode : "idle without a task", CONNS + 2, RESETS);
	return 0;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	/* The backend check: a backend this machine lacks skips (77), as
	 * every test does; the server is then not started. */
	int rc = test_backend_missing();
	if (rc)
		return rc;
	TEST_CASE(idle, run(NULL));
	TEST_CASE(task, run("--task"));
	TEST_CASE(own_buf, run("--own-buf"));
	TEST_CASE(stream, run("--stream"));
	return test_cases_end();
}
