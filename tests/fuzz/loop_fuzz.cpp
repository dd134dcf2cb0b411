// libFuzzer target: the EventLoop's submission, dispatch and resumption under faults that
// the input decides. The loop's backend is the default's choice: CORING_BACKEND=epoll runs
// it all over the epoll backend (scripts/fuzz.sh does both, as "loop" and "loop-epoll").
//
// The input is a FaultPlan in script mode (testing/include/coring/testing/fault.hpp):
//
//   bytes 0-6  how likely each kind of fault is, 0..255 for 0..1,000,000 ppm: short
//              counts, errors, multishot ends, busy enters, reordered batches, overflow
//              flags, late CQEs (0 turns a kind off: its decisions then read nothing)
//   the rest   the script every decision reads, in the order the injector makes them;
//              once it is used up the run goes on without faults
//
// so the fuzzer chooses which request fails with which error, which transfer is cut
// short and where, which batch of CQEs is shuffled how, which completion the loop sees
// only in a later reap, and when a multishot request ends — everything the kernel could
// do. Each run builds a loop with a small SQ, CQ and max_in_flight (admission, CQ
// overflow and the full-SQ path are part of the game) and runs one workload on it:
//
//   pipe       16 KiB written in 4 KiB requests and read in 3 KiB ones with a linked
//              timeout, going on after short counts, timeouts and errors;
//   multishot  6 KiB sent over a socketpair in 1 KiB requests and received by a
//              Multishot recv into 4 provided buffers of 512 bytes (so the kernel runs
//              dry), re-armed when an error ends it, paused by a bound of 3;
//   recvstream the same through net::RecvStream into a net::BufferPool (coring-http's
//              receive path), which re-arms by itself when the pool runs dry and ends
//              at the first error it reports;
//   timers     sleeps of 0-30 us together in a when_all, and a long sleep that another
//              task stops through its token;
//   races      a when_any between a sleep and a read of an idle pipe (the loser is
//              cancelled and joined), and a read of that pipe with a linked timeout;
//   drain      a spawned task left waiting on the idle pipe, which the loop's
//              destruction must cancel, drain and destroy.
//
// Checked for every input: every byte arrives once and in order (through RecvStream, a
// prefix of them: all of them unless it reported an error, which must be an injected one
// and never ENOBUFS); an idle read never returns data; a stopped sleep says -ECANCELED and
// a finished one 0; every co_await of the workload resumes exactly once (awaits started
// == awaits resumed; a frame resumed twice is ASan's); nothing escapes a task; the
// abandoned task's frame is destroyed once; the loop finishes the workload within a time
// limit (a hang is a crash, through __builtin_trap, with the input that caused it and the
// parts that had finished; a hang in the loop's destruction is libFuzzer's -timeout);
// ASan, UBSan and LeakSanitizer stay silent. A failed check prints what it saw and traps.
// LOOP_FUZZ_VERBOSE=1 in the environment prints what each input injected.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <stop_token>
#include <utility>
#include <vector>

#include "coring/net/buffer_pool.hpp"
#include "coring/net/recv_stream.hpp"
#include "coring/ring/buffer_ring.hpp"
#include "coring/ring/prep.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/multishot.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"
#include "coring/runtime/when_any.hpp"
#include "coring/testing/fault.hpp"

