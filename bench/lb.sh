#!/bin/sh
# lb.sh - L7 load balancers: coreio's examples/http_lb (one core, on
# io_uring and on epoll) against nginx (one worker, proxy_pass to an
# upstream block with keep-alive) and HAProxy (one thread, mode http,
# http-reuse always), each pinned to CPU 0 in front of the same upstream,
# examples/http_hello on one core, pinned to CPU 1 with the client, wrk
# (one thread): the upstream and the client share CPU 1.  64 kept-alive
# connections to a 14-byte response (GET /) and to a 16 KiB one (GET
# /bytes/16384), in plain HTTP and with TLS terminated by the proxy
# (a self-signed ECDSA P-256 certificate; wrk offers TLS 1.3 with
# AES-128-GCM only).  Beside them, in plain HTTP only, the floor:
# bench's uring_proxy, a runtime-free io_uring relay with an upstream
# connection per client that parses nothing (the least a proxy must do
# per request).  The figure is the proxy's CPU-µs per request: its
# utime+stime (every thread; nginx's master and worker) over the
# requests wrk counted in the measured run.  Repeats interleaved, the
# order rotating.  Appends every run to bench/results/<date>-lb.csv,
# draws docs/bench-lb.png (gnuplot) and rewrites the "L7 load balancer"
# section of docs/benchmarks.md.  `make bench-lb` builds and calls this.
#
#   bench/lb.sh [BUILD_DIR]          default build-bench
#
#   LB_SECONDS [4]  LB_WARMUP [1] (whole seconds: wrk's -d)  LB_REPEATS [3]
#   LB_CONNS [64]   LB_SIZES ["14 16384"] (14: the hello; else /bytes/N)
#   LB_TLS ["plain tls"]
#   LB_PROXIES ["http_lb-uring http_lb-epoll nginx haproxy floor"]: fewer only
#                   on purpose (the section names those left out)
#   LB_MAX_OTHER [0.08]  LB_TRIES [2]
#                   a run in which other work (or the hypervisor) took
#                   more than this share of CPU 0 or CPU 1 is made again,
#                   up to LB_TRIES in all; the last is kept, marked
#                   disturbed, and the section counts those
#   LB_REPORT [unset]  a CSV this script wrote: no runs, only the chart
#                   and the section from it
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=${1:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
secs=${LB_SECONDS:-4}
warmup=${LB_WARMUP:-1}
repeats=${LB_REPEATS:-3}
conns=${LB_CONNS:-64}
sizes=${LB_SIZES:-14 16384}
modes=${LB_TLS:-plain tls}
all_proxies="http_lb-uring http_lb-epoll nginx haproxy floor"
proxies=${LB_PROXIES:-$all_proxies}
max_other=${LB_MAX_OTHER:-0.08}
tries=${LB_TRIES:-2}
proxy_cpu=0
client_cpu=1
hz=$(getconf CLK_TCK)
hello=$build/examples/http_hello
lb=$build/examples/http_lb
relay=$build/bench/uring_proxy
doc=$root/docs/benchmarks.md

for p in $proxies; do
	case " $all_proxies " in
	*" $p "*) ;;
	*)
		echo "lb.sh: unknown proxy $p in LB_PROXIES (known: $all_proxies)" >&2
		exit 2
		;;
	esac
done
skipped=
for p in $all_proxies; do
	case " $proxies " in *" $p "*) ;; *) skipped="$skipped $p" ;; esac
