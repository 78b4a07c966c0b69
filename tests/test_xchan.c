/* test_xchan.c - channels between cores: order with one and with several
 * sender cores, 1M elements across two cores, back-pressure, close while
 * tasks wait on both sides, and deadlines and cancels on both sides that
 * lose and duplicate nothing. */
#include "check.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

/* A channel the test cannot do without. */
static cio_xchan *xchan_make(size_t elem_size, size_t capacity)
{
	cio_xchan *ch;
	CHECK_EQ(cio_xchan_new(&ch, elem_size, capacity), 0);
	return ch;
}

#define MS CIO_MS

static int run_cores(int n, cio_fn *fn)
{
	cio_cores_config cc = {.all = test_backend_config(), .no_signals = true};
	return cio_run_cores_with(&cc, n, fn, NULL);
}

/* --- one runtime: the basics -------------------------------------------------- */

static atomic_int sent_count;
static void *sender_of_ten(void *arg)
{
	cio_xchan *ch = arg;
	for (int i = 0; i < 10; i++) {
		CHECK_EQ(cio_xchan_send(ch, &i), 0);
		atomic_fetch_add(&sent_count, 1);
	}
	return NULL;
}

static void *receiver_cancelled(void *arg)
{
	int v = -1;
	CHECK_EQ(cio_xchan_recv(arg, &v), -ECANCELED);
	CHECK_EQ(v, -1);
	return NULL;
}

