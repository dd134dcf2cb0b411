// when_any: runs children at once; the first to finish wins and the others are
// cancelled — and waited for.
//
//   auto first = co_await when_any(
//       [&](std::stop_token stop) { return fetch(primary, stop); },
//       [&](std::stop_token stop) -> Task<Reply> {
//         co_await sleep_for(50ms).with_stop(stop);   // hedge: ask the backup a bit later
//         co_return co_await fetch(backup, stop);
//       });
//   use(first.index, first.value);
//
// Cancellation needs a token, so a child is given as an invocable that takes a
// std::stop_token and returns a Task; each is called once, in argument order, and they
// all receive the same token. The first child to finish (with a value or an exception)
// wins: the token is triggered, so the others' operations awaited .with_stop(token) are
// cancelled with IORING_OP_ASYNC_CANCEL. when_any then waits for every loser to finish
// — none is abandoned with I/O in flight, the rule of structured concurrency — and
// only then returns the winner's index and value, or rethrows the winner's exception.
// A loser's value is dropped; a loser's exception is logged at debug level (a child
// that reports cancellation by throwing is expected here).
//
// An outer std::stop_token (optional first argument) cancels every child when
// triggered, from any thread; the first child to finish still wins, with whatever it
// made of its cancellation. The invocables live in when_any's frame for as long as the
// children run, so a lambda coroutine's captures stay valid.
//
// The mechanism (child frames, a counter in the parent's frame, the loop thread only)
// is when_all's; see when_all.hpp. The winner's value is built in place in when_any's
// frame.
#pragma once

#include <concepts>
#include <cstddef>
#include <exception>
#include <limits>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <variant>

#include "coring/runtime/task.hpp"
#include "coring/runtime/when_all.hpp"

namespace coring {

// What when_any returns: which child won (its position in the argument list) and its
// value. `V` is the children's common value type when they all have the same one
// (std::monostate for Task<void>), and otherwise std::variant of their value types,
// holding the winner's at alternative `index`.
template <typename V>
struct WhenAnyResult {
  std::size_t index;
  V value;
};

namespace detail {

// An invocable taking a std::stop_token and returning a Task.
template <typename F>
concept StopTaskFactory = std::invocable<F&, std::stop_token> &&
    TaskTraits<std::invoke_result_t<F&, std::stop_token>>::is_task;

template <typename F>
using FactoryValue =
    ValueOf<typename TaskTraits<std::invoke_result_t<F&, std::stop_token>>::value_type>;

template <typename... Vs>
struct AnyValue {
  using type = std::variant<Vs...>;
  static constexpr bool by_index = true;  // the value goes to the winner's alternative
};
template <typename V, typename... Vs>
requires(std::is_same_v<V, Vs>&&...) struct AnyValue<V, Vs...> {
  using type = V;
  static constexpr bool by_index = false;
};

template <typename... Fs>
using AnyValueOf = AnyValue<FactoryValue<Fs>...>;

// Cancels the children when the outer token is triggered (from any thread).
struct StopRelay {
  std::stop_source* target;
  void operator()() const noexcept { target->request_stop(); }
};

template <typename V>
class AnyState {
 public:
  static constexpr std::size_t no_winner = std::numeric_limits<std::size_t>::max();

  explicit AnyState(std::stop_source& stop) noexcept : stop_(&stop) {}

  [[nodiscard]] bool decided() const noexcept { return winner_ != no_winner; }
  [[nodiscard]] std::stop_token token() const noexcept { return stop_->get_token(); }

  // The first to finish wins and asks every other child to stop.
  template <std::size_t I, bool ByIndex, typename U>
  void win_with_value(U&& value) {
    if constexpr (ByIndex) {
      value_.emplace(std::in_place_index<I>, std::forward<U>(value));
    } else {
      value_.emplace(std::forward<U>(value));
    }
    decide(I);
  }
  void win_with_error(std::size_t index, std::exception_ptr error) noexcept {
    error_ = std::move(error);
    decide(index);
  }

  WhenAnyResult<V> take() {
    if (error_) std::rethrow_exception(error_);
    return WhenAnyResult<V>{winner_, std::move(*value_)};
  }

 private:
  void decide(std::size_t index) noexcept {
    winner_ = index;
    stop_->request_stop();
  }

  std::stop_source* stop_;
  std::size_t winner_ = no_winner;
  std::optional<V> value_;
  std::exception_ptr error_;
};

template <typename V, std::size_t I, bool ByIndex>
struct AnySink {
  AnyState<V>* state;

  template <typename U>
  void set_value(U&& value) {
    if (state->decided()) return;  // a loser: nobody wants its value
    state->template win_with_value<I, ByIndex>(std::forward<U>(value));
  }
  void set_error(std::exception_ptr error) noexcept {
    if (state->decided()) {
      log_exception("when_any: a losing child failed", LogLevel::debug, error);
      return;
    }
    state->win_with_error(I, std::move(error));
  }
};

// Creates and starts each child in turn. An invocable that throws (or a frame that
// cannot be allocated) counts as that child finishing first with the exception, unless
// another already won: the children already started are stopped and joined either way.
template <typename V, bool ByIndex, std::size_t... I, typename... Fs>
void start_any(JoinCounter& children, AnyState<V>& state, std::index_sequence<I...>,
               Fs&... factories) noexcept {
  std::size_t started = 0;
  try {
    ((children.start(run_child(children, factories(state.token()), AnySink<V, I, ByIndex>{&state})),
      ++started),
     ...);
  } catch (...) {
    if (state.decided()) {
      log_exception("when_any: starting a child", LogLevel::debug, std::current_exception());
    } else {
      state.win_with_error(started, std::current_exception());
    }
  }
}

}  // namespace detail

// Runs the children concurrently on the current loop; the first to finish wins, the
// others are stopped through their token and joined; see the top of this file.
// `outer`, when triggered, stops every child.
template <typename... Fs>
requires(sizeof...(Fs) > 0 && (detail::StopTaskFactory<Fs> && ...))
    Task<WhenAnyResult<typename detail::AnyValueOf<Fs...>::type>> when_any(std::stop_token outer,
                                                                           Fs... factories) {
  using Value = detail::AnyValueOf<Fs...>;
  std::stop_source stop;
  // Declared after `stop`, so destroyed before it; the destructor waits for a relay
  // running on another thread.
  std::optional<std::stop_callback<detail::StopRelay>> relay;
  if (outer.stop_possible()) relay.emplace(std::move(outer), detail::StopRelay{&stop});
  detail::AnyState<typename Value::type> state(stop);
  detail::JoinCounter children;
  detail::start_any<typename Value::type, Value::by_index>(
      children, state, std::index_sequence_for<Fs...>{}, factories...);
  co_await children.wait();
  co_return state.take();
}

// when_any without an outer token.
template <typename... Fs>
requires(sizeof...(Fs) > 0 && (detail::StopTaskFactory<Fs> && ...))
    Task<WhenAnyResult<typename detail::AnyValueOf<Fs...>::type>> when_any(Fs... factories) {
  return when_any(std::stop_token{}, std::move(factories)...);
}

}  // namespace coring
