/* serve.c - a server's skeleton on one core: the accept loop, living
 * through the errors that pass, one task per connection in a task group,
 * a connection limit, idle connections that hold no task, and the
 * graceful drain.
 *
 * The connections are members of an unbounded group whose scope is the
 * serving call: it returns only once every connection has ended, and
 * whatever interrupts it (the drain's timeout cancels every task) cancels
 * them all.  The limit is a semaphore taken before each accept and given
 * back when a connection ends, so that at the limit the kernel's backlog,
 * not memory, holds the clients that wait.
 *
 * A handler that returns CIO_SERVE_AGAIN leaves its connection idle: the
 * driver watches the fd (a read into a lent buffer, the multishot
 * receive the kernel holds anyway, or a poll) and the connection is a
 * small record on a list, with no task and no stack, until bytes come
 * and a task is started for them, as nginx holds its idle keep-alive
 * connections.  Those starts happen in the driver's wait, outside any
 * task; one that fails (memory) is tried again 10 ms later, so a
 * connection is never lost to a passing shortage.  Each idle connection
 * holds one timer for that and for its idle timeout. */
#include "coreio.h"
#include "../core/rt.h"
#include "../driver/driver.h"
#include "../io/io.h"

#include <errno.h>
#include <stdlib.h>

#define RETRY_NS (10 * CIO_MS) /* after an error that memory may end */

struct conn;

struct server {
	cio_serve_fn *fn;
	void *arg;
	const cio_serve_opts *o;
	cio_group *conns;
	cio_sem slots;
	bool limited;
	bool stopping;     /* accepting ended: no connection goes idle now */
	struct conn *idle; /* idle connections, for the drain to close */
};

struct conn {
	struct server *srv;
	int fd;
	bool watched;      /* the driver watches fd for us */
	bool expired;      /* its idle timeout came: the task closes it */
	void *state;       /* the handler's (cio_serve_state()) */
	struct conn *prev, *next; /* on srv->idle while idle */
	struct cio__timer timer;  /* the idle timeout, or a start to retry */
};

