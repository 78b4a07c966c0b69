#!/bin/sh
# proxy.sh - TCP proxies under the echo load generator: coreio's
# examples/tcp_proxy (one core, on io_uring and on epoll) against HAProxy
# (one thread, mode tcp, with and without splicing), each pinned to CPU 0;
# bench/loadgen and the upstream echo server (bench's epoll_echo) share
# CPU 1, the same for every proxy.  64 connections, 100 B and 16 KiB
# messages, repeats interleaved with the order rotating.  The figure is
# requests per proxy CPU-second: req/s over the proxy's CPU utilisation
# in the measured window (loadgen --server-pid).  Appends every run to
# bench/results/<date>-proxy.csv and rewrites the "Proxy" section of
# docs/benchmarks.md.  `make bench-proxy` builds and calls this.
#
#   bench/proxy.sh [BUILD_DIR]          default build-bench
#
#   PROXY_SECONDS [2]     measured seconds of each run (after PROXY_WARMUP)
#   PROXY_WARMUP  [0.5]
#   PROXY_REPEATS [3]
#   PROXY_SIZES   ["100 16384"]
#   PROXY_CONNS   [64]
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=${1:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
secs=${PROXY_SECONDS:-2}
warmup=${PROXY_WARMUP:-0.5}
repeats=${PROXY_REPEATS:-3}
sizes=${PROXY_SIZES:-100 16384}
conns=${PROXY_CONNS:-64}
proxy_cpu=0
client_cpu=1
loadgen=$build/bench/loadgen
echo_srv=$build/bench/epoll_echo
tcp_proxy=$build/examples/tcp_proxy
doc=$root/docs/benchmarks.md
t_begin=$(date +%s)

for p in "$loadgen" "$echo_srv" "$tcp_proxy"; do
	[ -x "$p" ] || {
		echo "proxy.sh: $p missing; run make bench-proxy" >&2
		exit 1
	}
done
proxy_setup proxy.sh "make bench-proxy"

start_upstream "$echo_srv" $client_cpu

# HAProxy's configuration: one thread, mode tcp, no logging, generous
# timeouts, maxconn well above the connections; splicing only in the
# -splice variant (always, both ways: splice-request and splice-response).
haproxy_cfg() { # port splice(0|1)
	haproxy_head
	if [ "$2" = 1 ]; then
		printf '\toption splice-request\n\toption splice-response\n'
	else
		printf '\tno option splice-auto\n'
	fi
	cat <<EOF
listen proxy
	bind 127.0.0.1:$1
	server up 127.0.0.1:$up_port
EOF
}

start_proxy() { # impl port
	case $1 in
	tcp_proxy-uring | tcp_proxy-epoll)
		be=${1#tcp_proxy-}
		COREIO_BACKEND=$be taskset -c $proxy_cpu "$tcp_proxy" \
			--listen "127.0.0.1:$2" --upstream "127.0.0.1:$up_port" --cores 1 \
			--seconds 120 >"$tmp/proxy.log" 2>&1 &
		;;
	haproxy | haproxy-splice)
		s=0
		[ "$1" = haproxy-splice ] && s=1
		haproxy_cfg "$2" $s >"$tmp/haproxy-$1.cfg"
		taskset -c $proxy_cpu "$haproxy" -db -f "$tmp/haproxy-$1.cfg" >"$tmp/proxy.log" 2>&1 &
		;;
	esac
	proxy_started "$2"
}

