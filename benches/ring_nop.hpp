// ring-nop: the cost of the ring itself — submitting and reaping NOPs, which the kernel
// completes inline, so that what is measured is the SQ/CQ handling and io_uring_enter(2).
#pragma once

#include <string_view>

#include "cli.hpp"
#include "nop.hpp"

namespace coring::bench {

// Runs ring-nop on a coring::ring::Ring. Throws std::system_error when the ring cannot
// be set up or io_uring_enter(2) fails.
NopRun run_coring_nop(const NopOptions& options);

// Throws std::runtime_error naming `side` if a run broke one of the benchmark's promises:
// a NOP completion with res != 0, or an allocation in the timed loop (DESIGN invariant 7).
void check_nop_run(std::string_view side, const NopRun& run);

// The subcommands: ring-nop, ring-nop-liburing and ring-nop-compare.
int ring_nop_main(Args& args);
int ring_nop_liburing_main(Args& args);
int ring_nop_compare_main(Args& args);

}  // namespace coring::bench
