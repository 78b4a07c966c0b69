/* test_splice.c - zero-copy transfers: cio_splice between files, pipes and
 * sockets (offsets, errors, end of stream, waits, interruption),
 * cio_sendfile (whole files, ranges, past the end, to socketpairs and TCP,
 * a slow reader, a reader that leaves), and cio_relay between two TCP
 * connections (both ways at once, half-close, resets, a slow reader,
 * the idle limit, deadlines, cancellation, the pipe pool). */
#define NET_TEST_SEED 0x41c64e6du
#include "file_util.h"

#include <fcntl.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define MS CIO_MS
#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static uint32_t seed;

/* A connected TCP pair over loopback. */
/* --- stream helpers ------------------------------------------------------ */

/* Sends len bytes of pat(i, seed) in chunks of random size, then shuts
 * down writing (if shut). */
struct writer {
	int fd;
	size_t len;
	uint32_t seed, rng;
	bool shut;
	volatile size_t done; /* bytes sent so far */
	ssize_t rc;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t *b = malloc(64 * KiB);
	CHECK(b);
	w->rc = 0;
	while (w->done < w->len) {
		size_t n = 1 + xorshift32(&w->rng) % (64 * KiB);
		if (n > w->len - w->done)
			n = w->len - w->done;
		for (size_t i = 0; i < n; i++)
			b[i] = pat(w->done + i, w->seed);
		size_t sent = 0;
		ssize_t r = cio_send_all(w->fd, b, n, 0, &sent);
		w->done += sent;
		if (r < 0) {
			w->rc = r;
			break;
		}
	}
	free(b);
	if (w->shut && w->rc == 0)
		CHECK_EQ(cio_shutdown(w->fd, SHUT_WR), 0);
	return NULL;
}

/* Reads until the end of the stream (or an error), checking each byte
 * against pat(i, seed); sleeps `delay` between reads of at most `chunk`. */
struct reader {
	int fd;
	uint32_t seed;
	size_t chunk;
	int64_t delay;
	size_t stop_after; /* 0: read to the end */
	volatile size_t got;
	ssize_t rc; /* 0 at end of stream, or the error */
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	size_t cap = r->chunk ? r->chunk : 64 * KiB;
	uint8_t *b = malloc(cap);
	CHECK(b);
	for (;;) {
		if (r->stop_after && r->got >= r->stop_after) {
			r->rc = 1;
			break;
		}
		ssize_t n = cio_recv(r->fd, b, cap, 0);
		if (n <= 0) {
			r->rc = n;
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			if (b[i] != pat(r->got + (size_t)i, r->seed)) {
				fprintf(stderr, "stream byte %zu wrong (seed %#x)\n",
					r->got + (size_t)i, seed);
				CHECK(0);
			}
		r->got += (size_t)n;
		if (r->delay)
			CHECK_EQ(cio_sleep(r->delay), 0);
	}
	free(b);
	return NULL;
}

static cio_task_t go(cio_fn *fn, void *arg)
{
	cio_task_t t = cio_spawn(fn, arg);
	CHECK(t > 0);
	return t;
}

/* --- splice ------------------------------------------------------------------ */

struct late_write {
	int fd;
	int64_t delay;
};

static void *late_write_main(void *arg)
{
	struct late_write *l = arg;
	CHECK_EQ(cio_sleep(l->delay), 0);
	CHECK_EQ(cio_write(l->fd, "late!", 5), 5);
	return NULL;
}

static void test_splice(void)
{
	size_t size = 100 * KiB;
	int f = make_file("src", size, seed);
	int g = cio_open(P("dst"), O_CREAT | O_TRUNC | O_RDWR, 0644);
	CHECK(g >= 0);
	int p[2];
	CHECK_EQ(cio_pipe(p), 0);
	uint8_t buf[8192];

	/* file -> pipe from an offset; the file position does not move. */
	ssize_t n = cio_splice(f, 1001, p[1], -1, 5000);
	CHECK_EQ(n, 5000);
	CHECK_EQ(lseek(f, 0, SEEK_CUR), 0);
	CHECK_EQ(cio_read(p[0], buf, sizeof buf), 5000);
	for (int i = 0; i < 5000; i++)
		CHECK_EQ(buf[i], pat(1001 + (uint64_t)i, seed));
	/* With -1, the file's position is used and moved. */
	CHECK_EQ(lseek(f, 10, SEEK_SET), 10);
	CHECK_EQ(cio_splice(f, -1, p[1], -1, 100), 100);
	CHECK_EQ(lseek(f, 0, SEEK_CUR), 110);
	CHECK_EQ(cio_read(p[0], buf, sizeof buf), 100);
	CHECK_EQ(buf[0], pat(10, seed));

	/* pipe -> file at an offset. */
	for (int i = 0; i < 3000; i++)
		buf[i] = pat((uint64_t)i, seed ^ 1);
	CHECK_EQ(cio_write(p[1], buf, 3000), 3000);
	CHECK_EQ(cio_splice(p[0], -1, g, 777, 3000), 3000);
	memset(buf, 0, sizeof buf);
	CHECK_EQ(cio_pread(g, buf, sizeof buf, 0), 3777);
	for (int i = 0; i < 777; i++)
		CHECK_EQ(buf[i], 0);
	for (int i = 0; i < 3000; i++)
		CHECK_EQ(buf[777 + i], pat((uint64_t)i, seed ^ 1));

	/* An empty pipe -> file waits for the writer. */
	struct late_write lw = {p[1], 20 * MS};
	cio_task_t t = go(late_write_main, &lw);
	int64_t t0 = cio_now();
	CHECK_EQ(cio_splice(p[0], -1, g, 0, 100), 5);
	CHECK(cio_now() - t0 >= 15 * MS);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(cio_pread(g, buf, 5, 0), 5);
	CHECK(memcmp(buf, "late!", 5) == 0);

	/* pipe <-> socket, both ways. */
	int s[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, s), 0);
	CHECK_EQ(cio_write(p[1], "to socket", 9), 9);
	CHECK_EQ(cio_splice(p[0], -1, s[0], -1, 64), 9);
	CHECK_EQ(cio_recv(s[1], buf, sizeof buf, 0), 9);
	CHECK(memcmp(buf, "to socket", 9) == 0);
	CHECK_EQ(cio_send(s[1], "from socket", 11, 0), 11);
	CHECK_EQ(cio_splice(s[0], -1, p[1], -1, 64), 11);
	CHECK_EQ(cio_read(p[0], buf, sizeof buf), 11);
	CHECK(memcmp(buf, "from socket", 11) == 0);
	/* A socket with nothing to read waits; a deadline ends the wait. */
	int64_t tok = cio_timeout_push(30 * MS);
	t0 = cio_now();
	CHECK_EQ(cio_splice(s[0], -1, p[1], -1, 64), -ETIMEDOUT);
	cio_deadline_pop(tok);
	CHECK(cio_now() - t0 >= 25 * MS);
	/* Cancelled first: nothing moves. */
	CHECK_EQ(cio_send(s[1], "x", 1, 0), 1);
	CHECK_EQ(cio_cancel(cio_self()), 0);
	CHECK_EQ(cio_splice(s[0], -1, p[1], -1, 64), -ECANCELED);
	CHECK_EQ(cio_splice(f, 0, p[1], -1, 64), -ECANCELED);
	CHECK(cio_cancel_clear());
	CHECK_EQ(cio_splice(s[0], -1, p[1], -1, 64), 1);
	CHECK_EQ(cio_read(p[0], buf, 1), 1);
	CHECK_EQ(buf[0], 'x');

