/* net.c - sockets, pipes and stream transfers for tasks.  Each blocking
 * call describes its request (struct cio__io) and hands it to the driver;
 * nothing here knows which backend runs. */
#include "io.h"
#include "../driver/bgsend.h"
#include "../platform/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EMFILE_PAUSE (10 * CIO_MS)
#define MAX_PASSED_FDS 253 /* SCM_MAX_FD - 1: the kernel takes 253 */

/* --- the layer's per-runtime state --------------------------------------- */

int cio__io_init(struct cio__rt *rt, const cio_config *cfg)
{
	(void)cfg;
	rt->io = cio__calloc(1, sizeof *rt->io);
	return rt->io ? 0 : -ENOMEM;
}

void cio__io_fini(struct cio__rt *rt)
{
	if (!rt->io)
		return;
	cio__pipes_fini(rt->io);
	free(rt->io->listeners);
	free(rt->io);
	rt->io = NULL;
}

/* Room for one more listener, made before the socket is: a listener no
 * drain could stop is not handed out, and a failure leaves nothing
 * behind (no socket, no Unix socket file).  Returns 0 or -ENOMEM. */
static int listener_reserve(struct cio__io_rt *io)
{
	if (io->nlisteners < io->caplisteners)
		return 0;
	size_t cap = io->caplisteners ? 2 * io->caplisteners : 4;
	int *v = cio__realloc(io->listeners, cap * sizeof *v);
	if (!v)
		return -ENOMEM;
	io->listeners = v;
	io->caplisteners = cap;
	return 0;
}

/* Records a listener (room reserved) for the drain to shut down, or shuts
 * it down now when the drain has begun: a core that listens late must not
 * accept for ever after it. */
static void listener_add(struct cio__io_rt *io, int fd)
{
	if (io->listeners_shut)
		shutdown(fd, SHUT_RDWR);
	else
		io->listeners[io->nlisteners++] = fd;
}

static void listener_forget(struct cio__io_rt *io, int fd)
{
	for (size_t i = 0; i < io->nlisteners; i++)
		if (io->listeners[i] == fd) {
			io->listeners[i] = io->listeners[--io->nlisteners];
			return;
		}
}

void cio__io_shut_listeners(struct cio__rt *rt)
{
	struct cio__io_rt *io = rt->io;
	io->listeners_shut = true;
	for (size_t i = 0; i < io->nlisteners; i++)
		shutdown(io->listeners[i], SHUT_RDWR);
}

/* --- sockets and pipes ---------------------------------------------------- */

/* A new fd from the kernel: the driver must not trust what it knew of an
 * earlier file with this number. */
static int fresh(int fd)
{
	struct cio__rt *rt = cio__rt_cur;
	if (fd >= 0 && rt && rt->driver->ops->fd_new)
		rt->driver->ops->fd_new(rt->driver, fd);
	if (fd >= 0 && rt && rt->driver->nbgfds && cio__bg_known(rt->driver, fd))
		cio__bg_detach(rt->driver, fd);
	return fd;
}

int cio_fd_adopt(int fd)
{
	fresh(fd);
	return 0;
}

int cio_socket(int domain, int type, int protocol)
{
	int fd = cio__socket_open(domain, type, protocol);
	return fd < 0 ? fd : fresh(fd);
}

int cio_socketpair(int type, int fds[2])
{
	int rc = cio__socketpair_open(AF_UNIX, type, fds);
	if (rc < 0)
		return rc;
	fresh(fds[0]);
	fresh(fds[1]);
	return 0;
}

int cio_pipe(int fds[2])
{
	int rc = cio__pipe_open(fds, true);
	if (rc < 0)
		return rc;
	fresh(fds[0]);
	fresh(fds[1]);
	return 0;
}

int cio_close(int fd)
{
	struct cio__rt *rt = cio__rt_cur;
	if (fd < 0)
		return -EBADF;
	if (rt && rt->io->nlisteners)
		listener_forget(rt->io, fd);
	if (rt && rt->driver->nbgfds && cio__bg_known(rt->driver, fd))
		cio__bg_detach(rt->driver, fd); /* a send on its way goes on */
	if (!rt || !rt->current)
		return close(fd) < 0 && errno != EINTR ? -errno : 0;
	return rt->driver->ops->close_fd(rt->driver, fd);
}

