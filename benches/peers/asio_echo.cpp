// The Boost.Asio peer of coring's echo server: C++20 coroutines on one io_context,
// written as Asio's own examples write an echo server (a coroutine per connection,
// async_read_some then async_write of what arrived), with TCP_NODELAY as coring's.
//
//   coring-peer-asio-epoll --port P     Asio's default reactor (epoll)
//   coring-peer-asio-uring --port P     Asio's io_uring backend
//
// This file is compiled twice, into two programs: the io_uring one with
// BOOST_ASIO_HAS_IO_URING and BOOST_ASIO_DISABLE_EPOLL (so sockets go through io_uring
// too, not only files). Two programs, not one, because Asio is header-only and its
// configuration macros change its types: both backends in one binary would break the
// one-definition rule. coring-bench echo runs them as child processes, like nginx
// (benches/CMakeLists.txt builds them next to it).
// Listens on 127.0.0.1:P until SIGINT or SIGTERM; exit status 0, 1 on failure, 2 on
// bad usage.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string_view>

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
// Errors as values (a tuple of error_code and result), so a closing peer is no
// exception: the same error handling coring's and the epoll server's code has.
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> echo(tcp::socket socket) {
  char data[4096];
  for (;;) {
    auto [read_error, n] = co_await socket.async_read_some(asio::buffer(data), use_tuple);
    if (read_error) co_return;  // end of stream or reset: the connection is done
    auto [write_error, written] =
        co_await asio::async_write(socket, asio::buffer(data, n), use_tuple);
    if (write_error) co_return;
  }
}

asio::awaitable<void> accept_loop(tcp::acceptor acceptor) {
  for (;;) {
    auto [error, socket] = co_await acceptor.async_accept(use_tuple);
    if (error) {
      if (error == asio::error::operation_aborted) co_return;
      continue;  // e.g. ECONNABORTED, EMFILE: the next accept may succeed
    }
    socket.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), echo(std::move(socket)), asio::detached);
  }
}

int usage(const char* program) {
  std::fprintf(stderr, "usage: %s --port P\n", program);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || std::string_view(argv[1]) != "--port") return usage(argv[0]);
  const std::string_view text(argv[2]);
  unsigned port = 0;
  const auto [end, parse_error] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (parse_error != std::errc{} || end != text.data() + text.size() || port == 0 || port > 65535) {
    std::fprintf(stderr, "%s: bad port '%s'\n", argv[0], argv[2]);
    return usage(argv[0]);
  }
  try {
    asio::io_context context(1);  // one thread: Asio drops its internal locking
    tcp::acceptor acceptor(context, tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                                  static_cast<unsigned short>(port)));
    asio::signal_set signals(context, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code&, int) { context.stop(); });
    asio::co_spawn(context, accept_loop(std::move(acceptor)), asio::detached);
    context.run();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
}
