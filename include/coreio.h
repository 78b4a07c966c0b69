/* coreio.h - the public API of coreio, a thread-per-core I/O runtime for C.
 *
 * Sections follow the layers of the runtime: conventions, runtime, tasks,
 * time, deadlines and cancellation, network and stream I/O, files and
 * zero-copy transfers, cores and messages between them, local
 * synchronisation, streams and TLS, names and dialling, the HTTP/1.1
 * server.
 *
 * Every call returns a non-negative result or a negated errno (-ETIMEDOUT,
 * -ECANCELED, ...); none leaves its result in errno.  A call documented as
 * "blocking" parks only the calling task and must be made from a task: made
 * anywhere else it aborts the process with a message naming the call, even
 * when its arguments are wrong or it would have nothing to do.  So do
 * cio_deadline_push(), cio_timeout_push(), cio_deadline_pop() and
 * cio_mutex_trylock(), which need a task to act on.
 *
 * Every other call never blocks and may be made outside a task: from the
 * thread's scheduler context (a runtime's setup, a cross-core message
 * handler) or, where its documentation says so, from any thread.  Those
 * that need the calling thread's runtime (cio_spawn(), cio_core_post(),
 * cio_drain()) return -EPERM off one; the queries (cio_self(),
 * cio_draining(), cio_stats_get(), ...) answer for "no task" or "no
 * runtime" as documented.  Local channels' try_* calls and close, and the
 * other non-blocking calls of the local synchronisation objects, work
 * from the scheduler context as well.
 *
 * Every blocking call obeys the same two rules:
 *   - it returns -ECANCELED once cio_cancel() was called on the task
 *     (before or during the call), until the task clears the request;
 *   - it returns -ETIMEDOUT once the task's current deadline has passed
 *     (see cio_deadline_push()).
 * When both hold at once, -ECANCELED wins.  An interrupted call returns only
 * after every resource it held (a queue slot, a kernel buffer) is released.
 *
 * Calls that loop until a whole count has moved (cio_send_all(),
 * cio_recv_exact(), cio_read_all(), cio_write_all(), cio_sendfile()) take
 * a last argument `size_t *moved` (may be NULL).  They return the count
 * (cio_read_all() and cio_sendfile() fewer when the file ended first), or
 * a negated errno; either way *moved holds the bytes moved, so after an
 * error it tells how far the transfer got.
 *
 * The header uses POSIX types (ssize_t, sigset_t, struct sockaddr): compile
 * with gcc's default gnu dialect, or define _GNU_SOURCE or
 * _POSIX_C_SOURCE=200809L with a strict -std=c11.
 */
#ifndef COREIO_H
#define COREIO_H

#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

#define COREIO_VERSION_MAJOR 0
#define COREIO_VERSION_MINOR 1
#define COREIO_VERSION_PATCH 0

#if defined(COREIO_BUILDING)
#define CIO_API __attribute__((visibility("default")))
#else
#define CIO_API
#endif

/* ===================================================================== */
/*  Conventions                                                           */
/* ===================================================================== */

/* A time or deadline "never": no deadline, sleep forever. */
#define CIO_NEVER INT64_MAX

/* Durations in nanoseconds, the unit of every time in this API. */
#define CIO_US ((int64_t)1000)
#define CIO_MS ((int64_t)1000000)
#define CIO_SEC ((int64_t)1000000000)

/* Text for a result code: "Connection refused" for -ECONNREFUSED and so
 * on.  Accepts either sign.  Never returns NULL; the text is static.
 * -ETIMEDOUT reads "Deadline passed" in a task whose last blocking call
 * failed because a deadline scope's time ran out, and "Connection timed
 * out" otherwise (a timeout of the kernel's, such as TCP's).  The DNS
 * codes (CIO_EDNS_*, see "Names and dialling") have texts of their own,
 * such as "Name not found (NXDOMAIN)". */
CIO_API const char *cio_strerror(int err);

/* The library version as "major.minor.patch". */
CIO_API const char *cio_version(void);

/* ===================================================================== */
/*  Runtime                                                               */
/* ===================================================================== */

/* The body of a task.  Its return value is what cio_join() hands back. */
typedef void *cio_fn(void *arg);

/* Which I/O backend a runtime uses. */
enum cio_backend {
	CIO_BACKEND_AUTO = 0, /* io_uring when it works here, else epoll, else
	                       * kqueue (macOS, the BSDs) */
	CIO_BACKEND_URING,
	CIO_BACKEND_EPOLL,
	CIO_BACKEND_KQUEUE,
};

/* Runtime settings.  Zero every field you do not set: zero means the
 * default.  The environment variable COREIO_BACKEND=uring|epoll|kqueue
 * overrides a backend of CIO_BACKEND_AUTO. */
typedef struct cio_config {
	enum cio_backend backend;
	size_t stack_size;     /* default task stack, bytes; 0: 256 KiB */
	unsigned ring_entries; /* io_uring submission queue size; 0: 256 */
	int64_t idle_poll_ns;  /* with nothing to run, watch for messages and
	                        * completions this long before sleeping in
	                        * the kernel: a core that is woken often
	                        * answers sooner (a sleeping CPU takes tens
	                        * of us to wake on a VM), at the price of
	                        * that much CPU after each burst; 0: sleep
	                        * at once */
	size_t stack_cache;    /* idle stacks always kept for reuse; 0: 1024.
	                        * More are kept while reused: those idle
	                        * for a whole second go back to the kernel. */
	int64_t stall_ns;      /* report a task that runs this long without
	                        * parking (see "stall reports", under Tasks); 0:
	                        * COREIO_STALL_MS from the environment, and
	                        * off when that is unset or 0; < 0: off */
	size_t buf_size;       /* bytes of each lent buffer (cio_recv_buf());
	                        * 0: 16 KiB */
	size_t buf_budget;     /* bytes of lent buffers out at once, at most,
	                        * on this runtime; 0: 64 MiB */
} cio_config;

/* Runs a runtime on the calling thread: spawns `main(arg)` as the first
 * task and returns once it and every task left running have finished.
 * A thread runs at most one runtime at a time.
 *
 * Returns 0 when all tasks finished, or a negated errno:
 *   -EBUSY    a runtime already runs on this thread;
 *   -ENOMEM   the runtime's memory (stacks, tables) could not be had;
 *   -ENOSYS / -EPERM / ...  the forced backend cannot start here;
 *   -EDEADLK  every remaining task was blocked with nothing left that could
 *             wake it; coreio cancelled them (their blocking calls returned
 *             -ECANCELED) and they finished. */
CIO_API int cio_run(cio_fn *main, void *arg);

/* cio_run() with settings; `cfg` may be NULL for the defaults. */
CIO_API int cio_run_with(const cio_config *cfg, cio_fn *main, void *arg);

/* Name of the backend the calling thread's runtime uses ("io_uring",
 * "epoll" or "kqueue"), or NULL outside a runtime. */
CIO_API const char *cio_backend_name(void);

/* Why the runtime on this thread is not on io_uring (for instance
 * "io_uring disabled by sysctl" or "EPERM (seccomp)"), or NULL if it is on
 * io_uring or outside a runtime.  The text lives as long as the runtime. */
CIO_API const char *cio_backend_reason(void);

/* Counters of one runtime (one core); all zero outside one.  Each is
 * kept by its own core with a plain increment, so keeping them costs no
 * atomic operation and no system call.  Totals since the runtime started,
 * unless marked "now" (a gauge).  New fields are only ever added at the
 * end. */
typedef struct cio_stats {
	uint64_t tasks_spawned;
	uint64_t tasks_live;     /* now: spawned and not yet finished */
	uint64_t switches;       /* context switches, task or scheduler */
	uint64_t ticks;          /* scheduler ticks */
	uint64_t driver_waits;   /* times the scheduler slept in the driver */
	uint64_t stacks_mapped;  /* now: stacks in use or cached */
	bool guard_pages_madvise; /* guards are MADV_GUARD_INSTALL, not mprotect */
	/* Operations made by the blocking I/O calls, by kind, counted as
	 * each returns (one that parks on readiness and tries again counts
	 * once; one that failed counts too). */
	uint64_t ops_read;       /* read, readv, recv, recvmsg */
	uint64_t ops_write;      /* write, writev, send, sendmsg */
	uint64_t ops_accept;
	uint64_t ops_connect;
	uint64_t ops_poll;       /* readiness waits: cio_wait_readable(), ... */
	uint64_t ops_other;      /* files, names, splice */
	uint64_t accepted;       /* connections cio_accept() returned */
	uint64_t accept_errors;  /* cio_accept() failures other than a cancel,
	                          * a deadline or a drain's -ESHUTDOWN:
	                          * -EMFILE, -ENFILE, -ECONNABORTED... */
	uint64_t timers_armed;   /* sleeps, deadlines of parked calls, ... */
	/* The driver.  A poll is one backend wait: a submit-and-wait
	 * io_uring_enter(), an epoll_wait(), a kevent(). */
	uint64_t driver_polls;
	uint64_t driver_events;  /* completions or readiness events polls reaped */
	uint64_t uring_enters;   /* io_uring_enter() calls of every purpose */
	uint64_t uring_sq_full;  /* SQ found full: submitted early to make room */
	uint64_t uring_cq_overflow; /* polls after which the kernel held
	                          * completions back (IORING_SQ_CQ_OVERFLOW) */
	uint64_t uring_cq_dropped; /* completions the kernel dropped: the
	                          * ring's own overflow counter, as last read */
	/* Messages between cores: calls, posts, wakes of cross-core channels,
	 * blocking-pool replies. */
	uint64_t msgs_sent;      /* pushed by this core, to any core's inbox */
	uint64_t msgs_received;  /* handled from this core's inbox */
	uint64_t pool_jobs;      /* jobs this core queued on the blocking pool */
	uint64_t pool_waits;     /* of them, those that found no idle thread */
	uint64_t pool_queued;    /* now: jobs waiting in the pool (process-wide) */
	uint64_t stalls;         /* stall reports of this core's tasks
	                          * (cio_config.stall_ns) */
	uint64_t bufs_lent;      /* now: bytes of lent buffers out
	                          * (cio_recv_buf()) */
	uint64_t bufs_ring;      /* now: bytes of buffers in io_uring's ring
	                          * of provided buffers, which grows with
	                          * the load and shrinks after it */
} cio_stats;

/* Fills *st with the calling thread's runtime counters (zeros off a
 * runtime). */
CIO_API void cio_stats_get(cio_stats *st);

/* Blocking.  Fills st[k] with the counters of core k, for every core k of
 * the calling runtime's group below n (cio_core_count(); one for
 * cio_run()), by a cross-core call to each other core (cio_core_call()),
 * so each record is a copy its own core made between two of its tasks.
 * A core that has stopped leaves its record zeroed.  Returns the number
 * of records filled (at most n), or -ECANCELED, -ETIMEDOUT. */
CIO_API int cio_stats_get_all(cio_stats *st, size_t n);

/* Writes the counters of st[0] .. st[n - 1] (st[k] for core k) into buf
 * as Prometheus text exposition (version 0.0.4): for each counter a
 * "# HELP" and a "# TYPE" line, then one sample per core, such as
 *     coreio_ops_total{core="0",kind="read"} 1234
 * All names begin with "coreio_"; totals end in "_total" and are of type
 * counter, the "now" fields are gauges.  pool_queued, being the whole
 * process's, is written once, from st[0], without a core label.  Never
 * blocks; callable anywhere.
 *
 * Returns the length of the whole text, not counting the NUL, as
 * snprintf(3) does: when it is len or more, buf holds only its first
 * len - 1 bytes (and a NUL, when len > 0).  -EINVAL when st is NULL with
 * n > 0, or buf is NULL with len > 0. */
CIO_API ssize_t cio_stats_format(char *buf, size_t len, const cio_stats *st, size_t n);

/* Blocking.  cio_stats_get_all() for every core, then cio_stats_format():
 * the text a metrics endpoint serves.  Returns as cio_stats_format(), or
 * -ENOMEM, -ECANCELED, -ETIMEDOUT. */
CIO_API ssize_t cio_stats_dump(char *buf, size_t len);

/* ===================================================================== */
/*  Tasks                                                                 */
/* ===================================================================== */

/* A task id.  Positive for a task; a negative value from cio_spawn() is a
 * negated errno.  Ids are generation-checked: once a task is joined (or,
 * detached, has finished) its id is refused by every call, even after its
 * slot is reused. */
typedef int64_t cio_task_t;

typedef struct cio_spawn_opts {
	const char *name;  /* copied; shown in diagnostics; NULL: none */
	size_t stack_size; /* bytes, rounded up to pages; 0: runtime default */
	bool detached;     /* no join: its resources go when it finishes */
} cio_spawn_opts;

/* Starts `fn(arg)` as a new task on the calling thread's runtime.  It runs
 * after the caller parks or yields; tasks run in the order they became
 * runnable.  May be called from a task or from the thread's scheduler
 * (e.g. in a runtime's main); not from another thread.
 *
 * Returns the task's id, or -ENOMEM when no stack could be mapped (the
 * runtime keeps running), -EINVAL for a stack size below 16 KiB or above
 * 1 GiB, or -EPERM outside a runtime. */
CIO_API cio_task_t cio_spawn(cio_fn *fn, void *arg);
CIO_API cio_task_t cio_spawn_with(const cio_spawn_opts *opts, cio_fn *fn,
				  void *arg);

/* Blocking.  Waits for task `t` to finish and stores its return value in
 * *result (if result is not NULL).  The id is then spent.
 *
 * Returns 0, or -ESRCH (no such task: unknown, already joined, or detached
 * and finished), -EINVAL (detached, or another task is already joining it),
 * -EDEADLK (t is the caller), -ECANCELED, -ETIMEDOUT.  An interrupted join
 * leaves the task joinable. */
CIO_API int cio_join(cio_task_t t, void **result);

/* Makes task `t` detached: it will not be joined, and its resources go as
 * soon as it finishes.  Returns 0, -ESRCH, or -EINVAL if already detached
 * or being joined. */
CIO_API int cio_detach(cio_task_t t);

/* Lets every task that is runnable now run once, then returns.  I/O and
 * timers are polled before the caller runs again, so a task that yields in
 * a loop does not starve them.  Returns 0, or -ECANCELED / -ETIMEDOUT like
 * every blocking call (the yield still happens). */
CIO_API int cio_yield(void);

/* Id of the calling task, or 0 outside a task. */
CIO_API cio_task_t cio_self(void);

/* Name given at spawn, or "" (never NULL) for the calling task. */
CIO_API const char *cio_task_name(void);

/* --- stall reports ----------------------------------------------------- */
/* A task that runs longer than its runtime's stall_ns (cio_config; or
 * COREIO_STALL_MS, in milliseconds) without parking or yielding holds up
 * every other task of its core.  When stall reports are on, one watchdog
 * thread per process looks at each such runtime every quarter of its
 * limit (at most every 250 ms); on finding a task that has run past the
 * limit since the core's last switch it sends SIGURG to that core's
 * thread, whose handler takes a backtrace of where the task is and
 * reports it: at most once a second per core, again each second while
 * the task keeps running.  The report goes to the hook set with
 * cio_stall_hook(), or else to stderr as
 *     coreio: stall: core 0 task 4294967298 "spin" running 212 ms without parking
 * followed by the backtrace (backtrace_symbols_fd(3); build with
 * -rdynamic for function names; none where the C library has no
 * backtrace()).  Each report also counts in cio_stats.stalls.
 *
 * The handler is installed on the first runtime that has reports on,
 * with SA_RESTART, and stays; a SIGURG it did not ask for goes on to the
 * handler installed before it.  A system call the stalled task is blocked
 * in that SA_RESTART does not restart (a sleep, poll(2)) returns EINTR.  With reports off (the default) there is
 * no thread, no handler and no cost.  A runtime's scheduler context (its
 * timers, its messages) is never reported, only tasks. */

/* What a stall report says.  Valid during the hook's call only. */
typedef struct cio_stall_info {
	int core;            /* cio_core_id() of the stalled core */
	cio_task_t task;     /* the task that runs */
	const char *name;    /* its name, "" if none */
	int64_t running_ns;  /* since the core last switched, at least */
	void *const *frames; /* return addresses where it was, innermost first */
	int nframes;         /* 0 where there is no backtrace() */
} cio_stall_info;

/* Runs in a signal handler on the stalled core's thread, in the middle of
 * the stalled task: it may only make async-signal-safe calls (write(2),
 * backtrace_symbols_fd(3), atomic stores), and must not touch coreio. */
typedef void cio_stall_fn(const cio_stall_info *info, void *arg);

