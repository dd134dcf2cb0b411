// Ports of the last twenty tests of Zig's reference ring (shared/reference/IoUring.zig,
// from "renameat" to "bind/listen/connect") to coring's Ring, prep helpers and
// BufferGroup. Each test keeps the reference's checks on res, user_data, flags,
// buffer ids, data and error codes; where the reference leaks an fd (accepted
// sockets, the harness's server end) or leaves a multishot request armed, the port
// closes or cancels it, because main.cpp fails any test that changes the fd count.
// Every fd is opened close-on-exec, except direct descriptors: they live in the
// ring's file table rather than the process's, and the kernel rejects SOCK_CLOEXEC
// and O_CLOEXEC for them with EINVAL.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "coring/ring/buffer_ring.hpp"
#include "support.hpp"

namespace coring::ring::test {
namespace {

// Checks every field of a CQE at once, reporting the caller's line on failure.
testing::AssertionResult cqe_is(const Cqe& cqe, std::uint64_t user_data, std::int32_t res,
                                std::uint32_t flags) {
  if (cqe.user_data == user_data && cqe.res == res && cqe.flags == flags) {
    return testing::AssertionSuccess();
  }
  return testing::AssertionFailure()
         << std::hex << "cqe {user_data=0x" << cqe.user_data << std::dec << ", res=" << cqe.res
         << std::hex << ", flags=0x" << cqe.flags << "}, expected {user_data=0x" << user_data
         << std::dec << ", res=" << res << std::hex << ", flags=0x" << flags << "}";
}

std::string text(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// The bytes 0, 1, 2, ... n-1: payloads whose every position is distinct.
template <std::size_t N>
std::array<std::byte, N> counting_bytes() {
  std::array<std::byte, N> bytes{};
  for (std::size_t i = 0; i < N; ++i) bytes[i] = static_cast<std::byte>(i);
  return bytes;
}

Fd open_directory(const TempDir& dir) {
  Fd fd(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) throw std::system_error(errno, std::generic_category(), "open " + dir.path());
  return fd;
}

void write_file(const std::string& path, const std::string& contents) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
  ASSERT_GE(fd.get(), 0) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::write(fd.get(), contents.data(), contents.size()),
            static_cast<ssize_t>(contents.size()));
}

// The file's contents (at most 16 bytes, as the reference reads them), or a note why not.
std::string read_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return "<open failed: " + std::string(std::strerror(errno)) + ">";
  std::array<char, 16> buffer{};
  const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
  if (n < 0) return "<read failed: " + std::string(std::strerror(errno)) + ">";
  return {buffer.data(), static_cast<std::size_t>(n)};
}

// errno of opening `path`, 0 if it opened.
int open_errno(const std::string& path, int flags) {
  Fd fd(::open(path.c_str(), flags | O_CLOEXEC));
  return fd.get() < 0 ? errno : 0;
}

// A blocking client connected to `listener`. The handshake completes from the listen
// queue, so this returns before anyone accepts.
Fd connect_client(const Listener& listener) {
  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (client.get() < 0) throw std::system_error(errno, std::generic_category(), "socket");
  if (::connect(client.get(), reinterpret_cast<const sockaddr*>(&listener.address),
                sizeof(listener.address)) != 0) {
    throw std::system_error(errno, std::generic_category(), "connect");
  }
  return client;
}

// A TCP connection made through the ring: the reference's createSocketTestHarness.
struct RingConnection {
  Fd listener;
  Fd server;  // accepted through the ring
  Fd client;  // connected through the ring
};

constexpr std::uint64_t harness_accept_user_data = 0xaaaaaaaa;
constexpr std::uint64_t harness_connect_user_data = 0xcccccccc;

void connect_through_ring(Ring& ring, RingConnection& out) {
  Listener listener = make_listener();
  sockaddr_storage peer{};
  socklen_t peer_len = sizeof(peer);
  Sqe& accept_sqe = CORING_GET_SQE(ring);
  prep_accept(accept_sqe, listener.fd.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len,
              SOCK_CLOEXEC);
  accept_sqe.user_data = harness_accept_user_data;

  out.client.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_GE(out.client.get(), 0) << std::strerror(errno);
  Sqe& connect_sqe = CORING_GET_SQE(ring);
  prep_connect(connect_sqe, out.client.get(), reinterpret_cast<const sockaddr*>(&listener.address),
               sizeof(listener.address));
  connect_sqe.user_data = harness_connect_user_data;
  ASSERT_EQ(ring.submit().value(), 2U);

  Cqe accepted = ring.copy_cqe().value();
  Cqe connected = ring.copy_cqe().value();
  // The connect may complete before the accept.
  if (accepted.user_data == harness_connect_user_data) std::swap(accepted, connected);
  if (accepted.res > 0) out.server.reset(accepted.res);
  EXPECT_EQ(accepted.user_data, harness_accept_user_data);
  ASSERT_GT(accepted.res, 0) << std::strerror(accepted.error());
  EXPECT_EQ(accepted.flags, 0U);
  EXPECT_TRUE(cqe_is(connected, harness_connect_user_data, 0, 0));
  out.listener = std::move(listener.fd);
}

// ---------------------------------------------------------------------------------------
// Path operations

TEST(RingReferenceB, RenameatMovesFileContents) {
  Ring ring(1);
  TempDir tmp;
  const Fd dir = open_directory(tmp);
  ASSERT_NO_FATAL_FAILURE(write_file(tmp.file("renameat_old"), "hello"));

  Sqe& sqe = CORING_GET_SQE(ring);
  prep_renameat(sqe, dir.get(), "renameat_old", dir.get(), "renameat_new", 0);
  sqe.user_data = 0x12121212;
  EXPECT_EQ(sqe.opcode, static_cast<std::uint8_t>(Op::renameat));
  EXPECT_EQ(sqe.fd, dir.get());
  EXPECT_EQ(static_cast<int>(sqe.len), dir.get());  // the new directory fd travels in len
  ASSERT_EQ(ring.submit().value(), 1U);

  const Cqe cqe = ring.copy_cqe().value();
  EXPECT_TRUE(cqe_is(cqe, 0x12121212, 0, 0));
  EXPECT_EQ(open_errno(tmp.file("renameat_old"), O_RDONLY), ENOENT);
  EXPECT_EQ(read_file(tmp.file("renameat_new")), "hello");
}

TEST(RingReferenceB, UnlinkatRemovesFile) {
  Ring ring(1);
  TempDir tmp;
  const Fd dir = open_directory(tmp);
  ASSERT_NO_FATAL_FAILURE(write_file(tmp.file("unlinkat"), ""));

  Sqe& sqe = CORING_GET_SQE(ring);
  prep_unlinkat(sqe, dir.get(), "unlinkat", 0);
  sqe.user_data = 0x12121212;
  EXPECT_EQ(sqe.opcode, static_cast<std::uint8_t>(Op::unlinkat));
  EXPECT_EQ(sqe.fd, dir.get());
  ASSERT_EQ(ring.submit().value(), 1U);

  const Cqe cqe = ring.copy_cqe().value();
  EXPECT_TRUE(cqe_is(cqe, 0x12121212, 0, 0));
  EXPECT_EQ(open_errno(tmp.file("unlinkat"), O_RDONLY), ENOENT);
}

