// docs/runtime.md, "Timers and timeouts": sleep_for, sleep_until, and an operation bounded
// by a linked timeout.
//
// with_timeout() (or timeout(op, d)) sends the request with an IORING_OP_LINK_TIMEOUT
// linked behind it. If the timeout fires first the kernel cancels the request, and the
// result is -ETIMEDOUT; if the request completes first the timeout is cancelled and the
// result is the request's own. Either way the coroutine resumes once both CQEs are in,
// and IoResult::outcome says which of the two happened.
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
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

Task<IoResult> recv_within(int fd, std::chrono::milliseconds limit) {
  std::array<std::byte, 16> buffer{};
  co_return co_await coring::io([&](ring::Sqe& sqe) {
    ring::prep_recv(sqe, fd, buffer, 0);
  }).with_timeout(limit);
}

Task<int> demo(int quiet_fd, int busy_fd) {
  const auto start = std::chrono::steady_clock::now();
  co_await coring::sleep_for(10ms);
  co_await coring::sleep_until(start + 20ms);
  const auto slept = std::chrono::steady_clock::now() - start;
  std::printf(
      "slept %lld ms\n",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(slept).count()));
  if (slept < 20ms) co_return 1;

  // Nobody writes to quiet_fd: the timeout fires.
  const IoResult timed_out = co_await recv_within(quiet_fd, 20ms);
  std::printf("idle recv: res %d (%s)\n", timed_out.res, timed_out.error().message().c_str());
  if (timed_out.error() != std::errc::timed_out) co_return 1;
  if (timed_out.outcome != coring::Outcome::timed_out) co_return 1;

  // Data is waiting on busy_fd: the request wins, the timeout never fires.
  const IoResult received = co_await recv_within(busy_fd, 5000ms);
  std::printf("busy recv: res %d\n", received.res);
  co_return received.res == 2 && received.outcome == coring::Outcome::completed ? 0 : 1;
}

int main() {
  int quiet[2];
  int busy[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, quiet) != 0) return 1;
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, busy) != 0) return 1;
  if (::send(busy[1], "hi", 2, 0) != 2) return 1;
  coring::EventLoop loop;
  const int status = loop.run(demo(quiet[0], busy[0]));
  for (int fd : {quiet[0], quiet[1], busy[0], busy[1]}) ::close(fd);
  return status;
}
