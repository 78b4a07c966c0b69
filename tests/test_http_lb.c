/* test_http_lb.c - examples/http_lb in front of upstreams that share no
 * code with coreio (a Python http.server that counts what reaches it,
 * answers late, or resets inside a response; examples/http_hello for
 * speed), driven by curl, Python's http.client, wrk and hand-written
 * requests:
 *   - keep-alive, HTTP/1.0, HEAD, uploads by length and chunked echoed
 *     byte for byte, pipelining, an upstream given by name, TLS
 *     termination;
 *   - X-Forwarded-For, X-Forwarded-Proto and Via added, hop-by-hop
 *     fields (and those Connection names) removed;
 *   - round-robin over a keep-alive connection; least connections; active
 *     health checks ejecting a dead upstream and readmitting it; an
 *     ejected upstream still tried when it is the only one;
 *   - TLS to an upstream given by name, its certificate verified;
 *   - request smuggling attempts: each refused with 400 and a close, and
 *     not one request reaches the upstream;
 *   - upstream failures under load (one killed mid-run, one answering
 *     5 s late against a 2.5 s timeout, one resetting inside responses): every client gets its
 *     own response, and the only requests lost are those whose response
 *     the resetting upstream cut (counted); the killed one is ejected;
 *   - slowloris: 2,000 connections sending a head a byte a second, while
 *     a normal client is served promptly, the proxy's memory bounded;
 *   - the stats endpoint, and a drain on SIGTERM. */
#include "example_util.h"

#include <pthread.h>
#include <sys/resource.h>

static char dir[64];

static const char upstream_py[] =
	"import http.server, socketserver, sys, time, threading, socket, struct, os\n"
	"mode = sys.argv[1]\n"
	"lock = threading.Lock()\n"
	"seen = [0, 0]  # requests, responses cut\n"
	"class H(http.server.BaseHTTPRequestHandler):\n"
	"    protocol_version = 'HTTP/1.1'\n"
	"    def log_message(self, *a): pass\n"
	"    def do_GET(self): self.any()\n"
	"    def do_HEAD(self): self.any()\n"
	"    def do_POST(self): self.any()\n"
	"    def do_PUT(self): self.any()\n"
	"    def body(self):\n"
	"        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':\n"
	"            out = b''\n"
	"            while True:\n"
	"                n = int(self.rfile.readline().split(b';')[0], 16)\n"
	"                if n == 0:\n"
	"                    while self.rfile.readline() not in (b'\\r\\n', b''): pass\n"
	"                    return out\n"
	"                out += self.rfile.read(n)\n"
	"                self.rfile.readline()\n"
	"        n = int(self.headers.get('Content-Length') or 0)\n"
	"        return self.rfile.read(n) if n else b''\n"
	"    def reply(self, b):\n"
	"        # One write: a kill never falls between the head and the body.\n"
	"        head = ('HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n'\n"
	"                'Connection: keep-alive, X-Up-Private\\r\\nX-Up-Private: secret\\r\\n'\n"
	"                'Keep-Alive: timeout=60\\r\\n\\r\\n' % len(b)).encode()\n"
	"        self.wfile.write(head + (b if self.command != 'HEAD' else b''))\n"
	"        self.wfile.flush()\n"
	"    def any(self):\n"
	"        if self.path == '/count':\n"
	"            return self.reply(('%d %d' % tuple(seen)).encode())\n"
	"        with lock:\n"
	"            seen[0] += 1\n"
	"            k = seen[0]\n"
	"        body = self.body()\n"
	"        if self.path == '/headers':\n"
	"            return self.reply(str(self.headers).encode())\n"
	"        if self.path == '/echo':\n"
	"            return self.reply(body)\n"
	"        if self.path == '/who':\n"
	"            return self.reply(mode.encode())\n"
	"        if self.path == '/sleep':\n"
	"            time.sleep(1)\n"
	"            return self.reply(mode.encode())\n"
	"        if mode == 'late' and k % 5 == 0: time.sleep(5)\n"
	"        if mode == 'reset' and k % 7 == 0:\n"
	"            self.wfile.write(b'HTTP/1.1 200 OK\\r\\nContent-Length: 1000\\r\\n\\r\\n' + b'x' * 100)\n"
	"            self.wfile.flush()\n"
	"            time.sleep(0.05)\n"
	"            with lock: seen[1] += 1\n"
	"            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
	"            self.connection.close()\n"
	"            self.close_connection = True\n"
	"            return\n"
	"        self.reply(self.path.encode())\n"
	"class S(socketserver.ThreadingMixIn, http.server.HTTPServer):\n"
	"    daemon_threads = True\n"
	"    def handle_error(self, request, client_address): pass\n"
	"s = S(('127.0.0.1', int(sys.argv[2]) if len(sys.argv) > 2 else 0), H)\n"
	"print('upstream: listening on 127.0.0.1:%d, mode %s' % (s.server_address[1], mode), flush=True)\n"
	"def orphaned(ppid=os.getppid()):  # the test died: so does its upstream\n"
	"    while os.getppid() == ppid: time.sleep(0.5)\n"
	"    os._exit(1)\n"
	"threading.Thread(target=orphaned, daemon=True).start()\n"
	"s.serve_forever()\n";

