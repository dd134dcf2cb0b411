// Child processes for the network benchmarks: fork, pin, report the port, read CPU time.
#include "child_process.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

namespace coring::bench {
namespace {

void pin_self(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof(set), &set) != 0) {
    std::fprintf(stderr, "child: sched_setaffinity(%d): %s\n", cpu, std::strerror(errno));
    ::_exit(120);
  }
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

// A listening socket on 127.0.0.1:0, or -1 with errno set.
int try_listen_loopback() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const sockaddr_in address = loopback(0);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 ||
      ::listen(fd, SOMAXCONN) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

// The run time of every thread of `pid`, in nanoseconds (0 if it is gone).
std::uint64_t threads_run_time_ns(pid_t pid) {
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = ::opendir(tasks.c_str());
  if (dir == nullptr) return 0;
  std::uint64_t total = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream schedstat(tasks + "/" + entry->d_name + "/schedstat");
    std::uint64_t run_ns = 0;
    if (schedstat >> run_ns) total += run_ns;
  }
  ::closedir(dir);
  return total;
}

// The children of `pid`, from every process's /proc/<pid>/stat (its 4th field is the
// parent). /proc/<pid>/task/<tid>/children is not available on every kernel.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> children;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return children;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
    std::ifstream stat(std::string("/proc/") + entry->d_name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so parse
    // from the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) {
      children.push_back(static_cast<pid_t>(std::stoi(entry->d_name)));
    }
  }
  ::closedir(dir);
  return children;
}

std::uint64_t tree_run_time_ns(pid_t pid) {
  std::uint64_t total = threads_run_time_ns(pid);
  for (const pid_t child : children_of(pid)) total += tree_run_time_ns(child);
  return total;
}

}  // namespace

std::uint16_t local_port(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof(address);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::system_error(errno, std::system_category(), "getsockname");
  }
  return ntohs(address.sin_port);
}

int listen_loopback() {
  const int fd = try_listen_loopback();
  if (fd < 0) throw std::system_error(errno, std::system_category(), "listen on 127.0.0.1");
  return fd;
}

void report_listening(int ready_fd, std::uint16_t port) {
  if (::write(ready_fd, &port, sizeof(port)) != sizeof(port)) {
    throw std::system_error(errno, std::system_category(), "report_listening");
  }
  ::close(ready_fd);
}

ChildProcess ChildProcess::fork_server(int cpu, const std::function<int(int ready_fd)>& serve) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category());
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::system_category(), "fork");
  if (pid == 0) {
    ::close(pipe_fds[0]);
    pin_self(cpu);
    int status = 1;
    try {
      status = serve(pipe_fds[1]);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
    }
    std::fflush(nullptr);
    ::_exit(status);
  }
  ::close(pipe_fds[1]);
  ChildProcess child(pid);
  std::uint16_t port = 0;
  const ssize_t got = ::read(pipe_fds[0], &port, sizeof(port));
  ::close(pipe_fds[0]);
  if (got != sizeof(port)) {
    const int status = child.stop(SIGKILL, std::chrono::milliseconds(1000));
    throw std::runtime_error("the server process failed before listening (exit status " +
                             std::to_string(status) + ")");
  }
  child.port_ = port;
  return child;
}

ChildProcess ChildProcess::exec(int cpu, const std::vector<std::string>& argv, int stdout_fd,
                                int stderr_fd) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::system_category(), "fork");
  if (pid == 0) {
    pin_self(cpu);
    if (stdout_fd >= 0 && ::dup2(stdout_fd, STDOUT_FILENO) < 0) ::_exit(126);
    if (stderr_fd >= 0 && ::dup2(stderr_fd, STDERR_FILENO) < 0) ::_exit(126);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "child: exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  return ChildProcess(pid);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), port_(other.port_), status_(other.status_) {}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && status_ < 0) stop(SIGKILL, std::chrono::milliseconds(5000));
}

std::chrono::nanoseconds ChildProcess::cpu_time() const {
  return std::chrono::nanoseconds(tree_run_time_ns(pid_));
}

bool ChildProcess::exited() {
  if (status_ >= 0) return true;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    status_ = exit_code(status);
    return true;
  }
  return false;
}

int ChildProcess::wait() {
  if (status_ >= 0) return status_;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = exit_code(status);
  return status_;
}

int ChildProcess::stop(int signal, std::chrono::milliseconds grace) {
  if (exited()) return status_;
  ::kill(pid_, signal);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (!exited()) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      status_ = exit_code(status);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return status_;
}

int connect_loopback(std::uint16_t port, std::chrono::milliseconds patience) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  const sockaddr_in address = loopback(port);
  for (;;) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "socket");
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) {
      return fd;
    }
    const int error = errno;
    ::close(fd);
    if (error != ECONNREFUSED || std::chrono::steady_clock::now() > deadline) {
      throw std::system_error(error, std::system_category(),
                              "connect to 127.0.0.1:" + std::to_string(port));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::uint16_t free_loopback_port() {
  const int fd = listen_loopback();
  const std::uint16_t port = local_port(fd);
  ::close(fd);
  return port;
}

void close_with_reset(int fd) {
  const linger abort{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
  ::close(fd);
}

std::string find_program(std::string_view name) {
  const char* override = std::getenv("CORING_BENCH_PATH");
  const char* path = override != nullptr ? override : std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  if (override == nullptr) dirs += ":/usr/sbin:/sbin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::filesystem::path candidate =
        std::filesystem::path(dirs.substr(start, end - start)) / name;
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  return {};
}

std::string sibling_program(std::string_view name) {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) return {};
  const std::filesystem::path candidate = self.parent_path() / name;
  return ::access(candidate.c_str(), X_OK) == 0 ? candidate.string() : std::string();
}

}  // namespace coring::bench
