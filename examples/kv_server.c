/* kv_server.c - a sharded key-value server on coreio: every key belongs to
 * one core (by its hash), which alone keeps it in a plain hash table, with
 * no lock; a connection on any core reaches the owner with a cross-core
 * call.  One task per connection, a deadline on each request, a drain that
 * closes idle connections at once, and cores that end together.
 *
 *   kv_server [--cores N] [--seconds N] [--read-ms MS] [ADDR]
 *
 *   ADDR          where to listen, as echo_server takes it; default
 *                 127.0.0.1:7070, port 0 picks a free one
 *   --cores N     runtimes (default 0: one per CPU of the affinity mask)
 *   --seconds N   drain after N seconds (default: until SIGINT/SIGTERM)
 *   --read-ms MS  a request must arrive whole within MS milliseconds of
 *                 its first byte, and a connection may stay silent that
 *                 long between requests (default 30000)
 *
 * The protocol is one line a request, one line a reply:
 *
 *   SET key value   ->  OK
 *   GET key         ->  VALUE value   or  NOT_FOUND
 *   DEL key         ->  DELETED       or  NOT_FOUND
 *   anything else   ->  ERROR what
 *
 * Keys are 1-250 bytes without spaces, values up to 1000 bytes; a line
 * longer than 1024 bytes gets "ERROR line too long" and the connection is
 * closed.  Prints "kv_server: listening on ADDR, backend B, N cores, pid P"
 * once every core listens, and what it served when it stops. */
#define _GNU_SOURCE
#include <coreio.h>

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_LEN 1024
#define KEY_MAX 250
#define VALUE_MAX 1000
#define CONN_STACK (64 << 10)

static struct {
	const char *addr;
	int64_t run_ns, read_ns;
	int cores;
} opt = {.addr = "127.0.0.1:7070", .read_ns = 30 * CIO_SEC};

/* --- a core's shard: a chained hash table, touched by its core only ---- */

struct entry {
	struct entry *next;
	uint64_t hash;
	size_t klen, vlen;
	char *value;
	char key[];
};

struct shard {
	struct entry **buckets;
	size_t nbuckets, count;
};

static struct shard *shards; /* one per core, each used by its own core only */

static uint64_t hash_key(const char *k, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
	return h;
}

static struct entry **find(struct shard *s, const char *k, size_t n, uint64_t h)
{
	struct entry **p = &s->buckets[h & (s->nbuckets - 1)];
	while (*p && ((*p)->hash != h || (*p)->klen != n || memcmp((*p)->key, k, n)))
		p = &(*p)->next;
	return p;
}

/* Doubles the table once it holds as many entries as buckets. */
static void grow(struct shard *s)
{
	size_t n = s->nbuckets * 2;
	struct entry **b = calloc(n, sizeof *b);
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < s->nbuckets; i++)
		for (struct entry *e = s->buckets[i], *next; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = n;
}

/* --- requests, run on the key's owner ---------------------------------- */

enum op { OP_GET, OP_SET, OP_DEL };

/* On the caller's stack: the call waits for the owner, even when it is
 * interrupted, so the owner may use it to the end. */
struct request {
	enum op op;
	const char *key, *value;
	size_t klen, vlen;
	char *reply; /* room for "VALUE " + VALUE_MAX + "\n" */
	size_t reply_len;
};

static void *shard_op(void *arg)
{
	struct request *r = arg;
	struct shard *s = &shards[cio_core_id()];
	uint64_t h = hash_key(r->key, r->klen);
	struct entry **p = find(s, r->key, r->klen, h), *e = *p;
	switch (r->op) {
	case OP_GET:
		if (!e) {
			r->reply_len = (size_t)sprintf(r->reply, "NOT_FOUND\n");
		} else {
			memcpy(r->reply, "VALUE ", 6);
			memcpy(r->reply + 6, e->value, e->vlen);
			r->reply[6 + e->vlen] = '\n';
			r->reply_len = 7 + e->vlen;
		}
		break;
	case OP_SET: {
		char *v = malloc(r->vlen ? r->vlen : 1);
		if (!v || (!e && !(e = malloc(sizeof *e + r->klen)))) {
			free(v);
			r->reply_len = (size_t)sprintf(r->reply, "ERROR out of memory\n");
			break;
		}
		memcpy(v, r->value, r->vlen);
		if (*p) {
			free(e->value);
		} else {
			e->next = NULL;
			e->hash = h;
			e->klen = r->klen;
			memcpy(e->key, r->key, r->klen);
			*p = e;
			if (++s->count > s->nbuckets)
				grow(s);
		}
		e->value = v;
		e->vlen = r->vlen;
		r->reply_len = (size_t)sprintf(r->reply, "OK\n");
		break;
	}
	case OP_DEL:
		if (!e) {
			r->reply_len = (size_t)sprintf(r->reply, "NOT_FOUND\n");
		} else {
			*p = e->next;
			free(e->value);
			free(e);
			s->count--;
			r->reply_len = (size_t)sprintf(r->reply, "DELETED\n");
		}
		break;
	}
	return NULL;
}

