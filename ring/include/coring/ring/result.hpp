// Result<T, E>: a value or an error, the return type of every fallible operation on
// coring's I/O path (errors are values there; exceptions are kept for construction and
// configuration). C++20 has no std::expected, so this is a small one of our own.
//
// E is std::error_code unless a layer needs more: fs::Result<T> is Result<T, fs::Error>,
// whose error also names the operation and the paths. Whatever E is, error() is the
// std::error_code to compare with std::errc, failure() the whole E, message() its text
// (E::message()), and value() on an error throws the exception that E chooses. An error
// type says how through two functions that Result finds by argument-dependent lookup,
// declared next to the type:
//
//   std::error_code error_code_of(const E&) noexcept;  // what error() returns
//   [[noreturn]] void throw_error(const E&);           // what value() throws
//
// std::error_code's pair is below: its code is itself, and it throws std::system_error.
// A std::error_code becomes an error only through fail(code); any other E converts
// implicitly.
#pragma once

#include <cassert>
#include <cstddef>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

namespace coring {

// Tags a std::error_code as the error alternative of a Result. A code is made into an
// error only through fail(): a default std::error_code means success, and many types
// convert to one.
struct Failure {
  std::error_code code;
};
inline Failure fail(std::error_code code) noexcept { return Failure{code}; }

// std::error_code's customisation points: the code is itself, and value() throws
// std::system_error. They return a reference and are forced inline so that error() and
// value() of Result<T>, on the I/O path, compile to what a hand-written union of T and
// std::error_code does: the code copied by error()'s caller, the throw in place.
inline const std::error_code& error_code_of(const std::error_code& code) noexcept { return code; }
[[noreturn, gnu::always_inline]] inline void throw_error(const std::error_code& code) {
  throw std::system_error(code);
}

namespace detail {
// Whether E is the default error type, built with fail(code). Any other E converts
// implicitly: it is a type of its own, made only for errors.
template <typename E>
inline constexpr bool is_code_error = std::is_same_v<E, std::error_code>;

template <typename T, typename E>
inline constexpr bool is_nothrow_movable =
    std::conjunction_v<std::is_nothrow_move_constructible<T>,
                       std::is_nothrow_move_constructible<E>>;
template <typename T, typename E>
inline constexpr bool is_copyable =
    !is_code_error<E> && std::is_copy_constructible_v<T> && std::is_copy_constructible_v<E>;
}  // namespace detail

template <typename T, typename E = std::error_code>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T>, "Result<T&> is not supported");
  static_assert(detail::is_code_error<E> || !std::is_same_v<T, E>,
                "a Result's value and error types must differ");

 public:
  Result(const T& value) noexcept(std::is_nothrow_copy_constructible_v<T>)  // NOLINT: implicit
      : has_value_(true) {
    ::new (&value_) T(value);
  }
  Result(T&& value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit
      : has_value_(true) {
    ::new (&value_) T(std::move(value));
  }
  Result(Failure failure) noexcept  // NOLINT: implicit
      requires(detail::is_code_error<E>)
      : error_(failure.code), has_value_(false) {
    assert(failure.code && "a Failure must carry an error");
  }
  Result(E error) noexcept(std::is_nothrow_move_constructible_v<E>)  // NOLINT: implicit
      requires(!detail::is_code_error<E>)
      : error_(std::move(error)), has_value_(false) {}
  Result(Result&& other) noexcept(detail::is_nothrow_movable<T, E>) : has_value_(other.has_value_) {
    if (has_value_) {
      ::new (&value_) T(std::move(other.value_));
    } else {
      ::new (&error_) E(std::move(other.error_));
    }
  }
  // Result<T> is move-only; with another error type a Result copies when T and E do.
  Result(const Result& other) requires(detail::is_copyable<T, E>) : has_value_(other.has_value_) {
    if (has_value_) {
      ::new (&value_) T(other.value_);
    } else {
      ::new (&error_) E(other.error_);
    }
  }
  Result& operator=(const Result& other) requires(detail::is_copyable<T, E>) {
    if (this != &other) *this = Result(other);  // a copy that throws leaves *this as it was
    return *this;
  }
  Result& operator=(Result&& other) noexcept(detail::is_nothrow_movable<T, E>) {
    if (this != &other) {
      this->~Result();
      ::new (static_cast<void*>(this)) Result(std::move(other));
    }
    return *this;
  }
  ~Result() {
    if (has_value_) {
      value_.~T();
    } else {
      error_.~E();  // nothing to do for std::error_code
    }
  }

  [[nodiscard]] bool ok() const noexcept { return has_value_; }
  explicit operator bool() const noexcept { return has_value_; }

  // The error's code, or a default (success) error_code when there is a value.
  [[nodiscard]] std::error_code error() const noexcept {
    return has_value_ ? std::error_code{} : error_code_of(error_);
  }
  // The whole error; only when !ok().
  [[nodiscard]] const E& failure() const noexcept {
    assert(!has_value_);
    return error_;
  }
  // failure().message(), or an empty string on success.
  [[nodiscard]] std::string message() const {
    return has_value_ ? std::string() : error_.message();
  }

  // The value; throws (throw_error(failure())) if this holds an error.
  T& value() & {
    check();
    return value_;
  }
  const T& value() const& {
    check();
    return value_;
  }
  T&& value() && {
    check();
    return std::move(value_);
  }
  T& operator*() & noexcept {
    assert(has_value_);
    return value_;
  }
  const T& operator*() const& noexcept {
    assert(has_value_);
    return value_;
  }
  T&& operator*() && noexcept {
    assert(has_value_);
    return std::move(value_);
  }
  T* operator->() noexcept {
    assert(has_value_);
    return &value_;
  }
  const T* operator->() const noexcept {
    assert(has_value_);
    return &value_;
  }

 private:
  void check() const {
    if (!has_value_) throw_error(error_);
  }

  union {
    T value_;
    E error_;
  };
  bool has_value_;
};

