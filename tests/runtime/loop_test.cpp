// The core of the runtime: tasks, the loop's turn, operations in coroutine frames,
// timeouts, cancellation, admission beyond the SQ and CQ sizes, embedding, posting
// from other threads, and tearing a loop down with work in flight.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "support.hpp"

namespace coring {
namespace {

using namespace std::chrono_literals;
using ring::test::Fd;

Task<int> answer() { co_return 42; }

Task<int> add_answers() {
  const int a = co_await answer();
  const int b = co_await answer();
  co_return a + b;
}

Task<int> throws_logic_error() {
  throw std::logic_error("from a task");
  co_return 0;  // makes this a coroutine
}

TEST(RuntimeTask, ReturnsValueThroughAwaitChain) {
  EventLoop loop;
  EXPECT_EQ(loop.run(add_answers()), 84);
}

TEST(RuntimeTask, ExceptionPropagatesToAwaiterAndOutOfRun) {
  EventLoop loop;
  auto catcher = []() -> Task<std::string> {
    try {
      co_await throws_logic_error();
    } catch (const std::logic_error& e) {
      co_return e.what();
    }
    co_return "not thrown";
  };
  EXPECT_EQ(loop.run(catcher()), "from a task");
  EXPECT_THROW(loop.run(throws_logic_error()), std::logic_error);
}

Task<void> ready_void() { co_return; }

TEST(RuntimeTask, MillionSynchronousAwaitsDoNotGrowTheStack) {
  EventLoop loop;
  auto chain = []() -> Task<std::uint64_t> {
    std::uint64_t count = 0;
    for (int i = 0; i < 1'000'000; ++i) {
      co_await ready_void();
      ++count;
    }
    co_return count;
  };
  EXPECT_EQ(loop.run(chain()), 1'000'000U);
}

TEST(RuntimeTask, MoveOnlyAndLazy) {
  bool started = false;
  auto body = [](bool& flag) -> Task<void> {
    flag = true;
    co_return;
  };
  Task<void> task = body(started);
  EXPECT_FALSE(started);  // lazy: nothing runs until awaited
  Task<void> moved = std::move(task);
  EXPECT_FALSE(task.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_TRUE(moved.valid());
  EventLoop loop;
  loop.run(std::move(moved));
  EXPECT_TRUE(started);
}

TEST(RuntimeLoop, NopsCompleteThroughTheRing) {
  EventLoop loop;
  auto body = []() -> Task<int> {
    int sum = 0;
    for (int i = 0; i < 100; ++i) {
      IoResult r = co_await nop();
      sum += r.ok() ? 1 : 0;
    }
    co_return sum;
  };
  EXPECT_EQ(loop.run(body()), 100);
  EXPECT_EQ(loop.in_flight(), 1U);  // only the loop's own wake read
}

// More coroutines than SQ entries and than CQ entries, all with an operation in
// flight at once: the loop admits what fits and queues the rest, losing none.
// submit_detached(): its SQE reaches the kernel ahead of every SQE prepared after it,
// its CQE resumes nobody, and in_flight() counts it until that CQE is reaped.
// A timed turn with nothing to do waits out its timeout (the kernel's ETIME is not an
// error) and then returns having handled nothing.
TEST(RuntimeLoop, TimedTurnWithNothingToDoReturnsAfterItsTimeout) {
  EventLoop loop;
  // Twice: the first enter also submits the loop's wake read, and an enter that submits
  // reports the SQEs it took rather than the timeout.
  for (int turn = 0; turn < 2; ++turn) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(loop.run_once(20ms), 0U);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
  }
}

TEST(RuntimeLoop, DetachedRequestGoesFirstAndItsCompletionIsDropped) {
  auto pair = ring::test::make_tcp_pair();
  EventLoop loop;
  static constexpr std::string_view first = "detached;";
  static constexpr std::string_view second = "awaited";
  auto body = [&]() -> Task<std::string> {
    const bool submitted = loop.submit_detached([&](ring::Sqe& sqe) {
      ring::prep_send(sqe, pair.client.get(), std::as_bytes(std::span(first)), 0);
    });
    EXPECT_TRUE(submitted);
    EXPECT_EQ(loop.in_flight(), 2U);  // the loop's wake read and the detached send
    const IoResult sent = co_await io([&](ring::Sqe& sqe) {
      ring::prep_send(sqe, pair.client.get(), std::as_bytes(std::span(second)), 0);
    });
    EXPECT_EQ(sent.res, static_cast<int>(second.size()));
    std::string received(first.size() + second.size(), '\0');
    const IoResult got = co_await io([&](ring::Sqe& sqe) {
      ring::prep_recv(sqe, pair.server.get(), std::as_writable_bytes(std::span(received)),
                      MSG_WAITALL);
    });
    EXPECT_EQ(got.res, static_cast<int>(received.size()));
    co_return received;
  };
  EXPECT_EQ(loop.run(body()), "detached;awaited");
  EXPECT_EQ(loop.in_flight(), 1U);  // only the wake read: the detached CQE was reaped
}

TEST(RuntimeLoop, TenTimesMoreOperationsThanSqEntries) {
  LoopOptions options;
  options.entries = 8;
  EventLoop loop(options);
  int completed = 0;
  auto worker = [](int& done) -> Task<void> {
    for (int i = 0; i < 10; ++i) {
      IoResult r = co_await nop();
      if (r.ok()) ++done;
    }
  };
  auto main = [&]() -> Task<void> {
    for (int i = 0; i < 80; ++i) loop.spawn(worker(completed));
    while (completed < 800) co_await nop();
  };
  loop.run(main());
  EXPECT_EQ(completed, 800);
  EXPECT_EQ(loop.ring().cq_overflow(), 0U);
}

TEST(RuntimeTime, SleepForWaitsAtLeastTheDuration) {
  EventLoop loop;
  auto body = []() -> Task<std::chrono::nanoseconds> {
    const auto start = std::chrono::steady_clock::now();
    IoResult r = co_await sleep_for(20ms);
    EXPECT_EQ(r.res, 0);
    co_return std::chrono::steady_clock::now() - start;
  };
  EXPECT_GE(loop.run(body()), 20ms);
}

TEST(RuntimeTime, SleepUntilDeadline) {
  EventLoop loop;
  const auto deadline = std::chrono::steady_clock::now() + 15ms;
  auto body = [](std::chrono::steady_clock::time_point when) -> Task<int> {
    IoResult r = co_await sleep_until(when);
    co_return r.res;
  };
  EXPECT_EQ(loop.run(body(deadline)), 0);
  EXPECT_GE(std::chrono::steady_clock::now(), deadline);
}

// A recv on a socket nobody writes to: the linked timeout fires and the result says so.
TEST(RuntimeTime, TimeoutFiresOnIdleRecv) {
  auto pair = ring::test::make_tcp_pair();
  EventLoop loop;
  auto body = [](int fd) -> Task<IoResult> {
    std::array<std::byte, 16> buffer{};
    co_return co_await io([&](ring::Sqe& sqe) {
      ring::prep_recv(sqe, fd, buffer, 0);
    }).with_timeout(20ms);
  };
  const IoResult r = loop.run(body(pair.server.get()));
  EXPECT_EQ(r.res, -ETIMEDOUT);
  EXPECT_EQ(r.error(), std::errc::timed_out);
  EXPECT_EQ(r.outcome, Outcome::timed_out);
}

// The same with data already waiting: the request wins and the timeout does not fire.
TEST(RuntimeTime, TimeoutDoesNotFireWhenRequestCompletes) {
  auto pair = ring::test::make_tcp_pair();
  ASSERT_EQ(::send(pair.client.get(), "hi", 2, 0), 2);
  EventLoop loop;
  auto body = [](int fd) -> Task<IoResult> {
    std::array<std::byte, 16> buffer{};
    co_return co_await io([&](ring::Sqe& sqe) {
      ring::prep_recv(sqe, fd, buffer, 0);
    }).with_timeout(5s);
  };
  const auto start = std::chrono::steady_clock::now();
  const IoResult r = loop.run(body(pair.server.get()));
  EXPECT_EQ(r.res, 2);
  EXPECT_EQ(r.outcome, Outcome::completed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(RuntimeCancel, StopTokenCancelsInFlightRecv) {
  auto pair = ring::test::make_tcp_pair();
  EventLoop loop;
  std::stop_source source;
  auto receiver = [](int fd, std::stop_token token) -> Task<IoResult> {
    std::array<std::byte, 16> buffer{};
    co_return co_await io([&](ring::Sqe& sqe) {
      ring::prep_recv(sqe, fd, buffer, 0);
    }).with_stop(token);
  };
  auto body = [&]() -> Task<IoResult> {
    Task<IoResult> recv = receiver(pair.server.get(), source.get_token());
    auto stopper = [](std::stop_source& s) -> Task<void> {
      co_await sleep_for(5ms);
      s.request_stop();
    };
    loop.spawn(stopper(source));
    co_return co_await std::move(recv);
  };
  const IoResult r = loop.run(body());
  EXPECT_EQ(r.res, -ECANCELED);
  EXPECT_EQ(r.outcome, Outcome::cancelled);
}

TEST(RuntimeCancel, AlreadyStoppedTokenCompletesWithoutSubmitting) {
  EventLoop loop;
  std::stop_source source;
  source.request_stop();
  auto body = [](std::stop_token token) -> Task<IoResult> {
    co_return co_await sleep_for(10s).with_stop(token);
  };
  const auto start = std::chrono::steady_clock::now();
  const IoResult r = loop.run(body(source.get_token()));
  EXPECT_EQ(r.res, -ECANCELED);
  EXPECT_EQ(r.outcome, Outcome::cancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

// Cancellation requested from another thread reaches the loop and the kernel.
TEST(RuntimeCancel, StopFromAnotherThreadCancelsSleep) {
  EventLoop loop;
  std::stop_source source;
  std::thread stopper([&] {
    std::this_thread::sleep_for(20ms);
    source.request_stop();
  });
  auto body = [](std::stop_token token) -> Task<IoResult> {
    co_return co_await sleep_for(10s).with_stop(token);
  };
  const auto start = std::chrono::steady_clock::now();
  const IoResult r = loop.run(body(source.get_token()));
  stopper.join();
  EXPECT_EQ(r.res, -ECANCELED);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(RuntimeCancel, TenThousandCancelledReadsLeakNothing) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  Fd read_end(fds[0]);
  Fd write_end(fds[1]);
  EventLoop loop;
  int cancelled = 0;
  auto reader = [](int fd, std::stop_token token, int& count) -> Task<void> {
    std::array<std::byte, 8> buffer{};
    IoResult r =
        co_await io([&](ring::Sqe& sqe) { ring::prep_read(sqe, fd, buffer, 0); }).with_stop(token);
    if (r.res == -ECANCELED) ++count;
  };
  auto body = [&]() -> Task<void> {
    for (int round = 0; round < 100; ++round) {
      std::stop_source source;
      for (int i = 0; i < 100; ++i)
        loop.spawn(reader(read_end.get(), source.get_token(), cancelled));
      co_await nop();  // let the readers submit
      source.request_stop();
      while (cancelled < (round + 1) * 100) co_await nop();
    }
  };
  loop.run(body());
  EXPECT_EQ(cancelled, 10'000);
}

// Operations with a linked timeout that wait in the loop's queue for admission (never
// submitted) and are then stopped: each resumes once, cancelled, and the ones that did
// reach the kernel are cancelled there.
TEST(RuntimeCancel, QueuedOperationsWithTimeoutResumeOnceWhenStopped) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  Fd read_end(fds[0]);
  Fd write_end(fds[1]);
  LoopOptions options;
  options.entries = 4;
  options.max_in_flight = 6;
  EventLoop loop(options);
  constexpr int readers = 12;  // 24 SQEs against room for 6: most wait queued
  std::array<int, readers> resumed{};
  std::array<IoResult, readers> results{};
  auto reader = [](int fd, std::stop_token token, int& count, IoResult& out) -> Task<void> {
    std::array<std::byte, 8> buffer{};
    out = co_await io([&](ring::Sqe& sqe) { ring::prep_read(sqe, fd, buffer, 0); })
              .with_timeout(10s)
              .with_stop(token);
    ++count;
  };
  auto body = [&]() -> Task<void> {
    std::stop_source source;
    for (int i = 0; i < readers; ++i) {
      loop.spawn(reader(read_end.get(), source.get_token(), resumed[static_cast<std::size_t>(i)],
                        results[static_cast<std::size_t>(i)]));
    }
    co_await nop();  // the readers start; those beyond max_in_flight wait in the queue
    EXPECT_LT(loop.in_flight(), static_cast<std::uint32_t>(2 * readers));
    EXPECT_GT(loop.stats().waiting, 0U);
    source.request_stop();
    for (int turns = 0; turns < 100 && loop.in_flight() > 0; ++turns) co_await nop();
    for (int turns = 0; turns < 10; ++turns) co_await nop();  // a second resume would show
  };
  loop.run(body());
  for (std::size_t i = 0; i < readers; ++i) {
    EXPECT_EQ(resumed[i], 1) << "reader " << i;
    EXPECT_EQ(results[i].res, -ECANCELED) << "reader " << i;
    EXPECT_EQ(results[i].outcome, Outcome::cancelled) << "reader " << i;
  }
}

TEST(RuntimeLoop, SpawnedTaskExceptionIsCountedNotLost) {
  EventLoop loop;
  auto failing = []() -> Task<void> {
    co_await nop();
    throw std::runtime_error("spawned failure");
  };
  auto body = [&]() -> Task<void> {
    loop.spawn(failing());
    for (int i = 0; i < 4; ++i) co_await nop();
  };
  loop.run(body());
  EXPECT_EQ(loop.unhandled_exceptions(), 1U);
}

TEST(RuntimeLoop, PostFromAnotherThreadRunsOnLoopThread) {
  EventLoop loop;
  std::atomic<int> ran{0};
  std::thread::id ran_on;
  const auto loop_thread = std::this_thread::get_id();
  std::thread poster([&] {
    for (int i = 0; i < 1000; ++i) {
      loop.post([&] {
        ran_on = std::this_thread::get_id();
        ran.fetch_add(1, std::memory_order_relaxed);
      });
    }
  });
  auto body = [&]() -> Task<void> {
    while (ran.load(std::memory_order_relaxed) < 1000) co_await sleep_for(1ms);
  };
  loop.run(body());
  poster.join();
  EXPECT_EQ(ran.load(), 1000);
  EXPECT_EQ(ran_on, loop_thread);
}

TEST(RuntimeLoop, StopFromAnotherThreadEndsRun) {
  EventLoop loop;
  std::chrono::steady_clock::time_point stop_called;
  std::thread stopper([&] {
    std::this_thread::sleep_for(20ms);
    stop_called = std::chrono::steady_clock::now();
    loop.stop();
  });
  loop.run();
  const auto returned = std::chrono::steady_clock::now();
  stopper.join();
  // run() waited for the stop instead of returning at once (no timing margin needed:
  // the stopper reads the clock before it calls stop()).
  EXPECT_GE(returned, stop_called);
}

// Embedding: another loop polls fd(), and poll() does the work when it fires.
TEST(RuntimeLoop, EmbeddedThroughPollableFd) {
  EventLoop loop;
  bool done = false;
  auto body = [](bool& flag) -> Task<void> {
    co_await sleep_for(10ms);
    flag = true;
  };
  loop.spawn(body(done));
  const int fd = loop.notify_fd();
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  int wakeups = 0;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, 1000);
    ASSERT_GE(ready, 0);
    if (ready == 1) {
      ++wakeups;
      loop.poll();
    }
  }
  EXPECT_TRUE(done);
  EXPECT_GE(wakeups, 1);
}

// The host's side of embedding: waits on `fd` and turns the loop whenever it is
// readable, until `done()` or 5 s pass. Returns whether done() came true.
template <typename Done>
bool host_until(EventLoop& loop, int fd, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) == 1) loop.poll();
  }
  return done();
}

// post()s from a thread without a loop reach an embedded loop through notify_fd(): the
// first before the host ever turned the loop, and each later one after the turn that
// ran the one before (whose wake-up read the loop re-armed during that turn).
TEST(RuntimeLoop, EmbeddedLoopWakesForEveryPostFromAnotherThread) {
  EventLoop loop;
  const int fd = loop.notify_fd();
  std::atomic<int> ran{0};
  for (int i = 1; i <= 5; ++i) {
    std::thread poster([&] { loop.post([&] { ran.fetch_add(1); }); });
    poster.join();
    EXPECT_TRUE(host_until(loop, fd, [&] { return ran.load() == i; })) << "post " << i;
    // The turn submitted what it prepared (the wake-up's re-armed read among it): the
    // fd's signal for the next post must not depend on the poster's own write alone.
    EXPECT_EQ(loop.ring().sq_ready(), 0U) << "post " << i;
  }
}

// A task the host spawns between an embedded loop's turns signals notify_fd(): the host
// sleeps on the fd and would never run it otherwise.
TEST(RuntimeLoop, EmbeddedLoopWakesForATaskSpawnedBetweenTurns) {
  EventLoop loop;
  const int fd = loop.notify_fd();
  EXPECT_TRUE(host_until(loop, fd, [] { return true; }));
  for (int i = 0; i < 3; ++i) loop.poll();
  pollfd pfd{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 0), 0) << "an idle loop's fd is not readable";
  bool ran = false;
  loop.spawn([](bool& flag) -> Task<void> {
    flag = true;
    co_return;
  }(ran));
  EXPECT_TRUE(host_until(loop, fd, [&] { return ran; }));
}

