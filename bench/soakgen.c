/* soakgen.c - the soak test's client (scripts/soak.sh): keeps N
 * connections busy against one or more echo endpoints (an echo server, a
 * proxy in front of one) for a while, checks every byte that comes back,
 * closes and reopens connections all the time, and lets a few misbehave.
 * Plain C with its own epoll loop, independent of coreio, as loadgen.
 *
 *   soakgen --target HOST:PORT [--target HOST:PORT...] [--conns N]
 *           [--seconds S] [--think-ms MS] [--bad-pct P] [--stall-ms MS]
 *
 * The connections are shared evenly among the targets, each slot keeping
 * its target.  Each connection lives for a random number of
 * messages (1 to 400) of random sizes (mostly small, up to 64 KiB), each
 * sent after a random pause of up to --think-ms (default 20) and echoed
 * in full before the next; then it closes and a new one opens in its
 * place.  Every byte is a function of the connection's seed and its
 * offset, so a lost, repeated, reordered or foreign byte is caught.
 * --bad-pct (default 3) percent of connections misbehave instead, one of:
 *   reset  send part of a message, then close with SO_LINGER 0 (an RST);
 *   stall  send 1 MiB without reading for --stall-ms (default 3000), so
 *          the server's sends block, then reset;
 *   half   send half a message and close normally, its echo unread.
 * A well-behaved connection that the server closes or resets, or whose
 * echo does not move for 10 s, fails the run.
 *
 * Prints a progress line every 10 s and one summary line at the end:
 * "soakgen: ... mismatches=0 failures=0"; exit status 0, 1 on any
 * failure, 2 on bad arguments. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 8
#define STALL_BYTES (1 << 20)
#define STUCK_NS (10LL * 1000000000)

enum kind { GOOD, RESET, STALL, HALF };
static const char *kind_name[] = {"good", "reset", "stall", "half"};

struct conn {
	int fd;
	int target;
	enum kind kind;
	uint64_t seed;
	uint64_t sent, recvd;  /* stream offsets */
	uint64_t msg_end;      /* the current message ends at this offset */
	int msgs_left;
	int64_t wake_at;       /* next message (or the misbehaviour's end) */
	int64_t progress_at;   /* last byte moved */
	bool connecting;
};

static struct sockaddr_in targets[MAX_TARGETS];
static int ntargets;
static int nconns = 1000, think_ms = 20, bad_pct = 3, stall_ms = 3000;
static double seconds = 60;
static int ep;
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t opened, closed_clean, bad_done[4], bytes_verified, msgs_done;
static uint64_t failures, mismatches;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t n)
{
	rng_state = mix64(rng_state + 0x9e3779b97f4a7c15ULL);
	return n ? rng_state % n : rng_state;
}

/* The byte at offset off of the stream with this seed. */
static inline uint8_t byte_at(uint64_t seed, uint64_t off)
{
	return (uint8_t)(mix64(seed ^ (off >> 3)) >> ((off & 7) * 8));
}

static void fill(uint64_t seed, uint64_t off, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = byte_at(seed, off + i);
}

static void fail(struct conn *c, const char *what, int err)
{
	fprintf(stderr, "soakgen: FAILED: connection to target %d (%s, %llu sent, %llu echoed): %s%s%s\n",
		c->target, kind_name[c->kind], (unsigned long long)c->sent,
		(unsigned long long)c->recvd, what, err ? ": " : "", err ? strerror(err) : "");
	failures++;
}

static size_t msg_size(void)
{
	uint64_t r = rnd(100);
	return r < 70 ? 1 + rnd(512) : r < 95 ? 1 + rnd(8192) : 1 + rnd(65536);
}

static void conn_open(struct conn *c, int64_t now)
{
	/* A slot keeps its target, so each target keeps its share of the
	 * connections (round robin over the closes would let it drift). */
	int target = c->target;
	memset(c, 0, sizeof *c);
	c->target = target;
	c->seed = rnd(0);
	c->kind = (int)rnd(100) < bad_pct ? (enum kind)(1 + rnd(3)) : GOOD;
	c->msgs_left = 1 + (int)rnd(400);
	c->wake_at = now + (int64_t)rnd((uint64_t)think_ms + 1) * 1000000;
	c->progress_at = now;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fail(c, "socket", errno);
		return;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c->fd, (struct sockaddr *)&targets[c->target], sizeof targets[0]) < 0 &&
	    errno != EINPROGRESS) {
		fail(c, "connect", errno);
		return;
	}
	c->connecting = true;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	opened++;
}

