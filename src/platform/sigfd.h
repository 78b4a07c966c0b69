/* sigfd.h - signals as a readable fd, so that a task can wait for one
 * with the rest of its I/O.
 *
 * The contract is signalfd's: the signals waited for are blocked in
 * every thread, so they stay pending until a waiter takes them (and a
 * process-directed one goes to one waiter only).
 *
 * Linux: signalfd(2).  POSIX: a handler would not do, since a blocked
 * signal never runs one; so one helper thread per process, started with
 * the first waiter and stopped with the last, takes the signals with
 * sigwait(2) and writes each into one waiter's pipe.  Its set is the
 * union of what its waiters want; a waiter that widens it restarts the
 * thread (sigwait() is a cancellation point).  A signal it took that no
 * waiter wants stays pending with it, for the next waiter that does;
 * when the last waiter goes, the thread stops and raises such signals
 * again, so that they are pending in the kernel as if it never ran. */
#ifndef CIO_PLATFORM_SIGFD_H
#define CIO_PLATFORM_SIGFD_H

#include "os.h"

#include <signal.h>

/* An fd, non-blocking and close-on-exec, that becomes readable when one
 * of `set` is pending.  Returns it or -errno (-EINVAL, -EMFILE...). */
int cio__sigfd_open(const sigset_t *set);

/* Takes one pending signal through fd.  Returns its number, -EAGAIN if
 * none (another waiter took it), or -errno. */
int cio__sigfd_take(int fd);

/* Done with fd: call before closing it.  A signal routed to fd and not
 * taken goes to another waiter, or stays pending. */
void cio__sigfd_release(int fd);

/* Threads the signal waits run now: the helper (0 or 1; always 0 on
 * Linux).  It takes signals only, and wakes no task but a signal's
 * waiter. */
int cio__sigfd_threads(void);

#endif
