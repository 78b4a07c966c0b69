/* bgsend.c - sends that return before they complete (cio_send_buf_nowait()),
 * over a backend that completes requests (io_uring's op send_bg): per fd at
 * most one lent buffer on its way out while its task goes on.  The next
 * send, plain write, flush or close of that fd waits for it first, so bytes
 * leave in order, a slow peer still holds its sender back, and an error
 * shows on the next call.  Readiness backends need none of this: their
 * send that finds room completes at once, without a park. */
#include "bgsend.h"
#include "bufs.h"
#include "../core/rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct cio__bgfd {
	struct cio__bgsend bg;  /* first: done() finds the record from it */
	struct cio__driver *d;
	int fd;
	struct cio__lent *buf;  /* on its way out, or NULL */
	size_t off;             /* of buf, sent so far */
	int err;                /* a send's error, not yet reported */
	bool dropped;           /* buf's fd was closed: its result is nobody's */
	cio_waitq waiters;      /* tasks waiting for buf to be out */
};

static struct cio__bgfd *bgfd_get(struct cio__driver *d, int fd, bool make)
{
	if ((size_t)fd < d->nbgfds && d->bgfds[fd])
		return d->bgfds[fd];
	if (!make)
		return NULL;
	if ((size_t)fd >= d->nbgfds) {
		size_t n = d->nbgfds ? d->nbgfds : 1024;
		while (n <= (size_t)fd)
			n *= 2;
		struct cio__bgfd **v = cio__realloc(d->bgfds, n * sizeof *v);
		if (!v)
			return NULL;
		memset(v + d->nbgfds, 0, (n - d->nbgfds) * sizeof *v);
		d->bgfds = v;
		d->nbgfds = n;
	}
	struct cio__bgfd *f = cio__calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->d = d;
	f->fd = fd;
	cio__waitq_init(&f->waiters);
	return d->bgfds[fd] = f;
}

static void done(struct cio__bgsend *bg, ssize_t res)
{
	struct cio__bgfd *f = (struct cio__bgfd *)bg;
	cio_buf *b = &f->buf->pub;
	if (res > 0 && f->off + (size_t)res < b->len && !f->dropped) {
		/* Short: the rest goes next, before anything else. */
		f->off += (size_t)res;
		res = f->d->ops->send_bg(f->d, f->fd, b->data + f->off, b->len - f->off, bg);
		if (res == 0)
			return;
	}
	if (res == 0 && b->len)
		res = -EPIPE; /* sent nothing and said no error: never loop */
	if (res < 0 && !f->dropped && !f->err)
		f->err = (int)res;
	cio__bufs_give_back(f->buf);
	f->buf = NULL;
	f->dropped = false;
	struct cio__waiter *w;
	while ((w = cio__waitq_first(&f->waiters))) {
		cio__waitq_remove(w);
		cio__wake(w->task, 0);
	}
}

/* Parks self until f has nothing on its way out.  0, or -ECANCELED /
 * -ETIMEDOUT (the send goes on). */
static int wait_out(struct cio__bgfd *f, struct cio__task *self)
{
	while (f->buf) {
		struct cio__waiter w;
		cio__waiter_init(&w, self);
		cio__waitq_push(&f->waiters, &w);
		int rc = cio__park(self);
		if (cio__waiter_queued(&w))
			cio__waitq_remove(&w);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Waits out f's send, then takes the error it left, if any. */
static int settle(struct cio__bgfd *f, struct cio__task *self)
{
	int rc = wait_out(f, self);
	if (rc == 0) {
		rc = f->err;
		f->err = 0;
	}
	return rc;
}

int cio__bg_send(struct cio__driver *d, struct cio__task *self, int fd,
		 struct cio__lent *b)
{
	struct cio__bgfd *f = bgfd_get(d, fd, true);
	if (!f)
		return CIO__DECLINED; /* no memory for the record: send it waiting */
	int rc = settle(f, self);
	if (rc < 0 || b->pub.len == 0) {
		cio__bufs_give_back(b);
		return rc;
	}
	f->buf = b;
	f->off = 0;
	f->bg.done = done;
	rc = d->ops->send_bg(d, fd, b->pub.data, b->pub.len, &f->bg);
	if (rc < 0) {
		f->buf = NULL;
		cio__bufs_give_back(b);
	}
	return rc;
}

int cio__bg_settle(struct cio__driver *d, struct cio__task *self, int fd)
{
	struct cio__bgfd *f = fd >= 0 ? bgfd_get(d, fd, false) : NULL;
	return f ? settle(f, self) : 0;
}

void cio__bg_close(struct cio__driver *d, struct cio__task *self, int fd)
{
	struct cio__bgfd *f = fd >= 0 ? bgfd_get(d, fd, false) : NULL;
	if (!f)
		return;
	/* Interrupted: the close cancels what is still on its way. */
	if (self && wait_out(f, self) < 0)
		f->dropped = true;
	if (!self && f->buf)
		f->dropped = true;
	f->err = 0;
}

void cio__bg_quiesce(struct cio__driver *d)
{
	for (size_t i = 0; i < d->nbgfds; i++) {
		struct cio__bgfd *f = d->bgfds[i];
		if (f && f->buf && !f->dropped) {
			f->dropped = true;
			d->ops->cancel_bg(d, &f->bg);
		}
	}
}

void cio__bg_fini(struct cio__driver *d)
{
	for (size_t i = 0; i < d->nbgfds; i++)
		free(d->bgfds[i]); /* their sends all completed with the runtime */
	free(d->bgfds);
	d->bgfds = NULL;
	d->nbgfds = 0;
}
