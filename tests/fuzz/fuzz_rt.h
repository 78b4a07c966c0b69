/* fuzz_rt.h - what the fuzz targets that need a runtime share: libFuzzer
 * runs inside a task of one runtime that lives as long as the process
 * (fuzz_rt.c), and each input runs in it as a task of its own. */
#ifndef COREIO_FUZZ_RT_H
#define COREIO_FUZZ_RT_H

#include <coreio.h>

/* Runs fn(arg) as a task of the process's runtime and waits for it.
 * Afterwards every task the input started must have ended and every fd
 * it opened must be closed: else the input aborts, as a leak. */
void fuzz_rt_run(cio_fn *fn, void *arg);

#endif
