// coring-bench idle: what an idle connection costs a server, in resident memory, for
// coring-echo's code (one loop, as `coring-echo --threads 1` runs it) and the epoll echo
// server of `coring-bench echo`.
//
// Each run starts one server in a child process pinned to the server CPU, as echo does
// (child_process.hpp), and from this process (pinned to the client CPU) opens 100
// warm-up connections that each echo one message; half a second later it reads the
// server's VmRSS from /proc/<pid>/status. Then it opens N more connections, each sending
// a distinct 4-byte value and reading it back byte for byte, waits half a second and
// reads VmRSS again: bytes_per_conn = (after - before) / N, what the server keeps in
// user space per connection that waits for its next message (the kernel's socket
// buffers are not in VmRSS). The connections stay open until both readings are taken,
// then all of them are closed with a reset (so that no port is left in TIME_WAIT for
// the next run) and the server is stopped. Every connection must answer, or the run
// fails naming how many did.
//
// The client is non-blocking sockets and one epoll set, with at most 256 connections in
// their handshake or awaiting their echo at a time (so the listener's backlog never
// overflows into SYN retransmits), from 127.0.0.2, 127.0.0.3, ... a thousand each (so
// the kernel's search for a free source port stays short). This process's RLIMIT_NOFILE
// soft limit is raised to its hard limit for the run; the server, forked meanwhile,
// inherits it (coring-echo's frame raises its own anyway).
//
// With --reps R the servers take turns (coring, epoll, coring, ...) and the table
// reports medians. The target of 1 KiB per connection for coring-echo is
// printed next to its figure, not enforced.
#include "idle.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <vector>

#include "backend.hpp"
#include "child_process.hpp"
#include "echo.hpp"
#include "measure.hpp"
#include "suite.hpp"

namespace coring::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t default_conns = 10'000;
constexpr std::uint64_t warmup_conns = 100;
// The time the server is left alone before each reading of its RSS.
constexpr std::chrono::milliseconds settle{500};
// Connections in their handshake or awaiting their echo at a time.
constexpr std::size_t window = 256;
// Connections from each source address (see IdleClient::start()).
constexpr std::uint64_t conns_per_source = 1000;
// The target of the issue that asks for it; reported, not enforced.
constexpr double target_bytes_per_conn = 1024;

struct IdleOptions {
  std::uint64_t conns = default_conns;
  std::uint64_t reps = 1;
  int server_cpu = 0;
  int client_cpu = 1;
};

struct Server {
  std::string name;  // in idle's own table
  std::string side;  // in `all`'s, where coring's side is "coring" in every row
  int (*serve)(int ready_fd) = nullptr;
};

std::vector<Server> idle_servers() {
  return {{"coring-echo", "coring", &serve_coring_echo}, {"epoll", "epoll", &serve_epoll}};
}

// Raises this process's RLIMIT_NOFILE soft limit to its hard limit while it lives, after
// checking that `needed` descriptors fit under it.
class OpenFilesLimit {
 public:
  explicit OpenFilesLimit(std::uint64_t needed) {
    if (::getrlimit(RLIMIT_NOFILE, &saved_) != 0) {
      throw std::system_error(errno, std::system_category(), "getrlimit(RLIMIT_NOFILE)");
    }
    if (saved_.rlim_max != RLIM_INFINITY && needed > saved_.rlim_max) {
      throw std::runtime_error(
          "idle needs about " + std::to_string(needed) + " descriptors, in this process and in " +
          "the server, but the RLIMIT_NOFILE hard limit is " + std::to_string(saved_.rlim_max) +
          ": fewer --conns, or a higher limit (ulimit -Hn)");
    }
    rlimit raised = saved_;
    raised.rlim_cur = saved_.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
      throw std::system_error(errno, std::system_category(), "setrlimit(RLIMIT_NOFILE)");
    }
  }
  ~OpenFilesLimit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  OpenFilesLimit(const OpenFilesLimit&) = delete;
  OpenFilesLimit& operator=(const OpenFilesLimit&) = delete;

 private:
  rlimit saved_{};
};

// A server's VmRSS in KiB.
std::uint64_t rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    // "VmRSS:\t   12345 kB"
    if (line.starts_with("VmRSS:")) return std::stoull(line.substr(6));
  }
  throw std::runtime_error("no VmRSS in /proc/" + std::to_string(pid) + "/status");
}

