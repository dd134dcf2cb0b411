// BufferPool: receive buffers the kernel picks, from a provided-buffer ring of one loop.
//
//   BufferPool pool(loop, {.buffer_size = 16384, .count = 256});
//   Result<BufferLease> got = co_await stream.recv(pool);   // one receive
//   RecvStream chunks = stream.recv_stream(pool);            // multishot: many receives
//   Result<BufferLease> next = co_await chunks.next();
//   use(next->data());                                       // the kernel-filled bytes
//   // dropping the lease hands the buffer back to the kernel
//
// The pool owns `count` buffers of `buffer_size` bytes and a BufferRing (ring layer)
// registered on the loop's ring under its own group id. A receive that selects from the
// group gets a buffer only when data arrives, so idle connections hold no memory.
//
// Incremental consumption (6.12; the pool falls back to whole buffers before that): the
// kernel fills one buffer piece by piece across receives, so small messages do not each
// take a whole buffer. A buffer goes back to the kernel once the kernel has finished with
// it (a CQE without IORING_CQE_F_BUF_MORE) and every lease on a piece of it is dropped;
// the pool counts the leases per buffer.
//
// Leases can be dropped in any order. Lifetimes: create the pool before, and destroy it
// after, every lease and RecvStream that uses it — declared first in the same frame does
// it, even when the loop's destruction destroys that frame — and destroy it before its
// loop. Loop thread only. No allocation after construction.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <system_error>
#include <utility>

#include "coring/net/socket.hpp"
#include "coring/ring/buffer_ring.hpp"
#include "coring/ring/prep.hpp"
#include "coring/ring/result.hpp"
#include "coring/runtime/intrusive_list.hpp"
#include "coring/runtime/operation.hpp"

namespace coring {
class EventLoop;
}

namespace coring::net {

class BufferPool;
class RecvStream;

struct BufferPoolOptions {
  std::uint32_t buffer_size = 4096;  // bytes per buffer
  std::uint32_t count = 256;         // buffers, a power of two up to 32768
  std::uint16_t group_id = 0;        // 0: the next free id of this process's counter
  bool incremental = true;           // ask for incremental consumption (6.12)
};

// The bytes of one receive, in a buffer of a BufferPool; the buffer goes back to the
// kernel when the lease is dropped (or reset()). An empty lease with no bytes is the
// peer's end of stream.
class BufferLease {
 public:
  BufferLease() noexcept = default;
  BufferLease(BufferLease&& other) noexcept
      : pool_(std::exchange(other.pool_, nullptr)),
        data_(other.data_),
        size_(std::exchange(other.size_, 0)),
        id_(other.id_) {}
  BufferLease& operator=(BufferLease&& other) noexcept {
    if (this != &other) {
      reset();
      pool_ = std::exchange(other.pool_, nullptr);
      data_ = other.data_;
      size_ = std::exchange(other.size_, 0);
      id_ = other.id_;
    }
    return *this;
  }
  BufferLease(const BufferLease&) = delete;
  BufferLease& operator=(const BufferLease&) = delete;
  ~BufferLease() { reset(); }

  [[nodiscard]] std::span<std::byte> data() const noexcept { return {data_, size_}; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  // No bytes: the peer ended the stream.
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  // The buffer's id in its pool (for diagnostics); meaningful while the lease holds one.
  [[nodiscard]] std::uint16_t buffer_id() const noexcept { return id_; }
  // Gives the buffer back now.
  inline void reset() noexcept;

 private:
  friend class BufferPool;
  BufferLease(BufferPool* pool, std::byte* data, std::uint32_t size, std::uint16_t id) noexcept
      : pool_(pool), data_(data), size_(size), id_(id) {}

  BufferPool* pool_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint32_t size_ = 0;
  std::uint16_t id_ = 0;
};

namespace detail {
// What a pool keeps of a RecvStream that waits for its buffers.
struct BufferWaiter {
  ListHook starved_link;  // in the pool's list of streams waiting for a buffer
  // In the pool's list of woken streams: re-armed by the pool for a returned buffer, and
  // no CQE with a buffer since. If the request ends without taking one, the wake passes
  // to the next starved stream, which would otherwise wait for another buffer to come
  // back while this one lies unused.
  ListHook woken_link;
  std::uint64_t woken_round = 0;  // the pool's verdict NOP that judges this wake
};
}  // namespace detail

class BufferPool {
 public:
  // Registers the ring on `loop`'s ring; throws std::system_error if the kernel refuses
  // (before 5.19: no provided-buffer rings) or memory runs out.
  explicit BufferPool(EventLoop& loop, BufferPoolOptions options = {});
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  [[nodiscard]] std::uint16_t group_id() const noexcept { return ring_.group_id(); }
  [[nodiscard]] std::uint32_t buffer_size() const noexcept { return buffer_size_; }
  [[nodiscard]] std::uint32_t count() const noexcept { return ring_.entries(); }
  [[nodiscard]] bool incremental() const noexcept { return ring_.incremental(); }
  // Buffers the application holds (some lease on them, or the kernel is still filling
  // them piece by piece): count() - held() are in the kernel's hands.
  [[nodiscard]] std::uint32_t held() const noexcept { return held_; }
  // Buffers handed back to the kernel since construction (for tests and diagnostics).
  [[nodiscard]] std::uint64_t returned() const noexcept { return returned_; }
  [[nodiscard]] EventLoop& loop() const noexcept { return *loop_; }

