/* select.c - waiting for the first of several things: a local or
 * cross-core channel operation, a timer, the drain, an fd's readiness, a
 * task's or a group's end.
 *
 * Each round first tries every case without waiting, from a starting case
 * that moves on by one at each call (so that cases ready together take
 * turns, and none starves); the first that can complete does, alone.
 * Otherwise every case is armed and the task parks:
 * - a local channel case queues a waiter on the channel.  Channels hand
 *   over to a waiter only while its task is parked, so the first hand-off
 *   wakes the task and every other waiter is skipped by its channel until
 *   the task, awake, takes them off their queues;
 * - a cross-core channel case arms its runtime's station (xchan.h), which
 *   wakes the task when the other side moves;
 * - a task's end, a group's end and the drain wake the task;
 * - an fd case has a watcher, a task of its own parked in a readiness
 *   wait: the driver runs one request per parked task, and its cancel
 *   returns only once the kernel has let go of the request, so a watcher
 *   gives select that guarantee on every backend.  The watcher writes the
 *   revents and wakes the select; watchers last until the select returns,
 *   which cancels those still waiting and waits for them to end;
 * - one timer stands for every TIMER case.
 * When the task wakes, everything is disarmed (hand-offs taken first),
 * and unless a hand-off completed a case the round begins again. */
#include "sync.h"
#include "../cores/xchan.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>

/* Waits kept on the stack; more cases than this take a malloc. */
#define SELECT_STACK_CASES 16

/* The park code of the select timer: positive, so no errno and not the 0
 * of a channel hand-off. */
#define SELECT_TIMER_FIRED (CIO__PENDING + 1)

/* An fd watcher's result until it has one: neither revents (POLLIN is
 * CIO__PENDING's 1) nor an errno. */
#define FD_PENDING INT_MIN

/* An fd case's watcher, on the select's stack. */
struct fd_watch {
	struct cio__task *select;
	cio_task_t task; /* while it runs */
	int fd, events;
	int result;      /* revents or -errno; FD_PENDING until known */
};

/* What a case waits with. */
union case_wait {
	struct cio__waiter w;    /* RECV, SEND, DRAIN */
	struct cio__xwatch xw;   /* XRECV, XSEND */
	struct fd_watch fw;      /* READABLE, WRITABLE */
};

static void select_timer_fire(struct cio__timer *tm)
{
	cio__wake(tm->task, SELECT_TIMER_FIRED);
}

static bool case_valid(const cio_select_case *c)
{
	switch (c->op) {
	case CIO_SELECT_RECV:
	case CIO_SELECT_SEND:
		return c->chan && c->elem;
	case CIO_SELECT_XRECV:
	case CIO_SELECT_XSEND:
		return c->xchan && c->elem;
	case CIO_SELECT_GROUP:
		return c->group;
	case CIO_SELECT_TIMER:
	case CIO_SELECT_DRAIN:
	case CIO_SELECT_READABLE:
	case CIO_SELECT_WRITABLE:
	case CIO_SELECT_JOIN:
		return true;
	}
	return false;
}

static bool is_fd_case(const cio_select_case *c)
{
	return c->op == CIO_SELECT_READABLE || c->op == CIO_SELECT_WRITABLE;
}

/* The first look at an fd case: poll(2) without waiting.  Returns
 * revents, a negated errno, or -EAGAIN (not ready). */
static int fd_look(const cio_select_case *c)
{
	struct pollfd p = {.fd = c->fd, .events = c->op == CIO_SELECT_READABLE ? POLLIN : POLLOUT};
	if (c->fd < 0)
		return -EBADF;
	int n = poll(&p, 1, 0);
	if (n < 0)
		return errno == EINTR || errno == ENOMEM ? -EAGAIN : -errno; /* the watcher retries */
	if (n == 0)
		return -EAGAIN;
	return p.revents & POLLNVAL ? -EBADF : p.revents;
}

/* Completes the first case, from `start` on round the array, that can
 * complete now; returns its index, or -1 with *earliest set to the
 * earliest TIMER deadline (CIO_NEVER if none).  TIMER cases due by
 * `now_floor` count as due whatever the clock reads.  fd cases: a first
 * look (ws NULL) asks poll(2), later ones their watcher's result, so that
 * a select woken for another case makes no system call. */
