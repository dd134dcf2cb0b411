// TCP over loopback: echo with one and with a thousand concurrent connections, IPv6 and
// Unix streams, send_all/recv_exact, vectored I/O, zero-copy send, half-close, a peer
// that resets mid-stream, receive timeouts and stops, refused and timed-out connects,
// listener backpressure, direct descriptors, options, and sockets nobody closed.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "coring/net/datagram.hpp"
#include "coring/net/listener.hpp"
#include "coring/net/stream.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/scope.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"
#include "net_support.hpp"
#include "support.hpp"

namespace coring::net {
namespace {

using namespace std::chrono_literals;
using test::as_bytes;
using test::pattern;
using test::to_string;

// Echoes one connection until the peer closes it or an error ends it.
Task<void> echo(TcpStream stream) {
  std::array<std::byte, 4096> buffer{};
  for (;;) {
    IoResult n = co_await stream.recv(buffer);
    if (n.res <= 0) break;
    TransferResult sent = co_await stream.send_all(std::span(buffer).first(n.value()));
    if (!sent) break;
  }
  co_await stream.close();
}

// Accepts `count` connections and echoes each; returns how many accepts failed.
Task<int> echo_server(TcpListener& listener, std::size_t count) {
  TaskScope scope;
  int failures = 0;
  for (std::size_t i = 0; i < count; ++i) {
    Result<TcpStream> conn = co_await listener.accept();
    if (!conn) {
      ++failures;
      continue;
    }
    scope.spawn(echo(std::move(*conn)));
  }
  co_await scope.join();
  co_return failures;
}

// Connects, sends `message`, reads the echo back and returns it (or what went wrong).
Task<std::string> echo_client(Address address, std::string message) {
  auto conn = co_await TcpStream::connect(address);
  if (!conn) co_return "connect: " + conn.error().message();
  TransferResult sent = co_await conn->send_all(as_bytes(message));
  if (!sent) co_return "send: " + sent.message();
  std::string reply(message.size(), '\0');
  // A deadline so that a server that never answers fails the test instead of hanging it.
  TransferResult got =
      co_await conn->recv_exact(std::as_writable_bytes(std::span(reply.data(), reply.size())))
          .with_deadline(20s);
  if (!got) co_return "recv: " + got.message();
  co_await conn->close();
  co_return reply;
}

Address local_of(const Listener& listener) {
  auto local = listener.local_address();
  if (!local) throw std::system_error(local.error(), "getsockname");
  return *local;
}

// A connected pair over loopback: the client's end and the server's accepted end.
Task<std::pair<TcpStream, TcpStream>> connected_pair(Listener& listener) {
  auto [client, server] = co_await when_all(
      TcpStream::connect(local_of(listener)),
      [](Listener& l) -> Task<Result<TcpStream>> { co_return co_await l.accept(); }(listener));
  if (!client || !server) throw std::runtime_error("connected_pair failed");
  co_return std::pair<TcpStream, TcpStream>(std::move(*client), std::move(*server));
}

TEST(Tcp, EchoOneConnection) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener) << listener.error().message();
  const Address local = local_of(*listener);
  ASSERT_NE(local.port(), 0);

  auto [failures, reply] =
      loop.run(when_all(echo_server(*listener, 1), echo_client(local, "hello, coring")));
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(reply, "hello, coring");
  EXPECT_TRUE(loop.run(listener->close()).ok());
}

TEST(Tcp, EchoThousandConcurrentConnections) {
  constexpr std::size_t clients = 1000;
  // Every connection keeps a recv in flight on each side: the CQ must hold them all, or
  // admission would queue the sends they wait for behind them.
  LoopOptions options;
  options.entries = 4096;
  EventLoop loop(options);
  auto listener = TcpListener::bind(Address::ipv4_loopback(), {.backlog = 4096});
  ASSERT_TRUE(listener) << listener.error().message();
  const Address local = local_of(*listener);

  std::vector<Task<std::string>> tasks;
  for (std::size_t i = 0; i < clients; ++i) {
    tasks.push_back(echo_client(local, "message " + std::to_string(i) + std::string(i % 97, 'x')));
  }
  auto [failures, replies] =
      loop.run(when_all(echo_server(*listener, clients), when_all(std::move(tasks))));
  EXPECT_EQ(failures, 0);
  ASSERT_EQ(replies.size(), clients);
  for (std::size_t i = 0; i < clients; ++i) {
    ASSERT_EQ(replies[i], "message " + std::to_string(i) + std::string(i % 97, 'x')) << i;
  }
  loop.run(listener->close());
}

