/* tls.c - TLS 1.2/1.3 on OpenSSL 3 as a stream transport.
 *
 * OpenSSL never touches the socket: each session's BIO reads ciphertext
 * from the session's input buffer and writes it into its output buffer,
 * and the bytes move between those and the fd with cio_recv() and
 * cio_send(), so they ride the runtime's driver (io_uring) and park only
 * the calling task.  (Not memory BIOs: their copies in and out, and the
 * zeroing as they grow, cost a fifth of a proxy's CPU at 16 KiB.)  No
 * OpenSSL call is ever in progress while a task is parked; SSL_read and
 * SSL_write of two tasks (a proxy's two directions) therefore interleave
 * only between whole calls.  Only the reader (and the handshake) receives
 * ciphertext; anyone may produce it (the reader a KeyUpdate reply or an
 * alert, the writer data), and one holder of the send lock at a time
 * sends the output buffer to the fd. */
#include "stream.h"
#include "../platform/fail.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define HS_TIMEOUT_DEFAULT (10 * CIO_SEC)
#define IN_CAP (17 * 1024)  /* ciphertext received at a time */
#define WRITE_MAX (16 * 1024) /* plaintext encrypted per write: a record */
/* Ciphertext waiting to be sent: a whole record of WRITE_MAX with the
 * largest expansion TLS allows, and room for what a reader adds (alerts,
 * KeyUpdate replies) while that record is being sent. */
#define OUT_CAP (WRITE_MAX + 2048 + 4096)
#define CACHE_N 32          /* client sessions kept per thread */

struct cio_tls_ctx {
	SSL_CTX *ssl_ctx;  /* certs[0]'s, or the client's */
	SSL_CTX **sni;     /* certs[1..]'s, chosen by SNI */
	size_t nsni;
	bool server;
	bool no_resumption;
	int64_t hs_timeout;
	uint64_t id;       /* keys the session cache: never reused */
	unsigned char *alpn; /* wire format: length-prefixed names */
	size_t alpn_len;
};

struct tls {
	SSL *ssl;
	cio_tls_ctx *ctx;
	cio_mutex send_lock; /* held while sending out to the fd */
	int failed;        /* fatal: the handshake's or a protocol error */
	int rerr;          /* a receive that failed on the connection */
	int send_err;      /* a send that failed on the connection */
	bool eof;          /* the fd's stream ended */
	bool shut;         /* close_notify queued */
	bool read_done;    /* the peer's close_notify came */
	char why[200];     /* detail text of failed */
	char alpn[256];
	char name[256];    /* client: the server name; server: the SNI got */
	char key[320];     /* session cache key, "" for none */
	bool sending;      /* a cio_send() of out is in flight: out stays put */
	size_t ohead, otail; /* out: ciphertext not yet sent */
	size_t ihead, itail; /* in: ciphertext not yet given to OpenSSL */
	unsigned char out[OUT_CAP];
	unsigned char in[IN_CAP];
};

static const struct cio__stream_ops tls_ops;

/* --- errors ------------------------------------------------------------- */

static void put_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void put_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The reason of the earliest error queued that has one (the root cause:
 * later entries tend to say only "handshake failure"), and its code; the
 * queue is emptied. */
static const char *take_reason(unsigned long *code)
{
	const char *why = NULL;
	unsigned long e, first = 0;
	while ((e = ERR_get_error()) != 0) {
		if (!first)
			first = e;
		if (!why && ERR_reason_error_string(e)) {
			why = ERR_reason_error_string(e);
			first = e;
		}
	}
	if (code)
		*code = first;
	return why;
}

/* Records err and its detail on the stream, and returns err. */
static int fail(cio_stream *s, int err, const char *why)
{
	s->last_err = err;
	return cio__stream_detail(s, err, "%s", why);
}

/* The -errno and the words for an OpenSSL call that failed with SSL_get_error()
 * code e.  Must run before anything else touches the thread's error queue:
 * another task's call could refill it while this one is parked. */
