/* fuzz_tls.c - libFuzzer target for TLS on a fuzzed peer: the input is
 * the peer's ciphertext, sent in fuzzed pieces over a socketpair to a
 * coreio TLS server (cio_stream_tls_accept()) or client
 * (cio_stream_tls_connect(), verifying against the test CA with SNI),
 * which does its handshake and then reads (read_line, read, read_exact,
 * fill/peek/consume, with limits the input picks) and writes a little.
 *
 * Checked: every call returns what coreio.h documents for it (bytes, 0,
 * -EMSGSIZE, -EINVAL for a limit over the buffer, or a connection error:
 * -EPROTO with a reason in cio_stream_error(), -EPIPE, -ECONNRESET); a
 * failed handshake or connection answers the next call with its error
 * again; no crash, no sanitizer report, no task or fd left (fuzz_rt.c).
 * The peer always ends its side after its bytes, so nothing may wait for
 * the handshake deadline (2 s): a -ETIMEDOUT is reported as a hang.
 *
 * Random bytes never make a TLS record, so the seeds (corpus/tls) are
 * real sessions recorded by fuzz_tls_seeds.c; OpenSSL's randomness is
 * repeatable per input (tls_fixture.c), so the endpoint derives the
 * recorder's keys and the seeds reach past the handshake.
 *
 * Input: a mode byte (tls_fixture.h: client or server, versions, peek
 * before the handshake, abrupt peer), 8 control bytes (read buffer size,
 * then piece sizes and calls, taken in turn), then the peer's bytes. */
#include "fuzz_rt.h"
#include "tls_fixture.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define NCTL 8
/* FUZZ_TLS_VERBOSE=1: what each input's calls returned, on stderr. */
static bool verbose;
#define SAY(...) (verbose ? (void)fprintf(stderr, "fuzz_tls: " __VA_ARGS__) : (void)0)
#define FAIL(...) (fprintf(stderr, "fuzz_tls: " __VA_ARGS__), fputc('\n', stderr), abort())

struct run {
	unsigned mode;
	const uint8_t *ctl;
	const uint8_t *data;
	size_t size;
	size_t rcap;
	int fds[2];
	unsigned k; /* next control byte */
};

static unsigned next_ctl(struct run *r)
{
	unsigned k = r->k++;
	return (r->ctl[k % NCTL] ^ (k / NCTL)) & 0xff;
}

/* The peer: its bytes in pieces, then the end of its side. */
static void *peer_writer(void *arg)
{
	struct run *r = arg;
	size_t off = 0;
	unsigned i = 0;
	while (off < r->size) {
		size_t piece = 1 + (r->ctl[1 + i % (NCTL - 1)] % 97) * (i % 3 ? 1 : 7);
		i++;
		if (piece > r->size - off)
			piece = r->size - off;
		/* The endpoint may have given up and closed: fine. */
		if (cio_send_all(r->fds[0], r->data + off, piece, 0, NULL) != (ssize_t)piece)
			break;
		off += piece;
		cio_yield();
	}
	cio_shutdown(r->fds[0], r->mode & MODE_ABRUPT ? SHUT_RDWR : SHUT_WR);
	return NULL;
}

/* The peer reads what the endpoint sends, so that its writes never wait. */
static void *peer_drain(void *arg)
{
	struct run *r = arg;
	char buf[4096];
	while (cio_recv(r->fds[0], buf, sizeof buf, 0) > 0)
		;
	return NULL;
}

/* A connection error, as documented: sticky, with words. */
static void conn_err(cio_stream *s, ssize_t rc, const char *call)
{
	if (rc == -ETIMEDOUT)
		FAIL("%s: -ETIMEDOUT though the peer had ended its side (%s)", call,
		     cio_stream_error(s));
	if (rc != -EPROTO && rc != -EPIPE && rc != -ECONNRESET)
		FAIL("%s: %zd (%s)", call, rc, cio_stream_error(s));
	if (!cio_stream_error(s)[0])
		FAIL("%s: %zd with no words in cio_stream_error()", call, rc);
}

