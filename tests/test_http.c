/* test_http.c - the HTTP/1.1 server (cio_http_serve_conn(), and
 * cio_http_serve_turn() under cio_serve_fd(): the turn_ cases) against
 * hand-written requests on loopback: keep-alive, pipelining, request
 * bodies by Content-Length and chunked from 1 B to 1 MiB checked byte for
 * byte, chunked responses, HEAD, HTTP/1.0, Expect: 100-continue, the 431,
 * 413 and 408 limits (a slow head, a body under the minimum rate) and the
 * idle timeout, a client that stops reading (send_timeout), handler
 * failures, a battery of
 * request-smuggling attempts (each refused with 400 and a close, the
 * handler never called), and a drain that closes idle connections. */
#include "coreio.h"
#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- the server under test ------------------------------------------------- */

struct server {
	int lfd, port;
	cio_http_server_opts opts;
	cio_wg conns;
	cio_task_t acceptor;
	int calls;      /* handler calls */
	int last_rc;    /* the last connection's cio_http_serve_conn() result */
	/* Served by turns (cio_http_serve_turn()) under cio_serve_fd() on
	 * task `acceptor`: the turns taken, and those that ended parked. */
	bool turns;
	int turns_taken, parked;
};

static bool turns; /* the servers the case starts serve by turns */

struct conn_arg {
	struct server *srv;
	int fd;
};

/* Serves by target:
 *   /echo      the body back, read in 1000-byte pieces (with "?big":
 *              64 KiB ones), chunked
 *   /echo-cl   the same with the request's Content-Length
 *   /body      the body back, read whole first (cio_http_req_body());
 *              with "?small", at most 3 bytes
 *   /chunks    three pieces, chunked
 *   /file      the file at sendfile_fd by cio_http_resp_sendfile(): its
 *              length announced; with "?chunked", after a first write
 *   /peer      the client's address (cio_http_req_peer())
 *   /fail      returns -EIO before responding
 *   /silent    returns 0 without responding
 *   /early     answers before reading the body
 *   /first     what one read of the body into 64 KiB took, as text
 *   else       200 with the target as body */
static int sendfile_fd = -1;
static size_t sendfile_len;

static int handler(cio_http_req *req, cio_http_resp *resp, void *arg)
{
	struct server *s = arg;
	const char *t = cio_http_req_target(req);
	s->calls++;
	if (strncmp(t, "/echo", 5) == 0) {
		static char buf[64 << 10]; /* one handler at a time uses it */
		size_t piece = strstr(t, "?big") ? sizeof buf : 1000;
		ssize_t n;
		if (strncmp(t, "/echo-cl", 8) == 0)
			CHECK_EQ(cio_http_resp_set_length(resp, (uint64_t)cio_http_req_content_length(req)), 0);
		while ((n = cio_http_req_read(req, buf, piece)) > 0)
			CHECK_EQ(cio_http_resp_write(resp, buf, (size_t)n), n);
		if (n < 0)
			return (int)n;
		return cio_http_resp_end(resp);
	}
	if (strncmp(t, "/body", 5) == 0) {
		const char *b;
		ssize_t n = cio_http_req_body(req, strstr(t, "?small") ? 3 : 1 << 20, &b);
		if (n < 0)
			return (int)n;
		return cio_http_resp_send(resp, 200, NULL, b, (size_t)n);
	}
	if (strcmp(t, "/chunks") == 0) {
		CHECK_EQ(cio_http_resp_header(resp, "X-Test", "yes"), 0);
		CHECK_EQ(cio_http_resp_header(resp, "Content-Length", "3"), -EINVAL);
		CHECK_EQ(cio_http_resp_header(resp, "Bad Name", "x"), -EINVAL);
		CHECK_EQ(cio_http_resp_header(resp, "X-Split", "a\r\nb"), -EINVAL);
		CHECK_EQ(cio_http_resp_write(resp, "one,", 4), 4);
		CHECK_EQ(cio_http_resp_flush(resp), 0);
		CHECK_EQ(cio_http_resp_write(resp, "two,", 4), 4);
		CHECK_EQ(cio_http_resp_write(resp, "three", 5), 5);
		CHECK_EQ(cio_http_resp_status(resp, 404), -EALREADY);
		return cio_http_resp_end(resp);
	}
	if (strncmp(t, "/file", 5) == 0) {
		size_t skip = 0;
		if (strstr(t, "?chunked")) {
			CHECK_EQ(cio_http_resp_write(resp, "<", 1), 1);
			skip = 1;
		}
		CHECK_EQ(cio_http_resp_sendfile(resp, sendfile_fd, (int64_t)skip,
						sendfile_len - skip), (ssize_t)(sendfile_len - skip));
		return cio_http_resp_end(resp);
	}
	if (strcmp(t, "/flood") == 0) {
		/* 256 MiB, more than any socket buffers, to a client that
		 * reads none of it. */
		static char zeros[1 << 20];
		for (int i = 0; i < 256; i++) {
			ssize_t n = cio_http_resp_write(resp, zeros, sizeof zeros);
			if (n < 0)
				return (int)n;
		}
		return cio_http_resp_end(resp);
	}
	if (strcmp(t, "/peer") == 0) {
		/* Asked twice: the second answer is the first one kept. */
		cio_addr a, b;
		char text[64];
		CHECK_EQ(cio_http_req_peer(req, &a), 0);
		CHECK_EQ(cio_http_req_peer(req, &b), 0);
		CHECK(a.len == b.len && memcmp(&a.u, &b.u, a.len) == 0);
		CHECK(cio_addr_format(&a, text, sizeof text) > 0);
		return cio_http_resp_send(resp, 200, "text/plain", text, strlen(text));
	}
	if (strcmp(t, "/first") == 0) {
		static char buf[64 << 10];
		char text[32];
		ssize_t n = cio_http_req_read(req, buf, sizeof buf);
		snprintf(text, sizeof text, "%zd", n);
		while (n > 0)
			n = cio_http_req_read(req, buf, sizeof buf);
		return cio_http_resp_send(resp, 200, "text/plain", text, strlen(text));
	}
	if (strcmp(t, "/fail") == 0)
		return -EIO;
	if (strcmp(t, "/silent") == 0)
		return 0;
	return cio_http_resp_send(resp, 200, "text/plain", t, strlen(t));
}

