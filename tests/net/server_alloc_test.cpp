// The server frame (net::Server) and http::Server on it when memory runs out: the global
// operator new is replaced by one that fails the Nth allocation after the test arms it,
// and every N over a range is tried, with coring-echo's handler on the frame and with an
// http::Server answering `GET /` as coring-http does, each receiving into the loop's
// pool (as coring-echo and coring-http run) and with a recv per chunk.
//
// Serving. With the server up and one connection served, the test arms the fault and
// drives a client script (several messages or requests, pipelining, the end of the
// connection); then, the fault spent, it requires that every connection has left the
// server's registry, that no fd was leaked, and that a fresh connection is served in
// full. N runs from 0 to the first N the script's allocations do not reach. The
// failure may end the client's connection early, and nothing else: a connection left
// unanswered fails the test, and so does a server that stops serving, a crash or a
// sanitizer report.
//
// Starting. With the fault armed before the Server is built, each N fails one
// allocation of the constructor, of the loops' setup or of the first connection, with
// one loop and with two: the constructor throws, or run() returns 1 without calling its
// ready callback; once the server has reported ready, a failure ends a connection at
// most, and the server serves on until it is stopped (run() returns 0).
//
// Only the server's threads count: the test's own thread (the client) is exempt, so
// that the Nth allocation is the server's. A failed allocation throws std::bad_alloc,
// as operator new does when malloc fails; the nothrow forms return nullptr.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

#include "coring/http/router.hpp"
#include "coring/http/server.hpp"
#include "echo_server.hpp"
#include "failing_alloc.hpp"
#include "net_support.hpp"
#include "server.hpp"
#include "support.hpp"

namespace {

// The fault: while armed, the allocation that finds `countdown` at 0 fails.
struct AllocationFault {
  std::atomic<bool> armed{false};
  std::atomic<std::int64_t> countdown{0};
  std::atomic<bool> fired{false};
};
AllocationFault fault;
thread_local bool exempt = false;  // set on the test's own thread

// The policy (tests/common/failing_alloc.hpp): whether this allocation is the one to
// fail (counting it either way).
bool fail_this_allocation() noexcept {
  if (exempt || !fault.armed.load(std::memory_order_relaxed)) return false;
  if (fault.countdown.fetch_sub(1, std::memory_order_relaxed) != 0) return false;
  fault.fired.store(true, std::memory_order_relaxed);
  return true;
}

}  // namespace

CORING_TEST_FAILING_OPERATOR_NEW(fail_this_allocation);

