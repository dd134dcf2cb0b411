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
// queue, backpressure, running dry (the pool's wait list), ending and closing:
// docs/net.md, "Provided buffers". Loop thread only (the stop token may fire on any
// thread); single consumer.
#pragma once

#include <cstdint>
#include <stop_token>

#include "coring/net/buffer_pool.hpp"
#include "coring/runtime/multishot.hpp"

namespace coring::net {

struct RecvStreamOptions {
  std::uint32_t bound = 32;  // chunks queued before the request is paused (1 to 2^20)
  int msg_flags = 0;         // recv(2) flags
};

class RecvStream final : public coring::detail::MultishotCore<RecvStream, BufferLease>,
                         private detail::BufferWaiter {
  using Core = coring::detail::MultishotCore<RecvStream, BufferLease>;
  friend Core;

 public:
  // Receives from socket `fd` (a direct descriptor if `direct`) into `pool`; `stop`
  // closes the stream. Throws std::system_error (invalid_argument) for a bad bound.
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
  static constexpr bool rearm_starved_on_demand = false;  // the wait list re-arms it

  // The core's hooks (see runtime/multishot.hpp).
  void prep(ring::Sqe& sqe) const noexcept;
  void armed() noexcept { pool_->waiters().armed(*this); }
  bool claim(const IoResult& result, BufferLease& lease) noexcept;
  static void release(BufferLease&& lease) noexcept { lease.reset(); }
  void starved(const IoResult& final) noexcept;
  void finished() noexcept { pool_->waiters().done(*this); }
  [[nodiscard]] static std::int32_t value_end() noexcept { return 0; }

  // The wait list's wake for a returned buffer: whether the stream re-armed for it.
  static bool buffers_back(detail::BufferWaiter& self) noexcept;
  Result<BufferLease> take_chunk() noexcept;

  BufferPool* pool_;
  int fd_;
  int msg_flags_;
  bool direct_;
};

}  // namespace coring::net
