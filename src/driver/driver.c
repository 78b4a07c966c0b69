/* driver.c - chooses the I/O backend at run time. */
#include "driver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum cio_backend from_env(enum cio_backend b)
{
	const char *e = getenv("COREIO_BACKEND");
	if (b != CIO_BACKEND_AUTO || !e || !*e)
		return b;
	if (strcmp(e, "uring") == 0 || strcmp(e, "io_uring") == 0)
		return CIO_BACKEND_URING;
	if (strcmp(e, "epoll") == 0)
		return CIO_BACKEND_EPOLL;
	fprintf(stderr, "coreio: COREIO_BACKEND=%s is not uring or epoll; "
			"choosing automatically\n", e);
	return CIO_BACKEND_AUTO;
}

int cio__driver_open(struct cio__driver *d, const cio_config *cfg)
{
	memset(d, 0, sizeof *d);
	enum cio_backend want = from_env(cfg->backend);
	int rc;
	if (want != CIO_BACKEND_EPOLL) {
		d->ops = &cio__uring_ops;
		rc = d->ops->open(d, cfg);
		if (rc == 0 || want == CIO_BACKEND_URING) {
			if (rc < 0)
				fprintf(stderr, "coreio: io_uring forced but "
						"unavailable: %s\n", d->reason);
			return rc;
		}
	} else {
		snprintf(d->reason, sizeof d->reason, "epoll chosen by %s",
			 cfg->backend == CIO_BACKEND_EPOLL ? "the runtime config"
							   : "COREIO_BACKEND");
	}
	char why[sizeof d->reason];
	memcpy(why, d->reason, sizeof why);
	d->ops = &cio__epoll_ops;
	rc = d->ops->open(d, cfg);
	if (rc == 0)
		memcpy(d->reason, why, sizeof why);
	return rc;
}

void cio__driver_close(struct cio__driver *d)
{
	if (d->ops)
		d->ops->close(d);
	d->ops = NULL;
}
