/* fileio.c - random 4 KiB reads from one file through coreio, for
 * comparison with fio's io_uring engine on the same file (bench/files.sh).
 *
 *   fileio --file PATH [--direct] [--backend uring|epoll] [--depth 32]
 *          [--bs 4096] [--seconds 3] [--warmup-ms 300]
 *
 * `depth` tasks each loop cio_pread() of one block-aligned block at a
 * random offset (xorshift64*, one generator per task) into their own
 * aligned buffer, for a fixed time; every read must return the whole
 * block.  After a warm-up it counts the reads and the process's
 * CPU time (getrusage: user + system, the blocking pool's threads
 * included) over the measured window, and prints one line:
 *
 *   bench=files impl=coreio-uring mode=buffered iops=... cpu_us_per_io=...
 *
 * It pins itself to COREIO_BENCH_CPU (bench.h; the script passes 0).
 * Buffered reads need the file in the page cache to measure the cache:
 * the script reads it once first. */
#include "bench.h"

#include <coreio.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>

static const char *path;
static int direct, depth = 32;
static size_t bs = 4096;
static double seconds = 3;
static long warmup_ms = 300;

static int fd = -1;
static uint64_t nblocks;
static uint64_t ios, errors;
static int stop;

/* The measured window.  The readers themselves check the clock (every
 * 16 reads): on epoll a read the page cache serves is made on the spot,
 * so a reader may run for long stretches without parking, and a timer
 * task would not be looked at in time. */
static int64_t t_start, t_end;
static int started;
static uint64_t n0, n1;
static double c0, c1;
static int64_t w0, w1;

static inline uint64_t xorshift64s(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void *reader(void *arg)
{
	uint64_t seed = 0x9E3779B97F4A7C15ULL * ((uint64_t)(uintptr_t)arg + 1);
	char *buf;
	if (cio_alloc_aligned((void **)&buf, bs, 4096) < 0)
		abort();
	while (!stop) {
		/* Multiply-shift: an unbiased-enough block index without a
		 * division in the loop. */
		uint64_t blk = (uint64_t)(((unsigned __int128)xorshift64s(&seed) * nblocks) >> 64);
		ssize_t r = cio_pread(fd, buf, bs, (int64_t)(blk * bs));
		if (r != (ssize_t)bs) {
			if (errors++ == 0)
				fprintf(stderr, "fileio: pread at %llu: %zd (%s)\n",
					(unsigned long long)(blk * bs), r,
					r < 0 ? strerror((int)-r) : "short");
			stop = 1;
			break;
		}
		if ((++ios & 15) == 0) {
			int64_t now = bench_now_ns();
			if (!started && now >= t_start) {
				started = 1;
				n0 = ios, c0 = cpu_s(), w0 = now;
			}
			if (now >= t_end) {
				n1 = ios, c1 = cpu_s(), w1 = now;
				stop = 1;
			}
		}
	}
	free(buf);
	return NULL;
}

struct result {
	double iops, cpu_us_per_io, secs, cpu_util;
	uint64_t n;
	const char *backend;
};

static void *main_task(void *arg)
{
	struct result *res = arg;
	res->backend = cio_backend_name();
	fd = cio_open(path, O_RDONLY | (direct ? O_DIRECT : 0), 0);
	if (fd < 0) {
		fprintf(stderr, "fileio: open %s: %s\n", path, strerror(-fd));
		exit(1);
	}
	cio_task_t *t = calloc((size_t)depth, sizeof *t);
	t_start = bench_now_ns() + warmup_ms * 1000000;
	t_end = t_start + (int64_t)(seconds * 1e9);
	for (int i = 0; i < depth; i++)
		t[i] = cio_spawn(reader, (void *)(uintptr_t)i);
	for (int i = 0; i < depth; i++)
		cio_join(t[i], NULL);
	free(t);
	cio_close(fd);
	if (!started || !n1) {
		fprintf(stderr, "fileio: the run ended before its window\n");
		exit(1);
	}
	res->n = n1 - n0;
	res->secs = (double)(w1 - w0) / 1e9;
	res->iops = (double)res->n / res->secs;
	res->cpu_us_per_io = res->n ? (c1 - c0) * 1e6 / (double)res->n : 0;
	res->cpu_util = (c1 - c0) / res->secs;
	return NULL;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s --file PATH [--direct] [--backend uring|epoll] [--depth N]\n"
		"          [--bs BYTES] [--seconds S] [--warmup-ms MS]\n",
		argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	cio_config cfg = {0};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--direct")) {
			direct = 1;
			continue;
		}
		if (!v)
			usage(argv[0]);
		i++;
		if (!strcmp(a, "--file"))
			path = v;
		else if (!strcmp(a, "--backend"))
			cfg.backend = !strcmp(v, "uring")   ? CIO_BACKEND_URING
				      : !strcmp(v, "epoll") ? CIO_BACKEND_EPOLL
							    : (usage(argv[0]), CIO_BACKEND_AUTO);
		else if (!strcmp(a, "--depth"))
			depth = atoi(v);
		else if (!strcmp(a, "--bs"))
			bs = (size_t)atol(v);
		else if (!strcmp(a, "--seconds"))
			seconds = atof(v);
		else if (!strcmp(a, "--warmup-ms"))
			warmup_ms = atol(v);
		else
			usage(argv[0]);
	}
	if (!path || depth < 1 || bs < 512 || bs % 512 || seconds <= 0)
		usage(argv[0]);
	struct stat st;
	if (stat(path, &st) < 0 || (uint64_t)st.st_size < bs) {
		fprintf(stderr, "fileio: %s: missing or smaller than one block\n", path);
		return 1;
	}
	nblocks = (uint64_t)st.st_size / bs;
	bench_init();
	/* One pool thread per task at most: on epoll a read the page cache
	 * cannot serve at once waits on the pool, and the default of 16
	 * would cap the queue depth there. */
	cio_blocking_config((size_t)depth, 0);

	struct result res = {0};
	int rc = cio_run_with(&cfg, main_task, &res);
	if (rc < 0) {
		fprintf(stderr, "fileio: cio_run: %s\n", strerror(-rc));
		return 1;
	}
	if (errors)
		return 1;
	const char *be = res.backend && !strcmp(res.backend, "epoll") ? "epoll" : "uring";
	printf("bench=files impl=coreio-%s mode=%s iops=%.0f cpu_us_per_io=%.3f "
	       "cpu_util=%.3f ios=%llu seconds=%.3f depth=%d bs=%zu cpu=%d kernel=%s "
	       "commit=%s\n",
	       be, direct ? "direct" : "buffered", res.iops, res.cpu_us_per_io,
	       res.cpu_util, (unsigned long long)res.n, res.secs, depth, bs, bench_cpu,
	       bench_kernel(), COREIO_BENCH_COMMIT);
	return 0;
}
