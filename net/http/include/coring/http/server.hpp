// http::Server: HTTP/1.1 on the server frame (net::Server), the parser and the router.
//
//   http::Router router;
//   router.get("/", [](http::Request&) -> Task<http::Response> {
//     co_return http::Response::text(200, "Hello, World!");
//   });
//   http::Server server({.address = *net::Address::parse("127.0.0.1:8080")}, router);
//   return server.run();   // until SIGINT, SIGTERM or stop(): then drains
//
// Connections. Keep-alive as RFC 9112 says (HTTP/1.1 unless `Connection: close`;
// HTTP/1.0 with `Connection: keep-alive`). Pipelined requests are answered in order, one
// at a time; the answers to the requests that arrived together leave in one send. A
// request for HEAD gets the head of the GET's answer. `Expect: 100-continue` is answered
// when the handler first reads the body; a handler that answers without reading it gets
// the connection closed after its response (the client may never send the body), and an
// unread body that did come is read and dropped, up to max_drain_bytes, so that the
// connection can serve on.
//
// Limits and timeouts. Every refusal is answered and the connection closed:
//   - the request line and fields over ParserLimits::max_header_bytes, or more than
//     max_fields fields: 431; a body over max_body_bytes: 413 (a handler reading it sees
//     http::Errc::body_too_large); anything the parser refuses: its status (400, 501, 505);
//   - a request head not complete `header_timeout` after its first byte (or, for a new
//     connection, after the accept): 408 — a peer trickling one byte a second is cut;
//   - nothing for `idle_timeout` between requests: closed without an answer;
//   - a body that stops arriving, or a response the peer stops reading, for
//     `io_timeout`: closed.
//   These are the frame's deadlines: a store per request, checked by a sweeper, firing up
//   to a quarter of the shortest timeout late.
//
// Shutdown. stop(), SIGINT or SIGTERM: the listeners close, idle connections close, and
// requests in progress get their whole response (with `Connection: close`) for up to
// `drain_timeout`; then what is left is closed.
//
// Failures. A handler's exception is answered 500 (if no byte of the response has left)
// and the connection closed. A response whose stream or file fails midway ends the
// connection: the client sees a short body, never a wrong one.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>

#include "coring/http/message.hpp"
#include "coring/http/parser.hpp"
#include "coring/http/router.hpp"
#include "coring/net/address.hpp"
#include "coring/net/server.hpp"

namespace coring::net {
class TlsContext;  // coring/net/tls.hpp, coring::tls
}  // namespace coring::net

namespace coring::http {

struct ServerOptions {
  net::Address address = net::Address::ipv4_loopback(0);
  std::size_t threads = 1;
  ParserLimits limits{};
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds io_timeout{60'000};
  std::chrono::milliseconds drain_timeout{10'000};
  // Connections held at once (net::ServerOptions::max_connections); 0: as the
  // descriptors allow.
  std::size_t max_connections = 0;
  // An unread request body read and dropped after the response, at most (more: the
  // connection closes instead).
  std::uint64_t max_drain_bytes = 64 * 1024;
  // Whether SIGINT and SIGTERM stop the server (net::ServerOptions::handle_signals).
  bool handle_signals = true;
  // Receive with one multishot receive per connection into a pool per loop
  // (net::default_receive_pool()): an idle connection then holds no buffer. Off: a
  // buffer of 16 KiB per connection. HTTPS: with the pool, the TLS streams receive from
  // it (net::TlsStream::use_receive_pool) and an idle connection holds no buffer but
  // OpenSSL's session; without it, each keeps its TLS stream's own (about 33 KiB).
  bool receive_pool = true;
  bool direct_descriptors = true;
  // HTTPS: every connection a TLS server stream of this context (coring::tls; give the
  // context ALPN "http/1.1"). The server keeps a copy: the pointer need not outlive the
  // constructor. The handshake has header_timeout. Responses are encrypted in memory, so
  // files are read and sent rather than spliced. Null: plain HTTP.
  const net::TlsContext* tls = nullptr;
};
static_assert(std::is_trivially_destructible_v<ServerOptions>);

class Server {
 public:
  // Binds the listeners (throws std::system_error, e.g. EADDRINUSE). The handler serves
  // every request; it may run on several loops' threads at once (threads > 1).
  Server(const ServerOptions& options, Handler handler);
  Server(const ServerOptions& options, Router router);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return frame_->port(); }
  // Serves until stop() or a signal, and the drain after; 0 after a clean shutdown, 1
  // if a loop failed (printed to stderr). `ready` as net::Server::run's.
  int run(const std::function<void()>& ready = {}) { return frame_->run(ready); }
  // Starts the shutdown. Any thread, any time.
  void stop() noexcept { frame_->stop(); }
  [[nodiscard]] std::size_t connections() const noexcept { return frame_->connections(); }

  struct Settings;

 private:
  std::shared_ptr<const Settings> settings_;
  std::unique_ptr<net::Server> frame_;
};

}  // namespace coring::http
