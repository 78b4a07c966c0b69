/* test_switch.c - what the context switch must preserve: callee-saved
 * integer and FP registers, and the FP control words (rounding mode), per
 * task; new tasks start in round-to-nearest.
 *
 * Each check runs two or more tasks that interleave through cio_yield(), so
 * that every value a task keeps across a yield has been through both kinds
 * of switch (task to task within a tick, and task to scheduler). */
#include "check.h"

#include <fenv.h>
#include <stdint.h>

/* Real calls, each with its own frame: the churn functions keep values in
 * callee-saved registers across calls, scribble() writes below its caller. */
#define NOINLINE __attribute__((noinline))

/* --- callee-saved integer registers ------------------------------------ */

/* Set while the churning tasks run; clear for the reference runs.  A
 * global, not an argument, so that no register holds the same flag in
 * every task. */
static int churn_yields;

static inline uint64_t mix(uint64_t x, uint64_t k)
{
	x ^= x >> 31;
	x *= k;
	return x ^ (x >> 29);
}

/* Eleven values live across the yields and the recursive call: more than
 * the callee-saved registers of either ABI (6 on x86-64, x19..x28 on
 * AArch64), so the compiler keeps as many as it fits in them, and each
 * differs between tasks (the multiplier k too, and the depth, as each task
 * starts at its own).  A switch that loses a register hands the task
 * another context's value, and the checksum changes. */
static NOINLINE uint64_t int_churn(uint64_t seed, uint64_t k, int depth)
{
	uint64_t a = mix(seed, k), b = mix(a, k), c = mix(b, k), d = mix(c, k);
	uint64_t e = mix(d, k), f = mix(e, k), g = mix(f, k), h = mix(g, k);
	uint64_t i = mix(h, k), j = mix(i, k);
	if (churn_yields)
		CHECK_EQ(cio_yield(), 0);
	uint64_t sub = depth ? int_churn(j ^ (uint64_t)depth, k, depth - 1) : 0;
	if (churn_yields)
		CHECK_EQ(cio_yield(), 0);
	return mix(sub + a, k) ^ (b * 3 + c * 5 + d * 7 + e * 11 + f * 13 +
				  g * 17 + h * 19 + i * 23 + j * 29 + k);
}

struct int_job {
	uint64_t seed, k;
	int depth;
	uint64_t got;
};

static void *int_task(void *arg)
{
	struct int_job *job = arg;
	job->got = int_churn(job->seed, job->k, job->depth);
	return NULL;
}

static void test_int_regs(void)
{
	struct int_job jobs[3] = {
		{.seed = 1, .k = 0x9e3779b97f4a7c15u, .depth = 20},
		{.seed = 0xdeadbeef, .k = 0xbf58476d1ce4e5b9u, .depth = 21},
		{.seed = 77, .k = 0x94d049bb133111ebu, .depth = 22},
	};
	cio_task_t t[3];
	churn_yields = 1;
	for (int n = 0; n < 3; n++)
		t[n] = cio_spawn(int_task, &jobs[n]);
	for (int n = 0; n < 3; n++)
		CHECK_EQ(cio_join(t[n], NULL), 0);
	churn_yields = 0;
	for (int n = 0; n < 3; n++)
		CHECK(jobs[n].got == int_churn(jobs[n].seed, jobs[n].k, jobs[n].depth));
}

/* --- callee-saved FP registers ----------------------------------------- */

/* As int_churn, with nine doubles: AArch64 keeps eight of them in d8..d15,
 * which the switch must save.  (On x86-64 no XMM register is callee-saved,
 * so they live on the stack across the call; the check still holds.) */
static NOINLINE double fp_churn(double x, double k, int depth)
{
	double a = x * k + 0.25, b = a * a - k, c = b / 3.0 + a;
	double d = c * 0.7 - b, e = d / (a * a + 2.0), f = e * e + c;
	double g = f - d * 0.125, h = g / 7.0 + e;
	if (churn_yields)
		CHECK_EQ(cio_yield(), 0);
	double sub = depth ? fp_churn(h / (1.0 + h * h), k, depth - 1) : 0.0;
	if (churn_yields)
		CHECK_EQ(cio_yield(), 0);
	return sub + a - b * 0.5 + c / 3.0 - d + e * 1.25 - f / 5.0 + g - h * k;
}

