/* stats.c - every core's counters gathered, and written as Prometheus
 * text exposition.
 *
 * Each core keeps its cio_stats with plain increments, readable only on
 * its own thread; a copy of another core's is had by a cross-core call
 * that runs cio_stats_get() there, between two of its tasks.  Nothing on
 * the hot path pays for the gathering. */
#include "../core/rt.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *stats_on_core(void *arg)
{
	cio_stats_get(arg);
	return NULL;
}

int cio_stats_get_all(cio_stats *st, size_t n)
{
	(void)cio__self_or_die("cio_stats_get_all");
	size_t count = (size_t)cio_core_count(), me = (size_t)cio_core_id();
	if (count > n)
		count = n;
	for (size_t k = 0; k < count; k++) {
		memset(&st[k], 0, sizeof st[k]);
		if (k == me) {
			cio_stats_get(&st[k]);
			continue;
		}
		/* st[k] may be on the caller's stack: the call waits for
		 * stats_on_core to return, even when interrupted. */
		int rc = cio_core_call((int)k, stats_on_core, &st[k], NULL);
		if (rc == -ECANCELED || rc == -ETIMEDOUT)
			return rc;
		/* -ESHUTDOWN and the like: that core's record stays zero. */
	}
	return (int)count;
}

/* One family of samples: a field of cio_stats, its metric name, and the
 * label that tells it from others of the same name. */
static const struct metric {
	const char *name;  /* without "coreio_" */
	const char *type;  /* "counter" or "gauge" */
	const char *help;
	const char *label; /* NULL, or `kind="..."` */
	size_t off;        /* of the uint64_t in cio_stats */
} metrics[] = {
#define M(field, name, type, help, label) {name, type, help, label, offsetof(cio_stats, field)}
	M(tasks_spawned, "tasks_spawned_total", "counter", "Tasks spawned.", NULL),
	M(tasks_live, "tasks_live", "gauge", "Tasks spawned and not yet finished.", NULL),
	M(switches, "switches_total", "counter", "Context switches, task or scheduler.", NULL),
	M(ticks, "ticks_total", "counter", "Scheduler ticks.", NULL),
	M(driver_waits, "driver_sleeps_total", "counter",
	  "Times the scheduler, with nothing to run, slept in the driver.", NULL),
	M(stacks_mapped, "stacks_mapped", "gauge", "Task stacks in use or cached.", NULL),
#define OPS_HELP "I/O operations made by blocking calls, by kind, counted as they return."
	M(ops_read, "ops_total", "counter", OPS_HELP, "kind=\"read\""),
	M(ops_write, "ops_total", "counter", OPS_HELP, "kind=\"write\""),
	M(ops_accept, "ops_total", "counter", OPS_HELP, "kind=\"accept\""),
	M(ops_connect, "ops_total", "counter", OPS_HELP, "kind=\"connect\""),
	M(ops_poll, "ops_total", "counter", OPS_HELP, "kind=\"poll\""),
	M(ops_other, "ops_total", "counter", OPS_HELP, "kind=\"other\""),
	M(accepted, "accepted_total", "counter", "Connections accepted.", NULL),
	M(accept_errors, "accept_errors_total", "counter",
	  "Accepts that failed (EMFILE, ENFILE, ECONNABORTED, ...), interruptions aside.", NULL),
	M(timers_armed, "timers_armed_total", "counter", "Timers armed.", NULL),
	M(driver_polls, "driver_polls_total", "counter",
	  "Backend waits (io_uring_enter to submit and wait, epoll_wait, kevent).", NULL),
	M(driver_events, "driver_events_total", "counter",
	  "Completions or readiness events the backend waits reaped.", NULL),
	M(uring_enters, "uring_enters_total", "counter", "io_uring_enter calls of every purpose.", NULL),
	M(uring_sq_full, "uring_sq_full_total", "counter",
	  "Times the io_uring submission queue was full and was submitted early.", NULL),
	M(uring_cq_overflow, "uring_cq_overflow_total", "counter",
	  "Waits after which the kernel held completions back (IORING_SQ_CQ_OVERFLOW).", NULL),
	M(uring_cq_dropped, "uring_cq_dropped_total", "counter",
	  "Completions the kernel dropped (the ring's overflow counter).", NULL),
	M(msgs_sent, "messages_sent_total", "counter", "Messages pushed to a core's inbox.", NULL),
	M(msgs_received, "messages_received_total", "counter",
	  "Messages handled from this core's inbox.", NULL),
	M(pool_jobs, "pool_jobs_total", "counter", "Jobs queued on the blocking pool.", NULL),
	M(pool_waits, "pool_waits_total", "counter",
	  "Blocking-pool jobs that found no idle thread.", NULL),
	M(stalls, "stalls_total", "counter", "Stall reports: tasks that ran too long without parking.",
	  NULL),
	M(bufs_lent, "bufs_lent_bytes", "gauge", "Bytes of lent buffers out now (cio_recv_buf).",
	  NULL),
	M(bufs_ring, "bufs_ring_bytes", "gauge",
	  "Bytes of buffers in io_uring's provided-buffer ring now.", NULL),
#undef M
};

/* A text being written into buf, snprintf(3)-like: `need` counts all of
 * it, buf takes what fits. */
struct out {
	char *buf;
	size_t len, need;
};

__attribute__((format(printf, 2, 3)))
static void out(struct out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = o->need < o->len ? o->len - o->need : 0;
	int n = vsnprintf(room ? o->buf + o->need : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->need += (size_t)n;
}

ssize_t cio_stats_format(char *buf, size_t len, const cio_stats *st, size_t n)
{
	if ((!st && n) || (!buf && len))
		return -EINVAL;
	struct out o = {buf, len, 0};
	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
		const struct metric *m = &metrics[i];
		if (i == 0 || strcmp(m->name, metrics[i - 1].name) != 0)
			out(&o, "# HELP coreio_%s %s\n# TYPE coreio_%s %s\n", m->name, m->help,
			    m->name, m->type);
		for (size_t k = 0; k < n; k++) {
			uint64_t v;
			memcpy(&v, (const char *)&st[k] + m->off, sizeof v);
			out(&o, "coreio_%s{core=\"%zu\"%s%s} %" PRIu64 "\n", m->name, k,
			    m->label ? "," : "", m->label ? m->label : "", v);
		}
	}
	/* The pool is the process's: one sample, no core. */
	out(&o, "# HELP coreio_pool_queued Jobs waiting in the blocking pool (the process's).\n"
		"# TYPE coreio_pool_queued gauge\ncoreio_pool_queued %" PRIu64 "\n",
	    n ? st[0].pool_queued : (uint64_t)0);
	if (o.need > (size_t)SSIZE_MAX)
		return -EOVERFLOW;
	return (ssize_t)o.need;
}

ssize_t cio_stats_dump(char *buf, size_t len)
{
	(void)cio__self_or_die("cio_stats_dump");
	int n = cio_core_count();
	cio_stats *st = cio__calloc((size_t)n, sizeof *st);
	if (!st)
		return -ENOMEM;
	int rc = cio_stats_get_all(st, (size_t)n);
	ssize_t r = rc < 0 ? rc : cio_stats_format(buf, len, st, (size_t)rc);
	free(st);
	return r;
}
