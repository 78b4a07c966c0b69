/* test_cores.c - thread-per-core: the launcher, calls and posts between
 * cores, errors, the drain on a signal, signal waits, and deadlocks of a
 * whole group. */
#include "net_util.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define MS CIO_MS

/* --- calls ---------------------------------------------------------------- */

static void *where(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)(cio_core_id() * 1000 + cio_core_count());
}

static void *add_one(void *arg)
{
	return (void *)((intptr_t)arg + 1);
}

static atomic_long calls_done;
static atomic_int cores_seen;
static pthread_t core_threads[2];

#ifndef CALLS
#define CALLS 1000000
#endif

/* Calls in flight at once: the wakes of a burst are batched. */
#define CALLERS 64

static void *caller(void *arg)
{
	long k = (long)arg;
	for (long i = k; i < CALLS; i += CALLERS) {
		void *r;
		CHECK_EQ(cio_core_call(1, add_one, (void *)(intptr_t)i, &r), 0);
		CHECK_EQ((intptr_t)r, i + 1);
		atomic_fetch_add(&calls_done, 1);
	}
	return NULL;
}

static void *calls_main(void *arg)
{
	(void)arg;
	int me = cio_core_id(), other = 1 - me;
	CHECK_EQ(cio_core_count(), 2);
	core_threads[me] = pthread_self();
	atomic_fetch_add(&cores_seen, 1);
	void *r;
	CHECK_EQ(cio_core_call(other, where, NULL, &r), 0);
	CHECK_EQ((intptr_t)r, other * 1000 + 2);
	CHECK_EQ(cio_core_call(me, where, NULL, &r), 0); /* to oneself */
	CHECK_EQ((intptr_t)r, me * 1000 + 2);
	CHECK_EQ(cio_core_call(2, where, NULL, &r), -EINVAL);
	CHECK_EQ(cio_core_call(-1, where, NULL, &r), -EINVAL);
	CHECK_EQ(cio_core_post(7, where, NULL), -EINVAL);
	/* Core 0 calls core 1 CALLS times, from 8 tasks at once, and checks
	 * every result; core 1 serves (and calls back a little). */
	if (me == 0) {
		cio_task_t t[CALLERS];
		for (long k = 0; k < CALLERS; k++)
			t[k] = cio_spawn(caller, (void *)k);
		for (long k = 0; k < CALLERS; k++)
			CHECK_EQ(cio_join(t[k], NULL), 0);
		CHECK_EQ(atomic_load(&calls_done), CALLS);
	}
	/* Core 1 stays until core 0 is done calling it. */
	while (atomic_load(&calls_done) < CALLS)
		cio_sleep(MS);
	return NULL;
}

static void test_calls(int64_t idle_poll)
{
	cio_cores_config cc = {.all = test_backend_config(), .no_signals = true};
	cc.all.idle_poll_ns = idle_poll;
	atomic_store(&calls_done, 0);
	atomic_store(&cores_seen, 0);
	int fds = test_count_fds();
	int64_t t0 = cio_now();
	CHECK_EQ(cio_run_cores_with(&cc, 2, calls_main, NULL), 0);
	double secs = (double)(cio_now() - t0) / 1e9;
	CHECK_EQ(atomic_load(&calls_done), CALLS);
	CHECK(!pthread_equal(core_threads[0], core_threads[1]));
	CHECK_EQ(test_count_fds(), fds);
	fprintf(stderr, "%d cross-core calls in %.2f s (%.0f ns each), idle poll %lld ns\n",
		CALLS, secs, secs * 1e9 / CALLS, (long long)idle_poll);
}

/* --- interrupted calls ------------------------------------------------------ */

/* The remote side: sleeps (a cancel cuts it short), then writes through
 * the caller's pointer, as a function that still uses its argument. */
struct slot {
	int value;
	int slept; /* what the remote's sleep returned */
};

static void *slow_write(void *arg)
{
	struct slot *s = arg;
	s->slept = cio_sleep(2000 * MS); /* long: a stall cannot outlast it */
	s->value = 42;
	return NULL;
}

/* Ignores cancellation: blocks its core's thread outright. */
static void *stubborn(void *arg)
{
	usleep(50000);
	((struct slot *)arg)->value = 7;
	return malloc(16);
}

static atomic_long results_made, results_dropped;

static void *make_result(void *arg)
{
	int64_t us = (int64_t)(intptr_t)arg;
	if (us)
		cio_sleep(us * CIO_US);
	atomic_fetch_add(&results_made, 1);
	return malloc(32);
}

static void drop_result(void *arg, void *result)
{
	(void)arg;
	CHECK(result);
	free(result);
	atomic_fetch_add(&results_dropped, 1);
}

static atomic_int never_ran;
static void *must_not_run(void *arg)
{
	(void)arg;
	atomic_store(&never_ran, 1);
	return NULL;
}

#ifndef RANDOM_CALLS
#define RANDOM_CALLS 20000
#endif

static atomic_int interrupted_done;