namespace coring::examples {
namespace {

using namespace std::chrono_literals;
using ring::test::count_open_fds;

// Arms the fault to fail the allocation `n` allocations from now (0: the next).
void arm(std::int64_t n) {
  fault.fired.store(false);
  fault.countdown.store(n);
  fault.armed.store(true);
}
void disarm() { fault.armed.store(false); }

// Polls `done` every millisecond for up to `limit`.
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// How long a client waits for an answer before it calls the server stalled: well below
// the server's idle timeout, so that a connection the server stopped serving is caught
// before the sweeper ends it.
constexpr std::chrono::seconds answer_limit{2};
constexpr std::chrono::seconds idle_timeout{4};  // the sweeper walks the registry every 1 s

// A blocking client connection. Every call returns false once the connection has
// ended (end of stream, reset, or no answer within answer_limit: `stalled`).
class Client {
 public:
  explicit Client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    connected_ = net::test::connect_client(fd_, port, answer_limit) == 0;
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool send(std::string_view data) {
    if (!connected_) return false;
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  void shutdown_sending() { ::shutdown(fd_, SHUT_WR); }
  // Sends `data` and reads back as many bytes, sending as far as the socket takes
  // before reading anything: the server's sends then find the way back full.
  bool flood(std::string_view data) {
    if (!connected_) return false;
    std::size_t sent = 0;
    const std::size_t expected = buffer_.size() + data.size();
    while (buffer_.size() < expected) {
      pollfd events{fd_, static_cast<short>(POLLIN | (sent < data.size() ? POLLOUT : 0)), 0};
      if (::poll(&events, 1, static_cast<int>(answer_limit.count() * 1000)) <= 0) {
        stalled_ = true;
        return false;
      }
      if ((events.revents & POLLOUT) != 0) {
        const ssize_t put =
            ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (put < 0 && errno != EAGAIN) return false;
        if (put > 0) sent += static_cast<std::size_t>(put);
        if (put > 0 && sent < data.size()) continue;  // reads wait until sending blocks
      }
      if ((events.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        char chunk[16384];
        const ssize_t got = ::recv(fd_, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN)) return false;
        if (got > 0) buffer_.append(chunk, static_cast<std::size_t>(got));
      }
    }
    return true;
  }
  // Exactly `size` more bytes into buffer().
  bool read(std::size_t size) {
    while (buffer_.size() < size) {
      if (!fill()) return false;
    }
    return true;
  }
  // Up to and including `marker`.
  bool read_until(std::string_view marker) {
    while (buffer_.find(marker) == std::string::npos) {
      if (!fill()) return false;
    }
    return true;
  }
  // Whether the peer ended the stream (after whatever it still sent).
  bool read_to_end() {
    while (fill()) {
    }
    return eof_;
  }
  std::string take(std::size_t size) {
    std::string out = buffer_.substr(0, size);
    buffer_.erase(0, size);
    return out;
  }
  [[nodiscard]] const std::string& buffer() const { return buffer_; }
  [[nodiscard]] bool stalled() const { return stalled_; }

 private:
  bool fill() {
    if (!connected_) return false;
    const ssize_t got = net::test::receive_into(fd_, buffer_);
    if (got > 0) return true;
    eof_ = got == 0;
    stalled_ = got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    return false;
  }

  int fd_;
  bool connected_ = false;
  bool eof_ = false;
  bool stalled_ = false;
  std::string buffer_;
};

// What a script saw: whether it ran to its end, and whether the server stopped
// answering without ending the connection.
struct Outcome {
  bool complete = false;
  bool stalled = false;
};

// Echo: a short message, a long one (several receives and sends), a flood that fills
// the way back (the chunks the server receives then queue up behind its sends, and the
// queue grows), then the client's end of stream, which the server answers with its own.
Outcome echo_script(std::uint16_t port) {
  Client client(port);
  std::string longer(24 * 1024, 'x');
  for (std::size_t i = 0; i < longer.size(); ++i) longer[i] = static_cast<char>('a' + i % 26);
  std::string flood(1024 * 1024, 'x');
  for (std::size_t i = 0; i < flood.size(); ++i) flood[i] = static_cast<char>('a' + i % 23);
  bool ok = client.send("hello") && client.read(5) && client.take(5) == "hello";
  ok = ok && client.send(longer) && client.read(longer.size()) &&
       client.take(longer.size()) == longer;
  ok = ok && client.flood(flood) && client.take(flood.size()) == flood;
  if (ok) client.shutdown_sending();
  ok = ok && client.read_to_end() && client.buffer().empty();
  return {ok, client.stalled()};
}

constexpr std::string_view get_root = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";
constexpr std::string_view hello_response_end = "\r\n\r\nHello, World!";

// The number of complete "Hello, World!" responses and 404s in `text`.
int count(std::string_view text, std::string_view what) {
  int n = 0;
  for (std::size_t at = text.find(what); at != std::string_view::npos;
       at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

// HTTP: a request, three pipelined ones (a 404 for a path too long for a string's own
// buffer among them), then one with `Connection: close`, after which the server ends
// the connection; and on a second connection a malformed request, which gets a 400.
Outcome http_script(std::uint16_t port) {
  Client client(port);
  bool ok = client.send(get_root) && client.read_until(hello_response_end);
  ok = ok && count(client.take(client.buffer().size()), " 200 OK\r\n") == 1;
  ok = ok && client.send(std::string(get_root) +
                         "GET /a/path/longer/than/a/short/string HTTP/1.1\r\nHost: test\r\n\r\n" +
                         std::string(get_root));
  ok = ok && client.read_until(" 404 ") && client.read_until("Not Found\n") &&
       client.read_until(hello_response_end);
  ok = ok && count(client.take(client.buffer().size()), "Hello, World!") == 2;
  ok = ok && client.send("GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
  ok = ok && client.read_to_end() && count(client.buffer(), "Connection: close\r\n") == 1 &&
       count(client.buffer(), "Hello, World!") == 1;
  if (!ok) return {false, client.stalled()};
  Client malformed(port);
  ok = malformed.send("NOT HTTP AT ALL\r\n\r\n") && malformed.read_to_end() &&
       count(malformed.buffer(), " 400 Bad Request\r\n") == 1;
  return {ok, malformed.stalled()};
}

using Script = Outcome (*)(std::uint16_t port);

Task<http::Response> hello(http::Request&) { co_return http::Response::text(200, "Hello, World!"); }

// The server a case runs: coring-echo's handler on the frame, or an http::Server.
enum class Kind : std::uint8_t { echo, http };

// Either server, behind the members the test uses.
class AnyServer {
 public:
  AnyServer(Kind kind, bool pool, std::size_t threads) {
    if (kind == Kind::http) {
      http::ServerOptions options;
      options.handle_signals = false;
      options.threads = threads;
      options.header_timeout = idle_timeout;
      options.idle_timeout = idle_timeout;
      options.io_timeout = idle_timeout;
      options.receive_pool = pool;
      http::Router router;
      router.get("/", &hello);
      http_ = std::make_unique<http::Server>(options, std::move(router));
    } else {
      ServerOptions options;
      options.handle_signals = false;
      options.threads = threads;
      options.idle_timeout = idle_timeout;
      if (pool) options.receive_pool = default_receive_pool();
      echo_ = std::make_unique<Server>(options, &serve_echo);
    }
  }
  [[nodiscard]] std::uint16_t port() const { return http_ ? http_->port() : echo_->port(); }
  [[nodiscard]] std::size_t connections() const {
    return http_ ? http_->connections() : echo_->connections();
  }
  int run(const std::function<void()>& ready) {
    return http_ ? http_->run(ready) : echo_->run(ready);
  }
  void stop() {
    if (http_) {
      http_->stop();
    } else {
      echo_->stop();
    }
  }

 private:
  std::unique_ptr<Server> echo_;
  std::unique_ptr<http::Server> http_;
};

// A server on a thread of its own (which counts for the fault), from construction on.
class ServerThread {
 public:
  ServerThread(Kind kind, bool pool, std::size_t threads) {
    thread_ = std::thread([this, kind, pool, threads] {
      try {
        server_ = std::make_unique<AnyServer>(kind, pool, threads);
      } catch (const std::bad_alloc&) {
        constructor_failed_ = true;
        finished_ = true;
        return;
      } catch (const std::system_error& error) {
        // The epoll backend's ring is memory of this process: its setup says ENOMEM.
        if (error.code() != std::errc::not_enough_memory) throw;
        constructor_failed_ = true;
        finished_ = true;
        return;
      }
      constructed_ = true;
      status_ = server_->run([this] { ready_ = true; });
      finished_ = true;
    });
  }
  // A server whose run() never returns would hang the test in the join: abort instead.
  ~ServerThread() {
    stop();
    if (!wait_until([this] { return finished_.load(); }, 30s)) {
      std::fprintf(stderr, "the server's run() did not return within 30 s of stop()\n");
      std::abort();
    }
    thread_.join();
  }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;

  // Started: ready, or failed. False if neither came in time.
  bool wait_started() {
    return wait_until([this] { return ready_.load() || finished_.load(); }, 10s);
  }
  void stop() {
    wait_until([this] { return constructed_.load() || finished_.load(); });
    if (constructed_) server_->stop();
  }
  int join_status() {
    stop();
    wait_until([this] { return finished_.load(); }, 30s);
    return status_;
  }

  std::atomic<bool> constructor_failed_{false};
  std::atomic<bool> constructed_{false};
  std::atomic<bool> ready_{false};
  std::atomic<bool> finished_{false};
  int status_ = -1;
  std::unique_ptr<AnyServer> server_;
  std::thread thread_;
};

struct Case {
  const char* name;
  Kind kind;
  Script script;
  bool pool;
};

// For GoogleTest's messages: the name, not the bytes.
void PrintTo(const Case& c, std::ostream* out) { *out << c.name; }

const Case cases[] = {
    {"echo_pool", Kind::echo, &echo_script, true},
    {"echo_recv", Kind::echo, &echo_script, false},
    {"http_pool", Kind::http, &http_script, true},
    {"http_recv", Kind::http, &http_script, false},
};

class ServerAllocTest : public testing::TestWithParam<Case> {
 protected:
  void SetUp() override { exempt = true; }
  void TearDown() override { disarm(); }
};

// Fails each allocation of a connection's life in turn; see the top of the file.
TEST_P(ServerAllocTest, AFailedAllocationEndsOneConnectionAndTheServerServesOn) {
  const Case& c = GetParam();
  auto server = std::make_unique<ServerThread>(c.kind, c.pool, 1);
  ASSERT_TRUE(server->wait_started());
  ASSERT_TRUE(server->ready_);
  ASSERT_TRUE(c.script(server->server_->port()).complete);  // warm: pool, queues, logger
  // The warm connection gone: on the epoll backend its direct descriptor is an fd of
  // this process until the server's close of it has run.
  ASSERT_TRUE(wait_until([&] { return server->server_->connections() == 0; }));
  int fds = count_open_fds();
  for (int same = 0; same < 3;) {
    std::this_thread::sleep_for(20ms);
    const int now = count_open_fds();
    same = now == fds ? same + 1 : 0;
    fds = now;
  }
  int ended_early = 0;
  std::int64_t n = 0;
  for (;; ++n) {
    ASSERT_LT(n, 2000) << "no end to the script's allocations";
    arm(n);
    const Outcome failing = c.script(server->server_->port());
    disarm();
    const bool fired = fault.fired.load();
    ASSERT_FALSE(failing.stalled) << "allocation " << n << ": the server stopped answering";
    ASSERT_TRUE(failing.complete || fired) << "allocation " << n;
    if (!failing.complete) ++ended_early;
    ASSERT_FALSE(server->finished_) << "allocation " << n << ": the server ended";
    ASSERT_TRUE(wait_until([&] { return server->server_->connections() == 0; }))
        << "allocation " << n << ": the connection stayed in the registry";
    ASSERT_TRUE(c.script(server->server_->port()).complete)
        << "allocation " << n << ": a fresh connection was not served";
    ASSERT_TRUE(wait_until([&] { return count_open_fds() == fds; }))
        << "allocation " << n << ": " << count_open_fds() - fds << " fd(s) leaked";
    if (!fired) break;
  }
  EXPECT_GT(n, 0);
  std::printf("%s: allocations 0..%lld of a connection failed in turn; %d ended it early\n", c.name,
              static_cast<long long>(n - 1), ended_early);
  EXPECT_EQ(server->join_status(), 0);
}

// Fails each allocation of the server's start (and then of its first connection) in
// turn, with one loop and with two; see the top of the file.
TEST_P(ServerAllocTest, AFailedAllocationAtStartFailsItBeforeItReportsReady) {
  const Case& c = GetParam();
  for (const std::size_t threads : {1, 2}) {
    int failed = 0;
    std::int64_t n = 0;
    for (;; ++n) {
      ASSERT_LT(n, 2000) << "no end to the start's allocations";
      const int fds = count_open_fds();
      arm(n);
      auto server = std::make_unique<ServerThread>(c.kind, c.pool, threads);
      ASSERT_TRUE(server->wait_started()) << threads << " loop(s), allocation " << n;
      if (server->ready_) {
        // Every loop serves: whatever fails from here on ends a connection at most.
        (void)c.script(server->server_->port());
        disarm();
        EXPECT_TRUE(c.script(server->server_->port()).complete)
            << threads << " loop(s), allocation " << n;
        EXPECT_EQ(server->join_status(), 0) << threads << " loop(s), allocation " << n;
      } else {
        disarm();
        ASSERT_TRUE(fault.fired) << threads << " loop(s), allocation " << n;
        ++failed;
        if (!server->constructor_failed_) {
          EXPECT_EQ(server->join_status(), 1) << threads << " loop(s), allocation " << n;
        }
      }
      const bool fired = fault.fired;
      server.reset();
      ASSERT_EQ(count_open_fds(), fds)
          << threads << " loop(s), allocation " << n << ": fd(s) leaked";
      if (!fired) break;
    }
    std::printf(
        "%s, %zu loop(s): allocations 0..%lld of the start and a connection failed "
        "in turn; %d failed the start\n",
        c.name, threads, static_cast<long long>(n - 1), failed);
  }
}

std::string case_name(const testing::TestParamInfo<Case>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Handlers, ServerAllocTest, testing::ValuesIn(cases), case_name);

}  // namespace
}  // namespace coring::examples
