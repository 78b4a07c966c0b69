/* sched.c - the per-thread scheduler: run queue, ticks, parking and
 * waking, deadlines and cancellation, and cio_run().
 *
 * A tick: fire due timers; if nothing is runnable, wait in the driver until
 * the next timer or I/O event; else poll the driver if I/O is in flight.
 * Then run each task that is runnable at that moment once, in FIFO order.
 * Tasks woken or yielding during the tick queue behind and run next tick,
 * so a task that yields in a loop cannot keep timers and I/O waiting.
 *
 * Within a tick a parking task switches straight to the next runnable task
 * (one switch, not two through the scheduler).  The scheduler's own context
 * runs between ticks, and to recycle the stack of a task that finished. */
#include "rt.h"
#include "../platform/clock.h"
#include "../platform/context.h"
#include "../platform/fiber.h"
#include "overflow.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__thread struct cio__rt *cio__rt_cur;

void cio__outside_task(const char *call)
{
	fprintf(stderr, "coreio: %s() called outside a task; "
			"blocking calls must run inside cio_run()\n", call);
	abort();
}

int64_t cio_now(void)
{
	return cio__clock_ns();
}

/* --- run queue ------------------------------------------------------- */

static inline void runq_push(struct cio__rt *rt, struct cio__task *t)
{
	t->next = NULL;
	if (rt->runq_tail)
		rt->runq_tail->next = t;
	else
		rt->runq_head = t;
	rt->runq_tail = t;
	rt->runq_len++;
}

static inline struct cio__task *runq_pop(struct cio__rt *rt)
{
	struct cio__task *t = rt->runq_head;
	if (t) {
		rt->runq_head = t->next;
		if (!rt->runq_head)
			rt->runq_tail = NULL;
		rt->runq_len--;
	}
	return t;
}

void cio__runq_add(struct cio__rt *rt, struct cio__task *t)
{
	runq_push(rt, t);
}

/* --- switching ------------------------------------------------------- */

/* The task to switch to from a task that parks, yields or ends: the next
 * of this tick, or NULL for the scheduler.  A tick boundary with no timer
 * armed, no I/O in flight and no message only refills the budget: that is
 * done here, sparing two switches through the scheduler's context. */
static inline struct cio__task *pick_next(struct cio__rt *rt)
{
	if (!rt->budget && rt->runq_len && !rt->timers.n &&
	    !rt->inflight && !cio__inbox_pending(rt)) {
		rt->stats.ticks++;
		rt->budget = rt->runq_len;
	}
	struct cio__task *next = rt->budget ? runq_pop(rt) : NULL;
	if (next)
		rt->budget--;
	return next;
}

/* Leaves the running task `self` for the next task of this tick, or for
 * the scheduler.  Returns when someone switches back to self. */
static inline void switch_out(struct cio__rt *rt, struct cio__task *self)
{
	struct cio__task *next = pick_next(rt);
	void *fake;
	if (next == self) {
		/* Alone in the new tick (a yield): keep running. */
		cio__set_current(rt, self);
		return;
	}
	cio__count_switch(rt);
	if (next) {
		cio__set_current(rt, next);
		cio__fiber_leave(&fake, next->stack.base, next->stack.size);
		cio__tsan_switch_to(next);
		cio__ctx_switch(&self->sp, next->sp);
	} else {
		cio__set_current(rt, NULL);
		cio__fiber_leave(&fake, rt->sched_stack_bottom, rt->sched_stack_size);
		cio__tsan_switch_to(rt);
		cio__ctx_switch(&self->sp, rt->sched_sp);
	}
	cio__fiber_enter(fake);
}

/* From the scheduler's context into task t, until it leaves. */
static void run_task(struct cio__rt *rt, struct cio__task *t)
{
	void *fake;
	cio__set_current(rt, t);
	cio__count_switch(rt);
	cio__fiber_leave(&fake, t->stack.base, t->stack.size);
	cio__tsan_switch_to(t);
	cio__ctx_switch(&rt->sched_sp, t->sp);
	cio__fiber_enter(fake);
}

#define TRIM_PERIOD CIO_SEC

static void trim_fire(struct cio__timer *tm)
{
	struct cio__rt *rt = cio__rt_cur;
	if (cio__stack_trim(&rt->stacks))
		cio__timer_arm(rt, tm, cio__clock_ns() + TRIM_PERIOD);
}

