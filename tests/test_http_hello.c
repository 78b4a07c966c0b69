/* test_http_hello.c - examples/http_hello against clients that share no
 * code with coreio: curl (several URLs on one connection, --http1.0,
 * /bytes/N, a chunked upload and a Content-Length one echoed back, HTTPS
 * where the library has TLS) and Python's http.client (keep-alive, HEAD, bodies
 * both ways, chunked), each byte-checked; the --stats endpoint's
 * counters, fetched with curl; then SIGTERM drains an idle
 * keep-alive connection at once and the server exits 0.  A missing curl
 * or python3 fails the test (scripts/deps.sh installs them). */
#include "example_util.h"

#include <sys/stat.h>

#define HELLO "Hello, world!\n"

static char dir[64];
static int port;

static void with_curl(void)
{
	struct child c;
	char u1[64], u2[64], u3[64], echo[64], in[96], out[96], hdrs[96];
	snprintf(u1, sizeof u1, "http://127.0.0.1:%d/a", port);
	snprintf(u2, sizeof u2, "http://127.0.0.1:%d/b", port);
	snprintf(u3, sizeof u3, "http://127.0.0.1:%d/c?x=1", port);
	snprintf(echo, sizeof echo, "http://127.0.0.1:%d/echo", port);

	/* Three URLs, one connection: num_connects is 1, then 0, 0. */
	char *keep[] = {CURL_BIN, "-sS", "--fail-with-body", "-w", "[%{num_connects}]",
			u1, u2, u3, NULL};
	const char *text = ex_run_ok(&c, keep);
	CHECK(strcmp(text, HELLO "[1]" HELLO "[0]" HELLO "[0]") == 0);

	/* HTTP/1.0: the answer, then the close. */
	snprintf(hdrs, sizeof hdrs, "%s/headers", dir);
	char *old[] = {CURL_BIN, "-sS", "--fail-with-body", "--http1.0", "-D", hdrs, u1, NULL};
	CHECK(strcmp(ex_run_ok(&c, old), HELLO) == 0);
	char *grep[] = {"grep", "-qi", "^Connection: close", hdrs, NULL};
	ex_run_ok(&c, grep);

	/* Uploads echoed back byte for byte: chunked, then with a length. */
	snprintf(in, sizeof in, "%s/in", dir);
	snprintf(out, sizeof out, "%s/out", dir);
	ex_write_file(in, 300001, 777);
	char data[128];
	snprintf(data, sizeof data, "@%s", in);
	char *chunked[] = {CURL_BIN, "-sS", "--fail-with-body", "-H", "Transfer-Encoding: chunked",
			   "--data-binary", data, "-o", out, echo, NULL};
	ex_run_ok(&c, chunked);
	ex_same_files(in, out);
	char *sized[] = {CURL_BIN, "-sS", "--fail-with-body", "--data-binary", data, "-o", out,
			 echo, NULL};
	ex_run_ok(&c, sized);
	ex_same_files(in, out);

	/* /bytes/N: N bytes of 'x', more than one write's worth. */
	char bytes[64];
	snprintf(bytes, sizeof bytes, "http://127.0.0.1:%d/bytes/40000", port);
	char *get[] = {CURL_BIN, "-sS", "--fail-with-body", "-o", out, "-w", "[%{size_download}]",
		       bytes, NULL};
	CHECK(strcmp(ex_run_ok(&c, get), "[40000]") == 0);
	FILE *f = fopen(out, "re");
	CHECK(f);
	int ch;
	while ((ch = fgetc(f)) == 'x')
		;
	CHECK_EQ(ch, EOF);
	fclose(f);

	CHECK_EQ(unlink(in), 0);
	CHECK_EQ(unlink(out), 0);
	CHECK_EQ(unlink(hdrs), 0);
}

/* The --stats endpoint: Prometheus text of both cores, with the
 * connections the clients above made counted. */
