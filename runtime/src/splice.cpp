// The splice transfer: a state machine of three phases, each one request of the same
// request() record.
//
//   poll   (only with wait_for_input) IORING_OP_POLL_ADD for POLLIN on the source, so
//          that waiting for a quiet peer costs no io-wq worker;
//   fill   source -> pipe, up to the pipe's capacity and what is left of `length`;
//   drain  pipe -> sink, what the pipe holds, repeated until it is empty.
//
// After a drain empties the pipe the transfer starts over, until `length` bytes have
// reached the sink or the source ends. The pipe holds bytes only between a fill and the
// drain that empties it; a transfer that stops there (the sink failed, a bound or a
// stop) empties it before the caller sees the result, so a Pipe is always clean
// between transfers.
#include "coring/runtime/splice.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "coring/ring/error.hpp"
#include "coring/runtime/event_loop.hpp"

namespace coring {

// --- Pipe -------------------------------------------------------------------------------------

Pipe::Pipe(Pipe&& other) noexcept
    : read_fd_(std::exchange(other.read_fd_, -1)),
      write_fd_(std::exchange(other.write_fd_, -1)),
      capacity_(std::exchange(other.capacity_, 0)) {}

Pipe& Pipe::operator=(Pipe&& other) noexcept {
  if (this != &other) {
    close();
    read_fd_ = std::exchange(other.read_fd_, -1);
    write_fd_ = std::exchange(other.write_fd_, -1);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

Pipe::~Pipe() { close(); }

void Pipe::close() noexcept {
  if (read_fd_ >= 0) ::close(read_fd_);
  if (write_fd_ >= 0) ::close(write_fd_);
  read_fd_ = write_fd_ = -1;
  capacity_ = 0;
}

Result<Pipe> Pipe::open(std::uint32_t capacity) noexcept {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return fail(std::error_code(errno, std::system_category()));
  Pipe pipe;
  pipe.read_fd_ = fds[0];
  pipe.write_fd_ = fds[1];
  // Refused (EPERM past fs.pipe-max-size or the user's pipe pages): the pipe keeps the
  // capacity it has, which F_GETPIPE_SZ reports.
  if (capacity > 0) ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(capacity));
  const int actual = ::fcntl(fds[1], F_GETPIPE_SZ);
  pipe.capacity_ = actual > 0 ? static_cast<std::uint32_t>(actual) : 4096;
  return pipe;
}

bool Pipe::discard() noexcept {
  if (!is_open()) return false;
  char scratch[16384];
  for (;;) {
    int held = 0;
    if (::ioctl(read_fd_, FIONREAD, &held) != 0) break;
    if (held == 0) return true;
    // The bytes are in the pipe already: this read returns at once.
    const ssize_t n =
        ::read(read_fd_, scratch, std::min(sizeof scratch, static_cast<std::size_t>(held)));
    if (n <= 0) break;
  }
  close();
  return false;
}

// --- SpliceBody ---------------------------------------------------------------------------

void SpliceBody::prep(ring::Sqe& sqe) noexcept {
  accounted_ = false;
  const bool bounded = length_ != unbounded_length;
  switch (phase_) {
    case Phase::poll:
      ring::prep_poll_add(sqe, source_.fd, POLLIN);
      ring::use_fixed_file(sqe, source_.direct);
      return;
    case Phase::fill: {
      if (bounded && length_ == done_) {  // a transfer of 0 bytes: one NOP, no io-wq trip
        ring::prep_nop(sqe);
        return;
      }
      const std::uint64_t left = bounded ? length_ - done_ : pipe_->capacity();
      std::uint32_t flags = source_.direct ? ring::splice_f_fd_in_fixed : 0;
      // After a poll the source has input: a spurious wake-up is EAGAIN, not a wait.
      if (options_.wait_for_input) flags |= SPLICE_F_NONBLOCK;
      ring::prep_splice(
          sqe, source_.fd, source_.offset, pipe_->write_fd(), ring::current_position,
          static_cast<std::uint32_t>(std::min<std::uint64_t>(left, pipe_->capacity())), flags);
      return;
    }
    case Phase::drain: {
      // SPLICE_F_MORE only while more follows: on the last piece it would hold back
      // the final short segment (like TCP_CORK) until the socket's timer sends it. A
      // transfer until the source ends cannot know, and a proxy must not delay.
      const bool more = bounded && (options_.more_after || done_ + in_pipe_ < length_);
      ring::prep_splice(sqe, pipe_->read_fd(), ring::current_position, sink_.fd, sink_.offset,
                        in_pipe_, more ? SPLICE_F_MORE : 0);
      ring::use_fixed_file(sqe, sink_.direct);
      return;
    }
  }
}

void SpliceBody::account(std::uint32_t moved) noexcept {
  accounted_ = true;
  if (phase_ == Phase::fill) {
    in_pipe_ += moved;
    if (source_.offset != ring::current_position) source_.offset += moved;
  } else if (phase_ == Phase::drain) {
    in_pipe_ -= moved;
    done_ += moved;
    if (sink_.offset != ring::current_position) sink_.offset += moved;
  }
}

bool SpliceBody::again(const IoResult& result) noexcept {
  if (result.res < 0) {
    if (result.res == -EAGAIN && phase_ == Phase::fill && options_.wait_for_input) {
      phase_ = Phase::poll;
      accounted_ = true;
      return true;
    }
    return false;
  }
  switch (phase_) {
    case Phase::poll:
      accounted_ = true;
      phase_ = Phase::fill;
      return true;
    case Phase::fill:
      if (result.res == 0) {  // end of the source, or a NOP for 0 bytes
        accounted_ = true;
        source_ended_ = length_ != done_;
        return false;
      }
      account(result.value());
      phase_ = Phase::drain;
      return true;
    case Phase::drain:
      if (result.res == 0) return false;  // the sink took nothing: result() says EIO
      account(result.value());
      if (in_pipe_ > 0) return true;
      if (length_ != unbounded_length && done_ == length_) return false;
      phase_ = start_phase();
      return true;
  }
  return false;
}

SpliceSummary SpliceBody::result(const IoResult& result) noexcept {
  // A request cut short by a bound (outcome partial) moved bytes that again() did not
  // see: they are counted here.
  if (!accounted_ && result.res > 0 && phase_ != Phase::poll)
    account(static_cast<std::uint32_t>(result.res));
  SpliceSummary summary{done_, {}, SpliceSide::none, result.outcome, source_ended_};
  const bool complete =
      length_ == unbounded_length ? source_ended_ && in_pipe_ == 0 : done_ == length_;
  if (!complete) {
    if (result.outcome == Outcome::partial) {
      summary.error = std::make_error_code(std::errc::timed_out);
    } else if (result.res < 0) {
      summary.error = result.error();
      if (result.outcome == Outcome::completed) {
        summary.side = phase_ == Phase::drain ? SpliceSide::sink : SpliceSide::source;
        if (result.res == -EINVAL && phase_ != Phase::poll && !detail::loop_supports_splice())
          summary.error = ring::Errc::feature_unsupported;
      }
    } else if (source_ended_) {
      summary.side = SpliceSide::source;  // the caller's layer names it (end of file, ...)
    } else if (phase_ == Phase::drain && result.res == 0) {
      summary.error = std::make_error_code(std::errc::io_error);
      summary.side = SpliceSide::sink;
    } else {
      // The last request succeeded, yet the transfer stops: a stop or the loop's
      // shutdown kept it from going on.
      summary.error = std::make_error_code(std::errc::operation_canceled);
      summary.outcome = Outcome::cancelled;
    }
  }
  if (in_pipe_ > 0) {
    pipe_->discard();
    in_pipe_ = 0;
  }
  return summary;
}

namespace detail {
bool loop_supports_splice() noexcept {
  const EventLoop* loop = EventLoop::current();
  if (loop == nullptr) return false;
  auto ask = [loop] {
    auto probe = loop->ring().get_probe();
    return probe && probe->is_supported(ring::Op::splice);
  };
  if (loop->backend() == ring::Backend::epoll) {
    static const bool emulated = ask();
    return emulated;
  }
  static const bool kernel = ask();
  return kernel;
}
}  // namespace detail

}  // namespace coring
