// The "ring" spdlog logger, created on first use and shared with the application's
// registry so that it can change the level or sinks by name.
#include "log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace coring::ring {
namespace {
std::shared_ptr<spdlog::logger> logger() {
  static const std::shared_ptr<spdlog::logger> instance = [] {
    if (auto existing = spdlog::get("ring")) return existing;
    return spdlog::stderr_color_mt("ring");
  }();
  return instance;
}
}  // namespace

void log_error(const char* function, const std::error_code& error) noexcept {
  try {
    logger()->error("{}: {}", function, error.message());
  } catch (...) {
    // Logging must never take down teardown; there is nowhere left to report to.
  }
}

}  // namespace coring::ring
