# Included by tests/net/CMakeLists.txt: the tests of coring-http's server (examples/),
# run in process against the example servers' library.
include(${PROJECT_SOURCE_DIR}/examples/servers.cmake)
target_sources(coring-net-tests PRIVATE ${CMAKE_CURRENT_LIST_DIR}/http_test.cpp)
target_link_libraries(coring-net-tests PRIVATE coring_example_http)