/* Sends stall reports to fn(info, arg) instead of stderr; fn NULL puts
 * stderr back.  Process-wide; callable from any thread, best before the
 * runtimes start (a report under way may still see the old hook). */
CIO_API void cio_stall_hook(cio_stall_fn *fn, void *arg);

/* ===================================================================== */
/*  Time                                                                  */
/* ===================================================================== */

/* Monotonic time in nanoseconds (CLOCK_MONOTONIC). */
CIO_API int64_t cio_now(void);

/* Blocking.  Sleeps `ns` nanoseconds (<= 0 yields).  Returns 0, or
 * -ECANCELED / -ETIMEDOUT when interrupted (a deadline earlier than the
 * wake-up time ends the sleep with -ETIMEDOUT at the deadline). */
CIO_API int cio_sleep(int64_t ns);

/* Blocking.  Sleeps until cio_now() >= `at`.  Returns as cio_sleep(). */
CIO_API int cio_sleep_until(int64_t at);

/* A periodic tick that keeps its phase: ticks fall on start + k * period,
 * and ticks missed while the task was busy are skipped, not bunched. */
typedef struct cio_interval {
	int64_t next;   /* next tick, cio_now() clock */
	int64_t period; /* ns */
} cio_interval;

/* Starts an interval whose first tick is `period` ns from now.  Returns 0,
 * or -EINVAL if period <= 0. */
CIO_API int cio_interval_init(cio_interval *iv, int64_t period);

/* Blocking.  Sleeps until the interval's next tick.  Returns the number of
 * ticks that elapsed since the previous return (1 when on time, more when
 * ticks were skipped), or -ECANCELED / -ETIMEDOUT. */
CIO_API int64_t cio_interval_wait(cio_interval *iv);

/* ===================================================================== */
/*  Deadlines and cancellation                                            */
/* ===================================================================== */

/* Enters a deadline scope: until the matching cio_deadline_pop(), every
 * blocking call of the calling task returns -ETIMEDOUT once cio_now()
 * reaches `deadline` (absolute, cio_now() clock).  Scopes nest: an inner
 * scope can shorten the deadline, never extend it.  The rule covers every
 * blocking call the task makes, including those made inside third-party
 * code it calls.  CIO_WITH_DEADLINE() below cannot be left unpopped.
 *
 * Returns a token (> 0), unique within the task, to give to
 * cio_deadline_pop(); or -ENOMEM when a scope nested deeper than four
 * found no memory: then no scope was entered, and popping the negative
 * token does nothing.  Outside a task, aborts. */
CIO_API int64_t cio_deadline_push(int64_t deadline);

/* As cio_deadline_push(cio_now() + timeout). */
CIO_API int64_t cio_timeout_push(int64_t timeout_ns);

/* Leaves the deadline scope `token` opened, which must be the innermost.
 * Returns 0.  Misuse is caught: a debug build of the library (NDEBUG not
 * defined) aborts with a message naming the task; otherwise the call
 * returns -EINVAL, having left the scope and every scope inside it when
 * `token` was an outer one (so no inner, shorter deadline stays in force),
 * or changed nothing when `token` is not pushed.  A task that ends with a
 * scope still pushed is caught the same way (a debug build aborts). */
CIO_API int cio_deadline_pop(int64_t token);

/* Enters a shield scope, for cleanup that must run to completion
 * (closing a TLS session, flushing a log): until the matching
 * cio_deadline_pop(), a cancellation does not interrupt the task's
 * blocking calls (one that comes is kept, and interrupts the first
 * blocking call after the pop), and the deadline is cio_now() + timeout_ns,
 * in place of any outer one, so the cleanup is bounded by its own time.
 * Returns a token for cio_deadline_pop(), with the rules of the deadline
 * scopes; CIO_SHIELDED() below cannot leak. */
CIO_API int64_t cio_shield_push(int64_t timeout_ns);

/* Whether the deadline in force inside scope `token` (still pushed) has
 * passed: after a call returned -ETIMEDOUT, tells that scope's deadline
 * apart from an outer one's and from the kernel's own timeouts (a TCP
 * connection that timed out is -ETIMEDOUT too). */
CIO_API bool cio_deadline_expired(int64_t token);

/* Runs the statement or block that follows in a deadline (or shield) scope, popped
 * however the block is left (its end, break, return, goto): it cannot
 * leak.  For gcc and clang (the cleanup attribute).
 *
 *   CIO_WITH_TIMEOUT(2 * CIO_SEC) {
 *           n = cio_recv(fd, buf, sizeof buf, 0);
 *   }
 */
#define CIO_WITH_DEADLINE(deadline) CIO_SCOPE_(cio_deadline_push(deadline), __LINE__)
#define CIO_WITH_TIMEOUT(timeout_ns) CIO_SCOPE_(cio_timeout_push(timeout_ns), __LINE__)
#define CIO_SHIELDED(timeout_ns) CIO_SCOPE_(cio_shield_push(timeout_ns), __LINE__)

typedef struct cio_scope_ {
	int64_t token;
	int once;
} cio_scope_;
static inline void cio_scope_end_(cio_scope_ *s)
{
	cio_deadline_pop(s->token);
}
#define CIO_CAT_(a, b) a##b
#define CIO_SCOPE_(push, line) CIO_SCOPE2_(push, CIO_CAT_(cio_scope_at_, line))
#define CIO_SCOPE2_(push, v)                                                   \
	for (cio_scope_ v __attribute__((cleanup(cio_scope_end_))) = {(push), 1}; \
	     v.once; v.once = 0)

/* The calling task's effective deadline, or CIO_NEVER. */
CIO_API int64_t cio_deadline(void);

/* Requests cancellation of task `t`: its current blocking call (if any)
 * and every later one return -ECANCELED, until the task finishes or calls
 * cio_cancel_clear().  A task may cancel itself.  Returns 0 or -ESRCH. */
CIO_API int cio_cancel(cio_task_t t);

/* Whether a cancellation request stands against the calling task. */
CIO_API bool cio_cancelled(void);

/* Withdraws a cancellation request against the calling task, so that it
 * can block again (for cleanup, say).  Returns whether one stood. */
CIO_API bool cio_cancel_clear(void);

/* ===================================================================== */
/*  Network and stream I/O                                                */
/* ===================================================================== */
/* File descriptors are plain ints.  Every call below that can block is a
 * blocking call in the sense of this header: it parks only the calling
 * task and obeys deadlines and cancellation.  A call interrupted that way
 * returns -ETIMEDOUT / -ECANCELED only once the kernel has let go of its
 * buffers; a transfer that completed in the meantime returns its result
 * instead (no byte is lost), and the next blocking call reports the
 * interruption.  While a task is blocked on an fd, cio_close() of that fd
 * by another task wakes it with -EBADF.
 *
 * fds made by coreio are non-blocking and close-on-exec.  Close them with
 * cio_close(), not close(): the runtime keeps per-fd state.  SIGPIPE is
 * never raised by coreio's sends; cio_run() also sets SIGPIPE to SIG_IGN
 * if it was SIG_DFL, so that write() on a broken pipe returns -EPIPE. */

/* A socket address of any family coreio speaks. */
typedef struct cio_addr {
	socklen_t len;
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		struct sockaddr_un un;
		struct sockaddr_storage ss;
	} u;
} cio_addr;

/* Parses text into *a: "1.2.3.4:80", "[::1]:80", "unix:/path/to/sock", or
 * "unix:@name" for a Linux abstract socket.  Numeric hosts only (resolve
 * names first).  Returns 0, or -EINVAL for anything malformed (bad digits,
 * port > 65535, missing port, path too long). */
CIO_API int cio_addr_parse(cio_addr *a, const char *text);

/* Writes a in the same notation into buf (NUL-terminated).  Returns the
 * length, or -ENOSPC if cap is too small, -EAFNOSUPPORT. */
CIO_API int cio_addr_format(const cio_addr *a, char *buf, size_t cap);

/* --- sockets ----------------------------------------------------------- */

typedef struct cio_listen_opts {
	int backlog;      /* 0: SOMAXCONN */
	bool reuseport;   /* SO_REUSEPORT: one listener per core on one port */
	int type;         /* 0: SOCK_STREAM; or SOCK_SEQPACKET, SOCK_DGRAM */
} cio_listen_opts;

/* Creates a listening socket bound to addr (TCP for IP addresses, a Unix
 * socket for "unix:"), with SO_REUSEADDR for IP, and listens (not for
 * SOCK_DGRAM, which is just bound).  An existing Unix socket file at the
 * path is not removed.  opts may be NULL.  On a runtime, the drain shuts
 * the listener down (see cio_drain()); one made once the drain has begun
 * is shut down at once.  Returns the fd, or -EINVAL (bad address),
 * -EADDRINUSE, -EACCES, -EMFILE, -ENOMEM, ... */
CIO_API int cio_listen(const char *addr, const cio_listen_opts *opts);

/* Blocking.  Waits for a connection on listening socket fd; returns the new
 * fd (non-blocking, close-on-exec) and fills *peer if not NULL.  Errors:
 * -EBADF, -EINVAL (not listening), -ESHUTDOWN (a drain shut the listener
 * down: close it and stop accepting), -ECANCELED, -ETIMEDOUT, and -EMFILE /
 * -ENFILE when out of fds: the connection stays queued, and the call
 * pauses (about 10 ms, within the deadline) before failing so that a loop
 * retrying at once does not spin. */
CIO_API int cio_accept(int fd, cio_addr *peer);

/* Blocking.  Creates a socket of `type` (0: SOCK_STREAM) and connects it
 * to addr, within the task's deadline.  Returns the fd, or -EINVAL,
 * -ECONNREFUSED, -ENETUNREACH, -ETIMEDOUT (also a deadline passing while
 * the handshake waits), -ECANCELED, ...; no fd is left open on failure. */
CIO_API int cio_connect(const char *addr, int type);

/* Blocking.  Connects an existing socket to a. */
CIO_API int cio_connect_addr(int fd, const cio_addr *a);

/* A non-blocking, close-on-exec socket(2).  Returns the fd or -errno. */
CIO_API int cio_socket(int domain, int type, int protocol);

/* A UDP socket bound to addr ("0.0.0.0:0" for any port).  Returns the fd
 * or -errno. */
CIO_API int cio_udp_bind(const char *addr);

/* A connected pair of Unix sockets of `type` (SOCK_STREAM, SOCK_DGRAM,
 * SOCK_SEQPACKET), non-blocking, close-on-exec.  Returns 0 or -errno. */
CIO_API int cio_socketpair(int type, int fds[2]);

/* A pipe: fds[0] reads, fds[1] writes; non-blocking, close-on-exec. */
CIO_API int cio_pipe(int fds[2]);

/* Closes fd.  Tasks blocked on fd wake with -EBADF.  Returns 0 or -EBADF.
 * Not a blocking call in the deadline sense: it always closes. */
CIO_API int cio_close(int fd);

/* Makes coreio forget what it knew of the file that had this number,
 * for fds made outside coreio (by another library) before their first
 * use with coreio.  Returns 0. */
CIO_API int cio_fd_adopt(int fd);

/* --- lent buffers ----------------------------------------------------------- */

/* Buffers the runtime lends: a task that waits for bytes holds no buffer
 * of its own, and one that got bytes holds them until it gives them back.
 * A connection parked in cio_recv_buf() costs no buffer memory at all.
 *
 * Ownership: cio_recv_buf() lends a buffer to the calling task; it is
 * the task's (or whichever task of the same runtime it hands it to) until
 * cio_buf_release() or cio_send_buf() gives it back, whatever happens
 * meanwhile (cancels, deadlines, the fd's close).  A buffer belongs to the
 * runtime that lent it: giving it back from another runtime or thread
 * aborts.  The buffers out at once are bounded per runtime (buf_budget);
 * past it, cio_recv_buf() fails with -ENOBUFS rather than use more
 * memory.
 *
 * On io_uring the kernel receives into a ring of these buffers, and
 * where it can (Linux 6.12) it consumes them incrementally: a small
 * receive takes a slice of a buffer rather than all of it, so messages
 * of many connections share buffers, and a message may come in two
 * receives where it lies across two.  A slice has no room beyond its
 * bytes (cap == len). */
typedef struct cio_buf {
	char *data;  /* the bytes */
	size_t len;  /* how many; may be changed (shortened) by the holder */
	size_t cap;  /* room at data: buf_size, or len for a slice */
} cio_buf;

/* Blocking.  Receives from socket fd into a buffer of the runtime's: at
 * most cap bytes, as recv(2) with no flags.  Returns the bytes received,
 * with *out the buffer that holds them; 0 at end of stream, or -errno
 * (-ECONNRESET, -EBADF, -ENOTSOCK, -ECANCELED, -ETIMEDOUT, -ENOBUFS: the
 * runtime's budget of lent buffers is spent, -ENOMEM: for a slice's
 * record, after which every receive on fd fails so, rather than skip
 * bytes), with *out NULL.  No buffer is held while it waits. */
CIO_API ssize_t cio_recv_buf(int fd, cio_buf **out);

/* Gives a lent buffer back (NULL is ignored). */
CIO_API void cio_buf_release(cio_buf *b);

/* Blocking.  Sends b->data[0..len) whole on fd, as cio_send_all(), then
 * gives b back, whether the send succeeded or not.  Returns b's length, or
 * -errno (-EPIPE, -ECONNRESET, -ECANCELED, -ETIMEDOUT...) with *moved (if
 * not NULL) the bytes that did leave. */
CIO_API ssize_t cio_send_buf(int fd, cio_buf *b, size_t *moved);

/* Sends b whole on socket fd as cio_send_buf() does, but returns as soon
 * as the send is on its way, without waiting for it to leave: the task
 * goes on (to its next receive, say) while the kernel sends.  b is the
 * send's from the call on, and given back once the bytes are out or the
 * send failed.  One such send per fd is on its way at a time: a second
 * one, a plain send or write of fd, cio_send_flush() and
 * cio_shutdown(SHUT_WR) wait for the first (so bytes leave in order and a
 * peer that reads slowly still holds its sender back), and the first's
 * error is theirs to return; a send with MSG_DONTWAIT gets -EAGAIN while
 * it is on its way.  cio_recv_buf() and other reads never report it.  On
 * io_uring this saves the task a park per send; on epoll and kqueue,
 * where a send that finds room never parks, it is cio_send_buf().
 *
 * Returns 0 once on its way; or, with b given back unsent, -errno: the
 * error an earlier send of fd met (-EPIPE, -ECONNRESET...), -ECANCELED or
 * -ETIMEDOUT while waiting for it, -EBADF for a negative fd or one that
 * another task closed while this call waited.  On io_uring
 * the errors of this send itself (-EBADF for a closed fd, -ENOTSOCK...)
 * come from the next call; on epoll and kqueue from this one.  Blocking
 * only while an earlier send of fd is still on its way.
 *
 * cio_close() does not wait for the send: it goes on alone, as a closed
 * socket's writes do in the kernel, and is cancelled if it has not left
 * within 5 s (a peer that reads nothing holds no buffer and no socket for
 * longer; at once if the runtime has no memory for that timer); its
 * error is lost, and tasks waiting for it wake with -EBADF.
 * A runtime whose last task ended cancels the sends still on their way:
 * call cio_send_flush() before main returns to be sure they left.  The
 * fd must be used on the runtime that sent until the send is out. */
CIO_API int cio_send_buf_nowait(int fd, cio_buf *b);

/* Blocking.  Waits until no send of cio_send_buf_nowait() is on its way
 * out of fd.  Returns 0, the error such a send met (reported once:
 * -EPIPE, -ECONNRESET...), -ECANCELED / -ETIMEDOUT (the send goes on),
 * -EBADF for a negative fd or when fd is closed meanwhile. */
CIO_API int cio_send_flush(int fd);

/* --- transfers ----------------------------------------------------------- */

/* Blocking.  As recv(2)/send(2): returns bytes moved (0 from recv at end
 * of stream), or -errno: -ECONNRESET, -EPIPE (peer gone; never SIGPIPE),
 * -EBADF, -ECANCELED, -ETIMEDOUT.  A send may be short.  With
 * MSG_DONTWAIT in flags (these and the msg forms) the call makes one try
 * and never waits for the peer: -EAGAIN when it would have; bytes a lent
 * receive (cio_recv_buf()) left queued on the fd come first. */
CIO_API ssize_t cio_recv(int fd, void *buf, size_t len, int flags);
CIO_API ssize_t cio_send(int fd, const void *buf, size_t len, int flags);

/* Blocking.  Sends all len bytes, looping over short sends.  Returns len,
 * or -errno; *moved (if not NULL) holds how many bytes went either way
 * (see the top of this header). */
