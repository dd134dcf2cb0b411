// BufferPool: receive buffers the kernel picks, from a provided-buffer ring of one loop.
//
//   BufferPool pool(loop, {.buffer_size = 16384, .count = 256});
//   Result<BufferLease> got = co_await stream.recv(pool);   // one receive
//   RecvStream chunks = stream.recv_stream(pool);            // multishot: many receives
//   Result<BufferLease> next = co_await chunks.next();
//   use(next->data());                                       // the kernel-filled bytes
//   // dropping the lease hands the buffer back to the kernel
//
// The pool, incremental consumption (6.12), each stream's share of it and the lifetimes
// of pools, leases and streams: docs/net.md, "Provided buffers" and "Fairness". Loop
// thread only. The pool allocates nothing after construction.
#pragma once

#include <algorithm>
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
  // Chunks one RecvStream may queue before it stops receiving (its bound is clamped to
  // this); 0: count / 8, at least 1. See docs/net.md, "Fairness".
  std::uint32_t share = 0;
};

// The bytes of one receive, in a buffer of a BufferPool; the buffer goes back to the
// kernel when the lease is dropped (or reset()). A RecvStream that found the pool empty
// receives into a buffer of its own instead, freed with the lease (buffer_id() is then
// own_buffer). An empty lease with no bytes is the peer's end of stream.
class BufferLease {
 public:
  static constexpr std::uint16_t own_buffer = 0xFFFF;  // no pool has this many buffers

  BufferLease() noexcept = default;
  BufferLease(BufferLease&& other) noexcept
      : pool_(std::exchange(other.pool_, nullptr)),
        data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        id_(other.id_) {}
  BufferLease& operator=(BufferLease&& other) noexcept {
    if (this != &other) {
      reset();
      pool_ = std::exchange(other.pool_, nullptr);
      data_ = std::exchange(other.data_, nullptr);
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
  // The buffer's id in its pool (for diagnostics), or own_buffer; meaningful while the
  // lease holds one.
  [[nodiscard]] std::uint16_t buffer_id() const noexcept { return id_; }
  // Gives the buffer back now.
  inline void reset() noexcept;

 private:
  friend class BufferPool;
  friend class RecvStream;
  BufferLease(BufferPool* pool, std::byte* data, std::uint32_t size, std::uint16_t id) noexcept
      : pool_(pool), data_(data), size_(size), id_(id) {}
  // `size` bytes received into `memory` (new[]'d), which the lease now owns.
  static BufferLease owning(std::byte* memory, std::uint32_t size) noexcept {
    return BufferLease(nullptr, memory, size, own_buffer);
  }

  BufferPool* pool_ = nullptr;  // null for an own buffer
  std::byte* data_ = nullptr;   // null: the lease holds nothing
  std::uint32_t size_ = 0;
  std::uint16_t id_ = 0;
};

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
  // Buffers in the kernel's hands, for receives to take.
  [[nodiscard]] std::uint32_t available() const noexcept { return count() - held_; }
  // Whether the kernel refused a RecvStream's byte limit (before 6.17), known after
  // the first stream armed; streams then rely on pausing alone (docs/net.md, "Fairness").
  [[nodiscard]] bool byte_limit_refused() const noexcept { return limit_refused_; }
  // The size of the buffer a RecvStream receives into when the pool is dry: at most
  // 512 bytes, so that a burst of clients that runs the pool dry leaves little behind
  // in the heap (docs/net.md, "Fairness").
  [[nodiscard]] std::uint32_t own_buffer_size() const noexcept {
    return std::min(buffer_size_, std::uint32_t{512});
  }
  // Chunks one RecvStream may queue (BufferPoolOptions::share).
  [[nodiscard]] std::uint32_t share() const noexcept { return share_; }
  // RecvStreams alive on the pool.
  [[nodiscard]] std::uint32_t streams() const noexcept { return streams_; }
  [[nodiscard]] EventLoop& loop() const noexcept { return *loop_; }

  // The bytes a receive's CQE delivered (res, flags) as a lease; an error result is
  // returned as its error; a result of 0 is an empty lease (end of stream).
  Result<BufferLease> lease(const IoResult& result) noexcept;

 private:
  friend class BufferLease;
  friend class RecvStream;  // joins and leaves streams_

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
  EventLoop* loop_;
  ring::BufferRing ring_;
  std::uint32_t buffer_size_;
  std::unique_ptr<std::byte[]> memory_;
  std::unique_ptr<Slot[]> slots_;
  std::uint32_t held_ = 0;
  std::uint32_t share_;
  std::uint32_t streams_ = 0;
  std::uint64_t returned_ = 0;
  // The kernel refused a multishot receive with a byte limit (before 6.17): streams on
  // this pool arm without one.
  bool limit_refused_ = false;
};

inline void BufferLease::reset() noexcept {
  std::byte* const data = std::exchange(data_, nullptr);
  if (data == nullptr) return;
  if (pool_ != nullptr) {
    std::exchange(pool_, nullptr)->release(id_);
  } else {
    delete[] data;
  }
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
    if (direct) ring::use_fixed_file(sqe);
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
