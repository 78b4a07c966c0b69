/* test_group.c - task groups: the scope waits for every member; errors,
 * fail_fast, deadlines and cancellation reaching members, inheritance at
 * spawn, nesting, a member that ignores its cancel, many members, and a
 * group used from another core. */
#include "check.h"

#include <malloc.h>
#include <stdatomic.h>
#include <string.h>
#include <stdint.h>

#define MS CIO_MS

static int ok(void *arg)
{
	(void)arg;
	return 0;
}

/* Sleeps arg ms; returns what the sleep returned. */
static int sleeper(void *arg)
{
	return cio_sleep((int64_t)(intptr_t)arg * MS);
}

static int fail_after(void *arg)
{
	cio_sleep((int64_t)(intptr_t)arg * MS);
	return -EIO;
}

static void test_basic(void)
{
	cio_group *g;
	CHECK_EQ(cio_group_new(&g, NULL), 0);
	for (int i = 0; i < 10; i++)
		CHECK_EQ(cio_group_spawn(g, i % 2 ? ok : sleeper, (void *)(intptr_t)i), i);
	CHECK_EQ(cio_group_status(g, 9), -EINPROGRESS);
	CHECK_EQ(cio_group_wait(g), 0);
	CHECK_EQ(cio_group_size(g), 10);
	for (size_t i = 0; i < 10; i++)
		CHECK_EQ(cio_group_status(g, i), 0);
	CHECK_EQ(cio_group_status(g, 10), -EINVAL);
	CHECK_EQ(cio_group_spawn(g, ok, NULL), -EPIPE); /* closed */
	CHECK_EQ(cio_group_spawn(g, NULL, NULL), -EINVAL);
	CHECK_EQ(cio_group_wait(g), 0); /* again: nothing to wait for */
	cio_group_free(g);
	/* An empty group. */
	CHECK_EQ(cio_group_new(&g, NULL), 0);
	CHECK_EQ(cio_group_wait(g), 0);
	cio_group_free(g);
}

/* The first error is the group's; without fail_fast the others finish,
 * with it they are cancelled. */
static void test_errors(bool fail_fast)
{
	cio_group *g;
	CHECK_EQ(cio_group_new(&g, &(cio_group_opts){.fail_fast = fail_fast}), 0);
	/* With fail_fast the sleepers sleep long, so that a stalled process
	 * cannot see them end before the cancel. */
	intptr_t sleep_ms = fail_fast ? 2000 : 60;
	int64_t t0 = cio_now();
	CHECK_EQ(cio_group_spawn(g, sleeper, (void *)sleep_ms), 0);
	CHECK_EQ(cio_group_spawn(g, fail_after, (void *)5), 1);
	CHECK_EQ(cio_group_spawn(g, sleeper, (void *)sleep_ms), 2);
	CHECK_EQ(cio_group_wait(g), -EIO);
	int64_t took = cio_now() - t0;
	CHECK_EQ(cio_group_status(g, 1), -EIO);
	if (fail_fast) {
		CHECK(took < 1000 * MS);
		CHECK_EQ(cio_group_status(g, 0), -ECANCELED);
		CHECK_EQ(cio_group_status(g, 2), -ECANCELED);
	} else {
		CHECK(took >= 60 * MS);
		CHECK_EQ(cio_group_status(g, 0), 0);
		CHECK_EQ(cio_group_status(g, 2), 0);
	}
	cio_group_free(g);
}

/* Members that use the waiter's stack: an interrupted wait returns only
 * after they are done with it. */
struct slot {
	int slept;
	int written;
};

static int uses_slot(void *arg)
{
	struct slot *s = arg;
	s->slept = cio_sleep(1000 * MS);
	s->written = 1;
	return 0;
}

