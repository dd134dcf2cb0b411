// libFuzzer target: coring::http's MessageParser (llhttp and the checks on top of it).
//
// The input is what one connection carries, behind two bytes that say how it arrives:
//
//   byte 0   bits 0-1: 0 one piece, 1 one byte at a time, 2 and 3 pieces of 1 to
//            1 + 4 * (bits 3-7) bytes, their sizes drawn from a PRNG seeded by byte 1;
//            bit 2: the bytes are responses (a client's parser), else requests
//   byte 1   that seed
//   rest     the bytes
//
// Each run parses the bytes whole with one parser and in pieces with another, passing
// again what a call left unused as a connection does, and checks what must hold for any
// input:
//   - a call uses no more than it is given, and of two head, body or end events in a row
//     at most one uses no bytes (only the end of a message reported with its head does);
//   - both parsers report the same messages: heads, body bytes, ends, and the same error
//     status if one stops them;
//   - a head has version 1.0 or 1.1, at most max_fields fields, names of token
//     characters, values without CR, LF or NUL and without surrounding whitespace, a
//     target without control bytes or spaces, and a request in HTTP/1.1 exactly one Host;
//   - a body never exceeds max_body_bytes, nor a head max_header_bytes;
//   - an error stays: later calls report it again and use nothing;
// and ASan, UBSan and LeakSanitizer stay silent. A failed check prints what it saw and
// aborts, which libFuzzer reports as a crash with the input that caused it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "coring/http/parser.hpp"

namespace {

using coring::http::MessageParser;
using coring::http::ParseEvent;
using coring::http::ParserLimits;
using Kind = ParseEvent::Kind;

// Small, so that short inputs reach every limit (chunk size lines of 64 bytes, 256 of
// extensions in a message).
constexpr ParserLimits limits{1024, 20, 4096, 64, 256};

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "http_parser_fuzz: %s\n%s\n", what, detail.c_str());
  std::abort();
}

void check(bool holds, const char* what, const std::string& detail = {}) {
  if (!holds) fail(what, detail);
}

bool is_token(std::string_view name) {
  if (name.empty()) return false;
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    const bool alnum = (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z');
    if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// One message as the parser reported it.
struct Message {
  std::string head;
  std::string body;
  bool ended = false;
  bool operator==(const Message&) const = default;
};

struct Outcome {
  std::vector<Message> messages;
  int error = 0;
  bool operator==(const Outcome&) const = default;
};

void check_head(const MessageParser& parser, bool response) {
  check(parser.version_minor() == 0 || parser.version_minor() == 1, "a version other than 1.x");
  check(parser.headers().size() <= limits.max_fields, "more fields than the limit");
  for (const auto field : parser.headers()) {
    check(is_token(field.name), "a field name that is not a token", std::string(field.name));
    const std::string_view v = field.value;
    check(v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos,
          "CR, LF or NUL in a value", std::string(v));
    check(
        v.empty() || (v.front() != ' ' && v.front() != '\t' && v.back() != ' ' && v.back() != '\t'),
        "whitespace around a value", std::string(v));
  }
  if (response) return;
  for (const char c : parser.target()) {
    check(static_cast<unsigned char>(c) > 0x20 && c != 0x7f, "a control byte in the target",
          std::string(parser.target()));
  }
  if (parser.version_minor() == 1) {
    check(parser.headers().count("host") == 1, "an HTTP/1.1 request without exactly one Host");
  }
}

// Parses `data` arriving in the pieces `sizes` (the rest in one piece when they run out).
Outcome parse(std::string_view data, const std::vector<std::size_t>& sizes, bool response) {
  MessageParser parser(response ? MessageParser::Type::response : MessageParser::Type::request,
                       limits);
  Outcome out;
  std::string pending;
  std::size_t next = 0;
  std::size_t piece = 0;
  int idle_events = 0;  // events in a row that used no bytes
  for (;;) {
    const ParseEvent event = parser.parse(pending);
    check(event.consumed <= pending.size(), "a call used more than it was given");
    const bool progress_event = event.kind != Kind::need_more && event.kind != Kind::error;
    idle_events = event.consumed == 0 && progress_event ? idle_events + 1 : 0;
    check(idle_events <= 1, "events in a row that use no bytes");
    switch (event.kind) {
      case Kind::head:
        check_head(parser, response);
        out.messages.push_back(
            {std::to_string(parser.status()) + " " + std::string(parser.method_name()) + " " +
                 std::string(parser.target()) + " " + std::string(parser.reason()),
             {},
             false});
        break;
      case Kind::body:
        check(!out.messages.empty() && !out.messages.back().ended, "a body outside a message");
        check(event.body.data() >= pending.data() &&
                  event.body.data() + event.body.size() <= pending.data() + event.consumed,
              "a body outside the bytes used");
        out.messages.back().body.append(event.body);
        check(out.messages.back().body.size() <= limits.max_body_bytes, "a body over the limit");
        break;
      case Kind::end:
        check(!out.messages.empty() && !out.messages.back().ended, "an end without a head");
        out.messages.back().ended = true;
        break;
      case Kind::error: {
        out.error = parser.error().status;
        check(out.error >= 400 && out.error < 600, "an error without a status");
        const ParseEvent again = parser.parse(pending);
        check(again.kind == Kind::error && again.consumed == 0, "an error that did not stay");
        return out;
      }
      case Kind::need_more:
        break;
    }
    pending.erase(0, event.consumed);
    if (event.kind != Kind::need_more) continue;
    if (next == data.size()) break;
    std::size_t n = data.size() - next;
    if (piece < sizes.size()) n = std::min(n, sizes[piece++]);
    pending.append(data.substr(next, n));
    next += n;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size < 2) return 0;
  const unsigned mode = bytes[0] & 3U;
  const bool response = (bytes[0] & 4U) != 0;
  const std::size_t spread = 1 + 4 * (bytes[0] >> 3U);
  std::uint32_t seed = bytes[1] * 2654435761U + 1;
  const std::string_view data(reinterpret_cast<const char*>(bytes + 2), size - 2);
  std::vector<std::size_t> sizes;
  for (std::size_t total = 0; mode != 0 && total < data.size();) {
    std::size_t n = 1;
    if (mode >= 2) {
      seed = seed * 1664525U + 1013904223U;
      n = 1 + (seed >> 8U) % spread;
    }
    sizes.push_back(n);
    total += n;
  }
  const Outcome whole = parse(data, {}, response);
  const Outcome pieces = parse(data, sizes, response);
  if (!(whole == pieces)) {
    std::string detail = "whole: " + std::to_string(whole.messages.size()) + " messages, error " +
                         std::to_string(whole.error) +
                         "; pieces: " + std::to_string(pieces.messages.size()) +
                         " messages, error " + std::to_string(pieces.error);
    for (const Outcome* outcome : {&whole, &pieces}) {
      detail += outcome == &whole ? "\nwhole:" : "\npieces:";
      for (const auto& message : outcome->messages) {
        detail +=
            " body " + std::to_string(message.body.size()) + (message.ended ? " ended;" : ";");
      }
    }
    fail("the whole input and its pieces parse differently", detail);
  }
  return 0;
}
