/* http_msg.c - the HTTP server's requests and responses as a handler
 * sees them: the request's head and body, the response's head and its
 * body framed by Content-Length, chunks or the close; and refusals. */
#include "http.h"
#include "../platform/fail.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The response's own fields: more is a handler's bug, not a need. */
#define MAX_RESP_FIELDS (64 * 1024)
/* A response write goes in pieces of this, each within send_timeout. */
#define SEND_PIECE (1024 * 1024)

/* --- the response's head ------------------------------------------------------ */

const char *cio__http_reason(int code)
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
	bool stuck = !c->in.msg_done &&
		     ((c->expect_continue && !c->continue_sent) || c->body_err);
	return !c->close && !c->broken && !stuck && llhttp_should_keep_alive(&c->in.p) &&
	       !cio_draining() && !c->in.p.upgrade;
}

static int put_str(struct conn *c, const char *str)
{
	ssize_t n = cio_stream_put(c->s, str, strlen(str));
	return n < 0 ? (int)n : 0;
}

/* Writes the status line and the fields, and settles the framing. */
int cio__http_send_head(struct conn *c)
{
	char line[160];
	int code = c->code;
	bool head_method = c->in.p.method == HTTP_HEAD;
	c->head_sent = true;
	c->no_body = head_method || code == 204 || code == 304;
	bool framed = code != 204 && code != 304;
	if (framed && c->length < 0 && !head_method) {
		if (c->in.p.http_minor >= 1)
			c->chunked = true;
		else
			c->close = true; /* HTTP/1.0: the close ends the body */
	}
	bool ka = keep_alive(c);
	if (!ka)
		c->close = true;
	/* "HTTP/1.1 200 OK\r\nDate: ...\r\n", without printf's cost. */
	char *p = line;
	const char *why = cio__http_reason(code), *date = http_date();
	size_t wl = strlen(why), dl = strlen(date);
	memcpy(p, "HTTP/1.1 ", 9);
	p = cio__http_u64(p + 9, (uint64_t)code);
	*p++ = ' ';
	memcpy(p, why, wl);
	memcpy(p + wl, "\r\nDate: ", 8);
	memcpy(p + wl + 8, date, dl);
	memcpy(p + wl + 8 + dl, "\r\n", 2);
	p += wl + 8 + dl + 2;
	if (cio_stream_put(c->s, line, (size_t)(p - line)) < 0 ||
	    (c->out_len && cio_stream_put(c->s, c->fields_out, c->out_len) < 0))
		goto broken;
	if (framed && c->length >= 0) {
		memcpy(line, "Content-Length: ", 16);
		p = cio__http_u64(line + 16, (uint64_t)c->length);
		memcpy(p, "\r\n", 2);
		if (cio_stream_put(c->s, line, (size_t)(p + 2 - line)) < 0)
			goto broken;
	} else if (c->chunked && put_str(c, "Transfer-Encoding: chunked\r\n") < 0) {
		goto broken;
	}
	if (!ka && put_str(c, "Connection: close\r\n") < 0)
		goto broken;
	if (ka && c->in.p.http_minor == 0 && put_str(c, "Connection: keep-alive\r\n") < 0)
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
	return cio__http_send_head(c);
}

/* A refusal: status and a one-line body, then the connection closes. */
void cio__http_refuse(struct conn *c, int status)
{
	char body[96];
	if (c->head_sent)
		return;
	c->code = status;
	c->length = snprintf(body, sizeof body, "%d %s\n", status, cio__http_reason(status));
	c->close = true;
	c->out_len = 0;
	cio_http_resp_header(&c->resp, "Content-Type", "text/plain; charset=utf-8");
	CIO_WITH_TIMEOUT(CIO__HTTP_ERROR_WAIT) {
		if (cio__http_send_head(c) == 0 && !c->no_body)
			cio_stream_put(c->s, body, (size_t)c->length);
	}
}

/* --- the request's calls --------------------------------------------------- */

const char *cio_http_req_method(const cio_http_req *req)
{
	return llhttp_method_name((llhttp_method_t)req->c->in.p.method);
}

const char *cio_http_req_target(const cio_http_req *req)
{
	return req->c->in.head;
}

int cio_http_req_version(const cio_http_req *req)
{
	return req->c->in.p.http_major * 10 + req->c->in.p.http_minor;
}

size_t cio_http_req_header_count(const cio_http_req *req)
{
	return req->c->in.nfields;
}

int cio_http_req_header_at(const cio_http_req *req, size_t i, const char **name,
			   const char **value)
{
	if (i >= req->c->in.nfields)
		return -ENOENT;
	if (name)
		*name = cio__http_field_name(&req->c->in, i);
	if (value)
		*value = cio__http_field_value(&req->c->in, i);
	return 0;
}

const char *cio_http_req_header(const cio_http_req *req, const char *name)
{
	return cio__http_find_field(&req->c->in, name);
}

