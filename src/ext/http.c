/* http.c - the HTTP/1.1 server: one connection served by one task over a
 * stream, requests parsed by llhttp (strict mode), bodies streamed both
 * ways, responses written in order.
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
#include "stream.h"

#include <llhttp.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEF_MAX_HEAD (16 * 1024)
#define DEF_MAX_HEADERS 100
#define DEF_MAX_BODY (1024 * 1024)
#define DEF_HEAD_TIMEOUT (10 * CIO_SEC)
#define DEF_IDLE_TIMEOUT (60 * CIO_SEC)
#define DEF_BODY_TIMEOUT (30 * CIO_SEC)
#define DEF_DISCARD (64 * 1024)
/* The response's own fields: more is a handler's bug, not a need. */
#define MAX_RESP_FIELDS (64 * 1024)
/* An error response and the lingering close after it, at most: a peer
 * that neither reads nor closes cannot hold the task longer. */
#define ERROR_WAIT (1 * CIO_SEC)
#define LINGER_BYTES (256 * 1024)

struct field {
	uint32_t name, value; /* offsets of NUL-terminated strings in head */
};

struct cio_http_resp {
	struct conn *c;
};

struct cio_http_req {
	struct conn *c;
};

/* One connection's state; its parser, head and fields are reused from
 * one request to the next. */
struct conn {
	cio_stream *s;
	cio_http_server_opts o;
	llhttp_t p;
	cio_http_req req;
	cio_http_resp resp;

	/* The head of the request being parsed: the target (first), names
	 * and values, each NUL-terminated, in `head`. */
	char *head;
	size_t head_cap, head_len;
	struct field *fields;
	size_t nfields;
	size_t head_bytes;      /* bytes of the head parsed so far */
	bool value_open;        /* the last field's value is not ended */
	const char *exec_start, *exec_end; /* the bytes llhttp has now */
	bool value_seen;        /* the open value had a span */
	bool value_cut;         /* ... which the end of those bytes cut */
	int status;             /* the 4xx/5xx a callback refused with */

	/* The request's progress. */
	bool head_done, msg_done;
	char *dst;              /* a body read's buffer; NULL: discard */
	size_t got;             /* body bytes reported by this feed */
	uint64_t body_total;
	int64_t body_start;     /* when the head ended */
	int body_err;           /* a body read's failure, kept */
	bool expect_continue, continue_sent;
	char *body_all;         /* cio_http_req_body()'s copy */

	/* The response. */
	int code;
	char *fields_out;       /* "Name: value\r\n"..., the handler's */
	size_t out_len, out_cap;
	int64_t length;         /* announced length, or -1 */
	uint64_t written;
	bool head_sent, ended, chunked, no_body, close, broken;
};

/* --- parsing ---------------------------------------------------------------- */

static struct conn *conn_of(llhttp_t *p)
{
	return p->data;
}

/* Refuses the request with status from inside a callback: llhttp stops
 * with an error. */
static int refuse(struct conn *c, int status)
{
	c->status = status;
	return -1;
}

/* Appends a span to the head; false when it would overflow (431). */
static bool head_add(struct conn *c, const char *at, size_t len)
{
	if (c->head_len + len + 1 > c->head_cap)
		return false;
	memcpy(c->head + c->head_len, at, len);
	c->head_len += len;
	return true;
}

static bool head_end_string(struct conn *c)
{
	if (c->head_len + 1 > c->head_cap)
		return false;
	c->head[c->head_len++] = '\0';
	return true;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = conn_of(p);
	return head_add(c, at, len) ? 0 : refuse(c, 431);
}

static int on_url_complete(llhttp_t *p)
{
	struct conn *c = conn_of(p);
	return head_end_string(c) ? 0 : refuse(c, 431);
}

/* Ends the last field's value, which llhttp may leave without a
 * value_complete when it is empty. */
static bool end_value(struct conn *c)
{
	if (!c->value_open)
		return true;
	c->value_open = false;
	return head_end_string(c);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = conn_of(p);
	if (c->nfields == 0 || c->fields[c->nfields - 1].value != UINT32_MAX) {
		/* A new field (else a name cut by the end of the bytes). */
		if (!end_value(c))
			return refuse(c, 431);
		if (c->nfields == c->o.max_headers)
			return refuse(c, 431);
		c->fields[c->nfields++] = (struct field){(uint32_t)c->head_len, UINT32_MAX};
	}
	return head_add(c, at, len) ? 0 : refuse(c, 431);
}