namespace coring {
namespace {

using testing::FaultCounts;
using testing::FaultInjector;
using testing::FaultPlan;

using namespace std::chrono_literals;

constexpr std::size_t header_bytes = 7;
constexpr std::size_t pipe_bytes = 16 * 1024;
constexpr std::size_t pipe_write_bytes = 4096;
constexpr std::size_t pipe_read_bytes = 3072;
constexpr std::size_t socket_bytes = 6 * 1024;
constexpr std::size_t socket_send_bytes = 1024;
constexpr std::uint32_t buffer_bytes = 512;
constexpr std::uint32_t buffer_count = 4;
constexpr std::uint16_t buffer_group_id = 7;
constexpr std::uint16_t pool_group_id = 9;
// Far beyond what a run takes (a few ms): reaching it means the loop hangs.
constexpr auto time_limit = 5s;

[[noreturn]] void fail(const char* what, long long a = 0, long long b = 0) {
  std::fprintf(stderr, "loop_fuzz: %s (%lld, %lld)\n", what, a, b);
  __builtin_trap();
}

void check(bool holds, const char* what, long long a = 0, long long b = 0) {
  if (!holds) fail(what, a, b);
}

std::byte pattern(std::size_t i) { return static_cast<std::byte>((i * 131 + i / 251) & 0xff); }

// An fd closed at the end of the run.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {
    if (fd_ < 0) fail("cannot create an fd", errno);
  }
  ~Fd() { ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

std::array<int, 2> make_pipe() {
  std::array<int, 2> fds{-1, -1};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) fail("pipe2", errno);
  return fds;
}

std::array<int, 2> make_socketpair() {
  std::array<int, 2> fds{-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds.data()) != 0) {
    fail("socketpair", errno);
  }
  return fds;
}

// What one run shares between its tasks.
struct Run {
  explicit Run(const FaultPlan& plan) : plan(plan) {}
  const FaultPlan& plan;
  std::uint64_t awaits = 0;    // co_awaits of the workload begun
  std::uint64_t resumed = 0;   // ... and resumed
  std::uint64_t failures = 0;  // errors the workload met and went on after
  int abandoned_frames = 0;    // frames of the abandoned task destroyed
  unsigned parts_done = 0;     // a bit per part of the workload that finished
  bool done = false;

  // Errors are what the script injected or what the kernel said; the workload goes on
  // after each (the request is made again), and a script is finite: more failures than
  // it has bytes mean the loop keeps failing by itself.
  void failed(std::int32_t res) {
    if (++failures > plan.script.size() + 64) fail("an error that does not go away", res);
  }
  bool injected(std::int32_t res) const {
    for (int error : plan.errors) {
      if (res == -error) return true;
    }
    return false;
  }
};

// co_await `awaitable`, counting the await and its resumption.
template <typename Awaitable>
Task<IoResult> counted(Run& run, Awaitable awaitable) {
  ++run.awaits;
  const IoResult r = co_await std::move(awaitable);
  ++run.resumed;
  co_return r;
}

// --- pipe: a stream through writes and reads with linked timeouts ----------------------

Task<void> pipe_writer(Run& run, int fd, std::span<const std::byte> data) {
  for (std::size_t done = 0; done < data.size();) {
    const auto rest = data.subspan(done, std::min(pipe_write_bytes, data.size() - done));
    const IoResult r = co_await counted(run, io([fd, rest](ring::Sqe& sqe) {
                                          ring::prep_write(sqe, fd, rest, ring::current_position);
                                        }));
    if (r.res <= 0) {
      check(r.res < 0 && run.injected(r.res), "pipe write: not an injected error", r.res);
      run.failed(r.res);
      continue;
    }
    check(r.value() <= rest.size(), "pipe write: more than asked", r.res);
    done += r.value();
  }
}

Task<void> pipe_reader(Run& run, int fd, std::span<std::byte> into) {
  for (std::size_t done = 0; done < into.size();) {
    const auto rest = into.subspan(done, std::min(pipe_read_bytes, into.size() - done));
    const IoResult r =
        co_await counted(run, io([fd, rest](ring::Sqe& sqe) {
                                ring::prep_read(sqe, fd, rest, ring::current_position);
                              }).with_timeout(2ms));
    if (r.res > 0) {
      check(r.value() <= rest.size(), "pipe read: more than asked", r.res);
      done += r.value();
      continue;
    }
    check(r.res != 0, "pipe read: end of file before the end", static_cast<long long>(done));
    check(r.outcome == Outcome::timed_out || run.injected(r.res), "pipe read: an unexpected error",
          r.res);
    run.failed(r.res);
  }
}

Task<void> pipe_stream(Run& run) {
  const auto fds = make_pipe();
  Fd read_end(fds[0]);
  Fd write_end(fds[1]);
  std::vector<std::byte> sent(pipe_bytes);
  for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = pattern(i);
  std::vector<std::byte> received(pipe_bytes);
  std::vector<Task<void>> sides;
  sides.push_back(pipe_writer(run, write_end.get(), sent));
  sides.push_back(pipe_reader(run, read_end.get(), received));
  co_await when_all(std::move(sides));
  check(received == sent, "pipe: the bytes read are not the bytes written");
}

