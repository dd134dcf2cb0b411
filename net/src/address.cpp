// Address parsing and formatting. Parsing is strict: the whole string must be one
// address — inet_pton for the host, a decimal port with no sign, spaces or leading
// junk — because an address that is silently "fixed" is worse than one refused.
#include "coring/net/address.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <charconv>
#include <cstddef>
#include <cstring>

namespace coring::net {
namespace {

constexpr socklen_t unix_path_offset = offsetof(sockaddr_un, sun_path);
constexpr std::size_t unix_path_max = sizeof(sockaddr_un::sun_path) - 1;  // room for the NUL

// "8080" → 8080; anything else (empty, sign, junk, > 65535) is an error.
bool parse_port(std::string_view text, std::uint16_t& port) noexcept {
  if (text.empty() || text.size() > 5) return false;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value > 65535) return false;
  port = static_cast<std::uint16_t>(value);
  return true;
}

ParsedAddress parse_unix(std::string_view text, std::string_view rest) {
  if (rest.empty()) return {Errc::invalid_address, text};
  auto made =
      rest.front() == '@' ? Address::unix_abstract(rest.substr(1)) : Address::unix_path(rest);
  if (!made) return {made.error(), text};
  return *made;
}

ParsedAddress parse_ipv6(std::string_view text) {
  const auto close = text.find(']');
  if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
    return {Errc::invalid_address, text};
  }
  std::string host(text.substr(1, close - 1));
  std::uint16_t port = 0;
  if (!parse_port(text.substr(close + 2), port)) return {Errc::invalid_port, text};
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  if (const auto percent = host.find('%'); percent != std::string::npos) {
    const std::string zone = host.substr(percent + 1);
    host.resize(percent);
    // A zone is an interface name ("eth0") or index ("2").
    unsigned index = ::if_nametoindex(zone.c_str());
    std::uint16_t numeric = 0;
    if (index == 0) {
      if (!parse_port(zone, numeric)) return {Errc::invalid_address, text};
      index = numeric;
    }
    sin6.sin6_scope_id = index;
  }
  if (::inet_pton(AF_INET6, host.c_str(), &sin6.sin6_addr) != 1) {
    return {Errc::invalid_address, text};
  }
  return *Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof(sin6));
}

ParsedAddress parse_ipv4(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return {Errc::invalid_address, text};
  const std::string host(text.substr(0, colon));
  std::uint16_t port = 0;
  sockaddr_in sin{};
  if (::inet_pton(AF_INET, host.c_str(), &sin.sin_addr) != 1) {
    return {Errc::invalid_address, text};
  }
  if (!parse_port(text.substr(colon + 1), port)) return {Errc::invalid_port, text};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  return *Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof(sin));
}

Address ipv6(const in6_addr& host, std::uint16_t port) noexcept {
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  sin6.sin6_addr = host;
  return *Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof(sin6));
}

}  // namespace

Address::Address() noexcept : storage_{}, size_(sizeof(sockaddr_in)) {
  storage_.ss_family = AF_INET;
}

ParsedAddress Address::parse(std::string_view text) {
  constexpr std::string_view unix_prefix = "unix:";
  if (text.substr(0, unix_prefix.size()) == unix_prefix) {
    return parse_unix(text, text.substr(unix_prefix.size()));
  }
  if (!text.empty() && text.front() == '[') return parse_ipv6(text);
  return parse_ipv4(text);
}

Address Address::ipv4(std::uint32_t host_order_address, std::uint16_t port) noexcept {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(host_order_address);
  return *from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof(sin));
}

Address Address::ipv4_loopback(std::uint16_t port) noexcept { return ipv4(INADDR_LOOPBACK, port); }
Address Address::ipv4_any(std::uint16_t port) noexcept { return ipv4(INADDR_ANY, port); }

Address Address::ipv6_loopback(std::uint16_t port) noexcept { return ipv6(in6addr_loopback, port); }
Address Address::ipv6_any(std::uint16_t port) noexcept { return ipv6(in6addr_any, port); }

