// The same io_uring semantics from both backends: each test runs on the kernel's ring and
// on the epoll emulation (ring/src/emulator.*), and expects what the kernel defines.
// Where the emulation cannot do what the kernel does, the test says so and checks what
// the emulation does instead (docs/features.md, "The epoll backend", lists these).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "coring/ring/buffer_ring.hpp"
#include "coring/ring/error.hpp"
#include "deny_io_uring.hpp"
#include "support.hpp"

namespace coring::ring::test {
namespace {

using namespace std::chrono_literals;

// How long a test waits for a completion that must come before calling it lost.
constexpr auto kPatience = 5s;

Ring make_ring(Backend backend, std::uint32_t entries = 8) {
  Params params{};
  auto ring = Ring::create(entries, params, backend);
  if (!ring) throw std::runtime_error("ring setup: " + ring.error().message());
  return std::move(*ring);
}

// Waits for one CQE (failing the test if none comes) and consumes it.
Cqe next_cqe(Ring& ring) {
  Cqe cqe{};
  cqe.user_data = ~std::uint64_t{0};
  cqe.res = -ETIMEDOUT;
  if (auto submitted = ring.submit(); !submitted) {
    ADD_FAILURE() << "submit: " << submitted.error().message();
    return cqe;
  }
  if (ring.cq_ready() == 0) {
    if (auto waited = ring.wait_cqes(1, kPatience); !waited) {
      ADD_FAILURE() << "no CQE came: " << waited.error().message();
      return cqe;
    }
  }
  auto copied = ring.copy_cqes(std::span(&cqe, 1), 0);
  EXPECT_TRUE(copied.ok() && *copied == 1);
  return cqe;
}

// True when no CQE is ready after the ring has had a moment to make progress.
bool nothing_ready(Ring& ring) {
  (void)ring.submit();
  (void)ring.wait_cqes(1, 50ms);
  return ring.cq_ready() == 0;
}

struct SocketPair {
  Fd a;
  Fd b;
};
SocketPair make_socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    throw std::runtime_error("socketpair failed");
  }
  return {Fd(fds[0]), Fd(fds[1])};
}

struct Pipe {
  Fd read_end;
  Fd write_end;
};
Pipe make_pipe(int flags = 0) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | flags) != 0) throw std::runtime_error("pipe2 failed");
  return {Fd(fds[0]), Fd(fds[1])};
}

// send(2) of `text`, all of it or -errno.
ssize_t send_text(int fd, const std::string& text) {
  const ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
  return n < 0 ? -errno : n;
}

std::string text_of(const std::vector<char>& buffer, std::int32_t res) {
  return res > 0 ? std::string(buffer.data(), static_cast<std::size_t>(res)) : std::string();
}

// Queues a receive of up to buffer.size() bytes from `fd`.
void queue_recv(Ring& ring, int fd, std::vector<char>& buffer, std::uint64_t user_data) {
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_recv(sqe, fd, std::as_writable_bytes(std::span(buffer)), 0);
  sqe.user_data = user_data;
}

// The next `count` CQEs, by user_data.
std::vector<Cqe> next_cqes_sorted(Ring& ring, std::size_t count) {
  std::vector<Cqe> cqes;
  for (std::size_t i = 0; i < count; ++i) cqes.push_back(next_cqe(ring));
  std::sort(cqes.begin(), cqes.end(),
            [](const Cqe& x, const Cqe& y) { return x.user_data < y.user_data; });
  return cqes;
}

// A socket pair whose `a` has a receive (user_data 1, into `buffer`) waiting on it.
SocketPair waiting_socket(Ring& ring, std::vector<char>& buffer) {
  SocketPair pair = make_socket_pair();
  queue_recv(ring, pair.a.get(), buffer, 1);
  EXPECT_TRUE(nothing_ready(ring));
  return pair;
}

class Backends : public testing::TestWithParam<Backend> {};

INSTANTIATE_TEST_SUITE_P(Ring, Backends, testing::Values(Backend::io_uring, Backend::epoll),
                         [](const testing::TestParamInfo<Backend>& param) {
                           return std::string(to_string(param.param));
                         });

