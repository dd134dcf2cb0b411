// Edge cases of the ring layer: full and wrapping queues, CQ overflow, bad arguments
// and the exact errors they produce, every registration call, restrictions, waiting
// with a timeout, MSG_RING, the setup variants, provided-buffer rings, and what the
// kernel charges to RLIMIT_MEMLOCK.
//
// Each test names the result the kernel (6.18 here) defines for what it does, not only
// that a call "worked". The helpers below reap with a bounded wait, so a completion
// that never arrives fails its test instead of hanging the suite. Kernel state that
// outlives a ring (io-wq limits belong to the thread, not the ring) is put back.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "coring/ring/buffer_ring.hpp"
#include "coring/ring/error.hpp"
#include "support.hpp"

namespace coring::ring::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// How long a test waits for a completion that must come before calling it lost.
constexpr auto kPatience = 5s;

template <typename T>
testing::AssertionResult succeeded(const Result<T>& result) {
  if (result.ok()) return testing::AssertionSuccess();
  return testing::AssertionFailure() << result.error().message();
}

struct Pipe {
  Fd read_end;
  Fd write_end;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw std::system_error(errno, std::generic_category(), "pipe2");
  return Pipe{Fd(fds[0]), Fd(fds[1])};
}

Fd make_eventfd() {
  Fd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (fd.get() < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  return fd;
}

// The eventfd's counter, which reading resets; 0 if it has not been signalled.
std::uint64_t take_eventfd_count(int fd) {
  std::uint64_t count = 0;
  if (::read(fd, &count, sizeof(count)) != static_cast<ssize_t>(sizeof(count))) return 0;
  return count;
}

bool wait_readable(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  const auto timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(kPatience);
  return ::poll(&pfd, 1, static_cast<int>(timeout_ms.count())) == 1;
}

void write_text(int fd, std::string_view text) {
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
}

// Whatever is in the pipe or socket now, up to 64 bytes (blocks if there is nothing).
std::string read_text(int fd) {
  std::array<char, 64> buffer{};
  const ssize_t n = ::read(fd, buffer.data(), buffer.size());
  return n > 0 ? std::string(buffer.data(), static_cast<std::size_t>(n)) : std::string();
}

std::string text_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Queues `count` NOPs whose user_data count up from `first`.
void queue_nops(Ring& ring, std::uint32_t count, std::uint64_t first) {
  for (std::uint32_t i = 0; i < count; ++i) {
    Sqe& sqe = CORING_GET_SQE(ring);
    prep_nop(sqe);
    sqe.user_data = first + i;
  }
}

// Reaps exactly `count` CQEs; fewer (and a test failure) if they stop arriving.
std::vector<Cqe> reap(Ring& ring, std::size_t count) {
  std::vector<Cqe> cqes(count);
  std::size_t got = 0;
  while (got < count) {
    auto copied = ring.copy_cqes(std::span<Cqe>(cqes).subspan(got), 0);
    if (!copied) {
      ADD_FAILURE() << "copy_cqes: " << copied.error().message();
      break;
    }
    if (*copied == 0) {
      if (auto waited = ring.wait_cqes(1, kPatience); !waited) {
        ADD_FAILURE() << "CQE " << got + 1 << " of " << count
                      << " never came: " << waited.error().message();
        break;
      }
    }
    got += *copied;
  }
  cqes.resize(got);
  return cqes;
}

// Runs `rounds` rounds of `per_round` NOPs through the ring: every CQE must come back,
// in order, with its user_data and res 0.
void expect_nop_rounds(Ring& ring, std::uint32_t rounds, std::uint32_t per_round) {
  std::uint64_t next = 0;
  for (std::uint32_t round = 0; round < rounds; ++round) {
    queue_nops(ring, per_round, next);
    auto submitted = ring.submit();
    ASSERT_TRUE(succeeded(submitted));
    // With SQPOLL the count is the kernel thread's progress, not ours to predict.
    if ((ring.flags() & setup::sqpoll) == 0) {
      EXPECT_EQ(*submitted, per_round);
    }
    const std::vector<Cqe> cqes = reap(ring, per_round);
    ASSERT_EQ(cqes.size(), per_round);
    for (const Cqe& cqe : cqes) {
      EXPECT_EQ(cqe.user_data, next++);
      EXPECT_EQ(cqe.res, 0);
    }
  }
}

// Submits one NOP with SQE `flags` (sqe_flags::*) and reaps its CQE.
Cqe nop_round_trip(Ring& ring, std::uint64_t user_data, std::uint8_t flags = 0) {
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_nop(sqe);
  sqe.flags |= flags;
  sqe.user_data = user_data;
  return submit_and_get_cqe(ring);
}

// Queues a read of up to `buffer.size()` bytes from a pipe.
void queue_pipe_read(Ring& ring, const Pipe& pipe, std::span<std::byte> buffer,
                     std::uint64_t user_data) {
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_read(sqe, pipe.read_end.get(), buffer, current_position);
  sqe.user_data = user_data;
}

// --- RingQueue: the SQ and CQ themselves ---------------------------------------------------

// get_sqe() hands out exactly `entries` slots, then nullptr until the kernel has
// consumed them; three rounds show the slots come back.
void expect_sq_full_after(std::uint32_t entries) {
  Ring ring(entries);
  ASSERT_EQ(ring.sq_entries(), entries);
  for (std::uint64_t round = 0; round < 3; ++round) {
    for (std::uint32_t i = 0; i < entries; ++i) {
      Sqe* sqe = ring.get_sqe();
      ASSERT_NE(sqe, nullptr) << "round " << round << ", SQE " << i << " of " << entries;
      prep_nop(*sqe);
      sqe->user_data = round * 1000 + i;
    }
    EXPECT_EQ(ring.get_sqe(), nullptr) << "round " << round;
    EXPECT_EQ(ring.get_sqe(), nullptr) << "a refused get_sqe() must not advance the tail";
    EXPECT_EQ(ring.sq_space_left(), 0U);
    auto submitted = ring.submit();
    ASSERT_TRUE(succeeded(submitted));
    EXPECT_EQ(*submitted, entries);
    EXPECT_EQ(ring.sq_space_left(), entries);
    const std::vector<Cqe> cqes = reap(ring, entries);
    ASSERT_EQ(cqes.size(), entries);
    for (std::uint32_t i = 0; i < entries; ++i) {
      EXPECT_EQ(cqes[i].user_data, round * 1000 + i);
      EXPECT_EQ(cqes[i].res, 0);
    }
  }
}

TEST(RingQueue, GetSqeReturnsNullAfterOneEntry) { expect_sq_full_after(1); }
TEST(RingQueue, GetSqeReturnsNullAfterTwoEntries) { expect_sq_full_after(2); }
TEST(RingQueue, GetSqeReturnsNullAfterEightEntries) { expect_sq_full_after(8); }

// Head and tail are free-running u32 counters: only `& mask` makes them slots. Over
// 100,003 NOPs on a 4-entry SQ and an 8-entry CQ they pass tens of thousands of
// multiples of the ring sizes; the batch sizes divide neither ring, so SQEs land on
// every slot and copy_cqes() splits its copy across the end of the CQ array in every
// way. Every CQE must arrive once, in order.
TEST(RingQueue, CountersWrapManyTimesWithoutLoss) {
  Ring ring(4);
  ASSERT_EQ(ring.cq_entries(), 8U);
  const std::uint64_t cq_entries = ring.cq_entries();
  constexpr std::uint64_t total = 100'003;
  constexpr std::array<std::uint64_t, 4> submit_sizes{3, 1, 4, 2};
  constexpr std::array<std::uint32_t, 5> reap_sizes{5, 3, 7, 1, 6};
  std::array<Cqe, 7> batch{};
  std::uint64_t queued = 0;
  std::uint64_t reaped = 0;
  std::uint64_t split_copies = 0;  // batches that wrapped past the end of the CQ array
  for (std::size_t round = 0; reaped < total; ++round) {
    // Never more in flight than the CQ holds: this test is about wrapping, not overflow.
    const std::uint64_t count = std::min({submit_sizes[round % submit_sizes.size()],
                                          cq_entries - (queued - reaped), total - queued});
    if (count > 0) {
      queue_nops(ring, static_cast<std::uint32_t>(count), queued);
      queued += count;
      auto submitted = ring.submit();
      ASSERT_TRUE(succeeded(submitted));
      ASSERT_EQ(*submitted, count);
    }
    if (ring.cq_ready() == 0) {
      ASSERT_TRUE(succeeded(ring.wait_cqes(1, kPatience)));
    }
    auto copied =
        ring.copy_cqes(std::span<Cqe>(batch.data(), reap_sizes[round % reap_sizes.size()]), 0);
    ASSERT_TRUE(succeeded(copied));
    ASSERT_GT(*copied, 0U);
    if (reaped % cq_entries + *copied > cq_entries) ++split_copies;
    for (std::uint32_t i = 0; i < *copied; ++i) {
      ASSERT_EQ(batch[i].user_data, reaped) << "round " << round;
      ASSERT_EQ(batch[i].res, 0);
      ++reaped;
    }
  }
  EXPECT_EQ(queued, total);
  EXPECT_EQ(reaped, total);
  EXPECT_GT(split_copies, 1000U);
  EXPECT_EQ(ring.cq_ready(), 0U);
  EXPECT_EQ(ring.sq_space_left(), ring.sq_entries());
  EXPECT_EQ(ring.sq_dropped(), 0U);
  EXPECT_EQ(ring.cq_overflow(), 0U);
}

// 20 NOPs into an 8-entry CQ, in five submissions, without reaping: 12 wait in the
// kernel's overflow list (feat::nodrop) and the SQ ring says so. copy_cqes() must
// flush them (enter with getevents) and deliver all 20, once each and in order.
TEST(RingQueue, CqOverflowIsFlushedWithoutLoss) {
  Ring ring(4);
  ASSERT_EQ(ring.cq_entries(), 8U);
  ASSERT_TRUE(ring.has_feature(feat::nodrop));
  constexpr std::uint32_t rounds = 5;
  const std::uint32_t total = rounds * ring.sq_entries();
  for (std::uint32_t round = 0; round < rounds; ++round) {
    queue_nops(ring, ring.sq_entries(), std::uint64_t{round} * ring.sq_entries());
    auto submitted = ring.submit();
    ASSERT_TRUE(succeeded(submitted)) << "round " << round;
    EXPECT_EQ(*submitted, ring.sq_entries());
  }
  EXPECT_EQ(ring.cq_ready(), ring.cq_entries());
  EXPECT_NE(ring.sq_ring_flags() & sq_flags::cq_overflow, 0U);
  EXPECT_TRUE(ring.cq_ring_needs_flush());

  std::vector<std::uint64_t> seen;
  std::array<Cqe, 3> batch{};
  while (seen.size() < total) {
    auto copied = ring.copy_cqes(batch, 0);
    ASSERT_TRUE(succeeded(copied));
    ASSERT_GT(*copied, 0U) << "lost completions: " << seen.size() << " of " << total << " reaped";
    for (std::uint32_t i = 0; i < *copied; ++i) {
      EXPECT_EQ(batch[i].res, 0);
      seen.push_back(batch[i].user_data);
    }
  }
  std::vector<std::uint64_t> expected(total);
  for (std::uint32_t i = 0; i < total; ++i) expected[i] = i;
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(ring.cq_overflow(), 0U) << "the kernel dropped CQEs";
  EXPECT_EQ(ring.sq_ring_flags() & sq_flags::cq_overflow, 0U);
  EXPECT_FALSE(ring.cq_ring_needs_flush());
  EXPECT_EQ(ring.cq_ready(), 0U);
}

TEST(RingQueue, SubmitAndWaitTimeoutWithNothingInFlightReturnsEtime) {
  Ring ring(4);
  const auto start = Clock::now();
  auto result = ring.submit_and_wait_timeout(1, 10ms);
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().category(), enter_category());
  EXPECT_EQ(result.error().value(), ETIME);
  EXPECT_GE(elapsed, 10ms);
}