static void test_deadline_reaches_members(void)
{
	struct slot s[4] = {{0}};
	cio_group *g;
	CHECK_EQ(cio_group_new(&g, NULL), 0);
	int64_t t0 = cio_now();
	for (int i = 0; i < 4; i++)
		CHECK_EQ(cio_group_spawn(g, uses_slot, &s[i]), i);
	int64_t tok = cio_timeout_push(20 * MS);
	CHECK_EQ(cio_group_wait(g), -ETIMEDOUT);
	cio_deadline_pop(tok);
	CHECK(cio_now() - t0 < 500 * MS);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(s[i].written, 1);
		CHECK_EQ(s[i].slept, -ECANCELED);
		CHECK_EQ(cio_group_status(g, (size_t)i), 0);
	}
	cio_group_free(g);
}

static void *plain_sleeper(void *arg)
{
	return (void *)(intptr_t)sleeper(arg);
}

/* Inherited at spawn: the spawner's deadline, and a cancel standing
 * against it. */
static void test_inheritance(void)
{
	cio_group *g;
	CHECK_EQ(cio_group_new(&g, NULL), 0);
	int64_t tok = cio_timeout_push(10 * MS);
	CHECK_EQ(cio_group_spawn(g, sleeper, (void *)1000), 0);
	cio_deadline_pop(tok);
	CHECK_EQ(cio_cancel(cio_self()), 0);
	CHECK_EQ(cio_group_spawn(g, sleeper, (void *)1000), 1);
	CHECK(cio_cancel_clear());
	CHECK_EQ(cio_group_spawn(g, sleeper, (void *)1), 2); /* nothing inherited */
	CHECK_EQ(cio_group_wait(g), -ECANCELED); /* member 1 failed first */
	CHECK_EQ(cio_group_status(g, 0), -ETIMEDOUT);
	CHECK_EQ(cio_group_status(g, 1), -ECANCELED);
	CHECK_EQ(cio_group_status(g, 2), 0);
	cio_group_free(g);
	/* A plain spawn inherits nothing. */
	tok = cio_timeout_push(5 * MS);
	cio_task_t t = cio_spawn(plain_sleeper, (void *)20);
	cio_deadline_pop(tok);
	void *r;
	CHECK_EQ(cio_join(t, &r), 0);
	CHECK_EQ((int)(intptr_t)r, 0);
}

/* Nested groups, cancelled from outside: the cancel reaches the inner
 * members through the outer member that waits for them. */
static atomic_int inner_cancelled;

static int inner_member(void *arg)
{
	(void)arg;
	int rc = cio_sleep(1000 * MS);
	if (rc == -ECANCELED)
		atomic_fetch_add(&inner_cancelled, 1);
	return rc;
}

