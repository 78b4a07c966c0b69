/* http_client.c - the HTTP/1.1 client: a per-core pool of kept-alive
 * connections to one origin, and calls that stream a request out and a
 * response in over one of them.
 *
 * A call holds its request (head fields and up to HOLD_MAX of body)
 * until it is sent, so that a request that meets a kept connection the
 * server has just closed can be sent again whole on a new one.  Each
 * connection keeps its own response parser (http_in.c) for its life:
 * llhttp's state follows the connection's bytes, message after message.
 *
 * Idle connections sit in a list, newest first: a call takes the newest
 * (warm, and least likely to have been closed by the server), and a
 * task of the client's closes the oldest once idle_timeout passes.  That
 * task runs only while some connection is idle, so that an unused client
 * does not keep its runtime alive; a drain cancels it, which closes them
 * all. */
#include "http.h"
#include "../platform/fail.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define HOLD_MAX (64 * 1024)
#define MAX_REQ_FIELDS (64 * 1024)

#define DEF_MAX_CONNS 1024
#define DEF_MAX_IDLE 64
#define DEF_IDLE_TIMEOUT (30 * CIO_SEC)
#define DEF_CONNECT_TIMEOUT (5 * CIO_SEC)
#define DEF_RESPONSE_TIMEOUT (60 * CIO_SEC)
#define DEF_IO_TIMEOUT (60 * CIO_SEC)
#define DEF_MAX_HEAD (64 * 1024)
#define DEF_MAX_HEADERS 100

/* One connection to the origin, with its response parser. */
struct hconn {
	struct http_in in;
	struct hconn *prev, *next; /* the idle list, while idle */
	cio_stream *s;
	int64_t idle_since;
	uint64_t uses;             /* requests sent on it */
	bool head_request;         /* the response is to a HEAD */
};

struct cio_http_client {
	char origin[256];
	char host[256];            /* the origin's host, for TLS */
	cio_http_client_opts o;
	struct hconn *idle_new, *idle_old; /* the idle list's two ends */
	size_t nopen, nidle, ncalls;
	cio_mutex mu;              /* for cond: never held across a wait */
	cio_cond room;             /* a connection went idle or closed */
	cio_task_t reaper;         /* the idle connections' task, or 0 */
	bool freeing;              /* cio_http_client_free() left it to reaper */
	cio_http_client_stats st;
};

struct cio_http_call {
	cio_http_client *cl;
	struct hconn *conn;        /* taken by the request's first byte */
	char *line;                /* "METHOD target HTTP/1.1\r\n" */
	char *fields;              /* "Name: value\r\n"... */
	size_t fields_len, fields_cap;
	char *hold;                /* body bytes not yet sent */
	size_t hold_len, hold_cap;
	int64_t length;            /* announced, or -1 */
	uint64_t written;          /* body bytes taken */
	bool has_host, idempotent, head_method, body_method;
	bool committed;            /* the head went on conn */
	bool overflowed;           /* body went out unheld: no second try */
	bool chunked;
	bool sent;                 /* the response's head came */
	int err;                   /* the call's failure, kept */
	char *body_all;            /* cio_http_call_body()'s copy */
	char errtext[200];
};

/* --- connections ------------------------------------------------------------- */

static int on_response_head(llhttp_t *p)
{
	struct hconn *k = CIO__HTTP_OWNER(p, struct hconn, in.p);
	if (cio__http_in_head_end(&k->in) < 0)
		return -1;
	if (p->status_code == 101 || p->status_code < 100 || p->status_code > 599)
		return cio__http_in_refuse(&k->in, 400); /* never asked for, or none */
	if (p->status_code >= 100 && p->status_code < 200)
		return 0; /* interim: no body, its end comes next */
	if (k->head_request)
		return 1; /* a response to HEAD has no body, whatever it says */
	/* A body follows: stop here, it stays buffered for the reader. */
	if ((p->flags & F_CHUNKED) || p->content_length > 0 || llhttp_message_needs_eof(p))
		return HPE_PAUSED;
	return 0;
}

