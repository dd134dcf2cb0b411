// ring-nop: the cost of the ring itself — submitting and reaping NOPs, which the kernel
// completes inline, so that what is measured is the SQ/CQ handling and io_uring_enter(2).
#pragma once

#include "cli.hpp"
#include "nop.hpp"

namespace coring::bench {

// Runs ring-nop on a coring::ring::Ring. Throws std::system_error when the ring cannot
// be set up or io_uring_enter(2) fails.
NopRun run_coring_nop(const NopOptions& options);

// The subcommands: ring-nop, ring-nop-liburing and ring-nop-compare.
int ring_nop_main(Args& args);
int ring_nop_liburing_main(Args& args);
int ring_nop_compare_main(Args& args);

}  // namespace coring::bench
