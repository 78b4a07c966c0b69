/* example_server.h - the frame the example servers share: every
 * core listens on one address with SO_REUSEPORT (core 0 binds first, so
 * that port 0 becomes one port for all), core 0 prints the "listening
 * on" line, starts the --seconds timer and serves the --stats endpoint,
 * and each core serves with cio_serve_fd() until the drain. */
#ifndef COREIO_EXAMPLE_SERVER_H
#define COREIO_EXAMPLE_SERVER_H

#include <coreio.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct ex_server {
	const char *name;  /* the program: the prefix of its lines */
	const char *addr;  /* where to listen */
	int64_t run_ns;    /* drain after this long, or CIO_NEVER */
	const char *about; /* NULL, or what the "listening on" line adds
	                    * after the address ("upstream ADDR") */
	const char *stats_addr; /* --stats: where core 0 serves the counters
	                         * of every core (Prometheus text), or NULL */
	/* How connections are served (stacks, idle connections...); its
	 * name and error are set by ex_server_run(). */
	cio_serve_opts conn;
};

/* The address core 0 bound, for the others. */
static char ex_bound_addr[128];
static cio_wg ex_bound = CIO_WG_INIT(ex_bound); /* done once core 0 bound */
static atomic_int ex_status; /* the exit status */

/* Before the cores start.  Every connection is an fd: takes all the
 * hard limit allows rather than the soft 1024 most systems start with. */
static inline void ex_server_init(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	cio_wg_add(&ex_bound, 1);
}

/* A non-negative integer option value, or -1 when text is not one. */
static inline int64_t ex_number(const char *text)
{
	char *end;
	errno = 0;
	long long v = text ? strtoll(text, &end, 10) : -1;
	return !text || errno || *end || v < 0 ? -1 : v;
}

static inline void *ex_wait_bound(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)cio_wg_wait(&ex_bound);
}

/* Core 0's timer for --seconds: drains when it fires, and ends at once
 * when a drain comes first. */
static inline void *ex_stop_later(void *arg)
{
	const struct ex_server *srv = arg;
	cio_select_case cs[] = {
		{.op = CIO_SELECT_TIMER, .deadline = cio_now() + srv->run_ns},
		{.op = CIO_SELECT_DRAIN},
	};
	if (cio_select(cs, 2) == 0)
		cio_drain();
	return NULL;
}

/* --- the --stats endpoint -------------------------------------------- */

#define EX_STATS_HEAD_MAX 4096          /* a request's head, at most */
#define EX_STATS_TIMEOUT (2 * CIO_SEC)  /* for the request and the answer */

/* Every core's counters as Prometheus text, in a buffer of malloc's;
 * NULL when out of memory or interrupted. */
static inline char *ex_stats_text(size_t *len)
{
	int n = cio_core_count();
	cio_stats *st = calloc((size_t)n, sizeof *st);
	char *text = NULL;
	int got = st ? cio_stats_get_all(st, (size_t)n) : -ENOMEM;
	ssize_t need = got < 0 ? got : cio_stats_format(NULL, 0, st, (size_t)got);
	if (need >= 0 && (text = malloc((size_t)need + 1)) != NULL)
		*len = (size_t)cio_stats_format(text, (size_t)need + 1, st, (size_t)got);
	free(st);
	return text;
}

/* One scrape: reads the request's head (whatever it asks), answers
 * HTTP/1.0 200 with the text, and closes. */
static inline void *ex_stats_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char head[EX_STATS_HEAD_MAX + 1];
	size_t got = 0;
	int64_t tok = cio_timeout_push(EX_STATS_TIMEOUT);
	while (got < EX_STATS_HEAD_MAX) {
		ssize_t n = cio_recv(fd, head + got, EX_STATS_HEAD_MAX - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		head[got] = '\0';
		if (strstr(head, "\r\n\r\n") || strstr(head, "\n\n"))
			break;
	}
	size_t len = 0;
	char *text = got ? ex_stats_text(&len) : NULL;
	if (text) {
		char hdr[160];
		int h = snprintf(hdr, sizeof hdr, "HTTP/1.0 200 OK\r\nContent-Type: text/plain; "
				 "version=0.0.4\r\nContent-Length: %zu\r\n\r\n", len);
		if (cio_send_all(fd, hdr, (size_t)h, 0, NULL) == h)
			cio_send_all(fd, text, len, 0, NULL);
		free(text);
	} else if (got) {
		/* Said, not a silent close: a scraper logs it. */
		static const char busy[] = "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
		cio_send_all(fd, busy, sizeof busy - 1, 0, NULL);
	}
	cio_deadline_pop(tok);
	cio_close(fd);
	return NULL;
}

/* Connections core 0 accepted for --stats: not the server's own, which
 * its runtime's cio_stats.accepted counts with them.  Core 0's only. */
static uint64_t ex_stats_accepted;

/* Core 0's --stats listener: a task of its own per scrape, until the
 * drain shuts it. */
static inline void *ex_stats_serve(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	for (;;) {
		int fd = cio_accept(lfd, NULL);
		if (fd == -ESHUTDOWN || fd == -ECANCELED || fd == -EBADF || fd == -EINVAL)
			break;
		if (fd < 0)
			continue; /* passing: -EMFILE pauses by itself */
		ex_stats_accepted++;
		cio_spawn_opts o = {.name = "stats", .detached = true};
		if (cio_spawn_with(&o, ex_stats_conn, (void *)(intptr_t)fd) < 0)
			cio_close(fd);
	}
	cio_close(lfd);
	return NULL;
}

