// coring-bench echo: server CPU per message of coring's echo server against an epoll, a
// liburing and two Boost.Asio echo servers (Asio's epoll reactor and its io_uring backend).
//
// Each run starts one server in a child process pinned to the server CPU (child_process.hpp),
// connects the load client (echo_client.hpp, pinned to the client CPU) with C
// connections, drives the load for a warm-up second, then for T measured seconds, and
// reads the server's CPU time (its threads' run time, user and system) at both ends of
// the measured window. Servers take turns run by run (coring, epoll, liburing, coring,
// ...), so drift in the machine's state falls on all of them, and the table reports
// medians. The ratios compare coring's median server CPU per message with each peer's;
// each run's ratio to the peer run right after it gives the spread.
//
// coring's, the epoll and the liburing servers are functions of coring-bench run in a
// forked child; the Asio servers are programs of their own (peers/asio_echo.cpp, built
// next to coring-bench when Boost's headers were found), exec'd with --port P.
//
// coring's server runs on the backend the environment says, or --backend's (backend.hpp).
// With --backend B, a reference row, coring's server on the other backend, runs in the
// same rounds right after the epoll peer: `echo --backend epoll` sets coring-echo on the
// emulation against its peers, and on io_uring beside it. `all` adds that row on the
// epoll backend to its io_uring run as a row of its own, echo-epoll-backend, its ratio
// taken to the same runs of the epoll peer.
#include "echo.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "child_process.hpp"
#include "echo_client.hpp"
#include "measure.hpp"
#include "peers/echo_peers.hpp"
#include "peers/liburing_nop.hpp"
#include "suite.hpp"

namespace coring::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct EchoOptions {
  EchoLoad load;
  std::chrono::milliseconds measured{5000};
  std::chrono::milliseconds warmup{1000};
  std::uint64_t reps = 3;
  int server_cpu = 0;
  int client_cpu = 1;
};

// A server of the benchmark: a function run in a forked child, or a program exec'd
// with --port P. `missing` says why it cannot run in this build or on this machine.
struct Server {
  std::string name;
  int (*serve)(int ready_fd) = nullptr;
  std::string program;
  std::string missing;
  std::string install;  // the apt-get line that adds what is missing
  // For a coring server: the backend it runs on whatever the environment says (CORING_BACKEND
  // set in its child); unset, it follows the environment.
  std::optional<ring::Backend> backend{};
};

int serve_liburing(int ready_fd) {
  const int listen_fd = listen_loopback();
  report_listening(ready_fd, local_port(listen_fd));
  return serve_liburing_echo(listen_fd);
}

Server asio_server(std::string name, std::string_view program, std::string_view packages) {
  Server server{std::move(name), nullptr, sibling_program(program), {}, {}};
  if (server.program.empty()) {
    server.missing = std::string(program) + " was not built (it needs " + std::string(packages) +
                     " when coring-bench is built)";
    server.install = "apt-get install -y " + std::string(packages);
  }
  return server;
}

// coring-echo's code on `backend` whatever the environment says: "coring(epoll)".
Server coring_on(ring::Backend backend) {
  Server server{std::string("coring(") + ring::to_string(backend) + ")",
                &serve_coring_echo,
                {},
                backend_unavailable(backend),
                {},
                backend};
  return server;
}

// coring's server and its peers, in the order of the table; `on` adds coring's server on
// that backend right after the epoll peer, `diagnostic` two more coring rows at the end
// (see echo.hpp).
std::vector<Server> echo_servers(bool diagnostic, std::optional<ring::Backend> on = {}) {
  std::vector<Server> servers{{"coring", &serve_coring_echo, {}, {}, {}},
                              {"epoll", &serve_epoll, {}, {}, {}}};
  if (on) servers.push_back(coring_on(*on));
  servers.push_back({"liburing", &serve_liburing, {}, {}, {}});
  if (!liburing_echo_available()) {
    servers.back().missing = "liburing-dev was missing when coring-bench was built";
    servers.back().install = "apt-get install -y liburing-dev";
  }
  servers.push_back(asio_server("asio-epoll", "coring-peer-asio-epoll", "libboost1.81-dev"));
  servers.push_back(
      asio_server("asio-uring", "coring-peer-asio-uring", "libboost1.81-dev liburing-dev"));
  if (diagnostic) {
    servers.push_back({"coring-recv", &serve_coring_echo_recv, {}, {}, {}});
    servers.push_back({"coring-rt", &serve_runtime_echo, {}, {}, {}});
  }
  return servers;
}

