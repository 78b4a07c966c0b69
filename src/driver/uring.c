/* uring.c - the io_uring backend: one ring per runtime.
 *
 * The ring is set up with SINGLE_ISSUER | DEFER_TASKRUN (Linux 6.1) where
 * the kernel has them: completions are then only produced inside our own
 * io_uring_enter(), in one batch, instead of interrupting the task that
 * runs.  Older kernels get COOP_TASKRUN (5.19), then plain flags.  Every
 * wait submits what the tick queued and waits in the same system call. */
#include "driver.h"
#include "bufs.h"
#include "../core/rt.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Set by tests before a runtime starts: its ring takes none of the file
 * opcodes, as on a kernel without them, so that each goes to the pool.
 * A knob of COREIO_TESTING builds only. */
#ifdef COREIO_TESTING
bool cio__uring_no_file_ops;
#else
#define cio__uring_no_file_ops false
#endif

#ifndef COREIO_HAVE_LIBURING

static int ur_open(struct cio__driver *d, const cio_config *cfg)
{
	(void)cfg;
	snprintf(d->reason, sizeof d->reason, "built without liburing");
	return -ENOSYS;
}
static void ur_close(struct cio__driver *d) { (void)d; }
static int ur_wait(struct cio__driver *d, int64_t t)
{
	(void)d, (void)t;
	return -ENOSYS;
}
static ssize_t ur_io(struct cio__driver *d, struct cio__io *io)
{
	(void)d, (void)io;
	return -ENOSYS;
}
static ssize_t ur_recv_lent(struct cio__driver *d, int fd, struct cio__lent **out)
{
	(void)d, (void)fd, (void)out;
	return -ENOSYS;
}
static int ur_watch(struct cio__driver *d, int fd, void (*fire)(void *), void *arg)
{
	(void)d, (void)fd, (void)fire, (void)arg;
	return -ENOSYS;
}
static void ur_unwatch(struct cio__driver *d, int fd)
{
	(void)d, (void)fd;
}
static int ur_close_fd(struct cio__driver *d, int fd)
{
	(void)d, (void)fd;
	return -ENOSYS;
}
static void ur_fd_new(struct cio__driver *d, int fd)
{
	(void)d, (void)fd;
}
static int ur_notify(struct cio__driver *d, struct cio__driver *to)
{
	(void)d, (void)to;
	return -ENOTSUP;
}
static int ur_send_bg(struct cio__driver *d, int fd, const void *buf, size_t len,
		      struct cio__bgsend *bg)
{
	(void)d, (void)fd, (void)buf, (void)len, (void)bg;
	return -ENOSYS;
}
static void ur_cancel_bg(struct cio__driver *d, struct cio__bgsend *bg)
{
	(void)d, (void)bg;
}

#else
#include <liburing.h>

#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
/* Incremental buffer consumption (Linux 6.12), newer than the headers we
 * build with: the flag of io_uring_buf_reg (liburing 2.3 calls the field
 * `pad`) and the completion's "this buffer gets more". */
#define PBUF_RING_INC 2
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif
/* IORING_OP_FTRUNCATE (Linux 6.9) is newer than the headers we build
 * with; its number is fixed by the kernel's ABI. */
#define OP_FTRUNCATE 55

/* One operation the kernel holds.  It lives on the calling task's stack,
 * which stays put until the operation completes: no allocation per op. */
struct cio__op {
	struct cio__task *task; /* woken on completion */
	int32_t res;            /* the kernel's result: >= 0 or -errno */
	uint32_t flags;         /* io_uring CQE flags */
	bool done;
	uint8_t role;           /* whose: a task's (ROLE_TASK), or a lentfd's */
	int fd;                 /* the requests pending on one fd, listed */
	struct cio__op *prev, *next;
};

enum { ROLE_TASK, ROLE_LENT, ROLE_WATCH, ROLE_ACCEPT, ROLE_BG };

/* A background send's op lives in its record (driver.h). */
_Static_assert(sizeof(struct cio__op) <= sizeof ((struct cio__bgsend *)0)->drv,
	       "struct cio__op fits in struct cio__bgsend's drv");

static struct cio__op *bg_op(struct cio__bgsend *bg)
{
	return (struct cio__op *)(void *)bg->drv;
}

static struct cio__bgsend *bg_of(struct cio__op *op)
{
	return (struct cio__bgsend *)(void *)((char *)op - offsetof(struct cio__bgsend, drv));
}

struct accq;

/* Lent receives (cio_recv_buf()) on io_uring: one ring of provided
 * buffers per runtime, filled from the pool of bufs.h, and per fd a
 * multishot receive that picks a buffer for each arrival.  What arrives
 * before a task asks waits on the fd's queue, in order; a task that
 * waits holds no buffer.  A plain read of the fd first stops the
 * multishot and takes what is queued, so the two mix in order. */
struct lentfd {
	struct cio__op op;        /* the multishot's: here, not on a stack */
	struct cio__op wop;       /* a watch's one-shot poll, when no multishot */
	int fd;
	bool armed;               /* in the kernel */
	bool once;                /* op is a watch's one-shot read, not a multishot */
	bool repoll;              /* that read could not be made: poll instead */
	bool watch_armed;         /* wop is in the kernel */
	bool stale;               /* its fd number was closed behind our back */
	bool closed;              /* by cio_close(), and not made anew */
	bool broken;              /* bytes were lost (no memory for a slice):
	                           * every receive fails with -ENOMEM */
	int end;                  /* 1, or how the last multishot ended: 0
	                           * (end of stream) or -errno, to report */
	struct cio__task *waiter; /* in cio_recv_buf() */
	struct cio__task *closer; /* stopping it (a close, a plain read) */
	struct cio__lent *head, *tail; /* arrived, not yet asked for */
	size_t off;               /* of head, taken by a plain read */
	void (*fire)(void *arg);  /* a task-less watch (ur_watch()) */
	void *fire_arg;
	bool fire_due;            /* on the state's `due` list */
	struct lentfd *due_next;
	unsigned gen;             /* bumped when its number is made anew */
	struct accq *acc;         /* a listener's multishot accept, or NULL */
};

/* Multishot accepts (Linux 5.19), for the accepts that want no peer
 * address (the serve helper's): one request per listener takes each
 * connection as it comes, and those no task has asked for yet wait on
 * the listener's queue.  A queue of ACC_QUEUE stops the request, so that
 * a server that stops accepting (at its connection limit) leaves the
 * rest in the kernel's backlog; the next accept that finds the queue
 * empty starts it again. */
#define ACC_QUEUE 16

struct accq {
	struct cio__op op;        /* the multishot's */
	struct lentfd *lf;        /* whose */
	bool armed, stopping;     /* in the kernel; a cancel of it due or sent */
	struct accq *stop_next;   /* on the state's `stops` list: cancel due */
	int end;                  /* 1, or how it ended: -errno to report */
	struct cio__task *waiter; /* in an accept */
	int *fds;                 /* accepted, not yet asked for: a ring */
	unsigned head, n, cap;
};

struct uring_state;
static void acc_free(struct uring_state *s, struct lentfd *lf);

struct uring_state {
	struct io_uring ring;
	unsigned flags;        /* the setup flags the kernel took */
	bool has_msg_ring;     /* IORING_OP_MSG_RING (Linux 5.18) */
	/* The file opcodes this kernel has, by enum cio__io_kind. */
	bool has_file_op[CIO__IO_NKINDS];
	bool wake_armed;       /* a read of d->wake_fd is in the ring */
	unsigned file_queued;  /* file transfers queued since the last submit */
	uint64_t wake_buf;     /* where that read lands */
	struct cio__op wake_op;
	/* Requests pending per fd number, so that cio_close() cancels those
	 * of this fd and not those of a dup of the same file (the kernel's
	 * IORING_ASYNC_CANCEL_FD matches by file). */
	struct cio__op **byfd;
	size_t nbyfd;
	/* Per fd number, 1 once it is known to take file offsets, so that a
	 * transfer at an offset on a pipe or socket fails with -ESPIPE as
	 * pread(2) does, where io_uring would ignore the offset. */
	uint8_t *seeks;
	size_t nseeks;
	/* Lent receives: the provided-buffer ring (NULL until first used),
	 * the pool buffer at each buffer id (NULL: an empty slot), and the
	 * per-fd state. */
	struct io_uring_buf_ring *br;
	struct cio__lent **br_bufs;
	unsigned *br_free;        /* empty buffer ids, a stack of br_empty */
	unsigned br_entries, br_empty;
	unsigned br_target;       /* buffers to keep in the ring (see br_fit()) */
	unsigned br_low;          /* fewest in the ring during this window */
	unsigned br_taken;        /* buffers the kernel took this window */
	bool br_inc;              /* incremental: buffers shared out in slices */
	unsigned *br_off;         /* per buffer id, the bytes the kernel used */
	bool br_failed;           /* the kernel has none: poll, then recv */
	bool ms_seen;             /* a multishot receive has worked here */
	bool acc_single;          /* no multishot accept here: one at a time */
	bool acc_seen;            /* a multishot accept has worked here */
	/* Work a completion may not do inside reap(), which a task's own
	 * submit can run (a full SQ): watches to fire outside any task, and
	 * multishot accepts to stop (an SQE of reap()'s own would reap). */
	struct lentfd *due;
	struct accq *stops;
	struct cio__op *bg_due;   /* background sends done, to report */
	struct lentfd **lentfds;
	size_t nlentfds;
};