	if (!POSIX_PATHS) {
		/* Neither a pipe: EINVAL. */
		CHECK_EQ(cio_splice(f, 0, g, 0, 10), -EINVAL);
		CHECK_EQ(cio_splice(s[0], -1, s[1], -1, 10), -EINVAL);
		CHECK_EQ(cio_splice(f, 0, s[0], -1, 10), -EINVAL);
	} else {
		/* The copy takes any two fds: file to file, file to socket;
		 * an offset on a stream is refused as by pread(2). */
		uint8_t want[10], got[10];
		CHECK_EQ(cio_pread(f, want, 10, 0), 10);
		CHECK_EQ(cio_splice(f, 0, g, 5000, 10), 10);
		CHECK_EQ(cio_pread(g, got, 10, 5000), 10);
		CHECK(memcmp(want, got, 10) == 0);
		CHECK_EQ(cio_splice(f, 0, s[0], -1, 10), 10);
		CHECK_EQ(cio_recv(s[1], got, 10, 0), 10);
		CHECK(memcmp(want, got, 10) == 0);
		CHECK_EQ(cio_splice(s[0], 0, p[1], -1, 10), -ESPIPE);
	}
	/* Bad offsets and fds. */
	CHECK_EQ(cio_splice(f, -2, p[1], -1, 10), -EINVAL);
	CHECK_EQ(cio_splice(p[0], -1, g, -7, 10), -EINVAL);
	CHECK_EQ(cio_splice(-1, -1, p[1], -1, 10), -EBADF);
	CHECK_EQ(cio_splice(p[0], -1, -1, -1, 10), -EBADF);
	int closed = cio_open(P("src"), O_RDONLY, 0);
	CHECK(closed >= 0);
	CHECK_EQ(cio_close(closed), 0);
	CHECK_EQ(cio_splice(closed, 0, p[1], -1, 10), -EBADF);
	CHECK_EQ(cio_splice(p[0], -1, closed, 0, 10), -EBADF);

