// RecvStream: the record of one multishot IORING_OP_RECV on a provided-buffer group.
//
// The loop hands it every CQE. A CQE with IORING_CQE_F_MORE carries a chunk, which is
// queued. A final CQE (no F_MORE) ends the request: with data (the kernel stopped it,
// e.g. for a full CQ: queue it and re-arm), with -ENOBUFS (the group ran dry: wait in the
// pool's list, re-arm when a buffer is back), with -ECANCELED after our own pause (re-arm
// when the consumer has caught up), with 0 (end of stream) or another error (the stream
// ends). Each chunk becomes a lease the moment its CQE is handed over, in the order the
// kernel posted it: under incremental consumption the pool works out where each piece
// starts from that order, which is the order of the CQEs of every stream on the pool —
// not the order in which consumers get round to taking their chunks.
#include "coring/net/recv_stream.hpp"

#include <algorithm>
#include <cerrno>
#include <new>
#include <utility>

#include "coring/ring/detail/log.hpp"
#include "coring/ring/prep.hpp"

namespace coring::net {

RecvStream::RecvStream(int fd, bool direct, BufferPool& pool, RecvStreamOptions options)
    : Operation(&prep_fn, &complete_fn),
      pool_(&pool),
      capacity_(std::max(options.bound, 1U) * 2),
      bound_(std::max(options.bound, 1U)),
      fd_(fd),
      msg_flags_(options.msg_flags),
      direct_(direct) {
  slots_ = std::make_unique<BufferLease[]>(capacity_);
  ++pool_->streams_;
}

RecvStream::~RecvStream() {
  assert(!in_flight() && "co_await close() on a RecvStream before destroying it");
  pool_->remove_starved(*this);  // first: a buffer released below must not wake this one
  (void)clear_woken();
  release_queue();
  --pool_->streams_;
}

void RecvStream::prep_fn(Operation& self, std::span<ring::Sqe* const> sqes) noexcept {
  auto& stream = static_cast<RecvStream&>(self);
  ring::prep_recv_multishot(*sqes[0], stream.fd_, stream.pool_->group_id(), stream.msg_flags_);
  detail::fix_file(*sqes[0], stream.direct_);
}

void RecvStream::complete_fn(Operation& self, const ring::Cqe& cqe, bool /*second*/) noexcept {
  auto& stream = static_cast<RecvStream&>(self);
  const IoResult result{cqe.res, cqe.flags};
  const bool final = !result.has_more();
  if ((cqe.flags & ring::cqe_flags::buffer) != 0 && stream.clear_woken() &&
      (cqe.flags & ring::cqe_flags::buf_more) != 0) {
    // The wake is used, but the buffer it was for stays in the ring with room left
    // (incremental consumption): the next waiting stream may take the rest.
    stream.pool_->wake_starved();
  }
  if (final && std::exchange(stream.cancel_sent_, false)) {
    // A cancel the loop had to defer (SQ full) must not outlive this request: it would
    // hit the next one, or touch the record after it is gone. Unlinking it here, on the
    // loop's thread while the loop is alive, also leaves the destructor nothing to do.
    stream.loop_->forget_cancel(stream);
  }
  if (stream.phase_ == Phase::closing || stream.loop_->draining()) {
    (void)stream.pool_->lease(result);  // nobody will take it: the buffer goes back
    if (final) stream.finish_close();
    return;
  }
  if (stream.overflowed_) {
    (void)stream.pool_->lease(result);  // past the lost chunk: its buffer goes back
    if (final) stream.end_with_enomem();
    stream.wake_consumer();
    return;
  }
  if (!final) {
    stream.push(result);
    if (stream.phase_ == Phase::armed && stream.size_ >= stream.bound_) stream.pause();
  } else {
    stream.on_final(result);
  }
  stream.wake_consumer();
}

void RecvStream::on_final(const IoResult& result) noexcept {
  if (result.res > 0) {
    // The kernel stopped the request after a chunk (a full CQ, say): keep it, go on.
    push(result);
    if (overflowed_) {
      end_with_enomem();
      return;
    }
    phase_ = Phase::paused;
    maybe_rearm();
    return;
  }
  if (result.res == -ENOBUFS) {
    ++starvations_;
    // Woken for a buffer that another request took: still the longest waiter.
    const bool was_woken = clear_woken();
    if (pool_->returned() != returned_at_arm_) {
      // A buffer came back while the ENOBUFS was on its way.
      phase_ = Phase::paused;
      maybe_rearm();
    } else {
      phase_ = Phase::starved;
      pool_->add_starved(*this, was_woken);
    }
    return;
  }
  if (result.res == -ECANCELED && phase_ == Phase::pausing) {
    phase_ = Phase::paused;
    maybe_rearm();
    return;
  }
  phase_ = Phase::ended;  // 0: end of stream; < 0: the error that ended it
  end_ = result;
  pass_wake();
}

void RecvStream::end_with_enomem() noexcept {
  phase_ = Phase::ended;
  end_ = IoResult{-ENOMEM, 0};
  pass_wake();
}

void RecvStream::arm() noexcept {
  phase_ = Phase::armed;
  returned_at_arm_ = pool_->returned();
  ++arms_;
  loop_->submit(*this);
}

void RecvStream::maybe_rearm() noexcept {
  if (phase_ == Phase::paused && size_ <= bound_ / 2 && !loop_->draining()) arm();
}

void RecvStream::pause() noexcept {
  // The cancel needs an SQE now; with the SQ full the next chunk tries again (deferring
  // it could let it hit a request re-armed after this one).
  if (loop_->ring().sq_space_left() == 0) return;
  phase_ = Phase::pausing;
  ++pauses_;
  cancel_sent_ = true;
  loop_->cancel(*this);
}

bool RecvStream::buffers_back() noexcept {
  if (phase_ != Phase::starved) return false;
  phase_ = Phase::paused;
  maybe_rearm();
  // Re-armed: the wake is this request's until it takes a buffer. Not re-armed (the
  // queue waits for its consumer; it re-arms when taken down): the next stream's.
  if (phase_ != Phase::armed) return false;
  pool_->watch_woken(*this);  // after arm(): the pool's NOP goes in behind our SQE
  return true;
}

bool RecvStream::clear_woken() noexcept {
  if (!woken_link.linked()) return false;
  pool_->unwatch_woken(*this);
  return true;
}

void RecvStream::pass_wake() noexcept {
  if (clear_woken()) pool_->wake_starved();
}

bool RecvStream::ready_now() noexcept {
  if (phase_ == Phase::unarmed) {
    loop_ = EventLoop::current();
    assert(loop_ != nullptr && "a RecvStream starts inside a running EventLoop");
    arm();
  }
  return size_ > 0 || phase_ == Phase::ended || phase_ == Phase::closed;
}

Result<BufferLease> RecvStream::take() noexcept {
  if (size_ > 0) {
    BufferLease lease = pop();
    maybe_rearm();
    return lease;
  }
  if (phase_ == Phase::closed) return fail(std::make_error_code(std::errc::operation_canceled));
  if (end_.res < 0) return fail(end_.error());
  return BufferLease();  // end of stream
}

bool RecvStream::begin_close() noexcept {
  if (phase_ == Phase::closed) return true;
  if (!in_flight()) {
    finish_close();
    return true;
  }
  const bool cancel_on_its_way = phase_ == Phase::pausing;
  phase_ = Phase::closing;
  if (!cancel_on_its_way) {
    cancel_sent_ = true;
    loop_->cancel(*this);  // completes here, synchronously, if still waiting for room
  }
  return !in_flight();
}

void RecvStream::finish_close() noexcept {
  pool_->remove_starved(*this);  // first: a buffer released below must not re-arm this one
  release_queue();
  pass_wake();  // closed before its request took the buffer it was woken for
  phase_ = Phase::closed;
  wake_consumer();
  if (closer_) loop_->schedule(std::exchange(closer_, {}));
}

void RecvStream::wake_consumer() noexcept {
  if (waiter_ && (size_ > 0 || phase_ == Phase::ended || phase_ == Phase::closed)) {
    loop_->schedule(std::exchange(waiter_, {}));
  }
}

// --- The queue: a ring buffer of leases ----------------------------------------------

void RecvStream::push(const IoResult& result) noexcept {
  // The piece is claimed now, in CQE order (see the top of this file).
  Result<BufferLease> lease = pool_->lease(result);
  if (!lease) {
    coring::detail::log("net", coring::detail::LogLevel::error,
                        "RecvStream: a chunk without a valid buffer (" + lease.error().message() +
                            "); its bytes are lost");
    return;
  }
  if (size_ == capacity_) {
    // The kernel outran a pause: double the ring, keeping the order.
    const std::uint32_t bigger = capacity_ * 2;
    std::unique_ptr<BufferLease[]> slots(new (std::nothrow) BufferLease[bigger]);
    if (!slots) {
      // The lease goes, and its buffer with it; the stream ends with ENOMEM once the
      // chunks before it are taken (the request is cancelled if still armed).
      coring::detail::log("net", coring::detail::LogLevel::error,
                          "RecvStream: out of memory queueing a chunk; the stream ends (ENOMEM)");
      overflowed_ = true;
      if (phase_ == Phase::armed) {
        phase_ = Phase::pausing;
        cancel_sent_ = true;
        loop_->cancel(*this);
      }
      return;
    }
    for (std::uint32_t i = 0; i < size_; ++i) {
      slots[i] = std::move(slots_[(head_ + i) % capacity_]);
    }
    slots_ = std::move(slots);
    capacity_ = bigger;
    head_ = 0;
  }
  slots_[(head_ + size_) % capacity_] = std::move(lease.value());
  ++size_;
}

BufferLease RecvStream::pop() noexcept {
  BufferLease lease = std::move(slots_[head_]);
  head_ = (head_ + 1) % capacity_;
  --size_;
  return lease;
}

void RecvStream::release_queue() noexcept {
  while (size_ > 0) (void)pop();  // each lease hands its buffer back as it goes
}

}  // namespace coring::net
