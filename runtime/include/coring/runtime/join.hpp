// JoinHandle<T>: the result of a spawned task, for a task on any loop to await.
//
//   JoinHandle<int> answer = loop.spawn(compute());      // or runtime.spawn_on(1, compute())
//   ...
//   int value = co_await answer;  // from any loop; rethrows what compute() threw
//
// EventLoop::spawn() and Runtime::spawn_on() return one. Dropping it detaches the task:
// an exception escaping a task whose handle is gone is logged and counted in its loop's
// unhandled_exceptions(), as for any spawned task. An exception that a co_await of the
// handle rethrows is the awaiter's and is not counted. An exception the handle could have
// received but was dropped unawaited is logged at error level, and counted too when the
// handle is dropped on the task's own loop thread (elsewhere that loop may be gone).
//
// Where the state lives. The spawned frame — a small coroutine that runs the task and
// is the one allocation of a spawn — holds the join state in its promise, and the task's
// result stays in the task's own finished frame. The frame is freed by whichever comes
// last of the task's end and the handle's release (its destruction, or the end of the
// co_await that took the result). Both sides meet under a mutex in the frame, so either
// may be on any thread.
//
// Waiting. The awaiter registers its coroutine and its loop; the task's end resumes it
// on that loop (at once, by symmetric transfer, when both are the same loop's turn;
// through EventLoop::resume_soon() otherwise, which wakes the loop with MSG_RING or its
// eventfd). A waiting frame destroyed before then (its loop torn down) unregisters.
//
// The task's loop destroyed first. A loop destroys the spawned tasks still suspended
// when it is destroyed. A handle still held then sees the task end as cancelled: its
// co_await throws std::system_error with std::errc::operation_canceled (a waiter already
// registered is resumed with it), and done() is true.
//
// Misuse. co_await on an empty handle — default-constructed, moved from, or already
// awaited (a successful co_await consumes the handle) — throws std::logic_error.
//
// Threads: a handle may be awaited, asked and dropped on any thread, one at a time like
// any object; the awaiting coroutine must run on an EventLoop.
#pragma once

#include <coroutine>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "coring/runtime/intrusive_list.hpp"
#include "coring/runtime/task.hpp"

namespace coring {

class EventLoop;
class Runtime;
template <typename T>
class JoinHandle;

namespace detail {

// The join state of a spawned frame: what the loop, the frame's end and the handle
// share. Its members that take the mutex are defined in event_loop.cpp.
class JoinState {
 public:
  JoinState(const JoinState&) = delete;
  JoinState& operator=(const JoinState&) = delete;

  // Links the frame into its loop's list of spawned tasks and queues it. Loop thread.
  void start() noexcept;
  // The task finished (the frame's final suspend): returns the coroutine to transfer
  // to — a waiter of the same loop — or a no-op one. Frees the frame when the handle is
  // gone. A task that ended on another loop (switch_to) is ended on its own loop's turn.
  std::coroutine_handle<> finish() noexcept;
  // The task's loop is destroyed before the task finished, or before it started (a
  // spawn_on() whose work was dropped): destroys the task, resumes a waiter with the
  // cancellation, and frees the frame when the handle is gone. The loop's thread.
  void abandon() noexcept;

  // For the handle, any thread.
  [[nodiscard]] bool ended() noexcept;
  // Registers `waiter`, running on the current loop; false when the task already ended.
  bool wait(std::coroutine_handle<> waiter) noexcept;
  // A registered waiter's frame is being destroyed: forget it, unless already resumed.
  void cancel_wait(std::coroutine_handle<> waiter) noexcept;
  // The handle lets go; `observed`: its co_await took the result. Frees the frame when
  // the task has ended.
  void release(bool observed) noexcept;
  // After ended(): throws when the task was cancelled with its loop.
  void throw_if_cancelled() const;

 protected:
  // `drop_task` destroys the task's frame, ahead of the spawned frame's own destruction.
  using DropTask = void (*)(JoinState&) noexcept;
  JoinState(EventLoop& loop, std::coroutine_handle<> frame, PromiseBase& task,
            DropTask drop_task) noexcept
      : loop_(&loop), frame_(frame), task_promise_(&task), drop_task_(drop_task) {}
  ~JoinState() = default;

 private:
  friend class coring::EventLoop;
  // finish() on the frame's own loop.
  std::coroutine_handle<> end() noexcept;
  void report(std::exception_ptr error, const char* what) noexcept;

