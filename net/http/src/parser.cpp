// MessageParser: llhttp drives the grammar; the callbacks below add what llhttp 8.1
// accepts and RFC 9112 (or nginx) does not, and the parser pauses llhttp at every event
// so that parse() reports one at a time.
//
// Pauses. A callback returning HPE_PAUSED makes llhttp_execute() return with
// llhttp_get_error_pos() just past what it used: at the end of the head (when a body
// follows), after each span of body, and at the end of a message. A message without a
// body is not paused at its head: llhttp runs on to its end in the same call, and the
// end is reported by the next parse() without using any input.
//
// What llhttp 8.1 lets through, and where it is refused here:
//   - obs-fold: a value continued on the next line reaches on_header_value as a piece
//     that follows a line feed and blanks (a value's first piece follows the colon and
//     blanks, and a piece cut by the end of the input continues on the next call; an
//     empty value is an empty piece);
//   - whitespace or any other non-token byte in a field name: checked in on_header_field;
//   - an empty field name: the value finds no field begun;
//   - the CRLF after chunk data: llhttp skips any two bytes there, so the parser pauses
//     at the end of each chunk's data and checks them before llhttp reads them;
//   - a chunk size line: llhttp takes any length, and ends it at a CR whatever byte
//     follows; size_line_refusal() checks each line before llhttp reads it;
//   - an HTTP/0.9 request line (`GET /` and a line end): the byte after the target must
//     be a space;
//   - HTTP/2.0 (llhttp parses it as a version): 505 like every version but 1.0 and 1.1;
//   - a target with a tab or another control byte;
//   - in a request, a bare LF as the end of the request line and of the empty line that
//     ends the header or trailer section, and a CR followed by any byte as the end of a
//     trailer line: line_end_refusal() checks every line end of a request's head and
//     trailers before llhttp reads it.
#include "coring/http/parser.hpp"

#include <llhttp.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <new>
#include <utility>

namespace coring::http {
namespace {

static_assert(sizeof(llhttp_t) <= 128 && alignof(llhttp_t) <= 8,
              "MessageParser::llhttp_ must hold an llhttp_t");

// tchar of RFC 9110, section 5.6.2.
constexpr bool is_token_char(unsigned char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

// A request target: visible ASCII and obs-text, no control bytes, spaces or tabs.
constexpr bool is_target_char(unsigned char c) noexcept { return c > 0x20 && c != 0x7f; }

Method method_of(std::uint8_t method) noexcept {
  switch (static_cast<llhttp_method_t>(method)) {
    case HTTP_GET:
      return Method::get;
    case HTTP_HEAD:
      return Method::head;
    case HTTP_POST:
      return Method::post;
    case HTTP_PUT:
      return Method::put;
    case HTTP_DELETE:
      return Method::delete_;
    case HTTP_CONNECT:
      return Method::connect;
    case HTTP_OPTIONS:
      return Method::options;
    case HTTP_TRACE:
      return Method::trace;
    case HTTP_PATCH:
      return Method::patch;
    default:
      return Method::other;
  }
}

}  // namespace

struct MessageParser::Callbacks {
  static MessageParser& self(llhttp_t* p) noexcept { return *static_cast<MessageParser*>(p->data); }

  // Refuses the message from inside a callback.
  static int refuse(llhttp_t* p, int status, const char* reason) noexcept {
    MessageParser& parser = self(p);
    parser.error_ = {status, reason};
    return HPE_USER;
  }

  // Appends with the allocation failure turned into a refusal: nothing may unwind
  // through llhttp's C frames.
  template <typename Append>
  static int store(llhttp_t* p, Append append) noexcept {
    try {
      append();
      return 0;
    } catch (const std::bad_alloc&) {
      return refuse(p, 503, "no memory for the message head");
    }
  }

  static int on_message_begin(llhttp_t* p) noexcept {
    self(p).begin_message();
    return 0;
  }

  static int on_url(llhttp_t* p, const char* at, std::size_t length) noexcept {
    MessageParser& parser = self(p);
    for (std::size_t i = 0; i < length; ++i) {
      if (!is_target_char(static_cast<unsigned char>(at[i]))) {
        return refuse(p, 400, "a control byte or space in the request target");
      }
    }
    // The target ends here unless the input does: HTTP/1.x has a space next.
    if (at + length < parser.input_end_ && at[length] != ' ') {
      return refuse(p, 400, "an HTTP/0.9 request line (no HTTP version)");
    }
    return store(p, [&] { parser.line_.append(at, length); });
  }

