// MessageParser: HTTP/1.1 requests or responses parsed from bytes, strictly, with no I/O.
//
//   http::MessageParser parser(http::MessageParser::Type::request);
//   http::ParseEvent event = parser.parse(bytes);   // bytes: what has arrived so far
//   // event.consumed bytes are used; feed the rest (and more) to the next call
//   switch (event.kind) {
//     case ParseEvent::Kind::need_more: ...   // receive more, call again with the rest
//     case ParseEvent::Kind::head: ...        // method(), target(), headers() are set
//     case ParseEvent::Kind::body: ...        // event.body: bytes of the body
//     case ParseEvent::Kind::end: ...         // the message is complete; the next may follow
//     case ParseEvent::Kind::error: ...       // error(): the status to answer, and why
//   }
//
// The grammar is RFC 9112's, checked by llhttp (Node.js's parser, built from Debian's
// node-llhttp sources) and by this class on top of it, so that what reaches a handler is
// what nginx would accept: no obs-fold, nothing between a field name and its colon, names
// that are tokens, a single Host in HTTP/1.1 (required there), one Content-Length and
// never with Transfer-Encoding, Transfer-Encoding only `chunked` and only in HTTP/1.1,
// chunk data followed by CRLF, versions 1.0 and 1.1 only (505 otherwise; an HTTP/0.9
// request line is a 400), a target without control characters or spaces. Limits: the
// header section (request or status line and fields, or the trailer section of a chunked
// body) at most ParserLimits::max_header_bytes (431), at most max_fields fields (431), a
// body at most max_body_bytes (413).
//
// One event per call: each call parses up to the next event and says how many bytes it
// used; bytes it did not use are to be passed again, with what arrives after them. A body arrives
// as views into the caller's bytes (valid as long as those bytes are). After an error the parser
// stays in it: the connection is to be answered and closed. A parser serves one connection: after
// an end event the next message starts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "coring/http/headers.hpp"

namespace coring::http {

enum class Method : std::uint8_t {
  get,
  head,
  post,
  put,
  delete_,
  connect,
  options,
  trace,
  patch,
  other,  // any other method llhttp knows (see method_name())
};

// Trivially destructible, so a braced temporary is safe in a co_await (g++ 12).
struct ParserLimits {
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_fields = 100;
  std::uint64_t max_body_bytes = std::uint64_t{1} << 20;
  // A chunk's size line (size, extensions, CRLF) may be this long.
  std::size_t max_chunk_line_bytes = 4 * 1024;
  // A chunked message's size lines together may be this much longer than 18 bytes each
  // (the most a size and its CRLF need): their extensions and leading zeros.
  std::size_t max_chunk_extension_bytes = 16 * 1024;
};

struct ParseEvent {
  enum class Kind : std::uint8_t { need_more, head, body, end, error };
  Kind kind = Kind::need_more;
  std::size_t consumed = 0;  // bytes of the input this call used
  std::string_view body;     // Kind::body: bytes of the input, within those consumed
};

// Why a message was refused: the status to answer (400, 413, 417, 431, 501, 505) and a
// sentence for the log or the response body.
struct ParseError {
  int status = 0;
  const char* reason = "";
};

class MessageParser {
 public:
  enum class Type : std::uint8_t { request, response };

  explicit MessageParser(Type type, ParserLimits limits = {}) noexcept;
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;
  ~MessageParser();

  // Parses `input` up to the next event (see the header comment). No memory to store
  // the head is an error event with status 503.
  ParseEvent parse(std::string_view input);
  // The peer closed the connection: ends a response whose body runs to the close (end),
  // or reports the message cut short (error, status 400); need_more between messages.
  ParseEvent finish() noexcept;

  // The head, from a head event until the next message begins.
  [[nodiscard]] std::string_view method_name() const noexcept;
  [[nodiscard]] Method method() const noexcept { return method_; }
  [[nodiscard]] std::string_view target() const noexcept;
  [[nodiscard]] int status() const noexcept { return status_; }  // responses
  [[nodiscard]] std::string_view reason() const noexcept;        // responses
  [[nodiscard]] int version_minor() const noexcept { return version_minor_; }
  [[nodiscard]] const Headers& headers() const noexcept { return headers_; }
  // Whether the connection stays open after this message (HTTP/1.1 unless
  // `Connection: close`; HTTP/1.0 with `Connection: keep-alive`).
  [[nodiscard]] bool keep_alive() const noexcept { return keep_alive_; }
  [[nodiscard]] std::optional<std::uint64_t> content_length() const noexcept;
  [[nodiscard]] bool chunked() const noexcept { return chunked_; }
  // Whether a body follows the head (a Content-Length above 0, chunked, or a response
  // that runs to the connection's close).
  [[nodiscard]] bool has_body() const noexcept { return has_body_; }
  // `Expect: 100-continue` (requests).
  [[nodiscard]] bool expects_continue() const noexcept { return expects_continue_; }
  // Body bytes delivered so far for this message.
  [[nodiscard]] std::uint64_t body_bytes() const noexcept { return body_bytes_; }

