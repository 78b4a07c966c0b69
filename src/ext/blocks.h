/* blocks.h - per-runtime caches of freed memory blocks, by size: the
 * buffers a kept-alive connection gives back when it parks and takes
 * again for its next request. */
#ifndef COREIO_EXT_BLOCKS_H
#define COREIO_EXT_BLOCKS_H

#include <stddef.h>

/* A block of `size` bytes: one the calling runtime kept, else from
 * malloc.  NULL on ENOMEM.  Off a runtime: malloc. */
void *cio__block_take(size_t size);

/* Gives back a block cio__block_take(size) returned (NULL: nothing): the
 * runtime keeps it for a next take of the same size, or frees it. */
void cio__block_give(void *p, size_t size);

#endif
