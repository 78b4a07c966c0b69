/* cores.c - thread-per-core: the multi-core launcher, calls and posts
 * between cores, the graceful drain and signal waits.
 *
 * Each core is a thread with its own runtime, pinned to one CPU.  All
 * cooperation goes through runtimes' inboxes (inbox.c): a message's
 * handler runs on the receiving core's thread, between its ticks. */
#include "runtime.h"
#include "../io/io.h"
#include "../platform/cpu.h"
#include "../platform/sigfd.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_DRAIN (5 * CIO_SEC)

struct cio__group {
	int n;
	struct cio__rt **rts;
	const cio_cores_config *cfg;
	cio_fn *main;
	void *arg;
	pthread_mutex_t lock; /* with ready: the start line */
	pthread_cond_t ready;
	int arrived;          /* cores set up (or failed) */
	bool go;              /* every core exists: run */
	atomic_int failed;    /* first core's setup error */
	atomic_int signals;   /* SIGINT/SIGTERM seen, by any core's watcher */
	struct cio__dl_group dl; /* deadlock detection (core/deadlock.c) */
	int *cpus;         /* the CPUs of our affinity mask */
	int ncpus;
	/* The stops the group itself sends, one set of n per kind (drain,
	 * force), each sent at most once: a drain when a core's main could
	 * not start or on the first SIGINT/SIGTERM, a forced stop on the
	 * second.  Made beforehand: they come when memory may be short,
	 * and a signal must not be lost to a failed allocation. */
	struct stop *stops;
	atomic_bool stopping[2];
};

static struct cio__rt *core_rt(struct cio__rt *rt, int k)
{
	return rt->group ? rt->group->rts[k] : rt;
}

int cio_core_id(void)
{
	return cio__rt_cur ? cio__rt_cur->core_id : -1;
}

int cio_core_count(void)
{
	return cio__rt_cur ? cio__rt_cur->core_count : 0;
}

/* --- calls and posts ------------------------------------------------------- */

/* A call's lifetime: the caller's core pushes `m` (run) to the callee,
 * whose reply comes back in the same `m`.  An interrupted caller pushes
 * `cm` (cancel) too, whose acknowledgement comes back in `cm`; it frees
 * the call once both have come back, so the callee never touches freed
 * memory and fn never outlives the caller's arguments. */
struct call {
	struct cio__msg m;
	struct cio__msg cm;
	cio_fn *fn;
	void *arg;
	void *result;
	int err;
	cio_task_t task;          /* the callee's core: the task running fn */
	bool ended;               /* the callee's core: fn has returned */
	bool done;                /* the caller's core: the reply came */
	bool acked;               /* the caller's core: the cancel came back */
	struct cio__rt *from;
	struct cio__task *waiter;
};

/* On the caller's core: the reply, or the cancel's acknowledgement. */
static void call_reply(struct cio__rt *rt, struct cio__msg *m)
{
	struct call *c = (struct call *)m;
	(void)rt;
	c->done = true;
	cio__wake(c->waiter, 0);
}

static void call_ack(struct cio__rt *rt, struct cio__msg *m)
{
	struct call *c = (struct call *)((char *)m - offsetof(struct call, cm));
	(void)rt;
	c->acked = true;
	cio__wake(c->waiter, 0);
}

static void reply_reject(struct cio__msg *m)
{
	(void)m;
	abort(); /* cannot be: the caller waits, so its core runs */
}

/* Sends m back to the caller with `handle`. */
static void send_back(struct call *c, struct cio__msg *m,
		      void (*handle)(struct cio__rt *, struct cio__msg *))
{
	m->handle = handle;
	m->reject = reply_reject;
	if (cio__inbox_push(c->from, m) < 0)
		abort(); /* cannot be: the caller waits, so its core runs */
}

static void *call_task(void *arg)
{
	struct call *c = arg;
	c->result = c->fn(c->arg);
	c->ended = true;
	send_back(c, &c->m, call_reply);
	return NULL;
}

