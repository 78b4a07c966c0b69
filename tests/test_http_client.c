/* test_http_client.c - the HTTP/1.1 client (cio_http_client, calls)
 * against coreio's own server and against hand-written servers on
 * loopback: keep-alive reuse, request bodies held and streamed (1 B to
 * 4 MiB, checked byte for byte), chunked, close-delimited and HEAD
 * responses, interim 100s, many tasks over a few connections each given
 * its own response, max_conns waits, a kept connection the server closed
 * (an idempotent request sent again, a POST not sent on it), malformed
 * and truncated responses, timeouts, refused connections, idle expiry,
 * https with the certificate verified (where the library has TLS), and a
 * drain closing the pool. */
#include "coreio.h"
#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- coreio's server --------------------------------------------------------- */

struct server {
	int lfd;
	char addr[64];
	cio_tls_ctx *tls;       /* NULL: plain */
	cio_wg conns;
	cio_task_t acceptor;
	int accepted;
};

static uint8_t pat(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 9));
}

/* Serves by target:
 *   /echo      the body back, chunked, as it is read
 *   /id/N      "N" (with "X-Id: N")
 *   /big/N     N pattern bytes, chunked in 7000-byte pieces
 *   /close     "bye" with Connection: close
 *   /slow      "late" after 300 ms
 *   /nobody    204 */
static int handler(cio_http_req *req, cio_http_resp *resp, void *arg)
{
	(void)arg;
	const char *t = cio_http_req_target(req);
	if (strcmp(t, "/echo") == 0) {
		char buf[5000];
		ssize_t n;
		while ((n = cio_http_req_read(req, buf, sizeof buf)) > 0)
			if (cio_http_resp_write(resp, buf, (size_t)n) != n)
				return -EIO;
		return n < 0 ? (int)n : cio_http_resp_end(resp);
	}
	if (strncmp(t, "/id/", 4) == 0) {
		cio_http_resp_header(resp, "X-Id", t + 4);
		return cio_http_resp_send(resp, 200, "text/plain", t + 4, strlen(t + 4));
	}
	if (strncmp(t, "/big/", 5) == 0) {
		uint64_t len = strtoull(t + 5, NULL, 10);
		char buf[7000];
		for (uint64_t off = 0; off < len;) {
			size_t n = len - off < sizeof buf ? (size_t)(len - off) : sizeof buf;
			for (size_t i = 0; i < n; i++)
				buf[i] = (char)pat(off + i);
			if (cio_http_resp_write(resp, buf, n) != (ssize_t)n)
				return -EIO;
			off += n;
		}
		return cio_http_resp_end(resp);
	}
	if (strcmp(t, "/close") == 0) {
		cio_http_resp_close(resp);
		return cio_http_resp_send(resp, 200, NULL, "bye", 3);
	}
	if (strcmp(t, "/slow") == 0) {
		cio_sleep(300 * CIO_MS);
		return cio_http_resp_send(resp, 200, NULL, "late", 4);
	}
	if (strcmp(t, "/nobody") == 0)
		return cio_http_resp_send(resp, 204, NULL, NULL, 0);
	return cio_http_resp_send(resp, 404, NULL, "no", 2);
}

static void *serve_main(void *arg)
{
	struct server *s = ((void **)arg)[0];
	int fd = (int)(intptr_t)((void **)arg)[1];
	free(arg);
	cio_stream *st;
	cio_http_server_opts o = {.max_body = UINT64_MAX};
	if (cio_stream_new(&st, fd, NULL) == 0) {
		if (!s->tls || cio_stream_tls_accept(st, s->tls) == 0)
			cio_http_serve_conn(st, &o, handler, s);
		cio_stream_close(st);
	}
	cio_wg_done(&s->conns);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct server *s = arg;
	for (;;) {
		int fd = cio_accept(s->lfd, NULL);
		if (fd < 0)
			break;
		s->accepted++;
		void **a = malloc(2 * sizeof *a);
		CHECK(a);
		a[0] = s;
		a[1] = (void *)(intptr_t)fd;
		cio_wg_add(&s->conns, 1);
		CHECK(cio_spawn_with(&(cio_spawn_opts){.detached = true}, serve_main, a) > 0);
	}
	return NULL;
}

