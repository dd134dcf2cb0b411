// The event loop: submission, reaping and resumption.
//
// Admission. Every SQE the loop prepares will produce a final CQE, and the loop
// counts them (inflight_) without bounding them by the CQ's size: completions beyond
// it wait in the kernel's overflow list (IORING_FEAT_NODROP, required) and the reap
// flushes them, in order. An operation is prepared at once within
// LoopOptions::max_in_flight (if set) when the SQ has room, a full SQ being handed to
// the kernel first; otherwise it waits in a FIFO for a later reap (said once in the
// log). Cancels never wait: sent at once (counted, user_data 0) or the next turn.
//
// Reaping. CQEs are copied out in batches (one release of the CQ head per batch).
// Each goes to the operation at its user_data, which records the result and queues
// its coroutine; the queue is run at the start of the next turn. Resuming from
// inside the reap would recurse into arbitrary user code with the batch half done.
//
// Threads. The ring is touched only by the owning thread. post() and cancels from
// other threads go into a mutex-protected list, set wake_pending_, and wake the loop
// once per drain (wake_sent_ coalesces the rest), all under the mutex, which the
// destructor takes too before it releases anything. A thread running another
// loop's turn wakes it with IORING_OP_MSG_RING from its own ring: a CQE with the
// reserved user_data msg_ring_wake lands in the target's CQ, which is no operation's
// and was never counted in the target's inflight_; the sender counts its own CQE for
// the MSG_RING SQE (user_data: the target's address | msg_ring_sent_tag). Every
// user_data value and its decoding are in coring/runtime/detail/user_data.hpp.
// A thread without a loop writes the
// wake eventfd, which a read operation of the loop's own keeps armed. Work posted
// from the loop's own turn needs no wake at all: turn() does not wait while
// wake_pending_ is set.
//
// Spawned tasks. spawn() makes one frame (join.hpp's spawn_frame) whose promise is the
// task's join state; it is linked into detached_ while the task may run, so that the
// destructor can destroy it, and unlinked by its end — always on this loop's thread:
// a task that ended on another loop (switch_to) posts its end here. The end and the
// JoinHandle meet under the frame's mutex; whichever comes last frees the frame.
#include "coring/runtime/event_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "coring/ring/prep.hpp"
#include "coring/runtime/loop_hooks.hpp"
#include "log.hpp"

namespace coring {
namespace {

// Sets the thread's current loop for the duration of a turn.
class CurrentLoop {
 public:
  explicit CurrentLoop(EventLoop* loop) noexcept : previous_(detail::current_loop) {
    detail::current_loop = loop;
  }
  ~CurrentLoop() { detail::current_loop = previous_; }
  CurrentLoop(const CurrentLoop&) = delete;
  CurrentLoop& operator=(const CurrentLoop&) = delete;

