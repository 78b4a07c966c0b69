/* lent.c - cio_recv_buf() and friends: the public face of the buffers a
 * runtime lends (src/driver/bufs.c keeps the pool; each backend makes the
 * receive its own way, holding no buffer while it waits). */
#include "io.h"
#include "../driver/bgsend.h"
#include "../driver/bufs.h"

#include <errno.h>

ssize_t cio_recv_buf(int fd, cio_buf **out)
{
	struct cio__task *self = cio__self_or_die("cio_recv_buf");
	struct cio__rt *rt = cio__rt_cur;
	*out = NULL;
	ssize_t n = cio__interrupted(self);
	if (n < 0)
		return n;
	struct cio__lent *b = NULL;
	n = fd < 0 ? -EBADF : rt->driver->ops->recv_lent(rt->driver, fd, &b);
	if (n > 0)
		*out = &b->pub;
	rt->stats.ops_read++;
	cio__coop(rt);
	return n;
}

void cio_buf_release(cio_buf *b)
{
	if (b)
		cio__bufs_give_back((struct cio__lent *)b);
}

ssize_t cio_send_buf(int fd, cio_buf *b, size_t *moved)
{
	ssize_t rc = cio_send_all(fd, b->data, b->len, 0, moved);
	cio_buf_release(b);
	return rc;
}

int cio_send_buf_nowait(int fd, cio_buf *b)
{
	struct cio__task *self = cio__self_or_die("cio_send_buf_nowait");
	struct cio__driver *d = cio__rt_cur->driver;
	int rc = CIO__DECLINED;
	if (d->ops->send_bg && fd >= 0) {
		if ((rc = cio__interrupted(self)) < 0)
			cio_buf_release(b);
		else
			rc = cio__bg_send(d, self, fd, (struct cio__lent *)b);
	}
	if (rc == CIO__DECLINED) {
		/* A readiness backend: a send that finds room never parks. */
		ssize_t n = cio_send_buf(fd, b, NULL);
		return n < 0 ? (int)n : 0;
	}
	cio__rt_cur->stats.ops_write++;
	cio__coop(cio__rt_cur);
	return rc;
}

int cio_send_flush(int fd)
{
	struct cio__task *self = cio__self_or_die("cio_send_flush");
	int rc = cio__interrupted(self);
	if (rc == 0 && fd < 0)
		rc = -EBADF;
	if (rc == 0)
		rc = cio__bg_settle(cio__rt_cur->driver, self, fd);
	return rc;
}
