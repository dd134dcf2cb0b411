// docs/tls.md: a TLS echo server and a TLS client on coring::tls.
//
//   docs-tls_echo --self-test   makes a CA and a certificate for localhost with the openssl
//                               CLI in a temporary directory, serves on a free port, and
//                               sends a message through it as a verifying client
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include <coring/net/listener.hpp>
#include <coring/net/tls.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/when_all.hpp>

using namespace coring;
using namespace std::chrono_literals;

// The server side of one connection: handshake, echo until the peer's close_notify.
Task<void> serve(net::TcpStream conn, const net::TlsContext& context) {
  Result<net::TlsStream> tls = net::TlsStream::server(conn, context);
  if (tls) {
    if (Result<void> hs = co_await tls->handshake({.timeout = 10s}); !hs) {
      std::fprintf(stderr, "handshake: %s\n", hs.message().c_str());  // unknown ca, ...
    } else {
      std::array<std::byte, 16384> buffer;
      for (;;) {
        Result<std::size_t> got = co_await tls->recv(buffer);
        if (!got || *got == 0) break;  // an error (truncated, reset), or the clean end
        if (!(co_await tls->send_all(std::span(buffer).first(*got))).ok()) break;
      }
      (void)co_await tls->shutdown();  // close_notify
    }
  }
  co_await conn.close();
}

// The client: connects, checks the server's certificate names "localhost", sends `text`
// and reads the echo.
Task<std::string> ask(net::Address server, const net::TlsContext& context, std::string text) {
  Result<net::TcpStream> conn = co_await net::TcpStream::connect(server);
  if (!conn) co_return "connect: " + conn.message();
  std::string reply(text.size(), '\0');
  {
    Result<net::TlsStream> tls = net::TlsStream::client(*conn, context, "localhost");
    if (!tls) co_return "client: " + tls.message();
    if (Result<void> hs = co_await tls->handshake({.timeout = 10s}); !hs) {
      co_return "handshake: " + hs.message();  // certificate has expired, hostname mismatch, ...
    }
    (void)co_await tls->send_all(std::as_bytes(std::span(text)));
    net::TransferResult got = co_await tls->recv_exact(std::as_writable_bytes(std::span(reply)));
    if (!got.ok()) reply = "recv: " + got.message();
    (void)co_await tls->shutdown();
  }
  co_await conn->close();
  co_return reply;
}

Task<void> accept_one(net::TcpListener& listener, const net::TlsContext& context) {
  Result<net::TcpStream> conn = co_await listener.accept();
  if (conn) co_await serve(std::move(*conn), context);
  co_await listener.close();
}

int main(int argc, char** argv) {
  if (argc != 2 || std::string_view(argv[1]) != "--self-test") {
    std::fprintf(stderr, "usage: docs-tls_echo --self-test\n");
    return 2;
  }
  // A CA and a certificate it signs for localhost, made with the openssl CLI.
  char dir_template[] = "/tmp/coring-docs-tls.XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) return 1;
  const std::filesystem::path dir = dir_template;
  const std::string d = dir.string();
  const std::string make =
      "cd " + d +
      " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
      "-subj /CN=docs-ca -keyout ca.key -out ca.pem -days 2 && "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost "
      "-keyout key.pem -out req.pem && "
      "openssl x509 -req -in req.pem -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile <(printf 'subjectAltName=DNS:localhost') -out cert.pem";
  if (std::system(("bash -c \"" + make + "\" >/dev/null 2>&1").c_str()) != 0) {
    std::fprintf(stderr, "the openssl CLI is missing or failed (apt-get install openssl)\n");
    std::filesystem::remove_all(dir);
    return 77;
  }

  Result<net::TlsContext, net::TlsError> server_context = net::TlsContext::server(
      {.certificate_chain_file = d + "/cert.pem", .private_key_file = d + "/key.pem"});
  Result<net::TlsContext, net::TlsError> client_context =
      net::TlsContext::client({.ca_file = d + "/ca.pem"});
  std::filesystem::remove_all(dir);
  if (!server_context || !client_context) {
    std::fprintf(stderr, "%s%s\n", server_context.message().c_str(),
                 client_context.message().c_str());  // names the file and the reason
    return 1;
  }

  EventLoop loop;
  auto listener = net::TcpListener::bind(net::Address::ipv4_loopback());
  if (!listener) return 1;
  const net::Address address = listener->local_address().value();
  auto [served, reply] = loop.run(when_all(accept_one(*listener, *server_context),
                                           ask(address, *client_context, "hello, tls")));
  (void)served;
  std::printf("%s\n", reply.c_str());
  return reply == "hello, tls" ? 0 : 1;
}
