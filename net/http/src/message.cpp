// Request, Response, the status table and the Date field.
#include "coring/http/message.hpp"

#include <time.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <utility>

#include "coring/http/error.hpp"

namespace coring::http {

const std::error_category& http_category() noexcept {
  static const struct : std::error_category {
    const char* name() const noexcept override { return "coring.http"; }
    std::string message(int code) const override {
      switch (static_cast<Errc>(code)) {
        case Errc::body_too_large:
          return "the body is larger than allowed";
        case Errc::malformed_message:
          return "a malformed HTTP message";
        case Errc::incomplete_message:
          return "the connection closed in the middle of a message";
      }
      return "unknown coring.http error " + std::to_string(code);
    }
  } category;
  return category;
}

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "";
  }
}

namespace {
// The target without an absolute form's scheme and authority (RFC 9112, section 3.2.2:
// a server accepts `GET http://host/path`) and without a fragment, which a client should
// not send but llhttp lets through.
std::string_view origin_part(std::string_view target) noexcept {
  for (const std::string_view scheme :
       {std::string_view("http://"), std::string_view("https://")}) {
    if (target.size() >= scheme.size() &&
        equal_ignoring_case(target.substr(0, scheme.size()), scheme)) {
      const std::size_t slash = target.find_first_of("/?#", scheme.size());
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  }
  return target.substr(0, target.find('#'));
}
}  // namespace

std::string_view Request::path() const noexcept {
  const std::string_view t = origin_part(target());
  const std::string_view p = t.substr(0, t.find('?'));
  return p.empty() ? std::string_view("/") : p;
}

std::string_view Request::query() const noexcept {
  const std::string_view t = origin_part(target());
  const std::size_t mark = t.find('?');
  return mark == std::string_view::npos ? std::string_view() : t.substr(mark + 1);
}

Task<Result<std::size_t>> BodyReader::read(std::span<std::byte> buffer) {
  if (source_ == nullptr) co_return std::size_t{0};
  co_return co_await source_->read(buffer);
}

Task<Result<std::string>> BodyReader::read_all(std::size_t limit) {
  std::string body;
  std::array<std::byte, 16 * 1024> chunk;
  for (;;) {
    Result<std::size_t> n = co_await read(chunk);
    if (!n) co_return fail(n.error());
    if (*n == 0) co_return body;
    if (body.size() + *n > limit) co_return fail(Errc::body_too_large);
    body.append(reinterpret_cast<const char*>(chunk.data()), *n);
  }
}

Response Response::text(int status, std::string text, std::string_view content_type) {
  Response response(status);
  response.headers.add("Content-Type", content_type);
  response.body = std::move(text);
  return response;
}

Response Response::file(int status, fs::File file, std::uint64_t offset, std::uint64_t length,
                        std::string_view content_type) {
  Response response(status);
  if (!content_type.empty()) response.headers.add("Content-Type", content_type);
  response.file_body = FileRange{std::move(file), nullptr, offset, length};
  return response;
}

Response Response::file(int status, std::shared_ptr<const fs::File> file, std::uint64_t offset,
                        std::uint64_t length, std::string_view content_type) {
  Response response(status);
  if (!content_type.empty()) response.headers.add("Content-Type", content_type);
  response.file_body = FileRange{fs::File(), std::move(file), offset, length};
  return response;
}

namespace {

constexpr std::array<const char*, 7> days = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<const char*, 12> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void append_number(std::string& out, std::uint64_t value) {
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

// Whether a response with this status has no body, so no Content-Length either.
constexpr bool bodiless(int status) noexcept {
  return status < 200 || status == 204 || status == 304;
}

}  // namespace

namespace {
// IMF-fixdate of `seconds` into `out` (29 characters); its length.
std::size_t write_http_date(char (&out)[32], std::int64_t seconds) noexcept {
  const time_t t = static_cast<time_t>(seconds);
  tm parts{};
  gmtime_r(&t, &parts);
  const int n = std::snprintf(out, sizeof out, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                              days[static_cast<std::size_t>(parts.tm_wday) % 7], parts.tm_mday,
                              months[static_cast<std::size_t>(parts.tm_mon) % 12],
                              parts.tm_year + 1900, parts.tm_hour, parts.tm_min, parts.tm_sec);
  return n < 0 ? 0 : std::min(static_cast<std::size_t>(n), sizeof out - 1);
}
}  // namespace

std::string format_http_date(std::int64_t seconds) {
  char text[32];
  return {text, write_http_date(text, seconds)};
}

std::optional<std::int64_t> parse_http_date(std::string_view text) noexcept {
  // IMF-fixdate, RFC 850 and asctime's format: RFC 9110, section 5.6.7, says a recipient
  // accepts all three.
  char buffer[64];
  if (text.size() >= sizeof buffer) return std::nullopt;
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  char weekday[16];
  char month[4];
  int day = 0;
  int year = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  int used = 0;
  bool parsed = std::sscanf(buffer, "%3s, %2d %3s %4d %2d:%2d:%2d GMT%n", weekday, &day, month,
                            &year, &hour, &minute, &second, &used) == 7 &&
                used == static_cast<int>(text.size());
  if (!parsed) {
    used = 0;
    parsed = std::sscanf(buffer, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d GMT%n", weekday, &day, month,
                         &year, &hour, &minute, &second, &used) == 7 &&
             used == static_cast<int>(text.size());
    if (parsed) year += year < 70 ? 2000 : 1900;  // a two-digit year (RFC 9110 says 50 years)
  }
  if (!parsed) {
    used = 0;
    parsed = std::sscanf(buffer, "%3s %3s %2d %2d:%2d:%2d %4d%n", weekday, month, &day, &hour,
                         &minute, &second, &year, &used) == 7 &&
             used == static_cast<int>(text.size());
  }
  if (!parsed) return std::nullopt;
  int month_index = -1;
  for (int i = 0; i < 12; ++i) {
    if (std::strcmp(month, months[static_cast<std::size_t>(i)]) == 0) month_index = i;
  }
  if (month_index < 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 ||
      year < 1900) {
    return std::nullopt;
  }
  tm parts{};
  parts.tm_year = year - 1900;
  parts.tm_mon = month_index;
  parts.tm_mday = day;
  parts.tm_hour = hour;
  parts.tm_min = minute;
  parts.tm_sec = second;
  const std::int64_t seconds = static_cast<std::int64_t>(timegm(&parts));
  // timegm() rolls a day the month lacks (31 Feb) into the next: such a date is refused.
  if (parts.tm_mday != day || parts.tm_mon != month_index) return std::nullopt;
  return seconds;
}

std::string_view http_date() noexcept {
  thread_local std::int64_t cached_second = -1;
  thread_local char cached[32];
  thread_local std::size_t cached_size = 0;
  timespec now{};
  clock_gettime(CLOCK_REALTIME_COARSE, &now);
  if (now.tv_sec != cached_second) {
    cached_second = now.tv_sec;
    cached_size = write_http_date(cached, now.tv_sec);
  }
  return {cached, cached_size};
}

void serialize_head(const Response& response, bool closing, std::string& out, bool http10) {
  const int status = response.status >= 100 && response.status <= 999 ? response.status : 500;
  out.append("HTTP/1.1 ");
  append_number(out, static_cast<std::uint64_t>(status));
  out.push_back(' ');
  out.append(reason_phrase(status));
  out.append("\r\nDate: ");
  out.append(http_date());
  out.append("\r\n");
  const bool no_body = bodiless(status);
  if (!no_body) {
    response.headers.serialize(out);
  } else {
    // A 304 may say the length the 200 would have had; nothing else frames a body here.
    const bool length_allowed = status == 304;
    for (const Field field : response.headers) {
      if (equal_ignoring_case(field.name, "transfer-encoding")) continue;
      if (!length_allowed && equal_ignoring_case(field.name, "content-length")) continue;
      out.append(field.name);
      out.append(": ");
      out.append(field.value);
      out.append("\r\n");
    }
  }
  if (!no_body && !response.headers.contains("content-length")) {
    if (response.stream && !response.file_body) {
      if (!http10 && !response.headers.contains("transfer-encoding")) {
        out.append("Transfer-Encoding: chunked\r\n");
      }
    } else {
      out.append("Content-Length: ");
      append_number(out, response.content_length());
      out.append("\r\n");
    }
  }
  if (closing) out.append("Connection: close\r\n");
  out.append("\r\n");
}

}  // namespace coring::http