/* On the callee's core: start the task. */
static void call_run(struct cio__rt *rt, struct cio__msg *m)
{
	struct call *c = (struct call *)m;
	(void)rt;
	cio_task_t t = cio_spawn_with(&(cio_spawn_opts){.name = "core-call", .detached = true},
				      call_task, c);
	if (t < 0) {
		c->err = (int)t;
		c->ended = true;
		send_back(c, &c->m, call_reply);
		return;
	}
	c->task = t;
}

static void call_reject(struct cio__msg *m)
{
	struct call *c = (struct call *)m;
	c->err = -ESHUTDOWN;
	c->ended = true;
	send_back(c, &c->m, call_reply);
}

/* On the callee's core: the caller was interrupted; so is fn's task, if
 * it still runs (the run message came first: one inbox, in order). */
static void call_cancel(struct cio__rt *rt, struct cio__msg *m)
{
	struct call *c = (struct call *)((char *)m - offsetof(struct call, cm));
	(void)rt;
	if (!c->ended)
		cio_cancel(c->task);
	send_back(c, &c->cm, call_ack);
}

static void cancel_reject(struct cio__msg *m)
{
	/* The callee's core stopped: no task of it runs any more. */
	struct call *c = (struct call *)((char *)m - offsetof(struct call, cm));
	send_back(c, &c->cm, call_ack);
}

int cio_core_call_drop(int core, cio_fn *fn, void *arg, cio_drop_fn *drop, void **result)
{
	struct cio__task *self = cio__self_or_die("cio_core_call");
	struct cio__rt *rt = cio__rt_cur;
	if (core < 0 || core >= rt->core_count || !fn)
		return -EINVAL;
	/* Already interrupted: nothing is sent. */
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;
	struct call *c = cio__calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->m.handle = call_run;
	c->m.reject = call_reject;
	c->fn = fn;
	c->arg = arg;
	c->from = rt;
	c->waiter = self;
	struct cio__rt *to = core_rt(rt, core);
	if ((rc = cio__inbox_push(to, &c->m)) < 0) {
		free(c);
		return rc;
	}
	/* Another core will wake us; a call to our own core is this
	 * runtime's to finish, and a deadlock there is one to report. */
	size_t remote = to != rt;
	rt->peer_waits += remote;
	rc = cio__park(self);
	bool acking = false;
	if (!c->done && rc < 0) {
		/* Interrupted: cancel fn's task, then wait, deaf to further
		 * interruptions, until it has ended and the cancel came back. */
		c->cm.handle = call_cancel;
		c->cm.reject = cancel_reject;
		acking = cio__inbox_push(to, &c->cm) == 0;
	}
	int interrupted = rc;
	while (!c->done || (acking && !c->acked))
		cio__park_hard(self);
	rt->peer_waits -= remote;
	if (interrupted < 0 && c->err == 0 && !acking) {
		/* The reply came with the interruption: keep the result,
		 * the interruption shows on the next blocking call. */
		interrupted = 0;
	}
	rc = c->err;
	if (rc == 0 && interrupted < 0) {
		rc = interrupted;
		if (drop)
			drop(arg, c->result);
	} else if (rc == 0 && result) {
		*result = c->result;
	}
	free(c);
	return rc;
}

int cio_core_call(int core, cio_fn *fn, void *arg, void **result)
{
	return cio_core_call_drop(core, fn, arg, NULL, result);
}

struct post {
	struct cio__msg m;
	cio_fn *fn;
	void *arg;
};

static void *post_task(void *arg)
{
	struct post p = *(struct post *)arg;
	free(arg);
	return p.fn(p.arg);
}

static void post_run(struct cio__rt *rt, struct cio__msg *m)
{
	(void)rt;
	cio_task_t t = cio_spawn_with(&(cio_spawn_opts){.name = "core-post", .detached = true},
				      post_task, m);
	if (t < 0) {
		fprintf(stderr, "coreio: core %d dropped a post: %s\n",
			rt->core_id, cio_strerror((int)t));
		free(m);
	}
}

