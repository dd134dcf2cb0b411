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
// Options come in two forms. set_option()/option() and their typed helpers are plain
// setsockopt(2)/getsockopt(2): they never block and cost one system call, but a direct
// descriptor has no fd to call them on (std::errc::bad_file_descriptor). The awaitable
// forms — set_option_async(), option_async(), set_nodelay_async(), set_linger_async() —
// go through the ring (IORING_OP_URING_CMD, SOCKET_URING_OP_SETSOCKOPT/GETSOCKOPT, Linux
// 6.7) and work on fds and direct descriptors alike. The kernel's getsockopt command
// knows SOL_SOCKET options only: option_async() at another level is EOPNOTSUPP. A
// kernel without socket commands gives Errc::socket_commands_unsupported.
//
// abort() resets the connection: SO_LINGER {on, 0 s} and then the close, so that the
// peer's next receive fails with ECONNRESET instead of reading an end of stream.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "coring/net/address.hpp"
#include "coring/ring/prep.hpp"
#include "coring/ring/result.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/request.hpp"

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

// SO_LINGER: with `on`, a close waits up to `timeout` for unsent data to leave; a
// timeout of 0 resets the connection instead (what abort() does). A timeout below 0 or
// beyond INT_MAX seconds is std::errc::invalid_argument (the kernel would read a
// negative one as "for ever").
struct Linger {
  bool on = false;
  std::chrono::seconds timeout{0};
};

// Whether rings of `backend` execute socket commands (SOCKET_URING_OP_GETSOCKOPT/
// SETSOCKOPT, Linux 6.7; the epoll emulation has them). Probed once per backend, on a
// ring and a socket of its own. Pass the loop's: socket_commands_supported(loop.backend()).
bool socket_commands_supported(ring::Backend backend) noexcept;

namespace detail {
// `linger` as SO_LINGER's value; false for a timeout out of its range (see Linger).
inline bool to_linger(const Linger& linger, ::linger& value) noexcept {
  const auto seconds = linger.timeout.count();
  if (seconds < 0 || seconds > std::numeric_limits<int>::max()) return false;
  value = ::linger{linger.on ? 1 : 0, static_cast<int>(seconds)};
  return true;
}
// An option's value as a get returns it.
inline int from_option(int value) noexcept { return value; }
inline Linger from_option(const ::linger& value) noexcept {
  return {value.l_onoff != 0, std::chrono::seconds(value.l_linger)};
}

// A socket command's error; EOPNOTSUPP from a kernel without socket commands becomes
// Errc::socket_commands_unsupported.
std::error_code socket_command_error(const IoResult& result) noexcept;

// A socket option through the ring: one IORING_OP_URING_CMD whose value lives in the
// body (prep runs on the record's final address, so the pointer stays valid until the
// CQE). Set: `value` is the option; get: the kernel writes it there.
template <typename T, bool Set>
struct SocketOptionBody {
  static_assert(std::is_trivially_copyable_v<T>);
  T value;
  int fd;
  int level;
  int name;
  bool direct;
  bool invalid = false;  // a value the call refused: a NOP, and invalid_argument

  void prep(ring::Sqe& sqe) noexcept {
    if (invalid) {
      ring::prep_nop(sqe);
      return;
    }
    ring::prep_cmd_sock(sqe, Set ? ring::SocketOp::setsockopt : ring::SocketOp::getsockopt, fd,
                        level, name, &value, static_cast<int>(sizeof(T)));
    ring::use_fixed_file(sqe, direct);
  }
  static bool again(const IoResult&) noexcept { return false; }
  auto result(const IoResult& result) const noexcept {
    if constexpr (Set) {
      if (invalid && result.res >= 0)
        return Result<void>(fail(std::make_error_code(std::errc::invalid_argument)));
      return result.res < 0 ? Result<void>(fail(socket_command_error(result))) : Result<void>();
    } else {
      using Value = decltype(from_option(value));
      return result.res < 0 ? Result<Value>(fail(socket_command_error(result)))
                            : Result<Value>(from_option(value));
    }
  }
};

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
// abort()'s two requests: SO_LINGER {1, 0} through the ring for a direct descriptor
// (an fd gets setsockopt(2) before the close is submitted), then the close. The close
// follows whatever the linger said: a socket given to abort() is closed either way.
struct AbortBody {
  ::linger reset;  // {1, 0}
  int fd;
  bool direct;
  bool closing;             // the close is the request in flight
  std::int32_t linger_res;  // the linger's result: -errno if it failed (a graceful close)

