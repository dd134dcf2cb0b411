// Join handles and switch_to: spawn() and spawn_on() return a JoinHandle that a task on
// any loop awaits for the result; switch_to(loop) moves the awaiting coroutine to
// another loop's thread. Also run under ThreadSanitizer: the cross-loop tests are the
// ones where the task's end, the waiter and the handle's release meet on two threads.
#include "coring/runtime/join.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "coring/runtime/event.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/runtime.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "frame_guard.hpp"
#include "support.hpp"

namespace coring {
namespace {

using namespace std::chrono_literals;

RuntimeOptions two_loops() {
  RuntimeOptions options;
  options.threads = 2;
  return options;
}

using test::FrameGuard;

Task<int> answer_after(std::chrono::milliseconds delay, int value) {
  co_await sleep_for(delay);
  co_return value;
}

Task<int> fail_after(std::chrono::milliseconds delay) {
  co_await sleep_for(delay);
  throw std::runtime_error("task failed");
}

Task<void> wait_forever(Event& never, std::atomic<int>& alive) {
  const FrameGuard guard(alive);
  co_await never.wait();
}

template <typename T>
Task<T> await_handle(JoinHandle<T>& handle) {
  co_return co_await handle;
}

// The calling thread's id, computed at each call: std::this_thread::get_id() is
// pthread_self(), which glibc declares const, so a compiler may reuse one call's result
// across a coroutine's suspension — and a coroutine that switch_to()s changes threads.
[[gnu::noinline]] std::thread::id this_thread_id() {
  std::thread::id id = std::this_thread::get_id();
  asm volatile("" : : "r"(&id) : "memory");
  return id;
}

// Turns both loops of this thread until `done`.
void turn_both(EventLoop& a, EventLoop& b, const bool& done) {
  while (!done) {
    (void)a.run_once(1ms);
    (void)b.run_once(1ms);
  }
}

// --- one loop -------------------------------------------------------------------------

TEST(Join, SameLoopAwaitsTheValueOfASuspendedTask) {
  EventLoop driver;
  const int value = driver.run([](EventLoop& loop) -> Task<int> {
    JoinHandle<int> handle = loop.spawn(answer_after(2ms, 42));
    EXPECT_FALSE(handle.done());
    const int result = co_await handle;
    EXPECT_FALSE(handle.valid());  // consumed
    co_return result;
  }(driver));
  EXPECT_EQ(value, 42);
  EXPECT_EQ(driver.unhandled_exceptions(), 0U);
}

TEST(Join, AwaitingAFinishedTaskDoesNotSuspend) {
  EventLoop driver;
  driver.run([](EventLoop& loop) -> Task<void> {
    JoinHandle<std::string> handle = loop.spawn([]() -> Task<std::string> { co_return "done"; }());
    while (!handle.done()) co_await nop();
    auto awaiter = handle.operator co_await();
    EXPECT_FALSE(awaiter.await_suspend(std::noop_coroutine()));  // ended: no suspension
    EXPECT_EQ(awaiter.await_resume(), "done");
  }(driver));
}

TEST(Join, VoidTaskAndMoveOnlyValue) {
  EventLoop driver;
  driver.run([](EventLoop& loop) -> Task<void> {
    bool ran = false;
    JoinHandle<> void_handle = loop.spawn([](bool& flag) -> Task<void> {
      co_await sleep_for(1ms);
      flag = true;
    }(ran));
    co_await void_handle;
    EXPECT_TRUE(ran);
    JoinHandle<std::unique_ptr<int>> owned = loop.spawn([]() -> Task<std::unique_ptr<int>> {
      co_await nop();
      co_return std::make_unique<int>(7);
    }());
    JoinHandle<std::unique_ptr<int>> moved = std::move(owned);
    EXPECT_FALSE(owned.valid());  // NOLINT(bugprone-use-after-move): what a move leaves
    const std::unique_ptr<int> result = co_await moved;
    EXPECT_TRUE(result != nullptr && *result == 7);
  }(driver));
}

TEST(Join, ExceptionIsRethrownToTheAwaiterAndNotCounted) {
  EventLoop driver;
  driver.run([](EventLoop& loop) -> Task<void> {
    JoinHandle<int> handle = loop.spawn(fail_after(1ms));
    EXPECT_THROW((void)co_await handle, std::runtime_error);
  }(driver));
  EXPECT_EQ(driver.unhandled_exceptions(), 0U);
}

TEST(Join, EmptyOrAwaitedHandleThrowsLogicError) {
  EventLoop driver;
  driver.run([](EventLoop& loop) -> Task<void> {
    JoinHandle<int> empty;
    EXPECT_THROW((void)co_await empty, std::logic_error);
    JoinHandle<int> handle = loop.spawn(answer_after(0ms, 1));
    EXPECT_EQ(co_await handle, 1);
    EXPECT_THROW((void)co_await handle, std::logic_error);  // consumed by the first
  }(driver));
}

// A dropped handle detaches the task, as spawn() always did: its exception is counted.
TEST(Join, DroppedHandleExceptionIsCountedAsBefore) {
  EventLoop driver;
  driver.run([](EventLoop& loop) -> Task<void> {
    (void)loop.spawn(fail_after(1ms));  // dropped before the task starts
    JoinHandle<int> late = loop.spawn(fail_after(0ms));
    while (!late.done()) co_await nop();
    late = JoinHandle<int>();  // dropped after the end, unawaited, on the loop's thread
    co_await sleep_for(5ms);
  }(driver));
  EXPECT_EQ(driver.unhandled_exceptions(), 2U);
}

TEST(Join, ManyJoinsFreeEveryFrame) {
  EventLoop driver;
  std::atomic<int> alive{0};
  const auto before = driver.stats();
  const long sum = driver.run([](EventLoop& loop, std::atomic<int>& frames) -> Task<long> {
    long total = 0;
    for (int i = 0; i < 20'000; ++i) {
      JoinHandle<int> handle = loop.spawn([](int n, std::atomic<int>& counter) -> Task<int> {
        const FrameGuard guard(counter);
        if (n % 2 == 0) co_await nop();
        co_return n;
      }(i, frames));
      total += co_await handle;
      EXPECT_EQ(frames.load(), 0);
    }
    co_return total;
  }(driver, alive));
  EXPECT_EQ(sum, 20'000L * 19'999 / 2);
  EXPECT_EQ(alive.load(), 0);
  EXPECT_EQ(driver.stats().in_flight, before.in_flight);
  EXPECT_EQ(driver.stats().waits, 0U);
}

// --- two loops on one thread: the teardown orders, deterministic ----------------------

TEST(Join, TaskLoopDestroyedFirstResumesTheWaiterWithCancellation) {
  std::optional<EventLoop> task_loop(std::in_place);
  EventLoop waiter_loop;
  Event never;
  std::atomic<int> alive{0};
  JoinHandle<> handle = task_loop->spawn(wait_forever(never, alive));
  JoinHandle<> unawaited = task_loop->spawn(wait_forever(never, alive));
  bool finished = false;
  bool cancelled = false;
  waiter_loop.spawn([](JoinHandle<>& joined, bool& saw_cancel, bool& ended) -> Task<void> {
    try {
      co_await joined;
    } catch (const std::system_error& error) {
      saw_cancel = error.code() == std::errc::operation_canceled;
    }
    ended = true;
  }(handle, cancelled, finished));
  while (alive.load() < 2) {
    (void)task_loop->run_once(1ms);
    (void)waiter_loop.run_once(1ms);
  }
  EXPECT_FALSE(handle.done());
  task_loop.reset();  // destroys both tasks: the waiter is resumed, the other handle told
  EXPECT_EQ(alive.load(), 0);
  EXPECT_TRUE(unawaited.done());
  while (!finished) (void)waiter_loop.run_once(1ms);
  EXPECT_TRUE(cancelled);
  EXPECT_FALSE(handle.valid());
  EXPECT_THROW(waiter_loop.run(await_handle(unawaited)), std::system_error);
}

TEST(Join, WaiterLoopDestroyedFirstUnregistersAndTheTaskFreesItself) {
  EventLoop task_loop;
  std::optional<EventLoop> waiter_loop(std::in_place);
  std::atomic<int> alive{0};
  Event go;
  JoinHandle<> handle = task_loop.spawn([](Event& start, std::atomic<int>& frames) -> Task<void> {
    const FrameGuard guard(frames);
    co_await start.wait();
  }(go, alive));
  bool waiting = false;
  waiter_loop->spawn([](JoinHandle<> joined, bool& started) -> Task<void> {
    started = true;
    co_await joined;  // the handle lives in this frame
  }(std::move(handle), waiting));
  turn_both(task_loop, *waiter_loop, waiting);
  waiter_loop.reset();  // the waiting frame, and the handle with it, destroyed
  go.set();
  while (alive.load() != 0) (void)task_loop.run_once(1ms);
  EXPECT_EQ(task_loop.unhandled_exceptions(), 0U);
}

// --- across threads (Runtime) ----------------------------------------------------------

TEST(Join, CrossLoopJoinResumesOnTheAwaitersThread) {
  Runtime runtime(two_loops());
  std::thread::id threads[2];
  runtime.run_on_each([&](EventLoop&, std::size_t index) -> Task<void> {
    threads[index] = this_thread_id();
    co_return;
  });
  runtime.run_on_each([&](EventLoop&, std::size_t index) -> Task<void> {
    if (index != 0) co_return;
    for (int i = 0; i < 200; ++i) {
      JoinHandle<std::thread::id> other = runtime.spawn_on(1, []() -> Task<std::thread::id> {
        co_await nop();
        co_return this_thread_id();
      }());
      EXPECT_EQ(co_await other, threads[1]);
      EXPECT_EQ(this_thread_id(), threads[0]);
      EXPECT_EQ(EventLoop::current(), &runtime.loop(0));
    }
    JoinHandle<int> failing = runtime.spawn_on(1, fail_after(1ms));
    EXPECT_THROW((void)co_await failing, std::runtime_error);
    EXPECT_EQ(this_thread_id(), threads[0]);
  });
  runtime.stop();
}

// Handles dropped on the awaiting side while the other loop's task runs: each frame is
// freed by whichever side lets go last.
TEST(Join, HandlesDroppedAcrossThreadsFreeEveryFrame) {
  std::atomic<int> alive{0};
  {
    Runtime runtime(two_loops());
    runtime.run_on_each([&](EventLoop&, std::size_t index) -> Task<void> {
      if (index != 0) co_return;
      for (int i = 0; i < 2'000; ++i) {
        JoinHandle<int> handle = runtime.spawn_on(1, [](std::atomic<int>& frames) -> Task<int> {
          const FrameGuard guard(frames);
          co_await nop();
          co_return 1;
        }(alive));
        if (i % 3 == 0) {
          EXPECT_EQ(co_await handle, 1);
        } else if (i % 3 == 1) {
          co_await nop();
        }
      }
    });
    runtime.stop();
  }
  EXPECT_EQ(alive.load(), 0);
}

// The Runtime's loops are destroyed together while a task of loop 0 waits for loop 1's.
TEST(Join, RuntimeTeardownWithACrossLoopWaiterLeaksNothing) {
  std::atomic<int> alive{0};
  Event never;
  {
    Runtime runtime(two_loops());
    std::atomic<bool> waiting{false};
    runtime.spawn_on(0,
                     [](Runtime& rt, Event& forever, std::atomic<int>& frames,
                        std::atomic<bool>& started) -> Task<void> {
                       const FrameGuard guard(frames);
                       JoinHandle<> handle = rt.spawn_on(1, wait_forever(forever, frames));
                       started.store(true);
                       co_await handle;
                     }(runtime, never, alive, waiting));
    while (!waiting.load()) std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(alive.load(), 0);
}

TEST(Join, SpawnOnAStoppedLoopIsCancelledWhenTheRuntimeGoes) {
  std::atomic<int> alive{0};
  Event never;
  JoinHandle<> handle;
  {
    Runtime runtime(two_loops());
    runtime.stop();  // the loops run no more turns: the start stays queued
    handle = runtime.spawn_on(1, wait_forever(never, alive));
    EXPECT_FALSE(handle.done());
  }
  EXPECT_TRUE(handle.done());
  EXPECT_EQ(alive.load(), 0);
  EventLoop loop;
  try {
    loop.run(await_handle(handle));
    ADD_FAILURE() << "a cancelled task's co_await returned";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code(), std::errc::operation_canceled);
  }
}

// A spawned task that moves to loop 1 and ends there is joined on loop 0, its own: its
// end is completed on loop 0's thread, which alone touches loop 0's list of tasks.
TEST(Join, TaskThatEndsOnAnotherLoopIsJoinedOnItsOwn) {
  Runtime runtime(two_loops());
  std::atomic<int> alive{0};
  runtime.run_on_each([&](EventLoop& home, std::size_t index) -> Task<void> {
    if (index != 0) co_return;
    EventLoop& away = runtime.loop(1);
    for (int i = 0; i < 100; ++i) {
      JoinHandle<EventLoop*> handle =
          home.spawn([](EventLoop& there, std::atomic<int>& frames) -> Task<EventLoop*> {
            const FrameGuard guard(frames);
            co_await switch_to(there);
            co_return EventLoop::current();
          }(away, alive));
      EXPECT_EQ(co_await handle, &away);
      EXPECT_EQ(EventLoop::current(), &home);
    }
    // Detached, failing away: counted by its own loop once its end gets there.
    (void)home.spawn([](EventLoop& there) -> Task<void> {
      co_await switch_to(there);
      throw std::runtime_error("failed away");
    }(away));
    while (home.unhandled_exceptions() == 0) co_await sleep_for(1ms);
    EXPECT_EQ(home.unhandled_exceptions(), 1U);
  });
  EXPECT_EQ(alive.load(), 0);
}

TEST(SwitchTo, ThereAndBackAssertsTheThreads) {
  Runtime runtime(two_loops());
  std::thread::id threads[2];
  runtime.run_on_each([&](EventLoop&, std::size_t index) -> Task<void> {
    threads[index] = this_thread_id();
    co_return;
  });
  runtime.run_on_each([&](EventLoop& home, std::size_t index) -> Task<void> {
    if (index != 0) co_return;
    for (int i = 0; i < 100; ++i) {
      co_await switch_to(runtime.loop(1));
      EXPECT_EQ(this_thread_id(), threads[1]);
      EXPECT_EQ(EventLoop::current(), &runtime.loop(1));
      co_await sleep_for(0ms);  // an operation of loop 1's, on loop 1
      co_await switch_to(home);
      EXPECT_EQ(this_thread_id(), threads[0]);
      EXPECT_EQ(EventLoop::current(), &home);
    }
  });
}

TEST(SwitchTo, ToTheCurrentLoopDoesNotSuspend) {
  EventLoop loop;
  EventLoop other;
  loop.run([](EventLoop& here, EventLoop& elsewhere) -> Task<void> {
    EXPECT_TRUE(switch_to(here).await_ready());
    EXPECT_FALSE(switch_to(elsewhere).await_ready());
    co_await switch_to(here);
    EXPECT_EQ(EventLoop::current(), &here);
  }(loop, other));
}

}  // namespace
}  // namespace coring
