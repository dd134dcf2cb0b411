// coring-bench all: the suite, its one table, and what it leaves behind (report.hpp).
//
// The benchmarks run one after the other, each interleaving coring with its peers R
// times; the in-process ones (ring-nop, runtime-nop, file-randread's coring side) and
// the load clients run on the client CPU, the servers of echo and http on the server
// CPU, so a server never competes with its load. A benchmark that fails does not stop
// the others: its rows say FAILED with the reason, and the exit status is 1. A peer the
// machine lacks is a "skipped" cell and a line under the table naming the apt-get
// command that adds it; that is no failure. The header says which backend coring's side
// ran on (--backend, or the environment's); on io_uring, echo and http add a row each
// on the epoll backend (suite.hpp).
#include "suite.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "measure.hpp"
#include "report.hpp"

namespace coring::bench {
namespace {

constexpr std::uint64_t default_file_mib = 128;

// A file of pseudo-random bytes for file-randread, removed on destruction.
class ScratchFile {
 public:
  explicit ScratchFile(std::uint64_t mib) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "coring-bench-randread.XXXXXX").string();
    const int fd = ::mkostemp(pattern.data(), O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "mkostemp " + pattern);
    path_ = pattern;
    std::vector<std::uint64_t> chunk((1 << 20) / sizeof(std::uint64_t));
    std::uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (std::uint64_t i = 0; i < mib; ++i) {
      for (std::uint64_t& word : chunk)
        word = x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      if (::write(fd, chunk.data(), 1 << 20) != 1 << 20) {
        const int error = errno;
        ::close(fd);
        std::filesystem::remove(path_);
        throw std::system_error(error, std::system_category(), "write " + path_);
      }
    }
    ::close(fd);
  }
  ~ScratchFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

// The first two CPUs this process may run on, for the servers and the clients; the
// same one twice if there is only one.
std::pair<int, int> default_cpus() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return {0, 0};
  std::vector<int> allowed;
  for (int cpu = 0; cpu < CPU_SETSIZE && allowed.size() < 2; ++cpu) {
    if (CPU_ISSET(cpu, &set)) allowed.push_back(cpu);
  }
  if (allowed.empty()) return {0, 0};
  return {allowed.front(), allowed.back()};
}

struct Entry {
  std::vector<std::string> rows;  // the names of the rows it returns, for its FAILED rows
  std::array<Metric, 2> metrics;
  std::function<std::vector<BenchResult>(const SuiteOptions&)> run;
};

std::vector<Entry> entries(const SuiteOptions& options) {
  const auto one = [](BenchResult (*run)(const SuiteOptions&)) {
    return [run](const SuiteOptions& suite) { return std::vector<BenchResult>{run(suite)}; };
  };
  const auto rows = [&options](const std::string& name) {
    return options.epoll_backend_rows ? std::vector<std::string>{name, name + "-epoll-backend"}
                                      : std::vector<std::string>{name};
  };
  return {
      {{"ring-nop", "runtime-nop"}, nop_metrics, &nop_suite},
      {rows("echo"), echo_metrics, &echo_suite},
      {rows("http"), http_metrics, &http_suite},
      {{"http-static-1k"}, http_metrics, one(&http_static_small_suite)},
      {{"http-static-10m"}, http_metrics, one(&http_static_large_suite)},
      {{"https"}, http_metrics, one(&https_suite)},
      {{"https-handshake"}, http_metrics, one(&https_handshake_suite)},
      {{"file-randread"}, randread_metrics, one(&randread_suite)},
      {{"idle"}, idle_metrics, one(&idle_suite)},
      {{"fairness-echo", "fairness-http"}, fairness_metrics, &fairness_suite},
  };
}

// Runs one entry; a failure becomes its rows' error.
std::vector<BenchResult> run_entry(const Entry& entry, const SuiteOptions& options) {
  const Stopwatch clock;
  std::fprintf(stderr, "all: %s...\n", entry.rows.front().c_str());
  std::vector<BenchResult> results;
  try {
    results = entry.run(options);
  } catch (const std::exception& e) {
    results.clear();
    for (const std::string& row : entry.rows) {
      results.push_back(BenchResult{row, "", entry.metrics, {}, e.what()});
      if (row.ends_with("-epoll-backend")) results.back().backend = "epoll";
    }
  }
  std::fprintf(stderr, "all: %s done in %.1f s\n", entry.rows.front().c_str(),
               static_cast<double>(clock.elapsed().wall.count()) / 1e9);
  return results;
}

}  // namespace