/* Whether fd takes file offsets: one lseek(2) on its first transfer at an
 * offset.  Only "yes" is kept, until the number is closed or made anew: a
 * number can be closed behind our back (plain close()) and come back as a
 * file, and a stale "no" would fail its reads; a "no" is an error case, so
 * asking again each time costs nothing that matters. */
static bool takes_offsets(struct uring_state *s, int fd)
{
	if ((size_t)fd < s->nseeks && s->seeks[fd])
		return true;
	if (lseek(fd, 0, SEEK_CUR) < 0 && errno == ESPIPE)
		return false;
	/* Seekable (or EBADF and the like: the kernel will say). */
	if ((size_t)fd >= s->nseeks) {
		size_t n = s->nseeks ? s->nseeks : 1024;
		while (n <= (size_t)fd)
			n *= 2;
		uint8_t *v = cio__realloc(s->seeks, n);
		if (!v)
			return true; /* not remembered: asked again next time */
		memset(v + s->nseeks, 0, n - s->nseeks);
		s->seeks = v;
		s->nseeks = n;
	}
	s->seeks[fd] = 1;
	return true;
}

static void seeks_forget(struct uring_state *s, int fd)
{
	if (fd >= 0 && (size_t)fd < s->nseeks)
		s->seeks[fd] = 0;
}

static int track(struct uring_state *s, struct cio__op *op, int fd)
{
	if ((size_t)fd >= s->nbyfd) {
		size_t n = s->nbyfd ? s->nbyfd : 1024;
		while (n <= (size_t)fd)
			n *= 2;
		struct cio__op **v = cio__realloc(s->byfd, n * sizeof *v);
		if (!v)
			return -ENOMEM;
		memset(v + s->nbyfd, 0, (n - s->nbyfd) * sizeof *v);
		s->byfd = v;
		s->nbyfd = n;
	}
	op->fd = fd;
	op->prev = NULL;
	op->next = s->byfd[fd];
	if (op->next)
		op->next->prev = op;
	s->byfd[fd] = op;
	return 0;
}

static void untrack(struct uring_state *s, struct cio__op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		s->byfd[op->fd] = op->next;
	if (op->next)
		op->next->prev = op->prev;
}

/* A file transfer is handed to the kernel once this many are queued,
 * rather than at the end of the tick: a disk works on the first request
 * while the tick prepares the rest.  Submitting each one on its own
 * costs a page-cache read 7% in system calls; waiting for the tick's end
 * cost 4 KiB O_DIRECT reads at depth 32 10-20% of their IOPS here. */
#define FILE_SUBMIT_BATCH 4

/* user_data of a MSG_RING wake, as the target sees it, and of its
 * completion on the sender: no op record behind either. */
#define WAKE_TAG ((void *)1)
#define SENT_TAG ((void *)2)

_Static_assert(CIO__WAKEFD_EVENTFD, "the ring reads the wake fd as an eventfd: "
	       "the io_uring backend takes the Linux paths of src/platform");

static struct io_uring_sqe *sqe_get(struct cio__driver *d, struct uring_state *s);

/* Keeps a read of the eventfd in the ring, so that any thread can end
 * our wait by writing to it.  Never left undone: a wait without it would
 * not hear another thread (a full SQ is submitted to make room). */
static void arm_wake(struct cio__driver *d, struct uring_state *s)
{
	struct io_uring_sqe *sqe = sqe_get(d, s);
	io_uring_prep_read(sqe, d->wake.rd, &s->wake_buf, sizeof s->wake_buf, 0);
	s->wake_op.fd = -1; /* not one of the per-fd requests */
	io_uring_sqe_set_data(sqe, &s->wake_op);
	s->wake_armed = true;
}

/* Why io_uring_queue_init() failed, in words an operator can act on. */
static void explain(struct cio__driver *d, int err)
{
	int disabled = -1;
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
	if (f) {
		if (fscanf(f, "%d", &disabled) != 1)
			disabled = -1;
		fclose(f);
	}
	const char *why;
	if (err == ENOSYS)
		why = "ENOSYS (kernel built without io_uring)";
	else if (err == EPERM && disabled == 2)
		why = "io_uring disabled by sysctl (kernel.io_uring_disabled=2)";
	else if (err == EPERM && disabled == 1)
		why = "io_uring restricted by sysctl (kernel.io_uring_disabled=1) "
		      "to kernel.io_uring_group";
	else if (err == EPERM)
		why = "EPERM (seccomp or container policy)";
	else if (err == ENOMEM)
		why = "ENOMEM (locked-memory limit, ulimit -l)";
	else
		why = NULL;
	if (why)
		snprintf(d->reason, sizeof d->reason, "%s", why);
	else
		snprintf(d->reason, sizeof d->reason, "io_uring_setup: %s",
			 strerror(err));
}

static int ur_open(struct cio__driver *d, const cio_config *cfg)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
			IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	struct uring_state *s = cio__calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	unsigned entries = cfg->ring_entries ? cfg->ring_entries : 256;
	int rc = -EINVAL;
	for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
		/* A CQ 8x the SQ: a tick can have every connection's recv
		 * complete at once.  The kernel keeps overflow (FEAT_NODROP),
		 * but a roomy ring avoids taking that slow path. */
		struct io_uring_params p = {
			.flags = tries[i] | IORING_SETUP_CQSIZE,
			.cq_entries = entries * 8,
		};
		int injected = CIO_FAIL(ring); /* a ring that cannot be set up */
		rc = injected ? -injected : io_uring_queue_init_params(entries, &s->ring, &p);
		if (rc == 0) {
			s->flags = tries[i];
			break;
		}
		if (rc != -EINVAL)
			break; /* flags are not the problem */
	}
	if (rc < 0) {
		explain(d, -rc);
		free(s);
		return rc;
	}
	if (!(s->ring.features & IORING_FEAT_EXT_ARG)) {
		/* Before 5.11 a wait with a timeout costs an extra SQE and
		 * completion per tick; not worth a second code path. */
		snprintf(d->reason, sizeof d->reason,
			 "io_uring lacks IORING_FEAT_EXT_ARG (Linux < 5.11)");
		io_uring_queue_exit(&s->ring);
		free(s);
		return -ENOSYS;
	}
	/* Every request coreio makes must be there, or epoll serves better. */
	static const struct { int op; const char *name; } need[] = {
		{IORING_OP_READ, "READ"}, {IORING_OP_WRITE, "WRITE"},
		{IORING_OP_READV, "READV"}, {IORING_OP_WRITEV, "WRITEV"},
		{IORING_OP_RECV, "RECV"}, {IORING_OP_SEND, "SEND"},
		{IORING_OP_RECVMSG, "RECVMSG"}, {IORING_OP_SENDMSG, "SENDMSG"},
		{IORING_OP_ACCEPT, "ACCEPT"}, {IORING_OP_CONNECT, "CONNECT"},
		{IORING_OP_POLL_ADD, "POLL_ADD"}, {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
		{IORING_OP_CLOSE, "CLOSE"},
	};
	struct io_uring_probe *probe = io_uring_get_probe_ring(&s->ring);
	for (size_t i = 0; probe && i < sizeof need / sizeof need[0]; i++) {
		if (!io_uring_opcode_supported(probe, need[i].op)) {
			snprintf(d->reason, sizeof d->reason,
				 "io_uring lacks IORING_OP_%s", need[i].name);
			io_uring_free_probe(probe);
			io_uring_queue_exit(&s->ring);
			free(s);
			return -ENOSYS;
		}
	}
	if (probe) {
		s->has_msg_ring = io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
		/* The file operations are optional: one the kernel lacks goes
		 * to the blocking pool. */
		static const struct { enum cio__io_kind kind; int op; } file_ops[] = {
			{CIO__IO_OPENAT, IORING_OP_OPENAT},
			{CIO__IO_FSYNC, IORING_OP_FSYNC},
			{CIO__IO_FALLOCATE, IORING_OP_FALLOCATE},
			{CIO__IO_FTRUNCATE, OP_FTRUNCATE},
			{CIO__IO_STATX, IORING_OP_STATX},
			{CIO__IO_RENAMEAT, IORING_OP_RENAMEAT},
			{CIO__IO_UNLINKAT, IORING_OP_UNLINKAT},
			{CIO__IO_MKDIRAT, IORING_OP_MKDIRAT},
			{CIO__IO_SYMLINKAT, IORING_OP_SYMLINKAT},
			{CIO__IO_LINKAT, IORING_OP_LINKAT},
			{CIO__IO_SPLICE, IORING_OP_SPLICE},
		};
		for (size_t i = 0; !cio__uring_no_file_ops &&
				   i < sizeof file_ops / sizeof file_ops[0]; i++)
			s->has_file_op[file_ops[i].kind] =
				io_uring_opcode_supported(probe, file_ops[i].op);
		io_uring_free_probe(probe);
	}
	/* Saves the fd lookup on every io_uring_enter(); optional. */
	io_uring_register_ring_fd(&s->ring);
	d->impl = s;
	arm_wake(d, s);
	return 0;
}

