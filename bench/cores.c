/* cores.c - the cross-core call round trip against two plain threads
 * ping-ponging through eventfds, in the same run.
 *
 *   cores [ROUND_TRIPS] [REPEATS]
 *
 * Two CPUs, the first two of the affinity mask.  Measures, interleaved:
 *   eventfd     thread A writes B's eventfd and reads its own, B echoes:
 *               the classic cross-thread wake, four syscalls a round trip;
 *   coreio-*    one task on core 0 calls a no-op on core 1 with
 *               cio_core_call(), one call at a time (io_uring cores wake
 *               each other by MSG_RING, epoll cores by eventfd);
 *   coreio-*-poll the same with idle_poll_ns = 100 us on both cores: an
 *               idle core watches its inbox before sleeping;
 *   coreio-*-64 64 tasks calling at once: wakes batch, one per burst.
 * Reports ns per round trip (per call for the batched rows) and ratios
 * against eventfd. */
#include "bench.h"

#include <coreio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>

static int cpus[2];
static long trips;

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

/* --- eventfd ping-pong ---------------------------------------------------- */

static int efd[2];

static void *echo_thread(void *arg)
{
	(void)arg;
	pin(cpus[1]);
	uint64_t v;
	for (long i = 0; i < trips; i++) {
		if (read(efd[1], &v, sizeof v) != sizeof v ||
		    write(efd[0], &v, sizeof v) != sizeof v)
			abort();
	}
	return NULL;
}

static double eventfd_rtt(void)
{
	efd[0] = eventfd(0, EFD_CLOEXEC);
	efd[1] = eventfd(0, EFD_CLOEXEC);
	pthread_t t;
	pin(cpus[0]);
	pthread_create(&t, NULL, echo_thread, NULL);
	uint64_t v = 1;
	int64_t t0 = bench_now_ns();
	for (long i = 0; i < trips; i++) {
		if (write(efd[1], &v, sizeof v) != sizeof v ||
		    read(efd[0], &v, sizeof v) != sizeof v)
			abort();
	}
	double ns = (double)(bench_now_ns() - t0) / (double)trips;
	pthread_join(t, NULL);
	close(efd[0]);
	close(efd[1]);
	return ns;
}

/* --- cross-core calls --------------------------------------------------------- */

static void *noop(void *arg)
{
	return arg;
}

static int callers;
static double result_ns;
static atomic_int done_calling;

static void *caller(void *arg)
{
	long k = (long)arg;
	for (long i = k; i < trips; i += callers)
		if (cio_core_call(1, noop, NULL, NULL) < 0)
			abort();
	return NULL;
}

static void *core_main(void *arg)
{
	(void)arg;
	if (cio_core_id() == 1) {
		/* Serve until core 0 is done: a call needs a live core. */
		while (!atomic_load(&done_calling))
			cio_sleep(CIO_MS);
		return NULL;
	}
	cio_task_t t[64];
	int64_t t0 = cio_now();
	for (long k = 0; k < callers; k++)
		t[k] = cio_spawn(caller, (void *)k);
	for (long k = 0; k < callers; k++)
		cio_join(t[k], NULL);
	result_ns = (double)(cio_now() - t0) / (double)trips;
	atomic_store(&done_calling, 1);
	return NULL;
}

static double call_rtt(enum cio_backend b, int ncallers, int64_t poll)
{
	cio_config per[2] = {{.backend = b, .idle_poll_ns = poll},
			     {.backend = b, .idle_poll_ns = poll}};
	cio_cores_config cfg = {.core = per, .no_signals = true, .no_pin = true};
	callers = ncallers;
	atomic_store(&done_calling, 0);
	/* The launcher pins nothing here: the threads take the process's
	 * two CPUs in turn, as cio_run_cores() would. */
	cpu_set_t two;
	CPU_ZERO(&two);
	CPU_SET(cpus[0], &two);
	CPU_SET(cpus[1], &two);
	sched_setaffinity(0, sizeof two, &two);
	cfg.no_pin = false;
	if (cio_run_cores_with(&cfg, 2, core_main, NULL) < 0)
		return -1;
	return result_ns;
}

int main(int argc, char **argv)
{
	bench_init(); /* kernel name, line buffering; we re-pin below */
	trips = bench_arg(argc, argv, 1, 100000);
	int repeats = (int)bench_arg(argc, argv, 2, 5);
	if (repeats > BENCH_MAX_REPEATS)
		repeats = BENCH_MAX_REPEATS;
	cpu_set_t all;
	CPU_ZERO(&all);
	for (int c = 0; c < 2; c++)
		CPU_SET(c, &all);
	sched_setaffinity(0, sizeof all, &all);
	cpus[0] = 0;
	cpus[1] = 1;

	static const struct {
		const char *name;
		enum cio_backend b;
		int callers;
		int64_t poll;
	} rows[] = {
		{"coreio-uring", CIO_BACKEND_URING, 1, 0},
		{"coreio-epoll", CIO_BACKEND_EPOLL, 1, 0},
		{"coreio-uring-poll", CIO_BACKEND_URING, 1, 100 * CIO_US},
		{"coreio-epoll-poll", CIO_BACKEND_EPOLL, 1, 100 * CIO_US},
		{"coreio-uring-64", CIO_BACKEND_URING, 64, 0},
		{"coreio-epoll-64", CIO_BACKEND_EPOLL, 64, 0},
	};
	enum { NROWS = sizeof rows / sizeof rows[0] };
	double ev[BENCH_MAX_REPEATS], co[NROWS][BENCH_MAX_REPEATS];
	for (int r = 0; r < repeats; r++) {
		ev[r] = eventfd_rtt();
		for (int i = 0; i < NROWS; i++)
			co[i][r] = call_rtt(rows[i].b, rows[i].callers, rows[i].poll);
	}
	char extra[64];
	snprintf(extra, sizeof extra, "n=%ld cpus=%d,%d", trips, cpus[0], cpus[1]);
	bench_report("cores", "eventfd", "round_trip", "ns", ev, repeats, extra);
	for (int i = 0; i < NROWS; i++) {
		if (co[i][0] < 0) {
			printf("bench=cores impl=%s skipped: backend unavailable\n", rows[i].name);
			continue;
		}
		bench_report("cores", rows[i].name,
			     rows[i].callers > 1 ? "per_call" : "round_trip", "ns",
			     co[i], repeats, extra);
		bench_ratio("cores", rows[i].name, "eventfd", co[i], ev, repeats);
	}
	return 0;
}