CIO_API ssize_t cio_send_all(int fd, const void *buf, size_t len, int flags,
			     size_t *moved);

/* Blocking.  Receives exactly len bytes.  Returns len, or -EPIPE when the
 * stream ended first, or another -errno; *moved (if not NULL) holds how
 * many bytes arrived either way. */
CIO_API ssize_t cio_recv_exact(int fd, void *buf, size_t len, int flags,
			       size_t *moved);

/* Blocking.  read(2), write(2), readv(2), writev(2) on any fd coreio can
 * wait on (sockets, pipes, terminals, eventfds).  Results as cio_recv. */
CIO_API ssize_t cio_read(int fd, void *buf, size_t len);
CIO_API ssize_t cio_write(int fd, const void *buf, size_t len);
CIO_API ssize_t cio_readv(int fd, const struct iovec *iov, int iovcnt);
CIO_API ssize_t cio_writev(int fd, const struct iovec *iov, int iovcnt);

/* Blocking.  recvmsg(2) / sendmsg(2), with ancillary data. */
CIO_API ssize_t cio_recvmsg(int fd, struct msghdr *msg, int flags);
CIO_API ssize_t cio_sendmsg(int fd, const struct msghdr *msg, int flags);

/* Blocking.  Datagrams to / from an address (NULL: connected socket, or
 * ignore the sender).  Returns the datagram's size or -errno. */
CIO_API ssize_t cio_sendto(int fd, const void *buf, size_t len, int flags,
			   const cio_addr *to);
CIO_API ssize_t cio_recvfrom(int fd, void *buf, size_t len, int flags,
			     cio_addr *from);

/* Blocking.  Sends data with 1 to 253 fds attached (SCM_RIGHTS) over a
 * Unix socket.  len must be >= 1.  Returns bytes sent or -errno (-EINVAL
 * for no fds, more than 253, or len 0). */
CIO_API ssize_t cio_send_fds(int fd, const void *buf, size_t len,
			     const int *fds, size_t nfds);

/* Blocking.  Receives data and up to *nfds attached fds (made close-on-
 * exec); on return *nfds holds how many came.  Fds beyond the room given
 * are closed, never leaked, and not reported: give room for as many as
 * the peer may send.  Returns bytes received or -errno. */
CIO_API ssize_t cio_recv_fds(int fd, void *buf, size_t len, int *fds,
			     size_t *nfds);

/* Shuts down one or both directions (SHUT_RD, SHUT_WR, SHUT_RDWR).
 * Returns 0 or -errno (-ENOTCONN).  Shutting down the sending side first
 * waits for a send of cio_send_buf_nowait() on its way, and returns its
 * error (or -ECANCELED / -ETIMEDOUT if that wait was cut short: the
 * shutdown is made anyway; -EBADF if another task closed fd meanwhile:
 * it is not).  Off a task it does not wait. */
CIO_API int cio_shutdown(int fd, int how);

/* --- readiness ------------------------------------------------------------ */

/* Blocking.  Waits until fd is readable / writable (or has an error or
 * hang-up to report), so that non-blocking third-party code (OpenSSL,
 * c-ares, libpq) can run in a task: call it after that code says it would
 * block.  Returns the poll(2) revents (> 0), or -EBADF, -ECANCELED,
 * -ETIMEDOUT. */
CIO_API int cio_wait_readable(int fd);
CIO_API int cio_wait_writable(int fd);

/* --- socket options --------------------------------------------------------- */

/* TCP_NODELAY on or off.  Returns 0 or -errno. */
CIO_API int cio_tcp_nodelay(int fd, bool on);

/* SO_KEEPALIVE with the first probe after idle_s seconds, then every
 * interval_s, dropping after count misses; idle_s 0 turns it off. */
CIO_API int cio_tcp_keepalive(int fd, int idle_s, int interval_s, int count);

/* SO_RCVBUF / SO_SNDBUF in bytes; 0 leaves one as it is. */
CIO_API int cio_sock_buffers(int fd, int rcvbuf, int sndbuf);

/* ===================================================================== */
/*  Files and zero-copy transfers                                         */
/* ===================================================================== */
/* File calls are blocking calls in the sense of this header.  On io_uring
 * they are the kernel's own asynchronous operations (OPENAT, READ, WRITE,
 * FSYNC, FALLOCATE, STATX, RENAMEAT, UNLINKAT, MKDIRAT, SYMLINKAT, LINKAT,
 * FTRUNCATE, probed when the ring starts); an operation the kernel lacks,
 * and every file call on epoll, runs on the blocking pool instead.  On
 * epoll a read or write that the page cache can serve at once
 * (RWF_NOWAIT) is made on the spot, without the pool.
 *
 * Interruption follows the rule for sockets: a cancelled or late call
 * returns -ECANCELED / -ETIMEDOUT only once the kernel (or the pool
 * thread) has let go of its buffers and paths, so they may live on the
 * task's stack.  An operation already running is waited for, and when it
 * completed its real result is returned (a write that happened is
 * reported); the interruption then shows on the next blocking call.
 *
 * Offsets are int64_t and may pass 4 GiB.  Errors are negated errnos as
 * the matching system call gives them: -ENOENT, -EACCES, -EISDIR,
 * -ENOTDIR, -EEXIST, -ENOSPC, -EBADF, -EINVAL (O_DIRECT misalignment
 * among others), plus -ECANCELED and -ETIMEDOUT, and -EBUSY when a call
 * bound for the blocking pool finds its queue full (a queue limit set
 * with cio_blocking_config()).  Close files with cio_close(). */

#ifdef __linux__
struct statx; /* <sys/stat.h> with _GNU_SOURCE (glibc 2.28, musl 1.2.5) */
#else
/* Linux's struct statx, for cio_statx() where the C library has none: the
 * kernel's layout, and the STATX_* bits of the fields that cio_statx()
 * can fill there (the basic stats). */
struct statx_timestamp {
	int64_t tv_sec;
	uint32_t tv_nsec;
	int32_t cio_reserved_;
};
struct statx {
	uint32_t stx_mask;
	uint32_t stx_blksize;
	uint64_t stx_attributes;
	uint32_t stx_nlink;
	uint32_t stx_uid;
	uint32_t stx_gid;
	uint16_t stx_mode;
	uint16_t cio_spare0_;
	uint64_t stx_ino;
	uint64_t stx_size;
	uint64_t stx_blocks;
	uint64_t stx_attributes_mask;
	struct statx_timestamp stx_atime, stx_btime, stx_ctime, stx_mtime;
	uint32_t stx_rdev_major, stx_rdev_minor;
	uint32_t stx_dev_major, stx_dev_minor;
	uint64_t stx_mnt_id;
	uint32_t stx_dio_mem_align, stx_dio_offset_align;
	uint64_t cio_spare3_[12];
};
#define STATX_TYPE 0x0001U
#define STATX_MODE 0x0002U
#define STATX_NLINK 0x0004U
#define STATX_UID 0x0008U
#define STATX_GID 0x0010U
#define STATX_ATIME 0x0020U
#define STATX_MTIME 0x0040U
#define STATX_CTIME 0x0080U
#define STATX_INO 0x0100U
#define STATX_SIZE 0x0200U
#define STATX_BLOCKS 0x0400U
#define STATX_BASIC_STATS 0x07ffU
#define STATX_DIOALIGN 0x2000U /* never filled there */
#endif

/* Blocking.  openat(2) relative to dirfd (AT_FDCWD: the working
 * directory); O_CLOEXEC is always added.  Returns the new fd or -errno. */
CIO_API int cio_openat(int dirfd, const char *path, int flags, mode_t mode);

/* Blocking.  cio_openat(AT_FDCWD, path, flags, mode). */
CIO_API int cio_open(const char *path, int flags, mode_t mode);

/* Blocking.  pread(2) / pwrite(2) at offset off (>= 0; the file position
 * is neither used nor moved).  Returns bytes moved, 0 from a read at or
 * past the end of the file, or -errno (-EINVAL for off < 0).  Either may
 * be short; see cio_read_all() and cio_write_all().  For seekable files:
 * on a pipe, socket or terminal they return -ESPIPE, as pread(2) does, on
 * every backend; use cio_read() / cio_write() on streams. */
CIO_API ssize_t cio_pread(int fd, void *buf, size_t len, int64_t off);
CIO_API ssize_t cio_pwrite(int fd, const void *buf, size_t len, int64_t off);

/* Blocking.  preadv(2) / pwritev(2) at offset off; as cio_pread(). */
CIO_API ssize_t cio_preadv(int fd, const struct iovec *iov, int iovcnt, int64_t off);
CIO_API ssize_t cio_pwritev(int fd, const struct iovec *iov, int iovcnt, int64_t off);

/* Blocking.  Reads len bytes from offset off, looping over short reads.
 * Returns the bytes read, fewer than len only when the file ended, or
 * -errno; *moved (if not NULL) holds how many bytes were read into buf,
 * from off on, either way. */
CIO_API ssize_t cio_read_all(int fd, void *buf, size_t len, int64_t off,
			     size_t *moved);

/* Blocking.  Writes all len bytes at offset off, looping over short
 * writes.  Returns len, or -errno; *moved (if not NULL) holds how many
 * bytes were written, from off on, either way. */
CIO_API ssize_t cio_write_all(int fd, const void *buf, size_t len, int64_t off,
			      size_t *moved);

/* Blocking.  fsync(2) / fdatasync(2).  Returns 0 or -errno (-EIO). */
CIO_API int cio_fsync(int fd);
CIO_API int cio_fdatasync(int fd);

/* Blocking.  fallocate(2): mode 0 reserves [off, off + len) and grows the
 * file; FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE... as the file system
 * allows.  Returns 0 or -errno (-ENOSPC, -EOPNOTSUPP).  Off Linux (and
 * in a COREIO_PORTABLE build) mode 0 is posix_fallocate(3) and any other
 * mode -EOPNOTSUPP. */
CIO_API int cio_fallocate(int fd, int mode, int64_t off, int64_t len);

/* Blocking.  ftruncate(2) to len bytes.  Returns 0 or -errno. */
CIO_API int cio_ftruncate(int fd, int64_t len);

/* Blocking.  statx(2): dirfd and path as for openat (AT_EMPTY_PATH in
 * flags with path "" for dirfd itself), mask the STATX_* fields wanted.
 * Returns 0 and fills *st, or -errno.  Off Linux (and in a
 * COREIO_PORTABLE build) it is fstatat(2), and stx_mask says that only
 * STATX_BASIC_STATS were filled, whatever was asked (no birth time, no
 * STATX_DIOALIGN). */
CIO_API int cio_statx(int dirfd, const char *path, int flags, unsigned mask,
		      struct statx *st);

/* Blocking.  renameat2(2), unlinkat(2) (AT_REMOVEDIR in flags removes a
 * directory), mkdirat(2), symlinkat(2), linkat(2).  Return 0 or -errno.
 * Off Linux (and in a COREIO_PORTABLE build) cio_renameat() is
 * renameat(2): flags (RENAME_NOREPLACE, RENAME_EXCHANGE) give -EINVAL. */
CIO_API int cio_renameat(int olddirfd, const char *oldpath, int newdirfd,
			 const char *newpath, unsigned flags);
CIO_API int cio_unlinkat(int dirfd, const char *path, int flags);
CIO_API int cio_mkdirat(int dirfd, const char *path, mode_t mode);
CIO_API int cio_symlinkat(const char *target, int newdirfd, const char *linkpath);
CIO_API int cio_linkat(int olddirfd, const char *oldpath, int newdirfd,
		       const char *newpath, int flags);

/* Blocking.  The same, relative to the working directory. */
CIO_API int cio_rename(const char *oldpath, const char *newpath);
CIO_API int cio_unlink(const char *path);
CIO_API int cio_mkdir(const char *path, mode_t mode);
CIO_API int cio_rmdir(const char *path);
CIO_API int cio_symlink(const char *target, const char *linkpath);
CIO_API int cio_link(const char *oldpath, const char *newpath);

/* --- O_DIRECT ------------------------------------------------------------ */

/* The alignment O_DIRECT needs on fd: of memory (*mem_align) and of file
 * offsets and lengths (*off_align), from statx's STATX_DIOALIGN (Linux
 * 6.1), else the page size (which suits every device).  Either pointer
 * may be NULL.  Returns 0, -EBADF, or -EINVAL when the file system takes
 * no O_DIRECT (both set to 0).  Not a blocking call: it never parks.
 * Where the system has no O_DIRECT (macOS) it is always -EINVAL.  Off
 * Linux (and in a COREIO_PORTABLE build) O_DIRECT reads and writes go to
 * the blocking pool like any file call on epoll or kqueue; files are never
 * tried without it first (there is no RWF_NOWAIT). */
CIO_API int cio_dio_align(int fd, size_t *mem_align, size_t *off_align);

/* Memory for O_DIRECT transfers: size bytes aligned to align (0: the page
 * size, which suits every device), zero-filled, stored in *out.  Free with
 * free().  Returns 0, or -EINVAL (align not a power of two) or -ENOMEM
 * (*out is then NULL). */
CIO_API int cio_alloc_aligned(void **out, size_t size, size_t align);

/* --- zero-copy ------------------------------------------------------------ */

/* Blocking.  splice(2): moves up to len bytes from in to out inside the
 * kernel; one of the two must be a pipe.  off_in / off_out are file
 * offsets for a regular file, or -1 (a pipe or socket; a file's position).
 * Returns bytes moved, 0 when in is at its end, or -errno (-EINVAL when
 * neither is a pipe, -EPIPE, -ECONNRESET, -ECANCELED, -ETIMEDOUT).  A
 * call interrupted after moving bytes returns them, as a transfer does.
 *
 * Where the system has no splice(2) (off Linux, and in a COREIO_PORTABLE
 * build) it copies instead: one read of up to 16 KiB (a buffer on the
 * task's stack) at off_in, then writes until all of it is at out (at
 * off_out), parking on readiness or running on the blocking pool for a
 * file.  Any two fds will do, neither need be a pipe; an offset on a
 * stream is -ESPIPE.  A short write loses nothing, but an error or an
 * interruption after the read and before the last write loses the bytes
 * read and not written (the call returns those written, else the error). */
CIO_API ssize_t cio_splice(int in, int64_t off_in, int out, int64_t off_out,
			   size_t len);

/* Blocking.  Sends len bytes of the regular file `file`, from offset off,
 * to the stream socket (or pipe) out, through a pooled pipe with splice:
 * the bytes never enter user space.  Returns the bytes sent: len, or fewer
 * when the file ended first; or -errno; *moved (if not NULL) holds how
 * many bytes went either way.  -EINVAL when `file` is not a file.  Where
 * the system has no splice(2) (off Linux, and in a COREIO_PORTABLE build)
 * the bytes go through user space: a loop of cio_splice() copies, each
 * read on the blocking pool, then written. */
CIO_API ssize_t cio_sendfile(int out, int file, int64_t off, size_t len,
			     size_t *moved);

typedef struct cio_relay_opts {
	/* Ends the relay with -ETIMEDOUT once no byte has moved either way
	 * for this long (ns); 0: no idle limit.  The caller's deadline
	 * scope and cancellation bound the whole relay as well. */
	int64_t idle_timeout;
	/* Bytes moved per splice, and the pipes' capacity; 0: 64 KiB. */
	size_t chunk;
} cio_relay_opts;

typedef struct cio_relay_stats {
	uint64_t a_to_b, b_to_a; /* bytes delivered each way */
} cio_relay_stats;

/* Blocking.  Relays bytes both ways between the stream fds a and b
 * (sockets or pipes) until both directions end.  Each direction starts by
 * copying through a 16 KiB buffer; once a read fills it (a bulk flow) it
 * turns to splice through a pipe taken from a per-core pool, so that bulk
 * bytes never enter user space, and back to copying after small splices
 * (for a few hundred bytes a copy costs less than two splices); where
 * the system has no splice(2) (off Linux, and in a COREIO_PORTABLE build)
 * it always copies, and `chunk` is unused.  At most
 * one buffer or one pipe of bytes is in flight each way, so a slow reader
 * slows its writer instead of filling memory.  When one side ends its
 * stream, the other side's writing half is shut down (half-close is
 * passed on) and the other direction goes on.
 *
 * Returns 0 when both directions ended cleanly; else the first error of
 * either direction (-ECONNRESET, -EPIPE...), -ETIMEDOUT (idle limit or
 * deadline) or -ECANCELED, after stopping the other direction.  Neither
 * fd is closed: that is the caller's.  *st (if not NULL) holds the bytes
 * delivered each way, whatever the result.  opts may be NULL. */
CIO_API int cio_relay(int a, int b, const cio_relay_opts *opts,
		      cio_relay_stats *st);

