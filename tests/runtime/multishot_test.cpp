// Multishot records: many CQEs from one SQE, a bounded queue with backpressure
// (cancel when full, re-arm when drained), re-arming when the kernel ends a request
// (a full CQ, a provided-buffer ring run dry), the policy that ends a stream on an
// error, and the ways a stream is closed — close(), a stop token, the loop's
// destruction — each of which must release every fd nobody will take.
#include "coring/runtime/multishot.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "coring/ring/buffer_ring.hpp"
#include "coring/ring/prep.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "support.hpp"

namespace coring {
namespace {

using namespace std::chrono_literals;
using ring::test::count_open_fds;
using ring::test::Fd;

struct AcceptPrep {
  int fd;
  void operator()(ring::Sqe& sqe) const noexcept {
    ring::prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC);
  }
};
using AcceptStream = Multishot<AcceptPrep>;

Fd connect_to(const sockaddr_in& address) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    throw std::system_error(errno, std::generic_category(), "connect");
  }
  return fd;
}

std::uint16_t port_of(int fd, bool peer) {
  sockaddr_in address{};
  socklen_t length = sizeof(address);
  auto* raw = reinterpret_cast<sockaddr*>(&address);
  const int rc = peer ? ::getpeername(fd, raw, &length) : ::getsockname(fd, raw, &length);
  return rc == 0 ? ntohs(address.sin_port) : 0;
}

// The accepted fds must be exactly the server ends of `clients`, in connection order.
void expect_server_ends_of(const std::vector<int>& accepted, const std::vector<Fd>& clients) {
  ASSERT_EQ(accepted.size(), clients.size());
  for (std::size_t i = 0; i < accepted.size(); ++i) {
    ASSERT_GE(accepted[i], 0) << "result " << i;
    EXPECT_EQ(port_of(accepted[i], true), port_of(clients[i].get(), false)) << "result " << i;
  }
}

void close_all(const std::vector<int>& fds) {
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
}

// Stops a stream that would otherwise wait for ever because the code under test lost a
// result: the test then fails on its counts instead of hanging.
Task<void> watchdog(std::stop_source& source) {
  co_await sleep_for(10s);
  source.request_stop();
}

// Connections made while the request is armed: each arrives as a CQE with F_MORE of
// the one SQE submitted.
TEST(RuntimeMultishot, AcceptsTwentyConnectionsFromOneSqe) {
  auto listener = ring::test::make_listener();
  std::vector<Fd> clients;
  std::stop_source deadline;
  EventLoop loop;
  loop.spawn(watchdog(deadline));
  auto body = [&]() -> Task<std::vector<int>> {
    AcceptStream accepts(AcceptPrep{listener.fd.get()}, {.bound = 64, .fd_results = true},
                         deadline.get_token());
    accepts.start();
    std::vector<int> fds;
    int with_more = 0;
    for (int i = 0; i < 20; ++i) {
      co_await nop();  // a turn with the request armed and nothing to accept
      clients.push_back(connect_to(listener.address));
      const IoResult r = co_await accepts.next();
      fds.push_back(r.res);
      with_more += r.has_more() ? 1 : 0;
    }
    EXPECT_EQ(with_more, 20);
    EXPECT_EQ(accepts.arms(), 1U);
    EXPECT_EQ(accepts.pauses(), 0U);
    EXPECT_TRUE(accepts.in_flight());
    co_await accepts.close();
    EXPECT_FALSE(accepts.in_flight());
    co_return fds;
  };
  const std::vector<int> accepted = loop.run(body());
  expect_server_ends_of(accepted, clients);
  close_all(accepted);
}

// Fifty connections wait before the consumer reads; the kernel accepts them in one
// burst, far past a bound of 4. The record pauses (cancels), keeps every fd that
// arrived meanwhile, and re-arms once drained: each fd is delivered once, in order.
TEST(RuntimeMultishot, BoundOfFourDeliversFiftyFdsExactlyOnce) {
  auto listener = ring::test::make_listener();
  std::vector<Fd> clients;
  for (int i = 0; i < 50; ++i) clients.push_back(connect_to(listener.address));
  std::stop_source deadline;
  EventLoop loop;
  loop.spawn(watchdog(deadline));
  auto body = [&]() -> Task<std::vector<int>> {
    AcceptStream accepts(AcceptPrep{listener.fd.get()}, {.bound = 4, .fd_results = true},
                         deadline.get_token());
    std::vector<int> fds;
    while (fds.size() < 50) {
      const IoResult r = co_await accepts.next();
      if (!r) break;
      fds.push_back(r.res);
      co_await nop();  // a slow consumer: the loop turns between reads
    }
    EXPECT_GE(accepts.pauses(), 1U);
    EXPECT_EQ(accepts.arms(), accepts.pauses() + 1);
    EXPECT_EQ(accepts.size(), 0U);
    co_await accepts.close();
    co_return fds;
  };
  const std::vector<int> accepted = loop.run(body());
  expect_server_ends_of(accepted, clients);
  close_all(accepted);
}