	/* End of stream: 0.  A file at or past its end, a socket whose
	 * peer shut down, a pipe whose writers closed. */
	CHECK_EQ(cio_splice(f, (int64_t)size, p[1], -1, 100), 0);
	CHECK_EQ(cio_splice(f, (int64_t)size + 5000, p[1], -1, 100), 0);
	CHECK_EQ(cio_splice(f, (int64_t)size - 10, p[1], -1, 100), 10);
	CHECK_EQ(cio_read(p[0], buf, sizeof buf), 10);
	CHECK_EQ(cio_shutdown(s[1], SHUT_WR), 0);
	CHECK_EQ(cio_splice(s[0], -1, p[1], -1, 100), 0);
	CHECK_EQ(cio_close(p[1]), 0);
	CHECK_EQ(cio_splice(p[0], -1, g, 0, 100), 0);
	CHECK_EQ(cio_close(p[0]), 0);

	/* A pipe whose reader left: EPIPE. */
	CHECK_EQ(cio_pipe(p), 0);
	CHECK_EQ(cio_close(p[0]), 0);
	CHECK_EQ(cio_splice(f, 0, p[1], -1, 100), -EPIPE);
	CHECK_EQ(cio_close(p[1]), 0);

	CHECK_EQ(cio_close(s[0]), 0);
	CHECK_EQ(cio_close(s[1]), 0);
	CHECK_EQ(cio_close(f), 0);
	CHECK_EQ(cio_close(g), 0);
	CHECK_EQ(cio_unlink(P("src")), 0);
	CHECK_EQ(cio_unlink(P("dst")), 0);
}

/* --- sendfile ------------------------------------------------------------------ */

/* Receives want bytes into b, in pieces of 16 KiB with a pause after
 * each when delay is set. */
struct rjob {
	int fd;
	uint8_t *b;
	size_t want;
	int64_t delay;
};

static void *read_all_main(void *arg)
{
	struct rjob *j = arg;
	size_t got = 0;
	while (got < j->want) {
		size_t n = j->want - got;
		if (j->delay && n > 16 * KiB)
			n = 16 * KiB;
		ssize_t r = cio_recv(j->fd, j->b + got, n, 0);
		CHECK(r > 0);
		got += (size_t)r;
		if (j->delay)
			CHECK_EQ(cio_sleep(j->delay), 0);
	}
	return NULL;
}

/* Sends [off, off + len) of f (file_size bytes) to out, read at the
 * other end `in`; checks what arrived.  Returns sendfile's result. */
static ssize_t sendfile_to(int out, int in, int f, int64_t off, size_t len,
			   size_t file_size, int64_t delay)
{
	size_t want = off >= (int64_t)file_size ? 0
		      : len < file_size - (size_t)off ? len : file_size - (size_t)off;
	struct rjob job = {in, malloc(want + 1), want, delay};
	CHECK(job.b);
	size_t sent = 99;
	cio_task_t t = go(read_all_main, &job);
	ssize_t n = cio_sendfile(out, f, off, len, &sent);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(n, (ssize_t)want);
	CHECK_EQ(sent, want);
	for (size_t i = 0; i < want; i++)
		if (job.b[i] != pat((uint64_t)off + i, seed)) {
			fprintf(stderr, "sendfile byte %zu (offset %lld) wrong\n", i,
				(long long)off);
			CHECK(0);
		}
	/* Nothing more came. */
	char c;
	int64_t tok = cio_timeout_push(MS);
	CHECK_EQ(cio_recv(in, &c, 1, 0), -ETIMEDOUT);
	cio_deadline_pop(tok);
	free(job.b);
	return n;
}

struct quitter {
	int fd;
	size_t after; /* bytes read before closing */
	bool reset;
};

static void *quitter_main(void *arg)
{
	struct quitter *q = arg;
	uint8_t b[16384];
	size_t got = 0;
	while (got < q->after) {
		ssize_t r = cio_recv(q->fd, b, sizeof b, 0);
		CHECK(r > 0);
		got += (size_t)r;
	}
	if (q->reset)
		linger0(q->fd);
	CHECK_EQ(cio_close(q->fd), 0);
	return NULL;
}