TEST(Tcp, EchoOverIpv6) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv6_loopback());
  if (!listener && (listener.error() == std::errc::address_not_available ||
                    listener.error() == std::errc::address_family_not_supported)) {
    GTEST_SKIP() << "no IPv6 loopback here: " << listener.error().message();
  }
  ASSERT_TRUE(listener) << listener.error().message();
  const Address local = local_of(*listener);
  EXPECT_EQ(local.family(), Family::ipv6);
  EXPECT_EQ(local.to_string(), "[::1]:" + std::to_string(local.port()));
  auto [failures, reply] =
      loop.run(when_all(echo_server(*listener, 1), echo_client(local, "over v6")));
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(reply, "over v6");
  loop.run(listener->close());
}

TEST(Tcp, EchoOverUnixPathAndAbstractSockets) {
  EventLoop loop;
  ring::test::TempDir dir;
  auto path = Address::unix_path(dir.file("echo.sock"));
  ASSERT_TRUE(path);
  auto abstract = Address::unix_abstract("coring-net-test-" + std::to_string(::getpid()));
  ASSERT_TRUE(abstract);
  for (const Address& address : {*path, *abstract}) {
    auto listener = UnixListener::bind(address);
    ASSERT_TRUE(listener) << address.to_string() << ": " << listener.error().message();
    EXPECT_EQ(local_of(*listener), address);
    auto [failures, reply] =
        loop.run(when_all(echo_server(*listener, 1), echo_client(address, "over unix")));
    EXPECT_EQ(failures, 0);
    EXPECT_EQ(reply, "over unix") << address.to_string();
    loop.run(listener->close());
  }
}

TEST(Tcp, SendAllAndRecvExactMoveLargeBuffersIntact) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  auto client_server = loop.run(connected_pair(*listener));
  auto& client = client_server.first;
  auto& server = client_server.second;
  // 8 MiB is more than the socket buffers hold: sends and receives are partial, and
  // send_all/recv_exact must resubmit for the rest. (Tiny SO_SNDBUF/SO_RCVBUF would force
  // more of them, but a window far below loopback's 64 KiB MSS stalls TCP for 40 ms a turn.)
  const auto sent_bytes = pattern(8 << 20, 7);
  std::vector<std::byte> received(sent_bytes.size());
  auto [sent, got] = loop.run(when_all(
      [&]() -> Task<TransferResult> { co_return co_await client.send_all(sent_bytes); }(),
      [&]() -> Task<TransferResult> { co_return co_await server.recv_exact(received); }()));
  EXPECT_TRUE(sent) << sent.message();
  EXPECT_TRUE(got) << got.message();
  EXPECT_EQ(sent.bytes, sent_bytes.size());
  EXPECT_EQ(got.bytes, received.size());
  EXPECT_TRUE(received == sent_bytes);
  loop.run(listener->close());
}

TEST(Tcp, VectoredSendAndReceive) {
  EventLoop loop;
  auto pair = StreamSocket::pair();
  ASSERT_TRUE(pair);
  auto& a = (*pair).first;
  auto& b = (*pair).second;
  std::string head = "head-", body = "body-", tail = "tail";
  const std::array<iovec, 3> out{
      {{head.data(), head.size()}, {body.data(), body.size()}, {tail.data(), tail.size()}}};
  std::array<char, 7> first{};
  std::array<char, 16> second{};
  const std::array<iovec, 2> in{{{first.data(), first.size()}, {second.data(), second.size()}}};
  auto [sent, got] =
      loop.run(when_all([&]() -> Task<IoResult> { co_return co_await a.send_vectored(out); }(),
                        [&]() -> Task<IoResult> { co_return co_await b.recv_vectored(in); }()));
  ASSERT_EQ(sent.res, 14);
  ASSERT_EQ(got.res, 14);
  EXPECT_EQ(std::string(first.data(), 7), "head-bo");
  EXPECT_EQ(std::string(second.data(), 7), "dy-tail");
}