static void *interrupted_main(void *arg)
{
	(void)arg;
	if (cio_core_id() == 1) {
		while (!atomic_load(&interrupted_done))
			cio_sleep(MS);
		return NULL;
	}
	/* A stack argument and a deadline shorter than the remote's work:
	 * the call returns only once the remote is done with the slot
	 * (ASan would see a write to a dead frame otherwise), and the
	 * remote saw the cancel. */
	{
		struct slot s = {0, 1};
		int64_t t0 = cio_now();
		int64_t tok = cio_timeout_push(20 * MS);
		CHECK_EQ(cio_core_call(1, slow_write, &s, NULL), -ETIMEDOUT);
		cio_deadline_pop(tok);
		CHECK_EQ(s.value, 42);
		CHECK_EQ(s.slept, -ECANCELED);
		CHECK(cio_now() - t0 < 1000 * MS); /* the sleep was cut short */
	}
	/* A remote that ignores the cancel is waited for all the same, and
	 * its result dropped exactly once. */
	{
		struct slot s = {0, 0};
		int64_t t0 = cio_now();
		int64_t tok = cio_timeout_push(5 * MS);
		void *r = (void *)1;
		atomic_store(&results_dropped, 0);
		CHECK_EQ(cio_core_call_drop(1, stubborn, &s, drop_result, &r), -ETIMEDOUT);
		cio_deadline_pop(tok);
		CHECK_EQ(s.value, 7);
		CHECK(cio_now() - t0 >= 45 * MS);
		CHECK_EQ(atomic_load(&results_dropped), 1);
		CHECK(r == (void *)1); /* *result untouched on failure */
	}
	/* Already cancelled: nothing is sent. */
	CHECK_EQ(cio_cancel(cio_self()), 0);
	CHECK_EQ(cio_core_call(1, must_not_run, NULL, NULL), -ECANCELED);
	CHECK(cio_cancel_clear());
	/* Many calls with random deadlines around the remote's random work:
	 * every result is either handed over or dropped, once. */
	atomic_store(&results_made, 0);
	atomic_store(&results_dropped, 0);
	long handed = 0;
	unsigned seed = 7;
	for (int i = 0; i < RANDOM_CALLS; i++) {
		int64_t work = rand_r(&seed) % 3 ? 0 : rand_r(&seed) % 200;
		int64_t tok = cio_timeout_push((rand_r(&seed) % 200) * CIO_US);
		void *r = NULL;
		int rc = cio_core_call_drop(1, make_result, (void *)(intptr_t)work,
					    drop_result, &r);
		cio_deadline_pop(tok);
		if (rc == 0) {
			CHECK(r);
			free(r);
			handed++;
		} else {
			CHECK(rc == -ETIMEDOUT);
		}
	}
	CHECK_EQ(atomic_load(&results_made), handed + atomic_load(&results_dropped));
	fprintf(stderr, "%d calls with random deadlines: %ld results handed over, %ld dropped\n",
		RANDOM_CALLS, handed, (long)atomic_load(&results_dropped));
	CHECK_EQ(atomic_load(&never_ran), 0);
	atomic_store(&interrupted_done, 1);
	return NULL;
}

static void test_interrupted_calls(void)
{
	cio_cores_config cc = {.all = test_backend_config(), .no_signals = true};
	CHECK_EQ(cio_run_cores_with(&cc, 2, interrupted_main, NULL), 0);
}

/* --- a wait group between cores ------------------------------------------- */

static cio_xwg *together;
static atomic_int late_call_ok, xwg_woken;

static void *waits_on(void *wg)
{
	CHECK_EQ(cio_xwg_wait(wg), 0);
	atomic_fetch_add(&xwg_woken, 1);
	return NULL;
}

static void *release_from_thread(void *wg)
{
	usleep(20000);
	cio_xwg_done(wg);
	return NULL;
}

static void *done_later(void *arg)
{
	cio_xwg **wg = arg;
	cio_sleep((int64_t)(rand() % 200) * CIO_US);
	cio_xwg_done(*wg);
	return NULL;
}

#define XWG_ROUNDS 2000
#define XWG_WAITERS 50

static void *xwg_main(void *arg)
{
	(void)arg;
	int me = cio_core_id();
	if (me == 0) {
		/* A wait group counted down from a plain thread wakes tasks on
		 * both cores; an interrupted wait leaves it as it was. */
		cio_xwg *wg;
		CHECK_EQ(cio_xwg_new(&wg, 1), 0);
		int64_t tok = cio_timeout_push(5 * MS);
		CHECK_EQ(cio_xwg_wait(wg), -ETIMEDOUT);
		cio_deadline_pop(tok);
		cio_task_t t[XWG_WAITERS];
		for (int i = 0; i < XWG_WAITERS; i++)
			t[i] = cio_spawn(waits_on, wg);
		for (int i = 0; i < XWG_WAITERS; i++)
			CHECK_EQ(cio_core_post(1, waits_on, wg), 0);
		pthread_t th;
		CHECK_EQ(pthread_create(&th, NULL, release_from_thread, wg), 0);
		for (int i = 0; i < XWG_WAITERS; i++)
			CHECK_EQ(cio_join(t[i], NULL), 0);
		CHECK_EQ(pthread_join(th, NULL), 0);
		while (atomic_load(&xwg_woken) < 2 * XWG_WAITERS)
			CHECK_EQ(cio_sleep(MS), 0);
		CHECK_EQ(cio_xwg_wait(wg), 0); /* zero: at once */
		cio_xwg_free(wg);
		/* Waits with random deadlines racing the done on the other
		 * core: each returns 0 or -ETIMEDOUT, and nothing is lost. */
		int timeouts = 0;
		for (int i = 0; i < XWG_ROUNDS; i++) {
			CHECK_EQ(cio_xwg_new(&wg, 1), 0);
			CHECK_EQ(cio_core_post(1, done_later, &wg), 0);
			tok = cio_timeout_push((int64_t)(rand() % 200) * CIO_US);
			int rc = cio_xwg_wait(wg);
			cio_deadline_pop(tok);
			CHECK(rc == 0 || rc == -ETIMEDOUT);
			timeouts += rc != 0;
			CHECK_EQ(cio_xwg_wait(wg), 0);
			/* done_later may still be inside cio_xwg_done(): let it
			 * leave before the free. */
			CHECK_EQ(cio_core_call(1, where, NULL, NULL), 0);
			cio_xwg_free(wg);
		}
		fprintf(stderr, "%d wait-group rounds, %d waits timed out first\n",
			XWG_ROUNDS, timeouts);
		/* Core 1 is still there to call, because it waits for us. */
		cio_sleep(20 * MS);
		CHECK_EQ(cio_core_call(1, where, NULL, NULL), 0);
		atomic_store(&late_call_ok, 1);
	}
	cio_xwg_done(together);
	CHECK_EQ(cio_xwg_wait(together), 0);
	return NULL;
}