/* The end of every task.  Its stack goes back to the cache before the
 * task leaves it: only a spawn takes a stack from the cache, and none
 * runs before the switch below has left this one.  The cache keeps its
 * link in the stack's reserved top bytes, above the task's record, and
 * the switch saves registers below the record, into a frame nobody reads
 * again.  Then on to the next task directly, as a park would. */
_Noreturn void cio__task_exit(struct cio__rt *rt, struct cio__task *self)
{
	/* No local here may have its address taken: this frame never
	 * returns, and under ASan the redzones of such locals would stay
	 * poisoned for the stack's next task. */
	cio__stack_put(&rt->stacks, self->stack.base, self->stack.size,
		       self->stack.valgrind_id);
	/* Stacks idle beyond the cache go back to the kernel once they have
	 * stayed idle a whole period: waves of tasks reuse them for free. */
	if (rt->stacks.cached > rt->stacks.cache_max &&
	    rt->trim_timer.slot == CIO__TIMER_IDLE)
		cio__timer_arm(rt, &rt->trim_timer, cio__clock_ns() + TRIM_PERIOD);
	struct cio__task *next = pick_next(rt);
	cio__count_switch(rt);
	cio__set_current(rt, next);
	if (next) {
		cio__fiber_leave(NULL, next->stack.base, next->stack.size);
		cio__tsan_switch_to(next);
		cio__tsan_fiber_free(self); /* no longer current: it may go */
		cio__ctx_switch(&rt->exit_sp, next->sp);
	} else {
		cio__fiber_leave(NULL, rt->sched_stack_bottom, rt->sched_stack_size);
		cio__tsan_switch_to(rt);
		cio__tsan_fiber_free(self);
		cio__ctx_switch(&rt->exit_sp, rt->sched_sp);
	}
	abort(); /* nobody switches back to a finished task */
}

/* --- parking and waking ------------------------------------------------ */

void cio__wake(struct cio__task *t, int code)
{
	if (t->state == CIO__RUNNABLE)
		return;
	t->state = CIO__RUNNABLE;
	t->wake = code;
	runq_push(cio__rt_cur, t);
}

void cio__deadline_fire(struct cio__timer *tm)
{
	tm->task->deadline_hit = true; /* for cio_strerror() */
	cio__wake(tm->task, -ETIMEDOUT);
}

int cio__park(struct cio__task *self)
{
	struct cio__rt *rt = cio__rt_cur;
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;
	bool timed = self->deadline != CIO_NEVER;
	if (timed)
		cio__timer_arm(rt, &self->dl_timer, self->deadline);
	self->state = CIO__PARKED;
	switch_out(rt, self);
	if (timed)
		cio__timer_disarm(rt, &self->dl_timer);
	/* A cancel beats a deadline that fired in the same tick. */
	if (self->wake == -ETIMEDOUT && self->cancel && !self->shielded)
		return -ECANCELED;
	return self->wake;
}

int cio__park_hard(struct cio__task *self)
{
	self->state = CIO__PARKED_HARD;
	switch_out(cio__rt_cur, self);
	return self->wake;
}

int cio_yield(void)
{
	struct cio__task *self = cio__self_or_die("cio_yield");
	struct cio__rt *rt = cio__rt_cur;
	runq_push(rt, self);
	switch_out(rt, self);
	return cio__interrupted(self);
}

/* --- sleeping ------------------------------------------------------------ */

static void sleep_fire(struct cio__timer *tm)
{
	cio__wake(tm->task, 0);
}

static int sleep_until(struct cio__task *self, int64_t at)
{
	struct cio__rt *rt = cio__rt_cur;
	if (at <= cio__clock_ns())
		return cio_yield();
	struct cio__timer tm = {.slot = CIO__TIMER_IDLE, .fire = sleep_fire, .task = self};
	cio__timer_arm(rt, &tm, at);
	int rc = cio__park(self);
	cio__timer_disarm(rt, &tm);
	return rc;
}

int cio_sleep_until(int64_t at)
{
	return sleep_until(cio__self_or_die("cio_sleep_until"), at);
}

int cio_sleep(int64_t ns)
{
	struct cio__task *self = cio__self_or_die("cio_sleep");
	int64_t now = cio__clock_ns();
	return sleep_until(self, ns > CIO_NEVER - now ? CIO_NEVER : now + ns);
}

int cio_interval_init(cio_interval *iv, int64_t period)
{
	if (period <= 0)
		return -EINVAL;
	iv->period = period;
	iv->next = cio__clock_ns() + period;
	return 0;
}

