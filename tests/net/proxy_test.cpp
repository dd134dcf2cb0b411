// coring-proxy (examples/coring_proxy.cpp) as a program: run as a child process in front
// of an upstream the test runs (a blocking listener and a thread), with blocking
// clients. The child inherits CORING_BACKEND, so that ctest's epoll.* run covers the
// emulation backend too.
//
// What it checks: bytes arrive intact both ways at once; a half-close from either side
// reaches the other, whose direction goes on; a reset from either side is passed on as a
// reset, also after a half-close; an upstream that refuses is a reset for the client; a
// connection idle for --idle-timeout-ms is closed on both sides (also a half-closed one),
// and one that moves bytes is not; SIGTERM ends the proxy with status 0 while
// connections are open; many connections leave no descriptor behind in the proxy; IPv6
// on both sides.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "coring/net/socket.hpp"
#include "net_support.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using coring::ring::test::Fd;
using Clock = std::chrono::steady_clock;

#if defined(CORING_PROXY_PATH)

// Whether the proxy's loops can reset a client (SO_LINGER through the ring): a kernel
// without socket commands closes it with an end of stream instead.
bool proxy_can_reset() {
  const char* backend = std::getenv("CORING_BACKEND");
  const bool epoll = backend != nullptr && std::string_view(backend) == "epoll";
  return coring::net::socket_commands_supported(epoll ? coring::ring::Backend::epoll
                                                      : coring::ring::Backend::io_uring);
}

// coring-proxy run as a child with `args`, its stdout read through a pipe for the
// listening line; stderr is the test's.
class Proxy {
 public:
  explicit Proxy(std::vector<std::string> args) {
    args.insert(args.begin(), CORING_PROXY_PATH);
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    out_.reset(out[0]);
    Fd out_write(out[1]);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      // The child: async-signal-safe calls only, up to the exec.
      ::dup2(out_write.get(), 1);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    if (pid_ < 0) ADD_FAILURE() << "fork: " << std::strerror(errno);
    const auto line = coring::net::test::first_line(out_.get(), 10s);
    if (line) port_ = coring::net::test::port_in(*line).value_or(0);
    if (port_ == 0) ADD_FAILURE() << "no listening line from coring-proxy";
  }
  ~Proxy() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      (void)wait(5s);
    }
  }
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  void signal(int number) const { ::kill(pid_, number); }
  // The wait status once the child has ended, or nullopt after `limit`.
  std::optional<int> wait(std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (!status_) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        status_ = status;
      } else if (Clock::now() > deadline) {
        return std::nullopt;
      } else {
        std::this_thread::sleep_for(1ms);
      }
    }
    return status_;
  }
  // The sockets and pipes the proxy holds now: those a connection adds (its upstream
  // socket and two pipes; a client is a direct descriptor, which /proc does not list),
  // beside the listener and stdout. Its loop's own descriptors (the ring, the eventfd,
  // the signalfd of its first turn) are not counted: they come and go with the loop.
  [[nodiscard]] std::size_t open_fds() const {
    const std::filesystem::path dir = "/proc/" + std::to_string(pid_) + "/fd";
    std::error_code error;
    std::size_t count = 0;
    for (auto it = std::filesystem::directory_iterator(dir, error);
         !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
      std::error_code gone;  // closed since the listing: not counted
      const std::string target = std::filesystem::read_symlink(it->path(), gone).string();
      if (target.starts_with("socket:") || target.starts_with("pipe:")) ++count;
    }
    return count;
  }

 private:
  pid_t pid_ = -1;
  Fd out_;
  std::uint16_t port_ = 0;
  std::optional<int> status_;
};

bool exited_with_zero(const std::optional<int>& status) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

// Every receive of a test's socket ends within 10 s, so that a proxy that stops
// forwarding fails the test instead of hanging it.
void set_receive_timeout(int fd) {
  const timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
}

