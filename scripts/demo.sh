#!/bin/sh
# demo.sh - what `make demo` runs: the task demo, then the echo server
# example on each backend (io_uring, then epoll) under the load generator,
# printing req/s, latency and server CPU per request for each.
#
#   scripts/demo.sh [BUILD_DIR]      default build
#
# DEMO_SECONDS (default 3) sets the measured seconds per backend.  The
# server runs on CPU 0 and the load on the last CPU when there are two or
# more.  Fails loudly (exit 1) if any byte comes back wrong, the server
# dies or fails to stop cleanly; a backend the kernel refuses (io_uring
# disabled, say) is reported and skipped.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
seconds=${DEMO_SECONDS:-3}
for p in examples/tasks_demo examples/echo_server bench/loadgen; do
	[ -x "$build/$p" ] || {
		echo "demo.sh: $build/$p missing; run make demo" >&2
		exit 1
	}
done

ncpu=$(nproc)
server_cpu=0
client_cpu=$((ncpu > 1 ? ncpu - 1 : 0))
work=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
	echo >&2
	echo "demo: FAILED: $*" >&2
	exit 1
}

echo "== tasks: spawn/join, channel ping-pong, sleepers"
"$build/examples/tasks_demo" || fail "tasks_demo"

# One core pinned on each backend, the client on another CPU; then
# io_uring on every CPU (one runtime per core), the client sharing them.
for run in uring epoll uring-all; do
	backend=${run%-all}
	cpus=$server_cpu
	client="--cpu $client_cpu"
	what="1 core on CPU $server_cpu"
	if [ "$run" = uring-all ]; then
		cpus=0-$((ncpu - 1))
		client=
		what="every CPU ($ncpu cores), client sharing them"
	fi
	echo
	echo "== echo server, COREIO_BACKEND=$backend, $what: 64 connections x 100 B, ${seconds} s"
	log=$work/server-$run.log
	# Port 0: the kernel picks a free one, which the server prints.
	COREIO_BACKEND=$backend taskset -c "$cpus" \
		"$build/examples/echo_server" --seconds 60 127.0.0.1:0 >"$log" 2>&1 &
	pid=$!
	tries=0
	until grep -q 'listening on' "$log"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			st=0
			wait "$pid" || st=$?
			pid=
			if [ "$st" = 3 ]; then
				echo "skipped: this kernel refuses $backend here:"
				sed 's/^/  /' "$log"
				continue 2
			fi
			cat "$log" >&2
			fail "echo_server exited with status $st before listening"
		fi
		tries=$((tries + 1))
		[ $tries -lt 250 ] || fail "echo_server did not listen within 5 s"
		sleep 0.02
	done
	head -n 1 "$log"
	addr=$(sed -n 's/.*listening on \([^,]*\),.*/\1/p' "$log")
	port=${addr##*:}
	name=$(sed -n 's/.*, backend \([a-z_]*\).*/\1/p' "$log")

	"$build/bench/loadgen" --host 127.0.0.1 --port "$port" --conns 64 --size 100 \
		--warmup 0.5 --seconds "$seconds" --server-pid "$pid" $client \
		--impl coreio-echo --backend "$name" >"$work/load.out" ||
		{ cat "$log" >&2; fail "load against the $name backend (see above)"; }
	grep '^loadgen:' "$work/load.out"

	kill -0 "$pid" 2>/dev/null || fail "echo_server died during the run"
	kill -TERM "$pid"
	st=0
	wait "$pid" || st=$?
	pid=
	[ "$st" = 0 ] || { cat "$log" >&2; fail "echo_server exited with status $st on SIGTERM"; }
	sed -n 's/^echo_server: stopped/echo_server: stopped/p' "$log"
done
echo
echo "demo: all echoes verified byte for byte"
