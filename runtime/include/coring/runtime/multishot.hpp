// Multishot: one request, many completions, and a bounded queue to the consumer.
//
//   Multishot accepts([fd](ring::Sqe& sqe) {
//     ring::prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC);
//   }, {.bound = 16, .fd_results = true});
//   for (;;) {
//     IoResult r = co_await accepts.next();
//     if (!r) break;  // the stream ended; r.error() says why
//     serve(r.res);
//   }
//   co_await accepts.close();
//
// The record is an Operation whose one SQE keeps posting CQEs while
// IORING_CQE_F_MORE is set. The loop hands each CQE to it; it queues the result in a
// ring buffer allocated at construction, and next() takes results in the order the
// kernel posted them, errors included.
//
// Backpressure. When `bound` results wait, the record cancels its request so that
// the kernel stops producing. The kernel may post more before it sees the cancel — a
// multishot accept takes a listener's whole backlog at once, up to what the CQ holds
// — and those are queued too, never dropped: the ring buffer has `slack` slots beyond
// the bound for them, and a burst larger than that grows it by doubling (rare,
// amortised, and limited by the CQ's size, since the kernel ends a multishot request
// rather than overflow the CQ with it). A slack as large as the CQ would make growth
// impossible but cost every record — one per connection for a recv — a CQ's worth of
// slots for a burst only a paused stream meets. Once the consumer has taken the queue
// down to half the bound the record re-arms; re-arming at bound - 1 would cancel and
// re-arm on every result of a busy stream.
//
// Re-arming. The kernel also ends a multishot request on its own: with a value when
// the CQ was full, with -ENOBUFS when a provided-buffer ring ran dry, with an error.
// A MultishotPolicy decides what the stream does then (see multishot_policy).
//
// Closing. close(), the stop token and the loop's destruction cancel the request and
// wait for its final CQE. Results nobody will take — queued, or arriving until that
// CQE — are released: an fd is closed (fd_results), a direct descriptor's slot is
// cleared (direct_fd_results), a provided buffer is put back
// (buffer_group). A record must not be destroyed while its request is in flight:
// close() it first. A stream that has ended or is paused, or one its loop's destruction
// drained, needs nothing more.
//
// Single consumer, loop thread only; the stop token may fire on any thread.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <stop_token>
#include <system_error>
#include <type_traits>
#include <utility>

#include "coring/ring/abi.hpp"
#include "coring/ring/buffer_ring.hpp"
#include "coring/ring/detail/log.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/operation.hpp"

