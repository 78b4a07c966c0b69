/* loadgen.c - a closed-loop load generator for echo servers, in plain C
 * with its own epoll loop: it does not use coreio, so that the client is
 * an independent peer whatever server it measures.
 *
 *   loadgen [--host A] [--port P] [--conns N] [--size S] [--depth D]
 *           [--warmup SECS] [--seconds SECS] [--server-pid PID] [--cpu C]
 *           [--impl NAME] [--backend NAME] [--perf-events LIST]
 *           [--stall-ms MS] [--server-cpu C] [--client epoll|uring]
 *
 * N connections each keep D messages of S bytes in flight: every echo
 * fully received lets the next message go.  After --warmup seconds the
 * measured window opens; it closes --seconds later and the run stops at
 * once (hard stop: messages still in flight are dropped with the
 * connections).  Every byte that comes back is checked against what was
 * sent: message k of connection c carries a pattern derived from (c, k),
 * so a lost, duplicated, reordered or corrupt byte, or one never sent,
 * is caught at its offset.
 *
 * The client drives its sockets with epoll (--client epoll, the default:
 * non-blocking send and recv, edge-triggered) or with io_uring (--client
 * uring, where built with liburing: a receive always posted on every
 * connection and at most one send in flight on each, completions reaped
 * in batches).  Both share the pattern, the verification, the window and
 * the accounting below; only the system calls differ.
 *
 * Over exactly the measured window it reports requests per second,
 * latency percentiles from a log-linear histogram (32 linear buckets per
 * power of two: within 3%), the server's CPU time per request (all its
 * threads, from its process CPU clock; beside it /proc/PID/stat's
 * utime+stime, and the sum of utime+stime over every thread in
 * /proc/PID/task/), and this client's own (all its threads, io_uring's
 * workers included).  With --perf-events it also runs
 * `perf stat` on the server over the same window (enabled and disabled
 * through perf's control pipe) and reports each event per request.
 * Given the CPUs the server (--server-cpu) and this client (--cpu) are
 * pinned to, it also reports how much of each CPU other work and the
 * hypervisor took over the window (from /proc/stat): on a shared
 * machine, what tells a clean measurement from a disturbed one.
 *
 * Output: one key=value line starting "bench=net" (see bench/bench.h),
 * then one line for people.  Exit status 0; 1 on any mismatch, a server
 * that closes, resets or stalls (no echo for --stall-ms, default 2000),
 * or cannot be reached; 2 on bad arguments. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>
#ifdef LOADGEN_HAVE_LIBURING
#include <liburing.h>
#endif

#ifndef COREIO_BENCH_COMMIT
#define COREIO_BENCH_COMMIT "unknown"
#endif

#define MAX_EVENTS 512
#define IO_BUF (64 << 10)
#define MAX_PERF_EVENTS 16

/* ---- options ---------------------------------------------------------- */

static struct {
	const char *host;
	int port;
	int conns;
	size_t size;
	int depth;
	double warmup, seconds;
	pid_t server_pid;
	int cpu, server_cpu;
	const char *impl, *backend;
	const char *perf_events;
	int stall_ms;
	bool uring; /* --client uring */
} opt = {
	.host = "127.0.0.1", .port = 7000, .conns = 64, .size = 100, .depth = 1,
	.warmup = 1, .seconds = 3, .cpu = -1, .server_cpu = -1, .impl = "unknown", .backend = "unknown",
	.stall_ms = 2000,
};

