// Helpers for the net tests: run a task on a fresh loop, bytes of strings, patterns.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "coring/net/address.hpp"
#include "coring/ring/probe.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"

namespace coring::net::test {

inline std::span<const std::byte> as_bytes(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}
inline std::string to_string(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// `size` bytes that differ from one offset to the next (a counter that wraps at a
// prime), so that a lost, repeated or reordered chunk shows up in a comparison.
inline std::vector<std::byte> pattern(std::size_t size, std::uint32_t seed = 0) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = std::byte((i + seed) % 251);
  return bytes;
}

// A task that sleeps, for loop.run() between steps of a test.
inline Task<void> sleep_task(std::chrono::nanoseconds duration) { co_await sleep_for(duration); }

// Whether the running kernel has opcode `op` (probed through `loop`'s ring).
inline bool kernel_has(EventLoop& loop, ring::Op op) {
  auto probe = loop.ring().get_probe();
  return probe && probe->is_supported(op);
}

}  // namespace coring::net::test
