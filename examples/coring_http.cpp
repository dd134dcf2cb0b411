// coring-http: an HTTP/1.1 server on coring::http. GET / answers "Hello, World!" (the
// benchmark's request); with --root DIR, every other path is a file below DIR.
//
//   coring-http --port P [--host H] [--threads N] [--idle-timeout-ms MS] [--root DIR]
//               [--tls-cert FILE --tls-key FILE]
//
// With a certificate and its key it serves HTTPS (TLS 1.2 and 1.3, ALPN http/1.1).
// Everything else — keep-alive, pipelining, limits (431, 413, 408), timeouts, the drain
// on SIGINT/SIGTERM — is http::Server's (net/http/include/coring/http/server.hpp).
#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server.hpp"
#include <coring/http/router.hpp>
#include <coring/http/server.hpp>
#include <coring/http/static_files.hpp>
#ifdef CORING_EXAMPLES_TLS
#include <coring/net/tls.hpp>
#endif

namespace {

constexpr char usage[] =
    "usage: coring-http --port P [--host H] [--threads N] [--idle-timeout-ms MS] [--root DIR]\n"
    "                   [--tls-cert FILE --tls-key FILE]\n"
    "  --port P              TCP port to listen on (0: any free port, printed at start)\n"
    "  --host H              address to listen on (default 127.0.0.1)\n"
    "  --threads N           event loops, one per thread, sharing the port (default 1)\n"
    "  --idle-timeout-ms MS  close connections idle this long (default 30000)\n"
    "  --root DIR            serve the files below DIR (GET / stays Hello, World!)\n"
    "  --tls-cert FILE       serve HTTPS with this certificate chain (PEM); needs --tls-key\n"
    "  --tls-key FILE        the certificate's private key (PEM)\n";

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
  const examples::CommandLine line = examples::parse_command_line(
      static_cast<int>(words.size()), words.data(), usage,
      {{"--idle-timeout-ms", 1, 86'400'000, 30'000}}, {"--tls-cert", "--tls-key"});
  const std::string& cert = line.text[0];
  const std::string& key = line.text[1];
  if (cert.empty() != key.empty()) {
    std::fprintf(stderr, "--tls-cert and --tls-key go together\n%s", usage);
    return 2;
  }
  try {
    http::ServerOptions options;
    options.address = examples::resolve(line.host, line.port);
    options.threads = line.threads;
    options.idle_timeout = std::chrono::milliseconds(line.extra[0]);
#ifdef CORING_EXAMPLES_TLS
    std::optional<net::TlsContext> tls;
    if (!cert.empty()) {
      auto context = net::TlsContext::server(
          {.certificate_chain_file = cert, .private_key_file = key, .alpn = {"http/1.1"}});
      if (!context) {
        std::fprintf(stderr, "coring-http: %s\n", context.message().c_str());
        return 1;
      }
      tls = std::move(*context);
      options.tls = &*tls;
    }
#else
    if (!cert.empty()) {
      std::fprintf(stderr, "coring-http: built without TLS (CORING_BUILD_TLS=OFF)\n");
      return 1;
    }
#endif
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
      std::printf("coring-http: listening on %s port %u with %zu thread(s)%s%s%s\n",
                  line.host.c_str(), server.port(), line.threads, root.empty() ? "" : ", serving ",
                  root.c_str(), cert.empty() ? "" : ", HTTPS");
      std::fflush(stdout);
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coring-http: %s\n", e.what());
    return 1;
  }
}
