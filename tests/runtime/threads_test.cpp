// Threads: post() from plain threads and from other loops (MSG_RING), the Runtime's
// loops and their teardown, spawn_blocking, and Event and Channel within a loop and
// across loops. These are the tests .ci/run also runs under ThreadSanitizer.
#include <sched.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "coring/runtime/blocking.hpp"
#include "coring/runtime/channel.hpp"
#include "coring/runtime/event.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/loop_hooks.hpp"
#include "coring/runtime/runtime.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "frame_guard.hpp"
#include "support.hpp"

namespace coring {
namespace {

using namespace std::chrono_literals;
using ring::test::Fd;

RuntimeOptions loops(std::size_t count, bool pin = false) {
  RuntimeOptions options;
  options.threads = count;
  options.pin_threads = pin;
  return options;
}

// Runs the loop until `done` holds, without relying on anything but post() to wake it.
Task<void> until(const std::atomic<bool>& done) {
  while (!done.load(std::memory_order_acquire)) co_await sleep_for(1ms);
}

// --- post() ---------------------------------------------------------------------------

TEST(RuntimeThreads, PostFromFourThreadsRunsEachOnceOnTheLoopThread) {
  constexpr int threads = 4;
  constexpr int posts_per_thread = 10'000;
  EventLoop loop;
  const auto loop_thread = std::this_thread::get_id();
  // Written only on the loop thread: a post running elsewhere would be a data race
  // (ThreadSanitizer) and would also show in off_thread.
  std::vector<int> runs(threads * posts_per_thread, 0);
  int off_thread = 0;
  std::atomic<int> total{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> posters;
  for (int t = 0; t < threads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < posts_per_thread; ++i) {
        loop.post([&, slot = t * posts_per_thread + i] {
          ++runs[static_cast<std::size_t>(slot)];
          if (std::this_thread::get_id() != loop_thread) ++off_thread;
          if (total.fetch_add(1, std::memory_order_relaxed) + 1 == threads * posts_per_thread) {
            done.store(true, std::memory_order_release);
          }
        });
      }
    });
  }
  loop.run(until(done));
  for (auto& poster : posters) poster.join();
  EXPECT_EQ(off_thread, 0);
  for (std::size_t i = 0; i < runs.size(); ++i) ASSERT_EQ(runs[i], 1) << "post " << i;
  EXPECT_GT(loop.wake_stats().eventfd_received, 0U);
  EXPECT_EQ(loop.wake_stats().msg_ring_received, 0U);
}

// A throwing posted function is counted and logged; the rest of its batch still runs.
// Hooks that count their calls: enough to tell that a loop uses them.
class CountingHooks final : public LoopHooks {
 public:
  void before_submit(ring::Ring&, std::uint64_t) noexcept override { ++submits; }
  bool skip_enter() noexcept override { return false; }
  void submit_first(ring::Ring&) noexcept override {}
  bool flush_cq() noexcept override { return false; }
  bool reap(ring::Ring& ring, std::uint64_t, std::uint32_t limit,
            std::span<const ring::Cqe>& batch) override {
    cqes.clear();
    (void)ring.for_each_cqe([&](const ring::Cqe& cqe) { cqes.push_back(cqe); }, limit);
    batch = cqes;
    return !cqes.empty();
  }
  [[nodiscard]] bool holds_completions() const noexcept override { return false; }
  std::atomic<int> submits{0};
  std::vector<ring::Cqe> cqes;
};

// One LoopHooks serves one loop: a Runtime of two refuses them, one of one uses them.
TEST(RuntimeThreads, HooksInLoopOptionsServeARuntimeOfOneLoopOnly) {
  CountingHooks hooks;
  RuntimeOptions two = loops(2);
  two.loop.hooks = &hooks;
  EXPECT_THROW(Runtime{two}, std::invalid_argument);
  RuntimeOptions one = loops(1);
  one.loop.hooks = &hooks;
  Runtime runtime(one);
  runtime.run_on_each([](EventLoop&, std::size_t) -> Task<void> { co_await nop(); });
  EXPECT_GT(hooks.submits.load(), 0);
}

