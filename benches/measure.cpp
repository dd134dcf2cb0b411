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

// The replaceable global allocation functions ([new.delete.single]). The array forms
// of libstdc++ and libc++ call these, so they are counted too; the over-aligned forms
// are left alone (nothing on a hot path uses them). The nothrow forms are replaced as
// well: a sanitizer's runtime defines every form it is not given, and its nothrow new
// (which the runtime's stop callbacks use) would then meet our delete, a mismatch
// ASan aborts on, and go uncounted.
void* operator new(std::size_t size) {
  coring::bench::allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

void* operator new(std::size_t size, const std::nothrow_t& /*tag*/) noexcept {
  coring::bench::allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}

void operator delete(void* p, const std::nothrow_t& /*tag*/) noexcept { std::free(p); }

void operator delete(void* p) noexcept { std::free(p); }

void operator delete(void* p, std::size_t /*size*/) noexcept { std::free(p); }
