/* context.c - builds the first frame of a new context for the assembly
 * switch (switch_x86_64.S, switch_aarch64.S). */
#include "context.h"

#include <stdint.h>
#include <string.h>

void cio__ctx_entry(void);

#if defined(__x86_64__)

/* Layout of the frame cio__ctx_switch() pops; see switch_x86_64.S. */
struct frame {
	uint32_t mxcsr;
	uint16_t fpucw, pad;
	uint64_t r12, r13, r14, r15, rbx, rbp;
	uint64_t ret;
};
_Static_assert(sizeof(struct frame) == 0x40, "frame must match switch_x86_64.S");

void *cio__ctx_make(void *base, size_t size, void (*fn)(void *), void *arg)
{
	char *top = (char *)base + size;
	/* After the `ret` that pops f->ret, rsp = top: 16-byte aligned, so
	 * cio__ctx_entry can `call` with the alignment the ABI wants. */
	struct frame *f = (struct frame *)((uintptr_t)top & ~(uintptr_t)15) - 1;
	memset(f, 0, sizeof *f);
	f->mxcsr = 0x1f80;  /* all exceptions masked, round to nearest */
	f->fpucw = 0x037f;  /* x87 default: extended precision, all masked */
	f->r12 = (uint64_t)(uintptr_t)fn;
	f->r13 = (uint64_t)(uintptr_t)arg;
	f->ret = (uint64_t)(uintptr_t)cio__ctx_entry;
	return f;
}

#elif defined(__aarch64__)

/* Layout of the frame cio__ctx_switch() pops; see switch_aarch64.S. */
struct frame {
	uint64_t d[8];
	uint64_t x19, x20, x[8];
	uint64_t x29, x30;
	uint64_t fpcr, pad;
};
_Static_assert(sizeof(struct frame) == 0xb0, "frame must match switch_aarch64.S");

void *cio__ctx_make(void *base, size_t size, void (*fn)(void *), void *arg)
{
	char *top = (char *)base + size;
	struct frame *f = (struct frame *)((uintptr_t)top & ~(uintptr_t)15) - 1;
	memset(f, 0, sizeof *f);
	f->x19 = (uint64_t)(uintptr_t)fn;
	f->x20 = (uint64_t)(uintptr_t)arg;
	f->x30 = (uint64_t)(uintptr_t)cio__ctx_entry;
	return f;  /* fpcr 0: round to nearest, no traps, the AAPCS default */
}

#endif