TEST(RuntimeThreads, PostedFunctionExceptionIsCountedAndTheBatchGoesOn) {
  EventLoop loop;
  int ran = 0;
  std::thread poster([&] {
    loop.post([&] { ++ran; });
    loop.post([] { throw std::runtime_error("posted"); });
    loop.post([&] { ++ran; });
  });
  poster.join();
  loop.poll();
  EXPECT_EQ(ran, 2);
  EXPECT_EQ(loop.unhandled_exceptions(), 1U);
}

// Two loops of a Runtime bounce a counter 10,000 times; every hop is a post() from
// one loop's turn to the other, which sleeps in io_uring_enter between hops (nothing
// else runs there), so each hop needs a wake — and each must come through MSG_RING.
TEST(RuntimeThreads, LoopToLoopPingPongWakesThroughMsgRing) {
  constexpr int hops = 10'000;
  Runtime runtime(loops(2));
  struct Table {
    EventLoop* loops[2] = {nullptr, nullptr};
    std::thread::id threads[2];
    WakeStats before[2];
    WakeStats after[2];
    int hops_seen[2] = {0, 0};
    bool wrong_thread = false;
    Event done;
  } table;
  table.loops[0] = &runtime.loop(0);
  table.loops[1] = &runtime.loop(1);
  // Each loop's thread and counters, read on that loop.
  runtime.run_on_each([&](EventLoop& loop, std::size_t index) -> Task<void> {
    table.threads[index] = std::this_thread::get_id();
    table.before[index] = loop.wake_stats();
    co_return;
  });
  struct Hop {
    Table* table;
    int count;
    void operator()() const {
      const int side = count % 2;
      if (std::this_thread::get_id() != table->threads[side]) table->wrong_thread = true;
      ++table->hops_seen[side];
      if (count + 1 == hops) {
        table->done.set();
        return;
      }
      table->loops[1 - side]->post(Hop{table, count + 1});
    }
  };
  runtime.loop(0).post(Hop{&table, 0});
  runtime.run_on_each([&](EventLoop& loop, std::size_t index) -> Task<void> {
    co_await table.done.wait();
    table.after[index] = loop.wake_stats();
  });
  EXPECT_FALSE(table.wrong_thread);
  EXPECT_EQ(table.hops_seen[0], hops / 2);
  EXPECT_EQ(table.hops_seen[1], hops / 2);
  for (int side = 0; side < 2; ++side) {
    const WakeStats& before = table.before[side];
    const WakeStats& after = table.after[side];
    // Each loop sent a wake for (nearly) every hop it handed over, and received as
    // many; a MSG_RING path that fell back to the eventfd would leave these at zero.
    EXPECT_GT(after.msg_ring_sent - before.msg_ring_sent, static_cast<std::uint64_t>(hops / 4))
        << "loop " << side;
    EXPECT_GT(after.msg_ring_received - before.msg_ring_received,
              static_cast<std::uint64_t>(hops / 4))
        << "loop " << side;
    EXPECT_LT(after.eventfd_received - before.eventfd_received, 10U) << "loop " << side;
  }
}