static void test_sendfile(void)
{
	size_t size = 3 * MiB + 123;
	int f = make_file("sf", size, seed);
	int s[2], t[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, s), 0);
	tcp_pair(t);

	/* Whole file, odd ranges, past the end: over a socketpair and TCP. */
	for (int k = 0; k < 2; k++) {
		int out = k ? t[0] : s[0], in = k ? t[1] : s[1];
		sendfile_to(out, in, f, 0, size, size, 0);
		sendfile_to(out, in, f, 12345, MiB + 7, size, 0);
		sendfile_to(out, in, f, 1, 1, size, 0);
		CHECK_EQ(sendfile_to(out, in, f, (int64_t)size - 1000, 5000, size, 0), 1000);
		CHECK_EQ(sendfile_to(out, in, f, (int64_t)size, 10, size, 0), 0);
		CHECK_EQ(sendfile_to(out, in, f, (int64_t)size + 99, 10, size, 0), 0);
		CHECK_EQ(sendfile_to(out, in, f, 5, 0, size, 0), 0);
	}
	/* A slow reader over TCP with small buffers: sendfile waits for it,
	 * and returns only once all but what the buffers hold has been read. */
	CHECK_EQ(cio_sock_buffers(t[0], 0, 32 * 1024), 0);
	int64_t t0 = cio_now();
	sendfile_to(t[0], t[1], f, 777, MiB, size, 1 * MS);
	fprintf(stderr, "sendfile to a slow reader: %.0f ms\n", (double)(cio_now() - t0) / 1e6);

	/* Errors: a bad offset, bad fds. */
	size_t sent = 99;
	CHECK_EQ(cio_sendfile(s[0], f, -1, 10, &sent), -EINVAL);
	CHECK_EQ(sent, 0);
	CHECK_EQ(cio_sendfile(s[0], -1, 0, 10, &sent), -EBADF);
	CHECK_EQ(sent, 0);
	CHECK_EQ(cio_sendfile(-1, f, 0, 10, &sent), -EBADF);
	CHECK_EQ(cio_sendfile(s[0], s[1], 0, 10, &sent), -EINVAL); /* not a file */
	/* A deadline while nobody reads: -ETIMEDOUT, *moved what went. */
	int64_t tok = cio_timeout_push(50 * MS);
	ssize_t n = cio_sendfile(s[0], f, 0, size, &sent);
	cio_deadline_pop(tok);
	CHECK_EQ(n, -ETIMEDOUT);
	CHECK(sent > 0 && sent < size);
	CHECK_EQ(cio_close(s[0]), 0);
	CHECK_EQ(cio_close(s[1]), 0);
	CHECK_EQ(cio_close(t[0]), 0);
	CHECK_EQ(cio_close(t[1]), 0);

	/* The receiver leaves early: EPIPE or ECONNRESET, *moved sane. */
	for (int k = 0; k < 3; k++) {
		int pr[2];
		if (k == 0)
			CHECK_EQ(cio_socketpair(SOCK_STREAM, pr), 0);
		else
			tcp_pair(pr);
		struct quitter q = {pr[1], 100 * KiB, k == 2};
		cio_task_t qt = go(quitter_main, &q);
		sent = 0;
		n = cio_sendfile(pr[0], f, 0, size, &sent);
		CHECK_EQ(join_rc(qt), 0);
		if (n != -EPIPE && n != -ECONNRESET)
			fprintf(stderr, "sendfile to a closed peer (%d): %zd\n", k, n);
		CHECK(n == -EPIPE || n == -ECONNRESET);
		CHECK(sent >= q.after && sent < size);
		CHECK_EQ(cio_close(pr[0]), 0);
	}
	CHECK_EQ(cio_close(f), 0);
	CHECK_EQ(cio_unlink(P("sf")), 0);
}

/* --- relay ------------------------------------------------------------------------ */

/* ca <-> a [relay] b <-> cb */
struct relay_rig {
	int ca, a, b, cb;
	cio_relay_opts opts;
	cio_relay_stats st;
	int rc;
	int64_t took;
	cio_task_t task;
};

static void *relay_main(void *arg)
{
	struct relay_rig *r = arg;
	int64_t t0 = cio_now();
	r->rc = cio_relay(r->a, r->b, &r->opts, &r->st);
	r->took = cio_now() - t0;
	return NULL;
}

static void rig_up(struct relay_rig *r)
{
	int x[2], y[2];
	tcp_pair(x);
	tcp_pair(y);
	r->ca = x[0];
	r->a = x[1];
	r->b = y[0];
	r->cb = y[1];
	r->rc = 1;
	r->task = go(relay_main, r);
}

static void rig_down(struct relay_rig *r)
{
	int fds[4] = {r->ca, r->a, r->b, r->cb};
	for (int i = 0; i < 4; i++)
		if (fds[i] >= 0)
			CHECK_EQ(cio_close(fds[i]), 0);
}

static void test_relay_both_ways(void)
{
	static const size_t sizes[][2] = {{0, 0}, {1, 0}, {0, 1}, {5 * MiB + 3, 4 * MiB + 11}};
	for (int k = 0; k < 5; k++) {
		size_t n1 = k < 4 ? sizes[k][0] : rnd() % (3 * MiB);
		size_t n2 = k < 4 ? sizes[k][1] : rnd() % (3 * MiB);
		struct relay_rig r = {0};
		rig_up(&r);
		struct writer w1 = {.fd = r.ca, .len = n1, .seed = seed + 1, .rng = rnd() | 1, .shut = true};
		struct writer w2 = {.fd = r.cb, .len = n2, .seed = seed + 2, .rng = rnd() | 1, .shut = true};
		struct reader r1 = {.fd = r.cb, .seed = seed + 1};
		struct reader r2 = {.fd = r.ca, .seed = seed + 2};
		cio_task_t t[4] = {go(writer_main, &w1), go(writer_main, &w2),
				   go(reader_main, &r1), go(reader_main, &r2)};
		for (int i = 0; i < 4; i++)
			CHECK_EQ(join_rc(t[i]), 0);
		CHECK_EQ(join_rc(r.task), 0);
		CHECK_EQ(r.rc, 0);
		CHECK_EQ(w1.rc, 0);
		CHECK_EQ(w2.rc, 0);
		CHECK_EQ(r1.rc, 0);
		CHECK_EQ(r2.rc, 0);
		CHECK_EQ(r1.got, n1);
		CHECK_EQ(r2.got, n2);
		CHECK_EQ(r.st.a_to_b, n1);
		CHECK_EQ(r.st.b_to_a, n2);
		rig_down(&r);
	}
}

