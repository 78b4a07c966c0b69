/* switch.c - nanoseconds per context switch: coreio against Boost.Context
 * and ucontext, measured in the same process, repeats interleaved.
 *
 *   coreio      two tasks calling cio_yield() in turn; each yield counts
 *               as one switch, whatever the scheduler does inside it (the
 *               number a user of cio_yield() sees).
 *   coreio-ctx  coreio's bare switch primitive (cio__ctx_switch) in a
 *               ping-pong, without the scheduler: tells how much of the
 *               first line is the switch itself and how much scheduling.
 *   boost       jump_fcontext() ping-pong; each jump is one switch.
 *   boost-call  the same, each jump made inside a function that returns
 *               to its caller, as a yield() is: shows the return the
 *               CPU mispredicts after every stack switch, which the bare
 *               ping-pong never executes (see peers/peers.h).
 *   ucontext    swapcontext() ping-pong; each call is one switch.
 *
 * Usage: switch [switches [repeats]]; defaults 4,000,000 and 11: short
 * rounds and many of them, so that a slow phase of the VM spoils few.
 * ucontext runs 1/50 of the switches: each costs a system call. */
#include "bench.h"
#include "peers/peers.h"

#include <coreio.h>
/* Private, but linked statically from coreio_static: the bench reaches the
 * primitive to separate its cost from the scheduler's. */
#include "../src/platform/context.h"

#include <ucontext.h>

#define STACK_BYTES (256 * 1024)

/* --- coreio: two tasks yielding to each other ------------------------ */

struct yield_round {
	long iters;          /* yields per task */
	int started, finished;
	int64_t t0, t1;
	uint64_t sw0, sw1;   /* runtime switch counter at t0, t1 */
	const char *backend;
};

static void *yielder(void *arg)
{
	struct yield_round *r = arg;
	if (r->started++ == 0) {
		cio_stats st;
		cio_stats_get(&st);
		r->sw0 = st.switches;
		r->t0 = bench_now_ns();
	}
	for (long i = 0; i < r->iters; i++)
		cio_yield();
	if (++r->finished == 2) {
		r->t1 = bench_now_ns();
		cio_stats st;
		cio_stats_get(&st);
		r->sw1 = st.switches;
	}
	return NULL;
}

static void *yield_main(void *arg)
{
	struct yield_round *r = arg;
	r->backend = cio_backend_name();
	cio_task_t a = cio_spawn(yielder, r), b = cio_spawn(yielder, r);
	if (a < 0 || b < 0 || cio_join(a, NULL) < 0 || cio_join(b, NULL) < 0) {
		fprintf(stderr, "switch: spawn/join failed\n");
		exit(1);
	}
	return NULL;
}

static const char *coreio_backend = "?";
static double coreio_switches_per_yield;

static double run_coreio(long n)
{
	struct yield_round r = {.iters = n / 2};
	int rc = cio_run(yield_main, &r);
	if (rc < 0) {
		fprintf(stderr, "switch: cio_run: %s\n", cio_strerror(rc));
		exit(1);
	}
	coreio_backend = r.backend;
	coreio_switches_per_yield = (double)(r.sw1 - r.sw0) / (double)(2 * r.iters);
	return (double)(r.t1 - r.t0) / (double)(2 * r.iters);
}

/* --- coreio-ctx: the bare switch -------------------------------------- */

static void *raw_main_sp, *raw_peer_sp;

static void raw_pong(void *arg)
{
	for (;;)
		cio__ctx_switch(&raw_peer_sp, raw_main_sp);
}

static double run_coreio_ctx(long n)
{
	static char *stack;
	if (!stack && !(stack = aligned_alloc(64, STACK_BYTES)))
		exit(1);
	raw_peer_sp = cio__ctx_make(stack, STACK_BYTES, raw_pong, NULL);
	cio__ctx_switch(&raw_main_sp, raw_peer_sp); /* first entry, untimed */
	long rounds = n / 2;
	int64_t t0 = bench_now_ns();
	for (long i = 0; i < rounds; i++)
		cio__ctx_switch(&raw_main_sp, raw_peer_sp);
	int64_t t1 = bench_now_ns();
	return (double)(t1 - t0) / (double)(2 * rounds);
}