TEST(RingQueue, SubmitAndWaitTimeoutReturnsOnceNopCompletes) {
  Ring ring(4);
  queue_nops(ring, 1, 0x77);
  auto result = ring.submit_and_wait_timeout(1, kPatience);
  ASSERT_TRUE(succeeded(result));
  EXPECT_EQ(*result, 1U);
  EXPECT_EQ(ring.cq_ready(), 1U);
  const std::vector<Cqe> cqes = reap(ring, 1);
  ASSERT_EQ(cqes.size(), 1U);
  EXPECT_EQ(cqes[0].user_data, 0x77U);
}

TEST(RingQueue, WaitCqesWithNothingInFlightReturnsEtime) {
  Ring ring(4);
  const auto start = Clock::now();
  auto result = ring.wait_cqes(1, 10ms);
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error(), enter_error(ETIME));
  EXPECT_GE(elapsed, 10ms);
}

// An async NOP completes on an io-wq thread, after submit() returns: wait_cqes() must
// sleep until it is posted and return well before its timeout.
TEST(RingQueue, WaitCqesReturnsOnceAsyncNopCompletes) {
  Ring ring(4);
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_nop(sqe);
  force_async(sqe);
  sqe.user_data = 0xA5;
  ASSERT_TRUE(succeeded(ring.submit()));
  const auto start = Clock::now();
  auto result = ring.wait_cqes(1, kPatience);
  const auto elapsed = Clock::now() - start;
  ASSERT_TRUE(succeeded(result));
  EXPECT_LT(elapsed, kPatience);
  EXPECT_EQ(ring.cq_ready(), 1U);
  const std::vector<Cqe> cqes = reap(ring, 1);
  ASSERT_EQ(cqes.size(), 1U);
  EXPECT_EQ(cqes[0].user_data, 0xA5U);
  EXPECT_EQ(cqes[0].res, 0);
}

// --- RingSetup: arguments, flags and ownership ----------------------------------------------

TEST(RingSetup, EntriesZeroIsRejected) {
  EXPECT_EQ(Ring::create(0).error(), make_error_code(Errc::entries_zero));
}

TEST(RingSetup, EntriesNotPowerOfTwoAreRejected) {
  EXPECT_EQ(Ring::create(3).error(), make_error_code(Errc::entries_not_power_of_two));
}

TEST(RingSetup, EntriesAboveMaximumAreRejected) {
  EXPECT_EQ(Ring::create(65536).error(), make_error_code(Errc::entries_too_large));
}

TEST(RingSetup, ThrowingConstructorCarriesTheErrorCode) {
  try {
    Ring ring(3);
    FAIL() << "Ring(3) constructed a ring";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), make_error_code(Errc::entries_not_power_of_two));
  }
}

TEST(RingSetup, CqsizeWithZeroCqEntriesIsRejected) {
  Params params;
  params.flags = setup::cqsize;
  params.cq_entries = 0;
  EXPECT_EQ(Ring::create(4, params).error(), make_error_code(Errc::cq_entries_invalid));
}

TEST(RingSetup, CqEntriesWithoutCqsizeAreRejected) {
  Params params;
  params.cq_entries = 16;
  EXPECT_EQ(Ring::create(4, params).error(), make_error_code(Errc::cq_entries_invalid));
}

TEST(RingSetup, NonZeroReservedParamsAreRejected) {
  Params params;
  params.resv[1] = 1;
  auto ring = Ring::create(4, params);
  EXPECT_EQ(ring.error(), setup_error(EINVAL));
  EXPECT_EQ(ring.error(), std::errc::invalid_argument);
}