// A loop on io_uring and a loop on the epoll backend wake each other: MSG_RING cannot
// cross backends (the kernel answers EBADFD for an emulated ring's fd), so a loop posting
// to a loop of the other backend writes its wake eventfd instead. Each hop is posted from
// the other loop's turn, where MSG_RING would otherwise be used.
TEST(RuntimeThreads, LoopsOnDifferentBackendsWakeEachOther) {
  {
    ring::Params params;
    if (!ring::Ring::create(2, params, ring::Backend::io_uring)) {
      GTEST_SKIP() << "io_uring is unavailable here: both loops would be on the epoll backend";
    }
  }
  constexpr int hops = 2'000;
  struct Table {
    EventLoop* loops[2] = {nullptr, nullptr};
    std::atomic<int> hops_seen{0};
    std::atomic<bool> done{false};
  } table;
  std::atomic<int> ready{0};
  const std::array<ring::Backend, 2> backends = {ring::Backend::io_uring, ring::Backend::epoll};
  std::array<ring::Backend, 2> seen{};
  std::vector<std::thread> threads;
  for (int side = 0; side < 2; ++side) {
    threads.emplace_back([&, side] {
      EventLoop loop({.backend = backends[static_cast<std::size_t>(side)]});
      seen[static_cast<std::size_t>(side)] = loop.backend();
      table.loops[side] = &loop;
      ready.fetch_add(1);
      while (!table.done.load()) loop.run_once(100ms);
      loop.run_once(0ns);
    });
  }
  while (ready.load() < 2) std::this_thread::yield();
  struct Hop {
    Table* table;
    int count;
    void operator()() const {
      table->hops_seen.fetch_add(1);
      if (count + 1 == hops) {
        table->done.store(true);
        return;
      }
      table->loops[(count + 1) % 2]->post(Hop{table, count + 1});
    }
  };
  const auto start = std::chrono::steady_clock::now();
  table.loops[0]->post(Hop{&table, 0});
  while (!table.done.load() && std::chrono::steady_clock::now() - start < 60s) {
    std::this_thread::sleep_for(1ms);
  }
  const auto took = std::chrono::steady_clock::now() - start;
  table.done.store(true);
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(seen[0], ring::Backend::io_uring);
  EXPECT_EQ(seen[1], ring::Backend::epoll);
  EXPECT_EQ(table.hops_seen.load(), hops);
  // Each loop waits up to 100 ms per turn: a wake that did not arrive costs that much.
  EXPECT_LT(took, 10s) << "wakes across backends are lost and left to the turn's timeout";
}

// --- Runtime ----------------------------------------------------------------------------

TEST(RuntimeThreads, RunOnEachRunsOneTaskPerLoopOnItsOwnThread) {
  Runtime runtime(loops(2));
  ASSERT_EQ(runtime.size(), 2U);
  std::thread::id seen[2];
  EventLoop* loops[2] = {nullptr, nullptr};
  std::atomic<int> finished{0};
  runtime.run_on_each([&](EventLoop& loop, std::size_t index) -> Task<void> {
    co_await sleep_for(5ms);  // really suspends: run_on_each waits for the end
    seen[index] = std::this_thread::get_id();
    loops[index] = EventLoop::current();
    EXPECT_EQ(&loop, EventLoop::current());
    finished.fetch_add(1);
  });
  EXPECT_EQ(finished.load(), 2);
  EXPECT_EQ(loops[0], &runtime.loop(0));
  EXPECT_EQ(loops[1], &runtime.loop(1));
  EXPECT_NE(seen[0], seen[1]);
  EXPECT_NE(seen[0], std::this_thread::get_id());
  EXPECT_NE(seen[1], std::this_thread::get_id());
}

TEST(RuntimeThreads, RunOnEachRethrowsATaskException) {
  Runtime runtime(loops(2));
  auto failing = [](EventLoop&, std::size_t index) -> Task<void> {
    co_await sleep_for(1ms);
    if (index == 1) throw std::runtime_error("loop 1 failed");
  };
  EXPECT_THROW(runtime.run_on_each(failing), std::runtime_error);
}

// A task that throws while another waits for ever (a server's loop that accepts until
// stopped): run_on_each() stops the runtime and rethrows, rather than wait.
TEST(RuntimeThreads, RunOnEachStopsTheOthersWhenATaskThrows) {
  Event never;  // outlives the runtime, which destroys the task that waits for it
  Runtime runtime(loops(2));
  auto failing = [&never](EventLoop&, std::size_t index) -> Task<void> {
    if (index == 0) {
      co_await never.wait();
      co_return;
    }
    co_await sleep_for(1ms);
    throw std::runtime_error("loop 1 failed");
  };
  EXPECT_THROW(runtime.run_on_each(failing), std::runtime_error);
}

