// Socket: the fd every net type owns, its options, and closing it.
//
// A Socket owns one fd — or, for a socket accepted as a direct descriptor, one slot of
// its loop's registered file table — and closes it exactly once:
//
//   co_await sock.close();   // IORING_OP_CLOSE through the loop: the way to close
//   // or let it go out of scope: the destructor closes it without blocking the loop
//
// close() hands the fd to the awaitable it returns, which closes it exactly once: through
// the ring when awaited, with close(2) when dropped. The destructor calls close(2), or
// clears a direct descriptor's slot; docs/net.md, "Closing", says why neither blocks.
// Options are plain setsockopt(2)/getsockopt(2): they never block, and io_uring's own
// socket command would cost a system call too. On a direct descriptor they return
// std::errc::bad_file_descriptor (it has no fd to call them on).
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <utility>

#include "coring/net/address.hpp"
#include "coring/ring/prep.hpp"
#include "coring/ring/result.hpp"
#include "coring/runtime/io.hpp"

namespace coring {
class EventLoop;
}

namespace coring::net {

// TCP keepalive probes; unset fields keep the system's defaults.
struct KeepAlive {
  std::chrono::seconds idle{0};      // TCP_KEEPIDLE: silence before the first probe
  std::chrono::seconds interval{0};  // TCP_KEEPINTVL: between probes
  int count = 0;                     // TCP_KEEPCNT: unanswered probes before giving up
};

namespace detail {
struct ClosePrep {
  int fd;
  bool direct;
  void operator()(ring::Sqe& sqe) const noexcept {
    if (direct) {
      ring::prep_close_direct(sqe, static_cast<std::uint32_t>(fd));
    } else {
      ring::prep_close(sqe, fd);
    }
  }
};
}  // namespace detail

class SocketClose;

class Socket {
 public:
  Socket() noexcept = default;
  // Takes ownership of `fd` (a slot of `loop`'s registered file table if `loop` is set).
  explicit Socket(int fd, EventLoop* direct_loop = nullptr) noexcept
      : fd_(fd), direct_loop_(direct_loop) {}
  Socket(Socket&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)),
        direct_loop_(std::exchange(other.direct_loop_, nullptr)) {}
  Socket& operator=(Socket&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
      direct_loop_ = std::exchange(other.direct_loop_, nullptr);
    }
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { reset(); }

  // The fd, or the registered-file slot of a direct descriptor; -1 once closed.
  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }
  // Whether fd() is a slot of the loop's registered file table (accepted as direct).
  [[nodiscard]] bool is_direct() const noexcept { return direct_loop_ != nullptr; }
  // Gives up ownership: the caller closes the fd.
  int release() noexcept {
    direct_loop_ = nullptr;
    return std::exchange(fd_, -1);
  }

  // co_await close(): IORING_OP_CLOSE (the slot's own close for a direct descriptor).
  // The socket is closed from here on, whatever the result and whether or not the
  // awaitable is awaited (see the header comment); closing a closed socket gives -EBADF.
  SocketClose close() noexcept;
  // Closes now, with close(2) (see the header comment); nothing if closed.
  void reset() noexcept;

  // getsockname(2) and getpeername(2).
  [[nodiscard]] Result<Address> local_address() const noexcept;
  [[nodiscard]] Result<Address> peer_address() const noexcept;

  // SO_REUSEADDR, SO_SNDBUF, SO_RCVBUF (the kernel doubles what it is given and reports
  // the doubled size), SO_KEEPALIVE with optional TCP tuning, TCP_NODELAY.
  Result<void> set_reuse_address(bool on) noexcept;
  Result<void> set_send_buffer_size(int bytes) noexcept;
  Result<void> set_recv_buffer_size(int bytes) noexcept;
  [[nodiscard]] Result<int> send_buffer_size() const noexcept;
  [[nodiscard]] Result<int> recv_buffer_size() const noexcept;
  Result<void> set_keepalive(bool on) noexcept;
  Result<void> set_keepalive(const KeepAlive& options) noexcept;
  [[nodiscard]] Result<bool> keepalive() const noexcept;
  Result<void> set_nodelay(bool on) noexcept;
  [[nodiscard]] Result<bool> nodelay() const noexcept;
  // Any integer option.
  Result<void> set_option(int level, int name, int value) noexcept;
  [[nodiscard]] Result<int> option(int level, int name) const noexcept;
  // SO_ERROR: the pending error of the socket, cleared by reading it.
  [[nodiscard]] Result<int> pending_error() const noexcept { return option(SOL_SOCKET, SO_ERROR); }

 protected:
  int fd_ = -1;
  EventLoop* direct_loop_ = nullptr;
};

// The awaitable of Socket::close(). It owns the fd until its close is submitted, so an
// awaitable dropped unawaited closes the fd with close(2) (or clears the direct
// descriptor's slot) in its destructor, like ~Socket.
class [[nodiscard]] SocketClose {
 public:
  explicit SocketClose(Socket socket) noexcept
      : op_(detail::ClosePrep{socket.fd(), socket.is_direct()}), socket_(std::move(socket)) {}

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> waiter) noexcept {
    // The request owns the fd from here on. Without a stop token it always starts.
    (void)socket_.release();
    return op_.await_suspend(waiter);
  }
  IoResult await_resume() const noexcept { return op_.await_resume(); }

 private:
  IoOp<detail::ClosePrep> op_;
  Socket socket_;  // the fd, until the close is submitted
};

inline SocketClose Socket::close() noexcept { return SocketClose(std::move(*this)); }

// socket(2) with SOCK_CLOEXEC; the error names errno.
Result<Socket> open_socket(int domain, int type, int protocol = 0) noexcept;

}  // namespace coring::net
