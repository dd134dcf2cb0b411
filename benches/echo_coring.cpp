// The coring side of `coring-bench echo`: coring-echo's own code (examples/server.hpp and
// echo_server.hpp) on one loop, listening on a kernel-chosen port of 127.0.0.1.
#include <exception>

#include "child_process.hpp"
#include "echo.hpp"
#include "echo_server.hpp"
#include "server.hpp"

namespace coring::bench {

int serve_coring_echo(int ready_fd) {
  examples::ServerOptions options;
  options.address = net::Address::ipv4_loopback(0);
  options.threads = 1;
  examples::Server server(options, &examples::serve_echo);
  report_listening(ready_fd, server.port());
  return server.run();
}

}  // namespace coring::bench
