/* rt.h - the per-thread runtime, tasks and timers, as seen by the rest of
 * coreio (sync objects, drivers).  Nothing here is public.  The layers
 * above core (driver, I/O) keep their per-runtime state behind pointers
 * here that only they read. */
#ifndef CIO_CORE_RT_H
#define CIO_CORE_RT_H

#include "coreio.h"
#include "../platform/clock.h"
#include "../platform/fail.h"
#include "../platform/fiber.h"
#include "../platform/stack.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define CIO__NAME_MAX 24
#define CIO__SCOPES_INLINE 4

/* --- timers: a 4-ary min-heap of records the waiters own ------------- */

struct cio__timer;
typedef void cio__timer_fn(struct cio__timer *tm);

struct cio__timer {
	int64_t when;
	uint32_t slot;      /* index in the heap, or TIMER_IDLE */
	cio__timer_fn *fire;
	struct cio__task *task;
};
#define CIO__TIMER_IDLE UINT32_MAX

struct cio__timer_heap {
	struct cio__timer **v;
	uint32_t n, cap;
};

/* --- tasks ------------------------------------------------------------ */

enum cio__task_state {
	CIO__RUNNABLE, /* in the run queue, or running */
	CIO__PARKED,   /* waiting for cio__wake() */
	CIO__PARKED_HARD, /* waiting; cancel and deadline do not wake it */
};

/* A task's record lives at the top of its own stack. */
/* A deadline scope a task pushed (cio_deadline_push()). */
struct cio__scope {
	int64_t saved; /* the deadline before the push */
	int64_t asked; /* the deadline the push asked for */
	int64_t token; /* what the push returned */
	bool shield;   /* cio_shield_push(): cancellation held off */
};

struct cio__task {
	void *sp;                  /* saved stack pointer while switched out */
	struct cio__task *next;    /* run queue link */
	cio_fn *fn;
	void *arg;
	uint32_t slot;             /* index in the id table */
	uint8_t state;
	bool cancel;               /* cancellation requested */
	bool deadline_hit;         /* the last blocking call met the deadline */
	uint32_t shielded;         /* shield scopes pushed: cancel held off */
	bool drain_idle;           /* cio_drain_idle(true): a drain ends it at once */
	int wake;                  /* why the last park ended */
	int64_t deadline;          /* effective deadline, CIO_NEVER if none */
	struct cio__timer dl_timer; /* armed only while parked with a deadline */
	/* Deadline scopes pushed and not yet popped, innermost last: in
	 * scope_inline, or on the heap beyond CIO__SCOPES_INLINE. */
	struct cio__scope *scopes;
	uint32_t nscopes, capscopes;
	int64_t scope_serial;      /* tokens handed out so far */
	struct cio__scope scope_inline[CIO__SCOPES_INLINE];
	struct cio__stack stack;
	bool daemon;               /* the runtime's own: does not keep it alive */
	void *local;               /* a layer above's (the serve helper's
	                            * connection), NULL from the spawn */
	/* Waits for the world outside the runtimes (the signal watcher):
	 * a deadlock break leaves it parked (see rt->quiet_waiter). */
	bool outside;
	char name[CIO__NAME_MAX];
#ifdef CIO_TSAN
	void *tsan_fiber;          /* made at spawn, freed at exit */
#endif
};

#define CIO__NO_SLOT UINT32_MAX

enum cio__slot_kind { CIO__SLOT_FREE, CIO__SLOT_LIVE, CIO__SLOT_DONE };

/* One entry per task id.  A finished task that is still to be joined keeps
 * only this entry (its stack is already recycled). */
struct cio__slot {
	uint32_t gen;      /* bumped each time the entry is freed */
	uint8_t kind;      /* FREE, LIVE, DONE */
	bool detached;
	struct cio__task *joiner; /* the task parked in cio_join() */
	union {
		struct cio__task *task; /* LIVE */
		void *result;           /* DONE */
		uint32_t next_free;     /* FREE */
	} u;
};

