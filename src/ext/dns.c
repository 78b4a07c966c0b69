/* dns.c - names to addresses inside the runtime: cio_resolve() on c-ares
 * with a per-core cache of its answers, and cio_dial(), which resolves a
 * host and connects to it as Happy Eyeballs v2 (RFC 8305) says.  Built
 * without c-ares, cio_dial() resolves with cio_getaddrinfo() on the
 * blocking pool and cio_resolve() says -ENOTSUP.
 *
 * Each lookup has a c-ares channel of its own, made and destroyed by the
 * call: a channel shared by the tasks of a core would need one task to
 * drive it and hand answers out; a channel per call costs the reading of
 * resolv.conf (the cache spares most lookups that), and no task can ever
 * take, or wait behind, another's answer. */
#include "coreio.h"
#include "../core/rt.h"
#include "../platform/fail.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef COREIO_HAVE_CARES
#include <ares.h>
#include <poll.h>
#include <pthread.h>
#endif

#define DEFAULT_ATTEMPT_DELAY (250 * CIO_MS)
#define MIN_ATTEMPT_DELAY (10 * CIO_MS)

void cio_addrs_free(cio_addr *addrs)
{
	free(addrs);
}

#ifdef COREIO_HAVE_CARES

/* The port of `service`, in network order: a number, or a name of the
 * services database (looked up with getaddrinfo(), which never asks DNS
 * for a NULL host, and is thread-safe where getservbyname() is not). */
static int service_port(const char *service, in_port_t *port)
{
	*port = 0;
	if (!service || !*service)
		return 0;
	if (service[0] >= '0' && service[0] <= '9') {
		char *end;
		unsigned long v = strtoul(service, &end, 10);
		if (*end || v > 65535)
			return -EINVAL;
		*port = htons((uint16_t)v);
		return 0;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL;
	if (getaddrinfo(NULL, service, &hints, &res) != 0 || !res)
		return -EINVAL;
	*port = res->ai_family == AF_INET6
			? ((struct sockaddr_in6 *)res->ai_addr)->sin6_port
			: ((struct sockaddr_in *)res->ai_addr)->sin_port;
	freeaddrinfo(res);
	return 0;
}

static void set_port(cio_addr *a, in_port_t port)
{
	if (a->u.sa.sa_family == AF_INET6)
		a->u.in6.sin6_port = port;
	else
		a->u.in.sin_port = port;
}

/* A numeric name: 1 with *a filled, 0 when name is not numeric, or
 * -CIO_EDNS_NODATA when it is of a family other than the one asked. */
static int numeric_name(const char *name, int family, in_port_t port, cio_addr *a)
{
	memset(a, 0, sizeof *a);
	if (inet_pton(AF_INET, name, &a->u.in.sin_addr) == 1) {
		a->u.in.sin_family = AF_INET;
		a->len = sizeof a->u.in;
	} else if (inet_pton(AF_INET6, name, &a->u.in6.sin6_addr) == 1) {
		a->u.in6.sin6_family = AF_INET6;
		a->len = sizeof a->u.in6;
	} else {
		return 0;
	}
	if (family != AF_UNSPEC && family != a->u.sa.sa_family)
		return -CIO_EDNS_NODATA;
	set_port(a, port);
	return 1;
}

/* --- the per-core cache --------------------------------------------------- */

#define CACHE_MAX 1024
#define CACHE_BUCKETS 1024 /* a power of two */
#define NEGATIVE_TTL (5 * CIO_SEC)

struct entry {
	struct entry *chain;         /* the next in its bucket */
	struct entry *older, *newer; /* insertion order, for eviction */
	uint64_t hash;
	int64_t expires;             /* cio_now() clock */
	int family;
	int error;                   /* 0, or the negated error remembered */
	size_t n;
	cio_addr *addrs;             /* port 0 */
	char *servers;               /* NULL: the system's */
	char name[];
};

struct dns_core {
	struct cio__rt_ext ext; /* first: the runtime hands it back */
	struct entry *buckets[CACHE_BUCKETS];
	struct entry *oldest, *newest;
	size_t count;
};

static const char core_key = 0; /* its address finds the core's state */

static uint64_t key_hash(const char *name, int family, const char *servers)
{
	uint64_t h = 1469598103934665603u; /* FNV-1a */
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)(*p | 0x20)) * 1099511628211u; /* DNS ignores case */
	h = (h ^ (unsigned)family) * 1099511628211u;
	for (const char *p = servers ? servers : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211u;
	return h;
}

