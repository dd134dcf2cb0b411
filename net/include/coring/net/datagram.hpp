// DatagramSocket: UDP over IPv4/IPv6 and Unix datagram sockets. UdpSocket and
// UnixDatagram name the same type; the address decides the family.
//
//   auto sock = UdpSocket::bind(Address::ipv4_loopback());
//   co_await sock->send_to(bytes, peer);                 // IoResult: bytes sent or -errno
//   RecvFromResult got = co_await sock->recv_from(buffer);
//   // got.io.res bytes from got.from; got.truncated if the datagram did not fit
//
// Connected mode: connect(peer) (a plain connect(2), which for a datagram socket only
// records the peer and never blocks), then send() and recv(). All operations are the
// runtime's io(prep) awaitable or a record of the same kind, with .with_timeout(d) and
// .with_stop(token); the destination of send_to() is copied into the record.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include "coring/net/address.hpp"
#include "coring/net/socket.hpp"
#include "coring/net/stream.hpp"
#include "coring/ring/prep.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/request.hpp"

namespace coring::net {

// What recv_from() returns: the receive's result, who sent it, and whether the datagram
// was longer than the buffer (the rest is discarded, as recvfrom(2) does). ok(), error(),
// message() and value() (the count, throwing on an error) are io's.
struct RecvFromResult {
  IoResult io;
  Address from;
  bool truncated = false;

  [[nodiscard]] bool ok() const noexcept { return io.ok(); }
  explicit operator bool() const noexcept { return io.ok(); }
  [[nodiscard]] std::error_code error() const noexcept { return io.error(); }
  [[nodiscard]] std::string message() const { return io.message(); }
  [[nodiscard]] std::uint32_t value() const { return io.value(); }
};

namespace detail {

struct SendToBody {
  std::span<const std::byte> buffer;
  Address to;
  iovec iov;
  msghdr msg;
  int fd;
  int flags;
  bool direct;

  void prep(ring::Sqe& sqe) noexcept {
    iov = {const_cast<std::byte*>(buffer.data()), buffer.size()};
    msg = {};
    msg.msg_name = const_cast<sockaddr*>(to.data());
    msg.msg_namelen = to.size();
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ring::prep_sendmsg(sqe, fd, &msg, static_cast<std::uint32_t>(flags | MSG_NOSIGNAL));
    ring::use_fixed_file(sqe, direct);
  }
  static bool again(const IoResult&) noexcept { return false; }
  static IoResult result(const IoResult& result) noexcept { return result; }
};

struct RecvFromBody {
  std::span<std::byte> buffer;
  sockaddr_storage from;
  iovec iov;
  msghdr msg;
  int fd;
  int flags;
  bool direct;

  void prep(ring::Sqe& sqe) noexcept {
    iov = {buffer.data(), buffer.size()};
    msg = {};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof(from);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ring::prep_recvmsg(sqe, fd, &msg, static_cast<std::uint32_t>(flags));
    ring::use_fixed_file(sqe, direct);
  }
  static bool again(const IoResult&) noexcept { return false; }
  RecvFromResult result(const IoResult& result) const noexcept {
    RecvFromResult out{result, Address(), false};
    if (result.ok()) {
      auto sender =
          Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&from), msg.msg_namelen);
      if (sender) out.from = *sender;
      out.truncated = (msg.msg_flags & MSG_TRUNC) != 0;
    }
    return out;
  }
};

}  // namespace detail

class DatagramSocket : public Socket {
 public:
  DatagramSocket() noexcept = default;
  explicit DatagramSocket(Socket socket) noexcept : Socket(std::move(socket)) {}
  using Socket::Socket;

  // A socket of `address`'s family bound to it (port 0: the kernel picks one).
  static Result<DatagramSocket> bind(const Address& address) noexcept;
  // An unbound socket of `family` (the kernel binds it on the first send).
  static Result<DatagramSocket> open(Family family) noexcept;
  // A connected pair of Unix datagram sockets (socketpair(2)).
  static Result<std::pair<DatagramSocket, DatagramSocket>> pair() noexcept;

  // Records `peer` as the only source and default destination (connect(2)).
  Result<void> connect(const Address& peer) noexcept;

  // One datagram to `to`; res is its size or -errno.
  auto send_to(std::span<const std::byte> buffer, const Address& to,
               int msg_flags = 0) const noexcept {
    return coring::request(detail::SendToBody{buffer, to, {}, {}, fd_, msg_flags, is_direct()});
  }
  // One datagram and its sender.
  auto recv_from(std::span<std::byte> buffer, int msg_flags = 0) const noexcept {
    return coring::request(detail::RecvFromBody{buffer, {}, {}, {}, fd_, msg_flags, is_direct()});
  }
  // Connected mode: one datagram to / from the connected peer.
  auto send(std::span<const std::byte> buffer, int msg_flags = 0) const noexcept {
    return io(detail::SendPrep{buffer, fd_, msg_flags, is_direct()});
  }
  auto recv(std::span<std::byte> buffer, int msg_flags = 0) const noexcept {
    return io(detail::RecvPrep{buffer, fd_, msg_flags, is_direct()});
  }
};

using UdpSocket = DatagramSocket;
using UnixDatagram = DatagramSocket;

}  // namespace coring::net
