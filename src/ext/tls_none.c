/* tls_none.c - the TLS calls of a library built without OpenSSL: the
 * handshakes and ctx makers say -ENOTSUP, the queries "not TLS". */
#include "stream.h"

#include <errno.h>
#include <stdio.h>

int cio_tls_server_ctx(cio_tls_ctx **out, const cio_tls_server_opts *o, char *err,
		       size_t errlen)
{
	if (err && errlen)
		snprintf(err, errlen, "coreio was built without OpenSSL");
	return -ENOTSUP;
}

int cio_tls_client_ctx(cio_tls_ctx **out, const cio_tls_client_opts *o, char *err,
		       size_t errlen)
{
	return cio_tls_server_ctx(NULL, NULL, err, errlen);
}

void cio_tls_ctx_free(cio_tls_ctx *ctx) {}

int cio_stream_tls_accept(cio_stream *s, cio_tls_ctx *ctx)
{
	return -ENOTSUP;
}

int cio_stream_tls_connect(cio_stream *s, cio_tls_ctx *ctx, const char *server_name)
{
	return -ENOTSUP;
}

const char *cio_stream_tls_alpn(const cio_stream *s) { return NULL; }
const char *cio_stream_tls_version(const cio_stream *s) { return NULL; }
const char *cio_stream_tls_server_name(const cio_stream *s) { return NULL; }
bool cio_stream_tls_resumed(const cio_stream *s) { return false; }
int cio_stream_tls_peer_subject(const cio_stream *s, char *buf, size_t cap) { return -EINVAL; }
long cio_stream_tls_verify_result(const cio_stream *s) { return -1; }
