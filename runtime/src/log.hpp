// The runtime layer's log ("runtime" logger): errors with no caller to return to,
// and the exceptions of spawned tasks. Never on the per-operation path.
#pragma once

#include <exception>
#include <string>
#include <system_error>

#include "coring/ring/detail/log.hpp"

namespace coring {

void runtime_log(detail::LogLevel level, const char* where, const std::string& what) noexcept;
void runtime_log_error(const char* where, const std::error_code& error) noexcept;
// `negative_errno` as a CQE's res or a raw system call's return carries it.
void runtime_log_error(const char* where, int negative_errno) noexcept;
void runtime_log_exception(const char* where, std::exception_ptr exception) noexcept;

}  // namespace coring
