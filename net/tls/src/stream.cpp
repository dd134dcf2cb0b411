// TlsStream: OpenSSL's state machine driven by the stream's receives and sends.
//
// Every operation is one OpenSSL call (SSL_do_handshake, SSL_read_ex, SSL_write_ex,
// SSL_shutdown) run until it completes: after each attempt, the records OpenSSL wrote
// into `pending` are sent, and when it wants input, one receive refills `in`. The BIO
// between them (below) never blocks and never fails a write: reads without input say
// "retry", reads after the socket's end of stream say "end of file".
#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "coring/net/error.hpp"
#include "coring/net/tls.hpp"
#include "coring/runtime/event.hpp"
#include "coring/runtime/event_loop.hpp"
#include "tls_internal.hpp"

namespace coring::net {

namespace {

// The receive buffer of a stream: two records of the largest size (16 KiB of plaintext
// and up to 256 bytes of overhead each), so that a bulk transfer takes one receive for
// about two records.
constexpr std::size_t in_capacity = 2 * (16384 + 256 + 5);
// One send() encrypts at most this much.
constexpr std::size_t max_send_bytes = 64 * 1024;
// The most of its capacity a send buffer keeps while another is on its way: a record
// of the largest size (16 KiB of plaintext, up to 256 bytes of overhead).
constexpr std::size_t kept_send_capacity = 16384 + 256 + 5;

}  // namespace

struct TlsStream::State {
  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() {
    // The kernel writes into `in` and reads `sending` while a request is in flight.
    assert(!receiving && !flushing && "a TlsStream destroyed with an operation in flight");
    if (ssl != nullptr) SSL_free(ssl);  // frees the BIO too
  }

  const StreamSocket* socket = nullptr;
  std::shared_ptr<const TlsContext::Shared> context;
  std::string server_name;  // a client's "name:port", when its context resumes sessions
  SSL* ssl = nullptr;

  // Received bytes OpenSSL has not taken yet: at[in_begin, in_end), in the buffer of
  // `pool` that `lease` holds, or in the stream's own buffer `in`.
  //
  // Without a pool, `in` is allocated at the first receive and kept. With one, a
  // receive takes a pool buffer only when bytes arrive, and each buffer goes back as
  // soon as OpenSSL has taken its last byte: a stream waiting for input holds no
  // receive buffer. A receive that fills a pool buffer (`bulk`: the peer is sending
  // more than one buffer holds) and a receive that finds the pool dry use `in` instead,
  // freed once its bytes are taken and the receives have come back short.
  BufferPool* pool = nullptr;
  BufferLease lease;
  std::unique_ptr<std::byte[]> in;
  const std::byte* at = nullptr;
  std::size_t in_begin = 0;
  std::size_t in_end = 0;
  bool bulk = false;
  bool eof = false;        // the socket's receive side ended
  bool receiving = false;  // a receive is in flight
  Event received;          // set when no receive is in flight

  // Records OpenSSL wrote that wait to be sent; `sending`, those a send is on. One
  // coroutine at a time sends (`flushing`), until `pending` is empty: records that
  // others add meanwhile go out with it, in the order OpenSSL wrote them.
  std::vector<std::byte> pending;
  std::vector<std::byte> sending;
  // The head of `pending` that may wait for the next write instead of a send of its own:
  // a TLS 1.3 server's session tickets, written as its handshake ends. A reader whose
  // input is already there does not send them (the client needs them for nothing but a
  // later resumption); the first write, close_notify, a reader that has records of its
  // own to send, or one that would wait for input (fill()) takes them.
  std::size_t deferred = 0;
  bool flushing = false;
  Event flushed;                // set when nobody is sending
  std::error_code send_failed;  // a send that failed or was cut short: records are lost

