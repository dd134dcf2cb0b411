// Operation: the record of one io_uring request, owned by whoever awaits it.
//
// An Operation lives in the awaiting coroutine's frame; its address is the
// user_data of its SQEs, so a CQE leads straight back to it with no table and no
// allocation. The loop calls prep() when it admits the operation, and complete() once
// per CQE. An Operation may use two SQEs — the request and a linked timeout — whose
// CQEs arrive tagged (detail/user_data.hpp defines every user_data a loop sees).
//
// An operation without a CompleteFn is completed by the loop itself, inline in the
// reap: each CQE's res and flags go to res_ and cqe_flags_ (except a zero-copy send's
// notification, which leaves the byte count in place), and the final CQE — the one
// without IORING_CQE_F_MORE — queues waiter_. That is the path of nearly every
// operation, so it costs no indirect call; operations that must look at their CQEs
// (linked timeouts, fds to release, multishot streams) install a CompleteFn.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>

#include "coring/ring/abi.hpp"
#include "coring/ring/result.hpp"
#include "coring/runtime/intrusive_list.hpp"

namespace coring {

class EventLoop;

// How an operation ended, beyond its res.
enum class Outcome : std::uint8_t {
  completed,  // ran to its end: res is its count/fd, or its own -errno
  partial,    // its timeout fired after it had transferred res > 0 bytes
  timed_out,  // its timeout fired first: res is -ETIMEDOUT
  cancelled,  // its stop token fired (or the loop shut down): res is -ECANCELED
};

// What an operation's CQE said: res (a count, an fd, or -errno), its flags, and how
// it ended.
struct IoResult {
  std::int32_t res = 0;
  std::uint32_t flags = 0;
  Outcome outcome = Outcome::completed;

  [[nodiscard]] bool ok() const noexcept { return res >= 0; }
  explicit operator bool() const noexcept { return ok(); }
  // -res in the system category, or success.
  [[nodiscard]] std::error_code error() const noexcept {
    return res < 0 ? std::error_code(-res, std::system_category()) : std::error_code{};
  }
  // res as a count or fd; throws std::system_error(error()) if !ok(), like every
  // result's value(), so that an unchecked error never becomes a huge count.
  [[nodiscard]] std::uint32_t value() const {
    if (res < 0) [[unlikely]]
      throw_error(error());
    return static_cast<std::uint32_t>(res);
  }
  // error().message(), or an empty string on success.
  [[nodiscard]] std::string message() const { return ok() ? std::string() : error().message(); }
  [[nodiscard]] bool has_more() const noexcept { return (flags & ring::cqe_flags::more) != 0; }
};

class Operation {
 public:
  // Fills the operation's SQEs (1 or 2, consecutive; a second one is its linked timeout).
  using PrepFn = void (*)(Operation& self, std::span<ring::Sqe* const> sqes) noexcept;
  // Receives one CQE; `second` tells a linked timeout's CQE from the request's.
  // nullptr: the loop completes the operation inline (see above).
  using CompleteFn = void (*)(Operation& self, const ring::Cqe& cqe, bool second) noexcept;

  Operation(const Operation&) = delete;
  Operation& operator=(const Operation&) = delete;
  Operation& operator=(Operation&&) = delete;

  // Whether the kernel may still post a CQE for this operation (or it waits to be prepped).
  [[nodiscard]] bool in_flight() const noexcept { return state_ != State::idle; }

 protected:
  Operation(PrepFn prep, CompleteFn complete) noexcept : prep_(prep), complete_(complete) {
    poison();
  }
  // An operation may be moved until it is started (awaitables are built as values and
  // returned from modifiers like with_timeout()); after that its address is its identity.
  Operation(Operation&& other) noexcept
      : prep_(other.prep_),
        complete_(other.complete_),
        sqe_count_(other.sqe_count_),
        hears_idle_cancel_(other.hears_idle_cancel_) {
    assert(other.state_ == State::idle && "an operation in flight cannot move");
    poison();
  }
  ~Operation() { assert(state_ == State::idle && "an operation destroyed while in flight"); }

  // How many SQEs (and so final CQEs) prep() fills: 2 with a linked timeout.
  void set_sqe_count(std::uint8_t count) noexcept { sqe_count_ = count; }
  [[nodiscard]] std::uint8_t sqe_count() const noexcept { return sqe_count_; }
  // A cancel that finds the operation idle (between two of its requests) is handed to
  // its CompleteFn as a CQE of -ECANCELED with `second` set, instead of doing nothing.
  void hear_idle_cancel() noexcept { hears_idle_cancel_ = true; }
  // Before the operation starts: nullptr for the loop's inline completion.
  void set_complete(CompleteFn complete) noexcept { complete_ = complete; }
  [[nodiscard]] bool has_complete() const noexcept { return complete_ != nullptr; }

  // The coroutine to resume. The loop queues it itself for an operation without a
  // CompleteFn; a CompleteFn decides when to.
  std::coroutine_handle<> waiter_;
  // The last CQE's res and flags, for an operation without a CompleteFn (valid once it
  // has completed; a CompleteFn may use them as it likes).
  std::int32_t res_;
  std::uint32_t cqe_flags_;

  // What res_ holds in a debug build until a CQE (or the operation itself) writes it: no
  // -errno and no count, so that reading it too early is caught (see result()).
  static constexpr std::int32_t poisoned_res = -0x7ead'beef;
  [[nodiscard]] bool res_written() const noexcept { return res_ != poisoned_res; }

 private:
  // Release builds leave res_ and cqe_flags_ unwritten: an operation is built once per
  // co_await, and every store counts on that path. Debug builds write values no kernel
  // returns, so that a read before the CQE is a visible bug rather than stack garbage.
  void poison() noexcept {
#ifndef NDEBUG
    res_ = poisoned_res;
    cqe_flags_ = 0xdead'beefU;
#endif
  }

  friend class EventLoop;
  enum class State : std::uint8_t { idle, queued, submitted };

  // Fields without an initialiser are written before they are read (the queue hook
  // when the operation is queued, which state_ records): an operation is built once per
  // co_await, and every store counts on that path.
  PrepFn prep_;
  CompleteFn complete_;
  ListHook queue_hook_{ListHook::Unset{}};  // waiting for admission
  std::uint8_t sqe_count_ = 1;
  std::uint8_t cqes_left_ = 0;  // final CQEs still to come
  State state_ = State::idle;
  bool hears_idle_cancel_ = false;
  ListHook cancel_hook_;  // in the loop's list of cancels from other threads
};

}  // namespace coring
