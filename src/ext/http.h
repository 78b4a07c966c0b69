/* http.h - the inside of the HTTP layer: an incoming message parsed by
 * llhttp (http_in.c, shared by the server's requests and the client's
 * responses), and the server's connection state, shared by
 * http_server.c (the connection loop) and http_msg.c (the request's and
 * the response's calls). */
#ifndef COREIO_EXT_HTTP_H
#define COREIO_EXT_HTTP_H

#include "stream.h"

#include <llhttp.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <strings.h>

/* An error response and the lingering close after it, at most: a peer
 * that neither reads nor closes cannot hold the task longer. */
#define CIO__HTTP_ERROR_WAIT (1 * CIO_SEC)

struct field {
	uint32_t name, value; /* offsets of NUL-terminated strings in head */
};

/* An incoming message (a request, or a response) as llhttp reports it:
 * its head collected into strings, its body fed into the reader's
 * buffer.  The parser comes first: llhttp's callbacks find the message
 * from it, and its owner with CIO__HTTP_OWNER. */
struct http_in {
	llhttp_t p;
	/* The head: the first string (a request's target, a response's
	 * reason), then names and values, each NUL-terminated, in `head`. */
	char *head;
	size_t head_cap, head_len;
	struct field *fields;
	size_t nfields, max_fields;
	size_t head_bytes;      /* bytes of the head parsed so far */
	char head_last;         /* the last of them */
	bool value_open;        /* the last field's value is not ended */
	bool value_seen;        /* the open value had a span */
	bool value_cut;         /* ... which the end of those bytes cut */
	const char *exec_start, *exec_end; /* the bytes llhttp has now */
	int status;             /* the 4xx/5xx a callback refused with */
	bool head_done, msg_done;
	/* The body. */
	char *dst;              /* a body read's buffer; NULL: discard */
	size_t got;             /* body bytes reported by this feed */
	uint64_t body_total, max_body;
};

#define CIO__HTTP_OWNER(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/* Sets up m to parse messages of `type` with `settings` (whose head and
 * body callbacks are those below); the head holds at most max_head bytes
 * in max_fields fields.  0 or -ENOMEM. */
int cio__http_in_init(struct http_in *m, llhttp_type_t type,
		      const llhttp_settings_t *settings, size_t max_head,
		      size_t max_fields, uint64_t max_body);
/* Frees m's head and fields: at the end, or while it waits between two
 * messages (an idle connection gives them back).  cio__http_in_unpark()
 * takes them again: 0 (also when it has them) or -ENOMEM. */
void cio__http_in_free(struct http_in *m);
int cio__http_in_unpark(struct http_in *m);

/* Forgets the last message, for the next one. */
void cio__http_in_next(struct http_in *m);

/* Hands at most max bytes that stream s holds to llhttp and consumes
 * what it parsed.  Returns 0, or the status to refuse the message with
 * (400, 413, 431, or a callback's). */
int cio__http_in_feed(struct http_in *m, cio_stream *s, size_t max);

/* After a body read fed what was buffered (m->got bytes into dst, room
 * for len): feeds what else of the message the socket holds already,
 * without waiting, so that a body that came in one piece leaves in one
 * read (and a proxy sends it on in one write).  A parse error or a
 * failed read is left for the next read to meet. */
void cio__http_in_read_ahead(struct http_in *m, cio_stream *s, char *dst, size_t len);

/* Refuses the message with status from inside a callback. */
int cio__http_in_refuse(struct http_in *m, int status);

/* For an on_headers_complete callback: ends the last value and checks
 * the version (1.0 or 1.1).  0, or -1 with the refusal set. */
int cio__http_in_head_end(struct http_in *m);

/* Reads a whole body with read(obj, ...) into memory of its own
 * (NUL-terminated) and sets *out.  Returns its length, -EMSGSIZE when it
 * is longer than limit, -ENOMEM, or read's error; *out NULL on error. */
ssize_t cio__http_read_all(ssize_t (*read)(void *obj, void *buf, size_t len), void *obj,
			   size_t limit, char **out);

/* The length of s when it is a token (a field name, a method), else 0. */
size_t cio__http_token_len(const char *s);

/* A field name and its length, for cio__http_name_in(). */
struct cio__http_name {
	const char *s;
	size_t len;
};
#define CIO__HTTP_NAME(lit) {lit, sizeof lit - 1}

/* Whether name (len bytes) is one of list's (ended by a NULL s), in any
 * case: lengths are compared before bytes, which most names fail. */
static inline bool cio__http_name_in(const char *name, size_t len,
				     const struct cio__http_name *list)
{
	for (; list->s; list++)
		if (list->len == len && strncasecmp(name, list->s, len) == 0)
			return true;
	return false;
}

/* Writes v in decimal at p; returns the end. */
char *cio__http_u64(char *p, uint64_t v);

/* The callbacks that collect the head and the body. */
int cio__http_on_first(llhttp_t *p, const char *at, size_t len);
int cio__http_on_first_complete(llhttp_t *p);
int cio__http_on_header_field(llhttp_t *p, const char *at, size_t len);
int cio__http_on_header_field_complete(llhttp_t *p);
int cio__http_on_header_value(llhttp_t *p, const char *at, size_t len);
int cio__http_on_header_value_complete(llhttp_t *p);
int cio__http_on_body(llhttp_t *p, const char *at, size_t len);
int cio__http_on_message_complete(llhttp_t *p);

static inline const char *cio__http_field_name(const struct http_in *m, size_t i)
{
	return m->head + m->fields[i].name;
}

static inline const char *cio__http_field_value(const struct http_in *m, size_t i)
{
	return m->head + m->fields[i].value;
}

/* The value of the message's first field called name (any case), or
 * NULL. */
static inline const char *cio__http_find_field(const struct http_in *m, const char *name)
{
	for (size_t i = 0; i < m->nfields; i++)
		if (strcasecmp(cio__http_field_name(m, i), name) == 0)
			return cio__http_field_value(m, i);
	return NULL;
}

/* --- the server ------------------------------------------------------------ */

struct cio_http_resp {
	struct conn *c;
};

struct cio_http_req {
	struct conn *c;
};

/* One connection's state; its parser, head and fields are reused from
 * one request to the next. */
struct conn {
	struct http_in in;
	cio_stream *s;
	cio_http_server_opts o;
	cio_http_req req;
	cio_http_resp resp;

	/* The request's progress. */
	bool served;            /* a head was read on this connection */
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
	bool server_closes;     /* it ends the connection (else the peer) */
	cio_addr *peer;         /* cio_http_req_peer()'s, once asked */
};

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

/* http_msg.c: the reason phrase of a status code. */
const char *cio__http_reason(int code);


#endif
