#!/bin/sh
# net.sh - the network benchmark: every echo server of bench/servers.txt
# (coreio on io_uring and on epoll, a raw epoll server in C, libuv, tokio
# current_thread and multi_thread with one worker) under bench/loadgen,
# server pinned to one CPU and the load to the other, over a matrix of
# message sizes and connection counts.  Keeps every run in
# bench/results/<date>-<name>.csv, draws docs/bench-net-<size>.png with
# gnuplot and rewrites the "Network" section of docs/benchmarks.md.
# `make bench` (full matrix) and `make bench-quick` build and call this.
#
#   bench/net.sh [BUILD_DIR]        default build-bench
#
# Environment (defaults in brackets):
#   NET_SIZES ["100 1024"]           message bytes
#   NET_CONNS ["1 16 64 256 1000"]   connection counts
#   NET_REPEATS [3]                  runs of each server at each point
#   NET_WARMUP [1]  NET_SECONDS [2.5] seconds of warm-up, then measured
#   NET_DEPTH [1]                    messages in flight per connection
#   NET_SERVERS [every one in bench/servers.txt]
#   NET_CLIENT [epoll]               loadgen's client: epoll or uring
#   NET_SERVER_CPU [0]  NET_CLIENT_CPU [1]  NET_PORT [7100]
#   NET_PERF [0]                     1: one more run of each server and
#                                    point under `perf stat`, counting
#                                    syscalls over the measured window
#   NET_MAX_OTHER [0.05]  NET_TRIES [2]
#                                    a run in which other work (or the
#                                    hypervisor) took more than this share
#                                    of either CPU is made again, up to
#                                    NET_TRIES times in all, while
#                                    retries stay under a tenth of the runs
#   NET_NAME [net]                   the CSV's name: <date>-<name>.csv
#   NET_LABEL [full matrix]          what the section calls this run
#   NET_COMMAND [make bench]         the command the section quotes
#   NET_REPORT [unset]               a CSV this script wrote: no runs, only
#                                    the charts and the section from it
#   NET_REGISTRY [bench/servers.txt] the servers, in that file's format
#   NET_SECTION [1]                  0: only the CSV, no charts and no
#                                    section (for scripts that report a
#                                    run their own way, as seam.sh does)
#
# Each measured run starts a fresh server, drives it, and stops it with
# SIGTERM; at each point the servers take turns in an order that rotates
# from one point to the next, so that a slow phase of this shared
# machine falls on all of them.  Any byte that comes back wrong, a server
# that dies or exits non-zero, or one on another backend than its line
# says fails the whole run.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=${1:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
loadgen=$build/bench/loadgen
doc=$root/docs/benchmarks.md
registry=${NET_REGISTRY:-$root/bench/servers.txt}
want_section=${NET_SECTION:-1}

[ -x "$loadgen" ] || {
	echo "net.sh: $loadgen missing; run make bench" >&2
	exit 1
}

sizes=${NET_SIZES:-100 1024}
conns_list=${NET_CONNS:-1 16 64 256 1000}
repeats=${NET_REPEATS:-3}
warmup=${NET_WARMUP:-1}
seconds=${NET_SECONDS:-2.5}
depth=${NET_DEPTH:-1}
client=${NET_CLIENT:-epoll}
server_cpu=${NET_SERVER_CPU:-0}
client_cpu=${NET_CLIENT_CPU:-1}
port=${NET_PORT:-7100}
want_perf=${NET_PERF:-0}
max_other=${NET_MAX_OTHER:-0.05}
tries=${NET_TRIES:-2}
name=${NET_NAME:-net}
label=${NET_LABEL:-full matrix}
command=${NET_COMMAND:-make bench}
all_servers=$(awk '!/^#/ && NF >= 3 { printf "%s ", $1 }' "$registry")
servers=${NET_SERVERS:-$all_servers}

