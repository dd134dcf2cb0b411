// coring-proxy: a TCP proxy; every connection it accepts is passed on to one upstream.
//
//   coring-proxy --listen ADDR:PORT --to ADDR:PORT [--threads N]
//                [--idle-timeout-ms MS] [--connect-timeout-ms MS]
//
// Each accepted connection is a task of the server frame (coring/net/server.hpp). It
// connects to the upstream, bounded by the connect timeout; a connection that fails is
// passed on to the client as a reset, as a refused connection would have been. Then two
// directions run at once, each a net::splice from one socket to the other through a
// pipe of its own, so that no byte enters user space. A side's end is passed on to the
// other side:
//
//   end of stream (FIN)  the other side is shut for writing, and the other direction
//                        goes on until its own source ends too;
//   failure (reset, ...) the other side is reset (SO_LINGER 0, then the close), and
//                        both directions stop.
//
// Idle timeout and shutdown. The frame shuts the client down (both ways) when its idle
// deadline passes or the server stops; every request of either transfer that moves
// bytes pushes that deadline back (Connection::active(), a store). A direction whose
// source is the client sees the shutdown as the client's end of stream and stops both
// directions. Once the client has ended its stream that direction is over, and io_uring
// cannot wait for the client's hang-up instead: its poll reports POLLRDHUP at once on a
// socket whose peer has ended its stream. So while one side has ended its stream and
// the other still sends, the finished direction looks every half_closed_check at the
// frame's flags and at its side's state (POLLERR: a reset, passed on). The upstream
// socket is closed by the handler; the frame closes the client after it returns.
#include <poll.h>
#include <sys/socket.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>

#include "server.hpp"
#include <coring/net/address.hpp>
#include <coring/net/server.hpp>
#include <coring/net/splice.hpp>
#include <coring/net/stream.hpp>
#include <coring/runtime/io.hpp>
#include <coring/runtime/request.hpp>
#include <coring/runtime/splice.hpp>
#include <coring/runtime/task.hpp>
#include <coring/runtime/time.hpp>
#include <coring/runtime/when_all.hpp>

namespace {

using namespace std::chrono_literals;
using coring::IoResult;
using coring::Outcome;
using coring::Pipe;
using coring::SpliceSide;
using coring::SpliceSummary;
using coring::Task;
using coring::net::Connection;
using coring::net::TcpStream;

constexpr char usage[] =
    "usage: coring-proxy --listen ADDR:PORT --to ADDR:PORT [--threads N]\n"
    "                    [--idle-timeout-ms MS] [--connect-timeout-ms MS]\n"
    "  --listen ADDR:PORT      where to accept connections (port 0: any free port, printed\n"
    "                          at start); ADDR is IPv4 (127.0.0.1) or IPv6 in brackets ([::1])\n"
    "  --to ADDR:PORT          the upstream every connection is passed on to\n"
    "  --threads N             event loops, one per thread, sharing the port (default 1)\n"
    "  --idle-timeout-ms MS    close a connection after MS without a byte either way\n"
    "                          (default 60000; 0: never)\n"
    "  --connect-timeout-ms MS give up connecting to the upstream after MS (default 10000;\n"
    "                          0: as long as the kernel tries)\n";

// The kernel's default pipe size, which needs no F_SETPIPE_SZ and keeps a connection's
// two pipes at 32 pages: the user's pipe pages (fs.pipe-user-pages-soft, 64 MiB) then
// last 512 connections before new pipes shrink to 2 pages. A larger pipe saves rounds
// of splices only for bulk transfers (see examples/README.md for the figures).
constexpr std::uint32_t pipe_bytes = 64 * 1024;

// How often a direction that has passed its source's end of stream on looks at the
// connection while the other direction still runs (see the top of the file).
constexpr auto half_closed_check = 250ms;

struct Settings {
  coring::net::Address listen;
  coring::net::Address upstream;
  std::size_t threads = 1;
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds connect_timeout{10000};
};

// --- Command line ------------------------------------------------------------------------

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "%s\n%s", what.c_str(), usage);
  std::exit(2);
}

