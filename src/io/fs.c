/* fs.c - files for tasks: open, positioned and vectored reads and writes,
 * sync, space, metadata and names, O_DIRECT alignment.  Each call describes
 * its request (struct cio__io) for the driver; a request the backend
 * declines runs on the blocking pool as the plain system call. */
#include "io.h"
#include "../platform/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- opening ------------------------------------------------------------ */

int cio_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	cio__self_or_die("cio_openat");
	struct cio__io io = {
		.kind = CIO__IO_OPENAT, .fd = dirfd, .path = path, .flags = flags,
		.mode = mode,
	};
	if (!path)
		return -EFAULT;
	ssize_t fd = cio__io("cio_openat", &io);
	if (fd >= 0)
		cio_fd_adopt((int)fd); /* the driver forgets an earlier file */
	return (int)fd;
}

int cio_open(const char *path, int flags, mode_t mode)
{
	return cio_openat(AT_FDCWD, path, flags, mode);
}

/* --- reading and writing --------------------------------------------------- */

static ssize_t rw(const char *call, enum cio__io_kind kind, int fd, void *buf,
		  size_t len, int64_t off)
{
	struct cio__io io = {.kind = kind, .fd = fd, .p.buf = buf, .n.len = len, .off = off};
	cio__self_or_die(call);
	if (off < 0)
		return -EINVAL;
	return cio__io(call, &io);
}

ssize_t cio_pread(int fd, void *buf, size_t len, int64_t off)
{
	return rw("cio_pread", CIO__IO_READ, fd, buf, len, off);
}

ssize_t cio_pwrite(int fd, const void *buf, size_t len, int64_t off)
{
	return rw("cio_pwrite", CIO__IO_WRITE, fd, (void *)buf, len, off);
}

static ssize_t rwv(const char *call, enum cio__io_kind kind, int fd,
		   const struct iovec *iov, int iovcnt, int64_t off)
{
	struct cio__io io = {
		.kind = kind, .fd = fd, .p.iov = iov, .n.iovcnt = iovcnt, .off = off,
	};
	cio__self_or_die(call);
	if (off < 0 || iovcnt < 0)
		return -EINVAL;
	return cio__io(call, &io);
}

ssize_t cio_preadv(int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
	return rwv("cio_preadv", CIO__IO_READV, fd, iov, iovcnt, off);
}

ssize_t cio_pwritev(int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
	return rwv("cio_pwritev", CIO__IO_WRITEV, fd, iov, iovcnt, off);
}

ssize_t cio_read_all(int fd, void *buf, size_t len, int64_t off, size_t *moved)
{
	cio__self_or_die("cio_read_all");
	size_t done = 0;
	ssize_t r = 0;
	while (done < len) {
		r = cio_pread(fd, (char *)buf + done, len - done, off + (int64_t)done);
		if (r <= 0)
			break; /* 0: end of file */
		done += (size_t)r;
	}
	if (moved)
		*moved = done;
	return r < 0 ? r : (ssize_t)done;
}

ssize_t cio_write_all(int fd, const void *buf, size_t len, int64_t off,
		      size_t *moved)
{
	cio__self_or_die("cio_write_all");
	size_t done = 0;
	ssize_t r = 0;
	while (done < len) {
		r = cio_pwrite(fd, (const char *)buf + done, len - done, off + (int64_t)done);
		if (r == 0)
			r = -EIO; /* no progress on a regular file: do not spin */
		if (r < 0)
			break;
		done += (size_t)r;
	}
	if (moved)
		*moved = done;
	return r < 0 ? r : (ssize_t)len;
}

/* --- sync and space ----------------------------------------------------- */

static int fd_op(const char *call, struct cio__io *io)
{
	return (int)cio__io(call, io);
}

int cio_fsync(int fd)
{
	return fd_op("cio_fsync", &(struct cio__io){.kind = CIO__IO_FSYNC, .fd = fd});
}

int cio_fdatasync(int fd)
{
	return fd_op("cio_fdatasync", &(struct cio__io){
		.kind = CIO__IO_FSYNC, .fd = fd, .flags = CIO__FSYNC_DATA});
}

int cio_fallocate(int fd, int mode, int64_t off, int64_t len)
{
	cio__self_or_die("cio_fallocate");
	if (off < 0 || len <= 0)
		return -EINVAL;
	return fd_op("cio_fallocate", &(struct cio__io){
		.kind = CIO__IO_FALLOCATE, .fd = fd, .mode = (unsigned)mode, .off = off,
		.n.len = (size_t)len});
}

int cio_ftruncate(int fd, int64_t len)
{
	cio__self_or_die("cio_ftruncate");
	if (len < 0)
		return -EINVAL;
	return fd_op("cio_ftruncate", &(struct cio__io){
		.kind = CIO__IO_FTRUNCATE, .fd = fd, .off = len});
}

/* --- metadata and names --------------------------------------------------- */