  EventLoop* loop_;
  std::coroutine_handle<> frame_;  // the spawned frame, which holds this state
  PromiseBase* task_promise_;      // the task's, for its exception; null once dropped
  DropTask drop_task_;
  ListHook hook_;  // in the loop's list while the task may run
  std::mutex mutex_;
  // Under mutex_:
  std::coroutine_handle<> waiter_;
  EventLoop* waiter_loop_ = nullptr;
  bool ended_ = false;
  bool cancelled_ = false;
  bool handle_alive_ = true;
};

template <typename T>
class SpawnPromise;

template <typename T>
struct SpawnFrame {
  using promise_type = SpawnPromise<T>;
  std::coroutine_handle<SpawnPromise<T>> handle;
};

// The promise of the spawned frame. Constructed with references to the frame's copies
// of spawn_frame()'s arguments: the task it keeps is the one the frame runs.
template <typename T>
class SpawnPromise final : public JoinState {
 public:
  SpawnPromise(EventLoop& loop, Task<T>& task) noexcept
      : JoinState(loop, std::coroutine_handle<SpawnPromise>::from_promise(*this),
                  task.handle().promise(), &drop_task),
        task_(&task) {}

  SpawnFrame<T> get_return_object() noexcept {
    return {std::coroutine_handle<SpawnPromise>::from_promise(*this)};
  }
  std::suspend_always initial_suspend() const noexcept { return {}; }
  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<SpawnPromise> self) noexcept {
      return self.promise().finish();
    }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void return_void() const noexcept {}
  // The frame's body only starts the task, whose exceptions its own promise keeps.
  void unhandled_exception() const noexcept { std::terminate(); }

  T take_result() { return task_->take_result(); }

 private:
  static void drop_task(JoinState& self) noexcept {
    Task<T> doomed = std::move(*static_cast<SpawnPromise&>(self).task_);
  }
  Task<T>* task_;
};

// Runs the task to its end, leaving its result (or exception) in its frame.
template <typename T>
struct RunTask {
  typename Task<T>::Handle task;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> self) noexcept {
    return PromiseBase::start_for(task, self);
  }
  void await_resume() const noexcept {}
};

// The start of a frame made on another thread (Runtime::spawn_on()), carried by the
// work posted to its loop: destroyed unrun (the loop went first), it abandons the frame.
class SpawnStart {
 public:
  explicit SpawnStart(JoinState& state) noexcept : state_(&state) {}
  SpawnStart(const SpawnStart&) = delete;
  SpawnStart& operator=(const SpawnStart&) = delete;
  ~SpawnStart() {
    if (state_ != nullptr) state_->abandon();
  }
  // On the loop's thread.
  void start() noexcept { std::exchange(state_, nullptr)->start(); }

 private:
  JoinState* state_;
};

template <typename T>
SpawnFrame<T> spawn_frame(EventLoop& /*loop*/, Task<T> task) {
  co_await RunTask<T>{task.handle()};
}

}  // namespace detail

template <typename T = void>
class JoinHandle {
 public:
  JoinHandle() noexcept = default;
  JoinHandle(JoinHandle&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  JoinHandle& operator=(JoinHandle&& other) noexcept {
    if (this != &other) {
      reset();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  JoinHandle(const JoinHandle&) = delete;
  JoinHandle& operator=(const JoinHandle&) = delete;
  // Detaches the task (see the top of this header).
  ~JoinHandle() { reset(); }

  // Whether the handle refers to a task (false when empty, moved from, or awaited).
  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }
  // Whether the task has ended — finished, or cancelled with its loop — so that a
  // co_await completes without suspending. False for an empty handle. Any thread.
  [[nodiscard]] bool done() const noexcept { return state_ != nullptr && state_->ended(); }

  class Awaiter {
   public:
    explicit Awaiter(JoinHandle& handle) noexcept : handle_(&handle), state_(handle.state_) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    // A frame destroyed while waiting (its loop torn down) unregisters its coroutine.
    ~Awaiter() {
      if (waiting_) state_->cancel_wait(waiting_);
    }
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> self) noexcept {
      if (!state_->wait(self)) return false;
      waiting_ = self;
      return true;
    }
    // Consumes the handle: the frame is released once the result is taken.
    T await_resume() {
      waiting_ = {};
      handle_->state_ = nullptr;
      struct Release {
        detail::SpawnPromise<T>* state;
        ~Release() { state->release(true); }
      } release{state_};
      state_->throw_if_cancelled();
      return state_->take_result();
    }

   private:
    JoinHandle* handle_;
    detail::SpawnPromise<T>* state_;
    std::coroutine_handle<> waiting_;  // registered, not resumed yet
  };
  // The task's value, or its exception rethrown; std::system_error with
  // std::errc::operation_canceled when its loop was destroyed first. Resumes on the
  // awaiter's own loop. Throws std::logic_error for an empty handle.
  Awaiter operator co_await() {
    if (state_ == nullptr) {
      throw std::logic_error("co_await on an empty JoinHandle (moved from, or already awaited)");
    }
    return Awaiter(*this);
  }

 private:
  friend class EventLoop;
  friend class Runtime;
  explicit JoinHandle(detail::SpawnPromise<T>& state) noexcept : state_(&state) {}
  void reset() noexcept {
    if (state_ != nullptr) std::exchange(state_, nullptr)->release(false);
  }

  detail::SpawnPromise<T>* state_ = nullptr;
};

}  // namespace coring
