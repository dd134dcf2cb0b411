// Aggregates of the public headers that may have members with destructors, each with
// the reason none of them is ever a braced temporary inside co_await (see
// aggregate_check.sh). A type listed here is a result or a constructor's argument,
// never an argument of a coroutine or of a function returning an awaitable.
#pragma once

#include "coring/fs/paths.hpp"
#include "coring/testing/fault.hpp"
#if CORING_CALLFORMS_HTTP
#include "coring/http/client.hpp"
#endif

namespace coring::callforms {

template <typename T>
inline constexpr bool exempt = false;

// What list_dir() returns.
template <>
inline constexpr bool exempt<fs::DirEntry> = true;
// The argument of FaultInjector's constructor, which is no coroutine.
template <>
inline constexpr bool exempt<testing::FaultPlan> = true;
#if CORING_CALLFORMS_HTTP
// What http::Client's requests return.
template <>
inline constexpr bool exempt<http::ClientResponse> = true;
#endif

}  // namespace coring::callforms
