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

/* Members live where they never move, so that a member's task can hold
 * a pointer to its entry while the table grows: the first few in the
 * group itself, the rest in chunks. */
#define FIRST 8
#define CHUNK 256

struct member {
	cio_group *g;
	struct member *next_free; /* unbounded groups: entries to reuse */
	cio_group_fn *fn;
	void *arg;
	cio_task_t task;
	int status;    /* its fn's result; -EINPROGRESS while it runs */
};

struct cio_group {
	struct cio__rt *rt;          /* members run here, and only here */
	struct member **chunks;
	size_t n, nchunks;
	size_t running;
	int first_error;             /* the first failure, in time */
	bool fail_fast, unbounded, cancelled, closed;
	struct member *free;         /* unbounded: ended members' entries */
	size_t spawned;
	size_t stack_size;           /* the members' */
	char name[CIO__NAME_MAX];    /* the members' */
	struct cio__task *waiter;    /* in cio_group_wait() */
	struct member first[FIRST];
};

static struct member *member_at(cio_group *g, size_t i)
{
	return i < FIRST ? &g->first[i] : &g->chunks[(i - FIRST) / CHUNK][(i - FIRST) % CHUNK];
}

int cio_group_new(cio_group **out, const cio_group_opts *opts)
{
	*out = NULL;
	struct cio__rt *rt = cio__rt_cur;
	if (!rt)
		return -EPERM;
	cio_group *g = cio__malloc(sizeof *g);
	if (!g)
		return -ENOMEM;
	/* Field by field: the member entries need no zeroing. */
	g->chunks = NULL;
	g->n = g->nchunks = g->running = 0;
	g->first_error = 0;
	g->cancelled = g->closed = false;
	g->waiter = NULL;
	g->free = NULL;
	g->rt = rt;
	g->fail_fast = opts && opts->fail_fast;
	g->unbounded = opts && opts->unbounded;
	g->spawned = 0;
	g->stack_size = opts ? opts->stack_size : 0;
	snprintf(g->name, sizeof g->name, "%s", opts && opts->name ? opts->name : "group-member");
	*out = g;
	return 0;
}

static void cancel_members(cio_group *g)
{
	g->cancelled = true;
	for (size_t i = 0; i < g->n; i++) {
		struct member *m = member_at(g, i);
		if (m->status == -EINPROGRESS)
			cio_cancel(m->task);
	}
}

void cio_group_cancel(cio_group *g)
{
	if (cio__rt_cur == g->rt)
		cancel_members(g);
}

static void *member_main(void *p)
{
	struct member *m = p;
	int status = m->fn(m->arg);
	cio_group *g = m->g;
	m->status = status;
	if (status < 0 && g->first_error == 0) {
		g->first_error = status;
		if (g->fail_fast)
			cancel_members(g);
	}
	if (g->unbounded) {
		m->next_free = g->free;
		g->free = m;
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
	struct member *m = g->free;
	size_t idx = g->n;
	if (m) {
		g->free = m->next_free;
	} else {
		if (g->n == FIRST + g->nchunks * CHUNK) {
			struct member **c = cio__realloc(g->chunks, (g->nchunks + 1) * sizeof *c);
			if (!c)
				return -ENOMEM;
			g->chunks = c;
			if (!(c[g->nchunks] = cio__malloc(CHUNK * sizeof **c)))
				return -ENOMEM;
			g->nchunks++;
		}
		m = member_at(g, g->n++);
	}
	*m = (struct member){g, NULL, fn, arg, 0, -EINPROGRESS};
	cio_spawn_opts so = {.name = g->name, .stack_size = g->stack_size, .detached = true};
	cio_task_t t = cio_spawn_with(&so, member_main, m);
	if (t < 0) {
		m->status = (int)t; /* not running: cancels skip it */
		if (g->unbounded) {
			m->next_free = g->free;
			g->free = m;
		} else {
			g->n--;
		}
		return (int)t;
	}
	m->task = t;
	g->running++;
	g->spawned++;
	/* Inherited: the spawner's deadline, as the member's own base, and
	 * a cancel standing against the spawner or the group. */
	struct cio__task *self = rt->current;
	if (self)
		cio__slot_task(rt, t)->deadline = self->deadline;
	if (g->cancelled || (self && self->cancel && !self->shielded))
		cio_cancel(t); /* a shield's cleanup may use members */
	return g->unbounded ? 0 : (int)idx;
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

int cio__group_try(cio_group *g, struct cio__task *self, int *status)
{
	if (cio__rt_cur != g->rt)
		return -EPERM;
	if (g->waiter && g->waiter != self)
		return -EBUSY;
	if (g->running)
		return -EAGAIN;
	g->closed = true;
	*status = g->first_error;
	return 0;
}

void cio__group_watch(cio_group *g, struct cio__task *t)
{
	g->waiter = t;
}

int cio_group_status(const cio_group *g, size_t member)
{
	return member < g->n && !g->unbounded ? member_at((cio_group *)g, member)->status : -EINVAL;
}

size_t cio_group_size(const cio_group *g)
{
	return g->spawned;
}

void cio_group_free(cio_group *g)
{
	if (!g)
		return;
	if (g->running) {
		fprintf(stderr, "coreio: cio_group_free() while %zu member(s) run\n", g->running);
		abort();
	}
	for (size_t i = 0; i < g->nchunks; i++)
		free(g->chunks[i]);
	free(g->chunks);
	free(g);
}
