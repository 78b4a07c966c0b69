/* splice.c - zero-copy transfers: splice, sendfile through a pipe, and a
 * two-way relay between streams, with the per-runtime pool of empty pipes
 * they borrow. */
#include "../core/rt.h"

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
	struct cio__rt *rt = cio__rt_cur;
	if (rt->npipes) {
		unsigned i = --rt->npipes;
		*p = (struct pipe){rt->pipes[i][0], rt->pipes[i][1], rt->pipe_cap[i]};
		return 0;
	}
	int fds[2];
	int rc = cio_pipe(fds);
	if (rc < 0)
		return rc;
	if (want > DEFAULT_CHUNK)
		fcntl(fds[1], F_SETPIPE_SZ, (int)(want < (1u << 30) ? want : 1u << 30));
	int cap = fcntl(fds[1], F_GETPIPE_SZ);
	*p = (struct pipe){fds[0], fds[1], cap > 0 ? (size_t)cap : DEFAULT_CHUNK};
	return 0;
}

/* Gives p back.  A pipe that may still hold bytes is closed, never
 * pooled: its next user would receive them. */
static void pipe_put(struct pipe *p, bool empty)
{
	struct cio__rt *rt = cio__rt_cur;
	if (empty && rt->npipes < CIO__PIPE_POOL) {
		unsigned i = rt->npipes++;
		rt->pipes[i][0] = p->rd;
		rt->pipes[i][1] = p->wr;
		rt->pipe_cap[i] = p->cap;
		return;
	}
	cio_close(p->rd);
	cio_close(p->wr);
}

void cio__pipes_fini(struct cio__rt *rt)
{
	while (rt->npipes) {
		unsigned i = --rt->npipes;
		close(rt->pipes[i][0]);
		close(rt->pipes[i][1]);
	}
}

/* --- splice and sendfile ------------------------------------------------ */

ssize_t cio_splice(int in, int64_t off_in, int out, int64_t off_out, size_t len)
{
	struct cio__io io = {
		.kind = CIO__IO_SPLICE, .fd = in, .off = off_in, .fd2 = out,
		.off2 = off_out, .n.len = len,
	};
	if (off_in < -1 || off_out < -1)
		return -EINVAL;
	if (in < 0 || out < 0)
		return -EBADF;
	for (;;) {
		ssize_t r = cio__file_io("cio_splice", &io);
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
	return cio__file_io("cio_splice", &io);
}

ssize_t cio_sendfile(int out, int file, int64_t off, size_t len, size_t *sent)
{
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

/* Each direction runs as a task of its own; the caller waits for both. */
struct relay;

struct direction {
	struct relay *r;
	int from, to;
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

/* One splice of a direction under the idle limit: a timeout counts only
 * if no byte moved either way for the whole limit. */
static ssize_t step(struct relay *r, int in, int out, size_t len, int hints)
{
	if (!r->idle)
		return stream_splice(in, out, len, hints);
	for (;;) {
		int64_t token = cio_deadline_push(r->last + r->idle);
		ssize_t n = stream_splice(in, out, len, hints);
		cio_deadline_pop(token);
		int64_t now = cio_now();
		if (n > 0)
			r->last = now;
		if (n != -ETIMEDOUT || now - r->last >= r->idle || cio_deadline() <= now)
			return n;
		/* The other direction moved meanwhile: the limit starts anew. */
	}
}

static int pump(struct direction *d, struct pipe *p, bool *empty)
{
	struct relay *r = d->r;
	size_t want = r->chunk < p->cap ? r->chunk : p->cap;
	int drained = 0;
	for (;;) {
		/* The pipe is empty here: only `from` can be unready. */
		ssize_t n = step(r, d->from, p->wr, want,
				 CIO__SPLICE_IN_STREAM | CIO__SPLICE_WAIT_IN | drained);
		drained = n > 0 && (size_t)n < want ? CIO__SPLICE_DRAINED : 0;
		if (n == 0) {
			/* End of stream: pass the half-close on.  A pipe has
			 * no half to shut, and a peer gone has nothing to
			 * tell: neither is an error of the relay. */
			int rc = cio_shutdown(d->to, SHUT_WR);
			return rc == -ENOTSOCK || rc == -ENOTCONN ? 0 : rc;
		}
		if (n < 0)
			return (int)n;
		*empty = false;
		for (size_t left = (size_t)n; left;) {
			ssize_t m = step(r, p->rd, d->to, left, CIO__SPLICE_WAIT_OUT);
			if (m == 0)
				m = -EIO;
			if (m < 0)
				return (int)m;
			left -= (size_t)m;
			d->moved += (uint64_t)m;
		}
		*empty = true;
	}
}

static void *direction_main(void *arg)
{
	struct direction *d = arg;
	struct relay *r = d->r;
	struct pipe p;
	bool empty = true;
	int rc = pipe_get(&p, r->chunk);
	if (rc == 0) {
		rc = pump(d, &p, &empty);
		pipe_put(&p, empty);
	}
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
		.dir = {{.from = a, .to = b}, {.from = b, .to = a}},
		.caller = self,
		.chunk = opts && opts->chunk ? opts->chunk : DEFAULT_CHUNK,
		.idle = opts && opts->idle_timeout > 0 ? opts->idle_timeout : 0,
		.last = cio_now(),
	};
	int rc = a < 0 || b < 0 ? -EBADF : cio__interrupted(self);
	for (int i = 0; i < 2 && rc == 0; i++) {
		r.dir[i].r = &r;
		cio_spawn_opts so = {.name = i ? "relay b->a" : "relay a->b", .detached = true};
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