/* ===================================================================== */
/*  Cores: one runtime per CPU, messages between them                     */
/* ===================================================================== */
/* Tasks never move between threads.  Runtimes cooperate only by messages:
 * a call runs a function as a task on another core, a post does so
 * without waiting, a cross-core channel (cio_xchan) carries elements.  A
 * message to a core that has stopped is refused with -ESHUTDOWN.  Work
 * that must block a thread goes to the blocking pool (cio_blocking()). */

typedef struct cio_cores_config {
	cio_config all;           /* settings of every core */
	const cio_config *core;   /* or one per core (an array of n); NULL */
	int64_t drain_timeout;    /* ns a drain waits before cancelling; 0: 5 s */
	bool no_signals;          /* leave SIGINT and SIGTERM alone */
	bool no_pin;              /* do not pin threads to CPUs */
} cio_cores_config;

/* Starts n runtimes, one per thread, each pinned to the next CPU of the
 * process's affinity mask (n = 0: one per such CPU), runs `main(arg)` as
 * the first task of every one of them, and returns once all have ended.
 * Unless no_signals, SIGINT and SIGTERM are blocked in every thread and
 * the first of them starts a drain (cio_drain()); a second, and each
 * one after it, cancels every task at once.
 *
 * Deadlocks.  When every core is stuck at once (no runnable task, no
 * timer, no I/O, nothing in its inbox) and nothing else can wake a task,
 * the group has deadlocked: each core reports it on stderr and cancels
 * its parked tasks, whose blocking calls return -ECANCELED, as cio_run()
 * does, and the run returns -EDEADLK once they have finished.  A core
 * that ended counts as stuck.  Waits on other cores (cio_core_call(),
 * cio_xchan, cio_xwg) do not keep a core from being stuck.  What may
 * still end a wait is never a deadlock:
 *   - a signal: a task in cio_signal_wait(), and, unless no_signals, one
 *     in cio_drain_wait() or a cio_select() on the drain (SIGINT or
 *     SIGTERM drains).  The signal watcher's own read does not count.
 *     With no_signals a drain can come only from a core: a waiter in
 *     cio_drain_wait() is stuck like any other (one in a cio_select() on
 *     the drain still counts as waiting for the outside);
 *   - a job of the blocking pool;
 *   - another thread: a plain thread may send on an xchan or done() an
 *     xwg, so while the process has a thread that is neither a core of
 *     the group, nor the thread in cio_run_cores(), nor one of coreio's
 *     (an idle pool thread, the stall watchdog, the signal helper), no
 *     deadlock is reported; once such threads have ended, it is, within
 *     a second.  Only Linux can count threads (/proc): elsewhere a group's
 *     deadlock is never reported.
 * If the only tasks left wait uninterruptibly, the process aborts, as
 * under cio_run().
 *
 * Returns 0, or a negated errno: -EINVAL (n < 0), -EBUSY (called from a
 * runtime), -EAGAIN (threads), or the error of a core that could not
 * start (-ENOMEM, or the forced backend's error); then no core runs.
 * A core whose main task cannot be spawned (-ENOMEM) starts the drain
 * of the others, and its error is returned once they have ended.
 * -EDEADLK: the group deadlocked (see above) and no core had another
 * error, which would be returned instead (the lowest core's). */
CIO_API int cio_run_cores(int n, cio_fn *main, void *arg);
CIO_API int cio_run_cores_with(const cio_cores_config *cfg, int n, cio_fn *main,
			       void *arg);

/* How many cores cio_run_cores(0, ...) would start: the CPUs of the
 * process's affinity mask (every online CPU where the system has none).
 * Callable anywhere, before a run too, to size per-core arrays; on a
 * core of cio_run_cores(), the mask the run started with.  Returns at
 * least 1, or -ENOMEM. */
CIO_API int cio_cores_available(void);

/* Index of the calling thread's core, 0 to cio_core_count() - 1; 0 in a
 * cio_run() runtime; -1 off any runtime. */
CIO_API int cio_core_id(void);

/* Number of cores of the calling thread's runtime group (1 for cio_run());
 * 0 off any runtime. */
CIO_API int cio_core_count(void);

/* Frees what an abandoned call or job owned: its argument (when the
 * call handed it over) and, when fn ran, the result fn returned (NULL when
 * fn never ran).  cio_core_call_drop(), cio_blocking_drop(). */
typedef void cio_drop_fn(void *arg, void *result);

/* Blocking.  Runs fn(arg) as a new task on core `core` (the caller's own
 * core works too) and waits for it; stores its result in *result (if not
 * NULL).  Returns 0, or -EINVAL (no such core), -ESHUTDOWN (that core has
 * stopped), -ENOMEM, -ECANCELED, -ETIMEDOUT.
 *
 * An interruption (cancel or deadline) while fn runs cancels fn's task
 * (cio_cancel() on its core) and waits, deaf to further interruptions,
 * until fn has returned: only then does the call return -ECANCELED or
 * -ETIMEDOUT, so `arg` may point into the caller's stack.  fn's result is
 * then dropped (cio_core_call_drop() frees it).  When fn returns just as
 * the call is interrupted, before the cancel was sent, the call returns 0
 * with the result, and the interruption shows on the next blocking call.
 * A caller already interrupted sends nothing: fn never runs. */
CIO_API int cio_core_call(int core, cio_fn *fn, void *arg, void **result);

/* cio_core_call() for calls whose result owns memory: when (and only
 * when) the call returns -ECANCELED or -ETIMEDOUT after fn ran,
 * drop(arg, r) runs once on the caller's core before the call returns (r:
 * fn's result).  When fn never ran, drop is not called. */
CIO_API int cio_core_call_drop(int core, cio_fn *fn, void *arg, cio_drop_fn *drop,
			       void **result);

/* Starts fn(arg) as a new task on core `core` without waiting.  Never
 * blocks.  Returns 0, or -EINVAL, -ESHUTDOWN, -ENOMEM. */
CIO_API int cio_core_post(int core, cio_fn *fn, void *arg);

/* Blocking.  Balanced accept: accepts connections on listening socket lfd
 * and hands each to the next core in turn (the caller's included), where
 * fn((void *)(intptr_t)fd) runs as a new detached task that owns the fd.
 * For servers that want connections spread evenly rather than by the
 * kernel's SO_REUSEPORT hash.  Passing errors (-EMFILE, -ECONNABORTED,
 * ...) are skipped; a connection for a core that has stopped goes to the
 * next one, or is closed.  Returns the error that ended accepting:
 * -ESHUTDOWN after a drain, -EBADF, -EINVAL, -ECANCELED, -ETIMEDOUT. */
CIO_API int cio_accept_spread(int lfd, cio_fn *fn);

/* --- graceful drain -------------------------------------------------------- */

/* Asks every core of the calling runtime's group (or the single runtime of
 * cio_run()) to drain: on each, listening sockets made by cio_listen() on
 * that core are shut down (new connections are refused; cio_accept()
 * returns -ESHUTDOWN; the fds stay open for their owners to close; a
 * listener made later on that core is shut down as it is made),
 * waiters in cio_drain_wait() wake, cio_draining() turns true, and after
 * the drain timeout every task still running is cancelled.  Never blocks;
 * may be called from a task or from the thread's scheduler context (a
 * message handler).  In a group, calls after the first change nothing.
 * Returns 0; -EPERM off a runtime; -ENOMEM for a lone runtime (cio_run)
 * out of memory (a group of cores never fails here). */
CIO_API int cio_drain(void);

/* Marks the calling task idle (true) or busy (false) for the drain: a
 * connection's task marks itself idle while it waits for the next request
 * and busy once a byte of one has come.  When a drain starts, idle tasks
 * are cancelled at once (their pending call returns -ECANCELED), while
 * busy ones get the drain timeout to finish; a task that marks itself
 * idle during a drain is cancelled then.  Tasks start busy.  Does nothing
 * outside a task. */
CIO_API void cio_drain_idle(bool idle);

/* Whether a drain was requested on the calling thread's core. */
CIO_API bool cio_draining(void);

/* Blocking.  Waits until a drain is requested.  Returns 0, -ECANCELED,
 * -ETIMEDOUT.  Under cio_run() only a task can request it: a runtime
 * whose tasks all wait here is deadlocked.  Under cio_run_cores() a
 * signal may (unless no_signals): a waiter here is never deadlocked. */
CIO_API int cio_drain_wait(void);

/* Blocking.  Waits for one of the signals in `set` and returns its number.
 * The signals must be blocked in every thread of the process (as
 * cio_run_cores() does for SIGINT and SIGTERM), or they may be delivered
 * elsewhere.  Returns the signal number, or -EINVAL, -EMFILE, -ECANCELED,
 * -ETIMEDOUT.  On Linux it reads a signalfd.  Elsewhere (and in a
 * COREIO_PORTABLE build) one helper thread per process, alive while any
 * task waits, takes the waited signals with sigwait() and hands each to
 * one waiter through a pipe; a signal it took that no waiter wants yet
 * is kept for the next one, and raised again when the last waiter goes,
 * so the process sees the same pending signals either way.  No signal
 * handler is installed. */
CIO_API int cio_signal_wait(const sigset_t *set);

/* --- the blocking pool ------------------------------------------------------- */
/* Work that must block a thread (getaddrinfo, a CPU-heavy job, a library
 * with no non-blocking interface) runs on the blocking pool: one per
 * process, made on first use, whose threads start on demand up to a
 * maximum (16 unless configured) and exit after 10 s without work.  Pool
 * threads block every signal.  A job runs on whichever pool thread is
 * free, in the order jobs were queued; while it runs, only the calling
 * task waits.
 *
 * An interrupted call (cancel or deadline) returns at once; its job is
 * abandoned: if it had not started it never runs; if it is running, it
 * runs to its end on its pool thread and its result is dropped.  So
 * `arg` (and whatever fn reaches through it) must stay valid until fn
 * returns, which may be after the caller's frame and even its runtime are
 * gone: pass heap memory and free it in a drop function (see
 * cio_blocking_drop()).  A function that never returns keeps its pool
 * thread busy for good; its caller can still be cancelled (a drain does
 * that at its deadline), so runtimes end, and the process can exit. */


/* Sizes the pool.  It runs two classes of job, each on at most
 * max_threads threads at once (0: 16) with at most max_queue of them
 * waiting (0: no limit): the users' (cio_blocking()) and the runtime's
 * own (file calls a backend hands to the pool, cio_getaddrinfo()), which
 * are taken first; so neither waits behind the other, and the pool has
 * at most 2 * max_threads threads.  Only before the pool's first use:
 * returns 0, or -EBUSY once a job was submitted. */
CIO_API int cio_blocking_config(size_t max_threads, size_t max_queue);

/* Not a task's call: for a program's end, once its runtimes have ended.
 * Makes the pool's threads exit, idle ones at once, busy ones once their
 * jobs (abandoned ones too) return, and waits up to timeout_ns for the
 * last, so that a leak checker or a thread count sees none left.  A later
 * job starts threads again.  Returns 0 (no thread left), or -ETIMEDOUT
 * (some job still runs). */
CIO_API int cio_blocking_shutdown(int64_t timeout_ns);

/* Blocking.  Runs fn(arg) on a pool thread and stores its return value in
 * *result (if not NULL).  Returns 0, or:
 *   -EINVAL     fn is NULL;
 *   -ENOMEM     no memory for the job;
 *   -EBUSY      the pool cannot take the job: its queue holds max_queue
 *               jobs already (only with a limit set; without one, a
 *               caller waits, parked, for a thread to free up: use a
 *               deadline to bound that wait), or no thread could be
 *               started and none runs.  Every call that uses the pool
 *               (file calls on a readiness backend, cio_getaddrinfo())
 *               reports it the same way;
 *   -ECANCELED, -ETIMEDOUT: the job was abandoned, as described above.
 * When the job finishes just as the call is interrupted, the call returns
 * 0 with the result (the interruption shows on the next blocking call). */
CIO_API int cio_blocking(cio_fn *fn, void *arg, void **result);

/* cio_blocking() for jobs that own memory.  When (and only when) the call
 * returns -ECANCELED or -ETIMEDOUT, drop(arg, r) runs exactly once: on the
 * pool thread once fn returns (r: its result), or before the call returns
 * if fn never ran (r: NULL).  On every other return drop is not called and
 * arg is the caller's again. */
CIO_API int cio_blocking_drop(cio_fn *fn, void *arg, cio_drop_fn *drop,
			      void **result);

/* From a job's fn, on its pool thread: whether the call that queued it
 * returned -ECANCELED or -ETIMEDOUT, so that nobody waits for the result
 * (which is dropped): a long job can check it and stop early.  False
 * anywhere else, and for the pool jobs of file calls, which are always
 * waited for.  The answer lives in the pool's record of the job, not in
 * arg, which the job may no longer own once abandoned. */
CIO_API bool cio_blocking_abandoned(void);

/* The pool's state now: for monitoring and tests. */
typedef struct cio_blocking_stats {
	size_t threads;     /* pool threads alive */
	size_t idle;        /* of them, waiting for a job */
	size_t running;     /* jobs running (abandoned ones included), both classes */
	size_t queued;      /* jobs waiting for a thread, both classes */
	size_t max_threads, max_queue; /* the configuration (0: no limit) */
} cio_blocking_stats;
CIO_API void cio_blocking_stats_get(cio_blocking_stats *st);

struct addrinfo;

/* Blocking.  getaddrinfo(3) on the blocking pool; free *res with
 * freeaddrinfo().  A numeric host (AI_NUMERICHOST) with a numeric or no
 * service resolves at once, without the pool.  Returns 0 and sets *res,
 * or a negated errno (*res is then NULL), the EAI_* code mapped one to
 * one:
 *   EAI_NONAME -ENOENT        EAI_NODATA -ENODATA     EAI_ADDRFAMILY -EADDRNOTAVAIL
 *   EAI_AGAIN -EAGAIN         EAI_FAIL -EIO           EAI_MEMORY -ENOMEM
 *   EAI_FAMILY -EAFNOSUPPORT  EAI_SOCKTYPE -ESOCKTNOSUPPORT
 *   EAI_SERVICE -EPROTONOSUPPORT  EAI_BADFLAGS -EINVAL  EAI_OVERFLOW -EOVERFLOW
 *   EAI_SYSTEM: the negated errno it left; any other EAI code: -EIO;
 * or -EINVAL (res is NULL), -ENOMEM, -EBUSY, -ECANCELED, -ETIMEDOUT as
 * cio_blocking().  An interrupted lookup's result is freed when it ends. */
CIO_API int cio_getaddrinfo(const char *host, const char *service,
			    const struct addrinfo *hints, struct addrinfo **res);

/* The EAI_* code behind a cio_getaddrinfo() error, for gai_strerror():
 * the inverse of the table above; EAI_SYSTEM for any other negated errno;
 * 0 for err >= 0. */
CIO_API int cio_gai_error(int err);

/* --- channels between cores ---------------------------------------------- */
/* A bounded channel of fixed-size elements that any number of tasks on
 * any cores (any runtimes, even threads outside a runtime for the try_*
 * calls and close) may send to and receive from.  The ring is lock-free:
 * a send or a receive is one compare-and-swap and a copy.  Elements come
 * out in the order their sends took a slot, so each sender's elements
 * arrive in the order it sent them.
 *
 * A task that must wait (full when sending, empty when receiving) parks;
 * the other side wakes it through its runtime's inbox, with one message
 * per waiting runtime per burst, not one per element.  Woken tasks retry:
 * among several waiters there is no FIFO order.  An interrupted call has
 * done nothing: no element sent or taken.  A cio_run() runtime whose
 * tasks wait on an xchan is not considered deadlocked (another thread
 * may wake them); under cio_run_cores() a group whose every core is
 * stuck is, unless the process has other threads (see cio_run_cores()).
 *
 * A cio_xchan is not tied to a runtime; make it before the cores start,
 * or on one core and hand it to others. */
typedef struct cio_xchan cio_xchan;

/* Creates a channel of `capacity` (>= 1) elements of elem_size bytes,
 * its ring allocated here, once, and stores it in *out.  Returns 0, or
 * -EINVAL (elem_size or capacity is 0, or the ring would be larger than
 * any object can be), -ENOMEM (*out is then NULL). */
CIO_API int cio_xchan_new(cio_xchan **out, size_t elem_size, size_t capacity);

/* Frees a channel (NULL is ignored).  No task may be in a call on it:
 * close it and let the callers return first; freeing one a task still
 * waits on aborts.  Elements still buffered are dropped. */
CIO_API void cio_xchan_free(cio_xchan *ch);