static void *basics(void *arg)
{
	(void)arg;
	cio_xchan *bad = (cio_xchan *)&arg;
	CHECK_EQ(cio_xchan_new(&bad, 0, 4), -EINVAL);
	CHECK(bad == NULL);
	CHECK_EQ(cio_xchan_new(&bad, 4, 0), -EINVAL);
	CHECK_EQ(cio_xchan_new(&bad, SIZE_MAX - 8, 4), -EINVAL); /* overflows */
	CHECK_EQ(cio_xchan_new(&bad, 1 << 20, SIZE_MAX / 8), -EINVAL);
	CHECK(bad == NULL);
	cio_xchan_free(NULL);

	cio_xchan *ch = xchan_make(sizeof(int), 4);
	CHECK(ch);
	int v = -1;
	CHECK_EQ(cio_xchan_try_recv(ch, &v), -EAGAIN);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(cio_xchan_try_send(ch, &i), 0);
	CHECK_EQ(cio_xchan_try_send(ch, &v), -EAGAIN);

	/* Deadlines on both sides: nothing sent, nothing taken. */
	int64_t tok = cio_timeout_push(20 * MS);
	int64_t t0 = cio_now();
	int x = 99;
	CHECK_EQ(cio_xchan_send(ch, &x), -ETIMEDOUT);
	CHECK(cio_now() - t0 >= 20 * MS);
	cio_deadline_pop(tok);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(cio_xchan_recv(ch, &v), 0);
		CHECK_EQ(v, i);
	}
	tok = cio_timeout_push(20 * MS);
	v = -1;
	CHECK_EQ(cio_xchan_recv(ch, &v), -ETIMEDOUT);
	CHECK_EQ(v, -1);
	cio_deadline_pop(tok);
	/* A cancel pending: fails even though it could complete. */
	CHECK_EQ(cio_xchan_try_send(ch, &x), 0);
	cio_cancel(cio_self());
	CHECK_EQ(cio_xchan_recv(ch, &v), -ECANCELED);
	CHECK_EQ(cio_xchan_send(ch, &x), -ECANCELED);
	CHECK(cio_cancel_clear());
	CHECK_EQ(cio_xchan_recv(ch, &v), 0);
	CHECK_EQ(v, 99);

	/* A waiting receiver cancelled by another task. */
	cio_task_t r = cio_spawn(receiver_cancelled, ch);
	CHECK_EQ(cio_sleep(5 * MS), 0);
	CHECK_EQ(cio_cancel(r), 0);
	CHECK_EQ(cio_join(r, NULL), 0);

	/* Back-pressure within one runtime: the sender parks when full. */
	atomic_store(&sent_count, 0);
	cio_task_t s = cio_spawn(sender_of_ten, ch);
	CHECK_EQ(cio_sleep(10 * MS), 0);
	CHECK_EQ(atomic_load(&sent_count), 4);
	for (int i = 0; i < 10; i++) {
		CHECK_EQ(cio_xchan_recv(ch, &v), 0);
		CHECK_EQ(v, i);
	}
	CHECK_EQ(cio_join(s, NULL), 0);
	CHECK_EQ(atomic_load(&sent_count), 10);

	/* Close: senders refused, receivers drain first. */
	for (int i = 0; i < 3; i++)
		CHECK_EQ(cio_xchan_send(ch, &i), 0);
	cio_xchan_close(ch);
	cio_xchan_close(ch);
	CHECK_EQ(cio_xchan_send(ch, &x), -EPIPE);
	CHECK_EQ(cio_xchan_try_send(ch, &x), -EPIPE);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(cio_xchan_recv(ch, &v), 0);
		CHECK_EQ(v, i);
	}
	CHECK_EQ(cio_xchan_recv(ch, &v), -EPIPE);
	CHECK_EQ(cio_xchan_try_recv(ch, &v), -EPIPE);
	cio_xchan_free(ch);

	/* Odd sizes: an element of 3 bytes, a capacity of 3. */
	ch = xchan_make(3, 3);
	CHECK(ch);
	for (int lap = 0; lap < 5; lap++) {
		for (int i = 0; i < 3; i++)
			CHECK_EQ(cio_xchan_try_send(ch, (char[3]){(char)lap, (char)i, 7}), 0);
		CHECK_EQ(cio_xchan_try_send(ch, "abc"), -EAGAIN);
		for (int i = 0; i < 3; i++) {
			char e[3];
			CHECK_EQ(cio_xchan_try_recv(ch, e), 0);
			CHECK(e[0] == lap && e[1] == i && e[2] == 7);
		}
	}
	cio_xchan_free(ch);

	/* A capacity of one: each slot's sequence number takes every turn. */
	ch = xchan_make(sizeof(int), 1);
	CHECK(ch);
	atomic_store(&sent_count, 0);
	s = cio_spawn(sender_of_ten, ch);
	for (int i = 0; i < 10; i++) {
		CHECK_EQ(cio_xchan_recv(ch, &v), 0);
		CHECK_EQ(v, i);
	}
	CHECK_EQ(cio_join(s, NULL), 0);
	CHECK_EQ(cio_xchan_try_recv(ch, &v), -EAGAIN);
	cio_xchan_free(ch);
	return NULL;
}

/* --- a thread outside any runtime sends, a task receives ----------------------- */

#define FROM_THREAD 10000
static void *plain_thread_sender(void *arg)
{
	cio_xchan *ch = arg;
	for (int i = 0; i < FROM_THREAD; i++) {
		int rc;
		while ((rc = cio_xchan_try_send(ch, &i)) == -EAGAIN)
			sched_yield();
		CHECK_EQ(rc, 0);
	}
	cio_xchan_close(ch);
	return NULL;
}

static void *from_thread(void *arg)
{
	(void)arg;
	cio_xchan *ch = xchan_make(sizeof(int), 16);
	CHECK(ch);
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, plain_thread_sender, ch), 0);
	int v, want = 0, rc;
	while ((rc = cio_xchan_recv(ch, &v)) == 0)
		CHECK_EQ(v, want++);
	CHECK_EQ(rc, -EPIPE);
	CHECK_EQ(want, FROM_THREAD);
	pthread_join(th, NULL);
	cio_xchan_free(ch);
	return NULL;
}

/* --- 1M elements from one core to another, in order ------------------------------ */

