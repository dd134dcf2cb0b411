// Event: an async manual-reset event, for coroutines on any loops and plain threads.
//
//   Event ready;
//   co_await ready.wait();   // on any loop; returns at once while the event is set
//   ready.set();             // any thread: wakes every waiter, each on its own loop
//   ready.reset();           // later waits suspend again
//
// Manual-reset: set() wakes all waiters and the event stays set, so a wait that comes
// after set() does not suspend. A waiter is resumed on the loop it waits on, through
// that loop's schedule() when set() runs in the same loop's turn and through post()
// (a MSG_RING or eventfd wake) otherwise. A mutex guards the state; nothing spins.
//
// Lifetime: the Event must outlive every waiter's suspension, and no more: a waiter
// that wait() has returned to may destroy the Event at once, even while set() on
// another thread is still waking the others. Every way a waiter learns that the event
// is set goes through the mutex — the state is read under it, and a waiter that was
// suspended takes it once more before wait() returns — so set() has let go of the
// Event before any waiter can destroy it (POSIX allows destroying a mutex as soon as
// it can be locked: the unlocking thread no longer touches it).
#pragma once

#include <cassert>
#include <coroutine>
#include <mutex>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/intrusive_list.hpp"

namespace coring {

namespace detail {

// A coroutine suspended on an Event or a Channel: where to resume it, and its links in
// a FIFO of waiters that the owner guards with its mutex.
class AsyncWaiter {
 public:
  AsyncWaiter() noexcept = default;
  AsyncWaiter(const AsyncWaiter&) = delete;
  AsyncWaiter& operator=(const AsyncWaiter&) = delete;

  // Records where to resume: the current loop's thread.
  void prepare(std::coroutine_handle<> handle) noexcept {
    loop_ = EventLoop::current();
    assert(loop_ != nullptr && "an Event or Channel is awaited outside an event loop");
    handle_ = handle;
  }
  // Resumes the waiter on its own loop; the caller unlinked it and touches it no more.
  void wake() { loop_->resume_soon(handle_); }
  // Returns once `owner_mutex`, which the waker held while it called wake(), is free:
  // after this the waker touches neither the owner nor this waiter, and the resumed
  // coroutine may destroy both.
  static void wait_for_waker(std::mutex& owner_mutex) noexcept {
    const std::lock_guard lock(owner_mutex);
  }
  [[nodiscard]] bool linked() const noexcept { return hook_.linked(); }

 private:
  friend class WaiterQueue;
  EventLoop* loop_ = nullptr;
  std::coroutine_handle<> handle_;
  ListHook hook_;
};

// A FIFO of waiters (no allocation); its owner's mutex guards it.
class WaiterQueue {
 public:
  [[nodiscard]] bool empty() const noexcept { return waiters_.empty(); }
  void push_back(AsyncWaiter& waiter) noexcept { waiters_.push_back(waiter); }
  // The first waiter, unlinked; the queue must not be empty.
  AsyncWaiter& pop_front() noexcept { return waiters_.pop_front(); }
  static void remove(AsyncWaiter& waiter) noexcept { decltype(waiters_)::unlink(waiter); }

 private:
  IntrusiveList<AsyncWaiter, &AsyncWaiter::hook_> waiters_;
};

}  // namespace detail

class Event {
 public:
  Event() noexcept = default;
  explicit Event(bool initially_set) noexcept : set_(initially_set) {}
  ~Event() { assert(waiters_.empty() && "an Event destroyed with waiters"); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Sets the event and wakes every waiter. Any thread.
  void set() {
    std::lock_guard lock(mutex_);
    set_ = true;
    // Woken under the mutex: a waiter's frame being destroyed meanwhile (its loop's
    // teardown) either unlinks itself first or finds its resumption already posted, and
    // a resumed waiter waits for the mutex before it returns (see above).
    while (!waiters_.empty()) waiters_.pop_front().wake();
  }
  // Clears the event: waits from now on suspend until the next set(). Any thread.
  void reset() noexcept {
    std::lock_guard lock(mutex_);
    set_ = false;
  }
  // Under the mutex, like every read of the state: true means set() has returned or
  // holds the mutex no more, so the Event may be destroyed after it.
  [[nodiscard]] bool is_set() const noexcept {
    std::lock_guard lock(mutex_);
    return set_;
  }

  class [[nodiscard]] Awaiter : private detail::AsyncWaiter {
   public:
    explicit Awaiter(Event& event) noexcept : event_(&event) {}
    Awaiter(Awaiter&&) = delete;
    ~Awaiter() {
      // Destroyed while suspended (its loop's teardown): leave the queue if still in it.
      if (suspended_ && !resumed_) event_->forget(*this);
    }
    // Never ready without the mutex: see the top of this file.
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> handle) {
      prepare(handle);
      suspended_ = event_->enqueue(*this);
      return suspended_;
    }
    void await_resume() noexcept {
      if (suspended_) wait_for_waker(event_->mutex_);
      resumed_ = true;
    }

   private:
    Event* event_;
    bool suspended_ = false;
    bool resumed_ = false;
  };

  // co_await: returns once the event is set.
  Awaiter wait() noexcept { return Awaiter(*this); }

 private:
  // Queues `waiter` unless the event was set meanwhile; returns whether it was queued.
  bool enqueue(detail::AsyncWaiter& waiter) {
    std::lock_guard lock(mutex_);
    if (set_) return false;
    waiters_.push_back(waiter);
    return true;
  }
  void forget(detail::AsyncWaiter& waiter) noexcept {
    std::lock_guard lock(mutex_);
    if (waiter.linked()) waiters_.remove(waiter);
  }

  mutable std::mutex mutex_;
  bool set_ = false;
  detail::WaiterQueue waiters_;
};

}  // namespace coring
