/* driver.c - chooses the I/O backend at run time, and is the driver
 * layer's face to the scheduler (struct cio__poller). */
#include "driver.h"
#include "bgsend.h"
#include "bufs.h"
#include "../core/rt.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int open_backend(struct cio__driver *d, const cio_config *cfg);

/* The backends in the order AUTO tries them; NULL where not built. */
static const struct {
	enum cio_backend which;
	const char *env; /* its COREIO_BACKEND name */
	const struct cio__driver_ops *ops;
} backends[] = {
	{CIO_BACKEND_URING, "uring", &cio__uring_ops},
#ifdef COREIO_HAVE_EPOLL
	{CIO_BACKEND_EPOLL, "epoll", &cio__epoll_ops},
#else
	{CIO_BACKEND_EPOLL, "epoll", NULL},
#endif
#ifdef COREIO_HAVE_KQUEUE
	{CIO_BACKEND_KQUEUE, "kqueue", &cio__kqueue_ops},
#else
	{CIO_BACKEND_KQUEUE, "kqueue", NULL},
#endif
};

#define NBACKENDS (sizeof backends / sizeof backends[0])

static enum cio_backend from_env(enum cio_backend b)
{
	const char *e = getenv("COREIO_BACKEND");
	if (b != CIO_BACKEND_AUTO || !e || !*e)
		return b;
	if (strcmp(e, "io_uring") == 0)
		return CIO_BACKEND_URING;
	for (size_t i = 0; i < NBACKENDS; i++)
		if (strcmp(e, backends[i].env) == 0)
			return backends[i].which;
	fprintf(stderr, "coreio: COREIO_BACKEND=%s is not uring, epoll or "
			"kqueue; choosing automatically\n", e);
	return CIO_BACKEND_AUTO;
}

/* A peer that goes away must never kill the process: sends use
 * MSG_NOSIGNAL (SO_NOSIGPIPE where it is missing: platform/sock.h), and
 * write() to a broken pipe gets -EPIPE with SIGPIPE ignored.  A handler the program installed is left alone. */
static void ignore_sigpipe(void)
{
	struct sigaction old, ign;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
	    !(old.sa_flags & SA_SIGINFO))
		sigaction(SIGPIPE, &ign, NULL);
}

/* Counted here, once for every backend: each wait is one system call
 * of the backend's (io_uring_enter, epoll_wait, kevent). */
static int poller_wait(struct cio__rt *rt, int64_t timeout_ns)
{
	int n = rt->driver->ops->wait(rt->driver, timeout_ns);
	rt->stats.driver_polls++;
	if (n > 0)
		rt->stats.driver_events += (uint64_t)n;
	return n;
}

static void driver_notify(struct cio__driver *from, struct cio__driver *to);

static void poller_wake(struct cio__rt *from, struct cio__rt *to)
{
	driver_notify(from ? from->driver : NULL, to->driver);
}

static void poller_quiesce(struct cio__rt *rt)
{
	cio__bg_quiesce(rt->driver);
}

static const struct cio__poller poller = {
	.wait = poller_wait, .wake = poller_wake, .quiesce = poller_quiesce,
};

int cio__driver_open(struct cio__rt *rt, const cio_config *cfg)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, ignore_sigpipe);
	struct cio__driver *d = cio__calloc(1, sizeof *d);
	if (!d)
		return -ENOMEM;
	d->rt = rt;
	cio__bufs_init(&d->bufs, cfg);
	/* Every backend waits on this too, so that any thread can wake it. */
	int rc = cio__wakefd_open(&d->wake);
	if (rc == 0 && (rc = open_backend(d, cfg)) < 0)
		cio__wakefd_close(&d->wake);
	if (rc < 0) {
		free(d);
		return rc;
	}
	rt->driver = d;
	rt->poller = &poller;
	return 0;
}

static void driver_notify(struct cio__driver *from, struct cio__driver *to)
{
	if (from && from->ops->notify && from->ops->notify(from, to) == 0)
		return;
	if (to->ops->wake && to->ops->wake(to) == 0)
		return;
	cio__wakefd_signal(&to->wake);
}

/* AUTO: the first backend that opens; the reason kept is why the first
 * (io_uring) did not.  A forced one: that one, or its error. */
static int open_backend(struct cio__driver *d, const cio_config *cfg)
{
	enum cio_backend want = from_env(cfg->backend);
	char why[sizeof d->reason] = "";
	int rc = -ENOSYS;
	for (size_t i = 0; i < NBACKENDS; i++) {
		if (want != CIO_BACKEND_AUTO && want != backends[i].which)
			continue;
		d->reason[0] = '\0';
		if (!backends[i].ops) {
			snprintf(d->reason, sizeof d->reason, "%s: not built on "
				 "this platform", backends[i].env);
			rc = -ENOSYS;
		} else {
			d->ops = backends[i].ops;
			rc = d->ops->open(d, cfg);
		}
		if (rc == 0) {
			if (want != CIO_BACKEND_AUTO && want != CIO_BACKEND_URING)
				snprintf(d->reason, sizeof d->reason, "%s chosen by %s",
					 backends[i].env,
					 cfg->backend != CIO_BACKEND_AUTO
						 ? "the runtime config" : "COREIO_BACKEND");
			else if (want == CIO_BACKEND_AUTO)
				memcpy(d->reason, why, sizeof why);
			return 0;
		}
		if (!why[0])
			memcpy(why, d->reason, sizeof why);
		d->ops = NULL;
	}
	if (want != CIO_BACKEND_AUTO)
		fprintf(stderr, "coreio: backend forced but unavailable: %s\n",
			d->reason);
	return rc;
}

void cio__driver_close(struct cio__rt *rt)
{
	struct cio__driver *d = rt->driver;
	if (!d)
		return;
	d->ops->close(d);
	cio__bg_fini(d);
	cio__wakefd_close(&d->wake);
	cio__bufs_fini(&d->bufs);
	free(d);
	rt->driver = NULL;
}

const char *cio_backend_name(void)
{
	return cio__rt_cur ? cio__rt_cur->driver->ops->name : NULL;
}

const char *cio_backend_reason(void)
{
	struct cio__rt *rt = cio__rt_cur;
	return rt && rt->driver->reason[0] ? rt->driver->reason : NULL;
}

int cio__splice_unready(const struct cio__io *io, int *fd)
{
	bool in_ready = io->flags & CIO__SPLICE_WAIT_OUT;
	bool out_ready = io->flags & CIO__SPLICE_WAIT_IN;
	if (!in_ready && !out_ready) {
		struct pollfd p[2] = {{.fd = io->fd, .events = POLLIN},
				      {.fd = io->fd2, .events = POLLOUT}};
		if (poll(p, 2, 0) < 0)
			return -errno;
		in_ready = p[0].revents;
		out_ready = p[1].revents;
	}
	if (!in_ready) {
		*fd = io->fd;
		return POLLIN;
	}
	if (!out_ready) {
		*fd = io->fd2;
		return POLLOUT;
	}
	return 0;
}