/* A done() from a plain thread, racing the end of the waiter's runtime:
 * the runtime must not go while the push that woke it is still inside. */
static void *xwg_done_thread(void *wg)
{
	cio_xwg_done(wg);
	return NULL;
}

static void *xwg_wait_and_end(void *wg)
{
	CHECK_EQ(cio_xwg_wait(wg), 0);
	return NULL;
}

static void test_xwg_runtime_end(void)
{
	for (int i = 0; i < 300; i++) {
		cio_xwg *wg;
		CHECK_EQ(cio_xwg_new(&wg, 1), 0);
		pthread_t th;
		CHECK_EQ(pthread_create(&th, NULL, xwg_done_thread, wg), 0);
		cio_config cfg = test_backend_config();
		cfg.idle_poll_ns = (i % 2) * 20 * CIO_US; /* awake, or asleep */
		CHECK_EQ(cio_run_with(&cfg, xwg_wait_and_end, wg), 0);
		CHECK_EQ(pthread_join(th, NULL), 0);
		cio_xwg_free(wg);
	}
}

/* A call to one's own core whose function can never return, under
 * cio_run(): a deadlock like any other, reported. */
static cio_chan *nobody_sends;
static void *blocks_for_ever(void *arg)
{
	(void)arg;
	int v;
	return (void *)(intptr_t)cio_chan_recv(nobody_sends, &v);
}

static void *calls_itself(void *arg)
{
	int *rc = arg;
	*rc = cio_core_call(0, blocks_for_ever, NULL, NULL);
	return NULL;
}

static void test_self_call_deadlock(void)
{
	CHECK_EQ(cio_chan_new(&nobody_sends, sizeof(int), 1), 0);
	int rc = 1;
	cio_config cfg = test_backend_config();
	CHECK_EQ(cio_run_with(&cfg, calls_itself, &rc), -EDEADLK);
	CHECK_EQ(rc, -ECANCELED);
	cio_chan_free(nobody_sends);
}

static void test_xwg(void)
{
	cio_cores_config cc = {.all = test_backend_config(), .no_signals = true};
	CHECK_EQ(cio_xwg_new(&together, 2), 0);
	CHECK_EQ(cio_run_cores_with(&cc, 2, xwg_main, NULL), 0);
	CHECK_EQ(atomic_load(&late_call_ok), 1);
	cio_xwg_free(together);
}

/* --- posts, and a core that has stopped ------------------------------------- */

static atomic_int posted_ran;
static void *note_post(void *arg)
{
	atomic_fetch_add(&posted_ran, (int)(intptr_t)arg);
	return NULL;
}

static atomic_int core1_gone;
static void *posts_main(void *arg)
{
	(void)arg;
	if (cio_core_id() == 1) {
		/* Ends at once. */
		atomic_store(&core1_gone, 1);
		return NULL;
	}
	for (int i = 0; i < 100; i++)
		CHECK_EQ(cio_core_post(0, note_post, (void *)1), 0);
	while (atomic_load(&core1_gone) == 0)
		cio_sleep(MS);
	/* Core 1 may take a moment to close its inbox after main ends. */
	int rc = 0;
	for (int i = 0; i < 1000 && rc == 0; i++) {
		rc = cio_core_post(1, note_post, (void *)1000);
		if (rc == 0)
			cio_sleep(MS);
	}
	CHECK_EQ(rc, -ESHUTDOWN);
	void *r;
	CHECK_EQ(cio_core_call(1, where, NULL, &r), -ESHUTDOWN);
	while (atomic_load(&posted_ran) % 1000 < 100)
		cio_sleep(MS);
	return NULL;
}

static void test_posts(void)
{
	cio_cores_config cc = {.all = test_backend_config(), .no_signals = true};
	CHECK_EQ(cio_run_cores_with(&cc, 2, posts_main, NULL), 0);
	CHECK_EQ(atomic_load(&posted_ran) % 1000, 100);
}

/* --- a wake sent just before a core ends ----------------------------------------- */

static atomic_int poked;

static void *poke_core1(void *arg)
{
	(void)arg;
	atomic_fetch_add(&poked, 1);
	cio_drain();
	return NULL;
}

/* Core 0 posts and ends at once; core 1 sleeps in the kernel with nothing
 * but the post to wake it (on io_uring the wake is a MSG_RING that must
 * leave core 0's ring before that core goes). */
static void *post_and_go(void *arg)
{
	(void)arg;
	if (cio_core_id() == 0) {
		CHECK_EQ(cio_core_post(1, poke_core1, NULL), 0);
		return NULL;
	}
	CHECK_EQ(cio_drain_wait(), 0);
	return NULL;
}

static void test_post_then_end(void)
{
	cio_cores_config cc = {.all = test_backend_config(), .no_signals = true};
	for (int i = 0; i < 20; i++)
		CHECK_EQ(cio_run_cores_with(&cc, 2, post_and_go, NULL), 0);
	CHECK_EQ(atomic_load(&poked), 20);
}

/* --- drain on SIGTERM ----------------------------------------------------------- */