static void ur_close(struct cio__driver *d)
{
	struct uring_state *s = d->impl;
	if (!s)
		return;
	io_uring_queue_exit(&s->ring);
	/* The kernel has let go: the buffers it held, and those queued, are
	 * freed with the pool (no task is left to give them back). */
	for (size_t fd = 0; fd < s->nlentfds; fd++) {
		struct lentfd *lf = s->lentfds[fd];
		struct cio__lent *b;
		while (lf && (b = lf->head)) {
			lf->head = b->next;
			struct cio__lent *parent = b->parent;
			free(b);
			/* A parent the ring no longer holds goes with its last
			 * slice; those still in the ring, below. */
			if (parent && --parent->refs == 0)
				free(parent);
		}
		if (lf)
			acc_free(s, lf);
		free(lf);
	}
	free(s->lentfds);
	for (unsigned i = 0; i < s->br_entries; i++)
		free(s->br_bufs[i]);
	free(s->br_bufs);
	free(s->br_free);
	free(s->br_off);
	if (s->br)
		munmap(s->br, s->br_entries * sizeof(struct io_uring_buf));
	free(s->byfd);
	free(s->seeks);
	free(s);
	d->impl = NULL;
}

static void lent_complete(struct cio__driver *d, struct uring_state *s, struct cio__op *op,
			  const struct io_uring_cqe *cqe);
static void watch_complete(struct cio__driver *d, struct uring_state *s, struct cio__op *op);
static void acc_complete(struct cio__driver *d, struct uring_state *s, struct cio__op *op,
			 const struct io_uring_cqe *cqe);
static ssize_t acc_take(struct cio__driver *d, struct uring_state *s, int fd);
static void after_reap(struct cio__driver *d, struct uring_state *s);
static ssize_t lent_take(struct cio__driver *d, struct uring_state *s, const struct cio__io *io);
static bool lent_readable(const struct lentfd *lf);
#define LENT_EOF (-ENODATA) /* lent_take(): the end of stream, no read needed */
static int watch_poll(struct cio__driver *d, struct uring_state *s, struct lentfd *lf);

/* Completes every CQE the ring holds; returns how many. */
static unsigned reap(struct cio__driver *d, struct uring_state *s)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&s->ring, head, cqe) {
		struct cio__op *op = io_uring_cqe_get_data(cqe);
		n++;
		if (!op || op == WAKE_TAG)
			continue; /* a cancel request's completion; a wake */
		if (op == SENT_TAG) {
			d->rt->inflight--; /* a wake we sent has gone */
			continue;
		}
		if (op == &s->wake_op) {
			s->wake_armed = false; /* re-armed after the wait */
			continue;
		}
		if (op->role == ROLE_LENT) {
			lent_complete(d, s, op, cqe);
			continue;
		}
		if (op->role == ROLE_WATCH) {
			watch_complete(d, s, op);
			continue;
		}
		if (op->role == ROLE_ACCEPT) {
			acc_complete(d, s, op, cqe);
			continue;
		}
		if (op->role == ROLE_BG) {
			/* Its done() may start the next send: after the reap.
			 * In flight until then, so that waits do not sleep
			 * with it pending. */
			op->res = cqe->res;
			op->next = s->bg_due;
			s->bg_due = op;
			continue;
		}
		op->res = cqe->res;
		op->flags = cqe->flags;
		op->done = true;
		if (op->fd >= 0)
			untrack(s, op);
		d->rt->inflight--;
		cio__wake(op->task, 0);
	}
	io_uring_cq_advance(&s->ring, n);
	return n;
}

static int ur_wait(struct cio__driver *d, int64_t timeout_ns)
{
	struct uring_state *s = d->impl;
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts, *tp = NULL;
	/* Completions a reap inside sqe_get() set aside are not waited for
	 * again: this wait only looks, and runs them after its reap. */
	if (s->bg_due || s->due)
		timeout_ns = 0;
	if (timeout_ns != CIO_NEVER) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tp = &ts;
	}
	/* One system call: submit what this tick queued, wait, and (with
	 * DEFER_TASKRUN) run the completions' task work. */
	s->file_queued = 0;
	cio_stats *st = &d->rt->stats;
	/* liburing's own test: it enters unless nothing is to be submitted
	 * and a completion is there already. */
	if (io_uring_sq_ready(&s->ring) || !io_uring_cq_ready(&s->ring))
		st->uring_enters++;
	int rc = CIO_FAIL(submit);
	rc = rc > 0 ? -rc : io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, tp, NULL);
	if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY)
		return rc;
	/* Completions the CQ had no room for wait in the kernel (or, before
	 * IORING_FEAT_NODROP, were lost: the overflow counter).  Reads of
	 * the shared ring: no system call. */
	if (IO_URING_READ_ONCE(*s->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW)
		st->uring_cq_overflow++;
	st->uring_cq_dropped = IO_URING_READ_ONCE(*s->ring.cq.koverflow);
	unsigned n = reap(d, s);
	after_reap(d, s);
	if (!s->wake_armed)
		arm_wake(d, s);
	return (int)n;
}

static int ur_notify(struct cio__driver *d, struct cio__driver *to)
{
	struct uring_state *s = d->impl;
	/* `to` is another thread's, but its ring's fd is fixed once open. */
	if (to->ops != &cio__uring_ops || !s->has_msg_ring)
		return -ENOTSUP;
	int ring_fd = ((struct uring_state *)to->impl)->ring.ring_fd;
	/* Posts a CQE straight into the other ring; it goes to the kernel
	 * with this runtime's next io_uring_enter, with no syscall of its
	 * own.  Counted in flight until its own completion comes back, so
	 * that the scheduler keeps entering the kernel (a busy runtime would
	 * otherwise hold the wake back, and one that ends would lose it). */
	struct io_uring_sqe *sqe = sqe_get(d, s);
	io_uring_prep_msg_ring(sqe, ring_fd, 0, (uint64_t)(uintptr_t)WAKE_TAG, 0);
	io_uring_sqe_set_data(sqe, SENT_TAG);
	d->rt->inflight++;
	return 0;
}

/* A free SQE.  When the submission queue is full, hands it to the kernel
 * and retries; if the kernel pushes back (completions it cannot post yet),
 * reaps completions first.  Never fails: a request is never dropped. */
static struct io_uring_sqe *sqe_get(struct cio__driver *d, struct uring_state *s)
{
	struct io_uring_sqe *sqe;
	while (!(sqe = CIO_FAIL(sqe) ? NULL : io_uring_get_sqe(&s->ring))) {
		d->rt->stats.uring_sq_full++;
		d->rt->stats.uring_enters++;
		int rc = CIO_FAIL(submit);
		rc = rc > 0 ? -rc : io_uring_submit(&s->ring);
		if (rc == -EBUSY || rc == -EAGAIN) {
			d->rt->stats.uring_enters++;
			io_uring_get_events(&s->ring);
			reap(d, s);
		}
	}
	return sqe;
}

