// docs/runtime.md, "Embedding": the loop inside someone else's poll(2) loop.
//
// loop.notify_fd() is an eventfd registered with the ring: it becomes readable when a CQE is
// posted, and the loop also makes it readable after a turn that left work ready. The
// host polls it with its own descriptors and calls loop.poll(), which never blocks,
// when it fires. examples/embed_poll.cpp is a longer version.
#include <poll.h>

#include <chrono>
#include <cstdio>

#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/task.hpp>
#include <coring/runtime/time.hpp>

using namespace std::chrono_literals;

int main() {
  coring::EventLoop loop;
  int ticks = 0;
  loop.spawn([](int& count) -> coring::Task<void> {
    for (int i = 0; i < 3; ++i) {
      co_await coring::sleep_for(5ms);
      ++count;
    }
  }(ticks));

  pollfd watched{loop.notify_fd(), POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (ticks < 3 && std::chrono::steady_clock::now() < deadline) {
    if (::poll(&watched, 1, 1000) < 0) return 1;  // the host's own wait
    if ((watched.revents & POLLIN) != 0) loop.poll();
  }
  std::printf("%d ticks driven from poll(2)\n", ticks);
  return ticks == 3 ? 0 : 1;
}
