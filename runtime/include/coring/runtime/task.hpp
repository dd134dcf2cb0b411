// Task<T>: a lazy, move-only coroutine that produces a T (or throws).
//
// A Task does nothing until it is awaited (or handed to EventLoop::run/spawn).
// Awaiting it runs it at once; if it finishes without suspending, the awaiter simply
// continues (await_suspend returns false), and if it suspends, its final awaiter
// later transfers straight back to the awaiter (symmetric transfer). The first case
// does not depend on the compiler turning symmetric transfer into a tail call, which
// GCC does not do in unoptimised or sanitizer builds: a chain of a million
// synchronous co_awaits runs in constant stack in every build.
// An exception that escapes the task is stored and rethrown in the awaiter.
#pragma once

#include <cassert>
#include <coroutine>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

namespace coring {

template <typename T = void>
class Task;

namespace detail {

class PromiseBase {
 public:
  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <typename Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
      PromiseBase& promise = self.promise();
      // Finished while the awaiter is still inside its await_suspend: return there.
      if (promise.awaiter_inline_) return std::noop_coroutine();
      return promise.continuation_;
    }
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { exception_ = std::current_exception(); }
  // What escaped the task, once it has finished; null if nothing did.
  [[nodiscard]] std::exception_ptr exception() const noexcept { return exception_; }
  // Starts the task on behalf of an awaiter; returns whether the awaiter must suspend
  // (false: the task finished synchronously and its result is ready).
  template <typename Promise>
  static bool start_for(std::coroutine_handle<Promise> task,
                        std::coroutine_handle<> awaiter) noexcept {
    PromiseBase& promise = task.promise();
    promise.continuation_ = awaiter;
    promise.awaiter_inline_ = true;
    task.resume();
    promise.awaiter_inline_ = false;
    return !task.done();
  }

 protected:
  void rethrow_if_failed() const {
    if (exception_) std::rethrow_exception(exception_);
  }

 private:
  std::coroutine_handle<> continuation_ = std::noop_coroutine();
  std::exception_ptr exception_;
  bool awaiter_inline_ = false;
};

template <typename T>
class Promise final : public PromiseBase {
 public:
  Promise() noexcept {}
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  ~Promise() {
    if (has_value_) value_.~T();
  }

  Task<T> get_return_object() noexcept;

  template <typename U>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    ::new (static_cast<void*>(&value_)) T(std::forward<U>(value));
    has_value_ = true;
  }

  T take() {
    rethrow_if_failed();
    assert(has_value_);
    return std::move(value_);
  }

 private:
  union {
    T value_;
  };
  bool has_value_ = false;
};

template <>
class Promise<void> final : public PromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
  void take() const { rethrow_if_failed(); }
};

}  // namespace detail

template <typename T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  Task() noexcept = default;
  explicit Task(Handle handle) noexcept : handle_(handle) {}
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (handle_) handle_.destroy();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (handle_) handle_.destroy();
  }

  // Whether this Task holds a coroutine (a moved-from or default Task does not).
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(handle_); }
  [[nodiscard]] bool done() const noexcept { return handle_ && handle_.done(); }

  auto operator co_await() && noexcept {
    struct Awaiter {
      Handle handle;
      bool await_ready() const noexcept { return handle.done(); }
      bool await_suspend(std::coroutine_handle<> awaiter) noexcept {
        return detail::PromiseBase::start_for(handle, awaiter);
      }
      T await_resume() { return handle.promise().take(); }
    };
    assert(handle_ && "co_await on an empty Task");
    return Awaiter{handle_};
  }

  // For the runtime: the coroutine, and its result once done.
  [[nodiscard]] Handle handle() const noexcept { return handle_; }
  // Gives up the frame without destroying it: whoever takes the handle destroys it.
  [[nodiscard]] Handle release() noexcept { return std::exchange(handle_, {}); }
  T take_result() { return handle_.promise().take(); }

 private:
  Handle handle_;
};

namespace detail {
template <typename T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace coring