static atomic_int drained, accepted_shutdown, lingered_cancelled;
static atomic_int idle_gone[2], linger_gone[2]; /* by core */

static void *linger(void *arg)
{
	(void)arg;
	int rc = cio_sleep(100000 * MS); /* busy: cancelled after the timeout */
	if (rc == -ECANCELED) {
		atomic_fetch_add(&lingered_cancelled, 1);
		atomic_store(&linger_gone[cio_core_id()], 1);
	}
	return NULL;
}

/* Waits for a request that never comes: idle, so the drain ends it at
 * once, before the drain timeout. */
static void *idle_conn(void *arg)
{
	(void)arg;
	cio_drain_idle(true);
	if (cio_sleep(100000 * MS) == -ECANCELED)
		atomic_store(&idle_gone[cio_core_id()], 1);
	return NULL;
}

static void *drain_main(void *arg)
{
	(void)arg;
	char addr[64];
	int lfd = cio_listen("127.0.0.1:0", &(cio_listen_opts){.reuseport = true});
	CHECK(lfd >= 0);
	local_addr(lfd, addr, sizeof addr);
	cio_spawn_with(&(cio_spawn_opts){.detached = true}, linger, NULL);
	cio_spawn_with(&(cio_spawn_opts){.detached = true}, idle_conn, NULL);
	if (cio_core_id() == 0) {
		CHECK(!cio_draining());
		kill(getpid(), SIGTERM); /* blocked: goes to the watcher */
	}
	/* The accept loop ends when the drain shuts the listener down. */
	int fd = cio_accept(lfd, NULL);
	CHECK_EQ(fd, -ESHUTDOWN);
	CHECK_EQ(cio_close(lfd), 0);
	atomic_fetch_add(&accepted_shutdown, 1);
	CHECK(cio_draining());
	CHECK_EQ(cio_drain_wait(), 0); /* returns at once now */
	/* This core's idle task went when the drain began; its busy one
	 * lingers until the timeout. */
	CHECK_EQ(cio_yield(), 0);
	CHECK_EQ(atomic_load(&idle_gone[cio_core_id()]), 1);
	CHECK_EQ(atomic_load(&linger_gone[cio_core_id()]), 0);
	atomic_fetch_add(&drained, 1);
	return NULL;
}

static void test_drain(void)
{
	cio_cores_config cc = {.all = test_backend_config(), .drain_timeout = 50 * MS};
	int fds = test_count_fds();
	int64_t t0 = cio_now();
	CHECK_EQ(cio_run_cores_with(&cc, 2, drain_main, NULL), 0);
	int64_t took = cio_now() - t0;
	CHECK_EQ(atomic_load(&drained), 2);
	CHECK_EQ(atomic_load(&accepted_shutdown), 2);
	CHECK_EQ(atomic_load(&lingered_cancelled), 2); /* after the drain timeout */
	CHECK(took >= 50 * MS);
	CHECK(took < 10000 * MS);
	CHECK_EQ(test_count_fds(), fds);
	/* The signal mask is as it was. */
	sigset_t now;
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	CHECK(!sigismember(&now, SIGTERM));
}

/* A signal is heard while any core runs, after core 0's tasks ended. */
static atomic_int late_drained;

static void *late_signal_main(void *arg)
{
	(void)arg;
	if (cio_core_id() == 0)
		return NULL; /* core 0 ends at once, its watcher with it */
	CHECK_EQ(cio_sleep(50 * MS), 0);
	kill(getpid(), SIGTERM);
	int64_t tok = cio_timeout_push(5 * CIO_SEC);
	CHECK_EQ(cio_drain_wait(), 0);
	cio_deadline_pop(tok);
	atomic_fetch_add(&late_drained, 1);
	return NULL;
}

static void test_late_signal(void)
{
	cio_cores_config cc = {.all = test_backend_config()};
	CHECK_EQ(cio_run_cores_with(&cc, 2, late_signal_main, NULL), 0);
	CHECK_EQ(atomic_load(&late_drained), 1);
}

/* A core that listens once the drain has begun (it was slow to start)
 * gets a listener that is shut down already: its accept loop ends, and
 * a client is refused, rather than the core accepting until the drain's
 * timeout. */
static atomic_int late_listened;

static void *late_listen_main(void *arg)
{
	(void)arg;
	if (cio_core_id() == 0) {
		CHECK_EQ(cio_drain(), 0);
		return NULL;
	}
	/* A listener from before: once its accept says -ESHUTDOWN, the
	 * drain has shut what there was. */
	int early = cio_listen("127.0.0.1:0", NULL);
	CHECK(early >= 0);
	int64_t tok = cio_timeout_push(5 * CIO_SEC);
	CHECK_EQ(cio_accept(early, NULL), -ESHUTDOWN);
	cio_deadline_pop(tok);
	CHECK_EQ(cio_close(early), 0);
	CHECK(cio_draining());
	int lfd = cio_listen("127.0.0.1:0", &(cio_listen_opts){.reuseport = true});
	CHECK(lfd >= 0);
	char addr[64];
	local_addr(lfd, addr, sizeof addr);
	tok = cio_timeout_push(5 * CIO_SEC);
	CHECK_EQ(cio_accept(lfd, NULL), -ESHUTDOWN);
	CHECK_EQ(cio_connect(addr, SOCK_STREAM), -ECONNREFUSED);
	cio_deadline_pop(tok);
	CHECK_EQ(cio_close(lfd), 0);
	atomic_fetch_add(&late_listened, 1);
	return NULL;
}

