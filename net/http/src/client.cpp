// Client: a request is parsed from its URL and serialized whole before any I/O, so that
// a bad request fails without touching the network. Then an attempt: a connection from
// the pool (or a new one), the request sent, the response read through a MessageParser of
// Type::response until its end. Every wait of the attempt is bounded by the one deadline
// of request_timeout: the connect by the nearer of it and connect_timeout, each receive
// by what is left of it.
//
// A pooled connection may have been closed by the server while it sat in the pool (its
// idle timeout is unknown to us). That shows as a send that fails with EPIPE or
// ECONNRESET, or a response that ends (or is reset) before its first byte; the attempt
// then reports itself stale, and request() sends an idempotent request once more on a
// new connection. A stale new connection is an error like any other: only a connection
// that served an earlier request can have gone stale unseen.
//
// HTTPS. The exchange is one template over a transport. The plain one is the socket's
// own operations, each bounded by the request's deadline through a linked timeout, with
// nothing allocated; the TLS one is the TlsStream's operations under one Deadline, a
// timer whose token fires when the request's time is up or its stop does. An https
// connection lives on the heap, its socket next to its TLS stream, because the stream
// keeps the socket's address while the pool moves connections around. A TLS stream
// reports a connection that ends without close_notify as truncated; the exchange takes
// that for an error, so a close-delimited body cut short never passes for a whole one.
#include "coring/http/client.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>

#include "coring/http/error.hpp"
#include "coring/net/stream.hpp"

#ifdef CORING_HTTP_TLS
#include "coring/net/tls.hpp"
#include "coring/runtime/deadline.hpp"
#endif

namespace coring::http {

namespace detail {

// Where a connection leads: the peer's address and, for https, the name its certificate
// was checked for. A connection serves only requests of its own origin: http and https
// never share one, nor https requests that name the same address differently.
struct ClientOrigin {
  net::Address address;
  bool tls = false;
  std::string server_name;  // https: the URL's host, without an IPv6 literal's brackets

  bool operator==(const ClientOrigin&) const = default;
};

#ifdef CORING_HTTP_TLS
// An https connection: the socket and the TLS stream over it, kept together where the
// socket stays put (the stream holds its address).
struct SecureConnection {
  net::StreamSocket socket;
  std::optional<net::TlsStream> stream;  // declared after the socket: destroyed before it
};
#else
struct SecureConnection {};  // never made: https:// is refused before connecting
#endif

// A connection of the client: the socket itself for http, so that plain connections go
// in and out of the pool without an allocation; the heap's SecureConnection for https.
struct ClientConnection {
  net::StreamSocket plain;
  std::unique_ptr<SecureConnection> secure;