static int setopt(int fd, int level, int name, int value)
{
	return setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

int cio_listen(const char *text, const cio_listen_opts *opts)
{
	static const cio_listen_opts none;
	cio_addr a;
	if (!opts)
		opts = &none;
	int rc = cio_addr_parse(&a, text);
	if (rc < 0)
		return rc;
	int type = opts->type ? opts->type : SOCK_STREAM;
	bool drained = type != SOCK_DGRAM && cio__rt_cur; /* a drain shuts it down */
	if (drained && (rc = listener_reserve(cio__rt_cur->io)) < 0)
		return rc;
	int fd = cio_socket(a.u.sa.sa_family, type, 0);
	if (fd < 0)
		return fd;
	bool ip = a.u.sa.sa_family != AF_UNIX;
	if ((ip && (rc = setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1)) < 0) ||
	    (opts->reuseport && (rc = setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1)) < 0))
		goto fail;
	if (bind(fd, &a.u.sa, a.len) < 0 ||
	    (type != SOCK_DGRAM &&
	     listen(fd, opts->backlog > 0 ? opts->backlog : SOMAXCONN) < 0)) {
		rc = -errno;
		goto fail;
	}
	if (drained)
		listener_add(cio__rt_cur->io, fd);
	return fd;
fail:
	close(fd);
	return rc;
}

int cio_udp_bind(const char *text)
{
	return cio_listen(text, &(cio_listen_opts){.type = SOCK_DGRAM});
}

int cio_accept(int fd, cio_addr *peer)
{
	return cio__accept(fd, peer, 0);
}

int cio__accept(int fd, cio_addr *peer, int flags)
{
	cio_addr tmp;
	cio_addr *a = peer ? peer : &tmp;
	a->len = sizeof a->u;
	struct cio__io io = {
		.kind = CIO__IO_ACCEPT, .fd = fd, .flags = flags, .p.addr = &a->u.sa,
		.n.addrlen = &a->len,
	};
	if (flags & CIO__ACCEPT_MULTI)
		io.p.addr = NULL, io.n.addrlen = NULL;
	ssize_t rc = cio__io("cio_accept", &io);
	cio_stats *st = &cio__rt_cur->stats;
	if (rc >= 0) {
		st->accepted++;
		return fresh((int)rc);
	}
	if (rc == -EINVAL && cio__rt_cur->io->listeners_shut)
		return -ESHUTDOWN; /* the drain shut the listener down */
	/* Interruptions were the caller's doing: not refusals. */
	if (rc != -ECANCELED && rc != -ETIMEDOUT)
		st->accept_errors++;
	if (rc == -EMFILE || rc == -ENFILE) {
		/* The connection stays queued.  Pause, so that a loop that
		 * retries at once does not spin while fds are short. */
		int slept = cio_sleep(EMFILE_PAUSE);
		if (slept < 0)
			return slept;
	}
	return (int)rc;
}

int cio_connect_addr(int fd, const cio_addr *a)
{
	cio__self_or_die("cio_connect_addr");
	struct cio__io io = {
		.kind = CIO__IO_CONNECT, .fd = fd,
		.p.addr = (struct sockaddr *)&a->u.sa, .n.alen = a->len,
	};
	int64_t pause = CIO_MS;
	for (;;) {
		int rc = (int)cio__io("cio_connect", &io);
		if (rc != -EAGAIN || a->u.sa.sa_family != AF_UNIX)
			return rc;
		/* A Unix listener's backlog is full.  Nothing the client can
		 * poll says when it has room: retry, backing off to 64 ms,
		 * until the deadline or a cancel ends the sleep. */
		if ((rc = cio_sleep(pause)) < 0)
			return rc;
		if (pause < 64 * CIO_MS)
			pause *= 2;
	}
}

int cio_connect(const char *text, int type)
{
	cio_addr a;
	cio__self_or_die("cio_connect");
	int rc = cio_addr_parse(&a, text);
	if (rc < 0)
		return rc;
	int fd = cio_socket(a.u.sa.sa_family, type ? type : SOCK_STREAM, 0);
	if (fd < 0)
		return fd;
	rc = cio_connect_addr(fd, &a);
	if (rc < 0) {
		cio_close(fd);
		return rc;
	}
	return fd;
}

