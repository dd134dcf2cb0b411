// coring::http's server over TLS (ServerOptions::tls) against real clients: curl and
// python's http.client download, upload, keep their connection alive and ask for ranges
// over HTTPS; plain HTTP and a silent client on the HTTPS port cost the server nothing
// but their connection.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "coring/fs/file.hpp"
#include "coring/http/server.hpp"
#include "coring/http/static_files.hpp"
#include "coring/net/stream.hpp"
#include "coring/net/tls.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/time.hpp"
#include "programs.hpp"
#include "support.hpp"
#include "test_pki.hpp"

namespace coring::http {
namespace {

namespace stdfs = std::filesystem;
using namespace std::chrono_literals;
using test::run_command;

std::string read_file(const stdfs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Task<Response> hello(Request&) { co_return Response::text(200, "Hello, World!"); }

using ring::test::heap_in_use;

Task<Response> echo_body(Request& request) {
  Result<std::string> body = co_await request.body().read_all(16 << 20);
  if (!body) co_return Response::text(400, body.message());
  co_return Response::text(200, std::move(*body), "application/octet-stream");
}

class Https : public test::PkiSuite {
 protected:
  void SetUp() override {
    std::string bytes;
    for (std::size_t i = 0; i < (3u << 20) + 7; ++i) {
      bytes.push_back(static_cast<char>((i * 2654435761u) >> 13));
    }
    big_ = dir_->file("big.bin");
    std::ofstream(big_, std::ios::binary) << bytes;
    big_bytes_ = bytes;

    net::TlsServerConfig config;
    config.certificate_chain_file = pki_->server_chain;
    config.private_key_file = pki_->server_key;
    config.alpn = {"http/1.1"};
    const net::TlsContext context = net::TlsContext::server(config).value();

    Router router;
    router.get("/", &hello);
    router.post("/echo", &echo_body);
    router.get("/slow-big", [this](Request&) -> Task<Response> {
      co_await sleep_for(200ms);
      co_return Response::text(200, big_bytes_, "application/octet-stream");
    });
    router.prefix("GET", "/files/", StaticFiles(dir_->path()).mount("/files/"));
    ServerOptions options;
    options.handle_signals = false;
    options.header_timeout = 500ms;
    options.limits.max_body_bytes = 16 << 20;
    options.tls = &context;  // copied: the context may go
    server_ = std::make_unique<Server>(options, std::move(router));
    thread_ = std::thread([this] { status_ = server_->run(); });
    base_ = "https://localhost:" + std::to_string(server_->port());
    curl_ = "curl -sS --cacert " + pki_->ca_cert.string() + " ";
  }
  void TearDown() override {
    server_->stop();
    thread_.join();
    EXPECT_EQ(status_, 0);
  }

  std::string big_;
  std::string big_bytes_;
  std::string base_;
  std::string curl_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int status_ = -1;
};

TEST_F(Https, CurlGetsHelloAndAFileOnOneConnection) {
  REQUIRE_PROGRAM("curl", "curl");
  const std::string got = dir_->file("got.bin");
  const test::Ran curl = run_command(curl_ + "-v -o /dev/null " + base_ + "/ -o " + got + " " +
                                     base_ + "/files/big.bin");
  ASSERT_EQ(curl.status, 0) << curl.output;
  EXPECT_NE(curl.output.find("ALPN: server accepted http/1.1"), std::string::npos) << curl.output;
  EXPECT_NE(curl.output.find("Re-using existing connection"), std::string::npos) << curl.output;
  EXPECT_TRUE(read_file(got) == big_bytes_);
  EXPECT_EQ(run_command(curl_ + base_ + "/").output, "Hello, World!");
  // TLS 1.2 too.
  EXPECT_EQ(run_command(curl_ + "--tls-max 1.2 " + base_ + "/").output, "Hello, World!");
}

TEST_F(Https, CurlRangesHeadAndUploads) {
  REQUIRE_PROGRAM("curl", "curl");
  const test::Ran range = run_command(curl_ + "-r 1000-1999 " + base_ + "/files/big.bin");
  EXPECT_EQ(range.output, big_bytes_.substr(1000, 1000));
  const test::Ran head = run_command(curl_ + "-I " + base_ + "/files/big.bin");
  EXPECT_NE(head.output.find("Content-Length: " + std::to_string(big_bytes_.size())),
            std::string::npos)
      << head.output;
  for (const char* extra : {"", "-H 'Transfer-Encoding: chunked'", "-H 'Expect: 100-continue'"}) {
    const std::string got = dir_->file("echoed.bin");
    const test::Ran up = run_command(curl_ + "--data-binary @" + big_ + " " + extra + " -o " + got +
                                     " " + base_ + "/echo");
    ASSERT_EQ(up.status, 0) << up.output;
    EXPECT_TRUE(read_file(got) == big_bytes_) << extra;
  }
}

TEST_F(Https, PythonHttpClientKeepsItsConnection) {
  REQUIRE_PROGRAM("python3", "python3");
  const std::string script =
      "import http.client, ssl, sys\n"
      "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
      "conn = http.client.HTTPSConnection('localhost', int(sys.argv[1]), context=ctx)\n"
      "for i in range(3):\n"
      "    conn.request('POST', '/echo', body=b'x' * (100000 + i))\n"
      "    r = conn.getresponse()\n"
      "    body = r.read()\n"
      "    print(r.status, len(body))\n"
      "conn.request('GET', '/')\n"
      "print(conn.getresponse().read().decode())\n";
  const std::string path = dir_->file("client.py");
  std::ofstream(path) << script;
  const test::Ran ran = run_command("timeout 20 python3 " + path + " " +
                                    std::to_string(server_->port()) + " " + pki_->ca_cert.string());
  EXPECT_EQ(ran.status, 0) << ran.output;
  EXPECT_EQ(ran.output, "200 100000\n200 100001\n200 100002\nHello, World!\n");
}

// Eight keep-alive clients each ask for "/" and stay connected; then eight more each
// download the 3 MiB file and a 3 MiB body made in memory, and stay connected too. The
// second eight cost the server no more than the first: it keeps no buffer of their
// responses (the file's steps, the TLS stream's send buffers) nor a receive buffer while
// they are idle. (RelWithDebInfo: 26.6 KB per connection after the downloads; 92 KB
// with the file's buffer kept, 158 KB with the send buffers kept. ASan and Debug add
// the same to both.)
TEST_F(Https, IdleConnectionsKeepNoBufferOfTheirLargestResponse) {
  REQUIRE_PROGRAM("python3", "python3");
  const std::string script =
      "import http.client, os, ssl, sys, time\n"
      "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
      "conns = []\n"
      "for paths, go in (((), sys.argv[3]), (('/files/big.bin', '/slow-big'), sys.argv[4])):\n"
      "    for i in range(8):\n"
      "        conn = http.client.HTTPSConnection('localhost', int(sys.argv[1]), context=ctx)\n"
      "        conn.request('GET', '/')\n"
      "        assert conn.getresponse().read() == b'Hello, World!'\n"
      "        for path in paths:\n"
      "            conn.request('GET', path)\n"
      "            r = conn.getresponse()\n"
      "            assert r.status == 200 and len(r.read()) == 3 * 2**20 + 7\n"
      "        conns.append(conn)\n"
      "    print('idle', flush=True)\n"
      "    while not os.path.exists(go): time.sleep(0.01)\n";
  const std::string path = dir_->file("idle.py");
  const std::string next = dir_->file("next");
  const std::string done = dir_->file("done");
  std::ofstream(path) << script;
  const std::size_t start = heap_in_use();
  FILE* client = ::popen(("timeout 60 python3 " + path + " " + std::to_string(server_->port()) +
                          " " + pki_->ca_cert.string() + " " + next + " " + done)
                             .c_str(),
                         "r");
  ASSERT_NE(client, nullptr);
  // The heap once the clients of a phase are idle (the server's sessions wait for their
  // next request); then the next phase goes.
  const auto idle_heap = [client](const std::string& go) {
    std::array<char, 64> line{};
    const bool idle = std::fgets(line.data(), line.size(), client) != nullptr;
    EXPECT_TRUE(idle && std::string(line.data()) == "idle\n") << line.data();
    // The least of ten looks over half a second: what a session still finishing (on a
    // slow, sanitized build) holds for a moment does not count.
    std::size_t heap = heap_in_use();
    for (int i = 0; i < 10; ++i) {
      std::this_thread::sleep_for(50ms);
      heap = std::min(heap, heap_in_use());
    }
    std::ofstream(go) << "go";
    return heap;
  };
  const std::size_t small = idle_heap(next);
  const std::size_t large = idle_heap(done);
  EXPECT_EQ(::pclose(client), 0);
  const auto per_connection = [](std::size_t from, std::size_t to) {
    return to > from ? (to - from) / 8 : 0;
  };
  const std::size_t after_small = per_connection(start, small);
  const std::size_t after_large = per_connection(small, large);
  EXPECT_LT(after_large, after_small + 24 * 1024)
      << "heap kept per idle connection: " << after_small << " bytes after a small response, "
      << after_large << " after large ones";
}

// Eight clients each ask for "/" and stay; then each asks for a 24 MiB file with a
// 4 KiB receive buffer and reads none of it, so that the server's sends stall once the
// kernel's socket buffers are full (4 MiB at most). What a stalled download holds of the
// server's heap beyond an idle connection is the file's 32 KiB step, its records on their
// way, and the request's state. (RelWithDebInfo: 86 KB per stalled download; 118 KB with
// the TLS stream keeping the last send's buffer beside the one on its way, 151 KB with
// 64 KiB steps, 217 KB with both.)
TEST_F(Https, AStalledDownloadHoldsLittleOfTheServersHeap) {
  REQUIRE_PROGRAM("python3", "python3");
  {
    std::string bytes(24u << 20, '\0');
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      bytes[i] = static_cast<char>((i * 2654435761u) >> 11);
    }
    std::ofstream(dir_->file("huge.bin"), std::ios::binary) << bytes;
  }
  const std::string script =
      "import os, socket, ssl, sys, time\n"
      "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
      "conns = []\n"
      "for i in range(8):\n"
      "    raw = socket.socket()\n"
      "    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)\n"
      "    raw.connect(('127.0.0.1', int(sys.argv[1])))\n"
      "    tls = ctx.wrap_socket(raw, server_hostname='localhost')\n"
      "    tls.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n"
      "    got = b''\n"
      "    while not got.endswith(b'Hello, World!'): got += tls.recv(4096)\n"
      "    conns.append(tls)\n"
      "print('idle', flush=True)\n"
      "while not os.path.exists(sys.argv[3]): time.sleep(0.01)\n"
      "for tls in conns: tls.sendall(b'GET /files/huge.bin HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n"
      "print('stalled', flush=True)\n"
      "while not os.path.exists(sys.argv[4]): time.sleep(0.01)\n"
      "data = b''\n"
      "while b'\\r\\n\\r\\n' not in data: data += conns[0].recv(65536)\n"
      "head, body = data.split(b'\\r\\n\\r\\n', 1)\n"
      "n = len(body)\n"
      "while n < 24 * 2**20:\n"
      "    chunk = conns[0].recv(65536)\n"
      "    if not chunk: break\n"
      "    n += len(chunk)\n"
      "print('read', head.startswith(b'HTTP/1.1 200') and n == 24 * 2**20, flush=True)\n";
  const std::string path = dir_->file("stalled.py");
  // The suite's tests share the directory: names of this test's own, and none left over.
  const std::string go = dir_->file("stalled-go");
  const std::string done = dir_->file("stalled-done");
  stdfs::remove(go);
  stdfs::remove(done);
  std::ofstream(path) << script;
  FILE* client = ::popen(("timeout 60 python3 " + path + " " + std::to_string(server_->port()) +
                          " " + pki_->ca_cert.string() + " " + go + " " + done)
                             .c_str(),
                         "r");
  ASSERT_NE(client, nullptr);
  const auto line = [client] {
    std::array<char, 64> text{};
    return std::fgets(text.data(), text.size(), client) != nullptr ? std::string(text.data())
                                                                   : std::string();
  };
  // The least of ten looks over half a second: a session finishing a step holds more
  // for a moment.
  const auto settled_heap = [] {
    std::size_t heap = heap_in_use();
    for (int i = 0; i < 10; ++i) {
      std::this_thread::sleep_for(50ms);
      heap = std::min(heap, heap_in_use());
    }
    return heap;
  };
  ASSERT_EQ(line(), "idle\n");
  const std::size_t idle = settled_heap();
  std::ofstream(go) << "go";
  ASSERT_EQ(line(), "stalled\n");
  // The servers' sends fill the kernel's buffers, then wait.
  std::this_thread::sleep_for(1s);
  const std::size_t stalled = settled_heap();
  std::ofstream(done) << "done";
  // The first client reads its whole response: the stall was a wait, nothing was lost.
  EXPECT_EQ(line(), "read True\n");
  EXPECT_EQ(::pclose(client), 0);
  const std::size_t per_download = stalled > idle ? (stalled - idle) / 8 : 0;
  // At least the step: the sessions are stalled inside the file, not done with it.
  EXPECT_GT(per_download, 32 * 1024)
      << "heap held per stalled download: " << per_download << " bytes";
  EXPECT_LT(per_download, 100 * 1024)
      << "heap held per stalled download: " << per_download << " bytes";
}

TEST_F(Https, PlainHttpAndASilentClientCostOnlyTheirConnection) {
  REQUIRE_PROGRAM("curl", "curl");
  // Plain HTTP: the handshake fails, the connection closes without a response.
  const test::Ran plain =
      run_command("curl -sS http://localhost:" + std::to_string(server_->port()) + "/");
  EXPECT_NE(plain.status, 0);
  EXPECT_NE(plain.output.find("Empty reply"), std::string::npos) << plain.output;
  // A client that connects and says nothing is closed after the header timeout (500 ms).
  REQUIRE_PROGRAM("python3", "python3");
  const test::Ran silent = run_command(
      "timeout 10 python3 -c \"import socket,time,sys; s=socket.create_connection(('127.0.0.1', " +
      std::to_string(server_->port()) +
      ")); t=time.time(); d=s.recv(100); print(repr(d), round(time.time()-t, 1))\"");
  EXPECT_EQ(silent.status, 0) << silent.output;
  EXPECT_EQ(silent.output.substr(0, 4), "b'' ") << silent.output;
  // The server still serves.
  EXPECT_EQ(run_command(curl_ + base_ + "/").output, "Hello, World!");
}

TEST_F(Https, AHeadThatStallsGets408ThenCloseNotify) {
  REQUIRE_PROGRAM("python3", "python3");
  // The head's deadline shuts the socket for reading: the session must still send the
  // 408 and close_notify (a TLS stream that showed OpenSSL the end of input would fail
  // and send an alert instead).
  const std::string script =
      "import socket, ssl, sys\n"
      "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
      "raw = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
      "tls = ctx.wrap_socket(raw, server_hostname='localhost', suppress_ragged_eofs=False)\n"
      "tls.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\n')\n"
      "got = b''\n"
      "try:\n"
      "    while True:\n"
      "        chunk = tls.recv(4096)\n"
      "        if not chunk: break\n"
      "        got += chunk\n"
      "    end = 'close_notify'\n"
      "except ssl.SSLError as e:\n"
      "    end = 'error: ' + str(e)\n"
      "print(got.split(b'\\r\\n')[0].decode(), end)\n";
  const std::string path = dir_->file("stall.py");
  std::ofstream(path) << script;
  const test::Ran ran = run_command("timeout 20 python3 " + path + " " +
                                    std::to_string(server_->port()) + " " + pki_->ca_cert.string());
  EXPECT_EQ(ran.status, 0) << ran.output;
  EXPECT_EQ(ran.output, "HTTP/1.1 408 Request Timeout close_notify\n");
}

TEST_F(Https, AClosingResponseEndsTheSessionWithoutWaitingForTheClient) {
  REQUIRE_PROGRAM("python3", "python3");
  // The client waits 300 ms after the handshake (the test sees its connection), asks
  // with `Connection: close`, reads the response to its close_notify, then holds the
  // connection open without a word. Nothing of its is unread, so the server closes at once (the
  // close with the response's last record), where a lingering close would wait a second.
  const std::string script =
      "import socket, ssl, sys, time\n"
      "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
      "raw = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
      "tls = ctx.wrap_socket(raw, server_hostname='localhost', suppress_ragged_eofs=False)\n"
      "time.sleep(0.3)\n"
      "tls.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n"
      "got = b''\n"
      "while True:\n"
      "    chunk = tls.recv(4096)\n"
      "    if not chunk: break\n"
      "    got += chunk\n"
      "print(got.split(b'\\r\\n')[0].decode(), got.endswith(b'Hello, World!'), flush=True)\n"
      "time.sleep(3)\n";
  const std::string path = dir_->file("hold.py");
  std::ofstream(path) << script;
  test::Ran ran;
  std::thread client([&] {
    ran = run_command("timeout 20 python3 " + path + " " + std::to_string(server_->port()) + " " +
                      pki_->ca_cert.string());
  });
  const auto patient = std::chrono::steady_clock::now() + 10s;
  while (server_->connections() == 0 && std::chrono::steady_clock::now() < patient) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(server_->connections(), 1U);
  // The request comes 300 ms after the handshake; the close right after the response.
  const auto until = std::chrono::steady_clock::now() + 800ms;
  while (server_->connections() > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_EQ(server_->connections(), 0U) << "the server still holds the connection";
  client.join();
  EXPECT_EQ(ran.status, 0) << ran.output;
  EXPECT_EQ(ran.output, "HTTP/1.1 200 OK True\n");
}

TEST_F(Https, AClientsCloseNotifyAfterItsRequestIsReadBeforeTheClose) {
  // TLS 1.3 lets a client close its writing side first: it asks with `Connection: close`
  // and sends close_notify while the handler works, then reads the 3 MiB answer late.
  // The close_notify waits in the server's socket, where only the kernel knows of it: a
  // close with it unread would reset the connection and drop the answer's unsent end,
  // so the server lingers and reads it.
  const net::TlsContext client_ctx = net::TlsContext::client({.ca_file = pki_->ca_cert}).value();
  EventLoop loop;
  const std::uint16_t port = server_->port();
  const std::string body = loop.run([&]() -> Task<std::string> {
    Result<net::TcpStream> conn =
        co_await net::TcpStream::connect(net::Address::ipv4_loopback(port));
    if (!conn) co_return "connect: " + conn.message();
    std::string got;
    {
      net::TlsStream tls = net::TlsStream::client(*conn, client_ctx, "localhost").value();
      if (Result<void> hs = co_await tls.handshake({.timeout = 10s}); !hs) {
        co_return "handshake: " + hs.message();
      }
      const std::string request =
          "GET /slow-big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
      (void)co_await tls.send_all(std::as_bytes(std::span(request)));
      co_await sleep_for(50ms);  // the server has read the request; its handler waits
      (void)co_await tls.shutdown();
      // Read late: when the server is done, most of the 3 MiB wait in its socket.
      co_await sleep_for(400ms);
      std::vector<std::byte> buffer(65536);
      for (;;) {
        const Result<std::size_t> n = co_await tls.recv(buffer);
        if (!n) {
          got += "\n[" + n.message() + "]";
          break;
        }
        if (*n == 0) break;
        got.append(reinterpret_cast<const char*>(buffer.data()), *n);
      }
    }
    co_await conn->close();
    co_return got;
  }());
  // The whole response, then the server's close_notify (no "[error]" after the body).
  const std::size_t head_end = body.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << body.substr(0, 200);
  EXPECT_EQ(body.size() - head_end - 4, big_bytes_.size()) << body.substr(body.size() - 60);
  EXPECT_TRUE(body.substr(head_end + 4) == big_bytes_);
}

TEST_F(Https, AClientThatAgreesOnAnotherProtocolIsClosed) {
  // A context that offers h2 besides http/1.1: a client that picks h2 would be answered
  // in HTTP/1.1 it cannot read, so it is closed instead.
  net::TlsServerConfig config;
  config.certificate_chain_file = pki_->server_chain;
  config.private_key_file = pki_->server_key;
  config.alpn = {"h2", "http/1.1"};
  const net::TlsContext context = net::TlsContext::server(config).value();
  ServerOptions options;
  options.handle_signals = false;
  options.tls = &context;
  Server server(options, Handler(&hello));
  std::thread thread([&server] { (void)server.run(); });
  REQUIRE_PROGRAM("curl", "curl");
  const std::string url = "https://localhost:" + std::to_string(server.port()) + "/";
  const test::Ran h1 = run_command(curl_ + "--http1.1 " + url);
  const test::Ran h2 = run_command(curl_ + "--http2 " + url);
  server.stop();
  thread.join();
  EXPECT_EQ(h1.output, "Hello, World!");
  EXPECT_NE(h2.status, 0) << h2.output;
}

TEST(HttpsOptions, AClientContextIsRefused) {
  auto client = net::TlsContext::client({});
  ASSERT_TRUE(client) << client.message();
  ServerOptions options;
  options.handle_signals = false;
  options.tls = &*client;
  EXPECT_THROW(Server(options, Handler(&hello)), std::system_error);
}

}  // namespace
}  // namespace coring::http
