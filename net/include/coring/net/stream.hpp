// StreamSocket: a connected byte stream — TCP over IPv4 or IPv6, or a Unix stream
// socket — with co_await-able I/O. TcpStream and UnixStream name the same type.
//
//   auto conn = co_await TcpStream::connect(*Address::parse("127.0.0.1:8080"));
//   IoResult n = co_await conn->recv(buffer);          // n.res: bytes, 0 at EOF, -errno
//   IoResult m = co_await conn->send(reply).with_timeout(2s);
//   TransferResult all = co_await conn->send_all(reply);
//
// recv(), send(), send_zc() and shutdown() return the runtime's io(prep) awaitable
// itself: the record lives in the awaiting frame, nothing is allocated, and
// .with_timeout(d) / .with_stop(token) bound or cancel one call. Failures — ECONNRESET,
// EPIPE, ETIMEDOUT, ECANCELED — are values in IoResult::res; a read of 0 bytes is the
// peer's end of stream. Sends pass MSG_NOSIGNAL: a vanished peer is -EPIPE, not SIGPIPE.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <span>
#include <stop_token>
#include <string>
#include <system_error>
#include <type_traits>

#include "coring/net/address.hpp"
#include "coring/net/buffer_pool.hpp"
#include "coring/net/recv_stream.hpp"
#include "coring/net/socket.hpp"
#include "coring/ring/prep.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/request.hpp"
#include "coring/runtime/task.hpp"

namespace coring::net {

// What send_all() and recv_exact() return: how many bytes moved, and why they stopped
// short if they did. The members are every result's: ok() when every byte moved,
// error(), message(), and value(), the count, which throws std::system_error(error())
// when the transfer stopped short; `bytes` is the count either way.
class TransferResult {
 public:
  TransferResult() noexcept = default;
  TransferResult(std::size_t moved, std::error_code error, Outcome how) noexcept
      : bytes(moved), outcome(how), error_(error) {}

  std::size_t bytes = 0;
  Outcome outcome = Outcome::completed;

  [[nodiscard]] bool ok() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return ok(); }
  // Errc::end_of_stream, ETIMEDOUT, ECANCELED, ECONNRESET, EPIPE, ...; empty when ok().
  [[nodiscard]] std::error_code error() const noexcept { return error_; }
  [[nodiscard]] std::string message() const { return ok() ? std::string() : error_.message(); }
  [[nodiscard]] std::size_t value() const {
    if (error_) throw_error(error_);
    return bytes;
  }

 private:
  std::error_code error_;
};

struct ConnectOptions {
  std::chrono::nanoseconds timeout{0};  // 0: as long as the kernel tries (about 2 minutes)
};
// Trivially destructible, so that a braced temporary inside co_await is safe with g++ 12
// (see MultishotOptions).
static_assert(std::is_trivially_destructible_v<ConnectOptions>);

namespace detail {

// One request moves at most this much, so that its length fits the SQE's 32-bit field
// and the CQE's signed 32-bit result.
inline constexpr std::size_t max_request_bytes = std::size_t{1} << 30;

struct RecvPrep {
  std::span<std::byte> buffer;
  int fd;
  int flags;
  bool direct;
  void operator()(ring::Sqe& sqe) const noexcept {
    ring::prep_recv(sqe, fd, buffer, flags);
    ring::use_fixed_file(sqe, direct);
  }
};

struct SendPrep {
  std::span<const std::byte> buffer;
  int fd;
  int flags;
  bool direct;
  void operator()(ring::Sqe& sqe) const noexcept {
    ring::prep_send(sqe, fd, buffer, flags | MSG_NOSIGNAL);
    ring::use_fixed_file(sqe, direct);
  }
};

struct SendZcPrep {
  std::span<const std::byte> buffer;
  int fd;
  int flags;
  bool direct;
  void operator()(ring::Sqe& sqe) const noexcept {
    ring::prep_send_zc(sqe, fd, buffer, flags | MSG_NOSIGNAL, 0);
    ring::use_fixed_file(sqe, direct);
  }
};

struct ShutdownPrep {
  int fd;
  int how;
  bool direct;
  void operator()(ring::Sqe& sqe) const noexcept {
    ring::prep_shutdown(sqe, fd, how);
    ring::use_fixed_file(sqe, direct);
  }
};

struct ConnectPrep {
  const Address* address;
  int fd;
  void operator()(ring::Sqe& sqe) const noexcept {
    ring::prep_connect(sqe, fd, address->data(), address->size());
  }
};

// send_all / recv_exact: requests until every byte has moved, the peer ends the stream,
// or an error, a timeout or a stop ends it.
struct TransferBody {
  std::byte* data;
  std::size_t size;
  std::size_t done;
  int fd;
  bool direct;
  bool sending;

