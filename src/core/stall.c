/* stall.c - the stall detector: a watchdog thread notices a task that
 * runs too long without parking, and a signal makes that task's own
 * thread report it, with a backtrace of where it is.
 *
 * The runtime's side costs nothing it did not pay before: the watchdog
 * reads each runtime's switch count and running task (relaxed loads of
 * fields the scheduler writes anyway, cio__count_switch()); a count that
 * has not moved for the limit while a task runs is a stall.  Only the
 * stalled thread can walk its own stack, hence the signal. */
#include "rt.h"
#include "../platform/clock.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* backtrace(3): glibc and the BSD-derived libcs (macOS); not musl.  The
 * BSDs need -lexecinfo, which the build does not link: none there. */
#if defined(__GLIBC__) || defined(__APPLE__)
#include <execinfo.h>
#define HAVE_BACKTRACE 1
#endif

/* SIGURG: ignored by default, so a stray one harms nobody, and rarely
 * used (only sockets with F_SETOWN send it); real-time signals are
 * Linux's only. */
#define STALL_SIG SIGURG
#define MAX_FRAMES 48
#define REPORT_EVERY CIO_SEC

/* A runtime the watchdog watches.  The watchdog's fields are under
 * wd.lock; the request to the handler is atomic. */
struct cio__stall {
	struct cio__stall *next;
	struct cio__rt *rt;
	pthread_t thread;
	uint64_t seen;        /* the switch count at the last look */
	int64_t since;        /* when it last moved (or no task ran) */
	int64_t reported;     /* when a report was last asked for */
	/* Asked by the watchdog, taken by the handler: the switch count it
	 * saw (a report only if the same task still runs), and for how long. */
	atomic_int asked;
	_Atomic uint64_t asked_switches;
	_Atomic int64_t asked_ns;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct cio__stall *list;
	pthread_t thread;
	bool running;
	unsigned gen;         /* a watchdog runs while gen is what it started with */
	bool installed;       /* the handler (stays once installed) */
	struct sigaction old; /* what was there before it */
} wd = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static _Atomic(cio_stall_fn *) hook_fn;
static _Atomic(void *) hook_arg;

void cio_stall_hook(cio_stall_fn *fn, void *arg)
{
	atomic_store(&hook_arg, arg);
	atomic_store(&hook_fn, fn);
}

int64_t cio__stall_limit(const cio_config *cfg)
{
	if (cfg->stall_ns)
		return cfg->stall_ns > 0 ? cfg->stall_ns : 0;
	const char *e = getenv("COREIO_STALL_MS");
	if (!e || !*e)
		return 0;
	char *end;
	long long ms = strtoll(e, &end, 10);
	if (*end || ms <= 0 || ms > INT64_MAX / CIO_MS)
		return 0;
	return ms * CIO_MS;
}

/* --- the report, on the stalled thread, in the signal handler -------- */

/* Appends s to the buffer at *p (up to end): async-signal-safe snprintf. */
static void put(char **p, char *end, const char *s)
{
	while (*s && *p < end)
		*(*p)++ = *s++;
}

static void put_u64(char **p, char *end, uint64_t v)
{
	char d[24];
	int n = 0;
	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n && *p < end)
		*(*p)++ = d[--n];
}

static void write_all(int fd, const char *b, size_t n)
{
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		b += w;
		n -= (size_t)w;
	}
}

/* The report without a hook: one line on stderr, then the frames. */
static void report_stderr(const cio_stall_info *in)
{
	char line[256], *p = line, *end = line + sizeof line - 1;
	put(&p, end, "coreio: stall: core ");
	put_u64(&p, end, (uint64_t)in->core);
	put(&p, end, " task ");
	put_u64(&p, end, (uint64_t)in->task);
	put(&p, end, " \"");
	put(&p, end, in->name);
	put(&p, end, "\" running ");
	put_u64(&p, end, (uint64_t)(in->running_ns / CIO_MS));
	put(&p, end, " ms without parking\n");
	write_all(STDERR_FILENO, line, (size_t)(p - line));
#ifdef HAVE_BACKTRACE
	if (in->nframes > 0)
		backtrace_symbols_fd((void *const *)in->frames, in->nframes, STDERR_FILENO);
#endif
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	struct cio__rt *rt = cio__rt_cur;
	struct cio__stall *s = rt ? rt->stall : NULL;
	if (!s || !atomic_exchange(&s->asked, 0)) {
		/* Not ours: the handler that was there before gets it. */
		if (wd.old.sa_flags & SA_SIGINFO) {
			if (wd.old.sa_sigaction)
				wd.old.sa_sigaction(sig, si, uc);
		} else if (wd.old.sa_handler != SIG_DFL && wd.old.sa_handler != SIG_IGN) {
			wd.old.sa_handler(sig);
		}
		errno = saved;
		return;
	}
	struct cio__task *t = rt->current;
	/* The task the watchdog saw may have parked since it looked. */
	if (t && rt->stats.switches == atomic_load(&s->asked_switches)) {
		void *frames[MAX_FRAMES];
		int n = 0;
#ifdef HAVE_BACKTRACE
		n = backtrace(frames, MAX_FRAMES);
		/* Frame 0 is this handler: start with the signal's frame. */
		int skip = n > 1 ? 1 : 0;
#else
		int skip = 0;
#endif
		cio_stall_info info = {
			.core = rt->core_id,
			.task = cio_self(),
			.name = t->name,
			.running_ns = atomic_load(&s->asked_ns),
			.frames = frames + skip,
			.nframes = n - skip,
		};
		rt->stats.stalls++;
		cio_stall_fn *fn = atomic_load(&hook_fn);
		if (fn)
			fn(&info, atomic_load(&hook_arg));
		else
			report_stderr(&info);
	}
	errno = saved;
}