static void entry_unlink(struct dns_core *c, struct entry *e)
{
	struct entry **pp = &c->buckets[e->hash & (CACHE_BUCKETS - 1)];
	while (*pp != e)
		pp = &(*pp)->chain;
	*pp = e->chain;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	c->count--;
	free(e->addrs);
	free(e->servers);
	free(e);
}

static void cache_clear(struct dns_core *c)
{
	while (c->oldest)
		entry_unlink(c, c->oldest);
}

static void core_fini(struct cio__rt_ext *ext)
{
	struct dns_core *c = (struct dns_core *)ext;
	cache_clear(c);
	free(c);
}

/* The calling core's state, made on first use; NULL without memory. */
static struct dns_core *core_state(void)
{
	struct cio__rt *rt = cio__rt_cur;
	struct cio__rt_ext *e = cio__rt_ext_find(rt, &core_key);
	if (e)
		return (struct dns_core *)e;
	struct dns_core *c = cio__calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->ext.key = &core_key;
	c->ext.fini = core_fini;
	cio__rt_ext_add(rt, &c->ext);
	return c;
}

void cio_resolve_cache_clear(void)
{
	struct cio__rt *rt = cio__rt_cur;
	struct cio__rt_ext *e = rt ? cio__rt_ext_find(rt, &core_key) : NULL;
	if (e)
		cache_clear((struct dns_core *)e);
}

static bool same_servers(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* The live entry for the key, or NULL; drops an expired one. */
static struct entry *cache_find(struct dns_core *c, const char *name, int family,
				const char *servers)
{
	uint64_t h = key_hash(name, family, servers);
	for (struct entry *e = c->buckets[h & (CACHE_BUCKETS - 1)]; e; e = e->chain) {
		if (e->hash != h || e->family != family || strcasecmp(e->name, name) != 0 ||
		    !same_servers(e->servers, servers))
			continue;
		if (cio_now() < e->expires)
			return e;
		entry_unlink(c, e);
		return NULL;
	}
	return NULL;
}

/* Remembers an answer (error 0: n addresses, whose ports are ignored) or
 * an error for ttl ns.  Without memory it remembers nothing. */
static void cache_put(struct dns_core *c, const char *name, int family, const char *servers,
		      int error, const cio_addr *addrs, size_t n, int64_t ttl)
{
	struct entry *old = cache_find(c, name, family, servers);
	if (old)
		entry_unlink(c, old);
	if (c->count == CACHE_MAX)
		entry_unlink(c, c->oldest);
	size_t len = strlen(name);
	struct entry *e = cio__calloc(1, sizeof *e + len + 1);
	if (!e)
		return;
	memcpy(e->name, name, len + 1);
	if ((servers && !(e->servers = cio__strdup(servers))) ||
	    (n && !(e->addrs = cio__malloc(n * sizeof *addrs)))) {
		free(e->servers);
		free(e);
		return;
	}
	if (n)
		memcpy(e->addrs, addrs, n * sizeof *addrs);
	for (size_t i = 0; i < n; i++)
		set_port(&e->addrs[i], 0);
	e->n = n;
	e->error = error;
	e->family = family;
	e->expires = cio_now() + ttl;
	e->hash = key_hash(name, family, servers);
	struct entry **head = &c->buckets[e->hash & (CACHE_BUCKETS - 1)];
	e->chain = *head;
	*head = e;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
	c->count++;
}

/* --- c-ares driven by the runtime ----------------------------------------- */

/* c-ares makes and closes its sockets through coreio, so that the driver
 * hears of each fd (one closed behind its back leaves stale per-fd state
 * for the next file with that number); it reads and writes them itself,
 * non-blocking, as its loop expects (EAGAIN, not a parked task). */
static ares_socket_t sock_open(int domain, int type, int protocol, void *ud)
{
	(void)ud;
	int fd = cio_socket(domain, type, protocol);
	if (fd < 0) {
		errno = -fd;
		return ARES_SOCKET_BAD;
	}
	return fd;
}

static int sock_close(ares_socket_t fd, void *ud)
{
	(void)ud;
	return cio_close(fd) < 0 ? -1 : 0;
}

static int sock_connect(ares_socket_t fd, const struct sockaddr *a, ares_socklen_t len,
			void *ud)
{
	(void)ud;
	int fail = CIO_FAIL(connect);
	if (fail) {
		errno = fail;
		return -1;
	}
	return connect(fd, a, len);
}

static ares_ssize_t sock_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags,
				  struct sockaddr *from, ares_socklen_t *fromlen, void *ud)
{
	(void)ud;
	int fail = CIO_FAIL(recv);
	if (fail > 0) {
		errno = fail;
		return -1;
	}
	if (fail == CIO__FAIL_SHORT)
		len = cio__fail_short(len); /* a datagram cut short: a bad answer */
	return recvfrom(fd, buf, len, flags, from, fromlen);
}

