// libFuzzer target: the server side of coring::tls — a TlsStream's handshake and record
// path, its BIO, its receives and sends — against a client the input drives, over a Unix
// stream socket pair on one EventLoop (one per process; each input one connection).
//
// The server: TlsStream::server over its socket; handshake() (bounded as byte 0 says; a
// handshake that timed out or was stopped while the session is intact is run once more,
// unbounded), then recv() into a buffer of the size byte 1 says until the input ends,
// echoing what it gets (or not), with its reader and writer as two tasks at once or one
// after the other, then close_notify (or not), then shutdown(SHUT_RDWR) of its socket.
// Its certificates (EC P-256, "localhost" and, for SNI, "*.example.com") are made in
// memory at start; their PEM files live in a mkdtemp directory only until the contexts
// have loaded them. Nothing private is committed.
//
// Input, byte 0 bit 0 = 0: raw. What a client sends as it is (ClientHellos, garbage, plain
// HTTP), no TLS of its own; it reads what the server sends all along:
//   byte 0   bits 1-2: the client's end after its bytes: shutdown(SHUT_WR); close; an
//            8 ms pause, then SHUT_WR; SHUT_WR and no more reading;
//            bits 3-4: the server's handshake bound: none, an expired deadline (1 ns), a
//            5 ms timeout, a stop the client fires after its bytes
//   byte 1   how the sends cut the bytes (see Wire); bit 7 also: the server receives
//            from a pool of four 512-byte buffers (TlsStream::use_receive_pool)
//   rest     the bytes
// Byte 0 bit 0 = 1: scripted. An OpenSSL client of the harness (memory BIOs; it checks
// no certificate) shakes hands with the server, its records going out as the input says:
//   byte 0   bits 1-2: the server's handshake bound, as above (the stop fires before the
//            client's second flight); bit 3: the client goes no higher than TLS 1.2;
//            bit 4: it offers the session made at start (resumption); bits 5-7: its end
//            after the script (End)
//   byte 1   the server: bits 0-1 its recv() buffer (7, 512, 4096, 33000 bytes); bits 2-3
//            a greeting it sends first (none, 100, 17000, 40000 bytes); bit 4 it echoes;
//            bit 5 it answers the input's end with close_notify; bit 6 its reader and
//            writer run at once; bit 7, with the 5 ms timeout: the client pauses 8 ms
//            before its second flight
//   byte 2   how the sends cut the client's records (see Wire); bit 7 also: the
//            server receives from the pool, as for a raw input
//   byte 3-4 byte 4 XORed into the client's handshake bytes at offset 2 * byte 3
//   rest     the script, one op a byte (low nibble the op, high nibble its argument):
//            send application data, send input bytes as data, wait for the echo, stop the
//            server's recv(), KeyUpdate, flip a byte of a later record, inject raw bytes,
//            have the server send close_notify, pause, close_notify, SHUT_WR, close,
//            re-cut the sends, renegotiate (TLS 1.2); see client_op()
// TLS_FUZZ_VERBOSE=1 prints what each exchange did.
//
// What must hold, whatever the input:
//   - the exchange ends (within watchdog_limit): the server never waits on a client
//     that has ended;
//   - every result is a value in the system, generic, coring.tls or openssl category,
//     with a message, and OpenSSL's error queue is empty after every call;
//   - a failure that ends the session is failure() from then on, and the next call says
//     TlsErrc::broken; a failed handshake refuses recv() (broken, or handshake_required
//     when the session is intact);
//   - a raw client never completes a handshake;
//   - what the client decrypts is a prefix of the greeting and what it sent (echoed);
// and, when both handshakes completed and no byte was flipped or injected:
//   - the end the server's recv() sees is the client's: close_notify is 0, SHUT_WR is
//     TlsErrc::truncated (the session intact, a second recv() the same), a close
//     truncated or ECONNRESET (or broken, after an echo into the closed socket);
//   - a client that keeps reading gets the greeting and its bytes back exactly (stopped
//     receives lose nothing), and the server's close_notify when it sent one;
//   - both sides agree on whether the session was resumed;
//   - the server's handshake completes, unless a timeout or stop ended it (or the client
//     closed right after its own);
// and the process keeps its open fds, no pool buffer stays held, and ASan, UBSan and
// LeakSanitizer stay silent. A failed check prints what it saw and aborts, which
// libFuzzer reports with the input.
#include <dirent.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "coring/net/buffer_pool.hpp"
#include "coring/net/stream.hpp"
#include "coring/net/tls.hpp"
#include "coring/runtime/event.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"

namespace {

using namespace coring;
using namespace std::chrono_literals;
using net::TlsErrc;

// An exchange that has not ended by then is a hang (libFuzzer's -timeout in
// scripts/fuzz.sh is 10 s); a bounded input takes a few milliseconds.
constexpr auto watchdog_limit = 3s;
constexpr std::size_t max_ops = 256;
constexpr std::size_t max_sent_bytes = 128 * 1024;
// With the 7-byte receive buffer, each 7 bytes is a round trip of the loop (and, echoed,
// a record): an input sends at most this much then.
constexpr std::size_t max_sent_bytes_small_recv = 1024;
constexpr std::size_t max_pauses = 8;
constexpr std::size_t max_pieces = 512;  // shaped sends per input; past them, whole ones
constexpr auto tampered_wait = 5ms;
// The server's short handshake timeout, and the client's pause that outlasts it.
constexpr auto short_timeout = 5ms;
constexpr auto long_pause = 8ms;
constexpr std::array<std::size_t, 4> recv_sizes = {7, 512, 4096, 33000};
constexpr std::array<std::size_t, 4> greeting_sizes = {0, 100, 17000, 40000};

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "tls_fuzz: %s\n%s\n", what, detail.c_str());
  std::abort();
}

