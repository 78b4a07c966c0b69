#!/bin/sh
# soak.sh - what `make soak` runs: echo and proxy traffic for a long while
# against the Release examples, checking that the servers neither grow
# nor leak.  examples/echo_server and examples/tcp_proxy (in front of
# it) run one core each on loopback; bench/soakgen keeps SOAK_CONNS
# connections (half straight to the echo server, half through the proxy)
# busy with every byte verified, closing and reopening them all the time,
# a few resetting mid-transfer (SO_LINGER 0), stalling with their
# receive window full, or sending half a message and closing.
#
#   scripts/soak.sh [BUILD_DIR]      default build
#
# Every second the servers' RSS (VmRSS) and open fds go to a CSV
# (bench/results/<date>-soak.csv).  After the warm-up (the first 20%),
# the run fails when the median RSS of the last minute exceeds that of
# the first minute after the warm-up by more than 10% or 4 MiB, whichever
# is larger; when the median fd count grows by more than 5% or 50 (it
# moves with the connections open at the instant); when, after the load,
# a server keeps more sockets than before it; or when soakgen fails (a wrong
# byte, a good connection closed, reset or stalled), a server dies, or
# one does not exit cleanly on SIGTERM.  Prints one summary line; a run
# of 300 s or more that passes also draws docs/soak.png (gnuplot) and
# rewrites the Soak section of docs/benchmarks.md.
#
# SOAK_SECONDS (600), SOAK_CONNS (1000), SOAK_PORT (47100: it and the
# next one, else the next free pair below SOAK_PORT_LAST, 47999),
# SOAK_BACKEND (default: the runtime's choice) and SOAK_NAME (the CSV's
# name, default soak) adjust it.  Loopback only.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
seconds=${SOAK_SECONDS:-600}
conns=${SOAK_CONNS:-1000}
port=${SOAK_PORT:-47100}
name=${SOAK_NAME:-soak}
for p in examples/echo_server examples/tcp_proxy bench/soakgen; do
	[ -x "$build/$p" ] || { echo "soak.sh: $build/$p missing; run make soak" >&2; exit 1; }
done
if [ -n "${SOAK_BACKEND:-}" ]; then
	export COREIO_BACKEND="$SOAK_BACKEND"
fi

work=$(mktemp -d)
echo_pid='' proxy_pid='' sampler_pid=''
cleanup() {
	for p in $sampler_pid $proxy_pid $echo_pid; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
	echo "soak: FAILED: $*" >&2
	exit 1
}

# Waits for "listening on" in log $1 of pid $2; fails (status 1) when
# it cannot listen (the port is taken), and the whole run when it dies
# otherwise or takes over 5 s.
wait_listen() {
	tries=0
	until grep -q 'listening on' "$1" 2>/dev/null; do
		if ! kill -0 "$2" 2>/dev/null; then
			grep -q 'Address already in use' "$1" && return 1
			cat "$1" >&2
			fail "$(basename "$1" .log) exited before listening"
		fi
		tries=$((tries + 1))
		[ $tries -lt 250 ] || fail "$(basename "$1" .log) did not listen within 5 s"
		sleep 0.02
	done
}

# Ports of the loopback's ephemeral range (as 47000-47999 are) stay
# taken for a minute by the TIME_WAIT sockets of any earlier churn (ours
# included): try the pairs of SOAK_PORT's range in turn until both bind.
bound=
while [ -z "$bound" ] && [ "$port" -lt "${SOAK_PORT_LAST:-47999}" ]; do
	echo_port=$port
	proxy_port=$((port + 1))
	port=$((port + 2))
	"$build/examples/echo_server" --cores 1 "127.0.0.1:$echo_port" >"$work/echo_server.log" 2>&1 &
	echo_pid=$!
	if ! wait_listen "$work/echo_server.log" "$echo_pid"; then
		wait "$echo_pid" 2>/dev/null || true
		echo_pid=
		continue
	fi
	"$build/examples/tcp_proxy" --cores 1 --listen "127.0.0.1:$proxy_port" \
		--upstream "127.0.0.1:$echo_port" >"$work/tcp_proxy.log" 2>&1 &
	proxy_pid=$!
	if ! wait_listen "$work/tcp_proxy.log" "$proxy_pid"; then
		wait "$proxy_pid" 2>/dev/null || true
		kill -KILL "$echo_pid"
		wait "$echo_pid" 2>/dev/null || true
		proxy_pid='' echo_pid=''
		continue
	fi
	bound=1
done
[ -n "$bound" ] || fail "no pair of free ports from ${SOAK_PORT:-47100} on"
head -n 1 "$work/echo_server.log"
head -n 1 "$work/tcp_proxy.log"

rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
socks() { find "/proc/$1/fd" -lname "socket:*" 2>/dev/null | wc -l; }
pipes() { find "/proc/$1/fd" -lname "pipe:*" 2>/dev/null | wc -l; }
echo_socks0=$(socks "$echo_pid")
proxy_socks0=$(socks "$proxy_pid")
proxy_pipes0=$(pipes "$proxy_pid")

mkdir -p "$root/bench/results"
csv=$root/bench/results/$(date +%Y-%m-%d)-$name.csv
echo "second,echo_rss_kib,echo_fds,proxy_rss_kib,proxy_fds" >"$csv"
start=$(date +%s)
(
	# A sample takes a while with thousands of fds: the clock, not a
	# count of samples, says when it was taken.
	while kill -0 "$echo_pid" 2>/dev/null && kill -0 "$proxy_pid" 2>/dev/null; do
		t=$(($(date +%s) - start))
		echo "$t,$(rss "$echo_pid"),$(fds "$echo_pid"),$(rss "$proxy_pid"),$(fds "$proxy_pid")" >>"$csv"
		sleep 1
	done
) &
sampler_pid=$!

echo "soak: $conns connections for $seconds s (half through the proxy), CSV $csv"
st=0
"$build/bench/soakgen" --target "127.0.0.1:$echo_port" --target "127.0.0.1:$proxy_port" \
	--conns "$conns" --seconds "$seconds" >"$work/soakgen.out" 2>"$work/soakgen.err" || st=$?
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=
grep -v '^soakgen: [0-9]* s:' "$work/soakgen.err" >&2 || true
cat "$work/soakgen.out"
[ "$st" = 0 ] || fail "soakgen exit status $st"
kill -0 "$echo_pid" 2>/dev/null || fail "echo_server died"
kill -0 "$proxy_pid" 2>/dev/null || fail "tcp_proxy died"

# Once the clients are gone, every connection's socket must go too; the
# proxy keeps the empty pipes of its splice pool (CIO__PIPE_POOL, 32
# pipes: 64 fds), which are not a leak.
tries=0
while :; do
	echo_socks1=$(socks "$echo_pid")
	proxy_socks1=$(socks "$proxy_pid")
	proxy_pipes1=$(pipes "$proxy_pid")
	[ "$echo_socks1" -le "$echo_socks0" ] && [ "$proxy_socks1" -le "$proxy_socks0" ] &&
		[ "$proxy_pipes1" -le $((proxy_pipes0 + 64)) ] && break
	tries=$((tries + 1))
	[ $tries -lt 50 ] || fail "after the load: echo_server has $echo_socks1 sockets (before: $echo_socks0), tcp_proxy $proxy_socks1 (before: $proxy_socks0) and $proxy_pipes1 pipe fds (before: $proxy_pipes0)"
	sleep 0.1
done

# Both stop cleanly on SIGTERM (a drain), the proxy first.
stop() {
	kill -TERM "$2"
	st=0
	wait "$2" || st=$?
	[ "$st" = 0 ] || fail "$1 exited with status $st on SIGTERM"
}
stop tcp_proxy "$proxy_pid"
proxy_pid=''
stop echo_server "$echo_pid"
echo_pid=''

