# Included by tests/net/CMakeLists.txt: the tests of the example servers (examples/).
# http_test.cpp and fairness_test.cpp run them in process against the example servers'
# library;
# server_process_test.cpp runs the coring-echo and coring-http programs, whose paths it
# gets at compile time.
include(${PROJECT_SOURCE_DIR}/examples/servers.cmake)
target_sources(coring-net-tests PRIVATE ${CMAKE_CURRENT_LIST_DIR}/fairness_test.cpp
                                        ${CMAKE_CURRENT_LIST_DIR}/http_test.cpp
                                        ${CMAKE_CURRENT_LIST_DIR}/server_process_test.cpp
                                        ${CMAKE_CURRENT_LIST_DIR}/proxy_test.cpp)
target_link_libraries(coring-net-tests PRIVATE coring_example_http)
if(CORING_BUILD_EXAMPLES)
  add_dependencies(coring-net-tests coring-echo coring-http coring-proxy)
  target_compile_definitions(coring-net-tests PRIVATE
    CORING_ECHO_PATH="$<TARGET_FILE:coring-echo>"
    CORING_HTTP_PATH="$<TARGET_FILE:coring-http>"
    CORING_PROXY_PATH="$<TARGET_FILE:coring-proxy>")
endif()

# The frame when memory runs out: a binary of its own, since it replaces the global
# operator new with one that fails the Nth allocation.
add_executable(coring-server-alloc-tests ${CMAKE_CURRENT_LIST_DIR}/server_alloc_test.cpp)
target_link_libraries(coring-server-alloc-tests PRIVATE coring_test_common coring_example_http)
coring_set_warnings(coring-server-alloc-tests)
coring_discover_tests(coring-server-alloc-tests TIMEOUT 300)
