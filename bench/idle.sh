#!/bin/sh
# idle.sh - what an idle connection costs an echo server and an HTTP
# server: IDLE_CONNS connections (default 15000), each echoed once (or
# answered one keep-alive GET) and then left waiting, and the growth of
# the server's resident memory divided by them.  Each server runs alone
# on CPU 0; the client (Python, one socket per connection) on CPU 1.
#
#   bench/idle.sh [BUILD_DIR]      default build-bench
#   IDLE_ONLY=PATTERN              only the servers whose name matches
#                                  (a shell pattern: "http_hello*")
#
# The growth is also sampled at each sixth of the connections, and, for
# a run of every server, drawn against the connection count (gnuplot)
# into docs/bench-idle.png.
#
# Prints one line per server: NAME, connections, RSS before and after
# (KiB), and KiB per idle connection.  The coreio servers run on io_uring
# and on epoll: idle connections that hold no task (the default), a task
# per connection receiving into lent buffers (--task) and into its own
# (--own-buf); the peers are bench/peers/epoll_echo (no runtime, a
# buffer per connection), bench/peers/uring_echo (no runtime, a multishot
# receive into a ring of provided buffers) and libuv's where built.
# HTTP: examples/http_hello by turns (the default: a kept-alive
# connection holds no task) and with --task, against nginx (one worker,
# `return 200`, keep-alive); examples/http_lb the same two ways, in front
# of an http_hello.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
conns=${IDLE_CONNS:-15000}
port=${IDLE_PORT:-21000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The fds a server and the client need: as many as the hard limit allows.
ulimit -n "$(ulimit -H -n)"

cat >"$work/client.py" <<'PY'
import socket, sys, time
port, n, proto = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
steps = {n * k // 6 for k in range(1, 7)}
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if proto == "echo":
        s.sendall(b"x")
        if s.recv(1) != b"x":
            sys.exit("no echo")
    else:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while not got.endswith(b"Hello, world!\n"):
            b = s.recv(4096)
            if not b:
                sys.exit("no response")
            got += b
    socks.append(s)
    if i + 1 in steps and i + 1 < n:
        print("at", i + 1, flush=True)  # then waits to be measured
        sys.stdin.readline()
print("idle", flush=True)
sys.stdin.read()  # until the script is done measuring
PY

rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }

nginx_conf() { # port
	cat <<EOF2
worker_processes 1;
worker_rlimit_nofile $((conns + 1000));
daemon off;
error_log $work/nginx-error.log;
pid $work/nginx.pid;
events { worker_connections $((conns + 500)); }
http {
	access_log off;
	keepalive_requests 100000000;
	keepalive_timeout 600s;
	client_body_temp_path $work;
	proxy_temp_path $work;
	fastcgi_temp_path $work;
	uwsgi_temp_path $work;
	scgi_temp_path $work;
	server {
		listen 127.0.0.1:$1;
		location / { return 200 "Hello, world!\n"; }
	}
}
EOF2
}

# NAME PROTO COMMAND...: @PORT@ and @BUILD@ in COMMAND replaced; nginx
# is measured in its worker process.
measure() {
	name=$1 proto=$2
	shift 2
	# shellcheck disable=SC2254
	case $name in ${IDLE_ONLY:-*}) ;; *) return 0 ;; esac
	port=$((port + 1))
	log=$work/$name.log
	if [ "$1" = nginx ]; then
		nginx_conf "$port" >"$work/nginx.conf"
		taskset -c 0 nginx -p "$work" -c "$work/nginx.conf" >"$log" 2>&1 &
	else
		# shellcheck disable=SC2046
		taskset -c 0 $(echo "$@" | sed "s/@PORT@/$port/g; s|@BUILD@|$build|g") >"$log" 2>&1 &
	fi
	pid=$!
	tries=0
	until grep -q "listening on" "$log" 2>/dev/null ||
		{ [ "$1" = nginx ] && python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null; }; do
		tries=$((tries + 1))
		[ $tries -lt 200 ] || { echo "$name: did not listen" >&2; kill "$pid"; return 0; }
		sleep 0.05
	done
	sleep 0.2
	server=$pid
	[ "$1" = nginx ] && server=$(pgrep -P "$pid" | head -n 1)
	before=$(rss "$server")
	mkfifo "$work/hold"
	taskset -c 1 python3 "$work/client.py" "$port" "$conns" "$proto" <"$work/hold" >"$work/client.out" &
	client=$!
	exec 9>"$work/hold"
	echo "$name 0 0" >>"$work/curve"
	for k in 1 2 3 4 5; do
		at=$((conns * k / 6))
		until grep -q "^at $at\$" "$work/client.out" 2>/dev/null; do
			kill -0 "$client" 2>/dev/null || break 2
			sleep 0.05
		done
		sleep 0.3
		echo "$name $at $(($(rss "$server") - before))" >>"$work/curve"
		echo >&9
	done
	tries=0
	until grep -q idle "$work/client.out" 2>/dev/null; do
		tries=$((tries + 1))
		kill -0 "$client" 2>/dev/null || { echo "$name: client failed" >&2; break; }
		[ $tries -lt 1200 ] || { echo "$name: client too slow" >&2; break; }
		sleep 0.05
	done
	sleep 0.5
	after=$(rss "$server")
	echo "$name $conns $((after - before))" >>"$work/curve"
	exec 9>&-
	wait "$client" || true
	rm -f "$work/hold"
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	awk -v n="$name" -v c="$conns" -v a="$before" -v b="$after" \
		'BEGIN { printf "%-22s %6d conns  RSS %7d -> %7d KiB  %5.2f KiB/conn\n", n, c, a, b, (b - a) / c }'
}