static ares_ssize_t sock_sendv(ares_socket_t fd, const struct iovec *iov, int n, void *ud)
{
	(void)ud;
	int fail = CIO_FAIL(send);
	if (fail > 0) {
		errno = fail;
		return -1;
	}
	struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
#ifdef MSG_NOSIGNAL
	return sendmsg(fd, &m, MSG_NOSIGNAL); /* a TCP server gone: no SIGPIPE */
#else
	return sendmsg(fd, &m, 0);
#endif
}

static const struct ares_socket_functions sock_funcs = {
	sock_open, sock_close, sock_connect, sock_recvfrom, sock_sendv,
};

static int ares_error(int status)
{
	switch (status) {
	case ARES_ENOTFOUND: return -CIO_EDNS_NXDOMAIN;
	case ARES_ENODATA: return -CIO_EDNS_NODATA;
	case ARES_ESERVFAIL: return -CIO_EDNS_SERVFAIL;
	case ARES_EREFUSED: return -CIO_EDNS_REFUSED;
	case ARES_EBADNAME: return -CIO_EDNS_BADNAME;
	case ARES_ETIMEOUT: return -CIO_EDNS_TIMEOUT;
	case ARES_EFORMERR:
	case ARES_EBADRESP:
	case ARES_ENOTIMP:
	case ARES_EBADQUERY: return -CIO_EDNS_BADRESP;
	case ARES_ECONNREFUSED: return -CIO_EDNS_CONNREFUSED;
	case ARES_ENOMEM: return -ENOMEM;
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION: return -ECANCELED;
	case ARES_EBADFAMILY:
	case ARES_EBADSTR:
	case ARES_EBADFLAGS:
	case ARES_ESERVICE: return -EINVAL;
	default: return -EIO; /* ARES_EFILE (resolv.conf), ... */
	}
}

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_status;
static void library_init(void)
{
	library_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static int channel_open(const cio_resolve_opts *o, ares_channel *ch)
{
	struct ares_options ao;
	int mask = 0;
	memset(&ao, 0, sizeof ao);
	pthread_once(&library_once, library_init);
	if (library_status != ARES_SUCCESS)
		return ares_error(library_status);
	if (o->try_timeout > 0) {
		int64_t ms = (o->try_timeout + CIO_MS - 1) / CIO_MS;
		ao.timeout = ms > INT32_MAX ? INT32_MAX : (int)ms;
		mask |= ARES_OPT_TIMEOUTMS;
	}
	if (o->tries > 0) {
		ao.tries = o->tries;
		mask |= ARES_OPT_TRIES;
	}
	if (o->servers) {
		/* Servers of the caller's: the system's search list is
		 * theirs, and would send names to the wrong servers. */
		ao.ndomains = 0;
		mask |= ARES_OPT_DOMAINS;
	}
	int st = ares_init_options(ch, &ao, mask);
	if (st != ARES_SUCCESS)
		return ares_error(st);
	if (o->servers && (st = ares_set_servers_ports_csv(*ch, o->servers)) != ARES_SUCCESS) {
		ares_destroy(*ch);
		return st == ARES_ENOMEM ? -ENOMEM : -EINVAL;
	}
	ares_set_socket_functions(*ch, &sock_funcs, NULL);
	return 0;
}

struct query {
	bool done;
	int status;
	struct ares_addrinfo *res;
};

static void query_done(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	(void)timeouts;
	struct query *q = arg;
	q->done = true;
	q->status = status;
	q->res = res;
}

/* A member of the group that waits on several sockets: readiness is an
 * "error", so that fail_fast ends the others' waits. */
struct sock_wait {
	int fd;
	bool write;
};
#define SOCK_READY (-EALREADY)

static int sock_wait_member(void *arg)
{
	struct sock_wait *w = arg;
	int rc = w->write ? cio_wait_writable(w->fd) : cio_wait_readable(w->fd);
	return rc > 0 ? SOCK_READY : rc;
}

/* Waits until one of the n waits is ready (returns 1), or the deadline
 * in force passes (-ETIMEDOUT), or -ECANCELED, -ENOMEM.  A task per
 * socket: it happens only while c-ares holds several sockets (several
 * servers tried, or TCP beside UDP), where waiting on one alone could
 * miss an answer on another until the next c-ares timeout. */
static int wait_any(struct sock_wait *w, size_t n)
{
	cio_group *g;
	int rc = cio_group_new(&g, &(cio_group_opts){.fail_fast = true});
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n && rc >= 0; i++)
		rc = cio_group_spawn(g, sock_wait_member, &w[i]);
	if (rc < 0)
		cio_group_cancel(g);
	int waited = cio_group_wait(g); /* every member has ended */
	cio_group_free(g);
	if (rc < 0)
		return rc;
	return waited == SOCK_READY ? 1 : waited;
}