  void prep(ring::Sqe& sqe) const noexcept {
    const std::size_t length = std::min(size - done, max_request_bytes);
    if (sending) {
      ring::prep_send(sqe, fd, {data + done, length}, MSG_NOSIGNAL);
    } else {
      ring::prep_recv(sqe, fd, {data + done, length}, 0);
    }
    ring::use_fixed_file(sqe, direct);
  }
  bool again(const IoResult& result) noexcept {
    if (result.res > 0) done += result.value();
    return result.res > 0 && done < size;
  }
  TransferResult result(const IoResult& result) noexcept {
    if (result.outcome == Outcome::partial) done += result.value();  // again() saw none of it
    if (done == size) return {done, {}, result.outcome};
    std::error_code error = Errc::end_of_stream;  // recv: 0 bytes, the peer closed
    if (result.outcome == Outcome::partial) {
      error = std::make_error_code(std::errc::timed_out);
    } else if (result.res < 0) {
      error = result.error();
    }
    return {done, error, result.outcome};
  }
};

// sendmsg/recvmsg over caller-owned iovecs; the msghdr lives in the record.
struct VectorBody {
  const iovec* iov;
  std::size_t count;
  msghdr msg;
  int fd;
  bool direct;
  bool sending;

  void prep(ring::Sqe& sqe) noexcept {
    msg = {};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = count;
    if (sending) {
      ring::prep_sendmsg(sqe, fd, &msg, MSG_NOSIGNAL);
    } else {
      ring::prep_recvmsg(sqe, fd, &msg, 0);
    }
    ring::use_fixed_file(sqe, direct);
  }
  static bool again(const IoResult&) noexcept { return false; }
  static IoResult result(const IoResult& result) noexcept { return result; }
};

}  // namespace detail

class StreamSocket : public Socket {
 public:
  StreamSocket() noexcept = default;
  explicit StreamSocket(Socket socket) noexcept : Socket(std::move(socket)) {}
  using Socket::Socket;

  // Opens a socket for `address`'s family and connects it. A refused connection is
  // ECONNREFUSED, an expired timeout ETIMEDOUT; `stop` cancels the connect (ECANCELED).
  static Task<Result<StreamSocket>> connect(Address address, ConnectOptions options = {},
                                            std::stop_token stop = {});
  // A connected pair of Unix stream sockets (socketpair(2)).
  static Result<std::pair<StreamSocket, StreamSocket>> pair() noexcept;

  // A receive into a buffer of `pool` that the kernel picks when data arrives: a lease
  // on the bytes, an empty lease at end of stream, or the error (ENOBUFS when the pool
  // has no buffer left: a RecvStream receives into a buffer of its own instead).
  auto recv(BufferPool& pool, int msg_flags = 0) const noexcept {
    return coring::request(detail::PoolRecvBody{&pool, fd_, msg_flags, is_direct(), {}, {}});
  }
  // A multishot receive into `pool`, closed by `stop`; see recv_stream.hpp.
  RecvStream recv_stream(BufferPool& pool, RecvStreamOptions options = {},
                         std::stop_token stop = {}) const {
    return RecvStream(fd_, is_direct(), pool, options, std::move(stop));
  }
  // Up to buffer.size() bytes: res is the count, 0 at end of stream, or -errno.
  auto recv(std::span<std::byte> buffer, int msg_flags = 0) const noexcept {
    return io(detail::RecvPrep{buffer, fd_, msg_flags, is_direct()});
  }
  // Some of `buffer` (res bytes, possibly fewer than asked), or -errno.
  auto send(std::span<const std::byte> buffer, int msg_flags = 0) const noexcept {
    return io(detail::SendPrep{buffer, fd_, msg_flags, is_direct()});
  }
  // Zero-copy send (IORING_OP_SEND_ZC, 6.0): the kernel sends from `buffer` itself. The
  // coroutine resumes — and `buffer` is the caller's again — only after the kernel's
  // notification that it no longer needs the pages; res is the count of the send.
  // A kernel without it gives -EINVAL. Worth it for large buffers only.
  auto send_zc(std::span<const std::byte> buffer, int msg_flags = 0) const noexcept {
    return io(detail::SendZcPrep{buffer, fd_, msg_flags, is_direct()});
  }
  // Every byte of `buffer`, in as many sends as it takes. `.with_deadline(d)` bounds the
  // whole transfer, `.with_timeout(d)` each send (see runtime/request.hpp).
  auto send_all(std::span<const std::byte> buffer) const noexcept {
    return coring::request(detail::TransferBody{const_cast<std::byte*>(buffer.data()),
                                                buffer.size(), 0, fd_, is_direct(), true});
  }
  // Exactly buffer.size() bytes; Errc::end_of_stream if the peer closes first. Bounds as
  // send_all's.
  auto recv_exact(std::span<std::byte> buffer) const noexcept {
    return coring::request(
        detail::TransferBody{buffer.data(), buffer.size(), 0, fd_, is_direct(), false});
  }
  // sendmsg(2)/recvmsg(2) over `iov`, which must stay valid until the call completes.
  auto send_vectored(std::span<const iovec> iov) const noexcept {
    return coring::request(detail::VectorBody{iov.data(), iov.size(), {}, fd_, is_direct(), true});
  }
  auto recv_vectored(std::span<const iovec> iov) const noexcept {
    return coring::request(detail::VectorBody{iov.data(), iov.size(), {}, fd_, is_direct(), false});
  }
  // shutdown(2): SHUT_WR sends the peer its end of stream and keeps receiving.
  auto shutdown(int how = SHUT_WR) const noexcept {
    return io(detail::ShutdownPrep{fd_, how, is_direct()});
  }
};

using TcpStream = StreamSocket;
using UnixStream = StreamSocket;

}  // namespace coring::net
