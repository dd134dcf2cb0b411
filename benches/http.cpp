// coring-bench http and http-static: the server CPU per request of coring's HTTP server
// (http::Server) against nginx and h2o, each loaded by `wrk -t1 -cC` on another CPU.
//
// http: `GET /` answered 200 "Hello, World!" — coring-http's router (http_servers.hpp),
// nginx's `return 200`, h2o's 13-byte file — under wrk -c64. http-static: `GET
// /file.bin`, a file of N bytes (1 KiB with wrk -c50, 10 MiB with -c4 in `all`) below a
// temporary directory that coring (http::StaticFiles) and nginx (sendfile,
// open_file_cache) both serve.
//
// Each server runs in a child process pinned to the server CPU (http_servers.hpp); wrk
// runs pinned to the client CPU, first for a second of warm-up, then for T seconds; the
// server's CPU time (its processes' threads' run time) is read around the measured run
// and divided by the requests wrk completed. Every answer is checked: before its runs a
// server's answer to one GET (with `Connection: close`) must be a 200 whose body is
// exactly the expected bytes; a run with any non-2xx response or socket error fails;
// and the bytes wrk read in the measured run, over the responses it completed, must be
// the body's length plus a head of 17 to 1024 bytes (wrk's count includes the responses
// still arriving when the run ends: up to one per connection is allowed for). The
// servers alternate run by run and the table reports medians.
//
// coring runs on the backend the environment says, or --backend's (backend.hpp). With
// `http --backend B`, a reference row, coring-http on the other backend, takes its turn
// right after the peers: `http --backend epoll` sets coring-http on the emulation against
// nginx and h2o, and on io_uring beside it. `all` adds that row on the epoll backend to
// its io_uring run as a row of its own, http-epoll-backend, its ratios taken to the same
// runs of the peers.
#include "http.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "child_process.hpp"
#include "http_servers.hpp"
#include "measure.hpp"
#include "suite.hpp"
#include "tls_client.hpp"