  static int on_status(llhttp_t* p, const char* at, std::size_t length) noexcept {
    return store(p, [&] { self(p).line_.append(at, length); });
  }

  static int on_header_field(llhttp_t* p, const char* at, std::size_t length) noexcept {
    MessageParser& parser = self(p);
    for (std::size_t i = 0; i < length; ++i) {
      if (!is_token_char(static_cast<unsigned char>(at[i]))) {
        return refuse(p, 400, "a field name with a byte that is not a token character");
      }
    }
    const bool begins = !parser.field_open_;
    parser.field_open_ = true;
    parser.name_size_ += length;
    if (parser.in_trailers_) return 0;  // checked and counted, not kept
    return store(p, [&] {
      if (begins) parser.headers_.begin_field();
      parser.headers_.append_name({at, length});
    });
  }

  // llhttp reports no name piece for an empty name: the value then finds no open field.
  static int on_header_value(llhttp_t* p, const char* at, std::size_t length) noexcept {
    MessageParser& parser = self(p);
    if (!parser.field_open_) return refuse(p, 400, "a field without a name");
    // An empty value comes as an empty piece after its line end: nothing to store, and
    // no fold (a fold's piece has bytes).
    if (length == 0) return 0;
    // A fold's piece follows a line end, with blanks between (an empty value folded
    // has no piece before it); a value's first piece follows the colon and blanks, and
    // a piece cut by the end of the input follows bytes of its value.
    const char* start = at;
    while (start > parser.input_begin_ && (start[-1] == ' ' || start[-1] == '\t')) --start;
    const char before = start > parser.input_begin_ ? start[-1] : parser.last_non_blank_;
    if (before == '\n') return refuse(p, 400, "a field value folded onto the next line");
    if (parser.in_trailers_) return 0;
    return store(p, [&] { parser.headers_.append_value({at, length}); });
  }

  static int on_header_value_complete(llhttp_t* p) noexcept {
    MessageParser& parser = self(p);
    if (!parser.field_open_ || parser.name_size_ == 0) {
      return refuse(p, 400, "a field without a name");
    }
    parser.field_open_ = false;
    parser.name_size_ = 0;
    if (parser.in_trailers_) return 0;
    parser.headers_.end_value();
    if (parser.headers_.size() > parser.limits_.max_fields) {
      return refuse(p, 431, "too many header fields");
    }
    if (equal_ignoring_case(parser.headers_.last_name(), "host")) ++parser.hosts_;
    return 0;
  }

  static int on_headers_complete(llhttp_t* p) noexcept { return self(p).head_complete(); }

  static int on_chunk_header(llhttp_t* p) noexcept {
    MessageParser& parser = self(p);
    parser.in_size_line_ = false;
    if (p->content_length == 0) {
      // The last chunk: trailer fields may follow, which parse() limits like a head, and
      // an empty line ends them at once.
      parser.in_trailers_ = true;
      parser.head_bytes_ = 0;
      parser.reset_line_ends();
      parser.head_lines_ = true;
      return HPE_PAUSED;
    }
    if (p->content_length > parser.limits_.max_body_bytes - parser.body_bytes_) {
      return refuse(p, 413, "the chunked body is larger than allowed");
    }
    return 0;
  }

  static int on_body(llhttp_t* p, const char* at, std::size_t length) noexcept {
    // llhttp reports an open span at the end of every call, also when it is empty.
    if (length == 0) return 0;
    MessageParser& parser = self(p);
    // Content-Length and chunk sizes were checked against the limit as they came; a
    // response that runs to the connection's close is held to it here: the bytes up to
    // the limit are delivered, however the input was cut, and the next call refuses.
    const std::uint64_t room = parser.limits_.max_body_bytes - parser.body_bytes_;
    if (length > room) {
      if (room == 0) return refuse(p, 413, "the body is larger than allowed");
      length = static_cast<std::size_t>(room);
      parser.over_limit_ = true;
    }
    parser.body_ = {at, length};
    parser.body_bytes_ += length;
    parser.body_pending_ = true;
    // The end of a chunk's data: its CRLF is checked before llhttp reads it.
    if (parser.chunked_ && p->content_length == 0) {
      parser.phase_ = Phase::crlf;
      parser.in_size_line_ = true;  // after the CRLF
      parser.size_line_bytes_ = 0;
      parser.size_line_cr_ = false;
    }
    return HPE_PAUSED;
  }

