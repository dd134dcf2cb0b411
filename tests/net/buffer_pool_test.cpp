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
#include "coring/ring/ring.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/loop_hooks.hpp"
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
  BufferPool pool(loop, {.buffer_size = 1024, .count = 4, .incremental = incremental, .share = 16});
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

// A stream that finds the pool empty does not wait for a buffer to come back (those
// that hold them may never give them back: a handler blocked on a send to a client that
// does not read). It polls for data, which holds no memory, and receives what comes
// into a buffer of its own. Here the holder keeps the pool's only buffer throughout,
// and every one of 20 streams still gets its byte; once the buffer is back, the stream
// receives into the pool again.
TEST(RecvStream, AStreamThatFindsThePoolEmptyReceivesIntoABufferOfItsOwn) {
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
  std::vector<std::string> got;
  std::size_t own = 0;
  std::uint32_t held_meanwhile = 0;
  std::vector<std::pair<std::string, std::uint16_t>> later;
  loop.run([&]() -> Task<void> {
    Result<BufferLease> held = co_await holder.first.recv(pool);  // the only buffer
    if (!held || held->empty()) {
      ADD_FAILURE() << "the holder's recv did not take the buffer";
      co_return;
    }
    std::vector<std::unique_ptr<RecvStream>> chunks;
    for (auto& pair : pairs) {
      chunks.push_back(std::make_unique<RecvStream>(pair.first.fd(), false, pool));
      Result<BufferLease> chunk = co_await chunks.back()->next();
      got.push_back(chunk ? to_string(chunk->data()) : chunk.error().message());
      if (chunk && chunk->buffer_id() == BufferLease::own_buffer) ++own;
    }
    held_meanwhile = pool.held();
    held->reset();  // the buffer comes back
    for (const char* text : {"y", "z"}) {
      co_await pairs[0].second.send_all(as_bytes(text));
      Result<BufferLease> next = co_await chunks[0]->next();
      if (next) later.emplace_back(to_string(next->data()), next->buffer_id());
    }
    for (auto& stream : chunks) co_await stream->close();
  }());
  ASSERT_EQ(got.size(), streams);
  for (std::size_t i = 0; i < streams; ++i) EXPECT_EQ(got[i], "x") << "stream " << i;
  EXPECT_EQ(own, streams) << "a chunk came from the pool, whose only buffer was held";
  EXPECT_EQ(held_meanwhile, 1U);
  ASSERT_EQ(later.size(), 2U);
  EXPECT_EQ(later[0].first, "y");  // the poll armed while the pool was empty
  EXPECT_EQ(later[1].first, "z");
  EXPECT_EQ(later[1].second, 0U) << "with its buffer back the pool was not used again";
  EXPECT_EQ(pool.held(), 0U);
}

// A stream whose request ran the pool dry (ENOBUFS) makes no request until its consumer
// has taken what is queued and asks again: the rest of its bytes wait in the socket
// (TCP's flow control then pushes back on its peer alone), and it holds nothing more.
TEST(RecvStream, AStarvedStreamReceivesAgainOnlyWhenItsConsumerAsks) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 64, .count = 1, .incremental = false, .share = 4});
  auto pair = stream_pair();
  const std::string sent(100, 's');
  ASSERT_EQ(::send(pair.second.fd(), sent.data(), sent.size(), 0), 100);
  std::uint64_t starved = 0, arms_starved = 0, arms_later = 0, arms_asked = 0;
  std::string got;
  loop.run([&]() -> Task<void> {
    RecvStream chunks = pair.first.recv_stream(pool);
    chunks.start();  // takes the only buffer, then runs dry; nobody consumes yet
    co_await sleep_for(20ms);
    starved = chunks.starvations();
    arms_starved = chunks.arms();
    co_await sleep_for(20ms);
    arms_later = chunks.arms();
    while (got.size() < sent.size()) {
      Result<BufferLease> chunk = co_await chunks.next();
      if (!chunk || chunk->empty()) break;
      got += to_string(chunk->data());
    }
    arms_asked = chunks.arms();
    co_await chunks.close();
  }());
  EXPECT_EQ(starved, 1U);
  EXPECT_EQ(arms_starved, 1U);
  EXPECT_EQ(arms_later, 1U) << "the stream received with nobody asking";
  EXPECT_GE(arms_asked, 2U);
  EXPECT_EQ(got, sent);
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
    BufferPool pool(loop, {.buffer_size = 64, .count = 2, .incremental = false, .share = 4});
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