 private:
  EventLoop* previous_;
};

constexpr std::uint32_t preferred_flags = ring::setup::single_issuer | ring::setup::defer_taskrun |
                                          ring::setup::coop_taskrun | ring::setup::taskrun_flag;
// What to try, best first, when the caller leaves the flags to us: DEFER_TASKRUN
// (6.1), then COOP_TASKRUN (5.19), then nothing.
constexpr std::array<std::uint32_t, 3> fallback_flags = {
    preferred_flags, ring::setup::coop_taskrun | ring::setup::taskrun_flag, 0};

ring::Ring make_ring(const LoopOptions& options) {
  if (options.entries < 2) {
    throw std::system_error(ring::Errc::entries_zero, "EventLoop needs at least 2 SQ entries");
  }
  auto attempt = [&](std::uint32_t flags) {
    ring::Params params;
    params.flags = flags;
    if (options.cq_entries != 0) {
      params.flags |= ring::setup::cqsize;
      params.cq_entries = options.cq_entries;
    }
    return ring::Ring::create(options.entries, params, options.backend);
  };
  if (options.setup_flags) {
    // With deferred or cooperative task work, TASKRUN_FLAG is what lets the loop see
    // that the kernel holds completions (Ring::cq_ring_needs_flush()): without it an
    // embedded loop's poll() never enters for them, and they are lost to it.
    std::uint32_t flags = *options.setup_flags;
    if ((flags & (ring::setup::defer_taskrun | ring::setup::coop_taskrun)) != 0) {
      flags |= ring::setup::taskrun_flag;
    }
    auto ring = attempt(flags);
    if (!ring) throw std::system_error(ring.error(), "EventLoop");
    return std::move(*ring);
  }
  std::error_code first_error;
  for (std::uint32_t flags : fallback_flags) {
    auto ring = attempt(flags);
    if (ring) {
      if (flags != preferred_flags) {
        runtime_log(detail::LogLevel::warn, "EventLoop",
                    "kernel refused SINGLE_ISSUER|DEFER_TASKRUN|COOP_TASKRUN (" +
                        first_error.message() + "); running with setup flags " +
                        std::to_string(flags));
      }
      return std::move(*ring);
    }
    if (ring.error() != std::errc::invalid_argument) {
      throw std::system_error(ring.error(), "EventLoop");
    }
    if (!first_error) first_error = ring.error();
  }
  throw std::system_error(first_error, "EventLoop");
}

namespace user_data = detail::user_data;

// CQE flags of an operation's CQE that is not its only one: more to come, or a
// zero-copy send's notification.
constexpr std::uint32_t two_cqe_flags = ring::cqe_flags::more | ring::cqe_flags::notif;

// io_uring_enter errors that the next attempt may not see: a signal (EINTR), or the
// kernel short of resources or CQ room (EAGAIN, EBUSY) until completions are reaped.
bool transient(const std::error_code& error) noexcept {
  return error == std::errc::interrupted || error == std::errc::resource_unavailable_try_again ||
         error == std::errc::device_or_resource_busy;
}

// EBADR: the kernel had no memory for a completion beyond the CQ and dropped it. Said.
bool lost_cqes(const std::error_code& error) noexcept {
  if (error.category() != ring::enter_category() || error.value() != EBADR) return false;
  runtime_log(detail::LogLevel::error, "EventLoop",
              "the kernel dropped completions for want of memory (EBADR): the operations they "
              "belong to will not resume; EventLoop::stats().cqes_lost counts them");
  return true;
}

std::system_error enter_failure(const std::error_code& error) {
  return std::system_error(error, "EventLoop: io_uring_enter");
}

// The destructor cancels whatever is in flight with one ASYNC_CANCEL matching every
// request (IORING_ASYNC_CANCEL_ANY | ALL, Linux 5.19). A kernel without those flags
// would reject that cancel and leave the destructor waiting for ever, so a loop refuses
// such a kernel when it is made. The probe, on the new ring before anything else is
// submitted, cancels nothing: -ENOENT where the flags are known, -EINVAL where not.
void require_cancel_any(ring::Ring& ring) {
  ring::Sqe* sqe = ring.get_sqe();
  if (sqe == nullptr) throw std::logic_error("EventLoop: a new ring without a free SQE");
  ring::prep_cancel(*sqe, 0, ring::cancel_flags::any);
  sqe->user_data = user_data::unowned_data;
  auto entered = ring.submit_and_wait(1);
  if (!entered) throw enter_failure(entered.error());
  std::int32_t res = 0;
  (void)ring.for_each_cqe([&res](const ring::Cqe& cqe) { res = cqe.res; });
  if (res == -EINVAL) {
    throw std::system_error(std::make_error_code(std::errc::function_not_supported),
                            "EventLoop: the kernel lacks IORING_ASYNC_CANCEL_ANY (Linux 5.19), "
                            "which a loop needs to cancel what is in flight when it is destroyed");
  }
}

}  // namespace

// The loop's own read of its wake eventfd: completes when another thread posts,
// and re-arms itself.
class EventLoop::WakeOp final : public Operation {
 public:
  explicit WakeOp(EventLoop& loop) noexcept : Operation(&prep_fn, &complete_fn), loop_(&loop) {}

 private:
  static void prep_fn(Operation& self, std::span<ring::Sqe* const> sqes) noexcept {
    auto& op = static_cast<WakeOp&>(self);
    ring::prep_read(*sqes[0], op.loop_->wake_fd_, std::as_writable_bytes(std::span(&op.count_, 1)),
                    0);
  }
  static void complete_fn(Operation& self, const ring::Cqe& cqe, bool) noexcept {
    auto& op = static_cast<WakeOp&>(self);
    // The loop is shutting down: its cancel-all may already have gone by, so a read
    // re-armed now would never be cancelled and the drain would wait for ever (a late
    // post from another thread completes this read during the drain).
    if (cqe.res == -ECANCELED || op.loop_->draining_) return;
    if (cqe.res < 0) {
      runtime_log_error("EventLoop wake read", cqe.res);
    } else {
      ++op.loop_->wake_stats_.eventfd_received;
    }
    op.loop_->submit(op);
  }
  EventLoop* loop_;
  std::uint64_t count_ = 0;
};

// Defined for every compiler, so that a program built with clang before 16 links with a
// library built with g++ (see EventLoop::current()).
[[gnu::noinline]] EventLoop* detail::read_current_loop() noexcept { return detail::current_loop; }

EventLoop::EventLoop(LoopOptions options)
    : ring_(make_ring(options)), owner_(std::this_thread::get_id()) {
  if (options.hooks != nullptr && options.hooks->loop_ != nullptr) {
    throw std::logic_error("EventLoop: LoopOptions::hooks are attached to another loop");
  }
  static_assert(alignof(EventLoop) > user_data::tag_mask);
  if (options.max_in_flight == 1) {  // an operation with a timeout takes two SQEs
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "EventLoop: LoopOptions::max_in_flight must be 0 or at least 2");
  }
  // The loop's own wake read, always in flight, is not the program's to count.
  max_inflight_ = options.max_in_flight != 0 ? options.max_in_flight + 1 : ~std::uint32_t{0} >> 1;
  if ((ring_.features() & ring::feat::nodrop) == 0) {
    throw std::system_error(std::make_error_code(std::errc::function_not_supported),
                            "EventLoop: the kernel lacks IORING_FEAT_NODROP (Linux 5.5), which "
                            "a loop needs to keep completions beyond the CQ's size");
  }
  require_cancel_any(ring_);
  auto probe = ring_.get_probe();
  msg_ring_supported_ = probe && probe->is_supported(ring::Op::msg_ring);
  // Entering through a registered ring fd saves an fd lookup per enter; a kernel
  // without it (before 5.18) is merely slower.
  (void)ring_.register_ring_fd();
  auto wake_op = std::make_unique<WakeOp>(*this);  // first: nothing to undo if it throws
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) throw std::system_error(errno, std::system_category(), "EventLoop: eventfd");
  wake_op_ = wake_op.release();
  submit(*wake_op_);
  hooks_ = options.hooks;
  if (hooks_ != nullptr) hooks_->loop_ = this;
}