static const llhttp_settings_t response_settings = {
	.on_status = cio__http_on_first,
	.on_status_complete = cio__http_on_first_complete,
	.on_header_field = cio__http_on_header_field,
	.on_header_field_complete = cio__http_on_header_field_complete,
	.on_header_value = cio__http_on_header_value,
	.on_header_value_complete = cio__http_on_header_value_complete,
	.on_headers_complete = on_response_head,
	.on_body = cio__http_on_body,
	.on_message_complete = cio__http_on_message_complete,
};

static void idle_unlink(cio_http_client *cl, struct hconn *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		cl->idle_new = k->next;
	if (k->next)
		k->next->prev = k->prev;
	else
		cl->idle_old = k->prev;
	k->prev = k->next = NULL;
	cl->nidle--;
}

/* Closes a connection that is in no list and in no call. */
static void conn_close(cio_http_client *cl, struct hconn *k)
{
	cio_stream_close(k->s);
	cio__http_in_free(&k->in);
	free(k);
	cl->nopen--;
	cio_cond_signal(&cl->room);
}

static void close_idle(cio_http_client *cl)
{
	while (cl->idle_old) {
		struct hconn *k = cl->idle_old;
		idle_unlink(cl, k);
		conn_close(cl, k);
	}
}

static void client_release(cio_http_client *cl)
{
	close_idle(cl);
	free(cl);
}

/* The idle connections' task: closes each once idle_timeout passed,
 * and all of them when cancelled (a drain, cio_http_client_free()). */
static void *reaper(void *arg)
{
	cio_http_client *cl = arg;
	cio_drain_idle(true);
	while (cl->idle_old && !cl->freeing) {
		struct hconn *k = cl->idle_old;
		int64_t due = k->idle_since + cl->o.idle_timeout;
		if (cio_now() >= due) {
			idle_unlink(cl, k);
			conn_close(cl, k);
		} else if (cio_sleep_until(due) < 0) {
			break;
		}
	}
	/* Cancelled (a drain, or cio_http_client_free()): all go.  Closing
	 * may park, and the client must live until this task is done. */
	close_idle(cl);
	cl->reaper = 0;
	if (cl->freeing)
		free(cl);
	return NULL;
}

/* Keeps k for a later call, or closes it when it cannot be kept. */
static void conn_park(cio_http_client *cl, struct hconn *k)
{
	if (cl->nidle >= cl->o.max_idle || cio_draining()) {
		conn_close(cl, k);
		return;
	}
	if (!cl->reaper) {
		cio_spawn_opts so = {.name = "http-client-idle", .detached = true,
				     .stack_size = 64 * 1024};
		cio_task_t t = cio_spawn_with(&so, reaper, cl);
		if (t < 0) {
			conn_close(cl, k);
			return;
		}
		cl->reaper = t;
	}
	k->idle_since = cio_now();
	k->prev = NULL;
	k->next = cl->idle_new;
	if (cl->idle_new)
		cl->idle_new->prev = k;
	else
		cl->idle_old = k;
	cl->idle_new = k;
	cl->nidle++;
	cio_cond_signal(&cl->room);
}

/* Whether an idle connection shows a close (or bytes) from the server:
 * a request that must not be sent twice does not go on it. */
