// libFuzzer target: coring::http's server (http::Server on the net::Server frame), fed
// one client connection per input over loopback TCP.
//
// One http::Server serves for the whole process, on a thread of its own, with three
// routes: GET / answers "Hello, World!"; POST /echo reads the body with read_all and
// answers its size; GET /stream streams a chunked body (small writes, and one larger
// than the server copies behind a head). The input is what a client sends on one
// connection, behind two bytes that say how its sends cut it:
//
//   byte 0   mode: % 4 == 0 one send, 1 one byte per send, 2 and 3 sends of 1 to
//            1 + 4 * (byte 0 >> 2) bytes, their sizes drawn from a PRNG seeded by byte 1
//   byte 1   that seed
//   rest     the bytes
//
// Each run sends the bytes on a fresh connection in one send and, unless the mode is one
// send, on another in pieces; the client reads all along, shuts its side for writing
// after the last byte, and reads until the server closes. What must hold for any input:
//   - the server closes each connection within conn_limit of the client's end, and
//     never resets it (its close lingers for what the client still sends);
//   - what it sent is a sequence of whole HTTP/1.1 responses as the library's response
//     parser reads them (the answer to a HEAD without a body): a status with its own
//     reason phrase, 100 the only interim one, `Connection: close` on the last at most;
//   - no more final responses than the request heads the input holds (as the library's
//     request parser reads them), plus one refusal;
//   - the pieces bring back the same responses as the one send: statuses, closes, and
//     the bodies of all but errors (a refusal's body is the parser's reason, whose words
//     may depend on where the receives cut the request);
//   - every 64th run, the server's registry empties and it answers a fresh `GET /`;
// and ASan, UBSan and LeakSanitizer stay silent. A failed check prints what it saw and
// aborts, which libFuzzer reports as a crash with the input that caused it.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "coring/http/error.hpp"
#include "coring/http/parser.hpp"
#include "coring/http/router.hpp"
#include "coring/http/server.hpp"

namespace {

using namespace coring;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Kind = http::ParseEvent::Kind;

// How long a connection may stay open after the client's end: libFuzzer's -timeout (10 s
// in scripts/fuzz.sh) must cover two of them.
constexpr auto conn_limit = 4s;
constexpr std::size_t fresh_get_every = 64;
constexpr std::size_t stream_large_bytes = 17 * 1024;

[[noreturn]] void fail(const char* what, std::string_view output) {
  std::fprintf(stderr, "http_fuzz: %s\noutput (%zu bytes):\n%.*s\n", what, output.size(),
               static_cast<int>(std::min<std::size_t>(output.size(), 4096)), output.data());
  std::abort();
}

void check(bool holds, const char* what, std::string_view output) {
  if (!holds) fail(what, output);
}

// The routes.

Task<http::Response> hello(http::Request&) { co_return http::Response::text(200, "Hello, World!"); }

Task<http::Response> echo_size(http::Request& request) {
  Result<std::string> body = co_await request.body().read_all(64 * 1024);
  if (!body) {
    co_return http::Response::text(body.error() == http::Errc::body_too_large ? 413 : 400,
                                   body.message());
  }
  co_return http::Response::text(200, std::to_string(body->size()));
}

Task<Result<void>> stream_body(http::BodyWriter& out) {
  if (Result<void> put = co_await out.write("first,"); !put) co_return put;
  const std::string large(stream_large_bytes, 'x');
  if (Result<void> put = co_await out.write(large); !put) co_return put;
  co_return co_await out.write(",last");
}

Task<http::Response> stream(http::Request&) {
  http::Response response(200);
  response.stream = &stream_body;
  co_return response;
}

// The server, started on the first run and never stopped.
struct Fixture {
  http::Server server;
  std::atomic<bool> ready{false};
  std::size_t runs = 0;

