/* stream.c - buffered streams: a read buffer with line and delimiter reads,
 * a write buffer that coalesces small writes, over a plain fd or any
 * transport of stream.h (TLS). */
#include "stream.h"
#include "blocks.h"
#include "../platform/fail.h"
#include "../core/rt.h"
#include "../platform/fiber.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_BUF_DEFAULT (16 * 1024)
#define STREAM_BUF_MIN 64
#define STREAM_BUF_MAX (64 * 1024 * 1024)
/* The longest a close waits: for its flush and close_notify, or for the
 * other tasks' calls to leave. */
#define CLOSE_WAIT (5 * CIO_SEC)

/* --- the plain transport ------------------------------------------------- */

static ssize_t plain_read(cio_stream *s, void *buf, size_t len)
{
	return cio_recv(s->fd, buf, len, 0);
}

static ssize_t plain_write(cio_stream *s, const void *buf, size_t len)
{
	return cio_send(s->fd, buf, len, 0);
}

static int plain_shutdown(cio_stream *s)
{
	return cio_shutdown(s->fd, SHUT_WR);
}

const struct cio__stream_ops cio__stream_plain = {
	.read = plain_read,
	.write = plain_write,
	.shutdown = plain_shutdown,
};

static bool is_plain(const cio_stream *s)
{
	return s->ops == &cio__stream_plain;
}

/* Every call that may park goes through these: counted, so that a close
 * from another task can wake it (closing the fd) and wait for it to leave
 * before freeing what it uses; once closing, -EBADF without touching the
 * fd, whose number may already be another file's. */
static bool enter(cio_stream *s)
{
	if (s->closing)
		return false;
	cio_wg_add(&s->calls, 1);
	return true;
}

static ssize_t leave(cio_stream *s, ssize_t rc)
{
	cio_wg_done(&s->calls);
	return s->closing ? -EBADF : rc;
}

static ssize_t tr_read(cio_stream *s, void *buf, size_t len)
{
	int kept = s->rerr; /* what a read ahead met (cio__stream_fill_now) */
	s->rerr = 0;
	if (kept)
		return kept;
	return enter(s) ? leave(s, s->ops->read(s, buf, len)) : -EBADF;
}

static ssize_t tr_write(cio_stream *s, const void *buf, size_t len)
{
	return enter(s) ? leave(s, s->ops->write(s, buf, len)) : -EBADF;
}

static int tr_shutdown(cio_stream *s)
{
	return enter(s) ? (int)leave(s, s->ops->shutdown(s)) : -EBADF;
}

static int tr_flush(cio_stream *s)
{
	if (!s->ops->flush)
		return 0;
	return enter(s) ? (int)leave(s, s->ops->flush(s)) : -EBADF;
}

static ssize_t tr_writev(cio_stream *s, const struct iovec *v, int n)
{
	if (!enter(s))
		return -EBADF;
	/* One piece is a send: the cheapest call on every backend. */
	return leave(s, n == 1 ? cio_send(s->fd, v[0].iov_base, v[0].iov_len, 0)
			       : cio_writev(s->fd, v, n));
}

static ssize_t tr_sendfile(cio_stream *s, int file, int64_t off, size_t len,
			   size_t *moved)
{
	if (!enter(s))
		return -EBADF;
	return leave(s, cio_sendfile(s->fd, file, off, len, moved));
}

/* --- errors -------------------------------------------------------------- */

int cio__stream_detail(cio_stream *s, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->detail, sizeof s->detail, fmt, ap);
	va_end(ap);
	s->detail_err = err;
	return err;
}

/* Notes a failed call's result (a detail given for another error is stale
 * from then on) and returns it. */
static ssize_t fail(cio_stream *s, ssize_t err)
{
	if (err < 0) {
		if (s->detail_err != (int)err)
			s->detail[0] = '\0';
		s->last_err = (int)err;
	}
	return err;
}

const char *cio_stream_error(const cio_stream *s)
{
	if (s->last_err == 0)
		return "";
	if (s->detail[0] && s->detail_err == s->last_err)
		return s->detail;
	return cio_strerror(s->last_err);
}

/* --- life ---------------------------------------------------------------- */

static size_t buf_size(size_t asked)
{
	return asked ? asked : STREAM_BUF_DEFAULT;
}

