// coring-bench's HTTP handler: http_parser drives a small state machine per connection.
//
// The parser is fed whatever each recv brought, wherever request boundaries fall: a
// request split over many recvs (one byte at a time, even) and many requests in one recv
// (pipelining) are the same to it. Its callbacks collect the URL and, at the end of each
// request, append the response to the session's output, which the connection sends once
// the recv's bytes are all parsed. A request that ends the connection pauses the parser,
// so that bytes pipelined after it get no answer.
//
// Closing. When the server ends a connection (Connection: close, HTTP/1.0, 400, 431),
// the client may still be sending: closing a socket with unread data makes the kernel
// send a reset, which can destroy the response before the client reads it. So the
// server shuts down its sending side — the client sees the end of the response — and
// reads and discards what still arrives for a moment (a "lingering close", as nginx
// does), then closes.
#include "http_server.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <exception>
#include <string_view>
#include <utility>

#include <coring/net/recv_stream.hpp>

namespace coring::examples {
namespace {

constexpr std::size_t recv_buffer_bytes = 4096;
constexpr std::chrono::seconds linger_time{1};
constexpr std::size_t linger_max_bytes = 64 * 1024;
constexpr std::string_view hello = "Hello, World!";

// The Date header's value, formatted again only when the second changes.
std::string_view http_date() {
  thread_local std::time_t cached_second = -1;
  thread_local std::array<char, 40> text{};
  thread_local std::size_t length = 0;
  const std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    std::tm utc{};
    ::gmtime_r(&now, &utc);
    length = std::strftime(text.data(), text.size(), "%a, %d %b %Y %H:%M:%S GMT", &utc);
    cached_second = now;
  }
  return {text.data(), length};
}

std::string_view reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Error";
  }
}

enum class ConnectionHeader { keep_alive_1_1, keep_alive_1_0, close };

void append_response(std::string& out, int status, std::string_view body, bool with_body,
                     ConnectionHeader connection, std::string_view extra_header = {}) {
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason(status);
  out += "\r\nServer: coring\r\nDate: ";
  out += http_date();
  out += "\r\nContent-Type: text/plain\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\n";
  out += extra_header;
  if (connection == ConnectionHeader::close) out += "Connection: close\r\n";
  if (connection == ConnectionHeader::keep_alive_1_0) out += "Connection: keep-alive\r\n";
  out += "\r\n";
  if (with_body) out += body;
}

}  // namespace

// The parser's header limit is a global of the library: set it once, before the first
// session parses anything.
const http_parser_settings& HttpSession::settings() {
  static const http_parser_settings instance = [] {
    // Ours (feed()) is exact and comes first; the library's stays as a backstop for
    // what ours does not count (a chunked body's trailers).
    http_parser_set_max_header_size(2 * http_max_header_bytes);
    http_parser_settings callbacks;
    http_parser_settings_init(&callbacks);
    callbacks.on_message_begin = &on_message_begin;
    callbacks.on_url = &on_url;
    callbacks.on_headers_complete = &on_headers_complete;
    callbacks.on_message_complete = &on_message_complete;
    return callbacks;
  }();
  return instance;
}

HttpSession::HttpSession() noexcept {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
}

// Runs a callback's work. An exception (a string out of memory) must not unwind through
// http_parser's C frames: it is kept for feed() to rethrow once the parser has returned,
// and the callback's non-zero result stops the parser.
template <typename Work>
int HttpSession::guarded(http_parser* parser, Work work) noexcept {
  auto& session = *static_cast<HttpSession*>(parser->data);
  try {
    work(session);
    return 0;
  } catch (...) {
    session.failure_ = std::current_exception();
    return -1;
  }
}

// Pauses the parser, so that feed() learns where the header section begins: the call
// returns just after the message's first byte.
int HttpSession::on_message_begin(http_parser* parser) {
  auto& session = *static_cast<HttpSession*>(parser->data);
  session.url_.clear();
  session.in_header_ = true;
  session.began_ = true;
  http_parser_pause(parser, 1);
  return 0;
}

int HttpSession::on_headers_complete(http_parser* parser) {
  static_cast<HttpSession*>(parser->data)->in_header_ = false;
  return 0;
}

int HttpSession::on_url(http_parser* parser, const char* at, std::size_t length) {
  // Called more than once when the URL is split across recvs.
  return guarded(parser, [&](HttpSession& session) { session.url_.append(at, length); });
}

int HttpSession::on_message_complete(http_parser* parser) {
  return guarded(parser, [&](HttpSession& session) {
    session.respond();
    if (session.closing_) http_parser_pause(parser, 1);
  });
}

void HttpSession::respond() {
  const bool keep_alive = http_should_keep_alive(&parser_) != 0 && parser_.upgrade == 0;
  closing_ = !keep_alive;
  const ConnectionHeader connection = !keep_alive               ? ConnectionHeader::close
                                      : parser_.http_minor == 0 ? ConnectionHeader::keep_alive_1_0
                                                                : ConnectionHeader::keep_alive_1_1;
  http_parser_url url;
  http_parser_url_init(&url);
  if (http_parser_parse_url(url_.data(), url_.size(), 0, &url) != 0) {
    return respond_error(400);
  }
  const std::string_view path =
      (url.field_set & (1U << UF_PATH)) != 0
          ? std::string_view(url_).substr(url.field_data[UF_PATH].off, url.field_data[UF_PATH].len)
          : std::string_view();
  const auto method = static_cast<http_method>(parser_.method);
  if (path != "/") {
    append_response(output_, 404, "Not Found\n", method != HTTP_HEAD, connection);
  } else if (method == HTTP_GET || method == HTTP_HEAD) {
    append_response(output_, 200, hello, method == HTTP_GET, connection);
  } else {
    append_response(output_, 405, "Method Not Allowed\n", true, connection, "Allow: GET, HEAD\r\n");
  }
}