// A stop token the host triggers between an embedded loop's turns: the cancel reaches
// the ring and the operation ends, cancelled.
TEST(RuntimeLoop, EmbeddedLoopDeliversAStopRequestedBetweenTurns) {
  EventLoop loop;
  const int fd = loop.notify_fd();
  auto pair = ring::test::make_tcp_pair();
  std::stop_source stop;
  bool done = false;
  std::int32_t res = 0;
  loop.spawn(
      [](int socket, std::stop_token token, bool& ended, std::int32_t& result) -> Task<void> {
        std::array<std::byte, 8> buffer{};
        const IoResult r = co_await io([&](ring::Sqe& sqe) {
                             ring::prep_recv(sqe, socket, buffer, 0);
                           }).with_stop(token);
        result = r.res;
        ended = true;
      }(pair.server.get(), stop.get_token(), done, res));
  for (int i = 0; i < 5; ++i) loop.poll();
  ASSERT_FALSE(done);
  stop.request_stop();
  EXPECT_TRUE(host_until(loop, fd, [&] { return done; }));
  EXPECT_EQ(res, -ECANCELED);
}

// An embedded loop on a ring with deferred task work but without TASKRUN_FLAG in the
// caller's flags: a receive that completes while the host sleeps still reaches its
// coroutine (the loop adds the flag; without it, the completion stayed in the kernel).
TEST(RuntimeLoop, EmbeddedLoopWithDeferredTaskWorkSeesItsCompletions) {
  LoopOptions options;
  options.setup_flags = ring::setup::single_issuer | ring::setup::defer_taskrun;
  EventLoop loop(options);
  const int fd = loop.notify_fd();
  auto pair = ring::test::make_tcp_pair();
  int received = 0;
  loop.spawn([](int socket, int& count) -> Task<void> {
    std::array<std::byte, 8> buffer{};
    for (int i = 0; i < 3; ++i) {
      const IoResult r =
          co_await io([&](ring::Sqe& sqe) { ring::prep_recv(sqe, socket, buffer, 0); });
      if (r.res != 1) co_return;
      ++count;
    }
  }(pair.server.get(), received));
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(::send(pair.client.get(), "x", 1, 0), 1);
    EXPECT_TRUE(host_until(loop, fd, [&] { return received == i + 1; })) << "message " << i;
  }
}

