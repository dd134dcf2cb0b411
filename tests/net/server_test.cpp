// The library's server frame (coring/net/server.hpp) on its own: deadlines that shut a
// connection for reading or both ways, the connection limit, and the graceful drain.
// Each server runs on a thread of its own; clients are blocking sockets whose receives
// time out after 10 s, so that a server that fails to act fails the test, not hangs it.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "net_support.hpp"
#include <coring/net/server.hpp>
#include <coring/runtime/time.hpp>

namespace coring::net {
namespace {

using namespace std::chrono_literals;

// Runs a Server on its own thread; stops and joins it when destroyed.
class ServerThread {
 public:
  ServerThread(ServerOptions options, ConnectionHandler handler) {
    options.handle_signals = false;
    server_ = std::make_unique<Server>(options, std::move(handler));
    thread_ = std::thread([this] { status_ = server_->run(); });
  }
  ~ServerThread() { join(); }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;

  // Stops the server and waits for run() to return; its status.
  int join() {
    server_->stop();
    if (thread_.joinable()) thread_.join();
    return status_;
  }
  [[nodiscard]] Server& server() { return *server_; }
  [[nodiscard]] std::uint16_t port() const { return server_->port(); }

 private:
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int status_ = -1;
};

// A blocking client; the fd closes with it.
class Client {
 public:
  explicit Client(std::uint16_t port) : fd_(test::connected_client(port, 10s)) {
    EXPECT_GE(fd_, 0);
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void send(std::string_view data) const {
    ASSERT_EQ(::send(fd_, data.data(), data.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(data.size()));
  }
  // Everything until the server's end of stream (or an error or the 10 s timeout: then
  // `ended` is false).
  std::string read_to_end(bool* ended = nullptr) {
    std::string got;
    ssize_t n = 0;
    while ((n = test::receive_into(fd_, got)) > 0) {
    }
    if (ended != nullptr) *ended = n == 0;
    return got;
  }
  // At least `size` bytes, or what came before the stream ended.
  std::string read(std::size_t size) {
    std::string got;
    while (got.size() < size && test::receive_into(fd_, got) > 0) {
    }
    return got;
  }

 private:
  int fd_;
};

// The "busy" lines line_handler has taken, and the handlers that made themselves busy for
// good: a test waits for these before it stops the server.
std::atomic<int> busy_lines{0};
std::atomic<int> busy_for_good{0};

// Echoes lines; a line "busy" makes the connection busy for 300 ms before its answer
// "done". At a deadline that shut it for reading, it says "expired" and ends.
Task<void> line_handler(const TcpStream& stream, Connection& conn) {
  std::array<std::byte, 256> buffer;
  for (;;) {
    const IoResult got = co_await stream.recv(buffer);
    if (got.res <= 0) break;
    const std::string_view text(reinterpret_cast<const char*>(buffer.data()), got.value());
    if (text.starts_with("busy")) {
      conn.set_busy(true);
      ++busy_lines;
      co_await sleep_for(300ms);
      (void)co_await stream.send_all(test::as_bytes("done\n"));
      conn.set_busy(false);
      continue;
    }
    (void)co_await stream.send_all(std::span(buffer).first(got.value()));
  }
  if (conn.expired()) (void)co_await stream.send_all(test::as_bytes("expired\n"));
}

TEST(NetServer, ADeadlineThatShutsReadingLetsTheHandlerAnswer) {
  ServerOptions options;
  ServerThread server(options, [](const TcpStream& stream, Connection& conn) -> Task<void> {
    conn.set_deadline(100ms, Expiry::shut_read);
    return line_handler(stream, conn);
  });
  Client client(server.port());
  bool ended = false;
  // Nothing sent: the deadline ends the receive, and the send after it still goes out.
  EXPECT_EQ(client.read_to_end(&ended), "expired\n");
  EXPECT_TRUE(ended);
  EXPECT_EQ(server.join(), 0);
}

TEST(NetServer, ADeadlineThatShutsBothWaysEndsSendsToo) {
  ServerOptions options;
  ServerThread server(options, [](const TcpStream& stream, Connection& conn) -> Task<void> {
    conn.set_deadline(100ms, Expiry::shut_both);
    return line_handler(stream, conn);
  });
  Client client(server.port());
  bool ended = false;
  EXPECT_EQ(client.read_to_end(&ended), "");  // the "expired" send fails
  EXPECT_TRUE(ended);
}

TEST(NetServer, IdleTimeoutAppliesFromAcceptAndActivityPushesItBack) {
  ServerOptions options;
  options.idle_timeout = 400ms;
  ServerThread server(options, [](const TcpStream& stream, Connection& conn) -> Task<void> {
    std::array<std::byte, 64> buffer;
    for (;;) {
      const IoResult got = co_await stream.recv(buffer);
      if (got.res <= 0) break;
      conn.active();
      (void)co_await stream.send_all(std::span(buffer).first(got.value()));
    }
  });
  Client client(server.port());
  // Nine messages 100 ms apart outlive the timeout twice over: each pushes it back (and
  // a stall of up to 300 ms between two of them is no idle timeout).
  for (int i = 0; i < 9; ++i) {
    client.send("x");
    EXPECT_EQ(client.read(1), "x");
    std::this_thread::sleep_for(100ms);
  }
  bool ended = false;
  EXPECT_EQ(client.read_to_end(&ended), "");
  EXPECT_TRUE(ended);
}

TEST(NetServer, ConnectionsBeyondTheLimitAreClosedAtOnce) {
  ServerOptions options;
  options.max_connections = 2;
  ServerThread server(options, &line_handler);
  auto first = std::make_unique<Client>(server.port());
  Client second(server.port());
  first->send("a");
  EXPECT_EQ(first->read(1), "a");
  second.send("b");
  EXPECT_EQ(second.read(1), "b");
  {
    Client third(server.port());
    bool ended = false;
    EXPECT_EQ(third.read_to_end(&ended), "");
    EXPECT_TRUE(ended);
  }
  EXPECT_EQ(server.server().refused(), 1U);
  // A place frees up when a connection ends.
  first.reset();
  for (int i = 0; i < 1000 && server.server().connections() != 1; ++i) {
    std::this_thread::sleep_for(5ms);
  }
  Client fourth(server.port());
  fourth.send("d");
  EXPECT_EQ(fourth.read(1), "d");
  EXPECT_EQ(server.server().refused(), 1U);
}

TEST(NetServer, ADrainClosesIdleConnectionsAndLetsBusyOnesFinish) {
  ServerOptions options;
  options.drain_timeout = 10s;
  ServerThread server(options, &line_handler);
  Client idle(server.port());
  Client busy(server.port());
  idle.send("hi");
  EXPECT_EQ(idle.read(2), "hi");
  const int busy_before = busy_lines.load();
  busy.send("busy");
  // The handler has the line, and sleeps 300 ms before its answer.
  ASSERT_TRUE(test::eventually([&] { return busy_lines.load() > busy_before; }));
  const auto start = std::chrono::steady_clock::now();
  server.server().stop();
  bool ended = false;
  EXPECT_EQ(idle.read_to_end(&ended), "");
  EXPECT_TRUE(ended);
  // The busy connection gets its answer, then its end.
  EXPECT_EQ(busy.read_to_end(&ended), "done\n");
  EXPECT_TRUE(ended);
  EXPECT_EQ(server.join(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);  // well before the drain bound
}

TEST(NetServer, TheDrainTimeoutShutsWhatIsStillBusy) {
  ServerOptions options;
  options.drain_timeout = 200ms;
  ServerThread server(options, [](const TcpStream& stream, Connection& conn) -> Task<void> {
    conn.set_busy(true);  // and never idle again: only the drain's bound ends it
    ++busy_for_good;
    std::array<std::byte, 64> buffer;
    while ((co_await stream.recv(buffer)).res > 0) {
    }
  });
  const int busy_before = busy_for_good.load();
  Client client(server.port());
  client.send("x");
  ASSERT_TRUE(test::eventually([&] { return busy_for_good.load() > busy_before; }));
  const auto start = std::chrono::steady_clock::now();
  server.server().stop();
  bool ended = false;
  EXPECT_EQ(client.read_to_end(&ended), "");
  EXPECT_TRUE(ended);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  EXPECT_EQ(server.join(), 0);
}

}  // namespace
}  // namespace coring::net
