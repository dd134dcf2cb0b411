// io(prep): the one awaitable behind every single-SQE operation.
//
//   IoResult r = co_await io([&](ring::Sqe& sqe) { ring::prep_read(sqe, fd, buf, 0); });
//   IoResult r = co_await io(prep).with_timeout(2s).with_stop(token);
//
// The awaitable is the operation record: it lives in the awaiting frame, its address
// is the SQE's user_data, and the coroutine resumes once the kernel has posted every
// CQE the operation will get — so a buffer or timespec in the frame is never freed
// under the kernel. No allocation.
//
// IoResult::outcome says how it ended: see Outcome (operation.hpp).
#pragma once

#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <chrono>
#include <coroutine>
#include <memory>
#include <new>
#include <optional>
#include <stop_token>
#include <utility>

#include "coring/ring/prep.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/operation.hpp"

namespace coring {

namespace detail {

// How an operation ended, from its res and whether its linked timeout fired.
constexpr Outcome outcome_of(std::int32_t res, bool timeout_fired) noexcept {
  if (timeout_fired) {
    if (res == -ECANCELED) return Outcome::timed_out;
    if (res > 0) return Outcome::partial;
  }
  return res == -ECANCELED ? Outcome::cancelled : Outcome::completed;
}

// The second SQE of an operation with a timeout — an IORING_OP_LINK_TIMEOUT linked
// behind the request, relative or absolute on CLOCK_MONOTONIC — and what its CQE said.
// io(prep) and request(body) complete their pairs of CQEs through it.
struct LinkedTimeout {
  ring::KernelTimespec when;
  bool absolute;
  bool fired;  // its CQE said -ETIME: it cancelled the request

  // Fills both SQEs' links: the request's (sqes[0], already prepared) and the timeout's.
  void prep(std::span<ring::Sqe* const> sqes) const noexcept {
    ring::link_next(*sqes[0]);
    ring::prep_link_timeout(*sqes[1], &when, absolute ? ring::timeout_flags::abs : 0);
  }
  void on_cqe(const ring::Cqe& cqe) noexcept { fired = cqe.res == -ETIME; }
  // Once both CQEs are in: how the request ended. A request the timeout cancelled gets
  // res -ETIMEDOUT.
  Outcome settle(std::int32_t& res) const noexcept {
    const Outcome outcome = outcome_of(res, fired);
    if (outcome == Outcome::timed_out) res = -ETIMEDOUT;
    return outcome;
  }
};

// Common state of awaitable operations: the waiter, the result, cancellation.
class AwaitableOp : public Operation {
 protected:
  using Operation::Operation;
  // Moves an awaitable that has not started (no stop callback registered yet).
  AwaitableOp(AwaitableOp&& other) noexcept
      : Operation(std::move(other)),
        stop_token_(std::move(other.stop_token_)),
        outcome_(other.outcome_) {
    assert(!other.stop_callback_);
  }
  ~AwaitableOp() {
    if (stop_callback_) {
      stop_callback_.reset();  // waits for a callback running on another thread
      LoopOps(*loop_).forget_cancel(*this);
    }
  }

  // Starts the operation, unless the stop token already asks for cancellation.
  bool start(std::coroutine_handle<> waiter) noexcept {
    if (!begin(waiter)) [[unlikely]]
      return false;
    LoopOps(*loop_).submit(*this);
    return true;
  }
  // start() for a one-SQE operation whose SQE `fill` writes: the common case is
  // prepared right here, with `fill` inlined.
  template <typename Fill>
  bool start_with(std::coroutine_handle<> waiter, Fill& fill) noexcept {
    if (!begin(waiter)) [[unlikely]]
      return false;
    LoopOps(*loop_).submit_one(*this, fill);
    return true;
  }

  // What the operation's CQE said; -ECANCELED means cancelled unless a CompleteFn
  // recorded another outcome with its own res (timed out, partial).
  [[nodiscard]] IoResult result() const noexcept {
    assert(res_written() && "an operation's result read before its CQE");
    return IoResult{res_, cqe_flags_, res_ == -ECANCELED ? Outcome::cancelled : outcome_};
  }

  void finish() noexcept { LoopOps(*loop_).schedule(waiter_); }
  // Whether nobody wants this operation's result any more.
  [[nodiscard]] bool unwanted() const noexcept {
    return stop_token_.stop_requested() || loop_->draining();
  }

  // Asks the loop to cancel the operation when its stop token fires (from any thread).
  struct CancelOnStop {
    AwaitableOp* op;
    void operator()() const noexcept { LoopOps(*op->loop_).request_cancel(*op); }
  };

  EventLoop* loop_ = nullptr;
  std::stop_token stop_token_;
  // Made only for an operation that has a stop token: a pointer in every awaitable
  // instead of the callback's 56 bytes (an awaitable lives in the awaiting frame, one
  // per co_await of it, and a server holds a frame per connection).
  std::unique_ptr<std::stop_callback<CancelOnStop>> stop_callback_;
  Outcome outcome_ = Outcome::completed;  // beyond what res_ says: timed_out, partial

