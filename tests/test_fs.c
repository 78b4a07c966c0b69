/* test_fs.c - files: open and openat, positioned and vectored reads and
 * writes, read_all / write_all, sync, fallocate, ftruncate, statx, names
 * (rename, unlink, mkdir, rmdir, symlink, link), the errors each gives
 * (EACCES without privileges and ENOSPC on a small tmpfs, in forked
 * children), offsets past 4 GiB, concurrent random writes checked against
 * a shadow copy, O_DIRECT, many concurrent reads, and interruption:
 * deadlines, cancellation of a call in flight (its stack buffer untouched
 * afterwards) and of a job still queued on the blocking pool.
 *
 * Everything happens in a private mkdtemp directory on a disk-backed file
 * system (not tmpfs: O_DIRECT and dropping the page cache need a disk),
 * removed at the end. */
#define NET_TEST_SEED 0x6b8b4567u
#include "file_util.h"

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS CIO_MS
#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((int64_t)1 << 30)

#ifdef COREIO_TESTING
extern bool cio__uring_no_file_ops; /* src/driver/uring.c */
#endif

static uint32_t seed;

static int64_t fsize(int fd)
{
	struct statx st;
	CHECK_EQ(cio_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &st), 0);
	CHECK(st.stx_mask & STATX_SIZE);
	return (int64_t)st.stx_size;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Pushes the pages of fd out of the page cache, so that the next read
 * must go to the disk (on epoll: RWF_NOWAIT fails, the pool reads). */
static void drop_cache(int fd)
{
	CHECK_EQ(cio_fdatasync(fd), 0);
	CHECK_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
}

/* A new file dir/name of len bytes of pat(i, s). */
/* --- the basics --------------------------------------------------------- */

static void test_rw(void)
{
	int fd = cio_open(P("a"), O_CREAT | O_EXCL | O_RDWR, 0644);
	CHECK(fd >= 0);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(cio_open(P("a"), O_CREAT | O_EXCL | O_RDWR, 0644), -EEXIST);

	char buf[256];
	CHECK_EQ(cio_pwrite(fd, "hello world", 11, 0), 11);
	memset(buf, 0, sizeof buf);
	CHECK_EQ(cio_pread(fd, buf, sizeof buf, 0), 11);
	CHECK(memcmp(buf, "hello world", 11) == 0);
	CHECK_EQ(cio_pread(fd, buf, 5, 6), 5);
	CHECK(memcmp(buf, "world", 5) == 0);
	/* At and past the end: 0. */
	CHECK_EQ(cio_pread(fd, buf, sizeof buf, 11), 0);
	CHECK_EQ(cio_pread(fd, buf, sizeof buf, 1000), 0);
	CHECK_EQ(cio_pread(fd, buf, 0, 0), 0);
	/* A write past the end leaves a hole of zeros. */
	CHECK_EQ(cio_pwrite(fd, "xyz", 3, 20), 3);
	memset(buf, 0x77, sizeof buf);
	CHECK_EQ(cio_read_all(fd, buf, sizeof buf, 0, NULL), 23); /* short: EOF */
	for (int i = 11; i < 20; i++)
		CHECK_EQ(buf[i], 0);
	CHECK(memcmp(buf + 20, "xyz", 3) == 0);
	CHECK_EQ(buf[23], 0x77); /* nothing past what was read */
	CHECK_EQ(cio_read_all(fd, buf, 10, 100, NULL), 0);
	/* The file position is neither used nor moved. */
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 0);

	/* Vectored, with uneven pieces. */
	char a[7] = "ABCDEFG", b[1] = {'h'}, c[300];
	for (size_t i = 0; i < sizeof c; i++)
		c[i] = (char)pat(i, 7);
	struct iovec wv[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
	CHECK_EQ(cio_pwritev(fd, wv, 3, 1000), 308);
	char r1[3], r2[200], r3[200];
	struct iovec rv[3] = {{r1, sizeof r1}, {r2, sizeof r2}, {r3, sizeof r3}};
	CHECK_EQ(cio_preadv(fd, rv, 3, 1000), 308);
	char all[308];
	memcpy(all, r1, 3);
	memcpy(all + 3, r2, 200);
	memcpy(all + 203, r3, 105);
	CHECK(memcmp(all, a, 7) == 0);
	CHECK_EQ(all[7], 'h');
	CHECK(memcmp(all + 8, c, sizeof c) == 0);
	CHECK_EQ(cio_preadv(fd, rv, 3, 1308), 0);
	CHECK_EQ(cio_preadv(fd, rv, 0, 0), 0);

	/* write_all / read_all of 3 MiB + 5 bytes. */
	size_t n = 3 * MiB + 5, w = 1;
	uint8_t *big = malloc(n), *back = malloc(n + 100);
	CHECK(big && back);
	for (size_t i = 0; i < n; i++)
		big[i] = pat(i, seed);
	CHECK_EQ(cio_write_all(fd, big, n, 4096 + 3, &w), (ssize_t)n);
	CHECK_EQ(w, n);
	CHECK_EQ(cio_write_all(fd, big, 0, 0, &w), 0);
	CHECK_EQ(w, 0);
	CHECK_EQ(cio_write_all(fd, "x", 1, 4096 + 3 + (int64_t)n, NULL), 1);
	CHECK_EQ(cio_read_all(fd, back, n + 100, 4096 + 3, NULL), (ssize_t)n + 1);
	CHECK(memcmp(back, big, n) == 0);
	CHECK_EQ(back[n], 'x');
	CHECK_EQ(fsize(fd), 4096 + 3 + (int64_t)n + 1);
	free(big);
	free(back);

	CHECK_EQ(cio_fsync(fd), 0);
	CHECK_EQ(cio_fdatasync(fd), 0);

	/* ftruncate, down and up. */
	CHECK_EQ(cio_ftruncate(fd, 5), 0);
	CHECK_EQ(fsize(fd), 5);
	CHECK_EQ(cio_read_all(fd, buf, sizeof buf, 0, NULL), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	CHECK_EQ(cio_ftruncate(fd, 3 * (int64_t)KiB), 0);
	CHECK_EQ(fsize(fd), 3 * KiB);
	CHECK_EQ(cio_pread(fd, buf, 10, 100), 10);
	for (int i = 0; i < 10; i++)
		CHECK_EQ(buf[i], 0);
	CHECK_EQ(cio_ftruncate(fd, -1), -EINVAL);

	/* fallocate: mode 0 grows the file; KEEP_SIZE reserves blocks past
	 * the end without growing it; PUNCH_HOLE zeroes a range. */
	struct statx st, st2;
	CHECK_EQ(cio_fallocate(fd, 0, 0, (int64_t)MiB), 0);
	CHECK_EQ(fsize(fd), MiB);
	CHECK_EQ(cio_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_BLOCKS, &st), 0);
	/* The POSIX path has posix_fallocate() only: any mode is refused,
	 * and the file is left as it was. */
	int mode_rc = POSIX_PATHS ? -EOPNOTSUPP : 0;
	CHECK_EQ(cio_fallocate(fd, FALLOC_FL_KEEP_SIZE, (int64_t)MiB, 2 * (int64_t)MiB), mode_rc);
	CHECK_EQ(cio_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_BLOCKS, &st2), 0);
	CHECK_EQ(st2.stx_size, MiB);
	if (!POSIX_PATHS)
		CHECK(st2.stx_blocks >= st.stx_blocks + 2 * MiB / 512);
	else
		CHECK_EQ(st2.stx_blocks, st.stx_blocks);
	uint8_t ones[8192];
	memset(ones, 0xff, sizeof ones);
	CHECK_EQ(cio_write_all(fd, ones, sizeof ones, 64 * 1024, NULL), (ssize_t)sizeof ones);
	CHECK_EQ(cio_fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       64 * 1024, 4096), mode_rc);
	CHECK_EQ(fsize(fd), MiB);
	CHECK_EQ(cio_read_all(fd, ones, sizeof ones, 64 * 1024, NULL), (ssize_t)sizeof ones);
	for (size_t i = 0; i < sizeof ones; i++)
		CHECK_EQ(ones[i], i < 4096 && !POSIX_PATHS ? 0 : 0xff);
	CHECK_EQ(cio_fallocate(fd, 0, -1, 10), -EINVAL);
	CHECK_EQ(cio_fallocate(fd, 0, 0, 0), -EINVAL);
	/* PUNCH_HOLE without KEEP_SIZE is refused by the kernel. */
	CHECK_EQ(cio_fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096), -EOPNOTSUPP);

	/* statx by path and on the fd. */
	CHECK_EQ(cio_statx(AT_FDCWD, P("a"), 0, STATX_BASIC_STATS, &st), 0);
	CHECK(S_ISREG(st.stx_mode));
	CHECK_EQ(st.stx_mode & 07777, 0644);
	CHECK_EQ(st.stx_size, MiB);
	CHECK_EQ(cio_statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &st2), 0);
	CHECK_EQ(st2.stx_ino, st.stx_ino);
	CHECK_EQ(st2.stx_size, st.stx_size);
	CHECK_EQ(cio_statx(AT_FDCWD, dir, 0, STATX_TYPE, &st), 0);
	CHECK(S_ISDIR(st.stx_mode));
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_unlink(P("a")), 0);
	CHECK(!exists(P("a")));
}