  bool reading = false;  // recv or handshake in flight
  bool writing = false;  // send or shutdown or handshake in flight
  bool handshake_done = false;
  bool shutdown_sent = false;
  // The failure that ended the session (a protocol error, truncation, a lost record):
  // the call that met it returns it, every later one TlsErrc::broken.
  std::error_code failure;
};

namespace {

// --- The BIO --------------------------------------------------------------------------------

using State = TlsStream::State;

int bio_write(BIO* bio, const char* data, std::size_t length, std::size_t* written) {
  auto* state = static_cast<State*>(BIO_get_data(bio));
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  try {
    state->pending.insert(state->pending.end(), bytes, bytes + length);
  } catch (...) {  // no memory: a failed write, not an exception through OpenSSL's C frames
    *written = 0;
    return 0;
  }
  *written = length;
  return 1;
}

int bio_read(BIO* bio, char* data, std::size_t length, std::size_t* read) {
  auto* state = static_cast<State*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const std::size_t held = state->in_end - state->in_begin;
  if (held == 0) {
    *read = 0;
    // The end of the socket's input is OpenSSL's to see only during the handshake (an
    // end of file, BIO_CTRL_EOF says so); after it, reads end as truncated in drive()
    // without OpenSSL failing the session and sending an alert.
    if (!state->eof || state->handshake_done) BIO_set_retry_read(bio);
    return 0;
  }
  const std::size_t n = std::min(held, length);
  std::memcpy(data, state->at + state->in_begin, n);
  state->in_begin += n;
  *read = n;
  if (state->in_begin == state->in_end && state->pool != nullptr) {
    // All taken: the buffer goes back (no receive is in flight while bytes wait).
    state->lease.reset();
    if (!state->bulk) state->in.reset();
  }
  return 1;
}

long bio_ctrl(BIO* bio, int command, long /*number*/, void* /*pointer*/) {
  const auto* state = static_cast<const State*>(BIO_get_data(bio));
  switch (command) {
    case BIO_CTRL_FLUSH:  // the records go out when the operation's attempt returns
      return 1;
    case BIO_CTRL_EOF:  // OpenSSL tells a truncation from a retry by this
      return state->eof && !state->handshake_done && state->in_begin == state->in_end ? 1 : 0;
    default:
      return 0;
  }
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

// The method, made once per process (BIO_meth_new is not cheap; it is never freed).
const BIO_METHOD* bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "coring stream");
    if (m == nullptr) return m;
    BIO_meth_set_write_ex(m, bio_write);
    BIO_meth_set_read_ex(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return method;
}

// --- Bounds ---------------------------------------------------------------------------------

// A stop token and, for the handshake, a deadline over all of an operation's I/O.
struct Bound {
  std::stop_token stop;
  std::optional<std::chrono::steady_clock::time_point> deadline;

  // The time left, or nullopt when there is no deadline; zero or less: expired.
  [[nodiscard]] std::optional<std::chrono::nanoseconds> left() const {
    if (!deadline) return std::nullopt;
    return *deadline - std::chrono::steady_clock::now();
  }
};

std::error_code timed_out() { return std::make_error_code(std::errc::timed_out); }
std::error_code cancelled() { return std::make_error_code(std::errc::operation_canceled); }

// The error of a failed OpenSSL call, as the caller should see it; the queue emptied.
std::error_code ssl_failure(const State& s) {
  const unsigned long first = ERR_peek_error();
  const TlsErrc ended = s.handshake_done ? TlsErrc::truncated : TlsErrc::handshake_eof;
  if (ERR_GET_LIB(first) == ERR_LIB_SSL) {
    const int reason = ERR_GET_REASON(first);
    if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
      ERR_clear_error();
      return make_error_code(ended);
    }
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      const long verdict = SSL_get_verify_result(s.ssl);
      if (verdict != X509_V_OK) {
        ERR_clear_error();
        return {static_cast<int>(verdict), x509_category()};
      }
    }
  }
  if (first == 0 && s.eof) return make_error_code(ended);  // SSL_ERROR_SYSCALL at the end
  return detail::take_openssl_error();
}

