/* pool.c - the blocking pool: runs functions that must block (getaddrinfo,
 * CPU-heavy work, file calls a backend cannot make asynchronous) on
 * process-wide threads, while only the calling task waits.
 *
 * A job is a heap record: the caller queues it and parks; a pool thread
 * runs it and pushes the record back to the caller's runtime as an inbox
 * message, whose handler wakes the caller.  The record is on the heap, not
 * the caller's stack, because an interrupted caller leaves at once and the
 * pool thread may still be running its function.
 *
 * Who owns the record is decided by its atomic state:
 *
 *   QUEUED --(pool thread takes it, under the lock)--> RUNNING
 *   QUEUED --(interrupted caller unlinks it, under the lock)--> freed
 *   RUNNING --(pool thread, CAS, fn returned)--> DONE --(push returned)--> RELEASED
 *   RUNNING --(interrupted caller, CAS)--> ABANDONED: the pool thread drops
 *            the result and frees the record; it never touches the runtime.
 *
 * Exactly one of the two CASes from RUNNING wins.  A caller that loses
 * (DONE) waits for the reply, which is already on its way, and keeps the
 * result.  A pool thread that wins DONE pushes to a runtime that is still
 * alive: its caller is still parked there, and a runtime does not end
 * while a task lives.  But the push keeps touching the runtime (its wake
 * flag, its eventfd) after the message is visible, so the caller also
 * waits for RELEASED before it returns: otherwise its runtime could end
 * and be freed under the push's feet.  That wait is a few instructions and
 * at most one write(2) long, and the reply's trip through the scheduler
 * almost always covers it.
 *
 * Two classes of job share the threads, each with a budget of
 * max_threads running at once: the runtime's own (file calls a backend
 * declined, name lookups), taken first, and the users' (cio_blocking()).
 * So an open or a lookup never waits behind CPU-heavy jobs, nor they
 * behind it.  Threads start on demand when takeable jobs outnumber idle
 * (and starting) threads; a thread idle for 10 s exits.  They run with every signal
 * blocked, so that signals go to the runtimes' threads as users expect. */
#include "rt.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_THREADS 16

/* How long a pool thread waits for work before it exits.  COREIO_TESTING
 * builds make it a variable that tests shorten. */
#ifdef COREIO_TESTING
int64_t cio__blocking_idle_ns = 10 * CIO_SEC;
#else
#define cio__blocking_idle_ns (10 * CIO_SEC)
#endif

enum { QUEUED, RUNNING, DONE, RELEASED, ABANDONED };

struct job {
	struct cio__msg m;        /* the reply; first, so a msg is a job */
	struct job *prev, *next;  /* in the queue, under pool.lock */
	cio_fn *fn;
	void *arg;
	cio_drop_fn *drop;
	void *result;
	atomic_int state;
	bool io;                  /* the runtime's own class: first, own room */
	/* The caller's, touched on its runtime's thread only: */
	struct cio__rt *rt;
	struct cio__task *waiter;
	bool replied;             /* the reply was handled */
};

enum { USER, IO };

struct queue {
	struct job *head, *tail;  /* FIFO */
	size_t queued;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work;      /* on CLOCK_MONOTONIC, for the idle wait */
	pthread_cond_t gone;      /* a thread exited (cio_blocking_shutdown()) */
	struct queue q[2];        /* by class: USER, IO */
	size_t threads, starting, idle, running;
	size_t running_class[2];
	size_t max_threads, max_queue; /* max_queue 0: unbounded, per class */
	bool used;                /* the configuration is fixed */
	bool stopping;            /* idle threads exit now */
} pool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.max_threads = DEFAULT_THREADS,
};

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* fork() copies the pool's counts but none of its threads: a child would
 * queue jobs that no thread runs, and wait for them for ever.  The lock is
 * held across fork, so that the child finds the state whole, and the
 * child starts with an empty pool (the parent's queued jobs belong to
 * runtimes that did not cross the fork). */
