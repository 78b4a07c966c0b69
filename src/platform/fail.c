/* fail.c - the fail-point table of a COREIO_TESTING build (fail.h): the
 * rules of COREIO_FAIL, read once when the process starts, and a count of
 * the calls of each kind, printed at exit under COREIO_FAIL_REPORT=1. */
#include "fail.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#ifndef COREIO_TESTING
#error "fail.c is built only with COREIO_TESTING"
#endif

static const char *const kind_names[CIO__FAIL_NKINDS] = {
#define CIO__FAIL_NAME_(k) [CIO__FAIL_##k] = #k,
	CIO__FAIL_KINDS(CIO__FAIL_NAME_)
#undef CIO__FAIL_NAME_
};

/* The errno a rule without one injects: what the system most often says
 * for that kind of call. */
static const int kind_default[CIO__FAIL_NKINDS] = {
	[CIO__FAIL_alloc] = ENOMEM,      [CIO__FAIL_mmap] = ENOMEM,
	[CIO__FAIL_madvise] = ENOMEM,    [CIO__FAIL_sqe] = EBUSY,
	[CIO__FAIL_submit] = EBUSY,      [CIO__FAIL_eventfd] = EMFILE,
	[CIO__FAIL_pipe] = EMFILE,       [CIO__FAIL_socket] = EMFILE,
	[CIO__FAIL_accept] = EMFILE,     [CIO__FAIL_epoll_ctl] = ENOMEM,
	[CIO__FAIL_epoll_wait] = EINTR,  [CIO__FAIL_recv] = ECONNRESET,
	[CIO__FAIL_send] = ECONNRESET,   [CIO__FAIL_read] = EIO,
	[CIO__FAIL_write] = EIO,         [CIO__FAIL_splice] = EIO,
	[CIO__FAIL_ring] = EINVAL,       [CIO__FAIL_connect] = ECONNREFUSED,
	[CIO__FAIL_poller] = EMFILE,     [CIO__FAIL_signalfd] = EMFILE,
	[CIO__FAIL_nowait] = EAGAIN,
};

static const struct {
	const char *name;
	int err;
} errnos[] = {
	{"SHORT", CIO__FAIL_SHORT}, {"EINTR", EINTR}, {"EAGAIN", EAGAIN},
	{"ENOMEM", ENOMEM}, {"EMFILE", EMFILE}, {"ENFILE", ENFILE},
	{"ENOSPC", ENOSPC}, {"EBUSY", EBUSY}, {"ECONNRESET", ECONNRESET},
	{"EPIPE", EPIPE}, {"EIO", EIO}, {"ENOBUFS", ENOBUFS},
	{"ECONNABORTED", ECONNABORTED}, {"EINVAL", EINVAL},
	{"ECONNREFUSED", ECONNREFUSED}, {"ENETUNREACH", ENETUNREACH},
	{"ETIMEDOUT", ETIMEDOUT}, {"EPERM", EPERM}, {"EACCES", EACCES},
};

#define MAX_RULES 32

static struct rule {
	enum cio__fail_kind kind;
	unsigned long nth; /* 0: every call */
	int err;
} rules[MAX_RULES];
static int nrules;
static atomic_ulong calls[CIO__FAIL_NKINDS], fired[CIO__FAIL_NKINDS];

static void bad_spec(const char *spec, const char *why)
{
	fprintf(stderr, "coreio: COREIO_FAIL=\"%s\": %s\n", spec, why);
	_exit(2); /* never a silent run without the failures asked for */
}

/* One rule, "kind:N[:ERRNO]" or "kind:*[:ERRNO]", of len bytes at p. */
static void parse_rule(const char *spec, const char *p, size_t len)
{
	char buf[64];
	if (len == 0)
		return;
	if (len >= sizeof buf || nrules == MAX_RULES)
		bad_spec(spec, "too long");
	memcpy(buf, p, len);
	buf[len] = 0;
	char *nth = strchr(buf, ':');
	if (!nth)
		bad_spec(spec, "a rule is kind:N[:ERRNO]");
	*nth++ = 0;
	char *err = strchr(nth, ':');
	if (err)
		*err++ = 0;
	struct rule r = {.kind = CIO__FAIL_NKINDS};
	for (int k = 0; k < CIO__FAIL_NKINDS; k++)
		if (strcmp(buf, kind_names[k]) == 0)
			r.kind = (enum cio__fail_kind)k;
	if (r.kind == CIO__FAIL_NKINDS)
		bad_spec(spec, "unknown kind");
	if (strcmp(nth, "*") != 0) {
		char *end;
		r.nth = strtoul(nth, &end, 10);
		if (*end || r.nth == 0)
			bad_spec(spec, "N is a count from 1, or *");
	}
	r.err = kind_default[r.kind];
	if (err) {
		size_t i = 0;
		while (i < sizeof errnos / sizeof *errnos && strcmp(err, errnos[i].name) != 0)
			i++;
		if (i == sizeof errnos / sizeof *errnos)
			bad_spec(spec, "unknown errno name");
		r.err = errnos[i].err;
	}
	rules[nrules++] = r;
}

static void report(void)
{
	char line[1024];
	int n = snprintf(line, sizeof line, "coreio-fail-report: pid=%d", (int)getpid());
	for (int k = 0; k < CIO__FAIL_NKINDS && n < (int)sizeof line; k++)
		n += snprintf(line + n, sizeof line - (size_t)n, " %s=%lu/%lu", kind_names[k],
			      atomic_load(&calls[k]), atomic_load(&fired[k]));
	if (n < (int)sizeof line - 1)
		n += snprintf(line + n, sizeof line - (size_t)n, "\n");
	ssize_t w = write(STDERR_FILENO, line, strlen(line));
	(void)w;
}

/* Before main(): before any thread can ask. */
__attribute__((constructor)) static void fail_init(void)
{
	const char *spec = getenv("COREIO_FAIL");
	for (const char *p = spec; p && *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		parse_rule(spec, p, len);
		p = end ? end + 1 : NULL;
	}
	const char *rep = getenv("COREIO_FAIL_REPORT");
	if (rep && strcmp(rep, "1") == 0)
		atexit(report);
}

int cio__fail(enum cio__fail_kind kind)
{
	unsigned long n = atomic_fetch_add_explicit(&calls[kind], 1, memory_order_relaxed) + 1;
	for (int i = 0; i < nrules; i++)
		if (rules[i].kind == kind && (rules[i].nth == 0 || rules[i].nth == n)) {
			atomic_fetch_add_explicit(&fired[kind], 1, memory_order_relaxed);
			return rules[i].err;
		}
	return 0;
}