done
skipped=${skipped# }
[ -z "$skipped" ] || echo "lb.sh: LB_PROXIES leaves out $skipped" >&2

day=$(date -u +%Y-%m-%d)
csvrel=bench/results/$day-lb.csv
csv=$root/$csvrel
header=date,commit,kernel,rep,proxy,tls,size,conns,req_s,proxy_cpu_us_per_req,p99_ms,proxy_util,upstream_cpu_us_per_req,other_work,tries,disturbed
if [ -n "${LB_REPORT:-}" ]; then
	csvrel=${LB_REPORT#"$root"/}
	csv=$root/$csvrel
	repeats=0
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT INT TERM
else
	need="$hello $(command -v wrk || echo /usr/bin/wrk)"
	case " $proxies " in *" http_lb-"*) need="$need $lb" ;; esac
	case " $proxies " in *" nginx "*) need="$need $(command -v nginx || echo /usr/sbin/nginx)" ;; esac
	case " $proxies " in *" floor "*) need="$need $relay" ;; esac
	for p in $need; do
		[ -x "$p" ] || {
			echo "lb.sh: $p missing; run make bench-lb" >&2
			exit 1
		}
	done
	# HAProxy's path in $haproxy, two CPUs, $tmp and $pids cleaned up.
	proxy_setup lb.sh "make bench-lb"
	# A failed run exits with the proxy still up: stop it too.
	proxy_pid=
	trap 'stop_proxy; proxy_cleanup' EXIT INT TERM
	mkdir -p "$root/bench/results"
	[ -f "$csv" ] || echo "$header" >"$csv"
fi
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || commit=$commit-dirty
kernel=$(uname -r)

# The certificate, self-signed for localhost, as tls.sh makes it (HAProxy
# wants certificate and key in one file), and wrk's OpenSSL configuration:
# TLS 1.3 with AES-128-GCM only, so that every proxy runs the same cipher.
if [ "$repeats" -gt 0 ]; then
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

	# The upstream, on the client's CPU, for the whole run.
	up_port=$(free_port 1)
	taskset -c $client_cpu "$hello" --cores 1 "127.0.0.1:$up_port" >"$tmp/upstream.log" 2>&1 &
	up_pid=$!
	pids="$pids $up_pid"
	wait_port "$up_port"
fi

# nginx: one worker, no access log, keep-alive to the upstream (64 idle
# connections kept, no limit on requests per connection either side),
# proxy buffering as by default.
nginx_conf() { # port tls
	ssl=''
	cert=''
	if [ "$2" = tls ]; then
		ssl=" ssl"
		# nginx 1.22 enables TLS 1.3 only when told to.
		cert="ssl_certificate $tmp/cert.pem; ssl_certificate_key $tmp/key.pem; ssl_protocols TLSv1.2 TLSv1.3;"
	fi
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
	upstream up {
		server 127.0.0.1:$up_port;
		keepalive 64;
		keepalive_requests 100000000;
	}
	server {
		listen 127.0.0.1:$1$ssl;
		$cert
		location / {
			proxy_pass http://up;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
EOF2
}

# HAProxy: one thread, mode http, connections to the upstream shared
# between clients (http-reuse always), no logging.
haproxy_cfg() { # port tls
	ssl=''
	[ "$2" = tls ] && ssl=" ssl crt $tmp/haproxy.pem"
	cat <<EOF2
global
	nbthread 1
	maxconn 4096
defaults
	mode http
	maxconn 4096
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	http-reuse always
frontend lb
	bind 127.0.0.1:$1$ssl
	default_backend up
backend up
	server up 127.0.0.1:$up_port
EOF2
}

# Starts a proxy listening on $2; the pids whose CPU counts in $cpu_pids.
start_proxy() { # proxy port tls
	tlsargs=
	[ "$3" = tls ] && tlsargs="--tls-cert $tmp/cert.pem --tls-key $tmp/key.pem"
	case $1 in
	http_lb-uring | http_lb-epoll)
		# shellcheck disable=SC2086
		COREIO_BACKEND=${1#http_lb-} taskset -c $proxy_cpu "$lb" --cores 1 \
			--listen "127.0.0.1:$2" --upstream "127.0.0.1:$up_port" $tlsargs \
			--seconds 600 >"$tmp/proxy.log" 2>&1 &
		proxy_started "$2"
		cpu_pids=$proxy_pid
		;;
	nginx)
		nginx_conf "$2" "$3" >"$tmp/nginx.conf"
		taskset -c $proxy_cpu nginx -p "$tmp" -c "$tmp/nginx.conf" >"$tmp/proxy.log" 2>&1 &
		proxy_started "$2"
		cpu_pids="$proxy_pid $(pgrep -P "$proxy_pid" | tr '\n' ' ')"
		;;
	floor)
		taskset -c $proxy_cpu "$relay" "$up_port" "$2" >"$tmp/proxy.log" 2>&1 &
		proxy_started "$2"
		cpu_pids=$proxy_pid
		;;
	haproxy)
		haproxy_cfg "$2" "$3" >"$tmp/haproxy.cfg"
		taskset -c $proxy_cpu "$haproxy" -db -f "$tmp/haproxy.cfg" >"$tmp/proxy.log" 2>&1 &
		proxy_started "$2"
		cpu_pids=$proxy_pid
		;;
	esac
}

