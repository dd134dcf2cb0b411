// docs/runtime.md, "Threads and multiple cores": a Runtime of two loops, a Channel
// between them, post() from a plain thread, and spawn_blocking().
//
// Each loop of a Runtime runs on its own thread. Here loop 0 produces numbers into a
// bounded Channel and loop 1 sums them; a send that finds the channel full suspends
// until the other loop makes room, and each side is resumed on its own loop.
// spawn_blocking() runs a function on a small thread pool and co_awaits its value.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <optional>
#include <thread>

#include <coring/runtime/blocking.hpp>
#include <coring/runtime/channel.hpp>
#include <coring/runtime/event.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/runtime.hpp>
#include <coring/runtime/task.hpp>

using coring::Task;

constexpr int count = 1000;

Task<void> produce(coring::Channel<int>& channel) {
  for (int i = 1; i <= count; ++i) co_await channel.send(i);
  channel.close();  // the consumer's recv() returns nullopt once the buffer is empty
}

Task<void> consume(coring::Channel<int>& channel, long& sum) {
  while (std::optional<int> value = co_await channel.recv()) sum += *value;
}

Task<void> nothing() { co_return; }

Task<void> compute_off_the_loop(coring::Event& ready, int& result) {
  co_await ready.wait();
  result = co_await coring::spawn_blocking([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // stands for a slow call
    return 6 * 7;
  });
}

int main() {
  coring::RuntimeOptions options;
  options.threads = 2;  // one loop per thread; the default is one per CPU
  coring::Runtime runtime(options);
  coring::Channel<int> channel(16);
  long sum = 0;
  runtime.run_on_each([&](coring::EventLoop&, std::size_t index) -> Task<void> {
    if (index == 0) return produce(channel);
    return consume(channel, sum);
  });
  std::printf("sum over the channel: %ld\n", sum);
  if (sum != static_cast<long>(count) * (count + 1) / 2) return 1;

  // post() from a thread that runs no loop: the function runs on loop 1's thread.
  std::atomic<bool> on_loop_thread{false};
  coring::Event posted;
  std::thread([&] {
    runtime.loop(1).post([&] {
      on_loop_thread = coring::EventLoop::current() == &runtime.loop(1);
      posted.set();
    });
  }).join();

  // Blocking work off the loop; the coroutine resumes on its own loop with the value.
  int computed = 0;
  runtime.run_on_each([&](coring::EventLoop&, std::size_t index) -> Task<void> {
    if (index != 1) return nothing();
    return compute_off_the_loop(posted, computed);
  });
  std::printf("posted ran on loop 1: %s; spawn_blocking returned %d\n",
              on_loop_thread ? "yes" : "no", computed);
  return on_loop_thread && computed == 42 ? 0 : 1;
}