  static http::Router routes() {
    http::Router router;
    router.get("/", &hello);
    router.post("/echo", &echo_size);
    router.get("/stream", &stream);
    return router;
  }
  static http::ServerOptions options() {
    http::ServerOptions options;
    options.handle_signals = false;
    return options;
  }
  Fixture() : server(options(), routes()) {}
};

Fixture& fixture() {
  // Held to the end of the process: its loop's thread serves until then.
  static Fixture* const instance = [] {
    auto* f = new Fixture;
    std::thread([f] {
      const int status = f->server.run([f] { f->ready.store(true); });
      std::fprintf(stderr, "http_fuzz: the server's run() returned %d\n", status);
      std::abort();
    }).detach();
    while (!f->ready.load()) std::this_thread::sleep_for(1ms);
    return f;
  }();
  return *instance;
}

// The sizes of the sends for `size` bytes, as byte 0 and byte 1 of the input ask.
std::vector<std::size_t> piece_sizes(std::uint8_t mode, std::uint8_t seed, std::size_t size) {
  std::vector<std::size_t> sizes;
  if (mode % 4 == 0) {
    if (size > 0) sizes.push_back(size);
    return sizes;
  }
  const std::size_t largest = mode % 4 == 1 ? 1 : 1 + 4 * static_cast<std::size_t>(mode >> 2);
  std::uint32_t state = 0x9e3779b9U ^ seed;  // xorshift32: any fixed sequence will do
  for (std::size_t left = size; left > 0;) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    const std::size_t n = std::min<std::size_t>(left, 1 + state % largest);
    sizes.push_back(n);
    left -= n;
  }
  return sizes;
}

