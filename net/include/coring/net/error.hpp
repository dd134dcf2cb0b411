// The net layer's own error codes (category "coring.net"), for what the kernel does
// not report itself: a malformed address, a stream that ended before the bytes a
// caller asked for, a name that did not resolve, which limit an accept ran into (the
// kernel says ENFILE both for the system's file table and for a ring's direct
// descriptor table). Everything else the kernel reports keeps its errno in the system
// category (ECONNRESET, EPIPE, ECONNREFUSED, ETIMEDOUT, ...).
//
// The accept limits compare equal to the errno the kernel gave, as conditions
// (`error == std::errc::too_many_files_open` holds for fd_limit), and apart from each
// other as codes.
#pragma once

#include <system_error>

namespace coring::net {

enum class Errc {
  invalid_address = 1,          // the text is not an address coring can parse
  invalid_port,                 // a port that is not a number in 0..65535
  path_too_long,                // a Unix socket path longer than sun_path holds
  end_of_stream,                // the peer closed before every byte asked for arrived
  host_not_found,               // getaddrinfo found no address for the name
  resolve_failed,               // getaddrinfo failed for another reason (see the message)
  unsupported_family,           // a sockaddr of a family other than IPv4, IPv6 and Unix
  fd_limit,                     // accept: the process is at RLIMIT_NOFILE (the kernel's EMFILE)
  system_file_limit,            // accept: the system-wide file table is full (ENFILE)
  direct_table_full,            // accept: the loop's direct descriptor table is full (ENFILE)
  limit_exceeded,               // BufferedReader: no delimiter within the limit (or a full buffer)
  socket_commands_unsupported,  // the kernel has no socket commands through the ring (6.7)
  file_ended,                   // send_file: the file ended before the range was sent
};

const std::error_category& net_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), net_category()};
}

}  // namespace coring::net

template <>
struct std::is_error_code_enum<coring::net::Errc> : std::true_type {};
