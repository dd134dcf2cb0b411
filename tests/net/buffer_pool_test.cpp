// Provided-buffer receive: single receives into a BufferPool, and the multishot
// RecvStream — running the ring dry (ENOBUFS) with every byte intact and in order, with
// and without incremental consumption; backpressure; close and loop destruction giving
// every buffer back.
#include "coring/net/buffer_pool.hpp"

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
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

// Streams that found the pool empty wait in its list. A buffer that comes back re-arms
// one of them, the one that waited longest: re-arming them all would cost a request per
// waiting stream, every one but the first ending in ENOBUFS again.
TEST(RecvStream, AReturnedBufferReArmsOneStarvedStream) {
  constexpr std::size_t streams = 20;
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 64, .count = 1, .incremental = false});
  auto holder = stream_pair();
  std::vector<std::pair<StreamSocket, StreamSocket>> pairs;
  for (std::size_t i = 0; i < streams; ++i) {
    pairs.push_back(stream_pair());
    ASSERT_EQ(::send(pairs.back().second.fd(), "x", 1, 0), 1);
  }
  ASSERT_EQ(::send(holder.second.fd(), "h", 1, 0), 1);
  std::uint64_t starved = 0, arms_before = 0, arms_after = 0;
  std::vector<std::uint32_t> got;
  loop.run([&]() -> Task<void> {
    Result<BufferLease> held = co_await holder.first.recv(pool);  // the only buffer
    if (!held || held->empty()) {
      ADD_FAILURE() << "the holder's recv did not take the buffer";
      co_return;
    }
    std::vector<std::unique_ptr<RecvStream>> chunks;
    for (auto& pair : pairs) {
      chunks.push_back(std::make_unique<RecvStream>(pair.first.fd(), false, pool));
      chunks.back()->start();  // each finds the pool empty, in this order
    }
    co_await sleep_for(20ms);
    for (auto& stream : chunks) {
      starved += stream->starvations();
      arms_before += stream->arms();
    }
    held->reset();  // the buffer comes back
    co_await sleep_for(20ms);
    for (auto& stream : chunks) {
      arms_after += stream->arms();
      got.push_back(stream->size());
    }
    for (auto& stream : chunks) co_await stream->close();
  }());
  ASSERT_EQ(starved, streams) << "each stream should have found the pool empty once";
  EXPECT_EQ(arms_after - arms_before, 1U) << "one returned buffer re-armed more than one stream";
  ASSERT_EQ(got.size(), streams);
  EXPECT_EQ(got[0], 1U) << "the stream that waited longest did not get the buffer";
  for (std::size_t i = 1; i < streams; ++i) EXPECT_EQ(got[i], 0U) << "stream " << i;
  EXPECT_EQ(pool.held(), 0U);
}

// A request submitted before the woken stream's re-arm takes the buffer first; the
// woken stream finds the pool empty again and keeps its place at the head of the list,
// so the next buffer back is still its own.
TEST(RecvStream, AStarvedStreamThatLosesItsBufferKeepsItsPlace) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 64, .count = 1, .incremental = false});
  auto holder = stream_pair();
  auto oldest = stream_pair();
  auto newer = stream_pair();
  auto other = stream_pair();
  for (auto* pair : {&holder, &oldest, &newer, &other}) {
    ASSERT_EQ(::send(pair->second.fd(), "x", 1, 0), 1);
  }
  std::uint64_t oldest_starved = 0, newer_starved = 0;
  std::uint32_t other_got = 0, oldest_got = 0, newer_got = 0;
  loop.run([&]() -> Task<void> {
    Result<BufferLease> held = co_await holder.first.recv(pool);
    if (!held || held->empty()) {
      ADD_FAILURE() << "the holder's recv did not take the buffer";
      co_return;
    }
    RecvStream a = oldest.first.recv_stream(pool);
    RecvStream b = newer.first.recv_stream(pool);
    a.start();
    b.start();
    co_await sleep_for(20ms);  // both starved, a first
    RecvStream c = other.first.recv_stream(pool);
    c.start();      // submitted ahead of a's re-arm:
    held->reset();  // the buffer wakes a, but c takes it
    co_await sleep_for(20ms);
    oldest_starved = a.starvations();
    newer_starved = b.starvations();
    other_got = c.size();
    {
      Result<BufferLease> taken = co_await c.next();  // dropped: the buffer is back
    }
    co_await sleep_for(20ms);
    oldest_got = a.size();
    newer_got = b.size();
    for (RecvStream* stream : {&a, &b, &c}) co_await stream->close();
  }());
  EXPECT_EQ(other_got, 1U) << "the request submitted first did not take the buffer";
  EXPECT_EQ(oldest_starved, 2U) << "the woken stream did not find the pool empty again";
  EXPECT_EQ(newer_starved, 1U);
  EXPECT_EQ(oldest_got, 1U) << "the stream that waited longest lost its place";
  EXPECT_EQ(newer_got, 0U);
  EXPECT_EQ(pool.held(), 0U);
}