static int ssl_failure(cio_stream *s, struct tls *t, int e, bool handshake)
{
	unsigned long code = 0;
	const char *why = take_reason(&code);
	int err = -EPROTO;
	if (e == SSL_ERROR_SYSCALL || (ERR_GET_LIB(code) == ERR_LIB_SSL &&
				       ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
		/* The TCP stream ended (a memory BIO reports nothing else). */
		err = handshake ? -ECONNRESET : -EPIPE;
		why = handshake ? "connection closed during the TLS handshake"
				: "connection closed without close_notify (truncated)";
	} else if (ERR_GET_LIB(code) == ERR_LIB_SSL &&
		   ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
		long v = SSL_get_verify_result(t->ssl);
		if (v != X509_V_OK)
			why = X509_verify_cert_error_string(v);
	}
	if (!why)
		why = "TLS protocol error";
	snprintf(t->why, sizeof t->why, "%s", why);
	/* A truncation ends the reading only: the peer may still read what
	 * we send (it half-closed), and a relay passes the end on. */
	if (err == -EPIPE && !handshake)
		t->rerr = err;
	else
		t->failed = err;
	return fail(s, err, t->why);
}

static bool interrupted(int err)
{
	return err == -ECANCELED || err == -ETIMEDOUT;
}

/* --- the session's BIO ------------------------------------------------- */

/* OpenSSL reads what recv_more() put in `in`: "retry" when it is empty,
 * the end (0) once the fd's stream ended, which OpenSSL tells apart as a
 * clean close or a truncation. */
static int bio_read(BIO *b, char *buf, int len)
{
	struct tls *t = BIO_get_data(b);
	size_t n = t->itail - t->ihead;
	BIO_clear_retry_flags(b);
	if (n == 0) {
		if (t->eof)
			return 0;
		BIO_set_retry_read(b);
		return -1;
	}
	if (n > (size_t)len)
		n = (size_t)len;
	memcpy(buf, t->in + t->ihead, n);
	t->ihead += n;
	return (int)n;
}

/* OpenSSL's records go into `out`, after what waits there; "retry" when
 * it is full, and the caller sends and calls OpenSSL again.  While a send
 * is in flight the bytes in out must not move. */
static int bio_write(BIO *b, const char *buf, int len)
{
	struct tls *t = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (!t->sending && t->ohead > 0 && OUT_CAP - t->otail < (size_t)len) {
		memmove(t->out, t->out + t->ohead, t->otail - t->ohead);
		t->otail -= t->ohead;
		t->ohead = 0;
	}
	size_t n = OUT_CAP - t->otail;
	if (n == 0) {
		BIO_set_retry_write(b);
		return -1;
	}
	if (n > (size_t)len)
		n = (size_t)len;
	memcpy(t->out + t->otail, buf, n);
	t->otail += n;
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls *t = BIO_get_data(b);
	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH: /* sending is ours: the flight is complete */
		return 1;
	case BIO_CTRL_PENDING:
		return (long)(t->itail - t->ihead);
	case BIO_CTRL_WPENDING:
		return (long)(t->otail - t->ohead);
	case BIO_CTRL_EOF:
		return t->eof && t->itail == t->ihead;
	default:
		return 0;
	}
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_make(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "coreio session");
	if (m && BIO_meth_set_read(m, bio_read) && BIO_meth_set_write(m, bio_write) &&
	    BIO_meth_set_ctrl(m, bio_ctrl))
		bio_method = m;
	else
		BIO_meth_free(m);
}

/* --- moving ciphertext -------------------------------------------------- */

/* Sends what out holds.  The caller holds send_lock.  An interrupted send
 * keeps the rest in out for the next call, so no ciphertext is lost or
 * reordered. */
static int send_pending(cio_stream *s, struct tls *t)
{
	if (t->send_err)
		return t->send_err;
	while (t->ohead < t->otail) {
		t->sending = true;
		ssize_t n = cio_send(s->fd, t->out + t->ohead, t->otail - t->ohead, 0);
		t->sending = false;
		if (n < 0) {
			if (!interrupted((int)n))
				t->send_err = (int)n;
			return (int)n;
		}
		t->ohead += (size_t)n;
	}
	t->ohead = t->otail = 0;
	return 0;
}

/* Sends out to the fd.  A reader does not wait for the lock (wait false):
 * whoever holds it sends what the reader added before it lets go, and a
 * reader blocked on a writer stuck on a peer that is itself waiting to be
 * read would deadlock. */
static int flush_out(cio_stream *s, struct tls *t, bool wait)
{
	if (t->ohead == t->otail)
		return t->send_err;
	int rc = wait ? cio_mutex_lock(&t->send_lock) : cio_mutex_trylock(&t->send_lock);
	if (rc == -EBUSY)
		return 0;
	if (rc < 0)
		return rc;
	rc = send_pending(s, t);
	cio_mutex_unlock(&t->send_lock);
	return rc;
}

/* Receives ciphertext into in.  Returns 0 or -errno; the end of the fd's
 * stream is passed on to OpenSSL (bio_read). */
