/* test_pool.c - the blocking pool: results, more jobs than threads, the
 * queue limit, cancelling queued and running jobs, deadlines, a job that
 * outlives its caller's runtime, a job that outlives a drain, idle threads
 * leaving, and cio_getaddrinfo() on loopback names only. */
#include "check.h"

#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS CIO_MS
#define THREADS 4
#define QUEUE 16

/* Internal knob (pool.c) of COREIO_TESTING builds: idle threads leave
 * sooner here. */
#ifdef COREIO_TESTING
extern int64_t cio__blocking_idle_ns;
#endif

static cio_blocking_stats stats(void)
{
	cio_blocking_stats st;
	cio_blocking_stats_get(&st);
	return st;
}

/* --- jobs ------------------------------------------------------------------- */

static atomic_int gate;        /* gated jobs wait for it to open */
static atomic_int inside, most_inside, ran;

static void gate_wait(void)
{
	while (!atomic_load(&gate))
		usleep(200);
}

static void *add_one(void *arg)
{
	return (void *)((intptr_t)arg + 1);
}

/* Counts how many run at once; sleeps a little. */
static void *busy(void *arg)
{
	int n = atomic_fetch_add(&inside, 1) + 1;
	int m = atomic_load(&most_inside);
	while (n > m && !atomic_compare_exchange_weak(&most_inside, &m, n))
		;
	usleep(2000);
	atomic_fetch_sub(&inside, 1);
	atomic_fetch_add(&ran, 1);
	return arg;
}

static void *gated(void *arg)
{
	atomic_fetch_add(&inside, 1);
	gate_wait();
	atomic_fetch_sub(&inside, 1);
	atomic_fetch_add(&ran, 1);
	return arg;
}

/* Returns heap memory: an abandoned one must be dropped, not leaked. */
static void *gated_alloc(void *arg)
{
	gated(arg);
	int *p = malloc(sizeof *p);
	CHECK(p);
	*p = 1234;
	return p;
}

static atomic_int dropped_ran, dropped_not_ran;
static void drop_result(void *arg, void *result)
{
	(void)arg;
	if (result) {
		CHECK_EQ(*(int *)result, 1234);
		free(result);
		atomic_fetch_add(&dropped_ran, 1);
	} else {
		atomic_fetch_add(&dropped_not_ran, 1);
	}
}

/* Waits (parked) until `n` gated jobs are running. */
static void wait_inside(int n)
{
	while (atomic_load(&inside) < n)
		CHECK_EQ(cio_sleep(MS), 0);
}

/* --- results and concurrency ---------------------------------------------------- */

static void *caller(void *arg)
{
	void *r;
	CHECK_EQ(cio_blocking(busy, arg, &r), 0);
	CHECK(r == arg);
	return NULL;
}

static void test_results(void)
{
	void *r = NULL;
	CHECK_EQ(cio_blocking(add_one, (void *)41, &r), 0);
	CHECK_EQ((intptr_t)r, 42);
	CHECK_EQ(cio_blocking(add_one, (void *)1, NULL), 0);
	CHECK_EQ(cio_blocking(NULL, NULL, &r), -EINVAL);
	CHECK_EQ(cio_blocking_config(8, 0), -EBUSY);
	CHECK(stats().threads >= 1 && stats().threads <= THREADS);

	/* More callers than threads, all at once, up to what the queue takes:
	 * never more than THREADS run together. */
	atomic_store(&most_inside, 0);
	atomic_store(&ran, 0);
	enum { N = QUEUE }; /* all queued at once, before any thread takes one */
	cio_task_t t[N];
	for (intptr_t i = 0; i < N; i++)
		t[i] = cio_spawn(caller, (void *)i);
	for (int i = 0; i < N; i++)
		CHECK_EQ(cio_join(t[i], NULL), 0);
	CHECK_EQ(atomic_load(&ran), N);
	CHECK(atomic_load(&most_inside) >= 2);
	CHECK(atomic_load(&most_inside) <= THREADS);
	CHECK(stats().threads <= THREADS);

	/* Waves of callers, then many quick jobs one after another, each
	 * result checked. */
	enum { TASKS = 12, EACH = 200 };
	for (int w = 0; w < 2; w++) {
		cio_task_t ts[TASKS];
		for (intptr_t i = 0; i < TASKS; i++)
			ts[i] = cio_spawn(caller, (void *)i);
		for (int i = 0; i < TASKS; i++)
			CHECK_EQ(cio_join(ts[i], NULL), 0);
	}
	for (intptr_t i = 0; i < TASKS * EACH; i++) {
		int rc = cio_blocking(add_one, (void *)i, &r);
		CHECK_EQ(rc, 0);
		CHECK_EQ((intptr_t)r, i + 1);
	}
}

