/* uring_peer.h - what the runtime-free io_uring peers (uring_echo,
 * uring_proxy) share: the ring with its provided buffers, the multishot
 * accept and receive, and the listener.  Each peer is one file that
 * includes this once. */
#ifndef COREIO_BENCH_URING_PEER_H
#define COREIO_BENCH_URING_PEER_H

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define ENTRIES 4096
#ifndef NBUFS
#define NBUFS 4096 /* provided buffers (a power of two) */
#endif
#ifndef BUF_SIZE
#define BUF_SIZE 4096
#endif
#define GROUP 1
#define MAX_FD 65536 /* fds at or above it are closed at once */

/* user_data: what completed, the fd, and for a send its buffer. */
enum { ACCEPT = 1, RECV, SEND };
#define UD(kind, fd, bid) ((uint64_t)(kind) | (uint64_t)(uint32_t)(fd) << 8 | (uint64_t)(bid) << 40)
#define UD_KIND(u) ((int)((u) & 0xff))
#define UD_FD(u) ((int)(uint32_t)((u) >> 8))
#define UD_BID(u) ((unsigned)((u) >> 40))

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
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

/* Signals, a listener on host:port, the ring and its provided buffers,
 * and the listener's multishot accept armed.  Returns the listener, or
 * -1 having said why (as `name`). */
static int peer_start(const char *name, const char *host, int port)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (lfd < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
	    bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
		fprintf(stderr, "%s: listen on %s:%d: %s\n", name, host, port, strerror(errno));
		return -1;
	}
	struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
	int rc = io_uring_queue_init_params(ENTRIES, &ring, &p);
	if (rc < 0) {
		fprintf(stderr, "%s: io_uring: %s\n", name, strerror(-rc));
		return -1;
	}
	size_t brlen = NBUFS * sizeof(struct io_uring_buf);
	br = mmap(NULL, brlen, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	bufs = mmap(NULL, (size_t)NBUFS * BUF_SIZE, PROT_READ | PROT_WRITE,
		    MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br,
				       .ring_entries = NBUFS, .bgid = GROUP};
	if (br == MAP_FAILED || bufs == MAP_FAILED ||
	    (rc = io_uring_register_buf_ring(&ring, &reg, 0)) < 0) {
		fprintf(stderr, "%s: buffer ring: %s\n", name, strerror(rc < 0 ? -rc : ENOMEM));
		return -1;
	}
	io_uring_buf_ring_init(br);
	for (unsigned i = 0; i < NBUFS; i++)
		give_back(i);
	arm_accept(lfd);
	return lfd;
}

/* The loop, until SIGINT or SIGTERM: a new connection goes to
 * accepted() (the multishot accept is armed again when it ends), every
 * other completion to completed(); then the ring and lfd close. */
static void peer_loop(int lfd, void (*accepted)(int fd),
		      void (*completed)(const struct io_uring_cqe *cqe))
{
	while (!stop) {
		struct io_uring_cqe *cqe;
		int rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR)
			break;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			n++;
			if (UD_KIND(io_uring_cqe_get_data64(cqe)) != ACCEPT) {
				completed(cqe);
			} else {
				if (cqe->res >= MAX_FD)
					close(cqe->res);
				else if (cqe->res >= 0)
					accepted(cqe->res);
				if (!(cqe->flags & IORING_CQE_F_MORE))
					arm_accept(lfd); /* EMFILE and the like end it */
			}
		}
		io_uring_cq_advance(&ring, n);
	}
	io_uring_queue_exit(&ring);
	close(lfd);
}

#endif
