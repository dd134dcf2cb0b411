// docs/getting-started.md: a first TCP echo server.
//
//   docs-getting_started_echo [ADDRESS]   serves ADDRESS (127.0.0.1:7000) until killed
//   docs-getting_started_echo --self-test serves one connection that it makes itself
//
// One EventLoop on the main thread, a listener whose accept() is one multishot accept,
// and one coroutine per connection that echoes what it receives until the peer closes.
// Every failure is a value: accept() returns a Result, recv() an IoResult whose res is
// a count (0 at end of stream) or -errno, send_all() a TransferResult.
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
#include <coring/runtime/when_all.hpp>

using namespace coring;
using namespace coring::net;

Task<void> echo(TcpStream conn) {
  std::array<std::byte, 4096> buffer{};
  for (;;) {
    IoResult n = co_await conn.recv(buffer);
    if (n.res <= 0) break;  // 0: the peer closed; < 0: -errno (ECONNRESET, ...)
    if (!co_await conn.send_all(std::span(buffer).first(n.value()))) break;
  }
  co_await conn.close();
}

// Serves `connections` clients (-1: for ever), then closes the listener. An accept
// error other than ECANCELED (the listener closed) is logged and accept() called again:
// out of fds, the error names the limit and the listener pauses before it retries
// (up to a second), so the log gets a few lines a second, not a flood.
Task<void> serve(TcpListener& listener, int connections) {
  TaskScope scope;
  for (int i = 0; i != connections;) {
    Result<TcpStream> conn = co_await listener.accept();
    if (!conn) {
      if (conn.error() == std::errc::operation_canceled) break;
      std::fprintf(stderr, "accept: %s\n", conn.error().message().c_str());
      continue;
    }
    scope.spawn(echo(std::move(*conn)));
    ++i;
  }
  co_await scope.join();
  co_await listener.close();
}

// --self-test: a client that sends a line and reads it back.
Task<bool> client(Address address) {
  using namespace std::chrono_literals;
  constexpr std::string_view message = "hello, coring\n";
  Result<TcpStream> conn = co_await TcpStream::connect(address, {.timeout = 2s});
  if (!conn) co_return false;
  if (!co_await conn->send_all(std::as_bytes(std::span(message)))) co_return false;
  std::string reply(message.size(), '\0');
  TransferResult got =
      co_await conn->recv_exact(std::as_writable_bytes(std::span(reply))).with_deadline(2s);
  co_await conn->close();
  co_return got.ok() && reply == message;
}

int main(int argc, char** argv) {
  const std::string_view arg = argc > 1 ? argv[1] : "127.0.0.1:7000";
  const bool self_test = arg == "--self-test";
  auto address = Address::parse(self_test ? "127.0.0.1:0" : arg);
  if (!address) {
    std::fprintf(stderr, "%s\n", address.message().c_str());
    return 2;
  }
  EventLoop loop;
  auto listener = TcpListener::bind(*address);
  if (!listener) {
    std::fprintf(stderr, "bind: %s\n", listener.error().message().c_str());
    return 1;
  }
  const Address bound = *listener->local_address();
  std::printf("echo server on %s\n", bound.to_string().c_str());
  std::fflush(stdout);
  if (!self_test) {
    loop.run(serve(*listener, -1));
    return 0;
  }
  auto [served, echoed] = loop.run(when_all(serve(*listener, 1), client(bound)));
  (void)served;
  std::printf("self-test: %s\n", echoed ? "echoed" : "FAILED");
  return echoed ? 0 : 1;
}
