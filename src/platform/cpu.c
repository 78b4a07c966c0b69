/* cpu.c - the CPUs a process may use, pinning, and counting the
 * process's threads (see cpu.h). */
#include "cpu.h"
#include "fiber.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#ifdef __linux__
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#endif

int cio__cpus_max(void)
{
#if CIO__LINUX
	return CPU_SETSIZE;
#else
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
#endif
}

int cio__cpus_allowed(int *cpus, int room)
{
	int n = 0;
#if CIO__LINUX
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) < 0)
		return -errno;
	for (int c = 0; c < CPU_SETSIZE && n < room; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
#else
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	for (long c = 0; c < (online > 0 ? online : 1) && n < room; c++)
		cpus[n++] = (int)c;
#endif
	return n;
}

int cio__cpu_pin(int cpu)
{
#if CIO__LINUX
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return -pthread_setaffinity_np(pthread_self(), sizeof one, &one);
#else
	(void)cpu;
	return -ENOTSUP;
#endif
}

#ifdef __linux__
/* The threads in /proc/self/task, io_uring's kernel workers left out. */
static int threads_now(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[sizeof "/proc/self/task//comm" + sizeof e->d_name], comm[16];
		snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* it ended meanwhile */
		ssize_t r = read(fd, comm, sizeof comm);
		close(fd);
		/* iou-wrk-N, iou-sqp-N: the kernel's, for io_uring. */
		if (r >= 4 && memcmp(comm, "iou-", 4) == 0)
			continue;
		n++;
	}
	closedir(d);
	return n;
}

#endif

int cio__threads_count(void)
{
#ifdef __linux__
	int n = threads_now();
#ifdef CIO_TSAN
	/* ThreadSanitizer's background thread, started with the process's
	 * first pthread_create() (a group's cores are made so). */
	if (n > 1)
		n--;
#endif
	return n;
#else
	return -ENOSYS;
#endif
}