static void listen_any(int *lfd, char *addr, size_t cap)
{
	*lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(*lfd >= 0);
	cio_addr a;
	CHECK_EQ(cio_local_addr(*lfd, &a), 0);
	snprintf(addr, cap, "127.0.0.1:%d", ntohs(a.u.in.sin_port));
}

static void server_start(struct server *s)
{
	memset(s, 0, sizeof *s);
	cio_wg_init(&s->conns);
	listen_any(&s->lfd, s->addr, sizeof s->addr);
	s->acceptor = cio_spawn(accept_main, s);
	CHECK(s->acceptor > 0);
}

static void server_stop(struct server *s)
{
	cio_cancel(s->acceptor);
	CHECK_EQ(cio_join(s->acceptor, NULL), 0);
	cio_close(s->lfd);
	CIO_WITH_TIMEOUT(5 * CIO_SEC) {
		CHECK_EQ(cio_wg_wait(&s->conns), 0);
	}
}

/* Waits (up to 5 s) for the client's open connections to come to none:
 * closes that run on tasks of their own, after a timer or a drain, come
 * when they are scheduled, not by a fixed sleep's end. */
static void wait_none_open(cio_http_client *cl)
{
	cio_http_client_stats st;
	for (int i = 0; i < 5000; i++) {
		cio_http_client_stats_get(cl, &st);
		if (st.open == 0)
			return;
		CHECK_EQ(cio_sleep(CIO_MS), 0);
	}
	CHECK_EQ(st.open, 0);
}

/* One call: returns the status, the body in *body (the caller frees). */
static int fetch(cio_http_client *cl, const char *method, const char *target,
		 const void *data, size_t len, char **body, size_t *blen)
{
	cio_http_call *call;
	CHECK_EQ(cio_http_call_new(cl, method, target, &call), 0);
	int rc = 0;
	if (len)
		rc = (int)cio_http_call_write(call, data, len);
	if (rc >= 0)
		rc = cio_http_call_send(call);
	if (rc > 0 && body) {
		const char *b;
		ssize_t n = cio_http_call_body(call, 64 << 20, &b);
		if (n < 0) {
			rc = (int)n;
		} else {
			*body = malloc((size_t)n + 1);
			memcpy(*body, b, (size_t)n + 1);
			*blen = (size_t)n;
		}
	}
	cio_http_call_free(call);
	return rc;
}

/* --- keep-alive, bodies, response kinds ---------------------------------- */

