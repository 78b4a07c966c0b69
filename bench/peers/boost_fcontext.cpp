// boost_fcontext.cpp - Boost.Context peers for the core benchmarks:
// jump_fcontext ping-pong, and make_fcontext + enter + leave on a reused
// stack.  C++ only because the fcontext declarations are; the timing loop
// mirrors the C ones (same clock, set-up outside the timed part).
#include "peers.h"

#include <boost/context/detail/fcontext.hpp>

#include <cstdlib>
#include <ctime>

namespace ctx = boost::context::detail;

namespace {

int64_t now_ns()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Same size as coreio's default task stack; only the top is touched.
constexpr std::size_t STACK = 256 * 1024;

void *stack_top()
{
	// One stack for the whole process, as a pool would hand back.
	static void *mem = std::aligned_alloc(64, STACK);
	if (!mem)
		std::abort();
	return static_cast<char *>(mem) + STACK;
}

// The other side of the ping-pong: bounces every jump straight back.
[[noreturn]] void pong(ctx::transfer_t t)
{
	for (;;)
		t = ctx::jump_fcontext(t.fctx, nullptr);
}

// A yield(): the jump, then a return to the caller.  noinline keeps the
// return, as a call into a library would.
[[gnu::noinline]] ctx::fcontext_t yield_to(ctx::fcontext_t to)
{
	ctx::fcontext_t from = ctx::jump_fcontext(to, nullptr).fctx;
	asm volatile("" ::: "memory"); // no tail call: the return must stay
	return from;
}

[[noreturn]] void pong_call(ctx::transfer_t t)
{
	ctx::fcontext_t c = t.fctx;
	for (;;)
		c = yield_to(c);
}

// An empty coroutine: returns to its creator at once, never resumed.
[[noreturn]] void empty(ctx::transfer_t t)
{
	ctx::jump_fcontext(t.fctx, nullptr);
	std::abort();
}

} // namespace

extern "C" int64_t peer_boost_switch_ns(long n)
{
	ctx::fcontext_t c = ctx::make_fcontext(stack_top(), STACK, pong);
	ctx::transfer_t t = ctx::jump_fcontext(c, nullptr); // first entry, untimed
	long rounds = n / 2;
	int64_t t0 = now_ns();
	for (long i = 0; i < rounds; i++)
		t = ctx::jump_fcontext(t.fctx, nullptr); // there and back: 2 switches
	int64_t t1 = now_ns();
	// pong stays suspended on the static stack: the next call remakes it.
	return t1 - t0;
}

extern "C" int64_t peer_boost_switch_call_ns(long n)
{
	ctx::fcontext_t c = ctx::make_fcontext(stack_top(), STACK, pong_call);
	c = ctx::jump_fcontext(c, nullptr).fctx;
	long rounds = n / 2;
	int64_t t0 = now_ns();
	for (long i = 0; i < rounds; i++)
		c = yield_to(c);
	return now_ns() - t0;
}

extern "C" int64_t peer_boost_spawn_ns(long n)
{
	void *top = stack_top();
	int64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		ctx::fcontext_t c = ctx::make_fcontext(top, STACK, empty);
		ctx::jump_fcontext(c, nullptr);
	}
	return now_ns() - t0;
}