static void fork_prepare(void)
{
	pthread_mutex_lock(&pool.lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&pool.lock);
}

static void work_init(void)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pool.work, &ca);
	pthread_cond_init(&pool.gone, &ca);
	pthread_condattr_destroy(&ca);
}

static void fork_child(void)
{
	work_init(); /* a condition with no waiters: the parent's are not here */
	memset(pool.q, 0, sizeof pool.q);
	pool.threads = pool.starting = pool.idle = pool.running = 0;
	pool.running_class[USER] = pool.running_class[IO] = 0;
	pthread_mutex_unlock(&pool.lock);
}

static void pool_init(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	work_init();
}

int cio_blocking_config(size_t max_threads, size_t max_queue)
{
	int rc = 0;
	pthread_mutex_lock(&pool.lock);
	if (pool.used) {
		rc = -EBUSY;
	} else {
		pool.max_threads = max_threads ? max_threads : DEFAULT_THREADS;
		pool.max_queue = max_queue;
	}
	pthread_mutex_unlock(&pool.lock);
	return rc;
}

void cio_blocking_stats_get(cio_blocking_stats *st)
{
	pthread_mutex_lock(&pool.lock);
	st->threads = pool.threads;
	st->idle = pool.idle;
	st->queued = pool.q[USER].queued + pool.q[IO].queued;
	st->running = pool.running;
	st->max_threads = pool.max_threads;
	st->max_queue = pool.max_queue;
	pthread_mutex_unlock(&pool.lock);
}

/* --- the queue (pool.lock held) ---------------------------------------- */

static void queue_push(struct job *j)
{
	struct queue *q = &pool.q[j->io];
	j->next = NULL;
	j->prev = q->tail;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->queued++;
}

static void queue_unlink(struct job *j)
{
	struct queue *q = &pool.q[j->io];
	if (j->prev)
		j->prev->next = j->next;
	else
		q->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		q->tail = j->prev;
	q->queued--;
}

/* Queued jobs of class c that a thread could take now. */
static size_t takeable_of(int c)
{
	size_t room = pool.max_threads - pool.running_class[c];
	return pool.q[c].queued < room ? pool.q[c].queued : room;
}

static size_t takeable(void)
{
	return takeable_of(IO) + takeable_of(USER);
}

/* The next job a thread may take, the runtime's own first, each class
 * while fewer than max_threads of it run.  NULL: none. */
static struct job *queue_take(void)
{
	struct job *j = takeable_of(IO) ? pool.q[IO].head : NULL;
	if (!j && takeable_of(USER))
		j = pool.q[USER].head;
	if (j) {
		queue_unlink(j);
		pool.running_class[j->io]++;
	}
	return j;
}

/* --- pool threads ---------------------------------------------------------- */

/* The job this pool thread runs, for cio_blocking_abandoned(). */
static __thread struct job *current_job;

bool cio_blocking_abandoned(void)
{
	struct job *j = current_job;
	return j && atomic_load_explicit(&j->state, memory_order_acquire) == ABANDONED;
}

static void run_job(struct job *j)
{
	current_job = j;
	void *r = j->fn(j->arg);
	current_job = NULL;
	j->result = r;
	int expect = RUNNING;
	if (atomic_compare_exchange_strong_explicit(&j->state, &expect, DONE,
						    memory_order_acq_rel,
						    memory_order_acquire)) {
		/* The caller waits (its runtime is alive) and will not leave
		 * before RELEASED.  The push cannot be refused: the caller's
		 * runtime closes its inbox only once every task has ended. */
		if (cio__inbox_push(j->rt, &j->m) < 0)
			abort();
		/* The last touch of the record: the caller may free it now. */
		atomic_store_explicit(&j->state, RELEASED, memory_order_release);
		return;
	}
	/* ABANDONED: the caller is gone, maybe its runtime too. */
	if (j->drop)
		j->drop(j->arg, r);
	free(j);
}

