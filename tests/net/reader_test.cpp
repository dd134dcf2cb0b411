// BufferedReader: lines and delimited pieces split across receives and leases, pipelined
// in one receive, limits at and over, the end of the stream mid-line, exact reads after a
// line, the zero-copy view into a lease, a peer that trickles bytes, and a stop token or
// a deadline cutting a read that waits. The peer writes pieces with pauses between them:
// each piece is sent only after the loop turned, by which time the kernel has completed
// the pending receive with the bytes before it, so every piece arrives by itself.
#include "coring/net/reader.hpp"

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coring/net/buffer_pool.hpp"
#include "coring/net/listener.hpp"
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
using test::to_string;

std::pair<StreamSocket, StreamSocket> stream_pair() {
  auto pair = StreamSocket::pair();
  if (!pair) throw std::system_error(pair.error(), "socketpair");
  return std::move(*pair);
}

void send_now(const StreamSocket& to, std::string_view text) {
  ASSERT_EQ(::send(to.fd(), text.data(), text.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(text.size()));
}

// Sends each piece after a pause, then ends the stream if `close` is set.
Task<void> send_pieces(StreamSocket& to, std::vector<std::string> pieces, bool close = false) {
  for (const std::string& piece : pieces) {
    co_await sleep_for(2ms);
    send_now(to, piece);
  }
  if (close) ::shutdown(to.fd(), SHUT_WR);
}

// A line's text or its error's message, for comparisons.
std::string text_of(const Result<std::string_view>& line) {
  return line ? std::string(*line) : "error: " + line.error().message();
}

TEST(BufferedReader, LineSplitAcrossReceives) {
  EventLoop loop;
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  BufferedReader reader(conn);
  auto [lines, sent] = loop.run(when_all(
      [&]() -> Task<std::vector<std::string>> {
        std::vector<std::string> got;
        got.push_back(text_of(co_await reader.read_line(100)));
        got.push_back(text_of(co_await reader.read_line(100)));
        co_return got;
      }(),
      [&]() -> Task<bool> {
        std::vector<std::string> pieces{"GET / HT", "TP/1.1\r", "\nHost: x\r\n"};
        co_await send_pieces(peer, std::move(pieces));
        co_return true;
      }()));
  EXPECT_TRUE(sent);
  EXPECT_EQ(lines, (std::vector<std::string>{"GET / HTTP/1.1", "Host: x"}));
  EXPECT_EQ(reader.bytes_copied(), 0U) << "a reader with its own buffer copies nothing";
}

TEST(BufferedReader, PipelinedLinesFromOneReceiveThenEndOfStream) {
  EventLoop loop;
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  send_now(peer, "a\nbb\r\n\nccc\n");
  ::shutdown(peer.fd(), SHUT_WR);
  BufferedReader reader(conn);
  auto lines = loop.run([&]() -> Task<std::vector<std::string>> {
    std::vector<std::string> got;
    for (int i = 0; i < 5; ++i) got.push_back(text_of(co_await reader.read_line(100)));
    co_return got;
  }());
  const std::string eos = "error: " + make_error_code(Errc::end_of_stream).message();
  EXPECT_EQ(lines, (std::vector<std::string>{"a", "bb", "", "ccc", eos}));
}

TEST(BufferedReader, DelimiterOfSeveralBytesSpanningReceives) {
  EventLoop loop;
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  BufferedReader reader(conn);
  auto [head, rest] = loop.run(when_all(
      [&]() -> Task<std::string> {
        co_return text_of(co_await reader.read_until("\r\n\r\n", 100));
      }(),
      [&]() -> Task<bool> {
        std::vector<std::string> pieces{"A: 1\r\nB: 2\r", "\n\r", "\nBODY"};
        co_await send_pieces(peer, std::move(pieces));
        co_return true;
      }()));
  EXPECT_EQ(head, "A: 1\r\nB: 2");
  EXPECT_TRUE(rest);
  loop.run(test::sleep_task(5ms));
  // The bytes after the delimiter stay buffered (a receive may not have brought them).
  auto body = loop.run([&]() -> Task<std::string> {
    std::string got(4, '\0');
    TransferResult r = co_await reader.read_exact(std::as_writable_bytes(std::span(got)));
    co_return r ? got : "error: " + r.message();
  }());
  EXPECT_EQ(body, "BODY");
}

TEST(BufferedReader, LimitExactlyAtAndOver) {
  EventLoop loop;
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  send_now(peer, "12345\n123456\nabcd--xyz12--");
  BufferedReader reader(conn);
  auto [at, over, rest, multi] =
      loop.run([&]() -> Task<std::tuple<std::string, std::error_code, std::string, std::string>> {
        std::string first = text_of(co_await reader.read_line(5));
        Result<std::string_view> second = co_await reader.read_line(5);
        // The bytes that overran stay buffered: the caller decides (answer, close).
        std::string left = to_string(reader.buffered());
        reader.consume(7);
        std::string third = text_of(co_await reader.read_until("--", 4));
        co_return std::tuple{first, second ? std::error_code() : second.error(), left, third};
      }());
  EXPECT_EQ(at, "12345");
  EXPECT_EQ(over, Errc::limit_exceeded);
  EXPECT_EQ(over, std::errc::message_size);
  EXPECT_EQ(rest.substr(0, 7), "123456\n");
  EXPECT_EQ(multi, "abcd");
  auto too_long = loop.run([&]() -> Task<std::error_code> {
    Result<std::string_view> r = co_await reader.read_until("--", 4);
    co_return r ? std::error_code() : r.error();
  }());
  EXPECT_EQ(too_long, Errc::limit_exceeded) << "xyz12 is five bytes before the delimiter";
}

TEST(BufferedReader, EndOfStreamMidLineKeepsThePartialBytes) {
  EventLoop loop;
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  send_now(peer, "partial");
  ::shutdown(peer.fd(), SHUT_WR);
  BufferedReader reader(conn);
  auto ended = loop.run([&]() -> Task<std::error_code> {
    Result<std::string_view> line = co_await reader.read_line(100);
    co_return line ? std::error_code() : line.error();
  }());
  EXPECT_EQ(ended, Errc::end_of_stream);
  EXPECT_EQ(to_string(reader.buffered()), "partial");
}

TEST(BufferedReader, ReadExactAndSomeDrainTheBufferFirst) {
  EventLoop loop;
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  send_now(peer, "hdr\nBODYBODYxy");
  BufferedReader reader(conn);
  auto [line, body, some, tail] =
      loop.run([&]() -> Task<std::tuple<std::string, std::string, std::size_t, std::string>> {
        std::string first = text_of(co_await reader.read_line(10));
        std::string exact(12, '\0');
        auto send_more = [&]() -> Task<void> {
          co_await sleep_for(2ms);
          send_now(peer, "ABCD");
        };
        // 10 bytes are buffered; the last 2 come from a receive straight into `exact`.
        auto [got, sent] = co_await when_all(
            [&]() -> Task<TransferResult> {
              co_return co_await reader.read_exact(std::as_writable_bytes(std::span(exact)));
            }(),
            [&]() -> Task<bool> {
              co_await send_more();
              co_return true;
            }());
        std::string small(8, '\0');
        Result<std::size_t> n = co_await reader.read_some(std::as_writable_bytes(std::span(small)));
        co_return std::tuple{first, got ? exact : got.message(), n ? *n : 99, small.substr(0, 2)};
      }());
  EXPECT_EQ(line, "hdr");
  EXPECT_EQ(body, "BODYBODYxyAB");
  EXPECT_EQ(some, 2U);
  EXPECT_EQ(tail, "CD");
}

TEST(BufferedReader, ReadExactEndOfStreamCountsWhatArrived) {
  EventLoop loop;
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  send_now(peer, "abc");
  ::shutdown(peer.fd(), SHUT_WR);
  BufferedReader reader(conn);
  auto got = loop.run([&]() -> Task<TransferResult> {
    std::byte target[8];
    co_return co_await reader.read_exact(target);
  }());
  EXPECT_EQ(got.error(), Errc::end_of_stream);
  EXPECT_EQ(got.bytes, 3U);
}

TEST(BufferedReader, ViewInsideOneLeaseIsNotCopied) {
  EventLoop loop;
  BufferPool pool(loop, {.buffer_size = 1024, .count = 8});
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  send_now(peer, "hello\nworld\n");
  BufferedReader reader(conn, pool);
  auto [filled, lease_bytes, first, second] = loop.run(
      [&]() -> Task<std::tuple<std::size_t, const std::byte*, std::string_view, std::string_view>> {
        Result<std::size_t> n = co_await reader.fill();
        // With nothing in the reader's buffer, buffered() is the lease.
        const std::byte* in_lease = reader.buffered().data();
        std::string_view a = *co_await reader.read_line(100);
        std::string_view b = *co_await reader.read_line(100);  // a is invalid from here
        co_return std::tuple{n ? *n : 0, in_lease, a, b};
      }());
  EXPECT_EQ(filled, 12U);
  EXPECT_EQ(pool.held(), 1U) << "the reader holds the lease its views point into";
  EXPECT_EQ(reinterpret_cast<const std::byte*>(first.data()), lease_bytes);
  EXPECT_EQ(reinterpret_cast<const std::byte*>(second.data()), lease_bytes + 6);
  EXPECT_EQ(second, "world");
  EXPECT_EQ(reader.bytes_copied(), 0U);
}

TEST(BufferedReader, OnlyWhatSpansLeasesIsCopied) {
  EventLoop loop;
  BufferPool pool(loop, {.buffer_size = 1024, .count = 8});
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  BufferedReader reader(conn, pool);
  auto [lines, sent] = loop.run(when_all(
      [&]() -> Task<std::vector<std::string>> {
        std::vector<std::string> got;
        got.push_back(text_of(co_await reader.read_line(100)));
        got.push_back(std::to_string(reader.bytes_copied()));
        Result<std::string_view> next = co_await reader.read_line(100);
        got.push_back(text_of(next));
        got.push_back(next && reader.bytes_copied() == 6 ? "zero copy" : "copied");
        co_return got;
      }(),
      [&]() -> Task<bool> {
        std::vector<std::string> pieces{"hel", "lo\nnext\n"};
        co_await send_pieces(peer, std::move(pieces));
        co_return true;
      }()));
  // "hel" and "lo\n" are copied together; "next" stays in the second lease.
  EXPECT_EQ(lines, (std::vector<std::string>{"hello", "6", "next", "zero copy"}));
  EXPECT_EQ(pool.held(), 1U);
}

TEST(BufferedReader, PoolLinesSplitAcrossLeasesWithMultiByteDelimiter) {
  EventLoop loop;
  BufferPool pool(loop, {.buffer_size = 8, .count = 8});
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  BufferedReader reader(conn, pool, {.capacity = 64});
  auto [head, sent] = loop.run(when_all(
      [&]() -> Task<std::string> {
        co_return text_of(co_await reader.read_until("\r\n\r\n", 40));
      }(),
      [&]() -> Task<bool> {
        std::vector<std::string> pieces{"Host: example\r", "\n\r", "\nnext line\r\n"};
        co_await send_pieces(peer, std::move(pieces));
        co_return true;
      }()));
  EXPECT_EQ(head, "Host: example");
  auto line =
      loop.run([&]() -> Task<std::string> { co_return text_of(co_await reader.read_line(40)); }());
  EXPECT_EQ(line, "next line");
}

TEST(BufferedReader, TricklingPeerHitsTheLimit) {
  EventLoop loop;
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  BufferedReader reader(conn);
  std::stop_source stop_sending;
  auto [error, sent] = loop.run(when_all(
      [&]() -> Task<std::error_code> {
        Result<std::string_view> line = co_await reader.read_line(16);
        stop_sending.request_stop();
        co_return line ? std::error_code() : line.error();
      }(),
      [&]() -> Task<int> {
        int count = 0;
        for (; count < 1000 && !stop_sending.stop_requested(); ++count) {
          co_await sleep_for(1ms);
          send_now(peer, "x");
        }
        co_return count;
      }()));
  EXPECT_EQ(error, Errc::limit_exceeded);
  EXPECT_GE(reader.buffered().size(), 17U);
  EXPECT_LT(sent, 1000) << "the read ended at the limit, not when the peer stopped";
}

TEST(BufferedReader, FullBufferIsTheLimitWhateverTheCallerAsked) {
  EventLoop loop;
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  send_now(peer, std::string(100, 'x'));
  BufferedReader reader(conn, {.capacity = 32});
  auto error = loop.run([&]() -> Task<std::error_code> {
    Result<std::string_view> line = co_await reader.read_line(1 << 20);
    co_return line ? std::error_code() : line.error();
  }());
  EXPECT_EQ(error, Errc::limit_exceeded);
  EXPECT_EQ(reader.buffered().size(), 32U) << "the reader never holds more than its capacity";
  auto filled = loop.run([&]() -> Task<std::error_code> {
    Result<std::size_t> n = co_await reader.fill();
    co_return n ? std::error_code() : n.error();
  }());
  EXPECT_EQ(filled, Errc::limit_exceeded);
}

TEST(BufferedReader, StopTokenCancelsAPendingRead) {
  EventLoop loop;
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  BufferedReader reader(conn);
  std::stop_source stop;
  auto [error, stopped] = loop.run(when_all(
      [&]() -> Task<std::error_code> {
        Result<std::string_view> line = co_await reader.read_line(100).with_stop(stop.get_token());
        co_return line ? std::error_code() : line.error();
      }(),
      [&]() -> Task<bool> {
        co_await sleep_for(2ms);
        send_now(peer, "no end");
        co_await sleep_for(2ms);
        stop.request_stop();
        co_return true;
      }()));
  EXPECT_EQ(error, std::errc::operation_canceled);
  EXPECT_EQ(to_string(reader.buffered()), "no end") << "received bytes stay buffered";
  // The reader goes on after a cancelled read.
  send_now(peer, "\n");
  auto line =
      loop.run([&]() -> Task<std::string> { co_return text_of(co_await reader.read_line(100)); }());
  EXPECT_EQ(line, "no end");
}

TEST(BufferedReader, DeadlineCutsAReadThatWaits) {
  EventLoop loop;
  BufferPool pool(loop, {.buffer_size = 64, .count = 8});
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  BufferedReader reader(conn, pool);
  send_now(peer, "part");
  auto error = loop.run([&]() -> Task<std::error_code> {
    Result<std::string_view> line = co_await reader.read_line(100).with_deadline(20ms);
    co_return line ? std::error_code() : line.error();
  }());
  EXPECT_EQ(error, std::errc::timed_out);
  EXPECT_EQ(to_string(reader.buffered()), "part");
}

TEST(BufferedReader, DryPoolFallsBackToTheReadersBuffer) {
  EventLoop loop;
  BufferPool pool(loop, {.buffer_size = 16, .count = 1, .incremental = false});
  auto sockets = stream_pair();  // named: clang 14 lambdas cannot capture bindings
  StreamSocket& peer = sockets.first;
  StreamSocket& conn = sockets.second;
  auto others = stream_pair();
  StreamSocket& other_peer = others.first;
  StreamSocket& other = others.second;
  send_now(other_peer, "hold");
  send_now(peer, "line one\n");
  BufferedReader reader(conn, pool);
  auto [held, line] = loop.run([&]() -> Task<std::pair<bool, std::string>> {
    // Another receive holds the pool's only buffer.
    Result<BufferLease> lease = co_await other.recv(pool);
    std::string got = text_of(co_await reader.read_line(100));
    co_return std::pair{lease && pool.available() == 0, got};
  }());
  EXPECT_TRUE(held);
  EXPECT_EQ(line, "line one");
}

TEST(BufferedReader, ReadsFromADirectDescriptor) {
  EventLoop loop;
  auto enabled = enable_direct_descriptors(loop, 2);
  ASSERT_TRUE(enabled) << enabled.error().message();
  auto listener = TcpListener::bind(Address::ipv4_loopback(), {.direct = true});
  ASSERT_TRUE(listener);
  const Address address = *listener->local_address();
  auto [client, server] =
      loop.run(when_all(TcpStream::connect(address), [](Listener& l) -> Task<Result<TcpStream>> {
        co_return co_await l.accept();
      }(*listener)));
  ASSERT_TRUE(client && server);
  ASSERT_TRUE(server->is_direct());
  BufferPool pool(loop, {.buffer_size = 256, .count = 4});
  BufferedReader pooled(*server, pool);
  send_now(*client, "first\r\nsecond\n");
  auto lines = loop.run([&]() -> Task<std::vector<std::string>> {
    std::vector<std::string> got;
    got.push_back(text_of(co_await pooled.read_line(100)));
    got.push_back(text_of(co_await pooled.read_line(100)));
    co_return got;
  }());
  EXPECT_EQ(lines, (std::vector<std::string>{"first", "second"}));
  loop.run(listener->close());
}

TEST(BufferedReader, ZeroCapacityIsRefused) {
  auto sockets = stream_pair();
  EXPECT_THROW(BufferedReader(sockets.second, {.capacity = 0}), std::system_error);
}

}  // namespace
}  // namespace coring::net
