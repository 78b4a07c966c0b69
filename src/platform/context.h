/* context.h - user-space context switch between task stacks. */
#ifndef CIO_PLATFORM_CONTEXT_H
#define CIO_PLATFORM_CONTEXT_H

#include <stddef.h>

/* Saves the callee-saved registers (and the FP control words) of the
 * running context on its own stack, stores that stack pointer in *save,
 * then resumes the context whose saved stack pointer is `to`. */
void cio__ctx_switch(void **save, void *to);

/* Prepares a fresh context on the stack [base, base + size), so that the
 * first switch to the returned pointer calls fn(arg).  The context's frame
 * takes the top of the stack.  fn must never return: it ends by switching
 * away. */
void *cio__ctx_make(void *base, size_t size, void (*fn)(void *), void *arg);

#endif