/* --- messages between runtimes ------------------------------------------- */

struct cio__rt;

/* A message for another runtime (or this one, from another thread).  The
 * sender owns it until cio__inbox_push() succeeds; then the receiver does. */
struct cio__msg {
	struct cio__msg *next;
	/* Runs on the receiving runtime's thread, in its scheduler between
	 * ticks (not in a task): it may spawn and wake tasks, not block. */
	void (*handle)(struct cio__rt *rt, struct cio__msg *m);
	/* Runs, on the receiving thread, for a message the receiver took but
	 * will never handle because it is stopping. */
	void (*reject)(struct cio__msg *m);
};

#define CIO__INBOX_CLOSED ((struct cio__msg *)1)

/* A lock-free multi-producer stack, drained whole by its runtime. */
struct cio__inbox {
	_Atomic(struct cio__msg *) head;
	atomic_int notified; /* a wake is on its way: senders need not send one */
};

struct cio__group; /* the runtimes of one cio_run_cores() */

/* State a battery (src/ext/) keeps per runtime, made on its first use:
 * embedded in the battery's own record, found again by `key` (the address
 * of something of the battery's), and handed to `fini` when the runtime
 * ends.  The batteries sit above every layer runtime.c knows, so they
 * register themselves here instead of naming a hook there. */
struct cio__rt_ext {
	struct cio__rt_ext *next;
	const void *key;
	void (*fini)(struct cio__rt_ext *e);
};

/* The scheduler's view of the driver, which sits above core and sets this
 * when it opens (src/driver/driver.c). */
struct cio__poller {
	/* Hands queued work to the kernel, then waits up to timeout_ns (0:
	 * not at all; CIO_NEVER: until an event) and wakes the tasks whose
	 * I/O completed.  Returns the events handled, or a negated errno. */
	int (*wait)(struct cio__rt *rt, int64_t timeout_ns);
	/* Wakes `to` from any thread; `from` is the calling thread's
	 * runtime, or NULL off a runtime. */
	void (*wake)(struct cio__rt *from, struct cio__rt *to);
	/* The last task ended: lets go of work no task waits for (sends on
	 * their way out on fds left open), before the final waits. */
	void (*quiesce)(struct cio__rt *rt);
};

/* --- the runtime -------------------------------------------------------- */

struct cio__rt {
	struct cio__task *current;  /* NULL while the scheduler runs */
	struct cio__task *runq_head, *runq_tail;
	size_t runq_len;
	size_t budget;              /* tasks left to run in this tick */
	void *sched_sp;             /* the scheduler's saved context */
	void *exit_sp;              /* where an ending task's switch saves: unread */

	struct cio__timer_heap timers;
	struct cio__slot *slots;
	uint32_t nslots, free_slot;
	size_t live;                /* tasks spawned and not finished */
	size_t daemons;             /* runtime's own tasks, not counted in live */
	size_t timers_held;         /* armed timers no task owns (timers_hold) */
	bool daemons_cancelled;
	/* Tasks waiting on another thread that deadlock detection cannot
	 * see: a pool thread, a signal.  Such a wait is never a deadlock. */
	size_t remote_waits;
	/* Tasks waiting on another core of the group (a call, an xchan, an
	 * xwg): under cio_run() another thread may end them, so they are not
	 * a deadlock; in a group, only when some core is not stuck
	 * (deadlock.c). */
	size_t peer_waits;

	struct cio__stack_pool stacks;
	size_t stack_size;
	struct cio__timer trim_timer; /* armed while idle stacks exceed the cache */
	/* The layers above, each its own (src/driver/, src/io/). */
	const struct cio__poller *poller;
	size_t inflight;            /* I/O operations a kernel holds: polled for */
	/* The signal watcher while in its read: one of the I/O in flight,
	 * which waits for the outside and brings no task progress. */
	struct cio__task *quiet_waiter;
	struct cio__driver *driver;
	struct cio__io_rt *io;
	struct cio__rt_ext *ext;    /* the batteries' state, newest first */

