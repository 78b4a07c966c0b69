/* sock.h - sockets and pipes the runtime can park on: non-blocking and
 * close-on-exec from birth, and no SIGPIPE from a send to a gone peer.
 *
 * Linux: the flags go into the creating call (SOCK_NONBLOCK |
 * SOCK_CLOEXEC, accept4(), pipe2()), and sends carry MSG_NOSIGNAL.
 * POSIX: the plain call, then FIONBIO and FD_CLOEXEC on the new fds (a
 * fork() in another thread between the two may inherit the fd: the same
 * window libuv accepts there).  Sends carry MSG_NOSIGNAL where the system
 * has it (the BSDs, and Linux under COREIO_PORTABLE); on macOS, which has
 * not, each socket gets SO_NOSIGPIPE when made; and the driver ignores
 * SIGPIPE while it is at its default, which covers write() to a broken
 * pipe or socket everywhere.
 *
 * The calls on an I/O path are inline: on Linux each is the one system
 * call it replaces. */
#ifndef CIO_PLATFORM_SOCK_H
#define CIO_PLATFORM_SOCK_H

#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef MSG_NOSIGNAL
#define CIO__MSG_NOSIGNAL MSG_NOSIGNAL
#else
#define CIO__MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE on each socket instead */
#endif

/* Received fds (SCM_RIGHTS) close-on-exec: a recvmsg() flag where there
 * is one; else cio__fd_received() sets it on each fd. */
#if CIO__LINUX
#define CIO__MSG_CMSG_CLOEXEC MSG_CMSG_CLOEXEC
#else
#define CIO__MSG_CMSG_CLOEXEC 0
#endif

/* POSIX path: makes a new fd non-blocking (if asked), close-on-exec, and,
 * for a socket where the option exists, free of SIGPIPE.  Returns 0 or
 * -errno.  sock.c */
int cio__fd_setup(int fd, bool nonblock, bool sock);

/* socket(2) / socketpair(2), non-blocking and close-on-exec.  Returns
 * the fd (0 for a pair) or -errno. */
int cio__socket_open(int domain, int type, int protocol);
int cio__socketpair_open(int domain, int type, int fds[2]);

/* pipe(2): both ends close-on-exec, and non-blocking if asked.  Returns
 * 0 or -errno. */
int cio__pipe_open(int fds[2], bool nonblock);

/* accept(2) whose new socket is non-blocking and close-on-exec.  Returns
 * the fd, or -1 with errno set (as the system call does). */
static inline int cio__accept_nb(int fd, struct sockaddr *addr, socklen_t *len)
{
#if CIO__LINUX
	return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
	int s = accept(fd, addr, len);
	if (s >= 0) {
		int rc = cio__fd_setup(s, true, true);
		if (rc < 0) {
			close(s);
			errno = -rc;
			return -1;
		}
	}
	return s;
#endif
}

/* An fd that came in an SCM_RIGHTS message received with
 * CIO__MSG_CMSG_CLOEXEC: close-on-exec, as the Linux flag makes it. */
static inline void cio__fd_received(int fd)
{
#if !CIO__LINUX
	fcntl(fd, F_SETFD, FD_CLOEXEC);
#else
	(void)fd;
#endif
}

/* The address family of socket fd (AF_INET, AF_UNIX...), or -errno. */
int cio__sock_domain(int fd);

/* The TCP option for the idle time before keepalive probes: Linux and
 * the BSDs call it TCP_KEEPIDLE, macOS TCP_KEEPALIVE. */
#if defined(TCP_KEEPIDLE) || !defined(TCP_KEEPALIVE)
#define CIO__TCP_KEEPIDLE TCP_KEEPIDLE
#else
#define CIO__TCP_KEEPIDLE TCP_KEEPALIVE
#endif

#endif
