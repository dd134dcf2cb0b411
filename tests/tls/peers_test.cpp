// coring::tls against real peers, run as child processes: `openssl s_client` and python's
// ssl module talk to a TlsStream server of this process, and a TlsStream client talks to
// `openssl s_server`. TLS 1.3 and 1.2, ALPN, the certificate checks on both ends.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "coring/net/listener.hpp"
#include "coring/net/reader.hpp"
#include "coring/net/stream.hpp"
#include "coring/net/tls.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/scope.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "programs.hpp"
#include "support.hpp"
#include "test_pki.hpp"

namespace coring::net {
namespace {

using namespace std::chrono_literals;

using test::Ran;

Ran run(const std::string& command) { return test::run_command(command); }

// One connection of the echo server: the handshake, one line back, close_notify.
Task<void> echo_line(TcpStream conn, const TlsContext& context, std::string* alpn) {
  Result<TlsStream> made = TlsStream::server(conn, context);
  if (made) {
    TlsStream& tls = *made;
    if (const auto hs = co_await tls.handshake({.timeout = 10s}); hs) {
      *alpn = std::string(tls.alpn());
      std::string line;
      std::array<std::byte, 256> buffer{};
      while (line.find('\n') == std::string::npos) {
        const Result<std::size_t> got = co_await tls.recv(buffer);
        if (!got || *got == 0) break;
        line.append(reinterpret_cast<const char*>(buffer.data()), *got);
      }
      (void)co_await tls.send_all(std::as_bytes(std::span(line.data(), line.size())));
      (void)co_await tls.shutdown();
    } else {
      ADD_FAILURE() << "server handshake: " << hs.message();
    }
  }
  co_await conn.close();
}

// A TLS echo server on its own thread and loop, for `connections` connections.
class EchoServer {
 public:
  EchoServer(TlsContext context, int connections) : context_(std::move(context)) {
    std::promise<std::uint16_t> bound;
    std::future<std::uint16_t> port = bound.get_future();
    thread_ = std::thread([this, connections, &bound] {
      EventLoop loop;
      TcpListener listener = TcpListener::bind(Address::ipv4_loopback()).value();
      bound.set_value(listener.local_address().value().port());
      loop.run(serve(listener, connections));
    });
    port_ = port.get();
  }
  ~EchoServer() { thread_.join(); }
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] const std::string& alpn() const { return alpn_; }

 private:
  Task<void> serve(TcpListener& listener, int connections) {
    TaskScope scope;
    for (int i = 0; i < connections; ++i) {
      Result<TcpStream> conn = co_await listener.accept();
      if (!conn) break;
      scope.spawn(echo_line(std::move(*conn), context_, &alpn_));
    }
    co_await scope.join();
    co_await listener.close();
  }

