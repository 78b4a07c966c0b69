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

int main(int argc, char **argv)
{
	if (argc == 2) {
		for (size_t i = 0; i < NCASES; i++)
			if (strcmp(argv[1], cases[i].name) == 0)
				return test_run(cases[i].fn, NULL);
		CHECK(0);
	}
	for (size_t i = 0; i < NCASES; i++) {
		fflush(stderr);
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			setenv("COREIO_FAIL", cases[i].fail, 1);
			execl("/proc/self/exe", argv[0], cases[i].name, (char *)NULL);
			_exit(127);
		}
		int st;
		CHECK_EQ(waitpid(pid, &st, 0), pid);
		CHECK(WIFEXITED(st));
		if (WEXITSTATUS(st) == 77)
			return 77; /* the backend does not run here */
		CHECK_EQ(WEXITSTATUS(st), 0);
		fprintf(stderr, "%s (COREIO_FAIL=%s): ok\n", cases[i].name, cases[i].fail);
	}
	return 0;
}
