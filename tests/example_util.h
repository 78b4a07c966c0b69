/* example_util.h - helpers for the tests that run the example programs
 * (examples/) as child processes: start one with its stdout on a pipe and
 * wait for its "listening on" line, stop it with a signal and collect its
 * exit status and summary, and look at it through /proc (fds, RSS).
 *
 * Children are started with posix_spawn(), which is safe from inside a
 * runtime (no fork of a multi-threaded process runs code in the child).
 * They inherit the environment, so COREIO_BACKEND (and ASAN_OPTIONS)
 * reach them.  Every wait is bounded. */
#ifndef COREIO_TEST_EXAMPLE_UTIL_H
#define COREIO_TEST_EXAMPLE_UTIL_H

#include "check.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct child {
	pid_t pid;
	int out;          /* its stdout, read end; -1 once closed */
	char text[4096];  /* what it printed so far */
	size_t len;
};

static inline int64_t ex_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what the child printed, for up to timeout_ms or until `until`
 * shows in its output (NULL: until EOF).  Returns whether it showed (or
 * EOF came, for NULL). */
static inline bool ex_read_until(struct child *c, const char *until, int timeout_ms)
{
	int64_t end = ex_now_ms() + timeout_ms;
	while (c->out >= 0) {
		if (until && strstr(c->text, until))
			return true;
		int64_t left = end - ex_now_ms();
		if (left <= 0)
			return false;
		struct pollfd p = {.fd = c->out, .events = POLLIN};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t n = read(c->out, c->text + c->len, sizeof c->text - 1 - c->len);
		if (n <= 0) {
			close(c->out);
			c->out = -1;
			break;
		}
		c->len += (size_t)n;
		c->text[c->len] = '\0';
		if (c->len + 1 == sizeof c->text) {
			c->len = 0; /* keep reading; the start is lost */
		}
	}
	return until ? strstr(c->text, until) != NULL : true;
}

/* Starts argv with its stdout and stderr on a pipe (c->out).  With
 * COREIO_TEST_EXEC_WRAPPER set (words split on spaces: an emulator and
 * its flags, as scripts/check-aarch64.sh sets), the child runs under it.
 * A child that cannot start fails the test. */
/* The children started, killed when a check fails: a failed test leaves
 * no server behind. */
static pid_t ex_children_[32];

/* 1: pid is this process's child and runs; 0: it ended, not yet reaped;
 * -1: not a child of ours (reaped already).  Reaps nothing. */
