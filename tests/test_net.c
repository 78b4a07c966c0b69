/* test_net.c - TCP: echo of 1 byte to 1 MiB over IPv4 and IPv6 with a
 * client that sends in random chunks, also with shrunk socket buffers so
 * that sends and receives are short; 1000 concurrent connections; half
 * close; peer addresses; listen errors and socket options.  Every byte is
 * checked against a pattern, and the fd count against the start. */
#include "net_util.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MS 1000000LL

/* --- helpers ---------------------------------------------------------- */

/* A listener on host port 0; its real address goes into addr. */
static int listen_on(const char *host_port0, char *addr, size_t cap)
{
	int lfd = cio_listen(host_port0, NULL);
	CHECK(lfd >= 0);
	local_addr(lfd, addr, cap);
	return lfd;
}

/* --- echo, 1 byte to 1 MiB ---------------------------------------------- */

struct echo_job {
	int lfd;
	int fd;             /* the client's socket (sender side) */
	int bufsz;          /* > 0: shrink SO_SNDBUF to this */
	const uint8_t *data;
	size_t len;
	size_t short_sends; /* sends that moved less than asked */
	size_t short_recvs;
	size_t server_bytes;
};

/* Server side: accept one connection, echo with cio_recv + cio_send_all
 * until the client shuts its side down, then close. */
static void *echo_server(void *arg)
{
	struct echo_job *j = arg;
	int64_t tok = cio_timeout_push(20000 * MS);
	int fd = cio_accept(j->lfd, NULL);
	CHECK(fd >= 0);
	if (j->bufsz)
		CHECK_EQ(cio_sock_buffers(fd, 0, j->bufsz), 0);
	static uint8_t buf[65536 + 3]; /* one server at a time */
	ssize_t n;
	for (;;) {
		size_t want = 1 + rnd() % sizeof buf;
		n = cio_recv(fd, buf, want, 0);
		if (n <= 0)
			break;
		if ((size_t)n < want)
			j->short_recvs++;
		j->server_bytes += (size_t)n;
		size_t sent = 0;
		CHECK_EQ(cio_send_all(fd, buf, (size_t)n, 0, &sent), n);
		CHECK_EQ(sent, n);
	}
	CHECK_EQ(n, 0);
	CHECK_EQ(cio_close(fd), 0);
	cio_deadline_pop(tok);
	return NULL;
}

/* Client's sending half: random chunk sizes, short sends counted. */
static void *echo_sender(void *arg)
{
	struct echo_job *j = arg;
	int64_t tok = cio_timeout_push(20000 * MS);
	size_t off = 0;
	while (off < j->len) {
		size_t chunk = 1 + rnd() % (j->len < 200000 ? j->len : 200000);
		if (chunk > j->len - off)
			chunk = j->len - off;
		ssize_t n = cio_send(j->fd, j->data + off, chunk, 0);
		CHECK(n > 0);
		CHECK((size_t)n <= chunk);
		if ((size_t)n < chunk)
			j->short_sends++;
		off += (size_t)n;
	}
	CHECK_EQ(cio_shutdown(j->fd, SHUT_WR), 0);
	cio_deadline_pop(tok);
	return NULL;
}

