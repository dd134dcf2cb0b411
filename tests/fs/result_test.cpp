// coring::Result<T, E> with an error type other than std::error_code, and fs::Result,
// which is Result<T, fs::Error>. An error type chooses through error_code_of() what
// error() returns and through throw_error() what value() throws; failure() is the
// whole error and message() its text. Result<T> (std::error_code) keeps its own rules:
// built from fail(code), value() throws std::system_error, move-only; a Result with
// another error type converts from it and copies when T and E do.
#include "coring/ring/result.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include "coring/fs/error.hpp"

namespace coring::test {
namespace {

// An error type of a parser: where the input went wrong. `alive` counts the live
// copies, so that a test sees a Result destroy the error it holds.
struct ParseError {
  int line = 0;
  std::shared_ptr<int> alive = std::make_shared<int>(0);

  [[nodiscard]] std::string message() const { return "line " + std::to_string(line); }
};

class ParseFailure : public std::runtime_error {
 public:
  explicit ParseFailure(const ParseError& error)
      : std::runtime_error(error.message()), line_(error.line) {}
  [[nodiscard]] int line() const noexcept { return line_; }

 private:
  int line_;
};

// ParseError's customisation points, found by argument-dependent lookup.
std::error_code error_code_of(const ParseError&) noexcept {
  return std::make_error_code(std::errc::invalid_argument);
}
[[noreturn]] void throw_error(const ParseError& error) { throw ParseFailure(error); }

template <typename T>
using ParseResult = Result<T, ParseError>;

ParseResult<int> parse(bool good) {
  if (!good) return ParseError{3};
  return 42;
}

TEST(GenericResult, AValueIsOkAndHasNoError) {
  ParseResult<int> r = parse(true);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(*r, 42);
  EXPECT_EQ(r.value(), 42);
  EXPECT_FALSE(r.error());
  EXPECT_EQ(r.message(), "");
}

TEST(GenericResult, AnErrorGivesItsCodeItselfAndItsMessage) {
  ParseResult<int> r = parse(false);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.error(), std::errc::invalid_argument);
  EXPECT_EQ(r.failure().line, 3);
  EXPECT_EQ(r.message(), "line 3");
}

TEST(GenericResult, ValueOnAnErrorThrowsTheErrorTypesOwnException) {
  ParseResult<int> r = parse(false);
  try {
    (void)r.value();
    ADD_FAILURE() << "value() of an error did not throw";
  } catch (const ParseFailure& e) {
    EXPECT_EQ(e.line(), 3);
    EXPECT_STREQ(e.what(), "line 3");
  }
  EXPECT_THROW((void)std::as_const(r).value(), ParseFailure);
  EXPECT_THROW((void)std::move(r).value(), ParseFailure);
}

TEST(GenericResult, AMoveOnlyValueMovesOutAndTheErrorIsDestroyed) {
  ParseResult<std::unique_ptr<int>> value = std::make_unique<int>(7);
  ParseResult<std::unique_ptr<int>> moved = std::move(value);
  const std::unique_ptr<int> out = *std::move(moved);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(*out, 7);

  const ParseError error{5};
  const std::weak_ptr<int> watch = error.alive;
  {
    ParseResult<std::unique_ptr<int>> failed = error;
    ParseResult<std::unique_ptr<int>> assigned = std::make_unique<int>(1);
    assigned = std::move(failed);
    ASSERT_FALSE(assigned);
    EXPECT_EQ(assigned.failure().line, 5);
    EXPECT_EQ(watch.use_count(), 2);  // `error` and the copy moved from `failed` to `assigned`
  }
  EXPECT_EQ(watch.use_count(), 1) << "a Result did not destroy its error";
}

TEST(GenericResult, VoidIsOkByDefaultAndThrowsItsErrorsException) {
  const Result<void, ParseError> fine;
  EXPECT_TRUE(fine.ok());
  EXPECT_FALSE(fine.error());
  EXPECT_EQ(fine.message(), "");
  EXPECT_NO_THROW(fine.value());

  const Result<void, ParseError> failed = ParseError{9};
  const Result<void, ParseError> copy = failed;
  for (const Result<void, ParseError>* r : {&failed, &copy}) {
    ASSERT_FALSE(r->ok());
    EXPECT_EQ(r->error(), std::errc::invalid_argument);
    EXPECT_EQ(r->failure().line, 9);
    EXPECT_EQ(r->message(), "line 9");
    EXPECT_THROW(r->value(), ParseFailure);
  }
}

// Result<T> with std::error_code: an error only through fail(), never from a bare code,
// and move-only; the other error types convert implicitly.
static_assert(std::is_convertible_v<Failure, Result<int>>);
static_assert(!std::is_convertible_v<std::error_code, Result<int>>);
static_assert(!std::is_constructible_v<Result<int>, std::error_code>);
static_assert(!std::is_copy_constructible_v<Result<int>>);
static_assert(std::is_convertible_v<ParseError, ParseResult<int>>);
static_assert(!std::is_convertible_v<Failure, ParseResult<int>>);
static_assert(!std::is_convertible_v<Failure, Result<void, ParseError>>);

TEST(CodeResult, ValueOnAnErrorThrowsSystemErrorWithTheCode) {
  Result<int> r = fail(std::make_error_code(std::errc::timed_out));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::timed_out);
  EXPECT_EQ(r.failure(), std::errc::timed_out);
  EXPECT_EQ(r.message(), std::make_error_code(std::errc::timed_out).message());
  try {
    (void)r.value();
    ADD_FAILURE() << "value() of an error did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::timed_out);
  }
  const Result<void> v = fail(std::make_error_code(std::errc::timed_out));
  EXPECT_EQ(v.error(), std::errc::timed_out);
  EXPECT_THROW(v.value(), std::system_error);
  EXPECT_TRUE(Result<void>{}.ok());
}