static void *serve_main(void *arg)
{
	struct conn_arg *ca = arg;
	cio_stream *st;
	CHECK_EQ(cio_stream_new(&st, ca->fd, NULL), 0);
	ca->srv->last_rc = cio_http_serve_conn(st, &ca->srv->opts, handler, ca->srv);
	cio_stream_close(st);
	cio_wg_done(&ca->srv->conns);
	free(ca);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct server *s = arg;
	for (;;) {
		int fd = cio_accept(s->lfd, NULL);
		if (fd < 0)
			break;
		struct conn_arg *ca = malloc(sizeof *ca);
		CHECK(ca);
		*ca = (struct conn_arg){s, fd};
		cio_wg_add(&s->conns, 1);
		CHECK(cio_spawn_with(&(cio_spawn_opts){.detached = true}, serve_main, ca) > 0);
	}
	return NULL;
}

/* A connection's turn; conns counts those that began and have not
 * ended. */
static int turn(void *arg, int fd)
{
	struct server *s = arg;
	if (!*cio_serve_state())
		cio_wg_add(&s->conns, 1);
	s->turns_taken++;
	int rc = cio_http_serve_turn(fd, NULL, &s->opts, handler, s);
	if (rc == CIO_SERVE_AGAIN) {
		s->parked++;
		return rc;
	}
	s->last_rc = rc;
	cio_wg_done(&s->conns);
	return CIO_SERVE_DONE;
}

/* A parked connection that serving closed (the idle timeout, a drain). */
static void turn_closed(void *arg, void *state)
{
	struct server *s = arg;
	cio_http_turn_free(arg, state);
	cio_wg_done(&s->conns);
}

static void *serve_turns(void *arg)
{
	struct server *s = arg;
	cio_serve_opts so = {0};
	cio_http_turn_opts(&so, &s->opts);
	so.state_free = turn_closed;
	int rc = cio_serve_fd(s->lfd, &so, turn, s);
	CHECK(rc == 0 || rc == -ECANCELED);
	return NULL;
}

static void server_start(struct server *s, const cio_http_server_opts *o)
{
	memset(s, 0, sizeof *s);
	if (o)
		s->opts = *o;
	s->turns = turns;
	cio_wg_init(&s->conns);
	s->lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(s->lfd >= 0);
	cio_addr a;
	CHECK_EQ(cio_local_addr(s->lfd, &a), 0);
	s->port = ntohs(a.u.in.sin_port);
	s->acceptor = cio_spawn(s->turns ? serve_turns : accept_main, s);
	CHECK(s->acceptor > 0);
}

static void server_stop(struct server *s)
{
	if (s->turns) {
		/* Every connection ends by itself first: serving's end
		 * would close the parked ones. */
		CIO_WITH_TIMEOUT(5 * CIO_SEC) {
			CHECK_EQ(cio_wg_wait(&s->conns), 0);
		}
	}
	cio_cancel(s->acceptor);
	CHECK_EQ(cio_join(s->acceptor, NULL), 0);
	cio_close(s->lfd);
	CIO_WITH_TIMEOUT(5 * CIO_SEC) {
		CHECK_EQ(cio_wg_wait(&s->conns), 0);
	}
}

/* --- a client that writes requests by hand --------------------------------- */

static cio_stream *dial(const struct server *s)
{
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", s->port);
	int fd = cio_connect(addr, SOCK_STREAM);
	CHECK(fd >= 0);
	CHECK_EQ(cio_tcp_nodelay(fd, true), 0); /* its pieces go as written */
	cio_stream *c;
	CHECK_EQ(cio_stream_new(&c, fd, NULL), 0);
	return c;
}

static void send_str(cio_stream *c, const char *text)
{
	CHECK_EQ(cio_stream_write_all(c, text, strlen(text), NULL), (ssize_t)strlen(text));
}

