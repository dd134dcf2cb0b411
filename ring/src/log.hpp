// The ring layer's error log ("ring" logger), for errors with no caller to return to,
// such as a failed unregister during teardown.
#pragma once

#include <string>
#include <system_error>

#include "coring/ring/detail/log.hpp"

namespace coring::ring {

// Logs `error` at error level, naming the function it happened in.
inline void log_error(const char* function, const std::error_code& error) noexcept {
  try {
    coring::detail::log("ring", coring::detail::LogLevel::error,
                        std::string(function) + ": " + error.message());
  } catch (...) {
    // std::string could not allocate: nothing more can be done here.
  }
}

}  // namespace coring::ring
