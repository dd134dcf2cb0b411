// One spdlog logger per layer, looked up (or created) by name on each message.
// The lookup is a mutex and a map find: fine for the rare, off-path messages this
// carries, and it lets the application replace a logger at any time.
#include "coring/ring/detail/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <string>

namespace coring::detail {
namespace {

std::shared_ptr<spdlog::logger> logger_named(const char* name) {
  if (auto existing = spdlog::get(name)) return existing;
  try {
    return spdlog::stderr_color_mt(name);
  } catch (const spdlog::spdlog_ex&) {
    return spdlog::get(name);  // another thread registered it first
  }
}

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::trace:
      return spdlog::level::trace;
    case LogLevel::debug:
      return spdlog::level::debug;
    case LogLevel::info:
      return spdlog::level::info;
    case LogLevel::warn:
      return spdlog::level::warn;
    case LogLevel::error:
      return spdlog::level::err;
  }
  return spdlog::level::err;
}

}  // namespace

void log(const char* logger, LogLevel level, std::string_view message) noexcept {
  try {
    if (auto sink = logger_named(logger)) sink->log(to_spdlog(level), "{}", message);
  } catch (...) {
    // Logging must never take down the caller; there is nowhere left to report to.
  }
}

}  // namespace coring::detail