// A close request for an fd a receive waits on: the receive keeps the file (the kernel's
// holds a reference) and gets what its peer sends later, while the fd number, free
// again, serves the next socket, whose own receive gets that socket's bytes.
TEST_P(Backends, ACloseRequestLeavesAWaitingReceiveItsFile) {
  Ring ring = make_ring(GetParam());
  std::vector<char> old_buffer(16);
  SocketPair first = waiting_socket(ring, old_buffer);
  const int number = first.a.get();

  Sqe& close = CORING_GET_SQE(ring);
  prep_close(close, first.a.release());
  close.user_data = 2;
  const Cqe closed = next_cqe(ring);
  EXPECT_EQ(closed.user_data, 2U);
  EXPECT_EQ(closed.res, 0);

  SocketPair second = make_socket_pair();
  ASSERT_EQ(second.a.get(), number) << "the lowest free fd is the one just closed";
  std::vector<char> new_buffer(16);
  queue_recv(ring, second.a.get(), new_buffer, 3);
  ASSERT_TRUE(nothing_ready(ring));

  ASSERT_EQ(send_text(second.b.get(), "new"), 3);
  const Cqe got_new = next_cqe(ring);
  EXPECT_EQ(got_new.user_data, 3U);
  EXPECT_EQ(text_of(new_buffer, got_new.res), "new");

  ASSERT_EQ(send_text(first.b.get(), "old"), 3);
  const Cqe got_old = next_cqe(ring);
  EXPECT_EQ(got_old.user_data, 1U);
  EXPECT_EQ(text_of(old_buffer, got_old.res), "old");
}

// The program closes an fd a receive waits on with close(2), outside the ring. The
// number's next socket must still be served. The kernel's receive keeps the old file
// and gets its peer's bytes; in the emulation nothing holds that file, so it is gone
// (its peer's send fails with EPIPE), and the receive fails with -EBADF once another
// file waits under the number.
TEST_P(Backends, AnFdClosedOutsideTheRingStillServesItsNextFile) {
  Ring ring = make_ring(GetParam());
  std::vector<char> old_buffer(16);
  SocketPair first = waiting_socket(ring, old_buffer);
  const int number = first.a.get();
  first.a.reset();

  SocketPair second = make_socket_pair();
  ASSERT_EQ(second.a.get(), number) << "the lowest free fd is the one just closed";
  std::vector<char> new_buffer(16);
  queue_recv(ring, second.a.get(), new_buffer, 3);
  (void)ring.submit();

  ASSERT_EQ(send_text(second.b.get(), "new"), 3);
  EXPECT_EQ(send_text(first.b.get(), "old"), GetParam() == Backend::io_uring ? 3 : -EPIPE);
  const std::vector<Cqe> cqes = next_cqes_sorted(ring, 2);
  EXPECT_EQ(cqes[1].user_data, 3U);
  EXPECT_EQ(text_of(new_buffer, cqes[1].res), "new");
  EXPECT_EQ(cqes[0].user_data, 1U);
  if (GetParam() == Backend::io_uring) {
    EXPECT_EQ(text_of(old_buffer, cqes[0].res), "old");
  } else {
    EXPECT_EQ(cqes[0].res, -EBADF);
  }
}

// Writes `text` through registered file `slot` of `ring`; the write's result.
std::int32_t write_fixed_file(Ring& ring, std::uint32_t slot, const std::string& text) {
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_write(sqe, static_cast<int>(slot), bytes_of(text), 0);
  sqe.flags |= sqe_flags::fixed_file;
  sqe.user_data = 0x77;
  const Cqe cqe = next_cqe(ring);
  EXPECT_EQ(cqe.user_data, 0x77U);
  return cqe.res;
}

std::string read_all(int fd) {
  char buffer[64];
  const ssize_t n = ::read(fd, buffer, sizeof(buffer));
  return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
}

