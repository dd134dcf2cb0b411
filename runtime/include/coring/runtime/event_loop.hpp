// EventLoop: one ring, one thread, and the coroutines that wait on it.
//
// A turn of the loop resumes the coroutines that are ready, submits the SQEs they
// queued and waits for completions in one io_uring_enter(2), then reaps CQEs in
// batches. Each CQE's user_data is the address of an Operation living in an
// awaiting coroutine's frame; the loop hands the CQE to it, and the operation queues
// its coroutine to be resumed on the next turn — never from inside the reap.
//
// An EventLoop belongs to the thread that created it (SINGLE_ISSUER and
// DEFER_TASKRUN rings require that): create, run and destroy it there. post(),
// resume_soon() and stop() are the only members other threads may call.
#pragma once

#include <array>
#include <atomic>
#include <cassert>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "coring/ring/ring.hpp"
#include "coring/runtime/detail/user_data.hpp"
#include "coring/runtime/join.hpp"
#include "coring/runtime/loop_hooks.hpp"
#include "coring/runtime/operation.hpp"
#include "coring/runtime/task.hpp"

namespace coring {

struct LoopOptions {
  // SQ entries (a power of two, 2..32768); the CQ gets cq_entries, or the kernel's 2x.
  std::uint32_t entries = 256;
  std::uint32_t cq_entries = 0;
  // Setup flags. Unset: SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN | TASKRUN_FLAG,
  // falling back (with one log line) to what the kernel accepts. Set, they are used as
  // given, with TASKRUN_FLAG added to DEFER_TASKRUN or COOP_TASKRUN (the loop relies on
  // it to see completions the kernel holds back).
  std::optional<std::uint32_t> setup_flags{};
  // The ring's backend (ring::Backend): automatic, the default, follows CORING_BACKEND
  // and otherwise takes io_uring, or the epoll emulation where io_uring is blocked (one
  // warning in the log says so). EventLoop::backend() tells which one runs.
  ring::Backend backend = ring::Backend::automatic;
  // What stands between the loop and its ring (loop_hooks.hpp): nullptr for nothing, as
  // in production; coring::testing::FaultInjector for seeded faults. Hooks serve one
  // loop; destroyed first, they detach themselves (see EventLoop::set_hooks()).
  LoopHooks* hooks = nullptr;
  // At most this many of the program's SQEs in flight (0 or at least 2); beyond it,
  // operations wait in a FIFO (LoopStats). 0, the default: no bound, not the CQ's either.
  std::uint32_t max_in_flight = 0;
};

// What a loop holds and had to wait for; read on its thread. Completions beyond the CQ
// wait in the kernel's overflow list (IORING_FEAT_NODROP), which the reap flushes; an
// operation waits only for LoopOptions::max_in_flight or, if the kernel takes no SQE
// for now (EBUSY, EAGAIN), for SQ room.
struct LoopStats {
  std::uint32_t in_flight = 0;         // final CQEs to come, the loop's wake read's included
  std::uint32_t waiting = 0;           // operations waiting for admission now
  std::uint64_t waits = 0;             // operations that ever had to wait
  std::uint64_t overflow_flushes = 0;  // enters that moved the kernel's overflow into the CQ
  std::uint64_t cqes_lost = 0;         // completions the kernel dropped (no memory for them)
};

// How other threads woke a loop, for tests and diagnostics. Read on the loop's thread
// (or once it no longer runs): the counters are plain integers of that thread.
struct WakeStats {
  std::uint64_t msg_ring_sent = 0;      // MSG_RING wakes this loop sent to other loops
  std::uint64_t msg_ring_received = 0;  // MSG_RING wake CQEs this loop reaped
  std::uint64_t eventfd_received = 0;   // reads of the wake eventfd that completed
};

namespace detail {
class LoopOps;

// The loop whose turn runs on this thread (EventLoop::current()). Constant-initialised,
// so reading it is one TLS load, with no init-on-first-use wrapper: every operation
// reads it when it starts.
inline constinit thread_local EventLoop* current_loop = nullptr;
// current_loop read by a call the compiler cannot inline (see EventLoop::current()).
EventLoop* read_current_loop() noexcept;

}  // namespace detail

class EventLoop {
 public:
  explicit EventLoop(LoopOptions options = {});
  // Cancels every operation in flight, waits for the kernel to finish with each, then
  // destroys the spawned tasks that are still suspended, and finally the ring.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // The loop whose turn is running on this thread, or nullptr.
  [[nodiscard]] static EventLoop* current() noexcept {
#if defined(__clang__) && __clang_major__ < 16
    // clang before 16 may keep a thread_local's address in a coroutine frame across a
    // suspension, so a coroutine that switch_to() moved to another thread could read
    // the first thread's loop: with it the read is a call, which computes the address
    // on the thread that runs.
    return detail::read_current_loop();
#else
    return detail::current_loop;
#endif
  }

