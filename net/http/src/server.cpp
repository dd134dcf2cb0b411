// The HTTP/1.1 connection: a Session per connection, on the server frame.
//
// A session reads a request's head through the parser, calls the handler, finishes the
// request (the body the handler left is read and dropped, or the connection is marked to
// close), and writes the response. Its input is one view, `input_`, into whatever holds
// the bytes received and not yet parsed: the lease of the multishot receive, the
// session's own buffer, or `carry_` (bytes the parser left unparsed when more had to be
// received: the new bytes are appended to them). Nothing is received while a view into
// the input is still in use (a body span the handler has not copied yet).
//
// Output. Responses are appended to `out_` and sent when the session is about to wait
// for bytes (so that the answers to pipelined requests that came together leave in one
// send), before a body that is not copied (a file sent with send_file, a large string,
// a stream), and before the connection closes.
//
// Deadlines (net::Connection): from a new connection's accept or a request's first byte,
// header_timeout, shutting the connection for reading (its expiry is answered 408);
// between requests, idle_timeout (the first request's wait is a header wait too); while
// a body is received or a response is sent, io_timeout per step, shutting both ways;
// while the handler runs, none.
#include "coring/http/server.hpp"

#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coring/http/error.hpp"
#include "coring/net/recv_stream.hpp"
#include "coring/net/splice.hpp"
#include "coring/runtime/splice.hpp"
#ifdef CORING_HTTP_TLS
#include "coring/net/tls.hpp"
#endif

namespace coring::http {

namespace {

// The pipes sessions send files through with send_file. A session takes one for a file
// and gives it back when it waits for its next request or ends, so that idle
// connections hold no fds; up to 16 spares wait for the next files (no pipe2 then).
// At most an eighth of the process's fd limit in pipes (a quarter of its fds) is in use
// at once: past that (thousands of slow readers of large files), as when pipe2 fails, a
// file goes through memory, and the fds left open the files themselves. Sessions of
// every loop share it.
class FilePipes {
 public:
  FilePipes() {
    spares_.reserve(most_spares);  // give() does not allocate
    rlimit limit{};
    const rlim_t fds = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 ? limit.rlim_cur : 1024;
    most_in_use_ =
        fds == RLIM_INFINITY ? std::size_t{1} << 20 : std::max<std::size_t>(most_spares, fds / 8);
  }

  // A pipe: a spare, a new one, or EMFILE when the pipes in use are at their limit.
  Result<Pipe> take() {
    {
      std::lock_guard lock(mutex_);
      if (!spares_.empty()) {
        Pipe pipe = std::move(spares_.back());
        spares_.pop_back();
        ++in_use_;
        return pipe;
      }
      if (in_use_ >= most_in_use_)
        return fail(std::make_error_code(std::errc::too_many_files_open));
      ++in_use_;
    }
    Result<Pipe> pipe = Pipe::open();
    if (!pipe) {
      std::lock_guard lock(mutex_);
      --in_use_;
    }
    return pipe;
  }
  // A pipe take() gave, empty (or closed): kept as a spare or closed.
  void give(Pipe pipe) {
    std::lock_guard lock(mutex_);
    --in_use_;
    if (pipe.is_open() && spares_.size() < most_spares) spares_.push_back(std::move(pipe));
  }