struct resp {
	int status;
	char head[2048];   /* the fields, "name: value\n" each */
	char *body;
	size_t len;
	bool chunked;
};

/* The value of field name in r, or NULL (names compared as sent). */
static const char *field(const struct resp *r, const char *name, char *out, size_t cap)
{
	char key[64];
	snprintf(key, sizeof key, "\n%s: ", name);
	const char *p = strstr(r->head, key);
	if (!p)
		return NULL;
	p += strlen(key);
	size_t n = strcspn(p, "\n");
	CHECK(n < cap);
	memcpy(out, p, n);
	out[n] = '\0';
	return out;
}

/* Reads one response; a body unless `head_only` (a HEAD's, a 100's). */
static void read_resp(cio_stream *c, struct resp *r, bool head_only)
{
	const char *line;
	ssize_t n;
	char v[64];
	memset(r, 0, sizeof *r);
	r->head[0] = '\n';
	r->body = NULL;
	r->len = 0;
	CIO_WITH_TIMEOUT(5 * CIO_SEC) {
		n = cio_stream_read_line(c, 0, &line);
		if (n <= 12 || !line)
			fprintf(stderr, "no status line: %zd (%s)\n", n,
				n < 0 ? cio_strerror((int)n) : line ? "empty" : "end");
		CHECK(n > 12 && line);
		CHECK(strncmp(line, "HTTP/1.1 ", 9) == 0);
		r->status = atoi(line + 9);
		while ((n = cio_stream_read_line(c, 0, &line)) > 0) {
			CHECK(strlen(r->head) + (size_t)n + 2 < sizeof r->head);
			strcat(r->head, line);
			strcat(r->head, "\n");
		}
		CHECK(n == 0 && line);
		if (head_only || r->status == 100 || r->status == 204 || r->status == 304)
			break;
		if (field(r, "Content-Length", v, sizeof v)) {
			r->len = strtoul(v, NULL, 10);
			r->body = malloc(r->len + 1);
			CHECK_EQ(cio_stream_read_exact(c, r->body, r->len, NULL), (ssize_t)r->len);
		} else if (field(r, "Transfer-Encoding", v, sizeof v)) {
			CHECK(strcmp(v, "chunked") == 0);
			r->chunked = true;
			for (;;) {
				CHECK(cio_stream_read_line(c, 0, &line) > 0);
				size_t size = strtoul(line, NULL, 16);
				r->body = realloc(r->body, r->len + size + 1);
				CHECK_EQ(cio_stream_read_exact(c, r->body + r->len, size, NULL), (ssize_t)size);
				r->len += size;
				CHECK_EQ(cio_stream_read_line(c, 0, &line), 0);
				if (size == 0)
					break;
			}
		} else {
			/* Delimited by the close. */
			char buf[4096];
			while ((n = cio_stream_read(c, buf, sizeof buf)) > 0) {
				r->body = realloc(r->body, r->len + (size_t)n + 1);
				memcpy(r->body + r->len, buf, (size_t)n);
				r->len += (size_t)n;
			}
			CHECK_EQ(n, 0);
		}
	}
	if (!r->body)
		r->body = malloc(1);
	r->body[r->len] = '\0';
}

static void resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* The server closed: the end of the stream comes next, soon. */
static void expect_eof(cio_stream *c, int64_t within)
{
	char b;
	ssize_t n;
	CIO_WITH_TIMEOUT(within) {
		n = cio_stream_read(c, &b, 1);
	}
	CHECK(n == 0 || n == -ECONNRESET);
}

/* One request, one response with this status and body. */
static void roundtrip(cio_stream *c, const char *req, int status, const char *body)
{
	struct resp r;
	send_str(c, req);
	read_resp(c, &r, false);
	CHECK_EQ(r.status, status);
	if (body && strcmp(r.body, body) != 0) {
		fprintf(stderr, "body \"%s\", want \"%s\"\n", r.body, body);
		CHECK(!"body");
	}
	resp_free(&r);
}

/* --- the cases --------------------------------------------------------------- */

static void test_keepalive_and_pipelining(void)
{
	struct server s;
	server_start(&s, NULL);
	cio_stream *c = dial(&s);
	char req[128], target[32];
	for (int i = 0; i < 5; i++) {
		snprintf(target, sizeof target, "/k%d", i);
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
		roundtrip(c, req, 200, target);
	}
	/* The client's address, which is this end's. */
	cio_addr me;
	char want[64];
	CHECK_EQ(cio_local_addr(cio_stream_fd(c), &me), 0);
	CHECK(cio_addr_format(&me, want, sizeof want) > 0);
	roundtrip(c, "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n", 200, want);
	/* Three in one write: three responses, in order. */
	send_str(c, "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
		    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
		    "GET /p3 HTTP/1.1\r\nHost: x\r\n\r\n");
	struct resp r;
	read_resp(c, &r, false);
	CHECK(r.status == 200 && strcmp(r.body, "/p1") == 0);
	resp_free(&r);
	read_resp(c, &r, false);
	CHECK(r.status == 200 && strcmp(r.body, "hello") == 0 && r.chunked);
	resp_free(&r);
	read_resp(c, &r, false);
	CHECK(r.status == 200 && strcmp(r.body, "/p3") == 0);
	CHECK(strstr(r.head, "\nDate: "));
	resp_free(&r);
	CHECK_EQ(s.calls, 9);
	cio_stream_close(c);
	server_stop(&s);
	CHECK_EQ(s.last_rc, 0);
}

