// A listener out of fds does not spin. More clients than fds wait in the backlog; each
// accept request fails on the first of them (EMFILE, or ENFILE for a full direct
// descriptor table), and an accept loop that logs and retries — the pattern the docs
// show — would otherwise fail as fast as it can call accept(), at 100% CPU. The
// listener pauses before each retry after the first (1 ms doubling to 1 s), so the
// loop sees a few failures a second, each naming the limit that was hit, and it serves
// again by itself once connections close.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <vector>

#include "coring/net/error.hpp"
#include "coring/net/listener.hpp"
#include "coring/net/stream.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"
#include "net_support.hpp"
#include "support.hpp"

namespace coring::net {
namespace {

using namespace std::chrono_literals;

// What the accept loop saw.
struct Served {
  int accepted = 0;
  int failures = 0;
  std::error_code last_error;
  bool hold = true;  // keep the connections (using up fds) or close each at once
  std::vector<TcpStream> held;
};

// The docs' accept loop: an error is logged (here: counted) and accept() called again;
// only the listener's end (ECANCELED) stops it. ECANCELED is told by its value alone:
// a sanitizer build checks a virtual call it has not seen before (an error category's
// comparison) through a pipe, which it cannot open while fds are out.
Task<void> accept_loop(Listener& listener, Served& served) {
  for (;;) {
    Result<TcpStream> conn = co_await listener.accept();
    if (!conn) {
      if (conn.error().value() == ECANCELED) co_return;
      ++served.failures;
      served.last_error = conn.error();
      continue;
    }
    ++served.accepted;
    if (served.hold) served.held.push_back(std::move(*conn));
  }
}

// Plain client sockets connected to `address` (the backlog takes them; nobody accepts).
std::vector<ring::test::Fd> connect_clients(const Address& address, int count) {
  std::vector<ring::test::Fd> clients;
  for (int i = 0; i < count; ++i) {
    clients.emplace_back(::socket(address.domain(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_EQ(::connect(clients.back().get(), address.data(), address.size()), 0);
  }
  return clients;
}

// Lowers this process's soft RLIMIT_NOFILE so that exactly `spare` more fds can open,
// and restores it on destruction. The limit bounds fd numbers: it is set just above the
// `spare`-th free number (fds open above it, such as one inherited, stay open).
class FdLimit {
 public:
  explicit FdLimit(int spare) {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    int limit = 0;
    for (int free = 0; free < spare; ++limit) {
      if (::fcntl(limit, F_GETFD) == -1) ++free;
    }
    rlimit lowered = saved_;
    lowered.rlim_cur = static_cast<rlim_t>(limit);
    ok_ = ::setrlimit(RLIMIT_NOFILE, &lowered) == 0;
  }
  ~FdLimit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  FdLimit(const FdLimit&) = delete;
  FdLimit& operator=(const FdLimit&) = delete;
  [[nodiscard]] bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

// Waits until `served` has accepted `count` connections, or `limit` passed.
Task<void> wait_for_accepted(const Served& served, int count, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (served.accepted < count && std::chrono::steady_clock::now() < deadline) {
    co_await sleep_for(10ms);
  }
}

TEST(AcceptShortage, OutOfFdsTheAcceptLoopBacksOffNamesTheLimitAndRecovers) {
  constexpr int clients = 40;
  constexpr int spare = 8;
  EventLoop loop;
  std::stop_source stop;
  auto listener = TcpListener::bind(Address::ipv4_loopback(), {}, stop.get_token());
  ASSERT_TRUE(listener);
  // The clients' fds are opened first: the limit then leaves room for `spare`
  // connections on the server's side, and 40 - spare wait in the backlog.
  std::vector<ring::test::Fd> client_fds = connect_clients(*listener->local_address(), clients);
  Served served;
  int failures_in_shortage = 0;
  int accepted_in_shortage = 0;
  std::uint64_t arms_in_shortage = 0;
  {
    FdLimit limit(spare);
    ASSERT_TRUE(limit.ok());
    loop.run(when_all(accept_loop(*listener, served), [&]() -> Task<void> {
      co_await sleep_for(1500ms);
      failures_in_shortage = served.failures;
      accepted_in_shortage = served.accepted;
      arms_in_shortage = listener->accept_arms();
      // Connections close: fds are free again, and the loop closes each new one at once.
      served.held.clear();
      served.hold = false;
      co_await wait_for_accepted(served, clients, 5s);
      stop.request_stop();
    }()));
  }
  std::printf("out of fds for 1.5 s: %d failed accepts, %llu accept requests, %d served\n",
              failures_in_shortage, static_cast<unsigned long long>(arms_in_shortage),
              accepted_in_shortage);
  EXPECT_GE(accepted_in_shortage, 1);
  EXPECT_LT(accepted_in_shortage, clients);
  EXPECT_GE(failures_in_shortage, 1);
  EXPECT_LT(failures_in_shortage, 30) << "the accept loop spun";
  EXPECT_LT(arms_in_shortage, 40U) << "the listener re-armed without pausing";
  EXPECT_EQ(served.last_error, Errc::fd_limit) << served.last_error.message();
  EXPECT_EQ(served.last_error, std::errc::too_many_files_open);
  EXPECT_NE(served.last_error.message().find("RLIMIT_NOFILE"), std::string::npos);
  EXPECT_EQ(served.accepted, clients) << "serving did not resume once fds were free";
}

TEST(AcceptShortage, AFullDirectDescriptorTableIsNamedAndServingResumes) {
  constexpr int slots = 4;
  EventLoop loop;
  auto enabled = enable_direct_descriptors(loop, slots);
  ASSERT_TRUE(enabled) << enabled.error().message();
  std::stop_source stop;
  auto listener = TcpListener::bind(Address::ipv4_loopback(), {.direct = true}, stop.get_token());
  ASSERT_TRUE(listener);
  const Address address = *listener->local_address();
  // The kernel accepts a connection before it finds the table full, and closes it: the
  // clients beyond the slots are turned away, at the pace of the listener's pauses.
  std::vector<ring::test::Fd> first_clients = connect_clients(address, 3 * slots);
  std::vector<ring::test::Fd> later_clients;
  Served served;
  int failures_when_full = 0;
  loop.run(when_all(accept_loop(*listener, served), [&]() -> Task<void> {
    co_await sleep_for(1200ms);
    failures_when_full = served.failures;
    // The slots come free; new clients are served.
    served.held.clear();
    served.hold = false;
    later_clients = connect_clients(address, slots);
    co_await wait_for_accepted(served, 2 * slots, 3s);
    stop.request_stop();
  }()));
  std::printf("direct table full for 1.2 s: %d failed accepts, %d served in all\n",
              failures_when_full, served.accepted);
  EXPECT_GE(failures_when_full, 1);
  EXPECT_LE(failures_when_full, 2 * slots);
  EXPECT_EQ(served.last_error, Errc::direct_table_full) << served.last_error.message();
  EXPECT_NE(served.last_error.message().find("direct descriptor table"), std::string::npos)
      << served.last_error.message();
  EXPECT_EQ(served.accepted, 2 * slots) << "serving did not resume once slots were free";
}

// A loop destroyed while its listener pauses after a shortage drains the pause without
// re-arming the accept (the drain would wait for that request for ever), and the
// listener can be destroyed after the loop.
TEST(AcceptShortage, ALoopDestroyedDuringAPauseLeavesTheListenerSafeToDestroy) {
  std::stop_source stop;
  std::optional<Result<Listener>> listener;
  std::vector<ring::test::Fd> clients;
  {
    EventLoop loop;
    auto enabled = enable_direct_descriptors(loop, 1);
    ASSERT_TRUE(enabled) << enabled.error().message();
    listener.emplace(
        TcpListener::bind(Address::ipv4_loopback(), {.direct = true}, stop.get_token()));
    ASSERT_TRUE(*listener);
    clients = connect_clients(*(*listener)->local_address(), 6);
    // One connection takes the slot; the next five fail, the last four each followed by
    // a pause (1, 2, 4, 8 ms): the loop is destroyed during the last.
    const int failures = loop.run([&]() -> Task<int> {
      Result<TcpStream> held = co_await (*listener)->accept();
      if (!held) co_return -1;
      int failed = 0;
      while (failed < 5) {
        Result<TcpStream> conn = co_await (*listener)->accept();
        if (conn) co_return -2;
        ++failed;
      }
      co_return failed;
    }());
    EXPECT_EQ(failures, 5);
    EXPECT_EQ((*listener)->shortage_pauses(), 4U);
  }
  listener.reset();
}

// The shortage errors tell the limits apart as codes and match the kernel's errno as
// conditions.
TEST(AcceptShortage, ErrorsNameTheirLimit) {
  const std::error_code fd_limit = Errc::fd_limit;
  const std::error_code system = Errc::system_file_limit;
  const std::error_code direct = Errc::direct_table_full;
  EXPECT_EQ(fd_limit, std::errc::too_many_files_open);
  EXPECT_EQ(system, std::errc::too_many_files_open_in_system);
  EXPECT_EQ(direct, std::errc::too_many_files_open_in_system);
  EXPECT_NE(system, direct);
  EXPECT_NE(fd_limit.message().find("RLIMIT_NOFILE"), std::string::npos);
  EXPECT_NE(system.message().find("fs.file-max"), std::string::npos);
  EXPECT_NE(direct.message().find("enable_direct_descriptors"), std::string::npos);
}

}  // namespace
}  // namespace coring::net
