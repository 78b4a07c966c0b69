/* test_cancel.c - deadlines and cancellation: sleeping tasks, joins,
 * nested deadline scopes, accuracy of expiry, and cancel-vs-deadline. */
#include "check.h"

#include <stdint.h>

#define MS 1000000LL

static void *sleep_long(void *arg)
{
	int64_t t0 = cio_now();
	int rc = cio_sleep(10000 * MS);
	*(int64_t *)arg = cio_now() - t0;
	return (void *)(intptr_t)rc;
}

/* A sleeping task, cancelled from another, wakes at once with -ECANCELED
 * and every later blocking call fails too, until it clears the request. */
static void *sleep_then_more(void *arg)
{
	(void)arg;
	int rc = cio_sleep(10000 * MS);
	CHECK_EQ(rc, -ECANCELED);
	CHECK(cio_cancelled());
	CHECK_EQ(cio_sleep(1), -ECANCELED);   /* the request stands */
	CHECK_EQ(cio_yield(), -ECANCELED);
	CHECK(cio_cancel_clear());
	CHECK(!cio_cancelled());
	CHECK(!cio_cancel_clear());
	CHECK_EQ(cio_sleep(MS), 0);           /* cleared: blocks again */
	return (void *)1;
}

static void test_cancel_sleeper(void)
{
	int64_t took = 0;
	cio_task_t t = cio_spawn(sleep_long, &took);
	CHECK_EQ(cio_sleep(2 * MS), 0);
	CHECK_EQ(cio_cancel(t), 0);
	void *r;
	CHECK_EQ(cio_join(t, &r), 0);
	CHECK_EQ((intptr_t)r, -ECANCELED);
	CHECK(took < 5000 * MS);

	t = cio_spawn(sleep_then_more, NULL);
	CHECK_EQ(cio_yield(), 0);
	CHECK_EQ(cio_cancel(t), 0);
	CHECK_EQ(cio_join(t, &r), 0);
	CHECK((intptr_t)r == 1);
}

/* Cancelling a task before it first runs: its first blocking call fails. */
static void test_cancel_before_start(void)
{
	int64_t took = 0;
	cio_task_t t = cio_spawn(sleep_long, &took);
	CHECK_EQ(cio_cancel(t), 0);
	void *r;
	CHECK_EQ(cio_join(t, &r), 0);
	CHECK_EQ((intptr_t)r, -ECANCELED);
}

/* A join interrupted by a deadline leaves the target joinable. */
static void *sleep_ms(void *arg)
{
	cio_sleep((int64_t)(intptr_t)arg * MS);
	return (void *)99;
}

static void test_join_deadline(void)
{
	cio_task_t t = cio_spawn(sleep_ms, (void *)30);
	int64_t tok = cio_timeout_push(5 * MS);
	CHECK_EQ(cio_join(t, NULL), -ETIMEDOUT);
	cio_deadline_pop(tok);
	void *r;
	CHECK_EQ(cio_join(t, &r), 0);
	CHECK((intptr_t)r == 99);
}

/* Deadline expiry is checked against bounds, not exact times. */
static void test_deadline_accuracy(void)
{
	for (int i = 0; i < 5; i++) {
		int64_t want = (int64_t)(2 + 3 * i) * MS;
		int64_t t0 = cio_now();
		int64_t tok = cio_deadline_push(t0 + want);
		CHECK_EQ(cio_deadline(), t0 + want);
		int rc = cio_sleep(1000 * MS);
		int64_t took = cio_now() - t0;
		cio_deadline_pop(tok);
		CHECK_EQ(rc, -ETIMEDOUT);
		CHECK(took >= want);
		CHECK(took < want + 1000 * MS);
		CHECK_EQ(cio_deadline(), CIO_NEVER);
	}
	/* A sleep shorter than the deadline ends normally. */
	int64_t tok = cio_timeout_push(500 * MS);
	CHECK_EQ(cio_sleep(MS), 0);
	cio_deadline_pop(tok);
	/* A deadline already passed fails at once, without blocking. */
	tok = cio_deadline_push(cio_now() - 1);
	int64_t t0 = cio_now();
	CHECK_EQ(cio_sleep(1000 * MS), -ETIMEDOUT);
	CHECK_EQ(cio_yield(), -ETIMEDOUT);
	CHECK(cio_now() - t0 < 500 * MS);
	cio_deadline_pop(tok);
	CHECK_EQ(cio_sleep(0), 0);
}

/* Nested scopes: the inner one can only shorten the deadline; leaving it
 * restores the outer one. */
