#!/bin/sh
# core.sh - runs the core microbenchmarks (switch, spawn, sleepers) from a
# build directory, keeps their raw output, and rewrites the "Core" section
# of docs/benchmarks.md from it.  `make bench-core` builds and calls this.
#
#   bench/core.sh [BUILD_DIR]        default build-bench
#
# SWITCH_ARGS, SPAWN_ARGS, SLEEPERS_ARGS, SELECT_ARGS pass arguments to one program
# (e.g. SLEEPERS_ARGS="100000 3" for a quick run); the section then shows
# them beside the command, as the figures depend on them.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
bin=$build/bench
doc=$root/docs/benchmarks.md
raw=$build/bench-core.txt

for p in switch spawn sleepers select; do
	[ -x "$bin/$p" ] || {
		echo "core.sh: $bin/$p missing; run make bench-core" >&2
		exit 1
	}
done

# Each program pins itself (COREIO_BENCH_CPU, default the last CPU) and
# prints key=value lines; keep them all, in run order.
: >"$raw"
# shellcheck disable=SC2086
for run in "switch ${SWITCH_ARGS:-}" "spawn ${SPAWN_ARGS:-}" \
	"sleepers ${SLEEPERS_ARGS:-}" "select ${SELECT_ARGS:-}"; do
	set -- $run
	prog=$1
	shift
	echo "== $prog $*" >&2
	"$bin/$prog" "$@" | tee -a "$raw"
done

cmd="make bench-core"
for v in SWITCH_ARGS SPAWN_ARGS SLEEPERS_ARGS SELECT_ARGS; do
	eval "val=\${$v:-}"
	[ -n "$val" ] && cmd="$v=\"$val\" $cmd"
done
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
ncpu=$(nproc)
kernel=$(uname -r)
date=$(date -u '+%Y-%m-%d %H:%M UTC')

section=$(mktemp)
trap 'rm -f "$section"' EXIT

# The section: machine, command, then tables built from the raw lines.
awk -v cmd="$cmd" -v cpu_model="$cpu_model" -v ncpu="$ncpu" \
	-v kernel="$kernel" -v date="$date" '
