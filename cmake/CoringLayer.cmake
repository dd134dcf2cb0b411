# coring_add_layer(<layer> SOURCES <src>... [PUBLIC_DEPS <dep>...] [PRIVATE_DEPS <dep>...])
#
# Defines the library of one layer of coring, called from the layer's own folder:
# target coring_<layer>, alias coring::<layer>, exported as coring::<layer>, built as
# libcoring_<layer>. Its public headers are the folder's include/ (installed into
# CMAKE_INSTALL_INCLUDEDIR), it requires C++20 of its users, links PUBLIC_DEPS publicly
# and PRIVATE_DEPS privately, and compiles with coring_set_warnings(). Installing the
# target and its headers is the top-level CMakeLists.txt's job.
function(coring_add_layer layer)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "coring_add_layer(${layer}): unknown arguments: "
                        "${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT arg_SOURCES)
    message(FATAL_ERROR "coring_add_layer(${layer}): SOURCES is required")
  endif()

  set(target coring_${layer})
  add_library(${target} ${arg_SOURCES})
  add_library(coring::${layer} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${layer} OUTPUT_NAME ${target})
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_link_libraries(${target} PUBLIC ${arg_PUBLIC_DEPS} PRIVATE ${arg_PRIVATE_DEPS})
  coring_set_warnings(${target})
endfunction()
