/* task.c - task life cycle: spawn, the id table, join, detach, finish.
 *
 * A task's record sits at the top of its stack, so a spawn costs one stack
 * from the pool and one entry in the id table, and no malloc.  The entry
 * outlives the stack: a finished task still to be joined keeps only its
 * entry and result.  An id packs the entry's index with its generation,
 * which changes whenever the entry is freed, so a stale id is refused. */
#include "rt.h"
#include "../platform/context.h"
#include "../platform/fiber.h"
#include "../platform/os.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define GEN_MASK 0x7fffffffu /* ids stay positive */
#define MIN_STACK ((size_t)16 << 10)
#define MAX_STACK ((size_t)1 << 30)

static inline cio_task_t make_id(const struct cio__slot *s, uint32_t idx)
{
	return (cio_task_t)(((uint64_t)s->gen << 32) | ((uint64_t)idx + 1));
}

static struct cio__slot *lookup(struct cio__rt *rt, cio_task_t id, uint32_t *idx_out)
{
	if (id <= 0)
		return NULL;
	uint64_t low = (uint64_t)id & 0xffffffffu;
	if (low == 0 || low > rt->nslots)
		return NULL;
	uint32_t idx = (uint32_t)(low - 1);
	struct cio__slot *s = &rt->slots[idx];
	if (s->kind == CIO__SLOT_FREE || s->gen != (uint64_t)id >> 32)
		return NULL;
	if (idx_out)
		*idx_out = idx;
	return s;
}

struct cio__task *cio__slot_task(struct cio__rt *rt, cio_task_t id)
{
	struct cio__slot *s = lookup(rt, id, NULL);
	return s && s->kind == CIO__SLOT_LIVE ? s->u.task : NULL;
}

static void slot_free(struct cio__rt *rt, uint32_t idx)
{
	struct cio__slot *s = &rt->slots[idx];
	s->kind = CIO__SLOT_FREE;
	s->gen = (s->gen + 1) & GEN_MASK;
	s->detached = false;
	s->joiner = NULL;
	s->u.next_free = rt->free_slot;
	rt->free_slot = idx;
}

static int slot_alloc(struct cio__rt *rt, uint32_t *out)
{
	if (rt->free_slot == CIO__NO_SLOT) {
		uint32_t old = rt->nslots, n = old ? old * 2 : 256;
		if (old >= UINT32_MAX / 2)
			return -ENOMEM;
		struct cio__slot *v = cio__realloc(rt->slots, n * sizeof *v);
		if (!v)
			return -ENOMEM;
		memset(v + old, 0, (n - old) * sizeof *v);
		for (uint32_t i = old; i < n; i++)
			v[i].u.next_free = i + 1 < n ? i + 1 : CIO__NO_SLOT;
		rt->slots = v;
		rt->nslots = n;
		rt->free_slot = old;
	}
	*out = rt->free_slot;
	rt->free_slot = rt->slots[*out].u.next_free;
	return 0;
}

static void task_main(void *p)
{
	struct cio__task *t = p;
	cio__fiber_enter(NULL);
	void *result = t->fn(t->arg);
	struct cio__rt *rt = cio__rt_cur;
	cio__scopes_end(t);
	cio__task_finish(rt, t, result);
	cio__task_exit(rt, t);
}

void cio__task_finish(struct cio__rt *rt, struct cio__task *t, void *result)
{
	struct cio__slot *s = &rt->slots[t->slot];
	if (t->daemon)
		rt->daemons--;
	else
		rt->live--;
	if (s->detached) {
		slot_free(rt, t->slot);
		return;
	}
	s->kind = CIO__SLOT_DONE;
	s->u.result = result;
	if (s->joiner)
		cio__wake(s->joiner, 0);
}

