/* test_inject.c - the runtime under injected failures (src/platform/fail.h,
 * COREIO_TESTING builds only): each case runs in a child process of this
 * program with its COREIO_FAIL, as fail points are read once per process,
 * and must get over the failure or report it as a negated errno. */
#include "net_util.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* A receive that the system interrupts (EINTR) is made again: on every
 * backend, cio_recv() gets the bytes, never -EINTR. */
static void *recv_eintr(void *arg)
{
	(void)arg;
	net_pair_roundtrip("hi");
	return NULL;
}

/* A refused connect is the caller's -ECONNREFUSED; the next one goes
 * through. */
static void *connect_refused(void *arg)
{
	(void)arg;
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	cio_addr a;
	char addr[64];
	CHECK_EQ(cio_local_addr(lfd, &a), 0);
	CHECK(cio_addr_format(&a, addr, sizeof addr) > 0);
	CHECK_EQ(cio_connect(addr, 0), -ECONNREFUSED);
	int fd = cio_connect(addr, 0);
	CHECK(fd >= 0);
	int c = cio_accept(lfd, NULL);
	CHECK(c >= 0);
	CHECK_EQ(cio_send(fd, "x", 1, 0), 1);
	char b;
	CHECK_EQ(cio_recv(c, &b, 1, 0), 1);
	cio_close(c);
	cio_close(fd);
	cio_close(lfd);
	return NULL;
}

#ifndef COREIO_PORTABLE
/* signalfd(2) refused (Linux's signal waits): the wait says why. */
static void *signalfd_refused(void *arg)
{
	(void)arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
	CHECK_EQ(cio_signal_wait(&set), -EMFILE);
	return NULL;
}
#endif

/* RWF_NOWAIT refused with EAGAIN every time: every file transfer that
 * tries it goes to the blocking pool, and the bytes are right. */
