/* test_dns.c - cio_resolve() and cio_dial() against dnsmasq instances of
 * the test's own on loopback (never the system's resolver): both
 * families, hosts-file names, numeric names, DNS errors and their texts,
 * deadlines, cancellation, the per-core cache and its TTLs, concurrent
 * lookups on one core, and Happy Eyeballs dialling. */
#include "net_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define DNSMASQ "/usr/sbin/dnsmasq"

/* A dnsmasq of the test's, serving the names of a hosts file. */
struct dns_server {
	pid_t pid;
	int port;
	char servers[32]; /* "127.0.0.1:port", for cio_resolve_opts */
	char hosts[64];
};

static const char hosts_text[] =
	"127.0.0.1 a.test\n"
	"::1 six.test\n"
	"127.0.0.1 both.test\n"
	"::1 both.test\n"
	"127.0.0.5 multi.test\n"
	"127.0.0.6 multi.test\n"
	"127.0.0.7 multi.test\n"
	"127.0.0.1 ready.test\n"
	"127.0.0.2 he.test\n"
	"127.0.0.1 he.test\n"
	"127.0.0.1 refuse.test\n"
	"127.0.0.2 refuse.test\n"
	"127.0.0.2 hole.test\n"
	"127.0.1.1 n1.test\n127.0.1.2 n2.test\n127.0.1.3 n3.test\n127.0.1.4 n4.test\n"
	"127.0.1.5 n5.test\n127.0.1.6 n6.test\n127.0.1.7 n7.test\n127.0.1.8 n8.test\n";

/* A port free on 127.0.0.1 for UDP and TCP now, chosen by the kernel. */
static int free_port(void)
{
	for (;;) {
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t len = sizeof a;
		CHECK(u >= 0);
		CHECK_EQ(bind(u, (struct sockaddr *)&a, sizeof a), 0);
		CHECK_EQ(getsockname(u, (struct sockaddr *)&a, &len), 0);
		int t = socket(AF_INET, SOCK_STREAM, 0);
		bool ok = bind(t, (struct sockaddr *)&a, sizeof a) == 0;
		close(t);
		close(u);
		if (ok)
			return ntohs(a.sin_port);
	}
}

static bool server_answers(struct dns_server *s)
{
	cio_resolve_opts o = {.servers = s->servers, .no_cache = true,
			      .try_timeout = 50 * CIO_MS, .tries = 1};
	cio_addr *addrs = NULL;
	size_t n = 0;
	int rc = -1;
	CIO_WITH_TIMEOUT(300 * CIO_MS) {
		rc = cio_resolve("ready.test", NULL, &o, &addrs, &n);
	}
	cio_addrs_free(addrs);
	return rc == 0;
}

/* Starts dnsmasq with the given TTL for its local names and waits until
 * it answers.  Fails the test if dnsmasq is not installed. */
static void server_start(struct dns_server *s, int ttl)
{
	if (access(DNSMASQ, X_OK) != 0) {
		fprintf(stderr, "FAIL: %s is missing: run scripts/deps.sh\n", DNSMASQ);
		abort();
	}
	strcpy(s->hosts, "/tmp/coreio-dns-hosts-XXXXXX");
	int hfd = mkstemp(s->hosts);
	CHECK(hfd >= 0);
	CHECK_EQ(write(hfd, hosts_text, sizeof hosts_text - 1), (long long)sizeof hosts_text - 1);
	close(hfd);
	for (int round = 0; round < 20; round++) {
		char port[32], hosts[96], ttls[32];
		s->port = free_port();
		snprintf(s->servers, sizeof s->servers, "127.0.0.1:%d", s->port);
		snprintf(port, sizeof port, "--port=%d", s->port);
		snprintf(hosts, sizeof hosts, "--addn-hosts=%s", s->hosts);
		snprintf(ttls, sizeof ttls, "--local-ttl=%d", ttl);
		char *argv[] = {
			DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
			"--listen-address=127.0.0.1", "--bind-interfaces", port, hosts, ttls,
			"--local=/test/", /* other .test names: NXDOMAIN */
			"--pid-file=", "--conf-file=/dev/null", "--log-facility=/dev/null",
			geteuid() == 0 ? "--user=root" : NULL, NULL,
		};
		s->pid = fork();
		CHECK(s->pid >= 0);
		if (s->pid == 0) {
			int null = open("/dev/null", O_RDWR);
			dup2(null, 0);
			dup2(null, 1);
			execv(DNSMASQ, argv);
			_exit(127);
		}
		for (int i = 0; i < 200; i++) {
			if (server_answers(s))
				return;
			if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
				break; /* the port was taken meanwhile: another */
			cio_sleep(20 * CIO_MS);
		}
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
	}
	fprintf(stderr, "FAIL: dnsmasq never answered\n");
	abort();
}

