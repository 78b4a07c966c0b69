/* wake.c - the wake fd (wake.h): an eventfd on Linux, a pipe elsewhere. */
#include "wake.h"
#include "fail.h"
#include "sock.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>
#if CIO__LINUX
#include <sys/eventfd.h>
#endif

int cio__wakefd_open(struct cio__wakefd *w)
{
#if CIO__LINUX
	int e = CIO_FAIL(eventfd);
	if (e > 0) {
		w->rd = w->wr = -1;
		return -e;
	}
	w->rd = w->wr = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return w->rd < 0 ? -errno : 0;
#else
	int fds[2];
	int rc = cio__pipe_open(fds, true);
	if (rc < 0)
		return rc;
	w->rd = fds[0];
	w->wr = fds[1];
	return 0;
#endif
}

void cio__wakefd_close(struct cio__wakefd *w)
{
	if (w->wr != w->rd && w->wr >= 0)
		close(w->wr);
	if (w->rd >= 0)
		close(w->rd);
	w->rd = w->wr = -1;
}

void cio__wakefd_signal(const struct cio__wakefd *w)
{
#if CIO__LINUX
	uint64_t one = 1;
	/* EAGAIN: the counter is saturated, a wake is pending anyway. */
	while (write(w->wr, &one, sizeof one) < 0 && errno == EINTR)
		;
#else
	char one = 1;
	/* EAGAIN: the pipe is full of wakes not yet read. */
	while (write(w->wr, &one, 1) < 0 && errno == EINTR)
		;
#endif
}

void cio__wakefd_drain(const struct cio__wakefd *w)
{
#if CIO__LINUX
	uint64_t v;
	ssize_t r = read(w->rd, &v, sizeof v); /* resets the counter */
	(void)r;
#else
	char buf[64];
	for (;;) {
		ssize_t r = read(w->rd, buf, sizeof buf);
		if (r == (ssize_t)sizeof buf || (r < 0 && errno == EINTR))
			continue;
		break; /* short: empty now; EAGAIN: was empty */
	}
#endif
}
