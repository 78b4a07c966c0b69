/* kevent.c - a test double, not a port: kqueue(2) and kevent(2) emulated
 * on Linux over epoll and an eventfd, so that the kqueue backend
 * (src/driver/kqueue.c) builds and its tests run on Linux.  Built only
 * with COREIO_KQUEUE_EMULATION and never installed.  Semantics follow
 * FreeBSD's kqueue(2) manual page, for what the backend uses (see
 * sys/event.h).
 *
 * A kqueue is an epoll instance; its number is the kqueue's, and the
 * emulation's state for it (knotes, events not yet returned) hangs off a
 * table indexed by that number.  An fd's READ and WRITE knotes share the
 * fd's one epoll registration: EPOLLIN|EPOLLRDHUP for READ, EPOLLOUT for
 * WRITE, and EPOLLET when they are EV_CLEAR (both must agree).  EVFILT_USER
 * knotes live here; NOTE_TRIGGER marks one and writes an eventfd that
 * every kqueue watches, edge-triggered, so any thread may trigger.
 *
 * Limitations, all of them known:
 * - close() of an fd is invisible here.  Real kqueue drops the file's
 *   knotes; here epoll drops its registration only when the last
 *   reference to the file goes (a dup keeps it reporting), and this
 *   table forgets the knotes lazily: the next EV_ADD or EV_DELETE on the
 *   number finds epoll's ENOENT and starts afresh, and a change on a
 *   closed number fails with EBADF, as on FreeBSD.
 * - close() of the kqueue itself is invisible too: its state stays in
 *   the table until kqueue() returns that number again.  The trigger
 *   eventfd is one per process, made by the first kqueue(), never closed.
 * - EV_EOF's fflags: Linux hands out a socket's pending error only by
 *   clearing it (SO_ERROR), which would steal it from the next recv or
 *   send; so fflags is EIO when an error is pending, not the error itself.
 * - data: READ reports FIONREAD (for a UDP socket: the next datagram's
 *   size, not the total; for a listening socket: 0, not the backlog);
 *   WRITE reports 0.
 * - Regular files cannot be watched (epoll's EPERM).
 * - An event queued here when the caller's eventlist was full is
 *   returned by a later call as it was, without running the filter again. */
#include <sys/event.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define WAKE_TAG UINT64_MAX /* the trigger eventfd's epoll data */
#define KNOWN_FLAGS (EV_ADD | EV_DELETE | EV_CLEAR | EV_RECEIPT)

/* An fd's knotes: flags 0 means none. */
struct fdnotes {
	unsigned short rflags, wflags;
	void *rudata, *wudata;
};

struct unote {
	uintptr_t ident;
	unsigned short flags;
	unsigned fflags;
	void *udata;
	bool triggered;
};

struct kq {
	pthread_mutex_t mu; /* NOTE_TRIGGER comes from other threads */
	int epfd;
	struct fdnotes *fds;
	size_t nfds;
	struct unote *users;
	size_t nusers, capusers;
	struct kevent *pending; /* found, not yet returned */
	size_t npending, cappending;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct kq **reg; /* by kqueue number */
static size_t nreg;
static int wake_efd = -1;

/* Grows the array *arr of *cap elements of `size` bytes so that index
 * `need` fits, doubling, the new elements zeroed.  ENOMEM or 0. */
static int grow(void *arr, size_t *cap, size_t need, size_t size, size_t first)
{
	if (need < *cap)
		return 0;
	size_t n = *cap ? *cap : first;
	while (n <= need)
		n *= 2;
	char *v; /* through memcpy: *arr is a pointer of another type */
	memcpy(&v, arr, sizeof v);
	v = realloc(v, n * size);
	if (!v)
		return ENOMEM;
	memset(v + *cap * size, 0, (n - *cap) * size);
	memcpy(arr, &v, sizeof v);
	*cap = n;
	return 0;
}

static void kq_reset(struct kq *s)
{
	free(s->fds);
	free(s->users);
	free(s->pending);
	s->fds = NULL;
	s->users = NULL;
	s->pending = NULL;
	s->nfds = s->nusers = s->capusers = s->npending = s->cappending = 0;
}

int kqueue(void)
{
	pthread_mutex_lock(&reg_mu);
	int err = 0, epfd = -1;
	if (wake_efd < 0)
		wake_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wake_efd < 0) {
		err = errno;
		goto out;
	}
	epfd = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = WAKE_TAG};
	if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, wake_efd, &ev) < 0) {
		err = errno;
		goto out;
	}
	err = grow(&reg, &nreg, (size_t)epfd, sizeof *reg, 16);
	if (err)
		goto out;
	if (!reg[epfd]) {
		struct kq *s = calloc(1, sizeof *s);
		if (!s) {
			err = ENOMEM;
			goto out;
		}
		pthread_mutex_init(&s->mu, NULL);
		reg[epfd] = s;
	}
	/* A kqueue closed unseen had this number: its state is stale. */
	pthread_mutex_lock(&reg[epfd]->mu);
	kq_reset(reg[epfd]);
	reg[epfd]->epfd = epfd;
	pthread_mutex_unlock(&reg[epfd]->mu);
