// coring-http's server (examples/http_server.hpp on the Server frame of server.hpp), run
// in process on its own thread and spoken to through plain blocking sockets: good,
// pipelined, byte-at-a-time, malformed and oversized requests, HTTP/1.0 and
// `Connection: close`, idle timeouts and shutdown with connections open.
//
// Every read has a generous timeout (SO_RCVTIMEO, 10 s) so that a server that fails to
// answer fails the test instead of hanging it; no test depends on tight timings.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http_server.hpp"
#include "net_support.hpp"
#include "server.hpp"
#include "support.hpp"

namespace coring::examples {
namespace {

using namespace std::chrono_literals;

struct Response {
  int status = 0;
  std::string headers;  // the header section, status line included
  std::string body;
  [[nodiscard]] bool has_header(std::string_view line) const {
    return headers.find(std::string("\r\n") + std::string(line) + "\r\n") != std::string::npos;
  }
};

// A blocking client connection with a read buffer.
class Client {
 public:
  explicit Client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    EXPECT_GE(fd_, 0);
    EXPECT_EQ(net::test::connect_client(fd_, port, 10s), 0);
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void send(std::string_view data) const {
    ASSERT_EQ(::send(fd_, data.data(), data.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(data.size()));
  }

  // The next response (to a HEAD request: without a body); status 0 if the connection
  // ended (or timed out) before one.
  Response read_response(bool to_head = false) {
    Response response;
    std::size_t end = 0;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return response;
    }
    response.headers = buffer_.substr(0, end + 2);
    buffer_.erase(0, end + 4);
    response.status = std::stoi(response.headers.substr(9, 3));
    const auto length_at = response.headers.find("Content-Length: ");
    const std::size_t length = length_at == std::string::npos || to_head
                                   ? 0
                                   : std::stoul(response.headers.substr(length_at + 16));
    while (buffer_.size() < length) {
      if (!fill()) return Response{};
    }
    response.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return response;
  }

  // Whether the server closed the connection (end of stream, nothing left unread).
  bool closed_by_server() {
    while (fill()) {
    }
    return eof_ && buffer_.empty();
  }
  [[nodiscard]] std::string_view unread() const { return buffer_; }

 private:
  bool fill() {
    const ssize_t got = net::test::receive_into(fd_, buffer_);
    if (got > 0) return true;
    eof_ = got == 0;
    return false;
  }

  int fd_;
  std::string buffer_;
  bool eof_ = false;
};

constexpr std::string_view get_root = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";

// Parameter: whether the server receives with a multishot receive into a BufferPool
// (as coring-http runs) or with a recv per chunk.
class HttpServerTest : public testing::TestWithParam<bool> {
 protected:
  void start(std::chrono::milliseconds idle_timeout = 30s) {
    ServerOptions options;
    options.idle_timeout = idle_timeout;
    options.handle_signals = false;
    if (GetParam()) options.receive_pool = default_receive_pool();
    server_ = std::make_unique<Server>(options, &serve_http);
    thread_ = std::thread([this] { status_ = server_->run(); });
  }
  void SetUp() override {
    if (!server_) start();
  }
  void TearDown() override {
    server_->stop();
    thread_.join();
    EXPECT_EQ(status_, 0);
    server_.reset();
  }
  [[nodiscard]] std::uint16_t port() const { return server_->port(); }