TEST(RingSetup, SqAffWithoutSqpollIsEinvalFromKernel) {
  Params params;
  params.flags = setup::sq_aff;
  auto ring = Ring::create(4, params);
  ASSERT_FALSE(ring.ok());
  EXPECT_EQ(ring.error().category(), setup_category());
  EXPECT_EQ(ring.error().value(), EINVAL);
}

TEST(RingSetup, DeferTaskrunWithoutSingleIssuerIsEinvalFromKernel) {
  auto ring = Ring::create(4, setup::defer_taskrun);
  ASSERT_FALSE(ring.ok());
  EXPECT_EQ(ring.error().category(), setup_category());
  EXPECT_EQ(ring.error().value(), EINVAL);
}

TEST(RingSetup, EpermMessageNamesSysctlAndSeccomp) {
  const std::string message = setup_error(EPERM).message();
  EXPECT_NE(message.find("kernel.io_uring_disabled"), std::string::npos) << message;
  EXPECT_NE(message.find("seccomp"), std::string::npos) << message;
  EXPECT_EQ(setup_error(EPERM), std::errc::operation_not_permitted);
}

// The kernel writes the final sizes and its features back into Params.
TEST(RingSetup, ParamsReceiveSizesAndFeatures) {
  Params params;
  auto ring = Ring::create(4, params);
  ASSERT_TRUE(succeeded(ring));
  EXPECT_EQ(params.sq_entries, 4U);
  EXPECT_EQ(params.cq_entries, 8U);
  EXPECT_EQ(params.features, ring->features());
  EXPECT_EQ(ring->sq_entries(), 4U);
  EXPECT_EQ(ring->cq_entries(), 8U);
}

// An SQPOLL ring: the kernel thread consumes SQEs without enter; once idle for
// sq_thread_idle it sleeps and sets need_wakeup, and submit() must wake it.
TEST(RingSetup, SqpollRingRoundTripsAndWakesIdleThread) {
  Params params;
  params.flags = setup::sqpoll;
  params.sq_thread_idle = 10;  // ms
  auto ring = Ring::create(8, params);
  ASSERT_TRUE(succeeded(ring));
  EXPECT_NE(ring->flags() & setup::sqpoll, 0U);
  EXPECT_TRUE(ring->has_feature(feat::sqpoll_nonfixed));
  expect_nop_rounds(*ring, 3, 4);

  const auto deadline = Clock::now() + kPatience;
  while ((ring->sq_ring_flags() & sq_flags::need_wakeup) == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_NE(ring->sq_ring_flags() & sq_flags::need_wakeup, 0U)
      << "the SQPOLL thread never went idle";
  expect_nop_rounds(*ring, 2, 8);
}

// CQSIZE rounds cq_entries up to a power of two, and the CQ then holds that many
// completions with no overflow.
TEST(RingSetup, CqsizeRoundsUpAndHoldsEveryCompletion) {
  Params params;
  params.flags = setup::cqsize;
  params.cq_entries = 100;
  auto ring = Ring::create(4, params);
  ASSERT_TRUE(succeeded(ring));
  EXPECT_EQ(params.cq_entries, 128U);
  EXPECT_EQ(ring->cq_entries(), 128U);
  EXPECT_EQ(ring->sq_entries(), 4U);
  for (std::uint32_t round = 0; round < 32; ++round) {
    queue_nops(*ring, 4, std::uint64_t{round} * 4);
    ASSERT_TRUE(succeeded(ring->submit()));
  }
  EXPECT_EQ(ring->cq_ready(), 128U);
  EXPECT_EQ(ring->sq_ring_flags() & sq_flags::cq_overflow, 0U);
  const std::vector<Cqe> cqes = reap(*ring, 128);
  ASSERT_EQ(cqes.size(), 128U);
  for (std::uint64_t i = 0; i < cqes.size(); ++i) EXPECT_EQ(cqes[i].user_data, i);
}

// Under DEFER_TASKRUN, completions that do not happen inline (io-wq, poll wakeups)
// are posted only when the submitter enters with getevents, which copy_cqe() does.
TEST(RingSetup, SingleIssuerDeferTaskrunRoundTrips) {
  Ring ring(4, setup::single_issuer | setup::defer_taskrun);
  expect_nop_rounds(ring, 3, 4);
  const Cqe async_nop = nop_round_trip(ring, 0xA, sqe_flags::async);
  EXPECT_EQ(async_nop.user_data, 0xAU);
  EXPECT_EQ(async_nop.res, 0);

  Pipe pipe = make_pipe();
  std::array<std::byte, 16> buffer{};
  queue_pipe_read(ring, pipe, buffer, 0xB);
  ASSERT_TRUE(succeeded(ring.submit()));
  write_text(pipe.write_end.get(), "deferred");
  const std::vector<Cqe> cqes = reap(ring, 1);
  ASSERT_EQ(cqes.size(), 1U);
  EXPECT_EQ(cqes[0].user_data, 0xBU);
  EXPECT_EQ(cqes[0].res, 8);
  EXPECT_EQ(text_of(std::span(buffer).first(8)), "deferred");
}

TEST(RingSetup, CoopTaskrunRoundTrips) {
  Ring ring(4, setup::coop_taskrun | setup::taskrun_flag);
  expect_nop_rounds(ring, 3, 4);
  Pipe pipe = make_pipe();
  std::array<std::byte, 16> buffer{};
  queue_pipe_read(ring, pipe, buffer, 0xC);
  ASSERT_TRUE(succeeded(ring.submit()));
  write_text(pipe.write_end.get(), "coop");
  const std::vector<Cqe> cqes = reap(ring, 1);
  ASSERT_EQ(cqes.size(), 1U);
  EXPECT_EQ(cqes[0].user_data, 0xCU);
  EXPECT_EQ(cqes[0].res, 4);
  EXPECT_EQ(text_of(std::span(buffer).first(4)), "coop");
}

// Queues NOP, an SQE with an opcode no kernel has, NOP.
void queue_nop_bad_nop(Ring& ring) {
  queue_nops(ring, 1, 1);
  Sqe& bad = CORING_GET_SQE(ring);
  prep_nop(bad);
  bad.opcode = 0xFF;
  bad.user_data = 2;
  queue_nops(ring, 1, 3);
}

// Without SUBMIT_ALL the kernel stops at the SQE it cannot initialise (and posts its
// error); the rest stays queued for the next submit.
TEST(RingSetup, SubmitStopsAtFailedSqeWithoutSubmitAll) {
  Ring ring(4);
  queue_nop_bad_nop(ring);
  auto first = ring.submit();
  ASSERT_TRUE(succeeded(first));
  EXPECT_EQ(*first, 2U);
  EXPECT_EQ(ring.sq_ready(), 1U);
  auto second = ring.submit();
  ASSERT_TRUE(succeeded(second));
  EXPECT_EQ(*second, 1U);
  const std::vector<Cqe> cqes = reap(ring, 3);
  ASSERT_EQ(cqes.size(), 3U);
  EXPECT_EQ(cqes[0].user_data, 1U);
  EXPECT_EQ(cqes[0].res, 0);
  EXPECT_EQ(cqes[1].user_data, 2U);
  EXPECT_EQ(cqes[1].res, -EINVAL);
  EXPECT_EQ(cqes[2].user_data, 3U);
  EXPECT_EQ(cqes[2].res, 0);
}

TEST(RingSetup, SubmitAllContinuesPastFailedSqe) {
  Ring ring(4, setup::submit_all);
  queue_nop_bad_nop(ring);
  auto submitted = ring.submit();
  ASSERT_TRUE(succeeded(submitted));
  EXPECT_EQ(*submitted, 3U);
  EXPECT_EQ(ring.sq_ready(), 0U);
  const std::vector<Cqe> cqes = reap(ring, 3);
  ASSERT_EQ(cqes.size(), 3U);
  EXPECT_EQ(cqes[0].user_data, 1U);
  EXPECT_EQ(cqes[0].res, 0);
  EXPECT_EQ(cqes[1].user_data, 2U);
  EXPECT_EQ(cqes[1].res, -EINVAL);
  EXPECT_EQ(cqes[2].user_data, 3U);
  EXPECT_EQ(cqes[2].res, 0);
}

// With SQE128 every SQE takes two 64-byte slots of the SQE array.
TEST(RingSetup, Sqe128SlotsAreTwoSqesApart) {
  Ring ring(4, setup::sqe128);
  Sqe* first = ring.get_sqe();
  Sqe* second = ring.get_sqe();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second - first, 2);
  prep_nop(*first);
  first->user_data = 0;
  prep_nop(*second);
  second->user_data = 1;
  auto submitted = ring.submit();
  ASSERT_TRUE(succeeded(submitted));
  EXPECT_EQ(*submitted, 2U);
  const std::vector<Cqe> cqes = reap(ring, 2);
  ASSERT_EQ(cqes.size(), 2U);
  EXPECT_EQ(cqes[0].user_data, 0U);
  EXPECT_EQ(cqes[1].user_data, 1U);
  expect_nop_rounds(ring, 5, 3);
}