// --- multishot: a provided-buffer receive stream -----------------------------------------

struct RecvPrep {
  int fd;
  void operator()(ring::Sqe& sqe) const noexcept {
    ring::prep_recv_multishot(sqe, fd, buffer_group_id, 0);
  }
};

Task<void> socket_sender(Run& run, int fd, std::span<const std::byte> data) {
  for (std::size_t done = 0; done < data.size();) {
    const auto rest = data.subspan(done, std::min(socket_send_bytes, data.size() - done));
    const IoResult r = co_await counted(
        run, io([fd, rest](ring::Sqe& sqe) { ring::prep_send(sqe, fd, rest, MSG_NOSIGNAL); }));
    if (r.res <= 0) {
      check(r.res < 0 && run.injected(r.res), "send: not an injected error", r.res);
      run.failed(r.res);
      continue;
    }
    done += r.value();
  }
  ::shutdown(fd, SHUT_WR);
}

Task<void> socket_receiver(Run& run, int fd, ring::BufferGroup& group,
                           std::vector<std::byte>& received) {
  Multishot<RecvPrep> chunks(RecvPrep{fd}, {.bound = 3, .buffer_group = &group});
  while (received.size() < socket_bytes) {
    ++run.awaits;
    const IoResult r = co_await chunks.next();
    ++run.resumed;
    if (r.res > 0) {
      const ring::Cqe cqe{0, r.res, r.flags};
      auto bytes = group.get(cqe);
      check(static_cast<bool>(bytes), "multishot: a result without a buffer of the group", r.flags);
      received.insert(received.end(), bytes->begin(), bytes->end());
      check(static_cast<bool>(group.put(cqe)), "multishot: a buffer that cannot be put back");
      continue;
    }
    check(r.res != 0, "multishot: end of stream before the end",
          static_cast<long long>(received.size()));
    // An error ended the stream (or the kernel ran out of buffers, which the record
    // reports when the request produced nothing): the bytes are still in the socket.
    check(run.injected(r.res) || r.res == -ENOBUFS, "multishot: an unexpected error", r.res);
    run.failed(r.res);
    chunks.rearm();
  }
  co_await chunks.close();
}

Task<void> socket_stream(Run& run, ring::BufferGroup& group) {
  const auto fds = make_socketpair();
  Fd receiving(fds[0]);
  Fd sending(fds[1]);
  std::vector<std::byte> sent(socket_bytes);
  for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = pattern(i + 7);
  std::vector<std::byte> received;
  std::vector<Task<void>> sides;
  sides.push_back(socket_sender(run, sending.get(), sent));
  sides.push_back(socket_receiver(run, receiving.get(), group, received));
  co_await when_all(std::move(sides));
  check(received == sent, "multishot: the bytes received are not the bytes sent",
        static_cast<long long>(received.size()));
}

// --- recvstream: net's multishot receive into a BufferPool ------------------------------

Task<void> pool_receiver(Run& run, int fd, net::BufferPool& pool,
                         std::vector<std::byte>& received) {
  net::RecvStream chunks(fd, false, pool, {.bound = 3});
  while (received.size() < socket_bytes) {
    ++run.awaits;
    Result<net::BufferLease> chunk = co_await chunks.next();
    ++run.resumed;
    if (!chunk) {
      // The stream is over: an error it reports must be one the script injected, and
      // never the pool running dry, which it handles itself.
      const int error = chunk.error().value();
      check(run.injected(-error) && error != ENOBUFS, "recvstream: an unexpected error", error);
      break;
    }
    check(!chunk->empty(), "recvstream: end of stream before the end",
          static_cast<long long>(received.size()));
    received.insert(received.end(), chunk->data().begin(), chunk->data().end());
  }
  co_await chunks.close();
}

