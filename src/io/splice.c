/* splice.c - zero-copy transfers: splice, sendfile through a pipe, and a
 * two-way relay between streams, with the per-runtime pool of empty pipes
 * they borrow.  Where the system has no splice(2) (CIO__SPLICE is 0),
 * cio_splice() copies through a buffer (src/driver/io.c), sendfile is a
 * loop of such copies, and the relay always copies. */
#include "io.h"
#include "../platform/file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_CHUNK (64u << 10)

/* --- the pipe pool ---------------------------------------------------- */

struct pipe {
	int rd, wr;
	size_t cap; /* bytes it holds at most */
};

/* An empty pipe: a pooled one, or a new one asked to hold `want` bytes
 * (the kernel may give less: /proc/sys/fs/pipe-max-size). */
static int pipe_get(struct pipe *p, size_t want)
{
	struct cio__io_rt *io = cio__rt_cur->io;
	if (io->npipes) {
		unsigned i = --io->npipes;
		*p = (struct pipe){io->pipes[i][0], io->pipes[i][1], io->pipe_cap[i]};
		return 0;
	}
	int fds[2];
	int rc = cio_pipe(fds);
	if (rc < 0)
		return rc;
	int cap = cio__pipe_size(fds[1], want > DEFAULT_CHUNK ? want : 0);
	*p = (struct pipe){fds[0], fds[1], cap > 0 ? (size_t)cap : DEFAULT_CHUNK};
	return 0;
}

/* Gives p back.  A pipe that may still hold bytes is closed, never
 * pooled: its next user would receive them. */
static void pipe_put(struct pipe *p, bool empty)
{
	struct cio__io_rt *io = cio__rt_cur->io;
	if (empty && io->npipes < CIO__PIPE_POOL) {
		unsigned i = io->npipes++;
		io->pipes[i][0] = p->rd;
		io->pipes[i][1] = p->wr;
		io->pipe_cap[i] = p->cap;
		return;
	}
	cio_close(p->rd);
	cio_close(p->wr);
}

void cio__pipes_fini(struct cio__io_rt *io)
{
	while (io->npipes) {
		unsigned i = --io->npipes;
		close(io->pipes[i][0]);
		close(io->pipes[i][1]);
	}
}

/* --- splice and sendfile ------------------------------------------------ */

ssize_t cio_splice(int in, int64_t off_in, int out, int64_t off_out, size_t len)
{
	cio__self_or_die("cio_splice");
	struct cio__io io = {
		.kind = CIO__IO_SPLICE, .fd = in, .off = off_in, .fd2 = out,
		.off2 = off_out, .n.len = len,
	};
	if (off_in < -1 || off_out < -1)
		return -EINVAL;
	for (;;) {
		ssize_t r = cio__io("cio_splice", &io);
		if (r != -EAGAIN)
			return r;
		/* A file on one side, and the pipe on the other (ours are
		 * non-blocking) was not ready: wait for it, then again. */
		int w = off_in < 0 ? cio_wait_readable(in) : cio_wait_writable(out);
		if (w < 0)
			return w;
	}
}

/* A splice between streams (no offsets), with what the caller knows of
 * them (CIO__SPLICE_* in driver.h) to save system calls. */
static ssize_t stream_splice(int in, int out, size_t len, int hints)
{
	struct cio__io io = {
		.kind = CIO__IO_SPLICE, .fd = in, .off = -1, .fd2 = out, .off2 = -1,
		.n.len = len, .flags = hints,
	};
	return cio__io("cio_splice", &io);
}

/* Without splice(2): file to out through cio_splice()'s copy, a buffer
 * at a time; each copy writes all it read before the next. */
static ssize_t sendfile_copy(int out, int file, int64_t off, size_t len, size_t *sent)
{
	size_t done = 0;
	ssize_t rc = 0;
	while (done < len) {
		rc = cio_splice(file, off + (int64_t)done, out, -1, len - done);
		if (rc == -ESPIPE && done == 0)
			rc = -EINVAL; /* not a file, as sendfile(2) says */
		if (rc <= 0)
			break; /* 0: the file ended */
		done += (size_t)rc;
	}
	if (sent)
		*sent = done;
	return rc < 0 ? rc : (ssize_t)done;
}