// fs::Result is the same template with fs::Error.
static_assert(std::is_same_v<fs::Result<int>, Result<int, fs::Error>>);
static_assert(std::is_same_v<fs::Result<void>, Result<void, fs::Error>>);
static_assert(std::is_convertible_v<fs::Error, fs::Result<int>>);
static_assert(std::is_convertible_v<fs::Error, fs::Result<void>>);

// Unlike Result<T>, an fs::Result copies when its value does.
static_assert(std::is_copy_constructible_v<fs::Result<int>> &&
              std::is_copy_assignable_v<fs::Result<int>>);
static_assert(!std::is_copy_constructible_v<fs::Result<std::unique_ptr<int>>>);
static_assert(std::is_copy_constructible_v<fs::Result<void>>);

fs::Error missing() {
  return {std::make_error_code(std::errc::no_such_file_or_directory), "open", "/nope"};
}

TEST(FsResult, ErrorIsTheCodeAndFailureTheWholeError) {
  const fs::Result<int> r = missing();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::no_such_file_or_directory);
  EXPECT_EQ(r.failure().code(), std::errc::no_such_file_or_directory);
  EXPECT_EQ(r.failure().operation(), std::string("open"));
  EXPECT_EQ(r.failure().path(), "/nope");
  EXPECT_EQ(r.message(), "open '/nope': No such file or directory");
}

TEST(FsResult, ACopyHoldsTheSameValueOrError) {
  const fs::Result<std::string> value = std::string("data");
  const fs::Result<std::string> failed = missing();
  fs::Result<std::string> copy = value;
  ASSERT_TRUE(copy);
  EXPECT_EQ(*copy, "data");
  copy = failed;
  ASSERT_FALSE(copy);
  EXPECT_EQ(copy.failure().path(), "/nope");
  EXPECT_EQ(failed.failure().path(), "/nope");
  EXPECT_EQ(*value, "data");
}

TEST(FsResult, ValueOnAnErrorThrowsFilesystemErrorNamingThePath) {
  const fs::Result<int> r = missing();
  try {
    (void)r.value();
    ADD_FAILURE() << "value() of an error did not throw";
  } catch (const fs::FilesystemError& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(e.error().path(), "/nope");
    EXPECT_EQ(std::string(e.what()), r.message());
  }
  const fs::Result<void> v = missing();
  EXPECT_EQ(v.error(), std::errc::no_such_file_or_directory);
  EXPECT_EQ(v.failure().path(), "/nope");
  EXPECT_THROW(v.value(), fs::FilesystemError);
  EXPECT_NO_THROW(fs::Result<void>{}.value());
}

}  // namespace
}  // namespace coring::test
