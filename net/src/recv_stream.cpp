// RecvStream: the hooks that make the multishot core a receive into a BufferPool.
#include "coring/net/recv_stream.hpp"

#include <utility>

#include "coring/ring/detail/log.hpp"
#include "coring/ring/prep.hpp"

namespace coring::net {

RecvStream::RecvStream(int fd, bool direct, BufferPool& pool, RecvStreamOptions options,
                       std::stop_token stop)
    : Core(options.bound, 0, &multishot_policy::values, std::move(stop), /*lazy=*/true),
      BufferWaiter(&buffers_back),
      pool_(&pool),
      fd_(fd),
      msg_flags_(options.msg_flags),
      direct_(direct) {
  pool_->waiters().join();
}

RecvStream::~RecvStream() {
  pool_->waiters().leave(*this);  // first: a buffer released below must not wake this one
  retire();
}

void RecvStream::prep(ring::Sqe& sqe) const noexcept {
  ring::prep_recv_multishot(sqe, fd_, pool_->group_id(), msg_flags_);
  if (direct_) ring::use_fixed_file(sqe);
}

bool RecvStream::claim(const IoResult& result, BufferLease& lease) noexcept {
  if ((result.flags & ring::cqe_flags::buffer) != 0) {
    pool_->waiters().took_buffer(*this, (result.flags & ring::cqe_flags::buf_more) != 0);
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
  return true;
}

// -ENOBUFS (multishot_policy::values says rearm_on_demand): wait for a returned buffer,
// or re-arm at once if one came back while the ending was on its way.
void RecvStream::starved(const IoResult& /*final*/) noexcept {
  if (!pool_->waiters().starve(*this)) rearm();
}

bool RecvStream::buffers_back(detail::BufferWaiter& self) noexcept {
  auto& stream = static_cast<RecvStream&>(self);
  if (stream.phase() != Phase::starved) return false;
  // Not re-armed (the queue waits for its consumer; it re-arms when taken down): the
  // wake is the next stream's.
  stream.rearm();
  return stream.phase() == Phase::armed;
}

Result<BufferLease> RecvStream::take_chunk() noexcept {
  BufferLease lease;
  if (take(lease)) return lease;
  if (end().res < 0) return fail(end().error());
  return BufferLease();  // end of stream
}

}  // namespace coring::net