namespace coring {

// What a stream does when the kernel ends its request (a final CQE, without F_MORE)
// for a reason other than the record's own cancel.
enum class MultishotAction : std::uint8_t {
  // Deliver the result and re-arm (at once, or once the queue is drained to half the bound).
  rearm,
  // Deliver the result; the stream is over and next() keeps returning its end.
  end,
  // For -ENOBUFS: wait until buffers are back, then re-arm. The record cannot see
  // buffers come back, so it re-arms when the consumer has taken every result and asks
  // for more (put-before-next returns them all), or when rearm() is called. The result
  // is delivered only if the request produced nothing: then the consumer holds every
  // buffer and waits for data that cannot come, and must hear of it.
  rearm_on_demand,
};

using MultishotPolicy = MultishotAction (*)(const IoResult& final) noexcept;

namespace multishot_policy {

// For counts and masks (recv, read, poll): a positive final value means the kernel
// ended the request itself (a full CQ) and the stream goes on; 0 is a recv's end of
// file and ends it; -ENOBUFS waits for buffers; any other error ends the stream.
inline MultishotAction values(const IoResult& final) noexcept {
  if (final.res > 0) return MultishotAction::rearm;
  if (final.res == -ENOBUFS) return MultishotAction::rearm_on_demand;
  return MultishotAction::end;
}

// For fds (accept): every fd, 0 included, is a value and the stream goes on; an
// error ends it (-EMFILE too: re-arming at once would spin until an fd is freed; the
// consumer closes some and calls rearm()).
inline MultishotAction fds(const IoResult& final) noexcept {
  return final.res >= 0 ? MultishotAction::rearm : MultishotAction::end;
}

}  // namespace multishot_policy

struct MultishotOptions {
  // Results queued before the record pauses its request (at least 1).
  std::uint32_t bound = 64;
  // Extra slots for results the kernel posts after a pause was requested; 0: as many as
  // the bound. More are absorbed by growing the queue, never dropped.
  std::uint32_t slack = 0;
  // Results >= 0 are fds the record owns until next() hands them out: closed when
  // nobody will take them.
  bool fd_results = false;
  // Results >= 0 are direct descriptors (slots of the loop's registered file table,
  // as a direct accept returns) the record owns until next() hands them out: the slot
  // is cleared, which closes the file, when nobody will take them.
  bool direct_fd_results = false;
  // Results carry buffers of this group, put back when nobody will take them. The group
  // must outlive the record.
  ring::BufferGroup* buffer_group = nullptr;
  // Unset: multishot_policy::fds with fd_results or direct_fd_results,
  // multishot_policy::values otherwise.
  MultishotPolicy policy = nullptr;
};
// Options are built as braced temporaries, also inside co_await expressions, where
// g++ 12 destroys such a temporary twice: every public options struct is trivially
// destructible (a stop token is a parameter of its own, never a member).
static_assert(std::is_trivially_destructible_v<MultishotOptions>);

// The record of one multishot request whose SQE `Prep` fills (any callable taking
// ring::Sqe&; called again on every re-arm, so what it points to must stay valid).
// It lives in the consumer's frame or in an object such as a listener, and never moves.
template <typename Prep>
class Multishot final : public detail::AwaitableOp {
 public:
  // `stop` closes the stream when triggered (any thread): next() then returns -ECANCELED.
  explicit Multishot(Prep prep, MultishotOptions options = {}, std::stop_token stop = {})
      : AwaitableOp(&prep_fn, &complete_fn),
        prep_(std::move(prep)),
        policy_(options.policy != nullptr                         ? options.policy
                : options.fd_results || options.direct_fd_results ? &multishot_policy::fds
                                                                  : &multishot_policy::values),
        buffer_group_(options.buffer_group),
        bound_(options.bound),
        fd_results_(options.fd_results),
        direct_fd_results_(options.direct_fd_results) {
    if (bound_ == 0 || bound_ > max_bound) {
      throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                              "Multishot: the queue bound must be between 1 and 2^20");
    }
    capacity_ = bound_ + (options.slack != 0 ? std::min(options.slack, max_bound) : bound_);
    slots_ = std::make_unique<IoResult[]>(capacity_);
    stop_token_ = std::move(stop);
  }
  Multishot(Multishot&&) = delete;
  // A record is destroyed only once the kernel is done with it: after close(), after
  // the stream ended, or after its loop drained it.
  ~Multishot() {
    assert(!in_flight() && "co_await close() on a Multishot before destroying it");
    release_queue();
    // close() may have left a cancel deferred in the loop (SQ full) that the final CQE
    // overtook. (A closed record has let go of its loop already: it may outlive it.)
    if (cancelled_) loop_->forget_cancel(*this);
  }

  // co_await next(): the next result, in the order the kernel posted it. Starts the
  // request on first use. Once the stream is over it returns the stream's end again
  // and again: the error that ended it, 0 for a value stream that ended with a value
  // (a recv's end of file), -ECANCELED once closed or stopped.
  class [[nodiscard]] NextAwaiter {
   public:
    explicit NextAwaiter(Multishot& record) noexcept : record_(&record) {}
    bool await_ready() const noexcept { return record_->ready_now(); }
    void await_suspend(std::coroutine_handle<> waiter) const noexcept {
      assert(!record_->waiter_ && "a Multishot has a single consumer");
      // Only the final CQE of a request in flight, or its next result, wakes a consumer.
      assert(record_->in_flight());
      record_->waiter_ = waiter;
    }
    IoResult await_resume() const noexcept { return record_->take(); }

