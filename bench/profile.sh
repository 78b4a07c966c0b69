#!/bin/sh
# profile.sh - where an echo server's CPU goes under load: each server
# (default coreio-uring, coreio-epoll and the raw epoll peer, from
# bench/servers.txt) pinned to CPU 0 under bench/loadgen on CPU 1 at
# 64 connections of 100 bytes, sampled with `perf record -e cpu-clock -g`
# over the steady part of the run, then split into the kernel's TCP
# path, system call entry and exit, the rest of the kernel (io_uring or
# epoll, scheduling), libc, liburing and the server's own code.  Rewrites
# the "Network: where the server's time goes" section of
# docs/benchmarks.md.  `make bench` and `make bench-quick` call it.
#
#   bench/profile.sh [BUILD_DIR]        default build-bench
#
# Environment: PROF_SERVERS ["coreio-uring coreio-epoll epoll"],
# PROF_CONNS [64], PROF_SIZE [100], PROF_SECONDS [4] (sampled; loadgen
# runs 1 s longer on each side), PROF_PORT [7150], PROF_COMMAND (quoted).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
loadgen=$build/bench/loadgen
registry=$root/bench/servers.txt
doc=$root/docs/benchmarks.md
servers=${PROF_SERVERS:-coreio-uring coreio-epoll epoll}
conns=${PROF_CONNS:-64}
size=${PROF_SIZE:-100}
seconds=${PROF_SECONDS:-4}
port=${PROF_PORT:-7150}
command=${PROF_COMMAND:-bench/profile.sh}
work=$(mktemp -d)
server_pid=
cleanup() {
	[ -z "$server_pid" ] || kill -KILL "$server_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

section=$work/section
if ! command -v perf >/dev/null 2>&1 ||
	! perf record -e cpu-clock -g -o "$work/check.data" -- true >/dev/null 2>&1; then
	echo "profile.sh: perf record does not work here (Debian: linux-perf); no profile" >&2
	exit 0
fi

commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
(cd "$root" && git diff --quiet HEAD 2>/dev/null) || commit="$commit-dirty"
stamp=$(date -u '+%Y-%m-%d %H:%M UTC')

# One line per server: name, CPU-µs/req, req/s and the shares (percent of
# the server's samples) tcp entry kernel_rest libc liburing own other,
# then its top own functions.
: >"$work/rows"
for srv in $servers; do
	cmd=$(awk -v n="$srv" -v b="$build" -v p="$port" '
		!/^#/ && $1 == n { $1 = ""; $2 = ""; sub(/^ +/, ""); gsub(/@BUILD@/, b); gsub(/@PORT@/, p); print; exit }' "$registry")
	[ -n "$cmd" ] || { echo "profile.sh: no server $srv in bench/servers.txt" >&2; exit 1; }
	: >"$work/server.log" # before the child opens it: no stale line
	set -f
	# shellcheck disable=SC2086
	taskset -c 0 $cmd >"$work/server.log" 2>&1 &
	server_pid=$!
	set +f
	n=0
	until grep -q 'listening on' "$work/server.log"; do
		kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
		n=$((n + 1)); [ $n -lt 250 ] || { echo "profile.sh: $srv did not listen" >&2; exit 1; }
		sleep 0.02
	done
	"$loadgen" --port "$port" --conns "$conns" --size "$size" --warmup 1 \
		--seconds "$(awk -v s="$seconds" 'BEGIN { print s + 1 }')" --server-pid "$server_pid" \
		--cpu 1 --server-cpu 0 --impl "$srv" >"$work/load.out" &
	lg=$!
	sleep 1.5
	perf record -q -e cpu-clock -F 4999 -g -p "$server_pid" -o "$work/$srv.data" -- sleep "$seconds" \
		>/dev/null 2>&1
	wait "$lg" || { echo "profile.sh: loadgen against $srv failed" >&2; exit 1; }
	kill -TERM "$server_pid"
	wait "$server_pid" || true
	server_pid=
	line=$(grep '^bench=net ' "$work/load.out")
	cpu=$(printf '%s\n' "$line" | tr ' ' '\n' | sed -n 's/^server_cpu_us_per_req=//p')
	rps=$(printf '%s\n' "$line" | tr ' ' '\n' | sed -n 's/^req_s=//p')
	bin=$(printf '%s\n' "$cmd" | tr ' ' '\n' | grep '/' | grep -v '=' | head -n 1)
	bin=$(basename "$bin")
	perf report -i "$work/$srv.data" --children --sort sym -g none --percent-limit 0 \
		--stdio -t '|' 2>/dev/null | grep -v '^#' >"$work/$srv.children" || true
	perf report -i "$work/$srv.data" --no-children --sort dso,sym -g none --percent-limit 0 \
		--stdio -t '|' 2>/dev/null | grep -v '^#' >"$work/$srv.self" || true
	awk -F'|' -v srv="$srv" -v cpu="$cpu" -v rps="$rps" -v bin="$bin" -v ch="$work/$srv.children" '
	function pct(s) { gsub(/[% ]/, "", s); return s + 0 }
	function trim(s) { gsub(/^ +| +$/, "", s); return s }
	BEGIN {
		while ((getline l < ch) > 0) {
			split(l, f, "|")
			sym = trim(f[3]); sub(/^\[[k.]\] /, "", sym)
			c[sym] = pct(f[1])
		}
		send = ("tcp_sendmsg" in c) ? c["tcp_sendmsg"] : c["tcp_sendmsg_locked"]
		recv = ("tcp_recvmsg" in c) ? c["tcp_recvmsg"] : c["tcp_recvmsg_locked"]
		tcp = send + recv
	}
	NF >= 3 {
		p = pct($1); dso = trim($2); sym = trim($3)
		kern = sym ~ /^\[k\]/
		sub(/^\[[k.]\] /, "", sym)
		total += p
		if (kern || dso ~ /kernel/) {
			ksum += p
			if (sym ~ /^(entry_SYSCALL|do_syscall_64|syscall_exit_to_user_mode|syscall_return_via_sysret|exit_to_user_mode|__x64_sys_|x64_sys_call|syscall_enter_from_user_mode|entry_SYSRETQ|__entry_text|fpregs_restore|switch_fpu)/)
				entry += p
		} else if (dso ~ /^libc/) libc += p
		else if (dso ~ /^liburing/) uring += p
		else if (dso == bin) { own += p; fn[sym] += p }
		else other += p
	}
	END {
		rest = ksum - tcp - entry
		if (rest < 0) rest = 0
		top = ""
		for (k = 0; k < 5; k++) {
			best = ""; bv = -1
			for (s in fn) if (fn[s] > bv) { bv = fn[s]; best = s }
			if (best == "" || bv <= 0) break
			top = top sprintf("%s`%s` %.1f%%", top == "" ? "" : ", ", best, bv)
			delete fn[best]
		}
		printf "%s|%s|%s|%.2f|%.2f|%.2f|%.2f|%.2f|%.2f|%.2f|%.2f|%s\n", srv, cpu, rps, tcp, send, recv, entry, rest, libc, uring, own, top
	}' "$work/$srv.self" >>"$work/rows"
	echo "profile.sh: $srv: $(tail -n 1 "$work/rows")" >&2
done

awk -F'|' -v stamp="$stamp" -v commit="$commit" -v conns="$conns" -v size="$size" \
	-v seconds="$seconds" -v cmd="$command" '
function cell(share) { return sprintf("%.1f%% (%.2f)", share, share / 100 * cpu[r]) }
{ n++; name[n] = $1; cpu[n] = $2; rps[n] = $3; tcp[n] = $4; send[n] = $5; recv[n] = $6
  entry[n] = $7; rest[n] = $8; libc[n] = $9; uring[n] = $10; own[n] = $11; top[n] = $12 }
END {
	print "### Network: where the server'"'"'s time goes"
	print ""
	printf "Measured %s, commit %s: each server pinned to CPU 0 under `bench/loadgen`\n", stamp, commit
	printf "on CPU 1 (%s connections, %s-byte messages), sampled with\n", conns, size
	printf "`perf record -e cpu-clock -F 4999 -g -p PID` for %s s of the steady run\n", seconds
	print "(this VM has no hardware counters). Each cell: share of the server'"'"'s"
	print "samples, and in brackets that share of its CPU-µs per request in the same run."
	print ""
	print "Command: `" cmd "`"
	print ""
	hdr = "| Share of the server'"'"'s CPU (CPU-µs/req) |"; sep = "| --- |"
	for (r = 1; r <= n; r++) { hdr = hdr " " name[r] " |"; sep = sep " --- |" }
	print hdr; print sep
	row = "| CPU-µs per request; req/s |"
	for (r = 1; r <= n; r++) row = row sprintf(" %.2f; %.0f |", cpu[r], rps[r])
	print row
	row = "| kernel TCP path: `tcp_sendmsg` + `tcp_recvmsg`, callees included |"
	for (r = 1; r <= n; r++) row = row " " cell(tcp[r]) " |"
	print row
	row = "| … of which sending the echo (with loopback delivery into the client) |"
	for (r = 1; r <= n; r++) row = row " " cell(send[r]) " |"
	print row
	row = "| system call entry and exit (`entry_SYSCALL_64`, `do_syscall_64`, …) |"
	for (r = 1; r <= n; r++) row = row " " cell(entry[r]) " |"
	print row
	row = "| rest of the kernel: io_uring or epoll, wake-ups, scheduling, timers |"
	for (r = 1; r <= n; r++) row = row " " cell(rest[r]) " |"
	print row
	row = "| libc (syscall wrappers, memcpy) |"
	for (r = 1; r <= n; r++) row = row " " cell(libc[r]) " |"
	print row
	row = "| liburing |"
	for (r = 1; r <= n; r++) row = row " " cell(uring[r]) " |"
	print row
	row = "| the server'"'"'s own code (for coreio: the runtime and the example) |"
	for (r = 1; r <= n; r++) row = row " " cell(own[r]) " |"
	print row
	print ""
	for (r = 1; r <= n; r++) {
		if (name[r] !~ /^coreio/) continue
		printf "- %s: coreio'"'"'s own functions take %.1f%% of %.2f CPU-µs, **%.2f µs a request**", name[r], own[r], cpu[r], own[r] / 100 * cpu[r]
		if (uring[r] > 0) printf " (%.2f with liburing)", (own[r] + uring[r]) / 100 * cpu[r]
		printf "; the kernel'"'"'s TCP path %.0f%%, system call entry %.1f%%. Top: %s.\n", tcp[r], entry[r], top[r] == "" ? "n/a" : top[r]
	}
	print ""
	print "The kernel'"'"'s TCP path is the bulk of every server'"'"'s CPU and costs"
	print "about the same whoever calls it; what a runtime can save is the rest:"
	print "system call entry, the event machinery and its own code."
	for (r = 1; r <= n; r++) { if (name[r] == "epoll") e = r; if (name[r] == "coreio-uring") u = r }
	if (e && u) {
		print ""
		budget = 0.85 * cpu[e] - tcp[u] / 100 * cpu[u]
		printf "For the target of 0.85x the raw epoll server (%.2f µs here), coreio on\n", 0.85 * cpu[e]
		printf "io_uring would have to do everything outside the TCP path in %.2f µs a\n", budget
		printf "request; it spends %.2f there (the raw server %.2f), and its TCP path\n", (100 - tcp[u]) / 100 * cpu[u], (100 - tcp[e]) / 100 * cpu[e]
		printf "alone costs %.2f µs against the raw server'"'"'s %.2f.", tcp[u] / 100 * cpu[u], tcp[e] / 100 * cpu[e]
		if (budget < (100 - tcp[e]) / 100 * cpu[e])
			print " That budget is less than the raw server itself spends outside the TCP path: with system calls this cheap (no page-table isolation on this host) io_uring'"'"'s batching has little entry cost left to remove, and the target is out of reach unless the TCP path gets cheaper, not by trimming the runtime alone."
		else
			print ""
	}
	print ""
	print "At 1 connection every server sleeps and wakes for each request, and the"
	print "VM'"'"'s sleep and wake-up cost, not the runtime, dominates (see the"
	print "1-connection rows of the Network section)."
}' "$work/rows" >"$section"

"$(dirname "$0")/doc-section.sh" net-profile "bench/profile.sh (make bench, make bench-quick)" "$section" "$doc"
cat "$section"
