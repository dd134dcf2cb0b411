// Client: an HTTP/1.1 client on net's TCP streams, over TLS for https://, with a pool of
// kept-alive connections.
//
//   http::Client client;                                    // one per loop
//   Result<http::ClientResponse> page = co_await client.get("http://127.0.0.1:8080/");
//   if (page && page->status == 200) use(page->body);
//   auto made = co_await client.post("http://127.0.0.1:8080/items", "{}", "application/json");
//   auto secure = co_await client.get("https://localhost:8443/");  // the system's CAs
//
//   http::ClientRequest put("PUT", "http://[::1]:8080/items/7", "{\"n\": 7}");
//   put.headers.add("Content-Type", "application/json");
//   Result<http::ClientResponse> done = co_await client.request(std::move(put));
//
// A URL is `http://host[:port]/path?query` or `https://...` (port 443 by default), the
// host an IPv4 literal, a bracketed IPv6 literal or `localhost` (127.0.0.1): no name is
// resolved; anything else is std::errc::invalid_argument, returned as a value. The client
// writes the request line, Host (unless the request has one), and the body's framing:
// Content-Length (also 0 for a POST, PUT or PATCH without a body), or chunked when the
// request asks for it. Framing fields the caller set are refused (invalid_argument): the
// framing is the client's. Responses are read whole, framed by Content-Length, chunked,
// or by the connection's end; a HEAD's has no body; 1xx interim responses (100 Continue)
// are skipped.
//
// HTTPS. An https:// URL is TLS (coring::tls) with ClientOptions::tls's context, or a
// default one (the system's trust store, the server's certificate checked), made at the
// first https request. The URL's host is the name sent as SNI and the one the
// certificate must name (an address literal: the certificate must list the address).
// The handshake is part of connecting, within connect_timeout. Where coring::http was
// built without coring::tls, an https:// URL is std::errc::protocol_not_supported.
//
// Errors are values: the connection's errno (ECONNREFUSED, ECONNRESET, ECANCELED when
// `stop` fires), std::errc::timed_out when ClientOptions::connect_timeout or
// request_timeout (the whole exchange, connecting included) passes, http::Errc::
// malformed_message for a response the parser refuses, body_too_large for a body over
// ClientOptions::limits, incomplete_message when the server closes before the response
// is complete. Over TLS: a failed handshake's error (x509_category(): "hostname
// mismatch", "certificate has expired"; openssl_category(): "tlsv1 alert unknown ca"),
// and net::TlsErrc::truncated for a connection that ends without close_notify before the
// response is complete — or at all, for a body that runs to the connection's end, which
// could otherwise be passed off cut short as whole.
//
// Keep-alive. A connection whose response allowed it (HTTP/1.1 without `Connection:
// close`, read to its end with nothing after it) goes back to a pool per origin (scheme,
// address, and for https the host name), used last in first out, at most
// max_idle_per_host per origin and max_idle in all (the oldest goes first), each kept
// idle_timeout; an expired one is closed by the next request or close_idle(). A pooled connection
// the server has closed meanwhile shows when the request's send fails (EPIPE, ECONNRESET) or the
// response ends before its first byte: an idempotent request (GET, HEAD, PUT, DELETE, OPTIONS,
// TRACE) is then sent again, once, on a new connection; any other (a POST) is not, since the server
// may have acted on it, and returns the error. An https connection the client ends while it runs a
// request (the response closed it, or the pool had no room or it expired) says close_notify first;
// shutdown_idle() does the same for the pool.
//
// One Client per loop, used from that loop's thread only; it must outlive the requests
// it runs. Destroying it closes the pooled connections with close(2), which does not
// block (docs/net.md, "Closing"); a destructor cannot wait for a send, so https ones go
// without close_notify (co_await shutdown_idle() first to send it).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "coring/http/headers.hpp"
#include "coring/http/parser.hpp"
#include "coring/net/address.hpp"
#include "coring/net/stream.hpp"
#include "coring/ring/result.hpp"
#include "coring/runtime/task.hpp"

namespace coring::net {
class TlsContext;  // coring/net/tls.hpp, coring::tls
}  // namespace coring::net