TEST(Tcp, SendZcReleasesTheBufferOnlyAfterTheNotification) {
  EventLoop loop;
  if (!test::kernel_has(loop, ring::Op::send_zc))
    GTEST_SKIP() << "kernel lacks IORING_OP_SEND_ZC (6.0)";
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  auto client_server = loop.run(connected_pair(*listener));
  auto& client = client_server.first;
  auto& server = client_server.second;
  const auto expected = pattern(1 << 20, 3);
  auto buffer = expected;
  std::vector<std::byte> received(expected.size());
  auto [sent_total, got] = loop.run(when_all(
      [&]() -> Task<std::size_t> {
        std::size_t total = 0;
        while (total < buffer.size()) {
          IoResult r = co_await client.send_zc(std::span(buffer).subspan(total));
          if (!r) {
            ADD_FAILURE() << "send_zc: " << r.error().message();
            break;
          }
          // The kernel has notified: the pages are ours again. Scribbling over them must
          // not reach the peer.
          std::fill_n(buffer.begin() + static_cast<std::ptrdiff_t>(total), r.value(), std::byte{0});
          total += r.value();
        }
        co_return total;
      }(),
      [&]() -> Task<TransferResult> { co_return co_await server.recv_exact(received); }()));
  EXPECT_EQ(sent_total, expected.size());
  EXPECT_TRUE(got) << got.message();
  EXPECT_TRUE(received == expected);
  loop.run(listener->close());
}

TEST(Tcp, HalfCloseDeliversEndOfStreamAndKeepsTheOtherDirection) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  auto client_server = loop.run(connected_pair(*listener));
  auto& client = client_server.first;
  auto& server = client_server.second;
  auto [client_log, server_log] = loop.run(when_all(
      [&]() -> Task<std::string> {
        co_await client.send_all(as_bytes("request"));
        IoResult shut = co_await client.shutdown(SHUT_WR);
        if (!shut) co_return "shutdown: " + shut.error().message();
        std::array<std::byte, 64> buffer{};
        std::string reply;
        for (;;) {
          IoResult n = co_await client.recv(buffer);
          if (n.res <= 0) break;
          reply += to_string(std::span(buffer).first(n.value()));
        }
        co_return reply;
      }(),
      [&]() -> Task<std::string> {
        std::array<std::byte, 64> buffer{};
        std::string request;
        for (;;) {
          IoResult n = co_await server.recv(buffer);
          if (n.res < 0) co_return "recv: " + n.error().message();
          if (n.res == 0) break;  // the client's half-close
          request += to_string(std::span(buffer).first(n.value()));
        }
        co_await server.send_all(as_bytes("reply to " + request));
        co_await server.close();
        co_return request;
      }()));
  EXPECT_EQ(server_log, "request");
  EXPECT_EQ(client_log, "reply to request");
  loop.run(listener->close());
}

// Every result a stream call returns has one shape: ok(), error(), message(), and value(),
// which throws the error rather than hand out a value that means nothing.
template <typename R>
concept ResultShaped = requires(const R& r) {
  { r.ok() } -> std::same_as<bool>;
  static_cast<bool>(r);
  { r.error() } -> std::same_as<std::error_code>;
  { r.message() } -> std::same_as<std::string>;
  r.value();
};
static_assert(ResultShaped<IoResult> && ResultShaped<TransferResult> &&
              ResultShaped<Result<BufferLease>> && ResultShaped<Result<StreamSocket>> &&
              ResultShaped<RecvFromResult>);

std::error_code thrown_by(const auto& result) {
  try {
    (void)result.value();
  } catch (const std::system_error& e) {
    return e.code();
  }
  return {};
}

