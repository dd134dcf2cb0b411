// Datagram sockets: UDP round trips with the sender's address, connected mode,
// truncation, a receive timeout, and Unix datagram sockets (pair and abstract address).
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <string>

#include "coring/net/datagram.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/when_all.hpp"
#include "net_support.hpp"

namespace coring::net {
namespace {

using namespace std::chrono_literals;
using test::as_bytes;
using test::to_string;

Address local_of(const Socket& socket) {
  auto local = socket.local_address();
  if (!local) throw std::system_error(local.error(), "getsockname");
  return *local;
}

TEST(Udp, RoundTripWithSenderAddresses) {
  EventLoop loop;
  auto server = UdpSocket::bind(Address::ipv4_loopback());
  auto client = UdpSocket::bind(Address::ipv4_loopback());
  ASSERT_TRUE(server && client);
  const Address server_address = local_of(*server);
  const Address client_address = local_of(*client);
  auto [server_saw, client_saw] = loop.run(when_all(
      [&]() -> Task<std::string> {
        std::array<std::byte, 64> buffer{};
        RecvFromResult got = co_await server->recv_from(buffer);
        if (!got) co_return "recv_from: " + got.io.error().message();
        if (got.from != client_address) co_return "from " + got.from.to_string();
        const std::string text = to_string(std::span(buffer).first(got.io.value()));
        IoResult sent = co_await server->send_to(as_bytes("pong:" + text), got.from);
        co_return sent ? text : "send_to: " + sent.error().message();
      }(),
      [&]() -> Task<std::string> {
        IoResult sent = co_await client->send_to(as_bytes("ping"), server_address);
        if (sent.res != 4) co_return "send_to: " + sent.error().message();
        std::array<std::byte, 64> buffer{};
        RecvFromResult got = co_await client->recv_from(buffer);
        if (!got) co_return "recv_from: " + got.io.error().message();
        if (got.from != server_address) co_return "from " + got.from.to_string();
        co_return to_string(std::span(buffer).first(got.io.value()));
      }()));
  EXPECT_EQ(server_saw, "ping");
  EXPECT_EQ(client_saw, "pong:ping");
}

TEST(Udp, ConnectedModeAndTruncation) {
  EventLoop loop;
  auto a = UdpSocket::bind(Address::ipv4_loopback());
  auto b = UdpSocket::bind(Address::ipv4_loopback());
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->connect(local_of(*b)));
  ASSERT_TRUE(b->connect(local_of(*a)));
  auto [plain, truncated] = loop.run([&]() -> Task<std::pair<std::string, bool>> {
    co_await a->send(as_bytes("datagram"));
    std::array<std::byte, 64> buffer{};
    IoResult n = co_await b->recv(buffer);
    std::string text = n ? to_string(std::span(buffer).first(n.value())) : n.error().message();
    co_await a->send(as_bytes("a longer datagram"));
    std::array<std::byte, 4> small{};
    RecvFromResult cut = co_await b->recv_from(small);
    co_return std::pair{text, cut.ok() && cut.truncated && cut.io.res == 4};
  }());
  EXPECT_EQ(plain, "datagram");
  EXPECT_TRUE(truncated);
}

TEST(Udp, RecvFromTimesOutNotEarly) {
  EventLoop loop;
  auto sock = UdpSocket::bind(Address::ipv4_loopback());
  ASSERT_TRUE(sock);
  std::array<std::byte, 16> buffer{};
  const auto start = std::chrono::steady_clock::now();
  RecvFromResult r = loop.run([&]() -> Task<RecvFromResult> {
    co_return co_await sock->recv_from(buffer).with_timeout(30ms);
  }());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
  EXPECT_EQ(r.io.outcome, Outcome::timed_out);
  EXPECT_EQ(r.io.res, -ETIMEDOUT);
}

TEST(Udp, SendToAnUnreachablePortIsRefusedAsAValue) {
  EventLoop loop;
  const test::UnusedPort unreachable(SOCK_DGRAM);
  auto sock = UdpSocket::bind(Address::ipv4_loopback());
  ASSERT_TRUE(sock);
  ASSERT_TRUE(sock->connect(unreachable.address()));
  IoResult second = loop.run([&]() -> Task<IoResult> {
    co_await sock->send(as_bytes("anyone?"));  // the ICMP port-unreachable comes back
    std::array<std::byte, 8> buffer{};
    co_return co_await sock->recv(buffer).with_timeout(1s);
  }());
  EXPECT_EQ(second.res, -ECONNREFUSED) << second.error().message();
}

TEST(UnixDatagram, PairAndAbstractAddress) {
  EventLoop loop;
  auto pair = UnixDatagram::pair();
  ASSERT_TRUE(pair);
  auto name = Address::unix_abstract("coring-dgram-" + std::to_string(::getpid()));
  ASSERT_TRUE(name);
  auto bound = UnixDatagram::bind(*name);
  ASSERT_TRUE(bound) << bound.error().message();
  auto sender = UnixDatagram::open(Family::unix_socket);
  ASSERT_TRUE(sender);
  auto [over_pair, over_name] = loop.run([&]() -> Task<std::pair<std::string, std::string>> {
    co_await pair->first.send(as_bytes("paired"));
    std::array<std::byte, 32> buffer{};
    IoResult n = co_await pair->second.recv(buffer);
    std::string first = n ? to_string(std::span(buffer).first(n.value())) : n.error().message();
    IoResult sent = co_await sender->send_to(as_bytes("named"), *name);
    if (!sent) co_return std::pair{first, "send_to: " + sent.error().message()};
    RecvFromResult got = co_await bound->recv_from(buffer);
    co_return std::pair{
        first, got ? to_string(std::span(buffer).first(got.io.value())) : got.io.error().message()};
  }());
  EXPECT_EQ(over_pair, "paired");
  EXPECT_EQ(over_name, "named");
  EXPECT_EQ(local_of(*bound), *name);
}

}  // namespace
}  // namespace coring::net
