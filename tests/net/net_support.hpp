// Helpers for the net tests: run a task on a fresh loop, bytes of strings, patterns,
// the connect and the receive of the tests' blocking-socket clients.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

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

#include "coring/net/address.hpp"
#include "coring/ring/probe.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"

namespace coring::net::test {

inline std::span<const std::byte> as_bytes(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}
inline std::string to_string(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// `size` bytes that differ from one offset to the next (a counter that wraps at a
// prime), so that a lost, repeated or reordered chunk shows up in a comparison.
inline std::vector<std::byte> pattern(std::size_t size, std::uint32_t seed = 0) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = std::byte((i + seed) % 251);
  return bytes;
}

// A task that sleeps, for loop.run() between steps of a test.
inline Task<void> sleep_task(std::chrono::nanoseconds duration) { co_await sleep_for(duration); }

// Whether the running kernel has opcode `op` (probed through `loop`'s ring).
inline bool kernel_has(EventLoop& loop, ring::Op op) {
  auto probe = loop.ring().get_probe();
  return probe && probe->is_supported(op);
}

// Whether `holds()` became true within `limit`, asked every millisecond: a test waits for
// a server thread to reach a point (a handler started, say) instead of sleeping a while
// and assuming it did, which a loaded machine can make false.
template <typename Predicate>
bool eventually(Predicate holds, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!holds()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A port on 127.0.0.1 that nothing receives on for as long as this lives. For TCP, a
// socket bound to it without SO_REUSEADDR that never listens: a connect to it is refused.
// For UDP (SOCK_DGRAM), a socket bound to it and connected to port 1, so that it takes
// no datagram from anyone else: one sent to the port draws ICMP port-unreachable, and
// the sender's next call fails with ECONNREFUSED. Either way no other socket, of this
// process or another, can bind the port meanwhile. A port bound and released is no such
// thing: a test process running beside this one may take it in between.
class UnusedPort {
 public:
  explicit UnusedPort(int type = SOCK_STREAM) : fd_(::socket(AF_INET, type | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ADD_FAILURE() << "no port to reserve: " << std::strerror(errno);
      return;
    }
    port_ = ntohs(address.sin_port);
    if (type == SOCK_DGRAM) {
      address.sin_port = htons(1);
      if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        ADD_FAILURE() << "connect of the reserving socket: " << std::strerror(errno);
      }
    }
  }
  ~UnusedPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  UnusedPort(const UnusedPort&) = delete;
  UnusedPort& operator=(const UnusedPort&) = delete;
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] Address address() const {
    return Address::parse("127.0.0.1:" + std::to_string(port_)).value();
  }

 private:
  int fd_;
  std::uint16_t port_ = 0;
};

// Connects the blocking TCP socket `fd` to `port` on 127.0.0.1, as a test's client:
// its receives time out after `receive_timeout` (SO_RCVTIMEO), so that a server that
// stops answering fails the test instead of hanging it, and TCP_NODELAY sends each
// small request at once. Returns connect's result: 0, or -1 with errno set.
inline int connect_client(int fd, std::uint16_t port, std::chrono::seconds receive_timeout) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  const timeval timeout{receive_timeout.count(), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return connected;
}

// A new blocking client socket, connected as connect_client() connects one; -1 if the
// socket or the connect fails.
inline int connected_client(std::uint16_t port, std::chrono::seconds receive_timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect_client(fd, port, receive_timeout) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Receives once from the blocking socket `fd` and appends what came to `buffer`.
// Returns recv's result: the bytes received, 0 at the end of the stream, or -1 with
// errno set (EAGAIN when SO_RCVTIMEO ran out). With SO_RCVTIMEO, a blocking recv
// interrupted by a signal (or by task work the kernel queued for this thread) fails
// with EINTR instead of restarting, so this retries it.
inline ssize_t receive_into(int fd, std::string& buffer) {
  char chunk[16384];
  ssize_t got = 0;
  do {
    got = ::recv(fd, chunk, sizeof(chunk), 0);
  } while (got < 0 && errno == EINTR);
  if (got > 0) buffer.append(chunk, static_cast<std::size_t>(got));
  return got;
}

// The first line a server process writes on `fd` (its stdout), or nullopt if the
// stream ends or `limit` passes first.
inline std::optional<std::string> first_line(int fd, std::chrono::milliseconds limit) {
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (text.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd readable{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&readable, 1, static_cast<int>(left.count())) <= 0) {
      return std::nullopt;
    }
    char chunk[256];
    const ssize_t got = ::read(fd, chunk, sizeof(chunk));
    if (got <= 0) return std::nullopt;
    text.append(chunk, static_cast<std::size_t>(got));
  }
  return text.substr(0, text.find('\n'));
}

// The port a listening line names ("... port N ..."), or nullopt.
inline std::optional<std::uint16_t> port_in(const std::string& line) {
  const auto at = line.find(" port ");
  if (at == std::string::npos) return std::nullopt;
  unsigned long port = 0;
  for (std::size_t i = at + 6; i < line.size() && line[i] >= '0' && line[i] <= '9'; ++i) {
    port = port * 10 + static_cast<unsigned long>(line[i] - '0');
  }
  if (port == 0 || port > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(port);
}

}  // namespace coring::net::test
