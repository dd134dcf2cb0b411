// Provided-buffer receive: single receives into a BufferPool, and the multishot
// RecvStream — running the ring dry (ENOBUFS) with every byte intact and in order, with
// and without incremental consumption; backpressure; close and loop destruction giving
// every buffer back.
#include "coring/net/buffer_pool.hpp"

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <vector>

#include "coring/net/listener.hpp"
#include "coring/net/recv_stream.hpp"
#include "coring/net/stream.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"
#include "net_support.hpp"

namespace coring::net {
namespace {

using namespace std::chrono_literals;
using test::as_bytes;
using test::pattern;
using test::to_string;

// Skips the test if the kernel lacks multishot recv (6.0).
#define REQUIRE_RECV_MULTISHOT(loop)                                                    \
  do {                                                                                  \
    if (!test::kernel_has(loop, ring::Op::send_zc)) {                                   \
      GTEST_SKIP() << "kernel lacks multishot recv (6.0; probed through SEND_ZC, 6.0)"; \
    }                                                                                   \
  } while (0)

std::pair<StreamSocket, StreamSocket> stream_pair() {
  auto pair = StreamSocket::pair();
  if (!pair) throw std::system_error(pair.error(), "socketpair");
  return std::move(*pair);
}

TEST(BufferPool, RecvIntoAPoolBufferAndGiveItBack) {
  EventLoop loop;
  BufferPool pool(loop, {.buffer_size = 1024, .count = 8});
  auto a_b = stream_pair();
  auto& a = a_b.first;
  auto& b = a_b.second;
  auto [text, held_while_leased, eof_empty] =
      loop.run([&]() -> Task<std::tuple<std::string, std::uint32_t, bool>> {
        co_await a.send_all(as_bytes("provided"));
        Result<BufferLease> lease = co_await b.recv(pool);
        if (!lease) co_return std::tuple{"recv: " + lease.error().message(), 0U, false};
        std::string got = to_string(lease->data());
        const std::uint32_t held = pool.held();
        lease->reset();
        a.reset();
        Result<BufferLease> eof = co_await b.recv(pool);
        co_return std::tuple{got, held, eof && eof->empty()};
      }());
  EXPECT_EQ(text, "provided");
  EXPECT_EQ(held_while_leased, 1U);
  EXPECT_TRUE(eof_empty);
  EXPECT_EQ(pool.held(), 0U);
}

TEST(BufferPool, SingleRecvReportsAnEmptyPool) {
  EventLoop loop;
  BufferPool pool(loop, {.buffer_size = 64, .count = 1, .incremental = false});
  auto a_b = stream_pair();
  auto& a = a_b.first;
  auto& b = a_b.second;
  auto second = loop.run([&]() -> Task<Result<BufferLease>> {
    co_await a.send_all(as_bytes(std::string(100, 'x')));
    Result<BufferLease> first = co_await b.recv(pool);  // takes the only buffer
    if (!first) co_return fail(first.error());
    co_return co_await b.recv(pool);
  }());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), std::errc::no_buffer_space) << second.error().message();
  EXPECT_EQ(pool.held(), 0U);
}

class RecvStreamDry : public testing::TestWithParam<bool> {};

