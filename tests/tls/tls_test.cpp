// coring::tls between two TlsStreams of one loop over loopback TCP: handshakes (TLS 1.3
// and 1.2, ALPN, names and addresses), every failed certificate check the client can
// meet, configuration errors, the clean end against truncation, peers that send garbage,
// stall or vanish mid-handshake, a 64 MiB transfer each way at once, and 1,000
// handshakes in flight together.
#include "coring/net/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/ioctl.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "coring/net/buffer_pool.hpp"
#include "coring/net/error.hpp"
#include "coring/net/listener.hpp"
#include "coring/net/stream.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"
#include "support.hpp"
#include "test_pki.hpp"

namespace coring::net {
namespace {

using namespace std::chrono_literals;

class Tls : public test::PkiSuite {
 protected:
  void TearDown() override { EXPECT_EQ(ERR_peek_error(), 0UL) << "the OpenSSL error queue"; }

  static TlsContext server_context(const std::filesystem::path& chain,
                                   const std::filesystem::path& key,
                                   std::vector<std::string> alpn = {}) {
    auto made = TlsContext::server(
        {.certificate_chain_file = chain, .private_key_file = key, .alpn = std::move(alpn)});
    EXPECT_TRUE(made) << made.message();
    return std::move(made).value();
  }
  static TlsContext server_context() {
    return server_context(pki_->server_chain, pki_->server_key);
  }
  static TlsContext client_context(std::vector<std::string> alpn = {}) {
    auto made = TlsContext::client({.ca_file = pki_->ca_cert, .alpn = std::move(alpn)});
    EXPECT_TRUE(made) << made.message();
    return std::move(made).value();
  }
};

// A connected pair of loopback TCP sockets, made on the running loop.
struct SocketPair {
  TcpStream server;
  TcpStream client;

  Task<void> close() {
    co_await client.close();
    co_await server.close();
  }
};

// On `shared` when given (a server that keeps its port), else on a listener of its own.
Task<SocketPair> connect_pair(TcpListener* shared = nullptr) {
  std::optional<TcpListener> own;
  if (shared == nullptr) {
    auto made = TcpListener::bind(Address::ipv4_loopback());
    EXPECT_TRUE(made) << made.message();
    own.emplace(std::move(made).value());
  }
  TcpListener& listener = shared != nullptr ? *shared : *own;
  const Address local = listener.local_address().value();
  auto accept = [](TcpListener& l) -> Task<Result<TcpStream>> { co_return co_await l.accept(); };
  auto [accepted, connected] = co_await when_all(accept(listener), TcpStream::connect(local));
  if (own) co_await own->close();
  EXPECT_TRUE(accepted) << accepted.message();
  EXPECT_TRUE(connected) << connected.message();
  co_return SocketPair{std::move(accepted).value(), std::move(connected).value()};
}

// A server's TlsStream and a client's (for `name`) over `sockets`.
std::pair<TlsStream, TlsStream> tls_pair(const SocketPair& sockets, const TlsContext& server_ctx,
                                         const TlsContext& client_ctx,
                                         std::string_view name = "localhost") {
  return {TlsStream::server(sockets.server, server_ctx).value(),
          TlsStream::client(sockets.client, client_ctx, name).value()};
}

std::span<const std::byte> bytes(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

// Both handshakes, at once.
Task<std::pair<Result<void>, Result<void>>> handshake_both(TlsStream& server, TlsStream& client) {
  auto [s, c] =
      co_await when_all(server.handshake({.timeout = 10s}), client.handshake({.timeout = 10s}));
  co_return std::pair<Result<void>, Result<void>>(std::move(s), std::move(c));
}

// Sends `text` from `from` and reads it at `to`.
Task<std::string> pass(TlsStream& from, TlsStream& to, std::string text) {
  std::string got(text.size(), '\0');
  auto [sent, received] = co_await when_all(from.send_all(bytes(text)),
                                            to.recv_exact(std::as_writable_bytes(std::span(got))));
  EXPECT_TRUE(sent.ok()) << sent.message();
  EXPECT_TRUE(received.ok()) << received.message();
  co_return got;
}

TEST_F(Tls, HandshakeAndEchoOverTls13WithAlpn) {
  EventLoop loop;
  const TlsContext server_ctx =
      server_context(pki_->server_chain, pki_->server_key, {"h2", "http/1.1"});
  const TlsContext client_ctx = client_context({"http/1.1", "coring/1"});
  loop.run([&]() -> Task<void> {
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s) << s.message();
    EXPECT_TRUE(c) << c.message();
    EXPECT_TRUE(server.handshake_done());
    EXPECT_EQ(client.version(), TlsVersion::tls1_3);
    EXPECT_EQ(server.alpn(), "http/1.1");
    EXPECT_EQ(client.alpn(), "http/1.1");
    EXPECT_FALSE(client.cipher().empty());
    EXPECT_EQ(co_await pass(client, server, "hello over tls"), "hello over tls");
    EXPECT_EQ(co_await pass(server, client, "and back"), "and back");
    // The clean end: close_notify, then recv() says 0.
    EXPECT_TRUE((co_await client.shutdown()).ok());
    std::array<std::byte, 16> buffer{};
    const Result<std::size_t> end = co_await server.recv(buffer);
    EXPECT_TRUE(end) << end.message();
    EXPECT_EQ(end.ok() ? *end : 99U, 0U);
    co_await sockets.close();
  }());
}

TEST_F(Tls, Tls12WhenTheClientGoesNoHigher) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  ASSERT_EQ(SSL_CTX_set_max_proto_version(client_ctx.native_handle(), TLS1_2_VERSION), 1);
  loop.run([&]() -> Task<void> {
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx, "127.0.0.1");
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s) << s.message();
    EXPECT_TRUE(c) << c.message();
    EXPECT_EQ(server.version(), TlsVersion::tls1_2);
    EXPECT_EQ(co_await pass(client, server, std::string(100000, 'x')), std::string(100000, 'x'));
    co_await sockets.close();
  }());
}