static void post_reject(struct cio__msg *m)
{
	free(m);
}

int cio_core_post(int core, cio_fn *fn, void *arg)
{
	struct cio__rt *rt = cio__rt_cur;
	if (!rt)
		return -EPERM;
	if (core < 0 || core >= rt->core_count || !fn)
		return -EINVAL;
	struct post *p = cio__malloc(sizeof *p);
	if (!p)
		return -ENOMEM;
	p->m.handle = post_run;
	p->m.reject = post_reject;
	p->fn = fn;
	p->arg = arg;
	int rc = cio__inbox_push(core_rt(rt, core), &p->m);
	if (rc < 0)
		free(p);
	return rc;
}

/* --- balanced accept ---------------------------------------------------------- */

struct handoff {
	struct cio__msg m;
	cio_fn *fn;
	int fd;
};

static void *handoff_task(void *arg)
{
	struct handoff h = *(struct handoff *)arg;
	free(arg);
	cio_fd_adopt(h.fd); /* new to this core's driver */
	return h.fn((void *)(intptr_t)h.fd);
}

static void handoff_run(struct cio__rt *rt, struct cio__msg *m)
{
	struct handoff *h = (struct handoff *)m;
	cio_task_t t = cio_spawn_with(&(cio_spawn_opts){.name = "conn", .detached = true},
				      handoff_task, h);
	if (t < 0) {
		fprintf(stderr, "coreio: core %d dropped a connection: %s\n",
			rt->core_id, cio_strerror((int)t));
		close(h->fd);
		free(h);
	}
}

static void handoff_reject(struct cio__msg *m)
{
	close(((struct handoff *)m)->fd); /* the core stopped: never leak it */
	free(m);
}

int cio_accept_spread(int lfd, cio_fn *fn)
{
	cio__self_or_die("cio_accept_spread");
	struct cio__rt *rt = cio__rt_cur;
	if (!fn)
		return -EINVAL;
	for (int next = 0;; next = (next + 1) % rt->core_count) {
		int fd = cio_accept(lfd, NULL);
		if (fd < 0) {
			if (fd == -EMFILE || fd == -ENFILE || fd == -ECONNABORTED ||
			    fd == -ENOBUFS || fd == -ENOMEM || fd == -EPERM)
				continue; /* passing trouble: cio_accept() paused */
			return fd;
		}
		struct handoff *h = cio__malloc(sizeof *h);
		if (!h) {
			cio_close(fd);
			continue;
		}
		h->m.handle = handoff_run;
		h->m.reject = handoff_reject;
		h->fn = fn;
		h->fd = fd;
		/* A core that has stopped is skipped: try the next ones. */
		int tries = 0;
		while (cio__inbox_push(core_rt(rt, next), &h->m) < 0 && ++tries < rt->core_count)
			next = (next + 1) % rt->core_count;
		if (tries == rt->core_count)
			handoff_reject(&h->m);
	}
}

/* --- the drain ---------------------------------------------------------------- */

struct stop {
	struct cio__msg m;
	bool force; /* cancel everything now */
	bool kept;  /* the group's own (group_stop()): not freed */
};

/* Cancels every task but the runtime's own (idle_only: those that said
 * they are idle, cio_drain_idle()). */
static void cancel_all(struct cio__rt *rt, bool idle_only)
{
	for (uint32_t i = 0; i < rt->nslots; i++) {
		struct cio__slot *s = &rt->slots[i];
		if (s->kind == CIO__SLOT_LIVE && !s->u.task->daemon &&
		    (!idle_only || s->u.task->drain_idle))
			cio__cancel_task(s->u.task);
	}
}

/* A daemon on each draining core: shuts its listeners down, gives the
 * other tasks the drain timeout to finish, then cancels them.
 *
 * shutdown(), not close(): the kernel refuses new connections and wakes
 * accept() all the same, but the fd stays the owner's to close, so a task
 * that was busy elsewhere cannot later accept on a number that a new
 * socket has taken meanwhile. */
