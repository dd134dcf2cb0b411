// The blocking pool: threads that run jobs queued by co_await spawn_blocking(fn).
//
// A job is a record in the awaiting coroutine's frame, linked into the pool's FIFO
// under the pool's mutex. A worker takes the head, runs fn with the mutex released,
// and then, with the mutex held again, marks the job done and posts the awaiter's
// resumption to the loop it came from. Holding the mutex across that post is what
// makes destroying a frame safe: the frame's destructor takes the same mutex to
// withdraw its job, so either it comes first (a queued job is unlinked; a running
// one is flagged abandoned and the destructor waits for fn to return, after which
// nothing is posted) or the post came first, and the frame is being destroyed by its
// loop's teardown, which drops the posted resumption without running it.
//
// Lock order: pool mutex, then a loop's remote mutex inside post(); no loop calls
// into the pool while holding its own.
#include "coring/runtime/blocking.hpp"

#include <cerrno>
#include <system_error>

#include "log.hpp"

namespace coring {

namespace detail {

void BlockingJob::submit(EventLoop& loop, std::coroutine_handle<> waiter) {
  loop_ = &loop;
  waiter_ = waiter;
  pool_->push(*this);
  submitted_ = true;
}

void BlockingJob::withdraw() noexcept {
  if (!submitted_) return;
  pool_->withdraw(*this);
  submitted_ = false;
}

}  // namespace detail

BlockingPool::BlockingPool(std::size_t threads) : max_threads_(threads == 0 ? 1 : threads) {}

BlockingPool::~BlockingPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& thread : threads_) thread.join();
  // Jobs never started: their frames are alive (a destroyed frame withdraws its job),
  // so their loops are too. They resume with an error rather than never.
  std::lock_guard lock(mutex_);
  while (!queue_.empty()) {
    detail::BlockingJob& job = queue_.pop_front();
    job.error_ = std::make_exception_ptr(std::system_error(
        ECANCELED, std::system_category(), "BlockingPool destroyed before the job ran"));
    job.state_ = detail::BlockingJob::State::done;
    resume_awaiter(job);
  }
}

BlockingPool& BlockingPool::shared() {
  static BlockingPool pool;
  return pool;
}

void BlockingPool::push(detail::BlockingJob& job) {
  {
    std::lock_guard lock(mutex_);
    if (threads_.empty()) start_threads();
    job.state_ = detail::BlockingJob::State::queued;
    job.abandoned_ = false;
    queue_.push_back(job);
  }
  work_cv_.notify_one();
}

// Lazily, on the first job: a program that never blocks never starts a thread. With
// fewer threads than asked (the system refused more) the pool still works.
void BlockingPool::start_threads() {
  threads_.reserve(max_threads_);
  for (std::size_t i = 0; i < max_threads_; ++i) {
    try {
      threads_.emplace_back([this] { worker(); });
    } catch (const std::system_error& error) {
      if (threads_.empty()) throw;
      runtime_log_error("BlockingPool: std::thread", error.code());
      return;
    }
  }
}

void BlockingPool::withdraw(detail::BlockingJob& job) noexcept {
  std::unique_lock lock(mutex_);
  switch (job.state_) {
    case detail::BlockingJob::State::queued:
      queue_.unlink(job);
      break;
    case detail::BlockingJob::State::running:
      job.abandoned_ = true;
      done_cv_.wait(lock, [&] { return job.state_ == detail::BlockingJob::State::done; });
      break;
    case detail::BlockingJob::State::done:
      break;
  }
}

void BlockingPool::worker() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    detail::BlockingJob& job = queue_.pop_front();
    job.state_ = detail::BlockingJob::State::running;
    lock.unlock();
    job.run_(job);
    lock.lock();
    job.state_ = detail::BlockingJob::State::done;
    if (job.abandoned_) {
      done_cv_.notify_all();
    } else {
      resume_awaiter(job);  // under the mutex: see the top of this file
    }
  }
}

void BlockingPool::resume_awaiter(detail::BlockingJob& job) {
  job.loop_->post([waiter = job.waiter_] { waiter.resume(); });
}

}  // namespace coring
