/* epoll.c - the epoll backend: the fallback where io_uring is missing or
 * forbidden.  Waits with epoll_pwait2() for microsecond timer precision
 * (Linux 5.11); on older kernels with epoll_wait(), rounding up to ms. */
#define _GNU_SOURCE
#include "driver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256

struct epoll_state {
	int epfd;
	bool no_pwait2; /* kernel before 5.11 */
	struct epoll_event ev[MAX_EVENTS];
};

static int ep_open(struct cio__driver *d, const cio_config *cfg)
{
	(void)cfg;
	struct epoll_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		int err = errno;
		snprintf(d->reason, sizeof d->reason, "epoll_create1: %s", strerror(err));
		free(s);
		return -err;
	}
	d->impl = s;
	return 0;
}

static void ep_close(struct cio__driver *d)
{
	struct epoll_state *s = d->impl;
	if (!s)
		return;
	close(s->epfd);
	free(s);
	d->impl = NULL;
}

static int ep_wait(struct cio__driver *d, int64_t timeout_ns)
{
	struct epoll_state *s = d->impl;
	int n;
	if (!s->no_pwait2) {
		struct timespec ts, *tp = NULL;
		if (timeout_ns != CIO_NEVER) {
			ts.tv_sec = timeout_ns / 1000000000;
			ts.tv_nsec = timeout_ns % 1000000000;
			tp = &ts;
		}
		n = epoll_pwait2(s->epfd, s->ev, MAX_EVENTS, tp, NULL);
		if (n < 0 && errno == ENOSYS) {
			s->no_pwait2 = true;
			return ep_wait(d, timeout_ns);
		}
	} else {
		int ms = -1;
		if (timeout_ns != CIO_NEVER) {
			int64_t m = (timeout_ns + 999999) / 1000000;
			ms = m > 1 << 30 ? 1 << 30 : (int)m;
		}
		n = epoll_wait(s->epfd, s->ev, MAX_EVENTS, ms);
	}
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n;
}

const struct cio__driver_ops cio__epoll_ops = {
	.name = "epoll",
	.open = ep_open,
	.close = ep_close,
	.wait = ep_wait,
};