  // Drives `task` to completion on this thread and returns its value or rethrows.
  // If the loop itself fails first (run_once() throws), so does run(): the task, which
  // may still have operations in flight, is then kept by the loop and destroyed with
  // it, after the drain.
  template <typename T>
  T run(Task<T> task);
  // Runs until stop(). A stop() that came before run() makes it return at once; run()
  // consumes the request, so the next run() runs again.
  void run();
  // Makes run() return after its current turn. Any thread.
  void stop() noexcept;

  // One turn: resumes what is ready, submits, waits up to `timeout` for a completion
  // if nothing is ready, and reaps. Returns the number of coroutines resumed and
  // completions handled.
  std::size_t run_once(std::chrono::nanoseconds timeout);
  // One turn that never blocks.
  std::size_t poll() { return run_once(std::chrono::nanoseconds::zero()); }
  // A file descriptor that is readable when the loop has work (a CQE posted, a
  // coroutine ready, a post() waiting), so that another event loop can poll it and
  // call poll() when it fires.
  [[nodiscard]] int notify_fd();

  // Starts `task` on a later turn of this loop and returns its JoinHandle (join.hpp),
  // which a task on any loop may co_await for the result. Dropping the handle detaches
  // the task: an exception escaping it is then logged and counted. Loop thread (or the
  // host of an embedded loop between turns); another thread uses Runtime::spawn_on().
  template <typename T>
  JoinHandle<T> spawn(Task<T> task);
  // Exceptions that escaped spawned tasks and posted functions.
  [[nodiscard]] std::uint64_t unhandled_exceptions() const noexcept { return unhandled_; }
  // Runs `fn` on the loop's thread during a later turn. Any thread. An exception
  // escaping fn is logged and counted like a spawned task's. The loop is woken
  // with IORING_OP_MSG_RING from the poster's own ring when the poster is another
  // loop's turn, and through the wake eventfd from a thread without a loop. The loop
  // must outlive the call; work still queued when the loop is destroyed is dropped.
  void post(std::function<void()> fn);
  // Resumes `handle` on this loop's thread: schedule() when called from this loop's
  // own turn, post() from anywhere else. Any thread.
  void resume_soon(std::coroutine_handle<> handle);
  [[nodiscard]] const WakeStats& wake_stats() const noexcept { return wake_stats_; }
  [[nodiscard]] LoopStats stats() const noexcept;
  // From now on, what this loop submits and reaps passes through `hooks` (see
  // loop_hooks.hpp; LoopOptions::hooks sets them from the start); nullptr detaches them.
  // Hooks destroyed while attached detach themselves. Throws std::logic_error, changing
  // nothing, while the attached hooks hold completions (LoopHooks::holds_completions():
  // for a FaultInjector, quiesce() it and let the loop turn), or when `hooks` are
  // attached to another loop.
  void set_hooks(LoopHooks* hooks);
  [[nodiscard]] LoopHooks* hooks() const noexcept { return hooks_; }

