#!/bin/sh
# check-install.sh - installs coreio into a scratch prefix and builds a
# program against it three ways: pkg-config (shared), pkg-config --static,
# and CMake's find_package(coreio).  Also checks that libcoreio.so exports
# cio_ symbols only.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"

cmake -S "$top" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
	-DCOREIO_BUILD_TESTS=OFF -DCOREIO_BUILD_EXAMPLES=OFF \
	-DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build "$work/build" -j"$(nproc)" >/dev/null
cmake --install "$work/build" >/dev/null

lib=$(find "$prefix" -name 'libcoreio.so.*.*' | head -n 1)
stray=$(nm -D --defined-only "$lib" | awk '$3 !~ /^(cio_|COREIO_)/ {print $3}')
if [ -n "$stray" ]; then
	echo "libcoreio.so exports non-cio_ symbols: $stray" >&2
	exit 1
fi

cat >"$work/app.c" <<'C'
#include <coreio.h>
#include <stdio.h>
static void *hello(void *arg)
{
	(void)arg;
	cio_sleep(CIO_MS);
	printf("installed coreio %s on %s\n", cio_version(), cio_backend_name());
	return NULL;
}
int main(void) { return cio_run(hello, NULL) != 0; }
C
export PKG_CONFIG_PATH="$(dirname "$(find "$prefix" -name coreio.pc)")"
cc -o "$work/app-shared" "$work/app.c" $(pkg-config --cflags --libs coreio) \
	-Wl,-rpath,"$(dirname "$lib")"
"$work/app-shared"
cc -static-libgcc -o "$work/app-static" "$work/app.c" \
	$(pkg-config --cflags coreio) "$(dirname "$lib")/libcoreio.a" \
	$(pkg-config --libs-only-other --static coreio) \
	$(pkg-config --libs --static liburing 2>/dev/null || true) \
	$(pkg-config --libs --static libcares 2>/dev/null || true) -lpthread
"$work/app-static"

mkdir -p "$work/cm"
cp "$work/app.c" "$work/cm/app.c"
cat >"$work/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(app C)
find_package(coreio 0.1 REQUIRED)
add_executable(app app.c)
target_link_libraries(app coreio::coreio)
add_executable(app_static app.c)
target_link_libraries(app_static coreio::coreio_static)
CM
cmake -S "$work/cm" -B "$work/cm/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cm/build" >/dev/null
"$work/cm/build/app"
"$work/cm/build/app_static"
echo "check-install: ok"
