/* serve.c - a server's skeleton on one core: the accept loop, living
 * through the errors that pass, one task per connection in a task group,
 * a connection limit, and the graceful drain.
 *
 * The connections are members of an unbounded group whose scope is the
 * serving call: it returns only once every connection has ended, and
 * whatever interrupts it (the drain's timeout cancels every task) cancels
 * them all.  The limit is a semaphore taken before each accept and given
 * back when a connection ends, so that at the limit the kernel's backlog,
 * not memory, holds the clients that wait. */
#include "coreio.h"

#include <errno.h>
#include <stdlib.h>

#define RETRY_NS (10 * CIO_MS) /* after an error that memory may end */

struct server {
	cio_serve_fn *fn;
	void *arg;
	cio_sem slots;
	bool limited;
};

struct conn {
	struct server *srv;
	int fd;
};

static int conn_main(void *p)
{
	struct conn c = *(struct conn *)p;
	free(p);
	c.srv->fn(c.srv->arg, c.fd);
	if (c.srv->limited)
		cio_sem_release(&c.srv->slots);
	return 0;
}

/* Starts a connection's task.  Returns 0, or a negated errno with fd
 * closed and the slot given back. */
static int conn_start(struct server *srv, cio_group *conns, int fd)
{
	struct conn *c = malloc(sizeof *c);
	int rc = c ? 0 : -ENOMEM;
	if (c) {
		*c = (struct conn){srv, fd};
		if ((rc = cio_group_spawn(conns, conn_main, c)) < 0)
			free(c);
	}
	if (rc < 0) {
		cio_close(fd);
		if (srv->limited)
			cio_sem_release(&srv->slots);
	}
	return rc;
}

/* The accept loop.  Returns 0 once the drain shut lfd down, or the error
 * that ends serving: the task's interruption, a broken listener. */
static int accept_loop(int lfd, const cio_serve_opts *o, struct server *srv, cio_group *conns)
{
	for (;;) {
		int rc = srv->limited ? cio_sem_acquire(&srv->slots) : 0;
		if (rc < 0)
			return rc;
		int fd = cio_accept(lfd, NULL);
		if (fd >= 0) {
			if ((rc = conn_start(srv, conns, fd)) < 0 && o->error)
				o->error(srv->arg, rc);
			continue;
		}
		if (srv->limited)
			cio_sem_release(&srv->slots);
		switch (fd) {
		case -ESHUTDOWN:
			return 0;
		case -ECANCELED:
		case -ETIMEDOUT:
		case -EBADF:
		case -EINVAL:
		case -ENOTSOCK:
		case -EOPNOTSUPP:
			return fd;
		default:
			/* Passing: out of fds (cio_accept() paused already), a
			 * client that gave up in the backlog, a firewall, memory. */
			if (o->error)
				o->error(srv->arg, fd);
			if ((fd == -ENOBUFS || fd == -ENOMEM) && (rc = cio_sleep(RETRY_NS)) < 0)
				return rc;
		}
	}
}

int cio_serve_fd(int lfd, const cio_serve_opts *opts, cio_serve_fn *fn, void *arg)
{
	static const cio_serve_opts none;
	const cio_serve_opts *o = opts ? opts : &none;
	if (!fn || lfd < 0)
		return lfd < 0 ? -EBADF : -EINVAL;
	struct server srv = {.fn = fn, .arg = arg, .limited = o->max_conns > 0};
	cio_sem_init(&srv.slots, o->max_conns);
	cio_group *conns;
	cio_group_opts go = {.unbounded = true, .stack_size = o->stack_size,
			     .name = o->name ? o->name : "conn"};
	int rc = cio_group_new(&conns, &go);
	if (rc < 0)
		return rc;
	rc = accept_loop(lfd, o, &srv, conns);
	/* Draining, or stopped: the connections end by themselves, or the
	 * drain's timeout cancels this wait and so every one of them. */
	int wrc = cio_group_wait(conns); /* members return 0: 0 or interrupted */
	cio_group_free(conns);
	return rc < 0 ? rc : wrc;
}

int cio_serve(const char *addr, const cio_serve_opts *opts, cio_serve_fn *fn, void *arg)
{
	int lfd = cio_listen(addr, &(cio_listen_opts){.reuseport = true});
	if (lfd < 0)
		return lfd;
	int rc = cio_serve_fd(lfd, opts, fn, arg);
	cio_close(lfd);
	return rc;
}