static void *drain_task(void *arg)
{
	struct cio__rt *rt = cio__rt_cur;
	(void)arg;
	cio__io_shut_listeners(rt);
	if (cio_sleep(rt->drain_timeout) == 0)
		cancel_all(rt, false);
	return NULL;
}

static void stop_run(struct cio__rt *rt, struct cio__msg *m)
{
	bool force = ((struct stop *)m)->force;
	if (!((struct stop *)m)->kept)
		free(m);
	if (force) {
		cancel_all(rt, false);
		return;
	}
	if (rt->draining)
		return;
	rt->draining = true;
	struct cio__waiter *w;
	while ((w = cio__waitq_first(&rt->drain_waiters))) {
		w->result = 0; /* for a select: this case completed */
		cio__waitq_remove(w);
		cio__wake(w->task, 0);
	}
	cancel_all(rt, true); /* idle: nothing to finish */
	if (cio__spawn_daemon("drain", drain_task, NULL) < 0)
		cancel_all(rt, false); /* no stack for an orderly drain */
}

static void stop_reject(struct cio__msg *m)
{
	if (!((struct stop *)m)->kept)
		free(m);
}

/* Sends the group's drain (or forced stop) to every core: the first of
 * each kind from the preallocated set.  A later drain changes nothing;
 * a later forced stop (a third signal) cancels again what was started
 * since, with messages allocated now (none when memory is short). */
static void group_stop(struct cio__group *g, bool force)
{
	bool first = !atomic_exchange(&g->stopping[force], true);
	if (!first && !force)
		return;
	for (int i = 0; i < g->n; i++) {
		struct stop *m = first ? &g->stops[(force ? g->n : 0) + i] : cio__malloc(sizeof *m);
		if (!m)
			return;
		*m = (struct stop){.m = {.handle = stop_run, .reject = stop_reject},
				   .force = force, .kept = first};
		if (cio__inbox_push(g->rts[i], &m->m) < 0 && !first)
			free(m); /* that core has ended */
	}
}

int cio_drain(void)
{
	struct cio__rt *rt = cio__rt_cur;
	if (!rt)
		return -EPERM;
	if (rt->group) {
		group_stop(rt->group, false);
		return 0;
	}
	/* A lone runtime: through its inbox all the same, so that the drain
	 * starts at the next tick, not inside the caller. */
	struct stop *s = cio__malloc(sizeof *s);
	if (!s)
		return -ENOMEM;
	*s = (struct stop){.m = {.handle = stop_run, .reject = stop_reject}};
	if (cio__inbox_push(rt, &s->m) < 0)
		free(s);
	return 0;
}

void cio_drain_idle(bool idle)
{
	struct cio__rt *rt = cio__rt_cur;
	struct cio__task *self = rt ? rt->current : NULL;
	if (!self)
		return;
	self->drain_idle = idle;
	if (idle && rt->draining && !self->daemon)
		cio__cancel_task(self);
}

bool cio_draining(void)
{
	return cio__rt_cur && cio__rt_cur->draining;
}

int cio_drain_wait(void)
{
	struct cio__task *self = cio__self_or_die("cio_drain_wait");
	struct cio__rt *rt = cio__rt_cur;
	int rc = cio__interrupted(self);
	if (rc < 0 || rt->draining)
		return rc;
	struct cio__waiter w;
	cio__waiter_init(&w, self);
	cio__waitq_push(&rt->drain_waiters, &w);
	/* Under cio_run() only a task of this runtime can end the wait, so
	 * a lone waiter is a deadlock that the scheduler reports.  In a
	 * group a signal may end it (the watcher turns SIGINT and SIGTERM
	 * into a drain): never a deadlock; without the watcher (no_signals)
	 * only another core can, and a group stuck all over is one. */
	size_t *waits = !rt->group ? NULL
		      : rt->group->cfg->no_signals ? &rt->peer_waits : &rt->remote_waits;
	if (waits)
		++*waits;
	rc = cio__park(self);
	if (waits)
		--*waits;
	if (cio__waiter_queued(&w))
		cio__waitq_remove(&w);
	return rt->draining ? 0 : rc;
}

