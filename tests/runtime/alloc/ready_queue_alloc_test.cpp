// The loop when memory runs out while it queues coroutines to resume. The global
// operator new is replaced by one that fails every allocation while the test arms it.
//
// The loop's ready queue grows by doubling, and the loop keeps a headroom of 64 free
// slots in it. A test floods it with spawned tasks to just under 4,096 slots, which
// makes it grow to exactly that, and then fails allocations. Growing the queue inside
// the noexcept completion path would end the process, so the loop makes room first: a reap that
// cannot grow the queue takes fewer CQEs and leaves the rest in the ring; a turn that cannot keep
// the headroom before it resumes a coroutine throws std::bad_alloc out of run_once(), and then
// run(task) keeps the task for the loop to destroy after its drain, and a Runtime's run_on_each()
// reports it. An operation with a stop token that finds no memory for the stop's callback
// fails with ENOMEM instead of running where the stop cannot reach it; a multishot stream
// takes that memory when it is built.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <new>
#include <optional>
#include <thread>
#include <vector>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/multishot.hpp"
#include "coring/runtime/runtime.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "failing_alloc.hpp"
#include "support.hpp"

// While armed, every allocation fails (tests/common/failing_alloc.hpp).
CORING_TEST_FAILING_OPERATOR_NEW(::coring::test::fail_while_armed);
using coring::test::fail_allocations;
using coring::test::refused;