/* An upstream whose /who answers mode, on port (0: any). */
static void upstream_on(struct child *c, const char *mode, int port)
{
	char p[16];
	snprintf(p, sizeof p, "%d", port);
	char *argv[] = {PYTHON_BIN, "-c", (char *)upstream_py, (char *)mode, p, NULL};
	ex_native(c, argv, "listening on");
}

static void upstream_start(struct child *c, const char *mode)
{
	upstream_on(c, mode, 0);
}

static void lb_start(struct child *c, char *const extra[], const char *upstreams)
{
	char *argv[40] = {HTTP_LB_BIN, "--cores", "2", "--listen", "127.0.0.1:0",
			  "--upstream", (char *)upstreams};
	int n = 7;
	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	ex_start(c, argv, "listening on");
}

/* SIGTERM: the proxy drains and exits 0 within 10 s. */
static void lb_stop(struct child *c)
{
	int st = ex_stop(c, SIGTERM, 10000);
	if (st != 0) {
		fprintf(stderr, "http_lb exited %d; it said:\n%s\n", st, c->text);
		CHECK(!"http_lb exits 0");
	}
}

/* A whole response read from a plain socket, and nothing after it (a
 * pipelined next one stays unread): the head a byte at a time, the body
 * by Content-Length.  Returns the status, or 0 when the connection ended
 * first. */
