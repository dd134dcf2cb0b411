// Every public coroutine API, called the way the docs call it: inside co_await, with
// braced temporaries for options, string literals for paths, temporaries for stop
// tokens. g++ 12 destroys a braced aggregate temporary twice when it stands inside a
// co_await expression (clang 14 does not), so an entry point whose options are not
// trivially destructible corrupts memory in exactly these forms. CI builds and runs
// this binary under ASan+UBSan with g++ 12 and with clang 14; public_aggregates_test.cpp
// checks the types themselves, at compile time.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "coring/fs/fs.hpp"
#include "coring/net/net.hpp"
#include "coring/ring/prep.hpp"
#include "coring/runtime/blocking.hpp"
#include "coring/runtime/channel.hpp"
#include "coring/runtime/event.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/multishot.hpp"
#include "coring/runtime/scope.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"
#include "coring/runtime/when_any.hpp"

namespace coring {
namespace {

using namespace std::chrono_literals;
using net::Address;
using net::TcpListener;
using net::TcpStream;

std::span<const std::byte> bytes(std::string_view text) { return std::as_bytes(std::span(text)); }

// A temporary directory of the test's own, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "coring-callforms-XXXXXX");
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] std::string operator/(std::string_view name) const {
    return path_ + "/" + std::string(name);
  }

 private:
  std::string path_;
};

// Connects to `listener` repeatedly in one co_await form each, with and without options.
Task<int> connect_forms(const Address& to) {
  int connected = 0;
  std::stop_source source;
  const std::stop_token token = source.get_token();
  for (int i = 0; i < 3; ++i) {
    if (co_await TcpStream::connect(to, {.timeout = 1s}, token)) ++connected;
    if (co_await TcpStream::connect(to, {.timeout = 1s}, source.get_token())) ++connected;
    if (co_await TcpStream::connect(to, {}, std::stop_token{})) ++connected;
    if (co_await TcpStream::connect(to, {.timeout = 2s})) ++connected;
    if (co_await TcpStream::connect(to)) ++connected;
  }
  co_return connected;
}

TEST(CallForms, TcpConnectAcceptAndStreamCalls) {
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    std::stop_source stop;
    auto listener = TcpListener::bind(Address::ipv4_loopback(),
                                      {.backlog = 64, .reuse_address = true, .accept_queue = 8},
                                      stop.get_token());
    EXPECT_TRUE(listener.ok());
    if (!listener) co_return;
    const Address local = *listener->local_address();
    auto acceptor = [&]() -> Task<int> {
      int accepted = 0;
      for (int i = 0; i < 15; ++i) {
        auto conn = co_await listener->accept();
        if (conn) ++accepted;
      }
      co_return accepted;
    };
    auto [connected, accepted] = co_await when_all(connect_forms(local), acceptor());
    EXPECT_EQ(connected, 15);
    EXPECT_EQ(accepted, 15);

    // The stream calls, with timeouts and stops on each.
    auto client = co_await TcpStream::connect(local, {.timeout = 1s});
    auto server = co_await listener->accept();
    EXPECT_TRUE(client.ok() && server.ok());
    if (!client || !server) co_return;
    std::array<std::byte, 64> buffer{};
    std::stop_source never;
    EXPECT_EQ((co_await client->send(bytes("ping")).with_timeout(1s)).res, 4);
    EXPECT_EQ((co_await server->recv(buffer).with_timeout(1s).with_stop(never.get_token())).res, 4);
    EXPECT_TRUE(co_await client->send_all(bytes("0123456789")));
    EXPECT_TRUE(co_await server->recv_exact(std::span(buffer).first(10)));
    EXPECT_EQ((co_await client->send_zc(bytes("zc")).with_timeout(1s)).res, 2);
    EXPECT_TRUE(co_await server->recv_exact(std::span(buffer).first(2)));
    EXPECT_TRUE((co_await client->shutdown()).ok());
    EXPECT_EQ((co_await server->recv(buffer)).res, 0);
    (void)co_await listener->close();
  };
  loop.run(body());
}

