/* http_lb.c - an HTTP/1.1 reverse proxy and load balancer on coreio:
 * every core accepts on its own SO_REUSEPORT listener and forwards each
 * request to one of the upstreams through its own keep-alive pool
 * (cio_http_client), streaming bodies both ways.
 *
 *   http_lb --listen ADDR --upstream ADDR[,ADDR...] [--cores N]
 *           [--balance rr|least] [--health PATH] [--health-ms MS]
 *           [--fails N] [--eject-ms MS] [--timeout-ms MS]
 *           [--tls-cert FILE [--tls-key FILE]] [--upstream-tls]
 *           [--upstream-ca FILE] [--stats ADDR] [--max-body BYTES]
 *           [--seconds N] [--drain-ms MS] [--task]
 *
 *   --listen ADDR     where clients connect (HOST:PORT, [V6]:PORT,
 *                     unix:/path); port 0 picks one, shown in the
 *                     "listening on" line
 *   --upstream LIST   upstream servers, comma-separated HOST:PORT (names
 *                     are resolved, and tried by Happy Eyeballs)
 *   --balance         rr: round-robin (default); least: fewest requests
 *                     in progress on this core
 *   --health PATH     GET PATH on every upstream every --health-ms
 *                     (default 1000): a 2xx or 3xx readmits it, anything
 *                     else counts as a failure
 *   --fails N         consecutive failures (errors, timeouts, failed
 *                     checks) that eject an upstream (default 3) ...
 *   --eject-ms MS     ... for MS (default 10000), or until a check passes
 *   --timeout-ms MS   the longest to wait for an upstream's response head
 *                     (default 30000; then 504)
 *   --tls-cert FILE   terminate TLS with this certificate chain (PEM);
 *   --tls-key FILE    its key (default: in the cert file)
 *   --upstream-tls    speak TLS to upstreams, verified against the system
 *                     CAs, or those of --upstream-ca FILE
 *   --stats ADDR      serve counters (Prometheus text) on ADDR, any path:
 *                     the proxy's, per core and per upstream, then the
 *                     runtime's (cio_stats_dump())
 *   --max-body BYTES  the longest request body (default 100 MiB; 413)
 *   --cores N, --seconds N, --drain-ms MS, --task   as http_hello: a
 *                     client's kept-alive connection holds no task while
 *                     it waits for its next request, unless --task
 *
 * Each request goes to the next available upstream: one not ejected.  It
 * carries X-Forwarded-For (the client's address appended),
 * X-Forwarded-Proto and Via; hop-by-hop fields (Connection, Keep-Alive,
 * TE, Upgrade, ... and those Connection names) are dropped both ways.  A
 * request that failed before any response came is sent to another
 * upstream when that is safe: always when the connection was refused,
 * else when it is idempotent and has no body.  Else the client gets 502
 * (504 on a timeout).  When every upstream is ejected, a request goes to
 * the one due back first rather than being refused.
 *
 * Every core keeps its own pools, counters and upstream health (its own
 * checks): nothing is shared between cores but the configuration.
 * SIGINT, SIGTERM or --seconds drain: listeners close, idle keep-alive
 * connections close at once, requests in progress get --drain-ms.
 * Prints "http_lb: listening on ADDR, upstreams N, ..." once every core
 * accepts, and on exit what it served.  Exit status 0, or 1 (could not
 * listen or run), 2 (bad arguments), 3 (the runtime could not start). */
#define _GNU_SOURCE
#include <coreio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "example_server.h"

#define MAX_UPSTREAMS 64
#define MAX_CORES 256
#define CONN_STACK (64 << 10)
#define VIA "1.1 coreio-lb"

static struct {
	struct ex_server srv;
	char *upstream[MAX_UPSTREAMS];
	int nup;
	bool least;
	const char *health;
	int64_t health_ns, eject_ns, timeout_ns;
	int max_fails;
	uint64_t max_body;
	const char *tls_cert, *tls_key, *upstream_ca, *stats;
	bool upstream_tls;
	bool task;
	cio_http_server_opts http; /* the client side's */
} opt = {.srv = {.name = "http_lb", .conn.stack_size = CONN_STACK},
	 .health_ns = 1000 * CIO_MS, .eject_ns = 10000 * CIO_MS,
	 .timeout_ns = 30000 * CIO_MS, .max_fails = 3, .max_body = 100 << 20};