// A TLS 1.2 client that asks to renegotiate is refused (a no_renegotiation alert, which
// OpenSSL's client answers by ending the session), even by a context whose owner allowed
// client renegotiation through the native handle: the server never renegotiates.
TEST_F(Tls, RenegotiationIsRefused) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  SSL_CTX_set_options(server_ctx.native_handle(), SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
  ASSERT_EQ(SSL_CTX_set_max_proto_version(client_ctx.native_handle(), TLS1_2_VERSION), 1);
  loop.run([&]() -> Task<void> {
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s && c);
    EXPECT_EQ(server.version(), TlsVersion::tls1_2);
    EXPECT_EQ(co_await pass(client, server, "before"), "before");
    // Our client contexts refuse it too: this one is let ask.
    SSL_clear_options(client.native_handle(), SSL_OP_NO_RENEGOTIATION);
    EXPECT_EQ(SSL_renegotiate(client.native_handle()), 1);
    // The client's next write starts the new handshake; the server's read meets it.
    std::array<std::byte, 16> buffer{};
    auto [sent, got] = co_await when_all(client.send_all(bytes("after")), server.recv(buffer));
    EXPECT_FALSE(sent.ok());
    EXPECT_EQ(sent.error(), client.failure());
    EXPECT_EQ(ERR_GET_REASON(static_cast<unsigned long>(sent.error().value())),
              SSL_R_NO_RENEGOTIATION)
        << sent.message();
    EXPECT_FALSE(got.ok());  // the client's fatal alert
    EXPECT_EQ(SSL_total_renegotiations(server.native_handle()), 0L);
    co_await sockets.close();
  }());
}

// The client's verdict on a server that presents `chain` for `name`.
std::error_code client_verdict(const TlsContext& server_ctx, const TlsContext& client_ctx,
                               std::string name) {
  EventLoop loop;
  return loop.run([&]() -> Task<std::error_code> {
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx, name);
    auto [s, c] = co_await handshake_both(server, client);
    // The client's alert fails the server's handshake too.
    EXPECT_FALSE(s) << "the server's handshake succeeded";
    if (!s) {
      EXPECT_FALSE(s.message().empty());
    }
    co_await sockets.close();
    co_return c.error();
  }());
}

TEST_F(Tls, ClientRefusesAWrongName) {
  const std::error_code verdict = client_verdict(server_context(), client_context(), "example.com");
  EXPECT_EQ(verdict, std::error_code(X509_V_ERR_HOSTNAME_MISMATCH, x509_category()));
  EXPECT_EQ(verdict.message(), "hostname mismatch");
}

TEST_F(Tls, ClientRefusesAnExpiredCertificate) {
  const std::error_code verdict = client_verdict(
      server_context(pki_->expired_chain, pki_->expired_key), client_context(), "localhost");
  EXPECT_EQ(verdict, std::error_code(X509_V_ERR_CERT_HAS_EXPIRED, x509_category()));
  EXPECT_EQ(verdict.message(), "certificate has expired");
}

TEST_F(Tls, ClientRefusesASelfSignedCertificate) {
  const std::error_code verdict =
      client_verdict(server_context(pki_->self_signed_chain, pki_->self_signed_key),
                     client_context(), "localhost");
  EXPECT_EQ(verdict, std::error_code(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, x509_category()));
}

TEST_F(Tls, ClientRefusesAnUnknownCa) {
  const std::error_code verdict = client_verdict(
      server_context(pki_->unknown_ca_chain, pki_->unknown_ca_key), client_context(), "localhost");
  // The chain file carries the unknown CA: a self-signed certificate the client does not trust.
  EXPECT_EQ(verdict, std::error_code(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, x509_category()));
}

TEST_F(Tls, ServerRefusesAClientWithoutACommonAlpnProtocol) {
  const std::error_code verdict =
      client_verdict(server_context(pki_->server_chain, pki_->server_key, {"h2"}),
                     client_context({"http/1.1"}), "localhost");
  EXPECT_EQ(verdict.category(), openssl_category());
  EXPECT_EQ(verdict.message(), "tlsv1 alert no application protocol");
}

TEST_F(Tls, ConfigurationErrorsNameTheFileAndTheReason) {
  auto garbage = TlsContext::server(
      {.certificate_chain_file = pki_->garbage_pem, .private_key_file = pki_->server_key});
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.message().find(pki_->garbage_pem.string()), std::string::npos)
      << garbage.message();
  EXPECT_NE(garbage.message().find("no start line"), std::string::npos) << garbage.message();

  auto mismatch = TlsContext::server(
      {.certificate_chain_file = pki_->server_chain, .private_key_file = pki_->alt_key});
  ASSERT_FALSE(mismatch);
  EXPECT_NE(mismatch.message().find("does not match"), std::string::npos) << mismatch.message();
  EXPECT_NE(mismatch.message().find(pki_->alt_key.string()), std::string::npos);

  const std::string missing = dir_->file("missing.pem");
  auto absent =
      TlsContext::server({.certificate_chain_file = missing, .private_key_file = missing});
  ASSERT_FALSE(absent);
  EXPECT_NE(absent.message().find(missing), std::string::npos) << absent.message();
  EXPECT_EQ(absent.error(), std::errc::no_such_file_or_directory) << absent.message();

  auto no_key = TlsContext::server({.certificate_chain_file = pki_->server_chain});
  ASSERT_FALSE(no_key);
  EXPECT_EQ(no_key.error(), TlsErrc::no_certificate);

  auto bad_ca = TlsContext::client({.ca_file = pki_->garbage_pem});
  ASSERT_FALSE(bad_ca);
  EXPECT_NE(bad_ca.message().find(pki_->garbage_pem.string()), std::string::npos);

  auto bad_alpn = TlsContext::client({.alpn = {""}});
  ASSERT_FALSE(bad_alpn);
  EXPECT_EQ(bad_alpn.error(), TlsErrc::invalid_alpn);
  EXPECT_THROW((void)TlsContext::client({.alpn = {std::string(256, 'a')}}).value(),
               std::system_error);
}

