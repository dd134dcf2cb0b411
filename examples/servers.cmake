# The example servers' own code as a library, for their binaries (examples/CMakeLists.txt),
# for coring-bench (the coring side of `coring-bench echo`) and for the server tests
# (tests/net/http.cmake). Included from each; defines the target once.
#
#   coring_example_server  the command line (server.hpp) and the echo handler; coring::net
include_guard(GLOBAL)

add_library(coring_example_server STATIC
  ${CMAKE_CURRENT_LIST_DIR}/server.cpp
  ${CMAKE_CURRENT_LIST_DIR}/echo_server.cpp)
target_include_directories(coring_example_server PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(coring_example_server PUBLIC coring::net)
coring_set_warnings(coring_example_server)
