/* driver.h - the interface every I/O backend (io_uring, epoll) fills in,
 * and the run-time choice between them.  Nothing above src/driver/ knows
 * which backend runs. */
#ifndef CIO_DRIVER_DRIVER_H
#define CIO_DRIVER_DRIVER_H

#include "coreio.h"
#include "../platform/fail.h"
#include "../platform/wake.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct cio__driver;
struct cio__rt;
struct cio__task;

/* A blocking I/O request, backend-neutral.  The I/O layer fills one in on
 * the calling task's stack and hands it to the driver, which runs it to
 * completion (or to -ECANCELED / -ETIMEDOUT) while the task is parked. */
enum cio__io_kind {
	CIO__IO_READ,     /* fd, buf, len, off (-1: file position) */
	CIO__IO_WRITE,    /* fd, buf, len, off */
	CIO__IO_READV,    /* fd, iov, iovcnt, off */
	CIO__IO_WRITEV,   /* fd, iov, iovcnt, off */
	CIO__IO_RECV,     /* fd, buf, len, flags */
	CIO__IO_SEND,     /* fd, buf, len, flags */
	CIO__IO_RECVMSG,  /* fd, msg, flags */
	CIO__IO_SENDMSG,  /* fd, msg, flags */
	CIO__IO_ACCEPT,   /* fd, addr, addrlen; result: a new fd */
	CIO__IO_CONNECT,  /* fd, addr, alen */
	CIO__IO_POLL,     /* fd, flags: POLLIN and/or POLLOUT; result: revents */
	/* Files and zero-copy.  A backend may decline any of these (see
	 * CIO__DECLINED); the caller then runs it on the blocking pool. */
	CIO__IO_OPENAT,   /* fd: dirfd, path, flags, mode; result: a new fd */
	CIO__IO_FSYNC,    /* fd, flags: 0 or CIO__FSYNC_DATA */
	CIO__IO_FALLOCATE,/* fd, mode, off, n.len */
	CIO__IO_FTRUNCATE,/* fd, off: the new length */
	CIO__IO_STATX,    /* fd: dirfd, path, flags, mode: mask, p.stx */
	CIO__IO_RENAMEAT, /* fd, path -> fd2, path2, flags */
	CIO__IO_UNLINKAT, /* fd, path, flags */
	CIO__IO_MKDIRAT,  /* fd, path, mode */
	CIO__IO_SYMLINKAT,/* path (target) -> fd2, path2 */
	CIO__IO_LINKAT,   /* fd, path -> fd2, path2, flags */
	CIO__IO_SPLICE,   /* fd, off -> fd2, off2, n.len (off -1: none) */
};
#define CIO__IO_NKINDS (CIO__IO_SPLICE + 1) /* the last kind, plus one */

/* What a request kind is, by kind: cio__io_props[kind] & CIO__IO_*.
 * Code asks these, never the order of the enum. */
extern const unsigned char cio__io_props[CIO__IO_NKINDS];
#define CIO__IO_OUT 1       /* not ready means not writable: wait POLLOUT */
#define CIO__IO_FILE 2      /* a file or name operation */
#define CIO__IO_BYTES 4     /* n.len counts bytes, clamped to CIO__IO_MAX */
#define CIO__IO_DRAINS 8    /* a short plain read of a stream empties it */
#define CIO__IO_AT 16       /* fd names a directory; may be AT_FDCWD */
#define CIO__IO_AT_OFFSET 32 /* a read or write: off >= 0 is a file offset */
#define CIO__IO_RETRY 64    /* -EAGAIN from the backend: wait, try again */

static inline bool cio__io_has(enum cio__io_kind k, unsigned prop)
{
	return cio__io_props[k] & prop;
}

/* The longest transfer one request makes, as Linux's read(2): the SQE's
 * length field is 32 bits.  Longer ones come back short. */
#define CIO__IO_MAX ((size_t)0x7ffff000)

#define CIO__FSYNC_DATA 1 /* FSYNC: fdatasync() */

/* ACCEPT, no peer address: the caller accepts in a loop, and a backend
 * may take connections before they are asked for (io_uring's multishot
 * accept, whose fd limit is the one of its start).  The serve helper's. */
#define CIO__ACCEPT_MULTI 1

/* SPLICE between streams (no offsets): what the caller knows, to save a
 * poll(2).  WAIT_IN / WAIT_OUT: on EAGAIN, only that side can be the one
 * not ready. */
#define CIO__SPLICE_WAIT_IN 1
#define CIO__SPLICE_WAIT_OUT 2

/* The buffer a splice copies through where the system has no splice(2)
 * (src/driver/io.c), on the calling task's stack: the most one such
 * cio_splice() moves. */
#define CIO__SPLICE_COPY (16u << 10)

/* What io() returns for a request its backend does not make: the caller
 * runs it on the blocking pool (cio__io_sync()).  Outside errno's range. */
#define CIO__DECLINED ((ssize_t)-100000)