static cio_tls_ctx *tls_server, *tls_upstream;

/* Counters: written by their core only, read by the stats core. */
typedef atomic_uint_fast64_t counter;

static inline void bump(counter *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline uint64_t get(counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* One upstream as one core sees it. */
struct upstream {
	cio_http_client *client;
	int active;             /* requests in progress */
	int fails;              /* consecutive failures */
	int64_t down_until;     /* ejected until then */
	counter requests, errors, ejections, retries, up;
	counter status[6];      /* responses by class: [2] 2xx ... [5] 5xx */
};

struct core {
	struct upstream up[MAX_UPSTREAMS];
	unsigned next;          /* round-robin position */
	counter conns, requests, responses[6], no_upstream, refused;
	bool live;
};

static struct core cores[MAX_CORES];
static atomic_int ran;

/* --- choosing an upstream -------------------------------------------------- */

static bool available(const struct upstream *u, int64_t now)
{
	return now >= u->down_until;
}

/* The next upstream to try, not in `tried` (a bit per upstream), or -1. */
static int pick(struct core *c, uint64_t tried)
{
	int64_t now = cio_now();
	int best = -1;
	for (int k = 0; k < opt.nup; k++) {
		int i = (int)((c->next + (unsigned)k) % (unsigned)opt.nup);
		if ((tried >> i & 1) || !available(&c->up[i], now))
			continue;
		if (!opt.least) {
			best = i;
			break;
		}
		if (best < 0 || c->up[i].active < c->up[best].active)
			best = i;
	}
	if (best < 0 && tried == 0) {
		/* Every upstream ejected: rather than refuse, try the one due
		 * back first (an ejection guesses; a request finds out). */
		for (int i = 0; i < opt.nup; i++)
			if (best < 0 || c->up[i].down_until < c->up[best].down_until)
				best = i;
		bump(&c->no_upstream, 1);
	}
	if (best >= 0)
		c->next = (unsigned)best + 1;
	return best;
}

static void upstream_failed(struct upstream *u)
{
	bump(&u->errors, 1);
	if (++u->fails >= opt.max_fails && available(u, cio_now())) {
		u->down_until = cio_now() + opt.eject_ns;
		bump(&u->ejections, 1);
		atomic_store(&u->up, 0);
	}
}

static void upstream_ok(struct upstream *u, bool readmit)
{
	u->fails = 0;
	if (readmit && u->down_until) {
		u->down_until = 0;
	}
	if (available(u, cio_now()))
		atomic_store(&u->up, 1);
}

/* --- fields ----------------------------------------------------------------------- */

/* A field name with its length: names are compared by length first,
 * which most fail. */
struct name {
	const char *s;
	size_t len;
};
#define NAME(lit) {lit, sizeof lit - 1}

static bool name_is(const char *name, size_t len, struct name n)
{
	return len == n.len && strncasecmp(name, n.s, len) == 0;
}

/* Whether a field is the connection's own, not the message's: the
 * standard hop-by-hop ones, the framing (each side frames its own), and
 * those the message's Connection field names. */
static bool hop_by_hop(const char *name, size_t len, const char *connection)
{
	static const struct name hop[] = {
		NAME("connection"), NAME("keep-alive"), NAME("proxy-connection"), NAME("te"),
		NAME("trailer"), NAME("transfer-encoding"), NAME("upgrade"),
		NAME("content-length"), NAME("proxy-authorization")};
	for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
		if (name_is(name, len, hop[i]))
			return true;
	for (const char *p = connection; p && *p;) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, " \t,");
		if (n == len && strncasecmp(p, name, len) == 0)
			return true;
		p += n;
	}
	return false;
}

/* "a, b" into buf (cap bytes), or b alone when a is NULL; truncated to
 * fit. */