  TlsContext context_;
  std::uint16_t port_ = 0;
  std::string alpn_;
  std::thread thread_;
};

class TlsPeers : public test::PkiSuite {
 protected:
  static TlsContext server_context(std::vector<std::string> alpn = {}) {
    TlsServerConfig config;
    config.certificate_chain_file = pki_->server_chain;
    config.private_key_file = pki_->server_key;
    config.alpn = std::move(alpn);
    return TlsContext::server(config).value();
  }
};

TEST_F(TlsPeers, OpensslClientOverTls13And12) {
  REQUIRE_PROGRAM("openssl", "openssl");
  for (const char* version : {"-tls1_3", "-tls1_2"}) {
    EchoServer server(server_context({"http/1.1"}), 1);
    const Ran ran = run("printf 'hello over " + std::string(version) +
                        "\\n' | timeout 20 openssl s_client -brief -ign_eof " + version +
                        " -connect 127.0.0.1:" + std::to_string(server.port()) + " -CAfile " +
                        pki_->ca_cert.string() +
                        " -verify_hostname localhost -verify_return_error -alpn http/1.1");
    EXPECT_EQ(ran.status, 0) << ran.output;
    EXPECT_NE(ran.output.find("hello over " + std::string(version)), std::string::npos)
        << ran.output;
    EXPECT_NE(ran.output.find("Verification: OK"), std::string::npos) << ran.output;
    const std::string protocol = version == std::string("-tls1_3") ? "TLSv1.3" : "TLSv1.2";
    EXPECT_NE(ran.output.find("Protocol version: " + protocol), std::string::npos) << ran.output;
    EXPECT_EQ(server.alpn(), "http/1.1");
  }
}

TEST_F(TlsPeers, OpensslAndPythonClientsGetTheCertificateOfTheNameTheySend) {
  REQUIRE_PROGRAM("openssl", "openssl");
  REQUIRE_PROGRAM("python3", "python3");
  TlsServerConfig config;
  config.certificate_chain_file = pki_->server_chain;
  config.private_key_file = pki_->server_key;
  config.sni_certificates = {{pki_->alt_chain, pki_->alt_key}};  // DNS:other.localhost
  const TlsContext context = TlsContext::server(config).value();
  // openssl s_client: SNI other.localhost gets the other certificate, which verifies for
  // that name; SNI localhost the main one.
  for (const char* name : {"other.localhost", "localhost"}) {
    EchoServer server(context, 1);
    const Ran ran =
        run("printf 'sni\n' | timeout 20 openssl s_client -ign_eof -connect 127.0.0.1:" +
            std::to_string(server.port()) + " -servername " + name + " -CAfile " +
            pki_->ca_cert.string() + " -verify_hostname " + name + " -verify_return_error");
    EXPECT_EQ(ran.status, 0) << ran.output;
    const std::string subject = std::string("subject=CN = ") + name;
    EXPECT_NE(ran.output.find(subject), std::string::npos) << name << "\n" << ran.output;
    EXPECT_NE(ran.output.find("Verify return code: 0 (ok)"), std::string::npos) << ran.output;
  }
  // python's ssl module, which checks the name itself.
  EchoServer server(context, 1);
  const std::string script =
      "import socket, ssl, sys\n"
      "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
      "raw = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
      "tls = ctx.wrap_socket(raw, server_hostname='other.localhost')\n"
      "tls.sendall(b'python sni\\n')\n"
      "print(tls.getpeercert()['subject'][0][0][1], tls.recv(100).decode().strip())\n";
  const std::string path = dir_->file("sni.py");
  std::ofstream(path) << script;
  const Ran ran = run("timeout 20 python3 " + path + " " + std::to_string(server.port()) + " " +
                      pki_->ca_cert.string());
  EXPECT_EQ(ran.status, 0) << ran.output;
  EXPECT_EQ(ran.output, "other.localhost python sni\n");
}

TEST_F(TlsPeers, OpensslClientResumesItsSession) {
  REQUIRE_PROGRAM("openssl", "openssl");
  EchoServer server(server_context(), 2);
  const std::string session = dir_->file("session.pem");
  const std::string connect =
      "printf 'again\\n' | timeout 20 openssl s_client -ign_eof -connect 127.0.0.1:" +
      std::to_string(server.port()) + " -CAfile " + pki_->ca_cert.string() +
      " -verify_hostname localhost ";
  const Ran first = run(connect + "-sess_out " + session);
  EXPECT_EQ(first.status, 0) << first.output;
  EXPECT_NE(first.output.find("New, TLSv1.3"), std::string::npos) << first.output;
  const Ran second = run(connect + "-sess_in " + session);
  EXPECT_EQ(second.status, 0) << second.output;
  EXPECT_NE(second.output.find("Reused, TLSv1.3"), std::string::npos) << second.output;
  EXPECT_NE(second.output.find("again"), std::string::npos) << second.output;
}

TEST_F(TlsPeers, PythonSslClient) {
  REQUIRE_PROGRAM("python3", "python3");
  EchoServer server(server_context(), 2);
  const std::string script =
      "import socket, ssl, sys\n"
      "for top in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):\n"
      "    ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
      "    ctx.maximum_version = top\n"
      "    with socket.create_connection(('127.0.0.1', int(sys.argv[1]))) as raw:\n"
      "        with ctx.wrap_socket(raw, server_hostname='localhost') as tls:\n"
      "            tls.sendall(b'python says hi\\n')\n"
      "            got = b''\n"
      "            while True:\n"
      "                chunk = tls.recv(100)\n"
      "                if not chunk: break\n"
      "                got += chunk\n"
      "            print(tls.version(), got.decode().strip())\n";
  const std::string path = dir_->file("client.py");
  std::ofstream(path) << script;
  const Ran ran = run("timeout 20 python3 " + path + " " + std::to_string(server.port()) + " " +
                      pki_->ca_cert.string());
  EXPECT_EQ(ran.status, 0) << ran.output;
  EXPECT_NE(ran.output.find("TLSv1.3 python says hi"), std::string::npos) << ran.output;
  EXPECT_NE(ran.output.find("TLSv1.2 python says hi"), std::string::npos) << ran.output;
}

TEST_F(TlsPeers, OurClientAgainstOpensslServer) {
  REQUIRE_PROGRAM("openssl", "openssl");
  test::ServerProgram peer("exec timeout 30 openssl s_server -rev -accept 127.0.0.1:0 -cert " +
                               pki_->server_chain.string() + " -key " + pki_->server_key.string() +
                               " -alpn coring/1 2>&1",
                           "ACCEPT 127.0.0.1:");
  const std::optional<std::uint16_t> port = peer.port();
  ASSERT_TRUE(port) << "openssl s_server named no port: " << peer.output();
  TlsClientConfig config;
  config.ca_file = pki_->ca_cert;
  config.alpn = {"coring/1"};
  const TlsContext context = TlsContext::client(config).value();
  EventLoop loop;
  const std::string reply = loop.run([&]() -> Task<std::string> {
    Result<TcpStream> conn =
        co_await TcpStream::connect(Address::parse("127.0.0.1:" + std::to_string(*port)).value());
    EXPECT_TRUE(conn) << conn.message();
    if (!conn) co_return std::string();
    std::string got;
    {
      TlsStream tls = TlsStream::client(*conn, context, "localhost").value();
      const auto hs = co_await tls.handshake({.timeout = 10s});
      EXPECT_TRUE(hs) << hs.message();
      EXPECT_EQ(tls.alpn(), "coring/1");
      EXPECT_EQ(tls.version(), TlsVersion::tls1_3);
      const std::string line = "coring over openssl\n";
      EXPECT_TRUE((co_await tls.send_all(std::as_bytes(std::span(line.data(), line.size())))).ok());
      std::array<std::byte, 256> buffer{};
      while (hs && got.find('\n') == std::string::npos) {
        const Result<std::size_t> n = co_await tls.recv(buffer);
        if (!n || *n == 0) break;
        got.append(reinterpret_cast<const char*>(buffer.data()), *n);
      }
      (void)co_await tls.shutdown();
    }
    co_await conn->close();
    co_return got;
  }());
  EXPECT_EQ(reply, "lssnepo revo gniroc\n");
}

}  // namespace
}  // namespace coring::net