static int read_response(int fd, char *buf, size_t cap, const char **body)
{
	size_t len = 0;
	buf[0] = '\0';
	while (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0) {
		CHECK(len < cap - 1);
		ssize_t n = recv(fd, buf + len, 1, 0);
		if (n < 0 && errno == EINTR)
			continue; /* SO_RCVTIMEO makes any signal interrupt it */
		if (n != 1)
			return 0;
		buf[++len] = '\0';
	}
	const char *cl = strcasestr(buf, "\r\nContent-Length:");
	size_t want = len + (cl ? strtoul(cl + 17, NULL, 10) : 0);
	CHECK(want < cap);
	while (len < want) {
		ssize_t n = recv(fd, buf + len, want - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		len += (size_t)n;
	}
	buf[want] = '\0';
	*body = strstr(buf, "\r\n\r\n") + 4;
	return atoi(buf + 9);
}

/* The upstream's counts: requests that reached it, responses it cut. */
static void upstream_count(int port, int *requests, int *cut)
{
	char buf[512];
	const char *body;
	int fd = ex_dial(port);
	static const char req[] = "GET /count HTTP/1.1\r\nHost: x\r\n\r\n";
	ex_send_all(fd, req, sizeof req - 1);
	CHECK_EQ(read_response(fd, buf, sizeof buf, &body), 200);
	CHECK_EQ(sscanf(body, "%d %d", requests, cut), 2);
	close(fd);
}

/* --- clients through the proxy ----------------------------------------------- */

static void with_curl(int port)
{
	struct child c;
	char u1[64], u2[64], echo[64], hdr[64], in[96], out[96], data[128];
	snprintf(u1, sizeof u1, "http://127.0.0.1:%d/a", port);
	snprintf(u2, sizeof u2, "http://127.0.0.1:%d/b?x=1", port);
	snprintf(echo, sizeof echo, "http://127.0.0.1:%d/echo", port);
	snprintf(hdr, sizeof hdr, "http://127.0.0.1:%d/headers", port);

	/* Two URLs, one connection; HTTP/1.0. */
	char *keep[] = {CURL_BIN, "-sS", "--fail-with-body", "-w", "[%{num_connects}]", u1, u2,
			NULL};
	CHECK(strcmp(ex_run_ok(&c, keep), "/a[1]/b?x=1[0]") == 0);
	char *old[] = {CURL_BIN, "-sS", "--fail-with-body", "--http1.0", u1, NULL};
	CHECK(strcmp(ex_run_ok(&c, old), "/a") == 0);

	/* The fields the upstream got: the proxy's added, hop-by-hop gone;
	 * and those the client got. */
	char *fields[] = {CURL_BIN, "-sS", "--fail-with-body", "-D", "-",
			  "-H", "Connection: keep-alive, X-Private",
			  "-H", "X-Private: 1", "-H", "Keep-Alive: timeout=5", "-H", "TE: trailers",
			  "-H", "Upgrade: websocket", "-H", "X-Forwarded-For: 10.1.2.3",
			  "-H", "X-Kept: yes", hdr, NULL};
	const char *t = ex_run_ok(&c, fields);
	CHECK(strcasestr(t, "X-Forwarded-For: 10.1.2.3, 127.0.0.1"));
	CHECK(strcasestr(t, "X-Forwarded-Proto: http"));
	CHECK(strcasestr(t, "Via: 1.1 coreio-lb"));
	CHECK(strcasestr(t, "X-Kept: yes"));
	CHECK(!strcasestr(t, "X-Private"));
	CHECK(!strcasestr(t, "Keep-Alive"));
	CHECK(!strcasestr(t, "TE: trailers"));
	CHECK(!strcasestr(t, "Upgrade"));
	CHECK(!strcasestr(t, "X-Up-Private"));
	CHECK(!strcasestr(t, "timeout=60"));

	/* Uploads echoed back byte for byte: chunked and by length, over
	 * and under what the proxy's client holds (64 KiB). */
	snprintf(in, sizeof in, "%s/in", dir);
	snprintf(out, sizeof out, "%s/out", dir);
	snprintf(data, sizeof data, "@%s", in);
	static const size_t sizes[] = {1000, 300001};
	for (int k = 0; k < 2; k++) {
		ex_write_file(in, sizes[k], 777);
		char *chunked[] = {CURL_BIN, "-sS", "--fail-with-body", "-H",
				   "Transfer-Encoding: chunked", "--data-binary", data, "-o", out,
				   echo, NULL};
		ex_run_ok(&c, chunked);
		ex_same_files(in, out);
		char *sized[] = {CURL_BIN, "-sS", "--fail-with-body", "--data-binary", data, "-o",
				 out, echo, NULL};
		ex_run_ok(&c, sized);
		ex_same_files(in, out);
	}
	CHECK_EQ(unlink(in), 0);
	CHECK_EQ(unlink(out), 0);
}

static const char python_client[] =
	"import http.client, sys\n"
	"c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=20)\n"
	"c.connect()\n"
	"sock = c.sock\n"
	"for i in range(5):\n"
	"    c.request('GET', '/p%d' % i)\n"
	"    r = c.getresponse()\n"
	"    assert r.status == 200 and r.read() == b'/p%d' % i\n"
	"c.request('HEAD', '/abc')\n"
	"r = c.getresponse()\n"
	"assert r.status == 200 and r.getheader('Content-Length') == '4', r.getheaders()\n"
	"assert r.read() == b''\n"
	"body = bytes((i * 7 + (i >> 8)) & 255 for i in range(200000))\n"
	"c.request('POST', '/echo', body=body)\n"
	"r = c.getresponse()\n"
	"assert r.status == 200 and r.read() == body\n"
	"def pieces():\n"
	"    for n in (1, 10, 1000, 65536, 3):\n"
	"        yield body[:n]\n"
	"c.request('PUT', '/echo', body=pieces(), encode_chunked=True)\n"
	"r = c.getresponse()\n"
	"assert r.read() == b''.join(body[:n] for n in (1, 10, 1000, 65536, 3))\n"
	"assert c.sock is sock, 'the connection was not kept alive'\n"
	"print('python ok')\n";

static void with_python(int port)
{
	struct child c;
	char p[16];
	snprintf(p, sizeof p, "%d", port);
	char *argv[] = {PYTHON_BIN, "-c", (char *)python_client, p, NULL};
	CHECK(strstr(ex_run_ok(&c, argv), "python ok"));
}

/* Three requests in one send: three responses, in order. */
static void pipelined(int port)
{
	static const char reqs[] = "GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
				   "GET /two HTTP/1.1\r\nHost: x\r\n\r\n"
				   "GET /three HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char *const want[] = {"/one", "/two", "/three"};
	int fd = ex_dial(port);
	ex_send_all(fd, reqs, sizeof reqs - 1);
	char buf[4096];
	const char *body;
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(read_response(fd, buf, sizeof buf, &body), 200);
		CHECK(strcmp(body, want[i]) == 0);
	}
	close(fd);
}

