// coring-bench http: server CPU per request of coring-http against nginx, both loaded by
// `wrk -t1 -c64` on another CPU.
//
// coring-http's code (examples/http_server.hpp on the Server frame, one loop) runs in a
// child process pinned to the server CPU, as the echo benchmark's servers do. nginx runs
// from a generated configuration in a temporary prefix: one worker process, no access
// log, `return 200 "Hello, World!"` on /, its own port, no limit on the requests per
// connection (as coring-http has none), started pinned to the server CPU (its worker
// inherits the affinity). wrk runs pinned to the client CPU, first for a second of
// warm-up, then for T seconds; the server's CPU time (its processes' threads' run time)
// is read around the measured wrk run and divided by the requests wrk completed. A run
// with any non-2xx response or socket error fails. The two servers alternate run by run
// and the table reports medians.
//
// coring-http runs on the backend the environment says, or --backend's (backend.hpp).
// With --backend B, a reference row, coring-http on the other backend, takes its turn
// right after nginx: `http --backend epoll` sets coring-http on the emulation against
// nginx, and on io_uring beside it. `all` adds that row on the epoll backend to its
// io_uring run as a row of its own, http-epoll-backend, its ratio taken to the same
// runs of nginx.
#include "http.hpp"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <vector>

#include "backend.hpp"
#include "child_process.hpp"
#include "http_server.hpp"
#include "measure.hpp"
#include "server.hpp"
#include "suite.hpp"

namespace coring::bench {
namespace {

namespace fs = std::filesystem;

struct HttpOptions {
  std::chrono::seconds measured{5};  // wrk's -d takes whole seconds
  std::chrono::seconds warmup{1};    // none if 0
  std::uint64_t connections = 64;
  std::uint64_t reps = 3;
  int server_cpu = 0;
  int client_cpu = 1;
};

struct HttpRun {
  std::uint64_t requests = 0;
  std::chrono::nanoseconds wall{0};
  std::chrono::nanoseconds server_cpu{0};

