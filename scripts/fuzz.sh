#!/bin/sh
# fuzz.sh - runs the libFuzzer targets of tests/fuzz (built by make fuzz or
# make check-fuzz into BUILD_DIR): each first over its seed corpus in
# tests/fuzz/corpus/<target> (the regression inputs: every one must pass),
# then for SECONDS seconds of fuzzing from that corpus and from what
# earlier runs in BUILD_DIR found.  Fails on the first crash, leak,
# sanitizer report or input slower than FUZZ_TIMEOUT seconds, and names
# the input libFuzzer saved (BUILD_DIR/fuzz-artifacts/); copy it into the
# target's corpus once the bug is fixed.
#
#   scripts/fuzz.sh BUILD_DIR SECONDS [TARGET...]   default: every target
#
# FUZZ_BACKEND (default epoll) is the runtime's backend: each input starts
# a runtime of its own, which costs less on epoll than on io_uring
# (docs/fuzzing.md); FUZZ_BACKEND=uring fuzzes the io_uring paths.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: fuzz.sh BUILD_DIR SECONDS [TARGET...]}
seconds=${2:?usage: fuzz.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
case $build in /*) ;; *) build=$root/$build ;; esac
targets=${*:-addr stream http http_client tls}
export COREIO_BACKEND="${FUZZ_BACKEND:-epoll}"
timeout_s=${FUZZ_TIMEOUT:-10}
# abort_on_error: a report ends the run as a crash, which libFuzzer saves.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:abort_on_error=1}"
artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts"

for t in $targets; do
	bin=$build/tests/fuzz/fuzz_$t
	seeds=$root/tests/fuzz/corpus/$t
	work=$build/fuzz-corpus/$t
	log=$build/fuzz-$t.log
	[ -x "$bin" ] || { echo "fuzz.sh: $bin missing" >&2; exit 1; }
	mkdir -p "$work"
	case $t in addr) maxlen=300 ;; *) maxlen=4096 ;; esac
	common="-timeout=$timeout_s -max_len=$maxlen -artifact_prefix=$artifacts/$t- -print_final_stats=1"
	# The seeds and the regression inputs, each run once.
	# shellcheck disable=SC2086
	if ! "$bin" $common -runs=0 "$seeds" >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		echo "fuzz.sh: $t: an input of $seeds fails (log: $log)" >&2
		exit 1
	fi
	# shellcheck disable=SC2086
	if ! "$bin" $common -max_total_time="$seconds" "$work" "$seeds" >"$log" 2>&1; then
		tail -n 60 "$log" >&2
		echo "fuzz.sh: $t: FAILED; the input is in $artifacts/ (log: $log)" >&2
		exit 1
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	cov=$(sed -n 's/.*DONE *cov: \([0-9]*\).*/\1/p' "$log")
	echo "fuzz $t ($COREIO_BACKEND): $runs inputs in $seconds s ($rate per second), coverage $cov, corpus $(ls "$work" | wc -l) inputs: no failure"
done