// A CQ of 8 and twenty waiting connections: the kernel ends the multishot accept when
// the CQ is full (a final CQE carrying an fd, without F_MORE). The record delivers
// that fd and re-arms by itself, with no pause of its own.
TEST(RuntimeMultishot, RearmsWhenTheKernelEndsTheRequest) {
  auto listener = ring::test::make_listener();
  std::vector<Fd> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(connect_to(listener.address));
  LoopOptions options;
  options.entries = 4;
  options.cq_entries = 8;
  std::stop_source deadline;
  EventLoop loop(options);
  loop.spawn(watchdog(deadline));
  auto body = [&]() -> Task<std::vector<int>> {
    AcceptStream accepts(AcceptPrep{listener.fd.get()}, {.bound = 64, .fd_results = true},
                         deadline.get_token());
    std::vector<int> fds;
    int finals = 0;
    while (fds.size() < 20) {
      const IoResult r = co_await accepts.next();
      if (!r) break;
      fds.push_back(r.res);
      finals += r.has_more() ? 0 : 1;
    }
    EXPECT_GE(finals, 1);
    EXPECT_EQ(accepts.arms(), static_cast<std::uint64_t>(finals) + 1);
    EXPECT_EQ(accepts.pauses(), 0U);
    co_await accepts.close();
    co_return fds;
  };
  const std::vector<int> accepted = loop.run(body());
  expect_server_ends_of(accepted, clients);
  close_all(accepted);
}

std::byte pattern_at(std::size_t i) {
  return static_cast<std::byte>((i * 131 + (i >> 9) * 7 + (i >> 17)) & 0xff);
}

struct RecvOutcome {
  std::size_t bytes = 0;
  std::size_t corrupt_at = ~std::size_t{0};
  int end = 1;
  int nobufs_seen = 0;
  std::uint64_t starvations = 0;
  std::uint64_t arms = 0;
};