namespace coring::bench {
namespace {

namespace fs = std::filesystem;

// A response's head, status line to empty line, is at least "HTTP/1.1 200 \r\n\r\n".
constexpr std::uint64_t min_head_bytes = 17;
// And at most this, for every server here (theirs are 150 to 250 bytes).
constexpr std::uint64_t max_head_bytes = 1024;

// The files of `all`'s http-static rows, and their loads.
constexpr std::uint64_t small_file_bytes = 1024;
constexpr std::uint64_t large_file_bytes = 10 * 1024 * 1024;

struct HttpOptions {
  std::chrono::seconds measured{5};  // wrk's -d takes whole seconds
  std::chrono::seconds warmup{1};    // none if 0
  std::uint64_t connections = 64;
  std::uint64_t reps = 3;
  int server_cpu = 0;
  int client_cpu = 1;
  std::string target = "/";  // what wrk asks for
  // The body every server must answer `target` with (the caller keeps it alive).
  std::string_view body = hello_body;
  // Set: the servers speak HTTPS with these files (wrk's URL is https://).
  std::optional<TlsFiles> tls{};
  // Every request on a new connection (wrk sends `Connection: close`): with TLS, a full
  // handshake per request (wrk resumes no sessions).
  bool close_each = false;
  // The protocol version and cipher suite the first server agreed on, which every other
  // must agree on too (the runs compare the same work).
  std::shared_ptr<std::string> agreed = std::make_shared<std::string>();
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

// The programs the runs need: wrk (without it nothing runs) and the peers, each "" when
// it is not installed.
struct Programs {
  std::string wrk = find_program("wrk");
  std::string nginx = find_program("nginx");
  std::string h2o = find_program("h2o");
};

// Reads everything from `fd` until end of file (or, for a socket, its receive timeout).
std::string read_all(int fd) {
  std::string text;
  std::array<char, 65536> chunk;
  for (;;) {
    const ssize_t got = ::read(fd, chunk.data(), chunk.size());
    if (got > 0) {
      text.append(chunk.data(), static_cast<std::size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      return text;
    }
  }
}

// wrk's script: at the end of a run, the exact counts wrk's own summary rounds.
constexpr std::string_view wrk_script =
    "done = function(summary, latency, requests)\n"
    "  io.write(string.format(\"coring-bench-wrk: requests %.0f bytes %.0f\\n\",\n"
    "                         summary.requests, summary.bytes))\n"
    "end\n";

struct WrkResult {
  std::uint64_t requests = 0;
  std::uint64_t bytes = 0;
  std::chrono::nanoseconds wall{0};
};

// Runs wrk against 127.0.0.1:port with `script`; throws if it fails or saw errors.
WrkResult run_wrk(const std::string& wrk, const fs::path& script, const HttpOptions& options,
                  std::uint16_t port, std::chrono::seconds duration) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> argv{wrk,
                                "-t1",
                                "-c" + std::to_string(options.connections),
                                "-d" + std::to_string(duration.count()) + "s",
                                "-s",
                                script.string()};
  if (options.close_each) {
    argv.emplace_back("-H");
    argv.emplace_back("Connection: close");
  }
  argv.push_back((options.tls ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port) +
                 options.target);
  ChildProcess child = ChildProcess::exec(options.client_cpu, argv, pipe_fds[1]);
  ::close(pipe_fds[1]);
  const std::string output = read_all(pipe_fds[0]);
  ::close(pipe_fds[0]);
  const int status = child.wait();
  WrkResult result;
  result.wall = std::chrono::steady_clock::now() - start;
  std::smatch match;
  if (status != 0 ||
      !std::regex_search(output, match,
                         std::regex(R"(coring-bench-wrk: requests (\d+) bytes (\d+))"))) {
    throw std::runtime_error("wrk failed (exit status " + std::to_string(status) + "):\n" + output);
  }
  result.requests = std::stoull(match[1]);
  result.bytes = std::stoull(match[2]);
  if (output.find("Non-2xx") != std::string::npos ||
      output.find("Socket errors") != std::string::npos || result.requests == 0) {
    throw std::runtime_error("wrk saw errors:\n" + output);
  }
  return result;
}

// Whether the bytes of a measured run fit its responses: each the body and a head, and
// up to one response per connection still arriving when wrk stopped.
void check_bytes(const WrkResult& result, const HttpOptions& options) {
  const std::uint64_t body = options.body.size();
  const std::uint64_t least = result.requests * (body + min_head_bytes);
  const std::uint64_t most = (result.requests + options.connections) * (body + max_head_bytes);
  if (result.bytes < least || result.bytes > most) {
    throw std::runtime_error("wrk read " + std::to_string(result.bytes) + " bytes in " +
                             std::to_string(result.requests) + " responses: not responses of a " +
                             std::to_string(body) + "-byte body each (want " +
                             std::to_string(least) + ".." + std::to_string(most) + ")");
  }
}

// One GET of options.target with `Connection: close`: the answer must be a 200 whose
// body is options.body exactly. Throws std::runtime_error saying what differs.
// Over TLS, the version and cipher suite must be TLS 1.3's and the ones the first
// server checked agreed on.
void check_answer(std::uint16_t port, const HttpOptions& options) {
  const std::string request =
      "GET " + options.target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  bool sent = true;
  std::string answer;
  if (options.tls) {
#ifndef CORING_BENCH_TLS
    throw std::logic_error("HTTPS options in a build without coring::tls");
#else
    const TlsAnswer exchange = tls_exchange(port, options.tls->certificate, request);
    answer = exchange.bytes;
    const std::string agreed = exchange.version + " " + exchange.cipher;
    if (exchange.version != "TLSv1.3") {
      throw std::runtime_error("the handshake agreed on " + agreed + ", want TLS 1.3");
    }
    if (options.agreed->empty()) *options.agreed = agreed;
    if (agreed != *options.agreed) {
      throw std::runtime_error("the handshake agreed on " + agreed + ", another server's on " +
                               *options.agreed);
    }
#endif
  } else {
    const int fd = connect_loopback(port, std::chrono::milliseconds(1000));
    const timeval patience{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof(patience));
    sent = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(request.size());
    if (sent) answer = read_all(fd);
    ::close(fd);
  }
  const std::size_t head_end = answer.find("\r\n\r\n");
  const std::string_view head(answer.data(), std::min(answer.size(), head_end));
  std::string wrong;
  if (!sent) {
    wrong = "the request could not be sent";
  } else if (!answer.starts_with("HTTP/1.1 200 ") || head_end == std::string::npos) {
    wrong = "not a 200: " + std::string(head.substr(0, head.find("\r\n")));
  } else if (std::string_view(answer).substr(head_end + 4) != options.body) {
    wrong = "a body of " + std::to_string(answer.size() - head_end - 4) + " bytes, want the " +
            std::to_string(options.body.size()) + " expected bytes";
  }
  if (!wrong.empty()) {
    throw std::runtime_error("GET " + options.target + " answered " + wrong);
  }
}

// A run against a server that listens on 127.0.0.1:port in `server`.
HttpRun measure(ChildProcess& server, const std::string& wrk, const fs::path& script,
                const HttpOptions& options, std::uint16_t port) {
  check_answer(port, options);
  if (options.warmup.count() > 0) run_wrk(wrk, script, options, port, options.warmup);
  HttpRun run;
  const std::chrono::nanoseconds cpu_start = server.cpu_time();
  const WrkResult result = run_wrk(wrk, script, options, port, options.measured);
  run.server_cpu = server.cpu_time() - cpu_start;
  check_bytes(result, options);
  run.requests = result.requests;
  run.wall = result.wall;
  if (server.exited()) throw std::runtime_error("the server exited during the run");
  return run;
}

// One server of a row: its name in the tables, and one run of it.
struct HttpSide {
  std::string name;
  std::function<HttpRun()> run;
};

// What every side of a set of runs shares: the options, wrk and its script.
class Bench {
 public:
  Bench(const HttpOptions& options, std::string wrk)
      : options_(options), wrk_(std::move(wrk)), scratch_("coring-bench-wrk") {
    script_ = scratch_.path() / "counts.lua";
    write_file(script_, wrk_script);
  }

