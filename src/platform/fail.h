/* fail.h - fail points: in a COREIO_TESTING build, a chosen call of a
 * kind (an allocation, a system call) fails as the system would refuse
 * it, so that tests can drive the runtime down its error paths.
 *
 * CIO_FAIL(kind) stands at the one place where the real call of that kind
 * is made.  It is 0 when the call should go ahead; else the errno to
 * inject (positive), or CIO__FAIL_SHORT for a transfer that should move
 * fewer bytes than asked.  In any other build it is the constant 0: no
 * code, no symbol.  The table comes from the environment, read once per
 * process (fail.c):
 *   COREIO_FAIL="alloc:7"           the 7th allocation fails
 *   COREIO_FAIL="recv:3:EINTR"      the 3rd recv fails with EINTR
 *   COREIO_FAIL="socket:*:EMFILE"   every socket() fails with EMFILE
 *   COREIO_FAIL="read:2:SHORT,send:5"   several, comma-separated
 * `poller` is the backend's own fd (epoll_create1, kqueue), `nowait` a
 * file transfer tried with RWF_NOWAIT before the blocking pool takes it
 * (EAGAIN sends it there).
 *   COREIO_FAIL_REPORT=1            at exit, the calls made of each kind
 * Counters are per process and atomic: every core counts into them. */
#ifndef CIO_PLATFORM_FAIL_H
#define CIO_PLATFORM_FAIL_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The kinds, in the order the report prints them; lower case so that
 * CIO_FAIL(recv) names CIO__FAIL_recv. */
#define CIO__FAIL_KINDS(X)                                                    \
	X(alloc) X(mmap) X(madvise) X(sqe) X(submit) X(eventfd) X(pipe)       \
	X(socket) X(accept) X(connect) X(epoll_ctl) X(epoll_wait) X(recv)     \
	X(send) X(read) X(write) X(splice) X(ring) X(poller) X(signalfd)      \
	X(nowait)

enum cio__fail_kind {
#define CIO__FAIL_ENUM_(k) CIO__FAIL_##k,
	CIO__FAIL_KINDS(CIO__FAIL_ENUM_)
#undef CIO__FAIL_ENUM_
	CIO__FAIL_NKINDS
};

/* CIO_FAIL()'s answer for a short transfer (read/write/recv/send/splice). */
#define CIO__FAIL_SHORT (-1)

#ifdef COREIO_TESTING
int cio__fail(enum cio__fail_kind kind);
#define CIO_FAIL(kind) cio__fail(CIO__FAIL_##kind)
#else
#define CIO_FAIL(kind) 0
#endif

/* The length a transfer of len bytes moves when CIO_FAIL() said SHORT:
 * half, at least one byte. */
static inline size_t cio__fail_short(size_t len)
{
	return len > 1 ? len / 2 : len;
}

/* Every allocation the runtime makes goes through these: its fail point. */
static inline void *cio__malloc(size_t n)
{
	return CIO_FAIL(alloc) ? NULL : malloc(n);
}

static inline void *cio__calloc(size_t n, size_t size)
{
	return CIO_FAIL(alloc) ? NULL : calloc(n, size);
}

static inline void *cio__realloc(void *p, size_t n)
{
	return CIO_FAIL(alloc) ? NULL : realloc(p, n);
}

static inline char *cio__strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = cio__malloc(n);
	return d ? memcpy(d, s, n) : NULL;
}

#endif
