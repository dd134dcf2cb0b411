// Address: an IPv4, IPv6 or Unix (path or abstract) socket address, by value.
//
//   auto a = Address::parse("127.0.0.1:8080");   // or "[::1]:443", "unix:/run/app.sock",
//   if (!a) puts(a.message().c_str());           //    "unix:@name" (abstract namespace)
//   a->to_string();                              // "127.0.0.1:8080"
//
// An Address holds a sockaddr_storage and its length, so it can be handed to the kernel
// as is (data(), size()) and lives wherever the caller keeps it: an operation that sends
// to it copies it into its own record first.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include "coring/net/error.hpp"
#include "coring/ring/result.hpp"

namespace coring::net {

enum class Family : std::uint8_t { ipv4, ipv6, unix_socket };

class ParsedAddress;

class Address {
 public:
  // 0.0.0.0:0 (IPv4, any address, any port).
  Address() noexcept;

  // "1.2.3.4:80", "[::1]:443", "[fe80::1%eth0]:22", "unix:/path", "unix:@abstract".
  // A bad string is an error that names it (ParsedAddress::message()).
  static ParsedAddress parse(std::string_view text);

  static Address ipv4(std::uint32_t host_order_address, std::uint16_t port) noexcept;
  static Address ipv4_loopback(std::uint16_t port = 0) noexcept;  // 127.0.0.1
  static Address ipv4_any(std::uint16_t port = 0) noexcept;       // 0.0.0.0
  static Address ipv6_loopback(std::uint16_t port = 0) noexcept;  // ::1
  static Address ipv6_any(std::uint16_t port = 0) noexcept;       // ::
  // A filesystem socket at `path` (at most 107 bytes).
  static Result<Address> unix_path(std::string_view path);
  // A socket in the abstract namespace (no file; gone with its last socket).
  static Result<Address> unix_abstract(std::string_view name);
  // An address the kernel filled (getsockname, recvfrom): IPv4, IPv6 or Unix.
  static Result<Address> from_sockaddr(const sockaddr* address, socklen_t length) noexcept;

  [[nodiscard]] Family family() const noexcept;
  // AF_INET, AF_INET6 or AF_UNIX, for socket(2).
  [[nodiscard]] int domain() const noexcept { return storage_.ss_family; }
  // The port of an IP address; 0 for Unix.
  [[nodiscard]] std::uint16_t port() const noexcept;
  // The same address with another port (IP only; a Unix address is returned as is).
  [[nodiscard]] Address with_port(std::uint16_t port) const noexcept;
  [[nodiscard]] bool is_unix() const noexcept { return storage_.ss_family == AF_UNIX; }
  // "127.0.0.1:8080", "[::1]:443", "unix:/path", "unix:@name", "unix:" (unnamed).
  [[nodiscard]] std::string to_string() const;

  [[nodiscard]] const sockaddr* data() const noexcept {
    return reinterpret_cast<const sockaddr*>(&storage_);
  }
  [[nodiscard]] socklen_t size() const noexcept { return size_; }

  friend bool operator==(const Address& a, const Address& b) noexcept;

 private:
  sockaddr_storage storage_;
  socklen_t size_;
};

// Address::parse's result: an Address, or an error code and the text that failed.
// Tested and read like Result<Address>; message() says what was wrong with which input.
class ParsedAddress {
 public:
  ParsedAddress(Address address) noexcept : result_(address) {}  // NOLINT: implicit
  ParsedAddress(std::error_code error, std::string_view input)
      : result_(fail(error)), input_(input) {}

  [[nodiscard]] bool ok() const noexcept { return result_.ok(); }
  explicit operator bool() const noexcept { return result_.ok(); }
  [[nodiscard]] std::error_code error() const noexcept { return result_.error(); }
  // The text that failed to parse (empty on success).
  [[nodiscard]] const std::string& input() const noexcept { return input_; }
  // "invalid address \"<input>\": <what was wrong>", or "" on success.
  [[nodiscard]] std::string message() const;
  // The address; throws std::system_error carrying message() on failure.
  [[nodiscard]] const Address& value() const;
  const Address& operator*() const noexcept { return *result_; }
  const Address* operator->() const noexcept { return &*result_; }

 private:
  Result<Address> result_;
  std::string input_;
};

}  // namespace coring::net