/* Each attempt gets 400 and a close, and never reaches the upstream. */
static void smuggling(int port, int upstream_port)
{
	static const char *const bad[] = {
		/* CL.TE and TE.CL */
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
		/* TE.TE variants */
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n \r\n\r\n0\r\n\r\n",
		/* duplicate and malformed Content-Length */
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
		/* space before the colon, obs-fold, NUL, bare LF */
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
		"GET / HTTP/1.1\nHost: x\n\n",
		"GET / HTTP/1.1\r\nHost: x\nX-A: a\r\n\r\n",
		/* no Host, two Hosts */
		"GET / HTTP/1.1\r\nX-A: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		/* over-long and invalid chunk sizes */
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1 x\r\nx\r\n0\r\n\r\n",
		"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	};
	static const size_t lens[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
				      sizeof "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n" - 1};
	int before, after, cut;
	upstream_count(upstream_port, &before, &cut);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len = i < sizeof lens / sizeof lens[0] && lens[i] ? lens[i] : strlen(bad[i]);
		int fd = ex_dial(port);
		ex_send_all(fd, bad[i], len);
		char buf[4096];
		const char *body;
		int status = read_response(fd, buf, sizeof buf, &body);
		if (status != 400) {
			fprintf(stderr, "smuggling attempt %zu got %d:\n%s\n", i, status, buf);
			CHECK(!"400");
		}
		ex_expect_eof(fd);
		close(fd);
	}
	upstream_count(upstream_port, &after, &cut);
	CHECK_EQ(after, before);
}

/* One keep-alive connection: requests alternate between upstreams. */
static void round_robin(int port)
{
	int fd = ex_dial(port);
	char buf[4096], first[16] = "";
	const char *body;
	for (int i = 0; i < 6; i++) {
		static const char req[] = "GET /who HTTP/1.1\r\nHost: x\r\n\r\n";
		ex_send_all(fd, req, sizeof req - 1);
		CHECK_EQ(read_response(fd, buf, sizeof buf, &body), 200);
		if (i == 0)
			snprintf(first, sizeof first, "%s", body);
		CHECK_EQ(strcmp(body, first) == 0, i % 2 == 0);
	}
	close(fd);
}

/* GET /who on a new connection: the answering upstream's mode. */
static void who(int port, char *mode, size_t cap)
{
	int fd = ex_dial(port);
	static const char req[] = "GET /who HTTP/1.1\r\nHost: x\r\n\r\n";
	ex_send_all(fd, req, sizeof req - 1);
	char buf[4096];
	const char *body;
	CHECK_EQ(read_response(fd, buf, sizeof buf, &body), 200);
	snprintf(mode, cap, "%s", body);
	close(fd);
}

/* Least connections, on one core: while one upstream holds a slow
 * request, the other takes every request. */
static void least_conn(void)
{
	struct child a, b, lb;
	upstream_start(&a, "a");
	upstream_start(&b, "b");
	char list[128];
	snprintf(list, sizeof list, "127.0.0.1:%d,127.0.0.1:%d", ex_port(&a), ex_port(&b));
	char *argv[] = {HTTP_LB_BIN, "--cores", "1", "--listen", "127.0.0.1:0", "--upstream",
			list, "--balance", "least", NULL};
	ex_start(&lb, argv, "listening on");
	int port = ex_port(&lb);
	int slow = ex_dial(port);
	static const char req[] = "GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n";
	ex_send_all(slow, req, sizeof req - 1);
	usleep(200 * 1000);
	char first[16], m[16];
	who(port, first, sizeof first);
	for (int i = 0; i < 4; i++) {
		who(port, m, sizeof m);
		CHECK(strcmp(m, first) == 0);
	}
	char buf[4096];
	const char *body;
	CHECK_EQ(read_response(slow, buf, sizeof buf, &body), 200);
	CHECK(strcmp(body, first) != 0); /* the slow one was the other */
	close(slow);
	lb_stop(&lb);
	ex_stop(&a, SIGKILL, 5000);
	ex_stop(&b, SIGKILL, 5000);
}