// spawn_on from loop 0's turn moves a task to loop 1 (a MSG_RING wake), which runs it
// on its own thread.
TEST(RuntimeThreads, SpawnOnMovesTaskToTheOtherLoopThread) {
  Runtime runtime(loops(2));
  std::thread::id loop1_thread;
  runtime.run_on_each([&](EventLoop&, std::size_t index) -> Task<void> {
    if (index == 1) loop1_thread = std::this_thread::get_id();
    co_return;
  });
  Event ran;
  std::thread::id ran_on;
  EventLoop* ran_in = nullptr;
  // Whether the wake travels by MSG_RING depends on whether loop 1 already has one in
  // flight, so it is not asserted here; LoopToLoopPingPongWakesThroughMsgRing does.
  runtime.run_on_each([&](EventLoop&, std::size_t index) -> Task<void> {
    if (index == 1) {
      co_await ran.wait();
      co_return;
    }
    runtime.spawn_on(1, [](std::thread::id& on, EventLoop*& in, Event& done) -> Task<void> {
      co_await nop();
      on = std::this_thread::get_id();
      in = EventLoop::current();
      done.set();
    }(ran_on, ran_in, ran));
    co_await ran.wait();
  });
  EXPECT_EQ(ran_on, loop1_thread);
  EXPECT_NE(ran_on, std::this_thread::get_id());
  EXPECT_EQ(ran_in, &runtime.loop(1));
}

TEST(RuntimeThreads, SpawnOnFromAPlainThread) {
  Runtime runtime(loops(2));
  Event done;
  std::atomic<EventLoop*> ran_in{nullptr};
  runtime.spawn_on(1, [](std::atomic<EventLoop*>& in, Event& ev) -> Task<void> {
    in.store(EventLoop::current());
    ev.set();
    co_return;
  }(ran_in, done));
  runtime.run_on_each([&](EventLoop&, std::size_t index) -> Task<void> {
    if (index == 0) co_await done.wait();
  });
  EXPECT_EQ(ran_in.load(), &runtime.loop(1));
}

using test::FrameGuard;

// stop() from a task ends run_on_each() at once, though loop 1's task still waits;
// the destructor then destroys that suspended frame (on loop 1's thread).
TEST(RuntimeThreads, StopFromATaskEndsRunOnEach) {
  std::atomic<int> frames_alive{0};
  std::atomic<bool> resumed{false};
  Event parked;
  Event never;
  {
    Runtime runtime(loops(2));
    runtime.run_on_each([&](EventLoop&, std::size_t index) -> Task<void> {
      if (index == 0) {
        co_await parked.wait();
        runtime.stop();
        co_return;
      }
      FrameGuard guard(frames_alive);
      parked.set();
      co_await never.wait();
      resumed.store(true);
    });
    EXPECT_EQ(frames_alive.load(), 1);  // loop 1's task is still suspended
  }
  EXPECT_EQ(frames_alive.load(), 0);  // destroyed with the runtime
  EXPECT_FALSE(resumed.load());
}

TEST(RuntimeThreads, LoopSetupFailureIsRethrownAfterJoining) {
  RuntimeOptions options = loops(2);
  options.loop.entries = 1;  // EventLoop refuses: it needs at least 2 SQ entries
  EXPECT_THROW(Runtime runtime(options), std::system_error);
}

TEST(RuntimeThreads, PinnedThreadsRunOnTheirCpu) {
  Runtime runtime(loops(2, true));
  int cpu_count[2] = {0, 0};
  runtime.run_on_each([&](EventLoop&, std::size_t index) -> Task<void> {
    cpu_set_t set;
    CPU_ZERO(&set);
    EXPECT_EQ(::sched_getaffinity(0, sizeof(set), &set), 0);
    cpu_count[index] = CPU_COUNT(&set);
    co_return;
  });
  EXPECT_EQ(cpu_count[0], 1);
  EXPECT_EQ(cpu_count[1], 1);
}