int64_t cio_interval_wait(cio_interval *iv)
{
	int rc = sleep_until(cio__self_or_die("cio_interval_wait"), iv->next);
	if (rc < 0)
		return rc;
	int64_t late = cio__clock_ns() - iv->next;
	int64_t ticks = 1 + (late > 0 ? late / iv->period : 0);
	iv->next += ticks * iv->period;
	return ticks;
}

/* --- deadlines and cancellation ------------------------------------------ */

/* A misused scope: in a debug build of the library, stop at once, where
 * the bug is; otherwise the call reports -EINVAL. */
static int scope_misuse(struct cio__task *self, const char *what)
{
#ifndef NDEBUG
	fprintf(stderr, "coreio: task %s: %s\n", self->name[0] ? self->name : "(unnamed)",
		what);
	abort();
#else
	(void)self, (void)what;
	return -EINVAL;
#endif
}

static int64_t scope_push(struct cio__task *self, int64_t deadline, bool shield)
{
	if (self->nscopes == self->capscopes) {
		uint32_t n = 2 * self->capscopes;
		struct cio__scope *v = self->scopes == self->scope_inline ? NULL : self->scopes;
		v = cio__realloc(v, n * sizeof *v);
		if (!v)
			return -ENOMEM; /* nothing entered; popping it does nothing */
		if (self->scopes == self->scope_inline)
			memcpy(v, self->scope_inline, sizeof self->scope_inline);
		self->scopes = v;
		self->capscopes = n;
	}
	struct cio__scope *sc = &self->scopes[self->nscopes++];
	sc->saved = self->deadline;
	sc->asked = deadline;
	sc->token = ++self->scope_serial;
	sc->shield = shield;
	if (shield) {
		/* Its own deadline, in place of (not within) the outer one. */
		self->deadline = deadline;
		self->shielded++;
	} else if (deadline < self->deadline) {
		self->deadline = deadline;
	}
	return sc->token;
}

int64_t cio_deadline_push(int64_t deadline)
{
	return scope_push(cio__self_or_die("cio_deadline_push"), deadline, false);
}

int64_t cio_timeout_push(int64_t timeout_ns)
{
	int64_t now = cio__clock_ns();
	int64_t at = timeout_ns > CIO_NEVER - now ? CIO_NEVER : now + timeout_ns;
	return scope_push(cio__self_or_die("cio_timeout_push"), at, false);
}

int64_t cio_shield_push(int64_t timeout_ns)
{
	int64_t now = cio__clock_ns();
	int64_t at = timeout_ns > CIO_NEVER - now ? CIO_NEVER : now + timeout_ns;
	return scope_push(cio__self_or_die("cio_shield_push"), at, true);
}

/* The index of the scope `token` opened, or -1. */
static int scope_find(const struct cio__task *self, int64_t token)
{
	for (uint32_t i = self->nscopes; i-- > 0;)
		if (self->scopes[i].token == token)
			return (int)i;
	return -1;
}

int cio_deadline_pop(int64_t token)
{
	struct cio__task *self = cio__self_or_die("cio_deadline_pop");
	if (token < 0)
		return 0; /* a push that failed entered nothing */
	int i = scope_find(self, token);
	if (i < 0)
		return scope_misuse(self, "cio_deadline_pop() of a scope not pushed, or popped already");
	/* Leaves the scope and every one inside it, so that no stale,
	 * shorter deadline stays in force. */
	self->deadline = self->scopes[i].saved;
	bool inner = (uint32_t)i + 1 != self->nscopes;
	for (uint32_t k = (uint32_t)i; k < self->nscopes; k++)
		self->shielded -= self->scopes[k].shield;
	self->nscopes = (uint32_t)i;
	return inner ? scope_misuse(self, "cio_deadline_pop() out of order: an inner scope is still pushed")
		     : 0;
}

bool cio_deadline_expired(int64_t token)
{
	struct cio__task *self = cio__self_or_die("cio_deadline_expired");
	int i = scope_find(self, token);
	if (i < 0)
		return false;
	/* Its own deadline, not the effective one: a shorter outer deadline
	 * that passed is the outer scope's. */
	int64_t at = self->scopes[i].asked;
	return at != CIO_NEVER && cio__clock_ns() >= at;
}

void cio__scopes_end(struct cio__task *self)
{
	if (self->nscopes)
		scope_misuse(self, "ended with a deadline scope still pushed "
				   "(a return between cio_deadline_push() and cio_deadline_pop()?)");
	if (self->scopes != self->scope_inline)
		free(self->scopes);
	self->scopes = self->scope_inline;
	self->nscopes = 0;
}