# 1000 connections are 1000 fds on each side: take the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
(cd "$root" && git diff --quiet HEAD 2>/dev/null) || commit="$commit-dirty"
kernel=$(uname -r)
day=$(date -u '+%Y-%m-%d')
stamp=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu_model=$(cpu_model)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
mkdir -p "$root/bench/results"
csvrel=bench/results/$day-$name.csv
report_only=
if [ -n "${NET_REPORT:-}" ]; then
	report_only=1
	csvrel=${NET_REPORT#"$root"/}
	day=$(awk -F, 'NR == 2 { print $1 }' "$NET_REPORT")
	commit=$(awk -F, 'NR == 2 { print $2 }' "$NET_REPORT")
fi
csv=$root/$csvrel
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

fail() {
	echo "net.sh: FAILED: $*" >&2
	exit 1
}

# The command line of server $1 on $port: its line of the registry, with
# @BUILD@ and @PORT@ put in.
server_cmd() {
	awk -v n="$1" -v b="$build" -v p="$port" '
	!/^#/ && $1 == n {
		$1 = ""; $2 = ""
		sub(/^ +/, "")
		gsub(/@BUILD@/, b); gsub(/@PORT@/, p)
		print
		exit
	}' "$registry"
}
server_backend() {
	awk -v n="$1" '!/^#/ && $1 == n { print $2; exit }' "$registry"
}

# Leaves out servers whose program is missing (the first word with a
# slash that is not an environment setting).
present=
missing=
for srv in $servers; do
	cmd=$(server_cmd "$srv")
	[ -n "$cmd" ] || fail "no server $srv in bench/servers.txt"
	prog=$(printf '%s\n' "$cmd" | tr ' ' '\n' | grep '/' | grep -v '=' | head -n 1)
	if [ -x "$prog" ]; then
		present="$present $srv"
	else
		echo "net.sh: $srv: $prog missing; left out" >&2
		missing="$missing $srv"
	fi
done
servers=$(echo $present)

perf_note=
events=syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_wait
events=$events,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_pwait2
events=$events,raw_syscalls:sys_enter,context-switches
if [ "$want_perf" = 0 ]; then
	perf_note="not counted in this run (NET_PERF=1 adds a pass that counts them)"
elif ! command -v perf >/dev/null 2>&1; then
	perf_note="not counted: perf is not installed (Debian: linux-perf)"
elif ! perf stat -x, -e "$events" -o "$work/perf-check" -- true >/dev/null 2>&1; then
	perf_note="not counted: perf stat cannot count syscall tracepoints here"
fi

