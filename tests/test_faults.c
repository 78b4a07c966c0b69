/* test_faults.c - programming errors and faults: stack overflow reports,
 * blocking calls outside a task, deadlock, nested runtimes. */
#include "check.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs fn in a child with stderr captured; returns the wait status and
 * fills buf with what the child wrote. */
static int in_child(void (*fn)(void), char *buf, size_t cap)
{
	int p[2];
	CHECK_EQ(pipe(p), 0);
	fflush(stderr);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		fn();
		_exit(0);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < cap && (r = read(p[0], buf + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = 0;
	close(p[0]);
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	return status;
}

/* --- stack overflow --------------------------------------------------- */

static int depth(volatile char *prev, int n)
{
	volatile char frame[256];
	frame[0] = (char)n;
	frame[255] = prev ? prev[0] : 0;
	return n > 1000000 ? frame[0] : depth(frame, n + 1) + frame[255];
}

static void *overflow(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)depth(NULL, 0);
}

static void *spawn_overflow(void *arg)
{
	(void)arg;
	cio_task_t t = cio_spawn_with(&(cio_spawn_opts){.name = "deep-recursion",
							 .stack_size = 32 << 10},
				      overflow, NULL);
	fprintf(stderr, "spawned %lld\n", (long long)t);
	cio_join(t, NULL);
	return NULL;
}

static void overflow_child(void)
{
	cio_run(spawn_overflow, NULL);
}

static void test_overflow(const char *guard)
{
	char out[4096];
	if (guard)
		setenv("COREIO_STACK_GUARD", guard, 1);
	int st = in_child(overflow_child, out, sizeof out);
	unsetenv("COREIO_STACK_GUARD");
	fprintf(stderr, "child said: %s", out);
	CHECK(WIFSIGNALED(st));
	CHECK_EQ(WTERMSIG(st), SIGABRT);
	long long id = 0;
	CHECK(sscanf(out, "spawned %lld", &id) == 1 && id > 0);
	char want[128];
	snprintf(want, sizeof want, "coreio: stack overflow in task %lld \"deep-recursion\"", id);
	CHECK(strstr(out, want) != NULL);
}

/* A fault that is not an overflow is left alone: default action. */
static void *null_deref(void *arg)
{
	volatile int *p = arg;
	return (void *)(intptr_t)*p;
}
static void *spawn_null(void *arg)
{
	(void)arg;
	cio_join(cio_spawn(null_deref, NULL), NULL);
	return NULL;
}
static void null_child(void)
{
	cio_run(spawn_null, NULL);
}

static void test_other_fault(void)
{
	char out[4096];
	int st = in_child(null_child, out, sizeof out);
	/* Killed by the signal, or (under ASan) reported and exited 1. */
	CHECK(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0));
	CHECK(strstr(out, "stack overflow") == NULL);
}

/* --- blocking calls outside a task ------------------------------------- */

static void sleep_outside(void)
{
	cio_sleep(1);
}
static void join_outside(void)
{
	cio_join(1, NULL);
}

/* Blocking calls that once returned before noticing there was no task
 * (an argument check, a zero length), or crashed: each must abort and
 * name itself. */
static int outside_which;
static void blocking_outside(void)
{
	char buf[4];
	cio_addr a;
	cio_chan *ch;
	cio_addr_parse(&a, "127.0.0.1:9");
	switch (outside_which) {
	case 0: cio_recv(0, buf, sizeof buf, 0); break;
	case 1: cio_send_all(1, buf, 0, 0, NULL); break;
	case 2: cio_recv_exact(0, buf, 0, 0, NULL); break;
	case 3: cio_pread(0, buf, sizeof buf, -1); break;
	case 4: cio_read_all(0, buf, 0, 0, NULL); break;
	case 5: cio_sendfile(1, 0, 0, 1, NULL); break;
	case 6: cio_connect_addr(-1, &a); break;
	case 7: cio_statx(AT_FDCWD, NULL, 0, 0, NULL); break;
	case 8: cio_splice(0, -2, 1, -1, 1); break;
	case 9: cio_drain_wait(); break;
	case 10:
		CHECK_EQ(cio_chan_new(&ch, 1, 1), 0);
		cio_chan_recv(ch, buf);
		break;
	}
}
static const char *const outside_names[] = {
	"cio_recv", "cio_send_all", "cio_recv_exact", "cio_pread",
	"cio_read_all", "cio_sendfile", "cio_connect_addr", "cio_statx",
	"cio_splice", "cio_drain_wait", "cio_chan_recv",
};

