// The echo handler: a recv, then a send of what it brought, one at a time.
//
// One send almost always takes everything (the socket's send buffer has room for what
// one recv brought); send_all() is only for the rest when it did not.
#include "echo_server.hpp"

#include <array>
#include <cstddef>
#include <span>

namespace coring::examples {

Task<void> serve_echo(net::TcpStream stream, Connection& /*conn*/) {
  std::array<std::byte, 4096> buffer;
  for (;;) {
    const IoResult got = co_await stream.recv(buffer);
    if (got.res <= 0) co_return;  // end of stream, an error, or the server's shutdown
    const auto data = std::span(buffer).first(got.value());
    const IoResult put = co_await stream.send(data);
    if (put.res == got.res) continue;
    if (put.res < 0) co_return;
    const net::TransferResult rest = co_await stream.send_all(data.subspan(put.value()));
    if (!rest) co_return;
  }
}

}  // namespace coring::examples