/* Ends a connection, with an RST when rst, and opens the next. */
static void conn_close(struct conn *c, bool rst, int64_t now)
{
	if (rst) {
		struct linger l = {1, 0};
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	}
	close(c->fd);
	if (c->kind == GOOD)
		closed_clean++;
	else
		bad_done[c->kind]++;
	conn_open(c, now);
}

static void conn_send(struct conn *c, int64_t now)
{
	uint8_t buf[65536];
	while (c->sent < c->msg_end) {
		size_t n = c->msg_end - c->sent < sizeof buf ? (size_t)(c->msg_end - c->sent) : sizeof buf;
		fill(c->seed, c->sent, buf, n);
		ssize_t k = send(c->fd, buf, n, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno != EAGAIN)
				fail(c, "send", errno);
			return;
		}
		c->sent += (uint64_t)k;
		c->progress_at = now;
	}
}

/* Starts the next message, or the misbehaviour, when its pause is over. */
static void conn_next(struct conn *c, int64_t now)
{
	if (c->connecting || c->sent != c->recvd || now < c->wake_at)
		return;
	switch (c->kind) {
	case GOOD:
		if (c->msgs_left-- == 0) {
			conn_close(c, false, now);
			return;
		}
		c->msg_end = c->sent + msg_size();
		c->wake_at = INT64_MAX; /* until the echo is whole */
		conn_send(c, now);
		return;
	case RESET:
	case HALF: {
		/* A few good messages first, then the part one and the close. */
		if (c->msgs_left > 3)
			c->msgs_left = 3;
		if (c->msgs_left-- > 0) {
			c->msg_end = c->sent + msg_size();
			c->wake_at = INT64_MAX;
			conn_send(c, now);
			return;
		}
		c->msg_end = c->sent + 2 + msg_size();
		uint64_t part = (c->msg_end - c->sent) / 2;
		c->msg_end = c->sent + part;
		conn_send(c, now);
		conn_close(c, c->kind == RESET, now);
		return;
	}
	case STALL:
		if (c->msg_end == 0) {
			c->msg_end = STALL_BYTES;
			c->wake_at = now + (int64_t)stall_ms * 1000000;
			conn_send(c, now);
		}
		return;
	}
}

/* Says what a wrong byte at offset off is: one of this stream's own from
 * elsewhere (bytes lost or repeated), or foreign. */
static void mismatch(struct conn *c, const uint8_t *p, size_t n, uint64_t off)
{
	size_t k = n < 16 ? n : 16;
	long long found = -1;
	for (uint64_t o = 0; o + k <= c->sent && found < 0; o++) {
		size_t j = 0;
		while (j < k && p[j] == byte_at(c->seed, o + j))
			j++;
		if (j == k)
			found = (long long)o;
	}
	fprintf(stderr, "soakgen: byte %llu of %llu sent differs, %zu bytes in this read; ",
		(unsigned long long)off, (unsigned long long)c->sent, n);
	if (found >= 0)
		fprintf(stderr, "they are this stream's bytes from offset %lld\n", found);
	else
		fprintf(stderr, "they are not this stream's (foreign)\n");
}

static void conn_recv(struct conn *c, int64_t now)
{
	uint8_t buf[65536];
	if (c->kind == STALL)
		return; /* it reads nothing */
	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof buf, 0);
		if (n < 0) {
			if (errno != EAGAIN)
				fail(c, "recv", errno), conn_close(c, true, now);
			return;
		}
		if (n == 0) {
			fail(c, "the server closed", 0);
			conn_close(c, true, now);
			return;
		}
		if (c->recvd + (uint64_t)n > c->sent) {
			fail(c, "more bytes came back than went", 0);
			mismatches++;
			conn_close(c, true, now);
			return;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != byte_at(c->seed, c->recvd + (uint64_t)i)) {
				mismatch(c, buf + i, (size_t)(n - i), c->recvd + (uint64_t)i);
				fail(c, "a byte came back wrong", 0);
				mismatches++;
				conn_close(c, true, now);
				return;
			}
		c->recvd += (uint64_t)n;
		bytes_verified += (uint64_t)n;
		c->progress_at = now;
		if (c->recvd == c->msg_end && c->recvd == c->sent) {
			msgs_done++;
			c->wake_at = now + (int64_t)rnd((uint64_t)think_ms + 1) * 1000000;
		}
	}
}

