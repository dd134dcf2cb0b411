// on_pool(): a system call io_uring does not offer, run on the blocking pool and
// turned into an fs::Result.
#pragma once

#include <string>
#include <system_error>
#include <utility>

#include "coring/fs/error.hpp"
#include "coring/runtime/blocking.hpp"
#include "coring/runtime/task.hpp"

namespace coring::fs::detail {

// Runs `fn` — which returns 0 or an errno — on BlockingPool::shared(). A pool that
// cannot run it (no thread could start, or it was shut down) is an error value too.
template <typename Fn>
Task<Result<void>> on_pool(const char* operation, std::string path, Fn fn) {
  int error = 0;
  try {
    error = co_await spawn_blocking(std::move(fn));
  } catch (const std::system_error& e) {
    co_return Error(e.code(), operation, std::move(path));
  }
  if (error != 0)
    co_return Error(std::error_code(error, std::system_category()), operation, std::move(path));
  co_return Result<void>{};
}

}  // namespace coring::fs::detail
