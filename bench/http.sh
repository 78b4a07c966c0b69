#!/bin/sh
# http.sh - the smallest keep-alive HTTP server: examples/http_hello (one
# core, on io_uring and on epoll) against nginx (one worker, `return 200`
# with the same 14-byte body), each pinned to CPU 0 and driven by wrk
# (one thread) on CPU 1, at 64 and 256 connections, repeats interleaved.
# Beside them the floor: bench's uring_echo --http, a runtime-free
# io_uring loop that answers each request head with a fixed response and
# parses nothing, the least a keep-alive HTTP server can cost here.
# The figure is the server's CPU-µs per request: its utime+stime (all its
# threads; nginx's worker) over the requests wrk counted in the measured
# run.  Appends every run to bench/results/<date>-http.csv and rewrites
# the "HTTP" section of docs/benchmarks.md.  `make bench-http` builds and
# calls this.
#
#   bench/http.sh [BUILD_DIR]          default build-bench
#
#   HTTP_SECONDS [4]  HTTP_WARMUP [1] (whole seconds: wrk's -d)  HTTP_REPEATS [3]  HTTP_CONNS ["64 256"]
#   HTTP_REPORT [unset]  a CSV this script wrote: only the section from it
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=${1:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
secs=${HTTP_SECONDS:-4}
warmup=${HTTP_WARMUP:-1}
repeats=${HTTP_REPEATS:-3}
conns_list=${HTTP_CONNS:-64 256}
hello=$build/examples/http_hello
floor=$build/bench/uring_echo
doc=$root/docs/benchmarks.md
tmp=$(mktemp -d)
srv_pid=
cleanup() {
	[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

day=$(date -u +%Y-%m-%d)
csvrel=bench/results/$day-http.csv
csv=$root/$csvrel
if [ -n "${HTTP_REPORT:-}" ]; then
	csvrel=${HTTP_REPORT#"$root"/}
	csv=$root/$csvrel
	repeats=0
else
	for p in "$hello" "$floor" "$(command -v wrk || echo /usr/bin/wrk)" "$(command -v nginx || echo /usr/sbin/nginx)"; do
		[ -x "$p" ] || {
			echo "http.sh: $p missing; run make bench-http" >&2
			exit 1
		}
	done
	mkdir -p "$root/bench/results"
	[ -f "$csv" ] || echo "date,commit,kernel,rep,server,conns,req_s,server_cpu_us_per_req,p99_ms" >"$csv"
fi
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || commit=$commit-dirty
kernel=$(uname -r)

nginx_conf() { # port
	cat <<EOF2
worker_processes 1;
daemon off;
error_log $tmp/nginx-error.log;
pid $tmp/nginx.pid;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 100000000;
	client_body_temp_path $tmp;
	proxy_temp_path $tmp;
	fastcgi_temp_path $tmp;
	uwsgi_temp_path $tmp;
	scgi_temp_path $tmp;
	server {
		listen 127.0.0.1:$1;
		location / { return 200 "Hello, world!\n"; }
	}
}
EOF2
}

# Starts a server on port $2; its serving process's pid in $cpu_pid.
start_server() { # name port
	case $1 in
	http_hello-uring | http_hello-epoll)
		COREIO_BACKEND=${1#http_hello-} taskset -c 0 "$hello" --cores 1 \
			"127.0.0.1:$2" >"$tmp/server.log" 2>&1 &
		srv_pid=$!
		wait_port "$2"
		cpu_pid=$srv_pid
		;;
	floor)
		taskset -c 0 "$floor" --http "$2" >"$tmp/server.log" 2>&1 &
		srv_pid=$!
		wait_port "$2"
		cpu_pid=$srv_pid
		;;
	nginx)
		nginx_conf "$2" >"$tmp/nginx.conf"
		taskset -c 0 nginx -p "$tmp" -c "$tmp/nginx.conf" >"$tmp/server.log" 2>&1 &
		srv_pid=$!
		wait_port "$2"
		cpu_pid=$(pgrep -P "$srv_pid" | head -n 1)
		;;
	esac
}

stop_server() {
	kill "$srv_pid" 2>/dev/null || true
	wait "$srv_pid" 2>/dev/null || true
	srv_pid=
}

# utime + stime of a process, all its threads, in clock ticks.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

servers="http_hello-uring nginx http_hello-epoll floor"
rep=1
while [ "$rep" -le "$repeats" ]; do
	# shellcheck disable=SC2086
	for srv in $(rotate $((rep - 1)) $servers); do
		port=$(free_port 3)
		start_server "$srv" "$port"
		for c in $conns_list; do
			taskset -c 1 wrk -t1 -c"$c" -d"$warmup" "http://127.0.0.1:$port/" >/dev/null
			t0=$(cpu_ticks "$cpu_pid")
			out=$(taskset -c 1 wrk -t1 -c"$c" -d"$secs" --latency "http://127.0.0.1:$port/")
			t1=$(cpu_ticks "$cpu_pid")
			line=$(echo "$out" | awk -v pre="$day,$commit,$kernel,$rep,$srv,$c" \
				-v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '
				/requests in/ { reqs = $1 }
				/Requests\/sec/ { rps = $2 }
				/ 99%/ { p99 = $2; if (p99 ~ /us$/) p99 = p99 / 1000; else if (p99 ~ /ms$/) p99 += 0; else p99 = p99 * 1000 }
				/Non-2xx|Socket errors/ { bad = 1 }
				END {
					if (bad || reqs == 0) exit 1
					printf "%s,%.0f,%.2f,%.2f\n", pre, rps, ticks / hz * 1e6 / reqs, p99
				}') || {
				echo "http.sh: wrk saw errors against $srv:" >&2
				echo "$out" >&2
				exit 1
			}
			echo "$line" | tee -a "$csv" >&2
		done
		stop_server
	done
	rep=$((rep + 1))
done

getppid_ns=$(syscall_ns "$tmp" || true)
nginx_version=$(nginx -v 2>&1 | head -n 1 || true)
section=$tmp/section
# The section shows the CSV's last run only: the rows of the commit its
# last line names (a day's CSV may hold several runs).
last=$(tail -n 1 "$csv" | cut -d, -f2)
awk -F, -v csvname="$csvrel" -v last="$last" -v getppid="$getppid_ns" -v nv="$nginx_version" \
	-v cpu="$(cpu_model)" "$awk_median"'
NR == 1 || $2 != last { next }
{
	k = $6
	if (!(k in seen)) { seen[k]; order[++nk] = k }
	us[$5 SUBSEP k] = us[$5 SUBSEP k] " " $8
	rps[$5 SUBSEP k] = rps[$5 SUBSEP k] " " $7
	run[$5 SUBSEP k SUBSEP $4] = $8
	reps = $4 > reps ? $4 : reps
	if (!day) { day = $1; commit = $2; kernel = $3 }
}
# The median over rounds of a / b, the two of a round measured minutes
# apart at most: steadier than a ratio of medians when the speed of
# the machine drifts between rounds.
function paired(a, b, k,    r, list) {
	list = ""
	for (r = 1; r <= reps; r++)
		if ((a SUBSEP k SUBSEP r) in run && (b SUBSEP k SUBSEP r) in run && run[b SUBSEP k SUBSEP r] > 0)
			list = list " " run[a SUBSEP k SUBSEP r] / run[b SUBSEP k SUBSEP r]
	return median(list)
}
END {
	print "## HTTP"
	print ""
	printf "Measured %s, commit %s, Linux %s, %s; %d runs of each server,\n", day, commit, kernel, cpu, reps
	printf "interleaved. %s, one worker, `return 200 \"Hello, world!\\n\"`;\n", nv
	print "examples/http_hello on one core (the same 14-byte body); the floor is"
	print "bench'"'"'s uring_echo --http, an io_uring loop with no runtime that"
	print "answers each request head with a fixed response and parses nothing."
	print "Each server on CPU 0, `wrk -t1` on CPU 1, keep-alive. The figure is"
	print "the server'"'"'s CPU-µs per request (utime+stime over wrk'"'"'s count),"
	print "the median of the runs; a ratio is the median of each round'"'"'s ratio."
	print "Reproduce with `make bench-http`."
	if (getppid != "") printf "A getppid system call took %s ns on this machine.\n", getppid
	print ""
	print "| Conns | http_hello-uring | http_hello-epoll | nginx | floor | uring / nginx (<= 0.6x) | epoll / nginx | floor / nginx | uring / floor | req/s uring / nginx |"
	print "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for (i = 1; i <= nk; i++) {
		k = order[i]
		u = median(us["http_hello-uring" SUBSEP k]); e = median(us["http_hello-epoll" SUBSEP k])
		n = median(us["nginx" SUBSEP k]); f = median(us["floor" SUBSEP k])
		ru = median(rps["http_hello-uring" SUBSEP k]); rn = median(rps["nginx" SUBSEP k])
		r = paired("http_hello-uring", "nginx", k)
		printf "| %s | %.2f | %.2f | %.2f | %s | %s%s | %s | %s | %s | %s |\n", k, u, e, n,
			f == "" ? "" : sprintf("%.2f", f),
			fx(r), r == "" ? "" : (r <= 0.6 ? ": yes" : ": **no**"),
			fx(paired("http_hello-epoll", "nginx", k)),
			fx(paired("floor", "nginx", k)), fx(paired("http_hello-uring", "floor", k)),
			fx(rn > 0 ? ru / rn : "")
	}
	print ""
	print "Raw figures, one line per run: [" csvname "](../" csvname ")."
}' "$csv" >"$section"
"$root/bench/doc-section.sh" http "bench/http.sh (make bench-http)" "$section" "$doc" \
	"$root/bench/http-notes.md"
cat "$section"