static int recv_more(cio_stream *s, struct tls *t)
{
	if (t->eof)
		return -EPIPE;
	if (t->ihead == t->itail) {
		t->ihead = t->itail = 0;
	} else if (t->itail == IN_CAP) {
		memmove(t->in, t->in + t->ihead, t->itail - t->ihead);
		t->itail -= t->ihead;
		t->ihead = 0;
	}
	ssize_t n = cio_recv(s->fd, t->in + t->itail, IN_CAP - t->itail, 0);
	if (n < 0)
		return (int)n;
	if (n == 0)
		t->eof = true;
	t->itail += (size_t)n;
	return 0;
}

/* --- the transport ------------------------------------------------------ */

/* A failed session answers every call with its error and detail again. */
static int refail(cio_stream *s, struct tls *t)
{
	return cio__stream_detail(s, t->failed, "%s", t->why);
}

static ssize_t tls_read(cio_stream *s, void *buf, size_t len)
{
	struct tls *t = s->transport;
	if (t->failed)
		return refail(s, t);
	if (t->read_done)
		return 0;
	if (t->rerr)
		return t->rerr;
	if (len > INT32_MAX)
		len = INT32_MAX;
	for (;;) {
		size_t n = 0;
		ERR_clear_error();
		int r = SSL_read_ex(t->ssl, buf, len, &n);
		int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_NONE || e == SSL_ERROR_ZERO_RETURN) {
			/* A reply the read produced (KeyUpdate) goes out
			 * now; a failure to send is the writer's to report. */
			flush_out(s, t, false);
			if (e == SSL_ERROR_ZERO_RETURN)
				t->read_done = true;
			return (ssize_t)n;
		}
		if (e == SSL_ERROR_WANT_WRITE) {
			/* out is full (rare: a reply while a record waits):
			 * this once, wait for the sender. */
			int rc = flush_out(s, t, true);
			if (rc < 0)
				return rc;
			continue;
		}
		if (e != SSL_ERROR_WANT_READ) {
			int err = ssl_failure(s, t, e, false);
			flush_out(s, t, false); /* our alert, if any */
			return err;
		}
		flush_out(s, t, false);
		int rc = recv_more(s, t);
		if (rc < 0) {
			if (!interrupted(rc))
				t->rerr = rc;
			return rc;
		}
	}
}

static ssize_t tls_write(cio_stream *s, const void *buf, size_t len)
{
	struct tls *t = s->transport;
	if (t->failed)
		return refail(s, t);
	if (t->shut)
		return -EPIPE;
	int rc = cio_mutex_lock(&t->send_lock);
	if (rc < 0)
		return rc;
	/* Earlier ciphertext first: that is the backpressure, and what an
	 * interrupted call left behind goes out before anything new. */
	ssize_t ret = send_pending(s, t);
	if (ret < 0)
		goto out;
	size_t n = 0;
	for (;;) {
		ERR_clear_error();
		int r = SSL_write_ex(t->ssl, buf, len < WRITE_MAX ? len : WRITE_MAX, &n);
		if (r == 1)
			break;
		int e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_WRITE) {
			/* out filled mid-record: send, then the same call
			 * again, as OpenSSL requires. */
			if ((ret = send_pending(s, t)) < 0)
				goto out;
			continue;
		}
		ret = ssl_failure(s, t, e, false);
		send_pending(s, t);
		goto out;
	}
	/* The n bytes are committed: an error sending them now is reported
	 * by the next call (send_err, or the deadline or cancellation that
	 * still stands), as a socket's send reports bytes it took. */
	send_pending(s, t);
	ret = (ssize_t)n;
out:
	cio_mutex_unlock(&t->send_lock);
	return ret;
}

static int tls_shutdown(cio_stream *s)
{
	struct tls *t = s->transport;
	if (t->failed)
		return refail(s, t);
	int rc = 0;
	while (!t->shut) {
		ERR_clear_error();
		/* Queues close_notify: 0 until the peer's came; -1 with
		 * WANT_WRITE when out has no room for it yet. */
		int r = SSL_shutdown(t->ssl);
		bool full = r < 0 && SSL_get_error(t->ssl, r) == SSL_ERROR_WANT_WRITE;
		ERR_clear_error();
		if (!full)
			t->shut = true;
		else if ((rc = flush_out(s, t, true)) < 0)
			return rc;
	}
	return flush_out(s, t, true);
}

static void tls_release(cio_stream *s)
{
	struct tls *t = s->transport;
	if (!t)
		return;
	SSL_free(t->ssl); /* frees the BIO */
	free(t);
	s->transport = NULL;
}

/* Ciphertext not yet given to OpenSSL or not yet sent, or a record's
 * plaintext OpenSSL has not handed out. */
