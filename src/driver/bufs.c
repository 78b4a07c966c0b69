/* bufs.c - the buffers a runtime lends: a pool of fixed-size buffers,
 * given to a task only once bytes are there for it, bounded by a budget
 * per runtime, with spares kept for reuse up to a bound and freed beyond
 * it; and the lent receive of backends without one of their own. */
#include "bufs.h"
#include "../core/rt.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_SIZE (16u << 10)
#define DEFAULT_BUDGET ((size_t)64 << 20)
#define SPARE_MAX 64 /* buffers kept for reuse */
#define SPARE_SLICES 256 /* slice records kept for reuse */

void cio__bufs_init(struct cio__bufpool *p, const cio_config *cfg)
{
	p->spare = p->spare_slices = NULL;
	p->nspare = p->lent = p->held = p->sliced = p->nspare_slices = 0;
	p->size = cfg && cfg->buf_size ? cfg->buf_size : DEFAULT_SIZE;
	p->budget = cfg && cfg->buf_budget ? cfg->buf_budget : DEFAULT_BUDGET;
}

void cio__bufs_fini(struct cio__bufpool *p)
{
	struct cio__lent *b;
	while ((b = p->spare)) {
		p->spare = b->next;
		free(b);
	}
	while ((b = p->spare_slices)) {
		p->spare_slices = b->next;
		free(b);
	}
	p->nspare = p->nspare_slices = 0;
}

/* What tasks hold now, as the counters tell it. */
static void count(struct cio__rt *rt, struct cio__bufpool *p)
{
	rt->stats.bufs_lent = p->lent + p->sliced;
}

/* A buffer from the pool, within the budget, counted as held or lent. */
static struct cio__lent *take(struct cio__rt *rt, int *err, bool held)
{
	struct cio__bufpool *p = &rt->driver->bufs;
	if (p->lent + p->held + p->size > p->budget) {
		*err = -ENOBUFS;
		return NULL;
	}
	struct cio__lent *b = p->spare;
	if (b) {
		p->spare = b->next;
		p->nspare--;
	} else if (!(b = cio__malloc(sizeof *b + p->size))) {
		*err = -ENOMEM;
		return NULL;
	}
	b->rt = rt;
	b->next = b->parent = NULL;
	b->refs = 0;
	b->held = held;
	if (held)
		p->held += p->size;
	else
		p->lent += p->size;
	count(rt, p);
	b->pub = (cio_buf){.data = b->bytes, .len = 0, .cap = p->size};
	return b;
}

struct cio__lent *cio__bufs_lend(struct cio__rt *rt, int *err)
{
	return take(rt, err, false);
}

struct cio__lent *cio__bufs_hold(struct cio__rt *rt, int *err)
{
	return take(rt, err, true);
}

void cio__bufs_lend_held(struct cio__lent *b)
{
	struct cio__bufpool *p = &b->rt->driver->bufs;
	b->held = false;
	if (b->parent) {
		p->sliced += b->pub.cap; /* its parent stays held */
	} else {
		p->held -= p->size;
		p->lent += p->size;
	}
	count(b->rt, p);
}

struct cio__lent *cio__bufs_slice(struct cio__lent *parent, size_t off, size_t len)
{
	struct cio__bufpool *p = &parent->rt->driver->bufs;
	struct cio__lent *s = p->spare_slices;
	if (s) {
		p->spare_slices = s->next;
		p->nspare_slices--;
	} else if (!(s = cio__malloc(sizeof *s))) {
		return NULL;
	}
	*s = (struct cio__lent){.pub = {.data = parent->bytes + off, .len = len, .cap = len},
				.rt = parent->rt, .parent = parent, .held = true};
	parent->refs++;
	return s;
}

void cio__bufs_unshare(struct cio__lent *b)
{
	if (--b->refs == 0)
		cio__bufs_give_back(b);
}

void cio__bufs_give_back(struct cio__lent *b)
{
	struct cio__rt *rt = b->rt;
	if (rt != cio__rt_cur) {
		fprintf(stderr, "coreio: a lent buffer given back off the runtime "
				"that lent it\n");
		abort();
	}
	struct cio__bufpool *p = &rt->driver->bufs;
	struct cio__lent *parent = b->parent;
	if (parent) {
		if (!b->held)
			p->sliced -= b->pub.cap;
		count(rt, p);
		if (p->nspare_slices < SPARE_SLICES) {
			b->next = p->spare_slices;
			p->spare_slices = b;
			p->nspare_slices++;
		} else {
			free(b);
		}
		cio__bufs_unshare(parent);
		return;
	}
	if (b->held)
		p->held -= p->size;
	else
		p->lent -= p->size;
	count(rt, p);
	if (p->nspare < SPARE_MAX) {
		b->next = p->spare;
		p->spare = b;
		p->nspare++;
	} else {
		free(b);
	}
}

ssize_t cio__bufs_try(struct cio__rt *rt, int fd, struct cio__lent **out)
{
	int err;
	struct cio__lent *b = cio__bufs_lend(rt, &err);
	if (!b)
		return err;
	struct cio__io io = {.kind = CIO__IO_RECV, .fd = fd, .flags = MSG_DONTWAIT,
			     .p.buf = b->bytes, .n.len = b->pub.cap};
	ssize_t n;
	do
		n = cio__io_sync(&io);
	while (n == -EINTR);
	if (n > 0) {
		b->pub.len = (size_t)n;
		*out = b;
	} else {
		cio__bufs_give_back(b);
	}
	return n;
}

ssize_t cio__recv_lent_polling(struct cio__driver *d, int fd, struct cio__lent **out)
{
	struct cio__rt *rt = d->rt;
	for (;;) {
		ssize_t n = cio__bufs_try(rt, fd, out);
		if (n != -EAGAIN)
			return n;
		/* Nothing there: wait holding nothing. */
		struct cio__io poll = {.kind = CIO__IO_POLL, .fd = fd, .flags = POLLIN};
		ssize_t rc = d->ops->io(d, &poll);
		if (rc < 0)
			return rc;
		if (rc & POLLNVAL)
			return -EBADF;
	}
}