# utime + stime of processes, all their threads, in clock ticks.
cpu_ticks() {
	for p in "$@"; do cat "/proc/$p/stat"; done | awk '{ t += $14 + $15 } END { print t }'
}

# The busy time of CPUs 0 and 1 (all but idle and iowait: a process's
# times include the interrupts it was interrupted by, on this kernel's
# tick accounting, where /proc/stat puts them apart) and the
# CPU time of this shell's finished children (wrk), in clock ticks:
# "busy0 busy1 children".  The shell's own `times` goes to a file first:
# in the subshell of a $(...) it would count that subshell's children.
cpu_state() {
	awk -v hz="$hz" -v a="cpu$proxy_cpu" -v b="cpu$client_cpu" '
		FILENAME != ARGV[1] && $1 == a { b0 = $2 + $3 + $4 + $7 + $8 + $9 }
		FILENAME != ARGV[1] && $1 == b { b1 = $2 + $3 + $4 + $7 + $8 + $9 }
		FILENAME == ARGV[1] && FNR == 2 {
			for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); c += (t[1] * 60 + t[2]) * hz }
		}
		END { printf "%d %d %d\n", b0, b1, c }' "$tmp/times" /proc/stat
}

wrk_run() { # seconds url [--latency]
	# wrk's -d bounds the run; timeout bounds a wrk that hangs.
	OPENSSL_CONF=$tmp/client.cnf timeout $(($1 + 30)) taskset -c $client_cpu \
		wrk -t1 -c"$conns" -d"$1" ${3:+"$3"} "$2"
}