// A stream whose peer is idle starves too: with the ring empty, the kernel ends its
// request with ENOBUFS before it looks for data. Woken first (it waited longest), it
// re-arms, and the kernel, finding no data, puts the buffer back and waits without a
// CQE. The wake must still reach the next starved stream, whose byte is waiting.
TEST(RecvStream, AnIdleStarvedStreamPassesItsWakeOn) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 64, .count = 1, .incremental = false});
  auto holder = stream_pair();
  auto idle = stream_pair();
  auto busy = stream_pair();
  ASSERT_EQ(::send(holder.second.fd(), "h", 1, 0), 1);
  ASSERT_EQ(::send(busy.second.fd(), "b", 1, 0), 1);
  std::uint64_t idle_starved = 0, busy_starved = 0, idle_arms = 0;
  std::string busy_got;
  loop.run([&]() -> Task<void> {
    Result<BufferLease> held = co_await holder.first.recv(pool);
    if (!held || held->empty()) {
      ADD_FAILURE() << "the holder's recv did not take the buffer";
      co_return;
    }
    RecvStream a = idle.first.recv_stream(pool);
    RecvStream b = busy.first.recv_stream(pool);
    a.start();
    b.start();
    co_await sleep_for(20ms);
    idle_starved = a.starvations();
    busy_starved = b.starvations();
    held->reset();  // wakes a, which waits for data without taking the buffer
    co_await sleep_for(50ms);
    idle_arms = a.arms();
    if (b.size() > 0) {
      Result<BufferLease> chunk = co_await b.next();
      if (chunk) busy_got = to_string(chunk->data());
    }
    co_await a.close();
    co_await b.close();
  }());
  ASSERT_EQ(idle_starved, 1U) << "the idle stream should have found the pool empty";
  ASSERT_EQ(busy_starved, 1U);
  EXPECT_EQ(idle_arms, 2U) << "the idle stream, which waited longest, was not woken first";
  EXPECT_EQ(busy_got, "b") << "the wake stayed with a stream that waits for data";
  EXPECT_EQ(pool.held(), 0U);
}

// Closing or destroying a starved stream that still has chunks queued: the chunks'
// buffers go back to the pool, which must not wake the stream being closed (its request
// would outlive close(), or the stream itself).
TEST(RecvStream, ClosingAStarvedStreamWithQueuedChunksDoesNotReArmIt) {
  for (const bool destroy : {false, true}) {
    SCOPED_TRACE(destroy ? "destroyed" : "closed");
    EventLoop loop;
    REQUIRE_RECV_MULTISHOT(loop);
    BufferPool pool(loop, {.buffer_size = 64, .count = 2, .incremental = false});
    auto pair = stream_pair();
    const std::string data(200, 'x');
    ASSERT_EQ(::send(pair.second.fd(), data.data(), data.size(), 0), 200);
    std::uint64_t starved = 0, arms_before = 0, arms_after = 0;
    std::uint32_t queued = 0, queued_after = 0, held_after = 0;
    bool canceled_after = false;
    loop.run([&]() -> Task<void> {
      auto stream =
          std::make_unique<RecvStream>(pair.first.fd(), false, pool, RecvStreamOptions{.bound = 4});
      stream->start();
      co_await sleep_for(20ms);  // both buffers queued, then ENOBUFS
      queued = stream->size();
      starved = stream->starvations();
      arms_before = stream->arms();
      if (destroy) {
        stream.reset();  // allowed: starved, so not in flight
      } else {
        co_await stream->close();
        arms_after = stream->arms();
      }
      pair.second.reset();  // a stray request would end now, with the stream's bytes
      co_await sleep_for(20ms);
      held_after = pool.held();
      if (!destroy) {
        queued_after = stream->size();
        Result<BufferLease> next = co_await stream->next();
        canceled_after = !next && next.error() == std::errc::operation_canceled;
      }
    }());
    ASSERT_EQ(queued, 2U);
    ASSERT_EQ(starved, 1U);
    EXPECT_EQ(held_after, 0U) << "a request of the stream took buffers after it was gone";
    if (!destroy) {
      EXPECT_EQ(arms_after, arms_before) << "close() re-armed the stream";
      EXPECT_EQ(queued_after, 0U);
      EXPECT_TRUE(canceled_after) << "next() after close() did not report ECANCELED";
    }
  }
}

