/* test_file_server.c - runs examples/file_server as a child process on a
 * temporary root and sends it requests over plain blocking sockets: files
 * served whole and byte for byte with correct headers, several on one
 * kept-alive connection, and every attempt to leave the root refused
 * (dot-dot segments, raw or encoded, encoded slashes, absolute paths, a
 * symbolic link leading out, NUL bytes), while no byte of the file outside
 * the root ever comes back; malformed requests, other methods, an
 * over-long head and a silent client are answered as documented and the
 * server goes on serving. */
#include "example_util.h"
#include "net_util.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#ifndef FILE_SERVER_BIN
#error "FILE_SERVER_BIN: the path of examples/file_server"
#endif

#define SECRET "TOPSECRET-outside-the-root"
#define BIG_SIZE ((3u << 19) + 7) /* 1.5 MiB + 7 */

static int port;
static char top[64], root[128];
static uint8_t *big;

struct response {
	int status;
	char head[4096];  /* status line and headers, NUL-terminated */
	uint8_t *body;
	size_t body_len;
	long content_length;
};

static void put_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "we");
	CHECK(f);
	CHECK_EQ(fwrite(data, 1, len, f), len);
	CHECK_EQ(fclose(f), 0);
}

/* Blocking socket calls that carry on after EINTR.  A socket call under
 * SO_RCVTIMEO / SO_SNDTIMEO fails with EINTR when the process is stopped
 * and continued (SIGSTOP, a cgroup freeze), even with no handler. */
static ssize_t xrecv(int fd, void *buf, size_t len)
{
	ssize_t n;
	while ((n = recv(fd, buf, len, 0)) < 0 && errno == EINTR)
		;
	return n;
}

static ssize_t xsend(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = send(fd, (const char *)buf + done, len - done, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* Reads the whole response (the server closes after it) and parses it. */
static void read_response(int fd, struct response *r)
{
	size_t cap = BIG_SIZE + 8192, len = 0;
	uint8_t *buf = malloc(cap);
	CHECK(buf);
	ssize_t n;
	while (len < cap && (n = xrecv(fd, buf + len, cap - len)) > 0)
		len += (size_t)n;
	close(fd);
	memset(r, 0, sizeof *r);
	r->status = -1;
	r->content_length = -1;
	CHECK(!memmem(buf, len, SECRET, strlen(SECRET)));
	uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end) {
		free(buf);
		return; /* closed without a response */
	}
	size_t hl = (size_t)(end - buf) + 2;
	CHECK(hl < sizeof r->head);
	memcpy(r->head, buf, hl);
	r->head[hl] = '\0';
	r->body_len = len - hl - 2;
	r->body = malloc(r->body_len + 1);
	CHECK(r->body);
	memcpy(r->body, end + 4, r->body_len);
	free(buf);
	CHECK(strncmp(r->head, "HTTP/1.1 ", 9) == 0);
	r->status = atoi(r->head + 9);
	/* Every header line is NAME: VALUE CRLF, with no bare LF. */
	for (char *l = strstr(r->head, "\r\n") + 2; *l;) {
		char *e = strstr(l, "\r\n");
		CHECK(e);
		CHECK(memchr(l, ':', (size_t)(e - l)));
		CHECK(!memchr(l, '\n', (size_t)(e - l)));
		l = e + 2;
	}
	const char *cl = strstr(r->head, "\r\nContent-Length: ");
	CHECK(cl);
	r->content_length = atol(cl + 18);
	CHECK(strstr(r->head, "\r\nConnection: close\r\n"));
	CHECK(strstr(r->head, "\r\nDate: "));
	if (!strstr(r->head, "\r\nContent-Type: "))
		fprintf(stderr, "no Content-Type:\n%s\n", r->head);
	CHECK(strstr(r->head, "\r\nContent-Type: "));
}

static void raw(const void *req, size_t len, struct response *r)
{
	int fd = ex_dial(port);
	CHECK_EQ(xsend(fd, req, len), (ssize_t)len);
	read_response(fd, r);
}

static int get(const char *target, struct response *r)
{
	char req[1024];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: test\r\nUser-Agent: t\r\n\r\n",
			 target);
	raw(req, (size_t)n, r);
	if (r->status > 0)
		CHECK_EQ(r->content_length, (long)r->body_len);
	return r->status;
}

