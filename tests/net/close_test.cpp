// Every form of a net close() leaks nothing: awaited (its result is the close's),
// discarded (`sock.close();` without co_await, which the compiler only warns about),
// awaited later, or with the socket or listener moved or destroyed while the close
// awaitable exists. A Socket's close() hands the fd to its awaitable, which closes it
// through the ring when awaited and with close(2) when dropped; a Listener's close() is
// a lazy task that follows the listener until it starts.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <utility>

#include "coring/net/listener.hpp"
#include "coring/net/stream.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/when_all.hpp"
#include "net_support.hpp"
#include "support.hpp"

namespace coring::net {
namespace {

using ring::test::count_open_fds;

Address local_of(const Listener& listener) { return *listener.local_address(); }

// Connects to `listener` and accepts: the client's end and the server's end.
Task<std::pair<Result<TcpStream>, Result<TcpStream>>> connect_and_accept(Listener& listener) {
  auto [client, server] = co_await when_all(
      TcpStream::connect(local_of(listener)),
      [](Listener& l) -> Task<Result<TcpStream>> { co_return co_await l.accept(); }(listener));
  co_return std::pair(std::move(client), std::move(server));
}

TEST(NetClose, DiscardedSocketClosesLeakNoFd) {
  EventLoop loop;
  const int before = count_open_fds();
  for (int i = 0; i < 100; ++i) {
    auto pair = StreamSocket::pair();
    ASSERT_TRUE(pair) << pair.error().message();
    (void)pair->first.close();
    (void)pair->second.close();
    EXPECT_FALSE(pair->first.is_open());
  }
  EXPECT_EQ(count_open_fds(), before) << "fds leaked by 100 discarded closes of socket pairs";
}

TEST(NetClose, AwaitedCloseReturnsItsResult) {
  EventLoop loop;
  auto pair = StreamSocket::pair();
  ASSERT_TRUE(pair);
  const int fd = pair->first.fd();
  auto [first, again] = loop.run([&]() -> Task<std::pair<IoResult, IoResult>> {
    IoResult closed = co_await pair->first.close();
    IoResult twice = co_await pair->first.close();
    co_return std::pair(closed, twice);
  }());
  EXPECT_EQ(first.res, 0) << first.error().message();
  EXPECT_EQ(again.res, -EBADF);
  EXPECT_FALSE(pair->first.is_open());
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
}

TEST(NetClose, CloseAwaitedLaterClosesTheFdWhateverBecameOfTheSocket) {
  EventLoop loop;
  const int before = count_open_fds();
  auto pair = StreamSocket::pair();
  ASSERT_TRUE(pair);
  const int fd = pair->first.fd();
  auto owner = std::make_unique<StreamSocket>(std::move(pair->first));
  IoResult closed = loop.run([&]() -> Task<IoResult> {
    auto closing = owner->close();
    StreamSocket moved = std::move(*owner);  // moves nothing: the fd is the close's
    owner.reset();
    EXPECT_FALSE(moved.is_open());
    // The fd is still open, held by the awaitable, until it is awaited.
    EXPECT_NE(::fcntl(fd, F_GETFD), -1);
    co_return co_await closing;
  }());
  EXPECT_EQ(closed.res, 0) << closed.error().message();
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  pair->second.reset();
  EXPECT_EQ(count_open_fds(), before);
}

TEST(NetClose, DiscardedCloseOfADirectDescriptorFreesItsSlot) {
  EventLoop loop;
  // One slot: each connection fits only if the discarded close of the one before
  // cleared the slot.
  auto enabled = enable_direct_descriptors(loop, 1);
  ASSERT_TRUE(enabled) << enabled.error().message();
  auto listener = TcpListener::bind(Address::ipv4_loopback(), {.direct = true});
  ASSERT_TRUE(listener);
  for (int i = 0; i < 3; ++i) {
    auto [client, server] = loop.run(connect_and_accept(*listener));
    ASSERT_TRUE(client) << client.error().message();
    ASSERT_TRUE(server) << "connection " << i << ": " << server.error().message();
    ASSERT_TRUE(server->is_direct());
    (void)server->close();
  }
  loop.run(listener->close());
}

// A direct listener closed with an accepted connection still queued (accepted by the
// kernel, taken by nobody): the connection's slot is cleared, which closes it — the
// client sees the end of the stream — and the slot is free for the next one. Before,
// the queued direct descriptor was dropped with its slot still holding the file: the
// client waited for ever, and the one-slot table stayed full.
TEST(NetClose, ClosedDirectListenerClosesTheConnectionsItQueued) {
  EventLoop loop;
  auto enabled = enable_direct_descriptors(loop, 1);
  ASSERT_TRUE(enabled) << enabled.error().message();
  // Three rounds: each one's first accept fits only if the round before left the
  // one slot free.
  for (int round = 0; round < 3; ++round) {
    auto listener = TcpListener::bind(Address::ipv4_loopback(), {.direct = true});
    ASSERT_TRUE(listener);
    const Address address = local_of(*listener);
    auto connect_client = [&address] {
      ring::test::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      EXPECT_EQ(::connect(fd.get(), address.data(), address.size()), 0);
      return fd;
    };
    // A first connection, accepted (which arms the multishot accept) and closed.
    const ring::test::Fd first = connect_client();
    auto accepted = loop.run(
        [](Listener& l) -> Task<Result<TcpStream>> { co_return co_await l.accept(); }(*listener));
    ASSERT_TRUE(accepted) << "round " << round << ": " << accepted.error().message();
    (void)loop.run(
        [](TcpStream& stream) -> Task<IoResult> { co_return co_await stream.close(); }(*accepted));
    // A second one, which the armed request accepts into the slot and queues.
    const ring::test::Fd second = connect_client();
    for (int turn = 0; turn < 2000 && listener->queued() == 0; ++turn) {
      loop.run(test::sleep_task(std::chrono::milliseconds(1)));
    }
    ASSERT_EQ(listener->queued(), 1U) << "round " << round;
    loop.run(listener->close());
    // Its server end was closed with the listener: the client reads the end.
    pollfd readable{second.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&readable, 1, 2000), 1)
        << "round " << round << ": the queued connection was left open";
    char byte = 0;
    EXPECT_EQ(::recv(second.get(), &byte, 1, 0), 0);
  }
}

TEST(NetClose, DiscardedListenerClosesLeakNoFd) {
  EventLoop loop;
  const int before = count_open_fds();
  for (int i = 0; i < 100; ++i) {
    auto listener = TcpListener::bind(Address::ipv4_loopback());
    ASSERT_TRUE(listener) << listener.error().message();
    (void)listener->close();
    EXPECT_TRUE(listener->is_open());  // a close task that never runs closes nothing
  }
  EXPECT_EQ(count_open_fds(), before) << "fds leaked by 100 discarded listener closes";
}

TEST(NetClose, DiscardedCloseOfAnArmedListenerLeaksNoFd) {
  EventLoop loop;
  const int before = count_open_fds();
  {
    auto listener = TcpListener::bind(Address::ipv4_loopback());
    ASSERT_TRUE(listener);
    auto [client, server] = loop.run(connect_and_accept(*listener));
    ASSERT_TRUE(client && server);
    ASSERT_EQ(listener->accept_arms(), 1U);  // the multishot accept is still armed
    (void)listener->close();
  }
  // The destructor spawned the close of the armed stream: let it run.
  loop.run(test::sleep_task(std::chrono::milliseconds(5)));
  EXPECT_EQ(count_open_fds(), before);
}

TEST(NetClose, CloseTaskMadeEarlyLeavesTheListenerAcceptingUntilAwaited) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  Task<IoResult> closing = listener->close();
  auto [client, server] = loop.run(connect_and_accept(*listener));
  EXPECT_TRUE(client && server) << "accept after close() was made but not awaited";
  IoResult closed = loop.run(std::move(closing));
  EXPECT_EQ(closed.res, 0) << closed.error().message();
  EXPECT_FALSE(listener->is_open());
}

TEST(NetClose, CloseTaskFollowsAMovedListener) {
  EventLoop loop;
  const int before = count_open_fds();
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  Task<IoResult> closing = listener->close();
  std::optional<Listener> moved(std::move(*listener));
  ASSERT_TRUE(moved->is_open());
  IoResult closed = loop.run(std::move(closing));
  EXPECT_EQ(closed.res, 0) << closed.error().message();
  EXPECT_FALSE(moved->is_open()) << "the close task did not close the listener it was made for";
  EXPECT_EQ(count_open_fds(), before);
}

TEST(NetClose, CloseTaskOfADestroyedListenerIsEbadf) {
  EventLoop loop;
  const int before = count_open_fds();
  auto bound = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(bound);
  auto listener = std::make_unique<Listener>(std::move(*bound));
  Task<IoResult> closing = listener->close();
  listener.reset();  // its destructor closes the fd; the task must not touch it
  IoResult closed = loop.run(std::move(closing));
  EXPECT_EQ(closed.res, -EBADF);
  EXPECT_EQ(count_open_fds(), before);
}

}  // namespace
}  // namespace coring::net
