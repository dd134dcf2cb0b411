// Result<T>: a value or a std::error_code, the return type of every fallible
// operation on coring's I/O path (errors are values there; exceptions are kept
// for construction and configuration). C++20 has no std::expected, so this is
// a small one of our own.
#pragma once

#include <cassert>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

namespace coring {

// Tags a std::error_code as the error alternative of a Result.
struct Failure {
  std::error_code code;
};
inline Failure fail(std::error_code code) noexcept { return Failure{code}; }

template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T>, "Result<T&> is not supported");

 public:
  Result(const T& value) noexcept(std::is_nothrow_copy_constructible_v<T>)  // NOLINT: implicit
      : has_value_(true) {
    ::new (&value_) T(value);
  }
  Result(T&& value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit
      : has_value_(true) {
    ::new (&value_) T(std::move(value));
  }
  Result(Failure failure) noexcept : error_(failure.code), has_value_(false) {  // NOLINT
    assert(failure.code && "a Failure must carry an error");
  }
  Result(Result&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
      : has_value_(other.has_value_) {
    if (has_value_) {
      ::new (&value_) T(std::move(other.value_));
    } else {
      ::new (&error_) std::error_code(other.error_);
    }
  }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  Result& operator=(Result&& other) noexcept(std::is_nothrow_move_constructible_v<T>) {
    if (this != &other) {
      this->~Result();
      ::new (static_cast<void*>(this)) Result(std::move(other));
    }
    return *this;
  }
  ~Result() {
    if (has_value_) value_.~T();
  }

  [[nodiscard]] bool ok() const noexcept { return has_value_; }
  explicit operator bool() const noexcept { return has_value_; }

  // The error, or a default (success) error_code when there is a value.
  [[nodiscard]] std::error_code error() const noexcept {
    return has_value_ ? std::error_code{} : error_;
  }

  // The value; throws std::system_error if this holds an error.
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
    if (!has_value_) throw std::system_error(error_);
  }

  union {
    T value_;
    std::error_code error_;
  };
  bool has_value_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() noexcept = default;
  Result(Failure failure) noexcept : error_(failure.code) {}  // NOLINT: implicit

  [[nodiscard]] bool ok() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return !error_; }
  [[nodiscard]] std::error_code error() const noexcept { return error_; }
  // Throws std::system_error if this holds an error.
  void value() const {
    if (error_) throw std::system_error(error_);
  }

 private:
  std::error_code error_;
};

}  // namespace coring
