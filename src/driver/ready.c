/* ready.c - the readiness engine under the epoll and kqueue backends:
 * per-fd wait queues and the try-then-park policy (see ready.h).
 *
 * An fd is registered with the poller the first time an operation on it
 * would block, for both directions, edge-triggered.  An operation first
 * tries its system call; only on EAGAIN does the task park on the fd's
 * read or write queue, and every edge wakes the whole queue to try again.
 * An fd the runtime did not see created (a foreign library's) is re-armed
 * at each wait, since its number may have been closed and reused behind
 * our back, dropping the registration. */
#include "ready.h"
#include "bufs.h"
#include "../core/rt.h"
#include "../platform/file.h"
#include "../platform/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK_SHIFT 10 /* per-fd state comes in chunks of 1024 fds */
#define CHUNK (1u << CHUNK_SHIFT)

/* Per-fd state.  Chunks never move once allocated, because parked tasks'
 * wait nodes point into the queues. */
struct fdstate {
	cio_waitq rd, wr;
	bool registered;
	bool owned;    /* made by the runtime (cio__ready_fd_new): no reuse unseen */
	uint8_t kind;  /* STREAM, OTHER, or 0: not looked at yet */
	bool drained;  /* a read came up short, and no edge came since */
	bool hup;      /* the peer hung up: no edge will follow an EOF */
	uint8_t direct; /* a file opened O_DIRECT: 0 not looked at, 1 no, 2 yes */
	void (*fire)(void *arg); /* a task-less watch for reading (watch()) */
	void *fire_arg;
};

enum { STREAM = 1, OTHER = 2 };

struct ready_state {
	const struct cio__poller_ops *po;
	void *p; /* the poller's */
	struct fdstate **chunks;
	size_t nchunks;
};

static struct fdstate *fd_state(struct ready_state *s, int fd, bool create)
{
	if (fd < 0)
		return NULL; /* no state; the system call reports EBADF */
	size_t c = (size_t)fd >> CHUNK_SHIFT;
	if (c >= s->nchunks) {
		if (!create)
			return NULL;
		size_t n = s->nchunks ? s->nchunks : 4;
		while (n <= c)
			n *= 2;
		struct fdstate **v = cio__realloc(s->chunks, n * sizeof *v);
		if (!v)
			return NULL;
		memset(v + s->nchunks, 0, (n - s->nchunks) * sizeof *v);
		s->chunks = v;
		s->nchunks = n;
	}
	if (!s->chunks[c]) {
		if (!create)
			return NULL;
		struct fdstate *k = cio__calloc(CHUNK, sizeof *k);
		if (!k)
			return NULL;
		for (unsigned i = 0; i < CHUNK; i++) {
			cio__waitq_init(&k[i].rd);
			cio__waitq_init(&k[i].wr);
		}
		s->chunks[c] = k;
	}
	return &s->chunks[c][(size_t)fd & (CHUNK - 1)];
}

/* Wakes every task on q; they find w.result == code. */
static void wake_all(cio_waitq *q, int code)
{
	struct cio__waiter *w;
	while ((w = cio__waitq_first(q))) {
		cio__waitq_remove(w);
		w->result = code;
		cio__wake(w->task, 0);
	}
}

/* Parks the calling task until fd is ready for reading (POLLIN) and/or
 * writing (POLLOUT), or it is closed (-EBADF), cancelled, or late. */
static int wait_fd(struct cio__driver *d, struct cio__task *self, int fd, int events)
{
	struct ready_state *s = d->impl;
	struct fdstate *f = fd_state(s, fd, true);
	if (!f)
		return fd < 0 ? -EBADF : -ENOMEM;
	if (!f->registered || !f->owned) {
		int rc = s->po->arm(s->p, fd, f->registered);
		if (rc < 0)
			return rc;
		f->registered = true;
	}
	struct cio__waiter rw, ww;
	cio__waiter_init(&rw, self);
	cio__waiter_init(&ww, self);
	if (events & POLLIN)
		cio__waitq_push(&f->rd, &rw);
	if (events & POLLOUT)
		cio__waitq_push(&f->wr, &ww);
	d->rt->inflight++;
	int rc = cio__park(self);
	d->rt->inflight--;
	if (cio__waiter_queued(&rw))
		cio__waitq_remove(&rw);
	if (cio__waiter_queued(&ww))
		cio__waitq_remove(&ww);
	if (rc < 0)
		return rc;
	return rw.result < 0 ? rw.result : ww.result;
}

