/* test_stats.c - the per-core counters of cio_stats move with what a
 * runtime does, and cio_stats_format() / cio_stats_dump() write them as
 * Prometheus text, one sample per core under cio_run_cores(). */
#include "check.h"

#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static void *job(void *arg)
{
	return arg;
}

/* The value of the sample `name` (a metric name and its labels) in text,
 * or -1 when it is not there. */
static long long sample(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, name, n) == 0 && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
	return -1;
}

static void test_counters(void)
{
	cio_stats a, b;
	cio_stats_get(&a);
	int lfd = cio_listen("127.0.0.1:0", NULL);
	CHECK(lfd >= 0);
	cio_addr la = {.len = sizeof la.u};
	CHECK(getsockname(lfd, &la.u.sa, &la.len) == 0);
	char addr[64];
	CHECK(cio_addr_format(&la, addr, sizeof addr) >= 0);
	int c = cio_connect(addr, 0);
	CHECK(c >= 0);
	int s = cio_accept(lfd, NULL);
	CHECK(s >= 0);
	char buf[16];
	CHECK_EQ(cio_send(c, "hello", 5, 0), 5);
	CHECK_EQ(cio_recv(s, buf, sizeof buf, 0), 5);
	CHECK_EQ(cio_send(s, "x", 1, 0), 1);
	CHECK(cio_wait_readable(c) >= 0);
	CHECK_EQ(cio_recv(c, buf, sizeof buf, 0), 1);
	CHECK_EQ(cio_sleep(CIO_MS), 0);
	void *r = NULL;
	CHECK_EQ(cio_blocking(job, &a, &r), 0);
	CHECK(r == &a);
	/* Not listening: a refused accept, counted as an error. */
	CHECK_EQ(cio_accept(c, NULL), -EINVAL);
	cio_stats_get(&b);
	CHECK(b.ops_read >= a.ops_read + 1);
	CHECK(b.ops_write >= a.ops_write + 1);
	CHECK_EQ(b.ops_accept, a.ops_accept + 2);
	CHECK_EQ(b.accepted, a.accepted + 1);
	CHECK_EQ(b.accept_errors, a.accept_errors + 1);
	CHECK(b.ops_connect >= a.ops_connect + 1);
	CHECK_EQ(b.ops_poll, a.ops_poll + 1);
	CHECK(b.timers_armed >= a.timers_armed + 1);
	CHECK(b.driver_polls > a.driver_polls);
	CHECK(b.driver_events > a.driver_events);
	CHECK_EQ(b.pool_jobs, a.pool_jobs + 1);
	CHECK(b.pool_waits <= b.pool_jobs);
	CHECK(b.msgs_received > a.msgs_received); /* the pool's reply */
	CHECK_EQ(b.stalls, 0); /* reports are off by default */
	if (strcmp(cio_backend_name(), "io_uring") == 0) {
		CHECK(b.uring_enters > a.uring_enters);
		CHECK(b.uring_enters >= b.driver_polls / 2);
	} else {
		CHECK_EQ(b.uring_enters, 0);
	}

	/* Out of fds: accept fails with -EMFILE, and says so. */
	struct rlimit rl, low;
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	int c2 = cio_connect(addr, 0);
	CHECK(c2 >= 0);
	int probe = dup(0);
	CHECK(probe >= 0);
	close(probe);
	low = rl;
	low.rlim_cur = (rlim_t)probe; /* the next fd would be `probe` */
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
	int e = cio_accept(lfd, NULL);
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	CHECK_EQ(e, -EMFILE);
	cio_stats_get(&a);
	CHECK_EQ(a.accept_errors, b.accept_errors + 1);
	int s2 = cio_accept(lfd, NULL); /* it stayed queued */
	CHECK(s2 >= 0);
	cio_stats_get(&b);
	CHECK_EQ(b.accepted, a.accepted + 1);
	cio_close(s2);
	cio_close(c2);
	/* Interrupted: not a refusal. */
	int64_t tok = cio_timeout_push(CIO_MS);
	CHECK_EQ(cio_accept(lfd, NULL), -ETIMEDOUT);
	cio_deadline_pop(tok);
	cio_stats_get(&a);
	CHECK_EQ(a.accept_errors, b.accept_errors);
	CHECK_EQ(a.ops_accept, b.ops_accept + 1);
	cio_close(s);
	cio_close(c);
	cio_close(lfd);

	/* The text: the sample of this core matches the record. */
	char text[16384];
	cio_stats_get(&a);
	ssize_t n = cio_stats_format(text, sizeof text, &a, 1);
	CHECK(n > 0 && (size_t)n < sizeof text);
	CHECK_EQ(strlen(text), n);
	CHECK(strstr(text, "# HELP coreio_ops_total ") != NULL);
	CHECK(strstr(text, "# TYPE coreio_ops_total counter\n") != NULL);
	CHECK(strstr(text, "# TYPE coreio_tasks_live gauge\n") != NULL);
	CHECK_EQ(sample(text, "coreio_ops_total{core=\"0\",kind=\"read\"}"), a.ops_read);
	CHECK_EQ(sample(text, "coreio_accepted_total{core=\"0\"}"), a.accepted);
	CHECK_EQ(sample(text, "coreio_accept_errors_total{core=\"0\"}"), a.accept_errors);
	CHECK(sample(text, "coreio_pool_queued") >= 0);
	/* Each family's HELP and TYPE once. */
	const char *first = strstr(text, "# TYPE coreio_ops_total");
	CHECK(strstr(first + 1, "# TYPE coreio_ops_total") == NULL);
	/* Too small: snprintf's rules. */
	char small[32];
	memset(small, 'x', sizeof small);
	CHECK_EQ(cio_stats_format(small, sizeof small, &a, 1), n);
	CHECK_EQ(strlen(small), sizeof small - 1);
	CHECK_EQ(cio_stats_format(NULL, 0, &a, 1), n);
	CHECK_EQ(cio_stats_format(NULL, 1, &a, 1), -EINVAL);
	CHECK_EQ(cio_stats_format(text, sizeof text, NULL, 1), -EINVAL);

	/* One core: the dump is this core's. */
	n = cio_stats_dump(text, sizeof text);
	CHECK(n > 0 && (size_t)n < sizeof text);
	CHECK(strstr(text, "core=\"0\"") != NULL);
	CHECK(strstr(text, "core=\"1\"") == NULL);
}

