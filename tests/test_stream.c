/* test_stream.c - buffered streams: lines split across reads, lines over
 * the limit, a peer that never sends a newline (memory stays flat),
 * half-close, cancel and deadline in the middle of a line with no byte
 * lost, coalesced and vectored writes, sticky write errors, sendfile and
 * relay after buffered bytes, addresses.  Each case runs on the plain
 * transport and on a wrapped one (what a TLS session takes: the paths
 * that copy instead of splicing). */
#include "coreio.h"
#include "check.h"
#include "net_util.h"
#include "../src/ext/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A transport that is not the plain one but moves the same bytes. */
static ssize_t wrapped_read(cio_stream *s, void *buf, size_t len)
{
	return cio__stream_plain.read(s, buf, len);
}
static ssize_t wrapped_write(cio_stream *s, const void *buf, size_t len)
{
	return cio__stream_plain.write(s, buf, len);
}
static int wrapped_shutdown(cio_stream *s)
{
	return cio__stream_plain.shutdown(s);
}
static const struct cio__stream_ops wrapped = {
	.read = wrapped_read, .write = wrapped_write, .shutdown = wrapped_shutdown,
};

static bool use_wrapped; /* the pass running: plain or wrapped */

static cio_stream *stream_on(int fd, size_t rbuf, size_t wbuf)
{
	cio_stream_opts o = { rbuf, wbuf };
	cio_stream *s;
	CHECK_EQ(cio_stream_new(&s, fd, &o), 0);
	if (use_wrapped)
		s->ops = &wrapped;
	return s;
}

/* A stream over one end of a Unix stream pair; *peer gets the other. */
static cio_stream *pair_stream(int *peer, size_t rbuf, size_t wbuf)
{
	int fds[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, fds), 0);
	*peer = fds[1];
	return stream_on(fds[0], rbuf, wbuf);
}

/* --- a peer task that sends a script ------------------------------------ */

struct sender {
	int fd;
	const char *data;
	size_t len;
	size_t step;    /* bytes per send */
	int64_t pause;  /* ns between sends */
	int end; /* then: 0 nothing, END_CLOSE, END_SHUTDOWN (SHUT_WR) */
};
enum { END_CLOSE = 1, END_SHUTDOWN };

static void *sender_main(void *arg)
{
	struct sender *sd = arg;
	for (size_t off = 0; off < sd->len; off += sd->step) {
		size_t n = sd->len - off < sd->step ? sd->len - off : sd->step;
		CHECK_EQ(cio_send_all(sd->fd, sd->data + off, n, 0, NULL), (ssize_t)n);
		if (sd->pause)
			cio_sleep(sd->pause);
		else
			cio_yield();
	}
	if (sd->end == END_CLOSE)
		CHECK_EQ(cio_close(sd->fd), 0);
	if (sd->end == END_SHUTDOWN)
		CHECK_EQ(cio_shutdown(sd->fd, SHUT_WR), 0);
	return NULL;
}

/* --- reading ------------------------------------------------------------- */

static void test_lines_split(void)
{
	static const char text[] = "hello\r\nworld\n\nlast line, unended";
	int peer;
	cio_stream *s = pair_stream(&peer, 64, 64);
	struct sender sd = { peer, text, sizeof text - 1, 1, 0, END_CLOSE };
	cio_task_t t = cio_spawn(sender_main, &sd);
	const char *line;

	CHECK_EQ(cio_stream_read_line(s, 0, &line), 5);
	CHECK(strcmp(line, "hello") == 0);
	CHECK_EQ(cio_stream_read_line(s, 0, &line), 5);
	CHECK(strcmp(line, "world") == 0);
	CHECK_EQ(cio_stream_read_line(s, 0, &line), 0); /* an empty line */
	CHECK(line && line[0] == '\0');
	/* The stream ends mid-line: -EPIPE, and the bytes stay readable. */
	CHECK_EQ(cio_stream_read_line(s, 0, &line), -EPIPE);
	CHECK(line == NULL);
	char rest[64];
	CHECK_EQ(cio_stream_read_exact(s, rest, 17, NULL), 17);
	CHECK(memcmp(rest, "last line, unended", 17) == 0);
	CHECK_EQ(cio_stream_read(s, rest, sizeof rest), 1);
	CHECK_EQ(cio_stream_read(s, rest, sizeof rest), 0);
	CHECK_EQ(cio_stream_read_line(s, 0, &line), 0);
	CHECK(line == NULL);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(cio_stream_close(s), 0);
}

