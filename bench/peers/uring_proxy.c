/* uring_proxy.c - the floor of an L7 load balancer on io_uring: a raw,
 * single-threaded TCP relay in plain C with no runtime and no HTTP.  Each
 * client connection gets a connection of its own to the one upstream,
 * made when the client is accepted; whatever arrives on either side (a
 * multishot receive into a ring of provided buffers) is sent on to the
 * other, in order, and the buffer goes back to the ring when the send
 * completes.  It parses nothing, adds no header and never pools: the
 * least any proxy in front of one upstream must do per request (two
 * receives and two sends), which bench/lb.sh measures beside http_lb,
 * nginx and HAProxy.
 *
 *   uring_proxy UPSTREAM_PORT PORT        both on 127.0.0.1
 *
 * SIGINT or SIGTERM stops it cleanly (exit 0). */
#define _GNU_SOURCE
/* A 16 KiB response with its head in one buffer: one receive, one send,
 * as a proxy with buffers that large would do. */
#define NBUFS 1024
#define BUF_SIZE (32 << 10)
#include "uring_peer.h"

#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#define NONE (-1)

/* Per fd: the other end, and the buffers waiting to be sent to it (one
 * send on a socket at a time, so that bytes leave in the order they
 * came; a queue linked through the buffers). */
struct side {
	int peer;         /* NONE once the other end has gone */
	bool sending;
	int qhead, qtail; /* buffer ids, NONE when empty */
};

static unsigned lens[NBUFS];
static int qnext[NBUFS];
static struct side sides[MAX_FD];
static struct sockaddr_in upstream;
/* Sends the head of fd's queue, if no send is on its way. */
static void pump(int fd)
{
	struct side *sd = &sides[fd];
	if (sd->sending || sd->qhead == NONE)
		return;
	int bid = sd->qhead;
	if ((sd->qhead = qnext[bid]) == NONE)
		sd->qtail = NONE;
	struct io_uring_sqe *s = sqe();
	/* MSG_WAITALL: the kernel sends it whole. */
	io_uring_prep_send(s, fd, bufs + (size_t)bid * BUF_SIZE, lens[bid], MSG_WAITALL | MSG_NOSIGNAL);
	io_uring_sqe_set_data64(s, UD(SEND, fd, bid));
	sd->sending = true;
}

static void enqueue(int fd, int bid, unsigned len)
{
	struct side *sd = &sides[fd];
	lens[bid] = len;
	qnext[bid] = NONE;
	if (sd->qtail == NONE)
		sd->qhead = bid;
	else
		qnext[sd->qtail] = bid;
	sd->qtail = bid;
	pump(fd);
}

/* fd's bytes end (end of stream or an error): the other end is shut
 * down, so that its receive ends too and closes it. */
static void side_end(int fd)
{
	struct side *sd = &sides[fd];
	if (sd->peer != NONE) {
		shutdown(sd->peer, SHUT_RDWR);
		sides[sd->peer].peer = NONE;
	}
	for (int bid = sd->qhead; bid != NONE; bid = qnext[bid])
		give_back((unsigned)bid);
	*sd = (struct side){.peer = NONE, .qhead = NONE, .qtail = NONE};
	close(fd);
}

/* A new client: its upstream connection, made at once (blocking: the
 * runs this measures open their connections before they count). */
static void pair(int client)
{
	int one = 1, up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (up < 0 || up >= MAX_FD || connect(up, (struct sockaddr *)&upstream, sizeof upstream) < 0) {
		if (up >= 0)
			close(up);
		close(client);
		return;
	}
	setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	sides[client] = (struct side){.peer = up, .qhead = NONE, .qtail = NONE};
	sides[up] = (struct side){.peer = client, .qhead = NONE, .qtail = NONE};
	arm_recv(client);
	arm_recv(up);
}

/* A receive's or a send's completion. */
static void completed(const struct io_uring_cqe *cqe)
{
	uint64_t u = io_uring_cqe_get_data64(cqe);
	int fd = UD_FD(u), res = cqe->res;
	bool more = cqe->flags & IORING_CQE_F_MORE;
	switch (UD_KIND(u)) {
	case RECV:
		if (res > 0) {
			int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
			if (sides[fd].peer != NONE)
				enqueue(sides[fd].peer, bid, (unsigned)res);
			else
				give_back((unsigned)bid);
			if (!more)
				arm_recv(fd);
		} else if (res == -ENOBUFS) {
			arm_recv(fd); /* buffers come back as sends end */
		} else if (!more) {
			side_end(fd); /* end of stream, or an error */
		}
		break;
	case SEND:
		give_back(UD_BID(u));
		if (sides[fd].sending) {
			sides[fd].sending = false;
			if (res < 0)
				shutdown(fd, SHUT_RDWR); /* its receive ends it */
			else
				pump(fd);
		}
		break;
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: uring_proxy UPSTREAM_PORT PORT\n");
		return 2;
	}
	upstream = (struct sockaddr_in){.sin_family = AF_INET,
					.sin_port = htons((uint16_t)atoi(argv[1])),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int port = atoi(argv[2]);
	int lfd = peer_start("uring_proxy", "127.0.0.1", port);
	if (lfd < 0)
		return 1;
	printf("uring_proxy: listening on 127.0.0.1:%d, upstream 127.0.0.1:%s\n", port, argv[1]);
	fflush(stdout);

	peer_loop(lfd, pair, completed);
	return 0;
}
