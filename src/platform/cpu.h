/* cpu.h - which CPUs the process may run on, and pinning a thread to one.
 *
 * Linux: sched_getaffinity(2) and pthread_setaffinity_np().  POSIX: every
 * online CPU (sysconf), and no pinning (-ENOTSUP): macOS has no affinity
 * call; FreeBSD's cpuset_setaffinity() would go here. */
#ifndef CIO_PLATFORM_CPU_H
#define CIO_PLATFORM_CPU_H

#include "os.h"

/* Fills cpus (room for `room`) with the numbers of the CPUs the process
 * may use, in order.  Returns how many, or -errno. */
int cio__cpus_allowed(int *cpus, int room);

/* The most CPU numbers cio__cpus_allowed() may report. */
int cio__cpus_max(void);

/* Pins the calling thread to CPU cpu.  Returns 0 or -errno. */
int cio__cpu_pin(int cpu);

/* How many threads the process has now, io_uring's kernel workers left
 * out (they act for the rings, not for the program): for deadlock
 * detection, which must know whether a thread it does not know of may
 * still wake a task.  Linux: /proc/self/task (a portable build on Linux
 * too: no POSIX call counts threads).  Elsewhere -ENOSYS. */
int cio__threads_count(void);

#endif