static void test_nested_scopes(void)
{
	int64_t t0 = cio_now();
	int64_t outer = cio_deadline_push(t0 + 40 * MS);
	int64_t inner = cio_deadline_push(t0 + 10000 * MS); /* no extension */
	CHECK_EQ(cio_deadline(), t0 + 40 * MS);
	int64_t inner2 = cio_deadline_push(t0 + 5 * MS);
	CHECK_EQ(cio_deadline(), t0 + 5 * MS);
	CHECK_EQ(cio_sleep(1000 * MS), -ETIMEDOUT);
	CHECK(cio_now() - t0 < 40 * MS + 1000 * MS);
	cio_deadline_pop(inner2);
	CHECK_EQ(cio_deadline(), t0 + 40 * MS);
	CHECK_EQ(cio_sleep(1000 * MS), -ETIMEDOUT);
	CHECK(cio_now() - t0 >= 40 * MS);
	CHECK_EQ(strcmp(cio_strerror(-ETIMEDOUT), "Deadline passed"), 0);
	cio_deadline_pop(inner);
	cio_deadline_pop(outer);
	CHECK_EQ(cio_deadline(), CIO_NEVER);
	/* The next blocking call clears it: a kernel's -ETIMEDOUT then reads
	 * as the kernel's. */
	CHECK_EQ(cio_sleep(0), 0);
	CHECK(strcmp(cio_strerror(-ETIMEDOUT), "Deadline passed") != 0);
	/* A deadline met while parked (the timer, not the entry check). */
	int64_t tok = cio_timeout_push(2 * MS);
	CHECK_EQ(cio_sleep(1000 * MS), -ETIMEDOUT);
	cio_deadline_pop(tok);
	CHECK_EQ(strcmp(cio_strerror(ETIMEDOUT), "Deadline passed"), 0);
	CHECK_EQ(cio_yield(), 0);
	CHECK(strcmp(cio_strerror(ETIMEDOUT), "Deadline passed") != 0);
}

/* A task inside nested scopes, cancelled: -ECANCELED, not -ETIMEDOUT. */
static void *scoped_sleeper(void *arg)
{
	(void)arg;
	int64_t a = cio_timeout_push(5000 * MS);
	int64_t b = cio_timeout_push(3000 * MS);
	int rc = cio_sleep(10000 * MS);
	cio_deadline_pop(b);
	cio_deadline_pop(a);
	return (void *)(intptr_t)rc;
}

static void test_cancel_in_scopes(void)
{
	cio_task_t t = cio_spawn(scoped_sleeper, NULL);
	CHECK_EQ(cio_sleep(MS), 0);
	CHECK_EQ(cio_cancel(t), 0);
	void *r;
	CHECK_EQ(cio_join(t, &r), 0);
	CHECK_EQ((intptr_t)r, -ECANCELED);
}

/* Cancel and deadline together: cancel wins. */
static void *deadline_then_cancelled(void *arg)
{
	cio_task_t *self = arg;
	int64_t tok = cio_deadline_push(cio_now() - 1);
	cio_cancel(*self);
	int rc = cio_sleep(MS);
	cio_deadline_pop(tok);
	cio_cancel_clear();
	return (void *)(intptr_t)rc;
}

static void test_cancel_beats_deadline(void)
{
	cio_task_t t;
	t = cio_spawn(deadline_then_cancelled, &t);
	void *r;
	CHECK_EQ(cio_join(t, &r), 0);
	CHECK_EQ((intptr_t)r, -ECANCELED);
}

/* The main task may cancel itself; errors for unknown ids. */
static void test_self_cancel(void)
{
	CHECK_EQ(cio_cancel(cio_self()), 0);
	CHECK_EQ(cio_sleep(MS), -ECANCELED);
	CHECK(cio_cancel_clear());
	CHECK_EQ(cio_cancel(12345), -ESRCH);
}

/* Intervals keep their phase and count skipped ticks. */
static void test_interval(void)
{
	cio_interval iv;
	CHECK_EQ(cio_interval_init(&iv, 0), -EINVAL);
	CHECK_EQ(cio_interval_init(&iv, 3 * MS), 0);
	int64_t t0 = cio_now();
	int64_t first = iv.next;
	for (int i = 0; i < 5; i++)
		CHECK(cio_interval_wait(&iv) >= 1);
	CHECK(cio_now() - t0 >= 5 * 3 * MS - 3 * MS);
	CHECK_EQ((iv.next - first) % (3 * MS), 0); /* still in phase */
	/* Busy past three ticks: the next wait reports them, at once. */
	int64_t busy_until = cio_now() + 10 * MS;
	while (cio_now() < busy_until)
		;
	int64_t n = cio_interval_wait(&iv);
	CHECK(n >= 3);
	CHECK_EQ((iv.next - first) % (3 * MS), 0);
}