#define MILLION 1000000
static cio_xchan *xc;
static atomic_long received;

static void *one_to_one(void *arg)
{
	(void)arg;
	if (cio_core_id() == 0) {
		for (uint64_t i = 0; i < MILLION; i++)
			CHECK_EQ(cio_xchan_send(xc, &i), 0);
		cio_xchan_close(xc);
	} else {
		uint64_t v, want = 0;
		int rc;
		while ((rc = cio_xchan_recv(xc, &v)) == 0) {
			CHECK_EQ(v, want);
			want++;
		}
		CHECK_EQ(rc, -EPIPE);
		atomic_store(&received, (long)want);
	}
	return NULL;
}

static void test_million(void)
{
	xc = xchan_make(sizeof(uint64_t), 1024);
	CHECK(xc);
	int64_t t0 = cio_now();
	CHECK_EQ(run_cores(2, one_to_one), 0);
	double secs = (double)(cio_now() - t0) / 1e9;
	CHECK_EQ(atomic_load(&received), MILLION);
	cio_xchan_free(xc);
	fprintf(stderr, "%d elements across 2 cores in %.3f s (%.0f ns each)\n",
		MILLION, secs, secs * 1e9 / MILLION);
}

/* --- several sender cores (and several tasks on each) ------------------------------ */

#define SENDER_CORES 3
#define TASKS_PER_CORE 4
#define PER_TASK 50000
#define NSENDERS (SENDER_CORES * TASKS_PER_CORE)

struct tagged {
	uint32_t sender;
	uint32_t seq;
};

static atomic_int senders_left;

static void *tagged_sender(void *arg)
{
	uint32_t id = (uint32_t)(intptr_t)arg;
	for (uint32_t i = 0; i < PER_TASK; i++)
		CHECK_EQ(cio_xchan_send(xc, &(struct tagged){id, i}), 0);
	if (atomic_fetch_sub(&senders_left, 1) == 1)
		cio_xchan_close(xc);
	return NULL;
}

static void *many_to_one(void *arg)
{
	(void)arg;
	int core = cio_core_id();
	if (core > 0) {
		cio_task_t t[TASKS_PER_CORE];
		for (int k = 0; k < TASKS_PER_CORE; k++)
			t[k] = cio_spawn(tagged_sender,
					 (void *)(intptr_t)((core - 1) * TASKS_PER_CORE + k));
		for (int k = 0; k < TASKS_PER_CORE; k++)
			CHECK_EQ(cio_join(t[k], NULL), 0);
		return NULL;
	}
	uint32_t next[NSENDERS] = {0};
	struct tagged e;
	long n = 0;
	int rc;
	while ((rc = cio_xchan_recv(xc, &e)) == 0) {
		CHECK(e.sender < NSENDERS);
		CHECK_EQ(e.seq, next[e.sender]); /* each sender's order holds */
		next[e.sender]++;
		n++;
	}
	CHECK_EQ(rc, -EPIPE);
	for (int s = 0; s < NSENDERS; s++)
		CHECK_EQ(next[s], PER_TASK);
	atomic_store(&received, n);
	return NULL;
}

static void test_many_senders(void)
{
	xc = xchan_make(sizeof(struct tagged), 64);
	CHECK(xc);
	atomic_store(&senders_left, NSENDERS);
	atomic_store(&received, 0);
	CHECK_EQ(run_cores(1 + SENDER_CORES, many_to_one), 0);
	CHECK_EQ(atomic_load(&received), (long)NSENDERS * PER_TASK);
	cio_xchan_free(xc);
}

/* --- back-pressure across cores ----------------------------------------------------- */

static atomic_int bp_step, bp_sent;

static void *bp_sender(void *arg)
{
	int v = 100;
	CHECK_EQ(cio_xchan_send(xc, &v), 0); /* full: parks until core 1 takes one */
	atomic_store(&bp_sent, 1);
	return arg;
}