static void test_names(void)
{
	int dfd = cio_open(dir, O_RDONLY | O_DIRECTORY, 0);
	CHECK(dfd >= 0);
	int fd = cio_openat(dfd, "f", O_CREAT | O_WRONLY | O_EXCL, 0600);
	CHECK(fd >= 0);
	CHECK_EQ(cio_pwrite(fd, "data", 4, 0), 4);
	CHECK_EQ(cio_close(fd), 0);
	struct statx st;
	CHECK_EQ(cio_statx(dfd, "f", 0, STATX_BASIC_STATS, &st), 0);
	CHECK_EQ(st.stx_size, 4);
	CHECK_EQ(st.stx_mode & 07777, 0600);
	CHECK_EQ(st.stx_nlink, 1);

	/* rename, renameat, RENAME_NOREPLACE, RENAME_EXCHANGE. */
	CHECK_EQ(cio_rename(P("f"), P("g")), 0);
	CHECK(!exists(P("f")) && exists(P("g")));
	CHECK_EQ(cio_statx(dfd, "f", 0, STATX_SIZE, &st), -ENOENT);
	fd = cio_openat(dfd, "h", O_CREAT | O_WRONLY, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(cio_pwrite(fd, "hh", 2, 0), 2);
	CHECK_EQ(cio_close(fd), 0);
	if (POSIX_PATHS) {
		/* renameat2()'s flags are Linux's: EINVAL, nothing moved. */
		CHECK_EQ(cio_renameat(dfd, "g", dfd, "h", RENAME_NOREPLACE), -EINVAL);
		CHECK_EQ(cio_renameat(dfd, "g", dfd, "h", RENAME_EXCHANGE), -EINVAL);
		CHECK_EQ(cio_statx(dfd, "g", 0, STATX_SIZE, &st), 0);
		CHECK_EQ(st.stx_size, 4);
		CHECK_EQ(cio_renameat(dfd, "h", dfd, "g2", 0), 0); /* the swap by hand */
		CHECK_EQ(cio_renameat(dfd, "g", dfd, "h", 0), 0);
		CHECK_EQ(cio_renameat(dfd, "g2", dfd, "g", 0), 0);
	} else {
		CHECK_EQ(cio_renameat(dfd, "g", dfd, "h", RENAME_NOREPLACE), -EEXIST);
		CHECK(exists(P("g")));
		CHECK_EQ(cio_renameat(dfd, "g", dfd, "h", RENAME_EXCHANGE), 0);
	}
	CHECK_EQ(cio_statx(dfd, "h", 0, STATX_SIZE, &st), 0);
	CHECK_EQ(st.stx_size, 4);
	CHECK_EQ(cio_statx(dfd, "g", 0, STATX_SIZE, &st), 0);
	CHECK_EQ(st.stx_size, 2);
	CHECK_EQ(cio_renameat(dfd, "g", AT_FDCWD, P("h"), 0), 0); /* replaces */
	CHECK_EQ(cio_statx(dfd, "h", 0, STATX_SIZE, &st), 0);
	CHECK_EQ(st.stx_size, 2);
	CHECK_EQ(cio_rename(P("nothing"), P("x")), -ENOENT);

	/* mkdir, rmdir, ENOTEMPTY, unlinkat. */
	CHECK_EQ(cio_mkdir(P("d"), 0755), 0);
	CHECK_EQ(cio_mkdir(P("d"), 0755), -EEXIST);
	CHECK_EQ(cio_mkdirat(dfd, "d/e", 0700), 0);
	CHECK_EQ(cio_statx(dfd, "d/e", 0, STATX_TYPE | STATX_MODE, &st), 0);
	CHECK(S_ISDIR(st.stx_mode));
	CHECK_EQ(st.stx_mode & 07777, 0700);
	CHECK_EQ(cio_rmdir(P("d")), -ENOTEMPTY);
	CHECK_EQ(cio_unlinkat(dfd, "d", AT_REMOVEDIR), -ENOTEMPTY);
	CHECK_EQ(cio_unlinkat(dfd, "d/e", 0), -EISDIR);
	CHECK_EQ(cio_unlinkat(dfd, "d/e", AT_REMOVEDIR), 0);
	CHECK_EQ(cio_rmdir(P("d")), 0);
	CHECK(!exists(P("d")));
	CHECK_EQ(cio_rmdir(P("d")), -ENOENT);
	CHECK_EQ(cio_rmdir(P("h")), -ENOTDIR);

	/* symlink, symlinkat: readlink gives the target. */
	char t[PATH_MAX];
	CHECK_EQ(cio_symlink("h", P("ln")), 0);
	ssize_t n = readlink(P("ln"), t, sizeof t);
	CHECK_EQ(n, 1);
	CHECK_EQ(t[0], 'h');
	CHECK_EQ(cio_symlinkat("does/not/exist", dfd, "dangling"), 0);
	n = readlink(P("dangling"), t, sizeof t);
	CHECK_EQ(n, 14);
	CHECK(memcmp(t, "does/not/exist", 14) == 0);
	CHECK_EQ(cio_symlink("h", P("ln")), -EEXIST);
	CHECK_EQ(cio_statx(dfd, "ln", AT_SYMLINK_NOFOLLOW, STATX_TYPE, &st), 0);
	CHECK(S_ISLNK(st.stx_mode));
	CHECK_EQ(cio_statx(dfd, "ln", 0, STATX_TYPE | STATX_SIZE, &st), 0);
	CHECK(S_ISREG(st.stx_mode));
	CHECK_EQ(st.stx_size, 2);
	CHECK_EQ(cio_open(P("dangling"), O_RDONLY, 0), -ENOENT);
	fd = cio_open(P("ln"), O_RDONLY, 0);
	CHECK(fd >= 0);
	char b[4];
	CHECK_EQ(cio_pread(fd, b, sizeof b, 0), 2);
	CHECK(memcmp(b, "hh", 2) == 0);
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_open(P("ln"), O_RDONLY | O_NOFOLLOW, 0), -ELOOP);

	/* link, linkat: one inode, two names. */
	CHECK_EQ(cio_link(P("h"), P("h2")), 0);
	CHECK_EQ(cio_linkat(dfd, "h", dfd, "h3", 0), 0);
	CHECK_EQ(cio_statx(dfd, "h2", 0, STATX_NLINK | STATX_INO, &st), 0);
	CHECK_EQ(st.stx_nlink, 3);
	CHECK_EQ(cio_link(P("h"), P("h2")), -EEXIST);
	CHECK_EQ(cio_link(P("nothing"), P("h4")), -ENOENT);
	CHECK_EQ(cio_unlink(P("h2")), 0);
	CHECK_EQ(cio_unlinkat(dfd, "h3", 0), 0);
	CHECK_EQ(cio_statx(dfd, "h", 0, STATX_NLINK, &st), 0);
	CHECK_EQ(st.stx_nlink, 1);
	CHECK_EQ(cio_unlink(P("h3")), -ENOENT);

	CHECK_EQ(cio_unlink(P("ln")), 0);
	CHECK_EQ(cio_unlinkat(dfd, "dangling", 0), 0);
	CHECK_EQ(cio_unlinkat(dfd, "h", 0), 0);
	CHECK_EQ(cio_close(dfd), 0);
}

/* --- errors ------------------------------------------------------------ */

