# Makefile - wraps CMake; the two commands README.md starts with.
#   make demo    set up, build Release, run the demo and print its figures
#   make check   set up, build, and run the whole suite: every test on every
#                backend, with gcc and clang, under ASan+UBSan, with the
#                ucontext switch, on aarch64 under qemu-user, and as macOS
#                and the BSDs run it (POSIX paths of the platform shims,
#                kqueue over the kevent emulation); the context
#                switches assembled for macOS (Mach-O); and the sampled
#                fault-injection sweep (check-faults, about 3 minutes);
#                and a short run of each fuzz target (check-fuzz)
#   make fuzz    the fuzz targets for FUZZ_SECONDS (300) each
#   make check-stalls  the ASan suite under repeated cgroup freezes (root)
#   make soak    echo and proxy traffic with churn and misbehaving peers
#                for SOAK_SECONDS (600), failing on RSS or fd growth
JOBS ?= $(shell nproc)
CMAKE_CFG = cmake -S . -DCOREIO_BUILD_EXAMPLES=ON
# The suite's builds: a warning is an error there (a user's build keeps
# going: CMake's COREIO_WERROR is off by default).
CHECK_CFG = $(CMAKE_CFG) -DCOREIO_WERROR=ON
CTEST = ctest --output-on-failure -j$(JOBS)

.PHONY: all deps build demo check check-gcc check-layers check-clang check-asan \
	check-tsan check-ucontext check-aarch64 check-apple-asm check-install check-valgrind \
	check-portable check-faults check-faults-full check-fuzz check-stalls fuzz fuzz-build soak bench-core bench-net bench-cores \
	bench bench-quick bench-seam bench-streams bench-tls bench-http bench-lb bench-idle bench-net-build bench-files \
	bench-proxy install clean

all: build

deps:
	@scripts/deps.sh

# The library's own build needs less than the suite: a user's `make
# install` pulls in no test or benchmark tools.
build:
	@scripts/deps.sh lib
	$(CMAKE_CFG) -B build -DCMAKE_BUILD_TYPE=Release -DCOREIO_BUILD_TESTS=OFF >/dev/null
	cmake --build build -j$(JOBS)

# The task demo, then examples/echo_server on each backend under
# bench/loadgen (both built by `build`, with the examples).
demo: build
	scripts/demo.sh build

check: deps check-gcc check-layers check-clang check-asan check-tsan check-ucontext check-aarch64 \
	check-apple-asm check-install check-valgrind check-portable check-faults check-fuzz
	@echo "make check: all suites passed"

check-gcc:
	CC=gcc $(CHECK_CFG) -B build-gcc -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build build-gcc -j$(JOBS)
	cd build-gcc && $(CTEST)

# No layer calls one above it: nm over the objects of build-gcc.
check-layers: check-gcc
	scripts/check-layers.sh build-gcc

check-clang:
	CC=clang $(CHECK_CFG) -B build-clang -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-clang -j$(JOBS)
	cd build-clang && $(CTEST)

# The sanitizer builds (asan, tsan, portable) are COREIO_TESTING builds:
# fail points that stay idle (no COREIO_FAIL), and the library's test
# knobs, which the cases of test_fs and test_pool that need them use.
# The other builds are the library as shipped; those cases are left out.
check-asan:
	CC=gcc $(CHECK_CFG) -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCOREIO_TESTING=ON \
		-DCOREIO_SANITIZE=address,undefined >/dev/null
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(CTEST)