static void *pool_thread(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&pool.lock);
	pool.starting--;
	for (;;) {
		struct job *j;
		while (!(j = queue_take())) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t at = (int64_t)ts.tv_sec * CIO_SEC + ts.tv_nsec +
				     cio__blocking_idle_ns;
			ts.tv_sec = at / CIO_SEC;
			ts.tv_nsec = at % CIO_SEC;
			int rc = 0;
			if (!pool.stopping) {
				pool.idle++;
				rc = pthread_cond_timedwait(&pool.work, &pool.lock, &ts);
				pool.idle--;
			}
			if ((rc == ETIMEDOUT || pool.stopping) && !takeable()) {
				pool.threads--;
				pthread_cond_broadcast(&pool.gone);
				pthread_mutex_unlock(&pool.lock);
				return NULL;
			}
		}
		/* Under the lock: an interrupted caller looks for QUEUED under
		 * it too, so it either unlinks the job or sees it RUNNING. */
		atomic_store_explicit(&j->state, RUNNING, memory_order_relaxed);
		pool.running++;
		pthread_mutex_unlock(&pool.lock);
		int c = j->io; /* j may be freed by run_job() */
		run_job(j);
		pthread_mutex_lock(&pool.lock);
		pool.running--;
		pool.running_class[c]--;
	}
}

/* Starts one more pool thread, with every signal blocked (the new thread
 * inherits the creator's mask).  pool.lock held. */
static int start_thread(void)
{
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&th, &attr, pool_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc)
		return -rc;
	pool.threads++;
	pool.starting++;
	return 0;
}

/* Queues j, starting a thread if none is free to take it.  Returns 1
 * when no thread was idle to take it at once (it waits for one, or for
 * one to start), 0 when one was, or -EBUSY. */
static int submit(struct job *j)
{
	pthread_once(&pool_once, pool_init);
	pthread_mutex_lock(&pool.lock);
	pool.used = true;
	if (pool.max_queue && pool.q[j->io].queued >= pool.max_queue) {
		pthread_mutex_unlock(&pool.lock);
		return -EBUSY;
	}
	queue_push(j);
	int waits = pool.idle < takeable();
	if (pool.idle + pool.starting < takeable() && pool.threads < 2 * pool.max_threads &&
	    start_thread() < 0 && pool.threads == 0) {
		/* No thread could start and none exists to run it. */
		queue_unlink(j);
		pthread_mutex_unlock(&pool.lock);
		return -EBUSY;
	}
	pthread_cond_signal(&pool.work);
	pthread_mutex_unlock(&pool.lock);
	return waits;
}

int cio_blocking_shutdown(int64_t timeout_ns)
{
	pthread_once(&pool_once, pool_init);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t at = (int64_t)ts.tv_sec * CIO_SEC + ts.tv_nsec + (timeout_ns > 0 ? timeout_ns : 0);
	ts.tv_sec = at / CIO_SEC;
	ts.tv_nsec = at % CIO_SEC;
	pthread_mutex_lock(&pool.lock);
	pool.stopping = true;
	pthread_cond_broadcast(&pool.work);
	int rc = 0;
	while (pool.threads && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&pool.gone, &pool.lock, &ts);
	rc = pool.threads ? -ETIMEDOUT : 0;
	pool.stopping = false; /* a later job starts threads again */
	pthread_mutex_unlock(&pool.lock);
	return rc;
}

size_t cio__blocking_queued(void)
{
	cio_blocking_stats st;
	cio_blocking_stats_get(&st);
	return st.queued;
}

size_t cio__blocking_idle(void)
{
	pthread_mutex_lock(&pool.lock);
	size_t n = pool.idle;
	pthread_mutex_unlock(&pool.lock);
	return n;
}

/* --- the caller's side ---------------------------------------------------- */

/* On the caller's runtime: the reply. */
static void job_reply(struct cio__rt *rt, struct cio__msg *m)
{
	struct job *j = (struct job *)m;
	(void)rt;
	j->replied = true;
	cio__wake(j->waiter, 0);
}