static void test_basics(void)
{
	struct server s;
	server_start(&s);
	cio_http_client *cl;
	CHECK_EQ(cio_http_client_new(&cl, "127.0.0.1", NULL), -EINVAL);
	CHECK_EQ(cio_http_client_new(&cl, s.addr, NULL), 0);
	cio_http_call *call;
	CHECK_EQ(cio_http_call_new(cl, "G T", "/", &call), -EINVAL);
	CHECK_EQ(cio_http_call_new(cl, "GET", "/a b", &call), -EINVAL);
	CHECK_EQ(cio_http_call_new(cl, "GET", "", &call), -EINVAL);

	/* 100 requests in turn: one connection. */
	for (int i = 0; i < 100; i++) {
		char target[32], want[16];
		snprintf(target, sizeof target, "/id/%d", i);
		snprintf(want, sizeof want, "%d", i);
		CHECK_EQ(cio_http_call_new(cl, "GET", target, &call), 0);
		CHECK_EQ(cio_http_call_add_header(call, "X-Any", "thing"), 0);
		CHECK_EQ(cio_http_call_add_header(call, "Content-Length", "3"), -EINVAL);
		CHECK_EQ(cio_http_call_add_header(call, "Connection", "close"), -EINVAL);
		CHECK_EQ(cio_http_call_add_header(call, "X-Bad", "a\r\nb"), -EINVAL);
		CHECK_EQ(cio_http_call_read(call, target, 1), -EINVAL);
		CHECK_EQ(cio_http_call_send(call), 200);
		CHECK_EQ(cio_http_call_version(call), 11);
		CHECK_EQ(cio_http_call_content_length(call), (int64_t)strlen(want));
		CHECK(strcmp(cio_http_call_header(call, "x-id"), want) == 0);
		CHECK(cio_http_call_header_count(call) >= 3);
		const char *b;
		CHECK_EQ(cio_http_call_body(call, 100, &b), (ssize_t)strlen(want));
		CHECK(strcmp(b, want) == 0);
		cio_http_call_free(call);
	}
	cio_http_client_stats st;
	cio_http_client_stats_get(cl, &st);
	CHECK_EQ(st.dialled, 1);
	CHECK_EQ(st.reused, 99);
	CHECK_EQ(st.open, 1);
	CHECK_EQ(st.idle, 1);

	/* Request bodies: held (Content-Length) and streamed (chunked). */
	static const size_t sizes[] = {1, 1000, 65536, 65537, 300000, 4 << 20};
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		size_t len = sizes[k];
		char *data = malloc(len);
		for (size_t i = 0; i < len; i++)
			data[i] = (char)pat(i + k);
		CHECK_EQ(cio_http_call_new(cl, "POST", "/echo", &call), 0);
		/* In uneven pieces. */
		for (size_t off = 0; off < len;) {
			size_t n = len - off < 30011 ? len - off : 30011;
			CHECK_EQ(cio_http_call_write(call, data + off, n), (ssize_t)n);
			off += n;
		}
		CHECK_EQ(cio_http_call_send(call), 200);
		CHECK_EQ(cio_http_call_write(call, "x", 1), -EALREADY);
		char *got = malloc(len);
		size_t have = 0;
		ssize_t n;
		while ((n = cio_http_call_read(call, got + have, len - have + 1)) > 0)
			have += (size_t)n;
		CHECK_EQ(n, 0);
		CHECK_EQ(have, len);
		CHECK(memcmp(got, data, len) == 0);
		cio_http_call_free(call);
		free(got);
		free(data);
	}
	/* An announced length: a short body is refused, a long write too. */
	CHECK_EQ(cio_http_call_new(cl, "PUT", "/echo", &call), 0);
	CHECK_EQ(cio_http_call_set_length(call, 4), 0);
	CHECK_EQ(cio_http_call_write(call, "abcde", 5), -EMSGSIZE);
	CHECK_EQ(cio_http_call_write(call, "abc", 3), 3);
	CHECK_EQ(cio_http_call_send(call), -EPROTO);
	CHECK(strstr(cio_http_call_error(call), "shorter"));
	cio_http_call_free(call);
	/* A POST without a body, HEAD, 204, a big chunked response. */
	char *body;
	size_t blen;
	CHECK_EQ(fetch(cl, "POST", "/echo", NULL, 0, &body, &blen), 200);
	CHECK_EQ(blen, 0);
	free(body);
	CHECK_EQ(cio_http_call_new(cl, "HEAD", "/id/12345", &call), 0);
	CHECK_EQ(cio_http_call_send(call), 200);
	CHECK_EQ(cio_http_call_content_length(call), 0);
	CHECK(strcmp(cio_http_call_header(call, "Content-Length"), "5") == 0);
	CHECK_EQ(cio_http_call_read(call, &blen, 1), 0);
	cio_http_call_free(call);
	CHECK_EQ(fetch(cl, "GET", "/nobody", NULL, 0, &body, &blen), 204);
	CHECK_EQ(blen, 0);
	free(body);
	CHECK_EQ(fetch(cl, "GET", "/big/1000000", NULL, 0, &body, &blen), 200);
	CHECK_EQ(blen, 1000000);
	for (size_t i = 0; i < blen; i++)
		if ((uint8_t)body[i] != pat(i))
			CHECK(!"big body differs");
	free(body);
	/* A body left unread closes its connection; a read one keeps it. */
	cio_http_client_stats_get(cl, &st);
	uint64_t dialled = st.dialled;
	CHECK_EQ(cio_http_call_new(cl, "GET", "/big/1000000", &call), 0);
	CHECK_EQ(cio_http_call_send(call), 200);
	CHECK_EQ(cio_http_call_content_length(call), -1);
	cio_http_call_free(call);
	CHECK_EQ(fetch(cl, "GET", "/close", NULL, 0, &body, &blen), 200);
	free(body);
	CHECK_EQ(fetch(cl, "GET", "/id/7", NULL, 0, &body, &blen), 200);
	free(body);
	cio_http_client_stats_get(cl, &st);
	CHECK_EQ(st.dialled, dialled + 2);
	CHECK_EQ(st.open, 1);
	CHECK_EQ(cio_http_client_free(cl), 0);
	server_stop(&s);
}

