// TLS over coring's streams: OpenSSL 3 does the cryptography, io_uring all the I/O.
//
//   auto ctx = TlsContext::server({.certificate_chain_file = "cert.pem",
//                                  .private_key_file = "key.pem"});
//   if (!ctx) { log(ctx.message()); ... }          // names the file and OpenSSL's reason
//   TlsStream tls = TlsStream::server(conn, *ctx).value();
//   if (auto hs = co_await tls.handshake(5s); !hs) { log(hs.message()); co_return; }
//   Result<std::size_t> n = co_await tls.recv(buffer);   // 0: the peer's close_notify
//   TransferResult sent = co_await tls.send_all(reply);
//   co_await tls.shutdown();                              // close_notify
//
// OpenSSL never touches the socket. A TlsStream's BIO (a small one of ours) hands
// OpenSSL the bytes that the stream's receives brought into the TlsStream's buffer, and
// takes the records OpenSSL writes into a buffer that the stream's sends drain: one
// copy each way, the one OpenSSL makes between its record buffers and ours. Nothing
// blocks the loop.
//
// One reader and one writer may run at once on one TlsStream (say a task that receives
// and another that sends), on the loop of the stream; two reads or two writes at once
// are a misuse, refused with TlsErrc::busy. OpenSSL's records leave in the order it
// wrote them: one coroutine at a time sends, and a second one that has records to send
// waits for the first.
//
// Errors are values with readable messages: OpenSSL's reasons ("tlsv1 alert unknown
// ca"), a failed certificate check ("certificate has expired", "hostname mismatch"),
// a peer that ended the connection without close_notify (TlsErrc::truncated, apart from
// the clean end, which recv() reports as 0 bytes). Every call leaves the thread's
// OpenSSL error queue empty.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "coring/net/buffer_pool.hpp"
#include "coring/net/stream.hpp"
#include "coring/ring/result.hpp"
#include "coring/runtime/task.hpp"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX
struct ssl_st;      // OpenSSL's SSL

namespace coring::net {

// --- Errors ---------------------------------------------------------------------------------

// What TLS adds to the kernel's and OpenSSL's errors (category "coring.tls").
enum class TlsErrc {
  truncated = 1,       // the peer ended the connection without close_notify
  handshake_required,  // recv or send before a successful handshake
  handshake_eof,       // the peer closed the connection during the handshake
  busy,                // a second read (or write) while one is in flight
  broken,              // an earlier failure ended the session (TlsStream::failure())
  no_reason,           // OpenSSL failed without a reason on its error queue
  invalid_alpn,        // an ALPN protocol name that is empty or longer than 255 bytes
  no_certificate,      // a server configuration without a certificate or key file
};
const std::error_category& tls_category() noexcept;
inline std::error_code make_error_code(TlsErrc e) noexcept {
  return {static_cast<int>(e), tls_category()};
}

// OpenSSL's own errors (category "openssl"): the code is OpenSSL's packed error code,
// the message its reason ("wrong version number", "tlsv1 alert unknown ca").
const std::error_category& openssl_category() noexcept;
// A failed check of the peer's certificate (category "x509"): the code is OpenSSL's
// X509_V_ERR_*, the message its text ("certificate has expired", "hostname mismatch").
const std::error_category& x509_category() noexcept;

// A configuration error of TlsContext: the code, and a message naming what was being
// done, the file, and OpenSSL's reason.
struct TlsError {
  std::error_code code;
  std::string text;
  [[nodiscard]] std::string message() const { return text; }
};
inline const std::error_code& error_code_of(const TlsError& error) noexcept { return error.code; }
[[noreturn]] void throw_error(const TlsError& error);

// --- Configuration --------------------------------------------------------------------------

enum class TlsVersion : std::uint8_t { tls1_2, tls1_3 };

// A certificate chain (PEM: the certificate, then its intermediates) and its private key
// (PEM, unencrypted).
struct TlsCertificateFiles {
  std::string certificate_chain_file{};
  std::string private_key_file{};
};

struct TlsServerConfig {
  std::string certificate_chain_file{};  // PEM: the certificate, then its intermediates
  std::string private_key_file{};        // PEM, unencrypted
  // Application protocols in the server's order of preference ("http/1.1"). A client
  // that offers ALPN and none of these is refused (no_application_protocol), as RFC
  // 7301 says; a client that offers none gets no ALPN.
  std::vector<std::string> alpn{};
  TlsVersion min_version = TlsVersion::tls1_2;
  // More certificates, chosen by the name the client sends (SNI): a client naming a host
  // that one of them lists as a DNS subjectAltName (exactly, or under a wildcard
  // "*.example.com" for one label) gets that one; any other client the main one.
  std::vector<TlsCertificateFiles> sni_certificates{};
};

struct TlsClientConfig {
  std::string ca_file{};  // PEM trust anchors; empty: the system's store (/etc/ssl/certs)
  // Checks the server's certificate against the trust anchors and the name given to
  // TlsStream::client. Off only for tests against servers without a certificate chain.
  bool verify_peer = true;
  std::vector<std::string> alpn{};  // offered in this order
  TlsVersion min_version = TlsVersion::tls1_2;
  // Keep the newest session (TLS 1.3 ticket, TLS 1.2 session) each server (its name and
  // port) gave a stream of this context, and offer a copy on the next connection to it: a
  // resumed handshake skips the certificate and its signature. A TLS 1.3 ticket comes
  // after the handshake, with the first data the client reads.
  bool resume_sessions = true;
  // At most this many servers' sessions are kept: past it, expired ones go, then the
  // least recently kept.
  std::size_t max_resumable_servers = 1024;
};

// A configuration shared by many streams: OpenSSL's SSL_CTX, reference-counted. Copies
// share it; each TlsStream keeps the context it was made with alive.
class TlsContext {
 public:
  static Result<TlsContext, TlsError> server(const TlsServerConfig& config);
  static Result<TlsContext, TlsError> client(const TlsClientConfig& config);

