// The liburing peer of ring-nop: the same loop as coring's (see nop.hpp), written the way
// a liburing user would write it.
//
// Defined in liburing_nop.cpp, the only file of coring that includes <liburing.h>, when
// CMake found liburing; otherwise in liburing_absent.cpp, where the peer is unavailable.
#pragma once

#include <string_view>

#include "../nop.hpp"

namespace coring::bench {

// What the subcommands print, and exit 0 after, when the peer was not built.
inline constexpr std::string_view liburing_skipped =
    "skipped: liburing not found (apt-get install liburing-dev)";

// Whether this build has the peer; when false, run_liburing_nop() must not be called.
[[nodiscard]] bool liburing_peer_available() noexcept;

// Runs ring-nop on a liburing ring set up like coring's. Throws std::system_error when
// the ring cannot be set up or io_uring_enter(2) fails.
NopRun run_liburing_nop(const NopOptions& options);

}  // namespace coring::bench