TEST(RingReferenceB, MkdiratCreatesDirectory) {
  Ring ring(1);
  TempDir tmp;
  const Fd dir = open_directory(tmp);

  Sqe& sqe = CORING_GET_SQE(ring);
  prep_mkdirat(sqe, dir.get(), "mkdirat", 0755);
  sqe.user_data = 0x12121212;
  EXPECT_EQ(sqe.opcode, static_cast<std::uint8_t>(Op::mkdirat));
  EXPECT_EQ(sqe.fd, dir.get());
  ASSERT_EQ(ring.submit().value(), 1U);

  const Cqe cqe = ring.copy_cqe().value();
  EXPECT_TRUE(cqe_is(cqe, 0x12121212, 0, 0));
  EXPECT_EQ(open_errno(tmp.file("mkdirat"), O_RDONLY | O_DIRECTORY), 0);
}

TEST(RingReferenceB, SymlinkatCreatesLinkThatOpensTarget) {
  Ring ring(1);
  TempDir tmp;
  const Fd dir = open_directory(tmp);
  ASSERT_NO_FATAL_FAILURE(write_file(tmp.file("symlinkat"), ""));

  Sqe& sqe = CORING_GET_SQE(ring);
  prep_symlinkat(sqe, "symlinkat", dir.get(), "symlinkat_link");
  sqe.user_data = 0x12121212;
  EXPECT_EQ(sqe.opcode, static_cast<std::uint8_t>(Op::symlinkat));
  EXPECT_EQ(sqe.fd, dir.get());
  ASSERT_EQ(ring.submit().value(), 1U);

  const Cqe cqe = ring.copy_cqe().value();
  EXPECT_TRUE(cqe_is(cqe, 0x12121212, 0, 0));
  EXPECT_EQ(open_errno(tmp.file("symlinkat_link"), O_RDONLY), 0);
}

TEST(RingReferenceB, LinkatCreatesHardLinkWithSameContents) {
  Ring ring(1);
  TempDir tmp;
  const Fd dir = open_directory(tmp);
  ASSERT_NO_FATAL_FAILURE(write_file(tmp.file("linkat_first"), "hello"));

  Sqe& sqe = CORING_GET_SQE(ring);
  prep_linkat(sqe, dir.get(), "linkat_first", dir.get(), "linkat_second", 0);
  sqe.user_data = 0x12121212;
  EXPECT_EQ(sqe.opcode, static_cast<std::uint8_t>(Op::linkat));
  EXPECT_EQ(sqe.fd, dir.get());
  EXPECT_EQ(static_cast<int>(sqe.len), dir.get());
  ASSERT_EQ(ring.submit().value(), 1U);

  const Cqe cqe = ring.copy_cqe().value();
  EXPECT_TRUE(cqe_is(cqe, 0x12121212, 0, 0));
  EXPECT_EQ(read_file(tmp.file("linkat_second")), "hello");
}

// ---------------------------------------------------------------------------------------
// Legacy provided buffers (IORING_OP_PROVIDE_BUFFERS)

constexpr std::uint16_t legacy_group_id = 1337;
constexpr std::uint32_t legacy_buffer_len = 128;
using LegacyBuffers = std::array<std::array<std::byte, legacy_buffer_len>, 4>;

void fill(LegacyBuffers& buffers, std::byte value) {
  for (auto& buffer : buffers) buffer.fill(value);
}

// Provides `count` buffers starting at `first` (ids first_id...) and expects success.
void provide(Ring& ring, std::byte* first, std::uint32_t count, std::uint32_t first_id,
             std::uint64_t user_data) {
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_provide_buffers(sqe, first, legacy_buffer_len, count, legacy_group_id, first_id);
  sqe.user_data = user_data;
  EXPECT_EQ(sqe.opcode, static_cast<std::uint8_t>(Op::provide_buffers));
  EXPECT_EQ(sqe.fd, static_cast<int>(count));
  EXPECT_EQ(sqe.len, legacy_buffer_len);
  EXPECT_EQ(sqe.buf_index, legacy_group_id);
  ASSERT_EQ(ring.submit().value(), 1U);
  const Cqe cqe = ring.copy_cqe().value();
  EXPECT_TRUE(cqe_is(cqe, user_data, 0, 0));
}

// Queues a read of /dev/zero into a buffer of the legacy group and checks the SQE.
void queue_selected_read(Ring& ring, int fd, std::uint64_t user_data) {
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_read_buffer_select(sqe, fd, legacy_group_id, legacy_buffer_len, 0);
  sqe.user_data = user_data;
  EXPECT_EQ(sqe.opcode, static_cast<std::uint8_t>(Op::read));
  EXPECT_EQ(sqe.fd, fd);
  EXPECT_EQ(sqe.addr, 0U);
  EXPECT_EQ(sqe.len, legacy_buffer_len);
  EXPECT_EQ(sqe.buf_index, legacy_group_id);
  ASSERT_EQ(ring.submit().value(), 1U);
}

// Queues a recv into a buffer of the legacy group and checks the SQE.
void queue_selected_recv(Ring& ring, int fd, std::uint64_t user_data) {
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_recv_buffer_select(sqe, fd, legacy_group_id, legacy_buffer_len, 0);
  sqe.user_data = user_data;
  EXPECT_EQ(sqe.opcode, static_cast<std::uint8_t>(Op::recv));
  EXPECT_EQ(sqe.fd, fd);
  EXPECT_EQ(sqe.addr, 0U);
  EXPECT_EQ(sqe.len, legacy_buffer_len);
  EXPECT_EQ(sqe.buf_index, legacy_group_id);
  EXPECT_EQ(sqe.op_flags, 0U);
  EXPECT_EQ(sqe.flags, sqe_flags::buffer_select);
  ASSERT_EQ(ring.submit().value(), 1U);
}

// Expects a full-length completion in one of the buffers, holding `expected` bytes only;
// returns the buffer id through `id`.
void expect_filled_buffer(const Cqe& cqe, std::uint64_t user_data, const LegacyBuffers& buffers,
                          std::byte expected, std::uint16_t& id) {
  ASSERT_EQ(cqe.error(), 0) << std::strerror(cqe.error());
  ASSERT_TRUE(cqe.has_buffer());
  id = cqe.buffer_id();
  ASSERT_LT(id, buffers.size());
  EXPECT_EQ(cqe.res, static_cast<std::int32_t>(legacy_buffer_len));
  EXPECT_EQ(cqe.user_data, user_data);
  std::array<std::byte, legacy_buffer_len> want{};
  want.fill(expected);
  EXPECT_EQ(text(buffers[id]), text(want));
}

