/* spawn.c - nanoseconds to spawn, run and finish an empty task whose stack
 * comes from the runtime's pool, in two shapes, against the Boost.Context
 * floor measured in the same run:
 *
 *   coreio-batch  spawn 1000 detached tasks, then cio_yield() until all
 *                 have run; the shape of a server spawning per request.
 *   coreio-join   spawn one task and cio_join() it, in a loop; the shape
 *                 of a fork-join helper, paying the park and wake too.
 *   coreio-group  a task group of 1000 empty members, spawned and waited
 *                 for, in a loop: the cost a member adds over coreio-join,
 *                 its inheritance of deadline and cancel included.
 *   boost         make_fcontext() on a reused stack, jump in, jump back:
 *                 no scheduler, no id, no stack pool; the floor.
 *
 * Usage: spawn [tasks [repeats]]; defaults 100,000 and 11.  Each round
 * starts with an untimed batch, so the pool holds warm stacks. */
#include "bench.h"
#include "peers/peers.h"

#include <coreio.h>

#define BATCH 1000 /* below the pool's default cache of 1024 stacks */

static long ran;

static void *empty(void *arg)
{
	ran++;
	return NULL;
}

struct spawn_round {
	long tasks;
	int64_t ns;
	const char *backend;
};

static void spawn_batch(long k)
{
	static const cio_spawn_opts detached = {.detached = true};
	long before = ran;
	for (long i = 0; i < k; i++)
		if (cio_spawn_with(&detached, empty, NULL) < 0) {
			fprintf(stderr, "spawn: cio_spawn_with failed\n");
			exit(1);
		}
	/* One yield normally suffices: the spawned tasks run in the next tick
	 * ahead of the caller.  Loop anyway, to not depend on that. */
	while (ran - before < k)
		cio_yield();
}

static void *batch_main(void *arg)
{
	struct spawn_round *r = arg;
	r->backend = cio_backend_name();
	spawn_batch(BATCH); /* warm the pool */
	long rounds = r->tasks / BATCH;
	int64_t t0 = bench_now_ns();
	for (long i = 0; i < rounds; i++)
		spawn_batch(BATCH);
	r->ns = bench_now_ns() - t0;
	r->tasks = rounds * BATCH;
	return NULL;
}

static void *join_main(void *arg)
{
	struct spawn_round *r = arg;
	spawn_batch(BATCH);
	int64_t t0 = bench_now_ns();
	for (long i = 0; i < r->tasks; i++) {
		cio_task_t t = cio_spawn(empty, NULL);
		if (t < 0 || cio_join(t, NULL) < 0) {
			fprintf(stderr, "spawn: spawn/join failed\n");
			exit(1);
		}
	}
	r->ns = bench_now_ns() - t0;
	return NULL;
}

static int empty_member(void *arg)
{
	(void)arg;
	ran++;
	return 0;
}

static void *group_main(void *arg)
{
	struct spawn_round *r = arg;
	spawn_batch(BATCH);
	long rounds = r->tasks / BATCH;
	int64_t t0 = bench_now_ns();
	for (long k = 0; k < rounds; k++) {
		cio_group *g;
		if (cio_group_new(&g, NULL) < 0)
			exit(1);
		for (int i = 0; i < BATCH; i++)
			if (cio_group_spawn(g, empty_member, NULL) < 0) {
				fprintf(stderr, "spawn: cio_group_spawn failed\n");
				exit(1);
			}
		if (cio_group_wait(g) < 0)
			exit(1);
		cio_group_free(g);
	}
	r->ns = bench_now_ns() - t0;
	r->tasks = rounds * BATCH;
	return NULL;
}

static const char *coreio_backend = "?";

static double run_coreio(cio_fn *fn, long tasks)
{
	struct spawn_round r = {.tasks = tasks};
	int rc = cio_run(fn, &r);
	if (rc < 0) {
		fprintf(stderr, "spawn: cio_run: %s\n", cio_strerror(rc));
		exit(1);
	}
	if (r.backend)
		coreio_backend = r.backend;
	return (double)r.ns / (double)r.tasks;
}

enum { BATCHED, JOINED, GROUPED, BOOST, NIMPL };
static const char *const names[NIMPL] = {"coreio-batch", "coreio-join", "coreio-group", "boost"};

static double run_one(int impl, long n)
{
	switch (impl) {
	case BATCHED: return run_coreio(batch_main, n);
	case JOINED: return run_coreio(join_main, n);
	case GROUPED: return run_coreio(group_main, n);
	default: return (double)peer_boost_spawn_ns(n) / (double)n;
	}
}

int main(int argc, char **argv)
{
	long n = bench_arg(argc, argv, 1, 100000);
	int repeats = (int)bench_arg(argc, argv, 2, 11);
	if (n < BATCH || repeats > BENCH_MAX_REPEATS) {
		fprintf(stderr, "usage: %s [tasks >= %d [repeats <= %d]]\n",
			argv[0], BATCH, BENCH_MAX_REPEATS);
		return 2;
	}
	bench_init();
	for (int i = 0; i < NIMPL; i++)
		run_one(i, BATCH);

	double v[NIMPL][BENCH_MAX_REPEATS];
	for (int r = 0; r < repeats; r++)
		for (int k = 0; k < NIMPL; k++) {
			int impl = (r + k) % NIMPL;
			v[impl][r] = run_one(impl, n);
		}

	char extra[128];
	for (int i = 0; i < NIMPL; i++) {
		if (i == BOOST)
			snprintf(extra, sizeof extra, "n=%ld", n);
		else
			snprintf(extra, sizeof extra, "n=%ld stack_kib=256 backend=%s",
				 i == JOINED ? n : n / BATCH * BATCH, coreio_backend);
		bench_report("spawn", names[i], "spawn_run_exit", "ns",
				    v[i], repeats, extra);
	}
	bench_ratio("spawn", "coreio-batch", "boost", v[BATCHED], v[BOOST], repeats);
	bench_ratio("spawn", "coreio-join", "boost", v[JOINED], v[BOOST], repeats);
	bench_ratio("spawn", "coreio-group", "coreio-join", v[GROUPED], v[JOINED], repeats);
	return 0;
}
