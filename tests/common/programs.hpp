// Running the real programs that tests talk to (curl, openssl, python3, ...): a command
// through sh with its exit status and output, a server program in a child process with the
// port it listens on, and a skip, naming the Debian package, when the program is not
// installed (scripts/install-deps.sh installs them all).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

namespace coring::test {

// Runs `command` through sh; its exit status (-1 if it did not exit) and what it wrote to
// stdout and stderr.
struct Ran {
  int status = -1;
  std::string output;
};
inline Ran run_command(const std::string& command) {
  Ran result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char chunk[4096];
  std::size_t got = 0;
  while ((got = std::fread(chunk, 1, sizeof(chunk), pipe)) > 0) result.output.append(chunk, got);
  const int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

inline bool program_installed(const char* program) {
  return run_command(std::string("command -v ") + program + " >/dev/null").status == 0;
}

// A server program run as `command` through sh in a child process, killed (SIGTERM) and
// reaped on destruction. The program listens on a port the kernel chose (port 0) and names
// it on its stdout: port() reads up to the first line that holds `marker` and takes the
// digits right after it. A port the child chooses cannot race another process for it; a
// port found free and then handed to a child can (ctest runs test processes side by side,
// and two of them may be told the same free port). The command's stderr is its own to
// redirect; stdout stays a pipe to this object until it goes.
class ServerProgram {
 public:
  ServerProgram(const std::string& command, std::string marker) : marker_(std::move(marker)) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);  // dup2's copy is not close-on-exec
      ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = out[0];
  }
  ~ServerProgram() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (out_ >= 0) ::close(out_);
  }
  ServerProgram(const ServerProgram&) = delete;
  ServerProgram& operator=(const ServerProgram&) = delete;

  // The port once the program has named it, waiting up to `limit` for that; nullopt if it
  // ended its output or did not name a port in time (output() says what it printed).
  std::optional<std::uint16_t> port(std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    if (port_ || pid_ <= 0 || out_ < 0) return port_;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (const auto at = output_.find(marker_); at != std::string::npos) {
        unsigned long port = 0;
        std::size_t i = at + marker_.size();
        for (; i < output_.size() && output_[i] >= '0' && output_[i] <= '9' && port <= 65535; ++i) {
          port = port * 10 + static_cast<unsigned long>(output_[i] - '0');
        }
        // The number is whole once a non-digit follows it.
        if (i < output_.size()) {
          if (port == 0 || port > 65535) return std::nullopt;
          port_ = static_cast<std::uint16_t>(port);
          return port_;
        }
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd readable{out_, POLLIN, 0};
      const int ready = ::poll(&readable, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return std::nullopt;
      char chunk[512];
      const ssize_t got = ::read(out_, chunk, sizeof(chunk));
      if (got <= 0) return std::nullopt;
      output_.append(chunk, static_cast<std::size_t>(got));
    }
  }
  [[nodiscard]] const std::string& output() const { return output_; }

 private:
  std::string marker_;
  pid_t pid_ = -1;
  int out_ = -1;
  std::string output_;
  std::optional<std::uint16_t> port_;
};

}  // namespace coring::test

#define REQUIRE_PROGRAM(program, package)                                         \
  do {                                                                            \
    if (!::coring::test::program_installed(program)) {                            \
      GTEST_SKIP() << program << " is not installed (apt-get install " << package \
                   << "; scripts/install-deps.sh installs it)";                   \
    }                                                                             \
  } while (false)
