/* stack.c - task stacks: guarded, pooled per runtime.
 *
 * With MADV_GUARD_INSTALL (Linux 6.13), guard pages are markers inside an
 * ordinary mapping, so stacks are carved from large arenas and a million
 * of them cost a few thousand VMAs.  Without it each stack is its own
 * mapping plus an mprotect()ed page: two VMAs, and vm.max_map_count
 * (65530 by default) stops the runtime near 32k tasks.
 *
 * Idle stacks are cached with their memory, hottest first, so that a
 * runtime whose task count swings (waves of connections) reuses them
 * without system calls.  cio__stack_trim(), run about once a second while
 * the cache is above cache_max, releases the stacks that stayed idle for
 * the whole period: an arena stack gives its memory back with
 * MADV_DONTNEED and keeps its address for reuse; a lone mapping is
 * unmapped.
 */
#include "stack.h"
#include "fail.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__DragonFly__)
#include <pthread_np.h> /* pthread_attr_get_np() */
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND 1
#endif
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13; older headers lack it */
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0 /* FreeBSD: no overcommit accounting to skip */
#endif

#define ARENA_BYTES ((size_t)8 << 20)

struct arena {
	struct arena *next;
	char *mem;
	size_t len;
};

/* A free cached stack keeps this at its top (CIO__STACK_POOL_BYTES), next
 * to the lines its task record used, which the next task will use again. */
struct cached {
	struct cached *next, *prev; /* towards the cold end, the hot end */
};

struct cio__stack_class {
	size_t size;          /* usable bytes */
	struct cached *hot, *cold; /* idle stacks with memory, a list */
	size_t ncached;
	size_t low;               /* fewest cached since the last trim */
	void **released;      /* idle arena slots without memory */
	size_t nreleased, capreleased;
	struct arena *arenas; /* newest first */
	size_t bump, slots;   /* next never-used slot of the newest arena */
};