static void test_errors(void)
{
	char buf[64] = {0};
	CHECK_EQ(cio_open(P("missing"), O_RDONLY, 0), -ENOENT);
	CHECK_EQ(cio_open(P("missing/x"), O_CREAT | O_RDWR, 0644), -ENOENT);
	CHECK_EQ(cio_open(dir, O_WRONLY, 0), -EISDIR);
	CHECK_EQ(cio_open(dir, O_RDWR, 0), -EISDIR);
	CHECK_EQ(cio_open(NULL, O_RDONLY, 0), -EFAULT);

	/* A read of a directory fd. */
	int dfd = cio_open(dir, O_RDONLY | O_DIRECTORY, 0);
	CHECK(dfd >= 0);
	CHECK_EQ(cio_pread(dfd, buf, sizeof buf, 0), -EISDIR);
	struct iovec iv = {buf, sizeof buf};
	CHECK_EQ(cio_preadv(dfd, &iv, 1, 0), -EISDIR);
	CHECK_EQ(cio_read_all(dfd, buf, sizeof buf, 0, NULL), -EISDIR);

	/* ENOTDIR: a file as a directory. */
	int fd = cio_openat(dfd, "file", O_CREAT | O_RDWR | O_EXCL, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(cio_openat(dfd, "file", O_CREAT | O_RDWR | O_EXCL, 0644), -EEXIST);
	CHECK_EQ(cio_open(P("file/x"), O_RDONLY, 0), -ENOTDIR);
	CHECK_EQ(cio_open(P("file"), O_RDONLY | O_DIRECTORY, 0), -ENOTDIR);
	CHECK_EQ(cio_openat(fd, "x", O_RDONLY, 0), -ENOTDIR);
	CHECK_EQ(cio_mkdir(P("file/d"), 0755), -ENOTDIR);
	CHECK_EQ(cio_statx(fd, "x", 0, STATX_SIZE, &(struct statx){0}), -ENOTDIR);
	CHECK_EQ(cio_unlinkat(dfd, "file", AT_REMOVEDIR), -ENOTDIR);

	/* EINVAL: negative offsets, a bad iovcnt. */
	CHECK_EQ(cio_pread(fd, buf, 1, -1), -EINVAL);
	CHECK_EQ(cio_pwrite(fd, buf, 1, -5), -EINVAL);
	CHECK_EQ(cio_preadv(fd, &iv, 1, -1), -EINVAL);
	CHECK_EQ(cio_pwritev(fd, &iv, 1, INT64_MIN), -EINVAL);
	CHECK_EQ(cio_preadv(fd, &iv, -1, 0), -EINVAL);
	CHECK_EQ(cio_read_all(fd, buf, 1, -1, NULL), -EINVAL);
	size_t w = 99;
	CHECK_EQ(cio_write_all(fd, buf, 1, -1, &w), -EINVAL);
	CHECK_EQ(w, 0);
	CHECK_EQ(cio_fsync(fd), 0);

	/* EBADF: the wrong direction, -1, a closed fd. */
	int ro = cio_open(P("file"), O_RDONLY, 0);
	int wo = cio_open(P("file"), O_WRONLY, 0);
	CHECK(ro >= 0 && wo >= 0);
	CHECK_EQ(cio_pwrite(ro, "x", 1, 0), -EBADF);
	CHECK_EQ(cio_pread(wo, buf, 1, 0), -EBADF);
	CHECK_EQ(cio_ftruncate(ro, 0), -EINVAL); /* ftruncate(2) on a read-only fd */
	CHECK_EQ(cio_close(ro), 0);
	CHECK_EQ(cio_close(wo), 0);
	int closed = ro;
	CHECK_EQ(cio_pread(closed, buf, 1, 0), -EBADF);
	CHECK_EQ(cio_pwrite(closed, "x", 1, 0), -EBADF);
	CHECK_EQ(cio_preadv(closed, &iv, 1, 0), -EBADF);
	CHECK_EQ(cio_pwritev(closed, &iv, 1, 0), -EBADF);
	CHECK_EQ(cio_fsync(closed), -EBADF);
	CHECK_EQ(cio_fdatasync(closed), -EBADF);
	CHECK_EQ(cio_fallocate(closed, 0, 0, 10), -EBADF);
	CHECK_EQ(cio_ftruncate(closed, 0), -EBADF);
	CHECK_EQ(cio_statx(closed, "", AT_EMPTY_PATH, STATX_SIZE, &(struct statx){0}), -EBADF);
	CHECK_EQ(cio_openat(closed, "x", O_RDONLY, 0), -EBADF);
	CHECK_EQ(cio_pread(-1, buf, 1, 0), -EBADF);
	CHECK_EQ(cio_pwrite(-1, buf, 1, 0), -EBADF);
	CHECK_EQ(cio_fsync(-1), -EBADF);
	CHECK_EQ(cio_ftruncate(-1, 0), -EBADF);
	CHECK_EQ(cio_fallocate(-1, 0, 0, 1), -EBADF);
	CHECK_EQ(cio_statx(-1, "", AT_EMPTY_PATH, STATX_SIZE, &(struct statx){0}), -EBADF);
	CHECK_EQ(cio_dio_align(-1, NULL, NULL), -EBADF);
	CHECK_EQ(cio_dio_align(closed, NULL, NULL), -EBADF);

	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_unlinkat(dfd, "file", 0), 0);
	CHECK_EQ(cio_close(dfd), 0);
}

/* --- offsets past 4 GiB ------------------------------------------------- */

static void test_big_offsets(void)
{
	int fd = cio_open(P("sparse"), O_CREAT | O_RDWR | O_TRUNC, 0644);
	CHECK(fd >= 0);
	static const int64_t offs[] = {
		4 * GiB - 3, /* across the 4 GiB line */
		5 * GiB,
		5 * GiB + 4097,
		17 * GiB + 12345,
		(int64_t)1 << 40 | 7, /* 1 TiB + 7 */
	};
	char w[64], r[64];
	for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
		for (size_t k = 0; k < sizeof w; k++)
			w[k] = (char)pat((uint64_t)offs[i] + k, seed);
		CHECK_EQ(cio_pwrite(fd, w, sizeof w, offs[i]), (ssize_t)sizeof w);
	}
	for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
		for (size_t k = 0; k < sizeof w; k++)
			w[k] = (char)pat((uint64_t)offs[i] + k, seed);
		memset(r, 0, sizeof r);
		CHECK_EQ(cio_pread(fd, r, sizeof r, offs[i]), (ssize_t)sizeof r);
		CHECK(memcmp(r, w, sizeof w) == 0);
		/* Vectored at the same place, in two pieces. */
		memset(r, 0, sizeof r);
		struct iovec iv[2] = {{r, 10}, {r + 10, sizeof r - 10}};
		CHECK_EQ(cio_preadv(fd, iv, 2, offs[i]), (ssize_t)sizeof r);
		CHECK(memcmp(r, w, sizeof w) == 0);
		/* The hole just before reads as zeros. */
		CHECK_EQ(cio_pread(fd, r, 16, offs[i] - 16), 16);
		for (int k = 0; k < 16; k++)
			CHECK_EQ(r[k], 0);
	}
	int64_t end = ((int64_t)1 << 40 | 7) + (int64_t)sizeof w;
	CHECK_EQ(fsize(fd), end);
	/* Past the end: 0; straddling it: short. */
	CHECK_EQ(cio_pread(fd, r, sizeof r, end), 0);
	CHECK_EQ(cio_pread(fd, r, sizeof r, end + 5 * GiB), 0);
	CHECK_EQ(cio_read_all(fd, r, sizeof r, end - 10, NULL), 10);
	struct statx st;
	CHECK_EQ(cio_statx(fd, "", AT_EMPTY_PATH, STATX_BLOCKS, &st), 0);
	CHECK(st.stx_blocks < 1024); /* sparse: a few blocks, not a TiB */
	/* Truncating and allocating past 4 GiB. */
	CHECK_EQ(cio_ftruncate(fd, 6 * GiB + 1), 0);
	CHECK_EQ(fsize(fd), 6 * GiB + 1);
	CHECK_EQ(cio_pread(fd, r, 8, 17 * GiB + 12345), 0);
	CHECK_EQ(cio_fallocate(fd, FALLOC_FL_KEEP_SIZE, 5 * GiB, 1 << 20),
		 POSIX_PATHS ? -EOPNOTSUPP : 0);
	CHECK_EQ(fsize(fd), 6 * GiB + 1);
	CHECK_EQ(cio_pread(fd, r, sizeof r, 5 * GiB + 4097), (ssize_t)sizeof r);
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_unlink(P("sparse")), 0);
}

