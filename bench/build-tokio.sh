#!/bin/sh
# build-tokio.sh - builds the tokio peer (bench/peers/tokio_echo) offline,
# against the crate sources Debian's librust-* packages install under
# /usr/share/cargo/registry, into BUILD_DIR/tokio (CARGO_TARGET_DIR),
# leaving the source tree and ~/.cargo alone.  Prints the path of the
# binary.
#
#   bench/build-tokio.sh [BUILD_DIR]        default build-bench
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac
registry=/usr/share/cargo/registry
[ -d "$registry" ] || {
	echo "build-tokio.sh: $registry missing (apt-get install librust-tokio-dev)" >&2
	exit 1
}
out=$build/tokio
mkdir -p "$out/cargo-home"
# A cargo home of our own, whose config replaces crates.io with Debian's
# directory of crate sources.
cat >"$out/cargo-home/config.toml" <<CFG
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "$registry"

[net]
offline = true
CFG
# The crate is copied there too, so that Cargo.lock (which records the
# tokio version used) lands in the build directory.
mkdir -p "$out/crate"
cp "$root/bench/peers/tokio_echo/Cargo.toml" "$out/crate/"
rm -rf "$out/crate/src"
cp -R "$root/bench/peers/tokio_echo/src" "$out/crate/src"
# Debian's cargo and rustc, whatever else is on PATH (rustup's, say):
# the toolchain the crate sources were packaged for.
cargo=/usr/bin/cargo rustc=/usr/bin/rustc
[ -x $cargo ] && [ -x $rustc ] || {
	echo "build-tokio.sh: $cargo or $rustc missing (apt-get install cargo rustc)" >&2
	exit 1
}
CARGO_HOME=$out/cargo-home CARGO_TARGET_DIR=$out RUSTC=$rustc \
	$cargo build --offline --release --quiet \
	--manifest-path "$out/crate/Cargo.toml" >&2 || {
	echo "build-tokio.sh: cargo build failed" >&2
	exit 1
}
echo "$out/release/tokio_echo"