// Destroying a loop with operations in flight cancels them and waits for the kernel
// before the frames (and their buffers) go away; nothing leaks (ASan, fd check).
TEST(RuntimeLoop, DestructionWithOperationsInFlight) {
  auto pair = ring::test::make_tcp_pair();
  {
    EventLoop loop;
    auto reader = [](int fd) -> Task<void> {
      std::vector<std::byte> buffer(4096);
      co_await io([&](ring::Sqe& sqe) { ring::prep_recv(sqe, fd, buffer, 0); });
      ADD_FAILURE() << "a recv on a silent socket completed";
    };
    for (int i = 0; i < 50; ++i) loop.spawn(reader(pair.server.get()));
    loop.spawn([]() -> Task<void> { co_await sleep_for(10s); }());
    loop.poll();
    loop.poll();
    EXPECT_GT(loop.in_flight(), 50U);
  }
  // Every recv was cancelled and reaped before the frames went: none is left to take
  // a byte sent now into freed memory, so the byte is still there to read.
  ASSERT_EQ(::send(pair.client.get(), "x", 1, 0), 1);
  pollfd pfd{pair.server.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 1000), 1);
  char byte = 0;
  EXPECT_EQ(::recv(pair.server.get(), &byte, 1, MSG_DONTWAIT), 1);
  EXPECT_EQ(byte, 'x');
}

}  // namespace
}  // namespace coring