  // A coring server forked from this process; it must shut down cleanly on SIGTERM.
  HttpSide coring(std::string name, std::function<int(int ready_fd)> serve) const {
    return {std::move(name), [this, serve = std::move(serve)] {
              ChildProcess server = ChildProcess::fork_server(options_.server_cpu, serve);
              HttpRun run = measure(server, wrk_, script_, options_, server.port());
              const int status = server.stop(SIGTERM, std::chrono::milliseconds(5000));
              if (status != 0) {
                throw std::runtime_error("coring: exit status " + std::to_string(status) +
                                         " after SIGTERM (want a clean shutdown, 0)");
              }
              return run;
            }};
  }

  // A peer (Nginx, H2o) made from `peer_options`; its errors are quoted if a run fails.
  template <typename Peer, typename PeerOptions>
  HttpSide peer(std::string name, PeerOptions peer_options) const {
    return {std::move(name), [this, peer_options = std::move(peer_options)] {
              Peer server(peer_options);
              try {
                HttpRun run = measure(server.process(), wrk_, script_, options_, server.port());
                server.stop();
                return run;
              } catch (const std::exception& e) {
                throw std::runtime_error(server.failure(e.what()));
              }
            }};
  }

  // The sides' runs, interleaved: runs[side][round].
  [[nodiscard]] std::vector<std::vector<HttpRun>> run(const std::vector<HttpSide>& sides) const {
    std::vector<std::function<HttpRun()>> runs;
    for (const HttpSide& side : sides) runs.push_back(side.run);
    return interleave(options_.reps, runs);
  }