EventLoop::~EventLoop() {
  CurrentLoop scope(this);
  cancel_all_and_drain();
  // Work that never ran is dropped now, while every member is alive, and outside the
  // mutex: a spawn_on() still to start abandons its task, which may resume a waiter on
  // another loop. Taking the mutex also orders what posters did before (a task that
  // ended on another loop, its end posted here) before the frames' destruction.
  {
    std::vector<std::function<void()>> never_run;
    {
      std::lock_guard lock(remote_mutex_);
      never_run.swap(remote_work_);
    }
    never_run.clear();
    drained_.clear();
  }
  // Spawned tasks not ended here: destroy them (and the tasks they await); a handle
  // still held sees them cancelled.
  while (!detached_.empty()) detached_.front().abandon();
  for (const std::coroutine_handle<> handle : abandoned_) handle.destroy();
  ready_.clear();
  {
    // A thread inside post() or stop() holds the mutex while it uses this loop (the
    // work list, the wake eventfd, our ring fd for MSG_RING): let it finish.
    std::lock_guard lock(remote_mutex_);
  }
  delete wake_op_;
  if (notify_epoll_fd_ >= 0) ::close(notify_epoll_fd_);
  if (notify_fd_ >= 0) ::close(notify_fd_);
  ::close(wake_fd_);
  if (hooks_ != nullptr) hooks_->loop_ = nullptr;
}

LoopStats EventLoop::stats() const noexcept {
  LoopStats stats = stats_;
  stats.in_flight = inflight_;
  stats.cqes_lost = ring_.cq_overflow();
  return stats;
}

void EventLoop::prepare_run() {
  abandoned_.reserve(abandoned_.size() + run_depth_ + 1);
  ready_.reserve_more(1);
}

void EventLoop::run_to_completion(std::coroutine_handle<> handle) {
  const auto outer = std::exchange(run_target_, handle);
  ++run_depth_;
  schedule(handle);  // prepare_run() made room
  try {
    while (!handle.done()) run_once(std::chrono::hours(24));
  } catch (...) {
    run_target_ = outer;
    --run_depth_;
    // Its operations may be in flight: only the drain makes destroying it safe.
    if (!handle.done()) abandoned_.push_back(handle);
    throw;
  }
  run_target_ = outer;
  --run_depth_;
}

void EventLoop::run() {
  while (!stop_requested_.exchange(false, std::memory_order_acq_rel)) {
    run_once(std::chrono::hours(24));
  }
}

void EventLoop::stop() noexcept {
  if (on_loop_thread()) {
    stop_requested_.store(true, std::memory_order_release);
    return;
  }
  // Under the mutex, like every other thread's access: a loop that sees the request,
  // returns from run() and is destroyed must not be destroyed under our feet.
  std::lock_guard lock(remote_mutex_);
  stop_requested_.store(true, std::memory_order_release);
  wake_locked();
}

void EventLoop::set_hooks(LoopHooks* hooks) {
  if (hooks_ == hooks) return;
  if (hooks_ != nullptr && hooks_->holds_completions()) {
    throw std::logic_error(
        "EventLoop::set_hooks: the attached hooks still hold completions or have requests of "
        "their own in flight (a FaultInjector: call its quiesce() and let the loop turn until "
        "holds_completions() is false)");
  }
  if (hooks != nullptr && hooks->loop_ != nullptr) {
    throw std::logic_error("EventLoop::set_hooks: these hooks are attached to another loop");
  }
  if (hooks_ != nullptr) hooks_->loop_ = nullptr;
  hooks_ = hooks;
  if (hooks_ != nullptr) hooks_->loop_ = this;
}

LoopHooks::~LoopHooks() {
  if (loop_ != nullptr) loop_->hooks_ = nullptr;
}

