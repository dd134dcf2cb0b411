// file-randread on coring's fs layer, fio as its peer, and the two subcommands.
//
// coring's side: Q worker coroutines on one loop share a budget of time. Each holds one
// 4 KiB buffer of a registered FixedBufferPool and repeats read_fixed at a random
// 4 KiB-aligned offset of the file, which sits in a FileTable as a direct descriptor
// (IOSQE_FIXED_FILE). So every turn of the loop resumes the workers whose reads
// completed, each prepares its next SQE, and one io_uring_enter(2) submits them all and
// waits: with a cached file the reads complete inline during that enter, and the batched
// reap queues the workers for the next turn.
// The clock starts after a warm-up of Q * 64 reads and is checked every 1024 reads.
//
// fio's side is fio itself, run as `fio --ioengine=io_uring --fixedbufs --registerfiles
// --invalidate=0 ...` on the same file, queue depth, duration and CPU, its JSON output
// parsed for read IOPS and the job's CPU use. Both sides read the whole file once first
// (not timed) so that every block is in the page cache; --invalidate=0 keeps fio from
// dropping it. file-randread-compare interleaves the two, R times each, and reports the
// medians and their ratio. coring's loop runs on the backend the environment says, or
// --backend's (backend.hpp): on the epoll backend, its reads run on the emulation's
// worker threads, whose CPU time the process's clock counts.
#include "file_randread.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "backend.hpp"
#include "child_process.hpp"
#include "coring/fs/buffers.hpp"
#include "coring/fs/file.hpp"
#include "coring/fs/file_table.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/when_all.hpp"
#include "suite.hpp"

namespace coring::bench {
namespace {

constexpr std::size_t block_size = 4096;
constexpr std::uint64_t default_reps = 3;

struct Shared {
  std::uint64_t blocks = 0;  // 4 KiB blocks of the file
  std::uint64_t warmup = 0;  // completions before the clock starts
  std::chrono::steady_clock::time_point deadline;
  std::uint64_t completed = 0;
  std::uint64_t completed_at_start = 0;
  std::optional<Stopwatch> stopwatch;
  bool stop = false;
  std::chrono::nanoseconds duration{0};
  RandReadRun run;

  void count(bool ok) noexcept {
    if (!ok) ++run.errors;
    ++completed;
    if (completed == warmup) {
      completed_at_start = completed;
      deadline = std::chrono::steady_clock::now() + duration;
      stopwatch.emplace();
    } else if ((completed & 1023) == 0 && stopwatch &&
               std::chrono::steady_clock::now() >= deadline) {
      run.elapsed = stopwatch->elapsed();
      run.ios = completed - completed_at_start;
      stop = true;
    }
  }
};

Task<void> reader(const fs::File& file, fs::FixedBufferPool& pool, Shared& shared,
                  std::uint64_t seed) {
  fs::FixedBuffer buffer = co_await pool.acquire();
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ULL | 1;
  while (!shared.stop) {
    x ^= x >> 12;  // xorshift64*
    x ^= x << 25;
    x ^= x >> 27;
    const std::uint64_t block = ((x * 0x2545F4914F6CDD1DULL) >> 11) % shared.blocks;
    const fs::Result<std::size_t> n = co_await file.read_fixed(buffer, block * block_size);
    shared.count(n && *n == block_size);
  }
}

Task<void> run_readers(const RandReadOptions& options, fs::FileTable& table,
                       fs::FixedBufferPool& pool, Shared& shared) {
  fs::Result<fs::File> file =
      co_await fs::File::open(options.file, O_RDONLY | (options.direct ? O_DIRECT : 0));
  file.value();  // throws with the path if it failed
  fs::Result<fs::Stat> st = co_await file->stat();
  shared.blocks = st.value().size() / block_size;
  if (shared.blocks == 0) throw std::runtime_error(options.file + " is smaller than 4 KiB");
  if (auto attached = table.attach(*file); !attached) attached.value();
  std::vector<Task<void>> readers;
  for (std::uint32_t i = 0; i < options.queue_depth; ++i) {
    readers.push_back(reader(*file, pool, shared, i + 1));
  }
  co_await when_all(std::move(readers));
}

// Reads the whole file once, so that every block is in the page cache.
void warm(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::system_category(), "open " + path);
  std::vector<char> chunk(1 << 20);
  while (::read(fd, chunk.data(), chunk.size()) > 0) {
  }
  ::close(fd);
}

// The one CPU this thread is pinned to (by --cpu or taskset), for fio's cpus_allowed.
std::optional<int> pinned_cpu() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof(set), &set) != 0 || CPU_COUNT(&set) != 1) return std::nullopt;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) return cpu;
  }
  return std::nullopt;
}