// No stream queues more than its share of the pool (BufferPoolOptions::share): one whose
// consumer stops taking chunks — a handler blocked on a send — stops receiving once it
// holds its share, and the rest of the pool serves the other streams; its peer's bytes
// wait in the socket, and every one of them arrives once the consumer takes again.
TEST(RecvStream, AStreamWhoseConsumerStopsTakingHoldsAtMostItsShare) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 256, .count = 64, .incremental = false, .share = 4});
  ASSERT_EQ(pool.share(), 4U);
  auto greedy = stream_pair();
  auto other = stream_pair();
  const auto sent = pattern(64 * 1024, 3);
  std::vector<std::byte> received;
  std::uint32_t held_while_stuck = 0, queued_while_stuck = 0;
  std::uint64_t pauses = 0;
  std::uint16_t other_id = BufferLease::own_buffer;
  loop.run(when_all(
      [&]() -> Task<void> {
        co_await greedy.second.send_all(sent);
        co_await greedy.second.shutdown(SHUT_WR);
      }(),
      [&]() -> Task<void> {
        RecvStream chunks = greedy.first.recv_stream(pool, {.bound = 32});  // clamped to 4
        chunks.start();
        co_await sleep_for(30ms);  // the peer sends all it can; nobody takes
        held_while_stuck = pool.held();
        queued_while_stuck = chunks.size();
        {
          RecvStream others = other.first.recv_stream(pool);
          co_await other.second.send_all(as_bytes("o"));
          Result<BufferLease> chunk = co_await others.next();
          if (chunk) other_id = chunk->buffer_id();
          co_await others.close();
        }
        for (;;) {
          Result<BufferLease> chunk = co_await chunks.next();
          if (!chunk || chunk->empty()) break;
          received.insert(received.end(), chunk->data().begin(), chunk->data().end());
        }
        pauses = chunks.pauses();
        co_await chunks.close();
      }()));
  // From 6.17 the kernel stops at the limit the stream gives it; before, it may post a
  // batch of receives before it sees the pause (up to 32 per wake-up).
  EXPECT_GE(queued_while_stuck, 4U);
  if (!pool.byte_limit_refused()) {
    EXPECT_LE(queued_while_stuck, 4U);
  }
  EXPECT_LT(held_while_stuck, pool.count()) << "one stream took the whole pool";
  EXPECT_GE(pauses, 1U);
  EXPECT_NE(other_id, BufferLease::own_buffer) << "the other stream found the pool empty";
  EXPECT_TRUE(received == sent) << "bytes lost, repeated or reordered";
  EXPECT_EQ(pool.held(), 0U);
}

// Stands in for a kernel before 6.17, which refuses a multishot receive's byte limit
// (the field was file_index, which a receive must leave 0): each limited request gets a
// field this kernel refuses too (addr2, in `off`), so it fails with EINVAL as an old one would.
class RefuseByteLimit final : public LoopHooks {
 public:
  void before_submit(ring::Ring& ring, std::uint64_t /*own*/) noexcept override {
    ring.for_each_unpublished_sqe([this](ring::Sqe& sqe) noexcept {
      if (sqe.opcode == static_cast<std::uint8_t>(ring::Op::recv) &&
          (sqe.ioprio & ring::recvsend_flags::recv_multishot) != 0 && sqe.file_index != 0) {
        sqe.off = 1;  // addr2
        ++refused;
      }
    });
  }
  bool skip_enter() noexcept override { return false; }
  void submit_first(ring::Ring& /*ring*/) noexcept override {}
  bool flush_cq() noexcept override { return false; }
  bool reap(ring::Ring& ring, std::uint64_t /*own*/, std::uint32_t limit,
            std::span<const ring::Cqe>& batch) override {
    cqes_.clear();
    (void)ring.for_each_cqe([this](const ring::Cqe& cqe) { cqes_.push_back(cqe); }, limit);
    batch = cqes_;
    return !cqes_.empty();
  }
  [[nodiscard]] bool holds_completions() const noexcept override { return false; }
  int refused = 0;