/* --- random writes, concurrently, against a shadow copy ------------------ */

#define RW_TASKS 32
#define RW_REGION (256 * KiB)

struct writer {
	int fd;
	uint8_t *shadow; /* the whole file's expected bytes */
	uint32_t rng;
	int idx;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	int64_t base = (int64_t)w->idx * (int64_t)RW_REGION;
	static __thread uint8_t dummy; /* keeps the compiler honest */
	(void)dummy;
	for (int k = 0; k < 40; k++) {
		size_t len = 1 + xorshift32(&w->rng) % (16 * KiB);
		size_t at = xorshift32(&w->rng) % (RW_REGION - len);
		uint8_t *buf = malloc(len);
		CHECK(buf);
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)xorshift32(&w->rng);
		int how = (int)(xorshift32(&w->rng) % 3);
		if (how == 0) {
			/* pwrite may be short on a file only in odd cases:
			 * finish with write_all. */
			ssize_t n = cio_pwrite(w->fd, buf, len, base + (int64_t)at);
			CHECK(n > 0 && (size_t)n <= len);
			if ((size_t)n < len)
				CHECK_EQ(cio_write_all(w->fd, buf + n, len - (size_t)n,
						       base + (int64_t)at + n, NULL),
					 (ssize_t)(len - (size_t)n));
		} else if (how == 1) {
			size_t cut = len / 3;
			struct iovec iv[2] = {{buf, cut}, {buf + cut, len - cut}};
			CHECK_EQ(cio_pwritev(w->fd, iv, 2, base + (int64_t)at), (ssize_t)len);
		} else {
			size_t wr = 0;
			CHECK_EQ(cio_write_all(w->fd, buf, len, base + (int64_t)at, &wr),
				 (ssize_t)len);
			CHECK_EQ(wr, len);
		}
		memcpy(w->shadow + base + at, buf, len);
		free(buf);
		if (k % 8 == 0)
			CHECK_EQ(cio_yield(), 0);
	}
	/* Read a random piece of the own region back. */
	size_t len = 1 + xorshift32(&w->rng) % (64 * KiB);
	size_t at = xorshift32(&w->rng) % (RW_REGION - len);
	uint8_t *got = malloc(len);
	CHECK(got);
	CHECK_EQ(cio_read_all(w->fd, got, len, base + (int64_t)at, NULL), (ssize_t)len);
	CHECK(memcmp(got, w->shadow + base + at, len) == 0);
	free(got);
	return NULL;
}

static void test_random_writes(void)
{
	size_t total = RW_TASKS * RW_REGION;
	int fd = cio_open(P("random"), O_CREAT | O_RDWR | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(cio_ftruncate(fd, (int64_t)total), 0);
	uint8_t *shadow = calloc(1, total), *back = malloc(total);
	CHECK(shadow && back);
	struct writer w[RW_TASKS];
	cio_task_t t[RW_TASKS];
	for (int i = 0; i < RW_TASKS; i++) {
		w[i] = (struct writer){fd, shadow, seed * 2654435761u + (uint32_t)i * 40503u + 1, i};
		t[i] = cio_spawn(writer_main, &w[i]);
		CHECK(t[i] > 0);
	}
	for (int i = 0; i < RW_TASKS; i++)
		CHECK_EQ(cio_join(t[i], NULL), 0);
	drop_cache(fd); /* read it back from the disk */
	CHECK_EQ(cio_read_all(fd, back, total, 0, NULL), (ssize_t)total);
	for (size_t i = 0; i < total; i++)
		if (back[i] != shadow[i]) {
			fprintf(stderr, "random writes: byte %zu is %#x, want %#x (seed %#x)\n",
				i, back[i], shadow[i], seed);
			CHECK(0);
		}
	CHECK_EQ(fsize(fd), total);
	free(shadow);
	free(back);
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_unlink(P("random")), 0);
}

/* --- O_DIRECT -------------------------------------------------------------- */

static void test_direct(void)
{
	int fd = cio_open(P("direct"), O_CREAT | O_RDWR | O_TRUNC | O_DIRECT, 0644);
	if (fd < 0)
		fprintf(stderr, "O_DIRECT open in %s: %s\n", dir, cio_strerror(fd));
	CHECK(fd >= 0);
	size_t mem = 0, off = 0;
	CHECK_EQ(cio_dio_align(fd, &mem, &off), 0);
	CHECK(mem > 0 && (mem & (mem - 1)) == 0);
	CHECK(off > 0 && (off & (off - 1)) == 0);
	CHECK(off <= 4096 && mem <= 4096);
	CHECK_EQ(cio_dio_align(fd, NULL, NULL), 0);

	size_t n = 256 * KiB;
	uint8_t *w, *r;
	CHECK_EQ(cio_alloc_aligned((void **)&w, n + off, mem), 0);
	CHECK_EQ(cio_alloc_aligned((void **)&r, n + off, 0), 0);
	CHECK(w && r);
	CHECK_EQ((uintptr_t)w % mem, 0);
	CHECK_EQ((uintptr_t)r % (size_t)sysconf(_SC_PAGESIZE), 0);
	for (size_t i = 0; i < n + off; i++)
		CHECK_EQ(w[i] | r[i], 0); /* zero-filled */
	for (size_t i = 0; i < n; i++)
		w[i] = pat(i, seed ^ 0xd1d1);
	/* Aligned writes and reads round-trip, also vectored, and above
	 * 4 GiB. */
	CHECK_EQ(cio_pwrite(fd, w, n, 0), (ssize_t)n);
	CHECK_EQ(cio_pwrite(fd, w, off, (int64_t)n), (ssize_t)off);
	CHECK_EQ(cio_pread(fd, r, n, 0), (ssize_t)n);
	CHECK(memcmp(r, w, n) == 0);
	struct iovec iv[2] = {{r, off}, {r + off, 2 * off}};
	memset(r, 0, n);
	CHECK_EQ(cio_preadv(fd, iv, 2, 0), (ssize_t)(3 * off));
	CHECK(memcmp(r, w, 3 * off) == 0);
	CHECK_EQ(cio_pwrite(fd, w + off, off, 5 * GiB), (ssize_t)off);
	memset(r, 0, n);
	CHECK_EQ(cio_pread(fd, r, off, 5 * GiB), (ssize_t)off);
	CHECK(memcmp(r, w + off, off) == 0);
	/* A read across the end gives what is there; past it, 0. */
	CHECK_EQ(cio_pread(fd, r, 4 * off, 5 * GiB), (ssize_t)off);
	CHECK_EQ(cio_pread(fd, r, off, 6 * GiB), 0);
	/* Misaligned memory: EINVAL, or (newer kernels, which bounce or
	 * split such buffers) done right; either way never wrong bytes. */
	if (mem > 1) {
		ssize_t wrc = cio_pwrite(fd, w + 1, off, (int64_t)n);
		CHECK(wrc == -EINVAL || wrc == (ssize_t)off);
		ssize_t rc = cio_pread(fd, r + 1, off, (int64_t)n);
		CHECK(rc == -EINVAL || rc == (ssize_t)off);
		if (rc == (ssize_t)off) /* as written, or as before */
			CHECK(memcmp(r + 1, wrc > 0 ? w + 1 : w, off) == 0);
	}
	/* A misaligned offset or length: always EINVAL. */
	if (off > 1) {
		CHECK_EQ(cio_pwrite(fd, w, off, 1), -EINVAL);
		CHECK_EQ(cio_pread(fd, r, off, 3), -EINVAL);
		CHECK_EQ(cio_pwrite(fd, w, off + 1, 0), -EINVAL);
	}
	/* The file is still as written. */
	CHECK_EQ(cio_pread(fd, r, n, 0), (ssize_t)n);
	CHECK(memcmp(r, w, n) == 0);
	CHECK_EQ(cio_fsync(fd), 0);
	free(w);
	free(r);
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_unlink(P("direct")), 0);

	/* cio_alloc_aligned's own rules. */
	void *p = &n;
	CHECK_EQ(cio_alloc_aligned(&p, 64, 3), -EINVAL);
	CHECK(p == NULL);
	p = &n;
	CHECK_EQ(cio_alloc_aligned(&p, (size_t)PTRDIFF_MAX + 1, 0), -ENOMEM);
	CHECK(p == NULL);
	CHECK_EQ(cio_alloc_aligned(&p, 0, 1), 0);
	CHECK(p);
	free(p);
	CHECK_EQ(cio_alloc_aligned(&p, 100, 1 << 16), 0);
	CHECK(p && (uintptr_t)p % (1 << 16) == 0);
	free(p);
}