/* "up" of the upstream on port in the stats at sport, on both cores: 1,
 * 0, or -1 while they disagree. */
static int stats_up(int sport, int port)
{
	static char t[256 << 10];
	const char *body;
	int fd = ex_dial(sport);
	static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	ex_send_all(fd, req, sizeof req - 1);
	CHECK_EQ(read_response(fd, t, sizeof t, &body), 200);
	close(fd);
	int seen[2] = {0, 0};
	char key[96];
	for (int core = 0; core < 2; core++) {
		snprintf(key, sizeof key,
			 "coreio_lb_upstream_up{core=\"%d\",upstream=\"127.0.0.1:%d\"} ", core, port);
		const char *at = strstr(body, key);
		CHECK(at);
		seen[atoi(at + strlen(key)) != 0]++;
	}
	return seen[1] == 2 ? 1 : seen[0] == 2 ? 0 : -1;
}

/* A port nobody listens on now. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof a;
	CHECK_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	CHECK_EQ(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* Active checks: an upstream that dies is ejected with no request sent
 * to it, and readmitted when it comes back. */
static void health(void)
{
	struct child a, b, lb;
	upstream_start(&a, "a");
	upstream_start(&b, "b");
	int pa = ex_port(&a), sport = free_port();
	char list[128], stats[32];
	snprintf(list, sizeof list, "127.0.0.1:%d,127.0.0.1:%d", pa, ex_port(&b));
	snprintf(stats, sizeof stats, "127.0.0.1:%d", sport);
	char *extra[] = {"--health", "/who", "--health-ms", "100", "--fails", "2",
			 "--eject-ms", "600000", "--stats", stats, NULL};
	lb_start(&lb, extra, list);
	int port = ex_port(&lb);
	usleep(300 * 1000);
	CHECK_EQ(stats_up(sport, pa), 1);
	ex_stop(&a, SIGKILL, 5000);
	int64_t t0 = ex_now_ms();
	while (stats_up(sport, pa) != 0) {
		CHECK(ex_now_ms() - t0 < 5000);
		usleep(50 * 1000);
	}
	char m[16];
	for (int i = 0; i < 6; i++) {
		who(port, m, sizeof m);
		CHECK(strcmp(m, "b") == 0);
	}
	upstream_on(&a, "a", pa);
	t0 = ex_now_ms();
	while (stats_up(sport, pa) != 1) {
		CHECK(ex_now_ms() - t0 < 5000);
		usleep(50 * 1000);
	}
	lb_stop(&lb);
	ex_stop(&a, SIGKILL, 5000);
	ex_stop(&b, SIGKILL, 5000);
}

/* One upstream, ejected after its first failure for ten minutes: it is
 * still tried, and serves again as soon as it is back. */
static void fail_open(void)
{
	struct child a, lb;
	upstream_start(&a, "a");
	int pa = ex_port(&a);
	char list[64];
	snprintf(list, sizeof list, "127.0.0.1:%d", pa);
	char *argv[] = {HTTP_LB_BIN, "--cores", "1", "--listen", "127.0.0.1:0", "--upstream",
			list, "--fails", "1", "--eject-ms", "600000", NULL};
	ex_start(&lb, argv, "listening on");
	int port = ex_port(&lb);
	ex_stop(&a, SIGKILL, 5000);
	static const char req[] = "GET /who HTTP/1.1\r\nHost: x\r\n\r\n";
	char buf[4096];
	const char *body;
	int fd = ex_dial(port);
	ex_send_all(fd, req, sizeof req - 1);
	CHECK_EQ(read_response(fd, buf, sizeof buf, &body), 502);
	close(fd);
	upstream_on(&a, "a", pa);
	char m[16];
	who(port, m, sizeof m);
	CHECK(strcmp(m, "a") == 0);
	lb_stop(&lb);
	ex_stop(&a, SIGKILL, 5000);
}

/* --- failures under load --------------------------------------------------------- */

struct load {
	int port;
	pid_t kill_pid;    /* killed a second in */
	int ok, lost, wrong;
};

static struct load *load_now;

