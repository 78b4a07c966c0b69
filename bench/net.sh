#!/bin/sh
# net.sh - the network benchmark: echo servers under bench/loadgen, coreio
# on io_uring and on epoll against a raw epoll server in C, with the
# server pinned to one CPU and the load to the other.  Keeps every run in
# bench/results/<date>-net.csv and rewrites the "Network" section of
# docs/benchmarks.md from it.  `make bench-net` builds and calls this.
#
#   bench/net.sh [BUILD_DIR]        default build-bench
#
# Environment (defaults in brackets), shown beside the command in the
# section when set:
#   NET_WARMUP [1]  NET_SECONDS [3]  seconds of warm-up, then measured
#   NET_REPEATS [3]                  runs of each server at each count
#   NET_CONNS ["1 16 64 256"]        connection counts
#   NET_SIZE [100]  NET_DEPTH [1]    message bytes; messages in flight
#                                    per connection
#   NET_SERVERS ["coreio-uring coreio-epoll epoll"]
#   NET_SERVER_CPU [0]  NET_CLIENT_CPU [1]
#   NET_PORT [7100]
#   NET_PERF [1]                     0: skip the syscall-counting pass
#   NET_MAX_OTHER [0.05]  NET_TRIES [3]
#                                    a run in which other work (or the
#                                    hypervisor) took more than this share
#                                    of either CPU is made again, up to
#                                    NET_TRIES times in all
#
# Each measured run starts a fresh server, drives it, and stops it with
# SIGTERM; servers take turns in an order that rotates from one run to
# the next, so that a slow phase of this shared machine falls on all of
# them.  After the repeats, one more run of each server and count goes
# under `perf stat` (syscall tracepoints, enabled over exactly the
# measured window), kept apart because tracing syscalls slows them.  Any
# byte that comes back wrong, a server that dies or exits non-zero, or a
# coreio server on another backend than asked fails the whole run.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
echo_server=$build/examples/echo_server
loadgen=$build/bench/loadgen
epoll_echo=$build/bench/epoll_echo
doc=$root/docs/benchmarks.md

for p in "$echo_server" "$loadgen" "$epoll_echo"; do
	[ -x "$p" ] || {
		echo "net.sh: $p missing; run make bench-net" >&2
		exit 1
	}
done

warmup=${NET_WARMUP:-1}
seconds=${NET_SECONDS:-3}
repeats=${NET_REPEATS:-3}
conns_list=${NET_CONNS:-1 16 64 256}
size=${NET_SIZE:-100}
depth=${NET_DEPTH:-1}
servers=${NET_SERVERS:-coreio-uring coreio-epoll epoll}
server_cpu=${NET_SERVER_CPU:-0}
client_cpu=${NET_CLIENT_CPU:-1}
port=${NET_PORT:-7100}
want_perf=${NET_PERF:-1}
max_other=${NET_MAX_OTHER:-0.05}
tries=${NET_TRIES:-3}

commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
(cd "$root" && git diff --quiet HEAD 2>/dev/null) || commit="$commit-dirty"
kernel=$(uname -r)
day=$(date -u '+%Y-%m-%d')
stamp=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
mkdir -p "$root/bench/results"
csv=$root/bench/results/$day-net.csv
work=$(mktemp -d)
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then
		kill -KILL "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Syscall counts come from perf's syscall tracepoints, where they work.
events=syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_wait
events=$events,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_pwait2
events=$events,raw_syscalls:sys_enter,context-switches
perf_note=
if [ "$want_perf" = 0 ]; then
	perf_note="skipped (NET_PERF=0)"
elif ! command -v perf >/dev/null 2>&1; then
	perf_note="skipped: perf is not installed (Debian: linux-perf)"
elif ! perf stat -x, -e "$events" -o "$work/perf-check" -- true >/dev/null 2>&1; then
	perf_note="skipped: perf stat cannot count syscall tracepoints here"
fi

fail() {
	echo "net.sh: FAILED: $*" >&2
	exit 1
}

