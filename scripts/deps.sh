#!/bin/sh
# deps.sh - installs, from Debian's packages, what building, testing and
# benchmarking coreio need, skipping what is already there.
set -eu
pkgs="build-essential cmake pkg-config clang liburing-dev valgrind
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
      libseccomp-dev libboost-context-dev linux-perf libclang-rt-14-dev"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: run as root (or install these yourself):$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