/* --- signals ------------------------------------------------------------------- */

/* cio_signal_wait(); quiet: the wait is the signal watcher's, whose read
 * is not I/O that keeps the group from being found deadlocked
 * (cio__quiet_io()). */
static int signal_wait(const sigset_t *set, bool quiet)
{
	struct cio__rt *rt = cio__rt_cur;
	int fd = cio__sigfd_open(set);
	if (fd < 0)
		return fd;
	cio_fd_adopt(fd);
	int rc;
	/* -EAGAIN: another waiter (another core's) took the signal first. */
	for (;;) {
		if (quiet)
			rt->quiet_waiter = rt->current;
		rc = cio_wait_readable(fd);
		if (quiet)
			rt->quiet_waiter = NULL;
		if (rc < 0 || (rc = cio__sigfd_take(fd)) != -EAGAIN)
			break;
	}
	cio__sigfd_release(fd);
	cio_close(fd);
	return rc;
}

int cio_signal_wait(const sigset_t *set)
{
	cio__self_or_die("cio_signal_wait");
	if (!set)
		return -EINVAL;
	return signal_wait(set, false);
}

/* A daemon on every core, so that signals are heard while any core runs
 * (a process-directed signal is read by one of them): the first SIGINT or
 * SIGTERM drains, the second cancels everything. */
static void *watch_signals(void *arg)
{
	struct cio__group *g = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* Its wait is for the world outside, not a task: deadlock detection
	 * neither counts it as progress to come nor cancels it. */
	cio__rt_cur->current->outside = true;
	for (;;) {
		int sig = signal_wait(&set, true);
		if (sig == -ECANCELED || sig == -ETIMEDOUT)
			return NULL; /* the runtime is ending */
		if (sig < 0) {
			/* No fd or memory for the signalfd: try again soon. */
			if (cio_sleep(10 * CIO_MS) < 0)
				return NULL;
			continue;
		}
		group_stop(g, atomic_fetch_add(&g->signals, 1) > 0);
	}
}

/* --- the launcher ----------------------------------------------------------------- */

struct start {
	struct cio__group *g;
	int k;
};

static void *core_main(void *arg)
{
	struct cio__group *g = arg;
	if (!g->cfg->no_signals)
		cio__spawn_daemon("signals", watch_signals, g);
	return g->main(g->arg);
}

static void *core_thread(void *p)
{
	struct start *st = p;
	struct cio__group *g = st->g;
	int k = st->k;
	if (!g->cfg->no_pin && g->ncpus > 0) {
		cio__cpu_pin(g->cpus[k % g->ncpus]);
	}
	const cio_config *cfg = g->cfg->core ? &g->cfg->core[k] : &g->cfg->all;
	int err = 0;
	struct cio__rt *rt = cio__runtime_new(cfg, &err);
	if (rt) {
		rt->group = g;
		cio__dl_join(rt, &g->dl);
		rt->core_id = k;
		rt->core_count = g->n;
		rt->drain_timeout = g->cfg->drain_timeout > 0 ? g->cfg->drain_timeout
							      : DEFAULT_DRAIN;
	} else {
		int none = 0;
		atomic_compare_exchange_strong(&g->failed, &none, err);
	}
	g->rts[k] = rt;
	/* Nobody runs (nor sends a message) before every core exists. */
	pthread_mutex_lock(&g->lock);
	g->arrived++;
	pthread_cond_broadcast(&g->ready);
	while (!g->go)
		pthread_cond_wait(&g->ready, &g->lock);
	pthread_mutex_unlock(&g->lock);
	intptr_t rc = atomic_load(&g->failed);
	if (rc == 0) {
		rc = cio__rt_run(rt, core_main, g);
		/* Its main could not start (memory): the group cannot run as
		 * asked, so the other cores drain, and the error is the
		 * group's.  Else one of them might wait for this core for
		 * ever. */
		if (rc < 0 && rc != -EDEADLK)
			group_stop(g, false);
	}
	return (void *)rc;
}