static int on_header_field_complete(llhttp_t *p)
{
	struct conn *c = conn_of(p);
	if (!head_end_string(c))
		return refuse(c, 431);
	c->fields[c->nfields - 1].value = (uint32_t)c->head_len;
	c->value_open = true;
	c->value_seen = false;
	return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = conn_of(p);
	/* llhttp accepts obs-fold (a line that starts with a space continues
	 * the value), which RFC 9112 lets a server refuse and a proxy must
	 * not pass on: it shows as a second span of the same value, where
	 * the only second span allowed is one continuing a span that the end
	 * of the last execute's bytes cut, from the start of the next. */
	if (c->value_seen && !(c->value_cut && at == c->exec_start))
		return refuse(c, 400);
	if (memchr(at, '\r', len) || memchr(at, '\n', len))
		return refuse(c, 400);
	c->value_seen = true;
	c->value_cut = at + len == c->exec_end;
	return head_add(c, at, len) ? 0 : refuse(c, 431);
}

static int on_header_value_complete(llhttp_t *p)
{
	return end_value(conn_of(p)) ? 0 : refuse(conn_of(p), 431);
}

static const char *field_name(const struct conn *c, size_t i)
{
	return c->head + c->fields[i].name;
}

static const char *field_value(const struct conn *c, size_t i)
{
	return c->head + c->fields[i].value;
}

static const char *find_field(const struct conn *c, const char *name)
{
	for (size_t i = 0; i < c->nfields; i++)
		if (strcasecmp(field_name(c, i), name) == 0)
			return field_value(c, i);
	return NULL;
}

static int on_headers_complete(llhttp_t *p)
{
	struct conn *c = conn_of(p);
	if (!end_value(c))
		return refuse(c, 431);
	if (!(p->http_major == 1 && (p->http_minor == 0 || p->http_minor == 1)))
		return refuse(c, 505);
	if (p->flags & F_TRANSFER_ENCODING) {
		/* llhttp itself refuses a request whose Transfer-Encoding
		 * does not end in chunked, but only after this callback:
		 * refuse it here, before any handler sees it.  HTTP/1.0 has
		 * no chunked coding: a 1.0 request that claims it is framed
		 * two ways (RFC 9112 section 6.1). */
		if (!(p->flags & F_CHUNKED) || p->http_minor == 0)
			return refuse(c, 400);
	}
	if (!(p->flags & F_CHUNKED) && p->content_length > c->o.max_body)
		return refuse(c, 413);
	const char *expect = find_field(c, "expect");
	if (expect) {
		if (strcasecmp(expect, "100-continue") != 0)
			return refuse(c, 417);
		c->expect_continue = p->http_minor == 1;
	}
	c->head_done = true;
	c->body_start = cio_now();
	/* With a body, stop here: it stays buffered for the handler.  Without
	 * one llhttp goes on to the request's end, which stops it too. */
	if ((p->flags & F_CHUNKED) || p->content_length > 0)
		return HPE_PAUSED;
	return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = conn_of(p);
	if (c->body_total + len > c->o.max_body || c->body_total + len < c->body_total)
		return refuse(c, 413);
	c->body_total += len;
	if (c->dst)
		memcpy(c->dst + c->got, at, len);
	c->got += len;
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	conn_of(p)->msg_done = true;
	return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
	.on_url = on_url,
	.on_url_complete = on_url_complete,
	.on_header_field = on_header_field,
	.on_header_field_complete = on_header_field_complete,
	.on_header_value = on_header_value,
	.on_header_value_complete = on_header_value_complete,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* Hands at most max buffered bytes to llhttp and consumes what it
 * parsed.  Returns 0, or the status to refuse the request with (400,
 * 413, 431, ...). */
static int feed(struct conn *c, size_t max)
{
	size_t len;
	const char *data = cio_stream_peek(c->s, &len);
	if (len > max)
		len = max;
	if (len == 0)
		return 0;
	c->exec_start = data;
	c->exec_end = data + len;
	bool in_head = !c->head_done;
	llhttp_errno_t e = llhttp_execute(&c->p, data, len);
	size_t used = len;
	if (e == HPE_PAUSED) {
		used = (size_t)(llhttp_get_error_pos(&c->p) - data);
		llhttp_resume(&c->p);
	} else if (e != HPE_OK) {
		return c->status ? c->status : 400;
	}
	if (in_head)
		c->head_bytes += used;
	cio_stream_consume(c->s, used);
	return 0;
}

/* Before the task waits for bytes: what it wrote goes out, so that a
 * peer waiting for a response before it sends more is never stuck. */
static int flush_pending(struct conn *c)
{
	if (c->s->wtail == c->s->whead)
		return 0;
	return cio_stream_flush(c->s);
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
		     (double)c->body_total / (double)c->o.min_body_rate * 1e9;
	return due >= (double)CIO_NEVER ? CIO_NEVER : (int64_t)due;
}

/* --- responses --------------------------------------------------------------- */

static const char *reason(int code)
{
	switch (code) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Status";
	}
}