int cio_stream_new(cio_stream **out, int fd, const cio_stream_opts *opts)
{
	size_t rcap = buf_size(opts ? opts->read_buf : 0);
	size_t wcap = buf_size(opts ? opts->write_buf : 0);
	cio_stream *s;

	*out = NULL;
	if (fd < 0)
		return -EINVAL;
	if (rcap < STREAM_BUF_MIN || rcap > STREAM_BUF_MAX ||
	    wcap < STREAM_BUF_MIN || wcap > STREAM_BUF_MAX) {
		cio_close(fd);
		return -EINVAL;
	}
	/* The buffers apart from the stream, so that an idle connection can
	 * give them back (cio__stream_park()). */
	s = cio__malloc(sizeof *s);
	char *bufs = cio__block_take(rcap + wcap);
	if (!s || !bufs) {
		free(s);
		cio__block_give(bufs, rcap + wcap);
		cio_close(fd);
		return -ENOMEM;
	}
	memset(s, 0, sizeof *s);
	s->fd = fd;
	cio_wg_init(&s->calls);
	s->ops = &cio__stream_plain;
	s->rbuf = bufs;
	s->rcap = rcap;
	s->wbuf = bufs + rcap;
	s->wcap = wcap;
	*out = s;
	return 0;
}

int cio_stream_close(cio_stream *s)
{
	int err = 0;

	if (!s)
		return 0;
	if (s->calls._count > 0) {
		/* Other tasks are inside calls on s: closing the fd wakes
		 * them (-EBADF), and s lives until the last has left.  No
		 * flush: a writer among them owns the write side. */
		s->closing = true;
		cio_close(s->fd);
		CIO_SHIELDED(CLOSE_WAIT) {
			while (s->calls._count > 0 && cio_wg_wait(&s->calls) == 0)
				;
		}
		if (s->calls._count > 0)
			return -EBUSY; /* a call that never left: s must leak */
	} else if (s->werr == 0) {
		/* What is buffered goes out, and a TLS session ends with
		 * close_notify (so that the peer can tell the end from a
		 * truncation), within the caller's deadline and at most
		 * CLOSE_WAIT: a peer that reads nothing cannot hold a close. */
		CIO_WITH_TIMEOUT(CLOSE_WAIT) {
			err = cio_stream_flush(s);
			if (err == 0 && !is_plain(s) && !s->shut)
				err = s->ops->shutdown(s);
		}
	}
	if (s->ops->release)
		s->ops->release(s);
	if (!s->closing)
		cio_close(s->fd);
	cio__block_give(s->rbuf, s->rcap + s->wcap);
	free(s);
	return err;
}

void cio__stream_free(cio_stream *s)
{
	if (s->ops->release)
		s->ops->release(s);
	cio__block_give(s->rbuf, s->rcap + s->wcap);
	free(s);
}

int cio__stream_park(cio_stream *s)
{
	if (!s->rbuf)
		return 0;
	if (s->rtail != s->rhead || s->wtail != s->whead || s->calls._count > 0 ||
	    (s->ops->holds && s->ops->holds(s)))
		return -EBUSY;
	cio__block_give(s->rbuf, s->rcap + s->wcap);
	s->rbuf = s->wbuf = NULL;
	s->rhead = s->rtail = s->whead = s->wtail = 0;
	return 0;
}

int cio__stream_unpark(cio_stream *s)
{
	if (s->rbuf)
		return 0;
	char *bufs = cio__block_take(s->rcap + s->wcap);
	if (!bufs)
		return -ENOMEM;
	s->rbuf = bufs;
	s->wbuf = bufs + s->rcap;
	return 0;
}

int cio_stream_fd(const cio_stream *s)
{
	return s->fd;
}

/* --- reading ------------------------------------------------------------- */

static size_t buffered(const cio_stream *s)
{
	return s->rtail - s->rhead;
}

/* Makes room at the end of the read buffer: empty, it starts over; full
 * to its end, what it holds moves to the front. */
static void make_room(cio_stream *s)
{
	if (s->rhead == s->rtail) {
		s->rhead = s->rtail = 0;
	} else if (s->rtail == s->rcap) {
		memmove(s->rbuf, s->rbuf + s->rhead, buffered(s));
		s->rtail -= s->rhead;
		s->rhead = 0;
	}
}

/* One read of the transport into the free end of the read buffer.
 * Returns the bytes read, 0 at the end of the stream, or -errno. */