/* Blocking.  Copies *elem into the channel, waiting while it is full.
 * Returns 0, or -EPIPE (closed, also while waiting; not sent), -ENOMEM
 * (the first wait of this runtime on this channel found no memory),
 * -ECANCELED, -ETIMEDOUT (not sent). */
CIO_API int cio_xchan_send(cio_xchan *ch, const void *elem);

/* Blocking.  Takes the oldest element into *elem, waiting while empty.
 * Returns 0, or -EPIPE (closed and drained), -ENOMEM as for send,
 * -ECANCELED, -ETIMEDOUT (nothing taken, *elem untouched). */
CIO_API int cio_xchan_recv(cio_xchan *ch, void *elem);

/* Never block; callable from any thread: -EAGAIN where the blocking call
 * would wait (a receive also while a sender that took the next slot is
 * still copying its element in), else as the blocking calls. */
CIO_API int cio_xchan_try_send(cio_xchan *ch, const void *elem);
CIO_API int cio_xchan_try_recv(cio_xchan *ch, void *elem);

/* Closes the channel, from any thread: senders, waiting or to come, get
 * -EPIPE; receivers get what was sent before the close, then -EPIPE.
 * Closing twice is harmless. */
CIO_API void cio_xchan_close(cio_xchan *ch);

/* A wait group between cores: a count that any thread moves, and tasks on
 * any core that wait for it to reach zero.  It is how the cores of a
 * sharded server end together: each core's main does cio_xwg_done() once
 * its own work is over, then cio_xwg_wait(), so that no core's main
 * returns (and its core refuse calls with -ESHUTDOWN) while another core
 * may still call it.  Make it before the cores start, with the count of
 * cores (cio_cores_available()). */
typedef struct cio_xwg cio_xwg;

/* Creates a wait group whose count starts at n, into *out.  Returns 0 or
 * -ENOMEM (*out is then NULL). */
CIO_API int cio_xwg_new(cio_xwg **out, size_t n);

/* Frees it (NULL is ignored); no task may wait on it (aborts). */
CIO_API void cio_xwg_free(cio_xwg *wg);

/* Adds n to the count.  Any thread. */
CIO_API void cio_xwg_add(cio_xwg *wg, size_t n);

/* Takes one from the count; at zero, wakes every waiting task, on every
 * core.  Any thread.  More dones than counted abort (a bug). */
CIO_API void cio_xwg_done(cio_xwg *wg);

/* Blocking.  Waits until the count is zero.  Returns 0, or -ECANCELED /
 * -ETIMEDOUT (the count was not zero yet; the group is unchanged).  As
 * for a cio_xchan: under cio_run() a task waiting here is not counted as
 * deadlocked (another thread may wake it); under cio_run_cores() it is
 * when every core is stuck and no other thread runs (see
 * cio_run_cores()). */
CIO_API int cio_xwg_wait(cio_xwg *wg);

/* ===================================================================== */
/*  Local synchronisation (one runtime, no locks)                         */
/* ===================================================================== */

/* These objects belong to the runtime (thread) that first uses them; they
 * must not be shared across threads.  Their fields are private.
 *
 * Blocked tasks are served in FIFO order, by hand-off: a task woken from a
 * wait finds its operation done (element received, lock or unit owned)
 * and never competes again with tasks that arrived later.  A blocking call
 * checks the cancel and deadline rules first, even when it could complete
 * at once, and an interrupted call has done nothing: no element taken or
 * delivered, no lock or unit held.  The calls that never block and own
 * nothing (channel try_* and close, oneshot send and close, semaphore
 * release, signal, broadcast, wait-group add and done) need no task: the
 * thread's scheduler context may make them too. */

struct cio__wait_node {
	struct cio__wait_node *prev, *next;
};
/* A queue of parked tasks, FIFO. */
typedef struct cio_waitq {
	struct cio__wait_node _head;
} cio_waitq;
#define CIO__WAITQ_INIT(q) {{&(q)._head, &(q)._head}}

/* --- channels ------------------------------------------------------- */

/* A channel of fixed-size elements.  Bounded (capacity >= 1), unbounded
 * (CIO_CHAN_UNBOUNDED), or rendezvous (capacity 0: a send completes only
 * when a receiver takes the element). */
typedef struct cio_chan cio_chan;
#define CIO_CHAN_UNBOUNDED SIZE_MAX

/* Creates a channel.  A bounded channel's buffer is allocated here, once,
 * so that sends and receives never allocate; an unbounded one's buffer
 * doubles as needed (and never shrinks).  Stores the channel in *out and
 * returns 0, or -EINVAL (elem_size is 0, or a bounded buffer would be
 * larger than any object can be), -ENOMEM (*out is then NULL).  Free with
 * cio_chan_free(). */
CIO_API int cio_chan_new(cio_chan **out, size_t elem_size, size_t capacity);

/* Frees a channel (NULL is ignored).  No task may be waiting on it: close
 * it first and let waiters leave; freeing one that a task still waits on
 * aborts.  Elements still buffered are dropped. */
CIO_API void cio_chan_free(cio_chan *ch);

/* Blocking.  Copies *elem into the channel, waiting while it is full (a
 * rendezvous channel: until a receiver takes it; an unbounded one never
 * waits).  *elem must stay valid while the call waits.  Returns 0, or
 * -EPIPE (closed, also when closed while waiting; the element was not
 * sent), -ENOMEM (unbounded channel whose buffer could not grow; the
 * element was not sent), -ECANCELED, -ETIMEDOUT (an interrupted send has
 * not sent the element). */
CIO_API int cio_chan_send(cio_chan *ch, const void *elem);

/* Blocking.  Takes the oldest element into *elem, waiting while empty.
 * Returns 0, or -EPIPE (closed and empty), -ECANCELED, -ETIMEDOUT (an
 * interrupted receive has taken nothing and left *elem alone). */
CIO_API int cio_chan_recv(cio_chan *ch, void *elem);

/* Non-blocking variants: -EAGAIN where the blocking call would wait (on a
 * rendezvous channel, try_send succeeds only when a receiver is waiting,
 * try_recv only when a sender is); otherwise as the blocking calls. */
CIO_API int cio_chan_try_send(cio_chan *ch, const void *elem);
CIO_API int cio_chan_try_recv(cio_chan *ch, void *elem);

/* Closes the channel: senders, now and later, get -EPIPE; receivers drain
 * what is buffered, then get -EPIPE.  Closing twice is harmless. */
CIO_API void cio_chan_close(cio_chan *ch);

/* Elements buffered now. */
CIO_API size_t cio_chan_len(const cio_chan *ch);

/* --- oneshot: one value, sent once ---------------------------------- */

typedef struct cio_oneshot {
	cio_waitq _waiters;
	void *_value;
	int _state; /* private: empty, full, taken, closed */
} cio_oneshot;
#define CIO_ONESHOT_INIT(o) {CIO__WAITQ_INIT((o)._waiters), NULL, 0}

/* Makes `o` empty, as CIO_ONESHOT_INIT does.  Nobody may wait on it. */
CIO_API void cio_oneshot_init(cio_oneshot *o);

/* Sends the value; never blocks.  The first waiting receiver gets it;
 * any other waiting receiver then gets -EPIPE.  Returns 0, or -EPIPE if a
 * value was already sent or the oneshot was closed. */
CIO_API int cio_oneshot_send(cio_oneshot *o, void *value);

/* Blocking.  Waits for the value.  Returns 0 and stores it in *value, or
 * -EPIPE (closed without a value, or the value was already taken),
 * -ECANCELED, -ETIMEDOUT. */
CIO_API int cio_oneshot_recv(cio_oneshot *o, void **value);

/* Closes: a receiver waiting or to come gets -EPIPE if no value was sent;
 * a value already sent stays receivable.  Closing twice is harmless. */
CIO_API void cio_oneshot_close(cio_oneshot *o);

/* --- mutex ------------------------------------------------------------ */

typedef struct cio_mutex {
	cio_waitq _waiters;
	cio_task_t _owner;
} cio_mutex;
#define CIO_MUTEX_INIT(m) {CIO__WAITQ_INIT((m)._waiters), 0}

/* Makes `m` unlocked, as CIO_MUTEX_INIT does.  Nobody may wait on it. */
CIO_API void cio_mutex_init(cio_mutex *m);

/* Blocking.  Locks; waiters get the lock in FIFO order.  Returns 0, or
 * -EDEADLK (the caller holds it), -ECANCELED, -ETIMEDOUT. */
CIO_API int cio_mutex_lock(cio_mutex *m);

/* Returns 0, or -EBUSY when held (by the caller too).  From a task only:
 * elsewhere it aborts, as there is no task to own the lock. */
CIO_API int cio_mutex_trylock(cio_mutex *m);

/* Unlocks; hands the lock to the first waiter, which owns it from then
 * on.  Returns 0, or -EPERM if the caller does not hold it (including
 * calls from outside a task).  A task that ends holding a lock leaves it
 * locked for good. */
CIO_API int cio_mutex_unlock(cio_mutex *m);

/* --- semaphore -------------------------------------------------------- */

typedef struct cio_sem {
	cio_waitq _waiters;
	size_t _count;
} cio_sem;
#define CIO_SEM_INIT(s, n) {CIO__WAITQ_INIT((s)._waiters), (n)}

/* Gives `s` `count` units, as CIO_SEM_INIT does.  Nobody may wait on it. */
CIO_API void cio_sem_init(cio_sem *s, size_t count);

/* Blocking.  Takes one unit, waiting while none is left (FIFO).  Returns 0,
 * -ECANCELED, -ETIMEDOUT. */
CIO_API int cio_sem_acquire(cio_sem *s);

/* Returns 0, or -EAGAIN when no unit is free. */
CIO_API int cio_sem_try_acquire(cio_sem *s);

/* Gives one unit back: to the first waiter if one waits, else to the
 * count. */
CIO_API void cio_sem_release(cio_sem *s);

/* --- condition ---------------------------------------------------------- */

typedef struct cio_cond {
	cio_waitq _waiters;
} cio_cond;
#define CIO_COND_INIT(c) {CIO__WAITQ_INIT((c)._waiters)}

/* Initialises `c`, as CIO_COND_INIT does.  Nobody may wait on it. */
CIO_API void cio_cond_init(cio_cond *c);

/* Blocking.  Unlocks `m` (which the caller must hold), waits for a signal
 * and locks `m` again before returning, whatever the result: that re-lock
 * waits for the mutex even once cancelled or past the deadline.  Returns
 * 0, -EPERM (m not held; nothing done), -ECANCELED, -ETIMEDOUT (when
 * already cancelled or past the deadline at the call, m is never
 * released).  As with any condition variable, check the predicate again
 * after it returns. */
CIO_API int cio_cond_wait(cio_cond *c, cio_mutex *m);

/* Wakes the first waiter / every waiter; with no waiter, nothing is
 * remembered. */
CIO_API void cio_cond_signal(cio_cond *c);
CIO_API void cio_cond_broadcast(cio_cond *c);

/* --- wait group ------------------------------------------------------- */

typedef struct cio_wg {
	cio_waitq _waiters;
	size_t _count;
} cio_wg;
#define CIO_WG_INIT(w) {CIO__WAITQ_INIT((w)._waiters), 0}

/* Sets the counter of `wg` to zero, as CIO_WG_INIT does.  Nobody may wait
 * on it. */
CIO_API void cio_wg_init(cio_wg *wg);

/* Adds n to the counter (overflowing it aborts). */
CIO_API void cio_wg_add(cio_wg *wg, size_t n);

/* Takes one from the counter; at zero, wakes every waiter.  Calling it
 * more often than cio_wg_add() counted aborts (a programming error). */
CIO_API void cio_wg_done(cio_wg *wg);

/* Blocking.  Waits until the counter is zero.  Returns 0, -ECANCELED,
 * -ETIMEDOUT. */
CIO_API int cio_wg_wait(cio_wg *wg);

/* --- select ------------------------------------------------------------- */

enum cio_select_op {
	CIO_SELECT_RECV = 1, /* receive from .chan into .elem */
	CIO_SELECT_SEND,     /* send .elem on .chan */
	CIO_SELECT_TIMER,    /* fires at .deadline (cio_now() clock) */
	CIO_SELECT_DRAIN,    /* completes once a drain is requested (cio_drain()) */
	CIO_SELECT_XRECV,    /* receive from the cross-core .xchan into .elem */
	CIO_SELECT_XSEND,    /* send .elem on the cross-core .xchan */
	CIO_SELECT_READABLE, /* .fd is readable, at its end, or in error */
	CIO_SELECT_WRITABLE, /* .fd is writable, or in error */
	CIO_SELECT_JOIN,     /* task .task has ended: joins it */
	CIO_SELECT_GROUP,    /* every member of .group has ended: ends its scope */
};

typedef struct cio_group cio_group;

typedef struct cio_select_case {
	enum cio_select_op op;
	cio_chan *chan;     /* RECV, SEND */
	cio_xchan *xchan;   /* XRECV, XSEND */
	void *elem;         /* RECV, SEND, XRECV, XSEND; JOIN: void ** or NULL */
	int64_t deadline;   /* TIMER */
	int fd;             /* READABLE, WRITABLE */
	cio_task_t task;    /* JOIN */
	cio_group *group;   /* GROUP */
	int result;         /* out: see below */
} cio_select_case;

/* Blocking.  Waits until one case can complete, completes it alone, and
 * returns its index; the other cases are left untouched (nothing received
 * from or sent on their channels, no task joined, no group closed).
 * Cases ready together take turns: each select of the runtime starts
 * looking one case further on than the one before (round the array), so
 * none starves; position gives no priority, except that a channel
 * hand-off is never undone for a DRAIN case.
 *
 * What each case needs, and its .result when it completes:
 * - RECV, SEND: .chan and .elem; 0, or -EPIPE at once on a closed channel
 *   (a RECV: once it is also empty), -ENOMEM for a SEND on an unbounded
 *   channel that cannot grow.
 * - XRECV, XSEND: .xchan and .elem, as cio_xchan_recv() / _send(): 0 or
 *   -EPIPE.
 * - TIMER: .deadline; CIO_NEVER never fires.  0.
 * - DRAIN: nothing; completes once the runtime drains (cio_drain()), and
 *   at once in every select after that.  0.
 * - READABLE, WRITABLE: .fd; the poll(2) revents (POLLIN or POLLOUT, with
 *   POLLHUP or POLLERR), or -EBADF.  Readiness is only looked at: no byte
 *   is read or written.  The first look is a poll(2); a select that then
 *   waits spawns a task per fd case to wait on it (cio_spawn()'s cost),
 *   which it cancels and waits for before it returns.
 * - JOIN: .task, of this runtime and joinable; the task is joined (its
 *   id spent) and its result stored in *(void **).elem unless .elem is
 *   NULL.  0, or cio_join()'s errors at once: -ESRCH, -EINVAL, -EDEADLK.
 * - GROUP: .group, of this runtime; once no member runs, the group ends
 *   as in cio_group_wait() (closed), and .result is what that returns (the
 *   first member error, or 0); -EPERM or -EBUSY at once.  An interrupted
 *   select, unlike cio_group_wait(), cancels no member.
 *
 * Returns the index, or -EINVAL (n == 0 or a case without what it needs),
 * -ENOMEM (more than 16 cases and no memory for their waiters, or no task
 * for an fd case), -ECANCELED, -ETIMEDOUT (task deadline; a TIMER case
 * returns its index instead).  An interrupted select completed nothing. */
CIO_API int cio_select(cio_select_case *cases, size_t n);

/* --- task groups ---------------------------------------------------- */

/* Task groups.  A group is a scope for tasks: its members are spawned into
 * it, and cio_group_wait() returns only once every member has ended.
 * Members inherit, at spawn, the spawning task's deadline and a
 * cancellation standing against it or the group.  An interruption of the
 * waiting task (cancel or deadline) cancels every member; the wait still
 * lasts until they have all ended, then returns -ECANCELED / -ETIMEDOUT,
 * so members may use the waiting task's stack.  With fail_fast, the first
 * member to return an error cancels the others.  A group belongs to the
 * runtime that made it: calls from another core's task are refused with
 * -EPERM.  Unlike a group's members, a task of cio_spawn() inherits
 * neither deadline nor cancellation.  cio_select() can wait for a group
 * among other things (CIO_SELECT_GROUP). */

/* A member: returns 0 or a negated errno (its status). */
typedef int cio_group_fn(void *arg);

typedef struct cio_group_opts {
	bool fail_fast;    /* the first member error cancels the other members */
	/* Members come without end (an accept loop's connections): an ended
	 * member's entry is reused, so the group's memory follows the
	 * members running, not those spawned; no status is kept
	 * (cio_group_status() says -EINVAL, cio_group_spawn() returns 0). */
	bool unbounded;
	size_t stack_size; /* members' stacks, as cio_spawn_opts; 0: default */
	const char *name;  /* members' task name (copied); NULL: "group-member" */
} cio_group_opts;

