// Socket ownership and options: plain system calls, none of which blocks on a socket
// coring created, so they are safe on the loop's thread. A close blocks only with
// SO_LINGER on and a timeout above 0; abort()'s {1, 0} resets at once.
//
// The ring's forms of the options are IORING_OP_URING_CMD socket commands. A kernel
// before 6.7 answers them with EOPNOTSUPP, which a getsockopt at a level other than
// SOL_SOCKET also gives on every kernel: socket_commands_supported(backend) asks a ring and a
// socket of its own once per backend, so that only the first is named
// Errc::socket_commands_unsupported.
#include "coring/net/socket.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <span>
#include <string>

#include "coring/net/error.hpp"
#include "coring/ring/detail/log.hpp"
#include "coring/runtime/event_loop.hpp"

namespace coring::net {
namespace {

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

Result<void> check(int rc) noexcept {
  if (rc != 0) return fail(last_error());
  return {};
}

// getsockname(2) or getpeername(2) as an Address.
Result<Address> name_of(int fd, int (*get)(int, sockaddr*, socklen_t*)) noexcept {
  sockaddr_storage storage{};
  socklen_t length = sizeof(storage);
  if (get(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return fail(last_error());
  return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), length);
}

// One SOL_SOCKET getsockopt through a ring of `backend`'s: whether it executes.
bool probe_socket_commands(ring::Backend backend) noexcept {
  ring::Params params;
  auto created = ring::Ring::create(2, params, backend);
  if (!created) return false;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int type = 0;
  ring::Sqe* sqe = created->get_sqe();
  ring::prep_cmd_sock(*sqe, ring::SocketOp::getsockopt, fd, SOL_SOCKET, SO_TYPE, &type,
                      sizeof(type));
  ring::Cqe cqe{};
  const bool submitted = static_cast<bool>(created->submit_and_wait(1));
  auto copied = submitted ? created->copy_cqes(std::span(&cqe, 1), 1) : Result<std::uint32_t>(0U);
  const bool reaped = copied && *copied == 1;
  ::close(fd);
  return reaped && cqe.res >= 0 && type == SOCK_STREAM;
}

}  // namespace

bool socket_commands_supported(ring::Backend backend) noexcept {
  // Thread-safe static initialisation: the first caller per backend probes.
  if (backend == ring::Backend::epoll) {
    static const bool emulated = probe_socket_commands(ring::Backend::epoll);
    return emulated;
  }
  static const bool kernel = probe_socket_commands(ring::Backend::io_uring);
  return kernel;
}

namespace detail {

std::error_code socket_command_error(const IoResult& result) noexcept {
  // Completions are handled on the loop's thread, in its turn: current() is the loop.
  const EventLoop* loop = EventLoop::current();
  const ring::Backend backend = loop != nullptr ? loop->backend() : ring::Backend::io_uring;
  if (result.res == -EOPNOTSUPP && !socket_commands_supported(backend)) {
    return Errc::socket_commands_unsupported;
  }
  return result.error();
}

void AbortBody::prep(ring::Sqe& sqe) noexcept {
  if (!closing) {
    ring::prep_cmd_sock(sqe, ring::SocketOp::setsockopt, fd, SOL_SOCKET, SO_LINGER, &reset,
                        sizeof(reset));
    ring::use_fixed_file(sqe, direct);
  } else {
    ClosePrep{fd, direct}(sqe);
  }
}

bool AbortBody::again(const IoResult& result) noexcept {
  if (closing) return false;
  linger_res = std::min(result.res, 0);
  closing = true;
  return true;
}

IoResult AbortBody::result(const IoResult& result) const noexcept {
  if (closing && linger_res < 0 && result.res >= 0) {
    return IoResult{linger_res, 0, result.outcome};
  }
  return result;
}

}  // namespace detail

namespace {
// SO_LINGER {1, 0} on an fd.
int set_reset_linger(int fd) noexcept {
  const ::linger reset{1, 0};
  return ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
}
}  // namespace

SocketAbort::~SocketAbort() {
  if (!socket_.is_open()) return;
  if (!socket_.is_direct()) {
    if (set_reset_linger(socket_.fd()) != 0) {
      coring::detail::log_error("net", "SocketAbort: setsockopt(SO_LINGER)", last_error());
    }
    socket_.reset();
    return;
  }
  // A direct descriptor has no fd for setsockopt(2): the linger and the close go to the
  // loop as requests nobody waits for, one after the other in the SQ. The kernel issues
  // SQEs in SQ order and a socket command completes when issued (it never waits), so
  // the close finds the linger set; no link, so that an SQ that fills between the two
  // cannot chain the linger to someone else's request. The linger value is static: the
  // kernel reads it at issue, after this object is gone.
  static constexpr ::linger reset{1, 0};
  EventLoop& loop = *socket_.direct_loop_;
  const int slot = socket_.fd();
  const bool lingered = loop.submit_detached([slot](ring::Sqe& sqe) noexcept {
    ring::prep_cmd_sock(sqe, ring::SocketOp::setsockopt, slot, SOL_SOCKET, SO_LINGER,
                        const_cast<::linger*>(&reset), sizeof(reset));
    ring::use_fixed_file(sqe);
  });
  if (!lingered) {
    coring::detail::log("net", coring::detail::LogLevel::error,
                        "SocketAbort: no SQE for the linger of a dropped abort: a graceful close");
  }
  if (loop.submit_detached([slot](ring::Sqe& sqe) noexcept {
        ring::prep_close_direct(sqe, static_cast<std::uint32_t>(slot));
      })) {
    (void)socket_.release();
    return;
  }
  socket_.reset();  // clears the slot now
}

bool SocketAbort::await_suspend(std::coroutine_handle<> waiter) noexcept {
  // A socket already closed (or moved from) has no linger to set: its close says EBADF.
  if (socket_.fd() >= 0 && !socket_.is_direct() && set_reset_linger(socket_.fd()) != 0) {
    coring::detail::log_error("net", "SocketAbort: setsockopt(SO_LINGER)", last_error());
  }
  // The request owns the socket from here on. Without a stop token it always starts.
  (void)socket_.release();
  return op_.await_suspend(waiter);
}

void Socket::reset() noexcept {
  if (fd_ < 0) return;
  const int fd = std::exchange(fd_, -1);
  EventLoop* loop = std::exchange(direct_loop_, nullptr);
  if (loop == nullptr) {
    ::close(fd);
    return;
  }
  const int none = -1;
  auto cleared = coring::detail::LoopOps(*loop).ring().register_files_update(
      static_cast<std::uint32_t>(fd), std::span(&none, 1));
  if (!cleared) {
    coring::detail::log("net", coring::detail::LogLevel::error,
                        "Socket: clearing direct descriptor slot " + std::to_string(fd) +
                            " failed: " + cleared.error().message());
  }
}

Result<Address> Socket::local_address() const noexcept { return name_of(fd_, ::getsockname); }
Result<Address> Socket::peer_address() const noexcept { return name_of(fd_, ::getpeername); }

Result<void> Socket::set_option(int level, int name, int value) noexcept {
  if (is_direct()) return fail(std::make_error_code(std::errc::bad_file_descriptor));
  return check(::setsockopt(fd_, level, name, &value, sizeof(value)));
}

Result<int> Socket::option(int level, int name) const noexcept {
  if (is_direct()) return fail(std::make_error_code(std::errc::bad_file_descriptor));
  int value = 0;
  socklen_t length = sizeof(value);
  if (::getsockopt(fd_, level, name, &value, &length) != 0) return fail(last_error());
  return value;
}

Result<void> Socket::set_linger(Linger linger) noexcept {
  if (is_direct()) return fail(std::make_error_code(std::errc::bad_file_descriptor));
  ::linger value{};
  if (!detail::to_linger(linger, value))
    return fail(std::make_error_code(std::errc::invalid_argument));
  return check(::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &value, sizeof(value)));
}

