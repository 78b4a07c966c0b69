/* file_server.c - a static file server on coreio's HTTP/1.1 server: GET
 * (and HEAD) of the regular files under one directory, sent with
 * cio_sendfile() (file -> pipe -> socket, never through user space), one
 * runtime per core with its own SO_REUSEPORT listener, one task per
 * connection, keep-alive and pipelining as the HTTP layer does them.
 *
 *   file_server --root DIR --listen ADDR [--cores N] [--seconds S]
 *               [--read-timeout-ms MS]
 *
 *   --root DIR      the directory served; nothing outside it ever is
 *   --listen ADDR   HOST:PORT, [V6HOST]:PORT or unix:/path; port 0 picks a
 *                   free port, which the "listening on" line shows
 *   --cores N       runtimes to run (default 0: one per usable CPU)
 *   --seconds S     drain after S seconds (default: until SIGINT/SIGTERM)
 *   --read-timeout-ms MS  time a client has to start a request (else
 *                   the connection closes) and to send its whole head
 *                   (else 408); default 5000
 *   COREIO_BACKEND=uring|epoll|kqueue forces a backend
 *
 * Example:  file_server --root ./public --listen 127.0.0.1:8080
 *           curl -v http://127.0.0.1:8080/index.html
 *
 * Requests.  The HTTP layer (cio_http_serve_conn(), on llhttp) reads them:
 * a head over 8 KiB is 431, a malformed or ambiguous one 400 (see
 * coreio.h), a version other than 1.0 and 1.1 505.  This program answers
 * the rest, and maps paths:
 *   400  a target that is not an absolute path ("/..."), a bad %-escape,
 *        a control character or a NUL (%00) in the path;
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
 * Responses carry Date, Server, Content-Type and Content-Length; 200 adds
 * Last-Modified.  Exit status 0 after a drain; 1: could not open the
 * root, listen or run; 2: bad arguments; 3: the runtime could not start. */
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

#include "example_server.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define HEAD_MAX 8192
/* The mapped path (up to a head's length) is on the task's stack. */
#define CONN_STACK (64 << 10)

static struct {
	struct ex_server srv; /* --listen, --seconds (or CIO_NEVER) */
	const char *root;
	int64_t read_ns;
	int rootfd;
} opt = {.srv = {.name = "file_server", .conn.stack_size = CONN_STACK}};

static atomic_uint_fast64_t total_requests, total_ok, total_bytes;
static atomic_bool ran;
static atomic_bool no_openat2; /* the kernel lacks it: walk instead */

struct server {
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

/* --- the handler -------------------------------------------------------- */

/* An error response with a one-line text body. */
static int refuse(cio_http_resp *resp, int code)
{
	char body[64];
	int n = snprintf(body, sizeof body, "%d %s\n", code, reason(code));
	if (code == 405)
		cio_http_resp_header(resp, "Allow", "GET, HEAD");
	return cio_http_resp_send(resp, code, "text/plain; charset=utf-8", body, (size_t)n);
}

static int handle(cio_http_req *req, cio_http_resp *resp, void *arg)
{
	struct server *s = arg;
	const char *m = cio_http_req_method(req), *target = cio_http_req_target(req);
	char path[HEAD_MAX + 2];
	s->requests++;
	cio_http_resp_header(resp, "Server", "coreio-file_server");
	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0)
		return refuse(resp, 405);
	size_t len = strlen(target);
	int code = len > HEAD_MAX ? 400 : map_path(target, len, path);
	if (code)
		return refuse(resp, code);
	int file = open_beneath(path);
	if (file < 0)
		return refuse(resp, file == -ENOENT || file == -ENOTDIR || file == -ENAMETOOLONG ? 404
				    : file == -EXDEV || file == -ELOOP || file == -EACCES ||
						    file == -EPERM || file == -ENXIO || file == -EISDIR
					    ? 403
					    : 500);
	struct statx st;
	int rc = cio_statx(file, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE | STATX_MTIME, &st);
	if (rc < 0 || !S_ISREG(st.stx_mode)) {
		cio_close(file);
		return refuse(resp, rc < 0 ? 500 : 403);
	}
	char date[64];
	http_date(date, sizeof date, (time_t)st.stx_mtime.tv_sec);
	cio_http_resp_header(resp, "Last-Modified", date);
	cio_http_resp_header(resp, "Content-Type", content_type(path));
	cio_http_resp_status(resp, 200);
	cio_http_resp_set_length(resp, st.stx_size);
	ssize_t sent = cio_http_resp_sendfile(resp, file, 0, st.stx_size);
	cio_close(file);
	if (sent < 0)
		return (int)sent;
	s->ok++;
	s->bytes += (uint64_t)sent;
	return cio_http_resp_end(resp);
}

/* --- connections ------------------------------------------------------------ */

static int serve_conn(void *arg, int fd)
{
	cio_stream *st;
	cio_http_server_opts ho = {.max_head = HEAD_MAX, .head_timeout = opt.read_ns};
	if (cio_stream_new(&st, fd, NULL) == 0) {
		cio_http_serve_conn(st, &ho, handle, arg);
		cio_stream_close(st);
	}
	return CIO_SERVE_DONE;
}

static void *core_main(void *arg)
{
	struct server s = {0};
	(void)arg;
	atomic_store(&ran, true);
	if (ex_server_run(&opt.srv, serve_conn, NULL, &s) < 0)
		return NULL;
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
			opt.srv.addr = val, i++;
		else if (strcmp(a, "--cores") == 0)
			cores = number(argv[0], val), i++;
		else if (strcmp(a, "--seconds") == 0)
			seconds = number(argv[0], val), i++;
		else if (strcmp(a, "--read-timeout-ms") == 0)
			read_ms = number(argv[0], val), i++;
		else
			usage(argv[0], 2);
	}
	if (!opt.root || !opt.srv.addr || cores > 1024 || read_ms == 0)
		usage(argv[0], 2);
	opt.srv.run_ns = seconds > 0 ? seconds * CIO_SEC : CIO_NEVER;
	opt.read_ns = read_ms * CIO_MS;
	opt.rootfd = open(opt.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (opt.rootfd < 0) {
		fprintf(stderr, "file_server: %s: %s\n", opt.root, strerror(errno));
		return 1;
	}

	static char about[300];
	snprintf(about, sizeof about, "root %s", opt.root);
	opt.srv.about = about;
	ex_server_init();
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
	return atomic_load(&ex_status);
}
