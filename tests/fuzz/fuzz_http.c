/* fuzz_http.c - libFuzzer target for the HTTP/1.1 server: the input is
 * what a client sends on one connection, cio_http_serve_conn() serves the
 * other end, and a client-side reader takes the responses apart.
 *
 * One task writes the bytes into a socketpair in pieces (sizes from the
 * input's first two bytes, a yield between them) and shuts its side down;
 * one serves the other end with short timeouts; one reads every response.
 * The handler picks what it does from the request target's second byte:
 * read the whole body and echo it, stream it back (chunked, or
 * close-delimited for HTTP/1.0), announce a length, fail, set a status
 * (204, 304 too), copy the request's fields into the response, send a
 * file, or answer without reading the body: '/h' echoes, '/a' streams,
 * '/b' announces a length (an odd number: from a file), '/c' fails,
 * '/d' sets a status, '/e' copies fields, '/f' fails halfway, '/g' leaves
 * the body; the digits after that letter are the handler's number.  Checked: the server returns an error it
 * documents; every response is "HTTP/1.1 NNN " with fields that are
 * token ":" value and framing that parses (Content-Length or chunks); as
 * many final responses as handlers that ended theirs; nothing leaks.
 * Each input runs as a task of the process's runtime (fuzz_rt.c). */
#include "fuzz_rt.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define FAIL(...) (fprintf(stderr, "fuzz_http: " __VA_ARGS__), fputc('\n', stderr), abort())
#define MAX_CALLS 256

struct call {
	bool head;  /* a HEAD request: its response has no body */
	bool ended; /* the handler's response ended (resp_end returned 0) */
};

struct run {
	const uint8_t *ctl;
	const uint8_t *data;
	size_t size;
	int fds[2];
	int file; /* 20000 bytes for cio_http_resp_sendfile() */
	int serve_rc;
	struct call calls[MAX_CALLS];
	size_t ncalls;
	char *out; /* every byte the server sent */
	size_t out_len, out_cap;
};

static void *writer(void *arg)
{
	struct run *r = arg;
	size_t off = 0;
	unsigned i = 0;
	while (off < r->size) {
		size_t piece = 1 + (size_t)r->ctl[i & 1] * (i % 4 ? 1 : 13);
		i++;
		if (piece > r->size - off)
			piece = r->size - off;
		if (cio_send_all(r->fds[0], r->data + off, piece, 0, NULL) < 0)
			break; /* the server closed: the rest goes nowhere */
		off += piece;
		cio_yield();
	}
	cio_shutdown(r->fds[0], SHUT_WR);
	return NULL;
}

static void *reader(void *arg)
{
	struct run *r = arg;
	for (;;) {
		if (r->out_cap - r->out_len < 4096) {
			r->out_cap = r->out_cap ? 2 * r->out_cap : 16384;
			r->out = realloc(r->out, r->out_cap);
			if (!r->out)
				FAIL("out of memory");
		}
		ssize_t n = cio_recv(r->fds[0], r->out + r->out_len, r->out_cap - r->out_len, 0);
		if (n == 0 || n == -ECONNRESET)
			break;
		if (n < 0)
			FAIL("client recv: %zd", n);
		r->out_len += (size_t)n;
	}
	return NULL;
}

