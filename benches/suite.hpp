// coring-bench all: every benchmark against its peers in one run, one table of medians.
//
// Each benchmark contributes rows through a function that runs coring and its peers
// interleaved (interleave() below) and returns a BenchResult: per side, the figures of
// every run for two metrics, CPU per operation first (the one the ratios are about)
// and throughput second (idle's: memory per idle connection, then connections opened
// per second; fairness's: a probe's p99 latency, then the share of probes answered). A
// peer this machine lacks is a skipped Side that carries the apt-get line that adds it;
// it is never an error. The same functions serve the benchmarks' own *-compare
// subcommands, which print their own, more detailed tables.
//
// coring's side runs on one backend (backend.hpp): `all --backend epoll` runs the whole
// suite on the emulation. On io_uring, `all` adds two rows measured in the same rounds
// as the rest: echo-epoll-backend (coring-echo on the epoll backend against the echo
// row's epoll peer runs) and http-epoll-backend (coring-http on it against the http row's
// nginx runs).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "measure.hpp"

namespace coring::bench {

// What `all` hands every benchmark.
struct SuiteOptions {
  std::uint64_t reps = 3;                    // runs per side, interleaved
  std::chrono::milliseconds measured{2000};  // timed window of echo, http, file-randread
  std::chrono::milliseconds warmup{1000};    // untimed load before it (echo, http)
  std::uint64_t nop_ops = 2'000'000;         // NOPs per run of ring-nop and runtime-nop
  std::uint32_t nop_batch = 32;              // NOPs per enter, coroutines in flight
  std::uint32_t echo_conns = 50;
  std::uint32_t echo_size = 64;
  std::uint32_t http_conns = 64;
  std::uint32_t static_small_conns = 50;  // http-static-1k's wrk connections
  std::uint32_t static_large_conns = 4;   // http-static-10m's
  std::uint32_t handshake_conns = 8;      // https-handshake's (https's: http_conns)
  std::uint32_t randread_qd = 32;
  std::uint64_t idle_conns = 10'000;
  std::uint64_t fairness_clients = 50;  // clients that send without reading
  std::uint64_t fairness_probes = 40;   // one every 50 ms: 2 s per run
  std::string randread_file;            // made (and warmed) by `all` unless given
  int server_cpu = 0;                   // the servers of echo and http
  int client_cpu = 1;                   // their load, and the in-process benchmarks
  std::string backend = "io_uring";     // the backend coring's side runs on (CoringBackend)
  std::string backend_note;             // and what chose it (CoringBackend::describe())
  // Whether echo and http add their rows on the epoll backend (not when the suite runs
  // on it already).
  bool epoll_backend_rows = false;
};

struct Metric {
  std::string name;  // e.g. "server_cpu_us_per_msg"
  std::string unit;  // e.g. "us"
  bool lower_is_better = true;
  // Whether coring's median over a peer's means anything: not for idle's bytes per
  // connection, which are about 0 for the epoll peer, nor for fairness's latencies, a
  // fraction of a millisecond or a bound (a lost probe counts as its timeout). Without it the table
  // shows no ratio, the JSON a null one, and the chart (of metric 0) leaves the benchmark out.
  bool ratio = true;
};

// One side of a benchmark: coring, or one of its peers.
struct Side {
  std::string name;
  std::array<std::vector<double>, 2> values;  // [metric][run], empty when skipped
  std::string skipped;                        // why it did not run; empty if it ran
  std::string install;                        // the apt-get line that adds it, if any

