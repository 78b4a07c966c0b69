/* http_server.c - the HTTP/1.1 server's connection loop: one connection
 * served by one task over a stream, requests parsed by llhttp (strict
 * mode), the handler called for each, responses in order.
 *
 * llhttp is a push parser; here it is driven over the stream's read
 * buffer: the buffered bytes are handed to llhttp_execute() and the
 * bytes it parsed are consumed.  Two callbacks pause it: the end of a
 * request's head (when a body follows), so that the body stays buffered
 * until the handler asks for it, and the end of a request, so that a
 * pipelined next request waits for its turn.  A body read feeds llhttp at
 * most as many bytes as the caller's buffer holds: the body bytes it
 * reports (fewer, with chunk framing) always fit, and are copied straight
 * into that buffer. */
#include "http.h"
#include "../platform/fail.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEF_MAX_HEAD (16 * 1024)
#define DEF_MAX_HEADERS 100
#define DEF_MAX_BODY (1024 * 1024)
#define DEF_HEAD_TIMEOUT (10 * CIO_SEC)
#define DEF_IDLE_TIMEOUT (60 * CIO_SEC)
#define DEF_BODY_TIMEOUT (30 * CIO_SEC)
#define DEF_DISCARD (64 * 1024)
#define DEF_SEND_TIMEOUT (30 * CIO_SEC)
#define LINGER_BYTES (256 * 1024)

/* --- parsing ---------------------------------------------------------------- */

static struct conn *conn_of(llhttp_t *p)
{
	return CIO__HTTP_OWNER(p, struct conn, in.p);
}

static int on_headers_complete(llhttp_t *p)
{
	struct conn *c = conn_of(p);
	if (cio__http_in_head_end(&c->in) < 0)
		return -1;
	if (p->flags & F_TRANSFER_ENCODING) {
		/* llhttp itself refuses a request whose Transfer-Encoding
		 * does not end in chunked, but only after this callback:
		 * refuse it here, before any handler sees it.  HTTP/1.0 has
		 * no chunked coding: a 1.0 request that claims it is framed
		 * two ways (RFC 9112 section 6.1). */
		if (!(p->flags & F_CHUNKED) || p->http_minor == 0)
			return cio__http_in_refuse(&c->in, 400);
	}
	/* Exactly one Host in HTTP/1.1, at most one in 1.0 (RFC 9112
	 * section 3.2): a proxy and its upstream must not pick different
	 * ones. */
	static const struct cio__http_name host[] = {CIO__HTTP_NAME("host"), {NULL, 0}};
	size_t hosts = 0;
	for (size_t i = 0; i < c->in.nfields; i++)
		hosts += cio__http_name_in(cio__http_field_name(&c->in, i),
					   c->in.fields[i].value - c->in.fields[i].name - 1, host);
	if (hosts > 1 || (hosts == 0 && p->http_minor == 1))
		return cio__http_in_refuse(&c->in, 400);
	if (!(p->flags & F_CHUNKED) && p->content_length > c->o.max_body)
		return cio__http_in_refuse(&c->in, 413);
	const char *expect = cio__http_find_field(&c->in, "expect");
	if (expect) {
		if (strcasecmp(expect, "100-continue") != 0)
			return cio__http_in_refuse(&c->in, 417);
		c->expect_continue = p->http_minor == 1;
	}
	c->body_start = cio_now();
	/* With a body, stop here: it stays buffered for the handler.  Without
	 * one llhttp goes on to the request's end, which stops it too. */
	if ((p->flags & F_CHUNKED) || p->content_length > 0)
		return HPE_PAUSED;
	return 0;
}

static const llhttp_settings_t settings = {
	.on_url = cio__http_on_first,
	.on_url_complete = cio__http_on_first_complete,
	.on_header_field = cio__http_on_header_field,
	.on_header_field_complete = cio__http_on_header_field_complete,
	.on_header_value = cio__http_on_header_value,
	.on_header_value_complete = cio__http_on_header_value_complete,
	.on_headers_complete = on_headers_complete,
	.on_body = cio__http_on_body,
	.on_message_complete = cio__http_on_message_complete,
};

static int feed(struct conn *c, size_t max)
{
	return cio__http_in_feed(&c->in, c->s, max);
}

/* Before the task waits for bytes: what it wrote goes out, so that a
 * peer waiting for a response before it sends more is never stuck. */
static int flush_pending(struct conn *c)
{
	if (c->s->wtail == c->s->whead)
		return 0;
	int err;
	CIO_WITH_TIMEOUT(c->o.send_timeout) {
		err = cio_stream_flush(c->s);
	}
	return err;
}

/* Waits for more bytes, until cio_now() + timeout and at most until
 * `until`.  Returns the bytes buffered (> 0), 0 at the end of the
 * stream, or -errno. */
