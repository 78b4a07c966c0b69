/* runtime.h - a whole runtime, assembled from its layers. */
#ifndef CIO_CORES_RUNTIME_H
#define CIO_CORES_RUNTIME_H

#include "../core/rt.h"

/* Creates the scheduler's state, then runs each layer's init hook in
 * order (driver, I/O).  Returns the runtime, or NULL with *err set to the
 * negated errno of the layer that failed, the ones before it undone. */
struct cio__rt *cio__runtime_new(const cio_config *cfg, int *err);

/* Frees the batteries' state (struct cio__rt_ext), runs each layer's fini
 * hook in reverse order, then frees the runtime. */
void cio__runtime_free(struct cio__rt *rt);

#endif
