// send_file and splice: files of 0 B to 10 MiB compared byte for byte at the peer, an
// offset in the middle, a length past the end of the file, a peer that goes away in
// the middle (no hang, the pipe emptied for the next transfer), a stop,
// a direct-descriptor socket, the pipe-less forms, and one direction of a proxy with
// half-close, sink failure and reset.
#include "coring/net/splice.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stop_token>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

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
using ring::test::Fd;
using ring::test::TempDir;
using test::pattern;

constexpr std::size_t mib = std::size_t{1} << 20;

// IORING_OP_SPLICE is probed, not assumed (5.7; the epoll emulation has it).
constexpr const char* no_splice = "IORING_OP_SPLICE needs Linux 5.7";
#define SKIP_WITHOUT_SPLICE(loop) \
  if (!test::kernel_has(loop, ring::Op::splice)) GTEST_SKIP() << no_splice

// A file holding `bytes`, opened for reading.
Fd file_with(const TempDir& dir, const std::vector<std::byte>& bytes) {
  const std::string path = dir.file("data");
  Fd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  EXPECT_GE(out.get(), 0);
  EXPECT_EQ(::write(out.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  Fd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_GE(in.get(), 0);
  return in;
}

// Everything `stream` receives until its peer ends the stream or fails.
Task<std::vector<std::byte>> receive_all(const StreamSocket& stream) {
  std::vector<std::byte> received;
  std::array<std::byte, 65536> buffer{};
  for (;;) {
    const IoResult n = co_await stream.recv(buffer);
    if (n.res <= 0) break;
    received.insert(received.end(), buffer.begin(), buffer.begin() + n.res);
  }
  co_return received;
}

std::pair<StreamSocket, StreamSocket> socket_pair() {
  auto pair = StreamSocket::pair();
  if (!pair) throw std::system_error(pair.error(), "socketpair");
  return std::move(*pair);
}

// Bytes the pipe holds (0 for a clean pipe).
int held_by(const Pipe& pipe) {
  int held = -1;
  ::ioctl(pipe.read_fd(), FIONREAD, &held);
  return held;
}

// A file object as send_file accepts one: fd() and is_direct().
struct PlainFile {
  int descriptor;
  [[nodiscard]] int fd() const noexcept { return descriptor; }
  [[nodiscard]] bool is_direct() const noexcept { return false; }
};

std::vector<std::byte> slice(const std::vector<std::byte>& bytes, std::size_t offset,
                             std::size_t length) {
  return {bytes.begin() + static_cast<std::ptrdiff_t>(offset),
          bytes.begin() + static_cast<std::ptrdiff_t>(offset + length)};
}

// Sends [offset, offset + length) of `file` on one end of a new socket pair — through
// `pipe`, or with the pipe-less Task form when it is null — then shuts that end down;
// returns the result and what the other end received.
std::pair<TransferResult, std::vector<std::byte>> send_and_receive(EventLoop& loop, int file,
                                                                   std::uint64_t offset,
                                                                   std::uint64_t length,
                                                                   Pipe* pipe) {
  auto sockets_a = socket_pair();
  StreamSocket& a = sockets_a.first;
  StreamSocket& b = sockets_a.second;
  auto [sent, received] = loop.run(when_all(
      [&]() -> Task<TransferResult> {
        TransferResult t = pipe != nullptr
                               ? co_await send_file(a, PlainFile{file}, offset, length, *pipe)
                               : co_await send_file(a, FileDescriptor{file}, offset, length);
        co_await a.shutdown();
        co_return t;
      }(),
      receive_all(b)));
  return {sent, std::move(received)};
}

TEST(SendFile, SizesArriveByteForByte) {
  EventLoop loop;
  SKIP_WITHOUT_SPLICE(loop);
  TempDir dir;
  Result<Pipe> pipe = Pipe::open();
  ASSERT_TRUE(pipe) << pipe.error().message();
  for (const std::size_t size :
       {std::size_t{0}, std::size_t{1}, std::size_t{1024}, std::size_t{65537}, 10 * mib}) {
    const std::vector<std::byte> content = pattern(size, static_cast<std::uint32_t>(size));
    const Fd file = file_with(dir, content);
    auto [sent, received] = send_and_receive(loop, file.get(), 0, size, &*pipe);
    EXPECT_TRUE(sent.ok()) << size << ": " << sent.message();
    EXPECT_EQ(sent.bytes, size);
    EXPECT_EQ(received.size(), size);
    EXPECT_TRUE(received == content) << "size " << size;
    EXPECT_EQ(held_by(*pipe), 0);
  }
}

TEST(SendFile, RangeInTheMiddleOverTcp) {
  EventLoop loop;
  SKIP_WITHOUT_SPLICE(loop);
  TempDir dir;
  const std::vector<std::byte> content = pattern(3 * mib + 5);
  const Fd file = file_with(dir, content);
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  auto connected = loop.run(
      when_all(TcpStream::connect(*listener->local_address()),
               [&]() -> Task<Result<TcpStream>> { co_return co_await listener->accept(); }()));
  Result<TcpStream>& client = std::get<0>(connected);
  Result<TcpStream>& server = std::get<1>(connected);
  ASSERT_TRUE(client && server);
  Result<Pipe> pipe = Pipe::open(64 * 1024);  // several rounds of the pipe
  ASSERT_TRUE(pipe);
  const std::size_t offset = 4097;
  const std::size_t length = 2 * mib + 12345;
  auto [sent, received] = loop.run(when_all(
      [&]() -> Task<TransferResult> {
        TransferResult t =
            co_await send_file(*server, FileDescriptor{file.get()}, offset, length, *pipe);
        co_await server->shutdown();
        co_return t;
      }(),
      receive_all(*client)));
  EXPECT_TRUE(sent.ok()) << sent.message();
  EXPECT_EQ(sent.bytes, length);
  EXPECT_TRUE(received == slice(content, offset, length));
  // The file's own position is neither used nor moved.
  EXPECT_EQ(::lseek(file.get(), 0, SEEK_CUR), 0);
  loop.run(listener->close());
}

TEST(SendFile, LengthPastEndOfFileIsFileEnded) {
  EventLoop loop;
  SKIP_WITHOUT_SPLICE(loop);
  TempDir dir;
  const std::vector<std::byte> content = pattern(5000);
  const Fd file = file_with(dir, content);
  Result<Pipe> pipe = Pipe::open();
  ASSERT_TRUE(pipe);
  auto [sent, received] = send_and_receive(loop, file.get(), 1000, 10000, &*pipe);
  EXPECT_FALSE(sent.ok());
  EXPECT_EQ(sent.error(), Errc::file_ended) << sent.message();
  // The message names the file, not the peer.
  EXPECT_NE(sent.message().find("file ended"), std::string::npos) << sent.message();
  EXPECT_EQ(sent.bytes, 4000U);
  EXPECT_TRUE(received == slice(content, 1000, 4000));
}

// The peer reads a little and closes: the transfer ends with EPIPE or ECONNRESET,
// and the pipe, which held bytes on their way, is empty for the next transfer.
TEST(SendFile, PeerClosingMidTransferLeavesPipeClean) {
  EventLoop loop;
  SKIP_WITHOUT_SPLICE(loop);
  TempDir dir;
  const std::vector<std::byte> content = pattern(10 * mib);
  const Fd file = file_with(dir, content);
  Result<Pipe> pipe = Pipe::open();
  ASSERT_TRUE(pipe);
  auto sockets_a = socket_pair();
  StreamSocket& a = sockets_a.first;
  StreamSocket& b = sockets_a.second;
  auto [sent, got] = loop.run(when_all(
      [&]() -> Task<TransferResult> {
        co_return co_await send_file(a, FileDescriptor{file.get()}, 0, content.size(), *pipe);
      }(),
      [&]() -> Task<std::size_t> {
        std::array<std::byte, 65536> buffer{};
        const IoResult n = co_await b.recv(buffer);
        b.reset();
        co_return n.res > 0 ? n.value() : 0;
      }()));
  EXPECT_GT(got, 0U);
  EXPECT_FALSE(sent.ok());
  EXPECT_TRUE(sent.error() == std::errc::broken_pipe || sent.error() == std::errc::connection_reset)
      << sent.message();
  EXPECT_LT(sent.bytes, content.size());
  EXPECT_EQ(held_by(*pipe), 0);
  // The same pipe carries the next file, and nothing of the last one.
  const std::vector<std::byte> next = pattern(3000, 7);
  TempDir other;
  const Fd next_file = file_with(other, next);
  auto [again, received] = send_and_receive(loop, next_file.get(), 0, 3000, &*pipe);
  EXPECT_TRUE(again.ok()) << again.message();
  EXPECT_TRUE(received == next);
}

// A peer that never reads: a stop ends the transfer that waits in io-wq for room in
// the socket; it does not hang, and the pipe is left empty.
TEST(SendFile, StopEndsAStalledTransfer) {
  EventLoop loop;
  SKIP_WITHOUT_SPLICE(loop);
  TempDir dir;
  const std::vector<std::byte> content = pattern(10 * mib);
  const Fd file = file_with(dir, content);
  Result<Pipe> pipe = Pipe::open();
  ASSERT_TRUE(pipe);
  auto sockets_a = socket_pair();  // the second end stays open and never reads
  StreamSocket& a = sockets_a.first;
  std::stop_source stop;
  auto [stopped, ignored] = loop.run(when_all(
      [&]() -> Task<TransferResult> {
        co_return co_await send_file(a, FileDescriptor{file.get()}, 0, content.size(), *pipe)
            .with_stop(stop.get_token());
      }(),
      [&]() -> Task<int> {
        co_await sleep_for(50ms);
        stop.request_stop();
        co_return 0;
      }()));
  EXPECT_EQ(stopped.error(), std::errc::operation_canceled) << stopped.message();
  EXPECT_EQ(stopped.outcome, Outcome::cancelled);
  EXPECT_LT(stopped.bytes, content.size());
  EXPECT_EQ(held_by(*pipe), 0);
}

TEST(SendFile, DirectDescriptorSocket) {
  CORING_SKIP_ON_EPOLL_BACKEND("its direct descriptors are fds of the process");
  EventLoop loop;
  SKIP_WITHOUT_SPLICE(loop);
  auto enabled = enable_direct_descriptors(loop, 16);
  ASSERT_TRUE(enabled) << enabled.error().message();
  auto listener = TcpListener::bind(Address::ipv4_loopback(), {.direct = true});
  ASSERT_TRUE(listener);
  TempDir dir;
  const std::vector<std::byte> content = pattern(300 * 1024 + 3);
  const Fd file = file_with(dir, content);
  Result<Pipe> pipe = Pipe::open();
  ASSERT_TRUE(pipe);
  auto [client, received] = loop.run(when_all(
      [&]() -> Task<TransferResult> {
        auto conn = co_await listener->accept();
        if (!conn || !conn->is_direct()) co_return TransferResult{};
        TransferResult t =
            co_await send_file(*conn, FileDescriptor{file.get()}, 0, content.size(), *pipe);
        co_await conn->close();
        co_return t;
      }(),
      [&]() -> Task<std::vector<std::byte>> {
        auto conn = co_await TcpStream::connect(*listener->local_address());
        if (!conn) co_return std::vector<std::byte>{};
        co_return co_await receive_all(*conn);
      }()));
  EXPECT_TRUE(client.ok()) << client.message();
  EXPECT_EQ(client.bytes, content.size());
  EXPECT_TRUE(received == content);
  loop.run(listener->close());
}

// The forms without a pipe: a small file from memory, a larger one through a pipe of
// the call's own; neither leaves an fd behind (the test main counts them).
TEST(SendFile, WithoutAPipeSmallAndLarge) {
  EventLoop loop;
  SKIP_WITHOUT_SPLICE(loop);
  TempDir dir;
  for (const std::size_t size : {std::size_t{1024}, small_file_bytes, 2 * mib + 1}) {
    const std::vector<std::byte> content = pattern(size, 3);
    const Fd file = file_with(dir, content);
    auto [sent, received] = send_and_receive(loop, file.get(), 0, size, nullptr);
    EXPECT_TRUE(sent.ok()) << size << ": " << sent.message();
    EXPECT_EQ(sent.bytes, size);
    EXPECT_TRUE(received == content) << size;
  }
  // Past the end of the file, from memory too: file_ended.
  const Fd file = file_with(dir, pattern(100));
  const TransferResult short_file = send_and_receive(loop, file.get(), 50, 200, nullptr).first;
  EXPECT_EQ(short_file.error(), Errc::file_ended) << short_file.message();
}

// One direction of a proxy: client -> [in | proxy | out] -> server.
struct ProxyPath {
  std::pair<StreamSocket, StreamSocket> front = socket_pair();  // client, proxy's in
  std::pair<StreamSocket, StreamSocket> back = socket_pair();   // proxy's out, server
};

TEST(Splice, ProxyPassesDataAndHalfClose) {
  EventLoop loop;
  SKIP_WITHOUT_SPLICE(loop);
  ProxyPath path;
  Result<Pipe> pipe = Pipe::open(64 * 1024);
  ASSERT_TRUE(pipe);
  const std::vector<std::byte> content = pattern(1 * mib + 17);
  auto [summary, sent, received] = loop.run(when_all(
      [&]() -> Task<SpliceSummary> {
        SpliceSummary s = co_await splice(path.front.second, path.back.first, *pipe);
        // The client shut down its writing: pass that on.
        if (s.source_ended && !s.error) co_await path.back.first.shutdown();
        co_return s;
      }(),
      [&]() -> Task<TransferResult> {
        TransferResult t = co_await path.front.first.send_all(content);
        co_await path.front.first.shutdown();
        co_return t;
      }(),
      receive_all(path.back.second)));
  EXPECT_TRUE(sent.ok());
  EXPECT_FALSE(summary.error) << summary.error.message();
  EXPECT_TRUE(summary.source_ended);
  EXPECT_EQ(summary.side, SpliceSide::none);
  EXPECT_EQ(summary.bytes, content.size());
  EXPECT_TRUE(received == content);
}

TEST(Splice, ProxyReportsTheSinkFailing) {
  EventLoop loop;
  SKIP_WITHOUT_SPLICE(loop);
  ProxyPath path;
  Result<Pipe> pipe = Pipe::open();
  ASSERT_TRUE(pipe);
  path.back.second.reset();  // the server is gone
  auto [summary, sent] = loop.run(when_all(
      [&]() -> Task<SpliceSummary> {
        co_return co_await splice(path.front.second, path.back.first, *pipe);
      }(),
      [&]() -> Task<TransferResult> {
        co_return co_await path.front.first.send_all(test::as_bytes("hello"));
      }()));
  EXPECT_TRUE(sent.ok());
  EXPECT_EQ(summary.side, SpliceSide::sink);
  EXPECT_TRUE(summary.error == std::errc::broken_pipe ||
              summary.error == std::errc::connection_reset)
      << summary.error.message();
  EXPECT_EQ(held_by(*pipe), 0);
}

TEST(Splice, ProxyReportsTheSourceReset) {
  EventLoop loop;
  SKIP_WITHOUT_SPLICE(loop);
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  auto connected = loop.run(
      when_all(TcpStream::connect(*listener->local_address()),
               [&]() -> Task<Result<TcpStream>> { co_return co_await listener->accept(); }()));
  Result<TcpStream>& client = std::get<0>(connected);
  Result<TcpStream>& in = std::get<1>(connected);
  ASSERT_TRUE(client && in);
  auto sockets_out = socket_pair();
  StreamSocket& out = sockets_out.first;
  StreamSocket& server = sockets_out.second;
  Result<Pipe> pipe = Pipe::open();
  ASSERT_TRUE(pipe);
  auto [summary, received] = loop.run(when_all(
      [&]() -> Task<SpliceSummary> { co_return co_await splice(*in, out, *pipe); }(),
      [&]() -> Task<std::size_t> {
        co_await client->send_all(test::as_bytes("before the reset"));
        std::array<std::byte, 64> buffer{};
        const IoResult n = co_await server.recv(buffer);
        // SO_LINGER with a zero timeout: close(2) sends RST instead of FIN.
        const linger abort_on_close{1, 0};
        ::setsockopt(client->fd(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
        client->reset();
        co_return n.res > 0 ? n.value() : 0;
      }()));
  EXPECT_EQ(received, 16U);
  EXPECT_EQ(summary.side, SpliceSide::source);
  EXPECT_EQ(summary.error, std::errc::connection_reset) << summary.error.message();
  EXPECT_FALSE(summary.source_ended);
  EXPECT_EQ(summary.bytes, 16U);
  loop.run(listener->close());
}

// A stop ends a proxy direction that waits for a quiet peer (a poll, not a worker).
TEST(Splice, StopEndsAQuietDirection) {
  EventLoop loop;
  SKIP_WITHOUT_SPLICE(loop);
  ProxyPath path;
  Result<Pipe> pipe = Pipe::open();
  ASSERT_TRUE(pipe);
  std::stop_source stop;
  auto [summary, ignored] = loop.run(when_all(
      [&]() -> Task<SpliceSummary> {
        co_return co_await splice(path.front.second, path.back.first, *pipe)
            .with_stop(stop.get_token());
      }(),
      [&]() -> Task<int> {
        co_await sleep_for(20ms);
        stop.request_stop();
        co_return 0;
      }()));
  EXPECT_EQ(summary.error, std::errc::operation_canceled) << summary.error.message();
  EXPECT_EQ(summary.outcome, Outcome::cancelled);
  EXPECT_EQ(summary.bytes, 0U);
}

}  // namespace
}  // namespace coring::net