std::uint64_t parse_number(std::string_view name, std::string_view text, std::uint64_t max) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value > max) {
    usage_error(std::string(name) + " wants an integer in [0, " + std::to_string(max) + "], not '" +
                std::string(text) + "'");
  }
  return value;
}

// An IPv4 or IPv6 address with its port: the server frame and the connect are TCP.
coring::net::Address parse_address(std::string_view name, std::string_view text) {
  const auto address = coring::net::Address::parse(text);
  if (!address) usage_error(std::string(name) + ": " + address.message());
  if (address->is_unix()) usage_error(std::string(name) + " wants an IP address and port");
  return *address;
}

Settings parse_command_line(int argc, char** argv) {
  Settings settings;
  bool have_listen = false;
  bool have_to = false;
  const std::span<char* const> words(argv + 1, static_cast<std::size_t>(argc > 1 ? argc - 1 : 0));
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string_view word = words[i];
    if (word == "--help" || word == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    if (i + 1 == words.size()) usage_error(std::string(word) + " wants a value");
    const std::string_view value = words[++i];
    if (word == "--listen") {
      settings.listen = parse_address(word, value);
      have_listen = true;
    } else if (word == "--to") {
      settings.upstream = parse_address(word, value);
      have_to = true;
    } else if (word == "--threads") {
      settings.threads = parse_number(word, value, 1024);
      if (settings.threads == 0) usage_error("--threads wants at least 1");
    } else if (word == "--idle-timeout-ms") {
      settings.idle_timeout = std::chrono::milliseconds(parse_number(word, value, 86'400'000));
    } else if (word == "--connect-timeout-ms") {
      settings.connect_timeout = std::chrono::milliseconds(parse_number(word, value, 3'600'000));
    } else {
      usage_error("unknown option '" + std::string(word) + "'");
    }
  }
  if (!have_listen || !have_to) usage_error("--listen and --to are required");
  if (settings.upstream.port() == 0) usage_error("--to wants a port other than 0");
  return settings;
}

// --- Connections ---------------------------------------------------------------------------

// One side of a proxied connection, and whether it is to be reset rather than closed.
struct Side {
  const TcpStream& stream;
  bool reset = false;
};

// What the two directions of a connection share; it lives in the handler's frame.
struct Link {
  Connection& conn;
  Side client;
  Side upstream;
  std::stop_source end;   // stops both directions
  int ended_streams = 0;  // sides that have ended their stream, passed on

  // Whether the frame shut the client down: its idle deadline passed or the server stops.
  [[nodiscard]] bool ended_by_frame() const noexcept { return conn.expired() || conn.draining(); }
};

// net::splice's transfer (runtime/splice.hpp's SpliceBody, polling its source before
// each splice), with every request that moved bytes or found input taken as activity:
// the frame's idle deadline is pushed back while bytes flow, for the cost of a store.
class ActiveSplice {
 public:
  ActiveSplice(const TcpStream& from, const TcpStream& to, Pipe& pipe, Connection& conn) noexcept
      : splice_({from.fd(), from.is_direct()}, {to.fd(), to.is_direct()},
                coring::SpliceBody::unbounded_length, pipe, {.wait_for_input = true}),
        conn_(&conn) {}

  void prep(coring::ring::Sqe& sqe) noexcept { splice_.prep(sqe); }
  bool again(const IoResult& result) noexcept {
    if (result.res > 0) conn_->active();
    return splice_.again(result);
  }
  SpliceSummary result(const IoResult& result) noexcept { return splice_.result(result); }

 private:
  coring::SpliceBody splice_;
  Connection* conn_;
};

// A poll for input on a socket whose peer has ended its stream: it completes at once,
// with every condition the socket has (POLLHUP, POLLERR) in its mask.
struct PollPrep {
  int fd;
  bool direct;
  void operator()(coring::ring::Sqe& sqe) const noexcept {
    coring::ring::prep_poll_add(sqe, fd, POLLIN);
    coring::ring::use_fixed_file(sqe, direct);
  }
};