static void with_stats(int stats_port)
{
	struct child c;
	char url[64], path[96];
	static char text[65536];
	/* Connections of its own to count, whatever case ran before. */
	snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
	char *hit[] = {CURL_BIN, "-sS", "--fail-with-body", url, NULL};
	for (int i = 0; i < 3; i++)
		ex_run_ok(&c, hit);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", stats_port);
	snprintf(path, sizeof path, "%s/metrics", dir);
	/* To a file: the text is longer than what a child's output keeps. */
	char *get[] = {CURL_BIN, "-sS", "--fail-with-body", "--http1.0", "-o", path, url, NULL};
	ex_run_ok(&c, get);
	FILE *f = fopen(path, "re");
	CHECK(f);
	size_t n = fread(text, 1, sizeof text - 1, f);
	text[n] = '\0';
	fclose(f);
	CHECK_EQ(unlink(path), 0);
	CHECK(strstr(text, "# TYPE coreio_accepted_total counter\n"));
	CHECK(strstr(text, "coreio_tasks_live{core=\"1\"} "));
	long long accepted = 0, reads = 0;
	for (int core = 0; core < 2; core++) {
		char name[96];
		const char *p;
		snprintf(name, sizeof name, "coreio_accepted_total{core=\"%d\"} ", core);
		CHECK((p = strstr(text, name)) != NULL);
		accepted += atoll(p + strlen(name));
		snprintf(name, sizeof name, "coreio_ops_total{core=\"%d\",kind=\"read\"} ", core);
		CHECK((p = strstr(text, name)) != NULL);
		reads += atoll(p + strlen(name));
	}
	CHECK(accepted >= 4); /* the three above, then this one */
	CHECK(reads > 0);
}

static const char python_client[] =
	"import http.client, sys\n"
	"port = int(sys.argv[1])\n"
	"c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)\n"
	"c.connect()\n"
	"sock = c.sock\n"
	"for i in range(5):\n"
	"    c.request('GET', '/p%d' % i)\n"
	"    r = c.getresponse()\n"
	"    assert r.status == 200 and r.read() == b'Hello, world!\\n'\n"
	"    assert r.getheader('Content-Length') == '14'\n"
	"c.request('HEAD', '/')\n"
	"r = c.getresponse()\n"
	"assert r.status == 200 and r.getheader('Content-Length') == '14'\n"
	"assert r.read() == b''\n"
	"body = bytes((i * 7 + (i >> 8)) & 255 for i in range(200000))\n"
	"c.request('POST', '/echo', body=body)\n"
	"r = c.getresponse()\n"
	"assert r.status == 200 and r.read() == body\n"
	"def pieces():\n"
	"    for n in (1, 10, 1000, 65536, 3):\n"
	"        yield body[:n]\n"
	"c.request('POST', '/echo', body=pieces(), encode_chunked=True)\n"
	"r = c.getresponse()\n"
	"assert r.getheader('Transfer-Encoding') == 'chunked'\n"
	"want = b''.join(body[:n] for n in (1, 10, 1000, 65536, 3))\n"
	"assert r.read() == want\n"
	"c.request('DELETE', '/x')\n"
	"r = c.getresponse()\n"
	"assert r.status == 405 and r.getheader('Allow') == 'GET, HEAD, POST'\n"
	"r.read()\n"
	"assert c.sock is sock, 'the connection was not kept alive'\n"
	"print('python ok')\n";

static void with_python(void)
{
	struct child c;
	char p[16];
	snprintf(p, sizeof p, "%d", port);
	char *argv[] = {PYTHON_BIN, "-c", (char *)python_client, p, NULL};
	CHECK(strstr(ex_run_ok(&c, argv), "python ok"));
}