static int select_poll(cio_select_case *cases, size_t n, size_t start,
		       const union case_wait *ws, int64_t now_floor, int64_t *earliest)
{
	struct cio__task *self = cio__rt_cur->current;
	int64_t now = 0;
	*earliest = CIO_NEVER;
	for (size_t k = 0; k < n; k++) {
		size_t i = start + k < n ? start + k : start + k - n;
		cio_select_case *c = &cases[i];
		int rc, status = 0;
		switch (c->op) {
		case CIO_SELECT_RECV:
			rc = cio__chan_poll_recv(c->chan, c->elem);
			break;
		case CIO_SELECT_SEND:
			rc = cio__chan_poll_send(c->chan, c->elem);
			break;
		case CIO_SELECT_XRECV:
			rc = cio_xchan_try_recv(c->xchan, c->elem);
			break;
		case CIO_SELECT_XSEND:
			rc = cio_xchan_try_send(c->xchan, c->elem);
			break;
		case CIO_SELECT_DRAIN:
			rc = cio__rt_cur->draining ? 0 : -EAGAIN;
			break;
		case CIO_SELECT_READABLE:
		case CIO_SELECT_WRITABLE:
			if (!ws)
				rc = fd_look(c);
			else
				rc = ws[i].fw.result != FD_PENDING ? ws[i].fw.result : -EAGAIN;
			break;
		case CIO_SELECT_JOIN:
			rc = cio__join_try(c->task, (void **)c->elem, self);
			break;
		case CIO_SELECT_GROUP:
			rc = cio__group_try(c->group, self, &status);
			if (rc == 0)
				rc = status;
			break;
		default: /* TIMER */
			if (!now) {
				now = cio_now();
				if (now < now_floor)
					now = now_floor;
			}
			rc = c->deadline <= now ? 0 : -EAGAIN;
			if (c->deadline < *earliest)
				*earliest = c->deadline;
			break;
		}
		if (rc != -EAGAIN) {
			c->result = rc;
			return (int)i;
		}
	}
	return -1;
}

static void *fd_watch_main(void *arg)
{
	struct fd_watch *fw = arg;
	int rc = fw->events == POLLIN ? cio_wait_readable(fw->fd) : cio_wait_writable(fw->fd);
	/* Cancelled (by the select, or by a drain's end): nothing seen,
	 * and a later round may watch again. */
	if (rc != -ECANCELED && rc != -ETIMEDOUT)
		fw->result = rc;
	fw->task = 0;
	cio__wake(fw->select, 0);
	return NULL;
}

/* Arms case i to wake self.  Returns 0 (armed), 1 (it completed meanwhile,
 * with its .result set) or a negated errno (nothing armed). */
static int arm(cio_select_case *c, union case_wait *cw, struct cio__task *self)
{
	struct cio__rt *rt = cio__rt_cur;
	int rc;
	switch (c->op) {
	case CIO_SELECT_RECV:
	case CIO_SELECT_SEND:
	case CIO_SELECT_DRAIN:
		cio__waiter_init(&cw->w, self);
		cw->w.data = c->elem;
		cw->w.result = CIO__PENDING;
		cio__waitq_push(c->op == CIO_SELECT_RECV   ? &c->chan->recvq
				: c->op == CIO_SELECT_SEND ? &c->chan->sendq
							   : &rt->drain_waiters,
				&cw->w);
		return 0;
	case CIO_SELECT_XRECV:
	case CIO_SELECT_XSEND:
		rc = cio__xchan_watch(c->xchan, c->op == CIO_SELECT_XSEND, c->elem, &cw->xw, self);
		if (rc == -EAGAIN)
			return 0;
		if (rc == -ENOMEM)
			return rc;
		c->result = rc;
		return 1;
	case CIO_SELECT_READABLE:
	case CIO_SELECT_WRITABLE:
		if (cw->fw.task)
			return 0; /* still watching from an earlier round */
		cw->fw.task = cio_spawn_with(&(cio_spawn_opts){.name = "select-fd", .detached = true},
					     fd_watch_main, &cw->fw);
		if (cw->fw.task < 0) {
			rc = (int)cw->fw.task;
			cw->fw.task = 0;
			return rc;
		}
		return 0;
	case CIO_SELECT_JOIN:
		cio__join_watch(c->task, self);
		return 0;
	case CIO_SELECT_GROUP:
		cio__group_watch(c->group, self);
		return 0;
	default: /* TIMER: one timer for them all */
		return 0;
	}
}

/* Undoes arm() of every case but the local channels' (done first, by the
 * caller, so that no hand-off can come while this parks) and the fd
 * watchers' (which last the whole select). */
static void disarm(cio_select_case *c, union case_wait *cw, struct cio__task *self)
{
	switch (c->op) {
	case CIO_SELECT_DRAIN:
		if (cio__waiter_queued(&cw->w))
			cio__waitq_remove(&cw->w);
		break;
	case CIO_SELECT_XRECV:
	case CIO_SELECT_XSEND:
		cio__xchan_unwatch(&cw->xw, self);
		break;
	case CIO_SELECT_JOIN:
		cio__join_watch(c->task, NULL);
		break;
	case CIO_SELECT_GROUP:
		cio__group_watch(c->group, NULL);
		break;
	default:
		break;
	}
}

