// The epoll emulation when memory runs out while it takes SQEs. The global operator
// new is replaced by one that fails every allocation while the test arms it.
//
// The emulation keeps a record for each request it has taken, carved from slabs of 256
// that it allocates as they run out. An SQE it has no record for completes at once with
// -ENOMEM, and what its chain holds is cancelled: every SQE is taken. Left in the SQ, a
// loop waiting for completions could wait for ever (a server under RLIMIT_AS, whose
// sends sat in the SQ while its loop slept on connections waiting for those sends).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <utility>
#include <vector>

#include "coring/ring/prep.hpp"
#include "coring/ring/ring.hpp"
#include "failing_alloc.hpp"

// While armed, every allocation fails (tests/common/failing_alloc.hpp).
CORING_TEST_FAILING_OPERATOR_NEW(::coring::test::fail_while_armed);
using coring::test::fail_allocations;
using coring::test::refused;

namespace coring::ring::test {
namespace {

using namespace std::chrono_literals;

Ring make_ring() {
  Params params{};
  auto ring = Ring::create(64, params, Backend::epoll);
  if (!ring) throw std::runtime_error("ring setup: " + ring.error().message());
  return std::move(*ring);
}

// Every CQE the ring holds, by user_data.
std::map<std::uint64_t, std::int32_t> take_cqes(Ring& ring) {
  std::map<std::uint64_t, std::int32_t> taken;
  (void)ring.for_each_cqe([&](const Cqe& cqe) { taken[cqe.user_data] = cqe.res; });
  return taken;
}

constexpr std::uint64_t probe_data = 99;
constexpr std::uint64_t poll_data = 1000;  // and up: the parked polls

void add_nop(Ring& ring, std::uint64_t user_data, bool linked) {
  Sqe* sqe = ring.get_sqe();
  if (sqe == nullptr) throw std::runtime_error("SQ full");
  prep_nop(*sqe);
  sqe->user_data = user_data;
  if (linked) sqe->flags |= sqe_flags::io_link;
}

// Submits what the SQ holds with every allocation failing.
Result<std::uint32_t> submit_without_memory(Ring& ring) {
  fail_allocations = true;
  Result<std::uint32_t> submitted = ring.submit();
  fail_allocations = false;
  return submitted;
}

// Parks polls on `fd` (an empty pipe) one at a time, each holding a record of the
// emulation, until `attempt` — SQEs added and submitted without memory — no longer
// completes every SQE it submitted with success. Returns the CQEs of that attempt, and
// in `parked` how many polls wait.
template <typename Attempt>
std::map<std::uint64_t, std::int32_t> park_until_refused(Ring& ring, int fd, int& parked,
                                                         Attempt attempt) {
  for (parked = 0; parked < 1000; ++parked) {
    const std::uint32_t expected = attempt();
    const Result<std::uint32_t> submitted = submit_without_memory(ring);
    std::map<std::uint64_t, std::int32_t> cqes = take_cqes(ring);
    bool all_succeeded = submitted && *submitted == expected && cqes.size() == expected;
    for (const auto& [data, res] : cqes) all_succeeded = all_succeeded && res == 0;
    if (!all_succeeded) return cqes;
    Sqe* sqe = ring.get_sqe();
    if (sqe == nullptr) throw std::runtime_error("SQ full");
    prep_poll_add(*sqe, fd, POLLIN);
    sqe->user_data = poll_data + static_cast<std::uint64_t>(parked);
    if (!ring.submit()) throw std::runtime_error("submit");
  }
  throw std::runtime_error("1,000 polls parked and the emulation still had memory");
}

// After the test: the parked polls complete when the pipe has data, and a NOP on its
// own succeeds, now that allocations do.
void expect_served_on(Ring& ring, int write_fd, int parked) {
  ASSERT_EQ(::write(write_fd, "x", 1), 1);
  add_nop(ring, 6, false);
  std::map<std::uint64_t, std::int32_t> later;
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (later.size() < static_cast<std::size_t>(parked) + 1 &&
         std::chrono::steady_clock::now() < until) {
    (void)ring.submit_and_wait_timeout(1, 100ms);
    later.merge(take_cqes(ring));
  }
  ASSERT_EQ(later.size(), static_cast<std::size_t>(parked) + 1);
  EXPECT_EQ(later.at(6), 0);
  for (int i = 0; i < parked; ++i) {
    EXPECT_EQ(later.at(poll_data + static_cast<std::uint64_t>(i)) & POLLIN, POLLIN) << i;
  }
}

struct Pipe {
  std::array<int, 2> fds{-1, -1};
  Pipe() {
    if (::pipe2(fds.data(), O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe() {
    if (fds[0] >= 0) ::close(fds[0]);
    if (fds[1] >= 0) ::close(fds[1]);
  }
};

TEST(EmulatorAlloc, AnSqeWithoutMemoryCompletesWithEnomem) {
  Ring ring = make_ring();
  Pipe pipe;
  int parked = 0;
  const auto refused_probe = park_until_refused(ring, pipe.fds[0], parked, [&] {
    add_nop(ring, probe_data, false);
    return 1U;
  });
  EXPECT_GT(refused.load(), 0) << "the emulation asked for memory and got none";
  // The probe was taken and failed: not left in the SQ for a loop to wait on.
  const std::map<std::uint64_t, std::int32_t> probe{{probe_data, -ENOMEM}};
  EXPECT_EQ(refused_probe, probe);
  EXPECT_EQ(ring.sq_ready(), 0U);

  // A lone NOP, a chain of three and a lone NOP: every SQE is taken, the chain's first
  // fails for want of memory and the rest of it is cancelled.
  add_nop(ring, 1, false);
  add_nop(ring, 2, true);
  add_nop(ring, 3, true);
  add_nop(ring, 4, false);
  add_nop(ring, 5, false);
  const Result<std::uint32_t> submitted = submit_without_memory(ring);
  ASSERT_TRUE(submitted) << submitted.error().message();
  EXPECT_EQ(*submitted, 5U) << "every SQE is taken";
  const std::map<std::uint64_t, std::int32_t> expected{
      {1, -ENOMEM}, {2, -ENOMEM}, {3, -ECANCELED}, {4, -ECANCELED}, {5, -ENOMEM}};
  EXPECT_EQ(take_cqes(ring), expected);
  expect_served_on(ring, pipe.fds[1], parked);
}

// A chain that runs out of memory midway: the member without a record fails with
// -ENOMEM, and every other member, before it or after it, is cancelled.
TEST(EmulatorAlloc, AChainThatRunsOutOfMemoryMidwayIsCancelledWhole) {
  Ring ring = make_ring();
  Pipe pipe;
  int parked = 0;
  const std::map<std::uint64_t, std::int32_t> chain =
      park_until_refused(ring, pipe.fds[0], parked, [&] {
        add_nop(ring, 1, true);
        add_nop(ring, 2, true);
        add_nop(ring, 3, false);
        return 3U;
      });
  ASSERT_EQ(chain.size(), 3U) << "every member of the chain completes";
  int failed = 0;
  for (const auto& [data, res] : chain) {
    if (res == -ENOMEM) {
      ++failed;
    } else {
      EXPECT_EQ(res, -ECANCELED) << "member " << data;
    }
  }
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(ring.sq_ready(), 0U);
  expect_served_on(ring, pipe.fds[1], parked);
}

// A request whose linked timeout finds no record: both fail with -ENOMEM, so that the
// caller sees why and does not take it for a cancel of its own.
TEST(EmulatorAlloc, ARequestWhoseLinkedTimeoutHasNoMemoryFailsWithEnomem) {
  Ring ring = make_ring();
  Pipe pipe;
  const KernelTimespec ten_seconds{10, 0};
  std::map<std::uint64_t, std::int32_t> cqes;
  for (int parked = 0; parked < 1000; ++parked) {
    add_nop(ring, 1, true);
    Sqe* timeout = ring.get_sqe();
    ASSERT_NE(timeout, nullptr);
    prep_link_timeout(*timeout, &ten_seconds, 0);
    timeout->user_data = 2;
    ASSERT_TRUE(submit_without_memory(ring));
    cqes = take_cqes(ring);
    // With records for both, the NOP completes (its timeout is cancelled, or fires at
    // once: without memory the emulation's heap of timers cannot grow).
    if (cqes.size() != 2 || cqes.at(1) != 0) break;
    Sqe* sqe = ring.get_sqe();
    ASSERT_NE(sqe, nullptr);
    prep_poll_add(*sqe, pipe.fds[0], POLLIN);
    sqe->user_data = poll_data + static_cast<std::uint64_t>(parked);
    ASSERT_TRUE(ring.submit());
  }
  // The records run out one at a time: first comes the attempt with one left, for the
  // NOP and none for its timeout.
  const std::map<std::uint64_t, std::int32_t> expected{{1, -ENOMEM}, {2, -ENOMEM}};
  EXPECT_EQ(cqes, expected);
}

// With no memory left, the SQEs that give resources back still run (the emulation keeps
// requests for them): closes, one after another beyond the reserve's size since each
// gives its request back, and a cancel of a parked poll.
TEST(EmulatorAlloc, ClosesAndCancelsRunWithoutMemory) {
  Ring ring = make_ring();
  Pipe pipe;
  std::vector<Pipe> to_close(20);
  int parked = 0;
  (void)park_until_refused(ring, pipe.fds[0], parked, [&] {
    add_nop(ring, probe_data, false);
    return 1U;
  });
  ASSERT_GT(parked, 0);
  for (std::size_t i = 0; i < to_close.size(); ++i) {
    Sqe* sqe = ring.get_sqe();
    ASSERT_NE(sqe, nullptr);
    prep_close(*sqe, to_close[i].fds[0]);
    sqe->user_data = 1 + i;
  }
  Sqe* cancel = ring.get_sqe();
  ASSERT_NE(cancel, nullptr);
  prep_cancel(*cancel, poll_data, 0);
  cancel->user_data = 100;
  const Result<std::uint32_t> submitted = submit_without_memory(ring);
  ASSERT_TRUE(submitted) << submitted.error().message();
  EXPECT_EQ(*submitted, to_close.size() + 1);
  std::map<std::uint64_t, std::int32_t> expected;
  for (std::size_t i = 0; i < to_close.size(); ++i) expected[1 + i] = 0;
  expected[100] = 0;
  expected[poll_data] = -ECANCELED;
  EXPECT_EQ(take_cqes(ring), expected);
  for (Pipe& closed : to_close) {
    EXPECT_EQ(::fcntl(closed.fds[0], F_GETFD), -1) << "closed by the ring";
    closed.fds[0] = -1;
  }
  ::close(pipe.fds[1]);
  pipe.fds[1] = -1;
}

}  // namespace
}  // namespace coring::ring::test
