// request(body): an awaitable operation whose record carries more state than io(prep)
// keeps — a msghdr, a peer address, a count of bytes moved so far — and that may submit
// itself again before its coroutine resumes (a transfer continued after a short count).
// io(prep) is its fast path for the common case of one request and no state.
//
//   TransferResult t = co_await request(TransferBody{...}).with_deadline(5s);
//
// Like io(prep), the record lives in the awaiting frame, its address is the SQE's
// user_data, and it allocates nothing. The Body supplies three functions:
//
//   void prep(ring::Sqe& sqe) noexcept;           fill the request's SQE; called on the
//                                                 record's final address, so pointers
//                                                 into the body are stable
//   bool again(const IoResult& r) noexcept;       a request completed (outcome completed):
//                                                 submit another before resuming? Asked
//                                                 for every completed request, also once
//                                                 a stop has come: then a true ends the
//                                                 operation, and result() sees res
//                                                 -ECANCELED, outcome cancelled (not
//                                                 asked while the loop drains)
//   R result(const IoResult& r);                  what co_await returns
//
// and may supply a fourth:
//
//   void on_cqe(const IoResult& r) noexcept;      the request's own CQE, in the order the
//                                                 loop reaps CQEs (before its linked
//                                                 timeout's and before resuming), for
//                                                 state that must be taken in that order
//                                                 (a piece of an incremental buffer)
//
// Two bounds, under two names:
//   with_timeout(d)    per request, as io(prep)'s: each request the operation submits
//                      carries a linked timeout of d from its own submission;
//   with_deadline(d)   the whole operation: every request carries the same absolute
//                      linked timeout (IORING_TIMEOUT_ABS on CLOCK_MONOTONIC, which is
//                      steady_clock), d from the co_await, or a steady_clock time point.
// A bound that fires cancels the request in flight; the outcome is timed_out (res
// -ETIMEDOUT), or partial when that request had moved bytes (which again() does not see:
// result() adds them). The two are one slot: the last of them given applies.
// with_stop(token) cancels the operation from any thread; a token that has fired before
// the co_await submits nothing, and result() sees res -ECANCELED, outcome cancelled.
#pragma once

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <optional>
#include <stop_token>
#include <utility>

#include "coring/runtime/io.hpp"
#include "coring/runtime/operation.hpp"

namespace coring {

template <typename Body>
class [[nodiscard]] RequestOp final : public detail::AwaitableOp {
 public:
  explicit RequestOp(Body body) noexcept(std::is_nothrow_move_constructible_v<Body>)
      : AwaitableOp(&prep_fn, &complete_fn), body_(std::move(body)) {}
  RequestOp(RequestOp&& other) noexcept(std::is_nothrow_move_constructible_v<Body>)
      : AwaitableOp(std::move(other)),
        body_(std::move(other.body_)),
        timeout_(other.timeout_),
        deadline_in_(other.deadline_in_) {}

  // Bounds each request by `timeout` from its submission (see above).
  RequestOp with_timeout(std::chrono::nanoseconds timeout) && noexcept {
    timeout_.when = ring::to_kernel_timespec(timeout);
    timeout_.absolute = false;
    deadline_in_.reset();
    set_sqe_count(2);
    return std::move(*this);
  }
  // Bounds the whole operation: it ends `timeout` after the co_await (see above).
  RequestOp with_deadline(std::chrono::nanoseconds timeout) && noexcept {
    deadline_in_ = timeout;
    timeout_.absolute = true;
    set_sqe_count(2);
    return std::move(*this);
  }
  // Bounds the whole operation: it ends at `deadline`.
  RequestOp with_deadline(std::chrono::steady_clock::time_point deadline) && noexcept {
    timeout_.when = ring::to_kernel_timespec(deadline.time_since_epoch());
    timeout_.absolute = true;
    deadline_in_.reset();
    set_sqe_count(2);
    return std::move(*this);
  }
  // Cancels the operation when `token` is triggered (any thread).
  RequestOp with_stop(std::stop_token token) && noexcept {
    stop_token_ = std::move(token);
    return std::move(*this);
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> waiter) noexcept {
    if (deadline_in_) {
      const auto deadline = std::chrono::steady_clock::now() + *deadline_in_;
      timeout_.when = ring::to_kernel_timespec(deadline.time_since_epoch());
    }
    timeout_.fired = false;
    if (start(waiter)) return true;
    // The stop token had fired: nothing was submitted, and the body sees a cancellation.
    result_ = IoResult{-ECANCELED, 0, Outcome::cancelled};
    return false;
  }
  auto await_resume() { return body_.result(result_); }

 private:
  static void prep_fn(Operation& self, std::span<ring::Sqe* const> sqes) noexcept {
    auto& op = static_cast<RequestOp&>(self);
    op.body_.prep(*sqes[0]);
    if (sqes.size() == 2) op.timeout_.prep(sqes);
  }

  static void complete_fn(Operation& self, const ring::Cqe& cqe, bool second) noexcept {
    auto& op = static_cast<RequestOp&>(self);
    if (second) {
      op.timeout_.on_cqe(cqe);
    } else {
      op.result_ = IoResult{cqe.res, cqe.flags};
      if constexpr (requires { op.body_.on_cqe(op.result_); }) op.body_.on_cqe(op.result_);
    }
    if (op.in_flight()) return;  // the other CQE of the pair is still to come
    IoResult& result = op.result_;
    result.outcome = op.timeout_.settle(result.res);
    // A request that completed is the body's to take (its bytes count) even when a stop
    // came meanwhile: only the next request is not made, and co_await sees the stop. Not
    // while the loop drains: nobody resumes to take it then, and a body's again() may
    // consume what a later wait should find (a signal read from its signalfd).
    if (result.outcome == Outcome::completed && !op.loop_->draining() && op.body_.again(result)) {
      if (!op.unwanted()) {
        op.timeout_.fired = false;
        detail::LoopOps(*op.loop_).submit(op);
        return;
      }
      result = IoResult{-ECANCELED, 0, Outcome::cancelled};
    }
    op.finish();
  }

  Body body_;
  IoResult result_;
  detail::LinkedTimeout timeout_{};
  std::optional<std::chrono::nanoseconds> deadline_in_;  // with_deadline(d): d from the co_await
};

template <typename Body>
RequestOp<Body> request(Body body) noexcept(std::is_nothrow_move_constructible_v<Body>) {
  return RequestOp<Body>(std::move(body));
}

}  // namespace coring