static void test_line_limit(void)
{
	int peer;
	cio_stream *s = pair_stream(&peer, 64, 64);
	const char *data;
	size_t len;

	CHECK_EQ(cio_stream_read_until(s, '\n', 65, &data), -EINVAL);
	CHECK_EQ(cio_send_all(peer, "0123456789abcdef\nnext\n", 22, 0, NULL), 22);
	/* Over the limit: nothing consumed, the first limit bytes kept. */
	CHECK_EQ(cio_stream_read_until(s, '\n', 10, &data), -EMSGSIZE);
	CHECK(strstr(cio_stream_error(s), "long") != NULL ||
	      strstr(cio_stream_error(s), "Message") != NULL);
	CHECK(cio_stream_peek(s, &len) != NULL);
	CHECK(len >= 10);
	/* With room for it, the same line reads whole. */
	CHECK_EQ(cio_stream_read_until(s, '\n', 17, &data), 17);
	CHECK(memcmp(data, "0123456789abcdef\n", 17) == 0);
	CHECK_EQ(cio_stream_read_until(s, '\n', 0, &data), 5);
	CHECK(memcmp(data, "next\n", 5) == 0);
	/* A line as long as the whole buffer, moved to its front to fit. */
	char big[64];
	memset(big, 'x', 63);
	big[63] = '\n';
	CHECK_EQ(cio_send_all(peer, "ab", 2, 0, NULL), 2);
	CHECK_EQ(cio_stream_fill(s, 2), 2);
	cio_stream_consume(s, 1);
	CHECK_EQ(cio_send_all(peer, big, 63, 0, NULL), 63); /* "b" + 63 */
	CHECK_EQ(cio_stream_read_until(s, '\n', 0, &data), -EMSGSIZE);
	cio_stream_consume(s, 1);
	CHECK_EQ(cio_send_all(peer, "\n", 1, 0, NULL), 1);
	CHECK_EQ(cio_stream_read_until(s, '\n', 0, &data), 64);
	CHECK(memcmp(data, big, 63) == 0 && data[63] == '\n');
	CHECK_EQ(cio_stream_fill(s, 65), -EINVAL);
	CHECK_EQ(cio_close(peer), 0);
	CHECK_EQ(cio_stream_close(s), 0);
}