static void test_late_listen(void)
{
	cio_cores_config cc = {.all = test_backend_config(), .drain_timeout = 60 * CIO_SEC};
	int fds = test_count_fds();
	int64_t t0 = cio_now();
	CHECK_EQ(cio_run_cores_with(&cc, 2, late_listen_main, NULL), 0);
	CHECK_EQ(atomic_load(&late_listened), 1);
	CHECK(cio_now() - t0 < 30 * CIO_SEC); /* not the drain's timeout */
	CHECK_EQ(test_count_fds(), fds);
}

/* The first SIGTERM drains, the second cancels every task, and each one
 * after cancels again: a task that cleared its cancel is cancelled anew
 * (the third's messages are made then; the first two were made before
 * the cores started). */
static atomic_int forced;

static void *forced_main(void *arg)
{
	(void)arg;
	kill(getpid(), SIGTERM);
	int rc;
	CIO_WITH_TIMEOUT(5 * CIO_SEC) {
		rc = cio_drain_wait();
	}
	CHECK_EQ(rc, 0);
	for (int i = 0; i < 3; i++) {
		int64_t t0 = cio_now();
		kill(getpid(), SIGTERM);
		CHECK_EQ(cio_sleep(10 * CIO_SEC), -ECANCELED);
		CHECK(cio_now() - t0 < 5 * CIO_SEC);
		CHECK(cio_cancel_clear());
		atomic_fetch_add(&forced, 1);
	}
	return NULL;
}

static void test_signal_forces(void)
{
	/* The drain's own timeout is not what cancels here. */
	cio_cores_config cc = {.all = test_backend_config(), .drain_timeout = 60 * CIO_SEC};
	CHECK_EQ(cio_run_cores_with(&cc, 1, forced_main, NULL), 0);
	CHECK_EQ(atomic_load(&forced), 3);
}

/* --- drain with a live connection ------------------------------------------- */

static char live_addr[64];
static atomic_int reply_ok, refused_after, core1_saw_drain;

/* Serves one request slowly: it is in flight when the drain starts. */
static void *slow_server(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	int fd = cio_accept(lfd, NULL);
	CHECK(fd >= 0);
	char req[4];
	CHECK_EQ(cio_recv_exact(fd, req, 4, 0, NULL), 4);
	CHECK_EQ(cio_sleep(100 * MS), 0); /* the drain must let this finish */
	CHECK_EQ(cio_send_all(fd, "pong", 4, 0, NULL), 4);
	cio_close(fd);
	/* Back to accepting, as a server would: the drain ends it.  The main
	 * task's probes that came before the drain shut the listener (the
	 * signal may reach the other core first) are accepted before that. */
	int c;
	while ((c = cio_accept(lfd, NULL)) >= 0)
		CHECK_EQ(cio_close(c), 0);
	CHECK_EQ(c, -ESHUTDOWN);
	CHECK_EQ(cio_close(lfd), 0);
	return NULL;
}

static void *live_main(void *arg)
{
	(void)arg;
	if (cio_core_id() == 1) {
		CHECK_EQ(cio_drain_wait(), 0);
		atomic_store(&core1_saw_drain, 1);
		return NULL;
	}
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	local_addr(lfd, live_addr, sizeof live_addr);
	cio_task_t srv = cio_spawn(slow_server, (void *)(intptr_t)lfd);
	int fd = cio_connect(live_addr, 0);
	CHECK(fd >= 0);
	CHECK_EQ(cio_send_all(fd, "ping", 4, 0, NULL), 4);
	CHECK_EQ(cio_sleep(10 * MS), 0); /* the server is now mid-request */
	kill(getpid(), SIGINT);
	char rep[4];
	CHECK_EQ(cio_recv_exact(fd, rep, 4, 0, NULL), 4); /* in flight: finishes */
	if (memcmp(rep, "pong", 4) == 0)
		atomic_store(&reply_ok, 1);
	cio_close(fd);
	/* New connections are refused once the drain closed the listener. */
	int rc = 0;
	for (int i = 0; i < 1000; i++) {
		rc = cio_connect(live_addr, 0);
		if (rc < 0)
			break;
		cio_close(rc);
		cio_sleep(MS);
	}
	CHECK_EQ(rc, -ECONNREFUSED);
	atomic_store(&refused_after, 1);
	CHECK_EQ(cio_join(srv, NULL), 0);
	return NULL;
}

static void test_drain_live(void)
{
	cio_cores_config cc = {.all = test_backend_config(), .drain_timeout = 5000 * MS};
	int fds = test_count_fds();
	int64_t t0 = cio_now();
	CHECK_EQ(cio_run_cores_with(&cc, 2, live_main, NULL), 0);
	CHECK_EQ(atomic_load(&reply_ok), 1);
	CHECK_EQ(atomic_load(&refused_after), 1);
	CHECK_EQ(atomic_load(&core1_saw_drain), 1);
	CHECK(cio_now() - t0 < 4000 * MS); /* ended by itself, not by the timeout */
	CHECK_EQ(test_count_fds(), fds);
}

/* --- balanced accept ------------------------------------------------------------ */

static atomic_int served_on[2];
static char spread_addr[64];

static void *spread_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[16];
	ssize_t n;
	while ((n = cio_recv(fd, buf, sizeof buf, 0)) > 0)
		CHECK_EQ(cio_send_all(fd, buf, (size_t)n, 0, NULL), n);
	atomic_fetch_add(&served_on[cio_core_id()], 1);
	cio_close(fd);
	return NULL;
}

static void *spread_acceptor(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	CHECK_EQ(cio_accept_spread(lfd, spread_conn), -ESHUTDOWN);
	CHECK_EQ(cio_close(lfd), 0);
	return NULL;
}

