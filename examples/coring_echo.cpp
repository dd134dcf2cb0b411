// coring-echo: a TCP echo server, over TLS when given a certificate and its key.
//
//   coring-echo --port P [--host H] [--threads N] [--tls-cert FILE --tls-key FILE]
//
// One loop by default; with --threads N, N loops on N threads, each with its own
// listener on the port (SO_REUSEPORT), the kernel spreading connections over them.
// SIGINT or SIGTERM shut it down cleanly: the listeners close, every connection is shut
// down and its task ends, and the program exits with status 0.
#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>

#include "echo_server.hpp"
#include "server.hpp"
#ifdef CORING_EXAMPLES_TLS
#include <coring/net/tls.hpp>
#endif

namespace {

constexpr char usage[] =
    "usage: coring-echo --port P [--host H] [--threads N] [--tls-cert FILE --tls-key FILE]\n"
    "  --port P         TCP port to listen on (0: any free port, printed at start)\n"
    "  --host H         address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)\n"
    "  --threads N      event loops, one per thread, sharing the port (default 1)\n"
    "  --tls-cert FILE  serve TLS with this certificate chain (PEM); needs --tls-key\n"
    "  --tls-key FILE   the certificate's private key (PEM)\n";

#ifdef CORING_EXAMPLES_TLS
using namespace std::chrono_literals;

// The TLS echo: the handshake (10 s at most), then every byte back until the peer's end
// of stream, then close_notify. A failed handshake just ends the connection.
coring::Task<void> echo_tls(const coring::net::TcpStream& stream,
                            const coring::net::TlsContext& context) {
  auto made = coring::net::TlsStream::server(stream, context);
  if (!made) co_return;
  coring::net::TlsStream& tls = *made;
  if (!co_await tls.handshake({.timeout = 10s})) co_return;
  std::array<std::byte, 16384> buffer;
  for (;;) {
    const coring::Result<std::size_t> got = co_await tls.recv(buffer);
    if (!got || *got == 0) break;
    const coring::net::TransferResult sent = co_await tls.send_all(std::span(buffer).first(*got));
    if (!sent.ok()) co_return;
  }
  (void)co_await tls.shutdown();
}
#endif

}  // namespace

int main(int argc, char** argv) {
  using namespace coring::examples;
  const CommandLine line = parse_command_line(argc, argv, usage, {}, {"--tls-cert", "--tls-key"});
  const std::string& cert = line.text[0];
  const std::string& key = line.text[1];
  if (cert.empty() != key.empty()) {
    std::fprintf(stderr, "--tls-cert and --tls-key go together\n%s", usage);
    return 2;
  }
  try {
    ServerOptions options;
    options.address = resolve(line.host, line.port);
    options.threads = line.threads;
    ConnectionHandler handler = &serve_echo;
    if (!cert.empty()) {
#ifdef CORING_EXAMPLES_TLS
      auto context = coring::net::TlsContext::server(
          {.certificate_chain_file = cert, .private_key_file = key, .alpn = {}});
      if (!context) {
        std::fprintf(stderr, "coring-echo: %s\n", context.message().c_str());
        return 1;
      }
      handler = [context = *context](const coring::net::TcpStream& stream, Connection&) {
        return echo_tls(stream, context);
      };
#else
      std::fprintf(stderr, "coring-echo: built without TLS (CORING_BUILD_TLS=OFF)\n");
      return 1;
#endif
    } else {
      options.receive_pool = default_receive_pool();
    }
    Server server(options, std::move(handler));
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