static int outer_member(void *arg)
{
	(void)arg;
	cio_group *g;
	CHECK_EQ(cio_group_new(&g, NULL), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(cio_group_spawn(g, inner_member, NULL), i);
	int rc = cio_group_wait(g);
	cio_group_free(g);
	return rc;
}

static void *owner(void *arg)
{
	(void)arg;
	cio_group *g;
	CHECK_EQ(cio_group_new(&g, NULL), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(cio_group_spawn(g, outer_member, NULL), i);
	int rc = cio_group_wait(g);
	for (size_t i = 0; i < 3; i++)
		CHECK_EQ(cio_group_status(g, i), -ECANCELED);
	cio_group_free(g);
	return (void *)(intptr_t)rc;
}

static void test_nested_cancel(void)
{
	cio_task_t t = cio_spawn(owner, NULL);
	CHECK_EQ(cio_sleep(10 * MS), 0);
	CHECK_EQ(cio_cancel(t), 0);
	void *r;
	CHECK_EQ(cio_join(t, &r), 0);
	CHECK_EQ((int)(intptr_t)r, -ECANCELED);
	CHECK_EQ(atomic_load(&inner_cancelled), 9);
}

/* A member that ignores its cancel for 30 ms is waited for all the same;
 * cio_group_cancel() reaches members spawned later too. */
static int stubborn(void *arg)
{
	int64_t until = cio_now() + 30 * MS;
	while (cio_now() < until) {
		cio_cancel_clear();
		cio_sleep(MS);
	}
	*(int *)arg = 1;
	return 0;
}

/* Cleanup in a shield scope: bounded by the shield's own deadline. */
static int shielded_member(void *arg)
{
	int rc = 0;
	CIO_SHIELDED(30 * MS) {
		rc = cio_sleep(1000 * MS);
	}
	*(int *)arg = rc;
	return 0;
}

/* A cancelled task's cleanup in a shield may use a group: its members
 * are not born cancelled. */
static int cleanup_members(void *arg)
{
	(void)arg;
	return cio_sleep(5 * MS);
}

static void *cancelled_cleanup(void *arg)
{
	int *rc = arg;
	CHECK_EQ(cio_cancel(cio_self()), 0);
	CIO_SHIELDED(1000 * MS) {
		cio_group *g;
		CHECK_EQ(cio_group_new(&g, NULL), 0);
		for (int i = 0; i < 3; i++)
			CHECK_EQ(cio_group_spawn(g, cleanup_members, NULL), i);
		*rc = cio_group_wait(g);
		cio_group_free(g);
	}
	return NULL;
}

static void test_shielded_spawn(void)
{
	int rc = 1;
	CHECK_EQ(cio_join(cio_spawn(cancelled_cleanup, &rc), NULL), 0);
	CHECK_EQ(rc, 0);
}

static void test_ignores_cancel(void)
{
	int shield_rc = 1;
	cio_group *sg;
	CHECK_EQ(cio_group_new(&sg, NULL), 0);
	int64_t s0 = cio_now();
	CHECK_EQ(cio_group_spawn(sg, shielded_member, &shield_rc), 0);
	int64_t stok = cio_timeout_push(5 * MS);
	CHECK_EQ(cio_group_wait(sg), -ETIMEDOUT);
	cio_deadline_pop(stok);
	CHECK_EQ(shield_rc, -ETIMEDOUT); /* its own 30 ms, not cancelled */
	CHECK(cio_now() - s0 >= 30 * MS);
	CHECK(cio_now() - s0 < 500 * MS);
	cio_group_free(sg);

	int done = 0;
	cio_group *g;
	CHECK_EQ(cio_group_new(&g, NULL), 0);
	int64_t t0 = cio_now();
	CHECK_EQ(cio_group_spawn(g, stubborn, &done), 0);
	int64_t tok = cio_timeout_push(5 * MS);
	CHECK_EQ(cio_group_wait(g), -ETIMEDOUT);
	cio_deadline_pop(tok);
	CHECK_EQ(done, 1);
	CHECK(cio_now() - t0 >= 30 * MS);
	cio_group_free(g);

	CHECK_EQ(cio_group_new(&g, NULL), 0);
	cio_group_cancel(g);
	CHECK_EQ(cio_group_spawn(g, sleeper, (void *)1000), 0);
	CHECK_EQ(cio_group_wait(g), -ECANCELED);
	CHECK_EQ(cio_group_status(g, 0), -ECANCELED);
	cio_group_free(g);
}

#define MANY 100000

static void test_many(void)
{
	cio_group *g;
	CHECK_EQ(cio_group_new(&g, NULL), 0);
	for (int i = 0; i < MANY; i++) {
		CHECK_EQ(cio_group_spawn(g, ok, NULL), i);
		if (i % 1000 == 999)
			CHECK_EQ(cio_yield(), 0); /* let members end */
	}
	CHECK_EQ(cio_group_wait(g), 0);
	CHECK_EQ(cio_group_size(g), MANY);
	cio_group_free(g);
}

static int named(void *arg)
{
	(void)arg;
	char big[384 << 10]; /* more than the default 256 KiB stack holds */
	memset(big, 1, sizeof big);
	__asm__ volatile("" : : "r"(big) : "memory");
	return strcmp(cio_task_name(), "conn") == 0 ? 0 : -EINVAL;
}

/* An accept loop's group: members without end, in memory that follows
 * the members running; cancels and fail_fast still reach them all. */
static void test_unbounded(void)
{
	cio_group *g;
	cio_group_opts o = {.unbounded = true, .fail_fast = true, .stack_size = 512 << 10,
			    .name = "conn"};
	CHECK_EQ(cio_group_new(&g, &o), 0);
	struct mallinfo2 before = mallinfo2();
	for (int i = 0; i < MANY; i++) {
		CHECK_EQ(cio_group_spawn(g, i % 1000 ? ok : named, NULL), 0);
		if (i % 100 == 99)
			CHECK_EQ(cio_yield(), 0); /* let members end */
	}
	/* 100 members at most at once: two chunks of entries, not 100,000
	 * entries' 4.8 MB. */
	CHECK(mallinfo2().uordblks - before.uordblks < 64 << 10);
	CHECK_EQ(cio_group_size(g), MANY);
	CHECK_EQ(cio_group_status(g, 0), -EINVAL);
	for (int i = 0; i < 10; i++)
		CHECK_EQ(cio_group_spawn(g, sleeper, (void *)(intptr_t)10000), 0);
	CHECK_EQ(cio_group_spawn(g, fail_after, (void *)(intptr_t)0), 0);
	int64_t t0 = cio_now();
	CHECK_EQ(cio_group_wait(g), -EIO); /* named() passed: no -EINVAL */
	CHECK(cio_now() - t0 < 5000 * MS); /* the sleepers were cancelled */
	cio_group_free(g);

	/* A stack size spawn refuses is refused for each member. */
	o.stack_size = 1;
	CHECK_EQ(cio_group_new(&g, &o), 0);
	CHECK_EQ(cio_group_spawn(g, ok, NULL), -EINVAL);
	CHECK_EQ(cio_group_wait(g), 0);
	CHECK_EQ(cio_group_size(g), 0);
	cio_group_free(g);
}

static void *test_main(void *arg)
{
	(void)arg;
	TEST_CASE(basic, test_basic());
	TEST_CASE(errors, test_errors(false));
	TEST_CASE(errors_fail_fast, test_errors(true));
	TEST_CASE(deadline_reaches_members, test_deadline_reaches_members());
	TEST_CASE(inheritance, test_inheritance());
	TEST_CASE(nested_cancel, test_nested_cancel());
	TEST_CASE(ignores_cancel, test_ignores_cancel());
	TEST_CASE(shielded_spawn, test_shielded_spawn());
	TEST_CASE(many, test_many());
	TEST_CASE(unbounded, test_unbounded());
	return NULL;
}

/* A group belongs to its runtime: another core's task is refused. */
static cio_group *core0_group;
static atomic_int refused, cores_done;

static void *other_core(void *arg)
{
	(void)arg;
	if (cio_group_spawn(core0_group, ok, NULL) == -EPERM && cio_group_wait(core0_group) == -EPERM)
		atomic_store(&refused, 1);
	return NULL;
}

static void *cores_main(void *arg)
{
	(void)arg;
	if (cio_core_id() != 0) {
		while (!atomic_load(&cores_done)) /* stay to take the call */
			cio_sleep(MS);
		return NULL;
	}
	CHECK_EQ(cio_group_new(&core0_group, NULL), 0);
	CHECK_EQ(cio_core_call(1, other_core, NULL, NULL), 0);
	CHECK_EQ(atomic_load(&refused), 1);
	CHECK_EQ(cio_group_wait(core0_group), 0);
	cio_group_free(core0_group);
	atomic_store(&cores_done, 1);
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_run(test_main, NULL);
	if (rc)
		return rc;
	TEST_CASE(cores, {
		cio_cores_config cc = {.all = test_backend_config(), .no_signals = true};
		CHECK_EQ(cio_run_cores_with(&cc, 2, cores_main, NULL), 0);
	});
	return test_cases_end();
}