static int ex_child_state_(pid_t pid)
{
	siginfo_t si;
	si.si_pid = 0;
	if (pid <= 0 || waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return -1;
	return si.si_pid == 0;
}

static void ex_kill_children_(void)
{
	for (size_t i = 0; i < sizeof ex_children_ / sizeof *ex_children_; i++)
		if (ex_child_state_(ex_children_[i]) == 1)
			kill(ex_children_[i], SIGKILL);
}

static inline void ex_child_track_(pid_t pid)
{
	test_on_failure_ = ex_kill_children_;
	for (size_t i = 0; i < sizeof ex_children_ / sizeof *ex_children_; i++)
		if (ex_child_state_(ex_children_[i]) < 0) { /* free, or reaped */
			ex_children_[i] = pid;
			return;
		}
}

static inline void ex_spawn(struct child *c, char *const argv[])
{
	char wrap[512], *args[64];
	size_t n = 0;
	const char *w = getenv("COREIO_TEST_EXEC_WRAPPER");
	if (w && *w) {
		CHECK((size_t)snprintf(wrap, sizeof wrap, "%s", w) < sizeof wrap);
		for (char *save, *tok = strtok_r(wrap, " ", &save); tok;
		     tok = strtok_r(NULL, " ", &save)) {
			CHECK(n < 16);
			args[n++] = tok;
		}
	}
	for (size_t i = 0; argv[i]; i++) {
		CHECK(n < 63);
		args[n++] = argv[i];
	}
	args[n] = NULL;

	int p[2];
	memset(c, 0, sizeof *c);
	CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	/* Its stderr too: a child left behind by a failed test must not
	 * hold CTest's output open. */
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	fflush(stdout);
	fflush(stderr);
	int rc = posix_spawnp(&c->pid, args[0], &fa, NULL, args, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	c->out = p[0];
	if (rc != 0) {
		fprintf(stderr, "cannot run %s: %s\n", args[0], strerror(rc));
		CHECK(!"child did not start");
	}
	ex_child_track_(c->pid);
}

/* Starts argv (ex_spawn()); with `wait_for`, waits (10 s) for that text
 * in its output.  Returns 0. */
static inline int ex_start(struct child *c, char *const argv[], const char *wait_for)
{
	ex_spawn(c, argv);
	if (wait_for && !ex_read_until(c, wait_for, 10000)) {
		fprintf(stderr, "%s did not print \"%s\"; it said: %s\n", argv[0], wait_for,
			c->text);
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		CHECK(!"child did not start");
	}
	return 0;
}

static inline int ex_wait(struct child *c, int timeout_ms);

/* Runs argv (ex_spawn()) to its end (timeout_ms at most), with its
 * stdout and stderr in c->text.  Returns the exit status (-signal if
 * killed). */
static inline int ex_run(struct child *c, char *const argv[], int timeout_ms)
{
	ex_spawn(c, argv);
	ex_read_until(c, NULL, timeout_ms);
	int st = ex_wait(c, timeout_ms);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/* The port of the "listening on HOST:PORT," line the child printed. */
static inline int ex_port(const struct child *c)
{
	const char *s = strstr(c->text, "listening on ");
	CHECK(s);
	s = strchr(s, ',');
	CHECK(s);
	while (s[-1] >= '0' && s[-1] <= '9')
		s--;
	return atoi(s);
}

/* Waits (timeout_ms) for the child to end; returns its wait status, or
 * kills it and fails the test. */
static inline int ex_wait(struct child *c, int timeout_ms)
{
	int64_t end = ex_now_ms() + timeout_ms;
	int st;
	for (;;) {
		pid_t r = waitpid(c->pid, &st, WNOHANG);
		CHECK(r >= 0);
		if (r == c->pid)
			break;
		if (ex_now_ms() > end) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &st, 0);
			ex_read_until(c, NULL, 100);
			fprintf(stderr, "child %d hung; killed.  It said:\n%s\n", (int)c->pid,
				c->text);
			CHECK(!"child hung");
		}
		usleep(5000);
	}
	ex_read_until(c, NULL, 2000);
	if (c->out >= 0) {
		close(c->out);
		c->out = -1;
	}
	return st;
}

/* Sends sig and waits; returns the exit status (-signal if killed). */
static inline int ex_stop(struct child *c, int sig, int timeout_ms)
{
	CHECK_EQ(kill(c->pid, sig), 0);
	int st = ex_wait(c, timeout_ms);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/* Open fds of process pid; *pipes (if not NULL) gets how many are pipes. */
static inline int ex_fds(pid_t pid, int *pipes)
{
	char path[64], link[64], p2[384];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	CHECK(d);
	int n = 0, np = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		n++;
		snprintf(p2, sizeof p2, "%s/%s", path, e->d_name);
		ssize_t l = readlink(p2, link, sizeof link - 1);
		if (l > 0) {
			link[l] = '\0';
			np += strncmp(link, "pipe:", 5) == 0;
		}
	}
	closedir(d);
	if (pipes)
		*pipes = np;
	return n;
}

/* VmRSS of process pid, KiB. */
static inline long ex_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	CHECK(f);
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* --- programs of this machine's: clients, peers ------------------------------ */

/* Starts (wait_for: as ex_start()) or runs (NULL: as ex_run(), 20 s) a
 * program of this machine's (curl, python3, wrk), never under the
 * emulator COREIO_TEST_EXEC_WRAPPER names, which runs only the examples
 * under test.  Returns 0 when started, or the exit status when run. */
static inline int ex_native(struct child *c, char *const argv[], const char *wait_for)
{
	char *wrap = getenv("COREIO_TEST_EXEC_WRAPPER");
	wrap = wrap ? strdup(wrap) : NULL;
	unsetenv("COREIO_TEST_EXEC_WRAPPER");
	int st = wait_for ? ex_start(c, argv, wait_for) : ex_run(c, argv, 20000);
	if (wrap) {
		setenv("COREIO_TEST_EXEC_WRAPPER", wrap, 1);
		free(wrap);
	}
	return st;
}

/* Runs a client (ex_native()) that must exit 0; returns its output. */
static inline const char *ex_run_ok(struct child *c, char *const argv[])
{
	int st = ex_native(c, argv, NULL);
	if (st != 0) {
		fprintf(stderr, "%s exited %d; it said:\n%s\n", argv[0], st, c->text);
		CHECK(!"client failed");
	}
	return c->text;
}

/* Writes len pseudo-random bytes (from seed) to a new file at path. */
static inline void ex_write_file(const char *path, size_t len, uint32_t seed)
{
	FILE *f = fopen(path, "we");
	CHECK(f);
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245 + 12345;
		fputc((int)(seed >> 16) & 0xff, f);
	}
	CHECK_EQ(fclose(f), 0);
}

/* The two files hold the same bytes. */
static inline void ex_same_files(const char *a, const char *b)
{
	FILE *fa = fopen(a, "re"), *fb = fopen(b, "re");
	CHECK(fa && fb);
	int ca, cb;
	size_t n = 0;
	do {
		ca = fgetc(fa);
		cb = fgetc(fb);
		if (ca != cb) {
			fprintf(stderr, "%s and %s differ at byte %zu\n", a, b, n);
			CHECK(!"same bytes");
		}
		n++;
	} while (ca != EOF);
	fclose(fa);
	fclose(fb);
}

/* --- a plain-socket client, sharing nothing with coreio -------------------- */

/* A blocking TCP connection to 127.0.0.1:port, with 20 s send and receive
 * timeouts so that a hung server fails the test rather than hanging it.
 * Under those timeouts a socket call fails with EINTR when the process is
 * stopped and continued (SIGSTOP, a cgroup freeze), even with no handler;
 * an interrupted connect goes on in the kernel, so it is waited for. */
static inline int ex_dial(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = {.tv_sec = 20};
	CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
	CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
	int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
	for (int tries = 0; rc < 0 && (errno == EINTR || errno == EALREADY) && tries < 100; tries++) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		poll(&p, 1, 200);
		rc = connect(fd, (struct sockaddr *)&a, sizeof a);
		if (rc < 0 && errno == EISCONN)
			rc = 0;
	}
	if (rc < 0) {
		fprintf(stderr, "connect to 127.0.0.1:%d: %s\n", port, strerror(errno));
		CHECK(!"connect");
	}
	return fd;
}

/* Sends all n bytes, through EINTR. */
static inline void ex_send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		CHECK(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

/* The peer's end of stream comes next (not data, not a reset). */
static inline void ex_expect_eof(int fd)
{
	char c;
	ssize_t r;
	while ((r = recv(fd, &c, 1, 0)) < 0 && errno == EINTR)
		;
	CHECK_EQ(r, 0);
}

#endif
