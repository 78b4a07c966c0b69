/* test_kevent.c - the kevent emulation of tests/kevent, on its own: the
 * kqueue(2) behaviours the kqueue backend relies on, as FreeBSD's manual
 * page states them.  Plain C; no runtime. */
#include "check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const struct timespec zero = {0, 0};

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void add(int kq, int fd, short filter, unsigned short flags)
{
	struct kevent c;
	EV_SET(&c, fd, filter, flags, 0, 0, NULL);
	CHECK_EQ(kevent(kq, &c, 1, NULL, 0, NULL), 0);
}

/* Events ready now, into ev[0..8). */
static int poll_now(int kq, struct kevent *ev)
{
	return kevent(kq, NULL, 0, ev, 8, &zero);
}

/* EV_CLEAR: one report per change, none once retrieved, a new one on new
 * data; an EV_ADD of the knote there reports what holds now. */
static void test_clear(void)
{
	int kq = kqueue(), sv[2];
	struct kevent ev[8];
	CHECK(kq >= 0);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	add(kq, sv[0], EVFILT_READ, EV_ADD | EV_CLEAR);
	CHECK_EQ(poll_now(kq, ev), 0);
	CHECK_EQ(write(sv[1], "ab", 2), 2);
	CHECK_EQ(poll_now(kq, ev), 1);
	CHECK_EQ(ev[0].ident, sv[0]);
	CHECK_EQ(ev[0].filter, EVFILT_READ);
	CHECK(ev[0].flags & EV_CLEAR);
	CHECK(!(ev[0].flags & (EV_EOF | EV_ERROR)));
	CHECK_EQ(ev[0].data, 2);
	CHECK_EQ(poll_now(kq, ev), 0); /* retrieved: reset, though not read */
	add(kq, sv[0], EVFILT_READ, EV_ADD | EV_CLEAR);
	CHECK_EQ(poll_now(kq, ev), 1); /* re-added: the data is there */
	CHECK_EQ(ev[0].data, 2);
	char buf[8];
	CHECK_EQ(read(sv[0], buf, sizeof buf), 2);
	CHECK_EQ(poll_now(kq, ev), 0);
	CHECK_EQ(write(sv[1], "c", 1), 1);
	CHECK_EQ(poll_now(kq, ev), 1);
	CHECK_EQ(ev[0].data, 1);
	CHECK_EQ(poll_now(kq, ev), 0);

	/* Both filters on one fd, each reported on its own. */
	add(kq, sv[1], EVFILT_READ, EV_ADD | EV_CLEAR);
	add(kq, sv[1], EVFILT_WRITE, EV_ADD | EV_CLEAR);
	CHECK_EQ(poll_now(kq, ev), 1);
	CHECK_EQ(ev[0].ident, sv[1]);
	CHECK_EQ(ev[0].filter, EVFILT_WRITE);
	/* A one-entry eventlist still gets both, one per call. */
	CHECK_EQ(write(sv[0], "d", 1), 1);
	add(kq, sv[1], EVFILT_WRITE, EV_ADD | EV_CLEAR);
	int got = 0;
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(kevent(kq, NULL, 0, ev, 1, &zero), 1);
		got |= ev[0].filter == EVFILT_READ ? 1 : 2;
	}
	CHECK_EQ(got, 3);
	CHECK_EQ(poll_now(kq, ev), 0);
	close(sv[0]);
	close(sv[1]);
	close(kq);
}

/* EV_EOF on the read filter once the peer shut down writing, with the
 * data still pending and readable. */