  [[nodiscard]] bool ran() const noexcept { return skipped.empty(); }
  // The median of metric m's runs; the side must have run.
  [[nodiscard]] double median_of(std::size_t m) const;
};

struct BenchResult {
  std::string name;               // "echo"
  std::string params;             // "C=50 S=64", what the row measured
  std::array<Metric, 2> metrics;  // [0] CPU per operation, [1] throughput
  std::vector<Side> sides;        // [0] coring's
  std::string error;              // non-empty when the benchmark failed
  // The backend coring's side ran on ("io_uring", "epoll"); `all` fills in the suite's
  // where a benchmark leaves it empty.
  std::string backend{};
};

// The metrics of each benchmark's rows.
inline const std::array<Metric, 2> nop_metrics{Metric{"cpu_ns_per_op", "ns", true},
                                               Metric{"ops_per_s", "1/s", false}};
inline const std::array<Metric, 2> echo_metrics{Metric{"server_cpu_us_per_msg", "us", true},
                                                Metric{"msgs_per_s", "1/s", false}};
inline const std::array<Metric, 2> http_metrics{Metric{"server_cpu_us_per_request", "us", true},
                                                Metric{"requests_per_s", "1/s", false}};
inline const std::array<Metric, 2> randread_metrics{Metric{"cpu_us_per_io", "us", true},
                                                    Metric{"iops", "1/s", false}};
// idle's rows are no CPU figure: the server's resident memory per idle connection, and
// the rate at which the client opened them (each with its echo).
inline const std::array<Metric, 2> idle_metrics{Metric{"bytes_per_conn", "B", true, false},
                                                Metric{"conns_per_s", "1/s", false}};
// fairness's rows neither: the p99 of a fresh connection's round trip while N clients send
// without reading (a lost probe counting as its timeout, 1000 ms), and the share of such
// probes answered.
inline const std::array<Metric, 2> fairness_metrics{Metric{"probe_p99_ms", "ms", true, false},
                                                    Metric{"probes_answered", "%", false}};

// A figure with its unit for people: "8.68 us", "78.4 ns", "12.75 M/s", "92.7 k/s", "31.5 /s".
[[nodiscard]] std::string format_figure(double value, const std::string& unit);

// A side that did not run; `install` may be empty (e.g. a peer left out of the build).
[[nodiscard]] Side skipped_side(std::string name, std::string why, std::string install);

// A side's figures from its runs: cpu(run) and rate(run) for the two metrics.
template <typename Run, typename Cpu, typename Rate>
[[nodiscard]] Side measured_side(std::string name, const std::vector<Run>& runs, Cpu cpu,
                                 Rate rate) {
  Side side;
  side.name = std::move(name);
  for (const Run& run : runs) {
    side.values[0].push_back(std::invoke(cpu, run));
    side.values[1].push_back(std::invoke(rate, run));
  }
  return side;
}

// Runs every side once per round, in order, for `reps` rounds, so that drift in the
// machine's state (frequency, other load) falls on all of them alike. Returns
// runs[side][round]. An exception from a run propagates.
template <typename Run>
[[nodiscard]] std::vector<std::vector<Run>> interleave(
    std::uint64_t reps, const std::vector<std::function<Run()>>& sides) {
  std::vector<std::vector<Run>> runs(sides.size());
  for (std::uint64_t rep = 0; rep < reps; ++rep) {
    for (std::size_t i = 0; i < sides.size(); ++i) runs[i].push_back(sides[i]());
  }
  return runs;
}

// The benchmarks' contributions (each defined next to its benchmark). nop_suite()
// returns two rows from one interleaved set of runs: ring-nop (coring's Ring against
// liburing) and runtime-nop (coring's EventLoop against both rings); fairness_suite()
// two as well: fairness-echo (coring-echo against epoll) and fairness-http (coring-http
// against nginx); echo_suite() and http_suite() one, or two with epoll_backend_rows:
// echo and echo-epoll-backend, http and http-epoll-backend (coring-http against nginx
// and h2o). http_static_small_suite() and http_static_large_suite() are http-static-1k
// and http-static-10m: coring's static files against nginx's. https_suite() and
// https_handshake_suite() are https (GET / over TLS 1.3, keep-alive) and
// https-handshake (a new connection and full handshake per request): coring-http
// against nginx, both HTTPS with one certificate.
std::vector<BenchResult> nop_suite(const SuiteOptions& options);
std::vector<BenchResult> echo_suite(const SuiteOptions& options);
std::vector<BenchResult> http_suite(const SuiteOptions& options);
BenchResult http_static_small_suite(const SuiteOptions& options);
BenchResult http_static_large_suite(const SuiteOptions& options);
BenchResult https_suite(const SuiteOptions& options);
BenchResult https_handshake_suite(const SuiteOptions& options);
BenchResult randread_suite(const SuiteOptions& options);
BenchResult idle_suite(const SuiteOptions& options);
std::vector<BenchResult> fairness_suite(const SuiteOptions& options);

// Takes --server-cpu A and --client-cpu B, the CPUs of a network benchmark's servers and
// of its clients; `defaults` when they are not given.
[[nodiscard]] std::pair<int, int> take_cpus(Args& args, std::pair<int, int> defaults);

// The subcommand.
int all_main(Args& args);

}  // namespace coring::bench