/* Whether fd is a byte stream where a short read means "drained": a TCP
 * socket or a pipe.  Not a Unix stream socket, whose reads stop before a
 * message that carries fds or credentials with more bytes queued.  Looked
 * up once per fd. */
static bool is_stream(struct fdstate *f, int fd)
{
	if (!f->kind) {
		int type = 0, domain;
		socklen_t len = sizeof type;
		struct stat st;
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
			f->kind = type == SOCK_STREAM &&
						  (domain = cio__sock_domain(fd)) >= 0 &&
						  domain != AF_UNIX
					  ? STREAM : OTHER;
		else
			f->kind = fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) ? STREAM : OTHER;
	}
	return f->kind == STREAM;
}

/* One non-blocking attempt.  Returns the result or -errno. */
static ssize_t attempt(const struct cio__io *io)
{
	ssize_t r;
	switch (io->kind) {
	case CIO__IO_READ:
	case CIO__IO_WRITE:
	case CIO__IO_READV:
	case CIO__IO_WRITEV:
		return cio__io_call(io); /* the fd is non-blocking */
	case CIO__IO_RECV:
		r = recv(io->fd, io->p.buf, io->n.len, io->flags | MSG_DONTWAIT);
		break;
	case CIO__IO_SEND:
		r = send(io->fd, io->p.cbuf, io->n.len,
			 io->flags | MSG_DONTWAIT | CIO__MSG_NOSIGNAL);
		break;
	case CIO__IO_RECVMSG:
		r = recvmsg(io->fd, io->p.msg, io->flags | MSG_DONTWAIT);
		break;
	case CIO__IO_SENDMSG:
		r = sendmsg(io->fd, io->p.msg, io->flags | MSG_DONTWAIT | CIO__MSG_NOSIGNAL);
		break;
	case CIO__IO_ACCEPT:
		r = cio__accept_nb(io->fd, io->p.addr, io->n.addrlen);
		break;
	default:
		return -EINVAL;
	}
	return r < 0 ? -errno : r;
}