/* One side ends its stream: the other sees the end while the reverse
 * direction goes on; then that ends too, and the relay returns 0. */
static void test_relay_half_close(void)
{
	for (int side = 0; side < 2; side++) {
		struct relay_rig r = {0};
		rig_up(&r);
		int first = side ? r.cb : r.ca, second = side ? r.ca : r.cb;
		uint8_t buf[4096];
		CHECK_EQ(cio_send_all(first, "early bytes", 11, 0, NULL), 11);
		CHECK_EQ(cio_shutdown(first, SHUT_WR), 0);
		CHECK_EQ(cio_recv_exact(second, buf, 11, 0, NULL), 11);
		CHECK(memcmp(buf, "early bytes", 11) == 0);
		CHECK_EQ(cio_recv(second, buf, sizeof buf, 0), 0); /* the end */
		/* The other way still flows, for a while. */
		size_t total = 0;
		for (int i = 0; i < 20; i++) {
			for (size_t k = 0; k < sizeof buf; k++)
				buf[k] = pat(total + k, seed);
			CHECK_EQ(cio_send_all(second, buf, sizeof buf, 0, NULL), (ssize_t)sizeof buf);
			CHECK_EQ(cio_recv_exact(first, buf, sizeof buf, 0, NULL), (ssize_t)sizeof buf);
			for (size_t k = 0; k < sizeof buf; k++)
				CHECK_EQ(buf[k], pat(total + k, seed));
			total += sizeof buf;
			if (i == 10)
				CHECK_EQ(cio_sleep(5 * MS), 0);
		}
		CHECK_EQ(r.rc, 1); /* still relaying */
		CHECK_EQ(cio_shutdown(second, SHUT_WR), 0);
		CHECK_EQ(cio_recv(first, buf, sizeof buf, 0), 0);
		CHECK_EQ(join_rc(r.task), 0);
		CHECK_EQ(r.rc, 0);
		CHECK_EQ(side ? r.st.b_to_a : r.st.a_to_b, 11);
		CHECK_EQ(side ? r.st.a_to_b : r.st.b_to_a, total);
		rig_down(&r);
	}
}

/* A peer resets: the relay ends with the error and stops the other way. */
static void test_relay_reset(void)
{
	for (int k = 0; k < 4; k++) {
		struct relay_rig r = {0};
		rig_up(&r);
		int victim = k & 1 ? r.cb : r.ca, other = k & 1 ? r.ca : r.cb;
		uint8_t buf[64];
		CHECK_EQ(cio_send_all(other, "ping", 4, 0, NULL), 4);
		CHECK_EQ(cio_recv_exact(victim, buf, 4, 0, NULL), 4);
		if (k >= 2) {
			/* Bytes on their way to the victim when it goes. */
			CHECK_EQ(cio_send_all(other, "more", 4, 0, NULL), 4);
			CHECK_EQ(cio_sleep(5 * MS), 0);
		}
		linger0(victim);
		CHECK_EQ(cio_close(victim), 0);
		if (k & 1)
			r.cb = -1;
		else
			r.ca = -1;
		if (k >= 2)
			/* The relay notices when it next writes to the victim. */
			(void)cio_send(other, "later", 5, MSG_NOSIGNAL);
		int64_t t0 = cio_now();
		CHECK_EQ(join_rc(r.task), 0);
		if (r.rc != -ECONNRESET && r.rc != -EPIPE)
			fprintf(stderr, "relay after a reset (%d): %d\n", k, r.rc);
		CHECK(r.rc == -ECONNRESET || r.rc == -EPIPE);
		CHECK(cio_now() - t0 < 2 * CIO_SEC);
		CHECK_EQ(r.st.a_to_b + r.st.b_to_a >= 4, 1);
		rig_down(&r);
	}
}

/* A slow reader: the relay holds no more than the sockets' buffers and
 * one pipe, and what it has taken from the writer stays that close to
 * what the reader has read. */
struct sampler {
	struct writer *w;
	struct reader *r;
	volatile bool stop;
	size_t worst;
};