  [[nodiscard]] bool is_server() const noexcept;
  // The SSL_CTX, for settings this class does not offer; it stays owned by the context.
  [[nodiscard]] ssl_ctx_st* native_handle() const noexcept;

  struct Shared;

 private:
  explicit TlsContext(std::shared_ptr<const Shared> shared) noexcept : shared_(std::move(shared)) {}
  friend class TlsStream;
  std::shared_ptr<const Shared> shared_;
};

// --- Streams --------------------------------------------------------------------------------

struct TlsHandshakeOptions {
  std::chrono::nanoseconds timeout{0};  // 0: no bound; else the whole handshake's
};
static_assert(std::is_trivially_destructible_v<TlsHandshakeOptions>);

// TLS over a connected StreamSocket, which must outlive the TlsStream, stay where it is
// (the stream holds its address) and carry nothing else while the stream lives. The
// TlsStream itself may move, even while an operation is in flight; it must not be
// destroyed then.
//
// A failure that ends the session — a protocol error or alert, a send that failed, was
// cancelled or timed out (part of a record may have gone) — is returned by the call that
// met it; every later call returns TlsErrc::broken, and failure() keeps the cause. A
// receive that is cancelled or times out loses nothing: the session goes on. A
// truncation (the input's end without close_notify) ends only the input: reads return
// TlsErrc::truncated, sends and shutdown() still work.
class TlsStream {
 public:
  // The server side of a connection accepted on `socket`. EINVAL for a client context.
  static Result<TlsStream> server(const StreamSocket& socket, const TlsContext& context);
  // The client side: `server_name` goes out as SNI (unless it is an IP address) and is
  // what the server's certificate must name when the context verifies. EINVAL for a
  // server context, or for an empty name when the context verifies.
  static Result<TlsStream> client(const StreamSocket& socket, const TlsContext& context,
                                  std::string_view server_name);
  // The stream keeps a reference to the socket: a temporary would be gone at once.
  static Result<TlsStream> server(StreamSocket&&, const TlsContext&) = delete;
  static Result<TlsStream> client(StreamSocket&&, const TlsContext&, std::string_view) = delete;

  TlsStream(TlsStream&&) noexcept;
  TlsStream& operator=(TlsStream&&) noexcept;
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;
  ~TlsStream();

