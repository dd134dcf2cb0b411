// BodyOp<Body>: an awaitable single-SQE operation whose record carries more state than
// io(prep) keeps — a msghdr, a peer address, a count of bytes moved so far — and that
// may submit itself again before its coroutine resumes (send_all, recv_exact).
//
// Like the runtime's IoOp, the record lives in the awaiting frame, its address is the
// SQE's user_data, it allocates nothing, and with_timeout()/with_stop() add a linked
// timeout and a stop token. The Body supplies three functions:
//
//   void prep(ring::Sqe& sqe) noexcept;           fill the request's SQE; called on the
//                                                 record's final address, so pointers
//                                                 into the body are stable
//   bool again(const IoResult& r) noexcept;       a request completed (outcome completed):
//                                                 submit another before resuming?
//   R result(const IoResult& r) noexcept;         what co_await returns
//
// and may supply a fourth:
//
//   void on_cqe(const IoResult& r) noexcept;      the request's own CQE, in the order the
//                                                 loop reaps CQEs (before its linked
//                                                 timeout's and before resuming), for
//                                                 state that must be taken in that order
//                                                 (a piece of an incremental buffer)
//
// The timeout is a deadline for the whole operation: every request it submits carries
// an absolute linked timeout (IORING_TIMEOUT_ABS on CLOCK_MONOTONIC) at the same time.
#pragma once

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <stop_token>
#include <utility>

#include "coring/ring/prep.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/operation.hpp"

namespace coring::net::detail {

template <typename Body>
class [[nodiscard]] BodyOp final : public coring::detail::AwaitableOp {
 public:
  explicit BodyOp(Body body) noexcept
      : AwaitableOp(&prep_fn, &complete_fn), body_(std::move(body)) {}
  BodyOp(BodyOp&& other) noexcept
      : AwaitableOp(std::move(other)), body_(std::move(other.body_)), timeout_(other.timeout_) {}

  // Bounds the whole operation (every request it makes) by `timeout`: when it passes,
  // the request in flight is cancelled and the outcome is timed_out (or partial).
  BodyOp with_timeout(std::chrono::nanoseconds timeout) && noexcept {
    timeout_ = timeout;
    set_sqe_count(2);
    return std::move(*this);
  }
  // Cancels the operation when `token` is triggered (any thread).
  BodyOp with_stop(std::stop_token token) && noexcept {
    stop_token_ = std::move(token);
    return std::move(*this);
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> waiter) noexcept {
    if (sqe_count() == 2) {
      const auto deadline = std::chrono::steady_clock::now() + timeout_;
      deadline_ = coring::detail::to_kernel_timespec(deadline.time_since_epoch());
    }
    return start(waiter);
  }
  auto await_resume() noexcept { return body_.result(result_); }

 private:
  static void prep_fn(Operation& self, std::span<ring::Sqe* const> sqes) noexcept {
    auto& op = static_cast<BodyOp&>(self);
    op.body_.prep(*sqes[0]);
    if (sqes.size() == 2) {
      ring::link_next(*sqes[0]);
      ring::prep_link_timeout(*sqes[1], &op.deadline_, ring::timeout_flags::abs);
    }
  }

  static void complete_fn(Operation& self, const ring::Cqe& cqe, bool second) noexcept {
    auto& op = static_cast<BodyOp&>(self);
    if (second) {
      op.timed_out_ = cqe.res == -ETIME;
    } else {
      op.result_ = IoResult{cqe.res, cqe.flags};
      if constexpr (requires { op.body_.on_cqe(op.result_); }) op.body_.on_cqe(op.result_);
    }
    if (op.in_flight()) return;  // the other CQE of the pair is still to come
    IoResult& result = op.result_;
    result.outcome = coring::detail::outcome_of(result.res, op.timed_out_);
    if (result.outcome == Outcome::completed && !op.unwanted() && op.body_.again(result)) {
      op.loop_->submit(op);
      return;
    }
    if (result.outcome == Outcome::timed_out) result.res = -ETIMEDOUT;
    op.finish();
  }

  Body body_;
  IoResult result_;
  std::chrono::nanoseconds timeout_{};
  ring::KernelTimespec deadline_{};
  bool timed_out_ = false;
};

template <typename Body>
BodyOp<Body> body_op(Body body) noexcept {
  return BodyOp<Body>(std::move(body));
}

}  // namespace coring::net::detail