static void server_stop(struct dns_server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		CHECK_EQ(waitpid(s->pid, NULL, 0), s->pid);
		s->pid = 0;
	}
	unlink(s->hosts);
}

static struct dns_server main_server; /* TTL 60 s */

static cio_resolve_opts opts_for(const struct dns_server *s, int family)
{
	return (cio_resolve_opts){.family = family, .servers = s->servers, .no_cache = true};
}

static void addr_text(const cio_addr *a, char *buf, size_t cap)
{
	CHECK(cio_addr_format(a, buf, cap) > 0);
}

/* Resolves name and checks the addresses, as text, against want[] (in
 * order when ordered, else as a set). */
static void expect_addrs(const char *name, const char *service, int family,
			 const char *const *want, size_t nwant, bool ordered)
{
	cio_resolve_opts o = opts_for(&main_server, family);
	cio_addr *addrs;
	size_t n;
	int rc = cio_resolve(name, service, &o, &addrs, &n);
	if (rc != 0)
		fprintf(stderr, "%s: %s\n", name, cio_strerror(rc));
	CHECK_EQ(rc, 0);
	CHECK_EQ(n, nwant);
	for (size_t i = 0; i < n; i++) {
		char text[64];
		addr_text(&addrs[i], text, sizeof text);
		bool found = false;
		for (size_t j = 0; j < nwant && !found; j++)
			found = strcmp(text, want[j]) == 0 && (!ordered || i == j);
		if (!found)
			fprintf(stderr, "%s: unexpected %s at %zu\n", name, text, i);
		CHECK(found);
	}
	cio_addrs_free(addrs);
}

static void test_families(void)
{
	expect_addrs("a.test", "80", AF_INET, (const char *[]){"127.0.0.1:80"}, 1, true);
	expect_addrs("a.test", NULL, AF_UNSPEC, (const char *[]){"127.0.0.1:0"}, 1, true);
	expect_addrs("six.test", "443", AF_INET6, (const char *[]){"[::1]:443"}, 1, true);
	expect_addrs("both.test", "7", AF_UNSPEC, (const char *[]){"127.0.0.1:7", "[::1]:7"}, 2,
		     false);
	expect_addrs("both.test", "7", AF_INET6, (const char *[]){"[::1]:7"}, 1, true);
	expect_addrs("multi.test", "http", AF_INET,
		     (const char *[]){"127.0.0.5:80", "127.0.0.6:80", "127.0.0.7:80"}, 3, false);
	/* DNS ignores case. */
	expect_addrs("A.Test", "1", AF_INET, (const char *[]){"127.0.0.1:1"}, 1, true);
}

/* A UDP socket that is bound and never read: a DNS server that never
 * answers. */
static int silent_server(char *servers, size_t cap)
{
	int fd = cio_udp_bind("127.0.0.1:0");
	CHECK(fd >= 0);
	local_addr(fd, servers, cap);
	return fd;
}