Result<Linger> Socket::linger() const noexcept {
  if (is_direct()) return fail(std::make_error_code(std::errc::bad_file_descriptor));
  ::linger value{};
  socklen_t length = sizeof(value);
  if (::getsockopt(fd_, SOL_SOCKET, SO_LINGER, &value, &length) != 0) return fail(last_error());
  return Linger{value.l_onoff != 0, std::chrono::seconds(value.l_linger)};
}

Result<void> Socket::set_reuse_address(bool on) noexcept {
  return set_option(SOL_SOCKET, SO_REUSEADDR, on ? 1 : 0);
}
Result<void> Socket::set_send_buffer_size(int bytes) noexcept {
  return set_option(SOL_SOCKET, SO_SNDBUF, bytes);
}
Result<void> Socket::set_recv_buffer_size(int bytes) noexcept {
  return set_option(SOL_SOCKET, SO_RCVBUF, bytes);
}
Result<int> Socket::send_buffer_size() const noexcept { return option(SOL_SOCKET, SO_SNDBUF); }
Result<int> Socket::recv_buffer_size() const noexcept { return option(SOL_SOCKET, SO_RCVBUF); }

Result<void> Socket::set_keepalive(bool on) noexcept {
  return set_option(SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0);
}

Result<void> Socket::set_keepalive(const KeepAlive& options) noexcept {
  if (auto on = set_keepalive(true); !on) return on;
  if (options.idle.count() > 0) {
    auto set = set_option(IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(options.idle.count()));
    if (!set) return set;
  }
  if (options.interval.count() > 0) {
    auto set = set_option(IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(options.interval.count()));
    if (!set) return set;
  }
  if (options.count > 0) return set_option(IPPROTO_TCP, TCP_KEEPCNT, options.count);
  return {};
}

Result<bool> Socket::keepalive() const noexcept {
  auto value = option(SOL_SOCKET, SO_KEEPALIVE);
  if (!value) return fail(value.error());
  return *value != 0;
}

Result<void> Socket::set_nodelay(bool on) noexcept {
  return set_option(IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

Result<bool> Socket::nodelay() const noexcept {
  auto value = option(IPPROTO_TCP, TCP_NODELAY);
  if (!value) return fail(value.error());
  return *value != 0;
}

Result<Socket> open_socket(int domain, int type, int protocol) noexcept {
  const int fd = ::socket(domain, type | SOCK_CLOEXEC, protocol);
  if (fd < 0) return fail(last_error());
  return Socket(fd);
}

}  // namespace coring::net
