/* clock.h - the monotonic clock, in nanoseconds. */
#ifndef CIO_PLATFORM_CLOCK_H
#define CIO_PLATFORM_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC through the vDSO: no system call. */
static inline int64_t cio__clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