// Each loop has a recv in flight on a socket nobody writes to and a task parked on an
// Event that is never set; destroying the Runtime cancels and drains the recvs and
// destroys every suspended frame (the shared main checks the fds, ASan the frames).
TEST(RuntimeThreads, DestructionWithTasksSuspendedOnIoLeaksNothing) {
  std::vector<ring::test::TcpPair> pairs;
  for (int i = 0; i < 2; ++i) pairs.push_back(ring::test::make_tcp_pair());
  std::atomic<int> frames_alive{0};
  std::atomic<int> recvs_started{0};
  Event never;
  {
    Runtime runtime(loops(2));
    for (std::size_t i = 0; i < 2; ++i) {
      const int fd = pairs[i].server.get();
      runtime.spawn_on(
          i, [](int sock, std::atomic<int>& alive, std::atomic<int>& started) -> Task<void> {
            FrameGuard guard(alive);
            std::array<std::byte, 64> buffer{};
            started.fetch_add(1);
            IoResult r =
                co_await io([&](ring::Sqe& sqe) { ring::prep_recv(sqe, sock, buffer, 0); });
            ADD_FAILURE() << "recv completed with " << r.res;
          }(fd, frames_alive, recvs_started));
      runtime.spawn_on(i, [](Event& ev, std::atomic<int>& alive) -> Task<void> {
        FrameGuard guard(alive);
        co_await ev.wait();
        ADD_FAILURE() << "the event was never set";
      }(never, frames_alive));
    }
    while (recvs_started.load() < 2 || frames_alive.load() < 4) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(5ms);  // let the recvs reach the kernel
  }
  EXPECT_EQ(frames_alive.load(), 0);
}

// --- spawn_blocking ---------------------------------------------------------------------

TEST(RuntimeBlocking, ReturnsValueOnTheAwaitingLoopThread) {
  EventLoop loop;
  const auto loop_thread = std::this_thread::get_id();
  std::thread::id ran_on;
  auto body = [&]() -> Task<std::string> {
    std::string value = co_await spawn_blocking([&] {
      ran_on = std::this_thread::get_id();
      std::this_thread::sleep_for(2ms);  // blocks, as DNS would
      return std::string("resolved");
    });
    EXPECT_EQ(std::this_thread::get_id(), loop_thread);
    co_return value;
  };
  EXPECT_EQ(loop.run(body()), "resolved");
  EXPECT_NE(ran_on, loop_thread);
}

TEST(RuntimeBlocking, RethrowsTheExceptionOnTheAwaitingLoop) {
  EventLoop loop;
  const auto loop_thread = std::this_thread::get_id();
  auto body = [&]() -> Task<std::string> {
    try {
      co_await spawn_blocking([]() -> int { throw std::invalid_argument("bad host"); });
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::this_thread::get_id(), loop_thread);
      co_return e.what();
    }
    co_return "no exception";
  };
  EXPECT_EQ(loop.run(body()), "bad host");
}

// Several loops share the pool at once; each result comes back to its own loop.
TEST(RuntimeBlocking, ManyJobsFromTwoLoopsEachResumeOnTheirLoop) {
  Runtime runtime(loops(2));
  BlockingPool pool(3);
  std::atomic<int> wrong_loop{0};
  std::atomic<long> sum{0};
  runtime.run_on_each([&](EventLoop& loop, std::size_t index) -> Task<void> {
    for (int i = 0; i < 200; ++i) {
      const int value =
          co_await spawn_blocking(pool, [i, index] { return i + static_cast<int>(index) * 1000; });
      if (EventLoop::current() != &loop) wrong_loop.fetch_add(1);
      sum.fetch_add(value);
    }
  });
  EXPECT_EQ(wrong_loop.load(), 0);
  // sum over both loops of (i + 1000 * index) for i < 200
  EXPECT_EQ(sum.load(), 2 * (199 * 200 / 2) + 200 * 1000);
}

// A pool destroyed with a job still queued resumes its awaiter with ECANCELED.
TEST(RuntimeBlocking, PoolDestroyedBeforeJobRanResumesWithError) {
  EventLoop loop;
  auto pool = std::make_unique<BlockingPool>(1);
  std::atomic<bool> release_worker{false};
  std::atomic<bool> worker_busy{false};
  std::string outcome;
  auto blocked = [&]() -> Task<void> {
    co_await spawn_blocking(*pool, [&] {
      worker_busy.store(true);
      while (!release_worker.load()) std::this_thread::sleep_for(1ms);
    });
  };
  auto queued = [&]() -> Task<void> {
    try {
      co_await spawn_blocking(*pool, [] { return 1; });
      outcome = "ran";
    } catch (const std::system_error& e) {
      outcome = e.code() == std::errc::operation_canceled ? "cancelled" : e.what();
    }
  };
  auto body = [&]() -> Task<void> {
    loop.spawn(blocked());
    while (!worker_busy.load()) co_await sleep_for(1ms);
    loop.spawn(queued());
    co_await nop();
    // Destroy the pool on another thread: it stops taking jobs at once, then joins the
    // worker, which finishes only when released a while later.
    std::thread destroyer([&] { pool.reset(); });
    co_await sleep_for(20ms);
    release_worker.store(true);
    while (outcome.empty()) co_await sleep_for(1ms);
    destroyer.join();
  };
  loop.run(body());
  EXPECT_EQ(outcome, "cancelled");
}