TEST(CallForms, ProvidedBufferReceive) {
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    net::BufferPool pool(loop, {.buffer_size = 4096, .count = 16});
    auto pair = TcpStream::pair();
    EXPECT_TRUE(pair.ok());
    if (!pair) co_return;
    EXPECT_TRUE(co_await pair->first.send_all(bytes("hello")));
    auto lease = co_await pair->second.recv(pool);
    EXPECT_TRUE(lease.ok() && lease->size() == 5);
    auto stream = pair->second.recv_stream(pool, {.bound = 4});
    EXPECT_TRUE(co_await pair->first.send_all(bytes("again")));
    auto chunk = co_await stream.next();
    EXPECT_TRUE(chunk.ok() && chunk->size() == 5);
    (void)co_await stream.close();
  };
  loop.run(body());
}

TEST(CallForms, ResolveAndDatagrams) {
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    auto found = co_await net::resolve("127.0.0.1", 80, {.socket_type = SOCK_STREAM});
    EXPECT_TRUE(found.ok() && !found->empty());
    auto numeric = co_await net::resolve(std::string("::1"), 80, {.numeric_host = true});
    EXPECT_TRUE(numeric.ok());
    auto a = net::UdpSocket::bind(Address::ipv4_loopback());
    auto b = net::UdpSocket::bind(Address::ipv4_loopback());
    EXPECT_TRUE(a.ok() && b.ok());
    if (!a || !b) co_return;
    EXPECT_EQ((co_await a->send_to(bytes("datagram"), *b->local_address()).with_timeout(1s)).res,
              8);
    std::array<std::byte, 32> buffer{};
    auto got = co_await b->recv_from(buffer).with_timeout(1s);
    EXPECT_TRUE(got.ok());
  };
  loop.run(body());
}

TEST(CallForms, FilesAndPaths) {
  TempDir dir;
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    EXPECT_TRUE(co_await fs::create_dir(dir / "sub"));
    EXPECT_TRUE(co_await fs::create_dir(dir / "mode", 0700));
    EXPECT_TRUE(co_await fs::write_file(dir / "a.txt", bytes("abcdef")));
    EXPECT_TRUE(co_await fs::write_file(dir / "b.txt", bytes("xyz"), 0600));
    EXPECT_TRUE(co_await fs::rename(dir / "b.txt", dir / "c.txt"));
    EXPECT_TRUE(co_await fs::symlink("a.txt", dir / "link"));
    EXPECT_TRUE(co_await fs::hard_link(dir / "a.txt", dir / "hard"));
    auto copied = co_await fs::copy_file(dir / "a.txt", dir / "copy.txt");
    EXPECT_TRUE(copied.ok() && *copied == 6);
    auto content = co_await fs::read_file(dir / "link");
    EXPECT_TRUE(content.ok() && content->size() == 6);
    EXPECT_TRUE(co_await fs::stat(dir / "a.txt"));
    EXPECT_TRUE(co_await fs::symlink_stat(dir / "link", STATX_BASIC_STATS));
    auto entries = co_await fs::list_dir(std::filesystem::path(dir / "sub"));
    EXPECT_TRUE(entries.ok() && entries->empty());

    auto file = co_await fs::File::open(dir / "f.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
    EXPECT_TRUE(file.ok());
    if (!file) co_return;
    EXPECT_TRUE(co_await file->write_all(bytes("0123456789"), 0));
    std::array<std::byte, 10> buffer{};
    auto n = co_await file->read_all(buffer, 0);
    EXPECT_TRUE(n.ok() && *n == 10);
    EXPECT_TRUE((co_await file->read_at(buffer, 0).with_timeout(1s)).ok());
    EXPECT_TRUE((co_await file->write_at(bytes("ab"), 0)).ok());
    EXPECT_TRUE(co_await file->truncate(4));
    auto st = co_await file->stat();
    EXPECT_TRUE(st.ok() && st->size() == 4);
    EXPECT_TRUE(co_await file->set_permissions(0600));
    EXPECT_TRUE(co_await file->truncate(2));
    auto extents = co_await fs::data_extents(*file, 2);
    EXPECT_TRUE(extents.ok());
    EXPECT_TRUE(co_await file->close());

    for (const char* name : {"a.txt", "c.txt", "link", "hard", "copy.txt", "f.bin"}) {
      EXPECT_TRUE(co_await fs::unlink(dir / name));
    }
    EXPECT_TRUE(co_await fs::remove_dir(dir / "sub"));
    EXPECT_TRUE(co_await fs::remove_dir(dir / "mode"));
  };
  loop.run(body());
}

Task<int> value_after(std::chrono::milliseconds delay, int value, std::stop_token stop) {
  co_await sleep_for(delay).with_stop(std::move(stop));
  co_return value;
}