static void test_numeric(void)
{
	char servers[64];
	int silent = silent_server(servers, sizeof servers);
	cio_resolve_opts o = {.servers = servers};
	cio_addr *addrs;
	size_t n;
	int64_t t0 = cio_now();
	CIO_WITH_TIMEOUT(100 * CIO_MS) {
		CHECK_EQ(cio_resolve("127.0.0.9", "25", &o, &addrs, &n), 0);
	}
	char text[64];
	CHECK_EQ(n, 1);
	addr_text(&addrs[0], text, sizeof text);
	CHECK(strcmp(text, "127.0.0.9:25") == 0);
	cio_addrs_free(addrs);
	CIO_WITH_TIMEOUT(100 * CIO_MS) {
		CHECK_EQ(cio_resolve("2001:db8::1", "25", &o, &addrs, &n), 0);
	}
	addr_text(&addrs[0], text, sizeof text);
	CHECK(strcmp(text, "[2001:db8::1]:25") == 0);
	cio_addrs_free(addrs);
	o.family = AF_INET6;
	CHECK_EQ(cio_resolve("127.0.0.9", NULL, &o, &addrs, &n), -CIO_EDNS_NODATA);
	CHECK(addrs == NULL && n == 0);
	CHECK(cio_now() - t0 < 1000 * CIO_MS); /* no query went out (it waits seconds) */
	/* Bad arguments. */
	o.family = 12345;
	CHECK_EQ(cio_resolve("a.test", NULL, &o, &addrs, &n), -EINVAL);
	o.family = 0;
	CHECK_EQ(cio_resolve("a.test", "no-such-service-x", &o, &addrs, &n), -EINVAL);
	CHECK_EQ(cio_resolve("a.test", "65536", &o, &addrs, &n), -EINVAL);
	CHECK_EQ(cio_close(silent), 0);
}

static void test_errors(void)
{
	cio_resolve_opts o = opts_for(&main_server, AF_UNSPEC);
	cio_addr *addrs = (cio_addr *)&o;
	size_t n = 99;
	int rc = cio_resolve("nosuch.test", NULL, &o, &addrs, &n);
	CHECK_EQ(rc, -CIO_EDNS_NXDOMAIN);
	CHECK(addrs == NULL && n == 0);
	CHECK(strcmp(cio_strerror(rc), "Name not found (NXDOMAIN)") == 0);
	CHECK(strcmp(cio_strerror(CIO_EDNS_NXDOMAIN), "Name not found (NXDOMAIN)") == 0);
	o.family = AF_INET6;
	rc = cio_resolve("a.test", NULL, &o, &addrs, &n);
	CHECK_EQ(rc, -CIO_EDNS_NODATA);
	CHECK(strstr(cio_strerror(rc), "NODATA") != NULL);
	CHECK(strstr(cio_strerror(-CIO_EDNS_SERVFAIL), "SERVFAIL") != NULL);
	CHECK(strcmp(cio_strerror(-CIO_EDNS_TIMEOUT), "DNS query timed out") == 0);
	o.family = AF_UNSPEC;
	CHECK_EQ(cio_resolve("bad..name.test", NULL, &o, &addrs, &n), -CIO_EDNS_BADNAME);
	o.servers = "not a server list";
	CHECK_EQ(cio_resolve("a.test", NULL, &o, &addrs, &n), -EINVAL);
}

static void test_deadline(void)
{
	char servers[64];
	int silent = silent_server(servers, sizeof servers);
	int fds = test_count_fds();
	cio_resolve_opts o = {.servers = servers, .no_cache = true};
	cio_addr *addrs;
	size_t n;
	int rc = 0;
	int64_t t0 = cio_now();
	CIO_WITH_TIMEOUT(300 * CIO_MS) {
		rc = cio_resolve("a.test", NULL, &o, &addrs, &n);
	}
	int64_t took = cio_now() - t0;
	CHECK_EQ(rc, -ETIMEDOUT);
	CHECK(took >= 290 * CIO_MS && took < 600 * CIO_MS);
	CHECK_EQ(test_count_fds(), fds);

	/* Every try timed out, before the task's deadline: the DNS's code. */
	o.try_timeout = 40 * CIO_MS;
	o.tries = 2;
	t0 = cio_now();
	CIO_WITH_TIMEOUT(3 * CIO_SEC) {
		rc = cio_resolve("a.test", NULL, &o, &addrs, &n);
	}
	CHECK_EQ(rc, -CIO_EDNS_TIMEOUT);
	CHECK(cio_now() - t0 < 1 * CIO_SEC);
	CHECK_EQ(test_count_fds(), fds);

	/* Both at once: the deadline wins. */
	o.try_timeout = 200 * CIO_MS;
	o.tries = 1;
	CIO_WITH_TIMEOUT(200 * CIO_MS) {
		rc = cio_resolve("a.test", NULL, &o, &addrs, &n);
	}
	CHECK(rc == -ETIMEDOUT || rc == -CIO_EDNS_TIMEOUT);
	CHECK_EQ(test_count_fds(), fds);
	CHECK_EQ(cio_close(silent), 0);
}