// 1 MB through a multishot recv whose group holds 8 buffers of 4 KB. The consumer
// keeps every chunk until the ring runs dry (-ENOBUFS ends the request), then checks
// and puts them all back; the record re-arms and the bytes go on, intact and in order,
// until the peer's end of file ends the stream.
TEST(RuntimeMultishot, RecvMegabyteThroughBufferGroupRunningDry) {
  constexpr std::size_t total = std::size_t{1} << 20;
  auto pair = ring::test::make_tcp_pair();
  std::stop_source deadline;
  EventLoop loop;
  loop.spawn(watchdog(deadline));
  auto group = ring::BufferGroup::create(detail::LoopOps(loop).ring(), 3, 4096, 8);
  ASSERT_TRUE(group) << group.error().message();
  std::thread writer([fd = pair.client.get()] {
    std::vector<std::byte> data(total);
    for (std::size_t i = 0; i < total; ++i) data[i] = pattern_at(i);
    std::size_t sent = 0;
    while (sent < total) {
      const ssize_t n = ::send(fd, data.data() + sent, total - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
  });
  auto body = [&]() -> Task<RecvOutcome> {
    const int fd = pair.server.get();
    const std::uint16_t group_id = group->group_id();
    Multishot recv(
        [fd, group_id](ring::Sqe& sqe) { ring::prep_recv_multishot(sqe, fd, group_id, 0); },
        {.bound = 4, .buffer_group = &*group}, deadline.get_token());
    RecvOutcome out;
    std::deque<IoResult> held;
    auto check_and_put_back = [&] {
      for (const IoResult& r : held) {
        const ring::Cqe cqe{0, r.res, r.flags};
        auto bytes = group->get(cqe);
        EXPECT_TRUE(bytes) << bytes.error().message();
        if (!bytes) continue;
        for (std::size_t i = 0; i < bytes->size(); ++i) {
          if ((*bytes)[i] != pattern_at(out.bytes + i) && out.corrupt_at > out.bytes + i) {
            out.corrupt_at = out.bytes + i;
          }
        }
        out.bytes += bytes->size();
        EXPECT_TRUE(group->put(cqe));
      }
      held.clear();
    };
    for (;;) {
      const IoResult r = co_await recv.next();
      if (r.res == -ENOBUFS && !held.empty()) {  // we hold every buffer: give them back
        ++out.nobufs_seen;
        check_and_put_back();
        continue;
      }
      if (r.res <= 0) {
        out.end = r.res;
        break;
      }
      held.push_back(r);
    }
    check_and_put_back();
    out.starvations = recv.starvations();
    out.arms = recv.arms();
    EXPECT_FALSE(recv.in_flight());            // ended by the end of file
    EXPECT_EQ((co_await recv.next()).res, 0);  // the end sticks
    co_return out;
  };
  const RecvOutcome out = loop.run(body());
  pair.server.reset();  // unblocks the writer if the consumer stopped early
  writer.join();
  EXPECT_EQ(out.bytes, total);
  EXPECT_EQ(out.corrupt_at, ~std::size_t{0});
  EXPECT_EQ(out.end, 0);
  EXPECT_GE(out.starvations, 1U);
  EXPECT_GE(out.nobufs_seen, 1);
  EXPECT_GT(out.arms, out.starvations);
}

// Two buffers of 64 bytes, three messages of 64 bytes, one at a time. The consumer
// holds the first two buffers and waits: the third message finds the ring dry. The
// request had produced, so the record re-arms at once for the waiting consumer; that
// request produces nothing, and the consumer hears -ENOBUFS, puts both buffers back,
// and gets the third message from the next arm.
TEST(RuntimeMultishot, RecvRunningDryUnderAWaitingConsumerReportsNoBuffers) {
  auto pair = ring::test::make_tcp_pair();
  std::stop_source deadline;
  EventLoop loop;
  loop.spawn(watchdog(deadline));
  auto group = ring::BufferGroup::create(detail::LoopOps(loop).ring(), 4, 64, 2);
  ASSERT_TRUE(group) << group.error().message();
  auto body = [&]() -> Task<std::vector<int>> {
    const int fd = pair.server.get();
    const std::uint16_t group_id = group->group_id();
    Multishot recv(
        [fd, group_id](ring::Sqe& sqe) { ring::prep_recv_multishot(sqe, fd, group_id, 0); },
        {.bound = 8, .buffer_group = &*group}, deadline.get_token());
    std::vector<int> results;
    std::vector<IoResult> held;
    for (char message = 'a'; message <= 'c'; ++message) {
      const std::string bytes(64, message);
      EXPECT_EQ(::send(pair.client.get(), bytes.data(), bytes.size(), 0), 64);
      IoResult r = co_await recv.next();
      results.push_back(r.res);
      if (r.res == -ENOBUFS) {
        for (const IoResult& h : held) EXPECT_TRUE(group->put(ring::Cqe{0, h.res, h.flags}));
        held.clear();
        r = co_await recv.next();
        results.push_back(r.res);
      }
      auto data = group->get(ring::Cqe{0, r.res, r.flags});
      EXPECT_TRUE(data && data->size() == 64 && (*data)[63] == static_cast<std::byte>(message));
      held.push_back(r);
    }
    EXPECT_EQ(recv.starvations(), 2U);
    EXPECT_EQ(recv.arms(), 3U);
    co_await recv.close();
    for (const IoResult& h : held) EXPECT_TRUE(group->put(ring::Cqe{0, h.res, h.flags}));
    co_return results;
  };
  EXPECT_EQ(loop.run(body()), (std::vector<int>{64, 64, -ENOBUFS, 64}));
}

// Each write to an eventfd wakes the multishot poll once; the consumer resets the
// counter by reading it. Five wakeups, five results, one SQE.
TEST(RuntimeMultishot, PollOnEventfdFiresEveryTime) {
  Fd event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_GE(event.get(), 0);
  std::stop_source deadline;
  EventLoop loop;
  loop.spawn(watchdog(deadline));
  auto body = [&]() -> Task<void> {
    const int fd = event.get();
    Multishot polls([fd](ring::Sqe& sqe) { ring::prep_poll_multishot(sqe, fd, POLLIN); },
                    {.bound = 8}, deadline.get_token());
    polls.start();
    for (int i = 0; i < 5; ++i) {
      const std::uint64_t one = 1;
      EXPECT_EQ(::write(fd, &one, sizeof(one)), 8);
      const IoResult r = co_await polls.next();
      EXPECT_EQ(r.res & POLLIN, POLLIN) << "wakeup " << i;
      EXPECT_TRUE(r.has_more());
      std::uint64_t count = 0;
      EXPECT_EQ(::read(fd, &count, sizeof(count)), 8);
      EXPECT_EQ(count, 1U);
    }
    co_await nop();
    co_await nop();
    EXPECT_EQ(polls.size(), 0U);  // no wakeup without a write
    EXPECT_EQ(polls.arms(), 1U);
    co_await polls.close();
    EXPECT_TRUE(polls.closed());
    EXPECT_EQ((co_await polls.next()).res, -ECANCELED);
  };
  loop.run(body());
}

TEST(RuntimeMultishot, CloseWhileIdle) {
  auto listener = ring::test::make_listener();
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    AcceptStream never_started(AcceptPrep{listener.fd.get()}, {.fd_results = true});
    co_await never_started.close();
    EXPECT_TRUE(never_started.closed());
    EXPECT_EQ(never_started.arms(), 0U);
    EXPECT_EQ((co_await never_started.next()).res, -ECANCELED);

    AcceptStream accepts(AcceptPrep{listener.fd.get()}, {.fd_results = true});
    accepts.start();
    co_await nop();
    EXPECT_TRUE(accepts.in_flight());
    co_await accepts.close();
    EXPECT_FALSE(accepts.in_flight());
    EXPECT_EQ((co_await accepts.next()).res, -ECANCELED);
    EXPECT_EQ((co_await accepts.next()).res, -ECANCELED);
    co_await accepts.close();  // closing twice does nothing
  };
  loop.run(body());
  EXPECT_EQ(loop.in_flight(), 1U);  // only the loop's own wake read
}

// A closed record lets go of its loop: it may be destroyed after the loop, and a stop
// that comes after the loop is gone reaches nothing.
TEST(RuntimeMultishot, ClosedRecordOutlivesItsLoop) {
  auto listener = ring::test::make_listener();
  std::stop_source source;
  std::optional<AcceptStream> accepts;
  accepts.emplace(AcceptPrep{listener.fd.get()}, MultishotOptions{.fd_results = true},
                  source.get_token());
  auto loop = std::make_unique<EventLoop>();
  auto body = [&]() -> Task<void> {
    accepts->start();
    co_await nop();
    EXPECT_TRUE(accepts->in_flight());
    co_await accepts->close();
    EXPECT_TRUE(accepts->closed());
  };
  loop->run(body());
  loop.reset();
  source.request_stop();  // the record's stop callback would reach into the freed loop
  EXPECT_TRUE(accepts->closed());
  accepts.reset();  // as would a cancel link still kept for it
}

// close() from another coroutine while the consumer waits in next(): both resume once
// the final CQE is in, the consumer with -ECANCELED.
TEST(RuntimeMultishot, CloseWakesAWaitingConsumer) {
  auto listener = ring::test::make_listener();
  EventLoop loop;
  auto body = [&]() -> Task<IoResult> {
    AcceptStream accepts(AcceptPrep{listener.fd.get()}, {.fd_results = true});
    IoResult seen{1, 0};
    auto consumer = [](AcceptStream& stream, IoResult& out) -> Task<void> {
      out = co_await stream.next();
    };
    loop.spawn(consumer(accepts, seen));
    co_await nop();  // the consumer starts the request and waits
    EXPECT_TRUE(accepts.in_flight());
    EXPECT_EQ(seen.res, 1);
    co_await accepts.close();
    co_await nop();  // the consumer was queued to resume in the same turn as this frame
    co_return seen;
  };
  const IoResult r = loop.run(body());
  EXPECT_EQ(r.res, -ECANCELED);
}

// With the loop's max_in_flight taken by sleeps (and more sleeps queued behind them),
// the record waits in the loop's queue and never reaches the kernel; close() completes
// it at once, as the kernel would have.
TEST(RuntimeMultishot, CloseWhileWaitingForRoom) {
  auto listener = ring::test::make_listener();
  LoopOptions options;
  options.entries = 2;
  options.max_in_flight = 2;
  EventLoop loop(options);
  auto sleeper = []() -> Task<void> { co_await sleep_for(10s); };
  for (int i = 0; i < 8; ++i) loop.spawn(sleeper());
  auto body = [&]() -> Task<void> {
    const std::uint32_t before = loop.in_flight();
    AcceptStream accepts(AcceptPrep{listener.fd.get()}, {.fd_results = true});
    accepts.start();
    EXPECT_TRUE(accepts.in_flight());
    EXPECT_EQ(loop.in_flight(), before);  // queued, not submitted
    co_await accepts.close();
    EXPECT_FALSE(accepts.in_flight());
    EXPECT_EQ((co_await accepts.next()).res, -ECANCELED);
    EXPECT_EQ(accepts.arms(), 1U);
  };
  loop.run(body());
}

// Closed with 25 fds queued and 10 more connections the armed request is taking: the
// consumer keeps the 5 it took; every other accepted fd is closed.
TEST(RuntimeMultishot, CloseWhileProducingReleasesEveryFd) {
  auto listener = ring::test::make_listener();
  std::vector<Fd> clients;
  for (int i = 0; i < 30; ++i) clients.push_back(connect_to(listener.address));
  EventLoop loop;
  const int baseline = count_open_fds();
  auto body = [&]() -> Task<std::vector<int>> {
    AcceptStream accepts(AcceptPrep{listener.fd.get()}, {.bound = 64, .fd_results = true});
    std::vector<int> taken;
    for (int i = 0; i < 5; ++i) taken.push_back((co_await accepts.next()).res);
    EXPECT_EQ(accepts.size(), 25U);
    for (int i = 0; i < 10; ++i) clients.push_back(connect_to(listener.address));
    co_await accepts.close();
    EXPECT_EQ(accepts.size(), 0U);
    EXPECT_EQ(count_open_fds(), baseline + 5 + 10);  // the fds taken, the 10 new clients
    EXPECT_EQ((co_await accepts.next()).res, -ECANCELED);
    co_return taken;
  };
  const std::vector<int> taken = loop.run(body());
  EXPECT_EQ(count_open_fds(), baseline + 5 + 10);  // the fds taken, the 10 new clients
  for (int fd : taken) EXPECT_GE(fd, 0);
  close_all(taken);
}

// A stop token closes the stream: a consumer waiting on an idle listener resumes with
// -ECANCELED, and so does every later next().
TEST(RuntimeMultishot, StopTokenEndsTheStream) {
  auto listener = ring::test::make_listener();
  EventLoop loop;
  std::stop_source source;
  auto body = [&]() -> Task<void> {
    AcceptStream accepts(AcceptPrep{listener.fd.get()}, {.fd_results = true}, source.get_token());
    auto stopper = [](std::stop_source& s) -> Task<void> {
      co_await sleep_for(5ms);
      s.request_stop();
    };
    loop.spawn(stopper(source));
    const IoResult r = co_await accepts.next();
    EXPECT_EQ(r.res, -ECANCELED);
    EXPECT_EQ(r.outcome, Outcome::cancelled);
    EXPECT_FALSE(accepts.in_flight());
    EXPECT_TRUE(accepts.closed());
    EXPECT_EQ((co_await accepts.next()).res, -ECANCELED);
  };
  const auto start = std::chrono::steady_clock::now();
  loop.run(body());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

// Stopped from another thread with two fds queued: next() returns -ECANCELED, not the
// queued fds, and those are closed.
TEST(RuntimeMultishot, StopFromAnotherThreadReleasesQueuedFds) {
  auto listener = ring::test::make_listener();
  std::vector<Fd> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(connect_to(listener.address));
  EventLoop loop;
  const int baseline = count_open_fds();
  std::stop_source source;
  auto body = [&]() -> Task<int> {
    AcceptStream accepts(AcceptPrep{listener.fd.get()}, {.fd_results = true}, source.get_token());
    const int first = (co_await accepts.next()).res;
    EXPECT_EQ(accepts.size(), 2U);
    std::thread([&] { source.request_stop(); }).join();
    EXPECT_EQ((co_await accepts.next()).res, -ECANCELED);
    EXPECT_FALSE(accepts.in_flight());
    EXPECT_EQ(count_open_fds(), baseline + 1);
    co_return first;
  };
  const int first = loop.run(body());
  EXPECT_GE(first, 0);
  EXPECT_EQ(count_open_fds(), baseline + 1);
  ::close(first);
}

// The loop is destroyed while a multishot accept is armed, six fds sit in its queue and
// twelve more connections are being accepted: the drain ends the request and every fd,
// queued or arriving, is closed. On a ring without DEFER_TASKRUN the kernel posts the
// accepts of the last twelve when connect() returns, until the CQ of 8 is full and it
// ends the request with a final fd: all of them wait unreaped in the CQ (or its
// overflow list) for the drain, which must not re-arm.
TEST(RuntimeMultishot, LoopDestructionReleasesQueuedAndArrivingFds) {
  std::vector<Fd> clients;
  const int baseline = count_open_fds();
  for (const std::optional<std::uint32_t> flags :
       {std::optional<std::uint32_t>(0), std::optional<std::uint32_t>()}) {
    auto listener = ring::test::make_listener();
    LoopOptions options;
    options.entries = 4;
    options.cq_entries = 8;
    options.setup_flags = flags;
    EventLoop loop(options);
    const AcceptStream* seen = nullptr;
    auto holder = [](int fd, const AcceptStream*& out) -> Task<void> {
      AcceptStream accepts(AcceptPrep{fd}, {.bound = 64, .fd_results = true});
      accepts.start();
      out = &accepts;
      co_await sleep_for(10s);
      ADD_FAILURE() << "the holder outlived its loop's destruction";
    };
    loop.spawn(holder(listener.fd.get(), seen));
    loop.poll();
    ASSERT_NE(seen, nullptr);
    for (int i = 0; i < 6; ++i) clients.push_back(connect_to(listener.address));
    for (int turn = 0; turn < 100 && seen->size() < 6; ++turn) loop.run_once(10ms);
    ASSERT_EQ(seen->size(), 6U);
    for (int i = 0; i < 12; ++i) clients.push_back(connect_to(listener.address));
  }
  EXPECT_EQ(count_open_fds(), baseline + 36);  // the clients only
}

// A record paused by backpressure is not in flight and may be destroyed without
// close(): its destructor closes the fds still queued.
TEST(RuntimeMultishot, DestroyingAPausedRecordReleasesItsQueue) {
  auto listener = ring::test::make_listener();
  std::vector<Fd> clients;
  for (int i = 0; i < 10; ++i) clients.push_back(connect_to(listener.address));
  EventLoop loop;
  const int baseline = count_open_fds();
  auto body = [&]() -> Task<int> {
    int first = -1;
    {
      AcceptStream accepts(AcceptPrep{listener.fd.get()}, {.bound = 4, .fd_results = true});
      first = (co_await accepts.next()).res;
      for (int turn = 0; turn < 100 && accepts.in_flight(); ++turn) co_await nop();
      EXPECT_FALSE(accepts.in_flight());
      EXPECT_EQ(accepts.pauses(), 1U);
      EXPECT_EQ(accepts.size(), 9U);
      EXPECT_EQ(count_open_fds(), baseline + 10);
    }
    EXPECT_EQ(count_open_fds(), baseline + 1);
    co_return first;
  };
  const int first = loop.run(body());
  EXPECT_GE(first, 0);
  ::close(first);
}

// accept on a socket that does not listen: the kernel ends the request with -EINVAL,
// which ends the stream; the error sticks until rearm() tries again.
TEST(RuntimeMultishot, ErrorEndsTheStreamAndSticks) {
  Fd not_listening(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    AcceptStream accepts(AcceptPrep{not_listening.get()}, {.fd_results = true});
    EXPECT_EQ((co_await accepts.next()).res, -EINVAL);
    EXPECT_FALSE(accepts.in_flight());
    EXPECT_EQ((co_await accepts.next()).res, -EINVAL);
    EXPECT_EQ(accepts.arms(), 1U);
    accepts.rearm();
    EXPECT_EQ((co_await accepts.next()).res, -EINVAL);
    EXPECT_EQ(accepts.arms(), 2U);
  };
  loop.run(body());
}

TEST(RuntimeMultishot, ZeroBoundIsAConfigurationError) {
  EXPECT_THROW(AcceptStream(AcceptPrep{-1}, {.bound = 0}), std::system_error);
}

}  // namespace
}  // namespace coring