// With CQE32 every CQE takes two 16-byte slots. 12 NOPs on an 8-entry CQ make both
// peek_cqe()/cqe_seen() and copy_cqes() walk across the end of the array.
TEST(RingSetup, Cqe32CompletionsArePeekedAndCopied) {
  Ring ring(4, setup::cqe32);
  ASSERT_EQ(ring.cq_entries(), 8U);
  std::uint64_t next = 0;
  for (int round = 0; round < 4; ++round) {
    queue_nops(ring, 3, next);
    auto submitted = ring.submit();
    ASSERT_TRUE(succeeded(submitted));
    ASSERT_EQ(*submitted, 3U);
    for (int i = 0; i < 3; ++i) {
      const Cqe* cqe = ring.peek_cqe();
      ASSERT_NE(cqe, nullptr) << "round " << round << ", CQE " << i;
      EXPECT_EQ(cqe->user_data, next++);
      EXPECT_EQ(cqe->res, 0);
      ring.cqe_seen(cqe);
    }
    EXPECT_EQ(ring.peek_cqe(), nullptr);
  }
  expect_nop_rounds(ring, 4, 3);
}

TEST(RingSetup, NoSqarrayRoundTrips) {
  Ring ring(4, setup::no_sqarray);
  EXPECT_NE(ring.flags() & setup::no_sqarray, 0U);
  expect_nop_rounds(ring, 6, 3);
}

TEST(RingSetup, MovedFromRingHasNoFd) {
  Ring source(4);
  const int fd = source.fd();
  Ring target(std::move(source));
  EXPECT_EQ(source.fd(), -1);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  EXPECT_EQ(target.fd(), fd);
  expect_nop_rounds(target, 3, 4);
}

TEST(RingSetup, MoveAssignmentReleasesTheOldRing) {
  Ring source(4);
  Ring target(2);
  const int fds_before = count_open_fds();
  target = std::move(source);
  EXPECT_EQ(count_open_fds(), fds_before - 1) << "the 2-entry ring's fd must be closed";
  EXPECT_EQ(source.fd(), -1);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(target.sq_entries(), 4U);
  expect_nop_rounds(target, 3, 4);
}

TEST(RingSetup, MovedRingKeepsItsRegisteredRingFd) {
  Ring source(4);
  ASSERT_TRUE(succeeded(source.register_ring_fd()));
  Ring target(std::move(source));
  EXPECT_FALSE(source.ring_fd_registered());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(target.ring_fd_registered());
  expect_nop_rounds(target, 2, 4);
}

// --- RingRegister: io_uring_register(2) -------------------------------------------------------

TEST(RingRegister, DisabledRingRejectsEnterWithEbadfd) {
  Ring ring(4, setup::r_disabled);
  queue_nops(ring, 1, 0xD);
  EXPECT_EQ(ring.submit().error(), enter_error(EBADFD));
  ASSERT_TRUE(succeeded(ring.enable_rings()));
  auto submitted = ring.submit();  // the NOP is still queued
  ASSERT_TRUE(succeeded(submitted));
  EXPECT_EQ(*submitted, 1U);
  const std::vector<Cqe> cqes = reap(ring, 1);
  ASSERT_EQ(cqes.size(), 1U);
  EXPECT_EQ(cqes[0].user_data, 0xDU);
}

// Only Op::nop is allowed: a read fails with -EACCES, and so does every registration
// opcode not listed.
TEST(RingRegister, RestrictedRingRunsOnlyAllowedOpcodes) {
  Ring ring(4, setup::r_disabled);
  std::array<Restriction, 1> allowed{};
  allowed[0].opcode = static_cast<std::uint16_t>(RestrictionOp::sqe_op);
  allowed[0].arg = static_cast<std::uint8_t>(Op::nop);
  ASSERT_TRUE(succeeded(ring.register_restrictions(allowed)));
  ASSERT_TRUE(succeeded(ring.enable_rings()));

  Pipe pipe = make_pipe();
  write_text(pipe.write_end.get(), "x");
  std::array<std::byte, 8> buffer{};
  queue_nops(ring, 1, 1);
  queue_pipe_read(ring, pipe, buffer, 2);
  ASSERT_TRUE(succeeded(ring.submit()));
  const std::vector<Cqe> cqes = reap(ring, 2);
  ASSERT_EQ(cqes.size(), 2U);
  for (const Cqe& cqe : cqes) {
    if (cqe.user_data == 1) {
      EXPECT_EQ(cqe.res, 0) << "the NOP is allowed";
    } else {
      EXPECT_EQ(cqe.user_data, 2U);
      EXPECT_EQ(cqe.res, -EACCES) << "the read is not";
    }
  }
  EXPECT_NE(cqes[0].user_data, cqes[1].user_data);
  EXPECT_EQ(ring.get_probe().error(), register_error(EACCES));
}

TEST(RingRegister, EventfdIsSignalledByCompletions) {
  Ring ring(4);
  Fd event = make_eventfd();
  ASSERT_TRUE(succeeded(ring.register_eventfd(event.get())));
  EXPECT_EQ(nop_round_trip(ring, 1).res, 0);
  ASSERT_TRUE(wait_readable(event.get()));
  EXPECT_GE(take_eventfd_count(event.get()), 1U);

  ASSERT_TRUE(succeeded(ring.unregister_eventfd()));
  EXPECT_EQ(nop_round_trip(ring, 2).res, 0);
  EXPECT_EQ(take_eventfd_count(event.get()), 0U) << "signalled after unregister_eventfd()";
  EXPECT_EQ(ring.unregister_eventfd().error(), register_error(ENXIO));
}

// An async eventfd is signalled only for completions posted from io-wq, not for the
// inline ones posted while submitting.
TEST(RingRegister, AsyncEventfdIsSignalledOnlyByAsyncCompletions) {
  Ring ring(4);
  Fd event = make_eventfd();
  ASSERT_TRUE(succeeded(ring.register_eventfd_async(event.get())));
  EXPECT_EQ(nop_round_trip(ring, 1).res, 0);
  EXPECT_EQ(take_eventfd_count(event.get()), 0U) << "signalled for an inline completion";

  EXPECT_EQ(nop_round_trip(ring, 2, sqe_flags::async).res, 0);
  ASSERT_TRUE(wait_readable(event.get()));
  EXPECT_GE(take_eventfd_count(event.get()), 1U);
  ASSERT_TRUE(succeeded(ring.unregister_eventfd()));
}