static void echo_once(const char *host_port0, size_t len, int bufsz)
{
	char addr[128];
	struct echo_job j = {.len = len, .bufsz = bufsz};
	uint32_t seed = rnd();
	uint8_t *data = malloc(len), *back = malloc(len);
	CHECK(data && back);
	for (size_t i = 0; i < len; i++)
		data[i] = pat(i, seed);
	j.data = data;
	j.lfd = listen_on(host_port0, addr, sizeof addr);
	cio_task_t srv = cio_spawn(echo_server, &j);
	j.fd = cio_connect(addr, 0);
	CHECK(j.fd >= 0);
	/* Only the send buffers shrink: a receive buffer smaller than one
	 * loopback segment (64 KiB MTU) makes the kernel drop segments and
	 * crawl on retransmit timers. */
	if (bufsz)
		CHECK_EQ(cio_sock_buffers(j.fd, 0, bufsz), 0);
	cio_task_t snd = cio_spawn(echo_sender, &j);

	/* Receive with random sizes until end of stream. */
	int64_t tok = cio_timeout_push(20000 * MS);
	size_t got = 0;
	for (;;) {
		size_t want = 1 + rnd() % 100000;
		if (want > len - got)
			want = len - got + 1; /* room for one byte too many */
		ssize_t n = cio_recv(j.fd, back + got, want, 0);
		CHECK(n >= 0);
		if (n == 0)
			break;
		CHECK((size_t)n <= len - got);
		if ((size_t)n < want)
			j.short_recvs++;
		got += (size_t)n;
	}
	cio_deadline_pop(tok);
	CHECK_EQ(got, len);
	for (size_t i = 0; i < len; i++) {
		if (back[i] != pat(i, seed)) {
			fprintf(stderr, "echo %zu bytes: byte %zu is %u, want %u\n",
				len, i, back[i], pat(i, seed));
			CHECK(0);
		}
	}
	join_rc(snd);
	join_rc(srv);
	CHECK_EQ(j.server_bytes, len);
	CHECK_EQ(cio_close(j.fd), 0);
	CHECK_EQ(cio_close(j.lfd), 0);
	if (bufsz && len >= 65537) {
		/* A 4 KiB send buffer cannot take 64 KiB at once: receives
		 * come short.  Sends may be short (epoll) or be completed by
		 * the kernel (io_uring): both are allowed. */
		fprintf(stderr, "  %zu bytes, %d-byte send buffers: %zu short sends, "
				"%zu short receives\n", len, bufsz, j.short_sends,
			j.short_recvs);
		CHECK(j.short_recvs > 0);
	}
	free(data);
	free(back);
}

static void test_echo_sizes(void)
{
	static const size_t sizes[] = {1, 100, 4096, 65536 + 1, 1 << 20};
	int fds = test_count_fds();
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		echo_once("127.0.0.1:0", sizes[i], 0);
		echo_once("127.0.0.1:0", sizes[i], 4096);
	}
	if (have_ipv6()) {
		echo_once("[::1]:0", 100, 0);
		echo_once("[::1]:0", 1 << 20, 4096);
	} else {
		fprintf(stderr, "  no IPv6 loopback here: IPv6 echo not run\n");
	}
	CHECK_EQ(test_count_fds(), fds);
}

/* --- 1000 concurrent connections ------------------------------------------ */

#define NCONN 1000
#define ROUNDS 4

static struct {
	char addr[64];
	int lfd;
	cio_wg served;    /* server connections still open */
	cio_wg connected; /* clients not yet connected: a barrier */
	int max_open;     /* most client connections open at once */
	int open;
	int rounds_ok;
} many;

static void *many_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[2048];
	ssize_t n;
	while ((n = cio_recv(fd, buf, sizeof buf, 0)) > 0)
		CHECK_EQ(cio_send_all(fd, buf, (size_t)n, 0, NULL), n);
	CHECK_EQ(n, 0);
	CHECK_EQ(cio_close(fd), 0);
	cio_wg_done(&many.served);
	return NULL;
}

static void *many_acceptor(void *arg)
{
	(void)arg;
	for (int i = 0; i < NCONN; i++) {
		int fd = cio_accept(many.lfd, NULL);
		CHECK(fd >= 0);
		cio_wg_add(&many.served, 1);
		cio_task_t t = cio_spawn_with(&(cio_spawn_opts){.detached = true,
							 .stack_size = 64 << 10},
					      many_conn, (void *)(intptr_t)fd);
		CHECK(t > 0);
	}
	return NULL;
}

static void *many_client(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint8_t out[1500], in[1500];
	int64_t tok = cio_timeout_push(30000 * MS);
	int fd = cio_connect(many.addr, 0);
	if (fd < 0)
		fprintf(stderr, "client %d: connect: %s\n", id, cio_strerror(fd));
	CHECK(fd >= 0);
	if (++many.open > many.max_open)
		many.max_open = many.open;
	/* Every client holds its connection until all are connected. */
	cio_wg_done(&many.connected);
	CHECK_EQ(cio_wg_wait(&many.connected), 0);
	for (int r = 0; r < ROUNDS; r++) {
		size_t len = 1 + (size_t)(id * 31 + r * 97) % sizeof out;
		uint32_t seed = (uint32_t)(id * ROUNDS + r);
		for (size_t i = 0; i < len; i++)
			out[i] = pat(i, seed);
		CHECK_EQ(cio_send_all(fd, out, len, 0, NULL), len);
		size_t got = 0;
		CHECK_EQ(cio_recv_exact(fd, in, len, 0, &got), len);
		CHECK(memcmp(in, out, len) == 0);
		many.rounds_ok++;
	}
	many.open--;
	CHECK_EQ(cio_close(fd), 0);
	cio_deadline_pop(tok);
	return NULL;
}

