/* file_server.c - a minimal HTTP/1.0 static file server on coreio: GET
 * (and HEAD) of the regular files under one directory, sent with
 * cio_sendfile() (file -> pipe -> socket, never through user space), one
 * runtime per core with its own SO_REUSEPORT listener, one task per
 * connection, one response per connection.
 *
 *   file_server --root DIR --listen ADDR [--cores N] [--seconds S]
 *               [--read-timeout-ms MS]
 *
 *   --root DIR      the directory served; nothing outside it ever is
 *   --listen ADDR   HOST:PORT, [V6HOST]:PORT or unix:/path; port 0 picks a
 *                   free port, which the "listening on" line shows
 *   --cores N       runtimes to run (default 0: one per usable CPU)
 *   --seconds S     drain after S seconds (default: until SIGINT/SIGTERM)
 *   --read-timeout-ms MS  time a client has to send its whole request
 *                   head (default 5000)
 *   COREIO_BACKEND=uring|epoll|kqueue forces a backend
 *
 * Example:  file_server --root ./public --listen 127.0.0.1:8080
 *           curl -v http://127.0.0.1:8080/index.html
 *
 * Requests.  The head (request line and headers) may take 8 KiB at most
 * (else 431) and must arrive within the read timeout (else the connection
 * is closed).  The answers, and how paths are mapped:
 *   400  a malformed request line, header or version, a target that is not
 *        an absolute path ("/..."), a bad %-escape, a control character or
 *        a NUL (%00) in the path;
 *   405  any method but GET and HEAD (with "Allow: GET, HEAD");
 *   403  every path refused as an escape from the root, however it tries:
 *        a ".." segment (also written %2e%2e), an encoded slash (%2f,
 *        which would smuggle a separator past the segment checks), a
 *        symbolic link leading out of the root; and every path that is not
 *        a regular file: directories (no index, no listing), devices,
 *        FIFOs;
 *   404  a path that does not exist.  Empty segments are dropped, so
 *        "//etc/passwd" is "etc/passwd" under the root.
 * The string checks come first; then the file is opened with openat2(2)
 * and RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS on the root's fd, so that
 * the kernel itself refuses any resolution that leaves the root (Linux
 * 5.6; on older kernels a walk with O_NOFOLLOW at each step, refusing
 * every symbolic link, replaces it).
 *
 * Every response is HTTP/1.0 with Date, Server, Content-Type,
 * Content-Length and "Connection: close"; 200 adds Last-Modified.  After
 * it the server shuts its side down and reads what the client still sends
 * (briefly) before closing, so that the client gets the whole response.
 * Exit status 0 after a drain; 1: could not open the root, listen or run;
 * 2: bad arguments; 3: the runtime could not start. */
#define _GNU_SOURCE
#include <coreio.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define HEAD_MAX 8192
/* The request head is read into a buffer on the task's stack. */
#define CONN_STACK (64 << 10)
#define LINGER_NS (500 * CIO_MS)

static struct {
	const char *root, *listen;
	int64_t run_ns, read_ns;
	int rootfd;
} opt;

static char bound_addr[128];
static cio_wg bound = CIO_WG_INIT(bound);
static atomic_uint_fast64_t total_requests, total_ok, total_bytes;
static atomic_int status;
static atomic_bool ran;
static atomic_bool no_openat2; /* the kernel lacks it: walk instead */

struct server {
	int lfd;
	cio_wg conns;
	uint64_t requests, ok, bytes;
};

/* --- responses ------------------------------------------------------------ */

static const char *reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	default: return "Error";
	}
}

static void http_date(char *buf, size_t cap, time_t t)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Formats the status line and headers; returns their length. */
static int head(char *buf, size_t cap, int code, const char *type, uint64_t len,
		const char *extra)
{
	char date[64];
	http_date(date, sizeof date, time(NULL));
	int n = snprintf(buf, cap,
			 "HTTP/1.0 %d %s\r\n"
			 "Date: %s\r\n"
			 "Server: coreio-file_server\r\n"
			 "Content-Type: %s\r\n"
			 "Content-Length: %" PRIu64 "\r\n"
			 "%s"
			 "Connection: close\r\n"
			 "\r\n",
			 code, reason(code), date, type, len, extra ? extra : "");
	return n < (int)cap ? n : (int)cap - 1;
}