static void *spread_main(void *arg)
{
	(void)arg;
	if (cio_core_id() == 1) {
		CHECK_EQ(cio_drain_wait(), 0);
		return NULL;
	}
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	local_addr(lfd, spread_addr, sizeof spread_addr);
	cio_task_t acc = cio_spawn(spread_acceptor, (void *)(intptr_t)lfd);
	for (int i = 0; i < 8; i++) {
		int fd = cio_connect(spread_addr, 0);
		CHECK(fd >= 0);
		char buf[6];
		CHECK_EQ(cio_send_all(fd, "hello", 5, 0, NULL), 5);
		CHECK_EQ(cio_recv_exact(fd, buf, 5, 0, NULL), 5);
		CHECK(memcmp(buf, "hello", 5) == 0);
		CHECK_EQ(cio_shutdown(fd, SHUT_WR), 0);
		CHECK_EQ(cio_recv(fd, buf, 1, 0), 0); /* the server closed too */
		cio_close(fd);
	}
	cio_drain();
	CHECK_EQ(cio_join(acc, NULL), 0);
	return NULL;
}

static void test_accept_spread(void)
{
	cio_cores_config cc = {.all = test_backend_config(), .no_signals = true};
	int fds = test_count_fds();
	CHECK_EQ(cio_run_cores_with(&cc, 2, spread_main, NULL), 0);
	/* Round robin over both cores: four connections each. */
	CHECK_EQ(atomic_load(&served_on[0]), 4);
	CHECK_EQ(atomic_load(&served_on[1]), 4);
	CHECK_EQ(test_count_fds(), fds);
}

/* --- signal waits ---------------------------------------------------------- */

static atomic_int signals_checked;

static void *wait_for(void *sig)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, (int)(intptr_t)sig);
	return (void *)(intptr_t)cio_signal_wait(&set);
}

static bool is_pending(int sig)
{
	sigset_t pend;
	CHECK_EQ(sigpending(&pend), 0);
	return sigismember(&pend, sig) == 1;
}

#define U1 ((void *)(intptr_t)SIGUSR1)
#define U2 ((void *)(intptr_t)SIGUSR2)

/* Each waiter gets the signal it waits for, whatever the order they
 * come in; one that no waiter wants, or whose waiter was cancelled,
 * stays pending for the process (signalfd, or the POSIX helper thread
 * giving back what it took). */
static void *signals_main(void *arg)
{
	(void)arg;
	if (cio_core_id() != 0)
		return NULL;
	cio_task_t a = cio_spawn(wait_for, U1), b = cio_spawn(wait_for, U2);
	CHECK_EQ(cio_sleep(5 * MS), 0); /* both wait */
	CHECK_EQ(kill(getpid(), SIGUSR2), 0);
	CHECK_EQ(kill(getpid(), SIGUSR1), 0);
	CHECK_EQ(join_rc(a), SIGUSR1);
	CHECK_EQ(join_rc(b), SIGUSR2);
	CHECK(!is_pending(SIGUSR1) && !is_pending(SIGUSR2));

	/* SIGUSR2 while only a SIGUSR1 waiter waits. */
	a = cio_spawn(wait_for, U1);
	CHECK_EQ(cio_sleep(5 * MS), 0);
	CHECK_EQ(kill(getpid(), SIGUSR2), 0);
	CHECK_EQ(cio_sleep(5 * MS), 0);
	CHECK_EQ(kill(getpid(), SIGUSR1), 0);
	CHECK_EQ(join_rc(a), SIGUSR1);
	CHECK(is_pending(SIGUSR2));
	CHECK_EQ((intptr_t)wait_for(U2), SIGUSR2); /* at once */
	CHECK(!is_pending(SIGUSR2));

	/* A cancelled waiter takes nothing. */
	a = cio_spawn(wait_for, U1);
	CHECK_EQ(cio_sleep(5 * MS), 0);
	CHECK_EQ(cio_cancel(a), 0);
	CHECK_EQ(join_rc(a), -ECANCELED);
	CHECK_EQ(kill(getpid(), SIGUSR1), 0);
	CHECK(is_pending(SIGUSR1));
	CHECK_EQ((intptr_t)wait_for(U1), SIGUSR1);
	atomic_store(&signals_checked, 1);
	return NULL;
}

static void test_signal_waits(void)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0); /* cores inherit it */
	cio_cores_config cc = {.no_signals = true};
	CHECK_EQ(cio_run_cores_with(&cc, 2, signals_main, NULL), 0);
	CHECK_EQ(atomic_load(&signals_checked), 1);
	CHECK_EQ(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
}

/* --- deadlocks of a whole group --------------------------------------------- */

/* Group deadlock detection counts the process's threads (Linux only): a
 * thread it does not know of might still wake a task.  Under qemu-user
 * (scripts/check-aarch64.sh) the emulator's own threads are such
 * threads, so no group deadlock is ever reported there. */
#ifdef __linux__
#define GROUP_DEADLOCKS (!getenv("COREIO_TEST_QEMU"))
#else
#define GROUP_DEADLOCKS 0
#endif

static atomic_int dl_rc[2];

/* Waits on a channel of its own core that nobody will ever send on. */
static void *waits_on_own_chan(void *arg)
{
	(void)arg;
	cio_chan *ch;
	CHECK_EQ(cio_chan_new(&ch, sizeof(int), 1), 0);
	int v;
	atomic_store(&dl_rc[cio_core_id()], cio_chan_recv(ch, &v));
	cio_chan_free(ch);
	return NULL;
}

/* Every core's main waits on a local channel: each core alone looks
 * merely idle, the group is deadlocked, with the signal watcher's read
 * in flight (signals on) or without it. */