#ifdef COREIO_TEST_TLS
/* HTTPS: http_hello --tls-cert, curl checking the certificate. */
static void with_tls(void)
{
	char cert[96], key[96], cmd[512], url[64], resolve[64];
	snprintf(cert, sizeof cert, "%s/cert.pem", dir);
	snprintf(key, sizeof key, "%s/key.pem", dir);
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout %s -out %s -days 2 -subj /CN=localhost "
		 "-addext subjectAltName=DNS:localhost 2>/dev/null", key, cert);
	CHECK_EQ(system(cmd), 0);
	struct child srv, c;
	char *argv[] = {HTTP_HELLO_BIN, "--cores", "1", "--tls-cert", cert, "--tls-key", key,
			"127.0.0.1:0", NULL};
	ex_start(&srv, argv, "listening on");
	int tport = ex_port(&srv);
	snprintf(url, sizeof url, "https://localhost:%d/", tport);
	snprintf(resolve, sizeof resolve, "localhost:%d:127.0.0.1", tport);
	char *get[] = {CURL_BIN, "-sS", "--fail-with-body", "--cacert", cert, "--resolve", resolve,
		       "-w", "[%{num_connects}]", url, url, NULL};
	CHECK(strcmp(ex_run_ok(&c, get), HELLO "[1]" HELLO "[0]") == 0);
	CHECK_EQ(ex_stop(&srv, SIGTERM, 10000), 0);
	CHECK_EQ(unlink(cert), 0);
	CHECK_EQ(unlink(key), 0);
}
#endif

/* A keep-alive connection, idle after one request. */
static int idle_conn(void)
{
	static const char req[] = "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n";
	int fd = ex_dial(port);
	ex_send_all(fd, req, sizeof req - 1);
	char buf[512] = "";
	size_t got = 0;
	while (!strstr(buf, HELLO)) {
		ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		CHECK(n > 0);
		got += (size_t)n;
		buf[got] = '\0';
	}
	return fd;
}

/* The drain closes idle keep-alive connections at once, not after
 * --drain-ms. */
static void drain(struct child *srv)
{
	int idle[3];
	for (int i = 0; i < 3; i++)
		idle[i] = idle_conn();
	int64_t t0 = ex_now_ms();
	CHECK_EQ(ex_stop(srv, SIGTERM, 20000), 0);
	CHECK(ex_now_ms() - t0 < 5000);
	for (int i = 0; i < 3; i++) {
		ex_expect_eof(idle[i]);
		close(idle[i]);
	}
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_backend_missing();
	if (rc)
		return rc;
	snprintf(dir, sizeof dir, "/tmp/coreio-http-XXXXXX");
	CHECK(mkdtemp(dir) != NULL);

	struct child srv;
	char *sargv[] = {HTTP_HELLO_BIN, "--cores", "2", "--drain-ms", "20000",
			 "--stats", "127.0.0.1:0", "127.0.0.1:0", NULL};
	ex_start(&srv, sargv, "listening on");
	port = ex_port(&srv);
	/* "http_hello: stats on 127.0.0.1:PORT", printed before listening. */
	const char *sl = strstr(srv.text, "stats on 127.0.0.1:");
	CHECK(sl != NULL);
	int stats_port = atoi(sl + strlen("stats on 127.0.0.1:"));
	CHECK(stats_port > 0 && stats_port != port);
	const char *want = getenv("COREIO_BACKEND");
	if (want) {
		char b[32];
		snprintf(b, sizeof b, "backend %s", strcmp(want, "uring") == 0 ? "io_uring" : want);
		CHECK(strstr(srv.text, b));
	}
	TEST_CASE(curl, with_curl());
	TEST_CASE(stats, with_stats(stats_port));
	TEST_CASE(python, with_python());
#ifdef COREIO_TEST_TLS
	TEST_CASE(tls, with_tls());
#else
	TEST_CASE_OFF(tls, "no TLS in this build");
#endif
	TEST_CASE(drain, drain(&srv));
	if (!test_case_wanted("drain"))
		CHECK_EQ(ex_stop(&srv, SIGTERM, 20000), 0);
	if (!strstr(srv.text, "requests, 0 connection errors")) {
		fprintf(stderr, "unexpected summary:\n%s\n", srv.text);
		CHECK(!"summary");
	}
	CHECK_EQ(rmdir(dir), 0);
	return test_cases_end();
}
