/* sigfd.c - signals as a readable fd (see sigfd.h): signalfd on Linux;
 * elsewhere a sigwait() helper thread that writes each signal into the
 * pipe of one waiter. */
#include "sigfd.h"
#include "fail.h"
#include "sock.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>
#if CIO__LINUX
#include <sys/signalfd.h>
#endif

#if CIO__LINUX

int cio__sigfd_open(const sigset_t *set)
{
	int fail = CIO_FAIL(signalfd);
	if (fail)
		return -fail;
	int fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int cio__sigfd_take(int fd)
{
	struct signalfd_siginfo si;
	ssize_t r = read(fd, &si, sizeof si);
	if (r < 0)
		return -errno;
	return r == sizeof si ? (int)si.ssi_signo : -EIO;
}

void cio__sigfd_release(int fd)
{
	(void)fd;
}

int cio__sigfd_threads(void)
{
	return 0;
}

#else

#ifndef NSIG
#define NSIG 65
#endif

struct waiter {
	struct waiter *next;
	sigset_t set;
	int rd, wr;     /* rd is the waiter's fd */
	bool fired;     /* a signal went into the pipe */
};

/* lock guards the waiters, `wanted` and `pending`; the helper takes it
 * to deliver.  restart serialises starting and stopping the helper
 * (never held by the helper, so that a join under it cannot deadlock). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t restart = PTHREAD_MUTEX_INITIALIZER;
static struct waiter *waiters; /* oldest first */
static sigset_t wanted;        /* the helper's set */
static sigset_t pending;       /* taken by the helper, wanted by none yet */
static bool running;
static pthread_t helper;

/* Under lock: gives sig to the oldest waiter for it that has none yet,
 * else keeps it pending. */
static void deliver(int sig)
{
	for (struct waiter *w = waiters; w; w = w->next) {
		if (w->fired || sigismember(&w->set, sig) != 1)
			continue;
		while (write(w->wr, &sig, sizeof sig) < 0 && errno == EINTR)
			;
		w->fired = true;
		return;
	}
	sigaddset(&pending, sig);
}

static void *helper_main(void *arg)
{
	sigset_t set = *(sigset_t *)arg;
	free(arg);
	for (;;) {
		int sig, old;
		if (sigwait(&set, &sig) != 0)
			continue;
		/* Not cancelled between taking a signal and handing it on. */
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
		pthread_mutex_lock(&lock);
		deliver(sig);
		pthread_mutex_unlock(&lock);
		pthread_setcancelstate(old, NULL);
	}
	return NULL;
}

/* Under restart: stops the helper, if it runs. */
static void helper_stop(void)
{
	if (!running)
		return;
	pthread_cancel(helper);
	pthread_join(helper, NULL);
	running = false;
}

/* Under restart: starts a helper waiting on `wanted`, every signal
 * blocked in it (it inherits the mask it is created with). */
static int helper_start(void)
{
	sigset_t *set = cio__malloc(sizeof *set), all, old;
	if (!set)
		return -ENOMEM;
	pthread_mutex_lock(&lock);
	*set = wanted;
	pthread_mutex_unlock(&lock);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&helper, NULL, helper_main, set);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		free(set);
		return -rc;
	}
	running = true;
	return 0;
}

static void forget_after_fork(void)
{
	/* The helper did not come along; the waiters were other threads'. */
	pthread_mutex_init(&lock, NULL);
	pthread_mutex_init(&restart, NULL);
	waiters = NULL;
	running = false;
	sigemptyset(&wanted);
	sigemptyset(&pending);
}

static void setup(void)
{
	sigemptyset(&wanted);
	sigemptyset(&pending);
	pthread_atfork(NULL, NULL, forget_after_fork);
}

int cio__sigfd_open(const sigset_t *set)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, setup);
	struct waiter *w = cio__calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	int fds[2], rc = cio__pipe_open(fds, true);
	if (rc < 0) {
		free(w);
		return rc;
	}
	w->rd = fds[0];
	w->wr = fds[1];
	w->set = *set;
	pthread_mutex_lock(&restart);
	pthread_mutex_lock(&lock);
	bool widen = !running;
	for (int s = 1; s < NSIG; s++) {
		if (sigismember(set, s) != 1)
			continue;
		if (!w->fired && sigismember(&pending, s) == 1) {
			sigdelset(&pending, s);
			while (write(w->wr, &s, sizeof s) < 0 && errno == EINTR)
				;
			w->fired = true;
		}
		if (sigismember(&wanted, s) != 1) {
			sigaddset(&wanted, s);
			widen = true;
		}
	}
	struct waiter **tail = &waiters;
	while (*tail)
		tail = &(*tail)->next;
	*tail = w;
	pthread_mutex_unlock(&lock);
	if (widen) {
		helper_stop();
		rc = helper_start();
	}
	pthread_mutex_unlock(&restart);
	if (rc < 0) {
		cio__sigfd_release(w->rd);
		close(fds[0]);
		return rc;
	}
	return w->rd;
}

int cio__sigfd_take(int fd)
{
	int sig;
	ssize_t r = read(fd, &sig, sizeof sig);
	if (r < 0)
		return -errno;
	return r == sizeof sig ? sig : -EIO;
}

void cio__sigfd_release(int fd)
{
	pthread_mutex_lock(&restart);
	pthread_mutex_lock(&lock);
	struct waiter **p = &waiters, *w;
	while ((w = *p) && w->rd != fd)
		p = &w->next;
	if (!w) {
		pthread_mutex_unlock(&lock);
		pthread_mutex_unlock(&restart);
		return;
	}
	*p = w->next;
	int sig;
	if (w->fired && read(w->rd, &sig, sizeof sig) == sizeof sig)
		deliver(sig); /* routed here, never taken: someone else's */
	bool last = !waiters;
	pthread_mutex_unlock(&lock);
	if (last) {
		helper_stop();
		/* Back to the kernel: pending there, as if never taken. */
		pthread_mutex_lock(&lock);
		for (int s = 1; s < NSIG; s++)
			if (sigismember(&pending, s) == 1)
				kill(getpid(), s);
		sigemptyset(&pending);
		sigemptyset(&wanted);
		pthread_mutex_unlock(&lock);
	}
	pthread_mutex_unlock(&restart);
	close(w->wr);
	free(w);
}

int cio__sigfd_threads(void)
{
	pthread_mutex_lock(&restart); /* running's lock */
	int n = running;
	pthread_mutex_unlock(&restart);
	return n;
}

#endif