// --- Event --------------------------------------------------------------------------

TEST(RuntimeEvent, SetFromAnotherThreadWakesWaiterOnItsLoop) {
  EventLoop loop;
  Event ev;
  const auto loop_thread = std::this_thread::get_id();
  std::atomic<bool> waiting{false};
  auto body = [&]() -> Task<std::thread::id> {
    waiting.store(true);
    co_await ev.wait();
    co_return std::this_thread::get_id();
  };
  std::thread setter([&] {
    while (!waiting.load()) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(5ms);  // the waiter is parked in io_uring_enter by now
    ev.set();
  });
  EXPECT_EQ(loop.run(body()), loop_thread);
  setter.join();
  EXPECT_TRUE(ev.is_set());
}

TEST(RuntimeEvent, ManualResetWakesAllAndStaysSetUntilReset) {
  EventLoop loop;
  Event ev;
  int woken = 0;
  auto waiter = [&]() -> Task<void> {
    co_await ev.wait();
    ++woken;
  };
  auto body = [&]() -> Task<void> {
    for (int i = 0; i < 3; ++i) loop.spawn(waiter());
    co_await nop();
    EXPECT_EQ(woken, 0);
    ev.set();  // same loop: the waiters are scheduled, not posted
    co_await nop();
    EXPECT_EQ(woken, 3);
    co_await ev.wait();  // set: does not suspend
    ev.reset();
    EXPECT_FALSE(ev.is_set());
    loop.spawn(waiter());
    co_await nop();
    EXPECT_EQ(woken, 3);  // waits again after reset()
    ev.set();
    co_await nop();
  };
  loop.run(body());
  EXPECT_EQ(woken, 4);
}

// Waiters on both loops of a Runtime, set from a plain thread.
TEST(RuntimeEvent, WakesWaitersOnSeveralLoops) {
  Runtime runtime(loops(2));
  Event ev;
  std::atomic<int> parked{0};
  std::thread setter([&] {
    while (parked.load() < 2) std::this_thread::sleep_for(1ms);
    ev.set();
  });
  EventLoop* resumed_in[2] = {nullptr, nullptr};
  runtime.run_on_each([&](EventLoop&, std::size_t index) -> Task<void> {
    parked.fetch_add(1);
    co_await ev.wait();
    resumed_in[index] = EventLoop::current();
  });
  setter.join();
  EXPECT_EQ(resumed_in[0], &runtime.loop(0));
  EXPECT_EQ(resumed_in[1], &runtime.loop(1));
}

// --- Channel ------------------------------------------------------------------------

