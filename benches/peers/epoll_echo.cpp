// The epoll peer of `coring-bench echo`: the classic readiness-based echo server.
//
// Every socket is non-blocking and sits in one level-triggered epoll set. A readable
// connection gets one read() into a 64 KiB buffer and one write() of what it read: with
// one message in flight per connection that is the whole exchange, two system calls per
// message plus a share of epoll_wait(). Level triggering is what makes the single read
// correct: bytes left in the socket are reported again by the next epoll_wait(), so the
// server never needs the read that returns EAGAIN, which edge triggering would cost on
// every message. A write that does not take everything keeps the rest and waits for
// EPOLLOUT, pausing reads on that connection meanwhile (backpressure, no unbounded buffer).
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "echo_peers.hpp"

namespace coring::bench {
namespace {

constexpr std::size_t buffer_size = 64 * 1024;
constexpr int max_events = 256;

struct Conn {
  int fd;
  std::string pending;  // bytes a write() did not take
};

class EpollEchoServer {
 public:
  explicit EpollEchoServer(int listen_fd) : listen_fd_(listen_fd) {}
  ~EpollEchoServer() {
    for (const auto& conn : conns_) {
      if (conn) ::close(conn->fd);
    }
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }
  EpollEchoServer(const EpollEchoServer&) = delete;
  EpollEchoServer& operator=(const EpollEchoServer&) = delete;

  int run() {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0 || !set_nonblocking(listen_fd_) ||
        !watch(listen_fd_, EPOLLIN, EPOLL_CTL_ADD)) {
      std::perror("epoll echo: setup");
      return 1;
    }
    std::array<epoll_event, max_events> events;
    for (;;) {
      const int count = ::epoll_wait(epoll_fd_, events.data(), max_events, -1);
      if (count < 0) {
        if (errno == EINTR) continue;
        std::perror("epoll echo: epoll_wait");
        return 1;
      }
      for (int i = 0; i < count; ++i) {
        const epoll_event& event = events[static_cast<std::size_t>(i)];
        if (event.data.ptr == nullptr) {
          accept_all();
        } else {
          on_ready(*static_cast<Conn*>(event.data.ptr), event.events);
        }
      }
    }
  }

 private:
  static bool set_nonblocking(int fd) {
    const int flags = ::fcntl(fd, F_GETFL);
    return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
  }

  // The event's data is the connection (nullptr for the listener).
  bool watch(int fd, std::uint32_t events, int op, Conn* conn = nullptr) {
    epoll_event event{};
    event.events = events;
    event.data.ptr = conn;
    return ::epoll_ctl(epoll_fd_, op, fd, &event) == 0;
  }

  void accept_all() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR) std::perror("epoll echo: accept4");
        return;
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      if (conns_.size() <= static_cast<std::size_t>(fd))
        conns_.resize(static_cast<std::size_t>(fd) + 1);
      conns_[fd] = std::make_unique<Conn>(Conn{fd, {}});
      if (!watch(fd, EPOLLIN, EPOLL_CTL_ADD, conns_[fd].get())) close(fd);
    }
  }

  void on_ready(Conn& conn, std::uint32_t events) {
    const int fd = conn.fd;
    if ((events & EPOLLOUT) != 0) {
      if (!flush(conn)) return close(fd);
      if (!conn.pending.empty()) return;
      watch(fd, EPOLLIN, EPOLL_CTL_MOD, &conn);
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0) return;
    const ssize_t got = ::read(fd, buffer_.get(), buffer_size);
    if (got <= 0) {
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
      return close(fd);
    }
    const ssize_t put = ::write(fd, buffer_.get(), static_cast<std::size_t>(got));
    if (put == got) return;
    if (put < 0 && errno != EAGAIN) return close(fd);
    const std::size_t written = put < 0 ? 0 : static_cast<std::size_t>(put);
    conn.pending.assign(buffer_.get() + written, static_cast<std::size_t>(got) - written);
    watch(fd, EPOLLOUT, EPOLL_CTL_MOD, &conn);
  }

  // Writes what is pending; false if the connection failed.
  static bool flush(Conn& conn) {
    const ssize_t put = ::write(conn.fd, conn.pending.data(), conn.pending.size());
    if (put < 0) return errno == EAGAIN;
    conn.pending.erase(0, static_cast<std::size_t>(put));
    return true;
  }

  void close(int fd) {
    ::close(fd);  // also removes it from the epoll set
    conns_[static_cast<std::size_t>(fd)].reset();
  }

  int listen_fd_;
  int epoll_fd_ = -1;
  std::vector<std::unique_ptr<Conn>> conns_;  // indexed by fd
  std::unique_ptr<char[]> buffer_ = std::make_unique<char[]>(buffer_size);
};

}  // namespace

int serve_epoll_echo(int listen_fd) { return EpollEchoServer(listen_fd).run(); }

}  // namespace coring::bench
