// BufferedReader: delimited and exact reads over a StreamSocket, for line and header
// protocols (HTTP/1.1, SMTP, Redis) that parse as bytes arrive.
//
//   BufferedReader reader(conn);                          // plain receives, 16 KiB
//   Result<std::string_view> line = co_await reader.read_line(8192);
//   Result<std::string_view> head = co_await reader.read_until("\r\n\r\n", 65536)
//                                       .with_deadline(10s);
//   TransferResult body = co_await reader.read_exact(content);   // drains the buffer first
//
// A reader receives in one of two ways. With its own buffer (the first constructor),
// every receive is a plain recv into that buffer. Fed by a BufferPool (the second), each
// receive is one IORING_OP_RECV that selects a buffer of the pool, and the reader keeps
// the lease: bytes that lie inside one lease are handed out as a view into the lease,
// without a copy, and only a piece that spans two leases is copied into the reader's
// buffer (bytes_copied() counts them). A pool that runs dry (ENOBUFS) costs one receive
// into the reader's buffer instead of an error. The reader asks for a receive only
// while a call needs bytes: it holds at most one lease and never more than its
// capacity, whatever the peer sends.
//
// Views (the result of read_until() and read_line(), buffered()) stay valid until the
// next call on the reader. Errors are values: Errc::limit_exceeded when no delimiter lies
// within the limit, or the buffer is full without one (the bytes stay buffered: a
// server answers 431 and closes); Errc::end_of_stream when the peer closes before the
// delimiter (the partial bytes stay in buffered()); the receive's errno otherwise
// (ECONNRESET, ETIMEDOUT from a bound, ECANCELED from a stop token). Every read is a
// request(body) awaitable (runtime/request.hpp): .with_deadline(d) bounds the whole read
// — the bound that cuts a peer trickling a byte at a time —, .with_timeout(d) each
// receive, .with_stop(token) cancels it. A read satisfied by what is buffered completes
// without a receive and allocates nothing; one that receives allocates nothing either
// (but a stop token costs the runtime's stop callback).
//
// One read at a time, on the socket's loop thread. The socket (and the pool) must
// outlive the reader and stay where they are; nobody else may receive from the socket
// while the reader is in use.
#pragma once

#include <cassert>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stop_token>
#include <string_view>
#include <type_traits>

#include "coring/net/buffer_pool.hpp"
#include "coring/net/error.hpp"
#include "coring/net/stream.hpp"
#include "coring/ring/result.hpp"
#include "coring/runtime/request.hpp"

namespace coring::net {

struct BufferedReaderOptions {
  // The reader's own buffer: the longest piece it can assemble (a line, a header block
  // that spans receives), and the most it ever buffers. Allocated once, at construction.
  std::uint32_t capacity = 16384;
};
static_assert(std::is_trivially_destructible_v<BufferedReaderOptions>);

class BufferedReader;

namespace detail {

enum class ReadGoal : std::uint8_t { until, line, fill, some, exact };

// The record of a read that receives: the reader holds the read's state (one read at a
// time), the body forwards the request's phases to it.
struct ReaderBody {
  BufferedReader* reader;
  void prep(ring::Sqe& sqe) noexcept;
  void on_cqe(const IoResult& result) noexcept;
  bool again(const IoResult& result) noexcept;
  static IoResult result(const IoResult& result) noexcept { return result; }
};

// What co_await of each read gives.
template <ReadGoal G>
using ReadResult = std::conditional_t<
    G == ReadGoal::until || G == ReadGoal::line, Result<std::string_view>,
    std::conditional_t<G == ReadGoal::exact, TransferResult, Result<std::size_t>>>;

}  // namespace detail

// The awaitable of a read: completes at once from the buffer when it can, else receives
// until the read is satisfied. Bounds and stop as request(body)'s (see the header).
template <detail::ReadGoal G>
class [[nodiscard]] ReaderOp {
 public:
  struct Args {
    std::string_view delimiter;
    std::size_t limit;
    std::span<std::byte> target;
  };
  ReaderOp(BufferedReader& reader, Args args) noexcept
      : reader_(&reader), args_(args), op_(detail::ReaderBody{&reader}) {}

