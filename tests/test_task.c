/* test_task.c - tasks: scheduling order and fairness, join results,
 * detach, stale ids, spawn errors. */
#include "check.h"

#include <stdint.h>

static int order[16], norder;

static void *record(void *arg)
{
	order[norder++] = (int)(intptr_t)arg;
	return arg;
}

static void *yield_then_record(void *arg)
{
	CHECK_EQ(cio_yield(), 0);
	order[norder++] = (int)(intptr_t)arg;
	return NULL;
}

/* Tasks run in spawn order, and a yield puts the caller behind every task
 * that was already runnable. */
static void test_order(void)
{
	norder = 0;
	cio_task_t a = cio_spawn(yield_then_record, (void *)1);
	cio_task_t b = cio_spawn(record, (void *)2);
	cio_task_t c = cio_spawn(record, (void *)3);
	CHECK(a > 0 && b > 0 && c > 0);
	CHECK_EQ(norder, 0); /* nothing runs before the spawner parks */
	void *r;
	CHECK_EQ(cio_join(a, NULL), 0);
	CHECK_EQ(norder, 3);
	CHECK_EQ(order[0], 2);
	CHECK_EQ(order[1], 3);
	CHECK_EQ(order[2], 1);
	CHECK_EQ(cio_join(b, &r), 0);
	CHECK(r == (void *)2);
	CHECK_EQ(cio_join(c, &r), 0);
	CHECK(r == (void *)3);
}

/* A task that yields forever does not starve a sleeper. */
static int spinning;
static void *spinner(void *arg)
{
	long *spins = arg;
	while (spinning) {
		cio_yield();
		++*spins;
	}
	return NULL;
}

static void test_fairness(void)
{
	long spins = 0;
	spinning = 1;
	cio_task_t s = cio_spawn(spinner, &spins);
	int64_t t0 = cio_now();
	CHECK_EQ(cio_sleep(5 * 1000000), 0);
	int64_t slept = cio_now() - t0;
	spinning = 0;
	CHECK_EQ(cio_join(s, NULL), 0);
	CHECK(spins > 10);                 /* the spinner ran meanwhile */
	CHECK(slept >= 5 * 1000000);
	CHECK(slept < 2000 * 1000000LL);   /* and did not starve the timer */
}

/* Join errors and stale ids. */
static void *ret_arg(void *arg) { return arg; }

static void test_join_errors(void)
{
	cio_task_t t = cio_spawn(ret_arg, (void *)42);
	CHECK(t > 0);
	CHECK_EQ(cio_join(cio_self(), NULL), -EDEADLK);
	void *r = NULL;
	CHECK_EQ(cio_join(t, &r), 0);
	CHECK(r == (void *)42);
	CHECK_EQ(cio_join(t, NULL), -ESRCH);     /* already joined */
	CHECK_EQ(cio_detach(t), -ESRCH);
	CHECK_EQ(cio_cancel(t), -ESRCH);
	CHECK_EQ(cio_join(0, NULL), -ESRCH);
	CHECK_EQ(cio_join(-5, NULL), -ESRCH);
	CHECK_EQ(cio_join(((cio_task_t)7 << 32) | 1000000, NULL), -ESRCH);

	/* The slot is reused by the next spawn, with a new generation: the
	 * old id still refers to nothing. */
	cio_task_t u = cio_spawn(ret_arg, (void *)7);
	CHECK(u > 0 && u != t);
	CHECK_EQ((uint32_t)u, (uint32_t)t); /* same slot... */
	CHECK_EQ(cio_join(t, NULL), -ESRCH); /* ...but the old id is dead */
	CHECK_EQ(cio_join(u, &r), 0);
	CHECK(r == (void *)7);

	/* Detached tasks cannot be joined, before or after they finish. */
	cio_task_t d = cio_spawn(ret_arg, NULL);
	CHECK_EQ(cio_detach(d), 0);
	CHECK_EQ(cio_detach(d), -EINVAL);
	CHECK_EQ(cio_join(d, NULL), -EINVAL);
	CHECK_EQ(cio_yield(), 0); /* d runs and is gone */
	CHECK_EQ(cio_join(d, NULL), -ESRCH);

	/* Detaching a finished, unjoined task frees it. */
	cio_task_t f = cio_spawn(ret_arg, NULL);
	CHECK_EQ(cio_yield(), 0);
	CHECK_EQ(cio_detach(f), 0);
	CHECK_EQ(cio_join(f, NULL), -ESRCH);

	/* Spawn refuses silly stack sizes. */
	CHECK_EQ(cio_spawn_with(&(cio_spawn_opts){.stack_size = 100}, ret_arg, NULL), -EINVAL);
	CHECK_EQ(cio_spawn_with(&(cio_spawn_opts){.stack_size = (size_t)4 << 30}, ret_arg, NULL), -EINVAL);
}

/* Two joiners: the second is refused. */
static void *joiner(void *arg)
{
	return (void *)(intptr_t)cio_join(*(cio_task_t *)arg, NULL);
}
static void *sleeper(void *arg)
{
	cio_sleep(1000000);
	return arg;
}

static void test_two_joiners(void)
{
	cio_task_t s = cio_spawn(sleeper, NULL);
	cio_task_t j = cio_spawn(joiner, &s);
	CHECK_EQ(cio_yield(), 0); /* j is now joining s */
	CHECK_EQ(cio_join(s, NULL), -EINVAL);
	CHECK_EQ(cio_detach(s), -EINVAL);
	void *r;
	CHECK_EQ(cio_join(j, &r), 0);
	CHECK_EQ((intptr_t)r, 0);
}

/* Names and self. */
static void *named(void *arg)
{
	(void)arg;
	CHECK(strcmp(cio_task_name(), "worker-1") == 0);
	return (void *)(intptr_t)cio_self();
}

static void test_names(void)
{
	cio_task_t t = cio_spawn_with(&(cio_spawn_opts){.name = "worker-1"}, named, NULL);
	void *r;
	CHECK_EQ(cio_join(t, &r), 0);
	CHECK_EQ((cio_task_t)(intptr_t)r, t);
	CHECK(strcmp(cio_task_name(), "main") == 0);
}

/* Detached tasks left running keep the runtime alive until they end. */
static int detached_done;
static void *late(void *arg)
{
	(void)arg;
	cio_sleep(2000000);
	detached_done = 1;
	return NULL;
}
static void *leave_detached(void *arg)
{
	(void)arg;
	cio_spawn_with(&(cio_spawn_opts){.detached = true}, late, NULL);
	return NULL;
}

static void *test_main(void *arg)
{
	(void)arg;
	TEST_CASE(order, test_order());
	TEST_CASE(fairness, test_fairness());
	TEST_CASE(join_errors, test_join_errors());
	TEST_CASE(two_joiners, test_two_joiners());
	TEST_CASE(names, test_names());
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_run(test_main, NULL);
	if (rc != 0)
		return rc;
	TEST_CASE(detached, {
		detached_done = 0;
		CHECK_EQ(cio_run(leave_detached, NULL), 0);
		CHECK_EQ(detached_done, 1);
		CHECK(cio_backend_name() == NULL); /* outside a runtime */
	});
	return test_cases_end();
}