TEST_F(Tls, APeerThatClosesWithoutCloseNotifyIsTruncation) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  loop.run([&]() -> Task<void> {
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s && c);
    EXPECT_EQ(co_await pass(client, server, "last words"), "last words");
    // The client's end of stream without close_notify. (A close would reset the
    // connection: the session tickets the server sent are unread.)
    co_await sockets.client.shutdown(SHUT_WR);
    std::array<std::byte, 16> buffer{};
    const Result<std::size_t> end = co_await server.recv(buffer);
    EXPECT_EQ(end.error(), TlsErrc::truncated) << end.message();
    EXPECT_EQ((co_await server.recv(buffer)).error(), TlsErrc::truncated);
    // Only the input ended: OpenSSL never saw the end (it would have failed the session
    // and sent an alert), so the server can still answer and say close_notify.
    EXPECT_FALSE(server.failure()) << server.failure().message();
    EXPECT_EQ(co_await pass(server, client, "answer"), "answer");
    EXPECT_TRUE((co_await server.shutdown()).ok());
    const Result<std::size_t> clean = co_await client.recv(buffer);
    EXPECT_TRUE(clean) << clean.message();
    EXPECT_EQ(clean.ok() ? *clean : 99U, 0U);
    co_await sockets.close();
  }());
}

TEST_F(Tls, SendFinalDeliversTheDataThenTheCleanEnd) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  loop.run([&]() -> Task<void> {
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s && c);
    // Over 64 KiB: pieces sent ahead, and the last one with the close_notify.
    std::string text;
    for (int i = 0; text.size() < 200'000; ++i) text += std::to_string(i) + ",";
    std::string got(text.size(), '\0');
    auto [sent, received] = co_await when_all(
        server.send_final(bytes(text)), client.recv_exact(std::as_writable_bytes(std::span(got))));
    EXPECT_TRUE(sent.ok()) << sent.message();
    EXPECT_EQ(sent.bytes, text.size());
    EXPECT_TRUE(received.ok()) << received.message();
    EXPECT_TRUE(got == text);
    std::array<std::byte, 16> buffer{};
    const Result<std::size_t> end = co_await client.recv(buffer);
    EXPECT_TRUE(end) << end.message();
    EXPECT_EQ(end.ok() ? *end : 99U, 0U);
    // The session is closed for writing: more data is refused, a shutdown does nothing.
    EXPECT_EQ((co_await server.send(bytes("late"))).error(), std::errc::broken_pipe);
    EXPECT_EQ((co_await server.send_final(bytes("late"))).error(), std::errc::broken_pipe);
    EXPECT_TRUE((co_await server.shutdown()).ok());
    // Nothing but the close: the client's send_final of no bytes.
    EXPECT_TRUE((co_await client.send_final({})).ok());
    const Result<std::size_t> client_end = co_await server.recv(buffer);
    EXPECT_TRUE(client_end) << client_end.message();
    EXPECT_EQ(client_end.ok() ? *client_end : 99U, 0U);
    co_await sockets.close();
  }());
}

// Waits (up to 10 s) until `socket` holds at least `bytes` unread bytes in the kernel.
Task<void> queued_at_least(const TcpStream& socket, int bytes) {
  for (int i = 0; i < 10'000; ++i) {
    int queued = 0;
    if (::ioctl(socket.fd(), FIONREAD, &queued) != 0 || queued >= bytes) co_return;
    co_await sleep_for(1ms);
  }
  ADD_FAILURE() << "fewer than " << bytes << " bytes arrived";
}

TEST_F(Tls, BufferedSaysWhetherReceivedBytesWaitToBeRead) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  loop.run([&]() -> Task<void> {
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s && c);
    // Two records, both on the server's socket before it reads: one receive takes both.
    EXPECT_TRUE((co_await client.send_all(bytes("first"))).ok());
    EXPECT_TRUE((co_await client.send_all(bytes("second"))).ok());
    // A send completes before the loopback delivers its segment: wait for both records
    // (5 bytes of header, the text, its content type and a 16-byte tag each).
    co_await queued_at_least(sockets.server, 2 * (5 + 1 + 16) + 11);
    EXPECT_FALSE(server.buffered());  // nothing received yet
    std::array<std::byte, 5> five{};
    const Result<std::size_t> one = co_await server.recv(five);
    EXPECT_EQ(one.ok() ? *one : 0U, 5U);
    EXPECT_TRUE(server.buffered());  // the second record waits
    std::array<std::byte, 64> rest{};
    const Result<std::size_t> two = co_await server.recv(rest);
    EXPECT_EQ(two.ok() ? *two : 0U, 6U);
    EXPECT_FALSE(server.buffered());
    // Part of a record's plaintext left in OpenSSL counts too.
    EXPECT_TRUE((co_await client.send_all(bytes("a longer record"))).ok());
    co_await queued_at_least(sockets.server, 5 + 1 + 16 + 15);
    std::array<std::byte, 4> four{};
    const Result<std::size_t> part = co_await server.recv(four);
    EXPECT_EQ(part.ok() ? *part : 0U, 4U);
    EXPECT_TRUE(server.buffered());
    const Result<std::size_t> tail = co_await server.recv(rest);
    EXPECT_EQ(tail.ok() ? *tail : 0U, 11U);
    EXPECT_FALSE(server.buffered());
    co_await sockets.close();
  }());
}