std::size_t EventLoop::run_once(std::chrono::nanoseconds timeout) {
  CurrentLoop scope(this);
  const std::size_t done = turn(timeout.count() > 0, timeout);
  // What the reap prepared (a re-armed read, say: the wake-up's own) reaches the ring
  // now: the host may sleep on notify_fd() until it completes.
  if (ring_.sq_ready() > 0) submit_now();
  notify_embedder();
  return done;
}

std::size_t EventLoop::turn(bool may_wait, std::chrono::nanoseconds timeout) {
  std::size_t done = 0;
  if (wake_pending_.load(std::memory_order_acquire)) drain_remote();
  done += run_ready();
  submit_queued();
  const bool wait =
      may_wait && ready_.empty() && !stop_requested_.load(std::memory_order_relaxed) &&
      !wake_pending_.load(std::memory_order_acquire) && !(run_target_ && run_target_.done());
  enter(wait, timeout);
  done += reap();
  return done;
}

std::size_t EventLoop::run_ready() {
  // Only what is ready now: a coroutine that re-queues itself runs on the next turn,
  // after the ring has had its say.
  std::size_t count = ready_.size();
  const std::size_t resumed = count;
  // empty(): a run() nested in a coroutine resumed here runs turns of its own.
  while (count-- > 0 && !ready_.empty()) {
    // Before the pop: if the room cannot be made, the coroutine stays queued.
    ready_.reserve_more(ReadyQueue::headroom);
    ready_.pop_front().resume();
  }
  return resumed;
}

void EventLoop::before_submit() noexcept {
  if (hooks_ != nullptr) [[unlikely]] {
    hooks_->before_submit(ring_, reinterpret_cast<std::uint64_t>(wake_op_));
    hooks_->submit_first(ring_);  // what the hooks hand over first; the rest is ours
  }
}

void EventLoop::submit_now() noexcept {
  before_submit();
  (void)ring_.submit();
}

void EventLoop::enter(bool wait, std::chrono::nanoseconds timeout) {
  if (hooks_ != nullptr) [[unlikely]] {
    hooks_->before_submit(ring_, reinterpret_cast<std::uint64_t>(wake_op_));
    if (hooks_->skip_enter()) {
      // As EBUSY: the SQEs are in the SQ (published, as a submit publishes them before
      // it enters) and the next enter hands them over.
      (void)ring_.flush_sq();
      return;
    }
    hooks_->submit_first(ring_);
  }
  Result<std::uint32_t> entered = !wait ? ring_.submit()
                                  : timeout >= std::chrono::hours(24)
                                      ? ring_.submit_and_wait(1)
                                      : ring_.submit_and_wait_timeout(1, timeout);
  if (entered) return;
  const std::error_code error = entered.error();
  // io_uring_enter's errno values only: the ring's own codes (a timed wait the kernel
  // lacks, say) share numbers with them and are failures.
  if (error.category() == ring::enter_category()) {
    switch (error.value()) {
      case EINTR:   // a signal: the next turn tries again
      case ETIME:   // the wait timed out
      case EAGAIN:  // the kernel is short of resources or the CQ is overcommitted:
      case EBUSY:   // reaping (next) frees both, and the next turn submits again
        return;
      case EBADR:  // the kernel dropped completions: said, and the loop goes on
        return (void)lost_cqes(error);
      default:
        break;
    }
  }
  throw enter_failure(error);
}

// How many of `ready` CQEs to reap now: as many as the ready queue has room for, the
// queue's headroom kept (see ReadyQueue). It grows if it can; when it cannot, the
// batch shrinks and the other CQEs wait in the ring for a later turn, after the queue
// has drained (the kernel keeps what overflows the CQ: IORING_FEAT_NODROP). While the
// loop drains, the coroutines that completions queue are never resumed: the queue is
// emptied instead of grown, so that the noexcept drain allocates nothing.
std::uint32_t EventLoop::batch_room(std::uint32_t ready) {
  if (draining_) [[unlikely]]
    ready_.clear();
  const std::size_t wanted = std::size_t{ready} * ReadyQueue::per_cqe + ReadyQueue::headroom;
  if (ready_.free() >= wanted) [[likely]]
    return ready;
  if (!draining_) {
    try {
      ready_.reserve_more(wanted);
      return ready;
    } catch (const std::bad_alloc&) {
      // Fewer this turn.
    }
  }
  const std::size_t room = ready_.free() > ReadyQueue::headroom
                               ? (ready_.free() - ReadyQueue::headroom) / ReadyQueue::per_cqe
                               : 0;
  return static_cast<std::uint32_t>(std::min<std::size_t>(ready, room));
}