/* The Date field's value, formatted once a second per thread. */
static const char *http_date(void)
{
	static _Thread_local char text[40];
	static _Thread_local time_t at;
	time_t now = time(NULL);
	if (now != at || !text[0]) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		at = now;
	}
	return text;
}

/* The connection stays open after this response only if the client and
 * the handler both want it, no drain runs, and the body has a length. */
static bool keep_alive(struct conn *c)
{
	/* A body the client holds back for a 100 it will not get cannot be
	 * skipped to the next request.  (One too long to read and drop is
	 * found out only after the handler: the connection then closes
	 * unannounced, as a server may.) */
	bool stuck = !c->msg_done &&
		     ((c->expect_continue && !c->continue_sent) || c->body_err);
	return !c->close && !c->broken && !stuck && llhttp_should_keep_alive(&c->p) &&
	       !cio_draining() && !c->p.upgrade;
}

static int put_str(struct conn *c, const char *str)
{
	ssize_t n = cio_stream_put(c->s, str, strlen(str));
	return n < 0 ? (int)n : 0;
}

/* Writes the status line and the fields, and settles the framing. */
static int send_head(struct conn *c)
{
	char line[160];
	int code = c->code;
	bool head_method = c->p.method == HTTP_HEAD;
	c->head_sent = true;
	c->no_body = head_method || code == 204 || code == 304;
	bool framed = code != 204 && code != 304;
	if (framed && c->length < 0 && !head_method) {
		if (c->p.http_minor >= 1)
			c->chunked = true;
		else
			c->close = true; /* HTTP/1.0: the close ends the body */
	}
	bool ka = keep_alive(c);
	if (!ka)
		c->close = true;
	int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\nDate: %s\r\n", code,
			 reason(code), http_date());
	if (cio_stream_put(c->s, line, (size_t)n) < 0 ||
	    (c->out_len && cio_stream_put(c->s, c->fields_out, c->out_len) < 0))
		goto broken;
	if (framed && c->length >= 0) {
		n = snprintf(line, sizeof line, "Content-Length: %" PRId64 "\r\n", c->length);
		if (cio_stream_put(c->s, line, (size_t)n) < 0)
			goto broken;
	} else if (c->chunked && put_str(c, "Transfer-Encoding: chunked\r\n") < 0) {
		goto broken;
	}
	if (!ka && put_str(c, "Connection: close\r\n") < 0)
		goto broken;
	if (ka && c->p.http_minor == 0 && put_str(c, "Connection: keep-alive\r\n") < 0)
		goto broken;
	if (put_str(c, "\r\n") < 0)
		goto broken;
	return 0;
broken:
	c->broken = true;
	return c->s->last_err ? c->s->last_err : -EIO;
}

static int ensure_head(struct conn *c)
{
	if (c->head_sent)
		return c->broken ? -EPIPE : 0;
	return send_head(c);
}

/* A refusal: status and a one-line body, then the connection closes. */
static void refuse_request(struct conn *c, int status)
{
	char body[96];
	if (c->head_sent)
		return;
	c->code = status;
	c->length = snprintf(body, sizeof body, "%d %s\n", status, reason(status));
	c->close = true;
	c->out_len = 0;
	CIO_WITH_TIMEOUT(ERROR_WAIT) {
		if (send_head(c) == 0 && !c->no_body)
			cio_stream_put(c->s, body, (size_t)c->length);
	}
}

/* The lingering close, when the server ends the connection: the writing
 * half ends and what the peer still sends is read and dropped for a
 * while, so that the response is not lost to the reset that closing a
 * socket with unread bytes would send.  Idle for the drain meanwhile. */