 private:
  static constexpr std::size_t most_spares = 16;
  std::mutex mutex_;
  std::vector<Pipe> spares_;
  std::size_t in_use_ = 0;
  std::size_t most_in_use_ = 0;
};

}  // namespace

struct Server::Settings {
  mutable FilePipes pipes;
  ServerOptions options;
  Handler handler;  // when there is no router
  Router router;
  bool routed = false;
#ifdef CORING_HTTP_TLS
  std::optional<net::TlsContext> tls;  // options.tls's copy (HTTPS), or none
#endif
};

namespace {

using namespace std::chrono_literals;

constexpr std::size_t own_buffer_bytes = 16 * 1024;
// Bodies up to this size are copied behind the head, so that head and body leave in
// one send (and with the next responses, when requests were pipelined).
constexpr std::size_t inline_body_bytes = 16 * 1024;
// Answers to pipelined requests wait in out_ for one send up to this many bytes: a
// client that sends many requests and reads nothing holds at most this (and one
// answer) of the server's memory.
constexpr std::size_t out_flush_bytes = 64 * 1024;
// A session waiting for input keeps out_'s allocation up to this size only, so that an
// idle connection holds no buffer sized by its largest answer.
constexpr std::size_t kept_out_bytes = 4 * 1024;
// A file sent with send_file moves in steps of this size, each with its own deadline.
constexpr std::uint64_t file_step_bytes = std::uint64_t{1} << 20;
// Over TLS, or without a pipe (no fd left for one), a file is read into memory in steps
// of this size and each step sent (encrypted, over TLS). A client that stops reading
// holds one step of the server's memory (and over TLS its records); 32 KiB costs no more
// CPU per byte than 64 KiB over TLS, where 16 KiB steps cost about a quarter more.
constexpr std::size_t buffered_file_step_bytes = 32 * 1024;
// The lingering close: what the peer still sends is read and dropped for this long, or
// up to this many bytes, so that the close does not reset the connection (which could
// destroy the response before the peer reads it). A client whose upload was refused
// (413) is still sending its body: up to this much of it, it can finish and read the
// answer. Each receive takes up to linger_step bytes, into the coroutine's frame: a
// lingering connection holds that much for at most linger_time.
constexpr std::chrono::milliseconds linger_time{1000};
constexpr std::size_t linger_bytes = std::size_t{16} << 20;
constexpr std::size_t linger_step = 16 * 1024;

constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";

std::string_view as_chars(std::span<const std::byte> bytes) noexcept {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::span<const std::byte> as_bytes(std::string_view text) noexcept {
  return std::as_bytes(std::span(text.data(), text.size()));
}

bool has_body_status(int status) noexcept {
  return status >= 200 && status != 204 && status != 304;
}

// Whether a field's comma-separated value lists `token` (case ignored).
bool lists_token(std::string_view value, std::string_view token) noexcept {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (equal_ignoring_case(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

void log_failure(const char* what, const char* detail) noexcept {
  std::fprintf(stderr, "coring::http: %s: %s\n", what, detail);
}

Response error_response(int status, std::string_view reason) {
  std::string text(reason);
  text.push_back('\n');
  return Response::text(status, std::move(text));
}

class Session final : public detail::BodySource, public BodyWriter {
 public:
  Session(const net::TcpStream& stream, net::Connection& conn, const Server::Settings& settings)
      : stream_(stream),
        conn_(conn),
        settings_(settings),
        options_(settings.options),
        parser_(MessageParser::Type::request, settings.options.limits) {}
  ~Session() { give_pipe_back(); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Serves the connection; the multishot receive, if armed, is closed before it returns
  // (also when serving throws: the exception is kept and rethrown after the close).
  Task<void> run() {
    std::exception_ptr failure;
    try {
#ifdef CORING_HTTP_TLS
      if (settings_.tls) {
        if (co_await handshake()) {
          // OpenSSL reads from the TLS stream's buffers: the session receives plaintext
          // into its own (receive() allocates it).
          co_await serve();
          // However serving ended (the peer's end, a timeout, the drain), a session still
          // whole says close_notify, so that the client knows the end is an end.
          if (!tls_->failure()) {
            set_io_deadline();
            (void)co_await tls_->shutdown();
          }
        }
      } else
#endif
      {
        if (net::BufferPool* pool = conn_.receive_pool(); pool != nullptr) {
          chunks_.emplace(stream_.fd(), stream_.is_direct(), *pool);
        } else {
          own_.reset(new std::byte[own_buffer_bytes]);
        }
        co_await serve();
      }
    } catch (...) {
      failure = std::current_exception();
    }
    lease_.reset();
    if (chunks_) co_await chunks_->close();
    if (failure) std::rethrow_exception(failure);
  }

  // detail::BodySource
  Task<Result<std::size_t>> read(std::span<std::byte> buffer) override;
  [[nodiscard]] bool done() const noexcept override { return message_ended_; }
  // BodyWriter
  Task<Result<void>> write(std::span<const std::byte> data) override;

 private:
  enum class Wait : std::uint8_t { first, idle, head };

  Task<void> serve();
#ifdef CORING_HTTP_TLS
  // The TLS handshake, bounded by the header timeout; false ends the connection.
  Task<bool> handshake();
#endif
  // Every byte of `data` on the connection (through TLS for HTTPS).
  Task<net::TransferResult> send_all(std::span<const std::byte> data);
  // Receives more input: > 0 the bytes now at the end of input_, 0 at the end of the
  // stream, < 0 a negated errno.
  Task<int> receive();
  // Sends out_ (and clears it); false if the connection failed.
  Task<bool> flush(int msg_flags = 0);
  Task<Response> call(Request& request);
  // Parses the request to its end, dropping body bytes the handler left (at most
  // max_drain_bytes); false if the connection cannot serve another request.
  Task<bool> finish_request();
  Task<bool> respond(Response& response, bool head_only, bool closing);
  Task<bool> send_file_body(const Response::FileRange& range);
  Task<void> refuse(int status, std::string_view reason);
  // Sends what is left of the last response (with close_notify over TLS), then closes:
  // at once if the client said it would send no more (`client_closes`) and sent nothing
  // the session has not read, else lingering.
  Task<void> close_after_response(bool client_closes);
  Task<void> linger();

  // The send_file pipe, empty between files, goes back to the server's.
  void give_pipe_back() noexcept {
    if (!pipe_) return;
    settings_.pipes.give(std::move(*pipe_));
    pipe_.reset();
  }
  void set_io_deadline() noexcept {
    conn_.set_deadline(options_.io_timeout, net::Expiry::shut_both);
  }

  const net::TcpStream& stream_;
  net::Connection& conn_;
  const Server::Settings& settings_;
  const ServerOptions& options_;
  MessageParser parser_;
  std::optional<net::RecvStream> chunks_;
  net::BufferLease lease_;
  std::unique_ptr<std::byte[]> own_;
  std::string carry_;
  std::string_view input_;
  std::string out_;
  std::optional<Pipe> pipe_;
#ifdef CORING_HTTP_TLS
  std::optional<net::TlsStream> tls_;
#endif
  std::unique_ptr<std::byte[]> file_buffer_;  // a file's bytes read for a buffered send
  std::string_view body_rest_;                // body bytes parsed and not yet read by the handler
  bool message_ended_ = true;
  bool body_failed_ = false;
  bool continue_sent_ = false;
  bool handler_failed_ = false;
  bool chunked_out_ = false;
};

Task<int> Session::receive() {
  // Unparsed bytes go first: they move to carry_, and the new bytes join them there.
  if (!input_.empty()) {
    std::string rest(input_);
    carry_ = std::move(rest);
  } else {
    carry_.clear();
  }
  input_ = {};
  std::string_view got;
  if (chunks_) {
    lease_.reset();
    Result<net::BufferLease> chunk = co_await chunks_->next();
    if (!chunk) co_return -std::max(chunk.error().value(), 1);
    if (chunk->empty()) co_return 0;
    lease_ = std::move(*chunk);
    got = as_chars(lease_.data());
  } else {
#ifdef CORING_HTTP_TLS
    if (tls_) {
      // A connection that waits for its next request holds no plaintext buffer: with
      // the loop's pool, it then holds no receive buffer at all.
      // A client that went away without close_notify ends the input like any other (a
      // request cut there is incomplete anyway); other failures are errors.
      const auto failed = [](const std::error_code& error) {
        if (error == net::TlsErrc::truncated) return 0;
        return error.category() == std::system_category() ? -std::max(error.value(), 1) : -EPROTO;
      };
      if (!tls_->buffered()) {
        own_.reset();
        const Result<void> ready = co_await tls_->wait_readable();
        if (!ready) co_return failed(ready.error());
      }
      if (!own_) own_.reset(new std::byte[own_buffer_bytes]);
      const std::span<std::byte> buffer(own_.get(), own_buffer_bytes);
      const Result<std::size_t> received = co_await tls_->recv(buffer);
      if (!received) co_return failed(received.error());
      if (*received == 0) co_return 0;
      got = as_chars(buffer.first(*received));
    } else
#endif
    {
      const std::span<std::byte> buffer(own_.get(), own_buffer_bytes);
      const IoResult received = co_await stream_.recv(buffer);
      if (received.res <= 0) co_return received.res;
      got = as_chars(buffer.first(received.value()));
    }
  }
  if (carry_.empty()) {
    input_ = got;
  } else {
    carry_.append(got);
    lease_.reset();
    input_ = carry_;
  }
  co_return static_cast<int>(got.size());
}

Task<net::TransferResult> Session::send_all(std::span<const std::byte> data) {
#ifdef CORING_HTTP_TLS
  if (tls_) co_return co_await tls_->send_all(data);
#endif
  co_return co_await stream_.send_all(data);
}

#ifdef CORING_HTTP_TLS
Task<bool> Session::handshake() {
  Result<net::TlsStream> made = net::TlsStream::server(stream_, *settings_.tls);
  if (!made) {
    log_failure("starting a TLS session", made.message().c_str());
    co_return false;
  }
  tls_.emplace(std::move(*made));
  // With the loop's receive pool, a connection that waits for its next request holds no
  // buffer of encrypted bytes (net::TlsStream::use_receive_pool).
  if (net::BufferPool* pool = conn_.receive_pool(); pool != nullptr) {
    (void)tls_->use_receive_pool(*pool);
  }
  // A failed handshake (a client that sends garbage, plain HTTP, or refuses our
  // certificate) ends the connection without a word: there is no response to give.
  const Result<void> shaken = co_await tls_->handshake({.timeout = options_.header_timeout});
  if (!shaken) co_return false;
  // A context that offers other protocols (h2) could agree on one this server does not
  // speak: such a client is closed rather than answered in HTTP/1.1.
  const std::string_view protocol = tls_->alpn();
  co_return protocol.empty() || protocol == "http/1.1" || protocol == "http/1.0";
}
#endif

Task<bool> Session::flush(int msg_flags) {
  if (out_.empty()) co_return true;
  set_io_deadline();
  const std::span<const std::byte> data = as_bytes(out_);
#ifdef CORING_HTTP_TLS
  if (tls_) {
    // One send_all: TLS makes records of the whole buffer (MSG_MORE has no use here).
    const net::TransferResult all = co_await tls_->send_all(data);
    out_.clear();
    co_return all.ok();
  }
#endif
  const IoResult put = co_await stream_.send(data, msg_flags);
  bool sent = put.res == static_cast<int>(data.size());
  if (!sent && put.res >= 0) {
    const net::TransferResult rest = co_await stream_.send_all(data.subspan(put.value()));
    sent = rest.ok();
  }
  out_.clear();
  co_return sent;
}

Task<Response> Session::call(Request& request) {
  const Handler* handler = &settings_.handler;
  if (settings_.routed) {
    Router::Match match = settings_.router.find(request.method_name(), request.path());
    if (match.handler == nullptr) {
      Response response = error_response(match.status, reason_phrase(match.status));
      if (!match.allow.empty()) response.headers.add("Allow", match.allow);
      co_return response;
    }
    handler = match.handler;
  }
  try {
    co_return co_await (*handler)(request);
  } catch (const std::exception& e) {
    log_failure("a handler threw", e.what());
  } catch (...) {
    log_failure("a handler threw", "an exception of a non-std type");
  }
  handler_failed_ = true;
  co_return error_response(500, "Internal Server Error");
}

Task<void> Session::serve() {
  Wait wait = Wait::first;
  conn_.set_deadline(options_.header_timeout, net::Expiry::shut_read);
  for (;;) {
    const ParseEvent event = parser_.parse(input_);
    input_.remove_prefix(event.consumed);
    if (event.kind == ParseEvent::Kind::need_more) {
      if (event.consumed > 0 && wait != Wait::head) {
        wait = Wait::head;
        conn_.set_busy(true);
        conn_.set_deadline(options_.header_timeout, net::Expiry::shut_read);
      }
      if (!out_.empty()) {
        if (!co_await flush()) co_return;
        // The send's deadline replaced the wait's.
        if (wait == Wait::head) {
          conn_.set_deadline(options_.header_timeout, net::Expiry::shut_read);
        } else {
          conn_.set_deadline(options_.idle_timeout, net::Expiry::shut_both);
        }
      }
      // A session that waits holds no buffer sized by a past answer or head (a swap:
      // moving an empty string into out_ would keep its allocation), and no pipe.
      if (out_.capacity() > kept_out_bytes) std::string().swap(out_);
      parser_.trim();  // between requests only
      give_pipe_back();
      if (wait == Wait::idle) conn_.set_busy(false);  // while draining: ends the wait
      const int got = co_await receive();
      if (got > 0) continue;
      // A head cut by its deadline gets 408; any other end of the input, nothing.
      if (got == 0 && wait == Wait::head && conn_.expired()) {
        co_await refuse(408, "the request's head did not arrive in time");
      }
      co_return;
    }
    if (event.kind == ParseEvent::Kind::error) {
      co_await refuse(parser_.error().status, parser_.error().reason);
      co_return;
    }
    if (event.kind != ParseEvent::Kind::head) continue;  // not reached: ends follow heads

    // A request.
    if (wait != Wait::head) conn_.set_busy(true);
    conn_.clear_deadline();  // the handler takes the time it takes
    message_ended_ = false;
    body_failed_ = false;
    continue_sent_ = false;
    handler_failed_ = false;
    body_rest_ = {};
    const bool head_only = parser_.method() == Method::head;
    Request request(parser_, BodyReader(parser_.has_body() ? this : nullptr));
    Response response = co_await call(request);

    bool keep = parser_.keep_alive() && !handler_failed_;
    const std::optional<std::string_view> said = response.headers.get("connection");
    const bool said_close = said && lists_token(*said, "close");
    if (said_close) keep = false;
    if (!message_ended_) {
      if (parser_.expects_continue() && !continue_sent_) {
        // The client waits for a 100 before it sends the body: it may never come.
        keep = false;
      } else if (!co_await finish_request()) {
        keep = false;
        if (parser_.failed()) {
          response = error_response(parser_.error().status, parser_.error().reason);
        }
      }
    }
    if (conn_.draining()) keep = false;
    // HTTP/1.0 knows no chunked coding: a stream without a length runs to the close.
    if (response.stream && !response.file_body && parser_.version_minor() == 0 &&
        !response.headers.contains("content-length")) {
      keep = false;
    }
    // The handler's own `Connection: close` is not said twice; any other field of its
    // (keep-alive, say) is outvoted by the close the server adds when it ends.
    const bool sent = co_await respond(response, head_only, !keep && !said_close);
    if (!sent) co_return;
    if (!keep) {
      co_await close_after_response(!parser_.keep_alive());
      co_return;
    }
    if (out_.size() >= out_flush_bytes) {
      if (!co_await flush()) co_return;
    }
    wait = Wait::idle;
    conn_.set_deadline(options_.idle_timeout, net::Expiry::shut_both);
  }
}

Task<Result<std::size_t>> Session::read(std::span<std::byte> buffer) {
  for (;;) {
    if (!body_rest_.empty()) {
      const std::size_t n = std::min(buffer.size(), body_rest_.size());
      std::memcpy(buffer.data(), body_rest_.data(), n);
      body_rest_.remove_prefix(n);
      co_return n;
    }
    if (message_ended_) co_return std::size_t{0};
    if (body_failed_) {
      co_return fail(parser_.error().status == 413 ? Errc::body_too_large
                                                   : Errc::malformed_message);
    }
    if (parser_.expects_continue() && !continue_sent_) {
      continue_sent_ = true;
      out_.append(continue_line);
      if (!co_await flush()) co_return fail(std::make_error_code(std::errc::broken_pipe));
    }
    const ParseEvent event = parser_.parse(input_);
    input_.remove_prefix(event.consumed);
    switch (event.kind) {
      case ParseEvent::Kind::body:
        body_rest_ = event.body;
        continue;
      case ParseEvent::Kind::end:
        message_ended_ = true;
        continue;
      case ParseEvent::Kind::error:
        body_failed_ = true;
        continue;
      case ParseEvent::Kind::head:
        continue;  // not reached: the head came before the handler ran
      case ParseEvent::Kind::need_more:
        break;
    }
    set_io_deadline();
    const int got = co_await receive();
    conn_.clear_deadline();
    if (got == 0) {
      body_failed_ = true;
      co_return fail(conn_.expired() ? std::make_error_code(std::errc::timed_out)
                                     : make_error_code(Errc::incomplete_message));
    }
    if (got < 0) {
      body_failed_ = true;
      co_return fail(std::error_code(-got, std::system_category()));
    }
  }
}

Task<bool> Session::finish_request() {
  std::uint64_t dropped = body_rest_.size();
  body_rest_ = {};
  while (!message_ended_) {
    if (body_failed_) co_return false;
    const ParseEvent event = parser_.parse(input_);
    input_.remove_prefix(event.consumed);
    switch (event.kind) {
      case ParseEvent::Kind::body:
        dropped += event.body.size();
        if (dropped > options_.max_drain_bytes) co_return false;
        continue;
      case ParseEvent::Kind::end:
        message_ended_ = true;
        continue;
      case ParseEvent::Kind::error:
        co_return false;
      case ParseEvent::Kind::head:
        continue;
      case ParseEvent::Kind::need_more:
        break;
    }
    set_io_deadline();
    const int got = co_await receive();
    if (got <= 0) co_return false;
  }
  co_return true;
}

Task<bool> Session::respond(Response& response, bool head_only, bool closing) {
  // A handler's final answer is 200..999; anything else is the server's failure.
  if (response.status < 200 || response.status > 999) {
    log_failure("a handler answered with a status that is not final",
                std::to_string(response.status).c_str());
    response = error_response(500, "Internal Server Error");
  }
  // An HTTP/1.0 client keeps the connection only when the answer says so.
  if (!closing && parser_.version_minor() == 0 && !response.headers.contains("connection")) {
    response.headers.add("Connection", "keep-alive");
  }
  const bool http10 = parser_.version_minor() == 0;
  serialize_head(response, closing, out_, http10);
  if (head_only || !has_body_status(response.status)) co_return true;
  if (response.file_body) co_return co_await send_file_body(*response.file_body);
  if (response.stream) {
    chunked_out_ = !http10 && !response.headers.contains("content-length");
    if (!co_await flush(MSG_MORE)) co_return false;
    const Result<void> streamed = co_await response.stream(*this);
    if (!streamed) co_return false;
    if (chunked_out_) out_.append("0\r\n\r\n");
    co_return true;
  }
  if (response.body.size() <= inline_body_bytes) {
    out_.append(response.body);
    co_return true;
  }
  if (!co_await flush(MSG_MORE)) co_return false;
  set_io_deadline();
  const net::TransferResult sent = co_await send_all(as_bytes(response.body));
  co_return sent.ok();
}

Task<bool> Session::send_file_body(const Response::FileRange& range) {
  if (range.length <= inline_body_bytes) {
    // Read behind the head: one send for both.
    const std::size_t at = out_.size();
    out_.resize(at + range.length);
    set_io_deadline();
    const auto got = co_await range.source().read_all(
        std::as_writable_bytes(std::span(out_.data() + at, range.length)), range.offset);
    if (!got.ok()) {
      // The head already promised the length: the connection cannot carry on.
      log_failure("reading a file to send", got.message().c_str());
      co_return false;
    }
    co_return true;
  }
  // Over TLS the records are made in memory.
  bool buffered = false;
#ifdef CORING_HTTP_TLS
  buffered = tls_.has_value();
#endif
  if (!buffered && !pipe_) {
    if (Result<Pipe> pipe = settings_.pipes.take()) {
      pipe_.emplace(std::move(*pipe));
    } else {
      // No pipe (EMFILE): the file still goes, through memory.
      buffered = true;
    }
  }
  if (buffered) {
    // The file is read in steps and each step sent.
    if (!co_await flush()) co_return false;
    if (!file_buffer_) file_buffer_.reset(new std::byte[buffered_file_step_bytes]);
    std::uint64_t done = 0;
    while (done < range.length) {
      const std::size_t step = static_cast<std::size_t>(
          std::min<std::uint64_t>(buffered_file_step_bytes, range.length - done));
      const std::span<std::byte> piece(file_buffer_.get(), step);
      set_io_deadline();
      const auto got = co_await range.source().read_all(piece, range.offset + done);
      if (!got.ok()) {
        log_failure("reading a file to send", got.message().c_str());
        co_return false;
      }
      const net::TransferResult sent = co_await send_all(piece);
      if (!sent.ok()) co_return false;
      done += step;
    }
    file_buffer_.reset();  // an idle connection keeps none
    co_return true;
  }
  if (!co_await flush(MSG_MORE)) co_return false;
  std::uint64_t done = 0;
  while (done < range.length) {
    const std::uint64_t step = std::min(file_step_bytes, range.length - done);
    const bool last = done + step == range.length;
    set_io_deadline();
    const net::TransferResult sent =
        co_await net::send_file(stream_, range.source(), range.offset + done, step, *pipe_,
                                net::SendFileOptions{.more_after = !last});
    if (!sent.ok()) co_return false;
    done += step;
  }
  co_return true;
}

Task<Result<void>> Session::write(std::span<const std::byte> data) {
  if (data.empty()) co_return Result<void>();  // an empty chunk would end the body
  if (chunked_out_) {
    std::array<char, 20> size{};
    const auto [end, ec] = std::to_chars(size.data(), size.data() + size.size(), data.size(), 16);
    (void)ec;
    out_.append(size.data(), end);
    out_.append("\r\n");
  }
  if (data.size() <= inline_body_bytes) {
    out_.append(as_chars(data));
    if (chunked_out_) out_.append("\r\n");
    if (!co_await flush()) co_return fail(std::make_error_code(std::errc::broken_pipe));
    co_return Result<void>();
  }
  if (!co_await flush(MSG_MORE)) co_return fail(std::make_error_code(std::errc::broken_pipe));
  set_io_deadline();
  const net::TransferResult sent = co_await send_all(data);
  if (!sent.ok()) co_return fail(sent.error());
  if (chunked_out_) out_.append("\r\n");
  co_return Result<void>();
}

Task<void> Session::refuse(int status, std::string_view reason) {
  Response response = error_response(status, reason);
  serialize_head(response, true, out_);
  out_.append(response.body);
  if (co_await flush()) co_await linger();
}

Task<void> Session::close_after_response(bool client_closes) {
  bool sent = false;
#ifdef CORING_HTTP_TLS
  if (tls_) {
    set_io_deadline();
    sent = (co_await tls_->send_final(as_bytes(out_))).ok();
    out_.clear();
  } else
#endif
  {
    sent = co_await flush();
  }
  if (!sent) co_return;
  // A close with bytes of the client's unread, or arriving after it, resets the
  // connection, and the client can lose the response's end; the lingering close reads
  // and drops them first. It is skipped only when the client itself ends the connection
  // (its request said `Connection: close`, or was HTTP/1.0 without keep-alive: RFC 9112,
  // 9.6, forbids it to send more) and nothing it sent is unread here (the body read to
  // its end, no bytes after it here or in the kernel): then the close sends FIN
  // after the response and the session ends now, as nginx's does. A server's own close
  // (draining, a handler's `Connection: close`, a failure) always lingers: the client may
  // have sent its next request already.
  bool unread = !client_closes || !message_ended_ || !input_.empty();
#ifdef CORING_HTTP_TLS
  if (tls_ && tls_->buffered()) unread = true;
#endif
  if (!unread) {
    // What the kernel holds, which the checks above cannot see: a TLS client's
    // close_notify sent right after its request (TLS 1.3 lets it close its writing
    // side first), or bytes the receive has not taken yet. A receive that does not wait
    // and takes nothing asks.
    std::array<std::byte, 1> probe;
    const IoResult peeked = co_await stream_.recv(probe, MSG_PEEK | MSG_DONTWAIT);
    unread = peeked.res > 0 || (chunks_ && chunks_->size() > 0);
  }
  if (unread) co_await linger();
}

Task<void> Session::linger() {
#ifdef CORING_HTTP_TLS
  if (tls_ && tls_->handshake_done()) (void)co_await tls_->shutdown();  // close_notify
#endif
  (void)co_await stream_.shutdown(SHUT_WR);
  // The multishot receive ends here: what still comes is read with plain receives,
  // each bounded by what is left of the linger time (a linked timeout: no sweep period
  // of lateness, and no shutdown that would reset what the peer has not read yet).
  lease_.reset();
  input_ = {};
  if (chunks_) {
    co_await chunks_->close();
    chunks_.reset();
  }
  conn_.clear_deadline();
  std::array<std::byte, linger_step> buffer;
  const auto until = std::chrono::steady_clock::now() + linger_time;
  std::size_t dropped = 0;
  while (dropped < linger_bytes) {
    const auto left = until - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) break;
    const IoResult got = co_await stream_.recv(buffer).with_timeout(left);
    if (got.res <= 0) break;
    dropped += static_cast<std::size_t>(got.res);
  }
}

Task<void> serve_connection(const net::TcpStream& stream, net::Connection& conn,
                            const Server::Settings& settings) {
  Session session(stream, conn, settings);
  co_await session.run();
}

net::ServerOptions frame_options(const ServerOptions& options) {
  net::ServerOptions frame;
  frame.address = options.address;
  frame.threads = options.threads;
  frame.max_connections = options.max_connections;
  frame.drain_timeout = options.drain_timeout;
  frame.handle_signals = options.handle_signals;
  frame.direct_descriptors = options.direct_descriptors;
  if (options.receive_pool) frame.receive_pool = net::default_receive_pool();
  const auto shortest =
      std::min({options.header_timeout, options.idle_timeout, options.io_timeout, linger_time});
  frame.sweep_period = std::max(shortest / 4, std::chrono::milliseconds(10));
  return frame;
}

}  // namespace

namespace {

std::shared_ptr<const Server::Settings> make_settings(const ServerOptions& options, Handler handler,
                                                      Router router, bool routed) {
  auto settings = std::make_shared<Server::Settings>();
  settings->options = options;
  settings->handler = std::move(handler);
  settings->router = std::move(router);
  settings->routed = routed;
  if (options.tls != nullptr) {
#ifdef CORING_HTTP_TLS
    if (!options.tls->is_server()) {
      throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                              "http::Server needs a TLS server context");
    }
    settings->tls = *options.tls;
#else
    throw std::system_error(std::make_error_code(std::errc::not_supported),
                            "coring::http was built without coring::tls (CORING_BUILD_TLS=OFF)");
#endif
  }
  settings->options.tls = nullptr;  // the copy above is what the sessions use
  return settings;
}

}  // namespace

Server::Server(const ServerOptions& options, Handler handler)
    : settings_(make_settings(options, std::move(handler), {}, false)) {
  if (!settings_->handler) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "http::Server needs a handler");
  }
  const Settings* settings = settings_.get();
  frame_ = std::make_unique<net::Server>(
      frame_options(options), [settings](const net::TcpStream& stream, net::Connection& conn) {
        return serve_connection(stream, conn, *settings);
      });
}

Server::Server(const ServerOptions& options, Router router)
    : settings_(make_settings(options, {}, std::move(router), true)) {
  const Settings* settings = settings_.get();
  frame_ = std::make_unique<net::Server>(
      frame_options(options), [settings](const net::TcpStream& stream, net::Connection& conn) {
        return serve_connection(stream, conn, *settings);
      });
}

Server::~Server() = default;

}  // namespace coring::http