// The test's upstream: a blocking listener on loopback and a thread that accepts
// `connections` connections and serves each on a thread of its own with `serve`, then
// closes it.
class Upstream {
 public:
  explicit Upstream(std::function<void(Fd& conn)> serve, int connections = 1, int family = AF_INET)
      : serve_(std::move(serve)), family_(family) {
    listener_.reset(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage address{};
    socklen_t length = 0;
    if (family == AF_INET6) {
      auto& in6 = reinterpret_cast<sockaddr_in6&>(address);
      in6.sin6_family = AF_INET6;
      in6.sin6_addr = in6addr_loopback;
      length = sizeof(in6);
    } else {
      auto& in = reinterpret_cast<sockaddr_in&>(address);
      in.sin_family = AF_INET;
      in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      length = sizeof(in);
    }
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        ::listen(listener_.get(), 128) != 0 ||
        ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ADD_FAILURE() << "upstream listener: " << std::strerror(errno);
      return;
    }
    port_ = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(address).sin6_port
                                     : reinterpret_cast<sockaddr_in&>(address).sin_port);
    acceptor_ = std::thread([this, connections] {
      for (int i = 0; i < connections; ++i) {
        Fd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (conn.get() < 0) return;  // the destructor shut the listener down
        set_receive_timeout(conn.get());
        servers_.emplace_back([this, fd = conn.release()] {
          Fd served(fd);
          serve_(served);
          ++served_;
        });
      }
    });
  }
  ~Upstream() {
    ::shutdown(listener_.get(), SHUT_RDWR);  // wakes an accept that waits in vain
    join();
  }
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  // "127.0.0.1:P" or "[::1]:P", for --to.
  [[nodiscard]] std::string address() const {
    return (family_ == AF_INET6 ? "[::1]:" : "127.0.0.1:") + std::to_string(port_);
  }
  [[nodiscard]] int served() const { return served_.load(); }
  // Waits until every connection has been accepted, served and closed.
  void join() {
    if (acceptor_.joinable()) acceptor_.join();
    for (std::thread& server : servers_) server.join();
    servers_.clear();
  }

 private:
  std::function<void(Fd&)> serve_;
  int family_;
  Fd listener_;
  std::uint16_t port_ = 0;
  std::atomic<int> served_{0};
  std::vector<std::thread> servers_;  // the acceptor's until it is joined
  std::thread acceptor_;
};

Fd connect_client(std::uint16_t port) {
  return Fd(coring::net::test::connected_client(port, std::chrono::seconds(10)));
}

bool send_text(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t sent = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    text.remove_prefix(static_cast<std::size_t>(sent));
  }
  return true;
}

// What a receive until `size` bytes (or the end) found: the bytes, and how it ended.
struct Received {
  std::string bytes;
  ssize_t last = 0;  // the last recv's result: 0 at the end of stream, -1 on an error
  int error = 0;     // errno when last is -1
};
Received receive(int fd, std::size_t size = SIZE_MAX) {
  Received got;
  while (got.bytes.size() < size) {
    got.last = coring::net::test::receive_into(fd, got.bytes);
    if (got.last <= 0) {
      got.error = got.last < 0 ? errno : 0;
      break;
    }
  }
  return got;
}
// Receives until the end of stream or an error.
Received receive_to_end(int fd) { return receive(fd); }

// Closes `fd` with a reset (SO_LINGER {1, 0}).
void reset(Fd& fd) {
  const linger now{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &now, sizeof(now));
  fd.reset();
}

std::string text_pattern(std::size_t size, std::uint32_t seed) {
  return coring::net::test::to_string(coring::net::test::pattern(size, seed));
}