  ReaderOp with_stop(std::stop_token token) && noexcept {
    return ReaderOp(reader_, args_, std::move(op_).with_stop(std::move(token)));
  }
  ReaderOp with_timeout(std::chrono::nanoseconds timeout) && noexcept {
    return ReaderOp(reader_, args_, std::move(op_).with_timeout(timeout));
  }
  ReaderOp with_deadline(std::chrono::nanoseconds timeout) && noexcept {
    return ReaderOp(reader_, args_, std::move(op_).with_deadline(timeout));
  }
  ReaderOp with_deadline(std::chrono::steady_clock::time_point deadline) && noexcept {
    return ReaderOp(reader_, args_, std::move(op_).with_deadline(deadline));
  }

  inline bool await_ready() noexcept;
  bool await_suspend(std::coroutine_handle<> waiter) noexcept {
    started_ = true;
    return op_.await_suspend(waiter);
  }
  inline detail::ReadResult<G> await_resume() noexcept;

 private:
  ReaderOp(BufferedReader* reader, Args args, RequestOp<detail::ReaderBody>&& op) noexcept
      : reader_(reader), args_(args), op_(std::move(op)) {}

  BufferedReader* reader_;
  Args args_;
  RequestOp<detail::ReaderBody> op_;
  bool started_ = false;
};

class BufferedReader {
 public:
  // Plain receives into a buffer of options.capacity bytes. Throws std::system_error
  // (invalid_argument) for a capacity of 0.
  explicit BufferedReader(const StreamSocket& socket, BufferedReaderOptions options = {});
  // Receives into buffers of `pool`, on the pool's loop (see the header).
  BufferedReader(const StreamSocket& socket, BufferPool& pool, BufferedReaderOptions options = {});
  BufferedReader(const BufferedReader&) = delete;
  BufferedReader& operator=(const BufferedReader&) = delete;
  ~BufferedReader();

  // The bytes before the next `delimiter` (which must not be empty: an assert), which is
  // consumed with them;
  // Errc::limit_exceeded if it does not start within `limit` bytes.
  ReaderOp<detail::ReadGoal::until> read_until(std::string_view delimiter,
                                               std::size_t limit) noexcept {
    assert(!delimiter.empty());
    return {*this, {delimiter, limit, {}}};
  }
  // The next line: the bytes before LF, without a CR that precedes it; `limit` counts
  // the bytes before the LF (the CR included).
  ReaderOp<detail::ReadGoal::line> read_line(std::size_t limit) noexcept {
    return {*this, {"\n", limit, {}}};
  }
  // Receives more: how many bytes buffered() grew by, 0 at end of stream;
  // Errc::limit_exceeded when the buffer is full. For a parser that works on buffered()
  // and consume()s what it parsed.
  ReaderOp<detail::ReadGoal::fill> fill() noexcept { return {*this, {{}, 0, {}}}; }
  // Buffered bytes, the next to be read, contiguous (with a pool, when the reader's
  // buffer holds bytes and a lease more, the buffer's: fill() joins them); empty when
  // nothing is buffered.
  [[nodiscard]] std::span<const std::byte> buffered() const noexcept;
  // Drops the first `n` bytes of buffered() (n <= buffered().size()).
  void consume(std::size_t n) noexcept;
  // Some bytes into `target`: the buffered ones first, else one receive (with its own
  // buffer straight into `target`). The count, 0 at end of stream.
  ReaderOp<detail::ReadGoal::some> read_some(std::span<std::byte> target) noexcept {
    return {*this, {{}, 0, target}};
  }
  // Exactly target.size() bytes: the buffered ones, then receives (with its own buffer
  // straight into `target`); Errc::end_of_stream if the peer closes first (`bytes` says
  // how many arrived).
  ReaderOp<detail::ReadGoal::exact> read_exact(std::span<std::byte> target) noexcept {
    return {*this, {{}, 0, target}};
  }

  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  // Bytes copied from leases into the reader's buffer (pieces that spanned leases).
  [[nodiscard]] std::uint64_t bytes_copied() const noexcept { return bytes_copied_; }

