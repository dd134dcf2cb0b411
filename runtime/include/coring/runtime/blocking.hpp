// spawn_blocking(fn): runs fn() on a small thread pool, off the loop, and co_awaits it.
//
//   std::string name = co_await spawn_blocking([&] { return reverse_lookup(address); });
//
// For work that must block — getaddrinfo, directory listings, CPU-heavy work — and
// so would stall every coroutine of the loop. The awaiting coroutine resumes on its
// own loop's thread, with fn's value or its exception rethrown.
//
// The job record lives in the awaiting frame (no allocation per job, like an I/O
// operation); the pool keeps an intrusive FIFO of them, unbounded: submitting never
// blocks the loop, and the number of jobs is bounded by the coroutines awaiting them.
// If the awaiting frame is destroyed first (its loop is torn down), a job not yet
// started is withdrawn, and a running one is waited for — fn may use the frame.
#pragma once

#include <cassert>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/intrusive_list.hpp"

namespace coring {

class BlockingPool;

namespace detail {

// The pool's view of one spawn_blocking(): a node of its queue, a function to run,
// and where to resume.
class BlockingJob {
 public:
  BlockingJob(const BlockingJob&) = delete;
  BlockingJob& operator=(const BlockingJob&) = delete;

 protected:
  using RunFn = void (*)(BlockingJob& self) noexcept;
  BlockingJob(RunFn run, BlockingPool& pool) noexcept : run_(run), pool_(&pool) {}
  // Movable only before it is submitted (an awaitable is built as a value).
  BlockingJob(BlockingJob&& other) noexcept : run_(other.run_), pool_(other.pool_) {
    assert(!other.submitted_ && "a submitted job cannot move");
  }
  BlockingJob& operator=(BlockingJob&&) = delete;
  ~BlockingJob() { assert(!submitted_ && "a job destroyed without withdraw()"); }

  // Queues the job; `waiter` resumes on `loop` once it has run.
  void submit(EventLoop& loop, std::coroutine_handle<> waiter);
  // Called by the derived destructor, before the members fn uses die: takes the job
  // out of the queue, or waits until a running fn returns.
  void withdraw() noexcept;
  // Called once the waiter has resumed: the job is done and the pool — which may be
  // gone by now, if it was destroyed with the job queued — is not touched again.
  void resumed() noexcept { submitted_ = false; }

  std::exception_ptr error_;  // what fn threw, or the pool's ECANCELED

 private:
  friend class coring::BlockingPool;
  enum class State : std::uint8_t { queued, running, done };

  RunFn run_;
  BlockingPool* pool_;
  EventLoop* loop_ = nullptr;
  std::coroutine_handle<> waiter_;
  ListHook hook_;                // in the pool's queue
  bool submitted_ = false;       // the awaiting thread's own flag
  State state_ = State::queued;  // guarded by the pool's mutex once submitted
  bool abandoned_ = false;       // guarded too: the frame went away while fn ran
};

}  // namespace detail

// A fixed number of threads, started when the first job arrives, taking jobs in FIFO
// order. Its destructor lets running jobs finish and joins the threads; jobs still
// queued then resume their awaiters with std::system_error(ECANCELED).
class BlockingPool {
 public:
  static constexpr std::size_t default_threads = 4;

  explicit BlockingPool(std::size_t threads = default_threads);
  ~BlockingPool();
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // The pool spawn_blocking(fn) uses: default_threads threads, joined at exit.
  static BlockingPool& shared();

 private:
  friend class detail::BlockingJob;

  void push(detail::BlockingJob& job);
  void withdraw(detail::BlockingJob& job) noexcept;
  void start_threads();
  void worker();
  static void resume_awaiter(detail::BlockingJob& job);

  std::mutex mutex_;
  std::condition_variable work_cv_;  // a job was queued, or the pool stops
  std::condition_variable done_cv_;  // an abandoned job finished
  IntrusiveList<detail::BlockingJob, &detail::BlockingJob::hook_> queue_;  // FIFO
  std::vector<std::thread> threads_;
  std::size_t max_threads_;
  bool stopping_ = false;
};

template <typename Fn>
class [[nodiscard]] BlockingOp final : public detail::BlockingJob {
 public:
  using Result = std::invoke_result_t<Fn&>;
  static_assert(!std::is_reference_v<Result>, "spawn_blocking: return a value, not a reference");

  BlockingOp(BlockingPool& pool, Fn fn) noexcept(std::is_nothrow_move_constructible_v<Fn>)
      : BlockingJob(&run_fn, pool), fn_(std::move(fn)) {}
  BlockingOp(BlockingOp&& other) noexcept(std::is_nothrow_move_constructible_v<Fn>)
      : BlockingJob(std::move(other)), fn_(std::move(other.fn_)) {}
  BlockingOp& operator=(BlockingOp&&) = delete;
  ~BlockingOp() { withdraw(); }

  bool await_ready() const noexcept { return false; }
  // Throws (and so does not suspend) only if the pool could start no thread.
  void await_suspend(std::coroutine_handle<> waiter) {
    EventLoop* loop = EventLoop::current();
    assert(loop != nullptr && "co_await spawn_blocking() outside an event loop");
    submit(*loop, waiter);
  }
  Result await_resume() {
    resumed();
    if (error_) std::rethrow_exception(error_);
    if constexpr (!std::is_void_v<Result>) return std::move(*value_);
  }

 private:
  // On a pool thread. What it writes is published to the loop by the post() that
  // resumes the awaiter.
  static void run_fn(BlockingJob& self) noexcept {
    auto& op = static_cast<BlockingOp&>(self);
    try {
      if constexpr (std::is_void_v<Result>) {
        op.fn_();
      } else {
        op.value_.emplace(op.fn_());
      }
    } catch (...) {
      op.error_ = std::current_exception();
    }
  }

  struct Empty {};
  Fn fn_;
  [[no_unique_address]] std::conditional_t<std::is_void_v<Result>, Empty, std::optional<Result>>
      value_;
};

// Runs fn() on `pool`; co_await it for fn's value (or exception) on this loop's thread.
template <typename Fn>
BlockingOp<std::decay_t<Fn>> spawn_blocking(BlockingPool& pool, Fn&& fn) {
  return BlockingOp<std::decay_t<Fn>>(pool, std::forward<Fn>(fn));
}

// The same on BlockingPool::shared().
template <typename Fn>
BlockingOp<std::decay_t<Fn>> spawn_blocking(Fn&& fn) {
  return spawn_blocking(BlockingPool::shared(), std::forward<Fn>(fn));
}

}  // namespace coring
