#!/bin/sh
# seam.sh - what the driver's structure costs: examples/echo_server of
# this tree on io_uring, epoll and kqueue (over the kevent emulation of
# tests/kevent), against the same program built from an older commit
# (SEAM_BASE) on io_uring and epoll, and against the raw epoll server, all
# in one bench/net.sh run.  Rewrites the "Driver" section of
# docs/benchmarks.md with the ratios of the medians.
#
#   make bench-net-build && bench/seam.sh [BUILD_DIR]   default build-bench
#
# Environment (defaults in brackets):
#   SEAM_BASE [1d39c29]     the commit to compare with (a git revision)
#   SEAM_SIZES [100]  SEAM_CONNS ["16 64 256"]  SEAM_REPEATS [5]
#   SEAM_REPORT [unset]     a CSV this script made: no builds and no runs,
#                           only the section from it
# and bench/net.sh's NET_* settings for the rest.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=${1:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
base=${SEAM_BASE:-1d39c29}
sizes=${SEAM_SIZES:-100}
conns=${SEAM_CONNS:-16 64 256}
repeats=${SEAM_REPEATS:-5}
doc=$root/docs/benchmarks.md
jobs=$(nproc)

[ -n "${SEAM_REPORT:-}" ] || [ -x "$build/bench/epoll_echo" ] || {
	echo "seam.sh: $build/bench/epoll_echo missing; run make bench-net-build" >&2
	exit 1
}
base_sha=$(cd "$root" && git rev-parse --short "$base^{commit}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

if [ -n "${SEAM_REPORT:-}" ]; then
	csvrel=${SEAM_REPORT#"$root"/}
else
	# Release builds with the bench build's flags: the older tree from git,
	# this one over the kevent emulation.
	release() {
		src=$1 out=$2
		shift 2
		cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release \
			"-DCMAKE_C_FLAGS_RELEASE=-O2 -DNDEBUG" \
			-DCOREIO_BUILD_TESTS=OFF -DCOREIO_BUILD_EXAMPLES=ON "$@" >/dev/null
		cmake --build "$out" -j"$jobs" --target echo_server >/dev/null
	}
	# The older tree where its build cache expects it, fresh each run.
	rm -rf "$build/seam-base-src"
	mkdir -p "$build/seam-base-src"
	(cd "$root" && git archive "$base_sha") | tar -x -C "$build/seam-base-src"
	release "$build/seam-base-src" "$build/seam-base"
	release "$root" "$build/seam-kqueue" -DCOREIO_KQUEUE_EMULATION=ON

	registry=$work/servers.txt
	cat >"$registry" <<-EOF
	coreio-uring   io_uring  env COREIO_BACKEND=uring @BUILD@/examples/echo_server --cores 1 127.0.0.1:@PORT@
	before-uring   io_uring  env COREIO_BACKEND=uring @BUILD@/seam-base/examples/echo_server --cores 1 127.0.0.1:@PORT@
	coreio-epoll   epoll     env COREIO_BACKEND=epoll @BUILD@/examples/echo_server --cores 1 127.0.0.1:@PORT@
	before-epoll   epoll     env COREIO_BACKEND=epoll @BUILD@/seam-base/examples/echo_server --cores 1 127.0.0.1:@PORT@
	epoll          epoll     @BUILD@/bench/epoll_echo @PORT@ 127.0.0.1
	kqueue-emul    kqueue    env COREIO_BACKEND=kqueue @BUILD@/seam-kqueue/examples/echo_server --cores 1 127.0.0.1:@PORT@
	EOF

	day=$(date -u '+%Y-%m-%d')
	NET_REGISTRY=$registry NET_SECTION=0 NET_NAME=seam NET_SIZES=$sizes \
		NET_CONNS=$conns NET_REPEATS=$repeats "$root/bench/net.sh" "$build"
	csvrel=bench/results/$day-seam.csv
fi

# What a system call costs here (page-table isolation or not), for the
# reader comparing machines.
getppid_ns=$(syscall_ns "$work" || true)
section=$work/section
awk -F, -v base="$base_sha" -v csvname="$csvrel" -v getppid="$getppid_ns" "$awk_median"'
function r(a, b,    x, y) {
	x = median(cpu[a SUBSEP key]); y = median(cpu[b SUBSEP key])
	return (x == "" || y == "" || y <= 0) ? "" : x / y
}
# The ratio of the best runs: this VM has a fast and a slow phase, and
# the best run of each server is the one that fell in the fast one.
function rb(a, b,    x, y) {
	x = least(cpu[a SUBSEP key]); y = least(cpu[b SUBSEP key])
	return (x == "" || y == "" || y <= 0) ? "" : x / y
}
function verdict(v, lim) { return v == "" ? "n/a" : (v <= lim ? "yes" : "**no**") }
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
$col["pass"] == "measure" {
	k = $col["size"] SUBSEP $col["conns"]
	if (!(k in seen)) { seen[k]; order[++nk] = k }
	s = $col["server"]
	cpu[s SUBSEP k] = cpu[s SUBSEP k] " " $col["server_cpu_us_per_req"]
	rps[s SUBSEP k] = rps[s SUBSEP k] " " $col["req_s"]
	reps = $col["rep"] > reps ? $col["rep"] : reps
	if (!day) { day = $col["date"]; commit = $col["commit"]; kernel = $col["kernel"] }
}
END {
	print "## Driver"
	print ""
	printf "Measured %s, commit %s against %s (before the readiness engine, the\n", day, commit, base
	printf "per-kind entry point and the platform shims), Linux %s, %d runs of\n", kernel, reps
	print "each server at each point, interleaved (bench/net.sh, `bench/loadgen`"
	print "epoll client on CPU 1, server on CPU 0). `before-*` is examples/echo_server"
	print "built from the older commit, `kqueue-emul` this tree'"'"'s built with"
	print "`-DCOREIO_KQUEUE_EMULATION=ON`: kqueue over the test emulation, which"
	print "is itself written over epoll, so its cost is the emulation'"'"'s as much as"
	print "the backend'"'"'s and says nothing of a real kqueue. Reproduce with"
	print "`make bench-seam`."
	if (getppid != "") printf "A getppid system call took %s ns on this machine.\n", getppid
	print ""
	print "Server CPU-µs per request, medians:"
	print ""
	print "| Size | Conns | coreio-uring | before-uring | coreio-epoll | before-epoll | raw epoll | kqueue-emul |"
	print "| --- | --- | --- | --- | --- | --- | --- | --- |"
	split("coreio-uring before-uring coreio-epoll before-epoll epoll kqueue-emul", sv, " ")
	for (i = 1; i <= nk; i++) {
		key = order[i]; split(key, p, SUBSEP)
		row = "| " p[1] " B | " p[2] " |"
		for (j = 1; j <= 6; j++) {
			m = median(cpu[sv[j] SUBSEP key])
			row = row " " (m == "" ? "n/a" : sprintf("%.2f", m)) " |"
		}
		print row
	}
	print ""
	print "Ratios of the medians, then (in brackets) of each server'"'"'s best run:"
	print ""
	print "| Size | Conns | coreio-epoll / raw epoll (<= 0.92x) | coreio-uring / before (<= 1.07x) | coreio-epoll / before | kqueue-emul / coreio-epoll | coreio-uring req/s / before |"
	print "| --- | --- | --- | --- | --- | --- | --- |"
	for (i = 1; i <= nk; i++) {
		key = order[i]; split(key, p, SUBSEP)
		e = r("coreio-epoll", "epoll"); u = r("coreio-uring", "before-uring")
		x = median(rps["coreio-uring" SUBSEP key]); y = median(rps["before-uring" SUBSEP key])
		printf "| %s B | %s | %s (%s): %s | %s (%s): %s | %s (%s) | %s (%s) | %s |\n", p[1], p[2],
			fx(e), fx(rb("coreio-epoll", "epoll")), verdict(e, 0.92),
			fx(u), fx(rb("coreio-uring", "before-uring")), verdict(u, 1.07),
			fx(r("coreio-epoll", "before-epoll")), fx(rb("coreio-epoll", "before-epoll")),
			fx(r("kqueue-emul", "coreio-epoll")), fx(rb("kqueue-emul", "coreio-epoll")),
			fx(y > 0 ? x / y : "")
	}
	print ""
	print "Raw figures, one line per run: [" csvname "](../" csvname ")."
}' "$root/$csvrel" >"$section"

"$root/bench/doc-section.sh" driver "bench/seam.sh (make bench-seam)" "$section" "$doc" \
	"$root/bench/seam-notes.md"
cat "$section"