static long rss_kib(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return 0;
	CHECK_EQ(fscanf(f, "%ld %ld", &pages, &resident), 2);
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

struct flood {
	int fd;
	size_t total;
};

static void *flood_main(void *arg)
{
	struct flood *fl = arg;
	static char chunk[64 * 1024];
	memset(chunk, 'z', sizeof chunk);
	for (size_t sent = 0; sent < fl->total; sent += sizeof chunk)
		CHECK_EQ(cio_send_all(fl->fd, chunk, sizeof chunk, 0, NULL),
			 (ssize_t)sizeof chunk);
	CHECK_EQ(cio_close(fl->fd), 0);
	return NULL;
}

/* 100 MB without a newline: every read_until says -EMSGSIZE, the reader
 * drops what is buffered, and memory does not grow. */
static void test_no_newline_flood(void)
{
	int peer;
	cio_stream *s = pair_stream(&peer, 4096, 64);
	struct flood fl = { peer, (size_t)100 << 20 };
	cio_task_t t = cio_spawn(flood_main, &fl);
	const char *data;
	size_t seen = 0, len;
	long before = rss_kib();
	ssize_t n;

	while ((n = cio_stream_read_until(s, '\n', 0, &data)) == -EMSGSIZE) {
		cio_stream_peek(s, &len);
		CHECK_EQ(len, 4096);
		seen += len;
		cio_stream_consume(s, len);
	}
	CHECK_EQ(n, 0); /* the total is a multiple of the buffer: none left */
	CHECK_EQ(seen, fl.total);
	CHECK(rss_kib() - before < 2048);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(cio_stream_close(s), 0);
}

struct canceller {
	cio_task_t target;
	int64_t after;
};

static void *canceller_main(void *arg)
{
	struct canceller *c = arg;
	cio_sleep(c->after);
	CHECK_EQ(cio_cancel(c->target), 0);
	return NULL;
}

/* Cancel and a deadline in the middle of a line: the bytes that came stay
 * in the buffer, and the line reads whole afterwards. */
static void test_interrupted_line(void)
{
	int peer;
	cio_stream *s = pair_stream(&peer, 256, 64);
	const char *data;

	CHECK_EQ(cio_send_all(peer, "abc", 3, 0, NULL), 3);
	struct canceller c = { cio_self(), 20 * CIO_MS };
	cio_task_t t = cio_spawn(canceller_main, &c);
	CHECK_EQ(cio_stream_read_until(s, '\n', 0, &data), -ECANCELED);
	CHECK(cio_cancel_clear());
	CHECK_EQ(join_rc(t), 0);
	CHECK(strlen(cio_stream_error(s)) > 0);

	CHECK_EQ(cio_send_all(peer, "def", 3, 0, NULL), 3);
	CIO_WITH_TIMEOUT(20 * CIO_MS) {
		CHECK_EQ(cio_stream_read_until(s, '\n', 0, &data), -ETIMEDOUT);
	}
	CHECK_EQ(cio_send_all(peer, "ghi\n", 4, 0, NULL), 4);
	CHECK_EQ(cio_stream_read_until(s, '\n', 0, &data), 10);
	CHECK(memcmp(data, "abcdefghi\n", 10) == 0);
	CHECK_EQ(cio_close(peer), 0);
	CHECK_EQ(cio_stream_close(s), 0);
}

/* Half-close: our shutdown ends the peer's reading, and we read on. */
static void test_half_close(void)
{
	int peer;
	cio_stream *s = pair_stream(&peer, 256, 256);
	char buf[64];

	CHECK_EQ(cio_stream_put(s, "bye", 3), 3);
	CHECK_EQ(cio_stream_shutdown(s), 0);
	CHECK_EQ(cio_recv_exact(peer, buf, 3, 0, NULL), 3);
	CHECK(memcmp(buf, "bye", 3) == 0);
	CHECK_EQ(cio_recv(peer, buf, sizeof buf, 0), 0);
	CHECK_EQ(cio_send_all(peer, "still here", 10, 0, NULL), 10);
	CHECK_EQ(cio_close(peer), 0);
	CHECK_EQ(cio_stream_read_exact(s, buf, 10, NULL), 10);
	CHECK(memcmp(buf, "still here", 10) == 0);
	CHECK_EQ(cio_stream_read(s, buf, sizeof buf), 0);
	size_t moved = 99;
	CHECK_EQ(cio_stream_read_exact(s, buf, 1, &moved), -EPIPE);
	CHECK_EQ(moved, 0);
	CHECK_EQ(cio_stream_close(s), 0);
}

/* --- writing ------------------------------------------------------------- */

static void test_put_and_flush(void)
{
	int peer;
	cio_stream *s = pair_stream(&peer, 256, 256);
	char buf[512];

	/* Small puts wait in the buffer: nothing reaches the peer. */
	for (int i = 0; i < 10; i++)
		CHECK_EQ(cio_stream_put(s, "0123456789", 10), 10);
	CHECK_EQ(recv(peer, buf, sizeof buf, MSG_DONTWAIT), -1);
	CHECK_EQ(errno, EAGAIN);
	CHECK_EQ(cio_stream_flush(s), 0);
	CHECK_EQ(cio_recv_exact(peer, buf, 100, 0, NULL), 100);
	CHECK(memcmp(buf + 90, "0123456789", 10) == 0);
	/* A put longer than the room sends the buffer and the put: on a
	 * plain stream in one writev, all of it; on others the full
	 * buffer, then the rest. */
	char big[700];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)('a' + i % 26);
	CHECK_EQ(cio_stream_put(s, "<", 1), 1);
	cio_stats before, after;
	cio_stats_get(&before);
	CHECK_EQ(cio_stream_put(s, big, sizeof big), (ssize_t)sizeof big);
	cio_stats_get(&after);
	char got[701];
	if (!use_wrapped) {
		CHECK_EQ(after.ops_write - before.ops_write, 1);
		CHECK_EQ(recv(peer, got, sizeof got, MSG_DONTWAIT), (ssize_t)sizeof got);
		CHECK(got[0] == '<' && memcmp(got + 1, big, sizeof big) == 0);
		CHECK_EQ(cio_stream_put(s, "<", 1), 1);
		CHECK_EQ(cio_stream_put(s, big, sizeof big), (ssize_t)sizeof big);
	}
	CHECK_EQ(cio_stream_close(s), 0); /* close flushes */
	CHECK_EQ(cio_recv_exact(peer, got, sizeof got, 0, NULL), (ssize_t)sizeof got);
	CHECK(got[0] == '<' && memcmp(got + 1, big, sizeof big) == 0);
	CHECK_EQ(cio_recv(peer, got, 1, 0), 0);
	CHECK_EQ(cio_close(peer), 0);
}