/* --- connections ------------------------------------------------------- */

static atomic_uint_fast64_t total_conns, total_requests, total_remote;

/* Parses one request line (without its newline) and answers it into
 * reply.  Returns the reply's length. */
static size_t handle(char *line, size_t len, char *reply)
{
	struct request r = {.reply = reply};
	char *sp = memchr(line, ' ', len);
	size_t cmd = sp ? (size_t)(sp - line) : len;
	if (cmd == 3 && !memcmp(line, "GET", 3))
		r.op = OP_GET;
	else if (cmd == 3 && !memcmp(line, "SET", 3))
		r.op = OP_SET;
	else if (cmd == 3 && !memcmp(line, "DEL", 3))
		r.op = OP_DEL;
	else
		return (size_t)sprintf(reply, "ERROR unknown command\n");
	if (!sp)
		return (size_t)sprintf(reply, "ERROR key missing\n");
	r.key = sp + 1;
	char *end = line + len;
	char *ksp = memchr(r.key, ' ', (size_t)(end - r.key));
	r.klen = (size_t)((ksp ? ksp : end) - r.key);
	if (r.klen == 0 || r.klen > KEY_MAX)
		return (size_t)sprintf(reply, "ERROR bad key\n");
	if (r.op == OP_SET) {
		if (!ksp)
			return (size_t)sprintf(reply, "ERROR value missing\n");
		r.value = ksp + 1;
		r.vlen = (size_t)(end - r.value);
		if (r.vlen > VALUE_MAX)
			return (size_t)sprintf(reply, "ERROR value too long\n");
	} else if (ksp) {
		return (size_t)sprintf(reply, "ERROR trailing words\n");
	}
	int owner = (int)(hash_key(r.key, r.klen) % (uint64_t)opt.cores);
	if (owner == cio_core_id()) {
		shard_op(&r);
	} else {
		atomic_fetch_add(&total_remote, 1);
		int rc = cio_core_call(owner, shard_op, &r, NULL);
		if (rc < 0)
			return (size_t)snprintf(reply, VALUE_MAX, "ERROR %s\n", cio_strerror(rc));
	}
	return r.reply_len;
}

/* Answers a line too long, then closes without a reset: the client's
 * unread bytes would make close() send one, and the reset could destroy
 * the error before the client reads it.  So: end our side, and read what
 * the client still sends (a second at most) before closing. */
static void refuse(int fd, char *buf, size_t cap)
{
	if (cio_send_all(fd, "ERROR line too long\n", 20, 0, NULL) < 0 ||
	    cio_shutdown(fd, SHUT_WR) < 0)
		return;
	CIO_WITH_TIMEOUT(CIO_SEC) {
		while (cio_recv(fd, buf, cap, 0) > 0)
			;
	}
}

static void *serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char in[LINE_MAX_LEN + 1], reply[VALUE_MAX + 16];
	size_t have = 0;
	atomic_fetch_add(&total_conns, 1);
	for (;;) {
		/* A whole line within read_ns of waiting for it; idle (a drain
		 * may end us) while no byte of it has come. */
		int64_t tok = cio_timeout_push(opt.read_ns);
		char *nl;
		ssize_t n = 0;
		while (!(nl = memchr(in, '\n', have)) && have < sizeof in) {
			cio_drain_idle(have == 0);
			n = cio_recv(fd, in + have, sizeof in - have, 0);
			cio_drain_idle(false);
			if (n <= 0)
				break;
			have += (size_t)n;
		}
		cio_deadline_pop(tok);
		if (!nl) {
			if (have == sizeof in)
				refuse(fd, in, sizeof in);
			break; /* closed, reset, timed out, or too long */
		}
		size_t len = (size_t)(nl - in);
		if (len && in[len - 1] == '\r')
			len--;
		size_t rlen = handle(in, len, reply);
		atomic_fetch_add(&total_requests, 1);
		if (cio_send_all(fd, reply, rlen, 0, NULL) < 0)
			break;
		/* Keep what follows the line: pipelined requests. */
		have -= (size_t)(nl + 1 - in);
		memmove(in, nl + 1, have);
	}
	cio_close(fd);
	return NULL;
}

/* --- cores --------------------------------------------------------------- */

static cio_xwg *all_done;  /* each core's main, done serving */
static cio_xwg *bound;     /* core 0 has bound: the others bind its port */
static char bound_addr[128];
static atomic_int status;

static void *stop_later(void *arg)
{
	(void)arg;
	cio_drain_idle(true);
	if (cio_sleep(opt.run_ns) == 0)
		cio_drain();
	return NULL;
}