static void parse_target(const char *s)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || colon - s >= (int)sizeof host || ntargets == MAX_TARGETS) {
		fprintf(stderr, "soakgen: bad --target %s\n", s);
		exit(2);
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	struct sockaddr_in *a = &targets[ntargets++];
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
		fprintf(stderr, "soakgen: --target %s: a numeric IPv4 address, please\n", s);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			fprintf(stderr, "soakgen: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--target"))
			parse_target(v);
		else if (!strcmp(a, "--conns"))
			nconns = atoi(v);
		else if (!strcmp(a, "--seconds"))
			seconds = atof(v);
		else if (!strcmp(a, "--think-ms"))
			think_ms = atoi(v);
		else if (!strcmp(a, "--bad-pct"))
			bad_pct = atoi(v);
		else if (!strcmp(a, "--stall-ms"))
			stall_ms = atoi(v);
		else {
			fprintf(stderr, "usage: soakgen --target HOST:PORT... [--conns N] [--seconds S] "
					"[--think-ms MS] [--bad-pct P] [--stall-ms MS]\n");
			return 2;
		}
	}
	if (!ntargets || nconns < 1 || seconds <= 0 || think_ms < 0 || bad_pct < 0 || bad_pct > 100) {
		fprintf(stderr, "soakgen: needs --target, and sane values\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	rng_state ^= (uint64_t)getpid() << 32 ^ (uint64_t)now_ns();
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct conn *conns = calloc((size_t)nconns, sizeof *conns);
	int64_t start = now_ns(), stop = start + (int64_t)(seconds * 1e9), next_report = start + 10000000000LL;
	for (int i = 0; i < nconns; i++) {
		conns[i].target = i % ntargets;
		conn_open(&conns[i], start);
	}
	while (!failures) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, 1);
		int64_t now = now_ns();
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->connecting && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
				int err = 0;
				socklen_t len = sizeof err;
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
				if (err) {
					fail(c, "connect", err);
					continue;
				}
				c->connecting = false;
				c->progress_at = now;
			}
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				conn_recv(c, now);
			if (evs[i].events & EPOLLOUT)
				conn_send(c, now);
		}
		for (int i = 0; i < nconns; i++) {
			struct conn *c = &conns[i];
			if (c->kind == STALL && c->msg_end && now >= c->wake_at) {
				conn_close(c, true, now);
				continue;
			}
			conn_next(c, now);
			if (c->kind == GOOD && c->sent != c->recvd && now - c->progress_at > STUCK_NS)
				fail(c, "no echo for 10 s", 0);
		}
		if (now >= next_report || now >= stop) {
			fprintf(stderr, "soakgen: %.0f s: %llu connections opened, %llu messages, %llu MiB verified\n",
				(now - start) / 1e9, (unsigned long long)opened, (unsigned long long)msgs_done,
				(unsigned long long)(bytes_verified >> 20));
			next_report += 10000000000LL;
		}
		if (now >= stop)
			break;
	}
	printf("soakgen: %.0f s, %d connections over %d targets: opened=%llu closed_clean=%llu "
	       "reset=%llu stall=%llu half=%llu messages=%llu verified_mib=%llu mismatches=%llu failures=%llu\n",
	       seconds, nconns, ntargets, (unsigned long long)opened, (unsigned long long)closed_clean,
	       (unsigned long long)bad_done[RESET], (unsigned long long)bad_done[STALL],
	       (unsigned long long)bad_done[HALF], (unsigned long long)msgs_done,
	       (unsigned long long)(bytes_verified >> 20), (unsigned long long)mismatches,
	       (unsigned long long)failures);
	return failures || mismatches ? 1 : 0;
}