static void *backpressure(void *arg)
{
	(void)arg;
	int v;
	if (cio_core_id() == 0) {
		for (int i = 0; i < 4; i++)
			CHECK_EQ(cio_xchan_try_send(xc, &i), 0);
		CHECK_EQ(cio_xchan_try_send(xc, &v), -EAGAIN);
		cio_task_t t = cio_spawn(bp_sender, NULL);
		CHECK_EQ(cio_sleep(30 * MS), 0);
		CHECK_EQ(atomic_load(&bp_sent), 0); /* still parked */
		atomic_store(&bp_step, 1);
		CHECK_EQ(cio_join(t, NULL), 0);
		CHECK_EQ(atomic_load(&bp_sent), 1);
		atomic_store(&bp_step, 2);
		return NULL;
	}
	while (atomic_load(&bp_step) < 1)
		CHECK_EQ(cio_sleep(MS), 0);
	CHECK_EQ(cio_xchan_recv(xc, &v), 0);
	CHECK_EQ(v, 0);
	while (atomic_load(&bp_step) < 2)
		CHECK_EQ(cio_sleep(MS), 0);
	for (int i = 1; i < 4; i++) {
		CHECK_EQ(cio_xchan_recv(xc, &v), 0);
		CHECK_EQ(v, i);
	}
	CHECK_EQ(cio_xchan_recv(xc, &v), 0);
	CHECK_EQ(v, 100);
	CHECK_EQ(cio_xchan_try_recv(xc, &v), -EAGAIN);
	return NULL;
}

static void test_backpressure(void)
{
	xc = xchan_make(sizeof(int), 4);
	CHECK(xc);
	CHECK_EQ(run_cores(2, backpressure), 0);
	cio_xchan_free(xc);
}

/* --- close while tasks wait on both sides ----------------------------------------------- */

/* `full` has senders waiting (on both cores), `empty` receivers. */
static cio_xchan *full, *empty;
static atomic_int parked_tasks, epipe_senders, epipe_receivers;

static void *blocked_sender(void *arg)
{
	(void)arg;
	int v = 7;
	atomic_fetch_add(&parked_tasks, 1);
	CHECK_EQ(cio_xchan_send(full, &v), -EPIPE);
	atomic_fetch_add(&epipe_senders, 1);
	return NULL;
}

static void *blocked_receiver(void *arg)
{
	(void)arg;
	int v;
	atomic_fetch_add(&parked_tasks, 1);
	CHECK_EQ(cio_xchan_recv(empty, &v), -EPIPE);
	atomic_fetch_add(&epipe_receivers, 1);
	return NULL;
}

static void *close_both(void *arg)
{
	(void)arg;
	cio_task_t t[6];
	for (int k = 0; k < 3; k++) {
		t[2 * k] = cio_spawn(blocked_sender, NULL);
		t[2 * k + 1] = cio_spawn(blocked_receiver, NULL);
	}
	if (cio_core_id() == 1) {
		while (atomic_load(&parked_tasks) < 12)
			CHECK_EQ(cio_sleep(MS), 0);
		CHECK_EQ(cio_sleep(20 * MS), 0); /* let them all park */
		cio_xchan_close(full);
		cio_xchan_close(empty);
	}
	for (int k = 0; k < 6; k++)
		CHECK_EQ(cio_join(t[k], NULL), 0);
	return NULL;
}

static void test_close_waiting(void)
{
	full = xchan_make(sizeof(int), 2);
	empty = xchan_make(sizeof(int), 2);
	CHECK(full && empty);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(cio_xchan_try_send(full, &i), 0);
	CHECK_EQ(run_cores(2, close_both), 0);
	CHECK_EQ(atomic_load(&epipe_senders), 6);
	CHECK_EQ(atomic_load(&epipe_receivers), 6);
	/* What was sent before the close is still there, then -EPIPE. */
	int v;
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(cio_xchan_try_recv(full, &v), 0);
		CHECK_EQ(v, i);
	}
	CHECK_EQ(cio_xchan_try_recv(full, &v), -EPIPE);
	cio_xchan_free(full);
	cio_xchan_free(empty);
}

