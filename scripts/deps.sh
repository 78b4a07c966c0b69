#!/bin/sh
# deps.sh - installs, from Debian's packages, what building and testing
# coreio need, skipping what is already there; quiet and quick when all
# are present.
#
#   scripts/deps.sh lib      building the library and the examples alone
#                            (make build, make demo, make install)
#   scripts/deps.sh          also the test suite's tools (make check):
#                            clang, valgrind, the aarch64 cross compiler
#                            and qemu, libseccomp, Boost.Context, perf,
#                            openssl, dnsmasq, curl, python3, wrk
#   scripts/deps.sh bench    also the benchmarks' peers: libuv, tokio's
#                            crate sources with cargo and rustc to build
#                            them offline, gnuplot for the charts, fio,
#                            jq, HAProxy and nginx
set -eu
pkgs="build-essential cmake pkg-config liburing-dev libssl-dev libc-ares-dev node-llhttp"
if [ "${1:-}" != lib ]; then
	pkgs="$pkgs clang valgrind gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
	      libseccomp-dev libboost-context-dev linux-perf libclang-rt-14-dev llvm
	      openssl dnsmasq-base curl python3-minimal wrk"
fi
if [ "${1:-}" = bench ]; then
	pkgs="$pkgs gnuplot-nox libuv1-dev librust-tokio-dev cargo rustc fio jq haproxy nginx-light"
fi
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps.sh: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: run as root (or install these yourself):$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
