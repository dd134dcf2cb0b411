// Structured concurrency: when_all, when_any and TaskScope. Children run at once on
// one loop; failures surface only after every child has finished; when_any cancels
// its losers through their stop token and waits for them; a scope joins every task
// spawned in it. Timing checks compare against the sum of the sleeps (concurrency) or
// against a 10 s sleep that cancellation must cut short, never against tight bounds.
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/scope.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"
#include "coring/runtime/when_any.hpp"
#include "support.hpp"

namespace coring {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Sleeps, notes its id in `finished`, returns `value`.
Task<int> int_after(std::chrono::milliseconds delay, int value, std::vector<int>& finished) {
  co_await sleep_for(delay);
  finished.push_back(value);
  co_return value;
}

Task<std::string> string_after(std::chrono::milliseconds delay, std::string value,
                               std::vector<int>& finished, int id) {
  co_await sleep_for(delay);
  finished.push_back(id);
  co_return value;
}

Task<void> void_after(std::chrono::milliseconds delay, std::vector<int>& finished, int id) {
  co_await sleep_for(delay);
  finished.push_back(id);
}

Task<int> throw_after(std::chrono::milliseconds delay, const char* message) {
  co_await sleep_for(delay);
  throw std::runtime_error(message);
}

// Sleeps 10 s unless stopped; returns the sleep's res (-ECANCELED when stopped).
Task<int> long_sleep(std::stop_token stop) {
  IoResult r = co_await sleep_for(10s).with_stop(std::move(stop));
  co_return r.res;
}

// --- when_all ---------------------------------------------------------------------

TEST(RuntimeWhenAll, ValuesInArgumentOrderWhateverTheFinishingOrder) {
  EventLoop loop;
  std::vector<int> finished;
  auto body = [&]() -> Task<std::tuple<int, std::string, std::monostate>> {
    co_return co_await when_all(int_after(40ms, 1, finished), string_after(5ms, "two", finished, 2),
                                void_after(20ms, finished, 3));
  };
  const auto [one, two, three] = loop.run(body());
  EXPECT_EQ(one, 1);
  EXPECT_EQ(two, "two");
  EXPECT_EQ(three, std::monostate{});
  EXPECT_EQ(finished, (std::vector<int>{2, 3, 1}));
}

TEST(RuntimeWhenAll, VectorOfVoidTasksCompletesAfterAllOfThem) {
  EventLoop loop;
  std::vector<int> finished;
  auto body = [&]() -> Task<std::size_t> {
    std::vector<Task<void>> tasks;
    for (int i = 0; i < 10; ++i)
      tasks.push_back(void_after(std::chrono::milliseconds(10 - i), finished, i));
    co_await when_all(std::move(tasks));
    co_return finished.size();  // what had finished when when_all resumed us
  };
  EXPECT_EQ(loop.run(body()), 10U);
  EXPECT_EQ(finished.front(), 9);  // the shortest sleep: they ran concurrently
}

// Three 200 ms sleeps take about 200 ms together, not 600: the children overlap. (Long
// sleeps, so that a loaded CI machine would have to stall the loop for 400 ms to fail it.)
TEST(RuntimeWhenAll, ChildrenRunConcurrently) {
  EventLoop loop;
  std::vector<int> finished;
  auto body = [&]() -> Task<void> {
    co_await when_all(void_after(200ms, finished, 1), void_after(200ms, finished, 2),
                      void_after(200ms, finished, 3));
  };
  const auto start = Clock::now();
  loop.run(body());
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(finished.size(), 3U);
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 600ms);
}

// A child that fails at once does not cut the others short: the exception reaches
// the parent only when the 40 ms and 80 ms sleepers have finished.
TEST(RuntimeWhenAll, ExceptionRethrownOnlyAfterEveryChildFinished) {
  EventLoop loop;
  std::vector<int> finished;
  auto body = [&]() -> Task<std::string> {
    try {
      co_await when_all(void_after(40ms, finished, 1), throw_after(0ms, "boom"),
                        void_after(80ms, finished, 2));
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(finished, (std::vector<int>{1, 2}));
      co_return e.what();
    }
    co_return "no exception";
  };
  const auto start = Clock::now();
  EXPECT_EQ(loop.run(body()), "boom");
  EXPECT_GE(Clock::now() - start, 80ms);
}

