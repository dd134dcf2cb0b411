// Idle connections do not starve new ones. A server on a default EventLoop (a CQ of 512
// entries) keeps a recv in flight on every connection it holds, so with thousands of
// idle clients far more operations wait for their peers than the CQ has entries. Nothing
// bounds the operations in flight (completions beyond the CQ wait in the kernel's
// overflow list, which the loop flushes): this test holds 19,000 idle connections open,
// checks that every one of them still echoes, and that a new client is answered within
// 10 ms (p99 of 100 probes) while they stay open, with no operation waiting for
// admission.
//
// The clients are a child process forked before the server's loop exists, using plain
// blocking sockets: it has a descriptor table (and an RLIMIT_NOFILE) of its own, so
// 19,000 client ends and 19,000 server ends fit under a hard limit of 20,000 each. It
// reports what it measured through a pipe, which the server reads on its loop. Probes
// connect from 127.0.0.2: with 19,000 ports of 127.0.0.1 taken, the client's own
// connect() would spend milliseconds finding a free one.
//
// With a bound of a CQ's size (LoopOptions::max_in_flight = 510), the recvs that
// nothing will complete fill every slot and the first probe gets no answer.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "coring/net/listener.hpp"
#include "coring/net/stream.hpp"
#include "coring/ring/prep.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/io.hpp"
#include "coring/runtime/scope.hpp"
#include "coring/runtime/task.hpp"
#include "net_support.hpp"
#include "support.hpp"