static ssize_t fill_until(struct conn *c, int64_t timeout, int64_t until)
{
	int err = flush_pending(c);
	if (err < 0)
		return err;
	size_t have;
	cio_stream_peek(c->s, &have);
	ssize_t n;
	int64_t now = cio_now();
	if (timeout != CIO_NEVER && timeout < until - now)
		until = now + timeout;
	if (until == CIO_NEVER) {
		n = cio_stream_fill(c->s, have + 1);
	} else {
		CIO_WITH_DEADLINE(until) {
			n = cio_stream_fill(c->s, have + 1);
		}
	}
	if (n >= 0 && (size_t)n <= have)
		return 0; /* it ended; what is buffered was fed already */
	return n;
}

static ssize_t fill_more(struct conn *c, int64_t timeout)
{
	return fill_until(c, timeout, CIO_NEVER);
}

/* When the body must have come to keep min_body_rate: body_timeout
 * after its start, plus a second per min_body_rate bytes come. */
static int64_t rate_deadline(const struct conn *c)
{
	if (!c->o.min_body_rate)
		return CIO_NEVER;
	double due = (double)c->body_start + (double)c->o.body_timeout +
		     (double)c->in.body_total / (double)c->o.min_body_rate * 1e9;
	return due >= (double)CIO_NEVER ? CIO_NEVER : (int64_t)due;
}

/* --- the body --------------------------------------------------------------- */

/* Sends "100 Continue" on the first body read of a request that expects
 * it, unless a final response began. */
static int send_continue(struct conn *c)
{
	c->continue_sent = true;
	if (c->head_sent)
		return 0;
	static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
	ssize_t n = cio_stream_put(c->s, line, sizeof line - 1);
	if (n >= 0)
		n = flush_pending(c);
	return n < 0 ? (int)n : 0;
}

/* Reads body bytes into dst (NULL: drops them), at most len.  Returns
 * the count, 0 at the body's end, or -errno (kept: later reads repeat
 * it). */
ssize_t cio__http_body_read(struct conn *c, char *dst, size_t len, int64_t timeout)
{
	if (c->body_err)
		return c->body_err;
	if (c->in.msg_done)
		return 0;
	if (len == 0)
		return 0;
	if (c->expect_continue && !c->continue_sent) {
		int err = send_continue(c);
		if (err < 0)
			return c->body_err = err;
	}
	for (;;) {
		size_t have;
		cio_stream_peek(c->s, &have);
		if (have == 0) {
			ssize_t n = fill_until(c, timeout, rate_deadline(c));
			if (n <= 0) {
				c->close = true;
				return c->body_err = n == 0 ? -EPIPE : (int)n;
			}
		}
		c->in.dst = dst;
		c->in.got = 0;
		int status = feed(c, len);
		c->in.dst = NULL;
		if (status) {
			c->close = true;
			return c->body_err = status == 413 ? -EMSGSIZE : -EPROTO;
		}
		if (c->in.got > 0)
			cio__http_in_read_ahead(&c->in, c->s, dst, len);
		if (c->in.got > 0 || c->in.msg_done)
			return (ssize_t)c->in.got;
	}
}

/* --- the connection -------------------------------------------------------- */

/* The lingering close, when the server ends the connection: the writing
 * half ends and what the peer still sends is read and dropped for a
 * while, so that the response is not lost to the reset that closing a
 * socket with unread bytes would send.  Idle for the drain meanwhile. */
static void linger(struct conn *c)
{
	cio_drain_idle(true);
	CIO_WITH_TIMEOUT(CIO__HTTP_ERROR_WAIT) {
		if (cio_stream_shutdown(c->s) == 0) {
			char sink[4096];
			size_t dropped = 0;
			ssize_t n;
			while (dropped < LINGER_BYTES &&
			       (n = cio_stream_read(c->s, sink, sizeof sink)) > 0)
				dropped += (size_t)n;
		}
	}
	cio_drain_idle(false);
}

static void next_request(struct conn *c)
{
	cio__http_in_next(&c->in);
	c->body_err = 0;
	c->expect_continue = c->continue_sent = false;
	free(c->body_all);
	c->body_all = NULL;
	c->code = 200;
	c->out_len = 0;
	c->length = -1;
	c->written = 0;
	c->head_sent = c->ended = c->chunked = c->no_body = c->close = false;
}

/* Reads the next request's head.  Returns 1 with it parsed, 0 when the
 * connection ended (the peer left, the idle timeout, a drain), or -errno;
 * *status is then the refusal to answer with (0: none). */