TEST(RuntimeWhenAll, FirstExceptionInTimeOrderIsRethrown) {
  EventLoop loop;
  std::vector<int> finished;
  auto body = [&]() -> Task<void> {
    co_await when_all(throw_after(40ms, "late"), throw_after(5ms, "early"),
                      int_after(20ms, 3, finished));
  };
  try {
    loop.run(body());
    ADD_FAILURE() << "when_all did not rethrow";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "early");
  }
  EXPECT_EQ(finished, (std::vector<int>{3}));
}

// A thousand children all start in the same turn (all are in flight together), and
// their values come back in the vector's order.
TEST(RuntimeWhenAll, VectorOfThousandTasks) {
  EventLoop loop;
  int running = 0;
  int most_running = 0;
  auto child = [](int i, int& now, int& most) -> Task<int> {
    ++now;
    most = std::max(most, now);
    co_await sleep_for(1ms);
    --now;
    co_return i* i;
  };
  auto body = [&]() -> Task<std::vector<int>> {
    std::vector<Task<int>> tasks;
    for (int i = 0; i < 1000; ++i) tasks.push_back(child(i, running, most_running));
    co_return co_await when_all(std::move(tasks));
  };
  const std::vector<int> values = loop.run(body());
  ASSERT_EQ(values.size(), 1000U);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(values[static_cast<std::size_t>(i)], i * i);
  EXPECT_EQ(most_running, 1000);
  EXPECT_EQ(running, 0);
}

// Children that never suspend: when_all completes in the turn it started, and an
// empty when_all completes at once.
TEST(RuntimeWhenAll, SynchronousAndEmptyChildren) {
  EventLoop loop;
  auto ready = [](int v) -> Task<int> { co_return v; };
  auto body = [&]() -> Task<int> {
    auto [a, b] = co_await when_all(ready(20), ready(22));
    const std::vector<int> none = co_await when_all(std::vector<Task<int>>{});
    co_await when_all();
    co_return a + b + static_cast<int>(none.size());
  };
  EXPECT_EQ(loop.run(body()), 42);
}

// --- when_any ---------------------------------------------------------------------

TEST(RuntimeWhenAny, FirstToFinishWinsWithItsIndexAndValue) {
  EventLoop loop;
  std::vector<int> finished;
  auto sleeper = [&](std::chrono::milliseconds delay, int value) {
    return [&finished, delay, value](std::stop_token stop) -> Task<int> {
      IoResult r = co_await sleep_for(delay).with_stop(stop);
      finished.push_back(value);
      co_return r.res == 0 ? value : r.res;
    };
  };
  auto body = [&]() -> Task<WhenAnyResult<int>> {
    co_return co_await when_any(sleeper(10s, 100), sleeper(10ms, 200), sleeper(10s, 300));
  };
  const auto start = Clock::now();
  const WhenAnyResult<int> result = loop.run(body());
  EXPECT_EQ(result.index, 1U);
  EXPECT_EQ(result.value, 200);
  EXPECT_EQ(finished.size(), 3U);  // the losers were joined
  EXPECT_LT(Clock::now() - start, 2s);
}

// The losers have a 10 s sleep and a recv on a silent socket in flight: both are
// cancelled in the kernel (-ECANCELED), and when_any returns only after both losers
// have seen it.
TEST(RuntimeWhenAny, LosersInFlightAreCancelledAndJoined) {
  auto pair = ring::test::make_tcp_pair();
  EventLoop loop;
  int sleep_res = 1;
  int recv_res = 1;
  auto body = [&]() -> Task<WhenAnyResult<int>> {
    auto result = co_await when_any(
        [&](std::stop_token stop) -> Task<int> {
          sleep_res = co_await long_sleep(stop);
          co_return 1;
        },
        [&](std::stop_token stop) -> Task<int> {
          std::array<std::byte, 16> buffer{};
          IoResult r = co_await io([&](ring::Sqe& sqe) {
                         ring::prep_recv(sqe, pair.server.get(), buffer, 0);
                       }).with_stop(stop);
          recv_res = r.res;
          co_return 2;
        },
        [](std::stop_token) -> Task<int> {
          co_await sleep_for(10ms);
          co_return 3;
        });
    EXPECT_EQ(sleep_res, -ECANCELED);  // already, when when_any resumes us
    EXPECT_EQ(recv_res, -ECANCELED);
    co_return result;
  };
  const auto start = Clock::now();
  const auto result = loop.run(body());
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_EQ(result.index, 2U);
  EXPECT_EQ(result.value, 3);
  EXPECT_EQ(sleep_res, -ECANCELED);
  EXPECT_EQ(recv_res, -ECANCELED);
}

