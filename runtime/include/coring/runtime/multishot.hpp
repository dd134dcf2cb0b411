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
// ring buffer that grows as results come, and next() takes results in the order the
// kernel posted them, errors included.
//
// Backpressure, re-arming, the kernel's own endings (MultishotPolicy) and closing are
// the core's (detail::MultishotCore below), shared with net::RecvStream.
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
#include <optional>
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

namespace detail {

// The machinery of every multishot stream: the phases of its request, the bounded queue
// of results, pause and re-arm, close, and the stop token. Multishot (below) and
// net::RecvStream are thin uses of it; what differs between them is a handful of hooks
// that `Derived` provides (all noexcept, called on the loop's thread):
//
//   void prep(ring::Sqe&)                  fills the request's SQE, on every arm
//   bool armed()                           the request is about to go to the loop;
//                                          false: no memory for it (the stream ends
//                                          with -ENOMEM instead)
//   bool claim(const IoResult&, Item&)     turns a CQE's result into a queued item, at
//                                          CQE time and in CQE order (a provided buffer
//                                          is taken then); false: the result is unusable
//                                          (the hook has logged why) and is dropped
//   void release(Item&&)                   gives back what an item nobody will take holds
//   bool refused(const IoResult& final)    the request ended with `final` (not the
//                                          record's own cancel): true if the stream
//                                          takes it as a refusal of how it was armed
//                                          and will arm differently (it re-arms; the
//                                          result is not delivered)
//   void starved(const IoResult& final)    the request ended with a rearm_on_demand
//                                          verdict; the stream is in phase `starved`
//   void finished()                        the stream ended or closed for good
//   static constexpr bool rearm_starved_on_demand
//                                          whether next() on an empty queue re-arms a
//                                          starved stream (else only rearm() does)
//   std::int32_t value_end()               what next() returns once a stream ended with
//                                          a value: 0, or -ECANCELED where a value is an
//                                          fd the consumer already owns
//
// Phases, and what moves a stream between them:
//
//   unarmed --start()/next()--> armed --bound reached: cancel--> pausing
//   armed --final CQE, verdict rearm--> paused --queue at half the bound--> armed
//   pausing --final CQE--> paused
//   armed --final CQE, rearm_on_demand--> starved --rearm() (or next())--> armed
//   armed --final CQE, verdict end--> ended --rearm()--> armed
//   any --close(), stop, loop destruction--> closing --final CQE--> closed
//
// Queue. A ring buffer of bound + slack slots, made at construction; or, for a lazy
// stream (RecvStream: one per connection, mostly idle), one slot held in the record
// itself, then 4 on the heap once two results wait, doubled when full, so that an idle
// stream, and one whose consumer keeps up, allocates nothing. When `bound`
// results wait, the stream cancels its request so that the kernel stops producing, and
// makes room for `slack` more: what the kernel posts before it sees the cancel (a
// multishot accept takes a whole backlog at once) is queued too, growing the ring
// further if it must — rare, and limited by the CQ's size, since the kernel ends a
// multishot request rather than overflow the CQ. The stream re-arms once the consumer
// has taken the queue down to half the bound, so a busy stream does not cancel and
// re-arm on every result. If the ring cannot grow (no memory), the request is
// cancelled, later results are released, and the stream ends with -ENOMEM after the
// results before the lost one: nothing is dropped silently.
//
// Closing. close(), the stop token and the loop's destruction cancel the request and
// wait for its final CQE; results nobody will take are released. A stream is destroyed
// only once its request is not in flight (closed, ended, paused, or drained).
//
// The stop token, from any thread, closes the stream: the request in flight is
// cancelled, and a stream between requests (paused, starved) is closed, at once on the
// loop's thread, at the loop's next turn from another.
template <typename Derived, typename Item>
class MultishotCore : public AwaitableOp {
 public:
  MultishotCore(MultishotCore&&) = delete;