/* An error response with a one-line text body. */
static void send_error(int fd, int code, bool with_body)
{
	char body[64], buf[512];
	int blen = snprintf(body, sizeof body, "%d %s\n", code, reason(code));
	int n = head(buf, sizeof buf, code, "text/plain; charset=utf-8", (uint64_t)blen,
		     code == 405 ? "Allow: GET, HEAD\r\n" : NULL);
	if (with_body && n + blen < (int)sizeof buf) {
		memcpy(buf + n, body, (size_t)blen);
		n += blen;
	}
	cio_send_all(fd, buf, (size_t)n, MSG_NOSIGNAL, NULL);
}

static const char *content_type(const char *path)
{
	static const char *const table[][2] = {
		{"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
		{"txt", "text/plain; charset=utf-8"}, {"css", "text/css; charset=utf-8"},
		{"js", "text/javascript; charset=utf-8"}, {"json", "application/json"},
		{"xml", "application/xml"}, {"svg", "image/svg+xml"},
		{"png", "image/png"}, {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"},
		{"gif", "image/gif"}, {"webp", "image/webp"}, {"ico", "image/x-icon"},
		{"pdf", "application/pdf"}, {"wasm", "application/wasm"},
		{"gz", "application/gzip"}, {"zip", "application/zip"},
	};
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash + 1 : path, '.');
	if (dot)
		for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
			if (strcasecmp(dot + 1, table[i][0]) == 0)
				return table[i][1];
	return "application/octet-stream";
}

/* --- requests ------------------------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Maps the request target [t, t + len) to a path relative to the root, in
 * out (at least len + 2 bytes): "." for the root itself.  Returns 0, or the
 * status to refuse with (400, 403). */
static int map_path(const char *t, size_t len, char *out)
{
	size_t o = 0;
	if (len == 0 || t[0] != '/')
		return 400;
	/* The query and fragment name no file. */
	for (size_t i = 0; i < len; i++)
		if (t[i] == '?' || t[i] == '#') {
			len = i;
			break;
		}
	for (size_t i = 0; i < len;) {
		while (i < len && t[i] == '/')
			i++; /* empty segments: "//etc" is "etc" */
		if (i == len)
			break;
		size_t seg = o ? o + 1 : o; /* where this segment's bytes go */
		size_t j = seg;
		for (; i < len && t[i] != '/'; i++) {
			unsigned char c = (unsigned char)t[i];
			if (c == '%') {
				int hi = i + 2 < len ? hexval(t[i + 1]) : -1;
				int lo = i + 2 < len ? hexval(t[i + 2]) : -1;
				if (hi < 0 || lo < 0)
					return 400;
				c = (unsigned char)(hi << 4 | lo);
				i += 2;
				if (c == '/')
					return 403; /* an encoded separator */
			}
			if (c == 0 || c < 0x20 || c == 0x7f)
				return 400;
			out[j++] = (char)c;
		}
		size_t n = j - seg;
		if (n == 1 && out[seg] == '.')
			continue; /* "." names the directory it is in */
		if (n == 2 && out[seg] == '.' && out[seg + 1] == '.')
			return 403;
		if (o)
			out[o] = '/';
		o = j;
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	return 0;
}

/* Opens path (relative, checked by map_path) beneath the root without
 * following a symbolic link out of it.  Returns an fd (adopted by coreio)
 * or -errno. */
static int open_beneath(const char *path)
{
	int flags = O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC;
	if (!atomic_load(&no_openat2)) {
		/* A system call on this thread: opening is quick on a local
		 * disk.  The kernel refuses (EXDEV, ELOOP) whatever resolves
		 * outside the root. */
		struct open_how how = {
			.flags = (uint64_t)flags,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
		};
		long fd = syscall(SYS_openat2, opt.rootfd, path, &how, sizeof how);
		if (fd >= 0) {
			cio_fd_adopt((int)fd);
			return (int)fd;
		}
		if (errno != ENOSYS && errno != EPERM)
			return -errno;
		atomic_store(&no_openat2, true); /* old kernel, or seccomp */
	}
	/* The walk: one component at a time, never following a link. */
	char buf[HEAD_MAX + 2];
	snprintf(buf, sizeof buf, "%s", path);
	int dir = opt.rootfd;
	char *save = NULL;
	char *comp = strtok_r(buf, "/", &save);
	for (;;) {
		char *next = strtok_r(NULL, "/", &save);
		int fd = cio_openat(dir, comp, next ? O_PATH | O_DIRECTORY | O_NOFOLLOW
						    : flags | O_NOFOLLOW, 0);
		struct stat st;
		if (fd == -ENOTDIR && next &&
		    fstatat(dir, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
			fd = -ELOOP; /* a link to a directory: refused, as the last one is */
		if (dir != opt.rootfd)
			cio_close(dir);
		if (fd < 0 || !next)
			return fd;
		dir = fd;
		comp = next;
	}
}

static bool is_token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?={}", c);
}

struct request {
	int status;          /* 0 while valid */
	bool head_only;
	char path[HEAD_MAX + 2];
};

/* Parses the head in buf (NUL-terminated, ending in an empty line). */
static void parse(char *buf, struct request *rq)
{
	char *line_end = strstr(buf, "\n");
	char *p = buf, *sp1, *sp2;
	size_t line_len = (size_t)(line_end - buf);
	if (line_len && buf[line_len - 1] == '\r')
		line_len--;
	buf[line_len] = '\0';
	/* METHOD SP TARGET SP HTTP/1.x */
	sp1 = strchr(p, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1 || strchr(sp2 + 1, ' ')) {
		rq->status = 400;
		return;
	}
	for (char *c = p; c < sp1; c++)
		if (!is_token_char((unsigned char)*c)) {
			rq->status = 400;
			return;
		}
	const char *ver = sp2 + 1;
	if (strncmp(ver, "HTTP/1.", 7) != 0 || ver[7] < '0' || ver[7] > '9' || ver[8]) {
		rq->status = 400;
		return;
	}
	/* Header fields: NAME ":" VALUE; no folding. */
	for (char *h = line_end + 1; *h;) {
		char *e = strchr(h, '\n');
		size_t n = (size_t)(e - h);
		if (n && h[n - 1] == '\r')
			n--;
		if (n == 0)
			break; /* the empty line */
		char *colon = memchr(h, ':', n);
		if (!colon || colon == h) {
			rq->status = 400;
			return;
		}
		for (char *c = h; c < colon; c++)
			if (!is_token_char((unsigned char)*c)) {
				rq->status = 400;
				return;
			}
		for (char *c = colon + 1; c < h + n; c++)
			if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) {
				rq->status = 400;
				return;
			}
		h = e + 1;
	}
	size_t mlen = (size_t)(sp1 - p);
	if (mlen == 4 && memcmp(p, "HEAD", 4) == 0)
		rq->head_only = true;
	else if (!(mlen == 3 && memcmp(p, "GET", 3) == 0)) {
		rq->status = 405;
		return;
	}
	rq->status = map_path(sp1 + 1, (size_t)(sp2 - sp1 - 1), rq->path);
}

/* Reads the head: returns its length, 0 when too long, or -errno. */
static ssize_t read_head(int fd, char *buf, size_t cap)
{
	size_t got = 0;
	int64_t tok = cio_timeout_push(opt.read_ns);
	ssize_t rc = 0;
	while (got < cap - 1) {
		ssize_t n = cio_recv(fd, buf + got, cap - 1 - got, 0);
		if (n <= 0) {
			rc = n ? n : -ECONNRESET; /* ended before the head did */
			break;
		}
		size_t from = got > 3 ? got - 3 : 0;
		got += (size_t)n;
		buf[got] = '\0';
		if (memchr(buf + from, '\0', got - from)) {
			rc = -EINVAL; /* a NUL in the head itself */
			break;
		}
		if (strstr(buf + from, "\r\n\r\n") || strstr(buf + from, "\n\n")) {
			rc = (ssize_t)got;
			break;
		}
	}
	cio_deadline_pop(tok);
	return rc;
}

struct conn {
	struct server *srv;
	int fd;
};

static void respond(struct server *s, int fd)
{
	char buf[HEAD_MAX + 1];
	struct request rq = {0};
	ssize_t n = read_head(fd, buf, sizeof buf);
	if (n == -EINVAL) {
		send_error(fd, 400, true);
		return;
	}
	if (n == 0) {
		send_error(fd, 431, true);
		return;
	}
	if (n < 0)
		return; /* gone or too slow: nothing to answer */
	s->requests++;
	parse(buf, &rq);
	if (rq.status) {
		send_error(fd, rq.status, !rq.head_only);
		return;
	}
	int file = open_beneath(rq.path);
	if (file < 0) {
		int code = file == -ENOENT || file == -ENOTDIR || file == -ENAMETOOLONG ? 404
			   : file == -EXDEV || file == -ELOOP || file == -EACCES ||
					   file == -EPERM || file == -ENXIO || file == -EISDIR
				   ? 403
				   : 500;
		send_error(fd, code, !rq.head_only);
		return;
	}
	struct statx st;
	int rc = cio_statx(file, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE | STATX_MTIME, &st);
	if (rc < 0 || !S_ISREG(st.stx_mode)) {
		send_error(fd, rc < 0 ? 500 : 403, !rq.head_only);
		cio_close(file);
		return;
	}
	char hdr[512], lm[96], date[64];
	http_date(date, sizeof date, (time_t)st.stx_mtime.tv_sec);
	snprintf(lm, sizeof lm, "Last-Modified: %s\r\n", date);
	int hl = head(hdr, sizeof hdr, 200, content_type(rq.path), st.stx_size, lm);
	/* The head goes out before the body with MSG_MORE: one segment
	 * carries both when the file is small. */
	bool body = !rq.head_only && st.stx_size;
	if (cio_send_all(fd, hdr, (size_t)hl, body ? MSG_MORE | MSG_NOSIGNAL : MSG_NOSIGNAL,
			 NULL) == hl) {
		s->ok++;
		if (body) {
			size_t sent = 0;
			cio_sendfile(fd, file, 0, st.stx_size, &sent);
			s->bytes += sent;
		}
	}
	cio_close(file);
}

static void *serve_conn(void *arg)
{
	struct conn c = *(struct conn *)arg;
	free(arg);
	respond(c.srv, c.fd);
	/* A lingering close: the client reads the whole response before our
	 * close (with its request maybe unread) could reset the connection. */
	if (cio_shutdown(c.fd, SHUT_WR) == 0) {
		char sink[2048];
		int64_t tok = cio_timeout_push(LINGER_NS);
		for (int i = 0; i < 32 && cio_recv(c.fd, sink, sizeof sink, 0) > 0; i++)
			;
		cio_deadline_pop(tok);
	}
	cio_close(c.fd);
	cio_wg_done(&c.srv->conns);
	return NULL;
}

static void accept_loop(struct server *s)
{
	for (;;) {
		int fd = cio_accept(s->lfd, NULL);
		if (fd == -ESHUTDOWN || fd == -ECANCELED)
			return;
		if (fd == -EBADF || fd == -EINVAL || fd == -ENOTSOCK) {
			fprintf(stderr, "file_server: accept: %s; stopping\n", cio_strerror(fd));
			atomic_store(&status, 1);
			cio_drain();
			return;
		}
		if (fd < 0) {
			/* -EMFILE (cio_accept() has paused), -ECONNABORTED...
			 * pass; memory short: a pause before retrying. */
			if ((fd == -ENOBUFS || fd == -ENOMEM) && cio_sleep(10 * CIO_MS) == -ECANCELED)
				return;
			continue;
		}
		struct conn *c = malloc(sizeof *c);
		cio_task_t t = -ENOMEM;
		if (c) {
			*c = (struct conn){s, fd};
			cio_wg_add(&s->conns, 1);
			cio_spawn_opts o = {.name = "http-conn", .stack_size = CONN_STACK, .detached = true};
			t = cio_spawn_with(&o, serve_conn, c);
			if (t < 0) {
				cio_wg_done(&s->conns);
				free(c);
			}
		}
		if (t < 0)
			cio_close(fd);
	}
}

static void *wait_bound(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)cio_wg_wait(&bound);
}

static void *stop_later(void *arg)
{
	(void)arg;
	cio_drain_idle(true); /* a drain from elsewhere ends it at once */
	if (cio_sleep(opt.run_ns) == 0)
		cio_drain();
	return NULL;
}

static void *core_main(void *arg)
{
	struct server s = {.lfd = -1};
	int core = cio_core_id();
	(void)arg;
	atomic_store(&ran, true);
	cio_wg_init(&s.conns);
	if (core == 0) {
		s.lfd = cio_listen(opt.listen, &(cio_listen_opts){.reuseport = true});
		if (s.lfd >= 0) {
			cio_addr a = {.len = sizeof a.u};
			if (getsockname(s.lfd, &a.u.sa, &a.len) < 0 ||
			    cio_addr_format(&a, bound_addr, sizeof bound_addr) < 0)
				snprintf(bound_addr, sizeof bound_addr, "%s", opt.listen);
		}
		cio_wg_done(&bound);
	} else {
		cio_core_call(0, wait_bound, NULL, NULL);
		if (bound_addr[0])
			s.lfd = cio_listen(bound_addr, &(cio_listen_opts){.reuseport = true});
	}
	if (s.lfd < 0) {
		fprintf(stderr, "file_server: core %d cannot listen on %s: %s\n", core,
			bound_addr[0] ? bound_addr : opt.listen,
			cio_strerror(s.lfd < -1 ? s.lfd : -EADDRNOTAVAIL));
		bound_addr[0] = '\0';
		atomic_store(&status, 1);
		cio_drain();
		return NULL;
	}
	if (core == 0) {
		int n = cio_core_count();
		printf("file_server: listening on %s, root %s, backend %s, %d core%s, pid %d\n",
		       bound_addr, opt.root, cio_backend_name(), n, n == 1 ? "" : "s",
		       (int)getpid());
		fflush(stdout);
		if (opt.run_ns != CIO_NEVER)
			cio_spawn_with(&(cio_spawn_opts){.detached = true}, stop_later, NULL);
	}
	accept_loop(&s);
	cio_close(s.lfd);
	cio_cancel_clear();
	cio_wg_wait(&s.conns);
	atomic_fetch_add(&total_requests, s.requests);
	atomic_fetch_add(&total_ok, s.ok);
	atomic_fetch_add(&total_bytes, s.bytes);
	return NULL;
}

static void usage(const char *prog, int code)
{
	fprintf(code ? stderr : stdout,
		"usage: %s --root DIR --listen ADDR [--cores N] [--seconds S] "
		"[--read-timeout-ms MS]\n",
		prog);
	exit(code);
}

static int64_t number(const char *prog, const char *text)
{
	char *end;
	errno = 0;
	long long v = text ? strtoll(text, &end, 10) : -1;
	if (!text || errno || *end || v < 0 || v > INT64_MAX / CIO_SEC)
		usage(prog, 2);
	return v;
}

int main(int argc, char **argv)
{
	int64_t seconds = 0, cores = 0, read_ms = 5000;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			usage(argv[0], 0);
		else if (strcmp(a, "--root") == 0 && val)
			opt.root = val, i++;
		else if (strcmp(a, "--listen") == 0 && val)
			opt.listen = val, i++;
		else if (strcmp(a, "--cores") == 0)
			cores = number(argv[0], val), i++;
		else if (strcmp(a, "--seconds") == 0)
			seconds = number(argv[0], val), i++;
		else if (strcmp(a, "--read-timeout-ms") == 0)
			read_ms = number(argv[0], val), i++;
		else
			usage(argv[0], 2);
	}
	if (!opt.root || !opt.listen || cores > 1024 || read_ms == 0)
		usage(argv[0], 2);
	opt.run_ns = seconds > 0 ? seconds * CIO_SEC : CIO_NEVER;
	opt.read_ns = read_ms * CIO_MS;
	opt.rootfd = open(opt.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (opt.rootfd < 0) {
		fprintf(stderr, "file_server: %s: %s\n", opt.root, strerror(errno));
		return 1;
	}

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	cio_wg_add(&bound, 1);
	cio_cores_config cfg = {.drain_timeout = CIO_SEC};
	int rc = cio_run_cores_with(&cfg, (int)cores, core_main, NULL);
	close(opt.rootfd);
	if (rc < 0) {
		fprintf(stderr, "file_server: cio_run_cores: %s\n", cio_strerror(rc));
		return atomic_load(&ran) ? 1 : 3;
	}
	printf("file_server: stopped: %" PRIu64 " requests, %" PRIu64 " served, %" PRIu64
	       " body bytes\n",
	       (uint64_t)atomic_load(&total_requests), (uint64_t)atomic_load(&total_ok),
	       (uint64_t)atomic_load(&total_bytes));
	return atomic_load(&status);
}