static ssize_t fill_once(cio_stream *s)
{
	make_room(s);
	ssize_t n = tr_read(s, s->rbuf + s->rtail, s->rcap - s->rtail);
	if (n > 0)
		s->rtail += (size_t)n;
	return n;
}

ssize_t cio__stream_fill_now(cio_stream *s)
{
	struct cio__task *self = cio__rt_cur->current;
	make_room(s);
	/* Not for a caller whose deadline has passed or who is cancelled:
	 * the receive would answer that, which is the caller's, not the
	 * socket's, and must not outlive the caller's scope. */
	if (!is_plain(s) || s->rtail == s->rcap || cio__interrupted(self) || !enter(s))
		return -EAGAIN;
	ssize_t n = leave(s, cio_recv(s->fd, s->rbuf + s->rtail, s->rcap - s->rtail,
				      MSG_DONTWAIT));
	if (n > 0)
		s->rtail += (size_t)n;
	else if (n < 0 && n != -EAGAIN && n != -ECANCELED && !(n == -ETIMEDOUT && self->deadline_hit))
		s->rerr = (int)n; /* the socket says it once: for the next read */
	return n;
}

static size_t take(cio_stream *s, void *buf, size_t len)
{
	size_t n = buffered(s) < len ? buffered(s) : len;

	memcpy(buf, s->rbuf + s->rhead, n);
	s->rhead += n;
	return n;
}

ssize_t cio_stream_read(cio_stream *s, void *buf, size_t len)
{
	ssize_t n;

	if (len == 0)
		return 0;
	if (buffered(s))
		return (ssize_t)take(s, buf, len);
	if (len >= s->rcap)
		return fail(s, tr_read(s, buf, len));
	n = fill_once(s);
	if (n <= 0)
		return fail(s, n);
	return (ssize_t)take(s, buf, len);
}