struct cio__io {
	enum cio__io_kind kind;
	int fd;
	int flags;
	union {
		void *buf;
		const void *cbuf;
		const struct iovec *iov;
		struct msghdr *msg;
		struct sockaddr *addr;
		struct statx *stx;
	} p;
	union {
		size_t len;
		int iovcnt;
		socklen_t *addrlen; /* ACCEPT: in/out */
		socklen_t alen;     /* CONNECT */
	} n;
	int64_t off;
	/* Files and splice: */
	int fd2;
	int64_t off2;
	unsigned mode;
	const char *path, *path2;
};

/* A send or receive with MSG_DONTWAIT: one try, -EAGAIN rather than a
 * wait, on every backend. */
static inline bool cio__io_once(const struct cio__io *io)
{
	return (io->kind == CIO__IO_RECV || io->kind == CIO__IO_SEND ||
		io->kind == CIO__IO_RECVMSG || io->kind == CIO__IO_SENDMSG) &&
	       (io->flags & MSG_DONTWAIT);
}

/* After a splice between streams failed with EAGAIN: which side to wait
 * for.  Returns POLLIN (for io->fd) or POLLOUT (for io->fd2) and sets
 * *fd; 0 when both look ready (a race: try again after a yield); or a
 * negated errno.  Trusts the caller's CIO__SPLICE_WAIT_* hint, else asks
 * poll(2).  src/driver/driver.c */
int cio__splice_unready(const struct cio__io *io, int *fd);

/* The fail point of a request about to be made (platform/fail.h), by
 * the family of its system call: a negated errno to return instead of
 * making it, or 0 to go ahead, with *io pointing at `copy`, a shorter
 * request, where a short transfer was asked.  0 in a normal build. */
static inline ssize_t cio__io_fail(const struct cio__io **io, struct cio__io *copy)
{
#ifdef COREIO_TESTING
	int e;
	switch ((*io)->kind) {
	case CIO__IO_READ: case CIO__IO_READV: e = CIO_FAIL(read); break;
	case CIO__IO_WRITE: case CIO__IO_WRITEV: e = CIO_FAIL(write); break;
	case CIO__IO_RECV: case CIO__IO_RECVMSG: e = CIO_FAIL(recv); break;
	case CIO__IO_SEND: case CIO__IO_SENDMSG: e = CIO_FAIL(send); break;
	case CIO__IO_ACCEPT: e = CIO_FAIL(accept); break;
	case CIO__IO_CONNECT: e = CIO_FAIL(connect); break;
	case CIO__IO_SPLICE: e = CIO_FAIL(splice); break;
	default: return 0;
	}
	if (e > 0)
		return -e;
	if (e == CIO__FAIL_SHORT && cio__io_has((*io)->kind, CIO__IO_BYTES) &&
	    (*io)->n.len > 1) {
		*copy = **io;
		copy->n.len = cio__fail_short(copy->n.len);
		*io = copy;
	}
#else
	(void)io, (void)copy;
#endif
	return 0;
}

/* Runs io with the plain system call, on the calling thread: the blocking
 * pool's side of a declined request.  src/driver/io.c */
ssize_t cio__io_call(const struct cio__io *io);

/* cio__io_call() behind the request's fail point. */
static inline ssize_t cio__io_sync(const struct cio__io *io)
{
	struct cio__io copy;
	ssize_t e = cio__io_fail(&io, &copy);
	return e < 0 ? e : cio__io_call(io);
}

/* The one entry point of every blocking I/O call: runs io for the calling
 * task on its driver (or on the blocking pool when the backend declines
 * it), parking the task until done.  Checks cancel and deadline first,
 * then the fds (-EBADF); clamps byte counts to CIO__IO_MAX; charges the
 * cooperative budget whatever the result.  Returns the system call's
 * result or a negated errno.  `call` names the public function, for the
 * abort outside a task.  src/driver/io.c */
ssize_t cio__io(const char *call, struct cio__io *io);

/* A send that runs while its task goes on (cio_send_buf_nowait()): a
 * backend that completes requests (io_uring) starts it with op send_bg
 * and calls done() from a later wait, outside any task, where done may
 * start the next.  One per fd at a time (src/driver/bgsend.c). */
struct cio__bgsend {
	void (*done)(struct cio__bgsend *bg, ssize_t res);
	_Alignas(16) unsigned char drv[64]; /* the backend's, while started */
};

/* The pool of buffers a runtime lends (bufs.h). */
struct cio__lent;
struct cio__bufpool {
	struct cio__lent *spare; /* kept for reuse */
	size_t nspare;
	size_t lent;             /* bytes tasks hold now */
	size_t sliced;           /* of which in slices (inside held ones) */
	struct cio__lent *spare_slices; /* slice records kept for reuse */
	size_t nspare_slices;
	size_t held;             /* bytes the backend holds (a ring's) */
	size_t size, budget;     /* cio_config.buf_size, buf_budget */
};

