// http::Client over TLS (https:// URLs): against coring's own http::Server with
// ServerOptions::tls, against scripted TlsStream servers on the client's loop (a body cut
// off without close_notify, a handshake or a response that never comes, what the client
// sends when it closes), and against real peers: `openssl s_server -WWW` and python's
// http.server wrapped in ssl. Certificates come from the suite's PKI: a wrong name, an
// unknown CA, an expired certificate are each refused with the TLS error's message.
#include <gtest/gtest.h>
#include <openssl/err.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>

#include "coring/http/client.hpp"
#include "coring/http/error.hpp"
#include "coring/http/router.hpp"
#include "coring/http/server.hpp"
#include "coring/net/listener.hpp"
#include "coring/net/tls.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"
#include "programs.hpp"
#include "test_pki.hpp"

namespace coring::http {
namespace {

namespace stdfs = std::filesystem;
using namespace std::chrono_literals;

// ASSERT_TRUE for a Task<void> coroutine, where gtest's `return` cannot be.
#define CO_ASSERT_TRUE(result)                                       \
  do {                                                               \
    if (!(result)) {                                                 \
      ADD_FAILURE() << #result << " failed: " << (result).message(); \
      co_return;                                                     \
    }                                                                \
  } while (false)
#define CO_ASSERT_FALSE(result)                 \
  do {                                          \
    if (result) {                               \
      ADD_FAILURE() << #result << " succeeded"; \
      co_return;                                \
    }                                           \
  } while (false)

// The method, the Host field and the body, as the server got them.
Task<Response> echo(Request& request) {
  Result<std::string> body = co_await request.body().read_all(16 << 20);
  if (!body) co_return Response::text(400, body.message());
  std::string text(request.method_name());
  text.append(" ").append(request.header("host").value_or("-")).append(" ").append(*body);
  co_return Response::text(200, std::move(text));
}

// An http::Server on a thread of its own, HTTPS when given a context.
class ServerThread {
 public:
  explicit ServerThread(const net::TlsContext* tls, std::string greeting = "Hello, World!",
                        std::chrono::milliseconds idle_timeout = 60s) {
    Router router;
    router.get("/",
               [greeting](Request&) -> Task<Response> { co_return Response::text(200, greeting); });
    router.post("/echo", &echo);
    ServerOptions options;
    options.handle_signals = false;
    options.idle_timeout = idle_timeout;
    options.limits.max_body_bytes = 16 << 20;
    options.tls = tls;
    server_ = std::make_unique<Server>(options, std::move(router));
    thread_ = std::thread([this] { status_ = server_->run(); });
  }
  ~ServerThread() {
    server_->stop();
    thread_.join();
    EXPECT_EQ(status_, 0);
  }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;

  [[nodiscard]] std::uint16_t port() const { return server_->port(); }
  [[nodiscard]] std::size_t connections() const { return server_->connections(); }

