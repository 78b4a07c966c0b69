/* bgsend.h - sends that return before they complete (cio_send_buf_nowait()):
 * one lent buffer per fd on its way out, on backends with op send_bg. */
#ifndef CIO_DRIVER_BGSEND_H
#define CIO_DRIVER_BGSEND_H

#include "driver.h"

struct cio__lent;

/* Waits for fd's earlier send to be out, then starts sending b whole and
 * returns 0; b is the send's until then.  Or gives b back and returns
 * -errno: the earlier send's error, or its wait's (-ECANCELED,
 * -ETIMEDOUT, -EBADF: fd closed meanwhile), or the start's;
 * CIO__DECLINED (b still the caller's): no memory for fd's record, send
 * b the waiting way. */
int cio__bg_send(struct cio__driver *d, struct cio__task *self, int fd,
		 struct cio__lent *b);

/* Waits until fd has nothing on its way out.  Returns 0, the error an
 * earlier send met (reported once), -ECANCELED / -ETIMEDOUT, or -EBADF
 * when fd was closed meanwhile. */
int cio__bg_settle(struct cio__driver *d, struct cio__task *self, int fd);

/* Whether fd has a record: a send may be on its way out, or an error
 * waiting to be reported. */
static inline bool cio__bg_known(const struct cio__driver *d, int fd)
{
	return (size_t)fd < d->nbgfds && d->bgfds[fd];
}

/* For a send with MSG_DONTWAIT, which must not wait: -EAGAIN while fd
 * has a send on its way, else its error (reported once) or 0. */
int cio__bg_try(struct cio__driver *d, int fd);

/* fd is being closed, or its number was made anew: a send on its way
 * finishes on its own (cancelled after a linger of 5 s), tasks waiting
 * for it wake with -EBADF, and the number starts clean.  Never blocks. */
void cio__bg_detach(struct cio__driver *d, int fd);

/* The runtime's last task ended: cancels the sends still on their way
 * (fds left open, closed ones lingering), whose done() the final waits
 * bring.  Returns whether there were any. */
bool cio__bg_quiesce(struct cio__driver *d);

/* Frees the records, with the driver. */
void cio__bg_fini(struct cio__driver *d);

#endif
