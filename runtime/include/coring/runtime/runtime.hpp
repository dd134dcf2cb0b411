// Runtime: N event loops on N threads, thread-per-core.
//
//   RuntimeOptions options;
//   options.threads = 4;  // by default, one loop per CPU
//   Runtime runtime(options);
//   runtime.run_on_each([](EventLoop&, std::size_t i) -> Task<void> { co_await serve(i); });
//
// Each loop is created, run and destroyed on its own thread, as SINGLE_ISSUER and
// DEFER_TASKRUN rings require. Work reaches a loop through EventLoop::post(), which
// wakes it with IORING_OP_MSG_RING when the sender is another loop of the runtime and
// through its eventfd from any other thread; spawn_on() sends a task that way.
//
// Lifetime: the loops live until the Runtime is destroyed, even after stop(), so
// loop(i) stays valid. The destructor stops every loop, waits until none runs any
// more — so no loop's last turn can post into a loop already destroyed — and then
// lets each thread destroy its loop (cancelling and draining what is in flight,
// destroying spawned tasks still suspended) and joins it. Code that runs while a
// loop is destroyed (destructors of suspended frames) must not post to other loops;
// the one post the runtime itself makes then is safe: a task destroyed with its loop
// resumes its JoinHandle's waiter on the waiter's loop, and a registered waiter means
// that loop has not yet destroyed its frames (a waiting frame unregisters under the
// same mutex as the post). Since the loops are destroyed concurrently, a task that
// switch_to()'d away from the loop that spawned it must be back before the teardown:
// that loop destroys its frame (join.hpp, switch_to in event_loop.hpp).
#pragma once

#include <atomic>
#include <cassert>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/join.hpp"
#include "coring/runtime/task.hpp"

namespace coring {

struct RuntimeOptions {
  // Number of loops and threads; 0 means std::thread::hardware_concurrency().
  std::size_t threads = 0;
  // Pins thread i to the i-th CPU (modulo their number) of the process's affinity
  // mask; a pinning failure makes the constructor throw.
  bool pin_threads = false;
  // Options of every loop. Hooks (LoopOptions::hooks) serve one loop: with more than one
  // thread the constructor throws std::invalid_argument.
  LoopOptions loop;
};

class Runtime {
 public:
  // Starts the threads and returns once every loop exists; rethrows (after joining
  // the threads) the first error of a loop's or thread's setup.
  explicit Runtime(RuntimeOptions options = {});
  // stop(), then destroys the loops on their threads and joins them.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  [[nodiscard]] std::size_t size() const noexcept { return slots_.size(); }
  [[nodiscard]] EventLoop& loop(std::size_t index) noexcept;

  // Starts `task` on loop `index` and returns its JoinHandle (join.hpp), which a task on
  // any loop may co_await. Any thread; the task starts on a later turn of that loop,
  // and is cancelled (its handle says so) if the loop is destroyed first. Dropping the
  // handle detaches the task: an exception escaping it is logged and counted by that loop.
  template <typename T>
  JoinHandle<T> spawn_on(std::size_t index, Task<T> task);

  // Calls make(loop, i) on each loop's thread and runs the task it returns there
  // (make is kept alive until those tasks end: a lambda coroutine may capture);
  // returns once all have finished — or as soon as stop() is called, leaving tasks that
  // are still suspended to the destructor. A task that throws (or a make that does)
  // stops the runtime, and run_on_each() rethrows the first such exception. A loop whose turn
  // failed (run_once() threw: the kernel refused io_uring_enter, or memory ran out for the loop's
  // own needs) stops the runtime, and run_on_each() then rethrows that failure. Call it from a
  // thread that is none of this runtime's loops.
  void run_on_each(std::function<Task<void>(EventLoop&, std::size_t)> make);

  // Makes every loop stop running after its current turn; tasks still suspended stay
  // so until the destructor destroys them. Any thread, more than once.
  void stop() noexcept;

 private:
  struct Slot {
    EventLoop* loop = nullptr;  // written by its thread before started_ opens
    std::exception_ptr setup_error;
    std::thread thread;
  };
  struct Join;

  void start_threads();
  void thread_main(std::size_t index);
  void shut_down() noexcept;
  [[nodiscard]] bool runs_on_own_loop() const noexcept;
  Task<void> run_and_join(Task<void> task, std::shared_ptr<Join> join);
  void finish_one(Join& join, std::exception_ptr error) noexcept;

  RuntimeOptions options_;
  std::vector<int> cpus_;  // the CPUs to pin threads to, when pin_threads
  std::vector<Slot> slots_;
  std::atomic<bool> stopping_{false};
  std::latch started_;   // every thread has created its loop (or failed to)
  std::latch stopped_;   // every thread has left its loop's run() for good
  std::latch teardown_;  // the destructor lets the threads destroy their loops
  // run_on_each() waits here for its tasks, or for stop().
  std::mutex join_mutex_;
  std::condition_variable join_cv_;
  std::exception_ptr loop_failure_;  // under join_mutex_: the first loop that failed
};

template <typename T>
JoinHandle<T> Runtime::spawn_on(std::size_t index, Task<T> task) {
  assert(task.valid() && "spawn_on of an empty Task");
  // The frame is made here and started on the loop's thread, which alone links it into
  // the loop. post() takes a copyable function: the start travels in a shared holder,
  // which abandons the frame (its handle sees the task cancelled) if the loop is
  // destroyed before running the work.
  EventLoop& target = loop(index);
  detail::SpawnPromise<T>& state = detail::spawn_frame(target, std::move(task)).handle.promise();
  JoinHandle<T> handle(state);
  std::shared_ptr<detail::SpawnStart> start;
  try {
    start = std::make_shared<detail::SpawnStart>(state);
  } catch (...) {
    state.abandon();
    throw;
  }
  target.post([start] { start->start(); });
  return handle;
}

}  // namespace coring
