// Zero-copy transfers to and from stream sockets: send_file (a range of a file to a
// socket) and splice (one direction of a proxy, socket to socket). The bytes move
// through a pipe with IORING_OP_SPLICE (runtime/splice.hpp) and never enter user space.
//
//   coring::Pipe pipe = coring::Pipe::open().value();              // one per connection
//   TransferResult t = co_await send_file(conn, file, 0, size, pipe).with_stop(token);
//   SpliceSummary up = co_await splice(client, upstream, pipe);    // until client's EOF
//
// Both are one request() awaitable: the record lives in the awaiting frame, nothing is
// allocated, and .with_stop(token) cancels the transfer. Bound it with a stop, not a
// linked timeout: .with_deadline(d) and .with_timeout(d) compile, but on 6.18 a linked
// timeout does not end a splice that io-wq runs blocked in a socket's send.
//
// The pipe must serve one transfer at a time; a transfer that stops with bytes in it
// empties it, so it is never reused dirty. The forms without a pipe are Tasks that open
// one for the call.
//
// Every splice runs on the kernel's io-wq, a worker thread hop per request (two per
// pipe-full). For a small file one read into memory and one send cost less: see
// docs/net.md, "Sending files and splicing", for the measured crossover; send_file's
// forms without a pipe read and send a file of up to small_file_bytes.
#pragma once

#include <concepts>
#include <cstdint>
#include <stop_token>
#include <type_traits>

#include "coring/net/stream.hpp"
#include "coring/runtime/request.hpp"
#include "coring/runtime/splice.hpp"
#include "coring/runtime/task.hpp"

namespace coring::net {

struct SendFileOptions {
  // The caller sends more after the file (a chunk trailer, the next response): the
  // file's last bytes carry SPLICE_F_MORE too instead of being pushed out at once.
  bool more_after = false;
};
// Trivially destructible, so that a braced temporary inside co_await is safe with g++ 12
// (see MultishotOptions).
static_assert(std::is_trivially_destructible_v<SendFileOptions>);

// A file that send_file reads: fs::File, or any type with fd() (an ordinary fd, which
// fs::File's is even when the File is attached to a FileTable) and is_direct().
template <typename F>
concept SpliceableFile = requires(const F& file) {
  { file.fd() } -> std::convertible_to<int>;
  { file.is_direct() } -> std::convertible_to<bool>;
};

// A file descriptor for send_file: an ordinary fd, or with `direct` a registered-file
// slot of the loop's table.
struct FileDescriptor {
  int fd = -1;
  bool direct = false;
};

namespace detail {

// send_file's request() body: SpliceBody's transfer, with send_all's result. A file
// that ends before `length` bytes is Errc::file_ended (bytes says how far it got).
struct SendFileBody : SpliceBody {
  using SpliceBody::SpliceBody;
  TransferResult result(const IoResult& result) noexcept {
    const SpliceSummary summary = SpliceBody::result(result);
    std::error_code error = summary.error;
    if (!error && summary.side == SpliceSide::source) error = Errc::file_ended;
    return {static_cast<std::size_t>(summary.bytes), error, summary.outcome};
  }
};

inline SpliceEnd stream_end(const StreamSocket& stream) noexcept {
  return {stream.fd(), stream.is_direct(), ring::current_position};
}

Task<TransferResult> send_file_pooled(const StreamSocket& stream, FileDescriptor file,
                                      std::uint64_t offset, std::uint64_t length,
                                      SendFileOptions options, std::stop_token stop);

}  // namespace detail

// Sends [offset, offset + length) of `file` on `stream` through `pipe`: the result is
// send_all's, bytes that reached the socket and why they stopped short (file_ended
// when the file ends first, EPIPE or ECONNRESET when the peer goes, ETIMEDOUT,
// ECANCELED). The file's own position is neither used nor moved.
inline auto send_file(const StreamSocket& stream, FileDescriptor file, std::uint64_t offset,
                      std::uint64_t length, Pipe& pipe, SendFileOptions options = {}) noexcept {
  return coring::request(detail::SendFileBody(SpliceEnd{file.fd, file.direct, offset},
                                              detail::stream_end(stream), length, pipe,
                                              SpliceOptions{options.more_after, false}));
}
template <SpliceableFile F>
auto send_file(const StreamSocket& stream, const F& file, std::uint64_t offset,
               std::uint64_t length, Pipe& pipe, SendFileOptions options = {}) noexcept {
  return send_file(stream, FileDescriptor{file.fd(), false}, offset, length, pipe, options);
}

// The same without a pipe of the caller's: a Task that opens a pipe for the call, or
// that reads the file and sends it from memory when `length` is at most
// small_file_bytes. `stop` cancels it.
inline constexpr std::uint64_t small_file_bytes = 16 * 1024;
inline Task<TransferResult> send_file(const StreamSocket& stream, FileDescriptor file,
                                      std::uint64_t offset, std::uint64_t length,
                                      SendFileOptions options = {}, std::stop_token stop = {}) {
  return detail::send_file_pooled(stream, file, offset, length, options, std::move(stop));
}
template <SpliceableFile F>
Task<TransferResult> send_file(const StreamSocket& stream, const F& file, std::uint64_t offset,
                               std::uint64_t length, SendFileOptions options = {},
                               std::stop_token stop = {}) {
  return detail::send_file_pooled(stream, FileDescriptor{file.fd(), false}, offset, length, options,
                                  std::move(stop));
}

// One direction of a proxy: everything `from` sends, passed to `to` through `pipe`,
// until `from` ends its stream or a side fails. Waiting for `from` is a poll, so a
// quiet peer holds no kernel worker. The summary says which side ended it and how:
//   source_ended, no error    `from` shut down its writing: pass it on, to.shutdown();
//   side source, error        `from` failed (ECONNRESET: reset `to` likewise);
//   side sink, error          `to` failed (EPIPE, ECONNRESET): stop reading `from`;
//   outcome timed_out / cancelled: a bound or a stop (bytes moved either way).
inline auto splice(const StreamSocket& from, const StreamSocket& to, Pipe& pipe) noexcept {
  return coring::request(SpliceBody(detail::stream_end(from), detail::stream_end(to),
                                    SpliceBody::unbounded_length, pipe,
                                    SpliceOptions{false, true}));
}

}  // namespace coring::net