TEST(RuntimeWhenAny, DifferentValueTypesGiveAVariant) {
  EventLoop loop;
  auto body = []() -> Task<WhenAnyResult<std::variant<int, std::string, std::monostate>>> {
    co_return co_await when_any(
        [](std::stop_token stop) { return long_sleep(stop); },
        [](std::stop_token) -> Task<std::string> {
          co_await sleep_for(5ms);
          co_return "fast";
        },
        [](std::stop_token stop) -> Task<void> { co_await sleep_for(10s).with_stop(stop); });
  };
  const auto result = loop.run(body());
  EXPECT_EQ(result.index, 1U);
  ASSERT_EQ(result.value.index(), 1U);
  EXPECT_EQ(std::get<1>(result.value), "fast");
}

// The winner throws: the exception comes out of when_any after the loser was
// cancelled and finished.
TEST(RuntimeWhenAny, WinnerExceptionRethrownAfterLosersJoined) {
  EventLoop loop;
  int loser_res = 1;
  auto body = [&]() -> Task<std::string> {
    try {
      co_await when_any([](std::stop_token) { return throw_after(5ms, "winner failed"); },
                        [&](std::stop_token stop) -> Task<int> {
                          loser_res = co_await long_sleep(stop);
                          co_return 0;
                        });
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(loser_res, -ECANCELED);
      co_return e.what();
    }
    co_return "no exception";
  };
  const auto start = Clock::now();
  EXPECT_EQ(loop.run(body()), "winner failed");
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_EQ(loser_res, -ECANCELED);
}

// A loser that reports its cancellation by throwing does not displace the winner.
TEST(RuntimeWhenAny, LoserExceptionDoesNotReplaceTheWinner) {
  EventLoop loop;
  auto body = []() -> Task<WhenAnyResult<int>> {
    co_return co_await when_any(
        [](std::stop_token stop) -> Task<int> {
          IoResult r = co_await sleep_for(10s).with_stop(stop);
          if (r.res == -ECANCELED) throw std::runtime_error("cancelled");
          co_return 0;
        },
        [](std::stop_token) -> Task<int> {
          co_await sleep_for(5ms);
          co_return 5;
        });
  };
  const auto result = loop.run(body());
  EXPECT_EQ(result.index, 1U);
  EXPECT_EQ(result.value, 5);
}

// The outer token stops every child; the first of them to finish is the result.
TEST(RuntimeWhenAny, OuterStopTokenCancelsAllChildren) {
  EventLoop loop;
  std::stop_source outer;
  std::vector<int> results;
  auto child = [&](std::stop_token stop) -> Task<int> {
    const int res = co_await long_sleep(stop);
    results.push_back(res);
    co_return res;
  };
  auto stopper = [](std::stop_source& source) -> Task<void> {
    co_await sleep_for(20ms);
    source.request_stop();
  };
  auto body = [&]() -> Task<WhenAnyResult<int>> {
    loop.spawn(stopper(outer));
    co_return co_await when_any(outer.get_token(), child, child, child);
  };
  const auto start = Clock::now();
  const auto result = loop.run(body());
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_LT(result.index, 3U);
  EXPECT_EQ(result.value, -ECANCELED);
  EXPECT_EQ(results, (std::vector<int>{-ECANCELED, -ECANCELED, -ECANCELED}));
}