namespace coring::net {
namespace {

using namespace std::chrono_literals;
using ring::test::Fd;
using Clock = std::chrono::steady_clock;

constexpr int kIdle = 19'000;           // idle connections the client holds open
constexpr int kHeadroom = 100;          // fds beyond them: listener, ring, pipe, probes
constexpr int kProbes = 100;            // new connections made while they are open
constexpr auto kProbeGap = 10ms;        // pause before each probe
constexpr std::size_t kProbeSize = 16;  // bytes each probe sends and reads back
// The probes' source address. From 127.0.0.1, where the idle connections hold 19,000
// of the 28,000-odd ephemeral ports, each connect() spends milliseconds in the kernel
// searching for a free port — time of the client, not of the server. From another
// loopback address, the first port it tries is free.
constexpr in_addr_t kProbeSource = INADDR_LOOPBACK + 1;  // 127.0.0.2
constexpr std::int64_t kP99LimitUs = 10'000;
constexpr auto kEchoPhase = 20s;               // for every idle connection's echo, in all
constexpr std::chrono::seconds kIoTimeout{5};  // one connect or one probe's receive
// The server gives up on a client that has not reported by then (and kills it), so a
// hung client fails the test before ctest's timeout (120 s) kills it.
constexpr auto kWatchdog = 90s;

// What the client measured, sent whole through the pipe (a plain struct well under
// PIPE_BUF, so one write()).
struct ClientReport {
  int connected = 0;  // idle connections opened
  int echoed = 0;     // of those, how many echoed their 4 bytes correctly
  int probes = 0;     // probes answered correctly
  std::int64_t p50_us = 0;
  std::int64_t p99_us = 0;
  char error[240] = {};  // the first thing that went wrong, or empty
};

// ---- The client (the forked child: plain blocking sockets, no coring) ---------------

// Records the first error of the run, printf-style; later ones are usually its
// consequences.
__attribute__((format(printf, 2, 3))) void note_error(ClientReport& report, const char* format,
                                                      ...) {
  if (report.error[0] != '\0') return;
  va_list args;
  va_start(args, format);
  std::vsnprintf(report.error, sizeof(report.error), format, args);
  va_end(args);
}

// Why a blocking call on a socket failed: `result` is its return value, errno the rest.
const char* failure_of(ssize_t result) {
  if (result == 0) return "closed by the server";
  if (errno == EAGAIN || errno == EINPROGRESS) return "timed out";  // SO_RCVTIMEO, SO_SNDTIMEO
  return std::strerror(errno);
}

// A blocking TCP connection to 127.0.0.1:`port`, or -1 with errno set; from `source`
// when given (its port chosen at connect()). SO_SNDTIMEO bounds the connect itself (a
// SYN the full backlog drops is retried for minutes), and connect_client's SO_RCVTIMEO
// each receive.
int open_connection(std::uint16_t port, std::optional<in_addr_t> source = std::nullopt) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return -1;
  const timeval timeout{kIoTimeout.count(), 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  if (source) {
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(*source);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
      return -1;
    }
  }
  // On failure, closing the socket (which succeeds) leaves connect's errno.
  if (test::connect_client(fd.get(), port, kIoTimeout) != 0) return -1;
  return fd.release();
}

// The distinct 4 bytes idle connection `index` sends.
std::uint32_t token_of(int index) { return 0xC0DE0000u + static_cast<std::uint32_t>(index); }

// Sends every idle connection its token, then reads every echo back, polling them all
// (a receive at a time would wait kIoTimeout for each silent one). Counts the correct
// echoes in report.echoed; true if all of them came.
bool check_idle_echoes(const std::vector<Fd>& idle, ClientReport& report) {
  for (int i = 0; i < static_cast<int>(idle.size()); ++i) {
    const std::uint32_t token = token_of(i);
    if (::send(idle[i].get(), &token, sizeof(token), MSG_NOSIGNAL) != sizeof(token)) {
      note_error(report, "send on idle connection %d: %s", i, std::strerror(errno));
      return false;
    }
  }
  // The connections still waiting for their echo: pollfds, and beside them which
  // connection each is and the bytes it has sent back so far.
  struct Pending {
    int index;
    std::size_t got;
    std::array<std::byte, sizeof(std::uint32_t)> bytes;
  };
  std::vector<pollfd> polls;
  std::vector<Pending> pending;
  for (int i = 0; i < static_cast<int>(idle.size()); ++i) {
    polls.push_back({idle[i].get(), POLLIN, 0});
    pending.push_back({i, 0, {}});
  }
  const auto remove = [&](std::size_t k) {
    polls[k] = polls.back();
    polls.pop_back();
    pending[k] = pending.back();
    pending.pop_back();
  };
  const auto deadline = Clock::now() + kEchoPhase;
  while (!polls.empty()) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms) {
      note_error(report, "no echo within %lld s from %zu idle connections",
                 static_cast<long long>(kEchoPhase.count()), polls.size());
      return false;
    }
    const int ready = ::poll(polls.data(), polls.size(), static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) {
      note_error(report, "poll over %zu connections: %s", polls.size(), std::strerror(errno));
      return false;
    }
    for (std::size_t k = 0; k < polls.size();) {
      if (polls[k].revents == 0) {
        ++k;
        continue;
      }
      Pending& p = pending[k];
      const ssize_t n =
          ::recv(polls[k].fd, p.bytes.data() + p.got, p.bytes.size() - p.got, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        ++k;
        continue;
      }
      if (n <= 0) {
        note_error(report, "recv on idle connection %d: %s", p.index, failure_of(n));
        remove(k);
        continue;
      }
      p.got += static_cast<std::size_t>(n);
      if (p.got < p.bytes.size()) {
        ++k;
        continue;
      }
      std::uint32_t echoed = 0;
      std::memcpy(&echoed, p.bytes.data(), sizeof(echoed));
      if (echoed == token_of(p.index)) {
        ++report.echoed;
      } else {
        note_error(report, "idle connection %d echoed other bytes", p.index);
      }
      remove(k);
    }
  }
  return report.echoed == static_cast<int>(idle.size());
}