struct upload {
	cio_stream *c;
	const char *data;
	size_t len;
	bool chunked;
	const char *target;
};

/* Sends a request with the body, chunked in pieces of uneven sizes (with
 * an extension on some) or with Content-Length. */
static void *upload_main(void *arg)
{
	struct upload *u = arg;
	char head[256];
	if (u->chunked) {
		snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: x\r\n"
			 "Transfer-Encoding: chunked\r\n\r\n", u->target);
		send_str(u->c, head);
		size_t off = 0, step = 1;
		while (off < u->len) {
			size_t n = u->len - off < step ? u->len - off : step;
			char size[48];
			snprintf(size, sizeof size, step % 3 ? "%zx\r\n" : "%zx;ext=1\r\n", n);
			send_str(u->c, size);
			CHECK_EQ(cio_stream_write_all(u->c, u->data + off, n, NULL), (ssize_t)n);
			send_str(u->c, "\r\n");
			off += n;
			step = step * 3 + 7;
		}
		send_str(u->c, "0\r\nX-Trailer: t\r\n\r\n");
	} else {
		snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: x\r\n"
			 "Content-Length: %zu\r\n\r\n", u->target, u->len);
		send_str(u->c, head);
		CHECK_EQ(cio_stream_write_all(u->c, u->data, u->len, NULL), (ssize_t)u->len);
	}
	return NULL;
}

static void test_bodies(void)
{
	struct server s;
	server_start(&s, &(cio_http_server_opts){.max_body = 2 << 20});
	size_t max = 1 << 20;
	char *data = malloc(max);
	for (size_t i = 0; i < max; i++)
		data[i] = (char)(i * 7 + (i >> 8));
	static const size_t sizes[] = {1, 2, 100, 999, 1000, 1001, 16383, 16384, 16385,
				       65537, 300000, 1 << 20};
	cio_stream *c = dial(&s);
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		for (int mode = 0; mode < 3; mode++) {
			/* 0: CL in, chunked out; 1: chunked both; 2: CL both */
			bool big = sizes[k] > 100000; /* in few reads: quick under ASan */
			struct upload u = {c, data, sizes[k], mode == 1,
					   mode == 2 ? (big ? "/echo-cl?big" : "/echo-cl")
						     : (big ? "/echo?big" : "/echo")};
			cio_task_t t = cio_spawn(upload_main, &u);
			struct resp r;
			read_resp(c, &r, false);
			CHECK_EQ(cio_join(t, NULL), 0);
			CHECK_EQ(r.status, 200);
			CHECK_EQ(r.len, sizes[k]);
			CHECK(memcmp(r.body, data, r.len) == 0);
			CHECK(r.chunked == (mode != 2));
			resp_free(&r);
		}
	}
	cio_stream_close(c);
	free(data);
	server_stop(&s);
}

/* A request whose body comes in one piece with its head, more than the
 * server's read buffer (16 KiB) holds: the first body read takes it all,
 * what the buffer could not hold read ahead without waiting. */
static void test_read_ahead(void)
{
	struct server s;
	server_start(&s, NULL);
	cio_stream *c = dial(&s);
	int big = 1 << 20; /* the whole request in one piece */
	CHECK_EQ(setsockopt(cio_stream_fd(c), SOL_SOCKET, SO_SNDBUF, &big, sizeof big), 0);
	static char req[64 + (16 << 10)];
	int head = snprintf(req, sizeof req,
			    "POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
			    16 << 10);
	memset(req + head, 'b', 16 << 10);
	CHECK_EQ(cio_stream_write_all(c, req, (size_t)head + (16 << 10), NULL),
		 head + (16 << 10));
	struct resp r;
	read_resp(c, &r, false);
	CHECK_EQ(r.status, 200);
	CHECK(strcmp(r.body, "16384") == 0);
	resp_free(&r);
	cio_stream_close(c);
	server_stop(&s);
}

