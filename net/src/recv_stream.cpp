// RecvStream: the hooks that make the multishot core a receive into a BufferPool.
#include "coring/net/recv_stream.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <new>
#include <span>
#include <utility>

#include "coring/ring/detail/log.hpp"
#include "coring/ring/prep.hpp"

namespace coring::net {
namespace {

// The bound the core gets: the caller's, at most the pool's share (an out-of-range bound
// goes through unchanged, for the core to refuse).
std::uint32_t clamp_bound(std::uint32_t bound, const BufferPool& pool) noexcept {
  if (bound == 0 || bound > (1U << 20)) return bound;
  return std::min(bound, pool.share());
}

}  // namespace

RecvStream::RecvStream(int fd, bool direct, BufferPool& pool, RecvStreamOptions options,
                       std::stop_token stop)
    : Core(clamp_bound(options.bound, pool), 0, &multishot_policy::values, std::move(stop),
           /*lazy=*/true),
      pool_(&pool),
      fd_(fd),
      msg_flags_(options.msg_flags),
      direct_(direct) {
  ++pool_->streams_;
}

RecvStream::~RecvStream() {
  retire();
  delete[] own_;  // left by a receive into it that failed (its result took no lease)
  --pool_->streams_;
}

void RecvStream::prep(ring::Sqe& sqe) const noexcept {
  switch (mode_) {
    case Mode::pool:
      if (limited_) {
        // The kernel ends the request once the queue's room is filled, counted in
        // whole buffers: a flood's batch of receives, made before a pause could take
        // effect, stays within the bound (chunks smaller than a buffer reach the bound
        // first, and the pause stops those). At most INT_MAX: the kernel counts the
        // limit down as an int.
        const std::uint64_t room = std::uint64_t{bound() - size()} * pool_->buffer_size();
        ring::prep_recv_multishot(
            sqe, fd_, pool_->group_id(), msg_flags_,
            static_cast<std::uint32_t>(std::min<std::uint64_t>(room, 0x7FFF'FFFF)));
      } else {
        ring::prep_recv_multishot(sqe, fd_, pool_->group_id(), msg_flags_);
      }
      break;
    case Mode::poll:
      ring::prep_poll_add(sqe, fd_, POLLIN | POLLRDHUP);
      break;
    case Mode::own:
      ring::prep_recv(sqe, fd_, std::span(own_, pool_->own_buffer_size()), msg_flags_);
      break;
  }
  if (direct_) ring::use_fixed_file(sqe);
}

// The pool unless it has run dry: then a poll, and once data is there, one receive
// into a buffer of the stream's own — so that no stream waits for buffers that others
// hold (a client that never reads can keep its handler's send, and the chunks that
// stream holds, waiting for ever), and none holds memory while its peer is idle.
bool RecvStream::armed() noexcept {
  if (mode_ == Mode::own) {
    // One left by a receive that failed is used again.
    if (own_ == nullptr) own_ = new (std::nothrow) std::byte[pool_->own_buffer_size()];
    return own_ != nullptr;
  }
  mode_ = pool_->available() > 0 && mode_ != Mode::poll ? Mode::pool : Mode::poll;
  limited_ = mode_ == Mode::pool && !pool_->limit_refused_ && !unlimited_retry_;
  return true;
}

// A kernel before 6.17 refuses the byte limit with EINVAL — as it refuses other things
// (MSG_WAITALL, say): the stream tries once more without the limit, and only a chunk
// from that request tells the pool that its streams should go without.
bool RecvStream::refused(const IoResult& final) noexcept {
  if (final.res != -EINVAL || mode_ != Mode::pool || !limited_) return false;
  unlimited_retry_ = true;
  return true;
}

bool RecvStream::claim(const IoResult& result, BufferLease& lease) noexcept {
  switch (mode_) {
    case Mode::poll:
      // Readable (or hung up, or failed: the receive says which); no chunk. The pool
      // again if buffers came back meanwhile (a burst of clients runs it dry for a
      // moment), unless it ran dry under this stream twice in a row: then a buffer of
      // its own, which it cannot lose to another stream.
      if (result.res > 0) {
        mode_ = dry_ < max_dry && pool_->available() > 0 ? Mode::pool : Mode::own;
      }
      return false;
    case Mode::own: {
      std::byte* const memory = std::exchange(own_, nullptr);
      mode_ = Mode::pool;  // the next arm goes back to the pool if it has buffers
      dry_ = 0;
      if (result.res > 0) {
        lease = BufferLease::owning(memory, static_cast<std::uint32_t>(result.res));
        return true;
      }
      delete[] memory;
      return result.res == 0;  // 0: the peer's end of stream, an empty lease
    }
    case Mode::pool:
      break;
  }
  if (result.res < 0) return false;  // an error carries no buffer, and is no chunk
  Result<BufferLease> claimed = pool_->lease(result);
  if (!claimed) {
    // A literal: this may run where memory has run out (noexcept).
    coring::detail::log("net", coring::detail::LogLevel::error,
                        "RecvStream: a chunk names no buffer of its pool; its bytes are lost");
    return false;
  }
  lease = std::move(*claimed);
  dry_ = 0;
  if (unlimited_retry_) pool_->limit_refused_ = true;  // it was the limit
  return true;
}

// -ENOBUFS (multishot_policy::values says rearm_on_demand): the bytes wait in the
// socket; the next request polls for them, made now if the consumer waits, else when
// it next asks.
void RecvStream::starved(const IoResult& /*final*/) noexcept {
  if (dry_ < max_dry) ++dry_;
  mode_ = Mode::poll;
  if (consumer_waiting()) rearm();
}

Result<BufferLease> RecvStream::take_chunk() noexcept {
  BufferLease lease;
  if (take(lease)) return lease;
  if (end().res < 0) return fail(end().error());
  return BufferLease();  // end of stream
}

}  // namespace coring::net
