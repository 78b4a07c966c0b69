/* fuzz_tls_seeds.c - records fuzz_tls's seed corpus: real sessions
 * between a coreio TLS client and server (tls_fixture.h's contexts and
 * repeatable randomness, as fuzz_tls uses them) through a tap that keeps
 * each direction's ciphertext.  What the client sent becomes a seed for
 * fuzz_tls's server mode, what the server sent one for its client mode;
 * since each side drew the random bytes fuzz_tls's endpoint will draw,
 * a replayed seed completes the handshake and its records decrypt.  Also
 * written: a ClientHello from `openssl s_client` (when there is one),
 * truncations, a record with a bad length, an alert, plaintext HTTP and
 * an SSLv2-style hello.
 *
 *   fuzz_tls_seeds DIR    writes the seeds into DIR (tests/fuzz/corpus/tls) */
#include "tls_fixture.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define CAP 65536
#define DIE(...) (fprintf(stderr, "fuzz_tls_seeds: " __VA_ARGS__), fputc('\n', stderr), exit(1))

static const char *outdir;

/* Control bytes for a session seed: a 320-byte read buffer, pieces of up
 * to 97 (or 679) bytes, and a mix of reads, line reads and writes. */
static const uint8_t ctl_session[8] = {0x40, 0x60, 0x00, 0x60, 0x02, 0x60, 0x04, 0x61};