TEST(RingReferenceB, ProvideBuffersFeedReadsUntilEnobufsThenReprovidedBufferIsUsed) {
  Ring ring(1);
  const Fd zero(::open("/dev/zero", O_RDONLY | O_CLOEXEC));
  ASSERT_GE(zero.get(), 0) << std::strerror(errno);
  LegacyBuffers buffers{};
  // Anything but zeros, so the reads below visibly overwrite it.
  fill(buffers, std::byte{0xa5});
  ASSERT_NO_FATAL_FAILURE(provide(ring, buffers[0].data(), 4, 0, 0xcccccccc));

  for (std::size_t i = 0; i < buffers.size(); ++i) {
    ASSERT_NO_FATAL_FAILURE(queue_selected_read(ring, zero.get(), 0xdededede));
    std::uint16_t id = 0;
    ASSERT_NO_FATAL_FAILURE(
        expect_filled_buffer(ring.copy_cqe().value(), 0xdededede, buffers, std::byte{0}, id));
  }

  // All four buffers are taken: the group is empty.
  ASSERT_NO_FATAL_FAILURE(queue_selected_read(ring, zero.get(), 0xdfdfdfdf));
  const Cqe empty = ring.copy_cqe().value();
  EXPECT_EQ(empty.error(), ENOBUFS);
  EXPECT_EQ(empty.user_data, 0xdfdfdfdfU);

  fill(buffers, std::byte{42});
  constexpr std::uint16_t reprovided_id = 2;
  ASSERT_NO_FATAL_FAILURE(
      provide(ring, buffers[reprovided_id].data(), 1, reprovided_id, 0xabababab));

  ASSERT_NO_FATAL_FAILURE(queue_selected_read(ring, zero.get(), 0xdfdfdfdf));
  std::uint16_t id = 0;
  ASSERT_NO_FATAL_FAILURE(
      expect_filled_buffer(ring.copy_cqe().value(), 0xdfdfdfdf, buffers, std::byte{0}, id));
  EXPECT_EQ(id, reprovided_id);
}

TEST(RingReferenceB, RemoveBuffersLeavesOnlyTheRestOfTheGroup) {
  Ring ring(1);
  const Fd zero(::open("/dev/zero", O_RDONLY | O_CLOEXEC));
  ASSERT_GE(zero.get(), 0) << std::strerror(errno);
  LegacyBuffers buffers{};
  fill(buffers, std::byte{0xa5});
  ASSERT_NO_FATAL_FAILURE(provide(ring, buffers[0].data(), 4, 0, 0xcccccccc));

  Sqe& remove = CORING_GET_SQE(ring);
  prep_remove_buffers(remove, 3, legacy_group_id);
  remove.user_data = 0xbababababa;
  EXPECT_EQ(remove.opcode, static_cast<std::uint8_t>(Op::remove_buffers));
  EXPECT_EQ(remove.fd, 3);
  EXPECT_EQ(remove.addr, 0U);
  EXPECT_EQ(remove.buf_index, legacy_group_id);
  ASSERT_EQ(ring.submit().value(), 1U);
  const Cqe removed = ring.copy_cqe().value();
  EXPECT_EQ(removed.user_data, 0xbababababaU);
  EXPECT_EQ(removed.res, 3);  // the number of buffers removed

  // One buffer is left for one read.
  ASSERT_NO_FATAL_FAILURE(queue_selected_read(ring, zero.get(), 0xdfdfdfdf));
  std::uint16_t id = 0;
  ASSERT_NO_FATAL_FAILURE(
      expect_filled_buffer(ring.copy_cqe().value(), 0xdfdfdfdf, buffers, std::byte{0}, id));

  ASSERT_NO_FATAL_FAILURE(queue_selected_read(ring, zero.get(), 0xdfdfdfdf));
  const Cqe empty = ring.copy_cqe().value();
  EXPECT_EQ(empty.error(), ENOBUFS);
  EXPECT_EQ(empty.user_data, 0xdfdfdfdfU);
}

TEST(RingReferenceB, ProvideBuffersFeedRecvUntilEnobufsThenReprovidedBufferIsUsed) {
  Ring ring(16);
  LegacyBuffers buffers{};
  ASSERT_NO_FATAL_FAILURE(provide(ring, buffers[0].data(), 4, 0, 0xcccccccc));
  RingConnection conn;
  ASSERT_NO_FATAL_FAILURE(connect_through_ring(ring, conn));

  std::array<std::byte, legacy_buffer_len> z_bytes{};
  z_bytes.fill(std::byte{'z'});
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    Sqe& send = CORING_GET_SQE(ring);
    prep_send(send, conn.server.get(), z_bytes, 0);
    send.user_data = 0xdeaddead;
    ASSERT_EQ(ring.submit().value(), 1U);
  }
  std::array<Cqe, 4> sent{};
  EXPECT_EQ(ring.copy_cqes(sent, 4).value(), 4U);

  fill(buffers, std::byte{1});
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    ASSERT_NO_FATAL_FAILURE(queue_selected_recv(ring, conn.client.get(), 0xdededede));
    std::uint16_t id = 0;
    ASSERT_NO_FATAL_FAILURE(
        expect_filled_buffer(ring.copy_cqe().value(), 0xdededede, buffers, std::byte{'z'}, id));
  }

  ASSERT_NO_FATAL_FAILURE(queue_selected_recv(ring, conn.client.get(), 0xdfdfdfdf));
  const Cqe empty = ring.copy_cqe().value();
  EXPECT_EQ(empty.error(), ENOBUFS);
  EXPECT_EQ(empty.user_data, 0xdfdfdfdfU);

  constexpr std::uint16_t reprovided_id = 2;
  ASSERT_NO_FATAL_FAILURE(
      provide(ring, buffers[reprovided_id].data(), 1, reprovided_id, 0xabababab));

  std::array<std::byte, legacy_buffer_len> w_bytes{};
  w_bytes.fill(std::byte{'w'});
  Sqe& send = CORING_GET_SQE(ring);
  prep_send(send, conn.server.get(), w_bytes, 0);
  send.user_data = 0xdeaddead;
  ASSERT_EQ(ring.submit().value(), 1U);
  EXPECT_TRUE(
      cqe_is(ring.copy_cqe().value(), 0xdeaddead, static_cast<std::int32_t>(w_bytes.size()), 0));

  fill(buffers, std::byte{1});
  ASSERT_NO_FATAL_FAILURE(queue_selected_recv(ring, conn.client.get(), 0xdfdfdfdf));
  std::uint16_t id = 0;
  ASSERT_NO_FATAL_FAILURE(
      expect_filled_buffer(ring.copy_cqe().value(), 0xdfdfdfdf, buffers, std::byte{'w'}, id));
  EXPECT_EQ(id, reprovided_id);
}

// ---------------------------------------------------------------------------------------
// Accept, connect, zero-copy send