TEST_F(Tls, AReadStoppedWhileTheSessionOwesAnAnswerLosesNothing) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  loop.run([&]() -> Task<void> {
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s && c);
    EXPECT_EQ(client.version(), TlsVersion::tls1_3);
    // "one", a KeyUpdate that asks the server to update its keys too, "mid", another
    // KeyUpdate, "two". OpenSSL owes the first KeyUpdate its answer, which it writes when
    // the second KeyUpdate runs its state machine: in the read of "two".
    EXPECT_TRUE((co_await client.send_all(bytes("one"))).ok());
    EXPECT_EQ(SSL_key_update(client.native_handle(), SSL_KEY_UPDATE_REQUESTED), 1);
    EXPECT_TRUE((co_await client.send_all(bytes("mid"))).ok());
    EXPECT_EQ(SSL_key_update(client.native_handle(), SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    EXPECT_TRUE((co_await client.send_all(bytes("two"))).ok());
    co_await queued_at_least(sockets.server, 5 * (5 + 1 + 16) + 3 * 3 + 2 * 5);
    std::array<std::byte, 3> three{};
    for (const char* text : {"one", "mid"}) {
      const Result<std::size_t> got = co_await server.recv(three);
      EXPECT_EQ(got.ok() ? *got : 0U, 3U);
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(three.data()), 3), text);
    }
    // A read whose stop came first: its data is there without a wait, the KeyUpdate's
    // answer cannot leave now. The answer waits; the data is returned; the session goes on.
    std::stop_source stop;
    stop.request_stop();
    const Result<std::size_t> two = co_await server.recv(three, stop.get_token());
    EXPECT_TRUE(two) << two.message();
    EXPECT_EQ(two.ok() ? *two : 0U, 3U);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(three.data()), 3), "two");
    EXPECT_FALSE(server.failure()) << server.failure().message();
    if (server.failure()) {  // the passes below would wait forever
      co_await sockets.close();
      co_return;
    }
    // The answer leaves with the next send, and both sides go on with new keys.
    EXPECT_EQ(co_await pass(server, client, "three"), "three");
    EXPECT_EQ(co_await pass(client, server, "four"), "four");
    co_await sockets.close();
  }());
}

TEST_F(Tls, AWriterBehindAStoppedReadersSendIsNotToldItsDataLeft) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  loop.run([&]() -> Task<void> {
    // A Unix stream pair: a full way out stays full (over TCP, a receiver that collapses
    // its queue of small segments opens its window again).
    auto made = StreamSocket::pair();
    EXPECT_TRUE(made) << made.message();
    SocketPair sockets{std::move(made->first), std::move(made->second)};
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s && c);
    // As in AReadStoppedWhileTheSessionOwesAnAnswerLosesNothing: the read of "two" makes
    // OpenSSL write the answer to a KeyUpdate.
    EXPECT_TRUE((co_await client.send_all(bytes("one"))).ok());
    EXPECT_EQ(SSL_key_update(client.native_handle(), SSL_KEY_UPDATE_REQUESTED), 1);
    EXPECT_TRUE((co_await client.send_all(bytes("mid"))).ok());
    EXPECT_EQ(SSL_key_update(client.native_handle(), SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    EXPECT_TRUE((co_await client.send_all(bytes("two"))).ok());
    co_await queued_at_least(sockets.server, 5 * (5 + 1 + 16) + 3 * 3 + 2 * 5);
    std::array<std::byte, 3> three{};
    for (int i = 0; i < 2; ++i) EXPECT_TRUE(co_await server.recv(three));
    // The server's way out is full (bytes the client never reads, sent around TLS), so
    // the reader's send of the answer waits in the kernel; a writer queues behind it;
    // then the reader's stop cancels that send before its first byte.
    const std::string junk(4096, 'j');
    for (const std::size_t size : {junk.size(), std::size_t{1}}) {
      while (::send(sockets.server.fd(), junk.data(), size, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
      }
    }
    std::stop_source reader_stop;
    std::stop_source writer_stop;
    TlsStream& tls = server;  // a lambda of clang 14 cannot capture a structured binding
    auto read = [&]() -> Task<Result<std::size_t>> {
      co_return co_await tls.recv(three, reader_stop.get_token());
    };
    auto write = [&]() -> Task<TransferResult> {
      co_await sleep_for(20ms);  // the reader is in its send by now
      co_return co_await tls.send_all(bytes("data"), writer_stop.get_token());
    };
    auto stop = [&]() -> Task<void> {
      co_await sleep_for(60ms);
      reader_stop.request_stop();
      co_await sleep_for(100ms);
      writer_stop.request_stop();  // the writer's own send, if it makes one, waits too
    };
    auto [got, sent, stopped] = co_await when_all(read(), write(), stop());
    (void)stopped;
    EXPECT_TRUE(got) << got.message();  // "two": the read itself was done
    // The writer's records never left: its send_all must not say they did.
    EXPECT_FALSE(sent.ok()) << "send_all reported " << sent.bytes << " bytes sent";
    co_await sockets.close();
  }());
}

// A TLS 1.3 server's tickets ride on its next send when the client's input is already
// there, but a read that has to wait sends them at once: a client whose Nagle holds its
// request until its Finished is acknowledged (python's http.client, say) would otherwise
// wait for the server's delayed ACK, 40 ms on Linux.
TEST_F(Tls, Tls13SessionTicketsWaitForInputThatIsThereButNotForInputToCome) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  loop.run([&]() -> Task<void> {
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s && c);
    EXPECT_EQ(server.version(), TlsVersion::tls1_3);
    // The server's handshake is over and it does nothing: nothing reaches the client,
    // and the client's session cannot be resumed yet.
    co_await sleep_for(50ms);
    int queued = -1;
    EXPECT_EQ(::ioctl(sockets.client.fd(), FIONREAD, &queued), 0);
    EXPECT_EQ(queued, 0);
    EXPECT_EQ(SSL_SESSION_is_resumable(SSL_get_session(client.native_handle())), 0);
    // A read whose input is there takes it and leaves the tickets for the next send.
    std::array<std::byte, 8> buffer{};
    EXPECT_TRUE((co_await client.send(bytes("a"))).ok());
    co_await queued_at_least(sockets.server, 5 + 1 + 16);
    const Result<std::size_t> got = co_await server.recv(buffer);
    EXPECT_EQ(got.ok() ? *got : 0U, 1U) << got.message();
    EXPECT_EQ(::ioctl(sockets.client.fd(), FIONREAD, &queued), 0);
    EXPECT_EQ(queued, 0);
    // A read that waits sends them while it waits.
    std::stop_source stop;
    auto stop_on_arrival = [](const TcpStream& socket, std::stop_source& source) -> Task<void> {
      co_await queued_at_least(socket, 1);
      source.request_stop();
    };
    auto [stopped, ignored] = co_await when_all(server.recv(buffer, stop.get_token()),
                                                stop_on_arrival(sockets.client, stop));
    EXPECT_EQ(stopped.error(), std::errc::operation_canceled);
    // The client reads them with the first data and has a ticket.
    EXPECT_EQ(co_await pass(server, client, "first"), "first");
    EXPECT_EQ(SSL_SESSION_is_resumable(SSL_get_session(client.native_handle())), 1);
    co_await sockets.close();
  }());
}