// Sends `pending` until it is empty. When another coroutine is sending, the records are
// its to send: with `wait` the caller waits until they are out, else it goes on at once.
// A send that fails or is cut short loses records: the session cannot go on. With
// `keep_unsent` (a reader's flush of OpenSSL's own records: a KeyUpdate's answer, an
// alert), a send stopped or timed out before its first byte left loses nothing: the
// records stay in `pending` for the next flush, and the stop's error is returned with
// send_failed left empty.
Task<std::error_code> flush(State& s, const Bound& bound, bool wait, bool keep_unsent = false) {
  if (s.flushing) {
    if (!wait) co_return s.send_failed;
    while (s.flushing) co_await s.flushed.wait();
    // A stopped reader's flush may have kept records, this caller's among them
    // (keep_unsent): then it sends them itself.
    if (s.send_failed || s.pending.empty()) co_return s.send_failed;
  }
  if (s.send_failed) co_return s.send_failed;
  s.flushing = true;
  s.flushed.reset();
  s.deferred = 0;  // they go now
  std::error_code unsent;
  // The records of `sending` back at the head of `pending`, before any added meanwhile.
  const auto keep = [&s] {
    s.sending.insert(s.sending.end(), s.pending.begin(), s.pending.end());
    std::swap(s.pending, s.sending);
    s.sending.clear();
  };
  while (!s.pending.empty()) {
    std::swap(s.pending, s.sending);
    // `pending` now has the last send's buffer, empty. A send may wait long (a client
    // that stopped reading), and records written meanwhile are few: a buffer grown past
    // one record is not kept for them.
    assert(s.pending.empty());
    if (s.pending.capacity() > kept_send_capacity) s.pending = std::vector<std::byte>();
    const auto left = bound.left();
    if (left && left->count() <= 0) {
      if (keep_unsent) {
        keep();
        unsent = timed_out();
      } else {
        s.send_failed = timed_out();
      }
      break;
    }
    // Statements, not a conditional expression: g++ 12 destroys an awaitable twice in
    // `c ? co_await a : co_await b`.
    TransferResult sent;
    if (left) {
      sent = co_await s.socket->send_all(s.sending).with_stop(bound.stop).with_deadline(*left);
    } else {
      sent = co_await s.socket->send_all(s.sending).with_stop(bound.stop);
    }
    if (!sent.ok() && keep_unsent && sent.bytes == 0 && sent.outcome != Outcome::completed) {
      keep();
      unsent = sent.error();
      break;
    }
    s.sending.clear();
    if (!sent.ok()) {
      s.send_failed = sent.error();
      break;
    }
  }
  if (s.send_failed) s.pending.clear();  // what is left can never be sent
  // Everything left: the next records go into the buffer the last send used, so that a
  // stream whose sends complete reuses its two buffers without allocating.
  if (!s.send_failed && s.pending.empty() && s.sending.empty()) std::swap(s.pending, s.sending);
  s.flushing = false;
  s.flushed.set();
  co_return s.send_failed ? s.send_failed : unsent;
}

// One receive, into a buffer of the pool or into `in` (State::pool): the count, now the
// input, 0 at the end of the stream, or -errno. `flags` MSG_DONTWAIT: -EAGAIN at once
// when nothing is there (then `bound` is not used).
Task<int> receive(State& s, const Bound& bound, int flags) {
  const auto left = bound.left();
  if (s.pool != nullptr && !s.bulk) {
    Result<BufferLease> got{BufferLease()};
    if ((flags & MSG_DONTWAIT) != 0) {
      got = co_await s.socket->recv(*s.pool, flags);
    } else if (left) {
      got = co_await s.socket->recv(*s.pool, flags).with_stop(bound.stop).with_timeout(*left);
    } else {
      got = co_await s.socket->recv(*s.pool, flags).with_stop(bound.stop);
    }
    if (got) {
      s.lease = std::move(*got);
      s.at = s.lease.data().data();
      s.in_begin = 0;
      s.in_end = s.lease.size();
      s.bulk = s.in_end >= s.pool->buffer_size();
      co_return static_cast<int>(s.in_end);
    }
    // A dry pool: this receive takes the stream's own buffer.
    if (got.error() != std::errc::no_buffer_space) co_return -got.error().value();
  }
  if (!s.in) s.in = std::make_unique_for_overwrite<std::byte[]>(in_capacity);
  const std::span<std::byte> buffer(s.in.get(), in_capacity);
  IoResult got;
  if ((flags & MSG_DONTWAIT) != 0) {
    got = co_await s.socket->recv(buffer, flags);
  } else if (left) {
    got = co_await s.socket->recv(buffer, flags).with_stop(bound.stop).with_timeout(*left);
  } else {
    got = co_await s.socket->recv(buffer, flags).with_stop(bound.stop);
  }
  if (got.res > 0) {
    s.at = s.in.get();
    s.in_begin = 0;
    s.in_end = static_cast<std::size_t>(got.res);
    if (s.pool != nullptr) s.bulk = s.in_end >= s.pool->buffer_size();
  } else if (s.pool != nullptr) {
    s.bulk = false;
    s.in.reset();
  }
  co_return got.res;
}

