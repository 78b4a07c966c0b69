/* overflow.h - reports which task overflowed its stack. */
#ifndef CIO_CORE_OVERFLOW_H
#define CIO_CORE_OVERFLOW_H

struct cio__rt;

/* Gives the calling thread a signal stack and (once per process) installs
 * the SIGSEGV/SIGBUS handler.  Failure only loses the report. */
void cio__overflow_attach(struct cio__rt *rt);

/* Restores the thread's previous signal stack. */
void cio__overflow_detach(struct cio__rt *rt);

#endif