static void linger(struct conn *c)
{
	cio_drain_idle(true);
	CIO_WITH_TIMEOUT(ERROR_WAIT) {
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

/* --- the request's calls --------------------------------------------------- */

const char *cio_http_req_method(const cio_http_req *req)
{
	return llhttp_method_name((llhttp_method_t)req->c->p.method);
}

const char *cio_http_req_target(const cio_http_req *req)
{
	return req->c->head;
}

int cio_http_req_version(const cio_http_req *req)
{
	return req->c->p.http_major * 10 + req->c->p.http_minor;
}

size_t cio_http_req_header_count(const cio_http_req *req)
{
	return req->c->nfields;
}

int cio_http_req_header_at(const cio_http_req *req, size_t i, const char **name,
			   const char **value)
{
	if (i >= req->c->nfields)
		return -ENOENT;
	if (name)
		*name = field_name(req->c, i);
	if (value)
		*value = field_value(req->c, i);
	return 0;
}

const char *cio_http_req_header(const cio_http_req *req, const char *name)
{
	return find_field(req->c, name);
}

int64_t cio_http_req_content_length(const cio_http_req *req)
{
	if (req->c->p.flags & F_CHUNKED)
		return -1;
	return (req->c->p.flags & F_CONTENT_LENGTH) ? (int64_t)req->c->body_total +
			(int64_t)req->c->p.content_length : 0;
}

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
		n = cio_stream_flush(c->s);
	return n < 0 ? (int)n : 0;
}

/* Reads body bytes into dst (NULL: drops them), at most len.  Returns
 * the count, 0 at the body's end, or -errno (kept: later reads repeat
 * it). */
static ssize_t body_read(struct conn *c, char *dst, size_t len, int64_t timeout)
{
	if (c->body_err)
		return c->body_err;
	if (c->msg_done)
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
		c->dst = dst;
		c->got = 0;
		int status = feed(c, len);
		c->dst = NULL;
		if (status) {
			c->close = true;
			return c->body_err = status == 413 ? -EMSGSIZE : -EPROTO;
		}
		if (c->got > 0 || c->msg_done)
			return (ssize_t)c->got;
	}
}

ssize_t cio_http_req_read(cio_http_req *req, void *buf, size_t len)
{
	return body_read(req->c, buf, len, req->c->o.body_timeout);
}

ssize_t cio_http_req_body(cio_http_req *req, size_t limit, const char **body)
{
	struct conn *c = req->c;
	size_t len = 0, cap = 0;
	char *buf = NULL;
	*body = NULL;
	/* Room for one byte over the limit, to see a body that is longer. */
	size_t most = limit < SIZE_MAX - 1 ? limit + 1 : SIZE_MAX - 1;
	for (;;) {
		if (cap - len < 4096 && cap < most) {
			size_t ncap = cap ? cap * 2 : 4096;
			if (ncap > most || ncap < cap)
				ncap = most;
			char *nbuf = realloc(buf, ncap + 1);
			if (!nbuf) {
				free(buf);
				return -ENOMEM;
			}
			buf = nbuf;
			cap = ncap;
		}
		ssize_t n = cio_http_req_read(req, buf + len, cap - len);
		if (n < 0) {
			free(buf);
			return n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > limit) {
			/* Too long for this handler: a 413 if it gives up. */
			free(buf);
			c->close = true;
			return c->body_err = -EMSGSIZE;
		}
	}
	buf[len] = '\0';
	free(c->body_all);
	c->body_all = buf;
	*body = buf;
	return (ssize_t)len;
}

/* --- the response's calls -------------------------------------------------- */

int cio_http_resp_status(cio_http_resp *resp, int status)
{
	if (resp->c->head_sent)
		return -EALREADY;
	if (status < 200 || status > 599)
		return -EINVAL;
	resp->c->code = status;
	return 0;
}

static bool is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

int cio_http_resp_header(cio_http_resp *resp, const char *name, const char *value)
{
	struct conn *c = resp->c;
	if (c->head_sent)
		return -EALREADY;
	if (!is_token(name) || strpbrk(value, "\r\n") ||
	    strcasecmp(name, "content-length") == 0 ||
	    strcasecmp(name, "transfer-encoding") == 0 || strcasecmp(name, "connection") == 0)
		return -EINVAL;
	size_t nl = strlen(name), vl = strlen(value), need = nl + vl + 4;
	if (c->out_len + need > MAX_RESP_FIELDS)
		return -ENOSPC;
	if (c->out_len + need > c->out_cap) {
		size_t ncap = c->out_cap ? c->out_cap : 512;
		while (ncap < c->out_len + need)
			ncap *= 2;
		char *n = realloc(c->fields_out, ncap);
		if (!n)
			return -ENOMEM;
		c->fields_out = n;
		c->out_cap = ncap;
	}
	char *o = c->fields_out + c->out_len;
	memcpy(o, name, nl);
	memcpy(o + nl, ": ", 2);
	memcpy(o + nl + 2, value, vl);
	memcpy(o + nl + 2 + vl, "\r\n", 2);
	c->out_len += need;
	return 0;
}

