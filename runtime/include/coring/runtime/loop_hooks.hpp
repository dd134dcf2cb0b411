// LoopHooks: what may stand between an EventLoop and its ring.
//
// A loop with hooks (LoopOptions::hooks, or EventLoop::set_hooks()) lets them see and
// change what it submits and what it reaps: rewrite SQEs before the kernel sees them,
// skip an io_uring_enter(2), and hand the loop its CQEs in batches of their choosing —
// rewritten, held back, reordered. coring::testing's FaultInjector is such hooks; the
// runtime itself carries no test machinery, and a loop without hooks pays one
// predictable branch per enter and per reap for them, nothing per operation.
//
// The loop calls them on its own thread only, in this order within a turn:
//
//   before_submit(ring, own)   whenever the loop hands the SQ to the kernel (each enter,
//                              and each flush of a full SQ): the SQEs the ring has handed
//                              out and not yet published may be rewritten; `own` is the
//                              user_data of the loop's wake read, which must be left alone
//   skip_enter()               before the turn's io_uring_enter(2): true makes the loop
//                              publish its SQEs and go on as if the kernel said EBUSY
//   submit_first(ring)         right before the loop's own submit, after before_submit():
//                              the hooks may hand part of the SQ to the kernel first
//   flush_cq()                 once at the start of each reap: true makes the loop enter
//                              with GETEVENTS as if the CQ had overflowed
//   reap(ring, own, limit, batch)
//                              each round of a reap: sets `batch` to the next CQEs the
//                              loop is to dispatch, taken off `ring` (at most `limit` of
//                              them from the ring, though the hooks may add ones they
//                              held back; the batch may be empty); false ends the reap.
//                              The span stays valid until the next call.
//
// A request the hooks make themselves carries a user_data in [hooks_data_first,
// hooks_data_last] (detail/user_data.hpp); reap() must take its CQEs out of every batch,
// and a loop drops, with an error logged, any that reaches it.
#pragma once

#include <cstdint>
#include <span>

#include "coring/ring/abi.hpp"

namespace coring {

namespace ring {
class Ring;
}
class EventLoop;

// Hooks serve one loop at a time (attaching them to a second throws std::logic_error),
// and hooks destroyed while attached let go of their loop, which goes on without them.
class LoopHooks {
 public:
  virtual ~LoopHooks();
  LoopHooks(const LoopHooks&) = delete;
  LoopHooks& operator=(const LoopHooks&) = delete;

  // The loop these hooks are attached to, or nullptr.
  [[nodiscard]] EventLoop* loop() const noexcept { return loop_; }

  virtual void before_submit(ring::Ring& ring, std::uint64_t own) noexcept = 0;
  virtual bool skip_enter() noexcept = 0;
  virtual void submit_first(ring::Ring& ring) noexcept = 0;
  virtual bool flush_cq() noexcept = 0;
  virtual bool reap(ring::Ring& ring, std::uint64_t own, std::uint32_t limit,
                    std::span<const ring::Cqe>& batch) = 0;
  // Whether the hooks still hold CQEs back or have requests of their own in flight: while
  // they do, the loop refuses to let them go (EventLoop::set_hooks()), since only they
  // can hand those CQEs over or take them out.
  [[nodiscard]] virtual bool holds_completions() const noexcept = 0;

 protected:
  LoopHooks() = default;

 private:
  friend class EventLoop;
  EventLoop* loop_ = nullptr;
};

}  // namespace coring
