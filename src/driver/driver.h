/* driver.h - the interface every I/O backend (io_uring, epoll) fills in,
 * and the run-time choice between them.  Nothing above src/driver/ knows
 * which backend runs. */
#ifndef CIO_DRIVER_DRIVER_H
#define CIO_DRIVER_DRIVER_H

#include "coreio.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cio__driver;
struct cio__task;

/* One operation the kernel holds.  It lives on the calling task's stack,
 * which stays put until the operation completes: no allocation per op. */
struct cio__op {
	struct cio__task *task; /* woken on completion */
	int32_t res;            /* the kernel's result: >= 0 or -errno */
	uint32_t flags;         /* io_uring CQE flags */
	bool done;
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
};

struct cio__driver {
	const struct cio__driver_ops *ops;
	void *impl;        /* the backend's state */
	size_t inflight;   /* operations the kernel holds */
	char reason[128];  /* why not io_uring; "" when on io_uring */
};

extern const struct cio__driver_ops cio__uring_ops; /* uring.c */
extern const struct cio__driver_ops cio__epoll_ops; /* epoll.c */

/* Opens the backend the config (or COREIO_BACKEND) asks for; with AUTO,
 * io_uring when it works here, else epoll.  Returns 0 or a negated errno
 * when a forced backend cannot start. */
int cio__driver_open(struct cio__driver *d, const cio_config *cfg);
void cio__driver_close(struct cio__driver *d);

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