class Socket {
 public:
  // A non-blocking connection to 127.0.0.1:port, each send its own segment.
  explicit Socket(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    check(fd_ >= 0, "socket() failed", std::strerror(errno));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int connected = ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    if (connected != 0 && errno == EINTR) {
      // A signal (libFuzzer's SIGALRM for its -timeout) cut the wait short; the connection
      // goes on being made: wait for it and take its result.
      pollfd writable{fd_, POLLOUT, 0};
      while (::poll(&writable, 1, -1) < 0 && errno == EINTR) {
      }
      int error = 0;
      socklen_t length = sizeof error;
      ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
      connected = error == 0 ? 0 : -1;
      errno = error;
    }
    check(connected == 0, "connect() to the server failed", std::strerror(errno));
    const int on = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~Socket() { ::close(fd_); }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  int fd_;
};

// Sends `bytes` in `pieces` on a fresh connection, reading all along, then shuts the
// sending side and reads until the server closes. Returns what the server sent.
std::string exchange(std::uint16_t port, std::string_view bytes,
                     const std::vector<std::size_t>& pieces) {
  Socket socket(port);
  std::string output;
  std::size_t at = 0;
  std::size_t piece = 0;
  std::size_t piece_left = pieces.empty() ? 0 : pieces[0];
  bool shut = false;
  const auto deadline = Clock::now() + conn_limit;
  for (;;) {
    if (!shut && at == bytes.size()) {
      ::shutdown(socket.fd(), SHUT_WR);
      shut = true;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    check(left.count() > 0, "the server kept the connection open after the client's end", output);
    pollfd events{socket.fd(), static_cast<short>(POLLIN | (shut ? 0 : POLLOUT)), 0};
    if (::poll(&events, 1, static_cast<int>(left.count())) <= 0) continue;
    if ((events.revents & POLLOUT) != 0 && !shut) {
      const ssize_t put =
          ::send(socket.fd(), bytes.data() + at, piece_left, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (put > 0) {
        at += static_cast<std::size_t>(put);
        piece_left -= static_cast<std::size_t>(put);
        if (piece_left == 0 && ++piece < pieces.size()) piece_left = pieces[piece];
      } else {
        check(put < 0 && errno == EAGAIN, "a send to the server failed (reset?)", output);
      }
    }
    if ((events.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    for (;;) {
      char chunk[16384];
      const ssize_t got = ::recv(socket.fd(), chunk, sizeof chunk, MSG_DONTWAIT);
      if (got > 0) {
        output.append(chunk, static_cast<std::size_t>(got));
        continue;
      }
      if (got == 0) return output;
      check(errno == EAGAIN, "the server reset the connection", output);
      break;
    }
  }
}

// For each request head in `input` (as the server's parser reads it), whether it is a
// HEAD.
std::vector<bool> request_heads(std::string_view input) {
  http::MessageParser parser(http::MessageParser::Type::request, http::ServerOptions{}.limits);
  std::vector<bool> heads;
  for (;;) {
    const http::ParseEvent event = parser.parse(input);
    input.remove_prefix(event.consumed);
    if (event.kind == Kind::need_more || event.kind == Kind::error) return heads;
    if (event.kind == Kind::head) heads.push_back(parser.method() == http::Method::head);
  }
}

// Checks that `output` is whole responses to the requests `heads` describes, with at most
// one refusal after them. Returns them in short, one line each: the status, whether it
// closes, and the body unless the status is an error (a refusal's body is the parser's
// reason, whose words may depend on where the receives cut the request).
std::vector<std::string> check_responses(std::string_view output, const std::vector<bool>& heads) {
  http::MessageParser parser(http::MessageParser::Type::response);
  std::vector<std::string> responses;
  std::string_view rest = output;
  std::size_t finals = 0;
  bool in_message = false;
  bool closed = false;
  for (;;) {
    if (!in_message && finals < heads.size() && heads[finals]) parser.expect_no_body();
    const http::ParseEvent event = parser.parse(rest);
    rest.remove_prefix(event.consumed);
    switch (event.kind) {
      case Kind::need_more:
        if (rest.empty() && in_message) {
          // The output ends where the server closed the connection: a body that runs to
          // the close (an HTTP/1.0 client's streamed response) ends there.
          check(parser.finish().kind == Kind::end, "a response cut short", output);
          if (parser.status() >= 200) ++finals;
          check(finals <= heads.size() + 1, "more answers than the input holds requests", output);
          return responses;
        }
        check(rest.empty(), "a response cut short", output);
        return responses;
      case Kind::error:
        fail(parser.error().reason, output);
      case Kind::head: {
        check(!closed, "a response after one that closed the connection", output);
        check(parser.version_minor() == 1, "a response that is not HTTP/1.1", output);
        const int status = parser.status();
        check(status == 100 || status >= 200, "an interim response other than 100", output);
        const std::string_view phrase = http::reason_phrase(status);
        check(!phrase.empty() && parser.reason() == phrase, "a status without its reason", output);
        if (status >= 200) {
          const auto connection = parser.headers().get("connection");
          closed = connection && *connection == "close";
        }
        responses.push_back(std::to_string(status) + (closed ? " close" : "") + ":");
        in_message = true;
        continue;
      }
      case Kind::body:
        if (parser.status() < 400) responses.back().append(event.body);
        continue;
      case Kind::end:
        in_message = false;
        if (parser.status() >= 200) ++finals;
        check(finals <= heads.size() + 1, "more answers than the input holds requests", output);
        continue;
    }
  }
}

// The server, its connections all ended, answers a fresh request.
void check_serves(Fixture& f) {
  const auto deadline = Clock::now() + conn_limit;
  while (f.server.connections() != 0) {
    check(Clock::now() < deadline, "a connection stayed in the server's registry", {});
    std::this_thread::sleep_for(100us);
  }
  constexpr std::string_view get = "GET / HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
  const std::string output = exchange(f.server.port(), get, {get.size()});
  check(output.starts_with("HTTP/1.1 200 OK\r\n") && output.ends_with("\r\n\r\nHello, World!"),
        "a fresh GET / was not answered", output);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  Fixture& f = fixture();
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 2, size - 2);

  const std::string whole = exchange(f.server.port(), bytes, piece_sizes(0, 0, bytes.size()));
  const std::vector<bool> heads = request_heads(bytes);
  const std::vector<std::string> answers = check_responses(whole, heads);
  if (data[0] % 4 != 0) {
    const std::string pieces =
        exchange(f.server.port(), bytes, piece_sizes(data[0], data[1], bytes.size()));
    if (check_responses(pieces, heads) != answers) {
      std::fprintf(stderr, "http_fuzz: in one send:\n%s\n", whole.c_str());
      fail("sending in pieces changed the responses", pieces);
    }
  }
  if (++f.runs % fresh_get_every == 0) check_serves(f);
  return 0;
}