static void *load_task(void *arg)
{
	int id = (int)(intptr_t)arg;
	char origin[64];
	snprintf(origin, sizeof origin, "127.0.0.1:%d", load_now->port);
	cio_http_client *cl;
	CHECK_EQ(cio_http_client_new(&cl, origin, NULL), 0);
	int64_t end = cio_now() + 3 * CIO_SEC;
	for (int i = 0; cio_now() < end; i++) {
		char target[64];
		snprintf(target, sizeof target, "/id/%d/%d", id, i);
		cio_http_call *call;
		CHECK_EQ(cio_http_call_new(cl, "GET", target, &call), 0);
		int st = cio_http_call_send(call);
		const char *body;
		ssize_t n = st == 200 ? cio_http_call_body(call, 4096, &body) : -1;
		if (st == 200 && n >= 0 && strcmp(body, target) == 0)
			load_now->ok++;
		else if (st == 200 && n >= 0)
			load_now->wrong++; /* another client's response */
		else
			load_now->lost++;
		if (st != 200 || n < 0)
			fprintf(stderr, "  lost %s: %d %zd %s\n", target, st, n,
				cio_http_call_error(call));
		cio_http_call_free(call);
	}
	cio_http_client_free(cl);
	return NULL;
}

static void *load_main(void *arg)
{
	(void)arg;
	cio_task_t t[16];
	for (int i = 0; i < 16; i++)
		t[i] = cio_spawn(load_task, (void *)(intptr_t)i);
	cio_sleep(CIO_SEC);
	CHECK_EQ(kill(load_now->kill_pid, SIGKILL), 0);
	for (int i = 0; i < 16; i++)
		CHECK_EQ(cio_join(t[i], NULL), 0);
	return NULL;
}

static void failures(void)
{
	struct child up[4], lb;
	static const char *const modes[] = {"normal", "late", "killed", "reset"};
	char list[256] = "";
	int ports[4];
	for (int i = 0; i < 4; i++) {
		upstream_start(&up[i], modes[i]);
		ports[i] = ex_port(&up[i]);
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s127.0.0.1:%d",
			 i ? "," : "", ports[i]);
	}
	char stats[64];
	int sport = free_port();
	snprintf(stats, sizeof stats, "127.0.0.1:%d", sport);
	char *extra[] = {"--timeout-ms", "2500", "--fails", "2", "--eject-ms", "60000",
			 "--stats", stats, NULL};
	lb_start(&lb, extra, list);
	struct load l = {.port = ex_port(&lb), .kill_pid = up[2].pid};
	load_now = &l;
	cio_config cfg = test_backend_config();
	CHECK_EQ(cio_run_with(&cfg, load_main, NULL), 0);
	ex_wait(&up[2], 5000);
	int requests, cut;
	upstream_count(ports[3], &requests, &cut);
	fprintf(stderr, "failures: %d ok, %d lost, %d wrong; the resetting upstream cut %d\n",
		l.ok, l.lost, l.wrong, cut);
	CHECK_EQ(l.wrong, 0);
	CHECK(cut > 0);
	CHECK(l.ok > 100);

	/* The killed one is ejected on every core that tried it since. */
	static char t[256 << 10];
	const char *body;
	int fd = ex_dial(sport);
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	ex_send_all(fd, req, sizeof req - 1);
	int status = read_response(fd, t, sizeof t, &body);
	if (status != 200)
		fprintf(stderr, "stats: status %d (%s)\n", status, strerror(errno));
	CHECK_EQ(status, 200);
	close(fd);
	if (l.lost != cut)
		fprintf(stderr, "stats:\n%s\n", body);
	CHECK_EQ(l.lost, cut);
	char want[128];
	snprintf(want, sizeof want, "coreio_lb_upstream_up{core=\"0\",upstream=\"127.0.0.1:%d\"} 0",
		 ports[2]);
	if (!strstr(t, want))
		fprintf(stderr, "stats:\n%s\n", t);
	CHECK(strstr(t, want));
	snprintf(want, sizeof want, "coreio_lb_upstream_up{core=\"0\",upstream=\"127.0.0.1:%d\"} 1",
		 ports[0]);
	CHECK(strstr(t, want));
	CHECK(strstr(t, "coreio_lb_requests_total{core=\"all\"}"));
	CHECK(strstr(t, "coreio_accepted_total{core=\"1\"}"));
	lb_stop(&lb);
	for (int i = 0; i < 4; i++)
		if (i != 2)
			ex_stop(&up[i], SIGKILL, 5000);
}