/* --- many tasks, few connections -------------------------------------------- */

struct many {
	cio_http_client *cl;
	int task, bad;
};

static void *many_task(void *arg)
{
	struct many *m = arg;
	for (int i = 0; i < 20; i++) {
		char target[48], want[32], *body;
		size_t blen;
		snprintf(want, sizeof want, "%d-%d", m->task, i);
		snprintf(target, sizeof target, "/id/%s", want);
		int rc = fetch(m->cl, "GET", target, NULL, 0, &body, &blen);
		if (rc != 200 || strcmp(body, want) != 0)
			m->bad++;
		if (rc == 200)
			free(body);
		if (i % 5 == 0) {
			/* A slow one now and then, holding its connection. */
			rc = fetch(m->cl, "GET", "/slow", NULL, 0, &body, &blen);
			if (rc != 200 || strcmp(body, "late") != 0)
				m->bad++;
			if (rc == 200)
				free(body);
		}
	}
	return NULL;
}

static void test_many(void)
{
	struct server s;
	server_start(&s);
	cio_http_client *cl;
	cio_http_client_opts o = {.max_conns = 8, .max_idle = 4};
	CHECK_EQ(cio_http_client_new(&cl, s.addr, &o), 0);
	enum { TASKS = 50 };
	struct many m[TASKS];
	cio_task_t t[TASKS];
	for (int i = 0; i < TASKS; i++) {
		m[i] = (struct many){cl, i, 0};
		t[i] = cio_spawn(many_task, &m[i]);
		CHECK(t[i] > 0);
	}
	for (int i = 0; i < TASKS; i++) {
		CHECK_EQ(cio_join(t[i], NULL), 0);
		CHECK_EQ(m[i].bad, 0);
	}
	cio_http_client_stats st;
	cio_http_client_stats_get(cl, &st);
	CHECK(st.open <= 4);
	CHECK(st.waited > 0);
	CHECK(s.accepted >= 8);
	CHECK(st.dialled == (uint64_t)s.accepted);
	CHECK_EQ(cio_http_client_free(cl), 0);
	server_stop(&s);
}

/* --- hand-written servers ---------------------------------------------------- */

/* A server that answers each connection with script(fd, n), n counting
 * its connections from 0. */
struct raw {
	int lfd;
	char addr[64];
	void (*script)(int fd, int n);
	cio_task_t acceptor;
	cio_wg conns;
	int accepted;
	int requests;
	int closed;   /* connections the script ended and closed */
};

static struct raw *raw_now;

static void *raw_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	raw_now->script(fd, raw_now->accepted - 1);
	cio_close(fd);
	raw_now->closed++;
	cio_wg_done(&raw_now->conns);
	return NULL;
}

static void *raw_accept(void *arg)
{
	struct raw *r = arg;
	for (;;) {
		int fd = cio_accept(r->lfd, NULL);
		if (fd < 0)
			break;
		r->accepted++;
		cio_wg_add(&r->conns, 1);
		CHECK(cio_spawn_with(&(cio_spawn_opts){.detached = true}, raw_conn,
				     (void *)(intptr_t)fd) > 0);
	}
	return NULL;
}