   private:
    Multishot* record_;
  };
  NextAwaiter next() noexcept { return NextAwaiter(*this); }

  // co_await close(): cancels the request and resumes once its final CQE is reaped;
  // queued results and any that still arrive are released. next() then returns
  // -ECANCELED. Closing a closed record does nothing.
  class [[nodiscard]] CloseAwaiter {
   public:
    explicit CloseAwaiter(Multishot& record) noexcept : record_(&record) {}
    bool await_ready() const noexcept { return record_->begin_close(); }
    void await_suspend(std::coroutine_handle<> waiter) const noexcept {
      assert(!record_->closer_ && "close() awaited twice at once");
      record_->closer_ = waiter;
    }
    void await_resume() const noexcept {}

   private:
    Multishot* record_;
  };
  CloseAwaiter close() noexcept { return CloseAwaiter(*this); }

  // Arms the request now (next() does so on first use): results queue from here on.
  // Inside a running loop.
  void start() noexcept {
    if (phase_ != Phase::unarmed) return;
    loop_ = EventLoop::current();
    assert(loop_ != nullptr && "a Multishot starts inside a running EventLoop");
    if (stop_token_.stop_possible() && !stop_token_.stop_requested()) {
      stop_callback_.emplace(stop_token_, CancelOnStop{this});
    }
    arm();
  }

  // Re-arms a stream that waits for buffers (rearm_on_demand) or that an error ended,
  // e.g. after putting provided buffers back. Does nothing to an armed or closed stream.
  void rearm() noexcept {
    if (phase_ != Phase::starved && phase_ != Phase::ended) return;
    phase_ = Phase::paused;
    maybe_rearm();
  }

  // Results waiting in the queue.
  [[nodiscard]] std::uint32_t size() const noexcept { return size_; }
  [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] bool closed() const noexcept { return phase_ == Phase::closed; }
  // For tests and diagnostics: SQEs submitted (the first arm and every re-arm), pauses
  // for backpressure, and requests ended for lack of buffers.
  [[nodiscard]] std::uint64_t arms() const noexcept { return arms_; }
  [[nodiscard]] std::uint64_t pauses() const noexcept { return pauses_; }
  [[nodiscard]] std::uint64_t starvations() const noexcept { return starvations_; }

 private:
  static constexpr std::uint32_t max_bound = 1U << 20;

  enum class Phase : std::uint8_t {
    unarmed,  // not started
    armed,    // the request is in the kernel (or waits in the loop for room)
    pausing,  // the queue reached the bound: cancel sent, final CQE awaited
    paused,   // not in flight; re-arms once the queue is drained to half the bound
    starved,  // ended by -ENOBUFS; re-arms on demand
    ended,    // ended by the policy; result_ holds the stream's end
    closing,  // close(): cancel sent, final CQE awaited
    closed,   // result_ is -ECANCELED
  };

  static void prep_fn(Operation& self, std::span<ring::Sqe* const> sqes) noexcept {
    static_cast<Multishot&>(self).prep_(*sqes[0]);
  }

  static void complete_fn(Operation& self, const ring::Cqe& cqe, bool /*second*/) noexcept {
    static_cast<Multishot&>(self).on_cqe(IoResult{cqe.res, cqe.flags});
  }

  void on_cqe(const IoResult& result) noexcept {
    const bool final = !result.has_more();
    if (closing_wanted()) {
      release(result);
      if (final) close_now();
      return;
    }
    if (final) {
      on_final(result);
    } else {
      push(result);
      ++produced_;
      if (phase_ == Phase::armed && size_ >= bound_) pause();
    }
    wake_consumer();
  }