static void drop(struct response *r)
{
	free(r->body);
	r->body = NULL;
}

static void expect(const char *target, int status)
{
	struct response r;
	int got = get(target, &r);
	if (got != status) {
		fprintf(stderr, "GET %s: %d, expected %d\n%s\n", target, got, status, r.head);
		CHECK(!"unexpected status");
	}
	drop(&r);
}

static void expect_raw(const char *req, int status)
{
	struct response r;
	raw(req, strlen(req), &r);
	if (r.status != status) {
		fprintf(stderr, "request \"%s\": %d, expected %d\n", req, r.status, status);
		CHECK(!"unexpected status");
	}
	drop(&r);
}

/* Two requests on one connection, pipelined: both answered, in order. */
static void keeps_alive(void)
{
	static const char req[] = "GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n"
				  "GET /sub/note.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	int fd = ex_dial(port);
	CHECK_EQ(xsend(fd, req, sizeof req - 1), (ssize_t)sizeof req - 1);
	char buf[4096];
	size_t got = 0;
	ssize_t n;
	while (got < sizeof buf - 1 && (n = xrecv(fd, buf + got, sizeof buf - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fd);
	char *first = strstr(buf, "HTTP/1.1 200 "), *second = first ? strstr(first + 1, "HTTP/1.1 200 ") : NULL;
	CHECK(first == buf && second);
	CHECK(strstr(first, "<h1>hi</h1>\n") < second);
	CHECK(strstr(second, "\r\nConnection: close\r\n"));
	CHECK(strstr(second, "\r\n\r\nnote\n"));
}

static void serves(void)
{
	struct response r;
	keeps_alive();
	CHECK_EQ(get("/index.html", &r), 200);
	CHECK_EQ(r.body_len, 12);
	CHECK(memcmp(r.body, "<h1>hi</h1>\n", 12) == 0);
	CHECK(strstr(r.head, "\r\nContent-Type: text/html; charset=utf-8\r\n"));
	CHECK(strstr(r.head, "\r\nLast-Modified: "));
	drop(&r);
	CHECK_EQ(get("/big.bin", &r), 200);
	CHECK_EQ(r.body_len, BIG_SIZE);
	CHECK(memcmp(r.body, big, BIG_SIZE) == 0);
	CHECK(strstr(r.head, "\r\nContent-Type: application/octet-stream\r\n"));
	drop(&r);
	CHECK_EQ(get("/sub/note.txt?x=1", &r), 200);
	CHECK(strstr(r.head, "\r\nContent-Type: text/plain; charset=utf-8\r\n"));
	CHECK(r.body_len == 5 && memcmp(r.body, "note\n", 5) == 0);
	drop(&r);
	CHECK_EQ(get("/sub/./n%6fte.txt", &r), 200); /* decoded, "." dropped */
	drop(&r);
	if (getenv("COREIO_TEST_QEMU")) {
		/* qemu-user 7.2 lacks openat2: the server's fallback walk
		 * refuses every link, even one that stays in. */
		CHECK_EQ(get("/inside-link.html", &r), 403);
	} else {
		CHECK_EQ(get("/inside-link.html", &r), 200); /* a link that stays in */
		CHECK_EQ(r.body_len, 12);
	}
	drop(&r);
	CHECK_EQ(get("/empty.txt", &r), 200);
	CHECK_EQ(r.body_len, 0);
	drop(&r);
	/* HEAD: the headers of GET, no body. */
	const char *head = "HEAD /big.bin HTTP/1.0\r\n\r\n";
	raw(head, strlen(head), &r);
	CHECK_EQ(r.status, 200);
	CHECK_EQ(r.content_length, BIG_SIZE);
	CHECK_EQ(r.body_len, 0);
	drop(&r);
	/* A request sent in pieces. */
	int fd = ex_dial(port);
	CHECK_EQ(xsend(fd, "GET /index", 10), 10);
	usleep(50000);
	CHECK_EQ(xsend(fd, ".html HTTP/1.0\r\n", 16), 16);
	usleep(50000);
	CHECK_EQ(xsend(fd, "\r\n", 2), 2);
	read_response(fd, &r);
	CHECK_EQ(r.status, 200);
	drop(&r);
}

static void refuses(void)
{
	expect("/missing.html", 404);
	expect("/sub/missing", 404);
	expect("/index.html/x", 404); /* ENOTDIR */
	/* Escapes: 403, whatever the spelling. */
	expect("/../secret.txt", 403);
	expect("/a/../../secret.txt", 403);
	expect("/sub/../index.html", 403); /* every ".." is refused */
	expect("/%2e%2e/secret.txt", 403);
	expect("/%2E%2e/secret.txt", 403);
	expect("/.%2e/secret.txt", 403);
	expect("/%2F..%2Fsecret.txt", 403);
	expect("/sub%2f..%2f..%2fsecret.txt", 403);
	expect("/outside-link", 403);
	expect("/sub/outside-dir-link/secret.txt", 403);
	/* Absolute paths map under the root. */
	expect("//etc/passwd", 404);
	expect("/etc/passwd", 404);
	expect("///..//secret.txt", 403);
	/* Not regular files. */
	expect("/", 403);
	expect("/sub", 403);
	expect("/sub/", 403);
	/* Malformed targets. */
	expect("/index.html%00", 400);
	expect("/%00/../secret.txt", 400);
	expect("/%zz", 400);
	expect("/abc%2", 400);
	expect("index.html", 400);
	expect("http://x/index.html", 400);
}

static void malformed(void)
{
	expect_raw("GARBAGE\r\n\r\n", 400);
	expect_raw("GET /index.html\r\n\r\n", 505); /* HTTP/0.9 */
	expect_raw("GET  /index.html HTTP/1.0\r\n\r\n", 200); /* llhttp: words split on spaces, as RFC 9112 allows */
	expect_raw("GET /index.html HTTP/2.0\r\n\r\n", 505);
	expect_raw("GET /index.html HTTP/1.0 x\r\n\r\n", 400);
	expect_raw("GET /index.html HTTP/1.0\r\nNoColon\r\n\r\n", 400);
	expect_raw("GET /index.html HTTP/1.0\r\n folded: x\r\n\r\n", 400);
	expect_raw("G(T /index.html HTTP/1.0\r\n\r\n", 400);
	expect_raw("GET /in\x01" "dex.html HTTP/1.0\r\n\r\n", 400);
	struct response r;
	raw("GET /index.html HTTP/1.0\r\n\0\r\n\r\n", 30, &r);
	CHECK_EQ(r.status, 400);
	drop(&r);
	raw("POST /index.html HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", 51, &r);
	CHECK_EQ(r.status, 405);
	CHECK(strstr(r.head, "\r\nAllow: GET, HEAD\r\n"));
	drop(&r);
	expect_raw("DELETE /index.html HTTP/1.0\r\n\r\n", 405);
	expect_raw("GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200);
	expect_raw("GET /index.html HTTP/1.0\n\n", 400); /* bare LF: ambiguous */

	/* A head longer than 8 KiB: 431, and the server goes on. */
	size_t n = 12000;
	char *req = malloc(n + 1);
	CHECK(req);
	int k = snprintf(req, n, "GET /index.html HTTP/1.0\r\nX-Long: ");
	memset(req + k, 'a', n - (size_t)k);
	req[n] = '\0';
	raw(req, n, &r);
	CHECK_EQ(r.status, 431);
	drop(&r);
	free(req);
	expect("/index.html", 200);

	/* A client that says nothing is dropped after the read timeout. */
	int fd = ex_dial(port);
	int64_t t0 = ex_now_ms();
	char c;
	ssize_t got = xrecv(fd, &c, 1);
	int64_t took = ex_now_ms() - t0;
	CHECK(got == 0 || (got < 0 && errno == ECONNRESET));
	CHECK(took >= 300 && took < 5000);
	close(fd);
	/* Nor does a client gone mid-request hurt. */
	fd = ex_dial(port);
	CHECK_EQ(xsend(fd, "GET /big", 8), 8);
	struct linger l = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	close(fd);
	fd = ex_dial(port);
	CHECK_EQ(xsend(fd, "GET /big.bin HTTP/1.0\r\n\r\n", 25), 25);
	CHECK(xrecv(fd, &c, 1) == 1);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	close(fd); /* reset in the middle of the body */
	expect("/big.bin", 200);
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_backend_missing();
	if (rc)
		return rc;
	char path[256];
	snprintf(top, sizeof top, "/tmp/coreio-http-XXXXXX");
	CHECK(mkdtemp(top));
	snprintf(root, sizeof root, "%s/root", top);
	CHECK_EQ(mkdir(root, 0755), 0);
	snprintf(path, sizeof path, "%s/secret.txt", top);
	put_file(path, SECRET "\n", strlen(SECRET) + 1);
	snprintf(path, sizeof path, "%s/index.html", root);
	put_file(path, "<h1>hi</h1>\n", 12);
	snprintf(path, sizeof path, "%s/empty.txt", root);
	put_file(path, "", 0);
	big = malloc(BIG_SIZE);
	CHECK(big);
	for (size_t i = 0; i < BIG_SIZE; i++)
		big[i] = pat(i, 77);
	snprintf(path, sizeof path, "%s/big.bin", root);
	put_file(path, big, BIG_SIZE);
	snprintf(path, sizeof path, "%s/sub", root);
	CHECK_EQ(mkdir(path, 0755), 0);
	snprintf(path, sizeof path, "%s/sub/note.txt", root);
	put_file(path, "note\n", 5);
	snprintf(path, sizeof path, "%s/outside-link", root);
	CHECK_EQ(symlink("../secret.txt", path), 0);
	snprintf(path, sizeof path, "%s/sub/outside-dir-link", root);
	CHECK_EQ(symlink(top, path), 0);
	snprintf(path, sizeof path, "%s/inside-link.html", root);
	CHECK_EQ(symlink("index.html", path), 0);

	struct child srv;
	char *sargv[] = {FILE_SERVER_BIN, "--root", root, "--listen", "127.0.0.1:0", "--cores",
			"2", "--read-timeout-ms", "500", "--seconds", "100", NULL};
	CHECK_EQ(ex_start(&srv, sargv, "listening on"), 0);
	port = ex_port(&srv);
	TEST_CASE(serves, serves());
	TEST_CASE(refuses, refuses());
	TEST_CASE(malformed, malformed());
	CHECK_EQ(ex_stop(&srv, SIGTERM, 10000), 0);
	CHECK(strstr(srv.text, "stopped"));

	const char *files[] = {"root/index.html", "root/empty.txt", "root/big.bin",
			       "root/sub/note.txt", "root/outside-link",
			       "root/sub/outside-dir-link", "root/inside-link.html",
			       "root/sub", "root", "secret.txt"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", top, files[i]);
		CHECK(unlink(path) == 0 || rmdir(path) == 0);
	}
	CHECK_EQ(rmdir(top), 0);
	free(big);
	fprintf(stderr, "ok (%s)\n", getenv("COREIO_BACKEND") ? getenv("COREIO_BACKEND") : "auto");
	return test_cases_end();
}
