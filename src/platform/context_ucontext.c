/* context_ucontext.c - portable context switch for CPUs without an
 * assembly switch.
 *
 * swapcontext() saves and restores the signal mask, a system call on every
 * switch (over 1 us on a VM).  So ucontext is used only to enter a new
 * context once; later switches use _setjmp/_longjmp, which stay in user
 * space.
 *
 * _longjmp() restores only the integer callee-saved registers (and, where
 * the ABI has them, the FP ones); the FP control modes (rounding, trap
 * enables) would leak from one context into the next.  The assembly
 * switches keep them per context, so this one does too, with
 * fegetmode()/fesetmode() (C2x; glibc 2.25, in libm).
 */
#undef _FORTIFY_SOURCE /* __longjmp_chk refuses jumps to another stack */
#include "context.h"

#include <fenv.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

/* A suspended context.  Lives in the frame of the cio__ctx_switch() call
 * that suspended it, or, for a context never run, at the top of its stack. */
struct uctx {
	jmp_buf jb;
	femode_t fpmode; /* FP control modes while suspended */
	int fresh;       /* not yet entered: start it with setcontext() */
	ucontext_t uc;
	void (*fn)(void *);
	void *arg;
};

static __thread struct uctx *starting;

static void trampoline(void)
{
	struct uctx *c = starting;
	/* setcontext() loaded the FP state that cio__ctx_make()'s caller had
	 * (getcontext() saved it).  A new context starts from the defaults
	 * instead, round-to-nearest and no traps, as with the assembly switch. */
	fesetmode(FE_DFL_MODE);
	c->fn(c->arg);
	abort(); /* fn never returns */
}

void *cio__ctx_make(void *base, size_t size, void (*fn)(void *), void *arg)
{
	uintptr_t top = (uintptr_t)base + size;
	struct uctx *c = (struct uctx *)(top & ~(uintptr_t)63) - 1;
	c->fresh = 1;
	c->fn = fn;
	c->arg = arg;
	getcontext(&c->uc);
	c->uc.uc_stack.ss_sp = base;
	c->uc.uc_stack.ss_size = (size_t)((uintptr_t)c - (uintptr_t)base) & ~(size_t)15;
	c->uc.uc_link = NULL;
	makecontext(&c->uc, trampoline, 0);
	return c;
}

void cio__ctx_switch(void **save, void *to)
{
	struct uctx self;
	struct uctx *t = to;
	self.fresh = 0;
	fegetmode(&self.fpmode);
	*save = &self;
	if (_setjmp(self.jb) == 0) {
		if (t->fresh) {
			t->fresh = 0;
			starting = t;
			setcontext(&t->uc);
		}
		_longjmp(t->jb, 1);
	}
	/* Resumed: back to this context's modes, whatever the last one set. */
	fesetmode(&self.fpmode);
}
