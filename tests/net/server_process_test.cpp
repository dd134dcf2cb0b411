// The example servers as programs (coring-echo, coring-http), run as child processes:
// what only a whole process shows.
//
// SIGPIPE. With stderr a pipe whose reader has gone, a line the server logs raises
// SIGPIPE, whose default action kills the process (exit status 141 in a shell); so does
// `kill -PIPE`. The servers ignore it: after the signal, and after logging into the
// closed pipe (accept() failing for want of descriptor slots, which the test makes
// scarce with RLIMIT_NOFILE), the server still echoes, and SIGTERM (itself logged)
// still ends it with status 0.
//
// The listening line. A server prints it only once every loop is up. Under a tight
// RLIMIT_AS (the test finds the smallest address space in which coring-http starts,
// then tries every 128 KiB from 1.5 MiB below it to 1 MiB above, with one loop and with
// two) the server
// either fails to start — no line, exit status 1 with its message — or prints the line
// and then serves, under a load of 400 connections at once, until SIGTERM ends it with
// status 0; a connection that memory cannot be found for is closed, and nothing crashes.
// A loop that cannot grow its ready queue ends the server with status 1 and the reason. RLIMIT_AS
// cannot work with AddressSanitizer's shadow memory, so that test is skipped in sanitizer builds.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "net_support.hpp"
#include "support.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define CORING_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORING_TEST_ASAN 1
#endif
#endif

namespace {

using namespace std::chrono_literals;
using coring::ring::test::Fd;

#if defined(CORING_ECHO_PATH) && defined(CORING_HTTP_PATH)

// A server program run as a child, its stdout read through a pipe (for the listening
// line) and its stderr into a pipe whose reader is closed, or into a file.
class Child {
 public:
  struct Limit {
    int resource;
    rlim_t value;
  };