void HttpSession::respond_error(int status) {
  closing_ = true;
  std::string body(reason(status));
  body += '\n';
  append_response(output_, status, body, true, ConnectionHeader::close);
}

// Within a header section the parser gets no more bytes than the limit leaves, so the
// section is over the limit exactly when it has all of them and is not complete, however
// the stream was cut: the answer is then 431, before the parser sees a byte past it.
bool HttpSession::feed(std::span<const char> data) {
  if (closing_) return false;
  while (!data.empty()) {
    const std::size_t slice =
        in_header_ ? std::min(data.size(), http_max_header_bytes - header_bytes_) : data.size();
    const std::size_t parsed = http_parser_execute(&parser_, &settings(), data.data(), slice);
    if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
    const auto error = HTTP_PARSER_ERRNO(&parser_);
    if (error != HPE_OK && error != HPE_PAUSED) {
      respond_error(error == HPE_HEADER_OVERFLOW ? 431 : 400);
      return false;
    }
    if (closing_) return false;  // paused after the last response
    data = data.subspan(parsed);
    if (std::exchange(began_, false)) {
      header_bytes_ = 1;  // the message's first byte
      http_parser_pause(&parser_, 0);
      continue;
    }
    if (parsed < slice) break;  // the parser stopped without a pause or error: not HTTP
    if (in_header_ && (header_bytes_ += parsed) >= http_max_header_bytes) {
      respond_error(431);
      return false;
    }
  }
  return true;
}

namespace {

std::span<const char> as_chars(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// How a connection's request loop ended.
enum class Ending : std::uint8_t {
  peer,    // the peer closed it, an error, or the server shut it down: just close
  server,  // the server ends it (Connection: close, HTTP/1.0, 400, 431): linger first
};

// Receives with one multishot receive into the loop's pool. The receive stays armed
// between chunks, so nothing may leave this frame before it is closed: an exception
// (feed() or send_rest() out of memory) is kept and rethrown after the close.
Task<Ending> requests_from_pool(const net::TcpStream& stream, Connection& conn,
                                HttpSession& session, net::BufferPool& pool) {
  net::RecvStream chunks = stream.recv_stream(pool);
  Ending ending = Ending::peer;
  std::exception_ptr failure;
  try {
    for (;;) {
      Result<net::BufferLease> chunk = co_await chunks.next();
      if (!chunk || chunk->empty()) break;
      conn.active();
      const bool keep_open = session.feed(as_chars(chunk->data()));
      chunk->reset();  // the buffer goes back to the kernel before the send
      if (std::string& out = session.output(); !out.empty()) {
        // One send, the rest only if it was short (inline: a coroutine of its own would
        // allocate a frame per request).
        const auto data = std::as_bytes(std::span(out));
        const IoResult put = co_await stream.send(data);
        // Plain statements around co_await, not a conditional expression: GCC 12 has
        // destroyed a temporary twice in `a || co_await f()` and `c ? co_await f() : ...`.
        bool sent = put.res == static_cast<int>(data.size());
        if (!sent) sent = co_await send_rest(stream, data, put);
        out.clear();
        if (!sent) break;
      }
      if (!keep_open) {
        ending = Ending::server;
        break;
      }
    }
  } catch (...) {
    failure = std::current_exception();
  }
  co_await chunks.close();
  if (failure) std::rethrow_exception(failure);
  co_return ending;
}

// Receives with a recv per chunk into the frame's buffer.
Task<Ending> requests_from_recv(const net::TcpStream& stream, Connection& conn,
                                HttpSession& session) {
  std::array<std::byte, recv_buffer_bytes> buffer;
  for (;;) {
    const IoResult got = co_await stream.recv(buffer);
    if (got.res <= 0) co_return Ending::peer;
    conn.active();
    const bool keep_open = session.feed(as_chars(std::span(buffer).first(got.value())));
    if (std::string& out = session.output(); !out.empty()) {
      const auto data = std::as_bytes(std::span(out));
      const IoResult put = co_await stream.send(data);
      // Statements, not `a || co_await f()` (see requests_from_pool).
      bool sent = put.res == static_cast<int>(data.size());
      if (!sent) sent = co_await send_rest(stream, data, put);
      out.clear();
      if (!sent) co_return Ending::peer;
    }
    if (!keep_open) co_return Ending::server;
  }
}

// The lingering close (see the top of the file).
Task<void> linger(const net::TcpStream& stream) {
  co_await stream.shutdown(SHUT_WR);
  std::array<std::byte, recv_buffer_bytes> buffer;
  std::size_t discarded = 0;
  while (discarded < linger_max_bytes) {
    const IoResult got = co_await stream.recv(buffer).with_timeout(linger_time);
    if (got.res <= 0) break;
    discarded += got.value();
  }
}

}  // namespace

Task<void> serve_http(const net::TcpStream& stream, Connection& conn) {
  HttpSession session;
  net::BufferPool* pool = conn.receive_pool();
  Ending ending = Ending::peer;
  if (pool != nullptr) {
    ending = co_await requests_from_pool(stream, conn, session, *pool);
  } else {
    ending = co_await requests_from_recv(stream, conn, session);
  }
  if (ending == Ending::server) co_await linger(stream);
}

}  // namespace coring::examples