static void *test_main(void *arg)
{
	(void)arg;
	TEST_CASE(counters, test_counters());
	return NULL;
}

/* --- several cores ------------------------------------------------------- */

static char dump[65536];
static ssize_t dumped;

static void *core_main(void *arg)
{
	(void)arg;
	/* Some traffic on every core: a socket pair's round trip. */
	int sv[2];
	CHECK_EQ(cio_socketpair(SOCK_STREAM, sv), 0);
	char b[4];
	CHECK_EQ(cio_send(sv[0], "ping", 4, 0), 4);
	CHECK_EQ(cio_recv(sv[1], b, sizeof b, 0), 4);
	cio_close(sv[0]);
	cio_close(sv[1]);
	if (cio_core_id() != 0) {
		cio_drain_wait(); /* alive until core 0 has read the counters */
		return NULL;
	}
	/* Until every core has had its round trip. */
	cio_stats st[4];
	int n, k;
	for (int tries = 0;; tries++) {
		n = cio_stats_get_all(st, 4);
		CHECK_EQ(n, cio_core_count());
		for (k = 0; k < n && st[k].ops_read >= 1; k++)
			;
		if (k == n)
			break;
		CHECK(tries < 5000);
		cio_sleep(CIO_MS);
	}
	/* Core 0's own record is read first: the calls show in the next. */
	CHECK_EQ(cio_stats_get_all(st, 1), 1);
	CHECK(st[0].msgs_sent >= (uint64_t)(n - 1));
	dumped = cio_stats_dump(dump, sizeof dump);
	cio_drain();
	return NULL;
}

static void test_cores(void)
{
	cio_cores_config cfg = {.all = test_backend_config(), .no_signals = true, .no_pin = true};
	CHECK_EQ(cio_run_cores_with(&cfg, 2, core_main, NULL), 0);
	CHECK(dumped > 0 && (size_t)dumped < sizeof dump);
	CHECK(sample(dump, "coreio_ops_total{core=\"0\",kind=\"read\"}") >= 1);
	CHECK(sample(dump, "coreio_ops_total{core=\"1\",kind=\"read\"}") >= 1);
	CHECK(sample(dump, "coreio_messages_received_total{core=\"1\"}") >= 1);
	CHECK(sample(dump, "coreio_tasks_spawned_total{core=\"1\"}") >= 1);
}

int main(int argc, char **argv)
{
	test_cases_begin(argc, argv);
	int rc = test_run(test_main, NULL);
	if (rc != 0)
		return rc;
	TEST_CASE(cores, test_cores());
	TEST_CASE(off_runtime, {
		/* Off a runtime: zeros. */
		cio_stats st;
		memset(&st, 0xff, sizeof st);
		cio_stats_get(&st);
		CHECK_EQ(st.switches, 0);
		CHECK_EQ(st.ops_read, 0);
	});
	return test_cases_end();
}
