// The fault-injection seam: each kind of fault happens, a program that handles what
// the kernel may do stays correct under all of them at once, and a seed replays.
#include "coring/testing/fault.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "coring/ring/buffer_ring.hpp"
#include "coring/ring/prep.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/multishot.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"
#include "support.hpp"

namespace coring {
namespace {

using testing::FaultCounts;
using testing::FaultInjector;
using testing::FaultPlan;

using namespace std::chrono_literals;
using ring::test::Fd;

std::byte pattern(std::size_t i) { return static_cast<std::byte>((i * 131 + i / 251) & 0xff); }

// Errors the injector makes up: the request never ran, so trying again is right.
bool injected(const IoResult& r, const FaultPlan& plan) {
  for (int error : plan.errors) {
    if (r.res == -error) return true;
  }
  return false;
}

// Moves `size` bytes in as many requests as it takes — `fill(sqe, done, at)` prepares
// the one for the bytes from `done` on, at file offset `at` (or the pipe's position when
// `offset` is ring::current_position) — going on after short transfers and trying again
// after injected errors.
template <typename Fill>
Task<void> transfer_all(std::size_t size, std::uint64_t offset, Fill fill, const FaultPlan& plan,
                        std::vector<std::int32_t>* trace, const char* what) {
  std::size_t done = 0;
  for (int attempts = 0; done < size; ++attempts) {
    if (attempts > 10'000) throw std::runtime_error(std::string(what) + ": no progress");
    const std::uint64_t at = offset == ring::current_position ? offset : offset + done;
    const IoResult r = co_await io([&](ring::Sqe& sqe) { fill(sqe, done, at); });
    if (trace != nullptr) trace->push_back(r.res);
    if (injected(r, plan)) continue;
    if (r.res <= 0) throw std::system_error(r.error(), std::string(what) + ": early end");
    done += r.value();
  }
}

Task<void> write_all(int fd, std::span<const std::byte> data, std::uint64_t offset,
                     const FaultPlan& plan, std::vector<std::int32_t>* trace) {
  return transfer_all(
      data.size(), offset,
      [fd, data](ring::Sqe& sqe, std::size_t done, std::uint64_t at) {
        ring::prep_write(sqe, fd, data.subspan(done), at);
      },
      plan, trace, "write");
}

Task<void> read_exact(int fd, std::span<std::byte> data, std::uint64_t offset,
                      const FaultPlan& plan, std::vector<std::int32_t>* trace) {
  return transfer_all(
      data.size(), offset,
      [fd, data](ring::Sqe& sqe, std::size_t done, std::uint64_t at) {
        ring::prep_read(sqe, fd, data.subspan(done), at);
      },
      plan, trace, "read");
}

FaultPlan every_fault(std::uint64_t seed) {
  FaultPlan plan;
  plan.seed = seed;
  plan.short_count_ppm = 300'000;
  plan.error_ppm = 100'000;
  plan.enter_busy_ppm = 100'000;
  plan.reorder_ppm = 500'000;
  plan.overflow_flag_ppm = 100'000;
  return plan;
}

// One coroutine on a loop under `faults` writing `bytes` of pattern to `fd` in 2 KiB
// requests and reading them back; each request's result goes into `trace`. Returns
// whether the file read back as written.
bool write_then_read(FaultInjector& faults, int fd, std::size_t bytes,
                     std::vector<std::int32_t>& trace) {
  std::vector<std::byte> data(bytes);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = pattern(i);
  std::vector<std::byte> back(data.size());
  EventLoop loop;
  loop.set_hooks(&faults);
  auto body = [&]() -> Task<void> {
    for (std::size_t at = 0; at < data.size(); at += 2048) {
      co_await write_all(fd, std::span(data).subspan(at, 2048), at, faults.plan(), &trace);
    }
    co_await read_exact(fd, back, 0, faults.plan(), &trace);
  };
  loop.run(body());
  return back == data;
}

// A stream of 48 KiB through a pipe, written in 4 KiB requests and read in 3 KiB ones,
// with short counts, errors, busy enters, reordered batches and overflow flags: every
// byte arrives once, in order, for every seed.
TEST(RuntimeFault, PipeStreamArrivesIntactUnderEveryFault) {
  constexpr std::size_t size = 48 * 1024;
  std::vector<std::byte> sent(size);
  for (std::size_t i = 0; i < size; ++i) sent[i] = pattern(i);
  FaultCounts total;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    Fd read_end(fds[0]);
    Fd write_end(fds[1]);
    FaultInjector faults(every_fault(seed));
    std::vector<std::byte> received(size);
    {
      EventLoop loop;
      loop.set_hooks(&faults);
      auto writer = [&]() -> Task<void> {
        for (std::size_t at = 0; at < size; at += 4096) {
          co_await write_all(write_end.get(), std::span(sent).subspan(at, 4096),
                             ring::current_position, faults.plan(), nullptr);
        }
      };
      auto reader = [&]() -> Task<void> {
        for (std::size_t at = 0; at < size; at += 3072) {
          const std::size_t n = std::min<std::size_t>(3072, size - at);
          co_await read_exact(read_end.get(), std::span(received).subspan(at, n),
                              ring::current_position, faults.plan(), nullptr);
        }
      };
      auto body = [&]() -> Task<void> {
        loop.spawn(writer());
        co_await reader();
      };
      loop.run(body());
      EXPECT_EQ(loop.unhandled_exceptions(), 0U) << "seed " << seed;
    }
    ASSERT_EQ(received, sent) << "seed " << seed;
    const FaultCounts& c = faults.counts();
    total.short_counts += c.short_counts;
    total.errors += c.errors;
    total.enter_busy += c.enter_busy;
    total.reorders += c.reorders;
    total.overflow_flags += c.overflow_flags;
  }
  EXPECT_GT(total.short_counts, 0U);
  EXPECT_GT(total.errors, 0U);
  EXPECT_GT(total.enter_busy, 0U);
  EXPECT_GT(total.reorders, 0U);
  EXPECT_GT(total.overflow_flags, 0U);
}

// One coroutine writing a file in 2 KiB requests and reading it back: its order of
// submissions and completions does not depend on timing, so the same seed gives the
// same faults and the same results, step by step; another seed does not.
TEST(RuntimeFault, SameSeedReplaysTheSameRun) {
  ring::test::TempDir dir;
  auto run = [&](std::uint64_t seed) {
    Fd file(::open(dir.file("replay").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (file.get() < 0) throw std::system_error(errno, std::generic_category(), "open");
    FaultInjector faults(every_fault(seed));
    std::vector<std::int32_t> trace;
    EXPECT_TRUE(write_then_read(faults, file.get(), 64 * 1024, trace)) << "seed " << seed;
    return std::pair(trace, faults.counts().total());
  };
  const auto first = run(7);
  const auto again = run(7);
  const auto other = run(8);
  EXPECT_GT(first.second, 0U);
  EXPECT_EQ(first.first, again.first);
  EXPECT_EQ(first.second, again.second);
  EXPECT_NE(first.first, other.first);
}

// A deterministic plan (the default) waits, before a reap hands its batch over, for the
// requests that finish on their own — here a write forced onto an io-wq worker — and
// hands the batch over in submission order: the write's coroutine resumes before the
// NOP's, although the NOP was done long before the worker got to the write. Two runs
// give the same digest.
TEST(RuntimeFault, DeterministicPlanWaitsForWorkersAndKeepsSubmissionOrder) {
  ring::test::TempDir dir;
  const std::vector<std::byte> data(1 << 20, std::byte{0x5a});
  auto run = [&](std::uint64_t& digest) {
    Fd file(::open(dir.file("settle").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (file.get() < 0) throw std::system_error(errno, std::generic_category(), "open");
    FaultPlan plan;  // no faults: only settling and ordering
    FaultInjector faults(plan);
    std::vector<std::string> order;
    {
      EventLoop loop;
      loop.set_hooks(&faults);
      auto write = [&]() -> Task<void> {
        const IoResult r = co_await io([&](ring::Sqe& sqe) {
          ring::prep_write(sqe, file.get(), data, 0);
          sqe.flags |= ring::sqe_flags::async;  // always through an io-wq worker
        });
        EXPECT_EQ(r.res, static_cast<std::int32_t>(data.size()));
        order.emplace_back("write");
      };
      auto nop = [&]() -> Task<void> {
        const IoResult r = co_await io([](ring::Sqe& sqe) { ring::prep_nop(sqe); });
        EXPECT_EQ(r.res, 0);
        order.emplace_back("nop");
      };
      auto body = [&]() -> Task<void> { co_await when_all(write(), nop()); };
      loop.run(body());
    }
    // (Whether the reap had to wait for the worker depends on how slow the loop is — under
    // ASan it may not — the order does not.)
    EXPECT_EQ(order, (std::vector<std::string>{"write", "nop"}));
    EXPECT_EQ(faults.settle_timeouts(), 0U);
    digest = faults.digest();
  };
  std::uint64_t first = 0;
  std::uint64_t again = 1;
  run(first);
  run(again);
  EXPECT_EQ(first, again);
}

// io_uring runs a shutdown on an io-wq worker, so a send submitted right after it in the
// same batch usually goes first. A deterministic plan makes the shutdown at its place in
// the submission: the send after it always fails with EPIPE, and the one before it always
// gets through. A shutdown of something that is not a socket gets the kernel's error.
TEST(RuntimeFault, DeterministicPlanShutsDownAtItsPlaceInTheSubmission) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  Fd a(pair[0]);
  Fd b(pair[1]);
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  Fd pipe_read(pipe_fds[0]);
  Fd pipe_write(pipe_fds[1]);
  const std::array<std::byte, 3> data{std::byte{1}, std::byte{2}, std::byte{3}};
  for (int round = 0; round < 20; ++round) {
    FaultPlan plan;  // no faults
    FaultInjector faults(plan);
    std::vector<std::int32_t> results;
    {
      EventLoop loop;
      loop.set_hooks(&faults);
      auto send = [&]() -> Task<std::int32_t> {
        co_return (co_await io([&](ring::Sqe& sqe) {
          ring::prep_send(sqe, a.get(), data, MSG_NOSIGNAL);
        })).res;
      };
      auto shut = [&](int fd) -> Task<std::int32_t> {
        co_return (co_await io([fd](ring::Sqe& sqe) {
          ring::prep_shutdown(sqe, fd, SHUT_WR);
        })).res;
      };
      auto body = [&]() -> Task<void> {
        // One submission: send, shutdown, send, shutdown of a pipe.
        auto [before, shut_down, after, not_socket] =
            co_await when_all(send(), shut(a.get()), send(), shut(pipe_write.get()));
        results = {before, shut_down, after, not_socket};
      };
      loop.run(body());
    }
    ASSERT_EQ(results, (std::vector<std::int32_t>{3, 0, -EPIPE, -ENOTSOCK})) << "round " << round;
    std::array<std::byte, 8> got{};
    ASSERT_EQ(::recv(b.get(), got.data(), got.size(), 0), 3);
    ASSERT_EQ(::recv(b.get(), got.data(), got.size(), 0), 0);  // the end of the stream
    // A fresh pair for the next round.
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    a = Fd(pair[0]);
    b = Fd(pair[1]);
  }
}

// A request that looks as if it finishes on its own but waits for something else — an
// open of a FIFO for reading, which waits for a writer (with O_CREAT, so that io_uring
// opens it on a worker, blocking, rather than inline with O_NONBLOCK, which would not
// wait) — makes the settling wait give up after
// settle_limit, counted, and the loop goes on: the writer, opened by a timer's coroutine
// after the wait gave up, lets the open finish.
TEST(RuntimeFault, SettlingGivesUpOnARequestThatWaitsForOthers) {
  ring::test::TempDir dir;
  const std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  FaultPlan plan;
  plan.settle_limit = std::chrono::milliseconds(50);
  FaultInjector faults(plan);
  Fd writer;
  std::int32_t opened = -1;
  {
    EventLoop loop;
    loop.set_hooks(&faults);
    auto open_reader = [&]() -> Task<void> {
      const IoResult r = co_await io([&](ring::Sqe& sqe) {
        ring::prep_openat(sqe, AT_FDCWD, fifo.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
      });
      opened = r.res;
    };
    auto open_writer = [&]() -> Task<void> {
      co_await sleep_for(100ms);
      writer = Fd(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    };
    auto body = [&]() -> Task<void> { co_await when_all(open_reader(), open_writer()); };
    loop.run(body());
  }
  ASSERT_GE(writer.get(), 0) << std::strerror(errno);
  ASSERT_GE(opened, 0);
  ::close(opened);
  EXPECT_EQ(faults.settle_timeouts(), 1U);
  EXPECT_GE(faults.settle_waits(), 1U);
}

struct AcceptPrep {
  int fd;
  void operator()(ring::Sqe& sqe) const noexcept {
    ring::prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC);
  }
};

std::uint16_t local_port(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

std::uint16_t peer_port(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof(address);
  ::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

// Multishot accepts that the injector ends after one CQE in two (and reordered
// batches): the record re-arms each time, and every connection is delivered once.
TEST(RuntimeFault, EndedMultishotAcceptDeliversEveryConnectionOnce) {
  auto listener = ring::test::make_listener();
  FaultPlan plan;
  plan.seed = 3;
  plan.multishot_end_ppm = 500'000;
  plan.reorder_ppm = 500'000;
  FaultInjector faults(plan);
  constexpr int connections = 40;
  std::vector<Fd> clients;
  std::vector<int> accepted;
  std::uint64_t arms = 0;
  {
    EventLoop loop;
    loop.set_hooks(&faults);
    std::stop_source deadline;
    auto watchdog = [](std::stop_source& source) -> Task<void> {
      co_await sleep_for(10s);
      source.request_stop();
    };
    loop.spawn(watchdog(deadline));
    auto body = [&]() -> Task<void> {
      Multishot<AcceptPrep> accepts(AcceptPrep{listener.fd.get()},
                                    {.bound = 64, .fd_results = true}, deadline.get_token());
      accepts.start();
      std::thread connector([&] {
        for (int i = 0; i < connections; ++i) {
          Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
          if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&listener.address),
                        sizeof(listener.address)) != 0) {
            ADD_FAILURE() << "connect: " << std::strerror(errno);
            return;
          }
          clients.push_back(std::move(fd));
          std::this_thread::sleep_for(1ms);  // one CQE at a time, mostly
        }
      });
      while (accepted.size() < connections) {
        const IoResult r = co_await accepts.next();
        if (!r) break;
        accepted.push_back(r.res);
      }
      connector.join();
      arms = accepts.arms();
      co_await accepts.close();
      deadline.request_stop();
    };
    loop.run(body());
  }
  ASSERT_EQ(accepted.size(), static_cast<std::size_t>(connections));
  ASSERT_EQ(clients.size(), static_cast<std::size_t>(connections));
  // Every client's connection was accepted exactly once (in connect order: one queue).
  for (std::size_t i = 0; i < accepted.size(); ++i) {
    EXPECT_EQ(peer_port(accepted[i]), local_port(clients[i].get())) << "connection " << i;
    ::close(accepted[i]);
  }
  EXPECT_GT(faults.counts().multishot_ends, 0U);
  EXPECT_GT(arms, 1U);  // re-armed after the injected ends
}

TEST(RuntimeFault, PlanIsCheckedWhenTheInjectorIsMade) {
  FaultPlan too_likely;
  too_likely.error_ppm = 1'000'001;
  EXPECT_THROW(FaultInjector{too_likely}, std::invalid_argument);
  FaultPlan negative;
  negative.errors = {-EINTR};
  EXPECT_THROW(FaultInjector{negative}, std::invalid_argument);
  FaultPlan empty;
  empty.error_ppm = 10;
  empty.errors.clear();
  EXPECT_THROW(FaultInjector{empty}, std::invalid_argument);
  FaultPlan fine;
  fine.error_ppm = 1'000'000;
  EXPECT_NO_THROW(FaultInjector{fine});
}

// Script mode: each decision reads the script — one byte for whether (b / 256 below the
// probability), one for which error — and an exhausted script injects nothing.
TEST(RuntimeFault, ScriptDecidesEachFaultInOrder) {
  const std::vector<std::uint8_t> script = {0, 1, 7, 0, 0};
  FaultPlan plan;
  plan.error_ppm = 1;  // only a byte 0 says yes
  plan.errors = {EIO, EPIPE};
  plan.script = script;
  FaultInjector faults(plan);
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  Fd read_end(fds[0]);
  Fd write_end(fds[1]);
  const std::string data = "abcd";
  std::vector<std::int32_t> results;
  {
    EventLoop loop;
    loop.set_hooks(&faults);
    auto body = [&]() -> Task<void> {
      for (int i = 0; i < 4; ++i) {
        const IoResult r = co_await io([&](ring::Sqe& sqe) {
          ring::prep_write(sqe, write_end.get(), ring::test::bytes_of(data),
                           ring::current_position);
        });
        results.push_back(r.res);
      }
    };
    loop.run(body());
  }
  EXPECT_EQ(results, (std::vector<std::int32_t>{-EPIPE, 4, -EIO, 4}));
  EXPECT_EQ(faults.script_consumed(), script.size());
  EXPECT_EQ(faults.counts().errors, 2U);
  // The two writes that ran, and only they, reached the pipe.
  std::array<char, 16> back{};
  EXPECT_EQ(::read(read_end.get(), back.data(), back.size()), 8);
}

// Hooks given in LoopOptions stand between the loop and its ring from its first
// submission, as set_hooks() does from its call; set_hooks(nullptr) takes them away.
TEST(RuntimeFault, HooksFromLoopOptionsSeeTheFirstRequest) {
  const std::vector<std::uint8_t> script = {0, 0};
  FaultPlan plan;
  plan.error_ppm = 1;  // only a byte 0 says yes
  plan.errors = {EIO};
  plan.script = script;
  FaultInjector faults(plan);
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  Fd read_end(fds[0]);
  Fd write_end(fds[1]);
  const std::string data = "abcd";
  std::vector<std::int32_t> results;
  {
    EventLoop loop(LoopOptions{.hooks = &faults});
    EXPECT_EQ(loop.hooks(), &faults);
    auto body = [&]() -> Task<void> {
      for (int i = 0; i < 2; ++i) {
        const IoResult r = co_await io([&](ring::Sqe& sqe) {
          ring::prep_write(sqe, write_end.get(), ring::test::bytes_of(data),
                           ring::current_position);
        });
        results.push_back(r.res);
      }
    };
    loop.run(body());
    loop.set_hooks(nullptr);
    EXPECT_EQ(loop.hooks(), nullptr);
  }
  EXPECT_EQ(results, (std::vector<std::int32_t>{-EIO, 4}));
  EXPECT_EQ(faults.counts().errors, 1U);
}

// Hooks serve one loop at a time, and hooks destroyed first let go of their loop, which
// goes on without them (it used to call into the destroyed injector).
TEST(RuntimeFault, AnInjectorServesOneLoopAndLetsGoWhenDestroyedFirst) {
  FaultPlan plan;
  plan.error_ppm = 500'000;
  plan.errors = {EINTR};
  EventLoop loop;
  {
    FaultInjector faults(plan);
    loop.set_hooks(&faults);
    EXPECT_EQ(faults.loop(), &loop);
    EventLoop other;
    EXPECT_THROW(other.set_hooks(&faults), std::logic_error);
    EXPECT_THROW(EventLoop(LoopOptions{.hooks = &faults}), std::logic_error);
    EXPECT_EQ(other.hooks(), nullptr);
    loop.run([]() -> Task<void> {
      for (int i = 0; i < 20; ++i) (void)co_await nop();
    }());
    EXPECT_FALSE(faults.holds_completions());
  }
  EXPECT_EQ(loop.hooks(), nullptr);
  const IoResult r = loop.run([]() -> Task<IoResult> { co_return co_await nop(); }());
  EXPECT_EQ(r.res, 0);
  // Detached, an injector may serve another loop.
  FaultInjector again(plan);
  {
    EventLoop first(LoopOptions{.hooks = &again});
    first.set_hooks(nullptr);
    EXPECT_EQ(again.loop(), nullptr);
    EventLoop second(LoopOptions{.hooks = &again});
    EXPECT_EQ(again.loop(), &second);
  }
  EXPECT_EQ(again.loop(), nullptr);
}

// The same script on a program whose order does not depend on timing gives the same run,
// step by step, with every kind of fault; another script does not; and the program stays
// correct whatever the bytes say.
TEST(RuntimeFault, SameScriptReplaysTheSameRun) {
  ring::test::TempDir dir;
  auto run = [&](const std::vector<std::uint8_t>& script) {
    Fd file(::open(dir.file("script").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (file.get() < 0) throw std::system_error(errno, std::generic_category(), "open");
    FaultPlan plan = every_fault(1);
    plan.script = script;
    FaultInjector faults(plan);
    std::vector<std::int32_t> trace;
    EXPECT_TRUE(write_then_read(faults, file.get(), 32 * 1024, trace));
    EXPECT_GT(faults.counts().errors, 0U);
    EXPECT_GT(faults.counts().short_counts, 0U);
    EXPECT_EQ(faults.script_consumed(), script.size());  // a plain run once it is used up
    return trace;
  };
  std::vector<std::uint8_t> script(120);
  for (std::size_t i = 0; i < script.size(); ++i)
    script[i] = static_cast<std::uint8_t>(i * 37 % 64);  // below 64: many faults
  std::vector<std::uint8_t> other = script;
  other[0] ^= 0x80;
  const auto first = run(script);
  EXPECT_EQ(first, run(script));
  EXPECT_NE(first, run(other));
}

// Late CQEs: final CQEs held back for a later reap (with reordered batches and errors).
// Coroutines resume and submit in between, and the loop still completes every operation
// once and drains when destroyed with a read waiting.
TEST(RuntimeFault, LateCompletionsStillCompleteEachOperationOnce) {
  constexpr std::size_t size = 32 * 1024;
  std::vector<std::byte> sent(size);
  for (std::size_t i = 0; i < size; ++i) sent[i] = pattern(i);
  std::uint64_t delays = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    Fd read_end(fds[0]);
    Fd write_end(fds[1]);
    int idle[2];
    ASSERT_EQ(::pipe2(idle, O_CLOEXEC), 0);
    Fd idle_read(idle[0]);
    Fd idle_write(idle[1]);
    FaultPlan plan;
    plan.seed = seed;
    plan.delay_ppm = 400'000;
    plan.reorder_ppm = 500'000;
    plan.error_ppm = 100'000;
    FaultInjector faults(plan);
    std::vector<std::byte> received(size);
    std::array<std::byte, 8> idle_buffer{};
    {
      EventLoop loop;
      loop.set_hooks(&faults);
      auto idler = [&]() -> Task<void> {
        for (;;) {
          co_await io([&](ring::Sqe& sqe) {
            ring::prep_read(sqe, idle_read.get(), idle_buffer, ring::current_position);
          });
        }
      };
      auto body = [&]() -> Task<void> {
        loop.spawn(idler());  // still waiting when the loop is destroyed
        loop.spawn(write_all(write_end.get(), sent, ring::current_position, plan, nullptr));
        co_await read_exact(read_end.get(), received, ring::current_position, plan, nullptr);
        const IoResult slept = co_await sleep_for(10us);
        EXPECT_EQ(slept.res, 0);
      };
      loop.run(body());
      EXPECT_EQ(loop.unhandled_exceptions(), 0U) << "seed " << seed;
    }
    ASSERT_EQ(received, sent) << "seed " << seed;
    delays += faults.delays();
  }
  EXPECT_GT(delays, 0U);
}

// A loop refuses to let go of an injector that holds a completion back (the request's
// CQE would be lost, and the injector's own NOP would reach the loop as no operation's),
// and lets go of it once it is quiesced and has handed everything over.
TEST(RuntimeFault, DetachIsRefusedWhileTheInjectorHoldsACompletion) {
  FaultPlan plan;
  plan.delay_ppm = 1'000'000;  // every final CQE is held for a later reap
  FaultInjector faults(plan);
  EventLoop loop;
  loop.set_hooks(&faults);
  int completions = 0;
  IoResult result{-1, 0, Outcome::completed};
  loop.spawn([](int& count, IoResult& out) -> Task<void> {
    out = co_await nop();
    ++count;
  }(completions, result));
  for (int turn = 0; turn < 100 && !faults.holds_completions(); ++turn) (void)loop.poll();
  ASSERT_TRUE(faults.holds_completions());
  ASSERT_EQ(completions, 0);
  EXPECT_THROW(loop.set_hooks(nullptr), std::logic_error);

  faults.quiesce();
  for (int turn = 0; turn < 100 && faults.holds_completions(); ++turn) (void)loop.poll();
  ASSERT_FALSE(faults.holds_completions());
  loop.set_hooks(nullptr);
  for (int turn = 0; turn < 100 && completions == 0; ++turn) (void)loop.poll();
  EXPECT_EQ(completions, 1);
  EXPECT_EQ(result.res, 0);
  EXPECT_EQ(faults.delays(), 1U);
  // Nothing of the injector's is left for the loop to see without it.
  for (int turn = 0; turn < 10; ++turn) (void)loop.poll();
  EXPECT_EQ(completions, 1);
  EXPECT_EQ(loop.in_flight(), 1U);  // the loop's own wake read
}

// The one decoder of the user_data tag space tells every reserved value and every
// tagged address apart.
TEST(RuntimeFault, UserDataDecodesEveryKind) {
  namespace ud = detail::user_data;
  alignas(16) static std::byte object[16];
  const auto address = reinterpret_cast<std::uint64_t>(&object);
  EXPECT_EQ(ud::decode(address), ud::Kind::operation);
  EXPECT_EQ(ud::decode(address | ud::linked_timeout_tag), ud::Kind::linked_timeout);
  EXPECT_EQ(ud::decode(address | ud::msg_ring_sent_tag), ud::Kind::msg_ring_sent);
  EXPECT_EQ(ud::address_of(address | ud::linked_timeout_tag), address);
  EXPECT_EQ(ud::address_of(address | ud::msg_ring_sent_tag), address);
  EXPECT_EQ(ud::decode(ud::unowned_data), ud::Kind::unowned);
  EXPECT_EQ(ud::decode(ud::msg_ring_wake_data), ud::Kind::msg_ring_wake);
  for (std::uint64_t value = 0; value < ud::first_address; ++value) {
    const bool hooks = value >= ud::hooks_data_first && value <= ud::hooks_data_last;
    if (hooks) {
      EXPECT_EQ(ud::decode(value), ud::Kind::hooks) << value;
    }
    const bool reserved = value == ud::unowned_data || value == ud::msg_ring_wake_data || hooks;
    EXPECT_EQ(ud::decode(value) == ud::Kind::invalid, !reserved) << value;
  }
  EXPECT_EQ(ud::decode(address | 4), ud::Kind::invalid);
}

// -ENOBUFS means "the group's ring is empty" to a request that selects a provided buffer:
// the injector, which cannot know, leaves that error to the kernel (a RecvStream waiting
// for a buffer to come back would otherwise wait for ever) and lets the request run.
TEST(RuntimeFault, NoInjectedEnobufsForProvidedBufferRequests) {
  FaultPlan plan;
  plan.error_ppm = 1'000'000;
  plan.errors = {ENOBUFS};
  FaultInjector faults(plan);
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  Fd receiving(fds[0]);
  Fd sending(fds[1]);
  ASSERT_EQ(::send(sending.get(), "hello", 5, 0), 5);
  std::array<char, 8> plain{};
  IoResult selected;
  IoResult own_buffer;
  {
    EventLoop loop;
    loop.set_hooks(&faults);
    auto group = ring::BufferGroup::create(detail::LoopOps(loop).ring(), 3, 64, 4);
    ASSERT_TRUE(group);
    auto body = [&]() -> Task<void> {
      selected = co_await io(
          [&](ring::Sqe& sqe) { ring::prep_recv_buffer_select(sqe, receiving.get(), 3, 0, 0); });
      own_buffer = co_await io([&](ring::Sqe& sqe) {
        ring::prep_recv(sqe, receiving.get(), std::as_writable_bytes(std::span(plain)), 0);
      });
    };
    loop.run(body());
  }
  EXPECT_EQ(selected.res, 5);
  EXPECT_EQ(own_buffer.res, -ENOBUFS);  // a request with its own buffer may get it
  EXPECT_EQ(faults.counts().errors, 1U);
}

}  // namespace
}  // namespace coring
