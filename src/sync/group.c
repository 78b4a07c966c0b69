/* group.c - task groups: tasks spawned into a scope that does not end
 * until every one of them has ended.
 *
 * A member is a detached task running a trampoline around the user's
 * function, whose status (0 or a negated errno) it writes into the
 * group's table.  Members inherit, at spawn, the spawning task's deadline
 * and a cancellation standing against it or against the group.  The task
 * that waits is the group's scope: its interruption cancels every member,
 * and it still waits (deaf to further interruptions) until they have all
 * ended, so nothing a member uses can go away under it.  With fail_fast
 * the first member to fail cancels the others.  Ids of detached tasks
 * stay safe after they end, so cancelling a member that is gone is a
 * no-op. */
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>

struct member {
	cio_task_t task;
	int status;    /* its fn's result; -EINPROGRESS while it runs */
};

struct cio_group {
	struct cio__rt *rt;          /* members run here, and only here */
	struct member *m;
	size_t n, cap;
	size_t running;
	int first_error;             /* the first failure, in time */
	bool fail_fast, cancelled, closed;
	struct cio__task *waiter;    /* in cio_group_wait() */
};

struct start {
	cio_group *g;
	size_t i;
	cio_group_fn *fn;
	void *arg;
	int64_t deadline;
};

int cio_group_new(cio_group **out, const cio_group_opts *opts)
{
	*out = NULL;
	struct cio__rt *rt = cio__rt_cur;
	if (!rt)
		return -EPERM;
	cio_group *g = calloc(1, sizeof *g);
	if (!g)
		return -ENOMEM;
	g->rt = rt;
	g->fail_fast = opts && opts->fail_fast;
	*out = g;
	return 0;
}

static void cancel_members(cio_group *g)
{
	g->cancelled = true;
	for (size_t i = 0; i < g->n; i++)
		if (g->m[i].status == -EINPROGRESS)
			cio_cancel(g->m[i].task);
}

void cio_group_cancel(cio_group *g)
{
	if (cio__rt_cur == g->rt)
		cancel_members(g);
}

static void *member_main(void *p)
{
	struct start s = *(struct start *)p;
	free(p);
	int64_t tok = cio_deadline_push(s.deadline);
	int status = s.fn(s.arg);
	cio_deadline_pop(tok);
	cio_group *g = s.g;
	g->m[s.i].status = status;
	if (status < 0 && g->first_error == 0) {
		g->first_error = status;
		if (g->fail_fast)
			cancel_members(g);
	}
	if (--g->running == 0 && g->waiter)
		cio__wake(g->waiter, 0);
	return NULL;
}

int cio_group_spawn(cio_group *g, cio_group_fn *fn, void *arg)
{
	struct cio__rt *rt = cio__rt_cur;
	if (rt != g->rt)
		return -EPERM; /* another core's group, or no runtime */
	if (!fn)
		return -EINVAL;
	if (g->closed)
		return -EPIPE;
	if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 8;
		struct member *m = realloc(g->m, cap * sizeof *m);
		if (!m)
			return -ENOMEM;
		g->m = m;
		g->cap = cap;
	}
	struct start *s = malloc(sizeof *s);
	if (!s)
		return -ENOMEM;
	struct cio__task *self = rt->current;
	*s = (struct start){g, g->n, fn, arg, self ? self->deadline : CIO_NEVER};
	cio_task_t t = cio_spawn_with(&(cio_spawn_opts){.name = "group-member", .detached = true},
				      member_main, s);
	if (t < 0) {
		free(s);
		return (int)t;
	}
	g->m[g->n] = (struct member){t, -EINPROGRESS};
	g->running++;
	if (g->cancelled || (self && self->cancel))
		cio_cancel(t);
	return (int)g->n++;
}

int cio_group_wait(cio_group *g)
{
	struct cio__task *self = cio__self_or_die("cio_group_wait");
	if (cio__rt_cur != g->rt)
		return -EPERM;
	if (g->waiter)
		return -EBUSY;
	int rc = 0;
	while (g->running) {
		g->waiter = self;
		rc = cio__park(self); /* interruption checked first */
		g->waiter = NULL;
		if (rc < 0)
			break;
	}
	if (g->running) {
		/* Interrupted: the scope ends, so do its members, and it still
		 * waits for them. */
		cancel_members(g);
		while (g->running) {
			g->waiter = self;
			cio__park_hard(self);
			g->waiter = NULL;
		}
	} else {
		rc = 0; /* all ended, maybe just as an interruption came */
	}
	g->closed = true;
	return rc < 0 ? rc : g->first_error;
}

int cio_group_status(const cio_group *g, size_t member)
{
	return member < g->n ? g->m[member].status : -EINVAL;
}

size_t cio_group_size(const cio_group *g)
{
	return g->n;
}

void cio_group_free(cio_group *g)
{
	if (!g)
		return;
	if (g->running) {
		fprintf(stderr, "coreio: cio_group_free() while %zu member(s) run\n", g->running);
		abort();
	}
	free(g->m);
	free(g);
}
