/* check.h - assertions, cases and the per-backend runner shared by the
 * tests.
 *
 * Each case of a test program is a CTest entry of its own, once per
 * backend: NAME.CASE.BACKEND (test_sync.select_fds.uring), so that a
 * failure names its case, the other cases still run, and `ctest -R`
 * picks one.  CTest sets COREIO_BACKEND, and test_run() checks that the
 * runtime really runs on that backend.  A backend this machine lacks
 * exits 77 (CTest: skipped) with the reason, never a silent pass.
 *
 * A program's cases, in main or in the task test_run() runs:
 *
 *	int main(int argc, char **argv)
 *	{
 *		test_cases_begin(argc, argv);	// argv[1]: the one case to run
 *		...shared set-up...
 *		TEST_CASE(chan_fifo, test_chan_fifo());
 *		TEST_CASE(select_fds, test_select_fds());
 *		...
 *		return test_cases_end();	// 2 if argv[1] named no case
 *	}
 *
 * TEST_CASE(name, statements...) runs its statements when no case was
 * named (the program alone, or the fault sweep of scripts/check-faults.sh:
 * every case in order, as before) or when `name` was.  tests/CMakeLists.txt
 * registers the cases by reading the TEST_CASE( and TEST_CASE_OFF( lines
 * of the source, so each must start its line, with its name a plain
 * identifier on that line.  A case compiled out (#ifdef) needs a
 * TEST_CASE_OFF(name, "why") in the other branch: named, it exits 77
 * (skipped) with the reason.  Each case starts with a line "-- name" on
 * stderr.
 *
 * A case must not depend on what an earlier case left behind: run alone,
 * it must set up what it needs.  Set-up that cases share (a temp dir, a
 * server child) stays in main or the test task, before the cases, and
 * runs whichever case is named; one that only some cases need is started
 * by the first of them that does (tests/test_http_lb.c), or guarded by
 * test_case_wanted().  A check over what every case did together (a
 * server's summary) holds only under test_cases_all().
 *
 * To convert a program: main takes (argc, argv) and calls
 * test_cases_begin() first, each case's call becomes a TEST_CASE line, and
 * main returns test_cases_end() where it returned 0.  A program that
 * re-executes itself keeps its children's argv apart from case names
 * (tests/test_inject.c: `--child NAME`).  A program without TEST_CASE
 * lines stays one entry, NAME.BACKEND. */
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

/* Run once when a check fails, before the test ends: what the test started
 * outside itself goes with it (example_util.h's child processes). */
static void (*test_on_failure_)(void);

/* A failed check: abort(), or with COREIO_CHECK_EXIT=1 exit status 3 at
 * once (no exit handlers, no leak check of a test cut short), so that the
 * fault sweep (scripts/check-faults.sh) tells a test that saw an error
 * from a runtime that crashed. */
static inline void test_check_failed_(void)
{
	const char *e = getenv("COREIO_CHECK_EXIT");
	void (*on_failure)(void) = test_on_failure_;
	test_on_failure_ = NULL;
	if (on_failure)
		on_failure();
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

/* The case argv[1] named (NULL: every case), whether one of that name
 * ran, and whether it was compiled out. */
static const char *test_case_named_;
static const char *test_case_prog_ = "test";
static const char *test_case_current; /* the case running, for its messages */
static bool test_case_found_, test_case_off_;

static inline void test_cases_begin(int argc, char **argv)
{
	if (argc > 0 && argv[0])
		test_case_prog_ = argv[0];
	test_case_named_ = argc > 1 ? argv[1] : NULL;
}

/* Whether case `name` is to run: every case, or the one named.  For a
 * set-up that only some cases need. */
static inline bool test_case_wanted(const char *name)
{
	return !test_case_named_ || strcmp(test_case_named_, name) == 0;
}

/* Whether every case runs (no case named). */
static inline bool test_cases_all(void)
{
	return !test_case_named_;
}

static inline bool test_case_start_(const char *name)
{
	if (!test_case_wanted(name))
		return false;
	test_case_found_ = true;
	test_case_current = name;
	fprintf(stderr, "-- %s\n", name);
	return true;
}

#define TEST_CASE(name, ...)                                                 \
	do {                                                                 \
		if (test_case_start_(#name)) {                               \
			__VA_ARGS__;                                         \
		}                                                            \
	} while (0)

#define TEST_CASE_OFF(name, why)                                             \
	do {                                                                 \
		if (test_case_start_(#name)) {                               \
			fprintf(stderr, "%s: left out: %s\n", #name, why);  \
			test_case_off_ = true;                               \
		}                                                            \
	} while (0)

/* What main returns after its cases: 2 (and a message) when argv[1]
 * named no case of the program, never a silent pass; 77 when the one
 * named was compiled out; else 0. */
static inline int test_cases_end(void)
{
	if (test_case_named_ && !test_case_found_) {
		fprintf(stderr, "%s: no case named \"%s\"\n", test_case_prog_,
			test_case_named_);
		return 2;
	}
	if (test_case_named_ && test_case_off_)
		return 77;
	return 0;
}

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