static int affinity_cpus(struct cio__group *g)
{
	int room = cio__cpus_max();
	g->cpus = cio__malloc(sizeof(int) * (size_t)room);
	if (!g->cpus)
		return -ENOMEM;
	int n = cio__cpus_allowed(g->cpus, room);
	if (n < 0)
		return n;
	g->ncpus = n;
	return 0;
}

int cio_cores_available(void)
{
	/* A core's thread is pinned to one CPU: the group asked before. */
	if (cio__rt_cur && cio__rt_cur->group)
		return cio__rt_cur->group->ncpus;
	struct cio__group g = {0};
	int rc = affinity_cpus(&g);
	free(g.cpus);
	return rc < 0 ? rc : g.ncpus;
}

int cio_run_cores_with(const cio_cores_config *cfg, int n, cio_fn *main, void *arg)
{
	static const cio_cores_config defaults;
	if (!cfg)
		cfg = &defaults;
	if (n < 0 || !main)
		return -EINVAL;
	if (cio__rt_cur)
		return -EBUSY;
	struct cio__group g = {.cfg = cfg, .main = main, .arg = arg};
	int rc = affinity_cpus(&g);
	if (rc < 0)
		return rc;
	g.n = n ? n : g.ncpus;
	g.rts = cio__calloc((size_t)g.n, sizeof *g.rts);
	pthread_t *th = cio__calloc((size_t)g.n, sizeof *th);
	struct start *st = cio__calloc((size_t)g.n, sizeof *st);
	g.stops = cio__calloc(2 * (size_t)g.n, sizeof *g.stops);
	if (!g.rts || !th || !st || !g.stops) {
		rc = -ENOMEM;
		goto out;
	}
	sigset_t sigs, old;
	sigemptyset(&sigs);
	if (!cfg->no_signals) {
		sigaddset(&sigs, SIGINT);
		sigaddset(&sigs, SIGTERM);
	}
	/* Threads inherit the mask: the signals stay pending for the
	 * cores' watchers (cio_signal_wait) instead of killing the process. */
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	pthread_mutex_init(&g.lock, NULL);
	pthread_cond_init(&g.ready, NULL);
	cio__dl_group_init(&g.dl, g.rts, g.n);
	int started = 0;
	for (; started < g.n; started++) {
		st[started] = (struct start){&g, started};
		if (pthread_create(&th[started], NULL, core_thread, &st[started]))
			break;
	}
	pthread_mutex_lock(&g.lock);
	while (g.arrived < started)
		pthread_cond_wait(&g.ready, &g.lock);
	if (started < g.n)
		atomic_store(&g.failed, -EAGAIN); /* all cores or none */
	g.go = true;
	pthread_cond_broadcast(&g.ready);
	pthread_mutex_unlock(&g.lock);
	/* The first core's error; a deadlock (the group's, broken on every
	 * core it stuck) only when no core had another error. */
	bool deadlocked = false;
	for (int k = 0; k < started; k++) {
		void *r;
		pthread_join(th[k], &r);
		if ((intptr_t)r == -EDEADLK)
			deadlocked = true;
		else if (rc == 0 && (intptr_t)r < 0)
			rc = (int)(intptr_t)r;
	}
	if (rc == 0)
		rc = atomic_load(&g.failed);
	if (rc == 0 && deadlocked)
		rc = -EDEADLK;
	for (int k = 0; k < g.n; k++)
		if (g.rts[k])
			cio__runtime_free(g.rts[k]);
	pthread_cond_destroy(&g.ready);
	pthread_mutex_destroy(&g.lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
out:
	free(st);
	free(th);
	free(g.stops);
	free(g.rts);
	free(g.cpus);
	return rc;
}

int cio_run_cores(int n, cio_fn *main, void *arg)
{
	return cio_run_cores_with(NULL, n, main, arg);
}
