/* uv_echo.c - the libuv peer of coreio's echo server: a single-threaded
 * libuv echo server in plain C, written the way libuv's own examples and
 * its users write one.
 *
 *   uv_echo [PORT [HOST]]        default 7000 on 127.0.0.1
 *
 * Each connection reads into a buffer from alloc_cb (one 16 KiB buffer
 * per connection, reused: libuv calls read_cb before the next alloc_cb on
 * that stream) and echoes with uv_try_write, which is what a tuned libuv
 * server does; what the kernel does not take goes out with uv_write from a
 * heap copy, and reading stops until it is written (back-pressure).
 * SIGINT or SIGTERM stops it cleanly (exit 0). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define BUF_SIZE (16 << 10)
#define BACKLOG 4096

struct conn {
	uv_tcp_t tcp;
	uv_write_t wr;
	char *pending; /* what uv_try_write left, being written */
	char buf[BUF_SIZE];
};

static uv_loop_t *loop;
static uv_tcp_t server;
static uv_signal_t sigterm, sigint;

static void on_close(uv_handle_t *h)
{
	struct conn *c = h->data;
	free(c->pending);
	free(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)hint;
	struct conn *c = h->data;
	*buf = uv_buf_init(c->buf, sizeof c->buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_written(uv_write_t *wr, int status)
{
	struct conn *c = wr->data;
	free(c->pending);
	c->pending = NULL;
	if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
		uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	if (n == 0)
		return; /* EAGAIN */
	if (n < 0) {
		uv_close((uv_handle_t *)s, on_close);
		return;
	}
	uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
	int w = uv_try_write(s, &out, 1);
	if (w == n)
		return;
	if (w < 0 && w != UV_EAGAIN) {
		uv_close((uv_handle_t *)s, on_close);
		return;
	}
	if (w < 0)
		w = 0;
	/* The socket is full: write the rest, read again once it is out. */
	c->pending = malloc((size_t)(n - w));
	if (!c->pending) {
		uv_close((uv_handle_t *)s, on_close);
		return;
	}
	memcpy(c->pending, buf->base + w, (size_t)(n - w));
	uv_read_stop(s);
	uv_buf_t rest = uv_buf_init(c->pending, (unsigned)(n - w));
	c->wr.data = c;
	if (uv_write(&c->wr, s, &rest, 1, on_written) < 0)
		uv_close((uv_handle_t *)s, on_close);
}

static void on_connection(uv_stream_t *srv, int status)
{
	if (status < 0) {
		fprintf(stderr, "uv_echo: accept: %s\n", uv_strerror(status));
		return;
	}
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return;
	uv_tcp_init(loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(srv, (uv_stream_t *)&c->tcp) < 0) {
		uv_close((uv_handle_t *)&c->tcp, on_close);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
		uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_signal(uv_signal_t *h, int sig)
{
	(void)h;
	(void)sig;
	uv_stop(loop);
}

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 7000;
	const char *host = argc > 2 ? argv[2] : "127.0.0.1";
	struct sockaddr_in sa;
	if (port <= 0 || port > 65535 || uv_ip4_addr(host, port, &sa) < 0) {
		fprintf(stderr, "usage: %s [PORT [IPV4-HOST]]\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	loop = uv_default_loop();
	uv_tcp_init(loop, &server);
	int rc = uv_tcp_bind(&server, (const struct sockaddr *)&sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&server, BACKLOG, on_connection);
	if (rc < 0) {
		fprintf(stderr, "uv_echo: listen on %s:%d: %s\n", host, port, uv_strerror(rc));
		return 1;
	}
	uv_signal_init(loop, &sigterm);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_init(loop, &sigint);
	uv_signal_start(&sigint, on_signal, SIGINT);
	printf("uv_echo: listening on %s:%d, backend epoll, libuv %s, pid %d\n", host, port,
	       uv_version_string(), (int)getpid());
	fflush(stdout);
	uv_run(loop, UV_RUN_DEFAULT);
	/* Open connections close with the process. */
	return 0;
}
