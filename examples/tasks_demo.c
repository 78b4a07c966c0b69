/* tasks_demo.c - the demo `make demo` runs until networking lands: a task
 * workload that shows what the core costs.
 *
 *   1. spawn and join 1M tasks, in waves of 10k live at once;
 *   2. ping-pong 1M messages between two tasks over channels;
 *   3. 100k tasks asleep at once with 16 KiB stacks: memory per task.
 *
 * Prints tasks/s, switches/s and RSS per task, and the backend. */
#define _GNU_SOURCE
#include <coreio.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAVE 10000

static void *empty(void *arg)
{
	return arg;
}

static long rss_kib(void)
{
	long kib = -1;
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static int spawn_join(long total)
{
	static cio_task_t ids[WAVE];
	cio_stats s0, s1;
	cio_stats_get(&s0);
	int64_t t0 = cio_now();
	for (long done = 0; done < total; done += WAVE) {
		for (int i = 0; i < WAVE; i++)
			if ((ids[i] = cio_spawn(empty, (void *)(intptr_t)i)) < 0)
				return (int)ids[i];
		for (int i = 0; i < WAVE; i++) {
			void *r;
			int rc = cio_join(ids[i], &r);
			if (rc < 0 || (intptr_t)r != i)
				return rc < 0 ? rc : -EIO;
		}
	}
	double secs = (double)(cio_now() - t0) / 1e9;
	cio_stats_get(&s1);
	printf("spawn+join:  %ld tasks in %.3f s: %.2f M tasks/s, %.0f ns/task, %.2f M switches/s\n",
	       total, secs, total / secs / 1e6, secs * 1e9 / total,
	       (double)(s1.switches - s0.switches) / secs / 1e6);
	return 0;
}

struct pingpong {
	cio_chan *to, *from;
	long rounds;
};

static void *ponger(void *arg)
{
	struct pingpong *p = arg;
	long v;
	while (cio_chan_recv(p->to, &v) == 0) {
		v++;
		if (cio_chan_send(p->from, &v) < 0)
			break;
	}
	return NULL;
}

static int ping_pong(long rounds)
{
	struct pingpong p = {.rounds = rounds};
	int rc = cio_chan_new(&p.to, sizeof(long), 1);
	if (rc == 0)
		rc = cio_chan_new(&p.from, sizeof(long), 1);
	if (rc < 0) {
		cio_chan_free(p.to);
		return rc;
	}
	cio_task_t t = cio_spawn(ponger, &p);
	if (t < 0)
		return (int)t;
	cio_stats s0, s1;
	cio_stats_get(&s0);
	int64_t t0 = cio_now();
	long v = 0;
	for (long i = 0; i < rounds; i++) {
		if (cio_chan_send(p.to, &v) < 0 || cio_chan_recv(p.from, &v) < 0)
			return -EPIPE;
	}
	double secs = (double)(cio_now() - t0) / 1e9;
	cio_stats_get(&s1);
	cio_chan_close(p.to);
	cio_join(t, NULL);
	cio_chan_free(p.to);
	cio_chan_free(p.from);
	if (v != rounds)
		return -EIO;
	printf("ping-pong:   %ld round trips in %.3f s: %.0f ns/round trip, %.2f M switches/s\n",
	       rounds, secs, secs * 1e9 / rounds,
	       (double)(s1.switches - s0.switches) / secs / 1e6);
	return 0;
}

static void *nap(void *arg)
{
	cio_sleep_until(*(int64_t *)arg);
	return NULL;
}

static int memory_per_task(long n)
{
	cio_task_t *ids = malloc((size_t)n * sizeof *ids);
	if (!ids)
		return -ENOMEM;
	int64_t wake = CIO_NEVER;
	long before = rss_kib();
	int64_t t0 = cio_now();
	for (long i = 0; i < n; i++) {
		ids[i] = cio_spawn_with(&(cio_spawn_opts){.stack_size = 16 << 10}, nap, &wake);
		if (ids[i] < 0) {
			n = i;
			break;
		}
	}
	cio_yield(); /* every one of them runs and goes to sleep */
	double secs = (double)(cio_now() - t0) / 1e9;
	long after = rss_kib();
	cio_stats st;
	cio_stats_get(&st);
	printf("sleepers:    %ld tasks asleep at once, %.2f KiB RSS per task "
	       "(16 KiB stacks, %s guards), spawned and parked in %.3f s\n",
	       n, (double)(after - before) / n,
	       st.guard_pages_madvise ? "MADV_GUARD_INSTALL" : "mprotect", secs);
	for (long i = 0; i < n; i++)
		cio_cancel(ids[i]);
	for (long i = 0; i < n; i++)
		cio_join(ids[i], NULL);
	free(ids);
	return 0;
}

static void *demo(void *arg)
{
	int *rc = arg;
	printf("coreio %s task demo, backend %s\n", cio_version(), cio_backend_name());
	if ((*rc = spawn_join(1000000)) < 0 ||
	    (*rc = ping_pong(1000000)) < 0 ||
	    (*rc = memory_per_task(100000)) < 0)
		fprintf(stderr, "demo failed: %s\n", cio_strerror(*rc));
	return NULL;
}

int main(void)
{
	int rc = 0;
	int run = cio_run(demo, &rc);
	if (run < 0)
		fprintf(stderr, "cio_run: %s\n", cio_strerror(run));
	return run < 0 || rc < 0;
}