 private:
  std::vector<ring::Cqe> cqes_;
};

// Where the kernel refuses the byte limit, the stream arms again without it (its bound
// then rests on pausing alone) and no byte is lost; the pool remembers, so that later
// streams do not try again.
TEST(RecvStream, AKernelThatRefusesTheByteLimitIsServedWithoutIt) {
  RefuseByteLimit hooks;
  EventLoop loop({.hooks = &hooks});
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 256, .count = 16, .incremental = false, .share = 4});
  auto a_b = stream_pair();
  auto later = stream_pair();
  const auto sent = pattern(3000, 9);
  std::vector<std::byte> received;
  std::error_code error;
  std::string later_got;
  loop.run(when_all(
      [&]() -> Task<void> {
        co_await a_b.first.send_all(sent);
        co_await a_b.first.shutdown(SHUT_WR);
      }(),
      [&]() -> Task<void> {
        RecvStream chunks = a_b.second.recv_stream(pool);
        for (;;) {
          Result<BufferLease> chunk = co_await chunks.next();
          if (!chunk) error = chunk.error();
          if (!chunk || chunk->empty()) break;
          received.insert(received.end(), chunk->data().begin(), chunk->data().end());
        }
        co_await chunks.close();
        RecvStream next = later.second.recv_stream(pool);  // a later stream on the pool
        co_await later.first.send_all(as_bytes("b"));
        Result<BufferLease> chunk = co_await next.next();
        if (chunk) later_got = to_string(chunk->data());
        co_await next.close();
      }()));
  EXPECT_FALSE(error) << error.message();
  EXPECT_EQ(hooks.refused, 1) << "each stream tried the limit again";
  EXPECT_TRUE(pool.byte_limit_refused());
  EXPECT_TRUE(received == sent) << "bytes lost, repeated or reordered";
  EXPECT_EQ(later_got, "b");
  EXPECT_EQ(pool.held(), 0U);
}

// An EINVAL that is not about the limit — a multishot receive refuses MSG_WAITALL —
// ends that stream with the error after one retry, and leaves the pool's other streams
// their limit.
TEST(RecvStream, AnEinvalOfItsOwnDoesNotTurnThePoolsLimitOff) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 256, .count = 16, .incremental = false});
  auto pair = stream_pair();
  ASSERT_EQ(::send(pair.second.fd(), "w", 1, 0), 1);
  const std::error_code error = loop.run([&]() -> Task<std::error_code> {
    RecvStream chunks = pair.first.recv_stream(pool, {.msg_flags = MSG_WAITALL});
    Result<BufferLease> chunk = co_await chunks.next();
    co_await chunks.close();
    co_return chunk ? std::error_code{} : chunk.error();
  }());
  EXPECT_EQ(error, std::errc::invalid_argument) << error.message();
  EXPECT_FALSE(pool.byte_limit_refused()) << "the pool's streams lost their limit";
}

