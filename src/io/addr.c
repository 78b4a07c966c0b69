/* addr.c - socket addresses: to and from text ("1.2.3.4:80", "[::1]:80",
 * "unix:/path", "unix:@abstract"), and a socket's own and its peer's. */
#include "coreio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static int parse_port(const char *s, in_port_t *out)
{
	unsigned v = 0;
	size_t n = 0;
	for (; s[n]; n++) {
		if (s[n] < '0' || s[n] > '9' || n == 5)
			return -EINVAL;
		v = v * 10 + (unsigned)(s[n] - '0');
	}
	if (n == 0 || v > 65535)
		return -EINVAL;
	*out = htons((uint16_t)v);
	return 0;
}

static int parse_unix(cio_addr *a, const char *path)
{
	size_t n = strlen(path);
	struct sockaddr_un *un = &a->u.un;
	un->sun_family = AF_UNIX;
	if (path[0] == '@') {
		/* Abstract: a leading NUL, and the length says where it ends. */
		if (n < 2 || n > sizeof un->sun_path)
			return -EINVAL;
		un->sun_path[0] = '\0';
		memcpy(un->sun_path + 1, path + 1, n - 1);
		a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		return 0;
	}
	if (n == 0 || n >= sizeof un->sun_path)
		return -EINVAL;
	memcpy(un->sun_path, path, n + 1);
	a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

int cio_addr_parse(cio_addr *a, const char *text)
{
	char host[INET6_ADDRSTRLEN];
	if (!a || !text)
		return -EINVAL;
	memset(a, 0, sizeof *a);
	if (strncmp(text, "unix:", 5) == 0)
		return parse_unix(a, text + 5);
	const char *colon;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		size_t n = (size_t)(close - text - 1);
		if (n == 0 || n >= sizeof host)
			return -EINVAL;
		memcpy(host, text + 1, n);
		host[n] = '\0';
		a->u.in6.sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, host, &a->u.in6.sin6_addr) != 1 ||
		    parse_port(close + 2, &a->u.in6.sin6_port) < 0)
			return -EINVAL;
		a->len = sizeof a->u.in6;
		return 0;
	}
	colon = strrchr(text, ':');
	if (!colon)
		return -EINVAL;
	size_t n = (size_t)(colon - text);
	if (n == 0 || n >= sizeof host)
		return -EINVAL;
	memcpy(host, text, n);
	host[n] = '\0';
	a->u.in.sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &a->u.in.sin_addr) != 1 ||
	    parse_port(colon + 1, &a->u.in.sin_port) < 0)
		return -EINVAL;
	a->len = sizeof a->u.in;
	return 0;
}

int cio_addr_format(const cio_addr *a, char *buf, size_t cap)
{
	char host[INET6_ADDRSTRLEN];
	int n;
	switch (a->u.sa.sa_family) {
	case AF_INET:
		inet_ntop(AF_INET, &a->u.in.sin_addr, host, sizeof host);
		n = snprintf(buf, cap, "%s:%u", host, ntohs(a->u.in.sin_port));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &a->u.in6.sin6_addr, host, sizeof host);
		n = snprintf(buf, cap, "[%s]:%u", host, ntohs(a->u.in6.sin6_port));
		break;
	case AF_UNIX: {
		size_t off = offsetof(struct sockaddr_un, sun_path);
		size_t plen = a->len > off ? a->len - off : 0;
		const char *p = a->u.un.sun_path;
		if (plen == 0) /* unnamed: a socketpair, or an unbound client */
			n = snprintf(buf, cap, "unix:");
		else if (p[0] == '\0')
			n = snprintf(buf, cap, "unix:@%.*s", (int)(plen - 1), p + 1);
		else
			n = snprintf(buf, cap, "unix:%.*s", (int)strnlen(p, plen), p);
		break;
	}
	default:
		return -EAFNOSUPPORT;
	}
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return n;
}

int cio_local_addr(int fd, cio_addr *a)
{
	a->len = sizeof a->u;
	return getsockname(fd, &a->u.sa, &a->len) < 0 ? -errno : 0;
}

int cio_peer_addr(int fd, cio_addr *a)
{
	a->len = sizeof a->u;
	return getpeername(fd, &a->u.sa, &a->len) < 0 ? -errno : 0;
}
