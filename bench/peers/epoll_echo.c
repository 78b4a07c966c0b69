/* epoll_echo.c - the peer coreio's echo server is measured against: a raw,
 * single-threaded, edge-triggered epoll echo server in plain C, written
 * the way a careful hand-rolled server would be, with no runtime at all.
 *
 *   epoll_echo [PORT [HOST]]        default 7000 on 127.0.0.1
 *
 * Every socket is non-blocking and registered once, edge-triggered, for
 * both directions.  Data read is written straight back; what the kernel
 * does not take is kept in the connection's buffer, reading stops until
 * EPOLLOUT drains it (back-pressure), and then reading resumes.  SIGINT or
 * SIGTERM stops it cleanly (exit 0). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define BUF_SIZE (16 << 10)

struct conn {
	int fd;
	size_t off, len; /* pending bytes are buf[off, off + len) */
	bool in_ready;   /* input may remain unread (we stopped early) */
	char buf[BUF_SIZE];
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void conn_close(struct conn *c)
{
	close(c->fd); /* also removes it from the epoll set */
	free(c);
}

/* Writes out what is pending.  Returns 1 when drained, 0 when the socket
 * is full (EPOLLOUT will say when to go on), -1 when the connection is
 * dead. */
static int flush(struct conn *c)
{
	while (c->len) {
		ssize_t n = send(c->fd, c->buf + c->off, c->len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		c->off += (size_t)n;
		c->len -= (size_t)n;
	}
	c->off = 0;
	return 1;
}

/* Reads and echoes until the socket is drained or the peer stops reading.
 * Returns -1 when the connection is finished. */
static int echo(struct conn *c)
{
	char in[BUF_SIZE];
	while (c->in_ready && c->len == 0) {
		ssize_t n = recv(c->fd, in, sizeof in, 0);
		if (n == 0)
			return -1; /* the peer closed */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -1;
			c->in_ready = false;
			break;
		}
		/* A short read drained the socket: the next byte to arrive
		 * raises a new edge, so skip the read that would only say
		 * EAGAIN (nginx's ngx_unix_recv does the same). */
		if ((size_t)n < sizeof in)
			c->in_ready = false;
		ssize_t w = send(c->fd, in, (size_t)n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN && errno != EINTR)
				return -1;
			w = 0;
		}
		if (w < n) {
			/* Keep the rest; stop reading until it is out. */
			memcpy(c->buf, in + w, (size_t)(n - w));
			c->off = 0;
			c->len = (size_t)(n - w);
		}
	}
	return 0;
}

static void accept_all(int lfd, int ep)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				perror("epoll_echo: accept4");
			/* EMFILE and the like: the connection stays queued;
			 * the next edge (a new connection) retries. */
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = malloc(sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->off = c->len = 0;
		c->in_ready = true; /* data may have come with the handshake */
		struct epoll_event ev = {
			.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
			.data.ptr = c,
		};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			perror("epoll_echo: epoll_ctl");
			conn_close(c);
			continue;
		}
		if (echo(c) < 0)
			conn_close(c);
	}
}

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 7000;
	const char *host = argc > 2 ? argv[2] : "127.0.0.1";
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "usage: %s [PORT [IPV4-HOST]]\n", argv[0]);
		return 2;
	}
	struct sigaction sig = {.sa_handler = on_signal};
	sigaction(SIGINT, &sig, NULL);
	sigaction(SIGTERM, &sig, NULL);
	signal(SIGPIPE, SIG_IGN);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, SOMAXCONN) < 0) {
		perror("epoll_echo: listen");
		return 1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	/* The listener has data.ptr NULL, which no connection has. */
	struct epoll_event lev = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
		perror("epoll_echo: epoll");
		return 1;
	}
	printf("epoll_echo: listening on %s:%d (pid %d)\n", host, port, (int)getpid());
	fflush(stdout);

	struct epoll_event ev[MAX_EVENTS];
	while (!stop) {
		int n = epoll_wait(ep, ev, MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll_echo: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = ev[i].data.ptr;
			uint32_t e = ev[i].events;
			if (!c) {
				accept_all(lfd, ep);
				continue;
			}
			if (e & (EPOLLERR | EPOLLHUP)) {
				conn_close(c);
				continue;
			}
			/* Pending output first: input waits behind it. */
			if ((e & EPOLLOUT) && c->len && flush(c) < 0) {
				conn_close(c);
				continue;
			}
			if (e & (EPOLLIN | EPOLLRDHUP))
				c->in_ready = true;
			if (echo(c) < 0)
				conn_close(c);
		}
	}
	/* Open connections close with the process. */
	close(ep);
	close(lfd);
	return 0;
}