namespace coring {
namespace {

// A connection is already waiting, so the accept completes as soon as it is
// submitted; the stop requested in the same turn comes too late for the kernel, and
// the fd that arrives for the cancelled accept must be closed, not leaked (the
// fd-leak check of every test verifies it).
TEST(RuntimeCancel, AcceptedFdOfCancelledAcceptIsClosed) {
  auto listener = ring::test::make_listener();
  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<const sockaddr*>(&listener.address),
                      sizeof(listener.address)),
            0);
  EventLoop loop;
  std::stop_source source;
  IoResult result{1, 0};
  auto acceptor = [](int fd, std::stop_token token, IoResult& out) -> Task<void> {
    out = co_await io(
              [fd](ring::Sqe& sqe) { ring::prep_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC); })
              .with_stop(token)
              .with_fd_result();
  };
  auto stopper = [](std::stop_source& s) -> Task<void> {
    s.request_stop();
    co_return;
  };
  auto body = [&]() -> Task<IoResult> {
    // Both run in one later turn, in this order: the accept is prepared, then the
    // stop sends its cancel, and one enter submits both.
    loop.spawn(acceptor(listener.fd.get(), source.get_token(), result));
    loop.spawn(stopper(source));
    while (result.res == 1) co_await nop();
    co_return result;
  };
  const IoResult r = loop.run(body());
  EXPECT_EQ(r.res, -ECANCELED);
}

