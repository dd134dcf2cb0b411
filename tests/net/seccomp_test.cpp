// The example servers (coring-echo, coring-http) under a seccomp filter that denies
// io_uring's three system calls, as Docker's default profile does: coring falls back to
// its epoll backend (with one warning on stderr that names it) and the servers serve.
//
// Each server runs as a child that sets PR_SET_NO_NEW_PRIVS, installs a classic-BPF
// filter returning EPERM (or ENOSYS) for io_uring_setup, io_uring_enter and
// io_uring_register (425-427 on x86-64 and AArch64; x32's numbers too) and allowing
// everything else, then execs the server with --port 0. Real clients then talk to it: 20
// echo connections at once with patterned payloads of 1 byte to 256 KiB, compared byte for
// byte; HTTP requests on keep-alive connections and pipelined. SIGTERM ends the server
// with status 0.
//
// The filter is checked first in a child of its own, which calls the three system calls
// under it and reports the errno each saw: a wrong filter fails loudly instead of letting
// the servers run on io_uring. Without seccomp filters (EINVAL/ENOSYS), the tests skip.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "deny_io_uring.hpp"
#include "net_support.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using coring::ring::test::DenyIoUring;
using coring::ring::test::Fd;
using coring::ring::test::install_filter;
using coring::ring::test::native_arch;

std::string errno_text(int error) {
  const char* name = error == EPERM ? "EPERM" : error == ENOSYS ? "ENOSYS" : "errno";
  return std::string(name) + " " + std::to_string(error) + " (" + std::strerror(error) + ")";
}

std::string describe(const std::optional<int>& status) {
  if (!status) return "did not end in time (killed)";
  if (WIFEXITED(*status)) return "exit status " + std::to_string(WEXITSTATUS(*status));
  if (WIFSIGNALED(*status)) return std::string("killed by ") + ::strsignal(WTERMSIG(*status));
  return "wait status " + std::to_string(*status);
}

int reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// The filter's self-check: a child installs it and calls the three system calls (setup
// with zeroed 120-byte parameters, enter and register on fd -1, which without the filter
// fail with EBADF), and exits with the errno io_uring_setup saw. Skips the test when the
// kernel has no seccomp filters.
void check_filter(const DenyIoUring& filter, int error) {
  if (native_arch == 0) GTEST_SKIP() << "no seccomp filter written for this architecture";
  struct Report {
    int install = -1;            // 0, or the errno of installing the filter
    int seen[3] = {-1, -1, -1};  // errno of setup, enter, register (0: it succeeded)
  };
  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0) << std::strerror(errno);
  Fd read_end(ends[0]);
  Fd write_end(ends[1]);
  const pid_t pid = ::fork();
  if (pid == 0) {
    Report report;
    report.install = install_filter(filter.program());
    if (report.install == 0) {
      alignas(8) unsigned char params[120] = {};
      // The C library's numbers, not the filter's: a wrong number in the filter shows.
      const long ring = ::syscall(SYS_io_uring_setup, 1L, params);
      report.seen[0] = ring >= 0 ? 0 : errno;
      if (ring >= 0) ::close(static_cast<int>(ring));
      report.seen[1] = ::syscall(SYS_io_uring_enter, -1L, 0L, 0L, 0L, 0L, 0L) >= 0 ? 0 : errno;
      report.seen[2] = ::syscall(SYS_io_uring_register, -1L, 0L, 0L, 0L) >= 0 ? 0 : errno;
    }
    (void)!::write(write_end.get(), &report, sizeof(report));
    ::_exit(report.install == 0 ? report.seen[0] : 255);
  }
  ASSERT_GT(pid, 0) << "fork: " << std::strerror(errno);
  write_end.reset();
  const int status = reap(pid);
  Report report;
  ASSERT_EQ(::read(read_end.get(), &report, sizeof(report)), static_cast<ssize_t>(sizeof(report)))
      << "the probe child reported nothing: " << describe(status);
  if (report.install == EINVAL || report.install == ENOSYS) {
    GTEST_SKIP() << "seccomp filters are unavailable: " << std::strerror(report.install);
  }
  ASSERT_EQ(report.install, 0) << "installing the filter: " << std::strerror(report.install);
  ASSERT_TRUE(WIFEXITED(status)) << describe(status);
  EXPECT_EQ(WEXITSTATUS(status), error) << "io_uring_setup under the filter saw errno "
                                        << WEXITSTATUS(status) << ", not " << errno_text(error);
  const char* names[3] = {"io_uring_setup", "io_uring_enter", "io_uring_register"};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(report.seen[i], error) << names[i] << " under the filter saw errno " << report.seen[i]
                                     << ", not " << errno_text(error);
  }
}

TEST(Seccomp, FilterDeniesIoUringWithEperm) {
  const DenyIoUring filter(EPERM);
  check_filter(filter, EPERM);
}