TEST(CallForms, RuntimeCombinatorsTimersAndPrimitives) {
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    EXPECT_EQ((co_await sleep_for(1ms)).res, 0);
    EXPECT_EQ((co_await sleep_until(std::chrono::steady_clock::now() + 1ms)).res, 0);
    EXPECT_EQ((co_await nop().with_timeout(1s)).res, 0);
    auto [x, y] = co_await when_all(value_after(1ms, 1, {}), value_after(2ms, 2, {}));
    EXPECT_EQ(x + y, 3);
    std::vector<Task<int>> tasks;
    tasks.push_back(value_after(1ms, 4, {}));
    tasks.push_back(value_after(1ms, 5, {}));
    auto all = co_await when_all(std::move(tasks));
    EXPECT_EQ(all.size(), 2U);
    auto first = co_await when_any(
        [](std::stop_token stop) { return value_after(1ms, 10, std::move(stop)); },
        [](std::stop_token stop) { return value_after(1s, 20, std::move(stop)); });
    EXPECT_EQ(first.index, 0U);
    std::stop_source outer;
    auto outer_first = co_await when_any(
        outer.get_token(), [](std::stop_token stop) { return value_after(1ms, 1, stop); });
    EXPECT_EQ(outer_first.index, 0U);

    TaskScope scope;
    int ran = 0;
    scope.spawn([](int& count) -> Task<void> {
      co_await sleep_for(1ms);
      ++count;
    }(ran));
    co_await scope.join();
    EXPECT_EQ(ran, 1);

    EXPECT_EQ(co_await spawn_blocking([] { return std::string("blocking"); }), "blocking");
    Event event;
    event.set();
    co_await event.wait();
    Channel<std::string> channel(2);
    EXPECT_TRUE(co_await channel.send(std::string("value")));
    EXPECT_EQ(co_await channel.recv(), std::optional<std::string>("value"));

    int pipe_fds[2];
    EXPECT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    std::stop_source stop;
    Multishot polls(
        [fd = pipe_fds[0]](ring::Sqe& sqe) { ring::prep_poll_multishot(sqe, fd, POLLIN); },
        {.bound = 4}, stop.get_token());
    polls.start();
    EXPECT_EQ(::write(pipe_fds[1], "x", 1), 1);
    EXPECT_TRUE((co_await polls.next()).ok());
    (void)co_await polls.close();
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
  };
  loop.run(body());
}

}  // namespace
}  // namespace coring

// --- Signals and deadlines (hb-signal): SignalSet and Deadline as docs/runtime.md calls
// them: a set built in a task and awaited with and without modifiers, a Deadline whose
// token bounds a recv, a sleep and a request() at once. ----------------------------------

#include <signal.h>

#include "coring/runtime/deadline.hpp"
#include "coring/runtime/signal.hpp"

namespace coring {
namespace {

using namespace std::chrono_literals;

TEST(CallForms, SignalsAndDeadlinesAsDocumented) {
  sigset_t mask_before;
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, nullptr, &mask_before), 0);
  ignore_sigpipe();
  EventLoop loop;
  auto body = []() -> Task<void> {
    SignalSet signals{SIGUSR1, SIGUSR2};
    EXPECT_EQ(::raise(SIGUSR1), 0);
    Result<SignalInfo> got = co_await signals.next();
    EXPECT_TRUE(got && got->signo == SIGUSR1);
    std::stop_source stop;
    EXPECT_EQ(::raise(SIGUSR2), 0);
    got = co_await signals.next().with_stop(stop.get_token());
    EXPECT_TRUE(got && got->signo == SIGUSR2);
    got = co_await signals.next().with_timeout(1ms);
    EXPECT_EQ(got.error(), std::errc::timed_out);

    std::stop_source server_stop;
    Deadline idle(20ms, server_stop.get_token());
    auto listener = TcpListener::bind(Address::ipv4_loopback());
    EXPECT_TRUE(listener.ok());
    if (!listener) co_return;
    auto client = co_await TcpStream::connect(*listener->local_address());
    auto server = co_await listener->accept();
    EXPECT_TRUE(client.ok() && server.ok());
    if (!client || !server) co_return;
    std::array<std::byte, 16> buffer{};
    const IoResult received = co_await server->recv(buffer).with_stop(idle.token());
    EXPECT_EQ(received.res, -ECANCELED);
    EXPECT_TRUE(idle.expired());
    EXPECT_EQ((co_await sleep_for(1s).with_stop(idle.token())).res, -ECANCELED);
    EXPECT_EQ((co_await signals.next().with_stop(idle.token())).error(),
              std::errc::operation_canceled);

    Deadline pushed(1h);
    pushed.reset(30s);
    pushed.extend_to(std::chrono::steady_clock::now() + 1h);
    EXPECT_FALSE(pushed.expired());
  };
  loop.run(body());
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, &mask_before, nullptr), 0);
}

}  // namespace
}  // namespace coring