  void on_final(const IoResult& result) noexcept {
    const bool our_pause = phase_ == Phase::pausing && result.res == -ECANCELED;
    if (!our_pause) {
      switch (policy_(result)) {
        case MultishotAction::rearm:
          push(result);
          break;
        case MultishotAction::end:
          push(result);
          end(result);
          return;
        case MultishotAction::rearm_on_demand:
          ++starvations_;
          if (produced_ == 0) push(result);
          phase_ = Phase::starved;
          // A consumer waiting on an empty queue has taken, and returned, everything.
          if (waiter_ && size_ == 0) arm();
          return;
      }
    }
    phase_ = Phase::paused;
    maybe_rearm();
  }

  // The stream's end, returned by next() once the queue is empty. A value end is 0 (a
  // recv's end of file), never a value already handed out: for fd streams that would
  // be an fd the consumer owns.
  void end(const IoResult& result) noexcept {
    phase_ = Phase::ended;
    result_ = IoResult{result.res < 0                      ? result.res
                       : fd_results_ || direct_fd_results_ ? -ECANCELED
                                                           : 0,
                       0};
  }

  void arm() noexcept {
    // Never after a stop: its cancel may already have passed this record by.
    if (stop_token_.stop_requested()) {
      close_now();
      return;
    }
    phase_ = Phase::armed;
    produced_ = 0;
    ++arms_;
    loop_->submit(*this);
  }

  void maybe_rearm() noexcept {
    if (phase_ == Phase::paused && size_ <= bound_ / 2) arm();
  }

  void pause() noexcept {
    // The cancel needs an SQE now. With the SQ full, loop.cancel() would defer it to a
    // later turn, where it could hit the request re-armed after this one; the next CQE
    // tries again instead, and the slack holds what arrives meanwhile.
    if (loop_->ring().sq_space_left() == 0) return;
    phase_ = Phase::pausing;
    ++pauses_;
    loop_->cancel(*this);
  }

  // Whether next() can complete at once; starts, closes or re-arms the stream as asked.
  bool ready_now() noexcept {
    if (phase_ == Phase::unarmed) start();
    if (phase_ == Phase::closing) return false;
    if (phase_ != Phase::closed && stop_token_.stop_requested()) {
      if (!in_flight()) {
        close_now();
        return true;
      }
      release_queue();  // the stop's cancel is on its way: wait for the final CQE
      return false;
    }
    if (size_ > 0 || terminal()) return true;
    // paused cannot be empty (maybe_rearm runs after every take); starved re-arms when
    // the consumer has taken everything and asks for more.
    if (phase_ == Phase::starved || phase_ == Phase::paused) arm();
    return terminal();
  }

  IoResult take() noexcept {
    if (size_ == 0) return result_;
    const IoResult result = pop();
    maybe_rearm();
    return result;
  }

  // Returns true when the record is closed already (no need to wait).
  bool begin_close() noexcept {
    if (phase_ == Phase::closed) return true;
    if (!in_flight()) {
      close_now();
      return true;
    }
    const bool cancel_on_its_way = phase_ == Phase::pausing;
    phase_ = Phase::closing;
    if (!cancel_on_its_way) {
      cancelled_ = true;
      loop_->cancel(*this);  // completes here, synchronously, if still waiting for room
    }
    return !in_flight();
  }

  void close_now() noexcept {
    release_queue();
    phase_ = Phase::closed;
    // Closed for good: let go of the loop now, on its thread, while it is alive. The
    // record may be destroyed after the loop (a listener closed in a loop's task and
    // destroyed by main after the Runtime), and a stop that comes later must reach no one.
    if (stop_callback_) {
      stop_callback_.reset();  // waits for a callback running on another thread
      loop_->forget_cancel(*this);
    } else if (cancelled_) {
      loop_->forget_cancel(*this);
    }
    cancelled_ = false;
    result_ = IoResult{-ECANCELED, 0, Outcome::cancelled};
    wake_consumer();
    if (closer_) loop_->schedule(std::exchange(closer_, {}));
  }