std::string format_figure(double value, const std::string& unit) {
  char text[32];
  if (unit == "1/s") {
    if (value >= 1e6) {
      std::snprintf(text, sizeof(text), "%.2f M/s", value / 1e6);
    } else if (value < 1e3) {
      std::snprintf(text, sizeof(text), "%.1f /s", value);
    } else {
      std::snprintf(text, sizeof(text), "%.1f k/s", value / 1e3);
    }
  } else {
    std::snprintf(text, sizeof(text), value < 10 ? "%.3f %s" : "%.1f %s", value, unit.c_str());
  }
  return text;
}

namespace {

std::string format_ratio(const BenchResult& result, const Side& peer, std::size_t metric) {
  const Side& coring = result.sides.front();
  if (!result.metrics[metric].ratio || !coring.ran() || !peer.ran()) return "-";
  char text[16];
  std::snprintf(text, sizeof(text), "%.3f", coring.median_of(metric) / peer.median_of(metric));
  return text;
}

constexpr const char* row_format = "%-34s %-12s %14s %14s %9s %13s %13s %9s\n";

void print_peer_row(const std::string& label, const BenchResult& result, const Side& peer) {
  const Side& coring = result.sides.front();
  if (!peer.ran()) {
    std::printf("%-34s %-12s skipped: %s\n", label.c_str(), peer.name.c_str(),
                peer.skipped.c_str());
    return;
  }
  const auto value = [&result](const Side& side, std::size_t m) {
    return side.ran() ? format_figure(side.median_of(m), result.metrics[m].unit)
                      : std::string("skipped");
  };
  std::printf(row_format, label.c_str(), peer.name.c_str(), value(coring, 0).c_str(),
              value(peer, 0).c_str(), format_ratio(result, peer, 0).c_str(),
              value(coring, 1).c_str(), value(peer, 1).c_str(),
              format_ratio(result, peer, 1).c_str());
}

void print_table(const std::vector<BenchResult>& results, const SuiteOptions& options) {
  std::printf(
      "coring-bench all: %llu runs per side, interleaved; medians. CPU/op: the CPU time of the "
      "process under test per operation (servers: their own CPU, on CPU %d; the rest on CPU "
      "%d); cpu ratio < 1: coring spends less; rate ratio > 1: coring is faster. Ratios are "
      "coring/peer.\n",
      static_cast<unsigned long long>(options.reps), options.server_cpu, options.client_cpu);
  std::printf(
      "coring's backend: %s, for every row (ring-nop's coring side too: its Ring is set up on "
      "it)%s.\n\n",
      options.backend_note.c_str(),
      options.epoll_backend_rows
          ? " but the -epoll-backend rows: coring-echo and coring-http with CORING_BACKEND=epoll, "
            "in the same rounds as the echo and http rows, against the same runs of their peers"
          : "");
  std::printf(row_format, "benchmark", "peer", "coring CPU/op", "peer CPU/op", "cpu ratio",
              "coring rate", "peer rate", "rate ratio");
  for (const BenchResult& result : results) {
    std::string label = result.name + (result.params.empty() ? "" : " (" + result.params + ")");
    if (!result.error.empty()) {
      std::printf("%-34s FAILED: %s\n", label.c_str(), result.error.c_str());
      continue;
    }
    for (std::size_t i = 1; i < result.sides.size(); ++i) {
      print_peer_row(label, result, result.sides[i]);
      label.clear();
    }
    if (result.sides.size() == 1) print_peer_row(label, result, result.sides.front());
  }
  std::printf("\nCPU/op is %s, %s, %s, %s; rate is operations per second of wall time.\n",
              "ns per NOP for ring-nop and runtime-nop", "server us per message for echo",
              "server us per request for the http rows", "us per read for file-randread");
  std::printf(
      "idle is no CPU figure: its CPU/op column is the server's resident bytes per idle "
      "connection (VmRSS), its rate the connections opened and echoed per second; it has no "
      "memory ratio, the epoll peer's figure being about 0 (coring-bench idle prints "
      "coring-echo's against its target).\n");
  std::printf(
      "fairness is no CPU figure either: its CPU/op column is the p99 latency of a fresh "
      "connection's round trip while N clients send without reading (a lost probe counting as "
      "its 1000 ms timeout), its rate the share of those probes answered; it has no latency "
      "ratio (coring-bench fairness prints coring's against its target).\n");
}

// The skipped sides under the table, each with the apt-get line that adds it.
void print_skipped(const std::vector<BenchResult>& results) {
  bool first = true;
  for (const BenchResult& result : results) {
    for (const Side& side : result.sides) {
      if (side.ran()) continue;
      if (first) std::printf("\nskipped (a missing peer is not an error):\n");
      first = false;
      std::printf("  %s %s: %s%s%s\n", result.name.c_str(), side.name.c_str(), side.skipped.c_str(),
                  side.install.empty() ? "" : "; to add it: ", side.install.c_str());
    }
  }
}

SuiteOptions take_suite_options(Args& args) {
  SuiteOptions options;
  options.reps = args.take_u64("--reps", 1, 100).value_or(options.reps);
  options.measured =
      args.take_seconds("--seconds", std::chrono::milliseconds(100), std::chrono::hours(1))
          .value_or(options.measured);
  // A warm-up of half the measured time, at most a second.
  options.warmup =
      std::min<std::chrono::milliseconds>(options.measured / 2, std::chrono::seconds(1));
  options.nop_ops = args.take_u64("--ops", 1000, UINT64_MAX / 2).value_or(options.nop_ops);
  options.idle_conns = args.take_u64("--idle-conns", 1, 1'000'000).value_or(options.idle_conns);
  options.fairness_clients =
      args.take_u64("--fairness-clients", 1, 1000).value_or(options.fairness_clients);
  options.fairness_probes =
      args.take_u64("--fairness-probes", 1, 1'000'000).value_or(options.fairness_probes);
  std::tie(options.server_cpu, options.client_cpu) = take_cpus(args, default_cpus());
  return options;
}

}  // namespace