# Medians of the first minute after the warm-up and of the last minute
# (a fifth of the run each when it is shorter than five minutes).
verdict=$(awk -F, -v total="$seconds" '
	function median(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function max(a, b) { return a > b ? a : b }
	NR > 1 && $1 < total { s[$1] = $0; last = $1 }
	END {
		warm = int(total * 0.2); win = total >= 300 ? 60 : int(total * 0.2)
		if (win < 3) win = 3
		for (t = warm; t < warm + win; t++) if (t in s) { split(s[t], f, ","); na++; ea[na] = f[2]; eaf[na] = f[3]; pa[na] = f[4]; paf[na] = f[5] }
		for (t = last - win + 1; t <= last; t++) if (t in s) { split(s[t], f, ","); nb++; eb[nb] = f[2]; ebf[nb] = f[3]; pb[nb] = f[4]; pbf[nb] = f[5] }
		if (!na || !nb) { print "FAIL too few samples"; exit }
		e0 = median(ea, na); e1 = median(eb, nb); p0 = median(pa, na); p1 = median(pb, nb)
		ef0 = median(eaf, na); ef1 = median(ebf, nb); pf0 = median(paf, na); pf1 = median(pbf, nb)
		bad = ""
		if (e1 - e0 > max(e0 * 0.10, 4096)) bad = bad " echo_server RSS grew"
		if (p1 - p0 > max(p0 * 0.10, 4096)) bad = bad " tcp_proxy RSS grew"
		if (ef1 - ef0 > max(ef0 * 0.05, 50)) bad = bad " echo_server fds grew"
		if (pf1 - pf0 > max(pf0 * 0.05, 50)) bad = bad " tcp_proxy fds grew"
		printf "%s|echo_server RSS %.1f -> %.1f MiB, fds %d -> %d; tcp_proxy RSS %.1f -> %.1f MiB, fds %d -> %d (medians of %d s after a %d s warm-up and of the last %d s)\n",
			bad == "" ? "ok" : "FAIL" bad, e0 / 1024, e1 / 1024, ef0, ef1, p0 / 1024, p1 / 1024, pf0, pf1, win, warm, win
	}' "$csv")
summary=${verdict#*|}
line="soak: $seconds s, $conns connections: $summary; after the load echo_server has $echo_socks1 sockets, tcp_proxy $proxy_socks1 (as before it) and $proxy_pipes1 pooled pipe fds"
echo "$line"
case $verdict in ok\|*) ;; *) fail "${verdict%%|*}" ;; esac
soakgen_line=$(cat "$work/soakgen.out")
if [ "$seconds" -lt 300 ]; then
	echo "soak: passed (a run under 300 s leaves docs/ alone)"
	exit 0
fi

if command -v gnuplot >/dev/null 2>&1; then
	gnuplot <<-GP || echo "soak.sh: gnuplot failed; no chart" >&2
		set terminal pngcairo size 900,420 font ",10" noenhanced
		set output "$root/docs/soak.png"
		set datafile separator ","
		set key bottom right opaque
		set xlabel "seconds"
		set ylabel "RSS (MiB)"
		set y2label "open fds"
		set ytics nomirror
		set y2tics
		set yrange [0:*]
		set y2range [0:*]
		set title "make soak: $conns connections, $seconds s (echo_server and tcp_proxy, one core each)"
		plot "$csv" every ::1 using 1:(\$2/1024) with lines lw 2 title "echo_server RSS", \
		     "" every ::1 using 1:(\$4/1024) with lines lw 2 title "tcp_proxy RSS", \
		     "" every ::1 using 1:3 axes x1y2 with lines title "echo_server fds", \
		     "" every ::1 using 1:5 axes x1y2 with lines title "tcp_proxy fds"
	GP
fi

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || commit="$commit-dirty"
backend=$(sed -n 's/.*, backend \([a-z_]*\).*/\1/p' "$work/echo_server.log")
body=$work/section.md
cat >"$body" <<-MD
	## Soak

	Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1 | cut -d' ' -f1-2) ($(nproc) CPUs), Linux $(uname -r), commit $commit; Release build, backend $backend, \`nice -n 10\`.

	Command: \`make soak\` (scripts/soak.sh; SOAK_SECONDS=$seconds)

	examples/echo_server and examples/tcp_proxy in front of it, one core
	each, under bench/soakgen: $conns connections, half through the proxy,
	each living for 1 to 400 messages (1 B to 64 KiB) with pauses of up to
	20 ms, then closed and replaced; 3% misbehave (reset mid-transfer
	with SO_LINGER 0, stall with 1 MiB unread, send half a message and
	close). Every echoed byte is checked. RSS and open fds sampled every
	second; the medians compared are those of the first minute after a
	warm-up of a fifth of the run and of the last minute. Pass: RSS grows
	by at most 10% or 4 MiB, fds by at most 5% or 50, and after the load
	each server holds no more sockets than before it.

	| Server | RSS first minute | RSS last minute | fds first minute | fds last minute |
	| --- | --- | --- | --- | --- |
	$(echo "$summary" | awk '{
		gsub(/[;,]/, "");
		printf "| echo_server | %s MiB | %s MiB | %s | %s |\n", $3, $5, $8, $10;
		printf "| tcp_proxy | %s MiB | %s MiB | %s | %s |", $13, $15, $18, $20 }')

	Client: \`$soakgen_line\`

	After the load: echo_server $echo_socks1 socket (its listener), tcp_proxy
	$proxy_socks1 socket and $proxy_pipes1 pipe fds (the runtime's pool of
	empty splice pipes, at most 32 pipes, plus what it had before). The
	proxy's fds move with the connections open at each instant: four
	pipe fds per relay beside its two sockets.

	![RSS and fds over the run](soak.png)

	CSV: bench/results/$(basename "$csv")
MD
"$root/bench/doc-section.sh" soak "scripts/soak.sh (make soak)" "$body" "$root/docs/benchmarks.md"
echo "soak: passed; docs/benchmarks.md (Soak) and docs/soak.png written"