// A reset peer: recv's -ECONNRESET, then send's and send_all's EPIPE, as values. value()
// throws each error, so a caller who skips the check cannot take -104 for a count of
// 4,294,967,192 bytes.
TEST(Tcp, PeerResetMidStreamIsAnErrorValue) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  auto client_server = loop.run(connected_pair(*listener));
  auto& client = client_server.first;
  auto& server = client_server.second;
  auto [sent, first, after_reset, send_after_reset, rest] = loop.run(
      [&]() -> Task<std::tuple<TransferResult, IoResult, IoResult, IoResult, TransferResult>> {
        TransferResult all = co_await client.send_all(as_bytes("partial"));
        std::array<std::byte, 64> buffer{};
        IoResult first_recv = co_await server.recv(buffer);
        // SO_LINGER with a zero timeout: close(2) sends RST instead of FIN.
        const linger abort_on_close{1, 0};
        ::setsockopt(client.fd(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
        client.reset();
        IoResult recv_result = co_await server.recv(buffer);
        IoResult send_result = co_await server.send(as_bytes("anyone there?"));
        TransferResult send_all_result = co_await server.send_all(as_bytes("still?"));
        co_return std::tuple{all, first_recv, recv_result, send_result, send_all_result};
      }());
  EXPECT_EQ(sent.value(), 7U);
  EXPECT_EQ(thrown_by(sent), std::error_code{});
  EXPECT_EQ(first.value(), 7U);
  EXPECT_EQ(after_reset.res, -ECONNRESET) << after_reset.message();
  EXPECT_EQ(thrown_by(after_reset), std::errc::connection_reset);
  EXPECT_EQ(send_after_reset.res, -EPIPE) << send_after_reset.message();
  EXPECT_EQ(thrown_by(send_after_reset), std::errc::broken_pipe);
  EXPECT_FALSE(rest);
  EXPECT_EQ(rest.error(), std::errc::broken_pipe) << rest.message();
  EXPECT_EQ(thrown_by(rest), std::errc::broken_pipe);
  EXPECT_EQ(rest.bytes, 0U);
  loop.run(listener->close());
}

TEST(Tcp, ServerSurvivesPeersVanishingMidStream) {
  constexpr std::size_t clients = 40;
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  const Address local = local_of(*listener);
  const int fds_before = ring::test::count_open_fds();
  std::vector<Task<std::string>> tasks;
  for (std::size_t i = 0; i < clients; ++i) {
    tasks.push_back([](Address address, bool vanish) -> Task<std::string> {
      auto conn = co_await TcpStream::connect(address);
      if (!conn) co_return "connect failed";
      co_await conn->send_all(as_bytes("half a messa"));
      if (vanish) {
        const linger abort_on_close{1, 0};
        ::setsockopt(conn->fd(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
        conn->reset();
        co_return "vanished";
      }
      std::array<std::byte, 12> reply{};
      TransferResult got = co_await conn->recv_exact(reply);
      co_return got ? to_string(reply) : "recv: " + got.message();
    }(local, i % 2 == 0));
  }
  auto [failures, results] =
      loop.run(when_all(echo_server(*listener, clients), when_all(std::move(tasks))));
  EXPECT_EQ(failures, 0);
  for (std::size_t i = 0; i < clients; ++i) {
    EXPECT_EQ(results[i], i % 2 == 0 ? "vanished" : "half a messa") << i;
  }
  // Every server-side socket was closed, whether its peer reset or not.
  EXPECT_EQ(ring::test::count_open_fds(), fds_before);
  loop.run(listener->close());
}

TEST(Tcp, RecvTimeoutFiresNotEarly) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  auto client_server = loop.run(connected_pair(*listener));
  auto& client = client_server.first;
  auto& server = client_server.second;
  std::array<std::byte, 16> buffer{};
  const auto start = std::chrono::steady_clock::now();
  IoResult r = loop.run(
      [&]() -> Task<IoResult> { co_return co_await server.recv(buffer).with_timeout(50ms); }());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.outcome, Outcome::timed_out);
  EXPECT_EQ(r.res, -ETIMEDOUT);
  EXPECT_GE(elapsed, 50ms);

  // recv_exact: a deadline for the whole transfer; the bytes that did arrive are counted.
  TransferResult partial = loop.run([&]() -> Task<TransferResult> {
    co_await client.send_all(as_bytes("abc"));
    co_return co_await server.recv_exact(buffer).with_deadline(50ms);
  }());
  EXPECT_EQ(partial.bytes, 3U);
  EXPECT_EQ(partial.error(), std::errc::timed_out) << partial.message();
  loop.run(listener->close());
}

// A transfer of several requests: with_timeout() bounds each request, with_deadline() the
// whole. Six bytes a byte at a time, 100 ms apart: no receive waits 400 ms, the transfer
// takes about 600 ms.
TEST(Tcp, TimeoutBoundsEachRequestDeadlineTheWholeTransfer) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  auto client_server = loop.run(connected_pair(*listener));
  auto& client = client_server.first;
  auto& server = client_server.second;
  auto drip = [&]() -> Task<void> {
    for (int i = 0; i < 6; ++i) {
      co_await sleep_for(100ms);
      co_await client.send_all(as_bytes("x"));
    }
  };
  std::array<std::byte, 6> buffer{};
  auto [each, unused_a] = loop.run(when_all(
      [&]() -> Task<TransferResult> {
        co_return co_await server.recv_exact(buffer).with_timeout(400ms);
      }(),
      drip()));
  EXPECT_TRUE(each) << each.message();
  EXPECT_EQ(each.bytes, 6U);
  auto [whole, unused_b] = loop.run(when_all(
      [&]() -> Task<TransferResult> {
        co_return co_await server.recv_exact(buffer).with_deadline(400ms);
      }(),
      drip()));
  EXPECT_EQ(whole.error(), std::errc::timed_out) << whole.message();
  EXPECT_GE(whole.bytes, 2U);
  EXPECT_LT(whole.bytes, 6U);
  // A deadline given as a time point already past ends the transfer at once.
  TransferResult past = loop.run([&]() -> Task<TransferResult> {
    co_return co_await server.recv_exact(buffer).with_deadline(std::chrono::steady_clock::now());
  }());
  EXPECT_EQ(past.error(), std::errc::timed_out) << past.message();
  loop.run(listener->close());
}

