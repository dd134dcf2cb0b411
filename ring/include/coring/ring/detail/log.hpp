// Logging for coring's own layers: one spdlog logger per layer ("ring", "runtime",
// "net", "fs"), created on first use and registered with spdlog so an application
// can set its level or sinks by name. Used only off the per-operation path, for
// errors that have no caller to return to; never throws.
#pragma once

#include <string_view>
#include <system_error>

namespace coring::detail {

enum class LogLevel { trace, debug, info, warn, error };

void log(const char* logger, LogLevel level, std::string_view message) noexcept;
// "<where>: <error's message>" at error level.
void log_error(const char* logger, const char* where, const std::error_code& error) noexcept;

}  // namespace coring::detail