	void *sched_stack_bottom;   /* the thread's own stack, for ASan */
	size_t sched_stack_size;
	void *altstack;             /* signal stack for overflow reports */

	struct cio__inbox inbox;
	struct cio__group *group;   /* NULL for cio_run() */
	/* Group-wide deadlock detection (deadlock.c); NULL for cio_run(). */
	struct cio__dl_group *dl;
	atomic_int dl_stuck;        /* DL_* of deadlock.c */
	atomic_int dl_msg_busy;     /* dl_msg is pushed and not yet handled */
	struct cio__msg dl_msg;     /* "break your deadlock", from a peer */
	bool deadlocked;            /* a deadlock was broken here: -EDEADLK */
	int64_t dl_recheck;         /* stuck: look again after this many ns */
	int core_id, core_count;
	bool draining;              /* a drain was requested */
	int64_t drain_timeout;      /* ns from the drain to cancelling all */
	int64_t idle_poll_ns;       /* how long to watch for work before sleeping */
	cio_waitq drain_waiters;

	/* Kept by this thread alone, with plain increments, but for
	 * stats.switches (cio__count_switch()), which the stall watchdog
	 * reads from its own thread. */
	cio_stats stats;
	int64_t stall_ns;           /* report tasks running this long; 0: off */
	struct cio__stall *stall;   /* the watchdog's record, while attached */
	uint64_t coop_at;           /* stats.switches when coop was last reset */
	uint32_t select_turn;       /* where the next cio_select() starts looking */
	unsigned coop;              /* operations done without parking since */
#ifdef CIO_TSAN
	void *tsan_fiber;           /* the scheduler's: the thread's own */
#endif
};

/* One more context switch.  A relaxed store, so that the stall
 * watchdog may read the count from its thread: the same plain load, add
 * and store the compiler makes of ++ (no locked instruction), yet no data
 * race for TSan. */
static inline void cio__count_switch(struct cio__rt *rt)
{
	__atomic_store_n(&rt->stats.switches, rt->stats.switches + 1, __ATOMIC_RELAXED);
}

/* The running task changes (NULL: the scheduler); relaxed for the
 * watchdog as above. */
static inline void cio__set_current(struct cio__rt *rt, struct cio__task *t)
{
	__atomic_store_n(&rt->current, t, __ATOMIC_RELAXED);
}

/* The stall detector (stall.c).  The stall limit a config asks for:
 * cfg->stall_ns, or COREIO_STALL_MS when that is 0; 0 means off. */
int64_t cio__stall_limit(const cio_config *cfg);
/* Registers rt, on its own thread, with the watchdog (started with the
 * first), when rt->stall_ns > 0; else does nothing.  Returns 0 or a
 * negated errno (-ENOMEM, -EAGAIN: the watchdog thread). */
int cio__stall_attach(struct cio__rt *rt);
/* Unregisters rt before its thread leaves it; the last one stops the
 * watchdog and waits for it. */
void cio__stall_detach(struct cio__rt *rt);

/* Of the blocking pool (pool.c): jobs waiting now, all classes. */
size_t cio__blocking_queued(void);
/* Of the blocking pool: threads idle now, waiting for a job. */
size_t cio__blocking_idle(void);
/* The stall watchdog's threads now: 0 or 1 (stall.c). */
int cio__stall_threads(void);

/* After this many operations in a row that completed without parking, a
 * task yields (cio__coop()). */
#define CIO__COOP_BUDGET 128

/* Counts an I/O operation done, and yields the task once CIO__COOP_BUDGET
 * came with no switch on the runtime between them: a task whose
 * operations always complete at once (a socket always readable, a file
 * in the page cache) must not starve the others, nor the timers.  An
 * operation that parked switched, so the count starts anew with it. */
