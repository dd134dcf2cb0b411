// What the fault workloads and the soak found in the net layer, each as the smallest
// program that shows it (docs/reliability.md, "Findings", numbers them). Each test checks
// the behaviour the net layer guarantees in that case; the workloads work around none of
// these cases.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "coring/net/buffer_pool.hpp"
#include "coring/net/listener.hpp"
#include "coring/net/recv_stream.hpp"
#include "coring/net/stream.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/task.hpp"
#include "coring/runtime/time.hpp"
#include "coring/runtime/when_all.hpp"
#include "coring/testing/fault.hpp"
#include "fault_support.hpp"
#include "support.hpp"

namespace coring::fault_test {
namespace {

using namespace std::chrono_literals;

std::string text_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Finding 2. A pool consumed incrementally lets the kernel put the next receive — of any
// socket — in the rest of the buffer the last one used, so where a piece starts is known
// only from the order of the CQEs. Both a RecvStream and a one-shot recv(pool) claim
// their piece when their CQE is reaped, not when their coroutine resumes after the whole
// batch: here one batch holds the recv's CQE and then the stream's, and each must get
// its own socket's bytes.
TEST(FaultFindings, IncrementalPoolSharedByRecvAndRecvStreamGivesEachItsOwnBytes) {
  EventLoop loop;
  net::BufferPool pool(loop, {.buffer_size = 4096, .count = 4, .incremental = true});
  if (!pool.incremental()) GTEST_SKIP() << "the kernel has no incremental buffer rings (6.12)";
  auto first = net::StreamSocket::pair();
  auto second = net::StreamSocket::pair();
  ASSERT_TRUE(first && second);
  const std::string a(100, 'a');
  const std::string b(100, 'b');
  // Both arrive before either receive is submitted: both complete at submission, in
  // one batch, in submission order (the recv's first).
  ASSERT_EQ(::send(first->second.fd(), a.data(), a.size(), 0), 100);
  ASSERT_EQ(::send(second->second.fd(), b.data(), b.size(), 0), 100);
  std::string got_a;
  std::string got_b;
  auto body = [&]() -> Task<void> {
    net::RecvStream chunks = second->first.recv_stream(pool);
    auto one_shot = [&]() -> Task<void> {
      Result<net::BufferLease> lease = co_await first->first.recv(pool);
      if (lease) got_a = text_of(lease->data());
    };
    auto streamed = [&]() -> Task<void> {
      Result<net::BufferLease> lease = co_await chunks.next();
      if (lease) got_b = text_of(lease->data());
    };
    co_await when_all(one_shot(), streamed());
    co_await chunks.close();
  };
  ASSERT_TRUE(run_bounded(loop, body(), 5s));
  EXPECT_EQ(got_a, a) << "the one-shot recv got another socket's bytes";
  EXPECT_EQ(got_b, b) << "the RecvStream got another socket's bytes";
}

// Finding 1 (FaultEcho seeds 53 and 541). An accept request can end with an -ECANCELED
// the listener did not ask for (it was not closed, its stop token not triggered). The
// listener re-arms after it unless it was closed itself, so a server that calls accept()
// again after an error, as the listener's documentation says it may, gets the next
// connection instead of ECANCELED at once.
TEST(FaultFindings, ListenerAcceptsAgainAfterAnEcanceledItDidNotAsk) {
  FaultPlan plan;
  plan.error_ppm = 1'000'000;  // the first accept request: -ECANCELED, never run
  plan.errors = {ECANCELED};
  FaultInjector faults(plan);
  EventLoop loop;
  loop.set_hooks(&faults);
  auto listener = net::TcpListener::bind(net::Address::ipv4_loopback());
  ASSERT_TRUE(listener) << listener.error().message();
  const net::Address address = *listener->local_address();
  std::error_code first_error;
  std::error_code second_error;
  bool second_ok = false;
  ring::test::Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto body = [&]() -> Task<void> {
    Result<net::TcpStream> first = co_await listener->accept();
    if (!first) first_error = first.error();
    loop.set_hooks(nullptr);  // no more faults: the next accept should work
    if (::connect(client.get(), address.data(), address.size()) != 0) co_return;
    Result<net::TcpStream> second = co_await listener->accept();
    second_ok = second.ok();
    if (!second) second_error = second.error();
    (void)co_await listener->close();
  };
  ASSERT_TRUE(run_bounded(loop, body(), 5s));
  EXPECT_EQ(first_error, std::errc::operation_canceled);
  EXPECT_TRUE(second_ok) << "the accept after the injected ECANCELED: " << second_error.message();
}

// Finding 3 (the full soak, scripts/soak.sh: 10,000 connections on coring-echo's pool of
// 128 buffers). Streams that found the pool empty waited for returned buffers, newest
// first, so the oldest could wait for ever; then oldest first, one per returned buffer;
// since issue 16 they wait for none: a stream that finds the pool empty polls for its
// bytes and receives them into a buffer of its own, so no connection depends on what
// others give back. Here the only buffer of a pool stays held while three streams each
// get their byte.
TEST(FaultFindings, StreamsThatFindThePoolEmptyAreServedWithoutItsBuffers) {
  EventLoop loop;
  net::BufferPool pool(loop, {.buffer_size = 64, .count = 1, .incremental = false});
  auto holder = net::StreamSocket::pair();
  auto a = net::StreamSocket::pair();
  auto b = net::StreamSocket::pair();
  auto c = net::StreamSocket::pair();
  ASSERT_TRUE(holder && a && b && c);
  for (auto* pair : {&holder, &a, &b, &c}) {
    ASSERT_EQ(::send((*pair)->second.fd(), "x", 1, 0), 1);
  }
  std::size_t served = 0;
  std::uint32_t held = 0;
  auto body = [&]() -> Task<void> {
    Result<net::BufferLease> holding = co_await holder->first.recv(pool);  // the only buffer
    if (!holding) co_return;
    net::RecvStream stream_a = a->first.recv_stream(pool);
    net::RecvStream stream_b = b->first.recv_stream(pool);
    net::RecvStream stream_c = c->first.recv_stream(pool);
    for (net::RecvStream* stream : {&stream_a, &stream_b, &stream_c}) {
      Result<net::BufferLease> chunk = co_await stream->next();
      if (chunk && chunk->size() == 1) ++served;
    }
    held = pool.held();
    for (net::RecvStream* stream : {&stream_a, &stream_b, &stream_c}) co_await stream->close();
  };
  ASSERT_TRUE(run_bounded(loop, body(), 5s));
  EXPECT_EQ(served, 3U) << "a stream waited for the held buffer";
  EXPECT_EQ(held, 1U);
}

}  // namespace
}  // namespace coring::fault_test
