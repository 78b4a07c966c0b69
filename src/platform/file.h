/* file.h - the file and zero-copy calls that only Linux has, each with
 * what the POSIX path does instead:
 *
 *   statx(2)           fstatat(2) (fstat(2) for AT_EMPTY_PATH), its
 *                      fields copied into a struct statx
 *   fallocate(2)       mode 0: posix_fallocate(3) (none on macOS:
 *                      -EOPNOTSUPP); other modes -EOPNOTSUPP
 *   renameat2(2)       flags 0: renameat(2); other flags -EINVAL
 *   RWF_NOWAIT tries   none (-EOPNOTSUPP): every file read or write of a
 *                      readiness backend goes to the blocking pool
 *   O_DIRECT           CIO__O_DIRECT, 0 where the system has none (macOS)
 *   splice(2), pipe    none (-ENOSYS): the I/O layer copies through a
 *   sizes              buffer instead (CIO__SPLICE says which)
 *
 * struct statx comes from the C library on Linux (glibc 2.28, musl 1.2.5)
 * and so also in the COREIO_PORTABLE build there; elsewhere coreio.h
 * declares it, with the kernel's layout and STATX_* bits. */
#ifndef CIO_PLATFORM_FILE_H
#define CIO_PLATFORM_FILE_H

#include "os.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef O_DIRECT
#define CIO__O_DIRECT O_DIRECT
#else
#define CIO__O_DIRECT 0 /* macOS: F_NOCACHE is a different contract */
#endif

/* Whether splice(2) exists: 0 makes cio_splice() a copy through a buffer
 * and cio_sendfile() a read-and-write loop, and cio_relay() copy. */
#define CIO__SPLICE CIO__LINUX

/* Whether cio__file_try() can make a file read or write that does not
 * block: 0 sends them all to the blocking pool without trying. */
#define CIO__FILE_TRY CIO__LINUX

struct statx;

/* Each returns the system call's result (>= 0) or -errno. */
int cio__statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *stx);
/* cio__statx() of fd itself (AT_EMPTY_PATH, which macOS lacks). */
int cio__fstatx(int fd, unsigned mask, struct statx *stx);
int cio__fallocate(int fd, int mode, int64_t off, int64_t len);
int cio__renameat2(int olddirfd, const char *oldpath, int newdirfd,
		   const char *newpath, unsigned flags);

/* preadv2() / pwritev2() at off with RWF_NOWAIT: done only if it needs
 * no wait for the disk.  -EAGAIN: it would; -EOPNOTSUPP: no such try for
 * this file (always, on the POSIX path). */
ssize_t cio__file_try(int fd, const struct iovec *iov, int iovcnt, int64_t off,
		      bool write);

/* splice(2) with SPLICE_F_MOVE (and SPLICE_F_NONBLOCK if asked); a NULL
 * offset: none.  -ENOSYS on the POSIX path. */
ssize_t cio__splice(int in, int64_t *off_in, int out, int64_t *off_out,
		    size_t len, bool nonblock);

/* Asks the pipe whose write end is fd to hold `want` bytes (0: leave it)
 * and returns what it holds, or -errno (-ENOSYS: not settable here). */
int cio__pipe_size(int fd, size_t want);

#endif