// Brings more input for OpenSSL: one receive, or, while another coroutine's receive is
// in flight, that one's end (then the caller's OpenSSL call tries again).
Task<std::error_code> fill(State& s, const Bound& bound) {
  if (s.in_end > s.in_begin || s.eof) co_return std::error_code();  // input is there
  if (s.receiving) {
    co_await s.received.wait();
    co_return std::error_code();
  }
  const auto left = bound.left();
  if (left && left->count() <= 0) co_return timed_out();
  s.receiving = true;
  s.received.reset();
  int got = -EAGAIN;
  // After a bulk receive into `in`, a receive that would wait goes back to the pool
  // (receive() frees `in` on the -EAGAIN), so that an idle stream keeps no buffer.
  if (s.pool != nullptr && s.bulk && s.deferred == 0)
    got = co_await receive(s, bound, MSG_DONTWAIT);
  if (s.deferred > 0) {
    // Deferred tickets wait for input that is there already, not for input to come: a
    // client whose Nagle holds its request until its Finished is acknowledged would wait
    // for our delayed ACK (40 ms on Linux). A send now carries the acknowledgement.
    got = co_await receive(s, bound, MSG_DONTWAIT);
    if (got == -EAGAIN) {
      const std::error_code sent = co_await flush(s, bound, true, true);
      if (sent) {
        s.receiving = false;
        s.received.set();
        if (s.send_failed && !s.failure) s.failure = sent;
        co_return sent;
      }
    }
  }
  if (got == -EAGAIN) {
    // The receive may wait long (an idle connection): the send buffers, grown to the
    // largest write so far, are not kept meanwhile unless a send is using them.
    if (!s.flushing && s.pending.empty()) {
      s.pending = std::vector<std::byte>();
      s.sending = std::vector<std::byte>();
    }
    got = co_await receive(s, bound, 0);
  }
  s.receiving = false;
  s.received.set();
  if (got < 0) co_return std::error_code(-got, std::system_category());
  if (got == 0) s.eof = true;
  co_return std::error_code();
}

// How an OpenSSL call ended, for drive()'s caller.
struct Driven {
  std::error_code error;
  bool clean_end = false;  // the peer's close_notify (SSL_ERROR_ZERO_RETURN)
};

// Runs `call` (an OpenSSL call: 1 is success) until it completes, sending what OpenSSL
// writes and receiving what it asks for. `wait_sent`: return only once the records are
// out (a writer's); a reader leaves them to a coroutine already sending. `hold`: a call
// that succeeds leaves its records in `pending`, for the writer's next call to send
// (the caller holds the writing side, so nothing else of its own comes between).
template <typename Call>
Task<Driven> drive(State& s, Call call, Bound bound, bool wait_sent, bool hold = false) {
  for (;;) {
    ERR_clear_error();
    const int r = call();
    const int error = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s.ssl, r);
    // The failure is read now: the sends below suspend, and other streams of the thread
    // use (and clear) its error queue meanwhile.
    std::error_code failed;
    if (error == SSL_ERROR_SSL || error == SSL_ERROR_SYSCALL) {
      failed = ssl_failure(s);
      s.failure = failed;
    }
    ERR_clear_error();
    // What OpenSSL wrote leaves first: a flight of the handshake, an alert, a ticket.
    const bool reader = !wait_sent && !failed;
    const bool held =
        (hold && error == SSL_ERROR_NONE) || (reader && s.pending.size() <= s.deferred);
    if (!s.pending.empty() && !held) {
      const std::error_code sent = co_await flush(s, bound, wait_sent || failed, reader);
      if (failed) co_return Driven{failed};
      if (sent && s.send_failed) {
        if (!s.failure) s.failure = sent;
        co_return Driven{sent};
      }
      // A reader stopped before OpenSSL's records left: they wait for the next send, and
      // what the call read (data, the peer's close_notify) is still the caller's.
      if (sent && error != SSL_ERROR_NONE && error != SSL_ERROR_ZERO_RETURN) {
        co_return Driven{sent};
      }
    }
    switch (error) {
      case SSL_ERROR_NONE:
        co_return Driven{};
      case SSL_ERROR_WANT_READ: {
        const std::error_code got = co_await fill(s, bound);
        if (got) co_return Driven{got};  // nothing was lost: the session goes on
        // After the handshake, the end of the socket's input is not shown to OpenSSL: it
        // would fail the session and send an alert, where the peer (or our own deadline,
        // which shuts the socket for reading) ended only the input. Reads say truncated;
        // sends and close_notify still work.
        if (s.eof && s.in_begin == s.in_end && s.handshake_done) {
          co_return Driven{make_error_code(TlsErrc::truncated)};
        }
        continue;
      }
      case SSL_ERROR_WANT_WRITE:  // the BIO takes every write: only a retry is asked
        continue;
      case SSL_ERROR_ZERO_RETURN:
        co_return Driven{{}, true};
      default:
        co_return Driven{failed};
    }
  }
}