TEST(RingReferenceB, MultishotAcceptPostsOneCqePerConnection) {
  Ring ring(16);
  Listener listener = make_listener();
  sockaddr_storage peer{};
  socklen_t peer_len = sizeof(peer);
  constexpr std::uint64_t accept_user_data = 0xaaaaaaaa;
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_multishot_accept(sqe, listener.fd.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len,
                        SOCK_CLOEXEC);
  sqe.user_data = accept_user_data;
  ASSERT_EQ(ring.submit().value(), 1U);

  for (int i = 0; i < 4; ++i) {
    const Fd client = connect_client(listener);
    const Cqe cqe = ring.copy_cqe().value();
    const Fd accepted(cqe.res > 0 ? cqe.res : -1);
    EXPECT_GT(cqe.res, 0) << std::strerror(cqe.error());
    EXPECT_EQ(cqe.user_data, accept_user_data);
    EXPECT_TRUE(cqe.has_more());
  }

  // The request stays armed; cancel it and reap its last CQE while `peer` is alive.
  Sqe& cancel = CORING_GET_SQE(ring);
  prep_cancel(cancel, accept_user_data, 0);
  cancel.user_data = 0xcccccccc;
  ASSERT_EQ(ring.submit().value(), 1U);
  Cqe first = ring.copy_cqe().value();
  Cqe second = ring.copy_cqe().value();
  if (first.user_data == accept_user_data) std::swap(first, second);
  EXPECT_TRUE(cqe_is(first, 0xcccccccc, 0, 0));
  EXPECT_TRUE(cqe_is(second, accept_user_data, -ECANCELED, 0));
}

TEST(RingReferenceB, SendZcPostsResultThenNotificationAndLinkedRecvGetsData) {
  Ring ring(16);
  CORING_REQUIRE_OP(ring, Op::send_zc);
  RingConnection conn;
  ASSERT_NO_FATAL_FAILURE(connect_through_ring(ring, conn));

  const auto sent = counting_bytes<15>();
  std::array<std::byte, 10> received{};
  Sqe& send = CORING_GET_SQE(ring);
  prep_send_zc(send, conn.client.get(), sent, 0, 0);
  send.user_data = 0xeeeeeeee;
  link_next(send);
  Sqe& recv = CORING_GET_SQE(ring);
  prep_recv(recv, conn.server.get(), received, 0);
  recv.user_data = 0xffffffff;
  ASSERT_EQ(ring.submit().value(), 2U);

  // The send's result comes first (the recv is linked behind it) and promises a second
  // CQE: `sent` must stay untouched until that notification.
  EXPECT_TRUE(cqe_is(ring.copy_cqe().value(), 0xeeeeeeee, static_cast<std::int32_t>(sent.size()),
                     cqe_flags::more));

  Cqe notification = ring.copy_cqe().value();
  Cqe received_cqe = ring.copy_cqe().value();
  if (notification.user_data != 0xeeeeeeee) std::swap(notification, received_cqe);
  EXPECT_TRUE(cqe_is(received_cqe, 0xffffffff, static_cast<std::int32_t>(received.size()),
                     received_cqe.flags & cqe_flags::sock_nonempty));
  EXPECT_EQ(text(received), text(std::span(sent).first(received.size())));
  EXPECT_TRUE(cqe_is(notification, 0xeeeeeeee, 0, cqe_flags::notif));
}

TEST(RingReferenceB, AcceptDirectFillsFreeSlotsThenFailsWithEnfile) {
  Ring ring(1);
  const std::array<int, 2> empty_slots{-1, -1};
  ASSERT_TRUE(ring.register_files(empty_slots).ok());
  Listener listener = make_listener();
  constexpr std::uint64_t accept_user_data = 0xaaaaaaaa;
  constexpr std::uint64_t recv_user_data = 0xbbbbbbbb;
  const auto data = counting_bytes<15>();

  for (int round = 0; round < 2; ++round) {
    for (std::size_t i = 0; i < empty_slots.size(); ++i) {
      std::array<std::byte, 16> received{};
      const auto to_send = std::span(data).first(data.size() - i);  // differs per pass

      // No SOCK_CLOEXEC: the kernel refuses it for a direct descriptor (see the top).
      Sqe& accept = CORING_GET_SQE(ring);
      prep_accept_direct(accept, listener.fd.get(), nullptr, nullptr, 0, file_index_alloc);
      accept.user_data = accept_user_data;
      ASSERT_EQ(ring.submit().value(), 1U);
      const Fd client = connect_client(listener);

      const Cqe accepted = ring.copy_cqe().value();
      ASSERT_EQ(accepted.error(), 0) << std::strerror(accepted.error());
      EXPECT_LT(accepted.res, static_cast<std::int32_t>(empty_slots.size()));
      EXPECT_EQ(accepted.user_data, accept_user_data);

      ASSERT_EQ(::send(client.get(), to_send.data(), to_send.size(), 0),
                static_cast<ssize_t>(to_send.size()));
      // The recv names the socket by its slot in the registered table.
      Sqe& recv = CORING_GET_SQE(ring);
      prep_recv(recv, accepted.res, received, 0);
      use_fixed_file(recv);
      recv.user_data = recv_user_data;
      ASSERT_EQ(ring.submit().value(), 1U);
      const Cqe got = ring.copy_cqe().value();
      EXPECT_EQ(got.user_data, recv_user_data);
      ASSERT_EQ(got.res, static_cast<std::int32_t>(to_send.size()));
      EXPECT_EQ(text(std::span(received).first(to_send.size())), text(to_send));
    }

    // Every slot is taken: the next accept fails.
    Sqe& accept = CORING_GET_SQE(ring);
    prep_accept_direct(accept, listener.fd.get(), nullptr, nullptr, 0, file_index_alloc);
    accept.user_data = accept_user_data;
    ASSERT_EQ(ring.submit().value(), 1U);
    const Fd client = connect_client(listener);
    const Cqe full = ring.copy_cqe().value();
    EXPECT_EQ(full.user_data, accept_user_data);
    EXPECT_EQ(full.error(), ENFILE);

    // Emptying the slots closes the accepted sockets.
    ASSERT_TRUE(ring.register_files_update(0, empty_slots).ok());
  }
  ASSERT_TRUE(ring.unregister_files().ok());
}

TEST(RingReferenceB, MultishotAcceptDirectEndsWithEnfileWhenTableIsFull) {
  Ring ring(1);
  const std::array<int, 2> empty_slots{-1, -1};
  ASSERT_TRUE(ring.register_files(empty_slots).ok());
  Listener listener = make_listener();
  constexpr std::uint64_t accept_user_data = 0xaaaaaaaa;

  for (int round = 0; round < 2; ++round) {
    Sqe& sqe = CORING_GET_SQE(ring);
    prep_multishot_accept_direct(sqe, listener.fd.get(), nullptr, nullptr, 0);
    sqe.user_data = accept_user_data;
    ASSERT_EQ(ring.submit().value(), 1U);

    for (std::size_t i = 0; i < empty_slots.size(); ++i) {
      const Fd client = connect_client(listener);
      const Cqe accepted = ring.copy_cqe().value();
      EXPECT_GE(accepted.res, 0) << std::strerror(accepted.error());
      EXPECT_LT(accepted.res, static_cast<std::int32_t>(empty_slots.size()));
      EXPECT_EQ(accepted.user_data, accept_user_data);
      EXPECT_TRUE(accepted.has_more());
    }

    // No slot left: the request fails and ends (no more CQEs promised).
    const Fd client = connect_client(listener);
    const Cqe full = ring.copy_cqe().value();
    EXPECT_EQ(full.user_data, accept_user_data);
    EXPECT_EQ(full.error(), ENFILE);
    EXPECT_FALSE(full.has_more());

    ASSERT_TRUE(ring.register_files_update(0, empty_slots).ok());
  }
  ASSERT_TRUE(ring.unregister_files().ok());
}

