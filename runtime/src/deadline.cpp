// Deadline: one timer in flight behind a deadline that moves by a store.
//
// The record (DeadlineTimer) is an Operation of one IORING_OP_TIMEOUT SQE, absolute on
// CLOCK_MONOTONIC, armed for `armed_for_`; the deadline itself is `expiry_`, which
// reset() and extend_to() write. When the timer's CQE arrives — it fired (-ETIME) or
// was cancelled because the deadline moved earlier (-ECANCELED) — the completion
// compares the clock with expiry_: past it, the deadline has passed and the stop
// source is triggered; before it, the timer is armed again for expiry_. A deadline
// pushed back N times before it fires thus costs one SQE, not N.
//
// The record is on the heap so that the Deadline may go at any time: its destructor
// marks an armed record orphaned and cancels it, and the completion of its last CQE
// frees it (invariant 1: the record the CQE names stays valid until then). While the
// loop drains, the completion arms nothing.
#include "coring/runtime/deadline.hpp"

#include <cassert>
#include <cerrno>
#include <stdexcept>

#include "coring/ring/prep.hpp"
#include "log.hpp"

namespace coring {

namespace detail {

class DeadlineTimer final : public Operation {
 public:
  DeadlineTimer(EventLoop& loop, Deadline::clock::time_point expiry)
      : Operation(&prep_fn, &complete_fn), expiry_(expiry), loop_(&loop) {}

  void arm() noexcept {
    set_timer(expiry_);
    prepped_ = false;
    LoopOps(*loop_).submit(*this);
  }

  void move_to(Deadline::clock::time_point when) noexcept {
    if (source_.stop_requested()) return;
    expiry_ = when;
    if (when >= armed_for_ || !in_flight()) return;
    if (!prepped_) {
      set_timer(when);  // still waiting for admission: its SQE is not written yet
    } else if (!cancelling_) {
      cancelling_ = true;
      LoopOps(*loop_).cancel(*this);  // the completion re-arms for expiry_
    }
  }

  // The Deadline is gone: a timer in flight is cancelled and freed by its completion;
  // an idle one is freed now, without touching the loop (which may be gone). A timer
  // still waiting for admission is not cancelled — the loop would complete it, and so
  // free it, inside cancel() — but set to fire as soon as it goes out.
  void orphan() noexcept {
    if (!in_flight()) {
      delete this;
      return;
    }
    orphaned_ = true;
    if (!prepped_) {
      set_timer(Deadline::clock::time_point{});
    } else if (!cancelling_) {
      cancelling_ = true;
      LoopOps(*loop_).cancel(*this);
    }
  }

  std::stop_source source_;
  Deadline::clock::time_point expiry_;
  bool expired_ = false;

 private:
  static void prep_fn(Operation& self, std::span<ring::Sqe* const> sqes) noexcept {
    auto& timer = static_cast<DeadlineTimer&>(self);
    ring::prep_timeout(*sqes[0], &timer.when_, 0, ring::timeout_flags::abs);
    timer.prepped_ = true;
  }

  void set_timer(Deadline::clock::time_point when) noexcept {
    armed_for_ = when;
    when_ = ring::to_kernel_timespec(when.time_since_epoch());
  }

  static void complete_fn(Operation& self, const ring::Cqe& cqe, bool /*second*/) noexcept {
    auto& timer = static_cast<DeadlineTimer&>(self);
    if (timer.cancelling_) {
      // A cancel may wait in the loop's list (SQ full): it must not outlive the record
      // nor reach the timer's next arming.
      LoopOps(*timer.loop_).forget_cancel(timer);
      timer.cancelling_ = false;
    }
    if (timer.orphaned_) {
      delete &timer;
      return;
    }
    if (timer.loop_->draining() || timer.source_.stop_requested()) return;
    if (cqe.res != -ETIME && cqe.res != -ECANCELED) {
      // A timer the kernel refuses would be refused again: the deadline passes now
      // rather than never.
      runtime_log_error("Deadline timer", cqe.res);
      timer.expire();
      return;
    }
    if (Deadline::clock::now() >= timer.expiry_) {
      timer.expire();
      return;
    }
    timer.arm();
  }

  // Marked first: the stop's callbacks run inside request_stop(), and the record must
  // say expired by then. (Another thread's stop of the other token may cross it; the
  // deadline had passed all the same.)
  void expire() noexcept {
    expired_ = true;
    source_.request_stop();
  }

  EventLoop* loop_;
  Deadline::clock::time_point armed_for_;
  ring::KernelTimespec when_{};
  bool prepped_ = false;     // its SQE is written: when_ no longer matters
  bool cancelling_ = false;  // a cancel is on its way: its CQE re-arms or frees
  bool orphaned_ = false;    // the Deadline is gone: the last CQE frees the record
};

}  // namespace detail

namespace {

EventLoop& current_loop_or_throw() {
  EventLoop* loop = EventLoop::current();
  if (loop == nullptr) {
    throw std::logic_error(
        "Deadline: no loop runs on this thread; build it in a task, or pass the loop");
  }
  return *loop;
}

}  // namespace

Deadline::Deadline(std::chrono::nanoseconds timeout, std::stop_token also)
    : Deadline(current_loop_or_throw(), timeout, std::move(also)) {}

Deadline::Deadline(EventLoop& loop, std::chrono::nanoseconds timeout, std::stop_token also)
    : timer_(new detail::DeadlineTimer(
          loop, clock::now() + std::chrono::duration_cast<clock::duration>(timeout))) {
  assert(loop.on_loop_thread() && "a Deadline belongs to its loop's thread");
  if (also.stop_possible()) also_.emplace(also, ForwardStop{&timer_->source_});
  if (!timer_->source_.stop_requested()) timer_->arm();
}

Deadline::~Deadline() {
  also_.reset();  // waits for a callback running on another thread
  timer_->orphan();
}

void Deadline::reset(std::chrono::nanoseconds timeout) noexcept {
  timer_->move_to(clock::now() + std::chrono::duration_cast<clock::duration>(timeout));
}

void Deadline::extend_to(clock::time_point when) noexcept {
  if (when > timer_->expiry_) timer_->move_to(when);
}

std::stop_token Deadline::token() const noexcept { return timer_->source_.get_token(); }

bool Deadline::expired() const noexcept { return timer_->expired_; }

Deadline::clock::time_point Deadline::expiry() const noexcept { return timer_->expiry_; }

}  // namespace coring
