/* epoll.c - the epoll poller under the readiness engine (ready.c): the
 * fallback where io_uring is missing or forbidden.
 *
 * Each fd is registered once, edge-triggered, for both directions and
 * for the peer's hang-up.  Waits use epoll_pwait2() for microsecond timer
 * precision (Linux 5.11); on older kernels epoll_wait(), rounding up to
 * whole milliseconds.  Other threads wake it through the driver's wake
 * fd, registered like any fd. */
#include "ready.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256

struct epoll_poller {
	int epfd;
	const struct cio__wakefd *wake; /* the driver's, drained when it fires */
	bool no_pwait2; /* kernel before 5.11 */
	struct epoll_event ev[MAX_EVENTS];
};

/* epoll_ctl(2), behind its fail point. */
static int ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	int e = CIO_FAIL(epoll_ctl);
	if (e > 0) {
		errno = e;
		return -1;
	}
	return epoll_ctl(epfd, op, fd, ev);
}

static int ep_open(struct cio__driver *d, void **pp)
{
	struct epoll_poller *p = cio__calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->wake = &d->wake;
	int fail = CIO_FAIL(poller);
	if (fail)
		errno = fail, p->epfd = -1;
	else
		p->epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = d->wake.rd};
	if (p->epfd < 0 || ctl(p->epfd, EPOLL_CTL_ADD, d->wake.rd, &ev) < 0) {
		int err = errno;
		snprintf(d->reason, sizeof d->reason, "epoll: %s", strerror(err));
		if (p->epfd >= 0)
			close(p->epfd);
		free(p);
		return -err;
	}
	*pp = p;
	return 0;
}

static void ep_close(void *pp)
{
	struct epoll_poller *p = pp;
	close(p->epfd);
	free(p);
}

static int ep_arm(void *pp, int fd, bool known)
{
	struct epoll_poller *p = pp;
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.fd = fd,
	};
	/* MOD re-arms (and reports a ready fd at once); ENOENT means the
	 * registration went with a closed file: ADD the new one. */
	int op = known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (ctl(p->epfd, op, fd, &ev) == 0)
		return 0;
	if ((op == EPOLL_CTL_MOD && errno == ENOENT) ||
	    (op == EPOLL_CTL_ADD && errno == EEXIST)) {
		op = op == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
		if (ctl(p->epfd, op, fd, &ev) == 0)
			return 0;
	}
	return -errno;
}

static void ep_disarm(void *pp, int fd)
{
	struct epoll_poller *p = pp;
	ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
}

static int ep_wait(void *pp, struct cio__driver *d, int64_t timeout_ns)
{
	struct epoll_poller *p = pp;
	int n, inj = CIO_FAIL(epoll_wait);
	if (inj > 0)
		return inj == EINTR ? 0 : -inj;
	if (!p->no_pwait2) {
		struct timespec ts, *tp = NULL;
		if (timeout_ns != CIO_NEVER) {
			ts.tv_sec = timeout_ns / 1000000000;
			ts.tv_nsec = timeout_ns % 1000000000;
			tp = &ts;
		}
		n = epoll_pwait2(p->epfd, p->ev, MAX_EVENTS, tp, NULL);
		if (n < 0 && errno == ENOSYS) {
			p->no_pwait2 = true;
			return ep_wait(pp, d, timeout_ns);
		}
	} else {
		int ms = -1;
		if (timeout_ns != CIO_NEVER) {
			int64_t m = (timeout_ns + 999999) / 1000000;
			ms = m > 1 << 30 ? 1 << 30 : (int)m;
		}
		n = epoll_wait(p->epfd, p->ev, MAX_EVENTS, ms);
	}
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		uint32_t e = p->ev[i].events;
		int fd = p->ev[i].data.fd;
		if (fd == p->wake->rd) {
			cio__wakefd_drain(p->wake);
			continue;
		}
		/* EPOLLHUP: both ways are shut; a writer's try fails, so
		 * it too must wake. */
		cio__ready_event(d, fd,
				 (e & EPOLLIN ? CIO__READY_IN : 0) |
				 (e & (EPOLLOUT | EPOLLHUP) ? CIO__READY_OUT : 0) |
				 (e & (EPOLLRDHUP | EPOLLHUP) ? CIO__READY_HUP : 0) |
				 (e & EPOLLERR ? CIO__READY_ERR : 0));
	}
	return n;
}

static const struct cio__poller_ops epoll_poller = {
	.name = "epoll",
	.open = ep_open,
	.close = ep_close,
	.arm = ep_arm,
	.disarm = ep_disarm,
	.wait = ep_wait,
};

static int ep_driver_open(struct cio__driver *d, const cio_config *cfg)
{
	(void)cfg;
	return cio__ready_open(d, &epoll_poller);
}

const struct cio__driver_ops cio__epoll_ops = CIO__READY_DRIVER_OPS("epoll", ep_driver_open);