  std::unique_ptr<Server> server_;
  std::thread thread_;
  int status_ = -1;
};

TEST_P(HttpServerTest, GetRootIsHelloWorldAndKeepsTheConnection) {
  Client client(port());
  for (int i = 0; i < 3; ++i) {
    client.send(get_root);
    const Response response = client.read_response();
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.body, "Hello, World!");
    EXPECT_FALSE(response.has_header("Connection: close"));
    EXPECT_TRUE(response.has_header("Content-Length: 13"));
  }
}

TEST_P(HttpServerTest, OtherPathsAre404AndOtherMethods405) {
  Client client(port());
  client.send("GET /index.html HTTP/1.1\r\nHost: test\r\n\r\n");
  EXPECT_EQ(client.read_response().status, 404);
  client.send("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(client.read_response().status, 405);
  client.send("GET /?query=1 HTTP/1.1\r\nHost: test\r\n\r\n");
  EXPECT_EQ(client.read_response().status, 200);
  client.send("HEAD / HTTP/1.1\r\nHost: test\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  const Response head = client.read_response(/*to_head=*/true);
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.has_header("Content-Length: 13"));
  // HEAD got no body: the next response starts right after its header section.
  const Response next = client.read_response();
  EXPECT_EQ(next.status, 200);
  EXPECT_EQ(next.body, "Hello, World!");
}

TEST_P(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Client client(port());
  std::string requests;
  for (int i = 0; i < 50; ++i) {
    requests += i % 3 == 1 ? "GET /missing HTTP/1.1\r\nHost: test\r\n\r\n" : std::string(get_root);
  }
  client.send(requests);
  for (int i = 0; i < 50; ++i) {
    const Response response = client.read_response();
    ASSERT_EQ(response.status, i % 3 == 1 ? 404 : 200) << "response " << i;
  }
  EXPECT_TRUE(client.unread().empty());
}

TEST_P(HttpServerTest, RequestsSentOneByteAtATime) {
  Client client(port());
  const std::string two = std::string(get_root) + "GET /x HTTP/1.1\r\nHost: test\r\n\r\n";
  for (const char byte : two) {
    client.send(std::string_view(&byte, 1));
    std::this_thread::sleep_for(1ms);  // so that the bytes do arrive apart
  }
  EXPECT_EQ(client.read_response().status, 200);
  EXPECT_EQ(client.read_response().status, 404);
}

TEST_P(HttpServerTest, MalformedRequestGets400AndTheConnectionCloses) {
  for (const std::string_view bad :
       {std::string_view("GARBAGE\r\n\r\n"), std::string_view("GET / HTTP/9.Q\r\n\r\n"),
        std::string_view("GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
        std::string_view("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n")}) {
    Client client(port());
    client.send(bad);
    const Response response = client.read_response();
    EXPECT_EQ(response.status, 400) << bad;
    EXPECT_TRUE(response.has_header("Connection: close")) << bad;
    EXPECT_TRUE(client.closed_by_server()) << bad;
  }
}

TEST_P(HttpServerTest, RequestAfterAGoodOneCanStillBeMalformed) {
  Client client(port());
  client.send(std::string(get_root) + "NOT HTTP AT ALL\r\n\r\n" + std::string(get_root));
  EXPECT_EQ(client.read_response().status, 200);
  EXPECT_EQ(client.read_response().status, 400);
  EXPECT_TRUE(client.closed_by_server());  // the request after the bad one gets nothing
}

TEST_P(HttpServerTest, HeaderSectionOver8KiBGets431AndTheConnectionCloses) {
  Client client(port());
  client.send("GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n");
  const Response response = client.read_response();
  EXPECT_EQ(response.status, 431);
  EXPECT_TRUE(response.has_header("Connection: close"));
  EXPECT_TRUE(client.closed_by_server());
}

TEST_P(HttpServerTest, HeaderSectionUnder8KiBIsServed) {
  Client client(port());
  client.send("GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + std::string(7000, 'a') + "\r\n\r\n");
  EXPECT_EQ(client.read_response().status, 200);
}

TEST_P(HttpServerTest, Http10ClosesUnlessAskedToKeepAlive) {
  {
    Client client(port());
    client.send("GET / HTTP/1.0\r\n\r\n");
    const Response response = client.read_response();
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.body, "Hello, World!");
    EXPECT_TRUE(response.has_header("Connection: close"));
    EXPECT_TRUE(client.closed_by_server());
  }
  Client client(port());
  for (int i = 0; i < 2; ++i) {
    client.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    const Response response = client.read_response();
    EXPECT_EQ(response.status, 200);
    EXPECT_TRUE(response.has_header("Connection: keep-alive"));
  }
}

TEST_P(HttpServerTest, ConnectionCloseIsHonouredAndLaterPipelinedRequestsIgnored) {
  Client client(port());
  client.send(std::string(get_root) + "GET / HTTP/1.1\r\nConnection: close\r\n\r\n" +
              std::string(get_root));
  EXPECT_EQ(client.read_response().status, 200);
  const Response last = client.read_response();
  EXPECT_EQ(last.status, 200);
  EXPECT_TRUE(last.has_header("Connection: close"));
  EXPECT_TRUE(client.closed_by_server());
}

class HttpIdleTest : public HttpServerTest {
 protected:
  void SetUp() override { start(200ms); }
};

TEST_P(HttpIdleTest, IdleConnectionIsClosedAfterTheTimeout) {
  Client idle(port());
  Client active(port());
  active.send(get_root);
  EXPECT_EQ(active.read_response().status, 200);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(idle.closed_by_server());  // within the 10 s read timeout
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_TRUE(active.closed_by_server());
}

TEST_P(HttpIdleTest, ActivityKeepsAConnectionOpen) {
  Client client(port());
  // Ten requests 50 ms apart span 2.5 timeouts; none is idle for longer than a quarter.
  for (int i = 0; i < 10; ++i) {
    client.send(get_root);
    ASSERT_EQ(client.read_response().status, 200) << "request " << i;
    std::this_thread::sleep_for(50ms);
  }
}

TEST_P(HttpServerTest, StopEndsOpenConnections) {
  Client client(port());
  client.send(get_root);
  EXPECT_EQ(client.read_response().status, 200);
  server_->stop();
  EXPECT_TRUE(client.closed_by_server());
}

TEST(HttpServerThreads, TwoLoopsShareThePortAndStopCleanly) {
  ServerOptions options;
  options.threads = 2;
  options.handle_signals = false;
  options.receive_pool = default_receive_pool();
  Server server(options, &serve_http);
  int status = -1;
  std::thread runner([&] { status = server.run(); });
  {
    // Enough connections that SO_REUSEPORT's hash puts some on each loop (not asserted:
    // which loop takes one is the kernel's choice); every one must be served.
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 16; ++i) clients.push_back(std::make_unique<Client>(server.port()));
    for (auto& client : clients) client->send(get_root);
    for (auto& client : clients) EXPECT_EQ(client->read_response().status, 200);
    server.stop();
    for (auto& client : clients) EXPECT_TRUE(client->closed_by_server());
  }
  runner.join();
  EXPECT_EQ(status, 0);
}

// The frame's descriptors: with direct descriptors (the default) an accepted connection
// takes a slot of the loop's file table and no fd; without, an fd each. Either way the
// idle timeout's shutdown ends the connections (through the ring for a direct one).
class ServerDescriptorsTest : public testing::TestWithParam<bool> {};

TEST_P(ServerDescriptorsTest, ConnectionsTakeAnFdOnlyWithoutDirectDescriptors) {
  const bool direct = GetParam();
  if (direct) CORING_SKIP_ON_EPOLL_BACKEND("its direct descriptors are fds of the process");
  ServerOptions options;
  options.handle_signals = false;
  options.direct_descriptors = direct;
  options.idle_timeout = 300ms;
  options.receive_pool = default_receive_pool();
  Server server(options, &serve_http);
  int status = -1;
  std::thread runner([&] { status = server.run(); });
  {
    // A first connection served: the loop is running, its pool and file table are set up.
    Client first(server.port());
    first.send(get_root);
    ASSERT_EQ(first.read_response().status, 200);
    const int before = ring::test::count_open_fds();
    constexpr int connections = 8;
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < connections; ++i)
      clients.push_back(std::make_unique<Client>(server.port()));
    for (auto& client : clients) client->send(get_root);
    for (auto& client : clients) ASSERT_EQ(client->read_response().status, 200);
    // Each client holds one fd of this process; the server's side, one more each or none.
    EXPECT_EQ(ring::test::count_open_fds() - before, direct ? connections : 2 * connections);
    for (auto& client : clients) EXPECT_TRUE(client->closed_by_server());
    EXPECT_TRUE(first.closed_by_server());
  }
  server.stop();
  runner.join();
  EXPECT_EQ(status, 0);
}

std::string receive_mode(const testing::TestParamInfo<bool>& info) {
  return info.param ? "pool" : "recv";
}

INSTANTIATE_TEST_SUITE_P(Receive, HttpServerTest, testing::Bool(), receive_mode);
INSTANTIATE_TEST_SUITE_P(Receive, HttpIdleTest, testing::Bool(), receive_mode);

std::string descriptor_mode(const testing::TestParamInfo<bool>& info) {
  return info.param ? "direct" : "fds";
}

INSTANTIATE_TEST_SUITE_P(Frame, ServerDescriptorsTest, testing::Bool(), descriptor_mode);

}  // namespace
}  // namespace coring::examples