/* --- many concurrent reads ------------------------------------------------- */

#define RD_TASKS 64
#define RD_EACH 48
#define RD_FILE (16 * MiB)

struct reader {
	int fd;
	uint32_t rng;
	int checked;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	uint8_t buf[4096];
	for (int k = 0; k < RD_EACH; k++) {
		int64_t at = (int64_t)(xorshift32(&rd->rng) % (RD_FILE - sizeof buf + 100));
		ssize_t want = (int64_t)RD_FILE - at < (int64_t)sizeof buf
				       ? (ssize_t)((int64_t)RD_FILE - at) : (ssize_t)sizeof buf;
		ssize_t n = cio_pread(rd->fd, buf, sizeof buf, at);
		CHECK_EQ(n, want);
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pat((uint64_t)at + (uint64_t)i, seed)) {
				fprintf(stderr, "read at %lld + %zd wrong (seed %#x)\n",
					(long long)at, i, seed);
				CHECK(0);
			}
		rd->checked++;
	}
	return NULL;
}

static void test_many_reads(void)
{
	int fd = make_file("many", RD_FILE, seed);
	drop_cache(fd); /* the first reads must wait for the disk */
	struct reader rd[RD_TASKS];
	cio_task_t t[RD_TASKS];
	for (int i = 0; i < RD_TASKS; i++) {
		rd[i] = (struct reader){fd, seed + (uint32_t)i * 7919u + 1, 0};
		t[i] = cio_spawn(reader_main, &rd[i]);
		CHECK(t[i] > 0);
	}
	for (int i = 0; i < RD_TASKS; i++) {
		CHECK_EQ(cio_join(t[i], NULL), 0);
		CHECK_EQ(rd[i].checked, RD_EACH);
	}
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_unlink(P("many")), 0);
}

/* --- fairness ------------------------------------------------------------------ */

/* A task whose reads always complete at once (the page cache: on epoll
 * the read is made on the spot) still lets the others and the timers
 * run: its sibling's 10 ms sleep ends long before its 3 s bound. */
static volatile bool spin_stop;

static void *spin_reader(void *arg)
{
	int fd = *(int *)arg;
	char buf[512];
	int64_t end = cio_now() + 3 * CIO_SEC;
	long reads = 0;
	while (!spin_stop && cio_now() < end) {
		CHECK_EQ(cio_pread(fd, buf, sizeof buf, 0), (ssize_t)sizeof buf);
		reads++;
	}
	return (void *)reads;
}

static void test_fairness(void)
{
	int fd = make_file("spin", 4096, seed);
	char buf[512];
	CHECK_EQ(cio_pread(fd, buf, sizeof buf, 0), (ssize_t)sizeof buf); /* cached */
	spin_stop = false;
	cio_task_t t = cio_spawn(spin_reader, &fd);
	CHECK(t > 0);
	int64_t t0 = cio_now();
	CHECK_EQ(cio_sleep(10 * MS), 0);
	int64_t slept = cio_now() - t0;
	spin_stop = true;
	void *reads;
	CHECK_EQ(cio_join(t, &reads), 0);
	CHECK((long)reads > 0);
	if (slept > 1000 * MS) {
		fprintf(stderr, "a 10 ms sleep took %lld ms beside a reading task\n",
			(long long)(slept / MS));
		CHECK(0);
	}
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_unlink(P("spin")), 0);
}

/* --- deadlines and cancellation --------------------------------------------- */

/* An error after some progress: *moved tells how far the call got.  The
 * buffer maps a one-page file over two pages: the second lies past the
 * file's end and faults, so the kernel moves the first page, and the next
 * transfer fails with -EFAULT.  (A PROT_NONE page would do natively, but
 * qemu-user checks a whole buffer before the system call.) */
static void test_partial(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	int mfd = cio_open(P("partial-map"), O_CREAT | O_TRUNC | O_RDWR, 0644);
	CHECK(mfd >= 0);
	CHECK_EQ(cio_ftruncate(mfd, (int64_t)pg), 0);
	unsigned char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	CHECK(m != MAP_FAILED);
	CHECK_EQ(cio_close(mfd), 0);
	memset(m, 'p', pg);
	int fd = cio_open(P("partial"), O_CREAT | O_TRUNC | O_RDWR, 0644);
	CHECK(fd >= 0);

	size_t moved = 99;
	CHECK_EQ(cio_write_all(fd, m, 2 * pg, 0, &moved), -EFAULT);
	CHECK_EQ(moved, pg);
	CHECK_EQ(cio_ftruncate(fd, (int64_t)(3 * pg)), 0);
	moved = 99;
	CHECK_EQ(cio_read_all(fd, m, 2 * pg, 0, &moved), -EFAULT);
	CHECK_EQ(moved, pg);
	CHECK_EQ(m[0], 'p');

	/* Success and a short read at the end count too. */
	CHECK_EQ(cio_write_all(fd, m, pg, 0, &moved), (ssize_t)pg);
	CHECK_EQ(moved, pg);
	CHECK_EQ(cio_read_all(fd, m, pg, 2 * pg + 10, &moved), (ssize_t)pg - 10);
	CHECK_EQ(moved, pg - 10);
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_unlink(P("partial")), 0);
	CHECK_EQ(munmap(m, 2 * pg), 0);
	CHECK_EQ(cio_unlink(P("partial-map")), 0);
}

/* Offsets on a stream: -ESPIPE on every backend, as pread(2).  What the
 * runtime learnt of an fd number goes with it when it is closed. */
static void test_espipe(void)
{
	int pfd[2], s[2];
	char buf[8] = "abcdefg";
	struct iovec iov = {buf, 4};
	CHECK_EQ(cio_pipe(pfd), 0);
	CHECK_EQ(cio_socketpair(SOCK_STREAM, s), 0);
	for (int k = 0; k < 2; k++) { /* again, from what is known */
		CHECK_EQ(cio_pwrite(pfd[1], buf, 4, 0), -ESPIPE);
		CHECK_EQ(cio_pread(pfd[0], buf, 4, 0), -ESPIPE);
		CHECK_EQ(cio_pwritev(pfd[1], &iov, 1, 0), -ESPIPE);
		CHECK_EQ(cio_preadv(pfd[0], &iov, 1, 0), -ESPIPE);
		CHECK_EQ(cio_pwrite(s[0], buf, 4, 0), -ESPIPE);
		CHECK_EQ(cio_pread(s[1], buf, 4, 0), -ESPIPE);
	}
	size_t moved = 99;
	CHECK_EQ(cio_read_all(pfd[0], buf, 4, 0, &moved), -ESPIPE);
	CHECK_EQ(moved, 0);
	/* Nothing was written: the pipe is empty. */
	CHECK_EQ(cio_write(pfd[1], "x", 1), 1);
	CHECK_EQ(cio_read(pfd[0], buf, sizeof buf), 1);
	CHECK_EQ(cio_close(s[0]), 0);
	CHECK_EQ(cio_close(s[1]), 0);
	CHECK_EQ(cio_close(pfd[1]), 0);
	int was = pfd[0];
	CHECK_EQ(cio_close(pfd[0]), 0);
	/* The lowest free number: a file takes the pipe's place. */
	int fd = cio_open(P("espipe"), O_CREAT | O_TRUNC | O_RDWR, 0644);
	CHECK_EQ(fd, was);
	CHECK_EQ(cio_pwrite(fd, "abcd", 4, 2), 4);
	CHECK_EQ(cio_pread(fd, buf, 4, 2), 4);
	CHECK(memcmp(buf, "abcd", 4) == 0);
	CHECK_EQ(cio_close(fd), 0);
	/* A pipe closed behind the runtime's back (plain close()): a file
	 * that takes its number still reads at offsets. */
	CHECK_EQ(cio_pipe(pfd), 0);
	CHECK_EQ(cio_pread(pfd[0], buf, 4, 0), -ESPIPE);
	was = pfd[0];
	CHECK_EQ(close(pfd[0]), 0);
	fd = open(P("espipe"), O_RDONLY | O_CLOEXEC);
	CHECK_EQ(fd, was);
	CHECK_EQ(cio_pread(fd, buf, 4, 2), 4);
	CHECK(memcmp(buf, "abcd", 4) == 0);
	CHECK_EQ(close(fd), 0);
	CHECK_EQ(cio_close(pfd[1]), 0);
	CHECK_EQ(cio_unlink(P("espipe")), 0);
}