ssize_t cio_recv(int fd, void *buf, size_t len, int flags)
{
	struct cio__io io = {
		.kind = CIO__IO_RECV, .fd = fd, .flags = flags, .p.buf = buf, .n.len = len,
	};
	return cio__io("cio_recv", &io);
}

ssize_t cio_send(int fd, const void *buf, size_t len, int flags)
{
	struct cio__io io = {
		.kind = CIO__IO_SEND, .fd = fd, .flags = flags, .p.cbuf = buf, .n.len = len,
	};
	return cio__io("cio_send", &io);
}

ssize_t cio_send_all(int fd, const void *buf, size_t len, int flags, size_t *moved)
{
	cio__self_or_die("cio_send_all");
	size_t done = 0;
	ssize_t rc = 0;
	while (done < len) {
		rc = cio_send(fd, (const char *)buf + done, len - done, flags);
		if (rc < 0)
			break;
		done += (size_t)rc;
	}
	if (moved)
		*moved = done;
	return rc < 0 ? rc : (ssize_t)len;
}

ssize_t cio_recv_exact(int fd, void *buf, size_t len, int flags, size_t *moved)
{
	cio__self_or_die("cio_recv_exact");
	size_t done = 0;
	ssize_t rc = 0;
	while (done < len) {
		rc = cio_recv(fd, (char *)buf + done, len - done, flags);
		if (rc == 0)
			rc = -EPIPE;
		if (rc < 0)
			break;
		done += (size_t)rc;
	}
	if (moved)
		*moved = done;
	return rc < 0 ? rc : (ssize_t)len;
}

ssize_t cio_read(int fd, void *buf, size_t len)
{
	struct cio__io io = {
		.kind = CIO__IO_READ, .fd = fd, .p.buf = buf, .n.len = len, .off = -1,
	};
	return cio__io("cio_read", &io);
}

ssize_t cio_write(int fd, const void *buf, size_t len)
{
	struct cio__io io = {
		.kind = CIO__IO_WRITE, .fd = fd, .p.cbuf = buf, .n.len = len, .off = -1,
	};
	return cio__io("cio_write", &io);
}

ssize_t cio_readv(int fd, const struct iovec *iov, int iovcnt)
{
	struct cio__io io = {
		.kind = CIO__IO_READV, .fd = fd, .p.iov = iov, .n.iovcnt = iovcnt, .off = -1,
	};
	return cio__io("cio_readv", &io);
}

ssize_t cio_writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct cio__io io = {
		.kind = CIO__IO_WRITEV, .fd = fd, .p.iov = iov, .n.iovcnt = iovcnt, .off = -1,
	};
	return cio__io("cio_writev", &io);
}

ssize_t cio_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct cio__io io = {
		.kind = CIO__IO_RECVMSG, .fd = fd, .flags = flags, .p.msg = msg,
	};
	return cio__io("cio_recvmsg", &io);
}

ssize_t cio_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct cio__io io = {
		.kind = CIO__IO_SENDMSG, .fd = fd, .flags = flags,
		.p.msg = (struct msghdr *)msg,
	};
	return cio__io("cio_sendmsg", &io);
}

