/* test_failing.c - blocking calls that fail at once: cancel and deadline
 * still come first, and a loop of such calls still lets timers, signals
 * and the other tasks run. */
#include "check.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#define MS 1000000LL

/* Each blocking call on an invalid fd, returning what it returned. */
static void every_call_on(int fd, int (*expect)(int rc))
{
	char b[8];
	struct iovec iov = {b, sizeof b};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	cio_addr a;
	CHECK_EQ(cio_addr_parse(&a, "127.0.0.1:9"), 0);
	CHECK(expect(cio_accept(fd, NULL)));
	CHECK(expect((int)cio_recv(fd, b, sizeof b, 0)));
	CHECK(expect((int)cio_send(fd, b, sizeof b, 0)));
	CHECK(expect((int)cio_read(fd, b, sizeof b)));
	CHECK(expect((int)cio_write(fd, b, sizeof b)));
	CHECK(expect((int)cio_readv(fd, &iov, 1)));
	CHECK(expect((int)cio_writev(fd, &iov, 1)));
	CHECK(expect((int)cio_recvmsg(fd, &m, 0)));
	CHECK(expect((int)cio_sendmsg(fd, &m, 0)));
	CHECK(expect(cio_connect_addr(fd, &a)));
	CHECK(expect(cio_wait_readable(fd)));
	CHECK(expect(cio_wait_writable(fd)));
	CHECK(expect((int)cio_pread(fd, b, sizeof b, 0)));
	CHECK(expect((int)cio_pwrite(fd, b, sizeof b, 0)));
	CHECK(expect(cio_fsync(fd)));
	CHECK(expect(cio_ftruncate(fd, 0)));
	CHECK(expect((int)cio_splice(fd, -1, fd, -1, sizeof b)));
	CHECK(expect(cio_relay(fd, fd, NULL, NULL)));
}

static int is_timedout(int rc) { return rc == -ETIMEDOUT; }
static int is_cancelled(int rc) { return rc == -ECANCELED; }
static int is_badf(int rc) { return rc == -EBADF; }

/* Under a deadline already passed, a call on fd -1 times out: it does
 * not answer -EBADF first. */
static void test_deadline_first(void)
{
	int64_t tok = cio_deadline_push(cio_now() - 1);
	every_call_on(-1, is_timedout);
	cio_deadline_pop(tok);
	every_call_on(-1, is_badf);
}

static void test_cancel_first(void)
{
	CHECK_EQ(cio_cancel(cio_self()), 0);
	every_call_on(-1, is_cancelled);
	CHECK(cio_cancel_clear());
	every_call_on(-1, is_badf);
}

static void *set_after_10ms(void *flag)
{
	CHECK_EQ(cio_sleep(10 * MS), 0);
	*(volatile int *)flag = 1;
	return NULL;
}

enum failure { CLOSED_FD, NOT_A_SOCKET, NOT_CONNECTED, NOT_LISTENING, NO_FD };

static ssize_t fail_once(enum failure f, int fd)
{
	char b[4];
	switch (f) {
	case CLOSED_FD:
	case NOT_A_SOCKET:
	case NOT_CONNECTED:
		return cio_recv(fd, b, sizeof b, 0);
	case NOT_LISTENING:
		return cio_accept(fd, NULL);
	case NO_FD:
		return cio_wait_readable(-1);
	}
	return 0;
}

/* A loop of calls failing at once with `want` lets a 10 ms sleeper run;
 * before, no call yielded and the loop would spin until its bound. */
static void test_loop_yields(enum failure f, int fd, int want)
{
	int woke = 0;
	cio_task_t t = cio_spawn(set_after_10ms, &woke);
	CHECK(t > 0);
	int64_t give_up = cio_now() + 5000 * MS;
	long n = 0;
	while (!*(volatile int *)&woke && cio_now() < give_up) {
		for (int i = 0; i < 1000; i++, n++)
			CHECK_EQ(fail_once(f, fd), want);
	}
	CHECK(woke);
	CHECK_EQ(join_rc(t), 0);
	fprintf(stderr, "  failure %d: sleeper woke after %ld calls\n", (int)f, n);
}

static void *wait_usr1(void *flag)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	CHECK_EQ(cio_signal_wait(&set), SIGUSR1);
	*(volatile int *)flag = 1;
	return NULL;
}

/* A signal watcher runs while another task loops on failing calls. */
static void test_loop_lets_signal_in(void)
{
	int got = 0;
	cio_task_t t = cio_spawn(wait_usr1, &got);
	CHECK(t > 0);
	CHECK_EQ(cio_yield(), 0); /* the watcher is waiting */
	CHECK_EQ(kill(getpid(), SIGUSR1), 0);
	int64_t give_up = cio_now() + 5000 * MS;
	while (!*(volatile int *)&got && cio_now() < give_up)
		CHECK_EQ(cio_wait_readable(-1), -EBADF);
	CHECK(got);
	CHECK_EQ(join_rc(t), 0);
}

/* Cancel and deadline reach a task looping on failing calls. */
static void *loop_until_stopped(void *arg)
{
	(void)arg;
	int rc;
	while ((rc = cio_wait_readable(-1)) == -EBADF)
		;
	return (void *)(intptr_t)rc;
}

static void test_loop_stoppable(void)
{
	cio_task_t t = cio_spawn(loop_until_stopped, NULL);
	CHECK(t > 0);
	CHECK_EQ(cio_sleep(2 * MS), 0);
	CHECK_EQ(cio_cancel(t), 0);
	CHECK_EQ(join_rc(t), -ECANCELED);

	int64_t tok = cio_timeout_push(5 * MS);
	CHECK_EQ((intptr_t)loop_until_stopped(NULL), -ETIMEDOUT);
	cio_deadline_pop(tok);
}

/* Every kind of failing fd, in one case: they share the fds. */
static void loop_yields(void)
{
	int p[2], tcp, udp;
	CHECK_EQ(cio_pipe(p), 0);
	CHECK((tcp = cio_socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	CHECK((udp = cio_socket(AF_INET, SOCK_DGRAM, 0)) >= 0);
	int closed = dup(p[0]);
	CHECK(closed >= 0);
	CHECK_EQ(close(closed), 0);
	test_loop_yields(CLOSED_FD, closed, -EBADF);
	test_loop_yields(NOT_A_SOCKET, p[0], -ENOTSOCK);
	test_loop_yields(NOT_CONNECTED, tcp, -ENOTCONN);
	test_loop_yields(NOT_LISTENING, udp, -EOPNOTSUPP);
	test_loop_yields(NO_FD, -1, -EBADF);
	CHECK_EQ(cio_close(p[0]), 0);
	CHECK_EQ(cio_close(p[1]), 0);
	CHECK_EQ(cio_close(tcp), 0);
	CHECK_EQ(cio_close(udp), 0);
}

static void *test_main(void *arg)
{
	(void)arg;
	TEST_CASE(deadline_first, test_deadline_first());
	TEST_CASE(cancel_first, test_cancel_first());
	TEST_CASE(loop_yields, loop_yields());
	TEST_CASE(loop_lets_signal_in, test_loop_lets_signal_in());
	TEST_CASE(loop_stoppable, test_loop_stoppable());
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	/* cio_signal_wait() wants the signal blocked in every thread. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
	int rc = test_run(test_main, NULL);
	return rc ? rc : test_cases_end();
}
