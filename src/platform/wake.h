/* wake.h - the wake fd: a file one thread waits on (with the rest of its
 * I/O) and any other thread signals to end that wait.
 *
 * Linux: one eventfd, both ends at once (rd == wr).  POSIX: a
 * non-blocking pipe, read end and write end. */
#ifndef CIO_PLATFORM_WAKE_H
#define CIO_PLATFORM_WAKE_H

#include "os.h"

struct cio__wakefd {
	int rd; /* the end to wait on: readable once signalled */
	int wr; /* the end to signal; rd itself for an eventfd */
};

/* Both ends non-blocking and close-on-exec.  Returns 0 or -errno. */
int cio__wakefd_open(struct cio__wakefd *w);
void cio__wakefd_close(struct cio__wakefd *w);

/* Makes rd readable, from any thread.  A full pipe or a saturated
 * counter already is: nothing to do then. */
void cio__wakefd_signal(const struct cio__wakefd *w);

/* For the waiter, once rd reported readable: empties it, so that the
 * next signal is a new edge. */
void cio__wakefd_drain(const struct cio__wakefd *w);

/* An eventfd's reads are 8 bytes, as io_uring's read of it must be;
 * only the Linux path (the io_uring backend's) relies on it. */
#define CIO__WAKEFD_EVENTFD CIO__LINUX

#endif