  Child(std::vector<std::string> args, std::optional<Limit> limit, bool stderr_to_closed_pipe,
        const std::string& stderr_file = "") {
    int out[2];
    int err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    Fd err_read(err[0]);
    Fd err_write(err[1]);
    Fd out_write(out[1]);
    out_.reset(out[0]);
    const int file = stderr_file.empty() ? -1
                                         : ::open(stderr_file.c_str(),
                                                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    Fd file_fd(file);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int stderr_fd = stderr_to_closed_pipe ? err_write.get() : file_fd.get();
    pid_ = ::fork();
    if (pid_ == 0) {
      // The child: async-signal-safe calls only, up to the exec.
      if (limit) {
        const rlimit value{limit->value, limit->value};
        if (::setrlimit(limit->resource, &value) != 0) ::_exit(126);
      }
      ::dup2(out_write.get(), 1);
      if (stderr_fd >= 0) ::dup2(stderr_fd, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    if (pid_ < 0) ADD_FAILURE() << "fork: " << std::strerror(errno);
    // The parent keeps only the read end of stdout: stderr's reader is gone from here on.
  }
  ~Child() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      (void)wait(5s);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The port of the listening line, or nullopt if the child ended (or took more than
  // `limit`) without printing it.
  std::optional<std::uint16_t> listening_port(std::chrono::milliseconds limit = 10s) {
    const auto line = coring::net::test::first_line(out_.get(), limit);
    if (!line) return std::nullopt;
    line_ = *line;
    return coring::net::test::port_in(line_);
  }
  [[nodiscard]] const std::string& line() const { return line_; }

  void signal(int number) const { ::kill(pid_, number); }
  // Whether the child still runs (it has not exited or been killed).
  bool running() {
    if (status_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
    return !status_;
  }
  // The wait status once the child has ended, or nullopt after `limit`.
  std::optional<int> wait(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (running()) {
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(1ms);
    }
    return status_;
  }

 private:
  pid_t pid_ = -1;
  Fd out_;
  std::optional<int> status_;
  std::string line_;
};

std::string describe(const std::optional<int>& status) {
  if (!status) return "still running";
  if (WIFEXITED(*status)) return "exit status " + std::to_string(WEXITSTATUS(*status));
  if (WIFSIGNALED(*status)) return std::string("killed by ") + ::strsignal(WTERMSIG(*status));
  return "wait status " + std::to_string(*status);
}

bool exited_with(const std::optional<int>& status, int code) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == code;
}

// A blocking client socket with a 10 s receive timeout.
Fd connect_to(std::uint16_t port) { return Fd(coring::net::test::connected_client(port, 10s)); }

// Sends `request` on a new connection and returns what came back: `expect` bytes, or
// everything until the server closed the connection when `expect` is 0.
std::string exchange(std::uint16_t port, std::string_view request, std::size_t expect) {
  Fd fd = connect_to(port);
  if (fd.get() < 0) return {};
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return {};
  }
  std::string reply;
  char chunk[4096];
  while (expect == 0 || reply.size() < expect) {
    const ssize_t got = ::recv(fd.get(), chunk, sizeof(chunk), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    reply.append(chunk, static_cast<std::size_t>(got));
  }
  return reply;
}

bool echoes(std::uint16_t port) { return exchange(port, "ping", 4) == "ping"; }

TEST(ServerProcess, SigpipeFromKillLeavesTheServerServing) {
  Child server({CORING_ECHO_PATH, "--port", "0"}, std::nullopt, true);
  const auto port = server.listening_port();
  ASSERT_TRUE(port) << describe(server.wait(1s));
  ASSERT_TRUE(echoes(*port));
  server.signal(SIGPIPE);
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(server.running()) << describe(server.wait(0ms));
  EXPECT_TRUE(echoes(*port));
  server.signal(SIGTERM);
  const auto status = server.wait(10s);
  EXPECT_TRUE(exited_with(status, 0)) << describe(status);
}

TEST(ServerProcess, LoggingIntoAClosedPipeLeavesTheServerServing) {
  // 32 descriptors: the loop's file table gets 32 slots, which 40 connections overflow.
  Child server({CORING_ECHO_PATH, "--port", "0"}, Child::Limit{RLIMIT_NOFILE, 32}, true);
  const auto port = server.listening_port();
  ASSERT_TRUE(port) << describe(server.wait(1s));
  ASSERT_TRUE(echoes(*port));
  {
    std::vector<Fd> held;
    for (int i = 0; i < 40; ++i) held.push_back(connect_to(*port));
    // Each held connection that has a slot echoes; the others are refused (reset) or wait
    // in the backlog, while the server logs the failed accepts.
    int echoed = 0;
    for (Fd& fd : held) {
      const timeval short_wait{0, 200'000};
      ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &short_wait, sizeof(short_wait));
      char byte = 'x';
      if (::send(fd.get(), &byte, 1, MSG_NOSIGNAL) == 1 && ::recv(fd.get(), &byte, 1, 0) == 1) {
        ++echoed;
      }
    }
    EXPECT_GT(echoed, 0);
    EXPECT_LT(echoed, 40);
    ASSERT_TRUE(server.running()) << describe(server.wait(0ms));
  }
  // The held connections are closed: once the server has closed its ends, their slots
  // are free and a new connection is served (one that came before was refused).
  bool served = false;
  for (int attempt = 0; attempt < 100 && !served; ++attempt) {
    served = echoes(*port);
    if (!served) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(served);
  ASSERT_TRUE(server.running()) << describe(server.wait(0ms));
  server.signal(SIGTERM);  // "Terminated: shutting down" goes into the closed pipe too
  const auto status = server.wait(10s);
  EXPECT_TRUE(exited_with(status, 0)) << describe(status);
}

#ifndef CORING_TEST_ASAN

constexpr std::string_view get_root = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
constexpr std::string_view get_close = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

// 400 connections at once, two requests each: the server's memory runs short under
// them. Far more than the 64 coroutines the loop's ready queue first holds, so that the
// queue has to grow when memory is short.
void load(std::uint16_t port) {
  std::vector<Fd> connections;
  for (int i = 0; i < 400; ++i) {
    Fd fd = connect_to(port);
    const std::string requests = std::string(get_root) + std::string(get_close);
    if (fd.get() >= 0 && ::send(fd.get(), requests.data(), requests.size(), MSG_NOSIGNAL) > 0) {
      connections.push_back(std::move(fd));
    }
  }
  char chunk[4096];
  for (Fd& fd : connections) {
    while (::recv(fd.get(), chunk, sizeof(chunk), 0) > 0) {
    }
  }
}

// What one run of coring-http under RLIMIT_AS = `bytes` did.
struct AsRun {
  bool listening = false;
  bool served = false;  // a request got its 200 (only asked when listening)
  std::optional<int> status;
  std::string log;
};

AsRun run_http_with_address_space(rlim_t bytes, const std::string& threads,
                                  const std::string& log_file) {
  AsRun run;
  Child server({CORING_HTTP_PATH, "--port", "0", "--threads", threads},
               Child::Limit{RLIMIT_AS, bytes}, false, log_file);
  const auto port = server.listening_port();
  run.listening = port.has_value();
  if (run.listening) {
    for (int i = 0; i < 4; ++i) {
      const std::string reply = exchange(*port, get_close, 0);
      run.served = run.served || reply.find("Hello, World!") != std::string::npos;
    }
    load(*port);
    server.signal(SIGTERM);
  }
  run.status = server.wait(10s);
  return run;
}

std::string read_file(const std::string& path) {
  std::string text;
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  char chunk[4096];
  ssize_t got = 0;
  while ((got = ::read(fd.get(), chunk, sizeof(chunk))) > 0) {
    text.append(chunk, static_cast<std::size_t>(got));
  }
  return text;
}

TEST(ServerProcess, UnderATightAddressSpaceTheListeningLineMeansServing) {
  coring::ring::test::TempDir dir;
  const std::string log = dir.file("stderr");
  constexpr rlim_t step = 128 * 1024;
  for (const std::string threads : {"1", "2"}) {
    // The smallest address space, in steps, in which the server starts and serves.
    rlim_t low = 1;      // in steps: too small
    rlim_t high = 4096;  // 512 MiB: enough
    ASSERT_TRUE(run_http_with_address_space(high * step, threads, log).served);
    while (high - low > 1) {
      const rlim_t middle = (low + high) / 2;
      (run_http_with_address_space(middle * step, threads, log).served ? high : low) = middle;
    }
    int started = 0;
    int ended_early = 0;
    int failed = 0;
    // From 640 KiB below, where a loop's rings (388 KiB for a server loop) and pool no
    // longer fit, to 1 MiB above. Not much further below, the C++ runtime itself has no
    // memory left to throw an exception with: with one thread the server starts at about
    // 7.3 MiB, and at 6.5 MiB the first allocation in main() ends in std::terminate.
    for (rlim_t steps = high > 5 ? high - 5 : 1; steps <= high + 8; ++steps) {
      const AsRun run = run_http_with_address_space(steps * step, threads, log);
      if (read_file(log).find("error while loading shared libraries") != std::string::npos) {
        continue;  // too small for the dynamic loader: the server never ran
      }
      const std::string where = threads + " thread(s), RLIMIT_AS " +
                                std::to_string(steps * step / 1024) +
                                " KiB: " + describe(run.status) + "\n" + read_file(log);
      if (run.listening) {
        ++started;
        // Served until SIGTERM, or ended by an allocation the loop itself could not
        // make (its ready queue's growth): exit status 1, with the reason.
        if (!exited_with(run.status, 0)) {
          ++ended_early;
          EXPECT_TRUE(exited_with(run.status, 1)) << where;
          EXPECT_NE(read_file(log).find("server: std::bad_alloc"), std::string::npos) << where;
        }
      } else {
        ++failed;
        EXPECT_TRUE(exited_with(run.status, 1)) << where;
        const std::string message = read_file(log);
        EXPECT_TRUE(message.find("server: ") != std::string::npos ||
                    message.find("coring-http: ") != std::string::npos)
            << where;
      }
    }
    std::printf(
        "%s thread(s): starts from %llu KiB; %d runs below and above: %d started (%d of them "
        "ended for want of memory), %d failed to start\n",
        threads.c_str(), static_cast<unsigned long long>(high * step / 1024), started + failed,
        started, ended_early, failed);
  }
}

#else

TEST(ServerProcess, UnderATightAddressSpaceTheListeningLineMeansServing) {
  GTEST_SKIP() << "RLIMIT_AS cannot hold AddressSanitizer's shadow memory";
}

#endif

#else

TEST(ServerProcess, NeedsTheExamples) {
  GTEST_SKIP() << "built without the examples (CORING_BUILD_EXAMPLES=OFF)";
}

#endif

}  // namespace