cio_task_t cio_spawn_with(const cio_spawn_opts *opts, cio_fn *fn, void *arg)
{
	static const cio_spawn_opts none;
	struct cio__rt *rt = cio__rt_cur;
	if (!rt)
		return -EPERM;
	if (!opts)
		opts = &none;
	size_t size = opts->stack_size ? opts->stack_size : rt->stack_size;
	if (size < MIN_STACK || size > MAX_STACK || !fn)
		return -EINVAL;
	/* Reserve the new task's timers now, so that no park can fail
	 * later. */
	if (cio__timers_reserve(rt, cio__timers_bound(rt, 1, 0)) < 0)
		return -ENOMEM;
	uint32_t idx;
	if (slot_alloc(rt, &idx) < 0)
		return -ENOMEM;
	size = cio__stack_round(&rt->stacks, size);
	unsigned vg;
	char *base = cio__stack_get(&rt->stacks, size, &vg);
	if (!base) {
		rt->slots[idx].u.next_free = rt->free_slot;
		rt->free_slot = idx;
		return -ENOMEM;
	}
	/* Colour the record's place: stacks lie a multiple of 4 KiB apart, so
	 * records all at the very top would share one L1 cache set. */
	uintptr_t top = (uintptr_t)base + size - CIO__STACK_POOL_BYTES -
			(((uintptr_t)base >> 12) & 15) * 64;
	struct cio__task *t = (struct cio__task *)((top - sizeof *t) & ~(uintptr_t)63);
	/* Field by field: a memset of the record compiles to rep stos, whose
	 * start-up costs more than these stores. */
	t->next = NULL;
	t->daemon = false;
	t->local = NULL;
	t->cancel = false;
	t->deadline_hit = false;
	t->shielded = 0;
	t->drain_idle = false;
	t->wake = 0;
	t->name[0] = '\0';
	t->fn = fn;
	t->arg = arg;
	t->slot = idx;
	t->state = CIO__RUNNABLE;
	t->deadline = CIO_NEVER;
	t->scopes = t->scope_inline;
	t->nscopes = 0;
	t->capscopes = CIO__SCOPES_INLINE;
	t->scope_serial = 0;
	t->dl_timer.slot = CIO__TIMER_IDLE;
	t->dl_timer.task = t;
	t->dl_timer.fire = cio__deadline_fire;
	t->stack.base = base;
	t->stack.size = size;
	t->stack.valgrind_id = vg;
	cio__tsan_fiber_new(t);
	if (opts->name) {
		strncpy(t->name, opts->name, sizeof t->name - 1);
		t->name[sizeof t->name - 1] = '\0';
	}
	/* The task's own stack is what lies below its record. */
	t->sp = cio__ctx_make(base, (size_t)((char *)t - base), task_main, t);

	struct cio__slot *s = &rt->slots[idx];
	s->kind = CIO__SLOT_LIVE;
	s->detached = opts->detached;
	s->joiner = NULL;
	s->u.task = t;
	rt->live++;
	rt->stats.tasks_spawned++;
	cio__runq_add(rt, t);
	return make_id(s, idx);
}

cio_task_t cio__spawn_daemon(const char *name, cio_fn *fn, void *arg)
{
	struct cio__rt *rt = cio__rt_cur;
	cio_task_t id = cio_spawn_with(&(cio_spawn_opts){.name = name, .detached = true},
				       fn, arg);
	if (id > 0) {
		struct cio__task *t = cio__slot_task(rt, id);
		t->daemon = true;
		rt->live--;
		rt->daemons++;
		if (rt->daemons_cancelled)
			t->cancel = true;
	}
	return id;
}

cio_task_t cio_spawn(cio_fn *fn, void *arg)
{
	return cio_spawn_with(NULL, fn, arg);
}

/* The slot of a task `self` may join, or NULL with *err: -ESRCH (no such
 * task), -EDEADLK (itself), -EINVAL (detached, or another task joins it). */
