/* http_in.c - an incoming HTTP message read with llhttp, for the server
 * (requests) and the client (responses): the head collected into
 * NUL-terminated strings with the framing checks a proxy needs (no
 * obs-fold, no bare LF, no CR or LF inside a value), and the body
 * copied straight into the reader's buffer.
 *
 * llhttp is a push parser; here it is driven over a stream's read
 * buffer: the buffered bytes are handed to llhttp_execute() and the
 * bytes it parsed are consumed.  The owner's callbacks pause it at the
 * end of a head with a body to come, and at the end of a message, so that
 * a body stays buffered until asked for and a pipelined message waits
 * for its turn.  A body read feeds llhttp at most as many bytes as the
 * caller's buffer holds: the body bytes it reports (fewer, with chunk
 * framing) always fit. */
#include "http.h"
#include "blocks.h"
#include "../platform/fail.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct http_in *in_of(llhttp_t *p)
{
	return (struct http_in *)(void *)p;
}

int cio__http_in_refuse(struct http_in *m, int status)
{
	m->status = status;
	return -1;
}

int cio__http_in_init(struct http_in *m, llhttp_type_t type,
		      const llhttp_settings_t *settings, size_t max_head,
		      size_t max_fields, uint64_t max_body)
{
	memset(m, 0, sizeof *m);
	/* The head holds each span once plus a NUL per string: never more
	 * than the limit's bytes plus those NULs. */
	m->head_cap = max_head + 2 * max_fields + 2;
	m->max_fields = max_fields;
	m->max_body = max_body;
	if (cio__http_in_unpark(m) < 0)
		return -ENOMEM;
	llhttp_init(&m->p, type, settings);
	return 0;
}

void cio__http_in_free(struct http_in *m)
{
	cio__block_give(m->head, m->head_cap);
	cio__block_give(m->fields, m->max_fields * sizeof *m->fields);
	m->head = NULL;
	m->fields = NULL;
}

int cio__http_in_unpark(struct http_in *m)
{
	if (m->head)
		return 0;
	m->head = cio__block_take(m->head_cap);
	m->fields = cio__block_take(m->max_fields * sizeof *m->fields);
	if (!m->head || !m->fields) {
		cio__http_in_free(m);
		return -ENOMEM;
	}
	return 0;
}

void cio__http_in_next(struct http_in *m)
{
	m->head_len = 0;
	m->nfields = 0;
	m->head_bytes = 0;
	m->head_last = 0;
	m->value_open = false;
	m->status = 0;
	m->head_done = m->msg_done = false;
	m->body_total = 0;
}

/* Appends a span to the head; false when it would overflow (431). */
static bool head_add(struct http_in *m, const char *at, size_t len)
{
	if (m->head_len + len + 1 > m->head_cap)
		return false;
	memcpy(m->head + m->head_len, at, len);
	m->head_len += len;
	return true;
}

static bool head_end_string(struct http_in *m)
{
	if (m->head_len + 1 > m->head_cap)
		return false;
	m->head[m->head_len++] = '\0';
	return true;
}

int cio__http_on_first(llhttp_t *p, const char *at, size_t len)
{
	struct http_in *m = in_of(p);
	return head_add(m, at, len) ? 0 : cio__http_in_refuse(m, 431);
}

int cio__http_on_first_complete(llhttp_t *p)
{
	struct http_in *m = in_of(p);
	return head_end_string(m) ? 0 : cio__http_in_refuse(m, 431);
}

/* Ends the last field's value, which llhttp may leave without a
 * value_complete when it is empty. */
static bool end_value(struct http_in *m)
{
	if (!m->value_open)
		return true;
	m->value_open = false;
	return head_end_string(m);
}

int cio__http_on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct http_in *m = in_of(p);
	if (m->nfields == 0 || m->fields[m->nfields - 1].value != UINT32_MAX) {
		/* A new field (else a name cut by the end of the bytes). */
		if (!end_value(m))
			return cio__http_in_refuse(m, 431);
		if (m->nfields == m->max_fields)
			return cio__http_in_refuse(m, 431);
		m->fields[m->nfields++] = (struct field){(uint32_t)m->head_len, UINT32_MAX};
	}
	return head_add(m, at, len) ? 0 : cio__http_in_refuse(m, 431);
}

int cio__http_on_header_field_complete(llhttp_t *p)
{
	struct http_in *m = in_of(p);
	if (!head_end_string(m))
		return cio__http_in_refuse(m, 431);
	m->fields[m->nfields - 1].value = (uint32_t)m->head_len;
	m->value_open = true;
	m->value_seen = false;
	return 0;
}