// One run's figures, of either side.
struct ReadFigures {
  double iops = 0;
  double cpu_us_per_io = 0;
};

// The number after `"key" :` at or after `from` in fio's JSON.
double json_number(const std::string& json, const std::string& key, std::size_t from) {
  const std::size_t at = json.find("\"" + key + "\"", from);
  if (at == std::string::npos) throw std::runtime_error("fio output lacks \"" + key + "\"");
  const std::size_t colon = json.find(':', at);
  return std::strtod(json.c_str() + colon + 1, nullptr);
}

std::string fio_command(const std::string& fio, const RandReadOptions& options) {
  std::string command = "'" + fio + "' --name=r --filename='" + options.file +
                        "' --rw=randread --bs=4k --iodepth=" + std::to_string(options.queue_depth) +
                        " --ioengine=io_uring --fixedbufs --registerfiles --invalidate=0"
                        " --direct=" +
                        (options.direct ? "1" : "0") +
                        " --time_based --runtime=" + std::to_string(options.duration.count()) +
                        "ms"
                        " --output-format=json";
  if (const auto cpu = pinned_cpu()) command += " --cpus_allowed=" + std::to_string(*cpu);
  return command + " 2>&1";
}

ReadFigures run_fio_randread(const std::string& fio, const RandReadOptions& options) {
  const std::string command = fio_command(fio, options);
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::system_error(errno, std::system_category(), "popen fio");
  std::string output;
  char chunk[4096];
  while (const std::size_t n = std::fread(chunk, 1, sizeof(chunk), pipe)) output.append(chunk, n);
  if (::pclose(pipe) != 0) throw std::runtime_error("fio failed: " + command + "\n" + output);
  const std::size_t read = output.find("\"read\" :");
  if (read == std::string::npos) throw std::runtime_error("fio output lacks \"read\": " + output);
  const double ios = json_number(output, "total_ios", read);
  const double runtime_ms = json_number(output, "runtime", read);
  const double cpu_percent = json_number(output, "usr_cpu", 0) + json_number(output, "sys_cpu", 0);
  ReadFigures run;
  run.iops = json_number(output, "iops", read);
  run.cpu_us_per_io = ios > 0 ? cpu_percent / 100.0 * runtime_ms * 1000.0 / ios : 0.0;
  return run;
}

RandReadOptions take_options(Args& args) {
  RandReadOptions options;
  auto file = args.take_string("--file");
  if (!file) throw UsageError("--file is required");
  options.file = *file;
  options.queue_depth = static_cast<std::uint32_t>(
      args.take_u64("--qd", 1, 4096).value_or(RandReadOptions{}.queue_depth));
  options.duration = std::chrono::seconds(args.take_u64("--seconds", 1, 3600).value_or(5));
  options.direct = args.take_flag("--direct");
  return options;
}

void check_errors(const RandReadRun& run) {
  if (run.errors != 0) {
    throw std::runtime_error(std::to_string(run.errors) + " reads failed or came back short");
  }
}

ReadFigures run_coring_checked(const RandReadOptions& options) {
  const RandReadRun run = run_coring_randread(options);
  check_errors(run);
  return {run.iops(), run.cpu_us_per_io()};
}

// coring's runs and fio's, interleaved, after warming the file; fio's are empty when
// `fio` is "".
std::array<std::vector<ReadFigures>, 2> run_randread_compare(const RandReadOptions& options,
                                                             std::uint64_t reps,
                                                             const std::string& fio) {
  if (!options.direct) warm(options.file);
  std::vector<std::function<ReadFigures()>> sides{
      [&options] { return run_coring_checked(options); }};
  if (!fio.empty()) {
    sides.emplace_back([&fio, &options] { return run_fio_randread(fio, options); });
  }
  std::vector<std::vector<ReadFigures>> runs = interleave(reps, sides);
  if (fio.empty()) runs.emplace_back();
  return {std::move(runs[0]), std::move(runs[1])};
}

}  // namespace

