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
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define ENTRIES 4096
#define NBUFS 4096 /* provided buffers (a power of two) */
#define BUF_SIZE 4096
#define GROUP 1
#define MAX_FD 65536
#define NONE (-1)

/* user_data: what completed, the fd, and for a send its buffer. */
enum { ACCEPT = 1, RECV, SEND };
#define UD(kind, fd, bid) ((uint64_t)(kind) | (uint64_t)(uint32_t)(fd) << 8 | (uint64_t)(bid) << 40)
#define UD_KIND(u) ((int)((u) & 0xff))
#define UD_FD(u) ((int)(uint32_t)((u) >> 8))
#define UD_BID(u) ((unsigned)((u) >> 40))

/* Per fd: the other end, and the buffers waiting to be sent to it (one
 * send on a socket at a time, so that bytes leave in the order they
 * came; a queue linked through the buffers). */
struct side {
	int peer;         /* NONE once the other end has gone */
	bool sending;
	int qhead, qtail; /* buffer ids, NONE when empty */
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static unsigned lens[NBUFS];
static int qnext[NBUFS];
static struct side sides[MAX_FD];
static struct sockaddr_in upstream;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static struct io_uring_sqe *sqe(void)
{
	struct io_uring_sqe *s;
	while (!(s = io_uring_get_sqe(&ring)))
		io_uring_submit(&ring);
	return s;
}

static void give_back(unsigned bid)
{
	io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
			      io_uring_buf_ring_mask(NBUFS), 0);
	io_uring_buf_ring_advance(br, 1);
}

static void arm_recv(int fd)
{
	struct io_uring_sqe *s = sqe();
	io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
	s->flags |= IOSQE_BUFFER_SELECT;
	s->buf_group = GROUP;
	io_uring_sqe_set_data64(s, UD(RECV, fd, 0));
}

static void arm_accept(int lfd)
{
	struct io_uring_sqe *s = sqe();
	io_uring_prep_multishot_accept(s, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(s, UD(ACCEPT, lfd, 0));
}

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
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
		perror("uring_proxy: listen");
		return 1;
	}
	struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
	int rc = io_uring_queue_init_params(ENTRIES, &ring, &p);
	if (rc < 0) {
		fprintf(stderr, "uring_proxy: io_uring: %s\n", strerror(-rc));
		return 1;
	}
	size_t brlen = NBUFS * sizeof(struct io_uring_buf);
	br = mmap(NULL, brlen, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	bufs = mmap(NULL, (size_t)NBUFS * BUF_SIZE, PROT_READ | PROT_WRITE,
		    MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br,
				       .ring_entries = NBUFS, .bgid = GROUP};
	if (br == MAP_FAILED || bufs == MAP_FAILED ||
	    (rc = io_uring_register_buf_ring(&ring, &reg, 0)) < 0) {
		fprintf(stderr, "uring_proxy: buffer ring: %s\n", strerror(rc < 0 ? -rc : ENOMEM));
		return 1;
	}
	io_uring_buf_ring_init(br);
	for (unsigned i = 0; i < NBUFS; i++)
		give_back(i);
	arm_accept(lfd);
	printf("uring_proxy: listening on 127.0.0.1:%d, upstream 127.0.0.1:%s\n", port, argv[1]);
	fflush(stdout);

	while (!stop) {
		struct io_uring_cqe *cqe;
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR)
			break;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			n++;
			uint64_t u = io_uring_cqe_get_data64(cqe);
			int fd = UD_FD(u), res = cqe->res;
			bool more = cqe->flags & IORING_CQE_F_MORE;
			switch (UD_KIND(u)) {
			case ACCEPT:
				if (res >= MAX_FD)
					close(res);
				else if (res >= 0)
					pair(res);
				if (!more)
					arm_accept(lfd); /* EMFILE and the like end it */
				break;
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
		io_uring_cq_advance(&ring, n);
	}
	io_uring_queue_exit(&ring);
	close(lfd);
	return 0;
}