std::pair<int, int> take_cpus(Args& args, std::pair<int, int> defaults) {
  const auto take = [&args](std::string_view name, int fallback) {
    return static_cast<int>(
        args.take_u64(name, 0, CPU_SETSIZE - 1).value_or(static_cast<std::uint64_t>(fallback)));
  };
  return {take("--server-cpu", defaults.first), take("--client-cpu", defaults.second)};
}

double Side::median_of(std::size_t m) const { return median(values[m]); }

Side skipped_side(std::string name, std::string why, std::string install) {
  Side side;
  side.name = std::move(name);
  side.skipped = std::move(why);
  side.install = std::move(install);
  return side;
}

int all_main(Args& args) {
  SuiteOptions options = take_suite_options(args);
  const auto json = args.take_string("--json");
  const auto file = args.take_string("--file");
  const std::uint64_t file_mib = args.take_u64("--file-mib", 1, 1 << 20).value_or(default_file_mib);
  const CoringBackend backend = take_backend(args);
  args.finish();
  options.backend = backend.name();
  options.backend_note = backend.describe();
  options.epoll_backend_rows = backend.backend != ring::Backend::epoll;
  if (options.server_cpu == options.client_cpu) {
    std::fprintf(stderr,
                 "all: servers and clients share CPU %d (this process may use no other): "
                 "the network figures include the load's competition\n",
                 options.server_cpu);
  }
  pin_to_cpu(options.client_cpu);

  const Stopwatch clock;
  std::optional<ScratchFile> scratch;
  if (file) {
    options.randread_file = *file;
  } else {
    scratch.emplace(file_mib);
    options.randread_file = scratch->path();
  }
  std::vector<BenchResult> results;
  for (const Entry& entry : entries(options)) {
    for (BenchResult& result : run_entry(entry, options)) {
      if (result.backend.empty()) result.backend = options.backend;
      results.push_back(std::move(result));
    }
  }
  scratch.reset();

  ReportInfo info;
  if (json) {
    info.chart = std::filesystem::path(*json).replace_extension(".png").string();
    info.chart_note = draw_chart(info.chart, results, options.reps);
    if (!info.chart_note.empty()) info.chart.clear();
  }
  info.wall = std::chrono::duration_cast<std::chrono::milliseconds>(clock.elapsed().wall);
  print_table(results, options);
  print_skipped(results);
  if (json) {
    write_json(*json, options, results, info);
    std::printf("\nresults: %s\nchart: %s\n", json->c_str(),
                info.chart.empty() ? ("none: " + info.chart_note).c_str() : info.chart.c_str());
  }
  std::printf("all: %.1f s\n", static_cast<double>(info.wall.count()) / 1e3);
  bool failed = false;
  for (const BenchResult& result : results) failed = failed || !result.error.empty();
  return failed ? 1 : 0;
}

}  // namespace coring::bench
