/* sock.c - sockets and pipes born non-blocking and close-on-exec, with
 * no SIGPIPE on send (see sock.h): the creating calls' two paths. */
#include "sock.h"
#include "fail.h"

#include <sys/ioctl.h>

int cio__fd_setup(int fd, bool nonblock, bool sock)
{
	int one = 1;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
	    (nonblock && ioctl(fd, FIONBIO, &one) < 0))
		return -errno;
#ifdef SO_NOSIGPIPE
	if (sock && setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one) < 0 &&
	    errno != ENOPROTOOPT && errno != EINVAL)
		return -errno;
#else
	(void)sock;
#endif
	return 0;
}

int cio__socket_open(int domain, int type, int protocol)
{
	int e = CIO_FAIL(socket);
	if (e > 0)
		return -e;
#if CIO__LINUX
	int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
	return fd < 0 ? -errno : fd;
#else
	int fd = socket(domain, type, protocol);
	if (fd < 0)
		return -errno;
	int rc = cio__fd_setup(fd, true, true);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
#endif
}

#if !CIO__LINUX
/* cio__fd_setup() on both ends of a new pair; on failure closes both. */
static int pair_setup(int fds[2], bool nonblock, bool sock)
{
	int rc = cio__fd_setup(fds[0], nonblock, sock);
	if (rc == 0)
		rc = cio__fd_setup(fds[1], nonblock, sock);
	if (rc < 0) {
		close(fds[0]);
		close(fds[1]);
	}
	return rc;
}
#endif

int cio__socketpair_open(int domain, int type, int fds[2])
{
	int e = CIO_FAIL(socket);
	if (e > 0)
		return -e;
#if CIO__LINUX
	return socketpair(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0 ? -errno : 0;
#else
	if (socketpair(domain, type, 0, fds) < 0)
		return -errno;
	return pair_setup(fds, true, true);
#endif
}

int cio__pipe_open(int fds[2], bool nonblock)
{
	int e = CIO_FAIL(pipe);
	if (e > 0)
		return -e;
#if CIO__LINUX
	return pipe2(fds, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0)) < 0 ? -errno : 0;
#else
	if (pipe(fds) < 0)
		return -errno;
	return pair_setup(fds, nonblock, false);
#endif
}

int cio__sock_domain(int fd)
{
#ifdef SO_DOMAIN
	int domain;
	socklen_t len = sizeof domain;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return -errno;
	return domain;
#else
	/* macOS: the family of the socket's own address. */
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	return ss.ss_family;
#endif
}