// kProbes new connections, kProbeGap apart, each sending kProbeSize bytes and reading
// them back; their round trips (connect to last byte) give report.p50_us and p99_us.
// Stops at the first probe that fails.
void probe(std::uint16_t port, ClientReport& report) {
  std::array<std::int64_t, kProbes> round_trips{};
  for (int i = 0; i < kProbes; ++i) {
    std::this_thread::sleep_for(kProbeGap);
    const std::string message = test::to_string(test::pattern(kProbeSize, std::uint32_t(i)));
    const auto start = Clock::now();
    Fd fd(open_connection(port, kProbeSource));
    if (fd.get() < 0) {
      note_error(report, "connect of probe %d: %s", i, failure_of(-1));
      return;
    }
    if (::send(fd.get(), message.data(), message.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(message.size())) {
      note_error(report, "send of probe %d: %s", i, std::strerror(errno));
      return;
    }
    std::string reply;
    while (reply.size() < message.size()) {
      const ssize_t n = test::receive_into(fd.get(), reply);
      if (n <= 0) {
        note_error(report, "recv of probe %d: %s", i, failure_of(n));
        return;
      }
    }
    const auto elapsed = Clock::now() - start;
    if (reply != message) {
      note_error(report, "probe %d echoed other bytes", i);
      return;
    }
    round_trips[i] = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
    ++report.probes;
  }
  std::sort(round_trips.begin(), round_trips.end());
  report.p50_us = round_trips[kProbes / 2 - 1];  // the 50th of 100
  report.p99_us = round_trips[kProbes - 2];      // the 99th of 100
}

// The child's whole life (its soft RLIMIT_NOFILE is the one the test raised before the
// fork, its own from then on): open the idle connections, check that each echoes, probe
// with new ones, report, close everything. Never returns.
[[noreturn]] void run_client(std::uint16_t port, int report_fd) {
  ClientReport report;
  std::vector<Fd> idle;
  idle.reserve(kIdle);
  for (int i = 0; i < kIdle; ++i) {
    Fd fd(open_connection(port));
    if (fd.get() < 0) {
      note_error(report, "connect of idle connection %d: %s", i, failure_of(-1));
      break;
    }
    idle.push_back(std::move(fd));
  }
  report.connected = static_cast<int>(idle.size());
  if (report.connected == kIdle && check_idle_echoes(idle, report)) probe(port, report);
  // Reported while the idle connections are still open, so that the server sees them
  // all in flight when the report comes.
  const bool sent = ::write(report_fd, &report, sizeof(report)) == sizeof(report);
  idle.clear();
  ::close(report_fd);
  ::_exit(sent ? 0 : 1);
}

// ---- The server (the test process, on a default EventLoop) --------------------------

// Echoes one connection until the peer closes it or an error ends it.
Task<void> echo(TcpStream stream) {
  std::array<std::byte, 64> buffer{};
  for (;;) {
    IoResult n = co_await stream.recv(buffer);
    if (n.res <= 0) break;
    TransferResult sent = co_await stream.send_all(std::span(buffer).first(n.value()));
    if (!sent) break;
  }
  co_await stream.close();
}

// Accepts connections into `scope`, each echoed, until the listener closes.
Task<void> accept_loop(Listener& listener, TaskScope& scope, int& failures) {
  for (;;) {
    Result<TcpStream> conn = co_await listener.accept();
    if (!conn) {
      if (conn.error() == std::errc::operation_canceled) co_return;
      ++failures;  // the listener pauses after a shortage; accept() again
      continue;
    }
    scope.spawn(echo(std::move(*conn)));
  }
}

// The client's report read from `fd` on the loop, or nullopt if the client ended
// without one (EOF) or did not send it within `limit`.
Task<std::optional<ClientReport>> read_report(int fd, std::chrono::nanoseconds limit) {
  ClientReport report;
  const std::span<std::byte> bytes = std::as_writable_bytes(std::span(&report, 1));
  std::size_t got = 0;
  const auto deadline = Clock::now() + limit;
  while (got < bytes.size()) {
    const auto left = deadline - Clock::now();
    if (left <= 0ns) co_return std::nullopt;
    IoResult n = co_await io([&](ring::Sqe& sqe) {
                   ring::prep_read(sqe, fd, bytes.subspan(got), 0);
                 }).with_timeout(left);
    if (n.res <= 0) co_return std::nullopt;  // 0: the client is gone; -ETIMEDOUT: hung
    got += static_cast<std::size_t>(n.res);
  }
  co_return report;
}

// What the server saw.
struct Served {
  std::optional<ClientReport> report;
  LoopStats when_reported;  // the loop's figures with every idle connection still open
  int accept_failures = 0;
  IoResult listener_closed{};
};

// Serves until the client reports (or the watchdog gives up on it and kills it), then
// closes the listener and waits for every connection to be closed.
Task<Served> serve(Listener& listener, int report_fd, pid_t client) {
  Served served;
  TaskScope scope;
  scope.spawn(accept_loop(listener, scope, served.accept_failures));
  served.report = co_await read_report(report_fd, kWatchdog);
  served.when_reported = EventLoop::current()->stats();
  // A client that hung is killed, which closes its connections as its exit would.
  if (!served.report) ::kill(client, SIGKILL);
  served.listener_closed = co_await listener.close();
  // Each echo ends at its peer's close (the client closes all it opened, or the kernel
  // does at its exit), and closes its end: no fd outlives the test.
  co_await scope.join();
  co_return served;
}

// Raises the soft RLIMIT_NOFILE to the hard one; restores it on destruction.
class RaisedFdLimit {
 public:
  RaisedFdLimit() {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit raised = saved_;
    raised.rlim_cur = saved_.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &raised);
  }
  ~RaisedFdLimit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  RaisedFdLimit(const RaisedFdLimit&) = delete;
  RaisedFdLimit& operator=(const RaisedFdLimit&) = delete;

  [[nodiscard]] static rlimit now() {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    return limit;
  }

 private:
  rlimit saved_{};
};

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