static void job_reject(struct cio__msg *m)
{
	/* A runtime ends only once its tasks have, and the caller does not
	 * leave while its reply is on the way. */
	(void)m;
	fprintf(stderr, "coreio: a blocking-pool reply reached a stopped runtime\n");
	abort();
}

/* The interrupted caller gives the job up.  Returns whether it could: the
 * job was still queued (now unlinked; dropped here) or still running (the
 * pool thread drops it when fn returns).  False when it has finished: the
 * reply is on its way. */
static bool abandon(struct job *j, bool hold)
{
	pthread_mutex_lock(&pool.lock);
	if (atomic_load_explicit(&j->state, memory_order_relaxed) == QUEUED) {
		queue_unlink(j);
		pthread_mutex_unlock(&pool.lock);
		if (j->drop)
			j->drop(j->arg, NULL);
		free(j);
		return true;
	}
	pthread_mutex_unlock(&pool.lock);
	if (hold)
		return false; /* a running job is waited for */
	int expect = RUNNING;
	return atomic_compare_exchange_strong_explicit(&j->state, &expect, ABANDONED,
						       memory_order_acq_rel,
						       memory_order_acquire);
}

static int blocking(const char *call, cio_fn *fn, void *arg, cio_drop_fn *drop,
		    bool hold, bool io, void **result)
{
	struct cio__task *self = cio__self_or_die(call);
	struct cio__rt *rt = cio__rt_cur;
	if (!fn)
		return -EINVAL;
	int rc = cio__interrupted(self);
	if (rc < 0) {
		if (drop)
			drop(arg, NULL);
		return rc;
	}
	struct job *j = cio__malloc(sizeof *j);
	if (!j)
		return -ENOMEM;
	j->m.handle = job_reply;
	j->m.reject = job_reject;
	j->fn = fn;
	j->arg = arg;
	j->drop = drop;
	j->result = NULL;
	atomic_init(&j->state, QUEUED);
	j->io = io;
	j->rt = rt;
	j->waiter = self;
	j->replied = false;
	if ((rc = submit(j)) < 0) {
		free(j);
		return rc;
	}
	rt->stats.pool_jobs++;
	rt->stats.pool_waits += (unsigned)rc;
	rt->remote_waits++; /* a pool thread will wake us */
	for (;;) {
		rc = cio__park(self);
		if (j->replied)
			break; /* done, even if interrupted at the same moment */
		if (rc < 0) {
			if (abandon(j, hold)) {
				rt->remote_waits--;
				return rc;
			}
			/* Finished meanwhile (its reply is being pushed and
			 * comes within a tick), or running and held: wait for
			 * it, uninterruptibly. */
			while (!j->replied)
				cio__park_hard(self);
			break;
		}
	}
	rt->remote_waits--;
	/* The pool thread may still be inside the push that woke us. */
	for (unsigned spins = 0;
	     atomic_load_explicit(&j->state, memory_order_acquire) != RELEASED; spins++)
		if (spins >= 64)
			sched_yield();
	if (result)
		*result = j->result;
	free(j);
	return 0;
}

int cio_blocking(cio_fn *fn, void *arg, void **result)
{
	return blocking("cio_blocking", fn, arg, NULL, false, false, result);
}

int cio_blocking_drop(cio_fn *fn, void *arg, cio_drop_fn *drop, void **result)
{
	return blocking("cio_blocking_drop", fn, arg, drop, false, false, result);
}

int cio__blocking_hold(const char *call, cio_fn *fn, void *arg, void **result)
{
	return blocking(call, fn, arg, NULL, true, true, result);
}

/* --- getaddrinfo ------------------------------------------------------------ */

/* The request, owned by the job: the caller's strings and hints may be
 * gone by the time an abandoned lookup ends. */
struct gai {
	char *host, *service;
	struct addrinfo hints;
	bool has_hints;
	struct addrinfo *res;
	int rc, err; /* getaddrinfo's result; errno for EAI_SYSTEM */
};