// --- net: BufferedReader, abort(), socket options through the ring ---------------------
#include "coring/net/reader.hpp"

namespace coring {
namespace {

TEST(CallForms, NetReaderAbortAndRingOptions) {
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    using namespace std::chrono_literals;
    auto pair = net::StreamSocket::pair();
    EXPECT_TRUE(pair);
    auto& [peer, conn] = *pair;
    const std::string_view request = "GET / HTTP/1.1\r\nHost: x\r\n\r\nbody";
    EXPECT_TRUE(co_await peer.send_all(std::as_bytes(std::span(request))));
    net::BufferedReader reader(conn, {.capacity = 4096});
    std::stop_source stop;
    auto line = co_await reader.read_line(8192).with_stop(stop.get_token());
    EXPECT_EQ(line.value(), "GET / HTTP/1.1");
    auto head = co_await reader.read_until("\r\n\r\n", 65536).with_deadline(10s);
    EXPECT_EQ(head.value(), "Host: x");
    std::array<std::byte, 4> content{};
    EXPECT_TRUE(co_await reader.read_exact(content).with_timeout(1s));
    EXPECT_TRUE(co_await peer.send_all(std::as_bytes(std::span(request))));
    EXPECT_GT((co_await reader.fill()).value(), 0U);
    reader.consume(reader.buffered().size());

    net::BufferPool pool(loop, {.buffer_size = 1024, .count = 8});
    net::BufferedReader pooled(conn, pool, {});
    EXPECT_TRUE(co_await peer.send_all(std::as_bytes(std::span(request))));
    std::array<std::byte, 8> some{};
    EXPECT_GT((co_await pooled.read_some(some)).value(), 0U);

    // A Unix stream has no TCP_NODELAY: the kernel's error comes back as a value.
    EXPECT_FALSE(co_await conn.set_nodelay_async(true));
    EXPECT_TRUE(co_await conn.set_option_async(SOL_SOCKET, SO_KEEPALIVE, 1).with_timeout(1s));
    EXPECT_EQ((co_await conn.option_async(SOL_SOCKET, SO_KEEPALIVE)).value(), 1);
    EXPECT_TRUE(co_await conn.set_linger_async({.on = true, .timeout = 1s}));
    EXPECT_EQ((co_await conn.linger_async()).value().timeout, 1s);
    EXPECT_EQ((co_await conn.abort()).res, 0);
    (void)peer.abort();
  };
  loop.run(body());
}

}  // namespace
}  // namespace coring

// --- send_file, splice and open_beneath (issue 18: file to socket, proxies) -------------
// The forms docs/net.md ("Sending files and splicing") and docs/fs.md ("Opening
// beneath a directory") show, with braced options temporaries inside co_await.
#include "coring/net/splice.hpp"

