# Included by tests/net/CMakeLists.txt: the tests of the servers — coring-echo's handler
# (examples/servers.cmake) on the library's frame, and coring::http's http::Server.
# fairness_test.cpp runs both in process; server_process_test.cpp runs the coring-echo
# and coring-http programs, whose paths it gets at compile time.
if(NOT CORING_BUILD_HTTP)
  return()
endif()
include(${PROJECT_SOURCE_DIR}/examples/servers.cmake)
target_sources(coring-net-tests PRIVATE ${CMAKE_CURRENT_LIST_DIR}/fairness_test.cpp
                                        ${CMAKE_CURRENT_LIST_DIR}/server_process_test.cpp
                                        ${CMAKE_CURRENT_LIST_DIR}/proxy_test.cpp)
target_link_libraries(coring-net-tests PRIVATE coring_example_server coring::http)
if(CORING_BUILD_EXAMPLES)
  add_dependencies(coring-net-tests coring-echo coring-http coring-proxy)
  target_compile_definitions(coring-net-tests PRIVATE
    CORING_ECHO_PATH="$<TARGET_FILE:coring-echo>"
    CORING_HTTP_PATH="$<TARGET_FILE:coring-http>"
    CORING_PROXY_PATH="$<TARGET_FILE:coring-proxy>")
endif()

# The frame and http::Server when memory runs out: a binary of its own, since it
# replaces the global operator new with one that fails the Nth allocation.
add_executable(coring-server-alloc-tests ${CMAKE_CURRENT_LIST_DIR}/server_alloc_test.cpp)
target_link_libraries(coring-server-alloc-tests PRIVATE coring_test_common coring_example_server
                                                        coring::http)
coring_set_warnings(coring-server-alloc-tests)
coring_discover_tests(coring-server-alloc-tests TIMEOUT 300)
