// coring-echo: a TCP echo server.
//
//   coring-echo --port P [--host H] [--threads N]
//
// One loop by default; with --threads N, N loops on N threads, each with its own
// listener on the port (SO_REUSEPORT), the kernel spreading connections over them.
// SIGINT or SIGTERM shut it down cleanly: the listeners close, every connection is shut
// down and its task ends, and the program exits with status 0.
#include <cstdio>
#include <exception>

#include "echo_server.hpp"
#include "server.hpp"

namespace {

constexpr char usage[] =
    "usage: coring-echo --port P [--host H] [--threads N]\n"
    "  --port P     TCP port to listen on (0: any free port, printed at start)\n"
    "  --host H     address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)\n"
    "  --threads N  event loops, one per thread, sharing the port (default 1)\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace coring::examples;
  const CommandLine line = parse_command_line(argc, argv, usage);
  try {
    ServerOptions options;
    options.address = resolve(line.host, line.port);
    options.threads = line.threads;
    options.receive_pool = default_receive_pool();
    Server server(options, &serve_echo);
    // Printed once every loop serves: a client that waits for the line finds the port open.
    return server.run([&] {
      std::printf("coring-echo: listening on %s port %u with %zu thread(s)\n", line.host.c_str(),
                  server.port(), line.threads);
      std::fflush(stdout);
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coring-echo: %s\n", e.what());
    return 1;
  }
}
