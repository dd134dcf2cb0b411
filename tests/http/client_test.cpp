// http::Client against scripted coring servers on the same loop — a listener task that
// runs a script on each connection: read a request, compare its bytes, write canned
// responses — and once against python3's http.server in a child process, a real peer.
//
// The scripts order events among themselves (a connection closed before the client's
// next request, say) with flags the client waits on; the only times are bounds, which
// are generous, and the timeouts of the timeout tests themselves.
#include "coring/http/client.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "../net/net_support.hpp"
#include "coring/http/error.hpp"
#include "coring/net/listener.hpp"
#include "coring/net/reader.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/scope.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"
#include "programs.hpp"
#include "support.hpp"

namespace coring::http {
namespace {

using namespace std::chrono_literals;
using net::test::as_bytes;

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// One connection of a scripted server, as its script sees it.
class Peer {
 public:
  Peer(net::TcpStream stream, int number)
      : index(number), stream_(std::move(stream)), reader_(stream_) {}

  const int index;  // 0 for the server's first connection

  // The next request's bytes as they came (head, then the body with its framing), or
  // nullopt when the connection ends (or 20 s pass) first.
  Task<std::optional<std::string>> read_request() {
    Result<std::string_view> head =
        co_await reader_.read_until("\r\n\r\n", 65536).with_deadline(20s);
    if (!head) co_return std::nullopt;
    std::string request = std::string(*head) + "\r\n\r\n";
    const std::string fields = lowercase(request);
    if (fields.find("transfer-encoding: chunked") != std::string::npos) {
      if (!co_await read_chunks(request)) co_return std::nullopt;
    } else if (const auto at = fields.find("content-length: "); at != std::string::npos) {
      std::string body(std::stoul(fields.substr(at + 16)), '\0');
      net::TransferResult got =
          co_await reader_.read_exact(std::as_writable_bytes(std::span(body))).with_deadline(20s);
      if (!got) co_return std::nullopt;
      request += body;
    }
    co_return request;
  }

  // Reads a request's head only; false if the connection ended (or 20 s passed) first.
  Task<bool> read_head() {
    Result<std::string_view> head =
        co_await reader_.read_until("\r\n\r\n", 65536).with_deadline(20s);
    co_return head.ok();
  }

  // Sends `bytes`; false if the connection failed.
  Task<bool> send(std::string_view bytes) {
    net::TransferResult sent = co_await stream_.send_all(as_bytes(bytes)).with_deadline(20s);
    co_return sent.ok();
  }
  // Waits until the client closes the connection (or 20 s pass).
  Task<void> wait_for_close() {
    std::array<std::byte, 4096> buffer{};
    for (;;) {
      Result<std::size_t> n = co_await reader_.read_some(buffer).with_deadline(20s);
      if (!n || *n == 0) co_return;
    }
  }
  void close() noexcept { stream_.reset(); }

 private:
  // A chunked body, framing included: chunks up to the last, then its empty trailer.
  Task<bool> read_chunks(std::string& request) {
    for (;;) {
      Result<std::string_view> line = co_await reader_.read_line(1024).with_deadline(20s);
      if (!line) co_return false;
      const std::size_t size = std::stoul(std::string(*line), nullptr, 16);
      request.append(*line).append("\r\n");
      std::string data(size + 2, '\0');  // with its CRLF; the last chunk has the trailer's
      net::TransferResult got =
          co_await reader_.read_exact(std::as_writable_bytes(std::span(data))).with_deadline(20s);
      if (!got) co_return false;
      request += data;
      if (size == 0) co_return true;
    }
  }

  net::TcpStream stream_;
  net::BufferedReader reader_;
};

// A listener on 127.0.0.1 that runs `script` on every connection it accepts until stop().
class ScriptedServer {
 public:
  using Script = std::function<Task<void>(Peer&)>;

  explicit ScriptedServer(Script script) : script_(std::move(script)) {
    auto bound = net::TcpListener::bind(net::Address::ipv4_loopback());
    if (!bound) throw std::system_error(bound.error(), "bind");
    listener_.emplace(std::move(*bound));
    port_ = listener_->local_address()->port();
  }

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  // Connections accepted so far.
  [[nodiscard]] int connections() const { return connections_; }

