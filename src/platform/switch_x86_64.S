/* switch_x86_64.S - context switch for x86-64 System V.
 *
 * Frame saved on the stack being left (low to high address):
 *   0x00  MXCSR (4 bytes)  x87 control word (2 bytes)  pad
 *   0x08  r12  0x10 r13  0x18 r14  0x20 r15  0x28 rbx  0x30 rbp
 *   0x38  return address
 * These are exactly what the ABI makes callee-saved: the caller of
 * cio__ctx_switch() expects every other register to be clobbered anyway.
 * The status bits of MXCSR and the x87 status word are caller-saved and
 * left alone; the control bits (rounding, exception masks) are callee-saved.
 *
 * Built for ELF (Linux, the BSDs) and for Mach-O (macOS): see SYM and
 * the __APPLE__ branches below.  The register use is the same on both.
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
	.type	cio__ctx_switch, @function
#endif
	.p2align 4
/* void cio__ctx_switch(void **save [rdi], void *to [rsi]) */
SYM(cio__ctx_switch):
	.cfi_startproc
	leaq	-0x38(%rsp), %rsp
	.cfi_adjust_cfa_offset 0x38
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%r12, 0x08(%rsp)
	movq	%r13, 0x10(%rsp)
	movq	%r14, 0x18(%rsp)
	movq	%r15, 0x20(%rsp)
	movq	%rbx, 0x28(%rsp)
	movq	%rbp, 0x30(%rsp)
	movq	%rsp, (%rdi)

	movq	%rsp, %rax
	movq	%rsi, %rsp
	/* Resume with a jmp, not a ret: after a change of stacks a ret
	 * always misses the CPU's return-stack predictor. */
	movq	0x38(%rsp), %r8
	/* Reload the control words only when they differ: ldmxcsr costs
	 * tens of ns when a later instruction reads MXCSR.  Bits 0-5 of
	 * MXCSR are sticky status flags, caller-saved, so they don't count. */
	movl	(%rax), %ecx
	xorl	(%rsp), %ecx
	testl	$0xffc0, %ecx
	jnz	2f
	movzwl	4(%rax), %ecx
	cmpw	4(%rsp), %cx
	jne	2f
1:	movq	0x08(%rsp), %r12
	movq	0x10(%rsp), %r13
	movq	0x18(%rsp), %r14
	movq	0x20(%rsp), %r15
	movq	0x28(%rsp), %rbx
	movq	0x30(%rsp), %rbp
	leaq	0x40(%rsp), %rsp
	.cfi_remember_state
	.cfi_adjust_cfa_offset -0x40
	jmp	*%r8
	.cfi_restore_state
2:	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	jmp	1b
	.cfi_endproc
#if !defined(__APPLE__)
	.size	cio__ctx_switch, .-cio__ctx_switch
#endif

/* First code a new context runs: cio__ctx_make() put fn in r12 and arg in
 * r13, and left rsp 16-byte aligned, as a call requires. */
	.globl	SYM(cio__ctx_entry)
#if defined(__APPLE__)
	.private_extern	SYM(cio__ctx_entry)
#else
	.hidden	cio__ctx_entry
	.type	cio__ctx_entry, @function
#endif
	.p2align 4
SYM(cio__ctx_entry):
	.cfi_startproc
	.cfi_undefined rip	/* the outermost frame: debuggers stop here */
	movq	%r13, %rdi
	callq	*%r12
	ud2			/* fn never returns */
	.cfi_endproc
#if !defined(__APPLE__)
	.size	cio__ctx_entry, .-cio__ctx_entry
#endif

/* ELF only: this code needs no executable stack. */
#if !defined(__APPLE__)
	.section .note.GNU-stack, "", @progbits
#endif
