// libFuzzer target: coring-http's protocol side (examples/http_server.hpp, HttpSession).
//
// The input is what a client sends on one connection, behind two bytes that say how the
// server's receives cut it into chunks:
//
//   byte 0   mode: % 4 == 0 one chunk, 1 one byte at a time, 2 and 3 chunks of 1 to
//            1 + 4 * (byte 0 >> 2) bytes, their sizes drawn from a PRNG seeded by byte 1
//   byte 1   that seed
//   rest     the bytes
//
// Each run feeds the bytes to one session whole and to another in chunks and checks what
// must hold for any input:
//   - the output is a sequence of well-formed HTTP/1.1 responses: a status line with a
//     known status and its reason, header lines, one Content-Length and one Date, and a
//     body of exactly Content-Length bytes (or none, for the answer to a HEAD);
//   - a response that closes the connection (Connection: close, and every 400 and 431)
//     is the last one, and feed() returns false exactly when there is one;
//   - there are no more answers than requests the input could hold: each complete
//     request has at least seven bytes ("GET /\n\n") and two line ends, CR or LF (the
//     Debian build of http_parser is not strict: it takes CR and any byte as a line end);
//   - once feed() has returned false, later feeds return false and add nothing;
//   - the chunked session's output is the whole one's, byte for byte, Date values aside;
// and ASan, UBSan and LeakSanitizer stay silent. A failed check prints what it saw and
// aborts, which libFuzzer reports as a crash with the input that caused it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http_server.hpp"

namespace {

using coring::examples::HttpSession;

[[noreturn]] void fail(const char* what, std::string_view output) {
  std::fprintf(stderr, "http_fuzz: %s\noutput (%zu bytes):\n%.*s\n", what, output.size(),
               static_cast<int>(output.size() > 4096 ? 4096 : output.size()), output.data());
  std::abort();
}

void check(bool holds, const char* what, std::string_view output) {
  if (!holds) fail(what, output);
}

// The statuses coring-http answers with, and their reason phrases (RFC 9110, section 15).
std::string_view reason_of(int status) {
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
      return {};
  }
}

struct Response {
  int status = 0;
  bool closes = false;
};

bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

// Parses a decimal Content-Length; -1 for anything else.
long parse_length(std::string_view value) {
  if (value.empty() || value.size() > 9) return -1;
  long n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

// Takes one response off the front of `rest`, checking its form.
Response take_response(std::string_view& rest, std::string_view output) {
  constexpr std::string_view version = "HTTP/1.1 ";
  check(rest.starts_with(version), "a response does not start with HTTP/1.1", output);
  std::size_t end = rest.find("\r\n");
  check(end != std::string_view::npos, "a status line without CRLF", output);
  const std::string_view status_line = rest.substr(version.size(), end - version.size());
  check(status_line.size() > 4 && status_line[3] == ' ', "a malformed status line", output);
  Response response;
  response.status = static_cast<int>(parse_length(status_line.substr(0, 3)));
  const std::string_view reason = reason_of(response.status);
  check(!reason.empty(), "an unexpected status", output);
  check(status_line.substr(4) == reason, "a reason phrase that is not its status's", output);
  rest.remove_prefix(end + 2);
  long length = -1;
  int lengths = 0;
  int dates = 0;
  for (;;) {
    end = rest.find("\r\n");
    check(end != std::string_view::npos, "a header section without its end", output);
    const std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end + 2);
    if (line.empty()) break;
    const std::size_t colon = line.find(": ");
    check(colon != std::string_view::npos && colon > 0, "a header line without ': '", output);
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = line.substr(colon + 2);
    for (char c : name) check(is_token_char(c), "a header name with a bad character", output);
    if (name == "Content-Length") {
      ++lengths;
      length = parse_length(value);
    } else if (name == "Date") {
      ++dates;
    } else if (name == "Connection") {
      check(value == "close" || value == "keep-alive", "an unknown Connection value", output);
      response.closes = value == "close";
    }
  }
  check(lengths == 1 && length >= 0, "not exactly one valid Content-Length", output);
  check(dates == 1, "not exactly one Date", output);
  // A HEAD is answered without the body: the next response (or the end) follows at once.
  // The bodies coring-http sends never start like a response, so this cannot misread.
  if (rest.empty() || rest.starts_with(version)) {
    check(length == 0 || response.status == 200 || response.status == 404,
          "a body is missing (only answers to HEAD have none)", output);
    return response;
  }
  check(rest.size() >= static_cast<std::size_t>(length), "a body shorter than Content-Length",
        output);
  rest.remove_prefix(static_cast<std::size_t>(length));
  check(rest.empty() || rest.starts_with(version), "a body longer than Content-Length", output);
  return response;
}