 private:
  const HttpOptions& options_;
  std::string wrk_;
  TempDir scratch_;
  fs::path script_;
};

// The hello row's sides: coring-http, nginx and h2o when installed, and coring-http on
// `reference` if that is set.
std::vector<HttpSide> hello_sides(const Bench& bench, const HttpOptions& options,
                                  const Programs& programs,
                                  std::optional<ring::Backend> reference) {
  std::vector<HttpSide> sides{bench.coring("coring", &serve_coring_http)};
  if (!programs.nginx.empty()) {
    sides.push_back(bench.peer<Nginx>(
        "nginx", NginxOptions{.program = programs.nginx, .cpu = options.server_cpu}));
  }
  if (!programs.h2o.empty()) {
    sides.push_back(
        bench.peer<H2o>("h2o", H2oOptions{.program = programs.h2o, .cpu = options.server_cpu}));
  }
  if (reference) {
    sides.push_back(bench.coring(std::string("coring(") + ring::to_string(*reference) + ")",
                                 serve_on(*reference, &serve_coring_http)));
  }
  return sides;
}

// A directory holding one file, file.bin, of `bytes` pseudo-random bytes, for the
// static rows; everyone may read it (nginx's worker serves as nobody).
class StaticRoot {
 public:
  explicit StaticRoot(std::uint64_t bytes) : dir_("coring-bench-static") {
    content_.resize(bytes);
    std::uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (char& c : content_) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      c = static_cast<char>(x >> 56);
    }
    make_readable_by_all(dir_.path());
    write_file(dir_.path() / "file.bin", content_);
  }
  [[nodiscard]] const fs::path& path() const noexcept { return dir_.path(); }
  [[nodiscard]] std::string_view content() const noexcept { return content_; }