static void test_responses(void)
{
	struct server s;
	server_start(&s, NULL);
	cio_stream *c = dial(&s);
	struct resp r;
	char v[64];

	/* Chunked, with a flush in the middle. */
	send_str(c, "GET /chunks HTTP/1.1\r\nHost: x\r\n\r\n");
	read_resp(c, &r, false);
	CHECK(r.status == 200 && r.chunked && strcmp(r.body, "one,two,three") == 0);
	CHECK(field(&r, "X-Test", v, sizeof v) && strcmp(v, "yes") == 0);
	resp_free(&r);

	/* HEAD: the fields, no body; the next response follows at once. */
	send_str(c, "HEAD /abc HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
	read_resp(c, &r, true);
	CHECK_EQ(r.status, 200);
	CHECK(field(&r, "Content-Length", v, sizeof v) && strcmp(v, "4") == 0);
	resp_free(&r);
	read_resp(c, &r, false);
	CHECK(r.status == 200 && strcmp(r.body, "/after") == 0);
	resp_free(&r);
	send_str(c, "HEAD /chunks HTTP/1.1\r\nHost: x\r\n\r\nGET /after2 HTTP/1.1\r\nHost: x\r\n\r\n");
	read_resp(c, &r, true);
	CHECK_EQ(r.status, 200);
	resp_free(&r);
	read_resp(c, &r, false);
	CHECK(r.status == 200 && strcmp(r.body, "/after2") == 0);
	resp_free(&r);

	/* Sendfile: with the length announced, and inside a chunked body. */
	char path[] = "/tmp/coreio-http-file-XXXXXX";
	sendfile_fd = mkstemp(path);
	CHECK(sendfile_fd >= 0);
	CHECK_EQ(unlink(path), 0);
	sendfile_len = 100000;
	char *content = malloc(sendfile_len);
	for (size_t i = 0; i < sendfile_len; i++)
		content[i] = (char)(i % 251);
	content[0] = '<';
	CHECK_EQ(write(sendfile_fd, content, sendfile_len), (ssize_t)sendfile_len);
	send_str(c, "GET /file HTTP/1.1\r\nHost: x\r\n\r\nGET /file?chunked HTTP/1.1\r\nHost: x\r\n\r\n"
		    "HEAD /file HTTP/1.1\r\nHost: x\r\n\r\n");
	for (int i = 0; i < 2; i++) {
		read_resp(c, &r, false);
		CHECK(r.status == 200 && r.len == sendfile_len && r.chunked == (i == 1));
		CHECK(memcmp(r.body, content, sendfile_len) == 0);
		resp_free(&r);
	}
	read_resp(c, &r, true);
	CHECK(field(&r, "Content-Length", v, sizeof v) && atoi(v) == (int)sendfile_len);
	resp_free(&r);
	free(content);
	CHECK_EQ(close(sendfile_fd), 0);

	/* Expect: 100-continue: the 100 comes when the handler reads. */
	send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
		    "Content-Length: 4\r\n\r\n");
	read_resp(c, &r, true);
	CHECK_EQ(r.status, 100);
	resp_free(&r);
	roundtrip(c, "data", 200, "data");
	cio_stream_close(c);

	/* A handler that answers without reading: no 100, and the
	 * connection closes (the client still holds its body). */
	c = dial(&s);
	send_str(c, "POST /early HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
		    "Content-Length: 4\r\n\r\n");
	read_resp(c, &r, false);
	CHECK(r.status == 200 && strcmp(r.body, "/early") == 0);
	CHECK(field(&r, "Connection", v, sizeof v) && strcmp(v, "close") == 0);
	resp_free(&r);
	expect_eof(c, CIO_SEC);
	cio_stream_close(c);

	/* An unread body is skipped: the connection goes on. */
	c = dial(&s);
	roundtrip(c, "POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde", 200, "/early");
	roundtrip(c, "POST /early HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "3\r\nabc\r\n0\r\n\r\n", 200, "/early");
	roundtrip(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n", 200, "/next");
	cio_stream_close(c);

	/* HTTP/1.0: closed after the response, unless it asks. */
	c = dial(&s);
	send_str(c, "GET /old HTTP/1.0\r\n\r\n");
	read_resp(c, &r, false);
	CHECK(r.status == 200 && strcmp(r.body, "/old") == 0);
	CHECK(field(&r, "Connection", v, sizeof v) && strcmp(v, "close") == 0);
	resp_free(&r);
	expect_eof(c, CIO_SEC);
	cio_stream_close(c);
	c = dial(&s);
	send_str(c, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	read_resp(c, &r, false);
	CHECK(r.status == 200 && strcmp(r.body, "/ka") == 0);
	CHECK(field(&r, "Connection", v, sizeof v) && strcmp(v, "keep-alive") == 0);
	resp_free(&r);
	/* A body of unknown length to 1.0: delimited by the close. */
	send_str(c, "GET /chunks HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	read_resp(c, &r, false);
	CHECK(r.status == 200 && !r.chunked && strcmp(r.body, "one,two,three") == 0);
	resp_free(&r);
	cio_stream_close(c);

	/* Connection: close from the client. */
	c = dial(&s);
	roundtrip(c, "GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, "/bye");
	expect_eof(c, CIO_SEC);
	cio_stream_close(c);

	/* Handlers that fail, or never answer: 500, closed. */
	int calls = s.calls;
	c = dial(&s);
	roundtrip(c, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\n", 500, NULL);
	expect_eof(c, CIO_SEC);
	cio_stream_close(c);
	c = dial(&s);
	roundtrip(c, "GET /silent HTTP/1.1\r\nHost: x\r\n\r\n", 500, NULL);
	expect_eof(c, CIO_SEC);
	cio_stream_close(c);
	CHECK_EQ(s.calls, calls + 2);
	server_stop(&s);
}

/* Sends 10 bytes every 100 ms: 100 B/s, until it fails or is cancelled. */
static void *drip_main(void *arg)
{
	cio_stream *c = arg;
	while (cio_stream_write_all(c, "0123456789", 10, NULL) == 10 &&
	       cio_sleep(100 * CIO_MS) == 0)
		;
	return NULL;
}

static void test_limits(void)
{
	struct server s;
	server_start(&s, &(cio_http_server_opts){.max_head = 1024, .max_headers = 10,
		.max_body = 1000, .head_timeout = 200 * CIO_MS, .idle_timeout = 300 * CIO_MS,
		.body_timeout = 300 * CIO_MS, .min_body_rate = 1000});
	cio_stream *c;
	char big[2048];

	/* 431: a head over 1024 bytes; ten fields pass, eleven do not. */
	c = dial(&s);
	memset(big, 'a', sizeof big);
	snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX-Big: %01500d\r\n\r\n", 0);
	roundtrip(c, big, 431, NULL);
	expect_eof(c, CIO_SEC);
	cio_stream_close(c);
	c = dial(&s);
	char req[1024] = "GET /ten HTTP/1.1\r\nHost: x\r\n";
	for (int i = 0; i < 9; i++)
		snprintf(req + strlen(req), sizeof req - strlen(req), "X-%d: v\r\n", i);
	strcat(req, "\r\n");
	roundtrip(c, req, 200, "/ten");
	req[strlen(req) - 2] = '\0';
	strcat(req, "X-11: v\r\n\r\n");
	roundtrip(c, req, 431, NULL);
	expect_eof(c, CIO_SEC);
	cio_stream_close(c);

	/* 413: a Content-Length over max_body, before the handler; a
	 * chunked body that grows over it, while the handler reads. */
	int calls = s.calls;
	c = dial(&s);
	roundtrip(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", 413, NULL);
	expect_eof(c, CIO_SEC);
	cio_stream_close(c);
	CHECK_EQ(s.calls, calls);
	c = dial(&s);
	send_str(c, "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 3; i++) {
		memset(big, 'b', 400);
		send_str(c, "190\r\n");
		CHECK_EQ(cio_stream_write_all(c, big, 400, NULL), 400);
		send_str(c, "\r\n");
	}
	send_str(c, "0\r\n\r\n");
	struct resp r;
	read_resp(c, &r, false);
	CHECK_EQ(r.status, 413);
	resp_free(&r);
	expect_eof(c, CIO_SEC);
	cio_stream_close(c);

	/* 413: a body longer than the handler takes. */
	c = dial(&s);
	roundtrip(c, "POST /body?small HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		  200, "abc");
	roundtrip(c, "POST /body?small HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd",
		  413, NULL);
	expect_eof(c, CIO_SEC);
	cio_stream_close(c);

	/* 408: a head that does not end within head_timeout. */
	c = dial(&s);
	send_str(c, "GET / HTTP/1.1\r\nHost: x\r\n");
	int64_t t0 = cio_now();
	read_resp(c, &r, false);
	CHECK_EQ(r.status, 408);
	CHECK(cio_now() - t0 >= 150 * CIO_MS);
	resp_free(&r);
	expect_eof(c, CIO_SEC);
	cio_stream_close(c);
	CIO_WITH_TIMEOUT(2 * CIO_SEC) {
		CHECK_EQ(cio_wg_wait(&s.conns), 0); /* its task has ended */
	}
	CHECK_EQ(s.last_rc, -ETIMEDOUT);

	/* 408: a body that trickles in slower than min_body_rate, though
	 * never silent for body_timeout. */
	c = dial(&s);
	send_str(c, "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n");
	cio_task_t drip = cio_spawn(drip_main, c);
	t0 = cio_now();
	read_resp(c, &r, false);
	CHECK_EQ(r.status, 408);
	CHECK(cio_now() - t0 >= 300 * CIO_MS && cio_now() - t0 < 2 * CIO_SEC);
	resp_free(&r);
	expect_eof(c, CIO_SEC);
	cio_cancel(drip);
	CHECK_EQ(cio_join(drip, NULL), 0);
	cio_stream_close(c);

	/* The idle timeout: a kept-alive connection closes, silently. */
	c = dial(&s);
	roundtrip(c, "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n", 200, "/idle");
	t0 = cio_now();
	expect_eof(c, 2 * CIO_SEC);
	CHECK(cio_now() - t0 >= 250 * CIO_MS);
	cio_stream_close(c);
	server_stop(&s);

	/* A new connection that says nothing closes, silently, after the
	 * head timeout (200 ms), not the idle timeout (30 s). */
	server_start(&s, &(cio_http_server_opts){.head_timeout = 200 * CIO_MS,
		.idle_timeout = 30 * CIO_SEC});
	c = dial(&s);
	t0 = cio_now();
	expect_eof(c, 5 * CIO_SEC);
	CHECK(cio_now() - t0 >= 150 * CIO_MS);
	cio_stream_close(c);
	server_stop(&s);
}

/* Requests a proxy in front could frame differently: each is refused with
 * 400 and a close, and reaches no handler. */
static void test_smuggling(void)
{
	static const struct {
		const char *name;
		const char *req;
		size_t len; /* 0: strlen */
		int status;
	} bad[] = {
		{"CL then TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
			       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 400},
		{"TE then CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
			       "Content-Length: 5\r\n\r\n0\r\n\r\n", 0, 400},
		{"duplicate CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
				 "Content-Length: 5\r\n\r\nhello", 0, 400},
		{"conflicting CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
				   "Content-Length: 6\r\n\r\nhello!", 0, 400},
		{"CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", 0, 400},
		{"CL sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 0, 400},
		{"TE chunked, identity", "POST / HTTP/1.1\r\nHost: x\r\n"
			 "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 0, 400},
		{"TE identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 0, 400},
		{"TE xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"
				"0\r\n\r\n", 0, 400},
		{"TE twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
			     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 400},
		{"TE space before colon", "POST / HTTP/1.1\r\nHost: x\r\n"
			 "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 0, 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 0, 400},
		{"TE obs-fold", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip,\r\n"
				" chunked\r\n\r\n0\r\n\r\n", 0, 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 0, 400},
		{"obs-fold tab", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", 0, 400},
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", 0, 400},
		{"bare LF in a field", "GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 0, 400},
		{"bare CR", "GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 0, 400},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", 35, 400},
		{"NUL in a name", "GET / HTTP/1.1\r\nHost: x\r\nX\0Y: a\r\n\r\n", 35, 400},
		{"chunked HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 400},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400},
		{"leading space field", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 0, 400},
		{"HTTP/0.9", "GET /\r\n\r\n", 0, 505},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 0, 505},
		{"Expect other", "GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 0, 417},
		{"no Host in 1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 0, 400},
		{"Host twice", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 0, 400},
		{"Host twice in 1.0", "GET / HTTP/1.0\r\nHost: x\r\nhost: x\r\n\r\n", 0, 400},
	};
	struct server s;
	server_start(&s, NULL);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cio_stream *c = dial(&s);
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].req);
		CHECK_EQ(cio_stream_write_all(c, bad[i].req, len, NULL), (ssize_t)len);
		struct resp r;
		read_resp(c, &r, false);
		char v[64];
		if (r.status != bad[i].status || !field(&r, "Connection", v, sizeof v) ||
		    strcmp(v, "close") != 0) {
			fprintf(stderr, "%s: status %d, want %d\n", bad[i].name, r.status,
				bad[i].status);
			CHECK(!"refused");
		}
		resp_free(&r);
		expect_eof(c, CIO_SEC);
		cio_stream_close(c);
		if (s.calls != 0) {
			fprintf(stderr, "%s: reached the handler\n", bad[i].name);
			CHECK(!"handler called");
		}
	}
	/* A bad chunk comes after a good head: the handler that reads it
	 * fails, and the server answers 400 in its place. */
	static const char *const bad_chunks[] = {
		"1ffffffffffffffff\r\na\r\n0\r\n\r\n", /* size overflow */
		"2\r\nab\r\nzz\r\na\r\n0\r\n\r\n",       /* size not hex */
		"1\r\naXX0\r\n\r\n",                   /* data without its CRLF */
		"1 \r\na\r\n0\r\n\r\n",                /* space after the size */
	};
	for (size_t i = 0; i < sizeof bad_chunks / sizeof bad_chunks[0]; i++) {
		cio_stream *c = dial(&s);
		send_str(c, "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
		roundtrip(c, bad_chunks[i], 400, NULL);
		expect_eof(c, CIO_SEC);
		cio_stream_close(c);
	}
	/* One that answers without reading the body: its response goes,
	 * then the server, dropping the rest, meets the bad chunk and
	 * closes rather than look for a next request in it. */
	cio_stream *c = dial(&s);
	roundtrip(c, "POST /early HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "1ffffffffffffffff\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 200, "/early");
	expect_eof(c, CIO_SEC);
	cio_stream_close(c);
	CHECK_EQ(s.calls, 1 + (int)(sizeof bad_chunks / sizeof bad_chunks[0]));
	server_stop(&s);
}

/* Last: a drain ends the run's listeners for good. */
/* A client that stops reading: the response's write gives up after
 * send_timeout and the connection closes. */
static void test_send_timeout(void)
{
	struct server s;
	cio_http_server_opts o = {.send_timeout = 200 * CIO_MS};
	server_start(&s, &o);
	cio_stream *c = dial(&s);
	send_str(c, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n");
	int64_t t0 = cio_now();
	/* Served by turns, the connection counts once it is called. */
	for (int i = 0; i < 5000 && s.calls == 0; i++)
		cio_sleep(CIO_MS);
	CIO_WITH_TIMEOUT(5 * CIO_SEC) {
		CHECK_EQ(cio_wg_wait(&s.conns), 0);
	}
	CHECK(cio_now() - t0 < 3 * CIO_SEC);
	CHECK_EQ(s.last_rc, -ETIMEDOUT);
	cio_stream_close(c);
	server_stop(&s);
}

/* One drain for both ways of serving (a drain is for good: the cases
 * run in one runtime when the program runs them all): idle keep-alive
 * connections close at once, a request in progress finishes with
 * "Connection: close". */
static void test_drain(void)
{
	struct server s[2];
	cio_stream *idle[2][3], *busy[2];
	bool was = turns;
	for (int k = 0; k < 2; k++) {
		turns = k == 1;
		server_start(&s[k], NULL);
		for (int i = 0; i < 3; i++) {
			idle[k][i] = dial(&s[k]);
			roundtrip(idle[k][i], "GET /i HTTP/1.1\r\nHost: x\r\n\r\n", 200, "/i");
		}
		/* One in the middle of a request: its response says close. */
		busy[k] = dial(&s[k]);
		send_str(busy[k], "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab");
	}
	turns = was;
	cio_sleep(50 * CIO_MS);
	int64_t t0 = cio_now();
	CHECK_EQ(cio_drain(), 0);
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 3; i++) {
			expect_eof(idle[k][i], CIO_SEC);
			cio_stream_close(idle[k][i]);
		}
	CHECK(cio_now() - t0 < 500 * CIO_MS);
	for (int k = 0; k < 2; k++) {
		send_str(busy[k], "cd");
		struct resp r;
		char v[64];
		read_resp(busy[k], &r, false);
		CHECK(r.status == 200 && strcmp(r.body, "abcd") == 0);
		CHECK(field(&r, "Connection", v, sizeof v) && strcmp(v, "close") == 0);
		resp_free(&r);
		expect_eof(busy[k], CIO_SEC);
		cio_stream_close(busy[k]);
		server_stop(&s[k]);
	}
}

static uint64_t tasks_live(void)
{
	cio_stats st;
	cio_stats_get(&st);
	return st.tasks_live;
}

/* Waits (at most 5 s) for the server's turns to have parked n times. */
static void wait_parked(const struct server *s, int n)
{
	for (int i = 0; i < 5000 && s->parked < n; i++)
		cio_sleep(CIO_MS);
	CHECK_EQ(s->parked, n);
}

/* By turns, a kept-alive connection holds no task between requests:
 * each turn ends parked once its response is out; pipelined requests
 * are served in one turn; a request that comes in pieces is waited for
 * on its turn; a parked connection's end (the client's close) is a turn
 * that ends it; its state is freed (the sanitizer's leak check); no
 * timeout (CIO_NEVER) is no timeout. */
static void test_turn_parks(void)
{
	struct server s;
	/* No timeouts at all (CIO_NEVER): parked connections stay. */
	server_start(&s, &(cio_http_server_opts){.head_timeout = CIO_NEVER,
		.idle_timeout = CIO_NEVER});
	uint64_t idle_tasks = tasks_live(); /* this one and the server's */
	cio_stream *c = dial(&s);
	for (int i = 0; i < 5; i++) {
		roundtrip(c, "GET /k HTTP/1.1\r\nHost: x\r\n\r\n", 200, "/k");
		wait_parked(&s, i + 1);
		CHECK_EQ(s.turns_taken, i + 1);
		CHECK_EQ(tasks_live(), idle_tasks);
	}
	send_str(c, "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
		    "GET /p2 HTTP/1.1\r\nHost: x\r\n\r\n");
	struct resp r;
	read_resp(c, &r, false);
	CHECK(r.status == 200 && strcmp(r.body, "/p1") == 0);
	resp_free(&r);
	read_resp(c, &r, false);
	CHECK(r.status == 200 && strcmp(r.body, "/p2") == 0);
	resp_free(&r);
	wait_parked(&s, 6);
	CHECK_EQ(s.turns_taken, 6);
	/* A head in two pieces: the turn waits for the second. */
	send_str(c, "GET /split HTTP/1.1\r\n");
	cio_sleep(30 * CIO_MS);
	roundtrip(c, "Host: x\r\n\r\n", 200, "/split");
	wait_parked(&s, 7);
	CHECK_EQ(s.calls, 8);
	cio_stream_close(c);
	server_stop(&s);
	CHECK_EQ(s.turns_taken, 8); /* the last saw the close */
	CHECK_EQ(s.last_rc, 0);
}

static void *test_main(void *arg)
{
	(void)arg;
	TEST_CASE(keepalive_and_pipelining, test_keepalive_and_pipelining());
	TEST_CASE(bodies, test_bodies());
	TEST_CASE(read_ahead, test_read_ahead());
	TEST_CASE(responses, test_responses());
	TEST_CASE(limits, test_limits());
	TEST_CASE(smuggling, test_smuggling());
	TEST_CASE(send_timeout, test_send_timeout());
	turns = true;
	TEST_CASE(turn_keepalive_and_pipelining, test_keepalive_and_pipelining());
	TEST_CASE(turn_bodies, test_bodies());
	TEST_CASE(turn_read_ahead, test_read_ahead());
	TEST_CASE(turn_responses, test_responses());
	TEST_CASE(turn_limits, test_limits());
	TEST_CASE(turn_smuggling, test_smuggling());
	TEST_CASE(turn_send_timeout, test_send_timeout());
	TEST_CASE(turn_parks, test_turn_parks());
	TEST_CASE(drain, test_drain()); /* last: a drain is for good */
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_run(test_main, NULL);
	return rc ? rc : test_cases_end();
}