static int handler(cio_http_req *req, cio_http_resp *resp, void *arg)
{
	struct run *r = arg;
	const char *target = cio_http_req_target(req);
	const char *method = cio_http_req_method(req);
	struct call *c = r->ncalls < MAX_CALLS ? &r->calls[r->ncalls] : NULL;
	char buf[512];
	const char *body;
	ssize_t n;
	int rc = 0;

	if (!target || !method || !c)
		FAIL("no target, no method, or too many requests");
	r->ncalls++;
	c->head = strcmp(method, "HEAD") == 0;
	int v = cio_http_req_version(req);
	if (v != 10 && v != 11)
		FAIL("version %d", v);
	size_t nf = cio_http_req_header_count(req);
	for (size_t i = 0; i < nf; i++) {
		const char *name, *value;
		if (cio_http_req_header_at(req, i, &name, &value) != 0 || !name || !value)
			FAIL("header %zu of %zu", i, nf);
	}
	/* The framing as the handler sees it, against the fields. */
	int64_t clen = cio_http_req_content_length(req);
	const char *te = cio_http_req_header(req, "transfer-encoding");
	if (clen < -1 || (clen == -1 && !te))
		FAIL("content length %lld without Transfer-Encoding", (long long)clen);
	unsigned pick = target[0] && target[1] ? (unsigned char)target[1] : 0;
	unsigned num = (unsigned)strtoul(target + (target[0] ? 1 : 0) + (pick ? 1 : 0), NULL, 10);
	switch (pick % 8) {
	case 0: /* the whole body, echoed */
		n = cio_http_req_body(req, 2048, &body);
		if (n < 0)
			return (int)n;
		rc = cio_http_resp_send(resp, 200, "text/plain", body, (size_t)n);
		break;
	case 1: /* streamed back as it comes: chunked (1.1) or to the close (1.0) */
		while ((n = cio_http_req_read(req, buf, 1 + num % sizeof buf)) > 0)
			if ((rc = (int)cio_http_resp_write(resp, buf, (size_t)n)) < 0)
				return rc;
		if (n < 0)
			return (int)n;
		if (num & 1 && (rc = cio_http_resp_flush(resp)) < 0)
			return rc;
		rc = cio_http_resp_end(resp);
		break;
	case 2: { /* an announced length, written in pieces or sent from a file */
		size_t len = num % 20000, done = 0;
		if (num & 1) {
			n = cio_http_resp_sendfile(resp, r->file, (int64_t)(num % 7), len);
			if (n < 0)
				return (int)n;
			rc = cio_http_resp_end(resp);
			break;
		}
		memset(buf, 'x', sizeof buf);
		if ((rc = cio_http_resp_set_length(resp, len)) < 0)
			return rc;
		while (done < len) {
			size_t k = len - done < 300 ? len - done : 300;
			if ((n = cio_http_resp_write(resp, buf, k)) < 0)
				return (int)n;
			done += k;
		}
		rc = cio_http_resp_end(resp);
		break;
	}
	case 3: /* a failure before the response: 500 */
		return -EIO;
	case 4: /* a status of the request's choosing, and a body */
		if (cio_http_resp_status(resp, (int)(num % 1000)) < 0)
			cio_http_resp_status(resp, 204);
		if ((n = cio_http_resp_write(resp, "body", 4)) < 0)
			return (int)n;
		rc = cio_http_resp_end(resp);
		break;
	case 5: /* the request's fields, copied into the response */
		for (size_t i = 0; i < nf; i++) {
			const char *name, *value;
			cio_http_req_header_at(req, i, &name, &value);
			cio_http_resp_header(resp, name, value);
		}
		if (num & 1)
			cio_http_resp_close(resp);
		rc = cio_http_resp_send(resp, 200, NULL, "fields", 6);
		break;
	case 6: /* a failure halfway through a streamed response */
		if ((n = cio_http_resp_write(resp, "part", 4)) < 0)
			return (int)n;
		if (num & 1 && (rc = cio_http_resp_flush(resp)) < 0)
			return rc;
		return -EIO;
	default: /* an answer that leaves the body to the server */
		rc = cio_http_resp_send(resp, 200, "text/plain", "ok", 2);
		break;
	}
	if (rc == 0)
		c->ended = true;
	return rc;
}

static void *server(void *arg)
{
	struct run *r = arg;
	cio_stream *s;
	/* Short limits and timeouts: every input ends quickly whatever it is. */
	cio_http_server_opts o = {
		.max_head = 2048,
		.max_headers = 16,
		.max_body = 8192,
		.head_timeout = CIO_SEC,
		.idle_timeout = CIO_SEC,
		.body_timeout = CIO_SEC,
		.discard_limit = 1024,
	};
	if (cio_stream_new(&s, r->fds[1], &(cio_stream_opts){.read_buf = 1024, .write_buf = 1024}) != 0)
		FAIL("stream_new");
	r->serve_rc = cio_http_serve_conn(s, &o, handler, r);
	cio_stream_close(s);
	return NULL;
}

/* ---- the client's view of the responses -------------------------------- */

static const char *find_crlf(const char *p, const char *end)
{
	for (; p + 1 < end; p++)
		if (p[0] == '\r' && p[1] == '\n')
			return p;
	return NULL;
}

