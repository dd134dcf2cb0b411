// Deadline: its expiry cancels every operation given its token (a recv and a sleep at
// once); resets push it back, and the expiry comes after the last of them; moving it
// earlier re-arms the timer; many resets keep one timer in flight; another token's stop
// triggers the token without counting as an expiry; destroying it while armed, even
// right before the loop, leaves nothing in flight and nothing leaked.
#include "coring/runtime/deadline.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <vector>

#include "coring/ring/prep.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"
#include "support.hpp"

namespace coring {
namespace {

using namespace std::chrono_literals;
using ring::test::Fd;
using Clock = std::chrono::steady_clock;

TEST(RuntimeDeadline, ExpiryCancelsAPendingRecvAndSleep) {
  EventLoop loop;
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  const Fd a(pair[0]);
  const Fd b(pair[1]);
  auto body = [&]() -> Task<void> {
    Deadline idle(20ms);
    std::byte buffer[16];
    auto recv = [&]() -> Task<IoResult> {
      co_return co_await io([&](ring::Sqe& sqe) {
        ring::prep_recv(sqe, a.get(), std::span(buffer), 0);
      }).with_stop(idle.token());
    };
    auto sleep = [&]() -> Task<IoResult> {
      co_return co_await sleep_for(10s).with_stop(idle.token());
    };
    auto [received, slept] = co_await when_all(recv(), sleep());
    EXPECT_EQ(received.res, -ECANCELED);
    EXPECT_EQ(received.outcome, Outcome::cancelled);
    EXPECT_EQ(slept.res, -ECANCELED);
    EXPECT_TRUE(idle.expired());
    EXPECT_TRUE(idle.token().stop_requested());
    EXPECT_GE(Clock::now(), idle.expiry());
  };
  loop.run(body());
}

TEST(RuntimeDeadline, ResetsPushItBackPastTheLastOne) {
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    Deadline idle(30ms);
    Clock::time_point last_reset;
    int resets = 0;
    // Each reset comes before the deadline it pushes back: the sleeper wakes at 10 ms
    // steps against a 30 ms deadline.
    auto keep_alive = [&]() -> Task<int> {
      for (int i = 0; i < 5; ++i) {
        (void)co_await sleep_for(10ms).with_stop(idle.token());
        if (idle.expired()) break;
        last_reset = Clock::now();
        idle.reset(30ms);
        ++resets;
      }
      co_return 0;
    };
    auto wait = [&]() -> Task<IoResult> {
      co_return co_await sleep_for(10s).with_stop(idle.token());
    };
    auto [kept, waited] = co_await when_all(keep_alive(), wait());
    (void)kept;
    EXPECT_EQ(waited.res, -ECANCELED);
    EXPECT_TRUE(idle.expired());
    // On a loaded machine a sleep may overrun the deadline and end the resets early;
    // whatever happened, the expiry came no sooner than 30 ms after the last reset.
    EXPECT_GE(resets, 1);
    EXPECT_GE(Clock::now() - last_reset, 30ms);
  };
  loop.run(body());
}

TEST(RuntimeDeadline, MovingItEarlierRearmsTheTimer) {
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    Deadline idle(1h);
    const std::uint32_t armed = loop.stats().in_flight;
    idle.reset(5ms);  // before the armed hour: a cancel and a re-arm
    const IoResult slept = co_await sleep_for(5s).with_stop(idle.token());
    EXPECT_EQ(slept.res, -ECANCELED);  // 0 if the timer had stayed armed for the hour
    EXPECT_TRUE(idle.expired());
    EXPECT_EQ(loop.stats().in_flight, armed - 1);  // the timer is done
  };
  loop.run(body());
}

TEST(RuntimeDeadline, ExtendToNeverMovesItEarlier) {
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    Deadline idle(1h);
    const Clock::time_point first = idle.expiry();
    idle.extend_to(Clock::now());
    EXPECT_EQ(idle.expiry(), first);
    idle.extend_to(first + 1h);
    EXPECT_EQ(idle.expiry(), first + 1h);
    co_return;
  };
  loop.run(body());
}

TEST(RuntimeDeadline, ManyResetsKeepOneTimerInFlight) {
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    const std::uint32_t before = loop.stats().in_flight;
    Deadline idle(1h);
    EXPECT_EQ(loop.stats().in_flight, before + 1);
    for (int i = 0; i < 10'000; ++i) {
      idle.reset(1h);
      idle.extend_to(Clock::now() + 2h);
      if (i % 1000 == 0) (void)co_await nop();  // turns of the loop in between
    }
    EXPECT_EQ(loop.stats().in_flight, before + 1);
    EXPECT_EQ(loop.stats().waits, 0U);
    EXPECT_FALSE(idle.expired());
  };
  loop.run(body());
}

