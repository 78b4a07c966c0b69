/* fuzz_stream.c - libFuzzer target for a stream's reading calls
 * (cio_stream_read_line(), _read_until(), _read(), _read_exact(), _fill()
 * with peek and consume) over fuzzed bytes that arrive in fuzzed pieces.
 *
 * One task writes the bytes into one end of a socketpair, a piece at a
 * time with a yield between pieces, then shuts its side down; another
 * reads the other end through a stream with a small read buffer, in a
 * sequence of calls and limits the input picks, and checks every result
 * against the bytes it knows were sent: each byte comes back once, in
 * order, and every -EMSGSIZE, -EPIPE, end of stream and line end is the
 * one the contract in coreio.h promises.
 *
 * Input: 8 control bytes (read buffer size, then piece sizes and calls,
 * taken in turn), then the bytes to send.  Each input runs as a task of
 * the process's runtime (fuzz_rt.c). */
#include "fuzz_rt.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define NCTL 8
#define FAIL(...) (fprintf(stderr, "fuzz_stream: " __VA_ARGS__), fputc('\n', stderr), abort())

struct run {
	const uint8_t *ctl;
	const uint8_t *data;
	size_t size;
	size_t rcap;
	int fds[2];
	unsigned k; /* next control byte */
	size_t pos; /* bytes of data the reader has been given */
};

static unsigned next_ctl(struct run *r)
{
	unsigned k = r->k++;
	/* Each round of the control bytes differs from the one before. */
	return (r->ctl[k % NCTL] ^ (k / NCTL)) & 0xff;
}

static void *writer(void *arg)
{
	struct run *r = arg;
	size_t off = 0;
	unsigned i = 0;
	while (off < r->size) {
		size_t piece = 1 + (r->ctl[1 + i % (NCTL - 1)] % 97) * (i % 3 ? 1 : 7);
		i++;
		if (piece > r->size - off)
			piece = r->size - off;
		if (cio_send_all(r->fds[0], r->data + off, piece, 0, NULL) != (ssize_t)piece)
			FAIL("send failed");
		off += piece;
		cio_yield();
	}
	cio_shutdown(r->fds[0], SHUT_WR);
	return NULL;
}

static void expect(struct run *r, const void *got, size_t n, const char *call)
{
	if (n > r->size - r->pos || (n && memcmp(got, r->data + r->pos, n) != 0))
		FAIL("%s gave %zu bytes at %zu that were not sent there", call, n, r->pos);
}

/* The first delim in data[pos, pos + max) or NULL. */
static const uint8_t *find(struct run *r, int delim, size_t max)
{
	size_t left = r->size - r->pos;
	return memchr(r->data + r->pos, delim, max < left ? max : left);
}

/* What read_until's -EMSGSIZE / -EPIPE / 0 mean, checked. */
static void until_fail(cio_stream *s, struct run *r, ssize_t n, int delim, size_t limit,
		       const char *call)
{
	size_t left = r->size - r->pos, have;
	const void *p = cio_stream_peek(s, &have);
	if (limit > r->rcap) {
		if (n != -EINVAL)
			FAIL("%s with limit %zu > %zu: %zd", call, limit, r->rcap, n);
		return;
	}
	if (n == -EMSGSIZE) {
		if (left < limit || find(r, delim, limit))
			FAIL("%s: -EMSGSIZE at %zu but limit %zu reaches a delim or the end", call, r->pos, limit);
		if (have < limit)
			FAIL("%s: -EMSGSIZE with %zu bytes buffered < limit %zu", call, have, limit);
	} else if (n == -EPIPE) {
		if (left >= limit || find(r, delim, left) || have != left)
			FAIL("%s: -EPIPE at %zu of %zu (limit %zu, %zu buffered)", call, r->pos, r->size, limit, have);
	} else if (n == 0) {
		if (left != 0)
			FAIL("%s: end of stream at %zu of %zu", call, r->pos, r->size);
		return;
	} else {
		FAIL("%s: %zd", call, n);
	}
	expect(r, p, have, "peek");
}