static void test_group_deadlock(bool no_signals)
{
	cio_cores_config cc = {.all = test_backend_config(), .no_signals = no_signals};
	atomic_store(&dl_rc[0], 1);
	atomic_store(&dl_rc[1], 1);
	int64_t t0 = cio_now();
	CHECK_EQ(cio_run_cores_with(&cc, 2, waits_on_own_chan, NULL), -EDEADLK);
	CHECK(cio_now() - t0 < 2 * CIO_SEC);
	CHECK_EQ(atomic_load(&dl_rc[0]), -ECANCELED);
	CHECK_EQ(atomic_load(&dl_rc[1]), -ECANCELED);
}

/* A core that ended counts as stuck: core 1 ends at once, core 0 waits
 * for ever. */
static void *one_waits_one_ends(void *arg)
{
	if (cio_core_id() == 1)
		return NULL;
	return waits_on_own_chan(arg);
}

static void test_group_deadlock_after_end(void)
{
	cio_cores_config cc = {.all = test_backend_config(), .no_signals = true};
	atomic_store(&dl_rc[0], 1);
	CHECK_EQ(cio_run_cores_with(&cc, 2, one_waits_one_ends, NULL), -EDEADLK);
	CHECK_EQ(atomic_load(&dl_rc[0]), -ECANCELED);
}

/* Core 0 waits on an xchan that core 1 sends on after a sleep: core 0 is
 * stuck meanwhile, the group is not. */
static cio_xchan *late_xch;
static void *xchan_late(void *arg)
{
	(void)arg;
	int v = 0;
	if (cio_core_id() == 0) {
		CHECK_EQ(cio_xchan_recv(late_xch, &v), 0);
		CHECK_EQ(v, 42);
	} else {
		CHECK_EQ(cio_sleep(50 * MS), 0);
		v = 42;
		CHECK_EQ(cio_xchan_send(late_xch, &v), 0);
	}
	return NULL;
}

static void test_xchan_late_not_deadlock(void)
{
	cio_cores_config cc = {.all = test_backend_config(), .no_signals = true};
	CHECK_EQ(cio_xchan_new(&late_xch, sizeof(int), 1), 0);
	CHECK_EQ(cio_run_cores_with(&cc, 2, xchan_late, NULL), 0);
	cio_xchan_free(late_xch);
}

/* A plain thread that will still send: while it lives, no deadlock. */
static void *send_later_from_thread(void *arg)
{
	(void)arg;
	struct timespec ts = {0, 50 * 1000 * 1000};
	nanosleep(&ts, NULL);
	for (int i = 0; i < 2; i++) {
		int v = 7;
		while (cio_xchan_try_send(late_xch, &v) == -EAGAIN)
			sched_yield();
	}
	return NULL;
}

static void *recv_from_thread(void *arg)
{
	(void)arg;
	int v = 0;
	CHECK_EQ(cio_xchan_recv(late_xch, &v), 0);
	CHECK_EQ(v, 7);
	return NULL;
}

static void test_plain_thread_not_deadlock(void)
{
	cio_cores_config cc = {.all = test_backend_config(), .no_signals = true};
	CHECK_EQ(cio_xchan_new(&late_xch, sizeof(int), 2), 0);
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, send_later_from_thread, NULL), 0);
	CHECK_EQ(cio_run_cores_with(&cc, 2, recv_from_thread, NULL), 0);
	CHECK_EQ(pthread_join(th, NULL), 0);
	cio_xchan_free(late_xch);
}

/* A cycle of calls: core 0 calls core 1, which calls core 0, which waits
 * for what never comes. */
static atomic_int cycle_rc[3];

static void *cycle_end(void *arg)
{
	(void)arg;
	cio_chan *ch;
	CHECK_EQ(cio_chan_new(&ch, sizeof(int), 1), 0);
	int v;
	atomic_store(&cycle_rc[2], cio_chan_recv(ch, &v));
	cio_chan_free(ch);
	return NULL;
}

static void *cycle_back(void *arg)
{
	(void)arg;
	atomic_store(&cycle_rc[1], cio_core_call(0, cycle_end, NULL, NULL));
	return NULL;
}

static void *cycle_main(void *arg)
{
	if (cio_core_id() == 0)
		atomic_store(&cycle_rc[0], cio_core_call(1, cycle_back, NULL, NULL));
	else
		waits_on_own_chan(arg); /* core 1 stays for the call */
	return NULL;
}

static void test_call_cycle_deadlock(void)
{
	cio_cores_config cc = {.all = test_backend_config()};
	for (int i = 0; i < 3; i++)
		atomic_store(&cycle_rc[i], 1);
	atomic_store(&dl_rc[1], 1);
	CHECK_EQ(cio_run_cores_with(&cc, 2, cycle_main, NULL), -EDEADLK);
	CHECK_EQ(atomic_load(&cycle_rc[2]), -ECANCELED);
	CHECK_EQ(atomic_load(&dl_rc[1]), -ECANCELED);
	/* The calls were cancelled, or their replies came as they were. */
	CHECK(atomic_load(&cycle_rc[1]) == -ECANCELED || atomic_load(&cycle_rc[1]) == 0);
	CHECK(atomic_load(&cycle_rc[0]) == -ECANCELED || atomic_load(&cycle_rc[0]) == 0);
}

/* Waiting for a drain, with the signal watcher on, waits for a signal:
 * not a deadlock.  SIGTERM comes 50 ms later from a kernel timer (no
 * thread of ours that would hold detection off by itself), or from a
 * plain thread. */
static atomic_int drain_waited, drain_cancelled;
static void *waits_for_drain(void *arg)
{
	(void)arg;
	int rc = cio_drain_wait();
	CHECK(rc == 0 || rc == -ECANCELED);
	atomic_fetch_add(rc == 0 ? &drain_waited : &drain_cancelled, 1);
	return NULL;
}

