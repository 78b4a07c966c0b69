/* file_util.h - helpers shared by the file tests: paths in the test's
 * private directory, and files filled with net_util.h's pattern. */
#ifndef COREIO_TEST_FILE_UTIL_H
#define COREIO_TEST_FILE_UTIL_H

#include "net_util.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static char dir[PATH_MAX]; /* the test's private directory */

/* dir/name, in a rotating set of buffers so a call can take several. */
static inline const char *P(const char *name)
{
	static char bufs[8][PATH_MAX];
	static unsigned i;
	char *b = bufs[i++ % 8];
	CHECK((size_t)snprintf(b, PATH_MAX, "%s/%s", dir, name) < PATH_MAX);
	return b;
}

/* A new file dir/name of len bytes of pat(i, s), open read-write. */
static inline int make_file(const char *name, size_t len, uint32_t s)
{
	int fd = cio_open(P(name), O_CREAT | O_TRUNC | O_RDWR, 0644);
	CHECK(fd >= 0);
	uint8_t *b = malloc(len ? len : 1);
	CHECK(b);
	for (size_t i = 0; i < len; i++)
		b[i] = pat(i, s);
	size_t w = 0;
	CHECK_EQ(cio_write_all(fd, b, len, 0, &w), (ssize_t)len);
	CHECK_EQ(w, len);
	free(b);
	return fd;
}

#endif
