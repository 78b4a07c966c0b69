/* fuzz_http_client.c - libFuzzer target for the HTTP/1.1 client: the
 * input is what a server answers, on every connection the client makes
 * to it.  The first byte picks the calls (a GET, a HEAD, a POST with a
 * small body, in turn as its bits say) and the second the size of the
 * pieces the server writes; the rest is the answer, after which the
 * server ends its side.  The client parses it with the checks it makes
 * on any upstream.  Checked: every call ends in a status of 200 to 599 or
 * an error the header documents for it; a body never holds more bytes
 * than the server sent; nothing leaks (fuzz_rt.c), the client's idle
 * task included.  Each input runs as a task of the process's runtime. */
#include "fuzz_rt.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define FAIL(...) (fprintf(stderr, "fuzz_http_client: " __VA_ARGS__), fputc('\n', stderr), abort())

struct run {
	const uint8_t *data;
	size_t size, piece;
	unsigned calls;
	int lfd;
	cio_wg conns;
};

struct conn {
	struct run *r;
	int fd;
};

/* One connection: takes what the client sends, answers with the input,
 * ends its side, and waits (briefly) for the client to close. */
static void *serve_conn(void *arg)
{
	struct conn c = *(struct conn *)arg;
	free(arg);
	char buf[4096];
	CIO_WITH_TIMEOUT(200 * CIO_MS) {
		cio_recv(c.fd, buf, sizeof buf, 0);
	}
	for (size_t off = 0; off < c.r->size;) {
		size_t n = c.r->size - off < c.r->piece ? c.r->size - off : c.r->piece;
		if (cio_send(c.fd, c.r->data + off, n, MSG_NOSIGNAL) < 0)
			break;
		off += n;
		cio_yield();
	}
	shutdown(c.fd, SHUT_WR);
	CIO_WITH_TIMEOUT(200 * CIO_MS) {
		while (cio_recv(c.fd, buf, sizeof buf, 0) > 0)
			;
	}
	cio_close(c.fd);
	cio_wg_done(&c.r->conns);
	return NULL;
}

static void *acceptor(void *arg)
{
	struct run *r = arg;
	int fd;
	while ((fd = cio_accept(r->lfd, NULL)) >= 0) {
		struct conn *c = malloc(sizeof *c);
		if (!c)
			abort();
		*c = (struct conn){r, fd};
		cio_wg_add(&r->conns, 1);
		if (cio_spawn_with(&(cio_spawn_opts){.detached = true}, serve_conn, c) < 0)
			FAIL("spawn");
	}
	return NULL;
}

static bool documented(int rc)
{
	switch (-rc) {
	case EPROTO: case EPIPE: case ECONNRESET: case ETIMEDOUT: case ECANCELED:
	case ENOMEM: case ECONNREFUSED: case EMSGSIZE:
		return true;
	}
	return false;
}

static void one_call(cio_http_client *cl, int kind, size_t sent)
{
	static const char *const methods[] = {"GET", "HEAD", "POST"};
	cio_http_call *call;
	if (cio_http_call_new(cl, methods[kind], "/f", &call) < 0)
		FAIL("call_new");
	if (kind == 2 && cio_http_call_write(call, "0123456789", 10) != 10)
		FAIL("write");
	int st = cio_http_call_send(call);
	if (st < 0 && !documented(st))
		FAIL("send: %d (%s)", st, cio_http_call_error(call));
	if (st >= 0 && (st < 200 || st > 599))
		FAIL("status %d", st);
	if (st > 0) {
		char buf[1024];
		size_t got = 0;
		ssize_t n;
		while ((n = cio_http_call_read(call, buf, sizeof buf)) > 0)
			got += (size_t)n;
		if (n < 0 && !documented((int)n))
			FAIL("read: %zd (%s)", n, cio_http_call_error(call));
		if (got > sent)
			FAIL("a body of %zu bytes from %zu sent", got, sent);
		if (kind == 1 && got)
			FAIL("a body of %zu bytes after HEAD", got);
	}
	cio_http_call_free(call);
}

static void *one_input(void *arg)
{
	struct run *r = arg;
	cio_stats st0, st;
	cio_stats_get(&st0);
	r->lfd = cio_listen("127.0.0.1:0", NULL);
	if (r->lfd < 0)
		FAIL("listen: %d", r->lfd);
	cio_addr a;
	char origin[64];
	if (cio_local_addr(r->lfd, &a) < 0 || cio_addr_format(&a, origin, sizeof origin) < 0)
		FAIL("address");
	cio_wg_init(&r->conns);
	cio_task_t t = cio_spawn(acceptor, r);
	if (t < 0)
		FAIL("spawn");
	cio_http_client *cl;
	cio_http_client_opts o = {.connect_timeout = 500 * CIO_MS,
				  .response_timeout = 500 * CIO_MS, .io_timeout = 500 * CIO_MS,
				  .max_head = 2048, .max_headers = 20};
	if (cio_http_client_new(&cl, origin, &o) < 0)
		FAIL("client_new");
	for (int i = 0; i < 8; i++)
		if (r->calls >> i & 1)
			one_call(cl, i % 3, r->size);
	if (cio_http_client_free(cl) < 0)
		FAIL("client_free");
	cio_cancel(t);
	cio_join(t, NULL);
	cio_close(r->lfd);
	CIO_WITH_TIMEOUT(5 * CIO_SEC) {
		if (cio_wg_wait(&r->conns) < 0)
			FAIL("a server connection hung");
	}
	/* The client's idle task ends once it has run. */
	for (int i = 0; i < 100; i++) {
		cio_stats_get(&st);
		if (st.tasks_live <= st0.tasks_live)
			break;
		cio_yield();
	}
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	struct run r = {.data = data + 2, .size = size - 2, .piece = 1 + data[1] * 7u,
			.calls = data[0] ? data[0] : 1};
	fuzz_rt_run(one_input, &r);
	return 0;
}