TEST(RuntimeWhenAny, OuterStopFromAnotherThread) {
  EventLoop loop;
  std::stop_source outer;
  std::thread stopper([&] {
    std::this_thread::sleep_for(20ms);
    outer.request_stop();
  });
  auto body = [&]() -> Task<WhenAnyResult<int>> {
    co_return co_await when_any(outer.get_token(), long_sleep, long_sleep);
  };
  const auto start = Clock::now();
  const auto result = loop.run(body());
  stopper.join();
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_EQ(result.value, -ECANCELED);
}

// --- TaskScope --------------------------------------------------------------------

TEST(RuntimeScope, JoinWaitsForEverySpawnedTask) {
  EventLoop loop;
  int done = 0;
  auto worker = [](int i, int& count) -> Task<void> {
    co_await sleep_for(std::chrono::milliseconds(i % 10));
    ++count;
  };
  auto body = [&]() -> Task<void> {
    TaskScope scope;
    for (int i = 0; i < 100; ++i) scope.spawn(worker(i, done));
    EXPECT_EQ(scope.active(), 100U);
    EXPECT_EQ(done, 0);  // spawned tasks start on the next turn
    co_await scope.join();
    EXPECT_EQ(done, 100);
    EXPECT_EQ(scope.active(), 0U);
    EXPECT_EQ(scope.failures(), 0U);
  };
  loop.run(body());
  EXPECT_EQ(done, 100);
}