  // Runs the handshake to its end. A failed certificate check is an x509_category()
  // code; `stop` cancels (ECANCELED), the timeout ends it with ETIMEDOUT.
  Task<Result<void>> handshake(TlsHandshakeOptions options = {}, std::stop_token stop = {});

  // Up to buffer.size() bytes of application data; 0 when the peer sent close_notify.
  // TlsErrc::truncated when the connection ended without it.
  Task<Result<std::size_t>> recv(std::span<std::byte> buffer, std::stop_token stop = {});
  // Waits until received bytes are there for recv() (or the input ended), without a
  // buffer of the caller's: with use_receive_pool(), a caller that waits for a peer's
  // next message needs no memory of its own meanwhile. It returns at once when bytes
  // wait (buffered()). recv() may still wait after it: the bytes can be part of a
  // record. Its errors are recv()'s; a stop (ECANCELED) loses nothing.
  Task<Result<void>> wait_readable(std::stop_token stop = {});
  // Exactly buffer.size() bytes; Errc::end_of_stream after a clean end before them.
  Task<TransferResult> recv_exact(std::span<std::byte> buffer, std::stop_token stop = {});
  // Encrypts every byte of `data` and sends the records; done when the kernel has them.
  Task<TransferResult> send_all(std::span<const std::byte> data, std::stop_token stop = {});
  // Some of `data` (at most 64 KiB, in records of up to 16 KiB): the count, or the error.
  Task<Result<std::size_t>> send(std::span<const std::byte> data, std::stop_token stop = {});
  // Sends close_notify (once; later calls do nothing). Does not wait for the peer's. The
  // socket stays open and the caller's: shut down its writing and read what the peer
  // still sends (session tickets, say) before closing it, or the close may reset the
  // connection and the peer lose the end of the data.
  Task<Result<void>> shutdown(std::stop_token stop = {});
  // send_all(data), then shutdown(): the close_notify leaves in the same send as the
  // last records of `data` (one send fewer at the end of a session, where the last
  // response and the close go together). A stream whose close_notify was sent returns
  // EPIPE without sending.
  Task<TransferResult> send_final(std::span<const std::byte> data, std::stop_token stop = {});

  // Receives from now on select a buffer of `pool` (a BufferPool of this loop, which must
  // outlive the stream) instead of the stream's own two-record buffer: a stream that
  // waits for input then holds no receive buffer, and each pool buffer goes back as soon
  // as OpenSSL has taken its bytes. A peer that sends more than a pool buffer holds per
  // receive, or a dry pool, gets the stream's own buffer, freed again once the receives
  // come back short. TlsErrc::busy while a recv() or handshake() is in flight; EINVAL
  // for a pool of another loop; EBADF for a moved-from stream.
  Result<void> use_receive_pool(BufferPool& pool) noexcept;

  // Whether received bytes wait to be read: records not yet decrypted, or plaintext not
  // yet returned by recv(). A server about to close can tell by it whether the peer sent
  // more than it read (then closing at once would reset the connection).
  [[nodiscard]] bool buffered() const noexcept;

  [[nodiscard]] bool handshake_done() const noexcept;
  // The failure that ended the session, or an empty code.
  [[nodiscard]] std::error_code failure() const noexcept;
  // Whether the handshake resumed an earlier session.
  [[nodiscard]] bool resumed() const noexcept;
  // The protocol ALPN agreed on, empty if none.
  [[nodiscard]] std::string_view alpn() const noexcept;
  [[nodiscard]] TlsVersion version() const noexcept;
  [[nodiscard]] std::string_view cipher() const noexcept;
  [[nodiscard]] const StreamSocket& socket() const noexcept;
  // The SSL, for what this class does not offer (SSL_key_update, say); the stream keeps
  // it. Null for a moved-from stream.
  [[nodiscard]] ssl_st* native_handle() const noexcept;

  struct State;

 private:
  explicit TlsStream(std::unique_ptr<State> state) noexcept;
  std::unique_ptr<State> state_;
};

}  // namespace coring::net

template <>
struct std::is_error_code_enum<coring::net::TlsErrc> : std::true_type {};