// The client: connections to 127.0.0.1:port that each echo one distinct 4-byte value,
// then stay open, idle, until it is destroyed.
class IdleClient {
 public:
  explicit IdleClient(std::uint16_t port) : epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (epoll_fd_ < 0) throw std::system_error(errno, std::system_category(), "epoll_create1");
    address_.sin_family = AF_INET;
    address_.sin_port = htons(port);
    address_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  ~IdleClient() {
    for (const int fd : open_) close_with_reset(fd);
    ::close(epoll_fd_);
  }
  IdleClient(const IdleClient&) = delete;
  IdleClient& operator=(const IdleClient&) = delete;

  // Opens `count` more connections, each sending its value and reading the echo back;
  // returns how many answered with exactly their value by `deadline`. Those stay open;
  // the others are closed, and first_failure() says what went wrong with the first.
  std::uint64_t open(std::uint64_t count, Clock::time_point deadline) {
    std::vector<Attempt> attempts(count);
    std::uint64_t started = 0;
    std::uint64_t answered = 0;
    in_flight_ = 0;
    std::array<epoll_event, window> events;
    for (;;) {
      while (in_flight_ < window && started < count) {
        Attempt& attempt = attempts[started];
        // An odd multiplier is a bijection of 32-bit integers: every value is distinct.
        attempt.value = static_cast<std::uint32_t>(next_ + 1) * 0x9E3779B1u;
        start(attempt, started++);
        ++next_;
      }
      if (in_flight_ == 0) break;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) break;
      const int ready = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                                     static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
      if (ready < 0) {
        if (errno == EINTR) continue;
        throw std::system_error(errno, std::system_category(), "epoll_wait");
      }
      for (int i = 0; i < ready; ++i) {
        const std::uint64_t index = events[static_cast<std::size_t>(i)].data.u64;
        Attempt& attempt = attempts[index];
        if (attempt.fd < 0) continue;
        if (!attempt.sent) {
          send_value(attempt, index);
        } else if (receive_echo(attempt)) {
          ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, attempt.fd, nullptr);
          open_.push_back(attempt.fd);
          attempt.fd = -1;
          --in_flight_;
          ++answered;
        }
      }
    }
    for (Attempt& attempt : attempts) {
      if (attempt.fd >= 0) fail(attempt, "no echo before the deadline");
    }
    return answered;
  }

  [[nodiscard]] const std::string& first_failure() const noexcept { return first_failure_; }

 private:
  struct Attempt {
    int fd = -1;
    std::uint32_t value = 0;
    std::array<unsigned char, 4> echo{};
    std::uint8_t got = 0;  // bytes of the echo read so far
    bool sent = false;
  };

  static std::string error_text(const char* call, int error) {
    return std::string(call) + ": " + std::strerror(error);
  }

  // Gives up on a connection in flight, keeping the first reason.
  void fail(Attempt& attempt, const std::string& what) {
    if (first_failure_.empty()) first_failure_ = what;
    if (attempt.fd >= 0) close_with_reset(attempt.fd);
    attempt.fd = -1;
    --in_flight_;
  }

  // A non-blocking connect, watched for writability (the handshake's end).
  void start(Attempt& attempt, std::uint64_t index) {
    ++in_flight_;
    attempt.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (attempt.fd < 0) return fail(attempt, error_text("socket", errno));
    // The source address: 127.0.0.2 for the first conns_per_source connections, 127.0.0.3
    // for the next, ... With the port left to connect() (IP_BIND_ADDRESS_NO_PORT), the
    // kernel looks for a port free towards the server from that address only. From one
    // address its search grows with the connections already made: a run of both servers
    // with 19,000 connections each took 31 s instead of 8.
    sockaddr_in source{};
    source.sin_family = AF_INET;
    source.sin_addr.s_addr =
        htonl(INADDR_LOOPBACK + 1 + static_cast<std::uint32_t>(next_ / conns_per_source));
    const int one = 1;
    if (::setsockopt(attempt.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) != 0 ||
        ::bind(attempt.fd, reinterpret_cast<const sockaddr*>(&source), sizeof(source)) != 0) {
      return fail(attempt, error_text("bind", errno));
    }
    if (::connect(attempt.fd, reinterpret_cast<const sockaddr*>(&address_), sizeof(address_)) !=
            0 &&
        errno != EINPROGRESS) {
      return fail(attempt, error_text("connect", errno));
    }
    watch(attempt, index, EPOLLOUT, EPOLL_CTL_ADD);
  }

  void watch(Attempt& attempt, std::uint64_t index, std::uint32_t events, int op) {
    epoll_event event{};
    event.events = events;
    event.data.u64 = index;
    if (::epoll_ctl(epoll_fd_, op, attempt.fd, &event) != 0) {
      fail(attempt, error_text("epoll_ctl", errno));
    }
  }

  // The handshake is over: sends the value (4 bytes always fit a new socket's buffer),
  // then waits for the echo.
  void send_value(Attempt& attempt, std::uint64_t index) {
    int error = 0;
    socklen_t length = sizeof(error);
    if (::getsockopt(attempt.fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
    if (error != 0) return fail(attempt, error_text("connect", error));
    std::array<unsigned char, 4> bytes;
    std::memcpy(bytes.data(), &attempt.value, bytes.size());
    const ssize_t put = ::write(attempt.fd, bytes.data(), bytes.size());
    if (put != static_cast<ssize_t>(bytes.size())) {
      return fail(attempt, put < 0 ? error_text("write", errno) : "short write of 4 bytes");
    }
    attempt.sent = true;
    watch(attempt, index, EPOLLIN, EPOLL_CTL_MOD);
  }

  // Reads what has arrived of the echo; true once all 4 bytes are in and equal the value.
  bool receive_echo(Attempt& attempt) {
    const ssize_t got =
        ::read(attempt.fd, attempt.echo.data() + attempt.got, attempt.echo.size() - attempt.got);
    if (got < 0) {
      if (errno != EAGAIN && errno != EINTR) fail(attempt, error_text("read", errno));
      return false;
    }
    if (got == 0) {
      fail(attempt, "the server closed a connection before its echo");
      return false;
    }
    attempt.got = static_cast<std::uint8_t>(attempt.got + got);
    if (attempt.got < attempt.echo.size()) return false;
    std::uint32_t echoed = 0;
    std::memcpy(&echoed, attempt.echo.data(), sizeof(echoed));
    if (echoed != attempt.value) {
      char text[64];
      std::snprintf(text, sizeof(text), "sent 0x%08x, echoed 0x%08x", attempt.value, echoed);
      fail(attempt, text);
      return false;
    }
    return true;
  }

  int epoll_fd_;
  sockaddr_in address_{};
  std::vector<int> open_;      // the connections that answered
  std::uint64_t next_ = 0;     // connections started so far, for their values
  std::size_t in_flight_ = 0;  // of the current open()
  std::string first_failure_;
};

struct IdleRun {
  std::uint64_t conns = 0;
  std::uint64_t answered = 0;
  std::uint64_t rss_before_kib = 0;
  std::uint64_t rss_after_kib = 0;
  std::chrono::nanoseconds open_wall{0};  // opening the N connections and their echoes

  [[nodiscard]] double bytes_per_conn() const noexcept {
    return (static_cast<double>(rss_after_kib) - static_cast<double>(rss_before_kib)) * 1024.0 /
           static_cast<double>(conns);
  }
  [[nodiscard]] double conns_per_s() const noexcept { return per_second(conns, open_wall); }
  [[nodiscard]] double rss_before() const noexcept { return static_cast<double>(rss_before_kib); }
  [[nodiscard]] double rss_after() const noexcept { return static_cast<double>(rss_after_kib); }
};

// Ten seconds, and a millisecond per connection: far more than a server that answers
// needs (10,000 connections take well under a second here).
Clock::time_point deadline_for(std::uint64_t conns) {
  return Clock::now() + std::chrono::seconds(10) +
         std::chrono::milliseconds(static_cast<std::int64_t>(conns));
}

// The server's VmRSS, after making sure it is still there.
std::uint64_t server_rss_kib(const Server& server, ChildProcess& child) {
  if (child.exited()) throw std::runtime_error(server.name + " exited during the run");
  return rss_kib(child.pid());
}

IdleRun run_once(const Server& server, const IdleOptions& options) {
  ChildProcess child = ChildProcess::fork_server(options.server_cpu, server.serve);
  IdleRun run;
  run.conns = options.conns;
  {
    IdleClient client(child.port());
    const std::uint64_t warm = client.open(warmup_conns, deadline_for(warmup_conns));
    if (warm != warmup_conns) {
      throw std::runtime_error(
          server.name + ": " + std::to_string(warm) + " of " + std::to_string(warmup_conns) +
          " warm-up connections answered (first failure: " + client.first_failure() + ")");
    }
    std::this_thread::sleep_for(settle);
    run.rss_before_kib = server_rss_kib(server, child);
    const Stopwatch clock;
    run.answered = client.open(options.conns, deadline_for(options.conns));
    run.open_wall = clock.elapsed().wall;
    if (run.answered != options.conns) {
      throw std::runtime_error(server.name + ": " + std::to_string(run.answered) + " of " +
                               std::to_string(options.conns) +
                               " connections answered (first failure: " + client.first_failure() +
                               ")");
    }
    std::this_thread::sleep_for(settle);
    run.rss_after_kib = server_rss_kib(server, child);
  }
  // coring's server shuts down cleanly on SIGTERM; the epoll peer simply dies of it.
  const int status = child.stop(SIGTERM, std::chrono::milliseconds(5000));
  if (server.serve == &serve_coring_echo && status != 0) {
    throw std::runtime_error(server.name + ": exit status " + std::to_string(status) +
                             " after SIGTERM (want a clean shutdown, 0)");
  }
  return run;
}

// runs[i] belongs to servers[i], the servers taking turns.
std::vector<std::vector<IdleRun>> run_idle(const std::vector<Server>& servers,
                                           const IdleOptions& options) {
  const OpenFilesLimit limit(options.conns + warmup_conns + 64);
  std::vector<std::function<IdleRun()>> sides;
  for (const Server& server : servers) {
    sides.emplace_back([&server, &options] { return run_once(server, options); });
  }
  return interleave(options.reps, sides);
}

double median_of(const std::vector<IdleRun>& runs, double (IdleRun::*metric)() const noexcept) {
  std::vector<double> values;
  for (const IdleRun& run : runs) values.push_back((run.*metric)());
  return median(values);
}

// What idle_main() prints: a row per server, then coring-echo's figure against the target.
void print_table(const std::vector<Server>& servers, const std::vector<std::vector<IdleRun>>& runs,
                 const IdleOptions& options, const CoringBackend& backend) {
  std::printf(
      "idle: %llu connections per server on top of %llu warm-up ones, each echoing one "
      "distinct 4-byte value, every reply checked; server VmRSS read %lld ms after each; "
      "%llu runs per server, interleaved; server on CPU %d, client on CPU %d; medians; "
      "coring's backend: %s\n",
      static_cast<unsigned long long>(options.conns), static_cast<unsigned long long>(warmup_conns),
      static_cast<long long>(settle.count()), static_cast<unsigned long long>(options.reps),
      options.server_cpu, options.client_cpu, backend.describe().c_str());
  std::printf("%-12s %8s %15s %14s %15s %9s\n", "server", "conns", "rss_before_kib",
              "rss_after_kib", "bytes_per_conn", "answered");
  for (std::size_t i = 0; i < servers.size(); ++i) {
    std::uint64_t answered = options.conns;
    for (const IdleRun& run : runs[i]) answered = std::min(answered, run.answered);
    std::printf("%-12s %8llu %15.0f %14.0f %15.1f %9llu\n", servers[i].name.c_str(),
                static_cast<unsigned long long>(options.conns),
                median_of(runs[i], &IdleRun::rss_before), median_of(runs[i], &IdleRun::rss_after),
                median_of(runs[i], &IdleRun::bytes_per_conn),
                static_cast<unsigned long long>(answered));
  }
  // epoll's figure is about 0, so a ratio to it means nothing: coring's against the target.
  std::printf("%s bytes_per_conn %.1f (target <= %.0f)\n", servers.front().name.c_str(),
              median_of(runs.front(), &IdleRun::bytes_per_conn), target_bytes_per_conn);
}

}  // namespace