TEST(RuntimeScope, JoinRethrowsFirstExceptionAndCountsTheRest) {
  EventLoop loop;
  int good = 0;
  auto fails = [](std::chrono::milliseconds delay, const char* message) -> Task<void> {
    co_await throw_after(delay, message);
  };
  auto succeeds = [](int& count) -> Task<void> {
    co_await sleep_for(30ms);
    ++count;
  };
  auto body = [&]() -> Task<std::string> {
    TaskScope scope;
    scope.spawn(fails(20ms, "third"));
    scope.spawn(succeeds(good));
    scope.spawn(fails(1ms, "first"));
    scope.spawn(fails(10ms, "second"));
    scope.spawn(succeeds(good));
    std::string what = "no exception";
    try {
      co_await scope.join();
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    EXPECT_EQ(good, 2);
    EXPECT_EQ(scope.failures(), 3U);
    co_await scope.join();  // the failure was delivered once: this one does not throw
    co_return what;
  };
  EXPECT_EQ(loop.run(body()), "first");
}

TEST(RuntimeScope, StopTokenCancelsLongSleeps) {
  EventLoop loop;
  std::vector<int> results;
  auto sleeper = [](std::stop_token stop, std::vector<int>& out) -> Task<void> {
    out.push_back(co_await long_sleep(std::move(stop)));
  };
  auto stopper = [](TaskScope& scope) -> Task<void> {
    co_await sleep_for(10ms);
    scope.request_stop();
  };
  auto body = [&]() -> Task<void> {
    TaskScope scope;
    for (int i = 0; i < 10; ++i) scope.spawn(sleeper(scope.get_token(), results));
    scope.spawn(stopper(scope));
    co_await scope.join();
    EXPECT_TRUE(scope.stop_requested());
  };
  const auto start = Clock::now();
  loop.run(body());
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_EQ(results, std::vector<int>(10, -ECANCELED));
}

TEST(RuntimeScope, StopFromAnotherThreadCancelsTasks) {
  EventLoop loop;
  std::vector<int> results;
  TaskScope* shared = nullptr;
  std::atomic<bool> ready{false};
  auto sleeper = [](std::stop_token stop, std::vector<int>& out) -> Task<void> {
    out.push_back(co_await long_sleep(std::move(stop)));
  };
  std::thread stopper([&] {
    while (!ready.load(std::memory_order_acquire)) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(10ms);
    shared->request_stop();
  });
  auto body = [&]() -> Task<void> {
    TaskScope scope;
    for (int i = 0; i < 4; ++i) scope.spawn(sleeper(scope.get_token(), results));
    shared = &scope;
    ready.store(true, std::memory_order_release);
    co_await scope.join();
  };
  const auto start = Clock::now();
  loop.run(body());
  stopper.join();
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_EQ(results, std::vector<int>(4, -ECANCELED));
}

// Each outer task joins a scope of its own; the outer join sees all 25 leaves done,
// and each inner join saw its own 5.
TEST(RuntimeScope, NestedScopes) {
  EventLoop loop;
  int leaves = 0;
  int inner_joins_complete = 0;
  auto leaf = [](int i, int& count) -> Task<void> {
    co_await sleep_for(std::chrono::milliseconds(1 + i % 3));
    ++count;
  };
  auto branch = [&](int b) -> Task<void> {
    TaskScope inner;
    int mine = 0;
    for (int i = 0; i < 5; ++i) inner.spawn(leaf(b + i, mine));
    co_await inner.join();
    if (mine == 5) ++inner_joins_complete;
    leaves += mine;
  };
  auto body = [&]() -> Task<void> {
    TaskScope outer;
    for (int b = 0; b < 5; ++b) outer.spawn(branch(b));
    co_await outer.join();
  };
  loop.run(body());
  EXPECT_EQ(leaves, 25);
  EXPECT_EQ(inner_joins_complete, 5);
}

// A task of the scope spawns another into it while join() waits: join waits for that one too.
TEST(RuntimeScope, TasksSpawnedWhileJoiningAreJoined) {
  EventLoop loop;
  std::vector<int> finished;
  auto body = [&]() -> Task<void> {
    TaskScope scope;
    auto spawner = [](TaskScope& s, std::vector<int>& out) -> Task<void> {
      co_await sleep_for(5ms);
      s.spawn(void_after(20ms, out, 2));
      out.push_back(1);
    };
    scope.spawn(spawner(scope, finished));
    co_await scope.join();
    EXPECT_EQ(finished, (std::vector<int>{1, 2}));
    co_await scope.join();  // nothing left: completes at once
  };
  loop.run(body());
  EXPECT_EQ(finished, (std::vector<int>{1, 2}));
}

#ifndef NDEBUG
// Destroying a scope whose tasks are still running is a programmer error, asserted
// (only teardown of the loop may do it).
TEST(RuntimeScope, DestroyingScopeWithRunningTasksAsserts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto forgets_to_join = []() -> Task<void> {
    TaskScope scope;
    scope.spawn([]() -> Task<void> { co_await sleep_for(10s); }());
    co_await nop();
  };
  EXPECT_DEATH(
      {
        EventLoop loop;
        loop.run(forgets_to_join());
      },
      "join them");
}
#endif

// A loop destroyed while spawned tasks wait on a scope, a when_all and a when_any
// whose children have operations in flight: the loop drains the operations, then the
// parents destroy their suspended children with them (ASan: no leak, no use after free;
// a debug build would assert if a parent were destroyed with children outside teardown).
Task<int> recv_forever(int fd) {
  std::array<std::byte, 64> buffer{};
  IoResult r = co_await io([&](ring::Sqe& sqe) { ring::prep_recv(sqe, fd, buffer, 0); });
  co_return r.res;
}

Task<void> count_after_recv(int fd, int& count) {
  co_await recv_forever(fd);
  ++count;
}

TEST(RuntimeScope, LoopDestroyedWithStructuredWorkInFlight) {
  auto pair = ring::test::make_tcp_pair();
  const int fd = pair.server.get();
  int finished = 0;
  {
    EventLoop loop;
    auto in_scope = [&]() -> Task<void> {
      TaskScope scope;
      scope.spawn(count_after_recv(fd, finished));
      scope.spawn(count_after_recv(fd, finished));
      co_await scope.join();
      ++finished;
    };
    auto in_when_all = [&]() -> Task<void> {
      co_await when_all(recv_forever(fd), long_sleep({}));
      ++finished;
    };
    auto in_when_any = [&]() -> Task<void> {
      co_await when_any([fd](std::stop_token) { return recv_forever(fd); },
                        [](std::stop_token stop) { return long_sleep(stop); });
      ++finished;
    };
    loop.spawn(in_scope());
    loop.spawn(in_when_all());
    loop.spawn(in_when_any());
    for (int i = 0; i < 3; ++i) loop.poll();
    EXPECT_GE(loop.in_flight(), 6U);  // 2 + 2 + 2 children's operations
  }
  EXPECT_EQ(finished, 0);
}

}  // namespace
}  // namespace coring