# ThreadSanitizer on the tests whose code crosses threads: cores, the
# blocking pool, cross-core channels.  Each task is a TSan fiber of its own
# (src/platform/fiber.h); any report fails the test (halt_on_error).
check-tsan:
	CC=clang $(CHECK_CFG) -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DCOREIO_TESTING=ON \
		-DCOREIO_SANITIZE=thread >/dev/null
	cmake --build build-tsan -j$(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		$(CTEST) -R '^test_(cores|pool|xchan|sync)\.'

check-ucontext:
	scripts/check-ucontext.sh

# What macOS and the BSDs run, built on Linux: the POSIX paths of
# src/platform/ (COREIO_PORTABLE, no io_uring) and the kqueue backend over
# the kevent emulation of tests/kevent, under ASan+UBSan.  Runs the whole
# suite on each backend of PORTABLE_BACKENDS (epoll there has the POSIX
# paths too), test_kevent (the emulation's own test) and the layering check.
PORTABLE_BACKENDS ?= epoll kqueue
PORTABLE_CFG ?= -DCOREIO_PORTABLE=ON -DCOREIO_KQUEUE_EMULATION=ON \
	-DCOREIO_SANITIZE=address,undefined -DCOREIO_TESTING=ON
empty :=
space := $(empty) $(empty)
comma := ,
check-portable:
	CC=gcc $(CHECK_CFG) -B build-portable -DCMAKE_BUILD_TYPE=Debug $(PORTABLE_CFG) >/dev/null
	cmake --build build-portable -j$(JOBS)
	scripts/check-layers.sh build-portable
	# This build has no io_uring: what CI requires of it is what it has.
	cd build-portable && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		COREIO_REQUIRE_BACKENDS=$${COREIO_REQUIRE_BACKENDS:+$(subst $(space),$(comma),$(strip $(PORTABLE_BACKENDS)))} \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(CTEST) -R '\.($(subst $(space),|,$(strip $(PORTABLE_BACKENDS))))$$'

# Fault injection (src/platform/fail.h): test_task, test_sync, test_net,
# test_net_misc, test_stream, test_fs and test_serve on each backend with one failure
# injected at a time, of every kind of fail point, in a COREIO_TESTING
# ASan+UBSan build of its own (build-faults); fails on a crash, a hang or
# a sanitizer report.  check-faults samples which call fails (a few
# minutes); check-faults-full fails each call in turn (hours).  See
# scripts/check-faults.sh.
# The sweep fails the runtime's own set-up too, which is no missing
# backend: COREIO_REQUIRE_BACKENDS is left out of it.
check-faults:
	env -u COREIO_REQUIRE_BACKENDS FAULTS_JOBS=$(JOBS) scripts/check-faults.sh

check-faults-full:
	env -u COREIO_REQUIRE_BACKENDS FAULTS_JOBS=$(JOBS) scripts/check-faults.sh full

check-aarch64:
	scripts/check-aarch64.sh

# libFuzzer targets (tests/fuzz: the address parser, a stream's line
# reader, the HTTP server and client, TLS on a fuzzed peer) in a clang
# build of their own, with coverage, ASan and UBSan (build-fuzz).
# scripts/fuzz.sh runs each over its seed corpus (tests/fuzz/corpus/
# <target>, the regression inputs), then fuzzes it; any crash, leak or report fails the target.
#   make fuzz         FUZZ_SECONDS (300) of fuzzing per target
#   make check-fuzz   FUZZ_CHECK_SECONDS (15) per target, in make check
FUZZ_SECONDS ?= 300
FUZZ_CHECK_SECONDS ?= 15
fuzz-build: deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCOREIO_FUZZ=ON -DCOREIO_WERROR=ON \
		-DCOREIO_BUILD_TESTS=OFF -DCOREIO_BUILD_EXAMPLES=OFF >/dev/null
	cmake --build build-fuzz -j$(JOBS) --target fuzz_addr fuzz_stream fuzz_http fuzz_http_client fuzz_tls

fuzz: fuzz-build
	scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

check-fuzz: fuzz-build
	scripts/fuzz.sh build-fuzz $(FUZZ_CHECK_SECONDS)

# The context switches assembled as Mach-O for arm64 and x86-64 macOS:
# their symbols, and the same machine code as on ELF.  Nothing runs them.
check-apple-asm:
	scripts/check-apple-asm.sh

# Task code under Valgrind (stacks are registered with it): memcheck with
# leak checking.  On epoll only: Valgrind 3.19 does not follow io_uring
# waits (a wait with a timeout stalls under it); ASan covers io_uring.
# test_switch is left out: Valgrind does not model FP rounding modes,
# which that test checks.
VALGRIND_TESTS = test_task test_cancel test_sync test_net_misc test_splice test_stream
check-valgrind: check-gcc
	@for t in $(VALGRIND_TESTS); do for b in epoll; do \
		echo "valgrind $$t ($$b)"; \
		COREIO_BACKEND=$$b valgrind -q --error-exitcode=9 --leak-check=full \
			--errors-for-leak-kinds=definite build-gcc/tests/$$t >/dev/null 2>build-gcc/valgrind-$$t-$$b.log \
		|| { st=$$?; [ $$st = 77 ] && continue; cat build-gcc/valgrind-$$t-$$b.log; exit 1; }; \
	done; done

check-install:
	scripts/check-install.sh

# Benchmarks: their own Release build (-O2, as the figures in
# docs/benchmarks.md are), with the examples for the network benchmark's
# echo server.  The commit, marked -dirty when the tree has changes, goes
# into every result line.
BENCH_BUILD ?= build-bench
BENCH_CFG = cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release \
		"-DCMAKE_C_FLAGS_RELEASE=-O2 -DNDEBUG" \
		"-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
		-DCOREIO_BUILD_BENCH=ON -DCOREIO_BUILD_TESTS=OFF \
		-DCOREIO_BUILD_EXAMPLES=ON \
		-DCOREIO_BENCH_COMMIT=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$$(git diff --quiet HEAD 2>/dev/null || echo -dirty) \
		>/dev/null

# Core microbenchmarks: bench/core.sh runs them pinned and rewrites the
# Core section of docs/benchmarks.md.
bench-core: deps
	$(BENCH_CFG)
	cmake --build $(BENCH_BUILD) -j$(JOBS)
	bench/core.sh $(BENCH_BUILD)

# Network benchmark: every echo server of bench/servers.txt (coreio on
# io_uring and on epoll; raw epoll, libuv and tokio peers) pinned to CPU 0
# under bench/loadgen on CPU 1.  bench/net.sh (NET_* variables: see there)
# writes bench/results/<date>-<name>.csv, docs/bench-net-*.png and the
# Network section of docs/benchmarks.md; bench/profile.sh the section on
# where the server's time goes.  scripts/deps.sh bench installs the peers'
# packages (libuv, tokio's crate sources, cargo, gnuplot); the tokio peer
# is built offline into $(BENCH_BUILD)/tokio.
#   make bench        100 B and 1 KiB; 1, 16, 64, 256, 1000 connections;
#                     3 runs of each (about 12 minutes); then bench-files,
#                     bench-proxy, bench-streams and bench-lb below (about
#                     22 minutes in all)
#   make bench-quick  100 B; 16 and 256 connections; 1 short run of each
#   make bench-net    the same as make bench
bench-net-build: deps
	@scripts/deps.sh bench
	$(BENCH_CFG)
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target echo_server bench_net_tools
	bench/build-tokio.sh $(BENCH_BUILD) >/dev/null

# The driver's cost: echo_server of this tree on each backend (kqueue over
# its emulation) against an older commit's and the raw epoll server;
# rewrites the Driver section of docs/benchmarks.md (SEAM_*: see there).
bench-seam: bench-net-build
	bench/seam.sh $(BENCH_BUILD)

# What a stream costs over the raw fd: echo_server with and without
# --stream; rewrites the Streams section of docs/benchmarks.md.
bench-streams: bench-net-build
	bench/streams.sh $(BENCH_BUILD)

# TLS termination: tcp_proxy --tls-cert against HAProxy's `bind ... ssl`,
# kept-alive connections and a handshake per request; rewrites the TLS
# section of docs/benchmarks.md.
bench-tls: bench-net-build
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target tls_load tcp_proxy
	bench/tls.sh $(BENCH_BUILD)

# The smallest keep-alive HTTP server against nginx under wrk; rewrites
# the HTTP section of docs/benchmarks.md.
bench-http: bench-net-build
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target http_hello
	bench/http.sh $(BENCH_BUILD)
	$(MAKE) bench-tls

# L7 load balancers: examples/http_lb (io_uring and epoll) against nginx
# and HAProxy in mode http, each on CPU 0 in front of http_hello, with wrk
# on CPU 1; small and 16 KiB responses, plain and TLS.  bench/lb.sh (LB_*
# variables: see there) appends to bench/results/<date>-lb.csv and writes
# the L7 load balancer section of docs/benchmarks.md; about five minutes.
bench-lb: bench-net-build
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target http_hello http_lb
	bench/lb.sh $(BENCH_BUILD)

# What an idle connection costs: 15,000 connections echoed once (or
# answered one keep-alive GET), then waiting; the server's RSS growth per
# connection, coreio's echo_server and http_hello (io_uring and epoll)
# against runtime-free epoll and io_uring loops, libuv and nginx.
bench-idle: bench-net-build
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target http_hello http_lb
	bench/idle.sh $(BENCH_BUILD)

# The whole suite of peer comparisons: the network matrix and its
# profile, then file reads against fio, the proxy against HAProxy, and
# the L7 load balancer against nginx and HAProxy.
bench: bench-net-build
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target bench_fileio tcp_proxy http_hello http_lb
	bench/net.sh $(BENCH_BUILD)
	PROF_COMMAND="make bench" bench/profile.sh $(BENCH_BUILD)
	bench/files.sh $(BENCH_BUILD)
	bench/proxy.sh $(BENCH_BUILD)
	bench/streams.sh $(BENCH_BUILD)
	bench/lb.sh $(BENCH_BUILD)
	bench/idle.sh $(BENCH_BUILD)

bench-quick: bench-net-build
	NET_SIZES=100 NET_CONNS="16 256" NET_REPEATS=1 NET_WARMUP=0.5 \
	NET_SECONDS=1.5 NET_NAME=net-quick NET_LABEL="quick matrix" \
	NET_COMMAND="make bench-quick" bench/net.sh $(BENCH_BUILD)
	PROF_SECONDS=2 PROF_COMMAND="make bench-quick" bench/profile.sh $(BENCH_BUILD)

bench-net: bench

# File reads: 4 KiB random reads at queue depth 32 over a 1 GiB file in
# $(BENCH_BUILD) (page cache and O_DIRECT), coreio's bench/fileio on
# io_uring and on epoll against fio's io_uring engine, pinned to CPU 0.
# bench/files.sh (FILES_* variables: see there) appends to
# bench/results/<date>-files.csv and writes the Files section of
# docs/benchmarks.md; about a minute and a half.
bench-files: deps
	@scripts/deps.sh bench
	$(BENCH_CFG)
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target bench_fileio
	bench/files.sh $(BENCH_BUILD)

# TCP proxies: examples/tcp_proxy (one core, io_uring and epoll) against
# HAProxy (one thread, with and without splicing) on CPU 0, with
# bench/loadgen and the upstream echo server on CPU 1; 64 connections,
# 100 B and 16 KiB.  bench/proxy.sh (PROXY_* variables: see there) appends
# to bench/results/<date>-proxy.csv and writes the Proxy section of
# docs/benchmarks.md; about a minute and a quarter.
bench-proxy: deps
	@scripts/deps.sh bench
	$(BENCH_CFG)
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target tcp_proxy loadgen epoll_echo
	bench/proxy.sh $(BENCH_BUILD)

# Cross-core calls against an eventfd ping-pong between two threads;
# bench/cores.sh rewrites the Cores section of docs/benchmarks.md.
bench-cores: deps
	$(BENCH_CFG)
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target bench_cores
	bench/cores.sh $(BENCH_BUILD)

# A long run of echo and proxy traffic with churning and misbehaving
# connections against the Release examples, failing when the servers'
# RSS or fd count grows (scripts/soak.sh; SOAK_SECONDS, default 600).
# Not part of make check.
soak: build
	nice -n 10 scripts/soak.sh build

# The ASan suite while a cgroup freezer stalls it again and again
# (scripts/check-stalls.sh: root, cgroup v2 or the v1 freezer).  Not part
# of make check.
check-stalls: check-asan
	scripts/check-stalls.sh build-asan

install: build
	cmake --install build
	ldconfig

clean:
	rm -rf build build-*
