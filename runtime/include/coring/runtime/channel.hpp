// Channel<T>: a bounded multi-producer multi-consumer queue between coroutines, on
// one loop or across loops.
//
//   Channel<int> channel(64);
//   bool sent = co_await channel.send(7);            // suspends while the channel is full
//   std::optional<int> v = co_await channel.recv();  // suspends while it is empty
//   channel.close();                                 // any thread
//
// send() returns false if the channel is closed (the value is dropped); recv()
// returns std::nullopt once the channel is closed and every buffered value has been
// received. close() wakes every waiting receiver (with nullopt) and sender (false).
//
// Waiting senders and receivers queue in FIFO order. A value goes straight from a
// sender to a waiting receiver, and a receiver that frees a slot moves the first
// waiting sender's value into the buffer; either way the waiter is resumed on its
// own loop (schedule() from the same loop, post() from another one). One mutex
// guards the state; nothing spins. The buffer is allocated once, by the constructor.
//
// Lifetime: the Channel must outlive every suspended send() and recv(), and no more: a
// send() or recv() that has returned may destroy the Channel at once, even while
// another thread is still inside send(), recv() or close() (which woke it under the
// mutex). As with Event, a waiter that was suspended takes the mutex once more before
// it returns, so the thread that woke it has let go of the Channel by then.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include "coring/runtime/event.hpp"

namespace coring {

template <typename T>
class Channel {
  // Values move under the mutex, and a throwing move would leave a half-done transfer.
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "Channel<T> needs a T whose move constructor does not throw");

 public:
  // `capacity` values can be buffered without a receiver; at least 1.
  explicit Channel(std::size_t capacity)
      : slots_(std::make_unique<std::optional<T>[]>(capacity)), capacity_(capacity) {
    assert(capacity > 0 && "a Channel needs room for at least one value");
  }
  ~Channel() {
    assert(senders_.empty() && receivers_.empty() && "a Channel destroyed with waiters");
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  class [[nodiscard]] SendAwaiter : private detail::AsyncWaiter {
   public:
    SendAwaiter(Channel& channel, T value) noexcept
        : channel_(&channel), value_(std::move(value)) {}
    SendAwaiter(SendAwaiter&&) = delete;
    ~SendAwaiter() {
      if (suspended_ && !resumed_) channel_->forget(*this, channel_->senders_);
    }
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> handle) {
      prepare(handle);
      suspended_ = channel_->start_send(*this);
      return suspended_;
    }
    // Whether the value went into the channel (false: it was closed).
    bool await_resume() noexcept {
      if (suspended_) wait_for_waker(channel_->mutex_);
      resumed_ = true;
      return sent_;
    }

   private:
    friend class Channel;
    Channel* channel_;
    T value_;
    bool sent_ = false;
    bool suspended_ = false;
    bool resumed_ = false;
  };

  class [[nodiscard]] RecvAwaiter : private detail::AsyncWaiter {
   public:
    explicit RecvAwaiter(Channel& channel) noexcept : channel_(&channel) {}
    RecvAwaiter(RecvAwaiter&&) = delete;
    ~RecvAwaiter() {
      if (suspended_ && !resumed_) channel_->forget(*this, channel_->receivers_);
    }
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> handle) {
      prepare(handle);
      suspended_ = channel_->start_recv(*this);
      return suspended_;
    }
    // The next value, or nullopt once the channel is closed and drained.
    std::optional<T> await_resume() noexcept {
      if (suspended_) wait_for_waker(channel_->mutex_);
      resumed_ = true;
      return std::move(value_);
    }

   private:
    friend class Channel;
    Channel* channel_;
    std::optional<T> value_;
    bool suspended_ = false;
    bool resumed_ = false;
  };

  // co_await: sends `value`, suspending while the channel is full; false if closed.
  SendAwaiter send(T value) noexcept { return SendAwaiter(*this, std::move(value)); }
  // co_await: the next value, suspending while the channel is empty; nullopt once
  // closed and drained.
  RecvAwaiter recv() noexcept { return RecvAwaiter(*this); }

  // Refuses further sends and wakes every waiter. Any thread, more than once.
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    // Waiters are woken under the mutex; see Event::set().
    while (!receivers_.empty()) receivers_.pop_front().wake();
    while (!senders_.empty()) {
      detail::AsyncWaiter& sender = senders_.pop_front();
      static_cast<SendAwaiter&>(sender).sent_ = false;
      sender.wake();
    }
  }

  [[nodiscard]] bool is_closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
  }
  // Values buffered now; stale as soon as it returns when other threads use the channel.
  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock(mutex_);
    return size_;
  }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

 private:
  // Completes the send now (returning false) or queues the sender (returning true).
  bool start_send(SendAwaiter& sender) {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    if (!receivers_.empty()) {
      // Receivers wait only while the buffer is empty: hand the value over directly.
      auto& receiver = static_cast<RecvAwaiter&>(receivers_.pop_front());
      receiver.value_.emplace(std::move(sender.value_));
      sender.sent_ = true;
      receiver.wake();
      return false;
    }
    if (size_ < capacity_) {
      push(std::move(sender.value_));
      sender.sent_ = true;
      return false;
    }
    senders_.push_back(sender);
    return true;
  }

  // Completes the receive now (returning false) or queues the receiver (returning true).
  bool start_recv(RecvAwaiter& receiver) {
    std::lock_guard lock(mutex_);
    if (size_ > 0) {
      receiver.value_.emplace(pop());
      if (!senders_.empty()) {
        // Senders wait only while the buffer is full: the first one takes the slot.
        auto& sender = static_cast<SendAwaiter&>(senders_.pop_front());
        push(std::move(sender.value_));
        sender.sent_ = true;
        sender.wake();
      }
      return false;
    }
    if (closed_) return false;
    receivers_.push_back(receiver);
    return true;
  }

  void forget(detail::AsyncWaiter& waiter, detail::WaiterQueue& queue) noexcept {
    std::lock_guard lock(mutex_);
    if (waiter.linked()) queue.remove(waiter);
  }

  void push(T&& value) noexcept {
    slots_[(head_ + size_) % capacity_].emplace(std::move(value));
    ++size_;
  }
  T pop() noexcept {
    std::optional<T>& slot = slots_[head_];
    T value = std::move(*slot);
    slot.reset();
    head_ = (head_ + 1) % capacity_;
    --size_;
    return value;
  }

  mutable std::mutex mutex_;
  std::unique_ptr<std::optional<T>[]> slots_;  // a ring of capacity_ slots
  std::size_t capacity_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  bool closed_ = false;
  detail::WaiterQueue senders_;
  detail::WaiterQueue receivers_;
};

}  // namespace coring