// With a receive pool, a server stream that waits for input holds no pool buffer, and
// each buffer goes back once OpenSSL has taken its bytes: after a small message, after a
// transfer larger than a buffer (which moves to the stream's own buffer), and with the
// pool dry (another receive holds its only buffer).
TEST_F(Tls, AStreamOnAReceivePoolHoldsABufferOnlyWhileBytesWait) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  loop.run([&]() -> Task<void> {
    BufferPool pool(loop, {.buffer_size = 2048, .count = 8, .incremental = false});
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    EXPECT_TRUE(server.use_receive_pool(pool).ok());
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s && c);
    EXPECT_GT(pool.returned(), 0U);  // the handshake's receives came from the pool
    EXPECT_EQ(pool.held(), 0U);

    // Waiting: no buffer; the bytes arrive in one, which goes back when they are read.
    auto send_later = [](TlsStream& to, BufferPool& p) -> Task<void> {
      co_await sleep_for(20ms);
      EXPECT_EQ(p.held(), 0U) << "a buffer held while the server waits";
      EXPECT_TRUE((co_await to.send_all(bytes("hello"))).ok());
    };
    auto [ready, ignored] = co_await when_all(server.wait_readable(), send_later(client, pool));
    EXPECT_TRUE(ready.ok()) << ready.message();
    EXPECT_TRUE(server.buffered());
    std::array<std::byte, 16> buffer{};
    const Result<std::size_t> got = co_await server.recv(buffer);
    EXPECT_EQ(got.ok() ? *got : 0U, 5U) << got.message();
    EXPECT_EQ(pool.held(), 0U);

    // More than a buffer at a time: byte-exact, and nothing held afterwards.
    std::string big(1 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 23);
    EXPECT_EQ(co_await pass(client, server, big), big);
    EXPECT_EQ(pool.held(), 0U);
    // The bulk receives went to the stream's own buffer; a wait after them is the
    // pool's again (the bytes that end it are in a pool buffer), not the own buffer's.
    auto [again, ignored2] = co_await when_all(server.wait_readable(), send_later(client, pool));
    EXPECT_TRUE(again.ok()) << again.message();
    EXPECT_EQ(pool.held(), 1U) << "the wait after a bulk transfer did not take a pool buffer";
    const Result<std::size_t> hello = co_await server.recv(buffer);
    EXPECT_EQ(hello.ok() ? *hello : 0U, 5U) << hello.message();
    EXPECT_EQ(pool.held(), 0U);
    EXPECT_EQ(co_await pass(client, server, "small again"), "small again");
    EXPECT_EQ(pool.held(), 0U);
    // A pool of another loop is refused.
    EventLoop other;
    BufferPool foreign(other, {.buffer_size = 2048, .count = 2});
    EXPECT_EQ(server.use_receive_pool(foreign).error(), std::errc::invalid_argument);
    co_await sockets.close();
  }());
}

TEST_F(Tls, AStreamOnADryReceivePoolUsesItsOwnBuffer) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  loop.run([&]() -> Task<void> {
    BufferPool pool(loop, {.buffer_size = 2048, .count = 1, .incremental = false});
    // Another receive takes the pool's only buffer and keeps it.
    auto [one, other] = StreamSocket::pair().value();
    EXPECT_EQ((co_await other.send(bytes("x"))).res, 1);
    Result<BufferLease> taken = co_await one.recv(pool);
    EXPECT_TRUE(taken) << taken.message();
    EXPECT_EQ(pool.available(), 0U);

    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    EXPECT_TRUE(server.use_receive_pool(pool).ok());
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s && c) << s.message() << " / " << c.message();
    EXPECT_EQ(co_await pass(client, server, "through the own buffer"), "through the own buffer");
    // The pool has a buffer again: the next receive takes it.
    const std::uint64_t returned = pool.returned();
    taken->reset();
    EXPECT_EQ(co_await pass(client, server, "through the pool"), "through the pool");
    EXPECT_GT(pool.returned(), returned + 1);
    co_await sockets.close();
  }());
}