/* --- the queue limit ---------------------------------------------------------------- */

static atomic_int queued_done;
static void *queued_caller(void *arg)
{
	void *r;
	CHECK_EQ(cio_blocking(gated, arg, &r), 0);
	CHECK(r == arg);
	atomic_fetch_add(&queued_done, 1);
	return NULL;
}

static void test_queue_limit(void)
{
	atomic_store(&gate, 0);
	cio_task_t t[THREADS + QUEUE];
	for (intptr_t i = 0; i < THREADS + QUEUE; i++) {
		t[i] = cio_spawn(queued_caller, (void *)i);
		if (i == THREADS - 1) {
			/* Every thread busy before the queue fills. */
			wait_inside(THREADS);
		}
	}
	while (stats().queued < QUEUE)
		CHECK_EQ(cio_sleep(MS), 0);
	CHECK_EQ(stats().running, THREADS);
	CHECK_EQ(stats().threads, THREADS);
	/* Full: refused at once, nothing queued. */
	int64_t t0 = cio_now();
	CHECK_EQ(cio_blocking(add_one, NULL, NULL), -EBUSY);
	CHECK(cio_now() - t0 < 1000 * MS); /* not held till a job ends */
	/* The runtime's own jobs have threads of their own: a lookup and a
	 * file call go through while every user thread is busy and the
	 * user queue full. */
	t0 = cio_now();
	struct addrinfo *ai = NULL;
	CHECK_EQ(cio_getaddrinfo("localhost", "80", NULL, &ai), 0);
	freeaddrinfo(ai);
	int nfd = cio_open("/dev/null", O_RDONLY, 0);
	CHECK(nfd >= 0);
	CHECK_EQ(cio_close(nfd), 0);
	CHECK(cio_now() - t0 < 2000 * MS);
	CHECK_EQ(stats().queued, QUEUE);
	CHECK_EQ(atomic_load(&queued_done), 0);
	atomic_store(&gate, 1);
	for (int i = 0; i < THREADS + QUEUE; i++)
		CHECK_EQ(cio_join(t[i], NULL), 0);
	CHECK_EQ(atomic_load(&queued_done), THREADS + QUEUE);
	CHECK_EQ(stats().queued, 0);
}

/* --- cancel and deadline -------------------------------------------------------------- */

static atomic_int waiter_rc;
static void *waiter_alloc(void *arg)
{
	void *r = NULL;
	int64_t t0 = cio_now();
	int rc = cio_blocking_drop(gated_alloc, arg, drop_result, &r);
	atomic_store(&waiter_rc, rc);
	if (rc == 0) {
		free(r);
	} else {
		CHECK(r == NULL);
		CHECK(cio_now() - t0 < 5000 * MS);
	}
	return NULL;
}

