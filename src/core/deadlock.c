/* deadlock.c - deadlock detection: breaking a runtime's deadlock, and
 * finding one that spans the cores of a group (cio_run_cores()).
 *
 * A runtime alone is deadlocked when it would sleep with no timer, no I/O
 * and no wait on another thread (sched.c asks).  A core of a group may
 * wait on the others (peer_waits), so it is deadlocked only when every
 * core is stuck at once: asleep with no timer, no I/O but the signal
 * watcher's, no wait the group cannot see (pool, signal), and nothing in
 * its inbox.  Then nothing inside the group can move, and nothing outside
 * it may either, if the process has no thread but the group's and
 * coreio's own.
 *
 * The count.  A core about to sleep stuck sets its flag (dl_stuck), adds
 * one to the group's count, then looks at its inbox once more.  A sender
 * whose push finds the receiver's `notified` clear (it is about to wake a
 * sleeper: the slow path, with a system call anyway) clears the
 * receiver's flag with a CAS and takes one back.  The receiver cleared
 * `notified` before its last looks, so of the two, either the receiver's
 * look sees the message or the sender's CAS sees the flag: the pattern of
 * the sleep in sched.c.  So a core counted stuck has nothing in its inbox
 * that it has not seen.  The CAS decides who takes the one back; the core
 * does it itself when it wakes.
 *
 * Between a sender's CAS and its subtraction the count is one too high,
 * for a core about to wake; that core cannot count itself again before
 * the subtraction (the flag reads LEAVING until then).  The sender, if a
 * core, is awake: not counted, or counted too high only while its own
 * sender is in that window, and so on back to one that is not counted at
 * all.  So the count cannot read n while a core runs.  Pool threads reply to a core that counts the job in remote_waits,
 * so is not stuck.  Any other thread is one detection does not know: it
 * may be about to send on an xchan, or done() an xwg.  So a round first
 * counts the process's threads (cpu.h), and runs only if there are none
 * but the group's cores, the thread in cio_run_cores(), idle pool threads
 * and coreio's watchers; else the core that found the group stuck looks
 * again after a while (1 ms, doubling up to 1 s), and another thread's
 * end is noticed then.  The count is read again after the threads: a
 * thread that ended had finished its subtraction.  Where threads cannot
 * be counted (off Linux), no group deadlock is ever reported.
 *
 * The round.  The core whose addition makes the count n (every core
 * stuck) runs a round: under `declaring`, it checks again, pushes "break
 * your deadlock" to every other core (which wakes them: they are no
 * longer stuck), and breaks its own.  A core that ended counts as stuck
 * for good; the last to end may run a round for the others.  One round
 * at a time: a round runs only once the breaks of the last one are
 * handled, and when the last one cancelled nothing, nothing can ever move
 * again: as under cio_run(), abort. */
#include "rt.h"
#include "../platform/cpu.h"
#include "../platform/sigfd.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

/* A core's flag: AWAKE -> STUCK by the core (count + 1); STUCK ->
 * LEAVING -> AWAKE by whoever wins the CAS (count - 1 in between); AWAKE
 * -> GONE by the core as it ends (count + 1). */
enum { DL_AWAKE, DL_STUCK, DL_LEAVING, DL_GONE };

#define RECHECK_MIN CIO_MS
#define RECHECK_MAX CIO_SEC

/* --- breaking one runtime's deadlock ------------------------------------- */

size_t cio__deadlock_break(struct cio__rt *rt)
{
	size_t n = 0;
	for (uint32_t i = 0; i < rt->nslots; i++) {
		struct cio__slot *s = &rt->slots[i];
		if (s->kind != CIO__SLOT_LIVE || s->u.task->state != CIO__PARKED)
			continue;
		/* The signal watcher keeps listening: the tasks that unwind
		 * may still be stopped by a signal. */
		if (s->u.task->outside)
			continue;
		s->u.task->cancel = true;
		cio__wake(s->u.task, -ECANCELED);
		n++;
	}
	if (n == 0) {
		if (rt->dl)
			return 0; /* the round's own check (round_run) */
		/* Only uninterruptible waits are left (a condition re-lock of
		 * a mutex whose owner ended without unlocking, say). */
		fprintf(stderr, "coreio: deadlock: %zu task(s) wait "
				"uninterruptibly with nothing left to wake them\n",
			rt->live);
		abort();
	}
	rt->deadlocked = true;
	if (rt->dl)
		fprintf(stderr, "coreio: deadlock: core %d: %zu task(s) blocked, every "
				"core with nothing left to wake them; cancelling them\n",
			rt->core_id, n);
	else
		fprintf(stderr, "coreio: deadlock: %zu task(s) blocked with nothing "
				"left to wake them; cancelling them\n", n);
	return n;
}