static inline void cio__coop(struct cio__rt *rt)
{
	if (rt->coop_at != rt->stats.switches) {
		rt->coop_at = rt->stats.switches;
		rt->coop = 0;
	}
	if (++rt->coop >= CIO__COOP_BUDGET) {
		rt->coop = 0;
		cio_yield(); /* an interruption shows on the next call */
		rt->coop_at = rt->stats.switches;
	}
}

extern __thread struct cio__rt *cio__rt_cur;

/* The battery state of rt registered under `key`, or NULL. */
static inline struct cio__rt_ext *cio__rt_ext_find(struct cio__rt *rt, const void *key)
{
	for (struct cio__rt_ext *e = rt->ext; e; e = e->next)
		if (e->key == key)
			return e;
	return NULL;
}

/* Registers e (key and fini set) with rt; its fini runs when rt ends,
 * before the driver closes, newest first. */
static inline void cio__rt_ext_add(struct cio__rt *rt, struct cio__rt_ext *e)
{
	e->next = rt->ext;
	rt->ext = e;
}

/* cio_blocking() for work that points into the caller's memory (file
 * calls): an interruption abandons the job only while it waits for a
 * thread (returning -ECANCELED / -ETIMEDOUT); once running, it is waited
 * for and its result kept (returning 0), so the caller's buffers are never
 * touched after it returns.  src/core/pool.c */
int cio__blocking_hold(const char *call, cio_fn *fn, void *arg, void **result);

/* Aborts: `call` was made outside a task. */
_Noreturn void cio__outside_task(const char *call) __attribute__((cold));

/* The calling task; aborts naming `call` when not called from a task.
 * Inline: every blocking call asks it first. */
static inline struct cio__task *cio__self_or_die(const char *call)
{
	struct cio__rt *rt = cio__rt_cur;
	if (__builtin_expect(!rt || !rt->current, 0))
		cio__outside_task(call);
	return rt->current;
}

/* Parks the calling task until cio__wake().  The caller has made itself
 * findable first (queued itself on a wait queue, armed a timer, started an
 * I/O op).  Before parking, a pending cancel returns -ECANCELED and a
 * passed deadline -ETIMEDOUT at once.  While parked, cio_cancel() and the
 * deadline wake it with those codes.  Either way the caller must then undo
 * what made it findable.  Otherwise returns the code given to cio__wake(). */
int cio__park(struct cio__task *self);

/* -ECANCELED or -ETIMEDOUT if a blocking call of `self` must fail now
 * without blocking; else 0.  (cio__park() checks this itself.)  Every
 * blocking call asks it even when it could complete at once, so that a
 * task looping on a call that never blocks still notices. */
static inline int cio__interrupted(struct cio__task *self)
{
	if (self->cancel && !self->shielded)
		return -ECANCELED;
	self->deadline_hit = self->deadline != CIO_NEVER && cio__clock_ns() >= self->deadline;
	return self->deadline_hit ? -ETIMEDOUT : 0;
}

/* At a task's end: checks that no deadline scope is left pushed (a
 * debug build aborts naming the task), and frees the scope stack. */
void cio__scopes_end(struct cio__task *self);

/* Parks without heeding cancel or deadline: for the wait that must follow
 * an interrupted I/O op until the kernel lets go of its buffer. */
int cio__park_hard(struct cio__task *self);

/* Makes a parked task runnable; cio__park() returns `code`.  Does nothing
 * if t is not parked (already woken by something else). */
void cio__wake(struct cio__task *t, int code);

/* Requests cancellation of t (cio_cancel()): wakes it if it is parked,
 * unless a shield scope holds the cancel off until it is popped. */
static inline void cio__cancel_task(struct cio__task *t)
{
	t->cancel = true;
	if (t->state == CIO__PARKED && !t->shielded)
		cio__wake(t, -ECANCELED);
}

static inline bool cio__parked(const struct cio__task *t)
{
	return t->state != CIO__RUNNABLE;
}