/* Makes a group on the calling thread's runtime, into *out (opts may be
 * NULL).  Returns 0, -ENOMEM, or -EPERM off a runtime. */
CIO_API int cio_group_new(cio_group **out, const cio_group_opts *opts);

/* Starts fn(arg) as a member.  Returns its index in the group (0, 1, ...
 * in spawn order; 0 in an unbounded group), or -EPIPE (the group was waited for: closed), -EPERM
 * (another runtime's group), -EINVAL (fn is NULL), -ENOMEM. */
CIO_API int cio_group_spawn(cio_group *g, cio_group_fn *fn, void *arg);

/* Cancels every member, running or spawned later.  Never blocks; from
 * another runtime it does nothing (a group is its runtime's). */
CIO_API void cio_group_cancel(cio_group *g);

/* Blocking.  Waits until every member has ended, then closes the group.
 * Returns the first error a member returned (first in time), or 0; or
 * -ECANCELED / -ETIMEDOUT when the wait was interrupted (after the members
 * were cancelled and have ended); -EBUSY when another task waits already,
 * -EPERM from another runtime. */
CIO_API int cio_group_wait(cio_group *g);

/* Member `i`'s status: what its fn returned, -EINPROGRESS while it runs,
 * -EINVAL for no such member (or an unbounded group). */
CIO_API int cio_group_status(const cio_group *g, size_t i);

/* How many members were spawned (the spawns that failed not counted). */
CIO_API size_t cio_group_size(const cio_group *g);

/* Frees a group (NULL is ignored) once no member runs (else aborts):
 * after cio_group_wait().  A group keeps each member's status until then
 * (48 bytes a member), unless it was made unbounded. */
CIO_API void cio_group_free(cio_group *g);

/* --- serving connections ------------------------------------------------ */

/* Serves one connection, on a task of its own.  It owns fd and returns
 * CIO_SERVE_DONE once it has closed it (or whatever took it over has, a
 * stream), or CIO_SERVE_AGAIN to leave the connection open and idle: it
 * is then called again, on a new task, once fd has bytes, its end or an
 * error (at once, on the same task, when it has them already).  Meanwhile
 * the connection holds no task and no stack, only about a hundred bytes
 * of the runtime's: how a server holds many connections that are quiet
 * most of the time (keep-alive, push, chat), as nginx holds its idle
 * keep-alive ones.  What a handler keeps between two calls must live
 * off its stack: cio_serve_state() holds it.  An idle connection is
 * closed (without a call) by the drain, or after
 * cio_serve_opts.idle_timeout. */
typedef int cio_serve_fn(void *arg, int fd);
#define CIO_SERVE_DONE 0
#define CIO_SERVE_AGAIN 1

typedef struct cio_serve_opts {
	/* Connections served at once on this core; 0: no limit.  At the
	 * limit, accepting waits until one ends: the kernel's backlog holds
	 * the clients that come meanwhile. */
	size_t max_conns;
	size_t stack_size;  /* connection tasks' stacks; 0: the runtime's */
	const char *name;   /* connection tasks' name; NULL: "conn" */
	/* An idle connection (CIO_SERVE_AGAIN) that gets nothing to read
	 * for this long is closed, without a call; 0 or CIO_NEVER: never. */
	int64_t idle_timeout;
	/* A new connection starts idle: fn's first call waits for its
	 * first bytes, so a client that connects and says nothing costs no
	 * task (for protocols where the client speaks first: HTTP, most
	 * RPC).  Else fn is called at once. */
	bool idle_first;
	/* With idle_first, how long a new connection may wait for its
	 * first bytes before it is closed (without a call); 0: idle_timeout.
	 * A shorter one keeps clients that connect and say nothing from
	 * holding fds as long as a kept-alive connection may. */
	int64_t first_timeout;
	/* Frees a connection's state (cio_serve_state()) when serving
	 * closes the connection without a call: an idle one at a drain or
	 * at its idle timeout.  It must not block.  NULL: free(3). */
	void (*state_free)(void *arg, void *state);
	/* Told of each error lived through: an accept that failed in passing
	 * (-EMFILE, -ENFILE, -ECONNABORTED, -ENOBUFS, -ENOMEM, -EPERM...) or a
	 * connection that got no task (-ENOMEM: a new one's fd is closed; an
	 * idle one's task is tried again 10 ms later).  NULL: none.
	 * For counting and logging; it must not block. */
	void (*error)(void *arg, int err);
} cio_serve_opts;

/* In a connection's handler (cio_serve_fn), its state: a pointer the
 * handler may set, NULL at the connection's first call and kept across
 * its calls, for what must outlive one (CIO_SERVE_AGAIN), typically a
 * record of the handler's own.  The handler frees it before it returns
 * CIO_SERVE_DONE; an idle connection that serving closes has it freed
 * by cio_serve_opts.state_free.  NULL in any other task. */
CIO_API void **cio_serve_state(void);

/* Blocking.  Serves listener lfd on the calling core until the runtime
 * drains: accepts connections and runs fn(arg, fd) for each on a task of
 * its own, all of them members of one task group (unbounded) scoped to
 * this call.  Errors that pass are lived through: out of fds (cio_accept()
 * pauses), a client that gave up in the backlog, memory short (a 10 ms
 * pause).  Once the drain shuts lfd down (a listener of cio_listen()),
 * stops accepting, closes the idle connections, and waits for the
 * others to end; the drain's
 * timeout cancels them, and they are still waited for.  lfd stays open.
 * opts may be NULL.  Returns 0 after a drain; -ECANCELED or -ETIMEDOUT
 * when the calling task was interrupted (its connections cancelled and
 * ended); -EBADF, -EINVAL, -ENOTSOCK, -EOPNOTSUPP for a listener that is
 * broken (after the connections ended); -ENOMEM; -EINVAL for no fn. */
CIO_API int cio_serve_fd(int lfd, const cio_serve_opts *opts, cio_serve_fn *fn, void *arg);

/* Blocking.  Listens on addr with SO_REUSEPORT (cio_listen()), serves as
 * cio_serve_fd(), then closes the listener.  Called on every core of
 * cio_run_cores(), it makes a server of them all, each core with a
 * listener of its own among which the kernel spreads connections.  Port
 * 0 picks a port per core: for one port on every core, listen on one
 * core first and give its address to the others.  Returns as
 * cio_serve_fd(), or cio_listen()'s errors. */
CIO_API int cio_serve(const char *addr, const cio_serve_opts *opts, cio_serve_fn *fn, void *arg);

/* ===================================================================== */
/*  Streams: buffered I/O over a connection, plain or TLS                 */
/* ===================================================================== */
/* A stream owns a connected stream socket (TCP, Unix) and a read buffer
 * and a write buffer of fixed sizes, set when it is made: what
 * a peer sends never grows them.  The same calls serve a plain stream and
 * a TLS session (cio_stream_tls_accept(), cio_stream_tls_connect()).
 *
 * Every call that moves bytes is blocking, with the rules at the top of
 * this header, when it has to wait for the connection; one the buffers
 * alone can serve returns at once, even in a cancelled task.  An
 * interrupted read loses nothing: bytes that arrived stay in the read
 * buffer for the next call.  One task may read while another
 * writes the same stream (a proxy's two directions); two tasks must not
 * read (or write) one stream at the same time.
 *
 * A call that fails on the connection (-ECONNRESET, -EPIPE, -EPROTO...)
 * keeps its error: later writes return it again.  cio_stream_error() tells
 * the detail a bare errno cannot (a TLS alert, "certificate has expired"). */

typedef struct cio_stream cio_stream;

typedef struct cio_stream_opts {
	size_t read_buf;  /* read buffer, the longest line or frame; 0: 16 KiB */
	size_t write_buf; /* write buffer, 0: 16 KiB */
} cio_stream_opts;

/* Makes a stream over the connected fd, which it owns from then on (even
 * on failure, when fd is closed).  opts may be NULL.  Returns 0 and sets
 * *out, or -EINVAL (fd < 0, a buffer under 64 bytes or over 64 MiB),
 * -ENOMEM. */
CIO_API int cio_stream_new(cio_stream **out, int fd, const cio_stream_opts *opts);

/* Blocking.  Flushes buffered writes (unless a connection error came
 * before) and ends a TLS session with close_notify, within the task's
 * deadline and at most 5 s (a peer that reads nothing cannot hold it
 * longer; a cancelled task does not wait at all), then closes the fd and
 * frees s, whatever happened.  Returns 0, or the error of the flush or of
 * the close_notify.  NULL is ignored.
 *
 * Tasks parked in calls on s at the time are woken: their calls return
 * -EBADF, nothing is flushed, and the close returns once they have left
 * them (after which they must not use s).  -EBUSY, and s is not freed, if
 * one has not left within 5 s (it never should). */
CIO_API int cio_stream_close(cio_stream *s);

/* The stream's fd, for socket options and addresses.  Reading or writing
 * it directly would pass the buffers (and TLS) by: don't. */
CIO_API int cio_stream_fd(const cio_stream *s);

/* Why the last failed call failed, in words: the TLS alert or
 * certificate verification result when there was one ("certificate has
 * expired", "hostname mismatch"), else cio_strerror() of its result; ""
 * when no call failed.  Valid until the next call on s. */
CIO_API const char *cio_stream_error(const cio_stream *s);

/* --- reading --------------------------------------------------------------- */

/* Blocking.  Reads up to len bytes: from the buffer if it holds any, else
 * from the connection (straight into buf when len is at least the buffer's
 * size).  Returns the bytes read (> 0), 0 at the end of the stream, or
 * -errno. */
CIO_API ssize_t cio_stream_read(cio_stream *s, void *buf, size_t len);

/* Blocking.  Reads exactly len bytes.  Returns len, or -EPIPE when the
 * stream ended first, or another -errno; *moved (if not NULL) holds how
 * many bytes were read either way. */
CIO_API ssize_t cio_stream_read_exact(cio_stream *s, void *buf, size_t len,
				      size_t *moved);

/* Blocking.  Reads until the byte delim, and sets *data to the bytes read,
 * delim included, which stay in the read buffer until the next call on s
 * that reads.  Returns their count; 0 at the end of the stream with
 * nothing buffered.  limit caps the count (0: the read buffer's size).
 * Errors:
 *   -EMSGSIZE: limit bytes came without delim.  Nothing is consumed: the
 *              bytes stay buffered, for cio_stream_read() or peek/consume;
 *   -EPIPE:    the stream ended after some bytes but before delim; they
 *              stay buffered;
 *   -EINVAL:   limit exceeds the read buffer;
 *   or the connection's -errno. */
CIO_API ssize_t cio_stream_read_until(cio_stream *s, int delim, size_t limit,
				      const char **data);

/* Blocking.  cio_stream_read_until() for '\n', with the line's end ("\n" or
 * "\r\n") cut off and replaced by a NUL in the buffer, so *line is a C
 * string (which may also hold NULs of the peer's).  Returns the line's
 * length without its end: an empty line is 0 with *line "", the end of
 * the stream 0 with *line NULL.  Errors as cio_stream_read_until(). */
CIO_API ssize_t cio_stream_read_line(cio_stream *s, size_t limit,
				     const char **line);

/* Blocking.  Reads until at least min bytes are buffered (min 0: at least
 * one; never more than the buffer holds).  Returns the bytes buffered
 * (>= min, or fewer when the stream ended: 0 at its end with nothing
 * buffered), -EINVAL when min exceeds the read buffer, or -errno. */
CIO_API ssize_t cio_stream_fill(cio_stream *s, size_t min);

/* The buffered bytes, without reading: sets *len and returns them (NULL
 * when none).  Never blocks. */
CIO_API const void *cio_stream_peek(const cio_stream *s, size_t *len);

/* Drops the first n buffered bytes (at most all of them).  Never blocks. */
CIO_API void cio_stream_consume(cio_stream *s, size_t n);

/* --- writing --------------------------------------------------------------- */

/* Appends len bytes to the write buffer; when it fills, sends it (and
 * sends data that cannot fit straight through: on a plain stream, a put
 * that fills the buffer leaves with what it holds in one writev, not
 * copied in first).  Blocking only then.
 * Bytes may wait in the buffer until cio_stream_flush().  Returns len or
 * -errno; after an error how much of buf went is unknown, so a protocol
 * writer ends the connection then (cio_stream_write_all() tells exactly
 * how far it got). */
CIO_API ssize_t cio_stream_put(cio_stream *s, const void *buf, size_t len);

/* Blocking.  Sends what the write buffer holds, then as much of buf as
 * one write of the connection takes (on TLS: one record, encrypted and
 * committed: what an interruption left of it goes out with the next
 * write or flush).  Returns the bytes of buf taken (> 0, maybe fewer than
 * len; 0 when len is 0) or -errno. */
CIO_API ssize_t cio_stream_write(cio_stream *s, const void *buf, size_t len);

/* Blocking.  Sends the write buffer, then all of buf (or all the iovecs,
 * coalesced into few writes).  Returns the bytes of buf (or of the
 * iovecs) sent, or -errno; *moved (if not NULL) holds how many of those
 * were sent (taken, on TLS) either way, exactly: after an interruption
 * the stream is whole, and writing on from *moved sends each byte once. */
CIO_API ssize_t cio_stream_write_all(cio_stream *s, const void *buf, size_t len,
				     size_t *moved);
CIO_API ssize_t cio_stream_writev_all(cio_stream *s, const struct iovec *iov,
				      int iovcnt, size_t *moved);

/* Blocking.  Sends what the write buffer holds.  Returns 0 or -errno. */
CIO_API int cio_stream_flush(cio_stream *s);

/* Blocking.  Flushes, then ends the writing half: shutdown(SHUT_WR) on a
 * plain stream, close_notify on TLS.  Reading goes on until the peer ends
 * too.  Returns 0 or -errno. */
CIO_API int cio_stream_shutdown(cio_stream *s);

/* --- zero-copy paths --------------------------------------------------------- */

/* Blocking.  cio_sendfile() on a stream: flushes the write buffer, then
 * sends len bytes of `file` from off, by splice on a plain stream and
 * through the write buffer on TLS.  Returns and *moved as cio_sendfile(). */
CIO_API ssize_t cio_stream_sendfile(cio_stream *s, int file, int64_t off,
				    size_t len, size_t *moved);

/* Blocking.  cio_relay() between two streams: first delivers what each
 * read buffer holds to the other side and flushes both write buffers,
 * then relays both ways, with cio_relay() (splice) when both are plain
 * and by copying otherwise.  Results as cio_relay(), the idle limit too;
 * at the end of one direction (a TLS peer's end without close_notify
 * included) the other stream's writing half is shut down
 * (cio_stream_shutdown()).  Neither stream is closed. */
CIO_API int cio_stream_relay(cio_stream *a, cio_stream *b,
			     const cio_relay_opts *opts, cio_relay_stats *st);

/* --- addresses --------------------------------------------------------------- */

/* The local / remote address of socket fd (getsockname / getpeername).
 * Returns 0, or -EBADF, -ENOTSOCK, -ENOTCONN. */
CIO_API int cio_local_addr(int fd, cio_addr *a);
CIO_API int cio_peer_addr(int fd, cio_addr *a);

/* --- TLS ---------------------------------------------------------------------- */
/* TLS 1.2 and 1.3 on OpenSSL 3, as a stream's transport: the handshake
 * turns a plain stream into a TLS one, and every call above then moves
 * plaintext.  The ciphertext moves through the runtime's own I/O calls
 * (io_uring where it runs), never through OpenSSL's socket code, so TLS
 * calls park only their task and obey deadlines and cancellation like any
 * other; one task may read while another writes a TLS stream.
 * Renegotiation and compression are refused.  A library built without
 * OpenSSL keeps these calls: the ctx makers and handshakes return
 * -ENOTSUP, the queries answer as for a plain stream. */

/* A TLS configuration: certificates, trust, ALPN, versions.  Made once
 * per process and shared read-only by every core (any thread may start
 * sessions from it); free it only once no stream uses it. */
typedef struct cio_tls_ctx cio_tls_ctx;

/* Protocol versions, for the opts' min_version and max_version. */
#define CIO_TLS1_2 0x0303
#define CIO_TLS1_3 0x0304

/* A certificate (its chain may follow it: leaf first) and its private
 * key, PEM, from files or from memory: a file name, or else the PEM text. */
typedef struct cio_tls_cert {
	const char *cert_file, *key_file;
	const char *cert_pem, *key_pem;
} cio_tls_cert;