int cio_http_resp_set_length(cio_http_resp *resp, uint64_t len)
{
	if (resp->c->head_sent)
		return -EALREADY;
	if (len > INT64_MAX)
		return -EINVAL;
	resp->c->length = (int64_t)len;
	return 0;
}

int cio_http_resp_close(cio_http_resp *resp)
{
	if (resp->c->head_sent && !resp->c->close)
		return -EALREADY;
	resp->c->close = true;
	return 0;
}

/* Fails the response for good: the connection closes after it. */
static ssize_t broke(struct conn *c, ssize_t err)
{
	c->broken = true;
	return err;
}

ssize_t cio_http_resp_write(cio_http_resp *resp, const void *data, size_t len)
{
	struct conn *c = resp->c;
	if (c->ended)
		return -EALREADY;
	if (c->length >= 0 && c->written + len > (uint64_t)c->length)
		return -EMSGSIZE;
	int err = ensure_head(c);
	if (err < 0)
		return err;
	c->written += len;
	if (c->no_body || len == 0)
		return (ssize_t)len;
	if (c->chunked) {
		char size[24];
		int n = snprintf(size, sizeof size, "%zx\r\n", len);
		if (cio_stream_put(c->s, size, (size_t)n) < 0 ||
		    cio_stream_put(c->s, data, len) < 0 || cio_stream_put(c->s, "\r\n", 2) < 0)
			return broke(c, c->s->last_err);
		return (ssize_t)len;
	}
	ssize_t n = cio_stream_put(c->s, data, len);
	return n < 0 ? broke(c, n) : n;
}

ssize_t cio_http_resp_sendfile(cio_http_resp *resp, int file, int64_t off, size_t len)
{
	struct conn *c = resp->c;
	if (c->ended)
		return -EALREADY;
	if (!c->head_sent && c->length < 0 && c->written == 0)
		c->length = (int64_t)len;
	if (c->length >= 0 && c->written + len > (uint64_t)c->length)
		return -EMSGSIZE;
	int err = ensure_head(c);
	if (err < 0)
		return err;
	if (c->no_body || len == 0) {
		c->written += len;
		return (ssize_t)len;
	}
	if (c->chunked) {
		char size[24];
		int n = snprintf(size, sizeof size, "%zx\r\n", len);
		if (cio_stream_put(c->s, size, (size_t)n) < 0)
			return broke(c, c->s->last_err);
	}
	size_t moved = 0;
	ssize_t n = cio_stream_sendfile(c->s, file, off, len, &moved);
	c->written += moved;
	if (n < 0 || moved < len)
		return broke(c, n < 0 ? n : (ssize_t)moved);
	if (c->chunked && cio_stream_put(c->s, "\r\n", 2) < 0)
		return broke(c, c->s->last_err);
	return (ssize_t)moved;
}

int cio_http_resp_flush(cio_http_resp *resp)
{
	struct conn *c = resp->c;
	int err = ensure_head(c);
	if (err < 0)
		return err;
	err = cio_stream_flush(c->s);
	return err < 0 ? (int)broke(c, err) : 0;
}

int cio_http_resp_end(cio_http_resp *resp)
{
	struct conn *c = resp->c;
	if (c->ended)
		return 0;
	if (!c->head_sent && c->length < 0 && c->written == 0 && c->code != 204 &&
	    c->code != 304)
		c->length = 0; /* nothing written: an empty body, not chunked */
	int err = ensure_head(c);
	c->ended = true;
	if (err < 0)
		return err;
	if (c->length >= 0 && c->written < (uint64_t)c->length && !c->no_body)
		return (int)broke(c, -EPROTO);
	if (c->chunked && !c->no_body && put_str(c, "0\r\n\r\n") < 0)
		return (int)broke(c, c->s->last_err);
	/* No pipelined request waits: the response goes out now.  With one,
	 * it goes with the next response's bytes, or before the next wait
	 * for bytes. */
	size_t have;
	cio_stream_peek(c->s, &have);
	if (have == 0 && (err = cio_stream_flush(c->s)) < 0)
		return (int)broke(c, err);
	return 0;
}

