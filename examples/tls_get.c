/* tls_get.c - fetches https://HOST:PORT/PATH over a coreio TLS stream and
 * prints the server certificate's subject, the TLS version and ALPN, then
 * the response as it comes.
 *
 *   tls_get [--ca FILE | --insecure] [--seconds N] https://HOST:PORT/PATH
 *
 *   HOST       a name (resolved with cio_dial: /etc/hosts, then DNS) or
 *              an IP address ([::1] for IPv6); also the name the
 *              certificate is checked against
 *   --ca FILE  the CAs to trust, PEM (default: the system's store)
 *   --insecure check no certificate (for a test server only)
 *   --seconds  the deadline of the whole fetch (default 10)
 *
 * Try it against OpenSSL's test server:
 *   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
 *       -subj /CN=localhost -addext subjectAltName=DNS:localhost \
 *       -keyout k.pem -out c.pem
 *   openssl s_server -accept 8443 -cert c.pem -key k.pem -www &
 *   tls_get --ca c.pem https://localhost:8443/
 *
 * Exit status 0 when a response came, 1 on a failure (said on stderr),
 * 2 for bad arguments. */
#define _GNU_SOURCE
#include <coreio.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *ca_file;
static bool insecure;
static int64_t seconds = 10;
static char host[256], addr[300], path[1024];
static int status = 1; /* the exit status fetch() settles */

/* https://HOST:PORT/PATH into host, addr ("IP:PORT") and path. */
static int parse_url(const char *url)
{
	const char *p = url + strlen("https://");
	if (strncmp(url, "https://", 8) != 0)
		return -1;
	const char *slash = strchr(p, '/');
	size_t hp = slash ? (size_t)(slash - p) : strlen(p);
	const char *colon = NULL;
	if (hp >= sizeof host)
		return -1;
	for (const char *q = p; q < p + hp; q++)
		if (*q == ':')
			colon = q; /* the last one: [::1]:443 */
	if (!colon || (p[0] == '[' && colon[-1] != ']'))
		return -1;
	size_t hl = (size_t)(colon - p);
	if (p[0] == '[')
		snprintf(host, sizeof host, "%.*s", (int)hl - 2, p + 1);
	else
		snprintf(host, sizeof host, "%.*s", (int)hl, p);
	snprintf(addr, sizeof addr, "%.*s", (int)hp, p);
	snprintf(path, sizeof path, "%s", slash ? slash : "/");
	return 0;
}

static void *fetch(void *arg)
{
	cio_tls_ctx *ctx = arg;
	cio_stream *s = NULL;
	int rc = 1;
	CIO_WITH_TIMEOUT(seconds * CIO_SEC) {
		int fd = cio_dial(addr, NULL);
		if (fd < 0) {
			fprintf(stderr, "tls_get: connect %s: %s\n", addr, cio_strerror(fd));
			break;
		}
		if (cio_stream_new(&s, fd, NULL) < 0)
			break;
		if (cio_stream_tls_connect(s, ctx, host) < 0) {
			fprintf(stderr, "tls_get: TLS with %s: %s\n", host, cio_stream_error(s));
			break;
		}
		char subject[512];
		if (cio_stream_tls_peer_subject(s, subject, sizeof subject) < 0)
			snprintf(subject, sizeof subject, "(none)");
		const char *alpn = cio_stream_tls_alpn(s);
		printf("subject: %s\n%s, ALPN %s\n\n", subject, cio_stream_tls_version(s),
		       alpn ? alpn : "none");
		char req[1400];
		int n = snprintf(req, sizeof req,
				 "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host);
		if (cio_stream_write_all(s, req, (size_t)n, NULL) < 0 || cio_stream_flush(s) < 0) {
			fprintf(stderr, "tls_get: send: %s\n", cio_stream_error(s));
			break;
		}
		/* Until the server closes: with close_notify, or (as many
		 * HTTP servers do) without one after a complete response. */
		char buf[16384];
		ssize_t got;
		size_t total = 0;
		while ((got = cio_stream_read(s, buf, sizeof buf)) > 0) {
			fwrite(buf, 1, (size_t)got, stdout);
			total += (size_t)got;
		}
		if (got < 0 && !(got == -EPIPE && total > 0))
			fprintf(stderr, "tls_get: read: %s\n", cio_stream_error(s));
		rc = total > 0 ? 0 : 1;
	}
	cio_stream_close(s);
	status = rc;
	return NULL;
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
			ca_file = argv[++i];
		else if (strcmp(argv[i], "--insecure") == 0)
			insecure = true;
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = atoi(argv[++i]);
		else if (!url && argv[i][0] != '-')
			url = argv[i];
		else
			url = NULL, i = argc;
	}
	if (!url || parse_url(url) < 0 || seconds <= 0) {
		fprintf(stderr, "usage: tls_get [--ca FILE | --insecure] [--seconds N] "
				"https://HOST:PORT/PATH\n");
		return 2;
	}
	cio_tls_client_opts o = {.ca_file = ca_file, .insecure_no_verify = insecure,
				 .alpn = "http/1.1"};
	cio_tls_ctx *ctx;
	char err[256];
	int rc = cio_tls_client_ctx(&ctx, &o, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "tls_get: %s\n", err[0] ? err : cio_strerror(rc));
		return 1;
	}
	rc = cio_run(fetch, ctx);
	cio_tls_ctx_free(ctx);
	return rc < 0 ? 1 : status;
}