static void idle_remove(struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		c->srv->idle = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

/* The end of a connection that serving closes without a call: its fd,
 * and the state its handler left. */
static void conn_close(struct conn *c)
{
	struct server *srv = c->srv;
	cio_close(c->fd);
	if (c->state) {
		if (srv->o->state_free)
			srv->o->state_free(srv->arg, c->state);
		else
			free(c->state);
		c->state = NULL;
	}
}

void **cio_serve_state(void)
{
	struct cio__task *t = cio__rt_cur ? cio__rt_cur->current : NULL;
	struct conn *c = t ? t->local : NULL;
	return c ? &c->state : NULL;
}

/* The end of a connection whose fd is closed. */
static void conn_free(struct conn *c)
{
	if (c->srv->limited)
		cio_sem_release(&c->srv->slots);
	free(c);
}

static int conn_main(void *p);

/* An idle connection's fd turned readable, its idle timeout came, or an
 * earlier start failed: starts its task.  Runs outside any task (in the
 * driver's wait, or the timers'), and so never blocks. */
static void conn_wake(struct conn *c, bool expired)
{
	struct server *srv = c->srv;
	struct cio__rt *rt = cio__rt_cur;
	cio__timer_disarm(rt, &c->timer);
	if (c->watched) {
		rt->driver->ops->unwatch(rt->driver, c->fd);
		c->watched = false;
	}
	c->expired |= expired;
	int rc = cio_group_spawn(srv->conns, conn_main, c);
	if (rc == 0) {
		idle_remove(c);
		cio__timers_unhold(rt);
		return;
	}
	if (srv->o->error)
		srv->o->error(srv->arg, rc);
	cio__timer_arm(rt, &c->timer, cio_now() + RETRY_NS); /* held: cannot fail */
}

static void conn_fire(void *arg)
{
	conn_wake(arg, false);
}

static void conn_timer(struct cio__timer *tm)
{
	struct conn *c = (struct conn *)((char *)tm - offsetof(struct conn, timer));
	/* Watched: its idle timeout.  Else a retry, for what it was. */
	conn_wake(c, c->watched);
}

/* Leaves c idle, its task about to end, for at most `timeout` (0 or
 * CIO_NEVER: no limit).  Returns 0; 1 when fd is readable now (call the handler
 * again); or a negated errno when it cannot go idle (the task then waits
 * for fd itself). */
static int conn_idle(struct conn *c, int64_t timeout)
{
	struct server *srv = c->srv;
	struct cio__rt *rt = cio__rt_cur;
	int rc = cio__timers_hold(rt);
	if (rc < 0)
		return rc;
	rc = rt->driver->ops->watch(rt->driver, c->fd, conn_fire, c);
	if (rc != 0) {
		cio__timers_unhold(rt);
		return rc;
	}
	c->watched = true;
	c->timer = (struct cio__timer){.slot = CIO__TIMER_IDLE, .fire = conn_timer};
	if (timeout > 0) {
		int64_t now = cio_now(); /* a clock read only when it is needed */
		if (timeout <= CIO_NEVER - now) /* CIO_NEVER: none */
			cio__timer_arm(rt, &c->timer, now + timeout);
	}
	c->prev = NULL;
	c->next = srv->idle;
	if (c->next)
		c->next->prev = c;
	srv->idle = c;
	return 0;
}

static int conn_main(void *p)
{
	struct conn *c = p;
	struct server *srv = c->srv;
	cio__rt_cur->current->local = c;
	if (c->expired)
		goto close;
	for (;;) {
		if (srv->fn(srv->arg, c->fd) != CIO_SERVE_AGAIN)
			break; /* the handler closed fd */
		if (srv->stopping || cio_draining())
			goto close; /* an idle connection ends with a drain */
		int rc = conn_idle(c, srv->o->idle_timeout);
		if (rc == 0)
			return 0; /* idle: no task until fd is readable */
		if (rc == 1)
			continue;
		if (srv->o->error)
			srv->o->error(srv->arg, rc);
		/* It cannot go idle (memory): it waits on this task. */
		if (rc == -EBADF || cio_wait_readable(c->fd) < 0)
			goto close;
	}
	conn_free(c);
	return 0;
close:
	conn_close(c);
	conn_free(c);
	return 0;
}

/* Starts a connection's task.  Returns 0, or a negated errno with fd
 * closed and the slot given back. */
static int conn_start(struct server *srv, int fd)
{
	struct conn *c = malloc(sizeof *c);
	int rc = c ? 0 : -ENOMEM;
	if (c) {
		*c = (struct conn){.srv = srv, .fd = fd, .timer.slot = CIO__TIMER_IDLE};
		/* Idle first unless bytes are there (or it cannot be). */
		int64_t first = srv->o->first_timeout ? srv->o->first_timeout
						      : srv->o->idle_timeout;
		if (srv->o->idle_first && conn_idle(c, first) == 0)
			return 0;
		if ((rc = cio_group_spawn(srv->conns, conn_main, c)) < 0)
			free(c);
	}
	if (rc < 0) {
		cio_close(fd);
		if (srv->limited)
			cio_sem_release(&srv->slots);
	}
	return rc;
}

/* Closes every idle connection: serving is over. */
static void close_idle(struct server *srv)
{
	struct cio__rt *rt = cio__rt_cur;
	struct conn *c;
	while ((c = srv->idle)) {
		idle_remove(c);
		cio__timer_disarm(rt, &c->timer);
		if (c->watched)
			rt->driver->ops->unwatch(rt->driver, c->fd);
		cio__timers_unhold(rt);
		conn_close(c);
		conn_free(c);
	}
}

/* The accept loop.  Returns 0 once the drain shut lfd down, or the error
 * that ends serving: the task's interruption, a broken listener. */
static int accept_loop(int lfd, struct server *srv)
{
	const cio_serve_opts *o = srv->o;
	for (;;) {
		int rc = srv->limited ? cio_sem_acquire(&srv->slots) : 0;
		if (rc < 0)
			return rc;
		int fd = cio__accept(lfd, NULL, CIO__ACCEPT_MULTI);
		if (fd >= 0) {
			if ((rc = conn_start(srv, fd)) < 0 && o->error)
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
	struct server srv = {.fn = fn, .arg = arg, .o = o, .limited = o->max_conns > 0};
	cio_sem_init(&srv.slots, o->max_conns);
	cio_group_opts go = {.unbounded = true, .stack_size = o->stack_size,
			     .name = o->name ? o->name : "conn"};
	int rc = cio_group_new(&srv.conns, &go);
	if (rc < 0)
		return rc;
	rc = accept_loop(lfd, &srv);
	/* Draining, or stopped: idle connections close now, the others end
	 * by themselves, or the drain's timeout cancels this wait and so
	 * every one of them.  A connection woken meanwhile is a member. */
	srv.stopping = true;
	close_idle(&srv);
	int wrc = cio_group_wait(srv.conns); /* members return 0: 0 or interrupted */
	cio_group_free(srv.conns);
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