int cio_http_resp_send(cio_http_resp *resp, int status, const char *content_type,
		       const void *body, size_t len)
{
	int err = cio_http_resp_status(resp, status);
	if (err == 0 && content_type)
		err = cio_http_resp_header(resp, "Content-Type", content_type);
	if (err == 0)
		err = cio_http_resp_set_length(resp, len);
	if (err == 0 && len) {
		ssize_t n = cio_http_resp_write(resp, body, len);
		err = n < 0 ? (int)n : 0;
	}
	return err ? err : cio_http_resp_end(resp);
}

/* --- the connection -------------------------------------------------------- */

static void next_request(struct conn *c)
{
	c->head_len = 0;
	c->nfields = 0;
	c->head_bytes = 0;
	c->value_open = false;
	c->status = 0;
	c->head_done = c->msg_done = false;
	c->body_total = 0;
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
		 * timeout; the end of the stream or either ends it quietly. */
		cio_drain_idle(true);
		ssize_t n = fill_more(c, c->o.idle_timeout);
		cio_drain_idle(false);
		if (n <= 0)
			return n == -ETIMEDOUT || n == -ECANCELED ? 0 : (int)n;
	}
	int64_t tok = cio_timeout_push(c->o.head_timeout);
	int rc = 1;
	for (;;) {
		/* One byte over the limit tells a head that is too long. */
		size_t room = c->o.max_head + 1 - c->head_bytes;
		int st = feed(c, room);
		if (st) {
			*status = st;
			rc = st == 413 ? -EMSGSIZE : -EPROTO;
			break;
		}
		if (c->head_bytes > c->o.max_head) {
			*status = 431;
			rc = -EPROTO;
			break;
		}
		if (c->head_done)
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
	return rc;
}

/* After the handler: the rest of an unread body is read and dropped, up
 * to discard_limit, so that the next request can be found.  Returns
 * whether the connection can go on. */
static bool discard_body(struct conn *c)
{
	if (c->msg_done)
		return true;
	if (c->body_err || (c->expect_continue && !c->continue_sent))
		return false; /* the client waits for a 100 it will not get */
	uint64_t start = c->body_total;
	while (!c->msg_done) {
		if (c->body_total - start > c->o.discard_limit)
			return false;
		if (body_read(c, NULL, 16384, c->o.body_timeout) < 0)
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
			refuse_request(c, status);
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

int cio_http_serve_conn(cio_stream *s, const cio_http_server_opts *opts,
			cio_http_handler *h, void *arg)
{
	if (!s || !h)
		return -EINVAL;
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
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
	/* The head holds each span once plus a NUL per string: never more
	 * than the limit's bytes plus those NULs. */
	c->head_cap = c->o.max_head + 2 * c->o.max_headers + 2;
	c->head = malloc(c->head_cap);
	c->fields = malloc(c->o.max_headers * sizeof *c->fields);
	if (!c->head || !c->fields) {
		free(c->head);
		free(c->fields);
		free(c);
		return -ENOMEM;
	}
	/* Responses leave whole (the write buffer coalesces them): Nagle's
	 * wait would only delay a response's last piece, or a pipelined
	 * client's next one.  On a Unix socket it fails, harmlessly. */
	cio_tcp_nodelay(cio_stream_fd(s), true);
	c->req.c = c;
	c->resp.c = c;
	llhttp_init(&c->p, HTTP_REQUEST, &settings);
	c->p.data = c;

	int rc = 0;
	bool server_closes = false; /* else the peer ended, or went silent */
	for (;;) {
		next_request(c);
		int status;
		rc = read_head(c, &status);
		if (rc <= 0) {
			if (status) {
				refuse_request(c, status);
				server_closes = true;
			}
			break;
		}
		rc = serve_request(c, h, arg);
		if (rc != 0) {
			server_closes = true;
			rc = rc > 0 ? 0 : rc;
			break;
		}
	}
	if (server_closes && !c->broken)
		linger(c);
	free(c->body_all);
	free(c->fields_out);
	free(c->fields);
	free(c->head);
	free(c);
	return rc;
}