static bool guard_probe(size_t page)
{
	const char *force = getenv("COREIO_STACK_GUARD");
	if (!CIO__LINUX || (force && strcmp(force, "mprotect") == 0))
		return false; /* guard markers are Linux's (6.13) */
	void *m = CIO_FAIL(mmap) ? MAP_FAILED : mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return false;
	bool ok = !CIO_FAIL(madvise) && madvise(m, page, MADV_GUARD_INSTALL) == 0;
	if (ok) {
		/* Some emulators (qemu-user) accept the advice and do nothing:
		 * make sure the kernel refuses to read the guard page. */
		int fds[2];
		if (cio__pipe_open(fds, false) == 0) {
			ok = write(fds[1], m, 1) < 0 && errno == EFAULT;
			close(fds[0]);
			close(fds[1]);
		}
	}
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

_Static_assert(sizeof(struct cached) <= CIO__STACK_POOL_BYTES, "link must fit the reserved top");

static inline struct cached *node_of(void *base, size_t size)
{
	return (struct cached *)((char *)base + size) - 1;
}

static inline void *base_of(struct cached *k, size_t size)
{
	return (char *)(k + 1) - size;
}

static struct cio__stack_class *class_of(struct cio__stack_pool *p, size_t size)
{
	if (p->nclasses && p->classes[0].size == size)
		return &p->classes[0]; /* the runtime's default size, usually */
	for (size_t i = 0; i < p->nclasses; i++)
		if (p->classes[i].size == size)
			return &p->classes[i];
	struct cio__stack_class *c =
		cio__realloc(p->classes, (p->nclasses + 1) * sizeof *c);
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
		struct arena *a = cio__malloc(sizeof *a);
		if (!a)
			return NULL;
		a->len = n * slot;
		a->mem = CIO_FAIL(mmap) ? MAP_FAILED : mmap(NULL, a->len, PROT_READ | PROT_WRITE,
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
	if (CIO_FAIL(madvise) || madvise(guard, p->page, MADV_GUARD_INSTALL) != 0)
		return NULL; /* retried on the same slot next time */
	c->bump++;
	return guard + p->page;
}

static void *lone_stack(struct cio__stack_pool *p, size_t size)
{
	char *m = CIO_FAIL(mmap) ? MAP_FAILED : mmap(NULL, size + p->page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	if (mprotect(m, p->page, PROT_NONE) != 0) {
		munmap(m, size + p->page);
		return NULL;
	}
	return m + p->page;
}

static void drop_cache(struct cio__stack_pool *p);

void *cio__stack_get(struct cio__stack_pool *p, size_t size, unsigned *valgrind_id)
{
	struct cio__stack_class *c = class_of(p, size);
	if (!c)
		return NULL;
	void *base;
	if (c->hot) {
		/* The new head keeps a stale prev: writing it would touch a
		 * second cold stack per spawn.  ncached, not prev == NULL,
		 * says where the list ends. */
		struct cached *k = c->hot;
		c->hot = k->next;
		if (!c->hot)
			c->cold = NULL;
		p->cached--;
		if (--c->ncached < c->low)
			c->low = c->ncached;
		base = base_of(k, c->size);
	} else if (c->nreleased) {
		base = c->released[--c->nreleased];
		p->mapped++;
	} else {
		base = p->madvise_guard ? arena_slot(p, c) : lone_stack(p, size);
		if (!base && p->cached) {
			/* Out of memory or mappings: idle stacks of other sizes
			 * may be what holds them. */
			drop_cache(p);
			base = p->madvise_guard ? arena_slot(p, c) : lone_stack(p, size);
		}
		if (!base)
			return NULL;
		p->mapped++;
	}
#ifdef HAVE_VALGRIND
	*valgrind_id = VALGRIND_STACK_REGISTER(base, (char *)base + size);
#else
	*valgrind_id = 0;
#endif
	return base;
}

/* Gives a stack's memory back to the kernel. */
static void release(struct cio__stack_pool *p, struct cio__stack_class *c, void *base)
{
	p->mapped--;
	if (!p->madvise_guard) {
		munmap((char *)base - p->page, c->size + p->page);
		return;
	}
	madvise(base, c->size, MADV_DONTNEED);
	if (c->nreleased == c->capreleased) {
		size_t cap = c->capreleased ? 2 * c->capreleased : 64;
		void **r = cio__realloc(c->released, cap * sizeof *r);
		if (!r)
			return; /* the slot stays unused until the pool goes */
		c->released = r;
		c->capreleased = cap;
	}
	c->released[c->nreleased++] = base;
}

void cio__stack_put(struct cio__stack_pool *p, void *base, size_t size,
		    unsigned valgrind_id)
{
#ifdef HAVE_VALGRIND
	VALGRIND_STACK_DEREGISTER(valgrind_id);
#else
	(void)valgrind_id;
#endif
	struct cio__stack_class *c = class_of(p, size); /* exists: get made it */
	struct cached *k = node_of(base, size);
	k->prev = NULL;
	k->next = c->hot;
	if (c->hot)
		c->hot->prev = k;
	else
		c->cold = k;
	c->hot = k;
	c->ncached++;
	p->cached++;
}

/* Releases every cached stack. */
static void drop_cache(struct cio__stack_pool *p)
{
	for (size_t i = 0; i < p->nclasses; i++) {
		struct cio__stack_class *c = &p->classes[i];
		while (c->hot) {
			struct cached *k = c->hot;
			c->hot = k->next;
			release(p, c, base_of(k, c->size));
		}
		c->cold = NULL;
		c->ncached = c->low = 0;
	}
	p->cached = 0;
}

size_t cio__stack_trim(struct cio__stack_pool *p)
{
	for (size_t i = 0; i < p->nclasses && p->cached > p->cache_max; i++) {
		struct cio__stack_class *c = &p->classes[i];
		size_t n = c->low;
		while (n-- && c->ncached && p->cached > p->cache_max) {
			struct cached *k = c->cold;
			if (--c->ncached) {
				c->cold = k->prev;
				c->cold->next = NULL;
			} else {
				c->cold = c->hot = NULL;
			}
			p->cached--;
			release(p, c, base_of(k, c->size));
		}
	}
	for (size_t i = 0; i < p->nclasses; i++)
		p->classes[i].low = p->classes[i].ncached;
	return p->cached > p->cache_max ? p->cached - p->cache_max : 0;
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
			while (c->hot) {
				struct cached *k = c->hot;
				c->hot = k->next;
				munmap((char *)base_of(k, c->size) - p->page, c->size + p->page);
			}
		}
		free(c->released);
	}
	free(p->classes);
	memset(p, 0, sizeof *p);
}

int cio__thread_stack(void **bottom, size_t *size)
{
#if defined(__APPLE__)
	/* macOS gives the top (the highest address) and the size. */
	pthread_t self = pthread_self();
	*size = pthread_get_stacksize_np(self);
	*bottom = (char *)pthread_get_stackaddr_np(self) - *size;
	return 0;
#else
	pthread_attr_t attr;
	int rc = pthread_attr_init(&attr);
	if (rc)
		return -rc;
#if defined(__linux__)
	rc = pthread_getattr_np(pthread_self(), &attr);
#elif defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__DragonFly__)
	rc = pthread_attr_get_np(pthread_self(), &attr);
#else
	rc = ENOSYS;
#endif
	if (rc == 0)
		rc = pthread_attr_getstack(&attr, bottom, size);
	pthread_attr_destroy(&attr);
	return -rc;
#endif
}
