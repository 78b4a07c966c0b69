/* file_copy.c - copies one file to another on coreio with N reads and
 * writes in flight: N tasks each take the next block offset, read it with
 * cio_pread() and write it with cio_pwrite() at the same offset.  The
 * destination is preallocated to the source's size (fallocate, else
 * ftruncate) and fsync'ed at the end.
 *
 *   file_copy [--qd N] [--block KiB] [--direct] SRC DST
 *
 *   --qd N       blocks in flight (tasks), 1 to 1024 (default 8)
 *   --block KiB  block size in KiB (default 256)
 *   --direct     O_DIRECT on both files: buffers from cio_alloc_aligned(),
 *                blocks rounded to the alignment cio_dio_align() reports;
 *                the last block is written whole (zero-padded) and the
 *                file then cut to its exact size with ftruncate
 *   COREIO_BACKEND=uring|epoll|kqueue forces a backend
 *
 * Example:  file_copy --qd 16 --block 1024 big.img /mnt/other/big.img
 *
 * Prints "file_copy: B bytes in T s, R MiB/s (qd N, block K KiB[, direct])".
 * Exit status 0 on success; 1 on any error (the message names the file
 * and the error: No such file or directory, Is a directory, No space left
 * on device...), leaving a partial DST behind; 2: bad arguments; 3: the
 * runtime could not start. */
#define _GNU_SOURCE
#include <coreio.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct {
	const char *src, *dst;
	int qd;
	size_t block;
	bool direct;
} opt = {.qd = 8, .block = 256 << 10};

/* The copy, shared by its tasks (one runtime: no locks). */
static struct {
	int in, out;
	int64_t size, next; /* next block offset to take */
	size_t mem_align, off_align;
	int err;            /* first error, 0 if none */
	const char *err_file;
	const char *err_what;
} cp = {.in = -1, .out = -1};

static void fail(int err, const char *file, const char *what)
{
	if (!cp.err) {
		cp.err = err;
		cp.err_file = file;
		cp.err_what = what;
	}
}

static size_t round_up(size_t n, size_t a)
{
	return (n + a - 1) / a * a;
}

static void *worker(void *arg)
{
	(void)arg;
	void *buf;
	int rc = cio_alloc_aligned(&buf, opt.block, cp.mem_align);
	if (rc < 0) {
		fail(rc, "buffer", "allocate");
		return NULL;
	}
	while (!cp.err && cp.next < cp.size) {
		int64_t off = cp.next;
		cp.next += (int64_t)opt.block;
		size_t len = cp.size - off < (int64_t)opt.block ? (size_t)(cp.size - off) : opt.block;
		/* With O_DIRECT, lengths are multiples of the alignment: the
		 * last block is asked for whole, and comes back short. */
		size_t want = opt.direct ? round_up(len, cp.off_align) : len;
		ssize_t n = cio_read_all(cp.in, buf, want, off, NULL);
		if (n < 0) {
			fail((int)n, opt.src, "read");
			break;
		}
		if ((size_t)n < len) {
			fail(-EIO, opt.src, "read (the file shrank while copied)");
			break;
		}
		if (opt.direct)
			memset((char *)buf + len, 0, want - len);
		n = cio_write_all(cp.out, buf, want, off, NULL);
		if (n < 0) {
			fail((int)n, opt.dst, "write");
			break;
		}
	}
	free(buf);
	return NULL;
}

static int64_t elapsed_start;