static _Noreturn void fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("loadgen: FAILED: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the byte pattern ------------------------------------------------- */

/* splitmix64's finaliser: neighbouring inputs give unrelated outputs, so
 * a byte shifted by one place, or one message's bytes in another's
 * place, never match by accident. */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Bytes [off, off + len) of message `seq` of connection `id`. */
static void pattern(uint32_t id, uint64_t seq, size_t off, uint8_t *out, size_t len)
{
	uint64_t seed = mix64(((uint64_t)id << 40) ^ seq);
	size_t i = 0;
	while (i < len) {
		size_t pos = off + i;
		uint64_t w = mix64(seed + (uint64_t)(pos >> 3) * 0x9e3779b97f4a7c15ull);
		for (unsigned b = (unsigned)(pos & 7); b < 8 && i < len; b++, i++)
			out[i] = (uint8_t)(w >> (8 * b));
	}
}

/* ---- latency histogram ------------------------------------------------ */

/* Log-linear: values below 64 ns have a bucket each; above, each power of
 * two is split into 32 equal buckets.  Index from the top bits alone, so
 * recording costs a count-leading-zeros and an increment. */
#define SUB_BITS 5
#define SUB (1u << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS) * SUB)

static uint64_t hist[NBUCKETS];
static uint64_t hist_n;

static unsigned bucket_of(uint64_t v)
{
	if (v < 2 * SUB)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= SUB_BITS + 1 */
	unsigned shift = e - SUB_BITS;
	return (shift + 1) * SUB + (unsigned)(v >> shift) - SUB;
}

/* The middle of bucket b, in ns. */
static double bucket_mid(unsigned b)
{
	if (b < 2 * SUB)
		return b;
	unsigned shift = b / SUB - 1;
	uint64_t lo = (uint64_t)(b % SUB + SUB) << shift;
	return (double)lo + (double)((uint64_t)1 << shift) / 2;
}

static void hist_add(int64_t ns)
{
	hist[bucket_of(ns > 0 ? (uint64_t)ns : 0)]++;
	hist_n++;
}

/* The q-quantile (0 < q <= 1) in microseconds. */
static double hist_quantile(double q)
{
	if (!hist_n)
		return NAN;
	uint64_t want = (uint64_t)ceil(q * (double)hist_n), seen = 0;
	if (want == 0)
		want = 1;
	for (unsigned b = 0; b < NBUCKETS; b++) {
		seen += hist[b];
		if (seen >= want)
			return bucket_mid(b) / 1e3;
	}
	return NAN;
}

static double hist_max(void)
{
	for (unsigned b = NBUCKETS; b-- > 0;)
		if (hist[b])
			return bucket_mid(b) / 1e3;
	return NAN;
}

/* ---- connections -------------------------------------------------------- */

struct conn {
	int fd;
	uint32_t id;
	uint64_t tx_seq; /* next message to send, and how much of it went */
	size_t tx_off;
	uint64_t rx_seq; /* message being received, and how much came */
	size_t rx_off;
	bool tx_blocked; /* the socket is full: wait for EPOLLOUT */
	int64_t *sent_at; /* [depth]: when message seq % depth went out */
	/* --client uring: the send in flight is tx_buf[tx_done, tx_len);
	 * received bytes land in rx_buf. */
	bool tx_inflight;
	size_t tx_len, tx_done;
	uint8_t *tx_buf, *rx_buf;
};

static struct conn *conns;
static uint64_t responses, bytes_verified;
static bool measuring;
static int64_t last_progress;

static void conn_connect(struct conn *c, const struct sockaddr *sa, socklen_t salen,
			 int64_t give_up)
{
	for (;;) {
		int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			fatal("socket: %s", strerror(errno));
		if (connect(fd, sa, salen) == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
			c->fd = fd;
			return;
		}
		int err = errno;
		close(fd);
		/* The server may still be starting: retry a refused connect
		 * for a while. */
		if (err != ECONNREFUSED || now_ns() > give_up)
			fatal("connect to %s:%d: %s", opt.host, opt.port, strerror(err));
		usleep(20000);
	}
}

/* Fills buf (up to cap bytes) with what the window allows next: up to
 * `depth` messages beyond the last one fully echoed, from the send
 * position on, which it leaves as it is.  Returns the length. */
static size_t tx_fill(struct conn *c, uint8_t *buf, size_t cap, int64_t now)
{
	uint64_t limit = c->rx_seq + (uint64_t)opt.depth;
	size_t len = 0, off = c->tx_off;
	uint64_t seq = c->tx_seq;
	while (len < cap && seq < limit) {
		size_t take = opt.size - off;
		if (take > cap - len)
			take = cap - len;
		/* Stamped each time its first byte is offered; the send
		 * that takes that byte leaves the final stamp. */
		if (off == 0)
			c->sent_at[seq % (uint64_t)opt.depth] = now;
		pattern(c->id, seq, off, buf + len, take);
		len += take;
		off += take;
		if (off == opt.size)
			seq++, off = 0;
	}
	return len;
}

/* Moves the send position n bytes on. */
static void tx_advance(struct conn *c, size_t n)
{
	size_t total = c->tx_off + n;
	c->tx_seq += total / opt.size;
	c->tx_off = total % opt.size;
}

/* Sends what the window allows. */
static void conn_flush(struct conn *c, int64_t now)
{
	static uint8_t buf[IO_BUF];
	uint64_t limit = c->rx_seq + (uint64_t)opt.depth;
	while (!c->tx_blocked && c->tx_seq < limit) {
		size_t len = tx_fill(c, buf, sizeof buf, now);
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				c->tx_blocked = true;
				break;
			}
			fatal("connection %u: send: %s (server gone?)", c->id, strerror(errno));
		}
		tx_advance(c, (size_t)n);
		if ((size_t)n < len)
			c->tx_blocked = true;
	}
}