static struct cio__slot *joinable(struct cio__rt *rt, cio_task_t id, struct cio__task *self,
				  uint32_t *idx, int *err)
{
	struct cio__slot *s = lookup(rt, id, idx);
	*err = !s ? -ESRCH
	       : s->kind == CIO__SLOT_LIVE && s->u.task == self ? -EDEADLK
	       : s->detached || (s->joiner && s->joiner != self) ? -EINVAL
			      : 0;
	return *err ? NULL : s;
}

static void join_done(struct cio__rt *rt, uint32_t idx, void **result)
{
	if (result)
		*result = rt->slots[idx].u.result;
	slot_free(rt, idx);
}

int cio_join(cio_task_t id, void **result)
{
	struct cio__task *self = cio__self_or_die("cio_join");
	struct cio__rt *rt = cio__rt_cur;
	uint32_t idx;
	int rc;
	struct cio__slot *s = joinable(rt, id, self, &idx, &rc);
	if (!s)
		return rc;
	if ((rc = cio__interrupted(self)) < 0)
		return rc;
	if (s->kind == CIO__SLOT_LIVE) {
		s->joiner = self;
		rc = cio__park(self);
		rt->slots[idx].joiner = NULL; /* the table may have moved meanwhile */
		if (rc < 0)
			return rc; /* still joinable, finished or not */
	}
	join_done(rt, idx, result);
	return 0;
}

int cio__join_try(cio_task_t id, void **result, struct cio__task *self)
{
	struct cio__rt *rt = cio__rt_cur;
	uint32_t idx;
	int rc;
	struct cio__slot *s = joinable(rt, id, self, &idx, &rc);
	if (!s)
		return rc;
	if (s->kind == CIO__SLOT_LIVE)
		return -EAGAIN;
	join_done(rt, idx, result);
	return 0;
}

void cio__join_watch(cio_task_t id, struct cio__task *joiner)
{
	struct cio__slot *s = lookup(cio__rt_cur, id, NULL);
	if (s)
		s->joiner = joiner;
}

int cio_detach(cio_task_t id)
{
	struct cio__rt *rt = cio__rt_cur;
	uint32_t idx;
	struct cio__slot *s = rt ? lookup(rt, id, &idx) : NULL;
	if (!s)
		return -ESRCH;
	if (s->detached || s->joiner)
		return -EINVAL;
	if (s->kind == CIO__SLOT_DONE)
		slot_free(rt, idx);
	else
		s->detached = true;
	return 0;
}

cio_task_t cio_self(void)
{
	struct cio__rt *rt = cio__rt_cur;
	if (!rt || !rt->current)
		return 0;
	uint32_t idx = rt->current->slot;
	return make_id(&rt->slots[idx], idx);
}

const char *cio_task_name(void)
{
	struct cio__rt *rt = cio__rt_cur;
	return rt && rt->current ? rt->current->name : "";
}

void cio__tasks_fini(struct cio__rt *rt)
{
	free(rt->slots);
	rt->slots = NULL;
	rt->nslots = 0;
}

const char *cio_strerror(int err)
{
	int e = err < 0 ? -err : err;
	struct cio__rt *rt = cio__rt_cur;
	if (e == ETIMEDOUT && rt && rt->current && rt->current->deadline_hit)
		return "Deadline passed";
	switch (e) {
	case CIO_EDNS_NXDOMAIN: return "Name not found (NXDOMAIN)";
	case CIO_EDNS_NODATA: return "No address of that family for the name (NODATA)";
	case CIO_EDNS_SERVFAIL: return "DNS server failure (SERVFAIL)";
	case CIO_EDNS_REFUSED: return "DNS query refused (REFUSED)";
	case CIO_EDNS_BADNAME: return "Malformed host name";
	case CIO_EDNS_TIMEOUT: return "DNS query timed out";
	case CIO_EDNS_BADRESP: return "Malformed DNS response";
	case CIO_EDNS_CONNREFUSED: return "No DNS server reachable";
	}
	const char *s = cio__errno_text(e);
	return s ? s : "Unknown error";
}

const char *cio_version(void)
{
	return "0.1.0";
}