function kv(line, key,    n, i, f, a) {
	n = split(line, f, " ")
	for (i = 1; i <= n; i++) {
		split(f[i], a, "=")
		if (a[1] == key)
			return substr(f[i], length(key) + 2)
	}
	return ""
}
/^bench=/ {
	b = kv($0, "bench")
	if (commit == "") {
		commit = kv($0, "commit"); pin = kv($0, "cpu")
	}
	if (kv($0, "backend") != "" && backend == "")
		backend = kv($0, "backend")
	if (kv($0, "ratio") != "") {
		r = b SUBSEP kv($0, "ratio")
		ratio_med[r] = kv($0, "median"); ratio_min[r] = kv($0, "min")
		ratio_pair[r] = kv($0, "paired_median")
		ratios[++nratios] = r
		next
	}
	m = b SUBSEP kv($0, "impl") SUBSEP kv($0, "metric")
	rows[++nrows] = m
	med[m] = kv($0, "median"); mn[m] = kv($0, "min"); mx[m] = kv($0, "max")
	unit[m] = kv($0, "unit"); reps[m] = kv($0, "repeats")
	n = kv($0, "n"); if (n == "") n = kv($0, "tasks")
	count[m] = n
	if (b == "sleepers" && kv($0, "metric") == "rss_per_task") {
		guard = kv($0, "guard_pages_madvise"); vmas = kv($0, "vmas")
		maxmap = kv($0, "max_map_count"); stack = kv($0, "stack_kib")
	}
	raw[++nraw] = $0
}
function fig(m) { return (m in med) ? med[m] : "n/a" }
function verdict(ok) { return ok ? "yes" : "**no**" }
END {
	print "## Core"
	print ""
	printf "Measured %s on %s (%d CPUs), Linux %s, commit %s; ", date, cpu_model, ncpu, kernel, commit
	printf "one thread pinned to CPU %s, backend %s, Release build (-O2).\n", pin, backend
	print ""
	print "Command: `" cmd "`"
	print ""
	print "Each figure is over the repeats of one run; peers run in the same"
	print "process, interleaved with coreio in a rotating order, so that a slow"
	print "phase of the machine falls on all of them. Ratios divide the medians"
	print "(and, in brackets, the minima) of the same run; the ratio table adds"
	print "the median of the ratios of each repeat, the steadiest of the three."
	print ""
	print "### Against the targets"
	print ""
	print "| What | Figure | Target | Met |"
	print "| --- | --- | --- | --- |"
	r = "switch" SUBSEP "coreio/boost"
	if (r in ratio_med)
		printf "| switch: cio_yield() vs Boost jump_fcontext | %.2fx (%.2fx) | <= 1.0x | %s |\n", ratio_med[r], ratio_min[r], verdict(ratio_med[r] + 0 <= 1.0)
	r = "switch" SUBSEP "coreio/boost-call"
	if (r in ratio_med)
		printf "| switch: cio_yield() vs Boost jump_fcontext inside a returning function | %.2fx (%.2fx) | (none; like for like, see below) | |\n", ratio_med[r], ratio_min[r]
	m = "spawn" SUBSEP "coreio-batch" SUBSEP "spawn_run_exit"
	if (m in med)
		printf "| spawn + run + exit, batches of 1000 detached | %s ns | <= 50 ns | %s |\n", med[m], verdict(med[m] + 0 <= 50)
	m = "spawn" SUBSEP "coreio-join" SUBSEP "spawn_run_exit"
	if (m in med)
		printf "| spawn + run + exit, spawn then join | %s ns | <= 50 ns | %s |\n", med[m], verdict(med[m] + 0 <= 50)
	r = "spawn" SUBSEP "coreio-group/coreio-join"
	if (r in ratio_med)
		printf "| group member (spawn + wait, groups of 1000) vs spawn + join | %.2fx (%.2fx) | <= 1.2x | %s |\n", ratio_med[r], ratio_min[r], verdict(ratio_med[r] + 0 <= 1.2)
	r = "select" SUBSEP "coreio-select4/coreio-recv"
	if (r in ratio_med)
		printf "| select over 4 ready channels vs one channel receive | %.2fx (%.2fx) | <= 2.0x | %s |\n", ratio_med[r], ratio_min[r], verdict(ratio_med[r] + 0 <= 2.0)
	m = "sleepers" SUBSEP "coreio" SUBSEP "rss_per_task"
	if (m in med)
		printf "| memory per sleeping task (%s tasks, %s KiB stacks) | %s KiB | <= 8 KiB | %s |\n", count[m], stack, med[m], verdict(med[m] + 0 <= 8)
	print ""
	print "### Figures"
	print ""
	print "| Benchmark | Implementation | Measure | Median | Min | Max | Unit | Repeats | Count |"
	print "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for (i = 1; i <= nrows; i++) {
		m = rows[i]; split(m, k, SUBSEP)
		printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", k[1], k[2], k[3], med[m], mn[m], mx[m], unit[m], reps[m], count[m]
	}
	print ""
	print "### Ratios (same run)"
	print ""
	print "| Benchmark | Ratio | Of medians | Of minima | Median of per-repeat ratios |"
	print "| --- | --- | --- | --- | --- |"
	for (i = 1; i <= nratios; i++) {
		r = ratios[i]; split(r, k, SUBSEP)
		printf "| %s | %s | %sx | %sx | %sx |\n", k[1], k[2], ratio_med[r], ratio_min[r], ratio_pair[r]
	}
	print ""
	print "What the rows are:"
	print ""
	print "- switch `coreio`: two tasks calling `cio_yield()` in turn, each yield"
	print "  counted as one switch, scheduler included. `coreio-ctx`: the bare"
	print "  switch primitive (`cio__ctx_switch`) in a ping-pong, no scheduler."
	print "  `boost`: `jump_fcontext()` ping-pong. `boost-call`: the same, each"
	print "  jump made inside a function that then returns, as any yield() is:"
	print "  after a stack switch the CPU mispredicts that return (its return-stack"
	print "  predictor holds the other stack'"'"'s addresses), which the bare ping-pong"
	print "  never executes. `ucontext`: `swapcontext()`."
	print "- spawn `coreio-batch`: spawn 1000 detached empty tasks, yield until"
	print "  they ran, repeat; `coreio-join`: spawn one and join it, repeat;"
	print "  `coreio-group`: a task group of 1000 empty members, waited for. Stacks"
	print "  (256 KiB) come warm from the pool. `boost`: `make_fcontext()` on a"
	print "  reused stack, jump in and straight back: the floor, with no scheduler."
	print "- select `coreio-select4`: `cio_select()` over four channels that each"
	print "  hold an element, the taken one sent back; `coreio-recv`: receive from"
	print "  one channel and send back. One send a round in both."
	printf "- sleepers: tasks with %s KiB stacks all in `cio_sleep()`; memory is\n", stack
	print "  the growth of the resident set from before the first spawn to when"
	print "  all sleep. `spawn` is the `cio_spawn_with()` calls alone,"
	print "  `first_run_to_sleep` the first run up to the park, `spawn_rate` both"
	print "  together, `cancel_wake_exit` cancelling all and letting them finish."
	printf "  vm.max_map_count is %s and untouched; guard pages by\n", maxmap
	printf "  MADV_GUARD_INSTALL: %s; %s VMAs at the peak.\n", (guard == "1" ? "yes" : "no"), vmas
	print ""
	print "Raw output:"
	print ""
	print "```text"
	for (i = 1; i <= nraw; i++)
		print raw[i]
	print "```"
}' "$raw" >"$section"

"$(dirname "$0")/doc-section.sh" core "bench/core.sh (make bench-core)" "$section" "$doc"
echo "core.sh: raw output in $raw; section Core of $doc rewritten" >&2