static void *file_nowait(void *arg)
{
	(void)arg;
	char path[] = "/tmp/coreio-inject-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK_EQ(unlink(path), 0);
	CHECK_EQ(cio_pwrite(fd, "hello", 5, 0), 5);
	char buf[8] = "";
	CHECK_EQ(cio_pread(fd, buf, sizeof buf, 0), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	cio_close(fd);
	return NULL;
}

/* The resolver's sockets failing (connect, send, a short receive): an
 * error of the resolver's, soon, never a crash or a hang. */
static void *dns_sockets(void *arg)
{
	(void)arg;
	cio_resolve_opts o = {.servers = "127.0.0.1:9", .no_cache = true,
			      .try_timeout = 100 * CIO_MS, .tries = 2};
	cio_addr *addrs = NULL;
	size_t n = 0;
	int64_t t0 = cio_now();
	int rc = cio_resolve("no-such-name.invalid", "80", &o, &addrs, &n);
	CHECK(rc < 0);
	CHECK(addrs == NULL && n == 0);
	CHECK(cio_now() - t0 < 5 * CIO_SEC);
	return NULL;
}

static const struct {
	const char *name, *fail;
	cio_fn *fn;
} cases[] = {
	{"recv_eintr", "recv:1:EINTR", recv_eintr},
	{"connect_refused", "connect:1:ECONNREFUSED", connect_refused},
#ifndef COREIO_PORTABLE
	{"signalfd_refused", "signalfd:*:EMFILE", signalfd_refused},
#endif
	{"file_nowait", "nowait:*:EAGAIN", file_nowait},
	{"dns_connect", "connect:*:ENETUNREACH", dns_sockets},
	{"dns_send", "send:*:EPERM", dns_sockets},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* Runs this program's child `name` (`--child NAME`, not a case name of
 * CTest's) with env (NAME=VALUE pairs, NULL-terminated); returns its wait
 * status. */
static int run_child(char **argv, const char *name, const char *const *env)
{
	fflush(stderr);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		for (; env && env[0]; env += 2)
			setenv(env[0], env[1], 1);
		execl("/proc/self/exe", argv[0], "--child", name, (char *)NULL);
		_exit(127);
	}
	int st;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	return st;
}

static void *nothing(void *arg)
{
	return arg;
}

/* An io_uring that cannot be set up fails the test, never skips it, when
 * COREIO_REQUIRE_BACKENDS names it: ENOMEM (the locked-memory limit, a
 * documented reason to skip) as well as EINVAL (none). */
static void broken_ring(char **argv)
{
	static const char *const errs[] = {"ring:*:ENOMEM", "ring:*:EINVAL"};
	for (size_t i = 0; i < 2; i++) {
		const char *const env[] = {"COREIO_FAIL", errs[i], "COREIO_REQUIRE_BACKENDS",
					   "uring", "COREIO_CHECK_EXIT", "1", NULL};
		int st = run_child(argv, "ring_required", env);
		CHECK(!WIFEXITED(st) || (WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 77));
		fprintf(stderr, "broken ring (COREIO_FAIL=%s): the test fails: ok\n", errs[i]);
	}
}

/* Readiness backends whose own fd (epoll_create1, kqueue) cannot be
 * had: the runtime does not start, and says why. */
static int poller_refused(void)
{
	cio_config cfg = test_backend_config();
	if (cfg.backend != CIO_BACKEND_EPOLL && cfg.backend != CIO_BACKEND_KQUEUE)
		return 0; /* io_uring has none */
	CHECK_EQ(cio_run_with(&cfg, nothing, NULL), -EMFILE);
	return 0;
}

/* The case of the table by the name of the case running, in a child
 * with its COREIO_FAIL; a child that cannot run the backend skips the
 * whole. */
static void inject(char **argv)
{
	for (size_t i = 0; i < NCASES; i++) {
		if (strcmp(cases[i].name, test_case_current) != 0)
			continue;
		const char *const env[] = {"COREIO_FAIL", cases[i].fail, NULL};
		int st = run_child(argv, cases[i].name, env);
		CHECK(WIFEXITED(st));
		if (WEXITSTATUS(st) == 77)
			exit(77); /* the backend does not run here */
		CHECK_EQ(WEXITSTATUS(st), 0);
		fprintf(stderr, "%s (COREIO_FAIL=%s): ok\n", cases[i].name, cases[i].fail);
		return;
	}
	CHECK(!"a case of the table");
}

int main(int argc, char **argv)
{
	/* A child of this program's, run with its COREIO_FAIL. */
	if (argc == 3 && strcmp(argv[1], "--child") == 0) {
		if (strcmp(argv[2], "ring_required") == 0)
			return test_run(nothing, NULL);
		if (strcmp(argv[2], "poller_refused") == 0)
			return poller_refused();
		for (size_t i = 0; i < NCASES; i++)
			if (strcmp(argv[2], cases[i].name) == 0)
				return test_run(cases[i].fn, NULL);
		CHECK(!"a child's name");
	}
	test_cases_begin(argc, argv);
	const char *backend = getenv("COREIO_BACKEND");
	TEST_CASE(broken_ring, {
		if (backend && strcmp(backend, "uring") == 0)
			broken_ring(argv);
		else
			fprintf(stderr, "broken_ring: io_uring only\n");
	});
	TEST_CASE(poller_refused, {
		const char *const poller_env[] = {"COREIO_FAIL", "poller:*:EMFILE", NULL};
		int pst = run_child(argv, "poller_refused", poller_env);
		CHECK(WIFEXITED(pst) && WEXITSTATUS(pst) == 0);
		fprintf(stderr, "poller_refused (COREIO_FAIL=poller:*:EMFILE): ok\n");
	});
	/* The table's cases, by the name of each. */
	TEST_CASE(recv_eintr, inject(argv));
	TEST_CASE(connect_refused, inject(argv));
#ifndef COREIO_PORTABLE
	TEST_CASE(signalfd_refused, inject(argv));
#else
	TEST_CASE_OFF(signalfd_refused, "Linux's signalfd only");
#endif
	TEST_CASE(file_nowait, inject(argv));
	TEST_CASE(dns_connect, inject(argv));
	TEST_CASE(dns_send, inject(argv));
	return test_cases_end();
}