static void prep(struct io_uring_sqe *sqe, const struct cio__io *io)
{
	/* (u64)-1 as the offset means "the file position" to io_uring. */
	uint64_t off = io->off < 0 ? (uint64_t)-1 : (uint64_t)io->off;
	switch (io->kind) {
	case CIO__IO_READ:
		io_uring_prep_read(sqe, io->fd, io->p.buf, (unsigned)io->n.len, off);
		break;
	case CIO__IO_WRITE:
		io_uring_prep_write(sqe, io->fd, io->p.cbuf, (unsigned)io->n.len, off);
		break;
	case CIO__IO_READV:
		io_uring_prep_readv(sqe, io->fd, io->p.iov, (unsigned)io->n.iovcnt, off);
		break;
	case CIO__IO_WRITEV:
		io_uring_prep_writev(sqe, io->fd, io->p.iov, (unsigned)io->n.iovcnt, off);
		break;
	case CIO__IO_RECV:
		io_uring_prep_recv(sqe, io->fd, io->p.buf, io->n.len, io->flags);
		break;
	case CIO__IO_SEND:
		io_uring_prep_send(sqe, io->fd, io->p.cbuf, io->n.len,
				   io->flags | MSG_NOSIGNAL);
		break;
	case CIO__IO_RECVMSG:
		io_uring_prep_recvmsg(sqe, io->fd, io->p.msg, (unsigned)io->flags);
		break;
	case CIO__IO_SENDMSG:
		io_uring_prep_sendmsg(sqe, io->fd, io->p.msg,
				      (unsigned)(io->flags | MSG_NOSIGNAL));
		break;
	case CIO__IO_ACCEPT:
		io_uring_prep_accept(sqe, io->fd, io->p.addr, io->n.addrlen,
				     SOCK_NONBLOCK | SOCK_CLOEXEC);
		break;
	case CIO__IO_CONNECT:
		io_uring_prep_connect(sqe, io->fd, io->p.addr, io->n.alen);
		break;
	case CIO__IO_POLL:
		io_uring_prep_poll_add(sqe, io->fd, (unsigned)io->flags);
		break;
	case CIO__IO_OPENAT:
		io_uring_prep_openat(sqe, io->fd, io->path, io->flags | O_CLOEXEC, io->mode);
		break;
	case CIO__IO_FSYNC:
		io_uring_prep_fsync(sqe, io->fd,
				    io->flags & CIO__FSYNC_DATA ? IORING_FSYNC_DATASYNC : 0);
		break;
	case CIO__IO_FALLOCATE:
		io_uring_prep_fallocate(sqe, io->fd, (int)io->mode, (off_t)io->off,
					(off_t)io->n.len);
		break;
	case CIO__IO_FTRUNCATE:
		io_uring_prep_rw(OP_FTRUNCATE, sqe, io->fd, NULL, 0, (uint64_t)io->off);
		break;
	case CIO__IO_STATX:
		io_uring_prep_statx(sqe, io->fd, io->path, io->flags, io->mode, io->p.stx);
		break;
	case CIO__IO_RENAMEAT:
		io_uring_prep_renameat(sqe, io->fd, io->path, io->fd2, io->path2,
				       (unsigned)io->flags);
		break;
	case CIO__IO_UNLINKAT:
		io_uring_prep_unlinkat(sqe, io->fd, io->path, io->flags);
		break;
	case CIO__IO_MKDIRAT:
		io_uring_prep_mkdirat(sqe, io->fd, io->path, io->mode);
		break;
	case CIO__IO_SYMLINKAT:
		io_uring_prep_symlinkat(sqe, io->path, io->fd2, io->path2);
		break;
	case CIO__IO_LINKAT:
		io_uring_prep_linkat(sqe, io->fd, io->path, io->fd2, io->path2, io->flags);
		break;
	case CIO__IO_SPLICE:
		io_uring_prep_splice(sqe, io->fd, io->off, io->fd2, io->off2,
				     (unsigned)io->n.len, SPLICE_F_MOVE);
		break;
	}
}

static ssize_t submit_wait(struct cio__driver *d, struct uring_state *s,
			   struct cio__task *self, const struct cio__io *io);

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define HAVE_MEMCHECK 1
#endif
#endif

/* Valgrind sees the system calls a program makes, not what the kernel
 * writes for an io_uring request: tell it which bytes a completed request
 * filled, or it reports every received byte as uninitialised.  (A few
 * instructions, and nothing outside Valgrind.) */
static void mark_filled(const struct cio__io *io, ssize_t res)
{
#ifdef HAVE_MEMCHECK
	if (res < 0 || !RUNNING_ON_VALGRIND)
		return;
	const struct iovec *iov = NULL;
	size_t niov = 0;
	switch (io->kind) {
	case CIO__IO_READ:
	case CIO__IO_RECV:
		VALGRIND_MAKE_MEM_DEFINED(io->p.buf, (size_t)res);
		return;
	case CIO__IO_READV:
		iov = io->p.iov;
		niov = (size_t)io->n.iovcnt;
		break;
	case CIO__IO_RECVMSG: {
		struct msghdr *m = io->p.msg;
		VALGRIND_MAKE_MEM_DEFINED(m, sizeof *m);
		if (m->msg_name)
			VALGRIND_MAKE_MEM_DEFINED(m->msg_name, m->msg_namelen);
		if (m->msg_control)
			VALGRIND_MAKE_MEM_DEFINED(m->msg_control, m->msg_controllen);
		iov = m->msg_iov;
		niov = m->msg_iovlen;
		break;
	}
	case CIO__IO_STATX:
		VALGRIND_MAKE_MEM_DEFINED(io->p.stx, sizeof *io->p.stx);
		return;
	case CIO__IO_ACCEPT:
		if (io->n.addrlen) {
			VALGRIND_MAKE_MEM_DEFINED(io->n.addrlen, sizeof *io->n.addrlen);
			VALGRIND_MAKE_MEM_DEFINED(io->p.addr, *io->n.addrlen);
		}
		return;
	default:
		return;
	}
	for (size_t i = 0, left = (size_t)res; i < niov && left; i++) {
		size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;
		VALGRIND_MAKE_MEM_DEFINED(iov[i].iov_base, n);
		left -= n;
	}
#else
	(void)io, (void)res;
#endif
}

static ssize_t ur_io(struct cio__driver *d, struct cio__io *io)
{
	struct uring_state *s = d->impl;
	if ((cio__io_has(io->kind, CIO__IO_FILE) || io->kind == CIO__IO_SPLICE) &&
	    !s->has_file_op[io->kind])
		return CIO__DECLINED;
	if (io->off >= 0 && cio__io_has(io->kind, CIO__IO_AT_OFFSET) &&
	    !takes_offsets(s, io->fd))
		return -ESPIPE;
	/* A plain read of an fd that lent receives use: what they queued
	 * comes first. */
	if ((size_t)io->fd < s->nlentfds && s->lentfds[io->fd] &&
	    (io->kind == CIO__IO_RECV || io->kind == CIO__IO_RECVMSG ||
	     ((io->kind == CIO__IO_READ || io->kind == CIO__IO_READV) && io->off < 0))) {
		ssize_t took = lent_take(d, s, io);
		if (took == LENT_EOF)
			return 0;
		if (took != 0)
			return took;
	}
	/* A wait for reading an fd whose bytes a lent receive queued (a
	 * watch's read took them off the socket): readable now. */
	if (io->kind == CIO__IO_POLL && (io->flags & POLLIN) && (size_t)io->fd < s->nlentfds &&
	    s->lentfds[io->fd] && lent_readable(s->lentfds[io->fd]))
		return POLLIN;
	/* One try, at once: no request to wait for. */
	if (cio__io_once(io))
		return cio__io_sync(io);
	struct cio__io copy;
	const struct cio__io *cur = io;
	ssize_t r = cio__io_fail(&cur, &copy);
	if (r < 0)
		return r;
	if (io->kind == CIO__IO_ACCEPT && (io->flags & CIO__ACCEPT_MULTI) && !s->acc_single &&
	    (r = acc_take(d, s, io->fd)) != CIO__DECLINED)
		return r;
	r = submit_wait(d, s, cio__rt_cur->current, cur);
	mark_filled(io, r);
	return r;
}