# One measured run of proxy $1 ($2: plain or tls) at size $3.
measure() { # proxy tls size
	scheme=http
	[ "$2" = tls ] && scheme=https
	path=/
	[ "$3" = 14 ] || path=/bytes/$3
	url=$scheme://127.0.0.1:$port$path
	wrk_run "$warmup" "$url" >/dev/null
	try=1
	while :; do
		# shellcheck disable=SC2086 # a list of pids
		t0=$(cpu_ticks $cpu_pids)
		u0=$(cpu_ticks "$up_pid")
		times >"$tmp/times"
		s0=$(cpu_state)
		wrk_run "$secs" "$url" --latency >"$tmp/wrk.out" || {
			echo "lb.sh: wrk failed against $1 ($2, $3 B):" >&2
			cat "$tmp/wrk.out" "$tmp/proxy.log" >&2
			exit 1
		}
		times >"$tmp/times"
		s1=$(cpu_state)
		# shellcheck disable=SC2086
		t1=$(cpu_ticks $cpu_pids)
		u1=$(cpu_ticks "$up_pid")
		# Other work: the busy time of either CPU that is none of the
		# proxy, the upstream and wrk, as a share of that CPU.
		other=$(echo "$s0 $s1" | awk -v p=$((t1 - t0)) -v u=$((u1 - u0)) \
			-v hz="$hz" -v secs="$secs" '{
			o0 = ($4 - $1 - p) / (hz * secs); o1 = ($5 - $2 - u - ($6 - $3)) / (hz * secs)
			o = o0 > o1 ? o0 : o1
			printf "%.2f\n", o < 0 ? 0 : o
		}')
		disturbed=$(awk -v o="$other" -v m="$max_other" 'BEGIN { print (o + 0 > m + 0) }')
		if [ "$disturbed" = 0 ] || [ "$try" -ge "$tries" ]; then break; fi
		echo "lb.sh: other work took $other of a CPU during $1 ($2, $3 B); again" >&2
		try=$((try + 1))
	done
	# Errors, non-2xx answers or bodies shorter than the size (wrk's
	# bytes read over its requests) fail the run.
	out=$(cat "$tmp/wrk.out")
	line=$(echo "$out" | awk -v pre="$day,$commit,$kernel,$rep,$1,$2,$3,$conns" \
		-v ticks=$((t1 - t0)) -v uticks=$((u1 - u0)) -v hz="$hz" \
		-v secs="$secs" -v size="$3" -v post="$other,$try,$disturbed" '
		function bytes(v,    n) {
			n = v + 0
			if (v ~ /KB$/) n *= 1024
			else if (v ~ /MB$/) n *= 1048576
			else if (v ~ /GB$/) n *= 1073741824
			return n
		}
		/requests in/ { reqs = $1; read = bytes($5) }
		/Requests\/sec/ { rps = $2 }
		/ 99%/ { p99 = $2; if (p99 ~ /us$/) p99 = p99 / 1000; else if (p99 ~ /ms$/) p99 += 0; else p99 = p99 * 1000 }
		/Non-2xx|Socket errors/ { bad = 1 }
		END {
			if (bad || reqs == 0 || read / reqs < size) exit 1
			printf "%s,%.0f,%.2f,%.2f,%.2f,%.2f,%s\n", pre, rps, ticks / hz * 1e6 / reqs, p99,
				ticks / hz / secs, uticks / hz * 1e6 / reqs, post
		}') || {
		echo "lb.sh: wrk saw errors, non-2xx answers or short bodies from $1 ($2, $3 B):" >&2
		echo "$out" >&2
		cat "$tmp/proxy.log" >&2
		exit 1
	}
	echo "$line" | tee -a "$csv" >&2
}

rep=1
while [ "$rep" -le "$repeats" ]; do
	m=0
	for mode in $modes; do
		# shellcheck disable=SC2086
		for proxy in $(rotate $((rep - 1 + m)) $proxies); do
			[ "$proxy:$mode" != floor:tls ] || continue # it relays bytes only
			port=$(free_port 2)
			start_proxy "$proxy" "$port" "$mode"
			for size in $sizes; do
				measure "$proxy" "$mode" "$size"
			done
			kill -0 "$proxy_pid" 2>/dev/null || {
				echo "lb.sh: $proxy ($mode) exited during the run:" >&2
				cat "$tmp/proxy.log" >&2
				exit 1
			}
			stop_proxy
			# http_lb's summary (requests, 5xx answered) for the record.
			case $proxy in http_lb-*) tail -n 1 "$tmp/proxy.log" >&2 ;; esac
		done
		m=$((m + 1))
	done
	rep=$((rep + 1))
done

# The chart and the section show the CSV's last run only: the rows of the
# commit its last line names (a day's CSV may hold several runs).
last=$(tail -n 1 "$csv" | cut -d, -f2)

# ---- the chart ---------------------------------------------------------------
# Clustered bars: median proxy CPU-µs per request, one cluster a workload,
# one bar a proxy.
chart=
if command -v gnuplot >/dev/null 2>&1; then
	dat=$tmp/chart.dat
	awk -F, -v all="$all_proxies" -v last="$last" "$awk_median"'
	NR == 1 || $2 != last { next }
	{
		k = $6 " " $7
		if (!(k in seen)) { seen[k]; order[++nk] = k }
		if ($16 == 1) d[$5 SUBSEP k] = d[$5 SUBSEP k] " " $10
		else us[$5 SUBSEP k] = us[$5 SUBSEP k] " " $10
	}
	END {
		for (key in d) if (!(key in us)) us[key] = d[key]
		np = split(all, pv, " ")
		row = "workload"
		for (i = 1; i <= np; i++) row = row " " pv[i]
		print row
		for (j = 1; j <= nk; j++) {
			split(order[j], w, " ")
			row = "\"" (w[2] == 14 ? "14 B" : w[2] / 1024 " KiB") (w[1] == "tls" ? ", TLS" : "") "\""
			for (i = 1; i <= np; i++) {
				m = median(us[pv[i] SUBSEP order[j]])
				row = row " " (m == "" ? "?" : m)
			}
			print row
		}
	}' "$csv" >"$dat"
	chart=docs/bench-lb.png
	reps=$(awk -F, -v last="$last" 'NR > 1 && $2 == last && $4 > r { r = $4 } END { print r + 0 }' "$csv")
	cat >"$tmp/chart.gp" <<GP
