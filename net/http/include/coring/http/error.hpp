// coring::http's own error codes (category "coring.http"), for what is wrong with a
// message rather than with the connection that carried it (those keep their errno).
#pragma once

#include <system_error>

namespace coring::http {

enum class Errc {
  body_too_large = 1,  // a body over the limit a reader or the server set (413)
  malformed_message,   // the parser refused the bytes (MessageParser::error() says why)
  incomplete_message,  // the peer closed the connection in the middle of a message
};

const std::error_category& http_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), http_category()};
}

}  // namespace coring::http

template <>
struct std::is_error_code_enum<coring::http::Errc> : std::true_type {};
