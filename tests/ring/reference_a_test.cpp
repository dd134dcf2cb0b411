// The first twenty tests of the reference ring (shared/reference/IoUring.zig), from
// "structs/offsets/entries" to "shutdown", ported to coring's Ring and prep helpers.
// Each test makes the same checks as its original on the prepared SQEs and on every
// CQE's res, user_data and flags, and on the data that went through the kernel. Where
// the original looks at the ring's private indices we use the public counters
// (sq_ready, cq_ready, sq_space_left) that express the same state. Where it quietly
// skipped on old kernels (EINVAL for an unknown opcode) we probe for the opcode and skip
// with the reason instead; any other error is a failure. Every fd is opened close-on-exec
// and owned by an Fd, so a failing check cannot leak one.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "support.hpp"

namespace coring::ring::test {
namespace {

// A CQE as one comparable value, so that a check names all three fields at once and a
// failure prints all of them.
struct CqeValue {
  std::uint64_t user_data = 0;
  std::int32_t res = 0;
  std::uint32_t flags = 0;

  friend bool operator==(const CqeValue&, const CqeValue&) = default;
  friend std::ostream& operator<<(std::ostream& os, const CqeValue& v) {
    return os << "{user_data=0x" << std::hex << v.user_data << std::dec << ", res=" << v.res
              << ", flags=0x" << std::hex << v.flags << std::dec << "}";
  }
};

CqeValue value_of(const Cqe& cqe) { return {cqe.user_data, cqe.res, cqe.flags}; }

// Every field of an SQE, for checks on what a prep helper wrote.
struct SqeValue {
  std::uint8_t opcode = 0;
  std::uint8_t flags = 0;
  std::uint16_t ioprio = 0;
  std::int32_t fd = 0;
  std::uint64_t off = 0;
  std::uint64_t addr = 0;
  std::uint32_t len = 0;
  std::uint32_t op_flags = 0;
  std::uint64_t user_data = 0;
  std::uint16_t buf_index = 0;
  std::uint16_t personality = 0;
  std::uint32_t file_index = 0;
  std::uint64_t addr3 = 0;
  std::uint64_t pad2 = 0;

  friend bool operator==(const SqeValue&, const SqeValue&) = default;
  friend std::ostream& operator<<(std::ostream& os, const SqeValue& v) {
    return os << "{opcode=" << unsigned{v.opcode} << ", flags=" << unsigned{v.flags}
              << ", ioprio=" << v.ioprio << ", fd=" << v.fd << ", off=" << v.off << ", addr=0x"
              << std::hex << v.addr << std::dec << ", len=" << v.len << ", op_flags=0x" << std::hex
              << v.op_flags << ", user_data=0x" << v.user_data << std::dec
              << ", buf_index=" << v.buf_index << ", personality=" << v.personality
              << ", file_index=" << v.file_index << ", addr3=" << v.addr3 << ", pad2=" << v.pad2
              << "}";
  }
};

SqeValue value_of(const Sqe& sqe) {
  return {sqe.opcode,      sqe.flags,      sqe.ioprio,   sqe.fd,        sqe.off,
          sqe.addr,        sqe.len,        sqe.op_flags, sqe.user_data, sqe.buf_index,
          sqe.personality, sqe.file_index, sqe.addr3,    sqe.pad2};
}

Op op_of(const Sqe& sqe) { return static_cast<Op>(sqe.opcode); }

std::uint64_t address_of(const void* pointer) { return reinterpret_cast<std::uint64_t>(pointer); }

// The byte count of a buffer as the kernel reports it in res.
template <typename Buffer>
std::int32_t res_size(const Buffer& buffer) {
  return static_cast<std::int32_t>(buffer.size() * sizeof(buffer[0]));
}

Fd open_or_throw(const std::string& path, int flags, mode_t mode = 0) {
  Fd fd(::open(path.c_str(), flags | O_CLOEXEC, mode));
  if (fd.get() < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
  return fd;
}

// A file created empty for reading and writing.
Fd create_file(const TempDir& dir, const std::string& name) {
  return open_or_throw(dir.file(name), O_RDWR | O_CREAT | O_TRUNC, 0666);
}

Fd open_directory(const TempDir& dir) { return open_or_throw(dir.path(), O_RDONLY | O_DIRECTORY); }

off_t file_size(const Fd& fd) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw std::system_error(errno, std::generic_category(), "fstat");
  return st.st_size;
}

// The two CQEs of a pair of operations whose completion order the kernel does not fix,
// returned as {the one with `first`, the other}.
std::pair<Cqe, Cqe> copy_two_cqes_ordered(Ring& ring, std::uint64_t first) {
  Cqe a = ring.copy_cqe().value();
  Cqe b = ring.copy_cqe().value();
  if (b.user_data == first) std::swap(a, b);
  return {a, b};
}

// A TCP connection made through the ring, as the reference's socket harness: an accept
// on a loopback listener and a connect to it, submitted together.
struct RingConnection {
  Listener listener;
  Fd server;
  Fd client;
};

constexpr std::uint64_t accept_user_data = 0xaaaaaaaa;
constexpr std::uint64_t connect_user_data = 0xcccccccc;

// Call through ASSERT_NO_FATAL_FAILURE, then return if IsSkipped().
void connect_through_ring(Ring& ring, RingConnection& connection) {
  CORING_REQUIRE_OP(ring, Op::accept);
  CORING_REQUIRE_OP(ring, Op::connect);
  connection.listener = make_listener();

  sockaddr_storage peer{};
  socklen_t peer_len = sizeof(peer);
  Sqe& accept_sqe = CORING_GET_SQE(ring);
  prep_accept(accept_sqe, connection.listener.fd.get(), reinterpret_cast<sockaddr*>(&peer),
              &peer_len, SOCK_CLOEXEC);
  accept_sqe.user_data = accept_user_data;

  connection.client.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_GE(connection.client.get(), 0) << std::strerror(errno);
  Sqe& connect_sqe = CORING_GET_SQE(ring);
  prep_connect(connect_sqe, connection.client.get(),
               reinterpret_cast<const sockaddr*>(&connection.listener.address),
               sizeof(connection.listener.address));
  connect_sqe.user_data = connect_user_data;

  ASSERT_EQ(ring.submit().value(), 2U);
  // Connect may complete before accept.
  const auto [accepted, connected] = copy_two_cqes_ordered(ring, accept_user_data);
  if (accepted.res >= 0) connection.server.reset(accepted.res);

  EXPECT_EQ(accepted.user_data, accept_user_data);
  ASSERT_GT(accepted.res, 0) << std::strerror(accepted.error());
  EXPECT_EQ(accepted.flags, 0U);
  EXPECT_EQ(value_of(connected), (CqeValue{connect_user_data, 0, 0}));
}

// --- structs/offsets/entries ---------------------------------------------------------

TEST(RingReference, AbiSizesMmapOffsetsAndInvalidEntryCountsAreRejected) {
  EXPECT_EQ(sizeof(Params), 120U);
  EXPECT_EQ(sizeof(Sqe), 64U);
  EXPECT_EQ(sizeof(Cqe), 16U);

  EXPECT_EQ(mmap_offset::sq_ring, 0U);
  EXPECT_EQ(mmap_offset::cq_ring, 0x8000000U);
  EXPECT_EQ(mmap_offset::sqes, 0x10000000U);

  auto zero = Ring::create(0);
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.error(), Errc::entries_zero) << zero.error().message();

