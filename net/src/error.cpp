#include "coring/net/error.hpp"

#include <string>

namespace coring::net {
namespace {

class NetCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "coring.net"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::invalid_address:
        return "invalid address (expected 1.2.3.4:port, [v6]:port, unix:/path or unix:@name)";
      case Errc::invalid_port:
        return "invalid port (expected a number from 0 to 65535)";
      case Errc::path_too_long:
        return "Unix socket path too long (sun_path holds 107 bytes)";
      case Errc::end_of_stream:
        return "the peer closed the stream before every byte arrived";
      case Errc::host_not_found:
        return "host not found";
      case Errc::resolve_failed:
        return "name resolution failed";
      case Errc::unsupported_family:
        return "address family not supported (IPv4, IPv6 and Unix are)";
      case Errc::fd_limit:
        return "this process is at its open file limit (RLIMIT_NOFILE: raise ulimit -n or "
               "LimitNOFILE=, or hold fewer connections)";
      case Errc::system_file_limit:
        return "the system-wide file table is full (sysctl fs.file-max)";
      case Errc::direct_table_full:
        return "the loop's direct descriptor table is full (the slots given to "
               "enable_direct_descriptors(), or none were registered)";
      case Errc::limit_exceeded:
        return "no delimiter within the limit (a line or header longer than allowed)";
      case Errc::socket_commands_unsupported:
        return "socket options through io_uring (SOCKET_URING_OP_GETSOCKOPT/SETSOCKOPT) need "
               "Linux 6.7; on an fd, use set_option()/option()";
      case Errc::file_ended:
        return "the file ended before the range asked for was sent (it is shorter than "
               "offset + length, or shrank)";
    }
    return "unknown coring.net error";
  }
  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<Errc>(value)) {
      case Errc::invalid_address:
      case Errc::invalid_port:
      case Errc::path_too_long:
        return std::errc::invalid_argument;
      case Errc::unsupported_family:
        return std::errc::address_family_not_supported;
      case Errc::limit_exceeded:
        return std::errc::message_size;
      case Errc::socket_commands_unsupported:
        return std::errc::operation_not_supported;
      case Errc::fd_limit:
        return std::errc::too_many_files_open;
      case Errc::system_file_limit:
      case Errc::direct_table_full:
        return std::errc::too_many_files_open_in_system;
      default:
        return {value, *this};
    }
  }
};

}  // namespace

const std::error_category& net_category() noexcept {
  static const NetCategory category;
  return category;
}

}  // namespace coring::net
