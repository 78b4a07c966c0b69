#!/bin/sh
# bench-deps.sh - installs, from Debian's packages, what `make bench`
# needs beyond scripts/deps.sh: the peers (libuv; tokio's crate sources
# with cargo and rustc to build them offline), gnuplot for the charts
# and perf for the profile.  Quiet and quick when all are present.
set -eu
pkgs="gnuplot-nox libuv1-dev librust-tokio-dev cargo rustc linux-perf
      liburing-dev pkg-config cmake build-essential"
# make bench-files (fio, jq) and make bench-proxy (haproxy):
pkgs="$pkgs fio jq haproxy"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "bench-deps.sh: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "bench-deps.sh: run as root (or install these yourself):$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