static void seed(const char *name, unsigned mode, const uint8_t ctl[8], const void *data,
		 size_t len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", outdir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fputc((int)mode, f) == EOF || fwrite(ctl, 1, 8, f) != 8 ||
	    (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
		DIE("cannot write %s", path);
	printf("%s: %zu bytes\n", name, 9 + len);
}

/* One direction of the tap: from -> to, kept in buf. */
struct leg {
	int from, to;
	uint8_t buf[CAP];
	size_t len;
};

static void *tap(void *arg)
{
	struct leg *l = arg;
	for (;;) {
		ssize_t n = cio_recv(l->from, l->buf + l->len, CAP - l->len, 0);
		if (n <= 0)
			break;
		if (cio_send_all(l->to, l->buf + l->len, (size_t)n, 0, NULL) != n)
			break;
		l->len += (size_t)n;
	}
	cio_shutdown(l->to, SHUT_WR);
	return NULL;
}

struct side {
	int fd, vers;
	int rc;
};

static void *client(void *arg)
{
	struct side *c = arg;
	cio_stream *s;
	const char *line;
	static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	fx_rand_bind(cio_self(), FX_SEED_CLIENT);
	if (cio_stream_new(&s, c->fd, NULL) != 0)
		DIE("stream");
	c->rc = cio_stream_tls_connect(s, fx_client_ctx(c->vers), FX_NAME);
	if (c->rc == 0 && cio_stream_write_all(s, req, sizeof req - 1, NULL) < 0)
		c->rc = -1;
	if (c->rc == 0 && cio_stream_flush(s) < 0)
		c->rc = -1;
	while (c->rc == 0 && cio_stream_read_line(s, 0, &line) > 0)
		;
	if (c->rc)
		fprintf(stderr, "client: %s\n", cio_stream_error(s));
	fx_rand_unbind(cio_self());
	cio_stream_close(s);
	return NULL;
}

static void *server(void *arg)
{
	struct side *c = arg;
	cio_stream *s;
	const char *line;
	char buf[256];
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n";
	fx_rand_bind(cio_self(), FX_SEED_SERVER);
	if (cio_stream_new(&s, c->fd, NULL) != 0)
		DIE("stream");
	c->rc = cio_stream_tls_accept(s, fx_server_ctx(c->vers));
	while (c->rc == 0 && cio_stream_read_line(s, 0, &line) > 0)
		;
	if (c->rc == 0 && (cio_stream_write_all(s, resp, sizeof resp - 1, NULL) < 0 ||
			   cio_stream_shutdown(s) < 0))
		c->rc = -1;
	while (c->rc == 0 && cio_stream_read(s, buf, sizeof buf) > 0)
		;
	if (c->rc)
		fprintf(stderr, "server: %s\n", cio_stream_error(s));
	fx_rand_unbind(cio_self());
	cio_stream_close(s);
	return NULL;
}

static struct leg c2s, s2c;

/* A whole session at version choice vers; its two directions. */
static void record(int vers)
{
	int a[2], b[2];
	if (cio_socketpair(SOCK_STREAM, a) || cio_socketpair(SOCK_STREAM, b))
		DIE("socketpair");
	c2s = (struct leg){.from = a[1], .to = b[0]};
	s2c = (struct leg){.from = b[0], .to = a[1]};
	struct side cs = {.fd = a[0], .vers = vers}, ss = {.fd = b[1], .vers = vers};
	cio_task_t t[4] = {cio_spawn(tap, &c2s), cio_spawn(tap, &s2c), cio_spawn(client, &cs),
			   cio_spawn(server, &ss)};
	for (int i = 0; i < 4; i++)
		cio_join(t[i], NULL);
	cio_close(a[1]);
	cio_close(b[0]);
	if (cs.rc || ss.rc)
		DIE("the session at version choice %d failed: %d %d", vers, cs.rc, ss.rc);
}

/* The ClientHello of OpenSSL's own client, from a listener on loopback. */
static size_t s_client_hello(uint8_t *buf, size_t cap)
{
	int lfd = cio_listen("127.0.0.1:0", NULL);
	cio_addr a;
	char addr[64];
	if (lfd < 0 || cio_local_addr(lfd, &a) || cio_addr_format(&a, addr, sizeof addr) < 0)
		DIE("listen");
	int devnull[2];
	if (pipe(devnull))
		DIE("pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, devnull[0], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", 1, 0);
	char *argv[] = {"openssl", "s_client", "-connect", addr, "-servername", FX_NAME,
			"-alpn", "h2,http/1.1", NULL};
	pid_t pid;
	size_t len = 0;
	if (posix_spawnp(&pid, "openssl", &fa, NULL, argv, environ) == 0) {
		CIO_WITH_TIMEOUT(5 * CIO_SEC)
		{
			int fd = cio_accept(lfd, NULL);
			/* The first record whole: its length is in its header. */
			while (fd >= 0 && (len < 5 || len < 5 + (size_t)(buf[3] << 8 | buf[4]))) {
				ssize_t n = cio_recv(fd, buf + len, cap - len, 0);
				if (n <= 0)
					break;
				len += (size_t)n;
			}
			if (fd >= 0)
				cio_close(fd);
		}
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	posix_spawn_file_actions_destroy(&fa);
	close(devnull[0]);
	close(devnull[1]);
	cio_close(lfd);
	return len;
}

static void *run(void *arg)
{
	(void)arg;
	static const uint8_t ctl_pieces[8] = {0x10, 0x13, 0x05, 0x30, 0x01, 0x22, 0x07, 0x11};
	static const char *vname[3] = {"any", "tls12", "tls13"};
	static uint8_t first_ch[CAP], first_sh[CAP], bad[CAP];
	size_t first_ch_len = 0, first_sh_len = 0;
	char name[64];

	for (int vers = 0; vers < 3; vers++) {
		record(vers);
		snprintf(name, sizeof name, "server-%s", vname[vers]);
		seed(name, (unsigned)vers << 1, ctl_session, c2s.buf, c2s.len);
		snprintf(name, sizeof name, "client-%s", vname[vers]);
		seed(name, MODE_CLIENT | (unsigned)vers << 1, ctl_session, s2c.buf, s2c.len);
		if (vers == 0) {
			memcpy(first_ch, c2s.buf, first_ch_len = c2s.len);
			memcpy(first_sh, s2c.buf, first_sh_len = s2c.len);
		}
	}
	/* Variations on the first session: small pieces; a server that
	 * peeks first; a peer that leaves without reading. */
	seed("server-any-pieces", 0, ctl_pieces, first_ch, first_ch_len);
	seed("server-any-peek", MODE_PEEK, ctl_session, first_ch, first_ch_len);
	seed("client-any-abrupt", MODE_CLIENT | MODE_ABRUPT, ctl_session, first_sh, first_sh_len);
	/* Truncated: the ClientHello's first 60 bytes; the server's flight
	 * cut in its certificate. */
	seed("server-truncated", 0, ctl_pieces, first_ch, 60);
	seed("client-truncated", MODE_CLIENT, ctl_pieces, first_sh, first_sh_len / 3);
	/* A record longer than TLS allows (2^14 + 2048 at most). */

	memcpy(bad, first_ch, first_ch_len);
	bad[3] = 0x48;
	bad[4] = 0x01;
	seed("server-bad-length", 0, ctl_session, bad, first_ch_len);
	/* A fatal alert (handshake_failure) instead of a hello. */
	static const uint8_t alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28};
	seed("server-alert", 0, ctl_session, alert, sizeof alert);
	seed("client-alert", MODE_CLIENT, ctl_session, alert, sizeof alert);
	/* Not TLS at all. */
	static const char get[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	static const char resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
	seed("server-http", 0, ctl_session, get, sizeof get - 1);
	seed("client-http", MODE_CLIENT, ctl_session, resp, sizeof resp - 1);
	/* An SSLv2-style ClientHello (version 3.1, three cipher specs, a
	 * 16-byte challenge), as old clients sent. */
	static const uint8_t v2[] = {0x80, 0x1f, 0x01, 0x03, 0x01, 0x00, 0x09, 0x00, 0x00,
				     0x00, 0x10, 0x00, 0x00, 0x2f, 0x00, 0x00, 0x35, 0x00,
				     0x00, 0xff, 1,    2,    3,    4,    5,    6,    7,
				     8,    9,    10,   11,   12,   13,   14,   15,   16};
	seed("server-sslv2-hello", 0, ctl_session, v2, sizeof v2);
	size_t n = s_client_hello(bad, sizeof bad);
	if (n)
		seed("server-s_client-hello", 0, ctl_session, bad, n);
	else
		fprintf(stderr, "fuzz_tls_seeds: no ClientHello from openssl s_client\n");
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		DIE("usage: fuzz_tls_seeds DIR");
	outdir = argv[1];
	return cio_run(run, NULL) == 0 ? 0 : 1;
}
