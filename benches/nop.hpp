// The ring-nop benchmark's shape, shared by coring's loop and its liburing peer.
//
// Both sides run the same loop: take `batch` SQEs, prepare a NOP in each, submit them
// with one io_uring_enter(2) that also waits for all of them, then reap the `batch`
// CQEs and check that each one's res is 0. run_nop_loop() owns everything around the
// loop body (warm-up, clocks, allocation count), so the two sides differ only in the
// ring calls they make. This header includes neither coring's ring headers nor
// liburing's, so that each side's translation unit sees only its own ring.
#pragma once

#include <bit>
#include <cstdint>

#include "measure.hpp"

namespace coring::bench {

struct NopOptions {
  std::uint32_t batch = 1;        // SQEs per submit, and CQEs waited for per submit
  std::uint64_t ops = 2'000'000;  // timed NOPs, rounded up to whole batches
  std::uint64_t warmup_ops = 0;   // untimed NOPs first, rounded up likewise
};

struct NopRun {
  std::uint64_t ops = 0;          // NOPs timed
  std::uint64_t errors = 0;       // CQEs with res != 0
  std::uint64_t allocations = 0;  // operator new calls during the timed loop
  Sample elapsed;

  [[nodiscard]] double ops_per_s() const noexcept { return per_second(ops, elapsed.wall); }
  [[nodiscard]] double cpu_ns_per_op() const noexcept { return per_item_ns(elapsed.cpu, ops); }
};

// The entries a ring needs for one batch in flight: the SQ must hold a whole batch, and
// coring wants a power of two (the kernel would round up to one).
[[nodiscard]] inline std::uint32_t nop_ring_entries(std::uint32_t batch) noexcept {
  return std::bit_ceil(batch);
}

// Runs `run_batch(batch)` (returns the number of failed CQEs of one batch) for the
// warm-up and then for the timed ops.
template <typename RunBatch>
NopRun run_nop_loop(const NopOptions& options, RunBatch&& run_batch) {
  const std::uint64_t warmup_batches = (options.warmup_ops + options.batch - 1) / options.batch;
  const std::uint64_t batches = (options.ops + options.batch - 1) / options.batch;
  NopRun run;
  for (std::uint64_t i = 0; i < warmup_batches; ++i) run.errors += run_batch(options.batch);

  const std::uint64_t allocations_before = allocation_count();
  Stopwatch stopwatch;
  for (std::uint64_t i = 0; i < batches; ++i) run.errors += run_batch(options.batch);
  run.elapsed = stopwatch.elapsed();
  run.allocations = allocation_count() - allocations_before;
  run.ops = batches * options.batch;
  return run;
}

}  // namespace coring::bench