static void copy(void)
{
	int dflag = opt.direct ? O_DIRECT : 0;
	struct statx sx, dx;
	elapsed_start = cio_now();

	cp.in = cio_open(opt.src, O_RDONLY | dflag, 0);
	if (cp.in == -EINVAL && opt.direct) {
		fail(-EINVAL, opt.src, "open with O_DIRECT (not supported by this file system?)");
		return;
	}
	if (cp.in < 0) {
		fail(cp.in, opt.src, "open");
		return;
	}
	int rc = cio_statx(cp.in, "", AT_EMPTY_PATH, STATX_TYPE | STATX_MODE | STATX_SIZE | STATX_INO, &sx);
	if (rc < 0) {
		fail(rc, opt.src, "statx");
		return;
	}
	if (S_ISDIR(sx.stx_mode)) {
		fail(-EISDIR, opt.src, "open");
		return;
	}
	if (!S_ISREG(sx.stx_mode)) {
		fail(-EINVAL, opt.src, "open (not a regular file)");
		return;
	}
	cp.size = (int64_t)sx.stx_size;

	/* No O_TRUNC yet: if DST is SRC, truncating would destroy it. */
	cp.out = cio_open(opt.dst, O_WRONLY | O_CREAT | dflag, sx.stx_mode & 0777);
	if (cp.out == -EINVAL && opt.direct) {
		fail(-EINVAL, opt.dst, "open with O_DIRECT (not supported by this file system?)");
		return;
	}
	if (cp.out < 0) {
		fail(cp.out, opt.dst, "open");
		return;
	}
	rc = cio_statx(cp.out, "", AT_EMPTY_PATH, STATX_INO, &dx);
	if (rc < 0) {
		fail(rc, opt.dst, "statx");
		return;
	}
	if (dx.stx_ino == sx.stx_ino && dx.stx_dev_major == sx.stx_dev_major &&
	    dx.stx_dev_minor == sx.stx_dev_minor) {
		fail(-EINVAL, opt.dst, "open (source and destination are the same file)");
		return;
	}
	if ((rc = cio_ftruncate(cp.out, 0)) < 0) {
		fail(rc, opt.dst, "truncate");
		return;
	}

	cp.mem_align = 0; /* the page size */
	cp.off_align = 1;
	if (opt.direct) {
		size_t m1, o1, m2, o2;
		if (cio_dio_align(cp.in, &m1, &o1) < 0 || cio_dio_align(cp.out, &m2, &o2) < 0) {
			fail(-EINVAL, opt.src, "O_DIRECT (not supported by this file system)");
			return;
		}
		cp.mem_align = m1 > m2 ? m1 : m2;
		cp.off_align = o1 > o2 ? o1 : o2;
		if (cp.mem_align < sizeof(void *))
			cp.mem_align = sizeof(void *);
		if (opt.block % cp.off_align)
			opt.block = round_up(opt.block, cp.off_align);
	}

	/* Reserve the space now: ENOSPC shows before any byte is copied,
	 * and the blocks are laid out together. */
	if (cp.size > 0) {
		rc = cio_fallocate(cp.out, 0, 0, cp.size);
		if (rc == -EOPNOTSUPP || rc == -ENOSYS)
			rc = cio_ftruncate(cp.out, cp.size);
		if (rc < 0) {
			fail(rc, opt.dst, "preallocate");
			return;
		}
	}

	cio_task_t t[1024];
	int n = 0;
	for (; n < opt.qd; n++) {
		t[n] = cio_spawn(worker, NULL);
		if (t[n] < 0) {
			fail((int)t[n], "task", "spawn");
			break;
		}
	}
	for (int i = 0; i < n; i++)
		cio_join(t[i], NULL);
	if (cp.err)
		return;

	/* A padded last block (O_DIRECT) made the file longer: cut it. */
	if (opt.direct && cp.size % (int64_t)cp.off_align && (rc = cio_ftruncate(cp.out, cp.size)) < 0) {
		fail(rc, opt.dst, "truncate");
		return;
	}
	if ((rc = cio_fsync(cp.out)) < 0)
		fail(rc, opt.dst, "fsync");
}

static void *copy_main(void *arg)
{
	(void)arg;
	copy();
	if (cp.in >= 0)
		cio_close(cp.in);
	if (cp.out >= 0)
		cio_close(cp.out);
	return NULL;
}

static void usage(const char *prog, int code)
{
	fprintf(code ? stderr : stdout,
		"usage: %s [--qd N] [--block KiB] [--direct] SRC DST\n", prog);
	exit(code);
}

static long number(const char *prog, const char *text, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = text ? strtol(text, &end, 10) : -1;
	if (!text || errno || *end || v < lo || v > hi)
		usage(prog, 2);
	return v;
}

int main(int argc, char **argv)
{
	const char *files[2];
	int nfiles = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			usage(argv[0], 0);
		else if (strcmp(a, "--qd") == 0)
			opt.qd = (int)number(argv[0], val, 1, 1024), i++;
		else if (strcmp(a, "--block") == 0)
			opt.block = (size_t)number(argv[0], val, 1, 1 << 20) << 10, i++;
		else if (strcmp(a, "--direct") == 0)
			opt.direct = true;
		else if (strcmp(a, "--") == 0) {
			for (i++; i < argc; i++) {
				if (nfiles == 2)
					usage(argv[0], 2);
				files[nfiles++] = argv[i];
			}
		} else if (a[0] == '-' && a[1])
			usage(argv[0], 2);
		else if (nfiles == 2)
			usage(argv[0], 2);
		else
			files[nfiles++] = a;
	}
	if (nfiles != 2)
		usage(argv[0], 2);
	opt.src = files[0];
	opt.dst = files[1];

	int rc = cio_run(copy_main, NULL);
	int64_t ns = cio_now() - elapsed_start;
	if (rc < 0) {
		fprintf(stderr, "file_copy: cannot start the runtime: %s\n", cio_strerror(rc));
		return 3;
	}
	if (cp.err) {
		fprintf(stderr, "file_copy: %s: %s: %s\n", cp.err_file, cp.err_what,
			cio_strerror(cp.err));
		return 1;
	}
	double s = ns > 0 ? (double)ns / 1e9 : 1e-9;
	printf("file_copy: %" PRId64 " bytes in %.3f s, %.1f MiB/s (qd %d, block %zu KiB%s)\n",
	       cp.size, s, (double)cp.size / (1 << 20) / s, opt.qd, opt.block >> 10,
	       opt.direct ? ", direct" : "");
	return 0;
}
