# net_tools.cmake - the network benchmark's own programs: the load
# generator and the peers it measures coreio against that are in C: a
# raw epoll echo server and, where libuv is installed, a libuv one.
# Plain C, independent of coreio (neither links it), so that they are
# peers rather than parts of what they measure.  Included from
# examples/CMakeLists.txt (`make demo` drives the echo example with the
# load generator) and from bench/CMakeLists.txt (`make bench-net`);
# whichever comes first defines them, into <build>/bench/.
include_guard(GLOBAL)

# Which commit the numbers belong to: the bench build passes it; else
# ask git once.
set(net_commit "${COREIO_BENCH_COMMIT}")
if(NOT net_commit)
  execute_process(COMMAND git rev-parse --short HEAD
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    OUTPUT_VARIABLE net_commit OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_QUIET)
  if(NOT net_commit)
    set(net_commit unknown)
  endif()
endif()

add_executable(loadgen ${PROJECT_SOURCE_DIR}/bench/loadgen.c)
target_compile_definitions(loadgen PRIVATE COREIO_BENCH_COMMIT="${net_commit}")
target_link_libraries(loadgen PRIVATE m)
# Its io_uring client (--client uring) where liburing is: the same one
# the io_uring backend uses (found by the top-level CMakeLists.txt).
if(have_liburing)
  target_compile_definitions(loadgen PRIVATE LOADGEN_HAVE_LIBURING)
  target_link_libraries(loadgen PRIVATE PkgConfig::LIBURING)
endif()

add_executable(epoll_echo ${PROJECT_SOURCE_DIR}/bench/peers/epoll_echo.c)
set(net_tools loadgen epoll_echo)
# The runtime-free io_uring peers (multishot receive into a buffer ring),
# where liburing is: the echo (and HTTP) server and the relay proxy.
if(have_liburing)
  foreach(peer uring_echo uring_proxy)
    add_executable(${peer} ${PROJECT_SOURCE_DIR}/bench/peers/${peer}.c)
    target_link_libraries(${peer} PRIVATE PkgConfig::LIBURING)
    list(APPEND net_tools ${peer})
  endforeach()
endif()

# The libuv peer, where libuv is installed (Debian: libuv1-dev).
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(LIBUV QUIET IMPORTED_TARGET libuv)
endif()
if(LIBUV_FOUND)
  add_executable(uv_echo ${PROJECT_SOURCE_DIR}/bench/peers/uv_echo.c)
  target_link_libraries(uv_echo PRIVATE PkgConfig::LIBUV)
  list(APPEND net_tools uv_echo)
endif()

set_target_properties(${net_tools} PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
# `make bench` builds this: the load generator and every C peer there is.
add_custom_target(bench_net_tools)
add_dependencies(bench_net_tools ${net_tools})

# The soak test's client (scripts/soak.sh, make soak): churning,
# misbehaving connections with every byte checked.
add_executable(soakgen ${PROJECT_SOURCE_DIR}/bench/soakgen.c)
set_target_properties(soakgen PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