static const char *append(char *buf, size_t cap, const char *a, const char *b)
{
	size_t al = a ? strlen(a) : 0, bl = strlen(b), n = 0;
	if (al && al + 2 < cap) {
		memcpy(buf, a, al);
		memcpy(buf + al, ", ", 2);
		n = al + 2;
	}
	if (bl > cap - 1 - n)
		bl = cap - 1 - n;
	memcpy(buf + n, b, bl);
	buf[n + bl] = '\0';
	return buf;
}

/* The client's address without its port ("unix" for a Unix socket). */
static void client_ip(cio_http_req *req, char *buf, size_t cap)
{
	cio_addr a;
	snprintf(buf, cap, "unknown");
	if (cio_http_req_peer(req, &a) < 0)
		return;
	if (a.u.sa.sa_family == AF_INET)
		inet_ntop(AF_INET, &a.u.in.sin_addr, buf, (socklen_t)cap);
	else if (a.u.sa.sa_family == AF_INET6)
		inet_ntop(AF_INET6, &a.u.in6.sin6_addr, buf, (socklen_t)cap);
	else if (a.u.sa.sa_family == AF_UNIX)
		snprintf(buf, cap, "unix");
}

/* --- a request ------------------------------------------------------------------ */

/* The request's head onto call: its fields but the hop-by-hop ones, and
 * the proxy's own. */
static int copy_request_head(cio_http_req *req, cio_http_call *call)
{
	static const struct name xff_name = NAME("x-forwarded-for"), via_name = NAME("via"),
				 proto_name = NAME("x-forwarded-proto"),
				 expect_name = NAME("expect");
	const char *connection = cio_http_req_header(req, "connection");
	const char *xff = NULL, *via = NULL;
	size_t n = cio_http_req_header_count(req);
	int err = 0;
	for (size_t i = 0; i < n && err == 0; i++) {
		const char *name, *value;
		cio_http_req_header_at(req, i, &name, &value);
		size_t len = strlen(name);
		if (name_is(name, len, xff_name))
			xff = value;
		else if (name_is(name, len, via_name))
			via = value;
		else if (name_is(name, len, proto_name) || name_is(name, len, expect_name) ||
			 hop_by_hop(name, len, connection))
			continue;
		else
			err = cio_http_call_add_header(call, name, value);
	}
	/* Only the first of a repeated X-Forwarded-For or Via is kept and
	 * appended to: enough for a proxy of the example's size. */
	char buf[1024], ip[INET6_ADDRSTRLEN];
	client_ip(req, ip, sizeof ip);
	if (err == 0)
		err = cio_http_call_add_header(call, "X-Forwarded-For",
					       append(buf, sizeof buf, xff, ip));
	if (err == 0)
		err = cio_http_call_add_header(call, "X-Forwarded-Proto",
					       tls_server ? "https" : "http");
	if (err == 0)
		err = cio_http_call_add_header(call, "Via", append(buf, sizeof buf, via, VIA));
	return err;
}

static int copy_response_head(cio_http_call *call, cio_http_resp *resp, bool head)
{
	static const struct name via_name = NAME("via"), date_name = NAME("date");
	const char *connection = cio_http_call_header(call, "connection");
	const char *via = NULL;
	int status = cio_http_call_status(call);
	int err = cio_http_resp_status(resp, status);
	size_t n = cio_http_call_header_count(call);
	for (size_t i = 0; i < n && err == 0; i++) {
		const char *name, *value;
		cio_http_call_header_at(call, i, &name, &value);
		size_t len = strlen(name);
		if (name_is(name, len, via_name))
			via = value;
		else if (name_is(name, len, date_name) || hop_by_hop(name, len, connection))
			continue; /* the server writes its own Date */
		else
			err = cio_http_resp_header(resp, name, value);
	}
	char buf[1024];
	if (err == 0)
		err = cio_http_resp_header(resp, "Via", append(buf, sizeof buf, via, VIA));
	int64_t len = cio_http_call_content_length(call);
	if (head) {
		/* HEAD: the length the upstream gave, though no body comes. */
		const char *cl = cio_http_call_header(call, "content-length");
		len = cl ? strtoll(cl, NULL, 10) : -1;
	}
	if (err == 0 && len >= 0 && status != 204 && status != 304)
		err = cio_http_resp_set_length(resp, (uint64_t)len);
	return err;
}

