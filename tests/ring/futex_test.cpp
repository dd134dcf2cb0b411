// Futexes through the ring: prep_futex_wait, prep_futex_wake and prep_futex_waitv
// (IORING_OP_FUTEX_WAIT, FUTEX_WAKE and FUTEX_WAITV, 6.7) on the running kernel. Each test
// probes the opcodes it uses and skips, with the reason, on a kernel without them.
//
// The kernel queues a wait on its futex while io_uring_enter(2) submits it, so a wake
// submitted after that submit() returns finds the waiter. The futex words are declared
// before the ring: a wait still armed when a check fails is cancelled by the ring's
// destruction, before its word goes away.
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <thread>

#include "coring/ring/error.hpp"
#include "support.hpp"

namespace coring::ring::test {
namespace {

using namespace std::chrono_literals;

// A 32-bit futex that only this process uses.
constexpr std::uint32_t kFutex32 = futex2::size_u32 | futex2::private_flag;
// Long enough for a wrongly completed wait to post its CQE.
constexpr auto kStillWaiting = 20ms;

// Submits what is queued, then returns the results of the next `count` CQEs by
// user_data; each request posts exactly one.
std::map<std::uint64_t, std::int32_t> results_of(Ring& ring, std::size_t count) {
  const Result<std::uint32_t> submitted = ring.submit();
  EXPECT_TRUE(submitted.ok()) << submitted.error().message();
  std::map<std::uint64_t, std::int32_t> results;
  for (std::size_t i = 0; i < count; ++i) {
    const Cqe cqe = ring.copy_cqe().value();
    EXPECT_TRUE(results.emplace(cqe.user_data, cqe.res).second)
        << "a second CQE for user_data " << cqe.user_data;
  }
  return results;
}

// Whether no CQE arrives within kStillWaiting: every submitted wait is still waiting.
bool nothing_completes(Ring& ring) {
  const Result<void> waited = ring.wait_cqes(1, kStillWaiting);
  return !waited.ok() && waited.error() == enter_error(ETIME) && ring.cq_ready() == 0;
}

void queue_wait(Ring& ring, const std::uint32_t& futex, std::uint64_t expected, std::uint64_t mask,
                std::uint64_t user_data) {
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_futex_wait(sqe, &futex, expected, mask, kFutex32);
  sqe.user_data = user_data;
}

void queue_wake(Ring& ring, const std::uint32_t& futex, std::uint64_t count, std::uint64_t mask,
                std::uint64_t user_data) {
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_futex_wake(sqe, &futex, count, mask, kFutex32);
  sqe.user_data = user_data;
}

void queue_waitv(Ring& ring, std::span<const FutexWaitv> waiters, std::uint64_t user_data) {
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_futex_waitv(sqe, waiters);
  sqe.user_data = user_data;
}

FutexWaitv waiter_on(const std::uint32_t& futex, std::uint64_t expected) {
  return {.val = expected, .uaddr = reinterpret_cast<std::uint64_t>(&futex), .flags = kFutex32};
}

TEST(RingFutex, WaitIsWokenByAWake) {
  std::uint32_t futex = 0;
  Ring ring(8);
  CORING_REQUIRE_OP(ring, Op::futex_wait);
  CORING_REQUIRE_OP(ring, Op::futex_wake);
  queue_wait(ring, futex, 0, futex_bitset_match_any, 1);
  ASSERT_EQ(ring.submit().value(), 1U);
  ASSERT_TRUE(nothing_completes(ring)) << "the wait completed without a wake";
  queue_wake(ring, futex, 1, futex_bitset_match_any, 2);
  const auto results = results_of(ring, 2);
  EXPECT_EQ(results, (std::map<std::uint64_t, std::int32_t>{{1, 0}, {2, 1}}))
      << "the wait ends with 0, the wake reports one waiter woken";
}

// The main thread blocks in io_uring_enter(2) for the wait's CQE; another thread changes
// the futex and wakes it through a ring of its own.
TEST(RingFutex, WaitIsWokenByAWakeFromAnotherThread) {
  std::uint32_t futex = 0;
  Ring ring(4);
  CORING_REQUIRE_OP(ring, Op::futex_wait);
  CORING_REQUIRE_OP(ring, Op::futex_wake);
  queue_wait(ring, futex, 0, futex_bitset_match_any, 1);
  ASSERT_EQ(ring.submit().value(), 1U);
  std::int32_t woken = -1;
  std::thread waker([&futex, &woken] {
    Ring own(4);
    std::this_thread::sleep_for(kStillWaiting);
    std::atomic_ref<std::uint32_t>(futex).store(1, std::memory_order_release);
    queue_wake(own, futex, 1, futex_bitset_match_any, 2);
    woken = submit_and_get_cqe(own).res;
  });
  const Result<Cqe> cqe = ring.copy_cqe();
  waker.join();
  ASSERT_TRUE(cqe.ok()) << cqe.error().message();
  EXPECT_EQ(cqe->user_data, 1U);
  EXPECT_EQ(cqe->res, 0);
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(std::atomic_ref<std::uint32_t>(futex).load(std::memory_order_acquire), 1U);
}

TEST(RingFutex, WaitOnAFutexThatHoldsAnotherValueFailsWithEagain) {
  std::uint32_t futex = 1;
  Ring ring(4);
  CORING_REQUIRE_OP(ring, Op::futex_wait);
  queue_wait(ring, futex, 0, futex_bitset_match_any, 1);
  const Cqe cqe = submit_and_get_cqe(ring);
  EXPECT_EQ(cqe.user_data, 1U);
  EXPECT_EQ(cqe.res, -EAGAIN);
}

// The wake's count and mask reach the kernel: a wake of one waiter with mask 0b01 wakes
// one of the two waiters with that bit and not the one with mask 0b10.
TEST(RingFutex, WakeWakesAtMostCountWaitersAndOnlyThoseSharingItsMask) {
  std::uint32_t futex = 0;
  Ring ring(8);
  CORING_REQUIRE_OP(ring, Op::futex_wait);
  CORING_REQUIRE_OP(ring, Op::futex_wake);
  queue_wait(ring, futex, 0, 0b01, 1);
  queue_wait(ring, futex, 0, 0b01, 2);
  queue_wait(ring, futex, 0, 0b10, 3);
  ASSERT_EQ(ring.submit().value(), 3U);
  ASSERT_TRUE(nothing_completes(ring));

  queue_wake(ring, futex, 1, 0b01, 11);
  auto results = results_of(ring, 2);
  EXPECT_EQ(results[11], 1);
  const std::uint64_t first = results.contains(1) ? 1 : 2;
  const std::uint64_t second = first == 1 ? 2 : 1;
  EXPECT_EQ(results, (std::map<std::uint64_t, std::int32_t>{{11, 1}, {first, 0}}));
  EXPECT_TRUE(nothing_completes(ring)) << "a wake of one woke more";

  queue_wake(ring, futex, 8, 0b10, 12);
  EXPECT_EQ(results_of(ring, 2), (std::map<std::uint64_t, std::int32_t>{{12, 1}, {3, 0}}));
  EXPECT_TRUE(nothing_completes(ring)) << "a wake with mask 0b10 woke a 0b01 waiter";

  queue_wake(ring, futex, 8, futex_bitset_match_any, 13);
  EXPECT_EQ(results_of(ring, 2), (std::map<std::uint64_t, std::int32_t>{{13, 1}, {second, 0}}));
}

// A waitv on two futexes ends when either is woken, with that one's index, and leaves
// neither queued: a later wake of the other finds nobody.
TEST(RingFutex, WaitvOnTwoFutexesReturnsTheIndexOfTheWokenOne) {
  std::uint32_t first = 0;
  std::uint32_t second = 0;
  const std::array<FutexWaitv, 2> waiters = {waiter_on(first, 0), waiter_on(second, 0)};
  Ring ring(8);
  CORING_REQUIRE_OP(ring, Op::futex_waitv);
  CORING_REQUIRE_OP(ring, Op::futex_wake);
  queue_waitv(ring, waiters, 1);
  ASSERT_EQ(ring.submit().value(), 1U);
  ASSERT_TRUE(nothing_completes(ring)) << "the waitv completed without a wake";

  queue_wake(ring, second, 1, futex_bitset_match_any, 2);
  EXPECT_EQ(results_of(ring, 2), (std::map<std::uint64_t, std::int32_t>{{1, 1}, {2, 1}}))
      << "the waitv names waiters[1]; the wake woke one";
  queue_wake(ring, first, 1, futex_bitset_match_any, 3);
  EXPECT_EQ(submit_and_get_cqe(ring).res, 0) << "the ended waitv still waited on waiters[0]";
}

TEST(RingFutex, WaitvWithAFutexThatHoldsAnotherValueFailsWithEagain) {
  std::uint32_t first = 0;
  std::uint32_t second = 7;
  const std::array<FutexWaitv, 2> waiters = {waiter_on(first, 0), waiter_on(second, 0)};
  Ring ring(4);
  CORING_REQUIRE_OP(ring, Op::futex_waitv);
  queue_waitv(ring, waiters, 1);
  const Cqe cqe = submit_and_get_cqe(ring);
  EXPECT_EQ(cqe.user_data, 1U);
  EXPECT_EQ(cqe.res, -EAGAIN);
}

}  // namespace
}  // namespace coring::ring::test