ssize_t cio_sendfile(int out, int file, int64_t off, size_t len, size_t *sent)
{
	cio__self_or_die("cio_sendfile");
	if (!CIO__SPLICE && off >= 0)
		return sendfile_copy(out, file, off, len, sent);
	struct pipe p;
	size_t done = 0;
	ssize_t rc = off < 0 ? -EINVAL : pipe_get(&p, DEFAULT_CHUNK);
	if (rc < 0)
		goto out;
	bool empty = true;
	while (done < len) {
		size_t want = len - done < p.cap ? len - done : p.cap;
		ssize_t n = cio_splice(file, off + (int64_t)done, p.wr, -1, want);
		if (n <= 0) {
			rc = n; /* 0: the file ended */
			break;
		}
		empty = false;
		for (size_t left = (size_t)n; left;) {
			/* The pipe holds bytes: only out can be unready. */
			ssize_t m = stream_splice(p.rd, out, left, CIO__SPLICE_WAIT_OUT);
			if (m == 0)
				m = -EIO; /* a pipe with bytes in it never ends */
			if (m < 0) {
				rc = m;
				goto put;
			}
			left -= (size_t)m;
			done += (size_t)m;
		}
		empty = true;
	}
put:
	pipe_put(&p, empty);
out:
	if (sent)
		*sent = done;
	return rc < 0 ? rc : (ssize_t)done;
}

/* --- relay ---------------------------------------------------------------- */

/* Each direction runs as a task of its own; the caller waits for both.
 *
 * A direction starts by copying through a buffer on its stack, and turns
 * to splice once a read fills the buffer (a bulk flow), back to copying
 * after two small splices in a row.  For a few hundred bytes a copy costs
 * less than the two splices and the pipe's bookkeeping; for bulk the
 * pages move without a copy.  Either way at most one buffer or one pipe
 * of bytes is in flight, so a slow reader slows its writer. */
#define COPY_BUF (16u << 10)
#define SMALL_SPLICE (4u << 10)
#define DIRECTION_STACK (64u << 10) /* room for the buffer whatever the default */

struct relay;

struct direction {
	struct relay *r;
	int from, to;
	bool from_sock, to_sock; /* else a pipe: read(2) / write(2) */
	uint64_t moved;
	cio_task_t task;
};

struct relay {
	struct direction dir[2];
	struct cio__task *caller;
	int live;          /* directions still running */
	int err;           /* the first error of either */
	size_t chunk;
	int64_t idle;      /* ns, 0: none */
	int64_t last;      /* cio_now() when a byte last moved */
};

enum xfer_kind { READ, WRITE, SPLICE };

/* One transfer of a direction: read from `from` into buf, write buf to
 * `to`, or splice between a stream and the pipe. */
struct xfer {
	enum xfer_kind kind;
	void *buf;
	int in, out;
	size_t len;
	int hints;
};

static ssize_t xfer_once(struct direction *d, const struct xfer *x)
{
	ssize_t n;
	switch (x->kind) {
	case READ:
		if (d->from_sock && (n = cio_recv(d->from, x->buf, x->len, 0)) != -ENOTSOCK)
			return n;
		d->from_sock = false;
		return cio_read(d->from, x->buf, x->len);
	case WRITE:
		if (d->to_sock && (n = cio_send(d->to, x->buf, x->len, 0)) != -ENOTSOCK)
			return n;
		d->to_sock = false;
		return cio_write(d->to, x->buf, x->len);
	default:
		return stream_splice(x->in, x->out, x->len, x->hints);
	}
}

/* One transfer under the idle limit: a timeout counts only if no byte
 * moved either way for the whole limit. */
static ssize_t step(struct direction *d, const struct xfer *x)
{
	struct relay *r = d->r;
	if (!r->idle)
		return xfer_once(d, x);
	for (;;) {
		int64_t token = cio_deadline_push(r->last + r->idle);
		ssize_t n = xfer_once(d, x);
		cio_deadline_pop(token);
		int64_t now = cio_now();
		if (n > 0)
			r->last = now;
		if (n != -ETIMEDOUT || now - r->last >= r->idle || cio_deadline() <= now)
			return n;
		/* The other direction moved meanwhile: the limit starts anew. */
	}
}

/* Delivers n bytes to `to`: from buf, or (buf NULL) out of the pipe. */
static int deliver(struct direction *d, struct pipe *p, const char *buf, size_t n)
{
	for (size_t done = 0; done < n;) {
		/* The bytes are there: only `to` can be unready. */
		struct xfer x = buf ? (struct xfer){.kind = WRITE, .buf = (char *)buf + done,
						    .len = n - done}
				    : (struct xfer){.kind = SPLICE, .in = p->rd, .out = d->to,
						    .len = n - done,
						    .hints = CIO__SPLICE_WAIT_OUT};
		ssize_t m = step(d, &x);
		if (m == 0)
			m = -EIO;
		if (m < 0)
			return (int)m;
		done += (size_t)m;
		d->moved += (uint64_t)m;
	}
	return 0;
}

