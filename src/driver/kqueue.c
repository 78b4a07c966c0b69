/* kqueue.c - the kqueue poller under the readiness engine (ready.c), for
 * macOS and the BSDs.
 *
 * Each fd gets an EVFILT_READ and an EVFILT_WRITE knote, both EV_CLEAR
 * (edge-triggered: reported once per change, as epoll's EPOLLET).  EV_EOF
 * says the peer will send no more; its fflags carry a pending socket
 * error.  Other threads wake the wait by triggering an EVFILT_USER knote,
 * with no fd of its own, and timeouts go through kevent's own argument. */
#include "ready.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/event.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define WAKE_IDENT 0 /* the EVFILT_USER knote's; its own namespace */

struct kqueue_poller {
	int kq;
	struct kevent ev[MAX_EVENTS];
};

static int kq_open(struct cio__driver *d, void **pp)
{
	struct kqueue_poller *p = cio__calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	int fail = CIO_FAIL(poller);
	if (fail)
		errno = fail, p->kq = -1;
	else
		p->kq = kqueue();
	struct kevent wake;
	EV_SET(&wake, WAKE_IDENT, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	if (p->kq < 0 || fcntl(p->kq, F_SETFD, FD_CLOEXEC) < 0 ||
	    kevent(p->kq, &wake, 1, NULL, 0, NULL) < 0) {
		int err = errno;
		snprintf(d->reason, sizeof d->reason, "kqueue: %s", strerror(err));
		if (p->kq >= 0)
			close(p->kq);
		free(p);
		return -err;
	}
	*pp = p;
	return 0;
}

static void kq_close(void *pp)
{
	struct kqueue_poller *p = pp;
	close(p->kq);
	free(p);
}

/* EV_ADD adds a knote or updates the one there, and a knote whose
 * condition holds now is reported at once: adding re-arms.  EV_RECEIPT
 * reports each change's own result. */
static int kq_arm(void *pp, int fd, bool known)
{
	struct kqueue_poller *p = pp;
	struct kevent ch[2], res[2];
	(void)known;
	EV_SET(&ch[0], fd, EVFILT_READ, EV_ADD | EV_CLEAR | EV_RECEIPT, 0, 0, NULL);
	EV_SET(&ch[1], fd, EVFILT_WRITE, EV_ADD | EV_CLEAR | EV_RECEIPT, 0, 0, NULL);
	int n = kevent(p->kq, ch, 2, res, 2, NULL);
	if (n < 0)
		return -errno;
	/* A write knote may be refused where writing makes no sense (the
	 * read end of a pipe whose writer left): readers still wait, and a
	 * write fails at once rather than parking. */
	for (int i = 0; i < n; i++)
		if ((res[i].flags & EV_ERROR) && res[i].data &&
		    res[i].filter == EVFILT_READ)
			return -(int)res[i].data;
	return 0;
}

static void kq_disarm(void *pp, int fd)
{
	struct kqueue_poller *p = pp;
	struct kevent ch[2], res[2];
	/* ENOENT or EBADF for a knote already gone with its file: fine. */
	EV_SET(&ch[0], fd, EVFILT_READ, EV_DELETE | EV_RECEIPT, 0, 0, NULL);
	EV_SET(&ch[1], fd, EVFILT_WRITE, EV_DELETE | EV_RECEIPT, 0, 0, NULL);
	kevent(p->kq, ch, 2, res, 2, NULL);
}

static int kq_wait(void *pp, struct cio__driver *d, int64_t timeout_ns)
{
	struct kqueue_poller *p = pp;
	struct timespec ts, *tp = NULL;
	if (timeout_ns != CIO_NEVER) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tp = &ts;
	}
	int n = kevent(p->kq, NULL, 0, p->ev, MAX_EVENTS, tp);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		const struct kevent *e = &p->ev[i];
		unsigned what;
		if (e->filter == EVFILT_READ)
			what = CIO__READY_IN;
		else if (e->filter == EVFILT_WRITE)
			what = CIO__READY_OUT;
		else
			continue; /* the wake: EV_CLEAR has reset it */
		if (e->flags & EV_EOF)
			what |= CIO__READY_HUP | (e->fflags ? CIO__READY_ERR : 0);
		if (e->flags & EV_ERROR)
			what |= CIO__READY_ERR;
		cio__ready_event(d, (int)e->ident, what);
	}
	return n;
}

static int kq_wake(void *pp)
{
	struct kqueue_poller *p = pp;
	struct kevent t;
	EV_SET(&t, WAKE_IDENT, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	return kevent(p->kq, &t, 1, NULL, 0, NULL) < 0 ? -errno : 0;
}

static const struct cio__poller_ops kqueue_poller = {
	.name = "kqueue",
	.open = kq_open,
	.close = kq_close,
	.arm = kq_arm,
	.disarm = kq_disarm,
	.wait = kq_wait,
	.wake = kq_wake,
};

static int kq_driver_open(struct cio__driver *d, const cio_config *cfg)
{
	(void)cfg;
	return cio__ready_open(d, &kqueue_poller);
}

const struct cio__driver_ops cio__kqueue_ops = CIO__READY_DRIVER_OPS("kqueue", kq_driver_open);