/* Runs the channel until the query's callback has run.  Returns 0, or
 * -ETIMEDOUT (the task's deadline), -ECANCELED, -ENOMEM, -EBADF. */
static int drive(ares_channel ch, struct query *q)
{
	int64_t outer = cio_deadline();
	while (!q->done) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct sock_wait w[2 * ARES_GETSOCK_MAXNUM];
		size_t nw = 0;
		/* ARES_GETSOCK_WRITABLE() shifts a signed 1 into the sign
		 * bit for the last socket: the bits are read unsigned here. */
		unsigned bits = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
		for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			if (bits & (1u << i))
				w[nw++] = (struct sock_wait){socks[i], false};
			if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
				w[nw++] = (struct sock_wait){socks[i], true};
		}
		struct timeval tv;
		int64_t at = CIO_NEVER;
		if (ares_timeout(ch, NULL, &tv))
			at = cio_now() + tv.tv_sec * CIO_SEC + tv.tv_usec * CIO_US;
		int64_t tok = cio_deadline_push(at);
		if (tok < 0)
			return (int)tok;
		int rc = nw == 0   ? cio_sleep_until(at)
			 : nw == 1 ? (w[0].write ? cio_wait_writable(w[0].fd)
						 : cio_wait_readable(w[0].fd))
				   : wait_any(w, nw);
		cio_deadline_pop(tok);
		if (rc == -ETIMEDOUT && cio_now() < outer)
			rc = 0; /* c-ares's own timer: it resends or gives up */
		else if (rc < 0)
			return rc;
		if (nw == 1 && rc > 0) {
			ares_process_fd(ch, w[0].write ? ARES_SOCKET_BAD : w[0].fd,
					w[0].write ? w[0].fd : ARES_SOCKET_BAD);
			continue;
		}
		/* Several sockets, or a timeout: ask which are ready. */
		struct pollfd p[2 * ARES_GETSOCK_MAXNUM];
		for (size_t i = 0; i < nw; i++)
			p[i] = (struct pollfd){.fd = w[i].fd, .events = w[i].write ? POLLOUT : POLLIN};
		if (nw && poll(p, (nfds_t)nw, 0) > 0) {
			for (size_t i = 0; i < nw && !q->done; i++)
				if (p[i].revents)
					ares_process_fd(ch, w[i].write ? ARES_SOCKET_BAD : w[i].fd,
							w[i].write ? w[i].fd : ARES_SOCKET_BAD);
		}
		if (!q->done)
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
	}
	return 0;
}

/* Asks c-ares.  Returns 0 with the addresses (port 0) and the smallest
 * TTL in ns, or a negated error. */