  // Inspection of the loop's ring (its flags, sizes, features, probe). Operations and
  // ring-level setup (buffer groups, io-wq affinity) take it through detail::LoopOps:
  // an SQE taken from the ring directly would bypass the loop's count of what is in flight.
  [[nodiscard]] const ring::Ring& ring() const noexcept { return ring_; }
  // The backend this loop runs on: io_uring, or the epoll emulation.
  [[nodiscard]] ring::Backend backend() const noexcept { return ring_.backend(); }
  [[nodiscard]] bool on_loop_thread() const noexcept {
    return std::this_thread::get_id() == owner_;
  }
  // Operations in flight, counted in the final CQEs still to come.
  [[nodiscard]] std::uint32_t in_flight() const noexcept { return inflight_; }
  // True while the destructor cancels and reaps what is left: completions that arrive
  // now reach no coroutine, so an operation that produced a resource must release it.
  [[nodiscard]] bool draining() const noexcept { return draining_; }

  // A request nobody waits for: `fill` writes one SQE now — into the SQ, ahead of
  // every SQE prepared after this call, so the kernel issues it first — and its CQE is
  // counted and dropped. For requests whose result does not matter, such as shutting
  // down a connection that an idle timeout ends. Returns false, having prepared
  // nothing, when the SQ has no room even after handing its SQEs to the kernel. Loop
  // thread only.
  template <typename Fill>
  bool submit_detached(Fill&& fill) noexcept {
    ring::Sqe* sqe = ring_.get_sqe();
    if (sqe == nullptr) {
      submit_now();
      sqe = ring_.get_sqe();
      if (sqe == nullptr) return false;
    }
    fill(*sqe);
    sqe->user_data = detail::user_data::unowned_data;  // dispatch() counts it and drops it
    ++inflight_;
    return true;
  }

 private:
  // --- For operations: detail::LoopOps says what each does ----------------------------
  friend class detail::LoopOps;
  void submit(Operation& op) noexcept {
    if (queued_.empty() && inflight_ + op.sqe_count_ <= max_inflight_ &&
        ring_.sq_space_left() >= op.sqe_count_) [[likely]] {
      prep(op);
      return;
    }
    submit_slow(op);
  }
  template <typename Fill>
  void submit_one(Operation& op, Fill& fill) noexcept {
    if (queued_.empty() && inflight_ < max_inflight_) [[likely]] {
      if (ring::Sqe* sqe = ring_.get_sqe()) [[likely]] {
        fill(*sqe);
        sqe->user_data = reinterpret_cast<std::uint64_t>(&op);
        op.state_ = Operation::State::submitted;
        op.cqes_left_ = 1;
        ++inflight_;
        return;
      }
    }
    submit_slow(op);
  }
  void cancel(Operation& op) noexcept;
  void request_cancel(Operation& op) noexcept;
  void forget_cancel(Operation& op) noexcept;
  // Allocates nothing while the loop's reserve holds (see ReadyQueue).
  void schedule(std::coroutine_handle<> handle) noexcept { ready_.push_back(handle); }

  friend class detail::JoinState;
  friend class LoopHooks;  // detaches itself when destroyed first
  class WakeOp;

  // A FIFO of coroutines to resume, grown by doubling (no allocation once warm). Head
  // and tail are free-running counters; only `& mask_` makes them slots.
  //
  // Growth allocates, and most pushes come from noexcept code (a completion, a close):
  // a growth that fails there would end the process. So the loop makes room only where
  // failing is safe. Before it resumes a coroutine it keeps `headroom` slots free for
  // what that coroutine's noexcept calls queue: a failed growth throws std::bad_alloc
  // out of run_once(), the coroutine still queued. Before it reaps it makes room for
  // what the batch can queue, the headroom kept: when the queue cannot grow, it reaps
  // fewer CQEs this turn and the rest wait in the ring. The queue starts with twice
  // the headroom, so that a loop with few coroutines ready at once never grows it.
  class ReadyQueue {
   public:
    // What a resumed coroutine may queue from noexcept code without growing the queue.
    static constexpr std::size_t headroom = 64;
    // What one CQE's completion may queue: its waiter and a closer (Multishot).
    static constexpr std::size_t per_cqe = 2;

