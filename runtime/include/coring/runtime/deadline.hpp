// Deadline: a resettable deadline, one stop token for several operations.
//
//   Deadline idle(30s);                                   // on the current loop
//   for (;;) {
//     auto got = co_await sock.recv(buf).with_stop(idle.token());
//     if (idle.expired()) break;                          // idle for 30 s
//     ...
//     idle.reset(30s);                                    // pushed back: a store
//   }
//
// token() is triggered when the deadline passes; every operation, sleep or request()
// given it with with_stop() is then cancelled (its result says ECANCELED), and
// expired() tells that from a stop of another kind. Optionally the token also follows
// another one (a server's shutdown), so that one token covers both; expired() stays
// false for that stop.
//
// One timer is in flight (an IORING_OP_TIMEOUT at an absolute CLOCK_MONOTONIC time,
// which is steady_clock): pushing the deadline back only stores the new time, and the
// timer, when it fires before it, is armed again for it. Only moving the deadline
// earlier than the timer costs an SQE (a cancel, then a re-arm). Once the deadline has
// passed (or the other token has stopped), it stays so: resets do nothing.
//
// The timer's record lives on the heap, apart from the Deadline, so that destroying a
// Deadline at any time is safe: an armed timer is cancelled and its record freed when
// its last CQE arrives (or when the loop drains). Loop thread only: build, reset and
// destroy a Deadline on its loop's thread, before the loop is destroyed. token() may be
// passed to any thread.
#pragma once

#include <chrono>
#include <optional>
#include <stop_token>

#include "coring/runtime/event_loop.hpp"

namespace coring {

namespace detail {
class DeadlineTimer;
}

class Deadline {
 public:
  using clock = std::chrono::steady_clock;

  // Passes `timeout` from now, on the loop whose turn runs on this thread; throws
  // std::logic_error outside a loop's turn, std::bad_alloc. If `also` is given, token()
  // is also triggered when it is.
  explicit Deadline(std::chrono::nanoseconds timeout, std::stop_token also = {});
  // The same on `loop`, from its thread (also outside a turn: the timer goes to the
  // kernel with the loop's next submission).
  Deadline(EventLoop& loop, std::chrono::nanoseconds timeout, std::stop_token also = {});
  // Cancels the timer if armed; its record is freed with its last CQE.
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // Moves the deadline to `timeout` from now, later or earlier (earlier than the armed
  // timer costs a cancel and a re-arm). Nothing once passed or stopped.
  void reset(std::chrono::nanoseconds timeout) noexcept;
  // Moves the deadline to `when` if that is later; never an SQE. Nothing once passed or
  // stopped.
  void extend_to(clock::time_point when) noexcept;

  // Triggered when the deadline passes (or `also` is triggered).
  [[nodiscard]] std::stop_token token() const noexcept;
  // Whether the deadline passed: token() was triggered by expiry, not by `also`.
  [[nodiscard]] bool expired() const noexcept;
  // When the deadline passes (as last set).
  [[nodiscard]] clock::time_point expiry() const noexcept;

 private:
  struct ForwardStop {
    std::stop_source* source;
    void operator()() const noexcept { source->request_stop(); }
  };

  detail::DeadlineTimer* timer_;
  std::optional<std::stop_callback<ForwardStop>> also_;
};

}  // namespace coring