 private:
  template <detail::ReadGoal>
  friend class ReaderOp;
  friend struct detail::ReaderBody;

  enum class Status : std::uint8_t { pending, done, exceeded, ended, failed };
  enum class Request : std::uint8_t { storage, target, pool };

  // The read's phases: start() (true if the buffer settles it), the request's prep,
  // on_cqe and again, and settle() with the final result.
  bool start(detail::ReadGoal goal, std::string_view delimiter, std::size_t limit,
             std::span<std::byte> target) noexcept;
  bool advance() noexcept;
  bool advance_until() noexcept;
  bool advance_fill() noexcept;
  bool advance_copy() noexcept;
  void prep_receive(ring::Sqe& sqe) noexcept;
  void on_receive(const IoResult& result) noexcept;
  bool receive_again(const IoResult& result) noexcept;
  void settle(const IoResult& result) noexcept;
  [[nodiscard]] std::error_code read_error() const noexcept;

  // The buffer and the lease.
  [[nodiscard]] std::size_t stored() const noexcept { return end_ - begin_; }
  [[nodiscard]] std::size_t leased() const noexcept { return lease_.size() - lease_pos_; }
  void advance_front(std::size_t n) noexcept;
  void pull() noexcept;
  void compact() noexcept;
  void release_spent() noexcept;

  const StreamSocket* socket_;
  BufferPool* pool_ = nullptr;
  std::unique_ptr<std::byte[]> storage_;
  std::size_t capacity_;
  std::size_t begin_ = 0;  // storage_[begin_, end_) is buffered
  std::size_t end_ = 0;
  BufferLease lease_;           // buffered after the storage: [lease_pos_, size)
  std::size_t lease_pos_ = 0;   // a lease read to its end is released by the next call
  std::size_t from_lease_ = 0;  // the storage's last bytes that pull() copied from lease_
  std::uint64_t bytes_copied_ = 0;
  bool dry_ = false;  // the pool ran dry: the next receive goes to storage_

  // The read in progress.
  detail::ReadGoal goal_ = detail::ReadGoal::fill;
  Status status_ = Status::done;
  Request request_ = Request::storage;
  bool busy_ = false;
  std::string_view delimiter_;
  std::size_t limit_ = 0;
  std::size_t scanned_ = 0;  // bytes of buffered() searched for the delimiter
  std::size_t before_ = 0;   // fill: buffered().size() at the start
  std::span<std::byte> target_;
  std::size_t done_ = 0;  // some, exact: bytes in target_; fill: bytes added
  std::string_view found_;
  std::error_code error_;
  Outcome outcome_ = Outcome::completed;
};

template <detail::ReadGoal G>
bool ReaderOp<G>::await_ready() noexcept {
  return reader_->start(G, args_.delimiter, args_.limit, args_.target);
}

template <detail::ReadGoal G>
detail::ReadResult<G> ReaderOp<G>::await_resume() noexcept {
  BufferedReader& r = *reader_;
  if (started_) r.settle(op_.await_resume());
  r.busy_ = false;
  if constexpr (G == detail::ReadGoal::exact) {
    return TransferResult(r.done_, r.read_error(), r.outcome_);
  } else if constexpr (G == detail::ReadGoal::until || G == detail::ReadGoal::line) {
    if (r.status_ != BufferedReader::Status::done) return fail(r.read_error());
    return r.found_;
  } else {
    if (r.status_ == BufferedReader::Status::ended) return std::size_t{0};
    if (r.status_ != BufferedReader::Status::done) return fail(r.read_error());
    return r.done_;
  }
}

}  // namespace coring::net
