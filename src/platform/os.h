/* os.h - which path the platform shims take: the Linux system calls, or
 * the POSIX ones a BSD or macOS build runs.
 *
 * CIO__LINUX is 1 on Linux unless the build asks for the POSIX paths
 * (COREIO_PORTABLE, the CMake option of the same name), so that the code
 * other systems run is compiled and tested on Linux too.  Only the shims
 * under src/platform/ (and the Linux-only backends) test it; the layers
 * above the driver call the shims. */
#ifndef CIO_PLATFORM_OS_H
#define CIO_PLATFORM_OS_H

#if defined(__linux__) && !defined(COREIO_PORTABLE)
#define CIO__LINUX 1
#else
#define CIO__LINUX 0
#endif

#include <string.h>

/* The text of errno e: glibc's strerrordesc_np() (2.32) is thread-safe
 * and never translated; elsewhere strerror(), whose text for a known
 * errno is static on the BSDs and macOS. */
static inline const char *cio__errno_text(int e)
{
#if CIO__LINUX
	return strerrordesc_np(e);
#else
	return strerror(e);
#endif
}

#endif