// ---------------------------------------------------------------------------------------
// socket, direct descriptors

TEST(RingReferenceB, SocketCreatesCloseOnExecStreamSocket) {
  Ring ring(1);
  CORING_REQUIRE_OP(ring, Op::socket);
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_socket(sqe, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, 0);
  sqe.user_data = 0;
  ASSERT_EQ(ring.submit().value(), 1U);

  const Cqe cqe = ring.copy_cqe().value();
  const Fd socket(cqe.res >= 0 ? cqe.res : -1);
  ASSERT_EQ(cqe.error(), 0) << std::strerror(cqe.error());
  EXPECT_GT(socket.get(), 2);
  int type = 0;
  socklen_t type_len = sizeof(type);
  ASSERT_EQ(::getsockopt(socket.get(), SOL_SOCKET, SO_TYPE, &type, &type_len), 0);
  EXPECT_EQ(type, SOCK_STREAM);
  EXPECT_EQ(::fcntl(socket.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST(RingReferenceB, SocketDirectFillsChosenAndAllocatedSlotsThatConnectAndCloseDirect) {
  Ring ring(2);
  CORING_REQUIRE_OP(ring, Op::socket);
  const std::array<int, 3> empty_slots{-1, -1, -1};
  ASSERT_TRUE(ring.register_files(empty_slots).ok());

  // Slots 0 and 1 by index (res 0), then one the kernel picks (res is the slot).
  for (std::uint32_t slot = 0; slot < 2; ++slot) {
    Sqe& sqe = CORING_GET_SQE(ring);
    prep_socket_direct(sqe, AF_INET, SOCK_STREAM, 0, 0, slot);
    sqe.user_data = 0;
    ASSERT_EQ(ring.submit().value(), 1U);
    const Cqe cqe = ring.copy_cqe().value();
    EXPECT_EQ(cqe.error(), 0) << std::strerror(cqe.error());
    EXPECT_EQ(cqe.res, 0);
  }
  Sqe& alloc = CORING_GET_SQE(ring);
  prep_socket_direct_alloc(alloc, AF_INET, SOCK_STREAM, 0, 0);
  alloc.user_data = 0;
  ASSERT_EQ(ring.submit().value(), 1U);
  const Cqe allocated = ring.copy_cqe().value();
  EXPECT_EQ(allocated.error(), 0) << std::strerror(allocated.error());
  EXPECT_EQ(allocated.res, 2);

  Listener listener = make_listener();
  constexpr std::uint64_t accept_user_data = 0xaaaaaaaa;
  constexpr std::uint64_t connect_user_data = 0xbbbbbbbb;
  constexpr std::uint64_t close_user_data = 0xcccccccc;
  for (std::size_t slot = 0; slot < empty_slots.size(); ++slot) {
    Sqe& accept = CORING_GET_SQE(ring);
    prep_accept(accept, listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
    accept.user_data = accept_user_data;
    Sqe& connect = CORING_GET_SQE(ring);
    prep_connect(connect, static_cast<int>(slot),
                 reinterpret_cast<const sockaddr*>(&listener.address), sizeof(listener.address));
    use_fixed_file(connect);
    connect.user_data = connect_user_data;
    ASSERT_EQ(ring.submit().value(), 2U);

    Cqe connected = ring.copy_cqe().value();
    Cqe accepted = ring.copy_cqe().value();
    if (connected.user_data == accept_user_data) std::swap(connected, accepted);
    const Fd accepted_fd(accepted.res > 0 ? accepted.res : -1);
    EXPECT_EQ(connected.user_data, connect_user_data);
    EXPECT_EQ(connected.error(), 0) << std::strerror(connected.error());
    EXPECT_EQ(accepted.user_data, accept_user_data);
    EXPECT_EQ(accepted.error(), 0) << std::strerror(accepted.error());

    Sqe& close = CORING_GET_SQE(ring);
    prep_close_direct(close, static_cast<std::uint32_t>(slot));
    close.user_data = close_user_data;
    ASSERT_EQ(ring.submit().value(), 1U);
    const Cqe closed = ring.copy_cqe().value();
    EXPECT_EQ(closed.user_data, close_user_data);
    EXPECT_EQ(closed.error(), 0) << std::strerror(closed.error());
  }
  ASSERT_TRUE(ring.unregister_files().ok());
}

TEST(RingReferenceB, OpenatDirectFillsChosenAndAllocatedSlotsAndCloseDirectEmptiesThem) {
  Ring ring(2);
  const std::array<int, 3> empty_slots{-1, -1, -1};
  ASSERT_TRUE(ring.register_files(empty_slots).ok());
  TempDir tmp;
  const Fd dir = open_directory(tmp);
  const char* path = "openat_direct";
  // No O_CLOEXEC: the kernel refuses it for a direct descriptor (see the top).
  constexpr int flags = O_RDWR | O_CREAT;

  for (std::uint32_t slot = 0; slot < 2; ++slot) {
    Sqe& sqe = CORING_GET_SQE(ring);
    prep_openat_direct(sqe, dir.get(), path, flags, 0666, slot);
    sqe.user_data = 0;
    ASSERT_EQ(ring.submit().value(), 1U);
    const Cqe cqe = ring.copy_cqe().value();
    EXPECT_EQ(cqe.error(), 0) << std::strerror(cqe.error());
    EXPECT_EQ(cqe.res, 0);  // 0 when the slot was named
  }
  Sqe& alloc = CORING_GET_SQE(ring);
  prep_openat_direct(alloc, dir.get(), path, flags, 0666, file_index_alloc);
  alloc.user_data = 0;
  ASSERT_EQ(ring.submit().value(), 1U);
  const Cqe allocated = ring.copy_cqe().value();
  EXPECT_EQ(allocated.error(), 0) << std::strerror(allocated.error());
  EXPECT_EQ(allocated.res, 2);  // the slot the kernel chose

  for (std::uint32_t slot = 0; slot < empty_slots.size(); ++slot) {
    Sqe& close = CORING_GET_SQE(ring);
    prep_close_direct(close, slot);
    close.user_data = 0;
    ASSERT_EQ(ring.submit().value(), 1U);
    const Cqe closed = ring.copy_cqe().value();
    EXPECT_EQ(closed.error(), 0) << "slot " << slot << ": " << std::strerror(closed.error());
  }
  ASSERT_TRUE(ring.unregister_files().ok());
}

// ---------------------------------------------------------------------------------------
// waitid

TEST(RingReferenceB, WaitidReapsExitedChildWithItsStatus) {
  Ring ring(16);
  CORING_REQUIRE_OP(ring, Op::waitid);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0) << std::strerror(errno);
  if (pid == 0) ::_exit(7);

  siginfo_t info{};
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_waitid(sqe, P_PID, static_cast<id_t>(pid), &info, WEXITED, 0);
  sqe.user_data = 0;
  ASSERT_EQ(ring.submit().value(), 1U);

  const Cqe cqe = ring.copy_cqe().value();
  EXPECT_EQ(cqe.res, 0) << std::strerror(cqe.error());
  EXPECT_EQ(info.si_pid, pid);
  EXPECT_EQ(info.si_code, CLD_EXITED);
  EXPECT_EQ(info.si_status, 7);
}

// ---------------------------------------------------------------------------------------
// Ring-mapped provided buffers (BufferGroup)

// A recv that picks a buffer from `group`, submitted alone; its CQE must carry a buffer.
// The reference's buf_grp_recv_submit_get_cqe.
void recv_into_group(Ring& ring, BufferGroup& group, int fd, std::uint64_t user_data, Cqe& cqe) {
  Sqe* sqe = group.recv(user_data, fd, 0);
  ASSERT_NE(sqe, nullptr);
  EXPECT_EQ(sqe->flags & sqe_flags::buffer_select, sqe_flags::buffer_select);
  EXPECT_EQ(sqe->buf_index, group.group_id());
  ASSERT_EQ(ring.submit().value(), 1U);
  cqe = ring.copy_cqe().value();
  EXPECT_EQ(cqe.user_data, user_data);
  ASSERT_GE(cqe.res, 0) << std::strerror(cqe.error());
  ASSERT_TRUE(cqe.has_buffer());
}

// The next CQE must deliver exactly `expected` into a buffer of `group`. The
// reference's expect_buf_grp_cqe.
void expect_group_cqe(Ring& ring, BufferGroup& group, std::uint64_t user_data,
                      std::span<const std::byte> expected, Cqe& cqe) {
  cqe = ring.copy_cqe().value();
  EXPECT_EQ(cqe.user_data, user_data);
  ASSERT_GE(cqe.res, 0) << std::strerror(cqe.error());
  ASSERT_TRUE(cqe.has_buffer());
  ASSERT_EQ(cqe.res, static_cast<std::int32_t>(expected.size()));
  auto bytes = group.get(cqe);
  ASSERT_TRUE(bytes.ok()) << bytes.error().message();
  EXPECT_EQ(text(*bytes), text(expected));
}

// A CQE of a recv that found the group empty: ENOBUFS, no buffer to get or put back.
void expect_out_of_buffers(BufferGroup& group, const Cqe& cqe, std::uint64_t user_data) {
  EXPECT_EQ(cqe.user_data, user_data);
  EXPECT_LT(cqe.res, 0);
  EXPECT_EQ(cqe.error(), ENOBUFS);
  EXPECT_FALSE(cqe.has_buffer());  // the kernel names a buffer only on success
  EXPECT_EQ(group.get(cqe).error(), Errc::buffer_id_invalid);
  EXPECT_EQ(group.put(cqe).error(), Errc::buffer_id_invalid);
}

void send_all(Ring& ring, int fd, std::span<const std::byte> data, std::uint64_t user_data) {
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_send(sqe, fd, data, 0);
  sqe.user_data = user_data;
  ASSERT_EQ(ring.submit().value(), 1U);
  EXPECT_TRUE(
      cqe_is(ring.copy_cqe().value(), user_data, static_cast<std::int32_t>(data.size()), 0));
}

// Random user_data as in the reference, from a fixed seed so that a failure repeats.
constexpr std::uint64_t user_data_seed = 0x5eed;

// The reference's BufferGroup test: one 128-byte buffer in group 1; a plain send from
// the client lands, through a buffer-select recv, in that buffer, and goes back to the
// kernel with put().
TEST(RingReferenceB, BufferGroupRecvDeliversSentBytesIntoGroupBuffer) {
  Ring ring(16);
  auto group = BufferGroup::create(ring, 1, 128, 1);
  ASSERT_TRUE(group.ok()) << group.error().message();
  RingConnection conn;
  ASSERT_NO_FATAL_FAILURE(connect_through_ring(ring, conn));
  const auto data = counting_bytes<15>();

  send_all(ring, conn.client.get(), data, 1);

  Cqe cqe{};
  ASSERT_NO_FATAL_FAILURE(recv_into_group(ring, *group, conn.server.get(), 2, cqe));
  EXPECT_EQ(cqe.error(), 0);
  ASSERT_EQ(cqe.res, static_cast<std::int32_t>(data.size()));
  auto bytes = group->get(cqe);
  ASSERT_TRUE(bytes.ok()) << bytes.error().message();
  EXPECT_EQ(text(*bytes), text(data));
  EXPECT_TRUE(group->put(cqe).ok());
}

TEST(RingReferenceB, BufferGroupRecvFailsWithEnobufsUntilBuffersArePutBack) {
  Ring ring(16);
  // Two buffers of four bytes: a 15-byte message takes several receives.
  auto created = BufferGroup::create(ring, 1, 4, 2);
  ASSERT_TRUE(created.ok()) << created.error().message();
  BufferGroup& group = *created;
  RingConnection conn;
  ASSERT_NO_FATAL_FAILURE(connect_through_ring(ring, conn));
  std::mt19937_64 random(user_data_seed);

  const auto data = counting_bytes<15>();
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_NO_FATAL_FAILURE(send_all(ring, conn.client.get(), data, random()));
    std::size_t pos = 0;

    // Under incremental consumption a buffer left part-filled by the previous round
    // comes first, so chunk sizes vary; their concatenation must be the message.
    std::array<Cqe, 2> held{};
    for (Cqe& cqe : held) {
      ASSERT_NO_FATAL_FAILURE(recv_into_group(ring, group, conn.server.get(), random(), cqe));
      auto bytes = group.get(cqe);
      ASSERT_TRUE(bytes.ok()) << bytes.error().message();
      ASSERT_LE(pos + bytes->size(), data.size());
      EXPECT_EQ(text(*bytes), text(std::span(data).subspan(pos, bytes->size())));
      pos += bytes->size();
    }

    // Both buffers are with the application: the group is empty.
    const std::uint64_t empty_user_data = random();
    ASSERT_NE(group.recv(empty_user_data, conn.server.get(), 0), nullptr);
    ASSERT_EQ(ring.submit().value(), 1U);
    ASSERT_NO_FATAL_FAILURE(expect_out_of_buffers(group, ring.copy_cqe().value(), empty_user_data));

    for (const Cqe& cqe : held) ASSERT_TRUE(group.put(cqe).ok());

    while (pos < data.size()) {
      Cqe cqe{};
      ASSERT_NO_FATAL_FAILURE(recv_into_group(ring, group, conn.server.get(), random(), cqe));
      auto bytes = group.get(cqe);
      ASSERT_TRUE(bytes.ok()) << bytes.error().message();
      ASSERT_GT(bytes->size(), 0U);
      ASSERT_LE(pos + bytes->size(), data.size());
      EXPECT_EQ(text(*bytes), text(std::span(data).subspan(pos, bytes->size())));
      pos += bytes->size();
      ASSERT_TRUE(group.put(cqe).ok());
    }
  }
}

TEST(RingReferenceB, BufferGroupMultishotRecvEndsWithEnobufsAndResumesAfterPut) {
  Ring ring(16);
  auto created = BufferGroup::create(ring, 1, 4, 2);
  ASSERT_TRUE(created.ok()) << created.error().message();
  BufferGroup& group = *created;
  RingConnection conn;
  ASSERT_NO_FATAL_FAILURE(connect_through_ring(ring, conn));
  std::mt19937_64 random(user_data_seed);

  // Sixteen bytes: exactly four chunks of the four-byte buffers.
  const auto data = counting_bytes<16>();
  const auto chunk = [&data](std::size_t index) { return std::span(data).subspan(index * 4, 4); };
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_NO_FATAL_FAILURE(send_all(ring, conn.client.get(), data, random()));

    std::uint64_t recv_user_data = random();
    ASSERT_NE(group.recv_multishot(recv_user_data, conn.server.get(), 0), nullptr);
    ASSERT_EQ(ring.submit().value(), 1U);

    Cqe first{};
    Cqe second{};
    ASSERT_NO_FATAL_FAILURE(expect_group_cqe(ring, group, recv_user_data, chunk(0), first));
    EXPECT_TRUE(first.has_more());
    ASSERT_NO_FATAL_FAILURE(expect_group_cqe(ring, group, recv_user_data, chunk(1), second));
    EXPECT_TRUE(second.has_more());

    // Data is still waiting but both buffers are held: the multishot recv ends.
    const Cqe empty = ring.copy_cqe().value();
    ASSERT_NO_FATAL_FAILURE(expect_out_of_buffers(group, empty, recv_user_data));
    EXPECT_FALSE(empty.has_more());

    ASSERT_TRUE(group.put(first).ok());
    ASSERT_TRUE(group.put(second).ok());

    recv_user_data = random();
    ASSERT_NE(group.recv_multishot(recv_user_data, conn.server.get(), 0), nullptr);
    ASSERT_EQ(ring.submit().value(), 1U);
    for (std::size_t index = 2; index < 4; ++index) {
      Cqe cqe{};
      ASSERT_NO_FATAL_FAILURE(expect_group_cqe(ring, group, recv_user_data, chunk(index), cqe));
      EXPECT_TRUE(cqe.has_more());
      ASSERT_TRUE(group.put(cqe).ok());
    }

    // The socket is drained and the recv waits for more; cancel it.
    const std::uint64_t cancel_user_data = random();
    Sqe& cancel = CORING_GET_SQE(ring);
    prep_cancel(cancel, recv_user_data, 0);
    cancel.user_data = cancel_user_data;
    ASSERT_EQ(ring.submit().value(), 1U);
    Cqe cancelled = ring.copy_cqe().value();
    Cqe ended = ring.copy_cqe().value();
    if (cancelled.user_data == recv_user_data) std::swap(cancelled, ended);
    // Kernels before 6.5 answer ENOENT and end the recv with ENOBUFS (liburing issue
    // 984); later ones cancel it. Either way the recv's last CQE promises no more.
    EXPECT_EQ(cancelled.user_data, cancel_user_data);
    EXPECT_TRUE(cancelled.error() == 0 || cancelled.error() == ENOENT)
        << std::strerror(cancelled.error());
    EXPECT_EQ(ended.user_data, recv_user_data);
    EXPECT_LT(ended.res, 0);
    EXPECT_TRUE(ended.error() == ENOBUFS || ended.error() == ECANCELED)
        << std::strerror(ended.error());
    EXPECT_FALSE(ended.has_more());
  }
}

// ---------------------------------------------------------------------------------------
// copy_cqes across the end of the CQ array

// Queues and submits `count` short timeouts numbered from `first`, then collects their
// CQEs through copy_cqes() and checks each number came back once.
void run_timeouts(Ring& ring, std::uint64_t first, std::uint32_t count) {
  static constexpr KernelTimespec ten_us{0, 10'000};
  for (std::uint32_t i = 0; i < count; ++i) {
    Sqe& sqe = CORING_GET_SQE(ring);
    prep_timeout(sqe, &ten_us, 0, 0);
    sqe.user_data = first + i;
    ASSERT_EQ(ring.submit().value(), 1U);
  }
  std::array<Cqe, 8> cqes{};
  std::vector<std::uint64_t> seen;
  std::uint32_t copied = 0;
  while (copied < count) {
    const std::uint32_t n = ring.copy_cqes(cqes, count - copied).value();
    for (std::uint32_t i = 0; i < n; ++i) {
      EXPECT_EQ(cqes[i].res, -ETIME);
      seen.push_back(cqes[i].user_data);
    }
    copied += n;
  }
  ASSERT_EQ(copied, count);
  std::sort(seen.begin(), seen.end());
  for (std::uint32_t i = 0; i < count; ++i) EXPECT_EQ(seen[i], first + i);
}

TEST(RingReferenceB, CopyCqesReadsAcrossTheEndOfTheCompletionArray) {
  Ring ring(2);
  ASSERT_EQ(ring.sq_entries(), 2U);
  ASSERT_EQ(ring.cq_entries(), 4U);

  // Two first, so that every later batch of four starts at slot 2 and wraps: slots
  // 2, 3, 0, 1. The reference checks the CQ head; with no overflow the kernel's tail is
  // the number of CQEs posted, so "all copied, none ready" pins the head to that count.
  ASSERT_NO_FATAL_FAILURE(run_timeouts(ring, 0, 2));
  EXPECT_EQ(ring.cq_ready(), 0U);
  std::uint64_t reaped = 2;
  for (int i = 1; i < 1024; ++i) {
    ASSERT_NO_FATAL_FAILURE(run_timeouts(ring, reaped, 4));
    reaped += 4;
    ASSERT_EQ(reaped, 2U + 4U * static_cast<std::uint64_t>(i));
    ASSERT_EQ(ring.cq_ready(), 0U);
    ASSERT_EQ(ring.cq_overflow(), 0U);
  }
}

// ---------------------------------------------------------------------------------------
// socket, setsockopt, getsockopt, bind, listen, accept, connect, send, recv, shutdown,
// close: a whole connection's life through the ring.

// Two sends of one message from `send_fd`, then receives on `recv_fd` until both arrived.
void send_twice_and_receive(Ring& ring, int send_fd, int recv_fd) {
  std::string message;
  for (int i = 0; i < 10; ++i) message += "0123456789abcdf";
  std::vector<std::byte> received(message.size() * 2);

  for (std::uint64_t user_data = 1; user_data <= 2; ++user_data) {
    Sqe& sqe = CORING_GET_SQE(ring);
    prep_send(sqe, send_fd, bytes_of(message), MSG_WAITALL);
    sqe.user_data = user_data;
  }
  ASSERT_EQ(ring.submit().value(), 2U);
  for (std::uint64_t user_data = 1; user_data <= 2; ++user_data) {
    const Cqe cqe = ring.copy_cqe().value();
    EXPECT_EQ(cqe.user_data, user_data);
    EXPECT_EQ(cqe.error(), 0) << std::strerror(cqe.error());
    EXPECT_EQ(cqe.res, static_cast<std::int32_t>(message.size()));
  }

  std::size_t got = 0;
  while (got < received.size()) {
    Sqe& sqe = CORING_GET_SQE(ring);
    prep_recv(sqe, recv_fd, std::span(received).subspan(got), 0);
    sqe.user_data = 3;
    ASSERT_EQ(ring.submit().value(), 1U);
    const Cqe cqe = ring.copy_cqe().value();
    EXPECT_EQ(cqe.user_data, 3U);
    ASSERT_EQ(cqe.error(), 0) << std::strerror(cqe.error());
    ASSERT_GT(cqe.res, 0);  // 0 would be end of stream, which nobody sent
    got += static_cast<std::size_t>(cqe.res);
  }
  EXPECT_EQ(text(std::span(received).first(message.size())), message);
  EXPECT_EQ(text(std::span(received).subspan(message.size())), message);
}

// A TCP socket made through the ring, under `user_data`.
void ring_socket(Ring& ring, std::uint64_t user_data, Fd& out) {
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_socket(sqe, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP, 0);
  sqe.user_data = user_data;
  ASSERT_EQ(ring.submit().value(), 1U);
  const Cqe cqe = ring.copy_cqe().value();
  if (cqe.res >= 0) out.reset(cqe.res);
  EXPECT_EQ(cqe.user_data, user_data);
  ASSERT_EQ(cqe.error(), 0) << std::strerror(cqe.error());
  EXPECT_GT(out.get(), 2);
}

TEST(RingReferenceB, BindListenAcceptConnectAndCloseAllThroughTheRing) {
  Ring ring(4);
  CORING_REQUIRE_OP(ring, Op::listen);  // the newest opcode used here (6.11)
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;

  Fd listen_fd;
  ASSERT_NO_FATAL_FAILURE(ring_socket(ring, 1, listen_fd));

  // Two options, bind and listen, linked so each starts only after the one before it.
  const int one = 1;
  const auto one_bytes = std::as_bytes(std::span(&one, 1));
  Sqe& reuse_addr = CORING_GET_SQE(ring);
  prep_setsockopt(reuse_addr, listen_fd.get(), SOL_SOCKET, SO_REUSEADDR, one_bytes);
  reuse_addr.user_data = 2;
  link_next(reuse_addr);
  Sqe& reuse_port = CORING_GET_SQE(ring);
  prep_setsockopt(reuse_port, listen_fd.get(), SOL_SOCKET, SO_REUSEPORT, one_bytes);
  reuse_port.user_data = 3;
  link_next(reuse_port);
  Sqe& bind = CORING_GET_SQE(ring);
  prep_bind(bind, listen_fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  bind.user_data = 4;
  link_next(bind);
  Sqe& listen = CORING_GET_SQE(ring);
  prep_listen(listen, listen_fd.get(), 1);
  listen.user_data = 5;
  ASSERT_EQ(ring.submit().value(), 4U);
  for (std::uint64_t user_data = 2; user_data <= 5; ++user_data) {
    const Cqe cqe = ring.copy_cqe().value();
    EXPECT_EQ(cqe.user_data, user_data);
    EXPECT_EQ(cqe.error(), 0) << "user_data " << user_data << ": " << std::strerror(cqe.error());
  }

  int reuse = 0;
  Sqe& get = CORING_GET_SQE(ring);
  prep_getsockopt(get, listen_fd.get(), SOL_SOCKET, SO_REUSEADDR,
                  std::as_writable_bytes(std::span(&reuse, 1)));
  get.user_data = 5;
  ASSERT_EQ(ring.submit().value(), 1U);
  const Cqe got = ring.copy_cqe().value();
  EXPECT_EQ(got.user_data, 5U);
  EXPECT_EQ(got.error(), 0) << std::strerror(got.error());
  EXPECT_EQ(got.res, static_cast<std::int32_t>(sizeof(reuse)));  // the option's length
  EXPECT_EQ(reuse, 1);

  socklen_t address_len = sizeof(address);
  ASSERT_EQ(::getsockname(listen_fd.get(), reinterpret_cast<sockaddr*>(&address), &address_len), 0);

  Fd connect_fd;
  ASSERT_NO_FATAL_FAILURE(ring_socket(ring, 6, connect_fd));
  EXPECT_NE(connect_fd.get(), listen_fd.get());

  Sqe& accept = CORING_GET_SQE(ring);
  prep_accept(accept, listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
  accept.user_data = 7;
  Sqe& connect = CORING_GET_SQE(ring);
  prep_connect(connect, connect_fd.get(), reinterpret_cast<const sockaddr*>(&address),
               sizeof(address));
  connect.user_data = 8;
  ASSERT_EQ(ring.submit().value(), 2U);
  Fd accept_fd;
  for (int i = 0; i < 2; ++i) {
    const Cqe cqe = ring.copy_cqe().value();
    EXPECT_EQ(cqe.error(), 0) << "user_data " << cqe.user_data << ": "
                              << std::strerror(cqe.error());
    if (cqe.user_data == 7) {
      if (cqe.res >= 0) accept_fd.reset(cqe.res);
    } else {
      EXPECT_EQ(cqe.user_data, 8U);
    }
  }
  ASSERT_GT(accept_fd.get(), 2);
  EXPECT_NE(accept_fd.get(), listen_fd.get());
  EXPECT_NE(accept_fd.get(), connect_fd.get());

  ASSERT_NO_FATAL_FAILURE(send_twice_and_receive(ring, connect_fd.get(), accept_fd.get()));
  ASSERT_NO_FATAL_FAILURE(send_twice_and_receive(ring, accept_fd.get(), connect_fd.get()));

  // Shut down and close each socket through the ring; the guard lets go of an fd only
  // once the ring's close has succeeded.
  for (Fd* fd : {&connect_fd, &accept_fd, &listen_fd}) {
    Sqe& shutdown = CORING_GET_SQE(ring);
    prep_shutdown(shutdown, fd->get(), SHUT_RDWR);
    shutdown.user_data = 9;
    link_next(shutdown);
    Sqe& close = CORING_GET_SQE(ring);
    prep_close(close, fd->get());
    close.user_data = 10;
    ASSERT_EQ(ring.submit().value(), 2U);
    for (std::uint64_t user_data = 9; user_data <= 10; ++user_data) {
      const Cqe cqe = ring.copy_cqe().value();
      EXPECT_EQ(cqe.user_data, user_data);
      EXPECT_EQ(cqe.error(), 0) << "user_data " << user_data << ": " << std::strerror(cqe.error());
      if (cqe.user_data == 10 && cqe.res == 0) fd->release();
    }
  }
}

}  // namespace
}  // namespace coring::ring::test
