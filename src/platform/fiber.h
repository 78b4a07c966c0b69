/* fiber.h - tells AddressSanitizer and ThreadSanitizer about switches
 * between task stacks.
 *
 * Without these hooks ASan takes a switched stack for a stack overflow or
 * reports false use-after-return; with them it tracks each task's stack
 * and its fake frames.  TSan keeps a shadow call stack and a clock per
 * thread: unless each task is a TSan fiber of its own, a switch corrupts
 * the shadow stack, and its reports name the wrong frames.  In other
 * builds the calls vanish. */
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

#if defined(__SANITIZE_THREAD__)
#define CIO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CIO_TSAN 1
#endif
#endif

/* Each task, and the scheduler (the thread's own fiber), keeps its TSan
 * fiber in a `tsan_fiber` field that exists in TSan builds only; these
 * take the record that holds it. */
#ifdef CIO_TSAN
#include <sanitizer/tsan_interface.h>
/* A new task's fiber, made at spawn. */
#define cio__tsan_fiber_new(obj) ((obj)->tsan_fiber = __tsan_create_fiber(0))
/* The scheduler runs on the thread's own fiber. */
#define cio__tsan_fiber_adopt(obj) ((obj)->tsan_fiber = __tsan_get_current_fiber())
/* Right before a switch to obj's context.  Flags 0: the switch orders
 * what the two contexts do, as it does on one thread. */
#define cio__tsan_switch_to(obj) __tsan_switch_to_fiber((obj)->tsan_fiber, 0)
/* Once no longer the current fiber. */
#define cio__tsan_fiber_free(obj) __tsan_destroy_fiber((obj)->tsan_fiber)
#else
#define cio__tsan_fiber_new(obj) ((void)(obj))
#define cio__tsan_fiber_adopt(obj) ((void)(obj))
#define cio__tsan_switch_to(obj) ((void)(obj))
#define cio__tsan_fiber_free(obj) ((void)(obj))
#endif

#endif