/* --- the group ------------------------------------------------------------ */

void cio__dl_group_init(struct cio__dl_group *dg, struct cio__rt **rts, int n)
{
	dg->n = n;
	dg->rts = rts;
	atomic_init(&dg->stuck, 0);
	atomic_init(&dg->alive, n);
	atomic_init(&dg->declaring, 0);
	atomic_init(&dg->missed, 0);
	atomic_init(&dg->round_pending, 0);
	atomic_init(&dg->round_cancels, 0);
	dg->rounds = 0;
	dg->recheck = RECHECK_MIN;
}

/* --- the count ------------------------------------------------------------ */

/* Clears rt's stuck flag if set, and takes it out of the count.  Returns
 * whether it was stuck.  The flag reads LEAVING until the count is
 * down: the core may not count itself again before, or it would be
 * counted twice (and a group with a core awake could read all stuck). */
static bool unstick(struct cio__rt *rt)
{
	int stuck = DL_STUCK;
	if (!atomic_compare_exchange_strong(&rt->dl_stuck, &stuck, DL_LEAVING))
		return false;
	atomic_fetch_sub(&rt->dl->stuck, 1);
	atomic_store(&rt->dl_stuck, DL_AWAKE);
	return true;
}

/* On rt's thread: until a sender that took rt out of the count is done
 * (two atomic operations away; rare). */
static void wait_left(struct cio__rt *rt)
{
	while (atomic_load(&rt->dl_stuck) == DL_LEAVING)
		sched_yield();
}

void cio__dl_unstuck(struct cio__rt *rt)
{
	unstick(rt);
}

/* --- rounds --------------------------------------------------------------- */

static void break_handle(struct cio__rt *rt, struct cio__msg *m)
{
	struct cio__dl_group *dg = rt->dl;
	(void)m;
	atomic_store(&rt->dl_msg_busy, 0);
	atomic_fetch_add(&dg->round_cancels, cio__deadlock_break(rt));
	atomic_fetch_sub(&dg->round_pending, 1);
}

static void break_reject(struct cio__msg *m)
{
	/* The core ended: it has no task left to cancel. */
	struct cio__rt *rt = (struct cio__rt *)((char *)m - offsetof(struct cio__rt, dl_msg));
	atomic_fetch_sub(&rt->dl->round_pending, 1);
}

void cio__dl_join(struct cio__rt *rt, struct cio__dl_group *dg)
{
	rt->dl = dg;
	atomic_init(&rt->dl_stuck, DL_AWAKE);
	atomic_init(&rt->dl_msg_busy, 0);
	rt->dl_msg.handle = break_handle;
	rt->dl_msg.reject = break_reject;
}

/* Whether the process has threads that detection does not know of (see
 * the top of the file); -ENOSYS where it cannot tell. */
static int strangers(struct cio__dl_group *dg)
{
	int all = cio__threads_count();
	if (all < 0)
		return all;
	/* The cores still running, the one in cio_run_cores(), and the
	 * threads of coreio's that wake no task. */
	size_t known = (size_t)atomic_load(&dg->alive) + 1 + cio__blocking_idle() +
		       (size_t)cio__stall_threads() + (size_t)cio__sigfd_threads();
	return (size_t)all > known;
}