/* Submits one request and parks until it completes; see ur_io(). */
static ssize_t submit_wait(struct cio__driver *d, struct uring_state *s,
			   struct cio__task *self, const struct cio__io *io)
{
	struct cio__op op = {.task = self, .fd = -1};
	int rc = io->fd >= 0 ? track(s, &op, io->fd) : 0; /* not AT_FDCWD */
	if (rc < 0)
		return rc;
	struct io_uring_sqe *sqe = sqe_get(d, s);
	prep(sqe, io);
	io_uring_sqe_set_data(sqe, &op);
	d->rt->inflight++;
	if (io->off >= 0 && cio__io_has(io->kind, CIO__IO_AT_OFFSET) &&
	    ++s->file_queued >= FILE_SUBMIT_BATCH) {
		s->file_queued = 0;
		d->rt->stats.uring_enters++;
		if (!CIO_FAIL(submit))
			io_uring_submit(&s->ring); /* a refusal waits for the tick */
	}
	rc = cio__park(self);
	if (op.done)
		/* -ECANCELED here, with no interruption of ours, is a
		 * cio_close() of the fd by another task. */
		return op.res == -ECANCELED && rc == 0 ? -EBADF : op.res;
	/* Interrupted: the kernel may still write into op's buffers, which
	 * live on this stack.  Cancel, and wait for the original completion
	 * whatever it says. */
	sqe = sqe_get(d, s);
	io_uring_prep_cancel(sqe, &op, 0);
	io_uring_sqe_set_data(sqe, NULL);
	while (!op.done)
		cio__park_hard(self);
	if (op.res == -ECANCELED || op.res == -EINTR)
		return rc;
	return op.res; /* it completed after all: keep its result */
}

/* --- background sends -------------------------------------------------------- */

/* A send no task waits for: counted in flight, so that a task waiting
 * for it is not taken for stuck; not listed on its fd, so that a close
 * lets it finish (the request holds the file). */
static int ur_send_bg(struct cio__driver *d, int fd, const void *buf, size_t len,
		      struct cio__bgsend *bg)
{
	struct uring_state *s = d->impl;
	/* MSG_WAITALL: the kernel sends a stream's bytes whole, retrying a
	 * short send itself, rather than hand back a part. */
	struct cio__io io = {.kind = CIO__IO_SEND, .fd = fd, .p.cbuf = buf,
			     .n.len = len < CIO__IO_MAX ? len : CIO__IO_MAX,
			     .flags = MSG_WAITALL};
	struct cio__io copy;
	const struct cio__io *cur = &io;
	ssize_t r = cio__io_fail(&cur, &copy);
	if (r < 0)
		return (int)r;
	struct cio__op *op = bg_op(bg);
	*op = (struct cio__op){.role = ROLE_BG, .fd = -1};
	struct io_uring_sqe *sqe = sqe_get(d, s);
	prep(sqe, cur);
	io_uring_sqe_set_data(sqe, op);
	d->rt->inflight++;
	return 0;
}

static void ur_cancel_bg(struct cio__driver *d, struct cio__bgsend *bg)
{
	struct uring_state *s = d->impl;
	struct io_uring_sqe *sqe = sqe_get(d, s);
	io_uring_prep_cancel(sqe, bg_op(bg), 0);
	io_uring_sqe_set_data(sqe, NULL);
}

/* --- lent receives ---------------------------------------------------------- */

/* The ring's size adapts to the load: it starts with BR_START buffers;
 * a multishot that ends for want of one (-ENOBUFS) doubles it, up to its
 * slots and half the pool's budget; and after a window of BR_WINDOW
 * buffers taken in which never more than a quarter of it was out at
 * once, it halves, down to BR_START.  Buffers above the size are not
 * put back as they come home, so the ring shrinks as it is used. */
#define BR_SLOTS 1024u /* slots in the ring, at most (a power of two) */
#define BR_START 16u   /* buffers in it, at first and at least */
#define BR_WINDOW 1024u
#define BR_GROUP 1     /* its buffer group id */

static struct lentfd *lent_of(struct cio__op *op)
{
	return (struct lentfd *)((char *)op - offsetof(struct lentfd, op));
}

/* fd's state; made on first use when `make`.  NULL: none (or ENOMEM). */
static struct lentfd *lentfd_get(struct uring_state *s, int fd, bool make)
{
	if ((size_t)fd >= s->nlentfds) {
		if (!make)
			return NULL;
		size_t n = s->nlentfds ? s->nlentfds : 1024;
		while (n <= (size_t)fd)
			n *= 2;
		struct lentfd **v = cio__realloc(s->lentfds, n * sizeof *v);
		if (!v)
			return NULL;
		memset(v + s->nlentfds, 0, (n - s->nlentfds) * sizeof *v);
		s->lentfds = v;
		s->nlentfds = n;
	}
	struct lentfd *lf = s->lentfds[fd];
	if (!lf && make && (lf = cio__calloc(1, sizeof *lf))) {
		lf->op.role = ROLE_LENT;
		lf->op.fd = -1;
		lf->wop.role = ROLE_WATCH;
		lf->wop.fd = -1;
		lf->end = 1;
		lf->fd = fd;
		s->lentfds[fd] = lf;
	}
	return lf;
}

/* Puts pool buffers into the ring's empty slots, up to its size, as the
 * budget allows. */
static void br_refill(struct cio__driver *d, struct uring_state *s)
{
	int added = 0, mask = io_uring_buf_ring_mask(s->br_entries);
	while (s->br_empty && s->br_entries - s->br_empty < s->br_target) {
		int err;
		struct cio__lent *b = cio__bufs_hold(d->rt, &err);
		if (!b)
			break; /* the budget is spent: a later refill */
		unsigned bid = s->br_free[--s->br_empty];
		s->br_bufs[bid] = b;
		b->refs = 1; /* the kernel's, in an incremental ring */
		s->br_off[bid] = 0;
		io_uring_buf_ring_add(s->br, b->bytes, (unsigned)b->pub.cap, (unsigned short)bid,
				      mask, added++);
	}
	if (added)
		io_uring_buf_ring_advance(s->br, added);
	d->rt->stats.bufs_ring = (uint64_t)(s->br_entries - s->br_empty) * d->bufs.size;
}

/* The kernel took buffer bid: its slot is empty.  Shrinks the ring at
 * the end of a window that never needed most of it. */
static struct cio__lent *br_took(struct uring_state *s, unsigned bid)
{
	struct cio__lent *b = bid < s->br_entries ? s->br_bufs[bid] : NULL;
	if (!b)
		return NULL;
	s->br_bufs[bid] = NULL;
	s->br_free[s->br_empty++] = bid;
	unsigned in = s->br_entries - s->br_empty;
	if (in < s->br_low)
		s->br_low = in;
	if (++s->br_taken == BR_WINDOW) {
		if (s->br_target > BR_START && (s->br_target - s->br_low) * 4 < s->br_target)
			s->br_target /= 2;
		s->br_taken = 0;
		s->br_low = s->br_target;
	}
	return b;
}

/* A multishot went without a buffer: the ring grows, within its slots
 * and half the budget (what the pool can give decides the rest). */
static void br_grow(struct uring_state *s)
{
	if (s->br_target < s->br_entries)
		s->br_target *= 2;
	s->br_low = 0;
}

/* Registers the buffer ring.  Returns 0 or -errno (then s->br_failed:
 * lent receives poll, then receive). */
static int br_setup(struct cio__driver *d, struct uring_state *s)
{
	struct cio__bufpool *p = &d->bufs;
	unsigned n = BR_SLOTS;
	/* No more of the budget than half, so that a plain-read fallback
	 * and the tasks' own buffers keep room; at least one buffer. */
	while (n > 1 && (size_t)n * p->size > p->budget / 2)
		n /= 2;
	size_t len = n * sizeof(struct io_uring_buf);
	void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	struct cio__lent **bufs = cio__calloc(n, sizeof *bufs);
	unsigned *free_ids = cio__calloc(n, sizeof *free_ids);
	unsigned *offs = cio__calloc(n, sizeof *offs);
	int rc = mem == MAP_FAILED || !bufs || !free_ids || !offs ? -ENOMEM : 0;
	if (rc == 0) {
		/* Incremental where the kernel has it: a small receive takes
		 * a slice of a buffer, not all of it. */
		struct io_uring_buf_reg reg = {
			.ring_addr = (uint64_t)(uintptr_t)mem, .ring_entries = n, .bgid = BR_GROUP,
			.pad = PBUF_RING_INC,
		};
		rc = io_uring_register_buf_ring(&s->ring, &reg, 0);
		s->br_inc = rc == 0;
		if (rc == -EINVAL) {
			reg.pad = 0;
			rc = io_uring_register_buf_ring(&s->ring, &reg, 0);
		}
	}
	if (rc < 0) {
		if (mem != MAP_FAILED)
			munmap(mem, len);
		free(bufs);
		free(free_ids);
		free(offs);
		s->br_failed = rc != -ENOMEM; /* the kernel said no: for good */
		return rc;
	}
	s->br = mem;
	io_uring_buf_ring_init(s->br);
	s->br_bufs = bufs;
	s->br_free = free_ids;
	s->br_off = offs;
	s->br_entries = s->br_empty = n;
	for (unsigned i = 0; i < n; i++)
		free_ids[i] = n - 1 - i; /* bid 0 first */
	s->br_target = s->br_low = n < BR_START ? n : BR_START;
	br_refill(d, s);
	return 0;
}

