# net_tools.cmake - the network benchmark's own programs: the load
# generator and the raw epoll echo server it measures coreio against.
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

add_executable(epoll_echo ${PROJECT_SOURCE_DIR}/bench/peers/epoll_echo.c)

set_target_properties(loadgen epoll_echo PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