set terminal pngcairo size 1000,440 font "DejaVu Sans,10"
set output "$root/$chart"
set termoption noenhanced
set datafile missing "?"
set title "L7 load balancers, $conns kept-alive connections: proxy on CPU $proxy_cpu; wrk -t1 and the upstream\n(http_hello) on CPU $client_cpu; medians of $reps runs, disturbed ones left out"
set ylabel "proxy CPU-µs per request (lower is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top left
set yrange [0:*]
set linetype 1 lc rgb "#7b1fa2"
set linetype 2 lc rgb "#2e7d32"
set linetype 3 lc rgb "#1565c0"
set linetype 4 lc rgb "#ef6c00"
set linetype 5 lc rgb "#9e9e9e"
plot for [i=2:6] "$dat" using i:xtic(1) title columnhead(i)
GP
	gnuplot "$tmp/chart.gp" || {
		echo "lb.sh: gnuplot failed for $chart" >&2
		exit 1
	}
else
	echo "lb.sh: gnuplot missing (apt-get install gnuplot-nox): no chart" >&2
fi

# ---- the section -------------------------------------------------------------
getppid_ns=$(syscall_ns "$tmp" || true)
nginx_version=$(nginx -v 2>&1 | sed -n 's/.*: nginx\//nginx /p' | head -n 1 || true)
haproxy_version=$(haproxy -v 2>/dev/null | awk 'NR == 1 { print "HAProxy " $3 }' || true)
section=$tmp/section
awk -F, -v csvname="$csvrel" -v last="$last" -v getppid="$getppid_ns" -v nv="$nginx_version" \
	-v hv="$haproxy_version" -v cpu="$(cpu_model)" -v chart="$chart" \
	-v skipped="$skipped" -v maxo="$max_other" "$awk_median"'
