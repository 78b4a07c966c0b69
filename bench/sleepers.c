/* sleepers.c - a million tasks asleep at once on one thread: memory per
 * task, and how fast they are spawned and put to sleep.
 *
 * Each task has a 16 KiB stack and calls cio_sleep(1 hour).  With one VMA
 * per stack, vm.max_map_count (65530 here, left alone) would stop this
 * near 32k tasks; it runs because stack guards are MADV_GUARD_INSTALL
 * markers inside large arenas, which the output confirms
 * (guard_pages_madvise=1, vmas=...).
 *
 * Memory is the growth of the resident set (/proc/self/statm) from just
 * before the first spawn to when every task is asleep, divided by the
 * tasks: stack pages touched, task records, id table, timer heap.  The
 * floor is one 4 KiB page per stack.  The tasks are then cancelled, which
 * wakes them, and they finish.
 *
 * Usage: sleepers [tasks [repeats]]; defaults 1,000,000 and 5. */
#include "bench.h"

#include <coreio.h>

#define STACK_KIB 16

static long page_size;

static long rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, resident = 0;
	if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2) {
		fprintf(stderr, "sleepers: cannot read /proc/self/statm\n");
		exit(1);
	}
	fclose(f);
	return resident * page_size;
}

static long count_vmas(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	long n = 0;
	int c;
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static long read_max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long v = -1;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

struct round {
	long tasks;
	cio_task_t *ids;     /* allocated and touched before the baseline */
	long asleep, woken;
	/* results */
	double rss_kib_per_task, spawn_ns, first_run_ns, cancel_exit_ns, rate_m;
	long vmas;
	cio_stats st;
	const char *backend;
};

static struct round *cur;

static void *sleeper(void *arg)
{
	cur->asleep++;
	int rc = cio_sleep(3600 * (int64_t)1000000000);
	if (rc == -ECANCELED)
		cur->woken++;
	return NULL;
}

static void *sleepers_main(void *arg)
{
	struct round *r = arg;
	static const cio_spawn_opts opts = {.stack_size = STACK_KIB << 10, .detached = true};
	r->backend = cio_backend_name();

	long rss0 = rss_bytes();
	int64_t t0 = bench_now_ns();
	for (long i = 0; i < r->tasks; i++) {
		r->ids[i] = cio_spawn_with(&opts, sleeper, NULL);
		if (r->ids[i] < 0) {
			cio_stats_get(&r->st);
			fprintf(stderr, "sleepers: spawn %ld failed: %s "
					"(guard_pages_madvise=%d vmas=%ld)\n",
				i, cio_strerror((int)r->ids[i]),
				r->st.guard_pages_madvise, count_vmas());
			exit(1);
		}
	}
	int64_t t1 = bench_now_ns();
	/* The spawned tasks run ahead of us in the next tick, each up to its
	 * sleep. */
	while (r->asleep < r->tasks)
		cio_yield();
	int64_t t2 = bench_now_ns();
	long rss1 = rss_bytes();
	cio_stats_get(&r->st);
	r->vmas = count_vmas();

	for (long i = 0; i < r->tasks; i++)
		cio_cancel(r->ids[i]);
	cio_stats st;
	do {
		cio_yield();
		cio_stats_get(&st);
	} while (st.tasks_live > 1);
	int64_t t3 = bench_now_ns();
	if (r->woken != r->tasks) {
		fprintf(stderr, "sleepers: %ld of %ld tasks woke by cancel\n",
			r->woken, r->tasks);
		exit(1);
	}

	double n = (double)r->tasks;
	r->rss_kib_per_task = (double)(rss1 - rss0) / 1024.0 / n;
	r->spawn_ns = (double)(t1 - t0) / n;
	r->first_run_ns = (double)(t2 - t1) / n;
	r->cancel_exit_ns = (double)(t3 - t2) / n;
	r->rate_m = n / (double)(t2 - t0) * 1e3; /* million tasks per second */
	return NULL;
}

int main(int argc, char **argv)
{
	long tasks = bench_arg(argc, argv, 1, 1000000);
	int repeats = (int)bench_arg(argc, argv, 2, 5);
	if (repeats > BENCH_MAX_REPEATS) {
		fprintf(stderr, "usage: %s [tasks [repeats <= %d]]\n", argv[0],
			BENCH_MAX_REPEATS);
		return 2;
	}
	bench_init();
	page_size = sysconf(_SC_PAGESIZE);

	struct round r = {.tasks = tasks};
	r.ids = malloc((size_t)tasks * sizeof *r.ids);
	if (!r.ids) {
		fprintf(stderr, "sleepers: out of memory\n");
		return 1;
	}
	/* Touch the id array now: it is the bench's memory, not the tasks'. */
	memset(r.ids, 0, (size_t)tasks * sizeof *r.ids);
	cur = &r;

	double rss[BENCH_MAX_REPEATS], spawn[BENCH_MAX_REPEATS],
		first[BENCH_MAX_REPEATS], cancel[BENCH_MAX_REPEATS],
		rate[BENCH_MAX_REPEATS];
	long vmas = 0;
	for (int i = 0; i < repeats; i++) {
		/* A fresh runtime each repeat: its arenas are unmapped at the
		 * end, so every repeat starts from the same resident set. */
		r.asleep = r.woken = 0;
		int rc = cio_run(sleepers_main, &r);
		if (rc < 0) {
			fprintf(stderr, "sleepers: cio_run: %s\n", cio_strerror(rc));
			return 1;
		}
		rss[i] = r.rss_kib_per_task;
		spawn[i] = r.spawn_ns;
		first[i] = r.first_run_ns;
		cancel[i] = r.cancel_exit_ns;
		rate[i] = r.rate_m;
		if (r.vmas > vmas)
			vmas = r.vmas;
	}

	char extra[256];
	snprintf(extra, sizeof extra,
		 "tasks=%ld stack_kib=%d guard_pages_madvise=%d stacks_mapped=%llu "
		 "vmas=%ld max_map_count=%ld backend=%s",
		 tasks, STACK_KIB, r.st.guard_pages_madvise,
		 (unsigned long long)r.st.stacks_mapped, vmas, read_max_map_count(),
		 r.backend ? r.backend : "?");
	bench_report("sleepers", "coreio", "rss_per_task", "KiB", rss, repeats, extra);
	snprintf(extra, sizeof extra, "tasks=%ld", tasks);
	bench_report("sleepers", "coreio", "spawn", "ns", spawn, repeats, extra);
	bench_report("sleepers", "coreio", "first_run_to_sleep", "ns", first, repeats, extra);
	bench_report("sleepers", "coreio", "spawn_rate", "Mtasks/s", rate, repeats, extra);
	bench_report("sleepers", "coreio", "cancel_wake_exit", "ns", cancel, repeats, extra);
	free(r.ids);
	return 0;
}
