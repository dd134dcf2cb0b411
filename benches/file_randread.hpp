// file-randread: 4 KiB random reads of a cached file through coring's fs layer, and its
// comparison with fio's io_uring engine on the same file and parameters.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "cli.hpp"
#include "measure.hpp"

namespace coring::bench {

struct RandReadOptions {
  std::string file;
  std::uint32_t queue_depth = 32;            // reads in flight
  std::chrono::milliseconds duration{5000};  // timed run
  bool direct = false;                       // O_DIRECT (then the page cache is not used)
};

struct RandReadRun {
  std::uint64_t ios = 0;     // reads completed in the timed window
  std::uint64_t errors = 0;  // reads that failed or came back short
  Sample elapsed;

  [[nodiscard]] double iops() const noexcept { return per_second(ios, elapsed.wall); }
  [[nodiscard]] double cpu_us_per_io() const noexcept {
    return per_item_ns(elapsed.cpu, ios) / 1000.0;
  }
};

// Q coroutines on one EventLoop, each with one registered 4 KiB buffer, reading random
// 4 KiB-aligned blocks of the file (registered in a FileTable) with read_fixed until the
// time is up. Throws std::system_error when the loop, file or registration fails.
RandReadRun run_coring_randread(const RandReadOptions& options);

// The subcommands: file-randread and file-randread-compare.
int file_randread_main(Args& args);
int file_randread_compare_main(Args& args);

}  // namespace coring::bench
