// Built instead of liburing_echo.cpp when CMake did not find liburing.
#include <stdexcept>
#include <string>

#include "echo_peers.hpp"
#include "liburing_nop.hpp"

namespace coring::bench {

bool liburing_echo_available() noexcept { return false; }

int serve_liburing_echo(int /*listen_fd*/) {
  throw std::logic_error(std::string(liburing_skipped));
}

}  // namespace coring::bench
