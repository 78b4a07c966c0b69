# lib.sh - shell functions the bench scripts share; sourced, not run.

# Awk functions for the reports: median(list), the median of a
# space-separated list of numbers ("" for an empty one), least() and fx()
# below.  Put them before an awk program:
#   awk "$awk_median"'{ ... median(x) ... }'
awk_median='function median(list,    n, v, i, j, t) {
	n = split(list, v, " ")
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	if (n == 0) return ""
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
# least(list): the smallest of a space-separated list, "" for none (the
# best run); fx(r): a ratio as "0.93x", "n/a" for none.
function least(list,    n, v, i, m) {
	n = split(list, v, " ")
	for (i = 1; i <= n; i++)
		if (i == 1 || v[i] + 0 < m + 0) m = v[i]
	return n ? m : ""
}
function fx(r) { return r == "" ? "n/a" : sprintf("%.2fx", r) }
'

# rotate N WORD...: the words, starting from the (N mod count)-th, so that
# repeats of a benchmark take turns in an order that changes each time and
# no one always goes first.
rotate() {
	k=$1
	shift
	[ $# -gt 0 ] || return 0
	k=$((k % $#))
	while [ "$k" -gt 0 ]; do
		first=$1
		shift
		set -- "$@" "$first"
		k=$((k - 1))
	done
	echo "$@"
}

# The CPU's model name, for the machine line of a report.
cpu_model() {
	sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1
}

# syscall_ns DIR: what a getppid system call costs on CPU 0, in ns (a
# million of them timed), built in DIR; fails without a compiler.  Tells
# a machine with page-table isolation (~1.5 us) from one without (~0.1 us).
syscall_ns() {
	cat >"$1/getppid.c" <<'EOF'
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int main(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 1000000; i++)
		syscall(SYS_getppid);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.0f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e6);
	return 0;
}
EOF
	cc -O2 -o "$1/getppid" "$1/getppid.c" 2>/dev/null && taskset -c 0 "$1/getppid"
}

# A free loopback port: the kernel's pick, released at once.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + $$ % 20000 + $1))
}

# Waits up to 5 s for a listener on 127.0.0.1:$1.
wait_port() {
	i=0
	while [ $i -lt 100 ]; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		# /dev/tcp is bash's; with a plain sh, ask ss.
		ss -ltn "sport = :$1" 2>/dev/null | grep -q LISTEN && return 0
		sleep 0.05
		i=$((i + 1))
	done
	echo "nothing listens on port $1" >&2
	return 1
}

# What the proxy benchmarks (proxy.sh, tls.sh) share.  proxy_setup NAME
# TARGET: HAProxy's path in $haproxy (or a message naming TARGET, which
# installs it), two CPUs checked, a work directory $tmp removed at exit
# with every process in $pids.
proxy_setup() {
	haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
	[ -x "$haproxy" ] || {
		echo "$1: haproxy missing; run scripts/deps.sh bench ($2 does)" >&2
		exit 1
	}
	[ "$(nproc)" -ge 2 ] || {
		echo "$1: needs two CPUs (proxy on 0, client and upstream on 1)" >&2
		exit 1
	}
	tmp=$(mktemp -d)
	pids=""
	trap proxy_cleanup EXIT INT TERM
}

proxy_cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}

# start_upstream ECHO_BIN CPU: the echo server behind the proxies, on a
# free port ($up_port).
start_upstream() {
	up_port=$(free_port 1)
	taskset -c "$2" "$1" "$up_port" 127.0.0.1 >"$tmp/echo.log" 2>&1 &
	pids="$pids $!"
	wait_port "$up_port"
}

# haproxy_head: HAProxy's global and defaults sections: one thread, mode
# tcp, no logging, generous timeouts, maxconn well above the connections.
haproxy_head() {
	printf 'global\n\tnbthread 1\n\tmaxconn 4096\ndefaults\n\tmode tcp\n'
	printf '\tmaxconn 4096\n\ttimeout connect 5s\n\ttimeout client 60s\n'
	printf '\ttimeout server 60s\n'
}

# proxy_started PORT: right after starting a proxy in the background
# (its output in $tmp/proxy.log): its pid in $proxy_pid, once it listens.
proxy_started() {
	proxy_pid=$!
	wait_port "$1" || {
		cat "$tmp/proxy.log" >&2
		exit 1
	}
}

stop_proxy() {
	kill "$proxy_pid" 2>/dev/null || true
	wait "$proxy_pid" 2>/dev/null || true
}
