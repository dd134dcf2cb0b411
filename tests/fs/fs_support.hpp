// Helpers of the fs tests: assertions usable inside coroutines, deterministic file
// content, plain POSIX reads and writes to check what the ring did, and running code
// as an unprivileged user (root is never refused with EACCES).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "coring/fs/error.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"

// ASSERT_* returns from the function, which a coroutine cannot do: these co_return.
#define CO_ASSERT(condition)                            \
  do {                                                  \
    if (!(condition)) {                                 \
      ADD_FAILURE() << "assertion failed: " #condition; \
      co_return;                                        \
    }                                                   \
  } while (0)
#define CO_ASSERT_OK(result)                                      \
  do {                                                            \
    if (!(result)) {                                              \
      ADD_FAILURE() << #result " failed: " << (result).message(); \
      co_return;                                                  \
    }                                                             \
  } while (0)

// GTEST_SKIP() returns too; this marks the test skipped and co_returns.
#define CO_SKIP(reason)               \
  do {                                \
    ::coring::fs::test::skip(reason); \
    co_return;                        \
  } while (0)

namespace coring::fs::test {

// Marks the running test skipped with `reason` (GTEST_SKIP() from a plain function).
void skip(const std::string& reason);

// Runs the task that `make` returns on `loop` (or a fresh EventLoop), to completion.
template <typename Make>
void run_on(EventLoop& loop, Make make) {
  loop.run(make());
}
template <typename Make>
void run_in_loop(Make make) {
  EventLoop loop;
  run_on(loop, make);
}

// `size` bytes that depend on `seed` and on each byte's position (so a chunk copied to
// the wrong offset is caught).
std::vector<std::byte> pattern(std::size_t size, std::uint64_t seed = 1);
// The expected byte at `offset` of a file filled with pattern(size, seed) from 0.
std::byte pattern_byte(std::uint64_t offset, std::uint64_t seed = 1);

// Plain pwrite/pread/stat, to check the ring's work with a path the test trusts.
void write_plain(const std::string& path, const std::vector<std::byte>& data,
                 std::uint64_t offset = 0, mode_t mode = 0644);
std::vector<std::byte> read_plain(const std::string& path);
struct stat stat_plain(const std::string& path);

// Runs `fn` in a child process with uid and gid 65534 (nobody) when we are root, as is
// when we are not; returns fn's result (its exit status) or -1 if the child failed.
int as_unprivileged(const std::function<int()>& fn);

// Sets or clears the immutable attribute (chattr +i): even root cannot write then.
bool set_immutable(const std::string& path, bool on);

}  // namespace coring::fs::test
