/* bufs.h - the buffers a runtime lends (cio_recv_buf()): a per-runtime
 * pool of fixed-size buffers within a budget, and the lent receive each
 * backend makes with them (driver op recv_lent). */
#ifndef CIO_DRIVER_BUFS_H
#define CIO_DRIVER_BUFS_H

#include "driver.h"

/* A lent buffer: the public part, then the pool's.  A slice lies in
 * another buffer that the backend shares out (io_uring's incremental
 * ring): its bytes are its parent's, and it has none of its own. */
struct cio__lent {
	cio_buf pub;
	struct cio__rt *rt;      /* the lender */
	struct cio__lent *next;  /* among the spares, or a backend's queue */
	struct cio__lent *parent; /* a slice's: the buffer it lies in */
	unsigned refs;           /* a shared buffer's: its slices, and one
	                          * while the backend holds it */
	bool held;               /* the backend's (a ring's), not a task's */
	_Alignas(16) char bytes[];
};

void cio__bufs_init(struct cio__bufpool *p, const cio_config *cfg);
void cio__bufs_fini(struct cio__bufpool *p);

/* A buffer of the calling runtime's pool, or NULL with *err: -ENOBUFS
 * (the budget is spent) or -ENOMEM. */
struct cio__lent *cio__bufs_lend(struct cio__rt *rt, int *err);

/* A buffer for the backend to hold (io_uring's buffer ring): counted in
 * the budget, not in what tasks hold.  NULL with *err as above. */
struct cio__lent *cio__bufs_hold(struct cio__rt *rt, int *err);

/* A held buffer (or slice), now lent to a task. */
void cio__bufs_lend_held(struct cio__lent *b);

/* A slice of len bytes at off in held buffer `parent`, held too (until
 * lent), which keeps parent from the pool until it is given back; parent
 * must count the backend's own reference in refs.  NULL: -ENOMEM. */
struct cio__lent *cio__bufs_slice(struct cio__lent *parent, size_t off, size_t len);

/* The backend lets go of shared buffer b: it goes back to the pool once
 * its last slice has. */
void cio__bufs_unshare(struct cio__lent *b);

/* Gives b (lent or held) back to its pool; aborts off the runtime that
 * lent it. */
void cio__bufs_give_back(struct cio__lent *b);

/* One receive into a fresh buffer that never waits: bytes (> 0, *out
 * set), 0, or -errno; -EAGAIN when nothing is there (nothing lent). */
ssize_t cio__bufs_try(struct cio__rt *rt, int fd, struct cio__lent **out);

/* The lent receive of a backend without one of its own: waits for
 * readability holding nothing, then tries; see driver op recv_lent. */
ssize_t cio__recv_lent_polling(struct cio__driver *d, int fd, struct cio__lent **out);

#endif