int cio_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *st)
{
	cio__self_or_die("cio_statx");
	if (!path || !st)
		return -EFAULT;
	return fd_op("cio_statx", &(struct cio__io){
		.kind = CIO__IO_STATX, .fd = dirfd, .path = path, .flags = flags,
		.mode = mask, .p.stx = st});
}

int cio_renameat(int olddirfd, const char *oldpath, int newdirfd,
		 const char *newpath, unsigned flags)
{
	cio__self_or_die("cio_renameat");
	if (!oldpath || !newpath)
		return -EFAULT;
	return fd_op("cio_renameat", &(struct cio__io){
		.kind = CIO__IO_RENAMEAT, .fd = olddirfd, .path = oldpath,
		.fd2 = newdirfd, .path2 = newpath, .flags = (int)flags});
}

int cio_unlinkat(int dirfd, const char *path, int flags)
{
	cio__self_or_die("cio_unlinkat");
	if (!path)
		return -EFAULT;
	return fd_op("cio_unlinkat", &(struct cio__io){
		.kind = CIO__IO_UNLINKAT, .fd = dirfd, .path = path, .flags = flags});
}

int cio_mkdirat(int dirfd, const char *path, mode_t mode)
{
	cio__self_or_die("cio_mkdirat");
	if (!path)
		return -EFAULT;
	return fd_op("cio_mkdirat", &(struct cio__io){
		.kind = CIO__IO_MKDIRAT, .fd = dirfd, .path = path, .mode = mode});
}

int cio_symlinkat(const char *target, int newdirfd, const char *linkpath)
{
	cio__self_or_die("cio_symlinkat");
	if (!target || !linkpath)
		return -EFAULT;
	return fd_op("cio_symlinkat", &(struct cio__io){
		.kind = CIO__IO_SYMLINKAT, .fd = AT_FDCWD, .path = target,
		.fd2 = newdirfd, .path2 = linkpath});
}

int cio_linkat(int olddirfd, const char *oldpath, int newdirfd,
	       const char *newpath, int flags)
{
	cio__self_or_die("cio_linkat");
	if (!oldpath || !newpath)
		return -EFAULT;
	return fd_op("cio_linkat", &(struct cio__io){
		.kind = CIO__IO_LINKAT, .fd = olddirfd, .path = oldpath,
		.fd2 = newdirfd, .path2 = newpath, .flags = flags});
}

int cio_rename(const char *oldpath, const char *newpath)
{
	return cio_renameat(AT_FDCWD, oldpath, AT_FDCWD, newpath, 0);
}

int cio_unlink(const char *path)
{
	return cio_unlinkat(AT_FDCWD, path, 0);
}

int cio_mkdir(const char *path, mode_t mode)
{
	return cio_mkdirat(AT_FDCWD, path, mode);
}

int cio_rmdir(const char *path)
{
	return cio_unlinkat(AT_FDCWD, path, AT_REMOVEDIR);
}

int cio_symlink(const char *target, const char *linkpath)
{
	return cio_symlinkat(target, AT_FDCWD, linkpath);
}

int cio_link(const char *oldpath, const char *newpath)
{
	return cio_linkat(AT_FDCWD, oldpath, AT_FDCWD, newpath, 0);
}

/* --- O_DIRECT ------------------------------------------------------------- */

int cio_dio_align(int fd, size_t *mem_align, size_t *off_align)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), mem = page, off = page;
	struct statx st;
	int rc = cio__fstatx(fd, STATX_DIOALIGN, &st);
	if (rc < 0) {
		if (rc == -EBADF)
			return -EBADF;
	} else if (!CIO__O_DIRECT) {
		mem = off = 0; /* the system has no O_DIRECT at all */
	} else if ((st.stx_mask & STATX_DIOALIGN) &&
		   (st.stx_dio_mem_align || !(fcntl(fd, F_GETFL) & CIO__O_DIRECT))) {
		/* The file system told: 0 means it takes no O_DIRECT.  But an
		 * fd opened O_DIRECT proves it does (emulators such as
		 * qemu-user pass the mask on and zero the fields). */
		mem = st.stx_dio_mem_align;
		off = st.stx_dio_offset_align;
	}
	if (mem_align)
		*mem_align = mem;
	if (off_align)
		*off_align = off;
	return mem && off ? 0 : -EINVAL;
}

int cio_alloc_aligned(void **out, size_t size, size_t align)
{
	*out = NULL;
	if (!align)
		align = (size_t)sysconf(_SC_PAGESIZE);
	if (align & (align - 1))
		return -EINVAL;
	if (size > PTRDIFF_MAX)
		return -ENOMEM; /* as malloc: no object is that big */
	if (align < sizeof(void *))
		align = sizeof(void *); /* posix_memalign's minimum */
	void *p;
	int rc = posix_memalign(&p, align, size ? size : 1);
	if (rc)
		return -rc;
	*out = memset(p, 0, size);
	return 0;
}