static bool idempotent(const char *m)
{
	return !strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "OPTIONS") ||
	       !strcmp(m, "TRACE") || !strcmp(m, "PUT") || !strcmp(m, "DELETE");
}

/* Sends the request to upstream u: its head, then its body as it comes.
 * Returns the response's status, or -errno; *body_taken tells whether
 * any body byte left the client's request (it cannot be sent again). */
static int forward(cio_http_req *req, cio_http_call *call,
		   bool *body_taken)
{
	int err = copy_request_head(req, call);
	if (err < 0)
		return err;
	int64_t len = cio_http_req_content_length(req);
	if (len > 0)
		err = cio_http_call_set_length(call, (uint64_t)len);
	char buf[16 << 10];
	ssize_t n;
	while (err == 0 && len != 0 && (n = cio_http_req_read(req, buf, sizeof buf)) != 0) {
		*body_taken = true;
		if (n < 0)
			return (int)n;
		n = cio_http_call_write(call, buf, (size_t)n);
		if (n < 0)
			return (int)n;
	}
	return err ? err : cio_http_call_send(call);
}

/* 502, or 504 after a timeout. */
static int respond_error(cio_http_resp *resp, int err)
{
	bool late = err == -ETIMEDOUT;
	const char *t = late ? "504 Gateway Timeout\n" : "502 Bad Gateway\n";
	return cio_http_resp_send(resp, late ? 504 : 502, "text/plain", t, strlen(t));
}

static int handle(cio_http_req *req, cio_http_resp *resp, void *arg)
{
	struct core *c = arg;
	const char *method = cio_http_req_method(req);
	bool head = strcmp(method, "HEAD") == 0;
	bool has_body = cio_http_req_content_length(req) != 0;
	uint64_t tried = 0;
	int rc = -EHOSTUNREACH; /* pick() always finds one first */
	bump(&c->requests, 1);
	for (;;) {
		int i = pick(c, tried);
		if (i < 0)
			break;
		tried |= 1ull << i;
		struct upstream *u = &c->up[i];
		cio_http_call *call;
		if ((rc = cio_http_call_new(u->client, method, cio_http_req_target(req), &call)) < 0)
			return rc;
		bump(&u->requests, 1);
		u->active++;
		bool body_taken = false;
		CIO_WITH_TIMEOUT(opt.timeout_ns) {
			rc = forward(req, call, &body_taken);
		}
		if (rc > 0) {
			/* The response, streamed: errors from here on cut it. */
			upstream_ok(u, false);
			bump(&u->status[rc / 100], 1);
			bump(&c->responses[rc / 100], 1);
			int err = copy_response_head(call, resp, head);
			char buf[16 << 10];
			ssize_t n = 0;
			while (err == 0 && (n = cio_http_call_read(call, buf, sizeof buf)) > 0)
				if ((n = cio_http_resp_write(resp, buf, (size_t)n)) < 0)
					break;
			if (n < 0 && err == 0) {
				err = (int)n;
				if (cio_http_call_error(call)[0])
					upstream_failed(u);
			}
			u->active--;
			cio_http_call_free(call);
			return err ? err : cio_http_resp_end(resp);
		}
		u->active--;
		bool refused = rc == -ECONNREFUSED;
		/* The client's own failure (a bad body, a reset) is not the
		 * upstream's. */
		bool client_side = body_taken && rc != -EPIPE && rc != -ECONNRESET &&
				   !cio_http_call_error(call)[0];
		if (rc != -ECANCELED && !client_side)
			upstream_failed(u);
		cio_http_call_free(call);
		if (rc == -ECANCELED || client_side)
			return rc;
		bool again = refused ? !body_taken : idempotent(method) && !has_body;
		if (!again)
			break;
		bump(&u->retries, 1);
	}
	bump(&c->responses[5], 1);
	return respond_error(resp, rc);
}