# start_server NAME: starts it pinned, waits for it to listen, sets
# server_pid.  Returns 3 when the backend asked for cannot run here.
start_server() {
	log=$work/server.log
	case $1 in
	coreio-uring)
		COREIO_BACKEND=uring taskset -c "$server_cpu" "$echo_server" "127.0.0.1:$port" >"$log" 2>&1 &
		;;
	coreio-epoll)
		COREIO_BACKEND=epoll taskset -c "$server_cpu" "$echo_server" "127.0.0.1:$port" >"$log" 2>&1 &
		;;
	epoll)
		taskset -c "$server_cpu" "$epoll_echo" "$port" 127.0.0.1 >"$log" 2>&1 &
		;;
	*) fail "unknown server $1 (NET_SERVERS)" ;;
	esac
	server_pid=$!
	waits=0
	until grep -q 'listening on' "$log"; do
		if ! kill -0 "$server_pid" 2>/dev/null; then
			st=0
			wait "$server_pid" || st=$?
			server_pid=
			[ "$st" = 3 ] && return 3
			cat "$log" >&2
			fail "server $1 exited ($st) before listening"
		fi
		waits=$((waits + 1))
		[ $waits -lt 250 ] || fail "server $1 did not listen within 5 s"
		sleep 0.02
	done
	case $1 in
	coreio-uring) grep -q 'backend io_uring' "$log" || fail "coreio-uring is not on io_uring: $(cat "$log")" ;;
	coreio-epoll) grep -q 'backend epoll' "$log" || fail "coreio-epoll is not on epoll: $(cat "$log")" ;;
	esac
	return 0
}

stop_server() {
	kill -TERM "$server_pid" 2>/dev/null || fail "server $1 died during the run"
	st=0
	wait "$server_pid" || st=$?
	server_pid=
	[ "$st" = 0 ] || {
		cat "$work/server.log" >&2
		fail "server $1 exited with status $st after SIGTERM"
	}
}

# Pulls key=value fields out of loadgen's result line, in CSV order.
fields='req_s p50_us p99_us p999_us max_us server_cpu_us_per_req server_util
server_stat_cpu_us_per_req client_cpu_us_per_req client_util
client_cpu_other client_cpu_steal server_cpu_other server_cpu_steal
io_uring_enter_per_req epoll_wait_per_req epoll_pwait_per_req
epoll_pwait2_per_req syscalls_per_req context_switches_per_req'
fields=$(echo $fields)
header="date,commit,kernel,pass,rep,server,backend,conns,size,depth,warmup_s,seconds"
for f in $fields; do header="$header,$f"; done
header="$header,coreio_switches_per_req,coreio_driver_waits_per_req,other_work,tries,disturbed"
echo "$header" >"$csv"

unavailable=
# run_one SERVER CONNS REP PASS: one run, made again (up to $tries times in
# all) while other work or the hypervisor took more than $max_other of
# either CPU; the last try is kept, marked disturbed.
run_one() {
	srv=$1 nc=$2 rep=$3 pass=$4
	case " $unavailable " in *" $srv "*) return 0 ;; esac
	case $srv in coreio-uring) be=io_uring ;; *) be=epoll ;; esac
	perf_arg=
	[ "$pass" = perf ] && perf_arg="--perf-events=$events"
	try=1
	while :; do
		if ! start_server "$srv"; then
			echo "net.sh: $srv: its backend cannot run here; left out" >&2
			unavailable="$unavailable $srv"
			return 0
		fi
		echo "== $pass $rep: $srv, $nc conns" >&2
		if ! "$loadgen" --host 127.0.0.1 --port "$port" --conns "$nc" --size "$size" \
			--depth "$depth" --warmup "$warmup" --seconds "$seconds" \
			--server-pid "$server_pid" --cpu "$client_cpu" \
			--server-cpu "$server_cpu" --impl "$srv" --backend "$be" \
			$perf_arg >"$work/load.out"; then
			cat "$work/server.log" >&2
			fail "loadgen against $srv with $nc connections"
		fi
		line=$(grep '^bench=net ' "$work/load.out")
		sed -n '/^loadgen:/p' "$work/load.out" >&2
		stop_server "$srv"
		other=$(printf '%s\n' "$line" | tr ' ' '\n' | awk -F= '
			$1 ~ /^(client|server)_cpu_(other|steal)$/ { v[$1] = $2 + 0 }
			END {
				c = v["client_cpu_other"] + v["client_cpu_steal"]
				s = v["server_cpu_other"] + v["server_cpu_steal"]
				print (c > s ? c : s)
			}')
		disturbed=$(awk -v o="$other" -v m="$max_other" 'BEGIN { print (o > m) ? 1 : 0 }')
		[ "$disturbed" = 0 ] || [ $try -ge "$tries" ] && break
		echo "   other work took $other of a CPU; again" >&2
		try=$((try + 1))
	done
	# coreio's own counters, over the server's whole life.
	sw=$(sed -n 's/.*per request \([0-9.]*\) switches.*/\1/p' "$work/server.log")
	dw=$(sed -n 's/.* \([0-9.]*\) driver waits.*/\1/p' "$work/server.log")
	printf '%s\n' "$line" | awk -v fields="$fields" -v pre="$day,$commit,$kernel,$pass,$rep,$srv,$be,$nc,$size,$depth,$warmup,$seconds" \
		-v post="${sw:-},${dw:-},$other,$try,$disturbed" '
	{
		for (i = 1; i <= NF; i++) {
			eq = index($i, "=")
			kv[substr($i, 1, eq - 1)] = substr($i, eq + 1)
		}
		n = split(fields, f, " ")
		row = pre
		for (i = 1; i <= n; i++)
			row = row "," kv[f[i]]
		print row "," post
	}' >>"$csv"
}