Task<void> pool_stream(Run& run, net::BufferPool& pool) {
  const auto fds = make_socketpair();
  Fd receiving(fds[0]);
  Fd sending(fds[1]);
  std::vector<std::byte> sent(socket_bytes);
  for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = pattern(i + 13);
  std::vector<std::byte> received;
  std::vector<Task<void>> sides;
  sides.push_back(socket_sender(run, sending.get(), sent));
  sides.push_back(pool_receiver(run, receiving.get(), pool, received));
  co_await when_all(std::move(sides));
  check(
      received.size() <= sent.size() && std::equal(received.begin(), received.end(), sent.begin()),
      "recvstream: the bytes received are not the bytes sent",
      static_cast<long long>(received.size()));
}

// --- timers, stops and races ---------------------------------------------------------------

Task<void> short_sleep(Run& run, std::chrono::nanoseconds duration) {
  const IoResult r = co_await counted(run, sleep_for(duration));
  check(r.res == 0, "a sleep that did not sleep", r.res);
}

Task<void> stopped_sleep(Run& run, std::stop_token stop) {
  const IoResult r = co_await counted(run, sleep_for(10s).with_stop(std::move(stop)));
  check(r.res == -ECANCELED && r.outcome == Outcome::cancelled, "a stopped sleep's result", r.res);
}

Task<void> stopper(Run& run, std::stop_source& source) {
  co_await counted(run, nop());
  source.request_stop();
}

Task<void> timers(Run& run) {
  std::vector<Task<void>> sleeps;
  for (int i = 0; i < 4; ++i) sleeps.push_back(short_sleep(run, i * 10us));
  std::stop_source source;
  sleeps.push_back(stopped_sleep(run, source.get_token()));
  sleeps.push_back(stopper(run, source));
  co_await when_all(std::move(sleeps));
}

// A read of a pipe nobody writes: it can only be cancelled, time out or fail.
auto idle_read(int fd, std::span<std::byte> buffer) {
  return io(
      [fd, buffer](ring::Sqe& sqe) { ring::prep_read(sqe, fd, buffer, ring::current_position); });
}

Task<void> races(Run& run, int idle_fd) {
  std::array<std::byte, 16> buffer{};
  const auto first = co_await when_any(
      [&](std::stop_token stop) -> Task<IoResult> {
        co_return co_await counted(run, sleep_for(20us).with_stop(std::move(stop)));
      },
      [&](std::stop_token stop) -> Task<IoResult> {
        co_return co_await counted(run, idle_read(idle_fd, buffer).with_stop(std::move(stop)));
      });
  if (first.index == 0) {
    check(first.value.res == 0, "the sleep won with an error", first.value.res);
  } else {
    // Only an injected error ends the idle read before the sleep.
    check(run.injected(first.value.res), "the idle read won", first.value.res);
  }
  const IoResult r = co_await counted(run, idle_read(idle_fd, buffer).with_timeout(30us));
  check(r.res < 0, "an idle read returned data", r.res);
  check(r.outcome == Outcome::timed_out || run.injected(r.res), "an idle read's timeout", r.res);
}

// Left waiting on the idle pipe when the workload ends: the loop's destruction cancels
// its read, drains the CQE and destroys its frame.
struct FrameGuard {
  int* destroyed;
  ~FrameGuard() { ++*destroyed; }
};

Task<void> abandoned(Run& run, int idle_fd) {
  FrameGuard guard{&run.abandoned_frames};
  std::array<std::byte, 16> buffer{};
  for (;;) {
    const IoResult r = co_await idle_read(idle_fd, buffer);
    check(r.res < 0 && run.injected(r.res), "the abandoned read returned", r.res);
    run.failed(r.res);
  }
}

// A hang is a crash: a loop that stops making progress still fires this timer (its
// timeout is not an operation the injector may fail).
Task<void> watchdog(Run& run, std::stop_token stop) {
  const IoResult r = co_await sleep_for(time_limit).with_stop(std::move(stop));
  if (r.res == 0) fail("the loop hangs (parts finished: bit mask)", run.parts_done);
}

// Runs one part of the workload and notes that it finished, for the watchdog's report.
Task<void> part(Run& run, unsigned index, Task<void> task) {
  co_await std::move(task);
  run.parts_done |= 1U << index;
}

