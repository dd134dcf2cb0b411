// Timers on the ring: sleep_for, sleep_until, and timeout() for a single operation.
//
// A sleep is an IORING_OP_TIMEOUT whose timespec lives in the awaiting frame. It
// completes with res 0 when the time has passed and -ECANCELED when its stop token
// fired first. Deadlines are on CLOCK_MONOTONIC, which is std::chrono::steady_clock
// on Linux.
#pragma once

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <stop_token>
#include <utility>

#include "coring/runtime/io.hpp"

namespace coring {

class [[nodiscard]] SleepOp final : public detail::AwaitableOp {
 public:
  SleepOp(ring::KernelTimespec when, std::uint32_t flags) noexcept
      : AwaitableOp(&prep_fn, nullptr), when_(when), flags_(flags) {}

  SleepOp(SleepOp&& other) noexcept
      : AwaitableOp(std::move(other)), when_(other.when_), flags_(other.flags_) {}

  SleepOp with_stop(std::stop_token token) && noexcept {
    stop_token_ = std::move(token);
    return std::move(*this);
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> waiter) noexcept { return start(waiter); }
  // res 0 when the time passed (the kernel's -ETIME), -ECANCELED when stopped first.
  IoResult await_resume() const noexcept {
    IoResult r = result();
    if (r.res == -ETIME) r.res = 0;
    return r;
  }

 private:
  static void prep_fn(Operation& self, std::span<ring::Sqe* const> sqes) noexcept {
    auto& op = static_cast<SleepOp&>(self);
    ring::prep_timeout(*sqes[0], &op.when_, 0, op.flags_);
  }

  ring::KernelTimespec when_;
  std::uint32_t flags_;
};

// Completes after `duration` (a duration <= 0 still goes through the ring once).
inline SleepOp sleep_for(std::chrono::nanoseconds duration) noexcept {
  return SleepOp(ring::to_kernel_timespec(duration), 0);
}

// Completes at `deadline` on the monotonic clock.
inline SleepOp sleep_until(std::chrono::steady_clock::time_point deadline) noexcept {
  return SleepOp(ring::to_kernel_timespec(deadline.time_since_epoch()), ring::timeout_flags::abs);
}

// Bounds one operation by `duration` through a linked timeout; see IoOp::with_timeout.
template <typename Prep>
IoOp<Prep> timeout(IoOp<Prep>&& op, std::chrono::nanoseconds duration) noexcept {
  return std::move(op).with_timeout(duration);
}

}  // namespace coring