static void test_cancel(void)
{
	atomic_store(&gate, 0);
	atomic_store(&ran, 0);
	atomic_store(&inside, 0);
	atomic_store(&dropped_ran, 0);
	atomic_store(&dropped_not_ran, 0);

	/* Fill every thread, then queue one more and cancel it: it never
	 * runs, and its drop runs at once with no result. */
	cio_task_t busy_t[THREADS];
	for (int i = 0; i < THREADS; i++)
		busy_t[i] = cio_spawn(queued_caller, NULL);
	wait_inside(THREADS);
	atomic_store(&waiter_rc, 1);
	cio_task_t q = cio_spawn(waiter_alloc, NULL);
	while (stats().queued < 1)
		CHECK_EQ(cio_sleep(MS), 0);
	CHECK_EQ(cio_cancel(q), 0);
	CHECK_EQ(cio_join(q, NULL), 0);
	CHECK_EQ(atomic_load(&waiter_rc), -ECANCELED);
	CHECK_EQ(atomic_load(&dropped_not_ran), 1);
	CHECK_EQ(stats().queued, 0);
	atomic_store(&gate, 1);
	for (int i = 0; i < THREADS; i++)
		CHECK_EQ(cio_join(busy_t[i], NULL), 0);
	CHECK_EQ(atomic_load(&ran), THREADS); /* not the cancelled one */

	/* Cancel a running job: the caller leaves at once; the job ends
	 * later on its thread and its result is dropped there. */
	atomic_store(&gate, 0);
	atomic_store(&ran, 0);
	cio_task_t w = cio_spawn(waiter_alloc, NULL);
	wait_inside(1);
	int64_t t0 = cio_now();
	CHECK_EQ(cio_cancel(w), 0);
	CHECK_EQ(cio_join(w, NULL), 0);
	CHECK(cio_now() - t0 < 1000 * MS); /* the job is held for ever */
	CHECK_EQ(atomic_load(&waiter_rc), -ECANCELED);
	CHECK_EQ(atomic_load(&ran), 0);
	CHECK_EQ(stats().running, 1);
	atomic_store(&gate, 1);
	while (atomic_load(&dropped_ran) < 1)
		CHECK_EQ(cio_sleep(MS), 0);
	CHECK_EQ(atomic_load(&ran), 1);

	/* A deadline: -ETIMEDOUT when it passes, not before. */
	atomic_store(&gate, 0);
	int64_t tok = cio_timeout_push(30 * MS);
	t0 = cio_now();
	CHECK_EQ(cio_blocking(gated, NULL, NULL), -ETIMEDOUT);
	int64_t took = cio_now() - t0;
	cio_deadline_pop(tok);
	CHECK(took >= 30 * MS);
	CHECK(took < 2000 * MS);
	/* A deadline already passed or a cancel pending: no job at all. */
	tok = cio_deadline_push(cio_now() - 1);
	CHECK_EQ(cio_blocking(add_one, NULL, NULL), -ETIMEDOUT);
	atomic_store(&dropped_not_ran, 0);
	CHECK_EQ(cio_blocking_drop(gated_alloc, NULL, drop_result, NULL), -ETIMEDOUT);
	CHECK_EQ(atomic_load(&dropped_not_ran), 1);
	cio_deadline_pop(tok);
	cio_cancel(cio_self());
	CHECK_EQ(cio_blocking(add_one, NULL, NULL), -ECANCELED);
	CHECK(cio_cancel_clear());
	atomic_store(&gate, 1);
	while (stats().running)
		CHECK_EQ(cio_sleep(MS), 0);

	/* Interrupts racing with completions: every call either returns the
	 * result or is interrupted, never both, never neither. */
	atomic_store(&dropped_ran, 0);
	atomic_store(&dropped_not_ran, 0);
	int done = 0, cut = 0;
	for (int i = 0; i < 2000; i++) {
		void *r = NULL;
		tok = cio_timeout_push((i % 50) * CIO_US);
		int rc = cio_blocking_drop(gated_alloc, NULL, drop_result, &r);
		cio_deadline_pop(tok);
		if (rc == 0) {
			CHECK_EQ(*(int *)r, 1234);
			free(r);
			done++;
		} else {
			CHECK_EQ(rc, -ETIMEDOUT);
			cut++;
		}
	}
	while (stats().running)
		CHECK_EQ(cio_sleep(MS), 0);
	CHECK_EQ(done + cut, 2000);
	/* Every call cut short dropped its job exactly once (ran or not);
	 * none that returned a result did. */
	CHECK_EQ(atomic_load(&dropped_ran) + atomic_load(&dropped_not_ran), cut);
	fprintf(stderr, "racing deadlines: %d done, %d cut short\n", done, cut);
}

/* --- getaddrinfo ---------------------------------------------------------------------- */

