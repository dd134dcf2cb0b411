// An HTTP/1.1 connection handler on http_parser, for coring-bench only (coring-http runs
// on http::Server): keep-alive and pipelining, Debian's libhttp-parser-dev 2.9.
//
//   GET / (or HEAD /)      200 "Hello, World!"
//   another method on /    405, Allow: GET, HEAD
//   any other path         404
//   malformed request      400, then the connection is closed
//   header section > 8 KiB 431, then the connection is closed
//
// Keep-alive follows http_should_keep_alive(): HTTP/1.1 keeps the connection unless the
// request says `Connection: close`; HTTP/1.0 closes it unless the request says
// `Connection: keep-alive`. Pipelined requests are answered in order, the answers to
// every request found in one recv leaving in one send. Idle connections are closed by
// the Server's sweeper (server.hpp); the handler reports each recv as activity.
#pragma once

#include <http_parser.h>

#include <cstddef>
#include <exception>
#include <span>
#include <string>

#include "server.hpp"
#include <coring/net/stream.hpp>
#include <coring/runtime/task.hpp>

namespace coring::examples {

// The largest header section (request line and header fields) accepted.
inline constexpr std::size_t http_max_header_bytes = 8 * 1024;

// The protocol side of one connection, without I/O: bytes in, responses out.
class HttpSession {
 public:
  HttpSession() noexcept;
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  // Parses `data`, appending the response to every complete request to output().
  // Returns false once the connection must be closed after output() is sent (a request
  // without keep-alive, or a bad one, which got a 400 or 431); the bytes after that
  // point are ignored. Throws std::bad_alloc when a string cannot grow; the session is
  // then unusable and the connection must end.
  bool feed(std::span<const char> data);
  [[nodiscard]] std::string& output() noexcept { return output_; }

 private:
  static const http_parser_settings& settings();
  static int on_message_begin(http_parser* parser);
  static int on_headers_complete(http_parser* parser);
  static int on_url(http_parser* parser, const char* at, std::size_t length);
  static int on_message_complete(http_parser* parser);
  template <typename Work>
  static int guarded(http_parser* parser, Work work) noexcept;
  void respond();
  void respond_error(int status);

  http_parser parser_;
  std::string url_;
  std::string output_;
  std::exception_ptr failure_;  // what a callback threw, for feed() to rethrow
  bool closing_ = false;
  // The header section being parsed: its bytes so far, counted here because http_parser
  // counts them only at line ends and at the end of each call, so that its own limit
  // would fire at a place that depends on how the recvs cut the stream.
  bool in_header_ = false;
  bool began_ = false;  // the parser paused at a message's first byte
  std::size_t header_bytes_ = 0;
};

// The Server handler: serves HTTP on `stream` until either side closes it. With a
// receive pool (Connection::receive_pool()) it receives with one multishot receive into
// the pool, else with one recv per chunk into its own buffer.
Task<void> serve_http(const net::TcpStream& stream, Connection& conn);

}  // namespace coring::examples
