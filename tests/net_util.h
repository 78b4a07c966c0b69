/* net_util.h - helpers shared by the network tests: a reproducible random
 * stream, a byte pattern with no short period, and small socket helpers. */
#ifndef COREIO_TEST_NET_UTIL_H
#define COREIO_TEST_NET_UTIL_H

#include "check.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

/* A file may pick its own default seed; COREIO_TEST_SEED overrides it
 * (see net_seed_from_env()), and every test prints the seed it ran. */
#ifndef NET_TEST_SEED
#define NET_TEST_SEED 0x9e3779b9u
#endif

/* xorshift32 on a state of the caller's (never 0). */
static inline uint32_t xorshift32(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x ? x : 1;
}

/* Reproducible chunk sizes and choices, from one shared state. */
static uint32_t rng = NET_TEST_SEED;
static inline uint32_t rnd(void)
{
	return xorshift32(&rng);
}

static inline void net_seed_from_env(void)
{
	const char *s = getenv("COREIO_TEST_SEED");
	if (s && *s)
		rng = (uint32_t)strtoul(s, NULL, 0);
	if (!rng)
		rng = 1;
}

/* Byte i of a stream: no short period, so a lost, doubled or shifted
 * chunk never matches by chance. */
static inline uint8_t pat(uint64_t i, uint32_t seed)
{
	uint32_t x = (uint32_t)i * 2654435761u ^ (uint32_t)(i >> 32) ^ seed;
	x ^= x >> 15;
	x *= 0x2c1b3c6du;
	x ^= x >> 12;
	return (uint8_t)x;
}

/* The address fd is bound to, as cio_addr_format() text. */
static inline void local_addr(int fd, char *buf, size_t cap)
{
	cio_addr a;
	a.len = sizeof a.u;
	CHECK_EQ(getsockname(fd, &a.u.sa, &a.len), 0);
	CHECK(cio_addr_format(&a, buf, cap) > 0);
}

/* A connected TCP pair over loopback, made by the calling task:
 * fds[0] the connecting end, fds[1] the accepted one. */
static inline void tcp_pair(int fds[2])
{
	char addr[64];
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	local_addr(lfd, addr, sizeof addr);
	fds[0] = cio_connect(addr, 0);
	CHECK(fds[0] >= 0);
	fds[1] = cio_accept(lfd, NULL);
	CHECK(fds[1] >= 0);
	CHECK_EQ(cio_close(lfd), 0);
}

/* Makes fd's close a reset (RST) rather than an orderly FIN. */
static inline void linger0(int fd)
{
	struct linger l = {1, 0};
	CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
}

/* Whether this machine has an IPv6 loopback to test on. */
static inline bool have_ipv6(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

/* One message across a new stream socketpair, by cio_send() and
 * cio_recv(), then both ends closed. */
static inline void net_pair_roundtrip(const char *msg)
{
	int sp[2];
	char buf[64];
	size_t n = strlen(msg);
	CHECK(n <= sizeof buf);
	CHECK_EQ(cio_socketpair(SOCK_STREAM, sp), 0);
	CHECK_EQ(cio_send(sp[0], msg, n, 0), (ssize_t)n);
	CHECK_EQ(cio_recv(sp[1], buf, sizeof buf, 0), (ssize_t)n);
	CHECK(memcmp(buf, msg, n) == 0);
	CHECK_EQ(cio_close(sp[0]), 0);
	CHECK_EQ(cio_close(sp[1]), 0);
}

#endif
