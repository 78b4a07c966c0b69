/* test_kv_server.c - examples/kv_server on 2 cores, on the backend CTest
 * names, from a client of plain blocking sockets: keys set, read and
 * deleted across both cores' shards, pipelined requests, bad requests, an
 * over-long line, the read deadline, and a drain that closes an idle
 * connection at once. */
#include "check.h"
#include "example_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define KEYS 400

static int port;

static int dial(void)
{
	return ex_dial(port);
}

static void put(int fd, const char *s)
{
	ex_send_all(fd, s, strlen(s));
}

/* Reads one reply line (without its newline) into buf; "" at EOF. */
static char *line(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		CHECK(n + 1 < cap);
		ssize_t r = recv(fd, buf + n, 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fprintf(stderr, "recv after '%.*s': %s\n", (int)n, buf, strerror(errno));
		CHECK(r >= 0);
		if (r == 0 || buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return buf;
}

static void expect(int fd, const char *req, const char *want)
{
	char buf[2048];
	put(fd, req);
	line(fd, buf, sizeof buf);
	if (strcmp(buf, want) != 0) {
		fprintf(stderr, "%s -> '%s', not '%s'\n", req, buf, want);
		CHECK(!"reply");
	}
}

static void expect_eof(int fd)
{
	ex_expect_eof(fd);
}

/* Sets, gets and deletes across both cores' shards, pipelined and bad
 * requests, and an over-long line. */
static void requests(void)
{
	int fd = dial();
	char req[2048], want[2048];
	for (int i = 0; i < KEYS; i++) {
		snprintf(req, sizeof req, "SET key%d value-%d\n", i, i * 7);
		expect(fd, req, "OK");
	}
	for (int i = 0; i < KEYS; i++) {
		snprintf(req, sizeof req, "GET key%d\n", i);
		snprintf(want, sizeof want, "VALUE value-%d", i * 7);
		expect(fd, req, want);
	}
	expect(fd, "SET key1 again\r\n", "OK"); /* CRLF too; overwrite */
	expect(fd, "GET key1\n", "VALUE again");
	for (int i = 0; i < KEYS; i += 2) {
		snprintf(req, sizeof req, "DEL key%d\n", i);
		expect(fd, req, "DELETED");
	}
	expect(fd, "DEL key0\n", "NOT_FOUND");
	expect(fd, "GET key0\n", "NOT_FOUND");
	expect(fd, "SET empty \n", "OK");
	expect(fd, "GET empty\n", "VALUE ");

	/* Pipelined: 100 requests in one write, 100 replies in order. */
	char many[100 * 24] = "";
	for (int i = 0; i < 100; i++) {
		snprintf(req, sizeof req, "GET key%d\n", i);
		strcat(many, req);
	}
	put(fd, many);
	for (int i = 0; i < 100; i++) {
		line(fd, req, sizeof req);
		if (i % 2 == 0)
			CHECK_EQ(strcmp(req, "NOT_FOUND"), 0);
		else
			CHECK(strncmp(req, "VALUE ", 6) == 0);
	}

	/* Bad requests get an error and the connection stays. */
	expect(fd, "PUT a b\n", "ERROR unknown command");
	expect(fd, "GET\n", "ERROR key missing");
	expect(fd, "GET a b\n", "ERROR trailing words");
	expect(fd, "SET a\n", "ERROR value missing");
	char big[1100] = "SET big ";
	memset(big + 8, 'v', 1001);
	big[1009] = '\n';
	big[1010] = '\0';
	expect(fd, big, "ERROR value too long");
	expect(fd, "GET key1\n", "VALUE again");

	/* A line longer than 1024 bytes: an error, then the end. */
	char huge[1500];
	memset(huge, 'x', sizeof huge - 1);
	huge[sizeof huge - 1] = '\0';
	put(fd, huge);
	expect(fd, "", "ERROR line too long");
	expect_eof(fd);
	close(fd);
}

static void read_deadline(void)
{
	/* Half a request, then silence: closed at the read deadline. */
	int fd = dial();
	put(fd, "GET key");
	int64_t t0 = ex_now_ms();
	expect_eof(fd);
	int64_t took = ex_now_ms() - t0;
	CHECK(took >= 250 && took < 10000);
	close(fd);
}

static void drain(struct child *srv)
{
	/* A drain closes an idle connection at once. */
	int idle = dial();
	expect(idle, "GET no-such-key\n", "NOT_FOUND");
	int64_t t0 = ex_now_ms();
	CHECK_EQ(ex_stop(srv, SIGTERM, 20000), 0);
	CHECK(ex_now_ms() - t0 < 5000);
	expect_eof(idle);
	close(idle);
	/* The summary counts what every case did. */
	const char *t = srv->text;
	if (test_cases_all() &&
	    (!strstr(t, " 3 connections,") || !strstr(t, "on another core") ||
	     strstr(t, "(0 on another core)") || !strstr(t, " 201 keys"))) {
		fprintf(stderr, "unexpected summary:\n%s\n", srv->text);
		CHECK(!"summary");
	}
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int skip = test_backend_missing();
	if (skip)
		return skip;
	struct child srv;
	char *sargv[] = {KV_SERVER_BIN, "--cores", "2", "--read-ms", "300", "127.0.0.1:0", NULL};
	CHECK_EQ(ex_start(&srv, sargv, "listening on"), 0);
	port = ex_port(&srv);
	TEST_CASE(requests, requests());
	TEST_CASE(read_deadline, read_deadline());
	TEST_CASE(drain, drain(&srv));
	if (!test_case_wanted("drain"))
		CHECK_EQ(ex_stop(&srv, SIGTERM, 20000), 0);
	fprintf(stderr, "ok: %s", strstr(srv.text, "kv_server: stopped"));
	return test_cases_end();
}
