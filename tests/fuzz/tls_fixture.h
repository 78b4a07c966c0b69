/* tls_fixture.h - what fuzz_tls and its seed recorder (fuzz_tls_seeds)
 * share: the fixed PKI's contexts, the input's mode byte, and OpenSSL
 * randomness made repeatable per task, so that a recorded session
 * replays: the fuzzed endpoint draws the same random bytes (client
 * random, key share, signature nonce) as the recorder's did, derives the
 * same keys, and so decrypts the recorded peer's later records too. */
#ifndef COREIO_TLS_FIXTURE_H
#define COREIO_TLS_FIXTURE_H

#include <coreio.h>
#include <stdbool.h>
#include <stdint.h>

/* The input's first byte. */
#define MODE_CLIENT 0x01   /* coreio is the client; else the server */
#define MODE_VERS(m) (((m) >> 1) & 3) /* 1: TLS 1.2 only, 2: 1.3 only, else both */
#define MODE_PEEK 0x08     /* server: the stream reads ahead before the handshake */
#define MODE_ABRUPT 0x10   /* the peer shuts both ways after its bytes, reads nothing */

/* Random bytes drawn by task `task` come from a fixed sequence started
 * from seed, until fx_rand_unbind(); other tasks' from OpenSSL.  Two
 * tasks at most.  Installs the RAND method on first use. */
void fx_rand_bind(cio_task_t task, uint64_t seed);
void fx_rand_unbind(cio_task_t task);

/* The sequences each role draws from, in the recorder and the fuzzer. */
#define FX_SEED_SERVER 0x5e5e
#define FX_SEED_CLIENT 0xc1c1

/* The contexts for version choice vers (MODE_VERS()), made once, never
 * freed.  The server serves localhost (first) and other.test, with ALPN
 * h2 and http/1.1; the client trusts the CA, offers http/1.1, never
 * resumes, and connects as FX_NAME. */
cio_tls_ctx *fx_server_ctx(int vers);
cio_tls_ctx *fx_client_ctx(int vers);
#define FX_NAME "localhost"

#endif
