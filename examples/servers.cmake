# The example servers' code as libraries, for their binaries (examples/CMakeLists.txt),
# for coring-bench (the coring side of `coring-bench echo` and `http`) and for the server
# tests (tests/net/http.cmake). Included from each; defines the targets once.
#
#   coring_example_server  the command line (server.hpp) and the echo handler; coring::net
#   coring_example_http    an HTTP handler on http_parser (libhttp-parser-dev), for
#                          coring-bench only: built with the benches
include_guard(GLOBAL)

add_library(coring_example_server STATIC
  ${CMAKE_CURRENT_LIST_DIR}/server.cpp
  ${CMAKE_CURRENT_LIST_DIR}/echo_server.cpp)
target_include_directories(coring_example_server PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(coring_example_server PUBLIC coring::net)
coring_set_warnings(coring_example_server)

if(NOT CORING_BUILD_BENCHES)
  return()
endif()
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h)
find_library(HTTP_PARSER_LIBRARY http_parser)
if(NOT HTTP_PARSER_INCLUDE_DIR OR NOT HTTP_PARSER_LIBRARY)
  message(FATAL_ERROR "coring-bench needs http_parser, which was not found: "
                      "apt-get install libhttp-parser-dev (scripts/install-deps.sh installs it)")
endif()
add_library(coring_example_http STATIC ${CMAKE_CURRENT_LIST_DIR}/http_server.cpp)
target_include_directories(coring_example_http SYSTEM PUBLIC ${HTTP_PARSER_INCLUDE_DIR})
target_link_libraries(coring_example_http PUBLIC coring_example_server ${HTTP_PARSER_LIBRARY})
coring_set_warnings(coring_example_http)
