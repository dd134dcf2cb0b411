// Measuring: wall and CPU clocks, medians, CPU pinning and the allocation count.
//
// Wall time comes from steady_clock; CPU time from CLOCK_PROCESS_CPUTIME_ID, which
// includes the time the kernel spends in our system calls (and, with DEFER_TASKRUN,
// the task work it runs for us), so cpu_ns_per_op is the whole cost of an operation on
// the submitting CPU. The allocation count backs DESIGN invariant 7 (the hot path does
// not allocate): coring-bench replaces the global operator new to count its calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace coring::bench {

struct Sample {
  std::chrono::nanoseconds wall{0};
  std::chrono::nanoseconds cpu{0};
};

// Starts both clocks on construction.
class Stopwatch {
 public:
  Stopwatch() noexcept;
  [[nodiscard]] Sample elapsed() const noexcept;

 private:
  std::chrono::steady_clock::time_point wall_start_;
  std::chrono::nanoseconds cpu_start_;
};

[[nodiscard]] double per_second(std::uint64_t count, std::chrono::nanoseconds elapsed) noexcept;
[[nodiscard]] double per_item_ns(std::chrono::nanoseconds elapsed, std::uint64_t count) noexcept;

// The median of a non-empty set of values (the mean of the middle two for an even count).
[[nodiscard]] double median(std::vector<double> values);

// Pins the calling thread to one CPU; throws std::system_error if the CPU is not allowed.
void pin_to_cpu(int cpu);

// Calls of the global operator new since the program started.
[[nodiscard]] std::uint64_t allocation_count() noexcept;

}  // namespace coring::bench