void check(bool holds, const char* what, const std::string& detail = {}) {
  if (!holds) fail(what, detail);
}

std::string describe(const std::error_code& error) {
  return error ? std::string(error.category().name()) + " " + std::to_string(error.value()) + ": " +
                     error.message()
               : std::string("no error");
}

// The bytes the server greets with and the client sends: fixed functions of the offset,
// so that a reordered or repeated piece cannot pass for the right one.
char greeting_byte(std::size_t i) { return static_cast<char>((i * 29 + 101) & 0xff); }
char payload_byte(std::size_t i) { return static_cast<char>((i * 167 + (i >> 8)) & 0xff); }

std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

// --- Certificates, made at start ------------------------------------------------------------

struct Pem {
  std::string certificate;
  std::string key;
};

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// A new EC P-256 key and a self-signed certificate naming `names` (DNS subjectAltNames;
// the first is also the subject's CN), valid from an hour ago for a day.
Pem make_certificate(const std::vector<std::string>& names) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  check(key != nullptr && cert != nullptr, "EC key generation failed");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* subject = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(names[0].c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, subject);
  std::string sans;
  for (const std::string& name : names) sans += (sans.empty() ? "DNS:" : ",DNS:") + name;
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, sans.c_str());
  check(san != nullptr && X509_add_ext(cert, san, -1) == 1, "adding the subjectAltName failed");
  X509_EXTENSION_free(san);
  check(X509_sign(cert, key, EVP_sha256()) > 0, "signing the certificate failed");
  BIO* cert_pem = BIO_new(BIO_s_mem());
  BIO* key_pem = BIO_new(BIO_s_mem());
  check(PEM_write_bio_X509(cert_pem, cert) == 1 &&
            PEM_write_bio_PrivateKey(key_pem, key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "writing the PEMs failed");
  Pem pem{bio_text(cert_pem), bio_text(key_pem)};
  BIO_free(cert_pem);
  BIO_free(key_pem);
  X509_free(cert);
  EVP_PKEY_free(key);
  return pem;
}

void write_file(const std::string& path, const std::string& text) {
  std::FILE* file = std::fopen(path.c_str(), "wbx");
  check(file != nullptr, "creating a PEM file failed", path);
  check(std::fwrite(text.data(), 1, text.size(), file) == text.size() && std::fclose(file) == 0,
        "writing a PEM file failed", path);
}

struct Contexts {
  net::TlsContext server;
  net::TlsContext client;
};

// The server's context (ALPN h2 and http/1.1; "localhost", and "*.example.com" by SNI)
// and a client's that trusts it. The PEM files exist only while the contexts load them.
Contexts make_contexts() {
  const Pem main = make_certificate({"localhost"});
  const Pem alt = make_certificate({"*.example.com", "alt.test"});
  char dir_template[] = "/tmp/coring-tls-fuzz.XXXXXX";
  const char* dir = ::mkdtemp(dir_template);
  check(dir != nullptr, "mkdtemp failed");
  const std::string base(dir);
  const std::vector<std::string> files = {base + "/cert.pem", base + "/key.pem",
                                          base + "/alt-cert.pem", base + "/alt-key.pem"};
  write_file(files[0], main.certificate);
  write_file(files[1], main.key);
  write_file(files[2], alt.certificate);
  write_file(files[3], alt.key);
  auto server = net::TlsContext::server({.certificate_chain_file = files[0],
                                         .private_key_file = files[1],
                                         .alpn = {"h2", "http/1.1"},
                                         .sni_certificates = {{files[2], files[3]}}});
  // The client does not check the server's certificate: that is the client's code, not
  // the server's, and it would double the cost of a handshake.
  auto client = net::TlsContext::client(
      {.ca_file = files[0], .verify_peer = false, .resume_sessions = false});
  for (const std::string& file : files) ::unlink(file.c_str());
  ::rmdir(dir);
  check(server.ok(), "the server's context", server.message());
  check(client.ok(), "the client's context", client.message());
  return Contexts{std::move(server).value(), std::move(client).value()};
}

// The process's open fds, each as "fd -> what", but for the directory's own and pipes:
// the sanitizers' symbolizer keeps two pipes to llvm-symbolizer from its first use on
// (libFuzzer's NEW_FUNC lines), and nothing of an exchange is a pipe.
std::vector<std::string> open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  check(dir != nullptr, "opendir(/proc/self/fd) failed");
  std::vector<std::string> fds;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.' || std::atoi(entry->d_name) == ::dirfd(dir)) continue;
    const std::string link = std::string("/proc/self/fd/") + entry->d_name;
    char target[256] = {};
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (std::string_view(target).starts_with("pipe:")) continue;
    fds.push_back(std::string(entry->d_name) + " -> " + (n > 0 ? target : "?"));
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  return fds;
}

std::string lines(const std::vector<std::string>& texts) {
  std::string joined;
  for (const std::string& text : texts) joined += "  " + text + "\n";
  return joined;
}

// --- The input --------------------------------------------------------------------------------

