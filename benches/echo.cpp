// coring-bench echo: server CPU per message of coring's echo server against an epoll and
// a liburing echo server.
//
// Each run starts one server in a child process pinned to the server CPU (child_process.hpp),
// connects the load client (echo_client.hpp, pinned to the client CPU) with C
// connections, drives the load for a warm-up second, then for T measured seconds, and
// reads the server's CPU time (its threads' run time, user and system) at both ends of
// the measured window. Servers take turns run by run (coring, epoll, liburing, coring,
// ...), so drift in the machine's state falls on all of them, and the table reports
// medians. The ratios compare coring's median server CPU per message with each peer's;
// each run's ratio to the peer run right after it gives the spread.
#include "echo.hpp"

#include <signal.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "child_process.hpp"
#include "echo_client.hpp"
#include "measure.hpp"
#include "peers/echo_peers.hpp"
#include "peers/liburing_nop.hpp"

namespace coring::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct EchoOptions {
  EchoLoad load;
  std::chrono::seconds measured{5};
  std::chrono::milliseconds warmup{1000};
  std::uint64_t reps = 3;
  int server_cpu = 0;
  int client_cpu = 1;
};

struct Server {
  std::string_view name;
  int (*serve)(int ready_fd);
};

int serve_epoll(int ready_fd) {
  const int listen_fd = listen_loopback();
  report_listening(ready_fd, local_port(listen_fd));
  return serve_epoll_echo(listen_fd);
}

int serve_liburing(int ready_fd) {
  const int listen_fd = listen_loopback();
  report_listening(ready_fd, local_port(listen_fd));
  return serve_liburing_echo(listen_fd);
}

struct EchoRun {
  std::uint64_t msgs = 0;
  std::chrono::nanoseconds wall{0};
  std::chrono::nanoseconds server_cpu{0};
  std::chrono::nanoseconds client_cpu{0};

  [[nodiscard]] double msgs_per_s() const noexcept { return per_second(msgs, wall); }
  [[nodiscard]] double server_cpu_us_per_msg() const noexcept {
    return per_item_ns(server_cpu, msgs) / 1000.0;
  }
  [[nodiscard]] double server_cpu_share() const noexcept {
    return static_cast<double>(server_cpu.count()) / static_cast<double>(wall.count());
  }
  [[nodiscard]] double client_cpu_share() const noexcept {
    return static_cast<double>(client_cpu.count()) / static_cast<double>(wall.count());
  }
};

EchoRun run_once(const Server& server, const EchoOptions& options) {
  ChildProcess child = ChildProcess::fork_server(options.server_cpu, server.serve);
  EchoRun run;
  {
    EchoClient client(child.port(), options.load);
    client.run_until(Clock::now() + options.warmup);
    const std::chrono::nanoseconds cpu_start = child.cpu_time();
    const Stopwatch client_clock;
    run.msgs = client.run_until(Clock::now() + options.measured);
    const Sample client_time = client_clock.elapsed();
    run.server_cpu = child.cpu_time() - cpu_start;
    run.wall = client_time.wall;
    run.client_cpu = client_time.cpu;
  }
  if (child.exited()) {
    throw std::runtime_error(std::string(server.name) + " echo server exited during the run");
  }
  // coring's server shuts down cleanly on SIGTERM; the peers simply die of it.
  const int status = child.stop(SIGTERM, std::chrono::milliseconds(5000));
  if (server.name.starts_with("coring") && status != 0) {
    throw std::runtime_error(std::string(server.name) + " echo server: exit status " +
                             std::to_string(status) + " after SIGTERM (want a clean shutdown, 0)");
  }
  if (run.msgs == 0) throw std::runtime_error(std::string(server.name) + ": no message echoed");
  return run;
}

double median_of(const std::vector<EchoRun>& runs, double (EchoRun::*metric)() const noexcept) {
  std::vector<double> values;
  for (const EchoRun& run : runs) values.push_back((run.*metric)());
  return median(values);
}

void print_ratio(std::string_view peer, const std::vector<EchoRun>& coring,
                 const std::vector<EchoRun>& other, std::string_view target) {
  std::vector<double> paired;
  for (std::size_t i = 0; i < coring.size(); ++i) {
    paired.push_back(coring[i].server_cpu_us_per_msg() / other[i].server_cpu_us_per_msg());
  }
  const auto [low, high] = std::minmax_element(paired.begin(), paired.end());
  const double cpu_ratio = median_of(coring, &EchoRun::server_cpu_us_per_msg) /
                           median_of(other, &EchoRun::server_cpu_us_per_msg);
  const double rate_ratio =
      median_of(coring, &EchoRun::msgs_per_s) / median_of(other, &EchoRun::msgs_per_s);
  std::printf(
      "coring/%-8.*s server_cpu_us_per_msg ratio %.3f (runs %.3f..%.3f; target %.*s)  "
      "msgs_per_s ratio %.3f\n",
      static_cast<int>(peer.size()), peer.data(), cpu_ratio, *low, *high,
      static_cast<int>(target.size()), target.data(), rate_ratio);
}

}  // namespace

