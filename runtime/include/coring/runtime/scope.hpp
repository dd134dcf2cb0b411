// TaskScope: tasks spawned into a scope, and one place to wait for all of them.
//
//   TaskScope scope;
//   for (auto& peer : peers) scope.spawn(serve(peer, scope.get_token()));
//   ...
//   scope.request_stop();    // the tasks' operations awaited .with_stop(token) are cancelled
//   co_await scope.join();   // every spawned task has finished; rethrows the first failure
//
// spawn() is EventLoop::spawn with bookkeeping: the task starts on the current loop's
// next turn, in a child frame linked into the scope (when_all.hpp has the mechanism; a
// spawn allocates that frame and nothing else). join() completes once every task
// spawned in the scope has finished — including tasks spawned while it waits, by the
// scope's own tasks for instance. A scope's task must not join its own scope: it would
// wait for itself.
//
// Errors. An exception escaping a spawned task is captured: the first is rethrown by
// the next join() (and then forgotten, so the scope can be used again); every one is
// counted in failures(), and those after the first are logged at error level, so none
// is lost. The other tasks are not stopped by a failure: call request_stop() for that.
//
// Stopping. The scope owns a std::stop_source; get_token() hands its token to the tasks
// and request_stop() triggers it, from any thread.
//
// Lifetime. Destroying a scope with tasks still running is a programmer error, asserted:
// co_await join() first. The one exception is loop teardown: an EventLoop being
// destroyed cancels and drains every operation and destroys suspended frames, and a
// scope destroyed then destroys its suspended tasks with it.
//
// Threads: everything but request_stop() is for the loop thread, like the loop itself.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <stop_token>
#include <utility>
#include <variant>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/when_all.hpp"

namespace coring {

class TaskScope {
 public:
  TaskScope() = default;
  TaskScope(const TaskScope&) = delete;
  TaskScope& operator=(const TaskScope&) = delete;
  // Asserts (in the counter) that no task is running; see Lifetime above.
  ~TaskScope() {
    if (first_error_) {
      detail::log_exception("TaskScope destroyed without join() receiving its failure",
                            detail::LogLevel::error, first_error_);
    }
  }

  // Starts `task` on the current loop's next turn; join() waits for it. Call it on
  // the loop's thread, from a task or during a turn.
  void spawn(Task<void> task) {
    EventLoop* loop = EventLoop::current();
    assert(loop != nullptr && "TaskScope::spawn outside a turn of an EventLoop");
    // The bookkeeping is not thread-safe: all the tasks of a scope share one loop.
    assert((children_.pending() == 0 || loop == loop_) && "a TaskScope spans two loops");
    loop_ = loop;
    children_.schedule(detail::run_child(children_, std::move(task), Sink{this}), *loop);
  }

  // Completes when every task spawned in the scope has finished, then rethrows the
  // first exception one of them threw since the last join(). One joiner at a time.
  struct JoinAwaiter : detail::JoinCounter::WaitAwaiter {
    TaskScope* scope;
    void await_resume() const {
      if (scope->first_error_) std::rethrow_exception(std::exchange(scope->first_error_, {}));
    }
  };
  [[nodiscard]] JoinAwaiter join() noexcept { return JoinAwaiter{children_.wait(), this}; }

  // Triggers the token of get_token(). Any thread.
  void request_stop() noexcept { stop_.request_stop(); }
  [[nodiscard]] std::stop_token get_token() const noexcept { return stop_.get_token(); }
  [[nodiscard]] bool stop_requested() const noexcept { return stop_.stop_requested(); }

  // Spawned tasks that have not finished yet.
  [[nodiscard]] std::size_t active() const noexcept { return children_.pending(); }
  // Spawned tasks that ended with an exception, over the scope's life.
  [[nodiscard]] std::uint64_t failures() const noexcept { return failures_; }

 private:
  struct Sink {
    TaskScope* scope;
    void set_value(std::monostate) const noexcept {}
    void set_error(std::exception_ptr error) const noexcept {
      ++scope->failures_;
      detail::keep_first_error(scope->first_error_, std::move(error),
                               "TaskScope: a further task failed", detail::LogLevel::error);
    }
  };

  std::stop_source stop_;
  std::exception_ptr first_error_;
  std::uint64_t failures_ = 0;
  EventLoop* loop_ = nullptr;  // where the running tasks run
  // Last, so destroyed first: at teardown its tasks go while the rest is still there.
  detail::JoinCounter children_;
};

}  // namespace coring
