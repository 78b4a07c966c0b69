/* io.c - the one entry point every blocking I/O call goes through, and
 * what each request kind is.  What is true of all backends is done here
 * once: interruption first, fd and length checks, the stream-splice loop,
 * the wait-and-retry after EAGAIN, a declined request run on the blocking
 * pool, the cooperative budget charged on every call, and the
 * operation counters of cio_stats. */
#include "driver.h"
#include "bgsend.h"
#include "../core/rt.h"
#include "../platform/file.h"
#include "../platform/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

const unsigned char cio__io_props[CIO__IO_NKINDS] = {
	[CIO__IO_READ] = CIO__IO_BYTES | CIO__IO_DRAINS | CIO__IO_AT_OFFSET | CIO__IO_RETRY,
	[CIO__IO_WRITE] = CIO__IO_OUT | CIO__IO_BYTES | CIO__IO_AT_OFFSET | CIO__IO_RETRY,
	[CIO__IO_READV] = CIO__IO_AT_OFFSET | CIO__IO_RETRY,
	[CIO__IO_WRITEV] = CIO__IO_OUT | CIO__IO_AT_OFFSET | CIO__IO_RETRY,
	[CIO__IO_RECV] = CIO__IO_BYTES | CIO__IO_DRAINS | CIO__IO_RETRY,
	[CIO__IO_SEND] = CIO__IO_OUT | CIO__IO_BYTES | CIO__IO_RETRY,
	[CIO__IO_RECVMSG] = CIO__IO_RETRY,
	[CIO__IO_SENDMSG] = CIO__IO_OUT | CIO__IO_RETRY,
	[CIO__IO_ACCEPT] = CIO__IO_RETRY,
	[CIO__IO_CONNECT] = CIO__IO_OUT,
	[CIO__IO_POLL] = 0,
	[CIO__IO_OPENAT] = CIO__IO_FILE | CIO__IO_AT,
	[CIO__IO_FSYNC] = CIO__IO_FILE,
	[CIO__IO_FALLOCATE] = CIO__IO_FILE,
	[CIO__IO_FTRUNCATE] = CIO__IO_FILE,
	[CIO__IO_STATX] = CIO__IO_FILE | CIO__IO_AT,
	[CIO__IO_RENAMEAT] = CIO__IO_FILE | CIO__IO_AT,
	[CIO__IO_UNLINKAT] = CIO__IO_FILE | CIO__IO_AT,
	[CIO__IO_MKDIRAT] = CIO__IO_FILE | CIO__IO_AT,
	[CIO__IO_SYMLINKAT] = CIO__IO_FILE | CIO__IO_AT,
	[CIO__IO_LINKAT] = CIO__IO_FILE | CIO__IO_AT,
	[CIO__IO_SPLICE] = CIO__IO_BYTES,
};

ssize_t cio__io_call(const struct cio__io *io)
{
	ssize_t r;
	int64_t off = io->off, off2 = io->off2;
	switch (io->kind) {
	case CIO__IO_READ:
		r = io->off < 0 ? read(io->fd, io->p.buf, io->n.len)
				: pread(io->fd, io->p.buf, io->n.len, io->off);
		break;
	case CIO__IO_WRITE:
		r = io->off < 0 ? write(io->fd, io->p.cbuf, io->n.len)
				: pwrite(io->fd, io->p.cbuf, io->n.len, io->off);
		break;
	case CIO__IO_READV:
		r = io->off < 0 ? readv(io->fd, io->p.iov, io->n.iovcnt)
				: preadv(io->fd, io->p.iov, io->n.iovcnt, io->off);
		break;
	case CIO__IO_WRITEV:
		r = io->off < 0 ? writev(io->fd, io->p.iov, io->n.iovcnt)
				: pwritev(io->fd, io->p.iov, io->n.iovcnt, io->off);
		break;
	case CIO__IO_RECV:
		r = recv(io->fd, io->p.buf, io->n.len, io->flags);
		break;
	case CIO__IO_SEND:
		r = send(io->fd, io->p.cbuf, io->n.len, io->flags | CIO__MSG_NOSIGNAL);
		break;
	case CIO__IO_RECVMSG:
		r = recvmsg(io->fd, io->p.msg, io->flags);
		break;
	case CIO__IO_SENDMSG:
		r = sendmsg(io->fd, io->p.msg, io->flags | CIO__MSG_NOSIGNAL);
		break;
	case CIO__IO_ACCEPT:
		r = cio__accept_nb(io->fd, io->p.addr, io->n.addrlen);
		break;
	case CIO__IO_CONNECT:
		r = connect(io->fd, io->p.addr, io->n.alen);
		break;
	case CIO__IO_POLL: {
		struct pollfd p = {.fd = io->fd, .events = (short)io->flags};
		r = poll(&p, 1, -1);
		if (r > 0)
			r = p.revents;
		break;
	}
	case CIO__IO_OPENAT:
		r = openat(io->fd, io->path, io->flags | O_CLOEXEC, (mode_t)io->mode);
		break;
	case CIO__IO_FSYNC:
		r = io->flags & CIO__FSYNC_DATA ? fdatasync(io->fd) : fsync(io->fd);
		break;
	case CIO__IO_FALLOCATE:
		return cio__fallocate(io->fd, (int)io->mode, io->off, (int64_t)io->n.len);
	case CIO__IO_FTRUNCATE:
		r = ftruncate(io->fd, io->off);
		break;
	case CIO__IO_STATX:
		return cio__statx(io->fd, io->path, io->flags, io->mode, io->p.stx);
	case CIO__IO_RENAMEAT:
		return cio__renameat2(io->fd, io->path, io->fd2, io->path2,
				      (unsigned)io->flags);
	case CIO__IO_UNLINKAT:
		r = unlinkat(io->fd, io->path, io->flags);
		break;
	case CIO__IO_MKDIRAT:
		r = mkdirat(io->fd, io->path, (mode_t)io->mode);
		break;
	case CIO__IO_SYMLINKAT:
		r = symlinkat(io->path, io->fd2, io->path2);
		break;
	case CIO__IO_LINKAT:
		r = linkat(io->fd, io->path, io->fd2, io->path2, io->flags);
		break;
	case CIO__IO_SPLICE:
		return cio__splice(io->fd, io->off < 0 ? NULL : &off, io->fd2,
				   io->off2 < 0 ? NULL : &off2, io->n.len, false);
	default:
		errno = EINVAL;
		r = -1;
	}
	return r < 0 ? -errno : r;
}