    ReadyQueue() : slots_(std::make_unique<std::coroutine_handle<>[]>(2 * headroom)) {}
    void push_back(std::coroutine_handle<> h) {
      if (tail_ - head_ > mask_) [[unlikely]]
        grow(size() + 1);
      slots_[tail_++ & mask_] = h;
    }
    // Makes room for `n` more handles; throws std::bad_alloc, changing nothing.
    void reserve_more(std::size_t n) {
      if (free() < n) [[unlikely]]
        grow(size() + n);
    }
    [[nodiscard]] std::size_t free() const noexcept { return capacity() - size(); }
    std::coroutine_handle<> pop_front() noexcept { return slots_[head_++ & mask_]; }
    [[nodiscard]] std::size_t size() const noexcept { return tail_ - head_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return mask_ + 1; }
    [[nodiscard]] bool empty() const noexcept { return tail_ == head_; }
    void clear() noexcept { head_ = tail_ = 0; }

   private:
    void grow(std::size_t needed);
    // size_t, unlike the u32 fields that operations' completions store, so that those
    // stores do not force the reap to reload the counters for every CQE.
    std::unique_ptr<std::coroutine_handle<>[]> slots_;
    std::size_t mask_ = 2 * headroom - 1;  // capacity - 1
    std::size_t head_ = 0;
    std::size_t tail_ = 0;
  };

  // Makes the room run_to_completion() needs, so that handing a task to the loop
  // cannot fail: a slot of abandoned_ and one of the ready queue.
  void prepare_run();
  // run(task) without the result: resumes `handle` until it is done. When a turn
  // throws before then, the frame joins abandoned_ and the exception propagates.
  void run_to_completion(std::coroutine_handle<> handle);
  std::size_t turn(bool may_wait, std::chrono::nanoseconds timeout);
  std::size_t run_ready();
  void enter(bool wait, std::chrono::nanoseconds timeout);
  std::uint32_t batch_room(std::uint32_t ready);
  std::size_t reap();
  // A batch the hooks handed over (copied out of the ring).
  void dispatch_batch(std::span<const ring::Cqe> batch);
  // Flushes the SQ to the kernel (submit, no wait), through the hooks if any.
  void submit_now() noexcept;
  void before_submit() noexcept;
  void dispatch(const ring::Cqe& cqe) noexcept;
  // Hands one of op's CQEs to it: inline for an operation without a CompleteFn.
  void deliver(Operation& op, const ring::Cqe& cqe, bool final, bool second) noexcept {
    if (final && --op.cqes_left_ == 0) op.state_ = Operation::State::idle;
    if (op.complete_ == nullptr) [[likely]] {
      // A zero-copy send's notification keeps the byte count of its first CQE.
      if ((cqe.flags & ring::cqe_flags::notif) == 0) {
        op.res_ = cqe.res;
        op.cqe_flags_ = cqe.flags;
      }
      if (final) ready_.push_back(op.waiter_);
      return;
    }
    op.complete_(op, cqe, second);
  }
  bool room_for(std::uint32_t sqes) noexcept;
  void submit_slow(Operation& op) noexcept;
  // Fills op's SQEs; the caller has checked room for them. A separate path for the
  // single SQE that almost every operation has: no array, no loop.
  void prep(Operation& op) noexcept {
    const auto address = reinterpret_cast<std::uint64_t>(&op);
    if (op.sqe_count_ == 1) [[likely]] {
      ring::Sqe* sqe = ring_.get_sqe();
      op.prep_(op, std::span<ring::Sqe* const>(&sqe, 1));
      sqe->user_data = address;
    } else {
      const std::array<ring::Sqe*, 2> sqes{ring_.get_sqe(), ring_.get_sqe()};
      op.prep_(op, sqes);
      sqes[0]->user_data = address;
      sqes[1]->user_data = address | detail::user_data::linked_timeout_tag;
    }
    op.state_ = Operation::State::submitted;
    op.cqes_left_ = op.sqe_count_;
    inflight_ += op.sqe_count_;
  }
  void submit_queued() noexcept;
  void defer_cancel(Operation& op) noexcept;
  void drain_remote();
  void wake_locked() noexcept;
  void write_wake_fd() noexcept;
  // Called by the loop's thread outside a turn (an embedding host) after making work:
  // signals notify_fd(), which nothing else would.
  void signal_host() noexcept;
  bool send_msg_ring_wake(EventLoop& target) noexcept;
  void msg_ring_wake_sent(const ring::Cqe& cqe) noexcept;
  void cancel_all_and_drain() noexcept;
  void notify_embedder() noexcept;

