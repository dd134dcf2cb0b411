// docs/runtime.md, "Tasks": lazy tasks, values, exceptions, and detached tasks.
//
// A Task does nothing until it is awaited or handed to the loop. Awaiting one runs it
// at once and resumes the awaiter when it finishes (symmetric transfer); an exception
// that escapes it is rethrown in the awaiter. spawn() starts a task that nobody awaits:
// its uncaught exception is logged and counted, never lost.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>

#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/io.hpp>
#include <coring/runtime/task.hpp>

using coring::Task;

Task<int> answer() { co_return 42; }

Task<int> sum_of_answers() {
  const int a = co_await answer();  // runs answer() now, here
  const int b = co_await answer();
  co_return a + b;
}

Task<int> fails() {
  throw std::runtime_error("no answer today");
  co_return 0;  // the co_return makes this a coroutine
}

Task<std::string> recovers() {
  try {
    co_await fails();
  } catch (const std::runtime_error& e) {
    co_return std::string("caught: ") + e.what();
  }
  co_return "not reached";
}

Task<void> detached_failure() {
  co_await coring::nop();  // one trip through the ring first
  throw std::logic_error("nobody awaits me");
}

int main() {
  coring::EventLoop loop;

  bool started = false;
  auto lazy = [](bool& flag) -> Task<void> {
    flag = true;
    co_return;
  };
  Task<void> task = lazy(started);
  if (started) return 1;  // lazy: creating a task runs nothing
  loop.run(std::move(task));
  if (!started) return 1;

  const int sum = loop.run(sum_of_answers());
  const std::string message = loop.run(recovers());
  std::printf("sum %d, %s\n", sum, message.c_str());
  if (sum != 84 || message != "caught: no answer today") return 1;

  try {
    loop.run(fails());  // run() rethrows what the task threw
    return 1;
  } catch (const std::runtime_error&) {
  }

  loop.spawn(detached_failure());
  loop.run([]() -> Task<void> {
    for (int i = 0; i < 3; ++i) co_await coring::nop();  // let the spawned task finish
  }());
  std::printf("unhandled exceptions in spawned tasks: %llu\n",
              static_cast<unsigned long long>(loop.unhandled_exceptions()));
  return loop.unhandled_exceptions() == 1 ? 0 : 1;
}
