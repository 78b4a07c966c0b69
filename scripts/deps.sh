#!/bin/sh
# deps.sh - installs, from Debian's packages, what building and testing
# coreio need, skipping what is already there; quiet and quick when all
# are present.
#
#   scripts/deps.sh          build and test (make check, make demo)
#   scripts/deps.sh bench    also the benchmarks' peers: libuv, tokio's
#                            crate sources with cargo and rustc to build
#                            them offline, gnuplot for the charts, fio,
#                            jq, HAProxy, nginx and wrk
set -eu
pkgs="build-essential cmake pkg-config clang liburing-dev valgrind
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
      libseccomp-dev libboost-context-dev linux-perf libclang-rt-14-dev llvm
      libssl-dev openssl libc-ares-dev dnsmasq-base
      node-llhttp curl python3-minimal wrk"
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
