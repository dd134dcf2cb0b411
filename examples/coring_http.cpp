// coring-http: an HTTP/1.1 server on coring::http. GET / answers "Hello, World!" (the
// benchmark's request); with --root DIR, every other path is a file below DIR.
//
//   coring-http --port P [--host H] [--threads N] [--idle-timeout-ms MS] [--root DIR]
//
// Everything else — keep-alive, pipelining, limits (431, 413, 408), timeouts, the drain
// on SIGINT/SIGTERM — is http::Server's (net/http/include/coring/http/server.hpp).
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "server.hpp"
#include <coring/http/router.hpp>
#include <coring/http/server.hpp>
#include <coring/http/static_files.hpp>

namespace {

constexpr char usage[] =
    "usage: coring-http --port P [--host H] [--threads N] [--idle-timeout-ms MS] [--root DIR]\n"
    "  --port P              TCP port to listen on (0: any free port, printed at start)\n"
    "  --host H              address to listen on (default 127.0.0.1)\n"
    "  --threads N           event loops, one per thread, sharing the port (default 1)\n"
    "  --idle-timeout-ms MS  close connections idle this long (default 30000)\n"
    "  --root DIR            serve the files below DIR (GET / stays Hello, World!)\n";

coring::Task<coring::http::Response> hello(coring::http::Request&) {
  co_return coring::http::Response::text(200, "Hello, World!");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace coring;
  // --root takes a path, which the examples' integer options do not: it is taken out of
  // the command line first.
  std::string root;
  std::vector<char*> words;
  for (int i = 0; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--root") {
      if (i + 1 == argc) {
        std::fprintf(stderr, "--root wants a value\n%s", usage);
        return 2;
      }
      root = argv[++i];
      continue;
    }
    words.push_back(argv[i]);
  }
  const examples::CommandLine line =
      examples::parse_command_line(static_cast<int>(words.size()), words.data(), usage,
                                   {{"--idle-timeout-ms", 1, 86'400'000, 30'000}});
  try {
    http::ServerOptions options;
    options.address = examples::resolve(line.host, line.port);
    options.threads = line.threads;
    options.idle_timeout = std::chrono::milliseconds(line.extra[0]);
    http::Router router;
    router.get("/", &hello);
    // Every other path: a file below the root (StaticFiles answers 405 for methods other
    // than GET and HEAD, and 404 for what is not a regular file there).
    // Found files stay open for a second, as nginx's open_file_cache keeps them.
    if (!root.empty()) {
      router.prefix("", "/", http::StaticFiles(root, {.open_file_cache_ms = 1000}));
    }
    http::Server server(options, std::move(router));
    // Printed once every loop serves: a client that waits for the line finds the port open.
    return server.run([&] {
      std::printf("coring-http: listening on %s port %u with %zu thread(s)%s%s\n",
                  line.host.c_str(), server.port(), line.threads, root.empty() ? "" : ", serving ",
                  root.c_str());
      std::fflush(stdout);
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coring-http: %s\n", e.what());
    return 1;
  }
}