class Input {
 public:
  Input() = default;
  explicit Input(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  [[nodiscard]] bool empty() const { return bytes_.empty(); }
  std::uint8_t take() {
    if (bytes_.empty()) return 0;
    const std::uint8_t b = bytes_[0];
    bytes_ = bytes_.subspan(1);
    return b;
  }
  std::string take_bytes(std::size_t n) {
    n = std::min(n, bytes_.size());
    std::string taken(reinterpret_cast<const char*>(bytes_.data()), n);
    bytes_ = bytes_.subspan(n);
    return taken;
  }

 private:
  std::span<const std::uint8_t> bytes_;
};

enum class Bound : std::uint8_t { none, expired, short_timeout, stop };

// How the client ends after its script (byte 0 bits 5-7 of a scripted input).
enum class End : std::uint8_t {
  close_notify_shut_wr,
  close_notify,  // and reads until the server ends
  shut_wr,
  close,
  close_notify_close,
  echo_close_notify_shut_wr,  // each "echo_" waits for the echo first
  echo_shut_wr,
  echo_close,
};

// What the client did first to end the input (what the server's recv() must see).
enum class First : std::uint8_t { none, close_notify, shut_wr, close };

// How the client's sends cut its bytes (one byte): bits 0-2 the largest piece (0: each
// flush whole, 1: one byte, k: up to 2^(k+2) bytes), bit 3 a turn of the loop between
// pieces, bits 4-7 the seed of the sizes.
class Wire {
 public:
  void reshape(std::uint8_t byte) {
    largest_ = (byte & 7) == 0 ? 0 : (byte & 7) == 1 ? 1 : std::size_t{1} << ((byte & 7) + 2);
    yield_ = (byte & 8) != 0;
    state_ = 0x9e3779b9U ^ (byte >> 4);
  }
  [[nodiscard]] bool yields() const { return yield_ && pieces_left_ > 0; }
  std::size_t next_piece(std::size_t left) {
    if (largest_ == 0 || pieces_left_ == 0) return left;
    --pieces_left_;
    state_ ^= state_ << 13;  // xorshift32: any fixed sequence will do
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    return std::min(left, 1 + state_ % largest_);
  }

 private:
  std::size_t largest_ = 0;
  bool yield_ = false;
  std::uint32_t state_ = 1;
  std::size_t pieces_left_ = max_pieces;
};

// --- One exchange -------------------------------------------------------------------------------

struct Run {
  // What the input asked for.
  bool raw = false;
  std::uint8_t raw_end = 0;         // byte 0 bits 1-2 of a raw input
  bool pooled = false;              // the server receives from the fixture's pool
  net::BufferPool* pool = nullptr;  // that pool, when it does
  Bound bound = Bound::none;
  bool tls12 = false;
  bool resume = false;
  End end = End::close_notify_shut_wr;
  std::size_t recv_size = recv_sizes[0];
  std::size_t greeting_size = 0;
  bool echo = false;
  bool answer_close_notify = false;
  bool concurrent = false;
  bool pause_second_flight = false;
  Wire wire;
  std::vector<std::pair<std::size_t, std::uint8_t>> flips;  // offset in the client's output

  net::StreamSocket server_socket;
  net::StreamSocket client_socket;

  // The server's side.
  std::stop_source handshake_stop;
  std::stop_source* recv_stop = nullptr;  // the reader's, while its recv() is in flight
  std::string queue;                      // received, not yet echoed
  Event writer_wake;
  bool reader_done = false;
  bool shutdown_asked = false;
  bool handshake_ok = false;
  std::error_code handshake_error;
  std::error_code handshake_failure;  // failure() after the handshake
  bool server_resumed = false;
  std::optional<std::error_code> reader_end;  // an empty code: recv() said 0
  std::error_code failure_at_end;             // failure() when the reader ended
  bool close_notify_tried = false;
  bool server_said_close_notify = false;
  std::error_code close_notify_error;
  std::size_t recv_cancels = 0;

  // The client's side.
  bool client_handshake_ok = false;
  bool client_resumed = false;
  std::string sent;    // application data the client's records carry
  std::string echoed;  // what the client decrypted
  std::size_t out_offset = 0;
  bool tampered = false;  // a byte flipped or injected, or a renegotiation asked
  bool client_got_close_notify = false;
  bool client_read_failed = false;
  bool client_write_dead = false;
  bool client_shut = false;
  bool client_closed = false;
  First first_end = First::none;
  std::size_t pauses = 0;
  std::stop_source reader_stop;
  bool reader_finished = false;
  Event progress;  // set whenever the client's reader got something or ended
  SSL_SESSION* keep_session = nullptr;
  bool want_session = false;