/* Timers fire in order of their deadline, whatever the arming order. */
static int fired[64], nfired;

static int64_t base_time;
static void *sleep_slot(void *arg)
{
	int i = (int)(intptr_t)arg;
	CHECK_EQ(cio_sleep_until(base_time + (int64_t)i * MS), 0);
	fired[nfired++] = i;
	return NULL;
}

static void test_timer_order(void)
{
	cio_task_t t[32];
	/* Far enough ahead that all 32 are armed before the first is due,
	 * even if this thread is held up for a while. */
	base_time = cio_now() + 50 * MS;
	nfired = 0;
	/* Arm in a scrambled order. */
	for (int k = 0; k < 32; k++)
		t[k] = cio_spawn(sleep_slot, (void *)(intptr_t)((k * 13) % 32));
	for (int k = 0; k < 32; k++)
		CHECK_EQ(cio_join(t[k], NULL), 0);
	CHECK_EQ(nfired, 32);
	for (int k = 1; k < 32; k++)
		CHECK(fired[k - 1] < fired[k]);
}

/* Shield scopes: a cancel is held off until the pop; the shield's own
 * deadline replaces an outer one, and bounds the cleanup. */
static int shield_rc[4];
static int64_t shield_slept; /* how long the held-off sleep took */
static void *shielded_cleanup(void *arg)
{
	(void)arg;
	int64_t tok = cio_shield_push(200 * MS);
	int64_t t0 = cio_now();
	shield_rc[0] = cio_sleep(30 * MS);  /* cancelled meanwhile: held off */
	shield_slept = cio_now() - t0;
	shield_rc[1] = cio_cancelled();      /* it stands, though */
	cio_deadline_pop(tok);
	shield_rc[2] = cio_sleep(1000 * MS); /* now it interrupts */
	return NULL;
}

static void test_shield(void)
{
	cio_task_t t = cio_spawn(shielded_cleanup, NULL);
	CHECK_EQ(cio_sleep(5 * MS), 0);
	CHECK_EQ(cio_cancel(t), 0);
	CHECK_EQ(cio_join(t, NULL), 0);
	CHECK_EQ(shield_rc[0], 0);
	CHECK_EQ(shield_rc[1], 1);
	CHECK_EQ(shield_rc[2], -ECANCELED);
	/* The whole sleep, not cut short.  (Measured by the task itself: a
	 * stopped process may wake main only after the sleep's end.) */
	CHECK(shield_slept >= 30 * MS);

	/* In place of the outer deadline, not within it. */
	int64_t t0 = cio_now();
	int64_t outer = cio_timeout_push(5 * MS);
	CIO_SHIELDED(100 * MS) {
		CHECK_EQ(cio_sleep(20 * MS), 0);
		CHECK(cio_deadline() > t0 + 50 * MS);
	}
	CHECK_EQ(cio_sleep(1000 * MS), -ETIMEDOUT); /* the outer one again */
	CHECK_EQ(cio_deadline_pop(outer), 0);

	/* Bounded by its own deadline. */
	t0 = cio_now();
	CIO_SHIELDED(10 * MS) {
		CHECK_EQ(cio_sleep(1000 * MS), -ETIMEDOUT);
	}
	CHECK(cio_now() - t0 < 500 * MS);
	CHECK_EQ(cio_deadline(), CIO_NEVER);

	/* A self-cancel inside: held off, then seen. */
	CIO_SHIELDED(100 * MS) {
		CHECK_EQ(cio_cancel(cio_self()), 0);
		CHECK_EQ(cio_yield(), 0);
	}
	CHECK_EQ(cio_yield(), -ECANCELED);
	CHECK(cio_cancel_clear());
}

static void *test_main(void *arg)
{
	(void)arg;
	TEST_CASE(cancel_sleeper, test_cancel_sleeper());
	TEST_CASE(cancel_before_start, test_cancel_before_start());
	TEST_CASE(join_deadline, test_join_deadline());
	TEST_CASE(deadline_accuracy, test_deadline_accuracy());
	TEST_CASE(nested_scopes, test_nested_scopes());
	TEST_CASE(cancel_in_scopes, test_cancel_in_scopes());
	TEST_CASE(cancel_beats_deadline, test_cancel_beats_deadline());
	TEST_CASE(self_cancel, test_self_cancel());
	TEST_CASE(interval, test_interval());
	TEST_CASE(timer_order, test_timer_order());
	TEST_CASE(shield, test_shield());
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_run(test_main, NULL);
	return rc ? rc : test_cases_end();
}