// A consumer that holds every buffer for a while runs the ring dry again and again; the
// stream re-arms when buffers come back and the bytes arrive whole and in order.
TEST_P(RecvStreamDry, RunsDryAndLosesNothing) {
  const bool incremental = GetParam();
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 1024, .count = 4, .incremental = incremental});
  if (incremental && !pool.incremental())
    GTEST_SKIP() << "kernel lacks incremental buffer rings (6.12)";
  EXPECT_EQ(pool.incremental(), incremental);
  auto a_b = stream_pair();
  auto& a = a_b.first;
  auto& b = a_b.second;
  const auto sent = pattern(96 * 1024, 11);
  std::vector<std::byte> received;
  std::uint64_t starvations = 0, arms = 0;
  loop.run(when_all(
      [&]() -> Task<void> {
        co_await a.send_all(sent);
        co_await a.shutdown(SHUT_WR);
      }(),
      [&]() -> Task<void> {
        RecvStream chunks = b.recv_stream(pool, {.bound = 16});
        std::vector<BufferLease> held;
        for (;;) {
          Result<BufferLease> chunk = co_await chunks.next();
          if (!chunk) {
            ADD_FAILURE() << "next: " << chunk.error().message();
            break;
          }
          if (chunk->empty()) break;
          held.push_back(std::move(*chunk));
          if (held.size() < pool.count()) continue;
          co_await sleep_for(1ms);  // hold every buffer: the kernel runs out meanwhile
          for (auto& lease : held)
            received.insert(received.end(), lease.data().begin(), lease.data().end());
          held.clear();
        }
        for (auto& lease : held)
          received.insert(received.end(), lease.data().begin(), lease.data().end());
        held.clear();
        starvations = chunks.starvations();
        arms = chunks.arms();
        co_await chunks.close();
      }()));
  EXPECT_EQ(received.size(), sent.size());
  EXPECT_TRUE(received == sent) << "bytes lost, repeated or reordered";
  EXPECT_GE(starvations, 1U) << "the ring never ran dry: the test did not test it";
  EXPECT_GT(arms, starvations);
  EXPECT_EQ(pool.held(), 0U);
}

INSTANTIATE_TEST_SUITE_P(Consumption, RecvStreamDry, testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& param) {
                           return param.param ? "Incremental" : "WholeBuffers";
                         });

TEST(RecvStream, PausesWhenTheConsumerFallsBehind) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 512, .count = 128, .incremental = false});
  auto a_b = stream_pair();
  auto& a = a_b.first;
  auto& b = a_b.second;
  const auto sent = pattern(32 * 1024, 5);
  std::vector<std::byte> received;
  std::uint64_t pauses = 0;
  loop.run(when_all(
      [&]() -> Task<void> {
        for (std::size_t offset = 0; offset < sent.size(); offset += 512) {
          co_await a.send_all(std::span(sent).subspan(offset, 512));
          co_await sleep_for(0ms);
        }
        co_await a.shutdown(SHUT_WR);
      }(),
      [&]() -> Task<void> {
        RecvStream chunks = b.recv_stream(pool, {.bound = 2});
        co_await sleep_for(20ms);  // everything arrives meanwhile; nobody consumes
        for (;;) {
          Result<BufferLease> chunk = co_await chunks.next();
          if (!chunk || chunk->empty()) break;
          received.insert(received.end(), chunk->data().begin(), chunk->data().end());
        }
        pauses = chunks.pauses();
        co_await chunks.close();
      }()));
  EXPECT_TRUE(received == sent);
  EXPECT_GE(pauses, 1U);
  EXPECT_EQ(pool.held(), 0U);
}

// Two streams on one incremental pool whose single buffer the kernel fills piece by
// piece for both: each consumer gets its own bytes even when the second takes its chunk
// before the first (the pieces are placed in the order the kernel posted them).
TEST(RecvStream, StreamsSharingAnIncrementalBufferEachGetTheirOwnBytes) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 4096, .count = 1, .incremental = true});
  if (!pool.incremental()) GTEST_SKIP() << "kernel lacks incremental buffer rings (6.12)";
  auto first = stream_pair();
  auto second = stream_pair();
  auto [got_first, got_second] = loop.run([&]() -> Task<std::pair<std::string, std::string>> {
    RecvStream one = first.second.recv_stream(pool);
    RecvStream two = second.second.recv_stream(pool);
    one.start();
    two.start();
    co_await first.first.send_all(as_bytes("first stream's bytes"));
    for (int turns = 0; turns < 100 && one.size() == 0; ++turns) co_await sleep_for(1ms);
    co_await second.first.send_all(as_bytes("SECOND"));
    for (int turns = 0; turns < 100 && two.size() == 0; ++turns) co_await sleep_for(1ms);
    // The later chunk is taken first.
    Result<BufferLease> b = co_await two.next();
    Result<BufferLease> a = co_await one.next();
    std::pair<std::string, std::string> out{a ? to_string(a->data()) : a.error().message(),
                                            b ? to_string(b->data()) : b.error().message()};
    if (a) a->reset();
    if (b) b->reset();
    co_await one.close();
    co_await two.close();
    co_return out;
  }());
  EXPECT_EQ(got_first, "first stream's bytes");
  EXPECT_EQ(got_second, "SECOND");
  EXPECT_EQ(pool.held(), 0U);
}

