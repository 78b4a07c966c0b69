/* wg.c - wait groups: a counter of outstanding jobs that tasks can wait
 * to reach zero. */
#include "sync.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void cio_wg_init(cio_wg *wg)
{
	cio__waitq_init(&wg->_waiters);
	wg->_count = 0;
}

void cio_wg_add(cio_wg *wg, size_t n)
{
	if (n > SIZE_MAX - wg->_count) {
		fputs("coreio: cio_wg_add() overflows the counter\n", stderr);
		abort();
	}
	wg->_count += n;
}

void cio_wg_done(cio_wg *wg)
{
	/* Going below zero means a job was counted twice or never added: the
	 * waiters would have been released early, so stop here, loudly. */
	if (wg->_count == 0) {
		fputs("coreio: cio_wg_done() called more often than "
		      "cio_wg_add() counted\n", stderr);
		abort();
	}
	if (--wg->_count == 0)
		cio__waitq_complete_all(&wg->_waiters, 0);
}

int cio_wg_wait(cio_wg *wg)
{
	struct cio__task *self = cio__self_or_die("cio_wg_wait");
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;
	if (wg->_count == 0)
		return 0;
	return cio__wait_on(&wg->_waiters, self, NULL);
}
