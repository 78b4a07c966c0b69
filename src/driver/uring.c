/* uring.c - the io_uring backend: one ring per runtime.
 *
 * The ring is set up with SINGLE_ISSUER | DEFER_TASKRUN (Linux 6.1) where
 * the kernel has them: completions are then only produced inside our own
 * io_uring_enter(), in one batch, instead of interrupting the task that
 * runs.  Older kernels get COOP_TASKRUN (5.19), then plain flags.  Every
 * wait submits what the tick queued and waits in the same system call. */
#define _GNU_SOURCE
#include "driver.h"
#include "../core/rt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef COREIO_HAVE_LIBURING

static int ur_open(struct cio__driver *d, const cio_config *cfg)
{
	(void)cfg;
	snprintf(d->reason, sizeof d->reason, "built without liburing");
	return -ENOSYS;
}
static void ur_close(struct cio__driver *d) { (void)d; }
static int ur_wait(struct cio__driver *d, int64_t t)
{
	(void)d, (void)t;
	return -ENOSYS;
}

#else
#include <liburing.h>

#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif

struct uring_state {
	struct io_uring ring;
	unsigned flags; /* the setup flags the kernel took */
};

/* Why io_uring_queue_init() failed, in words an operator can act on. */
static void explain(struct cio__driver *d, int err)
{
	int disabled = -1;
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
	if (f) {
		if (fscanf(f, "%d", &disabled) != 1)
			disabled = -1;
		fclose(f);
	}
	const char *why;
	if (err == ENOSYS)
		why = "ENOSYS (kernel built without io_uring)";
	else if (err == EPERM && disabled == 2)
		why = "io_uring disabled by sysctl (kernel.io_uring_disabled=2)";
	else if (err == EPERM && disabled == 1)
		why = "io_uring restricted by sysctl (kernel.io_uring_disabled=1) "
		      "to kernel.io_uring_group";
	else if (err == EPERM)
		why = "EPERM (seccomp or container policy)";
	else if (err == ENOMEM)
		why = "ENOMEM (locked-memory limit, ulimit -l)";
	else
		why = NULL;
	if (why)
		snprintf(d->reason, sizeof d->reason, "%s", why);
	else
		snprintf(d->reason, sizeof d->reason, "io_uring_setup: %s",
			 strerror(err));
}

static int ur_open(struct cio__driver *d, const cio_config *cfg)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	struct uring_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	unsigned entries = cfg->ring_entries ? cfg->ring_entries : 256;
	int rc = -EINVAL;
	for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
		rc = io_uring_queue_init(entries, &s->ring, tries[i]);
		if (rc == 0) {
			s->flags = tries[i];
			break;
		}
		if (rc != -EINVAL)
			break; /* flags are not the problem */
	}
	if (rc < 0) {
		explain(d, -rc);
		free(s);
		return rc;
	}
	if (!(s->ring.features & IORING_FEAT_EXT_ARG)) {
		/* Before 5.11 a wait with a timeout costs an extra SQE and
		 * completion per tick; not worth a second code path. */
		snprintf(d->reason, sizeof d->reason,
			 "io_uring lacks IORING_FEAT_EXT_ARG (Linux < 5.11)");
		io_uring_queue_exit(&s->ring);
		free(s);
		return -ENOSYS;
	}
	/* Saves the fd lookup on every io_uring_enter(); optional. */
	io_uring_register_ring_fd(&s->ring);
	d->impl = s;
	return 0;
}

static void ur_close(struct cio__driver *d)
{
	struct uring_state *s = d->impl;
	if (!s)
		return;
	io_uring_queue_exit(&s->ring);
	free(s);
	d->impl = NULL;
}

static int ur_wait(struct cio__driver *d, int64_t timeout_ns)
{
	struct uring_state *s = d->impl;
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts, *tp = NULL;
	if (timeout_ns != CIO_NEVER) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tp = &ts;
	}
	int rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, tp, NULL);
	if (rc < 0 && rc != -ETIME && rc != -EINTR)
		return rc;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&s->ring, head, cqe) {
		struct cio__op *op = io_uring_cqe_get_data(cqe);
		n++;
		if (!op)
			continue; /* a cancel request's own completion */
		op->res = cqe->res;
		op->flags = cqe->flags;
		op->done = true;
		d->inflight--;
		cio__wake(op->task, 0);
	}
	io_uring_cq_advance(&s->ring, n);
	return (int)n;
}

#endif

const struct cio__driver_ops cio__uring_ops = {
	.name = "io_uring",
	.open = ur_open,
	.close = ur_close,
	.wait = ur_wait,
};