BenchResult idle_suite(const SuiteOptions& suite) {
  IdleOptions options;
  options.conns = suite.idle_conns;
  options.reps = suite.reps;
  options.server_cpu = suite.server_cpu;
  options.client_cpu = suite.client_cpu;
  const std::vector<Server> servers = idle_servers();
  const std::vector<std::vector<IdleRun>> runs = run_idle(servers, options);
  BenchResult result{"idle", "N=" + std::to_string(options.conns), idle_metrics, {}, {}};
  for (std::size_t i = 0; i < servers.size(); ++i) {
    result.sides.push_back(
        measured_side(servers[i].side, runs[i], &IdleRun::bytes_per_conn, &IdleRun::conns_per_s));
  }
  return result;
}

int idle_main(Args& args) {
  IdleOptions options;
  options.conns = args.take_u64("--conns", 1, 1'000'000).value_or(options.conns);
  options.reps = args.take_u64("--reps", 1, 100).value_or(options.reps);
  std::tie(options.server_cpu, options.client_cpu) = take_cpus(args, {0, 1});
  const CoringBackend backend = take_backend(args);
  args.finish();
  pin_to_cpu(options.client_cpu);
  const std::vector<Server> servers = idle_servers();
  print_table(servers, run_idle(servers, options), options, backend);
  return 0;
}

}  // namespace coring::bench