static void *resolve_silent(void *arg)
{
	cio_resolve_opts o = {.servers = arg, .no_cache = true};
	cio_addr *addrs;
	size_t n;
	return (void *)(intptr_t)cio_resolve("a.test", NULL, &o, &addrs, &n);
}

static void test_cancel(void)
{
	char servers[64];
	int silent = silent_server(servers, sizeof servers);
	int fds = test_count_fds();
	cio_task_t t = cio_spawn(resolve_silent, servers);
	CHECK(t > 0);
	CHECK_EQ(cio_sleep(50 * CIO_MS), 0);
	CHECK(test_count_fds() > fds); /* its query's socket is open */
	CHECK_EQ(cio_cancel(t), 0);
	CHECK_EQ(join_rc(t), -ECANCELED);
	CHECK_EQ(test_count_fds(), fds);
	CHECK_EQ(cio_close(silent), 0);
	/* The next lookup works. */
	expect_addrs("a.test", NULL, AF_INET, (const char *[]){"127.0.0.1:0"}, 1, true);
}

static void test_cache(void)
{
	struct dns_server s = {0};
	server_start(&s, 60);
	cio_resolve_opts o = {.family = AF_INET, .servers = s.servers};
	cio_addr *addrs;
	size_t n;
	cio_resolve_cache_clear();
	CHECK_EQ(cio_resolve("multi.test", "1", &o, &addrs, &n), 0);
	CHECK_EQ(n, 3);
	cio_addrs_free(addrs);
	CHECK_EQ(cio_resolve("nosuch.test", NULL, &o, &addrs, &n), -CIO_EDNS_NXDOMAIN);
	server_stop(&s);

	/* The server is gone: answers come from the cache, with the port
	 * asked now. */
	CIO_WITH_TIMEOUT(100 * CIO_MS) {
		CHECK_EQ(cio_resolve("multi.test", "2", &o, &addrs, &n), 0);
		CHECK_EQ(n, 3);
		for (size_t i = 0; i < n; i++)
			CHECK_EQ(ntohs(addrs[i].u.in.sin_port), 2);
		cio_addrs_free(addrs);
		CHECK_EQ(cio_resolve("nosuch.test", NULL, &o, &addrs, &n), -CIO_EDNS_NXDOMAIN);
	}
	/* Bypassing it, or keyed otherwise (another family), asks the dead
	 * server and fails. */
	int rc = 0;
	o.no_cache = true;
	o.try_timeout = 50 * CIO_MS;
	o.tries = 1;
	CIO_WITH_TIMEOUT(2 * CIO_SEC) {
		rc = cio_resolve("multi.test", NULL, &o, &addrs, &n);
	}
	CHECK(rc < 0 && rc != -ETIMEDOUT);
	o.no_cache = false;
	o.family = AF_UNSPEC;
	CIO_WITH_TIMEOUT(2 * CIO_SEC) {
		rc = cio_resolve("multi.test", NULL, &o, &addrs, &n);
	}
	CHECK(rc < 0 && rc != -ETIMEDOUT);
	o.family = AF_INET;
	cio_resolve_cache_clear();
	CIO_WITH_TIMEOUT(2 * CIO_SEC) {
		rc = cio_resolve("multi.test", NULL, &o, &addrs, &n);
	}
	CHECK(rc < 0 && rc != -ETIMEDOUT);

	/* TTL 1 s: kept for a second, then asked again. */
	server_start(&s, 1);
	o = (cio_resolve_opts){.family = AF_INET, .servers = s.servers,
			       .try_timeout = 50 * CIO_MS, .tries = 1};
	CHECK_EQ(cio_resolve("a.test", NULL, &o, &addrs, &n), 0);
	cio_addrs_free(addrs);
	server_stop(&s);
	CHECK_EQ(cio_resolve("a.test", NULL, &o, &addrs, &n), 0);
	cio_addrs_free(addrs);
	CHECK_EQ(cio_sleep(1200 * CIO_MS), 0);
	CIO_WITH_TIMEOUT(2 * CIO_SEC) {
		rc = cio_resolve("a.test", NULL, &o, &addrs, &n);
	}
	CHECK(rc < 0 && rc != -ETIMEDOUT);
	cio_resolve_cache_clear();
}