static void raw_start(struct raw *r, void (*script)(int, int))
{
	memset(r, 0, sizeof *r);
	r->script = script;
	cio_wg_init(&r->conns);
	listen_any(&r->lfd, r->addr, sizeof r->addr);
	raw_now = r;
	r->acceptor = cio_spawn(raw_accept, r);
}

/* Until the server has closed every connection it accepted (not a fixed
 * sleep: a stalled process may run the client first). */
static void raw_wait_closed(struct raw *r)
{
	for (int i = 0; i < 5000 && r->closed < r->accepted; i++)
		CHECK_EQ(cio_sleep(CIO_MS), 0);
	CHECK_EQ(r->closed, r->accepted);
}

static void raw_stop(struct raw *r)
{
	cio_cancel(r->acceptor);
	CHECK_EQ(cio_join(r->acceptor, NULL), 0);
	cio_close(r->lfd);
	CIO_WITH_TIMEOUT(5 * CIO_SEC) {
		CHECK_EQ(cio_wg_wait(&r->conns), 0);
	}
	raw_now = NULL;
}

/* Reads one request's head (no body expected); false at the end. */
static bool read_request(int fd)
{
	char buf[4096];
	size_t len = 0;
	while (len < sizeof buf - 1) {
		ssize_t n = cio_recv(fd, buf + len, sizeof buf - 1 - len, 0);
		if (n <= 0)
			return false;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n")) {
			raw_now->requests++;
			return true;
		}
	}
	return false;
}

static void send_all(int fd, const char *s)
{
	CHECK_EQ(cio_send(fd, s, strlen(s), 0), (ssize_t)strlen(s));
}

#define OK_RESPONSE "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

/* One response per connection, then a close the client is not told of. */
static void script_one_then_close(int fd, int n)
{
	(void)n;
	if (read_request(fd))
		send_all(fd, OK_RESPONSE);
	cio_sleep(20 * CIO_MS);
}

static void test_stale(void)
{
	struct raw r;
	raw_start(&r, script_one_then_close);
	cio_http_client *cl;
	CHECK_EQ(cio_http_client_new(&cl, r.addr, NULL), 0);
	char *body;
	size_t blen;
	cio_http_client_stats st;
	for (int i = 0; i < 3; i++) {
		/* The kept connection is closed by now: a GET fails on it and
		 * goes again on a new one. */
		CHECK_EQ(fetch(cl, "GET", "/", NULL, 0, &body, &blen), 200);
		CHECK(strcmp(body, "ok") == 0);
		free(body);
		raw_wait_closed(&r);
	}
	cio_http_client_stats_get(cl, &st);
	CHECK_EQ(st.retried, 2);
	CHECK_EQ(st.dialled, 3); /* each retry's connection is the next one kept */
	CHECK_EQ(st.reused, 2);
	/* A POST is not sent on it: the close is seen first. */
	CHECK_EQ(fetch(cl, "POST", "/", "x", 1, &body, &blen), 200);
	free(body);
	cio_http_client_stats_get(cl, &st);
	CHECK_EQ(st.retried, 2);
	CHECK_EQ(cio_http_client_free(cl), 0);
	raw_stop(&r);
}

/* Responses a client must refuse or read with care, by connection. */
static void script_odd(int fd, int n)
{
	static const char *const answers[] = {
		/* 0 */ "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok",
		/* 1 */ "HTTP/1.1 200 OK\r\nX-A: a\r\n  folded\r\nContent-Length: 2\r\n\r\nok",
		/* 2 */ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		/* 3 */ "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly",
		/* 4 */ "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		/* 5 */ "HTTP/1.0 200 OK\r\n\r\nuntil the close",
		/* 6 */ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		/* 7 */ "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
		/* 8 */ "",
		/* 9 */ "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		/* 10 */ "HTTP/1.1 900 OK\r\nContent-Length: 0\r\n\r\n",
		/* 11 */ NULL, /* silence */
	};
	if (!read_request(fd))
		return;
	if (n == 8) {
		/* A head over max_head (4 KiB here): the client may close
		 * before it is all sent. */
		static const char line[] =
			"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
		send_all(fd, "HTTP/1.1 200 OK\r\n");
		for (int i = 0; i < 100; i++)
			if (cio_send(fd, line, sizeof line - 1, 0) < 0)
				break;
	} else if (n < 11) {
		send_all(fd, answers[n]);
	} else {
		cio_sleep(2 * CIO_SEC);
	}
	cio_sleep(50 * CIO_MS);
}

