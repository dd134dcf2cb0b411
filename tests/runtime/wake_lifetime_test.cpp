// A woken waiter may destroy what woke it at once. The ordinary case is an Event or a
// Channel in the waiter's own coroutine frame, set, sent to or closed from another
// loop: the waiter resumes on its loop's thread and returns, and the frame goes while
// the other thread is still inside set(), send() or close(). Each test repeats that
// round thousands of times across the two loops of a Runtime (or from a plain thread);
// ASan (use after free) and TSan (a race with operator delete) catch a waker that
// touches the object after the waiter could have resumed. CI runs these under both.
#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <thread>

#include "coring/runtime/blocking.hpp"
#include "coring/runtime/channel.hpp"
#include "coring/runtime/event.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/runtime.hpp"
#include "coring/runtime/task.hpp"
#include "support.hpp"

namespace coring {
namespace {

constexpr int rounds = 20000;

RuntimeOptions two_loops() {
  RuntimeOptions options;
  options.threads = 2;
  return options;
}

// Runs `round(loop 0)` `count` times on loop 1 of a two-loop Runtime and returns how
// many rounds completed.
template <typename Round>
int run_rounds(int count, Round round) {
  Runtime runtime(two_loops());
  int completed = 0;
  runtime.run_on_each([&](EventLoop&, std::size_t index) -> Task<void> {
    if (index != 1) co_return;
    for (int i = 0; i < count; ++i) {
      if (co_await round(runtime.loop(0))) ++completed;
    }
  });
  return completed;
}

// The Event lives in this frame; loop 0 sets it.
Task<bool> event_round(EventLoop& other) {
  Event event;
  other.post([&event] { event.set(); });
  co_await event.wait();
  co_return true;
}

TEST(WakeLifetime, EventSetFromAnotherLoopMayBeDestroyedByTheWaiter) {
  EXPECT_EQ(run_rounds(rounds, event_round), rounds);
}

// The same with the setter on a plain thread, which wakes the loop through its eventfd.
TEST(WakeLifetime, EventSetFromAPlainThreadMayBeDestroyedByTheWaiter) {
  EventLoop loop;
  auto body = [&]() -> Task<int> {
    int completed = 0;
    for (int i = 0; i < rounds / 4; ++i) {
      auto event = std::make_unique<Event>();
      std::thread setter([raw = event.get()] { raw->set(); });
      co_await event->wait();
      event.reset();
      setter.join();  // only now: the join must not be what keeps set() safe
      ++completed;
    }
    co_return completed;
  };
  EXPECT_EQ(loop.run(body()), rounds / 4);
}

// A receiver's Channel, sent to from loop 0: the value goes straight to the waiting
// receiver, which returns and destroys the Channel.
Task<bool> channel_send_round(EventLoop& other) {
  Channel<int> channel(1);
  other.post([&channel, &other] {
    other.spawn([](Channel<int>& ch) -> Task<void> { (void)co_await ch.send(7); }(channel));
  });
  std::optional<int> value = co_await channel.recv();
  co_return value == 7;
}

TEST(WakeLifetime, ChannelSendFromAnotherLoopMayFreeTheReceiversChannel) {
  EXPECT_EQ(run_rounds(rounds, channel_send_round), rounds);
}

// A sender's Channel, full; loop 0 receives, which moves the waiting sender's value in
// and wakes it, and the sender returns and destroys the Channel. The receiver counts
// what it got outside the frame, which is gone by then.
std::atomic<int> ones_received{0};

Task<bool> channel_recv_round(EventLoop& other) {
  Channel<int> channel(1);
  (void)co_await channel.send(1);  // fills the buffer
  other.post([&channel, &other] {
    other.spawn([](Channel<int>& ch) -> Task<void> {
      if (co_await ch.recv() == 1) ones_received.fetch_add(1, std::memory_order_relaxed);
    }(channel));
  });
  co_return co_await channel.send(2);  // suspends until loop 0 takes the 1
}

TEST(WakeLifetime, ChannelRecvFromAnotherLoopMayFreeTheSendersChannel) {
  ones_received.store(0);
  EXPECT_EQ(run_rounds(rounds, channel_recv_round), rounds);
  EXPECT_EQ(ones_received.load(), rounds);
}

// close() from loop 0 wakes the waiting receiver with nullopt.
Task<bool> channel_close_round(EventLoop& other) {
  Channel<int> channel(1);
  other.post([&channel] { channel.close(); });
  co_return !(co_await channel.recv()).has_value();
}

TEST(WakeLifetime, ChannelCloseFromAnotherLoopMayFreeTheReceiversChannel) {
  EXPECT_EQ(run_rounds(rounds, channel_close_round), rounds);
}

// A pool in the awaiting frame, destroyed as soon as its one job has resumed the frame.
TEST(WakeLifetime, BlockingPoolMayBeDestroyedByTheResumedAwaiter) {
  EventLoop loop;
  auto body = [&]() -> Task<int> {
    int completed = 0;
    for (int i = 0; i < 500; ++i) {
      auto pool = std::make_unique<BlockingPool>(1);
      completed += co_await spawn_blocking(*pool, [] { return 1; });
      pool.reset();
    }
    co_return completed;
  };
  EXPECT_EQ(loop.run(body()), 500);
}

// A plain thread posts to a loop whose owner destroys it as soon as the work has run.
TEST(WakeLifetime, LoopMayBeDestroyedAsSoonAsPostedWorkRan) {
  int completed = 0;
  for (int i = 0; i < 500; ++i) {
    auto loop = std::make_unique<EventLoop>();
    std::atomic<bool> ran{false};
    std::thread poster(
        [&loop, &ran] { loop->post([&ran] { ran.store(true, std::memory_order_release); }); });
    while (!ran.load(std::memory_order_acquire)) loop->run_once(std::chrono::milliseconds(1));
    loop.reset();
    poster.join();
    ++completed;
  }
  EXPECT_EQ(completed, 500);
}

}  // namespace
}  // namespace coring