/* --- Boost.Context ------------------------------------------------------ */

static double run_boost(long n)
{
	long rounds = n / 2;
	return (double)peer_boost_switch_ns(2 * rounds) / (double)(2 * rounds);
}

static double run_boost_call(long n)
{
	long rounds = n / 2;
	return (double)peer_boost_switch_call_ns(2 * rounds) / (double)(2 * rounds);
}

/* --- ucontext ------------------------------------------------------------ */

static ucontext_t uc_main, uc_peer;

static void uc_pong(void)
{
	for (;;)
		swapcontext(&uc_peer, &uc_main);
}

static double run_ucontext(long n)
{
	static char *stack;
	if (!stack && !(stack = aligned_alloc(64, STACK_BYTES)))
		exit(1);
	getcontext(&uc_peer);
	uc_peer.uc_stack.ss_sp = stack;
	uc_peer.uc_stack.ss_size = STACK_BYTES;
	uc_peer.uc_link = NULL;
	makecontext(&uc_peer, uc_pong, 0);
	swapcontext(&uc_main, &uc_peer); /* first entry, untimed */
	long rounds = n / 2;
	int64_t t0 = bench_now_ns();
	for (long i = 0; i < rounds; i++)
		swapcontext(&uc_main, &uc_peer);
	int64_t t1 = bench_now_ns();
	return (double)(t1 - t0) / (double)(2 * rounds);
}

/* --- driver --------------------------------------------------------------- */

enum { COREIO, COREIO_CTX, BOOST, BOOST_CALL, UCONTEXT, NIMPL };
static const char *const names[NIMPL] = {"coreio", "coreio-ctx", "boost", "boost-call",
					 "ucontext"};

static double run_one(int impl, long n)
{
	switch (impl) {
	case COREIO: return run_coreio(n);
	case COREIO_CTX: return run_coreio_ctx(n);
	case BOOST: return run_boost(n);
	case BOOST_CALL: return run_boost_call(n);
	default: return run_ucontext(n / 50);
	}
}

int main(int argc, char **argv)
{
	long n = bench_arg(argc, argv, 1, 4000000);
	int repeats = (int)bench_arg(argc, argv, 2, 11);
	if (n < 100 || repeats > BENCH_MAX_REPEATS) {
		fprintf(stderr, "usage: %s [switches >= 100 [repeats <= %d]]\n",
			argv[0], BENCH_MAX_REPEATS);
		return 2;
	}
	bench_init();

	/* One untimed round of each: page in stacks, warm caches and the
	 * branch predictors before anything counts. */
	for (int i = 0; i < NIMPL; i++)
		run_one(i, n / 10);

	/* Interleaved, and the order rotated each repeat, so that a slow phase
	 * of the machine is shared out instead of landing on one peer. */
	double v[NIMPL][BENCH_MAX_REPEATS], spy[BENCH_MAX_REPEATS];
	for (int r = 0; r < repeats; r++) {
		for (int k = 0; k < NIMPL; k++) {
			int impl = (r + k) % NIMPL;
			v[impl][r] = run_one(impl, n);
			if (impl == COREIO)
				spy[r] = coreio_switches_per_yield;
		}
	}

	char extra[160];
	for (int i = 0; i < NIMPL; i++) {
		long ni = i == UCONTEXT ? n / 50 : n;
		if (i == COREIO)
			snprintf(extra, sizeof extra,
				 "n=%ld backend=%s ctx_switches_per_yield=%.2f",
				 ni, coreio_backend, bench_summarise(spy, repeats).median);
		else
			snprintf(extra, sizeof extra, "n=%ld", ni);
		bench_report("switch", names[i], "switch", "ns", v[i], repeats, extra);
	}
	bench_ratio("switch", "coreio", "boost", v[COREIO], v[BOOST], repeats);
	bench_ratio("switch", "coreio", "boost-call", v[COREIO], v[BOOST_CALL], repeats);
	bench_ratio("switch", "coreio", "ucontext", v[COREIO], v[UCONTEXT], repeats);
	bench_ratio("switch", "coreio-ctx", "boost", v[COREIO_CTX], v[BOOST], repeats);
	return 0;
}
