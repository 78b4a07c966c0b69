/* stack.c - task stacks: guarded, pooled per runtime.
 *
 * With MADV_GUARD_INSTALL (Linux 6.13), guard pages are markers inside an
 * ordinary mapping, so stacks are carved from large arenas and a million
 * of them cost a few thousand VMAs.  Without it each stack is its own
 * mapping plus an mprotect()ed page: two VMAs, and vm.max_map_count
 * (65530 by default) stops the runtime near 32k tasks.
 *
 * Idle stacks are cached with their memory (up to cache_max); beyond that
 * an arena stack gives its memory back with MADV_DONTNEED and keeps its
 * address for reuse, and a lone mapping is unmapped.
 */
#define _GNU_SOURCE
#include "stack.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND 1
#endif
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13; older headers lack it */
#endif

#define ARENA_BYTES ((size_t)8 << 20)

struct arena {
	struct arena *next;
	char *mem;
	size_t len;
};

/* A free cached stack keeps this at its base (its memory is intact). */
struct cached {
	struct cached *next;
};

struct cio__stack_class {
	size_t size;          /* usable bytes */
	struct cached *cache; /* idle stacks with memory */
	void **released;      /* idle arena slots without memory */
	size_t nreleased, capreleased;
	struct arena *arenas; /* newest first */
	size_t bump, slots;   /* next never-used slot of the newest arena */
};

static bool guard_probe(size_t page)
{
	const char *force = getenv("COREIO_STACK_GUARD");
	if (force && strcmp(force, "mprotect") == 0)
		return false;
	void *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return false;
	bool ok = madvise(m, page, MADV_GUARD_INSTALL) == 0;
	munmap(m, 2 * page);
	return ok;
}

void cio__stack_pool_init(struct cio__stack_pool *p, size_t cache_max)
{
	memset(p, 0, sizeof *p);
	p->page = (size_t)sysconf(_SC_PAGESIZE);
	p->cache_max = cache_max;
	p->madvise_guard = guard_probe(p->page);
}

static struct cio__stack_class *class_of(struct cio__stack_pool *p, size_t size)
{
	for (size_t i = 0; i < p->nclasses; i++)
		if (p->classes[i].size == size)
			return &p->classes[i];
	struct cio__stack_class *c =
		realloc(p->classes, (p->nclasses + 1) * sizeof *c);
	if (!c)
		return NULL;
	p->classes = c;
	c = &c[p->nclasses++];
	memset(c, 0, sizeof *c);
	c->size = size;
	return c;
}

static void *arena_slot(struct cio__stack_pool *p, struct cio__stack_class *c)
{
	size_t slot = c->size + p->page;
	if (!c->arenas || c->bump == c->slots) {
		size_t n = ARENA_BYTES / slot;
		if (n < 4)
			n = 4;
		struct arena *a = malloc(sizeof *a);
		if (!a)
			return NULL;
		a->len = n * slot;
		a->mem = mmap(NULL, a->len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (a->mem == MAP_FAILED) {
			free(a);
			return NULL;
		}
		a->next = c->arenas;
		c->arenas = a;
		c->bump = 0;
		c->slots = n;
	}
	char *guard = c->arenas->mem + c->bump * slot;
	if (madvise(guard, p->page, MADV_GUARD_INSTALL) != 0)
		return NULL; /* retried on the same slot next time */
	c->bump++;
	return guard + p->page;
}

static void *lone_stack(struct cio__stack_pool *p, size_t size)
{
	char *m = mmap(NULL, size + p->page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	if (mprotect(m, p->page, PROT_NONE) != 0) {
		munmap(m, size + p->page);
		return NULL;
	}
	return m + p->page;
}

int cio__stack_get(struct cio__stack_pool *p, size_t size, struct cio__stack *s)
{
	size = (size + p->page - 1) & ~(p->page - 1);
	struct cio__stack_class *c = class_of(p, size);
	if (!c)
		return -ENOMEM;
	void *base;
	if (c->cache) {
		base = c->cache;
		c->cache = c->cache->next;
		p->cached--;
	} else if (c->nreleased) {
		base = c->released[--c->nreleased];
		p->mapped++;
	} else {
		base = p->madvise_guard ? arena_slot(p, c) : lone_stack(p, size);
		if (!base)
			return -ENOMEM;
		p->mapped++;
	}
	s->base = base;
	s->size = size;
#ifdef HAVE_VALGRIND
	s->valgrind_id = VALGRIND_STACK_REGISTER(base, (char *)base + size);
#else
	s->valgrind_id = 0;
#endif
	return 0;
}

void cio__stack_put(struct cio__stack_pool *p, const struct cio__stack *s)
{
#ifdef HAVE_VALGRIND
	VALGRIND_STACK_DEREGISTER(s->valgrind_id);
#endif
	struct cio__stack_class *c = class_of(p, s->size);
	if (c && p->cached < p->cache_max) {
		struct cached *k = s->base;
		k->next = c->cache;
		c->cache = k;
		p->cached++;
		return;
	}
	p->mapped--;
	if (!p->madvise_guard) {
		munmap((char *)s->base - p->page, s->size + p->page);
		return;
	}
	madvise(s->base, s->size, MADV_DONTNEED);
	if (c && c->nreleased == c->capreleased) {
		size_t cap = c->capreleased ? 2 * c->capreleased : 64;
		void **r = realloc(c->released, cap * sizeof *r);
		if (!r)
			return; /* the slot stays unused until the pool goes */
		c->released = r;
		c->capreleased = cap;
	}
	if (c)
		c->released[c->nreleased++] = s->base;
}

bool cio__stack_in_guard(const struct cio__stack_pool *p,
			 const struct cio__stack *s, const void *addr)
{
	uintptr_t a = (uintptr_t)addr, b = (uintptr_t)s->base;
	return a < b && a >= b - p->page;
}

void cio__stack_pool_fini(struct cio__stack_pool *p)
{
	for (size_t i = 0; i < p->nclasses; i++) {
		struct cio__stack_class *c = &p->classes[i];
		if (p->madvise_guard) {
			while (c->arenas) {
				struct arena *a = c->arenas;
				c->arenas = a->next;
				munmap(a->mem, a->len);
				free(a);
			}
		} else {
			while (c->cache) {
				struct cached *k = c->cache;
				c->cache = k->next;
				munmap((char *)k - p->page, c->size + p->page);
			}
		}
		free(c->released);
	}
	free(p->classes);
	memset(p, 0, sizeof *p);
}