static bool is_tchar(int ch)
{
	return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Checks every response in out; returns how many final ones came. */
static size_t check_responses(struct run *r)
{
	const char *p = r->out, *end = r->out + r->out_len;
	size_t finals = 0;

	while (p < end) {
		const char *line = find_crlf(p, end);
		if (end - p < 13 || memcmp(p, "HTTP/1.1 ", 9) != 0 || !isdigit((unsigned char)p[9]) ||
		    !isdigit((unsigned char)p[10]) || !isdigit((unsigned char)p[11]) || p[12] != ' ' || !line)
			FAIL("response at %zu: \"%.20s\"", (size_t)(p - r->out), p);
		int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
		if (status < 100 || status > 599)
			FAIL("status %d", status);
		long long length = -1;
		bool chunked = false, close = false;
		for (p = line + 2;;) {
			line = find_crlf(p, end);
			if (!line)
				FAIL("a response head without its end");
			if (line == p)
				break;
			const char *colon = memchr(p, ':', (size_t)(line - p));
			if (!colon || colon == p)
				FAIL("field \"%.*s\"", (int)(line - p), p);
			for (const char *q = p; q < colon; q++)
				if (!is_tchar((unsigned char)*q))
					FAIL("field name \"%.*s\"", (int)(colon - p), p);
			for (const char *q = colon + 1; q < line; q++)
				if (*q == '\r' || *q == '\n' || *q == '\0')
					FAIL("field value with CR, LF or NUL");
			size_t nlen = (size_t)(colon - p);
			const char *val = colon + 1 + (colon[1] == ' ');
			if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
				if (length >= 0)
					FAIL("two Content-Length fields");
				length = strtoll(val, NULL, 10);
			} else if (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
				chunked = strncmp(val, "chunked\r", 8) == 0;
			} else if (nlen == 10 && strncasecmp(p, "Connection", 10) == 0) {
				close = strncmp(val, "close\r", 6) == 0;
			}
			p = line + 2;
		}
		p += 2;
		if (status < 200)
			continue; /* 100 Continue: no body, the final one follows */
		if (length >= 0 && chunked)
			FAIL("both Content-Length and chunked");
		struct call *c = finals < r->ncalls ? &r->calls[finals] : NULL;
		finals++;
		bool body = !(c && c->head) && status != 204 && status != 304;
		/* A response the server wrote for a request no handler saw
		 * (a refusal) ends the connection; whether its request was
		 * HEAD only the server knew: its body is all or nothing. */
		bool refusal = !c;
		/* A handler that failed halfway leaves its response cut. */
		bool may_cut = c && !c->ended;
		if (!body) {
			if (length > 0 && !chunked && refusal && end - p == length)
				p += length;
			continue;
		}
		if (length >= 0) {
			if (end - p < length) {
				if (!may_cut && !(refusal && p == end))
					FAIL("status %d: %lld bytes of body announced, %zd came", status,
					     length, end - p);
				p = end;
			} else {
				p += length;
			}
		} else if (chunked) {
			for (;;) {
				char *e;
				line = find_crlf(p, end);
				if (!line) {
					if (!may_cut)
						FAIL("a chunk size line cut");
					p = end;
					break;
				}
				unsigned long long sz = strtoull(p, &e, 16);
				if (e != line || e == p)
					FAIL("chunk size line \"%.*s\"", (int)(line - p), p);
				p = line + 2;
				if (sz == 0) {
					if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
						FAIL("no CRLF after the last chunk");
					p += 2;
					break;
				}
				if ((unsigned long long)(end - p) < sz + 2) {
					if (!may_cut)
						FAIL("a chunk cut");
					p = end;
					break;
				}
				if (p[sz] != '\r' || p[sz + 1] != '\n')
					FAIL("a chunk without its CRLF");
				p += sz + 2;
			}
		} else {
			/* Close-delimited: only where the connection ends. */
			if (!close)
				FAIL("status %d: a body neither framed nor ended by Connection: close",
				     status);
			p = end;
		}
		if (close && p != end)
			FAIL("%zd bytes after a response with Connection: close", end - p);
	}
	return finals;
}

static void *fuzz_main(void *arg)
{
	struct run *r = arg;
	if (cio_socketpair(SOCK_STREAM, r->fds) != 0)
		FAIL("socketpair");
	r->file = memfd_create("fuzz_http", MFD_CLOEXEC);
	if (r->file < 0 || ftruncate(r->file, 20000 + 7) != 0)
		FAIL("memfd");
	cio_task_t t[3] = {cio_spawn(server, r), cio_spawn(writer, r), cio_spawn(reader, r)};
	for (int i = 0; i < 3; i++)
		if (t[i] < 0 || cio_join(t[i], NULL) != 0)
			FAIL("task %d", i);
	cio_close(r->fds[0]);
	close(r->file);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run r;
	if (size < 2)
		return 0;
	memset(&r, 0, sizeof r);
	r.ctl = data;
	r.data = data + 2;
	r.size = size - 2;
	fuzz_rt_run(fuzz_main, &r);
	switch (r.serve_rc) {
	case 0: case -EPROTO: case -EMSGSIZE: case -EIO: case -EPIPE: case -ECONNRESET:
		break;
	default:
		FAIL("cio_http_serve_conn: %d (%s)", r.serve_rc, strerror(-r.serve_rc));
	}
	size_t ended = 0;
	for (size_t i = 0; i < r.ncalls; i++)
		ended += r.calls[i].ended;
	size_t finals = check_responses(&r);
	if (finals < ended)
		FAIL("%zu handlers ended a response, %zu responses came", ended, finals);
	free(r.out);
	return 0;
}