/* The cache keeps 1024 names: the 1025th evicts the oldest, only. */
static void test_cache_bound(void)
{
	struct dns_server s = {0};
	server_start(&s, 60);
	cio_resolve_opts o = {.family = AF_INET, .servers = s.servers,
			      .try_timeout = 50 * CIO_MS, .tries = 1};
	cio_addr *addrs;
	size_t n;
	char name[32];
	cio_resolve_cache_clear();
	/* Patient while the server runs: a thousand answers on a loaded
	 * machine may take one of them past 50 ms. */
	cio_resolve_opts patient = o;
	patient.try_timeout = 2 * CIO_SEC;
	patient.tries = 2;
	for (int i = 0; i <= 1024; i++) {
		snprintf(name, sizeof name, "e%d.test", i);
		CHECK_EQ(cio_resolve(name, NULL, &patient, &addrs, &n), -CIO_EDNS_NXDOMAIN);
	}
	server_stop(&s);
	CHECK_EQ(cio_resolve("e1.test", NULL, &o, &addrs, &n), -CIO_EDNS_NXDOMAIN);
	CHECK_EQ(cio_resolve("e1024.test", NULL, &o, &addrs, &n), -CIO_EDNS_NXDOMAIN);
	int rc = 0;
	CIO_WITH_TIMEOUT(2 * CIO_SEC) {
		rc = cio_resolve("e0.test", NULL, &o, &addrs, &n);
	}
	CHECK(rc < 0 && rc != -CIO_EDNS_NXDOMAIN && rc != -ETIMEDOUT);
	cio_resolve_cache_clear();
}

static int running_lookups, peak_lookups;
static char silent_servers[64];

static void *resolve_nth(void *arg)
{
	int k = (int)(intptr_t)arg;
	char name[32], want[32], got[64];
	snprintf(name, sizeof name, "n%d.test", k);
	snprintf(want, sizeof want, "127.0.1.%d:%d", k, k);
	/* A silent server first: each query waits there 100 ms before it
	 * goes to dnsmasq, so all are in flight together, each on two
	 * sockets. */
	char servers[96];
	snprintf(servers, sizeof servers, "%s,%s", silent_servers, main_server.servers);
	cio_resolve_opts o = {.family = AF_INET, .servers = servers, .no_cache = true,
			      .try_timeout = 100 * CIO_MS, .tries = 2};
	cio_addr *addrs;
	size_t n;
	char port[8];
	snprintf(port, sizeof port, "%d", k);
	if (++running_lookups > peak_lookups)
		peak_lookups = running_lookups;
	int rc = cio_resolve(name, port, &o, &addrs, &n);
	running_lookups--;
	CHECK_EQ(rc, 0);
	CHECK_EQ(n, 1);
	addr_text(&addrs[0], got, sizeof got);
	if (strcmp(got, want) != 0)
		fprintf(stderr, "%s: got %s\n", name, got);
	CHECK(strcmp(got, want) == 0);
	cio_addrs_free(addrs);
	return NULL;
}