std::size_t EventLoop::reap() {
  std::size_t handled = 0;
  // Hooks are asked once per reap, whatever the kernel's flags say (a seed replays).
  bool flush = hooks_ != nullptr && hooks_->flush_cq();
  for (;;) {
    // CQ overflow or pending task work: only an enter with getevents posts them.
    if (std::exchange(flush, false) || ring_.cq_ring_needs_flush()) {
      if ((ring_.sq_ring_flags() & ring::sq_flags::cq_overflow) != 0) ++stats_.overflow_flushes;
      auto entered = ring_.enter(0, 0, ring::enter_flags::getevents);
      if (!entered && !lost_cqes(entered.error()) && !transient(entered.error())) {
        throw enter_failure(entered.error());
      }
    }
    const std::uint32_t ready = batch_room(ring_.cq_ready());
    if (hooks_ != nullptr) [[unlikely]] {
      std::span<const ring::Cqe> batch;
      if (!hooks_->reap(ring_, reinterpret_cast<std::uint64_t>(wake_op_), ready, batch)) break;
      dispatch_batch(batch);
      handled += batch.size();
      continue;
    }
    if (ready == 0) break;  // none, or no room: the ready queue is full and runs first
    // In place: dispatch() only records results and queues coroutines, it never reaps.
    const std::uint32_t count =
        ring_.for_each_cqe([this](const ring::Cqe& cqe) { dispatch(cqe); }, ready);
    handled += count;
  }
  if (handled > 0) submit_queued();
  return handled;
}

// Hooks copy their batches out of the ring before the room for them is made: under
// hooks an allocation failure here loses the batch (fault tests do not combine the two).
// A draining loop empties the queue before each CQE instead (see batch_room()).
void EventLoop::dispatch_batch(std::span<const ring::Cqe> batch) {
  if (!draining_) ready_.reserve_more(batch.size() * ReadyQueue::per_cqe);
  for (const ring::Cqe& cqe : batch) {
    if (draining_) ready_.clear();
    dispatch(cqe);
  }
}

void EventLoop::dispatch(const ring::Cqe& cqe) noexcept {
  const std::uint64_t data = cqe.user_data;
  const bool final = (cqe.flags & ring::cqe_flags::more) == 0;
  static_assert(alignof(Operation) > user_data::tag_mask);
  const user_data::Kind kind = user_data::decode(data);
  if (kind == user_data::Kind::operation) [[likely]] {
    auto& op = *reinterpret_cast<Operation*>(data);
    if (op.complete_ == nullptr && (cqe.flags & two_cqe_flags) == 0) [[likely]] {
      // Nearly every CQE: the only one of a one-SQE operation that the loop completes.
      --inflight_;
      op.state_ = Operation::State::idle;
      op.res_ = cqe.res;
      op.cqe_flags_ = cqe.flags;
      ready_.push_back(op.waiter_);
      return;
    }
    if (final) --inflight_;
    deliver(op, cqe, final, false);
    return;
  }
  switch (kind) {
    case user_data::Kind::linked_timeout:
      if (final) --inflight_;
      deliver(*reinterpret_cast<Operation*>(user_data::address_of(data)), cqe, final, true);
      return;
    case user_data::Kind::unowned:  // a cancel request's own completion, submit_detached()'s
      if (final) --inflight_;
      return;
    case user_data::Kind::msg_ring_sent:
      if (final) --inflight_;
      msg_ring_wake_sent(cqe);
      return;
    case user_data::Kind::msg_ring_wake:
      // Another loop's wake: not counted in inflight_; the next turn drains the work.
      ++wake_stats_.msg_ring_received;
      return;
    case user_data::Kind::operation:
    case user_data::Kind::hooks:
    case user_data::Kind::invalid:
      break;
  }
  // Hooks take their own CQEs out and cannot be detached while any is in flight; nothing
  // else submits these values. Dropped, never taken for an address.
  assert(false && "a CQE with a user_data that no request of this loop carries");
  runtime_log(detail::LogLevel::error, "EventLoop",
              "dropped a CQE with the unknown user_data " + std::to_string(data));
}

bool EventLoop::room_for(std::uint32_t sqes) noexcept {
  if (inflight_ + sqes > max_inflight_) return false;
  if (ring_.sq_space_left() >= sqes) return true;
  // The SQ is full of prepared SQEs: hand them to the kernel and look again.
  submit_now();
  return ring_.sq_space_left() >= sqes;
}

void EventLoop::submit_slow(Operation& op) noexcept {
  if (queued_.empty() && room_for(op.sqe_count_)) {
    prep(op);
    return;
  }
  op.state_ = Operation::State::queued;
  queued_.push_back(op);
  ++stats_.waiting;
  if (stats_.waits++ == 0) {
    runtime_log(detail::LogLevel::warn, "EventLoop",
                "an operation waits for admission (LoopOptions::max_in_flight reached, or the "
                "kernel takes no SQE for now): EventLoop::stats() counts them; said once");
  }
}

void EventLoop::submit_queued() noexcept {
  while (!queued_.empty() && room_for(queued_.front().sqe_count_)) {
    --stats_.waiting;
    prep(queued_.pop_front());
  }
}

