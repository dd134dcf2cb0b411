// Client: an HTTP/1.1 client on net's TCP streams, with a pool of kept-alive connections.
//
//   http::Client client;                                    // one per loop
//   Result<http::ClientResponse> page = co_await client.get("http://127.0.0.1:8080/");
//   if (page && page->status == 200) use(page->body);
//   auto made = co_await client.post("http://127.0.0.1:8080/items", "{}", "application/json");
//
//   http::ClientRequest put("PUT", "http://[::1]:8080/items/7", "{\"n\": 7}");
//   put.headers.add("Content-Type", "application/json");
//   Result<http::ClientResponse> done = co_await client.request(std::move(put));
//
// A URL is `http://host[:port]/path?query`, the host an IPv4 literal, a bracketed IPv6
// literal or `localhost` (127.0.0.1): no name is resolved and no TLS is spoken; anything
// else is std::errc::invalid_argument, returned as a value. The client writes the request
// line, Host (unless the request has one), and the body's framing: Content-Length (also
// 0 for a POST, PUT or PATCH without a body), or chunked when the request asks for it.
// Framing fields the caller set are refused (invalid_argument): the framing is the
// client's. Responses are read whole, framed by Content-Length, chunked, or by the
// connection's end; a HEAD's has no body; 1xx interim responses (100 Continue) are skipped.
//
// Errors are values: the connection's errno (ECONNREFUSED, ECONNRESET, ECANCELED when
// `stop` fires), std::errc::timed_out when ClientOptions::connect_timeout or
// request_timeout (the whole exchange, connecting included) passes, http::Errc::
// malformed_message for a response the parser refuses, body_too_large for a body over
// ClientOptions::limits, incomplete_message when the server closes before the response
// is complete.
//
// Keep-alive. A connection whose response allowed it (HTTP/1.1 without `Connection:
// close`, read to its end with nothing after it) goes back to a pool per address, used
// last in first out, at most max_idle_per_host per address, each kept idle_timeout; an
// expired one is closed by the next request or close_idle(). A pooled connection the
// server has closed meanwhile shows when the request's send fails (EPIPE, ECONNRESET) or
// the response ends before its first byte: an idempotent request (GET, HEAD, PUT, DELETE,
// OPTIONS, TRACE) is then sent again, once, on a new connection; any other (a POST) is
// not, since the server may have acted on it, and returns the error.
//
// One Client per loop, used from that loop's thread only; it must outlive the requests
// it runs. Destroying it closes the pooled connections with close(2), which does not
// block (docs/net.md, "Closing").
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
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

namespace coring::http {

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds request_timeout{30'000};        // the whole exchange: send + response
  std::chrono::milliseconds idle_timeout{60'000};           // a pooled connection is kept this long
  std::size_t max_idle_per_host = 8;                        // pooled connections per address
  ParserLimits limits{8192, 100, std::uint64_t{64} << 20};  // of a response (body 64 MiB)
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
  explicit Client(ClientOptions options = {}) noexcept : options_(options) {}
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  // Closes the pooled connections (close(2)).
  ~Client() = default;

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
  [[nodiscard]] std::size_t idle_connections() const noexcept { return idle_.size(); }
  // Closes every pooled connection.
  void close_idle() noexcept { idle_.clear(); }
  [[nodiscard]] const ClientOptions& options() const noexcept { return options_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Idle {
    net::Address peer;
    net::StreamSocket socket;
    Clock::time_point since;
  };

  // The newest pooled connection to `peer`, or a closed socket; drops expired ones.
  net::StreamSocket take_idle(const net::Address& peer) noexcept;
  void put_idle(const net::Address& peer, net::StreamSocket socket);
  void drop_expired(Clock::time_point now) noexcept;

  ClientOptions options_;
  std::vector<Idle> idle_;  // oldest first
};

}  // namespace coring::http
