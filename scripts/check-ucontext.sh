#!/bin/sh
# check-ucontext.sh - builds coreio with the portable context switch
# (COREIO_CONTEXT=ucontext, context_ucontext.c) in build-ucontext and runs
# the whole test suite on it.  That switch is the one CPUs without an
# assembly switch get; on x86-64 it is only ever built by request, so this
# is what keeps it working.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build-ucontext"
jobs=$(nproc)

cmake -S "$top" -B "$build" -DCOREIO_WERROR=ON -DCOREIO_CONTEXT=ucontext \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOREIO_BUILD_TESTS=ON >/dev/null
cmake --build "$build" -j"$jobs"

# cio__ctx_entry exists only in the assembly switches: its presence would
# mean the suite is about to test the wrong switch.
if nm "$build/libcoreio.a" | grep -q ' cio__ctx_entry$'; then
	echo "check-ucontext: libcoreio.a has the assembly switch, not ucontext" >&2
	exit 1
fi

cd "$build"
ctest --output-on-failure -j"$jobs"