static void test_odd_responses(void)
{
	struct raw r;
	raw_start(&r, script_odd);
	cio_http_client *cl;
	cio_http_client_opts o = {.max_head = 4096, .response_timeout = 200 * CIO_MS,
				  .max_idle = 1};
	CHECK_EQ(cio_http_client_new(&cl, r.addr, &o), 0);
	cio_http_call *call;
	char buf[64];
	/* Each call gets a connection of its own: freeing a failed call
	 * closes its connection. */
	for (int n = 0; n <= 11; n++) {
		CHECK_EQ(cio_http_call_new(cl, "GET", "/", &call), 0);
		int rc = cio_http_call_send(call);
		switch (n) {
		case 0: case 1: case 2: case 7: case 8: case 9: case 10:
			CHECK_EQ(rc, -EPROTO);
			CHECK(cio_http_call_error(call)[0]);
			break;
		case 3:
			CHECK_EQ(rc, 200);
			CHECK_EQ(cio_http_call_read(call, buf, sizeof buf), 4);
			CHECK_EQ(cio_http_call_read(call, buf, sizeof buf), -EPIPE);
			break;
		case 4:
			CHECK_EQ(rc, 200);
			CHECK_EQ(cio_http_call_read(call, buf, sizeof buf), 2);
			break;
		case 5: {
			CHECK_EQ(rc, 200);
			CHECK_EQ(cio_http_call_version(call), 10);
			CHECK_EQ(cio_http_call_content_length(call), -1);
			const char *b;
			CHECK_EQ(cio_http_call_body(call, 100, &b), 15);
			CHECK(strcmp(b, "until the close") == 0);
			break;
		}
		case 6:
			CHECK_EQ(rc, 200);
			CHECK_EQ(cio_http_call_read(call, buf, sizeof buf), -EPROTO);
			break;
		case 11:
			CHECK_EQ(rc, -ETIMEDOUT);
			CHECK(strstr(cio_http_call_error(call), "in time"));
			break;
		}
		if (n == 8)
			CHECK(strstr(cio_http_call_error(call), "too long"));
		cio_http_call_free(call);
		cio_http_client_stats st;
		cio_http_client_stats_get(cl, &st);
		/* Only the whole response of connection 4 may be kept. */
		CHECK_EQ(st.idle, n == 4 ? 1 : 0);
		if (n == 4) {
			/* ... and it is, but its server closed it: it is
			 * dropped unused, as no retry is needed for it. */
			cio_http_client_free(cl);
			CHECK_EQ(cio_http_client_new(&cl, r.addr, &o), 0);
		}
	}
	CHECK_EQ(cio_http_client_free(cl), 0);
	raw_stop(&r);

	/* Nobody listening. */
	int lfd;
	char addr[64];
	listen_any(&lfd, addr, sizeof addr);
	cio_close(lfd);
	CHECK_EQ(cio_http_client_new(&cl, addr, NULL), 0);
	CHECK_EQ(cio_http_call_new(cl, "GET", "/", &call), 0);
	CHECK_EQ(cio_http_call_send(call), -ECONNREFUSED);
	CHECK(strstr(cio_http_call_error(call), "refused"));
	CHECK_EQ(cio_http_call_read(call, buf, 1), -ECONNREFUSED);
	cio_http_client_stats st;
	cio_http_client_stats_get(cl, &st);
	CHECK_EQ(st.dial_errors, 1);
	CHECK_EQ(st.open, 0);
	CHECK_EQ(cio_http_client_free(cl), -EBUSY);
	cio_http_call_free(call);
	CHECK_EQ(cio_http_client_free(cl), 0);
}