// Accepts whose connections are completed by the kernel only while the loop is being
// destroyed reach nobody: their fds must be closed during the drain. The accepts are
// armed first and the clients connect afterwards. On a ring without DEFER_TASKRUN the
// kernel posts those completions when this thread returns from connect(), so they
// sit in the CQ, unreaped, when the destructor starts.
TEST(RuntimeLoop, DestructionClosesFdsThatArriveForNobody) {
  auto listener = ring::test::make_listener();
  std::vector<Fd> clients;
  int accepted = 0;
  {
    LoopOptions options;
    options.setup_flags = 0;
    EventLoop loop(options);
    auto acceptor = [](int fd, int& count) -> Task<void> {
      IoResult r = co_await io([fd](ring::Sqe& sqe) {
                     ring::prep_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC);
                   }).with_fd_result();
      if (r.ok()) ++count;  // never: the loop dies before resuming anyone
    };
    for (int i = 0; i < 4; ++i) loop.spawn(acceptor(listener.fd.get(), accepted));
    loop.poll();
    ASSERT_EQ(loop.in_flight(), 5U);  // four accepts and the loop's wake read
    for (int i = 0; i < 4; ++i) {
      clients.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      ASSERT_EQ(
          ::connect(clients.back().get(), reinterpret_cast<const sockaddr*>(&listener.address),
                    sizeof(listener.address)),
          0);
    }
  }
  EXPECT_EQ(accepted, 0);
}