/* --- slowloris ------------------------------------------------------------------------ */

static void slowloris(int port, pid_t lb_pid)
{
	enum { SLOW = 2000 };
	static int fds[SLOW];
	long rss0 = ex_rss_kib(lb_pid);
	for (int i = 0; i < SLOW; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK(fds[i] >= 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		CHECK_EQ(connect(fds[i], (struct sockaddr *)&a, sizeof a), 0);
		ex_send_all(fds[i], "GET /slow HTTP/1.1\r\n", 20);
	}
	/* A byte a second from each, while a normal client comes and goes
	 * (after a first second, for the proxy to take them all in). */
	int64_t worst = 0;
	for (int s = -1; s < 3; s++) {
		for (int i = 0; i < SLOW; i++)
			send(fds[i], "X", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		int64_t t0 = ex_now_ms();
		int fd = ex_dial(port);
		static const char req[] = "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n";
		ex_send_all(fd, req, sizeof req - 1);
		char buf[4096];
		const char *body;
		CHECK_EQ(read_response(fd, buf, sizeof buf, &body), 200);
		close(fd);
		int64_t took = ex_now_ms() - t0;
		if (s >= 0)
			worst = took > worst ? took : worst;
		usleep(1000 * 1000);
	}
	long rss1 = ex_rss_kib(lb_pid);
	fprintf(stderr, "slowloris: %d slow connections, a normal request took %lld ms at worst, "
		"proxy RSS %ld -> %ld KiB\n", SLOW, (long long)worst, rss0, rss1);
	CHECK(worst < 1000);
	/* Each slow connection holds a task's touched stack, its stream's
	 * buffers and its head: well under 64 KiB. */
	CHECK(rss1 - rss0 < SLOW * 64L);
	for (int i = 0; i < SLOW; i++)
		close(fds[i]);
}

/* --- the whole ----------------------------------------------------------------------- */

#ifdef COREIO_TEST_TLS
static void with_tls(int upstream_port)
{
	char cert[96], key[96], cmd[512], url[64], resolve[64], up[64];
	snprintf(cert, sizeof cert, "%s/cert.pem", dir);
	snprintf(key, sizeof key, "%s/key.pem", dir);
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout %s -out %s -days 2 -subj /CN=localhost "
		 "-addext subjectAltName=DNS:localhost 2>/dev/null", key, cert);
	CHECK_EQ(system(cmd), 0);
	snprintf(up, sizeof up, "127.0.0.1:%d", upstream_port);
	struct child lb, c;
	char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
	lb_start(&lb, extra, up);
	int port = ex_port(&lb);
	snprintf(url, sizeof url, "https://localhost:%d/headers", port);
	snprintf(resolve, sizeof resolve, "localhost:%d:127.0.0.1", port);
	char *get[] = {CURL_BIN, "-sS", "--fail-with-body", "--cacert", cert, "--resolve", resolve,
		       url, NULL};
	CHECK(strcasestr(ex_run_ok(&c, get), "X-Forwarded-Proto: https"));
	lb_stop(&lb);

	/* TLS to an upstream given by name, its certificate checked. */
	struct child hello;
	char *hargv[] = {HTTP_HELLO_BIN, "--cores", "1", "--tls-cert", cert, "--tls-key", key,
			 "127.0.0.1:0", NULL};
	ex_start(&hello, hargv, "listening on");
	snprintf(up, sizeof up, "localhost:%d", ex_port(&hello));
	char *extra2[] = {"--upstream-ca", cert, NULL};
	lb_start(&lb, extra2, up);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/", ex_port(&lb));
	char *get2[] = {CURL_BIN, "-sS", "--fail-with-body", url, url, NULL};
	CHECK(strcmp(ex_run_ok(&c, get2), "Hello, world!\nHello, world!\n") == 0);
	lb_stop(&lb);
	CHECK_EQ(ex_stop(&hello, SIGTERM, 10000), 0);
	CHECK_EQ(unlink(cert), 0);
	CHECK_EQ(unlink(key), 0);
}
#endif

static void with_wrk(int port)
{
	struct child c;
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
	char *argv[] = {WRK_BIN, "-t1", "-c16", "-d1", url, NULL};
	const char *t = ex_run_ok(&c, argv);
	if (strstr(t, "Non-2xx") || strstr(t, "Socket errors") || !strstr(t, "requests in")) {
		fprintf(stderr, "wrk through http_lb:\n%s\n", t);
		CHECK(!"wrk clean");
	}
}

/* The fixtures that several cases share, each started by the first case
 * that needs it: two counting Python upstreams, a and b; http_lb in front
 * of a, given by name; http_hello, and http_lb in front of it. */
static struct child up_a, up_b, lb_a, hello, lb_hello;
static bool have_a, have_b, have_lb_a, have_hello, have_lb_hello;

/* A Python upstream takes most of a second to start: each is started
 * only for the cases that use it. */
static void need_a(void)
{
	if (!have_a)
		upstream_start(&up_a, "a");
	have_a = true;
}

static void need_b(void)
{
	if (!have_b)
		upstream_start(&up_b, "b");
	have_b = true;
}

static int lb_on_a(void)
{
	need_a();
	if (!have_lb_a) {
		char list[128];
		snprintf(list, sizeof list, "localhost:%d", ex_port(&up_a));
		lb_start(&lb_a, NULL, list);
		have_lb_a = true;
	}
	return ex_port(&lb_a);
}

static int lb_on_hello(void)
{
	if (!have_lb_hello) {
		char *hargv[] = {HTTP_HELLO_BIN, "--cores", "1", "127.0.0.1:0", NULL};
		ex_start(&hello, hargv, "listening on");
		have_hello = true;
		char list[128];
		snprintf(list, sizeof list, "127.0.0.1:%d", ex_port(&hello));
		lb_start(&lb_hello, NULL, list);
		have_lb_hello = true;
	}
	return ex_port(&lb_hello);
}

/* Stops the http_lb in front of http_hello: within 5 s, as slowloris's
 * connections are closed at once, and no request failed. */
static void stop_lb_hello(void)
{
	int64_t t0 = ex_now_ms();
	lb_stop(&lb_hello);
	have_lb_hello = false;
	CHECK(ex_now_ms() - t0 < 5000);
	CHECK(strstr(lb_hello.text, "0 answered 5xx"));
}

static void round_robin_ab(void)
{
	struct child lb;
	char list[128];
	need_a();
	need_b();
	snprintf(list, sizeof list, "127.0.0.1:%d,127.0.0.1:%d", ex_port(&up_a),
		 ex_port(&up_b));
	lb_start(&lb, NULL, list);
	round_robin(ex_port(&lb));
	lb_stop(&lb);
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_backend_missing();
	if (rc)
		return rc;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	snprintf(dir, sizeof dir, "/tmp/coreio-lb-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);

	TEST_CASE(curl, with_curl(lb_on_a()));
	TEST_CASE(python, with_python(lb_on_a()));
	TEST_CASE(pipelined, pipelined(lb_on_a()));
	TEST_CASE(smuggling, {
		int port = lb_on_a(); /* before up_a's port is read */
		smuggling(port, ex_port(&up_a));
	});
	if (have_lb_a)
		lb_stop(&lb_a);
	TEST_CASE(round_robin, round_robin_ab());
	TEST_CASE(least_conn, least_conn());
	TEST_CASE(health, health());
	TEST_CASE(fail_open, fail_open());
#ifdef COREIO_TEST_TLS
	TEST_CASE(tls, {
		need_a();
		with_tls(ex_port(&up_a));
	});
#else
	TEST_CASE_OFF(tls, "no TLS in this build");
#endif
	if (have_a)
		ex_stop(&up_a, SIGKILL, 5000);
	if (have_b)
		ex_stop(&up_b, SIGKILL, 5000);

	/* In front of http_hello: wrk, slowloris, the drain. */
	TEST_CASE(wrk, with_wrk(lb_on_hello()));
	TEST_CASE(slowloris, {
		int port = lb_on_hello(); /* before lb_hello's pid is read */
		slowloris(port, lb_hello.pid);
		stop_lb_hello();
	});
	if (have_lb_hello)
		stop_lb_hello();
	if (have_hello)
		CHECK_EQ(ex_stop(&hello, SIGTERM, 10000), 0);

	TEST_CASE(failures, failures());
	CHECK_EQ(rmdir(dir), 0);
	fprintf(stderr, "ok\n");
	return test_cases_end();
}