  // co_await close(): cancels the request and resumes once its final CQE is reaped;
  // queued results and any that still arrive are released. next() then returns
  // -ECANCELED. Closing a closed stream does nothing.
  class [[nodiscard]] CloseAwaiter {
   public:
    explicit CloseAwaiter(MultishotCore& core) noexcept : core_(&core) {}
    bool await_ready() const noexcept { return core_->begin_close(); }
    void await_suspend(std::coroutine_handle<> waiter) const noexcept {
      assert(!core_->closer_ && "close() awaited twice at once");
      core_->closer_ = waiter;
    }
    void await_resume() const noexcept {}

   private:
    MultishotCore* core_;
  };
  CloseAwaiter close() noexcept { return CloseAwaiter(*this); }

  // Arms the request now (next() does so on first use): results queue from here on.
  // Inside a running loop.
  void start() noexcept {
    if (phase_ != Phase::unarmed) return;
    loop_ = EventLoop::current();
    assert(loop_ != nullptr && "a multishot stream starts inside a running EventLoop");
    arm();
  }

  // Results waiting in the queue, and the room it has before it must grow (0 for a
  // lazy stream that has had no result yet).
  [[nodiscard]] std::uint32_t size() const noexcept { return size_; }
  [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] bool closed() const noexcept { return phase_ == Phase::closed; }
  // For tests and diagnostics: SQEs submitted (the first arm and every re-arm), pauses
  // (the request stopped with the queue at the bound), and requests ended for lack of
  // buffers.
  [[nodiscard]] std::uint64_t arms() const noexcept { return arms_; }
  [[nodiscard]] std::uint64_t pauses() const noexcept { return pauses_; }
  [[nodiscard]] std::uint64_t starvations() const noexcept { return starvations_; }

 protected:
  static constexpr std::uint32_t max_bound = 1U << 20;
  // The ring's size when it first grows beyond the one slot held inline.
  static constexpr std::uint32_t first_slots = 4;

  enum class Phase : std::uint8_t {
    unarmed,  // not started
    armed,    // the request is in the kernel (or waits in the loop for room)
    pausing,  // the queue reached the bound: cancel sent, final CQE awaited
    paused,   // not in flight; re-arms once the queue is drained to half the bound
    starved,  // ended for lack of buffers (rearm_on_demand)
    ended,    // ended by the verdict; end_ holds the stream's end
    closing,  // close(): cancel sent, final CQE awaited
    closed,   // end_ is -ECANCELED
  };

  // Throws std::system_error (invalid_argument) unless 1 <= bound <= 2^20.
  // `lazy`: the queue is made at the first result (see Queue above); otherwise here
  // (std::bad_alloc), so that the first burst allocates nothing on the CQE path.
  MultishotCore(std::uint32_t bound, std::uint32_t slack, MultishotPolicy policy,
                std::stop_token stop, bool lazy)
      : AwaitableOp(&prep_fn, &complete_fn), policy_(policy), bound_(bound) {
    hear_idle_cancel();  // a stop reaches a stream between requests
    if (bound_ == 0 || bound_ > max_bound) {
      throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                              "multishot stream: the queue bound must be between 1 and 2^20");
    }
    paused_room_ = bound_ + (slack != 0 ? std::min(slack, max_bound) : bound_);
    if (!lazy && !grow(paused_room_)) throw std::bad_alloc();
    // The stop's callback is made at the first arm, in memory taken now: an arm then
    // needs no memory for it (std::bad_alloc here otherwise).
    if (stop.stop_possible()) stop_storage_ = ::operator new(sizeof(StopCallback));
    stop_token_ = std::move(stop);
  }
  ~MultishotCore() {
    drop_stop_callback();
    ::operator delete(stop_storage_);
  }

  // For Derived's destructor, which runs while its hooks still work: releases what is
  // queued. A stream is destroyed only once the kernel is done with it.
  void retire() noexcept {
    assert(!in_flight() && "co_await close() on a multishot stream before destroying it");
    release_queue();
    // A cancel the loop deferred (SQ full, or a stop from another thread) must not
    // outlive the stream. (A closed stream has let go of its loop already: it may
    // outlive it.)
    if (stop_stream_) {
      drop_stop_callback();  // waits for a callback running on another thread
      cancel_sent_ = true;
    }
    if (cancel_sent_) LoopOps(*loop_).forget_cancel(*this);
  }

