/* test_inject.c - the runtime under injected failures (src/platform/fail.h,
 * COREIO_TESTING builds only): each case runs in a child process of this
 * program with its COREIO_FAIL, as fail points are read once per process,
 * and must get over the failure or report it as a negated errno. */
#include "net_util.h"

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

static const struct {
	const char *name, *fail;
	cio_fn *fn;
} cases[] = {
	{"recv_eintr", "recv:1:EINTR", recv_eintr},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* Runs this program's case `name` in a child with env (NAME=VALUE pairs,
 * NULL-terminated); returns its wait status. */
static int run_child(char **argv, const char *name, const char *const *env)
{
	fflush(stderr);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		for (; env && env[0]; env += 2)
			setenv(env[0], env[1], 1);
		execl("/proc/self/exe", argv[0], name, (char *)NULL);
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

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "ring_required") == 0)
		return test_run(nothing, NULL);
	if (argc == 2) {
		for (size_t i = 0; i < NCASES; i++)
			if (strcmp(argv[1], cases[i].name) == 0)
				return test_run(cases[i].fn, NULL);
		CHECK(0);
	}
	const char *backend = getenv("COREIO_BACKEND");
	if (backend && strcmp(backend, "uring") == 0)
		broken_ring(argv);
	for (size_t i = 0; i < NCASES; i++) {
		const char *const env[] = {"COREIO_FAIL", cases[i].fail, NULL};
		int st = run_child(argv, cases[i].name, env);
		CHECK(WIFEXITED(st));
		if (WEXITSTATUS(st) == 77)
			return 77; /* the backend does not run here */
		CHECK_EQ(WEXITSTATUS(st), 0);
		fprintf(stderr, "%s (COREIO_FAIL=%s): ok\n", cases[i].name, cases[i].fail);
	}
	return 0;
}
