// docs/runtime.md, "Cancellation": a std::stop_token on an operation.
//
// When the token is triggered the loop sends IORING_OP_ASYNC_CANCEL for the operation.
// The coroutine does not resume at that moment: it resumes when the kernel has posted
// the operation's CQE (-ECANCELED, or the result if the request won the race), so the
// buffer in its frame stays valid for as long as the kernel may write to it. A stop
// requested before the co_await completes it at once, without a system call.
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <stop_token>
#include <system_error>

#include <coring/ring/prep.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/io.hpp>
#include <coring/runtime/task.hpp>
#include <coring/runtime/time.hpp>

namespace ring = coring::ring;
using namespace std::chrono_literals;
using coring::IoResult;
using coring::Task;

Task<IoResult> read_until_stopped(int fd, std::stop_token token) {
  std::array<std::byte, 64> buffer{};  // the kernel may write here until the CQE arrives
  co_return co_await coring::io([&](ring::Sqe& sqe) {
    ring::prep_read(sqe, fd, buffer, 0);
  }).with_stop(token);
}

Task<void> stop_later(std::stop_source& source) {
  co_await coring::sleep_for(10ms);
  source.request_stop();
}

Task<int> demo(coring::EventLoop& loop, int fd) {
  std::stop_source source;
  loop.spawn(stop_later(source));
  const IoResult stopped = co_await read_until_stopped(fd, source.get_token());
  std::printf("stopped read: res %d (%s)\n", stopped.res, stopped.error().message().c_str());
  if (stopped.error() != std::errc::operation_canceled) co_return 1;

  // Already stopped: completes with -ECANCELED before reaching the kernel.
  const IoResult early = co_await read_until_stopped(fd, source.get_token());
  std::printf("read with a stopped token: res %d\n", early.res);
  co_return early.res == -ECANCELED ? 0 : 1;
}

int main() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return 1;
  int status = 0;
  {
    coring::EventLoop loop;
    status = loop.run(demo(loop, fds[0]));
    // A read still in flight when the loop is destroyed: the destructor cancels it and
    // waits for its CQE before the frame holding the buffer is destroyed.
    loop.spawn([](int fd) -> Task<void> {
      std::array<std::byte, 8> buffer{};
      co_await coring::io([&](ring::Sqe& sqe) { ring::prep_read(sqe, fd, buffer, 0); });
    }(fds[0]));
    loop.poll();
    std::printf("destroying the loop with a read in flight (in_flight() = %u)\n", loop.in_flight());
  }
  ::close(fds[0]);
  ::close(fds[1]);
  return status;
}