void cio__timer_arm(struct cio__rt *rt, struct cio__timer *tm, int64_t when);
void cio__timer_disarm(struct cio__rt *rt, struct cio__timer *tm);
/* Fires every timer due at `now`; returns how many. */
size_t cio__timers_run(struct cio__rt *rt, int64_t now);
static inline int64_t cio__timers_next(const struct cio__rt *rt)
{
	return rt->timers.n ? rt->timers.v[0]->when : CIO_NEVER;
}
void cio__timers_fini(struct cio__rt *rt);
/* Makes room for n armed timers, so that arming cannot fail later.
 * Returns 0 or -ENOMEM. */
int cio__timers_reserve(struct cio__rt *rt, size_t n);
/* The armed timers the runtime may need at once, with `tasks` more
 * tasks and `held` more timers held: two a task, daemons included (its
 * deadline and a sleep or select timer), one for stack trimming, and
 * those held outside tasks. */
static inline size_t cio__timers_bound(const struct cio__rt *rt, size_t tasks, size_t held)
{
	return 2 * (rt->live + rt->daemons + tasks) + 1 + rt->timers_held + held;
}
/* Holds room for one armed timer that no task owns (an idle connection's
 * of the serve helper), which spawns then reserve for too, until
 * cio__timers_unhold().  Returns 0 or -ENOMEM. */
int cio__timers_hold(struct cio__rt *rt);
void cio__timers_unhold(struct cio__rt *rt);

/* Scheduler internals shared with task.c. */
void cio__runq_add(struct cio__rt *rt, struct cio__task *t);
void cio__deadline_fire(struct cio__timer *tm);
_Noreturn void cio__task_exit(struct cio__rt *rt, struct cio__task *self);

/* Messages (inbox.c).  Push from any thread: returns 0, or -ESHUTDOWN if
 * `to` has stopped (the message stays the caller's).  Wakes `to` once per
 * burst of messages. */
int cio__inbox_push(struct cio__rt *to, struct cio__msg *m);
/* Handles every message waiting; on the runtime's own thread. */
void cio__inbox_drain(struct cio__rt *rt);
/* Refuses further messages and rejects those still waiting. */
void cio__inbox_close(struct cio__rt *rt);
static inline bool cio__inbox_pending(struct cio__rt *rt)
{
	return atomic_load_explicit(&rt->inbox.head, memory_order_relaxed) != NULL;
}

/* A task of the runtime's own (a signal watcher, a drain): it does not
 * keep the runtime alive, and is cancelled once every other task ended. */
cio_task_t cio__spawn_daemon(const char *name, cio_fn *fn, void *arg);

/* The scheduler's part of a runtime's life (src/cores/runtime.c assembles
 * the layers): create on the thread that will run it; run (sets
 * cio__rt_cur); destroy once no other thread can still refer to it. */
struct cio__rt *cio__rt_create(const cio_config *cfg, int *err);
int cio__rt_run(struct cio__rt *rt, cio_fn *main, void *arg);
void cio__rt_destroy(struct cio__rt *rt);

/* Deadlock detection (deadlock.c).
 *
 * A runtime alone (cio_run()) is deadlocked when it has no runnable task,
 * no timer, no I/O and no wait on another thread.  In a group every core
 * must be stuck at once (the same, but waits on other cores allowed) with
 * no message on its way and no thread but the group's own that could
 * send one.  A core that ended counts as stuck for good. */
struct cio__dl_group {
	atomic_int stuck;           /* cores stuck, or ended */
	atomic_int alive;           /* cores not ended: their threads */
	int n;
	struct cio__rt **rts;       /* the group's runtimes, n of them */
	atomic_int declaring;       /* a core runs a round: others stay out */
	atomic_int missed;          /* one stayed out: the holder looks again */
	atomic_int round_pending;   /* breaks pushed and not yet handled */
	atomic_size_t round_cancels; /* tasks the last round cancelled */
	unsigned rounds;            /* under declaring */
	int64_t recheck;            /* under declaring: the next look's delay */
};