 private:
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int status_ = -1;
};

std::string url(std::string_view scheme_host, std::uint16_t port, std::string_view path = "/") {
  std::string text(scheme_host);
  text.push_back(':');
  text.append(std::to_string(port)).append(path);
  return text;
}

std::string large_body() {
  std::string body;
  for (std::size_t i = 0; i < 200'000; ++i) body.push_back(static_cast<char>('a' + i % 26));
  return body;
}

class HttpsClient : public test::PkiSuite {
 protected:
  void TearDown() override { EXPECT_EQ(ERR_peek_error(), 0UL) << "the OpenSSL error queue"; }

  static net::TlsContext server_context(const stdfs::path& chain, const stdfs::path& key) {
    net::TlsServerConfig config;
    config.certificate_chain_file = chain;
    config.private_key_file = key;
    config.alpn = {"http/1.1"};
    return net::TlsContext::server(config).value();
  }
  static net::TlsContext server_context() {
    return server_context(pki_->server_chain, pki_->server_key);
  }
  // Trusts the suite's CA only.
  static net::TlsContext client_context() {
    net::TlsClientConfig config;
    config.ca_file = pki_->ca_cert;
    return net::TlsContext::client(config).value();
  }
  static ClientOptions client_options(const net::TlsContext& context) {
    ClientOptions options;
    options.tls = &context;
    options.request_timeout = 20s;
    return options;
  }
};

TEST_F(HttpsClient, GetsAndPostsWithLengthAndChunked) {
  const net::TlsContext server_tls = server_context();
  ServerThread server(&server_tls);
  const net::TlsContext client_tls = client_context();
  Client client(client_options(client_tls));
  EventLoop loop;
  const std::string big = large_body();
  loop.run([&]() -> Task<void> {
    Result<ClientResponse> page = co_await client.get(url("https://localhost", server.port()));
    CO_ASSERT_TRUE(page);
    EXPECT_EQ(page->status, 200);
    EXPECT_EQ(page->body, "Hello, World!");
    // The Host field names the URL's host and port; the certificate also lists the
    // address, so that a URL of 127.0.0.1 passes its check too.
    const std::string host = std::string("localhost:") + std::to_string(server.port());
    Result<ClientResponse> posted = co_await client.post(
        url("https://localhost", server.port(), "/echo"), "{\"n\": 1}", "application/json");
    CO_ASSERT_TRUE(posted);
    EXPECT_EQ(posted->body, std::string("POST ") + host + " {\"n\": 1}");
    ClientRequest chunked("POST", url("https://127.0.0.1", server.port(), "/echo"), big);
    chunked.chunked = true;
    Result<ClientResponse> echoed = co_await client.request(std::move(chunked));
    CO_ASSERT_TRUE(echoed);
    EXPECT_TRUE(echoed->body ==
                std::string("POST 127.0.0.1:") + std::to_string(server.port()) + " " + big);
    Result<ClientResponse> long_post =
        co_await client.post(url("https://localhost", server.port(), "/echo"), big, "");
    CO_ASSERT_TRUE(long_post);
    EXPECT_TRUE(long_post->body == std::string("POST ") + host + " " + big);
  }());
}

TEST_F(HttpsClient, ReusesOneConnectionPerOrigin) {
  const net::TlsContext server_tls = server_context();
  ServerThread server(&server_tls);
  const net::TlsContext client_tls = client_context();
  Client client(client_options(client_tls));
  EventLoop loop;
  loop.run([&]() -> Task<void> {
    for (int i = 0; i < 3; ++i) {
      Result<ClientResponse> page = co_await client.get(url("https://localhost", server.port()));
      CO_ASSERT_TRUE(page);
      Result<ClientResponse> posted =
          co_await client.post(url("https://localhost", server.port(), "/echo"), "x", "");
      CO_ASSERT_TRUE(posted);
    }
    // Six requests, one connection.
    EXPECT_EQ(client.idle_connections(), 1U);
    EXPECT_EQ(server.connections(), 1U);
    // The same address under another name is another origin: the certificate was
    // checked for "localhost", not for "127.0.0.1".
    Result<ClientResponse> by_address =
        co_await client.get(url("https://127.0.0.1", server.port()));
    CO_ASSERT_TRUE(by_address);
    EXPECT_EQ(client.idle_connections(), 2U);
  }());
  EXPECT_EQ(server.connections(), 2U);
}

TEST_F(HttpsClient, RetriesAGetWhenTheServerClosedThePooledConnection) {
  const net::TlsContext server_tls = server_context();
  // The server closes a connection idle for 200 ms (with close_notify).
  ServerThread server(&server_tls, "Hello, World!", 200ms);
  const net::TlsContext client_tls = client_context();
  Client client(client_options(client_tls));
  EventLoop loop;
  loop.run([&]() -> Task<void> {
    Result<ClientResponse> first = co_await client.get(url("https://localhost", server.port()));
    CO_ASSERT_TRUE(first);
    EXPECT_EQ(client.idle_connections(), 1U);
    co_await sleep_for(1s);
    EXPECT_EQ(server.connections(), 0U);  // the pooled connection is dead
    Result<ClientResponse> second = co_await client.get(url("https://localhost", server.port()));
    CO_ASSERT_TRUE(second);
    EXPECT_EQ(second->body, "Hello, World!");
    EXPECT_EQ(client.idle_connections(), 1U);
  }());
}

TEST_F(HttpsClient, RefusesAServerCertificateForAnotherName) {
  // The alt certificate names other.localhost only.
  const net::TlsContext server_tls = server_context(pki_->alt_chain, pki_->alt_key);
  ServerThread server(&server_tls);
  const net::TlsContext client_tls = client_context();
  Client client(client_options(client_tls));
  EventLoop loop;
  const Result<ClientResponse> page = loop.run(client.get(url("https://localhost", server.port())));
  ASSERT_FALSE(page);
  EXPECT_EQ(page.error().category(), net::x509_category()) << page.message();
  EXPECT_EQ(page.message(), "hostname mismatch");
  EXPECT_EQ(client.idle_connections(), 0U);
}

TEST_F(HttpsClient, RefusesAnUnknownCaAndAnExpiredCertificate) {
  const net::TlsContext unknown_tls = server_context(pki_->unknown_ca_chain, pki_->unknown_ca_key);
  const net::TlsContext expired_tls = server_context(pki_->expired_chain, pki_->expired_key);
  ServerThread unknown(&unknown_tls);
  ServerThread expired(&expired_tls);
  const net::TlsContext client_tls = client_context();
  Client client(client_options(client_tls));
  EventLoop loop;
  loop.run([&]() -> Task<void> {
    const Result<ClientResponse> by_unknown =
        co_await client.get(url("https://localhost", unknown.port()));
    CO_ASSERT_FALSE(by_unknown);
    EXPECT_EQ(by_unknown.error().category(), net::x509_category()) << by_unknown.message();
    // The chain holds its CA, which the client does not trust.
    EXPECT_EQ(by_unknown.message(), "self-signed certificate in certificate chain");
    const Result<ClientResponse> by_expired =
        co_await client.get(url("https://localhost", expired.port()));
    CO_ASSERT_FALSE(by_expired);
    EXPECT_EQ(by_expired.error().category(), net::x509_category()) << by_expired.message();
    EXPECT_EQ(by_expired.message(), "certificate has expired");
  }());
}

TEST_F(HttpsClient, WithoutAContextTheSystemStoreDecidesAndRefusesTheTestCa) {
  // The default context verifies against the system's trust anchors, which do not hold
  // the suite's CA.
  const net::TlsContext server_tls = server_context();
  ServerThread server(&server_tls);
  Client client;
  EXPECT_EQ(client.options().tls, nullptr);
  EventLoop loop;
  const Result<ClientResponse> page = loop.run(client.get(url("https://localhost", server.port())));
  ASSERT_FALSE(page);
  EXPECT_EQ(page.error().category(), net::x509_category()) << page.message();
}

TEST_F(HttpsClient, KeepsHttpAndHttpsApartInOneClient) {
  const net::TlsContext server_tls = server_context();
  ServerThread secure(&server_tls, "over TLS");
  ServerThread plain(nullptr, "in the clear");
  const net::TlsContext client_tls = client_context();
  Client client(client_options(client_tls));
  EventLoop loop;
  loop.run([&]() -> Task<void> {
    for (int i = 0; i < 2; ++i) {
      Result<ClientResponse> a = co_await client.get(url("https://localhost", secure.port()));
      CO_ASSERT_TRUE(a);
      EXPECT_EQ(a->body, "over TLS");
      Result<ClientResponse> b = co_await client.get(url("http://localhost", plain.port()));
      CO_ASSERT_TRUE(b);
      EXPECT_EQ(b->body, "in the clear");
    }
    EXPECT_EQ(client.idle_connections(), 2U);
    // https:// to the plain server's port is a new connection and a TLS handshake, which
    // fails, not a request on the pooled plain connection, which would succeed.
    Result<ClientResponse> wrong = co_await client.get(url("https://localhost", plain.port()));
    EXPECT_FALSE(wrong);
    // And http:// to the TLS port does not ride the pooled TLS connection.
    Result<ClientResponse> clear = co_await client.get(url("http://localhost", secure.port()));
    EXPECT_FALSE(clear);
    EXPECT_EQ(client.idle_connections(), 2U);
  }());
}

// --- Scripted servers on the client's loop ----------------------------------------------------

// How a scripted server ends its response: with close_notify, with close_notify in the
// response's own send (TlsStream::send_final), with the end of the TCP stream and no
// close_notify, or not at all (the connection stays open).
enum class Ending { close_notify, joined_close_notify, cut, keep_open };

// Accepts one connection, reads a request head, writes `response`, ends as `ending`
// says, and returns how the client's side ended: "close_notify", "truncated", or the
// error.
Task<std::string> serve_once(net::TcpListener& listener, const net::TlsContext& context,
                             std::string response, Ending ending, bool* resumed = nullptr) {
  Result<net::TcpStream> conn = co_await listener.accept();
  if (!conn) co_return std::string("accept: ") + conn.message();
  std::string seen;
  {
    net::TlsStream tls = net::TlsStream::server(*conn, context).value();
    const Result<void> shaken = co_await tls.handshake({.timeout = 10s});
    if (resumed != nullptr) *resumed = tls.resumed();
    if (!shaken) {
      seen = std::string("handshake: ") + shaken.message();
    } else {
      std::string head;
      std::array<std::byte, 4096> buffer{};
      while (head.find("\r\n\r\n") == std::string::npos) {
        const Result<std::size_t> got = co_await tls.recv(buffer);
        if (!got || *got == 0) break;
        head.append(reinterpret_cast<const char*>(buffer.data()), *got);
      }
      const auto bytes = std::as_bytes(std::span(response.data(), response.size()));
      if (ending == Ending::joined_close_notify) {
        (void)co_await tls.send_final(bytes);
      } else {
        (void)co_await tls.send_all(bytes);
      }
      if (ending == Ending::close_notify) (void)co_await tls.shutdown();
      if (ending == Ending::cut) {
        (void)co_await conn->shutdown(SHUT_WR);  // the end of the stream, no close_notify
      }
      // What the client sends until it closes.
      for (;;) {
        const Result<std::size_t> got = co_await tls.recv(buffer);
        if (got && *got > 0) continue;
        seen = got ? "close_notify" : got.message();
        break;
      }
    }
  }
  co_await conn->close();
  co_return seen;
}

TEST_F(HttpsClient, ABodyCutOffWithoutCloseNotifyIsTruncated) {
  const net::TlsContext server_tls = server_context();
  const net::TlsContext client_tls = client_context();
  EventLoop loop;
  loop.run([&]() -> Task<void> {
    // A body that runs to the connection's end: whole only if close_notify ends it.
    const std::string response = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe whole body";
    for (const Ending ending : {Ending::close_notify, Ending::cut}) {
      net::TcpListener listener = net::TcpListener::bind(net::Address::ipv4_loopback()).value();
      const std::uint16_t port = listener.local_address().value().port();
      Client client(client_options(client_tls));
      auto [seen, page] = co_await when_all(serve_once(listener, server_tls, response, ending),
                                            client.get(url("https://localhost", port)));
      if (ending == Ending::close_notify) {
        CO_ASSERT_TRUE(page);
        EXPECT_EQ(page->body, "the whole body");
        EXPECT_EQ(seen, "close_notify");  // and the client answered it
      } else {
        CO_ASSERT_FALSE(page);
        EXPECT_EQ(page.error(), net::TlsErrc::truncated) << page.message();
      }
      co_await listener.close();
    }
    // A Content-Length body cut short is truncated too.
    net::TcpListener listener = net::TcpListener::bind(net::Address::ipv4_loopback()).value();
    const std::uint16_t port = listener.local_address().value().port();
    Client client(client_options(client_tls));
    auto [seen, page] = co_await when_all(
        serve_once(listener, server_tls, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
                   Ending::cut),
        client.get(url("https://localhost", port)));
    (void)seen;
    CO_ASSERT_FALSE(page);
    EXPECT_EQ(page.error(), net::TlsErrc::truncated) << page.message();
    co_await listener.close();
  }());
}

TEST_F(HttpsClient, SendsCloseNotifyWhenItEndsAConnection) {
  const net::TlsContext server_tls = server_context();
  const net::TlsContext client_tls = client_context();
  EventLoop loop;
  loop.run([&]() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::ipv4_loopback()).value();
    const std::uint16_t port = listener.local_address().value().port();
    Client client(client_options(client_tls));
    // A response that keeps the connection: pooled, then closed by shutdown_idle().
    auto client_side = [&]() -> Task<Result<ClientResponse>> {
      Result<ClientResponse> page = co_await client.get(url("https://localhost", port));
      EXPECT_EQ(client.idle_connections(), 1U);
      co_await client.shutdown_idle();
      EXPECT_EQ(client.idle_connections(), 0U);
      co_return page;
    };
    auto [seen, page] = co_await when_all(
        serve_once(listener, server_tls, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                   Ending::keep_open),
        client_side());
    CO_ASSERT_TRUE(page);
    EXPECT_EQ(page->body, "ok");
    EXPECT_EQ(seen, "close_notify");
    // A response that closes the connection: the client says close_notify at once.
    auto [seen_closing, closing] = co_await when_all(
        serve_once(listener, server_tls,
                   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                   Ending::keep_open),
        client.get(url("https://localhost", port)));
    CO_ASSERT_TRUE(closing);
    EXPECT_EQ(seen_closing, "close_notify");
    EXPECT_EQ(client.idle_connections(), 0U);
    co_await listener.close();
  }());
}

TEST_F(HttpsClient, AConnectionThatCannotBePooledStillEndsWithCloseNotify) {
  const net::TlsContext server_tls = server_context();
  const net::TlsContext client_tls = client_context();
  EventLoop loop;
  loop.run([&]() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::ipv4_loopback()).value();
    const std::uint16_t port = listener.local_address().value().port();
    const std::string kept = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    // A keep-alive response whose close_notify came in the same read: the connection is
    // over, so it is not pooled (its next request would meet the close).
    {
      Client client(client_options(client_tls));
      auto client_side = [&]() -> Task<Result<ClientResponse>> {
        Result<ClientResponse> page = co_await client.get(url("https://localhost", port));
        EXPECT_EQ(client.idle_connections(), 0U);
        client.close_idle();  // a pooled one would keep the server waiting for its end
        co_return page;
      };
      auto [seen, page] = co_await when_all(
          serve_once(listener, server_tls, kept, Ending::joined_close_notify), client_side());
      CO_ASSERT_TRUE(page);
      EXPECT_EQ(page->body, "ok");
      EXPECT_EQ(seen, "close_notify");
    }
    // A client that pools nothing (max_idle_per_host 0) says close_notify as it closes.
    {
      ClientOptions options = client_options(client_tls);
      options.max_idle_per_host = 0;
      Client client(options);
      auto [seen, page] =
          co_await when_all(serve_once(listener, server_tls, kept, Ending::keep_open),
                            client.get(url("https://localhost", port)));
      CO_ASSERT_TRUE(page);
      EXPECT_EQ(client.idle_connections(), 0U);
      EXPECT_EQ(seen, "close_notify");
    }
    co_await listener.close();
  }());
}