// wait_readable() returns once bytes are there (at once when they are buffered), a stop
// ends it without losing what comes later, and it refuses a stream before its handshake.
TEST_F(Tls, WaitReadableWaitsForBytesWithoutABuffer) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  loop.run([&]() -> Task<void> {
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    EXPECT_EQ((co_await server.wait_readable()).error(), TlsErrc::handshake_required);
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s && c);
    std::stop_source stop;
    auto stop_later = [](std::stop_source& source) -> Task<void> {
      co_await sleep_for(20ms);
      source.request_stop();
    };
    auto [stopped, ignored] =
        co_await when_all(server.wait_readable(stop.get_token()), stop_later(stop));
    EXPECT_EQ(stopped.error(), std::errc::operation_canceled);
    EXPECT_FALSE(server.buffered());
    EXPECT_TRUE((co_await client.send_all(bytes("two records"))).ok());
    EXPECT_TRUE((co_await client.send_all(bytes("!"))).ok());
    co_await queued_at_least(sockets.server, 2 * (5 + 16 + 1) + 12);
    EXPECT_TRUE((co_await server.wait_readable()).ok());
    std::array<std::byte, 11> first{};
    EXPECT_TRUE((co_await server.recv_exact(first)).ok());
    EXPECT_TRUE(server.buffered());
    EXPECT_TRUE((co_await server.wait_readable()).ok());  // at once: "!" waits
    std::array<std::byte, 4> rest{};
    const Result<std::size_t> got = co_await server.recv(rest);
    EXPECT_EQ(got.ok() ? *got : 0U, 1U);
    // After the peer's close_notify, it returns at once, as recv() does (with 0).
    EXPECT_TRUE((co_await client.shutdown()).ok());
    const Result<std::size_t> end = co_await server.recv(rest);
    EXPECT_EQ(end.ok() ? *end : 99U, 0U) << end.message();
    std::stop_source guard;
    auto [ended, ignored2] =
        co_await when_all(server.wait_readable(guard.get_token()), stop_later(guard));
    EXPECT_TRUE(ended.ok()) << ended.message();
    co_await sockets.close();
  }());
}

TEST_F(Tls, IoBeforeTheHandshakeAndTwoReadsAtOnceAreRefused) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  loop.run([&]() -> Task<void> {
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    std::array<std::byte, 16> buffer{};
    EXPECT_EQ((co_await server.recv(buffer)).error(), TlsErrc::handshake_required);
    EXPECT_EQ((co_await client.send_all(bytes("x"))).error(), TlsErrc::handshake_required);
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s && c);
    std::array<std::byte, 16> other{};
    auto [first, second, sent] =
        co_await when_all(server.recv(buffer), server.recv(other), client.send_all(bytes("late")));
    EXPECT_EQ(second.error(), TlsErrc::busy);
    EXPECT_TRUE(first) << first.message();
    EXPECT_EQ(first.ok() ? *first : 0U, 4U);
    EXPECT_TRUE(sent.ok());
    co_await sockets.close();
  }());
}

// A server's handshake against a raw peer that runs `peer` on its socket.
template <typename Peer>
std::error_code server_against(const TlsContext& server_ctx, Peer peer,
                               std::chrono::nanoseconds timeout = 10s) {
  EventLoop loop;
  return loop.run([&]() -> Task<std::error_code> {
    SocketPair sockets = co_await connect_pair();
    TlsStream server = TlsStream::server(sockets.server, server_ctx).value();
    auto [s, done] =
        co_await when_all(server.handshake({.timeout = timeout}), peer(sockets.client));
    (void)done;
    co_await sockets.close();
    co_return s.error();
  }());
}

TEST_F(Tls, PlainHttpToTheTlsPortIsAReadableError) {
  const std::error_code error = server_against(server_context(), [](TcpStream& peer) -> Task<bool> {
    co_return (co_await peer.send_all(bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))).ok();
  });
  EXPECT_EQ(error.category(), openssl_category());
  EXPECT_EQ(error.message(), "http request");
}

TEST_F(Tls, GarbageToTheTlsPortIsAReadableError) {
  const std::error_code error = server_against(server_context(), [](TcpStream& peer) -> Task<bool> {
    co_return (co_await peer.send_all(bytes(std::string(64, '\x16')))).ok();
  });
  EXPECT_EQ(error.category(), openssl_category()) << error.message();
  EXPECT_FALSE(error.message().empty());
}

TEST_F(Tls, AHandshakeCutOffMidwayIsHandshakeEof) {
  const std::error_code error = server_against(server_context(), [](TcpStream& peer) -> Task<bool> {
    // The start of a ClientHello record (a handshake record of 512 bytes), then the end.
    const std::string partial("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
    const bool sent = (co_await peer.send_all(bytes(partial))).ok();
    co_await peer.shutdown();
    co_return sent;
  });
  EXPECT_EQ(error, TlsErrc::handshake_eof) << error.message();
}

TEST_F(Tls, APeerThatNeverFinishesTheHandshakeTimesOut) {
  const auto start = std::chrono::steady_clock::now();
  const std::error_code error = server_against(
      server_context(), [](TcpStream&) -> Task<bool> { co_return true; }, 200ms);
  EXPECT_EQ(error, std::errc::timed_out) << error.message();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);
}

TEST_F(Tls, SixtyFourMebibytesEachWayAtOnce) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  constexpr std::size_t size = std::size_t{64} << 20;
  std::vector<std::byte> up(size), down(size);
  for (std::size_t i = 0; i < size; ++i) {
    up[i] = static_cast<std::byte>((i * 131) >> 7);
    down[i] = static_cast<std::byte>((i * 71) >> 5);
  }
  std::vector<std::byte> got_up(size), got_down(size);
  loop.run([&]() -> Task<void> {
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s && c);
    // Each stream has a reader and a writer in flight together.
    auto [a, b, d, e] = co_await when_all(client.send_all(up), server.recv_exact(got_up),
                                          server.send_all(down), client.recv_exact(got_down));
    EXPECT_TRUE(a.ok() && b.ok() && d.ok() && e.ok())
        << a.message() << b.message() << d.message() << e.message();
    co_await sockets.close();
  }());
  EXPECT_TRUE(got_up == up);
  EXPECT_TRUE(got_down == down);
}