/* A response that comes in one piece, longer than the client's read
 * buffer (16 KiB): what the socket holds past the buffer is read ahead,
 * without waiting, so that one read of the body takes all of it. */
#define AHEAD_BODY (16 << 10)

static void script_one_piece(int fd, int n)
{
	(void)n;
	static char msg[AHEAD_BODY + 64];
	int head = snprintf(msg, sizeof msg, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
			    AHEAD_BODY);
	for (int i = 0; i < AHEAD_BODY; i++)
		msg[head + i] = (char)pat((uint64_t)i);
	/* Room for all of it in the socket: it leaves in one piece. */
	int big = 1 << 20;
	CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big), 0);
	if (read_request(fd))
		CHECK_EQ(cio_send_all(fd, msg, (size_t)head + AHEAD_BODY, 0, NULL),
			 head + AHEAD_BODY);
	read_request(fd); /* until the client closes */
}

static void test_read_ahead(void)
{
	struct raw r;
	raw_start(&r, script_one_piece);
	cio_http_client *cl;
	CHECK_EQ(cio_http_client_new(&cl, r.addr, NULL), 0);
	cio_http_call *call;
	CHECK_EQ(cio_http_call_new(cl, "GET", "/", &call), 0);
	CHECK_EQ(cio_http_call_send(call), 200);
	static char buf[2 * AHEAD_BODY];
	CHECK_EQ(cio_http_call_read(call, buf, sizeof buf), AHEAD_BODY);
	for (int i = 0; i < AHEAD_BODY; i++)
		CHECK_EQ((uint8_t)buf[i], pat((uint64_t)i));
	CHECK_EQ(cio_http_call_read(call, buf, sizeof buf), 0);
	cio_http_call_free(call);
	CHECK_EQ(cio_http_client_free(cl), 0);
	raw_stop(&r);
}

/* --- idle connections: expiry, free, drain ------------------------------------ */

#ifdef COREIO_TEST_TLS
/* https: the certificate checked against a CA file and the name. */
static void test_tls(void)
{
	char dir[] = "/tmp/coreio-http-client-XXXXXX", cert[96], key[96], cmd[512];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(cert, sizeof cert, "%s/cert.pem", dir);
	snprintf(key, sizeof key, "%s/key.pem", dir);
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout %s -out %s -days 2 -subj /CN=localhost "
		 "-addext subjectAltName=DNS:localhost 2>/dev/null", key, cert);
	CHECK_EQ(system(cmd), 0);
	struct server s;
	server_start(&s);
	char why[256];
	cio_tls_cert c = {.cert_file = cert, .key_file = key};
	cio_tls_server_opts so = {.certs = &c, .ncerts = 1};
	CHECK_EQ(cio_tls_server_ctx(&s.tls, &so, why, sizeof why), 0);
	cio_tls_ctx *trusting, *system_cas;
	cio_tls_client_opts co = {.ca_file = cert};
	CHECK_EQ(cio_tls_client_ctx(&trusting, &co, why, sizeof why), 0);
	cio_tls_client_opts sys = {0};
	CHECK_EQ(cio_tls_client_ctx(&system_cas, &sys, why, sizeof why), 0);

	/* The origin by address, the name given: three calls, one handshake. */
	cio_http_client *cl;
	cio_http_client_opts o = {.tls = trusting, .server_name = "localhost"};
	CHECK_EQ(cio_http_client_new(&cl, s.addr, &o), 0);
	char *body;
	size_t blen;
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(fetch(cl, "POST", "/echo", "secret", 6, &body, &blen), 200);
		CHECK(strcmp(body, "secret") == 0);
		free(body);
	}
	cio_http_client_stats st;
	cio_http_client_stats_get(cl, &st);
	CHECK_EQ(st.dialled, 1);
	CHECK_EQ(cio_http_client_free(cl), 0);

	/* A name the certificate does not carry; a CA not trusted. */
	cio_http_call *call;
	o.server_name = "example.com";
	CHECK_EQ(cio_http_client_new(&cl, s.addr, &o), 0);
	CHECK_EQ(cio_http_call_new(cl, "GET", "/id/1", &call), 0);
	CHECK_EQ(cio_http_call_send(call), -EPROTO);
	CHECK(strstr(cio_http_call_error(call), "mismatch"));
	cio_http_call_free(call);
	CHECK_EQ(cio_http_client_free(cl), 0);
	o = (cio_http_client_opts){.tls = system_cas, .server_name = "localhost"};
	CHECK_EQ(cio_http_client_new(&cl, s.addr, &o), 0);
	CHECK_EQ(cio_http_call_new(cl, "GET", "/id/1", &call), 0);
	CHECK_EQ(cio_http_call_send(call), -EPROTO);
	CHECK(strstr(cio_http_call_error(call), "self-signed"));
	cio_http_call_free(call);
	CHECK_EQ(cio_http_client_free(cl), 0);

	server_stop(&s);
	cio_tls_ctx_free(s.tls);
	cio_tls_ctx_free(trusting);
	cio_tls_ctx_free(system_cas);
	CHECK_EQ(unlink(cert), 0);
	CHECK_EQ(unlink(key), 0);
	CHECK_EQ(rmdir(dir), 0);
}
#endif