// MSG_RING's send_fd: our registered file 0 goes to another ring's table, at a slot it
// names and at slots the target allocates; the target gets a CQE (unless CQE_SKIP) and
// the sender's request says what the install gave. The sender's CQE may come only once
// the target's loop has run, as the kernel's does when the target is another task's.
TEST_P(Backends, MsgRingSendsARegisteredFileToAnotherRing) {
  Ring sender = make_ring(GetParam());
  Ring receiver = make_ring(GetParam());
  auto [read_end, write_end] = make_pipe(O_NONBLOCK);
  const int source[] = {write_end.get()};
  ASSERT_TRUE(sender.register_files(source).ok());
  ASSERT_TRUE(receiver.register_files_sparse(4).ok());

  struct Case {
    std::uint32_t target;
    std::uint32_t flags;
    std::int32_t slot;  // where it lands
    std::int32_t res;   // the sender's result
  };
  // The table allocates from the slot after the last one set, then from the start.
  const Case cases[] = {
      {2, 0, 2, 0}, {file_index_alloc, 0, 3, 3}, {file_index_alloc, msg_ring::cqe_skip, 0, 0}};
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "target " << c.target << ", flags " << c.flags);
    Sqe& sqe = CORING_GET_SQE(sender);
    prep_msg_ring_fd(sqe, receiver.fd(), 0, c.target, 0xFD, c.flags);
    sqe.user_data = 1;
    ASSERT_TRUE(sender.submit().ok());
    if ((c.flags & msg_ring::cqe_skip) == 0) {
      const Cqe received = next_cqe(receiver);
      EXPECT_EQ(received.user_data, 0xFDU);
      EXPECT_EQ(received.res, c.target == file_index_alloc ? c.slot : 0);
    } else {
      EXPECT_TRUE(nothing_ready(receiver));
    }
    const Cqe sent = next_cqe(sender);
    EXPECT_EQ(sent.user_data, 1U);
    EXPECT_EQ(sent.res, c.res);
    EXPECT_EQ(write_fixed_file(receiver, static_cast<std::uint32_t>(c.slot), "ping"), 4);
    EXPECT_EQ(read_all(read_end.get()), "ping");
  }
  // The sender keeps its own.
  EXPECT_EQ(write_fixed_file(sender, 0, "pong"), 4);
  EXPECT_EQ(read_all(read_end.get()), "pong");
}

// What a send_fd cannot do, with the kernel's errors.
TEST_P(Backends, MsgRingSendFdRefusesWhatTheKernelRefuses) {
  Ring sender = make_ring(GetParam());
  Ring receiver = make_ring(GetParam());
  Ring no_table = make_ring(GetParam());
  auto [read_end, write_end] = make_pipe(O_NONBLOCK);
  const int source[] = {write_end.get(), -1};
  ASSERT_TRUE(sender.register_files(source).ok());
  ASSERT_TRUE(receiver.register_files_sparse(2).ok());

  auto send = [&](int ring_fd, int source_index, std::uint32_t target) {
    Sqe& sqe = CORING_GET_SQE(sender);
    prep_msg_ring_fd(sqe, ring_fd, source_index, target, 0xFD, 0);
    sqe.user_data = 9;
    EXPECT_TRUE(sender.submit().ok());
    if (ring_fd != sender.fd()) (void)receiver.submit_and_wait_timeout(0, 10ms);
    if (ring_fd == no_table.fd()) (void)no_table.submit_and_wait_timeout(0, 10ms);
    return next_cqe(sender).res;
  };
  EXPECT_EQ(send(receiver.fd(), 1, 0), -EBADF) << "an empty source slot";
  EXPECT_EQ(send(receiver.fd(), 5, 0), -EBADF) << "a source slot past the table";
  EXPECT_EQ(send(receiver.fd(), 0, 7), -EINVAL) << "a target slot past the table";
  EXPECT_EQ(send(no_table.fd(), 0, 0), -ENXIO) << "a target without a table";
  EXPECT_EQ(send(sender.fd(), 0, 1), -EINVAL) << "to the sender itself";
  EXPECT_EQ(send(read_end.get(), 0, 0), -EBADFD) << "not a ring";
  EXPECT_TRUE(nothing_ready(receiver));
}