static void test_eof(void)
{
	int kq = kqueue(), sv[2];
	struct kevent ev[8];
	char buf[8];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	add(kq, sv[0], EVFILT_READ, EV_ADD | EV_CLEAR);
	CHECK_EQ(write(sv[1], "xyz", 3), 3);
	CHECK_EQ(shutdown(sv[1], SHUT_WR), 0);
	CHECK_EQ(poll_now(kq, ev), 1);
	CHECK(ev[0].flags & EV_EOF);
	CHECK_EQ(ev[0].fflags, 0); /* no socket error */
	CHECK_EQ(ev[0].data, 3);
	CHECK_EQ(read(sv[0], buf, sizeof buf), 3);
	CHECK_EQ(read(sv[0], buf, sizeof buf), 0);
	close(sv[0]);
	close(sv[1]);

	/* A pipe whose last writer left: EV_EOF too. */
	int p[2];
	CHECK_EQ(pipe(p), 0);
	add(kq, p[0], EVFILT_READ, EV_ADD | EV_CLEAR);
	close(p[1]);
	CHECK_EQ(poll_now(kq, ev), 1);
	CHECK(ev[0].flags & EV_EOF);
	CHECK_EQ(ev[0].data, 0);
	close(p[0]);

	/* A reset: EV_EOF with an error in fflags, and the error is left
	 * for the next recv to return. */
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	CHECK_EQ(listen(l, 1), 0);
	CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &alen), 0);
	CHECK_EQ(connect(c, (struct sockaddr *)&a, sizeof a), 0);
	int s = accept(l, NULL, NULL);
	CHECK(s >= 0);
	add(kq, c, EVFILT_READ, EV_ADD | EV_CLEAR);
	struct linger lg = {1, 0};
	CHECK_EQ(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	close(s); /* sends a RST */
	struct timespec sec = {5, 0};
	CHECK_EQ(kevent(kq, NULL, 0, ev, 8, &sec), 1);
	CHECK(ev[0].flags & EV_EOF);
	CHECK(ev[0].fflags != 0);
	CHECK_EQ(recv(c, buf, sizeof buf, 0), -1);
	CHECK_EQ(errno, ECONNRESET);
	close(c);
	close(l);
	close(kq);
}

/* Changes that fail: EV_DELETE of a closed fd (EBADF: the descriptor is
 * invalid) or of a knote not there (ENOENT), EV_ADD of a closed fd
 * (EBADF).  Without room for the result the call fails with it; with
 * room the result is an EV_ERROR entry. */
