/* fuzz_rt.c - main() for the fuzz targets that need a runtime: starts one
 * runtime and runs libFuzzer (LLVMFuzzerRunDriver) inside a task of it,
 * so that an input costs its own work only.  A runtime per input
 * (cio_run() in LLVMFuzzerTestOneInput) works too, but its start, some
 * 0.4 ms under ASan and coverage, was most of an input's time: this way
 * fuzz_http runs about three times as many inputs per second.  What one
 * input could leave behind for the next (a task, an fd) is checked after
 * each.  Linked with libFuzzer's fuzzer_no_main runtime. */
#include "fuzz_rt.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerRunDriver(int *argc, char ***argv,
			int (*cb)(const uint8_t *data, size_t size));

/* libFuzzer's loop, its mutators and its crash reports run on this
 * task's stack: a thread's worth of it. */
#define DRIVER_STACK (64u << 20)

static int g_argc;
static char **g_argv;
static uint64_t base_tasks; /* tasks live between inputs */

/* The lowest free fd: what the next open would get. */
static int lowest_free_fd(void)
{
	int fd = fcntl(0, F_DUPFD_CLOEXEC, 0);
	if (fd >= 0)
		close(fd);
	return fd;
}

void fuzz_rt_run(cio_fn *fn, void *arg)
{
	int fd0 = lowest_free_fd();
	cio_task_t t = cio_spawn(fn, arg);
	if (t < 0 || cio_join(t, NULL) != 0) {
		fprintf(stderr, "fuzz_rt: spawn or join: %lld\n", (long long)t);
		abort();
	}
	cio_stats st;
	cio_stats_get(&st);
	if (st.tasks_live != base_tasks) {
		fprintf(stderr, "fuzz_rt: the input left %llu tasks running\n",
			(unsigned long long)(st.tasks_live - base_tasks));
		abort();
	}
	if (lowest_free_fd() != fd0) {
		fprintf(stderr, "fuzz_rt: the input left fd %d open\n", fd0);
		abort();
	}
}

static void *driver(void *arg)
{
	cio_stats st;
	cio_stats_get(&st);
	base_tasks = st.tasks_live;
	/* libFuzzer exits the process itself when it is done or finds
	 * something; this returns only for -help=1 and the like. */
	return (void *)(intptr_t)LLVMFuzzerRunDriver(&g_argc, &g_argv, LLVMFuzzerTestOneInput);
}

static void *runtime_main(void *arg)
{
	void *rc = NULL;
	cio_task_t t = cio_spawn_with(&(cio_spawn_opts){.name = "libfuzzer",
							.stack_size = DRIVER_STACK},
				      driver, NULL);
	if (t < 0 || cio_join(t, &rc) != 0) {
		fprintf(stderr, "fuzz_rt: cannot start libFuzzer's task: %lld\n", (long long)t);
		exit(1);
	}
	return rc;
}

int main(int argc, char **argv)
{
	g_argc = argc;
	g_argv = argv;
	int rc = cio_run(runtime_main, NULL);
	if (rc != 0) {
		fprintf(stderr, "fuzz_rt: cio_run: %d\n", rc);
		return 1;
	}
	return 0;
}
