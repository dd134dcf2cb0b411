// abort() resets a connection — the peer's receive fails with ECONNRESET instead of
// reading an end of stream — for fds and direct descriptors, awaited or dropped; and
// socket options through the ring (IORING_OP_URING_CMD) work on both, where the plain
// setsockopt(2) forms give EBADF on a direct descriptor.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <system_error>
#include <utility>

#include "coring/net/listener.hpp"
#include "coring/net/socket.hpp"
#include "coring/net/stream.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/when_all.hpp"
#include "net_support.hpp"

namespace coring::net {
namespace {

using namespace std::chrono_literals;

#define REQUIRE_SOCKET_COMMANDS(loop)                                                     \
  do {                                                                                    \
    if (!socket_commands_supported((loop).backend())) {                                   \
      GTEST_SKIP() << "no socket commands through the ring (SOCKET_URING_OP_SETSOCKOPT, " \
                      "Linux 6.7)";                                                       \
    }                                                                                     \
  } while (0)

// A connected client and the server's end, accepted as a direct descriptor if `direct`.
struct Connection {
  TcpStream client;
  TcpStream server;
};

Connection connect_pair(EventLoop& loop, bool direct) {
  auto listener = TcpListener::bind(Address::ipv4_loopback(), {.direct = direct});
  if (!listener) throw std::system_error(listener.error(), "bind");
  const Address address = *listener->local_address();
  auto [client, server] =
      loop.run(when_all(TcpStream::connect(address), [](Listener& l) -> Task<Result<TcpStream>> {
        co_return co_await l.accept();
      }(*listener)));
  loop.run(listener->close());
  if (!client) throw std::system_error(client.error(), "connect");
  if (!server) throw std::system_error(server.error(), "accept");
  if (server->is_direct() != direct) throw std::logic_error("accepted the wrong kind");
  return {std::move(*client), std::move(*server)};
}

// What the client's next receive gives.
int client_receives(EventLoop& loop, TcpStream& client) {
  return loop.run([](TcpStream& c) -> Task<int> {
    std::byte buffer[16];
    co_return (co_await c.recv(buffer).with_timeout(5s)).res;
  }(client));
}

void enable_direct(EventLoop& loop) {
  auto enabled = enable_direct_descriptors(loop, 4);
  if (!enabled) throw std::system_error(enabled.error(), "enable_direct_descriptors");
}

TEST(SocketAbort, PeerSeesAResetNotAnEndOfStream) {
  EventLoop loop;
  auto [client, server] = connect_pair(loop, false);
  const IoResult aborted =
      loop.run([](TcpStream& s) -> Task<IoResult> { co_return co_await s.abort(); }(server));
  EXPECT_EQ(aborted.res, 0) << aborted.message();
  EXPECT_FALSE(server.is_open());
  EXPECT_EQ(client_receives(loop, client), -ECONNRESET);
}

// A second abort() of the same socket has nothing to reset: its close says EBADF, and
// nothing is logged (it used to log a failed setsockopt besides).
TEST(SocketAbort, ASecondAbortIsEbadfAndLogsNothing) {
  EventLoop loop;
  auto [client, server] = connect_pair(loop, false);
  const IoResult first =
      loop.run([](TcpStream& s) -> Task<IoResult> { co_return co_await s.abort(); }(server));
  EXPECT_EQ(first.res, 0) << first.message();
  testing::internal::CaptureStderr();
  const IoResult second =
      loop.run([](TcpStream& s) -> Task<IoResult> { co_return co_await s.abort(); }(server));
  const std::string logged = testing::internal::GetCapturedStderr();
  EXPECT_EQ(second.res, -EBADF) << second.message();
  EXPECT_EQ(logged, "");
}

TEST(SocketAbort, GracefulCloseIsAnEndOfStream) {
  EventLoop loop;
  auto [client, server] = connect_pair(loop, false);
  loop.run([](TcpStream& s) -> Task<IoResult> { co_return co_await s.close(); }(server));
  EXPECT_EQ(client_receives(loop, client), 0) << "the contrast the abort tests rely on";
}

TEST(SocketAbort, DroppedAbortStillResets) {
  EventLoop loop;
  auto [client, server] = connect_pair(loop, false);
  (void)server.abort();
  EXPECT_FALSE(server.is_open());
  EXPECT_EQ(client_receives(loop, client), -ECONNRESET);
}

TEST(SocketAbort, DirectDescriptorPeerSeesAReset) {
  EventLoop loop;
  REQUIRE_SOCKET_COMMANDS(loop);
  enable_direct(loop);
  auto [client, server] = connect_pair(loop, true);
  const IoResult aborted =
      loop.run([](TcpStream& s) -> Task<IoResult> { co_return co_await s.abort(); }(server));
  EXPECT_EQ(aborted.res, 0) << aborted.message();
  EXPECT_EQ(client_receives(loop, client), -ECONNRESET);
}

TEST(SocketAbort, DroppedAbortOfADirectDescriptorResetsAndFreesTheSlot) {
  EventLoop loop;
  REQUIRE_SOCKET_COMMANDS(loop);
  auto enabled = enable_direct_descriptors(loop, 1);  // one slot: the next accept needs it
  ASSERT_TRUE(enabled) << enabled.error().message();
  for (int i = 0; i < 3; ++i) {
    auto [client, server] = connect_pair(loop, true);
    (void)server.abort();
    EXPECT_EQ(client_receives(loop, client), -ECONNRESET) << "connection " << i;
  }
}

TEST(SocketOptions, ThroughTheRingOnAnFd) {
  EventLoop loop;
  REQUIRE_SOCKET_COMMANDS(loop);
  auto [client, server] = connect_pair(loop, false);
  auto [nodelay, rcvbuf, linger] =
      loop.run([](TcpStream& s) -> Task<std::tuple<Result<void>, Result<int>, Result<Linger>>> {
        Result<void> set = co_await s.set_nodelay_async(true);
        Result<void> buf = co_await s.set_option_async(SOL_SOCKET, SO_RCVBUF, 65536);
        Result<void> lin = co_await s.set_linger_async({.on = true, .timeout = 7s});
        if (!buf || !lin)
          co_return std::tuple{set, Result<int>(fail(buf ? lin.error() : buf.error())),
                               Result<Linger>(Linger{})};
        co_return std::tuple{set, co_await s.option_async(SOL_SOCKET, SO_RCVBUF),
                             co_await s.linger_async()};
      }(server));
  ASSERT_TRUE(nodelay) << nodelay.message();
  EXPECT_TRUE(*server.nodelay()) << "the ring's setsockopt reached the socket";
  ASSERT_TRUE(rcvbuf) << rcvbuf.message();
  EXPECT_EQ(*rcvbuf, 2 * 65536) << "the kernel doubles SO_RCVBUF";
  EXPECT_EQ(*rcvbuf, *server.recv_buffer_size());
  ASSERT_TRUE(linger) << linger.message();
  EXPECT_TRUE(linger->on);
  EXPECT_EQ(linger->timeout, 7s);
  EXPECT_EQ(server.linger()->timeout, 7s);
}

// A linger timeout the kernel would read as "for ever" (below 0) or that an int cannot
// hold is refused by both forms, and the socket's linger stays as it was.
TEST(SocketOptions, LingerOutOfRangeIsInvalidArgument) {
  EventLoop loop;
  REQUIRE_SOCKET_COMMANDS(loop);
  auto [client, server] = connect_pair(loop, false);
  const std::chrono::seconds too_long{std::int64_t{std::numeric_limits<int>::max()} + 1};
  for (const std::chrono::seconds timeout : {-1s, too_long}) {
    EXPECT_EQ(server.set_linger({.on = true, .timeout = timeout}).error(),
              std::errc::invalid_argument)
        << timeout.count();
    const Result<void> async =
        loop.run([](TcpStream& s, std::chrono::seconds t) -> Task<Result<void>> {
          co_return co_await s.set_linger_async({.on = true, .timeout = t});
        }(server, timeout));
    EXPECT_EQ(async.error(), std::errc::invalid_argument) << timeout.count();
    EXPECT_FALSE(server.linger()->on) << timeout.count();
  }
  // The edges of the range are taken.
  EXPECT_TRUE(server.set_linger({.on = true, .timeout = 0s}));
  const Result<void> longest = loop.run([](TcpStream& s) -> Task<Result<void>> {
    co_return co_await s.set_linger_async(
        {.on = true, .timeout = std::chrono::seconds(std::numeric_limits<int>::max())});
  }(server));
  EXPECT_TRUE(longest) << longest.message();
  EXPECT_TRUE(server.linger()->on);
}

TEST(SocketOptions, ThroughTheRingOnADirectDescriptor) {
  EventLoop loop;
  REQUIRE_SOCKET_COMMANDS(loop);
  enable_direct(loop);
  auto [client, server] = connect_pair(loop, true);
  EXPECT_EQ(server.set_nodelay(true).error(), std::errc::bad_file_descriptor)
      << "setsockopt(2) has no fd to work on";
  auto [nodelay, rcvbuf, keepalive] =
      loop.run([](TcpStream& s) -> Task<std::tuple<Result<void>, Result<int>, Result<int>>> {
        Result<void> set = co_await s.set_nodelay_async(true);
        (void)co_await s.set_option_async(SOL_SOCKET, SO_RCVBUF, 32768);
        (void)co_await s.set_option_async(SOL_SOCKET, SO_KEEPALIVE, 1);
        co_return std::tuple{set, co_await s.option_async(SOL_SOCKET, SO_RCVBUF),
                             co_await s.option_async(SOL_SOCKET, SO_KEEPALIVE)};
      }(server));
  ASSERT_TRUE(nodelay) << nodelay.message();
  ASSERT_TRUE(rcvbuf) << rcvbuf.message();
  EXPECT_EQ(*rcvbuf, 2 * 32768);
  ASSERT_TRUE(keepalive) << keepalive.message();
  EXPECT_EQ(*keepalive, 1);
}

TEST(SocketOptions, ErrorsAreValues) {
  EventLoop loop;
  REQUIRE_SOCKET_COMMANDS(loop);
  auto [client, server] = connect_pair(loop, false);
  auto bad = loop.run([](TcpStream& s) -> Task<Result<void>> {
    co_return co_await s.set_option_async(SOL_SOCKET, 0x7fff, 1);  // no such option
  }(server));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), std::errc::no_protocol_option);
}

}  // namespace
}  // namespace coring::net