TEST_F(HttpsClient, ResumesTheSessionOnItsNextConnection) {
  const net::TlsContext server_tls = server_context();
  const net::TlsContext client_tls = client_context();
  EventLoop loop;
  loop.run([&]() -> Task<void> {
    net::TcpListener listener = net::TcpListener::bind(net::Address::ipv4_loopback()).value();
    const std::uint16_t port = listener.local_address().value().port();
    Client client(client_options(client_tls));
    // Each response closes its connection: the second request connects again.
    const std::string response =
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    for (const bool again : {false, true}) {
      bool resumed = !again;
      auto [seen, page] =
          co_await when_all(serve_once(listener, server_tls, response, Ending::keep_open, &resumed),
                            client.get(url("https://localhost", port)));
      CO_ASSERT_TRUE(page);
      EXPECT_EQ(seen, "close_notify");
      EXPECT_EQ(resumed, again);
    }
    co_await listener.close();
  }());
}

// Accepts one connection and reads it until the client goes, answering nothing (after
// the handshake when `handshake`); whether it accepted one.
Task<bool> stall_once(net::TcpListener& listener, const net::TlsContext& context, bool handshake) {
  Result<net::TcpStream> conn = co_await listener.accept();
  if (!conn) co_return false;
  std::array<std::byte, 4096> buffer{};
  if (handshake) {
    net::TlsStream tls = net::TlsStream::server(*conn, context).value();
    if (co_await tls.handshake({.timeout = 10s})) {
      for (;;) {
        const Result<std::size_t> got = co_await tls.recv(buffer);
        if (!got || *got == 0) break;
      }
    }
  } else {
    for (;;) {
      const IoResult got = co_await conn->recv(buffer);
      if (got.res <= 0) break;
    }
  }
  co_await conn->close();
  co_return true;
}