// Thousands of completions at once on a 4-entry CQ, with nothing bounding what is in
// flight: what the CQ cannot hold waits in the kernel's overflow list (FEAT_NODROP), the
// reap flushes it, and every completion reaches its coroutine exactly once.
TEST(RuntimeLoop, ThousandsOfCompletionsOnATinyCqEachArriveOnce) {
  LoopOptions options;
  options.entries = 2;
  options.cq_entries = 4;
  EventLoop loop(options);
  constexpr std::size_t sleepers = 5000;
  std::vector<int> arrived(sleepers, 0);
  std::uint32_t peak = 0;
  auto sleeper = [](int& mine) -> Task<void> {
    IoResult r = co_await sleep_for(20ms);
    if (r.res == 0) ++mine;
  };
  auto body = [&]() -> Task<void> {
    for (int& mine : arrived) loop.spawn(sleeper(mine));
    co_await nop();  // the sleepers start
    peak = loop.in_flight();
    for (int turns = 0; turns < 5000 && loop.in_flight() > 1; ++turns) co_await sleep_for(1ms);
  };
  loop.run(body());
  EXPECT_GE(peak, sleepers);  // all of them at once, against a CQ of 4
  for (std::size_t i = 0; i < sleepers; ++i) ASSERT_EQ(arrived[i], 1) << "sleeper " << i;
  const LoopStats stats = loop.stats();
  EXPECT_GT(stats.overflow_flushes, 0U);
  EXPECT_EQ(stats.cqes_lost, 0U);
  EXPECT_EQ(stats.waits, 0U);
  EXPECT_EQ(loop.ring().cq_overflow(), 0U);
}

