// The fs layer's log ("fs" logger): errors with no caller to return to, such as a
// close(2) failing in a File's destructor. Never on the per-operation path.
#pragma once

#include <system_error>

namespace coring::fs::detail {

void log_error(const char* where, const std::error_code& error) noexcept;

}  // namespace coring::fs::detail