std::vector<Response> parse_responses(std::string_view output) {
  std::vector<Response> responses;
  std::string_view rest = output;
  while (!rest.empty()) responses.push_back(take_response(rest, output));
  return responses;
}

// The output with every Date value replaced by the same text: two runs may straddle a
// second.
std::string without_dates(std::string_view output) {
  constexpr std::string_view date = "\r\nDate: ";
  std::string masked;
  std::size_t from = 0;
  for (std::size_t at; (at = output.find(date, from)) != std::string_view::npos;) {
    const std::size_t value = at + date.size();
    const std::size_t end = output.find("\r\n", value);
    masked.append(output.substr(from, value - from));
    masked += "<date>";
    from = end == std::string_view::npos ? output.size() : end;
  }
  masked.append(output.substr(from));
  return masked;
}

// The chunk sizes for `size` bytes, as byte 0 and byte 1 of the input ask.
std::vector<std::size_t> chunk_sizes(std::uint8_t mode, std::uint8_t seed, std::size_t size) {
  std::vector<std::size_t> sizes;
  if (mode % 4 == 0) {
    if (size > 0) sizes.push_back(size);
    return sizes;
  }
  const std::size_t largest = mode % 4 == 1 ? 1 : 1 + 4 * static_cast<std::size_t>(mode >> 2);
  std::uint32_t state = 0x9e3779b9U ^ seed;  // xorshift32: any fixed sequence will do
  for (std::size_t left = size; left > 0;) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    const std::size_t n = std::min<std::size_t>(left, 1 + state % largest);
    sizes.push_back(n);
    left -= n;
  }
  return sizes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::span<const char> bytes(reinterpret_cast<const char*>(data) + 2, size - 2);

  HttpSession whole;
  const bool whole_open = whole.feed(bytes);
  const std::string& output = whole.output();
  const std::vector<Response> responses = parse_responses(output);

  // Only the last response may close the connection, and feed() says whether one did.
  for (std::size_t i = 0; i + 1 < responses.size(); ++i) {
    check(!responses[i].closes, "a response after one that closed the connection", output);
  }
  const bool closed = !responses.empty() && responses.back().closes;
  check(whole_open == !closed, "feed()'s result disagrees with Connection: close", output);
  for (const Response& r : responses) {
    check(r.closes || (r.status != 400 && r.status != 431), "an error that keeps the connection",
          output);
  }
  // No more answers than the requests the input could hold, plus one error.
  std::size_t line_ends = 0;
  for (char c : bytes) line_ends += c == '\n' || c == '\r' ? 1 : 0;
  std::size_t answers = responses.size();
  if (answers > 0 && (responses.back().status == 400 || responses.back().status == 431)) {
    --answers;
  }
  check(answers <= line_ends / 2 && answers <= bytes.size() / 7,
        "more answers than the input holds requests", output);

  // The same bytes in chunks: the same answers, and nothing once the session is done.
  HttpSession chunked;
  bool open = true;
  std::size_t at = 0;
  for (std::size_t n : chunk_sizes(data[0], data[1], bytes.size())) {
    const std::size_t before = chunked.output().size();
    const bool still_open = chunked.feed(bytes.subspan(at, n));
    at += n;
    if (!open) {
      check(!still_open, "feed() returned true after it had returned false", chunked.output());
      check(chunked.output().size() == before, "feed() answered after it had returned false",
            chunked.output());
    }
    open = still_open;
  }
  check(open == whole_open, "chunking changed whether the connection stays open", chunked.output());
  if (without_dates(chunked.output()) != without_dates(output)) {
    std::fprintf(stderr, "http_fuzz: whole:\n%s\n", output.c_str());
    fail("chunking changed the output", chunked.output());
  }
  return 0;
}