  ring::Ring ring_;
  std::thread::id owner_;
  std::uint32_t max_inflight_ = 0;  // LoopOptions::max_in_flight, or 2^31 - 1
  std::uint32_t inflight_ = 0;
  ReadyQueue ready_;
  IntrusiveList<Operation, &Operation::queue_hook_> queued_;  // waiting for SQ room, FIFO
  LoopStats stats_;  // in_flight and cqes_lost are filled in by stats()
  std::uint64_t unhandled_ = 0;
  WakeStats wake_stats_;
  bool draining_ = false;
  bool msg_ring_supported_ = false;  // IORING_OP_MSG_RING (5.18)
  std::atomic<bool> stop_requested_{false};
  // Spawned tasks that have not finished (the join state of each spawned frame).
  IntrusiveList<detail::JoinState, &detail::JoinState::hook_> detached_;

  // Cross-thread work: post() and cancels requested from other threads.
  std::mutex remote_mutex_;
  std::vector<std::function<void()>> remote_work_;
  // Loop thread only: the batch drain_remote() took, and the next of it to run (a
  // drain that threw leaves the rest here for the next).
  std::vector<std::function<void()>> drained_;
  std::size_t drained_next_ = 0;
  IntrusiveList<Operation, &Operation::cancel_hook_> remote_cancels_;
  std::atomic<bool> wake_pending_{false};  // remote work or cancels to drain
  bool wake_sent_ = false;  // under remote_mutex_: a wake is on its way since the last drain
  std::coroutine_handle<> run_target_;  // run(task): stop waiting once it is done
  // Frames of tasks whose run() threw: destroyed after the destructor's drain. Room
  // for one per run() in progress is reserved on entry, so that adding one never fails.
  std::vector<std::coroutine_handle<>> abandoned_;
  std::size_t run_depth_ = 0;
  int wake_fd_ = -1;
  int notify_fd_ = -1;        // for embedding, created by notify_fd()
  int notify_epoll_fd_ = -1;  // on the emulation: notify_fd_ and the ring's fd, for notify_fd()
  std::atomic<int> embed_signal_fd_{-1};  // notify_fd_ once made, for other threads' wakes
  WakeOp* wake_op_ = nullptr;
  LoopHooks* hooks_ = nullptr;
};

namespace detail {

// The loop as the author of an operation sees it: what an awaitable needs to submit
// its requests, cancel them and resume its coroutine, apart from the loop's user API
// (docs/architecture.md, "Writing an operation", gives the rules). A value to make
// where it is used — `detail::LoopOps(loop).submit(op)` — which compiles to the same
// code as a member call. Loop thread only, except request_cancel().
class LoopOps {
 public:
  explicit LoopOps(EventLoop& loop) noexcept : loop_(&loop) {}

