// FileOp: the runtime's io() awaitable, with its IoResult turned into an fs::Result.
//
// It holds the IoOp by value, so co_await keeps the operation record in the awaiting
// frame exactly as io() does (no allocation), and converts the CQE's res on resume: a
// count or nothing on success, or an fs::Error naming the operation and the file's
// path. The path is a pointer to the File's own string, copied only on failure.
#pragma once

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stop_token>
#include <string>
#include <utility>

#include "coring/fs/error.hpp"
#include "coring/ring/prep.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/request.hpp"

namespace coring::fs::detail {

// What a failure names: the operation (a string literal) and the file's path.
struct Where {
  const char* operation;
  const std::string* path;
};

// The error for a CQE's res < 0.
[[nodiscard, gnu::cold]] Error make_error(std::int32_t res, const char* operation,
                                          std::string path);
[[nodiscard, gnu::cold]] Error make_error(std::int32_t res, Where where);

template <typename T, typename Prep>
class [[nodiscard]] FileOp {
 public:
  FileOp(Prep prep, Where where) noexcept(std::is_nothrow_move_constructible_v<Prep>)
      : op_(std::move(prep)), where_(where) {}

  // As IoOp::with_timeout(): the result is -ETIMEDOUT if the timeout fires first (a
  // read or write that had moved bytes by then returns their count).
  FileOp with_timeout(std::chrono::nanoseconds timeout) && noexcept {
    return FileOp(std::move(op_).with_timeout(timeout), where_);
  }
  // As IoOp::with_stop(): the result is -ECANCELED if `token` fires first.
  FileOp with_stop(std::stop_token token) && noexcept {
    return FileOp(std::move(op_).with_stop(std::move(token)), where_);
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> waiter) noexcept { return op_.await_suspend(waiter); }
  Result<T> await_resume() const {
    const IoResult r = op_.await_resume();
    if (r.res < 0) [[unlikely]]
      return make_error(r.res, where_);
    if constexpr (std::is_void_v<T>) {
      return {};
    } else {
      return static_cast<T>(r.value());
    }
  }

 private:
  FileOp(IoOp<Prep>&& op, Where where) noexcept : op_(std::move(op)), where_(where) {}

  IoOp<Prep> op_;
  Where where_;
};

// The most one read or write transfers: Linux's MAX_RW_COUNT.
inline constexpr std::size_t max_transfer = 0x7ffff000;

// read_all()/write_all(): one request after another (request()) until the span is done,
// each continuing where the last stopped. A transfer a timeout or deadline cut short is
// ETIMEDOUT, whatever it had moved; a write that moves nothing is EIO.
struct TransferAllBody {
  std::byte* data;
  std::size_t size;
  std::uint64_t offset;
  int fd;
  bool direct;  // fd is a registered-file slot (a direct descriptor)
  bool writing;
  Where where;
  std::size_t done = 0;

  void prep(ring::Sqe& sqe) const noexcept {
    const std::span<std::byte> rest{data + done, std::min(size - done, max_transfer)};
    if (writing) {
      ring::prep_write(sqe, fd, rest, offset + done);
    } else {
      ring::prep_read(sqe, fd, rest, offset + done);
    }
    if (direct) ring::use_fixed_file(sqe);
  }
  bool again(const IoResult& r) noexcept {
    if (r.res > 0) done += r.value();
    return r.res > 0 && done < size;
  }
  // The error that ended the transfer, if one did.
  [[nodiscard]] std::int32_t failure(const IoResult& r) const noexcept {
    if (r.res < 0) return r.res;
    if (r.outcome == Outcome::partial) return -ETIMEDOUT;
    if (writing && done < size) return -EIO;  // a write of 0 bytes: no progress
    return 0;
  }
};

struct ReadAllBody : TransferAllBody {
  Result<std::size_t> result(const IoResult& r) const {
    if (const std::int32_t error = failure(r); error < 0) [[unlikely]]
      return make_error(error, where);
    return done;  // less than size only at end of file
  }
};

struct WriteAllBody : TransferAllBody {
  Result<void> result(const IoResult& r) const {
    if (const std::int32_t error = failure(r); error < 0) [[unlikely]]
      return make_error(error, where);
    return {};
  }
};

}  // namespace coring::fs::detail