static void check_v4(const struct addrinfo *ai, const char *ip, int port)
{
	CHECK(ai);
	CHECK_EQ(ai->ai_family, AF_INET);
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
	char buf[INET_ADDRSTRLEN];
	CHECK(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf));
	CHECK(strcmp(buf, ip) == 0);
	CHECK_EQ(ntohs(sin->sin_port), port);
}

static void test_getaddrinfo(void)
{
	struct addrinfo *res = NULL;
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};

	/* From /etc/hosts, through the pool. */
	CHECK_EQ(cio_getaddrinfo("localhost", "8080", &hints, &res), 0);
	check_v4(res, "127.0.0.1", 8080);
	freeaddrinfo(res);

	/* Numeric: at once. */
	hints.ai_flags = AI_NUMERICHOST;
	CHECK_EQ(cio_getaddrinfo("127.0.0.1", "53", &hints, &res), 0);
	check_v4(res, "127.0.0.1", 53);
	freeaddrinfo(res);
	CHECK_EQ(cio_getaddrinfo("127.0.0.1", NULL, &hints, &res), 0);
	check_v4(res, "127.0.0.1", 0);
	freeaddrinfo(res);

	/* Not a numeric address: EAI_NONAME, as -ENOENT. */
	res = (void *)1;
	int rc = cio_getaddrinfo("not-an-address", "80", &hints, &res);
	CHECK_EQ(rc, -ENOENT);
	CHECK(res == NULL);
	CHECK_EQ(cio_gai_error(rc), EAI_NONAME);
	CHECK(strlen(gai_strerror(cio_gai_error(rc))) > 0);

	/* Errors found without the network, through the pool. */
	hints.ai_flags = 0;
	rc = cio_getaddrinfo("localhost", "no-such-service-xyz", &hints, &res);
	CHECK_EQ(rc, -EPROTONOSUPPORT);
	CHECK_EQ(cio_gai_error(rc), EAI_SERVICE);
	hints.ai_family = 12345;
	rc = cio_getaddrinfo("localhost", "80", &hints, &res);
	CHECK_EQ(rc, -EAFNOSUPPORT);
	CHECK_EQ(cio_gai_error(rc), EAI_FAMILY);
	CHECK_EQ(cio_gai_error(0), 0);
	CHECK_EQ(cio_gai_error(-EBADF), EAI_SYSTEM);
	CHECK_EQ(cio_getaddrinfo("localhost", "80", NULL, NULL), -EINVAL);

	/* Interrupted before it starts. */
	int64_t tok = cio_deadline_push(cio_now() - 1);
	CHECK_EQ(cio_getaddrinfo("localhost", "80", NULL, &res), -ETIMEDOUT);
	cio_deadline_pop(tok);

	/* Many at once, from many tasks. */
	hints.ai_family = AF_INET;
	for (int i = 0; i < 100; i++) {
		CHECK_EQ(cio_getaddrinfo("localhost", NULL, &hints, &res), 0);
		check_v4(res, "127.0.0.1", 0);
		freeaddrinfo(res);
	}
}

static void *gai_cancelled(void *arg)
{
	(void)arg;
	/* Busy threads: it waits in the queue, then is cancelled; or it
	 * runs and its result is freed when it ends. */
	struct addrinfo *res = NULL;
	int rc = cio_getaddrinfo("localhost", "80", NULL, &res);
	if (rc == 0)
		freeaddrinfo(res);
	else
		CHECK_EQ(rc, -ECANCELED);
	return NULL;
}

static void test_getaddrinfo_cancel(void)
{
	for (int i = 0; i < 50; i++) {
		cio_task_t t = cio_spawn(gai_cancelled, NULL);
		cio_sleep((i % 5) * 100 * CIO_US);
		cio_cancel(t);
		CHECK_EQ(cio_join(t, NULL), 0);
	}
	while (stats().running)
		CHECK_EQ(cio_sleep(MS), 0);
}

/* --- a job that learns it was abandoned --------------------------------------- */

static atomic_int saw_abandoned, saw_kept;