/* A client connection's turn: its requests until it waits for another
 * (on no task) or ends. */
static int serve(void *arg, int fd)
{
	struct core *c = arg;
	if (!*cio_serve_state())
		bump(&c->conns, 1); /* its first turn */
	int rc = cio_http_serve_turn(fd, tls_server, &opt.http, handle, c);
	return rc == CIO_SERVE_AGAIN ? rc : CIO_SERVE_DONE;
}

/* --task: the whole connection on one task. */
static int serve_task(void *arg, int fd)
{
	struct core *c = arg;
	bump(&c->conns, 1);
	cio_stream *st;
	int rc = cio_stream_new(&st, fd, NULL);
	if (rc == 0 && tls_server)
		rc = cio_stream_tls_accept(st, tls_server);
	if (rc == 0)
		cio_http_serve_conn(st, &opt.http, handle, c);
	cio_stream_close(st);
	return CIO_SERVE_DONE;
}

static void failed(void *arg, int err)
{
	(void)err;
	bump(&((struct core *)arg)->refused, 1);
}

/* --- health checks ------------------------------------------------------------ */

struct checker {
	struct core *c;
	int i;
};

static void *health_main(void *arg)
{
	struct checker *ck = arg;
	struct upstream *u = &ck->c->up[ck->i];
	cio_interval iv;
	cio_drain_idle(true); /* a drain ends it at once */
	cio_interval_init(&iv, opt.health_ns);
	while (cio_interval_wait(&iv) >= 0) {
		cio_http_call *call;
		if (cio_http_call_new(u->client, "GET", opt.health, &call) < 0)
			continue;
		int status;
		CIO_WITH_TIMEOUT(opt.health_ns < 2 * CIO_SEC ? opt.health_ns : 2 * CIO_SEC) {
			status = cio_http_call_send(call);
			if (status > 0) {
				char sink[4096];
				ssize_t n;
				while ((n = cio_http_call_read(call, sink, sizeof sink)) > 0)
					;
				if (n < 0)
					status = (int)n;
			}
		}
		cio_http_call_free(call);
		if (status == -ECANCELED)
			break;
		if (status >= 200 && status < 400)
			upstream_ok(u, true);
		else
			upstream_failed(u);
	}
	return NULL;
}

/* --- stats ----------------------------------------------------------------------- */

