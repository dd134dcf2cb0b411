// A diagnostic row of `coring-bench echo` (--diagnostic 1): an echo server on the
// runtime's own awaitables without net/ — a Multishot accept, then per connection a
// coroutine that awaits io(prep_recv) and io(prep_send). Against the "coring" row
// (coring-echo's code on net/ and the Server frame) it shows what those layers cost.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <span>

#include "child_process.hpp"
#include "coring/ring/prep.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/multishot.hpp"
#include "coring/runtime/task.hpp"
#include "echo.hpp"

namespace coring::bench {
namespace {

Task<void> echo_connection(int fd) {
  std::array<std::byte, 4096> buffer;
  for (;;) {
    const IoResult got = co_await io([&](ring::Sqe& sqe) { ring::prep_recv(sqe, fd, buffer, 0); });
    if (got.res <= 0) break;
    const auto length = static_cast<std::size_t>(got.res);
    std::size_t sent = 0;
    while (sent < length) {
      const IoResult put = co_await io([&](ring::Sqe& sqe) {
        ring::prep_send(sqe, fd, std::span(buffer).subspan(sent, length - sent), MSG_NOSIGNAL);
      });
      if (put.res <= 0) break;
      sent += static_cast<std::size_t>(put.res);
    }
    if (sent < length) break;
  }
  ::close(fd);
}

Task<void> accept_loop(EventLoop& loop, int listen_fd) {
  Multishot accepts(
      [listen_fd](ring::Sqe& sqe) {
        ring::prep_multishot_accept(sqe, listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      },
      {.bound = 64, .fd_results = true});
  for (;;) {
    const IoResult accepted = co_await accepts.next();
    if (!accepted) break;
    const int one = 1;
    ::setsockopt(accepted.res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    loop.spawn(echo_connection(accepted.res));
  }
  co_await accepts.close();
}

// Returns once SIGINT or SIGTERM arrives (they are blocked and read from a signalfd).
Task<void> until_signal() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &signals, nullptr);
  const int fd = ::signalfd(-1, &signals, SFD_CLOEXEC);
  signalfd_siginfo info{};
  co_await io([&](ring::Sqe& sqe) {
    ring::prep_read(sqe, fd, std::as_writable_bytes(std::span(&info, 1)), 0);
  });
  ::close(fd);
}

}  // namespace

int serve_runtime_echo(int ready_fd) {
  const int listen_fd = listen_loopback();
  report_listening(ready_fd, local_port(listen_fd));
  // Destroying the loop cancels the accept and the connections' operations in flight.
  EventLoop loop;
  loop.spawn(accept_loop(loop, listen_fd));
  loop.run(until_signal());
  return 0;
}

}  // namespace coring::bench