  [[nodiscard]] bool is_open() const noexcept { return plain.is_open() || secure != nullptr; }
};

struct ClientIdle {
  ClientOrigin origin;
  ClientConnection connection;
  std::chrono::steady_clock::time_point since;
};

}  // namespace detail

namespace {

using detail::ClientConnection;
using detail::ClientOrigin;
using detail::SecureConnection;

using Clock = std::chrono::steady_clock;

// Bodies up to this size are copied behind the head and sent with it in one send; a
// larger one is sent from the request itself, after the head.
constexpr std::size_t inline_body_bytes = 16 * 1024;
// The receive buffer's first size; it grows only for a piece the parser cannot use yet.
constexpr std::size_t receive_bytes = 16 * 1024;

std::error_code invalid() noexcept { return std::make_error_code(std::errc::invalid_argument); }

// Where a URL leads: the origin, the Host field's value, and the request target.
struct Target {
  ClientOrigin origin;
  std::string host;
  std::string path;
};

constexpr bool is_token_char(unsigned char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != '\0' &&
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// A request target may hold visible ASCII only: a space or a control byte would end the
// request line early or split it.
bool is_sendable_target(std::string_view path) noexcept {
  return std::all_of(path.begin(), path.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

std::optional<std::uint16_t> parse_port(std::string_view digits,
                                        std::uint16_t default_port) noexcept {
  if (digits.empty()) return default_port;  // RFC 3986: an empty port is the default
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

// The address of a host as a URL writes it: `[v6]`, dotted IPv4, or localhost. No name is
// resolved (and no text reaches Address::parse that it would read as a Unix path).
std::optional<net::Address> host_address(std::string_view host, std::uint16_t port) {
  if (equal_ignoring_case(host, "localhost")) return net::Address::ipv4_loopback(port);
  const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
  const bool dotted =
      !host.empty() && host.find_first_not_of("0123456789.") == std::string_view::npos;
  if (!bracketed && !dotted) return std::nullopt;
  net::ParsedAddress parsed = net::Address::parse(std::string(host) + ":" + std::to_string(port));
  if (!parsed) return std::nullopt;
  return *parsed;
}

bool has_scheme(std::string_view url, std::string_view scheme) noexcept {
  return url.size() >= scheme.size() && equal_ignoring_case(url.substr(0, scheme.size()), scheme);
}

// http[s]://host[:port][/path][?query][#fragment]; the fragment is not sent.
Result<Target> parse_url(std::string_view url) {
  const bool tls = has_scheme(url, "https://");
  if (!tls && !has_scheme(url, "http://")) return fail(invalid());
#ifndef CORING_HTTP_TLS
  if (tls) return fail(std::make_error_code(std::errc::protocol_not_supported));
#endif
  url.remove_prefix(tls ? 8 : 7);
  const std::uint16_t default_port = tls ? 443 : 80;
  url = url.substr(0, url.find('#'));
  const std::size_t authority_end = std::min(url.find_first_of("/?"), url.size());
  const std::string_view authority = url.substr(0, authority_end);
  // Built whole rather than by inserting the '/': g++ 12 at -O3 warns (-Werror) of an
  // overlapping copy in string::insert that cannot happen.
  const std::string_view rest = url.substr(authority_end);
  const bool needs_slash = rest.empty() || rest.front() == '?';
  std::string path;
  path.reserve(rest.size() + 1);
  if (needs_slash) path.push_back('/');
  path.append(rest);
  if (!is_sendable_target(path)) return fail(invalid());

  // The port's colon is the last one after any IPv6 literal's closing bracket.
  const std::size_t bracket = authority.rfind(']');
  const std::size_t colon =
      authority.find(':', bracket == std::string_view::npos ? 0 : bracket + 1);
  const std::string_view host = authority.substr(0, colon);
  const std::optional<std::uint16_t> port =
      parse_port(colon == std::string_view::npos ? std::string_view() : authority.substr(colon + 1),
                 default_port);
  if (!port) return fail(invalid());
  const std::optional<net::Address> address = host_address(host, *port);
  if (!address) return fail(invalid());
  Target target{{*address, tls, {}}, std::string(host), std::move(path)};
  if (colon != std::string_view::npos && *port != default_port) {
    target.host.push_back(':');
    target.host.append(std::to_string(*port));
  }
  // The name TLS sends and checks: an IPv6 literal without its brackets.
  if (tls) target.origin.server_name = host.front() == '[' ? host.substr(1, host.size() - 2) : host;
  return target;
}

bool is_idempotent(std::string_view method) noexcept {
  for (const std::string_view m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"}) {
    if (method == m) return true;
  }
  return false;
}

// What an attempt sends: the head (with the body and its framing when small) and, for a
// larger body, the body from the request and the chunked framing's end.
struct Outgoing {
  std::string head;
  std::string_view body;
  std::string_view tail;
};

Result<Outgoing> serialize(const ClientRequest& request, const Target& target) {
  const std::string& method = request.method;
  if (method.empty() || !std::all_of(method.begin(), method.end(), [](char c) {
        return is_token_char(static_cast<unsigned char>(c));
      })) {
    return fail(invalid());
  }
  const Headers& fields = request.headers;
  if (fields.contains("content-length") || fields.contains("transfer-encoding")) {
    return fail(invalid());
  }
  Outgoing out;
  out.head.reserve(256 + target.path.size() +
                   (request.body.size() <= inline_body_bytes ? request.body.size() + 16 : 0));
  out.head.append(method).append(" ").append(target.path).append(" HTTP/1.1\r\n");
  if (!fields.contains("host")) out.head.append("Host: ").append(target.host).append("\r\n");
  fields.serialize(out.head);
  const bool anticipates_body = method == "POST" || method == "PUT" || method == "PATCH";
  if (request.chunked) {
    out.head.append("Transfer-Encoding: chunked\r\n\r\n");
  } else if (!request.body.empty() || anticipates_body) {
    out.head.append("Content-Length: ").append(std::to_string(request.body.size()));
    out.head.append("\r\n\r\n");
  } else {
    out.head.append("\r\n");
  }
  if (request.body.empty()) {
    if (request.chunked) out.head.append("0\r\n\r\n");
    return out;
  }
  if (request.chunked) {
    // One chunk holds the whole body; then the last chunk, without trailers.
    char size[20];
    const auto [end, ec] = std::to_chars(size, size + sizeof size, request.body.size(), 16);
    out.head.append(size, end).append("\r\n");
    out.tail = "\r\n0\r\n\r\n";
  }
  out.body = request.body;
  if (out.body.size() <= inline_body_bytes) {
    out.head.append(out.body).append(out.tail);
    out.body = out.tail = {};
  }
  return out;
}

// The reading side of an attempt: the parser, the bytes received and not yet parsed, and
// the response their events have built.
class ResponseReader {
 public:
  enum class Step { need_more, done, failed };

  ResponseReader(const ParserLimits& limits, bool head_request)
      : parser_(MessageParser::Type::response, limits), head_request_(head_request) {
    if (head_request_) parser_.expect_no_body();
    buffer_.resize(receive_bytes);
  }

  // Parses what is buffered, event by event, until the parser needs more bytes, the final
  // response has ended, or the parser refuses the bytes.
  Step advance() {
    for (;;) {
      const ParseEvent event = parser_.parse({buffer_.data() + begin_, end_ - begin_});
      begin_ += event.consumed;
      switch (event.kind) {
        case ParseEvent::Kind::need_more:
          return Step::need_more;
        case ParseEvent::Kind::head:
          on_head();
          break;
        case ParseEvent::Kind::body:
          response_.body.append(event.body);
          break;
        case ParseEvent::Kind::end:
          if (!interim_) return Step::done;
          // The final response follows the interim one on the same connection.
          interim_ = false;
          if (head_request_) parser_.expect_no_body();
          break;
        case ParseEvent::Kind::error:
          error_ = parser_.error().status == 413 ? Errc::body_too_large : Errc::malformed_message;
          return Step::failed;
      }
    }
  }

  // Room to receive into, after the bytes not parsed yet.
  std::span<std::byte> space() {
    if (begin_ == end_) begin_ = end_ = 0;
    if (end_ == buffer_.size()) {
      // The parser waits on bytes it has not used (a chunk's CRLF cut in two): make room.
      buffer_.erase(0, begin_);
      end_ -= begin_;
      begin_ = 0;
      if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);
    }
    return std::as_writable_bytes(std::span(buffer_.data() + end_, buffer_.size() - end_));
  }
  void received(std::size_t n) noexcept {
    end_ += n;
    received_any_ = true;
  }
  // The server closed the connection: a response that runs to the close ends here.
  Step end_of_stream() noexcept {
    if (parser_.finish().kind == ParseEvent::Kind::end && !interim_) return Step::done;
    error_ = Errc::incomplete_message;
    return Step::failed;
  }

  [[nodiscard]] std::error_code error() const noexcept { return error_; }
  [[nodiscard]] bool received_any() const noexcept { return received_any_; }
  // Whether the connection may carry another request: the server keeps it open and sent
  // nothing after the response (bytes after it would be taken for the next response).
  [[nodiscard]] bool reusable() const noexcept {
    return parser_.keep_alive() && begin_ == end_ && response_.status != 101;
  }
  ClientResponse take() noexcept { return std::move(response_); }

 private:
  void on_head() {
    const int status = parser_.status();
    // 1xx but 101 are interim (RFC 9110, section 15.2); a 101 is final, and since no
    // request asks for an upgrade the connection is not reused after it.
    interim_ = status >= 100 && status < 200 && status != 101;
    if (interim_) return;
    response_.status = status;
    response_.reason = parser_.reason();
    response_.headers = parser_.headers();
    response_.version_minor = parser_.version_minor();
    // A Content-Length within the limit (the parser refused a larger one) is the body's
    // size: one allocation for it.
    if (const auto length = parser_.content_length(); length && parser_.has_body()) {
      response_.body.reserve(static_cast<std::size_t>(*length));
    }
  }

  MessageParser parser_;
  bool head_request_;
  bool interim_ = false;
  bool received_any_ = false;
  std::string buffer_;
  std::size_t begin_ = 0;  // buffer_[begin_, end_) is received and not parsed
  std::size_t end_ = 0;
  ClientResponse response_;
  std::error_code error_;
};

bool is_reset(std::error_code error) noexcept {
  return error == std::errc::broken_pipe || error == std::errc::connection_reset;
}

std::error_code timed_out() noexcept { return std::make_error_code(std::errc::timed_out); }

// What is left until `deadline`; zero or less once it has passed.
std::chrono::nanoseconds left(Clock::time_point deadline) noexcept {
  return deadline - Clock::now();
}

// A receive's result, either transport's: the bytes (0: the stream's clean end) or the
// error.
struct Received {
  std::size_t bytes = 0;
  std::error_code error;
};

// http: the socket's own operations, each bounded by the request's deadline with a
// linked timeout, so that nothing is allocated.
class PlainTransport {
 public:
  PlainTransport(const net::StreamSocket& socket, Clock::time_point deadline,
                 std::stop_token stop) noexcept
      : socket_(&socket), deadline_(deadline), stop_(std::move(stop)) {}

  auto send_all(std::span<const std::byte> data) const noexcept {
    return socket_->send_all(data).with_deadline(deadline_).with_stop(stop_);
  }
  auto recv(std::span<std::byte> buffer, std::chrono::nanoseconds remaining) const noexcept {
    return socket_->recv(buffer).with_timeout(remaining).with_stop(stop_);
  }
  static Received received(const IoResult& got) noexcept {
    if (got.res < 0) return {0, got.error()};
    return {static_cast<std::size_t>(got.res), {}};
  }
  // The error the request returns for one of an operation.
  static std::error_code reported(std::error_code error) noexcept { return error; }
  // Whether `error`, before any byte of the response, says the server closed the
  // connection.
  static bool is_closed(std::error_code error) noexcept { return is_reset(error); }
  // Whether the transport holds bytes after the response (the reader sees all of http's).
  static bool holds_more() noexcept { return false; }

 private:
  const net::StreamSocket* socket_;
  Clock::time_point deadline_;
  std::stop_token stop_;
};

// How an attempt ended: the response or the error; whether the error is that of a
// connection the server had closed (nothing of the response came), and whether the
// connection may be pooled.
struct Attempt {
  Result<ClientResponse> response;
  bool stale = false;
  bool reusable = false;
};

// Reads the response over `io`, until `deadline`.
template <typename Transport>
Task<Attempt> read_response(Transport& io, const ParserLimits& limits, bool head_request,
                            Clock::time_point deadline) {
  ResponseReader reader(limits, head_request);
  for (;;) {
    const ResponseReader::Step step = reader.advance();
    if (step == ResponseReader::Step::done) break;
    if (step == ResponseReader::Step::failed) co_return Attempt{fail(reader.error())};
    const std::chrono::nanoseconds remaining = left(deadline);
    if (remaining.count() <= 0) co_return Attempt{fail(timed_out())};
    const Received got = io.received(co_await io.recv(reader.space(), remaining));
    if (got.error) {
      co_return Attempt{fail(io.reported(got.error)),
                        !reader.received_any() && io.is_closed(got.error)};
    }
    if (got.bytes == 0) {
      if (reader.end_of_stream() == ResponseReader::Step::done) break;
      co_return Attempt{fail(reader.error()), !reader.received_any()};
    }
    reader.received(got.bytes);
  }
  const bool reusable = reader.reusable() && !io.holds_more();
  co_return Attempt{reader.take(), false, reusable};
}

// Sends `out` and reads the response over `io`, until `deadline`.
template <typename Transport>
Task<Attempt> exchange(Transport io, const Outgoing& out, const ParserLimits& limits,
                       bool head_request, Clock::time_point deadline) {
  for (const std::string_view piece : {std::string_view(out.head), out.body, out.tail}) {
    if (piece.empty()) continue;
    const net::TransferResult sent = co_await io.send_all(std::as_bytes(std::span(piece)));
    if (sent) continue;
    Attempt failed{fail(io.reported(sent.error())), io.is_closed(sent.error())};
    if (!failed.stale) co_return failed;
    // The server closed while the request was on its way. It may have answered first:
    // a 413 for a body over its limit, sent before the body's end and before its close.
    // That answer waits in the receive buffer, ahead of the reset, and is the result.
    Attempt early = co_await read_response(io, limits, head_request, deadline);
    if (!early.response) co_return failed;
    early.reusable = false;
    co_return early;
  }
  co_return co_await read_response(io, limits, head_request, deadline);
}

// A new TCP connection to `peer`, by `connect_deadline`.
Task<Result<net::StreamSocket>> open_connection(const net::Address& peer,
                                                Clock::time_point connect_deadline,
                                                std::stop_token stop) {
  const std::chrono::nanoseconds timeout = left(connect_deadline);
  if (timeout.count() <= 0) co_return fail(timed_out());
  Result<net::StreamSocket> conn =
      co_await net::StreamSocket::connect(peer, {.timeout = timeout}, std::move(stop));
  // A request goes out whole, in one send or a few: Nagle's wait would only delay the
  // last segment of a request behind the server's delayed ACK.
  if (conn) (void)conn->set_nodelay(true);
  co_return conn;
}

#ifdef CORING_HTTP_TLS

// https: the TLS stream's operations, under one Deadline for the whole exchange (its
// token also follows the request's stop).
class TlsTransport {
 public:
  TlsTransport(net::TlsStream& stream, const Deadline& deadline) noexcept
      : stream_(&stream), deadline_(&deadline) {}

  Task<net::TransferResult> send_all(std::span<const std::byte> data) const {
    return stream_->send_all(data, deadline_->token());
  }
  Task<Result<std::size_t>> recv(std::span<std::byte> buffer, std::chrono::nanoseconds) const {
    return stream_->recv(buffer, deadline_->token());
  }
  static Received received(const Result<std::size_t>& got) noexcept {
    if (!got) return {0, got.error()};
    return {*got, {}};
  }
  // The Deadline's expiry cancels the operation: that is the request's timeout.
  [[nodiscard]] std::error_code reported(std::error_code error) const noexcept {
    if (error == std::errc::operation_canceled && deadline_->expired()) return timed_out();
    return error;
  }
  // A pooled connection's server may also have closed it without close_notify.
  static bool is_closed(std::error_code error) noexcept {
    return is_reset(error) || error == net::TlsErrc::truncated;
  }
  // Records received with the response and not read: its close_notify, say. Such a
  // connection is not pooled (its next request would meet the close).
  [[nodiscard]] bool holds_more() const noexcept { return stream_->buffered(); }

 private:
  net::TlsStream* stream_;
  const Deadline* deadline_;
};

Task<Attempt> exchange_tls(SecureConnection& conn, const Outgoing& out, const ParserLimits& limits,
                           bool head_request, Clock::time_point deadline, std::stop_token stop) {
  const Deadline bound(left(deadline), std::move(stop));
  co_return co_await exchange(TlsTransport(*conn.stream, bound), out, limits, head_request,
                              deadline);
}

// Connects to `origin` and runs the handshake, both by `connect_deadline`.
Task<Result<std::unique_ptr<SecureConnection>>> open_tls(const ClientOrigin& origin,
                                                         const net::TlsContext& context,
                                                         Clock::time_point connect_deadline,
                                                         std::stop_token stop) {
  Result<net::StreamSocket> socket =
      co_await open_connection(origin.address, connect_deadline, stop);
  if (!socket) co_return fail(socket.error());
  auto conn = std::make_unique<SecureConnection>();
  conn->socket = std::move(*socket);
  Result<net::TlsStream> stream = net::TlsStream::client(conn->socket, context, origin.server_name);
  if (!stream) co_return fail(stream.error());
  conn->stream.emplace(std::move(*stream));
  const std::chrono::nanoseconds timeout = left(connect_deadline);
  if (timeout.count() <= 0) co_return fail(timed_out());
  const Result<void> shaken =
      co_await conn->stream->handshake({.timeout = timeout}, std::move(stop));
  if (!shaken) co_return fail(shaken.error());
  // A context that offers more protocols than HTTP/1.1 (h2) may agree on one we do not
  // speak.
  if (const std::string_view protocol = conn->stream->alpn();
      !protocol.empty() && protocol != "http/1.1") {
    co_return fail(std::make_error_code(std::errc::protocol_not_supported));
  }
  co_return conn;
}

// Sends close_notify on each connection, all within `bound`, and closes them.
Task<void> say_close_notify(std::vector<ClientConnection> connections,
                            std::chrono::nanoseconds bound, std::stop_token stop) {
  const Deadline deadline(bound, std::move(stop));
  for (ClientConnection& conn : connections) {
    (void)co_await conn.secure->stream->shutdown(deadline.token());
  }
}

#else

Task<Attempt> exchange_tls(SecureConnection&, const Outgoing&, const ParserLimits&, bool,
                           Clock::time_point, std::stop_token) {
  co_return Attempt{fail(std::make_error_code(std::errc::protocol_not_supported))};
}

Task<Result<std::unique_ptr<SecureConnection>>> open_tls(const ClientOrigin&,
                                                         const net::TlsContext&, Clock::time_point,
                                                         std::stop_token) {
  co_return fail(std::make_error_code(std::errc::protocol_not_supported));
}

Task<void> say_close_notify(std::vector<ClientConnection>, std::chrono::nanoseconds,
                            std::stop_token) {
  co_return;
}

#endif

}  // namespace

Client::Client(ClientOptions options) : options_(options) {
  if (options_.tls == nullptr) return;
#ifdef CORING_HTTP_TLS
  if (options_.tls->is_server()) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "http::ClientOptions::tls is a server context");
  }
  tls_ = std::make_shared<const net::TlsContext>(*options_.tls);
  options_.tls = tls_.get();
#else
  throw std::system_error(std::make_error_code(std::errc::protocol_not_supported),
                          "http::ClientOptions::tls: coring::http was built without coring::tls "
                          "(CORING_BUILD_TLS=OFF)");
#endif
}

Client::~Client() = default;

Result<const net::TlsContext*> Client::tls_context() {
#ifdef CORING_HTTP_TLS
  if (!tls_) {
    Result<net::TlsContext, net::TlsError> made = net::TlsContext::client(net::TlsClientConfig());
    if (!made) return fail(made.error());
    tls_ = std::make_shared<const net::TlsContext>(std::move(*made));
  }
  return tls_.get();
#else
  return fail(std::make_error_code(std::errc::protocol_not_supported));
#endif
}

Task<Result<ClientResponse>> Client::request(ClientRequest request, std::stop_token stop) {
  Result<Target> target = parse_url(request.url);
  if (!target) co_return fail(target.error());
  Result<Outgoing> out = serialize(request, *target);
  if (!out) co_return fail(out.error());
  const ClientOrigin& origin = target->origin;
  const net::TlsContext* context = nullptr;
  if (origin.tls) {
    Result<const net::TlsContext*> made = tls_context();
    if (!made) co_return fail(made.error());
    context = *made;
  }
  const Clock::time_point deadline = Clock::now() + options_.request_timeout;
  const bool head_request = request.method == "HEAD";
  // A request that closes the connection itself leaves nothing to pool.
  const bool closing = request.headers.has_token("connection", "close");
  Connection conn = take_idle(origin);
  std::optional<Result<ClientResponse>> response;
  while (!response) {
    const bool reused = conn.is_open();
    if (!reused) {
      // Connecting, and the handshake for https, within connect_timeout.
      const Clock::time_point connect_deadline =
          std::min(Clock::now() + options_.connect_timeout, deadline);
      if (origin.tls) {
        Result<std::unique_ptr<SecureConnection>> opened =
            co_await open_tls(origin, *context, connect_deadline, stop);
        if (!opened) {
          response.emplace(fail(opened.error()));
          break;
        }
        conn.secure = std::move(*opened);
      } else {
        Result<net::StreamSocket> opened =
            co_await open_connection(origin.address, connect_deadline, stop);
        if (!opened) {
          response.emplace(fail(opened.error()));
          break;
        }
        conn.plain = std::move(*opened);
      }
    }
    Task<Attempt> exchanging =
        conn.secure
            ? exchange_tls(*conn.secure, *out, options_.limits, head_request, deadline, stop)
            : exchange(PlainTransport(conn.plain, deadline, stop), *out, options_.limits,
                       head_request, deadline);
    Attempt attempt = co_await std::move(exchanging);
    if (attempt.stale && reused && is_idempotent(request.method)) {
      conn = Connection();  // the next turn connects anew, and does not come back here
      continue;
    }
    if (attempt.response && attempt.reusable && !closing) {
      put_idle(origin, std::move(conn));
    } else if (attempt.response && conn.secure) {
      // The session is whole: it ends with close_notify.
      retiring_.push_back(std::move(conn));
    }
    response.emplace(std::move(attempt.response));
  }
  if (!retiring_.empty()) co_await retire(std::move(stop));
  co_return std::move(*response);
}

Task<Result<ClientResponse>> Client::post(std::string url, std::string body,
                                          std::string content_type, std::stop_token stop) {
  ClientRequest request("POST", std::move(url), std::move(body));
  if (!content_type.empty()) request.headers.add("Content-Type", content_type);
  return this->request(std::move(request), std::move(stop));
}

std::size_t Client::idle_connections() const noexcept { return idle_.size(); }

void Client::close_idle() noexcept {
  idle_.clear();
  retiring_.clear();
}

Task<void> Client::shutdown_idle(std::stop_token stop) {
  for (Idle& idle : idle_) {
    if (idle.connection.secure) retiring_.push_back(std::move(idle.connection));
  }
  idle_.clear();  // the plain ones close here
  co_await retire(std::move(stop));
}

Task<void> Client::retire(std::stop_token stop) {
  // Taken now: other requests may add to retiring_ while these close.
  std::vector<Connection> connections;
  connections.swap(retiring_);
  return say_close_notify(std::move(connections), options_.connect_timeout, std::move(stop));
}

Client::Connection Client::take_idle(const Origin& origin) {
  drop_expired(Clock::now());
  for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
    if (it->origin == origin) {
      Connection conn = std::move(it->connection);
      idle_.erase(std::next(it).base());
      return conn;
    }
  }
  return {};
}

void Client::put_idle(const Origin& origin, Connection connection) {
  const Clock::time_point now = Clock::now();
  drop_expired(now);
  if (options_.max_idle_per_host == 0 || options_.max_idle == 0) {
    // Never pooled: a secure one says close_notify first, a plain one closes here.
    if (connection.secure) retiring_.push_back(std::move(connection));
    return;
  }
  // idle_ is in the order connections came back: the first is the oldest.
  const auto drop = [&](std::vector<Idle>::iterator oldest) {
    if (oldest->connection.secure) retiring_.push_back(std::move(oldest->connection));
    idle_.erase(oldest);
  };
  const auto same_origin = [&](const Idle& idle) { return idle.origin == origin; };
  if (static_cast<std::size_t>(std::count_if(idle_.begin(), idle_.end(), same_origin)) >=
      options_.max_idle_per_host) {
    drop(std::find_if(idle_.begin(), idle_.end(), same_origin));
  } else if (idle_.size() >= options_.max_idle) {
    drop(idle_.begin());
  }
  idle_.push_back({origin, std::move(connection), now});
}

void Client::drop_expired(Clock::time_point now) {
  const auto expired = [&](const Idle& idle) { return now - idle.since >= options_.idle_timeout; };
  for (Idle& idle : idle_) {
    if (expired(idle) && idle.connection.secure) retiring_.push_back(std::move(idle.connection));
  }
  // A moved-from https connection holds nothing; the plain ones close here.
  std::erase_if(idle_, expired);
}

}  // namespace coring::http