/* --- the watchdog thread ------------------------------------------------ */

/* How often the watchdog looks: a quarter of the shortest limit, so a
 * stall is seen within 1.25 limits, but at least every 250 ms. */
static int64_t period(void)
{
	int64_t p = 250 * CIO_MS;
	for (struct cio__stall *s = wd.list; s; s = s->next)
		if (s->rt->stall_ns / 4 < p)
			p = s->rt->stall_ns / 4;
	return p < CIO_MS ? CIO_MS : p;
}

static void look(struct cio__stall *s, int64_t now)
{
	struct cio__rt *rt = s->rt;
	uint64_t sw = __atomic_load_n(&rt->stats.switches, __ATOMIC_RELAXED);
	bool task = __atomic_load_n(&rt->current, __ATOMIC_RELAXED) != NULL;
	if (sw != s->seen || !task) {
		s->seen = sw;
		s->since = now;
		return;
	}
	if (now - s->since < rt->stall_ns || now - s->reported < REPORT_EVERY)
		return;
	s->reported = now;
	atomic_store(&s->asked_switches, sw);
	atomic_store(&s->asked_ns, now - s->since);
	atomic_store(&s->asked, 1);
	pthread_kill(s->thread, STALL_SIG);
}

static void *watchdog(void *arg)
{
	unsigned gen = (unsigned)(uintptr_t)arg;
	pthread_mutex_lock(&wd.lock);
	while (wd.gen == gen) {
		/* CLOCK_REALTIME, the condition's clock everywhere: a jump
		 * of the wall clock only makes one look early or late. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t at = (int64_t)ts.tv_nsec + period();
		ts.tv_sec += (time_t)(at / CIO_SEC);
		ts.tv_nsec = (long)(at % CIO_SEC);
		pthread_cond_timedwait(&wd.cond, &wd.lock, &ts);
		int64_t now = cio__clock_ns();
		for (struct cio__stall *s = wd.list; s && wd.gen == gen; s = s->next)
			look(s, now);
	}
	pthread_mutex_unlock(&wd.lock);
	return NULL;
}

int cio__stall_threads(void)
{
	pthread_mutex_lock(&wd.lock);
	int n = wd.running;
	pthread_mutex_unlock(&wd.lock);
	return n;
}

/* A child of fork() has none of the parent's threads: no watchdog, and
 * none of the parent's runtimes to watch. */
static void fork_child(void)
{
	pthread_mutex_init(&wd.lock, NULL);
	pthread_cond_init(&wd.cond, NULL);
	wd.list = NULL;
	wd.running = false;
	wd.gen++;
}

/* Installs the handler once (wd.lock held).  backtrace() loads libgcc on
 * its first call, which mallocs: done here, not first in a handler. */
static int install(void)
{
	if (wd.installed)
		return 0;
#ifdef HAVE_BACKTRACE
	void *f[2];
	backtrace(f, 2);
#endif
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(STALL_SIG, &sa, &wd.old) < 0)
		return -errno;
	pthread_atfork(NULL, NULL, fork_child);
	wd.installed = true;
	return 0;
}

int cio__stall_attach(struct cio__rt *rt)
{
	if (rt->stall_ns <= 0)
		return 0;
	struct cio__stall *s = cio__calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->rt = rt;
	s->thread = pthread_self();
	s->since = cio__clock_ns();
	s->reported = s->since - REPORT_EVERY;
	pthread_mutex_lock(&wd.lock);
	int rc = install();
	if (rc == 0 && !wd.running) {
		/* The watchdog takes no signal: SIGURG is for the cores, and
		 * SIGINT / SIGTERM for whoever waits on them. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = -pthread_create(&wd.thread, NULL, watchdog,
				     (void *)(uintptr_t)++wd.gen);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		wd.running = rc == 0;
	}
	if (rc == 0) {
		s->next = wd.list;
		wd.list = s;
		rt->stall = s;
		pthread_cond_signal(&wd.cond); /* a shorter limit: a new period */
	}
	pthread_mutex_unlock(&wd.lock);
	if (rc < 0)
		free(s);
	return rc;
}

void cio__stall_detach(struct cio__rt *rt)
{
	struct cio__stall *s = rt->stall;
	if (!s)
		return;
	pthread_t th;
	bool join = false;
	pthread_mutex_lock(&wd.lock);
	for (struct cio__stall **pp = &wd.list; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	rt->stall = NULL; /* a late signal finds no request */
	if (!wd.list && wd.running) {
		wd.gen++; /* that watchdog ends; a new runtime starts another */
		wd.running = false;
		th = wd.thread;
		join = true;
		pthread_cond_broadcast(&wd.cond);
	}
	pthread_mutex_unlock(&wd.lock);
	if (join)
		pthread_join(th, NULL);
	free(s);
}