template <typename E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() noexcept = default;
  Result(Failure failure) noexcept  // NOLINT: implicit
      requires(detail::is_code_error<E>)
      : error_(failure.code) {}
  Result(E error) noexcept(std::is_nothrow_move_constructible_v<E>)  // NOLINT: implicit
      requires(!detail::is_code_error<E>)
      : error_(std::move(error)) {}

  [[nodiscard]] bool ok() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return ok(); }
  [[nodiscard]] std::error_code error() const noexcept {
    if constexpr (detail::is_code_error<E>) {
      return error_;
    } else {
      return ok() ? std::error_code{} : error_code_of(*error_);
    }
  }
  // The whole error; only when !ok().
  [[nodiscard]] const E& failure() const noexcept {
    assert(!ok());
    return stored();
  }
  // failure().message(), or an empty string on success.
  [[nodiscard]] std::string message() const { return ok() ? std::string() : stored().message(); }
  // Throws (throw_error(failure())) if this holds an error.
  void value() const {
    if (!ok()) throw_error(stored());
  }

 private:
  const E& stored() const noexcept {
    if constexpr (detail::is_code_error<E>) {
      return error_;
    } else {
      return *error_;
    }
  }

  // A std::error_code is empty on success and needs no flag; any other E is optional.
  std::conditional_t<detail::is_code_error<E>, std::error_code, std::optional<E>> error_;
};

namespace detail {
// The layout Result<T> keeps on the I/O path: no more than a hand-written union of the
// value and the code, and a flag.
template <typename T>
struct CodeResultLayout {
  union {
    T value;
    std::error_code error;
  };
  bool has_value;
};
}  // namespace detail

static_assert(sizeof(Result<std::size_t>) == sizeof(detail::CodeResultLayout<std::size_t>));
static_assert(alignof(Result<std::size_t>) == alignof(detail::CodeResultLayout<std::size_t>));
static_assert(std::is_nothrow_move_constructible_v<Result<std::size_t>> &&
              std::is_nothrow_move_assignable_v<Result<std::size_t>> &&
              !std::is_copy_constructible_v<Result<std::size_t>>);
static_assert(sizeof(Result<void>) == sizeof(std::error_code) &&
              std::is_trivially_copyable_v<Result<void>>);

}  // namespace coring