  // The bytes a receive's CQE delivered (res, flags) as a lease; an error result is
  // returned as its error; a result of 0 is an empty lease (end of stream).
  Result<BufferLease> lease(const IoResult& result) noexcept;

 private:
  friend class BufferLease;
  friend class RecvStream;

  struct Slot {
    std::uint32_t head = 0;    // bytes of the buffer handed out so far (incremental)
    std::uint32_t leases = 0;  // leases on pieces of it
    bool in_kernel = true;     // the kernel owns it, or may still add pieces to it
  };

  void release(std::uint16_t id) noexcept;
  void give_back(std::uint16_t id) noexcept;
  [[nodiscard]] std::byte* buffer(std::uint16_t id) const noexcept {
    return memory_.get() + std::size_t{buffer_size_} * id;
  }
  void wake_starved() noexcept;
  // A woken stream's re-arm is in the SQ: submits a NOP behind it (verdict_), whose CQE
  // tells whether the request took a buffer or ended at once (its CQE came first) or
  // went to wait for data without a CQE (an idle socket: the kernel picks the buffer
  // before it looks for data, so a stream starves without any). The wake of a stream
  // still woken at the NOP's CQE passes to the next starved stream.
  void watch_woken(RecvStream& stream) noexcept;
  void unwatch_woken(RecvStream& stream) noexcept;
  void submit_verdict() noexcept;
  void verdict_done() noexcept;
  class VerdictOp;
  // At the back of the list of streams waiting for a buffer; at the front (`first`) for
  // one that was woken and lost the buffer to another request.
  void add_starved(RecvStream& stream, bool first = false) noexcept;
  void remove_starved(RecvStream& stream) noexcept;

  EventLoop* loop_;
  ring::BufferRing ring_;
  std::uint32_t buffer_size_;
  std::unique_ptr<std::byte[]> memory_;
  std::unique_ptr<Slot[]> slots_;
  std::uint32_t held_ = 0;
  std::uint64_t returned_ = 0;
  IntrusiveList<detail::BufferWaiter, &detail::BufferWaiter::starved_link>
      starved_;  // oldest first
  IntrusiveList<detail::BufferWaiter, &detail::BufferWaiter::woken_link> woken_;
  VerdictOp* verdict_ = nullptr;     // owned; outlives the pool if its NOP is in flight
  std::uint64_t verdict_round_ = 0;  // NOPs submitted so far
  std::uint32_t streams_ = 0;        // RecvStreams alive on this pool
};

inline void BufferLease::reset() noexcept {
  if (pool_ == nullptr) return;
  std::exchange(pool_, nullptr)->release(id_);
  size_ = 0;
}

namespace detail {
// recv(pool): one IORING_OP_RECV that selects a buffer of the pool.
//
// The piece of the buffer is claimed when the CQE is reaped, not when the coroutine
// resumes: with incremental consumption only the order of a buffer's CQEs says where
// each piece starts, and other receives on the pool (a RecvStream, another recv(pool))
// may complete in between.
struct PoolRecvBody {
  BufferPool* pool;
  int fd;
  int flags;
  bool direct;
  BufferLease claimed{};
  std::error_code claim_error{};

  void prep(ring::Sqe& sqe) const noexcept {
    ring::prep_recv_buffer_select(sqe, fd, pool->group_id(), 0, flags);
    fix_file(sqe, direct);
  }
  void on_cqe(const IoResult& cqe) noexcept {
    Result<BufferLease> lease = pool->lease(cqe);
    if (lease) {
      claimed = std::move(*lease);
    } else {
      claim_error = lease.error();
    }
  }
  static bool again(const IoResult&) noexcept { return false; }
  // `final` may differ from the CQE (a timeout's -ETIMEDOUT for the cancelled request's
  // -ECANCELED); a CQE with an error carries no buffer.
  Result<BufferLease> result(const IoResult& final) noexcept {
    if (final.res < 0) return fail(final.error());
    if (claim_error) return fail(claim_error);
    return std::move(claimed);
  }
};
}  // namespace detail

}  // namespace coring::net