/* cio__stream_fill_now(): what the socket holds, without waiting; an
 * error it meets is the next read's, not lost to it (a socket reports a
 * reset once, then the end of the stream). */
static void test_fill_now(void)
{
	int peer;
	cio_stream *s = pair_stream(&peer, 256, 256);
	char buf[64];

	CHECK_EQ(cio__stream_fill_now(s), -EAGAIN);
	CHECK_EQ(cio_send(peer, "0123456789", 10, 0), 10);
	size_t have;
	if (use_wrapped) {
		/* Not plain: it never reads. */
		CHECK_EQ(cio__stream_fill_now(s), -EAGAIN);
		CHECK_EQ(cio_stream_read(s, buf, sizeof buf), 10);
	} else {
		CHECK_EQ(cio__stream_fill_now(s), 10);
		cio_stream_peek(s, &have);
		CHECK_EQ(have, 10);
		CHECK_EQ(cio__stream_fill_now(s), -EAGAIN);
		CHECK_EQ(cio_stream_read(s, buf, sizeof buf), 10);
	}
	CHECK(memcmp(buf, "0123456789", 10) == 0);
	/* A caller past its deadline, or cancelled, reads nothing ahead,
	 * and what it met is not kept: the next read gets the bytes. */
	CHECK_EQ(cio_send(peer, "abc", 3, 0), 3);
	CIO_WITH_DEADLINE(cio_now() - 1) {
		CHECK_EQ(cio__stream_fill_now(s), -EAGAIN);
	}
	CHECK_EQ(cio_cancel(cio_self()), 0);
	CHECK_EQ(cio__stream_fill_now(s), -EAGAIN);
	CHECK(cio_cancel_clear());
	CHECK_EQ(cio_stream_read(s, buf, sizeof buf), 3);
	CHECK(memcmp(buf, "abc", 3) == 0);
	/* The peer closes with bytes it did not read: a reset. */
	CHECK_EQ(cio_stream_write_all(s, "unread", 6, NULL), 6);
	CHECK_EQ(cio_close(peer), 0);
	if (!use_wrapped)
		CHECK_EQ(cio__stream_fill_now(s), -ECONNRESET);
	CHECK_EQ(cio_stream_read(s, buf, sizeof buf), -ECONNRESET);
	CHECK_EQ(cio_stream_read(s, buf, sizeof buf), 0);
	CHECK_EQ(cio_stream_close(s), 0);
}

struct drain_peer {
	int fd;
	size_t expect;
	uint32_t seed;
	size_t got;
};

