// DatagramSocket setup: socket(2), bind(2), connect(2) and socketpair(2), none of which
// blocks for a datagram socket.
#include "coring/net/datagram.hpp"

#include <cerrno>

namespace coring::net {
namespace {

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

int domain_of(Family family) noexcept {
  switch (family) {
    case Family::ipv6:
      return AF_INET6;
    case Family::unix_socket:
      return AF_UNIX;
    default:
      return AF_INET;
  }
}

}  // namespace

Result<DatagramSocket> DatagramSocket::bind(const Address& address) noexcept {
  auto socket = open_socket(address.domain(), SOCK_DGRAM);
  if (!socket) return fail(socket.error());
  if (::bind(socket->fd(), address.data(), address.size()) != 0) return fail(last_error());
  return DatagramSocket(std::move(*socket));
}

Result<DatagramSocket> DatagramSocket::open(Family family) noexcept {
  auto socket = open_socket(domain_of(family), SOCK_DGRAM);
  if (!socket) return fail(socket.error());
  return DatagramSocket(std::move(*socket));
}

Result<std::pair<DatagramSocket, DatagramSocket>> DatagramSocket::pair() noexcept {
  int fds[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds) != 0) return fail(last_error());
  return std::pair<DatagramSocket, DatagramSocket>(DatagramSocket(fds[0]), DatagramSocket(fds[1]));
}

Result<void> DatagramSocket::connect(const Address& peer) noexcept {
  if (::connect(fd_, peer.data(), peer.size()) != 0) return fail(last_error());
  return {};
}

}  // namespace coring::net