// Marks a direction busy for the scope of an operation.
class Busy {
 public:
  explicit Busy(bool& flag) noexcept : flag_(flag) { flag_ = true; }
  Busy(const Busy&) = delete;
  Busy& operator=(const Busy&) = delete;
  ~Busy() { flag_ = false; }

 private:
  bool& flag_;
};

// What a call on a stream that cannot take it returns, or nothing when it can.
std::error_code refusal(const State* s, bool needs_handshake) {
  if (s == nullptr) return std::make_error_code(std::errc::bad_file_descriptor);  // moved from
  if (s->failure) return make_error_code(TlsErrc::broken);
  if (needs_handshake && !s->handshake_done) return make_error_code(TlsErrc::handshake_required);
  return {};
}

Outcome outcome_of(const std::error_code& error) {
  if (error == std::errc::operation_canceled) return Outcome::cancelled;
  if (error == std::errc::timed_out) return Outcome::timed_out;
  return Outcome::completed;
}

Task<Result<void>> run_handshake(State* s, TlsHandshakeOptions options, std::stop_token stop) {
  if (s != nullptr && s->handshake_done) co_return Result<void>();
  if (const std::error_code no = refusal(s, false)) co_return fail(no);
  if (s->reading || s->writing) co_return fail(make_error_code(TlsErrc::busy));
  Busy reading(s->reading);
  Busy writing(s->writing);
  Bound bound{std::move(stop), std::nullopt};
  if (options.timeout.count() > 0) {
    bound.deadline = std::chrono::steady_clock::now() + options.timeout;
  }
  SSL* ssl = s->ssl;
  // The last step's records are held: a TLS 1.3 server's are its session tickets, which
  // wait for its first write (State::deferred); any other's (a TLS 1.2 Finished) go now.
  const Driven driven = co_await drive(
      *s, [ssl] { return SSL_do_handshake(ssl); }, bound, true, true);
  if (driven.error) co_return fail(driven.error);
  if (driven.clean_end) {
    s->failure = make_error_code(TlsErrc::handshake_eof);
    co_return fail(s->failure);
  }
  if (!s->pending.empty()) {
    if (SSL_is_server(ssl) == 1 && SSL_version(ssl) == TLS1_3_VERSION) {
      s->deferred = s->pending.size();
    } else if (const std::error_code sent = co_await flush(*s, bound, true)) {
      if (!s->failure) s->failure = sent;
      co_return fail(sent);
    }
  }
  s->handshake_done = true;
  co_return Result<void>();
}

Task<Result<void>> run_wait_readable(State* s, std::stop_token stop) {
  if (const std::error_code no = refusal(s, true)) co_return fail(no);
  if (s->reading) co_return fail(make_error_code(TlsErrc::busy));
  // Bytes wait, or the input ended (the socket's end, or the peer's close_notify, after
  // which recv() returns 0 at once).
  if (s->in_end > s->in_begin || s->eof || SSL_has_pending(s->ssl) == 1 ||
      (SSL_get_shutdown(s->ssl) & SSL_RECEIVED_SHUTDOWN) != 0) {
    co_return Result<void>();
  }
  Busy reading(s->reading);
  const Bound bound{std::move(stop), std::nullopt};
  const std::error_code got = co_await fill(*s, bound);
  if (got) co_return fail(got);
  co_return Result<void>();
}