  auto three = Ring::create(3);
  ASSERT_FALSE(three.ok());
  EXPECT_EQ(three.error(), Errc::entries_not_power_of_two) << three.error().message();
}

// --- nop -----------------------------------------------------------------------------

TEST(RingReference, NopCompletesWithUserDataAndEmptiesQueues) {
  int ring_fd = -1;
  {
    Ring ring(1);
    ring_fd = ring.fd();
    ASSERT_GE(ring_fd, 0);
    EXPECT_EQ(ring.sq_entries(), 1U);
    EXPECT_EQ(ring.cq_entries(), 2U);

    Sqe& sqe = CORING_GET_SQE(ring);
    prep_nop(sqe);
    sqe.user_data = 0xaaaaaaaa;
    // prep_nop clears every field; like liburing it passes fd -1 (no file).
    SqeValue expected;
    expected.opcode = static_cast<std::uint8_t>(Op::nop);
    expected.fd = -1;
    expected.user_data = 0xaaaaaaaa;
    EXPECT_EQ(value_of(sqe), expected);

    // Handed out but not yet published: the kernel's tail has not moved, so an enter
    // asking it to submit finds nothing to consume.
    EXPECT_EQ(ring.sq_ready(), 1U);
    EXPECT_EQ(ring.sq_space_left(), 0U);
    EXPECT_EQ(ring.cq_ready(), 0U);
    EXPECT_EQ(ring.enter(1, 0, 0).value(), 0U);
    EXPECT_EQ(ring.sq_ready(), 1U);

    EXPECT_EQ(ring.submit().value(), 1U);
    EXPECT_EQ(ring.sq_ready(), 0U);
    EXPECT_EQ(ring.sq_space_left(), 1U);

    EXPECT_EQ(value_of(ring.copy_cqe().value()), (CqeValue{0xaaaaaaaa, 0, 0}));
    EXPECT_EQ(ring.cq_ready(), 0U);

    // A drained NOP waits for everything before it; nothing is in flight, so it completes.
    Sqe& barrier = CORING_GET_SQE(ring);
    prep_nop(barrier);
    barrier.user_data = 0xbbbbbbbb;
    drain_previous(barrier);
    EXPECT_EQ(ring.submit().value(), 1U);
    EXPECT_EQ(value_of(ring.copy_cqe().value()), (CqeValue{0xbbbbbbbb, 0, 0}));

    // Both SQEs consumed, both CQEs released.
    EXPECT_EQ(ring.sq_ready(), 0U);
    EXPECT_EQ(ring.sq_space_left(), ring.sq_entries());
    EXPECT_EQ(ring.cq_ready(), 0U);
  }
  // Destroying the ring closed its fd.
  const int fcntl_result = ::fcntl(ring_fd, F_GETFD);
  const int fcntl_errno = errno;
  EXPECT_EQ(fcntl_result, -1);
  EXPECT_EQ(fcntl_errno, EBADF);
}

// --- readv ---------------------------------------------------------------------------

TEST(RingReference, ReadvThroughRegisteredFileFillsBufferAndFullQueueRefusesSqe) {
  Ring ring(1);
  Fd zero = open_or_throw("/dev/zero", O_RDONLY);

  // A dense table of one file, so the test does not rely on sparse (-1) slots.
  constexpr int file_index = 0;
  const std::array<int, 1> registered = {zero.get()};
  ASSERT_TRUE(ring.register_files(registered).ok());

  std::array<char, 128> buffer;
  buffer.fill(42);
  const std::array<iovec, 1> iovecs = {iovec{buffer.data(), buffer.size()}};
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_readv(sqe, file_index, iovecs, 0);
  sqe.user_data = 0xcccccccc;
  EXPECT_EQ(op_of(sqe), Op::readv);
  use_fixed_file(sqe);

  // The ring has one slot and it is taken.
  EXPECT_EQ(ring.get_sqe(), nullptr);
  EXPECT_EQ(ring.submit().value(), 1U);
  EXPECT_EQ(value_of(ring.copy_cqe().value()), (CqeValue{0xcccccccc, res_size(buffer), 0}));
  std::array<char, 128> zeros{};
  EXPECT_EQ(buffer, zeros);

  EXPECT_TRUE(ring.unregister_files().ok());
}

// --- writev/fsync/readv --------------------------------------------------------------

TEST(RingReference, LinkedWritevFsyncReadvRoundTripData) {
  Ring ring(4);
  TempDir dir;
  Fd file = create_file(dir, "writev_fsync_readv");

  std::array<char, 128> written;
  written.fill(42);
  std::array<char, 128> read{};
  const std::array<iovec, 1> write_iovecs = {iovec{written.data(), written.size()}};
  const std::array<iovec, 1> read_iovecs = {iovec{read.data(), read.size()}};

  Sqe& writev = CORING_GET_SQE(ring);
  prep_writev(writev, file.get(), write_iovecs, 17);
  writev.user_data = 0xdddddddd;
  EXPECT_EQ(op_of(writev), Op::writev);
  EXPECT_EQ(writev.off, 17U);
  link_next(writev);

  Sqe& fsync = CORING_GET_SQE(ring);
  prep_fsync(fsync, file.get(), 0);
  fsync.user_data = 0xeeeeeeee;
  EXPECT_EQ(op_of(fsync), Op::fsync);
  EXPECT_EQ(fsync.fd, file.get());
  link_next(fsync);

  Sqe& readv = CORING_GET_SQE(ring);
  prep_readv(readv, file.get(), read_iovecs, 17);
  readv.user_data = 0xffffffff;
  EXPECT_EQ(op_of(readv), Op::readv);
  EXPECT_EQ(readv.off, 17U);

  EXPECT_EQ(ring.sq_ready(), 3U);
  EXPECT_EQ(ring.submit_and_wait(3).value(), 3U);
  EXPECT_EQ(ring.sq_ready(), 0U);
  EXPECT_EQ(ring.cq_ready(), 3U);

  // A link chain completes in order.
  EXPECT_EQ(value_of(ring.copy_cqe().value()), (CqeValue{0xdddddddd, res_size(written), 0}));
  EXPECT_EQ(ring.cq_ready(), 2U);
  EXPECT_EQ(value_of(ring.copy_cqe().value()), (CqeValue{0xeeeeeeee, 0, 0}));
  EXPECT_EQ(ring.cq_ready(), 1U);
  EXPECT_EQ(value_of(ring.copy_cqe().value()), (CqeValue{0xffffffff, res_size(read), 0}));
  EXPECT_EQ(ring.cq_ready(), 0U);

  EXPECT_EQ(read, written);
}

// --- write/read ----------------------------------------------------------------------

TEST(RingReference, LinkedWriteThenReadRoundTripData) {
  Ring ring(2);
  CORING_REQUIRE_OP(ring, Op::write);
  CORING_REQUIRE_OP(ring, Op::read);
  TempDir dir;
  Fd file = create_file(dir, "write_read");

  std::array<char, 20> written;
  written.fill('a');
  std::array<char, 20> read;
  read.fill('b');

  Sqe& write = CORING_GET_SQE(ring);
  prep_write(write, file.get(), std::as_bytes(std::span(written)), 10);
  write.user_data = 0x11111111;
  EXPECT_EQ(op_of(write), Op::write);
  EXPECT_EQ(write.off, 10U);
  link_next(write);

  Sqe& read_sqe = CORING_GET_SQE(ring);
  prep_read(read_sqe, file.get(), std::as_writable_bytes(std::span(read)), 10);
  read_sqe.user_data = 0x22222222;
  EXPECT_EQ(op_of(read_sqe), Op::read);
  EXPECT_EQ(read_sqe.off, 10U);
  EXPECT_EQ(ring.submit().value(), 2U);

  const Cqe write_cqe = ring.copy_cqe().value();
  const Cqe read_cqe = ring.copy_cqe().value();
  EXPECT_EQ(value_of(write_cqe), (CqeValue{0x11111111, res_size(written), 0}));
  EXPECT_EQ(value_of(read_cqe), (CqeValue{0x22222222, res_size(read), 0}));
  EXPECT_EQ(read, written);
}

// --- splice/read ---------------------------------------------------------------------

TEST(RingReference, SpliceFileThroughPipeIntoFileThenReadRoundTripsData) {
  Ring ring(4);
  CORING_REQUIRE_OP(ring, Op::splice);
  CORING_REQUIRE_OP(ring, Op::read);
  TempDir dir;
  Fd source = create_file(dir, "splice_src");
  Fd destination = create_file(dir, "splice_dst");

  std::array<char, 20> written;
  written.fill('a');
  std::array<char, 20> read;
  read.fill('b');
  ASSERT_EQ(::write(source.get(), written.data(), written.size()),
            static_cast<ssize_t>(written.size()));

  std::array<int, 2> pipe_fds{};
  ASSERT_EQ(::pipe2(pipe_fds.data(), O_CLOEXEC), 0) << std::strerror(errno);
  Fd pipe_read(pipe_fds[0]);
  Fd pipe_write(pipe_fds[1]);
  // A pipe has no position: its offset must be "none", (u64)-1.
  constexpr std::uint64_t pipe_offset = ~std::uint64_t{0};
  const auto length = static_cast<std::uint32_t>(written.size());

  Sqe& to_pipe = CORING_GET_SQE(ring);
  prep_splice(to_pipe, source.get(), 0, pipe_write.get(), pipe_offset, length);
  to_pipe.user_data = 0x11111111;
  EXPECT_EQ(op_of(to_pipe), Op::splice);
  EXPECT_EQ(to_pipe.addr, 0U);  // the input offset
  EXPECT_EQ(to_pipe.off, pipe_offset);
  link_next(to_pipe);

  Sqe& from_pipe = CORING_GET_SQE(ring);
  prep_splice(from_pipe, pipe_read.get(), pipe_offset, destination.get(), 10, length);
  from_pipe.user_data = 0x22222222;
  EXPECT_EQ(op_of(from_pipe), Op::splice);
  EXPECT_EQ(from_pipe.addr, pipe_offset);
  EXPECT_EQ(from_pipe.off, 10U);
  link_next(from_pipe);

  Sqe& read_sqe = CORING_GET_SQE(ring);
  prep_read(read_sqe, destination.get(), std::as_writable_bytes(std::span(read)), 10);
  read_sqe.user_data = 0x33333333;
  EXPECT_EQ(op_of(read_sqe), Op::read);
  EXPECT_EQ(read_sqe.off, 10U);
  EXPECT_EQ(ring.submit().value(), 3U);

  const Cqe to_pipe_cqe = ring.copy_cqe().value();
  const Cqe from_pipe_cqe = ring.copy_cqe().value();
  const Cqe read_cqe = ring.copy_cqe().value();
  EXPECT_EQ(value_of(to_pipe_cqe), (CqeValue{0x11111111, res_size(written), 0}));
  EXPECT_EQ(value_of(from_pipe_cqe), (CqeValue{0x22222222, res_size(written), 0}));
  EXPECT_EQ(value_of(read_cqe), (CqeValue{0x33333333, res_size(read), 0}));
  EXPECT_EQ(read, written);
}

// --- write_fixed/read_fixed ----------------------------------------------------------

TEST(RingReference, WriteFixedAndReadFixedUseRegisteredBuffers) {
  Ring ring(2);
  TempDir dir;
  Fd file = create_file(dir, "write_read_fixed");

  // Buffer 0 is written at offset 3; buffer 1 reads the file back from offset 0.
  std::array<std::array<char, 11>, 2> raw{};
  raw[0].fill('z');
  std::memcpy(raw[0].data(), "foobar", 6);
  raw[1].fill('?');
  const std::array<iovec, 2> buffers = {iovec{raw[0].data(), raw[0].size()},
                                        iovec{raw[1].data(), raw[1].size()}};
  const auto registered = ring.register_buffers(buffers);
  ASSERT_TRUE(registered.ok()) << registered.error().message();

  Sqe& write = CORING_GET_SQE(ring);
  prep_write_fixed(write, file.get(), std::as_bytes(std::span(raw[0])), 3, 0);
  write.user_data = 0x45454545;
  EXPECT_EQ(op_of(write), Op::write_fixed);
  EXPECT_EQ(write.off, 3U);
  link_next(write);

  Sqe& read = CORING_GET_SQE(ring);
  prep_read_fixed(read, file.get(), std::as_writable_bytes(std::span(raw[1])), 0, 1);
  read.user_data = 0x12121212;
  EXPECT_EQ(op_of(read), Op::read_fixed);
  EXPECT_EQ(read.off, 0U);

  EXPECT_EQ(ring.submit().value(), 2U);
  const Cqe write_cqe = ring.copy_cqe().value();
  const Cqe read_cqe = ring.copy_cqe().value();
  EXPECT_EQ(value_of(write_cqe), (CqeValue{0x45454545, res_size(raw[0]), 0}));
  EXPECT_EQ(value_of(read_cqe), (CqeValue{0x12121212, res_size(raw[1]), 0}));

  const std::string_view back(raw[1].data(), raw[1].size());
  EXPECT_EQ(back.substr(0, 3), std::string_view("\0\0\0", 3));  // the hole before offset 3
  EXPECT_EQ(back.substr(3, 6), "foobar");
  EXPECT_EQ(back.substr(9, 2), "zz");
}

// --- openat --------------------------------------------------------------------------

TEST(RingReference, OpenatCreatesFileRelativeToDirectoryAndReturnsFd) {
  Ring ring(1);
  CORING_REQUIRE_OP(ring, Op::openat);
  TempDir dir;
  Fd dir_fd = open_directory(dir);

  const char* path = "openat";
  constexpr int flags = O_CLOEXEC | O_RDWR | O_CREAT;
  constexpr mode_t mode = 0666;
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_openat(sqe, dir_fd.get(), path, flags, mode);
  sqe.user_data = 0x33333333;
  SqeValue expected;
  expected.opcode = static_cast<std::uint8_t>(Op::openat);
  expected.fd = dir_fd.get();
  expected.addr = address_of(path);
  expected.len = mode;
  expected.op_flags = static_cast<std::uint32_t>(flags);
  expected.user_data = 0x33333333;
  EXPECT_EQ(value_of(sqe), expected);
  EXPECT_EQ(ring.submit().value(), 1U);

  const Cqe cqe = ring.copy_cqe().value();
  Fd opened(cqe.res >= 0 ? cqe.res : -1);
  EXPECT_EQ(cqe.user_data, 0x33333333U);
  EXPECT_GT(cqe.res, 0) << std::strerror(cqe.error());
  EXPECT_EQ(cqe.flags, 0U);
}

// --- close ---------------------------------------------------------------------------

TEST(RingReference, CloseReleasesFd) {
  Ring ring(1);
  CORING_REQUIRE_OP(ring, Op::close);
  TempDir dir;
  Fd file = open_or_throw(dir.file("close"), O_WRONLY | O_CREAT, 0666);

  Sqe& sqe = CORING_GET_SQE(ring);
  prep_close(sqe, file.get());
  sqe.user_data = 0x44444444;
  EXPECT_EQ(op_of(sqe), Op::close);
  EXPECT_EQ(sqe.fd, file.get());
  EXPECT_EQ(ring.submit().value(), 1U);

  const Cqe cqe = ring.copy_cqe().value();
  // The kernel closed it; our Fd must not close the number again.
  if (cqe.res == 0) file.release();
  EXPECT_EQ(value_of(cqe), (CqeValue{0x44444444, 0, 0}));
}

// --- accept/connect/send/recv --------------------------------------------------------

TEST(RingReference, AcceptConnectThenLinkedSendRecvTransferData) {
  Ring ring(16);
  CORING_REQUIRE_OP(ring, Op::send);
  CORING_REQUIRE_OP(ring, Op::recv);
  RingConnection connection;
  ASSERT_NO_FATAL_FAILURE(connect_through_ring(ring, connection));
  if (IsSkipped()) return;

  const std::array<std::uint8_t, 10> sent = {1, 0, 1, 0, 1, 0, 1, 0, 1, 0};
  std::array<std::uint8_t, 5> received = {0, 1, 0, 1, 0};

  Sqe& send = CORING_GET_SQE(ring);
  prep_send(send, connection.client.get(), std::as_bytes(std::span(sent)), 0);
  send.user_data = 0xeeeeeeee;
  link_next(send);
  Sqe& recv = CORING_GET_SQE(ring);
  prep_recv(recv, connection.server.get(), std::as_writable_bytes(std::span(received)), 0);
  recv.user_data = 0xffffffff;
  EXPECT_EQ(ring.submit().value(), 2U);

  EXPECT_EQ(value_of(ring.copy_cqe().value()), (CqeValue{0xeeeeeeee, res_size(sent), 0}));
  const Cqe recv_cqe = ring.copy_cqe().value();
  // SOCK_NONEMPTY (more data left in the socket) depends on timing: leave it out.
  EXPECT_EQ(value_of(recv_cqe),
            (CqeValue{0xffffffff, res_size(received), recv_cqe.flags & cqe_flags::sock_nonempty}));
  EXPECT_EQ(std::vector(received.begin(), received.end()),
            std::vector(sent.begin(), sent.begin() + received.size()));
}

// --- sendmsg/recvmsg -----------------------------------------------------------------

TEST(RingReference, LinkedSendmsgRecvmsgTransferDatagram) {
  Ring ring(2);
  CORING_REQUIRE_OP(ring, Op::sendmsg);
  CORING_REQUIRE_OP(ring, Op::recvmsg);

  sockaddr_in server_address{};
  server_address.sin_family = AF_INET;
  server_address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  Fd server(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_GE(server.get(), 0) << std::strerror(errno);
  const int one = 1;
  ASSERT_EQ(::setsockopt(server.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
  ASSERT_EQ(::setsockopt(server.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
  ASSERT_EQ(::bind(server.get(), reinterpret_cast<const sockaddr*>(&server_address),
                   sizeof(server_address)),
            0)
      << std::strerror(errno);
  // Learn the port the kernel chose.
  socklen_t address_len = sizeof(server_address);
  ASSERT_EQ(::getsockname(server.get(), reinterpret_cast<sockaddr*>(&server_address), &address_len),
            0);
  Fd client(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_GE(client.get(), 0) << std::strerror(errno);

  std::array<char, 128> sent;
  sent.fill(42);
  iovec send_iovec{sent.data(), sent.size()};
  msghdr send_msg{};
  send_msg.msg_name = &server_address;
  send_msg.msg_namelen = sizeof(server_address);
  send_msg.msg_iov = &send_iovec;
  send_msg.msg_iovlen = 1;
  Sqe& sendmsg = CORING_GET_SQE(ring);
  prep_sendmsg(sendmsg, client.get(), &send_msg, 0);
  sendmsg.user_data = 0x11111111;
  link_next(sendmsg);
  EXPECT_EQ(op_of(sendmsg), Op::sendmsg);
  EXPECT_EQ(sendmsg.fd, client.get());

  std::array<char, 128> received{};
  iovec recv_iovec{received.data(), received.size()};
  sockaddr_in sender_address{};
  msghdr recv_msg{};
  recv_msg.msg_name = &sender_address;
  recv_msg.msg_namelen = sizeof(sender_address);
  recv_msg.msg_iov = &recv_iovec;
  recv_msg.msg_iovlen = 1;
  Sqe& recvmsg = CORING_GET_SQE(ring);
  prep_recvmsg(recvmsg, server.get(), &recv_msg, 0);
  recvmsg.user_data = 0x22222222;
  EXPECT_EQ(op_of(recvmsg), Op::recvmsg);
  EXPECT_EQ(recvmsg.fd, server.get());

  EXPECT_EQ(ring.sq_ready(), 2U);
  EXPECT_EQ(ring.submit_and_wait(2).value(), 2U);
  EXPECT_EQ(ring.sq_ready(), 0U);
  EXPECT_EQ(ring.cq_ready(), 2U);

  EXPECT_EQ(value_of(ring.copy_cqe().value()), (CqeValue{0x11111111, res_size(sent), 0}));
  const Cqe recv_cqe = ring.copy_cqe().value();
  // SOCK_NONEMPTY depends on timing: leave it out.
  EXPECT_EQ(value_of(recv_cqe),
            (CqeValue{0x22222222, res_size(received), recv_cqe.flags & cqe_flags::sock_nonempty}));
  EXPECT_EQ(received, sent);
}

// --- timeout (after a relative time) -------------------------------------------------

TEST(RingReference, TimeoutExpiresWithEtimeAfterRelativeTime) {
  Ring ring(1);
  constexpr auto duration = std::chrono::milliseconds(10);
  const KernelTimespec ts{0, std::chrono::nanoseconds(duration).count()};

  const auto started = std::chrono::steady_clock::now();
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_timeout(sqe, &ts, 0, 0);
  sqe.user_data = 0x55555555;
  EXPECT_EQ(op_of(sqe), Op::timeout);
  EXPECT_EQ(ring.submit().value(), 1U);
  const Cqe cqe = ring.copy_cqe().value();
  const auto elapsed = std::chrono::steady_clock::now() - started;

  EXPECT_EQ(value_of(cqe), (CqeValue{0x55555555, -ETIME, 0}));
  // The reference skips when the wait overshoots; a late wake-up on a busy machine is no
  // bug, so we check only what the kernel promises: it never fires early. The timer runs
  // on CLOCK_MONOTONIC, the clock behind steady_clock.
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  EXPECT_GE(duration_cast<microseconds>(elapsed).count(), microseconds(duration).count());
}

// --- timeout (after a number of completions) -----------------------------------------

TEST(RingReference, TimeoutCompletesAfterCountOfCompletions) {
  Ring ring(2);
  const KernelTimespec ts{3, 0};
  constexpr std::uint32_t completions = 1;

  Sqe& timeout = CORING_GET_SQE(ring);
  prep_timeout(timeout, &ts, completions, 0);
  timeout.user_data = 0x66666666;
  EXPECT_EQ(op_of(timeout), Op::timeout);
  EXPECT_EQ(timeout.off, completions);
  Sqe& nop = CORING_GET_SQE(ring);
  prep_nop(nop);
  nop.user_data = 0x77777777;
  EXPECT_EQ(ring.submit().value(), 2U);

  // The NOP's completion is the one the timeout counts; it fires at once, not after 3 s.
  EXPECT_EQ(value_of(ring.copy_cqe().value()), (CqeValue{0x77777777, 0, 0}));
  EXPECT_EQ(value_of(ring.copy_cqe().value()), (CqeValue{0x66666666, 0, 0}));
}

// --- timeout_remove ------------------------------------------------------------------

TEST(RingReference, TimeoutRemoveCancelsPendingTimeout) {
  Ring ring(2);
  CORING_REQUIRE_OP(ring, Op::timeout_remove);
  const KernelTimespec ts{3, 0};

  Sqe& timeout = CORING_GET_SQE(ring);
  prep_timeout(timeout, &ts, 0, 0);
  timeout.user_data = 0x88888888;
  EXPECT_EQ(op_of(timeout), Op::timeout);
  EXPECT_EQ(timeout.user_data, 0x88888888U);

  Sqe& remove = CORING_GET_SQE(ring);
  prep_timeout_remove(remove, 0x88888888, 0);
  remove.user_data = 0x99999999;
  EXPECT_EQ(op_of(remove), Op::timeout_remove);
  EXPECT_EQ(remove.addr, 0x88888888U);
  EXPECT_EQ(remove.user_data, 0x99999999U);

  EXPECT_EQ(ring.submit().value(), 2U);

  // The two CQEs have come in either order across kernel versions.
  const auto [timeout_cqe, remove_cqe] = copy_two_cqes_ordered(ring, 0x88888888);
  EXPECT_EQ(value_of(timeout_cqe), (CqeValue{0x88888888, -ECANCELED, 0}));
  EXPECT_EQ(value_of(remove_cqe), (CqeValue{0x99999999, 0, 0}));
}

// --- accept/connect/recv/link_timeout ------------------------------------------------

TEST(RingReference, LinkTimeoutCancelsRecvThatGetsNoData) {
  Ring ring(16);
  CORING_REQUIRE_OP(ring, Op::recv);
  CORING_REQUIRE_OP(ring, Op::link_timeout);
  RingConnection connection;
  ASSERT_NO_FATAL_FAILURE(connect_through_ring(ring, connection));
  if (IsSkipped()) return;

  // Nobody sends, so the recv can only end by the timeout.
  std::array<std::uint8_t, 5> received = {0, 1, 0, 1, 0};
  Sqe& recv = CORING_GET_SQE(ring);
  prep_recv(recv, connection.server.get(), std::as_writable_bytes(std::span(received)), 0);
  recv.user_data = 0xffffffff;
  link_next(recv);

  const KernelTimespec ts{0, 1'000'000};
  Sqe& link_timeout = CORING_GET_SQE(ring);
  prep_link_timeout(link_timeout, &ts, 0);
  link_timeout.user_data = 0x22222222;

  const std::uint32_t submitted = ring.submit().value();
  ASSERT_EQ(submitted, 2U);
  for (std::uint32_t i = 0; i < submitted; ++i) {
    const Cqe cqe = ring.copy_cqe().value();
    switch (cqe.user_data) {
      case 0xffffffff:
        EXPECT_TRUE(cqe.res == -EINTR || cqe.res == -ECANCELED) << "recv: " << value_of(cqe);
        break;
      case 0x22222222:
        EXPECT_TRUE(cqe.res == -EALREADY || cqe.res == -ETIME) << "timeout: " << value_of(cqe);
        break;
      default:
        ADD_FAILURE() << "unexpected CQE " << value_of(cqe);
    }
  }
}

// --- fallocate -----------------------------------------------------------------------

TEST(RingReference, FallocateExtendsFile) {
  Ring ring(1);
  CORING_REQUIRE_OP(ring, Op::fallocate);
  TempDir dir;
  Fd file = create_file(dir, "fallocate");
  EXPECT_EQ(file_size(file), 0);

  constexpr std::uint64_t length = 65536;
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_fallocate(sqe, file.get(), 0, 0, length);
  sqe.user_data = 0xaaaaaaaa;
  EXPECT_EQ(op_of(sqe), Op::fallocate);
  EXPECT_EQ(sqe.fd, file.get());
  EXPECT_EQ(ring.submit().value(), 1U);

  const Cqe cqe = ring.copy_cqe().value();
  EXPECT_EQ(value_of(cqe), (CqeValue{0xaaaaaaaa, 0, 0})) << std::strerror(cqe.error());
  EXPECT_EQ(file_size(file), static_cast<off_t>(length));
}

// --- statx ---------------------------------------------------------------------------

TEST(RingReference, StatxReportsFileSize) {
  Ring ring(1);
  CORING_REQUIRE_OP(ring, Op::statx);
  TempDir dir;
  Fd dir_fd = open_directory(dir);
  const char* path = "statx";
  Fd file = create_file(dir, path);
  EXPECT_EQ(file_size(file), 0);
  ASSERT_EQ(::write(file.get(), "foobar", 6), 6);

  struct statx result {};
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_statx(sqe, dir_fd.get(), path, 0, STATX_SIZE, &result);
  sqe.user_data = 0xaaaaaaaa;
  EXPECT_EQ(op_of(sqe), Op::statx);
  EXPECT_EQ(sqe.fd, dir_fd.get());
  EXPECT_EQ(ring.submit().value(), 1U);

  const Cqe cqe = ring.copy_cqe().value();
  EXPECT_EQ(value_of(cqe), (CqeValue{0xaaaaaaaa, 0, 0})) << std::strerror(cqe.error());
  EXPECT_EQ(result.stx_mask & STATX_SIZE, unsigned{STATX_SIZE});
  EXPECT_EQ(result.stx_size, 6U);
}

// --- accept/connect/recv/cancel ------------------------------------------------------

TEST(RingReference, AsyncCancelCancelsPendingRecv) {
  Ring ring(16);
  CORING_REQUIRE_OP(ring, Op::recv);
  CORING_REQUIRE_OP(ring, Op::async_cancel);
  RingConnection connection;
  ASSERT_NO_FATAL_FAILURE(connect_through_ring(ring, connection));
  if (IsSkipped()) return;

  std::array<std::uint8_t, 5> received = {0, 1, 0, 1, 0};
  Sqe& recv = CORING_GET_SQE(ring);
  prep_recv(recv, connection.server.get(), std::as_writable_bytes(std::span(received)), 0);
  recv.user_data = 0xffffffff;
  EXPECT_EQ(ring.submit().value(), 1U);

  Sqe& cancel = CORING_GET_SQE(ring);
  prep_cancel(cancel, 0xffffffff, 0);
  cancel.user_data = 0x99999999;
  EXPECT_EQ(op_of(cancel), Op::async_cancel);
  EXPECT_EQ(cancel.addr, 0xffffffffU);
  EXPECT_EQ(cancel.user_data, 0x99999999U);
  EXPECT_EQ(ring.submit().value(), 1U);

  // Either CQE may come first.
  const auto [recv_cqe, cancel_cqe] = copy_two_cqes_ordered(ring, 0xffffffff);
  EXPECT_EQ(value_of(recv_cqe), (CqeValue{0xffffffff, -ECANCELED, 0}));
  EXPECT_EQ(value_of(cancel_cqe), (CqeValue{0x99999999, 0, 0}));
}

// --- register_files_update -----------------------------------------------------------

// Reads /dev/zero through registered slot `index` and checks the buffer came back zeroed.
void expect_fixed_read_of_zeros(Ring& ring, int index) {
  std::array<char, 128> buffer;
  buffer.fill(42);
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_read(sqe, index, std::as_writable_bytes(std::span(buffer)), 0);
  sqe.user_data = 0xcccccccc;
  EXPECT_EQ(op_of(sqe), Op::read);
  use_fixed_file(sqe);
  EXPECT_EQ(ring.submit().value(), 1U);
  EXPECT_EQ(value_of(ring.copy_cqe().value()), (CqeValue{0xcccccccc, res_size(buffer), 0}));
  std::array<char, 128> zeros{};
  EXPECT_EQ(buffer, zeros);
}

TEST(RingReference, RegisterFilesUpdateReplacesAndClearsSlots) {
  Ring ring(1);
  Fd zero = open_or_throw("/dev/zero", O_RDONLY);
  constexpr int index = 0;
  constexpr int second_index = 1;

  // Slot 1 starts sparse.
  std::array<int, 2> fds = {zero.get(), -1};
  const auto registered = ring.register_files(fds);
  ASSERT_TRUE(registered.ok()) << registered.error().message();

  // Replace slot 0 with another fd of /dev/zero; slot 1 stays empty.
  Fd zero2 = open_or_throw("/dev/zero", O_RDONLY);
  fds = {zero2.get(), -1};
  ASSERT_TRUE(ring.register_files_update(0, fds).ok());
  {
    SCOPED_TRACE("slot 0 replaced");
    expect_fixed_read_of_zeros(ring, index);
  }

  // An update starting at slot 1 leaves slot 0 alone.
  fds = {-1, -1};
  ASSERT_TRUE(ring.register_files_update(second_index, std::span<const int>(fds).subspan(1)).ok());
  {
    SCOPED_TRACE("slot 1 updated, slot 0 untouched");
    expect_fixed_read_of_zeros(ring, index);
  }

  // Now clear both: a read through slot 0 finds no file.
  ASSERT_TRUE(ring.register_files_update(0, fds).ok());
  std::array<char, 128> buffer{};
  Sqe& sqe = CORING_GET_SQE(ring);
  prep_read(sqe, index, std::as_writable_bytes(std::span(buffer)), 0);
  sqe.user_data = 0xcccccccc;
  EXPECT_EQ(op_of(sqe), Op::read);
  use_fixed_file(sqe);
  EXPECT_EQ(ring.submit().value(), 1U);
  EXPECT_EQ(ring.copy_cqe().value().error(), EBADF);

  EXPECT_TRUE(ring.unregister_files().ok());
}

// --- shutdown ------------------------------------------------------------------------

TEST(RingReference, ShutdownSucceedsOnListenerAndFailsWithEnotconnOnUnconnectedSocket) {
  Ring ring(16);
  CORING_REQUIRE_OP(ring, Op::shutdown);

  {
    SCOPED_TRACE("bound, listening socket");
    Listener listener = make_listener();
    Sqe& sqe = CORING_GET_SQE(ring);
    prep_shutdown(sqe, listener.fd.get(), SHUT_RD);
    sqe.user_data = 0x445445445;
    EXPECT_EQ(op_of(sqe), Op::shutdown);
    EXPECT_EQ(sqe.fd, listener.fd.get());
    EXPECT_EQ(ring.submit().value(), 1U);
    const Cqe cqe = ring.copy_cqe().value();
    EXPECT_EQ(value_of(cqe), (CqeValue{0x445445445, 0, 0})) << std::strerror(cqe.error());
  }
  {
    SCOPED_TRACE("socket neither bound nor connected");
    Fd socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_GE(socket.get(), 0) << std::strerror(errno);
    Sqe& sqe = CORING_GET_SQE(ring);
    prep_shutdown(sqe, socket.get(), SHUT_RD);
    sqe.user_data = 0x445445445;
    EXPECT_EQ(op_of(sqe), Op::shutdown);
    EXPECT_EQ(sqe.fd, socket.get());
    EXPECT_EQ(ring.submit().value(), 1U);
    const Cqe cqe = ring.copy_cqe().value();
    EXPECT_EQ(cqe.user_data, 0x445445445U);
    EXPECT_EQ(cqe.error(), ENOTCONN);
  }
}

}  // namespace
}  // namespace coring::ring::test