  // Accepts until stop(), then waits for every script to end.
  Task<void> run() {
    TaskScope scope;
    for (;;) {
      Result<net::TcpStream> conn = co_await listener_->accept();
      if (!conn) break;
      scope.spawn(serve(std::move(*conn), connections_++));
    }
    co_await scope.join();
  }
  Task<void> stop() { (void)co_await listener_->close(); }

 private:
  Task<void> serve(net::TcpStream stream, int index) {
    Peer peer(std::move(stream), index);
    co_await script_(peer);
  }

  Script script_;
  std::optional<net::TcpListener> listener_;
  std::uint16_t port_ = 0;
  int connections_ = 0;
};

// Runs `server` and `client` (a Task<void>() that uses it) on a new loop; the server stops
// once the client's task has ended.
template <typename ClientBody>
void run(ScriptedServer& server, ClientBody client) {
  EventLoop loop;
  auto client_then_stop = [](ScriptedServer& s, ClientBody& body) -> Task<void> {
    co_await body();
    co_await s.stop();
  };
  loop.run(when_all(server.run(), client_then_stop(server, client)));
}

// A script that answers every request on the connection with `response`.
ScriptedServer::Script answer_each(std::string response) {
  return [response = std::move(response)](Peer& peer) -> Task<void> {
    while (co_await peer.read_request()) {
      if (!co_await peer.send(response)) break;
    }
  };
}

// The script of the two tests of a pooled connection the server closed: the first
// connection answers one request and closes (without saying so in the response); the
// ones after it answer every request.
struct ClosingFirst {
  bool closed = false;
  std::vector<std::string> requests;