Task<void> workload(Run& run, ring::BufferGroup& group, net::BufferPool& pool, int idle_fd) {
  std::stop_source finished;
  EventLoop::current()->spawn(watchdog(run, finished.get_token()));
  EventLoop::current()->spawn(abandoned(run, idle_fd));
  std::vector<Task<void>> parts;
  parts.push_back(part(run, 0, pipe_stream(run)));
  parts.push_back(part(run, 1, socket_stream(run, group)));
  parts.push_back(part(run, 2, pool_stream(run, pool)));
  parts.push_back(part(run, 3, timers(run)));
  parts.push_back(part(run, 4, races(run, idle_fd)));
  co_await when_all(std::move(parts));
  finished.request_stop();
  run.done = true;
}

FaultPlan plan_of(std::span<const std::uint8_t> input) {
  FaultPlan plan;
  plan.script = input.subspan(header_bytes);
  // An empty script would be no script at all (the seeded mode): no faults, as at the end
  // of a script.
  if (plan.script.empty()) return plan;
  auto ppm = [](std::uint8_t byte) { return std::uint32_t{byte} * 1'000'000 / 255; };
  plan.short_count_ppm = ppm(input[0]);
  plan.error_ppm = ppm(input[1]);
  plan.multishot_end_ppm = ppm(input[2]);
  plan.enter_busy_ppm = ppm(input[3]);
  plan.reorder_ppm = ppm(input[4]);
  plan.overflow_flag_ppm = ppm(input[5]);
  plan.delay_ppm = ppm(input[6]);
  plan.errors = {EINTR, EAGAIN, ECANCELED, ENOBUFS, ECONNRESET, EPIPE, EIO, ENOMEM};
  return plan;
}

}  // namespace
}  // namespace coring

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coring;
  if (size < header_bytes) return 0;
  const FaultPlan plan = plan_of(std::span(data, size));
  FaultInjector faults(plan);
  Run run(plan);
  const auto idle = make_pipe();
  Fd idle_read_end(idle[0]);
  Fd idle_write_end(idle[1]);
  {
    EventLoop loop(LoopOptions{.entries = 8, .cq_entries = 16, .max_in_flight = 14});
    loop.set_hooks(&faults);
    auto group = ring::BufferGroup::create(coring::detail::LoopOps(loop).ring(), buffer_group_id,
                                           buffer_bytes, buffer_count);
    if (!group) fail("BufferGroup::create", group.error().value());
    net::BufferPool pool(
        loop, {.buffer_size = buffer_bytes, .count = buffer_count, .group_id = pool_group_id});
    loop.run(workload(run, *group, pool, idle_read_end.get()));
    check(run.done, "the workload did not finish");
    check(loop.unhandled_exceptions() == 0, "an exception escaped a task");
    check(run.abandoned_frames == 0, "the abandoned task ended early");
    // The loop's destruction: cancels the abandoned read, drains, destroys its frame.
  }
  if (std::getenv("LOOP_FUZZ_VERBOSE") != nullptr) {  // what an input did, when replaying it
    const FaultCounts& c = faults.counts();
    std::fprintf(
        stderr,
        "loop_fuzz: script %zu/%zu bytes read; faults: %llu short, %llu errors, %llu "
        "multishot ends, %llu busy enters, %llu reorders, %llu overflow flags, %llu "
        "late CQEs; %llu awaits, %llu failures met\n",
        faults.script_consumed(), plan.script.size(),
        static_cast<unsigned long long>(c.short_counts), static_cast<unsigned long long>(c.errors),
        static_cast<unsigned long long>(c.multishot_ends),
        static_cast<unsigned long long>(c.enter_busy), static_cast<unsigned long long>(c.reorders),
        static_cast<unsigned long long>(c.overflow_flags),
        static_cast<unsigned long long>(faults.delays()),
        static_cast<unsigned long long>(run.awaits), static_cast<unsigned long long>(run.failures));
  }
  check(run.abandoned_frames == 1, "the abandoned task's frame", run.abandoned_frames);
  check(run.awaits == run.resumed, "awaits and resumptions differ",
        static_cast<long long>(run.awaits), static_cast<long long>(run.resumed));
  return 0;
}
