// The ring layer's logger ("ring"). Used only off the per-operation path: for
// errors that have no caller to return to, such as a failed unregister during
// teardown.
#pragma once

#include <system_error>

namespace coring::ring {

// Logs `error` at error level, naming the function it happened in.
void log_error(const char* function, const std::error_code& error) noexcept;

}  // namespace coring::ring