static void *sampler_main(void *arg)
{
	struct sampler *s = arg;
	while (!s->stop) {
		size_t d = s->w->done - s->r->got;
		if (d > s->worst)
			s->worst = d;
		CHECK_EQ(cio_sleep(MS), 0);
	}
	return NULL;
}

static int sockbuf(int fd, int opt)
{
	int v = 0;
	socklen_t l = sizeof v;
	CHECK_EQ(getsockopt(fd, SOL_SOCKET, opt, &v, &l), 0);
	return v;
}

static void test_relay_slow_reader(void)
{
	struct relay_rig r = {0};
	int x[2], y[2];
	tcp_pair(x);
	tcp_pair(y);
	r.ca = x[0], r.a = x[1], r.b = y[0], r.cb = y[1];
	CHECK_EQ(cio_sock_buffers(r.ca, 0, 32 * 1024), 0);
	CHECK_EQ(cio_sock_buffers(r.a, 32 * 1024, 32 * 1024), 0);
	CHECK_EQ(cio_sock_buffers(r.b, 32 * 1024, 32 * 1024), 0);
	CHECK_EQ(cio_sock_buffers(r.cb, 32 * 1024, 0), 0);
	r.opts.chunk = 64 * KiB;
	r.rc = 1;
	r.task = go(relay_main, &r);
	size_t total = 6 * MiB;
	struct writer w = {.fd = r.ca, .len = total, .seed = seed, .rng = rnd() | 1, .shut = true};
	struct reader rd = {.fd = r.cb, .seed = seed, .chunk = 16 * KiB, .delay = 1 * MS};
	struct sampler sm = {&w, &rd, false, 0};
	cio_task_t tw = go(writer_main, &w), tr = go(reader_main, &rd), ts = go(sampler_main, &sm);
	CHECK_EQ(join_rc(tw), 0);
	CHECK_EQ(join_rc(tr), 0);
	sm.stop = true;
	CHECK_EQ(join_rc(ts), 0);
	CHECK_EQ(rd.got, total);
	CHECK_EQ(cio_shutdown(r.cb, SHUT_WR), 0);
	CHECK_EQ(join_rc(r.task), 0);
	CHECK_EQ(r.rc, 0);
	CHECK_EQ(r.st.a_to_b, total);
	/* Socket buffers (as the kernel counts them, with overhead) on the
	 * way, one pipe, and one send of the writer in progress. */
	size_t bound = (size_t)sockbuf(r.ca, SO_SNDBUF) + (size_t)sockbuf(r.a, SO_RCVBUF) +
		       (size_t)sockbuf(r.b, SO_SNDBUF) + (size_t)sockbuf(r.cb, SO_RCVBUF) +
		       64 * KiB + 64 * KiB;
	fprintf(stderr, "relay, slow reader: at most %zu bytes in flight (bound %zu)\n",
		sm.worst, bound);
	CHECK(sm.worst > 0);
	CHECK(sm.worst <= bound);
	rig_down(&r);
}

/* The idle limit: an idle relay ends with -ETIMEDOUT around the limit;
 * traffic either way keeps it alive. */
struct trickle {
	int fd, peer;
	int n;
	int64_t every;
};

static void *trickle_main(void *arg)
{
	struct trickle *t = arg;
	char c;
	for (int i = 0; i < t->n; i++) {
		CHECK_EQ(cio_sleep(t->every), 0);
		CHECK_EQ(cio_send(t->fd, "t", 1, 0), 1);
		/* Bounded: a relay that ended early fails here, not hangs. */
		int64_t tok = cio_timeout_push(5 * CIO_SEC);
		CHECK_EQ(cio_recv(t->peer, &c, 1, 0), 1);
		cio_deadline_pop(tok);
		CHECK_EQ(c, 't');
	}
	return NULL;
}

static void test_relay_idle(void)
{
	/* The limit is five times the trickle's gap, so that a loaded
	 * machine's late wake-ups do not end a relay that is active. */
	struct relay_rig r = {.opts.idle_timeout = 300 * MS};
	rig_up(&r);
	CHECK_EQ(join_rc(r.task), 0);
	CHECK_EQ(r.rc, -ETIMEDOUT);
	CHECK(r.took >= 290 * MS && r.took < 1500 * MS);
	rig_down(&r);

	/* One direction active every 60 ms for 600 ms (the other idle all
	 * along): alive; then silence: ends about a limit later. */
	for (int side = 0; side < 2; side++) {
		struct relay_rig q = {.opts.idle_timeout = 300 * MS};
		rig_up(&q);
		struct trickle t = side ? (struct trickle){q.cb, q.ca, 10, 60 * MS}
					: (struct trickle){q.ca, q.cb, 10, 60 * MS};
		int64_t t0 = cio_now();
		CHECK_EQ(join_rc(go(trickle_main, &t)), 0);
		int64_t active = cio_now() - t0;
		CHECK_EQ(q.rc, 1); /* still relaying */
		CHECK_EQ(join_rc(q.task), 0);
		CHECK_EQ(q.rc, -ETIMEDOUT);
		CHECK(q.took >= active + 200 * MS && q.took < active + 1500 * MS);
		CHECK_EQ(side ? q.st.b_to_a : q.st.a_to_b, 10);
		rig_down(&q);
	}
}

