/* switch_aarch64.S - context switch for AArch64 (AAPCS64).
 *
 * Frame saved on the stack being left (low to high address):
 *   0x00  d8..d15   (low 64 bits of v8..v15 are callee-saved)
 *   0x40  x19..x28
 *   0x90  x29 (frame pointer), x30 (link register: where to resume)
 *   0xa0  FPCR (rounding mode and trap enables), pad
 * FPSR holds only sticky status flags, which the ABI does not preserve.
 *
 * Built for ELF (Linux, the BSDs) and for Mach-O (Apple's arm64 ABI):
 * see SYM and the __APPLE__ branches below.  Apple reserves x18 as the
 * platform register; this code never touches it (nor needs it: x18 is
 * not callee-saved in AAPCS64 either).
 */

/* Mach-O prefixes C symbols with an underscore and knows neither .type
 * nor .size; .private_extern is its .hidden. */
#if defined(__APPLE__)
#define SYM(name) _##name
#else
#define SYM(name) name
#endif
	.text
	.globl	SYM(cio__ctx_switch)
#if defined(__APPLE__)
	.private_extern	SYM(cio__ctx_switch)
#else
	.hidden	cio__ctx_switch
	.type	cio__ctx_switch, %function
#endif
	.p2align 4
/* void cio__ctx_switch(void **save [x0], void *to [x1]) */
SYM(cio__ctx_switch):
	.cfi_startproc
	sub	sp, sp, #0xb0
	.cfi_adjust_cfa_offset 0xb0	/* as on x86-64: unwinding from in here works */
	stp	d8, d9, [sp, #0x00]
	stp	d10, d11, [sp, #0x10]
	stp	d12, d13, [sp, #0x20]
	stp	d14, d15, [sp, #0x30]
	stp	x19, x20, [sp, #0x40]
	stp	x21, x22, [sp, #0x50]
	stp	x23, x24, [sp, #0x60]
	stp	x25, x26, [sp, #0x70]
	stp	x27, x28, [sp, #0x80]
	stp	x29, x30, [sp, #0x90]
	mrs	x9, fpcr
	str	x9, [sp, #0xa0]
	mov	x9, sp
	str	x9, [x0]

	mov	sp, x1
	ldp	d8, d9, [sp, #0x00]
	ldp	d10, d11, [sp, #0x10]
	ldp	d12, d13, [sp, #0x20]
	ldp	d14, d15, [sp, #0x30]
	ldp	x19, x20, [sp, #0x40]
	ldp	x21, x22, [sp, #0x50]
	ldp	x23, x24, [sp, #0x60]
	ldp	x25, x26, [sp, #0x70]
	ldp	x27, x28, [sp, #0x80]
	ldp	x29, x30, [sp, #0x90]
	ldr	x9, [sp, #0xa0]
	msr	fpcr, x9
	add	sp, sp, #0xb0
	.cfi_adjust_cfa_offset -0xb0
	ret
	.cfi_endproc
#if !defined(__APPLE__)
	.size	cio__ctx_switch, .-cio__ctx_switch
#endif

/* First code a new context runs: fn in x19, arg in x20 (see ctx_make). */
	.globl	SYM(cio__ctx_entry)
#if defined(__APPLE__)
	.private_extern	SYM(cio__ctx_entry)
#else
	.hidden	cio__ctx_entry
	.type	cio__ctx_entry, %function
#endif
	.p2align 4
SYM(cio__ctx_entry):
	.cfi_startproc
	.cfi_undefined x30
	mov	x0, x20
	blr	x19
	brk	#0		/* fn never returns */
	.cfi_endproc
#if !defined(__APPLE__)
	.size	cio__ctx_entry, .-cio__ctx_entry
#endif

/* ELF only: this code needs no executable stack. */
#if !defined(__APPLE__)
	.section .note.GNU-stack, "", %progbits
#endif