int64_t cio_http_req_content_length(const cio_http_req *req)
{
	if (req->c->in.p.flags & F_CHUNKED)
		return -1;
	return (req->c->in.p.flags & F_CONTENT_LENGTH) ? (int64_t)req->c->in.body_total +
			(int64_t)req->c->in.p.content_length : 0;
}

int cio_http_req_peer(const cio_http_req *req, cio_addr *out)
{
	struct conn *c = req->c;
	if (!c->peer) {
		cio_addr *a = cio__malloc(sizeof *a);
		if (!a)
			return -ENOMEM;
		int rc = cio_peer_addr(cio_stream_fd(c->s), a);
		if (rc < 0) {
			free(a);
			return rc;
		}
		c->peer = a;
	}
	*out = *c->peer;
	return 0;
}

ssize_t cio_http_req_read(cio_http_req *req, void *buf, size_t len)
{
	return cio__http_body_read(req->c, buf, len, req->c->o.body_timeout);
}

static ssize_t req_read(void *req, void *buf, size_t len)
{
	return cio_http_req_read(req, buf, len);
}

ssize_t cio_http_req_body(cio_http_req *req, size_t limit, const char **body)
{
	struct conn *c = req->c;
	char *all;
	ssize_t n = cio__http_read_all(req_read, req, limit, &all);
	*body = all;
	if (n == -EMSGSIZE) {
		/* Too long for this handler: a 413 if it gives up. */
		c->close = true;
		return c->body_err = -EMSGSIZE;
	}
	if (n >= 0) {
		free(c->body_all);
		c->body_all = all;
	}
	return n;
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

int cio_http_resp_header(cio_http_resp *resp, const char *name, const char *value)
{
	struct conn *c = resp->c;
	if (c->head_sent)
		return -EALREADY;
	static const struct cio__http_name own[] = {
		CIO__HTTP_NAME("content-length"), CIO__HTTP_NAME("transfer-encoding"),
		CIO__HTTP_NAME("connection"), {NULL, 0}};
	size_t nl = cio__http_token_len(name);
	if (!nl || strpbrk(value, "\r\n") || cio__http_name_in(name, nl, own))
		return -EINVAL;
	size_t vl = strlen(value), need = nl + vl + 4;
	if (c->out_len + need > MAX_RESP_FIELDS)
		return -ENOSPC;
	if (c->out_len + need > c->out_cap) {
		size_t ncap = c->out_cap ? c->out_cap : 512;
		while (ncap < c->out_len + need)
			ncap *= 2;
		char *n = cio__realloc(c->fields_out, ncap);
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

static ssize_t resp_write_now(cio_http_resp *resp, const void *data, size_t len)
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

ssize_t cio_http_resp_write(cio_http_resp *resp, const void *data, size_t len)
{
	struct conn *c = resp->c;
	if (c->length >= 0 && !c->ended && c->written + len > (uint64_t)c->length)
		return -EMSGSIZE;
	/* A piece at a time, each within send_timeout: a long body to a
	 * slow client is not cut for its length, one that stalls is. */
	size_t done = 0;
	do {
		size_t piece = len - done < SEND_PIECE ? len - done : SEND_PIECE;
		ssize_t n;
		CIO_WITH_TIMEOUT(c->o.send_timeout) {
			n = resp_write_now(resp, (const char *)data + done, piece);
		}
		if (n < 0)
			return n;
		done += piece;
	} while (done < len);
	return (ssize_t)len;
}

static ssize_t resp_sendfile_now(cio_http_resp *resp, int file, int64_t off, size_t len)
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

ssize_t cio_http_resp_sendfile(cio_http_resp *resp, int file, int64_t off, size_t len)
{
	struct conn *c = resp->c;
	if (c->ended)
		return -EALREADY;
	if (!c->head_sent && c->length < 0 && c->written == 0)
		c->length = (int64_t)len; /* the whole, not the first piece */
	size_t done = 0;
	do {
		size_t piece = len - done < SEND_PIECE ? len - done : SEND_PIECE;
		ssize_t n;
		CIO_WITH_TIMEOUT(c->o.send_timeout) {
			n = resp_sendfile_now(resp, file, off + (int64_t)done, piece);
		}
		if (n < 0)
			return n;
		done += (size_t)n;
		if ((size_t)n < piece)
			break; /* the file ended */
	} while (done < len);
	return (ssize_t)done;
}

static int resp_flush_now(cio_http_resp *resp)
{
	struct conn *c = resp->c;
	int err = ensure_head(c);
	if (err < 0)
		return err;
	err = cio_stream_flush(c->s);
	return err < 0 ? (int)broke(c, err) : 0;
}

int cio_http_resp_flush(cio_http_resp *resp)
{
	int rc;
	CIO_WITH_TIMEOUT(resp->c->o.send_timeout) {
		rc = resp_flush_now(resp);
	}
	return rc;
}

static int resp_end_now(cio_http_resp *resp)
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

int cio_http_resp_end(cio_http_resp *resp)
{
	int rc;
	CIO_WITH_TIMEOUT(resp->c->o.send_timeout) {
		rc = resp_end_now(resp);
	}
	return rc;
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
