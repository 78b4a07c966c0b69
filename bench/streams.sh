#!/bin/sh
# streams.sh - what a cio_stream costs over the raw fd: examples/echo_server
# serving each connection on its fd (cio_recv + cio_send_all) and through
# a stream (--stream: fill, then write_all from the stream's buffer), on
# io_uring and on epoll, in one bench/net.sh run.  Rewrites the "Streams"
# section of docs/benchmarks.md with the ratios of the medians.
#
#   make bench-net-build && bench/streams.sh [BUILD_DIR]  default build-bench
#
# Environment (defaults in brackets):
#   STREAMS_SIZES ["100 16384"]  STREAMS_CONNS [64]  STREAMS_REPEATS [5]
#   STREAMS_REPORT [unset]   a CSV this script made: only the section from it
# and bench/net.sh's NET_* settings for the rest.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=${1:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
doc=$root/docs/benchmarks.md
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

if [ -n "${STREAMS_REPORT:-}" ]; then
	csvrel=${STREAMS_REPORT#"$root"/}
else
	[ -x "$build/examples/echo_server" ] || {
		echo "streams.sh: $build/examples/echo_server missing; run make bench-net-build" >&2
		exit 1
	}
	srv="@BUILD@/examples/echo_server --cores 1 127.0.0.1:@PORT@"
	cat >"$work/servers.txt" <<-EOF2
	raw-uring     io_uring  env COREIO_BACKEND=uring $srv
	stream-uring  io_uring  env COREIO_BACKEND=uring $srv --stream
	raw-epoll     epoll     env COREIO_BACKEND=epoll $srv
	stream-epoll  epoll     env COREIO_BACKEND=epoll $srv --stream
	EOF2
	NET_REGISTRY=$work/servers.txt NET_SECTION=0 NET_NAME=streams \
		NET_SIZES=${STREAMS_SIZES:-100 16384} NET_CONNS=${STREAMS_CONNS:-64} \
		NET_REPEATS=${STREAMS_REPEATS:-5} "$root/bench/net.sh" "$build"
	csvrel=bench/results/$(date -u '+%Y-%m-%d')-streams.csv
fi
getppid_ns=$(syscall_ns "$work" || true)

section=$work/section
awk -F, -v csvname="$csvrel" -v getppid="$getppid_ns" "$awk_median"'
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
$col["pass"] == "measure" {
	k = $col["size"] SUBSEP $col["conns"]
	if (!(k in seen)) { seen[k]; order[++nk] = k }
	s = $col["server"]
	cpu[s SUBSEP k] = cpu[s SUBSEP k] " " $col["server_cpu_us_per_req"]
	reps = $col["rep"] > reps ? $col["rep"] : reps
	if (!day) { day = $col["date"]; commit = $col["commit"]; kernel = $col["kernel"] }
}
END {
	print "## Streams"
	print ""
	printf "Measured %s, commit %s, Linux %s, %d runs of each server at each\n", day, commit, kernel, reps
	print "point, interleaved (bench/net.sh: `bench/loadgen` on CPU 1, the server on"
	print "CPU 0). `raw-*` is examples/echo_server on the connection'"'"'s fd, `stream-*`"
	print "the same server with `--stream`: each connection through a cio_stream"
	print "(cio_stream_fill, then cio_stream_write_all from the stream'"'"'s buffer)."
	print "Reproduce with `bench/streams.sh` after `make bench-net-build`."
	if (getppid != "") printf "A getppid system call took %s ns on this machine.\n", getppid
	print ""
	print "| Size | Conns | Backend | raw CPU-µs/req | stream CPU-µs/req | stream / raw (<= 1.05x) | of the best runs |"
	print "| --- | --- | --- | --- | --- | --- | --- |"
	split("uring epoll", be, " ")
	for (i = 1; i <= nk; i++) {
		split(order[i], p, SUBSEP)
		for (b = 1; b <= 2; b++) {
			xs = cpu["stream-" be[b] SUBSEP order[i]]; ys = cpu["raw-" be[b] SUBSEP order[i]]
			x = median(xs); y = median(ys)
			r = (x == "" || y == "" || y <= 0) ? "" : x / y
			rb = (least(xs) == "" || least(ys) <= 0) ? "" : least(xs) / least(ys)
			printf "| %s B | %s | %s | %.2f | %.2f | %s%s | %s |\n", p[1], p[2], be[b], y, x,
				fx(r), r == "" ? "" : (r <= 1.05 ? ": yes" : ": **no**"), fx(rb)
		}
	}
	print ""
	print "This VM has a fast and a slow phase (one server'"'"'s runs at one point"
	print "differ by up to a third); the best run of each is the one that fell in"
	print "the fast phase, so the ratio of the best runs is the steadier one."
	print ""
	print "Raw figures, one line per run: [" csvname "](../" csvname ")."
}' "$root/$csvrel" >"$section"

"$root/bench/doc-section.sh" streams "bench/streams.sh" "$section" "$doc"
cat "$section"