  // Between messages (the last one ended, the next not begun): frees the storage its
  // line and fields grew beyond a small size, so that a connection waiting for its next
  // message holds nothing sized by a past head. The last head reads empty after it.
  // Elsewhere, nothing.
  void trim() noexcept;

  // Responses: the next response answers a HEAD request, so it has no body whatever its
  // Content-Length says.
  void expect_no_body() noexcept { no_body_next_ = true; }

  [[nodiscard]] const ParseError& error() const noexcept { return error_; }
  [[nodiscard]] bool failed() const noexcept { return error_.status != 0; }

 private:
  struct Callbacks;
  enum class Phase : std::uint8_t { idle, head, body, crlf, done, failed };

  ParseEvent fail(int status, const char* reason, std::size_t consumed) noexcept;
  ParseEvent parse_head(std::string_view input);
  ParseEvent run(std::string_view input);
  ParseEvent check_chunk_crlf(std::string_view input) noexcept;
  // run() for input in a chunk size line, after `lead` bytes (a CRLF) llhttp reads first.
  ParseEvent run_size_line(std::string_view input, std::size_t lead);
  // Holds the chunk size line that begins `line` (or goes on in it) to the limits: why
  // it is refused, and how many of its bytes llhttp may read first; or null.
  const char* size_line_refusal(std::string_view line, std::size_t& readable) noexcept;
  // Holds the line ends of a request's header or trailer section, up to the empty line
  // that ends it, to CRLF: why `head` is refused, and how many of its bytes llhttp may
  // read first; or null.
  const char* line_end_refusal(std::string_view head, std::size_t& readable) noexcept;
  void reset_line_ends() noexcept;
  void begin_message() noexcept;
  int head_complete() noexcept;

  // llhttp_t, kept here rather than behind a pointer: a parser per connection and no
  // allocation for it. parser.cpp checks that it fits.
  alignas(8) unsigned char llhttp_[128];
  ParserLimits limits_;
  Type type_;
  Phase phase_ = Phase::idle;
  Method method_ = Method::get;
  bool keep_alive_ = false;
  bool chunked_ = false;
  bool has_body_ = false;
  bool expects_continue_ = false;
  bool no_body_next_ = false;
  bool no_body_ = false;       // this response has no body (a HEAD's)
  bool field_open_ = false;    // a field's name has begun and its value not ended
  bool in_trailers_ = false;   // the fields after the last chunk
  bool end_pending_ = false;   // the message ended in the call that reported its head
  bool body_pending_ = false;  // the call paused at a body span
  bool over_limit_ = false;    // a body reached the limit with more to come
  int status_ = 0;
  int version_minor_ = 0;
  std::uint32_t hosts_ = 0;
  std::size_t name_size_ = 0;   // of the field name being received
  std::size_t head_bytes_ = 0;  // of the header or trailer section so far
  std::uint64_t body_bytes_ = 0;
  std::uint64_t content_length_ = 0;
  std::uint32_t crlf_seen_ = 0;      // of the CRLF after a chunk's data
  bool in_size_line_ = false;        // between a chunk's data (or the head) and its size
  bool size_line_cr_ = false;        // the last input ended with the size line's CR
  std::size_t size_line_bytes_ = 0;  // of the size line so far, in earlier inputs
  std::size_t extension_bytes_ = 0;  // of this message's size lines beyond 18 bytes each
  char last_non_blank_ = '\n';       // the last byte before the current input not SP or HT
  bool head_cr_ = false;             // the head's last byte read was a CR
  bool head_line_bytes_ = false;     // the head's current line has bytes
  bool head_lines_ = false;          // the head has had a line with bytes (so an empty one ends it)
  bool head_ended_ = false;          // the head's empty line has been read
  const char* input_begin_ = nullptr;
  const char* input_end_ = nullptr;
  std::string_view body_;
  std::string line_;  // method and target, or reason
  Headers headers_;
  ParseError error_;
};

}  // namespace coring::http