static void test_concurrent(void)
{
	cio_task_t t[8];
	int silent = silent_server(silent_servers, sizeof silent_servers);
	int64_t t0 = cio_now();
	for (int k = 0; k < 8; k++)
		t[k] = cio_spawn(resolve_nth, (void *)(intptr_t)(k + 1));
	for (int k = 0; k < 8; k++)
		join_rc(t[k]);
	CHECK_EQ(peak_lookups, 8); /* all were in flight together */
	CHECK(cio_now() - t0 < 500 * CIO_MS);
	CHECK_EQ(cio_close(silent), 0);
}

/* A listener on addr whose accept queue is full: SYNs to it are dropped,
 * so a connect there hangs, as to a host that has gone. */
static int blackhole(const char *addr, int conn[1])
{
	cio_addr a;
	CHECK_EQ(cio_addr_parse(&a, addr), 0);
	int fd = cio_socket(a.u.sa.sa_family, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	CHECK_EQ(bind(fd, &a.u.sa, a.len), 0);
	CHECK_EQ(listen(fd, 0), 0);
	conn[0] = cio_connect(addr, 0); /* fills the queue */
	CHECK(conn[0] >= 0);
	return fd;
}

static void test_dial(void)
{
	char addr[64], hostport[64];
	cio_dial_opts o = {.dns_servers = main_server.servers, .family = AF_INET};

	/* By name, to a local listener. */
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	local_addr(lfd, addr, sizeof addr);
	const char *port = strrchr(addr, ':') + 1;
	snprintf(hostport, sizeof hostport, "a.test:%s", port);
	int fd = cio_dial(hostport, &o);
	CHECK(fd >= 0);
	int peer = cio_accept(lfd, NULL);
	CHECK(peer >= 0);
	CHECK_EQ(cio_send(fd, "x", 1, 0), 1);
	char c;
	CHECK_EQ(cio_recv(peer, &c, 1, 0), 1);
	CHECK_EQ(c, 'x');
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_close(peer), 0);
	/* Numeric, and malformed. */
	fd = cio_dial(addr, NULL);
	CHECK(fd >= 0);
	CHECK_EQ(cio_close(fd), 0);
	peer = cio_accept(lfd, NULL);
	CHECK_EQ(cio_close(peer), 0);
	CHECK_EQ(cio_dial("a.test", &o), -EINVAL);
	CHECK_EQ(cio_dial("::1:80", &o), -EINVAL);
	CHECK_EQ(cio_dial("nosuch.test:80", &o), -CIO_EDNS_NXDOMAIN);

	/* Happy Eyeballs: he.test's first address drops SYNs, its second
	 * (the listener above) answers. */
	char hole[64];
	snprintf(hole, sizeof hole, "127.0.0.2:%s", port);
	int filler;
	int hfd = blackhole(hole, &filler);
	int fds = test_count_fds();
	o.attempt_delay = 100 * CIO_MS;
	snprintf(hostport, sizeof hostport, "he.test:%s", port);
	int64_t t0 = cio_now();
	fd = cio_dial(hostport, &o);
	int64_t took = cio_now() - t0;
	CHECK(fd >= 0);
	CHECK(took >= 90 * CIO_MS && took < 500 * CIO_MS);
	cio_addr a;
	a.len = sizeof a.u;
	CHECK_EQ(getpeername(fd, &a.u.sa, &a.len), 0);
	CHECK_EQ(ntohl(a.u.in.sin_addr.s_addr), 0x7f000001); /* the second */
	CHECK_EQ(test_count_fds(), fds + 1); /* the loser is closed */
	CHECK_EQ(cio_close(fd), 0);
	peer = cio_accept(lfd, NULL);
	CHECK_EQ(cio_close(peer), 0);

	/* Only the black hole: the deadline ends the dial. */
	snprintf(hostport, sizeof hostport, "hole.test:%s", port);
	t0 = cio_now();
	CIO_WITH_TIMEOUT(300 * CIO_MS) {
		fd = cio_dial(hostport, &o);
	}
	CHECK_EQ(fd, -ETIMEDOUT);
	took = cio_now() - t0;
	CHECK(took >= 290 * CIO_MS && took < 800 * CIO_MS);
	CHECK_EQ(test_count_fds(), fds);
	/* Or each attempt's own timeout. */
	o.attempt_timeout = 100 * CIO_MS;
	CIO_WITH_TIMEOUT(2 * CIO_SEC) {
		fd = cio_dial(hostport, &o);
	}
	CHECK_EQ(fd, -ETIMEDOUT);
	CHECK_EQ(test_count_fds(), fds);
	o.attempt_timeout = 0;
	CHECK_EQ(cio_close(hfd), 0);
	CHECK_EQ(cio_close(filler), 0);

	/* Every address refuses: the first refusal, at once. */
	CHECK_EQ(cio_close(lfd), 0);
	snprintf(hostport, sizeof hostport, "refuse.test:%s", port);
	o.attempt_delay = CIO_SEC; /* far above a stalled machine's pauses */
	t0 = cio_now();
	CHECK_EQ(cio_dial(hostport, &o), -ECONNREFUSED);
	CHECK(cio_now() - t0 < 900 * CIO_MS); /* a failure starts the next at once */
	o.attempt_delay = 100 * CIO_MS;
	CHECK_EQ(test_count_fds(), fds - 3);

	/* Unix sockets pass through. */
	char path[64];
	snprintf(path, sizeof path, "unix:/tmp/coreio-dns-%d.sock", (int)getpid());
	unlink(path + 5);
	lfd = cio_listen(path, NULL);
	CHECK(lfd >= 0);
	fd = cio_dial(path, NULL);
	CHECK(fd >= 0);
	CHECK_EQ(cio_close(fd), 0);
	CHECK_EQ(cio_close(lfd), 0);
	unlink(path + 5);
}

