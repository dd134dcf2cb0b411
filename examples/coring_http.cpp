// coring-http: an HTTP/1.1 server answering GET / with "Hello, World!".
//
//   coring-http --port P [--host H] [--threads N] [--idle-timeout-ms MS]
//
// Keep-alive and pipelining; HTTP/1.0 and `Connection: close` honoured; requests parsed
// by http_parser; 404 for other paths, 400 (and close) for a malformed request, 431 (and
// close) for a header section over 8 KiB; connections idle for --idle-timeout-ms
// (default 30000) are closed. Threads and shutdown as coring-echo's (server.hpp).
#include <chrono>
#include <cstdio>
#include <exception>

#include "http_server.hpp"
#include "server.hpp"

namespace {

constexpr char usage[] =
    "usage: coring-http --port P [--host H] [--threads N] [--idle-timeout-ms MS]\n"
    "  --port P              TCP port to listen on (0: any free port, printed at start)\n"
    "  --host H              address to listen on (default 127.0.0.1)\n"
    "  --threads N           event loops, one per thread, sharing the port (default 1)\n"
    "  --idle-timeout-ms MS  close connections idle this long (default 30000)\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace coring::examples;
  const CommandLine line =
      parse_command_line(argc, argv, usage, {{"--idle-timeout-ms", 1, 86'400'000, 30'000}});
  try {
    ServerOptions options;
    options.address = resolve(line.host, line.port);
    options.threads = line.threads;
    options.idle_timeout = std::chrono::milliseconds(line.extra[0]);
    options.receive_pool = default_receive_pool();
    Server server(options, &serve_http);
    // Printed once every loop serves: a client that waits for the line finds the port open.
    return server.run([&] {
      std::printf("coring-http: listening on %s port %u with %zu thread(s)\n", line.host.c_str(),
                  server.port(), line.threads);
      std::fflush(stdout);
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coring-http: %s\n", e.what());
    return 1;
  }
}