static void test_deadline(void)
{
	int fd = cio_open(P("dl"), O_CREAT | O_RDWR | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(cio_pwrite(fd, "0123456789", 10, 0), 10);
	char buf[16] = {0};
	struct statx st;
	int64_t tok = cio_deadline_push(cio_now() - 1);
	CHECK_EQ(cio_pread(fd, buf, 10, 0), -ETIMEDOUT);
	CHECK_EQ(buf[0], 0);
	CHECK_EQ(cio_pwrite(fd, "zzzz", 4, 0), -ETIMEDOUT);
	CHECK_EQ(cio_pwrite(fd, "zzzz", 4, 100), -ETIMEDOUT);
	struct iovec iv = {buf, 4};
	CHECK_EQ(cio_preadv(fd, &iv, 1, 0), -ETIMEDOUT);
	CHECK_EQ(cio_pwritev(fd, &iv, 1, 0), -ETIMEDOUT);
	size_t w = 9;
	CHECK_EQ(cio_write_all(fd, "zzzz", 4, 0, &w), -ETIMEDOUT);
	CHECK_EQ(w, 0);
	CHECK_EQ(cio_read_all(fd, buf, 4, 0, NULL), -ETIMEDOUT);
	CHECK_EQ(cio_fsync(fd), -ETIMEDOUT);
	CHECK_EQ(cio_fdatasync(fd), -ETIMEDOUT);
	CHECK_EQ(cio_ftruncate(fd, 0), -ETIMEDOUT);
	CHECK_EQ(cio_fallocate(fd, 0, 0, 1 << 20), -ETIMEDOUT);
	CHECK_EQ(cio_open(P("dl-new"), O_CREAT | O_RDWR, 0644), -ETIMEDOUT);
	CHECK_EQ(cio_mkdir(P("dl-dir"), 0755), -ETIMEDOUT);
	CHECK_EQ(cio_symlink("x", P("dl-ln")), -ETIMEDOUT);
	CHECK_EQ(cio_link(P("dl"), P("dl-ln")), -ETIMEDOUT);
	CHECK_EQ(cio_rename(P("dl"), P("dl2")), -ETIMEDOUT);
	CHECK_EQ(cio_unlink(P("dl")), -ETIMEDOUT);
	CHECK_EQ(cio_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &st), -ETIMEDOUT);
	cio_deadline_pop(tok);
	/* Nothing happened. */
	CHECK(!exists(P("dl-new")) && !exists(P("dl-dir")) && !exists(P("dl-ln")));
	CHECK(!exists(P("dl2")));
	CHECK_EQ(fsize(fd), 10);
	CHECK_EQ(cio_pread(fd, buf, sizeof buf, 0), 10);
	CHECK(memcmp(buf, "0123456789", 10) == 0);

	/* Cancelled: -ECANCELED, nothing done, until cleared. */
	CHECK_EQ(cio_cancel(cio_self()), 0);
	CHECK_EQ(cio_pwrite(fd, "zzzz", 4, 0), -ECANCELED);
	CHECK_EQ(cio_ftruncate(fd, 0), -ECANCELED);
	CHECK_EQ(cio_open(P("dl-new"), O_CREAT | O_RDWR, 0644), -ECANCELED);
	CHECK(cio_cancel_clear());
	CHECK(!exists(P("dl-new")));
	CHECK_EQ(cio_pread(fd, buf, sizeof buf, 0), 10);
	CHECK(memcmp(buf, "0123456789", 10) == 0);
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_unlink(P("dl")), 0);
}

/* A large read into a buffer on the task's stack, cancelled in flight. */
#define STACK_READ (4 * MiB)

struct stack_read {
	int fd;
	volatile bool started, cancel_sent;
	ssize_t res;
	int64_t delay;
};

static void *stack_read_main(void *arg)
{
	struct stack_read *s = arg;
	uint8_t buf[STACK_READ];
	s->started = true;
	s->res = cio_pread(s->fd, buf, sizeof buf, 0);
	if (s->res > 0)
		for (ssize_t i = 0; i < s->res; i++)
			CHECK_EQ(buf[i], pat((uint64_t)i, seed ^ 0x55));
	/* Whatever came back, the kernel or the pool is done with buf: a
	 * write into it now would show in the poison. */
	memset(buf, 0xa5, sizeof buf);
	while (!s->cancel_sent)
		cio_sleep(MS); /* -ECANCELED once it comes */
	cio_cancel_clear();
	CHECK_EQ(cio_sleep(30 * MS), 0);
	for (size_t i = 0; i < sizeof buf; i++)
		CHECK_EQ(buf[i], 0xa5);
	return NULL;
}

static void test_cancel_inflight(void)
{
	int fd = make_file("stackread", STACK_READ, seed ^ 0x55);
	int cancelled = 0, completed = 0, in_call = 0;
	for (int round = 0; round < 12; round++) {
		drop_cache(fd);
		struct stack_read s = {.fd = fd, .res = 12345};
		cio_spawn_opts so = {.name = "stack read", .stack_size = STACK_READ + 512 * KiB};
		cio_task_t t = cio_spawn_with(&so, stack_read_main, &s);
		CHECK(t > 0);
		/* Cancel at once (before it runs), after one yield (parked
		 * in the call), or a little later. */
		if (round % 3 >= 1)
			CHECK_EQ(cio_yield(), 0);
		if (round % 3 == 2)
			CHECK_EQ(cio_sleep((round / 3) * 100 * CIO_US), 0);
		in_call += s.started && s.res == 12345; /* parked in cio_pread */
		CHECK_EQ(cio_cancel(t), 0);
		s.cancel_sent = true;
		CHECK_EQ(cio_join(t, NULL), 0);
		if (s.res == -ECANCELED)
			cancelled++;
		else if (s.res == (ssize_t)STACK_READ)
			completed++;
		else {
			fprintf(stderr, "cancelled read returned %zd\n", s.res);
			CHECK(0);
		}
		if (round % 3 == 0)
			CHECK_EQ(s.res, -ECANCELED); /* it never started */
	}
	CHECK(cancelled >= 4);
	/* After a yield the read is in the kernel or on the pool (a 4 MiB
	 * read of a cold file takes milliseconds): a cancel then must wait
	 * for it, which is what the poison checks.  Those are the cases this
	 * test is for, so some rounds must cancel a read in the call. */
	fprintf(stderr, "  stack reads: %d cancelled in the call, %d before it; "
		"%d cancelled, %d completed\n", in_call, 12 - in_call, cancelled, completed);
	CHECK(in_call > 0);
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_unlink(P("stackread")), 0);
}

/* --- the runtime's main ------------------------------------------------------ */

static void *fs_main(void *arg)
{
	(void)arg;
	cio_stats s0, s1;
	cio_stats_get(&s0);
	int fds = test_count_fds();
	int64_t t0 = cio_now();
	TEST_CASE(rw, test_rw());
	TEST_CASE(names, test_names());
	TEST_CASE(errors, test_errors());
	TEST_CASE(big_offsets, test_big_offsets());
	TEST_CASE(random_writes, test_random_writes());
	TEST_CASE(direct, test_direct());
	TEST_CASE(many_reads, test_many_reads());
	TEST_CASE(fairness, test_fairness());
	TEST_CASE(partial, test_partial());
	TEST_CASE(espipe, test_espipe());
	TEST_CASE(deadline, test_deadline());
	TEST_CASE(cancel_inflight, test_cancel_inflight());
	CHECK_EQ(test_count_fds(), fds);
	cio_stats_get(&s1);
	CHECK_EQ(s1.tasks_live, s0.tasks_live);
	fprintf(stderr, "file tests: %.2f s\n", (double)(cio_now() - t0) / 1e9);
	return NULL;
}

/* --- forked children ----------------------------------------------------------
 * Each runs a runtime of its own in a fresh process, started before the
 * parent's first runtime uses the blocking pool (a forked pool would have
 * threads in its books that the child does not have), and reports by its
 * exit status. */

static void run_child(const char *what, void (*body)(void))
{
	fflush(stderr);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		body();
		_exit(0);
	}
	int st = 0;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "%s: the child failed (%s %d)\n", what,
			WIFEXITED(st) ? "exit" : "signal",
			WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		CHECK(0);
	}
	fprintf(stderr, "%s: ok\n", what);
}