/* --- deadlines and cancels on both sides: nothing lost, nothing twice ----------------------- */

#define CHAOS_N 100000
#define CHAOS_SENDERS 4
#define CHAOS_RECEIVERS 4
static atomic_uchar seen[CHAOS_N];
static atomic_int chaos_senders_left, chaos_receivers_left;
static atomic_long interrupted_sends, interrupted_recvs;
static cio_task_t chaos_receivers[CHAOS_RECEIVERS];

static void *chaos_sender(void *arg)
{
	uint32_t k = (uint32_t)(intptr_t)arg, seed = k + 1;
	for (uint32_t v = k; v < CHAOS_N; v += CHAOS_SENDERS) {
		for (;;) {
			seed = seed * 1103515245 + 12345;
			int64_t tok = cio_timeout_push((int64_t)(seed >> 16) % 50 * CIO_US);
			int rc = cio_xchan_send(xc, &v);
			cio_deadline_pop(tok);
			if (rc == 0)
				break;
			CHECK_EQ(rc, -ETIMEDOUT);
			atomic_fetch_add(&interrupted_sends, 1);
		}
	}
	if (atomic_fetch_sub(&chaos_senders_left, 1) == 1)
		cio_xchan_close(xc);
	return NULL;
}

static void *chaos_receiver(void *arg)
{
	uint32_t seed = (uint32_t)(intptr_t)arg + 77;
	for (;;) {
		uint32_t v = UINT32_MAX;
		seed = seed * 1103515245 + 12345;
		int64_t tok = cio_timeout_push((int64_t)(seed >> 16) % 50 * CIO_US);
		int rc = cio_xchan_recv(xc, &v);
		cio_deadline_pop(tok);
		if (rc == -EPIPE)
			break;
		if (rc < 0) {
			CHECK(rc == -ETIMEDOUT || rc == -ECANCELED);
			CHECK_EQ(v, UINT32_MAX); /* nothing taken */
			cio_cancel_clear();
			atomic_fetch_add(&interrupted_recvs, 1);
			continue;
		}
		CHECK(v < CHAOS_N);
		CHECK_EQ(atomic_fetch_add(&seen[v], 1), 0);
	}
	atomic_fetch_sub(&chaos_receivers_left, 1);
	return NULL;
}

static void *chaos(void *arg)
{
	(void)arg;
	if (cio_core_id() == 0) {
		cio_task_t t[CHAOS_SENDERS];
		for (int k = 0; k < CHAOS_SENDERS; k++)
			t[k] = cio_spawn(chaos_sender, (void *)(intptr_t)k);
		for (int k = 0; k < CHAOS_SENDERS; k++)
			CHECK_EQ(cio_join(t[k], NULL), 0);
		return NULL;
	}
	for (int k = 0; k < CHAOS_RECEIVERS; k++)
		chaos_receivers[k] = cio_spawn(chaos_receiver, (void *)(intptr_t)k);
	/* Cancels receivers at random while they run. */
	for (uint32_t i = 0, seed = 5; atomic_load(&chaos_receivers_left); i++) {
		seed = seed * 1103515245 + 12345;
		cio_cancel(chaos_receivers[(seed >> 16) % CHAOS_RECEIVERS]);
		cio_sleep((seed >> 8) % 100 * CIO_US);
	}
	for (int k = 0; k < CHAOS_RECEIVERS; k++)
		CHECK_EQ(cio_join(chaos_receivers[k], NULL), 0);
	return NULL;
}