static int listen_here(void)
{
	int core = cio_core_id();
	int lfd;
	if (core == 0) {
		lfd = cio_listen(opt.addr, &(cio_listen_opts){.reuseport = true});
		cio_addr a = {.len = sizeof a.u};
		if (lfd >= 0 && (getsockname(lfd, &a.u.sa, &a.len) < 0 ||
				 cio_addr_format(&a, bound_addr, sizeof bound_addr) < 0))
			snprintf(bound_addr, sizeof bound_addr, "%s", opt.addr);
		cio_xwg_done(bound);
	} else {
		cio_xwg_wait(bound);
		lfd = bound_addr[0] ? cio_listen(bound_addr, &(cio_listen_opts){.reuseport = true})
				    : -EADDRNOTAVAIL;
	}
	return lfd;
}

static void *core_main(void *arg)
{
	(void)arg;
	int core = cio_core_id();
	struct shard *s = &shards[core];
	s->nbuckets = 1024;
	s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
	int lfd = s->buckets ? listen_here() : -ENOMEM;
	if (lfd < 0) {
		fprintf(stderr, "kv_server: core %d cannot listen on %s: %s\n", core,
			opt.addr, cio_strerror(lfd));
		atomic_store(&status, 1);
		cio_drain();
	} else {
		if (core == 0) {
			printf("kv_server: listening on %s, backend %s, %d cores, pid %d\n",
			       bound_addr, cio_backend_name(), opt.cores, (int)getpid());
			fflush(stdout);
			if (opt.run_ns != CIO_NEVER)
				cio_spawn_with(&(cio_spawn_opts){.detached = true}, stop_later, NULL);
		}
		for (;;) {
			int fd = cio_accept(lfd, NULL);
			if (fd == -ESHUTDOWN || fd == -ECANCELED)
				break; /* drained */
			if (fd < 0) { /* -EMFILE and the like: accept paused */
				if (cio_sleep(10 * CIO_MS) == -ECANCELED)
					break;
				continue;
			}
			cio_tcp_nodelay(fd, true);
			cio_spawn_opts o = {.name = "kv-conn", .stack_size = CONN_STACK, .detached = true};
			if (cio_spawn_with(&o, serve_conn, (void *)(intptr_t)fd) < 0)
				cio_close(fd);
		}
		cio_close(lfd);
	}
	/* This core calls no other from here on, but others may still call
	 * it: it stays (serving their calls) until every core is done. */
	cio_xwg_done(all_done);
	cio_cancel_clear();
	cio_xwg_wait(all_done);
	return NULL;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--cores N] [--seconds N] [--read-ms MS] [ADDR]\n", argv0);
}

int main(int argc, char **argv)
{
	long cores = 0, seconds = 0, read_ms = 0;
	for (int i = 1; i < argc; i++) {
		char *end;
		long *slot = !strcmp(argv[i], "--cores")     ? &cores
			     : !strcmp(argv[i], "--seconds") ? &seconds
			     : !strcmp(argv[i], "--read-ms") ? &read_ms
							     : NULL;
		if (slot) {
			if (i + 1 == argc || (*slot = strtol(argv[++i], &end, 10)) < 0 || *end) {
				usage(argv[0]);
				return 2;
			}
		} else if (argv[i][0] == '-') {
			usage(argv[0]);
			return 2;
		} else {
			opt.addr = argv[i];
		}
	}
	opt.run_ns = seconds ? seconds * CIO_SEC : CIO_NEVER;
	if (read_ms)
		opt.read_ns = read_ms * CIO_MS;
	opt.cores = cores ? (int)cores : cio_cores_available();
	if (opt.cores < 1 || opt.cores > 4096) {
		usage(argv[0]);
		return 2;
	}
	shards = calloc((size_t)opt.cores, sizeof *shards);
	if (!shards || cio_xwg_new(&all_done, (size_t)opt.cores) < 0 ||
	    cio_xwg_new(&bound, 1) < 0) {
		fprintf(stderr, "kv_server: out of memory\n");
		return 1;
	}
	int64_t t0 = cio_now();
	int rc = cio_run_cores(opt.cores, core_main, NULL);
	if (rc < 0) {
		fprintf(stderr, "kv_server: cio_run_cores: %s\n", cio_strerror(rc));
		return 3;
	}
	size_t keys = 0;
	for (int k = 0; k < opt.cores; k++) {
		struct shard *s = &shards[k];
		keys += s->count;
		for (size_t i = 0; i < s->nbuckets; i++)
			for (struct entry *e = s->buckets[i], *next; e; e = next) {
				next = e->next;
				free(e->value);
				free(e);
			}
		free(s->buckets);
	}
	free(shards);
	cio_xwg_free(all_done);
	cio_xwg_free(bound);
	printf("kv_server: stopped after %.1f s: %" PRIu64 " connections, %" PRIu64
	       " requests (%" PRIu64 " on another core), %zu keys\n",
	       (double)(cio_now() - t0) / 1e9, (uint64_t)atomic_load(&total_conns),
	       (uint64_t)atomic_load(&total_requests), (uint64_t)atomic_load(&total_remote), keys);
	return atomic_load(&status);
}