Task<Result<std::size_t>> run_recv(State* s, std::span<std::byte> buffer, std::stop_token stop) {
  if (const std::error_code no = refusal(s, true)) co_return fail(no);
  if (buffer.empty()) co_return fail(std::make_error_code(std::errc::invalid_argument));
  if (s->reading) co_return fail(make_error_code(TlsErrc::busy));
  Busy reading(s->reading);
  std::size_t got = 0;
  SSL* ssl = s->ssl;
  Bound bound{std::move(stop), std::nullopt};
  const Driven driven = co_await drive(
      *s, [ssl, buffer, &got] { return SSL_read_ex(ssl, buffer.data(), buffer.size(), &got); },
      std::move(bound), false);
  if (driven.error) co_return fail(driven.error);
  if (driven.clean_end) co_return std::size_t{0};
  co_return got;
}

Task<Result<std::size_t>> run_send(State* s, std::span<const std::byte> data,
                                   std::stop_token stop) {
  if (const std::error_code no = refusal(s, true)) co_return fail(no);
  if (s->writing) co_return fail(make_error_code(TlsErrc::busy));
  if (s->shutdown_sent) co_return fail(std::make_error_code(std::errc::broken_pipe));
  if (data.empty()) co_return std::size_t{0};
  // A stop that came first stops the call before OpenSSL makes records of the data.
  if (stop.stop_requested()) co_return fail(cancelled());
  Busy writing(s->writing);
  const std::span<const std::byte> piece = data.first(std::min(data.size(), max_send_bytes));
  std::size_t written = 0;
  SSL* ssl = s->ssl;
  Bound bound{std::move(stop), std::nullopt};
  const Driven driven = co_await drive(
      *s,
      [ssl, piece, &written] { return SSL_write_ex(ssl, piece.data(), piece.size(), &written); },
      std::move(bound), true);
  if (driven.error) co_return fail(driven.error);
  // OpenSSL refuses to write once the session was closed (SSL_ERROR_ZERO_RETURN).
  if (driven.clean_end || written == 0)
    co_return fail(std::make_error_code(std::errc::broken_pipe));
  co_return written;
}

Task<TransferResult> run_recv_exact(State* s, std::span<std::byte> buffer, std::stop_token stop) {
  std::size_t done = 0;
  while (done < buffer.size()) {
    const Result<std::size_t> got = co_await run_recv(s, buffer.subspan(done), stop);
    if (!got) co_return TransferResult(done, got.error(), outcome_of(got.error()));
    if (*got == 0) co_return TransferResult(done, Errc::end_of_stream, Outcome::completed);
    done += *got;
  }
  co_return TransferResult(done, {}, Outcome::completed);
}

Task<TransferResult> run_send_all(State* s, std::span<const std::byte> data, std::stop_token stop) {
  std::size_t done = 0;
  while (done < data.size()) {
    const Result<std::size_t> sent = co_await run_send(s, data.subspan(done), stop);
    if (!sent) co_return TransferResult(done, sent.error(), outcome_of(sent.error()));
    done += *sent;
  }
  co_return TransferResult(done, {}, Outcome::completed);
}

Task<Result<void>> run_shutdown(State* s, std::stop_token stop) {
  if (const std::error_code no = refusal(s, true)) co_return fail(no);
  if (s->writing) co_return fail(make_error_code(TlsErrc::busy));
  if (s->shutdown_sent) co_return Result<void>();
  if (stop.stop_requested()) co_return fail(cancelled());
  Busy writing(s->writing);
  SSL* ssl = s->ssl;
  Bound bound{std::move(stop), std::nullopt};
  // 0: close_notify sent, the peer's not yet seen; that is all this call waits for.
  const Driven driven = co_await drive(
      *s, [ssl] { return SSL_shutdown(ssl) >= 0 ? 1 : -1; }, std::move(bound), true);
  if (driven.error) co_return fail(driven.error);
  s->shutdown_sent = true;
  co_return Result<void>();
}

