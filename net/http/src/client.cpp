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

namespace coring::http {
namespace {

using Clock = std::chrono::steady_clock;

// Bodies up to this size are copied behind the head and sent with it in one send; a
// larger one is sent from the request itself, after the head.
constexpr std::size_t inline_body_bytes = 16 * 1024;
// The receive buffer's first size; it grows only for a piece the parser cannot use yet.
constexpr std::size_t receive_bytes = 16 * 1024;

std::error_code invalid() noexcept { return std::make_error_code(std::errc::invalid_argument); }

// Where a URL leads: the peer's address, the Host field's value, and the request target.
struct Target {
  net::Address address;
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

std::optional<std::uint16_t> parse_port(std::string_view digits) noexcept {
  if (digits.empty()) return std::uint16_t{80};  // RFC 3986: an empty port is the default
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

// http://host[:port][/path][?query][#fragment]; the fragment is not sent.
Result<Target> parse_url(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (url.size() < scheme.size() || !equal_ignoring_case(url.substr(0, scheme.size()), scheme)) {
    return fail(invalid());
  }
  url.remove_prefix(scheme.size());
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
  const std::optional<std::uint16_t> port = parse_port(
      colon == std::string_view::npos ? std::string_view() : authority.substr(colon + 1));
  if (!port) return fail(invalid());
  const std::optional<net::Address> address = host_address(host, *port);
  if (!address) return fail(invalid());
  std::string host_field(host);
  if (colon != std::string_view::npos && *port != 80) host_field += ":" + std::to_string(*port);
  return Target{*address, std::move(host_field), std::move(path)};
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

// How an attempt ended: the response or the error; whether the error is that of a
// connection the server had closed (nothing of the response came), and whether the
// connection may be pooled.
struct Attempt {
  Result<ClientResponse> response;
  bool stale = false;
  bool reusable = false;
};

bool is_reset(std::error_code error) noexcept {
  return error == std::errc::broken_pipe || error == std::errc::connection_reset;
}

std::error_code timed_out() noexcept { return std::make_error_code(std::errc::timed_out); }

// What is left until `deadline`; zero or less once it has passed.
std::chrono::nanoseconds left(Clock::time_point deadline) noexcept {
  return deadline - Clock::now();
}

Task<Attempt> exchange(const net::StreamSocket& conn, const Outgoing& out,
                       const ParserLimits& limits, bool head_request, Clock::time_point deadline,
                       std::stop_token stop) {
  for (const std::string_view piece : {std::string_view(out.head), out.body, out.tail}) {
    if (piece.empty()) continue;
    const net::TransferResult sent = co_await conn.send_all(std::as_bytes(std::span(piece)))
                                         .with_deadline(deadline)
                                         .with_stop(stop);
    if (!sent) co_return Attempt{fail(sent.error()), is_reset(sent.error())};
  }
  ResponseReader reader(limits, head_request);
  for (;;) {
    const ResponseReader::Step step = reader.advance();
    if (step == ResponseReader::Step::done) break;
    if (step == ResponseReader::Step::failed) co_return Attempt{fail(reader.error())};
    const std::chrono::nanoseconds remaining = left(deadline);
    if (remaining.count() <= 0) co_return Attempt{fail(timed_out())};
    const IoResult got = co_await conn.recv(reader.space()).with_timeout(remaining).with_stop(stop);
    if (got.res < 0) {
      co_return Attempt{fail(got.error()), !reader.received_any() && is_reset(got.error())};
    }
    if (got.res == 0) {
      if (reader.end_of_stream() == ResponseReader::Step::done) break;
      co_return Attempt{fail(reader.error()), !reader.received_any()};
    }
    reader.received(static_cast<std::size_t>(got.res));
  }
  const bool reusable = reader.reusable();
  co_return Attempt{reader.take(), false, reusable};
}

Task<Result<net::StreamSocket>> open_connection(const net::Address& peer,
                                                std::chrono::nanoseconds connect_timeout,
                                                Clock::time_point deadline, std::stop_token stop) {
  const std::chrono::nanoseconds timeout = std::min(connect_timeout, left(deadline));
  if (timeout.count() <= 0) co_return fail(timed_out());
  Result<net::StreamSocket> conn =
      co_await net::StreamSocket::connect(peer, {.timeout = timeout}, std::move(stop));
  // A request goes out whole, in one send or a few: Nagle's wait would only delay the
  // last segment of a request behind the server's delayed ACK.
  if (conn) (void)conn->set_nodelay(true);
  co_return conn;
}

}  // namespace

Task<Result<ClientResponse>> Client::request(ClientRequest request, std::stop_token stop) {
  Result<Target> target = parse_url(request.url);
  if (!target) co_return fail(target.error());
  Result<Outgoing> out = serialize(request, *target);
  if (!out) co_return fail(out.error());
  const Clock::time_point deadline = Clock::now() + options_.request_timeout;
  const bool head_request = request.method == "HEAD";
  // A request that closes the connection itself leaves nothing to pool.
  const bool closing = request.headers.has_token("connection", "close");
  net::StreamSocket conn = take_idle(target->address);
  for (;;) {
    const bool reused = conn.is_open();
    if (!reused) {
      Result<net::StreamSocket> opened =
          co_await open_connection(target->address, options_.connect_timeout, deadline, stop);
      if (!opened) co_return fail(opened.error());
      conn = std::move(*opened);
    }
    Attempt attempt = co_await exchange(conn, *out, options_.limits, head_request, deadline, stop);
    if (attempt.stale && reused && is_idempotent(request.method)) {
      conn.reset();  // the next turn connects anew, and does not come back here
      continue;
    }
    if (attempt.response && attempt.reusable && !closing)
      put_idle(target->address, std::move(conn));
    co_return std::move(attempt.response);
  }
}

Task<Result<ClientResponse>> Client::post(std::string url, std::string body,
                                          std::string content_type, std::stop_token stop) {
  ClientRequest request("POST", std::move(url), std::move(body));
  if (!content_type.empty()) request.headers.add("Content-Type", content_type);
  return this->request(std::move(request), std::move(stop));
}

net::StreamSocket Client::take_idle(const net::Address& peer) noexcept {
  drop_expired(Clock::now());
  for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
    if (it->peer == peer) {
      net::StreamSocket socket = std::move(it->socket);
      idle_.erase(std::next(it).base());
      return socket;
    }
  }
  return {};
}

void Client::put_idle(const net::Address& peer, net::StreamSocket socket) {
  const Clock::time_point now = Clock::now();
  drop_expired(now);
  if (options_.max_idle_per_host == 0) return;  // `socket` closes here
  const auto same_peer = [&](const Idle& idle) { return idle.peer == peer; };
  if (static_cast<std::size_t>(std::count_if(idle_.begin(), idle_.end(), same_peer)) >=
      options_.max_idle_per_host) {
    idle_.erase(std::find_if(idle_.begin(), idle_.end(), same_peer));  // the oldest
  }
  idle_.push_back({peer, std::move(socket), now});
}

void Client::drop_expired(Clock::time_point now) noexcept {
  std::erase_if(idle_, [&](const Idle& idle) { return now - idle.since >= options_.idle_timeout; });
}

}  // namespace coring::http