/* The counters of every core, in Prometheus's text format, into buf. */
static size_t format_stats(char *buf, size_t cap)
{
	size_t len = 0;
#define OUT(...)                                                                  \
	do {                                                                      \
		int n_ = snprintf(buf + len, cap - len, __VA_ARGS__);             \
		if (n_ > 0)                                                       \
			len = len + (size_t)n_ < cap ? len + (size_t)n_ : cap - 1; \
	} while (0)
	static const char *const classes[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
	uint64_t total = 0;
	OUT("# HELP coreio_lb_connections_total Client connections accepted.\n"
	    "# TYPE coreio_lb_connections_total counter\n");
	for (int k = 0; k < MAX_CORES; k++)
		if (cores[k].live)
			OUT("coreio_lb_connections_total{core=\"%d\"} %" PRIu64 "\n", k,
			    get(&cores[k].conns));
	OUT("# HELP coreio_lb_requests_total Client requests.\n"
	    "# TYPE coreio_lb_requests_total counter\n");
	for (int k = 0; k < MAX_CORES; k++)
		if (cores[k].live) {
			OUT("coreio_lb_requests_total{core=\"%d\"} %" PRIu64 "\n", k,
			    get(&cores[k].requests));
			total += get(&cores[k].requests);
		}
	OUT("coreio_lb_requests_total{core=\"all\"} %" PRIu64 "\n", total);
	OUT("# HELP coreio_lb_responses_total Responses to clients by class.\n"
	    "# TYPE coreio_lb_responses_total counter\n");
	for (int k = 0; k < MAX_CORES; k++)
		for (int s = 1; s <= 5 && cores[k].live; s++)
			OUT("coreio_lb_responses_total{core=\"%d\",class=\"%s\"} %" PRIu64 "\n", k,
			    classes[s], get(&cores[k].responses[s]));
	OUT("# HELP coreio_lb_no_upstream_total Requests sent to an ejected upstream, all being.\n"
	    "# TYPE coreio_lb_no_upstream_total counter\n");
	for (int k = 0; k < MAX_CORES; k++)
		if (cores[k].live)
			OUT("coreio_lb_no_upstream_total{core=\"%d\"} %" PRIu64 "\n", k,
			    get(&cores[k].no_upstream));
	static const struct {
		const char *name, *help;
		size_t off;
	} ups[] = {
		{"upstream_requests_total", "Requests sent to an upstream.",
		 offsetof(struct upstream, requests)},
		{"upstream_errors_total", "Failures: refused, reset, timed out, malformed.",
		 offsetof(struct upstream, errors)},
		{"upstream_retries_total", "Requests sent elsewhere after a failure here.",
		 offsetof(struct upstream, retries)},
		{"upstream_ejections_total", "Times the upstream was ejected.",
		 offsetof(struct upstream, ejections)},
		{"upstream_up", "Whether the upstream takes requests (1) or is ejected (0).",
		 offsetof(struct upstream, up)},
	};
	for (size_t m = 0; m < sizeof ups / sizeof ups[0]; m++) {
		OUT("# HELP coreio_lb_%s %s\n# TYPE coreio_lb_%s %s\n", ups[m].name, ups[m].help,
		    ups[m].name, strstr(ups[m].name, "_total") ? "counter" : "gauge");
		for (int k = 0; k < MAX_CORES; k++)
			for (int i = 0; i < opt.nup && cores[k].live; i++)
				OUT("coreio_lb_%s{core=\"%d\",upstream=\"%s\"} %" PRIu64 "\n",
				    ups[m].name, k, opt.upstream[i],
				    get((counter *)((char *)&cores[k].up[i] + ups[m].off)));
	}
	OUT("# HELP coreio_lb_upstream_responses_total Upstream responses by class.\n"
	    "# TYPE coreio_lb_upstream_responses_total counter\n");
	for (int k = 0; k < MAX_CORES; k++)
		for (int i = 0; i < opt.nup && cores[k].live; i++)
			for (int s = 1; s <= 5; s++)
				OUT("coreio_lb_upstream_responses_total{core=\"%d\",upstream=\"%s\","
				    "class=\"%s\"} %" PRIu64 "\n",
				    k, opt.upstream[i], classes[s], get(&cores[k].up[i].status[s]));
#undef OUT
	return len;
}

static int stats_handle(cio_http_req *req, cio_http_resp *resp, void *arg)
{
	(void)req;
	(void)arg;
	size_t cap = 64 * 1024 + (size_t)MAX_CORES * 4096 + (size_t)MAX_CORES * opt.nup * 1024;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	size_t len = format_stats(buf, cap);
	/* The runtime's own counters after the proxy's: every core's. */
	ssize_t more = cio_stats_dump(buf + len, cap - len);
	if (more > 0)
		len += (size_t)more < cap - len ? (size_t)more : cap - len - 1;
	int rc = cio_http_resp_send(resp, 200, "text/plain; version=0.0.4", buf, len);
	free(buf);
	return rc;
}

static void *stats_conn(void *arg)
{
	cio_stream *st;
	if (cio_stream_new(&st, (int)(intptr_t)arg, NULL) == 0) {
		cio_http_serve_conn(st, NULL, stats_handle, NULL);
		cio_stream_close(st);
	}
	return NULL;
}

/* Core 0's stats listener, until the drain. */
static void *stats_main(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	int fd;
	while ((fd = cio_accept(lfd, NULL)) != -ESHUTDOWN && fd != -ECANCELED) {
		if (fd >= 0 && cio_spawn_with(&(cio_spawn_opts){.detached = true,
								 .stack_size = CONN_STACK},
					      stats_conn, (void *)(intptr_t)fd) < 0)
			cio_close(fd);
	}
	cio_close(lfd);
	return NULL;
}

/* --- the cores ------------------------------------------------------------------- */

static void *core_main(void *arg)
{
	(void)arg;
	int id = cio_core_id();
	struct core *c = &cores[id];
	cio_task_t checks[MAX_UPSTREAMS] = {0}, stats = 0;
	struct checker ck[MAX_UPSTREAMS];
	atomic_store(&ran, 1);
	cio_http_client_opts co = {.tls = tls_upstream, .response_timeout = opt.timeout_ns};
	for (int i = 0; i < opt.nup; i++) {
		int rc = cio_http_client_new(&c->up[i].client, opt.upstream[i], &co);
		if (rc < 0) {
			fprintf(stderr, "http_lb: upstream %s: %s\n", opt.upstream[i],
				cio_strerror(rc));
			atomic_store(&ex_status, 1);
			cio_drain();
			goto out;
		}
		atomic_store(&c->up[i].up, 1);
		if (opt.health) {
			ck[i] = (struct checker){c, i};
			checks[i] = cio_spawn_with(&(cio_spawn_opts){.name = "health"},
						   health_main, &ck[i]);
		}
	}
	c->live = true;
	if (id == 0 && opt.stats) {
		int lfd = cio_listen(opt.stats, NULL);
		if (lfd < 0) {
			fprintf(stderr, "http_lb: stats on %s: %s\n", opt.stats, cio_strerror(lfd));
			atomic_store(&ex_status, 1);
			cio_drain();
		} else {
			stats = cio_spawn(stats_main, (void *)(intptr_t)lfd);
		}
	}
	ex_server_run(&opt.srv, opt.task ? serve_task : serve, failed, c);
out:
	for (int i = 0; i < opt.nup; i++) {
		if (checks[i] > 0) {
			cio_cancel(checks[i]);
			while (cio_join(checks[i], NULL) == -ECANCELED)
				cio_cancel_clear();
		}
	}
	if (stats > 0) {
		cio_cancel(stats);
		while (cio_join(stats, NULL) == -ECANCELED)
			cio_cancel_clear();
	}
	for (int i = 0; i < opt.nup; i++)
		cio_http_client_free(c->up[i].client);
	return NULL;
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s --listen ADDR --upstream ADDR[,ADDR...] [--cores N]\n"
		"       [--balance rr|least] [--health PATH] [--health-ms MS] [--fails N]\n"
		"       [--eject-ms MS] [--timeout-ms MS] [--tls-cert FILE [--tls-key FILE]]\n"
		"       [--upstream-tls] [--upstream-ca FILE] [--stats ADDR]\n"
		"       [--max-body BYTES] [--seconds N] [--drain-ms MS] [--task]\n", prog);
	exit(2);
}