out:
	pthread_mutex_unlock(&reg_mu);
	if (err) {
		if (epfd >= 0)
			close(epfd);
		errno = err;
		return -1;
	}
	return epfd;
}

static struct kq *kq_find(int kq)
{
	pthread_mutex_lock(&reg_mu);
	struct kq *s = kq >= 0 && (size_t)kq < nreg ? reg[kq] : NULL;
	pthread_mutex_unlock(&reg_mu);
	return s;
}

static struct fdnotes *fd_notes(struct kq *s, int fd, bool create)
{
	if ((size_t)fd >= s->nfds &&
	    (!create || grow(&s->fds, &s->nfds, (size_t)fd, sizeof *s->fds, 64)))
		return NULL;
	return &s->fds[fd];
}

/* Drops queued events of (ident, filter); filter 0: of every fd filter. */
static void drop_pending(struct kq *s, uintptr_t ident, short filter)
{
	size_t j = 0;
	for (size_t i = 0; i < s->npending; i++) {
		const struct kevent *e = &s->pending[i];
		bool match = e->ident == ident &&
			     (filter ? e->filter == filter : e->filter != EVFILT_USER);
		if (!match)
			s->pending[j++] = *e;
	}
	s->npending = j;
}

/* Makes epoll's registration of fd say what `want` holds.  `had`: the
 * table believed fd registered.  A registration gone with a closed file
 * (ENOENT) means its knotes went too: *lost is set, and an add of `want`
 * is made only when `adding`. */
static int fd_register(struct kq *s, int fd, struct fdnotes *want, bool had,
		       bool adding, bool *lost)
{
	*lost = false;
	if ((want->rflags && want->wflags) &&
	    ((want->rflags ^ want->wflags) & EV_CLEAR))
		return EINVAL; /* one epoll registration: one trigger mode */
	struct epoll_event ev = {
		.events = (want->rflags ? EPOLLIN | EPOLLRDHUP : 0) |
			  (want->wflags ? EPOLLOUT : 0) |
			  ((want->rflags | want->wflags) & EV_CLEAR ? EPOLLET : 0),
		.data.u64 = (uint64_t)fd,
	};
	if (!ev.events)
		return epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL) == 0 ? 0 : errno;
	int op = had ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(s->epfd, op, fd, &ev) == 0)
		return 0;
	if (op == EPOLL_CTL_MOD && errno == ENOENT) {
		*lost = true;
		if (!adding)
			return ENOENT;
		op = EPOLL_CTL_ADD;
	} else if (op == EPOLL_CTL_ADD && errno == EEXIST) {
		op = EPOLL_CTL_MOD;
	} else {
		return errno;
	}
	return epoll_ctl(s->epfd, op, fd, &ev) == 0 ? 0 : errno;
}

