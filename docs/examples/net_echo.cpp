// docs/net.md, "A TCP echo server": a listener with multishot accept, one task per
// connection, and a client that connects, sends, reads the echo back and closes.
//
// Every failure is a value: accept() and connect() return Result<TcpStream>, recv() and
// send() an IoResult whose res is a count or -errno, send_all()/recv_exact() a
// TransferResult. A connection task ends when its peer closes (recv() returns 0).
#include <array>
#include <cstddef>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include <coring/net/tcp.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/scope.hpp>
#include <coring/runtime/task.hpp>
#include <coring/runtime/when_all.hpp>

using namespace std::chrono_literals;
using coring::IoResult;
using coring::Result;
using coring::Task;
using coring::net::Address;
using coring::net::TcpListener;
using coring::net::TcpStream;
using coring::net::TransferResult;

Task<void> serve(TcpStream conn) {
  std::array<std::byte, 4096> buffer{};
  for (;;) {
    IoResult n = co_await conn.recv(buffer);
    if (n.res <= 0) break;  // 0: the peer closed; < 0: -errno (ECONNRESET, ...)
    TransferResult sent = co_await conn.send_all(std::span(buffer).first(n.value()));
    if (!sent) break;
  }
  co_await conn.close();
}

// Serves `connections` clients, then closes the listener. ECANCELED means the listener
// is closed; any other accept error is logged and accept() called again. Out of fds, the
// error names the limit hit and the listener pauses before it retries (1 ms doubling to
// 1 s), so this loop neither spins nor floods the log, and serves again once fds free up.
Task<void> server(TcpListener& listener, int connections) {
  coring::TaskScope scope;
  for (int i = 0; i < connections;) {
    Result<TcpStream> conn = co_await listener.accept();
    if (!conn) {
      if (conn.error() == std::errc::operation_canceled) break;
      std::fprintf(stderr, "accept: %s\n", conn.error().message().c_str());
      continue;
    }
    scope.spawn(serve(std::move(*conn)));
    ++i;
  }
  co_await scope.join();
  co_await listener.close();
}

Task<std::string> client(Address address, std::string_view message) {
  Result<TcpStream> conn = co_await TcpStream::connect(address, {.timeout = 2s});
  if (!conn) co_return "connect: " + conn.error().message();
  (void)conn->set_nodelay(true);
  TransferResult sent = co_await conn->send_all(std::as_bytes(std::span(message)));
  if (!sent) co_return "send: " + sent.message();
  std::string reply(message.size(), '\0');
  TransferResult got =
      co_await conn->recv_exact(std::as_writable_bytes(std::span(reply))).with_deadline(2s);
  if (!got) co_return "recv: " + got.message();
  co_await conn->close();
  co_return reply;
}

int main() {
  coring::EventLoop loop;
  auto listener = TcpListener::bind(*Address::parse("127.0.0.1:0"));  // port 0: any free port
  if (!listener) {
    std::fprintf(stderr, "bind: %s\n", listener.error().message().c_str());
    return 1;
  }
  const Address address = *listener->local_address();
  auto [done, first, second] = loop.run(
      coring::when_all(server(*listener, 2), client(address, "hello"), client(address, "coring")));
  (void)done;
  std::printf("echo server on %s: \"%s\", \"%s\"\n", address.to_string().c_str(), first.c_str(),
              second.c_str());
  return first == "hello" && second == "coring" ? 0 : 1;
}
