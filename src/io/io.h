/* io.h - the I/O layer's own per-runtime state (the listening sockets a
 * drain shuts down, the pool of empty pipes for splice) and the hooks that
 * set it up and tear it down with the runtime. */
#ifndef CIO_IO_IO_H
#define CIO_IO_IO_H

#include "../core/rt.h"
#include "../driver/driver.h"

#define CIO__PIPE_POOL 32 /* empty pipes a runtime keeps for splice */

struct cio__io_rt {
	int *listeners;      /* fds from cio_listen(), shut down by a drain */
	size_t nlisteners, caplisteners;
	bool listeners_shut; /* a drain shut them: accept says -ESHUTDOWN */
	/* Empty pipes kept for splice, closed with the runtime: [i][0]
	 * reads, [i][1] writes; pipe_cap[i] is what each holds. */
	int pipes[CIO__PIPE_POOL][2];
	size_t pipe_cap[CIO__PIPE_POOL];
	unsigned npipes;
};

/* The layer's init and fini hooks (src/io/net.c).  Init returns 0 or
 * -ENOMEM; fini accepts a runtime whose init failed or never ran. */
int cio__io_init(struct cio__rt *rt, const cio_config *cfg);
void cio__io_fini(struct cio__rt *rt);

/* Shuts down (does not close) the runtime's listening sockets, for a
 * drain: the kernel refuses new connections and wakes their accepts,
 * which return -ESHUTDOWN, while the fds stay their owners' to close. */
void cio__io_shut_listeners(struct cio__rt *rt);

/* cio_accept() with CIO__IO_ACCEPT flags: CIO__ACCEPT_MULTI (no peer
 * address then). */
int cio__accept(int fd, cio_addr *peer, int flags);

/* Closes the pooled pipes.  src/io/splice.c */
void cio__pipes_fini(struct cio__io_rt *io);

#endif
