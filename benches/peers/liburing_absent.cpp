// Built instead of liburing_nop.cpp when CMake did not find liburing (pkg-config
// liburing), or when CORING_WITH_LIBURING is OFF.
#include <stdexcept>
#include <string>

#include "liburing_nop.hpp"

namespace coring::bench {

bool liburing_peer_available() noexcept { return false; }

NopRun run_liburing_nop(const NopOptions& /*options*/) {
  throw std::logic_error(std::string(liburing_skipped));
}

}  // namespace coring::bench