/* The caller's deadline and cancellation end the relay; its two tasks
 * are gone. */
static void test_relay_interrupt(void)
{
	cio_stats s0, s1;
	cio_stats_get(&s0);
	struct relay_rig r = {0};
	int x[2], y[2];
	tcp_pair(x);
	tcp_pair(y);
	r.ca = x[0], r.a = x[1], r.b = y[0], r.cb = y[1];
	int64_t tok = cio_timeout_push(300 * MS);
	int64_t t0 = cio_now();
	/* Some traffic first (30 ms of it): it must not matter. */
	struct trickle tr = {r.ca, r.cb, 3, 10 * MS};
	cio_task_t tt = go(trickle_main, &tr);
	int rc = cio_relay(r.a, r.b, NULL, &r.st);
	cio_deadline_pop(tok);
	CHECK_EQ(rc, -ETIMEDOUT);
	CHECK(cio_now() - t0 >= 295 * MS && cio_now() - t0 < 1500 * MS);
	CHECK_EQ(join_rc(tt), 0);
	CHECK_EQ(r.st.a_to_b, 3);
	CHECK_EQ(cio_sleep(MS), 0);
	cio_stats_get(&s1);
	CHECK_EQ(s1.tasks_live, s0.tasks_live);
	/* The sockets still work: the relay left them open. */
	CHECK_EQ(cio_send(r.ca, "z", 1, 0), 1);
	char c;
	CHECK_EQ(cio_recv(r.a, &c, 1, 0), 1);
	CHECK_EQ(c, 'z');

	/* Cancelled in the middle of a transfer. */
	r.rc = 1;
	r.task = go(relay_main, &r);
	struct writer w = {.fd = r.ca, .len = 64 * MiB, .seed = seed, .rng = 1};
	struct reader rd = {.fd = r.cb, .seed = seed, .chunk = 64 * KiB};
	cio_task_t tw = go(writer_main, &w), trd = go(reader_main, &rd);
	for (int i = 0; i < 2000 && rd.got < 256 * KiB; i++)
		CHECK_EQ(cio_sleep(MS), 0);
	if (rd.got < 256 * KiB)
		fprintf(stderr, "relay: %zu bytes sent, %zu delivered in 2 s\n", w.done, rd.got);
	CHECK(rd.got >= 256 * KiB);
	CHECK_EQ(cio_cancel(r.task), 0);
	CHECK_EQ(join_rc(r.task), 0);
	CHECK_EQ(r.rc, -ECANCELED);
	CHECK_EQ(r.st.a_to_b >= rd.got, 1);
	/* Stop the clients. */
	CHECK_EQ(cio_cancel(tw), 0);
	CHECK_EQ(join_rc(tw), 0);
	CHECK(w.rc == -ECANCELED || w.done == w.len);
	CHECK_EQ(cio_shutdown(r.b, SHUT_WR), 0);
	CHECK_EQ(join_rc(trd), 0);
	CHECK_EQ(rd.rc, 0);
	CHECK_EQ(rd.got, r.st.a_to_b); /* all it delivered arrived, in order */
	CHECK_EQ(cio_sleep(MS), 0);
	cio_stats_get(&s1);
	CHECK_EQ(s1.tasks_live, s0.tasks_live);
	rig_down(&r);
}

/* Errors before it starts; and the pipe pool over many relays. */
/* After a bulk flow (the relay splicing), a burst of small sends: a
 * splice from a socket into an empty pipe stops at the pipe's 16 slots,
 * one a send on a Unix socket, so it comes back short with bytes still
 * queued.  Every byte must arrive, over Unix and TCP streams alike. */
struct burst {
	int fd;
	size_t small, count;
};

static void *burst_main(void *arg)
{
	struct burst *b = arg;
	static char big[64 * KiB], small[4 * KiB];
	memset(big, 'x', sizeof big);
	memset(small, 'y', sizeof small);
	CHECK_EQ(cio_send_all(b->fd, big, sizeof big, 0, NULL), (ssize_t)sizeof big);
	CHECK_EQ(cio_sleep(20 * MS), 0); /* the relay is splicing by now */
	for (size_t i = 0; i < b->count; i++)
		CHECK_EQ(cio_send_all(b->fd, small, b->small, 0, NULL), (ssize_t)b->small);
	return NULL;
}

