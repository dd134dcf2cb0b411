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
// reports it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <thread>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/runtime.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"

namespace {

std::atomic<bool> fail_allocations{false};
std::atomic<int> refused{0};

void* allocate(std::size_t size) {
  if (fail_allocations.load(std::memory_order_relaxed)) {
    refused.fetch_add(1, std::memory_order_relaxed);
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

void* allocate_nothrow(std::size_t size) noexcept {
  if (fail_allocations.load(std::memory_order_relaxed)) {
    refused.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  return std::malloc(size == 0 ? 1 : size);
}

}  // namespace

// The replaceable global allocation functions ([new.delete]): plain, array, nothrow.
void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return allocate_nothrow(size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return allocate_nothrow(size);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace coring {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::size_t queue_capacity = 4096;  // what the floods below grow the queue to
constexpr int sleepers = 400;

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

Task<void> sleep_until_then_count(Clock::time_point deadline, int& done) {
  co_await sleep_until(deadline);
  ++done;
}

// Queues `n` spawned tasks that only count, from a coroutine the loop is resuming: they
// run on the next turn, so the ready queue holds them through this turn's reap.
void flood(int n, int& counter) {
  for (int i = 0; i < n; ++i) EventLoop::current()->spawn(count(counter));
}

// A reap whose batch does not fit: `sleepers` timers fire together while the ready queue
// has 200 free slots, and the queue cannot grow. The loop reaps what fits — 68 CQEs, the
// headroom kept — turn after turn, and every sleeper completes; nothing throws, nothing
// is lost.
constexpr int flood_size = static_cast<int>(queue_capacity) - 200;
Task<void> flood_as_the_sleepers_fire(Clock::time_point deadline, int& flooded) {
  co_await sleep_until(deadline - 100ms);
  std::this_thread::sleep_until(deadline + 20ms);  // every sleeper's timer has fired
  flood(flood_size, flooded);
  fail_allocations = true;
}

TEST(ReadyQueueAlloc, AReapThatCannotGrowTheQueueTakesFewerCqes) {
  EventLoop loop(big_cq());
  int done = 0;
  int flooded = 0;
  const auto deadline = Clock::now() + 300ms;
  loop.spawn(flood_as_the_sleepers_fire(deadline, flooded));
  for (int i = 0; i < sleepers; ++i) loop.spawn(sleep_until_then_count(deadline, done));
  refused = 0;
  for (int turn = 0; turn < 200 && (done < sleepers || flooded == 0); ++turn) {
    loop.run_once(10ms);
  }
  fail_allocations = false;
  EXPECT_GT(refused.load(), 0) << "the reap never needed to grow the queue";
  EXPECT_EQ(done, sleepers);
  EXPECT_EQ(flooded, flood_size);
  EXPECT_EQ(loop.in_flight(), 1U);  // only the loop's own wake read
}

// A turn that cannot keep the headroom: the queue is left with fewer than 64 free slots
// and cannot grow, so the next turn throws before it resumes anything.
Task<void> flood_then_wait(int& flooded, bool& finished) {
  flood(static_cast<int>(queue_capacity) - 32, flooded);
  fail_allocations = true;
  co_await sleep_for(100ms);
  finished = true;
}

TEST(ReadyQueueAlloc, RunKeepsTheTaskWhenATurnThrows) {
  int flooded = 0;
  bool finished = false;
  {
    EventLoop loop(big_cq());
    EXPECT_THROW(loop.run(flood_then_wait(flooded, finished)), std::bad_alloc);
    fail_allocations = false;
    EXPECT_EQ(flooded, 0);
    // The loop turns on: the flood runs and the abandoned task, its timer in flight
    // all along, completes.
    for (int turn = 0; turn < 100 && !finished; ++turn) loop.run_once(10ms);
    EXPECT_EQ(flooded, static_cast<int>(queue_capacity) - 32);
    EXPECT_TRUE(finished) << "the task was destroyed with its timer in flight";
  }
  // And a loop destroyed at once cancels and drains the abandoned task's timer before
  // it destroys the task.
  finished = false;
  {
    EventLoop loop(big_cq());
    EXPECT_THROW(loop.run(flood_then_wait(flooded, finished)), std::bad_alloc);
    fail_allocations = false;
  }
  EXPECT_FALSE(finished);
}

// The same in a Runtime's loop: the loop thread's run() throws, the runtime stops, and
// run_on_each() reports the failure instead of returning as if its tasks had finished.
TEST(ReadyQueueAlloc, ARuntimeLoopThatFailsMakesRunOnEachThrow) {
  int flooded = 0;
  bool finished = false;
  {
    RuntimeOptions options;
    options.threads = 1;
    options.loop = big_cq();
    Runtime runtime(options);
    bool threw = false;
    try {
      runtime.run_on_each(
          [&](EventLoop&, std::size_t) { return flood_then_wait(flooded, finished); });
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    fail_allocations = false;
    EXPECT_TRUE(threw) << "run_on_each() returned as if its task had finished";
  }  // the loop is destroyed, its task's timer drained first
  EXPECT_FALSE(finished);
}

}  // namespace
}  // namespace coring
