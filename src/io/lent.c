/* lent.c - cio_recv_buf() and friends: the public face of the buffers a
 * runtime lends (src/driver/bufs.c keeps the pool; each backend makes the
 * receive its own way, holding no buffer while it waits). */
#include "io.h"
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