/* On core 0: listens on --stats, prints "NAME: stats on ADDR" and starts
 * serving.  Returns 0, or -1 (said on stderr). */
static inline int ex_stats_start(const struct ex_server *srv)
{
	int lfd = cio_listen(srv->stats_addr, NULL);
	cio_addr a = {.len = sizeof a.u};
	char bound[128];
	if (lfd < 0) {
		fprintf(stderr, "%s: cannot listen on %s for --stats: %s\n", srv->name,
			srv->stats_addr, cio_strerror(lfd));
		return -1;
	}
	if (getsockname(lfd, &a.u.sa, &a.len) < 0 ||
	    cio_addr_format(&a, bound, sizeof bound) < 0)
		snprintf(bound, sizeof bound, "%s", srv->stats_addr);
	cio_spawn_opts o = {.name = "stats listener", .detached = true};
	if (cio_spawn_with(&o, ex_stats_serve, (void *)(intptr_t)lfd) < 0) {
		cio_close(lfd);
		fprintf(stderr, "%s: no task for --stats\n", srv->name);
		return -1;
	}
	printf("%s: stats on %s\n", srv->name, bound);
	return 0;
}

/* On every core: its listener, or -1 when it could not listen (said on
 * stderr; the drain is started and the exit status set to 1).  Core 0
 * prints "NAME: listening on ADDR[, ABOUT], backend B, N cores, pid P". */
static inline int ex_server_listen(const struct ex_server *srv)
{
	int lfd = -1, core = cio_core_id();
	if (core == 0) {
		lfd = cio_listen(srv->addr, &(cio_listen_opts){.reuseport = true});
		if (lfd >= 0) {
			cio_addr a = {.len = sizeof a.u};
			if (getsockname(lfd, &a.u.sa, &a.len) < 0 ||
			    cio_addr_format(&a, ex_bound_addr, sizeof ex_bound_addr) < 0)
				snprintf(ex_bound_addr, sizeof ex_bound_addr, "%s", srv->addr);
		}
		cio_wg_done(&ex_bound); /* the others listen (or give up) now */
	} else {
		/* Port 0: every core must bind the port core 0 got. */
		cio_core_call(0, ex_wait_bound, NULL, NULL);
		if (ex_bound_addr[0])
			lfd = cio_listen(ex_bound_addr, &(cio_listen_opts){.reuseport = true});
	}
	if (lfd >= 0 && core == 0 && srv->stats_addr && ex_stats_start(srv) < 0) {
		cio_close(lfd); /* said why; the server stops */
		atomic_store(&ex_status, 1);
		cio_drain();
		return -1;
	}
	if (lfd < 0) {
		fprintf(stderr, "%s: core %d cannot listen on %s: %s\n", srv->name, core,
			ex_bound_addr[0] ? ex_bound_addr : srv->addr,
			cio_strerror(lfd < -1 ? lfd : -EADDRNOTAVAIL));
		ex_bound_addr[0] = '\0';
		atomic_store(&ex_status, 1);
		cio_drain();
		return -1;
	}
	if (core == 0) {
		const char *reason = cio_backend_reason();
		int n = cio_core_count();
		printf("%s: listening on %s%s%s, backend %s%s%s%s, %d core%s, pid %d\n", srv->name,
		       ex_bound_addr, srv->about ? ", " : "", srv->about ? srv->about : "",
		       cio_backend_name(), reason ? " (" : "",
		       reason ? reason : "", reason ? ")" : "", n, n == 1 ? "" : "s",
		       (int)getpid());
		fflush(stdout);
		if (srv->run_ns != CIO_NEVER)
			cio_spawn_with(&(cio_spawn_opts){.detached = true}, ex_stop_later,
				       (void *)srv);
	}
	return lfd;
}

/* On every core: listens, then serves with cio_serve_fd() (the accept
 * loop, a task per connection, the drain) until the drain.  Returns 0, or
 * -1 when the core could not listen or its listener broke (said on
 * stderr, the exit status set to 1). */
static inline int ex_server_run(const struct ex_server *srv, cio_serve_fn *serve,
				void (*failed)(void *arg, int err), void *arg)
{
	int lfd = ex_server_listen(srv);
	if (lfd < 0)
		return -1;
	cio_serve_opts o = srv->conn;
	o.name = srv->name;
	o.error = failed;
	/* Accepted connections inherit TCP_NODELAY (Linux): a reply that
	 * must not wait for Nagle, set once rather than per connection. */
	cio_tcp_nodelay(lfd, true); /* fails harmlessly on a Unix socket */
	int rc = cio_serve_fd(lfd, &o, serve, arg);
	cio_close(lfd);
	if (rc < 0 && rc != -ECANCELED && rc != -ETIMEDOUT) {
		fprintf(stderr, "%s: serving: %s; stopping\n", srv->name, cio_strerror(rc));
		atomic_store(&ex_status, 1);
		cio_drain();
		return -1;
	}
	return 0;
}

#endif
