#!/bin/sh
# tls.sh - TLS termination: examples/tcp_proxy --tls-cert (one core, on
# io_uring and on epoll) against HAProxy (one thread, mode tcp, `bind ...
# ssl crt`), each pinned to CPU 0 in front of the same upstream echo
# server (bench's epoll_echo) on CPU 1, driven by bench/tls_load on CPU 1.
# TLS 1.3 with TLS_AES_128_GCM_SHA256 (the client offers nothing else),
# one ECDSA P-256 certificate for all.  Two loads: 64 kept-alive
# connections with 1 KiB and 16 KiB messages (proxy CPU-µs per request),
# and a full handshake per request (handshakes per proxy CPU-second).
# Appends every run to bench/results/<date>-tls.csv and rewrites the
# "TLS" section of docs/benchmarks.md.  `make bench-tls` builds and calls
# this.
#
#   bench/tls.sh [BUILD_DIR]          default build-bench
#
#   TLS_SECONDS [2]  TLS_WARMUP [0.5]  TLS_REPEATS [5]
#   TLS_SIZES ["1024 16384"]  TLS_CONNS [64]  TLS_HS_CONNS [16]
#   TLS_REPORT [unset]   a CSV this script wrote: no runs, only the section
#                        from its lines
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=${1:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
secs=${TLS_SECONDS:-2}
warmup=${TLS_WARMUP:-0.5}
repeats=${TLS_REPEATS:-5}
sizes=${TLS_SIZES:-1024 16384}
conns=${TLS_CONNS:-64}
hs_conns=${TLS_HS_CONNS:-16}
proxy_cpu=0
client_cpu=1
load=$build/bench/tls_load
echo_srv=$build/bench/epoll_echo
tcp_proxy=$build/examples/tcp_proxy
doc=$root/docs/benchmarks.md

for p in "$load" "$echo_srv" "$tcp_proxy"; do
	[ -x "$p" ] || {
		echo "tls.sh: $p missing; run make bench-tls" >&2
		exit 1
	}
done
proxy_setup tls.sh "make bench-tls"

# The certificate, self-signed for localhost, and the client's OpenSSL
# configuration: TLS 1.3 with AES-128-GCM only.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 2 -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost 2>/dev/null
cat "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/haproxy.pem"
cat >"$tmp/client.cnf" <<EOF2
openssl_conf = conf
[conf]
ssl_conf = ssl
[ssl]
system_default = tls13_aes128
[tls13_aes128]
MinProtocol = TLSv1.3
Ciphersuites = TLS_AES_128_GCM_SHA256
EOF2

start_upstream "$echo_srv" $client_cpu

haproxy_cfg() { # port
	haproxy_head
	cat <<EOF2
listen proxy
	bind 127.0.0.1:$1 ssl crt $tmp/haproxy.pem ssl-min-ver TLSv1.2
	server up 127.0.0.1:$up_port
EOF2
}

start_proxy() { # impl port
	case $1 in
	tcp_proxy-uring | tcp_proxy-epoll)
		COREIO_BACKEND=${1#tcp_proxy-} taskset -c $proxy_cpu "$tcp_proxy" \
			--listen "127.0.0.1:$2" --upstream "127.0.0.1:$up_port" --cores 1 \
			--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" \
			--seconds 300 >"$tmp/proxy.log" 2>&1 &
		;;
	haproxy)
		haproxy_cfg "$2" >"$tmp/haproxy.cfg"
		taskset -c $proxy_cpu "$haproxy" -db -f "$tmp/haproxy.cfg" >"$tmp/proxy.log" 2>&1 &
		;;
	esac
	proxy_started "$2"
}

day=$(date -u +%Y-%m-%d)
mkdir -p "$root/bench/results"
csvrel=bench/results/$day-tls.csv
csv=$root/$csvrel
[ -f "$csv" ] || echo "date,commit,kernel,rep,proxy,load,size,conns,req_s,proxy_util,proxy_cpu_us_per_req" >"$csv"
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || commit=$commit-dirty
kernel=$(uname -r)
rows=$tmp/rows
: >"$rows"