void EventLoop::cancel(Operation& op) noexcept {
  if (op.state_ == Operation::State::queued) {
    // Never reached the kernel: complete it here with the CQEs the kernel would have
    // posted; deliver() makes it idle with the last one.
    queued_.unlink(op);
    --stats_.waiting;
    op.state_ = Operation::State::submitted;
    op.cqes_left_ = op.sqe_count_;
    const auto address = reinterpret_cast<std::uint64_t>(&op);
    for (std::uint8_t i = 0; i < op.sqe_count_; ++i) {
      const ring::Cqe cqe{address | (i == 1 ? user_data::linked_timeout_tag : 0), -ECANCELED, 0};
      deliver(op, cqe, true, i == 1);
    }
    return;
  }
  if (op.state_ != Operation::State::submitted) {
    // An idle operation that asked to hear of cancels (a multishot stream between
    // requests, whose consumer may wait on it) gets a CQE of its own, marked second.
    if (op.state_ == Operation::State::idle && op.hears_idle_cancel_) {
      op.complete_(op, ring::Cqe{reinterpret_cast<std::uint64_t>(&op), -ECANCELED, 0}, true);
    }
    return;
  }
  const auto target = reinterpret_cast<std::uint64_t>(&op);
  if (!submit_detached([target](ring::Sqe& sqe) { ring::prep_cancel(sqe, target, 0); })) {
    defer_cancel(op);  // the kernel consumed nothing (EBUSY/EAGAIN): retry on the next turn
  }
}

void EventLoop::request_cancel(Operation& op) noexcept {
  if (on_loop_thread()) {
    cancel(op);
    signal_host();  // the cancel is prepared; a turn submits it
    return;
  }
  defer_cancel(op);
}

void EventLoop::signal_host() noexcept {
  // Only from the loop's thread outside a turn: a turn re-arms the fd as it ends.
  if (notify_fd_ < 0 || detail::current_loop == this) return;
  const std::uint64_t one = 1;
  (void)!::write(notify_fd_, &one, sizeof(one));
}

void EventLoop::defer_cancel(Operation& op) noexcept {
  std::lock_guard lock(remote_mutex_);
  if (!remote_cancels_.linked(op)) remote_cancels_.push_back(op);
  wake_locked();
}

void EventLoop::forget_cancel(Operation& op) noexcept {
  std::lock_guard lock(remote_mutex_);
  if (remote_cancels_.linked(op)) remote_cancels_.unlink(op);
}

void EventLoop::post(std::function<void()> fn) {
  std::lock_guard lock(remote_mutex_);
  remote_work_.push_back(std::move(fn));
  wake_locked();
}

void EventLoop::resume_soon(std::coroutine_handle<> handle) {
  if (detail::current_loop == this) {
    schedule(handle);
    return;
  }
  post([handle] { handle.resume(); });
}

// With remote_mutex_ held: the wake is the last thing another thread does to this
// loop, and the destructor takes the mutex before it closes the eventfd and the ring.
void EventLoop::wake_locked() noexcept {
  wake_pending_.store(true, std::memory_order_release);
  EventLoop* const poster = detail::current_loop;
  // Our own turn: turn() will not wait while wake_pending_ or stop_requested_ is set,
  // and notify_embedder() looks at wake_pending_.
  if (poster == this) return;
  if (wake_sent_) return;  // a wake is on its way; the drain it causes takes this too
  wake_sent_ = true;
  if (poster != nullptr && poster->send_msg_ring_wake(*this)) return;
  write_wake_fd();
}

void EventLoop::write_wake_fd() noexcept {
  const std::uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof(one)) < 0 && errno != EAGAIN) {
    runtime_log_error("EventLoop::wake", -errno);
  }
  // An embedded loop's host hears of it at once through notify_fd(): the ring's own
  // signal of that fd, for the read the write completes, comes from inside the
  // eventfd's wake-up, where the kernel defers it to an RCU callback (milliseconds).
  if (const int notify = embed_signal_fd_.load(std::memory_order_acquire); notify >= 0) {
    (void)!::write(notify, &one, sizeof(one));
  }
}

// Runs on the poster's loop thread, inside its turn: the SQE goes out with the
// turn's next enter, which every turn makes after resuming its coroutines. Like a
// cancel request it skips admission: at most one per target per drain is in flight.
bool EventLoop::send_msg_ring_wake(EventLoop& target) noexcept {
  // A ring reaches only rings of its own backend (the kernel's cannot post into an
  // emulated CQ, nor the emulation into the kernel's): across backends, the eventfd.
  if (!msg_ring_supported_ || draining_ || target.backend() != backend()) return false;
  ring::Sqe* sqe = ring_.get_sqe();
  if (sqe == nullptr) {
    submit_now();
    sqe = ring_.get_sqe();
  }
  if (sqe == nullptr) return false;
  ring::prep_msg_ring(*sqe, target.ring_.fd(), 0, user_data::msg_ring_wake_data, 0);
  sqe->user_data = reinterpret_cast<std::uint64_t>(&target) | user_data::msg_ring_sent_tag;
  ++inflight_;
  ++wake_stats_.msg_ring_sent;
  return true;
}

