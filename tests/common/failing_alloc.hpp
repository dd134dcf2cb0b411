// A replacement global operator new that fails allocations on demand, for the test
// binaries that check what the code does when memory runs out.
//
// How a test binary uses it: it writes a policy, a function `bool f() noexcept` called
// once per allocation that says whether this one fails (and records what the test
// wants to know, such as how many failed), and expands
// `CORING_TEST_FAILING_OPERATOR_NEW(f);` once, at namespace scope, in exactly one of its
// translation units. A failed allocation throws std::bad_alloc, as operator new does
// when malloc fails; the nothrow forms return nullptr. Every other allocation is malloc.
//
// Why a macro and not definitions in this header or in coring_test_common: a
// replacement allocation function ([replacement.functions]) must not be inline and must
// be defined once in the program, so a header that defined it would break the one
// definition rule when two files of a binary include it, and a library shared by every
// test binary would replace operator new in all of them. Such a binary is therefore an
// executable of its own (see tests/runtime/CMakeLists.txt and tests/net/http.cmake).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace coring::test {

// The policy most of these binaries use: while fail_allocations is set, every
// allocation fails, and refused counts them. Expand
// CORING_TEST_FAILING_OPERATOR_NEW(::coring::test::fail_while_armed).
inline std::atomic<bool> fail_allocations{false};
inline std::atomic<int> refused{0};
inline bool fail_while_armed() noexcept {
  if (!fail_allocations.load(std::memory_order_relaxed)) return false;
  refused.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// operator new's contract (throws instead of returning nullptr; a size of 0 still
// gets a distinct pointer), failing when `fail` says so.
inline void* failing_allocate(std::size_t size, bool fail) {
  if (fail) throw std::bad_alloc();
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

// The nothrow forms' contract: nullptr instead of an exception.
inline void* failing_allocate_nothrow(std::size_t size, bool fail) noexcept {
  if (fail) return nullptr;
  return std::malloc(size == 0 ? 1 : size);
}

// operator delete's. Out of line: GCC, where it inlines the replacement operator delete
// into a caller but not the operator new that allocated, sees std::free take a pointer
// from operator new and warns (-Wmismatched-new-delete), though the two are a pair.
[[gnu::noinline]] inline void failing_release(void* p) noexcept { std::free(p); }

}  // namespace coring::test

// The replaceable global allocation functions ([new.delete]), all but the over-aligned
// forms (which none of these tests uses): plain, array and nothrow, each asking
// `fail_this_allocation()` first. The static_assert closes the expansion, so that the
// use ends with a semicolon like a declaration, and holds the policy to noexcept: the
// nothrow forms call it.
#define CORING_TEST_FAILING_OPERATOR_NEW(fail_this_allocation)                                  \
  void* operator new(std::size_t size) {                                                        \
    return ::coring::test::failing_allocate(size, fail_this_allocation());                      \
  }                                                                                             \
  void* operator new[](std::size_t size) {                                                      \
    return ::coring::test::failing_allocate(size, fail_this_allocation());                      \
  }                                                                                             \
  void* operator new(std::size_t size, const std::nothrow_t&) noexcept {                        \
    return ::coring::test::failing_allocate_nothrow(size, fail_this_allocation());              \
  }                                                                                             \
  void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {                      \
    return ::coring::test::failing_allocate_nothrow(size, fail_this_allocation());              \
  }                                                                                             \
  void operator delete(void* p) noexcept { ::coring::test::failing_release(p); }                \
  void operator delete[](void* p) noexcept { ::coring::test::failing_release(p); }              \
  void operator delete(void* p, std::size_t) noexcept { ::coring::test::failing_release(p); }   \
  void operator delete[](void* p, std::size_t) noexcept { ::coring::test::failing_release(p); } \
  void operator delete(void* p, const std::nothrow_t&) noexcept {                               \
    ::coring::test::failing_release(p);                                                         \
  }                                                                                             \
  void operator delete[](void* p, const std::nothrow_t&) noexcept {                             \
    ::coring::test::failing_release(p);                                                         \
  }                                                                                             \
  static_assert(noexcept(fail_this_allocation()), "the policy must be noexcept")
