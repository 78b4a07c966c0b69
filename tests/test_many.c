/* test_many.c - many tasks: 100k live at once, and spawning until stacks
 * run out (-ENOMEM) with the runtime still working afterwards. */
#include "check.h"

#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS 1000000LL
#define LIVE 100000

static int64_t wake_at;
static size_t awake;

static void *nap(void *arg)
{
	CHECK_EQ(cio_sleep_until(wake_at), 0);
	awake++;
	return arg;
}

/* 100k tasks asleep at the same time, each joined with its own result. */
static void *hundred_k(void *arg)
{
	(void)arg;
	static cio_task_t ids[LIVE];
	int live = LIVE;
	cio_stats st;
	cio_stats_get(&st);
	if (!st.guard_pages_madvise) {
		/* Two mappings a stack: vm.max_map_count (65530 by default)
		 * holds about 32k.  Older kernels get what they can hold. */
		live = 30000;
		fprintf(stderr, "no MADV_GUARD_INSTALL here: %d tasks, not %d\n",
			live, LIVE);
	}
	awake = 0;
	for (int i = 0; i < live; i++) {
		ids[i] = cio_spawn_with(&(cio_spawn_opts){.stack_size = 16 << 10},
					nap, (void *)(intptr_t)i);
		CHECK(ids[i] > 0);
	}
	/* Set once the spawns are done (slow under ASan): none has run yet,
	 * and the 200 ms start only now. */
	wake_at = cio_now() + 200 * MS;
	CHECK_EQ(cio_yield(), 0); /* all of them run and go to sleep */
	cio_stats_get(&st);
	CHECK(st.tasks_live >= (uint64_t)live);
	CHECK_EQ(awake, 0);
	for (int i = 0; i < live; i++) {
		void *r;
		CHECK_EQ(cio_join(ids[i], &r), 0);
		CHECK_EQ((intptr_t)r, i);
	}
	CHECK_EQ(awake, live);
	return NULL;
}

static void *nap_until_cancelled(void *arg)
{
	CHECK_EQ(cio_sleep(CIO_NEVER), -ECANCELED);
	return arg;
}

/* Spawns sleepers until stacks cannot be had, then checks that the
 * runtime still works: the sleepers can be cancelled and joined, and new
 * tasks spawned. */
static void *until_enomem(void *arg)
{
	size_t cap = 400000, n = 0;
	cio_task_t *ids = malloc(cap * sizeof *ids);
	CHECK(ids);
	cio_task_t t;
	for (;;) {
		t = cio_spawn_with(&(cio_spawn_opts){.stack_size = 16 << 10},
				   nap_until_cancelled, NULL);
		if (t < 0 || n == cap)
			break;
		ids[n++] = t;
	}
	CHECK_EQ(t, -ENOMEM);
	fprintf(stderr, "spawned %zu tasks before -ENOMEM\n", n);
	CHECK(n > 1000);
	*(size_t *)arg = n;
	/* Free some stacks; spawning works again. */
	for (size_t i = 0; i < n; i++)
		CHECK_EQ(cio_cancel(ids[i]), 0);
	for (size_t i = 0; i < n; i++)
		CHECK_EQ(cio_join(ids[i], NULL), 0);
	t = cio_spawn(nap_until_cancelled, (void *)5);
	CHECK(t > 0);
	cio_cancel(t);
	void *r;
	CHECK_EQ(cio_join(t, &r), 0);
	CHECK((intptr_t)r == 5);
	free(ids);
	return NULL;
}

/* In a child: an address-space limit makes stack mapping fail. */
static void enomem_child(const char *guard)
{
	fflush(stderr);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		if (guard)
			setenv("COREIO_STACK_GUARD", guard, 1);
		else {
			/* Leave room for the heap but not for 100k stacks. */
			struct rlimit rl = {(rlim_t)2 << 30, (rlim_t)2 << 30};
			CHECK_EQ(setrlimit(RLIMIT_AS, &rl), 0);
		}
		size_t n = 0;
		CHECK_EQ(cio_run(until_enomem, &n), 0);
		_exit(0);
	}
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
}

/* Stacks beyond the cache that stay idle go back to the kernel: after a
 * wave of 3000 tasks, the trimming leaves about stack_cache of them. */
static void *wave(void *arg)
{
	(void)arg;
	static cio_task_t ids[3000];
	for (int i = 0; i < 3000; i++)
		CHECK((ids[i] = cio_spawn_with(&(cio_spawn_opts){.stack_size = 16 << 10},
					       nap, NULL)) > 0);
	wake_at = cio_now() + 10 * MS;
	for (int i = 0; i < 3000; i++)
		CHECK_EQ(cio_join(ids[i], NULL), 0);
	cio_stats st;
	cio_stats_get(&st);
	CHECK(st.stacks_mapped >= 3000); /* cached: a new wave would reuse them */
	/* A second wave reuses them: nothing new is mapped. */
	for (int i = 0; i < 3000; i++)
		CHECK((ids[i] = cio_spawn_with(&(cio_spawn_opts){.stack_size = 16 << 10},
					       nap, NULL)) > 0);
	for (int i = 0; i < 3000; i++)
		CHECK_EQ(cio_join(ids[i], NULL), 0);
	cio_stats st2;
	cio_stats_get(&st2);
	CHECK_EQ(st2.stacks_mapped, st.stacks_mapped);
	/* Idle for over two trim periods: the surplus goes. */
	CHECK_EQ(cio_sleep(2500 * MS), 0);
	cio_stats_get(&st);
	fprintf(stderr, "stacks mapped after idling: %llu (cache 100)\n",
		(unsigned long long)st.stacks_mapped);
	CHECK(st.stacks_mapped <= 110);
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_backend_missing();
	if (rc)
		return rc;
	TEST_CASE(hundred_k, CHECK_EQ(test_run(hundred_k, NULL), 0));
	TEST_CASE(wave, {
		cio_config small_cache = {.stack_cache = 100};
		CHECK_EQ(cio_run_with(&small_cache, wave, NULL), 0);
	});
	/* mprotect guards: two VMAs a stack, so vm.max_map_count stops us. */
	TEST_CASE(enomem_mprotect, enomem_child("mprotect"));
	/* Guard markers in large mappings: the address-space limit stops us.
	 * (Not under ASan, whose shadow memory alone exceeds any such limit.) */
#if defined(__SANITIZE_ADDRESS__)
	TEST_CASE_OFF(enomem_rlimit_as, "ASan reserves terabytes");
#else
	TEST_CASE(enomem_rlimit_as, enomem_child(NULL));
#endif
	return test_cases_end();
}
