/* uring_echo.c - a peer for coreio's echo server on io_uring: a raw,
 * single-threaded io_uring echo server in plain C with no runtime, written
 * as the kernel's newest interfaces allow: a multishot accept, a multishot
 * receive per connection into a ring of provided buffers, and each buffer
 * sent straight back and returned to the ring when the send completes.
 * A waiting connection holds no buffer, and no stack: the floor that
 * coreio's lent buffers are measured against.
 *
 * With --http it is the same loop as an HTTP/1.1 server instead: it
 * answers every request head it receives (counted by its blank line, no
 * parsing) with one fixed 14-byte response, and keeps the connection
 * alive.  It does the least any keep-alive HTTP server must: the floor
 * that examples/http_hello and nginx are measured against.
 *
 *   uring_echo [--http] [PORT [HOST]]        default 7000 on 127.0.0.1
 *
 * SIGINT or SIGTERM stops it cleanly (exit 0). */
#define _GNU_SOURCE
#include "uring_peer.h"

#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#define NO_BUF 0xffffu      /* a send from static memory */

/* The --http reply, BATCH of them back to back, and per fd how much of
 * "\r\n\r\n" the bytes so far end with. */
#define REPLY "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n"
#define BATCH 64
static char replies[BATCH * (sizeof REPLY - 1)];
static unsigned char head_end[MAX_FD];
static bool http;

/* Request heads that end in these bytes of fd's stream. */
static unsigned count_heads(int fd, const char *p, size_t n)
{
	static const char blank[] = "\r\n\r\n";
	unsigned heads = 0, m = head_end[fd];
	for (size_t i = 0; i < n; i++) {
		if (p[i] == blank[m])
			m++;
		else
			m = p[i] == '\r';
		if (m == 4) {
			heads++;
			m = 0;
		}
	}
	head_end[fd] = (unsigned char)m;
	return heads;
}

static void send_replies(int fd, unsigned k)
{
	while (k > 0) {
		unsigned now = k < BATCH ? k : BATCH;
		struct io_uring_sqe *s = sqe();
		io_uring_prep_send(s, fd, replies, now * (sizeof REPLY - 1), MSG_WAITALL | MSG_NOSIGNAL);
		io_uring_sqe_set_data64(s, UD(SEND, fd, NO_BUF));
		k -= now;
	}
}

/* A new client: its receive armed. */
static void accepted(int fd)
{
	int one = 1;
	head_end[fd] = 0;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	arm_recv(fd);
}

/* A receive's or a send's completion. */
static void completed(const struct io_uring_cqe *cqe)
{
	uint64_t u = io_uring_cqe_get_data64(cqe);
	int fd = UD_FD(u), res = cqe->res;
	bool more = cqe->flags & IORING_CQE_F_MORE;
	switch (UD_KIND(u)) {
	case RECV:
		if (res > 0 && http) {
			unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
			send_replies(fd, count_heads(fd, bufs + (size_t)bid * BUF_SIZE, (size_t)res));
			give_back(bid);
			if (!more)
				arm_recv(fd);
		} else if (res > 0) {
			unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
			struct io_uring_sqe *s = sqe();
			/* MSG_WAITALL: the kernel sends it whole. */
			io_uring_prep_send(s, fd, bufs + (size_t)bid * BUF_SIZE, (size_t)res,
					   MSG_WAITALL | MSG_NOSIGNAL);
			io_uring_sqe_set_data64(s, UD(SEND, fd, bid));
			if (!more)
				arm_recv(fd);
		} else if (res == -ENOBUFS) {
			arm_recv(fd); /* buffers come back as sends end */
		} else if (!more) {
			close(fd); /* end of stream, or an error */
		}
		break;
	case SEND:
		if (UD_BID(u) != NO_BUF)
			give_back(UD_BID(u));
		break;
	}
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--http") == 0) {
		http = true;
		argc--;
		argv++;
		for (int i = 0; i < BATCH; i++)
			memcpy(replies + (size_t)i * (sizeof REPLY - 1), REPLY, sizeof REPLY - 1);
	}
	int port = argc > 1 ? atoi(argv[1]) : 7000;
	const char *host = argc > 2 ? argv[2] : "127.0.0.1";
	int lfd = peer_start("uring_echo", host, port);
	if (lfd < 0)
		return 1;
	printf("uring_echo: listening on %s:%d, backend io_uring%s\n", host, port,
	       http ? ", answering HTTP" : "");
	fflush(stdout);

	peer_loop(lfd, accepted, completed);
	return 0;
}