std::vector<std::string> proxy_args(const Upstream& upstream, std::vector<std::string> more = {}) {
  std::vector<std::string> args{"--listen", "127.0.0.1:0", "--to", upstream.address()};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

TEST(ProxyProcess, BytesArriveIntactBothWaysAtOnce) {
  constexpr std::size_t size = 1 << 20;
  const std::string up = text_pattern(size, 1);
  const std::string down = text_pattern(size, 7);
  Received at_upstream;
  Upstream upstream([&](Fd& conn) {
    std::thread sender([&] { EXPECT_TRUE(send_text(conn.get(), down)); });
    at_upstream = receive_to_end(conn.get());
    sender.join();
  });
  Proxy proxy(proxy_args(upstream));
  Fd client = connect_client(proxy.port());
  std::thread sender([&] {
    EXPECT_TRUE(send_text(client.get(), up));
    ::shutdown(client.get(), SHUT_WR);
  });
  const Received at_client = receive_to_end(client.get());
  sender.join();
  upstream.join();
  EXPECT_EQ(at_client.last, 0) << std::strerror(at_client.error);
  EXPECT_TRUE(at_client.bytes == down) << at_client.bytes.size() << " bytes";
  EXPECT_EQ(at_upstream.last, 0) << std::strerror(at_upstream.error);
  EXPECT_TRUE(at_upstream.bytes == up) << at_upstream.bytes.size() << " bytes";
}

TEST(ProxyProcess, ClientHalfCloseReachesUpstreamWhichStillAnswers) {
  Received request;
  Upstream upstream([&](Fd& conn) {
    request = receive_to_end(conn.get());  // ends at the client's FIN
    EXPECT_TRUE(send_text(conn.get(), "the answer"));
  });
  Proxy proxy(proxy_args(upstream));
  Fd client = connect_client(proxy.port());
  ASSERT_TRUE(send_text(client.get(), "the question"));
  ::shutdown(client.get(), SHUT_WR);
  const Received answer = receive_to_end(client.get());  // ends when the upstream closes
  upstream.join();
  EXPECT_EQ(request.bytes, "the question");
  EXPECT_EQ(request.last, 0) << std::strerror(request.error);
  EXPECT_EQ(answer.bytes, "the answer");
  EXPECT_EQ(answer.last, 0) << std::strerror(answer.error);
}

TEST(ProxyProcess, UpstreamHalfCloseReachesClientWhichStillSends) {
  Received reply;
  Upstream upstream([&](Fd& conn) {
    EXPECT_TRUE(send_text(conn.get(), "hello"));
    ::shutdown(conn.get(), SHUT_WR);
    reply = receive_to_end(conn.get());  // ends when the client closes
  });
  Proxy proxy(proxy_args(upstream));
  Fd client = connect_client(proxy.port());
  const Received greeting = receive_to_end(client.get());
  EXPECT_EQ(greeting.bytes, "hello");
  EXPECT_EQ(greeting.last, 0) << std::strerror(greeting.error);
  EXPECT_TRUE(send_text(client.get(), "still here"));
  client.reset();
  upstream.join();
  EXPECT_EQ(reply.bytes, "still here");
  EXPECT_EQ(reply.last, 0) << std::strerror(reply.error);
}

// The end a reset peer's partner sees: ECONNRESET, or an end of stream where the proxy
// cannot reset its client (no socket commands).
void expect_reset(const Received& got, bool can_reset = true) {
  if (can_reset) {
    EXPECT_EQ(got.last, -1);
    EXPECT_EQ(got.error, ECONNRESET) << std::strerror(got.error);
  } else {
    EXPECT_LE(got.last, 0);
  }
}

TEST(ProxyProcess, UpstreamResetReachesClient) {
  Upstream upstream([&](Fd& conn) {
    EXPECT_EQ(receive(conn.get(), 4).bytes, "ping");
    reset(conn);
  });
  Proxy proxy(proxy_args(upstream));
  Fd client = connect_client(proxy.port());
  ASSERT_TRUE(send_text(client.get(), "ping"));
  expect_reset(receive_to_end(client.get()), proxy_can_reset());
}

TEST(ProxyProcess, ClientResetReachesUpstream) {
  Received at_upstream;
  Upstream upstream([&](Fd& conn) {
    EXPECT_EQ(receive(conn.get(), 4).bytes, "ping");
    EXPECT_TRUE(send_text(conn.get(), "pong"));
    at_upstream = receive_to_end(conn.get());
  });
  Proxy proxy(proxy_args(upstream));
  Fd client = connect_client(proxy.port());
  ASSERT_TRUE(send_text(client.get(), "ping"));
  EXPECT_EQ(receive(client.get(), 4).bytes, "pong");
  reset(client);
  upstream.join();
  expect_reset(at_upstream);
}

// After its half-close the client's direction is over; its reset is still passed on,
// though the upstream sends nothing that would find it. The upstream has read the end
// of stream, after which a receive only ever returns 0: the reset shows in poll(2) as
// POLLERR, which a graceful close would not raise.
TEST(ProxyProcess, ClientResetAfterHalfCloseReachesUpstream) {
  std::atomic<bool> saw_end{false};
  short events = 0;
  Upstream upstream([&](Fd& conn) {
    EXPECT_EQ(receive_to_end(conn.get()).last, 0);
    saw_end = true;
    pollfd state{conn.get(), 0, 0};
    if (::poll(&state, 1, 10000) == 1) events = state.revents;
  });
  Proxy proxy(proxy_args(upstream));
  Fd client = connect_client(proxy.port());
  ::shutdown(client.get(), SHUT_WR);
  while (!saw_end) std::this_thread::sleep_for(1ms);
  reset(client);
  upstream.join();
  EXPECT_NE(events & POLLERR, 0) << "revents " << events;
}

TEST(ProxyProcess, RefusedUpstreamResetsTheClientPromptly) {
  const coring::net::test::UnusedPort refusing;
  Proxy proxy({"--listen", "127.0.0.1:0", "--to", "127.0.0.1:" + std::to_string(refusing.port())});
  const auto start = Clock::now();
  Fd client = connect_client(proxy.port());
  const Received got = receive_to_end(client.get());
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_TRUE(got.bytes.empty());
  expect_reset(got, proxy_can_reset());
}

TEST(ProxyProcess, IdleConnectionIsClosedOnBothSides) {
  Received at_upstream;
  Upstream upstream([&](Fd& conn) {
    EXPECT_EQ(receive(conn.get(), 2).bytes, "hi");
    at_upstream = receive_to_end(conn.get());
  });
  Proxy proxy(proxy_args(upstream, {"--idle-timeout-ms", "300"}));
  Fd client = connect_client(proxy.port());
  // The proxy's last activity is its move of these bytes, which comes after this time.
  const auto quiet_since = Clock::now();
  ASSERT_TRUE(send_text(client.get(), "hi"));
  const Received at_client = receive_to_end(client.get());
  const auto waited = Clock::now() - quiet_since;
  upstream.join();
  EXPECT_EQ(at_client.last, 0) << std::strerror(at_client.error);
  EXPECT_TRUE(at_client.bytes.empty());
  EXPECT_EQ(at_upstream.last, 0) << std::strerror(at_upstream.error);
  EXPECT_TRUE(at_upstream.bytes.empty());
  // The deadline passes no earlier than asked; the receives' 10 s bound the other side.
  EXPECT_GE(waited, 300ms);
}

TEST(ProxyProcess, TrafficKeepsAConnectionPastTheIdleTimeout) {
  Received at_upstream;
  Upstream upstream([&](Fd& conn) { at_upstream = receive_to_end(conn.get()); });
  Proxy proxy(proxy_args(upstream, {"--idle-timeout-ms", "1000"}));
  Fd client = connect_client(proxy.port());
  // A byte every 100 ms for 3 s, one way only: three idle timeouts pass meanwhile.
  std::string sent;
  for (int i = 0; i < 30; ++i) {
    const char byte = static_cast<char>('a' + i % 26);
    if (!send_text(client.get(), std::string_view(&byte, 1))) break;
    sent += byte;
    std::this_thread::sleep_for(100ms);
  }
  client.reset();
  upstream.join();
  EXPECT_EQ(at_upstream.bytes, sent);
  EXPECT_EQ(at_upstream.last, 0) << std::strerror(at_upstream.error);
}

// The client has half-closed and the upstream says nothing: only the frame's deadline
// can end the connection, and the client's direction is over already. The frame's
// shutdown gives the client its end of stream; the proxy's descriptors for the
// connection (upstream socket, pipes) going show that its task ended too.
TEST(ProxyProcess, IdleHalfClosedConnectionIsClosed) {
  std::atomic<bool> done{false};
  Upstream upstream([&](Fd& conn) {
    EXPECT_EQ(receive_to_end(conn.get()).last, 0);
    while (!done) std::this_thread::sleep_for(1ms);
  });
  Proxy proxy(proxy_args(upstream, {"--idle-timeout-ms", "300"}));
  const std::size_t before = proxy.open_fds();
  Fd client = connect_client(proxy.port());
  ::shutdown(client.get(), SHUT_WR);
  const Received at_client = receive_to_end(client.get());
  EXPECT_EQ(at_client.last, 0) << std::strerror(at_client.error);
  const auto deadline = Clock::now() + 10s;
  while (proxy.open_fds() != before && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(proxy.open_fds(), before);
  done = true;
}

// One connection open both ways, one whose client has half-closed while the upstream
// holds its side open: SIGTERM ends both, and the proxy with status 0.
TEST(ProxyProcess, SigtermWithOpenConnectionsExitsZero) {
  std::atomic<int> ended{0};
  std::atomic<bool> done{false};
  Upstream upstream(
      [&](Fd& conn) {
        (void)receive_to_end(conn.get());
        ++ended;
        while (!done) std::this_thread::sleep_for(1ms);
      },
      2);
  Proxy proxy(proxy_args(upstream));
  Fd open = connect_client(proxy.port());
  Fd half_closed = connect_client(proxy.port());
  ASSERT_TRUE(send_text(open.get(), "x"));
  ::shutdown(half_closed.get(), SHUT_WR);
  while (ended < 1) std::this_thread::sleep_for(1ms);  // the half-close has passed
  proxy.signal(SIGTERM);
  const auto status = proxy.wait(10s);
  EXPECT_TRUE(exited_with_zero(status)) << (status ? *status : -1);
  EXPECT_EQ(receive_to_end(open.get()).last, 0);
  EXPECT_EQ(receive_to_end(half_closed.get()).last, 0);
  done = true;
  upstream.join();
  EXPECT_EQ(ended, 2);
}

TEST(ProxyProcess, ManyConnectionsLeaveNoDescriptorBehind) {
  constexpr int connections = 60;
  Upstream upstream(
      [](Fd& conn) {
        const Received got = receive(conn.get(), 5);
        if (got.bytes == "reset") {
          reset(conn);
        } else {
          EXPECT_TRUE(send_text(conn.get(), got.bytes));
        }
      },
      connections);
  Proxy proxy(proxy_args(upstream));
  const std::size_t before = proxy.open_fds();
  ASSERT_GT(before, 0U);
  for (int i = 0; i < connections; ++i) {
    Fd client = connect_client(proxy.port());
    const bool resetting = i % 3 == 0;
    ASSERT_TRUE(send_text(client.get(), resetting ? "reset" : "hello"));
    const Received got = receive_to_end(client.get());
    if (!resetting) {
      EXPECT_EQ(got.bytes, "hello");
    }
  }
  upstream.join();
  EXPECT_EQ(upstream.served(), connections);
  // The proxy closes its side of each connection after the client's: wait for the last.
  const auto deadline = Clock::now() + 10s;
  while (proxy.open_fds() != before && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(proxy.open_fds(), before);
}

TEST(ProxyProcess, Ipv6OnBothSides) {
  Fd probe(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 loopback{};
  loopback.sin6_family = AF_INET6;
  loopback.sin6_addr = in6addr_loopback;
  if (probe.get() < 0 ||
      ::bind(probe.get(), reinterpret_cast<sockaddr*>(&loopback), sizeof(loopback)) != 0) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  probe.reset();
  Upstream upstream(
      [](Fd& conn) { EXPECT_TRUE(send_text(conn.get(), receive(conn.get(), 4).bytes)); }, 1,
      AF_INET6);
  Proxy proxy({"--listen", "[::1]:0", "--to", upstream.address()});
  Fd client(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  loopback.sin6_port = htons(proxy.port());
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&loopback), sizeof(loopback)), 0);
  set_receive_timeout(client.get());
  ASSERT_TRUE(send_text(client.get(), "six!"));
  const Received got = receive_to_end(client.get());
  EXPECT_EQ(got.bytes, "six!");
  EXPECT_EQ(got.last, 0) << std::strerror(got.error);
}

#else

TEST(ProxyProcess, NeedsTheExamples) {
  GTEST_SKIP() << "built without the examples (CORING_BUILD_EXAMPLES=OFF)";
}

#endif

}  // namespace