static void *sigterm_later(void *arg)
{
	(void)arg;
	struct timespec ts = {0, 50 * 1000 * 1000};
	nanosleep(&ts, NULL);
	kill(getpid(), SIGTERM);
	return NULL;
}

static void test_drain_wait_not_deadlock(bool from_thread)
{
	cio_cores_config cc = {.all = test_backend_config(), .drain_timeout = 50 * MS};
	atomic_store(&drain_waited, 0);
	atomic_store(&drain_cancelled, 0);
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	/* Pending until the watchers read it, even if it comes early. */
	CHECK_EQ(pthread_sigmask(SIG_BLOCK, &term, &old), 0);
	pthread_t th;
	timer_t tm;
	if (from_thread) {
		CHECK_EQ(pthread_create(&th, NULL, sigterm_later, NULL), 0);
	} else {
		struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGTERM};
		CHECK_EQ(timer_create(CLOCK_MONOTONIC, &ev, &tm), 0);
		struct itimerspec at = {.it_value = {0, 50 * 1000 * 1000}};
		CHECK_EQ(timer_settime(tm, 0, &at, NULL), 0);
	}
	CHECK_EQ(cio_run_cores_with(&cc, 2, waits_for_drain, NULL), 0);
	CHECK_EQ(atomic_load(&drain_waited), 2);
	if (from_thread)
		CHECK_EQ(pthread_join(th, NULL), 0);
	else
		CHECK_EQ(timer_delete(tm), 0);
	CHECK_EQ(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
}

/* Without the watcher only a core can request a drain: cores that all
 * wait for one are deadlocked. */
static void test_drain_wait_no_signals_deadlock(void)
{
	cio_cores_config cc = {.all = test_backend_config(), .no_signals = true};
	atomic_store(&drain_waited, 0);
	atomic_store(&drain_cancelled, 0);
	CHECK_EQ(cio_run_cores_with(&cc, 2, waits_for_drain, NULL), -EDEADLK);
	CHECK_EQ(atomic_load(&drain_waited), 0);
	CHECK_EQ(atomic_load(&drain_cancelled), 2);
}

static void *nothing(void *arg)
{
	return arg;
}

static atomic_int counted;
static void *count_core(void *arg)
{
	(void)arg;
	CHECK_EQ(cio_cores_available(), cio_core_count());
	atomic_fetch_add(&counted, 1);
	return NULL;
}

/* cio_run_cores(0, ...) starts as many cores as cio_cores_available(). */
static void test_count_cores(int avail)
{
	cio_cores_config cc = {.all = test_backend_config(), .no_signals = true};
	CHECK_EQ(cio_run_cores_with(&cc, 0, count_core, NULL), 0);
	CHECK_EQ(atomic_load(&counted), avail);
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int skip = test_backend_missing();
	if (skip)
		return skip;
	TEST_CASE(bad_calls, {
		CHECK_EQ(cio_run_cores(-1, nothing, NULL), -EINVAL);
		CHECK_EQ(cio_core_id(), -1);
		CHECK_EQ(cio_core_count(), 0);
	});
	/* Known before the run: what a run of 0 cores starts. */
	TEST_CASE(count_cores, {
		int avail = cio_cores_available();
		cpu_set_t set;
		CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
		CHECK_EQ(avail, POSIX_PATHS ? (int)sysconf(_SC_NPROCESSORS_ONLN) : CPU_COUNT(&set));
		test_count_cores(avail);
	});
	TEST_CASE(calls, test_calls(0));
	TEST_CASE(calls_idle_poll, test_calls(50 * CIO_US)); /* idle cores watch their inbox */
	TEST_CASE(interrupted_calls, test_interrupted_calls());
	TEST_CASE(xwg, test_xwg());
	TEST_CASE(xwg_runtime_end, test_xwg_runtime_end());
	TEST_CASE(self_call_deadlock, test_self_call_deadlock());
	TEST_CASE(posts, test_posts());
	TEST_CASE(post_then_end, test_post_then_end());
	TEST_CASE(drain, test_drain());
	TEST_CASE(late_signal, test_late_signal());
	TEST_CASE(late_listen, test_late_listen());
	TEST_CASE(signal_forces, test_signal_forces());
	TEST_CASE(drain_live, test_drain_live());
	TEST_CASE(accept_spread, test_accept_spread());
	TEST_CASE(signal_waits, test_signal_waits());
	/* What is never a deadlock, wherever threads cannot be counted. */
	TEST_CASE(xchan_late_not_deadlock, test_xchan_late_not_deadlock());
	TEST_CASE(plain_thread_not_deadlock, test_plain_thread_not_deadlock());
	TEST_CASE(drain_wait_not_deadlock_timer, test_drain_wait_not_deadlock(false));
	TEST_CASE(drain_wait_not_deadlock_thread, test_drain_wait_not_deadlock(true));
	/* Group deadlocks: reported only where threads can be counted. */
	TEST_CASE(group_deadlock, if (GROUP_DEADLOCKS) test_group_deadlock(false));
	TEST_CASE(group_deadlock_watcher, if (GROUP_DEADLOCKS) test_group_deadlock(true));
	TEST_CASE(group_deadlock_after_end, if (GROUP_DEADLOCKS) test_group_deadlock_after_end());
	TEST_CASE(call_cycle_deadlock, if (GROUP_DEADLOCKS) test_call_cycle_deadlock());
	TEST_CASE(drain_wait_no_signals_deadlock,
		  if (GROUP_DEADLOCKS) test_drain_wait_no_signals_deadlock());
	return test_cases_end();
}