TEST_F(Tls, AVerifyingClientNeedsAName) {
  EventLoop loop;
  const TlsContext client_ctx = client_context();
  loop.run([&]() -> Task<void> {
    SocketPair sockets = co_await connect_pair();
    EXPECT_EQ(TlsStream::client(sockets.client, client_ctx, "").error(),
              std::errc::invalid_argument);
    EXPECT_EQ(TlsStream::server(sockets.server, client_ctx).error(), std::errc::invalid_argument);
    co_await sockets.close();
  }());
}

// Clients of one loop that fail their checks while others succeed: each failure is
// read before the alert's send suspends, so another stream's calls cannot clear it.
TEST_F(Tls, ConcurrentHandshakesKeepTheirOwnErrors) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  auto one = [](const TlsContext& serving, const TlsContext& checking,
                std::string name) -> Task<std::error_code> {
    SocketPair sockets = co_await connect_pair();
    std::error_code verdict;
    {
      auto [server, client] = tls_pair(sockets, serving, checking, name);
      auto [s, c] = co_await handshake_both(server, client);
      verdict = c.error();
      EXPECT_EQ(s.ok(), c.ok()) << s.message();
    }
    co_await sockets.close();
    co_return verdict;
  };
  std::vector<Task<std::error_code>> tasks;
  for (int i = 0; i < 40; ++i) {
    tasks.push_back(one(server_ctx, client_ctx, i % 2 == 0 ? "localhost" : "wrong.example"));
  }
  const std::vector<std::error_code> verdicts = loop.run(when_all(std::move(tasks)));
  for (std::size_t i = 0; i < verdicts.size(); ++i) {
    if (i % 2 == 0) {
      EXPECT_FALSE(verdicts[i]) << i << ": " << verdicts[i].message();
    } else {
      EXPECT_EQ(verdicts[i], std::error_code(X509_V_ERR_HOSTNAME_MISMATCH, x509_category()))
          << i << ": " << verdicts[i].message();
    }
  }
}

TEST_F(Tls, StopsCancelAndAStopBeforeASendLosesNothing) {
  EventLoop loop;
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  loop.run([&]() -> Task<void> {
    SocketPair sockets = co_await connect_pair();
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
    // A handshake whose peer says nothing, stopped after 50 ms.
    std::stop_source stop;
    auto stopper = [](std::stop_source& source) -> Task<void> {
      co_await sleep_for(50ms);
      source.request_stop();
    };
    auto [stalled, stopped] =
        co_await when_all(server.handshake({}, stop.get_token()), stopper(stop));
    (void)stopped;
    EXPECT_EQ(stalled.error(), std::errc::operation_canceled) << stalled.message();
    // The stop came while the server waited for input: nothing was lost, the session can
    // go on.
    auto [s, c] = co_await handshake_both(server, client);
    EXPECT_TRUE(s) << s.message();
    EXPECT_TRUE(c) << c.message();
    // A send whose stop has fired makes no record; the stream goes on.
    std::stop_source fired;
    fired.request_stop();
    const TransferResult refused = co_await client.send_all(bytes("never"), fired.get_token());
    EXPECT_EQ(refused.error(), std::errc::operation_canceled);
    EXPECT_EQ(refused.outcome, Outcome::cancelled);
    EXPECT_FALSE(client.failure());
    // A receive stopped while it waits loses nothing either.
    std::stop_source quiet;
    std::array<std::byte, 16> buffer{};
    auto [waited, done] = co_await when_all(server.recv(buffer, quiet.get_token()), stopper(quiet));
    (void)done;
    EXPECT_EQ(waited.error(), std::errc::operation_canceled);
    EXPECT_EQ(co_await pass(client, server, "still here"), "still here");
    co_await sockets.close();
  }());
}

TEST_F(Tls, AnEncryptedKeyFailsToLoadRatherThanAskForAPassphrase) {
  const std::string encrypted = dir_->file("encrypted.key");
  const std::string command = "openssl pkey -in " + pki_->server_key.string() +
                              " -aes256 -passout pass:secret -out " + encrypted + " 2>/dev/null";
  if (std::system(command.c_str()) != 0)
    GTEST_SKIP() << "the openssl CLI (apt-get install openssl)";
  auto made = TlsContext::server(
      {.certificate_chain_file = pki_->server_chain, .private_key_file = encrypted, .alpn = {}});
  ASSERT_FALSE(made);
  EXPECT_NE(made.message().find(encrypted), std::string::npos) << made.message();
}

// One connection of `client_ctx` to `server_ctx` for `name`: the handshake, a message
// each way (the client's read takes the TLS 1.3 tickets in), close_notify both ways; the
// client's verdict and whether it resumed.
struct Visit {
  std::error_code verdict;
  bool resumed = false;
};
// The server listens on `listener`: clients keep sessions per name and port.
Task<Visit> visit(TcpListener& listener, const TlsContext& server_ctx, const TlsContext& client_ctx,
                  std::string name, bool clean = true) {
  SocketPair sockets = co_await connect_pair(&listener);
  Visit visit;
  {
    auto [server, client] = tls_pair(sockets, server_ctx, client_ctx, name);
    auto [s, c] = co_await handshake_both(server, client);
    visit.verdict = c.error();
    visit.resumed = client.resumed();
    EXPECT_EQ(client.resumed(), server.resumed());
    if (s && c) {
      EXPECT_EQ(co_await pass(server, client, "ticket time"), "ticket time");
      EXPECT_EQ(co_await pass(client, server, "bye"), "bye");
      if (clean) {
        EXPECT_TRUE((co_await client.shutdown()).ok());
        EXPECT_TRUE((co_await server.shutdown()).ok());
      }
    }
  }
  co_await sockets.close();
  co_return visit;
}