static void child_runtime(cio_fn *fn)
{
	cio_config cfg = test_backend_config();
	CHECK_EQ(cio_run_with(&cfg, fn, NULL), 0);
}

/* EACCES: root passes permission bits, so drop to nobody first. */
static void *eacces_main(void *arg)
{
	(void)arg;
	struct statx st;
	CHECK_EQ(cio_open(P("acc/secret"), O_RDONLY, 0), -EACCES);
	CHECK_EQ(cio_open(P("acc/secret"), O_WRONLY, 0), -EACCES);
	CHECK_EQ(cio_open(P("acc/new"), O_CREAT | O_WRONLY, 0644), -EACCES);
	CHECK_EQ(cio_mkdir(P("acc/d"), 0755), -EACCES);
	CHECK_EQ(cio_unlink(P("acc/secret")), -EACCES);
	CHECK_EQ(cio_rename(P("acc/secret"), P("acc/other")), -EACCES);
	CHECK_EQ(cio_symlink("x", P("acc/ln")), -EACCES);
	CHECK_EQ(cio_statx(AT_FDCWD, P("acc/closed/f"), 0, STATX_SIZE, &st), -EACCES);
	CHECK_EQ(cio_open(P("acc/closed/f"), O_RDONLY, 0), -EACCES);
	/* What is allowed still works. */
	CHECK_EQ(cio_statx(AT_FDCWD, P("acc/secret"), 0, STATX_SIZE, &st), 0);
	CHECK_EQ(st.stx_size, 6);
	int fd = cio_open(P("acc/public"), O_RDONLY, 0);
	CHECK(fd >= 0);
	char b[8];
	CHECK_EQ(cio_pread(fd, b, sizeof b, 0), 6);
	CHECK_EQ(cio_pwrite(fd, "x", 1, 0), -EBADF);
	CHECK_EQ(cio_close(fd), 0);
	return NULL;
}

static void eacces_child(void)
{
	if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0) {
		fprintf(stderr, "EACCES: cannot drop privileges: %s\n", strerror(errno));
		_exit(2);
	}
	CHECK_EQ(geteuid(), 65534);
	CHECK(access(P("acc/secret"), R_OK) < 0 && errno == EACCES);
	child_runtime(eacces_main);
}

static void test_eacces(void)
{
	/* dir is 0700: let others through to acc. */
	CHECK_EQ(chmod(dir, 0711), 0);
	CHECK_EQ(mkdir(P("acc"), 0755), 0);
	CHECK_EQ(mkdir(P("acc/closed"), 0700), 0);
	int fd = open(P("acc/secret"), O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0 && write(fd, "secret", 6) == 6 && close(fd) == 0);
	fd = open(P("acc/public"), O_CREAT | O_WRONLY, 0644);
	CHECK(fd >= 0 && write(fd, "public", 6) == 6 && close(fd) == 0);
	fd = open(P("acc/closed/f"), O_CREAT | O_WRONLY, 0644);
	CHECK(fd >= 0 && close(fd) == 0);
	run_child("EACCES (uid 65534)", eacces_child);
	CHECK(!exists(P("acc/new")) && !exists(P("acc/d")) && exists(P("acc/secret")));
	CHECK_EQ(unlink(P("acc/closed/f")), 0);
	CHECK_EQ(rmdir(P("acc/closed")), 0);
	CHECK_EQ(unlink(P("acc/secret")), 0);
	CHECK_EQ(unlink(P("acc/public")), 0);
	CHECK_EQ(rmdir(P("acc")), 0);
	CHECK_EQ(chmod(dir, 0700), 0);
}

/* ENOSPC: a 1 MiB tmpfs in a mount namespace of the child's own. */
static void *enospc_main(void *arg)
{
	(void)arg;
	size_t n = 4 * MiB, w = 12345;
	uint8_t *b = malloc(n);
	CHECK(b);
	for (size_t i = 0; i < n; i++)
		b[i] = pat(i, seed);
	int fd = cio_open(P("mnt/fill"), O_CREAT | O_RDWR, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(cio_write_all(fd, b, n, 0, &w), -ENOSPC);
	CHECK(w > 0 && w <= MiB);
	CHECK_EQ(fsize(fd), w);
	/* What was written is there. */
	uint8_t *r = malloc(w);
	CHECK(r);
	CHECK_EQ(cio_read_all(fd, r, w, 0, NULL), (ssize_t)w);
	CHECK(memcmp(r, b, w) == 0);
	free(r);
	/* Full: a write at a page not yet backed fails, also vectored. */
	int64_t next = ((int64_t)w + 4095) / 4096 * 4096;
	CHECK_EQ(cio_pwrite(fd, b, 4096, next), -ENOSPC);
	struct iovec iv[2] = {{b, 4096}, {b + 4096, 4096}};
	CHECK_EQ(cio_pwritev(fd, iv, 2, next + 8192), -ENOSPC);
	int fd2 = cio_open(P("mnt/alloc"), O_CREAT | O_RDWR, 0644);
	CHECK(fd2 >= 0);
	CHECK_EQ(cio_fallocate(fd2, 0, 0, 2 * (int64_t)MiB), -ENOSPC);
	CHECK_EQ(fsize(fd2), 0);
	/* Space freed, space again. */
	CHECK_EQ(cio_ftruncate(fd, 0), 0);
	CHECK_EQ(cio_fallocate(fd2, 0, 0, 256 * (int64_t)KiB), 0);
	CHECK_EQ(fsize(fd2), 256 * KiB);
	CHECK_EQ(cio_write_all(fd, b, 256 * KiB, 0, &w), (ssize_t)(256 * KiB));
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_close(fd2), 0);
	free(b);
	return NULL;
}

static void enospc_child(void)
{
	if (unshare(CLONE_NEWNS) < 0) {
		fprintf(stderr, "ENOSPC: unshare(CLONE_NEWNS): %s (the test needs root "
			"or CAP_SYS_ADMIN; it does not skip)\n", strerror(errno));
		_exit(3);
	}
	if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", P("mnt"), "tmpfs", 0, "size=1m") < 0) {
		fprintf(stderr, "ENOSPC: mount: %s (needs CAP_SYS_ADMIN)\n", strerror(errno));
		_exit(3);
	}
	child_runtime(enospc_main);
	CHECK_EQ(umount(P("mnt")), 0);
}

static void test_enospc(void)
{
	CHECK_EQ(mkdir(P("mnt"), 0755), 0);
	run_child("ENOSPC (1 MiB tmpfs)", enospc_child);
	CHECK(!exists(P("mnt/fill"))); /* the mount went with the child */
	CHECK_EQ(rmdir(P("mnt")), 0);
}

/* A job still queued on the blocking pool, cancelled, never runs.  The
 * pool gets one thread a class, kept busy: on epoll, in the class of file
 * calls, by an open of a FIFO that no writer opens yet; on io_uring (whose
 * file calls need no pool), in the users' class, on a pipe. */
static int gate[2];
static bool gate_fifo;

static void *gate_job(void *arg)
{
	(void)arg;
	char c;
	return (void *)(intptr_t)read(gate[0], &c, 1);
}

static void *gate_task(void *arg)
{
	(void)arg;
	if (gate_fifo)
		return (void *)(intptr_t)cio_open(P("q/fifo"), O_RDONLY, 0);
	void *r = NULL;
	CHECK_EQ(cio_blocking(gate_job, NULL, &r), 0);
	return r;
}

static int qfile, qcold; /* opened before the pool is busy */
#define QCOLD_SIZE (1 << 20)

static void *queued_op(void *arg)
{
	static char buf[4096];
	switch ((int)(intptr_t)arg) {
	case 0:
		return (void *)(intptr_t)cio_ftruncate(qfile, 4096);
	case 1:
		return (void *)(intptr_t)cio_mkdir(P("q/dir"), 0755);
	case 2:
		return (void *)(intptr_t)cio_open(P("q/created"), O_CREAT | O_RDWR, 0644);
	default:
		/* A read the page cache cannot serve: on epoll,
		 * RWF_NOWAIT fails and the pool must make it. */
		return (void *)(intptr_t)cio_pread(qcold, buf, sizeof buf, QCOLD_SIZE / 2);
	}
}