int64_t cio_deadline(void)
{
	struct cio__rt *rt = cio__rt_cur;
	return rt && rt->current ? rt->current->deadline : CIO_NEVER;
}

int cio_cancel(cio_task_t id)
{
	struct cio__rt *rt = cio__rt_cur;
	struct cio__task *t = rt ? cio__slot_task(rt, id) : NULL;
	if (!t)
		return -ESRCH;
	cio__cancel_task(t);
	return 0;
}

bool cio_cancelled(void)
{
	struct cio__rt *rt = cio__rt_cur;
	return rt && rt->current && rt->current->cancel;
}

bool cio_cancel_clear(void)
{
	struct cio__rt *rt = cio__rt_cur;
	if (!rt || !rt->current)
		return false;
	bool was = rt->current->cancel;
	rt->current->cancel = false;
	return was;
}

/* --- the loop ------------------------------------------------------------ */

/* Once only the runtime's own tasks are left, they are told to end. */
static void cancel_daemons(struct cio__rt *rt)
{
	rt->daemons_cancelled = true;
	for (uint32_t i = 0; i < rt->nslots; i++) {
		struct cio__slot *s = &rt->slots[i];
		if (s->kind == CIO__SLOT_LIVE && s->u.task->daemon)
			cio__cancel_task(s->u.task);
	}
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/* Before sleeping, watches for work for up to idle_poll_ns (or until the
 * next timer): a message or completion that comes meanwhile is taken
 * without the tens of microseconds a sleeping CPU takes to wake, and
 * senders, finding us notified, skip their wake-up syscall.  Returns
 * whether work came. */
static bool idle_poll(struct cio__rt *rt, int64_t next)
{
	int64_t end = cio__clock_ns() + rt->idle_poll_ns;
	if (next < end)
		end = next;
	atomic_store(&rt->inbox.notified, 1); /* awake: no need to wake us */
	for (unsigned spin = 0;; spin++) {
		if (cio__inbox_pending(rt)) {
			cio__inbox_drain(rt);
			if (rt->runq_len)
				return true;
			atomic_store(&rt->inbox.notified, 1);
		}
		if (rt->inflight && (spin & 15) == 0) {
			rt->poller->wait(rt, 0);
			if (rt->runq_len)
				return true;
		}
		if ((spin & 15) == 0 && cio__clock_ns() >= end)
			return false;
		cpu_relax();
	}
}

/* Runs until no task is left (rt->deadlocked: a deadlock was broken). */
static void sched_loop(struct cio__rt *rt)
{
	for (;;) {
		if (rt->budget) {
			struct cio__task *t = runq_pop(rt);
			if (t) {
				rt->budget--;
				run_task(rt, t);
				continue;
			}
		}
		/* Tick boundary. */
		rt->stats.ticks++;
		if (cio__inbox_pending(rt))
			cio__inbox_drain(rt);
		if (rt->timers.n)
			cio__timers_run(rt, cio__clock_ns());
		if (!rt->live) {
			if (!rt->daemons)
				break;
			if (!rt->daemons_cancelled)
				cancel_daemons(rt);
		}
		if (!rt->runq_len) {
			int64_t next = cio__timers_next(rt);
			/* No timer, no I/O but the signal watcher's, and nothing
			 * expected from a thread detection cannot see.  Alone
			 * (not one of several cores), with nothing expected from
			 * another thread either, nothing can ever wake a task
			 * again; in a group, unless another core can. */
			bool stuck = next == CIO_NEVER && !rt->remote_waits &&
				     rt->inflight == cio__quiet_io(rt);
			if (stuck && !rt->group && !rt->peer_waits) {
				cio__deadlock_break(rt);
				continue;
			}
			if (rt->idle_poll_ns && idle_poll(rt, next)) {
				rt->budget = rt->runq_len;
				continue;
			}
			/* From here on a message must wake us: clear the flag
			 * (a sender may have set it for a message drained
			 * already), then look once more before sleeping. */
			atomic_store(&rt->inbox.notified, 0);
			/* The store must be seen before the load below is made
			 * (aarch64 may do a relaxed load first): else a sender
			 * that still saw the flag skips its wake while we see an
			 * empty inbox, and sleep. */
			atomic_thread_fence(memory_order_seq_cst);
			if (cio__inbox_pending(rt)) {
				cio__inbox_drain(rt);
				rt->budget = rt->runq_len;
				continue;
			}
			stuck = stuck && rt->dl;
			if (stuck && cio__dl_stuck(rt)) {
				/* A message came, or this core broke a deadlock
				 * of the whole group. */
				if (cio__inbox_pending(rt))
					cio__inbox_drain(rt);
				rt->budget = rt->runq_len;
				continue;
			}
			int64_t timeout = CIO_NEVER;
			if (next != CIO_NEVER) {
				timeout = next - cio__clock_ns();
				if (timeout < 0)
					timeout = 0;
			} else if (stuck && rt->dl_recheck) {
				timeout = rt->dl_recheck; /* the group may be */
			}
			rt->stats.driver_waits++;
			rt->poller->wait(rt, timeout);
			if (stuck)
				cio__dl_unstuck(rt);
			if (cio__inbox_pending(rt))
				cio__inbox_drain(rt);
			if (rt->timers.n)
				cio__timers_run(rt, cio__clock_ns());
		} else if (rt->inflight) {
			rt->poller->wait(rt, 0);
		}
		rt->budget = rt->runq_len;
	}
}

static void thread_stack_bounds(struct cio__rt *rt)
{
	if (cio__thread_stack(&rt->sched_stack_bottom, &rt->sched_stack_size) < 0) {
		rt->sched_stack_bottom = NULL;
		rt->sched_stack_size = 0;
	}
}

struct cio__rt *cio__rt_create(const cio_config *cfg, int *err)
{
	static const cio_config defaults;
	if (!cfg)
		cfg = &defaults;
	struct cio__rt *rt = cio__calloc(1, sizeof *rt);
	if (!rt) {
		*err = -ENOMEM;
		return NULL;
	}
	rt->free_slot = CIO__NO_SLOT;
	rt->trim_timer.slot = CIO__TIMER_IDLE;
	rt->trim_timer.fire = trim_fire;
	rt->stack_size = cfg->stack_size ? cfg->stack_size : 256 * 1024;
	rt->idle_poll_ns = cfg->idle_poll_ns > 0 ? cfg->idle_poll_ns : 0;
	rt->core_count = 1;
	rt->drain_timeout = 5 * CIO_SEC;
	rt->stall_ns = cio__stall_limit(cfg);
	cio__waitq_init(&rt->drain_waiters);
	cio__stack_pool_init(&rt->stacks, cfg->stack_cache ? cfg->stack_cache : 1024);
	thread_stack_bounds(rt);
	*err = 0;
	return rt;
}

int cio__rt_run(struct cio__rt *rt, cio_fn *main, void *arg)
{
	cio__rt_cur = rt;
	cio__tsan_fiber_adopt(rt);
	cio__overflow_attach(rt);
	/* A watchdog that cannot start costs the reports, not the run. */
	if (cio__stall_attach(rt) < 0)
		fputs("coreio: stall reports off: cannot start the watchdog\n", stderr);
	int rc = 0;
	cio_task_t first = cio_spawn_with(&(cio_spawn_opts){.name = "main", .detached = true},
					  main, arg);
	if (first < 0)
		rc = (int)first;
	else
		sched_loop(rt);
	/* Messages that came too late are turned down (a call gets
	 * -ESHUTDOWN); then nothing can reach this runtime any more.  Wakes
	 * this runtime sent (replies, io_uring MSG_RINGs) must still leave. */
	cio__inbox_close(rt);
	rt->poller->quiesce(rt);
	while (rt->inflight)
		rt->poller->wait(rt, 0);
	cio__stall_detach(rt);
	cio__overflow_detach(rt);
	cio__rt_cur = NULL;
	/* Ended: stuck for good, as far as the group's detection goes.  Off
	 * the runtime: a wake it sends to another core must not wait in this
	 * ring (an io_uring MSG_RING) for an enter that never comes. */
	if (rt->dl)
		cio__dl_exit(rt);
	if (rc == 0 && rt->deadlocked)
		rc = -EDEADLK;
	return rc;
}

void cio__rt_destroy(struct cio__rt *rt)
{
	cio__tasks_fini(rt);
	cio__timers_fini(rt);
	cio__stack_pool_fini(&rt->stacks);
	free(rt);
}

void cio_stats_get(cio_stats *st)
{
	struct cio__rt *rt = cio__rt_cur;
	if (!rt) {
		memset(st, 0, sizeof *st);
		return;
	}
	*st = rt->stats;
	st->tasks_live = rt->live;
	st->stacks_mapped = rt->stacks.mapped;
	st->guard_pages_madvise = rt->stacks.madvise_guard;
	st->pool_queued = cio__blocking_queued();
}