static int query(const char *name, const cio_resolve_opts *o, cio_addr **out, size_t *n,
		 int64_t *ttl)
{
	ares_channel ch;
	int rc = channel_open(o, &ch);
	if (rc < 0)
		return rc;
	struct query q = {0};
	struct ares_addrinfo_hints hints = {.ai_family = o->family, .ai_socktype = SOCK_STREAM};
	ares_getaddrinfo(ch, name, NULL, &hints, query_done, &q);
	rc = drive(ch, &q);
	ares_destroy(ch); /* closes its sockets; an unfinished query ends here */
	if (rc == 0 && q.status != ARES_SUCCESS)
		rc = ares_error(q.status);
	size_t count = 0;
	int min_ttl = INT32_MAX;
	for (struct ares_addrinfo_node *nd = q.res ? q.res->nodes : NULL; nd; nd = nd->ai_next)
		if (nd->ai_family == AF_INET || nd->ai_family == AF_INET6)
			count++;
	if (rc == 0 && count == 0)
		rc = -CIO_EDNS_NODATA;
	if (rc == 0 && !(*out = cio__calloc(count, sizeof **out)))
		rc = -ENOMEM;
	if (rc == 0) {
		size_t i = 0;
		for (struct ares_addrinfo_node *nd = q.res->nodes; nd; nd = nd->ai_next) {
			if (nd->ai_family != AF_INET && nd->ai_family != AF_INET6)
				continue;
			cio_addr *a = &(*out)[i++];
			a->len = nd->ai_addrlen < sizeof a->u ? nd->ai_addrlen : sizeof a->u;
			memcpy(&a->u, nd->ai_addr, a->len);
			if (nd->ai_ttl < min_ttl)
				min_ttl = nd->ai_ttl;
		}
		*n = count;
		*ttl = min_ttl > 0 ? min_ttl * CIO_SEC : 0;
	}
	if (q.res)
		ares_freeaddrinfo(q.res);
	return rc;
}

int cio_resolve(const char *name, const char *service, const cio_resolve_opts *opts,
		cio_addr **addrs, size_t *n)
{
	static const cio_resolve_opts none;
	struct cio__task *self = cio__self_or_die("cio_resolve");
	if (!addrs || !n)
		return -EINVAL;
	*addrs = NULL;
	*n = 0;
	if (!opts)
		opts = &none;
	if (!name || (opts->family != AF_UNSPEC && opts->family != AF_INET &&
		      opts->family != AF_INET6))
		return -EINVAL;
	int rc = cio__interrupted(self);
	in_port_t port;
	if (rc < 0 || (rc = service_port(service, &port)) < 0)
		return rc;
	cio_addr one;
	if ((rc = numeric_name(name, opts->family, port, &one)) != 0) {
		if (rc < 0)
			return rc;
		if (!(*addrs = cio__malloc(sizeof one)))
			return -ENOMEM;
		**addrs = one;
		*n = 1;
		return 0;
	}
	struct dns_core *c = opts->no_cache ? NULL : core_state();
	struct entry *e = c ? cache_find(c, name, opts->family, opts->servers) : NULL;
	cio_addr *got = NULL;
	size_t count = 0;
	int64_t ttl = 0;
	if (e && e->error)
		return e->error;
	if (e) {
		if (!(got = cio__malloc(e->n * sizeof *got)))
			return -ENOMEM;
		memcpy(got, e->addrs, e->n * sizeof *got);
		count = e->n;
	} else {
		rc = query(name, opts, &got, &count, &ttl);
		if (c && (rc == -CIO_EDNS_NXDOMAIN || rc == -CIO_EDNS_NODATA))
			cache_put(c, name, opts->family, opts->servers, rc, NULL, 0, NEGATIVE_TTL);
		if (rc < 0)
			return rc;
		if (c && ttl > 0)
			cache_put(c, name, opts->family, opts->servers, 0, got, count, ttl);
	}
	for (size_t i = 0; i < count; i++)
		set_port(&got[i], port);
	*addrs = got;
	*n = count;
	return 0;
}

#else /* no c-ares */

int cio_resolve(const char *name, const char *service, const cio_resolve_opts *opts,
		cio_addr **addrs, size_t *n)
{
	(void)name, (void)service, (void)opts;
	cio__self_or_die("cio_resolve");
	if (addrs)
		*addrs = NULL;
	if (n)
		*n = 0;
	return -ENOTSUP;
}

void cio_resolve_cache_clear(void)
{
}

#endif

/* --- dialling -------------------------------------------------------------- */

/* The host's addresses for cio_dial(): cio_resolve(), or without c-ares
 * cio_getaddrinfo() on the blocking pool. */
