/* select.c - nanoseconds for a cio_select() over four channels that are
 * all ready, against a plain cio_chan_recv() of a ready element, in the
 * same run: what choosing among sources costs over taking from one.
 *
 *   coreio-recv     recv one element, send it back: the floor
 *   coreio-select4  select over four ready channels (each holds an
 *                   element), send the taken one back to its channel
 *
 * Both loops pay one send per round; the ratio is select4 over recv.
 * Usage: select [rounds [repeats]]; defaults 1,000,000 and 11. */
#include "bench.h"

#include <coreio.h>

struct round {
	long n;
	double ns;
};

static cio_chan *make(void)
{
	cio_chan *ch;
	if (cio_chan_new(&ch, sizeof(int), 4) < 0)
		exit(1);
	int v = 0;
	if (cio_chan_send(ch, &v) < 0)
		exit(1);
	return ch;
}

static void *recv_main(void *arg)
{
	struct round *r = arg;
	cio_chan *ch = make();
	int v;
	int64_t t0 = bench_now_ns();
	for (long i = 0; i < r->n; i++)
		if (cio_chan_recv(ch, &v) < 0 || cio_chan_send(ch, &v) < 0)
			exit(1);
	r->ns = (double)(bench_now_ns() - t0) / (double)r->n;
	cio_chan_free(ch);
	return NULL;
}

static void *select_main(void *arg)
{
	struct round *r = arg;
	cio_chan *ch[4];
	int v[4];
	cio_select_case cs[4];
	for (int k = 0; k < 4; k++) {
		ch[k] = make();
		cs[k] = (cio_select_case){.op = CIO_SELECT_RECV, .chan = ch[k], .elem = &v[k]};
	}
	int64_t t0 = bench_now_ns();
	for (long i = 0; i < r->n; i++) {
		int w = cio_select(cs, 4);
		if (w < 0 || cio_chan_send(ch[w], &v[w]) < 0)
			exit(1);
	}
	r->ns = (double)(bench_now_ns() - t0) / (double)r->n;
	for (int k = 0; k < 4; k++)
		cio_chan_free(ch[k]);
	return NULL;
}

enum { RECV, SELECT4, NIMPL };
static const char *const names[NIMPL] = {"coreio-recv", "coreio-select4"};

static double run_one(int impl, long n)
{
	struct round r = {.n = n};
	if (cio_run(impl == RECV ? recv_main : select_main, &r) < 0)
		exit(1);
	return r.ns;
}

int main(int argc, char **argv)
{
	long n = bench_arg(argc, argv, 1, 1000000);
	int repeats = (int)bench_arg(argc, argv, 2, 11);
	if (n < 1 || repeats > BENCH_MAX_REPEATS) {
		fprintf(stderr, "usage: %s [rounds [repeats <= %d]]\n", argv[0], BENCH_MAX_REPEATS);
		return 2;
	}
	bench_init();
	for (int i = 0; i < NIMPL; i++)
		run_one(i, n / 10 + 1);
	double v[NIMPL][BENCH_MAX_REPEATS];
	for (int r = 0; r < repeats; r++)
		for (int k = 0; k < NIMPL; k++) {
			int impl = (r + k) % NIMPL;
			v[impl][r] = run_one(impl, n);
		}
	char extra[64];
	snprintf(extra, sizeof extra, "n=%ld", n);
	for (int i = 0; i < NIMPL; i++)
		bench_report("select", names[i], "round", "ns", v[i], repeats, extra);
	bench_ratio("select", "coreio-select4", "coreio-recv", v[SELECT4], v[RECV], repeats);
	return 0;
}