// With LoopOptions::max_in_flight set, operations beyond it wait their turn in the
// loop's FIFO, counted in stats(), and all complete.
TEST(RuntimeLoop, AMaxInFlightMakesOperationsWaitAndCountsThem) {
  LoopOptions options;
  options.entries = 4;
  options.max_in_flight = 6;
  EventLoop loop(options);
  int completed = 0;
  LoopStats during;
  auto sleeper = [](int& done) -> Task<void> {
    IoResult r = co_await sleep_for(5ms);
    if (r.res == 0) ++done;
  };
  auto body = [&]() -> Task<void> {
    for (int i = 0; i < 64; ++i) loop.spawn(sleeper(completed));
    co_await nop();  // the sleepers start
    during = loop.stats();
    while (completed < 64) co_await sleep_for(1ms);
  };
  loop.run(body());
  EXPECT_EQ(completed, 64);
  EXPECT_LE(during.in_flight, 7U);  // 6, and the loop's own wake read
  EXPECT_GT(during.waiting, 50U);
  EXPECT_GT(loop.stats().waits, 50U);
  EXPECT_EQ(loop.stats().waiting, 0U);
}

// The bound counts the program's operations only, not the loop's own wake read: with
// the smallest bound, 2, an operation with a timeout (two SQEs) runs. A bound of 1 could
// never admit one and is refused, as is a CQ smaller than the SQ.
TEST(RuntimeLoop, AMaxInFlightCountsOnlyTheProgramsOperations) {
  const auto refused = [](LoopOptions options) {
    try {
      EventLoop loop(options);
    } catch (const std::system_error& e) {
      return e.code();
    }
    return std::error_code{};
  };
  EXPECT_EQ(refused(LoopOptions{.max_in_flight = 1}), std::errc::invalid_argument);
  EXPECT_EQ(refused(LoopOptions{.entries = 8, .cq_entries = 4}), ring::Errc::cq_entries_invalid);
  EventLoop loop(LoopOptions{.max_in_flight = 2});
  const IoResult r =
      loop.run([]() -> Task<IoResult> { co_return co_await nop().with_timeout(10s); }());
  EXPECT_EQ(r.res, 0);
  EXPECT_EQ(loop.stats().waits, 0U);
}

}  // namespace
}  // namespace coring

