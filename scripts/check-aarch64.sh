#!/bin/sh
# check-aarch64.sh - cross-compiles coreio for AArch64 (build-aarch64, with
# cmake/aarch64-linux-gnu.cmake) and runs every test program under
# qemu-user on the epoll backend.  Exits non-zero if any test fails.
#
# The cross build has no liburing (nor does qemu-user 7.2 have io_uring),
# so epoll is the backend tested; what this checks is the AArch64 code:
# switch_aarch64.S, the frame context.c builds for it, and the runtime
# on a weakly ordered, 64-bit ARM target.
#
# Tests that run the examples start them under qemu-aarch64 as well
# (COREIO_TEST_EXEC_WRAPPER, read by tests/example_util.h).
#
# qemu-user differs from a kernel in two ways the tests notice, and the
# script makes up for them per test (see qemu_env below):
#  - it accepts madvise(MADV_GUARD_INSTALL) but ignores it (qemu 7.2
#    reports success for any advice it does not pass through), so in the
#    default guard mode task stacks have no guard page at all.  Tests of
#    the overflow report use the mprotect guards, which qemu does emulate.
#  - it ignores the guest's setrlimit(RLIMIT_AS) (the limit would bind qemu
#    itself), so tests that run out of address space get the limit from
#    the shell, on the qemu process.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build-aarch64"
sysroot=/usr/aarch64-linux-gnu
jobs=$(nproc)

for tool in cmake aarch64-linux-gnu-gcc qemu-aarch64 timeout; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "check-aarch64: $tool not found (scripts/deps.sh installs it)" >&2
		exit 1
	fi
done

cmake -S "$top" -B "$build" -DCOREIO_WERROR=ON \
	-DCMAKE_TOOLCHAIN_FILE="$top/cmake/aarch64-linux-gnu.cmake" \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOREIO_WITH_LIBURING=OFF \
	-DCOREIO_BUILD_TESTS=ON >/dev/null
cmake --build "$build" -j"$jobs"

# COREIO_CONTEXT=auto must have picked the assembly switch: that is what
# this run is for.
if ! aarch64-linux-gnu-nm "$build/libcoreio.a" | grep -q ' cio__ctx_entry$'; then
	echo "check-aarch64: libcoreio.a lacks switch_aarch64.S (ucontext switch chosen?)" >&2
	exit 1
fi

# Extra environment and shell limits for one test under qemu (see above).
# With COREIO_TEST_QEMU, test_pool leaves out its fork after pool threads
# started (qemu-user 7.2 aborts in such a fork), test_file_server
# expects its server's fallback for a missing openat2 (qemu-user 7.2 has
# none), which refuses every symlink, and test_cores expects no group
# deadlock reported (the emulator's threads are threads detection cannot
# rule out).
qemu_env() {
	case "$1" in
	test_faults) echo "COREIO_STACK_GUARD=mprotect" ;;
	test_pool | test_file_server | test_cores) echo "COREIO_TEST_QEMU=1" ;;
	esac
}
qemu_ulimit() { # address-space limit in KiB, or nothing
	case "$1" in
	test_many) echo 4194304 ;; # room for its 100k stacks, not for 400k
	esac
}

unset COREIO_STACK_GUARD
logs="$build/qemu-logs"
rm -rf "$logs"
mkdir -p "$logs"
pass=0
failed=""
skipped=""
for exe in "$build"/tests/*; do
	if [ ! -f "$exe" ] || [ ! -x "$exe" ]; then
		continue
	fi
	name=$(basename "$exe")
	log="$logs/$name.log"
	start=$(date +%s)
	lim=$(qemu_ulimit "$name")
	# qemu_env prints NAME=value words; dash and bash both have ulimit -v.
	# shellcheck disable=SC2046,SC3045
	if ({ [ -z "$lim" ] || ulimit -v "$lim"; } &&
		exec env COREIO_BACKEND=epoll $(qemu_env "$name") \
			COREIO_TEST_EXEC_WRAPPER="qemu-aarch64 -L $sysroot" \
			timeout 300 qemu-aarch64 -L "$sysroot" "$exe") >"$log" 2>&1; then
		pass=$((pass + 1))
		echo "PASS  $name ($(($(date +%s) - start)) s)"
	else
		rc=$?
		if [ "$rc" -eq 77 ]; then # the CTest convention: skipped
			skipped="$skipped $name"
			echo "SKIP  $name: $(grep -m1 SKIP "$log" || tail -n 1 "$log")"
			continue
		fi
		failed="$failed $name"
		echo "FAIL  $name (exit $rc; last lines of $log:)"
		tail -n 20 "$log" | sed 's/^/      /'
	fi
done

if [ "$pass" -eq 0 ] && [ -z "$failed$skipped" ]; then
	echo "check-aarch64: no test programs in $build/tests" >&2
	exit 1
fi
if [ -n "$failed" ]; then
	echo "check-aarch64: FAILED:$failed ($pass passed${skipped:+, skipped:$skipped})" >&2
	exit 1
fi
echo "check-aarch64: $pass test programs passed under qemu-aarch64 (epoll)${skipped:+; skipped:$skipped}"