// send_all and recv_exact with a stop token that fired before the co_await: nothing is
// submitted, and the error is ECANCELED (not the end of stream).
TEST(Tcp, TransfersWithAStoppedTokenAreCancelled) {
  EventLoop loop;
  auto pair = StreamSocket::pair();
  ASSERT_TRUE(pair);
  std::stop_source stop;
  stop.request_stop();
  std::array<std::byte, 4> buffer{};
  auto [sent, got] = loop.run([&]() -> Task<std::pair<TransferResult, TransferResult>> {
    TransferResult s = co_await pair->first.send_all(as_bytes("data")).with_stop(stop.get_token());
    TransferResult r = co_await pair->second.recv_exact(buffer).with_stop(stop.get_token());
    co_return std::pair{s, r};
  }());
  EXPECT_EQ(sent.error(), std::errc::operation_canceled) << sent.message();
  EXPECT_EQ(sent.bytes, 0U);
  EXPECT_EQ(got.error(), std::errc::operation_canceled) << got.message();
  EXPECT_EQ(got.bytes, 0U);
}

// A receive that completed with bytes as a stop came: the bytes count, the rest of the
// transfer is not asked for, and the error is the stop's. The stop comes between the
// receive's submission and its completion: the bytes are in the socket, and the cancel's
// SQE follows the receive's in the same enter, so the receive takes them first.
TEST(Tcp, RecvExactKeepsTheBytesOfARequestThatCompletedAsAStopCame) {
  EventLoop loop;
  auto pair = StreamSocket::pair();
  ASSERT_TRUE(pair);
  std::stop_source stop;
  std::array<std::byte, 8> buffer{};
  auto [got, stopped] = loop.run(when_all(
      [&]() -> Task<TransferResult> {
        co_return co_await pair->second.recv_exact(buffer).with_stop(stop.get_token());
      }(),
      [&]() -> Task<bool> {
        EXPECT_EQ(::send(pair->first.fd(), "abcd", 4, MSG_NOSIGNAL), 4);
        co_return stop.request_stop();
      }()));
  EXPECT_TRUE(stopped);
  EXPECT_EQ(got.error(), std::errc::operation_canceled) << got.message();
  EXPECT_EQ(got.outcome, Outcome::cancelled);
  ASSERT_EQ(got.bytes, 4U);
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(buffer.data()), 4), "abcd");
}

TEST(Tcp, StopTokenCancelsARecv) {
  EventLoop loop;
  auto pair = StreamSocket::pair();
  ASSERT_TRUE(pair);
  std::stop_source stop;
  std::array<std::byte, 16> buffer{};
  auto [r, stopped] = loop.run(when_all(
      [&]() -> Task<IoResult> {
        co_return co_await pair->first.recv(buffer).with_stop(stop.get_token());
      }(),
      [&]() -> Task<bool> {
        co_await sleep_for(10ms);
        co_return stop.request_stop();
      }()));
  EXPECT_TRUE(stopped);
  EXPECT_EQ(r.outcome, Outcome::cancelled);
  EXPECT_EQ(r.res, -ECANCELED);
}

