/* driver.h - the interface every I/O backend (io_uring, epoll) fills in,
 * and the run-time choice between them.  Nothing above src/driver/ knows
 * which backend runs. */
#ifndef CIO_DRIVER_DRIVER_H
#define CIO_DRIVER_DRIVER_H

#include "coreio.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct cio__driver;
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
};

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
	} p;
	union {
		size_t len;
		int iovcnt;
		socklen_t *addrlen; /* ACCEPT: in/out */
		socklen_t alen;     /* CONNECT */
	} n;
	int64_t off;
};

/* One operation the kernel holds.  It lives on the calling task's stack,
 * which stays put until the operation completes: no allocation per op. */
struct cio__op {
	struct cio__task *task; /* woken on completion */
	int32_t res;            /* the kernel's result: >= 0 or -errno */
	uint32_t flags;         /* io_uring CQE flags */
	bool done;
	int fd;                 /* the requests pending on one fd, listed */
	struct cio__op *prev, *next;
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
	/* Closes fd.  Tasks blocked on it wake with -EBADF. */
	int (*close_fd)(struct cio__driver *d, int fd);
	/* A new fd (from socket(), accept(), pipe()...) took this number:
	 * forget whatever was known of an earlier file with it. */
	void (*fd_new)(struct cio__driver *d, int fd);
	/* Wakes `to` (another runtime's driver, maybe of the other backend)
	 * from `d`, the calling thread's own, without a system call of its
	 * own if it can.  Returns 0, or -ENOTSUP to have the caller write
	 * to's eventfd instead.  May be NULL. */
	int (*notify)(struct cio__driver *d, struct cio__driver *to);
};

struct cio__driver {
	const struct cio__driver_ops *ops;
	void *impl;        /* the backend's state */
	size_t inflight;   /* operations the kernel holds */
	int wake_fd;       /* eventfd other threads write to wake this driver */
	int ring_fd;       /* io_uring's fd, for MSG_RING; -1 on epoll */
	char reason[128];  /* why not io_uring; "" when on io_uring */
};

extern const struct cio__driver_ops cio__uring_ops; /* uring.c */
extern const struct cio__driver_ops cio__epoll_ops; /* epoll.c */

/* Opens the backend the config (or COREIO_BACKEND) asks for; with AUTO,
 * io_uring when it works here, else epoll.  Returns 0 or a negated errno
 * when a forced backend cannot start. */
int cio__driver_open(struct cio__driver *d, const cio_config *cfg);
void cio__driver_close(struct cio__driver *d);

/* Wakes the driver `to` from any thread; `from` is the calling thread's
 * driver, or NULL off a runtime. */
void cio__driver_notify(struct cio__driver *from, struct cio__driver *to);

/* Whether the kernel holds operations the scheduler must poll for. */
static inline bool cio__driver_busy(const struct cio__driver *d)
{
	return d->inflight != 0;
}

static inline int cio__driver_wait(struct cio__driver *d, int64_t timeout_ns)
{
	return d->ops->wait(d, timeout_ns);
}

#endif