static bool conn_stale(struct hconn *k)
{
	char b;
	ssize_t n = recv(cio_stream_fd(k->s), &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

static int fail(cio_http_call *call, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(cio_http_call *call, int err, const char *fmt, ...)
{
	call->err = err;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(call->errtext, sizeof call->errtext, fmt, ap);
		va_end(ap);
	} else if (call->conn && call->conn->s->last_err == err) {
		snprintf(call->errtext, sizeof call->errtext, "%s",
			 cio_stream_error(call->conn->s));
	} else {
		snprintf(call->errtext, sizeof call->errtext, "%s", cio_strerror(err));
	}
	return err;
}

/* Dials a new connection into call->conn; a slot of max_conns is
 * taken. */
static int conn_dial(cio_http_call *call)
{
	cio_http_client *cl = call->cl;
	struct hconn *k = cio__calloc(1, sizeof *k);
	if (!k)
		return fail(call, -ENOMEM, NULL);
	int err = cio__http_in_init(&k->in, HTTP_RESPONSE, &response_settings,
				    cl->o.max_head, cl->o.max_headers, UINT64_MAX);
	if (err < 0) {
		free(k);
		return fail(call, err, NULL);
	}
	cl->nopen++;
	const char *what = "connect";
	CIO_WITH_TIMEOUT(cl->o.connect_timeout) {
		int fd = cio_dial(cl->origin, NULL);
		if (fd < 0) {
			err = fd;
			break;
		}
		cio_stream_opts so = {.read_buf = cl->o.buf_size, .write_buf = cl->o.buf_size};
		err = cio_stream_new(&k->s, fd, &so);
		if (err < 0)
			break;
		cio_tcp_nodelay(fd, true);
		if (cl->o.tls) {
			what = "TLS";
			err = cio_stream_tls_connect(k->s, cl->o.tls, cl->o.server_name ?
						     cl->o.server_name : cl->host);
		}
	}
	if (err < 0) {
		cl->st.dial_errors++;
		if (k->s && k->s->last_err == err)
			fail(call, err, "%s to %s: %s", what, cl->origin, cio_stream_error(k->s));
		else
			fail(call, err, "%s to %s: %s", what, cl->origin, cio_strerror(err));
		if (k->s)
			cio_stream_close(k->s);
		cio__http_in_free(&k->in);
		free(k);
		cl->nopen--;
		cio_cond_signal(&cl->room);
		return err;
	}
	cl->st.dialled++;
	call->conn = k;
	return 0;
}

/* Takes a connection for call: the newest idle one unless fresh, else a
 * new one, waiting while max_conns are open and none is idle. */
static int conn_take(cio_http_call *call, bool fresh)
{
	cio_http_client *cl = call->cl;
	for (;;) {
		while (!fresh && cl->idle_new) {
			struct hconn *k = cl->idle_new;
			idle_unlink(cl, k);
			if (!call->idempotent && conn_stale(k)) {
				conn_close(cl, k);
				continue;
			}
			cl->st.reused++;
			call->conn = k;
			return 0;
		}
		if (cl->nopen < cl->o.max_conns)
			return conn_dial(call);
		if (cl->idle_old) { /* fresh: an idle one gives its slot */
			struct hconn *k = cl->idle_old;
			idle_unlink(cl, k);
			conn_close(cl, k);
			continue;
		}
		cl->st.waited++;
		cio_mutex_lock(&cl->mu);
		int err = cio_cond_wait(&cl->room, &cl->mu);
		cio_mutex_unlock(&cl->mu);
		if (err < 0)
			return fail(call, err, "waiting for a connection to %s: %s", cl->origin,
				    cio_strerror(err));
	}
}

/* Ends call's hold on its connection: parks it, or closes it. */
static void conn_drop(cio_http_call *call, bool keep)
{
	struct hconn *k = call->conn;
	if (!k)
		return;
	call->conn = NULL;
	if (keep)
		conn_park(call->cl, k);
	else
		conn_close(call->cl, k);
}

/* --- the client ---------------------------------------------------------------- */

int cio_http_client_new(cio_http_client **out, const char *origin,
			const cio_http_client_opts *opts)
{
	*out = NULL;
	size_t olen = origin ? strlen(origin) : 0;
	if (olen == 0 || olen >= sizeof ((cio_http_client *)0)->origin)
		return -EINVAL;
	cio_http_client *cl = cio__calloc(1, sizeof *cl);
	if (!cl)
		return -ENOMEM;
	memcpy(cl->origin, origin, olen + 1);
	/* The host, for TLS: without the port, and without an IPv6
	 * literal's brackets. */
	const char *host = origin, *end = strrchr(origin, ':');
	if (origin[0] == '[') {
		host = origin + 1;
		end = strchr(host, ']');
	}
	if (!end || end == host || strncmp(origin, "unix:", 5) == 0) {
		if (strncmp(origin, "unix:", 5) != 0) {
			free(cl);
			return -EINVAL;
		}
		end = host = "localhost";
		end += strlen(host);
	}
	memcpy(cl->host, host, (size_t)(end - host));
	if (opts)
		cl->o = *opts;
	cl->o.max_conns = cl->o.max_conns ? cl->o.max_conns : DEF_MAX_CONNS;
	cl->o.max_idle = cl->o.max_idle ? cl->o.max_idle : DEF_MAX_IDLE;
	cl->o.idle_timeout = cl->o.idle_timeout ? cl->o.idle_timeout : DEF_IDLE_TIMEOUT;
	cl->o.connect_timeout = cl->o.connect_timeout ? cl->o.connect_timeout
						      : DEF_CONNECT_TIMEOUT;
	cl->o.response_timeout = cl->o.response_timeout ? cl->o.response_timeout
							: DEF_RESPONSE_TIMEOUT;
	cl->o.io_timeout = cl->o.io_timeout ? cl->o.io_timeout : DEF_IO_TIMEOUT;
	cl->o.max_head = cl->o.max_head ? cl->o.max_head : DEF_MAX_HEAD;
	cl->o.max_headers = cl->o.max_headers ? cl->o.max_headers : DEF_MAX_HEADERS;
	cl->o.server_name = NULL; /* borrowed only until here: cl->host */
	if (opts && opts->server_name) {
		size_t n = strlen(opts->server_name);
		if (n >= sizeof cl->host) {
			free(cl);
			return -EINVAL;
		}
		memcpy(cl->host, opts->server_name, n + 1);
	}
	cio_mutex_init(&cl->mu);
	cio_cond_init(&cl->room);
	*out = cl;
	return 0;
}

int cio_http_client_free(cio_http_client *cl)
{
	if (!cl)
		return 0;
	if (cl->ncalls)
		return -EBUSY;
	cl->freeing = true;
	if (cl->reaper) {
		/* It closes the idle ones, and frees cl when it ends. */
		cio_cancel(cl->reaper);
		return 0;
	}
	client_release(cl);
	return 0;
}

void cio_http_client_stats_get(const cio_http_client *cl, cio_http_client_stats *st)
{
	*st = cl->st;
	st->open = cl->nopen;
	st->idle = cl->nidle;
}

/* --- the request ------------------------------------------------------------- */

static bool method_is(const char *m, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(m, *list) == 0)
			return true;
	return false;
}

int cio_http_call_new(cio_http_client *cl, const char *method, const char *target,
		      cio_http_call **out)
{
	static const char *const idempotent[] = {"GET", "HEAD", "OPTIONS", "TRACE",
						 "PUT", "DELETE", NULL};
	static const char *const with_body[] = {"POST", "PUT", "PATCH", NULL};
	*out = NULL;
	size_t ml = cio__http_token_len(method), tl = strlen(target);
	if (!ml || !tl || strpbrk(target, " \r\n"))
		return -EINVAL;
	cio_http_call *call = cio__calloc(1, sizeof *call);
	static const char version[] = " HTTP/1.1\r\n";
	char *line = call ? cio__malloc(ml + 1 + tl + sizeof version) : NULL;
	if (!line) {
		free(call);
		return -ENOMEM;
	}
	memcpy(line, method, ml);
	line[ml] = ' ';
	memcpy(line + ml + 1, target, tl);
	memcpy(line + ml + 1 + tl, version, sizeof version);
	call->line = line;
	call->cl = cl;
	call->length = -1;
	call->idempotent = method_is(method, idempotent);
	call->head_method = strcmp(method, "HEAD") == 0;
	call->body_method = method_is(method, with_body);
	cl->ncalls++;
	*out = call;
	return 0;
}

static bool grow(char **buf, size_t *cap, size_t need, size_t first)
{
	if (need <= *cap)
		return true;
	size_t ncap = *cap ? *cap : first;
	while (ncap < need)
		ncap *= 2;
	char *n = cio__realloc(*buf, ncap);
	if (!n)
		return false;
	*buf = n;
	*cap = ncap;
	return true;
}

int cio_http_call_add_header(cio_http_call *call, const char *name, const char *value)
{
	static const struct cio__http_name own[] = {
		CIO__HTTP_NAME("content-length"), CIO__HTTP_NAME("transfer-encoding"),
		CIO__HTTP_NAME("connection"), CIO__HTTP_NAME("keep-alive"),
		CIO__HTTP_NAME("te"), CIO__HTTP_NAME("upgrade"), {NULL, 0}};
	static const struct cio__http_name host[] = {CIO__HTTP_NAME("host"), {NULL, 0}};
	if (call->committed || call->sent)
		return -EALREADY;
	size_t nl = cio__http_token_len(name);
	if (!nl || strpbrk(value, "\r\n") || cio__http_name_in(name, nl, own))
		return -EINVAL;
	size_t vl = strlen(value), need = nl + vl + 4;
	if (call->fields_len + need > MAX_REQ_FIELDS)
		return -ENOSPC;
	if (!grow(&call->fields, &call->fields_cap, call->fields_len + need, 512))
		return -ENOMEM;
	char *o = call->fields + call->fields_len;
	memcpy(o, name, nl);
	memcpy(o + nl, ": ", 2);
	memcpy(o + nl + 2, value, vl);
	memcpy(o + nl + 2 + vl, "\r\n", 2);
	call->fields_len += need;
	if (cio__http_name_in(name, nl, host))
		call->has_host = true;
	return 0;
}

int cio_http_call_set_length(cio_http_call *call, uint64_t len)
{
	if (call->committed || call->sent)
		return -EALREADY;
	if (len > INT64_MAX)
		return -EINVAL;
	call->length = (int64_t)len;
	return 0;
}

static int put(cio_http_call *call, const void *data, size_t len)
{
	ssize_t n = cio_stream_put(call->conn->s, data, len);
	return n < 0 ? (int)n : 0;
}

static int put_str(cio_http_call *call, const char *s)
{
	return put(call, s, strlen(s));
}

/* Puts body bytes on the connection, as a chunk when chunked. */
static int put_body(cio_http_call *call, const void *data, size_t len)
{
	int err = 0;
	if (call->chunked) {
		char size[24];
		snprintf(size, sizeof size, "%zx\r\n", len);
		err = put_str(call, size);
		if (err == 0)
			err = put(call, data, len);
		if (err == 0)
			err = put_str(call, "\r\n");
		return err;
	}
	return put(call, data, len);
}

/* Sends the head and the held body on call->conn.  `whole`: the body
 * is all held, its length known. */
static int commit(cio_http_call *call, bool whole)
{
	cio_http_client *cl = call->cl;
	struct hconn *k = call->conn;
	char line[64];
	cio__http_in_next(&k->in);
	k->head_request = call->head_method;
	k->uses++;
	call->committed = true;
	call->chunked = false;
	int err = put_str(call, call->line);
	if (err == 0 && !call->has_host) {
		err = put_str(call, "Host: ");
		if (err == 0)
			err = put_str(call, cl->origin);
		if (err == 0)
			err = put_str(call, "\r\n");
	}
	if (err == 0 && call->fields_len)
		err = put(call, call->fields, call->fields_len);
	if (err == 0) {
		int64_t length = call->length;
		if (length < 0 && whole && (call->hold_len || call->body_method))
			length = (int64_t)call->hold_len;
		if (length >= 0) {
			static const char field[] = "Content-Length: ";
			memcpy(line, field, sizeof field - 1);
			char *e = cio__http_u64(line + sizeof field - 1, (uint64_t)length);
			memcpy(e, "\r\n\r\n", 4);
			err = put(call, line, (size_t)(e + 4 - line));
		} else if (whole) {
			err = put_str(call, "\r\n");
		} else {
			err = put_str(call, "Transfer-Encoding: chunked\r\n\r\n");
			call->chunked = true;
		}
	}
	if (err == 0 && call->hold_len)
		err = put_body(call, call->hold, call->hold_len);
	return err;
}

ssize_t cio_http_call_write(cio_http_call *call, const void *data, size_t len)
{
	if (call->err)
		return call->err;
	if (call->sent)
		return -EALREADY;
	if (call->length >= 0 && call->written + len > (uint64_t)call->length)
		return -EMSGSIZE;
	if (len == 0)
		return 0;
	if (!call->committed && call->hold_len + len <= HOLD_MAX) {
		if (!grow(&call->hold, &call->hold_cap, call->hold_len + len, 4096))
			return -ENOMEM;
		memcpy(call->hold + call->hold_len, data, len);
		call->hold_len += len;
		call->written += len;
		return (ssize_t)len;
	}
	int err = 0;
	CIO_WITH_TIMEOUT(call->cl->o.io_timeout) {
		if (!call->committed) {
			/* Too long to hold: it goes out as it comes. */
			call->overflowed = true;
			err = conn_take(call, false);
			if (err == 0)
				err = commit(call, false);
			call->hold_len = 0;
		}
		if (err == 0)
			err = put_body(call, data, len);
	}
	if (err < 0)
		return call->err ? call->err : fail(call, err, NULL);
	call->written += len;
	return (ssize_t)len;
}

/* --- the response ------------------------------------------------------------ */

/* Waits for more bytes within timeout.  Returns the bytes buffered
 * (> 0), 0 at the stream's end, or -errno. */
static ssize_t fill_more(struct hconn *k, int64_t timeout)
{
	size_t have;
	cio_stream_peek(k->s, &have);
	ssize_t n;
	CIO_WITH_TIMEOUT(timeout) {
		n = cio_stream_fill(k->s, have + 1);
	}
	if (n >= 0 && (size_t)n <= have)
		return 0;
	return n;
}

static const char *refusal_text(int status)
{
	switch (status) {
	case 431: return "response head too long, or too many fields";
	case 505: return "response version not HTTP/1.0 or 1.1";
	default: return "malformed response";
	}
}

/* Reads the final response's head.  Returns its status, or -errno. */
static int read_head(cio_http_call *call)
{
	cio_http_client *cl = call->cl;
	struct hconn *k = call->conn;
	size_t max = cl->o.max_head;
	int rc = 0;
	CIO_WITH_TIMEOUT(cl->o.response_timeout) {
		for (;;) {
			int st = cio__http_in_feed(&k->in, k->s, max + 1 - k->in.head_bytes);
			if (st) {
				rc = fail(call, -EPROTO, "%s from %s", refusal_text(st), cl->origin);
				break;
			}
			if (k->in.head_bytes > max) {
				rc = fail(call, -EPROTO, "%s from %s", refusal_text(431), cl->origin);
				break;
			}
			if (k->in.head_done) {
				int status = k->in.p.status_code;
				if (status >= 200) {
					rc = status;
					break;
				}
				/* An interim response: the final one follows. */
				cio__http_in_next(&k->in);
				continue;
			}
			ssize_t n = fill_more(k, CIO_NEVER);
			if (n == 0) {
				rc = fail(call, -EPIPE, "%s closed the connection before a response",
					  cl->origin);
				break;
			}
			if (n < 0) {
				rc = n == -ETIMEDOUT && !call->errtext[0]
					     ? fail(call, -ETIMEDOUT, "no response from %s in time",
						    cl->origin)
					     : fail(call, (int)n, NULL);
				break;
			}
		}
	}
	return rc;
}

/* Whether a failure on a kept connection may be mended by sending the
 * request again on a new one. */
static bool can_retry(const cio_http_call *call, int err)
{
	const struct hconn *k = call->conn;
	size_t have = 0;
	if (k)
		cio_stream_peek(k->s, &have);
	return k && k->uses > 1 && call->idempotent && !call->overflowed &&
	       k->in.head_bytes == 0 && have == 0 && (err == -EPIPE || err == -ECONNRESET);
}

int cio_http_call_send(cio_http_call *call)
{
	if (call->err)
		return call->err;
	if (call->sent)
		return -EALREADY;
	if (call->length >= 0 && call->written < (uint64_t)call->length)
		return fail(call, -EPROTO, "request body shorter than announced");
	for (int attempt = 0;; attempt++) {
		int rc = 0;
		call->err = 0;
		call->errtext[0] = '\0';
		CIO_WITH_TIMEOUT(call->cl->o.io_timeout) {
			if (!call->committed) {
				rc = conn_take(call, attempt > 0);
				if (rc == 0)
					rc = commit(call, true);
			}
			if (rc == 0 && call->chunked)
				rc = put_str(call, "0\r\n\r\n");
			if (rc == 0)
				rc = cio_stream_flush(call->conn->s);
		}
		if (rc == 0)
			rc = read_head(call);
		if (rc > 0) {
			call->sent = true;
			return rc;
		}
		if (attempt == 0 && can_retry(call, rc)) {
			conn_drop(call, false);
			call->committed = false;
			call->cl->st.retried++;
			continue;
		}
		return call->err ? call->err : fail(call, rc, NULL);
	}
}

int cio_http_call_status(const cio_http_call *call)
{
	return call->sent ? call->conn->in.p.status_code : 0;
}

int cio_http_call_version(const cio_http_call *call)
{
	return call->sent ? call->conn->in.p.http_major * 10 + call->conn->in.p.http_minor : 0;
}

size_t cio_http_call_header_count(const cio_http_call *call)
{
	return call->sent ? call->conn->in.nfields : 0;
}

int cio_http_call_header_at(const cio_http_call *call, size_t i, const char **name,
			    const char **value)
{
	if (!call->sent || i >= call->conn->in.nfields)
		return -ENOENT;
	if (name)
		*name = cio__http_field_name(&call->conn->in, i);
	if (value)
		*value = cio__http_field_value(&call->conn->in, i);
	return 0;
}

const char *cio_http_call_header(const cio_http_call *call, const char *name)
{
	return call->sent ? cio__http_find_field(&call->conn->in, name) : NULL;
}

int64_t cio_http_call_content_length(const cio_http_call *call)
{
	if (!call->sent)
		return 0;
	const llhttp_t *p = &call->conn->in.p;
	int status = p->status_code;
	if (call->head_method || status == 204 || status == 304)
		return 0;
	if ((p->flags & F_CHUNKED) || !(p->flags & F_CONTENT_LENGTH))
		return -1;
	return (int64_t)(call->conn->in.body_total + p->content_length);
}

ssize_t cio_http_call_read(cio_http_call *call, void *buf, size_t len)
{
	if (call->err)
		return call->err;
	if (!call->sent)
		return -EINVAL;
	struct hconn *k = call->conn;
	if (k->in.msg_done || len == 0)
		return 0;
	for (;;) {
		size_t have;
		cio_stream_peek(k->s, &have);
		if (have == 0) {
			ssize_t n = fill_more(k, call->cl->o.io_timeout);
			if (n == 0) {
				if (llhttp_message_needs_eof(&k->in.p)) {
					/* The close ends this body. */
					k->in.msg_done = true;
					return 0;
				}
				return fail(call, -EPIPE, "%s closed the connection inside a body",
					    call->cl->origin);
			}
			if (n < 0)
				return fail(call, (int)n, NULL);
		}
		k->in.dst = buf;
		k->in.got = 0;
		int st = cio__http_in_feed(&k->in, k->s, len);
		k->in.dst = NULL;
		if (st)
			return fail(call, -EPROTO, "malformed response body from %s", call->cl->origin);
		if (k->in.got > 0)
			cio__http_in_read_ahead(&k->in, k->s, buf, len);
		if (k->in.got > 0 || k->in.msg_done)
			return (ssize_t)k->in.got;
	}
}

static ssize_t call_read(void *call, void *buf, size_t len)
{
	return cio_http_call_read(call, buf, len);
}

ssize_t cio_http_call_body(cio_http_call *call, size_t limit, const char **body)
{
	char *all;
	ssize_t n = cio__http_read_all(call_read, call, limit, &all);
	*body = all;
	if (n >= 0) {
		free(call->body_all);
		call->body_all = all;
	}
	return n;
}

const char *cio_http_call_error(const cio_http_call *call)
{
	return call->errtext;
}

/* Whether call's connection can serve another request: the exchange is
 * whole (the rest of a body unread but already buffered is dropped),
 * both sides keep it, nothing more came. */
static bool reusable(cio_http_call *call)
{
	struct hconn *k = call->conn;
	if (!call->sent || call->err || call->cl->freeing)
		return false;
	while (!k->in.msg_done) {
		size_t have;
		cio_stream_peek(k->s, &have);
		if (have == 0 || cio__http_in_feed(&k->in, k->s, have) != 0)
			return false;
	}
	size_t have;
	cio_stream_peek(k->s, &have);
	return have == 0 && llhttp_should_keep_alive(&k->in.p);
}

void cio_http_call_free(cio_http_call *call)
{
	if (!call)
		return;
	conn_drop(call, reusable(call));
	call->cl->ncalls--;
	free(call->body_all);
	free(call->hold);
	free(call->fields);
	free(call->line);
	free(call);
}
