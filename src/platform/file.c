/* file.c - the Linux-only file and zero-copy calls, and their POSIX
 * counterparts (see file.h). */
#include "file.h"
#include "fail.h"

#include <errno.h>
#include <stdio.h> /* renameat2 */
#include <string.h>
#include <unistd.h>
#if !CIO__LINUX && defined(__has_include)
#if __has_include(<sys/sysmacros.h>)
#include <sys/sysmacros.h> /* major(), minor() on glibc */
#endif
#endif

#if !CIO__LINUX
/* The basic stats, from fstatat(2): what any POSIX system can tell. */
static void to_statx(const struct stat *st, struct statx *x)
{
	memset(x, 0, sizeof *x);
	x->stx_mask = STATX_BASIC_STATS;
	x->stx_blksize = (uint32_t)st->st_blksize;
	x->stx_nlink = (uint32_t)st->st_nlink;
	x->stx_uid = st->st_uid;
	x->stx_gid = st->st_gid;
	x->stx_mode = (uint16_t)st->st_mode;
	x->stx_ino = st->st_ino;
	x->stx_size = (uint64_t)st->st_size;
	x->stx_blocks = (uint64_t)st->st_blocks;
	/* st_atim and friends: POSIX 2008, which macOS spells its own way. */
#ifdef __APPLE__
#define st_atim st_atimespec
#define st_mtim st_mtimespec
#define st_ctim st_ctimespec
#endif
	x->stx_atime = (struct statx_timestamp){st->st_atim.tv_sec, (uint32_t)st->st_atim.tv_nsec, 0};
	x->stx_mtime = (struct statx_timestamp){st->st_mtim.tv_sec, (uint32_t)st->st_mtim.tv_nsec, 0};
	x->stx_ctime = (struct statx_timestamp){st->st_ctim.tv_sec, (uint32_t)st->st_ctim.tv_nsec, 0};
	x->stx_rdev_major = major(st->st_rdev);
	x->stx_rdev_minor = minor(st->st_rdev);
	x->stx_dev_major = major(st->st_dev);
	x->stx_dev_minor = minor(st->st_dev);
}
#endif

int cio__statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *stx)
{
#if CIO__LINUX
	return statx(dirfd, path, flags, mask, stx) < 0 ? -errno : 0;
#else
	/* The sync hints ask nothing fstatat() could do otherwise. */
	(void)mask;
#ifdef AT_STATX_SYNC_TYPE
	flags &= ~AT_STATX_SYNC_TYPE;
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0
#endif
	struct stat st;
	int rc;
	if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
		return -EINVAL;
	if (AT_EMPTY_PATH && (flags & AT_EMPTY_PATH) && path[0] == '\0')
		rc = dirfd == AT_FDCWD ? stat(".", &st) : fstat(dirfd, &st);
	else
		rc = fstatat(dirfd, path, &st, flags & AT_SYMLINK_NOFOLLOW);
	if (rc < 0)
		return -errno;
	to_statx(&st, stx);
	return 0;
#endif
}

int cio__fstatx(int fd, unsigned mask, struct statx *stx)
{
#if CIO__LINUX
	return cio__statx(fd, "", AT_EMPTY_PATH, mask, stx);
#else
	(void)mask;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	to_statx(&st, stx);
	return 0;
#endif
}

int cio__fallocate(int fd, int mode, int64_t off, int64_t len)
{
#if CIO__LINUX
	return fallocate(fd, mode, (off_t)off, (off_t)len) < 0 ? -errno : 0;
#else
	/* posix_fallocate() reports its error directly, not in errno.  It
	 * has no mode: keeping the size, punching holes are Linux's. */
#ifdef __APPLE__
	(void)fd, (void)off, (void)len;
	return -EOPNOTSUPP; /* macOS has no posix_fallocate(3) */
#else
	return mode ? -EOPNOTSUPP : -posix_fallocate(fd, (off_t)off, (off_t)len);
#endif
#endif
}

int cio__renameat2(int olddirfd, const char *oldpath, int newdirfd,
		   const char *newpath, unsigned flags)
{
#if CIO__LINUX
	return renameat2(olddirfd, oldpath, newdirfd, newpath, flags) < 0 ? -errno : 0;
#else
	/* RENAME_NOREPLACE and RENAME_EXCHANGE are Linux's; a kernel that
	 * lacks them says EINVAL too. */
	if (flags)
		return -EINVAL;
	return renameat(olddirfd, oldpath, newdirfd, newpath) < 0 ? -errno : 0;
#endif
}

ssize_t cio__file_try(int fd, const struct iovec *iov, int iovcnt, int64_t off,
		      bool write)
{
#if CIO__LINUX
	int fail = CIO_FAIL(nowait);
	if (fail)
		return -fail;
	ssize_t r = write ? pwritev2(fd, iov, iovcnt, off, RWF_NOWAIT)
			  : preadv2(fd, iov, iovcnt, off, RWF_NOWAIT);
	return r < 0 ? -errno : r;
#else
	(void)fd, (void)iov, (void)iovcnt, (void)off, (void)write;
	return -EOPNOTSUPP;
#endif
}

ssize_t cio__splice(int in, int64_t *off_in, int out, int64_t *off_out,
		    size_t len, bool nonblock)
{
#if CIO__LINUX
	loff_t oi = off_in ? *off_in : 0, oo = off_out ? *off_out : 0;
	ssize_t r = splice(in, off_in ? &oi : NULL, out, off_out ? &oo : NULL, len,
			   SPLICE_F_MOVE | (nonblock ? SPLICE_F_NONBLOCK : 0));
	if (r < 0)
		return -errno;
	if (off_in)
		*off_in = oi;
	if (off_out)
		*off_out = oo;
	return r;
#else
	(void)in, (void)off_in, (void)out, (void)off_out, (void)len, (void)nonblock;
	return -ENOSYS;
#endif
}

int cio__pipe_size(int fd, size_t want)
{
#if CIO__LINUX
	if (want)
		fcntl(fd, F_SETPIPE_SZ, (int)(want < (1u << 30) ? want : 1u << 30));
	int cap = fcntl(fd, F_GETPIPE_SZ);
	return cap < 0 ? -errno : cap;
#else
	(void)fd, (void)want;
	return -ENOSYS;
#endif
}