TEST_F(HttpsClient, TheHandshakeAndTheResponseKeepTheClientsTimeouts) {
  const net::TlsContext server_tls = server_context();
  const net::TlsContext client_tls = client_context();
  EventLoop loop;
  loop.run([&]() -> Task<void> {
    for (const bool handshake : {false, true}) {
      net::TcpListener listener = net::TcpListener::bind(net::Address::ipv4_loopback()).value();
      const std::uint16_t port = listener.local_address().value().port();
      // The handshake counts against connect_timeout, the response against
      // request_timeout.
      ClientOptions options = client_options(client_tls);
      options.connect_timeout = handshake ? 10s : 300ms;
      options.request_timeout = handshake ? 300ms : 10s;
      Client client(options);
      const auto started = std::chrono::steady_clock::now();
      auto [stalled, page] = co_await when_all(stall_once(listener, server_tls, handshake),
                                               client.get(url("https://localhost", port)));
      const auto took = std::chrono::steady_clock::now() - started;
      EXPECT_TRUE(stalled);
      CO_ASSERT_FALSE(page);
      EXPECT_EQ(page.error(), std::errc::timed_out) << page.message() << " " << handshake;
      EXPECT_LT(took, 5s);
      co_await listener.close();
    }
  }());
}

TEST_F(HttpsClient, SpeaksOnlyHttp11WhereAlpnAgrees) {
  net::TlsServerConfig server_config;
  server_config.certificate_chain_file = pki_->server_chain;
  server_config.private_key_file = pki_->server_key;
  server_config.alpn = {"h2", "http/1.1"};
  const net::TlsContext server_tls = net::TlsContext::server(server_config).value();
  ServerThread server(&server_tls);
  EventLoop loop;
  loop.run([&]() -> Task<void> {
    for (const char* offered : {"http/1.1", "h2"}) {
      net::TlsClientConfig config;
      config.ca_file = pki_->ca_cert;
      config.alpn = {offered};
      const net::TlsContext client_tls = net::TlsContext::client(config).value();
      Client client(client_options(client_tls));
      Result<ClientResponse> page = co_await client.get(url("https://localhost", server.port()));
      if (offered == std::string_view("h2")) {
        EXPECT_EQ(page.error(), std::errc::protocol_not_supported) << page.message();
      } else {
        EXPECT_TRUE(page) << page.message();
      }
    }
  }());
}