  static int on_message_complete(llhttp_t* p) noexcept {
    MessageParser& parser = self(p);
    parser.phase_ = Phase::done;
    return HPE_PAUSED;
  }

  static const llhttp_settings_t& settings() noexcept {
    static const llhttp_settings_t table = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = on_message_begin;
      s.on_url = on_url;
      s.on_status = on_status;
      s.on_header_field = on_header_field;
      s.on_header_value = on_header_value;
      s.on_header_value_complete = on_header_value_complete;
      s.on_headers_complete = on_headers_complete;
      s.on_chunk_header = on_chunk_header;
      s.on_body = on_body;
      s.on_message_complete = on_message_complete;
      return s;
    }();
    return table;
  }
};

namespace {
llhttp_t& state(unsigned char* storage) noexcept { return *reinterpret_cast<llhttp_t*>(storage); }
const llhttp_t& state(const unsigned char* storage) noexcept {
  return *reinterpret_cast<const llhttp_t*>(storage);
}
}  // namespace

MessageParser::MessageParser(Type type, ParserLimits limits) noexcept
    : limits_(limits), type_(type) {
  llhttp_t* p = new (llhttp_) llhttp_t;
  llhttp_init(p, type == Type::request ? HTTP_REQUEST : HTTP_RESPONSE, &Callbacks::settings());
  p->data = this;
}

MessageParser::~MessageParser() { state(llhttp_).~llhttp_t(); }

void MessageParser::begin_message() noexcept {
  method_ = Method::get;
  keep_alive_ = chunked_ = has_body_ = expects_continue_ = false;
  no_body_ = std::exchange(no_body_next_, false);
  field_open_ = false;
  name_size_ = 0;
  in_trailers_ = false;
  status_ = version_minor_ = 0;
  hosts_ = 0;
  body_bytes_ = content_length_ = 0;
  in_size_line_ = size_line_cr_ = false;
  size_line_bytes_ = extension_bytes_ = 0;
  line_.clear();
  headers_.clear();
  phase_ = Phase::head;
}

void MessageParser::trim() noexcept {
  if (phase_ != Phase::idle) return;
  // What a usual head needs (a browser's is under 2 KiB) is kept for the next one.
  constexpr std::size_t kept_line_bytes = 512;
  constexpr std::size_t kept_field_bytes = 2048;
  if (line_.capacity() > kept_line_bytes) {
    std::string().swap(line_);  // a move from an empty string would keep the allocation
  } else {
    line_.clear();
  }
  if (headers_.storage_bytes() > kept_field_bytes) {
    headers_.release();
  } else {
    headers_.clear();
  }
}

int MessageParser::head_complete() noexcept {
  llhttp_t* p = &state(llhttp_);
  if (p->http_major != 1 || p->http_minor > 1) {
    if (p->http_major == 0 && p->http_minor == 9) {
      return Callbacks::refuse(p, 400, "an HTTP/0.9 request line (no HTTP version)");
    }
    return Callbacks::refuse(p, 505, "an HTTP version other than 1.0 and 1.1");
  }
  version_minor_ = p->http_minor;
  // llhttp keeps an HTTP/1.0 connection alive on `keep-alive` even beside `close`
  // (`Connection: close, keep-alive`): close wins (RFC 9112, section 9.3).
  keep_alive_ = llhttp_should_keep_alive(p) != 0 && (p->flags & F_CONNECTION_CLOSE) == 0;
  chunked_ = (p->flags & F_CHUNKED) != 0;
  p->upgrade = 0;  // no protocol switch: an Upgrade is answered as a plain request
  if (type_ == Type::request) {
    method_ = method_of(p->method);
    if (hosts_ > 1) return Callbacks::refuse(p, 400, "more than one Host field");
    if (hosts_ == 0 && version_minor_ == 1) {
      return Callbacks::refuse(p, 400, "an HTTP/1.1 request without a Host field");
    }
    // llhttp sets no flag for an empty Transfer-Encoding, and would frame the body by a
    // Content-Length beside it: chunked is not its last coding, so 400 (RFC 9112,
    // section 6.3).
    if ((p->flags & F_TRANSFER_ENCODING) == 0 && headers_.count("transfer-encoding") != 0) {
      return Callbacks::refuse(p, 400, "an empty Transfer-Encoding field");
    }
    if ((p->flags & F_TRANSFER_ENCODING) != 0) {
      if (version_minor_ == 0) {
        return Callbacks::refuse(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
      }
      const auto coding = headers_.get("transfer-encoding");
      if (headers_.count("transfer-encoding") != 1 || !equal_ignoring_case(*coding, "chunked")) {
        return Callbacks::refuse(p, 501, "a transfer coding other than chunked");
      }
    }
    if (const auto expect = headers_.get("expect")) {
      if (!equal_ignoring_case(*expect, "100-continue") || headers_.count("expect") != 1) {
        return Callbacks::refuse(p, 417, "an expectation other than 100-continue");
      }
      expects_continue_ = true;
    }
  } else {
    status_ = p->status_code;
  }
  const bool bodiless_status =
      type_ == Type::response && (status_ < 200 || status_ == 204 || status_ == 304);
  if ((p->flags & F_CONTENT_LENGTH) != 0) {
    content_length_ = p->content_length;
    // A HEAD's or a 304's Content-Length names a body that does not follow.
    if (content_length_ > limits_.max_body_bytes && !no_body_ && !bodiless_status) {
      return Callbacks::refuse(p, 413, "the body is larger than allowed");
    }
  }
  if (no_body_ || bodiless_status) {
    has_body_ = false;
  } else if (type_ == Type::request) {
    has_body_ = chunked_ || content_length_ > 0;
  } else {
    has_body_ = chunked_ || content_length_ > 0 || (p->flags & F_CONTENT_LENGTH) == 0;
  }
  phase_ = Phase::body;
  in_size_line_ = chunked_ && has_body_;  // a chunked body begins with a size line
  size_line_bytes_ = 0;
  size_line_cr_ = false;
  if (!has_body_) {
    // 1 tells llhttp there is no body whatever the fields say (a 1xx or 204 with
    // Transfer-Encoding, a HEAD's response), so it runs on to the message's end in this
    // call and agrees with has_body_.
    end_pending_ = true;
    return 1;
  }
  return HPE_PAUSED;
}

ParseEvent MessageParser::fail(int status, const char* reason, std::size_t consumed) noexcept {
  if (error_.status == 0) error_ = {status, reason};
  phase_ = Phase::failed;
  return {ParseEvent::Kind::error, consumed, {}};
}

ParseEvent MessageParser::parse(std::string_view input) {
  if (phase_ == Phase::failed) return {ParseEvent::Kind::error, 0, {}};
  if (over_limit_) return fail(413, "the body is larger than allowed", 0);
  if (end_pending_ && phase_ == Phase::done) {
    end_pending_ = false;
    phase_ = Phase::idle;
    head_bytes_ = 0;
    reset_line_ends();
    return {ParseEvent::Kind::end, 0, {}};
  }
  if (phase_ == Phase::crlf) return check_chunk_crlf(input);
  const bool in_head = phase_ == Phase::idle || phase_ == Phase::head || in_trailers_;
  if (!in_head) {
    return in_size_line_ ? run_size_line(input, 0) : run(input);
  }
  // A head (or trailer section) may use at most the limit's bytes: llhttp sees one
  // more than the rest of it, so a head that is still incomplete there is too long.
  const std::size_t room =
      limits_.max_header_bytes + 1 - std::min(head_bytes_, limits_.max_header_bytes);
  const std::string_view head = input.substr(0, std::min(input.size(), room));
  if (type_ == Type::request) {
    std::size_t readable = 0;
    if (const char* why = line_end_refusal(head, readable)) {
      // llhttp reads up to the line end first, so that what it refuses there is the
      // refusal, however the input was cut.
      const ParseEvent read = run(head.substr(0, readable));
      if (read.kind == ParseEvent::Kind::error) return read;
      return fail(400, why, read.consumed);
    }
  }
  const ParseEvent event = run(head);
  // An end (after a trailer section) starts the next message's count afresh.
  if (event.kind == ParseEvent::Kind::error || event.kind == ParseEvent::Kind::end) return event;
  head_bytes_ += event.consumed;
  if (head_bytes_ > limits_.max_header_bytes &&
      (event.kind == ParseEvent::Kind::need_more || event.kind == ParseEvent::Kind::head)) {
    return fail(431,
                in_trailers_ ? "the trailer section is larger than allowed"
                             : "the header section is larger than allowed",
                event.consumed);
  }
  return event;
}

ParseEvent MessageParser::check_chunk_crlf(std::string_view input) noexcept {
  static constexpr std::string_view crlf = "\r\n";
  const std::string_view seen = input.substr(0, 2);
  if (crlf.substr(0, seen.size()) != seen) {
    return fail(400, "chunk data not followed by CRLF", 0);
  }
  if (seen.size() < 2) return {ParseEvent::Kind::need_more, 0, {}};
  phase_ = Phase::body;
  return run_size_line(input, 2);
}

ParseEvent MessageParser::run_size_line(std::string_view input, std::size_t lead) {
  std::size_t readable = 0;
  const char* why = size_line_refusal(input.substr(lead), readable);
  if (why == nullptr) return run(input);
  // llhttp reads the line up to the limit first, so that a byte it refuses there is the
  // refusal, however the input was cut.
  const ParseEvent read = run(input.substr(0, lead + readable));
  if (read.kind == ParseEvent::Kind::error) return read;
  return fail(400, why, read.consumed);
}

// A header or trailer section's lines end with CRLF (RFC 9112, section 2.2). llhttp 8.1
// also takes a bare LF at the end of the request line and of the section, and in a
// trailer section a CR followed by any byte, which then starts the next request: a
// proxy in front that reads those bytes otherwise forwards one request where this
// server would answer two. The bytes are checked here up to the empty line that ends
// the section, which is where llhttp stops reading too (at the head's end, or at the
// message's end when no body follows). Empty lines before a request line, which
// llhttp skips, are taken when they end with CRLF.
const char* MessageParser::line_end_refusal(std::string_view head, std::size_t& readable) noexcept {
  // Past the section's end until the message ends (in the state llhttp keeps after an
  // HTTP/1.0 message that closes, it reads on without a head): nothing more is checked,
  // whether the bytes come in this input or in later ones.
  if (head_ended_) return nullptr;
  for (std::size_t i = 0; i < head.size(); ++i) {
    const char c = head[i];
    if (head_cr_) {
      if (c != '\n') {
        readable = i;  // the CR, which llhttp read already if it came in an earlier input
        return "a CR not followed by LF in the header section";
      }
      head_cr_ = false;
      if (head_line_bytes_) {
        head_line_bytes_ = false;
        head_lines_ = true;
      } else if (head_lines_) {
        head_ended_ = true;  // the section's end: what follows is a body or the next message
        return nullptr;
      }
      continue;
    }
    if (c == '\r') {
      head_cr_ = true;
    } else if (c == '\n') {
      readable = i;
      return "a line in the header section ended by a bare LF";
    } else {
      head_line_bytes_ = true;
    }
  }
  return nullptr;
}

void MessageParser::reset_line_ends() noexcept {
  head_cr_ = head_line_bytes_ = head_lines_ = head_ended_ = false;
}

// llhttp 8.1 takes a size line of any length (extensions, leading zeros), and ends it at
// a CR whatever byte follows (`5\r&` reads as the line `5`). Without the checks here a
// client could keep a connection busy with one endless line, send far more than
// max_body_bytes in extensions around one-byte chunks, or frame chunks in a way another
// parser before this server reads differently. The line is checked here, up to its end,
// before llhttp reads it.
const char* MessageParser::size_line_refusal(std::string_view line,
                                             std::size_t& readable) noexcept {
  const std::size_t most = limits_.max_chunk_line_bytes;
  const std::size_t room = most - std::min(size_line_bytes_, most);  // LF included
  std::size_t end = std::string_view::npos;                          // of the line's LF
  if (size_line_cr_ && !line.empty()) {
    // The last input ended with the line's CR: an LF must follow it.
    if (line.front() != '\n') return "a chunk size line not ended by CRLF";  // readable 0
    end = 0;
  } else {
    const std::size_t at = line.substr(0, room).find_first_of("\r\n");
    if (at == std::string_view::npos) {
      if (line.size() >= room) {
        readable = room;
        return "a chunk size line longer than allowed";
      }
      size_line_bytes_ += line.size();  // all of it is used: llhttp needs the line's end
      return nullptr;
    }
    if (line[at] == '\n') {
      readable = at;
      return "a chunk size line not ended by CRLF";
    }
    if (at + 1 == room) {  // its LF would be one byte too many
      readable = room;
      return "a chunk size line longer than allowed";
    }
    if (at + 1 == line.size()) {  // the CR ends this input
      size_line_bytes_ += line.size();
      size_line_cr_ = true;
      return nullptr;
    }
    if (line[at + 1] != '\n') {
      readable = at + 1;
      return "a chunk size line not ended by CRLF";
    }
    end = at + 1;
  }
  constexpr std::size_t needed = 18;  // 16 hex digits and CRLF
  const std::size_t length = size_line_bytes_ + end + 1;
  extension_bytes_ += length > needed ? length - needed : 0;
  size_line_bytes_ = 0;
  size_line_cr_ = false;
  if (extension_bytes_ > limits_.max_chunk_extension_bytes) {
    readable = end;  // up to the CR
    return "chunk extensions longer than allowed";
  }
  return nullptr;
}

ParseEvent MessageParser::run(std::string_view input) {
  // llhttp computes data + len, which C leaves undefined for a null data even with len
  // 0: an empty view gets a non-null pointer.
  if (input.data() == nullptr) input = std::string_view("", 0);
  llhttp_t* p = &state(llhttp_);
  if (llhttp_get_errno(p) == HPE_PAUSED) llhttp_resume(p);
  input_begin_ = input.data();
  input_end_ = input.data() + input.size();
  body_pending_ = false;
  const Phase before = phase_;
  const llhttp_errno_t status = llhttp_execute(p, input.data(), input.size());
  std::size_t consumed = input.size();
  if (status != HPE_OK) consumed = static_cast<std::size_t>(llhttp_get_error_pos(p) - input.data());
  for (std::size_t i = consumed; i > 0; --i) {
    if (input[i - 1] != ' ' && input[i - 1] != '\t') {
      last_non_blank_ = input[i - 1];
      break;
    }
  }
  switch (status) {
    case HPE_OK:
      return {ParseEvent::Kind::need_more, consumed, {}};
    case HPE_PAUSED:
      break;
    case HPE_USER:
      return fail(error_.status, error_.reason, consumed);
    case HPE_INVALID_VERSION:
      // llhttp says so both for a version it does not take (HTTP/1.2) and for what
      // follows a good one badly (a bare CR): only the first is a 505.
      if (p->http_major == 1 && p->http_minor <= 1) {
        return fail(400, "a malformed line end after the HTTP version", consumed);
      }
      return fail(505, "an HTTP version other than 1.0 and 1.1", consumed);
    default:
      return fail(400, llhttp_get_error_reason(p), consumed);
  }
  if (body_pending_) return {ParseEvent::Kind::body, consumed, body_};
  if (in_trailers_ && phase_ == Phase::body) {
    // Paused at the last chunk: the trailer section is parsed under its limit.
    ParseEvent rest = parse(input.substr(consumed));
    rest.consumed += consumed;
    return rest;
  }
  if (before != Phase::body && before != Phase::done && (phase_ == Phase::body || end_pending_)) {
    return {ParseEvent::Kind::head, consumed, {}};
  }
  assert(phase_ == Phase::done);
  phase_ = Phase::idle;
  head_bytes_ = 0;
  in_trailers_ = false;
  reset_line_ends();
  return {ParseEvent::Kind::end, consumed, {}};
}

ParseEvent MessageParser::finish() noexcept {
  if (phase_ == Phase::failed) return {ParseEvent::Kind::error, 0, {}};
  if (phase_ == Phase::idle) return {ParseEvent::Kind::need_more, 0, {}};
  llhttp_t* p = &state(llhttp_);
  if (phase_ == Phase::body && type_ == Type::response && llhttp_message_needs_eof(p) != 0) {
    if (llhttp_get_errno(p) == HPE_PAUSED) llhttp_resume(p);
    if (llhttp_finish(p) == HPE_OK || phase_ == Phase::done) {
      phase_ = Phase::idle;
      return {ParseEvent::Kind::end, 0, {}};
    }
  }
  return fail(400, "the connection closed in the middle of a message", 0);
}

std::string_view MessageParser::method_name() const noexcept {
  return llhttp_method_name(static_cast<llhttp_method_t>(state(llhttp_).method));
}

std::string_view MessageParser::target() const noexcept {
  return type_ == Type::request ? std::string_view(line_) : std::string_view();
}

std::string_view MessageParser::reason() const noexcept {
  return type_ == Type::response ? std::string_view(line_) : std::string_view();
}

std::optional<std::uint64_t> MessageParser::content_length() const noexcept {
  if ((state(llhttp_).flags & F_CONTENT_LENGTH) == 0 || chunked_) return std::nullopt;
  return content_length_;
}

}  // namespace coring::http
