/* xchan.h - what cio_select() (src/sync/select.c) needs of the cross-core
 * channels: waiting on one side of a channel among other waits. */
#ifndef CIO_CORES_XCHAN_H
#define CIO_CORES_XCHAN_H

#include "../core/rt.h"

#include <stdbool.h>

struct cio__xwatch {
	void *station;         /* the runtime's wait station for that side */
	struct cio__waiter w;  /* queued there; its wake carries nothing */
};

/* Arms the calling runtime's station of ch's send (or receive) side for
 * self, then tries the operation once more (no wake-up is lost between
 * the two).  Returns 0 or -EPIPE when the operation completed (nothing
 * left armed), -ENOMEM, or -EAGAIN: armed, with self woken (code 0) when
 * the other side moves; cio__xchan_unwatch() undoes it, perhaps parking
 * uninterruptibly until a wake in flight has arrived. */
int cio__xchan_watch(cio_xchan *ch, bool send, void *elem, struct cio__xwatch *xw,
		     struct cio__task *self);
void cio__xchan_unwatch(struct cio__xwatch *xw, struct cio__task *self);

#endif