TEST(Tcp, ConnectRefusedIsAnErrorValue) {
  EventLoop loop;
  const test::UnusedPort unused;
  auto conn = loop.run(TcpStream::connect(unused.address()));
  ASSERT_FALSE(conn);
  EXPECT_EQ(conn.error(), std::errc::connection_refused) << conn.error().message();
}

TEST(Tcp, ConnectTimesOutAgainstAFullBacklog) {
  EventLoop loop;
  // backlog 0 holds one connection; once it is queued, the kernel drops further SYNs.
  auto listener = TcpListener::bind(Address::ipv4_loopback(), {.backlog = 0});
  ASSERT_TRUE(listener);
  const Address local = local_of(*listener);
  std::vector<ring::test::Fd> fillers;
  for (int i = 0; i < 2; ++i) {
    fillers.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    (void)::connect(fillers.back().get(), local.data(), local.size());
  }
  loop.run(test::sleep_task(20ms));  // let the first handshake complete and fill the queue
  const auto start = std::chrono::steady_clock::now();
  auto conn = loop.run(TcpStream::connect(local, {.timeout = 100ms}));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(conn);
  EXPECT_EQ(conn.error(), std::errc::timed_out) << conn.error().message();
  EXPECT_GE(elapsed, 100ms);
}

TEST(Tcp, ConnectStopTokenCancels) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback(), {.backlog = 0});
  ASSERT_TRUE(listener);
  const Address local = local_of(*listener);
  std::vector<ring::test::Fd> fillers;
  for (int i = 0; i < 2; ++i) {
    fillers.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    (void)::connect(fillers.back().get(), local.data(), local.size());
  }
  loop.run(test::sleep_task(20ms));
  std::stop_source stop;
  auto [conn, stopped] =
      loop.run(when_all(TcpStream::connect(local, {}, stop.get_token()), [&]() -> Task<bool> {
        co_await sleep_for(20ms);
        co_return stop.request_stop();
      }()));
  EXPECT_TRUE(stopped);
  ASSERT_FALSE(conn);
  EXPECT_EQ(conn.error(), std::errc::operation_canceled) << conn.error().message();
}

TEST(Tcp, ListenerStopsAcceptingWhenNobodyAccepts) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback(), {.accept_queue = 2});
  ASSERT_TRUE(listener);
  const Address local = local_of(*listener);
  constexpr int clients = 12;
  std::vector<ring::test::Fd> fds;
  auto accepted = loop.run([&]() -> Task<int> {
    // The first accept arms the multishot request; then clients arrive one by one, with
    // loop turns in between, and nobody accepts.
    fds.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    (void)::connect(fds.back().get(), local.data(), local.size());
    auto first = co_await listener->accept();
    if (!first) co_return -1;
    for (int i = 1; i < clients; ++i) {
      fds.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      (void)::connect(fds.back().get(), local.data(), local.size());
      co_await sleep_for(2ms);
    }
    co_return 1;
  }());
  ASSERT_EQ(accepted, 1);
  // The listener paused its request at the bound (2, plus a slack of 2 for connections
  // the kernel posted before the cancel took effect) instead of taking all of them.
  EXPECT_GE(listener->accept_pauses(), 1U);
  EXPECT_LE(listener->queued(), 4U);
  // Accepting again re-arms: every connection arrives, in order.
  int served = loop.run([&]() -> Task<int> {
    int count = 0;
    for (int i = 1; i < clients; ++i) {
      auto conn = co_await listener->accept();
      if (!conn) break;
      auto peer = conn->peer_address();
      sockaddr_in mine{};
      socklen_t length = sizeof(mine);
      ::getsockname(fds[static_cast<std::size_t>(i)].get(), reinterpret_cast<sockaddr*>(&mine),
                    &length);
      if (peer && peer->port() == ntohs(mine.sin_port)) ++count;
    }
    co_return count;
  }());
  EXPECT_EQ(served, clients - 1);
  EXPECT_GE(listener->accept_arms(), 2U);
  loop.run(listener->close());
}