Task<TransferResult> run_send_final(State* s, std::span<const std::byte> data,
                                    std::stop_token stop) {
  // All but the last piece as send_all() sends them; the last one's records wait for the
  // close_notify and leave with it.
  std::size_t done = 0;
  while (data.size() - done > max_send_bytes) {
    const Result<std::size_t> sent = co_await run_send(s, data.subspan(done), stop);
    if (!sent) co_return TransferResult(done, sent.error(), outcome_of(sent.error()));
    done += *sent;
  }
  if (const std::error_code no = refusal(s, true)) {
    co_return TransferResult(done, no, Outcome::completed);
  }
  if (s->writing)
    co_return TransferResult(done, make_error_code(TlsErrc::busy), Outcome::completed);
  if (s->shutdown_sent) {
    co_return TransferResult(done, std::make_error_code(std::errc::broken_pipe),
                             Outcome::completed);
  }
  if (stop.stop_requested()) co_return TransferResult(done, cancelled(), Outcome::cancelled);
  Busy writing(s->writing);
  SSL* ssl = s->ssl;
  const std::span<const std::byte> last = data.subspan(done);
  if (!last.empty()) {
    std::size_t written = 0;
    const Driven wrote = co_await drive(
        *s, [ssl, last, &written] { return SSL_write_ex(ssl, last.data(), last.size(), &written); },
        Bound{stop, std::nullopt}, true, true);
    if (wrote.error) co_return TransferResult(done, wrote.error, outcome_of(wrote.error));
    if (wrote.clean_end || written != last.size()) {
      co_return TransferResult(done, std::make_error_code(std::errc::broken_pipe),
                               Outcome::completed);
    }
  }
  const Driven closed = co_await drive(
      *s, [ssl] { return SSL_shutdown(ssl) >= 0 ? 1 : -1; }, Bound{std::move(stop), std::nullopt},
      true);
  if (closed.error) co_return TransferResult(done, closed.error, outcome_of(closed.error));
  s->shutdown_sent = true;
  co_return TransferResult(data.size(), {}, Outcome::completed);
}

bool is_ip_address(std::string_view name) {
  const std::string text(name);
  unsigned char address[16];
  return inet_pton(AF_INET, text.c_str(), address) == 1 ||
         inet_pton(AF_INET6, text.c_str(), address) == 1;
}

Result<std::unique_ptr<State>> new_state(const StreamSocket& socket,
                                         const std::shared_ptr<const TlsContext::Shared>& shared) {
  ERR_clear_error();
  auto state = std::make_unique<State>();
  state->socket = &socket;
  state->context = shared;
  state->ssl = SSL_new(shared->ctx);
  const BIO_METHOD* method = bio_method();
  BIO* bio = method != nullptr && state->ssl != nullptr ? BIO_new(method) : nullptr;
  if (bio == nullptr) {
    ERR_clear_error();
    return fail(std::make_error_code(std::errc::not_enough_memory));
  }
  BIO_set_data(bio, state.get());
  SSL_set_bio(state->ssl, bio, bio);  // one reference, taken by the SSL
  state->received.set();
  state->flushed.set();
  return state;
}

}  // namespace

// --- TlsStream --------------------------------------------------------------------------------

TlsStream::TlsStream(std::unique_ptr<State> state) noexcept : state_(std::move(state)) {}
TlsStream::TlsStream(TlsStream&&) noexcept = default;
TlsStream& TlsStream::operator=(TlsStream&&) noexcept = default;
TlsStream::~TlsStream() = default;

Result<TlsStream> TlsStream::server(const StreamSocket& socket, const TlsContext& context) {
  if (!context.shared_ || !context.shared_->server) {
    return fail(std::make_error_code(std::errc::invalid_argument));
  }
  auto state = new_state(socket, context.shared_);
  if (!state) return fail(state.error());
  SSL_set_accept_state((*state)->ssl);
  return TlsStream(std::move(*state));
}

Result<TlsStream> TlsStream::client(const StreamSocket& socket, const TlsContext& context,
                                    std::string_view server_name) {
  if (!context.shared_ || context.shared_->server) {
    return fail(std::make_error_code(std::errc::invalid_argument));
  }
  // Without a name, a verifying client would take any certificate its trust anchors
  // vouch for, whoever it names.
  if (server_name.empty() && context.shared_->verify_peer) {
    return fail(std::make_error_code(std::errc::invalid_argument));
  }
  auto made = new_state(socket, context.shared_);
  if (!made) return fail(made.error());
  State& state = **made;
  SSL* ssl = state.ssl;
  SSL_set_connect_state(ssl);
  if (context.shared_->resume_sessions && !server_name.empty()) {
    // The key the sessions this stream gets are kept under (keep_new_session): the name,
    // in lower case, and the server's port.
    state.server_name.reserve(server_name.size() + 6);
    for (const char c : server_name) {
      state.server_name.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    }
    if (const Result<Address> peer = socket.peer_address(); peer) {
      state.server_name.push_back(':');
      state.server_name.append(std::to_string(peer->port()));
    }
    SSL_set_ex_data(ssl, detail::name_index(), state.server_name.data());
    if (SSL_SESSION* session = context.shared_->session_for(state.server_name)) {
      SSL_set_session(ssl, session);  // takes its own reference
      SSL_SESSION_free(session);
    }
  }
  if (!server_name.empty()) {
    const std::string name(server_name);
    bool named = true;
    if (is_ip_address(name)) {
      // No SNI for an address (RFC 6066); the certificate must list it as an IP SAN.
      named = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
    } else {
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      named =
          SSL_set_tlsext_host_name(ssl, name.c_str()) == 1 && SSL_set1_host(ssl, name.c_str()) == 1;
    }
    if (!named) {
      ERR_clear_error();
      return fail(std::make_error_code(std::errc::invalid_argument));
    }
  }
  return TlsStream(std::move(*made));
}