static void test_errors(void)
{
	int kq = kqueue(), p[2];
	struct kevent c, ev[8];
	CHECK_EQ(pipe(p), 0);
	add(kq, p[0], EVFILT_READ, EV_ADD | EV_CLEAR);
	int closed = p[0];
	close(p[0]);
	EV_SET(&c, closed, EVFILT_READ, EV_DELETE, 0, 0, NULL);
	errno = 0;
	CHECK_EQ(kevent(kq, &c, 1, NULL, 0, NULL), -1);
	CHECK_EQ(errno, EBADF);
	EV_SET(&c, closed, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
	CHECK_EQ(kevent(kq, &c, 1, NULL, 0, NULL), -1);
	CHECK_EQ(errno, EBADF);
	/* With room: an EV_ERROR entry, and the call does not wait. */
	CHECK_EQ(kevent(kq, &c, 1, ev, 8, NULL), 1);
	CHECK_EQ(ev[0].flags, EV_ERROR);
	CHECK_EQ(ev[0].data, EBADF);
	CHECK_EQ(ev[0].ident, closed);

	/* Open, with no knote: ENOENT. */
	EV_SET(&c, p[1], EVFILT_WRITE, EV_DELETE, 0, 0, NULL);
	CHECK_EQ(kevent(kq, &c, 1, NULL, 0, NULL), -1);
	CHECK_EQ(errno, ENOENT);

	/* A number closed and reused: the old knotes went with the old file;
	 * the new one can be added, and deleting the one never added on it
	 * is ENOENT. */
	int q[2];
	add(kq, p[1], EVFILT_WRITE, EV_ADD | EV_CLEAR);
	add(kq, p[1], EVFILT_READ, EV_ADD | EV_CLEAR);
	int num = p[1];
	CHECK_EQ(pipe(q), 0); /* neither end can have num */
	close(p[1]);
	CHECK_EQ(dup2(q[0], num), num); /* q[0]'s file takes the number */
	close(q[0]);
	q[0] = num;
	add(kq, q[0], EVFILT_READ, EV_ADD | EV_CLEAR);
	EV_SET(&c, q[0], EVFILT_WRITE, EV_DELETE, 0, 0, NULL);
	CHECK_EQ(kevent(kq, &c, 1, NULL, 0, NULL), -1);
	CHECK_EQ(errno, ENOENT);
	CHECK_EQ(poll_now(kq, ev), 0);
	CHECK_EQ(write(q[1], "z", 1), 1);
	CHECK_EQ(poll_now(kq, ev), 1);
	CHECK_EQ(ev[0].ident, q[0]);
	CHECK_EQ(ev[0].filter, EVFILT_READ);
	EV_SET(&c, q[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
	CHECK_EQ(kevent(kq, &c, 1, NULL, 0, NULL), 0);
	CHECK_EQ(kevent(kq, &c, 1, NULL, 0, NULL), -1);
	CHECK_EQ(errno, ENOENT);
	close(q[0]);
	close(q[1]);

	/* A kqueue that is not one. */
	CHECK_EQ(kevent(-1, NULL, 0, ev, 8, &zero), -1);
	CHECK_EQ(errno, EBADF);
	close(kq);
}

/* EV_RECEIPT: each change returns an EV_ERROR entry, data 0 or its errno,
 * and no events are collected by that call. */
static void test_receipt(void)
{
	int kq = kqueue(), sv[2];
	struct kevent ch[3], ev[8];
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CHECK_EQ(write(sv[1], "a", 1), 1); /* sv[0] is ready at once */
	EV_SET(&ch[0], sv[0], EVFILT_READ, EV_ADD | EV_CLEAR | EV_RECEIPT, 0, 0, NULL);
	EV_SET(&ch[1], sv[0], EVFILT_WRITE, EV_ADD | EV_CLEAR | EV_RECEIPT, 0, 0, NULL);
	EV_SET(&ch[2], 1000000, EVFILT_READ, EV_DELETE | EV_RECEIPT, 0, 0, NULL);
	CHECK_EQ(kevent(kq, ch, 3, ev, 8, NULL), 3);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(ev[i].flags, EV_ERROR);
		CHECK_EQ(ev[i].ident, ch[i].ident);
		CHECK_EQ(ev[i].filter, ch[i].filter);
	}
	CHECK_EQ(ev[0].data, 0);
	CHECK_EQ(ev[1].data, 0);
	CHECK_EQ(ev[2].data, EBADF);
	/* The events are there for the next call. */
	CHECK_EQ(poll_now(kq, ev), 2);

	/* The same array for changes and results. */
	EV_SET(&ch[0], sv[0], EVFILT_READ, EV_DELETE | EV_RECEIPT, 0, 0, NULL);
	EV_SET(&ch[1], sv[0], EVFILT_READ, EV_DELETE | EV_RECEIPT, 0, 0, NULL);
	CHECK_EQ(kevent(kq, ch, 2, ch, 2, NULL), 2);
	CHECK_EQ(ch[0].data, 0);
	CHECK_EQ(ch[1].data, ENOENT);
	close(sv[0]);
	close(sv[1]);
	close(kq);
}

struct trig {
	int kq;
	int delay_ms;
};

static void *trigger(void *arg)
{
	struct trig *t = arg;
	struct timespec d = {0, (long)t->delay_ms * 1000000};
	nanosleep(&d, NULL);
	struct kevent c;
	EV_SET(&c, 7, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	CHECK_EQ(kevent(t->kq, &c, 1, NULL, 0, NULL), 0);
	return NULL;
}

/* EVFILT_USER: NOTE_TRIGGER from another thread wakes a wait with no
 * timeout; EV_CLEAR resets it once retrieved.  A trigger of a knote not
 * there is ENOENT. */
static void test_user(void)
{
	int kq = kqueue();
	struct kevent c, ev[8];
	EV_SET(&c, 7, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	CHECK_EQ(kevent(kq, &c, 1, NULL, 0, NULL), -1);
	CHECK_EQ(errno, ENOENT);
	int marker;
	EV_SET(&c, 7, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, &marker);
	CHECK_EQ(kevent(kq, &c, 1, NULL, 0, NULL), 0);
	CHECK_EQ(poll_now(kq, ev), 0);
	for (int round = 0; round < 50; round++) {
		struct trig t = {kq, round == 0 ? 20 : 0};
		pthread_t th;
		CHECK_EQ(pthread_create(&th, NULL, trigger, &t), 0);
		CHECK_EQ(kevent(kq, NULL, 0, ev, 8, NULL), 1);
		CHECK_EQ(ev[0].ident, 7);
		CHECK_EQ(ev[0].filter, EVFILT_USER);
		CHECK(ev[0].udata == &marker);
		CHECK_EQ(pthread_join(th, NULL), 0);
		CHECK_EQ(poll_now(kq, ev), 0); /* cleared */
	}
	/* A second kqueue's trigger does not show in this one. */
	int kq2 = kqueue();
	EV_SET(&c, 7, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	CHECK_EQ(kevent(kq2, &c, 1, NULL, 0, NULL), 0);
	EV_SET(&c, 7, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
	CHECK_EQ(kevent(kq2, &c, 1, NULL, 0, NULL), 0);
	CHECK_EQ(poll_now(kq, ev), 0);
	CHECK_EQ(poll_now(kq2, ev), 1);
	close(kq2);
	EV_SET(&c, 7, EVFILT_USER, EV_DELETE, 0, 0, NULL);
	CHECK_EQ(kevent(kq, &c, 1, NULL, 0, NULL), 0);
	CHECK_EQ(kevent(kq, &c, 1, NULL, 0, NULL), -1);
	CHECK_EQ(errno, ENOENT);
	close(kq);
}

/* The timeout: 20 ms waits at least 20 ms, and not absurdly longer (the
 * machine is shared: a generous bound, no speed claim). */
static void test_timeout(void)
{
	int kq = kqueue();
	struct kevent ev[8];
	struct timespec t = {0, 20000000};
	int64_t t0 = now_ns();
	CHECK_EQ(kevent(kq, NULL, 0, ev, 8, &t), 0);
	int64_t took = now_ns() - t0;
	CHECK(took >= 20000000);
	CHECK(took < 2000000000);
	/* nevents 0: returns at once, whatever the timeout. */
	struct timespec two_s = {2, 0};
	t0 = now_ns();
	CHECK_EQ(kevent(kq, NULL, 0, NULL, 0, &two_s), 0);
	CHECK(now_ns() - t0 < 1000000000);
	struct timespec bad = {0, 1000000000};
	CHECK_EQ(kevent(kq, NULL, 0, ev, 8, &bad), -1);
	CHECK_EQ(errno, EINVAL);
	close(kq);
}

static void on_signal(int sig)
{
	(void)sig;
}

static void *interrupt(void *arg)
{
	struct timespec d = {0, 20000000};
	nanosleep(&d, NULL);
	pthread_kill(*(pthread_t *)arg, SIGUSR1);
	return NULL;
}

/* A signal during a wait: -1 with EINTR. */
static void test_eintr(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	CHECK_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	int kq = kqueue();
	struct kevent ev[8];
	pthread_t self = pthread_self(), th;
	CHECK_EQ(pthread_create(&th, NULL, interrupt, &self), 0);
	struct timespec t = {10, 0};
	CHECK_EQ(kevent(kq, NULL, 0, ev, 8, &t), -1);
	CHECK_EQ(errno, EINTR);
	CHECK_EQ(pthread_join(th, NULL), 0);
	close(kq);
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	TEST_CASE(clear, test_clear());
	TEST_CASE(eof, test_eof());
	TEST_CASE(errors, test_errors());
	TEST_CASE(receipt, test_receipt());
	TEST_CASE(user, test_user());
	TEST_CASE(timeout, test_timeout());
	TEST_CASE(eintr, test_eintr());
	fprintf(stderr, "ok (kevent emulation)\n");
	return test_cases_end();
}
