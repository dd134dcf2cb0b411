// when_all: runs tasks at once on the current loop and waits for every one of them.
//
//   auto [lines, title] = co_await when_all(count_lines(a), read_title(b));
//   std::vector<std::size_t> sizes = co_await when_all(std::move(uploads));  // vector<Task<T>>
//
// Mechanism. when_all is itself a Task, and its frame is the parent: it holds a
// JoinCounter and one result slot per child. Each child task runs inside a small
// wrapper coroutine (a child frame, run_child below) that awaits it, hands its value
// or exception to a sink pointing at the parent's slot, then frees itself (and the
// task) and tells the counter. Children are started one after another, in argument
// order and in the same turn: each runs until it first suspends, so their I/O is in
// flight together. The last child to finish resumes the parent by symmetric transfer
// from its final suspend point — the parent runs on, in that same turn, instead of
// waiting for a later one. A when_all allocates one wrapper frame per child and
// nothing else (the vector form adds its slot and result vectors).
//
// Threads. Everything here runs on the loop's thread: the counter is a plain integer
// and needs no atomics. Only stop requests (when_any, TaskScope) may come from other
// threads, and std::stop_source is thread-safe by itself.
//
// Errors. when_all cannot cancel its children (when_any and TaskScope can, through stop
// tokens), and no child may be abandoned with I/O in flight, so a child that throws
// does not stop the others: when_all waits for all of them, then rethrows the first
// exception in time order. Later ones are logged at debug level.
//
// Teardown. Destroying a parent whose children are still running is a programmer error
// (asserted), with one exception: an EventLoop being destroyed first cancels and drains
// every operation, then destroys the frames of tasks that are still suspended. A parent
// destroyed then destroys its suspended children with it, so nothing leaks.
//
// This header also holds the machinery that when_any.hpp and scope.hpp build on.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "coring/ring/detail/log.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/intrusive_list.hpp"
#include "coring/runtime/task.hpp"

namespace coring {

namespace detail {

// A child's result as stored and returned: a void task yields std::monostate.
template <typename T>
using ValueOf = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <typename>
struct TaskTraits {
  static constexpr bool is_task = false;
};
template <typename T>
struct TaskTraits<Task<T>> {
  static constexpr bool is_task = true;
  using value_type = T;
};

// Logs an exception that nobody will receive, on the "runtime" logger. Off the I/O path.
inline void log_exception(const char* where, LogLevel level,
                          const std::exception_ptr& error) noexcept {
  try {
    std::string message = where;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      message += ": ";
      message += e.what();
    } catch (...) {
      message += ": an exception of a non-std type";
    }
    log("runtime", level, message);
  } catch (...) {
    log("runtime", level, where);  // no memory for the message: the place alone
  }
}

// Keeps the first exception; logs a later one, which has nobody else to go to.
inline void keep_first_error(std::exception_ptr& first, std::exception_ptr error, const char* where,
                             LogLevel later_level) noexcept {
  if (!first) {
    first = std::move(error);
    return;
  }
  log_exception(where, later_level, error);
}

class JoinCounter;
class ChildPromise;

// A child frame that has been created but not handed to a JoinCounter: destroyed
// unstarted if it never is.
class [[nodiscard]] Child {
 public:
  using promise_type = ChildPromise;
  explicit Child(std::coroutine_handle<ChildPromise> handle) noexcept : handle_(handle) {}
  Child(Child&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child& operator=(Child&&) = delete;
  ~Child() {
    if (handle_) handle_.destroy();
  }
  std::coroutine_handle<ChildPromise> release() noexcept { return std::exchange(handle_, {}); }

 private:
  std::coroutine_handle<ChildPromise> handle_;
};

// The promise of a child frame: linked into its parent's JoinCounter while it lives.
class ChildPromise {
 public:
  // A child coroutine's first parameter is its parent's counter (see run_child).
  template <typename... Rest>
  explicit ChildPromise(JoinCounter& parent, Rest&...) noexcept : parent_(&parent) {}
  ChildPromise(const ChildPromise&) = delete;
  ChildPromise& operator=(const ChildPromise&) = delete;

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    // Frees the frame, then resumes the parent if this was its last child.
    std::coroutine_handle<> await_suspend(std::coroutine_handle<ChildPromise> self) noexcept;
    void await_resume() const noexcept {}
  };

  Child get_return_object() noexcept {
    return Child(std::coroutine_handle<ChildPromise>::from_promise(*this));
  }
  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void return_void() const noexcept {}
  // Unreachable: run_child catches what the task throws, and the sinks' set_error
  // cannot throw.
  void unhandled_exception() const noexcept { std::terminate(); }

 private:
  friend class JoinCounter;
  JoinCounter* parent_;
  ListHook hook_;  // in the parent's children
};

// A parent's children still running, and the coroutine to resume when none is. The
// children are an intrusive list (their promises), so that a parent destroyed during
// loop teardown can destroy them; no allocation. Loop thread only.
class JoinCounter {
 public:
  JoinCounter() noexcept = default;
  JoinCounter(const JoinCounter&) = delete;
  JoinCounter& operator=(const JoinCounter&) = delete;
  ~JoinCounter() {
    assert((children_.empty() || loop_is_draining()) &&
           "children still running: join them (co_await scope.join()) before destroying "
           "their parent");
    while (!children_.empty()) {
      ChildPromise& child = children_.front();
      unlink(child);
      std::coroutine_handle<ChildPromise>::from_promise(child).destroy();
    }
  }

  // Runs `child` now, on this thread, until it first suspends (or finishes).
  void start(Child child) noexcept { adopt(std::move(child)).resume(); }
  // Queues `child` to start on `loop`'s next turn.
  void schedule(Child child, EventLoop& loop) noexcept {
    LoopOps(loop).schedule(adopt(std::move(child)));
  }