// The kernel counts a request's byte limit down as an int: one of 2^31 bytes or more
// (a bound of 2^20 chunks of 4 KiB) must be clamped, or the request ends after its first
// chunk and the multishot receive costs a request per chunk.
TEST(RecvStream, AHugeShareStillTakesManyChunksPerRequest) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop,
                  {.buffer_size = 4096, .count = 256, .incremental = false, .share = 1U << 20});
  auto pair = stream_pair();
  const auto sent = pattern(256 * 1024, 4);
  std::size_t received = 0, chunks_seen = 0;
  std::uint64_t arms = 0;
  loop.run(when_all(
      [&]() -> Task<void> {
        co_await pair.second.send_all(sent);
        co_await pair.second.shutdown(SHUT_WR);
      }(),
      [&]() -> Task<void> {
        RecvStream chunks = pair.first.recv_stream(pool, {.bound = 1U << 20});
        for (;;) {
          Result<BufferLease> chunk = co_await chunks.next();
          if (!chunk || chunk->empty()) break;
          received += chunk->size();
          ++chunks_seen;
        }
        arms = chunks.arms();
        co_await chunks.close();
      }()));
  EXPECT_EQ(received, sent.size());
  EXPECT_GE(chunks_seen, 8U);
  EXPECT_LE(arms, chunks_seen / 4) << arms << " requests for " << chunks_seen << " chunks";
}

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
  BufferPool pool(loop, {.buffer_size = 256, .count = 16, .incremental = false, .share = 32});
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
// an armed one, and a starved one between requests (it ran the pool dry and its
// consumer has not asked again) — and the buffers it holds go back.
TEST(RecvStream, AStopEndsAnArmedAndAStarvedStream) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 64, .count = 1, .incremental = false, .share = 4});
  auto armed = stream_pair();
  auto starved = stream_pair();
  ASSERT_EQ(::send(starved.second.fd(), std::string(100, 's').data(), 100, 0), 100);
  std::stop_source stop;
  auto [armed_error, starved_error, starvations, arms] = loop.run(
      [&]() -> Task<std::tuple<std::error_code, std::error_code, std::uint64_t, std::uint64_t>> {
        RecvStream waiting = starved.first.recv_stream(pool, {}, stop.get_token());
        RecvStream idle = armed.first.recv_stream(pool, {}, stop.get_token());
        waiting.start();  // runs the pool dry; its consumer asks only after the stop
        co_await sleep_for(10ms);
        auto next = [](RecvStream& s) -> Task<Result<BufferLease>> { co_return co_await s.next(); };
        auto [a, stopped] = co_await when_all(next(idle),  // armed: its peer sends nothing
                                              [](std::stop_source& source) -> Task<bool> {
                                                co_await sleep_for(20ms);  // its consumer waits
                                                co_return source.request_stop();
                                              }(stop));
        if (!stopped) ADD_FAILURE() << "the stop was requested already";
        Result<BufferLease> b = co_await waiting.next();
        co_await waiting.close();  // closed already: nothing to wait for
        co_await idle.close();
        co_return std::tuple{a ? std::error_code{} : a.error(), b ? std::error_code{} : b.error(),
                             waiting.starvations(), waiting.arms()};
      }());
  EXPECT_EQ(armed_error, std::errc::operation_canceled) << armed_error.message();
  EXPECT_EQ(starved_error, std::errc::operation_canceled) << starved_error.message();
  EXPECT_EQ(starvations, 1U);
  EXPECT_EQ(arms, 1U) << "the stopped stream received again";
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

// From another thread too, a stop ends a starved stream, which has no request in
// flight to cancel: the loop closes it at its next turn, and its consumer, asking
// afterwards, hears ECANCELED with no receive made.
TEST(RecvStream, AStopFromAnotherThreadEndsAStarvedStream) {
  EventLoop loop;
  REQUIRE_RECV_MULTISHOT(loop);
  BufferPool pool(loop, {.buffer_size = 64, .count = 1, .incremental = false, .share = 4});
  auto starved = stream_pair();
  ASSERT_EQ(::send(starved.second.fd(), std::string(100, 's').data(), 100, 0), 100);
  std::stop_source stop;
  std::error_code error;
  bool closed_before_asked = false;
  std::uint64_t starvations = 0, arms = 0;
  loop.run([&]() -> Task<void> {
    RecvStream chunks = starved.first.recv_stream(pool, {}, stop.get_token());
    chunks.start();
    co_await sleep_for(10ms);  // starved by now
    std::thread([&stop] { stop.request_stop(); }).join();
    co_await sleep_for(10ms);  // the loop's turns close it
    closed_before_asked = chunks.closed();
    Result<BufferLease> chunk = co_await chunks.next();
    error = chunk ? std::error_code{} : chunk.error();
    starvations = chunks.starvations();
    arms = chunks.arms();
  }());
  EXPECT_TRUE(closed_before_asked) << "the stop waited for the consumer";
  EXPECT_EQ(error, std::errc::operation_canceled) << error.message();
  EXPECT_EQ(starvations, 1U);
  EXPECT_EQ(arms, 1U);
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