typedef struct cio_tls_server_opts {
	/* certs[0] serves clients that send no SNI or a name no other cert
	 * has; certs[i] serves the names of its certificate (its SAN DNS
	 * entries, wildcards matched as X509_check_host() does). */
	const cio_tls_cert *certs;
	size_t ncerts;
	const char *alpn;         /* "h2,http/1.1": protocols in the server's
	                           * order of preference; NULL: no ALPN */
	bool no_tickets;          /* no session tickets (resumption by id only,
	                           * on TLS 1.2) */
	int64_t handshake_timeout; /* ns; 0: 10 s */
	int min_version, max_version; /* CIO_TLS1_2 or CIO_TLS1_3; 0: 1.2
	                               * and 1.3 both */
} cio_tls_server_opts;

typedef struct cio_tls_client_opts {
	const char *ca_file;      /* trusted CAs, PEM; or */
	const char *ca_pem;       /* the same in memory; both NULL: the system
	                           * store */
	bool insecure_no_verify;  /* accept any certificate: for tests only */
	const char *alpn;         /* "h2,http/1.1": offered; NULL: no ALPN */
	bool no_resumption;       /* never resume a session */
	const cio_tls_cert *client_cert; /* NULL: none */
	int64_t handshake_timeout; /* ns; 0: 10 s */
	int min_version, max_version; /* as a server's */
} cio_tls_client_opts;

/* Make a server or client configuration.  Never blocks (it reads files).
 * Returns 0 and sets *out, or -ENOENT / -EACCES (a file that cannot be
 * read), -EINVAL (no cert, bad PEM, a key that does not match its cert,
 * a malformed ALPN list, a version other than CIO_TLS1_2/3), -ENOMEM, -ENOTSUP (built without OpenSSL).  On
 * failure, err (if not NULL) receives the reason, OpenSSL's where it has
 * one, NUL-terminated within errlen bytes. */
CIO_API int cio_tls_server_ctx(cio_tls_ctx **out, const cio_tls_server_opts *o,
			       char *err, size_t errlen);
CIO_API int cio_tls_client_ctx(cio_tls_ctx **out, const cio_tls_client_opts *o,
			       char *err, size_t errlen);

/* Frees a configuration (NULL is ignored), with the calling thread's
 * cached sessions for it; no stream may still use it. */
CIO_API void cio_tls_ctx_free(cio_tls_ctx *ctx);

/* Blocking.  The server's handshake on plain stream s, with a server ctx.
 * Bytes already in s's read buffer are taken as the first bytes of the
 * ClientHello, so a server may peek at a connection before it decides on
 * TLS; buffered writes are flushed first.  Bounded by the ctx's
 * handshake_timeout as well as the task's deadline (the earlier wins).
 * Returns 0, after which s moves plaintext over TLS; or -EPROTO (the
 * peer does not speak TLS, or not a version or cipher both accept; an
 * alert), -ECONNRESET (the peer left), -ETIMEDOUT, -ECANCELED, -EINVAL
 * (a client ctx, or s is TLS already), -ENOMEM.  cio_stream_error() tells
 * why in OpenSSL's words ("wrong version number", "unsupported protocol",
 * "no shared cipher"...).  After a failure s is good only for
 * cio_stream_close(). */
CIO_API int cio_stream_tls_accept(cio_stream *s, cio_tls_ctx *ctx);

/* Blocking.  The client's handshake on plain stream s, with a client ctx:
 * sends server_name as SNI (not when it is an IP literal) and, unless the
 * ctx says insecure_no_verify, checks the server's certificate against the
 * ctx's CAs and against server_name (a DNS name, or an IP address matched
 * with the certificate's IP entries); server_name may be NULL only with
 * insecure_no_verify.  Resumes a session the calling thread kept from an
 * earlier connection with the same ctx, name and peer address, unless the
 * ctx says no_resumption.  Returns and fails as cio_stream_tls_accept();
 * a certificate refused is -EPROTO, with cio_stream_error() giving the
 * reason ("certificate has expired", "self-signed certificate",
 * "hostname mismatch", "unable to get local issuer certificate"). */
CIO_API int cio_stream_tls_connect(cio_stream *s, cio_tls_ctx *ctx,
				   const char *server_name);

/* Reading a TLS stream returns 0 at the peer's close_notify only.  A peer
 * that ends the TCP connection without one truncated the stream, and the
 * read returns -EPIPE, cio_stream_error() "connection closed without
 * close_notify (truncated)"; a reset is -ECONNRESET. */

/* Queries on a stream after a successful handshake; on a plain stream
 * they return NULL, false, -EINVAL.
 * The protocol ALPN chose ("http/1.1"), or NULL when none was. */
CIO_API const char *cio_stream_tls_alpn(const cio_stream *s);
/* The version in use: "TLSv1.2" or "TLSv1.3". */
CIO_API const char *cio_stream_tls_version(const cio_stream *s);
/* On a server, the SNI name the client sent, or NULL; on a client, the
 * server_name it was given. */
CIO_API const char *cio_stream_tls_server_name(const cio_stream *s);
/* Whether the handshake resumed an earlier session. */
CIO_API bool cio_stream_tls_resumed(const cio_stream *s);
/* The peer certificate's subject on one line ("CN = localhost, O = x")
 * into buf.  Returns its length, or -ENOENT (the peer sent no certificate),
 * -ENOSPC (cap too small), -EINVAL (not TLS). */
CIO_API int cio_stream_tls_peer_subject(const cio_stream *s, char *buf, size_t cap);
/* The result of verifying the peer's certificate: 0 (X509_V_OK) when it
 * passed or was not checked, else OpenSSL's X509_V_ERR_ code; -1 on a
 * plain stream. */
CIO_API long cio_stream_tls_verify_result(const cio_stream *s);

/* ===================================================================== */
/*  Names and dialling                                                    */
/* ===================================================================== */
/* Name resolution on c-ares, inside the runtime: queries go out on
 * sockets the calling task waits on, so a lookup parks only that task,
 * and obeys its deadline and cancellation like any blocking call.  A
 * build without c-ares (libc-ares-dev) has cio_dial() on cio_getaddrinfo()
 * instead, and cio_resolve() returns -ENOTSUP.
 *
 * DNS failures have codes of their own, beyond every system's errno range
 * and below 4096 (so a "negated errno" test such as rc > -4096 still holds
 * them); calls return them negated, and cio_strerror() knows their texts. */
#define CIO_EDNS_NXDOMAIN 3001 /* "Name not found (NXDOMAIN)" */
#define CIO_EDNS_NODATA 3002   /* the name has no address of that family */
#define CIO_EDNS_SERVFAIL 3003 /* the server failed (SERVFAIL) */
#define CIO_EDNS_REFUSED 3004  /* the server refused the query (REFUSED) */
#define CIO_EDNS_BADNAME 3005  /* malformed name */
#define CIO_EDNS_TIMEOUT 3006  /* every server timed out (their tries spent) */
#define CIO_EDNS_BADRESP 3007  /* malformed answer, FORMERR or NOTIMP */
#define CIO_EDNS_CONNREFUSED 3008 /* no server could be reached */

typedef struct cio_resolve_opts {
	int family;          /* AF_UNSPEC (0): both; AF_INET; AF_INET6 */
	/* Servers to ask, "127.0.0.1:5353,[::1]:53" (port 53 if none), in
	 * place of /etc/resolv.conf's, whose search domains are then not
	 * used either; NULL: the system's. */
	const char *servers;
	bool no_cache;       /* neither read nor fill the core's cache */
	int64_t try_timeout; /* ns before a query is sent again, to the
	                      * next server; doubled each round; 0: the
	                      * system's (resolv.conf's timeout, else 5 s) */
	int tries;           /* rounds over the servers before
	                      * -CIO_EDNS_TIMEOUT; 0: the system's (else 4) */
} cio_resolve_opts;

/* Blocking.  Resolves `name` to its addresses, A and AAAA records as
 * opts->family asks, with the port of `service` (a number or a name of
 * /etc/services; NULL: port 0) in each.  /etc/hosts is read first (as
 * resolv.conf's or the system's lookup order says); a numeric name
 * ("1.2.3.4", "::1") is answered at once, without a query.  opts may be
 * NULL: both families, the system's servers, the cache.
 *
 * Answers are cached per core, keyed by name, family and servers, for
 * as long as their TTL says (the smallest of the records'); a name that
 * does not exist, or has no address of the family, is remembered for
 * 5 s.  At most 1024 names are kept, the oldest evicted first.
 *
 * On success returns 0 and stores in *addrs an array of *n (>= 1)
 * addresses, in the order c-ares gives them (RFC 6724's, IPv6 first
 * where it is usable), to be freed with cio_addrs_free().  On failure
 * *addrs is NULL, *n is 0, and the call returns -CIO_EDNS_NXDOMAIN,
 * -CIO_EDNS_NODATA, -CIO_EDNS_SERVFAIL, -CIO_EDNS_REFUSED,
 * -CIO_EDNS_BADNAME, -CIO_EDNS_TIMEOUT, -CIO_EDNS_BADRESP,
 * -CIO_EDNS_CONNREFUSED, -EINVAL (an argument NULL, a bad family, an
 * unknown service, servers malformed), -ENOMEM, -ENOTSUP (built without
 * c-ares), -ECANCELED, or -ETIMEDOUT (the task's deadline passed; it wins
 * over a DNS timeout at the same time).  An interrupted lookup leaves no
 * socket open. */
CIO_API int cio_resolve(const char *name, const char *service,
			const cio_resolve_opts *opts, cio_addr **addrs, size_t *n);

/* Frees what cio_resolve() stored in *addrs (NULL is ignored). */
CIO_API void cio_addrs_free(cio_addr *addrs);

/* Empties the calling core's DNS cache (for tests, or after a change of
 * /etc/hosts).  Does nothing off a runtime. */
CIO_API void cio_resolve_cache_clear(void);

typedef struct cio_dial_opts {
	/* Happy Eyeballs' "connection attempt delay": how long an attempt
	 * runs alone before the next address is tried beside it; 0: 250 ms;
	 * at least 10 ms. */
	int64_t attempt_delay;
	/* Bounds each attempt (ns), within the caller's deadline; 0: none. */
	int64_t attempt_timeout;
	int family;              /* AF_UNSPEC (0), AF_INET, AF_INET6 */
	const char *dns_servers; /* as cio_resolve_opts.servers */
} cio_dial_opts;

/* Blocking.  Connects a TCP socket to "host:port" ("example.com:443",
 * "[2001:db8::1]:80", "1.2.3.4:80"; the port may be a service name), or
 * a Unix socket for "unix:/path" (as cio_connect()).  The host is
 * resolved with cio_resolve() (a numeric one without a query), then the
 * addresses are tried as RFC 8305 (Happy Eyeballs v2) says: the two
 * families taken in turn, starting with the family of the first address;
 * the next attempt starts when the one before fails, or once it has run
 * attempt_delay without connecting, and earlier attempts go on beside it;
 * the first to connect wins and the others are cancelled and closed.
 * The whole dial is bounded by the caller's deadline.  opts may be NULL.
 *
 * Returns the connected fd (non-blocking, close-on-exec, as cio_connect()
 * makes), or: -EINVAL (malformed hostport or opts), a cio_resolve() error,
 * the error of the first attempt that failed for a reason other than the
 * route (-ECONNREFUSED, -ETIMEDOUT from the kernel...; else the first
 * one's: -ENETUNREACH...), -ENOMEM, -ECANCELED, -ETIMEDOUT (the deadline).
 * No fd is left open on failure, nor any but the winner's on success. */
CIO_API int cio_dial(const char *hostport, const cio_dial_opts *opts);

/* ===================================================================== */
/*  HTTP/1.1 server                                                       */
/* ===================================================================== */
/* An HTTP/1.1 server over a stream (plain or TLS), one task per
 * connection: cio_http_serve_conn() reads requests with llhttp (strict,
 * no lenient flags), calls a handler for each, and writes its responses in
 * order (keep-alive, pipelining).  Bodies stream both ways: the handler
 * reads the request body as it arrives (chunked decoding done) and writes
 * its response body piece by piece, with Content-Length when told the
 * length up front, else chunked (HTTP/1.1) or close-delimited (HTTP/1.0).
 *
 * A request whose head the server cannot trust never reaches the
 * handler: the server answers 400 (malformed, or framed in a way a proxy
 * could read two ways: Content-Length with Transfer-Encoding, duplicate
 * Content-Length, no Host in HTTP/1.1 or two Hosts, obs-fold, bare LF or
 * CR, NUL, a space before a colon, Transfer-Encoding not ending in
 * chunked, chunked in HTTP/1.0), 431
 * (head too long, too many headers), 413 (a Content-Length over
 * max_body), 408 (a head too slow), 417 (an Expect other than
 * 100-continue) or 505 (a version other than 1.0 and 1.1), then closes.
 * What is wrong in a body (a bad chunk, too long, too slow) shows when
 * it is read: the handler's read fails, and the server answers 400, 413
 * or 408 unless the handler's response began; either way the connection
 * closes.  A library built without llhttp (node-llhttp) keeps these
 * calls: cio_http_serve_conn() returns -ENOTSUP.
 *
 * Every call taking a request or response is for the handler's task,
 * while the handler runs; the strings they return stay valid until it
 * returns. */

typedef struct cio_http_req cio_http_req;
typedef struct cio_http_resp cio_http_resp;

/* Called once per request.  Returns 0, or a negated errno to say it
 * failed: before its response began, the server answers 500 in its place;
 * after, the connection closes, as the response cannot be finished.  A
 * handler that returns 0 without responding gets 500 too; one that began
 * a response without cio_http_resp_end() has it ended for it. */
typedef int cio_http_handler(cio_http_req *req, cio_http_resp *resp, void *arg);

typedef struct cio_http_server_opts {
	size_t max_head;        /* request line and headers, bytes; 0: 16 KiB
	                         * (431 beyond) */
	size_t max_headers;     /* header fields; 0: 100 (431 beyond) */
	uint64_t max_body;      /* request body, bytes; 0: 1 MiB (413 beyond);
	                         * UINT64_MAX: no limit */
	int64_t head_timeout;   /* ns from a request's first byte to its last
	                         * header; 0: 10 s (408, then close); also
	                         * the longest a new connection may wait to
	                         * send its first byte (then it closes
	                         * silently) */
	int64_t idle_timeout;   /* ns a kept-alive connection waits for its
	                         * next request; 0: 60 s (then it closes
	                         * silently) */
	int64_t body_timeout;   /* ns a body read waits for bytes; 0: 30 s */
	uint64_t min_body_rate; /* bytes/s a body must keep up on average
	                         * after its first body_timeout: a body read
	                         * gives up (-ETIMEDOUT, answered 408) when
	                         * fewer came; 0: no minimum */
	size_t discard_limit;   /* request body left unread by a handler that
	                         * the server reads and drops to keep the
	                         * connection; 0: 64 KiB; more: it closes */
	int64_t send_timeout;   /* ns the client has to take each MiB of a
	                         * response (a write, a flush, the end); 0:
	                         * 30 s (then -ETIMEDOUT, and it closes) */
} cio_http_server_opts;

/* Blocking.  Serves HTTP/1.1 on stream s until the connection ends:
 * reads a request, calls h(req, resp, arg), writes the response, and
 * again while both sides keep the connection alive (an HTTP/1.0 client
 * unless it asked for keep-alive, a "Connection: close" on either side, a
 * close-delimited response, a drain end it).  While it waits for the next
 * request the task is idle for the drain (cio_drain_idle()): a drain ends
 * such a connection at once, and responses written during a drain carry
 * "Connection: close".  The socket gets TCP_NODELAY (responses go out
 * whole).  s is not closed: the caller closes it (which flushes what is
 * left).  opts may be NULL.
 *
 * Returns 0 when the connection ended cleanly (the peer closed between
 * requests, the idle timeout, a response that closed it, a drain); or a
 * negated errno: -EPROTO (a request refused with 4xx/5xx as above),
 * -ETIMEDOUT (a head that took longer than head_timeout, answered 408),
 * -EMSGSIZE (a body over max_body, answered 413), the error a handler
 * returned (the connection then closed), the connection's error
 * (-ECONNRESET, -EPIPE...), -ECANCELED, -ENOMEM, -EINVAL (s or h NULL),
 * -ENOTSUP (built without llhttp). */
CIO_API int cio_http_serve_conn(cio_stream *s, const cio_http_server_opts *opts,
				cio_http_handler *h, void *arg);