/* Wakes one stuck core, which counts itself again (and so looks again). */
static void poke(struct cio__dl_group *dg)
{
	for (int k = 0; k < dg->n; k++) {
		struct cio__rt *rt = dg->rts[k];
		if (unstick(rt)) {
			/* From no runtime: only a core that ended pokes. */
			if (!atomic_exchange(&rt->inbox.notified, 1))
				rt->poller->wake(NULL, rt);
			return;
		}
	}
}

/* Under `declaring`: if every core is still stuck, with the last round's
 * breaks all handled and no thread unknown, runs a round.  self: the
 * calling core, stuck (its own deadlock is broken here), or NULL (a core
 * that ended). */
static void round_run(struct cio__dl_group *dg, struct cio__rt *self)
{
	if (atomic_load(&dg->stuck) != dg->n || atomic_load(&dg->round_pending))
		return;
	int rc = strangers(dg);
	if (rc == -ENOSYS)
		return; /* never reported */
	if (rc != 0) {
		/* Maybe a thread that will still wake a task: look again
		 * later (a core's sleep has no end else). */
		int64_t wait = dg->recheck;
		dg->recheck = wait < RECHECK_MAX / 2 ? 2 * wait : RECHECK_MAX;
		if (self)
			self->dl_recheck = wait;
		else
			poke(dg);
		return;
	}
	/* A thread that ended before the count above had finished with it. */
	if (atomic_load(&dg->stuck) != dg->n)
		return;
	dg->recheck = RECHECK_MIN;
	if (dg->rounds && atomic_load(&dg->round_cancels) == 0) {
		/* The last round woke nobody, so nothing changed since: only
		 * uninterruptible waits are left. */
		fprintf(stderr, "coreio: deadlock: every core's tasks wait "
				"uninterruptibly with nothing left to wake them\n");
		abort();
	}
	dg->rounds++;
	atomic_store(&dg->round_cancels, 0);
	/* No longer counted, before waking anyone: while this core pushes,
	 * the count cannot read n again. */
	if (self)
		unstick(self);
	for (int k = 0; k < dg->n; k++) {
		struct cio__rt *rt = dg->rts[k];
		if (rt == self || atomic_exchange(&rt->dl_msg_busy, 1))
			continue;
		atomic_fetch_add(&dg->round_pending, 1);
		if (cio__inbox_push(rt, &rt->dl_msg) < 0)
			atomic_fetch_sub(&dg->round_pending, 1); /* it ended */
	}
	if (self)
		atomic_fetch_add(&dg->round_cancels, cio__deadlock_break(self));
}

/* The count just read n: run a round, unless another thread runs one;
 * then that one looks again once done, seeing `missed`. */
static void round_try(struct cio__dl_group *dg, struct cio__rt *self)
{
	for (;;) {
		atomic_store(&dg->missed, 1);
		int idle = 0;
		if (!atomic_compare_exchange_strong(&dg->declaring, &idle, 1))
			return; /* the holder unlocks after our store: it sees it */
		atomic_store(&dg->missed, 0);
		round_run(dg, self);
		atomic_store(&dg->declaring, 0);
		if (!atomic_load(&dg->missed))
			return;
	}
}

bool cio__dl_stuck(struct cio__rt *rt)
{
	struct cio__dl_group *dg = rt->dl;
	rt->dl_recheck = 0;
	wait_left(rt);
	atomic_store(&rt->dl_stuck, DL_STUCK);
	int old = atomic_fetch_add(&dg->stuck, 1);
	/* A message pushed before the flag was set, whose sender's CAS
	 * found it clear, is seen here (see the top of the file). */
	if (atomic_load(&rt->inbox.head)) {
		unstick(rt);
		return true;
	}
	if (old + 1 == dg->n)
		round_try(dg, rt);
	return atomic_load(&rt->dl_stuck) != DL_STUCK;
}

void cio__dl_exit(struct cio__rt *rt)
{
	struct cio__dl_group *dg = rt->dl;
	atomic_fetch_sub(&dg->alive, 1);
	wait_left(rt);
	atomic_store(&rt->dl_stuck, DL_GONE);
	if (atomic_fetch_add(&dg->stuck, 1) + 1 == dg->n)
		round_try(dg, NULL);
}
