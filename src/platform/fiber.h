/* fiber.h - tells AddressSanitizer about switches between task stacks.
 *
 * Without these hooks ASan takes a switched stack for a stack overflow or
 * reports false use-after-return; with them it tracks each task's stack
 * and its fake frames.  In other builds the calls vanish. */
#ifndef CIO_PLATFORM_FIBER_H
#define CIO_PLATFORM_FIBER_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define CIO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CIO_ASAN 1
#endif
#endif

#ifdef CIO_ASAN
#include <sanitizer/common_interface_defs.h>
/* Before a switch to the stack [bottom, bottom + size).  `fake` keeps the
 * leaving context's fake stack; NULL when the leaving context ends. */
#define cio__fiber_leave(fake, bottom, size) \
	__sanitizer_start_switch_fiber((fake), (bottom), (size))
/* After a switch lands, in the context that was resumed. */
#define cio__fiber_enter(fake) \
	__sanitizer_finish_switch_fiber((fake), NULL, NULL)
#else
#define cio__fiber_leave(fake, bottom, size) ((void)(fake), (void)(bottom), (void)(size))
#define cio__fiber_enter(fake) ((void)(fake))
#endif

#endif
