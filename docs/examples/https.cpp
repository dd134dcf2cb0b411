// docs/http.md, "HTTPS" and "HTTPS client": an HTTPS server and a client of it.
//
//   docs-https CERT KEY PORT   serves GET / over HTTPS on 127.0.0.1:PORT until Ctrl-C
//   docs-https --self-test     makes a self-signed certificate for localhost with the
//                              openssl CLI, serves on a free port and GETs / through it
//                              as a client that trusts that certificate alone
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>

#include <coring/http/client.hpp>
#include <coring/http/router.hpp>
#include <coring/http/server.hpp>
#include <coring/net/tls.hpp>
#include <coring/runtime/event_loop.hpp>

using namespace coring;
using namespace std::chrono_literals;

Task<http::Response> hello(http::Request&) {
  co_return http::Response::text(200, "Hello over TLS!");
}

// The server's context: a certificate chain and its key, ALPN http/1.1.
Result<net::TlsContext, net::TlsError> server_context(std::string chain, std::string key) {
  net::TlsServerConfig config;
  config.certificate_chain_file = std::move(chain);
  config.private_key_file = std::move(key);
  config.alpn = {"http/1.1"};
  return net::TlsContext::server(config);
}

// --self-test's client: GET / with a context that trusts `trusted` only.
Task<std::string> fetch(std::uint16_t port, const net::TlsContext& trusted) {
  http::ClientOptions options;
  options.request_timeout = 10s;
  options.tls = &trusted;  // the client keeps a copy
  http::Client client(options);
  Result<http::ClientResponse> page =
      co_await client.get("https://localhost:" + std::to_string(port) + "/");
  co_await client.shutdown_idle();                  // close_notify on the kept connection
  if (!page) co_return "error: " + page.message();  // hostname mismatch, unknown ca, ...
  co_return page->body;
}

int main(int argc, char** argv) {
  const std::string_view arg = argc > 1 ? argv[1] : "";
  if (argc == 4) {
    Result<net::TlsContext, net::TlsError> tls = server_context(argv[1], argv[2]);
    if (!tls) {
      std::fprintf(stderr, "%s\n", tls.message().c_str());  // the file and OpenSSL's reason
      return 1;
    }
    http::ServerOptions options;
    options.address = net::Address::ipv4_loopback(static_cast<std::uint16_t>(std::atoi(argv[3])));
    options.tls = &*tls;  // the server keeps a copy
    http::Router router;
    router.get("/", &hello);
    http::Server server(options, std::move(router));
    return server.run();  // until SIGINT or SIGTERM
  }
  if (arg != "--self-test") {
    std::fprintf(stderr, "usage: docs-https CERT KEY PORT | --self-test\n");
    return 2;
  }

  // A self-signed certificate for localhost, which the client trusts as its only anchor.
  char dir_template[] = "/tmp/coring-docs-https.XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) return 1;
  const std::filesystem::path dir = dir_template;
  const std::string cert = (dir / "cert.pem").string();
  const std::string key = (dir / "key.pem").string();
  const std::string make =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
      "-subj /CN=localhost -addext subjectAltName=DNS:localhost -days 2 "
      "-keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  if (std::system(make.c_str()) != 0) {
    std::fprintf(stderr, "the openssl CLI is missing or failed (apt-get install openssl)\n");
    std::filesystem::remove_all(dir);
    return 77;
  }
  Result<net::TlsContext, net::TlsError> tls = server_context(cert, key);
  Result<net::TlsContext, net::TlsError> trusted = net::TlsContext::client({.ca_file = cert});
  std::filesystem::remove_all(dir);  // the contexts have read the files
  if (!tls || !trusted) {
    std::fprintf(stderr, "%s%s\n", tls.message().c_str(), trusted.message().c_str());
    return 1;
  }

  http::ServerOptions options;
  options.handle_signals = false;
  options.tls = &*tls;
  http::Router router;
  router.get("/", &hello);
  http::Server server(options, std::move(router));
  std::thread serving([&server] { server.run(); });
  EventLoop loop;
  const std::string body = loop.run(fetch(server.port(), *trusted));
  server.stop();
  serving.join();
  std::printf("%s\n", body.c_str());
  return body == "Hello over TLS!" ? 0 : 1;
}