// A target ring that goes away before its loop takes a sent file. The kernel installs
// the file at once for a target of the same task, so the send succeeded; the emulation
// installs it in the target's loop, which never ran, and the sender learns the target
// is gone (-EOWNERDEAD). Either way the file's copy is not leaked (main.cpp counts fds).
TEST_P(Backends, MsgRingSendFdToARingThatGoesAway) {
  Ring sender = make_ring(GetParam());
  auto [read_end, write_end] = make_pipe(O_NONBLOCK);
  const int source[] = {write_end.get()};
  ASSERT_TRUE(sender.register_files(source).ok());
  {
    Ring receiver = make_ring(GetParam());
    ASSERT_TRUE(receiver.register_files_sparse(2).ok());
    Sqe& sqe = CORING_GET_SQE(sender);
    prep_msg_ring_fd(sqe, receiver.fd(), 0, 1, 0xFD, 0);
    sqe.user_data = 1;
    ASSERT_TRUE(sender.submit().ok());
  }
  const Cqe sent = next_cqe(sender);
  EXPECT_EQ(sent.user_data, 1U);
  EXPECT_EQ(sent.res, GetParam() == Backend::io_uring ? 0 : -EOWNERDEAD);
}

// Two pipes for a splice that blocks: `from` stays empty (its write end open), so a
// splice from it to `to` waits in its call until data or an interruption comes.
struct BlockedSplice {
  Pipe from = make_pipe();
  Pipe to = make_pipe();
  void prep(Sqe& sqe) const {
    prep_splice(sqe, from.read_end.get(), ~std::uint64_t{0}, to.write_end.get(), ~std::uint64_t{0},
                64);
  }
};

// A cancel reaches an operation that blocks in its call on a worker: the call is
// interrupted, as the kernel's io-wq worker's is when its work is cancelled, and the
// cancel says the request was running (-EALREADY). The request's result: the kernel
// (6.18) lets the interrupted call's -ERESTARTSYS (-512) through, or -EINTR; the
// emulation says -ECANCELED, which the runtime reports as a cancellation.
TEST_P(Backends, CancelInterruptsAnOperationBlockedInItsCall) {
  Ring ring = make_ring(GetParam());
  BlockedSplice splice;
  Sqe& sqe = CORING_GET_SQE(ring);
  splice.prep(sqe);
  sqe.user_data = 1;
  ASSERT_TRUE(nothing_ready(ring));

  Sqe& cancel = CORING_GET_SQE(ring);
  prep_cancel(cancel, 1, 0);
  cancel.user_data = 2;
  const std::vector<Cqe> cqes = next_cqes_sorted(ring, 2);
  constexpr std::int32_t erestartsys = -512;
  EXPECT_EQ(cqes[0].user_data, 1U);
  if (GetParam() == Backend::io_uring) {
    EXPECT_TRUE(cqes[0].res == erestartsys || cqes[0].res == -EINTR) << cqes[0].res;
  } else {
    EXPECT_EQ(cqes[0].res, -ECANCELED);
  }
  EXPECT_EQ(cqes[1].user_data, 2U);
  EXPECT_EQ(cqes[1].res, -EALREADY);
}

// On the emulation a linked timeout bounds such an operation too: the timeout ends with
// -EALREADY (it found its request running) and the request with -ECANCELED. (The kernel, 6.18,
// posts neither CQE within 5 s for a splice blocked on its io-wq worker with a linked
// timeout, so this is the emulation's test alone.)
TEST(EpollBackend, LinkedTimeoutInterruptsAnOperationBlockedInItsCall) {
  Ring ring = make_ring(Backend::epoll);
  BlockedSplice splice;
  const KernelTimespec limit = to_kernel_timespec(100ms);
  Sqe& sqe = CORING_GET_SQE(ring);
  splice.prep(sqe);
  sqe.flags |= sqe_flags::io_link;
  sqe.user_data = 1;
  Sqe& timeout = CORING_GET_SQE(ring);
  prep_link_timeout(timeout, &limit, 0);
  timeout.user_data = 2;
  const std::vector<Cqe> cqes = next_cqes_sorted(ring, 2);
  EXPECT_EQ(cqes[0].user_data, 1U);
  EXPECT_EQ(cqes[0].res, -ECANCELED);
  EXPECT_EQ(cqes[1].user_data, 2U);
  EXPECT_EQ(cqes[1].res, -EALREADY);
}

// A ring torn down while an operation blocks in its call: the teardown interrupts it
// instead of waiting for data that never comes.
TEST_P(Backends, TeardownInterruptsAnOperationBlockedInItsCall) {
  BlockedSplice splice;
  const auto start = std::chrono::steady_clock::now();
  {
    Ring ring = make_ring(GetParam());
    Sqe& sqe = CORING_GET_SQE(ring);
    splice.prep(sqe);
    sqe.user_data = 1;
    ASSERT_TRUE(nothing_ready(ring));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, kPatience);
}

