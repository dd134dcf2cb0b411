// docs/runtime.md, "Structured concurrency": when_all, when_any and TaskScope on one loop.
//
// when_all runs tasks together and waits for every one. when_any hands each child the
// same std::stop_token; the first child to finish wins, the token is triggered so the
// others' operations are cancelled, and when_any returns only after the losers have
// finished too. A TaskScope joins every task spawned into it.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <stop_token>
#include <tuple>

#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/scope.hpp>
#include <coring/runtime/task.hpp>
#include <coring/runtime/time.hpp>
#include <coring/runtime/when_all.hpp>
#include <coring/runtime/when_any.hpp>

using namespace std::chrono_literals;
using coring::Task;

// A stand-in for a request that takes `delay` to answer.
Task<int> answer_after(std::chrono::milliseconds delay, int value, std::stop_token stop = {}) {
  const coring::IoResult r = co_await coring::sleep_for(delay).with_stop(stop);
  co_return r.res == -ECANCELED ? -1 : value;
}

Task<int> demo() {
  // Both sleeps are in flight together: about 30 ms in all, not 50.
  const auto start = std::chrono::steady_clock::now();
  auto [a, b] = co_await coring::when_all(answer_after(20ms, 1), answer_after(30ms, 2));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  std::printf("when_all: %d and %d in %lld ms\n", a, b, static_cast<long long>(took.count()));
  if (a != 1 || b != 2) co_return 1;

  // The fast child wins; the slow one is cancelled (its sleep ends with -ECANCELED) and
  // joined before when_any returns.
  auto first =
      co_await coring::when_any([](std::stop_token stop) { return answer_after(10ms, 10, stop); },
                                [](std::stop_token stop) { return answer_after(10s, 20, stop); });
  std::printf("when_any: child %zu won with %d\n", first.index, first.value);
  if (first.index != 0 || first.value != 10) co_return 1;

  // Tasks spawned into a scope run detached, but join() waits for all of them.
  coring::TaskScope scope;
  int finished = 0;
  for (int i = 0; i < 3; ++i) {
    scope.spawn([](int& count, std::chrono::milliseconds delay) -> Task<void> {
      co_await coring::sleep_for(delay);
      ++count;
    }(finished, std::chrono::milliseconds(5 * (i + 1))));
  }
  co_await scope.join();
  std::printf("scope: %d tasks joined\n", finished);
  co_return finished == 3 ? 0 : 1;
}

int main() {
  coring::EventLoop loop;
  return loop.run(demo());
}