// Registering NAPI settings hands back the previous ones; unregistering hands back
// the current ones.
TEST(RingRegister, NapiRegistrationExchangesSettings) {
  Ring ring(4);
  Napi napi;
  napi.busy_poll_to = 50;
  napi.prefer_busy_poll = 1;
  napi.opcode = napi_op::register_op;
  napi.op_param = napi_strategy::dynamic;
  ASSERT_TRUE(succeeded(ring.register_napi(napi)));
  EXPECT_EQ(napi.busy_poll_to, 0U);
  EXPECT_EQ(napi.prefer_busy_poll, std::uint8_t{0});

  Napi current;
  ASSERT_TRUE(succeeded(ring.unregister_napi(current)));
  EXPECT_EQ(current.busy_poll_to, 50U);
  EXPECT_EQ(current.prefer_busy_poll, std::uint8_t{1});
}

TEST(RingRegister, SyncCancelCancelsPendingRead) {
  Ring ring(4);
  Pipe pipe = make_pipe();
  std::array<std::byte, 8> buffer{};
  queue_pipe_read(ring, pipe, buffer, 0x5C);
  ASSERT_TRUE(succeeded(ring.submit()));
  EXPECT_EQ(ring.cq_ready(), 0U) << "the read has nothing to read yet";

  SyncCancelReg cancel;
  cancel.addr = 0x5C;
  ASSERT_TRUE(succeeded(ring.register_sync_cancel(cancel)));
  const std::vector<Cqe> cqes = reap(ring, 1);
  ASSERT_EQ(cqes.size(), 1U);
  EXPECT_EQ(cqes[0].user_data, 0x5CU);
  EXPECT_EQ(cqes[0].res, -ECANCELED);
}

TEST(RingRegister, SyncCancelWithNoMatchIsEnoent) {
  Ring ring(4);
  SyncCancelReg cancel;
  cancel.addr = 0xDEAD;
  EXPECT_EQ(ring.register_sync_cancel(cancel).error(), register_error(ENOENT));
}

// {0, 0} reads the limits without changing them; setting new ones hands back the old.
// The limits belong to this thread's io-wq, shared by all its rings, so they are put
// back (INT_MAX standing in for "unlimited", which the kernel reports as -1 but will
// not accept).
TEST(RingRegister, IowqMaxWorkersHandsBackPreviousLimits) {
  Ring ring(4);
  std::array<std::uint32_t, 2> original{0, 0};
  ASSERT_TRUE(succeeded(ring.register_iowq_max_workers(original)));
  ASSERT_GT(original[0], 0U) << "bounded worker limit";
  ASSERT_GT(original[1], 0U) << "unbounded worker limit";

  std::array<std::uint32_t, 2> limits{2, 3};
  ASSERT_TRUE(succeeded(ring.register_iowq_max_workers(limits)));
  EXPECT_EQ(limits, original);

  std::array<std::uint32_t, 2> restored{std::min<std::uint32_t>(original[0], INT_MAX),
                                        std::min<std::uint32_t>(original[1], INT_MAX)};
  ASSERT_TRUE(succeeded(ring.register_iowq_max_workers(restored)));
  EXPECT_EQ(restored, (std::array<std::uint32_t, 2>{2, 3}));
}

TEST(RingRegister, IowqAffinityRegistersAndUnregisters) {
  Ring ring(4);
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  ASSERT_EQ(::sched_getaffinity(0, sizeof(cpus), &cpus), 0);
  ASSERT_TRUE(succeeded(ring.register_iowq_aff(cpus)));
  EXPECT_EQ(nop_round_trip(ring, 1, sqe_flags::async).res, 0);
  ASSERT_TRUE(succeeded(ring.unregister_iowq_aff()));
}

TEST(RingRegister, RegisteredRingFdServesEnter) {
  Ring ring(4);
  EXPECT_FALSE(ring.ring_fd_registered());
  ASSERT_TRUE(succeeded(ring.register_ring_fd()));
  EXPECT_TRUE(ring.ring_fd_registered());
  expect_nop_rounds(ring, 3, 4);
  EXPECT_EQ(ring.submit_and_wait_timeout(1, 10ms).error(), enter_error(ETIME));
  ASSERT_TRUE(succeeded(ring.unregister_ring_fd()));
  EXPECT_FALSE(ring.ring_fd_registered());
  expect_nop_rounds(ring, 1, 4);
}

TEST(RingRegister, RegisterRingFdTwiceIsEbusy) {
  Ring ring(4);
  ASSERT_TRUE(succeeded(ring.register_ring_fd()));
  EXPECT_EQ(ring.register_ring_fd().error(), register_error(EBUSY));
  EXPECT_TRUE(ring.ring_fd_registered());
  expect_nop_rounds(ring, 1, 4);
}

TEST(RingRegister, UnregisterRingFdWithoutRegistrationIsEnxio) {
  Ring ring(4);
  EXPECT_EQ(ring.unregister_ring_fd().error(), register_error(ENXIO));
}

// Direct opens with file_index_alloc take the free slots of the alloc range in order,
// and -ENFILE once it is full.
TEST(RingRegister, SparseFilesAllocateInsideAllocRange) {
  Ring ring(4);
  ASSERT_TRUE(succeeded(ring.register_files_sparse(8)));
  ASSERT_TRUE(succeeded(ring.register_file_alloc_range(2, 4)));
  for (int expected : {2, 3, 4, 5, -ENFILE}) {
    Sqe& sqe = CORING_GET_SQE(ring);
    // No O_CLOEXEC: a direct descriptor never enters the fd table, and the kernel
    // refuses O_CLOEXEC for one with EINVAL.
    prep_openat_direct(sqe, AT_FDCWD, "/dev/null", O_RDONLY, 0, file_index_alloc);
    sqe.user_data = 0xF;
    EXPECT_EQ(submit_and_get_cqe(ring).res, expected);
  }
  ASSERT_TRUE(succeeded(ring.unregister_files()));
}

// Writes `text` through registered file `index`; returns the CQE's res.
int write_fixed_file(Ring& ring, int index, const std::string& text) {
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_write(sqe, index, bytes_of(text), current_position);
  use_fixed_file(sqe);
  sqe.user_data = 0x3;
  return submit_and_get_cqe(ring).res;
}

TEST(RingRegister, FilesUpdateFillsSkipsAndClearsSlots) {
  Ring ring(4);
  Pipe pipe = make_pipe();
  ASSERT_TRUE(succeeded(ring.register_files_sparse(4)));
  const int fill[] = {pipe.write_end.get()};
  ASSERT_TRUE(succeeded(ring.register_files_update(1, fill)));
  EXPECT_EQ(write_fixed_file(ring, 1, "abc"), 3);
  EXPECT_EQ(read_text(pipe.read_end.get()), "abc");

  const int skip[] = {register_files_skip};
  ASSERT_TRUE(succeeded(ring.register_files_update(1, skip)));
  EXPECT_EQ(write_fixed_file(ring, 1, "de"), 2);
  EXPECT_EQ(read_text(pipe.read_end.get()), "de");

  const int clear[] = {-1};
  ASSERT_TRUE(succeeded(ring.register_files_update(1, clear)));
  EXPECT_EQ(write_fixed_file(ring, 1, "f"), -EBADF);
}

TEST(RingRegister, RegisterFilesWithClosedFdIsEbadf) {
  Ring ring(4);
  int closed = -1;
  {
    Fd scratch = make_eventfd();
    closed = scratch.get();
  }
  const int fds[] = {closed};
  EXPECT_EQ(ring.register_files(fds).error(), register_error(EBADF));
}

TEST(RingRegister, UnregisterFilesWithNoneIsEnxio) {
  Ring ring(4);
  EXPECT_EQ(ring.unregister_files().error(), register_error(ENXIO));
}

