# aarch64-linux-gnu.cmake - CMake toolchain file: cross-compiles coreio for
# AArch64 Linux with Debian's gcc-aarch64-linux-gnu and libc6-dev-arm64-cross.
# Tests run under qemu-user (scripts/check-aarch64.sh).
#
#   cmake -S . -B build-aarch64 \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#     -DCOREIO_WITH_LIBURING=OFF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64) # selects switch_aarch64.S

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)

# Headers and libraries from the cross sysroot only; programs (pkg-config,
# the emulator) from the build machine.
set(COREIO_AARCH64_SYSROOT /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH ${COREIO_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The host pkg-config would otherwise hand out the x86-64 liburing: look
# only where arm64 .pc files live (none, unless liburing-dev:arm64 is
# installed), so that a build with COREIO_WITH_LIBURING=ON falls back to
# epoll with a warning instead of failing to link.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:${COREIO_AARCH64_SYSROOT}/lib/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# CTest (and add_custom_command) run target programs through qemu; -L points
# it at the arm64 dynamic loader and libc.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L ${COREIO_AARCH64_SYSROOT})