TEST_F(HttpsClient, AServerContextIsRefused) {
  const net::TlsContext server_tls = server_context();
  ClientOptions options;
  options.tls = &server_tls;
  EXPECT_THROW(Client{options}, std::system_error);
  // A client context is copied: the client does not need the caller's.
  std::optional<net::TlsContext> given(client_context());
  options.tls = &*given;
  Client client(options);
  given.reset();
  ASSERT_NE(client.options().tls, nullptr);
  EXPECT_FALSE(client.options().tls->is_server());
}

// docs/http.md, "HTTPS client": the code shown there.
Task<Result<ClientResponse>> docs_example(std::string ca_file, std::string https_url) {
  net::TlsClientConfig tls_config;
  tls_config.ca_file = ca_file;  // empty: the system's trust store
  net::TlsContext tls = net::TlsContext::client(tls_config).value();  // TlsError: file, reason
  http::ClientOptions options;
  options.tls = &tls;
  http::Client client(options);
  Result<http::ClientResponse> page = co_await client.get(https_url);
  co_return page;
}

TEST_F(HttpsClient, TheDocsExampleFetchesAPage) {
  const net::TlsContext server_tls = server_context();
  ServerThread server(&server_tls);
  EventLoop loop;
  const Result<ClientResponse> page =
      loop.run(docs_example(pki_->ca_cert, url("https://localhost", server.port())));
  ASSERT_TRUE(page) << page.message();
  EXPECT_EQ(page->body, "Hello, World!");
}

