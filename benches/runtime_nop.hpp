// runtime-nop: the cost the runtime adds on top of the ring — coroutines awaiting NOPs
// through an EventLoop — and its comparison with ring-nop, the bare ring doing the same
// number of NOPs per io_uring_enter(2).
#pragma once

#include <cstdint>

#include "cli.hpp"
#include "nop.hpp"

namespace coring::bench {

struct RuntimeNopOptions {
  std::uint32_t inflight = 1;     // coroutines, each with one NOP in flight at a time
  std::uint64_t ops = 2'000'000;  // timed NOPs, over all coroutines
  std::uint64_t warmup_ops = 0;   // untimed NOPs first
};

// Runs runtime-nop: `inflight` spawned coroutines on one EventLoop, each awaiting
// coring::nop() in a loop until warmup_ops + ops NOPs have been started. The loop turns
// as it always does: resume the ready coroutines (each prepares its next NOP), one
// io_uring_enter(2) that submits them and waits, one batched reap that queues every
// coroutine again. Throws std::system_error when the loop cannot be set up.
NopRun run_runtime_nop(const RuntimeNopOptions& options);

// The subcommands: runtime-nop and runtime-nop-compare.
int runtime_nop_main(Args& args);
int runtime_nop_compare_main(Args& args);

}  // namespace coring::bench
