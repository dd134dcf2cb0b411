// Request and Response: what a handler of coring::http's server gets and returns.
//
//   Task<http::Response> hello(http::Request& request) {
//     if (request.method() == http::Method::post) {
//       Result<std::string> body = co_await request.body().read_all(64 * 1024);
//       if (!body) co_return http::Response::text(400, body.message());
//     }
//     co_return http::Response::text(200, "Hello, World!");
//   }
//
// A Response carries its status, its fields and one body: bytes it owns (text(), the
// `body` string), a range of a file (file(): sent with send_file, no copy through user
// space), a function that streams it (`stream`: chunked unless the handler set a
// Content-Length), or nothing. The server adds Date, Content-Length or
// Transfer-Encoding, and Connection; fields the handler set are sent as they are, but
// a 1xx, 204 or 304 never carries Transfer-Encoding, nor Content-Length in a 1xx or 204
// (RFC 9110, 8.6; RFC 9112, 6.1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "coring/fs/file.hpp"
#include "coring/http/error.hpp"
#include "coring/http/headers.hpp"
#include "coring/http/parser.hpp"
#include "coring/ring/result.hpp"
#include "coring/runtime/task.hpp"

namespace coring::http {

// The reason phrase of RFC 9110 for `status`, or "" for a status it does not name.
[[nodiscard]] std::string_view reason_phrase(int status) noexcept;

namespace detail {
// The server's side of a request body: the connection that receives it.
class BodySource {
 public:
  virtual Task<Result<std::size_t>> read(std::span<std::byte> buffer) = 0;
  [[nodiscard]] virtual bool done() const noexcept = 0;

 protected:
  ~BodySource() = default;
};
}  // namespace detail

// Where a streamed response body goes (Response::stream): each write() sends its bytes
// as they are, in a chunk of chunked encoding unless the response set its own
// Content-Length (then the writes must add up to it). Errors are the connection's
// (EPIPE, ECONNRESET, ETIMEDOUT when the server's send timeout cut it); after one, the
// stream function should return it, and the server closes the connection.
class BodyWriter {
 public:
  virtual Task<Result<void>> write(std::span<const std::byte> data) = 0;
  Task<Result<void>> write(std::string_view text) {
    return write(std::as_bytes(std::span(text.data(), text.size())));
  }

 protected:
  ~BodyWriter() = default;
};

// The body of a request, read as the handler asks for it (a request the handler does
// not read is drained or the connection closed by the server after the response).
// `Expect: 100-continue` is answered when the handler first reads.
class BodyReader {
 public:
  explicit BodyReader(detail::BodySource* source = nullptr) noexcept : source_(source) {}
  // Up to buffer.size() bytes of the body: the count, 0 at its end. The connection's
  // errors (ECONNRESET, ETIMEDOUT when a deadline cut it) and the parser's (a malformed
  // chunk, a body over the server's limit: http::Errc) as values.
  Task<Result<std::size_t>> read(std::span<std::byte> buffer);
  // The whole body, or Errc::body_too_large when it is longer than `limit`.
  Task<Result<std::string>> read_all(std::size_t limit);
  // Whether the body has been read to its end (true for a request without one).
  [[nodiscard]] bool done() const noexcept { return source_ == nullptr || source_->done(); }

 private:
  detail::BodySource* source_;
};

class Request {
 public:
  Request(const MessageParser& head, BodyReader body) noexcept : head_(&head), body_(body) {}

  [[nodiscard]] Method method() const noexcept { return head_->method(); }
  [[nodiscard]] std::string_view method_name() const noexcept { return head_->method_name(); }
  // The request target as sent, and its parts: the path before '?' and the query after
  // (of an absolute-form target, `http://host/path?q`, the part from the path on; a
  // fragment is dropped). The path is not normalised: serve files with open_beneath.
  [[nodiscard]] std::string_view target() const noexcept { return head_->target(); }
  [[nodiscard]] std::string_view path() const noexcept;
  [[nodiscard]] std::string_view query() const noexcept;
  [[nodiscard]] int version_minor() const noexcept { return head_->version_minor(); }
  [[nodiscard]] const Headers& headers() const noexcept { return head_->headers(); }
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const noexcept {
    return head_->headers().get(name);
  }
  [[nodiscard]] BodyReader& body() noexcept { return body_; }

 private:
  const MessageParser* head_;
  BodyReader body_;
};

class Response {
 public:
  explicit Response(int code = 200) noexcept : status(code) {}

  // A body of `text` with its Content-Type.
  static Response text(int status, std::string text,
                       std::string_view content_type = "text/plain; charset=utf-8");
  // [offset, offset + length) of `file`, sent without copying through user space.
  static Response file(int status, fs::File file, std::uint64_t offset, std::uint64_t length,
                       std::string_view content_type);
  // The same from a file others share (an open-file cache's): it stays open while the
  // response holds it.
  static Response file(int status, std::shared_ptr<const fs::File> file, std::uint64_t offset,
                       std::uint64_t length, std::string_view content_type);

  int status;
  Headers headers;
  std::string body;
  // When set, the body is this range of the file (and `body` is unused).
  struct FileRange {
    fs::File file;                           // the file, owned by the response, or
    std::shared_ptr<const fs::File> shared;  // shared with others (a cache), when set
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    [[nodiscard]] const fs::File& source() const noexcept { return shared ? *shared : file; }
  };
  std::optional<FileRange> file_body;
  // When set (and file_body is not), the body is what this function writes; the server
  // calls it after sending the head, on the connection's loop, and not at all for HEAD.
  std::function<Task<Result<void>>(BodyWriter&)> stream;

  // The body's length as Content-Length will say (for a stream: 0, unused).
  [[nodiscard]] std::uint64_t content_length() const noexcept {
    return file_body ? file_body->length : body.size();
  }
};

// Appends the status line and fields of `response` to `out`: the status line, Date
// (cached per second), the response's own fields, Content-Length (for a stream without
// one of its own, `Transfer-Encoding: chunked`) unless the status has no body, and
// `Connection: close` if `closing`; then the empty line. A status outside 100..999 is
// sent as 500. HTTP/1.1 always (RFC 9110 lets a server answer an HTTP/1.0 request with
// it). For an HTTP/1.0 peer (`http10`), which knows no chunked coding, a stream without
// Content-Length gets no framing field: its body runs to the close, so `closing` must
// be true.
void serialize_head(const Response& response, bool closing, std::string& out, bool http10 = false);

// The value of a Date field for now (RFC 9110's IMF-fixdate), recomputed at most once per
// second per thread.
[[nodiscard]] std::string_view http_date() noexcept;
// IMF-fixdate of `seconds` since the epoch, and back (nullopt for anything else).
[[nodiscard]] std::string format_http_date(std::int64_t seconds);
[[nodiscard]] std::optional<std::int64_t> parse_http_date(std::string_view text) noexcept;

}  // namespace coring::http