/* Checks n received bytes against the pattern, message by message. */
static void conn_absorb(struct conn *c, const uint8_t *p, size_t n, int64_t now)
{
	uint8_t want[4096];
	/* Never more back than was sent. */
	uint64_t sent = c->tx_seq * opt.size + c->tx_off;
	uint64_t got = c->rx_seq * opt.size + c->rx_off;
	if (got + n > sent)
		fatal("connection %u: %zu bytes came back but only %llu of %llu sent "
		      "are outstanding", c->id, n, (unsigned long long)(sent - got),
		      (unsigned long long)sent);
	while (n) {
		size_t take = opt.size - c->rx_off;
		if (take > n)
			take = n;
		if (take > sizeof want)
			take = sizeof want;
		pattern(c->id, c->rx_seq, c->rx_off, want, take);
		if (memcmp(want, p, take) != 0) {
			size_t i = 0;
			while (want[i] == p[i])
				i++;
			fatal("connection %u, message %llu, byte %zu: got 0x%02x, "
			      "expected 0x%02x", c->id, (unsigned long long)c->rx_seq,
			      c->rx_off + i, p[i], want[i]);
		}
		p += take;
		n -= take;
		c->rx_off += take;
		bytes_verified += take;
		if (c->rx_off == opt.size) {
			if (measuring) {
				hist_add(now - c->sent_at[c->rx_seq % (uint64_t)opt.depth]);
				responses++;
			}
			c->rx_seq++;
			c->rx_off = 0;
			last_progress = now;
		}
	}
}

/* Reads until the socket is drained, then refills the window. */
static void conn_readable(struct conn *c)
{
	static uint8_t buf[IO_BUF];
	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n == 0)
			fatal("connection %u: the server closed it (server died?)", c->id);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			fatal("connection %u: recv: %s (server died?)", c->id, strerror(errno));
		}
		conn_absorb(c, buf, (size_t)n, now_ns());
		/* A short read emptied the socket; the next byte raises a new
		 * edge, so the read that would say EAGAIN is skipped. */
		if ((size_t)n < sizeof buf)
			break;
	}
}

/* ---- the io_uring client (--client uring) ------------------------------- */

#ifdef LOADGEN_HAVE_LIBURING
static struct io_uring ring;
static size_t tx_cap, rx_cap; /* per connection */

#define OP_RECV 0u
#define OP_SEND 1u

static struct io_uring_sqe *u_sqe(void)
{
	struct io_uring_sqe *sqe;
	while (!(sqe = io_uring_get_sqe(&ring))) {
		int rc = io_uring_submit(&ring); /* the queue is full: make room */
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			fatal("io_uring_submit: %s", strerror(-rc));
	}
	return sqe;
}

static void u_recv(struct conn *c)
{
	struct io_uring_sqe *sqe = u_sqe();
	io_uring_prep_recv(sqe, c->fd, c->rx_buf, rx_cap, 0);
	io_uring_sqe_set_data64(sqe, (uint64_t)c->id << 1 | OP_RECV);
}

static void u_send(struct conn *c)
{
	struct io_uring_sqe *sqe = u_sqe();
	io_uring_prep_send(sqe, c->fd, c->tx_buf + c->tx_done, c->tx_len - c->tx_done,
			   MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, (uint64_t)c->id << 1 | OP_SEND);
}

/* Posts a send of what the window allows, unless one is in flight.  The
 * send position moves on as the bytes are handed to the ring: the one
 * send in flight on a connection is finished (its rest sent again after
 * a short send) before the next, so the stream stays in order. */
static void u_flush(struct conn *c, int64_t now)
{
	if (c->tx_inflight)
		return;
	size_t len = tx_fill(c, c->tx_buf, tx_cap, now);
	if (!len)
		return;
	tx_advance(c, len);
	c->tx_len = len;
	c->tx_done = 0;
	c->tx_inflight = true;
	u_send(c);
}

