/* bench.h - helpers shared by the core benchmarks: clock, CPU pinning,
 * sample statistics and the one-line, key=value result format.
 *
 * Every result line is self-contained (bench, impl, metric, unit, median,
 * min, max, repeats, kernel, commit), so that bench/core.sh, or anyone
 * pasting one line into an issue, needs nothing else to read it. */
#ifndef COREIO_BENCH_H
#define COREIO_BENCH_H

#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef COREIO_BENCH_COMMIT
#define COREIO_BENCH_COMMIT "unknown"
#endif

#define BENCH_MAX_REPEATS 64

static inline int64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char bench_kernel_buf[128];
static int bench_cpu = -1;

/* Pins the process to one CPU: a task migrating mid-run would measure the
 * scheduler of the kernel, not ours.  COREIO_BENCH_CPU picks the CPU;
 * by default the last one, which takes fewer device interrupts than CPU 0
 * on these VMs. */
static inline void bench_init(void)
{
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(bench_kernel_buf, sizeof bench_kernel_buf, "%s", u.release);
	else
		snprintf(bench_kernel_buf, sizeof bench_kernel_buf, "unknown");

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	const char *env = getenv("COREIO_BENCH_CPU");
	int cpu = env && *env ? atoi(env) : (int)(ncpu > 1 ? ncpu - 1 : 0);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) == 0)
		bench_cpu = cpu;
	else
		fprintf(stderr, "bench: cannot pin to CPU %d: %s; running unpinned\n",
			cpu, strerror(errno));
	/* Line-buffered even into a pipe, so that a slow run shows progress. */
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline const char *bench_kernel(void)
{
	return bench_kernel_buf;
}

/* Positive integer from argv[i], or `dflt` when absent; exits on junk. */
static inline long bench_arg(int argc, char **argv, int i, long dflt)
{
	if (argc <= i)
		return dflt;
	char *end;
	errno = 0;
	long v = strtol(argv[i], &end, 10);
	if (errno || *end || v <= 0) {
		fprintf(stderr, "%s: argument %d must be a positive integer, not '%s'\n",
			argv[0], i, argv[i]);
		exit(2);
	}
	return v;
}

/* Order statistics over a copy, leaving the samples in run order. */
struct bench_summary {
	double median, min, max;
};

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static inline struct bench_summary bench_summarise(const double *v, int n)
{
	double s[BENCH_MAX_REPEATS];
	memcpy(s, v, (size_t)n * sizeof *s);
	qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
	struct bench_summary r = {
		.median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2,
		.min = s[0],
		.max = s[n - 1],
	};
	return r;
}

/* One measurement: `v` holds one value per repeat.  `extra` is appended
 * as is (more key=value pairs), or NULL. */
static inline struct bench_summary bench_report(const char *bench, const char *impl,
						const char *metric, const char *unit,
						const double *v, int n, const char *extra)
{
	struct bench_summary s = bench_summarise(v, n);
	printf("bench=%s impl=%s metric=%s unit=%s median=%.2f min=%.2f max=%.2f "
	       "repeats=%d%s%s cpu=%d kernel=%s commit=%s\n",
	       bench, impl, metric, unit, s.median, s.min, s.max, n,
	       extra ? " " : "", extra ? extra : "", bench_cpu, bench_kernel(),
	       COREIO_BENCH_COMMIT);
	return s;
}

/* A ratio of two measurements of the same run, `a` over `b`, each with one
 * value per repeat: of the medians, of the minima (the least disturbed
 * repeat of each), and the median of the per-repeat ratios, which pairs
 * values measured next to each other and so cancels most slow phases. */
static inline void bench_ratio(const char *bench, const char *num, const char *den,
			       const double *a, const double *b, int n)
{
	double paired[BENCH_MAX_REPEATS];
	for (int i = 0; i < n; i++)
		paired[i] = a[i] / b[i];
	struct bench_summary sa = bench_summarise(a, n), sb = bench_summarise(b, n);
	printf("bench=%s ratio=%s/%s unit=x median=%.2f min=%.2f paired_median=%.2f "
	       "cpu=%d kernel=%s commit=%s\n",
	       bench, num, den, sa.median / sb.median, sa.min / sb.min,
	       bench_summarise(paired, n).median, bench_cpu, bench_kernel(),
	       COREIO_BENCH_COMMIT);
}

#endif
