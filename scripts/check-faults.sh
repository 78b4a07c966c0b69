#!/bin/bash
# check-faults.sh - the fault-injection sweep: runs tests with one failure
# injected at a time (src/platform/fail.h) and fails on any crash, hang or
# sanitizer report; a test that sees the error and fails its own CHECK is
# fine.
#
# Builds its own tree (build-faults: Debug, COREIO_TESTING, ASan+UBSan),
# then for each test of FAULTS_TESTS, each backend of FAULTS_BACKENDS and
# each spec of FAULTS_SPECS (a fail-point kind, or kind:ERRNO) runs the
# test with COREIO_FAIL=kind:N[:ERRNO] for a set of N.  A first run without
# failures (COREIO_FAIL_REPORT=1) counts the calls C of each kind the test
# makes; a kind it never calls is not swept.
#
# Sampling (which N):
#   default (make check-faults): N = 1..FAULTS_FIRST (4), then
#     FAULTS_STRIDE_SAMPLES (2) more, evenly strided from FAULTS_FIRST
#     up to C: the error paths of set-up and of the first calls of each
#     kind, and a sample of the steady state.
#   full (make check-faults-full, or FAULTS_FULL=1): every N up to C.
# The tests write under a fresh directory in FAULTS_TMP (/var/tmp).
# Every run has FAULTS_TIMEOUT seconds (30); runs go FAULTS_JOBS (2) at
# a time.  Each run is one of:
#   pass   the test passed (the runtime got over the failure);
#   clean  the test failed a CHECK (exit 3 under COREIO_CHECK_EXIT=1,
#          tests/check.h): it saw the error as a return value;
#   skip   the backend does not run here (77);
#   BAD    anything else: a signal, a sanitizer or leak report (also in
#          a child process's output), or a hang.
# Exit status 1 when a run is BAD; the logs of those runs stay in
# build-faults/faults/.  A summary gives, per test and backend, the calls
# counted of each kind and the runs that were pass/clean/BAD.
# Usage: scripts/check-faults.sh [full]
set -eu
cd "$(dirname "$0")/.."
ROOT=$PWD
SELF=$ROOT/scripts/check-faults.sh
BUILD=${FAULTS_BUILD:-build-faults}
TESTS=${FAULTS_TESTS:-test_task test_sync test_net test_net_misc test_stream test_fs test_serve test_http test_nowait}
BACKENDS=${FAULTS_BACKENDS:-uring epoll}
SPECS=${FAULTS_SPECS:-alloc mmap madvise sqe submit eventfd pipe socket \
accept epoll_ctl epoll_wait recv recv:SHORT recv:EINTR send send:SHORT read read:SHORT \
write write:SHORT splice}
FIRST=${FAULTS_FIRST:-4}
STRIDE_SAMPLES=${FAULTS_STRIDE_SAMPLES:-2}
TIMEOUT=${FAULTS_TIMEOUT:-30}
JOBS=${FAULTS_JOBS:-2}
FULL=${FAULTS_FULL:-0}
[ "${1:-}" = full ] && FULL=1

export ASAN_OPTIONS=detect_leaks=1:exitcode=86
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=87
export COREIO_CHECK_EXIT=1

# One run: TEST BACKEND SPEC N; prints "class test backend spec n rc".
if [ "${1:-}" = --one ]; then
	t=$2 b=$3 spec=$4 n=$5
	kind=${spec%%:*}
	err=; [ "$kind" != "$spec" ] && err=:${spec#*:}
	log=$BUILD/faults/$t.$b.${spec/:/-}.$n.log
	rc=0
	COREIO_BACKEND=$b COREIO_FAIL=$kind:$n$err timeout -k 5 "$TIMEOUT" \
		"$BUILD/tests/$t" >"$log" 2>&1 || rc=$?
	if grep -qE 'Sanitizer|runtime error:' "$log"; then
		class=BAD
	else
		case $rc in
		0) class=pass ;; 3) class=clean ;; 77) class=skip ;; *) class=BAD ;;
		esac
	fi
	[ "$class" = BAD ] || rm -f "$log"
	echo "$class $t $b $spec $n $rc"
	exit 0