static void test_chaos(void)
{
	xc = xchan_make(sizeof(uint32_t), 8);
	CHECK(xc);
	atomic_store(&chaos_senders_left, CHAOS_SENDERS);
	atomic_store(&chaos_receivers_left, CHAOS_RECEIVERS);
	CHECK_EQ(run_cores(2, chaos), 0);
	for (int v = 0; v < CHAOS_N; v++)
		CHECK_EQ(atomic_load(&seen[v]), 1);
	CHECK(atomic_load(&interrupted_sends) > 0);
	CHECK(atomic_load(&interrupted_recvs) > 0);
	fprintf(stderr, "chaos: %d elements, %ld sends and %ld receives interrupted\n",
		CHAOS_N, atomic_load(&interrupted_sends), atomic_load(&interrupted_recvs));
	cio_xchan_free(xc);
}

/* A task that waits while the last user of its runtime's station is
 * still leaving it (waiting for its own wake in flight) must stay armed:
 * L is cancelled, M's element makes a wake for L's wait that L leaves
 * behind, and N waits while L is still leaving.  N must get the next
 * element. */
static cio_xchan *leave_ch;
static volatile int leave_phase, leave_got;

static void *leave_l(void *arg)
{
	(void)arg;
	int v;
	CHECK_EQ(cio_xchan_recv(leave_ch, &v), -ECANCELED);
	return NULL;
}

static void *leave_m(void *arg)
{
	(void)arg;
	while (leave_phase < 1)
		CHECK_EQ(cio_yield(), 0);
	int x = 1;
	CHECK_EQ(cio_xchan_try_send(leave_ch, &x), 0);
	CHECK_EQ(cio_xchan_try_recv(leave_ch, &x), 0);
	leave_phase = 2;
	return NULL;
}

static void *leave_n(void *arg)
{
	(void)arg;
	while (leave_phase < 2)
		CHECK_EQ(cio_yield(), 0);
	CHECK_EQ(cio_yield(), 0);
	int v = 0;
	int64_t tok = cio_timeout_push(2 * CIO_SEC);
	CHECK_EQ(cio_xchan_recv(leave_ch, &v), 0);
	cio_deadline_pop(tok);
	leave_got = v;
	return NULL;
}

static void *station_leave_race(void *arg)
{
	(void)arg;
	leave_ch = xchan_make(sizeof(int), 1);
	CHECK(leave_ch);
	cio_task_t l = cio_spawn(leave_l, NULL), m = cio_spawn(leave_m, NULL),
		   n = cio_spawn(leave_n, NULL);
	CHECK(l > 0 && m > 0 && n > 0);
	CHECK_EQ(cio_yield(), 0);
	leave_phase = 1;
	CHECK_EQ(cio_cancel(l), 0);
	CHECK_EQ(cio_yield(), 0);
	CHECK_EQ(cio_sleep(20 * CIO_MS), 0);
	int y = 42;
	CHECK_EQ(cio_xchan_try_send(leave_ch, &y), 0);
	CHECK_EQ(cio_join(l, NULL), 0);
	CHECK_EQ(cio_join(m, NULL), 0);
	CHECK_EQ(cio_join(n, NULL), 0);
	CHECK_EQ(leave_got, 42);
	cio_xchan_free(leave_ch);
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_backend_missing();
	if (rc)
		return rc;
	TEST_CASE(basics, CHECK_EQ(test_run(basics, NULL), 0));
	TEST_CASE(from_thread, CHECK_EQ(test_run(from_thread, NULL), 0));
	TEST_CASE(station_leave_race, CHECK_EQ(test_run(station_leave_race, NULL), 0));
	int fds = test_count_fds();
	TEST_CASE(million, test_million());
	TEST_CASE(many_senders, test_many_senders());
	TEST_CASE(backpressure, test_backpressure());
	TEST_CASE(close_waiting, test_close_waiting());
	TEST_CASE(chaos, test_chaos());
	CHECK_EQ(test_count_fds(), fds);
	fprintf(stderr, "ok\n");
	return test_cases_end();
}