static void test_relay_small_after_bulk(void)
{
	for (int tcp = 0; tcp < 2; tcp++) {
		int x[2], y[2];
		if (tcp) {
			tcp_pair(x);
			tcp_pair(y);
		} else {
			CHECK_EQ(cio_socketpair(SOCK_STREAM, x), 0);
			CHECK_EQ(cio_socketpair(SOCK_STREAM, y), 0);
		}
		struct relay_rig r = {.ca = x[0], .a = x[1], .b = y[0], .cb = y[1]};
		r.task = go(relay_main, &r);
		struct burst b = {.fd = r.ca, .small = 1000, .count = 40};
		cio_task_t w = go(burst_main, &b);
		size_t want = 64 * KiB + b.small * b.count, got = 0;
		static char buf[64 * KiB];
		int64_t tok = cio_timeout_push(5 * CIO_SEC);
		while (got < want) {
			ssize_t n = cio_recv(r.cb, buf, sizeof buf, 0);
			if (n <= 0) {
				fprintf(stderr, "%s relay: %zu of %zu bytes, then %zd\n",
					tcp ? "TCP" : "Unix", got, want, n);
				CHECK(0);
			}
			got += (size_t)n;
		}
		cio_deadline_pop(tok);
		CHECK_EQ(got, want);
		CHECK_EQ(join_rc(w), 0);
		CHECK_EQ(cio_shutdown(r.ca, SHUT_WR), 0);
		CHECK_EQ(cio_shutdown(r.cb, SHUT_WR), 0);
		CHECK_EQ(join_rc(r.task), 0);
		CHECK_EQ(r.rc, 0);
		CHECK_EQ(r.st.a_to_b, want);
		rig_down(&r);
	}
}

static void test_relay_misc(void)
{
	cio_relay_stats st = {7, 7};
	CHECK_EQ(cio_relay(-1, 0, NULL, &st), -EBADF);
	CHECK_EQ(st.a_to_b + st.b_to_a, 0);
	CHECK_EQ(cio_cancel(cio_self()), 0);
	CHECK_EQ(cio_relay(0, 1, NULL, NULL), -ECANCELED);
	CHECK(cio_cancel_clear());

	int base = test_count_fds(), after10 = -1;
	for (int i = 0; i < 40; i++) {
		struct relay_rig r = {0};
		rig_up(&r);
		CHECK_EQ(cio_send_all(r.ca, "abc", 3, 0, NULL), 3);
		CHECK_EQ(cio_send_all(r.cb, "de", 2, 0, NULL), 2);
		char buf[8];
		CHECK_EQ(cio_recv_exact(r.cb, buf, 3, 0, NULL), 3);
		CHECK_EQ(cio_recv_exact(r.ca, buf, 2, 0, NULL), 2);
		CHECK_EQ(cio_shutdown(r.ca, SHUT_WR), 0);
		CHECK_EQ(cio_shutdown(r.cb, SHUT_WR), 0);
		CHECK_EQ(join_rc(r.task), 0);
		CHECK_EQ(r.rc, 0);
		CHECK_EQ(r.st.a_to_b, 3);
		CHECK_EQ(r.st.b_to_a, 2);
		rig_down(&r);
		if (i == 9)
			after10 = test_count_fds();
	}
	/* Two pipes pooled for the relays (4 fds), no more, and no growth. */
	CHECK(after10 - base <= 4);
	CHECK_EQ(test_count_fds(), after10);
}

/* --- main ------------------------------------------------------------------------ */

static void *splice_main(void *arg)
{
	(void)arg;
	int64_t t0 = cio_now(), t;
#define STEP(f)                                                               \
	do {                                                                  \
		t = cio_now();                                                \
		f();                                                          \
		fprintf(stderr, "%-24s %6.0f ms\n", #f, (double)(cio_now() - t) / 1e6); \
	} while (0)
	TEST_CASE(splice, STEP(test_splice));
	TEST_CASE(sendfile, STEP(test_sendfile));
	TEST_CASE(relay_both_ways, STEP(test_relay_both_ways));
	TEST_CASE(relay_half_close, STEP(test_relay_half_close));
	TEST_CASE(relay_reset, STEP(test_relay_reset));
	TEST_CASE(relay_slow_reader, STEP(test_relay_slow_reader));
	TEST_CASE(relay_idle, STEP(test_relay_idle));
	TEST_CASE(relay_interrupt, STEP(test_relay_interrupt));
	TEST_CASE(relay_small_after_bulk, STEP(test_relay_small_after_bulk));
	TEST_CASE(relay_misc, STEP(test_relay_misc));
	fprintf(stderr, "zero-copy tests: %.2f s\n", (double)(cio_now() - t0) / 1e9);
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	net_seed_from_env();
	seed = rng;
	fprintf(stderr, "seed %#x (COREIO_TEST_SEED to repeat)\n", seed);
	snprintf(dir, sizeof dir, "/var/tmp/coreio-splice-XXXXXX");
	CHECK(mkdtemp(dir));
	int rc = test_run(splice_main, NULL);
	CHECK_EQ(rmdir(dir), 0);
	return rc ? rc : test_cases_end();
}