static bool tls_holds(const cio_stream *s)
{
	const struct tls *t = s->transport;
	return t->ihead != t->itail || t->ohead != t->otail || SSL_has_pending(t->ssl);
}

/* Ciphertext an interrupted write or shutdown left in out. */
static int tls_flush(cio_stream *s)
{
	struct tls *t = s->transport;
	return t->failed ? refail(s, t) : flush_out(s, t, true);
}

static const struct cio__stream_ops tls_ops = {
	.read = tls_read,
	.write = tls_write,
	.shutdown = tls_shutdown,
	.flush = tls_flush,
	.release = tls_release,
	.holds = tls_holds,
};

/* --- client session cache ---------------------------------------------- */

/* Per thread: a session is resumed on the core that made it, with no
 * lock.  Keyed by the ctx's id, the server name and the peer address. */
struct cache_ent {
	uint64_t ctx_id;
	uint64_t used;
	SSL_SESSION *sess;
	char key[320];
};
static __thread struct cache_ent *cache;
static __thread uint64_t cache_clock;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *p)
{
	struct cache_ent *c = p;
	for (size_t i = 0; i < CACHE_N; i++)
		SSL_SESSION_free(c[i].sess);
	free(c);
}

static void cache_key_make(void)
{
	pthread_key_create(&cache_key, cache_free);
}

static struct cache_ent *cache_get(void)
{
	if (!cache) {
		pthread_once(&cache_once, cache_key_make);
		cache = cio__calloc(CACHE_N, sizeof *cache);
		if (cache)
			pthread_setspecific(cache_key, cache); /* freed at thread exit */
	}
	return cache;
}

static struct cache_ent *cache_find(uint64_t id, const char *key)
{
	struct cache_ent *c = cache_get();
	for (size_t i = 0; c && i < CACHE_N; i++)
		if (c[i].sess && c[i].ctx_id == id && strcmp(c[i].key, key) == 0)
			return &c[i];
	return NULL;
}

/* Keeps sess (takes its reference): replaces the same key's, else the
 * least recently used entry. */
static void cache_put(uint64_t id, const char *key, SSL_SESSION *sess)
{
	struct cache_ent *c = cache_get();
	if (!c) {
		SSL_SESSION_free(sess);
		return;
	}
	struct cache_ent *e = cache_find(id, key);
	for (size_t i = 0; !e && i < CACHE_N; i++)
		if (!c[i].sess)
			e = &c[i];
	if (!e) {
		e = &c[0];
		for (size_t i = 1; i < CACHE_N; i++)
			if (c[i].used < e->used)
				e = &c[i];
	}
	SSL_SESSION_free(e->sess);
	e->sess = sess;
	e->ctx_id = id;
	e->used = ++cache_clock;
	snprintf(e->key, sizeof e->key, "%s", key);
}

/* OpenSSL hands over each new session (TLS 1.3: each ticket, after the
 * handshake, while the reader reads). */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct tls *t = SSL_get_app_data(ssl);
	if (!t || !t->key[0] || !SSL_SESSION_is_resumable(sess))
		return 0;
	cache_put(t->ctx->id, t->key, sess);
	return 1;
}

/* --- contexts ----------------------------------------------------------- */

static atomic_uint_fast64_t ctx_ids;

/* "h2,http/1.1" in ALPN's wire format. */
static int alpn_wire(cio_tls_ctx *c, const char *list, char *err, size_t errlen)
{
	size_t n = strlen(list);
	c->alpn = cio__malloc(n + 1);
	if (!c->alpn)
		return -ENOMEM;
	size_t o = 0;
	/* Every name between commas, the last one too ("h2," is bad). */
	for (const char *p = list; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == 0 || len > 255 || (end && end[1] == '\0')) {
			put_err(err, errlen, "bad ALPN list: \"%s\"", list);
			return -EINVAL;
		}
		c->alpn[o++] = (unsigned char)len;
		memcpy(c->alpn + o, p, len);
		o += len;
		p = end ? end + 1 : p + len;
	}
	c->alpn_len = o;
	if (!o) {
		put_err(err, errlen, "empty ALPN list");
		return -EINVAL;
	}
	return 0;
}

/* The server's pick: its first protocol the client offers too. */
static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			  const unsigned char *in, unsigned int inlen, void *arg)
{
	const cio_tls_ctx *c = arg;
	for (size_t i = 0; i < c->alpn_len; i += 1 + c->alpn[i])
		for (unsigned j = 0; j < inlen; j += 1u + in[j])
			if (in[j] == c->alpn[i] && j + 1u + in[j] <= inlen &&
			    memcmp(in + j + 1, c->alpn + i + 1, in[j]) == 0) {
				*out = c->alpn + i + 1;
				*outlen = c->alpn[i];
				return SSL_TLSEXT_ERR_OK;
			}
	return SSL_TLSEXT_ERR_NOACK;
}