static void *reader(void *arg)
{
	struct run *r = arg;
	cio_stream *s;
	char buf[4096];
	size_t steps = 0, max_steps = 4 * r->size + 64;
	bool done = false;

	if (cio_stream_new(&s, r->fds[1], &(cio_stream_opts){.read_buf = r->rcap}) != 0)
		FAIL("stream_new");
	while (!done && steps++ < max_steps) {
		unsigned op = next_ctl(r);
		size_t arg1 = next_ctl(r);
		/* 0 (the buffer's size), up to one past the buffer's size. */
		size_t limit = arg1 % 8 == 0 ? 0 : arg1 * (r->rcap + 1) / 255;
		size_t eff = limit ? limit : r->rcap;
		const char *line;
		ssize_t n;

		switch (op % 6) {
		case 0:
		case 1: /* read_line */
			n = cio_stream_read_line(s, limit, &line);
			if (n >= 0 && line) {
				const uint8_t *end = r->data + r->pos + n;
				expect(r, line, (size_t)n, "read_line");
				if (line[n] != '\0' || memchr(line, '\n', (size_t)n))
					FAIL("read_line: a line of %zd with a NUL or LF in the wrong place", n);
				size_t used = (size_t)n + 1;
				if (end < r->data + r->size && *end == '\n') {
					if (n > 0 && line[n - 1] == '\r')
						FAIL("read_line kept the CR of a CRLF");
				} else if (end + 1 < r->data + r->size && end[0] == '\r' && end[1] == '\n') {
					used++;
				} else {
					FAIL("read_line: a line of %zd at %zu not ended by LF or CRLF", n, r->pos);
				}
				if (used > eff)
					FAIL("read_line: %zu bytes over limit %zu", used, eff);
				r->pos += used;
			} else {
				until_fail(s, r, n, '\n', eff, "read_line");
				done = n == 0;
			}
			break;
		case 2: { /* read_until another delimiter */
			int delim = (int)(op >> 3) % 4 == 0 ? '\n' : r->ctl[0] ^ (int)(op & 0xf8);
			n = cio_stream_read_until(s, delim, limit, &line);
			if (n > 0) {
				expect(r, line, (size_t)n, "read_until");
				if ((unsigned char)line[n - 1] != (unsigned char)delim ||
				    memchr(line, delim, (size_t)n - 1) || (size_t)n > eff)
					FAIL("read_until: %zd bytes not ending at the first delim", n);
				r->pos += (size_t)n;
			} else {
				until_fail(s, r, n, delim, eff, "read_until");
				done = n == 0;
			}
			break;
		}
		case 3: { /* read */
			size_t len = 1 + arg1 * 3;
			n = cio_stream_read(s, buf, len);
			if (n < 0 || (size_t)n > len)
				FAIL("read: %zd", n);
			expect(r, buf, (size_t)n, "read");
			r->pos += (size_t)n;
			done = n == 0;
			if (done && r->pos != r->size)
				FAIL("read: end of stream at %zu of %zu", r->pos, r->size);
			break;
		}
		case 4: { /* read_exact */
			size_t len = 1 + arg1 * 7, moved = 0;
			n = cio_stream_read_exact(s, buf, len, &moved);
			expect(r, buf, moved, "read_exact");
			r->pos += moved;
			if (n == (ssize_t)len ? moved != len : n != -EPIPE || r->pos != r->size)
				FAIL("read_exact(%zu): %zd, moved %zu", len, n, moved);
			done = n < 0;
			break;
		}
		case 5: { /* fill, peek, consume */
			size_t min = limit, have;
			n = cio_stream_fill(s, min);
			if (min > r->rcap) {
				if (n != -EINVAL)
					FAIL("fill(%zu) over a buffer of %zu: %zd", min, r->rcap, n);
				break;
			}
			const void *p = cio_stream_peek(s, &have);
			if (n < 0 || (size_t)n != have)
				FAIL("fill(%zu): %zd with %zu buffered", min, n, have);
			if ((size_t)n < (min ? min : 1) && r->pos + have != r->size)
				FAIL("fill(%zu): %zd before the end", min, n);
			expect(r, p, have, "peek");
			size_t drop = (op >> 3) % 3 == 0 ? have + 5 : (have * (op >> 3)) / 32;
			cio_stream_consume(s, drop);
			r->pos += drop < have ? drop : have;
			done = n == 0;
			break;
		}
		}
	}
	/* Whatever the calls left: drain to the end. */
	for (;;) {
		ssize_t n = cio_stream_read(s, buf, sizeof buf);
		if (n < 0)
			FAIL("drain: %zd", n);
		expect(r, buf, (size_t)n, "drain");
		r->pos += (size_t)n;
		if (n == 0)
			break;
	}
	if (r->pos != r->size)
		FAIL("the stream ended at %zu of %zu", r->pos, r->size);
	cio_stream_close(s);
	return NULL;
}

static void *fuzz_main(void *arg)
{
	struct run *r = arg;
	if (cio_socketpair(SOCK_STREAM, r->fds) != 0)
		FAIL("socketpair");
	cio_task_t w = cio_spawn(writer, r);
	cio_task_t rd = cio_spawn(reader, r);
	if (w < 0 || rd < 0)
		FAIL("spawn");
	cio_join(w, NULL);
	cio_join(rd, NULL);
	cio_close(r->fds[0]);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < NCTL)
		return 0;
	struct run r = {.ctl = data, .data = data + NCTL, .size = size - NCTL};
	r.rcap = 64 + (size_t)data[0] * 4; /* 64 to 1084 bytes */
	fuzz_rt_run(fuzz_main, &r);
	return 0;
}