/* Parks with the first `armed` cases armed.  Returns the index of a case
 * a channel handed over to (its .result set), or -1 with *rc the park's
 * code.  Disarms them all. */
static int park_armed(cio_select_case *cases, union case_wait *ws, size_t armed,
		      struct cio__task *self, int64_t earliest, int *rc)
{
	struct cio__rt *rt = cio__rt_cur;
	/* A drain in a group may come from a signal or another core. */
	size_t remote = 0;
	for (size_t i = 0; i < armed; i++)
		remote |= cases[i].op == CIO_SELECT_DRAIN && rt->group;
	/* The task's deadline timer and this one are the two that spawn
	 * reserved room for. */
	struct cio__timer tm = {.slot = CIO__TIMER_IDLE, .fire = select_timer_fire, .task = self};
	if (earliest != CIO_NEVER)
		cio__timer_arm(rt, &tm, earliest);
	rt->remote_waits += remote;
	*rc = cio__park(self);
	rt->remote_waits -= remote;
	cio__timer_disarm(rt, &tm);

	/* A hand-off is taken first: it cannot be undone; the drain, a state
	 * that lasts, can wait for the next round. */
	int idx = -1;
	for (size_t i = 0; i < armed; i++) {
		enum cio_select_op op = cases[i].op;
		if (op != CIO_SELECT_RECV && op != CIO_SELECT_SEND)
			continue;
		if (ws[i].w.result != CIO__PENDING && idx < 0) {
			idx = (int)i;
			cases[i].result = ws[i].w.result;
		}
		if (cio__waiter_queued(&ws[i].w))
			cio__waitq_remove(&ws[i].w);
	}
	for (size_t i = 0; i < armed; i++)
		disarm(&cases[i], &ws[i], self);
	return idx;
}

/* Cancels the fd watchers still running and waits for them to end. */
static void stop_watchers(cio_select_case *cases, union case_wait *ws, size_t n,
			  struct cio__task *self)
{
	for (size_t i = 0; i < n; i++) {
		if (!is_fd_case(&cases[i]) || !ws[i].fw.task)
			continue;
		cio_cancel(ws[i].fw.task);
		while (ws[i].fw.task)
			cio__park_hard(self);
	}
}

int cio_select(cio_select_case *cases, size_t n)
{
	struct cio__task *self = cio__self_or_die("cio_select");
	if (n == 0 || n > INT32_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!case_valid(&cases[i]))
			return -EINVAL;
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;

	struct cio__rt *rt = cio__rt_cur;
	size_t start = rt->select_turn++ % n;
	int64_t earliest;
	int idx = select_poll(cases, n, start, NULL, 0, &earliest);
	if (idx >= 0)
		return idx;

	union case_wait stack_ws[SELECT_STACK_CASES];
	union case_wait *ws = stack_ws;
	if (n > SELECT_STACK_CASES && !(ws = cio__malloc(n * sizeof *ws)))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (is_fd_case(&cases[i]))
			ws[i].fw = (struct fd_watch){
				.select = self,
				.fd = cases[i].fd,
				.events = cases[i].op == CIO_SELECT_READABLE ? POLLIN : POLLOUT,
				.result = FD_PENDING,
			};
	for (;;) {
		size_t armed = 0;
		rc = 0;
		while (armed < n && (rc = arm(&cases[armed], &ws[armed], self)) == 0)
			armed++;
		if (rc != 0) {
			/* Completed while arming (1), or could not arm. */
			if (rc == 1)
				idx = (int)armed;
			for (size_t i = 0; i < armed; i++) {
				enum cio_select_op op = cases[i].op;
				if ((op == CIO_SELECT_RECV || op == CIO_SELECT_SEND) &&
				    cio__waiter_queued(&ws[i].w))
					cio__waitq_remove(&ws[i].w);
				disarm(&cases[i], &ws[i], self);
			}
			break;
		}
		idx = park_armed(cases, ws, n, self, earliest, &rc);
		if (idx >= 0 || rc < 0)
			break;
		/* Woken by a case's wake or the timer: look again. */
		idx = select_poll(cases, n, start, ws, rc == SELECT_TIMER_FIRED ? earliest : 0,
				  &earliest);
		if (idx >= 0)
			break;
	}
	stop_watchers(cases, ws, n, self);
	if (ws != stack_ws)
		free(ws);
	return idx >= 0 ? idx : rc;
}
