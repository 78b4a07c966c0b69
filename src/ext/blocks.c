/* blocks.c - per-runtime caches of freed memory blocks, by size.
 *
 * A kept-alive HTTP connection parked between requests gives back its
 * stream buffers and its parser's head and field arrays, and takes them
 * again when its next request comes: tens of kilobytes per request.
 * Through malloc that costs more than the allocation: the runtime's
 * thread has an arena of its own, whose top glibc trims (madvise) when a
 * large block at the top is freed and grows again on the next malloc,
 * with the page faults that follow; a profile of a keep-alive server put
 * several percent of its CPU there.  So each runtime keeps the blocks
 * given back, a list per size, for the next take of that size.
 *
 * A list keeps at most MAX_KEPT blocks; above KEEP, the blocks that stayed
 * unused for a whole TRIM_NS (the list's low-water mark over that time)
 * are freed at a take or give after it, so that a busy runtime does not
 * keep a past burst's blocks.  A runtime that goes quiet keeps what it
 * has (MAX_KEPT per size at most) until its next take or give, or its
 * end.  A take fails where an injected allocation failure says so, kept
 * blocks or not, so that the fault sweep reaches the callers' paths.
 * Kept blocks are poisoned under ASan: a use after the give is reported
 * as a use after free would be. */
#include "blocks.h"
#include "../core/rt.h"
#include "../platform/fail.h"

#include <stdint.h>
#include <stdlib.h>

#ifdef CIO_ASAN
#include <sanitizer/asan_interface.h>
#define poison(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define poison(p, n) ((void)(p), (void)(n))
#define unpoison(p, n) ((void)(p), (void)(n))
#endif

#define SIZES 4          /* block sizes kept per runtime */
#define KEEP 16          /* per size, kept however long they stay unused */
#define MAX_KEPT 256     /* per size, at most */
#define TRIM_NS CIO_SEC
#define TRIM_EVERY 64    /* takes and gives between looks at the clock */

struct list {
	size_t size;     /* 0: a free slot */
	void *head;      /* linked through each block's first bytes */
	unsigned n, low; /* kept; the fewest since the last trim */
};

struct blocks {
	struct cio__rt_ext ext;
	struct list lists[SIZES];
	unsigned calls;      /* takes and gives since the clock was read */
	int64_t trimmed_at;
};

static const char blocks_key;

static void *pop(struct list *l)
{
	void *p = l->head;
	unpoison(p, l->size);
	l->head = *(void **)p;
	if (--l->n < l->low)
		l->low = l->n;
	return p;
}

static void blocks_fini(struct cio__rt_ext *e)
{
	struct blocks *b = (struct blocks *)e;
	for (int i = 0; i < SIZES; i++)
		while (b->lists[i].n)
			free(pop(&b->lists[i]));
	free(b);
}

static struct blocks *blocks_of(struct cio__rt *rt, bool make)
{
	if (!rt)
		return NULL;
	struct cio__rt_ext *e = cio__rt_ext_find(rt, &blocks_key);
	if (e || !make)
		return (struct blocks *)e;
	struct blocks *b = calloc(1, sizeof *b); /* none: blocks go to free */
	if (!b)
		return NULL;
	b->ext.key = &blocks_key;
	b->ext.fini = blocks_fini;
	b->trimmed_at = cio__clock_ns();
	cio__rt_ext_add(rt, &b->ext);
	return b;
}

/* Frees, above KEEP, the blocks no take needed since the last trim. */
static void trim(struct blocks *b)
{
	for (int i = 0; i < SIZES; i++) {
		struct list *l = &b->lists[i];
		unsigned idle = l->low;
		while (idle-- && l->n > KEEP)
			free(pop(l));
		l->low = l->n;
	}
}

/* Every TRIM_EVERY calls, a look at the clock, and a trim once TRIM_NS
 * has passed since the last. */
static void maybe_trim(struct blocks *b)
{
	if (++b->calls < TRIM_EVERY)
		return;
	b->calls = 0;
	int64_t now = cio__clock_ns();
	if (now - b->trimmed_at >= TRIM_NS) {
		trim(b);
		b->trimmed_at = now;
	}
}

void *cio__block_take(size_t size)
{
	if (CIO_FAIL(alloc))
		return NULL;
	struct blocks *b = blocks_of(cio__rt_cur, false);
	if (!b)
		return malloc(size);
	maybe_trim(b);
	for (int i = 0; i < SIZES; i++)
		if (b->lists[i].size == size && b->lists[i].n)
			return pop(&b->lists[i]);
	return malloc(size);
}

void cio__block_give(void *p, size_t size)
{
	if (!p)
		return;
	struct blocks *b = size >= sizeof(void *) ? blocks_of(cio__rt_cur, true) : NULL;
	struct list *l = NULL;
	for (int i = 0; b && i < SIZES && !l; i++)
		if (b->lists[i].size == size)
			l = &b->lists[i];
	for (int i = 0; b && i < SIZES && !l; i++)
		if (!b->lists[i].n) {
			l = &b->lists[i]; /* a size no longer kept gives way */
			*l = (struct list){.size = size};
		}
	if (!l || l->n >= MAX_KEPT) {
		free(p);
		return;
	}
	*(void **)p = l->head;
	poison(p, size);
	l->head = p;
	l->n++;
	maybe_trim(b);
}
