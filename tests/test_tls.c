/* test_tls.c - TLS streams: coreio against itself and against OpenSSL's
 * own s_server and s_client, refused peers and certificates, SNI, ALPN,
 * resumption, timeouts, resets, truncation and cancellation.
 *
 * The PKI (a CA, certificates for localhost, an expired one, a self-signed
 * one, one for other names) is made here with OpenSSL's C API, in a
 * scratch directory removed at the end. */
#include "net_util.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

extern char **environ;

static char dir[64];
static char ca_pem_path[128], srv_crt[128], srv_key[128], exp_crt[128], exp_key[128],
	self_crt[128], self_key[128], oth_crt[128], oth_key[128];
static char *srv_crt_text, *srv_key_text, *ca_text;

/* --- the PKI ------------------------------------------------------------ */

static void add_ext(X509 *x, X509V3_CTX *v, int nid, const char *val)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v, nid, val);
	CHECK(e);
	CHECK_EQ(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A certificate for key, valid from `from` to `to` seconds from now,
 * signed by issuer (NULL: by itself). */
static X509 *cert_new(EVP_PKEY *key, const char *cn, const char *san, X509 *issuer,
		      EVP_PKEY *ikey, long from, long to, bool ca)
{
	static long serial = 1;
	X509 *x = X509_new();
	CHECK(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_set_pubkey(x, key);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
	X509V3_CTX v;
	X509V3_set_ctx_nodb(&v);
	X509V3_set_ctx(&v, issuer ? issuer : x, x, NULL, NULL, 0);
	if (ca) {
		add_ext(x, &v, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, &v, NID_key_usage, "critical,keyCertSign,cRLSign");
	}
	if (san)
		add_ext(x, &v, NID_subject_alt_name, san);
	CHECK(X509_sign(x, ikey ? ikey : key, EVP_sha256()) > 0);
	return x;
}

static void write_pem(const char *path, X509 *x, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");
	CHECK(f);
	CHECK(x ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
	CHECK_EQ(fclose(f), 0);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	CHECK(f);
	char *buf = calloc(1, 65536);
	CHECK(buf);
	CHECK(fread(buf, 1, 65535, f) > 0);
	fclose(f);
	return buf;
}

/* Makes a leaf certificate and its key, written to crt and key. */
static void leaf(char *crt, char *key, const char *name, const char *cn, const char *san,
		 X509 *ca, EVP_PKEY *cakey, long from, long to)
{
	snprintf(crt, 128, "%s/%s.crt", dir, name);
	snprintf(key, 128, "%s/%s.key", dir, name);
	EVP_PKEY *k = EVP_EC_gen("P-256");
	CHECK(k);
	X509 *x = cert_new(k, cn, san, ca, cakey, from, to, false);
	write_pem(crt, x, NULL);
	write_pem(key, NULL, k);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void pki_make(void)
{
	snprintf(dir, sizeof dir, "/tmp/coreio-tls-XXXXXX");
	CHECK(mkdtemp(dir));
	const long day = 86400;
	EVP_PKEY *cakey = EVP_EC_gen("P-256");
	CHECK(cakey);
	X509 *ca = cert_new(cakey, "coreio test CA", NULL, NULL, NULL, -day, 30 * day, true);
	snprintf(ca_pem_path, sizeof ca_pem_path, "%s/ca.crt", dir);
	write_pem(ca_pem_path, ca, NULL);
	leaf(srv_crt, srv_key, "srv", "localhost", "DNS:localhost,IP:127.0.0.1", ca, cakey,
	     -day, 30 * day);
	leaf(exp_crt, exp_key, "expired", "localhost", "DNS:localhost,IP:127.0.0.1", ca,
	     cakey, -3 * day, -day);
	leaf(self_crt, self_key, "self", "localhost", "DNS:localhost", NULL, NULL, -day,
	     30 * day);
	leaf(oth_crt, oth_key, "other", "other", "DNS:other.test,DNS:*.other.test", ca,
	     cakey, -day, 30 * day);
	X509_free(ca);
	EVP_PKEY_free(cakey);
	srv_crt_text = slurp(srv_crt);
	srv_key_text = slurp(srv_key);
	ca_text = slurp(ca_pem_path);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void pki_remove(void)
{
	CHECK_EQ(nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS), 0);
	free(srv_crt_text);
	free(srv_key_text);
	free(ca_text);
}

/* --- contexts ----------------------------------------------------------- */

static cio_tls_ctx *server_ctx(const char *crt, const char *key, cio_tls_server_opts o)
{
	cio_tls_cert c = {.cert_file = crt, .key_file = key};
	cio_tls_ctx *ctx = NULL;
	char err[256];
	if (!o.certs) {
		o.certs = &c;
		o.ncerts = 1;
	}
	int rc = cio_tls_server_ctx(&ctx, &o, err, sizeof err);
	if (rc)
		fprintf(stderr, "server ctx: %s\n", err);
	CHECK_EQ(rc, 0);
	return ctx;
}

static cio_tls_ctx *client_ctx(cio_tls_client_opts o)
{
	cio_tls_ctx *ctx = NULL;
	char err[256];
	if (!o.ca_file && !o.ca_pem && !o.insecure_no_verify)
		o.ca_file = ca_pem_path;
	int rc = cio_tls_client_ctx(&ctx, &o, err, sizeof err);
	if (rc)
		fprintf(stderr, "client ctx: %s\n", err);
	CHECK_EQ(rc, 0);
	return ctx;
}

/* --- connections -------------------------------------------------------- */

struct accept_job {
	cio_stream *s;
	cio_tls_ctx *ctx;
	int lfd;  /* accept from it, or use fd */
	int fd;
};

static void *accept_task(void *arg)
{
	struct accept_job *j = arg;
	int fd = j->lfd >= 0 ? cio_accept(j->lfd, NULL) : j->fd;
	CHECK(fd >= 0);
	CHECK_EQ(cio_stream_new(&j->s, fd, NULL), 0);
	return (void *)(intptr_t)cio_stream_tls_accept(j->s, j->ctx);
}

struct conn {
	cio_stream *c, *s;
	int crc, src;
};

/* A client to a server over a fresh connection to listener lfd (or a
 * fresh loopback pair when lfd < 0); both handshakes' results. */
static struct conn connect_pair(cio_tls_ctx *sctx, cio_tls_ctx *cctx, const char *name,
				int lfd)
{
	struct conn k = {0};
	struct accept_job j = {.ctx = sctx, .lfd = lfd, .fd = -1};
	int cfd;
	if (lfd >= 0) {
		char addr[64];
		local_addr(lfd, addr, sizeof addr);
		cfd = cio_connect(addr, 0);
	} else {
		int fds[2];
		tcp_pair(fds);
		cfd = fds[0];
		j.fd = fds[1];
	}
	CHECK(cfd >= 0);
	cio_task_t t = cio_spawn(accept_task, &j);
	CHECK_EQ(cio_stream_new(&k.c, cfd, NULL), 0);
	k.crc = cio_stream_tls_connect(k.c, cctx, name);
	if (k.crc < 0)
		fprintf(stderr, "  client: %s\n", cio_stream_error(k.c));
	k.src = join_rc(t);
	if (k.src < 0)
		fprintf(stderr, "  server: %s\n", cio_stream_error(j.s));
	k.s = j.s;
	return k;
}

static void close_pair(struct conn *k)
{
	cio_stream_close(k->c);
	cio_stream_close(k->s);
}

/* --- flows of pattern bytes -------------------------------------------- */

/* n pattern bytes sent into, or expected from, a stream or an fd. */
struct flow {
	cio_stream *s;
	int fd;
	size_t n;
	uint32_t seed;
	bool end;   /* sender: end the stream after; receiver: expect its end */
};

static ssize_t flow_write(struct flow *f, const void *b, size_t len)
{
	if (f->s)
		return cio_stream_write_all(f->s, b, len, NULL);
	size_t done = 0;
	while (done < len) {
		ssize_t n = cio_write(f->fd, (const char *)b + done, len - done);
		if (n < 0)
			return n;
		done += (size_t)n;
	}
	return (ssize_t)len;
}

static void *send_flow(void *arg)
{
	struct flow *f = arg;
	uint8_t *buf = malloc(70000);
	CHECK(buf);
	for (size_t off = 0; off < f->n;) {
		size_t len = rnd() % 70000 + 1;
		if (len > f->n - off)
			len = f->n - off;
		for (size_t i = 0; i < len; i++)
			buf[i] = pat(off + i, f->seed);
		ssize_t rc = flow_write(f, buf, len);
		if (rc != (ssize_t)len)
			fprintf(stderr, "send_flow: %zd (%s)\n", rc,
				f->s ? cio_stream_error(f->s) : cio_strerror((int)rc));
		CHECK_EQ(rc, (ssize_t)len);
		off += len;
	}
	free(buf);
	if (f->s)
		CHECK_EQ(f->end ? cio_stream_shutdown(f->s) : cio_stream_flush(f->s), 0);
	else if (f->end)
		CHECK_EQ(cio_close(f->fd), 0);
	return NULL;
}

static void *recv_flow(void *arg)
{
	struct flow *f = arg;
	uint8_t *buf = malloc(65536);
	CHECK(buf);
	size_t got = 0;
	for (;;) {
		size_t want = got < f->n ? f->n - got : 1;
		if (want > 65536)
			want = 65536;
		ssize_t n = f->s ? cio_stream_read(f->s, buf, want) : cio_read(f->fd, buf, want);
		if (n < 0)
			fprintf(stderr, "recv_flow: %s\n",
				f->s ? cio_stream_error(f->s) : cio_strerror((int)n));
		CHECK(n >= 0);
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pat(got + (size_t)i, f->seed)) {
				fprintf(stderr, "recv_flow: byte %zu differs\n", got + (size_t)i);
				abort();
			}
		got += (size_t)n;
		if (got == f->n && !f->end)
			break;
	}
	CHECK_EQ(got, f->n);
	free(buf);
	return NULL;
}

/* --- coreio against coreio ---------------------------------------------- */

static void test_transfers(int version)
{
	static const size_t sizes[] = {1, 16 * 1024 + 1, 1 << 20, 4 << 20};
	cio_tls_ctx *sctx = server_ctx(srv_crt, srv_key,
				       (cio_tls_server_opts){.max_version = version});
	cio_tls_ctx *cctx = client_ctx((cio_tls_client_opts){.max_version = version});
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		struct conn k = connect_pair(sctx, cctx, "localhost", -1);
		CHECK_EQ(k.crc, 0);
		CHECK_EQ(k.src, 0);
		const char *want = version == CIO_TLS1_2 ? "TLSv1.2" : "TLSv1.3";
		CHECK(strcmp(cio_stream_tls_version(k.c), want) == 0);
		CHECK(strcmp(cio_stream_tls_version(k.s), want) == 0);
		/* Four tasks: each stream is read by one while another
		 * writes it, both ways at once, each ending with close_notify. */
		struct flow f[4] = {
			{.s = k.c, .n = sizes[i], .seed = 1, .end = true},
			{.s = k.s, .n = sizes[i], .seed = 1, .end = true},
			{.s = k.s, .n = sizes[i], .seed = 2, .end = true},
			{.s = k.c, .n = sizes[i], .seed = 2, .end = true},
		};
		cio_task_t t[4];
		for (int w = 0; w < 4; w++)
			t[w] = cio_spawn(w % 2 ? recv_flow : send_flow, &f[w]);
		for (int w = 0; w < 4; w++)
			join_rc(t[w]);
		CHECK_EQ(cio_stream_close(k.c), 0);
		CHECK_EQ(cio_stream_close(k.s), 0);
	}
	cio_tls_ctx_free(sctx);
	cio_tls_ctx_free(cctx);
	fprintf(stderr, "  transfers %s: ok\n", version == CIO_TLS1_2 ? "1.2" : "1.3");
}

/* --- OpenSSL's own peers ------------------------------------------------ */

struct child {
	pid_t pid;
	int in, out; /* its stdin (we write), its stdout (we read) */
};

static void nonblock_adopt(int fd)
{
	CHECK_EQ(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	CHECK_EQ(cio_fd_adopt(fd), 0);
}

/* Spawns the program at path (the openssl binary unless NULL) with argv,
 * its stdin and stdout on pipes (blocking on its side), stderr to
 * /dev/null unless COREIO_TEST_VERBOSE. */
static void child_spawn_path(struct child *c, const char *path, char *const argv[])
{
	int pin[2], pout[2];
	CHECK_EQ(pipe2(pin, O_CLOEXEC), 0);
	CHECK_EQ(pipe2(pout, O_CLOEXEC), 0);
	/* Room for a whole flow: openssl s_server does not check its writes to
	 * stdout, and a blocked pipe write cut short by a stop and continue
	 * (SIGSTOP, a cgroup freeze) would lose the rest.  Best effort: an
	 * unprivileged user may be held to less. */
	fcntl(pout[1], F_SETPIPE_SZ, 1 << 20);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
	posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
	if (!getenv("COREIO_TEST_VERBOSE"))
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	CHECK_EQ(posix_spawn(&c->pid, path ? path : OPENSSL_BIN, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(pin[0]);
	close(pout[1]);
	c->in = pin[1];
	c->out = pout[0];
	nonblock_adopt(c->in);
	nonblock_adopt(c->out);
}

static void child_spawn(struct child *c, char *const argv[])
{
	child_spawn_path(c, NULL, argv);
}

/* Waits up to `within` for the child to exit, then kills it; reaps it
 * either way and closes the pipes left open.  Returns its wait status. */
static int child_reap(struct child *c, int64_t within)
{
	int st = 0;
	int64_t end = cio_now() + within;
	pid_t r;
	while ((r = waitpid(c->pid, &st, WNOHANG)) == 0 && cio_now() < end)
		cio_sleep(10 * CIO_MS);
	if (r == 0) {
		kill(c->pid, SIGKILL);
		CHECK_EQ(waitpid(c->pid, &st, 0), c->pid);
		st = -1;
	}
	if (c->in >= 0)
		cio_close(c->in);
	if (c->out >= 0)
		cio_close(c->out);
	return st;
}

/* A loopback listener on a free port, its address in addr. */
static int listen_here(char *addr, size_t cap)
{
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	local_addr(lfd, addr, cap);
	return lfd;
}

/* Starts openssl s_server for one connection on a free loopback port,
 * with up to three more arguments (NULL ends them), and connects to it,
 * retrying while it starts.  Returns the connected fd. */
static int s_server_start(struct child *ch, char *a1, char *a2, char *a3)
{
	/* A port free now, on a loopback address of this process's own:
	 * another test picking the same port at the same moment (CTest runs
	 * the backends side by side) cannot take it from its s_server. */
	char addr[64], here[32];
	unsigned pid = (unsigned)getpid();
	snprintf(here, sizeof here, "127.%u.%u.1:0", (pid >> 8) & 255, pid & 255);
	int lfd = cio_listen(here, NULL);
	CHECK(lfd >= 0);
	local_addr(lfd, addr, sizeof addr);
	cio_close(lfd);
	char *argv[] = {"openssl", "s_server", "-accept", addr, "-cert", srv_crt, "-key",
			srv_key, "-naccept", "1", "-quiet", a1, a2, a3, NULL};
	child_spawn(ch, argv);
	for (int i = 0; i < 500; i++) {
		int fd = cio_connect(addr, 0);
		if (fd != -ECONNREFUSED) {
			CHECK(fd >= 0);
			return fd;
		}
		cio_sleep(10 * CIO_MS);
	}
	CHECK(!"s_server did not start");
	return -1;
}

static void test_s_server(int version)
{
	struct child ch;
	int fd = s_server_start(&ch, version == CIO_TLS1_2 ? "-tls1_2" : "-tls1_3", NULL, NULL);
	cio_stream *s;
	CHECK_EQ(cio_stream_new(&s, fd, NULL), 0);
	cio_tls_ctx *cctx = client_ctx((cio_tls_client_opts){0});
	CHECK_EQ(cio_stream_tls_connect(s, cctx, "localhost"), 0);
	CHECK(strcmp(cio_stream_tls_version(s), version == CIO_TLS1_2 ? "TLSv1.2" : "TLSv1.3") == 0);
	char subj[256];
	CHECK(cio_stream_tls_peer_subject(s, subj, sizeof subj) > 0);
	CHECK(strstr(subj, "CN = localhost"));
	/* Our bytes come out of its stdout; its stdin's come out of ours. */
	const size_t n = 1 << 20;
	struct flow f[4] = {
		{.s = s, .n = n, .seed = 3},
		{.fd = ch.out, .n = n, .seed = 3},
		{.fd = ch.in, .n = n, .seed = 4},
		{.s = s, .n = n, .seed = 4},
	};
	cio_task_t t[4];
	for (int w = 0; w < 4; w++)
		t[w] = cio_spawn(w % 2 ? recv_flow : send_flow, &f[w]);
	for (int w = 0; w < 4; w++)
		join_rc(t[w]);
	CHECK_EQ(cio_stream_close(s), 0);
	/* Our close_notify ends its one connection, and it exits. */
	int st = child_reap(&ch, 5 * CIO_SEC);
	CHECK(st != -1);
	cio_tls_ctx_free(cctx);
	fprintf(stderr, "  openssl s_server %s: ok\n", version == CIO_TLS1_2 ? "1.2" : "1.3");
}

#ifdef TLS_GET_BIN
/* Reads fd until EOF (or cap - 1 bytes), NUL-terminated; returns the count. */
static size_t read_text(int fd, char *buf, size_t cap, const char *until)
{
	size_t got = 0;
	ssize_t n;
	buf[0] = '\0';
	while (got + 1 < cap && (n = cio_read(fd, buf + got, cap - 1 - got)) > 0) {
		got += (size_t)n;
		buf[got] = '\0';
		if (until && strstr(buf, until))
			break;
	}
	return got;
}

/* The HTTP client over TLS against openssl s_server -www, a server that
 * shares no code with coreio: the certificate checked against the test
 * CA and the name, an HTTP/1.0 response read to its end. */
static void test_http_client_s_server(void)
{
	char addr[64], here[32], out[4096];
	unsigned pid = (unsigned)getpid();
	snprintf(here, sizeof here, "127.%u.%u.2:0", (pid >> 8) & 255, pid & 255);
	int lfd = cio_listen(here, NULL);
	CHECK(lfd >= 0);
	local_addr(lfd, addr, sizeof addr);
	cio_close(lfd);
	char *sargv[] = {"openssl", "s_server", "-accept", addr, "-cert", srv_crt, "-key",
			 srv_key, "-naccept", "1", "-www", NULL};
	struct child srv;
	child_spawn(&srv, sargv);
	CIO_WITH_TIMEOUT(10 * CIO_SEC) {
		read_text(srv.out, out, sizeof out, "ACCEPT"); /* listening */
	}
	CHECK(strstr(out, "ACCEPT"));
	cio_tls_ctx *cctx = client_ctx((cio_tls_client_opts){0});
	cio_http_client *cl;
	cio_http_client_opts o = {.tls = cctx, .server_name = "localhost"};
	CHECK_EQ(cio_http_client_new(&cl, addr, &o), 0);
	cio_http_call *call;
	CHECK_EQ(cio_http_call_new(cl, "GET", "/", &call), 0);
	int st = cio_http_call_send(call);
	if (st != 200)
		fprintf(stderr, "  GET from s_server -www: %d %s\n", st, cio_http_call_error(call));
	CHECK_EQ(st, 200);
	CHECK_EQ(cio_http_call_version(call), 10);
	CHECK(strncmp(cio_http_call_header(call, "content-type"), "text/html", 9) == 0);
	const char *body;
	ssize_t n = cio_http_call_body(call, 1 << 20, &body);
	if (n < 0)
		fprintf(stderr, "  body from s_server -www: %zd %s\n", n, cio_http_call_error(call));
	CHECK(n > 0);
	CHECK(strstr(body, "<HTML>") || strstr(body, "<html>"));
	cio_http_call_free(call);
	CHECK_EQ(cio_http_client_free(cl), 0);
	cio_tls_ctx_free(cctx);
	child_reap(&srv, 5 * CIO_SEC);
	fprintf(stderr, "  HTTP client against openssl s_server -www: ok\n");
}

/* examples/tls_get against openssl s_server -www: the name dialled,
 * the certificate checked against the test CA, the response printed. */
static void test_tls_get(void)
{
	char addr[64], url[96], out[65536];
	cio_close(listen_here(addr, sizeof addr));
	char *sargv[] = {"openssl", "s_server", "-accept", addr, "-cert", srv_crt, "-key",
			 srv_key, "-naccept", "1", "-www", NULL};
	struct child srv, get;
	child_spawn(&srv, sargv);
	CIO_WITH_TIMEOUT(10 * CIO_SEC) {
		read_text(srv.out, out, sizeof out, "ACCEPT"); /* listening */
	}
	CHECK(strstr(out, "ACCEPT"));
	snprintf(url, sizeof url, "https://localhost:%s/", strrchr(addr, ':') + 1);
	char *gargv[] = {"tls_get", "--ca", ca_pem_path, url, NULL};
	child_spawn_path(&get, TLS_GET_BIN, gargv);
	CIO_WITH_TIMEOUT(10 * CIO_SEC) {
		read_text(get.out, out, sizeof out, NULL);
	}
	int st = child_reap(&get, 5 * CIO_SEC);
	if (!strstr(out, "HTTP/1.0 200 ok"))
		fprintf(stderr, "tls_get printed:\n%s\n", out);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(strstr(out, "subject: ") && strstr(out, "CN = localhost"));
	CHECK(strstr(out, "TLSv1.3"));
	CHECK(strstr(out, "HTTP/1.0 200 ok"));
	child_reap(&srv, 5 * CIO_SEC);
	fprintf(stderr, "  tls_get against openssl s_server -www: ok\n");
}
#endif

static void test_s_client(int version)
{
	char addr[64];
	int lfd = listen_here(addr, sizeof addr);
	char *argv[] = {"openssl", "s_client", "-connect", addr, "-servername", "localhost",
			"-CAfile", ca_pem_path, "-verify_return_error", "-verify_hostname",
			"localhost", "-quiet", "-nocommands",
			version == CIO_TLS1_2 ? "-tls1_2" : "-tls1_3", NULL};
	struct child ch;
	child_spawn(&ch, argv);
	cio_tls_ctx *sctx = server_ctx(srv_crt, srv_key, (cio_tls_server_opts){0});
	struct accept_job j = {.ctx = sctx, .lfd = lfd, .fd = -1};
	CHECK_EQ((int)(intptr_t)accept_task(&j), 0);
	CHECK(strcmp(cio_stream_tls_version(j.s), version == CIO_TLS1_2 ? "TLSv1.2" : "TLSv1.3") == 0);
	CHECK(strcmp(cio_stream_tls_server_name(j.s), "localhost") == 0);
	/* Its stdin reaches us; what we send comes out of its stdout, which
	 * ends when our close_notify ends the session (-quiet implies
	 * -ign_eof: the end of its stdin ends nothing). */
	const size_t n = 1 << 20;
	struct flow f[4] = {
		{.fd = ch.in, .n = n, .seed = 5, .end = true},
		{.s = j.s, .n = n, .seed = 5},
		{.s = j.s, .n = n, .seed = 6},
		{.fd = ch.out, .n = n, .seed = 6, .end = true},
	};
	cio_task_t t[4];
	for (int w = 0; w < 4; w++)
		t[w] = cio_spawn(w % 2 ? recv_flow : send_flow, &f[w]);
	join_rc(t[0]);
	join_rc(t[1]);
	join_rc(t[2]);
	CHECK_EQ(cio_stream_close(j.s), 0);
	join_rc(t[3]);
	ch.in = -1; /* send_flow closed it */
	CHECK(child_reap(&ch, 5 * CIO_SEC) != -1);
	cio_close(lfd);
	cio_tls_ctx_free(sctx);
	fprintf(stderr, "  openssl s_client %s: ok\n", version == CIO_TLS1_2 ? "1.2" : "1.3");
}

/* A TLS 1.0 peer is refused, as a client and as a server. */
static void test_tls10(void)
{
	/* openssl s_client -tls1 against our server. */
	char addr[64];
	int lfd = listen_here(addr, sizeof addr);
	char *argv[] = {"openssl", "s_client", "-connect", addr, "-tls1", "-cipher",
			"DEFAULT@SECLEVEL=0", "-quiet", NULL};
	struct child ch;
	child_spawn(&ch, argv);
	cio_tls_ctx *sctx = server_ctx(srv_crt, srv_key, (cio_tls_server_opts){0});
	struct accept_job j = {.ctx = sctx, .lfd = lfd, .fd = -1};
	int rc = (int)(intptr_t)accept_task(&j);
	fprintf(stderr, "  TLS 1.0 client: %s\n", cio_stream_error(j.s));
	CHECK_EQ(rc, -EPROTO);
	CHECK(strstr(cio_stream_error(j.s), "unsupported protocol") ||
	      strstr(cio_stream_error(j.s), "version"));
	cio_stream_close(j.s);
	child_reap(&ch, 5 * CIO_SEC);
	cio_close(lfd);
	cio_tls_ctx_free(sctx);

	/* Our client against openssl s_server -tls1. */
	int fd = s_server_start(&ch, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0");
	cio_stream *s;
	CHECK_EQ(cio_stream_new(&s, fd, NULL), 0);
	cio_tls_ctx *cctx = client_ctx((cio_tls_client_opts){0});
	rc = cio_stream_tls_connect(s, cctx, "localhost");
	fprintf(stderr, "  TLS 1.0 server: %s\n", cio_stream_error(s));
	CHECK_EQ(rc, -EPROTO);
	CHECK(strstr(cio_stream_error(s), "version") || strstr(cio_stream_error(s), "protocol"));
	cio_stream_close(s);
	child_reap(&ch, 5 * CIO_SEC);
	cio_tls_ctx_free(cctx);
}

/* --- refusals ----------------------------------------------------------- */

static void refused_cert(const char *crt, const char *key, const char *name, const char *why1,
			 const char *why2)
{
	cio_tls_ctx *sctx = server_ctx(crt, key, (cio_tls_server_opts){0});
	cio_tls_ctx *cctx = client_ctx((cio_tls_client_opts){0});
	struct conn k = connect_pair(sctx, cctx, name, -1);
	CHECK_EQ(k.crc, -EPROTO);
	const char *e = cio_stream_error(k.c);
	fprintf(stderr, "  refused: %s\n", e);
	CHECK(strstr(e, why1) || (why2 && strstr(e, why2)));
	CHECK(cio_stream_tls_verify_result(k.c) != 0);
	CHECK(k.src < 0); /* our client's alert ends the server's handshake */
	/* Unusable but for close, which frees all. */
	CHECK_EQ(cio_stream_write(k.c, "x", 1), -EPROTO);
	close_pair(&k);
	cio_tls_ctx_free(sctx);
	cio_tls_ctx_free(cctx);
}

/* What a non-TLS client sends makes the server's handshake fail. */
static void refused_bytes(const void *bytes, size_t len, const char *why1, const char *why2)
{
	cio_tls_ctx *sctx = server_ctx(srv_crt, srv_key, (cio_tls_server_opts){0});
	int fds[2];
	tcp_pair(fds);
	struct accept_job j = {.ctx = sctx, .lfd = -1, .fd = fds[1]};
	cio_task_t t = cio_spawn(accept_task, &j);
	CHECK_EQ(cio_send_all(fds[0], bytes, len, 0, NULL), (ssize_t)len);
	int rc = join_rc(t);
	const char *e = cio_stream_error(j.s);
	fprintf(stderr, "  refused: %s (%s)\n", e, cio_strerror(rc));
	CHECK_EQ(rc, -EPROTO);
	CHECK(e[0] && (strstr(e, why1) || (why2 && strstr(e, why2))));
	cio_close(fds[0]);
	cio_stream_close(j.s);
	cio_tls_ctx_free(sctx);
}

static void test_refusals(void)
{
	refused_cert(exp_crt, exp_key, "localhost", "expired", NULL);
	refused_cert(self_crt, self_key, "localhost", "self-signed", "self signed");
	refused_cert(oth_crt, oth_key, "localhost", "hostname mismatch", NULL);
	refused_cert(srv_crt, srv_key, "127.0.0.2", "IP address mismatch", NULL);

	const char http[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	refused_bytes(http, sizeof http - 1, "http request", "wrong version number");
	/* A handshake record whose body is noise. */
	uint8_t junk[69] = {0x16, 0x03, 0x01, 0x00, 0x40};
	for (size_t i = 5; i < sizeof junk; i++)
		junk[i] = (uint8_t)rnd();
	refused_bytes(junk, sizeof junk, "", NULL);
}

/* A handshake that trickles in a byte a second ends with the ctx's
 * handshake timeout. */
struct trickle {
	int fd;
};

static void *trickle_task(void *arg)
{
	struct trickle *tr = arg;
	static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x00, 0x80, 0x01, 0x00, 0x00};
	for (size_t i = 0; i < sizeof hello; i++) {
		if (cio_send(tr->fd, hello + i, 1, 0) != 1)
			break;
		if (cio_sleep(CIO_SEC) < 0)
			break;
	}
	return NULL;
}

static void test_trickle(void)
{
	cio_tls_ctx *sctx = server_ctx(srv_crt, srv_key,
				       (cio_tls_server_opts){.handshake_timeout = 300 * CIO_MS});
	int fds[2];
	tcp_pair(fds);
	struct trickle tr = {fds[0]};
	cio_task_t tt = cio_spawn(trickle_task, &tr);
	struct accept_job j = {.ctx = sctx, .lfd = -1, .fd = fds[1]};
	int64_t t0 = cio_now();
	int rc = (int)(intptr_t)accept_task(&j);
	int64_t took = cio_now() - t0;
	fprintf(stderr, "  trickle: %s after %.2f s\n", cio_stream_error(j.s), took / 1e9);
	CHECK_EQ(rc, -ETIMEDOUT);
	CHECK(strstr(cio_stream_error(j.s), "timed out"));
	CHECK(took >= 300 * CIO_MS && took < CIO_SEC);
	CHECK_EQ(cio_cancel(tt), 0);
	join_rc(tt);
	cio_close(fds[0]);
	CHECK_EQ(cio_stream_close(j.s), 0);
	cio_tls_ctx_free(sctx);
}

/* A peer that is gone before our flight goes out: the send's -EPIPE is
 * -ECONNRESET to the handshake, "the peer left", as coreio.h says (found
 * by fuzz_tls). */
struct hello_job {
	int fd;
	cio_tls_ctx *ctx;
};

static void *hello_client(void *arg)
{
	struct hello_job *h = arg;
	cio_stream *c;
	CHECK_EQ(cio_stream_new(&c, h->fd, NULL), 0);
	int rc = cio_stream_tls_connect(c, h->ctx, "localhost");
	cio_stream_close(c);
	return (void *)(intptr_t)rc;
}

static void test_peer_gone(void)
{
	cio_tls_ctx *sctx = server_ctx(srv_crt, srv_key, (cio_tls_server_opts){0});
	cio_tls_ctx *cctx = client_ctx((cio_tls_client_opts){0});
	int a[2], b[2];
	cio_stream *s;

	/* A client whose server has closed its socket. */
	CHECK_EQ(cio_socketpair(SOCK_STREAM, a), 0);
	CHECK_EQ(cio_close(a[1]), 0);
	struct hello_job h = {.fd = a[0], .ctx = cctx};
	int rc = (int)(intptr_t)hello_client(&h);
	CHECK_EQ(rc, -ECONNRESET);

	/* A server that got a ClientHello from a peer that then closed. */
	CHECK_EQ(cio_socketpair(SOCK_STREAM, a), 0);
	h.fd = a[0];
	cio_task_t t = cio_spawn(hello_client, &h);
	uint8_t hello[4096];
	size_t len = 0;
	while (len < 5 || len < 5 + (size_t)(hello[3] << 8 | hello[4])) {
		ssize_t n = cio_recv(a[1], hello + len, sizeof hello - len, 0);
		CHECK(n > 0);
		len += (size_t)n;
	}
	CHECK_EQ(cio_close(a[1]), 0);
	CHECK_EQ(join_rc(t), -ECONNRESET);
	CHECK_EQ(cio_socketpair(SOCK_STREAM, b), 0);
	CHECK_EQ(cio_send_all(b[0], hello, len, 0, NULL), (ssize_t)len);
	CHECK_EQ(cio_close(b[0]), 0);
	CHECK_EQ(cio_stream_new(&s, b[1], NULL), 0);
	rc = cio_stream_tls_accept(s, sctx);
	fprintf(stderr, "  peer gone: %s\n", cio_stream_error(s));
	CHECK_EQ(rc, -ECONNRESET);
	CHECK(strstr(cio_stream_error(s), "closed during the TLS handshake"));
	cio_stream_close(s);
	cio_tls_ctx_free(sctx);
	cio_tls_ctx_free(cctx);
}

/* --- a man in the middle that cuts a record ---------------------------- */

enum { CUT_NONE, CUT_RESET, CUT_FIN };

struct mitm {
	int cside, sside; /* its ends towards the client and the server */
	int cut;
};

static void *mitm_c2s(void *arg)
{
	struct mitm *m = arg;
	char buf[16384];
	ssize_t n;
	while ((n = cio_recv(m->cside, buf, sizeof buf, 0)) > 0)
		if (cio_send_all(m->sside, buf, (size_t)n, 0, NULL) < 0)
			break;
	return NULL;
}

static void *mitm_s2c(void *arg)
{
	struct mitm *m = arg;
	char buf[16384];
	ssize_t n;
	while ((n = cio_recv(m->sside, buf, sizeof buf, 0)) > 0) {
		if (m->cut == CUT_RESET) {
			/* Half a record, then a reset. */
			CHECK(n > 100);
			CHECK_EQ(cio_send_all(m->cside, buf, 100, 0, NULL), 100);
			cio_sleep(50 * CIO_MS);
			linger0(m->cside);
			cio_close(m->cside); /* wakes mitm_c2s too */
			m->cside = -1;
			break;
		}
		if (cio_send_all(m->cside, buf, (size_t)n, 0, NULL) < 0)
			break;
		if (m->cut == CUT_FIN) {
			/* Whole records, then the TCP end: no close_notify. */
			cio_shutdown(m->cside, SHUT_WR);
			break;
		}
	}
	return NULL;
}

static void test_cut(int mode)
{
	cio_tls_ctx *sctx = server_ctx(srv_crt, srv_key,
				       (cio_tls_server_opts){.no_tickets = true});
	cio_tls_ctx *cctx = client_ctx((cio_tls_client_opts){0});
	int a[2], b[2];
	tcp_pair(a);
	tcp_pair(b);
	struct mitm m = {.cside = a[1], .sside = b[0]};
	cio_task_t t1 = cio_spawn(mitm_c2s, &m), t2 = cio_spawn(mitm_s2c, &m);
	struct accept_job j = {.ctx = sctx, .lfd = -1, .fd = b[1]};
	cio_task_t ta = cio_spawn(accept_task, &j);
	cio_stream *c;
	CHECK_EQ(cio_stream_new(&c, a[0], NULL), 0);
	CHECK_EQ(cio_stream_tls_connect(c, cctx, "localhost"), 0);
	CHECK_EQ(join_rc(ta), 0);
	/* The handshake is over (and no ticket follows): the next record is
	 * the data below. */
	m.cut = mode;
	char data[1000];
	memset(data, 'd', sizeof data);
	CHECK_EQ(cio_stream_write_all(j.s, data, sizeof data, NULL), (ssize_t)sizeof data);
	CHECK_EQ(cio_stream_flush(j.s), 0);
	char got[2000];
	ssize_t n;
	if (mode == CUT_FIN) {
		CHECK_EQ(cio_stream_read_exact(c, got, sizeof data, NULL), (ssize_t)sizeof data);
		CHECK(memcmp(got, data, sizeof data) == 0);
		n = cio_stream_read(c, got, sizeof got);
		fprintf(stderr, "  truncated: %s\n", cio_stream_error(c));
		CHECK_EQ(n, -EPIPE);
		CHECK(strstr(cio_stream_error(c), "truncated"));
	} else {
		n = cio_stream_read(c, got, sizeof got);
		fprintf(stderr, "  reset mid-record: %s\n", cio_stream_error(c));
		CHECK_EQ(n, -ECONNRESET);
	}
	join_rc(t2);
	if (m.cside >= 0)
		cio_close(m.cside); /* wakes mitm_c2s */
	join_rc(t1);
	cio_stream_close(c);
	cio_close(b[0]);
	cio_stream_close(j.s);
	cio_tls_ctx_free(sctx);
	cio_tls_ctx_free(cctx);
}

/* --- SNI, ALPN, resumption ------------------------------------------------- */

static void test_sni_alpn(void)
{
	cio_tls_cert certs[2] = {{.cert_file = srv_crt, .key_file = srv_key},
				 {.cert_file = oth_crt, .key_file = oth_key}};
	cio_tls_ctx *sctx = server_ctx(NULL, NULL, (cio_tls_server_opts){
		.certs = certs, .ncerts = 2, .alpn = "http/1.1,h2"});
	cio_tls_ctx *cctx = client_ctx((cio_tls_client_opts){.alpn = "h2,http/1.1"});
	cio_tls_ctx *plain = client_ctx((cio_tls_client_opts){0});
	static const char *const names[][2] = {{"www.other.test", "CN = other"},
					      {"other.test", "CN = other"},
					      {"localhost", "CN = localhost"}};
	for (size_t i = 0; i < 3; i++) {
		struct conn k = connect_pair(sctx, cctx, names[i][0], -1);
		CHECK_EQ(k.crc, 0);
		CHECK_EQ(k.src, 0);
		char subj[256];
		CHECK(cio_stream_tls_peer_subject(k.c, subj, sizeof subj) > 0);
		CHECK(strcmp(subj, names[i][1]) == 0);
		CHECK_EQ(cio_stream_tls_peer_subject(k.c, subj, 4), -ENOSPC);
		CHECK_EQ(cio_stream_tls_peer_subject(k.s, subj, sizeof subj), -ENOENT);
		CHECK(strcmp(cio_stream_tls_server_name(k.s), names[i][0]) == 0);
		/* The server's preference wins. */
		CHECK(strcmp(cio_stream_tls_alpn(k.c), "http/1.1") == 0);
		CHECK(strcmp(cio_stream_tls_alpn(k.s), "http/1.1") == 0);
		close_pair(&k);
	}
	/* An IP literal: no SNI, the default cert, checked by its IP entry. */
	struct conn k = connect_pair(sctx, plain, "127.0.0.1", -1);
	CHECK_EQ(k.crc, 0);
	CHECK(cio_stream_tls_server_name(k.s) == NULL);
	CHECK(cio_stream_tls_alpn(k.c) == NULL);
	CHECK(cio_stream_tls_alpn(k.s) == NULL);
	close_pair(&k);
	cio_tls_ctx_free(sctx);
	cio_tls_ctx_free(cctx);
	cio_tls_ctx_free(plain);
}

static void test_resumption(int version, bool tickets)
{
	cio_tls_ctx *sctx = server_ctx(srv_crt, srv_key, (cio_tls_server_opts){
		.max_version = version, .no_tickets = !tickets});
	cio_tls_ctx *cctx = client_ctx((cio_tls_client_opts){.max_version = version});
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	for (int i = 0; i < 3; i++) {
		struct conn k = connect_pair(sctx, cctx, "localhost", lfd);
		CHECK_EQ(k.crc, 0);
		CHECK_EQ(k.src, 0);
		CHECK_EQ(cio_stream_tls_resumed(k.c), i > 0);
		CHECK_EQ(cio_stream_tls_resumed(k.s), i > 0);
		/* A round trip: TLS 1.3's tickets come before the data. */
		char b[4];
		CHECK_EQ(cio_stream_write_all(k.s, "ping", 4, NULL), 4);
		CHECK_EQ(cio_stream_flush(k.s), 0);
		CHECK_EQ(cio_stream_read_exact(k.c, b, 4, NULL), 4);
		close_pair(&k);
	}
	cio_close(lfd);
	cio_tls_ctx_free(sctx);
	cio_tls_ctx_free(cctx);
}

/* --- cancellation --------------------------------------------------------- */

static void *read_task(void *arg)
{
	char b[64];
	return (void *)(intptr_t)cio_stream_read(arg, b, sizeof b);
}

static void *connect_task(void *arg)
{
	cio_stream *s = arg;
	cio_tls_ctx *cctx = client_ctx((cio_tls_client_opts){0});
	int rc = cio_stream_tls_connect(s, cctx, "localhost");
	cio_tls_ctx_free(cctx);
	return (void *)(intptr_t)rc;
}

static void *write_forever(void *arg)
{
	static char buf[1 << 16];
	ssize_t n;
	while ((n = cio_stream_write_all(arg, buf, sizeof buf, NULL)) > 0)
		;
	return (void *)(intptr_t)n;
}

/* A close while one task is parked reading the TLS stream and another
 * writing it (the peer reads nothing): both wake with -EBADF, and the
 * session is freed only after they have left (ASan watches). */
static void test_close_under_calls(void)
{
	cio_tls_ctx *sctx = server_ctx(srv_crt, srv_key, (cio_tls_server_opts){0});
	cio_tls_ctx *cctx = client_ctx((cio_tls_client_opts){0});
	struct conn k = connect_pair(sctx, cctx, "localhost", -1);
	CHECK_EQ(k.crc, 0);
	cio_task_t r = cio_spawn(read_task, k.c), w = cio_spawn(write_forever, k.c);
	cio_sleep(30 * CIO_MS);
	CHECK_EQ(cio_stream_close(k.c), 0);
	CHECK_EQ(join_rc(r), -EBADF);
	void *wrc;
	CHECK_EQ(cio_join(w, &wrc), 0);
	CHECK_EQ((int)(intptr_t)wrc, -EBADF);
	CHECK_EQ(cio_stream_close(k.s), 0);
	cio_tls_ctx_free(sctx);
	cio_tls_ctx_free(cctx);
}

static void test_cancel(void)
{
	cio_tls_ctx *sctx = server_ctx(srv_crt, srv_key, (cio_tls_server_opts){0});
	cio_tls_ctx *cctx = client_ctx((cio_tls_client_opts){0});
	struct conn k = connect_pair(sctx, cctx, "localhost", -1);
	CHECK_EQ(k.crc, 0);
	cio_task_t t = cio_spawn(read_task, k.c);
	cio_sleep(20 * CIO_MS);
	CHECK_EQ(cio_cancel(t), 0);
	CHECK_EQ(join_rc(t), -ECANCELED);
	/* The stream still works and closes with close_notify. */
	CHECK_EQ(cio_stream_write_all(k.c, "abc", 3, NULL), 3);
	CHECK_EQ(cio_stream_close(k.c), 0);
	char b[8];
	CHECK_EQ(cio_stream_read_exact(k.s, b, 3, NULL), 3);
	CHECK(memcmp(b, "abc", 3) == 0);
	CHECK_EQ(cio_stream_read(k.s, b, sizeof b), 0);
	CHECK_EQ(cio_stream_close(k.s), 0);

	/* Mid-handshake: the server never answers. */
	int fds[2];
	tcp_pair(fds);
	cio_stream *s;
	CHECK_EQ(cio_stream_new(&s, fds[0], NULL), 0);
	t = cio_spawn(connect_task, s);
	cio_sleep(20 * CIO_MS);
	CHECK_EQ(cio_cancel(t), 0);
	CHECK_EQ(join_rc(t), -ECANCELED);
	CHECK_EQ(cio_stream_close(s), 0);
	cio_close(fds[1]);
	cio_tls_ctx_free(sctx);
	cio_tls_ctx_free(cctx);
}

/* --- configurations -------------------------------------------------------- */

static void test_ctx_errors(void)
{
	cio_tls_ctx *ctx = NULL;
	char err[256];
	cio_tls_cert missing = {.cert_file = "/nonexistent/x.crt", .key_file = srv_key};
	cio_tls_server_opts so = {.certs = &missing, .ncerts = 1};
	CHECK_EQ(cio_tls_server_ctx(&ctx, &so, err, sizeof err), -ENOENT);
	CHECK(strstr(err, "/nonexistent/x.crt"));
	cio_tls_cert mismatch = {.cert_file = srv_crt, .key_file = oth_key};
	so.certs = &mismatch;
	CHECK_EQ(cio_tls_server_ctx(&ctx, &so, err, sizeof err), -EINVAL);
	fprintf(stderr, "  mismatched key: %s\n", err);
	CHECK(strstr(err, "key"));
	cio_tls_cert bad = {.cert_pem = "-----BEGIN CERTIFICATE-----\nnope\n", .key_pem = srv_key_text};
	so.certs = &bad;
	CHECK_EQ(cio_tls_server_ctx(&ctx, &so, err, sizeof err), -EINVAL);
	so.certs = NULL;
	CHECK_EQ(cio_tls_server_ctx(&ctx, &so, err, sizeof err), -EINVAL);
	cio_tls_client_opts co = {.alpn = "h2,,x"};
	CHECK_EQ(cio_tls_client_ctx(&ctx, &co, err, sizeof err), -EINVAL);
	co = (cio_tls_client_opts){.max_version = 0x0301};
	CHECK_EQ(cio_tls_client_ctx(&ctx, &co, err, sizeof err), -EINVAL);

	/* PEM in memory works as files do. */
	cio_tls_cert mem = {.cert_pem = srv_crt_text, .key_pem = srv_key_text};
	cio_tls_ctx *sctx = server_ctx(NULL, NULL, (cio_tls_server_opts){.certs = &mem, .ncerts = 1});
	cio_tls_ctx *cctx = client_ctx((cio_tls_client_opts){.ca_pem = ca_text});
	struct conn k = connect_pair(sctx, cctx, "localhost", -1);
	CHECK_EQ(k.crc, 0);
	CHECK_EQ(k.src, 0);
	/* A client ctx cannot serve. */
	CHECK_EQ(cio_stream_tls_accept(k.c, cctx), -EINVAL);
	close_pair(&k);
	cio_tls_ctx_free(sctx);
	cio_tls_ctx_free(cctx);
}

static void *main_task(void *arg)
{
	(void)arg;
	TEST_CASE(ctx_errors, test_ctx_errors());
	TEST_CASE(transfers_tls13, test_transfers(CIO_TLS1_3));
	TEST_CASE(transfers_tls12, test_transfers(CIO_TLS1_2));
	TEST_CASE(refusals, test_refusals());
	TEST_CASE(trickle, test_trickle());
	TEST_CASE(peer_gone, test_peer_gone());
	TEST_CASE(cut_reset, test_cut(CUT_RESET));
	TEST_CASE(cut_fin, test_cut(CUT_FIN));
	TEST_CASE(sni_alpn, test_sni_alpn());
	TEST_CASE(resumption_tls13, test_resumption(CIO_TLS1_3, true));
	TEST_CASE(resumption_tls12_tickets, test_resumption(CIO_TLS1_2, true));
	TEST_CASE(resumption_tls12_ids, test_resumption(CIO_TLS1_2, false));
	TEST_CASE(cancel, test_cancel());
	TEST_CASE(close_under_calls, test_close_under_calls());
	/* OpenSSL's own peers: scripts/deps.sh installs the binary. */
	if (test_case_wanted("s_server_tls13") || test_case_wanted("s_server_tls12") ||
	    test_case_wanted("s_client_tls13") || test_case_wanted("s_client_tls12")) {
		if (access(OPENSSL_BIN, X_OK) != 0)
			fprintf(stderr, "FAIL: no %s (install openssl)\n", OPENSSL_BIN);
		CHECK_EQ(access(OPENSSL_BIN, X_OK), 0);
	}
	TEST_CASE(s_server_tls13, test_s_server(CIO_TLS1_3));
	TEST_CASE(s_server_tls12, test_s_server(CIO_TLS1_2));
	TEST_CASE(s_client_tls13, test_s_client(CIO_TLS1_3));
	TEST_CASE(s_client_tls12, test_s_client(CIO_TLS1_2));
#ifdef TLS_GET_BIN
	TEST_CASE(http_client_s_server, test_http_client_s_server());
	TEST_CASE(tls_get, test_tls_get());
#else
	TEST_CASE_OFF(http_client_s_server, "built without the examples");
	TEST_CASE_OFF(tls_get, "built without the examples");
#endif
	TEST_CASE(tls10, test_tls10());
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	net_seed_from_env();
	pki_make();
	int rc = test_run(main_task, NULL);
	pki_remove();
	return rc ? rc : test_cases_end();
}