 private:
  // Records the loop and the waiter; false (with res_ -ECANCELED) if the stop token
  // already asks for cancellation, so the waiter resumes at once.
  bool begin(std::coroutine_handle<> waiter) noexcept {
    loop_ = EventLoop::current();
    waiter_ = waiter;
    // Most operations have no stop token: their path stays short enough to inline.
    if (stop_token_.stop_possible()) [[unlikely]]
      return begin_stoppable();
    return true;
  }
  [[gnu::noinline]] bool begin_stoppable() noexcept {
    if (stop_token_.stop_requested()) {
      res_ = -ECANCELED;
      cqe_flags_ = 0;
      return false;  // resume at once
    }
    // A stop that comes while it is made runs the callback, which cancels through the
    // loop as at any later time.
    stop_callback_.reset(new (std::nothrow)
                             std::stop_callback<CancelOnStop>(stop_token_, CancelOnStop{this}));
    if (!stop_callback_) {
      res_ = -ENOMEM;  // no memory to hear the stop: the operation is not started
      cqe_flags_ = 0;
      return false;
    }
    return true;
  }
};

}  // namespace detail

template <typename Prep>
class [[nodiscard]] IoOp final : public detail::AwaitableOp {
 public:
  // No CompleteFn until a modifier needs one: the loop completes a plain operation inline.
  explicit IoOp(Prep prep) noexcept(std::is_nothrow_move_constructible_v<Prep>)
      : AwaitableOp(&prep_fn, nullptr), prep_(std::move(prep)) {}
  IoOp(IoOp&& other) noexcept(std::is_nothrow_move_constructible_v<Prep>)
      : AwaitableOp(std::move(other)), prep_(std::move(other.prep_)) {
    if (other.sqe_count() == 2) {
      timeout_ = other.timeout_;
    } else if (other.has_complete()) {
      timeout_.fired = other.timeout_.fired;
    }
    if (other.has_complete()) fd_result_ = other.fd_result_;
  }

  // Bounds the operation with a linked timeout (IORING_OP_LINK_TIMEOUT): when it
  // fires first, the request is cancelled and the result is -ETIMEDOUT.
  IoOp with_timeout(std::chrono::nanoseconds timeout) && noexcept {
    timeout_.when = ring::to_kernel_timespec(timeout);
    timeout_.absolute = false;
    set_sqe_count(2);
    use_complete_fn();
    return std::move(*this);
  }
  // Cancels the operation (IORING_OP_ASYNC_CANCEL) when `token` is triggered; the
  // result is then -ECANCELED unless the request completed first.
  IoOp with_stop(std::stop_token token) && noexcept {
    stop_token_ = std::move(token);
    return std::move(*this);
  }
  // The result is a new fd (accept, openat, socket). If it arrives for an operation
  // whose stop token was triggered, or while the loop shuts down, nobody will take
  // it: the fd is closed and the result is -ECANCELED.
  IoOp with_fd_result() && noexcept {
    use_complete_fn();
    fd_result_ = true;
    return std::move(*this);
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> waiter) noexcept {
    if (sqe_count() == 1) [[likely]]
      return start_with(waiter, prep_);
    return start(waiter);
  }
  IoResult await_resume() const noexcept { return result(); }

 private:
  static void prep_fn(Operation& self, std::span<ring::Sqe* const> sqes) noexcept {
    auto& op = static_cast<IoOp&>(self);
    op.prep_(*sqes[0]);
    if (sqes.size() == 2) op.timeout_.prep(sqes);
  }

  // Installs complete_fn, and the fields only it reads (a plain operation leaves them
  // unwritten: one store less per co_await).
  void use_complete_fn() noexcept {
    if (has_complete()) return;
    set_complete(&complete_fn);
    timeout_.fired = false;
    fd_result_ = false;
  }

  // For operations with a linked timeout or an fd result (the others complete inline).
  static void complete_fn(Operation& self, const ring::Cqe& cqe, bool second) noexcept {
    auto& op = static_cast<IoOp&>(self);
    if (second) {
      op.timeout_.on_cqe(cqe);
    } else if ((cqe.flags & ring::cqe_flags::notif) != 0) {
      // A zero-copy send's notification: the buffer is the caller's again. The result
      // stays the first CQE's (the byte count); the coroutine resumes now, not before.
    } else {
      op.res_ = cqe.res;
      op.cqe_flags_ = cqe.flags;
      if (op.fd_result_ && cqe.res >= 0 && op.unwanted()) {
        ::close(cqe.res);
        op.res_ = -ECANCELED;
      }
    }
    if (op.in_flight()) return;  // the other CQE of the pair is still to come
    op.outcome_ = op.timeout_.settle(op.res_);
    op.finish();
  }

  Prep prep_;
  // Unwritten by a plain operation (one store less per co_await): `when` and `absolute`
  // are written by with_timeout() and read only with 2 SQEs; `fired` and fd_result_ by
  // use_complete_fn(), for complete_fn alone.
  union {
    detail::LinkedTimeout timeout_;
  };
  bool fd_result_;
};

// The awaitable for one operation whose SQE `prep` fills (any callable taking ring::Sqe&).
template <typename Prep>
IoOp<Prep> io(Prep prep) noexcept(std::is_nothrow_move_constructible_v<Prep>) {
  return IoOp<Prep>(std::move(prep));
}

// A NOP through the ring: completes with res 0 on the loop's next reap.
inline auto nop() noexcept {
  return io([](ring::Sqe& sqe) noexcept { ring::prep_nop(sqe); });
}

}  // namespace coring
