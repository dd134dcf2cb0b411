// Clocks, medians, pinning, and the replaced global operator new that counts allocations.
#include "measure.hpp"

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <cstdlib>
#include <new>
#include <string>
#include <system_error>

namespace coring::bench {
namespace {

std::atomic<std::uint64_t> allocations{0};

std::chrono::nanoseconds process_cpu_time() noexcept {
  timespec ts{};
  // Cannot fail: the clock id is valid and ts is writable.
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace

Stopwatch::Stopwatch() noexcept
    : wall_start_(std::chrono::steady_clock::now()), cpu_start_(process_cpu_time()) {}

Sample Stopwatch::elapsed() const noexcept {
  // CPU first: it is the more expensive read, and the wall interval should enclose it.
  const std::chrono::nanoseconds cpu = process_cpu_time() - cpu_start_;
  return Sample{std::chrono::steady_clock::now() - wall_start_, cpu};
}

double per_second(std::uint64_t count, std::chrono::nanoseconds elapsed) noexcept {
  if (elapsed.count() <= 0) return 0.0;
  return static_cast<double>(count) * 1e9 / static_cast<double>(elapsed.count());
}

double per_item_ns(std::chrono::nanoseconds elapsed, std::uint64_t count) noexcept {
  if (count == 0) return 0.0;
  return static_cast<double>(elapsed.count()) / static_cast<double>(count);
}

double median(std::vector<double> values) {
  assert(!values.empty());
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  if (values.size() % 2 == 1) return values[mid];
  return (values[mid - 1] + values[mid]) / 2.0;
}

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0 || cpu >= CPU_SETSIZE) {
    throw std::system_error(EINVAL, std::system_category(), "--cpu " + std::to_string(cpu));
  }
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof(set), &set) != 0) {
    throw std::system_error(errno, std::system_category(),
                            "sched_setaffinity(--cpu " + std::to_string(cpu) + ")");
  }
}

std::uint64_t allocation_count() noexcept { return allocations.load(std::memory_order_relaxed); }

}  // namespace coring::bench

// The replaceable global allocation functions ([new.delete.single]). The array and
// nothrow forms of libstdc++ and libc++ call these, so they are counted too; the
// over-aligned forms are left alone (nothing on a hot path uses them).
void* operator new(std::size_t size) {
  coring::bench::allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

void operator delete(void* p) noexcept { std::free(p); }

void operator delete(void* p, std::size_t /*size*/) noexcept { std::free(p); }