TEST(IdleConnections, ADefaultLoopServesNineteenThousandIdleClientsAndAnswersANewOneQuickly) {
  const RaisedFdLimit raised;
  const rlimit limit = RaisedFdLimit::now();
  if (limit.rlim_cur < static_cast<rlim_t>(kIdle + kHeadroom)) {
    GTEST_SKIP() << "needs RLIMIT_NOFILE of at least " << kIdle + kHeadroom << " (" << kIdle
                 << " connections + " << kHeadroom << "); the soft limit could only be raised to "
                 << limit.rlim_cur << " (hard limit " << limit.rlim_max << ")";
  }

  // Declared first, destroyed last: the listener is closed on it. Made only after the
  // fork, so that the child has no ring of ours.
  std::optional<EventLoop> loop;
  auto listener = TcpListener::bind(Address::ipv4_loopback(), {.backlog = 4096});
  ASSERT_TRUE(listener) << listener.error().message();
  auto local = listener->local_address();
  ASSERT_TRUE(local) << local.error().message();
  const std::uint16_t port = local->port();

  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0) << std::strerror(errno);
  Fd report_read(ends[0]);
  Fd report_write(ends[1]);
  const auto started = Clock::now();
  const pid_t client = ::fork();
  ASSERT_GE(client, 0) << "fork: " << std::strerror(errno);
  if (client == 0) {
    ::close(report_read.get());
    ::close(listener->fd());
    run_client(port, report_write.get());
  }
  report_write.reset();  // so that the read sees EOF once the client is gone

  loop.emplace();  // default LoopOptions: the point of the test
  const Served served = loop->run(serve(*listener, report_read.get(), client));
  const LoopStats stats = loop->stats();
  int status = 0;
  ASSERT_EQ(::waitpid(client, &status, 0), client) << std::strerror(errno);
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);

  std::printf(
      "[ figures  ] %s: %lld ms; in flight when reported %u, overflow flushes %llu, "
      "waits %llu, cqes lost %llu\n",
      describe_status(status).c_str(), static_cast<long long>(elapsed.count()),
      served.when_reported.in_flight, static_cast<unsigned long long>(stats.overflow_flushes),
      static_cast<unsigned long long>(stats.waits),
      static_cast<unsigned long long>(stats.cqes_lost));
  ASSERT_TRUE(served.report) << "no report from the client (it ended, or sent none in "
                             << kWatchdog.count() << " s); it " << describe_status(status);
  const ClientReport& report = *served.report;
  std::printf("[ figures  ] %d connected, %d echoed, %d probes: p50 %lld us, p99 %lld us\n",
              report.connected, report.echoed, report.probes, static_cast<long long>(report.p50_us),
              static_cast<long long>(report.p99_us));
  RecordProperty("p50_us", std::to_string(report.p50_us));
  RecordProperty("p99_us", std::to_string(report.p99_us));
  RecordProperty("in_flight_when_reported", std::to_string(served.when_reported.in_flight));
  RecordProperty("overflow_flushes", std::to_string(stats.overflow_flushes));

  EXPECT_STREQ(report.error, "");
  EXPECT_EQ(report.connected, kIdle);
  EXPECT_EQ(report.echoed, kIdle);
  EXPECT_EQ(report.probes, kProbes);
  EXPECT_LT(report.p99_us, kP99LimitUs);
  EXPECT_EQ(stats.waits, 0u);
  EXPECT_EQ(stats.cqes_lost, 0u);
  EXPECT_EQ(served.accept_failures, 0);
  EXPECT_TRUE(served.listener_closed.ok()) << served.listener_closed.res;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_status(status);
}

}  // namespace
}  // namespace coring::net