day=$(date -u +%Y-%m-%d)
run=$(date -u +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$root/bench/results"
csvrel=bench/results/$day-proxy.csv
csv=$root/$csvrel
header=date,run,commit,kernel,rep,proxy,size,conns,req_s,proxy_util,req_per_proxy_cpu_s,proxy_cpu_us_per_req,p50_us,p99_us,client_util,proxy_cpu_other,proxy_cpu_steal,seconds
[ -f "$csv" ] || echo "$header" >"$csv"
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || commit=$commit-dirty
kernel=$(uname -r)
rows=$tmp/rows
: >"$rows"

impls="tcp_proxy-uring haproxy tcp_proxy-epoll haproxy-splice"
rep=1
while [ "$rep" -le "$repeats" ]; do
	# shellcheck disable=SC2086
	order=$(rotate $((rep - 1)) $impls)
	for impl in $order; do
		port=$(free_port 2)
		start_proxy "$impl" "$port"
		for size in $sizes; do
			echo "== rep $rep $impl $size B" >&2
			out=$(taskset -c $client_cpu "$loadgen" --host 127.0.0.1 --port "$port" \
				--conns "$conns" --size "$size" --depth 1 --warmup "$warmup" \
				--seconds "$secs" --server-pid "$proxy_pid" --cpu $client_cpu \
				--server-cpu $proxy_cpu --impl "$impl" --backend "$impl") || {
				echo "proxy.sh: loadgen failed against $impl ($size B):" >&2
				echo "$out" >&2
				cat "$tmp/proxy.log" >&2
				exit 1
			}
			line=$(echo "$out" | grep '^bench=net' | awk -v pre="$day,$run,$commit,$kernel,$rep,$impl,$size,$conns" -v secs="$secs" '
			{
				for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
				u = f["server_util"] + 0
				printf "%s,%s,%s,%.0f,%s,%s,%s,%s,%s,%s,%s\n", pre, f["req_s"], f["server_util"],
					(u > 0 ? f["req_s"] / u : 0), f["server_cpu_us_per_req"], f["p50_us"], f["p99_us"],
					f["client_util"], f["server_cpu_other"], f["server_cpu_steal"], f["window_s"]
			}')
			echo "$line" | tee -a "$csv" >>"$rows"
			echo "$line" >&2
		done
		stop_proxy
	done
	rep=$((rep + 1))
done
elapsed=$(($(date +%s) - t_begin))

cpu_model=$(cpu_model)
haproxy_version=$("$haproxy" -v | head -n 1)
cmd="make bench-proxy"
for v in PROXY_SECONDS PROXY_WARMUP PROXY_REPEATS PROXY_SIZES PROXY_CONNS; do
	eval "val=\${$v:-}"
	[ -n "$val" ] && cmd="$v=\"$val\" $cmd"
done
haproxy_cfg PORT 0 | sed "s/$up_port/UPSTREAM_PORT/" >"$tmp/cfg0"

section=$tmp/section
awk -F, -v cmd="$cmd" -v cpu_model="$cpu_model" -v ncpu="$(nproc)" \
	-v kernel="$kernel" -v commit="$commit" -v run="$run" -v secs="$secs" \
	-v warmup="$warmup" -v repeats="$repeats" -v conns="$conns" \
	-v haproxy_version="$haproxy_version" -v csvname="$csvrel" -v elapsed="$elapsed" \
	-v sizes="$sizes" -v cfgfile="$tmp/cfg0" '
function sort(a, n,    i, j, t) {
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
}
function median(a, n) { sort(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function stats(impl, size,    i, n, e, r, u) {
	n = 0
	for (i = 1; i <= nrows; i++)
		if (P[i] == impl && S[i] == size) { n++; e[n] = EFF[i]; r[n] = RPS[i]; u[n] = UTIL[i] }
	cnt = n
	if (!n) return 0
	med_eff = median(e, n); best_eff = e[n]; med_rps = median(r, n); med_util = median(u, n)
	return 1
}
function paired(num, den, size,    i, j, n, r) {
	n = 0
	for (i = 1; i <= nrows; i++)
		if (P[i] == num && S[i] == size)
			for (j = 1; j <= nrows; j++)
				if (P[j] == den && S[j] == size && REP[j] == REP[i] && EFF[j] > 0) { n++; r[n] = EFF[i] / EFF[j] }
	return n ? median(r, n) : 0
}
{ nrows++; REP[nrows] = $5; P[nrows] = $6; S[nrows] = $7; RPS[nrows] = $9; UTIL[nrows] = $10; EFF[nrows] = $11
  US[nrows] = $12; P50[nrows] = $13; P99[nrows] = $14; OTHER[nrows] = $16 }
END {
	nimpls = split("tcp_proxy-uring tcp_proxy-epoll haproxy haproxy-splice", impls, " ")
	nsizes = split(sizes, sz, " ")
	print "## Proxy"
	print ""
	printf "Measured %s on %s (%d CPUs), Linux %s, commit %s; %s.\n", run, cpu_model, ncpu, kernel, commit, haproxy_version
	printf "%d connections, one message in flight on each, %s s measured after %s s of warm-up,\n", conns, secs, warmup
	printf "%d repeat(s) interleaved (the order of the proxies rotating each repeat); %d s in all.\n", repeats, elapsed
	print ""
	print "Command: `" cmd "`"
	print ""
	print "`bench/loadgen` (CPU 1) sends each message through the proxy (CPU 0) to"
	print "`bench/epoll_echo` (CPU 1, the same upstream for every proxy) and checks"
	print "every byte that comes back. The figure is requests per proxy"
	print "CPU-second: requests/s divided by the proxy'"'"'s CPU utilisation over the"
	print "window (its process CPU clock, read by loadgen through `--server-pid`),"
	print "so a proxy that is not saturated is not credited for idle time. CPU 1"
	print "carries both the client and the upstream: whichever CPU fills first sets"
	print "requests/s (the proxy'"'"'s utilisation column tells which), which is why"
	print "requests/s alone would not compare the proxies."
	print ""
	print "- `tcp_proxy-uring` / `tcp_proxy-epoll`: `examples/tcp_proxy --cores 1`"
	print "  with `COREIO_BACKEND=uring` / `epoll`: one task per connection,"
	print "  `cio_relay()` moving the bytes with splice through a pipe each way."
	print "- `haproxy`: HAProxy, `nbthread 1`, mode tcp, no splicing (its recv/send"
	print "  through its own buffers). `haproxy-splice`: the same with"
	print "  `option splice-request` and `option splice-response` (kernel splicing"
	print "  both ways whenever it can)."
	print ""
	print "### Against HAProxy (same run)"
	print ""
	print "| Size | coreio | vs | Ratio of medians (req per proxy CPU-s) | Median of per-repeat ratios | Target | Met |"
	print "| --- | --- | --- | --- | --- | --- | --- |"
	for (s = 1; s <= nsizes; s++)
		for (k = 1; k <= 2; k++)
			for (h = 3; h <= 4; h++) {
				if (!stats(impls[h], sz[s])) continue
				he = med_eff
				if (!stats(impls[k], sz[s])) continue
				r = med_eff / he
				tgt = impls[h] == "haproxy" ? ">= 1.2x" : "(none)"
				met = impls[h] == "haproxy" ? (r >= 1.2 ? "yes" : "**no**") : ""
				printf "| %d B | %s | %s | %.2fx | %.2fx | %s | %s |\n", sz[s], impls[k], impls[h], r, paired(impls[k], impls[h], sz[s]), tgt, met
			}
	print ""
	print "### Figures (medians over the repeats)"
	print ""
	print "| Size | Proxy | Req per proxy CPU-s | Best | Req/s | Proxy CPU util | Runs |"
	print "| --- | --- | --- | --- | --- | --- | --- |"
	for (s = 1; s <= nsizes; s++)
		for (k = 1; k <= nimpls; k++)
			if (stats(impls[k], sz[s]))
				printf "| %d B | %s | %d | %d | %d | %.3f | %d |\n", sz[s], impls[k], med_eff, best_eff, med_rps, med_util, cnt
	print ""
	print "Every run:"
	print ""
	print "| Repeat | Proxy | Size | Req/s | Proxy util | Req per proxy CPU-s | Proxy CPU µs/req | p50 µs | p99 µs | Other work on CPU 0 |"
	print "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for (i = 1; i <= nrows; i++)
		printf "| %s | %s | %s | %d | %s | %d | %s | %s | %s | %s |\n", REP[i], P[i], S[i], RPS[i], UTIL[i], EFF[i], US[i], P50[i], P99[i], OTHER[i]
	print ""
	print "The commands (PORT, UPSTREAM_PORT: free loopback ports picked per run):"
	print ""
	print "```sh"
	print "taskset -c 1 bench/epoll_echo UPSTREAM_PORT 127.0.0.1"
	print "COREIO_BACKEND=uring taskset -c 0 examples/tcp_proxy --listen 127.0.0.1:PORT --upstream 127.0.0.1:UPSTREAM_PORT --cores 1 --seconds 120"
	print "taskset -c 0 haproxy -db -f haproxy.cfg"
	printf "taskset -c 1 bench/loadgen --host 127.0.0.1 --port PORT --conns %d --size SIZE --depth 1 --warmup %s --seconds %s --server-pid PROXY_PID --cpu 1 --server-cpu 0\n", conns, warmup, secs
	print "```"
	print ""
	print "haproxy.cfg (`haproxy-splice` replaces `no option splice-auto` with"
	print "`option splice-request` and `option splice-response`):"
	print ""
	print "```text"
	while ((getline l < cfgfile) > 0) print l
	print "```"
	print ""
	print "Raw figures, one line per run, every run kept: [" csvname "](../" csvname ")."
}' "$rows" >"$section"

# Notes written by hand about what limits each side go below the table.
"$(dirname "$0")/doc-section.sh" proxy "bench/proxy.sh (make bench-proxy)" "$section" "$doc" \
	"$root/bench/proxy-notes.md"
echo "proxy.sh: $elapsed s; runs appended to $csv; section Proxy of $doc rewritten" >&2