static void u_setup(void)
{
	tx_cap = opt.size * (size_t)opt.depth;
	if (tx_cap > IO_BUF)
		tx_cap = IO_BUF;
	rx_cap = tx_cap < 4096 ? 4096 : tx_cap;
	unsigned sq = 64;
	while (sq < 2u * (unsigned)opt.conns + 16 && sq < 4096)
		sq <<= 1;
	struct io_uring_params p;
	int rc = -EINVAL;
#if defined(IORING_SETUP_SINGLE_ISSUER) && defined(IORING_SETUP_DEFER_TASKRUN)
	/* Completions are run when this thread waits for them, not by
	 * interrupting it: the setup a one-thread client wants. */
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = 4 * sq;
	rc = io_uring_queue_init_params(sq, &ring, &p);
#endif
	if (rc < 0) {
		memset(&p, 0, sizeof p);
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = 4 * sq;
		rc = io_uring_queue_init_params(sq, &ring, &p);
	}
	if (rc < 0)
		fatal("io_uring_queue_init: %s (try --client epoll)", strerror(-rc));
}

static void u_start(int64_t now)
{
	for (int i = 0; i < opt.conns; i++) {
		struct conn *c = &conns[i];
		c->tx_buf = malloc(tx_cap);
		c->rx_buf = malloc(rx_cap);
		if (!c->tx_buf || !c->rx_buf)
			fatal("out of memory");
		u_recv(c);
		u_flush(c, now);
	}
}

/* Waits up to timeout_ns for completions and handles them. */
static void u_poll(int64_t timeout_ns)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
				       .tv_nsec = timeout_ns % 1000000000};
	int rc = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
	if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
		fatal("io_uring_submit_and_wait_timeout: %s", strerror(-rc));
	unsigned head, seen = 0;
	int64_t now = now_ns();
	io_uring_for_each_cqe(&ring, head, cqe) {
		seen++;
		struct conn *c = &conns[cqe->user_data >> 1];
		int res = cqe->res;
		if ((cqe->user_data & 1) == OP_SEND) {
			if (res < 0 && res != -EINTR && res != -EAGAIN)
				fatal("connection %u: send: %s (server gone?)", c->id, strerror(-res));
			if (res > 0)
				c->tx_done += (size_t)res;
			if (c->tx_done < c->tx_len) {
				u_send(c);
			} else {
				c->tx_inflight = false;
				u_flush(c, now);
			}
			continue;
		}
		if (res == 0)
			fatal("connection %u: the server closed it (server died?)", c->id);
		if (res < 0 && res != -EINTR && res != -EAGAIN)
			fatal("connection %u: recv: %s (server died?)", c->id, strerror(-res));
		if (res > 0)
			conn_absorb(c, c->rx_buf, (size_t)res, now);
		u_recv(c);
		u_flush(c, now);
	}
	io_uring_cq_advance(&ring, seen);
}
#endif

/* ---- CPU time of the server and of this process --------------------------- */

/* What one CPU did, from /proc/stat, in clock ticks. */
struct cpu_ticks {
	int64_t busy;  /* user, nice, system, irq, softirq */
	int64_t steal; /* taken by the hypervisor */
};

struct cpu_snap {
	int64_t server_ns; /* server's process CPU clock, or -1 */
	int64_t server_ticks; /* utime + stime from /proc/PID/stat, or -1 */
	int64_t server_task_ticks; /* summed over /proc/PID/task/\*\/stat, or -1 */
	int server_threads;
	int64_t self_ns;
	int64_t t;
	struct cpu_ticks srv_cpu, cli_cpu; /* the two pinned CPUs */
};

static clockid_t server_clock;
static bool have_server_clock;

/* utime + stime from a /proc stat file, in clock ticks; -1 if unreadable. */
static int64_t stat_file_ticks(const char *path)
{
	char line[1024];
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(line, 1, sizeof line - 1, f);
	fclose(f);
	line[n] = 0;
	/* The name (field 2) may hold spaces and parentheses: fields are
	 * counted from the last ')'.  utime and stime are fields 14, 15. */
	char *p = strrchr(line, ')');
	unsigned long long ut, st;
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return (int64_t)(ut + st);
}

static int64_t stat_ticks(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	return stat_file_ticks(path);
}

/* utime + stime of every thread of pid, each from its own
 * /proc/PID/task/TID/stat; the number of threads in *threads. */
static int64_t task_ticks(pid_t pid, int *threads)
{
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int64_t sum = 0;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%.16s/stat", (int)pid, e->d_name);
		int64_t t = stat_file_ticks(path);
		if (t >= 0) /* a thread that ended meanwhile is skipped */
			sum += t, n++;
	}
	closedir(d);
	*threads = n;
	return sum;
}

