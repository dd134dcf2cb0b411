// Runtime: threads that each create, run and destroy one EventLoop.
//
// Start. The constructor starts N threads; each pins itself (if asked), creates its
// loop — on itself, because a SINGLE_ISSUER/DEFER_TASKRUN ring belongs to the task
// that created it — publishes it in its slot and counts down started_. The
// constructor returns once every slot is filled, so loop(i) never sees a loop being
// built; a thread that failed records its exception and the constructor tears the
// others down and rethrows it.
//
// Run. A thread runs its loop until the runtime is stopping; the loop's own stop()
// (which any task may call) only ends one run(). Work arrives through
// EventLoop::post(), so a task sent from another loop's thread wakes the target with
// MSG_RING.
//
// Stop. stop() sets stopping_ and stops each loop. The threads then count down
// stopped_ and wait for teardown_, which the destructor opens only after every
// thread has left run(): while any loop still runs a turn, which may post to other
// loops, none of them is destroyed. Each thread then destroys its own loop.
#include "coring/runtime/runtime.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cassert>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "log.hpp"

namespace coring {
namespace {

std::size_t thread_count(const RuntimeOptions& options) {
  if (options.threads != 0) return options.threads;
  return std::max(1U, std::thread::hardware_concurrency());
}

// The CPUs this process may run on, in order.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) {
    throw std::system_error(errno, std::system_category(), "Runtime: sched_getaffinity");
  }
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

void pin_this_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  const int error = ::pthread_setaffinity_np(::pthread_self(), sizeof(set), &set);
  if (error != 0) {
    throw std::system_error(error, std::system_category(),
                            "Runtime: pthread_setaffinity_np to CPU " + std::to_string(cpu));
  }
}

}  // namespace

// What run_on_each() waits for. Shared with the tasks it starts, which may finish
// (or be destroyed) after run_on_each() returned early because of stop(). It holds
// `make` too: when make is a lambda coroutine, its tasks read their captures
// through the lambda object, which must outlive them.
struct Runtime::Join {
  std::function<Task<void>(EventLoop&, std::size_t)> make;
  std::size_t remaining;  // guarded by join_mutex_
  std::exception_ptr error;
};

Runtime::Runtime(RuntimeOptions options)
    : options_(std::move(options)),
      slots_(thread_count(options_)),
      started_(static_cast<std::ptrdiff_t>(slots_.size())),
      stopped_(static_cast<std::ptrdiff_t>(slots_.size())),
      teardown_(1) {
  if (options_.loop.hooks != nullptr && slots_.size() > 1) {
    // Hooks see one loop's SQEs and CQEs on its thread; every loop would share these.
    throw std::invalid_argument(
        "Runtime: LoopOptions::hooks serve one loop, and this Runtime has " +
        std::to_string(slots_.size()) + "; attach hooks per loop with set_hooks() on its thread");
  }
  if (options_.pin_threads) cpus_ = allowed_cpus();
  start_threads();
  started_.wait();
  for (const Slot& slot : slots_) {
    if (slot.setup_error) {
      shut_down();
      std::rethrow_exception(slot.setup_error);
    }
  }
}

Runtime::~Runtime() { shut_down(); }

void Runtime::start_threads() {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    try {
      slots_[i].thread = std::thread([this, i] { thread_main(i); });
    } catch (...) {
      // The threads not started will never count down: do it for them.
      const auto missing = static_cast<std::ptrdiff_t>(slots_.size() - i);
      started_.count_down(missing);
      stopped_.count_down(missing);
      shut_down();
      throw;
    }
  }
}

void Runtime::thread_main(std::size_t index) {
  const std::string name = "coring-loop-" + std::to_string(index);
  (void)::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
  std::optional<EventLoop> loop;
  try {
    if (options_.pin_threads) pin_this_thread(cpus_[index % cpus_.size()]);
    loop.emplace(options_.loop);
    slots_[index].loop = &*loop;
  } catch (...) {
    slots_[index].setup_error = std::current_exception();
  }
  started_.count_down();
  if (loop) {
    try {
      while (!stopping_.load(std::memory_order_acquire)) loop->run();
    } catch (...) {
      // io_uring_enter failed in a way the loop cannot recover from, or memory ran out
      // for the loop's own needs: this loop is dead, so stop them all rather than leave
      // run_on_each() waiting for it, and let run_on_each() report why.
      runtime_log_exception("Runtime loop thread", std::current_exception());
      {
        std::lock_guard lock(join_mutex_);
        if (!loop_failure_) loop_failure_ = std::current_exception();
      }
      stop();
    }
  }
  stopped_.count_down();
  teardown_.wait();
}  // the loop is destroyed here, on its own thread

void Runtime::shut_down() noexcept {
  started_.wait();  // the slots are filled: stop() reads them
  stop();
  stopped_.wait();
  teardown_.count_down();
  for (Slot& slot : slots_) {
    if (slot.thread.joinable()) slot.thread.join();
  }
}

bool Runtime::runs_on_own_loop() const noexcept {
  EventLoop* const current = EventLoop::current();
  return current != nullptr &&
         std::any_of(slots_.begin(), slots_.end(),
                     [current](const Slot& slot) { return slot.loop == current; });
}

EventLoop& Runtime::loop(std::size_t index) noexcept {
  assert(index < slots_.size());
  return *slots_[index].loop;
}

void Runtime::stop() noexcept {
  stopping_.store(true, std::memory_order_release);
  for (Slot& slot : slots_) {
    if (slot.loop != nullptr) slot.loop->stop();
  }
  // Under the mutex, so that run_on_each() cannot miss the notification between
  // testing stopping_ and going to sleep.
  std::lock_guard lock(join_mutex_);
  join_cv_.notify_all();
}

void Runtime::finish_one(Join& join, std::exception_ptr error) noexcept {
  const bool failed = error != nullptr;
  {
    std::lock_guard lock(join_mutex_);
    if (error && !join.error) join.error = std::move(error);
    if (--join.remaining == 0) join_cv_.notify_all();
  }
  // A task that failed stops the runtime: the others may never end by themselves (a
  // server's loops accept until stopped), and run_on_each() would wait for them for ever.
  if (failed) stop();
}

Task<void> Runtime::run_and_join(Task<void> task, std::shared_ptr<Join> join) {
  std::exception_ptr error;
  try {
    co_await std::move(task);
  } catch (...) {
    error = std::current_exception();
  }
  finish_one(*join, std::move(error));
}

void Runtime::run_on_each(std::function<Task<void>(EventLoop&, std::size_t)> make) {
  assert(!runs_on_own_loop() && "run_on_each() from a loop it would wait for");
  auto join = std::make_shared<Join>(Join{std::move(make), slots_.size(), nullptr});
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    EventLoop& target = loop(i);
    target.post([this, &target, i, join] {
      try {
        target.spawn(run_and_join(join->make(target, i), join));
      } catch (...) {
        finish_one(*join, std::current_exception());
      }
    });
  }
  std::unique_lock lock(join_mutex_);
  join_cv_.wait(lock,
                [&] { return join->remaining == 0 || stopping_.load(std::memory_order_acquire); });
  if (join->error) std::rethrow_exception(join->error);
  if (loop_failure_) std::rethrow_exception(loop_failure_);
}

}  // namespace coring
