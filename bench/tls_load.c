/* tls_load.c - a closed-loop TLS load generator, for TLS-terminating
 * proxies in front of an echo server: N connections each send a message
 * of S bytes and wait for its echo, checking every byte.  Written on
 * coreio's TLS streams; the proxies it compares (coreio's and HAProxy's)
 * face the same client.
 *
 *   tls_load --port P [--host A] [--name SNI] [--ca FILE] [--conns N]
 *            [--size S] [--warmup SECS] [--seconds SECS] [--server-pid PID]
 *            [--handshakes]
 *
 * --handshakes: every request on a new connection (a full handshake, no
 * resumption), the message echoed once, then close_notify: what a proxy
 * pays for connection setup.  Otherwise connections live through the run.
 *
 * Over the measured window (after --warmup) it prints one line:
 *   tls_load: req_s=R server_cpu_us_per_req=C server_util=U errors=E
 * with the server's CPU time (all threads, its process CPU clock) per
 * request.  Exit status 0; 1 on a mismatch, an error or no request; 2 on
 * bad arguments. */
#define _GNU_SOURCE
#include <coreio.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct {
	char addr[128];
	const char *name, *ca;
	int conns;
	size_t size;
	int64_t warmup, seconds;
	int server_pid;
	bool handshakes;
} opt = { .name = "localhost", .conns = 64, .size = 1024,
	  .warmup = CIO_SEC / 2, .seconds = 2 * CIO_SEC };

static cio_tls_ctx *ctx;
static uint64_t requests, errors, mismatches;
static bool stopping;
static int first_error;

static void note_error(int err)
{
	errors++;
	if (!first_error)
		first_error = err;
}

/* One connection, ready for requests, or NULL. */
static cio_stream *dial(void)
{
	cio_stream *s;
	int fd = cio_connect(opt.addr, SOCK_STREAM);
	if (fd < 0) {
		note_error(fd);
		return NULL;
	}
	cio_tcp_nodelay(fd, true);
	int rc = cio_stream_new(&s, fd, NULL);
	if (rc == 0 && (rc = cio_stream_tls_connect(s, ctx, opt.name)) < 0) {
		if (!stopping)
			fprintf(stderr, "tls_load: handshake: %s\n", cio_stream_error(s));
		cio_stream_close(s);
	}
	if (rc < 0) {
		if (!stopping) /* the end of the run cancels handshakes */
			note_error(rc);
		return NULL;
	}
	return s;
}

/* One request: the message out, its echo back and checked. */
static int exchange(cio_stream *s, uint8_t *out, uint8_t *in, uint64_t k)
{
	for (size_t i = 0; i < opt.size; i++)
		out[i] = (uint8_t)(k * 31 + i * 7 + (i >> 8));
	ssize_t n = cio_stream_write_all(s, out, opt.size, NULL);
	if (n >= 0)
		n = cio_stream_read_exact(s, in, opt.size, NULL);
	if (n < 0)
		return (int)n;
	if (memcmp(in, out, opt.size) != 0) {
		mismatches++;
		return -EBADMSG;
	}
	return 0;
}

static void *client(void *arg)
{
	uint64_t k = (uint64_t)(uintptr_t)arg << 32;
	uint8_t *out = malloc(opt.size), *in = malloc(opt.size);
	cio_stream *s = NULL;

	while (!stopping && out && in) {
		if (!s && !(s = dial())) {
			cio_sleep(10 * CIO_MS);
			continue;
		}
		int rc = exchange(s, out, in, k++);
		if (rc < 0 && !stopping)
			note_error(rc);
		if (rc == 0)
			requests++;
		if (rc < 0 || opt.handshakes) {
			cio_stream_close(s);
			s = NULL;
		}
	}
	cio_stream_close(s);
	free(out);
	free(in);
	return NULL;
}

static int64_t server_cpu_ns(void)
{
	clockid_t id;
	struct timespec ts;
	if (!opt.server_pid || clock_getcpuclockid(opt.server_pid, &id) != 0 ||
	    clock_gettime(id, &ts) != 0)
		return -1;
	return ts.tv_sec * CIO_SEC + ts.tv_nsec;
}

static void *run(void *arg)
{
	int *status = arg;
	char err[256] = "";
	cio_tls_client_opts o = { .ca_file = opt.ca, .no_resumption = true };
	*status = 1;
	if (cio_tls_client_ctx(&ctx, &o, err, sizeof err) < 0) {
		fprintf(stderr, "tls_load: %s\n", err);
		return NULL;
	}
	cio_task_t *t = calloc((size_t)opt.conns, sizeof *t);
	for (int i = 0; t && i < opt.conns; i++)
		t[i] = cio_spawn(client, (void *)(uintptr_t)i);
	cio_sleep(opt.warmup);
	uint64_t r0 = requests;
	int64_t c0 = server_cpu_ns(), t0 = cio_now();
	cio_sleep(opt.seconds);
	uint64_t r1 = requests;
	int64_t c1 = server_cpu_ns(), t1 = cio_now();
	stopping = true;
	for (int i = 0; t && i < opt.conns; i++)
		cio_cancel(t[i]);
	for (int i = 0; t && i < opt.conns; i++)
		cio_join(t[i], NULL);
	free(t);
	cio_tls_ctx_free(ctx);

	double secs = (double)(t1 - t0) / 1e9, reqs = (double)(r1 - r0);
	double cpu_us = c0 >= 0 && c1 >= 0 && reqs > 0 ? (double)(c1 - c0) / 1e3 / reqs : -1;
	printf("tls_load: req_s=%.0f server_cpu_us_per_req=%.2f server_util=%.2f errors=%llu\n",
	       reqs / secs, cpu_us, c0 >= 0 ? (double)(c1 - c0) / (double)(t1 - t0) : -1,
	       (unsigned long long)errors);
	if (first_error)
		fprintf(stderr, "tls_load: first error: %s\n", cio_strerror(first_error));
	*status = mismatches || reqs == 0 || errors > 0;
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: tls_load --port P [--host A] [--name SNI] [--ca FILE] "
			"[--conns N] [--size S] [--warmup SECS] [--seconds SECS] "
			"[--server-pid PID] [--handshakes]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "host", 1, 0, 'h' }, { "port", 1, 0, 'p' }, { "name", 1, 0, 'n' },
		{ "ca", 1, 0, 'a' }, { "conns", 1, 0, 'c' }, { "size", 1, 0, 's' },
		{ "warmup", 1, 0, 'w' }, { "seconds", 1, 0, 't' },
		{ "server-pid", 1, 0, 'P' }, { "handshakes", 0, 0, 'H' }, { 0, 0, 0, 0 },
	};
	const char *host = "127.0.0.1";
	int port = 0, c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'h': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'n': opt.name = optarg; break;
		case 'a': opt.ca = optarg; break;
		case 'c': opt.conns = atoi(optarg); break;
		case 's': opt.size = (size_t)atol(optarg); break;
		case 'w': opt.warmup = (int64_t)(atof(optarg) * 1e9); break;
		case 't': opt.seconds = (int64_t)(atof(optarg) * 1e9); break;
		case 'P': opt.server_pid = atoi(optarg); break;
		case 'H': opt.handshakes = true; break;
		default: usage();
		}
	}
	if (port <= 0 || opt.conns <= 0 || opt.size == 0 || opt.seconds <= 0)
		usage();
	snprintf(opt.addr, sizeof opt.addr, "%s:%d", host, port);
	int status = 1;
	if (cio_run(run, &status) < 0)
		return 1;
	return status;
}
