// The echo handler: receive, send back what arrived, one message at a time.
//
// Receiving. With the loop's receive pool, one multishot receive stays armed for the
// whole connection: the kernel puts each arrival in a buffer of the pool and posts a CQE,
// with no SQE and no poll re-arm per message — for a server whose connections wait for
// their next message most of the time, that is most of the per-message cost of a
// completion-based recv (a recv issued before data arrives first arms a poll, which the
// arrival then fires to retry it). The buffer goes back to the pool when its lease is
// dropped, after the send. Without a pool: a recv per message into the frame's buffer.
//
// Sending. One send almost always takes everything (the socket's send buffer has room
// for one receive's worth); send_all() is only for the rest when it did not.
//
// Failing. The handler throws only when memory runs out (a frame, the receive's queue);
// the Server then ends the connection. The multishot receive is closed before the
// exception leaves.
#include "echo_server.hpp"

#include <array>
#include <cstddef>
#include <exception>
#include <span>

#include <coring/net/recv_stream.hpp>

namespace coring::examples {
namespace {

// The multishot receive stays armed between chunks, so nothing may leave this frame
// before it is closed: an exception (no memory for send_rest's frame) is kept and
// rethrown after the close.
Task<void> echo_with_pool(const net::TcpStream& stream, net::BufferPool& pool) {
  net::RecvStream chunks = stream.recv_stream(pool);
  std::exception_ptr failure;
  try {
    for (;;) {
      Result<net::BufferLease> chunk = co_await chunks.next();
      // An error, the peer's end of stream, or the server's shutdown.
      if (!chunk || chunk->empty()) break;
      const std::span<const std::byte> data = chunk->data();
      const IoResult put = co_await stream.send(data);
      // Statements, not `a && co_await f()`: GCC 12 has destroyed a temporary twice in a
      // conditional expression holding a co_await.
      if (put.res != static_cast<int>(data.size())) {
        if (!co_await send_rest(stream, data, put)) break;
      }
    }
  } catch (...) {
    failure = std::current_exception();
  }
  co_await chunks.close();
  if (failure) std::rethrow_exception(failure);
}

Task<void> echo_with_recv(const net::TcpStream& stream) {
  std::array<std::byte, 4096> buffer;
  for (;;) {
    const IoResult got = co_await stream.recv(buffer);
    if (got.res <= 0) break;
    const std::span<const std::byte> data = std::span(buffer).first(got.value());
    const IoResult put = co_await stream.send(data);
    if (put.res != got.res) {
      if (!co_await send_rest(stream, data, put)) break;
    }
  }
}

}  // namespace

// Not a coroutine itself: it hands back the handler's own task, so that a connection
// costs one frame here, not two (the caller owns `stream` and `conn` while it awaits).
Task<void> serve_echo(const net::TcpStream& stream, Connection& conn) {
  if (net::BufferPool* pool = conn.receive_pool()) return echo_with_pool(stream, *pool);
  return echo_with_recv(stream);
}

}  // namespace coring::examples