static int64_t clock_ns(clockid_t clk)
{
	struct timespec ts;
	if (clock_gettime(clk, &ts) < 0)
		return -1;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Line "cpuN" of /proc/stat; zeros when absent. */
static struct cpu_ticks cpu_ticks(int cpu)
{
	struct cpu_ticks t = {0, 0};
	char line[512], want[16];
	if (cpu < 0)
		return t;
	snprintf(want, sizeof want, "cpu%d ", cpu);
	FILE *f = fopen("/proc/stat", "re");
	while (f && fgets(line, sizeof line, f)) {
		long long us, ni, sy, id, io, irq, sirq, st;
		if (strncmp(line, want, strlen(want)) != 0)
			continue;
		if (sscanf(line + strlen(want), "%lld %lld %lld %lld %lld %lld %lld %lld",
			   &us, &ni, &sy, &id, &io, &irq, &sirq, &st) == 8) {
			t.busy = us + ni + sy + irq + sirq;
			t.steal = st;
		}
		break;
	}
	if (f)
		fclose(f);
	return t;
}

static struct cpu_snap cpu_snap(void)
{
	struct cpu_snap s = {-1, -1, -1, 0, clock_ns(CLOCK_PROCESS_CPUTIME_ID), now_ns(),
			     cpu_ticks(opt.server_cpu), cpu_ticks(opt.cpu)};
	if (opt.server_pid > 0) {
		if (have_server_clock)
			s.server_ns = clock_ns(server_clock);
		s.server_ticks = stat_ticks(opt.server_pid);
		s.server_task_ticks = task_ticks(opt.server_pid, &s.server_threads);
	}
	return s;
}

/* The share of the window that CPU spent on work other than `own_ns`
 * (another process, interrupts for others), and the share the
 * hypervisor stole: how disturbed a measurement was. */
static void foreign(struct cpu_ticks a, struct cpu_ticks b, double own_ns,
		    double win_s, double *other, double *steal)
{
	double tck = (double)sysconf(_SC_CLK_TCK);
	double busy = (double)(b.busy - a.busy) / tck;
	*other = (busy - own_ns / 1e9) / win_s;
	if (*other < 0)
		*other = 0; /* tick sampling can undercount a little */
	*steal = (double)(b.steal - a.steal) / tck / win_s;
}

/* ---- perf stat on the server, over the measured window ------------------- */

static struct {
	pid_t pid;
	int ctl, ack;      /* our ends of perf's control and ack pipes */
	char out[64];      /* its CSV output file */
	bool ok;
	int n;
	char name[MAX_PERF_EVENTS][64];
	double count[MAX_PERF_EVENTS];
} perf = {.pid = -1};

/* Starts `perf stat` on the server with its events disabled, so that
 * enabling them later costs one pipe round trip, not perf's start-up. */
static void perf_start(void)
{
	int ctl[2], ack[2];
	snprintf(perf.out, sizeof perf.out, "/tmp/loadgen-perf-XXXXXX");
	int ofd = mkstemp(perf.out);
	if (ofd < 0 || pipe(ctl) < 0 || pipe(ack) < 0) {
		fprintf(stderr, "loadgen: perf: %s; no perf figures\n", strerror(errno));
		return;
	}
	close(ofd);
	char pidarg[16], ctlarg[64];
	snprintf(pidarg, sizeof pidarg, "%d", (int)opt.server_pid);
	snprintf(ctlarg, sizeof ctlarg, "fd:%d,%d", ctl[0], ack[1]);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "loadgen: fork: %s; no perf figures\n", strerror(errno));
		return;
	}
	if (pid == 0) {
		close(ctl[1]);
		close(ack[0]);
		/* perf's chatter ("Events enabled") would interleave with
		 * our result line; its failures show as a missing ack. */
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execlp("perf", "perf", "stat", "-x", ",", "--no-big-num", "-e",
		       opt.perf_events, "-p", pidarg, "-D", "-1", "--control", ctlarg,
		       "-o", perf.out, (char *)NULL);
		_exit(127);
	}
	close(ctl[0]);
	close(ack[1]);
	perf.pid = pid;
	perf.ctl = ctl[1];
	perf.ack = ack[0];
	perf.ok = true;
}

/* Sends a command ("enable", "disable") and waits for perf's ack. */
static void perf_command(const char *cmd)
{
	if (!perf.ok)
		return;
	char line[16];
	struct pollfd p = {.fd = perf.ack, .events = POLLIN};
	if (write(perf.ctl, cmd, strlen(cmd)) < 0 || write(perf.ctl, "\n", 1) < 0 ||
	    poll(&p, 1, 5000) <= 0 || read(perf.ack, line, sizeof line) <= 0) {
		fprintf(stderr, "loadgen: perf did not acknowledge '%s' (not installed, or cannot attach); no perf figures\n", cmd);
		perf.ok = false;
	}
}