namespace coring {
namespace {

// The classification itself, including the partial case, which a test cannot provoke
// on demand (the kernel would have to cancel a request midway through its transfer).
TEST(RuntimeTime, OutcomeTellsCompletedPartialTimedOutAndCancelledApart) {
  EXPECT_EQ(detail::outcome_of(5, false), Outcome::completed);
  EXPECT_EQ(detail::outcome_of(-EPIPE, false), Outcome::completed);
  EXPECT_EQ(detail::outcome_of(-ECANCELED, false), Outcome::cancelled);
  EXPECT_EQ(detail::outcome_of(-ECANCELED, true), Outcome::timed_out);
  EXPECT_EQ(detail::outcome_of(7, true), Outcome::partial);
  EXPECT_EQ(detail::outcome_of(0, true), Outcome::completed);
}

}  // namespace
}  // namespace coring

namespace coring {
namespace {

// Regression: a post from another thread to a loop that never reaped its wake read
// again. The destructor's drain reaped the read's successful completion, re-armed it
// after the cancel-all had gone by, and then waited for ever for that read.
TEST(RuntimeLoop, DestructionAfterUnreapedCrossThreadWakeReturns) {
  for (int i = 0; i < 20; ++i) {
    auto loop = std::make_unique<EventLoop>();
    bool ran = false;
    std::thread([&] { loop->post([&] { ran = true; }); }).join();
    loop.reset();       // returns: the wake read is not re-armed during the drain
    EXPECT_FALSE(ran);  // posted work a destroyed loop never ran is dropped, not run late
  }
}

}  // namespace
}  // namespace coring

namespace coring {
namespace {

// send_zc posts two CQEs: the byte count (with F_MORE) and, once the kernel no longer
// needs the buffer, a notification. The awaiting coroutine must resume only after the
// notification (its buffer may be freed then), with the byte count as its result.
TEST(RuntimeLoop, SendZcResumesAfterNotificationWithByteCount) {
  auto pair = ring::test::make_tcp_pair();
  EventLoop loop;
  CORING_REQUIRE_OP(loop.ring(), ring::Op::send_zc);
  auto body = [](int fd) -> Task<IoResult> {
    std::vector<std::byte> payload(4096, std::byte{0x5a});
    co_return co_await io([&](ring::Sqe& sqe) { ring::prep_send_zc(sqe, fd, payload, 0, 0); });
  };
  const IoResult r = loop.run(body(pair.client.get()));
  EXPECT_EQ(r.res, 4096);
  EXPECT_EQ(r.flags & ring::cqe_flags::notif, 0U);
  EXPECT_EQ(loop.in_flight(), 1U);  // nothing of the send left: only the wake read
  std::vector<std::byte> received(4096);
  std::size_t got = 0;
  while (got < received.size()) {
    const ssize_t n = ::recv(pair.server.get(), received.data() + got, received.size() - got, 0);
    ASSERT_GT(n, 0);
    got += static_cast<std::size_t>(n);
  }
  EXPECT_EQ(received, std::vector<std::byte>(4096, std::byte{0x5a}));
}

}  // namespace
}  // namespace coring

#ifndef NDEBUG
namespace coring {
namespace {

// An operation record whose author reads its result too early.
class EarlyReader final : public detail::AwaitableOp {
 public:
  EarlyReader() noexcept : AwaitableOp(&prep_fn, nullptr) {}
  [[nodiscard]] IoResult read() const noexcept { return result(); }

 private:
  static void prep_fn(Operation& /*self*/, std::span<ring::Sqe* const> sqes) noexcept {
    ring::prep_nop(*sqes[0]);
  }
};

// Debug builds poison the fields a record leaves unwritten on the hot path, and
// result() asserts that a CQE wrote them: garbage is never mistaken for a result.
TEST(OperationDeathTest, AResultReadBeforeItsCqeAsserts) {
  EarlyReader op;
  EXPECT_DEATH((void)op.read(), "before its CQE");
}

}  // namespace
}  // namespace coring
#endif