/* The I/O in flight that is the signal watcher's read, while it waits
 * for a signal: 1 or 0.  Once interrupted, its I/O (a cancel on its way
 * through the kernel) is I/O like any other. */
static inline size_t cio__quiet_io(const struct cio__rt *rt)
{
	return rt->quiet_waiter && rt->quiet_waiter->state == CIO__PARKED;
}

/* Cancels every parked task of rt (not the signal watcher) and reports
 * it; rt alone aborts when only uninterruptible waits are left.  Returns
 * how many tasks it cancelled; sets rt->deadlocked when any. */
size_t cio__deadlock_break(struct cio__rt *rt);
/* Before any core runs: a group of the n runtimes rts (filled in by the
 * time they run). */
void cio__dl_group_init(struct cio__dl_group *dg, struct cio__rt **rts, int n);
/* Before the core runs, on its thread: rt is a member of dg. */
void cio__dl_join(struct cio__rt *rt, struct cio__dl_group *dg);
/* The core is about to sleep with nothing but waits on other cores: it
 * counts itself stuck, and runs a round when it is the last.  Returns
 * true if there is work after all (a message came, or a round broke this
 * core's deadlock): the caller must not sleep.  Else the caller sleeps,
 * for at most rt->dl_recheck ns when that is not 0. */
bool cio__dl_stuck(struct cio__rt *rt);
/* rt is no longer stuck (it woke, or a message is on its way to it). */
void cio__dl_unstuck(struct cio__rt *rt);
/* The core ended (its inbox closed): stuck for good. */
void cio__dl_exit(struct cio__rt *rt);

/* Task table and life cycle (task.c). */
struct cio__task *cio__slot_task(struct cio__rt *rt, cio_task_t id);
void cio__task_finish(struct cio__rt *rt, struct cio__task *t, void *result);
void cio__tasks_fini(struct cio__rt *rt);
/* cio_select()'s join: joins task id now if it has ended (0, *result set
 * when result is not NULL), -EAGAIN while it runs, or cio_join()'s
 * errors.  Joining is allowed while self is the task's watcher. */
int cio__join_try(cio_task_t id, void **result, struct cio__task *self);
/* Makes `joiner` (NULL: nobody) the task woken, with code 0, when live
 * task id ends; no-op for an unknown id. */
void cio__join_watch(cio_task_t id, struct cio__task *joiner);

/* Wait queues used by the sync objects: a node on the waiter's stack. */
struct cio__waiter {
	struct cio__wait_node node;
	struct cio__task *task;
	void *data;  /* what the waker hands over, or takes */
	int result;  /* set by the waker */
};

/* A waiter not on any queue: cio__waiter_queued() is false. */
static inline void cio__waiter_init(struct cio__waiter *w, struct cio__task *t)
{
	w->node.prev = w->node.next = &w->node;
	w->task = t;
	w->data = NULL;
	w->result = 0;
}

static inline void cio__waitq_init(cio_waitq *q)
{
	q->_head.prev = q->_head.next = &q->_head;
}
static inline bool cio__waitq_empty(const cio_waitq *q)
{
	return q->_head.next == &q->_head;
}
/* The waiter usually lives on the parked task's stack and is always
 * removed before that frame returns; gcc 12 cannot see that and warns. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
static inline void cio__waitq_push(cio_waitq *q, struct cio__waiter *w)
{
	struct cio__wait_node *n = &w->node, *h = &q->_head;
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif
static inline void cio__waitq_remove(struct cio__waiter *w)
{
	w->node.prev->next = w->node.next;
	w->node.next->prev = w->node.prev;
	w->node.prev = w->node.next = &w->node;
}
static inline bool cio__waiter_queued(const struct cio__waiter *w)
{
	return w->node.next != &w->node;
}
static inline struct cio__waiter *cio__waitq_first(const cio_waitq *q)
{
	return cio__waitq_empty(q) ? NULL : (struct cio__waiter *)q->_head.next;
}

#endif