/* "syscalls:sys_enter_io_uring_enter" -> "io_uring_enter";
 * "raw_syscalls:sys_enter" -> "syscalls"; other characters that cannot
 * be in a key become '_'. */
static void perf_key(const char *event, char *key, size_t cap)
{
	const char *e = strrchr(event, ':');
	e = e ? e + 1 : event;
	if (strcmp(event, "raw_syscalls:sys_enter") == 0)
		e = "syscalls";
	else if (strncmp(e, "sys_enter_", 10) == 0)
		e += 10;
	size_t i = 0;
	for (; e[i] && i + 1 < cap; i++)
		key[i] = (char)((e[i] >= 'a' && e[i] <= 'z') || (e[i] >= '0' && e[i] <= '9')
					? e[i] : '_');
	key[i] = 0;
}

static void perf_finish(void)
{
	if (perf.pid < 0)
		return;
	kill(perf.pid, SIGINT);
	int st;
	waitpid(perf.pid, &st, 0);
	FILE *f = fopen(perf.out, "re");
	char line[512];
	while (perf.ok && f && fgets(line, sizeof line, f) && perf.n < MAX_PERF_EVENTS) {
		/* count,unit,event,run-time,percent,...: the unit is often
		 * empty, so split by hand (strtok would skip it). */
		char *field[3] = {line, NULL, NULL};
		for (int k = 1; k < 3 && field[k - 1]; k++) {
			char *comma = strchr(field[k - 1], ',');
			if (comma)
				*comma = 0;
			field[k] = comma ? comma + 1 : NULL;
		}
		if (line[0] == '#' || !field[2])
			continue;
		field[2][strcspn(field[2], ",\n")] = 0;
		char *end;
		double v = strtod(field[0], &end);
		if (end == field[0])
			v = NAN; /* "<not counted>", "<not supported>" */
		perf_key(field[2], perf.name[perf.n], sizeof perf.name[0]);
		perf.count[perf.n++] = v;
	}
	if (f)
		fclose(f);
	unlink(perf.out);
}

/* ---- main ----------------------------------------------------------------- */

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [--host A] [--port P] [--conns N] [--size S] [--depth D]\n"
		"       [--warmup SECS] [--seconds SECS] [--server-pid PID] [--cpu C]\n"
		"       [--impl NAME] [--backend NAME] [--perf-events LIST] [--stall-ms MS]\n"
		"       [--server-cpu C] [--client epoll|uring]\n",
		prog);
	exit(2);
}

static double num(const char *prog, const char *text, double min)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || *end || !(v >= min))
		usage(prog);
	return v;
}