// Not coroutines: the state is taken now, so that a task made before the TlsStream moves
// still finds it.
Task<Result<void>> TlsStream::handshake(TlsHandshakeOptions options, std::stop_token stop) {
  return run_handshake(state_.get(), options, std::move(stop));
}

Task<Result<std::size_t>> TlsStream::recv(std::span<std::byte> buffer, std::stop_token stop) {
  return run_recv(state_.get(), buffer, std::move(stop));
}

Task<Result<void>> TlsStream::wait_readable(std::stop_token stop) {
  return run_wait_readable(state_.get(), std::move(stop));
}

Task<TransferResult> TlsStream::recv_exact(std::span<std::byte> buffer, std::stop_token stop) {
  return run_recv_exact(state_.get(), buffer, std::move(stop));
}

Task<Result<std::size_t>> TlsStream::send(std::span<const std::byte> data, std::stop_token stop) {
  return run_send(state_.get(), data, std::move(stop));
}

Task<TransferResult> TlsStream::send_all(std::span<const std::byte> data, std::stop_token stop) {
  return run_send_all(state_.get(), data, std::move(stop));
}

Task<Result<void>> TlsStream::shutdown(std::stop_token stop) {
  return run_shutdown(state_.get(), std::move(stop));
}

Task<TransferResult> TlsStream::send_final(std::span<const std::byte> data, std::stop_token stop) {
  return run_send_final(state_.get(), data, std::move(stop));
}

ssl_st* TlsStream::native_handle() const noexcept { return state_ ? state_->ssl : nullptr; }

Result<void> TlsStream::use_receive_pool(BufferPool& pool) noexcept {
  if (!state_) return fail(std::make_error_code(std::errc::bad_file_descriptor));
  if (state_->reading || state_->receiving) return fail(make_error_code(TlsErrc::busy));
  // A pool of another loop is registered on another ring: its group id means another
  // pool (or none) on this one.
  if (EventLoop::current() != nullptr && &pool.loop() != EventLoop::current()) {
    return fail(std::make_error_code(std::errc::invalid_argument));
  }
  state_->pool = &pool;
  state_->bulk = false;
  return {};
}

bool TlsStream::buffered() const noexcept {
  return state_ && (state_->in_end > state_->in_begin || SSL_has_pending(state_->ssl) == 1);
}

bool TlsStream::handshake_done() const noexcept { return state_ && state_->handshake_done; }

std::error_code TlsStream::failure() const noexcept {
  return state_ ? state_->failure : std::make_error_code(std::errc::bad_file_descriptor);
}

bool TlsStream::resumed() const noexcept { return state_ && SSL_session_reused(state_->ssl) == 1; }

std::string_view TlsStream::alpn() const noexcept {
  if (!state_) return {};
  const unsigned char* name = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(state_->ssl, &name, &length);
  return name == nullptr ? std::string_view()
                         : std::string_view(reinterpret_cast<const char*>(name), length);
}

TlsVersion TlsStream::version() const noexcept {
  if (!state_) return TlsVersion::tls1_2;
  return SSL_version(state_->ssl) == TLS1_3_VERSION ? TlsVersion::tls1_3 : TlsVersion::tls1_2;
}

std::string_view TlsStream::cipher() const noexcept {
  if (!state_) return {};
  const char* name = SSL_get_cipher_name(state_->ssl);
  return name == nullptr ? std::string_view() : std::string_view(name);
}

const StreamSocket& TlsStream::socket() const noexcept { return *state_->socket; }

}  // namespace coring::net
