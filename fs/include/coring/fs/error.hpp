// fs::Error and fs::Result<T>: the errors of file and path operations, as values.
//
// An fs operation fails with the kernel's errno (a std::error_code in the system
// category, so `r.error() == std::errc::no_such_file_or_directory` holds) together with
// what was being done and to which path: message() reads "open '/etc/nope': No such file
// or directory", which is what a person needs to act on. The path is copied only when
// an operation fails; a successful result carries just its value.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace coring::fs {

class Error {
 public:
  // `operation` is a string literal ("open", "read", ...); `other_path` is the second
  // path of rename and link operations.
  Error(std::error_code code, const char* operation, std::string path = {},
        std::string other_path = {}) noexcept
      : code_(code),
        operation_(operation),
        path_(std::move(path)),
        other_path_(std::move(other_path)) {
    assert(code && "an fs::Error must carry an error");
  }

  [[nodiscard]] std::error_code code() const noexcept { return code_; }
  [[nodiscard]] const char* operation() const noexcept { return operation_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] const std::string& other_path() const noexcept { return other_path_; }
  // "rename 'a' -> 'b': No such file or directory".
  [[nodiscard]] std::string message() const;
  // The message without the error's own text: "rename 'a' -> 'b'".
  [[nodiscard]] std::string context() const;

 private:
  std::error_code code_;
  const char* operation_;
  std::string path_;
  std::string other_path_;
};

// Thrown by Result::value() on an error: a std::system_error whose what() is the
// Error's message().
class FilesystemError : public std::system_error {
 public:
  explicit FilesystemError(const Error& error)
      : std::system_error(error.code(), error.context()), error_(error) {}
  [[nodiscard]] const Error& error() const noexcept { return error_; }

 private:
  Error error_;
};

template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T> && !std::is_same_v<T, Error>);

 public:
  Result(T value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit
      : state_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) noexcept  // NOLINT: implicit
      : state_(std::in_place_index<1>, std::move(error)) {}

  [[nodiscard]] bool ok() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  // The error's code, or success.
  [[nodiscard]] std::error_code error() const noexcept {
    return ok() ? std::error_code{} : std::get<1>(state_).code();
  }
  // The whole error (code, operation, paths); only when !ok().
  [[nodiscard]] const Error& failure() const noexcept {
    assert(!ok());
    return *std::get_if<1>(&state_);
  }
  // failure().message(), or an empty string on success.
  [[nodiscard]] std::string message() const { return ok() ? std::string() : failure().message(); }

  // The value; throws FilesystemError if this holds an error.
  T& value() & {
    check();
    return *std::get_if<0>(&state_);
  }
  const T& value() const& {
    check();
    return *std::get_if<0>(&state_);
  }
  T&& value() && {
    check();
    return std::move(*std::get_if<0>(&state_));
  }
  T& operator*() & noexcept { return *get(); }
  const T& operator*() const& noexcept { return *get(); }
  T&& operator*() && noexcept { return std::move(*get()); }
  T* operator->() noexcept { return get(); }
  const T* operator->() const noexcept { return get(); }

 private:
  T* get() noexcept {
    assert(ok());
    return std::get_if<0>(&state_);
  }
  const T* get() const noexcept {
    assert(ok());
    return std::get_if<0>(&state_);
  }
  void check() const {
    if (!ok()) throw FilesystemError(failure());
  }

  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() noexcept = default;
  Result(Error error) noexcept : error_(std::move(error)) {}  // NOLINT: implicit

  [[nodiscard]] bool ok() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return ok(); }
  [[nodiscard]] std::error_code error() const noexcept {
    return ok() ? std::error_code{} : error_->code();
  }
  [[nodiscard]] const Error& failure() const noexcept {
    assert(!ok());
    return *error_;
  }
  [[nodiscard]] std::string message() const { return ok() ? std::string() : error_->message(); }
  // Throws FilesystemError if this holds an error.
  void value() const {
    if (!ok()) throw FilesystemError(*error_);
  }

 private:
  std::optional<Error> error_;
};

}  // namespace coring::fs