static void lent_queue(struct lentfd *lf, struct cio__lent *b)
{
	b->next = NULL;
	if (lf->tail)
		lf->tail->next = b;
	else
		lf->head = b;
	lf->tail = b;
}

/* Gives back every buffer queued on lf. */
static void lent_drop_queue(struct lentfd *lf)
{
	struct cio__lent *b;
	while ((b = lf->head)) {
		lf->head = b->next;
		cio__bufs_give_back(b);
	}
	lf->tail = NULL;
	lf->off = 0;
}

/* Frees the state of an fd number closed behind our back once the
 * kernel holds none of its requests. */
static void lf_free_stale(struct uring_state *s, struct lentfd *lf)
{
	if (lf->armed || lf->watch_armed || (lf->acc && lf->acc->armed))
		return;
	if (lf->fire_due) {
		struct lentfd **p = &s->due;
		while (*p != lf)
			p = &(*p)->due_next;
		*p = lf->due_next;
	}
	lent_drop_queue(lf);
	acc_free(s, lf);
	free(lf);
}

/* Calls a watch's fire, once. */
static void watch_fire(struct cio__driver *d, struct uring_state *s, struct lentfd *lf)
{
	if (d->rt->current) {
		/* Reaped inside a task's own submit: fire from the wait. */
		if (!lf->fire_due) {
			lf->fire_due = true;
			lf->due_next = s->due;
			s->due = lf;
		}
		return;
	}
	void (*fire)(void *) = lf->fire;
	lf->fire = NULL;
	fire(lf->fire_arg);
}

/* What arrived in an incremental ring: a slice of the buffer, queued
 * (or grown onto the queue's last slice when it lies just before).  The
 * buffer leaves the ring when the kernel says it gets no more. */
static void lent_slice(struct uring_state *s, struct lentfd *lf, const struct io_uring_cqe *cqe)
{
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	struct cio__lent *parent = bid < s->br_entries ? s->br_bufs[bid] : NULL;
	if (!parent)
		return;
	size_t off = s->br_off[bid];
	if (cqe->res > 0) {
		size_t n = (size_t)cqe->res;
		s->br_off[bid] += (unsigned)n;
		struct cio__lent *t = lf->tail, *sl;
		if (lf->stale || lf->broken) {
			/* nobody's, or after a gap: dropped */
		} else if (t && t->parent == parent && t->pub.data + t->pub.len == parent->bytes + off) {
			t->pub.len += n;
			t->pub.cap += n;
		} else if ((sl = cio__bufs_slice(parent, off, n))) {
			lent_queue(lf, sl);
		} else {
			lf->broken = true; /* said to the reader, never skipped */
		}
	}
	if (!(cqe->flags & IORING_CQE_F_BUF_MORE)) {
		br_took(s, bid);
		cio__bufs_unshare(parent);
	}
}

/* A completion of fd's multishot receive: queues what arrived, or notes
 * how it ended, and wakes the task waiting on it.  Never fails: the
 * queue runs through the buffers themselves. */