// The sender's CQE for a MSG_RING wake. If the kernel could not allocate what it
// needs to post into the target (ENOMEM, or EOVERFLOW from a full CQ), the target
// still has to be woken: fall back to its eventfd. Any other error (EBADF, EBADFD)
// means its ring is gone — it did the work and was destroyed before our SQE went
// out — and there is no one to wake. Not while this loop shuts down either: loops
// that shut down together (Runtime) no longer need waking.
void EventLoop::msg_ring_wake_sent(const ring::Cqe& cqe) noexcept {
  if (cqe.res >= 0) return;
  runtime_log_error("EventLoop MSG_RING wake", cqe.res);
  if ((cqe.res == -ENOMEM || cqe.res == -EOVERFLOW || cqe.res == -EBADFD) && !draining_) {
    auto& target = *reinterpret_cast<EventLoop*>(user_data::address_of(cqe.user_data));
    std::lock_guard lock(target.remote_mutex_);
    target.write_wake_fd();
  }
}

void EventLoop::drain_remote() {
  // Taken whole, under the mutex like every list of remote cancels (forget_cancel()
  // unlinks from whichever holds the operation).
  decltype(remote_cancels_) cancels;
  {
    std::lock_guard lock(remote_mutex_);
    wake_pending_.store(false, std::memory_order_release);
    wake_sent_ = false;
    // Work a drain that threw left over runs first; what came since waits for the next.
    if (drained_next_ == drained_.size()) {
      drained_.clear();
      drained_next_ = 0;
      drained_.swap(remote_work_);
    } else {
      wake_pending_.store(true, std::memory_order_release);
    }
    cancels.splice_back(remote_cancels_);
  }
  // Outside the lock: cancel() may need to defer again (relinking the operation into
  // remote_cancels_, which is why each one is unlinked before it is cancelled). The
  // operations are alive: each dies only on this thread, and only after forget_cancel().
  // Each cancel and each function may queue coroutines from noexcept code: the ready
  // queue's headroom is made first (see ReadyQueue), and if it cannot be, what is left
  // goes back for a later drain and std::bad_alloc leaves the turn.
  for (;;) {
    Operation* op = nullptr;
    {
      std::lock_guard lock(remote_mutex_);
      if (cancels.empty()) break;
      op = &cancels.front();
      try {
        ready_.reserve_more(ReadyQueue::headroom);
      } catch (...) {
        remote_cancels_.splice_back(cancels);
        wake_locked();
        throw;
      }
      cancels.unlink(*op);
    }
    cancel(*op);
  }
  // One throwing function must not drop the rest of the batch (resumptions among them).
  while (drained_next_ < drained_.size()) {
    if (ready_.free() < ReadyQueue::headroom) [[unlikely]] {
      try {
        ready_.reserve_more(ReadyQueue::headroom);
      } catch (...) {
        wake_pending_.store(true, std::memory_order_release);  // the rest, next turn
        throw;
      }
    }
    // Moved out (no allocation): fn() may turn a nested loop, which drains too.
    const std::function<void()> fn = std::move(drained_[drained_next_++]);
    try {
      fn();
    } catch (...) {
      ++unhandled_;
      runtime_log_exception("posted function", std::current_exception());
    }
  }
}

void EventLoop::cancel_all_and_drain() noexcept {
  draining_ = true;
  while (!queued_.empty()) cancel(queued_.front());
  if (inflight_ == 0) return;
  (void)submit_detached([](ring::Sqe& sqe) {
    ring::prep_cancel(sqe, 0, ring::cancel_flags::any | ring::cancel_flags::all);
  });
  // The coroutines the completions queue are not resumed: their frames are destroyed next.
  while (inflight_ > 0) {
    before_submit();
    auto entered = ring_.submit_and_wait(1);
    if (!entered && !transient(entered.error())) {
      runtime_log_error("EventLoop::~EventLoop", entered.error());
      return;
    }
    (void)reap();
  }
}

int EventLoop::notify_fd() {
  if (notify_fd_ < 0) {
    notify_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (notify_fd_ < 0)
      throw std::system_error(errno, std::system_category(), "EventLoop: eventfd");
    ring_.register_eventfd(notify_fd_).value();
    if (ring_.backend() == ring::Backend::epoll) {
      // The emulation posts completions only when entered: the embedder must also wake
      // when its epoll set (sockets, timers, workers) has something. One epoll fd that
      // watches both is readable when either is.
      notify_epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
      if (notify_epoll_fd_ < 0)
        throw std::system_error(errno, std::system_category(), "EventLoop: epoll_create1");
      for (const int fd : {notify_fd_, ring_.fd()}) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (::epoll_ctl(notify_epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0)
          throw std::system_error(errno, std::system_category(), "EventLoop: epoll_ctl");
      }
    }
    // The wake-up's read (and anything else prepared before the host's first turn)
    // goes to the ring now, so that a post() before that turn signals the fd.
    submit_now();
    embed_signal_fd_.store(notify_fd_, std::memory_order_release);
    notify_embedder();
  }
  return notify_epoll_fd_ >= 0 ? notify_epoll_fd_ : notify_fd_;
}

