/* check.h - assertions and the per-backend runner shared by the tests.
 *
 * Each test program is registered with CTest once per backend; CTest sets
 * COREIO_BACKEND, and test_run() checks that the runtime really runs on
 * that backend.  A backend this machine lacks exits 77 (CTest: skipped)
 * with the reason, never a silent pass. */
#ifndef COREIO_TEST_CHECK_H
#define COREIO_TEST_CHECK_H

#include "coreio.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 when the library takes the POSIX paths of its platform shims (the
 * COREIO_PORTABLE build, or a system other than Linux): the tests then
 * expect what those paths promise (docs/guide.md, Portability). */
#if defined(__linux__) && !defined(COREIO_PORTABLE)
#define POSIX_PATHS 0
#else
#define POSIX_PATHS 1
#endif

/* A failed check: abort(), or with COREIO_CHECK_EXIT=1 exit status 3 at
 * once (no exit handlers, no leak check of a test cut short), so that the
 * fault sweep (scripts/check-faults.sh) tells a test that saw an error
 * from a runtime that crashed. */
static inline void test_check_failed_(void)
{
	const char *e = getenv("COREIO_CHECK_EXIT");
	fflush(stderr);
	if (e && strcmp(e, "1") == 0)
		_Exit(3);
	abort();
}

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                            \
			test_check_failed_();                                \
		}                                                            \
	} while (0)

/* Under the fault sweep (COREIO_CHECK_EXIT=1), a spawn refused for want
 * of memory or of a stack fails the test at once, through its own check:
 * most tests would wait for what the task was to do, and hang. */
static inline cio_task_t test_spawn_(cio_fn *fn, void *arg)
{
	cio_task_t t = (cio_spawn)(fn, arg);
	const char *e = getenv("COREIO_CHECK_EXIT");
	if (t < 0 && t != -EPERM && e && strcmp(e, "1") == 0) {
		fprintf(stderr, "cio_spawn: %s\n", cio_strerror((int)t));
		test_check_failed_();
	}
	return t;
}
#define cio_spawn(fn, arg) test_spawn_(fn, arg)

/* a == b for integers, printing both on failure. */
#define CHECK_EQ(a, b)                                                       \
	do {                                                                 \
		long long a_ = (long long)(a), b_ = (long long)(b);          \
		if (a_ != b_) {                                              \
			fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s "   \
				"(%lld vs %lld)\n", __FILE__, __LINE__, #a, #b, \
				a_, b_);                                     \
			test_check_failed_();                                \
		}                                                            \
	} while (0)

/* Joins t, which must exist and succeed; returns its result as an int. */
static inline int join_rc(cio_task_t t)
{
	void *r = NULL;
	CHECK(t > 0);
	CHECK_EQ(cio_join(t, &r), 0);
	return (int)(intptr_t)r;
}

/* Open file descriptors of this process. */
static inline int test_count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", "..", and the DIR's own fd */
}

/* Runtime settings for the backend CTest asked for (COREIO_BACKEND). */
static inline cio_config test_backend_config(void)
{
	cio_config cfg = {0};
	const char *want = getenv("COREIO_BACKEND");
	if (want && strcmp(want, "uring") == 0)
		cfg.backend = CIO_BACKEND_URING;
	else if (want && strcmp(want, "epoll") == 0)
		cfg.backend = CIO_BACKEND_EPOLL;
	else if (want && strcmp(want, "kqueue") == 0)
		cfg.backend = CIO_BACKEND_KQUEUE;
	return cfg;
}

static const char *test_backend_;
static void *test_backend_probe_(void *arg)
{
	(void)arg;
	test_backend_ = cio_backend_name();
	return NULL;
}

/* Whether COREIO_REQUIRE_BACKENDS (a comma-separated list: uring,epoll,
 * kqueue) names `name`: a backend that must run here, so that its skip
 * would hide a failure.  CI sets it where it knows the machine has them. */
static inline bool test_backend_required(const char *name)
{
	const char *req = getenv("COREIO_REQUIRE_BACKENDS");
	size_t n = strlen(name);
	for (const char *p = req; p && *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* 77, CTest's "skipped", with the reason on stderr, when the backend
 * CTest asked for cannot run on this machine for a documented reason:
 * io_uring refused by the kernel (-ENOSYS: absent, too old, an opcode
 * missing; -EPERM: sysctl, seccomp or container policy; -ENOMEM: the
 * locked-memory limit), or kqueue not built (-ENOSYS).  Any other
 * failure to start, or a skip of a backend COREIO_REQUIRE_BACKENDS
 * names, fails the test.  Else 0. */
static inline const char *test_backend_key(const cio_config *cfg)
{
	return cfg->backend == CIO_BACKEND_URING    ? "uring"
	       : cfg->backend == CIO_BACKEND_KQUEUE ? "kqueue"
	       : cfg->backend == CIO_BACKEND_EPOLL  ? "epoll"
						    : "auto";
}

/* Whether rc, from starting a runtime on the backend CTest asked for, is
 * one of the documented reasons to skip (see test_backend_missing()). */
static inline bool test_skip_reason(int rc)
{
	cio_config cfg = test_backend_config();
	/* Under injected failures (COREIO_FAIL, src/platform/fail.h), an
	 * -ENOMEM is the injection's, for the test to fail on, not the
	 * locked-memory limit's. */
	bool injected = getenv("COREIO_FAIL") != NULL;
	bool documented = (cfg.backend == CIO_BACKEND_URING &&
			   (rc == -ENOSYS || rc == -EPERM || (rc == -ENOMEM && !injected))) ||
			  (cfg.backend == CIO_BACKEND_KQUEUE && rc == -ENOSYS);
	return documented && !test_backend_required(test_backend_key(&cfg));
}

static inline int test_backend_missing(void)
{
	cio_config cfg = test_backend_config();
	int rc = cio_run_with(&cfg, test_backend_probe_, NULL);
	const char *name = test_backend_key(&cfg);
	if (rc < 0 && test_skip_reason(rc)) {
		fprintf(stderr, "SKIP: %s cannot run here (%s)\n", name, cio_strerror(rc));
		return 77;
	}
	if (rc < 0)
		fprintf(stderr, "FAIL: the %s backend did not start: %s%s\n", name,
			cio_strerror(rc),
			test_backend_required(name) ? " (COREIO_REQUIRE_BACKENDS requires it)" : "");
	CHECK_EQ(rc, 0);
	return 0;
}

/* Runs `fn` as the main task of a runtime on the backend named by
 * COREIO_BACKEND, checking that it is the one that runs and that no fd
 * leaks.  Returns what the test's main should exit with. */
static inline int test_run(cio_fn *fn, void *arg)
{
	const char *want = getenv("COREIO_BACKEND");
	cio_config cfg = test_backend_config();
	int rc = test_backend_missing();
	if (rc)
		return rc;
	if (want && strcmp(want, "uring") == 0)
		CHECK(strcmp(test_backend_, "io_uring") == 0);
	if (want && strcmp(want, "epoll") == 0)
		CHECK(strcmp(test_backend_, "epoll") == 0);
	if (want && strcmp(want, "kqueue") == 0)
		CHECK(strcmp(test_backend_, "kqueue") == 0);
	int fds = test_count_fds();
	rc = cio_run_with(&cfg, fn, arg);
	CHECK_EQ(rc, 0);
	CHECK_EQ(test_count_fds(), fds);
	fprintf(stderr, "ok (%s)\n", test_backend_);
	return 0;
}

#endif
