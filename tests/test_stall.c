/* test_stall.c - the stall detector reports a task that runs past the
 * limit without parking, by its id and name, with a backtrace, through
 * the hook and on stderr; a task that parks often, and a runtime with
 * reports off, are never reported. */
#include "check.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* What the hook saw: written in the signal handler, read after the run. */
static atomic_int reports;
static char seen_name[32];
static _Atomic int64_t seen_task, seen_ns;
static atomic_int seen_frames;

static void hook(const cio_stall_info *in, void *arg)
{
	CHECK(arg == &reports);
	size_t i = 0;
	for (; in->name[i] && i < sizeof seen_name - 1; i++)
		seen_name[i] = in->name[i];
	seen_name[i] = '\0';
	atomic_store(&seen_task, in->task);
	atomic_store(&seen_ns, in->running_ns);
	atomic_store(&seen_frames, in->nframes);
	atomic_fetch_add(&reports, 1);
}

/* Runs ns without parking.  noinline: a frame of its own to be seen in. */
__attribute__((noinline)) static void spin_for(int64_t ns)
{
	int64_t end = cio_now() + ns;
	while (cio_now() < end)
		;
}

static _Atomic int64_t spinner_id;

static void *spinner(void *arg)
{
	(void)arg;
	atomic_store(&spinner_id, cio_self());
	spin_for(200 * CIO_MS);
	return NULL;
}

/* Busy too, for longer than the limit in all, but parks every 5 ms. */
static void *parker(void *arg)
{
	(void)arg;
	for (int i = 0; i < 80; i++) {
		spin_for(5 * CIO_MS);
		CHECK_EQ(cio_sleep(CIO_US), 0);
	}
	return NULL;
}

struct job {
	cio_fn *fn;
	const char *name;
	int64_t stalls; /* the runtime's count, after the task */
};

static void *run_named(void *arg)
{
	struct job *j = arg;
	cio_task_t t = cio_spawn_with(&(cio_spawn_opts){.name = j->name}, j->fn, NULL);
	CHECK(t > 0);
	CHECK_EQ(cio_join(t, NULL), 0);
	cio_stats st;
	cio_stats_get(&st);
	j->stalls = (int64_t)st.stalls;
	return NULL;
}

/* Runs fn as a task named `name` on a runtime with stall_ns; returns the
 * runtime's count of stall reports. */
static int64_t run_with_limit(int64_t stall_ns, cio_fn *fn, const char *name)
{
	cio_config cfg = test_backend_config();
	cfg.stall_ns = stall_ns;
	struct job j = {fn, name, -1};
	CHECK_EQ(cio_run_with(&cfg, run_named, &j), 0);
	return j.stalls;
}

static void reset(void)
{
	atomic_store(&reports, 0);
	seen_name[0] = '\0';
	atomic_store(&seen_task, 0);
}

/* Runs fn with stderr sent to a pipe; returns what was written there. */
static char *capture_stderr(int64_t stall_ns, cio_fn *fn, const char *name, int64_t *stalls)
{
	static char out[65536];
	int p[2];
	CHECK(pipe(p) == 0);
	CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	CHECK(saved >= 0);
	CHECK(dup2(p[1], STDERR_FILENO) == STDERR_FILENO);
	*stalls = run_with_limit(stall_ns, fn, name);
	fflush(stderr);
	CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
	close(saved);
	close(p[1]);
	ssize_t n = read(p[0], out, sizeof out - 1);
	close(p[0]);
	out[n > 0 ? n : 0] = '\0';
	fputs(out, stderr); /* for whoever reads the test's log */
	return out;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_backend_missing();
	if (rc)
		return rc;

	/* Through the hook: the spinner is reported, by name and id. */
	cio_stall_hook(hook, &reports);
	TEST_CASE(hook_reports, {
		reset();
		CHECK(run_with_limit(50 * CIO_MS, spinner, "spinner") >= 1);
		CHECK(atomic_load(&reports) >= 1);
		CHECK(strcmp(seen_name, "spinner") == 0);
		CHECK_EQ(atomic_load(&seen_task), atomic_load(&spinner_id));
		CHECK(atomic_load(&seen_ns) >= 50 * CIO_MS);
#if defined(__GLIBC__)
		CHECK(atomic_load(&seen_frames) >= 2);
#endif
	});

	/* A task that parks every 5 ms is never reported, though busy for
	 * 400 ms.  The limit leaves room for the thread to be preempted on
	 * a loaded machine, which a report would (rightly) count. */
	TEST_CASE(parker_quiet, {
		reset();
		CHECK_EQ(run_with_limit(150 * CIO_MS, parker, "parker"), 0);
		CHECK_EQ(atomic_load(&reports), 0);
	});

	/* Off: nothing, even from the spinner. */
	TEST_CASE(off, {
		reset();
		CHECK_EQ(run_with_limit(-1, spinner, "spinner"), 0);
		CHECK_EQ(run_with_limit(0, spinner, "spinner"), 0); /* no COREIO_STALL_MS */
		CHECK_EQ(atomic_load(&reports), 0);
	});

	/* COREIO_STALL_MS turns them on where the config leaves it 0. */
	TEST_CASE(env_limit, {
		reset();
		CHECK(setenv("COREIO_STALL_MS", "50", 1) == 0);
		CHECK(run_with_limit(0, spinner, "spinner") >= 1);
		CHECK(atomic_load(&reports) >= 1);
		CHECK_EQ(run_with_limit(-1, spinner, "spinner"), 0); /* < 0 wins */
		CHECK(unsetenv("COREIO_STALL_MS") == 0);
	});

	/* Without a hook: a line on stderr, then the backtrace. */
	TEST_CASE(no_hook, {
		cio_stall_hook(NULL, NULL);
		int64_t stalls;
		const char *text = capture_stderr(50 * CIO_MS, spinner, "spinner", &stalls);
		CHECK(stalls >= 1);
		const char *line = strstr(text, "coreio: stall: core 0 task ");
		CHECK(line != NULL);
		const char *eol = strchr(line, '\n');
		CHECK(eol != NULL);
		CHECK(strstr(line, "\"spinner\" running ") != NULL);
		CHECK(strstr(line, " ms without parking\n") == eol - strlen(" ms without parking"));
#if defined(__GLIBC__)
		CHECK(eol[1] != '\0'); /* the frames follow */
#endif
	});
	cio_config cfg = test_backend_config();
	fprintf(stderr, "ok (%s)\n", test_backend_key(&cfg));
	return test_cases_end();
}