TEST(RuntimeChannel, WithinALoopKeepsOrderAndBlocksSenderWhenFull) {
  EventLoop loop;
  Channel<int> channel(2);
  std::vector<int> received;
  int sent = 0;
  auto producer = [&]() -> Task<void> {
    for (int i = 0; i < 10; ++i) {
      EXPECT_TRUE(co_await channel.send(i));
      ++sent;
    }
    channel.close();
  };
  auto body = [&]() -> Task<void> {
    loop.spawn(producer());
    co_await nop();
    co_await nop();
    // No receiver yet: the producer filled both slots and waits with its third value.
    EXPECT_EQ(sent, 2);
    EXPECT_EQ(channel.size(), 2U);
    while (auto value = co_await channel.recv()) received.push_back(*value);
  };
  loop.run(body());
  EXPECT_EQ(sent, 10);
  EXPECT_EQ(received, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(RuntimeChannel, CloseDrainsThenEndsAndRefusesSends) {
  EventLoop loop;
  Channel<std::unique_ptr<int>> channel(4);
  auto body = [&]() -> Task<void> {
    EXPECT_TRUE(co_await channel.send(std::make_unique<int>(1)));
    EXPECT_TRUE(co_await channel.send(std::make_unique<int>(2)));
    channel.close();
    EXPECT_TRUE(channel.is_closed());
    EXPECT_FALSE(co_await channel.send(std::make_unique<int>(3)));
    auto first = co_await channel.recv();
    auto second = co_await channel.recv();
    auto third = co_await channel.recv();
    EXPECT_TRUE(first && *first && **first == 1);
    EXPECT_TRUE(second && *second && **second == 2);
    EXPECT_FALSE(third.has_value());
  };
  loop.run(body());
}

TEST(RuntimeChannel, CloseWakesWaitingReceiversAndSenders) {
  EventLoop loop;
  Channel<int> empty(1);
  Channel<int> full(1);
  int receiver_got_nullopt = 0;
  int sender_refused = 0;
  auto receiver = [&]() -> Task<void> {
    if (!(co_await empty.recv()).has_value()) ++receiver_got_nullopt;
  };
  auto sender = [&]() -> Task<void> {
    if (!co_await full.send(2)) ++sender_refused;
  };
  auto body = [&]() -> Task<void> {
    EXPECT_TRUE(co_await full.send(1));
    loop.spawn(receiver());
    loop.spawn(receiver());
    loop.spawn(sender());
    co_await nop();
    EXPECT_EQ(receiver_got_nullopt + sender_refused, 0);  // all three suspended
    empty.close();
    full.close();
    co_await nop();
    auto buffered = co_await full.recv();  // the value sent before close() remains
    EXPECT_EQ(buffered, std::optional<int>(1));
  };
  loop.run(body());
  EXPECT_EQ(receiver_got_nullopt, 2);
  EXPECT_EQ(sender_refused, 1);
}

// 100,000 values from loop 0 to loop 1 through a small channel: both sides block
// often and are woken across loops; the sum proves none was lost or duplicated.
TEST(RuntimeChannel, AcrossTwoLoopsSumsHundredThousandItemsExactly) {
  constexpr std::int64_t items = 100'000;
  Runtime runtime(loops(2));
  Channel<std::int64_t> channel(16);
  std::int64_t sum = 0;
  std::int64_t count = 0;
  runtime.run_on_each([&](EventLoop&, std::size_t index) -> Task<void> {
    if (index == 0) {
      for (std::int64_t i = 1; i <= items; ++i) {
        if (!co_await channel.send(i)) co_return;
      }
      channel.close();
    } else {
      while (auto value = co_await channel.recv()) {
        sum += *value;
        ++count;
      }
    }
  });
  EXPECT_EQ(count, items);
  EXPECT_EQ(sum, items * (items + 1) / 2);
}

// Two producers and two consumers, one of each per loop: MPMC across loops.
TEST(RuntimeChannel, ManyProducersAndConsumersAcrossLoops) {
  constexpr std::int64_t per_producer = 20'000;
  Runtime runtime(loops(2));
  Channel<std::int64_t> channel(8);
  std::atomic<std::int64_t> sum{0};
  std::atomic<std::int64_t> count{0};
  std::atomic<int> producers_left{2};
  auto consumer = [&]() -> Task<void> {
    while (auto value = co_await channel.recv()) {
      sum.fetch_add(*value);
      count.fetch_add(1);
    }
  };
  runtime.run_on_each([&](EventLoop& loop, std::size_t) -> Task<void> {
    loop.spawn(consumer());
    for (std::int64_t i = 1; i <= per_producer; ++i) EXPECT_TRUE(co_await channel.send(i));
    if (producers_left.fetch_sub(1) == 1) channel.close();
    while (count.load() < 2 * per_producer) co_await sleep_for(1ms);
  });
  EXPECT_EQ(count.load(), 2 * per_producer);
  EXPECT_EQ(sum.load(), 2 * (per_producer * (per_producer + 1) / 2));
}

}  // namespace
}  // namespace coring