static void parse(int argc, char **argv)
{
	static const struct option longs[] = {
		{"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"conns", 1, 0, 'c'},
		{"size", 1, 0, 's'}, {"depth", 1, 0, 'd'}, {"warmup", 1, 0, 'w'},
		{"seconds", 1, 0, 't'}, {"server-pid", 1, 0, 'P'}, {"cpu", 1, 0, 'C'},
		{"impl", 1, 0, 'i'}, {"backend", 1, 0, 'b'}, {"perf-events", 1, 0, 'e'},
		{"stall-ms", 1, 0, 'S'}, {"server-cpu", 1, 0, 'X'},
		{"client", 1, 0, 'U'}, {0, 0, 0, 0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (ch) {
		case 'h': opt.host = optarg; break;
		case 'p': opt.port = (int)num(argv[0], optarg, 1); break;
		case 'c': opt.conns = (int)num(argv[0], optarg, 1); break;
		case 's': opt.size = (size_t)num(argv[0], optarg, 1); break;
		case 'd': opt.depth = (int)num(argv[0], optarg, 1); break;
		case 'w': opt.warmup = num(argv[0], optarg, 0); break;
		case 't': opt.seconds = num(argv[0], optarg, 0.001); break;
		case 'P': opt.server_pid = (pid_t)num(argv[0], optarg, 1); break;
		case 'C': opt.cpu = (int)num(argv[0], optarg, 0); break;
		case 'i': opt.impl = optarg; break;
		case 'b': opt.backend = optarg; break;
		case 'e': opt.perf_events = *optarg ? optarg : NULL; break;
		case 'S': opt.stall_ms = (int)num(argv[0], optarg, 1); break;
		case 'X': opt.server_cpu = (int)num(argv[0], optarg, 0); break;
		case 'U':
			if (strcmp(optarg, "uring") == 0)
				opt.uring = true;
			else if (strcmp(optarg, "epoll") == 0)
				opt.uring = false;
			else
				usage(argv[0]);
			break;
		default: usage(argv[0]);
		}
	}
	if (optind != argc || opt.port > 65535)
		usage(argv[0]);
#ifndef LOADGEN_HAVE_LIBURING
	if (opt.uring) {
		fprintf(stderr, "loadgen: --client uring: built without liburing\n");
		exit(2);
	}
#endif
	if (opt.perf_events && opt.server_pid <= 0) {
		fprintf(stderr, "loadgen: --perf-events needs --server-pid\n");
		exit(2);
	}
}

int main(int argc, char **argv)
{
	parse(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl; /* a connection is an fd: allow as many as we may */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (opt.cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(opt.cpu, &set);
		if (sched_setaffinity(0, sizeof set, &set) < 0)
			fatal("cannot pin to CPU %d: %s", opt.cpu, strerror(errno));
	}
	if (opt.server_pid > 0) {
		if (kill(opt.server_pid, 0) < 0)
			fatal("server pid %d: %s", (int)opt.server_pid, strerror(errno));
		have_server_clock = clock_getcpuclockid(opt.server_pid, &server_clock) == 0 &&
				    clock_ns(server_clock) >= 0;
	}

	struct sockaddr_storage ss = {0};
	socklen_t salen;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, opt.host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)opt.port);
		salen = sizeof *in4;
	} else if (inet_pton(AF_INET6, opt.host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)opt.port);
		salen = sizeof *in6;
	} else {
		fatal("--host %s is not a numeric IPv4 or IPv6 address", opt.host);
	}

	conns = calloc((size_t)opt.conns, sizeof *conns);
	int64_t *stamps = calloc((size_t)opt.conns * (size_t)opt.depth, sizeof *stamps);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || !stamps || ep < 0)
		fatal("out of memory or fds");
	int64_t give_up = now_ns() + 5 * (int64_t)1000000000;
	for (int i = 0; i < opt.conns; i++) {
		struct conn *c = &conns[i];
		c->id = (uint32_t)i;
		c->sent_at = stamps + (size_t)i * (size_t)opt.depth;
		conn_connect(c, (struct sockaddr *)&ss, salen, give_up);
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
					 .data.ptr = c};
		if (!opt.uring && epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
			fatal("epoll_ctl: %s", strerror(errno));
	}
	if (opt.perf_events)
		perf_start();

	int64_t t_start = now_ns();
	int64_t warm_end = t_start + (int64_t)(opt.warmup * 1e9);
	int64_t meas_end = warm_end + (int64_t)(opt.seconds * 1e9);
	int64_t stall_ns = (int64_t)opt.stall_ms * 1000000;
	struct cpu_snap a = {0}, b = {0};
	last_progress = t_start;
	measuring = opt.warmup <= 0;
	if (measuring) {
		perf_command("enable");
		a = cpu_snap();
		meas_end = a.t + (int64_t)(opt.seconds * 1e9);
	}
#ifdef LOADGEN_HAVE_LIBURING
	if (opt.uring) {
		u_setup();
		u_start(t_start);
	}