static int64_t number(const char *prog, const char *text)
{
	int64_t v = ex_number(text);
	if (v < 0)
		usage(prog);
	return v;
}

int main(int argc, char **argv)
{
	int64_t seconds = 0, drain_ms = 1000, cores_n = 0;
	char *list = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--upstream-tls") == 0) {
			opt.upstream_tls = true;
			continue;
		}
		if (strcmp(a, "--task") == 0) {
			opt.task = true;
			continue;
		}
		if (!val || a[0] != '-')
			usage(argv[0]);
		i++;
		if (strcmp(a, "--listen") == 0)
			opt.srv.addr = val;
		else if (strcmp(a, "--upstream") == 0)
			list = strdup(val);
		else if (strcmp(a, "--balance") == 0 && !strcmp(val, "least"))
			opt.least = true;
		else if (strcmp(a, "--balance") == 0 && !strcmp(val, "rr"))
			opt.least = false;
		else if (strcmp(a, "--health") == 0 && val[0] == '/')
			opt.health = val;
		else if (strcmp(a, "--health-ms") == 0)
			opt.health_ns = number(argv[0], val) * CIO_MS;
		else if (strcmp(a, "--fails") == 0)
			opt.max_fails = (int)number(argv[0], val);
		else if (strcmp(a, "--eject-ms") == 0)
			opt.eject_ns = number(argv[0], val) * CIO_MS;
		else if (strcmp(a, "--timeout-ms") == 0)
			opt.timeout_ns = number(argv[0], val) * CIO_MS;
		else if (strcmp(a, "--tls-cert") == 0)
			opt.tls_cert = val;
		else if (strcmp(a, "--tls-key") == 0)
			opt.tls_key = val;
		else if (strcmp(a, "--upstream-ca") == 0)
			opt.upstream_ca = val, opt.upstream_tls = true;
		else if (strcmp(a, "--stats") == 0)
			opt.stats = val;
		else if (strcmp(a, "--max-body") == 0)
			opt.max_body = (uint64_t)number(argv[0], val);
		else if (strcmp(a, "--seconds") == 0)
			seconds = number(argv[0], val);
		else if (strcmp(a, "--drain-ms") == 0)
			drain_ms = number(argv[0], val);
		else if (strcmp(a, "--cores") == 0)
			cores_n = number(argv[0], val);
		else
			usage(argv[0]);
	}
	for (char *save, *u = list ? strtok_r(list, ",", &save) : NULL; u;
	     u = strtok_r(NULL, ",", &save)) {
		if (opt.nup == MAX_UPSTREAMS)
			usage(argv[0]);
		opt.upstream[opt.nup++] = u;
	}
	if (!opt.srv.addr || opt.nup == 0 || cores_n > MAX_CORES || opt.max_fails < 1 ||
	    opt.health_ns <= 0 || opt.timeout_ns <= 0 || opt.max_body == 0 ||
	    (opt.tls_key && !opt.tls_cert))
		usage(argv[0]);
	opt.srv.run_ns = seconds > 0 ? seconds * CIO_SEC : CIO_NEVER;
	opt.http.max_body = opt.max_body;
	if (!opt.task)
		cio_http_turn_opts(&opt.srv.conn, &opt.http);
	char why[256], about[64];
	if (opt.tls_cert) {
		cio_tls_cert cert = {.cert_file = opt.tls_cert,
				     .key_file = opt.tls_key ? opt.tls_key : opt.tls_cert};
		cio_tls_server_opts to = {.certs = &cert, .ncerts = 1, .alpn = "http/1.1"};
		if (cio_tls_server_ctx(&tls_server, &to, why, sizeof why) < 0) {
			fprintf(stderr, "http_lb: TLS: %s\n", why);
			return 2;
		}
	}
	if (opt.upstream_tls) {
		cio_tls_client_opts to = {.ca_file = opt.upstream_ca, .alpn = "http/1.1"};
		if (cio_tls_client_ctx(&tls_upstream, &to, why, sizeof why) < 0) {
			fprintf(stderr, "http_lb: upstream TLS: %s\n", why);
			return 2;
		}
	}
	snprintf(about, sizeof about, "upstreams %d", opt.nup);
	opt.srv.about = about;

	ex_server_init();
	cio_cores_config cfg = {.drain_timeout = drain_ms > 0 ? drain_ms * CIO_MS : 1};
	int64_t t0 = cio_now();
	int rc = cio_run_cores_with(&cfg, (int)cores_n, core_main, NULL);
	cio_tls_ctx_free(tls_server);
	cio_tls_ctx_free(tls_upstream);
	if (rc < 0) {
		fprintf(stderr, "http_lb: cio_run_cores: %s\n", cio_strerror(rc));
		free(list);
		return atomic_load(&ran) ? 1 : 3;
	}
	uint64_t conns = 0, reqs = 0, bad = 0;
	for (int k = 0; k < MAX_CORES; k++) {
		conns += get(&cores[k].conns);
		reqs += get(&cores[k].requests);
		bad += get(&cores[k].responses[5]);
	}
	printf("http_lb: stopped after %.1f s: %" PRIu64 " connections, %" PRIu64
	       " requests, %" PRIu64 " answered 5xx\n",
	       (double)(cio_now() - t0) / 1e9, conns, reqs, bad);
	free(list);
	return atomic_load(&ex_status);
}
