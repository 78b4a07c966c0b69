/* test_file_copy.c - runs examples/file_copy as a child process on files
 * of awkward sizes (0, 1, 4095, 4097, 10 MiB + 3 bytes), with one block
 * and sixteen blocks in flight, buffered and with O_DIRECT, and compares
 * every copy byte for byte; then its errors: a missing source, a
 * directory, a destination in a missing directory. */
#include "example_util.h"
#include "net_util.h"

#include <sys/stat.h>

#ifndef FILE_COPY_BIN
#error "FILE_COPY_BIN: the path of examples/file_copy"
#endif

static char dir[64];

static void write_file(const char *path, size_t size, uint32_t seed)
{
	FILE *f = fopen(path, "we");
	CHECK(f);
	for (size_t i = 0; i < size; i++)
		putc(pat(i, seed), f);
	CHECK_EQ(fclose(f), 0);
}

/* Whether path holds exactly `size` bytes of pattern `seed`. */
static bool same(const char *path, size_t size, uint32_t seed)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t i = 0;
	int c;
	bool ok = true;
	while ((c = getc(f)) != EOF) {
		ok &= i < size && (uint8_t)c == pat(i, seed);
		i++;
	}
	fclose(f);
	return ok && i == size;
}

static int copy(const char *qd, bool direct, const char *src, const char *dst,
		struct child *c)
{
	char *argv[8];
	int n = 0;
	argv[n++] = FILE_COPY_BIN;
	argv[n++] = "--qd";
	argv[n++] = (char *)qd;
	argv[n++] = "--block";
	argv[n++] = "64";
	if (direct)
		argv[n++] = "--direct";
	argv[n++] = (char *)src;
	argv[n++] = (char *)dst;
	char *args[10];
	for (int i = 0; i < n; i++)
		args[i] = argv[i];
	args[n] = NULL;
	return ex_run(c, args, 20000);
}

/* Every size, queue depth and mode, byte for byte. */
static void copies(const char *src, const char *dst, bool direct_ok)
{
	static const size_t sizes[] = {0, 1, 4095, 4097, (10u << 20) + 3};
	static const char *const qds[] = {"1", "16"};
	struct child c;
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		uint32_t seed = 0x1000u + (uint32_t)s;
		write_file(src, sizes[s], seed);
		for (int q = 0; q < 2; q++)
			for (int d = 0; d < 2; d++) {
				if (d && !direct_ok)
					continue;
				unlink(dst);
				if (s == 2)
					write_file(dst, 99999, 1); /* an old, longer DST */
				int rc = copy(qds[q], d, src, dst, &c);
				if (rc != 0 || !same(dst, sizes[s], seed)) {
					fprintf(stderr, "copy of %zu bytes, qd %s%s: exit %d: %s\n",
						sizes[s], qds[q], d ? ", direct" : "", rc, c.text);
					CHECK(!"copy failed");
				}
				CHECK(strstr(c.text, "bytes in"));
			}
	}
	fprintf(stderr, "  10 MiB: %s", c.text);
}

/* Errors: a clear message and a non-zero status. */
static void copy_errors(const char *src, const char *dst)
{
	struct child c;
	char missing[160];
	const size_t size = (1u << 20) + 3;
	write_file(src, size, 0x2000u);
	snprintf(missing, sizeof missing, "%s/no-such-file", dir);
	CHECK_EQ(copy("4", false, missing, dst, &c), 1);
	CHECK(strstr(c.text, "No such file or directory"));
	CHECK(strstr(c.text, "no-such-file"));
	CHECK_EQ(copy("4", false, dir, dst, &c), 1);
	CHECK(strstr(c.text, "Is a directory"));
	snprintf(missing, sizeof missing, "%s/no-dir/dst", dir);
	CHECK_EQ(copy("4", false, src, missing, &c), 1);
	CHECK(strstr(c.text, "No such file or directory"));
	CHECK_EQ(copy("4", false, src, src, &c), 1); /* and SRC survives */
	CHECK(same(src, size, 0x2000u));
	char *bad[] = {FILE_COPY_BIN, "--qd", "0", (char *)src, (char *)dst, NULL};
	CHECK_EQ(ex_run(&c, bad, 5000), 2);
	char *help[] = {FILE_COPY_BIN, "--help", NULL};
	CHECK_EQ(ex_run(&c, help, 5000), 0);
	CHECK(strstr(c.text, "usage"));
}

int main(int argc, char **argv)
{
	char src[128], dst[128];
	test_cases_begin(argc, argv);
	int rc = test_backend_missing();
	if (rc)
		return rc;
	/* Not tmpfs, which refuses O_DIRECT: /var/tmp lives on a disk. */
	snprintf(dir, sizeof dir, "/var/tmp/coreio-copy-XXXXXX");
	CHECK(mkdtemp(dir));
	snprintf(src, sizeof src, "%s/src", dir);
	snprintf(dst, sizeof dst, "%s/dst", dir);
	/* Whether this file system takes O_DIRECT at all, asked of the
	 * kernel, so that the example's own O_DIRECT failure is a failure. */
	char probe[160];
	snprintf(probe, sizeof probe, "%s/probe", dir);
	int pfd = open(probe, O_CREAT | O_RDWR | O_DIRECT, 0644);
	bool direct_ok = pfd >= 0;
	if (pfd >= 0)
		close(pfd);
	else
		fprintf(stderr, "  no O_DIRECT in %s: %s\n", dir, strerror(errno));
	unlink(probe);
	TEST_CASE(copies, copies(src, dst, direct_ok));
	TEST_CASE(errors, copy_errors(src, dst));
	unlink(src);
	unlink(dst);
	CHECK_EQ(rmdir(dir), 0);
	fprintf(stderr, "ok (%s)\n", getenv("COREIO_BACKEND") ? getenv("COREIO_BACKEND") : "auto");
	return test_cases_end();
}