/* Works in slices until its caller gives up, or 5 s pass. */
static void *until_abandoned(void *arg)
{
	atomic_int *seen = arg;
	for (int i = 0; i < 5000; i++) {
		if (cio_blocking_abandoned()) {
			atomic_store(seen, 1);
			return NULL;
		}
		usleep(1000);
	}
	atomic_store(seen, 2); /* never told */
	return NULL;
}

static void *asks_once(void *arg)
{
	(void)arg;
	atomic_store(&saw_kept, cio_blocking_abandoned() ? 2 : 1);
	return NULL;
}

static void test_abandoned(void)
{
	CHECK(!cio_blocking_abandoned()); /* not a job */
	CHECK_EQ(cio_blocking(asks_once, NULL, NULL), 0);
	CHECK_EQ(atomic_load(&saw_kept), 1);
	int64_t t0 = cio_now();
	int64_t tok = cio_timeout_push(20 * MS);
	CHECK_EQ(cio_blocking(until_abandoned, &saw_abandoned, NULL), -ETIMEDOUT);
	cio_deadline_pop(tok);
	while (!atomic_load(&saw_abandoned) && cio_now() - t0 < 10 * CIO_SEC)
		CHECK_EQ(cio_sleep(MS), 0);
	CHECK_EQ(atomic_load(&saw_abandoned), 1);
	CHECK(cio_now() - t0 < 2 * CIO_SEC); /* told, not timed out */
}

static void *main_task(void *arg)
{
	(void)arg;
	TEST_CASE(results, test_results());
	TEST_CASE(queue_limit, test_queue_limit());
	TEST_CASE(cancel, test_cancel());
	TEST_CASE(getaddrinfo, test_getaddrinfo());
	TEST_CASE(getaddrinfo_cancel, test_getaddrinfo_cancel());
	TEST_CASE(abandoned, test_abandoned());
	return NULL;
}

/* --- a job that outlives its caller's runtime ------------------------------------------ */

static void *leave_early(void *arg)
{
	(void)arg;
	int64_t tok = cio_timeout_push(20 * MS);
	CHECK_EQ(cio_blocking_drop(gated_alloc, NULL, drop_result, NULL), -ETIMEDOUT);
	cio_deadline_pop(tok);
	return NULL; /* the runtime ends with the job still running */
}

static void test_outlive_runtime(void)
{
	cio_config cfg = test_backend_config();
	atomic_store(&gate, 0);
	atomic_store(&inside, 0);
	atomic_store(&dropped_ran, 0);
	CHECK_EQ(cio_run_with(&cfg, leave_early, NULL), 0);
	CHECK_EQ(atomic_load(&inside), 1); /* still running */
	atomic_store(&gate, 1);
	while (atomic_load(&dropped_ran) < 1)
		usleep(1000);
}

/* --- a job that never returns does not hold up a drain -------------------------------------- */

static atomic_int drain_waiter_rc;
static void *stuck_waiter(void *arg)
{
	(void)arg;
	atomic_store(&drain_waiter_rc, cio_blocking(gated, NULL, NULL));
	return NULL;
}

static void *drain_main(void *arg)
{
	(void)arg;
	cio_spawn_with(&(cio_spawn_opts){.detached = true}, stuck_waiter, NULL);
	wait_inside(1);
	CHECK_EQ(cio_drain(), 0);
	return NULL;
}

static void test_drain(void)
{
	cio_cores_config cc = {.all = test_backend_config(), .drain_timeout = 50 * MS,
			       .no_signals = true};
	atomic_store(&gate, 0);
	atomic_store(&inside, 0);
	atomic_store(&drain_waiter_rc, 1);
	int64_t t0 = cio_now();
	CHECK_EQ(cio_run_cores_with(&cc, 1, drain_main, NULL), 0);
	int64_t took = cio_now() - t0;
	CHECK_EQ(atomic_load(&drain_waiter_rc), -ECANCELED);
	CHECK(took >= 50 * MS);
	CHECK(took < 5000 * MS);
	CHECK_EQ(atomic_load(&inside), 1); /* the job still runs */
	atomic_store(&gate, 1);
	while (stats().running)
		usleep(1000);
}

