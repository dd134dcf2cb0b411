// Pipe and SpliceBody: bytes moved from one descriptor to another through a pipe with
// IORING_OP_SPLICE, never entering user space.
//
//   Result<Pipe> pipe = Pipe::open();
//   SpliceSummary s = co_await request(SpliceBody(source, sink, length, *pipe));
//
// splice(2) needs a pipe on one side, so a transfer is a series of requests made by one
// awaitable (runtime/request.hpp, no allocation): the source into the pipe (up to its
// capacity), then the pipe into the sink until the pipe is empty, and again, until
// `length` bytes have reached the sink, the source ends, or an error, a bound or a stop
// ends it. A source that is a socket may be polled for input first (wait_for_input), so
// that a quiet peer holds no io-wq worker: the kernel runs every splice on io-wq.
//
// The layers above build their transfers on it: fs::copy_file (file to file), and net's
// send_file (file to socket) and splice (socket to socket). This layer knows no sockets
// or paths: the ends are descriptors.
#pragma once

#include <cstdint>
#include <system_error>

#include "coring/ring/prep.hpp"
#include "coring/ring/result.hpp"
#include "coring/runtime/operation.hpp"

namespace coring {

// A pipe as splice's kernel-side buffer: pipe2(O_CLOEXEC), resized with F_SETPIPE_SZ.
// A transfer needs the pipe to itself; one Pipe per connection (or per task) serves
// every transfer it makes in turn. A transfer that stops with bytes still in the pipe
// empties it before it returns, so the next one never sends stale bytes.
class Pipe {
 public:
  // 1 MiB, the default fs.pipe-max-size: 10 MiB move in 10 rounds of two splices.
  // The kernel charges pipe pages to the user (fs.pipe-user-pages-soft, 64 MiB by
  // default): past that, new pipes get 2 pages and F_SETPIPE_SZ is refused, and the
  // pipe keeps what the kernel gave it (capacity() says).
  static constexpr std::uint32_t default_capacity = std::uint32_t{1} << 20;

  Pipe() noexcept = default;
  Pipe(Pipe&& other) noexcept;
  Pipe& operator=(Pipe&& other) noexcept;
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe();

  // A new pipe of `capacity` bytes if the kernel allows it (rounded up to pages), of
  // the kernel's default (64 KiB) otherwise. Fails with pipe2's error (EMFILE, ENFILE).
  static Result<Pipe> open(std::uint32_t capacity = default_capacity) noexcept;

  [[nodiscard]] bool is_open() const noexcept { return read_fd_ >= 0; }
  [[nodiscard]] int read_fd() const noexcept { return read_fd_; }
  [[nodiscard]] int write_fd() const noexcept { return write_fd_; }
  [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }

  // Drops what the pipe holds (reads it out; it is already in the pipe, so no read
  // blocks). A pipe that cannot be emptied is closed: later transfers fail with EBADF
  // rather than send stale bytes. Returns whether the pipe is empty and open.
  bool discard() noexcept;

 private:
  void close() noexcept;

  int read_fd_ = -1;
  int write_fd_ = -1;
  std::uint32_t capacity_ = 0;
};

// One end of a transfer: an fd, or a direct descriptor (a registered-file slot), and
// for a file the offset to start at (ring::current_position: a pipe or socket, or a
// file at its position, which the transfer advances).
struct SpliceEnd {
  int fd = -1;
  bool direct = false;
  std::uint64_t offset = ring::current_position;
};

// Which side ended a transfer that stopped before `length` bytes.
enum class SpliceSide : std::uint8_t {
  none,    // nothing stopped it early: every byte moved, or a stop or a bound ended it
  source,  // the source ended (error 0: end of stream or file) or failed
  sink,    // the sink failed (EPIPE, ECONNRESET, ENOSPC, ...)
};

// How a transfer ended. `bytes` reached the sink. `error` is empty when every byte
// moved or the source ended with nothing owed (length unbounded); ETIMEDOUT for a
// bound, ECANCELED for a stop; a splice the kernel lacks is ring::Errc::
// feature_unsupported.
struct SpliceSummary {
  std::uint64_t bytes = 0;
  std::error_code error;
  SpliceSide side = SpliceSide::none;
  Outcome outcome = Outcome::completed;
  bool source_ended = false;  // the source reached its end (0 bytes from a splice)
};

struct SpliceOptions {
  // The caller sends more after this transfer: the last splice to the sink carries
  // SPLICE_F_MORE too (a socket then waits for the rest before sending a short segment).
  bool more_after = false;
  // Poll the source for input before each splice from it (a socket); a file is not.
  bool wait_for_input = false;
};

// The request() body of a transfer: see the top of this file. `length` is a count of
// bytes, or unbounded_length to move everything until the source ends. The sink gets
// SPLICE_F_MORE while more of the transfer (or, with more_after, the caller's) follows.
class SpliceBody {
 public:
  static constexpr std::uint64_t unbounded_length = ~std::uint64_t{0};

  SpliceBody(SpliceEnd source, SpliceEnd sink, std::uint64_t length, Pipe& pipe,
             SpliceOptions options = {}) noexcept
      : source_(source), sink_(sink), length_(length), pipe_(&pipe), options_(options) {
    if (options.wait_for_input) phase_ = Phase::poll;
  }

  void prep(ring::Sqe& sqe) noexcept;
  bool again(const IoResult& result) noexcept;
  SpliceSummary result(const IoResult& result) noexcept;

 private:
  enum class Phase : std::uint8_t { poll, fill, drain };

  Phase start_phase() const noexcept { return options_.wait_for_input ? Phase::poll : Phase::fill; }
  // Takes the count of a request that moved bytes, whether or not it ran to its end.
  void account(std::uint32_t moved) noexcept;

  SpliceEnd source_;
  SpliceEnd sink_;
  std::uint64_t length_;
  std::uint64_t done_ = 0;     // bytes that reached the sink
  std::uint32_t in_pipe_ = 0;  // bytes in the pipe, on their way to the sink
  Pipe* pipe_;
  SpliceOptions options_;
  Phase phase_ = Phase::fill;
  bool source_ended_ = false;
  bool accounted_ = true;  // again() took the last request's result
};

namespace detail {
// Whether the calling thread's loop has IORING_OP_SPLICE (5.7), asked once per backend.
[[nodiscard]] bool loop_supports_splice() noexcept;
}  // namespace detail

}  // namespace coring