namespace coring {
namespace {

TEST(CallForms, SendFileSpliceAndOpenBeneath) {
  using namespace std::chrono_literals;
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    const std::filesystem::path dir = std::filesystem::temp_directory_path();
    const std::string name = "coring-callforms-send-file-" + std::to_string(::getpid());
    fs::Result<fs::File> root = co_await fs::File::open(dir, O_RDONLY | O_DIRECTORY);
    EXPECT_TRUE(root);
    fs::Result<fs::File> file = co_await fs::File::open_beneath(
        *root, name, O_RDWR | O_CREAT | O_TRUNC, 0600, {.no_symlinks = true});
    EXPECT_TRUE(file) << file.message();
    const std::string text(40000, 'f');
    EXPECT_TRUE(co_await file->write_all(std::as_bytes(std::span(text)), 0));

    auto pair = net::StreamSocket::pair();
    net::StreamSocket& a = pair->first;
    net::StreamSocket& b = pair->second;
    Pipe pipe = Pipe::open().value();
    std::string received;
    auto drain = [&]() -> Task<void> {
      std::array<std::byte, 8192> buffer{};
      for (IoResult n; (n = co_await b.recv(buffer)).res > 0;)
        received.append(reinterpret_cast<const char*>(buffer.data()), n.value());
    };
    auto send = [&]() -> Task<void> {
      net::TransferResult t =
          co_await net::send_file(a, *file, 0, 1000, pipe, {.more_after = true}).with_deadline(5s);
      EXPECT_EQ(t.value(), 1000U);
      t = co_await net::send_file(a, net::FileDescriptor{file->fd()}, 1000, 20000, pipe);
      EXPECT_EQ(t.value(), 20000U);
      t = co_await net::send_file(a, *file, 21000, 19000, {.more_after = false});
      EXPECT_EQ(t.value(), 19000U);
      co_await a.shutdown();
    };
    co_await when_all(send(), drain());
    EXPECT_EQ(received, text);

    auto front = net::StreamSocket::pair();
    auto back = net::StreamSocket::pair();
    EXPECT_TRUE(co_await front->first.send_all(std::as_bytes(std::span(text).first(10))));
    co_await front->first.shutdown();
    SpliceSummary up = co_await net::splice(front->second, back->first, pipe).with_deadline(5s);
    EXPECT_TRUE(up.source_ended && !up.error && up.bytes == 10);
    (void)co_await fs::unlink(dir / name);
  };
  loop.run(body());
}

}  // namespace
}  // namespace coring

// --- Join handles and switch_to (slice: join) -------------------------------------------
// spawn() and spawn_on() awaited directly on their temporaries, a handle held and
// awaited, a discarded handle, and switch_to() there and back, as docs/runtime.md shows.
#include "coring/runtime/join.hpp"
#include "coring/runtime/runtime.hpp"

namespace coring {
namespace {

Task<std::size_t> count_words(std::string text) {
  co_await nop();
  std::size_t words = 0;
  bool in_word = false;
  for (const char c : text) {
    if (c != ' ' && !in_word) ++words;
    in_word = c != ' ';
  }
  co_return words;
}

TEST(CallForms, JoinHandlesAndSwitchTo) {
  RuntimeOptions options;
  options.threads = 2;
  Runtime runtime(options);
  runtime.run_on_each([&](EventLoop& loop, std::size_t index) -> Task<void> {
    if (index != 0) co_return;
    EXPECT_EQ(co_await loop.spawn(count_words("one two three")), 3U);
    EXPECT_EQ(co_await runtime.spawn_on(1, count_words(std::string("a b"))), 2U);
    JoinHandle<std::size_t> words = runtime.spawn_on(1, count_words("four five six seven"));
    EXPECT_EQ(co_await words, 4U);
    co_await loop.spawn([]() -> Task<void> { co_await sleep_for(1ms); }());
    loop.spawn([]() -> Task<void> { co_return; }());
    runtime.spawn_on(1, [](std::string text) -> Task<void> {
      EXPECT_EQ(text, "detached");
      co_return;
    }("detached"));

    EventLoop& home = *EventLoop::current();
    co_await switch_to(runtime.loop(1));
    EXPECT_EQ(EventLoop::current(), &runtime.loop(1));
    co_await sleep_for(1ms);
    co_await switch_to(home);
    EXPECT_EQ(EventLoop::current(), &loop);
  });
}

}  // namespace
}  // namespace coring

// --- http::Client (slice: client) -------------------------------------------------------
// request(), get() and post() awaited as docs/http.md calls them: temporary strings for
// URLs, literals for bodies and content types, a braced ClientRequest (its constructor:
// it is no aggregate), a ClientRequest moved in, braced ClientOptions, a temporary token.
#if CORING_CALLFORMS_HTTP
#include "coring/http/client.hpp"
#include "coring/net/reader.hpp"