static void test_outside_task(void)
{
	char out[4096];
	int st = in_child(sleep_outside, out, sizeof out);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	CHECK(strstr(out, "cio_sleep() called outside a task") != NULL);
	st = in_child(join_outside, out, sizeof out);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	CHECK(strstr(out, "cio_join() called outside a task") != NULL);
	for (size_t i = 0; i < sizeof outside_names / sizeof *outside_names; i++) {
		char want[64];
		outside_which = (int)i;
		st = in_child(blocking_outside, out, sizeof out);
		snprintf(want, sizeof want, "%s() called outside a task", outside_names[i]);
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT || !strstr(out, want))
			fprintf(stderr, "%s outside a task: status %#x, said: %s\n",
				outside_names[i], st, out);
		CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
		CHECK(strstr(out, want) != NULL);
	}
	/* Non-blocking calls outside a runtime just fail. */
	CHECK_EQ(cio_spawn(NULL, NULL), -EPERM);
	CHECK_EQ(cio_self(), 0);
	CHECK_EQ(cio_cancel(1), -ESRCH);
	CHECK_EQ(cio_detach(1), -ESRCH);
	CHECK(!cio_cancelled());
	CHECK_EQ(cio_deadline(), CIO_NEVER);
	CHECK_EQ(cio_drain(), -EPERM);
	CHECK(!cio_draining());
	cio_chan *ch;
	int v = 7;
	CHECK_EQ(cio_chan_new(&ch, sizeof v, 1), 0);
	CHECK_EQ(cio_chan_try_send(ch, &v), 0);
	CHECK_EQ(cio_chan_try_send(ch, &v), -EAGAIN);
	v = 0;
	CHECK_EQ(cio_chan_try_recv(ch, &v), 0);
	CHECK_EQ(v, 7);
	cio_chan_close(ch);
	CHECK_EQ(cio_chan_try_send(ch, &v), -EPIPE);
	cio_chan_free(ch);
}

/* --- deadline scopes misused --------------------------------------------- */

/* Each case misuses a scope.  A debug build of the library aborts naming
 * the mistake; a release build returns -EINVAL and leaves no stale
 * deadline, which the child checks before it prints "scopes: released". */
static int scope_case;

static void *leaves_scope(void *arg)
{
	(void)arg;
	cio_timeout_push(10 * CIO_MS);
	return NULL; /* a return between push and pop */
}

static void *scope_misuse(void *arg)
{
	(void)arg;
	int64_t o = cio_timeout_push(1000 * CIO_MS);
	int64_t i = cio_timeout_push(10 * CIO_MS);
	switch (scope_case) {
	case 0: /* the outer scope popped first */
		CHECK_EQ(cio_deadline_pop(o), -EINVAL);
		CHECK_EQ(cio_deadline(), CIO_NEVER); /* both left */
		CHECK_EQ(cio_deadline_pop(i), -EINVAL);
		CHECK_EQ(cio_sleep(30 * CIO_MS), 0);
		break;
	case 1: /* a token never pushed */
		CHECK_EQ(cio_deadline_pop(i + 100), -EINVAL);
		CHECK_EQ(cio_deadline_pop(i), 0);
		CHECK_EQ(cio_deadline_pop(o), 0);
		break;
	case 2: /* a task that ends inside a scope */
		CHECK_EQ(cio_deadline_pop(i), 0);
		CHECK_EQ(cio_deadline_pop(o), 0);
		CHECK_EQ(cio_join(cio_spawn(leaves_scope, NULL), NULL), 0);
		break;
	}
	fprintf(stderr, "scopes: released\n");
	return NULL;
}

static void run_scope_misuse(void)
{
	CHECK_EQ(cio_run(scope_misuse, NULL), 0);
}

static void test_scope_misuse(void)
{
	static const char *const said[] = {
		"cio_deadline_pop() out of order",
		"cio_deadline_pop() of a scope not pushed",
		"ended with a deadline scope still pushed",
	};
	char out[4096];
	for (scope_case = 0; scope_case < 3; scope_case++) {
		int st = in_child(run_scope_misuse, out, sizeof out);
		bool aborted = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(out, said[scope_case]);
		bool released = WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "scopes: released");
		if (!aborted && !released)
			fprintf(stderr, "scope misuse %d: status %#x, said: %s\n", scope_case, st, out);
		CHECK(aborted || released);
	}
}