// One direction: what `from` sends goes to `to` until `from` ends its stream or a side
// fails; then passes that on and stops both directions — unless `from` ended its stream
// while the other direction runs: then it waits, looking at the connection every
// half_closed_check, until that direction ends, the frame shuts the client down, or
// `from` fails (POLLERR: `to` is reset). One frame, no other coroutine: nothing can
// throw between the transfer and the stop that ends the other direction.
Task<void> forward(Side& from, Side& to, Pipe& pipe, Link& link) {
  const std::stop_token token = link.end.get_token();
  const SpliceSummary moved =
      co_await coring::request(ActiveSplice(from.stream, to.stream, pipe, link.conn))
          .with_stop(token);
  bool half_closed = false;
  if (moved.outcome == Outcome::cancelled || link.ended_by_frame()) {
    // The other direction ended the connection (or there was no memory to hear it
    // would), or the frame shut the client down: both sides are closed.
  } else if (moved.error) {
    // The source failed (reset, ...): reset the sink's peer likewise. The sink failed:
    // stop reading the source, and reset its peer, which would otherwise send into void.
    (moved.side == SpliceSide::sink ? from : to).reset = true;
  } else {
    const IoResult shut = co_await to.stream.shutdown(SHUT_WR);
    if (shut.res < 0) from.reset = true;  // `to` is gone
    half_closed = shut.res >= 0 && ++link.ended_streams < 2;
  }
  while (half_closed) {
    // Anything but the time passing (a stop, no memory for the stop's callback) ends it.
    const IoResult slept = co_await coring::sleep_for(half_closed_check).with_stop(token);
    if (slept.res != 0 || link.ended_by_frame()) break;
    const IoResult state =
        co_await coring::io(PollPrep{from.stream.fd(), from.stream.is_direct()}).with_stop(token);
    if (state.res < 0) break;
    if ((state.res & POLLERR) != 0) to.reset = true;
    half_closed = (state.res & (POLLERR | POLLHUP)) == 0;
  }
  link.end.request_stop();
}

// The handler. The client is the frame's, which closes it after the handler returns: to
// reset it, the handler sets SO_LINGER {1, 0} on it through the ring (a kernel without
// socket commands, before 6.7, refuses that, and the close stays an ordinary one).
Task<void> serve_proxy(const TcpStream& client, Connection& conn, const Settings& settings) {
  if (conn.draining()) co_return;  // accepted as the server stops
  coring::Result<TcpStream> upstream =
      co_await TcpStream::connect(settings.upstream, {.timeout = settings.connect_timeout});
  if (!upstream) {
    (void)co_await client.set_linger_async({.on = true, .timeout = 0s});
    co_return;
  }
  conn.active();
  coring::Result<Pipe> to_upstream = Pipe::open(pipe_bytes);
  coring::Result<Pipe> to_client = Pipe::open(pipe_bytes);
  if (!to_upstream || !to_client) {
    (void)co_await upstream->abort();
    (void)co_await client.set_linger_async({.on = true, .timeout = 0s});
    co_return;
  }
  Link link{conn, {client}, {*upstream}, {}};
  co_await coring::when_all(forward(link.client, link.upstream, *to_upstream, link),
                            forward(link.upstream, link.client, *to_client, link));
  if (link.upstream.reset) {
    (void)co_await upstream->abort();
  } else {
    (void)co_await upstream->close();
  }
  if (link.client.reset) (void)co_await client.set_linger_async({.on = true, .timeout = 0s});
}

// "127.0.0.1" or "[::1]": the address without its port.
std::string host_of(const coring::net::Address& address) {
  const std::string text = address.to_string();
  return text.substr(0, text.rfind(':'));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace coring::examples;
  const Settings settings = parse_command_line(argc, argv);
  try {
    ServerOptions options;
    options.address = settings.listen;
    options.threads = settings.threads;
    options.idle_timeout = settings.idle_timeout;
    Server server(options, [&settings](const TcpStream& client, Connection& conn) {
      return serve_proxy(client, conn, settings);
    });
    // Printed once every loop serves: a client that waits for the line finds the port open.
    return server.run([&] {
      std::printf("coring-proxy: listening on %s port %u, forwarding to %s\n",
                  host_of(settings.listen).c_str(), server.port(),
                  settings.upstream.to_string().c_str());
      std::fflush(stdout);
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coring-proxy: %s\n", e.what());
    return 1;
  }
}