struct fp_job {
	double x, k;
	int depth;
	double got;
};

static void *fp_task(void *arg)
{
	struct fp_job *job = arg;
	job->got = fp_churn(job->x, job->k, job->depth);
	return NULL;
}

static void test_fp_regs(void)
{
	struct fp_job jobs[3] = {
		{.x = 0.3, .k = 1.5, .depth = 20},
		{.x = -1.7, .k = 0.75, .depth = 21},
		{.x = 2.9, .k = 1.25, .depth = 22},
	};
	cio_task_t t[3];
	churn_yields = 1;
	for (int n = 0; n < 3; n++)
		t[n] = cio_spawn(fp_task, &jobs[n]);
	for (int n = 0; n < 3; n++)
		CHECK_EQ(cio_join(t[n], NULL), 0);
	churn_yields = 0;
	/* Bit for bit: same operations, same rounding mode. */
	for (int n = 0; n < 3; n++)
		CHECK(jobs[n].got == fp_churn(jobs[n].x, jobs[n].k, jobs[n].depth));
}

/* --- FP control words -------------------------------------------------- */

/* The results of +-1/3 and +-1/5 tell the four rounding modes apart: the
 * directed modes differ on every inexact quotient, and nearest rounds one
 * of 1/3 and 1/5 toward zero and the other away from it in double, so it
 * matches no directed mode.  main() checks that they do differ.  double
 * goes through SSE (MXCSR) on x86-64, long double through the x87 unit
 * (its control word): both must follow the task. */
#if defined(__x86_64__) || defined(__i386__)
#define HAVE_X87 1
#endif

struct fp_sig {
	double d[4];
#ifdef HAVE_X87
	long double l[4];
#endif
};

static volatile double one = 1.0, three = 3.0, five = 5.0;
#ifdef HAVE_X87
static volatile long double lone = 1.0L, lthree = 3.0L, lfive = 5.0L;
#endif

/* Volatile operands, so that the divisions happen here and now, in the
 * current rounding mode, not at compile time. */
static NOINLINE void fp_sig_now(struct fp_sig *s)
{
	s->d[0] = one / three;
	s->d[1] = -one / three;
	s->d[2] = one / five;
	s->d[3] = -one / five;
#ifdef HAVE_X87
	s->l[0] = lone / lthree;
	s->l[1] = -lone / lthree;
	s->l[2] = lone / lfive;
	s->l[3] = -lone / lfive;
#endif
}

/* Whether the double results match (SSE on x86-64, FP/SIMD on AArch64). */
static int dbl_equal(const struct fp_sig *a, const struct fp_sig *b)
{
	for (int k = 0; k < 4; k++)
		if (a->d[k] != b->d[k])
			return 0;
	return 1;
}

/* Whether the long double results match (x87; none elsewhere). */
static int x87_equal(const struct fp_sig *a, const struct fp_sig *b)
{
#ifdef HAVE_X87
	for (int k = 0; k < 4; k++)
		if (a->l[k] != b->l[k])
			return 0;
#endif
	(void)a, (void)b;
	return 1;
}

static const int modes[] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
#define NMODES (int)(sizeof modes / sizeof modes[0])
static struct fp_sig ref[NMODES]; /* computed outside any runtime */

/* Checks that the running context is in modes[m], by fegetround() (x87
 * control word on x86-64) and by arithmetic (SSE and x87 separately, so a
 * message names the one that was lost). */
static void check_mode(int m)
{
	struct fp_sig s;
	fp_sig_now(&s);
	CHECK(dbl_equal(&s, &ref[m])); /* double: MXCSR on x86-64, FPCR on AArch64 */
	CHECK(x87_equal(&s, &ref[m])); /* long double: x87 control word */
	CHECK_EQ(fegetround(), modes[m]);
}

/* The control state as the assembly switch stores it: one 8-byte word,
 * MXCSR then the x87 control word on x86-64, FPCR on AArch64. */