/* Scopes that cannot leak, and telling which one fired. */
static int scope_exits;
static void *scoped_blocks(void *arg)
{
	(void)arg;
	/* Left by break, by its end, and by return from a nested function:
	 * each pops. */
	for (int k = 0; k < 3; k++) {
		CIO_WITH_TIMEOUT(5 * CIO_MS) {
			CHECK(cio_deadline() != CIO_NEVER);
			if (k == 0)
				break;
			CHECK_EQ(cio_sleep(1000 * CIO_MS), -ETIMEDOUT);
		}
		CHECK_EQ(cio_deadline(), CIO_NEVER);
		scope_exits++;
	}
	/* Nested: the inner fires first, then the outer. */
	int64_t t0 = cio_now();
	int64_t outer = cio_timeout_push(200 * CIO_MS); /* far enough: a stall */
	int64_t inner = cio_timeout_push(10 * CIO_MS);    /* must not reach it */
	CHECK_EQ(cio_sleep(1000 * CIO_MS), -ETIMEDOUT);
	CHECK(cio_deadline_expired(inner));
	CHECK(!cio_deadline_expired(outer));
	CHECK_EQ(cio_deadline_pop(inner), 0);
	CHECK(!cio_deadline_expired(inner)); /* popped: not a scope now */
	CHECK_EQ(cio_sleep(1000 * CIO_MS), -ETIMEDOUT);
	CHECK(cio_deadline_expired(outer));
	CHECK(cio_now() - t0 >= 200 * CIO_MS);
	CHECK_EQ(cio_deadline_pop(outer), 0);
	/* An inner scope asking for more than the outer allows: when the
	 * outer deadline passes, it is the outer one that expired. */
	outer = cio_timeout_push(10 * CIO_MS);
	inner = cio_timeout_push(5000 * CIO_MS);
	CHECK_EQ(cio_sleep(1000 * CIO_MS), -ETIMEDOUT);
	CHECK(!cio_deadline_expired(inner));
	CHECK(cio_deadline_expired(outer));
	CHECK_EQ(cio_deadline_pop(inner), 0);
	CHECK_EQ(cio_deadline_pop(outer), 0);
	/* Deeper than the scopes a task keeps inline. */
	int64_t tok[40];
	t0 = cio_now();
	for (int k = 0; k < 40; k++)
		tok[k] = cio_timeout_push((100 - k) * CIO_MS);
	CHECK(cio_deadline() >= t0 + 61 * CIO_MS && cio_deadline() <= cio_now() + 61 * CIO_MS);
	for (int k = 39; k >= 0; k--)
		CHECK_EQ(cio_deadline_pop(tok[k]), 0);
	CHECK_EQ(cio_deadline(), CIO_NEVER);
	return NULL;
}

static int64_t scoped_return(void)
{
	CIO_WITH_TIMEOUT(CIO_SEC) {
		return cio_deadline();
	}
	return 0;
}

static void *scoped_main(void *arg)
{
	(void)arg;
	CHECK_EQ(cio_join(cio_spawn(scoped_blocks, NULL), NULL), 0);
	CHECK_EQ(scope_exits, 3);
	CHECK(scoped_return() != CIO_NEVER);
	CHECK_EQ(cio_deadline(), CIO_NEVER); /* the return popped it */
	return NULL;
}

/* --- deadlock: every task parked, nothing left to wake one ------------ */

static void *sleeper_forever(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)cio_sleep(CIO_NEVER);
}
static void *true_deadlock(void *arg)
{
	int *rcs = arg;
	cio_task_t t = cio_spawn(sleeper_forever, NULL);
	rcs[0] = cio_join(t, NULL); /* main parks on t, t parks forever */
	cio_cancel_clear();
	void *r;
	CHECK_EQ(cio_join(t, &r), 0);
	rcs[1] = (int)(intptr_t)r;
	CHECK_EQ(rcs[1], -ECANCELED);
	return NULL;
}

static void test_true_deadlock(void)
{
	/* Rather than hang, the runtime cancels every parked task: main's
	 * join and t's sleep both return -ECANCELED, and cio_run() says why. */
	int rcs[2] = {1, 1};
	CHECK_EQ(cio_run(true_deadlock, rcs), -EDEADLK);
	CHECK_EQ(rcs[0], -ECANCELED);
}

/* --- nested runtime --------------------------------------------------------- */

static void *nested(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)cio_run(nested, NULL);
}
static void *run_nested(void *arg)
{
	void *r;
	CHECK_EQ(cio_join(cio_spawn(nested, NULL), &r), 0);
	*(int *)arg = (int)(intptr_t)r;
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	/* The backend CTest asked for must exist here, or this is a skip. */
	int skip = test_backend_missing();
	if (skip)
		return skip;
	TEST_CASE(overflow, test_overflow(NULL));
	TEST_CASE(overflow_mprotect, test_overflow("mprotect"));
	TEST_CASE(other_fault, test_other_fault());
	TEST_CASE(outside_task, test_outside_task());
	TEST_CASE(scope_misuse, test_scope_misuse());
	TEST_CASE(scoped_blocks, CHECK_EQ(cio_run(scoped_main, NULL), 0));
	TEST_CASE(true_deadlock, test_true_deadlock());
	TEST_CASE(nested_run, {
		int rc = 0;
		CHECK_EQ(cio_run(run_nested, &rc), 0);
		CHECK_EQ(rc, -EBUSY);
	});
	fprintf(stderr, "ok\n");
	return test_cases_end();
}
