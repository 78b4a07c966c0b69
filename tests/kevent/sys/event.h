/* sys/event.h - a test double: kqueue(2) and kevent(2) emulated on Linux
 * over epoll and an eventfd (tests/kevent/kevent.c), so that the kqueue
 * backend builds and its tests run here.  Built only with
 * COREIO_KQUEUE_EMULATION; never installed.
 *
 * It covers what the backend uses and nothing more: EVFILT_READ,
 * EVFILT_WRITE and EVFILT_USER (NOTE_TRIGGER); EV_ADD, EV_DELETE,
 * EV_CLEAR, EV_RECEIPT, and on return EV_ERROR and EV_EOF.  Other flags
 * and filters are refused with EINVAL.  Values follow FreeBSD's. */
#ifndef COREIO_TESTS_KEVENT_SYS_EVENT_H
#define COREIO_TESTS_KEVENT_SYS_EVENT_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct kevent {
	uintptr_t ident;      /* an fd, or EVFILT_USER's own number */
	short filter;         /* EVFILT_* */
	unsigned short flags; /* EV_* */
	unsigned int fflags;  /* filter flags; EV_EOF: a socket error */
	int64_t data;         /* READ: bytes to read; EV_ERROR: an errno */
	void *udata;          /* passed through unchanged */
	uint64_t ext[4];      /* passed through unchanged */
};

#define EV_SET(kevp, a, b, c, d, e, f)                                      \
	do {                                                                \
		struct kevent *ev_set_ = (kevp);                            \
		ev_set_->ident = (uintptr_t)(a);                            \
		ev_set_->filter = (short)(b);                               \
		ev_set_->flags = (unsigned short)(c);                       \
		ev_set_->fflags = (unsigned int)(d);                        \
		ev_set_->data = (int64_t)(e);                               \
		ev_set_->udata = (f);                                       \
		ev_set_->ext[0] = ev_set_->ext[1] = 0;                      \
		ev_set_->ext[2] = ev_set_->ext[3] = 0;                      \
	} while (0)

#define EVFILT_READ (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_USER (-11)

/* Actions (in) */
#define EV_ADD 0x0001     /* add, or update the knote there */
#define EV_DELETE 0x0002  /* remove */
#define EV_CLEAR 0x0020   /* reset the state once retrieved: edge-triggered */
#define EV_RECEIPT 0x0040 /* return each change's result, not events */
/* Returned (out) */
#define EV_ERROR 0x4000   /* data holds an errno (or 0 with EV_RECEIPT) */
#define EV_EOF 0x8000     /* READ: the peer sends no more; WRITE: no reader */

/* EVFILT_USER */
#define NOTE_FFLAGSMASK 0x00ffffffu /* the user's own flags */
#define NOTE_TRIGGER 0x01000000u    /* trigger the knote */

#ifdef __cplusplus
extern "C" {
#endif

int kqueue(void);
int kevent(int kq, const struct kevent *changelist, int nchanges,
	   struct kevent *eventlist, int nevents, const struct timespec *timeout);

#ifdef __cplusplus
}
#endif

#endif