E="@BUILD@/examples/echo_server --cores 1 127.0.0.1:@PORT@"
for be in uring epoll; do
	measure coreio-$be-idle echo env COREIO_BACKEND=$be $E
	measure coreio-$be-task echo env COREIO_BACKEND=$be $E --task
	measure coreio-$be-own echo env COREIO_BACKEND=$be $E --own-buf
done
measure epoll echo "@BUILD@/bench/epoll_echo @PORT@ 127.0.0.1"
[ -x "$build/bench/uring_echo" ] && measure uring echo "@BUILD@/bench/uring_echo @PORT@ 127.0.0.1"
[ -x "$build/bench/uv_echo" ] && measure libuv echo "@BUILD@/bench/uv_echo @PORT@ 127.0.0.1"
H="@BUILD@/examples/http_hello --cores 1 127.0.0.1:@PORT@"
for be in uring epoll; do
	measure http_hello-$be-turns http env COREIO_BACKEND=$be $H
	measure http_hello-$be-task http env COREIO_BACKEND=$be $H --task
done
command -v nginx >/dev/null && measure nginx http nginx
# examples/http_lb in front of an http_hello of its own (on CPU 1, with
# the client): what a client's idle connection costs a proxy.
if [ -x "$build/examples/http_lb" ]; then
	up=$((port + 500))
	taskset -c 1 "$build/examples/http_hello" --cores 1 "127.0.0.1:$up" >"$work/up.log" 2>&1 &
	upstream=$!
	L="@BUILD@/examples/http_lb --cores 1 --listen 127.0.0.1:@PORT@ --upstream 127.0.0.1:$up"
	for be in uring epoll; do
		measure http_lb-$be-turns http env COREIO_BACKEND=$be $L
		measure http_lb-$be-task http env COREIO_BACKEND=$be $L --task
	done
	kill "$upstream"
	wait "$upstream" 2>/dev/null || true
fi

# RSS growth against connections, a line a server (not for a partial run).
if [ -z "${IDLE_ONLY:-}" ] && command -v gnuplot >/dev/null 2>&1; then
	awk '{ if (!($1 in seen)) { seen[$1]; if (n++) print "\n"; print "\"" $1 "\"" }
	       print $2, $3 / 1024 }' "$work/curve" >"$work/curve.dat"
	cat >"$work/chart.gp" <<GP
set terminal pngcairo size 1000,520 font "DejaVu Sans,10"
set output "$root/docs/bench-idle.png"
set termoption noenhanced
set title "Idle connections on one core: server RSS growth as connections are opened and left waiting\n(echo servers: one message each; HTTP servers: one keep-alive GET each)"
set xlabel "idle connections"
set ylabel "RSS growth, MiB (lower is better)"
set grid
set key outside right top
set yrange [0:*]
plot for [i=0:*] "$work/curve.dat" index i using 1:2 with linespoints title columnheader(1)
GP
	gnuplot "$work/chart.gp" || echo "idle.sh: gnuplot failed" >&2
fi
exit 0