TEST(RuntimeDeadline, AnotherTokensStopIsNotAnExpiry) {
  EventLoop loop;
  std::stop_source shutdown;
  auto body = [&]() -> Task<void> {
    Deadline idle(1h, shutdown.get_token());
    std::thread stopper([&] {
      std::this_thread::sleep_for(5ms);
      shutdown.request_stop();
    });
    const IoResult slept = co_await sleep_for(10s).with_stop(idle.token());
    stopper.join();
    EXPECT_EQ(slept.res, -ECANCELED);
    EXPECT_TRUE(idle.token().stop_requested());
    EXPECT_FALSE(idle.expired());
  };
  loop.run(body());
  // A token stopped before the deadline is built: stopped at once, no timer armed.
  auto stopped = [&]() -> Task<void> {
    const std::uint32_t before = loop.stats().in_flight;
    Deadline idle(1h, shutdown.get_token());
    EXPECT_TRUE(idle.token().stop_requested());
    EXPECT_FALSE(idle.expired());
    EXPECT_EQ(loop.stats().in_flight, before);
    co_return;
  };
  loop.run(stopped());
}

TEST(RuntimeDeadline, ResetAfterExpiryChangesNothing) {
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    Deadline idle(1ms);
    (void)co_await sleep_for(10s).with_stop(idle.token());
    EXPECT_TRUE(idle.expired());
    const std::uint32_t after = loop.stats().in_flight;
    idle.reset(1h);
    EXPECT_TRUE(idle.expired());
    EXPECT_TRUE(idle.token().stop_requested());
    EXPECT_EQ(loop.stats().in_flight, after);
  };
  loop.run(body());
}

TEST(RuntimeDeadline, DestroyedWhileArmedLeavesNothingInFlight) {
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    const std::uint32_t before = loop.stats().in_flight;
    std::stop_token token;
    {
      Deadline idle(1h);
      token = idle.token();
    }
    // The cancel's CQE and the timer's arrive within a few turns.
    for (int i = 0; i < 100 && loop.stats().in_flight != before; ++i) (void)co_await nop();
    EXPECT_EQ(loop.stats().in_flight, before);
    EXPECT_FALSE(token.stop_requested());  // going away is not expiring
  };
  loop.run(body());
}

// The loop's drain frees the record of a timer whose Deadline went just before it
// (LeakSanitizer checks), and a Deadline outliving its idle timer touches no loop.
TEST(RuntimeDeadline, DestroyedRightBeforeItsLoop) {
  std::optional<EventLoop> loop(std::in_place);
  const std::uint32_t before = loop->in_flight();
  {
    Deadline idle(*loop, 1h);
    EXPECT_EQ(loop->in_flight(), before + 1);
  }
  loop.reset();
  // Built outside a turn with a loop, destroyed after it: the drain cancelled the timer.
  std::optional<EventLoop> other(std::in_place);
  std::optional<Deadline> idle(std::in_place, *other, 1h);
  other.reset();
  EXPECT_FALSE(idle->expired());
  idle.reset();
}

// A timer waiting for admission (max_in_flight) has no SQE yet: moving it earlier
// rewrites its time, and destroying it must not cancel it — the loop would complete
// and free the record inside its own cancel() — but let it go out and fire at once.
TEST(RuntimeDeadline, WaitingForAdmissionItMovesAndGoes) {
  LoopOptions options;
  options.max_in_flight = 2;
  EventLoop loop(options);
  auto body = [&]() -> Task<void> {
    std::stop_source release;
    auto hold = [&]() -> Task<IoResult> {
      co_return co_await sleep_for(1h).with_stop(release.get_token());
    };
    auto run = [&]() -> Task<IoResult> {
      {
        Deadline gone(1h);
        EXPECT_EQ(loop.stats().waiting, 1U);
      }
      Deadline idle(1h);
      EXPECT_EQ(loop.stats().waiting, 2U);  // the gone one still waits, to fire at once
      idle.reset(1ms);
      release.request_stop();  // the holders end: the timers go out
      co_return co_await sleep_for(10s).with_stop(idle.token());
    };
    auto [a, b, slept] = co_await when_all(hold(), hold(), run());
    EXPECT_EQ(a.res, -ECANCELED);
    EXPECT_EQ(b.res, -ECANCELED);
    EXPECT_EQ(slept.res, -ECANCELED);  // 0 after 10 s if the hour had stayed
    for (int i = 0; i < 100 && loop.stats().in_flight > 1; ++i) (void)co_await nop();
  };
  const std::uint32_t before = loop.stats().in_flight;
  loop.run(body());
  EXPECT_EQ(loop.stats().in_flight, before);
  EXPECT_EQ(loop.stats().waiting, 0U);
}

TEST(RuntimeDeadline, OutsideALoopWithoutOneIsALogicError) {
  EXPECT_THROW(Deadline(1s), std::logic_error);
}

}  // namespace
}  // namespace coring