/* The reads and writes of an established session. */
static void session(struct run *r, cio_stream *s)
{
	char buf[4096];
	size_t steps = 0, max_steps = r->size / 8 + 16;
	ssize_t ended = 1; /* what reading ended with: 0 or an error */

	while (steps++ < max_steps) {
		unsigned op = next_ctl(r);
		size_t arg1 = next_ctl(r);
		size_t limit = arg1 % 8 == 0 ? 0 : arg1 * (r->rcap + 1) / 255;
		size_t eff = limit ? limit : r->rcap;
		const char *line;
		ssize_t n;

		switch (op % 6) {
		case 0:
		case 1:
			n = cio_stream_read_line(s, limit, &line);
			if (limit > r->rcap) {
				if (n != -EINVAL)
					FAIL("read_line with limit %zu > %zu: %zd", limit, r->rcap, n);
				continue;
			}
			if (n >= 0) {
				if (!line) {
					if (n != 0)
						FAIL("read_line: %zd without a line", n);
					ended = 0;
				} else if ((size_t)n >= eff || line[n] != '\0' ||
					   memchr(line, '\n', (size_t)n)) {
					FAIL("read_line: a line of %zd over limit %zu or with its LF", n, eff);
				}
			} else if (n == -EMSGSIZE) {
				size_t have;
				cio_stream_peek(s, &have);
				if (have < eff)
					FAIL("read_line: -EMSGSIZE with %zu < %zu buffered", have, eff);
				cio_stream_consume(s, have);
			} else if (n == -EPIPE && cio_stream_peek(s, &(size_t){0})) {
				/* A last line without its LF: dropped. */
				cio_stream_consume(s, SIZE_MAX);
				ended = n;
			} else {
				conn_err(s, n, "read_line");
				ended = n;
			}
			break;
		case 2: {
			size_t len = 1 + arg1 * 13;
			n = cio_stream_read(s, buf, len);
			if (n > (ssize_t)len)
				FAIL("read(%zu): %zd", len, n);
			if (n <= 0) {
				if (n < 0)
					conn_err(s, n, "read");
				ended = n;
			}
			break;
		}
		case 3: {
			size_t len = 1 + arg1 * 7, moved = 0;
			n = cio_stream_read_exact(s, buf, len, &moved);
			if (n == (ssize_t)len ? moved != len : n >= 0 || moved >= len)
				FAIL("read_exact(%zu): %zd, moved %zu", len, n, moved);
			if (n < 0) {
				/* The end before len bytes is -EPIPE, a
				 * close_notify's as a truncation's. */
				conn_err(s, n, "read_exact");
				ended = n;
			}
			break;
		}
		case 4: {
			int len = snprintf(buf, sizeof buf, "step %zu\r\n", steps);
			n = cio_stream_write_all(s, buf, (size_t)len, NULL);
			if (n >= 0 && (op & 0x40)) {
				int f = cio_stream_flush(s);
				n = f == 0 ? len : f;
			}
			if (n != len)
				conn_err(s, n, "write_all");
			break;
		}
		case 5: {
			size_t have;
			n = cio_stream_fill(s, limit);
			if (limit > r->rcap) {
				if (n != -EINVAL)
					FAIL("fill(%zu) over a buffer of %zu: %zd", limit, r->rcap, n);
				continue;
			}
			cio_stream_peek(s, &have);
			if (n < 0) {
				conn_err(s, n, "fill");
				ended = n;
			} else if ((size_t)n != have) {
				FAIL("fill(%zu): %zd with %zu buffered", limit, n, have);
			} else if (n == 0) {
				ended = 0;
			}
			cio_stream_consume(s, (op >> 3) % 3 == 0 ? have + 5 : (have * (op >> 3)) / 32);
			break;
		}
		}
		SAY("  op %u limit %zu: %zd %s\n", op % 6, limit, n, n < 0 ? cio_stream_error(s) : "");
		if (ended <= 0)
			break;
	}
	if (ended > 0)
		return;
	/* Reading ended: it stays ended, with the same answer; a -EPIPE of
	 * read_line or read_exact may be a close_notify's end (0) too. */
	cio_stream_consume(s, SIZE_MAX);
	ssize_t again = cio_stream_read(s, buf, sizeof buf);
	if (again != ended && !(ended == -EPIPE && again == 0))
		FAIL("a read after the end (%zd) returned %zd", ended, again);
}