static void *drain_main(void *arg)
{
	struct drain_peer *d = arg;
	char buf[7000];
	ssize_t n;
	while ((n = cio_recv(d->fd, buf, sizeof buf, 0)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			CHECK_EQ((uint8_t)buf[i], pat(d->got + (size_t)i, d->seed));
		d->got += (size_t)n;
	}
	CHECK_EQ(n, 0);
	return NULL;
}

/* writev_all and write_all of patterned bytes behind a buffered head,
 * through a small socket buffer: short writes everywhere. */
static void test_vectored(void)
{
	int peer;
	cio_stream *s = pair_stream(&peer, 256, 1024);
	enum { N = 200, BIG = 4 << 20 };
	struct iovec iov[N];
	static uint8_t data[BIG];
	uint32_t seed = 7;
	size_t off = 0, moved;

	CHECK_EQ(cio_sock_buffers(cio_stream_fd(s), 0, 4096), 0);
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = pat(i, seed);
	struct drain_peer d = { peer, 0, seed, 0 };
	cio_task_t t = cio_spawn(drain_main, &d);

	CHECK_EQ(cio_stream_put(s, data, 10), 10);
	off = 10;
	for (int i = 0; i < N; i++) {
		size_t len = i % 3 == 0 ? 0 : (size_t)(i * 37 % 3000);
		iov[i] = (struct iovec){ data + off, len };
		off += len;
	}
	size_t want = off - 10;
	CHECK_EQ(cio_stream_writev_all(s, iov, N, &moved), (ssize_t)want);
	CHECK_EQ(moved, want);
	CHECK_EQ(cio_stream_write_all(s, data + off, BIG - off, &moved), (ssize_t)(BIG - off));
	CHECK_EQ(moved, BIG - off);
	CHECK_EQ(cio_stream_shutdown(s), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(d.got, (size_t)BIG);
	CHECK_EQ(cio_close(peer), 0);
	CHECK_EQ(cio_stream_close(s), 0);
}

/* Reads fd to its end into buf (up to cap bytes). */
struct collector {
	int fd;
	uint8_t *buf;
	size_t cap, got;
};

static void *collect_main(void *arg)
{
	struct collector *c = arg;
	while (c->got < c->cap) {
		ssize_t n = cio_recv(c->fd, c->buf + c->got, c->cap - c->got, 0);
		CHECK(n >= 0); /* else the writer would wait for us forever */
		if (n == 0)
			break;
		c->got += (size_t)n;
	}
	return NULL;
}

/* A write interrupted by a deadline (the peer reads nothing) leaves the
 * stream whole: the rest goes after it, and the peer gets every byte
 * once, in order. */
static void test_interrupted_write(void)
{
	int peer;
	cio_stream *s = pair_stream(&peer, 256, 1024);
	enum { LEN = 4 << 20 };
	static uint8_t data[LEN], got[LEN];
	size_t moved = 0;

	for (size_t i = 0; i < LEN; i++)
		data[i] = pat(i, 21);
	CHECK_EQ(cio_stream_put(s, data, 100), 100); /* buffered */
	CIO_WITH_TIMEOUT(20 * CIO_MS) {
		CHECK_EQ(cio_stream_write_all(s, data + 100, LEN - 100, &moved), -ETIMEDOUT);
	}
	CHECK(moved < LEN - 100);
	struct collector c = { peer, got, sizeof got, 0 };
	cio_task_t t = cio_spawn(collect_main, &c);
	size_t more;
	CHECK_EQ(cio_stream_write_all(s, data + 100 + moved, LEN - 100 - moved, &more),
		 (ssize_t)(LEN - 100 - moved));
	CHECK_EQ(cio_stream_shutdown(s), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(c.got, (size_t)LEN);
	CHECK(memcmp(got, data, LEN) == 0);
	CHECK_EQ(cio_close(peer), 0);
	CHECK_EQ(cio_stream_close(s), 0);
}

/* Small pieces, coalesced in the write buffer, interrupted by a deadline
 * while the peer reads nothing: *moved counts exactly what went, so a
 * retry from there sends each byte once. */
static void test_interrupted_writev(void)
{
	int peer;
	cio_stream *s = pair_stream(&peer, 256, 1024);
	enum { PIECE = 500, N = 8000, LEN = PIECE * N };
	static uint8_t data[LEN], got[LEN + 1];
	static struct iovec iov[N];
	size_t moved = 0, more = 0;

	for (size_t i = 0; i < LEN; i++)
		data[i] = pat(i, 23);
	for (int i = 0; i < N; i++)
		iov[i] = (struct iovec){ data + (size_t)i * PIECE, PIECE };
	CIO_WITH_TIMEOUT(20 * CIO_MS) {
		CHECK_EQ(cio_stream_writev_all(s, iov, N, &moved), -ETIMEDOUT);
	}
	CHECK(moved < LEN);
	struct collector c = { peer, got, sizeof got, 0 };
	cio_task_t t = cio_spawn(collect_main, &c);
	CHECK_EQ(cio_stream_write_all(s, data + moved, LEN - moved, &more),
		 (ssize_t)(LEN - moved));
	CHECK_EQ(cio_stream_shutdown(s), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(c.got, (size_t)LEN);
	CHECK(memcmp(got, data, LEN) == 0);
	CHECK_EQ(cio_close(peer), 0);
	CHECK_EQ(cio_stream_close(s), 0);
}

struct parked {
	cio_stream *s;
	ssize_t rc;
	bool done;
};

static void *parked_reader(void *arg)
{
	struct parked *p = arg;
	char buf[64];
	p->rc = cio_stream_read(p->s, buf, sizeof buf);
	p->done = true;
	return NULL;
}

static void *parked_writer(void *arg)
{
	struct parked *p = arg;
	static char buf[1 << 20];
	for (;;) {
		ssize_t n = cio_stream_write_all(p->s, buf, sizeof buf, NULL);
		if (n < 0) {
			p->rc = n;
			break;
		}
	}
	p->done = true;
	return NULL;
}

/* A close while other tasks are parked in calls on the stream (a reader,
 * and a writer on a peer that reads nothing) wakes them with -EBADF and
 * frees nothing under them. */
static void test_close_under_calls(void)
{
	int peer;
	cio_stream *s = pair_stream(&peer, 256, 256);
	struct parked r = { s, 0, false }, w = { s, 0, false };
	cio_task_t tr = cio_spawn(parked_reader, &r), tw = cio_spawn(parked_writer, &w);
	cio_sleep(20 * CIO_MS);
	CHECK(!r.done && !w.done);
	CHECK_EQ(cio_stream_close(s), 0);
	CHECK(r.done && w.done);
	CHECK_EQ(join_rc(tr), 0);
	CHECK_EQ(join_rc(tw), 0);
	CHECK_EQ(r.rc, -EBADF);
	CHECK_EQ(w.rc, -EBADF);
	CHECK_EQ(cio_close(peer), 0);
}

/* A reset peer: the write fails, and the error stays. */
static void test_sticky_error(void)
{
	int fds[2];
	tcp_pair(fds);
	cio_stream *s = stream_on(fds[0], 256, 256);
	char buf[4096] = { 0 };
	ssize_t n = 0;

	linger0(fds[1]);
	CHECK_EQ(cio_close(fds[1]), 0);
	for (int i = 0; i < 100 && n >= 0; i++)
		n = cio_stream_write_all(s, buf, sizeof buf, NULL);
	CHECK(n == -ECONNRESET || n == -EPIPE);
	CHECK_EQ(cio_stream_put(s, "x", 1), n);
	CHECK_EQ(cio_stream_flush(s), (int)n);
	CHECK(strcmp(cio_stream_error(s), cio_strerror((int)n)) == 0);
	CHECK_EQ(cio_stream_close(s), 0); /* nothing left to flush */
}

/* --- zero-copy paths ----------------------------------------------------- */

static void test_sendfile(void)
{
	char path[] = "/tmp/coreio-stream-XXXXXX";
	int file = mkstemp(path);
	CHECK(file >= 0);
	CHECK_EQ(unlink(path), 0);
	enum { LEN = 300000 };
	static uint8_t data[LEN], got[LEN + 100];
	for (size_t i = 0; i < LEN; i++)
		data[i] = pat(i, 3);
	CHECK_EQ(write(file, data, LEN), LEN);

	int peer;
	cio_stream *s = pair_stream(&peer, 256, 4096);
	struct collector c = { peer, got, sizeof got, 0 };
	cio_task_t t = cio_spawn(collect_main, &c);
	size_t moved;
	CHECK_EQ(cio_stream_put(s, "HDR:", 4), 4);
	CHECK_EQ(cio_stream_sendfile(s, file, 1000, LEN - 1000, &moved), LEN - 1000);
	CHECK_EQ(moved, LEN - 1000);
	/* Past the end of the file: fewer bytes. */
	CHECK_EQ(cio_stream_sendfile(s, file, LEN - 10, 100, &moved), 10);
	CHECK_EQ(moved, 10);
	CHECK_EQ(cio_stream_shutdown(s), 0);
	CHECK_EQ(join_rc(t), 0);
	CHECK_EQ(c.got, 4 + (LEN - 1000) + 10);
	CHECK(memcmp(got, "HDR:", 4) == 0);
	CHECK(memcmp(got + 4, data + 1000, LEN - 1000) == 0);
	CHECK(memcmp(got + 4 + LEN - 1000, data + LEN - 10, 10) == 0);
	CHECK_EQ(cio_close(peer), 0);
	CHECK_EQ(cio_stream_close(s), 0);
	CHECK_EQ(close(file), 0);
}

/* Relay between a client's stream and an upstream's, each with bytes
 * already buffered: they go first, then the rest, both ways, and the
 * half-close passes through. */
static void test_relay(void)
{
	int client[2], upstream[2];
	tcp_pair(client);
	tcp_pair(upstream);
	cio_stream *a = stream_on(client[1], 1024, 1024);
	cio_stream *b = stream_on(upstream[1], 1024, 1024);
	enum { LEN = 1 << 20 };
	static uint8_t up[LEN], down[LEN], got_up[LEN + 1], got_down[LEN + 1];
	for (size_t i = 0; i < LEN; i++) {
		up[i] = pat(i, 11);
		down[i] = pat(i, 12);
	}
	/* The first bytes each way arrive before the relay starts. */
	CHECK_EQ(cio_send_all(client[0], up, 100, 0, NULL), 100);
	CHECK_EQ(cio_send_all(upstream[0], down, 50, 0, NULL), 50);
	CHECK_EQ(cio_stream_fill(a, 100), 100);
	CHECK_EQ(cio_stream_fill(b, 50), 50);

	struct sender su = { client[0], (const char *)up + 100, LEN - 100, 65536, 0, END_SHUTDOWN };
	struct sender sdn = { upstream[0], (const char *)down + 50, LEN - 50, 65536, 0, END_SHUTDOWN };
	struct collector cu = { upstream[0], got_up, sizeof got_up, 0 };
	struct collector cd = { client[0], got_down, sizeof got_down, 0 };
	cio_task_t t1 = cio_spawn(sender_main, &su), t2 = cio_spawn(sender_main, &sdn);
	cio_task_t t3 = cio_spawn(collect_main, &cu), t4 = cio_spawn(collect_main, &cd);

	/* The senders end their halves once all is sent; the relay passes
	 * each end on, and ends when both have. */
	cio_relay_stats st;
	CHECK_EQ(cio_stream_relay(a, b, NULL, &st), 0);
	CHECK_EQ(join_rc(t1), 0);
	CHECK_EQ(join_rc(t2), 0);
	CHECK_EQ(st.a_to_b, LEN);
	CHECK_EQ(st.b_to_a, LEN);
	CHECK_EQ(join_rc(t3), 0);
	CHECK_EQ(join_rc(t4), 0);
	CHECK_EQ(cu.got, LEN);
	CHECK_EQ(cd.got, LEN);
	CHECK(memcmp(got_up, up, LEN) == 0);
	CHECK(memcmp(got_down, down, LEN) == 0);
	CHECK_EQ(cio_stream_close(a), 0);
	CHECK_EQ(cio_stream_close(b), 0);
	CHECK_EQ(cio_close(client[0]), 0);
	CHECK_EQ(cio_close(upstream[0]), 0);
}

/* The idle limit ends a relay where nothing moves. */
static void test_relay_idle(void)
{
	int client[2], upstream[2];
	tcp_pair(client);
	tcp_pair(upstream);
	cio_stream *a = stream_on(client[1], 1024, 1024);
	cio_stream *b = stream_on(upstream[1], 1024, 1024);
	cio_relay_opts o = { .idle_timeout = 30 * CIO_MS };
	int64_t t0 = cio_now();
	CHECK_EQ(cio_stream_relay(a, b, &o, NULL), -ETIMEDOUT);
	CHECK(cio_now() - t0 >= 30 * CIO_MS);
	CHECK_EQ(cio_stream_close(a), 0);
	CHECK_EQ(cio_stream_close(b), 0);
	CHECK_EQ(cio_close(client[0]), 0);
	CHECK_EQ(cio_close(upstream[0]), 0);
}

/* --- the rest ------------------------------------------------------------ */

static void test_addresses_and_misuse(void)
{
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	cio_addr la, ca, sa, pa;
	char t1[64], t2[64];
	CHECK_EQ(cio_local_addr(lfd, &la), 0);
	CHECK(cio_addr_format(&la, t1, sizeof t1) > 0);
	int c = cio_connect(t1, 0);
	CHECK(c >= 0);
	int sfd = cio_accept(lfd, NULL);
	CHECK(sfd >= 0);
	CHECK_EQ(cio_local_addr(c, &ca), 0);
	CHECK_EQ(cio_peer_addr(sfd, &pa), 0);
	CHECK(cio_addr_format(&ca, t1, sizeof t1) > 0);
	CHECK(cio_addr_format(&pa, t2, sizeof t2) > 0);
	CHECK(strcmp(t1, t2) == 0);
	CHECK_EQ(cio_peer_addr(c, &sa), 0);
	CHECK_EQ(cio_local_addr(sfd, &pa), 0);
	CHECK(cio_addr_format(&sa, t1, sizeof t1) > 0);
	CHECK(cio_addr_format(&pa, t2, sizeof t2) > 0);
	CHECK(strcmp(t1, t2) == 0);
	CHECK_EQ(cio_peer_addr(lfd, &sa), -ENOTCONN);
	CHECK_EQ(cio_local_addr(-1, &sa), -EBADF);

	/* A bad size closes the fd it was given. */
	cio_stream *s = (cio_stream *)1;
	cio_stream_opts tiny = { 10, 0 };
	CHECK_EQ(cio_stream_new(&s, c, &tiny), -EINVAL);
	CHECK(s == NULL);
	CHECK_EQ(cio_close(c), -EBADF);
	CHECK_EQ(cio_stream_new(&s, -1, NULL), -EINVAL);
	CHECK_EQ(cio_stream_new(&s, sfd, NULL), 0);
	CHECK_EQ(cio_stream_fd(s), sfd);
	CHECK(strcmp(cio_stream_error(s), "") == 0);
	CHECK_EQ(cio_stream_close(s), 0);
	CHECK_EQ(cio_stream_close(NULL), 0);
	CHECK_EQ(cio_close(lfd), 0);
}

/* A case runs over both transports: plain, then wrapped. */
static void both(const char *name, void (*fn)(void))
{
	for (int pass = 0; pass < 2; pass++) {
		use_wrapped = pass == 1;
		fprintf(stderr, "%s: backend %s, %s transport\n", name, cio_backend_name(),
			use_wrapped ? "wrapped" : "plain");
		fn();
	}
	use_wrapped = false;
}
#define BOTH(f) both(#f, f)

static void *test_main(void *arg)
{
	(void)arg;
	TEST_CASE(lines_split, BOTH(test_lines_split));
	TEST_CASE(line_limit, BOTH(test_line_limit));
	TEST_CASE(no_newline_flood, BOTH(test_no_newline_flood));
	TEST_CASE(interrupted_line, BOTH(test_interrupted_line));
	TEST_CASE(half_close, BOTH(test_half_close));
	TEST_CASE(put_and_flush, BOTH(test_put_and_flush));
	TEST_CASE(fill_now, BOTH(test_fill_now));
	TEST_CASE(vectored, BOTH(test_vectored));
	TEST_CASE(interrupted_write, BOTH(test_interrupted_write));
	TEST_CASE(interrupted_writev, BOTH(test_interrupted_writev));
	TEST_CASE(close_under_calls, BOTH(test_close_under_calls));
	TEST_CASE(sticky_error, BOTH(test_sticky_error));
	TEST_CASE(sendfile, BOTH(test_sendfile));
	TEST_CASE(relay, BOTH(test_relay));
	TEST_CASE(relay_idle, BOTH(test_relay_idle));
	TEST_CASE(addresses_and_misuse, test_addresses_and_misuse());
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	net_seed_from_env();
	int rc = test_run(test_main, NULL);
	return rc ? rc : test_cases_end();
}