static void test_many_connections(void)
{
	struct rlimit rl;
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rlim_t need = 2 * NCONN + 256;
	if (rl.rlim_cur < need) {
		struct rlimit more = rl;
		more.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
		CHECK_EQ(setrlimit(RLIMIT_NOFILE, &more), 0);
		CHECK(more.rlim_cur >= need); /* the hard limit is too low */
	}
	int fds = test_count_fds();
	int64_t t0 = cio_now();
	memset(&many, 0, sizeof many);
	cio_wg_init(&many.served);
	cio_wg_init(&many.connected);
	cio_wg_add(&many.connected, NCONN);
	many.lfd = listen_on("127.0.0.1:0", many.addr, sizeof many.addr);
	cio_task_t acc = cio_spawn(many_acceptor, NULL);
	static cio_task_t t[NCONN];
	for (int i = 0; i < NCONN; i++) {
		t[i] = cio_spawn_with(&(cio_spawn_opts){.stack_size = 64 << 10},
				      many_client, (void *)(intptr_t)i);
		CHECK(t[i] > 0);
	}
	for (int i = 0; i < NCONN; i++)
		join_rc(t[i]);
	join_rc(acc);
	CHECK_EQ(cio_wg_wait(&many.served), 0);
	CHECK_EQ(cio_close(many.lfd), 0);
	CHECK_EQ(many.max_open, NCONN);
	CHECK_EQ(many.rounds_ok, NCONN * ROUNDS);
	CHECK_EQ(test_count_fds(), fds);
	fprintf(stderr, "  %d connections x %d round trips: %.0f ms\n", NCONN,
		ROUNDS, (double)(cio_now() - t0) / MS);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* --- half close -------------------------------------------------------------- */

static void *half_close_server(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	char buf[64];
	int fd = cio_accept(lfd, NULL);
	CHECK(fd >= 0);
	size_t got = 0;
	CHECK_EQ(cio_recv_exact(fd, buf, 5, 0, &got), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	CHECK_EQ(cio_recv(fd, buf, sizeof buf, 0), 0); /* the client's FIN */
	CHECK_EQ(cio_recv(fd, buf, sizeof buf, 0), 0); /* and it stays so */
	/* The other direction is still open. */
	CHECK_EQ(cio_send_all(fd, "goodbye", 7, 0, NULL), 7);
	CHECK_EQ(cio_close(fd), 0);
	return NULL;
}

static void test_half_close(void)
{
	char addr[64], buf[64];
	int lfd = listen_on("127.0.0.1:0", addr, sizeof addr);
	cio_task_t srv = cio_spawn(half_close_server, (void *)(intptr_t)lfd);
	int fd = cio_connect(addr, 0);
	CHECK(fd >= 0);
	CHECK_EQ(cio_send_all(fd, "hello", 5, 0, NULL), 5);
	CHECK_EQ(cio_shutdown(fd, SHUT_WR), 0);
	CHECK_EQ(cio_send(fd, "x", 1, 0), -EPIPE); /* our side is shut */
	size_t got = 0;
	CHECK_EQ(cio_recv_exact(fd, buf, 7, 0, &got), 7);
	CHECK(memcmp(buf, "goodbye", 7) == 0);
	CHECK_EQ(cio_recv(fd, buf, sizeof buf, 0), 0);
	/* cio_recv_exact() at end of stream: -EPIPE, and what came. */
	got = 99;
	CHECK_EQ(cio_recv_exact(fd, buf, 4, 0, &got), -EPIPE);
	CHECK_EQ(got, 0);
	join_rc(srv);
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_close(lfd), 0);
	/* Shutting down an unconnected socket. */
	int s = cio_socket(AF_INET, SOCK_STREAM, 0);
	CHECK(s >= 0);
	CHECK_EQ(cio_shutdown(s, SHUT_RDWR), -ENOTCONN);
	CHECK_EQ(cio_close(s), 0);
}

/* --- peer addresses, listen errors, options ------------------------------------ */

static void test_addresses_and_options(void)
{
	int fds = test_count_fds();
	char addr[64], mine[64], peer_txt[64];
	int lfd = listen_on("127.0.0.1:0", addr, sizeof addr);
	int c = cio_connect(addr, 0);
	CHECK(c >= 0);
	cio_addr peer;
	int s = cio_accept(lfd, &peer);
	CHECK(s >= 0);
	local_addr(c, mine, sizeof mine);
	CHECK(cio_addr_format(&peer, peer_txt, sizeof peer_txt) > 0);
	CHECK(strcmp(mine, peer_txt) == 0);
	CHECK_EQ(peer.len, sizeof(struct sockaddr_in));

	/* fds from coreio are non-blocking and close-on-exec. */
	CHECK(fcntl(c, F_GETFL) & O_NONBLOCK);
	CHECK(fcntl(s, F_GETFL) & O_NONBLOCK);
	CHECK(fcntl(c, F_GETFD) & FD_CLOEXEC);
	CHECK(fcntl(s, F_GETFD) & FD_CLOEXEC);
	CHECK(fcntl(lfd, F_GETFD) & FD_CLOEXEC);

	int v;
	socklen_t vl = sizeof v;
	CHECK_EQ(cio_tcp_nodelay(c, true), 0);
	CHECK_EQ(getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
	CHECK(v != 0);
	CHECK_EQ(cio_tcp_nodelay(c, false), 0);
	CHECK_EQ(getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(cio_tcp_keepalive(c, 30, 5, 3), 0);
	CHECK_EQ(getsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &v, &vl), 0);
	CHECK(v != 0);
	CHECK_EQ(getsockopt(c, IPPROTO_TCP, TCP_KEEPIDLE, &v, &vl), 0);
	CHECK_EQ(v, 30);
	CHECK_EQ(getsockopt(c, IPPROTO_TCP, TCP_KEEPINTVL, &v, &vl), 0);
	CHECK_EQ(v, 5);
	CHECK_EQ(getsockopt(c, IPPROTO_TCP, TCP_KEEPCNT, &v, &vl), 0);
	CHECK_EQ(v, 3);
	CHECK_EQ(cio_tcp_keepalive(c, 0, 0, 0), 0);
	CHECK_EQ(getsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &v, &vl), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(cio_sock_buffers(c, 8192, 16384), 0);
	CHECK_EQ(getsockopt(c, SOL_SOCKET, SO_RCVBUF, &v, &vl), 0);
	CHECK(v >= 8192);
	CHECK_EQ(getsockopt(c, SOL_SOCKET, SO_SNDBUF, &v, &vl), 0);
	CHECK(v >= 16384);
	CHECK_EQ(cio_tcp_nodelay(-1, true), -EBADF);

	/* A second listener on the same port: in use, unless both ask
	 * for SO_REUSEPORT. */
	CHECK_EQ(cio_listen(addr, NULL), -EADDRINUSE);
	cio_listen_opts rp = {.reuseport = true};
	int r1 = cio_listen("127.0.0.1:0", &rp);
	CHECK(r1 >= 0);
	char raddr[64];
	local_addr(r1, raddr, sizeof raddr);
	int r2 = cio_listen(raddr, &rp);
	CHECK(r2 >= 0);
	CHECK_EQ(cio_close(r2), 0);
	CHECK_EQ(cio_close(r1), 0);
	/* Bad addresses leave nothing open. */
	CHECK_EQ(cio_listen("127.0.0.1", NULL), -EINVAL);
	CHECK_EQ(cio_listen("nonsense:80", NULL), -EINVAL);
	CHECK_EQ(cio_connect("127.0.0.1:99999", 0), -EINVAL);
	CHECK_EQ(cio_connect("", 0), -EINVAL);
	/* Accept on a socket that does not listen. */
	CHECK_EQ(cio_accept(c, NULL), -EINVAL);
	CHECK_EQ(cio_accept(-1, NULL), -EBADF);

	CHECK_EQ(cio_close(c), 0);
	CHECK_EQ(cio_close(s), 0);
	CHECK_EQ(cio_close(lfd), 0);
	CHECK_EQ(cio_close(lfd), -EBADF);
	CHECK_EQ(cio_close(-1), -EBADF);
	CHECK_EQ(test_count_fds(), fds);
}

static void *test_main(void *arg)
{
	(void)arg;
	const char *why = cio_backend_reason();
	fprintf(stderr, "backend %s%s%s, seed %#x\n", cio_backend_name(),
		why ? ": " : "", why ? why : "", rng);
	TEST_CASE(addresses_and_options, test_addresses_and_options());
	TEST_CASE(half_close, test_half_close());
	TEST_CASE(echo_sizes, test_echo_sizes());
	TEST_CASE(many_connections, test_many_connections());
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	net_seed_from_env();
	int rc = test_run(test_main, NULL);
	return rc ? rc : test_cases_end();
}