namespace coring {
namespace {

// Answers every request of one connection with `ok`, reading a Content-Length body.
Task<void> answer_http(TcpStream conn) {
  net::BufferedReader reader(conn);
  for (;;) {
    Result<std::string_view> head = co_await reader.read_until("\r\n\r\n", 65536).with_deadline(5s);
    if (!head) break;
    const std::size_t at = head->find("Content-Length: ");
    std::string body(
        at == std::string_view::npos ? 0 : std::stoul(std::string(head->substr(at + 16))), '\0');
    if (!co_await reader.read_exact(std::as_writable_bytes(std::span(body))).with_deadline(5s))
      break;
    if (!co_await conn.send_all(bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))) break;
  }
}

TEST(CallForms, HttpClient) {
  EventLoop loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener) << listener.error().message();
  const std::string base = "http://127.0.0.1:" + std::to_string(listener->local_address()->port());
  auto serve = [](TcpListener& l) -> Task<void> {
    TaskScope scope;
    for (;;) {
      Result<TcpStream> conn = co_await l.accept();
      if (!conn) break;
      scope.spawn(answer_http(std::move(*conn)));
    }
    co_await scope.join();
  };
  auto body = [](TcpListener& l, const std::string& url) -> Task<void> {
    {
      http::Client client({.request_timeout = 5s, .max_idle_per_host = 4});
      auto page = co_await client.get(url + "/");
      EXPECT_EQ(page.value().body, "ok");
      auto created = co_await client.post(url + "/items", "{\"n\": 1}", "application/json");
      EXPECT_EQ(created.value().status, 200);
      http::ClientRequest put("PUT", url + "/items/7", "{\"n\": 7}");
      put.headers.add("Content-Type", "application/json");
      auto replaced = co_await client.request(std::move(put));
      EXPECT_EQ(replaced.value().status, 200);
      auto gone = co_await client.request({"DELETE", url + "/items/7"});
      EXPECT_EQ(gone.value().status, 200);
      std::stop_source stop;
      auto stopped = co_await client.get(url + "/", stop.get_token());
      EXPECT_TRUE(stopped.ok()) << stopped.message();
      EXPECT_EQ(client.idle_connections(), 1U);
    }
    (void)co_await l.close();
  };
  loop.run(when_all(serve(*listener), body(*listener, base)));
}

}  // namespace
}  // namespace coring
#endif  // CORING_CALLFORMS_HTTP

// --- coring-proxy (issue 18: the proxy example) -----------------------------------------
// The forms examples/coring_proxy.cpp uses: the two directions of a connection as Tasks
// taking their streams by reference, joined by when_all; a splice stopped by a token
// (the other direction's end) while its source is quiet; and a reset of a stream the
// handler does not own, SO_LINGER {1, 0} through the ring as a braced temporary.
#include "coring/net/splice.hpp"

namespace coring {
namespace {

Task<SpliceSummary> proxy_direction(const net::StreamSocket& from, const net::StreamSocket& to,
                                    Pipe& pipe, std::stop_source& end) {
  SpliceSummary moved = co_await net::splice(from, to, pipe).with_stop(end.get_token());
  end.request_stop();
  co_return moved;
}

TEST(CallForms, ProxyDirectionsAndResetThroughTheRing) {
  using namespace std::chrono_literals;
  EventLoop loop;
  auto body = [&]() -> Task<void> {
    auto front = net::StreamSocket::pair();
    auto back = net::StreamSocket::pair();
    Pipe up = Pipe::open(64 * 1024).value();
    Pipe down = Pipe::open(64 * 1024).value();
    std::stop_source end;
    EXPECT_TRUE(co_await front->first.send_all(bytes("up")));
    co_await front->first.shutdown();
    // Up ends at the front's end of stream and stops down, whose source is quiet.
    auto [moved_up, moved_down] =
        co_await when_all(proxy_direction(front->second, back->first, up, end),
                          proxy_direction(back->first, front->second, down, end));
    EXPECT_TRUE(moved_up.source_ended && !moved_up.error && moved_up.bytes == 2);
    EXPECT_EQ(moved_down.outcome, Outcome::cancelled);

    auto listener = TcpListener::bind(Address::ipv4_loopback(0));
    EXPECT_TRUE(listener);
    if (!listener) co_return;
    auto client = co_await TcpStream::connect(*listener->local_address(), {.timeout = 5s});
    auto accepted = co_await listener->accept();
    EXPECT_TRUE(client && accepted);
    if (!client || !accepted) co_return;
    const TcpStream& held = *accepted;
    if (net::socket_commands_supported(loop.backend())) {
      EXPECT_TRUE(co_await held.set_linger_async({.on = true, .timeout = 0s}));
      (void)co_await accepted->close();
      std::array<std::byte, 8> buffer{};
      EXPECT_EQ((co_await client->recv(buffer).with_timeout(5s)).res, -ECONNRESET);
    }
    (void)co_await listener->close();
  };
  loop.run(body());
}

}  // namespace
}  // namespace coring
