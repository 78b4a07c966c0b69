/* tls_fixture.c - fuzz_tls's contexts on the fixed PKI (tls_pki.h) and
 * its repeatable randomness: a RAND_METHOD (deprecated in OpenSSL 3, and
 * still what RAND_bytes_ex and RAND_priv_bytes_ex consult first) that
 * answers a bound task from a splitmix64 sequence. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "tls_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "tls_pki.h"

static struct slot {
	cio_task_t task;
	uint64_t state;
} slots[2] = {{-1, 0}, {-1, 0}};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int det_bytes(unsigned char *buf, int num)
{
	cio_task_t self = cio_self();
	for (int i = 0; i < 2; i++) {
		if (slots[i].task != self || self < 0)
			continue;
		for (int k = 0; k < num; k += 8) {
			uint64_t v = splitmix(&slots[i].state);
			memcpy(buf + k, &v, num - k < 8 ? (size_t)(num - k) : 8);
		}
		return 1;
	}
	return RAND_OpenSSL()->bytes(buf, num);
}

static int det_seed(const void *buf, int num)
{
	(void)buf;
	(void)num;
	return 1;
}

static int det_add(const void *buf, int num, double entropy)
{
	(void)buf;
	(void)num;
	(void)entropy;
	return 1;
}

static int det_status(void)
{
	return 1;
}

static const RAND_METHOD det_method = {
	.seed = det_seed,
	.bytes = det_bytes,
	.add = det_add,
	.pseudorand = det_bytes,
	.status = det_status,
};

void fx_rand_bind(cio_task_t task, uint64_t seed)
{
	static bool installed;
	if (!installed) {
		/* Every context first: making one draws random bytes, which
		 * would shift a bound task's sequence. */
		for (int v = 0; v < 4; v++) {
			fx_server_ctx(v);
			fx_client_ctx(v);
		}
		if (!RAND_set_rand_method(&det_method)) {
			fprintf(stderr, "tls_fixture: RAND_set_rand_method failed\n");
			abort();
		}
		installed = true;
	}
	for (int i = 0; i < 2; i++)
		if (slots[i].task < 0 || slots[i].task == task) {
			slots[i].task = task;
			slots[i].state = seed;
			return;
		}
	fprintf(stderr, "tls_fixture: more than two tasks bound\n");
	abort();
}

void fx_rand_unbind(cio_task_t task)
{
	for (int i = 0; i < 2; i++)
		if (slots[i].task == task)
			slots[i].task = -1;
}

static const int vmin[4] = {0, CIO_TLS1_2, CIO_TLS1_3, 0};
static const int vmax[4] = {0, CIO_TLS1_2, CIO_TLS1_3, 0};

static void ctx_check(int rc, const char *err)
{
	if (rc != 0) {
		fprintf(stderr, "tls_fixture: ctx: %d %s\n", rc, err);
		abort();
	}
}

cio_tls_ctx *fx_server_ctx(int vers)
{
	static cio_tls_ctx *ctx[4];
	if (!ctx[vers & 3]) {
		static const cio_tls_cert certs[] = {
			{.cert_pem = pki_local_crt, .key_pem = pki_local_key},
			{.cert_pem = pki_other_crt, .key_pem = pki_other_key},
		};
		char err[256] = "";
		ctx_check(cio_tls_server_ctx(&ctx[vers & 3],
					     &(cio_tls_server_opts){.certs = certs,
								    .ncerts = 2,
								    .alpn = "h2,http/1.1",
								    .handshake_timeout = 2 * CIO_SEC,
								    .min_version = vmin[vers & 3],
								    .max_version = vmax[vers & 3]},
					     err, sizeof err),
			  err);
	}
	return ctx[vers & 3];
}

cio_tls_ctx *fx_client_ctx(int vers)
{
	static cio_tls_ctx *ctx[4];
	if (!ctx[vers & 3]) {
		char err[256] = "";
		ctx_check(cio_tls_client_ctx(&ctx[vers & 3],
					     &(cio_tls_client_opts){.ca_pem = pki_ca,
								    .alpn = "http/1.1",
								    .no_resumption = true,
								    .handshake_timeout = 2 * CIO_SEC,
								    .min_version = vmin[vers & 3],
								    .max_version = vmax[vers & 3]},
					     err, sizeof err),
			  err);
	}
	return ctx[vers & 3];
}