static void *gai_run(void *p)
{
	struct gai *g = p;
	g->rc = getaddrinfo(g->host, g->service, g->has_hints ? &g->hints : NULL, &g->res);
	g->err = g->rc == EAI_SYSTEM ? errno : 0;
	return NULL;
}

static void gai_drop(void *p, void *result)
{
	struct gai *g = p;
	(void)result;
	if (g->res)
		freeaddrinfo(g->res);
	free(g);
}

/* The mapping, one to one so that cio_gai_error() can undo it. */
static const struct {
	int eai, err;
} gai_map[] = {
	{EAI_NONAME, ENOENT},
#ifdef EAI_NODATA
	{EAI_NODATA, ENODATA},
#endif
#ifdef EAI_ADDRFAMILY
	{EAI_ADDRFAMILY, EADDRNOTAVAIL},
#endif
	{EAI_AGAIN, EAGAIN},
	{EAI_FAIL, EIO},
	{EAI_MEMORY, ENOMEM},
	{EAI_FAMILY, EAFNOSUPPORT},
	{EAI_SOCKTYPE, ESOCKTNOSUPPORT},
	{EAI_SERVICE, EPROTONOSUPPORT},
	{EAI_BADFLAGS, EINVAL},
	{EAI_OVERFLOW, EOVERFLOW},
};

static int gai_errno(int eai, int err)
{
	if (eai == EAI_SYSTEM)
		return err > 0 ? -err : -EIO;
	for (size_t i = 0; i < sizeof gai_map / sizeof gai_map[0]; i++)
		if (gai_map[i].eai == eai)
			return -gai_map[i].err;
	return -EIO;
}

int cio_gai_error(int err)
{
	if (err >= 0)
		return 0;
	for (size_t i = 0; i < sizeof gai_map / sizeof gai_map[0]; i++)
		if (gai_map[i].err == -err)
			return gai_map[i].eai;
	return EAI_SYSTEM;
}

static bool numeric(const char *s)
{
	if (!s || !*s)
		return s == NULL;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

int cio_getaddrinfo(const char *host, const char *service,
		    const struct addrinfo *hints, struct addrinfo **res)
{
	struct cio__task *self = cio__self_or_die("cio_getaddrinfo");
	if (!res)
		return -EINVAL;
	*res = NULL;
	int rc = cio__interrupted(self);
	if (rc < 0)
		return rc;
	/* Only what POSIX lets a caller set in hints. */
	struct addrinfo h = {0};
	if (hints) {
		h.ai_flags = hints->ai_flags;
		h.ai_family = hints->ai_family;
		h.ai_socktype = hints->ai_socktype;
		h.ai_protocol = hints->ai_protocol;
	}
	/* A numeric host with a numeric (or no) service never blocks:
	 * no thread hop. */
	if (hints && (h.ai_flags & AI_NUMERICHOST) &&
	    ((h.ai_flags & AI_NUMERICSERV) || numeric(service))) {
		int eai = getaddrinfo(host, service, &h, res);
		return eai ? gai_errno(eai, errno) : 0;
	}
	size_t hl = host ? strlen(host) + 1 : 0, sl = service ? strlen(service) + 1 : 0;
	struct gai *g = cio__calloc(1, sizeof *g + hl + sl);
	if (!g)
		return -ENOMEM;
	char *p = (char *)(g + 1);
	if (host) {
		g->host = memcpy(p, host, hl);
		p += hl;
	}
	if (service)
		g->service = memcpy(p, service, sl);
	g->hints = h;
	g->has_hints = hints != NULL;
	rc = blocking("cio_getaddrinfo", gai_run, g, gai_drop, false, true, NULL);
	if (rc == -ECANCELED || rc == -ETIMEDOUT)
		return rc; /* gai_drop owns g now */
	if (rc == 0)
		rc = g->rc ? gai_errno(g->rc, g->err) : 0;
	if (rc == 0)
		*res = g->res;
	else if (g->res)
		freeaddrinfo(g->res);
	free(g);
	return rc;
}