/* A dial cancelled while its attempts hang closes them all. */
static void *dial_hole(void *arg)
{
	cio_dial_opts o = {.dns_servers = main_server.servers, .attempt_delay = 10 * CIO_MS};
	return (void *)(intptr_t)cio_dial(arg, &o);
}

static void test_dial_cancel(void)
{
	char hole[64], hostport[64];
	int filler;
	int lfd = cio_listen("127.0.0.1:0", NULL);
	local_addr(lfd, hole, sizeof hole);
	CHECK_EQ(cio_close(lfd), 0);
	const char *port = strrchr(hole, ':') + 1;
	snprintf(hostport, sizeof hostport, "hole.test:%s", port);
	snprintf(hole, sizeof hole, "127.0.0.2:%s", port);
	int hfd = blackhole(hole, &filler);
	int fds = test_count_fds();
	cio_task_t t = cio_spawn(dial_hole, hostport);
	CHECK_EQ(cio_sleep(50 * CIO_MS), 0);
	CHECK(test_count_fds() > fds);
	CHECK_EQ(cio_cancel(t), 0);
	CHECK_EQ(join_rc(t), -ECANCELED);
	CHECK_EQ(test_count_fds(), fds);
	CHECK_EQ(cio_close(hfd), 0);
	CHECK_EQ(cio_close(filler), 0);
}

static void *run(void *arg)
{
	(void)arg;
	/* The dnsmasq that most cases ask, started for any case. */
	server_start(&main_server, 60);
	TEST_CASE(families, test_families());
	TEST_CASE(numeric, test_numeric());
	TEST_CASE(errors, test_errors());
	TEST_CASE(deadline, test_deadline());
	TEST_CASE(cancel, test_cancel());
	TEST_CASE(concurrent, test_concurrent());
	TEST_CASE(cache, test_cache());
	TEST_CASE(cache_bound, test_cache_bound());
	TEST_CASE(dial, test_dial());
	TEST_CASE(dial_cancel, test_dial_cancel());
	server_stop(&main_server);
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_run(run, NULL);
	return rc ? rc : test_cases_end();
}