TEST_F(Tls, ClientsResumeTheirSessionsOverTls13And12) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener) << listener.message();
  const TlsContext server_ctx = server_context();
  for (const int top : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    const TlsContext client_ctx = client_context();
    ASSERT_EQ(SSL_CTX_set_max_proto_version(client_ctx.native_handle(), top), 1);
    const Visit first = loop.run(visit(*listener, server_ctx, client_ctx, "localhost"));
    EXPECT_FALSE(first.verdict) << first.verdict.message();
    EXPECT_FALSE(first.resumed);
    const Visit second = loop.run(visit(*listener, server_ctx, client_ctx, "localhost"));
    EXPECT_FALSE(second.verdict) << second.verdict.message();
    EXPECT_TRUE(second.resumed) << "TLS version " << std::hex << top;
    // Sessions are kept by name: another name starts afresh.
    const Visit other = loop.run(visit(*listener, server_ctx, client_ctx, "127.0.0.1"));
    EXPECT_FALSE(other.resumed);
  }
  // A stream that ends without close_notify spoils its own session only: the kept copy
  // still resumes.
  {
    const TlsContext client_ctx = client_context();
    EXPECT_FALSE(loop.run(visit(*listener, server_ctx, client_ctx, "localhost", false)).resumed);
    EXPECT_TRUE(loop.run(visit(*listener, server_ctx, client_ctx, "localhost", false)).resumed);
    EXPECT_TRUE(loop.run(visit(*listener, server_ctx, client_ctx, "localhost", false)).resumed);
  }
  // At most max_resumable_servers servers are kept: the least recently kept goes.
  {
    TlsClientConfig config;
    config.ca_file = pki_->ca_cert;
    config.max_resumable_servers = 1;
    const TlsContext one = TlsContext::client(config).value();
    EXPECT_FALSE(loop.run(visit(*listener, server_ctx, one, "localhost")).resumed);
    EXPECT_TRUE(loop.run(visit(*listener, server_ctx, one, "localhost")).resumed);
    EXPECT_FALSE(loop.run(visit(*listener, server_ctx, one, "127.0.0.1")).resumed);
    EXPECT_FALSE(loop.run(visit(*listener, server_ctx, one, "localhost")).resumed);  // evicted
  }
  // A context that does not resume never does.
  TlsClientConfig config;
  config.ca_file = pki_->ca_cert;
  config.resume_sessions = false;
  const TlsContext forgetful = TlsContext::client(config).value();
  EXPECT_FALSE(loop.run(visit(*listener, server_ctx, forgetful, "localhost")).resumed);
  EXPECT_FALSE(loop.run(visit(*listener, server_ctx, forgetful, "localhost")).resumed);
  loop.run(listener->close());
}

TEST_F(Tls, SniPicksTheCertificateThatNamesTheHost) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener) << listener.message();
  TlsServerConfig config;
  config.certificate_chain_file = pki_->server_chain;
  config.private_key_file = pki_->server_key;
  config.sni_certificates = {{pki_->alt_chain, pki_->alt_key}};
  const TlsContext server_ctx = TlsContext::server(config).value();
  TlsClientConfig client_config;
  client_config.ca_file = pki_->ca_cert;
  client_config.resume_sessions = false;
  const TlsContext client_ctx = TlsContext::client(client_config).value();
  // other.localhost is only on the second certificate, localhost only on the main one:
  // each check passes only if the server chose right.
  EXPECT_FALSE(loop.run(visit(*listener, server_ctx, client_ctx, "other.localhost")).verdict);
  EXPECT_FALSE(loop.run(visit(*listener, server_ctx, client_ctx, "localhost")).verdict);
  EXPECT_FALSE(loop.run(visit(*listener, server_ctx, client_ctx, "OTHER.localhost")).verdict);
  // A name neither lists gets the main certificate, which does not name it.
  EXPECT_EQ(loop.run(visit(*listener, server_ctx, client_ctx, "unknown.localhost")).verdict,
            std::error_code(X509_V_ERR_HOSTNAME_MISMATCH, x509_category()));
  // A certificate for SNI must be loadable like the main one.
  config.sni_certificates = {{pki_->garbage_pem, pki_->alt_key}};
  auto bad = TlsContext::server(config);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.message().find(pki_->garbage_pem.string()), std::string::npos) << bad.message();
  loop.run(listener->close());
}

Task<int> one_session(const TlsContext& server_ctx, const TlsContext& client_ctx, int i) {
  SocketPair sockets = co_await connect_pair();
  auto [server, client] = tls_pair(sockets, server_ctx, client_ctx);
  auto [s, c] = co_await handshake_both(server, client);
  int failures = s && c ? 0 : 1;
  const std::string text = "session " + std::to_string(i);
  if (failures == 0 && co_await pass(client, server, text) != text) failures = 1;
  co_await sockets.close();
  co_return failures;
}

TEST_F(Tls, AThousandHandshakesInFlight) {
  LoopOptions options;
  options.entries = 4096;
  EventLoop loop(options);
  const TlsContext server_ctx = server_context();
  const TlsContext client_ctx = client_context();
  std::vector<Task<int>> sessions;
  for (int i = 0; i < 1000; ++i) sessions.push_back(one_session(server_ctx, client_ctx, i));
  const std::vector<int> failures = loop.run(when_all(std::move(sessions)));
  int total = 0;
  for (const int f : failures) total += f;
  EXPECT_EQ(total, 0);
}

}  // namespace
}  // namespace coring::net