static uint64_t raw_ctl(void)
{
#if defined(__x86_64__)
	uint32_t mxcsr;
	uint16_t cw;
	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	return mxcsr | (uint64_t)cw << 32;
#elif defined(__aarch64__)
	uint64_t fpcr;
	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	return fpcr;
#else
	return 0;
#endif
}
static uint64_t raw[NMODES]; /* raw_ctl() in each mode */

/* Fills the stack just below the caller with another mode's control word.
 * A switch that failed to save the control word would then restore that
 * mode, and check_mode() says so, rather than the test passing on whatever
 * stale word the stack happened to hold there (or crashing on garbage). */
static NOINLINE void scribble(uint64_t word)
{
	uint64_t pad[512];
	for (int k = 0; k < 512; k++)
		pad[k] = word;
	__asm__ volatile("" : : "r"(pad) : "memory"); /* keep the stores */
}

static void *mode_task(void *arg)
{
	int m = (int)(intptr_t)arg;
	check_mode(0); /* a new task starts in round-to-nearest... */
	CHECK_EQ(fesetround(modes[m]), 0);
	for (int k = 0; k < 5; k++) {
		scribble(raw[(m + 1) % NMODES]);
		CHECK_EQ(cio_yield(), 0); /* ...and the others change theirs */
		check_mode(m);
	}
	/* Sleep: a switch through the scheduler after a wait in the driver. */
	scribble(raw[(m + 1) % NMODES]);
	CHECK_EQ(cio_sleep(1000000), 0);
	check_mode(m);
	return NULL;
}

static void *nearest_task(void *arg)
{
	(void)arg;
	check_mode(0);
	CHECK_EQ(cio_yield(), 0);
	check_mode(0);
	return NULL;
}

static void test_fp_modes(void)
{
	check_mode(0);
	cio_task_t t[NMODES];
	for (int m = 0; m < NMODES; m++)
		t[m] = cio_spawn(mode_task, (void *)(intptr_t)m);
	for (int m = 0; m < NMODES; m++)
		CHECK_EQ(cio_join(t[m], NULL), 0);
	check_mode(0); /* the joiner's own mode is untouched */

	/* A task spawned by a task in another mode still starts in nearest,
	 * and the spawner keeps its mode. */
	CHECK_EQ(fesetround(FE_UPWARD), 0);
	cio_task_t n = cio_spawn(nearest_task, NULL);
	CHECK_EQ(cio_yield(), 0);
	check_mode(1);
	CHECK_EQ(cio_join(n, NULL), 0);
	check_mode(1);
	CHECK_EQ(fesetround(FE_TONEAREST), 0);
}

static void *test_main(void *arg)
{
	(void)arg;
	TEST_CASE(int_regs, test_int_regs());
	TEST_CASE(fp_regs, test_fp_regs());
	TEST_CASE(fp_modes, test_fp_modes());
	return NULL;
}

static void *set_downward(void *arg)
{
	(void)arg;
	check_mode(0);
	CHECK_EQ(fesetround(FE_DOWNWARD), 0);
	CHECK_EQ(cio_yield(), 0);
	check_mode(2);
	return NULL;
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	for (int m = 0; m < NMODES; m++) {
		CHECK_EQ(fesetround(modes[m]), 0);
		fp_sig_now(&ref[m]);
		raw[m] = raw_ctl();
	}
	CHECK_EQ(fesetround(FE_TONEAREST), 0);
	/* Otherwise the test could not tell the modes apart. */
	for (int m = 0; m < NMODES; m++) {
		for (int k = m + 1; k < NMODES; k++) {
			CHECK(!dbl_equal(&ref[m], &ref[k]));
#ifdef HAVE_X87
			CHECK(!x87_equal(&ref[m], &ref[k]));
#endif
		}
	}

	int rc = test_run(test_main, NULL);
	if (rc != 0)
		return rc;
	check_mode(0); /* the thread's own mode, back after the runtime */

	/* The thread that calls cio_run() gets its own mode back, whatever
	 * its tasks did. */
	TEST_CASE(caller_mode_back, {
		CHECK_EQ(fesetround(FE_TOWARDZERO), 0);
		CHECK_EQ(cio_run(set_downward, NULL), 0);
		check_mode(3);
		CHECK_EQ(fesetround(FE_TONEAREST), 0);
	});
	return test_cases_end();
}