function name(p) { return p == "nginx" ? "nginx" : p == "haproxy" ? "HAProxy" : p == "floor" ? "floor (uring_proxy)" : p }
function load(k,    w) {
	split(k, w, SUBSEP)
	return (w[2] == 14 ? "14 B" : w[2] / 1024 " KiB") ", " (w[1] == "tls" ? "TLS" : "plain")
}
function cell(v, f) { return v == "" ? "–" : sprintf(f, v) }
# ratio r of coreio to the best peer, said plainly.
function verdict(r) {
	if (r == "") return "n/a"
	return fx(r) ": " (r < 0.995 ? "ahead" : r > 1.005 ? "**behind**" : "even")
}
# The median over rounds of p / the better peer of that round: steadier
# than a ratio of medians when the speed of the machine drifts between
# rounds (a round measures every proxy within a few minutes).
function paired(p, k,    r, b, list) {
	list = ""
	for (r = 1; r <= reps; r++) {
		if (!((p SUBSEP k SUBSEP r) in run)) continue
		b = ""
		if (("nginx" SUBSEP k SUBSEP r) in run) b = run["nginx" SUBSEP k SUBSEP r]
		if (("haproxy" SUBSEP k SUBSEP r) in run && (b == "" || run["haproxy" SUBSEP k SUBSEP r] + 0 < b + 0))
			b = run["haproxy" SUBSEP k SUBSEP r]
		if (b > 0) list = list " " run[p SUBSEP k SUBSEP r] / b
	}
	return median(list)
}
NR == 1 || $2 != last { next }
{
	k = $6 SUBSEP $7
	if (!(k in seen)) { seen[k]; order[++nk] = k }
	if (!($5 in has)) has[$5]
	# Medians over the undisturbed runs; over the disturbed ones only
	# when a proxy has no other on a workload.  The best run of all.
	key = $5 SUBSEP k
	if ($16 == 1) { key = "d" key; ndist[$5 SUBSEP k]++ }
	us[key] = us[key] " " $10
	rps[key] = rps[key] " " $9
	p99[key] = p99[key] " " $11
	util[key] = util[key] " " $12
	up[key] = up[key] " " $13
	all[$5 SUBSEP k] = all[$5 SUBSEP k] " " $10
	run[$5 SUBSEP k SUBSEP $4] = $10
	reps = $4 > reps ? $4 : reps
	if (!day) { day = $1; commit = $2; kernel = $3; conns = $8 }
	runs++; othsum += $14; dist += $16; retried += $15 > 1
}
END {
	for (key in ndist)
		if (!(key in us)) {
			us[key] = us["d" key]; rps[key] = rps["d" key]; p99[key] = p99["d" key]
			util[key] = util["d" key]; up[key] = up["d" key]
		}
	np = split("http_lb-uring http_lb-epoll nginx haproxy floor", pv, " ")
	print "## L7 load balancer"
	print ""
	printf "Measured %s, commit %s, Linux %s, %s; %d run%s of each proxy,\n", day, commit, kernel, cpu, reps, reps == 1 ? "" : "s"
	print "interleaved, the order rotating. `http_lb-*` is examples/http_lb on one"
	print "core (`--cores 1`, COREIO_BACKEND=uring or epoll); " nv ", one worker,"
	print "`proxy_pass` to an `upstream` block with `keepalive 64`, HTTP/1.1,"
	print "proxy buffering on; " hv ", `nbthread 1`, mode http,"
	print "`http-reuse always`; the floor is bench'"'"'s uring_proxy, an io_uring"
	print "relay with no runtime, an upstream connection per client and no"
	print "parsing (plain HTTP only). Each proxy is pinned to CPU 0 in front of the"
	print "same upstream, examples/http_hello on one core; the upstream and the"
	print "client, `wrk -t1`, share CPU 1. " conns " kept-alive connections; a 14-byte"
	print "response (`GET /`) and a 16 KiB one (`GET /bytes/16384`), in plain"
	print "HTTP and with TLS terminated at the proxy (TLS 1.3, AES-128-GCM, an"
	print "ECDSA P-256 certificate). The figure is the proxy'"'"'s CPU-µs per"
	print "request: its utime+stime (every thread, every process) over the"
	print "requests wrk counted. Reproduce with `make bench-lb`"
	print "(`bench/lb.sh build-bench`; LB_SECONDS, LB_REPEATS: see the script)."
	if (getppid != "") printf "A getppid system call took %s ns on this machine.\n", getppid
	if (skipped != "") printf "**Not measured in this run: %s** (LB_PROXIES).\n", skipped
	printf "Other work (other processes, the hypervisor) took %.0f%% of a pinned CPU\n", 100 * othsum / runs
	printf "on average; %d of %d runs were made again for taking more than %.0f%%", retried, runs, 100 * maxo
	if (dist) printf ",\n**and %d of them still did: this machine was busy during the run**.\n", dist
	else print "."
	print ""
	print "| Workload | http_lb-uring | http_lb-epoll | nginx | HAProxy | floor | uring / best peer | epoll / best peer | floor / best peer |"
	print "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for (i = 1; i <= nk; i++) {
		k = order[i]
		for (j = 1; j <= np; j++) {
			m[pv[j]] = median(us[pv[j] SUBSEP k])
			lo[pv[j]] = least(all[pv[j] SUBSEP k])
			nd[pv[j]] = ndist[pv[j] SUBSEP k] ? "*" : ""
		}
		best = ""; bname = ""; blo = ""
		if (m["nginx"] != "") { best = m["nginx"]; bname = "nginx" }
		if (m["haproxy"] != "" && (best == "" || m["haproxy"] + 0 < best + 0)) { best = m["haproxy"]; bname = "HAProxy" }
		if (lo["nginx"] != "") blo = lo["nginx"]
		if (lo["haproxy"] != "" && (blo == "" || lo["haproxy"] + 0 < blo + 0)) blo = lo["haproxy"]
		ru = paired("http_lb-uring", k)
		re = paired("http_lb-epoll", k)
		lu = blo > 0 && lo["http_lb-uring"] != "" ? fx(lo["http_lb-uring"] / blo) : "n/a"
		le = blo > 0 && lo["http_lb-epoll"] != "" ? fx(lo["http_lb-epoll"] / blo) : "n/a"
		rf = fx(paired("floor", k))
		printf "| %s | %s%s | %s%s | %s%s | %s%s | %s%s | %s | %s | %s |\n", load(k),
			cell(m["http_lb-uring"], "%.2f"), nd["http_lb-uring"],
			cell(m["http_lb-epoll"], "%.2f"), nd["http_lb-epoll"],
			cell(m["nginx"], "%.2f"), nd["nginx"], cell(m["haproxy"], "%.2f"), nd["haproxy"],
			cell(m["floor"], "%.2f"), nd["floor"],
			verdict(ru) (ru == "" ? "" : " vs " bname " (best runs " lu ")"),
			verdict(re) (re == "" ? "" : " vs " bname " (best runs " le ")"), rf
	}
	print ""
	print "Proxy CPU-µs per request, medians of the runs that other work left"
	print "alone; a * marks a median that leaves disturbed runs out (or is made"
	print "of them, when every run of that proxy and workload was)."
	print "The best peer is whichever of nginx and HAProxy spent less on that"
	print "workload in the median; a ratio is the median over rounds of each"
	print "round'"'"'s ratio to the better peer of that round. Below 1.00x coreio"
	print "spends less CPU per request than the best peer (ahead), above it more"
	print "(behind). In brackets, the ratio of the"
	print "best single runs (coreio'"'"'s over the better peer'"'"'s), disturbed or not:"
	print "where it disagrees with the medians, the difference is within the noise"
	print "of this machine. Floor / best peer: the relay'"'"'s cost over the best"
	print "peer'"'"'s, a bound below which no proxy'"'"'s ratio can go on this machine,"
	print "since any proxy makes at least its two receives and two sends."
	print ""
	print "| Workload | Proxy | req/s | p99 ms | proxy CPU busy | upstream CPU-µs/req |"
	print "| --- | --- | --- | --- | --- | --- |"
	for (i = 1; i <= nk; i++)
		for (j = 1; j <= np; j++) {
			p = pv[j]
			if (!(p in has) || median(rps[p SUBSEP order[i]]) == "") continue
			printf "| %s | %s | %s | %s | %s | %s |\n", load(order[i]), name(p),
				cell(median(rps[p SUBSEP order[i]]), "%.0f"),
				cell(median(p99[p SUBSEP order[i]]), "%.2f"),
				cell(median(util[p SUBSEP order[i]]) * 100, "%.0f%%"),
				cell(median(up[p SUBSEP order[i]]), "%.2f")
		}
	print ""
	print "Medians. Proxy CPU busy: the proxy'"'"'s CPU time over the measured"
	print "seconds (100% is all of CPU 0); below it, CPU 1 (wrk and the upstream)"
	print "sets the pace and req/s says more about the client than the proxy."
	print "Upstream CPU-µs/req: http_hello'"'"'s cost per request behind each proxy."
	if (chart != "") {
		print ""
		print "![proxy CPU-µs per request, four workloads, four proxies and the floor](" substr(chart, 6) ")"
	}
	print ""
	print "Raw figures, one line per run: [" csvname "](../" csvname ")."
}' "$csv" >"$section"
"$root/bench/doc-section.sh" lb "bench/lb.sh (make bench-lb)" "$section" "$doc" \
	"$root/bench/lb-notes.md"
cat "$section"