static int change_fd(struct kq *s, const struct kevent *c)
{
	if (c->ident > INT_MAX)
		return EBADF;
	int fd = (int)c->ident;
	bool rd = c->filter == EVFILT_READ;
	if (fcntl(fd, F_GETFD) < 0) {
		/* Closed: whatever knotes it had went with the file. */
		struct fdnotes *f = fd_notes(s, fd, false);
		if (f)
			memset(f, 0, sizeof *f);
		drop_pending(s, c->ident, 0);
		return EBADF;
	}
	struct fdnotes *f = fd_notes(s, fd, c->flags & EV_ADD);
	if (!f)
		return c->flags & EV_ADD ? ENOMEM : ENOENT;
	bool had = f->rflags || f->wflags;
	unsigned short *mine = rd ? &f->rflags : &f->wflags;
	struct fdnotes want = *f;
	bool lost;
	int err;
	if (c->flags & EV_DELETE) {
		if (!*mine)
			return ENOENT;
		*(rd ? &want.rflags : &want.wflags) = 0;
		err = fd_register(s, fd, &want, had, false, &lost);
		if (lost || err == ENOENT) {
			memset(f, 0, sizeof *f); /* the file they were for is gone */
			drop_pending(s, c->ident, 0);
			return ENOENT;
		}
		if (err)
			return err;
		*f = want;
		drop_pending(s, c->ident, c->filter);
		return 0;
	}
	if (!(c->flags & EV_ADD))
		return *mine ? 0 : ENOENT; /* nothing else to change */
	unsigned short fl = (unsigned short)(c->flags & (EV_ADD | EV_CLEAR));
	if (rd) {
		want.rflags = fl;
		want.rudata = c->udata;
	} else {
		want.wflags = fl;
		want.wudata = c->udata;
	}
	err = fd_register(s, fd, &want, had, true, &lost);
	if (lost) {
		/* The fd's number was closed and reused: only this knote
		 * exists now.  Register it alone. */
		drop_pending(s, c->ident, 0);
		memset(&want, 0, sizeof want);
		*(rd ? &want.rflags : &want.wflags) = fl;
		*(rd ? &want.rudata : &want.wudata) = c->udata;
		memset(f, 0, sizeof *f);
		err = fd_register(s, fd, &want, false, true, &lost);
	}
	if (err)
		return err;
	*f = want;
	return 0;
}

static struct unote *user_find(struct kq *s, uintptr_t ident)
{
	for (size_t i = 0; i < s->nusers; i++)
		if (s->users[i].ident == ident)
			return &s->users[i];
	return NULL;
}

static int change_user(struct kq *s, const struct kevent *c)
{
	struct unote *u = user_find(s, c->ident);
	if (c->flags & EV_DELETE) {
		if (!u)
			return ENOENT;
		*u = s->users[--s->nusers];
		drop_pending(s, c->ident, EVFILT_USER);
		return 0;
	}
	if (!u && !(c->flags & EV_ADD))
		return ENOENT;
	if (!u) {
		if (grow(&s->users, &s->capusers, s->nusers, sizeof *s->users, 4))
			return ENOMEM;
		u = &s->users[s->nusers++];
		memset(u, 0, sizeof *u);
		u->ident = c->ident;
	}
	if (c->flags & EV_ADD) {
		u->flags = (unsigned short)(c->flags & (EV_ADD | EV_CLEAR));
		u->udata = c->udata;
	}
	if (c->fflags & NOTE_TRIGGER) {
		u->triggered = true;
		uint64_t one = 1;
		/* EAGAIN: the counter is full, and every kqueue has its edge. */
		while (write(wake_efd, &one, sizeof one) < 0 && errno == EINTR)
			;
	}
	return 0;
}

static int apply(struct kq *s, const struct kevent *c)
{
	if ((c->flags & ~KNOWN_FLAGS) ||
	    (c->flags & (EV_ADD | EV_DELETE)) == (EV_ADD | EV_DELETE))
		return EINVAL;
	switch (c->filter) {
	case EVFILT_READ:
	case EVFILT_WRITE:
		if (c->fflags)
			return EINVAL; /* NOTE_LOWAT and the like: not here */
		return change_fd(s, c);
	case EVFILT_USER:
		return change_user(s, c);
	default:
		return EINVAL;
	}
}

static int queue(struct kq *s, const struct kevent *e)
{
	if (grow(&s->pending, &s->cappending, s->npending, sizeof *s->pending, 64))
		return ENOMEM;
	s->pending[s->npending++] = *e;
	return 0;
}