  void prep(ring::Sqe& sqe) noexcept;
  bool again(const IoResult& result) noexcept;
  IoResult result(const IoResult& result) const noexcept;
};
}  // namespace detail

class SocketClose;
class SocketAbort;

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
  // co_await abort(): resets the connection (SO_LINGER {1, 0}, then the close), so that
  // the peer sees ECONNRESET. Like close(), the socket is closed from here on, whether or
  // not the awaitable is awaited: dropped, it sets the linger and closes at once (for a
  // direct descriptor through two unawaited requests on the loop). The result is the
  // close's, or the linger's error if the kernel refused it (the close was then graceful).
  SocketAbort abort() noexcept;

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
  // Any integer option. std::errc::bad_file_descriptor on a direct descriptor: use the
  // ring's forms below.
  Result<void> set_option(int level, int name, int value) noexcept;
  [[nodiscard]] Result<int> option(int level, int name) const noexcept;

  // Options through the ring, for fds and direct descriptors alike (see the header
  // comment): co_await gives Result<void>, or Result<int> / Result<Linger> for the gets.
  // request(body) awaitables: .with_timeout(d) and .with_stop(token) apply.
  auto set_option_async(int level, int name, int value) const noexcept {
    return coring::request(
        detail::SocketOptionBody<int, true>{value, fd_, level, name, is_direct()});
  }
  // SOL_SOCKET options only (the kernel's getsockopt command knows no other level).
  auto option_async(int level, int name) const noexcept {
    return coring::request(detail::SocketOptionBody<int, false>{0, fd_, level, name, is_direct()});
  }
  auto set_nodelay_async(bool on) const noexcept {
    return set_option_async(IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
  }
  auto set_linger_async(Linger linger) const noexcept {
    ::linger value{};
    const bool valid = detail::to_linger(linger, value);
    return coring::request(detail::SocketOptionBody<::linger, true>{
        value, fd_, SOL_SOCKET, SO_LINGER, is_direct(), !valid});
  }
  auto linger_async() const noexcept {
    return coring::request(
        detail::SocketOptionBody<::linger, false>{{}, fd_, SOL_SOCKET, SO_LINGER, is_direct()});
  }
  // SO_LINGER, with setsockopt(2)/getsockopt(2) (fds only, as set_option()).
  Result<void> set_linger(Linger linger) noexcept;
  [[nodiscard]] Result<Linger> linger() const noexcept;
  // SO_ERROR: the pending error of the socket, cleared by reading it.
  [[nodiscard]] Result<int> pending_error() const noexcept { return option(SOL_SOCKET, SO_ERROR); }

 protected:
  friend class SocketAbort;  // a dropped abort of a direct descriptor needs its loop
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

// The awaitable of Socket::abort(). It owns the socket until its first request is
// submitted; dropped unawaited, its destructor resets and closes the socket itself.
class [[nodiscard]] SocketAbort {
 public:
  explicit SocketAbort(Socket socket) noexcept
      : op_(detail::AbortBody{{1, 0}, socket.fd(), socket.is_direct(), !socket.is_direct(), 0}),
        socket_(std::move(socket)) {}
  SocketAbort(SocketAbort&&) noexcept = default;
  ~SocketAbort();

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> waiter) noexcept;
  IoResult await_resume() noexcept { return op_.await_resume(); }

 private:
  RequestOp<detail::AbortBody> op_;
  Socket socket_;  // the socket, until the abort is submitted
};

inline SocketAbort Socket::abort() noexcept { return SocketAbort(std::move(*this)); }

// socket(2) with SOCK_CLOEXEC; the error names errno.
Result<Socket> open_socket(int domain, int type, int protocol = 0) noexcept;

}  // namespace coring::net