  // --- For Derived's next() awaiter ----------------------------------------------------
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
    // paused cannot be empty (maybe_rearm runs after every take) unless the loop drains.
    if (phase_ == Phase::paused || (phase_ == Phase::starved && Derived::rearm_starved_on_demand)) {
      arm();
    }
    return terminal();
  }
  void wait(std::coroutine_handle<> consumer) noexcept {
    assert(!waiter_ && "a multishot stream has a single consumer");
    waiter_ = consumer;
  }
  // The next queued item into `out`, or false once the stream is over: end() then says how.
  bool take(Item& out) noexcept {
    if (size_ == 0) return false;
    out = pop();
    maybe_rearm();
    return true;
  }
  [[nodiscard]] const IoResult& end() const noexcept { return end_; }

  // --- For Derived's hooks ---------------------------------------------------------------
  // Re-arms a starved or ended stream (e.g. once buffers are back); nothing otherwise.
  void rearm() noexcept {
    if (phase_ != Phase::starved && phase_ != Phase::ended) return;
    phase_ = Phase::paused;
    maybe_rearm();
  }
  void push(const IoResult& result) noexcept {
    Item item{};
    if (!static_cast<Derived&>(*this).claim(result, item)) return;
    if (overflowed_ ||
        (size_ == capacity_ && !grow(capacity_ == 0   ? 1
                                     : capacity_ == 1 ? std::min(first_slots, paused_room_)
                                                      : capacity_ * 2))) {
      overflow();
      static_cast<Derived&>(*this).release(std::move(item));
      return;
    }
    std::uint32_t index = head_ + size_;
    if (index >= capacity_) index -= capacity_;
    storage()[index] = std::move(item);
    ++size_;
  }
  [[nodiscard]] Phase phase() const noexcept { return phase_; }
  [[nodiscard]] std::uint32_t bound() const noexcept { return bound_; }
  [[nodiscard]] bool consumer_waiting() const noexcept { return static_cast<bool>(waiter_); }
  // Results with F_MORE since the request was last armed.
  [[nodiscard]] std::uint64_t produced() const noexcept { return produced_; }
  [[nodiscard]] EventLoop& loop() const noexcept { return *loop_; }

 private:
  // The stop token's callback cancels the stream through the loop: the request in
  // flight, or, between requests, the stream itself (complete_fn's idle cancel closes
  // it) — at once on the loop's thread, at its next turn from another.
  struct StopStream {
    MultishotCore* core;
    void operator()() const noexcept {
      EventLoop& loop = *core->loop_;
      if (loop.on_loop_thread()) {
        // Run by arm() registering it, for a stop that raced it: arm() sees the stop.
        if (core->registering_) return;
        core->cancel_sent_ = true;  // the cancel may be deferred (SQ full)
      }
      LoopOps(loop).request_cancel(*core);
    }
  };

  using StopCallback = std::stop_callback<StopStream>;
  // Unregisters the stop's callback (waiting for one running on another thread).
  void drop_stop_callback() noexcept {
    if (stop_stream_ == nullptr) return;
    std::exchange(stop_stream_, nullptr)->~StopCallback();
  }

  static void prep_fn(Operation& self, std::span<ring::Sqe* const> sqes) noexcept {
    static_cast<Derived&>(self).prep(*sqes[0]);
  }

  static void complete_fn(Operation& self, const ring::Cqe& cqe, bool idle_cancel) noexcept {
    auto& core = static_cast<MultishotCore&>(self);
    if (!idle_cancel) {
      core.on_cqe(IoResult{cqe.res, cqe.flags});
    } else if (core.stop_token_.stop_requested() && core.phase_ != Phase::closed) {
      core.close_now();  // a stop, with no request in flight
    }
  }

  void on_cqe(const IoResult& result) noexcept {
    const bool final = !result.has_more();
    if (final && std::exchange(cancel_sent_, false)) {
      // A cancel the loop had to defer (SQ full) must not outlive this request: it would
      // hit the next one, or touch the stream after it is gone.
      LoopOps(*loop_).forget_cancel(*this);
    }
    if (closing_wanted()) {
      drop(result);
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
    if (overflowed_) {
      drop(result);
      end_with(IoResult{-ENOMEM, 0});
      return;
    }
    const bool our_pause = phase_ == Phase::pausing && result.res == -ECANCELED;
    if (!our_pause && static_cast<Derived&>(*this).refused(result)) {
      phase_ = Phase::paused;
      maybe_rearm();
      return;
    }
    if (!our_pause) {
      switch (policy_(result)) {
        case MultishotAction::rearm:
          push(result);
          // The kernel stopped where a full queue would have paused the request (a
          // limited request reached its limit): the same pause, without a cancel.
          if (size_ >= bound_) ++pauses_;
          break;
        case MultishotAction::end:
          // A value is delivered first (an fd is the consumer's); an error is the end.
          if (result.res >= 0) push(result);
          if (overflowed_) break;
          end_with(result.res < 0 ? result : IoResult{static_cast<Derived&>(*this).value_end(), 0});
          return;
        case MultishotAction::rearm_on_demand:
          ++starvations_;
          phase_ = Phase::starved;
          static_cast<Derived&>(*this).starved(result);
          return;
      }
      if (overflowed_) {
        end_with(IoResult{-ENOMEM, 0});
        return;
      }
    }
    phase_ = Phase::paused;
    maybe_rearm();
  }

  void end_with(const IoResult& end) noexcept {
    phase_ = Phase::ended;
    end_ = end;
    static_cast<Derived&>(*this).finished();
  }

  void arm() noexcept {
    // Never after a stop: its cancel may already have passed this stream by.
    if (stop_token_.stop_requested()) {
      close_now();
      return;
    }
    // The stop's callback, made at the first arm (in memory taken at construction): a
    // request is never in flight without it.
    if (!stop_stream_ && stop_storage_ != nullptr) {
      registering_ = true;
      stop_stream_ = new (stop_storage_) StopCallback(stop_token_, StopStream{this});
      registering_ = false;
      if (stop_token_.stop_requested()) {
        close_now();
        return;
      }
    }
    if (!static_cast<Derived&>(*this).armed()) {
      end_with(IoResult{-ENOMEM, 0});
      wake_consumer();
      return;
    }
    phase_ = Phase::armed;
    produced_ = 0;
    overflowed_ = false;  // a stream that ended for want of memory may be re-armed
    ++arms_;
    LoopOps(*loop_).submit(*this);
  }

  void maybe_rearm() noexcept {
    if (phase_ == Phase::paused && size_ <= bound_ / 2 && !loop_->draining()) arm();
  }

  void pause() noexcept {
    // Room for what the kernel posts before it sees the cancel; if there is no memory for
    // it now, push() tries again when a result needs it.
    if (capacity_ < paused_room_) (void)grow(paused_room_);
    // The cancel needs an SQE now. With the SQ full, loop.cancel() would defer it to a
    // later turn, where it could hit the request re-armed after this one; the next CQE
    // tries again instead, and the slack holds what arrives meanwhile.
    if (loop_->ring().sq_space_left() == 0) return;
    phase_ = Phase::pausing;
    ++pauses_;
    cancel_sent_ = true;
    LoopOps(*loop_).cancel(*this);
  }

  // A result could not be queued: from here on results are released, the request is
  // cancelled, and the stream ends with ENOMEM after the results before the lost one.
  void overflow() noexcept {
    if (!overflowed_) {
      detail::log("runtime", detail::LogLevel::error,
                  "multishot stream: out of memory queueing a result; the stream ends (ENOMEM)");
    }
    overflowed_ = true;
    if (phase_ == Phase::armed && in_flight()) {
      phase_ = Phase::pausing;
      cancel_sent_ = true;
      LoopOps(*loop_).cancel(*this);
    }
  }

  // Returns true when the stream is closed already (no need to wait).
  bool begin_close() noexcept {
    if (phase_ == Phase::closed) return true;
    if (!in_flight()) {
      close_now();
      return true;
    }
    const bool cancel_on_its_way = phase_ == Phase::pausing;
    phase_ = Phase::closing;
    if (!cancel_on_its_way) {
      cancel_sent_ = true;
      LoopOps(*loop_).cancel(*this);  // completes here, synchronously, if still waiting for room
    }
    return !in_flight();
  }

  void close_now() noexcept {
    // Closed for good: let go of the loop now, on its thread, while it is alive. The
    // stream may be destroyed after the loop (a listener closed in a loop's task and
    // destroyed by main after the Runtime), and a stop that comes later must reach no one.
    const bool was_closed = phase_ == Phase::closed;
    phase_ = Phase::closed;
    if (!was_closed) static_cast<Derived&>(*this).finished();
    release_queue();
    if (stop_stream_) {
      drop_stop_callback();  // waits for a callback running on another thread
      cancel_sent_ = true;   // which may have deferred a cancel
    }
    if (std::exchange(cancel_sent_, false)) LoopOps(*loop_).forget_cancel(*this);
    end_ = IoResult{-ECANCELED, 0, Outcome::cancelled};
    wake_consumer();
    if (closer_) LoopOps(*loop_).schedule(std::exchange(closer_, {}));
  }

  [[nodiscard]] bool closing_wanted() const noexcept {
    return phase_ == Phase::closing || stop_token_.stop_requested() || loop_->draining();
  }
  [[nodiscard]] bool terminal() const noexcept {
    return phase_ == Phase::ended || phase_ == Phase::closed;
  }

  void wake_consumer() noexcept {
    if (waiter_ && (size_ > 0 || terminal())) LoopOps(*loop_).schedule(std::exchange(waiter_, {}));
  }

  // A result nobody will take: claimed (a provided buffer is taken in CQE order like
  // any other) and released at once.
  void drop(const IoResult& result) noexcept {
    Item item{};
    if (static_cast<Derived&>(*this).claim(result, item)) {
      static_cast<Derived&>(*this).release(std::move(item));
    }
  }

  Item pop() noexcept {
    Item item = std::move(storage()[head_]);
    if (++head_ == capacity_) head_ = 0;
    --size_;
    return item;
  }

  // The ring's slots: the one held inline until it grows beyond it.
  Item* storage() noexcept { return slots_ ? slots_.get() : &inline_slot_; }

  // Makes the ring `bigger`, keeping the order of what is queued. One slot is the
  // inline one: no allocation.
  bool grow(std::uint32_t bigger) noexcept {
    if (bigger <= 1 && !slots_) {
      capacity_ = 1;
      return true;
    }
    std::unique_ptr<Item[]> slots(new (std::nothrow) Item[bigger]);
    if (!slots) return false;
    Item* const old = storage();
    for (std::uint32_t i = 0; i < size_; ++i) {
      std::uint32_t index = head_ + i;
      if (index >= capacity_) index -= capacity_;
      slots[i] = std::move(old[index]);
    }
    slots_ = std::move(slots);
    capacity_ = bigger;
    head_ = 0;
    return true;
  }

  void release_queue() noexcept {
    while (size_ > 0) static_cast<Derived&>(*this).release(pop());
  }

  MultishotPolicy policy_;
  std::unique_ptr<Item[]> slots_;  // null while the ring is at most the inline slot
  Item inline_slot_{};
  std::uint32_t bound_;
  std::uint32_t capacity_ = 0;  // 0 until the first result, then 1 (inline), then slots_'s
  std::uint32_t paused_room_;   // the capacity made when the stream pauses: bound + slack
  std::uint32_t head_ = 0;
  std::uint32_t size_ = 0;
  // Counters for tests and diagnostics, 32 bits to keep the record small (one per
  // connection in a server); they wrap after 2^32.
  std::uint32_t produced_ = 0;
  std::uint32_t arms_ = 0;
  std::uint32_t pauses_ = 0;
  std::uint32_t starvations_ = 0;
  std::coroutine_handle<> closer_;
  // For a stream that has a stop token: memory for its callback, taken at construction,
  // and the callback once made in it (see AwaitableOp::stop_callback_ for why not inline).
  void* stop_storage_ = nullptr;
  StopCallback* stop_stream_ = nullptr;
  IoResult end_;  // the stream's end, once ended or closed
  Phase phase_ = Phase::unarmed;
  bool cancel_sent_ = false;  // a cancel went through the loop since the last final CQE
  bool overflowed_ = false;   // a result could not be queued: the stream ends (ENOMEM)
  bool registering_ = false;  // arm() is making stop_stream_
};

}  // namespace detail