 private:
  TempDir dir_;
  std::string content_;
};

// The static rows' sides: coring serving `root`, and nginx serving it when installed.
std::vector<HttpSide> static_sides(const Bench& bench, const HttpOptions& options,
                                   const Programs& programs, const fs::path& root) {
  std::vector<HttpSide> sides{
      bench.coring("coring", [root](int ready_fd) { return serve_coring_files(root, ready_fd); })};
  if (!programs.nginx.empty()) {
    sides.push_back(bench.peer<Nginx>(
        "nginx", NginxOptions{.program = programs.nginx, .cpu = options.server_cpu, .root = root}));
  }
  return sides;
}

HttpOptions static_options(HttpOptions options, const StaticRoot& root) {
  options.target = "/file.bin";
  options.body = root.content();
  return options;
}

double median_of(const std::vector<HttpRun>& runs, double (HttpRun::*metric)() const noexcept) {
  std::vector<double> values;
  for (const HttpRun& run : runs) values.push_back((run.*metric)());
  return median(values);
}

void print_row(std::string_view name, const std::vector<HttpRun>& runs) {
  std::printf("%-16.*s %14.1f %26.3f %16.2f\n", static_cast<int>(name.size()), name.data(),
              median_of(runs, &HttpRun::requests_per_s),
              median_of(runs, &HttpRun::server_cpu_us_per_request),
              median_of(runs, &HttpRun::server_cpu_share));
}

// The issue's bound on coring's CPU per request over a peer's, "" where it sets none.
using TargetOf =
    std::function<std::string_view(const std::string& coring, const std::string& peer)>;

void print_ratio(const std::string& name, const std::vector<HttpRun>& coring,
                 const std::string& peer_name, const std::vector<HttpRun>& peer,
                 std::string_view target) {
  std::vector<double> paired;
  for (std::size_t i = 0; i < coring.size(); ++i) {
    paired.push_back(coring[i].server_cpu_us_per_request() / peer[i].server_cpu_us_per_request());
  }
  const auto [low, high] = std::minmax_element(paired.begin(), paired.end());
  const std::string pair = name + "/" + peer_name;
  std::printf(
      "%-22s server_cpu_us_per_request ratio %.3f (runs %.3f..%.3f; target %.*s)  "
      "requests_per_s ratio %.3f\n",
      pair.c_str(),
      median_of(coring, &HttpRun::server_cpu_us_per_request) /
          median_of(peer, &HttpRun::server_cpu_us_per_request),
      *low, *high, static_cast<int>(target.size()), target.data(),
      median_of(coring, &HttpRun::requests_per_s) / median_of(peer, &HttpRun::requests_per_s));
}

// Every run's figure on stderr (what is behind the medians), then the table of medians
// and the ratios of each coring side (its name starts with "coring") to each peer.
void print_results(std::string_view bench_name, const std::vector<HttpSide>& sides,
                   const std::vector<std::vector<HttpRun>>& runs, const TargetOf& target) {
  for (std::size_t rep = 0; rep < runs.front().size(); ++rep) {
    std::fprintf(stderr,
                 "%.*s: run %zu server_cpu_us_per_request:", static_cast<int>(bench_name.size()),
                 bench_name.data(), rep + 1);
    for (std::size_t i = 0; i < sides.size(); ++i) {
      std::fprintf(stderr, " %s %.3f", sides[i].name.c_str(),
                   runs[i][rep].server_cpu_us_per_request());
    }
    std::fprintf(stderr, "\n");
  }
  std::printf("%-16s %14s %26s %16s\n", "server", "requests_per_s", "server_cpu_us_per_request",
              "server_cpu_util");
  for (std::size_t i = 0; i < sides.size(); ++i) print_row(sides[i].name, runs[i]);
  for (std::size_t c = 0; c < sides.size(); ++c) {
    if (!sides[c].name.starts_with("coring")) continue;
    for (std::size_t p = 0; p < sides.size(); ++p) {
      if (sides[p].name.starts_with("coring")) continue;
      const std::string_view bound = target(sides[c].name, sides[p].name);
      print_ratio(sides[c].name, runs[c], sides[p].name, runs[p], bound.empty() ? "none" : bound);
    }
  }
}

// The issue's targets for the hello row: on io_uring, <= 0.85 of nginx's CPU per request
// and <= 1.0 of h2o's; on the emulation, <= 1.0 of nginx's (the epoll backend's issue).
std::string_view hello_target(ring::Backend backend, const std::string& peer) {
  if (backend == ring::Backend::epoll) return peer == "nginx" ? "<= 1.0" : "";
  return peer == "nginx" ? "<= 0.85" : "<= 1.0";
}

// The static rows' targets over nginx: <= 0.8 for the 1 KiB file, <= 1.0 for the 10 MiB
// one, on io_uring; none for other sizes.
std::string_view static_target(ring::Backend backend, std::uint64_t bytes) {
  if (backend != ring::Backend::io_uring) return "";
  if (bytes == small_file_bytes) return "<= 0.8";
  if (bytes == large_file_bytes) return "<= 1.0";
  return "";
}

std::string size_text(std::uint64_t bytes) {
  if (bytes % (1024 * 1024) == 0) return std::to_string(bytes / (1024 * 1024)) + " MiB";
  if (bytes % 1024 == 0) return std::to_string(bytes / 1024) + " KiB";
  return std::to_string(bytes) + " B";
}

HttpOptions suite_http_options(const SuiteOptions& suite, std::uint64_t connections) {
  HttpOptions options;
  // wrk measures whole seconds, at least one; a warm-up second unless the run is shorter.
  options.measured =
      std::max(std::chrono::seconds(1), std::chrono::round<std::chrono::seconds>(suite.measured));
  options.warmup = std::chrono::floor<std::chrono::seconds>(
      std::min<std::chrono::milliseconds>(suite.warmup, std::chrono::seconds(1)));
  options.connections = connections;
  options.reps = suite.reps;
  options.server_cpu = suite.server_cpu;
  options.client_cpu = suite.client_cpu;
  return options;
}

// A peer's side of a row when it cannot run: it, or wrk, or both are not installed.
Side missing_peer(const std::string& name, bool program_missing, bool wrk_missing) {
  if (program_missing && wrk_missing) {
    return skipped_side(name, name + " and wrk are not installed",
                        "apt-get install -y " + name + " wrk");
  }
  if (program_missing) {
    return skipped_side(name, name + " is not installed", "apt-get install -y " + name);
  }
  return skipped_side(name, "wrk, the load generator, is not installed", "apt-get install -y wrk");
}

Side missing_coring() {
  return skipped_side("coring", "wrk, the load generator, is not installed",
                      "apt-get install -y wrk");
}

// The row's side named `name`: measured if it ran, else why not.
Side row_side(const std::string& name, const std::vector<HttpSide>& sides,
              const std::vector<std::vector<HttpRun>>& runs, const std::string& program,
              bool wrk_missing) {
  for (std::size_t i = 0; i < sides.size(); ++i) {
    if (sides[i].name == name) {
      return measured_side(name, runs[i], &HttpRun::server_cpu_us_per_request,
                           &HttpRun::requests_per_s);
    }
  }
  return missing_peer(name, program.empty(), wrk_missing);
}

BenchResult http_static_row(const SuiteOptions& suite, std::string name, std::uint64_t bytes,
                            std::uint64_t connections) {
  const HttpOptions base = suite_http_options(suite, connections);
  // The row's name says the file's size.
  BenchResult result{
      std::move(name), "wrk -t1 -c" + std::to_string(connections), http_metrics, {}, {}};
  const Programs programs;
  if (programs.wrk.empty()) {
    result.sides = {missing_coring(), missing_peer("nginx", programs.nginx.empty(), true)};
    return result;
  }
  const StaticRoot root(bytes);
  const HttpOptions options = static_options(base, root);
  const Bench bench(options, programs.wrk);
  const std::vector<HttpSide> sides = static_sides(bench, options, programs, root.path());
  const auto runs = bench.run(sides);
  result.sides = {row_side("coring", sides, runs, "", false),
                  row_side("nginx", sides, runs, programs.nginx, false)};
  return result;
}

std::string https_params(std::uint64_t connections, bool close_each) {
  return "wrk -t1 -c" + std::to_string(connections) + (close_each ? ", Connection: close" : "");
}

#ifdef CORING_BENCH_TLS
// The https rows' targets over nginx, on io_uring: keep-alive <= 0.85, a handshake per
// request <= 1.0.
std::string_view https_target(ring::Backend backend, bool close_each) {
  if (backend != ring::Backend::io_uring) return "";
  return close_each ? "<= 1.0" : "<= 0.85";
}

// The https rows' sides: coring-http, and nginx when installed, serving HTTPS with the
// same certificate and key (options.tls).
std::vector<HttpSide> https_sides(const Bench& bench, const HttpOptions& options,
                                  const Programs& programs) {
  const TlsFiles files = *options.tls;
  std::vector<HttpSide> sides{bench.coring(
      "coring", [files](int ready_fd) { return serve_coring_https(files, ready_fd); })};
  if (!programs.nginx.empty()) {
    sides.push_back(bench.peer<Nginx>(
        "nginx", NginxOptions{.program = programs.nginx, .cpu = options.server_cpu, .tls = files}));
  }
  return sides;
}
#endif

BenchResult https_row(const SuiteOptions& suite, std::string name, std::uint64_t connections,
                      bool close_each) {
  HttpOptions options = suite_http_options(suite, connections);
  options.close_each = close_each;
  BenchResult result{std::move(name), https_params(connections, close_each), http_metrics, {}, {}};
#ifndef CORING_BENCH_TLS
  const std::string why =
      "coring-bench was built without coring::tls (CORING_BUILD_TLS=OFF, or "
      "no OpenSSL 3 at configure time)";
  result.sides = {skipped_side("coring", why, "apt-get install -y libssl-dev"),
                  skipped_side("nginx", why, "apt-get install -y libssl-dev")};
  return result;
#else
  const Programs programs;
  if (programs.wrk.empty()) {
    result.sides = {missing_coring(), missing_peer("nginx", programs.nginx.empty(), true)};
    return result;
  }
  const TempDir pki("coring-bench-tls");
  options.tls = make_tls_files(pki.path());
  const Bench bench(options, programs.wrk);
  const std::vector<HttpSide> sides = https_sides(bench, options, programs);
  const auto runs = bench.run(sides);
  result.sides = {row_side("coring", sides, runs, "", false),
                  row_side("nginx", sides, runs, programs.nginx, false)};
  return result;
#endif
}

// The options http and http-static share.
HttpOptions take_http_options(Args& args, std::uint64_t default_connections) {
  HttpOptions options;
  options.measured = std::chrono::seconds(args.take_u64("--seconds", 1, 3600).value_or(5));
  options.connections = args.take_u64("--conns", 1, 10000).value_or(default_connections);
  options.reps = args.take_u64("--reps", 1, 100).value_or(options.reps);
  std::tie(options.server_cpu, options.client_cpu) = take_cpus(args, {0, 1});
  return options;
}

}  // namespace

std::vector<BenchResult> http_suite(const SuiteOptions& suite) {
  const HttpOptions options = suite_http_options(suite, suite.http_conns);
  const std::string params = "wrk -t1 -c" + std::to_string(options.connections);
  BenchResult http{"http", params, http_metrics, {}, {}};
  http.backend = suite.backend;
  // coring-http on the epoll backend against the peers' runs of the same rounds.
  BenchResult on_epoll{"http-epoll-backend", params, http_metrics, {}, {}};
  on_epoll.backend = ring::to_string(ring::Backend::epoll);
  const auto results = [&http, &on_epoll, &suite] {
    return suite.epoll_backend_rows ? std::vector<BenchResult>{http, on_epoll}
                                    : std::vector<BenchResult>{http};
  };
  const Programs programs;
  if (programs.wrk.empty()) {
    for (BenchResult* result : {&http, &on_epoll}) {
      result->sides = {missing_coring(), missing_peer("nginx", programs.nginx.empty(), true),
                       missing_peer("h2o", programs.h2o.empty(), true)};
    }
    return results();
  }
  std::optional<ring::Backend> emulated;
  std::string unavailable;
  if (suite.epoll_backend_rows) {
    unavailable = backend_unavailable(ring::Backend::epoll);
    if (unavailable.empty()) emulated = ring::Backend::epoll;
  }
  const Bench bench(options, programs.wrk);
  const std::vector<HttpSide> sides = hello_sides(bench, options, programs, emulated);
  const auto runs = bench.run(sides);
  const Side nginx = row_side("nginx", sides, runs, programs.nginx, false);
  const Side h2o = row_side("h2o", sides, runs, programs.h2o, false);
  http.sides = {row_side("coring", sides, runs, "", false), nginx, h2o};
  on_epoll.sides = {emulated
                        ? measured_side("coring", runs.back(), &HttpRun::server_cpu_us_per_request,
                                        &HttpRun::requests_per_s)
                        : skipped_side("coring", unavailable, ""),
                    nginx, h2o};
  return results();
}

BenchResult http_static_small_suite(const SuiteOptions& suite) {
  return http_static_row(suite, "http-static-1k", small_file_bytes, suite.static_small_conns);
}

BenchResult http_static_large_suite(const SuiteOptions& suite) {
  return http_static_row(suite, "http-static-10m", large_file_bytes, suite.static_large_conns);
}

BenchResult https_suite(const SuiteOptions& suite) {
  return https_row(suite, "https", suite.http_conns, false);
}

BenchResult https_handshake_suite(const SuiteOptions& suite) {
  return https_row(suite, "https-handshake", suite.handshake_conns, true);
}

int https_main(Args& args) {
  const bool close_each = args.take_flag("--handshake");
  HttpOptions options = take_http_options(args, close_each ? 8 : 64);
  options.close_each = close_each;
  const CoringBackend backend = take_backend(args);
  args.finish();
#ifndef CORING_BENCH_TLS
  (void)backend;
  std::printf(
      "skipped: coring-bench was built without coring::tls (apt-get install libssl-dev, "
      "then configure again)\n");
  return 0;
#else
  const Programs programs;
  if (programs.wrk.empty() || programs.nginx.empty()) {
    std::printf("skipped: apt-get install nginx wrk\n");
    return 0;
  }
  const TempDir pki("coring-bench-tls");
  options.tls = make_tls_files(pki.path());
  const Bench bench(options, programs.wrk);
  const std::vector<HttpSide> sides = https_sides(bench, options, programs);
  const auto runs = bench.run(sides);
  std::printf(
      "https: %s, GET / -> 200 \"Hello, World!\" over %s, %s; one P-256 certificate for both; "
      "%lld s measured per run after 1 s of warm-up; %llu runs per server, interleaved; server "
      "on CPU %d (nginx: one worker, session tickets on, access_log off), wrk on CPU %d; "
      "medians; coring's backend: %s\n",
      https_params(options.connections, close_each).c_str(), options.agreed->c_str(),
      close_each ? "a new connection and a full handshake per request" : "keep-alive",
      static_cast<long long>(options.measured.count()),
      static_cast<unsigned long long>(options.reps), options.server_cpu, options.client_cpu,
      backend.describe().c_str());
  print_results("https", sides, runs,
                [&backend, close_each](const std::string&, const std::string&) {
                  return https_target(backend.backend, close_each);
                });
  return 0;
#endif
}

int http_main(Args& args) {
  const HttpOptions options = take_http_options(args, 64);
  const CoringBackend backend = take_backend(args);
  args.finish();
  const Programs programs;
  if (programs.wrk.empty() || (programs.nginx.empty() && programs.h2o.empty())) {
    std::printf("skipped: apt-get install nginx h2o wrk\n");
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
  const Bench bench(options, programs.wrk);
  const std::vector<HttpSide> sides = hello_sides(bench, options, programs, reference);
  const auto runs = bench.run(sides);

  std::printf(
      "http: wrk -t1 -c%llu, GET / -> 200 \"Hello, World!\", keep-alive; %lld s measured per run "
      "after 1 s of warm-up; %llu runs per server, interleaved; server on CPU %d (nginx: one "
      "worker; h2o: one thread, a 13-byte file; access logs off), wrk on CPU %d; medians; "
      "coring's backend: %s",
      static_cast<unsigned long long>(options.connections),
      static_cast<long long>(options.measured.count()),
      static_cast<unsigned long long>(options.reps), options.server_cpu, options.client_cpu,
      backend.describe().c_str());
  if (reference) {
    std::printf("; %s: coring-http with CORING_BACKEND=%s, its turn right after the peers'",
                sides.back().name.c_str(), ring::to_string(*reference));
  }
  std::printf("\n");
  for (const char* peer : {"nginx", "h2o"}) {
    if (find_program(peer).empty()) std::printf("%s skipped: apt-get install %s\n", peer, peer);
  }
  if (backend.requested && !reference) {
    std::printf("coring(%s) skipped: %s\n", ring::to_string(other_backend(backend.backend)),
                reference_missing.c_str());
  }
  print_results(
      "http", sides, runs, [&backend](const std::string& coring, const std::string& peer) {
        const bool on_reference = coring != "coring";
        return hello_target(on_reference ? other_backend(backend.backend) : backend.backend, peer);
      });
  return 0;
}

int http_static_main(Args& args) {
  const HttpOptions base = take_http_options(args, 50);
  const std::uint64_t bytes =
      args.take_u64("--bytes", 1, std::uint64_t{1} << 32).value_or(small_file_bytes);
  const CoringBackend backend = take_backend(args);
  args.finish();
  const Programs programs;
  if (programs.wrk.empty() || programs.nginx.empty()) {
    std::printf("skipped: apt-get install nginx wrk\n");
    return 0;
  }
  const StaticRoot root(bytes);
  const HttpOptions options = static_options(base, root);
  const Bench bench(options, programs.wrk);
  const std::vector<HttpSide> sides = static_sides(bench, options, programs, root.path());
  const auto runs = bench.run(sides);
  std::printf(
      "http-static: wrk -t1 -c%llu, GET /file.bin -> 200, a file of %llu bytes (%s), keep-alive; "
      "%lld s measured per run after 1 s of warm-up; %llu runs per server, interleaved; server "
      "on CPU %d (nginx: one worker, sendfile on, open_file_cache, access_log off), wrk on CPU "
      "%d; medians; coring's backend: %s\n",
      static_cast<unsigned long long>(options.connections), static_cast<unsigned long long>(bytes),
      size_text(bytes).c_str(), static_cast<long long>(options.measured.count()),
      static_cast<unsigned long long>(options.reps), options.server_cpu, options.client_cpu,
      backend.describe().c_str());
  print_results("http-static", sides, runs,
                [&backend, bytes](const std::string&, const std::string&) {
                  return static_target(backend.backend, bytes);
                });
  return 0;
}

}  // namespace coring::bench