/* What epoll reported for fd, as kevents onto the queue. */
static void convert(struct kq *s, int fd, uint32_t m)
{
	struct fdnotes *f = fd_notes(s, fd, false);
	if (!f)
		return; /* a registration since dropped */
	struct kevent e;
	if (f->rflags && (m & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
		int avail = 0;
		if (ioctl(fd, FIONREAD, &avail) < 0)
			avail = 0;
		EV_SET(&e, fd, EVFILT_READ, f->rflags, 0, avail, f->rudata);
		if (m & (EPOLLRDHUP | EPOLLHUP)) {
			e.flags |= EV_EOF;
			e.fflags = m & EPOLLERR ? EIO : 0;
		}
		queue(s, &e);
	}
	if (f->wflags && (m & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
		EV_SET(&e, fd, EVFILT_WRITE, f->wflags, 0, 0, f->wudata);
		if (m & (EPOLLHUP | EPOLLERR)) {
			e.flags |= EV_EOF;
			e.fflags = m & EPOLLERR ? EIO : 0;
		}
		queue(s, &e);
	}
}

/* Fills out with up to n events: triggered user knotes, then the queue. */
static int deliver(struct kq *s, struct kevent *out, int n)
{
	int k = 0;
	for (size_t i = 0; i < s->nusers && k < n; i++) {
		struct unote *u = &s->users[i];
		if (!u->triggered)
			continue;
		EV_SET(&out[k], u->ident, EVFILT_USER, u->flags, u->fflags, 0, u->udata);
		k++;
		if (u->flags & EV_CLEAR) {
			u->triggered = false;
			u->fflags = 0;
		}
	}
	size_t take = s->npending < (size_t)(n - k) ? s->npending : (size_t)(n - k);
	if (take) {
		memcpy(out + k, s->pending, take * sizeof *out);
		memmove(s->pending, s->pending + take, (s->npending - take) * sizeof *out);
		s->npending -= take;
	}
	return k + (int)take;
}

static bool any_ready(struct kq *s)
{
	for (size_t i = 0; i < s->nusers; i++)
		if (s->users[i].triggered)
			return true;
	return s->npending > 0;
}

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int kevent(int kq, const struct kevent *changelist, int nchanges,
	   struct kevent *eventlist, int nevents, const struct timespec *timeout)
{
	struct kq *s = kq_find(kq);
	if (!s) {
		errno = EBADF;
		return -1;
	}
	if (nchanges < 0 || nevents < 0 || (nchanges && !changelist) ||
	    (nevents && !eventlist)) {
		errno = EINVAL;
		return -1;
	}
	/* The changes first.  A change's result goes into the eventlist if
	 * it failed or asked for EV_RECEIPT; without room, a failure makes
	 * the call fail, and the changes after it are not made. */
	pthread_mutex_lock(&s->mu);
	int nerrors = 0;
	for (int i = 0; i < nchanges; i++) {
		struct kevent c = changelist[i]; /* eventlist may be the same array */
		int err = apply(s, &c);
		if (!err && !(c.flags & EV_RECEIPT))
			continue;
		if (nevents == 0) {
			pthread_mutex_unlock(&s->mu);
			if (err) {
				errno = err;
				return -1;
			}
			return nerrors;
		}
		c.flags = EV_ERROR;
		c.data = err;
		eventlist[nerrors++] = c;
		nevents--;
	}
	pthread_mutex_unlock(&s->mu);
	if (nerrors || nevents == 0)
		return nerrors;

	int64_t deadline = 0;
	if (timeout) {
		if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
		    timeout->tv_nsec >= 1000000000) {
			errno = EINVAL;
			return -1;
		}
		int64_t max = (INT64_MAX - now_ns()) / 1000000000 - 1;
		int64_t sec = timeout->tv_sec < max ? timeout->tv_sec : max;
		deadline = now_ns() + sec * 1000000000 + timeout->tv_nsec;
	}
	for (;;) {
		pthread_mutex_lock(&s->mu);
		bool ready = any_ready(s);
		pthread_mutex_unlock(&s->mu);
		struct timespec ts, *tp = NULL;
		if (ready || timeout) {
			int64_t left = ready ? 0 : deadline - now_ns();
			if (left < 0)
				left = 0;
			ts.tv_sec = left / 1000000000;
			ts.tv_nsec = left % 1000000000;
			tp = &ts;
		}
		struct epoll_event ev[64];
		int max = nevents < 64 ? nevents : 64;
		int r = epoll_pwait2(s->epfd, ev, max, tp, NULL);
		if (r < 0 && !(ready && errno == EINTR))
			return -1; /* EINTR: the changes were made */
		pthread_mutex_lock(&s->mu);
		for (int i = 0; i < r; i++)
			if (ev[i].data.u64 != WAKE_TAG)
				convert(s, (int)ev[i].data.u64, ev[i].events);
		int n = deliver(s, eventlist, nevents);
		pthread_mutex_unlock(&s->mu);
		/* Nothing for us (another kqueue's trigger, or only what
		 * no knote wants): wait out the rest of the time. */
		if (n > 0 || (timeout && now_ns() >= deadline))
			return n;
	}
}
