#include "log.hpp"

namespace coring {

void runtime_log(detail::LogLevel level, const char* where, const std::string& what) noexcept {
  try {
    detail::log("runtime", level, std::string(where) + ": " + what);
  } catch (...) {
    // std::string could not allocate: at least where it happened, from static text.
    detail::log("runtime", level, where);
  }
}

void runtime_log_error(const char* where, const std::error_code& error) noexcept {
  try {
    runtime_log(detail::LogLevel::error, where, error.message());
  } catch (...) {
    // message() could not allocate.
  }
}

void runtime_log_error(const char* where, int negative_errno) noexcept {
  runtime_log_error(where, std::error_code(-negative_errno, std::system_category()));
}

void runtime_log_exception(const char* where, std::exception_ptr exception) noexcept {
  try {
    try {
      std::rethrow_exception(exception);
    } catch (const std::exception& e) {
      runtime_log(detail::LogLevel::error, where, std::string("uncaught exception: ") + e.what());
    } catch (...) {
      runtime_log(detail::LogLevel::error, where, "uncaught exception of a non-std type");
    }
  } catch (...) {
    detail::log("runtime", detail::LogLevel::error, where);  // no memory for the message
  }
}

}  // namespace coring