// The record of one multishot request whose SQE `Prep` fills (any callable taking
// ring::Sqe&; called again on every re-arm, so what it points to must stay valid).
// It lives in the consumer's frame or in an object such as a listener, and never moves.
// Results are IoResults; those nobody will take are released as the options say.
template <typename Prep>
class Multishot final : public detail::MultishotCore<Multishot<Prep>, IoResult> {
  using Core = detail::MultishotCore<Multishot<Prep>, IoResult>;
  friend Core;

 public:
  // `stop` closes the stream when triggered (see the core above): next() then returns
  // -ECANCELED. Throws std::system_error unless 1 <= options.bound <= 2^20.
  explicit Multishot(Prep prep, MultishotOptions options = {}, std::stop_token stop = {})
      : Core(options.bound, options.slack,
             options.policy != nullptr                         ? options.policy
             : options.fd_results || options.direct_fd_results ? &multishot_policy::fds
                                                               : &multishot_policy::values,
             std::move(stop), false),
        prep_(std::move(prep)),
        buffer_group_(options.buffer_group),
        fd_results_(options.fd_results),
        direct_fd_results_(options.direct_fd_results) {}
  ~Multishot() { this->retire(); }

  // co_await next(): the next result, in the order the kernel posted it. Starts the
  // request on first use. Once the stream is over it returns the stream's end again
  // and again: the error that ended it, 0 for a value stream that ended with a value
  // (a recv's end of file), -ECANCELED once closed or stopped.
  class [[nodiscard]] NextAwaiter {
   public:
    explicit NextAwaiter(Multishot& record) noexcept : record_(&record) {}
    bool await_ready() const noexcept { return record_->ready_now(); }
    void await_suspend(std::coroutine_handle<> waiter) const noexcept { record_->wait(waiter); }
    IoResult await_resume() const noexcept {
      IoResult result;
      return record_->take(result) ? result : record_->end();
    }