// The stream woken for a returned buffer may not take it: its peer has ended the stream
// (or an error ends its request, or it is closed). The wake then passes to the next
// stream in the list, which would otherwise wait for another buffer with this one lying
// unused in the ring. With incremental consumption, a stream that takes only a piece of
// the buffer passes it on as well: the rest of it can serve the next.
class RecvStreamWake : public testing::TestWithParam<bool> {};

TEST_P(RecvStreamWake, PassesToTheNextStreamIfUnusedOrNotUsedUp) {
  const bool incremental = GetParam();
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  // Incremental: the holder's 64 bytes fill the buffer, so the kernel is done with it.
  BufferPool pool(loop, {.buffer_size = 64, .count = 1, .incremental = incremental});
  if (incremental && !pool.incremental())
    GTEST_SKIP() << "kernel lacks incremental buffer rings (6.12)";
  auto holder = stream_pair();
  auto ended = stream_pair();    // its peer is gone: end of stream, no byte
  auto closing = stream_pair();  // its consumer closes it while it waits
  auto first = stream_pair();    // one byte each
  auto second = stream_pair();
  ASSERT_EQ(::send(holder.second.fd(), std::string(64, 'h').data(), 64, 0), 64);
  ASSERT_EQ(::send(closing.second.fd(), "c", 1, 0), 1);
  ASSERT_EQ(::send(first.second.fd(), "1", 1, 0), 1);
  ASSERT_EQ(::send(second.second.fd(), "2", 1, 0), 1);
  ended.second.reset();
  std::uint64_t starved = 0;
  bool ended_saw_eof = false;
  std::string got_first, got_second;
  loop.run([&]() -> Task<void> {
    Result<BufferLease> held = co_await holder.first.recv(pool);
    if (!held || held->size() != 64) {
      ADD_FAILURE() << "the holder's recv did not take the whole buffer";
      co_return;
    }
    RecvStream a = ended.first.recv_stream(pool);
    RecvStream b = closing.first.recv_stream(pool);
    RecvStream c = first.first.recv_stream(pool);
    RecvStream d = second.first.recv_stream(pool);
    for (RecvStream* stream : {&a, &b, &c, &d}) stream->start();
    co_await sleep_for(20ms);
    for (RecvStream* stream : {&a, &b, &c, &d}) starved += stream->starvations();
    co_await b.close();  // leaves the list before any buffer is back
    held->reset();       // wakes a: it ends without the buffer and passes the wake on
    co_await sleep_for(20ms);
    Result<BufferLease> eof = co_await a.next();
    ended_saw_eof = eof && eof->empty();
    if (c.size() > 0) {
      Result<BufferLease> chunk = co_await c.next();
      if (chunk) got_first = to_string(chunk->data());
    }
    if (d.size() > 0) {
      Result<BufferLease> chunk = co_await d.next();
      if (chunk) got_second = to_string(chunk->data());
    }
    for (RecvStream* stream : {&a, &b, &c, &d}) co_await stream->close();
  }());
  ASSERT_EQ(starved, 4U) << "each stream should have found the pool empty once";
  EXPECT_TRUE(ended_saw_eof);
  EXPECT_EQ(got_first, "1") << "the wake did not pass on from the stream that ended";
  if (incremental) {
    EXPECT_EQ(got_second, "2") << "the rest of the buffer did not pass on to the next stream";
  } else {
    EXPECT_EQ(got_second, "") << "a whole buffer went to two streams";
  }
  EXPECT_EQ(pool.held(), 0U);
}