  [[nodiscard]] double requests_per_s() const noexcept { return per_second(requests, wall); }
  [[nodiscard]] double server_cpu_us_per_request() const noexcept {
    return per_item_ns(server_cpu, requests) / 1000.0;
  }
  [[nodiscard]] double server_cpu_share() const noexcept {
    return static_cast<double>(server_cpu.count()) / static_cast<double>(wall.count());
  }
};

// Reads everything from `fd` until end of file.
std::string read_all(int fd) {
  std::string text;
  std::array<char, 4096> chunk;
  for (;;) {
    const ssize_t got = ::read(fd, chunk.data(), chunk.size());
    if (got > 0) {
      text.append(chunk.data(), static_cast<std::size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      return text;
    }
  }
}

struct WrkResult {
  std::uint64_t requests = 0;
  std::chrono::nanoseconds wall{0};
};

// Runs wrk against 127.0.0.1:port; throws if it fails or saw errors.
WrkResult run_wrk(const std::string& wrk, const HttpOptions& options, std::uint16_t port,
                  std::chrono::seconds duration) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const auto start = std::chrono::steady_clock::now();
  ChildProcess child = ChildProcess::exec(options.client_cpu,
                                          {wrk, "-t1", "-c" + std::to_string(options.connections),
                                           "-d" + std::to_string(duration.count()) + "s",
                                           "http://127.0.0.1:" + std::to_string(port) + "/"},
                                          pipe_fds[1]);
  ::close(pipe_fds[1]);
  const std::string output = read_all(pipe_fds[0]);
  ::close(pipe_fds[0]);
  const int status = child.wait();
  WrkResult result;
  result.wall = std::chrono::steady_clock::now() - start;
  std::smatch match;
  if (status != 0 || !std::regex_search(output, match, std::regex(R"((\d+) requests in)"))) {
    throw std::runtime_error("wrk failed (exit status " + std::to_string(status) + "):\n" + output);
  }
  result.requests = std::stoull(match[1]);
  if (output.find("Non-2xx") != std::string::npos ||
      output.find("Socket errors") != std::string::npos) {
    throw std::runtime_error("wrk saw errors:\n" + output);
  }
  return result;
}

// A run against a server that listens on 127.0.0.1:port in `server`.
HttpRun measure(ChildProcess& server, const std::string& wrk, const HttpOptions& options,
                std::uint16_t port) {
  if (options.warmup.count() > 0) run_wrk(wrk, options, port, options.warmup);
  HttpRun run;
  const std::chrono::nanoseconds cpu_start = server.cpu_time();
  const WrkResult result = run_wrk(wrk, options, port, options.measured);
  run.server_cpu = server.cpu_time() - cpu_start;
  run.requests = result.requests;
  run.wall = result.wall;
  if (server.exited()) throw std::runtime_error("the server exited during the run");
  return run;
}

// coring-http on the environment's backend, or on `on`.
HttpRun run_coring(const std::string& wrk, const HttpOptions& options,
                   std::optional<ring::Backend> on) {
  ChildProcess server =
      on ? ChildProcess::fork_server(options.server_cpu, serve_on(*on, &serve_coring_http))
         : ChildProcess::fork_server(options.server_cpu, &serve_coring_http);
  HttpRun run = measure(server, wrk, options, server.port());
  const int status = server.stop(SIGTERM, std::chrono::milliseconds(5000));
  if (status != 0) {
    throw std::runtime_error("coring-http: exit status " + std::to_string(status) +
                             " after SIGTERM (want a clean shutdown, 0)");
  }
  return run;
}

// nginx's errors go to its error.log, quoted if the run fails, so that they do not
// interleave with the table.
HttpRun run_nginx(const std::string& nginx, const std::string& wrk, const HttpOptions& options) {
  Nginx server({.program = nginx, .cpu = options.server_cpu, .errors_to_stderr = false});
  try {
    HttpRun run = measure(server.process(), wrk, options, server.port());
    server.stop();
    return run;
  } catch (const std::exception& e) {
    throw std::runtime_error(server.failure(e.what()));
  }
}

double median_of(const std::vector<HttpRun>& runs, double (HttpRun::*metric)() const noexcept) {
  std::vector<double> values;
  for (const HttpRun& run : runs) values.push_back((run.*metric)());
  return median(values);
}

void print_row(std::string_view name, const std::vector<HttpRun>& runs) {
  std::printf("%-16.*s %14.0f %26.3f %16.2f\n", static_cast<int>(name.size()), name.data(),
              median_of(runs, &HttpRun::requests_per_s),
              median_of(runs, &HttpRun::server_cpu_us_per_request),
              median_of(runs, &HttpRun::server_cpu_share));
}

struct HttpRuns {
  std::vector<HttpRun> coring;
  std::vector<HttpRun> nginx;      // empty when nginx is not installed
  std::vector<HttpRun> reference;  // coring-http on another backend; empty unless asked for
};

// The runs of coring-http, nginx and, if `reference` is set, coring-http on that backend,
// interleaved in that order; nginx's are left out when `nginx` is "".
HttpRuns run_http(const HttpOptions& options, const std::string& wrk, const std::string& nginx,
                  std::optional<ring::Backend> reference) {
  std::vector<std::function<HttpRun()>> sides{
      [&wrk, &options] { return run_coring(wrk, options, std::nullopt); }};
  if (!nginx.empty()) {
    sides.emplace_back([&nginx, &wrk, &options] { return run_nginx(nginx, wrk, options); });
  }
  if (reference) {
    sides.emplace_back([&wrk, &options, reference] { return run_coring(wrk, options, reference); });
  }
  std::vector<std::vector<HttpRun>> runs = interleave(options.reps, sides);
  HttpRuns result;
  std::size_t next = 0;
  result.coring = std::move(runs[next++]);
  if (!nginx.empty()) result.nginx = std::move(runs[next++]);
  if (reference) result.reference = std::move(runs[next++]);
  return result;
}

// The reference row's name: "coring(io_uring)".
std::string reference_name_of(ring::Backend backend) {
  return std::string("coring(") + ring::to_string(backend) + ")";
}

// The issues' targets for coring-http's server CPU per request over nginx's: issue 5's on
// io_uring, the epoll backend's (its issue) on the emulation.
std::string_view http_target(ring::Backend backend) {
  return backend == ring::Backend::epoll ? "<= 1.0" : "<= 0.85";
}

void print_ratio(const std::string& name, const std::vector<HttpRun>& coring,
                 const std::vector<HttpRun>& peer, std::string_view target) {
  std::vector<double> paired;
  for (std::size_t i = 0; i < coring.size(); ++i) {
    paired.push_back(coring[i].server_cpu_us_per_request() / peer[i].server_cpu_us_per_request());
  }
  const auto [low, high] = std::minmax_element(paired.begin(), paired.end());
  const std::string pair = name + "/nginx";
  std::printf(
      "%-22s server_cpu_us_per_request ratio %.3f (runs %.3f..%.3f; target %.*s)  "
      "requests_per_s ratio %.3f\n",
      pair.c_str(),
      median_of(coring, &HttpRun::server_cpu_us_per_request) /
          median_of(peer, &HttpRun::server_cpu_us_per_request),
      *low, *high, static_cast<int>(target.size()), target.data(),
      median_of(coring, &HttpRun::requests_per_s) / median_of(peer, &HttpRun::requests_per_s));
}

// nginx's configuration (see Nginx in http.hpp), its temporary files in `prefix`, its
// errors to `error_log` (a path, or "stderr"). Returns the configuration's path.
std::string write_nginx_config(const fs::path& prefix, std::uint16_t port,
                               const std::string& error_log) {
  const std::string conf = (prefix / "nginx.conf").string();
  std::ofstream out(conf);
  out << "worker_processes 1;\ndaemon off;\npid " << (prefix / "nginx.pid").string()
      << ";\nerror_log " << error_log << " warn;\nevents { worker_connections 1024; }\n"
      << "http {\n  access_log off;\n  keepalive_requests 1000000000;\n"
      << "  keepalive_timeout 30s;\n";
  for (const char* kind : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
    out << "  " << kind << "_temp_path " << (prefix / kind).string() << ";\n";
  }
  out << "  server {\n    listen 127.0.0.1:" << port << ";\n"
      << "    location = / { default_type text/plain; return 200 \"Hello, World!\"; }\n"
      << "    location / { return 404; }\n  }\n}\n";
  if (!out) throw std::runtime_error("cannot write " + conf);
  return conf;
}

}  // namespace

int serve_coring_http(int ready_fd) {
  examples::ServerOptions options;
  options.address = net::Address::ipv4_loopback(0);
  options.threads = 1;
  options.idle_timeout = std::chrono::seconds(30);
  options.receive_pool = examples::default_receive_pool();  // as coring-http runs
  examples::Server server(options, &examples::serve_http);
  report_listening(ready_fd, server.port());
  return server.run();
}

TempDir::TempDir(std::string_view name) {
  std::string pattern = (fs::temp_directory_path() / name).string() + ".XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::system_error(errno, std::system_category(), "mkdtemp " + pattern);
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  // A destructor has no one to report a failure to: what is left stays in the temporary
  // directory.
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

Nginx::Nginx(const NginxOptions& options)
    : prefix_("coring-bench-nginx"),
      error_log_(options.errors_to_stderr ? "stderr" : (prefix_.path() / "error.log").string()),
      port_(free_loopback_port()),
      process_(start(options)) {
  try {
    ::close(connect_loopback(port_, std::chrono::milliseconds(10'000)));
  } catch (const std::exception& e) {
    throw std::runtime_error(failure(e.what()));
  }
}

ChildProcess Nginx::start(const NginxOptions& options) const {
  const std::string conf = write_nginx_config(prefix_.path(), port_, error_log_);
  return ChildProcess::exec(
      options.cpu, {options.program, "-p", prefix_.path().string(), "-c", conf, "-e", error_log_});
}

std::string Nginx::failure(std::string_view what) const {
  std::string text = "nginx: " + std::string(what);
  if (error_log_ != "stderr") {
    std::ifstream log(error_log_);
    text += "\nerror.log:\n";
    text.append(std::istreambuf_iterator<char>(log), std::istreambuf_iterator<char>());
  }
  return text;
}

int Nginx::stop() { return process_.stop(SIGQUIT, std::chrono::milliseconds(5000)); }

std::vector<BenchResult> http_suite(const SuiteOptions& suite) {
  HttpOptions options;
  // wrk measures whole seconds, at least one; a warm-up second unless the run is shorter.
  options.measured =
      std::max(std::chrono::seconds(1), std::chrono::round<std::chrono::seconds>(suite.measured));
  options.warmup = std::chrono::floor<std::chrono::seconds>(
      std::min<std::chrono::milliseconds>(suite.warmup, std::chrono::seconds(1)));
  options.connections = suite.http_conns;
  options.reps = suite.reps;
  options.server_cpu = suite.server_cpu;
  options.client_cpu = suite.client_cpu;
  const std::string params = "wrk -t1 -c" + std::to_string(options.connections);
  BenchResult http{"http", params, http_metrics, {}, {}};
  http.backend = suite.backend;
  // coring-http on the epoll backend against nginx's runs of the same rounds.
  BenchResult on_epoll{"http-epoll-backend", params, http_metrics, {}, {}};
  on_epoll.backend = ring::to_string(ring::Backend::epoll);
  const auto results = [&http, &on_epoll, &suite] {
    return suite.epoll_backend_rows ? std::vector<BenchResult>{http, on_epoll}
                                    : std::vector<BenchResult>{http};
  };
  const std::string wrk = find_program("wrk");
  const std::string nginx = find_program("nginx");
  if (wrk.empty()) {
    for (BenchResult* result : {&http, &on_epoll}) {
      result->sides = {skipped_side("coring", "wrk, the load generator, is not installed",
                                    "apt-get install -y wrk"),
                       nginx.empty()
                           ? skipped_side("nginx", "nginx and wrk are not installed",
                                          "apt-get install -y nginx wrk")
                           : skipped_side("nginx", "wrk, the load generator, is not installed",
                                          "apt-get install -y wrk")};
    }
    return results();
  }
  std::optional<ring::Backend> emulated;
  std::string unavailable;
  if (suite.epoll_backend_rows) {
    unavailable = backend_unavailable(ring::Backend::epoll);
    if (unavailable.empty()) emulated = ring::Backend::epoll;
  }
  const HttpRuns runs = run_http(options, wrk, nginx, emulated);
  const auto cpu = &HttpRun::server_cpu_us_per_request;
  const auto rate = &HttpRun::requests_per_s;
  const Side peer =
      nginx.empty() ? skipped_side("nginx", "nginx is not installed", "apt-get install -y nginx")
                    : measured_side("nginx", runs.nginx, cpu, rate);
  http.sides = {measured_side("coring", runs.coring, cpu, rate), peer};
  on_epoll.sides = {emulated ? measured_side("coring", runs.reference, cpu, rate)
                             : skipped_side("coring", unavailable, ""),
                    peer};
  return results();
}

int http_main(Args& args) {
  HttpOptions options;
  options.measured = std::chrono::seconds(args.take_u64("--seconds", 1, 3600).value_or(5));
  options.connections = args.take_u64("--conns", 1, 10000).value_or(options.connections);
  options.reps = args.take_u64("--reps", 1, 100).value_or(options.reps);
  std::tie(options.server_cpu, options.client_cpu) = take_cpus(args, {0, 1});
  const CoringBackend backend = take_backend(args);
  args.finish();
  const std::string nginx = find_program("nginx");
  const std::string wrk = find_program("wrk");
  if (nginx.empty() || wrk.empty()) {
    std::printf("skipped: apt-get install nginx wrk\n");
    return 0;
  }
  // With --backend, coring-http on the other backend too, for reference.
  std::optional<ring::Backend> reference;
  std::string reference_missing;
  if (backend.requested) {
    const ring::Backend other = other_backend(backend.backend);
    reference_missing = backend_unavailable(other);
    if (reference_missing.empty()) reference = other;
  }
  const HttpRuns runs = run_http(options, wrk, nginx, reference);
  const std::string reference_name =
      backend.requested ? reference_name_of(other_backend(backend.backend)) : std::string();
  // Every run's figure, on stderr: what is behind the medians.
  for (std::size_t rep = 0; rep < runs.coring.size(); ++rep) {
    std::fprintf(stderr, "http: run %zu server_cpu_us_per_request: coring %.3f nginx %.3f", rep + 1,
                 runs.coring[rep].server_cpu_us_per_request(),
                 runs.nginx[rep].server_cpu_us_per_request());
    if (reference) {
      std::fprintf(stderr, " %s %.3f", reference_name.c_str(),
                   runs.reference[rep].server_cpu_us_per_request());
    }
    std::fprintf(stderr, "\n");
  }

  std::printf(
      "http: wrk -t1 -c%llu, GET / -> 200 \"Hello, World!\", keep-alive; %lld s measured per run "
      "after 1 s of warm-up; %llu runs per server, interleaved; server on CPU %d (nginx: one "
      "worker, access_log off), wrk on CPU %d; medians; coring's backend: %s",
      static_cast<unsigned long long>(options.connections),
      static_cast<long long>(options.measured.count()),
      static_cast<unsigned long long>(options.reps), options.server_cpu, options.client_cpu,
      backend.describe().c_str());
  if (reference) {
    std::printf("; %s: coring-http with CORING_BACKEND=%s, its turn right after nginx's",
                reference_name.c_str(), ring::to_string(*reference));
  }
  std::printf("\n%-16s %14s %26s %16s\n", "server", "requests_per_s", "server_cpu_us_per_request",
              "server_cpu_util");
  print_row("coring", runs.coring);
  print_row("nginx", runs.nginx);
  if (reference) {
    print_row(reference_name, runs.reference);
  } else if (backend.requested) {
    std::printf("%-16s skipped: %s\n", reference_name.c_str(), reference_missing.c_str());
  }
  print_ratio("coring", runs.coring, runs.nginx, http_target(backend.backend));
  if (reference) print_ratio(reference_name, runs.reference, runs.nginx, http_target(*reference));
  return 0;
}

}  // namespace coring::bench