TEST(Tcp, AcceptsDirectDescriptors) {
  CORING_SKIP_ON_EPOLL_BACKEND("its direct descriptors are fds of the process");
  EventLoop loop;
  auto enabled = enable_direct_descriptors(loop, 16);
  ASSERT_TRUE(enabled) << enabled.error().message();
  auto listener = TcpListener::bind(Address::ipv4_loopback(), {.direct = true});
  ASSERT_TRUE(listener);
  const Address local = local_of(*listener);
  const int fds_before = ring::test::count_open_fds();
  auto [server_reply, client_reply] = loop.run(when_all(
      [&]() -> Task<std::string> {
        auto conn = co_await listener->accept();
        if (!conn) co_return "accept: " + conn.error().message();
        if (!conn->is_direct()) co_return "not a direct descriptor";
        // No fd was installed in the process's table for it.
        if (ring::test::count_open_fds() != fds_before + 1) co_return "an fd was installed";
        std::array<std::byte, 16> buffer{};
        IoResult n = co_await conn->recv(buffer);
        if (n.res <= 0) co_return "recv: " + n.error().message();
        co_await conn->send_all(std::span(buffer).first(n.value()));
        IoResult closed = co_await conn->close();
        co_return closed ? to_string(std::span(buffer).first(n.value()))
                         : "close: " + closed.error().message();
      }(),
      echo_client(local, "direct")));
  EXPECT_EQ(server_reply, "direct");
  EXPECT_EQ(client_reply, "direct");
  loop.run(listener->close());
}

TEST(Tcp, SocketOptions) {
  auto pair = StreamSocket::pair();
  ASSERT_TRUE(pair);
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  EventLoop loop;
  auto client_server = loop.run(connected_pair(*listener));
  auto& client = client_server.first;
  ASSERT_TRUE(client.set_nodelay(true));
  EXPECT_TRUE(*client.nodelay());
  ASSERT_TRUE(client.set_nodelay(false));
  EXPECT_FALSE(*client.nodelay());
  ASSERT_TRUE(client.set_keepalive(KeepAlive{.idle = 30s, .interval = 5s, .count = 3}));
  EXPECT_TRUE(*client.keepalive());
  EXPECT_EQ(*client.option(IPPROTO_TCP, TCP_KEEPIDLE), 30);
  ASSERT_TRUE(client.set_send_buffer_size(65536));
  EXPECT_GE(*client.send_buffer_size(), 65536);
  ASSERT_TRUE(client.set_recv_buffer_size(65536));
  EXPECT_GE(*client.recv_buffer_size(), 65536);
  EXPECT_EQ(client.peer_address()->port(), local_of(*listener).port());
  // TCP_NODELAY on a Unix socket: the kernel's error, as a value.
  EXPECT_FALSE(pair->first.set_nodelay(true));
  loop.run(listener->close());
}

TEST(Tcp, UnclosedSocketsAreClosedOnDestruction) {
  EventLoop loop;
  const int fds_before = ring::test::count_open_fds();
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  auto client_server = loop.run(connected_pair(*listener));
  auto& client = client_server.first;
  auto& server = client_server.second;
  EXPECT_EQ(ring::test::count_open_fds(), fds_before + 3);
  // The server end goes out of scope without close(): the peer sees the end of stream.
  { TcpStream dropped = std::move(server); }
  std::array<std::byte, 8> buffer{};
  IoResult eof = loop.run([&]() -> Task<IoResult> { co_return co_await client.recv(buffer); }());
  EXPECT_EQ(eof.res, 0);
  // A listener whose multishot accept is armed (it stays armed after delivering a
  // connection) is dropped too: its request is cancelled and its fd closed by a task on
  // the loop.
  Address local = local_of(*listener);
  loop.run([&]() -> Task<void> {
    auto [conn, accepted] = co_await when_all(
        TcpStream::connect(local),
        [](Listener& l) -> Task<Result<TcpStream>> { co_return co_await l.accept(); }(*listener));
    (void)conn;
    (void)accepted;
  }());
  ASSERT_EQ(listener->accept_arms(), 1U);
  listener = fail(std::make_error_code(std::errc::operation_canceled));
  loop.run(test::sleep_task(5ms));
  client.reset();
  EXPECT_EQ(ring::test::count_open_fds(), fds_before);
}

}  // namespace
}  // namespace coring::net
