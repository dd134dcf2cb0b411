// docs/embedding.md, "Other threads": work posted to an embedded loop from a plain thread.
//
// The host owns the thread and waits in its own poll(2). A worker thread, which runs no
// loop, hands results to the loop with post(fn): the function is queued under the loop's
// mutex and the loop's wake eventfd is written, which completes the loop's own read of
// it; the kernel then signals loop.notify_fd(), the host calls loop.poll(), and the turn runs
// the function on the host's thread. The coroutine waiting for the results is resumed
// from inside a posted function (on the loop's thread, through resume_soon()).
#include <poll.h>

#include <chrono>
#include <coroutine>
#include <cstdio>
#include <thread>
#include <utility>

#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/task.hpp>

using namespace std::chrono_literals;

namespace {

// Suspends the awaiting coroutine until resume() is called on the loop's thread; a
// resume() that comes first (the posts may all run before the coroutine first does)
// lets it through at once.
class Wakeup {
 public:
  bool await_ready() const noexcept { return signalled_; }
  void await_suspend(std::coroutine_handle<> waiter) noexcept { waiter_ = waiter; }
  void await_resume() const noexcept {}
  void resume(coring::EventLoop& loop) {
    signalled_ = true;
    if (waiter_) loop.resume_soon(std::exchange(waiter_, {}));
  }

 private:
  std::coroutine_handle<> waiter_;
  bool signalled_ = false;
};

coring::Task<void> wait_for_sum(Wakeup& wakeup, const long& sum, bool& done) {
  co_await wakeup;  // resumed by the worker's last post
  std::printf("coroutine: the worker's sum is %ld\n", sum);
  done = true;
}

}  // namespace

int main() {
  coring::EventLoop loop;
  Wakeup wakeup;
  long sum = 0;
  int posted = 0;
  bool done = false;
  loop.spawn(wait_for_sum(wakeup, sum, done));

  std::thread worker([&loop, &wakeup, &sum, &posted] {
    for (long i = 1; i <= 100; ++i) {
      // Runs on the loop's thread during a later turn: no lock needed for `sum`.
      loop.post([&sum, &posted, i] {
        sum += i;
        ++posted;
      });
    }
    loop.post([&loop, &wakeup] { wakeup.resume(loop); });
  });

  pollfd watched{loop.notify_fd(), POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    if (::poll(&watched, 1, 1000) < 0) break;  // the host's own wait
    if ((watched.revents & POLLIN) != 0) loop.poll();
  }
  worker.join();
  std::printf("host: %d posted functions ran, sum %ld\n", posted, sum);
  return done && posted == 100 && sum == 5050 ? 0 : 1;
}
