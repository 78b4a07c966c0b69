/* context_ucontext.c - portable context switch for CPUs without an
 * assembly switch.
 *
 * swapcontext() saves and restores the signal mask, a system call on every
 * switch (over 1 us on a VM).  So ucontext is used only to enter a new
 * context once; later switches use _setjmp/_longjmp, which stay in user
 * space.
 */
#undef _FORTIFY_SOURCE /* __longjmp_chk refuses jumps to another stack */
#define _GNU_SOURCE
#include "context.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

/* A suspended context.  Lives in the frame of the cio__ctx_switch() call
 * that suspended it, or, for a context never run, at the top of its stack. */
struct uctx {
	jmp_buf jb;
	int fresh; /* not yet entered: start it with setcontext() */
	ucontext_t uc;
	void (*fn)(void *);
	void *arg;
};

static __thread struct uctx *starting;

static void trampoline(void)
{
	struct uctx *c = starting;
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
	*save = &self;
	if (_setjmp(self.jb) == 0) {
		if (t->fresh) {
			t->fresh = 0;
			starting = t;
			setcontext(&t->uc);
		}
		_longjmp(t->jb, 1);
	}
}