#endif
	for (int i = 0; i < opt.conns && !opt.uring; i++)
		conn_flush(&conns[i], t_start);

	struct epoll_event evs[MAX_EVENTS];
	for (;;) {
		int64_t now = now_ns();
		if (!measuring && now >= warm_end) {
			perf_command("enable");
			a = cpu_snap();
			meas_end = a.t + (int64_t)(opt.seconds * 1e9);
			measuring = true;
			now = a.t;
		}
		if (measuring && now >= meas_end) {
			b = cpu_snap();
			measuring = false;
			break;
		}
		if (now - last_progress > stall_ns)
			fatal("no echo for %d ms: the server stalled or died", opt.stall_ms);
		int64_t until = (measuring ? meas_end : warm_end) - now;
		int timeout = (int)((until + 999999) / 1000000);
		if (timeout > 100)
			timeout = 100;
#ifdef LOADGEN_HAVE_LIBURING
		if (opt.uring) {
			u_poll(until < 100000000 ? (until > 0 ? until : 1) : 100000000);
			continue;
		}
#endif
		int n = epoll_wait(ep, evs, MAX_EVENTS, timeout);
		if (n < 0 && errno != EINTR)
			fatal("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			uint32_t e = evs[i].events;
			if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				conn_readable(c); /* reports the error or EOF */
			if (e & EPOLLOUT)
				c->tx_blocked = false;
			conn_flush(c, now_ns());
		}
	}
	perf_command("disable");
	if (opt.server_pid > 0 && kill(opt.server_pid, 0) < 0)
		fatal("server pid %d is gone", (int)opt.server_pid);
	for (int i = 0; i < opt.conns; i++)
		close(conns[i].fd); /* hard stop: in-flight messages are dropped */
	perf_finish();

	/* ---- report ---- */
	double win = (double)(b.t - a.t) / 1e9;
	double req = responses ? (double)responses : NAN;
	char server[384] = "";
	if (opt.server_pid > 0) {
		double srv_ns = have_server_clock ? (double)(b.server_ns - a.server_ns) : NAN;
		double tck = (double)sysconf(_SC_CLK_TCK);
		double stat_us = a.server_ticks >= 0 && b.server_ticks >= 0
					 ? (double)(b.server_ticks - a.server_ticks) / tck * 1e6 / req
					 : NAN;
		if (!have_server_clock)
			srv_ns = stat_us * req * 1e3;
		double task_us = a.server_task_ticks >= 0 && b.server_task_ticks >= 0
					 ? (double)(b.server_task_ticks - a.server_task_ticks) / tck * 1e6 / req
					 : NAN;
		snprintf(server, sizeof server,
			 " server_cpu_us_per_req=%.3f server_util=%.3f server_stat_cpu_us_per_req=%.3f"
			 " server_task_cpu_us_per_req=%.3f server_threads=%d",
			 srv_ns / 1e3 / req, srv_ns / 1e9 / win, stat_us, task_us, b.server_threads);
	}
	char perfkv[1024] = "";
	for (int i = 0, len = 0; i < perf.n && perf.ok; i++)
		len += snprintf(perfkv + len, sizeof perfkv - (size_t)len, " %s_per_req=%.4f",
				perf.name[i], perf.count[i] / req);
	double self_ns = (double)(b.self_ns - a.self_ns);
	char disturb[256] = "";
	if (opt.cpu >= 0) {
		double other, steal, sother = NAN, ssteal = NAN;
		foreign(a.cli_cpu, b.cli_cpu, self_ns, win, &other, &steal);
		if (opt.server_cpu >= 0 && have_server_clock && opt.server_cpu != opt.cpu)
			foreign(a.srv_cpu, b.srv_cpu, (double)(b.server_ns - a.server_ns), win,
				&sother, &ssteal);
		snprintf(disturb, sizeof disturb,
			 " client_cpu_other=%.3f client_cpu_steal=%.3f server_cpu_other=%.3f "
			 "server_cpu_steal=%.3f", other, steal, sother, ssteal);
	}
	struct utsname u;
	if (uname(&u) < 0)
		snprintf(u.release, sizeof u.release, "unknown");
	printf("bench=net impl=%s backend=%s client=%s conns=%d size=%zu depth=%d warmup_s=%g "
	       "seconds=%g window_s=%.3f requests=%llu req_s=%.0f p50_us=%.1f p99_us=%.1f "
	       "p999_us=%.1f max_us=%.1f%s client_cpu_us_per_req=%.3f client_util=%.3f%s%s "
	       "verified_bytes=%llu cpu=%d kernel=%s commit=%s\n",
	       opt.impl, opt.backend, opt.uring ? "uring" : "epoll", opt.conns, opt.size,
	       opt.depth, opt.warmup, opt.seconds, win, (unsigned long long)responses, (double)responses / win,
	       hist_quantile(0.5), hist_quantile(0.99), hist_quantile(0.999), hist_max(),
	       server, self_ns / 1e3 / req, self_ns / 1e9 / win, disturb, perfkv,
	       (unsigned long long)bytes_verified, opt.cpu, u.release, COREIO_BENCH_COMMIT);
	printf("loadgen: %s (%s), %s client, %d conns x %zu B, depth %d: %.0f req/s, latency p50 %.1f us, "
	       "p99 %.1f us, p99.9 %.1f us",
	       opt.impl, opt.backend, opt.uring ? "io_uring" : "epoll", opt.conns, opt.size,
	       opt.depth, (double)responses / win, hist_quantile(0.5), hist_quantile(0.99),
	       hist_quantile(0.999));
	if (opt.server_pid > 0 && have_server_clock)
		printf("; server %.2f CPU-us/req (%.0f%% busy)",
		       (double)(b.server_ns - a.server_ns) / 1e3 / req,
		       (double)(b.server_ns - a.server_ns) / 1e7 / win);
	printf("; client %.2f CPU-us/req; %llu bytes echoed and verified\n",
	       self_ns / 1e3 / req, (unsigned long long)bytes_verified);
	if (!responses)
		fatal("no echo completed in the measured window");
	return 0;
}