# The measured repeats, in an order that rotates with every run.
nserv=$(echo $servers | wc -w)
turn=0
rep=1
while [ $rep -le "$repeats" ]; do
	for c in $conns_list; do
		set -- $servers
		k=$((turn % nserv))
		while [ $k -gt 0 ]; do
			first=$1
			shift
			set -- "$@" "$first"
			k=$((k - 1))
		done
		for srv in "$@"; do
			run_one "$srv" "$c" "$rep" measure
		done
		turn=$((turn + 1))
	done
	rep=$((rep + 1))
done
if [ -z "$perf_note" ]; then
	for c in $conns_list; do
		for srv in $servers; do
			run_one "$srv" "$c" 1 perf
		done
	done
fi

cmd="make bench-net"
for v in NET_WARMUP NET_SECONDS NET_REPEATS NET_CONNS NET_SIZE NET_DEPTH \
	NET_SERVERS NET_SERVER_CPU NET_CLIENT_CPU NET_PORT NET_PERF NET_MAX_OTHER \
	NET_TRIES; do
	eval "val=\${$v:-}"
	[ -n "$val" ] && cmd="$v=\"$val\" $cmd"
done

section=$work/section
awk -F, -v cmd="$cmd" -v cpu_model="$cpu_model" -v ncpu="$(nproc)" \
	-v kernel="$kernel" -v stamp="$stamp" -v commit="$commit" \
	-v scpu="$server_cpu" -v ccpu="$client_cpu" -v perf_note="$perf_note" \
	-v servers="$servers" -v conns_list="$conns_list" -v csvname="bench/results/$day-net.csv" \
	-v unavailable="$unavailable" -v maxo="$max_other" -v ntries="$tries" '
