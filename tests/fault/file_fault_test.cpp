// The file workload under every fault: a file written in regions by concurrent writers
// through the fs layer (File::write_all, write_at, write_vectored_at) on a loop whose
// ring runs through a FaultInjector, then read back by concurrent readers (read_all,
// read_at, read_vectored_at) and compared byte for byte.
//
// A positioned write or read that reports an error did not happen (an injected error
// replaces the request): writing or reading the same range again is what a program
// does, so every error is retried, and every byte must end up in the file. Short counts
// are continued from the count the call returned. The checks, per seed: the file reads
// back as written, its size is what was written, a read at the end gives 0, no
// exception escapes, the run ends within its deadline, and no fd leaks (the common
// main checks fds after every test).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "coring/fs/file.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/when_all.hpp"
#include "coring/testing/fault.hpp"
#include "fault_support.hpp"
#include "support.hpp"

namespace coring::fault_test {
namespace {

using namespace std::chrono_literals;

constexpr int max_attempts = 1000;

// One region of the file, written and then read by one coroutine each.
struct Region {
  std::uint64_t offset = 0;
  std::size_t size = 0;
  int mode = 0;  // 0: write_all/read_all, 1: write_at/read_at, 2: vectored
};

struct FileRun {
  std::uint64_t seed = 0;
  std::vector<std::string> failures;
  std::uint64_t attempts = 0;
  std::uint64_t digest = 0;  // the injector's digest of the run
};

// One request of `mode` for `data` at `offset`: the count moved, or the error.
Task<fs::Result<std::size_t>> write_once(const fs::File& file, std::span<const std::byte> data,
                                         std::uint64_t offset, int mode) {
  if (mode == 0) {
    fs::Result<void> all = co_await file.write_all(data, offset);
    if (!all) co_return all.failure();
    co_return data.size();
  }
  if (mode == 1) co_return co_await file.write_at(data, offset);
  // Two pieces, so that a short count can end inside either.
  const std::size_t half = data.size() / 2;
  const std::array<iovec, 2> pieces{
      iovec{const_cast<std::byte*>(data.data()), half},
      iovec{const_cast<std::byte*>(data.data()) + half, data.size() - half}};
  co_return co_await file.write_vectored_at(pieces, offset);
}

Task<fs::Result<std::size_t>> read_once(const fs::File& file, std::span<std::byte> data,
                                        std::uint64_t offset, int mode) {
  if (mode == 0) co_return co_await file.read_all(data, offset);
  if (mode == 1) co_return co_await file.read_at(data, offset);
  const std::size_t half = data.size() / 2;
  const std::array<iovec, 2> pieces{iovec{data.data(), half},
                                    iovec{data.data() + half, data.size() - half}};
  co_return co_await file.read_vectored_at(pieces, offset);
}

// Moves `region` in chunks of random size, going on after short counts and retrying
// errors; `write` picks the direction.
Task<void> transfer_region(const fs::File& file, std::span<std::byte> bytes, Region region,
                           bool write, FileRun& run) {
  Choices choices(run.seed * 100 + region.offset + (write ? 1 : 0));
  std::size_t done = 0;
  int attempts = 0;
  while (done < region.size) {
    if (++attempts > max_attempts) {
      run.failures.push_back(std::string(write ? "write" : "read") + " of region at " +
                             std::to_string(region.offset) + ": no progress");
      co_return;
    }
    ++run.attempts;
    const std::size_t chunk = std::min<std::size_t>(region.size - done, choices.between(1, 16384));
    const std::uint64_t at = region.offset + done;
    // An if, not a conditional expression with a co_await in each branch (GCC 12
    // destroys the temporaries of those twice).
    std::optional<fs::Result<std::size_t>> result;
    if (write) {
      result.emplace(co_await write_once(file, bytes.subspan(at, chunk), at, region.mode));
    } else {
      result.emplace(co_await read_once(file, bytes.subspan(at, chunk), at, region.mode));
    }
    const fs::Result<std::size_t>& n = *result;
    if (!n) {
      (void)note_error(n.error(), /*retry_any=*/true);
      continue;
    }
    if (*n == 0 || *n > chunk) {
      run.failures.push_back(std::string(write ? "write" : "read") + " at " + std::to_string(at) +
                             " of " + std::to_string(chunk) + " bytes returned " +
                             std::to_string(*n));
      co_return;
    }
    done += *n;
  }
}

Task<void> file_workload(const std::string& path, std::vector<std::byte>& sent,
                         std::vector<std::byte>& back, const std::vector<Region>& regions,
                         FileRun& run) {
  fs::Result<fs::File> file = co_await fs::File::open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (!file) {
    run.failures.push_back(file.message());
    co_return;
  }
  std::vector<Task<void>> writers;
  for (const Region& region : regions) {
    writers.push_back(transfer_region(*file, sent, region, true, run));
  }
  co_await when_all(std::move(writers));
  std::vector<Task<void>> readers;
  for (const Region& region : regions) {
    readers.push_back(transfer_region(*file, back, region, false, run));
  }
  co_await when_all(std::move(readers));
  // The end of the file: a read there gives 0 bytes, whatever the faults (an injected
  // error is retried; a short count cannot go below 1 byte asked, and there is none).
  std::array<std::byte, 64> past{};
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    const fs::Result<std::size_t> end = co_await file->read_at(past, sent.size());
    if (!end) {
      (void)note_error(end.error(), /*retry_any=*/true);
      continue;
    }
    if (*end != 0) run.failures.push_back("a read at the end gave " + std::to_string(*end));
    break;
  }
  const fs::Result<fs::Stat> st = co_await file->stat();
  if (!st) {
    run.failures.push_back(st.message());
  } else if (st->size() != sent.size()) {
    run.failures.push_back("the file has " + std::to_string(st->size()) + " bytes, " +
                           std::to_string(sent.size()) + " were written");
  }
  const fs::Result<void> closed = co_await file->close();
  if (!closed) run.failures.push_back(closed.message());
}

void run_file_seed(std::uint64_t seed, const ring::test::TempDir& dir, FileRun& run) {
  run.seed = seed;
  Choices choices(seed + 7'000'000);
  const std::size_t size = choices.between(4, 96) * 1024 + choices.between(0, 4095);
  std::vector<std::byte> sent(size);
  for (std::size_t i = 0; i < size; ++i) sent[i] = pattern_byte(seed, i);
  std::vector<std::byte> back(size, std::byte{0xee});
  // 1 to 4 regions of random sizes covering the file, each with its own mode.
  std::vector<Region> regions;
  const std::size_t count = choices.between(1, 4);
  std::uint64_t at = 0;
  for (std::size_t i = 0; i < count && at < size; ++i) {
    const std::size_t left = size - at;
    const std::size_t length = i + 1 == count ? left : choices.between(1, left);
    regions.push_back({at, length, static_cast<int>(choices.between(0, 2))});
    at += length;
  }
  const std::string path = dir.file("seed-" + std::to_string(seed));
  FaultInjector faults(plan_for(seed));
  bool finished = false;
  {
    EventLoop loop;
    loop.set_hooks(&faults);
    finished = run_bounded(loop, file_workload(path, sent, back, regions, run), 10s);
  }
  add_faults(faults.counts());
  note_run(seed, faults);
  run.digest = faults.digest();
  ::unlink(path.c_str());
  if (!finished) {
    run.failures.push_back("the run did not end within 10 s");
    return;
  }
  ++totals().files;
  const auto first_difference = std::mismatch(sent.begin(), sent.end(), back.begin());
  if (first_difference.first != sent.end()) {
    run.failures.push_back("the file reads back different from byte " +
                           std::to_string(first_difference.first - sent.begin()) + " of " +
                           std::to_string(size));
    return;
  }
  totals().bytes_verified += size;
}

constexpr std::uint64_t file_seeds_per_shard = 150;

class FaultFile : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(FaultFile, EveryByteWrittenOnceAndReadBack) {
  ring::test::TempDir dir;
  const std::uint64_t first = 1 + GetParam() * file_seeds_per_shard;
  const FaultCounts before = totals().faults;
  const std::vector<std::uint64_t> seeds = seeds_to_run(first, file_seeds_per_shard);
  if (seeds.empty()) GTEST_SKIP() << "CORING_FAULT_SEED names a seed of another shard";
  for (std::uint64_t seed : seeds) {
    FileRun run;
    run_file_seed(seed, dir, run);
    ++totals().seeds;
    for (const std::string& failure : run.failures) {
      ADD_FAILURE() << replay_hint(seed, run.digest) << ": " << failure;
    }
  }
  // Every kind of fault a file workload can meet (no multishot requests here).
  expect_every_fault_since(before, false);
}

INSTANTIATE_TEST_SUITE_P(Shards, FaultFile, ::testing::Range<std::uint64_t>(0, 4));

// A seed is a run (see FaultEchoReplay): buffered writes that the kernel hands to io-wq
// workers complete in a different order on every run unless the injector settles them.
TEST(FaultFileReplay, SameSeedSameRun) {
  if (std::getenv("CORING_FAULT_SEED") != nullptr) GTEST_SKIP() << "replaying one seed";
  ring::test::TempDir dir;
  std::vector<std::uint64_t> seeds;
  for (std::uint64_t seed = 1; seed <= 100; ++seed) seeds.push_back(seed);
  expect_same_runs(seeds, [&](std::uint64_t seed) {
    FileRun run;
    run_file_seed(seed, dir, run);
    for (const std::string& failure : run.failures) {
      ADD_FAILURE() << replay_hint(seed, run.digest) << ": " << failure;
    }
    return run.digest;
  });
}

}  // namespace
}  // namespace coring::fault_test