static int dial_resolve(const char *host, const char *service, const cio_dial_opts *o,
			cio_addr **out, size_t *n)
{
#ifdef COREIO_HAVE_CARES
	cio_resolve_opts ro = {.family = o->family, .servers = o->dns_servers};
	return cio_resolve(host, service, &ro, out, n);
#else
	struct addrinfo hints = {.ai_family = o->family, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res;
	size_t count = 0;
	int rc = cio_getaddrinfo(host, service, &hints, &res);
	if (rc < 0)
		return rc;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
		count++;
	*n = 0;
	if (!(*out = cio__calloc(count ? count : 1, sizeof **out))) {
		freeaddrinfo(res);
		return -ENOMEM;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof (*out)->u)
			continue;
		cio_addr *a = &(*out)[(*n)++];
		a->len = ai->ai_addrlen;
		memcpy(&a->u, ai->ai_addr, ai->ai_addrlen);
	}
	freeaddrinfo(res);
	return 0;
#endif
}

/* Orders the addresses as RFC 8305 section 4 says: the families in turn,
 * starting with the first address's, each family in its own order. */
static int interleave(cio_addr *a, size_t n)
{
	cio_addr *in = cio__malloc(n * sizeof *in);
	if (!in)
		return -ENOMEM;
	memcpy(in, a, n * sizeof *in);
	int first = in[0].u.sa.sa_family;
	size_t i = 0, j = 0, k = 0; /* next of the first family, of the other, out */
	while (k < n) {
		bool took = false;
		while (i < n && in[i].u.sa.sa_family != first)
			i++;
		if (i < n) {
			a[k++] = in[i++];
			took = true;
		}
		while (j < n && in[j].u.sa.sa_family == first)
			j++;
		if (j < n) {
			a[k++] = in[j++];
			took = true;
		}
		if (!took)
			break;
	}
	free(in);
	return 0;
}

struct attempt_result {
	size_t idx;
	int rc; /* the connected fd, or a negated errno */
};

struct race {
	const cio_addr *addrs;
	cio_chan *results;
	int64_t attempt_timeout;
};

struct attempt {
	struct race *race;
	size_t idx;
};

/* One connection attempt to a, within attempt_timeout (0: none): the
 * connected fd or -errno, nothing left open. */
static int connect_one(const cio_addr *a, int64_t attempt_timeout)
{
	int fd = cio_socket(a->u.sa.sa_family, SOCK_STREAM, 0);
	int rc = fd;
	if (fd >= 0) {
		int64_t tok = attempt_timeout > 0 ? cio_timeout_push(attempt_timeout) : 0;
		rc = tok < 0 ? (int)tok : cio_connect_addr(fd, a);
		if (tok > 0)
			cio_deadline_pop(tok);
		if (rc < 0)
			cio_close(fd);
		else
			rc = fd;
	}
	return rc;
}

/* A group member: one connection attempt, its outcome sent to the race. */
static int attempt_run(void *arg)
{
	struct attempt *at = arg;
	int rc = connect_one(&at->race->addrs[at->idx], at->race->attempt_timeout);
	/* try_send: an unbounded channel takes it even once this attempt is
	 * cancelled, so a socket that connected meanwhile is not lost. */
	struct attempt_result r = {at->idx, rc};
	if (cio_chan_try_send(at->race->results, &r) < 0 && rc >= 0)
		cio_close(rc);
	return 0;
}

/* Errors that say only that this address's route failed: another
 * attempt's error (a refusal, a kernel timeout) tells the caller more. */
static bool route_error(int rc)
{
	return rc == -ENETUNREACH || rc == -EHOSTUNREACH || rc == -EADDRNOTAVAIL ||
	       rc == -EAFNOSUPPORT || rc == -ENETDOWN;
}

/* Races connection attempts to addrs[0..n) as RFC 8305 section 5 says.
 * Returns the winner's fd, or the most telling error. */
