# coring_set_warnings(target): the project's warning set, errors in CI.
function(coring_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                           -Wno-sign-conversion -Wnon-virtual-dtor)
  if(CORING_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(CORING_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # Under -fsanitize, g++ 12's -Wmaybe-uninitialized fires inside libstdc++ (<regex>).
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
  endif()
endfunction()