RandReadRun run_coring_randread(const RandReadOptions& options) {
  LoopOptions loop_options;
  loop_options.entries = std::bit_ceil(std::max<std::uint32_t>(options.queue_depth, 8));
  EventLoop loop(loop_options);
  fs::FileTable table(loop, 1);
  fs::FixedBufferPool pool(loop, fs::FixedBufferPoolOptions{options.queue_depth, block_size, true});
  Shared shared;
  shared.warmup = std::uint64_t{options.queue_depth} * 64;
  shared.duration = options.duration;
  loop.run(run_readers(options, table, pool, shared));
  return shared.run;
}

int file_randread_main(Args& args) {
  const RandReadOptions options = take_options(args);
  const CoringBackend backend = take_backend(args);
  args.finish();
  if (!options.direct) warm(options.file);
  const RandReadRun run = run_coring_randread(options);
  check_errors(run);
  std::printf("iops=%.0f cpu_us_per_io=%.3f backend=%s\n", run.iops(), run.cpu_us_per_io(),
              backend.name().c_str());
  return 0;
}

BenchResult randread_suite(const SuiteOptions& suite) {
  RandReadOptions options;
  options.file = suite.randread_file;
  options.queue_depth = suite.randread_qd;
  options.duration = suite.measured;
  const std::string fio = find_program("fio");
  const auto [coring, peer] = run_randread_compare(options, suite.reps, fio);
  const auto cpu = [](const ReadFigures& run) { return run.cpu_us_per_io; };
  const auto rate = [](const ReadFigures& run) { return run.iops; };
  return BenchResult{
      "file-randread",
      "qd " + std::to_string(options.queue_depth),
      randread_metrics,
      {measured_side("coring", coring, cpu, rate),
       fio.empty() ? skipped_side("fio", "fio is not installed", "apt-get install -y fio")
                   : measured_side("fio", peer, cpu, rate)},
      {}};
}

int file_randread_compare_main(Args& args) {
  const RandReadOptions options = take_options(args);
  const std::uint64_t reps = args.take_u64("--reps", 1, 100).value_or(default_reps);
  const CoringBackend backend = take_backend(args);
  args.finish();
  const std::string fio = find_program("fio");
  if (fio.empty()) {
    std::printf("skipped: apt-get install fio\n");
    return 0;
  }
  const auto [coring, peer] = run_randread_compare(options, reps, fio);
  std::vector<double> coring_iops, coring_cpu, fio_iops, fio_cpu, paired;
  for (std::size_t rep = 0; rep < coring.size(); ++rep) {
    coring_iops.push_back(coring[rep].iops);
    coring_cpu.push_back(coring[rep].cpu_us_per_io);
    fio_iops.push_back(peer[rep].iops);
    fio_cpu.push_back(peer[rep].cpu_us_per_io);
    paired.push_back(coring[rep].iops / peer[rep].iops);
    std::fprintf(
        stderr, "rep %zu: coring iops=%.0f cpu_us_per_io=%.3f | fio iops=%.0f cpu_us_per_io=%.3f\n",
        rep + 1, coring[rep].iops, coring[rep].cpu_us_per_io, peer[rep].iops,
        peer[rep].cpu_us_per_io);
  }
  const auto [low, high] = std::minmax_element(paired.begin(), paired.end());
  std::printf(
      "file-randread vs fio io_uring (--fixedbufs --registerfiles --invalidate=0): %s, "
      "4 KiB random reads, qd %u, %lld ms per run, %llu runs per side interleaved, "
      "direct=%d; medians; coring's backend: %s\n",
      options.file.c_str(), options.queue_depth, static_cast<long long>(options.duration.count()),
      static_cast<unsigned long long>(reps), options.direct ? 1 : 0, backend.describe().c_str());
  std::printf("%8s %12s %15s\n", "side", "iops", "cpu_us_per_io");
  std::printf("%8s %12.0f %15.3f\n", "coring", median(coring_iops), median(coring_cpu));
  std::printf("%8s %12.0f %15.3f\n", "fio", median(fio_iops), median(fio_cpu));
  std::printf("ratio=%.3f (coring/fio iops; per-rep %.3f..%.3f)\n",
              median(coring_iops) / median(fio_iops), *low, *high);
  return 0;
}

}  // namespace coring::bench