static void *endpoint(void *arg)
{
	struct run *r = arg;
	bool client = r->mode & MODE_CLIENT;
	int vers = MODE_VERS(r->mode);
	cio_stream *s;
	char buf[64];

	fx_rand_bind(cio_self(), client ? FX_SEED_CLIENT : FX_SEED_SERVER);
	if (cio_stream_new(&s, r->fds[1], &(cio_stream_opts){.read_buf = r->rcap}) != 0)
		FAIL("stream_new");
	int rc = 0;
	if (!client && (r->mode & MODE_PEEK)) {
		/* A server that looks before it decides on TLS: the bytes
		 * read ahead are the ClientHello's first. */
		ssize_t n = cio_stream_fill(s, r->ctl[0] % 16);
		if (n < 0)
			conn_err(s, n, "fill before the handshake");
	}
	rc = client ? cio_stream_tls_connect(s, fx_client_ctx(vers), FX_NAME)
		    : cio_stream_tls_accept(s, fx_server_ctx(vers));
	SAY("%s handshake: %d %s\n", client ? "client" : "server", rc, cio_stream_error(s));
	if (rc != 0) {
		if (rc == -ETIMEDOUT || (rc != -EPROTO && rc != -ECONNRESET))
			FAIL("handshake: %d (%s)", rc, cio_stream_error(s));
		conn_err(s, rc, "handshake");
		/* After a failed handshake every call fails with its error. */
		if (cio_stream_read(s, buf, sizeof buf) != rc ||
		    cio_stream_write_all(s, "x", 1, NULL) != rc)
			FAIL("calls after a failed handshake (%d) do not fail with it", rc);
	} else {
		const char *v = cio_stream_tls_version(s);
		const char *alpn = cio_stream_tls_alpn(s);
		if (!v || (strcmp(v, "TLSv1.2") && strcmp(v, "TLSv1.3")) ||
		    (vers == 1 && strcmp(v, "TLSv1.2")) || (vers == 2 && strcmp(v, "TLSv1.3")))
			FAIL("version %s with version choice %d", v ? v : "NULL", vers);
		if (alpn && strcmp(alpn, "http/1.1") && (client || strcmp(alpn, "h2")))
			FAIL("ALPN %s was not offered", alpn);
		if (client) {
			char subj[256];
			if (cio_stream_tls_verify_result(s) != 0 ||
			    cio_stream_tls_peer_subject(s, subj, sizeof subj) < 0 ||
			    !strstr(subj, "CN = " FX_NAME))
				FAIL("a client handshake passed a certificate not for " FX_NAME);
		}
		session(r, s);
	}
	fx_rand_unbind(cio_self());
	cio_stream_close(s);
	return NULL;
}

static void *fuzz_main(void *arg)
{
	struct run *r = arg;
	if (cio_socketpair(SOCK_STREAM, r->fds) != 0)
		FAIL("socketpair");
	cio_task_t w = cio_spawn(peer_writer, r);
	cio_task_t d = cio_spawn(peer_drain, r);
	cio_task_t e = cio_spawn(endpoint, r);
	if (w < 0 || d < 0 || e < 0)
		FAIL("spawn");
	cio_join(e, NULL);
	cio_join(w, NULL);
	cio_join(d, NULL);
	cio_close(r->fds[0]);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 + NCTL)
		return 0;
	verbose = getenv("FUZZ_TLS_VERBOSE") != NULL;
	struct run r = {.mode = data[0], .ctl = data + 1, .data = data + 1 + NCTL,
			.size = size - 1 - NCTL};
	r.rcap = 64 + (size_t)data[1] * 4; /* 64 to 1084 bytes */
	fuzz_rt_run(fuzz_main, &r);
	return 0;
}