static int read_head(struct conn *c, int *status)
{
	size_t have;
	*status = 0;
	cio_stream_peek(c->s, &have);
	if (have == 0) {
		/* Between requests: idle for the drain, bounded by the idle
		 * timeout; the end of the stream or either ends it quietly.
		 * A new connection's first byte is due within the head
		 * timeout too: a client that opens and says nothing holds a
		 * task no longer than one that sends its head slowly. */
		int64_t wait = c->o.idle_timeout;
		if (!c->served && c->o.head_timeout < wait)
			wait = c->o.head_timeout;
		cio_drain_idle(true);
		ssize_t n = fill_more(c, wait);
		cio_drain_idle(false);
		if (n <= 0)
			return n == -ETIMEDOUT || n == -ECANCELED ? 0 : (int)n;
	}
	int64_t tok = cio_timeout_push(c->o.head_timeout);
	int rc = 1;
	for (;;) {
		/* One byte over the limit tells a head that is too long. */
		size_t room = c->o.max_head + 1 - c->in.head_bytes;
		int st = feed(c, room);
		if (st) {
			*status = st;
			rc = st == 413 ? -EMSGSIZE : -EPROTO;
			break;
		}
		if (c->in.head_bytes > c->o.max_head) {
			*status = 431;
			rc = -EPROTO;
			break;
		}
		if (c->in.head_done)
			break;
		ssize_t n = fill_more(c, CIO_NEVER);
		if (n <= 0) {
			if (n == -ETIMEDOUT && cio_deadline_expired(tok)) {
				*status = 408;
				rc = -ETIMEDOUT;
			} else {
				/* A peer that leaves inside a head just leaves. */
				rc = n == 0 ? 0 : (int)n;
			}
			break;
		}
	}
	cio_deadline_pop(tok);
	if (rc == 1)
		c->served = true;
	return rc;
}

/* After the handler: the rest of an unread body is read and dropped, up
 * to discard_limit, so that the next request can be found.  Returns
 * whether the connection can go on. */
static bool discard_body(struct conn *c)
{
	if (c->in.msg_done)
		return true;
	if (c->body_err || (c->expect_continue && !c->continue_sent))
		return false; /* the client waits for a 100 it will not get */
	uint64_t start = c->in.body_total;
	while (!c->in.msg_done) {
		if (c->in.body_total - start > c->o.discard_limit)
			return false;
		if (cio__http_body_read(c, NULL, 16384, c->o.body_timeout) < 0)
			return false;
	}
	return true;
}

/* Serves one request whose head is parsed.  Returns 0 to go on with the
 * next, 1 to end the connection cleanly, or -errno. */
static int serve_request(struct conn *c, cio_http_handler *h, void *arg)
{
	int rc = h(&c->req, &c->resp, arg);
	if (!c->head_sent) {
		int status = 500;
		if (rc == 0 && !c->ended)
			rc = -EPROTO; /* it never responded */
		if (c->body_err == -EMSGSIZE)
			status = 413;
		else if (c->body_err == -ETIMEDOUT)
			status = 408;
		else if (c->body_err == -EPROTO)
			status = 400;
		if (rc < 0 || c->body_err) {
			cio__http_refuse(c, status);
			return rc < 0 ? rc : c->body_err;
		}
	}
	if (rc < 0)
		return rc; /* the response cannot be finished */
	if (!c->ended && cio_http_resp_end(&c->resp) < 0)
		return c->s->last_err ? c->s->last_err : -EPROTO;
	if (c->broken)
		return c->s->last_err ? c->s->last_err : -EPROTO;
	if (c->close)
		return 1;
	if (!discard_body(c))
		return 1;
	return 0;
}

/* A connection's state over stream s, or NULL (memory). */
static struct conn *conn_new(cio_stream *s, const cio_http_server_opts *opts)
{
	struct conn *c = cio__calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->s = s;
	if (opts)
		c->o = *opts;
	if (!c->o.max_head)
		c->o.max_head = DEF_MAX_HEAD;
	if (!c->o.max_headers)
		c->o.max_headers = DEF_MAX_HEADERS;
	if (!c->o.max_body)
		c->o.max_body = DEF_MAX_BODY;
	if (!c->o.head_timeout)
		c->o.head_timeout = DEF_HEAD_TIMEOUT;
	if (!c->o.idle_timeout)
		c->o.idle_timeout = DEF_IDLE_TIMEOUT;
	if (!c->o.body_timeout)
		c->o.body_timeout = DEF_BODY_TIMEOUT;
	if (!c->o.discard_limit)
		c->o.discard_limit = DEF_DISCARD;
	if (!c->o.send_timeout)
		c->o.send_timeout = DEF_SEND_TIMEOUT;
	if (cio__http_in_init(&c->in, HTTP_REQUEST, &settings, c->o.max_head,
			      c->o.max_headers, c->o.max_body) < 0) {
		free(c);
		return NULL;
	}
	/* Responses leave whole (the write buffer coalesces them): Nagle's
	 * wait would only delay a response's last piece, or a pipelined
	 * client's next one.  On a Unix socket it fails, harmlessly. */
	cio_tcp_nodelay(cio_stream_fd(s), true);
	c->req.c = c;
	c->resp.c = c;
	next_request(c);
	return c;
}