TEST(Seccomp, FilterDeniesIoUringWithEnosys) {
  const DenyIoUring filter(ENOSYS);
  check_filter(filter, ENOSYS);
}

#if defined(CORING_ECHO_PATH) && defined(CORING_HTTP_PATH)

// A server run as a child under `filter` (none if null): stdout read for the listening
// line, stderr collected by a thread until the child ends. The destructor kills and reaps
// the child if it still runs.
class FilteredServer {
 public:
  FilteredServer(std::vector<std::string> args, const sock_fprog* filter) {
    int out[2];
    int err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    out_.reset(out[0]);
    Fd out_write(out[1]);
    if (::pipe2(err, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    Fd err_read(err[0]);
    Fd err_write(err[1]);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    // The fallback is what is tested: no CORING_BACKEND choosing a backend for it (the
    // ctest run on the epoll backend sets one).
    std::vector<char*> envp;
    for (char** entry = environ; *entry != nullptr; ++entry) {
      if (std::string_view(*entry).substr(0, 15) != "CORING_BACKEND=") envp.push_back(*entry);
    }
    envp.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      // The child: async-signal-safe calls only, up to the exec.
      ::dup2(out_write.get(), 1);
      ::dup2(err_write.get(), 2);
      if (filter != nullptr && install_filter(filter) != 0) {
        constexpr std::string_view message = "seccomp_test: installing the filter failed\n";
        (void)!::write(2, message.data(), message.size());
        ::_exit(126);
      }
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    if (pid_ < 0) {
      ADD_FAILURE() << "fork: " << std::strerror(errno);
      return;
    }
    stderr_reader_ = std::thread([this, fd = std::move(err_read)] {
      char chunk[4096];
      ssize_t got = 0;
      while ((got = ::read(fd.get(), chunk, sizeof(chunk))) > 0 || (got < 0 && errno == EINTR)) {
        if (got > 0) stderr_.append(chunk, static_cast<std::size_t>(got));
      }
    });
  }
  ~FilteredServer() { (void)finish(0ms); }
  FilteredServer(const FilteredServer&) = delete;
  FilteredServer& operator=(const FilteredServer&) = delete;

  // The port of the listening line, or nullopt if the server ended (or took more than
  // `limit`) without printing it.
  std::optional<std::uint16_t> listening_port(std::chrono::milliseconds limit) {
    const auto line = coring::net::test::first_line(out_.get(), limit);
    return line ? coring::net::test::port_in(*line) : std::nullopt;
  }

  void signal(int number) const {
    if (pid_ > 0 && !ended_) ::kill(pid_, number);
  }
  bool running() {
    if (pid_ <= 0 || ended_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      ended_ = true;
      status_ = status;
    }
    return !ended_;
  }
  // Waits up to `limit` for the server to end, killing it after that; reaps it and
  // collects all of its stderr. The wait status, or nullopt if it had to be killed.
  std::optional<int> finish(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    if (running()) {
      ::kill(pid_, SIGKILL);
      (void)reap(pid_);
      ended_ = true;
    }
    if (stderr_reader_.joinable()) stderr_reader_.join();
    return status_;
  }
  // Everything the server wrote on stderr (complete once finish() has returned).
  [[nodiscard]] const std::string& stderr_text() const { return stderr_; }

 private:
  pid_t pid_ = -1;
  bool ended_ = false;
  std::optional<int> status_;
  Fd out_;
  std::thread stderr_reader_;
  std::string stderr_;
};

// A client socket connected to 127.0.0.1:`port`, with 10 s send and receive timeouts.
Fd connect_to(std::uint16_t port) {
  Fd fd(coring::net::test::connected_client(port, 10s));
  const timeval timeout{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  return fd;
}

// Starts `args` under a filter denying io_uring with `error` (after the filter's
// self-check), runs `clients` against its port, then ends it with SIGTERM: status 0 and
// the epoll backend's warning on stderr.
template <typename Clients>
void serve_under_filter(std::vector<std::string> args, int error, Clients clients) {
  const DenyIoUring filter(error);
  check_filter(filter, error);
  if (testing::Test::HasFailure() || testing::Test::IsSkipped()) return;
  const std::string name = args[0].substr(args[0].rfind('/') + 1);
  const std::string denied = "io_uring denied with " + errno_text(error);
  FilteredServer server(std::move(args), filter.program());
  const auto port = server.listening_port(10s);
  if (!port) {
    const auto status = server.finish(1s);
    FAIL() << name << " printed no listening line (waited up to 10 s), " << denied << ": "
           << describe(status) << "; its stderr:\n"
           << server.stderr_text();
  }
  clients(*port);
  const bool running = server.running();
  server.signal(SIGTERM);
  const auto status = server.finish(10s);
  const std::string& log = server.stderr_text();
  EXPECT_TRUE(running) << name << " ended while serving, " << denied << "; its stderr:\n" << log;
  EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << name << "'s end (SIGTERM sent after the clients), " << denied << ": " << describe(status)
      << "; its stderr:\n"
      << log;
  EXPECT_NE(log.find("epoll backend"), std::string::npos)
      << name << " did not warn that it uses the epoll backend, " << denied << "; its stderr:\n"
      << log;
}

// --- Echo ---------------------------------------------------------------------------

// 20 connections at once, each sending a payload of its own size (1 byte to 256 KiB) and
// pattern, non-blocking under poll(), so that neither side stalls on a full buffer. Once
// a connection has its payload back, it shuts down its sending side and expects the
// server to close the connection.
void echo_clients(std::uint16_t port) {
  constexpr std::array<std::size_t, 20> sizes = {
      1,    2,     3,     17,    100,   512,    1000,   1460,   4095,   4096,
      4097, 16384, 65535, 65536, 65537, 100000, 131072, 200003, 262143, 262144};
  struct Client {
    Fd fd;
    std::string payload;
    std::size_t sent = 0;
    std::string received;
    bool shut = false;
    bool ended = false;
  };
  std::vector<Client> clients(sizes.size());
  for (std::size_t c = 0; c < sizes.size(); ++c) {
    Client& client = clients[c];
    client.payload.resize(sizes[c]);
    for (std::size_t i = 0; i < sizes[c]; ++i) {
      client.payload[i] = static_cast<char>((i * 31 + (i >> 9) * 7 + c * 101 + 1) & 0xff);
    }
    client.fd = connect_to(port);
    ASSERT_GE(client.fd.get(), 0) << "connection " << c << ": " << std::strerror(errno);
    ASSERT_EQ(::fcntl(client.fd.get(), F_SETFL, O_NONBLOCK), 0) << std::strerror(errno);
  }
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  std::vector<char> chunk(65536);
  for (;;) {
    std::vector<pollfd> polled;
    std::vector<Client*> owners;
    for (Client& client : clients) {
      if (client.ended) continue;
      const auto out = static_cast<short>(client.sent < client.payload.size() ? POLLOUT : 0);
      polled.push_back({client.fd.get(), static_cast<short>(POLLIN | out), 0});
      owners.push_back(&client);
    }
    if (polled.empty()) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << owners.size() << " echo connection(s) unfinished after 30 s; the first has sent "
        << owners[0]->sent << " and received " << owners[0]->received.size() << " of "
        << owners[0]->payload.size() << " bytes";
    ASSERT_GE(::poll(polled.data(), polled.size(), 100), 0) << std::strerror(errno);
    for (std::size_t p = 0; p < polled.size(); ++p) {
      Client& client = *owners[p];
      const auto c = static_cast<std::size_t>(&client - clients.data());
      if ((polled[p].revents & POLLOUT) != 0) {
        const std::size_t size = std::min<std::size_t>(65536, client.payload.size() - client.sent);
        const ssize_t put =
            ::send(client.fd.get(), client.payload.data() + client.sent, size, MSG_NOSIGNAL);
        if (put > 0) client.sent += static_cast<std::size_t>(put);
        ASSERT_TRUE(put > 0 || errno == EAGAIN) << "send on " << c << ": " << std::strerror(errno);
      }
      if ((polled[p].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      for (;;) {
        const ssize_t got = ::recv(client.fd.get(), chunk.data(), chunk.size(), 0);
        if (got < 0 && errno == EAGAIN) break;
        ASSERT_GE(got, 0) << "recv on connection " << c << ": " << std::strerror(errno);
        if (got == 0) {
          client.ended = true;
          break;
        }
        client.received.append(chunk.data(), static_cast<std::size_t>(got));
      }
      ASSERT_LE(client.received.size(), client.payload.size()) << "connection " << c;
      if (client.received.size() == client.payload.size() && !client.shut) {
        ASSERT_EQ(::shutdown(client.fd.get(), SHUT_WR), 0) << std::strerror(errno);
        client.shut = true;
      }
      if (client.ended) {
        ASSERT_TRUE(client.shut) << "the server closed connection " << c << " after receiving "
                                 << client.sent << " and echoing " << client.received.size()
                                 << " of " << client.payload.size() << " bytes";
        const auto differ =
            std::mismatch(client.payload.begin(), client.payload.end(), client.received.begin());
        ASSERT_TRUE(differ.first == client.payload.end())
            << "connection " << c << " (" << client.payload.size()
            << " bytes): the echo differs from byte " << (differ.first - client.payload.begin());
      }
    }
  }
}

TEST(Seccomp, EchoServesWhenIoUringIsDeniedWithEperm) {
  serve_under_filter({CORING_ECHO_PATH, "--port", "0"}, EPERM, echo_clients);
}

TEST(Seccomp, EchoServesWhenIoUringIsDeniedWithEnosys) {
  serve_under_filter({CORING_ECHO_PATH, "--port", "0"}, ENOSYS, echo_clients);
}

// --- HTTP ---------------------------------------------------------------------------

constexpr std::string_view get_root = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
constexpr std::string_view get_root_close =
    "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

// Reads one response from `fd` (what is already in `buffer` first, the rest left there)
// and checks it: status 200 and a body of exactly its Content-Length, "Hello, World!".
void expect_hello(int fd, std::string& buffer, const std::string& where) {
  char chunk[4096];
  const auto read_more = [&] {
    ssize_t got = 0;
    do {
      got = ::recv(fd, chunk, sizeof(chunk), 0);
    } while (got < 0 && errno == EINTR);
    if (got > 0) buffer.append(chunk, static_cast<std::size_t>(got));
    return got > 0;
  };
  std::size_t head_end = 0;
  while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
    ASSERT_TRUE(read_more()) << where
                             << ": the connection ended or timed out in a head; got: " << buffer;
  }
  const std::string head = buffer.substr(0, head_end + 2);
  ASSERT_EQ(head.rfind("HTTP/1.1 200 ", 0), 0u) << where << ": " << head;
  std::optional<std::size_t> length;
  for (std::size_t at = head.find("\r\n") + 2; at < head.size();) {
    const std::size_t end = head.find("\r\n", at);
    std::string line = head.substr(at, end - at);
    at = end + 2;
    std::transform(line.begin(), line.end(), line.begin(),
                   [](char ch) { return static_cast<char>(std::tolower(ch)); });
    if (line.rfind("content-length:", 0) == 0) length = std::stoul(line.substr(15));
  }
  ASSERT_TRUE(length) << where << ": no Content-Length in " << head;
  const std::size_t total = head_end + 4 + *length;
  while (buffer.size() < total) {
    ASSERT_TRUE(read_more()) << where << ": the body ended after " << (buffer.size() - head_end - 4)
                             << " of " << *length << " bytes";
  }
  EXPECT_EQ(buffer.substr(head_end + 4, *length), "Hello, World!") << where;
  buffer.erase(0, total);
}

// Four keep-alive connections taking turns, five requests each; then 16 requests
// pipelined in one send (the last with Connection: close, after which the server closes).
void http_clients(std::uint16_t port) {
  std::vector<Fd> connections;
  std::vector<std::string> buffers(4);
  for (int c = 0; c < 4; ++c) {
    connections.push_back(connect_to(port));
    ASSERT_GE(connections.back().get(), 0) << std::strerror(errno);
  }
  for (int round = 0; round < 5; ++round) {
    for (std::size_t c = 0; c < connections.size(); ++c) {
      const std::string where =
          "keep-alive connection " + std::to_string(c) + ", request " + std::to_string(round);
      ASSERT_EQ(::send(connections[c].get(), get_root.data(), get_root.size(), MSG_NOSIGNAL),
                static_cast<ssize_t>(get_root.size()))
          << where << ": " << std::strerror(errno);
      expect_hello(connections[c].get(), buffers[c], where);
      if (testing::Test::HasFatalFailure()) return;
      EXPECT_TRUE(buffers[c].empty()) << where << ": more than one response: " << buffers[c];
    }
  }
  Fd pipelined = connect_to(port);
  ASSERT_GE(pipelined.get(), 0) << std::strerror(errno);
  std::string requests;
  for (int i = 0; i < 15; ++i) requests += get_root;
  requests += get_root_close;
  ASSERT_EQ(::send(pipelined.get(), requests.data(), requests.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(requests.size()))
      << std::strerror(errno);
  std::string buffer;
  for (int i = 0; i < 16; ++i) {
    expect_hello(pipelined.get(), buffer, "pipelined request " + std::to_string(i));
    if (testing::Test::HasFatalFailure()) return;
  }
  char byte = 0;
  EXPECT_TRUE(buffer.empty()) << "after 16 pipelined responses: " << buffer;
  EXPECT_EQ(::recv(pipelined.get(), &byte, 1, 0), 0)
      << "the server did not close after Connection: close";
}

TEST(Seccomp, HttpServesWhenIoUringIsDeniedWithEperm) {
  serve_under_filter({CORING_HTTP_PATH, "--port", "0"}, EPERM, http_clients);
}

TEST(Seccomp, HttpServesWhenIoUringIsDeniedWithEnosys) {
  serve_under_filter({CORING_HTTP_PATH, "--port", "0"}, ENOSYS, http_clients);
}

#else

TEST(Seccomp, ServingNeedsTheExamples) {
  GTEST_SKIP() << "built without the examples (CORING_BUILD_EXAMPLES=OFF)";
}

#endif

}  // namespace
