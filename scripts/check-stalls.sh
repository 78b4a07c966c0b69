#!/bin/bash
# check-stalls.sh - runs the ASan suite while its processes are frozen and
# thawed over and over, as a loaded or paused CI host does to a job: a
# test must not assume that time moves only while it runs.  A freeze also
# interrupts system calls made under a socket timeout (EINTR) and cuts
# blocking pipe writes short, which tests and the peers they drive meet.
#
# Needs root and a cgroup freezer: cgroup v2's cgroup.freeze, or v1's
# freezer controller.  Not part of make check.
#
#   STALLS_ROUNDS (3)    suite runs
#   STALLS_MS (120)      each freeze, in milliseconds
#   STALLS_EVERY_MS (300-700: random)  the time between freezes
#   STALLS_JOBS (3)      ctest -j, above the CPUs on purpose
#   STALLS_TESTS         a ctest -R filter (all tests when unset)
# Exit status 1 when any round failed; the logs stay in build-asan/stalls/.
# Usage: scripts/check-stalls.sh [BUILD_DIR]   (default build-asan, built
# by make check-asan)
set -eu
cd "$(dirname "$0")/.."
BUILD=$(realpath "${1:-build-asan}")
ROUNDS=${STALLS_ROUNDS:-3}
FREEZE_MS=${STALLS_MS:-120}
JOBS=${STALLS_JOBS:-3}
[ -x "$BUILD/tests/test_task" ] || { echo "check-stalls: no tests in $BUILD (make check-asan first)" >&2; exit 2; }

# A cgroup for the suite, and how to freeze and thaw it.
cg=
if [ -f /sys/fs/cgroup/cgroup.controllers ] || [ -d /sys/fs/cgroup/unified ]; then
	root=/sys/fs/cgroup; [ -f $root/cgroup.controllers ] || root=/sys/fs/cgroup/unified
	cg=$root/coreio-stalls.$$
	if mkdir "$cg" 2>/dev/null && [ -f "$cg/cgroup.freeze" ]; then
		freeze() { echo 1 >"$cg/cgroup.freeze"; }
		thaw() { echo 0 >"$cg/cgroup.freeze"; }
	else
		rmdir "$cg" 2>/dev/null || true
		cg=
	fi
fi
if [ -z "$cg" ] && [ -d /sys/fs/cgroup/freezer ]; then
	cg=/sys/fs/cgroup/freezer/coreio-stalls.$$
	mkdir "$cg"
	freeze() { echo FROZEN >"$cg/freezer.state"; }
	thaw() { echo THAWED >"$cg/freezer.state"; }
fi
[ -n "$cg" ] || { echo "check-stalls: no cgroup freezer here (root, cgroup v2 or v1 freezer)" >&2; exit 2; }

logs=$BUILD/stalls
rm -rf "$logs"
mkdir -p "$logs"
done_flag=$logs/done

# The suite, inside the cgroup; its children join it.
(
	echo $BASHPID >"$cg/cgroup.procs"
	cd "$BUILD"
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	for i in $(seq 1 "$ROUNDS"); do
		rc=0
		ctest --output-on-failure -j"$JOBS" ${STALLS_TESTS:+-R "$STALLS_TESTS"} \
			>"$logs/round$i.log" 2>&1 || rc=$?
		echo "round $i: $([ $rc = 0 ] && echo passed || echo FAILED)" | tee -a "$logs/summary"
	done
	touch "$done_flag"
) &
suite=$!
# Interrupted: nothing may stay frozen, and the cgroup goes.
# Whatever is left in the cgroup (the suite, or a server a failed test
# left running) is killed.
cleanup() {
	thaw 2>/dev/null || true
	for _ in 1 2 3 4 5; do
		procs=$(cat "$cg/cgroup.procs" 2>/dev/null) || break
		[ -n "$procs" ] || break
		kill $procs 2>/dev/null || true
		sleep 0.2
	done
	wait $suite 2>/dev/null || true
	rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

freezes=0
sec() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }
while [ ! -e "$done_flag" ] && kill -0 $suite 2>/dev/null; do
	sleep "$(sec "${STALLS_EVERY_MS:-$((300 + RANDOM % 400))}")"
	freeze
	sleep "$(sec "$FREEZE_MS")"
	thaw
	freezes=$((freezes + 1))
done
wait $suite || true

echo "check-stalls: $ROUNDS rounds, $freezes freezes of $FREEZE_MS ms"
if grep -q FAILED "$logs/summary"; then
	grep -hE '\*\*\*(Failed|Exception|Timeout)' "$logs"/round*.log >&2 || true
	echo "check-stalls: failures above; logs in $logs" >&2
	exit 1
fi