TEST(RingRegister, RegisteredBuffersServeReadFixed) {
  Ring ring(4);
  std::vector<std::byte> memory(4096);
  const iovec buffer{memory.data(), memory.size()};
  ASSERT_TRUE(succeeded(ring.register_buffers(std::span(&buffer, 1))));

  Pipe pipe = make_pipe();
  write_text(pipe.write_end.get(), "fixed");
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_read_fixed(sqe, pipe.read_end.get(), std::span(memory).subspan(100, 64), current_position,
                  0);
  sqe.user_data = 0xB;
  const Cqe cqe = submit_and_get_cqe(ring);
  EXPECT_EQ(cqe.user_data, 0xBU);
  EXPECT_EQ(cqe.res, 5);
  EXPECT_EQ(text_of(std::span(memory).subspan(100, 5)), "fixed");

  ASSERT_TRUE(succeeded(ring.unregister_buffers()));
  EXPECT_EQ(ring.unregister_buffers().error(), register_error(ENXIO));
}

TEST(RingRegister, UnregisterBuffersWithNoneIsEnxio) {
  Ring ring(4);
  EXPECT_EQ(ring.unregister_buffers().error(), register_error(ENXIO));
}

// Whatever the process and kernel, ENOMEM at setup or registration names RLIMIT_MEMLOCK
// and CAP_IPC_LOCK, which decides whether the limit applies.
TEST(RingRegister, EnomemMessageNamesMemlock) {
  for (const std::error_code& code : {register_error(ENOMEM), setup_error(ENOMEM)}) {
    const std::string message = code.message();
    EXPECT_NE(message.find("RLIMIT_MEMLOCK"), std::string::npos) << message;
    EXPECT_NE(message.find("CAP_IPC_LOCK"), std::string::npos) << message;
    EXPECT_EQ(code, std::errc::not_enough_memory);
  }
}

// Runs `attempt` in a child process without CAP_IPC_LOCK, as an unprivileged user's
// process would be, and returns the text it produced. `attempt` gets a function that
// sets the soft RLIMIT_MEMLOCK (in bytes); the charge it checks is per user, shared by
// every process of that user without the capability, so an attempt sets up what must
// fit first and lowers the limit only before the call that must fail.
std::string without_ipc_lock(std::string (*attempt)(void (*)(rlim_t))) {
  Pipe pipe = make_pipe();
  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3]{};
    std::string text = "capget/capset failed";
    if (::syscall(SYS_capget, &header, caps) == 0) {
      const auto bit = static_cast<std::uint32_t>(CAP_TO_MASK(CAP_IPC_LOCK));
      caps[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~bit;
      caps[CAP_TO_INDEX(CAP_IPC_LOCK)].permitted &= ~bit;
      caps[CAP_TO_INDEX(CAP_IPC_LOCK)].inheritable &= ~bit;
      if (::syscall(SYS_capset, &header, caps) == 0) {
        text = attempt([](rlim_t bytes) {
          rlimit limit{};
          ::getrlimit(RLIMIT_MEMLOCK, &limit);
          limit.rlim_cur = std::min(bytes, limit.rlim_max);
          ::setrlimit(RLIMIT_MEMLOCK, &limit);
        });
      }
    }
    const bool written = ::write(pipe.write_end.get(), text.data(), text.size()) ==
                         static_cast<ssize_t>(text.size());
    ::_exit(written ? 0 : 1);
  }
  pipe.write_end = Fd();
  std::string text;
  for (std::string piece; !(piece = read_text(pipe.read_end.get())).empty();) text += piece;
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) text += " (the child failed)";
  return text;
}

constexpr rlim_t kTightMemlock = 64 << 10;

// An ENOMEM message from a child of without_ipc_lock() under kTightMemlock: it names the
// limit, its value, the capability that lifts it, and how to raise it.
void expect_memlock_advice(const std::string& message) {
  for (const char* part : {"RLIMIT_MEMLOCK", "CAP_IPC_LOCK", "64 KiB", "ulimit -l",
                           "LimitMEMLOCK=", "--ulimit memlock"}) {
    EXPECT_NE(message.find(part), std::string::npos) << "no '" << part << "' in: " << message;
  }
}

// From 6.14 (and before 5.12) the kernel charges a ring's SQ, CQ and SQE arrays to
// RLIMIT_MEMLOCK for a process without CAP_IPC_LOCK: a server loop's ring (4096 SQEs,
// 65536 CQEs) takes 1284 KiB, so its setup under a 64 KiB limit fails with ENOMEM, and
// the message says that memlock is the cause on this kernel and what to do.
TEST(RingMemlock, SetupEnomemUnderTheLimitSaysTheKernelChargesRings) {
  const std::string message = without_ipc_lock([](void (*set_limit)(rlim_t)) -> std::string {
    set_limit(kTightMemlock);
    Params params;
    params.flags = setup::cqsize;
    params.cq_entries = 65536;
    auto ring = Ring::create(4096, params);
    if (ring) return "created";
    return ring.error() == setup_error(ENOMEM) ? ring.error().message()
                                               : "not ENOMEM: " + ring.error().message();
  });
  if (message == "created") {
    GTEST_SKIP() << "this kernel (5.12 to 6.13) charges the rings to the memory cgroup only";
  }
  expect_memlock_advice(message);
  EXPECT_NE(message.find("charges each ring"), std::string::npos) << message;
  EXPECT_EQ(message.find("before 5.12"), std::string::npos) << message;
}

// Registered buffers are pinned and charged to RLIMIT_MEMLOCK on every kernel, for a
// process without CAP_IPC_LOCK: 1 MiB of them under a 64 KiB limit is ENOMEM.
TEST(RingMemlock, RegisterBuffersEnomemNamesTheLimitAndWhatToDo) {
  const std::string message = without_ipc_lock([](void (*set_limit)(rlim_t)) -> std::string {
    Ring ring(4);
    std::vector<std::byte> memory(1 << 20);
    const iovec buffer{memory.data(), memory.size()};
    set_limit(kTightMemlock);
    auto registered = ring.register_buffers(std::span(&buffer, 1));
    if (registered) return "registered";
    return registered.error() == register_error(ENOMEM)
               ? registered.error().message()
               : "not ENOMEM: " + registered.error().message();
  });
  expect_memlock_advice(message);
  EXPECT_NE(message.find("registered buffers"), std::string::npos) << message;
}

// From 6.14 a provided-buffer ring is pinned and charged like registered buffers: one of
// 32768 entries (512 KiB) under a 64 KiB limit is ENOMEM.
TEST(RingMemlock, BufferRingEnomemNamesProvidedBufferRings) {
  const std::string message = without_ipc_lock([](void (*set_limit)(rlim_t)) -> std::string {
    Ring ring(4);
    set_limit(kTightMemlock);
    auto buffers = BufferRing::create(ring, 1, 32768);
    if (buffers) return "created";
    return buffers.error() == register_error(ENOMEM) ? buffers.error().message()
                                                     : "not ENOMEM: " + buffers.error().message();
  });
  if (message == "created") {
    GTEST_SKIP() << "this kernel (before 6.14) does not charge provided-buffer rings to "
                    "RLIMIT_MEMLOCK";
  }
  expect_memlock_advice(message);
  EXPECT_NE(message.find("provided-buffer rings"), std::string::npos) << message;
}

// A registered personality may be named in SQEs until it is unregistered; then the
// kernel refuses SQEs that name it.
TEST(RingRegister, PersonalityIsUsableUntilUnregistered) {
  Ring ring(4);
  auto id = ring.register_personality();
  ASSERT_TRUE(succeeded(id));
  EXPECT_GE(*id, std::uint16_t{1}) << "0 means no personality";

  const auto nop_as = [&](std::uint16_t personality) {
    Sqe& sqe = CORING_GET_SQE(ring);
    prep_nop(sqe);
    sqe.personality = personality;
    sqe.user_data = personality;
    return submit_and_get_cqe(ring).res;
  };
  EXPECT_EQ(nop_as(*id), 0);
  ASSERT_TRUE(succeeded(ring.unregister_personality(*id)));
  EXPECT_EQ(nop_as(*id), -EINVAL);
  EXPECT_EQ(ring.unregister_personality(*id).error(), register_error(EINVAL));
}

