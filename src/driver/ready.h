/* ready.h - the readiness engine: what a readiness backend (epoll,
 * kqueue) shares, and the small poller each of them fills in.
 *
 * The engine keeps the per-fd state (wait queues, edge bookkeeping) and
 * the try-then-park policy: a request first makes its non-blocking system
 * call, and only on EAGAIN parks its task on the fd's read or write queue.
 * A poller only registers fds (edge-triggered, both directions), waits,
 * and reports what became ready. */
#ifndef CIO_DRIVER_READY_H
#define CIO_DRIVER_READY_H

#include "driver.h"

/* What a poller reports for an fd (cio__ready_event()). */
#define CIO__READY_IN 1   /* readable, or a connection to accept */
#define CIO__READY_OUT 2  /* writable */
#define CIO__READY_HUP 4  /* the peer will send no more: no edge will follow */
#define CIO__READY_ERR 8  /* an error is pending: both directions wake */

struct cio__poller_ops {
	const char *name;
	/* Creates the kernel object and sets *p.  Returns 0 or a negated
	 * errno, with a one-line reason in d->reason. */
	int (*open)(struct cio__driver *d, void **p);
	void (*close)(void *p);
	/* Makes sure fd is registered for both directions, edge-triggered,
	 * and re-armed: an event follows if it is ready now.  `known`: the
	 * engine believes it is registered already (a guess: the file may
	 * have been closed and its number reused behind our back).  Returns
	 * 0 or a negated errno. */
	int (*arm)(void *p, int fd, bool known);
	/* Drops fd's registration, if any (a dup of it would keep it). */
	void (*disarm)(void *p, int fd);
	/* Waits up to timeout_ns (0: not at all; CIO_NEVER: until an event),
	 * reporting each ready fd with cio__ready_event().  Handles its own
	 * wake (another thread's cio__driver_notify).  Returns the events
	 * seen, or a negated errno (EINTR counts as none). */
	int (*wait)(void *p, struct cio__driver *d, int64_t timeout_ns);
	/* Wakes the poller's wait from any thread.  Returns 0, or -ENOTSUP
	 * (or NULL) to have the caller write the driver's wake_fd, which
	 * open registered then. */
	int (*wake)(void *p);
};

/* For a poller's wait: fd became ready for `what` (CIO__READY_*). */
void cio__ready_event(struct cio__driver *d, int fd, unsigned what);

/* The driver operations of a readiness backend, given its poller. */
int cio__ready_open(struct cio__driver *d, const struct cio__poller_ops *po);
void cio__ready_close(struct cio__driver *d);
int cio__ready_wait(struct cio__driver *d, int64_t timeout_ns);
ssize_t cio__ready_io(struct cio__driver *d, struct cio__io *io);
ssize_t cio__ready_recv_lent(struct cio__driver *d, int fd, struct cio__lent **out);
int cio__ready_watch(struct cio__driver *d, int fd, void (*fire)(void *arg), void *arg);
void cio__ready_unwatch(struct cio__driver *d, int fd);
int cio__ready_close_fd(struct cio__driver *d, int fd);
void cio__ready_fd_new(struct cio__driver *d, int fd);
int cio__ready_wake(struct cio__driver *d);

/* A readiness backend's struct cio__driver_ops, from its open hook. */
#define CIO__READY_DRIVER_OPS(nm, open_fn)                                  \
	{                                                                   \
		.name = (nm), .open = (open_fn), .close = cio__ready_close, \
		.wait = cio__ready_wait, .io = cio__ready_io,               \
		.recv_lent = cio__ready_recv_lent,                          \
		.watch = cio__ready_watch, .unwatch = cio__ready_unwatch,   \
		.close_fd = cio__ready_close_fd, .fd_new = cio__ready_fd_new, \
		.wake = cio__ready_wake,                                    \
	}

#endif