  [[nodiscard]] std::string state() const {
    return "raw " + std::to_string(raw) + ", handshake " + std::to_string(handshake_ok) + " (" +
           describe(handshake_error) + ", failure " + describe(handshake_failure) +
           "), client handshake " + std::to_string(client_handshake_ok) + ", reader end " +
           (reader_end ? describe(*reader_end) : std::string("none")) + " (failure " +
           describe(failure_at_end) + "), reader done " + std::to_string(reader_done) +
           ", first end " + std::to_string(static_cast<int>(first_end)) + ", tampered " +
           std::to_string(tampered) + ", sent " + std::to_string(sent.size()) + ", echoed " +
           std::to_string(echoed.size()) + ", greeting " + std::to_string(greeting_size) +
           ", echo " + std::to_string(echo) + ", concurrent " + std::to_string(concurrent) +
           ", client closed " + std::to_string(client_closed) + ", shut " +
           std::to_string(client_shut) + ", got close_notify " +
           std::to_string(client_got_close_notify) + ", server close_notify " +
           std::to_string(server_said_close_notify) + " (" + describe(close_notify_error) + ")" +
           ", resumed " + std::to_string(server_resumed) + "/" + std::to_string(client_resumed) +
           ", recv cancels " + std::to_string(recv_cancels);
  }
  void end_first(First how) {
    if (first_end == First::none) first_end = how;
  }
};

struct Fixture {
  EventLoop loop;
  // Small buffers, so that a handshake's flights and bulk data outgrow them.
  net::BufferPool pool{loop, {.buffer_size = 512, .count = 4, .incremental = false}};
  Contexts contexts = make_contexts();
  std::array<SSL_SESSION*, 2> sessions{};  // TLS 1.3's and TLS 1.2's, made at start
  std::vector<std::string> fds;
};

Fixture* fixture_ = nullptr;

// The checks every result of the server's TlsStream passes: a value in a known category,
// with a message, and OpenSSL's error queue empty.
void check_result(const std::error_code& error, const char* call) {
  check(ERR_peek_error() == 0, "a TlsStream call left OpenSSL's error queue non-empty", call);
  if (!error) return;
  const std::error_category& c = error.category();
  check(c == std::system_category() || c == std::generic_category() || c == net::tls_category() ||
            c == net::openssl_category(),
        "an error in an unexpected category", std::string(call) + ": " + describe(error));
  check(!error.message().empty(), "an error without a message", call);
}

// After `error` from a call: a failure that ended the session is failure(), and the next
// call says broken.
Task<void> check_failure(net::TlsStream& tls, const std::error_code& error) {
  if (error.category() != net::openssl_category()) co_return;
  check(tls.failure() == error, "an OpenSSL failure that is not failure()",
        describe(error) + " vs " + describe(tls.failure()));
  std::array<std::byte, 16> buffer{};
  const Result<std::size_t> again = co_await tls.recv(buffer);
  check_result(again.error(), "recv after a failure");
  check(again.error() == TlsErrc::broken, "a call after a failure that is not broken",
        describe(again.error()));
}

// --- The server ------------------------------------------------------------------------------

Task<void> handshake(net::TlsStream& tls, Run& run) {
  std::chrono::nanoseconds timeout{0};
  if (run.bound == Bound::expired) timeout = 1ns;
  if (run.bound == Bound::short_timeout) timeout = short_timeout;
  std::stop_token stop;
  if (run.bound == Bound::stop) stop = run.handshake_stop.get_token();
  Result<void> done = co_await tls.handshake({.timeout = timeout}, stop);
  check_result(done.error(), "handshake");
  const bool bounded =
      done.error() == std::errc::timed_out || done.error() == std::errc::operation_canceled;
  if (!done && bounded && !tls.failure()) {
    // Nothing was lost while the handshake waited for input: it goes on.
    done = co_await tls.handshake();
    check_result(done.error(), "handshake again");
  }
  run.handshake_ok = done.ok();
  run.handshake_error = done.error();
  run.handshake_failure = tls.failure();
  run.server_resumed = tls.resumed();
  if (done) co_return;
  check(!tls.failure() || tls.failure() == done.error(),
        "a failed handshake whose failure() is another error",
        describe(done.error()) + " vs " + describe(tls.failure()));
  std::array<std::byte, 16> buffer{};
  const Result<std::size_t> refused = co_await tls.recv(buffer);
  check_result(refused.error(), "recv after a failed handshake");
  check(refused.error() == (tls.failure() ? make_error_code(TlsErrc::broken)
                                          : make_error_code(TlsErrc::handshake_required)),
        "recv after a failed handshake", describe(refused.error()));
}

// The writer's send of what the reader queued; after the server's close_notify, a send
// is refused (broken_pipe) and the rest is dropped.
Task<void> echo_queued(net::TlsStream& tls, Run& run, bool& echoing) {
  if (run.queue.empty()) co_return;
  const std::string chunk = std::exchange(run.queue, {});
  if (!run.echo || !echoing) co_return;
  if (run.server_said_close_notify) {
    const Result<std::size_t> refused = co_await tls.send(bytes_of(chunk));
    check_result(refused.error(), "send after shutdown");
    check(refused.error() == std::errc::broken_pipe || refused.error() == TlsErrc::broken,
          "a send after close_notify that is not refused", describe(refused.error()));
    echoing = false;
    co_return;
  }
  const net::TransferResult sent = co_await tls.send_all(bytes_of(chunk));
  check_result(sent.error(), "send_all");
  if (!sent.ok()) {
    echoing = false;
    co_await check_failure(tls, sent.error());
  }
}

// The server's close_notify, tried once.
Task<void> say_close_notify(net::TlsStream& tls, Run& run) {
  if (run.close_notify_tried) co_return;
  run.close_notify_tried = true;
  const Result<void> said = co_await tls.shutdown();
  check_result(said.error(), "shutdown");
  run.server_said_close_notify = said.ok();
  run.close_notify_error = said.error();
}

// One recv(); returns false when the input has ended (or failed).
Task<bool> receive(net::TlsStream& tls, Run& run, std::vector<std::byte>& buffer) {
  std::stop_source stop;
  run.recv_stop = &stop;
  const Result<std::size_t> got = co_await tls.recv(buffer, stop.get_token());
  run.recv_stop = nullptr;
  check_result(got.error(), "recv");
  if (got && *got > 0) {
    check(*got <= buffer.size(), "recv said more bytes than the buffer holds");
    run.queue.append(reinterpret_cast<const char*>(buffer.data()), *got);
    co_return true;
  }
  if (got.error() == std::errc::operation_canceled) {
    ++run.recv_cancels;
    co_return true;  // a stopped receive loses nothing: the session goes on
  }
  run.reader_end = got.error();
  run.failure_at_end = tls.failure();
  if (got.error() == TlsErrc::truncated) {
    // Only the input ended; it stays ended.
    const Result<std::size_t> again = co_await tls.recv(buffer);
    check_result(again.error(), "recv after truncation");
    check(again.error() == TlsErrc::truncated || again.error() == TlsErrc::broken,
          "recv after truncation", describe(again.error()));
  }
  co_await check_failure(tls, got.error());
  co_return false;
}

Task<void> greet(net::TlsStream& tls, Run& run, bool& echoing) {
  if (run.greeting_size == 0) co_return;
  std::string greeting(run.greeting_size, '\0');
  for (std::size_t i = 0; i < greeting.size(); ++i) greeting[i] = greeting_byte(i);
  const net::TransferResult sent = co_await tls.send_all(bytes_of(greeting));
  check_result(sent.error(), "send_all (greeting)");
  if (!sent.ok()) {
    echoing = false;
    co_await check_failure(tls, sent.error());
  }
}

Task<void> reader(net::TlsStream& tls, Run& run) {
  std::vector<std::byte> buffer(run.recv_size);
  while (co_await receive(tls, run, buffer)) run.writer_wake.set();
  run.reader_done = true;
  run.writer_wake.set();
}

Task<void> writer(net::TlsStream& tls, Run& run) {
  bool echoing = true;
  co_await greet(tls, run, echoing);
  for (;;) {
    // It waits while it has nothing to do: after a failed send it says no close_notify,
    // so a close_notify asked then is no work (waking for it would spin without end).
    while (run.queue.empty() && !run.reader_done &&
           (!run.shutdown_asked || run.close_notify_tried || !echoing)) {
      run.writer_wake.reset();
      co_await run.writer_wake.wait();
    }
    co_await echo_queued(tls, run, echoing);
    if (run.shutdown_asked && echoing) co_await say_close_notify(tls, run);
    if (run.reader_done && run.queue.empty()) co_return;
  }
}

// The reader's and writer's work in one task: recv, then echo, then recv.
Task<void> one_after_the_other(net::TlsStream& tls, Run& run) {
  bool echoing = true;
  co_await greet(tls, run, echoing);
  std::vector<std::byte> buffer(run.recv_size);
  for (;;) {
    const bool more = co_await receive(tls, run, buffer);
    co_await echo_queued(tls, run, echoing);
    if (run.shutdown_asked && echoing) co_await say_close_notify(tls, run);
    if (!more) break;
  }
  run.reader_done = true;
}

Task<void> serve(const Fixture& f, Run& run) {
  auto made = net::TlsStream::server(run.server_socket, f.contexts.server);
  check(made.ok(), "TlsStream::server failed", made.message());
  net::TlsStream tls = std::move(made).value();
  if (run.pool != nullptr) check(tls.use_receive_pool(*run.pool).ok(), "use_receive_pool failed");
  co_await handshake(tls, run);
  if (run.handshake_ok) {
    check(!run.raw, "a raw client completed a handshake");
    if (run.concurrent) {
      co_await when_all(reader(tls, run), writer(tls, run));
    } else {
      co_await one_after_the_other(tls, run);
    }
    const bool ended =
        run.reader_end && (!*run.reader_end || *run.reader_end == TlsErrc::truncated);
    if (run.answer_close_notify && ended) co_await say_close_notify(tls, run);
  }
  // The end of the socket both ways: the client's reads end and its sends fail.
  co_await run.server_socket.shutdown(SHUT_RDWR);
}

// --- The client ------------------------------------------------------------------------------

// An OpenSSL client over memory BIOs: the harness moves its records.
class Client {
 public:
  Client(const Fixture& f, const Run& run) : ssl_(SSL_new(f.contexts.client.native_handle())) {
    BIO* in = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    check(ssl_ != nullptr && in != nullptr && out_ != nullptr, "the client's SSL");
    SSL_set_bio(ssl_, in, out_);
    in_ = in;
    SSL_set_connect_state(ssl_);
    check(SSL_set_tlsext_host_name(ssl_, "localhost") == 1, "the client's SNI");
    // Its record buffers stay: the harness's allocations are not what is under test.
    SSL_clear_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
    if (run.tls12) SSL_set_max_proto_version(ssl_, TLS1_2_VERSION);
    SSL_SESSION* session = f.sessions[run.tls12 ? 1 : 0];
    if (run.resume && session != nullptr) {
      // A copy: OpenSSL marks the session of a connection that fails as not resumable.
      SSL_SESSION* copy = SSL_SESSION_dup(session);
      check(copy != nullptr && SSL_set_session(ssl_, copy) == 1, "offering the session");
      SSL_SESSION_free(copy);
    }
    ERR_clear_error();
  }
  ~Client() { SSL_free(ssl_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  [[nodiscard]] SSL* ssl() const { return ssl_; }
  // The records OpenSSL wrote since the last call.
  std::string take_output() {
    std::string output(BIO_pending(out_), '\0');
    if (!output.empty()) BIO_read(out_, output.data(), static_cast<int>(output.size()));
    return output;
  }
  void give_input(std::span<const std::byte> input) {
    BIO_write(in_, input.data(), static_cast<int>(input.size()));
  }
  // The result of an OpenSSL call of the client's, its error queue emptied (the server's
  // calls must find it empty).
  int result(int r) {
    const int error = r > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
    ERR_clear_error();
    return error;
  }

  bool read_done = false;  // close_notify or a failure: nothing more to decrypt

 private:
  SSL* ssl_;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
};

// Sends `bytes` as run.wire cuts them, with the flips that fall in them. False when the
// socket cannot send (the server has gone, or the client shut its side).
Task<bool> send_wire(Run& run, std::string bytes) {
  if (run.client_closed || run.client_shut || run.client_write_dead) co_return false;
  for (const auto& [offset, mask] : run.flips) {
    if (offset >= run.out_offset && offset < run.out_offset + bytes.size()) {
      bytes[offset - run.out_offset] = static_cast<char>(bytes[offset - run.out_offset] ^ mask);
      run.tampered = true;
    }
  }
  run.out_offset += bytes.size();
  std::size_t at = 0;
  while (at < bytes.size()) {
    const std::size_t piece = run.wire.next_piece(bytes.size() - at);
    const net::TransferResult sent =
        co_await run.client_socket.send_all(bytes_of(std::string_view(bytes).substr(at, piece)));
    if (!sent.ok()) {
      run.client_write_dead = true;
      co_return false;
    }
    at += piece;
    if (run.wire.yields() && at < bytes.size()) co_await sleep_for(0ns);
  }
  co_return true;
}

Task<bool> flush(Run& run, Client& client) {
  co_return co_await send_wire(run, client.take_output());
}

// Decrypts what came in, until OpenSSL wants more.
void decrypt(Run& run, Client& client) {
  char plain[16384];
  while (!client.read_done) {
    std::size_t n = 0;
    const int error = client.result(SSL_read_ex(client.ssl(), plain, sizeof plain, &n));
    if (error == SSL_ERROR_NONE) {
      run.echoed.append(plain, n);
      continue;
    }
    if (error == SSL_ERROR_WANT_READ) return;
    client.read_done = true;
    if (error == SSL_ERROR_ZERO_RETURN) {
      run.client_got_close_notify = true;
    } else {
      run.client_read_failed = true;
    }
  }
}

// Reads the socket to its end (or the client's stop), decrypting when `client` is there.
Task<void> client_reader(Run& run, Client* client) {
  std::vector<std::byte> buffer(16384);
  for (;;) {
    const IoResult got =
        co_await run.client_socket.recv(buffer).with_stop(run.reader_stop.get_token());
    if (got.res <= 0) break;
    if (client != nullptr) {
      client->give_input(std::span(buffer).first(static_cast<std::size_t>(got.res)));
      decrypt(run, *client);
    }
    run.progress.set();
  }
  run.reader_finished = true;
  run.progress.set();
}

Task<void> wait_progress(Run& run) {
  run.progress.reset();
  co_await run.progress.wait();
}

Task<void> shut_wr(Run& run) {
  if (run.client_closed || run.client_shut) co_return;
  co_await run.client_socket.shutdown(SHUT_WR);
  run.client_shut = true;
  run.end_first(First::shut_wr);
}

// A close: the reader's receive stopped and done first (an fd closed under a request in
// flight would stay open in the kernel until it ends).
Task<void> close_socket(Run& run) {
  if (run.client_closed) co_return;
  run.reader_stop.request_stop();
  while (!run.reader_finished) co_await wait_progress(run);
  co_await run.client_socket.close();
  run.client_closed = true;
  run.end_first(First::close);
}

Task<void> close_notify(Run& run, Client& client) {
  if (run.client_closed || run.client_shut || !run.client_handshake_ok) co_return;
  const int error = client.result(SSL_shutdown(client.ssl()));
  (void)error;  // 0 (sent, the peer's not yet seen) is what a first call returns
  const std::string output = client.take_output();
  if (!output.empty() && co_await send_wire(run, output)) run.end_first(First::close_notify);
}

// Waits until the client has decrypted the greeting and all it sent back, when the server
// is to echo and nothing stands in the way.
Task<void> wait_echo(Run& run) {
  if (run.tampered || run.shutdown_asked || run.client_closed) co_return;
  const std::size_t expected = run.greeting_size + (run.echo ? run.sent.size() : 0);
  while (run.echoed.size() < expected && !run.reader_finished && !run.client_got_close_notify &&
         !run.client_read_failed) {
    co_await wait_progress(run);
  }
}

bool can_write(const Run& run, const Client& client) {
  return run.client_handshake_ok && !client.read_done && run.first_end == First::none &&
         !run.client_write_dead;
}

Task<void> send_data(Run& run, Client& client, std::string data) {
  const std::size_t most = run.recv_size < 16 ? max_sent_bytes_small_recv : max_sent_bytes;
  if (!can_write(run, client) || run.sent.size() + data.size() > most) co_return;
  std::size_t written = 0;
  if (client.result(SSL_write_ex(client.ssl(), data.data(), data.size(), &written)) ==
      SSL_ERROR_NONE) {
    run.sent.append(data, 0, written);
  }
  co_await flush(run, client);
}

// Handshake records OpenSSL makes outside a handshake (KeyUpdate, renegotiation).
Task<void> handshake_message(Run& run, Client& client) {
  client.result(SSL_do_handshake(client.ssl()));
  co_await flush(run, client);
}

std::string payload(const Run& run, std::size_t size) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i) data[i] = payload_byte(run.sent.size() + i);
  return data;
}

// One op of the script: low nibble the op, high nibble its argument.
Task<void> client_op(Run& run, Client& client, Input& script) {
  const std::uint8_t op = script.take();
  const std::uint8_t arg = op >> 4;
  switch (op & 0x0f) {
    case 1:  // arg + 1 bytes of the input as application data
      co_await send_data(run, client, script.take_bytes(arg + 1U));
      break;
    case 2:
      co_await wait_echo(run);
      break;
    case 3:
      if (run.recv_stop != nullptr) run.recv_stop->request_stop();
      break;
    case 4:  // KeyUpdate (TLS 1.3), arg bit 0: the server is asked to update too
      if (can_write(run, client) && SSL_version(client.ssl()) == TLS1_3_VERSION) {
        client.result(SSL_key_update(client.ssl(), (arg & 1) != 0 ? SSL_KEY_UPDATE_REQUESTED
                                                                  : SSL_KEY_UPDATE_NOT_REQUESTED));
        co_await handshake_message(run, client);
      }
      break;
    case 5: {  // a byte of the output (arg * 256 + next) bytes on XORed with the next (or 1)
      const std::size_t ahead = arg * 256U + script.take();
      const std::uint8_t mask = script.take();
      run.flips.emplace_back(run.out_offset + ahead, mask == 0 ? 1 : mask);
      break;
    }
    case 6:  // arg + 1 bytes of the input sent raw, between records
      run.tampered = true;
      co_await send_wire(run, script.take_bytes(arg + 1U));
      break;
    case 7:  // the server sends close_notify after what it has echoed, if it still reads
      if (run.first_end != First::none) break;
      run.shutdown_asked = true;
      run.writer_wake.set();
      if (!run.concurrent && run.recv_stop != nullptr) run.recv_stop->request_stop();
      break;
    case 8:
      if (run.pauses++ < max_pauses) co_await sleep_for(1ms);
      break;
    case 9:
      co_await close_notify(run, client);
      break;
    case 10:
      co_await shut_wr(run);
      break;
    case 11:
      co_await close_socket(run);
      break;
    case 12:
      run.wire.reshape(script.take());
      break;
    case 13:  // renegotiation (TLS 1.2): refused by the server
      if (can_write(run, client) && SSL_version(client.ssl()) != TLS1_3_VERSION) {
        run.tampered = true;
        client.result(SSL_renegotiate(client.ssl()));
        co_await handshake_message(run, client);
      }
      break;
    default: {  // 0, 14, 15: application data, (next + 1) << (arg % 8) bytes, at most 20000
      const std::size_t size = std::min<std::size_t>((script.take() + 1U) << (arg % 8), 20000);
      co_await send_data(run, client, payload(run, size));
      break;
    }
  }
}

Task<void> finish(Run& run, Client* client) {
  const End end = run.end;
  if (end >= End::echo_close_notify_shut_wr) co_await wait_echo(run);
  switch (end) {
    case End::close_notify_shut_wr:
    case End::echo_close_notify_shut_wr:
      if (client != nullptr) co_await close_notify(run, *client);
      co_await shut_wr(run);
      break;
    case End::close_notify:
      if (client != nullptr) co_await close_notify(run, *client);
      // The socket stays open, unless the close_notify did not go, or a flipped or injected
      // byte may have left the server waiting for more of a record.
      if (run.first_end == First::none || run.tampered) co_await shut_wr(run);
      break;
    case End::shut_wr:
    case End::echo_shut_wr:
      co_await shut_wr(run);
      break;
    case End::close:
    case End::echo_close:
      co_await close_socket(run);
      break;
    case End::close_notify_close:
      if (client != nullptr) co_await close_notify(run, *client);
      co_await close_socket(run);
      break;
  }
}

Task<void> client_script(Run& run, Client& client, Input script) {
  for (std::size_t ops = 0;
       run.client_handshake_ok && !script.empty() && !run.client_closed && ops < max_ops; ++ops) {
    co_await client_op(run, client, script);
  }
  co_await finish(run, &client);
}

// The client's handshake: its flights go out as the wire cuts them; before the second,
// the pause or the stop the input asks for.
Task<void> client_handshake(Run& run, Client& client) {
  std::vector<std::byte> buffer(16384);
  std::size_t flights = 0;
  for (;;) {
    const int error = client.result(SSL_do_handshake(client.ssl()));
    std::string output = client.take_output();
    if (!output.empty()) {
      if (++flights == 2) {
        if (run.pause_second_flight) co_await sleep_for(long_pause);
        if (run.bound == Bound::stop) run.handshake_stop.request_stop();
      }
      if (!co_await send_wire(run, std::move(output))) co_return;
    }
    if (error == SSL_ERROR_NONE) {
      run.client_handshake_ok = true;
      run.client_resumed = SSL_session_reused(client.ssl()) == 1;
      co_return;
    }
    if (error != SSL_ERROR_WANT_READ) co_return;
    // A flipped byte may leave the server waiting for bytes that never come (a longer
    // record) while the client waits for its answer: a tampered client gives up.
    IoResult got;
    if (run.tampered) {
      got = co_await run.client_socket.recv(buffer).with_timeout(tampered_wait);
    } else {
      got = co_await run.client_socket.recv(buffer);
    }
    if (got.res <= 0) co_return;
    client.give_input(std::span(buffer).first(static_cast<std::size_t>(got.res)));
  }
}

Task<void> tls_client(const Fixture& f, Run& run, Input script) {
  Client client(f, run);
  co_await client_handshake(run, client);
  co_await when_all(client_reader(run, &client), client_script(run, client, script));
  if (run.want_session) run.keep_session = SSL_get1_session(client.ssl());
}

Task<void> raw_send(Run& run, std::string bytes) {
  co_await send_wire(run, std::move(bytes));
  if (run.bound == Bound::stop) run.handshake_stop.request_stop();
  switch (run.raw_end) {
    case 0:
      co_await shut_wr(run);
      break;
    case 1:
      co_await close_socket(run);
      break;
    case 2:
      co_await sleep_for(long_pause);
      co_await shut_wr(run);
      break;
    default:  // the end of stream while what the server sent is still unread
      co_await shut_wr(run);
      run.reader_stop.request_stop();
      break;
  }
}

Task<void> raw_client(Run& run, std::string bytes) {
  co_await when_all(client_reader(run, nullptr), raw_send(run, std::move(bytes)));
}

// --- The exchange and its checks ------------------------------------------------------------

Task<void> watchdog(const Run& run, std::stop_token finished) {
  const IoResult slept = co_await sleep_for(watchdog_limit).with_stop(std::move(finished));
  if (slept.res == 0) fail("the exchange did not end (a hang)", run.state());
}

Task<void> both_sides(const Fixture& f, Run& run, Input rest, std::stop_source& finished) {
  if (run.raw) {
    co_await when_all(serve(f, run), raw_client(run, rest.take_bytes(SIZE_MAX)));
  } else {
    co_await when_all(serve(f, run), tls_client(f, run, rest));
  }
  finished.request_stop();
}

Task<void> exchange(const Fixture& f, Run& run, Input rest) {
  std::stop_source finished;
  co_await when_all(both_sides(f, run, rest, finished), watchdog(run, finished.get_token()));
}

// The checks of a scripted exchange once both sides are done.
void check_outcome(const Run& run) {
  std::string expected(run.greeting_size, '\0');
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = greeting_byte(i);
  if (run.echo) expected += run.sent;
  check(std::string_view(expected).starts_with(run.echoed),
        "the client decrypted bytes the server was never given", run.state());
  if (run.tampered || !run.client_handshake_ok) return;
  // A TLS 1.3 client is done before the server has read its Finished (and sent its
  // tickets): a client that closes at once may fail the server's handshake.
  check(run.handshake_ok || run.handshake_error == std::errc::timed_out ||
            run.handshake_error == std::errc::operation_canceled || run.client_closed,
        "the server's handshake failed where the client's completed", run.state());
  if (!run.handshake_ok) return;
  check(run.server_resumed == run.client_resumed, "the sides disagree on resumption", run.state());
  check(run.reader_end.has_value(), "the server's reader did not end", run.state());
  const std::error_code end = *run.reader_end;
  if (run.client_closed) {
    // An echo into the closed socket may fail the session before the reader sees the end.
    check(end == TlsErrc::broken || end == std::errc::connection_reset ||
              end == TlsErrc::truncated || (!end && run.first_end == First::close_notify),
          "a closed client's end", run.state());
    return;
  }
  switch (run.first_end) {
    case First::close_notify:
      check(!end, "close_notify did not end the input cleanly", run.state());
      break;
    case First::shut_wr:
      check(end == TlsErrc::truncated, "an end of stream that is not truncation", run.state());
      check(!run.failure_at_end, "a truncation that failed the session",
            describe(run.failure_at_end));
      break;
    case First::close:
    case First::none:
      fail("the client did not end", run.state());
  }
  if (run.client_read_failed) return;
  if (run.echo && !run.shutdown_asked) {
    check(run.echoed == expected, "the echo is not what the client sent", run.state());
  }
  const bool server_ended = run.shutdown_asked || run.answer_close_notify;
  if (server_ended) {
    check(run.server_said_close_notify, "the server's close_notify failed", run.state());
  }
  check(run.client_got_close_notify == run.server_said_close_notify,
        "the client's view of the server's close_notify", run.state());
}

// The exchange `data` describes (see the top of the file); returns the script.
Input read_config(std::span<const std::uint8_t> data, Run& run) {
  Input input(data);
  const std::uint8_t mode = input.take();
  run.raw = (mode & 1) == 0;
  // The wire byte's bit 7 (which only seeds how sends are cut) also says the server
  // receives from the pool.
  const std::size_t wire_at = run.raw ? 1 : 2;
  run.pooled = data.size() > wire_at && (data[wire_at] & 0x80) != 0;
  run.bound = static_cast<Bound>((run.raw ? mode >> 3 : mode >> 1) & 3);
  run.raw_end = static_cast<std::uint8_t>((mode >> 1) & 3);
  if (run.raw) {
    run.wire.reshape(input.take());
  } else {
    run.tls12 = (mode & 8) != 0;
    run.resume = (mode & 16) != 0;
    run.end = static_cast<End>(mode >> 5);
    const std::uint8_t server = input.take();
    run.recv_size = recv_sizes[server & 3];
    run.greeting_size = greeting_sizes[(server >> 2) & 3];
    run.echo = (server & 16) != 0;
    run.answer_close_notify = (server & 32) != 0;
    run.concurrent = (server & 64) != 0;
    run.pause_second_flight = (server & 128) != 0 && run.bound == Bound::short_timeout;
    run.wire.reshape(input.take());
    const std::uint8_t at = input.take();
    const std::uint8_t mask = input.take();
    if (mask != 0) run.flips.emplace_back(2U * at, mask);
  }
  auto pair = net::StreamSocket::pair();
  check(pair.ok(), "socketpair failed", pair.message());
  run.server_socket = std::move(pair->first);
  run.client_socket = std::move(pair->second);
  return input;
}

void run_one(Fixture& f, std::span<const std::uint8_t> data, SSL_SESSION** keep = nullptr) {
  Run run;
  const Input script = read_config(data, run);
  if (run.pooled) run.pool = &f.pool;
  run.want_session = keep != nullptr;
  f.loop.run(exchange(f, run, script));
  check(ERR_peek_error() == 0, "OpenSSL's error queue is not empty after an exchange");
  check(f.pool.held() == 0, "a pool buffer still held after the exchange");
  static const bool verbose = std::getenv("TLS_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "tls_fuzz: %s\n", run.state().c_str());
  if (!run.raw) check_outcome(run);
  if (keep != nullptr) *keep = run.keep_session;
}

// A clean exchange whose session later inputs may resume: the handshake, 17 bytes echoed
// (the client's read takes a TLS 1.3 ticket in), close_notify both ways.
SSL_SESSION* first_session(Fixture& f, bool tls12) {
  const std::array<std::uint8_t, 8> script = {
      static_cast<std::uint8_t>(1 | (tls12 ? 8 : 0)), 0x30, 0, 0, 0, 0x00, 16, 0x02};
  SSL_SESSION* session = nullptr;
  run_one(f, script, &session);
  check(session != nullptr && SSL_SESSION_is_resumable(session) == 1,
        "the session made at start cannot be resumed");
  return session;
}

}  // namespace

// A smaller quarantine than ASan's 256 MB: OpenSSL allocates and frees a great deal per
// handshake, and with the default every allocation lands on fresh pages, whose faults
// were half of an exchange's time. 32 MB still holds the frees of dozens of exchanges
// for use-after-free to be caught. ASAN_OPTIONS overrides it.
extern "C" const char* __asan_default_options() { return "quarantine_size_mb=32"; }

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // Held to the end of the process, with its loop and contexts.
  fixture_ = new Fixture;
  fixture_->sessions[0] = first_session(*fixture_, false);
  fixture_->sessions[1] = first_session(*fixture_, true);
  fixture_->fds = open_fds();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  run_one(*fixture_, std::span(data, size));
  const std::vector<std::string> fds = open_fds();
  check(fds == fixture_->fds, "the exchange changed the process's open fds",
        "before:\n" + lines(fixture_->fds) + "after:\n" + lines(fds));
  return 0;
}
