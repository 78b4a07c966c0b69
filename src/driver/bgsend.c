/* bgsend.c - sends that return before they complete (cio_send_buf_nowait()),
 * over a backend that completes requests (io_uring's op send_bg): per fd at
 * most one lent buffer on its way out while its task goes on.  The next
 * send, plain write, flush or shutdown of that fd waits for it first, so
 * bytes leave in order, a slow peer still holds its sender back, and an
 * error shows on the next call.  A close does not wait: the send finishes
 * on its own, as the kernel finishes a closed socket's writes, for up to
 * LINGER, then is cancelled.  Readiness backends need none of this: their
 * send that finds room completes at once, without a park. */
#include "bgsend.h"
#include "bufs.h"
#include "../core/rt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* How long the send of a closed fd may take before it is cancelled: a
 * peer that reads nothing cannot hold a buffer and a socket for longer. */
#define LINGER (5 * CIO_SEC)

struct cio__bgfd {
	struct cio__bgsend bg;  /* first: done() finds the record from it */
	struct cio__driver *d;
	int fd;
	struct cio__lent *buf;  /* on its way out, or NULL */
	size_t off;             /* of buf, sent so far */
	int err;                /* a send's error, not yet reported */
	bool cancelled;         /* a cancel of the send was asked */
	/* Orphaned: its fd was closed (or its number made anew) while the
	 * send was on its way.  Off the table, on the driver's orphan list,
	 * freed once the send completes; `linger` bounds it. */
	bool orphan, linger_held;
	struct cio__timer linger;
	struct cio__bgfd *next_orphan;
	cio_waitq waiters;      /* tasks waiting for buf to be out */
	unsigned waiting;       /* tasks inside wait_out(), queued or woken:
	                         * an orphan is freed only once they left */
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
	f->linger.slot = CIO__TIMER_IDLE;
	cio__waitq_init(&f->waiters);
	return d->bgfds[fd] = f;
}

static void wake_all(struct cio__bgfd *f, int code)
{
	struct cio__waiter *w;
	while ((w = cio__waitq_first(&f->waiters))) {
		cio__waitq_remove(w);
		cio__wake(w->task, code);
	}
}

/* Asks the kernel to stop f's send; `again` even if asked before (the
 * runtime's end, where a cancel that did not take would spin). */
static void cancel(struct cio__bgfd *f, bool again)
{
	if (f->buf && (again || !f->cancelled)) {
		f->cancelled = true;
		f->d->ops->cancel_bg(f->d, &f->bg);
	}
}

/* An orphan's send completed: off the list, and freed unless a task is
 * still inside wait_out() on it (the last to leave frees it). */
static void orphan_end(struct cio__bgfd *f)
{
	struct cio__driver *d = f->d;
	if (f->linger_held) {
		cio__timer_disarm(d->rt, &f->linger);
		cio__timers_unhold(d->rt);
		f->linger_held = false;
	}
	for (struct cio__bgfd **p = &d->bg_orphans; *p; p = &(*p)->next_orphan)
		if (*p == f) {
			*p = f->next_orphan;
			break;
		}
	if (!f->waiting)
		free(f);
}

static void done(struct cio__bgsend *bg, ssize_t res)
{
	struct cio__bgfd *f = (struct cio__bgfd *)bg;
	cio_buf *b = &f->buf->pub;
	if (res > 0 && f->off + (size_t)res < b->len && !f->cancelled && !f->orphan) {
		/* Short: the rest goes next, before anything else (not on a
		 * number closed since, which may be another file's now). */
		f->off += (size_t)res;
		res = f->d->ops->send_bg(f->d, f->fd, b->data + f->off, b->len - f->off, bg);
		if (res == 0)
			return;
	}
	if (res == 0 && b->len)
		res = -EPIPE; /* sent nothing and said no error: never loop */
	if (res < 0 && !f->orphan && !f->err)
		f->err = (int)res;
	cio__bufs_give_back(f->buf);
	f->buf = NULL;
	f->cancelled = false;
	if (f->orphan) {
		wake_all(f, -EBADF);
		orphan_end(f);
	} else {
		wake_all(f, 0);
	}
}

static void linger_fire(struct cio__timer *tm)
{
	cancel((struct cio__bgfd *)(void *)((char *)tm - offsetof(struct cio__bgfd, linger)), false);
}

/* Parks self until f has nothing on its way out.  0, or -ECANCELED /
 * -ETIMEDOUT (the send goes on), or -EBADF: the fd was closed meanwhile
 * (f may be freed then: not to be touched again). */
static int wait_out(struct cio__bgfd *f, struct cio__task *self)
{
	int rc = 0;
	f->waiting++;
	/* A wake with 0 may come before the fd is closed and its record
	 * orphaned (a new send, then a close, by tasks that ran first):
	 * the record is looked at again after every park. */
	while (f->buf && !f->orphan) {
		struct cio__waiter w;
		cio__waiter_init(&w, self);
		cio__waitq_push(&f->waiters, &w);
		rc = cio__park(self);
		if (cio__waiter_queued(&w))
			cio__waitq_remove(&w);
		if (rc < 0)
			break;
	}
	if (rc == 0 && f->orphan)
		rc = -EBADF;
	if (--f->waiting == 0 && f->orphan && !f->buf)
		free(f); /* its send completed meanwhile: orphan_end() left it */
	return rc;
}

/* Waits out f's send, then takes the error it left, if any. */
static int settle(struct cio__bgfd *f, struct cio__task *self)
{
	int rc = wait_out(f, self);
	if (rc == 0) { /* f is the fd's still */
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

int cio__bg_try(struct cio__driver *d, int fd)
{
	struct cio__bgfd *f = fd >= 0 ? bgfd_get(d, fd, false) : NULL;
	if (!f)
		return 0;
	if (f->buf)
		return -EAGAIN;
	int rc = f->err;
	f->err = 0;
	return rc;
}

void cio__bg_detach(struct cio__driver *d, int fd)
{
	struct cio__bgfd *f = fd >= 0 ? bgfd_get(d, fd, false) : NULL;
	if (!f)
		return;
	f->err = 0;
	if (!f->buf)
		return; /* kept for the number's next file */
	d->bgfds[fd] = NULL;
	f->orphan = true;
	f->next_orphan = d->bg_orphans;
	d->bg_orphans = f;
	wake_all(f, -EBADF);
	if (cio__timers_hold(d->rt) == 0) {
		f->linger_held = true;
		f->linger.fire = linger_fire;
		cio__timer_arm(d->rt, &f->linger, cio__clock_ns() + LINGER);
	} else {
		cancel(f, false); /* no room for its timer: no lingering either */
	}
}

bool cio__bg_quiesce(struct cio__driver *d)
{
	bool any = d->bg_orphans != NULL;
	for (struct cio__bgfd *f = d->bg_orphans; f; f = f->next_orphan)
		cancel(f, true);
	for (size_t i = 0; i < d->nbgfds; i++) {
		struct cio__bgfd *f = d->bgfds[i];
		if (f && f->buf) {
			cancel(f, true);
			any = true;
		}
	}
	return any;
}

void cio__bg_fini(struct cio__driver *d)
{
	/* Every send completed with the runtime (quiesce cancelled those
	 * still on their way), so no record holds a buffer. */
	for (size_t i = 0; i < d->nbgfds; i++)
		free(d->bgfds[i]);
	free(d->bgfds);
	d->bgfds = NULL;
	d->nbgfds = 0;
	while (d->bg_orphans) {
		struct cio__bgfd *f = d->bg_orphans;
		d->bg_orphans = f->next_orphan;
		free(f);
	}
}