Result<Address> Address::unix_path(std::string_view path) {
  if (path.empty()) return fail(Errc::invalid_address);
  if (path.size() > unix_path_max) return fail(Errc::path_too_long);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.data(), path.size());
  const auto length = static_cast<socklen_t>(unix_path_offset + path.size() + 1);
  return from_sockaddr(reinterpret_cast<const sockaddr*>(&sun), length);
}

Result<Address> Address::unix_abstract(std::string_view name) {
  if (name.size() > unix_path_max) return fail(Errc::path_too_long);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path + 1, name.data(), name.size());  // sun_path[0] == '\0'
  const auto length = static_cast<socklen_t>(unix_path_offset + 1 + name.size());
  return from_sockaddr(reinterpret_cast<const sockaddr*>(&sun), length);
}

Result<Address> Address::from_sockaddr(const sockaddr* address, socklen_t length) noexcept {
  if (address == nullptr || length < sizeof(sa_family_t) || length > sizeof(sockaddr_storage)) {
    return fail(Errc::invalid_address);
  }
  const auto family = address->sa_family;
  if ((family == AF_INET && length < sizeof(sockaddr_in)) ||
      (family == AF_INET6 && length < sizeof(sockaddr_in6))) {
    return fail(Errc::invalid_address);
  }
  if (family != AF_INET && family != AF_INET6 && family != AF_UNIX) {
    return fail(Errc::unsupported_family);
  }
  Address result;
  result.storage_ = {};
  std::memcpy(&result.storage_, address, length);
  result.size_ = length;
  return result;
}

Family Address::family() const noexcept {
  switch (storage_.ss_family) {
    case AF_INET6:
      return Family::ipv6;
    case AF_UNIX:
      return Family::unix_socket;
    default:
      return Family::ipv4;
  }
}

std::uint16_t Address::port() const noexcept {
  if (storage_.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  }
  if (storage_.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  }
  return 0;
}

Address Address::with_port(std::uint16_t port) const noexcept {
  Address copy = *this;
  if (storage_.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&copy.storage_)->sin_port = htons(port);
  } else if (storage_.ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&copy.storage_)->sin6_port = htons(port);
  }
  return copy;
}

// Built by appending to one string: `"literal" + std::string&&` trips GCC 12's
// -Wrestrict false positive at -O3 (GCC bug 105329).
std::string Address::to_string() const {
  std::string text;
  char host[INET6_ADDRSTRLEN] = {};
  if (storage_.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&storage_);
    ::inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
    text.append(host).append(":").append(std::to_string(port()));
    return text;
  }
  if (storage_.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
    ::inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
    text.append("[").append(host);
    if (sin6->sin6_scope_id != 0) text.append("%").append(std::to_string(sin6->sin6_scope_id));
    text.append("]:").append(std::to_string(port()));
    return text;
  }
  const auto* sun = reinterpret_cast<const sockaddr_un*>(&storage_);
  text.append("unix:");
  if (size_ <= unix_path_offset) return text;  // unnamed
  const std::size_t length = size_ - unix_path_offset;
  if (sun->sun_path[0] == '\0') {
    text.append("@").append(sun->sun_path + 1, length - 1);
  } else {
    text.append(sun->sun_path, ::strnlen(sun->sun_path, length));
  }
  return text;
}

bool operator==(const Address& a, const Address& b) noexcept {
  return a.size_ == b.size_ && std::memcmp(&a.storage_, &b.storage_, a.size_) == 0;
}

std::string ParsedAddress::message() const {
  if (ok()) return {};
  std::string text("invalid address \"");
  text.append(input_).append("\": ").append(error().message());
  return text;
}

const Address& ParsedAddress::value() const {
  if (!ok()) {
    std::string what("invalid address \"");
    what.append(input_).append("\"");
    throw std::system_error(error(), what);
  }
  return *result_;
}

}  // namespace coring::net
