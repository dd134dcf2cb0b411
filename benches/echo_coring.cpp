// The coring side of `coring-bench echo`: coring-echo's own code (examples/server.hpp and
// echo_server.hpp) on one loop, listening on a kernel-chosen port of 127.0.0.1 — as
// coring-echo runs it (multishot receive into the loop's pool), and with a recv per
// message (a diagnostic row).
#include <exception>

#include "child_process.hpp"
#include "echo.hpp"
#include "echo_server.hpp"
#include "server.hpp"

namespace coring::bench {

namespace {

int serve(int ready_fd, bool with_pool) {
  examples::ServerOptions options;
  options.address = net::Address::ipv4_loopback(0);
  options.threads = 1;
  if (with_pool) options.receive_pool = examples::default_receive_pool();
  examples::Server server(options, &examples::serve_echo);
  report_listening(ready_fd, server.port());
  return server.run();
}

}  // namespace

int serve_coring_echo(int ready_fd) { return serve(ready_fd, true); }

int serve_coring_echo_recv(int ready_fd) { return serve(ready_fd, false); }

}  // namespace coring::bench
