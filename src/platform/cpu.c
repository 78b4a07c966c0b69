/* cpu.c - the CPUs a process may use, and pinning (see cpu.h). */
#include "cpu.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

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
