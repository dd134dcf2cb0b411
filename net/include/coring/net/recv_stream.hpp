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
// The record is an Operation of its own (not the runtime's Multishot, whose release of
// unconsumed results knows nothing of a BufferPool's per-buffer lease counts). Chunks
// are queued in the order the kernel posted them and handed out in that order.
//
// Running dry. When the pool has no buffer left the kernel ends the request with
// -ENOBUFS; the bytes it could not place stay in the socket. The stream then waits in
// the pool's list, oldest first, and each buffer that comes back re-arms one stream:
// the one that waited longest. A woken stream that loses the buffer to another request
// goes back to the head of the list; one that does not take it hands the wake to the
// next — its request ended (end of stream, an error, close()), or went to wait for data
// (a stream with an idle peer starves too: the kernel picks the buffer before it looks
// for data), which the pool learns from a NOP submitted behind the re-arm. A stream
// re-arms at once if a buffer came back while its ENOBUFS was on its way, without a
// place in the list. No byte is lost and none is reordered. It never
// reports ENOBUFS: a consumer that holds every buffer of the pool while it waits for
// more data waits for ever, so size the pool for what is held.
//
// Backpressure. When `bound` chunks wait unconsumed the record cancels its request (the
// kernel stops taking buffers for this socket) and re-arms once next() has taken the
// queue down to half. Chunks posted before the cancel took effect are queued, never
// dropped (the queue grows if it must).
//
// The stream ends with the peer's end of stream (next() returns an empty lease, again
// and again) or an error (next() returns it). close() cancels the request and waits for
// its final CQE; chunks nobody took go back to the pool. A stream must not be destroyed
// with its request in flight: close() it, or let it end, or let its loop's destruction
// drain it. Loop thread only; single consumer.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstdint>
#include <memory>

#include "coring/net/buffer_pool.hpp"
#include "coring/runtime/event_loop.hpp"
#include "coring/runtime/operation.hpp"

namespace coring::net {

struct RecvStreamOptions {
  std::uint32_t bound = 32;  // chunks queued before the request is paused (at least 1)
  int msg_flags = 0;         // recv(2) flags
};

class RecvStream final : public Operation, private detail::BufferWaiter {
 public:
  // Receives from socket `fd` (a registered-file slot if `direct`) into `pool`.
  RecvStream(int fd, bool direct, BufferPool& pool, RecvStreamOptions options = {});
  RecvStream(RecvStream&&) = delete;
  ~RecvStream();

  class [[nodiscard]] NextAwaiter {
   public:
    explicit NextAwaiter(RecvStream& stream) noexcept : stream_(&stream) {}
    bool await_ready() const noexcept { return stream_->ready_now(); }
    void await_suspend(std::coroutine_handle<> waiter) const noexcept {
      assert(!stream_->waiter_ && "a RecvStream has a single consumer");
      stream_->waiter_ = waiter;
    }
    Result<BufferLease> await_resume() const noexcept { return stream_->take(); }

   private:
    RecvStream* stream_;
  };
  // The next chunk: a lease on its bytes, an empty lease at end of stream, or the error
  // that ended the stream (ECANCELED once closed). Arms the request on first use.
  NextAwaiter next() noexcept { return NextAwaiter(*this); }
  // Arms the request now (next() does so on first use): chunks queue from here on.
  // Inside a running loop.
  void start() noexcept { (void)ready_now(); }

  class [[nodiscard]] CloseAwaiter {
   public:
    explicit CloseAwaiter(RecvStream& stream) noexcept : stream_(&stream) {}
    bool await_ready() const noexcept { return stream_->begin_close(); }
    void await_suspend(std::coroutine_handle<> waiter) const noexcept { stream_->closer_ = waiter; }
    void await_resume() const noexcept {}

   private:
    RecvStream* stream_;
  };
  // Cancels the request and resumes once the kernel has finished with it; unconsumed
  // chunks go back to the pool. next() returns ECANCELED from then on.
  CloseAwaiter close() noexcept { return CloseAwaiter(*this); }

  // Chunks waiting; requests submitted (first arm and re-arms); ENOBUFS endings seen.
  [[nodiscard]] std::uint32_t size() const noexcept { return size_; }
  [[nodiscard]] std::uint64_t arms() const noexcept { return arms_; }
  [[nodiscard]] std::uint64_t starvations() const noexcept { return starvations_; }
  [[nodiscard]] std::uint64_t pauses() const noexcept { return pauses_; }

 private:
  friend class BufferPool;

  enum class Phase : std::uint8_t {
    unarmed,  // next() not called yet
    armed,    // the request is in the kernel (or queued for room in the loop)
    pausing,  // the queue reached the bound: cancel sent, final CQE awaited
    paused,   // not in flight; re-arms when the queue is down to half the bound
    starved,  // ended by ENOBUFS: in the pool's list until a buffer comes back
    ended,    // end of stream or an error: end_ is what next() returns after the queue
    closing,  // close(): cancel sent, final CQE awaited
    closed,
  };

  static void prep_fn(Operation& self, std::span<ring::Sqe* const> sqes) noexcept;
  static void complete_fn(Operation& self, const ring::Cqe& cqe, bool second) noexcept;
  void on_final(const IoResult& result) noexcept;
  void end_with_enomem() noexcept;
  void arm() noexcept;
  void maybe_rearm() noexcept;
  void pause() noexcept;
  // The pool's wake for a returned buffer: re-arms a starved stream; false if it cannot
  // use the wake now (it is not starved, or its queue is full).
  bool buffers_back() noexcept;
  // Hands the wake to the next starved stream if this one holds it unused.
  void pass_wake() noexcept;
  // Drops the wake (out of the pool's list of woken streams); whether it was held.
  bool clear_woken() noexcept;
  bool ready_now() noexcept;
  Result<BufferLease> take() noexcept;
  bool begin_close() noexcept;
  void finish_close() noexcept;
  void wake_consumer() noexcept;
  void push(const IoResult& result) noexcept;
  BufferLease pop() noexcept;
  void release_queue() noexcept;

  BufferPool* pool_;
  EventLoop* loop_ = nullptr;
  std::unique_ptr<BufferLease[]> slots_;  // chunks already claimed from the pool
  std::uint32_t capacity_;
  std::uint32_t head_ = 0;
  std::uint32_t size_ = 0;
  std::uint32_t bound_;
  int fd_;
  int msg_flags_;
  bool direct_;
  bool cancel_sent_ = false;  // a cancel went through the loop since the last arm
  // A chunk could not be queued (no memory to grow the queue): the stream ends with
  // ENOMEM after the chunks before it, never with a hole in the bytes.
  bool overflowed_ = false;
  Phase phase_ = Phase::unarmed;
  IoResult end_{};
  std::uint64_t returned_at_arm_ = 0;  // pool.returned() when the request was armed
  std::uint64_t arms_ = 0;
  std::uint64_t starvations_ = 0;
  std::uint64_t pauses_ = 0;
  std::coroutine_handle<> closer_;  // (the consumer waits in Operation::waiter_)
};

}  // namespace coring::net