namespace coring::http {

namespace detail {
// client.cpp's: where a connection leads, a connection (plain or TLS), one in the pool.
struct ClientOrigin;
struct ClientConnection;
struct ClientIdle;
}  // namespace detail

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds request_timeout{30'000};        // the whole exchange: send + response
  std::chrono::milliseconds idle_timeout{60'000};           // a pooled connection is kept this long
  std::size_t max_idle_per_host = 8;                        // pooled connections per origin
  std::size_t max_idle = 100;                               // pooled connections in all
  ParserLimits limits{8192, 100, std::uint64_t{64} << 20};  // of a response (body 64 MiB)
  // The client context (coring::tls) of https:// requests: trust anchors, ALPN, session
  // resumption (a context that offers ALPN must agree on "http/1.1": another protocol
  // is std::errc::protocol_not_supported). The client keeps a copy, so the pointer need not outlive
  // the constructor; a server context throws std::system_error (EINVAL) there. Null: a context of
  // TlsClientConfig's defaults (the system's trust store, verification on, sessions resumed), made
  // at the first https request. Given to a coring::http built without coring::tls:
  // std::system_error (EPROTONOSUPPORT).
  const net::TlsContext* tls = nullptr;
};
// Trivially destructible, so that a braced temporary inside co_await is safe with g++ 12
// (see MultishotOptions).
static_assert(std::is_trivially_destructible_v<ClientOptions>);

// A request to send. Not an aggregate, on purpose: g++ 12 destroys a braced aggregate
// temporary twice inside co_await, and this one owns strings. Build it with a
// constructor (`client.request({"DELETE", url})` is safe) or as a variable.
class ClientRequest {
 public:
  ClientRequest() = default;
  ClientRequest(std::string method_name, std::string target_url, std::string content = {})
      : method(std::move(method_name)), url(std::move(target_url)), body(std::move(content)) {}

  std::string method = "GET";  // a token: GET, POST, PROPFIND, ...
  std::string url;             // http://host[:port]/path?query (see the header comment)
  Headers headers;             // sent as they are, after Host
  std::string body;            // sent with Content-Length, or chunked if `chunked`
  bool chunked = false;
};

// A response read whole. Only ever a result, never built by a caller.
struct ClientResponse {
  int status = 0;
  std::string reason;
  Headers headers;
  std::string body;
  int version_minor = 1;  // HTTP/1.0 or HTTP/1.1
};

class Client {
 public:
  // Throws std::system_error (EINVAL) for a server context in options.tls.
  explicit Client(ClientOptions options = {});
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  // Closes the pooled connections (close(2), without close_notify).
  ~Client();

  // Sends `request` and reads its response; see the header comment for what fails how.
  // `stop` cancels it (ECANCELED); the connection it used is then closed.
  Task<Result<ClientResponse>> request(ClientRequest request, std::stop_token stop = {});
  Task<Result<ClientResponse>> get(std::string url, std::stop_token stop = {}) {
    return request(ClientRequest("GET", std::move(url)), std::move(stop));
  }
  // A POST of `body`, with `content_type` as its Content-Type unless empty.
  Task<Result<ClientResponse>> post(std::string url, std::string body, std::string content_type,
                                    std::stop_token stop = {});

  // Connections in the pool now (expired ones included until the next request drops them).
  [[nodiscard]] std::size_t idle_connections() const noexcept;
  // Closes every pooled connection (close(2): an https one without close_notify).
  void close_idle() noexcept;
  // Closes every pooled connection, an https one after sending close_notify (each send
  // bounded by connect_timeout; `stop` ends the wait).
  Task<void> shutdown_idle(std::stop_token stop = {});
  // options.tls is the client's copy of the context it was given, or null.
  [[nodiscard]] const ClientOptions& options() const noexcept { return options_; }

 private:
  using Clock = std::chrono::steady_clock;
  using Origin = detail::ClientOrigin;
  using Connection = detail::ClientConnection;
  using Idle = detail::ClientIdle;

  // The context of https requests: options_.tls's copy, else the default, made now.
  Result<const net::TlsContext*> tls_context();
  // The newest pooled connection to `origin`, or a closed one; drops expired ones.
  Connection take_idle(const Origin& origin);
  void put_idle(const Origin& origin, Connection connection);
  void drop_expired(Clock::time_point now);
  // Closes what retiring_ holds, the https connections with close_notify.
  Task<void> retire(std::stop_token stop);

  ClientOptions options_;
  // The context of https requests, once known. A shared_ptr, which needs no complete
  // type to be destroyed, for builds without coring::tls.
  std::shared_ptr<const net::TlsContext> tls_;
  std::vector<Idle> idle_;            // oldest first
  std::vector<Connection> retiring_;  // https connections to close with close_notify
};

}  // namespace coring::http