static int connect_fd(struct cio__driver *d, struct cio__task *self,
		      const struct cio__io *io)
{
	struct cio__io copy;
	const struct cio__io *cur = io;
	ssize_t failed = cio__io_fail(&cur, &copy);
	if (failed < 0)
		return (int)failed;
	if (connect(io->fd, io->p.addr, io->n.alen) == 0)
		return 0;
	int err = errno;
	if (err != EINPROGRESS && err != EINTR)
		return -err;
	int rc = wait_fd(d, self, io->fd, POLLOUT);
	if (rc < 0)
		return rc;
	socklen_t len = sizeof err;
	if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

/* A read or write at a file offset, made here only if it cannot block
 * (RWF_NOWAIT: the page cache has the data, or room for it); else it is
 * declined, for the blocking pool.  Where the system has no such try
 * (CIO__FILE_TRY is 0), always declined. */
static ssize_t file_nowait(struct ready_state *s, const struct cio__io *io)
{
	if (!CIO__FILE_TRY)
		return CIO__DECLINED;
	/* RWF_NOWAIT keeps an O_DIRECT transfer off locks, not off the
	 * device: it would wait for the disk here.  Looked up once per fd. */
	struct fdstate *f = fd_state(s, io->fd, true);
	if (f && !f->direct) {
		int fl = fcntl(io->fd, F_GETFL);
		f->direct = fl >= 0 && (fl & CIO__O_DIRECT) ? 2 : 1;
	}
	if (!f || f->direct == 2)
		return CIO__DECLINED;
	struct iovec one = {.iov_base = io->p.buf, .iov_len = io->n.len};
	bool vec = io->kind == CIO__IO_READV || io->kind == CIO__IO_WRITEV;
	const struct iovec *iov = vec ? io->p.iov : &one;
	int n = vec ? io->n.iovcnt : 1;
	bool rd = io->kind == CIO__IO_READ || io->kind == CIO__IO_READV;
	ssize_t r = cio__file_try(io->fd, iov, n, io->off, !rd);
	size_t want = 0;
	for (int i = 0; rd && r > 0 && i < n; i++)
		want += iov[i].iov_len;
	if (rd && r > 0 && (size_t)r < want) {
		/* The page cache had only the start: pread(2) would have
		 * waited for the rest, and so does io_uring.  Short only at
		 * the end of the file; else the pool reads it all. */
		struct stat st;
		if (fstat(io->fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    io->off + r < st.st_size)
			return CIO__DECLINED;
	}
	if (r >= 0)
		return r;
	/* EAGAIN: it would block.  EOPNOTSUPP: no RWF_NOWAIT for this
	 * file.  Either way the pool makes the plain call, which also gives
	 * any real error. */
	return CIO__DECLINED;
}

ssize_t cio__ready_io(struct cio__driver *d, struct cio__io *io)
{
	struct cio__task *self = cio__rt_cur->current;
	int rc;
	/* Files go to the blocking pool, but for what can be done now. */
	if (cio__io_has(io->kind, CIO__IO_FILE) || io->kind == CIO__IO_SPLICE)
		return CIO__DECLINED;
	if (io->off >= 0 && cio__io_has(io->kind, CIO__IO_AT_OFFSET))
		return file_nowait(d->impl, io);
	if (io->kind == CIO__IO_CONNECT)
		return connect_fd(d, self, io);
	if (io->kind == CIO__IO_POLL) {
		for (;;) {
			struct pollfd p = {.fd = io->fd, .events = (short)io->flags};
			int n = poll(&p, 1, 0);
			if (n < 0 && errno != EINTR)
				return -errno;
			if (n > 0)
				return p.revents;
			if ((rc = wait_fd(d, self, io->fd, io->flags)) < 0)
				return rc;
		}
	}
	if (cio__io_once(io))
		return cio__io_sync(io); /* one try, never a wait */
	int dir = cio__io_has(io->kind, CIO__IO_OUT) ? POLLOUT : POLLIN;
	/* A plain read of a stream (socket or pipe): after a short read the
	 * buffer was empty, so rather than a read sure to fail with EAGAIN
	 * (a system call per request), wait for the next edge, as nginx
	 * does.  Not for datagrams: a short read is one datagram of many. */
	bool plain = cio__io_has(io->kind, CIO__IO_DRAINS) && !(io->flags & MSG_PEEK);
	struct fdstate *f = plain ? fd_state(d->impl, io->fd, true) : NULL;
	if (f && f->drained && (rc = wait_fd(d, self, io->fd, POLLIN)) < 0)
		return rc;
	for (;;) {
		/* A short transfer injected is no sign of a drained buffer. */
		struct cio__io copy;
		const struct cio__io *cur = io;
		ssize_t r = cio__io_fail(&cur, &copy);
		if (r == 0)
			r = attempt(cur);
		if (f && r > 0 && (size_t)r < cur->n.len && !f->hup && is_stream(f, io->fd))
			f->drained = true;
		if (r >= 0 || (r != -EAGAIN && r != -EINTR))
			return r;
		if (r == -EAGAIN && (rc = wait_fd(d, self, io->fd, dir)) < 0)
			return rc;
	}
}

ssize_t cio__ready_recv_lent(struct cio__driver *d, int fd, struct cio__lent **out)
{
	struct cio__task *self = cio__rt_cur->current;
	/* As a plain read (cio__ready_io()): after a short one, wait for
	 * the next edge rather than try a receive sure to fail. */
	struct fdstate *f = fd_state(d->impl, fd, true);
	int rc;
	if (f && f->drained && (rc = wait_fd(d, self, fd, POLLIN)) < 0)
		return rc;
	for (;;) {
		ssize_t n = cio__bufs_try(d->rt, fd, out);
		if (f && n > 0 && (size_t)n < (*out)->pub.cap && !f->hup && is_stream(f, fd))
			f->drained = true;
		if (n != -EAGAIN)
			return n;
		if ((rc = wait_fd(d, self, fd, POLLIN)) < 0)
			return rc;
	}
}

int cio__ready_watch(struct cio__driver *d, int fd, void (*fire)(void *arg), void *arg)
{
	struct ready_state *s = d->impl;
	struct fdstate *f = fd_state(s, fd, true);
	if (!f)
		return fd < 0 ? -EBADF : -ENOMEM;
	/* After a short read, with no edge since, the buffer is empty and
	 * the edge to come will say when it is not: nothing to ask.  Else
	 * bytes may wait whose edge went by: ask poll(2). */
	if (!f->drained || !f->registered || !f->owned) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, 0);
		if (n < 0)
			return errno == EINTR ? 1 : -errno; /* 1: the caller reads */
		if (n > 0)
			return p.revents & POLLNVAL ? -EBADF : 1;
		if (!f->registered || !f->owned) {
			int rc = s->po->arm(s->p, fd, f->registered);
			if (rc < 0)
				return rc;
			f->registered = true;
		}
	}
	if (!f->fire)
		d->rt->inflight++;
	f->fire = fire;
	f->fire_arg = arg;
	return 0;
}