namespace coring {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t queue_capacity = 4096;  // what the floods below grow the queue to
constexpr int pollers = 400;

LoopOptions big_cq() {
  LoopOptions options;
  options.entries = 512;
  options.cq_entries = 1024;
  return options;
}

Task<void> count(int& counter) {
  ++counter;
  co_return;
}

// Queues `n` spawned tasks that only count, from a coroutine the loop is resuming: they
// run on the next turn, so the ready queue holds them through this turn's reap.
void flood(int n, int& counter) {
  for (int i = 0; i < n; ++i) EventLoop::current()->spawn(count(counter));
}

// Waits for `fd` to be readable, then counts.
Task<void> poll_then_count(int fd, int& done) {
  const IoResult result =
      co_await io([fd](ring::Sqe& sqe) { ring::prep_poll_add(sqe, fd, POLLIN); });
  if (result.ok()) ++done;
}

// A reap whose batch does not fit: `pollers` polls of one eventfd complete together
// while the ready queue has 200 free slots, and the queue cannot grow. The loop reaps
// what fits — 68 CQEs, the headroom kept — turn after turn, and every poller completes;
// nothing throws, nothing is lost. The flooder makes the eventfd readable itself, in
// the resumption that floods, so that the CQEs come in that turn's reap whatever the
// timing.
constexpr int flood_size = static_cast<int>(queue_capacity) - 200;

Task<void> flood_and_wake_the_pollers(int event_fd, int& flooded) {
  co_await sleep_for(1ms);  // the pollers' SQEs went in on an earlier turn
  const std::uint64_t one = 1;
  EXPECT_EQ(::write(event_fd, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  flood(flood_size, flooded);
  fail_allocations = true;
}

TEST(ReadyQueueAlloc, AReapThatCannotGrowTheQueueTakesFewerCqes) {
  EventLoop loop(big_cq());
  const ring::test::Fd event_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_GE(event_fd.get(), 0);
  int done = 0;
  int flooded = 0;
  for (int i = 0; i < pollers; ++i) loop.spawn(poll_then_count(event_fd.get(), done));
  loop.spawn(flood_and_wake_the_pollers(event_fd.get(), flooded));
  refused = 0;
  for (int turn = 0; turn < 200 && (done < pollers || flooded == 0); ++turn) {
    loop.run_once(10ms);
  }
  fail_allocations = false;
  EXPECT_GT(refused.load(), 0) << "the reap never needed to grow the queue";
  EXPECT_EQ(done, pollers);
  EXPECT_EQ(flooded, flood_size);
  EXPECT_EQ(loop.in_flight(), 1U);  // only the loop's own wake read
}

// Records, when the frame holding it is destroyed, how many operations its loop still
// had in flight: 0 once the loop's destructor has drained; more while the task's own
// timer and the loop's wake read are in the kernel.
struct InFlightAtDestruction {
  InFlightAtDestruction(EventLoop* l, std::uint32_t* o) noexcept : loop(l), out(o) {}
  InFlightAtDestruction(const InFlightAtDestruction&) = delete;
  InFlightAtDestruction& operator=(const InFlightAtDestruction&) = delete;
  ~InFlightAtDestruction() { *out = loop->in_flight(); }
  EventLoop* loop;
  std::uint32_t* out;
};

// A turn that cannot keep the headroom: the queue is left with fewer than 64 free slots
// and cannot grow, so the next turn throws before it resumes anything.
Task<void> flood_then_wait(int& flooded, bool& finished, std::uint32_t& in_flight_at_end) {
  const InFlightAtDestruction sentinel{EventLoop::current(), &in_flight_at_end};
  flood(static_cast<int>(queue_capacity) - 32, flooded);
  fail_allocations = true;
  co_await sleep_for(100ms);
  finished = true;
}

TEST(ReadyQueueAlloc, RunKeepsTheTaskWhenATurnThrows) {
  int flooded = 0;
  bool finished = false;
  std::uint32_t in_flight_at_end = 99;
  {
    EventLoop loop(big_cq());
    EXPECT_THROW(loop.run(flood_then_wait(flooded, finished, in_flight_at_end)), std::bad_alloc);
    fail_allocations = false;
    EXPECT_EQ(flooded, 0);
    EXPECT_EQ(in_flight_at_end, 99U) << "run() destroyed the task";
    // The loop turns on: the flood runs and the abandoned task, its timer in flight
    // all along, completes.
    for (int turn = 0; turn < 100 && !finished; ++turn) loop.run_once(10ms);
    EXPECT_EQ(flooded, static_cast<int>(queue_capacity) - 32);
    EXPECT_TRUE(finished) << "the task was destroyed with its timer in flight";
  }
  // And a loop destroyed at once cancels and drains the abandoned task's timer before
  // it destroys the task.
  in_flight_at_end = 99;
  {
    EventLoop loop(big_cq());
    EXPECT_THROW(loop.run(flood_then_wait(flooded, finished, in_flight_at_end)), std::bad_alloc);
    fail_allocations = false;
    EXPECT_EQ(in_flight_at_end, 99U) << "run() destroyed the task";
  }
  EXPECT_EQ(in_flight_at_end, 0U) << "the task was destroyed before the drain";
}

// The same in a Runtime's loop: the loop thread's run() throws, the runtime stops, and
// run_on_each() reports the failure instead of returning as if its tasks had finished.
TEST(ReadyQueueAlloc, ARuntimeLoopThatFailsMakesRunOnEachThrow) {
  int flooded = 0;
  bool finished = false;
  std::uint32_t in_flight_at_end = 99;
  {
    RuntimeOptions options;
    options.threads = 1;
    options.loop = big_cq();
    Runtime runtime(options);
    bool threw = false;
    try {
      runtime.run_on_each([&](EventLoop&, std::size_t) {
        return flood_then_wait(flooded, finished, in_flight_at_end);
      });
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    fail_allocations = false;
    EXPECT_TRUE(threw) << "run_on_each() returned as if its task had finished";
  }  // the loop is destroyed, its task's timer drained first
  EXPECT_EQ(in_flight_at_end, 0U);
  EXPECT_FALSE(finished);
}

// A multishot stream whose queue cannot grow. Eight connections wait; the kernel
// accepts them in one burst, far past a bound of 1 and a slack of 1, and the queue's
// growth fails. The stream loses nothing silently and reorders nothing: the two fds
// queued are delivered, every later one is closed, and the stream then ends with ENOMEM;
// re-armed, it serves again.
TEST(MultishotAlloc, AQueueThatCannotGrowEndsTheStreamWithEnomem) {
  struct AcceptPrep {
    int fd;
    void operator()(ring::Sqe& sqe) const noexcept {
      ring::prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC);
    }
  };
  auto listener = ring::test::make_listener();
  std::vector<ring::test::Fd> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::connect(clients.back().get(), reinterpret_cast<const sockaddr*>(&listener.address),
                        sizeof(listener.address)),
              0);
  }
  const int fds_before = ring::test::count_open_fds();
  std::optional<EventLoop> loop(std::in_place);  // its own fds: counted once it is gone
  const std::vector<int> results = loop->run([&]() -> Task<std::vector<int>> {
    Multishot<AcceptPrep> accepts(AcceptPrep{listener.fd.get()},
                                  {.bound = 1, .slack = 1, .fd_results = true});
    std::vector<int> got;
    got.reserve(8);
    fail_allocations = true;  // from the first reap on
    for (int i = 0; i < 4; ++i) {
      const IoResult result = co_await accepts.next();
      fail_allocations = false;
      got.push_back(result.res);
    }
    // With memory back, the stream re-armed serves again (as a listener does after a
    // shortage): the next connection is delivered, not closed.
    accepts.rearm();
    ring::test::Fd late(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    (void)::connect(late.get(), reinterpret_cast<const sockaddr*>(&listener.address),
                    sizeof(listener.address));
    got.push_back((co_await accepts.next()).res);
    co_await accepts.close();
    co_return got;
  }());
  loop.reset();
  ASSERT_EQ(results.size(), 5U);
  EXPECT_GE(results[0], 0);
  EXPECT_GE(results[1], 0);
  EXPECT_EQ(results[2], -ENOMEM) << "a result that could not be queued was dropped silently";
  EXPECT_EQ(results[3], -ENOMEM) << "the stream's end does not stick";
  EXPECT_GE(results[4], 0) << "a re-armed stream still drops what it accepts";
  EXPECT_GT(refused.load(), 0);
  for (const int i : {0, 1, 4}) {
    if (results[i] >= 0) ::close(results[i]);
  }
  EXPECT_EQ(ring::test::count_open_fds(), fds_before) << "fds nobody took were not closed";
}

// An operation with a stop token needs memory for the stop's callback. Without it the
// operation does not start and completes at once with ENOMEM, rather than run where
// the stop could not reach it.
TEST(StopCallbackAlloc, AnOperationThatCannotHearItsStopFailsWithEnomem) {
  EventLoop loop;
  std::stop_source source;
  const auto [failed, later] = loop.run([&]() -> Task<std::pair<int, int>> {
    fail_allocations = true;
    const IoResult first = co_await sleep_for(10s).with_stop(source.get_token());
    fail_allocations = false;
    const IoResult second = co_await sleep_for(1ms).with_stop(source.get_token());
    co_return std::pair{first.res, second.res};
  }());
  EXPECT_EQ(failed, -ENOMEM);
  EXPECT_EQ(later, 0);  // slept its full time
}

// A multishot stream with a stop token takes the memory for the stop's callback when it
// is built, so that arming needs none: with every allocation failing it still arms, and
// the stop reaches it (a stream armed without its callback would wait for ever).
TEST(StopCallbackAlloc, AStreamArmsWithoutMemoryAndHearsItsStop) {
  struct PollPrep {
    int fd;
    void operator()(ring::Sqe& sqe) const noexcept { ring::prep_poll_multishot(sqe, fd, POLLIN); }
  };
  ring::test::Fd event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  EventLoop loop;
  std::stop_source source;
  const int after_stop = loop.run([&]() -> Task<int> {
    Multishot<PollPrep> polls(PollPrep{event.get()}, {}, source.get_token());
    fail_allocations = true;
    polls.start();
    fail_allocations = false;
    const auto stopper = [](std::stop_source& stop) -> Task<void> {
      co_await sleep_for(10ms);
      stop.request_stop();
    };
    loop.spawn(stopper(source));
    const IoResult stopped = co_await polls.next();
    co_await polls.close();
    co_return stopped.res;
  }());
  EXPECT_EQ(after_stop, -ECANCELED) << "the stream did not hear the stop";
}

}  // namespace
}  // namespace coring
