// RecvStream: a multishot receive into a BufferPool — one SQE, a CQE per chunk.
//
//   RecvStream chunks = stream.recv_stream(pool);
//   for (;;) {
//     Result<BufferLease> chunk = co_await chunks.next();
//     if (!chunk || chunk->empty()) break;     // an error, or the peer's end of stream
//     consume(chunk->data());                  // the buffer returns when chunk is dropped
//   }
//   co_await chunks.close();                   // needed only if the request may be armed
//
// A use of the runtime's multishot core (runtime/multishot.hpp), like Multishot. Its
// queue, backpressure, running dry (a receive into a buffer of its own), ending and
// closing: docs/net.md, "Provided buffers" and "Fairness". Loop thread only (the stop
// token may fire on any thread); single consumer.
#pragma once

#include <cstdint>
#include <stop_token>

#include "coring/net/buffer_pool.hpp"
#include "coring/runtime/multishot.hpp"

namespace coring::net {

struct RecvStreamOptions {
  // Chunks queued before the request is paused (1 to 2^20), at most the pool's share().
  std::uint32_t bound = 32;
  int msg_flags = 0;  // recv(2) flags
};

class RecvStream final : public coring::detail::MultishotCore<RecvStream, BufferLease> {
  using Core = coring::detail::MultishotCore<RecvStream, BufferLease>;
  friend Core;

 public:
  // Receives from socket `fd` (a direct descriptor if `direct`) into `pool`; `stop`
  // closes the stream. Throws std::system_error (invalid_argument) for a bad bound.
  // `pool` must outlive the stream.
  RecvStream(int fd, bool direct, BufferPool& pool, RecvStreamOptions options = {},
             std::stop_token stop = {});
  ~RecvStream();

  class [[nodiscard]] NextAwaiter {
   public:
    explicit NextAwaiter(RecvStream& stream) noexcept : stream_(&stream) {}
    bool await_ready() const noexcept { return stream_->ready_now(); }
    void await_suspend(std::coroutine_handle<> waiter) const noexcept { stream_->wait(waiter); }
    Result<BufferLease> await_resume() const noexcept { return stream_->take_chunk(); }

   private:
    RecvStream* stream_;
  };
  // The next chunk: a lease on its bytes, an empty lease at end of stream, or the error
  // that ended the stream (ECANCELED once closed). Arms the request on first use.
  NextAwaiter next() noexcept { return NextAwaiter(*this); }

 private:
  // A starved stream re-arms when its consumer asks: at once if it waits already.
  static constexpr bool rearm_starved_on_demand = true;

  // The core's hooks (see runtime/multishot.hpp).
  void prep(ring::Sqe& sqe) const noexcept;
  bool armed() noexcept;
  bool refused(const IoResult& final) noexcept;
  bool claim(const IoResult& result, BufferLease& lease) noexcept;
  static void release(BufferLease&& lease) noexcept { lease.reset(); }
  void starved(const IoResult& final) noexcept;
  static void finished() noexcept {}
  [[nodiscard]] static std::int32_t value_end() noexcept { return 0; }

  Result<BufferLease> take_chunk() noexcept;

  // What the next (or current) request is. See "Fairness" in docs/net.md.
  enum class Mode : std::uint8_t {
    pool,  // the multishot receive into the pool
    poll,  // the pool ran dry: a poll for data, which holds no memory while the peer idles
    own,   // data is there: one receive into own_
  };

  BufferPool* pool_;
  std::byte* own_ = nullptr;  // Mode::own's buffer (new[]'d, pool's own_buffer_size())
  int fd_;
  int msg_flags_;
  bool direct_;
  Mode mode_ = Mode::pool;
  bool limited_ = false;  // the multishot request in flight carries a byte limit
  // The kernel refused a limited request (EINVAL): this stream goes without the limit,
  // and its first chunk marks the pool (BufferPool::byte_limit_refused()).
  bool unlimited_retry_ = false;
  // Requests in a row that ran the pool dry (ENOBUFS) with no chunk from it since; at
  // max_dry the stream's next bytes go to a buffer of its own.
  std::uint8_t dry_ = 0;
  static constexpr std::uint8_t max_dry = 2;
};

}  // namespace coring::net
