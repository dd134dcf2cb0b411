// fs::Error and fs::Result<T>: the errors of file and path operations, as values.
//
// An fs operation fails with the kernel's errno (a std::error_code in the system
// category, so `r.error() == std::errc::no_such_file_or_directory` holds) together with
// what was being done and to which path: message() reads "open '/etc/nope': No such file
// or directory", which is what a person needs to act on. The path is copied only when
// an operation fails; a successful result carries just its value.
#pragma once

#include <cassert>
#include <string>
#include <system_error>
#include <utility>

#include "coring/ring/result.hpp"

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

// Result's customisation points (coring/ring/result.hpp): an fs::Result's error() is
// the Error's code, and its value() throws FilesystemError.
inline std::error_code error_code_of(const Error& error) noexcept { return error.code(); }
[[noreturn]] inline void throw_error(const Error& error) { throw FilesystemError(error); }

// A value, or an Error naming the operation and path(s). Built implicitly from either;
// error() is the code, failure() the whole Error, message() its line of text.
template <typename T>
using Result = coring::Result<T, Error>;

}  // namespace coring::fs
