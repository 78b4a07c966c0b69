/* stack.h - task stacks: guarded, pooled per runtime. */
#ifndef CIO_PLATFORM_STACK_H
#define CIO_PLATFORM_STACK_H

#include <stdbool.h>
#include <stddef.h>

/* The pool keeps its link to an idle stack in the stack's top bytes:
 * users keep out of the last CIO__STACK_POOL_BYTES, so that a stack may
 * be given back while it is still running (a task ending on it). */
#define CIO__STACK_POOL_BYTES 64

/* Usable memory [base, base + size); one guard page sits just below base. */
struct cio__stack {
	void *base;
	size_t size;
	unsigned valgrind_id;
};

struct cio__stack_class; /* stacks of one size */

struct cio__stack_pool {
	struct cio__stack_class *classes;
	size_t nclasses;
	size_t cached;    /* idle stacks kept with their memory */
	size_t cache_max; /* idle stacks kept however long they idle */
	size_t mapped;            /* stacks handed out or cached */
	size_t page;
	bool madvise_guard; /* MADV_GUARD_INSTALL: many stacks per mapping */
};

/* Sets up an empty pool.  Guards use MADV_GUARD_INSTALL (Linux 6.13+)
 * where the kernel has it, else one mapping per stack with an mprotect
 * guard.  The environment variable COREIO_STACK_GUARD=mprotect forces the
 * latter (to test it). */
void cio__stack_pool_init(struct cio__stack_pool *p, size_t cache_max);

/* Unmaps every stack; none may be in use. */
void cio__stack_pool_fini(struct cio__stack_pool *p);

/* Takes a stack of `size` bytes, a multiple of the page size (see
 * cio__stack_round()).  Returns its base, or NULL when out of memory or
 * mappings; *valgrind_id gets its Valgrind registration.  (A base in a
 * register rather than a struct through memory: the caller's first use
 * of it then waits for no store.) */
void *cio__stack_get(struct cio__stack_pool *p, size_t size, unsigned *valgrind_id);

static inline size_t cio__stack_round(const struct cio__stack_pool *p, size_t size)
{
	return (size + p->page - 1) & ~(p->page - 1);
}

/* Gives a stack back to the cache.  Its memory may still be in use by the
 * caller until the next cio__stack_get() on the same pool. */
void cio__stack_put(struct cio__stack_pool *p, void *base, size_t size,
		    unsigned valgrind_id);

/* Releases cached stacks that stayed idle since the previous trim, while
 * more than cache_max are cached.  Returns how many are cached beyond
 * cache_max afterwards (0: no need to trim again). */
size_t cio__stack_trim(struct cio__stack_pool *p);

/* The calling thread's own stack: its lowest address and size.  Returns 0,
 * or -errno when the system cannot tell (the caller then knows less). */
int cio__thread_stack(void **bottom, size_t *size);

/* Whether `addr` lies in the guard page of stack `s`. */
bool cio__stack_in_guard(const struct cio__stack_pool *p,
			 const struct cio__stack *s, const void *addr);

#endif