/* Last: the runtime drains. */
static void test_drain(void)
{
	struct server srv, *s = &srv;
	server_start(s);
	cio_http_client *cl;
	CHECK_EQ(cio_http_client_new(&cl, s->addr, NULL), 0);
	char *body;
	size_t blen;
	CHECK_EQ(fetch(cl, "GET", "/id/1", NULL, 0, &body, &blen), 200);
	free(body);
	cio_http_client_stats st;
	cio_http_client_stats_get(cl, &st);
	CHECK_EQ(st.idle, 1);
	/* A second client freed while the drain has its idle task closing
	 * (a close may park): the task outlives the free, the client too. */
	cio_http_client *cl2;
	CHECK_EQ(cio_http_client_new(&cl2, s->addr, NULL), 0);
	CHECK_EQ(fetch(cl2, "GET", "/id/2", NULL, 0, &body, &blen), 200);
	free(body);
	cio_drain();
	cio_yield();
	CHECK_EQ(cio_http_client_free(cl2), 0);
	wait_none_open(cl);
	CHECK_EQ(cio_http_client_free(cl), 0);
	server_stop(s);
}

static void test_idle(void)
{
	struct server s;
	server_start(&s);
	cio_http_client *cl;
	cio_http_client_opts o = {.idle_timeout = 100 * CIO_MS};
	CHECK_EQ(cio_http_client_new(&cl, s.addr, &o), 0);
	char *body;
	size_t blen;
	CHECK_EQ(fetch(cl, "GET", "/id/1", NULL, 0, &body, &blen), 200);
	free(body);
	cio_http_client_stats st;
	cio_http_client_stats_get(cl, &st);
	CHECK_EQ(st.idle, 1);
	int64_t t0 = cio_now();
	wait_none_open(cl);
	CHECK(cio_now() - t0 >= 90 * CIO_MS); /* by the idle timeout, not before */
	/* Freed with an idle connection: its task closes it. */
	CHECK_EQ(fetch(cl, "GET", "/id/2", NULL, 0, &body, &blen), 200);
	free(body);
	CHECK_EQ(cio_http_client_free(cl), 0);
	cio_sleep(10 * CIO_MS);
	server_stop(&s);
}

static void *test_main(void *arg)
{
	(void)arg;
	int fds = test_count_fds();
	TEST_CASE(basics, test_basics());
	TEST_CASE(many, test_many());
	TEST_CASE(stale, test_stale());
	TEST_CASE(odd_responses, test_odd_responses());
	TEST_CASE(read_ahead, test_read_ahead());
	TEST_CASE(idle, test_idle());
#ifdef COREIO_TEST_TLS
	TEST_CASE(tls, test_tls());
#else
	TEST_CASE_OFF(tls, "no TLS in this build");
#endif
	TEST_CASE(drain, test_drain());
	CHECK_EQ(test_count_fds(), fds);
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_run(test_main, NULL);
	return rc ? rc : test_cases_end();
}