static void *sync_job(void *io)
{
	return (void *)(intptr_t)cio__io_sync(io);
}

/* A request the backend declined: the plain call on the blocking pool.
 * Held, not abandoned, once running: buffers and paths are the caller's,
 * maybe on its stack. */
static ssize_t on_pool(const char *call, struct cio__io *io)
{
	void *res;
	int rc = cio__blocking_hold(call, sync_job, io, &res);
	return rc < 0 ? rc : (ssize_t)(intptr_t)res;
}

/* Parks until fd is ready for `events`, through the backend's POLL. */
static ssize_t wait_ready(struct cio__driver *d, int fd, int events)
{
	struct cio__io poll = {.kind = CIO__IO_POLL, .fd = fd, .flags = events};
	return d->ops->io(d, &poll);
}

/* A splice between a pipe and a socket (or two pipes).  The kernel's own
 * asynchronous splice would block a worker thread waiting for the socket,
 * so: the non-blocking system call, and on EAGAIN a wait for the side
 * that is not ready.  A short splice says nothing of what is left (it
 * stops at the pipe's slots), so unlike a read it never means drained. */
static ssize_t splice_streams(struct cio__driver *d, struct cio__task *self,
			      const struct cio__io *io)
{
	for (;;) {
		struct cio__io copy;
		const struct cio__io *cur = io;
		ssize_t r = cio__io_fail(&cur, &copy);
		if (r == 0)
			r = cio__splice(io->fd, NULL, io->fd2, NULL, cur->n.len, true);
		if (r >= 0)
			return r;
		int err = (int)-r, rc = cio__interrupted(self);
		if (err != EAGAIN && err != EINTR)
			return -err;
		if (rc < 0)
			return rc;
		if (err == EINTR)
			continue;
		int fd, events = cio__splice_unready(io, &fd);
		if (events < 0)
			return events;
		r = events ? wait_ready(d, fd, events) : cio_yield();
		if (r < 0)
			return r;
	}
}

static ssize_t run(const char *call, struct cio__driver *d,
		   struct cio__task *self, struct cio__io *io);

/* A splice where the system has none (CIO__SPLICE is 0): one read into a
 * buffer on the task's stack, then writes until all of it is out, each a
 * request of its own (parking on readiness, or on the blocking pool for
 * a file).  Either side may be any fd; an offset works as pread(2) and
 * pwrite(2) do.  Nothing read is dropped on a short write; but an error
 * or an interruption between the read and the last write loses the bytes
 * read and not written (a file source can be read again; a stream's are
 * gone), and the call returns what was written if any, else the error. */