void EventLoop::notify_embedder() noexcept {
  if (notify_fd_ < 0) return;
  std::uint64_t count = 0;
  (void)!::read(notify_fd_, &count, sizeof(count));  // reset: we are handling the work now
  const bool has_work = !ready_.empty() || !queued_.empty() || ring_.cq_ready() > 0 ||
                        ring_.cq_ring_needs_flush() ||
                        wake_pending_.load(std::memory_order_acquire);
  if (has_work) {
    const std::uint64_t one = 1;
    (void)!::write(notify_fd_, &one, sizeof(one));
  }
}

void EventLoop::ReadyQueue::grow(std::size_t needed) {
  std::size_t capacity = mask_ + 1;
  while (capacity < needed) capacity *= 2;
  auto bigger = std::make_unique<std::coroutine_handle<>[]>(capacity);
  const std::size_t count = size();
  for (std::size_t i = 0; i < count; ++i) bigger[i] = slots_[(head_ + i) & mask_];
  slots_ = std::move(bigger);
  mask_ = capacity - 1;
  head_ = 0;
  tail_ = count;
}

namespace detail {

void JoinState::start() noexcept {
  loop_->detached_.push_front(*this);
  loop_->schedule(frame_);
  loop_->signal_host();  // from the host between an embedded loop's turns
}

std::coroutine_handle<> JoinState::finish() noexcept {
  if (current_loop != loop_) {
    // The task ended on another loop (switch_to): the frame is in its own loop's list,
    // which only that loop's thread touches, so the end is completed there.
    loop_->post([this] { end().resume(); });
    return std::noop_coroutine();
  }
  return end();
}

std::coroutine_handle<> JoinState::end() noexcept {
  decltype(loop_->detached_)::unlink(*this);
  std::unique_lock lock(mutex_);
  ended_ = true;
  if (!handle_alive_) {
    lock.unlock();
    report(task_promise_->exception(), "spawned task");
    frame_.destroy();
    return std::noop_coroutine();
  }
  const std::coroutine_handle<> waiter = std::exchange(waiter_, {});
  if (!waiter) return std::noop_coroutine();
  // Both on this turn: straight to the waiter, which releases the frame after the lock.
  if (waiter_loop_ == loop_) return waiter;
  // Under the mutex: the waiter's frame, destroyed with its loop, unregisters under it
  // too, so that loop is alive while we post to it.
  waiter_loop_->resume_soon(waiter);
  return std::noop_coroutine();
}

void JoinState::abandon() noexcept {
  if (decltype(loop_->detached_)::linked(*this)) decltype(loop_->detached_)::unlink(*this);
  // Outside the mutex: the task's destruction may release handles, this one's included.
  drop_task_(*this);
  task_promise_ = nullptr;
  std::unique_lock lock(mutex_);
  ended_ = true;
  cancelled_ = true;
  if (!handle_alive_) {
    lock.unlock();
    frame_.destroy();
    return;
  }
  if (const std::coroutine_handle<> waiter = std::exchange(waiter_, {})) {
    waiter_loop_->resume_soon(waiter);  // under the mutex, as in finish()
  }
}

bool JoinState::ended() noexcept {
  std::lock_guard lock(mutex_);
  return ended_;
}

bool JoinState::wait(std::coroutine_handle<> waiter) noexcept {
  std::lock_guard lock(mutex_);
  if (ended_) return false;
  assert(current_loop != nullptr && "co_await of a JoinHandle outside a turn of an EventLoop");
  waiter_ = waiter;
  waiter_loop_ = current_loop;
  return true;
}

void JoinState::cancel_wait(std::coroutine_handle<> waiter) noexcept {
  std::lock_guard lock(mutex_);
  if (waiter_ == waiter) waiter_ = {};
}

void JoinState::release(bool observed) noexcept {
  std::unique_lock lock(mutex_);
  handle_alive_ = false;
  if (!ended_) return;
  lock.unlock();
  if (!observed && !cancelled_) {
    report(task_promise_->exception(), "spawned task, its JoinHandle dropped without co_await");
  }
  frame_.destroy();
}

void JoinState::throw_if_cancelled() const {
  if (cancelled_) {
    throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                            "JoinHandle: the task's loop was destroyed before the task finished");
  }
}

// Counted only on the loop's own thread: elsewhere the loop may be gone.
void JoinState::report(std::exception_ptr error, const char* what) noexcept {
  if (!error) return;
  if (current_loop == loop_) ++loop_->unhandled_;
  runtime_log_exception(what, error);
}

}  // namespace detail

}  // namespace coring