// Runs `body` in a forked child with its stderr in a file: the child's exit status (its
// return value, or -1 if it did not exit) and what it wrote there.
struct ChildRun {
  int status = -1;
  std::string stderr_text;
};
template <typename Body>
ChildRun run_in_child(Body body) {
  TempDir dir;
  const std::string path = dir.file("stderr");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ::dup2(fd, STDERR_FILENO) < 0) ::_exit(99);
    ::_exit(body());
  }
  int status = 0;
  ChildRun run;
  if (::waitpid(pid, &status, 0) == pid && WIFEXITED(status)) run.status = WEXITSTATUS(status);
  std::ifstream in(path);
  run.stderr_text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return run;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t count = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

// Where io_uring is blocked (a seccomp filter, EPERM), Backend::automatic makes every
// ring on the emulation and says so once per process, not once per ring; a ring asking
// for what the emulation cannot do (SQPOLL) fails with io_uring's error, the cause.
TEST(AutomaticBackend, FallsBackWithOneWarningPerProcess) {
  if (native_arch == 0) GTEST_SKIP() << "no seccomp filter written for this architecture";
  const ChildRun run = run_in_child([] {
    DenyIoUring deny(EPERM);
    if (install_filter(deny.program()) != 0) return 90;
    ::unsetenv("CORING_BACKEND");
    for (int i = 0; i < 3; ++i) {
      Params params{};
      auto ring = Ring::create(8, params, Backend::automatic);
      if (!ring) return 10 + i;
      if (ring->backend() != Backend::epoll) return 20 + i;
    }
    Params params{};
    params.flags = setup::sqpoll;
    auto polled = Ring::create(8, params, Backend::automatic);
    if (polled) return 30;
    if (polled.error() != setup_error(EPERM)) return 31;
    return 0;
  });
  if (run.status == 90) GTEST_SKIP() << "seccomp filters are unavailable here";
  EXPECT_EQ(run.status, 0) << run.stderr_text;
  EXPECT_EQ(count_of(run.stderr_text, "io_uring is unavailable"), 1U) << run.stderr_text;
}

// CORING_BACKEND set to what is not a backend: no ring is made, and the log names the
// value once (a loop tries several setup flags, each a create()).
TEST(AutomaticBackend, AnUnknownBackendIsNamedOnce) {
  const ChildRun run = run_in_child([] {
    ::setenv("CORING_BACKEND", "epol", 1);
    for (int i = 0; i < 3; ++i) {
      Params params{};
      auto ring = Ring::create(8, params, Backend::automatic);
      if (ring) return 1;
      if (ring.error() != make_error_code(Errc::backend_unknown)) return 2;
    }
    return 0;
  });
  EXPECT_EQ(run.status, 0) << run.stderr_text;
  EXPECT_EQ(count_of(run.stderr_text, "CORING_BACKEND=\"epol\""), 1U) << run.stderr_text;
}

// A UDP socket bound to 127.0.0.1 on a port the kernel picks, and its address.
struct UdpSocket {
  Fd fd;
  sockaddr_in address{};
  UdpSocket() : fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd.get() < 0 || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("UDP socket setup failed");
    }
  }
};