// --- Real peers ------------------------------------------------------------------------------

TEST_F(HttpsClient, GetsAFileFromOpensslServerWww) {
  REQUIRE_PROGRAM("openssl", "openssl");
  const std::string file = dir_->file("www.txt");
  std::ofstream(file) << "served by openssl s_server\n";
  // -WWW answers HTTP/1.0 without Content-Length: the body runs to close_notify.
  test::ServerProgram peer(
      std::string("cd ") + dir_->path() +
          " && exec timeout 30 openssl s_server -WWW -accept 127.0.0.1:0 -cert " +
          pki_->server_chain.string() + " -key " + pki_->server_key.string() + " 2>&1",
      "ACCEPT 127.0.0.1:");
  const std::optional<std::uint16_t> port = peer.port();
  ASSERT_TRUE(port) << "openssl s_server named no port: " << peer.output();
  const net::TlsContext client_tls = client_context();
  Client client(client_options(client_tls));
  EventLoop loop;
  const Result<ClientResponse> page =
      loop.run(client.get(url("https://localhost", *port, "/www.txt")));
  ASSERT_TRUE(page) << page.message();
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->version_minor, 0);
  EXPECT_EQ(page->body, "served by openssl s_server\n");
}

TEST_F(HttpsClient, TalksToPythonsHttpServerOverSsl) {
  REQUIRE_PROGRAM("python3", "python3");
  // HTTP/1.1 with Content-Length, the client's port as the body (one port: one
  // connection); /cut answers without a length and ends without close_notify, as
  // python's server does (it shuts the socket, not the TLS session).
  const std::string script =
      "import http.server, ssl, sys\n"
      "class H(http.server.BaseHTTPRequestHandler):\n"
      "    protocol_version = 'HTTP/1.1'\n"
      "    def log_message(self, *a): pass\n"
      "    def do_GET(self):\n"
      "        if self.path == '/cut':\n"
      "            self.send_response(200)\n"
      "            self.send_header('Connection', 'close')\n"
      "            self.end_headers()\n"
      "            self.wfile.write(b'cut short')\n"
      "            self.close_connection = True\n"
      "            return\n"
      "        body = str(self.client_address[1]).encode()\n"
      "        self.send_response(200)\n"
      "        self.send_header('Content-Length', str(len(body)))\n"
      "        self.end_headers()\n"
      "        self.wfile.write(body)\n"
      "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
      "ctx.load_cert_chain(sys.argv[1], sys.argv[2])\n"
      "server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)\n"
      "server.socket = ctx.wrap_socket(server.socket, server_side=True)\n"
      "print('listening on port', server.server_address[1], flush=True)\n"
      "server.serve_forever()\n";
  const std::string path = dir_->file("https_server.py");
  std::ofstream(path) << script;
  test::ServerProgram peer(std::string("exec timeout 30 python3 ") + path + " " +
                               pki_->server_chain.string() + " " + pki_->server_key.string() +
                               " 2>&1",
                           "listening on port ");
  const std::optional<std::uint16_t> port = peer.port();
  ASSERT_TRUE(port) << "the python server named no port: " << peer.output();
  const net::TlsContext client_tls = client_context();
  Client client(client_options(client_tls));
  EventLoop loop;
  loop.run([&]() -> Task<void> {
    Result<ClientResponse> first = co_await client.get(url("https://localhost", *port));
    CO_ASSERT_TRUE(first);
    for (int i = 0; i < 2; ++i) {
      Result<ClientResponse> again = co_await client.get(url("https://localhost", *port));
      CO_ASSERT_TRUE(again);
      EXPECT_EQ(again->body, first->body);  // the same client port: the same connection
    }
    Result<ClientResponse> cut = co_await client.get(url("https://localhost", *port, "/cut"));
    CO_ASSERT_FALSE(cut);
    EXPECT_EQ(cut.error(), net::TlsErrc::truncated) << cut.message();
    co_await client.shutdown_idle();
  }());
}

}  // namespace
}  // namespace coring::http