INSTANTIATE_TEST_SUITE_P(Consumption, RecvStreamWake, testing::Values(false, true),
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

// An idle stream — one per connection a server holds — costs no queue: none while it
// waits for its first chunk, and a few slots after a chunk a consumer took at once, not
// the 64 (bound + slack) a stream of bound 32 may need under a burst.
TEST(RecvStream, AnIdleStreamHoldsAFewQueueSlotsAtMost) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 256, .count = 16, .incremental = false});
  auto a_b = stream_pair();
  auto [before, after, burst] =
      loop.run([&]() -> Task<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>> {
        RecvStream chunks = a_b.second.recv_stream(pool, {.bound = 32});
        chunks.start();
        co_await sleep_for(1ms);  // armed, nothing to receive
        const std::uint32_t idle = chunks.capacity();
        co_await a_b.first.send_all(as_bytes("x"));
        (void)co_await chunks.next();
        co_await sleep_for(1ms);
        const std::uint32_t after_one = chunks.capacity();
        for (int i = 0; i < 12; ++i) {  // a burst nobody consumes: the queue grows for it
          co_await a_b.first.send_all(as_bytes(std::string(200, 'b')));
          co_await sleep_for(1ms);
        }
        const std::uint32_t grown = chunks.capacity();
        co_await chunks.close();
        co_return std::tuple{idle, after_one, grown};
      }());
  EXPECT_EQ(before, 0U);
  EXPECT_GE(after, 1U);
  EXPECT_LE(after, 4U);
  EXPECT_GE(burst, 12U);
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

// A bound out of range is refused as Multishot refuses it, not quietly changed, and the
// refused stream leaves the pool as it was.
TEST(RecvStream, ABoundOutOfRangeThrowsInvalidArgument) {
  EventLoop loop;
  BufferPool pool(loop, {.buffer_size = 256, .count = 16, .incremental = false});
  auto a_b = stream_pair();
  for (const std::uint32_t bound : {0U, (1U << 20) + 1}) {
    try {
      RecvStream chunks = a_b.second.recv_stream(pool, {.bound = bound});
      ADD_FAILURE() << "bound " << bound << " was accepted";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::invalid_argument) << bound;
    }
  }
  RecvStream chunks = a_b.second.recv_stream(pool, {.bound = 1});
  EXPECT_EQ(chunks.size(), 0U);
  EXPECT_EQ(pool.held(), 0U);
}

// The stop token, like Multishot's: a stop on the loop's thread ends the stream at once —
// also a starved one, whose request is not in flight and whose consumer waits for a
// buffer that may never come — and the buffers it holds go back.
TEST(RecvStream, AStopEndsAnArmedAndAStarvedStream) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 64, .count = 1, .incremental = false});
  auto armed = stream_pair();
  auto starved = stream_pair();
  auto holder = stream_pair();
  ASSERT_EQ(::send(holder.second.fd(), "h", 1, 0), 1);
  ASSERT_EQ(::send(starved.second.fd(), "s", 1, 0), 1);
  std::stop_source stop;
  auto [armed_error, starved_error, starvations] =
      loop.run([&]() -> Task<std::tuple<std::error_code, std::error_code, std::uint64_t>> {
        Result<BufferLease> held = co_await holder.first.recv(pool);  // the only buffer
        RecvStream waiting = starved.first.recv_stream(pool, {}, stop.get_token());
        RecvStream idle = armed.first.recv_stream(pool, {}, stop.get_token());
        auto next = [](RecvStream& s) -> Task<Result<BufferLease>> { co_return co_await s.next(); };
        auto [a, b, stopped] =
            co_await when_all(next(idle),     // armed: its peer sends nothing
                              next(waiting),  // starved: the holder has the only buffer
                              [](std::stop_source& source) -> Task<bool> {
                                co_await sleep_for(20ms);  // both consumers wait
                                co_return source.request_stop();
                              }(stop));
        if (!stopped) ADD_FAILURE() << "the stop was requested already";
        const std::uint64_t starved_count = waiting.starvations();
        co_await waiting.close();  // closed already: nothing to wait for
        co_await idle.close();
        co_return std::tuple{a ? std::error_code{} : a.error(), b ? std::error_code{} : b.error(),
                             starved_count};
      }());
  EXPECT_EQ(armed_error, std::errc::operation_canceled) << armed_error.message();
  EXPECT_EQ(starved_error, std::errc::operation_canceled) << starved_error.message();
  EXPECT_EQ(starvations, 1U);
  EXPECT_EQ(pool.held(), 0U);
}