TEST(RecvStream, CloseGivesUnconsumedBuffersBack) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 256, .count = 16, .incremental = false});
  auto a_b = stream_pair();
  auto& a = a_b.first;
  auto& b = a_b.second;
  auto [queued, after_close] = loop.run([&]() -> Task<std::pair<std::uint32_t, bool>> {
    RecvStream chunks = b.recv_stream(pool);
    co_await a.send_all(as_bytes("first"));
    auto first = co_await chunks.next();  // arms; the data below then queues
    if (!first || first->empty()) co_return std::pair{0U, false};
    for (int i = 0; i < 4; ++i) {
      co_await a.send_all(as_bytes(std::string(200, 'a')));
      co_await sleep_for(1ms);
    }
    const std::uint32_t waiting = chunks.size();
    co_await chunks.close();
    auto next = co_await chunks.next();
    co_return std::pair{waiting, !next && next.error() == std::errc::operation_canceled};
  }());
  EXPECT_GE(queued, 1U);
  EXPECT_TRUE(after_close);
  EXPECT_EQ(pool.held(), 0U);
}

TEST(RecvStream, ReportsEndOfStreamAndResetAsValues) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  auto listener = TcpListener::bind(Address::ipv4_loopback());
  ASSERT_TRUE(listener);
  BufferPool pool(loop, {.buffer_size = 256, .count = 8});
  auto error = loop.run([&]() -> Task<std::error_code> {
    auto [client, server] = co_await when_all(
        TcpStream::connect(*listener->local_address()),
        [](Listener& l) -> Task<Result<TcpStream>> { co_return co_await l.accept(); }(*listener));
    RecvStream chunks = server->recv_stream(pool);
    co_await client->send_all(as_bytes("bye"));
    auto chunk = co_await chunks.next();
    if (!chunk || to_string(chunk->data()) != "bye")
      co_return std::make_error_code(std::errc::protocol_error);
    const linger abort_on_close{1, 0};
    ::setsockopt(client->fd(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
    client->reset();
    auto reset = co_await chunks.next();
    auto again = co_await chunks.next();  // the stream stays ended
    if (reset || again || again.error() != reset.error())
      co_return std::make_error_code(std::errc::protocol_error);
    co_return reset.error();
  }());
  EXPECT_EQ(error, std::errc::connection_reset) << error.message();
  loop.run(listener->close());
}

TEST(RecvStream, LoopDestructionDrainsAnArmedStream) {
  auto a_b = stream_pair();
  auto& a = a_b.first;
  auto& b = a_b.second;
  bool got_chunk = false;
  bool frame_destroyed = false;
  // Sets its flag when the coroutine frame holding it is destroyed (not when moved from).
  struct OnDestroy {
    explicit OnDestroy(bool* flag) : flag_(flag) {}
    OnDestroy(OnDestroy&& other) noexcept : flag_(std::exchange(other.flag_, nullptr)) {}
    ~OnDestroy() {
      if (flag_ != nullptr) *flag_ = true;
    }
    bool* flag_;
  };
  {
    EventLoop loop;
    REQUIRE_RECV_MULTISHOT(loop);
    loop.spawn([](StreamSocket& s, EventLoop& l, bool& got, OnDestroy) -> Task<void> {
      BufferPool pool(l, {.buffer_size = 256, .count = 4});  // first: destroyed last
      RecvStream chunks = s.recv_stream(pool);
      for (;;) {
        auto chunk = co_await chunks.next();  // the second never comes: the loop goes away
        if (!chunk || chunk->empty()) break;
        got = true;
      }
      co_await chunks.close();
    }(b, loop, got_chunk, OnDestroy(&frame_destroyed)));
    loop.run([&]() -> Task<void> { co_await a.send_all(as_bytes("one")); }());
    loop.run(test::sleep_task(5ms));
    EXPECT_TRUE(got_chunk);
    EXPECT_FALSE(frame_destroyed);
  }  // the stream's request is cancelled and drained, then the frame destroyed
  EXPECT_TRUE(frame_destroyed);
  EXPECT_TRUE(b.is_open());
}

}  // namespace
}  // namespace coring::net