function median(list,    n, v, i, j, t) {
	n = split(list, v, " ")
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	if (n == 0) return ""
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function extreme(list, want_max,    n, v, i, r) {
	n = split(list, v, " ")
	r = v[1]
	for (i = 2; i <= n; i++)
		if (want_max ? v[i] + 0 > r + 0 : v[i] + 0 < r + 0) r = v[i]
	return r
}
function add(arr, key, val) { if (val != "") arr[key] = arr[key] " " val }
function fmt(v, p) { return v == "" ? "n/a" : sprintf("%." p "f", v) }
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
{
	k = $col["server"] SUBSEP $col["conns"]
	size = $col["size"]; depth = $col["depth"]
	warm = $col["warmup_s"]; secs = $col["seconds"]
	if ($col["pass"] == "perf") {
		enter[k] = $col["io_uring_enter_per_req"]
		ew[k] = $col["epoll_wait_per_req"] + $col["epoll_pwait_per_req"] + $col["epoll_pwait2_per_req"]
		sys[k] = $col["syscalls_per_req"]
		cs[k] = $col["context_switches_per_req"]
		pcpu[k] = $col["server_cpu_us_per_req"]
		next
	}
	reps[k]++
	add(rps, k, $col["req_s"]); add(p50, k, $col["p50_us"]); add(p99, k, $col["p99_us"])
	add(scpu_l, k, $col["server_cpu_us_per_req"]); add(util, k, $col["server_util"])
	add(ccpu_l, k, $col["client_cpu_us_per_req"])
	add(csw, k, $col["coreio_switches_per_req"]); add(cdw, k, $col["coreio_driver_waits_per_req"])
	add(oth, k, $col["other_work"])
	runs++; retried += ($col["tries"] > 1); dist += $col["disturbed"]
	byrep[k SUBSEP $col["rep"]] = $col["server_cpu_us_per_req"]
	nrep = $col["rep"] > nrep ? $col["rep"] : nrep
}
END {
	ns = split(servers, sv, " "); nc = split(conns_list, cv, " ")
	print "## Network"
	print ""
	printf "Measured %s on %s (%d CPUs), Linux %s, commit %s; ", stamp, cpu_model, ncpu, kernel, commit
	printf "echo servers pinned to CPU %s, `bench/loadgen` pinned to CPU %s, ", scpu, ccpu
	printf "%s-byte messages, %s in flight per connection, %s s warm-up then %s s measured, ", size, depth, warm, secs
	printf "median of %d runs per cell, servers interleaved. Release build (-O2).\n", nrep
	print ""
	print "Command: `" cmd "`"
	print ""
	print "Servers: `coreio-uring` and `coreio-epoll` are `examples/echo_server`"
	print "(one task per connection, `cio_recv` + `cio_send_all`) with"
	print "`COREIO_BACKEND=uring` / `epoll`; `epoll` is `bench/peers/epoll_echo.c`,"
	print "a raw single-threaded edge-triggered epoll server in C, the peer."
	print "Server CPU-µs/request is the server process'"'"'s CPU time (all threads,"
	print "its process CPU clock) over the measured window divided by the echoes"
	print "completed in it: with both CPUs saturated, the figure to compare; req/s"
	print "also depends on the client. Busy is that CPU time over the window. It"
	print "includes the softirq work the server does in its own context, which on"
	print "loopback is delivering each echo into the client'"'"'s socket. Others on"
	print "the CPUs: the larger share of either pinned CPU that other processes or"
	print "the hypervisor (steal) took during the window, from /proc/stat; a run"
	printf "above %d%% was made again, up to %d tries in all: %d of %d runs were,\n", 100 * maxo, ntries, retried, runs
	printf "%d stayed above (kept, marked `disturbed` in the CSV).\n", dist
	if (unavailable != "")
		print "\nLeft out, their backend cannot run here:" unavailable "."
	print ""
	print "| Server | Conns | req/s | p50 µs | p99 µs | Server CPU-µs/req (min–max) | Server busy | Client CPU-µs/req | Others on the CPUs | io_uring_enter/req | epoll_wait/req | syscalls/req | coreio switches/req |"
	print "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for (j = 1; j <= nc; j++)
		for (i = 1; i <= ns; i++) {
			k = sv[i] SUBSEP cv[j]
			if (!(k in reps)) continue
			coreio = sv[i] ~ /^coreio/
			printf "| %s | %s | %s | %s | %s | %s (%s–%s) | %s%% | %s | %s%% | %s | %s | %s | %s |\n", sv[i], cv[j],
				fmt(median(rps[k]), 0), fmt(median(p50[k]), 1), fmt(median(p99[k]), 1),
				fmt(median(scpu_l[k]), 2), fmt(extreme(scpu_l[k], 0), 2), fmt(extreme(scpu_l[k], 1), 2),
				fmt(100 * median(util[k]), 0), fmt(median(ccpu_l[k]), 2), fmt(100 * median(oth[k]), 0),
				(k in enter) ? fmt(enter[k], 3) : "n/a", (k in ew) ? fmt(ew[k], 3) : "n/a",
				(k in sys) ? fmt(sys[k], 2) : "n/a",
				coreio ? fmt(median(csw[k]), 2) : "–"
		}
	print ""
	print "Server CPU-µs/request against the raw epoll server (of the medians;"
	print "in brackets the median of the ratios of runs made side by side):"
	print ""
	print "| Conns | coreio-uring / epoll | coreio-epoll / epoll |"
	print "| --- | --- | --- |"
	for (j = 1; j <= nc; j++) {
		base = "epoll" SUBSEP cv[j]
		if (!(base in reps)) continue
		row = "| " cv[j]
		split("coreio-uring coreio-epoll", num, " ")
		for (m = 1; m <= 2; m++) {
			k = num[m] SUBSEP cv[j]
			if (!(k in reps)) { row = row " | n/a"; continue }
			paired = ""
			for (r = 1; r <= nrep; r++)
				if ((k SUBSEP r) in byrep && (base SUBSEP r) in byrep && byrep[base SUBSEP r] > 0)
					paired = paired " " byrep[k SUBSEP r] / byrep[base SUBSEP r]
			if (median(scpu_l[base]) + 0 <= 0 || paired == "") { row = row " | n/a"; continue }
			row = row sprintf(" | %.2fx (%.2fx)", median(scpu_l[k]) / median(scpu_l[base]), median(paired))
		}
		print row " |"
	}
	print ""
	if (perf_note != "") {
		print "Syscalls per request: " perf_note "."
	} else {
		print "Syscalls per request come from one more run of each server and count"
		print "under `perf stat -e syscalls:sys_enter_io_uring_enter,...,raw_syscalls:sys_enter`"
		print "on the server, enabled over exactly the measured window (kept apart: tracing"
		print "syscalls slows them). `epoll_wait/req` sums epoll_wait, epoll_pwait and"
		print "epoll_pwait2; `syscalls/req` counts every system call of the server."
	}
	print "`coreio switches/req` is the runtime'"'"'s own count (`cio_stats`) over the"
	print "server'"'"'s whole run, warm-up included, per receive."
	print ""
	print "Raw figures, one line per run: [" csvname "](../" csvname ")."
}' "$csv" >"$section"

"$(dirname "$0")/doc-section.sh" net "bench/net.sh (make bench-net)" "$section" "$doc"
cat "$section"
echo "net.sh: raw figures in $csv; section Network of $doc rewritten" >&2
