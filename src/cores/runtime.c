/* runtime.c - a runtime assembled from its layers, and cio_run().
 *
 * Each layer above core keeps its own per-runtime state and has an init
 * and a fini hook; only this file knows them all and their order, so no
 * layer needs to call one above it. */
#include "runtime.h"
#include "../driver/driver.h"
#include "../io/io.h"

#include <errno.h>
#include <stddef.h>

static const struct layer {
	int (*init)(struct cio__rt *rt, const cio_config *cfg);
	void (*fini)(struct cio__rt *rt);
} layers[] = {
	{cio__driver_open, cio__driver_close},
	{cio__io_init, cio__io_fini},
};

#define NLAYERS (sizeof layers / sizeof layers[0])

static void fini_from(struct cio__rt *rt, size_t n)
{
	while (n--)
		layers[n].fini(rt);
	cio__rt_destroy(rt);
}

struct cio__rt *cio__runtime_new(const cio_config *cfg, int *err)
{
	static const cio_config defaults;
	if (!cfg)
		cfg = &defaults;
	struct cio__rt *rt = cio__rt_create(cfg, err);
	if (!rt)
		return NULL;
	for (size_t i = 0; i < NLAYERS; i++) {
		if ((*err = layers[i].init(rt, cfg)) < 0) {
			fini_from(rt, i);
			return NULL;
		}
	}
	return rt;
}

void cio__runtime_free(struct cio__rt *rt)
{
	/* The batteries first: their state may still hold fds. */
	while (rt->ext) {
		struct cio__rt_ext *e = rt->ext;
		rt->ext = e->next;
		e->fini(e);
	}
	fini_from(rt, NLAYERS);
}

int cio_run_with(const cio_config *cfg, cio_fn *main, void *arg)
{
	if (cio__rt_cur)
		return -EBUSY;
	int rc;
	struct cio__rt *rt = cio__runtime_new(cfg, &rc);
	if (!rt)
		return rc;
	rc = cio__rt_run(rt, main, arg);
	cio__runtime_free(rt);
	return rc;
}

int cio_run(cio_fn *main, void *arg)
{
	return cio_run_with(NULL, main, arg);
}
