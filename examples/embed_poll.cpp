// coring-embed-poll: a coring EventLoop running inside an application's own poll(2) loop.
//
// Many programs already have an event loop (a GUI toolkit's, a game's, an older
// server's) and cannot hand the thread to coring. EventLoop::notify_fd() gives them an eventfd
// to watch next to their own descriptors: the kernel signals it when it posts a CQE to
// the loop's ring, and the loop signals it after a turn that left coroutines ready. When
// it is readable the application calls EventLoop::poll(), which runs one turn and never
// blocks. Nothing else is needed: no thread, no timer, no busy polling.
//
// Here the application's loop watches three descriptors:
//   - a timerfd of its own, ticking every 25 ms (its "frame" timer);
//   - stdin, whose lines it counts until end of file (run it with input piped in, or
//     type a few lines; under ctest stdin is empty and reaches end of file at once);
//   - loop.notify_fd(), through which coring runs three coroutines: a heartbeat of sleeps, a
//     burst of NOPs, and a read from a pipe that the application fills on its 4th tick.
// The program ends by itself once the coroutines are done and the application has
// ticked 8 times (about 200 ms), or after a 10-second safety deadline, which fails.
//
//   usage: coring-embed-poll        exit status 0 when everything completed
#include <fcntl.h>
#include <poll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <span>
#include <system_error>

#include <coring/ring/prep.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/io.hpp>
#include <coring/runtime/task.hpp>
#include <coring/runtime/time.hpp>

namespace ring = coring::ring;
using namespace std::chrono_literals;

namespace {

constexpr int app_ticks_wanted = 8;
constexpr int heartbeats_wanted = 5;
constexpr int nops_wanted = 10'000;

// What the coroutines report back to the application.
struct CoringWork {
  int heartbeats = 0;
  int nops = 0;
  int bytes_from_pipe = -1;
  int running = 0;
};

// An owned descriptor, closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {
    if (fd_ < 0) throw std::system_error(errno, std::system_category());
  }
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const noexcept { return fd_; }

 private:
  int fd_;
};

coring::Task<void> heartbeat(CoringWork& work) {
  for (int i = 0; i < heartbeats_wanted; ++i) {
    const coring::IoResult r = co_await coring::sleep_for(30ms);
    if (!r) break;
    ++work.heartbeats;
    std::printf("coring: heartbeat %d\n", work.heartbeats);
  }
  --work.running;
}

coring::Task<void> nop_burst(CoringWork& work) {
  for (int i = 0; i < nops_wanted; ++i) {
    if (co_await coring::nop()) ++work.nops;
  }
  std::printf("coring: %d NOPs completed\n", work.nops);
  --work.running;
}

// Waits (without blocking the application) for the bytes the application writes into
// the pipe; the linked timeout bounds the wait should it never do so.
coring::Task<void> pipe_reader(CoringWork& work, int fd) {
  std::array<std::byte, 64> buffer{};
  const coring::IoResult r = co_await coring::io([&](ring::Sqe& sqe) {
                               ring::prep_read(sqe, fd, buffer, 0);
                             }).with_timeout(5s);
  work.bytes_from_pipe = r.res;
  if (r) {
    std::printf("coring: read %d bytes from the application: %.*s\n", r.res, r.res,
                reinterpret_cast<const char*>(buffer.data()));
  } else {
    std::printf("coring: pipe read failed: %s\n", r.error().message().c_str());
  }
  --work.running;
}

Fd make_ticker(std::chrono::milliseconds period) {
  Fd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(period).count();
  itimerspec spec{};
  spec.it_interval.tv_sec = ns / 1'000'000'000;
  spec.it_interval.tv_nsec = ns % 1'000'000'000;
  spec.it_value = spec.it_interval;
  if (::timerfd_settime(timer.get(), 0, &spec, nullptr) != 0) {
    throw std::system_error(errno, std::system_category(), "timerfd_settime");
  }
  return timer;
}

// The application's own stdin handling: counts lines until end of file.
bool read_stdin(int& lines) {
  std::array<char, 4096> chunk{};
  const ssize_t n = ::read(STDIN_FILENO, chunk.data(), chunk.size());
  if (n <= 0) return false;  // end of file (or an error): stop watching stdin
  for (ssize_t i = 0; i < n; ++i) lines += chunk[static_cast<std::size_t>(i)] == '\n' ? 1 : 0;
  return true;
}

int run() {
  // Decided before any descriptor is opened: were stdin closed, fd 0 could become one
  // of ours.
  const bool stdin_open = ::fcntl(STDIN_FILENO, F_GETFD) >= 0;
  coring::EventLoop loop;
  std::array<int, 2> pipe_fds{};
  if (::pipe2(pipe_fds.data(), O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::system_category(), "pipe2");
  }
  const Fd pipe_read(pipe_fds[0]);
  const Fd pipe_write(pipe_fds[1]);
  const Fd ticker = make_ticker(25ms);

  CoringWork work;
  work.running = 3;
  loop.spawn(heartbeat(work));
  loop.spawn(nop_burst(work));
  loop.spawn(pipe_reader(work, pipe_read.get()));

  enum { coring_slot, timer_slot, stdin_slot };
  std::array<pollfd, 3> watched{{
      {loop.notify_fd(), POLLIN, 0},
      {ticker.get(), POLLIN, 0},
      {stdin_open ? STDIN_FILENO : -1, POLLIN, 0},
  }};
  int app_ticks = 0;
  bool wrote_to_pipe = false;
  int stdin_lines = 0;
  std::uint64_t coring_turns = 0;
  const auto deadline = std::chrono::steady_clock::now() + 10s;

  while (work.running > 0 || app_ticks < app_ticks_wanted) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "coring-embed-poll: not done after 10 s\n");
      return 1;
    }
    if (::poll(watched.data(), watched.size(), 1000) < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::system_category(), "poll");
    }
    if ((watched[coring_slot].revents & POLLIN) != 0) {
      loop.poll();  // one turn: resume, submit, reap; never blocks
      ++coring_turns;
    }
    if ((watched[timer_slot].revents & POLLIN) != 0) {
      std::uint64_t expirations = 0;
      if (::read(ticker.get(), &expirations, sizeof(expirations)) == sizeof(expirations)) {
        app_ticks += static_cast<int>(expirations);
      }
      if (app_ticks >= 4 && !wrote_to_pipe) {
        wrote_to_pipe = true;
        constexpr char message[] = "hello from the app";
        if (::write(pipe_write.get(), message, std::strlen(message)) < 0) {
          throw std::system_error(errno, std::system_category(), "write");
        }
      }
    }
    if ((watched[stdin_slot].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0) {
      if (!read_stdin(stdin_lines)) watched[stdin_slot].fd = -1;  // poll() skips it now
    }
  }

  std::printf(
      "app: %d ticks, %d stdin lines; coring: %d heartbeats, %d NOPs, pipe read %d, "
      "driven by %llu calls of loop.poll()\n",
      app_ticks, stdin_lines, work.heartbeats, work.nops, work.bytes_from_pipe,
      static_cast<unsigned long long>(coring_turns));
  const bool complete =
      work.heartbeats == heartbeats_wanted && work.nops == nops_wanted && work.bytes_from_pipe > 0;
  return complete ? 0 : 1;
}

}  // namespace

int main() {
  try {
    return run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coring-embed-poll: %s\n", e.what());
    return 1;
  }
}
