// One spdlog logger per layer, looked up (or created) by name on each message.
// The lookup is a mutex and a map find: fine for the rare, off-path messages this
// carries, and it lets the application replace a logger at any time.
#include "coring/ring/detail/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/uio.h>
#include <unistd.h>

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

// "[coring <logger>] <message>\n" in one write(2), from nothing but the stack.
void write_to_stderr(const char* logger, std::string_view message) noexcept {
  const std::string_view name(logger);
  const iovec parts[] = {
      {const_cast<char*>("[coring "), 8}, {const_cast<char*>(name.data()), name.size()},
      {const_cast<char*>("] "), 2},       {const_cast<char*>(message.data()), message.size()},
      {const_cast<char*>("\n"), 1},
  };
  (void)!::writev(STDERR_FILENO, parts, 5);
}

}  // namespace

void log(const char* logger, LogLevel level, std::string_view message) noexcept {
  try {
    if (auto sink = logger_named(logger)) sink->log(to_spdlog(level), "{}", message);
  } catch (...) {
    // No memory for spdlog (or a sink that threw): the message goes straight to
    // stderr, with no allocation, so that a failure caused by exhausted memory is
    // still reported. Logging never takes down the caller.
    write_to_stderr(logger, message);
  }
}

void log_error(const char* logger, const char* where, const std::error_code& error) noexcept {
  try {
    log(logger, LogLevel::error, std::string(where) + ": " + error.message());
  } catch (...) {
    // std::string could not allocate: nothing more can be done here.
  }
}

}  // namespace coring::detail