ssize_t cio_sendto(int fd, const void *buf, size_t len, int flags, const cio_addr *to)
{
	cio__self_or_die("cio_sendto");
	struct iovec iov = {(void *)buf, len};
	struct msghdr m = {
		.msg_name = to ? (void *)&to->u : NULL,
		.msg_namelen = to ? to->len : 0,
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	return cio_sendmsg(fd, &m, flags);
}

ssize_t cio_recvfrom(int fd, void *buf, size_t len, int flags, cio_addr *from)
{
	cio__self_or_die("cio_recvfrom");
	struct iovec iov = {buf, len};
	struct msghdr m = {
		.msg_name = from ? &from->u : NULL,
		.msg_namelen = from ? sizeof from->u : 0,
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	ssize_t rc = cio_recvmsg(fd, &m, flags);
	if (rc >= 0 && from)
		from->len = m.msg_namelen;
	return rc;
}

ssize_t cio_send_fds(int fd, const void *buf, size_t len, const int *fds, size_t nfds)
{
	cio__self_or_die("cio_send_fds");
	union {
		char buf[CMSG_SPACE(MAX_PASSED_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	if (len == 0 || nfds == 0 || nfds > MAX_PASSED_FDS)
		return -EINVAL;
	struct iovec iov = {(void *)buf, len};
	struct msghdr m = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = CMSG_SPACE(nfds * sizeof(int)),
	};
	memset(ctl.buf, 0, m.msg_controllen); /* no stack bytes in the padding */
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	return cio_sendmsg(fd, &m, 0);
}

ssize_t cio_recv_fds(int fd, void *buf, size_t len, int *fds, size_t *nfds)
{
	cio__self_or_die("cio_recv_fds");
	union {
		char buf[CMSG_SPACE(MAX_PASSED_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	size_t room = *nfds < MAX_PASSED_FDS ? *nfds : MAX_PASSED_FDS;
	struct iovec iov = {buf, len};
	/* Room for all the kernel may pass, whatever the caller's: the
	 * extra fds are then closed here, not left to truncation (which
	 * some emulators get wrong, leaking them). */
	struct msghdr m = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof ctl.buf,
	};
	*nfds = 0;
	ssize_t rc = cio_recvmsg(fd, &m, CIO__MSG_CMSG_CLOEXEC);
	if (rc < 0)
		return rc;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const unsigned char *data = CMSG_DATA(c);
		for (size_t i = 0; i < n; i++) {
			int got;
			memcpy(&got, data + i * sizeof got, sizeof got);
			if (*nfds < room)
				fds[(*nfds)++] = fresh((cio__fd_received(got), got));
			else
				close(got); /* no room: never leak it */
		}
	}
	return rc;
}

int cio_shutdown(int fd, int how)
{
	struct cio__rt *rt = cio__rt_cur;
	int rc = 0;
	/* Bytes on their way out (cio_send_buf_nowait()) leave first. */
	if (how != SHUT_RD && rt && rt->current && rt->driver->nbgfds &&
	    cio__bg_known(rt->driver, fd))
		rc = cio__bg_settle(rt->driver, rt->current, fd);
	if (rc == -EBADF)
		return rc; /* closed meanwhile: the number is not ours now */
	return shutdown(fd, how) < 0 ? -errno : rc;
}

static int wait_events(const char *call, int fd, int events)
{
	struct cio__io io = {.kind = CIO__IO_POLL, .fd = fd, .flags = events};
	ssize_t rc = cio__io(call, &io);
	if (rc > 0 && (rc & POLLNVAL))
		return -EBADF;
	return (int)rc;
}

int cio_wait_readable(int fd)
{
	return wait_events("cio_wait_readable", fd, POLLIN);
}

int cio_wait_writable(int fd)
{
	return wait_events("cio_wait_writable", fd, POLLOUT);
}

int cio_tcp_nodelay(int fd, bool on)
{
	return setopt(fd, IPPROTO_TCP, TCP_NODELAY, on);
}

int cio_tcp_keepalive(int fd, int idle_s, int interval_s, int count)
{
	int rc;
	if (idle_s <= 0)
		return setopt(fd, SOL_SOCKET, SO_KEEPALIVE, 0);
	if ((rc = setopt(fd, IPPROTO_TCP, CIO__TCP_KEEPIDLE, idle_s)) < 0 ||
	    (interval_s > 0 && (rc = setopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, interval_s)) < 0) ||
	    (count > 0 && (rc = setopt(fd, IPPROTO_TCP, TCP_KEEPCNT, count)) < 0))
		return rc;
	return setopt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
}

int cio_sock_buffers(int fd, int rcvbuf, int sndbuf)
{
	int rc;
	if (rcvbuf > 0 && (rc = setopt(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf)) < 0)
		return rc;
	if (sndbuf > 0 && (rc = setopt(fd, SOL_SOCKET, SO_SNDBUF, sndbuf)) < 0)
		return rc;
	return 0;
}