static int pump(struct direction *d)
{
	struct relay *r = d->r;
	char buf[COPY_BUF];
	struct pipe p = {.rd = -1};
	bool bulk = false, empty = true;
	int small = 0, rc;
	for (;;) {
		ssize_t n;
		if (!bulk) {
			n = step(d, &(struct xfer){.kind = READ, .buf = buf, .len = sizeof buf});
			if (n > 0 && (rc = deliver(d, NULL, buf, (size_t)n)) < 0)
				break;
			/* A full buffer: a bulk flow, worth a pipe (where
			 * pages move without a copy). */
			if (n == (ssize_t)sizeof buf && CIO__SPLICE &&
			    (p.rd >= 0 || pipe_get(&p, r->chunk) == 0))
				bulk = true;
		} else {
			size_t want = r->chunk < p.cap ? r->chunk : p.cap;
			/* The pipe is empty here: only `from` can be unready. */
			n = step(d, &(struct xfer){
				.kind = SPLICE, .in = d->from, .out = p.wr, .len = want,
				.hints = CIO__SPLICE_WAIT_IN});
			if (n > 0) {
				empty = false;
				if ((rc = deliver(d, &p, NULL, (size_t)n)) < 0)
					break;
				empty = true;
				small = (size_t)n < SMALL_SPLICE ? small + 1 : 0;
				if (small == 2)
					bulk = false, small = 0;
			}
		}
		if (n == 0) {
			/* End of stream: pass the half-close on.  A pipe has
			 * no half to shut, and a peer gone has nothing to
			 * tell: neither is an error of the relay. */
			rc = cio_shutdown(d->to, SHUT_WR);
			if (rc == -ENOTSOCK || rc == -ENOTCONN)
				rc = 0;
			break;
		}
		if (n < 0) {
			rc = (int)n;
			break;
		}
	}
	if (p.rd >= 0)
		pipe_put(&p, empty);
	return rc;
}

static void *direction_main(void *arg)
{
	struct direction *d = arg;
	struct relay *r = d->r;
	int rc = pump(d);
	if (rc < 0 && !r->err) {
		/* The first error ends the relay: stop the other way. */
		r->err = rc;
		struct direction *other = &r->dir[d == &r->dir[0]];
		if (other->task > 0)
			cio_cancel(other->task);
	}
	if (--r->live == 0)
		cio__wake(r->caller, 0);
	return NULL;
}

int cio_relay(int a, int b, const cio_relay_opts *opts, cio_relay_stats *st)
{
	struct cio__task *self = cio__self_or_die("cio_relay");
	struct relay r = {
		.dir = {{.from = a, .to = b, .from_sock = true, .to_sock = true},
			{.from = b, .to = a, .from_sock = true, .to_sock = true}},
		.caller = self,
		.chunk = opts && opts->chunk ? opts->chunk : DEFAULT_CHUNK,
		.idle = opts && opts->idle_timeout > 0 ? opts->idle_timeout : 0,
		.last = cio_now(),
	};
	int rc = cio__interrupted(self);
	if (rc == 0 && (a < 0 || b < 0))
		rc = -EBADF;
	for (int i = 0; i < 2 && rc == 0; i++) {
		r.dir[i].r = &r;
		cio_spawn_opts so = {.name = i ? "relay b->a" : "relay a->b",
				     .stack_size = DIRECTION_STACK, .detached = true};
		r.dir[i].task = cio_spawn_with(&so, direction_main, &r.dir[i]);
		if (r.dir[i].task < 0)
			rc = (int)r.dir[i].task;
		else
			r.live++;
	}
	if (rc < 0 && r.live)
		cio_cancel(r.dir[0].task); /* the second could not start */
	while (r.live && rc == 0)
		rc = cio__park(self); /* woken when both have ended */
	if (rc < 0 && r.live) {
		/* Cancelled or late ourselves: stop both, and wait, since
		 * they use r on this stack. */
		for (int i = 0; i < 2; i++)
			if (r.dir[i].task > 0)
				cio_cancel(r.dir[i].task);
		while (r.live)
			cio__park_hard(self);
	}
	if (st) {
		st->a_to_b = r.dir[0].moved;
		st->b_to_a = r.dir[1].moved;
	}
	return rc < 0 ? rc : r.err;
}