static void lent_complete(struct cio__driver *d, struct uring_state *s, struct cio__op *op,
			  const struct io_uring_cqe *cqe)
{
	struct lentfd *lf = lent_of(op);
	bool more = cqe->flags & IORING_CQE_F_MORE;
	bool once = lf->once;
	if (!once && (more || (cqe->flags & IORING_CQE_F_BUFFER)))
		s->ms_seen = true;
	if ((cqe->flags & IORING_CQE_F_BUFFER) && s->br_inc) {
		lent_slice(s, lf, cqe);
	} else if (cqe->flags & IORING_CQE_F_BUFFER) {
		struct cio__lent *b = br_took(s, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		if (b) {
			if (cqe->res > 0 && !lf->stale) {
				b->pub.len = (size_t)cqe->res;
				lent_queue(lf, b);
			} else {
				cio__bufs_give_back(b);
			}
		}
	} else if (once && (cqe->res == -ENOBUFS || cqe->res == -EINVAL)) {
		/* No buffer was there to pick (perhaps before any byte came),
		 * or this file takes no such read: nothing to report, and a
		 * poll watches in its place (after the reap: it needs an SQE). */
		lf->repoll = true;
		if (cqe->res == -ENOBUFS)
			br_grow(s);
	} else if (cqe->res <= 0 && cqe->res != -ECANCELED) {
		lf->end = cqe->res; /* end of stream, an error, -ENOBUFS */
		if (cqe->res == -ENOBUFS)
			br_grow(s);
	}
	/* A read's end of stream comes with the buffer it did not fill. */
	if ((cqe->flags & IORING_CQE_F_BUFFER) && cqe->res == 0 && !lf->stale)
		lf->end = 0;
	if (!more) {
		lf->armed = false;
		lf->once = false;
		untrack(s, op);
		d->rt->inflight--;
		if (lf->stale) {
			lent_drop_queue(lf);
			lf_free_stale(s, lf);
			return;
		}
	}
	if (lf->waiter)
		cio__wake(lf->waiter, 0);
	if (lf->closer)
		cio__wake(lf->closer, 0);
	if (lf->repoll && lf->fire && !lf->waiter) {
		if (!lf->fire_due) {
			lf->fire_due = true;
			lf->due_next = s->due;
			s->due = lf;
		}
		return;
	}
	lf->repoll = false;
	if (lf->fire && !lf->waiter && (lf->head || lf->end != 1 || !lf->armed || lf->broken))
		watch_fire(d, s, lf);
}

/* The completion of a watch's poll. */
static void watch_complete(struct cio__driver *d, struct uring_state *s, struct cio__op *op)
{
	struct lentfd *lf = (struct lentfd *)((char *)op - offsetof(struct lentfd, wop));
	lf->watch_armed = false;
	untrack(s, op);
	d->rt->inflight--;
	if (lf->stale) {
		lf_free_stale(s, lf);
		return;
	}
	if (lf->fire)
		watch_fire(d, s, lf);
}

/* A watch's one-shot read into a buffer of the ring: what comes is
 * queued as a multishot's arrivals are, and the task the watch starts
 * takes it with its first read, no request of its own (a poll and then
 * a read would be two per wake-up).  Returns 0 or -errno. */
static int lent_arm_once(struct cio__driver *d, struct uring_state *s, struct lentfd *lf, int fd)
{
	int rc = track(s, &lf->op, fd);
	if (rc < 0)
		return rc;
	struct io_uring_sqe *sqe = sqe_get(d, s);
	/* A read, not a receive: a watched fd need not be a socket. */
	io_uring_prep_read(sqe, fd, NULL, 0, (uint64_t)-1);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BR_GROUP;
	io_uring_sqe_set_data(sqe, &lf->op);
	lf->armed = true;
	lf->once = true;
	d->rt->inflight++;
	return 0;
}

/* A watch's one-shot poll for lf's fd.  Returns 0 or -errno. */
static int watch_poll(struct cio__driver *d, struct uring_state *s, struct lentfd *lf)
{
	int rc = track(s, &lf->wop, lf->fd);
	if (rc < 0)
		return rc;
	struct io_uring_sqe *sqe = sqe_get(d, s);
	io_uring_prep_poll_add(sqe, lf->fd, POLLIN);
	io_uring_sqe_set_data(sqe, &lf->wop);
	lf->watch_armed = true;
	d->rt->inflight++;
	return 0;
}

/* Whether a watch can be a read into the ring: the kernel has one, and
 * it holds a buffer now (a read that finds none fails at once). */
static bool read_watch(struct cio__driver *d, struct uring_state *s)
{
	if (s->br_failed || (!s->br && br_setup(d, s) < 0))
		return false;
	br_refill(d, s);
	return s->br_entries > s->br_empty;
}

/* The idle wait of a connection without a task.  Where fd's multishot
 * receive is armed, its next completion fires the watch; else a one-shot
 * read into the buffer ring does, or where the kernel has no buffer
 * ring, a one-shot poll.  Neither is cancelled by an unwatch (fire is
 * cleared, and a close cancels it): its record lives with the fd's
 * state. */
static int ur_watch(struct cio__driver *d, int fd, void (*fire)(void *), void *arg)
{
	struct uring_state *s = d->impl;
	struct lentfd *lf = lentfd_get(s, fd, true);
	if (!lf)
		return fd < 0 ? -EBADF : -ENOMEM;
	if (lf->closed)
		return -EBADF;
	if (lf->head || lf->end != 1 || lf->broken)
		return 1;
	if (!lf->armed && !lf->watch_armed) {
		int rc = read_watch(d, s) ? lent_arm_once(d, s, lf, fd) : watch_poll(d, s, lf);
		if (rc < 0)
			return rc;
	}
	lf->fire = fire;
	lf->fire_arg = arg;
	return 0;
}

static void ur_unwatch(struct cio__driver *d, int fd)
{
	struct lentfd *lf = lentfd_get(d->impl, fd, false);
	if (lf)
		lf->fire = NULL;
}

/* Starts fd's multishot receive. */
static int lent_arm(struct cio__driver *d, struct uring_state *s, struct lentfd *lf, int fd)
{
	int rc = track(s, &lf->op, fd);
	if (rc < 0)
		return rc;
	struct io_uring_sqe *sqe = sqe_get(d, s);
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BR_GROUP;
	io_uring_sqe_set_data(sqe, &lf->op);
	lf->armed = true;
	d->rt->inflight++;
	return 0;
}

/* Stops fd's multishot receive and waits, deaf to interruptions, until
 * the kernel has let go of it; what it delivered stays queued. */
static void lent_disarm(struct cio__driver *d, struct uring_state *s, struct lentfd *lf)
{
	if (!lf->armed)
		return;
	struct io_uring_sqe *sqe = sqe_get(d, s);
	io_uring_prep_cancel(sqe, &lf->op, 0);
	io_uring_sqe_set_data(sqe, NULL);
	struct cio__task *self = cio__rt_cur->current;
	lf->closer = self;
	while (lf->armed)
		cio__park_hard(self);
	lf->closer = NULL;
}

static ssize_t ur_recv_lent(struct cio__driver *d, int fd, struct cio__lent **out)
{
	struct uring_state *s = d->impl;
	if (s->br_failed || (!s->br && br_setup(d, s) < 0))
		return cio__recv_lent_polling(d, fd, out);
	struct lentfd *lf = lentfd_get(s, fd, true);
	if (!lf)
		return -ENOMEM;
	if (lf->closed)
		return -EBADF;
	if (lf->waiter || lf->closer)
		return cio__recv_lent_polling(d, fd, out); /* another task is at it: rare */
	struct cio__task *self = cio__rt_cur->current;
	for (;;) {
		struct cio__lent *b = lf->head;
		if (b) {
			if (!(lf->head = b->next))
				lf->tail = NULL;
			if (lf->off && b->parent) {
				/* A plain read took the start. */
				b->pub.data += lf->off;
				b->pub.len -= lf->off;
				b->pub.cap -= lf->off;
			} else if (lf->off) {
				memmove(b->bytes, b->bytes + lf->off, b->pub.len - lf->off);
				b->pub.len -= lf->off;
			}
			lf->off = 0;
			cio__bufs_lend_held(b);
			*out = b;
			br_refill(d, s);
			return (ssize_t)b->pub.len;
		}
		if (lf->broken)
			return -ENOMEM;
		if (lf->end == -EINVAL && !s->ms_seen) {
			/* A kernel with buffer rings but no multishot receive
			 * (Linux 5.19): poll, then receive, from now on. */
			lf->end = 1;
			s->br_failed = true;
			return cio__recv_lent_polling(d, fd, out);
		}
		if (lf->end != 1) {
			int end = lf->end;
			lf->end = 1; /* told once; the next call asks again */
			if (end != -ENOBUFS)
				return end;
			/* The ring ran dry: this time read into a buffer of the
			 * pool, if the budget allows. */
			br_refill(d, s);
			return cio__recv_lent_polling(d, fd, out);
		}
		if (!lf->armed) {
			br_refill(d, s);
			int rc = lent_arm(d, s, lf, fd);
			if (rc < 0)
				return rc;
		}
		lf->waiter = self;
		int rc = cio__park(self);
		lf->waiter = NULL;
		if (rc < 0)
			return rc; /* what arrives meanwhile stays queued */
		if (lf->closed)
			return -EBADF;
	}
}

/* Whether a read of lf's fd would not wait: bytes queued, an end or
 * error to report, or bytes lost. */
static bool lent_readable(const struct lentfd *lf)
{
	return lf->head || (lf->end != 1 && lf->end != -ENOBUFS) || lf->broken;
}

/* Before a plain read of fd: stops its multishot, and copies into the
 * read's buffer what the multishot queued (a short read, in order).
 * Returns the bytes copied, -errno, LENT_EOF for the end of stream it
 * saw, or 0 when the read should go ahead. */
static ssize_t lent_take(struct cio__driver *d, struct uring_state *s, const struct cio__io *io)
{
	struct lentfd *lf = lentfd_get(s, io->fd, false);
	if (lf && lf->broken && !lf->head)
		return -ENOMEM; /* bytes were lost: never read past them */
	if (!lf || (!lf->armed && !lf->head && lf->end == 1))
		return 0;
	lent_disarm(d, s, lf);
	struct iovec one = {io->p.buf, io->n.len};
	const struct iovec *iov = &one;
	int n = 1;
	if (io->kind == CIO__IO_READV) {
		iov = io->p.iov;
		n = io->n.iovcnt;
	} else if (io->kind == CIO__IO_RECVMSG) {
		iov = io->p.msg->msg_iov;
		n = (int)io->p.msg->msg_iovlen;
	}
	bool peek = io->kind != CIO__IO_READ && io->kind != CIO__IO_READV &&
		    (io->flags & MSG_PEEK);
	size_t moved = 0, off = lf->off;
	struct cio__lent *b = lf->head;
	for (int i = 0; i < n && b; i++) {
		size_t room = iov[i].iov_len, at = 0;
		while (room && b) {
			size_t k = b->pub.len - off < room ? b->pub.len - off : room;
			memcpy((char *)iov[i].iov_base + at, b->pub.data + off, k);
			at += k, room -= k, moved += k, off += k;
			if (off == b->pub.len) {
				b = b->next;
				off = 0;
			}
		}
	}
	if (!peek) {
		while (lf->head != b) {
			struct cio__lent *done = lf->head;
			lf->head = done->next;
			cio__bufs_give_back(done);
		}
		if (!lf->head)
			lf->tail = NULL;
		lf->off = off;
		br_refill(d, s);
	}
	if (moved == 0 && lf->broken)
		return -ENOMEM;
	if (moved == 0 && lf->end != 1) {
		/* What the multishot saw last (end of stream, an error); a
		 * peek leaves it to the read after it. */
		int end = lf->end;
		if (!peek)
			lf->end = 1;
		return end == -ENOBUFS ? 0 : end == 0 ? LENT_EOF : end;
	}
	return (ssize_t)moved;
}

/* Whether fd still listens (a drain's shutdown() ends that). */
static bool listening_still(int fd)
{
	int listening = 0;
	socklen_t len = sizeof listening;
	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening;
}

/* Closes the connections accepted and not asked for (a listener that
 * closes takes its backlog with it too). */
static void acc_drop_queue(struct accq *q)
{
	for (; q && q->n; q->n--) {
		close(q->fds[q->head]);
		q->head = (q->head + 1) % q->cap;
	}
}

static void acc_free(struct uring_state *s, struct lentfd *lf)
{
	if (lf->acc) {
		if (lf->acc->stopping) {
			struct accq **p = &s->stops;
			while (*p && *p != lf->acc)
				p = &(*p)->stop_next;
			if (*p)
				*p = lf->acc->stop_next;
		}
		acc_drop_queue(lf->acc);
		free(lf->acc->fds);
		free(lf->acc);
		lf->acc = NULL;
	}
}

/* Queues an accepted fd.  Returns false when the queue cannot grow. */
static bool acc_push(struct accq *q, int fd)
{
	if (q->n == q->cap) {
		unsigned cap = q->cap ? q->cap * 2 : ACC_QUEUE * 2;
		int *v = cio__malloc(cap * sizeof *v);
		if (!v)
			return false;
		for (unsigned i = 0; i < q->n; i++)
			v[i] = q->fds[(q->head + i) % q->cap];
		free(q->fds);
		q->fds = v;
		q->cap = cap;
		q->head = 0;
	}
	q->fds[(q->head + q->n++) % q->cap] = fd;
	return true;
}

static void acc_complete(struct cio__driver *d, struct uring_state *s, struct cio__op *op,
			 const struct io_uring_cqe *cqe)
{
	struct accq *q = (struct accq *)((char *)op - offsetof(struct accq, op));
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (cqe->res >= 0) {
		s->acc_seen = true;
		if (q->lf->stale || q->lf->closed) {
			close(cqe->res); /* its listener is gone */
		} else if (!acc_push(q, cqe->res)) {
			close(cqe->res); /* a connection lost to memory: said */
			q->end = -ENOMEM;
		}
		if (more && q->n >= ACC_QUEUE && !q->stopping) {
			q->stopping = true; /* after_reap() sends the cancel */
			q->stop_next = s->stops;
			s->stops = q;
		}
	} else if (cqe->res != -ECANCELED) {
		q->end = cqe->res;
	}
	if (!more) {
		q->armed = false;
		/* Off the stops list once its cancel went (or is moot). */
		bool listed = false;
		for (struct accq *p = s->stops; p && !listed; p = p->stop_next)
			listed = p == q;
		q->stopping = listed;
		untrack(s, op);
		d->rt->inflight--;
		if (q->lf->stale) {
			lf_free_stale(s, q->lf);
			return;
		}
	}
	if (q->waiter)
		cio__wake(q->waiter, 0);
}

/* What completions left for after reap(): watches to fire (outside any
 * task) and multishot accepts to stop. */
static void after_reap(struct cio__driver *d, struct uring_state *s)
{
	struct cio__op *op;
	while ((op = s->bg_due)) {
		s->bg_due = op->next;
		d->rt->inflight--;
		struct cio__bgsend *bg = bg_of(op);
		bg->done(bg, op->res);
	}
	struct lentfd *lf;
	while ((lf = s->due)) {
		s->due = lf->due_next;
		lf->fire_due = false;
		if (lf->repoll) {
			lf->repoll = false;
			if (lf->fire && !lf->closed && watch_poll(d, s, lf) == 0)
				continue;
		}
		if (lf->fire)
			watch_fire(d, s, lf);
	}
	struct accq *q;
	while ((q = s->stops)) {
		s->stops = q->stop_next;
		if (q->armed) {
			struct io_uring_sqe *sqe = sqe_get(d, s);
			io_uring_prep_cancel(sqe, &q->op, 0);
			io_uring_sqe_set_data(sqe, NULL);
		} else {
			q->stopping = false;
		}
	}
}

/* An accept without the peer's address: the next connection of fd's
 * multishot accept.  Returns the new fd or -errno; CIO__DECLINED to
 * accept one at a time instead (a kernel without multishot accepts, two
 * tasks accepting on one listener). */
static ssize_t acc_take(struct cio__driver *d, struct uring_state *s, int fd)
{
	struct lentfd *lf = lentfd_get(s, fd, true);
	if (!lf)
		return -ENOMEM;
	if (lf->closed)
		return -EBADF;
	struct accq *q = lf->acc;
	if (!q) {
		if (!(q = cio__calloc(1, sizeof *q)))
			return -ENOMEM;
		q->op.role = ROLE_ACCEPT;
		q->op.fd = -1;
		q->lf = lf;
		q->end = 1;
		lf->acc = q;
	}
	if (q->waiter)
		return CIO__DECLINED;
	struct cio__task *self = cio__rt_cur->current;
	for (;;) {
		if (q->end == -EINVAL) {
			/* The listener was shut down (a drain): what it had
			 * accepted goes as its backlog did. */
			acc_drop_queue(q);
		}
		if (q->n && !q->armed && !listening_still(fd)) {
			/* Stopped with a full queue, then shut down (a drain):
			 * no -EINVAL came to say so. */
			acc_drop_queue(q);
			return -EINVAL;
		}
		if (q->n) {
			int nfd = q->fds[q->head];
			q->head = (q->head + 1) % q->cap;
			q->n--;
			return nfd;
		}
		if (q->end != 1) {
			int end = q->end;
			q->end = 1;
			if (end == -EINVAL && !s->acc_seen && listening_still(fd)) {
				/* A listener that listens, refused: a kernel
				 * before Linux 5.19. */
				s->acc_single = true;
				return CIO__DECLINED;
			}
			return end;
		}
		if (!q->armed) {
			int rc = track(s, &q->op, fd);
			if (rc < 0)
				return rc;
			struct io_uring_sqe *sqe = sqe_get(d, s);
			io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			io_uring_sqe_set_data(sqe, &q->op);
			q->armed = true;
			d->rt->inflight++;
		}
		q->waiter = self;
		int rc = cio__park(self);
		q->waiter = NULL;
		if (rc < 0) {
			/* Nobody may accept here again: stop it, lest it keep
			 * the runtime from ending.  What came stays queued. */
			if (q->armed && !q->stopping) {
				struct io_uring_sqe *sqe = sqe_get(d, s);
				io_uring_prep_cancel(sqe, &q->op, 0);
				io_uring_sqe_set_data(sqe, NULL);
				q->stopping = true;
			}
			return rc;
		}
		if (lf->closed)
			return -EBADF;
	}
}

static int ur_close_fd(struct cio__driver *d, int fd)
{
	struct uring_state *s = d->impl;
	struct cio__task *self = cio__rt_cur ? cio__rt_cur->current : NULL;
	seeks_forget(s, fd);
	if (!self)
		return close(fd) < 0 ? -errno : 0;
	/* Cancel each request pending on this fd number, then close it.
	 * Hard links keep that order and run the close even when a cancel
	 * finds its request already done. */
	struct cio__op op = {.task = self, .fd = -1};
	struct io_uring_sqe *sqe;
	struct lentfd *lf = lentfd_get(s, fd, false), *was = lf;
	unsigned gen = lf ? lf->gen : 0;
	if (lf)
		lf->fire = NULL; /* a close drops a watch unfired */
	for (struct cio__op *p = (size_t)fd < s->nbyfd ? s->byfd[fd] : NULL; p; p = p->next) {
		sqe = sqe_get(d, s);
		io_uring_prep_cancel(sqe, p, 0);
		io_uring_sqe_set_data(sqe, NULL);
		sqe->flags |= IOSQE_IO_HARDLINK;
	}
	sqe = sqe_get(d, s);
	io_uring_prep_close(sqe, fd);
	io_uring_sqe_set_data(sqe, &op);
	d->rt->inflight++;
	while (!op.done)
		cio__park_hard(self);
	/* Unless the number was made anew meanwhile (a multishot accept
	 * can hand it out at once): then it is another file's. */
	if ((lf = lentfd_get(s, fd, false)) && lf == was && lf->gen == gen) {
		/* The multishot was cancelled with the rest; one re-armed
		 * meanwhile by a waiting task is stopped now. */
		lf->closed = true;
		lent_disarm(d, s, lf);
		lent_drop_queue(lf);
		lf->end = 1;
		lf->broken = false;
		acc_drop_queue(lf->acc);
	}
	return op.res == -EINTR ? 0 : op.res;
}

static void ur_fd_new(struct cio__driver *d, int fd)
{
	struct uring_state *s = d->impl;
	seeks_forget(s, fd);
	struct lentfd *lf = lentfd_get(s, fd, false);
	if (!lf)
		return;
	lf->fire = NULL;
	lf->gen++;
	if (lf->armed || lf->watch_armed || (lf->acc && lf->acc->armed)) {
		/* The number was closed behind our back, its multishot or
		 * poll still on the old file: cancel them, and let the last
		 * completion free its state. */
		lf->stale = true;
		s->lentfds[fd] = NULL;
		struct cio__op *ops[3] = {lf->armed ? &lf->op : NULL,
					  lf->watch_armed ? &lf->wop : NULL,
					  lf->acc && lf->acc->armed ? &lf->acc->op : NULL};
		acc_drop_queue(lf->acc);
		for (int i = 0; i < 3; i++) {
			if (!ops[i])
				continue;
			struct io_uring_sqe *sqe = sqe_get(d, s);
			io_uring_prep_cancel(sqe, ops[i], 0);
			io_uring_sqe_set_data(sqe, NULL);
		}
		return;
	}
	lent_drop_queue(lf);
	lf->closed = false;
	lf->broken = false;
	lf->end = 1;
	acc_drop_queue(lf->acc);
	if (lf->acc)
		lf->acc->end = 1;
}

#endif

const struct cio__driver_ops cio__uring_ops = {
	.name = "io_uring",
	.open = ur_open,
	.close = ur_close,
	.wait = ur_wait,
	.io = ur_io,
	.recv_lent = ur_recv_lent,
	.watch = ur_watch,
	.unwatch = ur_unwatch,
	.send_bg = ur_send_bg,
	.cancel_bg = ur_cancel_bg,
	.close_fd = ur_close_fd,
	.fd_new = ur_fd_new,
	.notify = ur_notify,
};
