// docs/net.md, "Provided buffers": a BufferPool, one receive into it, and a multishot
// RecvStream that keeps receiving into the pool's buffers.
//
// The kernel picks a buffer only when data arrives; a lease hands back the bytes and
// returns the buffer to the kernel when it is dropped. When the pool runs dry the
// stream's request ends with ENOBUFS and the stream receives into buffers of its own
// until the pool has buffers again: the consumer below holds every buffer for a moment
// on purpose, and every byte still arrives in order.
#include <sys/socket.h>

#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <coring/net/tcp.hpp>
#include <coring/net/unix.hpp>
#include <coring/runtime/event_loop.hpp>
#include <coring/runtime/task.hpp>
#include <coring/runtime/time.hpp>
#include <coring/runtime/when_all.hpp>

using namespace std::chrono_literals;
using coring::Result;
using coring::Task;
using coring::net::BufferLease;
using coring::net::BufferPool;
using coring::net::RecvStream;
using coring::net::UnixStream;

Task<std::string> receive_all(UnixStream& conn, BufferPool& pool) {
  std::string received;
  // One receive: a lease on a kernel-filled buffer.
  Result<BufferLease> first = co_await conn.recv(pool);
  if (!first) co_return "recv: " + first.error().message();
  received.append(reinterpret_cast<const char*>(first->data().data()), first->size());
  first->reset();  // the buffer goes back to the kernel now

  // Many receives from one SQE.
  RecvStream chunks = conn.recv_stream(pool);
  std::vector<BufferLease> held;
  for (;;) {
    Result<BufferLease> chunk = co_await chunks.next();
    if (!chunk) co_return "next: " + chunk.error().message();
    if (chunk->empty()) break;  // end of stream
    held.push_back(std::move(*chunk));
    if (held.size() < pool.count()) continue;
    co_await coring::sleep_for(1ms);  // we hold 4 chunks: the pool runs dry meanwhile
    for (const auto& lease : held) {
      received.append(reinterpret_cast<const char*>(lease.data().data()), lease.size());
    }
    held.clear();  // buffers back: the stream receives into the pool again
  }
  for (const auto& lease : held) {
    received.append(reinterpret_cast<const char*>(lease.data().data()), lease.size());
  }
  std::printf("RecvStream: %llu requests, %llu ran dry\n",
              static_cast<unsigned long long>(chunks.arms()),
              static_cast<unsigned long long>(chunks.starvations()));
  co_return received;
}

int main() {
  coring::EventLoop loop;
  BufferPool pool(loop, {.buffer_size = 1024, .count = 4});
  auto pair = UnixStream::pair();
  if (!pair) return 1;
  auto& writer = (*pair).first;
  auto& reader = (*pair).second;

  std::string message;
  for (int i = 0; message.size() < 64 * 1024; ++i) message += std::to_string(i) + ' ';
  auto [sent, received] = loop.run(coring::when_all(
      [&]() -> Task<bool> {
        auto all = co_await writer.send_all(std::as_bytes(std::span(message)));
        co_await writer.shutdown(SHUT_WR);  // the reader's end of stream
        co_return all.ok();
      }(),
      receive_all(reader, pool)));
  std::printf("pool: %u buffers of %u bytes, incremental: %s; %zu bytes received %s\n",
              pool.count(), pool.buffer_size(), pool.incremental() ? "yes" : "no", received.size(),
              received == message ? "intact" : "CORRUPTED");
  return sent && received == message ? 0 : 1;
}