// --- RingBufferRing: provided-buffer rings ------------------------------------------------------

TEST(RingBufferRing, MaskIsEntriesMinusOne) {
  Ring ring(4);
  std::uint16_t group = 1;
  for (std::uint32_t entries : {1U, 2U, 256U, 32768U}) {
    auto buffers = BufferRing::create(ring, group, entries);
    ASSERT_TRUE(succeeded(buffers)) << entries << " entries";
    EXPECT_EQ(buffers->mask(), static_cast<std::uint16_t>(entries - 1));
    EXPECT_EQ(buffers->entries(), entries);
    EXPECT_EQ(buffers->group_id(), group);
    EXPECT_FALSE(buffers->incremental());
    ++group;
  }
}

// Each buffer-select read takes the buffer at the kernel's head and moves the head on.
TEST(RingBufferRing, KernelHeadAdvancesAsReadsConsumeBuffers) {
  Ring ring(4);
  constexpr std::uint16_t group = 7;
  auto buffers = BufferRing::create(ring, group, 8);
  ASSERT_TRUE(succeeded(buffers));
  std::array<std::array<std::byte, 16>, 8> storage{};
  for (std::uint16_t id = 0; id < storage.size(); ++id) buffers->add(storage[id], id, id);
  buffers->advance(static_cast<std::uint16_t>(storage.size()));
  auto head = ring.buf_ring_head(group);
  ASSERT_TRUE(succeeded(head));
  EXPECT_EQ(*head, std::uint16_t{0});

  Pipe pipe = make_pipe();
  const std::array<std::string, 3> messages{"abc", "defg", "hi"};
  for (std::uint16_t i = 0; i < messages.size(); ++i) {
    write_text(pipe.write_end.get(), messages[i]);
    Sqe& sqe = CORING_GET_SQE(ring);
    prep_read_buffer_select(sqe, pipe.read_end.get(), group, 16, current_position);
    sqe.user_data = i;
    const Cqe cqe = submit_and_get_cqe(ring);
    EXPECT_EQ(cqe.res, static_cast<int>(messages[i].size()));
    ASSERT_TRUE(cqe.has_buffer());
    EXPECT_EQ(cqe.buffer_id(), i);
    EXPECT_EQ(text_of(std::span(storage[i]).first(messages[i].size())), messages[i]);
    head = ring.buf_ring_head(group);
    ASSERT_TRUE(succeeded(head));
    EXPECT_EQ(*head, static_cast<std::uint16_t>(i + 1));
  }
}

TEST(RingBufferRing, EntriesZeroAreRejected) {
  Ring ring(4);
  EXPECT_EQ(BufferRing::create(ring, 1, 0).error(),
            make_error_code(Errc::buf_ring_entries_out_of_range));
}

TEST(RingBufferRing, EntriesNotPowerOfTwoAreRejected) {
  Ring ring(4);
  EXPECT_EQ(BufferRing::create(ring, 1, 3).error(),
            make_error_code(Errc::buf_ring_entries_not_power_of_two));
}

TEST(RingBufferRing, EntriesAboveMaximumAreRejected) {
  Ring ring(4);
  EXPECT_EQ(BufferRing::create(ring, 1, 65536).error(),
            make_error_code(Errc::buf_ring_entries_out_of_range));
}

TEST(RingBufferRing, SameGroupTwiceIsEexist) {
  Ring ring(4);
  auto first = BufferRing::create(ring, 5, 4);
  ASSERT_TRUE(succeeded(first));
  EXPECT_EQ(BufferRing::create(ring, 5, 4).error(), register_error(EEXIST));
}

// Destroying a BufferRing unregisters its group: the kernel no longer knows it, and
// the id is free for a new ring.
TEST(RingBufferRing, DestructionUnregistersGroup) {
  Ring ring(4);
  {
    auto buffers = BufferRing::create(ring, 9, 4);
    ASSERT_TRUE(succeeded(buffers));
    EXPECT_TRUE(succeeded(ring.buf_ring_head(9)));
  }
  EXPECT_EQ(ring.buf_ring_head(9).error(), register_error(ENOENT));
  EXPECT_TRUE(succeeded(BufferRing::create(ring, 9, 4)));
}

TEST(RingBufferRing, GroupBufferSizeZeroIsRejected) {
  Ring ring(4);
  EXPECT_EQ(BufferGroup::create(ring, 1, 0, 4).error(), make_error_code(Errc::buffer_size_invalid));
}

TEST(RingBufferRing, GroupGetRejectsCqeWithoutOurBuffer) {
  Ring ring(4);
  auto group = BufferGroup::create(ring, 2, 64, 2);
  ASSERT_TRUE(succeeded(group));
  const Cqe no_buffer{1, 5, 0};
  EXPECT_EQ(group->get(no_buffer).error(), make_error_code(Errc::buffer_id_invalid));
  const Cqe foreign_id{1, 5, cqe_flags::buffer | (5U << cqe_flags::buffer_shift)};
  EXPECT_EQ(group->get(foreign_id).error(), make_error_code(Errc::buffer_id_invalid));
  EXPECT_EQ(group->put(foreign_id).error(), make_error_code(Errc::buffer_id_invalid));
}

// Sends `text` over the pair and receives it through the group.
Cqe group_recv(Ring& ring, BufferGroup& group, const TcpPair& pair, const std::string& text) {
  const auto sent = ::send(pair.client.get(), text.data(), text.size(), MSG_NOSIGNAL);
  EXPECT_EQ(sent, static_cast<ssize_t>(text.size()));
  if (group.recv(0x6, pair.server.get(), 0) == nullptr)
    throw std::runtime_error("SQ unexpectedly full");
  return submit_and_get_cqe(ring);
}

// Buffers that fill up are consumed whole; put() hands them back at the tail, so the
// third message lands in the first buffer again.
TEST(RingBufferRing, GroupRecyclesBufferAfterPut) {
  Ring ring(4);
  auto group = BufferGroup::create(ring, 3, 8, 2);
  ASSERT_TRUE(succeeded(group));
  TcpPair pair = make_tcp_pair();
  const std::array<std::string, 3> messages{"abcdefgh", "12345678", "ABCDEFGH"};
  const std::array<std::uint16_t, 3> ids{0, 1, 0};
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const Cqe cqe = group_recv(ring, *group, pair, messages[i]);
    EXPECT_EQ(cqe.res, 8);
    ASSERT_TRUE(cqe.has_buffer());
    EXPECT_EQ(cqe.buffer_id(), ids[i]);
    EXPECT_EQ(cqe.flags & cqe_flags::buf_more, 0U) << "a full buffer is finished";
    auto bytes = group->get(cqe);
    ASSERT_TRUE(succeeded(bytes));
    EXPECT_EQ(text_of(*bytes), messages[i]);
    ASSERT_TRUE(succeeded(group->put(cqe)));
  }
}