// A multishot recvmsg lays each datagram out in its provided buffer as the kernel does:
// a RecvmsgOut header, the room for the name and for control data the SQE's msghdr asks
// for, then the payload (cut to the buffer, with MSG_TRUNC in the header's flags); each
// CQE counts all of it and carries F_MORE until the request ends.
TEST_P(Backends, MultishotRecvmsgLaysOutEachDatagramAsTheKernelDoes) {
  Ring ring = make_ring(GetParam());
  constexpr std::uint16_t group = 3;
  constexpr std::size_t buffer_size = 256;
  constexpr std::uint16_t buffers = 8;
  std::vector<std::byte> memory(buffer_size * buffers);
  auto buffer_ring = BufferRing::create(ring, group, buffers);
  ASSERT_TRUE(buffer_ring.ok()) << buffer_ring.error().message();
  for (std::uint16_t i = 0; i < buffers; ++i) {
    buffer_ring->add(std::span(memory).subspan(i * buffer_size, buffer_size), i, i);
  }
  buffer_ring->advance(buffers);

  UdpSocket receiver;
  UdpSocket sender;
  msghdr asked{};
  asked.msg_namelen = sizeof(sockaddr_in);
  asked.msg_controllen = 32;  // room only: no control message is enabled
  const std::size_t header = sizeof(RecvmsgOut) + sizeof(sockaddr_in) + 32;
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_recvmsg_multishot(sqe, receiver.fd.get(), &asked, group, 0);
  sqe.user_data = 5;
  ASSERT_TRUE(nothing_ready(ring));

  const std::string messages[] = {"a", "bb", std::string(300, 'z')};
  for (const std::string& message : messages) {
    ASSERT_EQ(
        ::sendto(sender.fd.get(), message.data(), message.size(), 0,
                 reinterpret_cast<const sockaddr*>(&receiver.address), sizeof(receiver.address)),
        static_cast<ssize_t>(message.size()));
    const Cqe cqe = next_cqe(ring);
    SCOPED_TRACE(testing::Message() << "a datagram of " << message.size() << " bytes");
    ASSERT_EQ(cqe.user_data, 5U);
    ASSERT_NE(cqe.flags & cqe_flags::buffer, 0U);
    EXPECT_NE(cqe.flags & cqe_flags::more, 0U);
    const std::size_t room = buffer_size - header;
    const std::size_t kept = std::min(message.size(), room);
    EXPECT_EQ(cqe.res, static_cast<std::int32_t>(header + kept));
    const std::byte* base = memory.data() + std::size_t{cqe.buffer_id()} * buffer_size;
    RecvmsgOut out{};
    std::memcpy(&out, base, sizeof(out));
    EXPECT_EQ(out.namelen, sizeof(sockaddr_in));
    EXPECT_EQ(out.controllen, 0U);
    EXPECT_EQ(out.payloadlen, kept);
    EXPECT_EQ((out.flags & MSG_TRUNC) != 0, message.size() > room);
    sockaddr_in from{};
    std::memcpy(&from, base + sizeof(RecvmsgOut), sizeof(from));
    EXPECT_EQ(from.sin_port, sender.address.sin_port);
    EXPECT_EQ(from.sin_addr.s_addr, sender.address.sin_addr.s_addr);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(base + header), kept),
              message.substr(0, kept));
  }

  Sqe& cancel = CORING_GET_SQE(ring);
  prep_cancel(cancel, 5, 0);
  cancel.user_data = 6;
  const std::vector<Cqe> ends = next_cqes_sorted(ring, 2);
  EXPECT_EQ(ends[0].res, -ECANCELED);
  EXPECT_EQ(ends[0].flags & cqe_flags::more, 0U);
  EXPECT_EQ(ends[1].res, 0);
}

// What the kernel refuses of a multishot recvmsg: no provided buffers, MSG_WAITALL.
TEST_P(Backends, MultishotRecvmsgRefusesWhatTheKernelRefuses) {
  Ring ring = make_ring(GetParam());
  UdpSocket receiver;
  msghdr asked{};
  Sqe& plain = CORING_GET_SQE(ring);
  prep_recvmsg(plain, receiver.fd.get(), &asked, 0);
  plain.ioprio |= recvsend_flags::recv_multishot;
  plain.user_data = 1;
  EXPECT_EQ(next_cqe(ring).res, -EINVAL);
  Sqe& waitall = CORING_GET_SQE(ring);
  prep_recvmsg_multishot(waitall, receiver.fd.get(), &asked, 3, MSG_WAITALL);
  waitall.user_data = 2;
  EXPECT_EQ(next_cqe(ring).res, -EINVAL);
}