// From another thread, a stop cancels the request through the loop.
TEST(RecvStream, AStopFromAnotherThreadEndsTheStream) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 64, .count = 4});
  auto pair = stream_pair();
  std::stop_source stop;
  std::thread stopper;
  const std::error_code error = loop.run([&]() -> Task<std::error_code> {
    RecvStream chunks = pair.first.recv_stream(pool, {}, stop.get_token());
    chunks.start();
    stopper = std::thread([&stop] {
      std::this_thread::sleep_for(20ms);
      stop.request_stop();
    });
    Result<BufferLease> chunk = co_await chunks.next();
    co_return chunk ? std::error_code{} : chunk.error();
  }());
  stopper.join();
  EXPECT_EQ(error, std::errc::operation_canceled) << error.message();
  EXPECT_EQ(pool.held(), 0U);
}

// From another thread too, a stop ends a starved stream whose consumer waits: the
// consumer hears ECANCELED at the loop's next turn, not when a buffer comes back.
TEST(RecvStream, AStopFromAnotherThreadEndsAStarvedStream) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 64, .count = 1, .incremental = false});
  auto starved = stream_pair();
  auto holder = stream_pair();
  ASSERT_EQ(::send(holder.second.fd(), "h", 1, 0), 1);
  ASSERT_EQ(::send(starved.second.fd(), "s", 1, 0), 1);
  std::stop_source stop;
  std::thread stopper;
  bool buffer_back = false;
  bool cancelled_before_buffer_back = false;
  loop.run([&]() -> Task<void> {
    Result<BufferLease> held = co_await holder.first.recv(pool);  // the only buffer
    RecvStream chunks = starved.first.recv_stream(pool, {}, stop.get_token());
    chunks.start();
    co_await sleep_for(10ms);  // starved by now
    stopper = std::thread([&stop] {
      std::this_thread::sleep_for(20ms);
      stop.request_stop();
    });
    co_await when_all(
        [](RecvStream& s, const bool& back, bool& verdict) -> Task<void> {
          Result<BufferLease> chunk = co_await s.next();
          verdict = !chunk && chunk.error() == std::errc::operation_canceled && !back;
        }(chunks, buffer_back, cancelled_before_buffer_back),
        [](Result<BufferLease>& lease, bool& back) -> Task<void> {
          co_await sleep_for(2s);  // a bound on the wait: the buffer comes back then
          lease->reset();
          back = true;
        }(held, buffer_back));
    EXPECT_EQ(chunks.starvations(), 1U);
  }());
  stopper.join();
  EXPECT_TRUE(cancelled_before_buffer_back) << "the stop waited for a buffer to come back";
  EXPECT_EQ(pool.held(), 0U);
}

// A stream stopped from another thread between requests may be destroyed without
// close(), as one that ended may: it leaves nothing behind in its loop.
TEST(RecvStream, AStreamStoppedFromAnotherThreadAfterItsEndMayBeDestroyed) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 64, .count = 4});
  auto pair = stream_pair();
  std::stop_source stop;
  const bool ended = loop.run([&]() -> Task<bool> {
    auto chunks = std::make_unique<RecvStream>(pair.first.fd(), false, pool, RecvStreamOptions{},
                                               stop.get_token());
    pair.second.reset();  // end of stream
    Result<BufferLease> end = co_await chunks->next();
    std::thread([&stop] { stop.request_stop(); }).join();
    chunks.reset();           // not in flight: no close() needed
    co_await sleep_for(1ms);  // a turn in which the loop drains its deferred cancels
    co_return end && end->empty();
  }());
  EXPECT_TRUE(ended);
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

#ifndef NDEBUG
// A lease must not outlive its pool: the pool's destructor says so in debug builds, before
// the lease can give its buffer back into freed memory.
TEST(BufferPoolDeathTest, APoolDestroyedUnderALeaseAsserts) {
  EXPECT_DEATH(
      {
        EventLoop loop;
        auto a_b = stream_pair();
        std::optional<BufferLease> lease;
        {
          BufferPool pool(loop, {.buffer_size = 256, .count = 4});
          loop.run([&]() -> Task<void> {
            co_await a_b.first.send_all(as_bytes("x"));
            auto got = co_await a_b.second.recv(pool);
            if (got) lease = std::move(*got);
          }());
          if (!lease) std::abort();  // not the death this test waits for
        }
      },
      "after the BufferLeases");
}
#endif

}  // namespace
}  // namespace coring::net