static void conn_free(struct conn *c)
{
	free(c->peer);
	free(c->body_all);
	free(c->fields_out);
	cio__http_in_free(&c->in);
	free(c);
}

/* Between two requests with nothing buffered: gives back the memory that
 * only a request in progress needs (the stream's buffers, the parser's
 * head, the response's fields).  Returns 0, or -EBUSY when bytes are
 * buffered (a pipelined request), or a failed flush's -errno. */
static int conn_park(struct conn *c)
{
	int err = flush_pending(c);
	if (err < 0)
		return err;
	if ((err = cio__stream_park(c->s)) < 0)
		return err;
	cio__http_in_free(&c->in);
	free(c->fields_out);
	c->fields_out = NULL;
	c->out_cap = 0;
	return 0;
}

static int conn_unpark(struct conn *c)
{
	if (cio__stream_unpark(c->s) < 0 || cio__http_in_unpark(&c->in) < 0)
		return -ENOMEM;
	return 0;
}

/* Serves requests until the connection ends: 0 when it ended cleanly,
 * or -errno.  With `turn`, also returns CIO_SERVE_AGAIN (parked) once a
 * response is out and nothing of a next request has come. */
static int conn_run(struct conn *c, cio_http_handler *h, void *arg, bool turn)
{
	for (;;) {
		int status;
		int rc = read_head(c, &status);
		if (rc <= 0) {
			if (status) {
				cio__http_refuse(c, status);
				c->server_closes = true;
			}
			return rc;
		}
		rc = serve_request(c, h, arg);
		if (rc != 0) {
			c->server_closes = true;
			return rc > 0 ? 0 : rc;
		}
		next_request(c);
		if (turn) {
			rc = conn_park(c);
			if (rc == 0)
				return CIO_SERVE_AGAIN;
			if (rc == -ETIMEDOUT || rc == -ECANCELED)
				return 0; /* as read_head() ends between requests */
			if (rc != -EBUSY)
				return rc;
		}
	}
}

/* The connection's end on the server's side: the lingering close when it
 * is the one that ends it. */
static void conn_end(struct conn *c)
{
	if (c->server_closes && !c->broken)
		linger(c);
}

int cio_http_serve_conn(cio_stream *s, const cio_http_server_opts *opts,
			cio_http_handler *h, void *arg)
{
	if (!s || !h)
		return -EINVAL;
	struct conn *c = conn_new(s, opts);
	if (!c)
		return -ENOMEM;
	int rc = conn_run(c, h, arg, false);
	conn_end(c);
	conn_free(c);
	return rc;
}

int cio_http_serve_turn(int fd, cio_tls_ctx *tls, const cio_http_server_opts *opts,
			cio_http_handler *h, void *arg)
{
	void **state = cio_serve_state();
	if (!state || !h) {
		if (state && *state) {
			cio_http_turn_free(NULL, *state);
			*state = NULL;
		}
		cio_close(fd);
		return -EINVAL;
	}
	struct conn *c = *state;
	int rc;
	if (!c) {
		cio_stream *s;
		if ((rc = cio_stream_new(&s, fd, NULL)) < 0)
			return rc; /* fd closed */
		if (tls && (rc = cio_stream_tls_accept(s, tls)) < 0) {
			cio_stream_close(s);
			return rc;
		}
		if (!(c = conn_new(s, opts))) {
			cio_stream_close(s);
			return -ENOMEM;
		}
		*state = c;
	} else if ((rc = conn_unpark(c)) < 0) {
		/* Its request cannot be read: it ends, as if it had been
		 * closed while idle (a client retries that). */
		*state = NULL;
		cio_stream_close(c->s);
		conn_free(c);
		return rc;
	}
	rc = conn_run(c, h, arg, true);
	if (rc == CIO_SERVE_AGAIN)
		return rc;
	*state = NULL;
	conn_end(c);
	cio_stream_close(c->s);
	conn_free(c);
	return rc;
}

void cio_http_turn_free(void *arg, void *state)
{
	struct conn *c = state;
	(void)arg;
	if (!c)
		return;
	cio__stream_free(c->s);
	conn_free(c);
}

void cio_http_turn_opts(cio_serve_opts *so, const cio_http_server_opts *opts)
{
	int64_t head = opts && opts->head_timeout ? opts->head_timeout : DEF_HEAD_TIMEOUT;
	int64_t idle = opts && opts->idle_timeout ? opts->idle_timeout : DEF_IDLE_TIMEOUT;
	so->idle_first = true;
	/* As cio_http_serve_conn() bounds a new connection's first byte. */
	so->first_timeout = head < idle ? head : idle;
	so->idle_timeout = idle;
	so->state_free = cio_http_turn_free;
}