static void *queue_main(void *arg)
{
	(void)arg;
	bool epoll = strcmp(cio_backend_name(), "io_uring") != 0; /* readiness */
	cio_blocking_stats bs;
	int fd = qfile = cio_open(P("q/file"), O_RDWR, 0);
	CHECK(fd >= 0);
	qcold = cio_open(P("q/cold"), O_RDONLY, 0);
	CHECK(qcold >= 0);
	gate_fifo = epoll;
	cio_task_t g = cio_spawn(gate_task, NULL);
	CHECK(g > 0);
	for (int i = 0; i < 200; i++) {
		cio_blocking_stats_get(&bs);
		if (bs.running == 1)
			break;
		CHECK_EQ(cio_sleep(MS), 0);
	}
	CHECK_EQ(bs.running, 1);
	CHECK_EQ(bs.threads, 1);
	cio_task_t t[4];
	for (int i = 0; i < 4; i++) {
		t[i] = cio_spawn(queued_op, (void *)(intptr_t)i);
		CHECK(t[i] > 0);
	}
	CHECK_EQ(cio_sleep(50 * MS), 0);
	cio_blocking_stats_get(&bs);
	if (epoll) {
		/* All four wait for the one busy thread; a fifth finds the
		 * queue full, and so does a splice bound for the pool. */
		CHECK_EQ(bs.queued, 4);
		CHECK_EQ(cio_fdatasync(fd), -EBUSY);
		int p[2];
		CHECK_EQ(cio_pipe(p), 0);
		CHECK_EQ(cio_splice(fd, 0, p[1], -1, 16), -EBUSY);
		CHECK_EQ(cio_close(p[0]), 0);
		CHECK_EQ(cio_close(p[1]), 0);
		for (int i = 0; i < 4; i++)
			CHECK_EQ(cio_cancel(t[i]), 0);
		for (int i = 0; i < 4; i++)
			CHECK_EQ(join_rc(t[i]), -ECANCELED);
		cio_blocking_stats_get(&bs);
		CHECK_EQ(bs.queued, 0);
	} else {
		/* io_uring makes them itself: none needs the pool. */
		CHECK_EQ(bs.queued, 0);
		CHECK_EQ(join_rc(t[0]), 0);
		CHECK_EQ(join_rc(t[1]), 0);
		int cfd = join_rc(t[2]);
		CHECK(cfd >= 0);
		CHECK_EQ(cio_close(cfd), 0);
		CHECK_EQ(join_rc(t[3]), 4096);
	}
	/* A deadline bounds the wait for the pool as well (epoll), or the
	 * ring does it at once (io_uring). */
	int64_t tok = cio_timeout_push(20 * MS);
	int rc = cio_fsync(fd);
	cio_deadline_pop(tok);
	CHECK_EQ(rc, epoll ? -ETIMEDOUT : 0);
	/* Let the pool go: the cancelled jobs never ran. */
	if (epoll) {
		/* The gate's open is the FIFO's reader; ENXIO while a stop and
		 * continue has it between an interrupted open and its restart. */
		int w;
		for (int i = 0; (w = open(P("q/fifo"), O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0 &&
				errno == ENXIO && i < 1000; i++)
			CHECK_EQ(cio_sleep(MS), 0);
		CHECK(w >= 0);
		int r = join_rc(g);
		CHECK(r >= 0);
		CHECK_EQ(cio_close(r), 0);
		CHECK_EQ(close(w), 0);
	} else {
		CHECK_EQ(write(gate[1], "g", 1), 1);
		CHECK_EQ(join_rc(g), 1);
	}
	CHECK_EQ(cio_sleep(50 * MS), 0);
	if (epoll) {
		CHECK_EQ(fsize(fd), 0);
		CHECK(!exists(P("q/dir")) && !exists(P("q/created")));
	} else {
		CHECK_EQ(fsize(fd), 4096);
		CHECK(exists(P("q/dir")) && exists(P("q/created")));
	}
	/* The pool works on. */
	CHECK_EQ(cio_ftruncate(fd, 100), 0);
	CHECK_EQ(fsize(fd), 100);
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_close(qcold), 0);
	return NULL;
}

static void queue_child(void)
{
	CHECK_EQ(cio_blocking_config(1, 4), 0); /* one thread, four queued */
	CHECK_EQ(pipe(gate), 0);
	child_runtime(queue_main);
}

/* Whether the page at off of fd is in the page cache. */
static bool page_cached(int fd, off_t off)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *m = mmap(NULL, (size_t)pg, PROT_READ, MAP_SHARED, fd, off / pg * pg);
	CHECK(m != MAP_FAILED);
	unsigned char v = 0;
	CHECK_EQ(mincore(m, (size_t)pg, &v), 0);
	CHECK_EQ(munmap(m, (size_t)pg), 0);
	return v & 1;
}

static void test_queued(void)
{
	CHECK_EQ(mkdir(P("q"), 0755), 0);
	int fd = open(P("q/file"), O_CREAT | O_WRONLY, 0644);
	CHECK(fd >= 0 && close(fd) == 0);
	/* Written, synced and dropped from the page cache; dropping is
	 * only advice, so mincore() confirms that the page read is gone. */
	static char data[QCOLD_SIZE];
	memset(data, 'c', sizeof data);
	fd = open(P("q/cold"), O_CREAT | O_RDWR, 0644);
	CHECK(fd >= 0 && write(fd, data, sizeof data) == (ssize_t)sizeof data);
	CHECK_EQ(fdatasync(fd), 0);
	bool cold = false;
	for (int i = 0; i < 100 && !cold; i++) {
		CHECK_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
		cold = !page_cached(fd, QCOLD_SIZE / 2);
		if (!cold)
			usleep(10000);
	}
	CHECK(cold);
	CHECK_EQ(close(fd), 0);
	CHECK_EQ(mkfifo(P("q/fifo"), 0600), 0);
	run_child("queued pool jobs", queue_child);
	unlink(P("q/file"));
	unlink(P("q/cold"));
	unlink(P("q/fifo"));
	unlink(P("q/created"));
	rmdir(P("q/dir"));
	CHECK_EQ(rmdir(P("q")), 0);
}

/* --- main ---------------------------------------------------------------------- */

/* A directory on a disk-backed file system for the test's files. */
static void make_dir(void)
{
	const char *bases[] = {getenv("COREIO_TEST_DIR"), "/var/tmp", ".", "/tmp"};
	for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
		struct statfs sf;
		if (!bases[i] || statfs(bases[i], &sf) < 0 || sf.f_type == TMPFS_MAGIC)
			continue;
		char tmpl[PATH_MAX];
		snprintf(tmpl, sizeof tmpl, "%s/coreio-fs-XXXXXX", bases[i]);
		if (!mkdtemp(tmpl))
			continue;
		CHECK(realpath(tmpl, dir));
		return;
	}
	fprintf(stderr, "no disk-backed directory for the test's files\n");
	CHECK(0);
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	umask(022);
	net_seed_from_env();
	seed = rng;
	fprintf(stderr, "seed %#x (COREIO_TEST_SEED to repeat)\n", seed);
	int rc = test_backend_missing();
	if (rc)
		return rc;
	make_dir();
	fprintf(stderr, "directory %s\n", dir);
	TEST_CASE(eacces, test_eacces());
	TEST_CASE(enospc, test_enospc());
	TEST_CASE(queued, test_queued());
	rc = test_run(fs_main, NULL);
	const char *backend = getenv("COREIO_BACKEND");
#ifdef COREIO_TESTING
	if (rc == 0 && backend && strcmp(backend, "uring") == 0) {
		/* Again, on a ring that lacks every file opcode (as older
		 * kernels do): each call must take the blocking pool. */
		cio_blocking_stats st;
		cio_blocking_stats_get(&st);
		CHECK_EQ(st.threads, 0); /* the ring made every call so far */
		cio__uring_no_file_ops = true;
		rc = test_run(fs_main, NULL);
		cio__uring_no_file_ops = false;
		cio_blocking_stats_get(&st);
		/* The pool ran them (a case alone may make no file call). */
		CHECK(st.threads > 0 || !test_cases_all());
		fprintf(stderr, "io_uring without file opcodes: ok\n");
	}
#else
	if (rc == 0 && backend && strcmp(backend, "uring") == 0)
		fprintf(stderr, "io_uring without file opcodes: left out (needs COREIO_TESTING)\n");
#endif
	CHECK_EQ(rmdir(dir), 0); /* empty: every file was removed */
	return rc ? rc : test_cases_end();
}