static void unwatch(struct cio__driver *d, struct fdstate *f)
{
	if (f && f->fire) {
		f->fire = NULL;
		d->rt->inflight--;
	}
}

void cio__ready_unwatch(struct cio__driver *d, int fd)
{
	unwatch(d, fd_state(d->impl, fd, false));
}

static void forget(struct cio__driver *d, int fd)
{
	struct ready_state *s = d->impl;
	struct fdstate *f = fd_state(s, fd, false);
	if (!f)
		return;
	unwatch(d, f);
	/* Whoever still waits on this number waited on a file now gone. */
	wake_all(&f->rd, -EBADF);
	wake_all(&f->wr, -EBADF);
	if (f->registered)
		s->po->disarm(s->p, fd); /* dups would keep it */
	f->registered = false;
	f->owned = false;
	f->kind = 0;
	f->drained = false;
	f->hup = false;
	f->direct = 0;
}

int cio__ready_close_fd(struct cio__driver *d, int fd)
{
	forget(d, fd);
	return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

void cio__ready_fd_new(struct cio__driver *d, int fd)
{
	struct ready_state *s = d->impl;
	forget(d, fd);
	struct fdstate *f = fd_state(s, fd, true);
	if (f)
		f->owned = true;
}


void cio__ready_event(struct cio__driver *d, int fd, unsigned what)
{
	struct fdstate *f = fd_state(d->impl, fd, false);
	if (!f)
		return;
	if (what & (CIO__READY_IN | CIO__READY_HUP | CIO__READY_ERR)) {
		f->drained = false;
		if (what & (CIO__READY_HUP | CIO__READY_ERR))
			f->hup = true;
		wake_all(&f->rd, 0);
		if (f->fire) {
			void (*fire)(void *) = f->fire;
			f->fire = NULL;
			d->rt->inflight--;
			fire(f->fire_arg);
		}
	}
	if (what & (CIO__READY_OUT | CIO__READY_ERR))
		wake_all(&f->wr, 0);
}

int cio__ready_open(struct cio__driver *d, const struct cio__poller_ops *po)
{
	struct ready_state *s = cio__calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->po = po;
	int rc = po->open(d, &s->p);
	if (rc < 0) {
		free(s);
		return rc;
	}
	d->impl = s;
	return 0;
}

void cio__ready_close(struct cio__driver *d)
{
	struct ready_state *s = d->impl;
	if (!s)
		return;
	s->po->close(s->p);
	for (size_t i = 0; i < s->nchunks; i++)
		free(s->chunks[i]);
	free(s->chunks);
	free(s);
	d->impl = NULL;
}

int cio__ready_wait(struct cio__driver *d, int64_t timeout_ns)
{
	struct ready_state *s = d->impl;
	return s->po->wait(s->p, d, timeout_ns);
}

int cio__ready_wake(struct cio__driver *d)
{
	struct ready_state *s = d->impl;
	return s->po->wake ? s->po->wake(s->p) : -ENOTSUP;
}