// A cancel by fd matches requests on that fd's file, not a path operation whose dirfd
// it is: an open of a FIFO (blocking on a worker, IOSQE_ASYNC for the kernel) relative
// to a directory fd is not found by a cancel of that fd.
TEST_P(Backends, CancelByFdPassesOverAPathOperationOnItsDirfd) {
  Ring ring = make_ring(GetParam());
  TempDir dir;
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0600), 0);
  Fd dirfd(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_GE(dirfd.get(), 0);
  Sqe& open = CORING_GET_SQE(ring);
  prep_openat(open, dirfd.get(), "fifo", O_RDONLY | O_CLOEXEC, 0);
  open.flags |= sqe_flags::async;
  open.user_data = 1;
  ASSERT_TRUE(nothing_ready(ring));

  Sqe& cancel = CORING_GET_SQE(ring);
  prep_cancel_fd(cancel, dirfd.get(), 0);
  cancel.user_data = 2;
  const Cqe cancelled = next_cqe(ring);
  EXPECT_EQ(cancelled.user_data, 2U);
  EXPECT_EQ(cancelled.res, -ENOENT);

  // A writer lets the open end; its fd is closed here.
  Fd writer(::open(dir.file("fifo").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_GE(writer.get(), 0);
  const Cqe opened = next_cqe(ring);
  EXPECT_EQ(opened.user_data, 1U);
  ASSERT_GE(opened.res, 0);
  ::close(opened.res);
}

// A receive with the caller's MSG_DONTWAIT completes with -EAGAIN when nothing waits,
// rather than waiting; with data there (MSG_PEEK too), it takes or shows it.
TEST_P(Backends, AReceiveWithMsgDontwaitDoesNotWait) {
  Ring ring = make_ring(GetParam());
  SocketPair pair = make_socket_pair();
  std::vector<char> buffer(16);
  Sqe& empty = CORING_GET_SQE(ring);
  prep_recv(empty, pair.a.get(), std::as_writable_bytes(std::span(buffer)),
            MSG_DONTWAIT | MSG_PEEK);
  empty.user_data = 1;
  EXPECT_EQ(next_cqe(ring).res, -EAGAIN);
  ASSERT_EQ(send_text(pair.b.get(), "peeked"), 6);
  Sqe& peek = CORING_GET_SQE(ring);
  prep_recv(peek, pair.a.get(), std::as_writable_bytes(std::span(buffer)), MSG_DONTWAIT | MSG_PEEK);
  peek.user_data = 2;
  const Cqe shown = next_cqe(ring);
  EXPECT_EQ(text_of(buffer, shown.res), "peeked");
  Sqe& take = CORING_GET_SQE(ring);
  prep_recv(take, pair.a.get(), std::as_writable_bytes(std::span(buffer)), MSG_DONTWAIT);
  take.user_data = 3;
  EXPECT_EQ(text_of(buffer, next_cqe(ring).res), "peeked");
}

// The kernel's socket command reads options of level SOL_SOCKET only (io_uring's
// getsockopt refuses every other level with EOPNOTSUPP) and sets them at any level; the
// emulation answers the same, so a program sees one behaviour on both backends.
TEST_P(Backends, SocketCommandGetsOnlySocketLevelOptions) {
  Ring ring = make_ring(GetParam());
  TcpPair pair = make_tcp_pair();
  int value = 0;
  Sqe& tcp_level = CORING_GET_SQE(ring);
  prep_cmd_sock(tcp_level, SocketOp::getsockopt, pair.client.get(), IPPROTO_TCP, TCP_NODELAY,
                &value, sizeof value);
  tcp_level.user_data = 1;
  const Cqe refused = next_cqe(ring);
  EXPECT_EQ(refused.res, -EOPNOTSUPP);

  Sqe& set_tcp = CORING_GET_SQE(ring);
  const int one = 1;
  prep_setsockopt(set_tcp, pair.client.get(), IPPROTO_TCP, TCP_NODELAY,
                  std::as_bytes(std::span(&one, 1)));
  set_tcp.user_data = 2;
  EXPECT_EQ(next_cqe(ring).res, 0);

  int type = 0;
  Sqe& socket_level = CORING_GET_SQE(ring);
  prep_cmd_sock(socket_level, SocketOp::getsockopt, pair.client.get(), SOL_SOCKET, SO_TYPE, &type,
                sizeof type);
  socket_level.user_data = 3;
  EXPECT_EQ(next_cqe(ring).res, static_cast<std::int32_t>(sizeof type));
  EXPECT_EQ(type, SOCK_STREAM);
}

}  // namespace
}  // namespace coring::ring::test