  ScriptedServer::Script script() {
    return [this](Peer& peer) -> Task<void> {
      while (std::optional<std::string> request = co_await peer.read_request()) {
        requests.push_back(*request);
        const std::string body = "from connection " + std::to_string(peer.index);
        if (!co_await peer.send("HTTP/1.1 200 OK\r\nContent-Length: " +
                                std::to_string(body.size()) + "\r\n\r\n" + body)) {
          break;
        }
        if (peer.index == 0) {
          peer.close();
          closed = true;
          break;
        }
      }
    };
  }
  // Waits (on the loop) until the first connection is closed.
  Task<void> wait_closed() const {
    while (!closed) co_await sleep_for(1ms);
  }
};

TEST(HttpClient, SendsTheRequestAndReadsAContentLengthBody) {
  std::string received;
  ScriptedServer server([&](Peer& peer) -> Task<void> {
    if (std::optional<std::string> request = co_await peer.read_request()) received = *request;
    co_await peer.send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: yes\r\n\r\nhello");
    co_await peer.wait_for_close();
  });
  Client client;
  run(server, [&]() -> Task<void> {
    Result<ClientResponse> response = co_await client.get(server.url("/hello?x=1#frag"));
    EXPECT_TRUE(response.ok()) << response.message();
    if (!response) co_return;
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->reason, "OK");
    EXPECT_EQ(response->headers.get("x-test"), "yes");
    EXPECT_EQ(response->body, "hello");
    EXPECT_EQ(response->version_minor, 1);
    EXPECT_EQ(client.idle_connections(), 1U);
    client.close_idle();
    EXPECT_EQ(client.idle_connections(), 0U);
  });
  EXPECT_EQ(received, "GET /hello?x=1 HTTP/1.1\r\nHost: 127.0.0.1:" +
                          std::to_string(server.port()) + "\r\n\r\n");
}

TEST(HttpClient, WritesHostFramingAndTheCallersFields) {
  std::vector<std::string> received;
  ScriptedServer server([&](Peer& peer) -> Task<void> {
    while (std::optional<std::string> request = co_await peer.read_request()) {
      received.push_back(*request);
      if (!co_await peer.send("HTTP/1.1 204 No Content\r\n\r\n")) break;
    }
  });
  Client client;
  run(server, [&]() -> Task<void> {
    EXPECT_EQ((co_await client.post(server.url(""), "", ""))->status, 204);
    EXPECT_EQ((co_await client.post(server.url("/p"), "{}", "application/json"))->status, 204);
    ClientRequest put("PUT", "http://localhost:" + std::to_string(server.port()) + "?q", "data");
    put.headers.add("X-One", "1");
    EXPECT_EQ((co_await client.request(std::move(put)))->status, 204);
    ClientRequest own_host("DELETE", server.url("/d"));
    own_host.headers.add("Host", "example.test");
    EXPECT_EQ((co_await client.request(std::move(own_host)))->status, 204);
    client.close_idle();
  });
  const std::string host = "Host: 127.0.0.1:" + std::to_string(server.port()) + "\r\n";
  ASSERT_EQ(received.size(), 4U);
  EXPECT_EQ(received[0], "POST / HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n");
  EXPECT_EQ(received[1], "POST /p HTTP/1.1\r\n" + host +
                             "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(received[2], "PUT /?q HTTP/1.1\r\nHost: localhost:" + std::to_string(server.port()) +
                             "\r\nX-One: 1\r\nContent-Length: 4\r\n\r\ndata");
  EXPECT_EQ(received[3], "DELETE /d HTTP/1.1\r\nHost: example.test\r\n\r\n");
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpClient, ReadsAChunkedResponseSplitAcrossSends) {
  ScriptedServer server([](Peer& peer) -> Task<void> {
    (void)co_await peer.read_request();
    for (const std::string_view piece :
         {"HTTP/1.1 200 OK\r\nTransfer-Enc", "oding: chunked\r\n\r\n5\r",
          "\nhello\r\n6;ext=1\r\n wo", "rld\r", "\n0\r\nX-Trailer: t\r\n\r\n"}) {
      if (!co_await peer.send(piece)) co_return;
      co_await sleep_for(5ms);  // a receive each, most of the time
    }
    co_await peer.wait_for_close();
  });
  Client client;
  run(server, [&]() -> Task<void> {
    Result<ClientResponse> response = co_await client.get(server.url("/"));
    EXPECT_TRUE(response.ok()) << response.message();
    if (response) {
      EXPECT_EQ(response->body, "hello world");
    }
    EXPECT_EQ(client.idle_connections(), 1U);
    client.close_idle();
  });
}

TEST(HttpClient, ReadsABodyThatRunsToTheClose) {
  ScriptedServer server([](Peer& peer) -> Task<void> {
    (void)co_await peer.read_request();
    co_await peer.send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ");
    co_await sleep_for(5ms);
    co_await peer.send("it");
    peer.close();
  });
  Client client;
  run(server, [&]() -> Task<void> {
    Result<ClientResponse> response = co_await client.get(server.url("/"));
    EXPECT_TRUE(response.ok()) << response.message();
    if (response) {
      EXPECT_EQ(response->body, "all of it");
    }
    EXPECT_EQ(client.idle_connections(), 0U);
  });
}

TEST(HttpClient, ReadsHttp10Responses) {
  ScriptedServer server([](Peer& peer) -> Task<void> {
    (void)co_await peer.read_request();
    co_await peer.send("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    peer.close();
  });
  Client client;
  run(server, [&]() -> Task<void> {
    Result<ClientResponse> response = co_await client.get(server.url("/"));
    EXPECT_TRUE(response.ok()) << response.message();
    if (!response) co_return;
    EXPECT_EQ(response->version_minor, 0);
    EXPECT_EQ(response->body, "ok");
    EXPECT_EQ(client.idle_connections(), 0U);  // HTTP/1.0 without keep-alive
  });
}

TEST(HttpClient, AHeadResponseHasNoBody) {
  std::vector<std::string> received;
  ScriptedServer server([&](Peer& peer) -> Task<void> {
    while (std::optional<std::string> request = co_await peer.read_request()) {
      received.push_back(*request);
      const bool head = request->starts_with("HEAD");
      if (!co_await peer.send(head ? "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
                                   : "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget")) {
        break;
      }
    }
  });
  Client client;
  run(server, [&]() -> Task<void> {
    Result<ClientResponse> head = co_await client.request({"HEAD", server.url("/file")});
    EXPECT_TRUE(head.ok()) << head.message();
    if (head) {
      EXPECT_EQ(head->headers.get("content-length"), "1000");
      EXPECT_EQ(head->body, "");
    }
    // The connection is reused, and the next response read from its start.
    Result<ClientResponse> get = co_await client.get(server.url("/file"));
    EXPECT_TRUE(get.ok()) << get.message();
    if (get) {
      EXPECT_EQ(get->body, "get");
    }
    client.close_idle();
  });
  EXPECT_EQ(received.size(), 2U);
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpClient, SkipsInterimResponses) {
  ScriptedServer server(
      answer_each("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                  "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"));
  Client client;
  run(server, [&]() -> Task<void> {
    Result<ClientResponse> response = co_await client.post(server.url("/items"), "x", "text/plain");
    EXPECT_TRUE(response.ok()) << response.message();
    if (!response) co_return;
    EXPECT_EQ(response->status, 201);
    EXPECT_EQ(response->reason, "Created");
    EXPECT_FALSE(response->headers.contains("link"));
    EXPECT_EQ(response->body, "ok");
    EXPECT_EQ(client.idle_connections(), 1U);
    client.close_idle();
  });
}

TEST(HttpClient, ReusesAKeptAliveConnection) {
  ScriptedServer server(answer_each("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nsame"));
  Client client;
  run(server, [&]() -> Task<void> {
    for (int i = 0; i < 3; ++i) {
      Result<ClientResponse> response = co_await client.get(server.url("/"));
      EXPECT_TRUE(response.ok()) << response.message();
      if (response) {
        EXPECT_EQ(response->body, "same");
      }
      EXPECT_EQ(client.idle_connections(), 1U);
    }
    client.close_idle();
  });
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpClient, RetriesAGetOnAPooledConnectionTheServerClosed) {
  ClosingFirst script;
  ScriptedServer server(script.script());
  Client client;
  run(server, [&]() -> Task<void> {
    Result<ClientResponse> first = co_await client.get(server.url("/1"));
    EXPECT_TRUE(first.ok()) << first.message();
    EXPECT_EQ(client.idle_connections(), 1U);  // the response did not say it would close
    co_await script.wait_closed();
    Result<ClientResponse> second = co_await client.get(server.url("/2"));
    EXPECT_TRUE(second.ok()) << second.message();
    if (second) {
      EXPECT_EQ(second->body, "from connection 1");
    }
    client.close_idle();
  });
  EXPECT_EQ(server.connections(), 2);
  ASSERT_EQ(script.requests.size(), 2U);
  EXPECT_TRUE(script.requests[1].starts_with("GET /2 "));
}

TEST(HttpClient, DoesNotRetryAPost) {
  ClosingFirst script;
  ScriptedServer server(script.script());
  Client client;
  run(server, [&]() -> Task<void> {
    Result<ClientResponse> first = co_await client.get(server.url("/1"));
    EXPECT_TRUE(first.ok()) << first.message();
    co_await script.wait_closed();
    Result<ClientResponse> post = co_await client.post(server.url("/2"), "once", "text/plain");
    EXPECT_FALSE(post.ok());
    const std::error_code error = post.error();
    EXPECT_TRUE(error == Errc::incomplete_message || error == std::errc::connection_reset ||
                error == std::errc::broken_pipe)
        << error.message();
    EXPECT_EQ(client.idle_connections(), 0U);
  });
  // A retry would have made a second connection, and the POST would have succeeded.
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(script.requests.size(), 1U);
}

TEST(HttpClient, DoesNotPoolAConnectionTheResponseCloses) {
  ScriptedServer server([](Peer& peer) -> Task<void> {
    if (!co_await peer.read_request()) co_return;
    co_await peer.send("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye");
    co_await peer.wait_for_close();
  });
  Client client;
  run(server, [&]() -> Task<void> {
    for (int i = 0; i < 2; ++i) {
      Result<ClientResponse> response = co_await client.get(server.url("/"));
      EXPECT_TRUE(response.ok()) << response.message();
      if (response) {
        EXPECT_EQ(response->body, "bye");
      }
      EXPECT_EQ(client.idle_connections(), 0U);
    }
  });
  EXPECT_EQ(server.connections(), 2);
}

TEST(HttpClient, DoesNotPoolWhenTheRequestCloses) {
  ScriptedServer server(answer_each("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  Client client;
  run(server, [&]() -> Task<void> {
    ClientRequest request("GET", server.url("/"));
    request.headers.add("Connection", "close");
    EXPECT_TRUE((co_await client.request(std::move(request))).ok());
    EXPECT_EQ(client.idle_connections(), 0U);
  });
}

TEST(HttpClient, DoesNotPoolAConnectionWithBytesAfterTheResponse) {
  ScriptedServer server(answer_each("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1"));
  Client client;
  run(server, [&]() -> Task<void> {
    Result<ClientResponse> response = co_await client.get(server.url("/"));
    EXPECT_TRUE(response.ok()) << response.message();
    if (response) {
      EXPECT_EQ(response->body, "ok");
    }
    EXPECT_EQ(client.idle_connections(), 0U);  // they would be read as the next response
  });
}

// Found by an outside review: a server that answers an upload before its end (a 413)
// and closes resets the connection under the client's send. The answer waits in the
// client's receive buffer ahead of the reset, and is what the request returns.
TEST(HttpClient, ReadsTheAnswerOfAServerThatClosesDuringTheBody) {
  ScriptedServer server([](Peer& peer) -> Task<void> {
    if (!co_await peer.read_head()) co_return;
    (void)co_await peer.send(
        "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    peer.close();  // the body unread: a reset
  });
  Client client;
  run(server, [&]() -> Task<void> {
    Result<ClientResponse> response = co_await client.post(
        server.url("/upload"), std::string(std::size_t{8} << 20, 'x'), "application/octet-stream");
    EXPECT_TRUE(response.ok()) << response.message();
    if (response) {
      EXPECT_EQ(response->status, 413);
    }
    EXPECT_EQ(client.idle_connections(), 0U);
  });
  EXPECT_EQ(server.connections(), 1);  // not sent again
}

TEST(HttpClient, ARequestTimesOutWhenTheServerNeverAnswers) {
  ScriptedServer server([](Peer& peer) -> Task<void> {
    (void)co_await peer.read_request();
    co_await peer.wait_for_close();
  });
  Client client({.request_timeout = 200ms});
  run(server, [&]() -> Task<void> {
    const auto start = std::chrono::steady_clock::now();
    Result<ClientResponse> response = co_await client.get(server.url("/slow"));
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(response.error(), std::errc::timed_out) << response.message();
    EXPECT_GE(took, 150ms);
    EXPECT_LT(took, 10s);
    EXPECT_EQ(client.idle_connections(), 0U);
  });
}

TEST(HttpClient, AStopTokenCancelsARequest) {
  ScriptedServer server([](Peer& peer) -> Task<void> {
    (void)co_await peer.read_request();
    co_await peer.wait_for_close();
  });
  Client client;
  std::stop_source stop;
  run(server, [&]() -> Task<void> {
    auto stopper = [](std::stop_source& source) -> Task<void> {
      co_await sleep_for(20ms);
      source.request_stop();
    };
    auto [response, nothing] =
        co_await when_all(client.get(server.url("/"), stop.get_token()), stopper(stop));
    EXPECT_EQ(response.error(), std::errc::operation_canceled) << response.message();
    EXPECT_EQ(client.idle_connections(), 0U);
  });
}

TEST(HttpClient, RefusesAMalformedResponse) {
  for (const std::string_view bad :
       {"HTTP/1.1 200 OK\r\nBad Field: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
        "Content-Length: 2\r\n\r\nab",
        "SMTP ready\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}) {
    ScriptedServer server(answer_each(std::string(bad)));
    Client client;
    run(server, [&]() -> Task<void> {
      Result<ClientResponse> response = co_await client.get(server.url("/"));
      EXPECT_EQ(response.error(), Errc::malformed_message) << bad;
      EXPECT_EQ(client.idle_connections(), 0U);
    });
  }
}

TEST(HttpClient, RefusesABodyOverTheLimit) {
  for (const std::string_view large : {"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a",
                                       "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                                       "chunked\r\n\r\n6\r\n012345\r\n5\r\n6789a\r\n0\r\n\r\n",
                                       "HTTP/1.1 200 OK\r\n\r\n0123456789a"}) {
    ScriptedServer server([large](Peer& peer) -> Task<void> {
      (void)co_await peer.read_request();
      co_await peer.send(large);
      peer.close();
    });
    ClientOptions options;
    options.limits.max_body_bytes = 10;
    Client client(options);
    run(server, [&]() -> Task<void> {
      Result<ClientResponse> response = co_await client.get(server.url("/"));
      EXPECT_EQ(response.error(), Errc::body_too_large) << large;
    });
  }
}

TEST(HttpClient, AResponseCutShortIsIncomplete) {
  for (const std::string_view cut : {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd",
                                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                                     "HTTP/1.1 200 OK\r\nContent-", ""}) {
    ScriptedServer server([cut](Peer& peer) -> Task<void> {
      (void)co_await peer.read_request();
      co_await peer.send(cut);
      peer.close();
    });
    Client client;
    run(server, [&]() -> Task<void> {
      Result<ClientResponse> response = co_await client.get(server.url("/"));
      EXPECT_EQ(response.error(), Errc::incomplete_message) << cut;
    });
  }
}

TEST(HttpClient, SendsAChunkedRequestBody) {
  std::vector<std::string> received;
  ScriptedServer server([&](Peer& peer) -> Task<void> {
    while (std::optional<std::string> request = co_await peer.read_request()) {
      received.push_back(*request);
      if (!co_await peer.send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) break;
    }
  });
  const std::string large(100'000, 'z');
  Client client;
  run(server, [&]() -> Task<void> {
    ClientRequest small("POST", server.url("/up"), "hello chunks");
    small.chunked = true;
    EXPECT_TRUE((co_await client.request(std::move(small))).ok());
    ClientRequest empty("PUT", server.url("/up"));
    empty.chunked = true;
    EXPECT_TRUE((co_await client.request(std::move(empty))).ok());
    ClientRequest big("POST", server.url("/up"), large);
    big.chunked = true;
    EXPECT_TRUE((co_await client.request(std::move(big))).ok());
    client.close_idle();
  });
  const std::string head = "POST /up HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port()) +
                           "\r\nTransfer-Encoding: chunked\r\n\r\n";
  ASSERT_EQ(received.size(), 3U);
  EXPECT_EQ(received[0], head + "c\r\nhello chunks\r\n0\r\n\r\n");
  EXPECT_EQ(received[1], "PUT" + head.substr(4) + "0\r\n\r\n");
  EXPECT_EQ(received[2], head + "186a0\r\n" + large + "\r\n0\r\n\r\n");
}

TEST(HttpClient, SendsALargeBodyWithContentLength) {
  std::string received;
  ScriptedServer server([&](Peer& peer) -> Task<void> {
    if (std::optional<std::string> request = co_await peer.read_request()) received = *request;
    co_await peer.send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    co_await peer.wait_for_close();
  });
  std::string large(1 << 20, '\0');
  for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>('a' + i % 23);
  Client client;
  run(server, [&]() -> Task<void> {
    EXPECT_TRUE((co_await client.post(server.url("/big"), large, "")).ok());
    client.close_idle();
  });
  const std::string head =
      "POST /big HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port()) +
      "\r\nContent-Length: 1048576\r\n\r\n";
  EXPECT_EQ(received.size(), head.size() + large.size());
  EXPECT_TRUE(received == head + large);
}

TEST(HttpClient, RefusesBadUrlsAndRequestsWithoutConnecting) {
  EventLoop loop;
  Client client;
  loop.run([](Client& c) -> Task<void> {
    for (const char* url :
         {"", "127.0.0.1/", "ftp://127.0.0.1/", "http://example.com/", "http://127.0.0.1:0/",
          "http://127.0.0.1:65536/", "http://127.0.0.1:8x/", "http://unix:/tmp/socket",
          "http://user@127.0.0.1/", "http://[::1/", "http:///path", "http://127.0.0.1/a b",
          "http://127.0.0.1/\x7f", "http://1.2.3/"}) {
      Result<ClientResponse> response = co_await c.get(url);
      EXPECT_EQ(response.error(), std::errc::invalid_argument) << url;
    }
    // https:// is TLS where coring::http has coring::tls (nobody listens on port 1), and
    // a clear refusal where it has not.
    Result<ClientResponse> secure = co_await c.get("https://127.0.0.1:1/");
#if __has_include(<coring/net/tls.hpp>)
    EXPECT_EQ(secure.error(), std::errc::connection_refused) << secure.message();
#else
    EXPECT_EQ(secure.error(), std::errc::protocol_not_supported) << secure.message();
#endif
    ClientRequest bad_method("GE T", "http://127.0.0.1:1/");
    EXPECT_EQ((co_await c.request(std::move(bad_method))).error(), std::errc::invalid_argument);
    ClientRequest own_length("POST", "http://127.0.0.1:1/", "x");
    own_length.headers.add("Content-Length", "1");
    EXPECT_EQ((co_await c.request(std::move(own_length))).error(), std::errc::invalid_argument);
    ClientRequest own_coding("POST", "http://127.0.0.1:1/");
    own_coding.headers.add("Transfer-Encoding", "chunked");
    EXPECT_EQ((co_await c.request(std::move(own_coding))).error(), std::errc::invalid_argument);
  }(client));
}

TEST(HttpClient, ReportsARefusedConnection) {
  const net::test::UnusedPort unused;
  EventLoop loop;
  Client client;
  Result<ClientResponse> response =
      loop.run(client.get("http://127.0.0.1:" + std::to_string(unused.port()) + "/"));
  EXPECT_EQ(response.error(), std::errc::connection_refused) << response.message();
}

TEST(HttpClient, UsesIpv6Literals) {
  auto bound = net::TcpListener::bind(net::Address::ipv6_loopback());
  if (!bound) GTEST_SKIP() << "no IPv6 loopback here: " << bound.error().message();
  const std::uint16_t port = bound->local_address()->port();
  EventLoop loop;
  std::string received;
  auto serve = [](net::TcpListener& listener, std::string& request) -> Task<void> {
    Result<net::TcpStream> conn = co_await listener.accept();
    if (!conn) co_return;
    Peer peer(std::move(*conn), 0);
    if (std::optional<std::string> got = co_await peer.read_request()) request = *got;
    co_await peer.send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nv6");
  };
  Client client;
  auto [nothing, response] = loop.run(
      when_all(serve(*bound, received), client.get("http://[::1]:" + std::to_string(port) + "/6")));
  EXPECT_TRUE(response.ok()) << response.message();
  if (response) {
    EXPECT_EQ(response->body, "v6");
  }
  EXPECT_EQ(received, "GET /6 HTTP/1.1\r\nHost: [::1]:" + std::to_string(port) + "\r\n\r\n");
  (void)loop.run(bound->close());
}

TEST(HttpClient, ExpiresIdleConnections) {
  ScriptedServer server(answer_each("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  Client client({.idle_timeout = 1ms});
  run(server, [&]() -> Task<void> {
    EXPECT_TRUE((co_await client.get(server.url("/"))).ok());
    EXPECT_EQ(client.idle_connections(), 1U);
    co_await sleep_for(20ms);
    EXPECT_TRUE((co_await client.get(server.url("/"))).ok());
    client.close_idle();
  });
  EXPECT_EQ(server.connections(), 2);
}

TEST(HttpClient, KeepsAtMostMaxIdlePerHost) {
  ScriptedServer server(answer_each("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  Client client({.max_idle_per_host = 2});
  run(server, [&]() -> Task<void> {
    auto [a, b, c] = co_await when_all(client.get(server.url("/a")), client.get(server.url("/b")),
                                       client.get(server.url("/c")));
    EXPECT_TRUE(a.ok() && b.ok() && c.ok());
    EXPECT_EQ(client.idle_connections(), 2U);
    client.close_idle();
  });
  EXPECT_EQ(server.connections(), 3);
}

// Three servers are three origins: with max_idle 2 the oldest pooled connection goes.
TEST(HttpClient, KeepsAtMostMaxIdleInAll) {
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  ScriptedServer a(answer_each(ok));
  ScriptedServer b(answer_each(ok));
  ScriptedServer c(answer_each(ok));
  Client client({.max_idle = 2});
  auto requests = [&]() -> Task<void> {
    const std::array<ScriptedServer*, 3> servers{&a, &b, &c};
    for (ScriptedServer* server : servers) {
      EXPECT_TRUE((co_await client.get(server->url("/"))).ok());
    }
    EXPECT_EQ(client.idle_connections(), 2U);
    // a's went: c's connection is used again, a gets a new one (and b's goes).
    EXPECT_TRUE((co_await client.get(c.url("/"))).ok());
    EXPECT_TRUE((co_await client.get(a.url("/"))).ok());
    EXPECT_EQ(client.idle_connections(), 2U);
    client.close_idle();
    for (ScriptedServer* server : servers) co_await server->stop();
  };
  EventLoop loop;
  loop.run(when_all(a.run(), b.run(), c.run(), requests()));
  EXPECT_EQ(a.connections(), 2);
  EXPECT_EQ(b.connections(), 1);
  EXPECT_EQ(c.connections(), 1);
}

TEST(HttpClient, ClosesPooledConnectionsWhenDestroyed) {
  ScriptedServer server(answer_each("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  std::optional<Client> client(std::in_place);
  run(server, [&]() -> Task<void> {
    EXPECT_TRUE((co_await client->get(server.url("/"))).ok());
    EXPECT_EQ(client->idle_connections(), 1U);
    const int open = ring::test::count_open_fds();
    client.reset();
    EXPECT_EQ(ring::test::count_open_fds(), open - 1);  // the pooled connection's fd
  });
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpClient, FetchesAFileFromPythonsHttpServer) {
  REQUIRE_PROGRAM("python3", "python3");
  ring::test::TempDir dir;
  std::string content(300'000, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 7 % 251);
  std::ofstream(dir.file("data.bin"), std::ios::binary) << content;
  // It names its port in its first line: "Serving HTTP on 127.0.0.1 port N (...) ...".
  test::ServerProgram python("exec python3 -u -m http.server 0 --bind 127.0.0.1 --directory " +
                                 dir.path() + " 2>/dev/null",
                             " port ");
  const std::optional<std::uint16_t> port = python.port();
  ASSERT_TRUE(port) << "python3 -m http.server named no port: " << python.output();
  EventLoop loop;
  Client client;
  const std::string base = "http://127.0.0.1:" + std::to_string(*port);
  auto fetch = [](Client& c, std::string url) -> Task<Result<ClientResponse>> {
    co_return co_await c.get(std::move(url));
  };
  Result<ClientResponse> file = loop.run(fetch(client, base + "/data.bin"));
  ASSERT_TRUE(file.ok()) << file.message();
  EXPECT_EQ(file->status, 200);
  EXPECT_EQ(file->headers.get("content-length"), std::to_string(content.size()));
  EXPECT_TRUE(file->body == content) << "the body differs from the file";
  Result<ClientResponse> missing = loop.run(fetch(client, base + "/nothing-here"));
  ASSERT_TRUE(missing.ok()) << missing.message();
  EXPECT_EQ(missing->status, 404);
  Result<ClientResponse> head = loop.run(client.request({"HEAD", base + "/data.bin"}));
  ASSERT_TRUE(head.ok()) << head.message();
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());
  EXPECT_EQ(client.idle_connections(), 0U);  // http.server speaks HTTP/1.0 and closes
}

}  // namespace
}  // namespace coring::http