static ssize_t splice_copy(const char *call, struct cio__driver *d,
			   struct cio__task *self, const struct cio__io *io)
{
	/* As splice(2), judge out before taking anything from in: a read
	 * that parked, or consumed bytes, for an fd that cannot take them
	 * would wait for nothing or lose them. */
	int fl = fcntl(io->fd2, F_GETFL);
	if (fl < 0)
		return -errno;
	if ((fl & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	char buf[CIO__SPLICE_COPY];
	struct cio__io rd = {
		.kind = CIO__IO_READ, .fd = io->fd, .p.buf = buf, .off = io->off,
		.n.len = io->n.len < sizeof buf ? io->n.len : sizeof buf,
	};
	ssize_t n = run(call, d, self, &rd);
	if (n <= 0)
		return n;
	/* A socket is sent to (MSG_NOSIGNAL); a pipe or file written. */
	bool sock = io->off2 < 0;
	size_t done = 0;
	while (done < (size_t)n) {
		struct cio__io wr = {
			.kind = sock ? CIO__IO_SEND : CIO__IO_WRITE, .fd = io->fd2,
			.p.cbuf = buf + done, .n.len = (size_t)n - done,
			.off = io->off2 < 0 ? -1 : io->off2 + (int64_t)done,
		};
		ssize_t w = run(call, d, self, &wr);
		if (w == -ENOTSOCK && sock) {
			sock = false;
			continue;
		}
		if (w == 0)
			w = -EIO; /* no progress: do not spin */
		if (w < 0)
			return done ? (ssize_t)done : w;
		done += (size_t)w;
	}
	return (ssize_t)done;
}

static ssize_t run(const char *call, struct cio__driver *d,
		   struct cio__task *self, struct cio__io *io)
{
	unsigned props = cio__io_props[io->kind];
	/* A directory fd may be AT_FDCWD, or ignored for an absolute path:
	 * the kernel judges those. */
	if ((!(props & CIO__IO_AT) && io->fd < 0) ||
	    (io->kind == CIO__IO_SPLICE && io->fd2 < 0))
		return -EBADF;
	if ((props & CIO__IO_BYTES) && io->n.len > CIO__IO_MAX)
		io->n.len = CIO__IO_MAX; /* transfers may be short anyway */
	if (io->kind == CIO__IO_SPLICE && !CIO__SPLICE)
		return splice_copy(call, d, self, io);
	if (io->kind == CIO__IO_SPLICE && io->off < 0 && io->off2 < 0)
		return splice_streams(d, self, io);
	for (;;) {
		ssize_t r = d->ops->io(d, io);
		if (r == CIO__DECLINED)
			return on_pool(call, io);
		/* A backend that made the call as asked may get EAGAIN from
		 * a non-blocking fd: wait for readiness, then again.  EINTR
		 * (a signal to the thread that made it) is no answer: again,
		 * as the readiness engine's own tries do. */
		if (r == -EINTR && (props & CIO__IO_RETRY)) {
			if ((r = cio__interrupted(self)) < 0)
				return r;
			continue;
		}
		if (r != -EAGAIN || !(props & CIO__IO_RETRY) || cio__io_once(io))
			return r;
		if ((r = wait_ready(d, io->fd, props & CIO__IO_OUT ? POLLOUT : POLLIN)) < 0)
			return r;
		if ((r = cio__interrupted(self)) < 0)
			return r;
	}
}

/* The per-kind counters of rt for one request. */
static inline void count(struct cio__rt *rt, const struct cio__io *io)
{
	cio_stats *st = &rt->stats;
	switch (io->kind) {
	case CIO__IO_READ: case CIO__IO_READV: case CIO__IO_RECV: case CIO__IO_RECVMSG:
		st->ops_read++;
		break;
	case CIO__IO_WRITE: case CIO__IO_WRITEV: case CIO__IO_SEND: case CIO__IO_SENDMSG:
		st->ops_write++;
		break;
	case CIO__IO_ACCEPT:
		st->ops_accept++; /* what came of it: cio_accept() counts */
		break;
	case CIO__IO_CONNECT:
		st->ops_connect++;
		break;
	case CIO__IO_POLL:
		st->ops_poll++;
		break;
	default:
		st->ops_other++;
	}
}

/* The fd a request writes to, or -1. */
static inline int written_fd(const struct cio__io *io)
{
	switch (io->kind) {
	case CIO__IO_WRITE: case CIO__IO_WRITEV: case CIO__IO_SEND: case CIO__IO_SENDMSG:
		return io->fd;
	case CIO__IO_SPLICE:
		return io->fd2;
	default:
		return -1;
	}
}

ssize_t cio__io(const char *call, struct cio__io *io)
{
	struct cio__task *self = cio__self_or_die(call);
	struct cio__rt *rt = cio__rt_cur;
	struct cio__driver *d = rt->driver;
	/* Interruption comes before any other check, so that a call that
	 * would fail at once still honours cancel and deadline. */
	ssize_t r = cio__interrupted(self);
	/* A send still on its way out of this fd (cio_send_buf_nowait())
	 * goes first, and its error is this call's. */
	int wfd;
	if (r == 0 && d->nbgfds && (wfd = written_fd(io)) >= 0 && cio__bg_known(d, wfd))
		r = cio__io_once(io) ? cio__bg_try(d, wfd) : cio__bg_settle(d, self, wfd);
	if (r == 0)
		r = run(call, d, self, io);
	count(rt, io);
	/* Charged for failures too: a loop of calls that fail at once must
	 * still let timers, signals and other tasks run. */
	cio__coop(rt);
	return r;
}