int echo_server_main(Args& args) {
  const std::uint64_t index = args.take_u64("--server", 0, 4).value_or(0);
  const int cpu = static_cast<int>(args.take_u64("--server-cpu", 0, CPU_SETSIZE - 1).value_or(0));
  args.finish();
  static constexpr std::array<Server, 5> all{{{"coring", &serve_coring_echo},
                                              {"epoll", &serve_epoll},
                                              {"liburing", &serve_liburing},
                                              {"coring-recv", &serve_coring_echo_recv},
                                              {"coring-rt", &serve_runtime_echo}}};
  const Server& server = all[index];
  if (server.serve == &serve_liburing && !liburing_echo_available()) {
    std::printf("%.*s\n", static_cast<int>(liburing_skipped.size()), liburing_skipped.data());
    return 0;
  }
  ChildProcess child = ChildProcess::fork_server(cpu, server.serve);
  std::printf("%.*s echo server: pid=%d port=%u\n", static_cast<int>(server.name.size()),
              server.name.data(), static_cast<int>(child.pid()), child.port());
  std::fflush(stdout);
  return child.wait();
}

int echo_load_main(Args& args) {
  const auto port = args.take_u64("--port", 1, 65535);
  if (!port) throw UsageError("--port is required");
  EchoLoad load;
  load.conns = static_cast<std::uint32_t>(args.take_u64("--conns", 1, 10000).value_or(load.conns));
  load.size = static_cast<std::uint32_t>(args.take_u64("--size", 1, 1 << 20).value_or(load.size));
  const auto seconds = std::chrono::seconds(args.take_u64("--seconds", 1, 3600).value_or(5));
  args.finish();
  EchoClient client(static_cast<std::uint16_t>(*port), load);
  const Stopwatch clock;
  const std::uint64_t msgs = client.run_until(Clock::now() + seconds);
  const Sample elapsed = clock.elapsed();
  std::printf("msgs=%llu msgs_per_s=%.0f client_cpu_us_per_msg=%.3f\n",
              static_cast<unsigned long long>(msgs), per_second(msgs, elapsed.wall),
              per_item_ns(elapsed.cpu, msgs) / 1000.0);
  return 0;
}

int echo_main(Args& args) {
  EchoOptions options;
  options.load.conns =
      static_cast<std::uint32_t>(args.take_u64("--conns", 1, 10000).value_or(options.load.conns));
  options.load.size =
      static_cast<std::uint32_t>(args.take_u64("--size", 1, 1 << 20).value_or(options.load.size));
  options.measured = std::chrono::seconds(args.take_u64("--seconds", 1, 3600).value_or(5));
  options.reps = args.take_u64("--reps", 1, 100).value_or(options.reps);
  options.server_cpu =
      static_cast<int>(args.take_u64("--server-cpu", 0, CPU_SETSIZE - 1).value_or(0));
  options.client_cpu =
      static_cast<int>(args.take_u64("--client-cpu", 0, CPU_SETSIZE - 1).value_or(1));
  const bool diagnostic = args.take_u64("--diagnostic", 0, 1).value_or(0) == 1;
  args.finish();
  pin_to_cpu(options.client_cpu);

  std::vector<Server> servers{{"coring", &serve_coring_echo}, {"epoll", &serve_epoll}};
  if (liburing_echo_available()) {
    servers.push_back({"liburing", &serve_liburing});
  } else {
    std::printf("%.*s\n", static_cast<int>(liburing_skipped.size()), liburing_skipped.data());
  }
  if (diagnostic) {
    servers.push_back({"coring-recv", &serve_coring_echo_recv});
    servers.push_back({"coring-rt", &serve_runtime_echo});
  }
  std::vector<std::vector<EchoRun>> runs(servers.size());
  for (std::uint64_t rep = 0; rep < options.reps; ++rep) {
    for (std::size_t i = 0; i < servers.size(); ++i) {
      runs[i].push_back(run_once(servers[i], options));
    }
  }

  std::printf(
      "echo: %u connections, %u-byte messages, one in flight each, every reply checked; "
      "%lld s measured per run after %lld ms of warm-up; %llu runs per server, interleaved; "
      "server on CPU %d, client on CPU %d; medians\n",
      options.load.conns, options.load.size, static_cast<long long>(options.measured.count()),
      static_cast<long long>(options.warmup.count()), static_cast<unsigned long long>(options.reps),
      options.server_cpu, options.client_cpu);
  std::printf("%-12s %12s %22s %16s %16s\n", "server", "msgs_per_s", "server_cpu_us_per_msg",
              "server_cpu_util", "client_cpu_util");
  for (std::size_t i = 0; i < servers.size(); ++i) {
    std::printf("%-12.*s %12.0f %22.3f %16.2f %16.2f\n", static_cast<int>(servers[i].name.size()),
                servers[i].name.data(), median_of(runs[i], &EchoRun::msgs_per_s),
                median_of(runs[i], &EchoRun::server_cpu_us_per_msg),
                median_of(runs[i], &EchoRun::server_cpu_share),
                median_of(runs[i], &EchoRun::client_cpu_share));
  }
  print_ratio("epoll", runs[0], runs[1], "<= 0.90");
  if (liburing_echo_available()) print_ratio("liburing", runs[0], runs[2], "<= 1.10");
  return 0;
}

}  // namespace coring::bench