# start_server NAME: starts it pinned, waits for it to listen, sets
# server_pid.  Returns 3 when it cannot run here (exit status 3: a
# coreio backend the kernel refuses).
start_server() {
	log=$work/server.log
	cmd=$(server_cmd "$1")
	# Emptied here, not by the redirection below, which the child makes
	# later: the wait for "listening on" must not read the last server's.
	: >"$log"
	set -f
	# shellcheck disable=SC2086
	taskset -c "$server_cpu" $cmd >"$log" 2>&1 &
	server_pid=$!
	set +f
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
	said=$(sed -n 's/.*listening on.*backend \([a-z_]*\).*/\1/p' "$log" | head -n 1)
	want=$(server_backend "$1")
	[ -z "$said" ] || [ "$said" = "$want" ] ||
		fail "$1 runs on $said, not $want: $(cat "$log")"
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

# loadgen's key=value fields, in CSV order.
fields='req_s p50_us p99_us p999_us max_us server_cpu_us_per_req
server_task_cpu_us_per_req server_stat_cpu_us_per_req server_threads server_util
client_cpu_us_per_req client_util client_cpu_other client_cpu_steal
server_cpu_other server_cpu_steal io_uring_enter_per_req epoll_wait_per_req
epoll_pwait_per_req epoll_pwait2_per_req syscalls_per_req context_switches_per_req'
fields=$(echo $fields)
header="date,commit,kernel,pass,rep,server,backend,client,conns,size,depth,warmup_s,seconds"
for f in $fields; do header="$header,$f"; done
header="$header,coreio_switches_per_req,coreio_driver_waits_per_req,other_work,tries,disturbed"
[ -n "$report_only" ] || echo "$header" >"$csv"

unavailable=
# run_one SERVER SIZE CONNS REP PASS: one run, made again (up to $tries
# times in all) while other work or the hypervisor took more than
# $max_other of either CPU; the last try is kept, marked disturbed.
run_one() {
	srv=$1 sz=$2 nc=$3 rep=$4 pass=$5
	case " $unavailable " in *" $srv "*) return 0 ;; esac
	be=$(server_backend "$srv")
	perf_arg=
	[ "$pass" = perf ] && perf_arg="--perf-events=$events"
	try=1
	while :; do
		if ! start_server "$srv"; then
			echo "net.sh: $srv: its backend cannot run here; left out" >&2
			unavailable="$unavailable $srv"
			return 0
		fi
		if ! "$loadgen" --host 127.0.0.1 --port "$port" --conns "$nc" --size "$sz" \
			--depth "$depth" --warmup "$warmup" --seconds "$seconds" \
			--server-pid "$server_pid" --cpu "$client_cpu" --client "$client" \
			--server-cpu "$server_cpu" --impl "$srv" --backend "$be" \
			$perf_arg >"$work/load.out"; then
			cat "$work/server.log" >&2
			fail "loadgen against $srv, $sz B, $nc connections"
		fi
		line=$(grep '^bench=net ' "$work/load.out")
		echo "== $pass $rep: $(sed -n 's/^loadgen: //p' "$work/load.out")" >&2
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
		# Retries are bounded too: at most one run in ten is made
		# again, so that a busy machine cannot double the time.
		[ $((retries * 10)) -lt "$total_runs" ] || {
			echo "   other work took $other of a CPU; retries used up, kept" >&2
			break
		}
		echo "   other work took $other of a CPU; again" >&2
		retries=$((retries + 1))
		try=$((try + 1))
	done
	# coreio's own counters, over the server's whole life.
	sw=$(sed -n 's/.*per request \([0-9.]*\) switches.*/\1/p' "$work/server.log")
	dw=$(sed -n 's/.* \([0-9.]*\) driver waits.*/\1/p' "$work/server.log")
	printf '%s\n' "$line" | awk -v fields="$fields" \
		-v pre="$day,$commit,$kernel,$pass,$rep,$srv,$be,$client,$nc,$sz,$depth,$warmup,$seconds" \
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

t0=$(date +%s)
[ -z "$report_only" ] || repeats=0 want_perf=0
nserv=$(echo $servers | wc -w)
[ "$nserv" -gt 0 ] || fail "no server to measure"
total_runs=$((nserv * $(echo $sizes | wc -w) * $(echo $conns_list | wc -w) * repeats))
retries=0
turn=0
rep=1
while [ $rep -le "$repeats" ]; do
	for sz in $sizes; do
		for c in $conns_list; do
			# shellcheck disable=SC2086
			for srv in $(rotate "$turn" $servers); do
				run_one "$srv" "$sz" "$c" "$rep" measure
			done
			turn=$((turn + 1))
		done
	done
	rep=$((rep + 1))
done
if [ -z "$perf_note" ] && [ -z "$report_only" ]; then
	for sz in $sizes; do
		for c in $conns_list; do
			for srv in $servers; do
				run_one "$srv" "$sz" "$c" 1 perf
			done
		done
	done
fi
elapsed=$(( $(date +%s) - t0 ))
if [ -n "$report_only" ]; then
	elapsed=
	repeats=$(awk -F, 'NR > 1 && $4 == "measure" && $5 > r { r = $5 } END { print r + 0 }' "$csv")
	stamp="$day (figures of $csvrel)"
fi

if [ "$want_section" = 0 ]; then
	echo "net.sh: $elapsed s; raw figures in $csv" >&2
	exit 0
fi

# ---- versions of everything measured --------------------------------------
ver() { "$@" 2>/dev/null | head -n 1 || true; }
gcc_v=$(ver gcc -dumpfullversion)
liburing_v=$(ver pkg-config --modversion liburing)
libuv_v=$(ver pkg-config --modversion libuv)
tokio_v=
lock=$build/tokio/crate/Cargo.lock
[ -f "$lock" ] && tokio_v=$(awk '/^name = "tokio"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$lock")
rustc_v=$(ver /usr/bin/rustc --version)
cargo_v=$(ver /usr/bin/cargo --version)
perf_v=$(ver perf --version)
: "${gcc_v:=n/a}" "${liburing_v:=n/a}" "${libuv_v:=n/a}" "${tokio_v:=n/a}" "${rustc_v:=n/a}" "${cargo_v:=n/a}"

# ---- charts -----------------------------------------------------------------
# One PNG per message size, two panels: req/s and server CPU-µs/request
# against connections, one line per server (medians).
charts=
if command -v gnuplot >/dev/null 2>&1; then
	for sz in $sizes; do
		dat=$work/chart-$sz.dat
		awk -F, -v sz="$sz" -v servers="$servers" -v conns_list="$conns_list" "$awk_median"'
		function cell(list,    m) { m = median(list); return m == "" ? "?" : m }
		NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
		$col["pass"] == "measure" && $col["size"] == sz {
			k = $col["server"] SUBSEP $col["conns"]
			rps[k] = rps[k] " " $col["req_s"]
			cpu[k] = cpu[k] " " $col["server_cpu_us_per_req"]
		}
		END {
			ns = split(servers, sv, " "); nc = split(conns_list, cv, " ")
			for (j = 1; j <= nc; j++) {
				row = cv[j]
				for (i = 1; i <= ns; i++) {
					k = sv[i] SUBSEP cv[j]
					row = row " " cell(rps[k]) " " cell(cpu[k])
				}
				print row
			}
		}' "$csv" >"$dat"
		png=docs/bench-net-$sz.png
		xt=$(echo $conns_list | sed 's/ /, /g')
		cat >"$work/chart-$sz.gp" <<GP
set terminal pngcairo size 1200,480 font "DejaVu Sans,10"
set output "$root/$png"
set datafile missing "?"
set multiplot layout 1,2 title "Echo over loopback, $sz-byte messages, 1 in flight per connection: server pinned to CPU $server_cpu, loadgen ($client client) to CPU $client_cpu; median of $repeats run(s), $label"
set linetype 1 lc rgb "#7b1fa2" lw 2 pt 7
set linetype 2 lc rgb "#2e7d32" lw 2 pt 5
set linetype 3 lc rgb "#1565c0" lw 2 pt 9
set linetype 4 lc rgb "#ef6c00" lw 2 pt 11
set linetype 5 lc rgb "#c62828" lw 2 pt 13
set linetype 6 lc rgb "#00838f" lw 2 pt 3
set linetype 7 lc rgb "#5d4037" lw 2 pt 1
set linetype 8 lc rgb "#616161" lw 2 pt 2
set logscale x
set xtics ($xt)
set xlabel "connections (log scale)"
set grid
set key top left
set ylabel "requests per second"
set format y "%.0s%c"
set yrange [0:*]
set title "Throughput"
names = "$servers"
plot for [i=1:words(names)] "$dat" using 1:(column(2*i)) with linespoints lt i title word(names, i)
set ylabel "server CPU-µs per request (log scale)"
set format y "%g"
set yrange [2:50]
set logscale y
set ytics (2, 2.5, 3, 3.5, 4, 5, 6, 8, 10, 15, 20, 30, 40, 50)
set title "Server CPU per request (lower is better)"
set key top right
plot for [i=1:words(names)] "$dat" using 1:(column(2*i+1)) with linespoints lt i title word(names, i)
unset multiplot
GP
		gnuplot "$work/chart-$sz.gp" || fail "gnuplot for $png"
		charts="$charts $png"
	done
else
	echo "net.sh: gnuplot missing (apt-get install gnuplot-nox): no charts" >&2
fi

# ---- the section -------------------------------------------------------------
section=$work/section
awk -F, -v cmd="$command" -v cpu_model="$cpu_model" -v ncpu="$(nproc)" \
	-v kernel="$kernel" -v stamp="$stamp" -v commit="$commit" \
	-v scpu="$server_cpu" -v ccpu="$client_cpu" -v perf_note="$perf_note" \
	-v servers="$servers" -v conns_list="$conns_list" -v sizes="$sizes" \
	-v csvname="$csvrel" -v charts="$charts" -v label="$label" \
	-v unavailable="$unavailable" -v missing="$missing" -v maxo="$max_other" -v ntries="$tries" \
	-v client="$client" -v elapsed="$elapsed" -v registry="$(grep -v '^#' "$registry")" \
	-v gcc_v="$gcc_v" -v liburing_v="$liburing_v" -v libuv_v="$libuv_v" \
	-v tokio_v="$tokio_v" -v rustc_v="$rustc_v" -v cargo_v="$cargo_v" -v perf_v="$perf_v" "$awk_median"'
function extreme(list, want_max,    n, v, i, r) {
	n = split(list, v, " ")
	r = v[1]
	for (i = 2; i <= n; i++)
		if (want_max ? v[i] + 0 > r + 0 : v[i] + 0 < r + 0) r = v[i]
	return r
}
function add(arr, key, val) { if (val != "") arr[key] = arr[key] " " val }
function fmt(v, p) { return v == "" ? "n/a" : sprintf("%." p "f", v) }
function ratio(a, b) { return (a == "" || b == "" || b + 0 <= 0) ? "" : a / b }
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
{
	k = $col["server"] SUBSEP $col["size"] SUBSEP $col["conns"]
	depth = $col["depth"]; warm = $col["warmup_s"]; secs = $col["seconds"]
	if ($col["pass"] == "perf") {
		enter[k] = $col["io_uring_enter_per_req"]
		ew[k] = $col["epoll_wait_per_req"] + $col["epoll_pwait_per_req"] + $col["epoll_pwait2_per_req"]
		sys[k] = $col["syscalls_per_req"]
		next
	}
	reps[k]++
	add(rps, k, $col["req_s"]); add(p50, k, $col["p50_us"]); add(p99, k, $col["p99_us"])
	add(p999, k, $col["p999_us"])
	add(scpu_l, k, $col["server_cpu_us_per_req"]); add(stask, k, $col["server_task_cpu_us_per_req"])
	add(util, k, $col["server_util"]); add(ccpu_l, k, $col["client_cpu_us_per_req"])
	add(oth, k, $col["other_work"])
	if ($col["server_cpu_us_per_req"] > 0 && $col["server_task_cpu_us_per_req"] != "") {
		d = $col["server_task_cpu_us_per_req"] / $col["server_cpu_us_per_req"] - 1
		if (d < 0) d = -d
		if (d > maxdev) maxdev = d
	}
	runs++; retried += ($col["tries"] > 1); dist += $col["disturbed"]; othsum += $col["other_work"]
	nrep = $col["rep"] > nrep ? $col["rep"] : nrep
}
END {
	ns = split(servers, sv, " "); nc = split(conns_list, cv, " "); nz = split(sizes, zv, " ")
	print "## Network"
	print ""
	printf "Measured %s (%s: %d runs%s) on %s, %d CPUs, Linux %s, commit %s. ", stamp, label, runs, elapsed == "" ? "" : ", " elapsed " s", cpu_model, ncpu, kernel, commit
	printf "Echo servers pinned to CPU %s, `bench/loadgen` (%s client) pinned to CPU %s, ", scpu, client, ccpu
	printf "%s in flight per connection, %s s warm-up then %s s measured; ", depth, warm, secs
	printf "%d run(s) of every server at every point, servers interleaved in a rotating order. ", nrep
	print "Release builds (-O2 for C, `--release` for Rust)."
	print ""
	print "Command: `" cmd "`"
	if (label != "full matrix") {
		print ""
		print "**This is the quick matrix (`make bench-quick`): fewer points, one run"
		print "each, short windows; `make bench` measures the full one.**"
	}
	print ""
	print "Versions: gcc " gcc_v ", liburing " liburing_v ", libuv " libuv_v ", tokio " tokio_v \
		" (Debian'"'"'s librust-tokio-dev, built offline), " rustc_v ", " cargo_v "."
	print ""
	print "Servers (bench/servers.txt; `@BUILD@` is the bench build directory):"
	print ""
	print "| Server | Backend | Command |"
	print "| --- | --- | --- |"
	nr = split(registry, rl, "\n")
	for (i = 1; i <= nr; i++) {
		if (split(rl[i], w, " ") < 3) continue
		c = rl[i]; sub(/^[^ ]+ +[^ ]+ +/, "", c)
		printf "| %s | %s | `%s` |\n", w[1], w[2], c
	}
	print ""
	print "`coreio-*` is `examples/echo_server` (one task per connection, `cio_recv` +"
	print "`cio_send_all`); `epoll` is `bench/peers/epoll_echo.c`, a raw edge-triggered"
	print "epoll loop; `libuv` is `bench/peers/uv_echo.c` (`uv_read_start` +"
	print "`uv_try_write`); `tokio-ct` and `tokio-mt1` are `bench/peers/tokio_echo`"
	print "(one task per connection, `read` + `write_all`) on the current_thread"
	print "runtime and on the multi_thread runtime with `worker_threads(1)`."
	if (missing != "") print "\nLeft out, their program was not built:" missing "."
	if (unavailable != "") print "\nLeft out, their backend cannot run here:" unavailable "."
	print ""
	print "Server CPU-µs/request, the headline figure, is the server process'"'"'s CPU"
	print "time (every thread, from its process CPU clock) over exactly the measured"
	printf "window, divided by the echoes completed in it; the sum of utime+stime over\n"
	printf "/proc/PID/task/*/stat agrees with it within %.1f%% in every run (tick\n", 100 * maxdev
	print "resolution). It includes the softirq work the server does in its own"
	print "context, which on loopback is delivering each echo into the client'"'"'s"
	print "socket. With both CPUs busy req/s also depends on the client. Others"
	print "on the CPUs: the share of either pinned CPU that other processes or the"
	printf "hypervisor took; a run above %d%% was made again, up to %d tries while\n", 100 * maxo, ntries
	printf "retries stayed under a tenth of the runs: %d of %d runs were, %d stayed\n", retried, runs, dist
	print "above (kept, marked `disturbed` in the CSV)."
	if (dist > runs / 5) {
		print ""
		printf "**This machine was busy with other work during the run: %d of %d runs\n", dist, runs
		printf "had other work above %d%% of a pinned CPU (%.0f%% of a CPU on average).\n", 100 * maxo, 100 * othsum / runs
		print "Interleaving spreads it over all servers alike, but the figures are"
		print "noisier than on a quiet machine, req/s most (it follows the client'"'"'s"
		print "share of CPU 1), server CPU-µs/request least; the best of the runs is"
		print "the steadier figure.**"
	}
	for (z = 1; z <= nz; z++) {
		sz = zv[z]
		print ""
		print "### " sz "-byte messages"
		png = "docs/bench-net-" sz ".png"
		if (index(" " charts " ", " " png " "))
			print "\n![req/s and server CPU-µs/request against connections, " sz "-byte messages](bench-net-" sz ".png)"
		print ""
		print "Median (best) of the runs: best is the highest req/s and the lowest CPU."
		print ""
		print "| Server | Conns | req/s | p50 µs | p99 µs | p99.9 µs | Server CPU-µs/req | Server busy | Client CPU-µs/req | Others on the CPUs |"
		print "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
		for (j = 1; j <= nc; j++)
			for (i = 1; i <= ns; i++) {
				k = sv[i] SUBSEP sz SUBSEP cv[j]
				if (!(k in reps)) continue
				printf "| %s | %s | %s (%s) | %s | %s | %s | **%s** (%s) | %s%% | %s | %s%% |\n", sv[i], cv[j],
					fmt(median(rps[k]), 0), fmt(extreme(rps[k], 1), 0),
					fmt(median(p50[k]), 1), fmt(median(p99[k]), 1), fmt(median(p999[k]), 1),
					fmt(median(scpu_l[k]), 2), fmt(extreme(scpu_l[k], 0), 2),
					fmt(100 * median(util[k]), 0), fmt(median(ccpu_l[k]), 2), fmt(100 * median(oth[k]), 0)
			}
		if (perf_note == "") {
			print ""
			print "Syscalls per request (one more run under `perf stat`, syscall tracepoints):"
			print ""
			print "| Server | Conns | io_uring_enter/req | epoll_wait/req | syscalls/req |"
			print "| --- | --- | --- | --- | --- |"
			for (j = 1; j <= nc; j++)
				for (i = 1; i <= ns; i++) {
					k = sv[i] SUBSEP sz SUBSEP cv[j]
					if (!(k in sys)) continue
					printf "| %s | %s | %s | %s | %s |\n", sv[i], cv[j], fmt(enter[k], 3), fmt(ew[k], 3), fmt(sys[k], 2)
				}
		}
	}
	# Ratios of the medians: coreio against every peer.
	np = 0
	for (i = 1; i <= ns; i++)
		if (sv[i] !~ /^coreio-/) peer[++np] = sv[i]
	split("coreio-uring coreio-epoll", cio, " ")
	print ""
	print "### coreio against each peer"
	print ""
	print "Server CPU-µs/request of coreio over the peer'"'"'s: of the medians, and in"
	print "brackets of the best runs. Below 1.00x coreio spends less CPU per echo,"
	print "above it more. Then req/s of coreio over the peer'"'"'s (medians): above"
	print "1.00x coreio served more."
	for (m = 1; m <= 2; m++) {
		if (!((cio[m] SUBSEP zv[1] SUBSEP cv[1]) in reps) && !((cio[m] SUBSEP zv[nz] SUBSEP cv[nc]) in reps)) continue
		print ""
		hdr = "| " cio[m] " CPU/req vs | Size | "; sep = "| --- | --- |"
		for (j = 1; j <= nc; j++) { hdr = hdr cv[j] " conns | "; sep = sep " --- |" }
		print hdr
		print sep
		for (p = 1; p <= np; p++)
			for (z = 1; z <= nz; z++) {
				row = "| " peer[p] " | " zv[z] " B |"
				for (j = 1; j <= nc; j++) {
					a = cio[m] SUBSEP zv[z] SUBSEP cv[j]; b = peer[p] SUBSEP zv[z] SUBSEP cv[j]
					r = ratio(median(scpu_l[a]), median(scpu_l[b]))
					rb = ratio(extreme(scpu_l[a], 0), extreme(scpu_l[b], 0))
					row = row " " fx(r) " (" fx(rb) ") |"
					if (r != "") {
						key = cio[m] SUBSEP peer[p]
						cnt[key]++
						if (r < 1) { ahead[key] = ahead[key] ", " zv[z] " B/" cv[j]; na[key]++ }
						else if (r > 1) { behind[key] = behind[key] ", " zv[z] " B/" cv[j]; nb[key]++ }
						if (!(key in lo) || r < lo[key]) lo[key] = r
						if (!(key in hi) || r > hi[key]) hi[key] = r
					}
				}
				print row
			}
		print ""
		print "| " cio[m] " req/s vs | Size | " substr(hdr, index(hdr, "Size | ") + 7)
		print sep
		for (p = 1; p <= np; p++)
			for (z = 1; z <= nz; z++) {
				row = "| " peer[p] " | " zv[z] " B |"
				for (j = 1; j <= nc; j++) {
					a = cio[m] SUBSEP zv[z] SUBSEP cv[j]; b = peer[p] SUBSEP zv[z] SUBSEP cv[j]
					row = row " " fx(ratio(median(rps[a]), median(rps[b]))) " |"
				}
				print row
			}
	}
	print ""
	print "Where coreio is ahead and where behind, in server CPU per request"
	print "(medians; size/connections):"
	print ""
	for (m = 1; m <= 2; m++)
		for (p = 1; p <= np; p++) {
			key = cio[m] SUBSEP peer[p]
			if (!(key in cnt)) continue
			printf "- %s against %s: %s to %s; ahead at %d of %d points%s; behind at %d%s.\n",
				cio[m], peer[p], fx(lo[key]), fx(hi[key]), na[key] + 0, cnt[key],
				na[key] ? " (" substr(ahead[key], 3) ")" : "",
				nb[key] + 0, nb[key] ? " (" substr(behind[key], 3) ")" : ""
		}
	# The networking targets, against the raw epoll server.
	print ""
	print "### Against the targets"
	print ""
	print "| Target | Size | Conns | Figure | Met |"
	print "| --- | --- | --- | --- | --- |"
	for (z = 1; z <= nz; z++)
		for (j = 1; j <= nc; j++) {
			r = ratio(median(scpu_l["coreio-uring" SUBSEP zv[z] SUBSEP cv[j]]), median(scpu_l["epoll" SUBSEP zv[z] SUBSEP cv[j]]))
			if (r == "") continue
			printf "| coreio-uring server CPU/req <= 0.85x raw epoll | %s B | %s | %s | %s |\n", zv[z], cv[j], fx(r), r <= 0.85 ? "yes" : "**no**"
			if (cv[j] == 1)
				printf "| coreio-uring at 1 connection <= 1.0x raw epoll | %s B | 1 | %s | %s |\n", zv[z], fx(r), r <= 1.0 ? "yes" : "**no**"
		}
	print ""
	print "What limits the first is in *Network: where the server'"'"'s time goes*"
	print "below (bench/profile.sh): the kernel'"'"'s TCP path is most of every"
	print "server'"'"'s CPU, the same for all of them, so a runtime can only move"
	print "the remainder."
	for (z = 1; z <= nz; z++) {
		k = "coreio-uring" SUBSEP zv[z] SUBSEP 1; b = "epoll" SUBSEP zv[z] SUBSEP 1
		if (!(k in reps) || !(b in reps)) continue
		lo1 = ""; hi1 = ""; spread = 0
		for (i = 1; i <= ns; i++) {
			x = sv[i] SUBSEP zv[z] SUBSEP 1
			if (!(x in reps)) continue
			v = median(scpu_l[x])
			if (lo1 == "" || v < lo1) lo1 = v
			if (hi1 == "" || v > hi1) hi1 = v
			wd = (extreme(scpu_l[x], 1) - extreme(scpu_l[x], 0)) / v
			if (wd > spread) spread = wd
		}
		printf "\nAt 1 connection (%s B) every server spends %.1f–%.1f CPU-µs a request,\n", zv[z], lo1, hi1
		printf "against about 3 at 16 connections and up: the server sleeps and is woken\n"
		printf "for every request, and on this VM sleeping and waking, not the runtime,\n"
		printf "is the cost. Runs of one server differ by up to %.0f%%, the servers'"'"'\n", 100 * spread
		printf "medians by %.0f%%.\n", 100 * (hi1 / lo1 - 1)
	}
	print ""
	if (perf_note != "") print "Syscalls per request: " perf_note "."
	print ""
	print "Raw figures, one line per run: [" csvname "](../" csvname ")."
}' "$csv" >"$section"

"$(dirname "$0")/doc-section.sh" net "bench/net.sh (make bench, make bench-quick)" "$section" "$doc"
cat "$section"
echo "net.sh: $elapsed s; raw figures in $csv; charts:$charts; section Network of $doc rewritten" >&2
