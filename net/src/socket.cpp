// Socket ownership and options: plain system calls, none of which blocks on a socket
// coring created (no SO_LINGER), so they are safe on the loop's thread.
#include "coring/net/socket.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <string>

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

}  // namespace

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
