// StreamSocket's operations that are not a single inline SQE: connect (a socket(2),
// then IORING_OP_CONNECT with the address in the task's frame) and socketpair(2).
#include "coring/net/stream.hpp"

#include <cerrno>

namespace coring::net {

Task<Result<StreamSocket>> StreamSocket::connect(Address address, ConnectOptions options,
                                                 std::stop_token stop) {
  auto socket = open_socket(address.domain(), SOCK_STREAM);
  if (!socket) co_return fail(socket.error());
  const detail::ConnectPrep prep{&address, socket->fd()};
  IoResult result;
  if (options.timeout.count() > 0) {
    result = co_await io(prep).with_timeout(options.timeout).with_stop(stop);
  } else {
    result = co_await io(prep).with_stop(stop);
  }
  if (!result) co_return fail(result.error());
  co_return StreamSocket(std::move(*socket));
}

Result<std::pair<StreamSocket, StreamSocket>> StreamSocket::pair() noexcept {
  int fds[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return fail(std::error_code(errno, std::system_category()));
  }
  return std::pair<StreamSocket, StreamSocket>(StreamSocket(fds[0]), StreamSocket(fds[1]));
}

}  // namespace coring::net
