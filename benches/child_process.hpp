// A server under test, run in a child process pinned to one CPU, and the CPU time it
// spends.
//
// The network benchmarks (echo, http) measure a server's CPU per request, so each server
// runs in a process of its own: its CPU time is then exactly its threads' run time, read
// from /proc/<pid>/task/<tid>/schedstat (nanoseconds of user and system time, including
// the softirq work the kernel does in its context and io_uring's task work), summed over
// its threads and its descendants' (nginx's worker is its master's child).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace coring::bench {

class ChildProcess {
 public:
  // Forks. The child pins itself to `cpu` and runs serve(ready_fd), whose return value
  // is its exit status; serve() calls report_listening(ready_fd, port) once it listens on
  // 127.0.0.1:port. Returns then; throws std::runtime_error if the child failed before.
  static ChildProcess fork_server(int cpu, const std::function<int(int ready_fd)>& serve);
  // Forks and executes argv[0] (searched in PATH) pinned to `cpu`, its standard output
  // going to `stdout_fd` and its standard error to `stderr_fd`, each if it is not -1.
  // Does not wait.
  static ChildProcess exec(int cpu, const std::vector<std::string>& argv, int stdout_fd = -1,
                           int stderr_fd = -1);
  // Waits for the child to exit; returns its exit status (128 + signal if killed).
  int wait();

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Kills (SIGKILL) and reaps a child still running.
  ~ChildProcess();

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  // The port fork_server()'s child listens on (0 for exec()).
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  // Run time of the child's threads and of its descendants' so far.
  [[nodiscard]] std::chrono::nanoseconds cpu_time() const;
  // Whether the child has exited (reaping it if so).
  [[nodiscard]] bool exited();
  // Sends `signal` and waits up to `grace` for the child to exit, then SIGKILLs it.
  // Returns the exit status (128 + signal number if a signal ended it).
  int stop(int signal, std::chrono::milliseconds grace);

 private:
  explicit ChildProcess(pid_t pid, std::uint16_t port = 0) noexcept : pid_(pid), port_(port) {}

  pid_t pid_;
  std::uint16_t port_;
  int status_ = -1;  // once reaped
};

// For fork_server()'s serve(): tells the parent the server listens on 127.0.0.1:port.
void report_listening(int ready_fd, std::uint16_t port);

// A listening TCP socket on 127.0.0.1 with a kernel-chosen port (SOCK_CLOEXEC,
// backlog SOMAXCONN); throws std::system_error.
int listen_loopback();
std::uint16_t local_port(int fd);

// Connects a TCP socket to 127.0.0.1:port, retrying for up to `patience` while nothing
// listens yet (a server that was just exec'd). Returns the connected fd (SOCK_CLOEXEC,
// blocking) or throws std::runtime_error.
int connect_loopback(std::uint16_t port, std::chrono::milliseconds patience);

// A TCP port on 127.0.0.1 that was free a moment ago, for servers that take --port.
std::uint16_t free_loopback_port();

// Closes a connection with a reset (SO_LINGER of 0 s): nothing is left in TIME_WAIT, so
// a benchmark that opens thousands of connections run after run does not run out of
// ports.
void close_with_reset(int fd);

// Where an external peer program (nginx, wrk, fio) is: the first executable `name` in
// the directories of $CORING_BENCH_PATH if that is set (a test sets it to an empty
// directory to see every such peer skipped), else of $PATH and then /usr/sbin and
// /sbin (nginx lives there, outside a user's PATH). "" if there is none.
std::string find_program(std::string_view name);

// The program `name` next to the running coring-bench (the peers built with it, such
// as coring-peer-asio-epoll), or "" if there is none.
std::string sibling_program(std::string_view name);

}  // namespace coring::bench
