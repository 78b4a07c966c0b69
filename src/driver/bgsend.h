/* bgsend.h - sends that return before they complete (cio_send_buf_nowait()):
 * one lent buffer per fd on its way out, on backends with op send_bg. */
#ifndef CIO_DRIVER_BGSEND_H
#define CIO_DRIVER_BGSEND_H

#include "driver.h"

struct cio__lent;

/* Waits for fd's earlier send to be out, then starts sending b whole and
 * returns 0; b is the send's until then.  Or gives b back and returns
 * -errno: the earlier send's error, or its wait's (-ECANCELED,
 * -ETIMEDOUT), or the start's; CIO__DECLINED (b still the caller's): no
 * memory for fd's record, send b the waiting way. */
int cio__bg_send(struct cio__driver *d, struct cio__task *self, int fd,
		 struct cio__lent *b);

/* Waits until fd has nothing on its way out.  Returns 0, the error an
 * earlier send met (reported once), or -ECANCELED / -ETIMEDOUT. */
int cio__bg_settle(struct cio__driver *d, struct cio__task *self, int fd);

/* Whether fd has a record: a send may be on its way out, or an error
 * waiting to be reported. */
static inline bool cio__bg_known(const struct cio__driver *d, int fd)
{
	return (size_t)fd < d->nbgfds && d->bgfds[fd];
}

/* fd is about to be closed: waits for its send to be out, unless self is
 * NULL (off a task) or interrupted, when the close cancels it; forgets
 * the error.  Never fails. */
void cio__bg_close(struct cio__driver *d, struct cio__task *self, int fd);

/* The runtime's last task ended: cancels the sends still on their way
 * (fds left open), whose done() the final waits bring. */
void cio__bg_quiesce(struct cio__driver *d);

/* Frees the records, with the driver. */
void cio__bg_fini(struct cio__driver *d);

#endif