/* Blocking; a connection handler for cio_serve() (cio_serve_fn) whose
 * kept-alive connections hold no task while they wait: serves HTTP/1.1
 * on fd as cio_http_serve_conn() does, over a stream of its own (TLS when
 * tls is not NULL: the handshake comes first), but once a response is out
 * and no byte of a next request has come, it gives back the memory only
 * a request needs (the stream's buffers, the parsed head) and returns
 * CIO_SERVE_AGAIN.  The connection then waits in the serve helper, a
 * plain one as about a kilobyte (a TLS one keeps its session, tens of
 * KiB), and the next call, on a new task once bytes come, takes it up
 * where it was.  Its state lives in cio_serve_state(): the
 * cio_serve_opts must come from cio_http_turn_opts().  A pipelined
 * request, or a TLS record whose bytes OpenSSL holds, is served on the
 * same task.  opts may be NULL; the same opts for every call of a
 * connection.
 *
 * Returns CIO_SERVE_AGAIN, or, with fd closed: 0 when the connection
 * ended cleanly, or a negated errno as cio_http_serve_conn(), and
 * -ENOMEM when the buffers cannot be taken back for a next request (the
 * connection closes with it unanswered, as a kept-alive connection may
 * be closed at any time: clients send idempotent requests again),
 * -EINVAL outside a handler of cio_serve() or for no h.  A waiting
 * connection is closed silently, without a call (and over TLS without
 * close_notify), by the drain and by the serve helper's idle timeout;
 * cio_http_turn_opts() sets that timeout, and the bound of a new
 * connection's wait for its first bytes, from opts. */
CIO_API int cio_http_serve_turn(int fd, cio_tls_ctx *tls, const cio_http_server_opts *opts,
				cio_http_handler *h, void *arg);

/* Sets what cio_http_serve_turn() needs of the serve helper's options:
 * idle_first (a new connection costs no task until it speaks),
 * first_timeout (the lesser of opts->head_timeout and idle_timeout, as
 * cio_http_serve_conn() bounds a new connection's first byte),
 * idle_timeout (opts->idle_timeout, 60 s by default; CIO_NEVER: none),
 * and state_free (cio_http_turn_free).  opts may be NULL.  The other
 * fields are left as they are. */
CIO_API void cio_http_turn_opts(cio_serve_opts *so, const cio_http_server_opts *opts);

/* Frees a waiting connection's state without a word to the peer (the
 * serve helper has closed its fd): cio_serve_opts.state_free for
 * cio_http_serve_turn().  Never blocks. */
CIO_API void cio_http_turn_free(void *arg, void *state);
/* --- the request --------------------------------------------------------- */

/* The method ("GET"), the request target as sent ("/a?b=c"), and the
 * version: 10 for HTTP/1.0, 11 for HTTP/1.1. */
CIO_API const char *cio_http_req_method(const cio_http_req *req);
CIO_API const char *cio_http_req_target(const cio_http_req *req);
CIO_API int cio_http_req_version(const cio_http_req *req);

/* The number of header fields, and field i (0 to count - 1) as sent:
 * its name and its value without surrounding whitespace.  Returns 0, or
 * -ENOENT when i is out of range. */
CIO_API size_t cio_http_req_header_count(const cio_http_req *req);
CIO_API int cio_http_req_header_at(const cio_http_req *req, size_t i,
				   const char **name, const char **value);

/* The value of the first field named `name` (any case), or NULL. */
CIO_API const char *cio_http_req_header(const cio_http_req *req, const char *name);

/* The body's length from Content-Length (0 for none), or -1 when it is
 * chunked: for a proxy that forwards the framing. */
CIO_API int64_t cio_http_req_content_length(const cio_http_req *req);

/* The client's address (the connection's peer, cio_peer_addr()), looked
 * up at this call's first use on the connection and kept there: for
 * logs, access rules, X-Forwarded-For.  Returns 0, -ENOMEM, or cio_peer_addr()'s errors
 * (-ENOTCONN: the client has gone). */
CIO_API int cio_http_req_peer(const cio_http_req *req, cio_addr *out);

/* Blocking.  Reads up to len bytes of the body (decoded, when chunked):
 * what has come, without waiting for more once a byte has (what the
 * socket holds already is taken too, while buf has room); the first
 * read of a request that expects 100-continue sends "100 Continue"
 * first.  Returns the bytes read (> 0), 0 at the end of
 * the body, or: -EMSGSIZE (the body passed max_body), -EPROTO (malformed
 * body: a bad chunk), -EPIPE (the connection ended inside the body),
 * -ETIMEDOUT (no byte for body_timeout, the body slower than
 * min_body_rate, or the task's deadline),
 * -ECANCELED, or the connection's error.  After an error the connection
 * closes once the response is written. */
CIO_API ssize_t cio_http_req_read(cio_http_req *req, void *buf, size_t len);

/* Blocking.  Reads the whole body into memory that the request owns
 * (NUL-terminated, valid until the handler returns) and sets *body.
 * Returns its length, -EMSGSIZE when it is longer than limit (what came
 * stays read; a handler that returns it before responding gets 413), or
 * an error of cio_http_req_read(), or -ENOMEM. */
CIO_API ssize_t cio_http_req_body(cio_http_req *req, size_t limit, const char **body);

/* --- the response --------------------------------------------------------- */

/* Sets the status, 200 unless set (200 to 599; 1xx are the server's).
 * Returns 0, or -EINVAL (out of range), -EALREADY (the head went). */
CIO_API int cio_http_resp_status(cio_http_resp *resp, int status);

/* Adds a header field.  Returns 0, or -EINVAL (a name that is not a
 * token, a value with CR, LF or NUL, or a field the server writes itself:
 * Content-Length, Transfer-Encoding, Connection), -ENOSPC (over 64 KiB of
 * fields), -ENOMEM, -EALREADY (the head went). */
CIO_API int cio_http_resp_header(cio_http_resp *resp, const char *name,
				 const char *value);

/* Announces the body's length: the response carries Content-Length, and
 * exactly len bytes must be written.  Returns 0, -EALREADY (the head
 * went) or -EINVAL (len above INT64_MAX). */
CIO_API int cio_http_resp_set_length(cio_http_resp *resp, uint64_t len);

/* Ends the connection after this response ("Connection: close").
 * Returns 0, or -EALREADY (the head went without it). */
CIO_API int cio_http_resp_close(cio_http_resp *resp);

/* Blocking (when the write buffer fills).  Writes len bytes of the body,
 * the head first when it has not gone yet; nothing goes on the wire for
 * HEAD requests and 204 or 304 responses (the bytes count, though).
 * Returns len, or -EMSGSIZE (more than set_length announced; nothing
 * written), -EALREADY (after cio_http_resp_end()), -ETIMEDOUT (the client
 * did not take a MiB of it within send_timeout), or the connection's
 * error, after which the connection closes. */
CIO_API ssize_t cio_http_resp_write(cio_http_resp *resp, const void *data, size_t len);

/* Blocking.  Writes len bytes of `file` from off as body, by splice on a
 * plain stream (cio_stream_sendfile()); announces the length when nothing
 * was written nor announced yet.  Returns the bytes sent (fewer when the
 * file ended first: the connection then closes, its framing broken), or
 * as cio_http_resp_write(). */
CIO_API ssize_t cio_http_resp_sendfile(cio_http_resp *resp, int file, int64_t off,
				       size_t len);

/* Blocking.  Sends what the response wrote so far (head included). */
CIO_API int cio_http_resp_flush(cio_http_resp *resp);

/* Blocking (it may flush).  Ends the response: the head if it has not
 * gone, the last chunk of a chunked body.  Returns 0, or -EPROTO (fewer
 * bytes written than set_length announced: the connection closes), or
 * the connection's error. */
CIO_API int cio_http_resp_end(cio_http_resp *resp);

/* Blocking.  A whole response in one call: status, Content-Type (NULL:
 * none), the body, the end.  Returns 0 or as the calls above. */
CIO_API int cio_http_resp_send(cio_http_resp *resp, int status,
			       const char *content_type, const void *body, size_t len);

/* ===================================================================== */
/*  HTTP/1.1 client                                                       */
/* ===================================================================== */
/* A client of one origin (a host and port, plain or TLS) on the calling
 * core, with a pool of kept-alive connections that its calls take in
 * turn.  A call is one exchange: the request's head and body written as
 * they come, then the response's head, then its body read as it
 * arrives.  A proxy streams both ways through it and never holds a whole
 * body.  Responses are parsed by llhttp, as the server's requests are,
 * with the same checks (no obs-fold, no bare LF, no CR or LF in values).
 *
 * Connections are dialled by name with cio_dial() (resolution, Happy
 * Eyeballs), kept after a response read to its end when both sides keep
 * them alive, reused newest first, and closed once idle for idle_timeout
 * (by a task of the client's, which runs only while a connection is
 * idle; a drain cancels it, and that closes them all).
 *
 * A request that fails on a kept connection before a byte of its
 * response came (the server closed it meanwhile: -EPIPE, -ECONNRESET) is
 * sent again, once, on a new connection when that is safe: its method is
 * idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and its head and
 * body are still held (a body over 64 KiB went out as it was written).
 * Before a request of another method takes a kept connection, the
 * connection is checked for a close the server sent.
 *
 * A client belongs to the core that made it: its calls are for that
 * core's tasks (many at once, one call each); each core makes its own.
 * A library built without llhttp keeps these calls: they return
 * -ENOTSUP. */

typedef struct cio_http_client cio_http_client;
typedef struct cio_http_call cio_http_call;

typedef struct cio_http_client_opts {
	cio_tls_ctx *tls;          /* a client ctx: https; NULL: plain */
	const char *server_name;   /* the TLS name (SNI, and the name the
	                            * certificate must carry); NULL: the
	                            * origin's host */
	size_t max_conns;          /* connections open at once, busy and
	                            * idle; 0: 1024; a call over it waits */
	size_t max_idle;           /* idle connections kept; 0: 64 */
	int64_t idle_timeout;      /* ns an idle connection is kept; 0: 30 s */
	int64_t connect_timeout;   /* ns to dial and shake hands; 0: 5 s */
	int64_t response_timeout;  /* ns from the request's end to the end of
	                            * the response's head; 0: 60 s */
	int64_t io_timeout;        /* ns a write, or a body read, waits for
	                            * progress; 0: 60 s */
	size_t max_head;           /* a response's head, bytes; 0: 64 KiB */
	size_t max_headers;        /* a response's fields; 0: 100 */
	size_t buf_size;           /* each connection's read and write
	                            * buffer; 0: 16 KiB */
} cio_http_client_opts;

/* Makes a client of origin "host:port" ("example.com:443",
 * "[::1]:8080", "10.0.0.1:80", "unix:/path") on the calling core.  Dials
 * nothing yet.  opts may be NULL; opts->tls is borrowed, and must outlive
 * the client.  Returns 0 and sets *out, or -EINVAL (origin malformed or
 * over 255 bytes), -ENOMEM, -ENOTSUP (built without llhttp). */
CIO_API int cio_http_client_new(cio_http_client **out, const char *origin,
				const cio_http_client_opts *opts);

/* Closes the client's idle connections and frees it.  Every call must be
 * freed first: else -EBUSY, and nothing is done.  Returns 0.  NULL is
 * ignored. */
CIO_API int cio_http_client_free(cio_http_client *cl);

typedef struct cio_http_client_stats {
	uint64_t open;      /* connections open, busy and idle */
	uint64_t idle;      /* ... of which idle */
	uint64_t dialled;   /* connections made */
	uint64_t dial_errors;
	uint64_t reused;    /* requests sent on a kept connection */
	uint64_t retried;   /* requests sent again on a new connection */
	uint64_t waited;    /* calls that waited for max_conns */
} cio_http_client_stats;

/* Fills *st with the client's counters. */
CIO_API void cio_http_client_stats_get(const cio_http_client *cl,
				       cio_http_client_stats *st);

/* Starts a call of `method` on `target` (an origin form "/path?query",
 * or "*", or an absolute form for a proxy).  The request carries the
 * origin as Host unless a Host field is added.  Nothing is sent yet.
 * Returns 0 and sets *out, or -EINVAL (a method that is not a token; a
 * target empty or holding a space, CR, LF or NUL), -ENOMEM. */
CIO_API int cio_http_call_new(cio_http_client *cl, const char *method,
			      const char *target, cio_http_call **out);

/* Adds a field to the request's head.  Returns 0, or -EINVAL (a name
 * that is not a token, a value with CR, LF or NUL, or a field the client
 * writes itself: Content-Length, Transfer-Encoding, Connection,
 * Keep-Alive, TE, Upgrade), -ENOSPC (over 64 KiB of fields), -ENOMEM,
 * -EALREADY (the head went). */
CIO_API int cio_http_call_add_header(cio_http_call *call, const char *name,
				     const char *value);

/* Announces the request body's length (Content-Length): exactly len
 * bytes must be written.  Without it, a body of 64 KiB at most gets
 * Content-Length anyway, a longer one is chunked, and a request with no
 * body has none (Content-Length: 0 for POST, PUT and PATCH).  Returns 0,
 * or -EALREADY (the head went), -EINVAL (len over INT64_MAX). */
CIO_API int cio_http_call_set_length(cio_http_call *call, uint64_t len);

/* Blocking once the request passes 64 KiB: then it takes a connection
 * (waiting for one, or dialling) and what it holds goes out.  Writes len
 * bytes of the request body.  Returns len, or -EMSGSIZE (more than
 * announced; nothing written), -EALREADY (after cio_http_call_send()), an
 * error of cio_http_call_send() (the call is then good only to be
 * freed). */
CIO_API ssize_t cio_http_call_write(cio_http_call *call, const void *data, size_t len);

/* Blocking.  Ends the request, sends what is held of it, and waits for
 * the response's head (skipping 100 Continue and other interim
 * responses).  Returns the response's status (200 to 599), or: -EPROTO
 * (fewer body bytes written than announced; a malformed response, its
 * status outside 100 to 599 among them; a 101, a head over max_head or
 * max_headers), -EPIPE (the server closed before
 * a whole head), -ECONNRESET, -ETIMEDOUT (connect_timeout,
 * response_timeout, io_timeout, or the task's deadline), -ECANCELED,
 * -ENOMEM, a cio_dial() error (-ECONNREFUSED, CIO_EDNS_*...), a TLS
 * handshake's error.  cio_http_call_error() tells it in words.  After an
 * error the call is good only to be freed. */
CIO_API int cio_http_call_send(cio_http_call *call);

/* The response, once cio_http_call_send() returned a status: the status,
 * the version (10 or 11), its fields (as cio_http_req_header_count(),
 * cio_http_req_header_at(), cio_http_req_header() for a request), and
 * the body's length from Content-Length, or -1 when it is chunked or ends
 * with the connection (0 for a response to HEAD, and for 204 and 304).
 * The strings live as long as the call. */
CIO_API int cio_http_call_status(const cio_http_call *call);
CIO_API int cio_http_call_version(const cio_http_call *call);
CIO_API size_t cio_http_call_header_count(const cio_http_call *call);
CIO_API int cio_http_call_header_at(const cio_http_call *call, size_t i,
				    const char **name, const char **value);
CIO_API const char *cio_http_call_header(const cio_http_call *call, const char *name);
CIO_API int64_t cio_http_call_content_length(const cio_http_call *call);

/* Blocking.  Reads up to len bytes of the response's body (decoded, when
 * chunked): what has come, without waiting for more once a byte has
 * (what the socket holds already is taken too, while buf has room).
 * Returns the bytes read (> 0), 0 at the end of the body, or:
 * -EPROTO (a malformed body), -EPIPE (the connection ended inside the
 * body), -ETIMEDOUT (no byte for io_timeout, or the task's deadline),
 * -ECANCELED, -EINVAL (no response yet), or the connection's error. */
CIO_API ssize_t cio_http_call_read(cio_http_call *call, void *buf, size_t len);

/* Blocking.  Reads the whole response body into memory the call owns
 * (NUL-terminated, valid until the call is freed) and sets *body.
 * Returns its length, -EMSGSIZE when it is longer than limit, an error of
 * cio_http_call_read(), or -ENOMEM. */
CIO_API ssize_t cio_http_call_body(cio_http_call *call, size_t limit, const char **body);

/* The last error of the call in words ("connection refused", "response
 * head too long", "certificate has expired"...), or "" without one. */
CIO_API const char *cio_http_call_error(const cio_http_call *call);

/* Blocking (briefly: a TLS connection's close_notify).  Ends the call
 * and frees it.  Its connection goes back to the pool when the request
 * went whole, the response was read to its end (or its rest is already
 * buffered), and both sides keep the connection; else it closes.  NULL
 * is ignored. */
CIO_API void cio_http_call_free(cio_http_call *call);

#ifdef __cplusplus
}
#endif
#endif /* COREIO_H */