int cio__http_on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct http_in *m = in_of(p);
	/* llhttp accepts obs-fold (a line that starts with a space continues
	 * the value), which RFC 9112 lets a server refuse and a proxy must
	 * not pass on: it shows as a second span of the same value, where
	 * the only second span allowed is one continuing a span that the end
	 * of the last execute's bytes cut, from the start of the next. */
	if (m->value_seen && !(m->value_cut && at == m->exec_start))
		return cio__http_in_refuse(m, 400);
	if (memchr(at, '\r', len) || memchr(at, '\n', len))
		return cio__http_in_refuse(m, 400);
	m->value_seen = true;
	m->value_cut = at + len == m->exec_end;
	return head_add(m, at, len) ? 0 : cio__http_in_refuse(m, 431);
}

int cio__http_on_header_value_complete(llhttp_t *p)
{
	struct http_in *m = in_of(p);
	return end_value(m) ? 0 : cio__http_in_refuse(m, 431);
}

int cio__http_in_head_end(struct http_in *m)
{
	if (!end_value(m))
		return cio__http_in_refuse(m, 431);
	if (!(m->p.http_major == 1 && (m->p.http_minor == 0 || m->p.http_minor == 1)))
		return cio__http_in_refuse(m, 505);
	m->head_done = true;
	return 0;
}

int cio__http_on_body(llhttp_t *p, const char *at, size_t len)
{
	struct http_in *m = in_of(p);
	if (m->body_total + len > m->max_body || m->body_total + len < m->body_total)
		return cio__http_in_refuse(m, 413);
	m->body_total += len;
	if (m->dst)
		memcpy(m->dst + m->got, at, len);
	m->got += len;
	return 0;
}

int cio__http_on_message_complete(llhttp_t *p)
{
	in_of(p)->msg_done = true;
	return HPE_PAUSED;
}

int cio__http_in_feed(struct http_in *m, cio_stream *s, size_t max)
{
	size_t len;
	const char *data = cio_stream_peek(s, &len);
	if (len > max)
		len = max;
	if (len == 0)
		return 0;
	m->exec_start = data;
	m->exec_end = data + len;
	bool in_head = !m->head_done;
	llhttp_errno_t e = llhttp_execute(&m->p, data, len);
	size_t used = len;
	if (e == HPE_PAUSED) {
		used = (size_t)(llhttp_get_error_pos(&m->p) - data);
		llhttp_resume(&m->p);
	} else if (e != HPE_OK) {
		return m->status ? m->status : 400;
	}
	if (in_head && used) {
		/* A line ended by LF alone: llhttp takes it after the start
		 * line; a proxy on either side may not, so it is refused. */
		const char *p = data, *end = data + used, *lf;
		while ((lf = memchr(p, '\n', (size_t)(end - p)))) {
			if ((lf > data ? lf[-1] : m->head_last) != '\r')
				return 400;
			p = lf + 1;
		}
		m->head_last = data[used - 1];
		m->head_bytes += used;
	}
	cio_stream_consume(s, used);
	return 0;
}

void cio__http_in_read_ahead(struct http_in *m, cio_stream *s, char *dst, size_t len)
{
	size_t have, got = m->got;
	cio_stream_peek(s, &have);
	if (have || got >= len || m->msg_done || cio__stream_fill_now(s) <= 0)
		return;
	m->dst = dst;
	if (cio__http_in_feed(m, s, len - got) != 0)
		m->got = got; /* the next read says it */
	m->dst = NULL;
}

ssize_t cio__http_read_all(ssize_t (*read)(void *obj, void *buf, size_t len), void *obj,
			   size_t limit, char **out)
{
	size_t len = 0, cap = 0;
	char *buf = NULL;
	*out = NULL;
	/* Room for one byte over the limit, to see a body that is longer. */
	size_t most = limit < SIZE_MAX - 1 ? limit + 1 : SIZE_MAX - 1;
	for (;;) {
		if (cap - len < 4096 && cap < most) {
			size_t ncap = cap ? cap * 2 : 4096;
			if (ncap > most || ncap < cap)
				ncap = most;
			char *nbuf = cio__realloc(buf, ncap + 1);
			if (!nbuf) {
				free(buf);
				return -ENOMEM;
			}
			buf = nbuf;
			cap = ncap;
		}
		ssize_t n = read(obj, buf + len, cap - len);
		if (n < 0) {
			free(buf);
			return n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > limit) {
			free(buf);
			return -EMSGSIZE;
		}
	}
	buf[len] = '\0';
	*out = buf;
	return (ssize_t)len;
}

size_t cio__http_token_len(const char *s)
{
	/* RFC 9110's tchar: alphanumerics and !#$%&'*+-.^_`|~ */
	static const unsigned char tchar[256] = {
		['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
		['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
		['`'] = 1, ['|'] = 1, ['~'] = 1,
		['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
		['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
		['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
		['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
		['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
		['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
		['Y'] = 1, ['Z'] = 1,
		['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
		['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
		['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
		['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
		['y'] = 1, ['z'] = 1,
	};
	size_t n = 0;
	while (tchar[(unsigned char)s[n]])
		n++;
	return s[n] ? 0 : n;
}

char *cio__http_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n)
		*p++ = tmp[--n];
	return p;
}