  [[nodiscard]] bool closing_wanted() const noexcept {
    return phase_ == Phase::closing || stop_token_.stop_requested() || loop_->draining();
  }
  [[nodiscard]] bool terminal() const noexcept {
    return phase_ == Phase::ended || phase_ == Phase::closed;
  }

  void wake_consumer() noexcept {
    if (waiter_ && (size_ > 0 || terminal())) loop_->schedule(std::exchange(waiter_, {}));
  }

  // --- The queue: a ring buffer of results -------------------------------------------
  void push(const IoResult& result) noexcept {
    if (size_ == capacity_ && !grow()) {
      detail::log("runtime", detail::LogLevel::error,
                  "Multishot: out of memory queueing a result; it was released");
      release(result);
      return;
    }
    std::uint32_t index = head_ + size_;
    if (index >= capacity_) index -= capacity_;
    slots_[index] = result;
    ++size_;
  }

  IoResult pop() noexcept {
    const IoResult result = slots_[head_];
    if (++head_ == capacity_) head_ = 0;
    --size_;
    return result;
  }

  // The kernel outran a pause by more than the slack: double the ring, keeping order.
  bool grow() noexcept {
    const std::uint32_t bigger = capacity_ * 2;
    std::unique_ptr<IoResult[]> slots(new (std::nothrow) IoResult[bigger]);
    if (!slots) return false;
    for (std::uint32_t i = 0; i < size_; ++i) {
      std::uint32_t index = head_ + i;
      if (index >= capacity_) index -= capacity_;
      slots[i] = slots_[index];
    }
    slots_ = std::move(slots);
    capacity_ = bigger;
    head_ = 0;
    return true;
  }

  // Gives back what a result nobody will take holds: its fd, its provided buffer.
  void release(const IoResult& result) const noexcept {
    if (fd_results_ && result.res >= 0) ::close(result.res);
    if (direct_fd_results_ && result.res >= 0) {
      // Synchronous, so that it needs no SQE: this runs where the SQ may be full. Only
      // on the loop's own thread while it runs: a record destroyed elsewhere, or after
      // its loop (the table then goes with the ring), leaves the slot.
      const int none = -1;
      if (EventLoop::current() != loop_) {
        detail::log("runtime", detail::LogLevel::warn,
                    "Multishot: a direct descriptor nobody took is released off its loop; "
                    "its slot stays taken until the loop's ring closes");
      } else if (!loop_->ring().register_files_update(static_cast<std::uint32_t>(result.res),
                                                      std::span<const int>(&none, 1))) {
        detail::log("runtime", detail::LogLevel::error,
                    "Multishot: could not clear the slot of a direct descriptor nobody took");
      }
    }
    if (buffer_group_ != nullptr && (result.flags & ring::cqe_flags::buffer) != 0) {
      if (!buffer_group_->put(ring::Cqe{0, result.res, result.flags})) {
        detail::log("runtime", detail::LogLevel::error,
                    "Multishot: a released result names no buffer of its group");
      }
    }
  }

  void release_queue() noexcept {
    while (size_ > 0) release(pop());
  }

  Prep prep_;
  MultishotPolicy policy_;
  ring::BufferGroup* buffer_group_;
  std::unique_ptr<IoResult[]> slots_;
  std::uint32_t bound_;
  std::uint32_t capacity_ = 0;
  std::uint32_t head_ = 0;
  std::uint32_t size_ = 0;
  std::uint64_t produced_ = 0;  // results with F_MORE since the last arm
  std::uint64_t arms_ = 0;
  std::uint64_t pauses_ = 0;
  std::uint64_t starvations_ = 0;
  std::coroutine_handle<> closer_;
  IoResult result_;  // the stream's end, once ended or closed
  Phase phase_ = Phase::unarmed;
  bool fd_results_;
  bool direct_fd_results_;
  bool cancelled_ = false;  // close() sent a cancel through the loop
};

}  // namespace coring