  // Prepares `op`'s SQEs now, or once admitted (SQ room, max_in_flight; FIFO). The common
  // case — nobody queued, room in the SQ — is inline.
  void submit(Operation& op) const noexcept { loop_->submit(op); }
  // submit() for an operation of one SQE that `fill` (a named callable, taken by
  // reference) writes; its PrepFn must write the same, for when the operation has to
  // wait for room. `fill` is inlined.
  template <typename Fill>
  void submit_one(Operation& op, Fill& fill) const noexcept {
    loop_->submit_one(op, fill);
  }
  // Asks the kernel to cancel `op`; its CQEs still arrive (at once, from here, for an
  // operation still waiting for room).
  void cancel(Operation& op) const noexcept { loop_->cancel(op); }
  // cancel() from any thread: deferred to the loop's next turn when called elsewhere.
  void request_cancel(Operation& op) const noexcept { loop_->request_cancel(op); }
  // Must be called, on the loop's thread, by an operation that may have a cancel
  // deferred (request_cancel(), or cancel() with the SQ full) before it is destroyed
  // or submitted again.
  void forget_cancel(Operation& op) const noexcept { loop_->forget_cancel(op); }
  // Queues `handle` to be resumed on a later turn. Allocates nothing while the loop's
  // reserve holds: a completion may queue two handles (ReadyQueue::per_cqe), a resumed
  // coroutine 64 (ReadyQueue::headroom) before a growth that fails terminates.
  void schedule(std::coroutine_handle<> handle) const noexcept { loop_->schedule(handle); }
  // The loop's ring, for ring-level setup (buffer groups, registered files, io-wq
  // affinity). Never take an SQE from it: submit() does, with the loop's accounting.
  [[nodiscard]] ring::Ring& ring() const noexcept { return loop_->ring_; }

 private:
  EventLoop* loop_;
};

}  // namespace detail

template <typename T>
T EventLoop::run(Task<T> task) {
  prepare_run();  // may throw: the task, not started, is destroyed with `task`
  try {
    run_to_completion(task.handle());
  } catch (...) {
    if (!task.done()) (void)task.release();  // run_to_completion() handed it to the loop
    throw;
  }
  return task.take_result();
}

template <typename T>
JoinHandle<T> EventLoop::spawn(Task<T> task) {
  assert(task.valid() && "spawn of an empty Task");
  detail::SpawnPromise<T>& state = detail::spawn_frame(*this, std::move(task)).handle.promise();
  JoinHandle<T> handle(state);
  state.start();
  return handle;
}

// co_await switch_to(loop): the awaiting coroutine continues on `loop`'s thread, during
// a later turn of it (EventLoop::resume_soon(): woken with MSG_RING from another loop's
// turn, through its eventfd from elsewhere), handed over by the current loop's next
// turn. On `loop` already, it continues at once
// without suspending. What is bound to a loop does not travel: an operation, a direct
// descriptor, a BufferPool, a RecvStream or an Event wait belongs to the loop that made
// it and must be used there — switch back first. A spawned task may end away: its end
// is completed on its own loop's turn. The task's frame stays owned by the loop that
// spawned it, which destroys it if it is still suspended when that loop is destroyed:
// a task must be back on its own loop (or finished) before either loop goes.
// `loop` must outlive the switch.
struct SwitchTo {
  EventLoop* loop;
  bool await_ready() const noexcept { return EventLoop::current() == loop; }
  void await_suspend(std::coroutine_handle<> self) const {
    EventLoop* const from = EventLoop::current();
    if (from == nullptr) {
      loop->resume_soon(self);
      return;
    }
    // Not straight to `loop`: this thread is still inside the resumption that led here
    // (an awaiting task's start, whose bookkeeping follows the suspension) and must be
    // done with the frame before another thread resumes it. This loop's own queue runs
    // the hand-over once the turn is back at its top.
    from->post([to = loop, self] { to->resume_soon(self); });
  }
  void await_resume() const noexcept {}
};
[[nodiscard]] inline SwitchTo switch_to(EventLoop& loop) noexcept { return SwitchTo{&loop}; }

}  // namespace coring