// Under incremental consumption a short receive leaves the buffer with the kernel
// (buf_more) and the next one continues where it stopped.
TEST(RingBufferRing, GroupIncrementalRecvContinuesInSameBuffer) {
  Ring ring(4);
  auto group = BufferGroup::create(ring, 4, 64, 2);
  ASSERT_TRUE(succeeded(group));
  if (!group->incremental())
    GTEST_SKIP() << "kernel lacks incremental buffer consumption (IOU_PBUF_RING_INC, 6.12)";
  TcpPair pair = make_tcp_pair();

  const Cqe first = group_recv(ring, *group, pair, "hello");
  EXPECT_EQ(first.res, 5);
  ASSERT_TRUE(first.has_buffer());
  EXPECT_NE(first.flags & cqe_flags::buf_more, 0U);
  auto first_bytes = group->get(first);
  ASSERT_TRUE(succeeded(first_bytes));
  EXPECT_EQ(text_of(*first_bytes), "hello");
  ASSERT_TRUE(succeeded(group->put(first)));

  const Cqe second = group_recv(ring, *group, pair, "world");
  EXPECT_EQ(second.res, 5);
  ASSERT_TRUE(second.has_buffer());
  EXPECT_EQ(second.buffer_id(), first.buffer_id());
  EXPECT_NE(second.flags & cqe_flags::buf_more, 0U);
  auto second_bytes = group->get(second);
  ASSERT_TRUE(succeeded(second_bytes));
  EXPECT_EQ(text_of(*second_bytes), "world");
  EXPECT_EQ(second_bytes->data(), first_bytes->data() + 5);
  ASSERT_TRUE(succeeded(group->put(second)));
}

// --- RingFeatures: what the kernel offers ------------------------------------------------------

TEST(RingFeatures, ProbeReportsNopAndNewestOps) {
  Ring ring(4);
  auto probe = ring.get_probe();
  ASSERT_TRUE(succeeded(probe));
  EXPECT_TRUE(probe->is_supported(Op::nop));
  EXPECT_TRUE(probe->is_supported(Op::read));
  EXPECT_GE(static_cast<unsigned>(probe->last_op()), static_cast<unsigned>(Op::pipe));
  EXPECT_TRUE(probe->is_supported(Op::pipe));
  EXPECT_FALSE(probe->is_supported(static_cast<Op>(0xFF)));
}

// The features coring relies on, all older than 5.19.
TEST(RingFeatures, KernelAdvertisesFeaturesCoringReliesOn) {
  Ring ring(4);
  const std::array<std::pair<std::uint32_t, const char*>, 12> needed{{
      {feat::single_mmap, "single_mmap"},
      {feat::nodrop, "nodrop"},
      {feat::submit_stable, "submit_stable"},
      {feat::rw_cur_pos, "rw_cur_pos"},
      {feat::cur_personality, "cur_personality"},
      {feat::fast_poll, "fast_poll"},
      {feat::poll_32bits, "poll_32bits"},
      {feat::ext_arg, "ext_arg"},
      {feat::native_workers, "native_workers"},
      {feat::rsrc_tags, "rsrc_tags"},
      {feat::cqe_skip, "cqe_skip"},
      {feat::linked_file, "linked_file"},
  }};
  for (const auto& [bit, name] : needed) EXPECT_TRUE(ring.has_feature(bit)) << name;
}

TEST(RingFeatures, CqeSkipSuccessPostsNoCqe) {
  Ring ring(4);
  Sqe& skipped = CORING_GET_SQE(ring);
  prep_nop(skipped);
  skip_cqe_on_success(skipped);
  skipped.user_data = 1;
  queue_nops(ring, 1, 2);
  auto submitted = ring.submit();
  ASSERT_TRUE(succeeded(submitted));
  EXPECT_EQ(*submitted, 2U);
  const std::vector<Cqe> cqes = reap(ring, 1);
  ASSERT_EQ(cqes.size(), 1U);
  EXPECT_EQ(cqes[0].user_data, 2U);
  EXPECT_EQ(ring.wait_cqes(1, 20ms).error(), enter_error(ETIME)) << "the skipped NOP posted a CQE";
}

TEST(RingFeatures, MsgRingDeliversDataToAnotherRing) {
  Ring sender(4);
  Ring receiver(4);
  CORING_REQUIRE_OP(sender, Op::msg_ring);
  Sqe& sqe = CORING_GET_SQE(sender);
  prep_msg_ring(sqe, receiver.fd(), 42, 0xB0B, 0);
  sqe.user_data = 1;
  const Cqe sent = submit_and_get_cqe(sender);
  EXPECT_EQ(sent.user_data, 1U);
  EXPECT_EQ(sent.res, 0);
  const std::vector<Cqe> received = reap(receiver, 1);
  ASSERT_EQ(received.size(), 1U);
  EXPECT_EQ(received[0].user_data, 0xB0BU);
  EXPECT_EQ(received[0].res, 42);
  EXPECT_EQ(received[0].flags, 0U);
}

TEST(RingFeatures, MsgRingPassesCqeFlags) {
  Ring sender(4);
  Ring receiver(4);
  CORING_REQUIRE_OP(sender, Op::msg_ring);
  Sqe& sqe = CORING_GET_SQE(sender);
  prep_msg_ring_cqe_flags(sqe, receiver.fd(), 7, 0xF1A9, 0, 0x12340000U);
  sqe.user_data = 1;
  EXPECT_EQ(submit_and_get_cqe(sender).res, 0);
  const std::vector<Cqe> received = reap(receiver, 1);
  ASSERT_EQ(received.size(), 1U);
  EXPECT_EQ(received[0].user_data, 0xF1A9U);
  EXPECT_EQ(received[0].res, 7);
  EXPECT_EQ(received[0].flags, 0x12340000U);
}

// The sender's registered file 0 (a pipe's write end) goes to the receiver's slot 2,
// and the receiver writes through it.
TEST(RingFeatures, MsgRingSendsRegisteredFileToAnotherRing) {
  Ring sender(4);
  Ring receiver(4);
  CORING_REQUIRE_OP(sender, Op::msg_ring);
  Pipe pipe = make_pipe();
  const int source[] = {pipe.write_end.get()};
  ASSERT_TRUE(succeeded(sender.register_files(source)));
  ASSERT_TRUE(succeeded(receiver.register_files_sparse(4)));

  Sqe& sqe = CORING_GET_SQE(sender);
  prep_msg_ring_fd(sqe, receiver.fd(), 0, 2, 0xFD, 0);
  sqe.user_data = 1;
  const Cqe sent = submit_and_get_cqe(sender);
  EXPECT_EQ(sent.user_data, 1U);
  EXPECT_EQ(sent.res, 0);
  const std::vector<Cqe> received = reap(receiver, 1);
  ASSERT_EQ(received.size(), 1U);
  EXPECT_EQ(received[0].user_data, 0xFDU);
  EXPECT_EQ(received[0].res, 0);

  EXPECT_EQ(write_fixed_file(receiver, 2, "ping"), 4);
  EXPECT_EQ(read_text(pipe.read_end.get()), "ping");
}

}  // namespace
}  // namespace coring::ring::test

namespace coring::ring::test {
namespace {

// for_each_cqe() hands over the CQEs where they lie, in order, across the end of the
// CQ array (3 per round on an 8-entry CQ), and releases each batch with the head.
TEST(RingQueue, ForEachCqeVisitsReadyCqesInOrderAcrossTheWrap) {
  Ring ring(4);
  ASSERT_EQ(ring.cq_entries(), 8U);
  std::uint64_t next_expected = 0;
  for (std::uint64_t round = 0; round < 20; ++round) {
    for (std::uint64_t i = 0; i < 3; ++i) {
      Sqe& sqe = CORING_GET_SQE(ring);
      prep_nop(sqe);
      sqe.user_data = round * 3 + i;
    }
    ASSERT_EQ(ring.submit_and_wait(3).value(), 3U);
    std::vector<std::uint64_t> seen;
    const std::uint32_t count = ring.for_each_cqe([&](const Cqe& cqe) {
      EXPECT_EQ(cqe.res, 0);
      seen.push_back(cqe.user_data);
    });
    ASSERT_EQ(count, 3U);
    for (std::uint64_t user_data : seen) EXPECT_EQ(user_data, next_expected++);
    EXPECT_EQ(ring.cq_ready(), 0U);
  }
  EXPECT_EQ(ring.for_each_cqe([](const Cqe&) { ADD_FAILURE() << "no CQE is ready"; }), 0U);
}

}  // namespace
}  // namespace coring::ring::test