   private:
    Multishot* record_;
  };
  NextAwaiter next() noexcept { return NextAwaiter(*this); }

  // Re-arms a stream that waits for buffers (rearm_on_demand) or that an error ended,
  // e.g. after putting provided buffers back. Does nothing to an armed or closed stream.
  void rearm() noexcept { Core::rearm(); }

 private:
  static constexpr bool rearm_starved_on_demand = true;

  void prep(ring::Sqe& sqe) noexcept { prep_(sqe); }
  static bool armed() noexcept { return true; }
  static bool refused(const IoResult& /*final*/) noexcept { return false; }
  bool claim(const IoResult& result, IoResult& item) const noexcept {
    item = result;
    return true;
  }
  // The stream's end after a value: 0, unless values are fds the consumer owns.
  [[nodiscard]] std::int32_t value_end() const noexcept {
    return fd_results_ || direct_fd_results_ ? -ECANCELED : 0;
  }
  // See MultishotAction::rearm_on_demand.
  void starved(const IoResult& final) noexcept {
    if (this->produced() == 0) {
      this->push(final);
    } else if (this->consumer_waiting() && this->size() == 0) {
      Core::rearm();
    }
  }
  void finished() noexcept {}

  // Gives back what a result nobody will take holds: its fd, its provided buffer.
  void release(IoResult&& result) const noexcept {
    if (fd_results_ && result.res >= 0) ::close(result.res);
    if (direct_fd_results_ && result.res >= 0) {
      // Synchronous, so that it needs no SQE: this runs where the SQ may be full. Only
      // on the loop's own thread while it runs: a record destroyed elsewhere, or after
      // its loop (the table then goes with the ring), leaves the slot.
      const int none = -1;
      if (EventLoop::current() != &this->loop()) {
        detail::log("runtime", detail::LogLevel::warn,
                    "Multishot: a direct descriptor nobody took is released off its loop; "
                    "its slot stays taken until the loop's ring closes");
      } else if (!detail::LoopOps(this->loop())
                      .ring()
                      .register_files_update(static_cast<std::uint32_t>(result.res),
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

  Prep prep_;
  ring::BufferGroup* buffer_group_;
  bool fd_results_;
  bool direct_fd_results_;
};

}  // namespace coring
