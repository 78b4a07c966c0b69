/* overflow.c - turns a fault in a task's guard page into a message naming
 * the task, instead of a bare segmentation fault.
 *
 * The handler runs on a per-thread alternate stack (the faulting stack is
 * exhausted), writes with write(2) only, and aborts.  A fault anywhere else
 * goes to the handler that was installed before ours, or to the default
 * action. */
#include "overflow.h"
#include "rt.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sigaction old_segv, old_bus;
static pthread_once_t installed = PTHREAD_ONCE_INIT;

static size_t put(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_u64(char *buf, size_t at, size_t cap, uint64_t v)
{
	char d[24];
	size_t n = 0;
	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < sizeof d);
	while (n && at < cap)
		buf[at++] = d[--n];
	return at;
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	struct cio__rt *rt = cio__rt_cur;
	struct cio__task *t = rt ? rt->current : NULL;
	if (t && cio__stack_in_guard(&rt->stacks, &t->stack, si->si_addr)) {
		char msg[160];
		size_t n = 0, cap = sizeof msg - 1;
		const struct cio__slot *s = &rt->slots[t->slot];
		uint64_t id = ((uint64_t)s->gen << 32) | ((uint64_t)t->slot + 1);
		n = put(msg, n, cap, "coreio: stack overflow in task ");
		n = put_u64(msg, n, cap, id);
		n = put(msg, n, cap, " \"");
		n = put(msg, n, cap, t->name);
		n = put(msg, n, cap, "\" (stack ");
		n = put_u64(msg, n, cap, t->stack.size / 1024);
		n = put(msg, n, cap, " KiB); raise its stack_size\n");
		msg[n] = 0;
		ssize_t w = write(STDERR_FILENO, msg, n);
		(void)w;
		signal(SIGABRT, SIG_DFL);
		abort();
	}
	struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;
	if (old->sa_flags & SA_SIGINFO) {
		old->sa_sigaction(sig, si, uc);
	} else if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
		/* Returning re-runs the faulting instruction, which now gets the
		 * default action (and a core dump) as if we were never here. */
		sigaction(sig, old, NULL);
	} else {
		old->sa_handler(sig);
	}
}

static void install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
}

void cio__overflow_attach(struct cio__rt *rt)
{
	pthread_once(&installed, install);
	stack_t ss, old;
	if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
		return; /* the thread has one already: keep it */
	size_t size = 64 * 1024;
	ss.ss_sp = cio__malloc(size);
	if (!ss.ss_sp)
		return;
	ss.ss_size = size;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) != 0) {
		free(ss.ss_sp);
		return;
	}
	rt->altstack = ss.ss_sp;
}

void cio__overflow_detach(struct cio__rt *rt)
{
	if (!rt->altstack)
		return;
	stack_t ss = {.ss_flags = SS_DISABLE};
	sigaltstack(&ss, NULL);
	free(rt->altstack);
	rt->altstack = NULL;
}