/* Chooses certs[i] by the client's SNI. */
static int sni_cb(SSL *ssl, int *al, void *arg)
{
	const cio_tls_ctx *c = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (!name)
		return SSL_TLSEXT_ERR_OK;
	for (size_t i = 0; i < c->nsni; i++) {
		X509 *x = SSL_CTX_get0_certificate(c->sni[i]);
		if (x && X509_check_host(x, name, strlen(name), 0, NULL) == 1) {
			SSL_set_SSL_CTX(ssl, c->sni[i]);
			break;
		}
	}
	return SSL_TLSEXT_ERR_OK;
}

/* An SSL_CTX with the settings every one of ours shares. */
static SSL_CTX *ctx_base(cio_tls_ctx *c, bool server, int min, int max)
{
	SSL_CTX *x = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!x)
		return NULL;
	SSL_CTX_set_min_proto_version(x, min ? min : TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(x, max ? max : TLS1_3_VERSION);
	SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
				       (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
	if (server) {
		static const unsigned char sid[] = "coreio";
		SSL_CTX_set_session_id_context(x, sid, sizeof sid - 1);
		if (c->alpn)
			SSL_CTX_set_alpn_select_cb(x, alpn_select_cb, c);
	}
	return x;
}

/* Whether path can be read; else -errno and the reason in err. */
static int file_ok(const char *what, const char *path, char *err, size_t errlen)
{
	if (access(path, R_OK) == 0)
		return 0;
	int e = -errno;
	put_err(err, errlen, "%s %s: %s", what, path, strerror(-e));
	return e;
}

static int ssl_err(char *err, size_t errlen, const char *what, int rc)
{
	const char *why = take_reason(NULL);
	put_err(err, errlen, "%s: %s", what, why ? why : "invalid");
	return rc;
}

/* Installs cert (and its chain) and key into x. */
static int load_cert(SSL_CTX *x, const cio_tls_cert *k, char *err, size_t errlen)
{
	int rc;
	ERR_clear_error();
	if (k->cert_file) {
		if ((rc = file_ok("certificate", k->cert_file, err, errlen)) < 0)
			return rc;
		if (SSL_CTX_use_certificate_chain_file(x, k->cert_file) != 1)
			return ssl_err(err, errlen, k->cert_file, -EINVAL);
	} else if (k->cert_pem) {
		BIO *b = BIO_new_mem_buf(k->cert_pem, -1);
		if (!b)
			return -ENOMEM;
		X509 *leaf = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
		rc = leaf && SSL_CTX_use_certificate(x, leaf) == 1 ? 0 : -EINVAL;
		X509_free(leaf);
		X509 *ca;
		while (rc == 0 && (ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
			if (SSL_CTX_add0_chain_cert(x, ca) != 1) {
				X509_free(ca);
				rc = -EINVAL;
			}
		BIO_free(b);
		if (rc < 0)
			return ssl_err(err, errlen, "certificate PEM", rc);
		ERR_clear_error(); /* the end of the chain */
	} else {
		put_err(err, errlen, "a certificate without cert_file or cert_pem");
		return -EINVAL;
	}
	if (k->key_file) {
		if ((rc = file_ok("key", k->key_file, err, errlen)) < 0)
			return rc;
		if (SSL_CTX_use_PrivateKey_file(x, k->key_file, SSL_FILETYPE_PEM) != 1)
			return ssl_err(err, errlen, k->key_file, -EINVAL);
	} else if (k->key_pem) {
		BIO *b = BIO_new_mem_buf(k->key_pem, -1);
		if (!b)
			return -ENOMEM;
		EVP_PKEY *pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
		rc = pk && SSL_CTX_use_PrivateKey(x, pk) == 1 ? 0 : -EINVAL;
		EVP_PKEY_free(pk);
		BIO_free(b);
		if (rc < 0)
			return ssl_err(err, errlen, "key PEM", rc);
	} else {
		put_err(err, errlen, "a certificate without key_file or key_pem");
		return -EINVAL;
	}
	if (SSL_CTX_check_private_key(x) != 1)
		return ssl_err(err, errlen, "key does not match its certificate", -EINVAL);
	return 0;
}

static bool version_ok(int v)
{
	return v == 0 || v == CIO_TLS1_2 || v == CIO_TLS1_3;
}

static int versions_ok(int min, int max, char *err, size_t errlen)
{
	if (version_ok(min) && version_ok(max) && (!min || !max || min <= max))
		return 0;
	put_err(err, errlen, "bad TLS versions: min %#x, max %#x", min, max);
	return -EINVAL;
}

static cio_tls_ctx *ctx_new(bool server, int64_t hs_timeout)
{
	cio_tls_ctx *c = cio__calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->server = server;
	c->hs_timeout = hs_timeout > 0 ? hs_timeout : HS_TIMEOUT_DEFAULT;
	c->id = atomic_fetch_add(&ctx_ids, 1) + 1;
	return c;
}

int cio_tls_server_ctx(cio_tls_ctx **out, const cio_tls_server_opts *o, char *err,
		       size_t errlen)
{
	put_err(err, errlen, "%s", "");
	if (!out || !o || !o->certs || o->ncerts == 0) {
		put_err(err, errlen, "a server needs a certificate");
		return -EINVAL;
	}
	if (versions_ok(o->min_version, o->max_version, err, errlen) < 0)
		return -EINVAL;
	cio_tls_ctx *c = ctx_new(true, o->handshake_timeout);
	if (!c)
		return -ENOMEM;
	int rc = 0;
	if (o->alpn && (rc = alpn_wire(c, o->alpn, err, errlen)) < 0)
		goto fail;
	rc = -ENOMEM;
	if (o->ncerts > 1 && !(c->sni = cio__calloc(o->ncerts - 1, sizeof *c->sni)))
		goto fail;
	for (size_t i = 0; i < o->ncerts; i++) {
		SSL_CTX *x = ctx_base(c, true, o->min_version, o->max_version);
		if (!x) {
			rc = ssl_err(err, errlen, "SSL_CTX_new", -ENOMEM);
			goto fail;
		}
		if (i == 0)
			c->ssl_ctx = x;
		else
			c->sni[c->nsni++] = x;
		if (o->no_tickets) {
			SSL_CTX_set_options(x, SSL_OP_NO_TICKET);
			SSL_CTX_set_num_tickets(x, 0);
		}
		if ((rc = load_cert(x, &o->certs[i], err, errlen)) < 0)
			goto fail;
	}
	if (c->nsni) {
		SSL_CTX_set_tlsext_servername_callback(c->ssl_ctx, sni_cb);
		SSL_CTX_set_tlsext_servername_arg(c->ssl_ctx, c);
	}
	*out = c;
	return 0;
fail:
	cio_tls_ctx_free(c);
	return rc;
}

int cio_tls_client_ctx(cio_tls_ctx **out, const cio_tls_client_opts *o, char *err,
		       size_t errlen)
{
	put_err(err, errlen, "%s", "");
	if (!out || !o) {
		put_err(err, errlen, "no options");
		return -EINVAL;
	}
	if (versions_ok(o->min_version, o->max_version, err, errlen) < 0)
		return -EINVAL;
	cio_tls_ctx *c = ctx_new(false, o->handshake_timeout);
	if (!c)
		return -ENOMEM;
	c->no_resumption = o->no_resumption;
	int rc;
	SSL_CTX *x = c->ssl_ctx = ctx_base(c, false, o->min_version, o->max_version);
	if (!x) {
		rc = ssl_err(err, errlen, "SSL_CTX_new", -ENOMEM);
		goto fail;
	}
	ERR_clear_error();
	if (o->alpn) {
		if ((rc = alpn_wire(c, o->alpn, err, errlen)) < 0)
			goto fail;
		if (SSL_CTX_set_alpn_protos(x, c->alpn, (unsigned)c->alpn_len) != 0) {
			rc = ssl_err(err, errlen, "ALPN", -ENOMEM);
			goto fail;
		}
	}
	if (o->ca_file) {
		if ((rc = file_ok("CA file", o->ca_file, err, errlen)) < 0)
			goto fail;
		if (SSL_CTX_load_verify_locations(x, o->ca_file, NULL) != 1) {
			rc = ssl_err(err, errlen, o->ca_file, -EINVAL);
			goto fail;
		}
	} else if (o->ca_pem) {
		BIO *b = BIO_new_mem_buf(o->ca_pem, -1);
		X509_STORE *st = SSL_CTX_get_cert_store(x);
		X509 *ca;
		int n = 0;
		while (b && (ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
			n += X509_STORE_add_cert(st, ca) == 1;
			X509_free(ca);
		}
		BIO_free(b);
		if (!n) {
			rc = ssl_err(err, errlen, "CA PEM", -EINVAL);
			goto fail;
		}
		ERR_clear_error();
	} else if (!o->insecure_no_verify) {
		SSL_CTX_set_default_verify_paths(x);
		ERR_clear_error(); /* a system without a store fails verification later */
	}
	SSL_CTX_set_verify(x, o->insecure_no_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
	if (o->client_cert && (rc = load_cert(x, o->client_cert, err, errlen)) < 0)
		goto fail;
	if (!c->no_resumption) {
		SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_CLIENT |
							  SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(x, new_session_cb);
	}
	*out = c;
	return 0;
fail:
	cio_tls_ctx_free(c);
	return rc;
}

void cio_tls_ctx_free(cio_tls_ctx *c)
{
	if (!c)
		return;
	for (size_t i = 0; cache && i < CACHE_N; i++)
		if (cache[i].sess && cache[i].ctx_id == c->id) {
			SSL_SESSION_free(cache[i].sess);
			cache[i].sess = NULL;
		}
	for (size_t i = 0; i < c->nsni; i++)
		SSL_CTX_free(c->sni[i]);
	free(c->sni);
	SSL_CTX_free(c->ssl_ctx);
	free(c->alpn);
	free(c);
}

/* --- handshakes --------------------------------------------------------- */

static int handshake(cio_stream *s, struct tls *t)
{
	int64_t tok = cio_timeout_push(t->ctx->hs_timeout);
	if (tok < 0)
		return (int)tok;
	int rc;
	for (;;) {
		ERR_clear_error();
		int r = SSL_do_handshake(t->ssl);
		int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
		int err = 0;
		if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			err = ssl_failure(s, t, e, true);
		/* Our flight, or the alert that tells the peer why not. */
		rc = flush_out(s, t, true);
		/* A peer that left before our flight went out is -EPIPE to
		 * the send, and as much "the peer left" (-ECONNRESET) as one
		 * that leaves while we wait for its flight. */
		if (rc == -EPIPE && !err) {
			rc = -ECONNRESET;
			snprintf(t->why, sizeof t->why, "connection closed during the TLS handshake");
			t->failed = rc;
		}
		if (err) {
			rc = err;
			break;
		}
		if (rc < 0 || e == SSL_ERROR_NONE)
			break;
		if (e == SSL_ERROR_WANT_READ && (rc = recv_more(s, t)) < 0)
			break;
	}
	if (rc == -ETIMEDOUT && cio_deadline_expired(tok))
		snprintf(t->why, sizeof t->why, "TLS handshake timed out");
	else if (rc < 0 && rc != t->failed)
		snprintf(t->why, sizeof t->why, "TLS handshake: %s", cio_strerror(rc));
	cio_deadline_pop(tok);
	return rc;
}

static bool ip_literal(const char *name)
{
	unsigned char a[16];
	return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

static int start(cio_stream *s, cio_tls_ctx *ctx, bool server, const char *name)
{
	if (!s)
		return -EINVAL;
	if (!ctx || ctx->server != server)
		return fail(s, -EINVAL, server ? "cio_stream_tls_accept needs a server ctx"
					      : "cio_stream_tls_connect needs a client ctx");
	if (s->ops != &cio__stream_plain)
		return fail(s, -EINVAL, "the stream is not a plain one");
	if (!server && !name && SSL_CTX_get_verify_mode(ctx->ssl_ctx) != SSL_VERIFY_NONE)
		return fail(s, -EINVAL, "no server name to verify the certificate against");
	if (name && strlen(name) >= sizeof ((struct tls *)0)->name)
		return fail(s, -EINVAL, "server name too long");
	int rc = cio_stream_flush(s);
	if (rc < 0)
		return rc;

	struct tls *t = cio__calloc(1, sizeof *t);
	if (!t)
		return fail(s, -ENOMEM, "no memory for a TLS session");
	cio_mutex_init(&t->send_lock);
	t->ctx = ctx;
	ERR_clear_error();
	pthread_once(&bio_once, bio_method_make);
	t->ssl = bio_method ? SSL_new(ctx->ssl_ctx) : NULL;
	BIO *bio = t->ssl ? BIO_new(bio_method) : NULL;
	if (!bio) {
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		return fail(s, -ENOMEM, "no memory for a TLS session");
	}
	BIO_set_data(bio, t);
	BIO_set_init(bio, 1);
	SSL_set_bio(t->ssl, bio, bio); /* one BIO both ways: the SSL owns it */
	SSL_set_app_data(t->ssl, t);
	/* From here the stream owns the session: a close frees it whatever
	 * the handshake's fate. */
	s->ops = &tls_ops;
	s->transport = t;

	/* Bytes the stream read ahead are the handshake's first.  More than
	 * a record's worth before a handshake is not TLS. */
	if (s->rtail > s->rhead) {
		size_t n = s->rtail - s->rhead;
		if (n > IN_CAP) {
			snprintf(t->why, sizeof t->why, "%zu bytes before the TLS handshake", n);
			t->failed = s->werr = -EPROTO;
			return fail(s, -EPROTO, t->why);
		}
		memcpy(t->in, s->rbuf + s->rhead, n);
		t->itail = n;
		s->rhead = s->rtail = 0;
	}
	if (server) {
		SSL_set_accept_state(t->ssl);
	} else {
		SSL_set_connect_state(t->ssl);
		if (name) {
			snprintf(t->name, sizeof t->name, "%s", name);
			if (ip_literal(name)) {
				X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name);
			} else {
				SSL_set_tlsext_host_name(t->ssl, name);
				SSL_set1_host(t->ssl, name);
			}
		}
		cio_addr peer;
		char addr[sizeof peer.u.un.sun_path + 8];
		peer.len = sizeof peer.u;
		if (!ctx->no_resumption && getpeername(s->fd, &peer.u.sa, &peer.len) == 0 &&
		    cio_addr_format(&peer, addr, sizeof addr) > 0) {
			snprintf(t->key, sizeof t->key, "%s|%s", name ? name : "", addr);
			struct cache_ent *e = cache_find(ctx->id, t->key);
			if (e) {
				e->used = ++cache_clock;
				SSL_set_session(t->ssl, e->sess);
				/* A TLS 1.3 ticket is for one use (RFC 8446,
				 * C.4): each connection brings new ones. */
				if (SSL_SESSION_get_protocol_version(e->sess) == TLS1_3_VERSION) {
					SSL_SESSION_free(e->sess);
					e->sess = NULL;
				}
			}
		}
		ERR_clear_error();
	}
	rc = handshake(s, t);
	if (rc < 0) {
		/* Sticky: writes fail with it, and close just frees. */
		t->failed = s->werr = rc;
		return fail(s, rc, t->why);
	}
	const unsigned char *p;
	unsigned len;
	SSL_get0_alpn_selected(t->ssl, &p, &len);
	if (len) {
		memcpy(t->alpn, p, len);
		t->alpn[len] = 0;
	}
	const char *sni = server ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
	if (sni)
		snprintf(t->name, sizeof t->name, "%s", sni);
	return 0;
}

int cio_stream_tls_accept(cio_stream *s, cio_tls_ctx *ctx)
{
	return start(s, ctx, true, NULL);
}

int cio_stream_tls_connect(cio_stream *s, cio_tls_ctx *ctx, const char *server_name)
{
	return start(s, ctx, false, server_name);
}

/* --- queries ------------------------------------------------------------ */

static struct tls *tls_of(const cio_stream *s)
{
	return s && s->ops == &tls_ops ? s->transport : NULL;
}

const char *cio_stream_tls_alpn(const cio_stream *s)
{
	struct tls *t = tls_of(s);
	return t && t->alpn[0] ? t->alpn : NULL;
}

const char *cio_stream_tls_version(const cio_stream *s)
{
	struct tls *t = tls_of(s);
	return t ? SSL_get_version(t->ssl) : NULL;
}

const char *cio_stream_tls_server_name(const cio_stream *s)
{
	struct tls *t = tls_of(s);
	return t && t->name[0] ? t->name : NULL;
}

bool cio_stream_tls_resumed(const cio_stream *s)
{
	struct tls *t = tls_of(s);
	return t && SSL_session_reused(t->ssl);
}

int cio_stream_tls_peer_subject(const cio_stream *s, char *buf, size_t cap)
{
	struct tls *t = tls_of(s);
	if (!t || !buf)
		return -EINVAL;
	X509 *x = SSL_get0_peer_certificate(t->ssl);
	if (!x)
		return -ENOENT;
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return -ENOMEM;
	X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
	char *p;
	long n = BIO_get_mem_data(b, &p);
	int rc = n >= 0 && (size_t)n < cap ? (int)n : -ENOSPC;
	if (rc >= 0) {
		memcpy(buf, p, (size_t)n);
		buf[n] = 0;
	}
	BIO_free(b);
	ERR_clear_error();
	return rc;
}

long cio_stream_tls_verify_result(const cio_stream *s)
{
	struct tls *t = tls_of(s);
	return t ? SSL_get_verify_result(t->ssl) : -1;
}