fi

start=$(date +%s)
CC=gcc cmake -S . -B "$BUILD" -DCOREIO_WERROR=ON -DCMAKE_BUILD_TYPE=Debug -DCOREIO_TESTING=ON \
	-DCOREIO_SANITIZE=address,undefined -DCOREIO_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target $TESTS >/dev/null
scripts/check-layers.sh "$BUILD"
rm -rf "$BUILD/faults"
mkdir -p "$BUILD/faults"
# The tests' files: outside the checkout, whose parents another user (the
# uid test_fs drops to) may not be allowed to cross; on disk, not tmpfs,
# where the system has it (/var/tmp), as test_fs wants.
scratch=$(mktemp -d "${FAULTS_TMP:-/var/tmp}/coreio-faults-XXXXXX")
chmod 755 "$scratch"
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch COREIO_TEST_DIR=$scratch

# The calls of each kind a test makes, from a run without failures: the
# largest count any of its processes reported.
jobs=$BUILD/faults/jobs
: >"$jobs"
counts=$BUILD/faults/counts
: >"$counts"
for t in $TESTS; do
	for b in $BACKENDS; do
		log=$BUILD/faults/$t.$b.count.log
		rc=0
		COREIO_BACKEND=$b COREIO_FAIL_REPORT=1 timeout -k 5 "$TIMEOUT" \
			"$BUILD/tests/$t" >"$log" 2>&1 || rc=$?
		[ "$rc" = 77 ] && { echo "$t ($b): skipped"; continue; }
		if [ "$rc" != 0 ]; then
			echo "$t ($b) fails without injected faults:" >&2
			tail -20 "$log" >&2
			exit 1
		fi
		for spec in $SPECS; do
			kind=${spec%%:*}
			c=$(grep -o " $kind=[0-9]*" "$log" | cut -d= -f2 | sort -n | tail -1)
			c=${c:-0}
			echo "$t $b $spec $c" >>"$counts"
			[ "$c" -gt 0 ] || continue
			if [ "$FULL" = 1 ]; then
				seq 1 "$c"
			else
				last=$((FIRST < c ? FIRST : c))
				seq 1 "$last"
				if [ "$c" -gt "$FIRST" ]; then
					step=$(((c - FIRST + STRIDE_SAMPLES - 1) / STRIDE_SAMPLES))
					seq $((FIRST + step)) "$step" "$c"
				fi
			fi | sed "s|^|$t $b $spec |" >>"$jobs"
		done
		rm -f "$log"
	done
done

echo "check-faults: $(wc -l <"$jobs") runs, $JOBS at a time"
results=$BUILD/faults/results
xargs -P "$JOBS" -L 1 "$SELF" --one <"$jobs" >"$results"

# Per test, backend and kind: calls counted; runs pass/clean/BAD.
awk '
	FNR == NR { calls[$1 " " $2 " " $3] = $4; next }
	{ k = $2 " " $3 " " $4; runs[k]++; cls[k, $1]++ }
	END {
		printf "%-14s %-6s %-14s %8s %5s %5s %5s %4s\n", "test", "backend",
		       "kind", "calls", "runs", "pass", "clean", "BAD"
		for (k in calls) {
			if (calls[k] == 0)
				continue
			split(k, f, " ")
			printf "%-14s %-6s %-14s %8d %5d %5d %5d %4d\n", f[1], f[2], f[3],
			       calls[k], runs[k], cls[k, "pass"], cls[k, "clean"], cls[k, "BAD"]
		}
	}' "$counts" "$results" | sort
bad=$(grep -c '^BAD' "$results" || true)
echo "check-faults: $(wc -l <"$results") runs in $(($(date +%s) - start)) s:" \
	"$(grep -c '^pass' "$results" || true) passed," \
	"$(grep -c '^clean' "$results" || true) failed a CHECK cleanly, $bad BAD"
if [ "$bad" != 0 ]; then
	grep '^BAD' "$results" | sort -k2,5 | head -50
	echo "check-faults: logs of BAD runs in $BUILD/faults/" >&2
	exit 1
fi