static int race_connect(const cio_addr *addrs, size_t n, int64_t delay, int64_t attempt_timeout)
{
	struct race race = {addrs, NULL, attempt_timeout};
	struct attempt *att = cio__calloc(n, sizeof *att);
	cio_group *g = NULL;
	int rc = att ? 0 : -ENOMEM;
	if (rc == 0)
		rc = cio_chan_new(&race.results, sizeof(struct attempt_result), CIO_CHAN_UNBOUNDED);
	if (rc == 0)
		rc = cio_group_new(&g, NULL);
	int64_t outer = cio_deadline();
	int64_t next_at = 0; /* when the next attempt starts */
	size_t started = 0, ended = 0;
	int winner = -1, first_err = 0, telling_err = 0;
	while (rc == 0 && winner < 0 && ended < n) {
		if (started < n && cio_now() >= next_at) {
			/* Spawned outside the stagger's scope below: members
			 * inherit the caller's deadline, not that one. */
			att[started] = (struct attempt){&race, started};
			int s = cio_group_spawn(g, attempt_run, &att[started]);
			if (s < 0) {
				rc = s;
				break;
			}
			started++;
			next_at = cio_now() + delay;
		}
		struct attempt_result r;
		int64_t tok = started < n ? cio_deadline_push(next_at) : 0;
		if (tok < 0) {
			rc = (int)tok;
			break;
		}
		int got = cio_chan_recv(race.results, &r);
		if (tok > 0)
			cio_deadline_pop(tok);
		if (got == -ETIMEDOUT && started < n && cio_now() < outer)
			continue; /* the attempt delay passed: start the next */
		if (got < 0) {
			rc = got;
			break;
		}
		ended++;
		if (r.rc >= 0) {
			winner = r.rc;
			break;
		}
		if (!first_err)
			first_err = r.rc;
		if (!telling_err && !route_error(r.rc))
			telling_err = r.rc;
		next_at = 0; /* a failure starts the next attempt at once */
	}
	if (g) {
		cio_group_cancel(g);
		cio_group_wait(g); /* waits for every member, even interrupted */
		cio_group_free(g);
	}
	if (race.results) {
		struct attempt_result r;
		while (cio_chan_try_recv(race.results, &r) == 0)
			if (r.rc >= 0) /* connected too late: the race is won */
				cio_close(r.rc);
		cio_chan_free(race.results);
	}
	free(att);
	if (winner >= 0)
		return winner;
	if (rc < 0)
		return rc;
	return telling_err ? telling_err : first_err;
}

/* Splits "host:port" or "[v6]:port" into host (room for cap bytes) and
 * the port's text.  Returns 0 or -EINVAL. */
static int split_hostport(const char *text, char *host, size_t cap, const char **port)
{
	const char *h = text, *end;
	if (text[0] == '[') {
		h = text + 1;
		end = strchr(h, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		*port = end + 2;
	} else {
		end = strchr(text, ':');
		if (!end || strchr(end + 1, ':'))
			return -EINVAL; /* no port, or a bare IPv6 address */
		*port = end + 1;
	}
	size_t n = (size_t)(end - h);
	if (n == 0 || n >= cap || **port == '\0')
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	return 0;
}

int cio_dial(const char *hostport, const cio_dial_opts *opts)
{
	static const cio_dial_opts none;
	cio__self_or_die("cio_dial");
	if (!opts)
		opts = &none;
	if (!hostport || opts->attempt_delay < 0 || opts->attempt_timeout < 0 ||
	    (opts->family != AF_UNSPEC && opts->family != AF_INET && opts->family != AF_INET6))
		return -EINVAL;
	if (strncmp(hostport, "unix:", 5) == 0)
		return cio_connect(hostport, SOCK_STREAM);
	char host[256];
	const char *port;
	int rc = split_hostport(hostport, host, sizeof host, &port);
	if (rc < 0)
		return rc;
	cio_addr *addrs;
	size_t n;
	if ((rc = dial_resolve(host, port, opts, &addrs, &n)) < 0)
		return rc;
	int64_t delay = opts->attempt_delay ? opts->attempt_delay : DEFAULT_ATTEMPT_DELAY;
	if (delay < MIN_ATTEMPT_DELAY)
		delay = MIN_ATTEMPT_DELAY;
	rc = n == 0 ? -CIO_EDNS_NODATA : interleave(addrs, n);
	/* One address (a numeric host, say) has nothing to race: no group,
	 * no channel, no task. */
	if (rc == 0 && n == 1)
		rc = connect_one(&addrs[0], opts->attempt_timeout);
	else if (rc == 0)
		rc = race_connect(addrs, n, delay, opts->attempt_timeout);
	cio_addrs_free(addrs);
	return rc;
}