measure() { # impl load size conns [--handshakes]
	out=$(OPENSSL_CONF=$tmp/client.cnf taskset -c $client_cpu "$load" --port "$port" \
		--ca "$tmp/cert.pem" --name localhost --conns "$4" --size "$3" \
		--warmup "$warmup" --seconds "$secs" --server-pid "$proxy_pid" ${5:-}) || {
		echo "tls.sh: tls_load failed against $1 ($2, $3 B): $out" >&2
		cat "$tmp/proxy.log" >&2
		exit 1
	}
	line=$(echo "$out" | awk -v pre="$day,$commit,$kernel,$rep,$1,$2,$3,$4" '
		/^tls_load:/ {
			for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
			printf "%s,%s,%s,%s\n", pre, f["req_s"], f["server_util"], f["server_cpu_us_per_req"]
		}')
	echo "$line" | tee -a "$csv" >>"$rows"
	echo "$line" >&2
}

impls="tcp_proxy-uring haproxy tcp_proxy-epoll"
rep=1
if [ -n "${TLS_REPORT:-}" ]; then
	csvrel=${TLS_REPORT#"$root"/}
	tail -n +2 "$root/$csvrel" >"$rows"
	repeats=0
fi
while [ "$rep" -le "$repeats" ]; do
	# shellcheck disable=SC2086
	for impl in $(rotate $((rep - 1)) $impls); do
		port=$(free_port 2)
		start_proxy "$impl" "$port"
		for size in $sizes; do
			measure "$impl" keepalive "$size" "$conns"
		done
		measure "$impl" handshake 1024 "$hs_conns" --handshakes
		stop_proxy
	done
	rep=$((rep + 1))
done

getppid_ns=$(syscall_ns "$tmp" || true)
haproxy_version=$("$haproxy" -v | head -n 1)
section=$tmp/section
awk -F, -v csvname="$csvrel" -v getppid="$getppid_ns" -v hv="$haproxy_version" \
	-v cpu="$(cpu_model)" "$awk_median"'
{
	k = $6 SUBSEP $7
	if (!(k in seen)) { seen[k]; order[++nk] = k }
	us[$5 SUBSEP k] = us[$5 SUBSEP k] " " $11
	rps[$5 SUBSEP k] = rps[$5 SUBSEP k] " " $9
	reps = $4 > reps ? $4 : reps
	if (!day) { day = $1; commit = $2; kernel = $3 }
}
END {
	print "## TLS"
	print ""
	printf "Measured %s, commit %s, Linux %s, %s; %d runs of each proxy,\n", day, commit, kernel, cpu, reps
	printf "interleaved. %s. `tcp_proxy-*` is examples/tcp_proxy\n", hv
	print "`--tls-cert` on one core; HAProxy has one thread, `mode tcp`,"
	print "`bind ... ssl crt`. Each proxy is pinned to CPU 0 in front of bench'"'"'s"
	print "epoll_echo on CPU 1, driven by bench/tls_load (coreio TLS streams) on"
	print "CPU 1: TLS 1.3, TLS_AES_128_GCM_SHA256, an ECDSA P-256 certificate."
	print "Keep-alive: 64 connections, one message in flight each; handshake: a"
	print "new connection (full handshake, no resumption) per 1 KiB request, 16 at"
	print "a time. Reproduce with `make bench-tls`."
	if (getppid != "") printf "A getppid system call took %s ns on this machine.\n", getppid
	print ""
	print "| Load | Size | tcp_proxy-uring | tcp_proxy-epoll | HAProxy | uring / HAProxy | epoll / HAProxy |"
	print "| --- | --- | --- | --- | --- | --- | --- |"
	for (i = 1; i <= nk; i++) {
		split(order[i], p, SUBSEP)
		ul = us["tcp_proxy-uring" SUBSEP order[i]]; el = us["tcp_proxy-epoll" SUBSEP order[i]]
		hl = us["haproxy" SUBSEP order[i]]
		u = median(ul); e = median(el); h = median(hl)
		printf "| %s | %s B | %.1f | %.1f | %.1f | %s (%s) | %s (%s) |\n", p[1], p[2], u, e, h,
			fx(h > 0 ? u / h : ""), fx(least(hl) > 0 ? least(ul) / least(hl) : ""),
			fx(h > 0 ? e / h : ""), fx(least(hl) > 0 ? least(el) / least(hl) : "")
	}
	print ""
	print "Proxy CPU-µs per request (per handshake for the handshake load), medians,"
	print "and in brackets the ratio of each proxy'"'"'s best run; below 1.00x coreio"
	print "spends less. The targets: keep-alive <= 0.80x HAProxy;"
	print "handshakes per proxy CPU-second >= 1.0x HAProxy, which is a CPU-µs ratio"
	print "<= 1.00x."
	print ""
	print "Raw figures, one line per run: [" csvname "](../" csvname ")."
}' "$rows" >"$section"
"$root/bench/doc-section.sh" tls "bench/tls.sh (make bench-tls)" "$section" "$doc" \
	"$root/bench/tls-notes.md"
cat "$section"