struct RunningServer {
  ChildProcess child;
  std::uint16_t port;
};

RunningServer start(const Server& server, int cpu) {
  if (server.serve != nullptr) {
    ChildProcess child =
        server.backend ? ChildProcess::fork_server(cpu, serve_on(*server.backend, server.serve))
                       : ChildProcess::fork_server(cpu, server.serve);
    const std::uint16_t port = child.port();
    return {std::move(child), port};
  }
  const std::uint16_t port = free_loopback_port();
  RunningServer running{ChildProcess::exec(cpu, {server.program, "--port", std::to_string(port)}),
                        port};
  ::close(connect_loopback(port, std::chrono::milliseconds(10'000)));  // it listens
  return running;
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
  RunningServer running = start(server, options.server_cpu);
  ChildProcess& child = running.child;
  EchoRun run;
  {
    EchoClient client(running.port, options.load);
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
    throw std::runtime_error(server.name + " echo server exited during the run");
  }
  // coring's server shuts down cleanly on SIGTERM; the peers simply die of it.
  const int status = child.stop(SIGTERM, std::chrono::milliseconds(5000));
  if (server.name.starts_with("coring") && status != 0) {
    throw std::runtime_error(server.name + " echo server: exit status " + std::to_string(status) +
                             " after SIGTERM (want a clean shutdown, 0)");
  }
  if (run.msgs == 0) throw std::runtime_error(server.name + ": no message echoed");
  return run;
}

// The runs of every server that can run, interleaved: runs[i] belongs to servers[i]
// (empty for one that is missing).
std::vector<std::vector<EchoRun>> run_echo(const std::vector<Server>& servers,
                                           const EchoOptions& options) {
  std::vector<std::function<EchoRun()>> sides;
  for (const Server& server : servers) {
    if (server.missing.empty()) {
      sides.emplace_back([&server, &options] { return run_once(server, options); });
    }
  }
  std::vector<std::vector<EchoRun>> ran = interleave(options.reps, sides);
  std::vector<std::vector<EchoRun>> runs(servers.size());
  std::size_t next = 0;
  for (std::size_t i = 0; i < servers.size(); ++i) {
    if (servers[i].missing.empty()) runs[i] = std::move(ran[next++]);
  }
  return runs;
}

double median_of(const std::vector<EchoRun>& runs, double (EchoRun::*metric)() const noexcept) {
  std::vector<double> values;
  for (const EchoRun& run : runs) values.push_back((run.*metric)());
  return median(values);
}

// Whether `server` is a peer, not one of coring's servers.
bool is_peer(const Server& server) { return !server.name.starts_with("coring"); }

// The issues' targets for coring's server CPU per message over a peer's, on a backend:
// issue 5's on io_uring, the epoll backend's (its issue) on the emulation; the other
// peers are for information.
std::string_view echo_target(ring::Backend backend, std::string_view peer) {
  if (backend == ring::Backend::epoll) return peer == "epoll" ? "<= 1.10" : "none";
  if (peer == "epoll") return "<= 0.90";
  if (peer == "liburing") return "<= 1.10";
  return "none";
}

void print_ratio(const std::string& coring_name, const std::string& peer,
                 const std::vector<EchoRun>& coring, const std::vector<EchoRun>& other,
                 std::string_view target) {
  std::vector<double> paired;
  for (std::size_t i = 0; i < coring.size(); ++i) {
    paired.push_back(coring[i].server_cpu_us_per_msg() / other[i].server_cpu_us_per_msg());
  }
  const auto [low, high] = std::minmax_element(paired.begin(), paired.end());
  const double cpu_ratio = median_of(coring, &EchoRun::server_cpu_us_per_msg) /
                           median_of(other, &EchoRun::server_cpu_us_per_msg);
  const double rate_ratio =
      median_of(coring, &EchoRun::msgs_per_s) / median_of(other, &EchoRun::msgs_per_s);
  const std::string pair = coring_name + "/" + peer;
  std::printf(
      "%-27s server_cpu_us_per_msg ratio %.3f (runs %.3f..%.3f; target %.*s)  "
      "msgs_per_s ratio %.3f\n",
      pair.c_str(), cpu_ratio, *low, *high, static_cast<int>(target.size()), target.data(),
      rate_ratio);
}

// Every run's server CPU per message, on stderr: the figures behind the medians.
void print_runs(const std::vector<Server>& servers, const std::vector<std::vector<EchoRun>>& runs) {
  for (std::size_t rep = 0; rep < runs.front().size(); ++rep) {
    std::fprintf(stderr, "echo: run %zu server_cpu_us_per_msg:", rep + 1);
    for (std::size_t i = 0; i < servers.size(); ++i) {
      if (!runs[i].empty()) {
        std::fprintf(stderr, " %s %.3f", servers[i].name.c_str(),
                     runs[i][rep].server_cpu_us_per_msg());
      }
    }
    std::fprintf(stderr, "\n");
  }
}

// What echo_main() prints: a row per server that ran, then the ratio of coring's server
// (and of the reference row, on the other backend) to each peer.
void print_table(const std::vector<Server>& servers, const std::vector<std::vector<EchoRun>>& runs,
                 const EchoOptions& options, const CoringBackend& backend) {
  std::printf(
      "echo: %u connections, %u-byte messages, one in flight each, every reply checked; "
      "%lld ms measured per run after %lld ms of warm-up; %llu runs per server, interleaved; "
      "server on CPU %d, client on CPU %d; medians; coring's backend: %s",
      options.load.conns, options.load.size, static_cast<long long>(options.measured.count()),
      static_cast<long long>(options.warmup.count()), static_cast<unsigned long long>(options.reps),
      options.server_cpu, options.client_cpu, backend.describe().c_str());
  for (const Server& server : servers) {
    if (server.backend) {
      std::printf(
          "; %s: coring's server with CORING_BACKEND=%s, its turn right after the epoll "
          "peer's",
          server.name.c_str(), ring::to_string(*server.backend));
    }
  }
  std::printf("\n%-16s %12s %22s %16s %16s\n", "server", "msgs_per_s", "server_cpu_us_per_msg",
              "server_cpu_util", "client_cpu_util");
  for (std::size_t i = 0; i < servers.size(); ++i) {
    if (runs[i].empty()) {
      std::printf("%-16s skipped: %s%s%s%s\n", servers[i].name.c_str(), servers[i].missing.c_str(),
                  servers[i].install.empty() ? "" : " (", servers[i].install.c_str(),
                  servers[i].install.empty() ? "" : ")");
      continue;
    }
    std::printf("%-16s %12.0f %22.3f %16.2f %16.2f\n", servers[i].name.c_str(),
                median_of(runs[i], &EchoRun::msgs_per_s),
                median_of(runs[i], &EchoRun::server_cpu_us_per_msg),
                median_of(runs[i], &EchoRun::server_cpu_share),
                median_of(runs[i], &EchoRun::client_cpu_share));
  }
  // coring's server (row 0) and the reference row against each peer; the diagnostic
  // rows are left out.
  for (std::size_t i = 0; i < servers.size(); ++i) {
    if ((i != 0 && !servers[i].backend) || runs[i].empty()) continue;
    const ring::Backend on = servers[i].backend.value_or(backend.backend);
    for (std::size_t j = 0; j < servers.size(); ++j) {
      if (!is_peer(servers[j]) || runs[j].empty()) continue;
      print_ratio(servers[i].name, servers[j].name, runs[i], runs[j],
                  echo_target(on, servers[j].name));
    }
  }
}

}  // namespace

int serve_epoll(int ready_fd) {
  const int listen_fd = listen_loopback();
  report_listening(ready_fd, local_port(listen_fd));
  return serve_epoll_echo(listen_fd);
}

std::vector<BenchResult> echo_suite(const SuiteOptions& suite) {
  EchoOptions options;
  options.load = EchoLoad{suite.echo_conns, suite.echo_size};
  options.measured = suite.measured;
  options.warmup = suite.warmup;
  options.reps = suite.reps;
  options.server_cpu = suite.server_cpu;
  options.client_cpu = suite.client_cpu;
  std::optional<ring::Backend> emulated;
  if (suite.epoll_backend_rows) emulated = ring::Backend::epoll;
  const std::vector<Server> servers = echo_servers(false, emulated);
  const std::vector<std::vector<EchoRun>> runs = run_echo(servers, options);
  const std::string params =
      "C=" + std::to_string(options.load.conns) + " S=" + std::to_string(options.load.size);
  BenchResult echo{"echo", params, echo_metrics, {}, {}};
  echo.backend = suite.backend;
  // coring-echo on the epoll backend against the epoll peer's runs of the same rounds.
  BenchResult on_epoll{"echo-epoll-backend", params, echo_metrics, {}, {}};
  on_epoll.backend = ring::to_string(ring::Backend::epoll);
  Side emulated_coring;
  for (std::size_t i = 0; i < servers.size(); ++i) {
    Side side = runs[i].empty()
                    ? skipped_side(servers[i].name, servers[i].missing, servers[i].install)
                    : measured_side(servers[i].name, runs[i], &EchoRun::server_cpu_us_per_msg,
                                    &EchoRun::msgs_per_s);
    if (servers[i].backend) {
      side.name = "coring";
      emulated_coring = std::move(side);
      continue;
    }
    if (servers[i].name == "epoll") on_epoll.sides.push_back(side);
    echo.sides.push_back(std::move(side));
  }
  if (!emulated) return {echo};
  on_epoll.sides.insert(on_epoll.sides.begin(), std::move(emulated_coring));
  return {echo, on_epoll};
}

int echo_server_main(Args& args) {
  const std::uint64_t index = args.take_u64("--server", 0, 6).value_or(0);
  const int cpu = static_cast<int>(args.take_u64("--server-cpu", 0, CPU_SETSIZE - 1).value_or(0));
  const CoringBackend backend = take_backend(args);
  args.finish();
  const std::vector<Server> servers = echo_servers(true);
  // The order of --server: the table's, then the diagnostic rows.
  const Server& server = servers[index];
  if (!server.missing.empty()) {
    std::printf("skipped: %s (%s)\n", server.missing.c_str(), server.install.c_str());
    return 0;
  }
  RunningServer running = start(server, cpu);
  std::printf("%s echo server: pid=%d port=%u", server.name.c_str(),
              static_cast<int>(running.child.pid()), running.port);
  if (!is_peer(server)) std::printf(" backend=%s", backend.name().c_str());
  std::printf("\n");
  std::fflush(stdout);
  return running.child.wait();
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
  std::tie(options.server_cpu, options.client_cpu) = take_cpus(args, {0, 1});
  const bool diagnostic = args.take_u64("--diagnostic", 0, 1).value_or(0) == 1;
  const CoringBackend backend = take_backend(args);
  args.finish();
  pin_to_cpu(options.client_cpu);
  // With --backend, coring's server on the other backend too, for reference.
  std::optional<ring::Backend> reference;
  if (backend.requested) reference = other_backend(backend.backend);
  const std::vector<Server> servers = echo_servers(diagnostic, reference);
  const std::vector<std::vector<EchoRun>> runs = run_echo(servers, options);
  print_runs(servers, runs);
  print_table(servers, runs, options, backend);
  return 0;
}

}  // namespace coring::bench
