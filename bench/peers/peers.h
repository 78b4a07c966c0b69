/* peers.h - the C face of the peer implementations the core benchmarks
 * compare coreio with, measured in the same process and run. */
#ifndef COREIO_BENCH_PEERS_H
#define COREIO_BENCH_PEERS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Boost.Context (boost_fcontext.cpp).  Each returns the nanoseconds the
 * measured loop took, set-up excluded.
 *
 * n switches (n even) between the caller and one other context, each
 * jump_fcontext() counted as one switch. */
int64_t peer_boost_switch_ns(long n);

/* The same, but each side jumps from inside a function that then returns
 * to its caller, as any yield() does.  A stack switch leaves the CPU's
 * return-stack predictor holding the other stack's return addresses, so
 * that return is mispredicted; the bare ping-pong never returns and never
 * pays it. */
int64_t peer_boost_switch_call_ns(long n);

/* n times: make_fcontext() on a stack reused from the previous round,
 * jump into it, and the context jumps straight back and is dropped.  The
 * floor of any "start a coroutine on a pooled stack, run it, end it". */
int64_t peer_boost_spawn_ns(long n);

#ifdef __cplusplus
}
#endif
#endif
