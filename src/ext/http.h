/* http.h - the inside of the HTTP server, shared by http_server.c (the
 * parser and the connection loop) and http_msg.c (the request's and the
 * response's calls): one connection's state. */
#ifndef COREIO_EXT_HTTP_H
#define COREIO_EXT_HTTP_H

#include "stream.h"

#include <llhttp.h>

#include <stdbool.h>
#include <stdint.h>
#include <strings.h>

/* An error response and the lingering close after it, at most: a peer
 * that neither reads nor closes cannot hold the task longer. */
#define CIO__HTTP_ERROR_WAIT (1 * CIO_SEC)

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
	char head_last;         /* the last of them */
	bool value_open;        /* the last field's value is not ended */
	const char *exec_start, *exec_end; /* the bytes llhttp has now */
	bool value_seen;        /* the open value had a span */
	bool value_cut;         /* ... which the end of those bytes cut */
	int status;             /* the 4xx/5xx a callback refused with */

	/* The request's progress. */
	bool served;            /* a head was read on this connection */
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

static inline const char *cio__http_field_name(const struct conn *c, size_t i)
{
	return c->head + c->fields[i].name;
}

static inline const char *cio__http_field_value(const struct conn *c, size_t i)
{
	return c->head + c->fields[i].value;
}

/* The value of the request's first field called name (any case), or
 * NULL. */
static inline const char *cio__http_find_field(const struct conn *c, const char *name)
{
	for (size_t i = 0; i < c->nfields; i++)
		if (strcasecmp(cio__http_field_name(c, i), name) == 0)
			return cio__http_field_value(c, i);
	return NULL;
}

/* http_server.c: reads body bytes into dst (NULL: drops them), at most
 * len.  Returns the count, 0 at the body's end, or -errno (kept: later
 * reads repeat it). */
ssize_t cio__http_body_read(struct conn *c, char *dst, size_t len, int64_t timeout);

/* http_msg.c: writes the status line and the fields, and settles the
 * framing; 0 or -errno. */
int cio__http_send_head(struct conn *c);

/* http_msg.c: a refusal, status and a one-line body, unless a response
 * began; the connection closes after it. */
void cio__http_refuse(struct conn *c, int status);

#endif