ssize_t cio_stream_read_exact(cio_stream *s, void *buf, size_t len, size_t *moved)
{
	size_t done = 0;
	ssize_t n = 0;

	while (done < len) {
		n = cio_stream_read(s, (char *)buf + done, len - done);
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (moved)
		*moved = done;
	if (done == len)
		return (ssize_t)len;
	return fail(s, n == 0 ? -EPIPE : n);
}

ssize_t cio_stream_fill(cio_stream *s, size_t min)
{
	ssize_t n;

	if (min > s->rcap)
		return fail(s, -EINVAL);
	if (min == 0)
		min = 1;
	while (buffered(s) < min) {
		/* Room for min bytes from rhead on, or move them to the front. */
		if (s->rhead + min > s->rcap) {
			memmove(s->rbuf, s->rbuf + s->rhead, buffered(s));
			s->rtail -= s->rhead;
			s->rhead = 0;
		}
		n = fill_once(s);
		if (n == 0)
			break;
		if (n < 0)
			return fail(s, n);
	}
	return (ssize_t)buffered(s);
}

ssize_t cio_stream_read_until(cio_stream *s, int delim, size_t limit,
			      const char **data)
{
	size_t scanned = 0;

	*data = NULL;
	if (limit == 0)
		limit = s->rcap;
	if (limit > s->rcap)
		return fail(s, -EINVAL);
	for (;;) {
		size_t window = buffered(s) < limit ? buffered(s) : limit;
		const char *start = s->rbuf + s->rhead;
		const char *hit = memchr(start + scanned, delim, window - scanned);
		ssize_t n;

		if (hit) {
			size_t len = (size_t)(hit - start) + 1;
			*data = start;
			s->rhead += len;
			return (ssize_t)len;
		}
		scanned = window;
		if (window == limit)
			return fail(s, -EMSGSIZE);
		/* Keep the line where it is unless the buffer's end is full:
		 * fill_once() moves it then, and the scan resumes at the same
		 * offset from the line's start. */
		n = fill_once(s);
		if (n == 0)
			return buffered(s) ? fail(s, -EPIPE) : 0;
		if (n < 0)
			return fail(s, n);
	}
}

ssize_t cio_stream_read_line(cio_stream *s, size_t limit, const char **line)
{
	const char *data;
	ssize_t n = cio_stream_read_until(s, '\n', limit, &data);
	char *end;

	*line = NULL;
	if (n <= 0)
		return n;
	end = (char *)data + n - 1;
	if (end > data && end[-1] == '\r')
		end--;
	*end = '\0';
	*line = data;
	return end - data;
}

const void *cio_stream_peek(const cio_stream *s, size_t *len)
{
	*len = buffered(s);
	return *len ? s->rbuf + s->rhead : NULL;
}

void cio_stream_consume(cio_stream *s, size_t n)
{
	s->rhead += n < buffered(s) ? n : buffered(s);
}

/* --- writing ------------------------------------------------------------- */

static size_t pending(const cio_stream *s)
{
	return s->wtail - s->whead;
}

/* Keeps a write's failure for later writes when it is the connection's:
 * an interrupted write (cancel, deadline) leaves the stream whole, its
 * unsent bytes still in the buffer or the caller's.  Returns err. */
static int keep_write_error(cio_stream *s, int err)
{
	if (err != -ECANCELED && err != -ETIMEDOUT)
		s->werr = err;
	return err;
}

/* Writes all of buf through the transport; a failure is kept in werr.
 * Returns 0 or -errno; *sent (added to) counts what went. */
static int send_all(cio_stream *s, const char *buf, size_t len, size_t *sent)
{
	size_t done = 0;
	int err = 0;

	while (done < len) {
		ssize_t n = tr_write(s, buf + done, len - done);
		if (n < 0) {
			err = keep_write_error(s, (int)n);
			break;
		}
		done += (size_t)n;
	}
	*sent += done;
	return err;
}

/* Sends the write buffer; *sent (added to) counts its bytes that went. */
static int drain(cio_stream *s, size_t *sent)
{
	size_t n = 0;
	int err;

	if (s->werr)
		return s->werr;
	if (pending(s) == 0) {
		s->whead = s->wtail = 0; /* (and a parked stream has no buffer) */
		return 0;
	}
	err = send_all(s, s->wbuf + s->whead, pending(s), &n);
	s->whead += n;
	if (s->whead == s->wtail)
		s->whead = s->wtail = 0;
	*sent += n;
	return err;
}

int cio_stream_flush(cio_stream *s)
{
	size_t sent = 0;
	int err = drain(s, &sent);

	return (int)fail(s, err ? err : tr_flush(s));
}

static ssize_t plain_writev_all(cio_stream *s, const struct iovec *iov, int iovcnt,
				size_t *moved);

/* Passes len bytes through the write buffer: copied while they fit, the
 * buffer sent when full, and a run at least a buffer long sent straight
 * from buf once the buffer is empty.  *sent counts the bytes that reached
 * the transport, from the buffer or straight.  Returns 0 or -errno. */
static int coalesce(cio_stream *s, const char *buf, size_t len, size_t *sent)
{
	while (len > 0) {
		size_t room = s->wcap - s->wtail;
		int err;

		if (pending(s) == 0 && len >= s->wcap)
			return send_all(s, buf, len, sent);
		if (pending(s) + len >= s->wcap && is_plain(s)) {
			/* It fills the buffer: one writev of both, no copy. */
			size_t head = pending(s), moved = 0;
			ssize_t n = plain_writev_all(s, &(struct iovec){(void *)buf, len}, 1,
						     &moved);
			*sent += moved + (head - pending(s));
			return n < 0 ? (int)n : 0;
		}
		if (room == 0) {
			if ((err = drain(s, sent)) < 0)
				return err;
			continue;
		}
		if (room > len)
			room = len;
		memcpy(s->wbuf + s->wtail, buf, room);
		s->wtail += room;
		buf += room;
		len -= room;
	}
	return 0;
}

ssize_t cio_stream_put(cio_stream *s, const void *buf, size_t len)
{
	size_t sent = 0;
	int err = s->werr ? s->werr : coalesce(s, buf, len, &sent);

	return err ? fail(s, err) : (ssize_t)len;
}

ssize_t cio_stream_write(cio_stream *s, const void *buf, size_t len)
{
	int err = cio_stream_flush(s);
	ssize_t n;

	if (err < 0)
		return err;
	if (len == 0)
		return 0;
	n = tr_write(s, buf, len);
	if (n < 0)
		keep_write_error(s, (int)n);
	return fail(s, n);
}

/* Plain streams: the write buffer and the iovecs go out together in
 * writev(2) calls, so a buffered header and its body cost one system
 * call.  Returns the bytes of iov sent, or -errno; *moved as documented. */
static ssize_t plain_writev_all(cio_stream *s, const struct iovec *iov, int iovcnt,
				size_t *moved)
{
	struct iovec v[64];
	size_t total = 0, done = 0, head = pending(s);
	size_t off = 0; /* bytes of iov[i], the next to send, already sent */
	int i = 0, err = 0;

	for (int k = 0; k < iovcnt; k++)
		total += iov[k].iov_len;
	while ((head > 0 || done < total) && err == 0) {
		int n = 0;
		ssize_t w;

		if (head > 0)
			v[n++] = (struct iovec){ s->wbuf + s->whead, head };
		for (int k = i; k < iovcnt && n < 64; k++) {
			size_t skip = k == i ? off : 0;
			if (iov[k].iov_len > skip)
				v[n++] = (struct iovec){ (char *)iov[k].iov_base + skip,
							 iov[k].iov_len - skip };
		}
		w = tr_writev(s, v, n);
		if (w < 0) {
			err = keep_write_error(s, (int)w);
			break;
		}
		size_t from_buf = (size_t)w < head ? (size_t)w : head;
		s->whead += from_buf;
		head -= from_buf;
		w -= (ssize_t)from_buf;
		done += (size_t)w;
		/* Advance the cursor past what went, and past empty iovecs. */
		while (i < iovcnt && (size_t)w >= iov[i].iov_len - off) {
			w -= (ssize_t)(iov[i].iov_len - off);
			i++;
			off = 0;
		}
		off += (size_t)w;
	}
	if (head == 0)
		s->whead = s->wtail = 0;
	if (moved)
		*moved = done;
	return err ? fail(s, err) : (ssize_t)total;
}

ssize_t cio_stream_writev_all(cio_stream *s, const struct iovec *iov, int iovcnt,
			      size_t *moved)
{
	size_t total = 0, sent = 0;
	int err;

	if (moved)
		*moved = 0;
	if (iovcnt < 0)
		return fail(s, -EINVAL);
	if (s->werr)
		return fail(s, s->werr);
	if (is_plain(s))
		return plain_writev_all(s, iov, iovcnt, moved);
	/* Other transports: what the buffer held first, so that from then
	 * on its bytes are all the caller's and `sent` counts only those. */
	err = drain(s, &(size_t){ 0 });
	if (err)
		return fail(s, err);
	for (int k = 0; k < iovcnt && err == 0; k++) {
		total += iov[k].iov_len;
		err = coalesce(s, iov[k].iov_base, iov[k].iov_len, &sent);
	}
	if (err == 0)
		err = drain(s, &sent);
	/* The caller's bytes still buffered were not sent: they leave the
	 * buffer, so that *moved is exact and a retry from it sends each
	 * byte once. */
	if (err)
		s->wtail = s->whead;
	if (moved)
		*moved = sent;
	return err ? fail(s, err) : (ssize_t)total;
}

ssize_t cio_stream_write_all(cio_stream *s, const void *buf, size_t len,
			     size_t *moved)
{
	struct iovec v = { (void *)buf, len };

	return cio_stream_writev_all(s, &v, 1, moved);
}

int cio_stream_shutdown(cio_stream *s)
{
	int err = cio_stream_flush(s);

	if (err < 0)
		return err;
	if (s->shut)
		return 0;
	/* Ended only once that went: an interrupted shutdown is taken up
	 * again by the next one, or by close. */
	err = tr_shutdown(s);
	s->shut = err == 0;
	return (int)fail(s, err);
}

/* --- zero-copy paths ----------------------------------------------------- */

ssize_t cio_stream_sendfile(cio_stream *s, int file, int64_t off, size_t len,
			    size_t *moved)
{
	size_t done = 0;
	ssize_t n = cio_stream_flush(s);

	if (moved)
		*moved = 0;
	if (n < 0)
		return n;
	if (is_plain(s)) {
		n = tr_sendfile(s, file, off, len, moved);
		/* Only the connection's errors stick, not the file's. */
		if (n == -EPIPE || n == -ECONNRESET)
			keep_write_error(s, (int)n);
		return fail(s, n);
	}
	/* Through the write buffer: read a buffer's worth of the file into
	 * it, send it. */
	while (done < len) {
		size_t want = len - done < s->wcap ? len - done : s->wcap;
		n = cio_pread(file, s->wbuf, want, off + (int64_t)done);
		if (n <= 0)
			break;
		s->whead = 0;
		s->wtail = (size_t)n;
		size_t sent = 0;
		n = drain(s, &sent);
		done += sent;
		if (n < 0) {
			s->whead = s->wtail = 0; /* unsent: not counted either */
			break;
		}
	}
	if (moved)
		*moved = done;
	return n < 0 ? fail(s, n) : (ssize_t)done;
}

/* One direction of a relay that copies: from's bytes are read straight
 * into to's (empty) write buffer and sent from there. */
struct relay_dir {
	cio_stream *from, *to;
	int64_t idle;     /* ns without a byte either way that ends it; 0: none */
	int64_t *last;    /* when a byte last moved, either way */
	uint64_t bytes;
};

/* One read of from (into to's write buffer) or one write of to (from it),
 * within the idle limit: each byte that moves, either way, restarts it. */
static ssize_t relay_step(struct relay_dir *d, bool reading)
{
	cio_stream *to = d->to;

	for (;;) {
		int64_t tok = d->idle ? cio_deadline_push(*d->last + d->idle) : 0;
		ssize_t n = reading ? cio_stream_read(d->from, to->wbuf, to->wcap)
				    : tr_write(to, to->wbuf + to->whead, pending(to));
		bool mine = d->idle && n == -ETIMEDOUT && cio_deadline_expired(tok);

		if (d->idle)
			cio_deadline_pop(tok);
		if (n > 0)
			*d->last = cio_now();
		/* The idle limit counts both ways: go on while the other
		 * direction moved lately. */
		if (!mine || cio_now() >= *d->last + d->idle)
			return n;
	}
}

static int relay_copy(struct relay_dir *d)
{
	cio_stream *to = d->to;

	for (;;) {
		ssize_t n = relay_step(d, true);

		/* The end, or a TLS peer's end without close_notify: the
		 * half-close passes on either way, as a plain relay's. */
		if (n == 0 || n == -EPIPE)
			return cio_stream_shutdown(to);
		if (n < 0)
			return (int)n;
		to->whead = 0;
		to->wtail = (size_t)n;
		while (pending(to)) {
			n = relay_step(d, false);
			if (n < 0) {
				keep_write_error(to, (int)n);
				return (int)fail(to, n);
			}
			to->whead += (size_t)n;
			d->bytes += (size_t)n;
		}
		to->whead = to->wtail = 0;
	}
}

static int relay_member(void *arg)
{
	return relay_copy(arg);
}

/* Delivers what from's read buffer holds to `to`, and flushes `to`. */
static int relay_buffered(cio_stream *from, cio_stream *to, uint64_t *bytes)
{
	size_t len, sent = 0;
	const void *p = cio_stream_peek(from, &len);
	int err = 0;

	if (len) {
		err = (int)cio_stream_write_all(to, p, len, &sent);
		cio_stream_consume(from, sent);
		*bytes += sent;
	}
	return err < 0 ? err : cio_stream_flush(to);
}

int cio_stream_relay(cio_stream *a, cio_stream *b, const cio_relay_opts *opts,
		     cio_relay_stats *st)
{
	int64_t last = cio_now();
	struct relay_dir ab = { a, b, opts ? opts->idle_timeout : 0, &last, 0 };
	struct relay_dir ba = { b, a, ab.idle, &last, 0 };
	cio_relay_stats plain = { 0, 0 };
	int err;

	err = relay_buffered(a, b, &ab.bytes);
	if (err == 0)
		err = relay_buffered(b, a, &ba.bytes);
	if (err == 0 && is_plain(a) && is_plain(b)) {
		err = cio_relay(a->fd, b->fd, opts, &plain);
	} else if (err == 0) {
		/* Two members, the first error cancelling the other; the
		 * wait stops both if the caller is interrupted. */
		cio_group_opts go = { .fail_fast = true };
		cio_group *g;
		err = cio_group_new(&g, &go);
		if (err == 0) {
			if ((err = cio_group_spawn(g, relay_member, &ab)) >= 0)
				err = cio_group_spawn(g, relay_member, &ba);
			if (err < 0)
				cio_group_cancel(g);
			int werr = cio_group_wait(g);
			err = err < 0 ? err : werr;
			cio_group_free(g);
		}
	}
	if (st) {
		st->a_to_b = ab.bytes + plain.a_to_b;
		st->b_to_a = ba.bytes + plain.b_to_a;
	}
	return err;
}