static void test_idle_exit(void)
{
	/* Every thread leaves once idle for cio__blocking_idle_ns. */
	int64_t t0 = cio_now();
	while (stats().threads && cio_now() - t0 < 10 * CIO_SEC)
		usleep(10000);
	CHECK_EQ(stats().threads, 0);
	CHECK_EQ(stats().idle, 0);
}

#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif
#ifndef TEST_TSAN
#define TEST_TSAN 0
#endif

/* In a child forked while pool threads were alive (none of which crossed
 * the fork), a job still runs: the child starts its own threads. */
static void *forked_main(void *arg)
{
	(void)arg;
	void *r = NULL;
	int64_t token = cio_timeout_push(5 * CIO_SEC);
	int rc = cio_blocking(add_one, (void *)41, &r);
	cio_deadline_pop(token);
	CHECK_EQ(rc, 0);
	CHECK_EQ((intptr_t)r, 42);
	return NULL;
}

static void *warm_pool(void *arg)
{
	void *r;
	CHECK_EQ(cio_blocking(add_one, arg, &r), 0);
	return NULL;
}

/* --- shutting the pool down at the program's end ------------------------------------------ */

static void test_shutdown(void)
{
	/* Idle threads: gone at once. */
	CHECK_EQ(test_run(warm_pool, NULL), 0);
	CHECK(stats().threads > 0);
	CHECK_EQ(cio_blocking_shutdown(5 * CIO_SEC), 0);
	CHECK_EQ(stats().threads, 0);
	/* A job abandoned and still running: waited for within the time
	 * given, and only then. */
	cio_config cfg = test_backend_config();
	atomic_store(&gate, 0);
	atomic_store(&inside, 0);
	atomic_store(&dropped_ran, 0);
	CHECK_EQ(cio_run_with(&cfg, leave_early, NULL), 0);
	CHECK_EQ(cio_blocking_shutdown(20 * MS), -ETIMEDOUT);
	CHECK_EQ(stats().threads, 1);
	atomic_store(&gate, 1);
	CHECK_EQ(cio_blocking_shutdown(5 * CIO_SEC), 0);
	CHECK_EQ(atomic_load(&dropped_ran), 1);
	CHECK_EQ(stats().threads, 0);
	/* And the pool works again. */
	CHECK_EQ(test_run(warm_pool, NULL), 0);
	CHECK_EQ(cio_blocking_shutdown(5 * CIO_SEC), 0);
}

static void test_fork(void)
{
	CHECK_EQ(test_run(warm_pool, NULL), 0);
	CHECK(stats().threads > 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(test_run(forked_main, NULL) == 0 ? 0 : 1);
	int st;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 0);
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
#ifdef COREIO_TESTING
	cio__blocking_idle_ns = 300 * MS;
#endif
	CHECK_EQ(cio_blocking_config(THREADS, QUEUE), 0);
	CHECK_EQ(stats().threads, 0);
	CHECK_EQ(stats().max_threads, THREADS);
	int rc = test_run(main_task, NULL);
	if (rc)
		return rc;
	TEST_CASE(outlive_runtime, test_outlive_runtime());
	TEST_CASE(drain, test_drain());
	TEST_CASE(shutdown, test_shutdown());
	/* ThreadSanitizer refuses threads after a multi-threaded fork, and
	 * qemu-user 7.2 (scripts/check-aarch64.sh) crashes in one. */
	if (!TEST_TSAN && !getenv("COREIO_TEST_QEMU"))
		TEST_CASE(fork, test_fork());
	else
		TEST_CASE_OFF(fork, "a fork after pool threads, under TSan or qemu-user");
#ifdef COREIO_TESTING
	/* Threads of its own to leave, as when the cases before ran. */
	TEST_CASE(idle_exit, {
		CHECK_EQ(test_run(warm_pool, NULL), 0);
		test_idle_exit();
	});
#else
	(void)test_idle_exit;
	TEST_CASE_OFF(idle_exit, "needs COREIO_TESTING");
#endif
	fprintf(stderr, "ok\n");
	return test_cases_end();
}