  [[nodiscard]] std::size_t pending() const noexcept { return pending_; }

  // Completes once no child is running. One waiter at a time.
  struct WaitAwaiter {
    JoinCounter* counter;
    bool await_ready() const noexcept { return counter->pending_ == 0; }
    void await_suspend(std::coroutine_handle<> waiter) const noexcept {
      assert(!counter->waiter_ && "a JoinCounter has one waiter at a time");
      counter->waiter_ = waiter;
    }
    void await_resume() const noexcept {}
  };
  WaitAwaiter wait() noexcept { return WaitAwaiter{this}; }

 private:
  friend struct ChildPromise::FinalAwaiter;

  static bool loop_is_draining() noexcept {
    const EventLoop* loop = EventLoop::current();
    return loop != nullptr && loop->draining();
  }

  std::coroutine_handle<ChildPromise> adopt(Child child) noexcept {
    auto handle = child.release();
    children_.push_front(handle.promise());
    ++pending_;
    return handle;
  }

  void unlink(ChildPromise& child) noexcept {
    children_.unlink(child);
    --pending_;
  }

  // The coroutine to run after a child's end: the waiter once none is left.
  std::coroutine_handle<> after_child() noexcept {
    if (pending_ == 0 && waiter_) return std::exchange(waiter_, {});
    return std::noop_coroutine();
  }

  IntrusiveList<ChildPromise, &ChildPromise::hook_> children_;
  std::size_t pending_ = 0;
  std::coroutine_handle<> waiter_;
};

inline std::coroutine_handle<> ChildPromise::FinalAwaiter::await_suspend(
    std::coroutine_handle<ChildPromise> self) noexcept {
  JoinCounter& parent = *self.promise().parent_;
  parent.unlink(self.promise());
  self.destroy();  // the task's frame goes with it, now rather than with the parent
  return parent.after_child();
}

// Runs `task` as a child of `parent` and hands its value (std::monostate for void) or
// its exception to `sink`, which points into the parent's frame.
template <typename T, typename Sink>
Child run_child([[maybe_unused]] JoinCounter& parent, Task<T> task, Sink sink) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(task);
      sink.set_value(std::monostate{});
    } else {
      sink.set_value(co_await std::move(task));
    }
  } catch (...) {
    sink.set_error(std::current_exception());
  }
}

// when_all's sink: the child's slot (none for void children) and the first error.
template <typename V>
struct AllSink {
  std::optional<V>* slot;
  std::exception_ptr* first_error;

  void set_value(V&& value) {
    if (slot != nullptr) slot->emplace(std::move(value));
  }
  void set_error(std::exception_ptr error) noexcept {
    keep_first_error(*first_error, std::move(error), "when_all: a further child failed",
                     LogLevel::debug);
  }
};

// Starts every task as a child; a child frame that cannot be created counts as that
// child's failure (the ones already started still run to their end).
template <typename Slots, std::size_t... I, typename... Ts>
void start_all(JoinCounter& children, Slots& slots, std::exception_ptr& first_error,
               std::index_sequence<I...>, Task<Ts>&... tasks) noexcept {
  try {
    (children.start(run_child(children, std::move(tasks),
                              AllSink<ValueOf<Ts>>{&std::get<I>(slots), &first_error})),
     ...);
  } catch (...) {
    keep_first_error(first_error, std::current_exception(), "when_all", LogLevel::debug);
  }
}

template <typename T, typename MakeSink>
void start_each(JoinCounter& children, std::vector<Task<T>>& tasks, std::exception_ptr& first_error,
                MakeSink make_sink) noexcept {
  try {
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      children.start(run_child(children, std::move(tasks[i]), make_sink(i)));
    }
  } catch (...) {
    keep_first_error(first_error, std::current_exception(), "when_all", LogLevel::debug);
  }
}

}  // namespace detail

// Runs `tasks` concurrently on the current loop and returns their values in argument
// order (std::monostate for a Task<void>). If any throws, the others still run to
// their end; then the first exception (in time order) is rethrown.
template <typename... Ts>
Task<std::tuple<detail::ValueOf<Ts>...>> when_all(Task<Ts>... tasks) {
  std::tuple<std::optional<detail::ValueOf<Ts>>...> slots;
  std::exception_ptr first_error;
  detail::JoinCounter children;
  detail::start_all(children, slots, first_error, std::index_sequence_for<Ts...>{}, tasks...);
  co_await children.wait();
  if (first_error) std::rethrow_exception(first_error);
  co_return std::apply(
      [](auto&... slot) { return std::tuple<detail::ValueOf<Ts>...>(std::move(*slot)...); }, slots);
}

// The same for any number of tasks of one type: their values, in the vector's order.
template <typename T>
requires(!std::is_void_v<T>) Task<std::vector<T>> when_all(std::vector<Task<T>> tasks) {
  std::vector<std::optional<T>> slots(tasks.size());
  std::exception_ptr first_error;
  detail::JoinCounter children;
  detail::start_each(children, tasks, first_error, [&](std::size_t i) {
    return detail::AllSink<T>{&slots[i], &first_error};
  });
  co_await children.wait();
  if (first_error) std::rethrow_exception(first_error);
  std::vector<T> values;
  values.reserve(slots.size());
  for (auto& slot : slots) values.push_back(std::move(*slot));
  co_return values;
}

// The same for void tasks: completes when all have, or rethrows the first exception.
inline Task<void> when_all(std::vector<Task<void>> tasks) {
  std::exception_ptr first_error;
  detail::JoinCounter children;
  detail::start_each(children, tasks, first_error, [&](std::size_t) {
    return detail::AllSink<std::monostate>{nullptr, &first_error};
  });
  co_await children.wait();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace coring