struct cio__driver_ops {
	const char *name;
	/* Sets the backend up.  Returns 0 or a negated errno, and on failure
	 * writes a one-line reason into d->reason. */
	int (*open)(struct cio__driver *d, const cio_config *cfg);
	void (*close)(struct cio__driver *d);
	/* Hands queued work to the kernel, then waits up to timeout_ns
	 * (0: do not wait; CIO_NEVER: until an event) and completes what
	 * finished, waking the tasks concerned.  Returns the number of events
	 * completed, or a negated errno. */
	int (*wait)(struct cio__driver *d, int64_t timeout_ns);
	/* Runs one request for the calling task, parking it until done.
	 * Returns the syscall's result or a negated errno; -ECANCELED or
	 * -ETIMEDOUT when interrupted, and then only once the kernel has let
	 * go of the request's memory.  A request that completed anyway (data
	 * received, a connection accepted) returns its real result: nothing is
	 * lost; the interruption shows on the task's next blocking call. */
	ssize_t (*io)(struct cio__driver *d, struct cio__io *io);
	/* The lent receive (cio_recv_buf()): waits until fd has bytes, its
	 * end or an error, holding no buffer meanwhile, then receives into
	 * a buffer of the runtime's pool (bufs.h).  Returns the bytes with
	 * *out set; 0; or -errno (-ENOBUFS: the pool's budget is spent;
	 * -ECANCELED, -ETIMEDOUT as io(), with nothing lent). */
	ssize_t (*recv_lent)(struct cio__driver *d, int fd, struct cio__lent **out);
	/* A wait for fd to turn readable that holds no task (the serve
	 * helper's idle connections): calls fire(arg) once, from a later
	 * wait of the driver and outside any task, when fd has bytes, its
	 * end or an error; fire must not block (it starts a task).  A fire
	 * may come with nothing to read after all: the task then waits as
	 * any.  One watch per fd.  Returns 0 once armed; 1, arming nothing,
	 * when fd is readable now; or -errno (-ENOMEM, -EBADF).  A close of
	 * fd (close_fd) drops its watch unfired. */
	int (*watch)(struct cio__driver *d, int fd, void (*fire)(void *arg), void *arg);
	/* Drops fd's watch unfired, if it has one.  Never blocks. */
	void (*unwatch)(struct cio__driver *d, int fd);
	/* Starts a send of buf[0..len) on socket fd (MSG_NOSIGNAL, all of
	 * it where the kernel can) that no task waits for; bg->done(bg,
	 * result) follows from a later wait, once the kernel let go of buf.
	 * Returns 0 once started, or -errno (then no done()).  A close_fd of
	 * fd leaves it going (it holds the file).  NULL where a send that
	 * finds room never waits anyway (the readiness backends). */
	int (*send_bg)(struct cio__driver *d, int fd, const void *buf, size_t len,
		       struct cio__bgsend *bg);
	/* Asks the kernel to stop a started send_bg; done() still follows. */
	void (*cancel_bg)(struct cio__driver *d, struct cio__bgsend *bg);
	/* Closes fd.  Tasks blocked on it wake with -EBADF. */
	int (*close_fd)(struct cio__driver *d, int fd);
	/* A new fd (from socket(), accept(), pipe()...) took this number:
	 * forget whatever was known of an earlier file with it. */
	void (*fd_new)(struct cio__driver *d, int fd);
	/* Wakes `to` (another runtime's driver, maybe of the other backend)
	 * from `d`, the calling thread's own, without a system call of its
	 * own if it can.  Returns 0, or -ENOTSUP to have the caller signal
	 * to's wake fd instead.  May be NULL. */
	int (*notify)(struct cio__driver *d, struct cio__driver *to);
	/* Wakes d (another thread's) from any thread.  Returns 0, or
	 * -ENOTSUP to have the caller signal d's wake fd instead.  May be
	 * NULL. */
	int (*wake)(struct cio__driver *d);
};

struct cio__driver {
	const struct cio__driver_ops *ops;
	void *impl;        /* the backend's state */
	struct cio__rt *rt; /* whose: rt->inflight counts what the kernel holds */
	struct cio__wakefd wake; /* other threads signal it to wake this driver */
	char reason[128];  /* why not io_uring; "" when on io_uring */
	struct cio__bufpool bufs;
	struct cio__bgfd **bgfds; /* background sends by fd (bgsend.c) */
	size_t nbgfds;
	struct cio__bgfd *bg_orphans; /* those of closed fds, still going */
};

extern const struct cio__driver_ops cio__uring_ops; /* uring.c */
extern const struct cio__driver_ops cio__epoll_ops; /* epoll.c */
extern const struct cio__driver_ops cio__kqueue_ops; /* kqueue.c */

/* The driver layer's init and fini hooks for a runtime.  Opens the
 * backend the config (or COREIO_BACKEND) asks for; with AUTO, io_uring
 * when it works here, else epoll; sets rt->driver and rt->poller.  Returns
 * 0 or a negated errno when a forced backend cannot start. */
int cio__driver_open(struct cio__rt *rt, const cio_config *cfg);
/* Closes it; rt->driver may be NULL (an open that failed). */
void cio__driver_close(struct cio__rt *rt);

#endif
